"""Where and when each notice was posted on the designated media (指定媒体): the legal announcement.

The law asks for procurement information on the media a provincial-or-higher finance department designated
(政府采购法 第十一条; 政府采购信息发布管理办法, 财政部令第101号 第八条: 中国政府采购网 and its provincial sub-sites): the
采购公告; the result notice (中标/成交结果公告) within 2 working days of the winner being determined (财政部令第87号
第六十九条); the contract announcement (合同公告) within 2 working days of the signing (政府采购法实施条例 第五十条).
evalhub's own public pages (/public/…) are a copy for the public, not a designated medium, so:

- What counts as the announcement is its posting on the designated media, recorded here (``MediaPosting``): the
  medium, the URL there, the posting date. evalhub's own publication without such a record is "未登记指定媒体发布".
- The result notice's and the contract announcement's postings are measured against their deadlines: 2 working days
  after the award (the result notice is published in evalhub at the award) and after the signing, on the bureau's
  calendar (``core.calendar``); the working days late are kept on the posting. A 采购公告 has no such deadline here:
  its bid period counts from it (``procurement/periods.py``). A posting later than evalhub's publication may leave the
  bid deadline too soon; the posting is still recorded (it happened), the bureau is told, and the bids may not be
  opened until the deadline is extended to a lawful one (``period_problem``; ``services.open_bids``, ``change_deadline``).
- The contract's announcement stays owed (``Contract.notice_due_on``: the dashboard, the engagement list's filter,
  the hourly reminder and the red flag read it) until its posting is recorded, not merely until evalhub's copy is out.
- So does the result notice's posting (``ResultNotice.media_due_on``, stored at the award by ``result_due``): the same
  surfaces read it (``result_overdue_clause``, ``remind_result_postings``, the red flag "结果公告未按期在指定媒体发布"),
  and a calendar correction recounts it both ways (procurement/deadlines.py). A revoked notice owes nothing more (the
  result it announced no longer stands; the next award's notice is owed in its turn), nor does one published before
  evalhub tracked it (as for contracts: its bureau posted it or not without evalhub knowing). Both can still be
  recorded, measured against the 2 working days from the publication.
- A 澄清/更正公告 (procurement/amendments.py) is posted on the media of the 采购公告 (财政部令第87号 第二十七条) and
  recorded here as 更正公告, with no deadline counted: the suppliers' notice before the bid deadline runs from the
  written notice at its publication, not from the posting.
- Recorded by the bureau that ran the procurement (``notice.media.record``), once per notice (the notice's lock, the
  unique key behind it); a correction replaces the values with a reason, the old values kept in its audit event.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Optional
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from evalhub.core import audit, concurrency, jobs, permissions
from evalhub.core.calendar import add_working_days
from evalhub.core.errors import Conflict, NotFound, ValidationFailed
from evalhub.core.inputs import check_text, name_error
from evalhub.core.models import Bureau, User
from evalhub.core.notifications import emit, owed, reminder_key
from evalhub.core.timeutil import beijing_date, beijing_today, format_beijing, to_beijing, utcnow
from evalhub.extensions import db
from evalhub.procurement import page, periods
from evalhub.procurement.contract_notices import late_workdays
from evalhub.procurement.models import (
    Award, Contract, ContractNotice, DesignatedMedium, Engagement, MediaPosting, NoticeKind, Procurement,
    ProcurementAmendment, ProcurementMethod, ProcurementStatus, ResultNotice,
)
from evalhub.registry.services import parse_enum

# The law's numbers, not a bureau's setting.
RESULT_WORKDAYS = 2  # 财政部令第87号 第六十九条
CONTRACT_WORKDAYS = 2  # 政府采购法实施条例 第五十条
LAW = "政府采购法第十一条、政府采购信息发布管理办法（财政部令第101号）"
URL_MAX = 500
# The methods whose 采购公告 evalhub publishes (the public 采购公告 list): the others invite no market.
ANNOUNCED = (ProcurementMethod.OPEN_TENDER, ProcurementMethod.COMPETITIVE_CONSULTATION)
# The domain a known medium's pages are under: a URL elsewhere was pasted from the wrong page (evalhub's own copy).
MEDIUM_HOSTS = {DesignatedMedium.CCGP: "ccgp.gov.cn", DesignatedMedium.XINJIANG: "ccgp-xinjiang.gov.cn"}
UNRECORDED = "未登记指定媒体发布"
KEY = {NoticeKind.PROCUREMENT: MediaPosting.procurement_id, NoticeKind.RESULT: MediaPosting.result_notice_id,
       NoticeKind.CONTRACT: MediaPosting.contract_notice_id, NoticeKind.AMENDMENT: MediaPosting.amendment_id}
RELATION = {NoticeKind.PROCUREMENT: "procurement", NoticeKind.RESULT: "result_notice", NoticeKind.CONTRACT: "contract_notice",
            NoticeKind.AMENDMENT: "amendment"}

concurrency.unique_message("media_posting", "该公告的指定媒体发布已登记（可能是同时提交的另一请求），请刷新页面查看；如有错误请更正。")


@dataclass
class Target:
    """A notice of an engagement that is owed a posting on the designated media."""

    kind: NoticeKind
    id: int  # the procurement's id (采购公告), the result notice's, the contract announcement's, the amendment's
    row: Any
    title: str
    event: str  # what the posting may not come before
    event_day: date
    due: Optional[date]  # the legal deadline (None: none counted here)
    public_url: Optional[str]  # evalhub's own copy

    @property
    def posting(self) -> Optional[MediaPosting]:
        return self.row.media_posting


def result_due(bureau: Bureau, day: date) -> date:
    """The last day for posting on the designated media a result notice whose winner was determined on ``day``: the
    2nd working day after it, on the bureau's calendar (stored on the notice at the award: ``media_due_on``)."""
    return add_working_days(bureau, day, RESULT_WORKDAYS)


