"""澄清/更正公告: the bureau clarifies or amends the documents of an open procurement already issued.

政府采购货物和服务招标投标管理办法（财政部令第87号）第二十七条: the purchaser may clarify or amend the tender documents
already issued, but may not change the subject of the procurement or the qualification requirements; the clarification
or amendment is published as a 澄清公告 on the media where the original announcement was published, and its content
becomes part of the documents; where it may affect how bids are prepared, every potential bidder who obtained the
documents is told in writing at least 15 days before the bid deadline — fewer remaining, the deadline is extended.
财库〔2014〕214号《政府采购竞争性磋商采购方式管理暂行办法》第十条: the same for a consultation, 5 days before the deadline
for the first responses.

- Only while the procurement is open for bids (``services.deadline_movable``, as a change of the deadline: open, before
  its deadline — or past it while the period counted from the 采购公告's posting is short and the bids stay sealed);
  opened, failed or cancelled: 409. Only the staff and admins of the bureau that runs it (``procurement.amend``).
- Numbered 1, 2, … per procurement under the procurement's lock (``services.lock_procurement``, the one the bids, the
  opening and the deadline's change take): two at once get consecutive numbers, and each checks the deadline the other
  left.
- The notice is counted from the amendment's publication in evalhub: the written notice of 第二十七条 goes out then, to
  every potential supplier (``services.potential_suppliers``: the firms the 采购公告 went to and every firm that bid).
  In calendar days, as the 等标期, the day of publication not counted (``periods.notice_earliest_day``). An amendment
  the bureau says may affect the bids, published with fewer days left, needs a new deadline that leaves them — refused
  (422) without one, naming the earliest lawful day; the new deadline is checked as any change of the deadline is
  (``services.deadline_problem``: after now, the minimum period from the 采购公告's posting) and written by the one
  write (``services.move_deadline``).
- Its posting on the designated media (on the media of the 采购公告) is recorded as the other notices' are
  (``media.py``, ``NoticeKind.AMENDMENT``). The law sets it no deadline, and it does not start the notice: the written
  notice does.
- Whether it changes the subject or the qualifications is the bureau's to judge (evalhub cannot read that from the
  text); the form and the API say the rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from evalhub.core import audit, concurrency, files, permissions, scrub
from evalhub.core.errors import ValidationFailed
from evalhub.core.inputs import check_text
from evalhub.core.models import User
from evalhub.core.notifications import emit
from evalhub.core.timeutil import format_beijing, to_beijing, utcnow
from evalhub.extensions import db
from evalhub.procurement import periods, services
from evalhub.procurement.models import BidStatus, Procurement, ProcurementAmendment

TEXT_MAX = 5000
FILE_KINDS = ("pdf", "docx")
REFUSAL = "只有投标截止前、尚未开标的采购（公开招标、竞争性磋商）可以发布澄清/更正公告；已开标、流标或取消的不能。"
# What may not change (第二十七条), said beside the form and in the API: the bureau's judgement, not evalhub's.
LIMITS = "澄清或者修改不得改变采购标的和资格条件；其内容为采购文件的组成部分"

# Numbered under the procurement's lock, so never twice; should a number still meet its twin, the one handler says so.
concurrency.unique_message("procurement_amendment", "该采购项目的澄清/更正公告刚由他人发布（可能是同时提交的另一请求），请刷新页面查看后再发布。")


@dataclass
class AmendmentInput:
    text: Optional[str]
    affects_bids: Any = True  # the bureau's word; True unless it says no
    bid_deadline: Optional[datetime] = None  # a new deadline (naive UTC), or None to keep it
    filename: Optional[str] = None
    data: Optional[bytes] = None


def earliest_lawful_day(procurement: Procurement, published: datetime) -> date:
    """The first Beijing date a deadline may fall on after an amendment that may affect the bids, published at
    ``published`` (UTC): the law's notice after it (``periods.notice_earliest_day``) and the minimum period from the
    documents' issue (the 采购公告's posting on the designated media when later: ``periods.announced_on``)."""
    rule = services.PERIODS[procurement.method]
    return max(periods.notice_earliest_day(procurement.bureau, rule, published),
               services.earliest_deadline_day(procurement.bureau, rule, periods.announced_on(procurement)))


def _affects(value: Any) -> bool:
    """The bureau's word (a boolean, or a form's "yes"/"no"); not said — yes, the law's safer reading."""
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "n", "否", "off")
    return value is not False and value != 0


def _deadline_error(procurement: Procurement, new: Optional[datetime], affects: bool, now: datetime) -> Optional[str]:
    """Why the deadline the amendment leaves (``new``, or the procurement's own when None) is not lawful, or None."""
    rule = services.PERIODS[procurement.method]
    bureau = procurement.bureau
    unit = "个工作日" if rule.working_days else "日"
    if new is None:
        have = periods.notice_days(bureau, rule, now, procurement.bid_deadline)
        if not affects or have >= rule.change_notice:
            return None
        return (f"距投标截止时间（北京时间 {format_beijing(procurement.bid_deadline)}）仅 {have} {unit}，{periods.amendment_rule(rule)}："
                f"请同时设置新的投标截止时间，最早为北京时间 {earliest_lawful_day(procurement, now):%Y-%m-%d}")
    problem = services.deadline_problem(procurement, new, now)
    if problem is None and affects and to_beijing(new).date() < periods.notice_earliest_day(bureau, rule, now):
        have = periods.notice_days(bureau, rule, now, new)
        problem = (f"{periods.amendment_rule(rule)}：新的截止时间距本公告发布仅 {have} {unit}，"
                   f"最早为北京时间 {earliest_lawful_day(procurement, now):%Y-%m-%d}")
    return problem


