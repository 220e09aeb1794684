"""Annual credit rating of firms (DOMAIN.md §6), from what evalhub recorded, and its lifecycle:
draft → published for objection (working days) → objections answered → final. Procurement reads grades
only through ``final_grade``."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from evalhub.core import audit, bureau_tree, calendar, concurrency, files, jobs, permissions
from evalhub.core.batches import batches
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from evalhub.core.formatting import points_text
from evalhub.core.notifications import emit, one_reading
from evalhub.core.calendar import (  # noqa: F401 — the calendar is core's; credit keeps its names
    NATIONAL_CALENDAR, add_working_days, ensure_national_calendar, is_provisional, is_workday, working_days_between,
)
from evalhub.core.models import Bureau, User
from evalhub.core.settings import get_setting, register_together
from evalhub.core.summaries import KeptCount
from evalhub.core.timeutil import beijing_date, beijing_today, beijing_year_start, utcnow, years_before
from evalhub.credit.models import (
    CreditCorrection, CreditGrade, CreditGradeCount, CreditObjection, CreditRating, CreditRatingCount,
    ExternalCreditRecord, ExternalRecordKind, ObjectionDecision, RatingStatus,
)
from evalhub.extensions import db
from evalhub.procurement.eligibility import eligibility_check
from evalhub.procurement.models import Contract, Engagement, EngagementState as S, ProcurementMethod
from evalhub.registry.models import Firm
from evalhub.registry.services import parse_enum

__all__ = ["CreditGrade", "final_grade", "compute", "publish", "object_to", "answer", "finalise"]

CENT = Decimal("0.01")
COMPLETED = (S.ACCEPTED, S.PUBLISHED, S.ARCHIVED)


def _q(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


# === working-day calendar (the calendar itself is core's; a bureau edits its own days here) =======================

def set_calendar_day(bureau: Bureau, day: date, is_workday_: bool, note: str, actor: User) -> calendar.Correction:
    """A bureau corrects its own calendar (a local holiday, a make-up day). The correction itself — the row, the
    open stored deadlines it moves in this bureau's tree, the audit event and the notices — is core's
    (``core.calendar.correct``), so that it holds however the calendar is corrected; here: who may, and the note."""
    permissions.require(actor, "credit.manage", bureau)
    note = (note or "").strip()
    if not note:
        raise ValidationFailed("请注明节假日或调休名称。", {"note": "必填"})
    if len(note) > 100:
        raise ValidationFailed("说明不能超过 100 个字符。", {"note": "说明不能超过 100 个字符"})
    return calendar.correct(bureau, day, is_workday_, note, actor=actor)



# === computing =====================================================================================

@dataclass
class Component:
    code: str
    label: str
    maximum: Decimal
    points: Decimal
    detail: list[str]
    records: list[dict[str, Any]]

    def as_dict(self) -> dict:
        return {"code": self.code, "label": self.label, "max": str(self.maximum), "points": str(self.points),
                "detail": self.detail, "records": self.records}


def grade_cuts(bureau: Bureau) -> dict[str, str]:
    """The bureau's grade lines now (``credit.cut_a/b/c``), as a rating keeps them."""
    return {k: points_text(get_setting(bureau, f"credit.cut_{k}")) for k in "abc"}


def grade_for(cuts: dict[str, str], total: Decimal) -> CreditGrade:
    for key, grade in (("a", CreditGrade.A), ("b", CreditGrade.B), ("c", CreditGrade.C)):
        if total >= Decimal(cuts[key]):
            return grade
    return CreditGrade.D


def grade_lines(cuts: dict[str, str]) -> str:
    """Grade lines as the pages state them (those ``grade_for`` applies):
    “A 级 ≥ 90 分，B 级 80–90 分，C 级 60–80 分，D 级 60 分以下”."""
    a, b, c = cuts["a"], cuts["b"], cuts["c"]
    return f"A 级 ≥ {a} 分，B 级 {b}–{a} 分，C 级 {c}–{b} 分，D 级 {c} 分以下"


def stated_lines(ratings: Iterable[CreditRating]) -> list[tuple[str, int, str]]:
    """(bureau name, year, lines) for the ratings listed: each with the lines it was graded on — a rating computed
    before they were kept, with its bureau's lines now (their walks up to the root read at once)."""
    ratings = list(ratings)
    older = sorted({r.bureau for r in ratings if r.grade_cuts is None}, key=lambda b: b.path)
    bureau_tree.hold_chains(older)
    now = {b.id: grade_cuts(b) for b in older}
    seen = {(r.bureau.path, r.bureau.name, r.year, grade_lines(r.grade_cuts or now[r.bureau_id])) for r in ratings}
    return [(name, year, lines) for _path, name, year, lines in sorted(seen, key=lambda s: (-s[2], s[0], s[3]))]


def _weight(bureau: Bureau, key: str) -> Decimal:
    return Decimal(str(get_setting(bureau, f"credit.weight_{key}")))


def _setting_decimal(bureau: Bureau, key: str) -> Decimal:
    return Decimal(str(get_setting(bureau, key)))


COMPONENTS = ("quality", "performance", "feedback", "supervision", "external")


def settings_problems(bureau: Bureau) -> list[str]:
    """What makes the bureau's credit settings unusable together (each is valid alone): the components must add up
    to 100, so a total is out of 100; the lines must fall A > B > C, or a grade cannot be reached."""
    problems = []
    total = sum((_weight(bureau, key) for key in COMPONENTS), Decimal("0"))
    if total != 100:
        problems.append(f"各项分值合计应为 100（现为 {total:g}）")
    cuts = [_setting_decimal(bureau, f"credit.cut_{g}") for g in "abc"]
    if not cuts[0] > cuts[1] > cuts[2]:
        problems.append(f"分数线应为 A 级 > B 级 > C 级（现为 {cuts[0]:g}、{cuts[1]:g}、{cuts[2]:g}）")
    return problems


# Checked when a bureau saves or clears one of them, not only when a year is computed.
register_together([f"credit.weight_{key}" for key in COMPONENTS] + [f"credit.cut_{g}" for g in "abc"], settings_problems)


def rated_firm_ids(bureau: Bureau, year: int) -> set[int]:
    """Firms that worked for this bureau (or its lower bureaus) in the year, and firms its inspections found
    violating intentionally in the year though they worked for it on nothing (a colluding bidder that won
    nothing): those get a row, not rated, on the watch list, so the violation reaches eligibility."""
    return set(db.session.execute(_subjects(bureau, year)).scalars())


def _work_year(year: int, created_at):
    """A complaint's or finding's year: its engagement's, or the Beijing year it was made in when it names none
    (an inspection of 2025's engagements happens in 2026). For a statement joined to ``Engagement``."""
    made_in_year = sa.and_(created_at >= beijing_year_start(year), created_at < beijing_year_start(year + 1))
    return sa.case((Engagement.id.is_not(None), Engagement.year == year), else_=made_in_year)


def _late(bureau: Bureau, year: int):
    """A finding, of any severity, made in the Beijing year ``year`` on work of an earlier year whose rating by this
    bureau is already final and was computed before the finding (a random inspection of last year's engagements,
    after the rating): the final rating never changes, so the finding counts in this year's rating instead — a
    minor, general or serious one deducted by its severity, an intentional one on the watch list (not on the
    score) — and makes the firm a subject of this year's rating; never twice (a rating computed after the
    finding holds it, by the work's year). For a statement joined to ``Finding`` and (outer) ``Engagement``."""
    from evalhub.supervision.models import Finding

    # made in ``year`` — or made in its work year itself, after that year's final rating: then the next year takes it
    made = sa.and_(Finding.created_at < beijing_year_start(year + 1), sa.or_(
        Finding.created_at >= beijing_year_start(year), Engagement.year == year - 1))
    return sa.and_(_carried(bureau), Engagement.year < year, made)


def _carried(bureau: Bureau):
    """A finding on work of a year whose rating by this bureau was final before the finding was made: that year
    never takes it (its ratings are not computed again, nor given a new row for it) — a later year does
    (``_late``). For a statement joined to ``Finding`` and (outer) ``Engagement``."""
    from evalhub.supervision.models import Finding

    work_year = sa.select(CreditRating.id).where(CreditRating.bureau_id == bureau.id, CreditRating.year == Engagement.year)
    final_before = [CreditRating.status == RatingStatus.FINAL, CreditRating.computed_at < Finding.created_at]
    firm_row = work_year.where(CreditRating.firm_id == Finding.firm_id)
    # the firm's own row of the work year, final before the finding; or none at all (a colluding bidder that won
    # nothing) in a year the bureau's ratings are final before the finding: either way that year never takes it
    final = sa.or_(firm_row.where(*final_before).exists(),
                   sa.and_(~firm_row.exists(), work_year.where(*final_before).exists()))
    return sa.and_(Engagement.id.is_not(None), final)


