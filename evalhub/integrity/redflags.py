"""Red flags on the bureaus' procurement history, after the Open Contracting Partnership's Cardinal library:
indicators computed from evalhub's own records, thresholds by interquartile-range fences over the whole
database (one province), each flag explained and linked to the procurements behind it, and beside it what
the flagged awards delivered (review score, rectification rounds, inspection findings, screening risk)
against the region's median.

The worker recomputes everything (``refresh``, hourly and on demand); the page reads the stored rows only.
"""
from __future__ import annotations

import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Iterable, Optional

import numpy as np
import sqlalchemy as sa

from evalhub.core import audit, concurrency, jobs, permissions
from evalhub.core.batches import batches
from evalhub.core.calendar import late_workdays_each
from evalhub.core.errors import Conflict, NotFound, ValidationFailed
from evalhub.core.models import Bureau, User
from evalhub.core.settings import SettingDef, get_setting, register
from evalhub.core.timeutil import beijing_today, to_beijing, utcnow
from evalhub.extensions import db
from evalhub.integrity.models import Indicator, RedFlag, RedFlagCase, RedFlagRefresh
from evalhub.procurement.models import (
    Award, Bid, BidStatus, Contract, ContractNotice, Engagement, JustificationDecision, MediaPosting, Procurement,
    ProcurementMethod, ProcurementStatus, ResultNotice,
)
from evalhub.review.models import ReviewPanel, Submission, SubmissionKind
from evalhub.screening.models import ReportScreening, RiskMethod
from evalhub.supervision.models import Finding, Inspection, InspectionStatus, Trigger
from evalhub.supervision.services import open_case

register(
    SettingDef("integrity.iqr_k", "红旗指标四分位距围栏系数", "采购诚信", 1.5, kind="decimal", minimum=0.5, maximum=5,
               help="超出 Q1 − k×IQR 或 Q3 + k×IQR 的取值为异常（Cardinal 默认 1.5）。"),
    SettingDef("integrity.frequent_bids", "“频繁投标却从未成交”最少投标次数", "采购诚信", 5, minimum=2, maximum=100,
               help="同一机构在本局投标达到该次数（且不低于全区投标次数的上围栏）仍未成交即提示。"),
)

COMPETITIVE = (ProcurementMethod.OPEN_TENDER, ProcurementMethod.COMPETITIVE_CONSULTATION)
MIN_DAYS = {ProcurementMethod.OPEN_TENDER: "procurement.min_days_open_tender",
            ProcurementMethod.COMPETITIVE_CONSULTATION: "procurement.min_days_consultation"}
QUALITY_LABELS = {"score": "首轮评审得分", "rounds": "报告评审轮次", "findings": "检查发现问题数", "risk": "筛查风险"}
# Higher is worse for every measure but the score.
WORSE_WHEN_HIGHER = {"score": False, "rounds": True, "findings": True, "risk": True}

EXPLAIN = {
    Indicator.SINGLE_BID: "竞争性方式只有一家有效投标，竞争不足（Cardinal：single bidder）。",
    Indicator.SHORT_PERIOD: ("投标期限仅为法定最短期限，潜在供应商准备时间最少（Cardinal：short submission period）；"
                             "期限自采购公告在指定媒体发布之日起算（政府采购法第十一条），发布晚于本系统的，可能低于法定最短期限（等标期不足）。"),
    Indicator.LOWBALL: "成交价与第二低报价之比低于全区下围栏：低价抢标后可能以质量找补（Cardinal：winning bid far below the next）。",
    Indicator.NEAR_CEILING: "成交价与最高限价之比高于全区上围栏：价格竞争不足（Cardinal：price close to the estimate）。",
    Indicator.DOMINANT_FIRM: "一家机构三年内在本局成交份额高于全区上围栏（Cardinal：market concentration）。",
    Indicator.LOSING_BIDDER: "频繁在本局投标却从未成交，可能为陪标（Cardinal：losing bidder）。",
    Indicator.ROTATION: "同一小组机构多次共同投标并轮流成交（围标轮换）。",
    Indicator.DISQUALIFICATIONS: "同一评审委员会认定无效的投标占比高于全区上围栏（Cardinal：many disqualifications）。",
    Indicator.ROTATION_SKIPPED: "框架协议顺序轮候跳过了入围机构（跳过理由见定标记录）。",
    Indicator.CONTRACT_NOTICE: ("合同签订后未在 2 个工作日内在指定媒体公告（政府采购法实施条例第五十条；本系统的公开页面不是指定媒体），"
                                "或至今未公告：公众和未中标供应商无从核对签订的合同与采购结果是否一致"
                                "（OCP 红旗：contract not published / late publication）。"),
    Indicator.RESULT_NOTICE: ("中标/成交结果未在确定供应商之日起 2 个工作日内在指定媒体公告（财政部令第87号第六十九条；本系统的公开页面"
                              "不是指定媒体），或至今未公告：未中标供应商和公众无从及时知晓结果，质疑期形同虚设"
                              "（OCP 红旗：award not published / late publication）。"),
}


