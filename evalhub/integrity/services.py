"""Collusion checks on a procurement's bids (投标文件一致性检查) and the committee's decision on each flag.

When the bids are opened (procurement's ``after_bids_opened``) every pair of valid bids is compared for the
signs 财政部令第87号 第三十七条 names: the same file, near-identical technical proposals (the screening
pipeline's masked sentence keys and character shingles), shared document properties, the same person on two
teams (matched by the roster's identity-number HMAC, never shown), identical prices or prices in a regular
pattern, and shared contact details in the registry. Scores may not be entered while a flag is undecided
(procurement's ``before_scoring``); the reasons for continuing despite a flag go into the award's record
(``award_note``). Only bureau users read flags: they name other bidders and quote their documents.
"""
from __future__ import annotations

import io
import re
import time
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import combinations
from typing import Any, Optional
from xml.etree import ElementTree

import numpy as np
import sqlalchemy as sa

from evalhub.core import audit, files, permissions
from evalhub.core.batches import batches
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.inputs import check_text
from evalhub.core.models import User
from evalhub.core.settings import SettingDef, get_setting, register
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.integrity import redflags  # noqa: F401  (registers the red-flag job and settings)
from evalhub.integrity.models import CLAUSE, CollusionFlag, CollusionRule, FlagDecision, IntegrityCheck
from evalhub.procurement import ocds
from evalhub.procurement import services as procurement_services
from evalhub.procurement.models import Bid, BidStatus, Procurement, ProcurementStatus
from evalhub.screening import textproc

register(
    SettingDef("integrity.scoring_gate", "一致性检查提示未经评审委员会处理前不得评分（1 是，0 否）", "采购诚信", 1,
               minimum=0, maximum=1, help="财政部令第87号 第三十七条：有串通投标情形的投标无效，由评审委员会认定。"),
    SettingDef("integrity.text_share", "技术方案文本相同句子占比提示线（%）", "采购诚信", 30, minimum=5, maximum=100,
               help="两份技术方案（隐去各自机构名称、数字归一后）相同句子占较短一份的比例达到该值即提示。"),
    SettingDef("integrity.price_tolerance", "报价规律性差异容差（‰）", "采购诚信", 5, minimum=0, maximum=100,
               help="三家及以上报价依次相差的金额（或比例）彼此相差不超过该千分比，视为规律性差异。"),
)

# Values a word processor writes for everyone (its own name, the default template, a default user): equal
# values say nothing about who prepared the document.
GENERIC_METADATA = {"", "normal", "normal.dotm", "normal.dot", "normal.wpt", "python-docx", "microsoft office user",
                    "microsoft office 用户", "微软用户", "user", "admin", "administrator", "microsoft word", "wps office",
                    "un-named", "unknown", "author"}
METADATA_LABELS = {"creator": "作者", "last_modified_by": "最后修改者", "company": "单位", "template": "模板",
                   "created": "创建时间", "pdf_author": "PDF 作者", "pdf_producer": "PDF 生成程序",
                   "pdf_creation": "PDF 创建时间"}
PASSAGES_SHOWN = 8
# A handful of equal sentences is the procurement documents' own wording (the response format, the law quoted);
# a proposal copied from another bidder shares pages of them.
MIN_SHARED_SENTENCES = 10


# === what is compared ===============================================================================

@dataclass
class Person:
    digest: str  # the roster's identity-number HMAC; never shown
    name: str
    role: str


@dataclass
class BidDoc:
    """One bid as the checks see it (built from the database, or directly by the bench and tests)."""

    bid_id: int
    firm_id: int
    firm_name: str
    price: Decimal
    sha256: Optional[str] = None
    text: Optional[str] = None
    metadata: dict[str, str] = field(default_factory=dict)
    people: list[Person] = field(default_factory=list)
    contacts: dict[str, str] = field(default_factory=dict)  # phone, email, address (normalised)