def _result_target(notice: ResultNotice, engagement: Engagement) -> Target:
    day = beijing_date(notice.published_at)  # published at the award: the day the winner was determined
    word = notice.procurement.method.result_word
    # while owed, the stored date (recounted on a calendar correction); else counted from the publication
    due = notice.media_due_on or result_due(engagement.bureau, day)
    return Target(NoticeKind.RESULT, notice.id, notice,
                  f"{word}结果公告（{day:%Y-%m-%d}）" + ("（已撤销）" if notice.revoked_at else ""),
                  f"确定{word}供应商之日", day, due, f"/public/notices/{notice.id}")


def _contract_target(notice: ContractNotice, engagement: Engagement) -> Target:
    contract = notice.contract
    # while owed, the contract's own due date (recounted on a calendar correction); else the announcement's
    due = contract.notice_due_on or notice.due_on
    return Target(NoticeKind.CONTRACT, notice.id, notice, "合同公告", "合同签订之日", contract.signed_on, due,
                  f"/public/contracts/{notice.id}")


def _procurement_target(p: Procurement) -> Optional[Target]:
    if p.method not in ANNOUNCED or p.status == ProcurementStatus.PENDING_APPROVAL:
        return None
    public = None if p.status == ProcurementStatus.CANCELLED else f"/public/procurements/{p.id}"
    return Target(NoticeKind.PROCUREMENT, p.id, p, f"采购公告：{p.title}", "采购公告发布之日",
                  beijing_date(p.created_at), None, public)


def _amendment_target(a: ProcurementAmendment) -> Target:
    """A 澄清/更正公告, posted on the media of the 采购公告 (财政部令第87号 第二十七条): the law counts it no deadline, and the
    suppliers' notice runs from the written notice at its publication (procurement/amendments.py), not from the posting."""
    p = a.procurement
    public = None if p.status == ProcurementStatus.CANCELLED else f"/public/procurements/{p.id}#amendment-{a.number}"
    return Target(NoticeKind.AMENDMENT, a.id, a, f"{a.title}：{p.title}", "更正公告发布之日",
                  beijing_date(a.published_at), None, public)


def targets(engagement: Engagement) -> list[Target]:
    """Every notice of the engagement owed a posting on the designated media, in the order they were published."""
    out: list[Target] = []
    for p in sorted(engagement.procurements, key=lambda p: p.id):
        t = _procurement_target(p)
        if t is not None:
            out.append(t)
            out.extend(_amendment_target(a) for a in p.amendments)
        out.extend(_result_target(n, engagement) for n in p.notices)
    contract = engagement.contract
    if contract is not None and contract.notice is not None:
        out.append(_contract_target(contract.notice, engagement))
    return out


