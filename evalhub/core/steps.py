"""A step of a status machine, declared once for every machine: the engagement's (``procurement.workflow``)
and the firm library's (``registry.services``).

Each machine keeps its own table of steps, and what a step further needs (who may take it, the
requirements, a reason) is that machine's. What every step has — its action, its label, the states it
leaves from and the one it reaches — the refusal when the current state does not allow it, and the
one-line description the API schema gives of it are written here, so the two machines cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from evalhub.core.enums import LabeledEnum
from evalhub.core.errors import Conflict

State = TypeVar("State", bound=LabeledEnum)


@dataclass(frozen=True)
class Step(Generic[State]):
    action: str
    label: str
    sources: tuple[State, ...]
    target: State

    def refuse_unless_from(self, state: State, subject: str) -> None:
        """Conflict (409) unless ``state`` is one this step leaves from; ``subject`` names what is moved."""
        if state not in self.sources:
            allowed = "、".join(s.label for s in self.sources)
            raise Conflict(f"{subject}当前状态为“{state.label}”，不能执行“{self.label}”（仅在“{allowed}”时可以）。")

    @property
    def described(self) -> str:
        """``action = label（sources → target）``, as the API schema lists the steps it accepts."""
        return f"{self.action} = {self.label}（{'、'.join(s.label for s in self.sources)} → {self.target.label}）"
