"""Audit anchoring: checkpoints of the audit chain's head that leave the database.

The hash chain (core.audit) shows that no stored event was changed *without* recomputing every later hash.
Whoever can write to the database can recompute them, or simply delete the newest events, and the chain
still verifies. So the head of the chain is noted in a checkpoint — time (UTC), last event id, head hash,
event count and a few intermediate hashes ("anchors") — and the checkpoint is written out of the database:
to the application log, and as a small signed JSON file that upper bureaus and auditors download and keep.
``verify`` checks the chain against any number of checkpoints: an event at or before a checkpoint's last
event that no longer hashes to what the checkpoint holds, a missing event or a different count is reported
with the first event where it shows.

On the signature (HMAC-SHA256, with ``AUDIT_CHECKPOINT_KEY`` or a key derived from ``SECRET_KEY``): an
HMAC kept in the same database as the chain does not anchor anything by itself — whoever holds the key can
re-sign, and a database writer without it can still delete the newest checkpoint rows. What it does: a
writer *without* the key cannot edit the stored checkpoints to match a rewritten chain (plain
``audit verify`` checks them too), and the platform recognises its own files, so a fabricated "checkpoint"
cannot make an intact chain look tampered. The anchor itself is the copy somebody else keeps.

A checkpoint is taken daily by the worker (``daily_checkpoint``), on demand by an admin (the checkpoints
page) and from the command line (``flask evalhub audit checkpoint``). A checkpoint is refused while the
chain is broken: it must never bless a tampered log.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from flask import current_app

from evalhub.core import audit, jobs, permissions
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import AuditCheckpoint, AuditEvent, User
from evalhub.core.timeutil import BEIJING, beijing_today, format_beijing, utcnow
from evalhub.extensions import db

FORMAT = "evalhub-audit-checkpoint/1"
# The fields the signature covers (the explanatory note beside them may change wording freely).
SIGNED_FIELDS = ("format", "checkpoint_id", "created_at", "last_event_id", "head_hash", "event_count",
                 "anchors", "key_id")
SOURCES = {"daily": "每日自动", "manual": "管理员生成", "cli": "命令行生成"}
ANCHOR_COUNT = 16
NOTE = ("本文件记录 evalhub 审计链在该时刻的头部哈希。请保存在本系统之外（上级财政局、审计机关），"
        "日后可用 `flask evalhub audit verify --checkpoint 本文件` 核验：此前的任何事件被改写或删除都会被发现。")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

log = logging.getLogger("evalhub.audit")
# Propagates to the app's logger ("evalhub"), whose handler writes it out; checkpoints are routine
# information, so this logger's own level lets them through whatever the root level is.
log.setLevel(logging.INFO)


class ChainBroken(Conflict):
    code = "audit_chain_broken"


class CheckpointFileError(ValidationFailed):
    code = "bad_checkpoint_file"


# --- keys and signatures ---------------------------------------------------------------------------

def _key() -> bytes:
    configured = current_app.config.get("AUDIT_CHECKPOINT_KEY")
    if configured:
        return configured.encode("utf-8") if isinstance(configured, str) else bytes(configured)
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    return hmac.new(secret, b"evalhub audit checkpoint v1", hashlib.sha256).digest()


def key_id(key: bytes | None = None) -> str:
    """A short public fingerprint of the signing key: tells "signed with another key" from "altered"."""
    return hashlib.sha256(b"evalhub-audit-checkpoint-key:" + (key or _key())).hexdigest()[:12]


def _canonical(doc: dict) -> bytes:
    return json.dumps({k: doc[k] for k in SIGNED_FIELDS}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def _sign(doc: dict) -> str:
    return hmac.new(_key(), _canonical(doc), hashlib.sha256).hexdigest()


def _utc_iso(value: datetime) -> str:
    return value.isoformat(timespec="microseconds") + "Z"


def document(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """The checkpoint as it leaves the database (the file, the log line)."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "checkpoint_id": checkpoint.id,
        "created_at": _utc_iso(checkpoint.created_at),
        "last_event_id": checkpoint.last_event_id,
        "head_hash": checkpoint.head_hash,
        "event_count": checkpoint.event_count,
        "anchors": [[int(i), str(h)] for i, h in checkpoint.anchors],
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }
    doc["note"] = NOTE
    return doc