def fences(values: Iterable[float], k: float) -> tuple[float, float]:
    """Tukey's fences: (Q1 − k·IQR, Q3 + k·IQR); (−inf, inf) with fewer than four values."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if len(data) < 4:
        return float("-inf"), float("inf")
    q1, q3 = np.percentile(data, [25, 75])
    return float(q1 - k * (q3 - q1)), float(q3 + k * (q3 - q1))


# === the figures the indicators read ====================================================================

@dataclass
class Row:
    """One procurement as the indicators see it."""

    id: int
    bureau_id: int
    year: int
    engagement_id: int
    method: ProcurementMethod
    status: ProcurementStatus
    ceiling: float
    period_days: Optional[int] = None
    bids: list[tuple[int, float, bool]] = field(default_factory=list)  # (firm, price, valid)
    winner: Optional[int] = None
    amount: Optional[float] = None
    reasons: str = ""
    # the contract announcement (实施条例 第五十条): its due date, and the working days it was (posted on the designated
    # media) or is (not yet) late — None when no contract was signed or it is not late. Only the media's posting is
    # the announcement (procurement/media.py); ``notice_here``: evalhub's own copy is out, no posting recorded.
    notice_due: Optional[date] = None
    notice_published: bool = False
    notice_late_workdays: Optional[int] = None
    notice_here: bool = False
    # published in evalhub before postings were recorded (owed nothing more): its lateness is evalhub's copy's
    notice_copy_only: bool = False
    # the result notices' postings on the designated media (87号令 第六十九条): those posted late, and those still owed
    results: list["ResultPosting"] = field(default_factory=list)
    # the period counts from the 采购公告's posting on the designated media, recorded later than evalhub's publication
    # (procurement/periods.py): the day it counts from, for the explanation
    period_from_posting: Optional[date] = None


@dataclass
class ResultPosting:
    """A result notice's posting as the red flag sees it: its due date, whether posted on the designated media, and
    the working days it was (posted) or is (still owed, counted by ``count_unpublished_lateness``) late."""

    notice_id: int
    due: date
    posted: bool
    late_workdays: Optional[int] = None


def _period_days(created: datetime, deadline: Optional[datetime], posted: Optional[date] = None) -> Optional[int]:
    """Days from the announcement to the deadline: from the posting on the designated media when it came later than
    evalhub's publication (the legal announcement, procurement/periods.py), else from the publication."""
    if deadline is None or created is None:
        return None
    start = max(to_beijing(created).date(), posted) if posted is not None else to_beijing(created).date()
    return (to_beijing(deadline).date() - start).days