def _subjects(bureau: Bureau, year: int) -> sa.CompoundSelect:
    """The ids of the firms the bureau's rating of the year covers (``rated_firm_ids``), as a statement."""
    from evalhub.supervision.models import Finding, Inspection, Severity

    subtree = sa.select(Bureau.id).where(Bureau.path.startswith(bureau.path))
    worked = sa.select(Engagement.firm_id).where(
        Engagement.bureau_id.in_(subtree), Engagement.year == year, Engagement.firm_id.is_not(None))
    violated = (sa.select(Finding.firm_id).join(Inspection, Inspection.id == Finding.inspection_id)
                .outerjoin(Engagement, Engagement.id == Inspection.engagement_id)
                .where(Finding.firm_id.is_not(None), Inspection.bureau_id.in_(subtree), sa.or_(
                    sa.and_(Finding.severity == Severity.INTENTIONAL, _work_year(year, Finding.created_at),
                            ~_carried(bureau)),
                    _late(bureau, year))))
    return sa.union(worked, violated)


@dataclass
class _FirmYear:
    """What the rating reads about one firm's year, as plain rows (see ``_year_records``)."""
    engagements: list[Any]                 # rows: id, firm_id, state, reference, name, plan_due, report_due (no contract: None)
    first_rounds: list[Any]                # first-round report panels with a score: id, engagement_id, score, passed
    first_submitted: dict[tuple[int, Any], tuple[int, datetime]]  # (engagement id, kind) → version 1's (id, submitted_at)
    extra_rounds: int                      # report panels after round 1
    ratings: list[Decimal]                 # commissioner ratings' totals
    complaints: list[Any]                  # substantiated complaints: id, firm_id, reference
    findings: list[Any]                    # firm_id, inspection_id, severity, description
    late: list[Any]                        # findings on work of a year already rated final (``_late``)
    external: list[Any]                    # id, firm_id, kind, description, deduction
    corrections: dict[str, Any] = field(default_factory=dict)  # "submission:12" → its latest CreditCorrection


def _year_records(bureau: Bureau, year: int, firm_id: int | None = None) -> dict[int, _FirmYear]:
    """Everything the rating reads for the bureau's year, grouped by firm: one query per kind of record
    instead of a dozen per firm. ``firm_id`` None: every firm that worked for the bureau (or its lower
    bureaus) in the year, as ``rated_firm_ids``."""
    from evalhub.review.models import CommissionerRating, ReviewPanel, Submission, SubmissionKind
    from evalhub.supervision.models import Complaint, Finding, Inspection

    subtree = sa.select(Bureau.id).where(Bureau.path.startswith(bureau.path))
    in_year = [Engagement.bureau_id.in_(subtree), Engagement.year == year]
    firms = (Engagement.firm_id == firm_id) if firm_id is not None else Engagement.firm_id.is_not(None)
    engagement_ids = sa.select(Engagement.id).where(*in_year, firms)
    subjects = _subjects(bureau, year).subquery()
    subject_ids = [firm_id] if firm_id is not None else db.session.execute(sa.select(subjects.c[0])).scalars().all()

    out: dict[int, _FirmYear] = {}
    firm_of: dict[int, int] = {}

    def of(fid: int) -> _FirmYear:
        if fid not in out:
            out[fid] = _FirmYear([], [], {}, 0, [], [], [], [], [], {})
        return out[fid]

    def firm_filter(column):
        return column == firm_id if firm_id is not None else column.in_(sa.select(subjects.c[0]))

    for row in db.session.execute(
            sa.select(Engagement.id, Engagement.firm_id, Engagement.state, Engagement.reference, Engagement.name,
                      Contract.plan_due, Contract.report_due)
            .outerjoin(Contract, Contract.engagement_id == Engagement.id)
            .where(*in_year, firms).order_by(Engagement.id)):
        firm_of[row.id] = row.firm_id
        of(row.firm_id).engagements.append(row)
    for fid in subject_ids:  # a firm rated for a violation alone has no engagement row
        of(fid)
    if not out:
        return out
    for row in db.session.execute(
            sa.select(ReviewPanel.id, ReviewPanel.engagement_id, ReviewPanel.score, ReviewPanel.passed).where(
                ReviewPanel.engagement_id.in_(engagement_ids), ReviewPanel.kind == SubmissionKind.REPORT,
                ReviewPanel.round == 1, ReviewPanel.score.is_not(None)).order_by(ReviewPanel.id)):
        of(firm_of[row.engagement_id]).first_rounds.append(row)
    for submission_id, engagement_id, kind, submitted_at in db.session.execute(
            sa.select(Submission.id, Submission.engagement_id, Submission.kind, Submission.submitted_at).where(
                Submission.engagement_id.in_(engagement_ids), Submission.version == 1)):
        of(firm_of[engagement_id]).first_submitted[(engagement_id, kind)] = (submission_id, submitted_at)
    for engagement_id, count in db.session.execute(
            sa.select(ReviewPanel.engagement_id, sa.func.count(ReviewPanel.id)).where(
                ReviewPanel.engagement_id.in_(engagement_ids), ReviewPanel.kind == SubmissionKind.REPORT,
                ReviewPanel.round > 1).group_by(ReviewPanel.engagement_id)):
        of(firm_of[engagement_id]).extra_rounds += count
    for engagement_id, total in db.session.execute(
            sa.select(CommissionerRating.engagement_id, CommissionerRating.total).where(
                CommissionerRating.engagement_id.in_(engagement_ids)).order_by(CommissionerRating.id)):
        of(firm_of[engagement_id]).ratings.append(total)
    # Complaints and findings count in the rating of the bureau that received or found them (and of the
    # bureaus above it), like external records: never in a sibling's, so one fact is not deducted twice.
    # Complaints and findings count for the year of the work they concern (an inspection of 2025's
    # engagements happens in 2026), or the Beijing year they were made in when no engagement is named.
    def gather(stmt, into: str) -> None:
        """Append each row of ``stmt`` to the ``into`` list of its firm, for firms that worked in the year."""
        for row in db.session.execute(stmt):
            if row.firm_id in out:
                getattr(out[row.firm_id], into).append(row)

    gather(sa.select(Complaint.id, Complaint.firm_id, Complaint.reference).outerjoin(
               Engagement, Engagement.reference == Complaint.engagement_reference).where(
               firm_filter(Complaint.firm_id), Complaint.substantiated.is_(True), Complaint.bureau_id.in_(subtree),
               _work_year(year, Complaint.created_at))
           .order_by(Complaint.id), "complaints")
    gather(sa.select(Finding.id, Finding.firm_id, Finding.inspection_id, Finding.severity, Finding.description)
           .join(Inspection, Inspection.id == Finding.inspection_id).outerjoin(
               Engagement, Engagement.id == Inspection.engagement_id).where(
               firm_filter(Finding.firm_id), Inspection.bureau_id.in_(subtree), _work_year(year, Finding.created_at),
               ~_carried(bureau))
           .order_by(Finding.id), "findings")
    gather(sa.select(Finding.id, Finding.firm_id, Finding.inspection_id, Finding.severity, Finding.description,
                     Engagement.year.label("work_year"))
           .join(Inspection, Inspection.id == Finding.inspection_id).outerjoin(
               Engagement, Engagement.id == Inspection.engagement_id).where(
               firm_filter(Finding.firm_id), Inspection.bureau_id.in_(subtree), _late(bureau, year))
           .order_by(Finding.id), "late")
    # One penalty is deducted once: the same record (firm, kind, date, text) entered by two bureaus of the subtree
    # (a county and its prefecture, two counties) is read once, as the first entered; each bureau's own rating
    # still reads the one it entered.
    earlier = aliased(ExternalCreditRecord)
    twin_before = sa.exists().where(
        earlier.firm_id == ExternalCreditRecord.firm_id, earlier.kind == ExternalCreditRecord.kind,
        earlier.occurred_on == ExternalCreditRecord.occurred_on, earlier.description == ExternalCreditRecord.description,
        earlier.id < ExternalCreditRecord.id, earlier.bureau_id.in_(subtree))
    gather(sa.select(ExternalCreditRecord.id, ExternalCreditRecord.firm_id, ExternalCreditRecord.kind,
                     ExternalCreditRecord.description, ExternalCreditRecord.deduction).where(
               firm_filter(ExternalCreditRecord.firm_id), ExternalCreditRecord.bureau_id.in_(subtree),
               sa.extract("year", ExternalCreditRecord.occurred_on) == year, ~twin_before)
           .order_by(ExternalCreditRecord.id), "external")
    # Corrections decided on upheld objections to this bureau's rating of the year: the rating reads the
    # corrected fact instead of the record (which stays as it was); the latest correction of a record wins.
    stmt = sa.select(CreditCorrection, CreditRating.firm_id).join(CreditRating, CreditRating.id == CreditCorrection.rating_id).where(
        CreditRating.bureau_id == bureau.id, CreditRating.year == year).order_by(CreditCorrection.id)
    if firm_id is not None:
        stmt = stmt.where(CreditRating.firm_id == firm_id)
    for correction, fid in db.session.execute(stmt):
        if fid in out:
            out[fid].corrections[f"{correction.record_type}:{correction.record_id}"] = correction
    return out


