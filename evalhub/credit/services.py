"""Annual credit rating of firms. The rating itself arrives with the credit issue; until then every
firm is "not rated", and procurement reads grades only through ``final_grade``."""
from __future__ import annotations

from evalhub.core.enums import LabeledEnum


class CreditGrade(LabeledEnum):
    A = ("A", "A 级")
    B = ("B", "B 级")
    C = ("C", "C 级")
    D = ("D", "D 级")


def final_grade(firm, bureau, year: int) -> CreditGrade | None:
    """The firm's final published grade for ``year`` from ``bureau``'s rating, or None (not rated)."""
    return None