def dumps(doc: dict) -> str:
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    # One anchor a line: [id, "hash"].
    return re.sub(r'\[\s+(\d+),\s+("[0-9a-f]{64}")\s+\]', r"[\1, \2]", text) + "\n"


def filename(checkpoint: AuditCheckpoint) -> str:
    return f"evalhub-audit-checkpoint-{checkpoint.created_at:%Y%m%dT%H%M%S}Z-{checkpoint.id}.json"


@dataclass
class Checkpoint:
    """A checkpoint read back, from a file (or log line) or from the table, ready to check against."""

    label: str
    checkpoint_id: int
    created_at: str
    last_event_id: int
    head_hash: str
    event_count: int
    anchors: list[tuple[int, str]]
    key_id: str
    signature: str

    def signed_body(self) -> dict:
        return {"format": FORMAT, "checkpoint_id": self.checkpoint_id, "created_at": self.created_at,
                "last_event_id": self.last_event_id, "head_hash": self.head_hash,
                "event_count": self.event_count, "anchors": [[i, h] for i, h in self.anchors],
                "key_id": self.key_id}

    def signature_status(self) -> str:
        """``ok``; ``other_key`` (signed with a key this installation does not hold); ``bad`` (altered)."""
        if self.key_id != key_id():
            return "other_key"
        expected = hmac.new(_key(), _canonical(self.signed_body()), hashlib.sha256).hexdigest()
        return "ok" if hmac.compare_digest(expected, self.signature) else "bad"

    @property
    def when(self) -> str:
        try:
            moment = datetime.fromisoformat(self.created_at.rstrip("Z"))
        except ValueError:
            return self.created_at
        return "北京时间 " + format_beijing(moment, "%Y-%m-%d %H:%M:%S")


def from_row(checkpoint: AuditCheckpoint) -> Checkpoint:
    try:
        cp = _from_doc(document(checkpoint), "")
    except Exception:  # a row altered into nonsense: it can only fail its signature
        cp = Checkpoint("", checkpoint.id, str(checkpoint.created_at), int(checkpoint.last_event_id or 0),
                        str(checkpoint.head_hash), int(checkpoint.event_count or 0), [], str(checkpoint.key_id),
                        signature="")
    cp.label = f"库内检查点 #{checkpoint.id}（{cp.when}，截至事件 #{checkpoint.last_event_id}）"
    return cp


def parse(text: str, name: str = "检查点文件") -> Checkpoint:
    """Read a downloaded file — or a log line holding one — and check its shape (not yet its signature)."""
    text = (text or "").strip()
    if not text.startswith("{") and "{" in text:  # a line cut from the application log
        text = text[text.index("{"): text.rindex("}") + 1]
    try:
        doc = json.loads(text)
    except ValueError:
        raise CheckpointFileError(f"{name} 不是有效的 JSON 检查点文件。") from None
    cp = _from_doc(doc, name)
    cp.label = f"检查点文件 {name}（{cp.when}，截至事件 #{cp.last_event_id}）"
    return cp


def _from_doc(doc: Any, name: str) -> Checkpoint:
    def bad(what: str) -> CheckpointFileError:
        return CheckpointFileError(f"{name or '检查点'} 格式无效：{what}。")

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(f"不是 {FORMAT} 格式")
    for key in ("checkpoint_id", "last_event_id", "event_count"):
        value = doc.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad(f"{key} 应为非负整数")
    for key in ("head_hash",):
        if not isinstance(doc.get(key), str) or not _HEX64.match(doc[key]):
            raise bad(f"{key} 应为 64 位十六进制哈希")
    for key in ("created_at", "key_id", "signature"):
        if not isinstance(doc.get(key), str):
            raise bad(f"缺少 {key}")
    anchors = doc.get("anchors")
    if not isinstance(anchors, list):
        raise bad("anchors 应为列表")
    pairs: list[tuple[int, str]] = []
    for item in anchors:
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int) or isinstance(item[0], bool)
                or not isinstance(item[1], str) or not _HEX64.match(item[1])
                or not 0 < item[0] < doc["last_event_id"]):
            raise bad("anchors 中有无效的项")
        pairs.append((item[0], item[1]))
    return Checkpoint(label=name, checkpoint_id=doc["checkpoint_id"], created_at=doc["created_at"],
                      last_event_id=doc["last_event_id"], head_hash=doc["head_hash"],
                      event_count=doc["event_count"], anchors=pairs, key_id=doc["key_id"],
                      signature=doc["signature"])