def firm_components(bureau: Bureau, firm: Firm, year: int, today: date | None = None) -> tuple[bool, list[Component], list[str]]:
    """(rated, components, intentional violations) for one firm, from recorded data only."""
    records = _year_records(bureau, year, firm.id).get(firm.id)
    return _components(bureau, records, today or beijing_today()) if records is not None else (False, [], [])


def _watch_only(bureau: Bureau, findings: list[Any], excluded: list[Any], late: list[Any],
                late_struck: list[Any]) -> list[Component]:
    """A firm not rated (no completed engagement) but found violating intentionally, or with a finding made after
    an earlier year's final rating (``_late``): no points, yet those findings are on the rating as records of
    监督检查, for the firm to object to."""
    from evalhub.supervision.models import Severity

    counted = [f for f in findings if f.severity == Severity.INTENTIONAL] + late
    struck = [f for f in excluded if f.severity == Severity.INTENTIONAL] + late_struck
    if not counted and not struck:
        return []
    # a late finding of a lesser severity is on the record too: the year's rating it fell to has no score to deduct from
    return [Component("supervision", "监督检查", _weight(bureau, "supervision"), Decimal("0"),
                      ["不予评级（本年度无已完成的评价任务），仅记录故意违规及以往年度评价确定后发现的问题"]
                      + [f"故意违规：{f.description}" if f.severity == Severity.INTENTIONAL
                         else f"{f.work_year} 年度评价确定后发现{f.severity.label}问题（本年度不予评级，未扣分）：{f.description}"
                         for f in counted]
                      + [f"经异议核实不计入：{f.description[:30]}" for f in struck],
                      [{"type": "inspection", "id": f.inspection_id, "ref": f"finding:{f.id}",
                        "label": f"{f.severity.label}：{f.description[:30]}"} for f in counted])]


def _excluded(records: _FirmYear, ref: str) -> bool:
    correction = records.corrections.get(ref)
    return correction is not None and correction.excluded


# The states in which a plan or report with no first version is still owed by the firm (past them it was handed in).
# The report: only where the delay is the firm's — FIELDWORK (``submit_report``'s source) and CONTRACTED (the plan
# that comes first not handed in either). Not while the plan waits on the bureau (PLAN_SUBMITTED, PLAN_IN_REVIEW:
# the machine will not take a report then), nor PLAN_RETURNED: a returned plan counts against the plan (its first
# version's date, its rounds), not a second time against the report the firm may not yet submit.
STILL_OWED = {"work_plan": (S.CONTRACTED,),
              "report": (S.CONTRACTED, S.FIELDWORK)}


def _components(bureau: Bureau, records: _FirmYear, today: date) -> tuple[bool, list[Component], list[str]]:
    from evalhub.review.models import SubmissionKind
    from evalhub.supervision.models import Severity

    engagements = records.engagements
    # a finding an upheld objection showed must not count is left out, and the detail says so
    excluded = [f for f in records.findings if _excluded(records, f"finding:{f.id}")]
    findings = [f for f in records.findings if f not in excluded]
    intentional = [f.description for f in findings if f.severity == Severity.INTENTIONAL]
    # found after an earlier year's rating was final (``_late``): intentional ones on this year's watch list, not
    # its score; the others deducted in this year's supervision component by their severity
    late_found = [f for f in records.late if not _excluded(records, f"finding:{f.id}")]
    late_struck = [f for f in records.late if f not in late_found]
    watch = intentional + [f"{f.description}（{f.work_year} 年度评价确定后发现）" for f in late_found
                           if f.severity == Severity.INTENTIONAL]
    completed = [e for e in engagements if e.state in COMPLETED]
    if not completed:  # not rated; an intentional violation still puts the firm on watch, whatever its score
        return False, _watch_only(bureau, findings, excluded, late_found, late_struck), watch
    references = {e.id: e.reference for e in engagements}
    ref = lambda e: {"type": "engagement", "id": e.id, "label": f"{e.reference} {e.name}"}  # noqa: E731

    # practice quality: first-round report scores, and the share passing first time
    first_rounds = records.first_rounds
    weight = _weight(bureau, "quality")
    if first_rounds:
        mean = sum((p.score for p in first_rounds), Decimal("0")) / len(first_rounds)
        passed = sum(1 for p in first_rounds if p.passed)
        share = Decimal(passed) / len(first_rounds)
        quality = _q(weight * Decimal("0.75") * mean / 100 + weight * Decimal("0.25") * share)
        detail = [f"首轮报告评审平均 {_q(mean)} 分（{len(first_rounds)} 份）", f"一次通过 {passed}/{len(first_rounds)}"]
    else:
        quality, detail = _q(weight * Decimal("0.5")), ["本年度没有首轮报告评审记录，按一半计分"]
    components = [Component("quality", "执业质量", weight, quality, detail,
                            [{"type": "panel", "id": p.id, "label": f"{references[p.engagement_id]} 第 1 轮 {p.score} 分"}
                             for p in first_rounds])]

    # contract performance: on time, and rounds of rectification
    weight = _weight(bureau, "performance")
    checks, late, late_records, corrected = 0, 0, [], []
    for e in engagements:
        if e.plan_due is None:  # no contract
            continue
        for kind, due in ((SubmissionKind.WORK_PLAN, e.plan_due), (SubmissionKind.REPORT, e.report_due)):
            first = records.first_submitted.get((e.id, kind))
            if first is None:
                # Never handed in and still owed: late once its date has passed by the rating's today — later than
                # any handed in a day after it (not yet due: not rated; a cancelled engagement owes nothing).
                if due >= today or e.state not in STILL_OWED[kind.value]:
                    continue
                ref_ = f"{kind.value}_missing:{e.id}"  # an objection names it: upheld, it does not count
                if _excluded(records, ref_):  # an upheld objection showed it was not the firm's to hand in
                    corrected.append(f"{e.reference} {kind.label}：经异议核实不计入逾期")
                    continue
                checks += 1
                late += 1
                late_records.append({**ref(e), "ref": ref_, "due": due.isoformat(),
                                     "label": f"{e.reference} {kind.label}逾期未提交（约定 {due:%Y-%m-%d}，"
                                              f"至 {today:%Y-%m-%d} 未提交）"})
                continue
            submission_id, submitted_at = first
            checks += 1
            day = beijing_date(submitted_at)  # the contract's dates are Beijing dates
            correction = records.corrections.get(f"submission:{submission_id}")
            if correction is not None and correction.corrected_on is not None:
                day = correction.corrected_on  # the fact established on an upheld objection
                corrected.append(f"{e.reference} {kind.label}：按异议核实的实际提交日期 {day:%Y-%m-%d} 计")
            if day > due:
                late += 1
                # A record an objection can name: the submission, with the dates the rating compared.
                late_records.append({**ref(e), "ref": f"submission:{submission_id}", "submission": submission_id,
                                     "submitted_on": day.isoformat(), "due": due.isoformat(),
                                     "label": f"{e.reference} {kind.label}逾期提交（约定 {due:%Y-%m-%d}，"
                                              f"记录 {day:%Y-%m-%d}）"})
    extra_rounds = records.extra_rounds
    on_time = weight * Decimal("0.6") * (Decimal(checks - late) / checks if checks else Decimal(1))
    rounds_part = max(Decimal("0"), weight * Decimal("0.4") - _setting_decimal(bureau, "credit.deduct_round") * extra_rounds)
    components.append(Component("performance", "合同履行", weight, _q(on_time + rounds_part),
                                [f"按期提交 {checks - late}/{checks}", f"整改轮次 {extra_rounds} 次"] + corrected,
                                late_records))

    # commissioner feedback and complaints
    weight = _weight(bureau, "feedback")
    ratings = records.ratings
    base = weight * (sum(ratings, Decimal("0")) / len(ratings) / 100) if ratings else weight * Decimal("0.8")
    complaints = records.complaints
    feedback = max(Decimal("0"), base - _setting_decimal(bureau, "credit.deduct_complaint") * len(complaints))
    components.append(Component("feedback", "委托方评价", weight, _q(feedback),
                                [f"委托方评价 {len(ratings)} 份" + ("" if ratings else "（无评价，按 80% 计）"),
                                 f"查实投诉 {len(complaints)} 件"],
                                [{"type": "complaint", "id": c.id, "label": c.reference} for c in complaints]))

    # supervision: deductions by severity; an intentional violation zeroes it and puts the firm on watch
    weight = _weight(bureau, "supervision")
    deductions = {Severity.MINOR: "credit.deduct_minor", Severity.GENERAL: "credit.deduct_general",
                  Severity.SERIOUS: "credit.deduct_serious"}
    lost = sum((_setting_decimal(bureau, deductions[f.severity]) for f in findings + late_found
                if f.severity in deductions), Decimal("0"))
    supervision = Decimal("0") if intentional else max(Decimal("0"), weight - lost)
    components.append(Component("supervision", "监督检查", weight, _q(supervision),
                                [f"检查发现问题 {len(findings)} 个"] + [f"故意违规：{d}" for d in intentional]
                                + [f"{f.work_year} 年度评价确定后发现故意违规（列入重点关注名单，不扣本年度分）：{f.description}"
                                   if f.severity == Severity.INTENTIONAL else
                                   f"{f.work_year} 年度评价确定后发现{f.severity.label}问题（计入本年度）：{f.description}"
                                   for f in late_found]
                                + [f"经异议核实不计入：{f.description[:30]}" for f in excluded + late_struck],
                                [{"type": "inspection", "id": f.inspection_id, "ref": f"finding:{f.id}",
                                  "label": f"{f.severity.label}：{f.description[:30]}"} for f in findings + late_found]))

    # external credit records entered by the bureau
    weight = _weight(bureau, "external")
    dropped = [r for r in records.external if _excluded(records, f"external:{r.id}")]
    external = [r for r in records.external if r not in dropped]
    components.append(Component("external", "外部信用", weight,
                                _q(max(Decimal("0"), weight - sum((r.deduction for r in external), Decimal("0")))),
                                [f"不良信用记录 {len(external)} 条"]
                                + [f"经异议核实不计入：{r.kind.label} {r.description[:30]}" for r in dropped],
                                [{"type": "external", "id": r.id, "ref": f"external:{r.id}",
                                  "label": f"{r.kind.label}：{r.description[:30]}"} for r in external]))
    return True, components, watch


