"""The bid period (等标期): from the documents' issue to the bid deadline, and from when it counts.

The 采购公告 of an open tender or a competitive consultation is announced, in law, by its posting on the designated
media (政府采购法 第十一条; 财政部令第101号; procurement/media.py), and the tender documents are issued from then: the
period before the deadline (open tender ≥ 20 days, 政府采购法 第三十五条 / 财政部令第87号; consultation ≥ 10 days,
财库〔2014〕214号) counts from that posting once it is recorded, else from evalhub's publication (``created_at``).

Here, below both ``procurement.services`` (opening the procurement, changing and extending its deadline, the opening
refused while the period is short) and ``procurement.media`` (the bureau told when it records a late posting), so that
one rule serves both. The settings the rules read are registered in ``procurement.services``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Optional

from evalhub.core.calendar import add_days, add_working_days, working_days_between
from evalhub.core.models import Bureau
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import beijing_date, to_beijing
from evalhub.procurement.models import Procurement, ProcurementMethod, ProcurementStatus


@dataclass(frozen=True)
class PeriodRule:
    """A minimum period from issuing the documents to the (first) response deadline."""
    setting: str
    working_days: bool
    what: str
    source: str
    # A change that may affect how responses are prepared (a deadline brought forward is one) is notified at
    # least this many days (working days when ``working_days``) before the deadline; otherwise it moves back.
    change_notice: int
    change_source: str


OPEN_TENDER_PERIOD = PeriodRule("procurement.min_days_open_tender", False, "自招标文件发出之日至投标截止之日",
                                "政府采购法第三十五条", 15, "财政部令第87号 第二十七条")
CONSULTATION_PERIOD = PeriodRule("procurement.min_days_consultation", False, "自磋商文件发出之日至首次响应文件提交截止之日",
                                 "财库〔2014〕214号 第十条", 5, "财库〔2014〕214号 第十条")
# 竞争性谈判/询价 are not among evalhub's methods; the rule is here so that adding one is one line below.
NEGOTIATION_PERIOD = PeriodRule("procurement.min_workdays_negotiation", True, "自谈判/询价通知书发出之日至首次响应文件提交截止之日",
                                "财政部令第74号 第二十九条、第四十五条", 3, "财政部令第74号 第十条")


PERIODS: dict[ProcurementMethod, PeriodRule] = {
    ProcurementMethod.OPEN_TENDER: OPEN_TENDER_PERIOD,
    ProcurementMethod.COMPETITIVE_CONSULTATION: CONSULTATION_PERIOD,
}


def _day(issued: date | datetime) -> date:
    """The Beijing date of ``issued``: a UTC datetime (evalhub's publication), or already a date (a posting's)."""
    return to_beijing(issued).date() if isinstance(issued, datetime) else issued


def earliest_deadline_day(bureau: Bureau, rule: PeriodRule, issued: date | datetime) -> date:
    """The first Beijing date on which a deadline completes ``rule``'s minimum period from ``issued`` (UTC, or a
    Beijing date): the day of issue not counted; a period in days ends on its N-th day, or on the first working day
    after it when that day is a holiday (民法典 第二百零三条) — a deadline inside the holiday would take the holiday out of the period."""
    start = _day(issued)
    need = int(get_setting(bureau, rule.setting))
    return add_working_days(bureau, start, need) if rule.working_days else add_days(bureau, start, need)


def period_problem(bureau: Bureau, rule: PeriodRule, issued: date | datetime, deadline: datetime) -> Optional[str]:
    """Why ``deadline`` (UTC) is too soon after ``issued`` (UTC, or a Beijing date) under ``rule``, or None. Days are
    counted in Beijing dates, the day of issue not counted; working days by the one calendar (``earliest_deadline_day``)."""
    start, end = _day(issued), to_beijing(deadline).date()
    earliest = earliest_deadline_day(bureau, rule, issued)
    if end >= earliest:
        return None
    need = int(get_setting(bureau, rule.setting))
    unit = "个工作日" if rule.working_days else "日"
    have = working_days_between(bureau, start, end) if rule.working_days else max((end - start).days, 0)
    if have >= need:  # enough days, but the last of them is a holiday
        shortfall = (f"第 {need} 日（{start + timedelta(days=need):%Y-%m-%d}）为法定节假日或休息日，"
                     "期间顺延至其后第一个工作日（民法典第二百零三条）")
    else:
        shortfall = f"当前仅 {have} {unit}"
    return (f"{rule.what}不得少于 {need} {unit}（{rule.source}），{shortfall}；"
            f"截止时间最早为北京时间 {earliest:%Y-%m-%d}")


def change_problem(bureau: Bureau, rule: PeriodRule, changed: datetime, deadline: datetime) -> Optional[str]:
    """Why a deadline brought forward on ``changed`` (UTC) leaves too little notice before it, or None (counted as
    ``notice_days``)."""
    have = notice_days(bureau, rule, changed, deadline)
    if have >= rule.change_notice:
        return None
    unit = "个工作日" if rule.working_days else "日"
    return (f"提前截止时间影响响应文件编制，须在新的截止时间至少 {rule.change_notice} {unit}前通知（{rule.change_source}），"
            f"当前仅 {have} {unit}：请顺延截止时间")


def notice_earliest_day(bureau: Bureau, rule: PeriodRule, noticed: date | datetime) -> date:
    """The first Beijing date a deadline may fall on that leaves ``rule.change_notice`` days (working days when
    ``rule.working_days``) after a change of the documents notified on ``noticed`` (UTC, or a Beijing date).

    The law counts this notice back from the deadline: "在投标截止时间至少15日前，以书面形式通知" (财政部令第87号 第二十七条),
    "在提交首次响应文件截止之日5日前" (财库〔2014〕214号 第十条). Days are calendar days, as for the 等标期 (``period_problem``):
    Beijing dates, the day of the notice not counted (民法典 第二百零一条) — notified on the 1st, a deadline on the 16th
    leaves 15 days. Unlike the 等标期's last day, nothing is moved past a holiday: the period ends at the deadline the
    bureau chose, and what the law fixes is how long before it the suppliers knew (as ``change_problem`` counts)."""
    start = _day(noticed)
    if rule.working_days:
        return add_working_days(bureau, start, rule.change_notice)
    return start + timedelta(days=rule.change_notice)


def notice_days(bureau: Bureau, rule: PeriodRule, noticed: date | datetime, deadline: datetime) -> int:
    """The days (working days when ``rule.working_days``) a deadline leaves after a notice on ``noticed``, counted as
    ``notice_earliest_day`` counts them (0 when the deadline is that day or before)."""
    start, end = _day(noticed), to_beijing(deadline).date()
    return working_days_between(bureau, start, end) if rule.working_days else max((end - start).days, 0)


def amendment_rule(rule: PeriodRule) -> str:
    """The law's rule for a clarification or amendment that may affect how bids are prepared, in words."""
    unit = "个工作日" if rule.working_days else "日"
    return (f"可能影响投标（响应）文件编制的澄清或者修改，应当在截止时间至少 {rule.change_notice} {unit}前书面通知所有获取采购文件的"
            f"潜在供应商，不足 {rule.change_notice} {unit}的，应当顺延截止时间（{rule.change_source}）")