# --- verification ----------------------------------------------------------------------------------

@dataclass
class AnchorReport:
    """Like audit.ChainReport (ok, checked, broken_id, problem), plus what the checkpoints added."""

    ok: bool
    checked: int
    broken_id: int | None = None
    problem: str = ""
    checkpoints: int = 0  # checkpoints the chain was checked against
    by_checkpoint: bool = False  # the chain verifies on its own; a checkpoint shows the rewrite or deletion
    problems: list[str] = field(default_factory=list)  # every problem, the chain's first
    notes: list[str] = field(default_factory=list)


def verify(checkpoints: Sequence[Checkpoint] = (), batch_size: int = 2000) -> AnchorReport:
    """Walk the whole chain once: every link and content hash (as audit.verify_chain), and every
    checkpoint's anchors, head and count. Reports the first event where anything shows."""
    expected: dict[int, list[tuple[str, Checkpoint]]] = {}
    counts: dict[int, list[Checkpoint]] = {}
    usable = 0
    for cp in checkpoints:
        if cp.last_event_id == 0:  # taken on an empty chain: holds nothing
            continue
        usable += 1
        for event_id, digest in cp.anchors:
            expected.setdefault(event_id, []).append((digest, cp))
        expected.setdefault(cp.last_event_id, []).append((cp.head_hash, cp))
        counts.setdefault(cp.last_event_id, []).append(cp)
    wanted = sorted(expected)

    def fail(event_id: int | None, problem: str, checked: int, by_checkpoint: bool = True) -> AnchorReport:
        return AnchorReport(False, checked, event_id, problem, usable, by_checkpoint, [problem])

    def missing(event_id: int, last_seen: int, checked: int) -> AnchorReport:
        holders = "、".join(cp.label for _, cp in expected[event_id])
        where = f"现存最后一个事件为 #{last_seen}" if last_seen else "审计链已为空"
        what = f"事件 #{last_seen} 之后的事件被删除" if event_id > last_seen else "该事件被删除"
        return fail(event_id, f"事件 #{event_id} 已不存在（{where}）：{holders}记录了它，{what}。", checked)

    pointer = 0
    confirmed = 0  # the last event a checkpoint vouched for
    expected_prev = audit.GENESIS_HASH
    checked = 0
    last_id = 0
    for event in audit.iter_events(batch_size):
        if pointer < len(wanted) and wanted[pointer] < event.id:
            return missing(wanted[pointer], last_id, checked)
        problem = audit.link_problem(event, expected_prev)
        if problem:
            return fail(event.id, problem, checked, by_checkpoint=False)
        checked += 1
        if pointer < len(wanted) and wanted[pointer] == event.id:
            for digest, cp in expected[event.id]:
                if event.hash != digest:
                    return fail(event.id, (
                        f"事件 #{event.id} 的哈希与{cp.label}记录的不符："
                        f"{f'事件 #{confirmed} 之后、' if confirmed else ''}#{event.id} 及之前有事件被改写或删除，"
                        f"其后的哈希被重新计算过（仅凭库内的哈希链发现不了）。"), checked)
            for cp in counts.get(event.id, []):
                if checked != cp.event_count:
                    return fail(event.id, (
                        f"截至事件 #{event.id}，{cp.label}记录了 {cp.event_count} 个事件，现有 {checked} 个："
                        f"有事件被删除或插入。"), checked)
            confirmed = event.id
            pointer += 1
        expected_prev = event.hash
        last_id = event.id
    if pointer < len(wanted):
        return missing(wanted[pointer], last_id, checked)
    return AnchorReport(True, checked, checkpoints=usable)


def stored(limit: int | None = None) -> list[AuditCheckpoint]:
    stmt = sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    return list(db.session.execute(stmt).scalars())