def _hold_year(bureau: Bureau, year: int) -> None:
    """One computation or publication of a bureau's year at a time: two clicks (or a click and the CLI) must not
    write a firm's rating twice, nor publish the drafts twice and tell each firm twice."""
    concurrency.serialise(f"credit.year:{bureau.id}:{year}")


def check_year(year: int | None, *, today: date | None = None) -> int:
    """A year that can be rated: 2000 up to this year (Beijing); a year not yet begun has nothing to rate."""
    this_year = (today or beijing_today()).year
    if year is None or not 2000 <= year <= this_year:
        raise ValidationFailed(f"年度应为 2000–{this_year} 之间的 4 位数字。", {"year": "年度无效"})
    return year


def start_compute(bureau: Bureau, year: int, actor: User):
    """计算 on the credit page: the bureau's ratings of ``year`` computed by the worker (``compute_job``), queued by
    one who may manage them, for a year that can be rated — refused before anything is queued (the job asks
    again when it runs). Returns the job."""
    permissions.require(actor, "credit.manage", bureau)
    year = check_year(year)
    return jobs.submit("credit.compute", f"计算{bureau.short_name} {year} 年度机构信用评价",
                       {"bureau_id": bureau.id, "year": year}, actor=actor, bureau_id=bureau.id)


def compute(bureau: Bureau, year: int, actor: User | None, *,
            progress: Callable[[int, int], None] | None = None, today: date | None = None) -> list[CreditRating]:
    """Rate every firm that worked for the bureau in the year. Drafts and published ratings are
    recomputed in place; final ratings are never changed. ``actor`` None: the system (the CLI, a job)."""
    if actor is not None:
        permissions.require(actor, "credit.manage", bureau)
    check_year(year, today=today)
    problems = settings_problems(bureau)
    if problems:
        raise ValidationFailed("信用评价设置有误，请在“设置”中调整后再计算：" + "；".join(problems) + "。", {"year": "设置有误"})
    _hold_year(bureau, year)
    firm_ids = sorted(rated_firm_ids(bureau, year))
    existing = {r.firm_id: r for r in db.session.execute(sa.select(CreditRating).where(
        CreditRating.bureau_id == bureau.id, CreditRating.year == year).execution_options(populate_existing=True)).scalars()}
    # The whole year's records in a few grouped queries (not a dozen queries per firm), and the firms at once.
    records = _year_records(bureau, year)
    firms = {f.id: f for f in db.session.execute(sa.select(Firm).where(Firm.id.in_(firm_ids))).scalars()}
    out = []
    for index, firm_id in enumerate(firm_ids, start=1):
        out.append(_rate(bureau, year, firms[firm_id], existing.get(firm_id), records.get(firm_id), today=today,
                         actor=actor))
        if progress:
            progress(index, len(firm_ids))
    db.session.flush()
    audit.record("credit.computed", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name}计算 {year} 年度机构信用评价：{len(out)} 家",
                 payload={"year": year, "firms": len(out)})
    return out


def compute_firm(rating: CreditRating, *, today: date | None = None, actor: User | None = None) -> CreditRating:
    """Recompute one firm's rating (after an upheld objection): that firm only, never the others'."""
    records = _year_records(rating.bureau, rating.year, rating.firm_id).get(rating.firm_id)
    return _rate(rating.bureau, rating.year, rating.firm, rating, records, today=today, actor=actor)


def _snapshot(rating: CreditRating) -> tuple:
    """What a published rating says to the firm: a change here re-opens the objection window (a reworded
    explanation with the same points does not)."""
    return (rating.rated, rating.total, rating.grade, rating.watch_list,
            tuple((c.get("code"), str(c.get("points"))) for c in rating.components or []))


def _rate(bureau: Bureau, year: int, firm: Firm, rating: CreditRating | None, records: _FirmYear | None, *,
          today: date | None = None, actor: User | None = None) -> CreditRating:
    """Write one firm's rating from its records. A changed rating under publicity is published again with a
    new objection window and the firm is told; an unchanged one keeps its window."""
    if rating is not None and rating.status == RatingStatus.FINAL:
        return rating
    rated, components, intentional = _components(bureau, records, today or beijing_today()) if records is not None else (False, [], [])
    if rating is None:
        rating = CreditRating(bureau_id=bureau.id, firm_id=firm.id, year=year, status=RatingStatus.DRAFT, version=0,
                              components=[])
        db.session.add(rating)
    before = _snapshot(rating) if rating.version else None
    total = _q(sum((c.points for c in components), Decimal("0"))) if rated else None
    rating.rated = rated
    rating.components = [c.as_dict() for c in components]
    rating.total = total
    rating.grade_cuts = grade_cuts(bureau)
    rating.grade = grade_for(rating.grade_cuts, total) if rated else None
    rating.watch_list = bool(intentional)
    rating.watch_reason = "；".join(intentional)[:500] or None
    rating.version += 1  # every computation is a version; only a change re-opens the objection window
    rating.computed_at = utcnow()
    if before is not None and before != _snapshot(rating) and rating.status == RatingStatus.PUBLISHED:
        _republish(rating, before, today=today, actor=actor)
    if intentional and rating.suspension_id is None:
        _suspend_for(rating, firm, bureau)
    elif not intentional and rating.suspension_id is not None:
        _lift_for(rating, firm, bureau)
    return rating


def _republish(rating: CreditRating, before: tuple, *, today: date | None = None, actor: User | None = None) -> None:
    """A published rating changed: publish it again with a new objection window, and tell the firm."""
    bureau = rating.bureau
    today = today or beijing_today()
    days = int(get_setting(bureau, "credit.republish_days"))
    deadline = add_working_days(bureau, today, days)
    if rating.objection_deadline is not None and rating.objection_deadline > deadline:
        deadline = rating.objection_deadline  # a window already announced is never shortened: its count stays
    else:
        rating.objection_from, rating.objection_workdays = today, days
    old_total, old_grade = before[1], before[2]
    rating.published_at = utcnow()
    rating.objection_deadline = deadline
    was = f"{old_grade.label if old_grade else '不予评级'}（{old_total if old_total is not None else '—'} 分）"
    now = f"{rating.grade.label if rating.grade else '不予评级'}（{rating.total if rating.total is not None else '—'} 分）"
    db.session.flush()
    audit.record("credit.republished", rating, actor=actor, bureau_id=rating.bureau_id,
                 summary=f"{rating.firm.name} {rating.year} 年度信用评价重新计算后变更：{was} → {now}，"
                         f"重新公示至 {deadline:%Y-%m-%d}",
                 payload={"before": str(old_total), "after": str(rating.total), "deadline": deadline})
    emit("rating_republished", link=f"/credit/ratings/{rating.id}", firm_id=rating.firm_id, year=rating.year,
         before=was, after=now, deadline=f"{deadline:%Y-%m-%d}")


def _suspend_for(rating: CreditRating, firm: Firm, bureau: Bureau) -> None:
    """An intentional violation suspends the firm whatever its score: a system action with the rating as its
    reason, taken by the firm's library bureau (which may be above the rating bureau), audited, told to the firm."""
    from evalhub.registry.services import impose_suspension

    # The status history is read by every user of the library: the finding itself stays on the rating, read by
    # the rating bureau's tree, and by the firm once the rating is published for objection.
    change = impose_suspension(firm, f"{rating.year} 年度信用评价（{bureau.short_name}）检查发现故意违规，"
                                     "列入重点关注名单，暂停")
    if change is not None:
        db.session.flush()
        rating.suspension_id = change.id