@dataclass
class Found:
    rule: CollusionRule
    bids: tuple[int, ...]
    summary: str
    evidence: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.rule.value}:{'-'.join(map(str, sorted(self.bids)))}"


def _xml_values(data: bytes, part: str) -> dict[str, str]:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return {}
    values = {}
    for element in root:
        name = element.tag.rsplit("}", 1)[-1]
        if element.text and element.text.strip():
            values[name] = element.text.strip()[:200]
    return values


def docx_metadata(data: bytes) -> dict[str, str]:
    """The core properties python-docx reads (docProps/core.xml: author, last modified by, created) and the
    app properties (docProps/app.xml: company, template), read straight from the package: two small parts,
    not the whole document."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            names = set(package.namelist())
            core = _xml_values(package.read("docProps/core.xml"), "core") if "docProps/core.xml" in names else {}
            app = _xml_values(package.read("docProps/app.xml"), "app") if "docProps/app.xml" in names else {}
    except (zipfile.BadZipFile, KeyError, OSError):
        return {}
    found = {"creator": core.get("creator", ""), "last_modified_by": core.get("lastModifiedBy", ""),
             "created": core.get("created", ""), "company": app.get("Company", ""), "template": app.get("Template", "")}
    return {k: v for k, v in found.items() if v}


def pdf_metadata(data: bytes) -> dict[str, str]:
    import pdfplumber

    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            info = pdf.metadata or {}
    except Exception:  # a damaged PDF has no metadata to compare; the check goes on
        return {}
    found = {"pdf_author": info.get("Author"), "pdf_producer": info.get("Producer"), "pdf_creation": info.get("CreationDate")}
    return {k: str(v).strip()[:200] for k, v in found.items() if v and str(v).strip()}


_SPACE = re.compile(r"[\s\-－—()（）]+")


def _norm(value: Optional[str]) -> str:
    return _SPACE.sub("", (value or "").strip().lower())


_GENERIC = {_norm(v) for v in GENERIC_METADATA}


def bid_doc(bid: Bid) -> BidDoc:
    firm = bid.firm
    record = bid.technical_file
    metadata: dict[str, str] = {}
    if record is not None and record.kind in ("docx", "pdf"):
        try:
            data = files.read(record)
        except FileNotFoundError:
            data = b""
        metadata = docx_metadata(data) if record.kind == "docx" else pdf_metadata(data)
    people = [Person(m.staff.id_number_digest, m.staff.name, "项目负责人" if m.is_lead else "项目组成员") for m in bid.team]
    contacts = {"phone": _norm(firm.contact_phone), "email": _norm(firm.contact_email), "address": _norm(firm.address)}
    return BidDoc(bid.id, firm.id, firm.name, bid.price, record.sha256 if record else None,
                  record.text if record else None, metadata, people, {k: v for k, v in contacts.items() if v})


# === the comparisons ==================================================================================

@dataclass
class _Prepared:
    doc: BidDoc
    sentences: dict[int, str]  # copy key → the bid's own sentence
    shingles: np.ndarray


# A copy passed off by swapping the Chinese full stop for a look-alike (．, ｡, or an ASCII dot after Chinese)
# still splits into the same sentences; a decimal point (a digit after it) is left alone.
_LOOKALIKE_STOP = re.compile(r"(?<=[\u4e00-\u9fff）”》])[.．｡](?!\d)")


def _prepare(doc: BidDoc) -> _Prepared:
    if not doc.text:
        return _Prepared(doc, {}, np.zeros(0, dtype=np.uint64))
    mask = textproc.NameMask([doc.firm_name])  # a proposal copied with the firm's name swapped still matches
    parsed = textproc.parse(_LOOKALIKE_STOP.sub("。", doc.text), (), [doc.firm_name])
    sentences: dict[int, str] = {}
    for s in parsed.copy_sentences:
        sentences.setdefault(s.key, s.text)
    return _Prepared(doc, sentences, np.unique(textproc.shingle_hashes(parsed.text, mask)))


def _text_flag(a: _Prepared, b: _Prepared, share_needed: float) -> Optional[Found]:
    if not a.sentences or not b.sentences:
        return None
    shared = a.sentences.keys() & b.sentences.keys()
    share = len(shared) / min(len(a.sentences), len(b.sentences))
    if share < share_needed or len(shared) < MIN_SHARED_SENTENCES:
        return None
    common = len(np.intersect1d(a.shingles, b.shingles, assume_unique=True)) if len(a.shingles) and len(b.shingles) else 0
    union = len(a.shingles) + len(b.shingles) - common
    jaccard = common / union if union else 0.0
    order = [k for k in a.sentences if k in shared][:PASSAGES_SHOWN]  # in the first bid's order
    passages = [{"a": a.sentences[k], "b": b.sentences[k]} for k in order]
    return Found(CollusionRule.SIMILAR_TEXT, (a.doc.bid_id, b.doc.bid_id),
                 f"{a.doc.firm_name}与{b.doc.firm_name}的技术方案有 {len(shared)} 句相同（占较短一份的 {share:.0%}），"
                 f"字符片段相似度 {jaccard:.0%}（已隐去各自机构名称、数字归一）",
                 {"shared_sentences": len(shared), "share": round(share, 4), "jaccard": round(jaccard, 4),
                  "sentences": [len(a.sentences), len(b.sentences)], "passages": passages,
                  "firms": [a.doc.firm_name, b.doc.firm_name]})


def _metadata_flag(a: BidDoc, b: BidDoc) -> Optional[Found]:
    shared = {k: v for k, v in a.metadata.items() if k in b.metadata and _norm(b.metadata[k]) == _norm(v)
              and _norm(v) not in _GENERIC}
    # A creation time or producer alone comes from a shared template or program; they count beside a name.
    if not set(shared) - {"created", "pdf_producer", "pdf_creation"}:
        return None
    fields = "、".join(f"{METADATA_LABELS[k]}“{v}”" for k, v in shared.items())
    return Found(CollusionRule.SAME_METADATA, (a.bid_id, b.bid_id),
                 f"{a.firm_name}与{b.firm_name}的投标文件属性相同：{fields}",
                 {"fields": [{"field": METADATA_LABELS[k], "value": v} for k, v in shared.items()],
                  "firms": [a.firm_name, b.firm_name]})


def _person_flag(a: BidDoc, b: BidDoc) -> Optional[Found]:
    theirs = {p.digest: p for p in b.people}
    matches = [(p, theirs[p.digest]) for p in a.people if p.digest in theirs]
    if not matches:
        return None
    names = "；".join(f"{a.firm_name}的{p.role}{p.name}与{b.firm_name}的{q.role}{q.name}为同一人（身份证号一致）"
                     for p, q in matches)
    return Found(CollusionRule.SAME_PERSON, (a.bid_id, b.bid_id), names,
                 {"people": [{"a": f"{p.name}（{p.role}）", "b": f"{q.name}（{q.role}）"} for p, q in matches],
                  "firms": [a.firm_name, b.firm_name]})


CONTACT_LABELS = {"phone": "联系电话", "email": "电子邮箱", "address": "地址"}


def _contact_flag(a: BidDoc, b: BidDoc) -> Optional[Found]:
    shared = [k for k, v in a.contacts.items() if v and b.contacts.get(k) == v]
    if not shared:
        return None
    return Found(CollusionRule.SHARED_CONTACT, (a.bid_id, b.bid_id),
                 f"{a.firm_name}与{b.firm_name}在机构库登记的{'、'.join(CONTACT_LABELS[k] for k in shared)}相同",
                 {"fields": [CONTACT_LABELS[k] for k in shared], "firms": [a.firm_name, b.firm_name]})


def _wan(value: Decimal) -> str:
    return f"{value / 10000:,.2f}"


def price_flags(docs: list[BidDoc], tolerance_permille: float) -> list[Found]:
    """Identical prices, and runs of three or more prices (in ascending order) that step by the same amount
    or the same ratio within the tolerance. Steps of whole 万元 among only three bids are left out: round
    bids make them by chance."""
    found: list[Found] = []
    groups: dict[Decimal, list[BidDoc]] = {}
    for d in docs:
        groups.setdefault(d.price, []).append(d)
    for price, same in groups.items():
        if len(same) >= 2:
            found.append(Found(CollusionRule.IDENTICAL_PRICE, tuple(d.bid_id for d in same),
                               f"{'、'.join(d.firm_name for d in same)}的报价均为 {_wan(price)} 万元",
                               {"price_wan": _wan(price), "firms": [d.firm_name for d in same]}))
    ordered = sorted({d.price: d for d in docs}.values(), key=lambda d: d.price)
    if len(ordered) < 3:
        return found
    tol = Decimal(str(tolerance_permille)) / 1000
    prices = [d.price for d in ordered]

    def run_ends(steps: list[Decimal]) -> list[tuple[int, int]]:
        runs, start = [], 0
        for i in range(1, len(steps) + 1):
            if i == len(steps) or abs(steps[i] - steps[start]) > tol * abs(steps[start]):
                if i - start >= 2:  # two equal steps: three prices
                    runs.append((start, i))
                start = i
        return runs

    diffs = [b - a for a, b in zip(prices, prices[1:])]
    ratios = [b / a for a, b in zip(prices, prices[1:])]
    seen: set[tuple[int, ...]] = set()
    for kind, steps in (("difference", diffs), ("ratio", [r - 1 for r in ratios])):
        for start, end in run_ends(steps):
            members = ordered[start:end + 1]
            ids = tuple(d.bid_id for d in members)
            step = diffs[start]
            # three bids stepping by whole 万元 every time are left out (round figures), by difference or ratio;
            # one whose other step is uneven within the tolerance is not
            if ids in seen or (len(members) == 3 and all(s % 10000 == 0 for s in diffs[start:end])):
                continue
            seen.add(ids)
            what = (f"依次相差约 {_wan(step)} 万元" if kind == "difference"
                    else f"依次相差约 {float(ratios[start]) - 1:.2%}")
            found.append(Found(CollusionRule.PRICE_PATTERN, ids,
                               f"{'、'.join(d.firm_name for d in members)}的报价（"
                               f"{'、'.join(_wan(d.price) for d in members)} 万元）{what}，呈规律性差异",
                               {"kind": kind, "prices_wan": [_wan(d.price) for d in members],
                                "firms": [d.firm_name for d in members], "tolerance_permille": tolerance_permille}))
    return found


def compare(docs: list[BidDoc], *, text_share: float = 0.3, tolerance_permille: float = 5) -> list[Found]:
    """Every pair of bids from different firms, every rule. Pure: the bench and the tests call it directly."""
    prepared = [_prepare(d) for d in docs]
    found: list[Found] = []
    for a, b in combinations(prepared, 2):
        if a.doc.firm_id == b.doc.firm_id:
            continue
        if a.doc.sha256 and a.doc.sha256 == b.doc.sha256:
            found.append(Found(CollusionRule.SAME_FILE, (a.doc.bid_id, b.doc.bid_id),
                               f"{a.doc.firm_name}与{b.doc.firm_name}上传的技术方案是同一文件（sha256 {a.doc.sha256[:12]}…）",
                               {"sha256": a.doc.sha256, "firms": [a.doc.firm_name, b.doc.firm_name]}))
        else:
            flag = _text_flag(a, b, text_share)
            if flag:
                found.append(flag)
        for check in (_metadata_flag, _person_flag, _contact_flag):
            flag = check(a.doc, b.doc)
            if flag:
                found.append(flag)
    found += price_flags(docs, tolerance_permille)
    return found


# === at the opening ==================================================================================

def checked_bids(procurement: Procurement) -> list[Bid]:
    return [b for b in procurement.bids if b.status == BidStatus.SUBMITTED]


def run_checks(procurement: Procurement, actor: User | None = None) -> IntegrityCheck:
    """Compare the opened bids once and record what was found (a second call returns the first check), asked by
    one who may decide the procurement's flags ("integrity.decide": its bureau's people), on every path — the
    flags it raises hold up the scoring until decided. ``actor`` None: the system."""
    if actor is not None:
        permissions.require(actor, "integrity.decide", procurement)
    return _run_checks(procurement, actor)


def _run_checks(procurement: Procurement, actor: User | None) -> IntegrityCheck:
    """``run_checks`` without its permission: the opening of the bids runs it under the opening's own check."""
    existing = db.session.execute(sa.select(IntegrityCheck).where(
        IntegrityCheck.procurement_id == procurement.id)).scalar_one_or_none()
    if existing is not None:
        return existing
    if procurement.opened_at is None:
        raise Conflict("开标后才能进行投标文件一致性检查。")
    if procurement.status != ProcurementStatus.EVALUATING:
        # after the evaluation the committee can no longer decide a flag (decide() refuses): none is raised
        raise Conflict(f"该采购当前状态为“{procurement.status.label}”，评审已结束，不能再进行一致性检查。")
    started = time.perf_counter()
    bids = checked_bids(procurement)
    bureau = procurement.bureau
    found = compare([bid_doc(b) for b in bids], text_share=get_setting(bureau, "integrity.text_share") / 100,
                    tolerance_permille=get_setting(bureau, "integrity.price_tolerance"))
    for f in found:
        db.session.add(CollusionFlag(procurement_id=procurement.id, rule=f.rule, key=f.key[:200], bid_ids=list(f.bids),
                                     summary=f.summary[:1000], evidence=f.evidence))
    check = IntegrityCheck(procurement_id=procurement.id, checked_at=utcnow(), bid_count=len(bids),
                           duration_ms=int((time.perf_counter() - started) * 1000))
    db.session.add(check)
    db.session.flush()
    audit.record("integrity.checked", procurement, actor=actor,
                 summary=f"{procurement.title}：投标文件一致性检查，{len(bids)} 份投标，提示 {len(found)} 条",
                 payload={"flags": [f.key for f in found]})
    return check