def target(engagement: Engagement, kind: Any, notice_id: int) -> Target:
    """The engagement's notice of ``kind`` (a ``NoticeKind`` or its value) and id; 404 when it has none."""
    try:
        kind = kind if isinstance(kind, NoticeKind) else NoticeKind(kind)
    except ValueError:
        raise NotFound("未找到该公告。") from None
    found = next((t for t in targets(engagement) if t.kind == kind and t.id == notice_id), None)
    if found is None:
        raise NotFound("未找到该公告：本评价任务没有这份需在指定媒体发布的公告。")
    return found


def target_of(engagement: Engagement, posting: MediaPosting) -> Target:
    notice_id = posting.procurement_id or posting.result_notice_id or posting.contract_notice_id or posting.amendment_id
    return target(engagement, posting.kind, notice_id)


def procurement_period_problem(p: Procurement) -> Optional[str]:
    """Of a procurement whose 采购公告's recorded posting leaves its bid deadline too soon (``periods.posting_problem``):
    the problem and what follows from it — no opening until the deadline is extended, or, opened already, opened too
    early. None when the period is lawful. What the bureau reads when it records or corrects the posting, on the media,
    engagement and procurement pages and in the API."""
    problem = periods.posting_problem(p)
    if problem is None:
        return None
    if p.status == ProcurementStatus.OPEN:
        return f"等标期不足：{problem}。投标截止时间延长至该日或之后（变更投标截止时间）之前，不能开标"
    if p.opened_at is not None:
        return f"等标期不足：{problem}。本项目已于北京时间 {format_beijing(p.opened_at)} 开标，早于法定等标期届满，请依法处理"
    return None


def period_problem(t: Target) -> Optional[str]:
    """``procurement_period_problem`` of a 采购公告; None for any other notice."""
    return procurement_period_problem(t.row) if t.kind == NoticeKind.PROCUREMENT else None


def status(t: Target) -> str:
    """What the engagement page, the media page and the API say of a notice's posting."""
    p = t.posting
    if p is None:
        return UNRECORDED
    said = f"已于 {p.posted_on:%Y-%m-%d} 在{p.medium_label}发布"
    if p.due_on is not None:
        said += f"（应于 {p.due_on:%Y-%m-%d} 前发布，" + (f"逾期 {p.late_workdays} 个工作日）" if p.late_workdays else "按期）")
    return said


# --- input ------------------------------------------------------------------------------------------------

@dataclass
class PostingInput:
    medium: Any  # DesignatedMedium (value or label)
    url: Optional[str]
    posted_on: Any  # a date, or "YYYY-MM-DD"
    medium_name: Optional[str] = None  # 其他指定媒体: its name
    note: Optional[str] = None


def url_error(url: str, medium: Optional[DesignatedMedium]) -> Optional[str]:
    """Why ``url`` is not a page of a designated medium one may follow, or None: http(s), a host with a domain,
    no credentials, at most ``URL_MAX`` characters, no space or invisible character; on a known medium's domain."""
    if not url:
        return "请填写该公告在指定媒体上的网址（以 http:// 或 https:// 开头）"
    if len(url) > URL_MAX:
        return f"网址不能超过 {URL_MAX} 个字符"
    if any(ch.isspace() for ch in url) or name_error(url):
        return "网址不能含空格、换行或不可见字符，请从浏览器地址栏复制完整网址"
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # a port that is not a number raises here
    except ValueError:
        return "网址格式不正确，请从浏览器地址栏复制完整网址"
    if parts.scheme.lower() not in ("http", "https"):
        return "网址须以 http:// 或 https:// 开头"
    if not host or "." not in host.strip(".") or host.startswith("."):
        return "网址缺少有效的网站域名（例如 www.ccgp.gov.cn）"
    if parts.username is not None or parts.password is not None:
        return "网址不能含用户名或密码（“@”之前的部分），请从浏览器地址栏复制完整网址"
    domain = MEDIUM_HOSTS.get(medium) if medium is not None else None
    if domain is not None and host != domain and not host.endswith("." + domain):
        return f"所选媒体为{medium.label}，网址应在 {domain} 域名下（当前为 {host}）"
    return None


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _posted_on(errors: dict[str, str], value: Any) -> Optional[date]:
    if isinstance(value, date):
        return value
    text = value.strip() if isinstance(value, str) else ""
    try:
        if _ISO_DAY.fullmatch(text):  # YYYY-MM-DD only (fromisoformat also reads 20250307 and 2025-W10-5)
            return date.fromisoformat(text)
    except ValueError:
        pass
    errors["posted_on"] = "请填写在指定媒体发布的日期（格式 YYYY-MM-DD）"
    return None


