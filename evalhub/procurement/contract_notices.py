"""The contract announcement (合同公告): 政府采购法实施条例 第五十条 — "采购人应当自政府采购合同签订之日起2个工作日内，将政府
采购合同在省级以上人民政府财政部门指定的媒体上公告，但政府采购合同中涉及国家秘密、商业秘密的内容除外。"

- Due: 2 working days after the signing date, the signing day not counted, on the purchasing bureau's calendar
  (``core.calendar.add_working_days``): ``notice_due``, stored on the contract at the signing (``Contract.notice_due_on``).
- Published by the bureau that ran the procurement (its staff or admin: ``contract.notice.publish``), once: the
  contract's lock and the row read again (``core.concurrency.hold``), the unique key behind it. What it announces is
  kept as announced (``ContractNotice``); the contract's text goes out as ``core.scrub``'s copy of the bureau's upload
  (the bureau deletes what is withheld; the copy drops the document properties that name people and refuses hidden
  content, as for a published report). Content left out is withheld only as 国家秘密 or 商业秘密, with the bureau's
  reason — recorded and audited, never public.
- Late: allowed, with a written reason; the working days late are recorded (``late_workdays``, by
  ``core.calendar.working_days_between``).
- Reminded: the hourly job tells the bureau on the working day it falls due and once it is overdue (the notification
  matrix's ``contract_notice_due`` / ``contract_notice_overdue``); an overdue one is listed where overdue work is
  (the dashboard, the engagement list's filter and the engagement page) by ``overdue_clause``.
- Contracts signed before evalhub tracked the announcement have no due date and are owed nothing here: their bureau
  announced them on the designated media, or not, without evalhub knowing; dating them now would put every past
  contract on the dashboard as overdue and send a reminder for each. They can still be announced here.

- Owed until posted on the designated media: the law's announcement is the one "在省级以上人民政府财政部门指定的媒体上"
  (procurement/media.py). evalhub's own copy (this module) does not end the duty: ``Contract.notice_due_on`` stays
  until the bureau records the posting there, so the overdue surfaces and the red flag say "未登记指定媒体发布" of an
  announcement published here only.

Not the state machine's: the engagement goes on to its work plan whether or not the contract is announced yet; the
announcement is the bureau's own obligation beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple, Optional

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from evalhub.core import audit, concurrency, files, jobs, permissions, scrub
from evalhub.core.calendar import add_working_days, roll_to_workday, working_days_between
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.inputs import check_text
from evalhub.core.models import Bureau, User
from evalhub.core.notifications import emit, owed, reminder_key
from evalhub.core.timeutil import beijing_date, beijing_today, utcnow
from evalhub.extensions import db
from evalhub.procurement.models import Contract, ContractNotice, Engagement, WithheldContent
from evalhub.registry.services import parse_enum

# The law's number, not a bureau's setting (实施条例 第五十条).
NOTICE_WORKDAYS = 2
LAW = "政府采购法实施条例第五十条"
FILE_KINDS = ("pdf", "docx")

concurrency.unique_message("contract_notice", "该合同的合同公告已发布（可能是同时提交的另一请求），请刷新页面查看，不要重复发布。")


def notice_due(bureau: Bureau, signed_on: date) -> date:
    """The last day for announcing a contract signed on ``signed_on``: the 2nd working day after it."""
    return add_working_days(bureau, signed_on, NOTICE_WORKDAYS)


def late_workdays(bureau: Bureau, due: date, day: date) -> int:
    """How many working days after ``due`` an announcement published on ``day`` is late (0: on time). A day that
    is not a working day counts as the next working day: published on the Saturday after a Friday due date is 1
    working day late, as on the Monday — not on time."""
    return working_days_between(bureau, due, roll_to_workday(bureau, day)) if day > due else 0


def due_of(contract: Contract) -> date | None:
    """The due date of the contract's announcement while it is owed: stored at the signing. None for a contract signed
    before evalhub tracked the announcement — its bureau announced it on the designated media or not, without evalhub
    knowing — so that it is never counted late or overdue here (and for a contract whose announcement is out)."""
    return contract.notice_due_on


# The present day of the statements kept between requests (the engagement list's filter): read at each execution.
TODAY = sa.bindparam("contract_notice_today", callable_=beijing_today, type_=sa.Date)


def overdue_clause(today: date | None = None) -> sa.ColumnElement[bool]:
    """An announcement owed and past its day, as SQL on ``Contract`` (a range of ``ix_contract_notice_due``): the due
    day itself is not overdue (to 24:00 of it). Without ``today``, the day is read when the statement runs."""
    return Contract.notice_due_on < (today if today is not None else TODAY)


def overdue_engagements(today: date | None = None) -> sa.Select:
    """The ids of the engagements whose contract's announcement is overdue (for a list filter)."""
    return sa.select(Contract.engagement_id).where(overdue_clause(today))