def load_rows() -> list[Row]:
    rows: dict[int, Row] = {}
    for r in db.session.execute(
            sa.select(Procurement.id, Procurement.bureau_id, Engagement.year, Procurement.engagement_id, Procurement.method,
                      Procurement.status, Procurement.ceiling_price, Procurement.created_at, Procurement.bid_deadline,
                      MediaPosting.posted_on)
            .join(Engagement, Engagement.id == Procurement.engagement_id)
            .outerjoin(MediaPosting, MediaPosting.procurement_id == Procurement.id)):
        row = rows[r.id] = Row(r.id, r.bureau_id, r.year, r.engagement_id, r.method, r.status, float(r.ceiling_price),
                               _period_days(r.created_at, r.bid_deadline, r.posted_on))
        if r.posted_on is not None and r.created_at is not None and r.posted_on > to_beijing(r.created_at).date():
            row.period_from_posting = r.posted_on
    # sealed until the opening: who bid on an unopened procurement is nobody's to read, not even the bureau's
    for r in db.session.execute(sa.select(Bid.procurement_id, Bid.firm_id, Bid.price, Bid.status,
                                          Bid.justification_decision).join(Procurement, Procurement.id == Bid.procurement_id)
                                .where(Bid.status != BidStatus.WITHDRAWN, Procurement.opened_at.is_not(None))):
        valid = r.status == BidStatus.SUBMITTED and r.justification_decision != JustificationDecision.REJECTED
        rows[r.procurement_id].bids.append((r.firm_id, float(r.price), valid))
    for r in db.session.execute(sa.select(Award.procurement_id, Award.firm_id, Award.amount, Award.reasons)):
        row = rows[r.procurement_id]
        row.winner, row.amount, row.reasons = r.firm_id, float(r.amount), r.reasons or ""
    # the contract announcement of the award's contract: posted on the designated media (its due date and working
    # days late) or owed (evalhub's own copy out or not: it is no designated medium)
    for r in db.session.execute(
            sa.select(Award.procurement_id, Contract.notice_due_on, ContractNotice.id.label("notice_id"),
                      ContractNotice.due_on.label("copy_due"), ContractNotice.late_workdays.label("copy_late"),
                      MediaPosting.id.label("posting_id"), MediaPosting.due_on, MediaPosting.late_workdays)
            .join(Contract, Contract.award_id == Award.id)
            .outerjoin(ContractNotice, ContractNotice.contract_id == Contract.id)
            .outerjoin(MediaPosting, MediaPosting.contract_notice_id == ContractNotice.id)):
        row = rows[r.procurement_id]
        if r.posting_id is not None:  # its due date None when signed before the announcement was tracked (补录)
            row.notice_due, row.notice_published = r.due_on, True
            row.notice_late_workdays = r.late_workdays or None
        elif r.notice_id is not None and r.notice_due_on is None:  # published before postings were recorded
            row.notice_due, row.notice_published, row.notice_copy_only = r.copy_due, True, True
            row.notice_late_workdays = r.copy_late or None
        else:
            row.notice_due, row.notice_here = r.notice_due_on, r.notice_id is not None
    # the result notices' postings: recorded late (a revoked notice's too: it was late while the result stood), or
    # still owed (a revoked notice, or one published before evalhub tracked it, owes nothing: no stored date)
    for r in db.session.execute(
            sa.select(ResultNotice.procurement_id, ResultNotice.id, ResultNotice.media_due_on,
                      MediaPosting.due_on.label("posted_due"), MediaPosting.late_workdays)
            .outerjoin(MediaPosting, MediaPosting.result_notice_id == ResultNotice.id)
            .where(sa.or_(ResultNotice.media_due_on.is_not(None), MediaPosting.late_workdays > 0))
            .order_by(ResultNotice.id)):
        if r.late_workdays:
            rows[r.procurement_id].results.append(ResultPosting(r.id, r.posted_due, True, r.late_workdays))
        elif r.media_due_on is not None:
            rows[r.procurement_id].results.append(ResultPosting(r.id, r.media_due_on, False))
    return list(rows.values())


def count_unpublished_lateness(rows: list[Row], bureaus: dict[int, Bureau], today: date) -> None:
    """The working days an announcement, a result notice's posting, still owed is late today (the bureau's calendar),
    for ``compute``: one read of the calendar for every overdue contract and result notice of the province."""
    overdue: list[tuple[Any, int, date]] = [
        (row, row.bureau_id, row.notice_due) for row in rows if not row.notice_published and row.notice_due is not None
        and today > row.notice_due and row.bureau_id in bureaus]
    overdue += [(posting, row.bureau_id, posting.due) for row in rows if row.bureau_id in bureaus
                for posting in row.results if not posting.posted and today > posting.due]
    for (item, _, _), late in zip(overdue, late_workdays_each([(bureaus[b], due) for _, b, due in overdue], today)):
        if isinstance(item, ResultPosting):
            item.late_workdays = late
        else:
            item.notice_late_workdays = late


def load_quality() -> dict[int, dict[str, float]]:
    """Per engagement: first-round report score, report review rounds, inspection findings, highest risk."""
    quality: dict[int, dict[str, float]] = defaultdict(dict)
    for r in db.session.execute(
            sa.select(ReviewPanel.engagement_id, sa.func.count(ReviewPanel.id), sa.func.min(ReviewPanel.round))
            .where(ReviewPanel.kind == SubmissionKind.REPORT, ReviewPanel.engagement_id.is_not(None))
            .group_by(ReviewPanel.engagement_id)):
        quality[r[0]]["rounds"] = float(r[1])
    for r in db.session.execute(
            sa.select(ReviewPanel.engagement_id, ReviewPanel.score)
            .where(ReviewPanel.kind == SubmissionKind.REPORT, ReviewPanel.round == 1, ReviewPanel.score.is_not(None),
                   ReviewPanel.engagement_id.is_not(None))):
        quality[r[0]]["score"] = float(r[1])
    for r in db.session.execute(
            sa.select(Inspection.engagement_id, sa.func.count(Finding.id))
            .join(Finding, Finding.inspection_id == Inspection.id)
            .where(Inspection.engagement_id.is_not(None)).group_by(Inspection.engagement_id)):
        quality[r[0]]["findings"] = float(r[1])
    for r in db.session.execute(
            sa.select(Submission.engagement_id, sa.func.max(ReportScreening.risk))
            .join(ReportScreening, ReportScreening.submission_id == Submission.id)
            # an unscored upload (no text extracted) has no risk: its placeholder 0 is not a good report
            .where(Submission.kind == SubmissionKind.REPORT, Submission.engagement_id.is_not(None),
                   ReportScreening.method != RiskMethod.UNSCORED)
            .group_by(Submission.engagement_id)):
        quality[r[0]]["risk"] = float(r[1])
    return quality