@dataclass
class _Checked:
    medium: DesignatedMedium
    medium_name: Optional[str]
    url: str
    posted_on: date
    note: Optional[str]


def _check(engagement: Engagement, t: Target, data: PostingInput, today: date, errors: dict[str, str],
           due: Optional[date]) -> Optional[_Checked]:
    """Every problem of the input at once (422, each beside its field); None when there is one. A posting after its
    deadline (``due``) needs its reason in the note, as evalhub's own late copy does (10–500 characters)."""
    medium = parse_enum(errors, "medium", DesignatedMedium, data.medium, "指定媒体")
    name = None
    if medium == DesignatedMedium.OTHER:
        name = check_text(errors, "medium_name", data.medium_name, label="媒体名称", maximum=100,
                          short="选择“其他指定媒体”时，请填写该媒体的名称（须为省级以上财政部门指定的媒体）")
        message = name_error(name)
        if message and "medium_name" not in errors:
            errors["medium_name"] = f"媒体名称{message}"
    url = (data.url or "").strip()
    message = url_error(url, medium)
    if message:
        errors["url"] = message
    posted = _posted_on(errors, data.posted_on)
    if posted is not None:
        if posted > today:
            errors["posted_on"] = f"发布日期不能晚于今天（{today:%Y-%m-%d}）：请在公告发布后登记"
        elif posted < t.event_day:
            errors["posted_on"] = f"发布日期不能早于{t.event}（{t.event_day:%Y-%m-%d}）"
    late = _late(engagement, due, posted) if posted is not None and "posted_on" not in errors else 0
    if late:
        note = check_text(errors, "note", data.note, label="逾期原因", minimum=10, maximum=500,
                          short=f"应于 {due:%Y-%m-%d} 前发布，逾期 {late} 个工作日：请在备注中说明逾期的原因（不少于 10 字）")
    else:
        note = check_text(errors, "note", data.note, label="备注", minimum=0, maximum=500, short="") or None
    if errors:
        return None
    return _Checked(medium, name, url, posted, note)


def _refuse_if_recorded(t: Target) -> None:
    posted = db.session.execute(sa.select(MediaPosting.posted_on).where(KEY[t.kind] == t.id)).scalar()
    if posted is not None:
        raise Conflict(f"该公告的指定媒体发布已登记（{posted:%Y-%m-%d}），不能重复登记；如有错误请更正并说明原因。")


def _hold_procurement(t: Target) -> None:
    """A 采购公告's posting moves the start of the bid period: the procurement's row lock, which the opening and the
    deadline's change take first (``services.lock_procurement``), so that the opening sees a posting committed before
    it, and a posting recorded while the bids are opened waits for the opening (and then says it came too early)."""
    if t.kind == NoticeKind.PROCUREMENT:
        db.session.execute(sa.select(Procurement.id).where(Procurement.id == t.id).with_for_update())
        db.session.refresh(t.row)  # opened or not, as the request before left it


def _late(engagement: Engagement, due: Optional[date], posted: date) -> int:
    return late_workdays(engagement.bureau, due, posted) if due is not None else 0


def _values(p: MediaPosting) -> dict:
    return {"medium": p.medium.value, "medium_name": p.medium_name, "url": p.url, "posted_on": p.posted_on,
            "note": p.note, "due_on": p.due_on, "late_workdays": p.late_workdays}


def _said(engagement: Engagement, t: Target, p: MediaPosting) -> str:
    said = f"{engagement.reference} {engagement.name}：{t.title}已于 {p.posted_on:%Y-%m-%d} 在{p.medium_label}发布"
    if p.due_on is not None:
        said += f"（应于 {p.due_on:%Y-%m-%d} 前发布，" + (f"逾期 {p.late_workdays} 个工作日）" if p.late_workdays else "按期）")
    return said