# --- counted from the 采购公告's posting on the designated media ---------------------------------------------------

def announced_on(procurement: Procurement) -> date:
    """The Beijing date the bid period counts from: the 采购公告's posting on the designated media when recorded (the
    legal announcement; it is never before evalhub's publication, ``media._check``), else evalhub's publication."""
    published = beijing_date(procurement.created_at)
    posting = procurement.media_posting
    return max(published, posting.posted_on) if posting is not None else published


def posting_problem(procurement: Procurement, deadline: Optional[datetime] = None) -> Optional[str]:
    """Why the bid deadline (``deadline``, else the procurement's own) is too soon after the 采购公告's posting on the
    designated media, or None: the sentence the bureau reads when it records the posting, on the engagement and
    procurement pages, in the API and in the refusal to open the bids.

    Only a posting later than evalhub's publication moves the start: posted the same day, the period counts from the
    day already checked when the procurement was opened (and at each change of its deadline), so a posting recorded on
    time never blocks a procurement that a later change of a bureau's setting alone would."""
    rule = PERIODS.get(procurement.method)
    deadline = deadline or procurement.bid_deadline
    posting = procurement.media_posting
    if rule is None or deadline is None or posting is None or posting.posted_on <= beijing_date(procurement.created_at):
        return None
    problem = period_problem(procurement.bureau, rule, posting.posted_on, deadline)
    if problem is None:
        return None
    return (f"采购公告于 {posting.posted_on:%Y-%m-%d} 在指定媒体发布（法定的公告，政府采购法第十一条），等标期自该日起算："
            f"{problem}")


def blocks_opening(procurement: Procurement) -> Optional[str]:
    """``posting_problem`` while it still stands in the way of the opening (the procurement open, not yet opened), with
    what to do; None otherwise."""
    if procurement.status != ProcurementStatus.OPEN:
        return None
    problem = posting_problem(procurement)
    return f"等标期不足，不能开标：{problem}。请先将投标截止时间延长至该日或之后" if problem else None