def _inspected_engagements() -> set[int]:
    """Engagements with a closed inspection: their "findings" is a count (zero when nothing was found)."""
    return set(db.session.execute(sa.select(Inspection.engagement_id).where(
        Inspection.status == InspectionStatus.CLOSED, Inspection.engagement_id.is_not(None))).scalars())


def medians(quality: dict[int, dict[str, float]]) -> dict[str, Optional[float]]:
    out = {}
    for key in QUALITY_LABELS:
        values = [q[key] for q in quality.values() if key in q]
        out[key] = round(statistics.median(values), 4) if values else None
    return out


def quality_of(engagement_ids: Iterable[int], quality: dict[int, dict[str, float]]) -> dict[str, Any]:
    """The mean of each measure over the awards' engagements that have it, and how many had any."""
    ids = list(engagement_ids)
    out: dict[str, Any] = {"engagements": len(ids)}
    for key in QUALITY_LABELS:
        values = [quality[e][key] for e in ids if key in quality.get(e, {})]
        out[key] = round(sum(values) / len(values), 4) if values else None
    return out


def poor_quality(q: dict[str, Any], region: dict[str, Any]) -> list[str]:
    """The measures on which the flagged awards delivered worse than the region's median."""
    worse = []
    for key, higher in WORSE_WHEN_HIGHER.items():
        mine, median = q.get(key), region.get(key)
        if mine is None or median is None:
            continue
        if (mine > median) if higher else (mine < median):
            worse.append(key)
    return worse


# === the indicators =====================================================================================

@dataclass
class Flag:
    bureau_id: int
    year: int
    indicator: Indicator
    value: float
    threshold: float
    explanation: str
    procurement_ids: list[int]
    procurement_id: Optional[int] = None
    firm_id: Optional[int] = None


def _valid(row: Row) -> list[tuple[int, float, bool]]:
    return [b for b in row.bids if b[2]]