def _lift_for(rating: CreditRating, firm: Firm, bureau: Bureau) -> None:
    """The violation this rating suspended the firm for was struck out (an upheld objection): the suspension it
    imposed ends, unless the firm's status has moved on since."""
    from evalhub.registry.services import lift_imposed_suspension

    lift_imposed_suspension(firm, rating.suspension_id, f"{rating.year} 年度信用评价（{bureau.short_name}）经异议复核，"
                                                        "故意违规不予认定，移出重点关注名单，恢复入库状态")
    rating.suspension_id = None


# === lifecycle =====================================================================================

def publish(bureau: Bureau, year: int, actor: User, *, today: date | None = None) -> int:
    """Publish the year's drafts for objection; the deadline counts working days."""
    permissions.require(actor, "credit.manage", bureau)
    _hold_year(bureau, year)
    drafts = db.session.execute(sa.select(CreditRating).where(  # as the previous holder of the lock left them
        CreditRating.bureau_id == bureau.id, CreditRating.year == year, CreditRating.status == RatingStatus.DRAFT)
        .execution_options(populate_existing=True)).scalars().all()
    if not drafts:
        raise Conflict(f"{year} 年度没有待公示的评价结果，请先计算。")
    today = today or beijing_today()
    days = int(get_setting(bureau, "credit.objection_days"))
    deadline = add_working_days(bureau, today, days)
    for rating in drafts:
        rating.status = RatingStatus.PUBLISHED
        rating.published_at = utcnow()
        # the start and count kept: a calendar correction recounts the window announced (credit deadlines hook)
        rating.objection_deadline, rating.objection_from, rating.objection_workdays = deadline, today, days
    audit.record("credit.published", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name}公示 {year} 年度机构信用评价 {len(drafts)} 家，异议截止 {deadline:%Y-%m-%d}")
    with one_reading(firm_ids=[rating.firm_id for rating in drafts]):  # every rated firm's users read at once
        for rating in drafts:
            emit("rating_publicised", link=f"/credit/ratings/{rating.id}", firm_id=rating.firm_id, year=year,
                 detail=f"贵机构 {year} 年度信用评价为 {rating.grade.label if rating.grade else '不予评级'}，"
                        f"如有异议请于 {deadline:%Y-%m-%d} 前提出。")
    return len(drafts)


def contestable(rating: CreditRating) -> dict[str, list[dict[str, Any]]]:
    """component code → the records of it an objection may name (those the rating counted as facts: late
    submissions, inspection findings, external records), each ``{"ref", "label"}``."""
    return {c["code"]: [{"ref": r["ref"], "label": r.get("label", "")} for r in c.get("records", []) if r.get("ref")]
            for c in rating.components or []}


def object_to(rating: CreditRating, actor: User, text: str, evidence: Iterable[tuple[str, bytes]] = (),
              *, component: str | None = None, records: Iterable[str] = (),
              today: date | None = None) -> CreditObjection:
    """The rated firm objects during publicity. It names the component it contests and the records of it (a
    correction can then be decided record by record); without a component the objection is to the whole."""
    if actor.role != Role.FIRM_USER or actor.firm_id != rating.firm_id:
        raise PermissionDenied("只有被评价机构可以提出异议。")
    today = today or beijing_today()
    if rating.status != RatingStatus.PUBLISHED:
        raise Conflict("该评价结果不在公示期内。")
    if today > rating.objection_deadline:
        raise Conflict(f"异议期已于 {rating.objection_deadline:%Y-%m-%d} 截止。")
    errors: dict[str, str] = {}
    if len((text or "").strip()) < 10:
        errors["text"] = "请写明异议的事实和理由（不少于 10 字）"
    component = (component or "").strip() or None
    refs = list(dict.fromkeys(str(r).strip() for r in records or () if str(r).strip()))
    labels = {c["code"]: c.get("label", c["code"]) for c in rating.components or []}
    offered = contestable(rating)
    if component is not None and component not in labels:
        errors["component"] = "请选择本评价中的评分项"
    elif refs and component is None:
        errors["component"] = "请先选择异议针对的评分项"
    elif refs:
        known = {r["ref"]: r["label"] for r in offered.get(component, [])}
        unknown = [r for r in refs if r not in known]
        if unknown:
            errors["records"] = f"所选记录不属于“{labels[component]}”的计分依据"
    if errors:
        raise ValidationFailed("；".join(errors.values()) + "。", errors)
    contested = [{"ref": r, "label": {x["ref"]: x["label"] for x in offered.get(component, [])}[r]} for r in refs]
    # One objection per click storm: the same unanswered objection to this rating is the one already filed.
    # Serialised per rating, so simultaneous presses (several workers) see each other's objection.
    concurrency.serialise(f"credit.objection:{rating.id}")
    filed = db.session.execute(sa.select(CreditObjection).where(
        CreditObjection.rating_id == rating.id, CreditObjection.decision.is_(None),
        CreditObjection.text == text.strip()).order_by(CreditObjection.id)).scalars().first()
    if filed is not None:
        return filed
    stored = files.store_evidence(evidence, actor=actor)
    answer_days = int(get_setting(rating.bureau, "credit.answer_days"))
    objection = CreditObjection(text=text.strip(), evidence_file_ids=[s.id for s in stored], submitted_by_id=actor.id,
                                component=component, contested=contested or None,
                                answer_due=add_working_days(rating.bureau, today, answer_days), answer_workdays=answer_days)
    rating.objections.append(objection)
    db.session.flush()
    what = f"“{labels[component]}”" + (f"（{len(contested)} 条记录）" if contested else "") if component else ""
    audit.record("credit.objection", rating, actor=actor, bureau_id=rating.bureau_id,
                 summary=f"{rating.firm.name} 对 {rating.year} 年度信用评价{what}提出异议",
                 payload={"objection": objection.id, "component": component, "records": refs})
    return objection


def _parse_day(raw: Any) -> date | None:
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw or "").strip())
    except ValueError:
        return None


def _corrections(objection: CreditObjection, rating: CreditRating, actor: User, fixes: dict[str, Any],
                 evidence_id: int, today: date) -> list[CreditCorrection]:
    """One correction per contested record, from the bureau's ``fixes`` (ref → the corrected fact: a
    submission's real date; for a finding or external record, that it must not count)."""
    from evalhub.review.models import Submission

    errors: dict[str, str] = {}
    out = []
    for item in objection.contested or []:
        ref = item["ref"]
        record_type, _, raw_id = ref.partition(":")
        record_id = int(raw_id)
        if record_type == "submission":
            submission = db.session.get(Submission, record_id)
            day = _parse_day(fixes.get(ref))
            if submission is None:
                errors[f"fix-{ref}"] = "该提交记录已不存在"
                continue
            recorded = beijing_date(submission.submitted_at)
            if day is None:
                errors[f"fix-{ref}"] = f"请填写“{item['label']}”经核实的实际提交日期"
                continue
            if day > recorded or day > today:
                errors[f"fix-{ref}"] = f"实际提交日期不能晚于系统记录的 {recorded:%Y-%m-%d}，也不能晚于今天"
                continue
            out.append(CreditCorrection(
                objection_id=objection.id, rating_id=rating.id, component=objection.component, record_type=record_type,
                record_id=record_id, label=item["label"][:200], original=f"系统记录 {recorded:%Y-%m-%d} 提交",
                corrected=f"经核实 {day:%Y-%m-%d} 提交", corrected_on=day, excluded=False,
                evidence_file_id=evidence_id, decided_by_id=actor.id))
        else:  # a finding or an external record the objection shows must not count
            out.append(CreditCorrection(
                objection_id=objection.id, rating_id=rating.id, component=objection.component, record_type=record_type,
                record_id=record_id, label=item["label"][:200], original="计入评价", corrected="经核实不计入",
                excluded=True, evidence_file_id=evidence_id, decided_by_id=actor.id))
    if errors:
        raise ValidationFailed("；".join(errors.values()) + "。", errors)
    return out