def _tell_period_short(t: Target, short: Optional[str]) -> None:
    """A 采购公告's posting that leaves the bid period short (``short``: ``period_problem``) is told to the bureau that
    runs the procurement — its staff and admins, in the inbox (and e-mail), not only in the recording request's flash:
    whoever recorded it through the API, or a colleague who opens the bids, reads it too. Once per posting day and
    deadline (a correction of the link alone tells nothing new); a correction that makes it short again tells again."""
    if short is None:
        return
    p: Procurement = t.row
    emit("procurement_period_short", link=f"/procurements/{p.id}#deadline", bureau_id=p.bureau_id,
         dedupe_key=f"period-short-{p.id}-{p.media_posting.posted_on}-{p.bid_deadline:%Y%m%d%H%M}-{p.status.value}",
         reference=p.engagement.reference, name=p.title, problem=short)


# --- recording and correcting -------------------------------------------------------------------------------

def record_posting(engagement: Engagement, kind: Any, notice_id: int, data: PostingInput, actor: User) -> MediaPosting:
    """Record where and when the notice was posted on the designated media, once, as the bureau that ran the
    procurement. The posting's lateness against the notice's deadline is kept; a contract's announcement, a result
    notice, is owed no more. Audited."""
    permissions.require(actor, "notice.media.record", engagement)
    t = target(engagement, kind, notice_id)
    _refuse_if_recorded(t)
    errors: dict[str, str] = {}
    checked = _check(engagement, t, data, beijing_today(), errors, t.due)
    ValidationFailed.raise_if(errors)
    # Of two requests at once, the second waits here and then finds the first one's record.
    concurrency.hold(t.row)
    _hold_procurement(t)
    _refuse_if_recorded(t)
    posting = MediaPosting(bureau_id=engagement.bureau_id, kind=t.kind, medium=checked.medium,
                           medium_name=checked.medium_name, url=checked.url, posted_on=checked.posted_on,
                           note=checked.note, due_on=t.due, late_workdays=_late(engagement, t.due, checked.posted_on),
                           recorded_by_id=actor.id, recorded_at=utcnow(), **{RELATION[t.kind]: t.row})
    db.session.add(posting)
    # A 采购公告 posted later than evalhub's publication may leave the bid period short: recorded all the same, not
    # refused — the posting is a fact, and refusing it would leave evalhub saying the announcement never happened.
    # What the law forbids is opening the bids before the period ends: ``services.open_bids`` refuses that until the
    # deadline is extended (``change_deadline``, counting from this posting); the bureau is told here (``period_problem``).
    if t.kind == NoticeKind.CONTRACT:
        t.row.contract.notice_due_on = None  # the legal announcement is out: owed no more
    elif t.kind == NoticeKind.RESULT:
        t.row.media_due_on = None
    db.session.flush()
    short = period_problem(t)
    audit.record("notice.media_recorded", posting, actor=actor, summary=_said(engagement, t, posting) + (
        f"；{short}" if short else ""), payload={
        "engagement_id": engagement.id, "kind": t.kind.value, "notice_id": t.id, **_values(posting), "period_problem": short})
    _tell_period_short(t, short)
    return posting


def correct_posting(engagement: Engagement, posting_id: int, data: PostingInput, reason: Optional[str],
                    actor: User) -> MediaPosting:
    """Replace a recorded posting's values (a wrong URL or date), with the reason; the old values go into the audit
    event, which is the history. Refused when nothing changes."""
    permissions.require(actor, "notice.media.record", engagement)
    posting = db.session.get(MediaPosting, posting_id)
    if posting is None or posting.bureau_id != engagement.bureau_id:
        raise NotFound("未找到该指定媒体发布记录。")
    t = target_of(engagement, posting)
    errors: dict[str, str] = {}
    reason = check_text(errors, "correction_reason", reason, label="更正原因", minimum=10, maximum=500,
                        short="请说明更正的原因（不少于 10 字）：原登记哪里有误")
    checked = _check(engagement, t, data, beijing_today(), errors, posting.due_on)
    ValidationFailed.raise_if(errors)
    _hold_procurement(t)
    concurrency.hold(posting)
    old = _values(posting)
    new = {"medium": checked.medium.value, "medium_name": checked.medium_name, "url": checked.url,
           "posted_on": checked.posted_on, "note": checked.note}
    if all(old[k] == v for k, v in new.items()):
        raise ValidationFailed("更正的内容与原登记相同，无需更正。", {"url": "更正的内容与原登记相同"})
    posting.medium, posting.medium_name, posting.url = checked.medium, checked.medium_name, checked.url
    posting.posted_on, posting.note = checked.posted_on, checked.note
    posting.late_workdays = _late(engagement, posting.due_on, checked.posted_on)
    posting.corrected_by_id, posting.corrected_at, posting.correction_reason = actor.id, utcnow(), reason
    db.session.flush()
    short = period_problem(t)
    audit.record("notice.media_corrected", posting, actor=actor,
                 summary=f"更正指定媒体发布记录：{_said(engagement, t, posting)}；原因：{reason}" + (f"；{short}" if short else ""),
                 payload={"engagement_id": engagement.id, "kind": t.kind.value, "notice_id": t.id, "reason": reason,
                          "old": old, "new": _values(posting), "period_problem": short})
    _tell_period_short(t, short)
    return posting