def compute(rows: list[Row], *, k: float, frequent_bids: int, min_days: Callable[[Row], Optional[int]],
            firm_names: dict[int, str]) -> tuple[list[Flag], dict[str, Any]]:
    """Every indicator over ``rows``: (flags, the fences used). Pure, so the tests build rows directly."""
    flags: list[Flag] = []
    name = lambda f: firm_names.get(f, f"机构#{f}")  # noqa: E731
    opened = [r for r in rows if r.method in COMPETITIVE and r.bids]

    # single valid bid in a competitive method
    for r in opened:
        if len(_valid(r)) == 1:
            flags.append(Flag(r.bureau_id, r.year, Indicator.SINGLE_BID, 1, 1, f"{r.method.label}只有 1 家有效投标",
                              [r.id], r.id, _valid(r)[0][0]))
    # bid period at the legal minimum
    for r in rows:
        minimum = min_days(r) if r.method in COMPETITIVE else None
        if minimum is not None and r.period_days is not None and r.period_days <= minimum:
            said = f"投标期限 {r.period_days} 日，法定最短 {minimum} 日"
            if r.period_from_posting is not None:
                said = (f"投标期限自采购公告在指定媒体发布之日（{r.period_from_posting:%Y-%m-%d}）起算为 {r.period_days} 日，"
                        f"法定最短 {minimum} 日")
            if r.period_days < minimum:
                said += "：等标期不足（低于法定最短期限）"
            flags.append(Flag(r.bureau_id, r.year, Indicator.SHORT_PERIOD, r.period_days, minimum, said, [r.id], r.id,
                              r.winner))
    # winner far below the second lowest valid price; winner close to the ceiling
    lowball, ceiling = {}, {}
    for r in rows:
        if r.winner is None or r.amount is None or r.method not in COMPETITIVE:
            continue
        others = sorted(p for f, p, v in _valid(r) if f != r.winner)
        if others and others[0] > 0:
            lowball[r.id] = r.amount / others[0]
        if r.ceiling > 0:
            ceiling[r.id] = r.amount / r.ceiling
    low_fence, _ = fences(lowball.values(), k)
    _, high_fence = fences(ceiling.values(), k)
    by_id = {r.id: r for r in rows}
    for pid, ratio in lowball.items():
        if ratio < low_fence:
            r = by_id[pid]
            flags.append(Flag(r.bureau_id, r.year, Indicator.LOWBALL, round(ratio, 4), round(low_fence, 4),
                              f"{name(r.winner)}以第二低报价的 {ratio:.0%} 成交（全区下围栏 {low_fence:.0%}）",
                              [pid], pid, r.winner))
    for pid, ratio in ceiling.items():
        if ratio > high_fence:
            r = by_id[pid]
            flags.append(Flag(r.bureau_id, r.year, Indicator.NEAR_CEILING, round(ratio, 4), round(high_fence, 4),
                              f"{name(r.winner)}以最高限价的 {ratio:.1%} 成交（全区上围栏 {high_fence:.1%}）",
                              [pid], pid, r.winner))
    # one firm's share of a bureau's awards over three years
    awards: dict[tuple[int, int], list[Row]] = defaultdict(list)
    for r in rows:
        if r.winner is not None:
            awards[(r.bureau_id, r.year)].append(r)
    years_by_bureau: dict[int, set[int]] = defaultdict(set)
    for bureau_id, year in awards:
        years_by_bureau[bureau_id].add(year)
    shares = {}
    for bureau_id, years in years_by_bureau.items():
        for year in years:
            window = [r for y in (year - 2, year - 1, year) for r in awards.get((bureau_id, y), [])]
            if len(window) < 5:
                continue
            firm, count = Counter(r.winner for r in window).most_common(1)[0]
            shares[(bureau_id, year)] = (count / len(window), firm, [r.id for r in window if r.winner == firm], len(window))
    _, share_fence = fences((s[0] for s in shares.values()), k)
    for (bureau_id, year), (share, firm, ids, total) in shares.items():
        if share > share_fence:
            flags.append(Flag(bureau_id, year, Indicator.DOMINANT_FIRM, round(share, 4), round(share_fence, 4),
                              f"{name(firm)}在 {year - 2}–{year} 年本局 {total} 项成交中占 {len(ids)} 项（{share:.0%}，"
                              f"全区上围栏 {share_fence:.0%}）", ids, None, firm))
    # a frequent bidder that never wins (per bureau)
    bids_by: dict[tuple[int, int], list[Row]] = defaultdict(list)
    for r in opened:
        for f, _price, _v in r.bids:
            bids_by[(r.bureau_id, f)].append(r)
    _, bid_fence = fences((len(v) for v in bids_by.values()), k)
    needed = max(frequent_bids, bid_fence if bid_fence != float("inf") else 0)  # too few firms for a fence: the setting
    for (bureau_id, firm), entered in bids_by.items():
        if len(entered) >= needed and not any(r.winner == firm for r in entered):
            decided = [r for r in entered if r.winner is not None]
            if decided:
                flags.append(Flag(bureau_id, max(r.year for r in entered), Indicator.LOSING_BIDDER, len(entered), needed,
                                  f"{name(firm)}在本局投标 {len(entered)} 次，从未成交", [r.id for r in entered], None, firm))
    # rotation among the same small group of bidders
    groups: dict[tuple[int, frozenset], list[Row]] = defaultdict(list)
    for r in opened:
        members = frozenset(f for f, _p, _v in r.bids)
        if 2 <= len(members) <= 4 and r.winner is not None:
            groups[(r.bureau_id, members)].append(r)
    for (bureau_id, members), together in groups.items():
        winners = {r.winner for r in together}
        if len(together) >= 3 and winners == set(members):
            flags.append(Flag(bureau_id, max(r.year for r in together), Indicator.ROTATION, len(together), 3,
                              f"{'、'.join(name(f) for f in sorted(members))}共同投标 {len(together)} 次，每家都成交过",
                              [r.id for r in together], None, None))
    # many bids declared invalid by one committee
    invalid = {r.id: sum(1 for b in r.bids if not b[2]) / len(r.bids) for r in opened if len(r.bids) >= 2}
    _, invalid_fence = fences(invalid.values(), k)
    for pid, share in invalid.items():
        r = by_id[pid]
        count = sum(1 for b in r.bids if not b[2])
        if count >= 2 and share > max(invalid_fence, 0):
            flags.append(Flag(r.bureau_id, r.year, Indicator.DISQUALIFICATIONS, round(share, 4), round(invalid_fence, 4),
                              f"评审委员会认定 {count}/{len(r.bids)} 份投标无效", [pid], pid, r.winner))
    # framework rotations that skipped shortlisted firms
    for r in rows:
        if r.method == ProcurementMethod.FRAMEWORK_ROTATION and "跳过：" in r.reasons:
            skipped = r.reasons.split("跳过：", 1)[1]
            count = len(re.findall(r"\d+号", skipped)) or 1
            flags.append(Flag(r.bureau_id, r.year, Indicator.ROTATION_SKIPPED, count, 0,
                              f"轮候跳过 {count} 家：{skipped[:300]}", [r.id], r.id, r.winner))
    # the contract announcement late (published after its day) or missing (owed past its day): the purchaser's, so
    # no firm is named; the value is the working days late, against the law's 2 working days (threshold 0)
    for r in rows:
        late = r.notice_late_workdays
        if r.notice_due is None or not late:
            continue
        if r.notice_copy_only:
            said = f"合同公告应于 {r.notice_due:%Y-%m-%d} 前发布，晚 {late} 个工作日在本系统发布（未登记指定媒体发布）"
        elif r.notice_published:
            said = f"合同公告应于 {r.notice_due:%Y-%m-%d} 前发布，晚 {late} 个工作日在指定媒体发布"
        elif r.notice_here:
            said = (f"合同公告应于 {r.notice_due:%Y-%m-%d} 前在指定媒体发布，已在本系统发布但未登记指定媒体发布"
                    f"（已逾期 {late} 个工作日）")
        else:
            said = f"合同公告应于 {r.notice_due:%Y-%m-%d} 前发布，至今未发布（已逾期 {late} 个工作日）"
        flags.append(Flag(r.bureau_id, r.year, Indicator.CONTRACT_NOTICE, late, 0, said, [r.id], r.id, None))
    # a result notice posted on the designated media after its 2 working days, or still not posted past them: the
    # purchaser's, so no firm is named; the value is the working days late (threshold 0), as for the contract
    for r in rows:
        word = r.method.result_word
        for posting in r.results:
            late = posting.late_workdays
            if not late:
                continue
            if posting.posted:
                said = f"{word}结果公告应于 {posting.due:%Y-%m-%d} 前在指定媒体发布，晚 {late} 个工作日在指定媒体发布"
            else:
                said = (f"{word}结果公告应于 {posting.due:%Y-%m-%d} 前在指定媒体发布，已在本系统发布但未登记指定媒体发布"
                        f"（已逾期 {late} 个工作日）")
            flags.append(Flag(r.bureau_id, r.year, Indicator.RESULT_NOTICE, late, 0, said, [r.id], r.id, None))
    used = {"iqr_k": k, "lowball_low": low_fence, "ceiling_high": high_fence, "share_high": share_fence,
            "bids_high": bid_fence, "invalid_high": invalid_fence}
    return flags, {key: (None if value in (float("inf"), float("-inf")) else round(value, 4)) for key, value in used.items()}