def overdue_rows(user: User, today: date) -> sa.Select:
    """The overdue announcements ``user`` sees (the engagements in its scope), as rows: contract id, engagement id,
    reference, name, due date, evalhub's own copy's id (published here, not recorded on the designated media) or
    None; oldest first."""
    stmt = (sa.select(Contract.id.label("contract_id"), Engagement.id.label("engagement_id"), Engagement.reference,
                      Engagement.name, Contract.notice_due_on,
                      sa.select(ContractNotice.id).where(ContractNotice.contract_id == Contract.id)
                      .scalar_subquery().label("published_here"))
            .select_from(Contract).join(Engagement, Engagement.id == Contract.engagement_id)
            .where(overdue_clause(today)))
    return permissions.scope(user, stmt, Engagement).order_by(Contract.notice_due_on, Contract.id)


def overdue_count(user: User, today: date) -> sa.Select:
    """How many of ``overdue_rows``."""
    stmt = (sa.select(sa.func.count(Contract.id)).select_from(Contract)
            .join(Engagement, Engagement.id == Contract.engagement_id).where(overdue_clause(today)))
    return permissions.scope(user, stmt, Engagement)


def overdue_reason(due: date | None, today: date | None = None, published_here: bool = False) -> Optional[str]:
    """Why an announcement due ``due`` (None: owed nothing) is overdue today, or None. ``published_here``: evalhub's
    copy is out, but no posting on the designated media is recorded — still owed (procurement/media.py)."""
    today = today or beijing_today()
    if due is None or not today > due:
        return None
    # No count of days here: the law counts working days, which need the bureau's calendar for each row of a list;
    # the posting and the red flag record them.
    said = f"合同公告应于 {due:%Y-%m-%d} 前发布（合同签订之日起 2 个工作日内，在指定媒体上公告，{LAW}），已逾期"
    return said + ("：已在本系统发布，未登记指定媒体发布" if published_here else "")


# --- publishing ---------------------------------------------------------------------------------------

@dataclass
class NoticeInput:
    services: Optional[str]  # 主要服务内容 as announced: the contract's, or less what is withheld
    filename: Optional[str] = None  # the contract's text for the public (已删去不予公开的内容)
    data: Optional[bytes] = None
    withheld: Any = None  # WithheldContent (value or label), when content is left out
    withheld_reason: Optional[str] = None  # 不予公开的内容及理由
    late_reason: Optional[str] = None  # asked when published after the due date


class _Checked(NamedTuple):
    services: str
    withheld: Optional[WithheldContent]
    withheld_reason: Optional[str]
    late_reason: Optional[str]
    public_copy: bytes


def _words(text: str) -> str:
    return "".join((text or "").split())


def _check_input(contract: Contract, data: NoticeInput, due: date | None, today: date) -> _Checked:
    """Every problem of the input at once (422, each beside its field), before anything is stored."""
    errors: dict[str, str] = {}
    services = check_text(errors, "services", data.services, label="主要服务内容", maximum=2000,
                          short="请填写公告的主要服务内容（按合同约定；涉及国家秘密、商业秘密的内容可删去并说明）")
    withheld = None
    if data.withheld not in (None, ""):
        withheld = parse_enum(errors, "withheld", WithheldContent, data.withheld, "不予公开内容的性质")
    reason = (data.withheld_reason or "").strip() or None
    if withheld is not None or reason or "withheld" in errors:
        if withheld is None and "withheld" not in errors:
            errors["withheld"] = f"不予公开的内容须说明其涉及国家秘密还是商业秘密（{LAW}只允许这两类内容不公开）"
        reason = check_text(errors, "withheld_reason", reason, label="不予公开的内容及理由", minimum=10, maximum=500,
                            short="请写明不予公开的内容及理由（不少于 10 字）：哪些内容，为何属于国家秘密或商业秘密")
    elif services and _words(services) != _words(contract.deliverables):
        errors["withheld"] = ("公告的主要服务内容与合同约定的不同：删去的内容须选择不予公开的依据（国家秘密或商业秘密）并说明理由，"
                              "否则请按合同约定公告")
    public_copy = b""
    if not data.data and not data.filename:
        errors["file"] = "请上传公开的合同文本（Word .docx 或 PDF，已删去涉及国家秘密、商业秘密的内容）"
    else:
        try:
            kind = files.check_upload(data.filename or "合同.pdf", data.data or b"", FILE_KINDS)
            public_copy = scrub.scrubbed(kind, data.data)
        except ValidationFailed as exc:
            errors["file"] = exc.message
    late_reason = None
    if due is not None and today > due:
        late_reason = check_text(errors, "late_reason", data.late_reason, label="逾期公告原因", minimum=10, maximum=500,
                                 short=f"合同公告应于 {due:%Y-%m-%d} 前发布（合同签订之日起 2 个工作日内，{LAW}），"
                                       "已逾期，请说明逾期公告的原因（不少于 10 字）")
    ValidationFailed.raise_if(errors)
    return _Checked(services, withheld, reason if withheld is not None else None, late_reason, public_copy)