def verify_all(files: Sequence[Checkpoint] = (), *, include_stored: bool = True,
               ignore_signature: bool = False) -> AnchorReport:
    """The chain against the given checkpoint files and (by default) the checkpoints stored in the table.

    A file signed with another key is refused unless ``ignore_signature`` (e.g. after a key change: its
    content still counts, it is the auditor's copy); an altered file is refused. A stored checkpoint signed
    with another key is skipped with a note; an altered one is a problem (someone changed it to match)."""
    usable: list[Checkpoint] = []
    problems: list[str] = []
    notes: list[str] = []
    for cp in files:
        status = cp.signature_status()
        if status == "ok":
            usable.append(cp)
        elif status == "other_key" and ignore_signature:
            usable.append(cp)
            notes.append(f"{cp.label} 由另一签名密钥（{cp.key_id}）签发，按 --ignore-signature 仅核对其内容。")
        elif status == "other_key":
            problems.append(f"{cp.label} 由另一签名密钥签发（文件 {cp.key_id}，本系统 {key_id()}）："
                            f"并非本系统签发，或签名密钥已更换；确认后可加 --ignore-signature 按内容核对。")
        elif ignore_signature:
            usable.append(cp)
            notes.append(f"{cp.label} 的签名无效，按 --ignore-signature 仅核对其内容。")
        else:
            problems.append(f"{cp.label} 的签名无效：文件被改动过，或不是本系统签发的。")
    if include_stored:
        for row in stored():
            cp = from_row(row)
            status = cp.signature_status()
            if status == "ok":
                usable.append(cp)
            elif status == "other_key":
                notes.append(f"{cp.label} 由另一签名密钥签发，未用于核对。")
            else:
                problems.append(f"{cp.label} 的签名无效：库内的检查点记录被改动过。")
    report = verify(usable)
    report.notes = notes + report.notes
    report.problems = report.problems + problems
    if problems:
        report.ok = False
        report.problem = report.problem or problems[0]
    return report


# --- taking a checkpoint ---------------------------------------------------------------------------

@dataclass
class _Head:
    last_id: int = 0
    hash: str = audit.GENESIS_HASH
    count: int = 0


def _walk_from(start: _Head, batch_size: int = 2000) -> _Head:
    """Verify the events after ``start`` (links and contents); raise ChainBroken at the first bad one."""
    head = _Head(start.last_id, start.hash, start.count)
    for event in audit.iter_events(batch_size, after_id=start.last_id):
        if event.prev_hash != head.hash:
            raise ChainBroken(f"审计链断裂：事件 #{event.id} 的前序哈希与上一事件不符，不能生成检查点。")
        if audit.event_digest(event) != event.hash:
            raise ChainBroken(f"审计链断裂：事件 #{event.id} 的内容已被改动，不能生成检查点。")
        head = _Head(event.id, event.hash, head.count + 1)
    return head


def _trusted_start() -> _Head:
    """Where to start verifying: the newest stored checkpoint with a good signature, confirmed against the
    chain (its last event, hash and count) — or the beginning."""
    for row in stored(limit=20):
        cp = from_row(row)
        status = cp.signature_status()
        if status == "other_key":  # signed before a key change: cannot vouch for anything now
            continue
        if status == "bad":
            raise ChainBroken(f"{cp.label}的签名无效（库内的检查点记录被改动过），不能生成检查点；"
                              f"请用 flask evalhub audit verify --checkpoint 核查。")
        if cp.last_event_id == 0:
            return _Head()
        event_hash = db.session.execute(
            sa.select(AuditEvent.hash).where(AuditEvent.id == cp.last_event_id)).scalar_one_or_none()
        count = db.session.execute(
            sa.select(sa.func.count(AuditEvent.id)).where(AuditEvent.id <= cp.last_event_id)).scalar_one()
        if event_hash != cp.head_hash or count != cp.event_count:
            raise ChainBroken(f"审计链与{cp.label}不符（事件被改写或删除），不能生成检查点；"
                              f"请用 flask evalhub audit verify --checkpoint 核查。")
        return _Head(cp.last_event_id, cp.head_hash, cp.event_count)
    return _Head()