# === the refresh (worker) ==============================================================================

def _region(bureaus: list[Bureau]) -> Optional[Bureau]:
    return next((b for b in bureaus if b.parent_id is None), None)


def refresh() -> RedFlagRefresh:
    """Recompute every red flag with the quality of what the flagged awards delivered."""
    from evalhub.registry.models import Firm

    started = time.perf_counter()
    concurrency.serialise("integrity.red_flags")
    bureaus = list(db.session.execute(sa.select(Bureau)).scalars())
    by_id = {b.id: b for b in bureaus}
    root = _region(bureaus)
    k = float(get_setting(root, "integrity.iqr_k"))
    rows = load_rows()
    count_unpublished_lateness(rows, by_id, beijing_today())
    minimum_cache: dict[tuple[int, str], int] = {}

    def min_days(row: Row) -> Optional[int]:
        key = MIN_DAYS.get(row.method)
        if key is None:
            return None
        if (row.bureau_id, key) not in minimum_cache:
            minimum_cache[(row.bureau_id, key)] = int(get_setting(by_id.get(row.bureau_id), key))
        return minimum_cache[(row.bureau_id, key)]

    names = dict(db.session.execute(sa.select(Firm.id, Firm.name)).all())
    flags, used = compute(rows, k=k, frequent_bids=int(get_setting(root, "integrity.frequent_bids")), min_days=min_days,
                          firm_names=names)
    quality = load_quality()
    for engagement_id in _inspected_engagements():
        quality[engagement_id].setdefault("findings", 0.0)
    region = medians(quality)
    engagement_of = {r.id: r.engagement_id for r in rows}
    winner_of = {r.id: r.winner for r in rows}
    now = utcnow()
    db.session.execute(sa.delete(RedFlag))
    values = []
    for f in flags:
        # What the flag's awards delivered: the firm's own awards among them when the flag names a firm.
        awarded = [p for p in f.procurement_ids if winner_of.get(p) is not None
                   and (f.firm_id is None or winner_of[p] == f.firm_id)]
        q = quality_of((engagement_of[p] for p in awarded), quality)
        q["worse"] = poor_quality(q, region)
        values.append({"bureau_id": f.bureau_id, "year": f.year, "indicator": f.indicator, "procurement_id": f.procurement_id,
                       "firm_id": f.firm_id, "value": float(f.value), "threshold": float(f.threshold),
                       "explanation": f.explanation[:1000], "procurement_ids": f.procurement_ids[:200], "quality": q,
                       "computed_at": now})
    for part in batches(values, 1000):
        db.session.execute(sa.insert(RedFlag), part)
    used["hit_rates"] = hit_rates()
    record = RedFlagRefresh(computed_at=now, procurements=len(rows), flags=len(flags),
                            duration_ms=int((time.perf_counter() - started) * 1000), medians=region, fences=used)
    db.session.add(record)
    db.session.flush()
    return record