def _refuse_if_published(contract: Contract) -> None:
    published = db.session.execute(sa.select(ContractNotice.published_at).where(
        ContractNotice.contract_id == contract.id)).scalar()
    if published is not None:
        raise Conflict(f"该合同的合同公告已发布（{beijing_date(published):%Y-%m-%d}），不能重复发布。")


def publish_notice(engagement: Engagement, data: NoticeInput, actor: User) -> ContractNotice:
    """Publish the announcement of the engagement's signed contract, once, as the bureau that ran the procurement.
    Late is allowed with a reason; the working days late are recorded. Audited."""
    permissions.require(actor, "contract.notice.publish", engagement)
    contract = engagement.contract
    if contract is None:
        raise Conflict("尚未签订合同，不能发布合同公告：合同公告在合同签订后发布。")
    _refuse_if_published(contract)
    now = utcnow()
    today = beijing_date(now)
    due = due_of(contract)
    # The input and the public copy (the scrub, the text extraction) before the lock: the lock is held only for
    # the check again and the writes (on SQLite it holds the whole database's writes).
    checked = _check_input(contract, data, due, today)
    # Of two requests at once (a double click, two clerks, the page and the API), the second waits here and then
    # finds the announcement the first published.
    concurrency.hold(contract)
    _refuse_if_published(contract)
    uploaded = files.store(data.filename or "合同.pdf", data.data, allowed=FILE_KINDS, actor=actor)
    public = files.store(uploaded.original_name, checked.public_copy, allowed=FILE_KINDS, actor=actor)
    late = late_workdays(engagement.bureau, due, today) if due is not None else 0
    notice = ContractNotice(
        bureau_id=engagement.bureau_id, contract_id=contract.id, project_name=engagement.name,
        purchaser_name=engagement.commissioner_name, supplier_name=contract.firm.name, supplier_uscc=contract.firm.uscc,
        amount=contract.amount, services=checked.services, start_date=contract.start_date, end_date=contract.end_date,
        signed_on=contract.signed_on, due_on=due, published_at=now, published_by_id=actor.id, late_workdays=late,
        late_reason=checked.late_reason, withheld=checked.withheld, withheld_reason=checked.withheld_reason,
        uploaded_file_id=uploaded.id, public_file_id=public.id)
    db.session.add(notice)
    # still owed (``notice_due_on`` kept): evalhub's copy is not the designated media's posting (procurement/media.py)
    db.session.flush()
    if due is None:
        said = [f"{engagement.reference} {engagement.name}：补录合同公告（合同签订于本系统跟踪合同公告之前）"]
    else:
        said = [f"{engagement.reference} {engagement.name}：发布合同公告（应于 {due:%Y-%m-%d} 前发布"]
        said.append(f"，逾期 {late} 个工作日，原因：{checked.late_reason}）" if late else "，按期）")
    if checked.withheld is not None:
        said.append(f"；涉及{checked.withheld.label}的内容不予公开：{checked.withheld_reason}")
    audit.record("contract.notice_published", notice, actor=actor, summary="".join(said), payload={
        "engagement_id": engagement.id, "contract_id": contract.id, "due_on": due, "published_on": today,
        "late_workdays": late, "late_reason": checked.late_reason,
        "withheld": checked.withheld.value if checked.withheld else None, "withheld_reason": checked.withheld_reason,
        "uploaded_sha256": uploaded.sha256, "public_sha256": public.sha256})
    return notice


# --- the hourly reminder --------------------------------------------------------------------------------

@jobs.periodic("procurement.contract_notice", minute="7")
def remind_notices(today: date | None = None) -> int:
    """Hourly: tell the bureau that signed, on the working day an announcement falls due and once it is overdue,
    each once per contract and date (the bureau's staff and admins: ``contract_notice_due`` /
    ``contract_notice_overdue``). Returns how many messages went out. Only the announcements due within the last
    ``notifications.REMIND_WITHIN_DAYS`` days are read (``notifications.owed``)."""
    today = today or beijing_today()
    sent = 0
    for contract, due, state in owed(sa.select(Contract).options(joinedload(Contract.engagement)),
                                     Contract.notice_due_on, today):
        engagement = contract.engagement
        fields = {"reference": engagement.reference, "name": engagement.name, "due": f"{due:%Y-%m-%d}",
                  "signed": f"{contract.signed_on:%Y-%m-%d}"}
        sent += len(emit("contract_notice_due" if due == today else "contract_notice_overdue",
                         link=f"/engagements/{engagement.id}/contract/notice", bureau_id=engagement.bureau_id,
                         dedupe_key=reminder_key("contract-notice", state, contract.id, due=due), **fields))
    return sent