# --- the list as the bureau files it (the media page's Excel) ---------------------------------------------------

EXPORT_COLUMNS = [
    "任务编号", "评价对象", "公告类型", "公告", "所载事项", "事项日期", "法定发布期限", "指定媒体", "发布日期", "网址",
    "逾期工作日", "逾期原因", "备注", "发布情况", "等标期", "本系统公开页面", "登记人", "登记时间（北京）", "更正人",
    "更正时间（北京）", "更正原因",
]


def export_rows(engagement: Engagement) -> list[dict]:
    """Each notice of the engagement owed a posting, one row each, as the bureau files the list: what the notice is and
    its legal deadline, where and when it was posted, and — for a posting after the deadline — the reason given (the
    note, asked for then: ``_check``), apart from a note given on time; the period problem of a late 采购公告."""
    rows = targets(engagement)
    people = {p.recorded_by_id for t in rows if (p := t.posting) is not None} | {
        p.corrected_by_id for t in rows if (p := t.posting) is not None}
    names = dict(db.session.execute(sa.select(User.id, User.display_name).where(
        User.id.in_([i for i in people if i is not None] or [-1]))).all())
    out = []
    for t in rows:
        p = t.posting
        late = p is not None and p.late_workdays > 0
        out.append({
            "任务编号": engagement.reference, "评价对象": engagement.name, "公告类型": t.kind.label, "公告": t.title,
            "所载事项": t.event, "事项日期": t.event_day, "法定发布期限": t.due,
            "指定媒体": p.medium_label if p else None, "发布日期": p.posted_on if p else None, "网址": p.url if p else None,
            "逾期工作日": p.late_workdays if p else None, "逾期原因": p.note if late else None,
            "备注": p.note if p is not None and not late else None, "发布情况": status(t), "等标期": period_problem(t),
            "本系统公开页面": t.public_url,
            "登记人": names.get(p.recorded_by_id) if p else None, "登记时间（北京）": to_beijing(p.recorded_at) if p else None,
            "更正人": names.get(p.corrected_by_id) if p and p.corrected_by_id else None,
            "更正时间（北京）": to_beijing(p.corrected_at) if p and p.corrected_at else None, "更正原因": p.correction_reason if p else None,
        })
    return out


# --- a bureau's postings of a year, its subtree's (the annual 政府采购信息公开 return) --------------------------------

FIRST_YEAR = 2000


def report_year(raw: Optional[str], today: date | None = None) -> int:
    """The year of the postings asked for (``?year=``): this year when not given; four digits, not before
    ``FIRST_YEAR`` nor after this year; anything else refused (422) in words, not ignored — a workbook filed as a
    year's return must be that year's."""
    today = today or beijing_today()
    text = (raw or "").strip()
    if not text:
        return today.year
    if len(text) == 4 and text.isascii() and text.isdigit() and FIRST_YEAR <= int(text) <= today.year:
        return int(text)
    message = f"年度应为 {FIRST_YEAR}–{today.year} 之间的四位年份（例如 {today.year}），当前为“{text[:20]}”"
    raise ValidationFailed(message + "。", {"year": message})