@procurement_services.after_bids_opened
def _check_at_opening(procurement: Procurement, actor: User) -> None:
    if procurement.is_competitive:
        _run_checks(procurement, actor)


def flags_of(procurement: Procurement) -> list[CollusionFlag]:
    return list(db.session.execute(sa.select(CollusionFlag).where(CollusionFlag.procurement_id == procurement.id)
                                   .order_by(CollusionFlag.id)).scalars())


def open_flags(procurement: Procurement) -> list[CollusionFlag]:
    return [f for f in flags_of(procurement) if f.decision is None]


@procurement_services.before_scoring
def undecided_flags_block(procurement: Procurement) -> Optional[str]:
    if not get_setting(procurement.bureau, "integrity.scoring_gate"):
        return None
    count = db.session.execute(sa.select(sa.func.count(CollusionFlag.id)).where(
        CollusionFlag.procurement_id == procurement.id, CollusionFlag.decision.is_(None))).scalar_one()
    if count:
        return (f"投标文件一致性检查尚有 {count} 条提示未经评审委员会处理（排除/不构成/移送并说明理由），"
                "处理完毕前不能录入评分。")
    return None


@procurement_services.award_note
def continued_despite_flags(procurement: Procurement) -> Optional[str]:
    kept = [f for f in flags_of(procurement) if f.decision in (FlagDecision.NOT_COLLUSION, FlagDecision.REFER)]
    if not kept:
        return None
    return "投标文件一致性检查提示经评审委员会处理后继续评审：" + "；".join(
        f"{f.rule.label}（{f.decision.label.split('（')[0]}）：{f.reason}" for f in kept)


