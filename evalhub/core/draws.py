"""Verifiable random draws: firm lotteries, expert panels and inspection samples all come through here.

Algorithm ``sha256-rank-v1``: every eligible candidate id is ranked by sha256("<seed>:<id>") and the
first k are drawn. Anyone holding the recorded seed and candidate list can redo it with a pocket
calculator's worth of code, in any language; it does not depend on Python's random module.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from evalhub.core import audit
from evalhub.core.errors import DomainError
from evalhub.core.models import Draw, User
from evalhub.extensions import db

ALGORITHM = "sha256-rank-v1"


def rank(seed: str, ids: Iterable[int]) -> list[int]:
    return sorted(ids, key=lambda i: (hashlib.sha256(f"{seed}:{i}".encode()).hexdigest(), i))


def _run(algorithm: str, seed: str, eligible: Sequence[int], k: int) -> list[int]:
    if algorithm != ALGORITHM:
        raise DomainError(f"未知的抽取算法：{algorithm}")
    return rank(seed, eligible)[:k]


def draw(purpose: str, candidates: Iterable[int], k: int,
         exclusions: Mapping[int, Sequence[str]] | None = None, *,
         actor: User | None = None, bureau_id: int | None = None,
         context: tuple[str, int] | None = None, seed: str | None = None,
         redraw_of: Draw | None = None, redraw_reason: str | None = None) -> Draw:
    """Draw k of the candidates not excluded; record everything needed to re-run it.

    ``exclusions`` maps a candidate id to the reasons it may not be drawn. Excluded ids that were
    not among the candidates are added to the candidate list, so the record shows everyone considered.
    """
    exclusions = {int(i): list(reasons) for i, reasons in (exclusions or {}).items() if reasons}
    candidate_ids = sorted({int(i) for i in candidates} | set(exclusions))
    eligible = [i for i in candidate_ids if i not in exclusions]
    if k < 1:
        raise DomainError("抽取人数必须至少为 1。")
    if len(eligible) < k:
        raise DomainError(f"符合条件的候选不足：需要 {k} 个，仅有 {len(eligible)} 个（已回避或排除 {len(exclusions)} 个）。")
    if redraw_of is not None and not (redraw_reason or "").strip():
        raise DomainError("重新抽取必须说明原因。")
    seed = seed or secrets.token_hex(16)
    record = Draw(
        purpose=purpose,
        context_type=context[0] if context else None,
        context_id=context[1] if context else None,
        bureau_id=bureau_id,
        candidate_ids=candidate_ids,
        exclusions=[{"id": i, "reasons": exclusions[i]} for i in sorted(exclusions)],
        k=k,
        seed=seed,
        algorithm=ALGORITHM,
        result_ids=_run(ALGORITHM, seed, eligible, k),
        redraw_of_id=redraw_of.id if redraw_of else None,
        redraw_reason=(redraw_reason or "").strip() or None,
        created_by_id=actor.id if actor else None,
    )
    db.session.add(record)
    db.session.flush()
    audit.record(
        "draw.performed", record, actor=actor, bureau_id=bureau_id,
        summary=f"随机抽取：{purpose}（{len(eligible)} 选 {k}）" + (f"；重抽原因：{record.redraw_reason}" if redraw_of else ""),
        payload={"seed": seed, "algorithm": ALGORITHM, "result": record.result_ids,
                 "excluded": len(exclusions), "redraw_of": record.redraw_of_id},
    )
    return record


@dataclass
class DrawCheck:
    ok: bool
    recorded: list[int]
    recomputed: list[int]


def verify(record: Draw) -> DrawCheck:
    excluded = {e["id"] for e in record.exclusions}
    eligible = [i for i in record.candidate_ids if i not in excluded]
    recomputed = _run(record.algorithm, record.seed, eligible, record.k)
    return DrawCheck(ok=recomputed == list(record.result_ids), recorded=list(record.result_ids), recomputed=recomputed)