def postings_of_year(year: int) -> sa.Select:
    """Every posting recorded on the designated media with a posting date in ``year`` (Beijing dates), as rows of
    (the posting, its procurement, its engagement, the bureau's name): a 采购公告's procurement is its own, a result
    notice's the one it announced, a contract announcement's the one its contract was awarded by, an amendment's
    (更正公告) the one it amended. Scope it with ``permissions.scope(user, …, MediaPosting)`` (the user's bureau and the
    bureaus below it)."""
    procurement_id = sa.func.coalesce(MediaPosting.procurement_id, ResultNotice.procurement_id, Award.procurement_id,
                                      ProcurementAmendment.procurement_id)
    return (sa.select(MediaPosting, Procurement, Engagement,
                      sa.select(Bureau.name).where(Bureau.id == MediaPosting.bureau_id).scalar_subquery()
                      .label("bureau_name"))
            .outerjoin(ResultNotice, ResultNotice.id == MediaPosting.result_notice_id)
            .outerjoin(ProcurementAmendment, ProcurementAmendment.id == MediaPosting.amendment_id)
            .outerjoin(ContractNotice, ContractNotice.id == MediaPosting.contract_notice_id)
            .outerjoin(Contract, Contract.id == ContractNotice.contract_id)
            .outerjoin(Award, Award.id == Contract.award_id)
            .join(Procurement, Procurement.id == procurement_id)
            .join(Engagement, Engagement.id == Procurement.engagement_id)
            .where(MediaPosting.posted_on >= date(year, 1, 1), MediaPosting.posted_on < date(year + 1, 1, 1)))


POSTINGS_ORDER = (MediaPosting.posted_on, MediaPosting.id)


def in_bureau_tree(bureau_id: int) -> sa.ColumnElement[bool]:
    """The postings of the bureau ``bureau_id`` and of the bureaus below it (a list's ``?bureau=``)."""
    path = sa.select(Bureau.path).where(Bureau.id == bureau_id).scalar_subquery()
    return MediaPosting.bureau_id.in_(sa.select(Bureau.id).where(Bureau.path.startswith(path)))


YEAR_EXPORT_COLUMNS = [
    "财政局", "任务编号", "评价对象", "采购项目", "采购方式", "公告类型", "指定媒体", "发布日期", "网址", "法定发布期限",
    "逾期工作日", "逾期原因", "备注", "登记人", "登记时间（北京）", "更正时间（北京）", "更正原因",
]


def year_export_rows(rows: list) -> list[dict]:
    """``postings_of_year``'s rows as the bureau files its return: each posting with its procurement and the notice's
    kind, the medium, the day and the link, its legal deadline and the working days late with the reason given (a note
    given on time stays a note). One statement for the people who recorded them, none per row: a 采购公告's bid period
    still short is the engagement's media list's (``export_rows``), which reads the bureau's calendar for it."""
    names = dict(db.session.execute(sa.select(User.id, User.display_name).where(
        User.id.in_({r[0].recorded_by_id for r in rows if r[0].recorded_by_id is not None} or [-1]))).all())
    out = []
    for posting, p, e, bureau_name in rows:
        late = posting.late_workdays > 0
        out.append({
            "财政局": bureau_name, "任务编号": e.reference, "评价对象": e.name, "采购项目": p.title, "采购方式": p.method.label,
            "公告类型": posting.kind.label, "指定媒体": posting.medium_label, "发布日期": posting.posted_on, "网址": posting.url,
            "法定发布期限": posting.due_on, "逾期工作日": posting.late_workdays if posting.due_on is not None else None,
            "逾期原因": posting.note if late else None, "备注": None if late else posting.note,
            "登记人": names.get(posting.recorded_by_id), "登记时间（北京）": to_beijing(posting.recorded_at),
            "更正时间（北京）": to_beijing(posting.corrected_at) if posting.corrected_at else None,
            "更正原因": posting.correction_reason,
        })
    return out


# --- the result notice's posting while owed: the overdue surfaces, the engagement page, the hourly reminder -----

# The present day of the statements kept between requests (the engagement list's filter): read at each execution.
TODAY = sa.bindparam("result_posting_today", callable_=beijing_today, type_=sa.Date)
RESULT_LAW = "财政部令第87号第六十九条"


def result_overdue_clause(today: date | None = None) -> sa.ColumnElement[bool]:
    """A result notice's posting owed and past its day, as SQL on ``ResultNotice`` (a range of
    ``ix_result_notice_media_due``): the due day itself is not overdue. Without ``today``, read when it runs."""
    return ResultNotice.media_due_on < (today if today is not None else TODAY)


def result_overdue_engagements(today: date | None = None) -> sa.Select:
    """The ids of the engagements with a result notice whose posting is overdue (for a list filter)."""
    return sa.select(Procurement.engagement_id).join(ResultNotice, ResultNotice.procurement_id == Procurement.id) \
        .where(result_overdue_clause(today))


