"""Verifiable random draws: firm lotteries, expert panels and inspection samples all come through here.

Algorithm ``sha256-rank-v1``: every eligible candidate id is ranked by sha256("<seed>:<id>") and the
first k are drawn. Anyone holding the recorded seed and candidate list can redo it with a pocket
calculator's worth of code, in any language; it does not depend on Python's random module.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
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
        # Everything needed to re-run the draw, so the draw row can be checked against its audit event.
        payload={"seed": seed, "algorithm": ALGORITHM, "result": record.result_ids, "k": k,
                 "candidates": record.candidate_ids, "exclusions": record.exclusions,
                 "excluded": len(exclusions), "redraw_of": record.redraw_of_id},
    )
    return record


@dataclass
class DrawCheck:
    """``ok`` only when the recorded result re-runs from the recorded seed AND the draw row still says
    what the audit event written at the time of the draw says (a replaced seed with a matching result
    re-runs fine; it does not match the event)."""

    ok: bool
    recorded: list[int]
    recomputed: list[int]
    rerun_ok: bool = True
    event_id: int | None = None
    mismatches: list[str] = field(default_factory=list)  # draw row vs. audit event, in Chinese
    notes: list[str] = field(default_factory=list)


def _difference(key: str, row_value, event_value) -> str:
    """What differs, short enough to read even when the candidate list has thousands of ids."""
    if key == "candidates" and isinstance(event_value, list):
        extra = sorted(set(row_value) - set(event_value))
        lacking = sorted(set(event_value) - set(row_value))
        if extra or lacking:
            return f"抽取记录多出 {extra[:10]}{'…' if len(extra) > 10 else ''}，缺少 {lacking[:10]}{'…' if len(lacking) > 10 else ''}"
        return "顺序不同"
    if key == "exclusions" and isinstance(event_value, list):
        def by_id(items):
            return {e.get("id"): e for e in items if isinstance(e, dict)}
        row, event = by_id(row_value), by_id(event_value)
        ids = sorted((i for i in set(row) | set(event) if row.get(i) != event.get(i)), key=str)
        return f"编号 {ids[:10]}{'…' if len(ids) > 10 else ''} 的排除记录不同" if ids else "顺序不同"
    text = f"抽取记录：{row_value}；审计事件：{event_value}"
    return text if len(text) <= 300 else text[:300] + "…"


def _compare_with_event(record: Draw) -> tuple[int | None, list[str], list[str]]:
    events = [e for e in audit.history("draw", record.id) if e.action == "draw.performed"]
    if not events:
        return None, [f"找不到记录此次抽取的审计事件（draw.performed，抽取 #{record.id}）。"], []
    event = events[0]
    mismatches: list[str] = []
    notes: list[str] = []
    if audit.event_digest(event) != event.hash:
        mismatches.append(f"记录此次抽取的审计事件 #{event.id} 本身被改动过（哈希不符）。")
    payload = event.payload or {}
    fields = [("seed", "种子", record.seed), ("algorithm", "算法版本", record.algorithm),
              ("result", "抽取结果", list(record.result_ids)), ("k", "抽取人数", record.k),
              ("candidates", "候选名单", list(record.candidate_ids)), ("exclusions", "排除及原因", list(record.exclusions)),
              ("redraw_of", "重抽来源", record.redraw_of_id)]
    missing = []
    for key, label, value in fields:
        if key not in payload:
            missing.append(label)
            continue
        if payload[key] != value:
            mismatches.append(f"{label}与审计事件 #{event.id} 记录的不同（{_difference(key, value, payload[key])}）。")
    if "excluded" in payload and "exclusions" not in payload and payload["excluded"] != len(record.exclusions):
        mismatches.append(f"排除人数与审计事件 #{event.id} 记录的不同（抽取记录：{len(record.exclusions)}；"
                          f"审计事件：{payload['excluded']}）。")
    if missing:
        notes.append(f"审计事件 #{event.id} 为旧格式，未记录{'、'.join(missing)}，这几项无法对照。")
    return event.id, mismatches, notes


def verify(record: Draw) -> DrawCheck:
    excluded = {e["id"] for e in record.exclusions}
    eligible = [i for i in record.candidate_ids if i not in excluded]
    event_id, mismatches, notes = _compare_with_event(record)
    try:
        recomputed = _run(record.algorithm, record.seed, eligible, record.k)
    except DomainError as exc:  # an algorithm name nobody knows: nothing to re-run
        recomputed = []
        mismatches.insert(0, exc.message)
    rerun_ok = recomputed == list(record.result_ids)
    return DrawCheck(ok=rerun_ok and not mismatches, recorded=list(record.result_ids), recomputed=recomputed,
                     rerun_ok=rerun_ok, event_id=event_id, mismatches=mismatches, notes=notes)