# === the committee's decision =========================================================================

def decide(flag: CollusionFlag, actor: User, decision: Any, reason: Optional[str]) -> CollusionFlag:
    """排除 (the flagged bids are invalid), 不构成 or 移送, each with a written reason; once per flag."""
    procurement = flag.procurement
    permissions.require(actor, "integrity.decide", procurement)
    errors: dict[str, str] = {}
    try:
        choice = decision if isinstance(decision, FlagDecision) else FlagDecision.from_label(str(decision or ""))
    except ValueError:
        choice = None
        errors["decision"] = "请选择处理决定：排除、不构成或移送"
    text = check_text(errors, "reason", reason, short="请写明理由（不少于 10 个字）", label="理由", minimum=10,
                      maximum=2000)
    ValidationFailed.raise_if(errors)
    if procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict(f"该采购当前状态为“{procurement.status.label}”，不能再处理一致性检查提示。")
    procurement_services.refuse_while_tiebreak(procurement)  # 排除 would change the bids the lot is among
    # Compare-and-set: a flag is decided once, even when two members click at the same moment.
    done = db.session.execute(sa.update(CollusionFlag).where(CollusionFlag.id == flag.id, CollusionFlag.decision.is_(None))
                              .values(decision=choice, reason=text, decided_by_id=actor.id, decided_at=utcnow()))
    if done.rowcount != 1:
        raise Conflict("该提示已经处理，请刷新后查看。")
    db.session.refresh(flag)
    excluded = []
    if choice == FlagDecision.EXCLUDE:
        for bid in procurement.bids:
            if bid.id in flag.bid_ids and bid.status == BidStatus.SUBMITTED:
                bid.status = BidStatus.INVALID
                bid.invalid_reason = f"评审委员会认定存在串通投标情形（{CLAUSE[flag.rule]}）：{text}"[:500]
                excluded.append(bid.firm.name)
    audit.record("integrity.flag_decided", procurement, actor=actor,
                 summary=f"{procurement.title}：一致性检查提示“{flag.rule.label}”处理为{choice.label.split('（')[0]}"
                         + (f"，{'、'.join(excluded)}的投标无效" if excluded else ""),
                 payload={"flag_id": flag.id, "decision": choice, "reason": text, "excluded": excluded})
    if excluded:
        db.session.flush()
        valid = procurement_services.valid_bids(procurement)
        needed = procurement_services.minimum_valid_bids(procurement)
        if len(valid) < needed:
            procurement_services.fail_procurement(
                procurement, actor, f"评审委员会认定串通投标后有效投标 {len(valid)} 家，不足 {needed} 家，采购失败（流标）")
    return flag


# === OCDS: the committee's decisions belong in the tender's evaluation report ================================

@ocds.release_extension
def _ocds_evaluation_report(releases: list[tuple[Procurement, dict]]) -> None:
    decided: dict[int, list[CollusionFlag]] = {}
    for part in batches([p.id for p, _ in releases]):
        for f in db.session.execute(sa.select(CollusionFlag).where(
                CollusionFlag.procurement_id.in_(part), CollusionFlag.decision.is_not(None)).order_by(CollusionFlag.id)).scalars():
            decided.setdefault(f.procurement_id, []).append(f)
    for procurement, release in releases:
        flags = decided.get(procurement.id)
        if not flags:
            continue
        text = "；".join(f"{f.rule.label}：{f.decision.label.split('（')[0]}，理由：{f.reason}" for f in flags)
        release["tender"].setdefault("documents", []).append({
            "id": f"integrity-{procurement.id}", "documentType": "evaluationReports",
            "title": "投标文件一致性检查及评审委员会处理意见", "description": text, "language": "zh"})