def result_owed_due() -> sa.ScalarSelect:
    """The earliest due date of the engagement's result notices still owed a posting, as a column of a statement on
    ``Engagement`` (the engagement list)."""
    return sa.select(sa.func.min(ResultNotice.media_due_on)).join(
        Procurement, Procurement.id == ResultNotice.procurement_id).where(
        Procurement.engagement_id == Engagement.id, ResultNotice.media_due_on.is_not(None)).scalar_subquery()


def _overdue_from(stmt: sa.Select, today: date) -> sa.Select:
    return stmt.select_from(ResultNotice).join(Procurement, Procurement.id == ResultNotice.procurement_id) \
        .join(Engagement, Engagement.id == Procurement.engagement_id).where(result_overdue_clause(today))


def result_overdue_rows(user: User, today: date) -> sa.Select:
    """The result notices ``user`` sees (the engagements in its scope) whose posting is overdue, as rows: notice id,
    engagement id, reference, name, due date, the procurement's method (its 中标/成交); oldest first."""
    stmt = _overdue_from(sa.select(ResultNotice.id.label("notice_id"), Engagement.id.label("engagement_id"),
                                   Engagement.reference, Engagement.name, ResultNotice.media_due_on,
                                   Procurement.method), today)
    return permissions.scope(user, stmt, Engagement).order_by(ResultNotice.media_due_on, ResultNotice.id)


def result_overdue_count(user: User, today: date) -> sa.Select:
    """How many of ``result_overdue_rows``."""
    return permissions.scope(user, _overdue_from(sa.select(sa.func.count(ResultNotice.id)), today), Engagement)


def result_overdue_reason(due: date | None, today: date | None = None, word: str = "中标/成交") -> Optional[str]:
    """Why a result notice's posting due ``due`` (None: owed nothing) is overdue today, or None. evalhub publishes
    the notice at the award, so its own copy is always out: what is missing is the designated media's posting."""
    today = today or beijing_today()
    if due is None or not today > due:
        return None
    # No count of days (as for contracts): the posting and the red flag record the working days.
    return (f"{word}结果公告应于 {due:%Y-%m-%d} 前在指定媒体发布（确定{word}供应商之日起 2 个工作日内，{RESULT_LAW}），"
            f"已逾期：已在本系统发布，{UNRECORDED}")


# The engagement page's result notices still owed a posting: read with the page, in its one statement.
PAGE_OWED = page.part("result_postings_owed", sa.select(
    ResultNotice.id, ResultNotice.media_due_on, Procurement.method).join(
    Procurement, Procurement.id == ResultNotice.procurement_id).where(
    Procurement.engagement_id == page.ENGAGEMENT_ID, ResultNotice.media_due_on.is_not(None)).order_by(ResultNotice.id))


def overdue_results(engagement: Engagement, today: date | None = None) -> list[tuple[int, str]]:
    """The engagement's result notices whose posting is overdue: (notice id, reason), for its page."""
    today = today or beijing_today()
    out = []
    for row in page.rows_of("result_postings_owed", engagement):
        reason = result_overdue_reason(row.media_due_on, today, row.method.result_word)
        if reason:
            out.append((row.id, reason))
    return out


@jobs.periodic("procurement.result_posting", minute="7")
def remind_result_postings(today: date | None = None) -> int:
    """Hourly: tell the bureau that ran the procurement, on the working day a result notice's posting on the
    designated media falls due and once it is overdue, each once per notice and date (its staff and admins:
    ``result_posting_due`` / ``result_posting_overdue``). Returns how many messages went out. Only those due within
    the last ``notifications.REMIND_WITHIN_DAYS`` days are read (``notifications.owed``)."""
    today = today or beijing_today()
    sent = 0
    for notice, due, state in owed(
            sa.select(ResultNotice).options(joinedload(ResultNotice.procurement).joinedload(Procurement.engagement)),
            ResultNotice.media_due_on, today):
        procurement = notice.procurement
        engagement = procurement.engagement
        fields = {"reference": engagement.reference, "name": engagement.name, "due": f"{due:%Y-%m-%d}",
                  "published": f"{beijing_date(notice.published_at):%Y-%m-%d}", "result": procurement.method.result_word}
        sent += len(emit("result_posting_due" if due == today else "result_posting_overdue",
                         link=f"/engagements/{engagement.id}/media/{NoticeKind.RESULT.value}/{notice.id}",
                         bureau_id=procurement.bureau_id,
                         dedupe_key=reminder_key("result-posting", state, notice.id, due=due), **fields))
    return sent