def _anchors(last_id: int) -> list[list[Any]]:
    """Up to ANCHOR_COUNT events spread over the chain before the head: they narrow down where a rewrite
    happened."""
    out: list[list[Any]] = []
    seen: set[int] = set()
    # Spread over the ids the chain really has (they need not start at 1: a restored or trimmed database).
    first_id = db.session.execute(sa.select(sa.func.min(AuditEvent.id))).scalar() or 1
    for j in range(1, ANCHOR_COUNT + 1):
        target = first_id + (last_id - first_id) * j // (ANCHOR_COUNT + 1)
        row = db.session.execute(
            sa.select(AuditEvent.id, AuditEvent.hash)
            .where(AuditEvent.id >= target, AuditEvent.id < last_id).order_by(AuditEvent.id).limit(1)
        ).first()
        if row is not None and row.id not in seen:
            seen.add(row.id)
            out.append([row.id, row.hash])
    return out


def _today_start_utc() -> datetime:
    start = datetime.combine(beijing_today(), time(0), BEIJING)
    return start.astimezone(timezone.utc).replace(tzinfo=None)


def _todays_daily() -> AuditCheckpoint | None:
    return db.session.execute(
        sa.select(AuditCheckpoint).where(AuditCheckpoint.source == "daily",
                                         AuditCheckpoint.created_at >= _today_start_utc())
        .order_by(AuditCheckpoint.id.desc()).limit(1)
    ).scalar_one_or_none()


def create_checkpoint(*, source: str, actor: User | None = None) -> tuple[AuditCheckpoint, bool]:
    """Verify the chain since the last trusted checkpoint, note its head, sign, log and audit it.

    Returns (checkpoint, created). Nothing new since the last checkpoint (a double click, a quiet day):
    that checkpoint is returned, not a copy. A daily checkpoint is taken once per (Beijing) day. Raises
    ChainBroken when the chain does not verify. Flushes; the caller commits. A person (``actor``) must be one who
    may take checkpoints ("audit.checkpoints"), on every path; None is the system (the CLI, the daily task)."""
    if source not in SOURCES:
        raise ValueError(source)
    if actor is not None:
        permissions.require(actor, "audit.checkpoints")
    if source == "daily" and (existing := _todays_daily()) is not None:
        return existing, False
    # The long walk happens without the lock; then, holding it, only what was appended meanwhile.
    head = _walk_from(_trusted_start())
    audit.lock_chain()
    if source == "daily" and (existing := _todays_daily()) is not None:
        return existing, False
    newest = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one_or_none()
    if newest is not None and newest.action == "audit.checkpoint" and newest.object_id is not None:
        previous = db.session.get(AuditCheckpoint, newest.object_id)
        if previous is not None:
            _walk_from(head)  # the events since the walk above (the checkpoint's own) verify too
            return previous, False
    head = _walk_from(head)
    checkpoint = AuditCheckpoint(
        created_at=utcnow(), source=source, last_event_id=head.last_id, head_hash=head.hash,
        event_count=head.count, anchors=_anchors(head.last_id), key_id=key_id(), signature="",
        created_by_id=actor.id if actor is not None else None,
    )
    db.session.add(checkpoint)
    db.session.flush()
    checkpoint.signature = _sign(document(checkpoint))
    db.session.flush()
    audit.record(
        "audit.checkpoint", checkpoint, actor=actor,
        summary=f"生成审计链检查点（{SOURCES[source]}）：截至事件 #{head.last_id}，共 {head.count} 个事件",
        payload={"last_event_id": head.last_id, "head_hash": head.hash, "event_count": head.count,
                 "key_id": checkpoint.key_id},
    )
    write_to_log(checkpoint)
    return checkpoint, True


def write_to_log(checkpoint: AuditCheckpoint) -> None:
    current_app.logger  # noqa: B018 — make sure Flask's handler sits on the "evalhub" logger
    doc = document(checkpoint)
    doc.pop("note")
    log.info("审计链检查点 %s", json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")))


@jobs.periodic("evalhub.audit_checkpoint", minute="52")
def daily_checkpoint() -> AuditCheckpoint | None:
    """The worker's hourly call; a checkpoint is taken at the first run of each Beijing day."""
    try:
        checkpoint, _ = create_checkpoint(source="daily")
    except ChainBroken as exc:
        db.session.rollback()
        log.error("每日审计链检查点未生成：%s", exc.message)
        return None
    return checkpoint


def signature_statuses(rows: Iterable[AuditCheckpoint]) -> dict[int, str]:
    return {row.id: from_row(row).signature_status() for row in rows}