def amend_procurement(procurement: Procurement, data: AmendmentInput, actor: User) -> ProcurementAmendment:
    """Publish the next clarification or amendment of the procurement's documents (see the module's docstring): its
    text, the optional file (kept with ``core.scrub``'s copy for the suppliers and the public), the deadline moved when
    asked or when the law's notice requires it; audited, and told to every potential supplier."""
    permissions.require(actor, "procurement.amend", procurement.engagement)
    errors: dict[str, str] = {}
    text = check_text(errors, "text", data.text, label="澄清或者修改的内容", maximum=TEXT_MAX,
                      short="请填写澄清或者修改的内容（将作为采购文件的组成部分公告）")
    public_copy = None
    if data.data or data.filename:  # a chosen file, even a 0-byte one, is checked (and refused when empty)
        try:
            kind = files.check_upload(data.filename or "更正公告.pdf", data.data or b"", FILE_KINDS)
            public_copy = scrub.scrubbed(kind, data.data)  # before the lock: the lock holds only the checks and writes
        except ValidationFailed as exc:
            errors["file"] = exc.message
    # Two officers at once: the second waits here, then reads the deadline and the numbers the first left.
    services.lock_procurement(procurement)
    short = services.deadline_movable(procurement, REFUSAL)
    now = utcnow()
    affects = _affects(data.affects_bids)
    new = data.bid_deadline if data.bid_deadline != procurement.bid_deadline else None
    problem = _deadline_error(procurement, new, affects, now)
    if problem:
        errors["bid_deadline"] = problem
    ValidationFailed.raise_if(errors)

    number = (db.session.execute(sa.select(sa.func.max(ProcurementAmendment.number))
                                 .where(ProcurementAmendment.procurement_id == procurement.id)).scalar() or 0) + 1
    uploaded = public = None
    if public_copy is not None:
        uploaded = files.store(data.filename or "更正公告.pdf", data.data, allowed=FILE_KINDS, actor=actor)
        public = files.store(uploaded.original_name, public_copy, allowed=FILE_KINDS, actor=actor)
    old = procurement.bid_deadline
    amendment = ProcurementAmendment(
        procurement_id=procurement.id, number=number, text=text, affects_bids=affects, deadline_before=old,
        deadline_after=new or old, uploaded_file_id=uploaded.id if uploaded else None,
        public_file_id=public.id if public else None, published_by_id=actor.id, published_at=now)
    db.session.add(amendment)
    db.session.flush()
    if new is not None:
        services.move_deadline(procurement, new, actor, amendment.title, short, amendment=number)
    moved = f"，投标截止时间由北京时间 {format_beijing(old)} 变更为北京时间 {format_beijing(new)}" if new else ""
    audit.record("procurement.amended", procurement, actor=actor,
                 summary=f"{procurement.title}：发布{amendment.title}" + ("（可能影响投标文件编制）" if affects else "") + moved,
                 payload={"amendment_id": amendment.id, "number": number, "text": text, "affects_bids": affects,
                          "deadline_before": old, "deadline_after": amendment.deadline_after,
                          "file_sha256": uploaded.sha256 if uploaded else None,
                          "public_file_sha256": public.sha256 if public else None})
    _tell(procurement, amendment)
    return amendment


def _tell(procurement: Procurement, amendment: ProcurementAmendment) -> None:
    """The written notice of 第二十七条, to every potential supplier: the amendment's text and the deadline (moved or
    not); a firm whose bid is in (submitted before this amendment) is told it may still revise or withdraw it before
    the deadline. Each firm reads only its own message; the bureau learns nothing of who bid."""
    submitted = {b.firm_id for b in procurement.bids if b.status == BidStatus.SUBMITTED}
    if amendment.moved_deadline:
        deadline = (f"投标（响应文件提交）截止时间由北京时间 {format_beijing(amendment.deadline_before)} "
                    f"变更为北京时间 {format_beijing(amendment.deadline_after)}。")
    else:
        deadline = f"投标（响应文件提交）截止时间不变：北京时间 {format_beijing(amendment.deadline_after)}。"
    fields = {"reference": procurement.engagement.reference, "name": procurement.title, "number": amendment.number,
              "text": amendment.text, "deadline": deadline, "until": format_beijing(amendment.deadline_after)}
    for firm_id in sorted(services.potential_suppliers(procurement)):
        emit("procurement_amended_bid" if firm_id in submitted else "procurement_amended",
             link=f"/procurements/{procurement.id}/bid", firm_id=firm_id, dedupe_key=f"amendment-{amendment.id}",
             **fields)


def listed(procurement: Procurement) -> list[ProcurementAmendment]:
    """The procurement's amendments in their order, with what each page and the API show of them (the posting, the
    files, who published it) in the same statement: none more for more amendments."""
    return list(db.session.execute(
        sa.select(ProcurementAmendment).where(ProcurementAmendment.procurement_id == procurement.id)
        .options(joinedload(ProcurementAmendment.media_posting), joinedload(ProcurementAmendment.public_file),
                 joinedload(ProcurementAmendment.uploaded_file), joinedload(ProcurementAmendment.published_by))
        .order_by(ProcurementAmendment.number)).scalars())


def bid_before(amendments: list[ProcurementAmendment], bid: Any) -> Optional[ProcurementAmendment]:
    """The latest amendment published after the firm's standing bid was last submitted or changed (None when the bid
    is not in, or was revised since): what the firm's page tells it it may still revise or withdraw for."""
    if bid is None or bid.status != BidStatus.SUBMITTED:
        return None
    later = [a for a in amendments if a.published_at > (bid.updated_at or bid.submitted_at)]
    return later[-1] if later else None