def answer(objection: CreditObjection, actor: User, decision: Any, text: str, *, recompute: bool = False,
           corrections: dict[str, Any] | None = None, evidence: Iterable[tuple[str, bytes]] = (),
           today: date | None = None) -> None:
    """Answer an objection. Rejecting needs a reason. Upholding one that names records corrects each of them
    (the fact, the evidence, who decided; the records themselves are kept as they were) and recomputes that
    firm's rating only; the answer keeps the score before and after. ``recompute`` (an upheld objection
    naming no records) recomputes that firm only too, e.g. after the bureau corrected data elsewhere."""
    rating = objection.rating
    permissions.require(actor, "credit.manage", rating.bureau)
    # the year's lock, as computing takes it: a recompute of the year meanwhile would write over the correction
    _hold_year(rating.bureau, rating.year)
    db.session.refresh(rating)
    db.session.refresh(objection)
    today = today or beijing_today()
    if objection.decision is not None:
        raise Conflict("该异议已经答复。")
    if rating.status != RatingStatus.PUBLISHED:
        raise Conflict("该评价结果已确定。")
    errors: dict[str, str] = {}
    try:
        decision = decision if isinstance(decision, ObjectionDecision) else ObjectionDecision.from_label(str(decision))
    except ValueError:
        errors["decision"] = "请选择异议是否成立"
        decision = None
    if len((text or "").strip()) < 10:
        errors["answer"] = ("请写明不成立的理由（不少于 10 字）" if decision == ObjectionDecision.REJECTED
                            else "请写明答复意见（不少于 10 字）")
    if errors:
        raise ValidationFailed("；".join(errors.values()) + "。", errors)
    upheld = decision == ObjectionDecision.UPHELD
    rows: list[CreditCorrection] = []
    if upheld and objection.contested:
        uploads = [e for e in evidence or () if e and e[0]]
        if uploads:
            evidence_id = files.store_evidence(uploads, actor=actor)[0].id
        elif objection.evidence_file_ids:
            evidence_id = objection.evidence_file_ids[0]  # the firm's own proof, which the bureau accepted
        else:
            raise ValidationFailed("请上传更正所依据的证明材料（如邮寄回执）。", {"evidence": "请上传证明材料"})
        rows = _corrections(objection, rating, actor, corrections or {}, evidence_id, today)
    # One answer per objection, whatever the clicks: compare-and-set on the open objection.
    answered_at = utcnow()
    claimed = db.session.execute(sa.update(CreditObjection).where(
        CreditObjection.id == objection.id, CreditObjection.decision.is_(None)).values(
        decision=decision, answer=text.strip(), answered_by_id=actor.id, answered_at=answered_at)
        .execution_options(synchronize_session=False)).rowcount
    if not claimed:
        raise Conflict("该异议已经答复。")
    objection.decision, objection.answer = decision, text.strip()
    objection.answered_by_id, objection.answered_at = actor.id, answered_at
    objection.total_before, objection.grade_before = rating.total, rating.grade
    objection.corrections.extend(rows)  # loaded first, then appended: each row once
    db.session.flush()
    for row in rows:
        audit.record("credit.corrected", rating, actor=actor, bureau_id=rating.bureau_id,
                     summary=f"更正 {rating.firm.name} {rating.year} 年度信用评价依据：{row.label}：{row.original} → {row.corrected}",
                     payload={"objection": objection.id, "record": f"{row.record_type}:{row.record_id}",
                              "original": row.original, "corrected": row.corrected, "evidence": row.evidence_file_id})
    outcome = decision.label
    if upheld and (rows or recompute):
        compute_firm(rating, today=today, actor=actor)
        objection.total_after, objection.grade_after = rating.total, rating.grade
        outcome += f"；重新计算后 {_score(objection.total_before, objection.grade_before)} → " \
                   f"{_score(rating.total, rating.grade)}"
    audit.record("credit.objection_answered", rating, actor=actor, bureau_id=rating.bureau_id,
                 summary=f"答复 {rating.firm.name} 的异议：{outcome}",
                 payload={"objection": objection.id, "corrections": len(rows),
                          "before": str(objection.total_before), "after": str(objection.total_after)})
    emit("objection_answered", link=f"/credit/ratings/{rating.id}", firm_id=rating.firm_id, year=rating.year,
         outcome=outcome, answer=objection.answer)


def _score(total: Decimal | None, grade: CreditGrade | None) -> str:
    return f"{total if total is not None else '—'} 分（{grade.label if grade else '不予评级'}）"


def finalise(bureau: Bureau, year: int, actor: User, *, today: date | None = None) -> int:
    """Make the year's published ratings final: after the objection deadline, every objection answered. Under the
    year's lock, like computing and publishing: a recompute re-publishing a rating meanwhile is not made final."""
    permissions.require(actor, "credit.manage", bureau)
    _hold_year(bureau, year)
    today = today or beijing_today()
    published = db.session.execute(sa.select(CreditRating).where(
        CreditRating.bureau_id == bureau.id, CreditRating.year == year, CreditRating.status == RatingStatus.PUBLISHED)
        .execution_options(populate_existing=True)).scalars().all()  # as the lock's holder before us left them
    if not published:
        raise Conflict(f"{year} 年度没有公示中的评价结果。")
    open_period = [r for r in published if today <= r.objection_deadline]
    if open_period:
        raise Conflict(f"公示期至 {open_period[0].objection_deadline:%Y-%m-%d} 尚未结束。")
    unanswered = [o for r in published for o in r.objections if o.decision is None]
    if unanswered:
        raise Conflict(f"还有 {len(unanswered)} 件异议未答复。")
    for rating in published:
        rating.status = RatingStatus.FINAL
        rating.finalised_at = utcnow()
    audit.record("credit.finalised", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name} {year} 年度机构信用评价确定：{len(published)} 家")
    return len(published)


def add_external_record(bureau: Bureau, firm: Firm, actor: User, *, kind: Any, occurred_on: date | None,
                        description: str, deduction: Any, filename: str, data: bytes) -> ExternalCreditRecord:
    permissions.require(actor, "credit.manage", bureau)
    # a firm the bureau can see (its library, those above it, an applicant to it): the page offers no other, and an
    # id posted past the page's choices names nobody else's
    if not permissions.can(actor, "firm.view", firm):
        raise NotFound("未找到该第三方机构。")
    errors: dict[str, str] = {}
    kind = parse_enum(errors, "kind", ExternalRecordKind, kind, "记录类型")
    if occurred_on is None:
        errors["occurred_on"] = "请填写发生日期"
    elif occurred_on > beijing_today():  # it would bar the firm from a day not yet come and count in a year not begun
        errors["occurred_on"] = "发生日期不能晚于今天"
    if not (description or "").strip():
        errors["description"] = "请填写记录内容"
    try:
        value = Decimal(str(deduction))
        if not Decimal("0") <= value <= Decimal("100"):
            raise ValueError
    except Exception:
        errors["deduction"] = "扣分应为 0–100 的数字"
        value = Decimal("0")
    if not errors:  # before the file is stored
        concurrency.refuse_twin(  # one penalty is entered once by a bureau (one above reads it once: ``_year_records``)
            f"credit.external:{firm.id}",
            sa.select(ExternalCreditRecord).where(
                ExternalCreditRecord.bureau_id == bureau.id, ExternalCreditRecord.firm_id == firm.id,
                ExternalCreditRecord.kind == kind, ExternalCreditRecord.occurred_on == occurred_on,
                ExternalCreditRecord.description == description.strip()),
            lambda twin: f"已录入相同的外部信用记录（{twin.kind.label}，{twin.occurred_on:%Y-%m-%d}），请勿重复提交。")
    stored = None
    if not data and not filename:
        errors["file"] = "请上传来源文件（处罚决定书、信用中国截图等）"
    else:
        try:
            stored = files.store(filename, data, allowed=files.DOCUMENT_KINDS + ("png", "jpg"), actor=actor)
        except ValidationFailed as exc:
            errors["file"] = exc.message
    if errors:
        raise ValidationFailed("；".join(errors.values()) + "。", errors)
    record = ExternalCreditRecord(bureau_id=bureau.id, firm_id=firm.id, kind=kind, occurred_on=occurred_on,
                                  description=description.strip(), deduction=value, source_file_id=stored.id,
                                  entered_by_id=actor.id)
    db.session.add(record)
    db.session.flush()
    audit.record("credit.external_record", firm, actor=actor, bureau_id=bureau.id,
                 summary=f"录入 {firm.name} 外部信用记录：{kind.label}（扣 {value} 分）")
    return record


# === the dashboard's grade counts (CreditGradeCount), kept on write ===============================
# Recounted for each (bureau, year) a transaction wrote, just before it commits (``core.summaries``). A rating
# counts when published or final, rated and graded; a write to one counted neither before nor after (a draft
# recomputed, a deadline moved) costs no recount. A reader in the same transaction calls ``recount_grades``.

def _counts(status: Any, rated: Any, grade: Any) -> bool:
    """Whether a rating with these values is counted (as the recount selects)."""
    return status in (RatingStatus.PUBLISHED, RatingStatus.FINAL, "published", "final") and bool(rated) \
        and grade is not None


GRADE_COUNTS = KeptCount(
    "credit.grade_counts", CreditRating, ("bureau_id", "year"), CreditGradeCount.__table__, by=("grade",),
    where=lambda: sa.and_(CreditRating.status.in_([RatingStatus.PUBLISHED, RatingStatus.FINAL]),
                          CreditRating.rated.is_(True), CreditRating.grade.is_not(None)),
    watched=("status", "rated", "grade"), counted=lambda v: _counts(v["status"], v["rated"], v["grade"]))


def recount_grades(session: Session | None = None) -> None:
    """Recount the grade counts of the (bureau, year) pairs this transaction wrote (none: no statement)."""
    GRADE_COUNTS.recount(session)


