"""Verifiable random draws nobody can steer: firm lotteries, expert panels and inspection samples all come
through here.

Every draw is two-phase and witnessed (issue 14):

1. ``announce``: the candidates (with names) and the exclusions (with reasons) are frozen in a canonical JSON
   text whose sha256 is the ``candidate_hash``; a server secret is generated and only its sha256, the
   ``commitment``, is shown. The bureau names one or more witnesses (监督人, ``name_witnesses``).
2. ``enter_number``: each witness, signed in as themselves, enters a number of their own.
3. ``reveal``: once every witness has entered theirs, the operator reveals: seed =
   sha256("<secret>|<candidate hash>|<n1>|<n2>…", numbers in the witnesses' named order); the result is the
   first k eligible ids ranked by sha256("<seed>:<id>") (``sha256-rank-v1``, unchanged). The caller's
   effect (seats, sample, award…) is applied by the handler the caller registered for the draw's kind
   (``@on_drawn("review_panel")``): core never imports a higher module.

Nobody alone steers the result: the operator is committed to the secret before any witness's number
exists and may not be a witness; a witness does not know the secret. A draw is revealed once
(compare-and-set). Draws made while another draw is being revealed (a campaign's inspectors, drawn for
each sampled engagement) are ``derive``d: their seed is sha256("<parent seed>|<candidate hash>"), fixed
as soon as the parent's is.

Automatic draws (a replacement after an expert declines or misses the deadline, a tie-break at award) are
announced by the service that needs them and wait on the bureau's draw page until it names witnesses and
reveals: nobody bypasses the witnesses.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import sqlalchemy as sa

from evalhub.core import audit, permissions
from evalhub.core.enums import BUREAU_SIDE, Role
from evalhub.core.errors import Conflict, DomainError, PermissionDenied, ValidationFailed
from evalhub.core.models import Bureau, Draw, DrawStatus, DrawWitness, User
from evalhub.core.notifications import emit
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db

ALGORITHM = "sha256-rank-v1"
NUMBER_PATTERN = re.compile(r"^[0-9]{1,18}$")


def rank(seed: str, ids: Iterable[int]) -> list[int]:
    return sorted(ids, key=lambda i: (hashlib.sha256(f"{seed}:{i}".encode()).hexdigest(), i))


def _run(algorithm: str, seed: str, eligible: Sequence[int], k: int) -> list[int]:
    if algorithm != ALGORITHM:
        raise DomainError(f"未知的抽取算法：{algorithm}")
    return rank(seed, eligible)[:k]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seed_of(secret: str, candidate_hash: str, numbers: Sequence[str]) -> str:
    return sha256("|".join([secret, candidate_hash, *numbers]))


def canonical(record: Draw) -> str:
    """The frozen announcement as one text: what the candidate hash is taken of, published on the draw page
    so anyone can hash it again (compact JSON, UTF-8, fields in this order)."""
    names = record.candidate_names or {}
    return json.dumps({
        "purpose": record.purpose,
        "algorithm": record.algorithm,
        "k": record.k,
        "candidates": [[i, names.get(str(i), f"编号 {i}")] for i in record.candidate_ids],
        "exclusions": [[e["id"], list(e["reasons"])] for e in record.exclusions],
    }, ensure_ascii=False, separators=(",", ":"))


def eligible_ids(record: Draw) -> list[int]:
    excluded = {e["id"] for e in record.exclusions}
    return [i for i in record.candidate_ids if i not in excluded]


# --- what the callers register ----------------------------------------------------------------------

@dataclass
class Kind:
    handler: Callable[[Draw, Optional[User]], Any]
    public: bool = False  # published to anyone once drawn (firm lotteries, inspection draws)
    released: Optional[Callable[[Draw], bool]] = None  # a confidential draw becomes public when this says so
    names: Optional[Callable[[Draw], Mapping[int, str]]] = None  # the bureau side's names; the public reads ids


_KINDS: dict[str, Kind] = {}


def on_drawn(kind: str, *, public: bool = False, released: Optional[Callable[[Draw], bool]] = None,
             names: Optional[Callable[[Draw], Mapping[int, str]]] = None):
    """Register the effect of a drawn ``kind`` (``fn(draw, operator) -> effect``), applied in the reveal's
    transaction. ``public``: anyone may read and recompute the draw once drawn; otherwise only the bureau, its
    upper bureaus and the draw's witnesses, until ``released(draw)`` (e.g. the review has ended). ``names``: the
    candidates are published by id only (a tie-break's bids: the tenderers stay off public pages); ``names(draw)``
    gives the bureau side their names."""
    def register(fn):
        if kind in _KINDS and _KINDS[kind].handler is not fn:
            raise RuntimeError(f"draw kind {kind!r} registered twice")
        _KINDS[kind] = Kind(fn, public, released, names)
        return fn
    return register


def display_names(record: Draw, *, public: bool) -> dict[str, str]:
    """The candidates' names as a page shows them ({"<id>": name}): the recorded ones, unless the kind publishes ids
    only — then none on a public page (tie-breaks recorded before kept the tenderers' names in the row) and the
    kind's own names on the bureau's."""
    recorded = dict(record.candidate_names or {})
    kind = _KINDS.get(record.kind or "")
    if kind is None or kind.names is None:
        return recorded
    if public:
        return {}
    return {**recorded, **{str(i): str(n) for i, n in kind.names(record).items()}}


# Derived kinds whose result stays confidential after the parent is public, until ``released(draw)`` (the
# inspectors of a campaign: the inspected firm must not learn their names while the inspection runs).
_DERIVED_RELEASED: dict[str, Callable[[Draw], bool]] = {}


def on_derived(kind: str, *, released: Callable[[Draw], bool]) -> None:
    _DERIVED_RELEASED[kind] = released


def is_public(record: Draw) -> bool:
    """Anyone may read and recompute this draw (no sign-in): a drawn draw of a public kind, or a confidential
    one its kind has released."""
    if record.derived_from_id is not None:
        released = _DERIVED_RELEASED.get(record.kind)
        return (record.derived_from is not None and is_public(record.derived_from)
                and (released is None or bool(released(record))))
    if record.status != DrawStatus.DRAWN or record.legacy or record.kind not in _KINDS:
        return False
    kind = _KINDS[record.kind]
    return kind.public or bool(kind.released and kind.released(record))


def published(context_type: str, context_id: int) -> list[Draw]:
    """The drawn draws about one thing (a procurement) that anyone may read, oldest first: what its public pages link
    to, so that the public can find the draw it is told it may recompute."""
    rows = db.session.execute(sa.select(Draw).where(Draw.context_type == context_type, Draw.context_id == context_id,
                                                    Draw.status == DrawStatus.DRAWN).order_by(Draw.id)).scalars()
    return [d for d in rows if is_public(d)]


def is_witness(user: User | None, record: Draw) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and any(
        w.user_id == user.id for w in record.witnesses)


def may_manage(user: User, record: Draw) -> bool:
    """The operator side: the system admin or a user of the draw's own bureau (names witnesses, reveals)."""
    return record is None or permissions.own_bureau(user, record.bureau_id)


permissions.rules({
    "draw.manage": lambda u, d: (permissions.is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN) and may_manage(u, d),
})


# --- 1. announce ------------------------------------------------------------------------------------

def _names(candidates: Mapping[int, str] | Iterable[tuple[int, str]] | Iterable[int]) -> dict[int, str]:
    if isinstance(candidates, Mapping):
        return {int(i): str(n) for i, n in candidates.items()}
    out: dict[int, str] = {}
    for c in candidates:
        if isinstance(c, tuple):
            out[int(c[0])] = str(c[1])
        else:
            out[int(c)] = f"编号 {int(c)}"
    return out


def _candidate_list(named: dict[int, str], exclusions: Mapping[int, Sequence[str]] | None,
                    k: int) -> tuple[dict[int, list[str]], list[int], list[int]]:
    """The exclusions that give reasons (id → reasons), every candidate (named or excluded, sorted) and the
    eligible ones; refuses a draw of fewer than one or of more than are eligible."""
    exclusions = {int(i): [str(r) for r in reasons] for i, reasons in (exclusions or {}).items() if reasons}
    candidate_ids = sorted(set(named) | set(exclusions))
    eligible = [i for i in candidate_ids if i not in exclusions]
    if k < 1:
        raise DomainError("抽取人数必须至少为 1。")
    if len(eligible) < k:
        raise DomainError(f"符合条件的候选不足：需要 {k} 个，仅有 {len(eligible)} 个（已回避或排除 {len(exclusions)} 个）。")
    return exclusions, candidate_ids, eligible


def announce(kind: str, purpose: str, candidates: Mapping[int, str] | Iterable[tuple[int, str]] | Iterable[int],
             k: int, exclusions: Mapping[int, Sequence[str]] | None = None, *,
             actor: User | None = None, bureau_id: int | None = None, context: tuple[str, int] | None = None,
             params: dict[str, Any] | None = None, witnesses: Sequence[User] = (),
             names: Mapping[int, str] | None = None, secret: str | None = None,
             redraw_of: Draw | None = None, redraw_reason: str | None = None) -> Draw:
    """Freeze the candidates and exclusions, commit to a secret, and wait for the witnesses.

    ``candidates`` maps ids to names (what the record shows); ``exclusions`` maps an id to the reasons it may
    not be drawn (excluded ids that were not among the candidates are added, so the record shows everyone
    considered). ``params`` is kept for the kind's handler. ``secret`` (the demo's reproducible data) may be
    given: whoever chooses it is committed to it before any witness's number exists, which is all that counts."""
    if kind not in _KINDS:
        raise RuntimeError(f"no handler registered for draw kind {kind!r}")
    named = _names(candidates)
    named.update({int(i): str(n) for i, n in (names or {}).items()})
    exclusions, candidate_ids, eligible = _candidate_list(named, exclusions, k)
    if redraw_of is not None and not (redraw_reason or "").strip():
        raise DomainError("重新抽取必须说明原因。")
    secret = secret or secrets.token_hex(32)
    record = Draw(
        purpose=purpose[:200], kind=kind, status=DrawStatus.ANNOUNCED,
        context_type=context[0] if context else None, context_id=context[1] if context else None,
        bureau_id=bureau_id, candidate_ids=candidate_ids,
        candidate_names={str(i): named.get(i, f"编号 {i}") for i in candidate_ids},
        exclusions=[{"id": i, "reasons": exclusions[i]} for i in sorted(exclusions)],
        k=k, algorithm=ALGORITHM, result_ids=[], secret=secret, commitment=sha256(secret), params=params or {},
        redraw_of_id=redraw_of.id if redraw_of else None, redraw_reason=(redraw_reason or "").strip() or None,
        created_by_id=actor.id if actor else None,
    )
    record.candidate_hash = sha256(canonical(record))
    db.session.add(record)
    db.session.flush()
    audit.record(
        "draw.announced", record, actor=actor, bureau_id=bureau_id,
        summary=f"公告随机抽取：{record.purpose}（{len(eligible)} 选 {k}），候选名单及承诺值已固定"
        + (f"；重抽原因：{record.redraw_reason}" if redraw_of else ""),
        # Written before any witness's number exists: the proof that the commitment came first.
        payload={"kind": kind, "commitment": record.commitment, "candidate_hash": record.candidate_hash,
                 "algorithm": ALGORITHM, "k": k, "candidates": candidate_ids, "exclusions": record.exclusions,
                 "redraw_of": record.redraw_of_id, **_bearing(record)},
    )
    if witnesses:
        name_witnesses(record, witnesses, actor, check=False)
    elif (actor is None or redraw_of is not None) and bureau_id is not None:  # automatic: tell the bureau it waits
        emit("draw_awaiting_witnesses", link=f"/draws/{record.id}", bureau_id=bureau_id, purpose=record.purpose,
             draw=record.id, reason=record.redraw_reason or "自动发起")
    return record


def _hold(record: Draw) -> None:
    """One change to a draw's witnesses at a time (a number entered while the list is changed): the row is
    locked (PostgreSQL; SQLite serialises writers) and its witnesses read again under the lock."""
    db.session.execute(sa.select(Draw.id).where(Draw.id == record.id).with_for_update())
    db.session.refresh(record)
    db.session.expire(record, ["witnesses"])


def witnesses_changeable(record: Draw) -> bool:
    """Whether ``name_witnesses`` may change the list now: before the first number, or to replace a witness
    whose account was disabled before entering one."""
    return record.status == DrawStatus.ANNOUNCED and (
        all(w.number is None for w in record.witnesses)
        or any(w.number is None and not w.user.is_enabled for w in record.witnesses))


def _witness_bureaus(record: Draw) -> set[int] | None:
    """The bureaus a witness of ``record`` may come from: its bureau and those above it (an upper bureau's people
    watch in person); None for a draw of no bureau (any bureau's)."""
    if record.bureau_id is None:
        return None
    bureau = db.session.get(Bureau, record.bureau_id)
    return {bureau.id} | permissions.ancestor_ids(bureau)


def witness_candidates(record: Draw, actor: User | None) -> list[User]:
    """Whom the bureau may name as witnesses of ``record`` (the page's choices; ``name_witnesses`` holds the same
    rule on every path): enabled staff of the draw's bureau and the bureaus above it, never the operator; and a
    witness who entered a number already, who stays, enabled or not."""
    bureaus = _witness_bureaus(record)
    entered = [w.user_id for w in record.witnesses if w.number is not None]
    eligible = sa.and_(User.is_enabled.is_(True), User.role.in_(permissions.BUREAU_ROLES),
                       permissions.in_bureaus(User.bureau_id, bureaus) if bureaus is not None else sa.true(),
                       User.id != (actor.id if actor is not None else -1))
    return list(db.session.execute(sa.select(User).where(sa.or_(eligible, User.id.in_(entered))).order_by(
        sa.case((User.bureau_id == record.bureau_id, 0), else_=1), User.bureau_id, User.id)).scalars())  # its own first


def name_witnesses(record: Draw, users: Sequence[User], actor: User | None, *, check: bool = True,
                   notify: bool = True) -> list[DrawWitness]:
    """The bureau names the witnesses (in this order: the order of their numbers in the seed). Allowed until the
    first number is entered; after it, only a witness whose account was disabled before entering a number may be
    replaced (someone who left the bureau cannot sign in to enter it: the draw would wait for ever), the others
    keeping their places and numbers. Rules: at least one; enabled staff accounts of the draw's bureau or a bureau
    above it (an auditor sent to watch is given one there: ``witness_candidates``); never the operator naming them — the operator reveals, the witnesses enter numbers, and
    ``reveal`` refuses a witness as operator, so the two sides are always different people."""
    if check:
        permissions.require(actor, "draw.manage", record)
    _hold(record)
    if record.status != DrawStatus.ANNOUNCED:
        raise Conflict(_closed(record, "该抽取已经揭晓，不能再更换监督人。", "更换监督人"))
    staying = [w for w in record.witnesses if w.number is not None or w.user.is_enabled]
    started = any(w.number is not None for w in record.witnesses)
    chosen = {u.id for u in users if u is not None}
    if started and (not witnesses_changeable(record) or not {w.user_id for w in staying} <= chosen
                    or len(chosen - {w.user_id for w in staying}) > len(record.witnesses) - len(staying)):
        # after the first number the operator may not add witnesses of their choosing: one replacement for each
        # witness disabled before entering a number, the others kept
        raise Conflict("已有监督人输入了数字，监督人名单不能再更改（只能逐一替换账号已停用、尚未输入数字的监督人）。")
    unique: list[User] = []
    for u in users:
        if u is not None and u.id not in {x.id for x in unique}:
            unique.append(u)
    if not unique:
        raise ValidationFailed("请至少指定一名监督人。", {"witnesses": "至少一名监督人"})
    problems = []
    bureaus = _witness_bureaus(record)
    for u in unique:
        if actor is not None and u.id == actor.id:
            problems.append("操作人不能担任本次抽取的监督人")
        elif u.id in {w.user_id for w in staying if w.number}:
            continue  # entered a number already: stays, enabled or not
        elif u.role not in permissions.BUREAU_ROLES or not u.is_enabled:
            problems.append(f"{u.display_name or u.username} 不是可用的财政部门人员账号")
        elif bureaus is not None and u.bureau_id not in bureaus:
            problems.append(f"{u.display_name or u.username} 不是本次抽取所在财政局或其上级财政局的人员")
    if problems:
        raise ValidationFailed("；".join(problems) + "。", {"witnesses": "；".join(problems)})
    if started:  # the witnesses who stay keep their places; the replacements come after them
        kept = {w.user_id for w in staying}
        for w in [w for w in record.witnesses if w.user_id not in kept]:
            record.witnesses.remove(w)
        db.session.flush()
        after = max((w.position for w in staying), default=0)
        made = [DrawWitness(user_id=u.id, position=after + n, named_by_id=actor.id if actor else None)
                for n, u in enumerate([u for u in unique if u.id not in kept], start=1)]
    else:
        for w in list(record.witnesses):
            record.witnesses.remove(w)
        db.session.flush()
        made = [DrawWitness(user_id=u.id, position=n, named_by_id=actor.id if actor else None)
                for n, u in enumerate(unique, start=1)]
    record.witnesses.extend(made)
    db.session.flush()
    if notify:  # (run_witnessed's witnesses act at once: nothing to tell them)
        emit("draw_witness_named", link=f"/draws/{record.id}", users=unique, purpose=record.purpose, draw=record.id)
    audit.record("draw.witnesses_named", record, actor=actor, bureau_id=record.bureau_id,
                 summary=f"随机抽取 #{record.id} 指定监督人：" + "、".join(u.display_name or u.username for u in unique),
                 payload={"witnesses": [u.id for u in unique]})
    return made


# --- 2. the witnesses' numbers -------------------------------------------------------------------------

def _closed(record: Draw, drawn: str, step: str) -> str:
    """Why a step of an announced draw is refused: revealed (``drawn``), or withdrawn before its reveal."""
    if record.status == DrawStatus.WITHDRAWN:
        return f"该抽取已撤销（未揭晓），不能再{step}。"
    return drawn


def enter_number(record: Draw, user: User, number: Any) -> DrawWitness:
    """A witness, signed in as themselves, enters a number of their own (1–18 digits), once."""
    _hold(record)
    witness = next((w for w in record.witnesses if w.user_id == user.id), None)
    if witness is None:
        raise PermissionDenied("只有本次抽取指定的监督人本人才能输入数字。")
    if record.status != DrawStatus.ANNOUNCED:
        raise Conflict(_closed(record, "该抽取已经揭晓。", "输入数字"))
    text = re.sub(r"\s+", "", str(number if number is not None else ""))
    if not NUMBER_PATTERN.match(text):
        raise ValidationFailed("请输入 1 至 18 位数字。", {"number": "请输入 1 至 18 位数字"})
    text = str(int(text))
    # Compare-and-set: a number once entered is never replaced (two tabs, two workers).
    moved = db.session.execute(sa.update(DrawWitness).where(DrawWitness.id == witness.id, DrawWitness.number.is_(None))
                               .values(number=text, entered_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        db.session.refresh(witness)
        raise Conflict("您已经输入过数字，不能更改。")
    db.session.refresh(witness)
    audit.record("draw.number_entered", record, actor=user, bureau_id=record.bureau_id,
                 summary=f"监督人 {user.display_name or user.username} 为随机抽取 #{record.id} 输入了数字",
                 payload={"witness": user.id, "position": witness.position})
    return witness


# --- 3. reveal --------------------------------------------------------------------------------------

def missing_numbers(record: Draw) -> list[DrawWitness]:
    return [w for w in record.witnesses if w.number is None]


def reveal(record: Draw, actor: User | None, *, check: bool = True) -> Draw:
    """Reveal the secret, compute the seed and the result, and apply the kind's effect. Once only: a second
    reveal (a double click, another worker) is answered 409."""
    if check:
        permissions.require(actor, "draw.manage", record)
    if record.status != DrawStatus.ANNOUNCED:
        raise Conflict(_closed(record, "该抽取已经揭晓，结果不能重新计算。", "揭晓"))
    if not record.witnesses:
        raise Conflict("尚未指定监督人，不能揭晓。")
    if actor is not None and is_witness(actor, record):
        raise PermissionDenied("监督人不能揭晓本人监督的抽取，请由操作人揭晓。")
    waiting = missing_numbers(record)
    if waiting:
        raise Conflict(f"还有 {len(waiting)} 名监督人未输入数字，不能揭晓：" + "、".join(
            w.user.display_name or w.user.username for w in waiting) + "。")
    recorded = {e.action for e in audit.history("draw", record.id)}  # the draw's events, read once for both checks
    if "draw.performed" in recorded:  # a row set back to "announced": never a second throw
        raise Conflict("审计日志表明该抽取已经揭晓，结果不能重新计算；请核验该抽取记录。")
    if "draw.withdrawn" in recorded:
        raise Conflict("审计日志表明该抽取已经撤销，不能揭晓；请核验该抽取记录。")
    moved = db.session.execute(sa.update(Draw).where(Draw.id == record.id, Draw.status == DrawStatus.ANNOUNCED)
                               .values(status=DrawStatus.DRAWN).execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        db.session.refresh(record, ["status"])
        raise Conflict(_closed(record, "该抽取已经揭晓，结果不能重新计算。", "揭晓"))
    numbers = [w.number for w in record.witnesses]
    record.status = DrawStatus.DRAWN
    record.seed = seed_of(record.secret, record.candidate_hash, numbers)
    record.result_ids = _run(ALGORITHM, record.seed, eligible_ids(record), record.k)
    record.drawn_at = utcnow()
    record.drawn_by_id = actor.id if actor else None
    db.session.flush()
    _performed(record, actor, {"secret": record.secret, "commitment": record.commitment,
                               "candidate_hash": record.candidate_hash, "numbers": numbers,
                               "witnesses": [w.user_id for w in record.witnesses]})
    record.effect = _KINDS[record.kind].handler(record, actor)
    return record


def _bearing(record: Draw) -> dict[str, Any]:
    """What the draw is for, outside the candidate hash: the bureau (who manages and reads it), what it is about
    (``context``) and what its effect acts on (``params``: the panel's submission, the committee's procurement).
    Recorded in the audit events, so that a row rewritten to seat its result elsewhere fails ``verify``."""
    return {"bureau_id": record.bureau_id, "context": [record.context_type, record.context_id],
            "params": dict(record.params or {})}


def _performed(record: Draw, actor: User | None, extra: dict[str, Any]) -> None:
    eligible = eligible_ids(record)
    audit.record(
        "draw.performed", record, actor=actor, bureau_id=record.bureau_id,
        summary=f"随机抽取：{record.purpose}（{len(eligible)} 选 {record.k}）"
        + (f"；重抽原因：{record.redraw_reason}" if record.redraw_of_id else ""),
        # Everything needed to re-run the draw, so the draw row can be checked against its audit event.
        payload={"seed": record.seed, "algorithm": record.algorithm, "result": record.result_ids, "k": record.k,
                 "candidates": record.candidate_ids, "exclusions": record.exclusions,
                 "excluded": len(record.exclusions), "redraw_of": record.redraw_of_id, "kind": record.kind,
                 **_bearing(record), **extra},
    )


def derive(parent: Draw, kind: str, purpose: str,
           candidates: Mapping[int, str] | Iterable[tuple[int, str]] | Iterable[int], k: int,
           exclusions: Mapping[int, Sequence[str]] | None = None, *, actor: User | None = None,
           context: tuple[str, int] | None = None) -> Draw:
    """A draw made while ``parent`` is being revealed, for what the parent's result decides (the inspectors of
    each sampled engagement). Its seed is sha256("<parent seed>|<candidate hash>"): fixed once the parent's
    is, so it is as unsteerable as the parent. Drawn at once; no handler runs (the caller uses the result)."""
    if parent.status != DrawStatus.DRAWN or parent.seed is None:
        raise DomainError("只能在已揭晓的抽取中派生抽取。")
    named = _names(candidates)
    exclusions, candidate_ids, eligible = _candidate_list(named, exclusions, k)
    record = Draw(
        purpose=purpose[:200], kind=kind, status=DrawStatus.DRAWN,
        context_type=context[0] if context else None, context_id=context[1] if context else None,
        bureau_id=parent.bureau_id, candidate_ids=candidate_ids,
        candidate_names={str(i): named.get(i, f"编号 {i}") for i in candidate_ids},
        exclusions=[{"id": i, "reasons": exclusions[i]} for i in sorted(exclusions)],
        k=k, algorithm=ALGORITHM, derived_from_id=parent.id, params={},
        created_by_id=actor.id if actor else None, drawn_by_id=actor.id if actor else None, drawn_at=utcnow(),
    )
    record.candidate_hash = sha256(canonical(record))
    record.seed = sha256(f"{parent.seed}|{record.candidate_hash}")
    record.result_ids = _run(ALGORITHM, record.seed, eligible, k)
    db.session.add(record)
    db.session.flush()
    _performed(record, actor, {"candidate_hash": record.candidate_hash, "derived_from": parent.id})
    return record


# --- the helper for tests and the demo ------------------------------------------------------------------

def _default_operator(record: Draw) -> Optional[User]:
    if record.created_by is not None and record.created_by.role in BUREAU_SIDE:
        return record.created_by
    return db.session.execute(sa.select(User).where(
        User.bureau_id == record.bureau_id, User.role.in_(BUREAU_SIDE), User.is_enabled.is_(True))
        .order_by(User.id)).scalars().first()


def run_witnessed(record: Any, *, operator: User | None = None, witnesses: Sequence[User] = (),
                  numbers: Sequence[Any] = ()) -> Any:
    """Announce → witnesses' numbers → reveal in one go, for tests and the demo (the real thing happens on the
    draw page, each witness signed in as themselves). Names ``witnesses`` (default: the draw's named ones, or
    the first of ``witness_candidates``: of the draw's bureau, else one above it), enters ``numbers`` (default:
    random), reveals as ``operator`` and returns what the kind's handler returned. Anything that is not a draw
    (None, an award made without a tie) passes through unchanged, so a caller's result can be wrapped as is."""
    if not isinstance(record, Draw):
        return record
    if record.status == DrawStatus.DRAWN:
        return getattr(record, "effect", None)
    operator = operator or _default_operator(record)
    if witnesses or not record.witnesses:
        if not witnesses:  # someone of the draw's bureau, else of a bureau above it
            pick = next(iter(witness_candidates(record, operator)), None)
            if pick is None:
                raise DomainError("找不到可担任监督人的账号。")
            witnesses = [pick]
        name_witnesses(record, witnesses, operator, check=False, notify=False)
    for n, w in enumerate(record.witnesses):
        if w.number is None:
            # token_hex, not randbelow: the demo seeds token_hex, so its draws come out the same each time
            value = numbers[n] if n < len(numbers) else int(secrets.token_hex(4), 16)
            enter_number(record, w.user, value)
    reveal(record, operator, check=False)
    return record.effect


def withdraw(record: Draw, reason: str, actor: User | None) -> None:
    """Withdraw an announced draw whose basis is gone before its reveal — a tie-break whose committee lost a
    member: the ranking it was announced on no longer stands, and its reveal would be refused for ever. Nobody
    learns what it would have drawn: the result is never computed and the secret never shown. The reason is
    recorded in the audit log (the draw page shows it); a new draw is announced if the new facts need one."""
    _hold(record)
    moved = db.session.execute(sa.update(Draw).where(Draw.id == record.id, Draw.status == DrawStatus.ANNOUNCED)
                               .values(status=DrawStatus.WITHDRAWN).execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        raise Conflict("该抽取已经揭晓或撤销，不能再撤销。")
    record.status = DrawStatus.WITHDRAWN
    audit.record("draw.withdrawn", record, actor=actor, bureau_id=record.bureau_id,
                 summary=f"随机抽取撤销（未揭晓）：{record.purpose}；原因：{reason}", payload={"reason": reason})


def withdrawal_reason(record: Draw) -> Optional[str]:
    event = _event(record, "draw.withdrawn") if record.status == DrawStatus.WITHDRAWN else None
    return (event.payload or {}).get("reason") if event is not None else None


def pending(bureau_ids: Iterable[int] | None = None) -> sa.Select:
    """Announced draws still waiting for their witnesses or their reveal."""
    stmt = sa.select(Draw).where(Draw.status == DrawStatus.ANNOUNCED)
    if bureau_ids is not None:
        stmt = stmt.where(Draw.bureau_id.in_(list(bureau_ids)))
    return stmt.order_by(Draw.id)


# --- verification -----------------------------------------------------------------------------------

@dataclass
class DrawCheck:
    """``ok`` only when the recorded result re-runs from the recorded seed, the seed follows from the revealed
    secret, the candidate hash and the witnesses' numbers, the secret matches the commitment published at the
    announcement, the frozen list matches its hash, AND the draw row still says what the audit events written
    at the time say (a replaced seed with a matching result re-runs fine; it does not match the event)."""

    ok: bool
    recorded: list[int]
    recomputed: list[int]
    rerun_ok: bool = True
    event_id: int | None = None
    mismatches: list[str] = field(default_factory=list)  # in Chinese
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


def _event(record: Draw, action: str):
    return next((e for e in audit.history("draw", record.id) if e.action == action), None)


def _compare(event, fields, mismatches: list[str], notes: list[str]) -> None:
    if audit.event_digest(event) != event.hash:
        mismatches.append(f"记录此次抽取的审计事件 #{event.id} 本身被改动过（哈希不符）。")
    payload = event.payload or {}
    missing = []
    for key, label, value in fields:
        if key not in payload:
            missing.append(label)
            continue
        if payload[key] != value:
            mismatches.append(f"{label}与审计事件 #{event.id} 记录的不同（{_difference(key, value, payload[key])}）。")
    if missing:
        notes.append(f"审计事件 #{event.id} 为旧格式，未记录{'、'.join(missing)}，这几项无法对照。")


def _compare_with_event(record: Draw) -> tuple[int | None, list[str], list[str]]:
    mismatches: list[str] = []
    notes: list[str] = []
    announced = None
    base = [("algorithm", "算法版本", record.algorithm), ("k", "抽取人数", record.k),
            ("candidates", "候选名单", list(record.candidate_ids)), ("exclusions", "排除及原因", list(record.exclusions)),
            ("redraw_of", "重抽来源", record.redraw_of_id)]
    current = _bearing(record)
    bearing = [("bureau_id", "所属财政局", current["bureau_id"]), ("context", "抽取事由", current["context"]),
               ("params", "抽取用途参数", current["params"])]
    if not record.legacy:
        announced = _event(record, "draw.announced")
        if announced is None:
            mismatches.append(f"找不到公告此次抽取的审计事件（draw.announced，抽取 #{record.id}）。")
        else:
            # the kind too: it decides who may read the draw (a panel's is confidential until the review ends)
            _compare(announced, base + bearing + [("kind", "抽取类型", record.kind), ("commitment", "承诺值", record.commitment),
                                                  ("candidate_hash", "候选名单哈希", record.candidate_hash)], mismatches, notes)
    elif record.derived_from_id is None and _event(record, "draw.announced") is not None:
        # A draw made before witnessed draws has no announcement; one that has was announced with a commitment,
        # so a record without one has been changed to pass as old (skipping the witnesses' checks).
        mismatches.append("记录中没有承诺值，但审计日志表明此次抽取公告时已固定承诺值：记录已被改动。")
    event = _event(record, "draw.performed")
    withdrawn = _event(record, "draw.withdrawn")
    if record.status == DrawStatus.WITHDRAWN and withdrawn is None:
        mismatches.append("记录显示已撤销，但找不到撤销此次抽取的审计事件（draw.withdrawn）：记录已被改动。")
    if record.status == DrawStatus.ANNOUNCED and withdrawn is not None:  # set back to be revealed after all
        mismatches.append(f"记录显示待揭晓，但审计事件 #{withdrawn.id} 表明此次抽取已经撤销：记录已被改动。")
    if record.status != DrawStatus.DRAWN:
        if event is not None:  # revealed once: a row set back to "announced" would be revealed (and acted on) again
            mismatches.append(f"记录显示尚未揭晓，但审计事件 #{event.id} 表明此次抽取已经揭晓：记录已被改动。")
        return (announced.id if announced is not None else None), mismatches, notes
    if event is None:
        return None, mismatches + [f"找不到记录此次抽取的审计事件（draw.performed，抽取 #{record.id}）。"], notes
    fields = base + [("seed", "种子", record.seed), ("result", "抽取结果", list(record.result_ids))]
    derived = bearing + [("kind", "抽取类型", record.kind), ("candidate_hash", "候选名单哈希", record.candidate_hash),
                         ("derived_from", "派生来源", record.derived_from_id)]
    witnessed = [("secret", "秘密值", record.secret), ("commitment", "承诺值", record.commitment),
                 ("candidate_hash", "候选名单哈希", record.candidate_hash),
                 ("numbers", "监督人数字", [w.number for w in record.witnesses]),
                 ("witnesses", "监督人", [w.user_id for w in record.witnesses])]
    # What the row claims decides what must be recorded (a derived draw has no announcement: its performed event
    # says all); whatever the event recorded is compared whatever the row claims now, so a derived draw cut loose
    # from its parent, or a witnessed one stripped of its commitment, cannot pass as a draw of another sort.
    required = derived if record.derived_from_id is not None else witnessed if record.commitment is not None else []
    payload = event.payload or {}
    seen = {key for key, _, _ in fields + required}
    for item in derived + witnessed:
        if item[0] not in seen and item[0] in payload:
            required.append(item)
            seen.add(item[0])
    _compare(event, fields + required, mismatches, notes)
    return event.id, mismatches, notes


def hashed(record: Draw) -> bool:
    """The record's candidate list was frozen by a hash: every draw announced with a commitment, and every
    derived draw (its seed is taken of the hash); only draws made before witnessed draws have none."""
    return not record.legacy or record.derived_from_id is not None


def verify(record: Draw) -> DrawCheck:
    event_id, mismatches, notes = _compare_with_event(record)
    if (hashed(record) or record.candidate_hash is not None) and record.candidate_hash != sha256(canonical(record)):
        mismatches.insert(0, "候选名单（含姓名、排除及原因）与公告时的候选名单哈希不符。")
    if record.commitment is not None and record.secret is not None and sha256(record.secret) != record.commitment:
        mismatches.insert(0, "揭晓的秘密值与公告时的承诺值不符。")
    if record.status != DrawStatus.DRAWN:
        return DrawCheck(ok=not mismatches, recorded=[], recomputed=[], rerun_ok=True, event_id=event_id,
                         mismatches=mismatches, notes=notes + [
                             "已撤销，未揭晓：已核对承诺值与候选名单哈希。" if record.status == DrawStatus.WITHDRAWN
                             else "尚未揭晓：已核对承诺值与候选名单哈希。"])
    if record.derived_from_id is not None:
        parent = record.derived_from
        if parent is None or parent.seed is None or record.seed != sha256(f"{parent.seed}|{record.candidate_hash}"):
            mismatches.insert(0, f"种子不是由来源抽取 #{record.derived_from_id} 的种子与候选名单哈希计算得出。")
        elif not verify(parent).ok:
            mismatches.insert(0, f"来源抽取 #{record.derived_from_id} 核验不通过。")
    elif record.commitment is not None:
        numbers = [w.number for w in record.witnesses]
        if not record.witnesses or any(n is None for n in numbers):
            mismatches.insert(0, "监督人数字不全。")
        elif record.seed != seed_of(record.secret or "", record.candidate_hash or "", numbers):
            mismatches.insert(0, "种子不是由秘密值、候选名单哈希和监督人数字计算得出。")
    try:
        recomputed = _run(record.algorithm, record.seed or "", eligible_ids(record), record.k)
    except DomainError as exc:  # an algorithm name nobody knows: nothing to re-run
        recomputed = []
        mismatches.insert(0, exc.message)
    rerun_ok = recomputed == list(record.result_ids)
    return DrawCheck(ok=rerun_ok and not mismatches, recorded=list(record.result_ids), recomputed=recomputed,
                     rerun_ok=rerun_ok, event_id=event_id, mismatches=mismatches, notes=notes)


def draw(*args, **kwargs):
    raise RuntimeError("draws.draw() was replaced by announce → witnesses' numbers → reveal (issue 14).")