@jobs.periodic("integrity.red_flags", minute="41")
def refresh_hourly() -> RedFlagRefresh:
    return refresh()


@jobs.job_kind("integrity.red_flags")
def _refresh_job(job, report) -> dict:
    report(0, 1, "正在计算采购红旗指标")
    record = refresh()
    db.session.commit()
    report(1, 1, "已完成")
    return {"message": f"已计算 {record.procurements} 个采购项目，红旗 {record.flags} 条", "refresh_id": record.id}


def start_refresh(actor: User):
    permissions.require(actor, "redflags.refresh")
    from datetime import timedelta

    from evalhub.core.models import Job, JobStatus

    # A double click (or two administrators at once) while one recomputation of the whole region waits gets
    # that job back; a job stuck for over an hour (a worker that died) does not block a new one.
    concurrency.serialise("integrity.red_flags.start")
    waiting = db.session.execute(sa.select(Job).where(
        Job.kind == "integrity.red_flags", Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
        Job.created_at >= utcnow() - timedelta(hours=1)).order_by(Job.id.desc()).limit(1)).scalar_one_or_none()
    if waiting is not None:
        return waiting
    return jobs.submit("integrity.red_flags", "重新计算采购红旗指标", {}, actor=actor, bureau_id=actor.bureau_id)


def hit_rates() -> dict[str, dict[str, float]]:
    """The labels the inspections gave: per indicator, how many closed cases opened from its flags found
    something (the share ranks the indicators on the page: those that were borne out first)."""
    out: dict[str, dict[str, float]] = {}
    closed = db.session.execute(
        sa.select(RedFlagCase.indicator, Inspection.id, sa.func.count(Finding.id))
        .join(Inspection, Inspection.id == RedFlagCase.inspection_id)
        .outerjoin(Finding, Finding.inspection_id == Inspection.id)
        .where(Inspection.status == InspectionStatus.CLOSED)
        .group_by(RedFlagCase.indicator, Inspection.id)).all()
    for indicator, _inspection, findings in closed:
        entry = out.setdefault(Indicator(indicator).value, {"closed": 0, "found": 0})
        entry["closed"] += 1
        entry["found"] += 1 if findings else 0
    for entry in out.values():
        entry["rate"] = round(entry["found"] / entry["closed"], 4)
    return out


def _ranking(refresh: Optional[RedFlagRefresh]):
    """ORDER BY term: indicators whose past cases were borne out most often first (unlabelled ones after)."""
    rates = ((refresh.fences or {}).get("hit_rates") or {}) if refresh else {}
    if not rates:
        return sa.literal(0)
    return sa.case({value: -entry["rate"] for value, entry in rates.items()}, value=RedFlag.indicator, else_=0)


# === reading ===========================================================================================

def latest_refresh() -> Optional[RedFlagRefresh]:
    return db.session.execute(sa.select(RedFlagRefresh).order_by(RedFlagRefresh.id.desc()).limit(1)).scalar_one_or_none()


def flags_stmt(actor: User, *, bureau: Optional[Bureau] = None, year: Optional[int] = None,
               firm_id: Optional[int] = None, indicator: Optional[Indicator] = None) -> sa.Select:
    """The red flags the actor may read, narrowed (a bureau: it and the bureaus below it)."""
    permissions.require(actor, "redflags.view", bureau)
    stmt = permissions.scope(actor, sa.select(RedFlag), RedFlag)
    if bureau is not None:
        stmt = stmt.where(RedFlag.bureau_id.in_(permissions.subtree_ids(bureau)))
    if year is not None:
        stmt = stmt.where(RedFlag.year == year)
    if firm_id is not None:
        stmt = stmt.where(RedFlag.firm_id == firm_id)
    if indicator is not None:
        stmt = stmt.where(RedFlag.indicator == indicator)
    return stmt.order_by(RedFlag.year.desc(), _ranking(latest_refresh()), RedFlag.indicator, RedFlag.id)