# The credit page's total (a year's ratings in the user's tree, every status): only a rating's bureau and year
# move it, so a recompute, a publication or a decision costs nothing. No table deletes ratings by a database
# cascade (every foreign key to or from credit_rating is plain), so no ``cascaded_from``.
RATING_COUNTS = KeptCount("credit.rating_counts", CreditRating, ("bureau_id", "year"), CreditRatingCount.__table__)


def rating_total(user: User, year: int | None) -> Any:
    """How many ratings of ``year`` (None: of every year) the user's scope holds, as a scalar subquery over
    ``credit_rating_count`` (``page_rows(total=…)``); None when the kept counts cannot say it (a firm's scope).
    For a list with no other filter."""
    return RATING_COUNTS.scope_total(user, CreditRating, **({} if year is None else {"year": year}))


# === the effect on procurement ====================================================================

_ORDER = [CreditGrade.A, CreditGrade.B, CreditGrade.C, CreditGrade.D]


def _root(bureau: Bureau) -> Bureau:
    chain = bureau.ancestors()
    return chain[-1] if chain else bureau


REACH_CHOICES = (("region", "全区：区内任一财政局的最终评价在全区各级适用"),
                 ("prefecture", "本州（地区）：州（地区）及所属县市的最终评价在本州（地区）内适用"),
                 ("chain", "本级和上级：只适用本级、上级财政局和机构所属库财政局的评价"))
_REACH_WORDS = {"region": "全区", "prefecture": "本州（地区）", "chain": "本级及上级财政局"}


def grade_reach(bureau: Bureau) -> str:
    """How far a final grade and the watch list reach: a setting of the region (read at the root bureau, so
    one county cannot opt out of what its neighbours decided)."""
    return get_setting(_root(bureau), "credit.grade_reach")


def _reach(bureau) -> tuple[set[int], Any]:
    """Whose ratings count for an engagement of ``bureau``, whatever the firm: its own and its upper bureaus'
    ids, and the bureau whose whole subtree also counts (None when ``credit.grade_reach`` = chain)."""
    chain = [bureau] + bureau.ancestors()
    reach = grade_reach(bureau)
    if reach == "chain":
        return {b.id for b in chain}, None
    if reach == "region":
        return {b.id for b in chain}, chain[-1]
    # "prefecture": the prefecture's subtree counts within it; the region's own engagements belong to no
    # prefecture, so only the region's own ratings count there (a county's grade stays in its prefecture)
    return {b.id for b in chain}, chain[-2] if len(chain) > 1 else None


def _rating_bureau_ids(firm, bureau):
    """Whose ratings of the firm count for an engagement of ``bureau``: always its own, its upper bureaus' and
    the firm's library bureau's; by default (``credit.grade_reach`` = region) every bureau of the region, so
    a D from 轮台县 bars the firm at 巴州 and at 库尔勒市 alike. A set of ids, or a subquery (for ``in_``: no
    extra round trip per firm when a library is assessed)."""
    base, top = _reach(bureau)
    ids = base | {firm.bureau_id}
    if top is None:
        return ids
    return sa.select(Bureau.id).where(sa.or_(Bureau.id.in_(ids), Bureau.path.startswith(top.path)))


def final_grade(firm, bureau, year: int) -> CreditGrade | None:
    """The firm's worst FINAL grade for ``year`` from the bureaus whose ratings reach an engagement of
    ``bureau`` (``_rating_bureau_ids``); None when not rated."""
    if firm is None or bureau is None:
        return None
    grades = db.session.execute(sa.select(CreditRating.grade).where(
        CreditRating.firm_id == firm.id, CreditRating.year == year, CreditRating.status == RatingStatus.FINAL,
        CreditRating.rated.is_(True), CreditRating.bureau_id.in_(_rating_bureau_ids(firm, bureau)))).scalars().all()
    grades = [g for g in grades if g is not None]
    return max(grades, key=_ORDER.index) if grades else None


def grade_in_force(firm, bureau, year: int) -> tuple[CreditGrade | None, int]:
    """The final grade that governs engagements of ``year``, and the rating year it comes from (``_held_grade``)."""
    ratings = _ratings_reaching([firm], [(bureau, (year - 2, year - 1))])[0][firm.id]
    grade, held_year, _by = _held_grade(ratings, year - 1, _worked_in([firm.id], [year - 1]).get((firm.id, year - 1), []))
    return grade, held_year


def in_force_note(rating: CreditRating) -> str | None:
    """What the rating page says while the rating is not final: eligibility still follows the last final grade."""
    if rating.status == RatingStatus.FINAL:
        return None
    grade = final_grade(rating.firm, rating.bureau, rating.year - 1)
    held = f"{rating.year - 1} 年度最终评价（{grade.label}）" if grade else f"{rating.year - 1} 年度最终评价（无等级限制）"
    return (f"本评价尚未确定（{rating.status.label}）。确定之前，该机构参与评价业务的资格仍按{held}执行；"
            f"本评价确定后按本评价执行。")


def _reach_words(bureau) -> str:
    return _REACH_WORDS.get(grade_reach(bureau), "")


GRADE_RULE = "上一年度信用评价（最终结果）为 D 级的机构暂停参与评价业务；为 C 级的机构只能通过公开招标参与，竞争性磋商、机构库随机抽取、框架协议轮候和单一来源均不得选定"


def _ratings_reaching(firms: list, wanted: list[tuple[Any, tuple[int, ...]]]) -> list[dict[int, list[CreditRating]]]:
    """For each (bureau, years) of ``wanted``, each firm's ratings of those years from the bureaus whose ratings
    reach an engagement of that bureau (``_rating_bureau_ids``, the same rule), oldest first: read for all the
    firms and all of ``wanted`` at once (a library for one engagement, a firm for a page of procurements)."""
    reach = []
    for bureau, years in wanted:
        base, top = _reach(bureau)
        reach.append((base | (permissions.subtree_ids(top) if top is not None else set()), set(years)))
    own = {f.id: f.bureau_id for f in firms}
    found: dict[int, list[CreditRating]] = {f.id: [] for f in firms}
    if wanted:
        every_year = sorted(set().union(*(years for _, years in reach)))
        every_bureau = set().union(*(bureaus for bureaus, _ in reach))
        for part in batches(sorted(own)):
            for rating in db.session.execute(sa.select(CreditRating).where(
                    CreditRating.firm_id.in_(part), CreditRating.year.in_(every_year),
                    CreditRating.bureau_id.in_(sorted(every_bureau | {own[i] for i in part})))
                    .order_by(CreditRating.year, CreditRating.id)).scalars():
                found[rating.firm_id].append(rating)
    return [{firm_id: [r for r in ratings if r.year in years and (r.bureau_id in bureaus or r.bureau_id == own[firm_id])]
             for firm_id, ratings in found.items()} for bureaus, years in reach]


def _final_grade_among(ratings: list[CreditRating], year: int) -> CreditGrade | None:
    """``final_grade`` from ratings already read."""
    grades = [r.grade for r in ratings if r.year == year and r.status == RatingStatus.FINAL and r.rated
              and r.grade is not None]
    return max(grades, key=_ORDER.index) if grades else None


def _worked_in(firm_ids: list[int], years: list[int]) -> dict[tuple[int, int], list[str]]:
    """(firm, year) → the paths of the bureaus it worked for that year (an awarded engagement): a bureau whose
    subtree holds one of them rates the firm for that year (``rated_firm_ids``)."""
    out: dict[tuple[int, int], list[str]] = {}
    for part in batches(sorted(set(firm_ids))):
        for firm_id, year, path in db.session.execute(sa.select(Engagement.firm_id, Engagement.year, Bureau.path).join(
                Bureau, Bureau.id == Engagement.bureau_id).where(
                Engagement.firm_id.in_(part), Engagement.year.in_(sorted(set(years)))).distinct()):
            out.setdefault((firm_id, year), []).append(path)
    return out


def _held_grade(ratings: list[CreditRating], last: int, worked: list[str]) -> tuple[CreditGrade | None, int, list]:
    """The grade in force from ratings already read (years ``last`` − 1 and ``last``, of the bureaus in reach),
    asked of each rating bureau on its own: its final grade of ``last``; while its rating of ``last`` is a draft
    or under publicity (objections open), or not computed yet though the firm worked for it that year
    (``worked``: the paths of the bureaus it worked for), its final grade of the year before — otherwise a C or D
    firm would be free to win in the weeks before its new rating is final, or because another bureau finalised
    first. The worst of these, its year, and the bureaus that gave it (by path)."""
    held: list[tuple[CreditGrade, int, CreditRating]] = []
    for bureau_id in sorted({r.bureau_id for r in ratings}):
        own = [r for r in ratings if r.bureau_id == bureau_id]
        latest = [r for r in own if r.year == last]
        if any(r.status == RatingStatus.FINAL for r in latest):
            year = last
        elif latest or (worked and any(path.startswith(own[0].bureau.path) for path in worked)):
            year = last - 1
        else:
            continue  # no rating of last year to wait for: an older grade lapses
        grade = _final_grade_among(own, year)
        if grade is not None:
            held.append((grade, year, own[0]))
    if not held:
        return None, last, []
    grade, year, _ = max(held, key=lambda h: (_ORDER.index(h[0]), h[1]))
    return grade, year, sorted((r.bureau for g, y, r in held if (g, y) == (grade, year)), key=lambda b: b.path)


def _act_years(engagement: Engagement, on: date) -> tuple[int, ...]:
    """The years whose "last year" governs a bid, award or contract of ``engagement`` on ``on``: the
    engagement's plan year and the Beijing year of the act. They differ for an engagement procured late (last
    year's plan awarded in January) or early; the worse grade of the two holds, so a firm graded D for last
    year is not awarded an engagement of the year before because that engagement reads an older rating."""
    return tuple(sorted({engagement.year, on.year}))


@eligibility_check(rule=lambda bureau: GRADE_RULE)
def grade_exclusions(firms, cases, on: date) -> dict[tuple[int, int], list[str]]:
    """Last year's final grade decides who may take part this year (D: nobody; C: open tender only, in
    every other method alike), from any bureau the reach setting lets it reach; the reason names that bureau.
    The grade in force is ``grade_in_force``'s, from ratings read for every firm and case at once — for the
    engagement's year and for the year of the act (``_act_years``), the worse of the two."""
    years = [_act_years(e, on) for e, _ in cases]
    ratings = _ratings_reaching(firms, [(e.bureau, tuple(y for a in acts for y in (a - 2, a - 1)))
                                        for (e, _), acts in zip(cases, years)])
    worked = _worked_in([f.id for f in firms], sorted({a - 1 for acts in years for a in acts}))
    out: dict[tuple[int, int], list[str]] = {}
    for i, (engagement, method) in enumerate(cases):
        for firm in firms:
            held = [_held_grade([r for r in ratings[i][firm.id] if r.year in (a - 2, a - 1)], a - 1,
                                worked.get((firm.id, a - 1), [])) for a in years[i]]
            grade, year, by_bureaus = max(held, key=lambda h: (_ORDER.index(h[0]) if h[0] else -1, h[1]))
            if grade not in (CreditGrade.C, CreditGrade.D):
                continue
            names = "、".join(b.short_name for b in by_bureaus)
            by = f"；{names}评定，{_reach_words(engagement.bureau)}范围适用" if names else ""
            if grade == CreditGrade.D:
                out[(firm.id, i)] = [f"{year} 年度信用评价为 D 级，暂停参与本年度评价业务（最终结果{by}）"]
            elif method != ProcurementMethod.OPEN_TENDER:
                out[(firm.id, i)] = [f"{year} 年度信用评价为 C 级，只能通过公开招标参与（不能通过{method.label}选定{by}）"]
    return out


from evalhub.core.settings import SettingDef, register as register_settings  # noqa: E402  (beside the rule it sets)

register_settings(SettingDef(
    "credit.dishonest_years", "失信记录排除年限（年）", "信用评价", 3, minimum=1, maximum=10,
    help="录入“失信被执行人/严重失信名单”记录的机构，自记录发生之日起该年限内不得参与评价业务。"))
register_settings(SettingDef(
    "credit.grade_reach", "信用等级和重点关注名单的适用范围", "信用评价", "region", kind="choice",
    choices=REACH_CHOICES,
    help="按自治区（最上级财政局）的设置执行：默认区内任一财政局评定的最终 D 级在全区暂停、C 级在全区只能公开招标，"
         "重点关注名单同样全区适用。"))
register_settings(SettingDef(
    "credit.republish_days", "评价结果变更后重新公示期（工作日）", "信用评价", 5, minimum=1, maximum=30,
    help="公示期内重新计算使某家机构的得分或等级发生变化的，该机构的结果重新公示，异议期自变更之日起按此计算；"
         "未变化的结果保持原异议期。"))


def watch_rule(bureau) -> str:
    years = get_setting(bureau, "credit.dishonest_years")
    return (f"列入重点关注名单（检查发现故意违规）的机构，在该年度及下一年度不得参与；"
            f"有失信被执行人/严重失信名单记录的机构，{years} 年内不得参与；"
            f"信用等级和重点关注名单适用于{_reach_words(bureau)}范围内任一财政局作出的评价")


def _struck_out(record_type: str, ids: list[int]) -> set[int]:
    """Of these records, those whose latest correction (an upheld objection) says they must not count."""
    latest: dict[int, bool] = {}
    for record_id, excluded in db.session.execute(sa.select(CreditCorrection.record_id, CreditCorrection.excluded).where(
            CreditCorrection.record_type == record_type, CreditCorrection.record_id.in_(ids or [-1]))
            .order_by(CreditCorrection.id)):
        latest[record_id] = excluded
    return {record_id for record_id, excluded in latest.items() if excluded}


@eligibility_check(rule=watch_rule)
def watch_list_exclusions(firms, cases, on: date) -> dict[tuple[int, int], list[str]]:
    """The watch list (an intentional violation found on inspection, recorded on the year's rating, by any
    bureau the reach setting lets it reach; it holds that year and the next, for the engagement's year and the
    year of the act alike: ``_act_years``) and the dishonesty lists (财库〔2016〕125号: suppliers on them are
    refused in government procurement) exclude in every method, with the reason and the bureau. Read for every
    firm and case at once."""
    ratings = _ratings_reaching(firms, [(e.bureau, tuple(y for a in _act_years(e, on) for y in (a - 1, a)))
                                        for e, _ in cases])
    reasons: dict[tuple[int, int], list[str]] = {(f.id, i): [] for i in range(len(cases)) for f in firms}
    for i, (engagement, _) in enumerate(cases):
        # The finding is quoted only where the rating may be read: by its bureau and the bureaus above it
        # (the engagement's bureau has the rating bureau in its tree); elsewhere the bureau and the year say enough.
        # The tree is read from the bureaus' materialised paths (no query per case: a firm's market page lists
        # procurements of many bureaus, almost none with a watch-list rating).
        below = engagement.bureau.path
        for firm in firms:
            for rating in ratings[i][firm.id]:
                # A draft is its bureau's working paper: it counts once published for objection (the violation
                # suspended the firm in its library when the draft was computed: ``_suspend_for``).
                if rating.watch_list and rating.status != RatingStatus.DRAFT:
                    said = (f"：{rating.watch_reason or '检查发现故意违规'}" if rating.bureau.path.startswith(below)
                            else "（检查发现故意违规）")
                    reasons[(firm.id, i)].append(f"{rating.year} 年度被{rating.bureau.short_name}列入重点关注名单{said}")
    since = [years_before(on, get_setting(e.bureau, "credit.dishonest_years")) for e, _ in cases]
    for part in batches(sorted({f.id for f in firms}) if cases else []):
        records = db.session.execute(sa.select(ExternalCreditRecord).where(
            ExternalCreditRecord.firm_id.in_(part), ExternalCreditRecord.kind == ExternalRecordKind.DISHONEST_LIST,
            ExternalCreditRecord.occurred_on > min(since))
            .order_by(ExternalCreditRecord.occurred_on, ExternalCreditRecord.id)).scalars().all()
        struck = _struck_out("external", [r.id for r in records])
        for record in records:
            if record.id in struck:  # an upheld objection showed it must not count: not in the rating, nor here
                continue
            for i, after in enumerate(since):
                if record.occurred_on > after:
                    reasons[(record.firm_id, i)].append(f"{record.occurred_on:%Y-%m-%d} 列入{ExternalRecordKind.DISHONEST_LIST.label}："
                                                        f"{record.description[:60]}")
    return {key: found for key, found in reasons.items() if found}


# === the background job and the CLI use the same function ==========================================

from evalhub.core.jobs import job_kind  # noqa: E402  (registered at import, like the other job kinds)


@job_kind("credit.compute")
def compute_job(job, report) -> dict:
    """Background job: params {"bureau_id", "year"}; progress per firm."""
    bureau = db.session.get(Bureau, job.params["bureau_id"])
    actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
    year = int(job.params["year"])
    # Progress rows are committed by the job runner; the ratings are written in one transaction at the end.
    ratings = compute(bureau, year, actor)
    db.session.commit()
    report(len(ratings), len(ratings), "计算完成")
    graded = [r for r in ratings if r.rated]
    return {"message": f"{bureau.short_name} {year} 年度：评价 {len(graded)} 家，不予评级 {len(ratings) - len(graded)} 家。",
            "ratings": [r.id for r in ratings]}


def record_shown_to(record: dict[str, Any], reader: User) -> dict[str, Any]:
    """A record a rating component counted, as ``reader`` may see it (web pages and API alike). The rated firm
    reads that a substantiated complaint counted, never which one: like its content and the complainant, a
    complaint's reference stays with the bureaus (as on the inspection pages and in the supervision API)."""
    if record.get("type") == "complaint" and reader.role not in (*permissions.BUREAU_ROLES, Role.SYSTEM_ADMIN):
        return {"type": "complaint", "id": None, "label": "查实投诉"}
    return dict(record)