def counts(stmt: sa.Select) -> dict[Indicator, int]:
    sub = stmt.order_by(None).subquery()
    return {Indicator(i): n for i, n in db.session.execute(
        sa.select(sub.c.indicator, sa.func.count()).group_by(sub.c.indicator)).all()}


def case_of(flag: RedFlag) -> Optional[RedFlagCase]:
    return db.session.execute(sa.select(RedFlagCase).where(
        RedFlagCase.indicator == flag.indicator, RedFlagCase.firm_id == flag.firm_id,
        RedFlagCase.procurement_id.is_(None) if flag.procurement_id is None else RedFlagCase.procurement_id == flag.procurement_id)
        .order_by(RedFlagCase.id.desc()).limit(1)).scalar_one_or_none()


def open_inspection(flag: RedFlag, actor: User) -> Inspection:
    """A flag whose awards delivered poor quality opens a targeted inspection (supervision's entry point), the
    flag and the quality figures recorded as its trigger; its outcome is the label the flag earned."""
    if not permissions.visible(actor, flag):
        raise NotFound("未找到该红旗提示。")
    bureau = db.session.get(Bureau, flag.bureau_id)
    permissions.require(actor, "supervision.manage", bureau)
    if flag.firm_id is None:
        raise ValidationFailed("该红旗未指向某一家机构，请从相关采购项目逐一核查。", {"flag": "没有对应机构"})
    worse = (flag.quality or {}).get("worse") or []
    if not worse:
        raise ValidationFailed("该红旗对应成交项目的交付质量不低于全区中位数，无需据此立案；如有其他线索请在监督检查中立案。",
                               {"flag": "交付质量未见偏低"})
    concurrency.serialise(f"integrity.case:{flag.indicator.value}:{flag.firm_id}:{flag.procurement_id}")
    existing = case_of(flag)
    if existing is not None:
        inspection = db.session.get(Inspection, existing.inspection_id)
        if inspection is not None and inspection.status != InspectionStatus.CLOSED:
            raise Conflict(f"已据该红旗立案检查（检查 #{inspection.id}），请在监督检查中办理。")
    engagement = None
    if flag.procurement_id is not None:
        procurement = db.session.get(Procurement, flag.procurement_id)
        engagement = procurement.engagement if procurement and procurement.engagement.firm_id == flag.firm_id else None
    from evalhub.registry.models import Firm

    firm = db.session.get(Firm, flag.firm_id)
    q = flag.quality or {}
    figures = "，".join(f"{QUALITY_LABELS[key]} {q[key]:.2f}" for key in worse if q.get(key) is not None)
    detail = (f"采购诚信红旗（红旗#{flag.id}，{flag.indicator.label}，{flag.year} 年）：{flag.explanation}。"
              f"相关成交项目交付质量低于全区中位数：{figures}。")
    inspection = open_case(bureau, actor, trigger=Trigger.RED_FLAG, detail=detail, firm=firm, engagement=engagement)
    db.session.add(RedFlagCase(bureau_id=bureau.id, indicator=flag.indicator, procurement_id=flag.procurement_id,
                               firm_id=firm.id, inspection_id=inspection.id, opened_by_id=actor.id))
    audit.record("integrity.case_opened", inspection, actor=actor, bureau_id=bureau.id,
                 summary=f"依据采购红旗“{flag.indicator.label}”对{firm.name}立案检查",
                 payload={"red_flag_id": flag.id, "inspection_id": inspection.id})
    return inspection


def outcomes_for(flags: list[RedFlag]) -> dict[int, Optional[str]]:
    """Each flag's case outcome (``case_outcome``), read for a whole page at once."""
    firm_ids = {f.firm_id for f in flags if f.firm_id is not None}
    cases: dict[tuple, RedFlagCase] = {}
    if firm_ids:
        for case in db.session.execute(sa.select(RedFlagCase).where(RedFlagCase.firm_id.in_(firm_ids))
                                       .order_by(RedFlagCase.id)).scalars():
            cases[(case.indicator, case.firm_id, case.procurement_id)] = case
    return {f.id: case_outcome(cases.get((f.indicator, f.firm_id, f.procurement_id))) for f in flags}


def case_outcome(case: Optional[RedFlagCase]) -> Optional[str]:
    """The label a flag earned: the inspection's state, and once closed whether anything was found."""
    if case is None:
        return None
    inspection = db.session.get(Inspection, case.inspection_id)
    if inspection is None:
        return None
    if inspection.status != InspectionStatus.CLOSED:
        return f"检查 #{inspection.id} {inspection.status.label}"
    return f"检查 #{inspection.id} 已办结：" + (f"发现问题 {len(inspection.findings)} 项" if inspection.findings else "未发现问题")
