"""Annual credit rating of firms (DOMAIN.md §6), from what evalhub recorded, and its lifecycle:
draft → published for objection (working days) → objections answered → final. Procurement reads grades
only through ``final_grade``."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Iterable

import sqlalchemy as sa

from evalhub.core import audit, concurrency, files, permissions
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.notifications import emit
from evalhub.core.calendar import (  # noqa: F401 — the calendar is core's; credit keeps its names
    NATIONAL_CALENDAR, add_working_days, ensure_national_calendar, is_workday, working_days_between,
)
from evalhub.core.models import Bureau, CalendarDay, User
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.credit.models import (
    CreditGrade, CreditObjection, CreditRating, ExternalCreditRecord, ExternalRecordKind,
    ObjectionDecision, RatingStatus,
)
from evalhub.extensions import db
from evalhub.procurement.eligibility import eligibility_check
from evalhub.procurement.models import Contract, Engagement, EngagementState as S, ProcurementMethod
from evalhub.registry.models import Firm, FirmStatus

__all__ = ["CreditGrade", "final_grade", "compute", "publish", "object_to", "answer", "finalise"]

CENT = Decimal("0.01")
COMPLETED = (S.ACCEPTED, S.PUBLISHED, S.ARCHIVED)


def _q(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


# === working-day calendar (the calendar itself is core's; a bureau edits its own days here) =======================

def set_calendar_day(bureau: Bureau, day: date, is_workday_: bool, note: str, actor: User) -> CalendarDay:
    permissions.require(actor, "credit.manage", bureau)
    if not (note or "").strip():
        raise ValidationFailed("请注明节假日或调休名称。", {"note": "必填"})
    row = db.session.execute(sa.select(CalendarDay).where(CalendarDay.bureau_id == bureau.id,
                                                          CalendarDay.day == day)).scalar_one_or_none()
    if row is None:
        row = CalendarDay(bureau_id=bureau.id, day=day, is_workday=is_workday_, note=note.strip())
        db.session.add(row)
    row.is_workday, row.note = is_workday_, note.strip()
    audit.record("calendar.changed", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name}工作日历：{day:%Y-%m-%d} 设为{'工作日' if is_workday_ else '休息日'}（{note.strip()}）")
    return row



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


def grade_for(bureau: Bureau, total: Decimal) -> CreditGrade:
    if total >= Decimal(str(get_setting(bureau, "credit.cut_a"))):
        return CreditGrade.A
    if total >= Decimal(str(get_setting(bureau, "credit.cut_b"))):
        return CreditGrade.B
    if total >= Decimal(str(get_setting(bureau, "credit.cut_c"))):
        return CreditGrade.C
    return CreditGrade.D


def _weight(bureau: Bureau, key: str) -> Decimal:
    return Decimal(str(get_setting(bureau, f"credit.weight_{key}")))


def _setting_decimal(bureau: Bureau, key: str) -> Decimal:
    return Decimal(str(get_setting(bureau, key)))


def rated_firm_ids(bureau: Bureau, year: int) -> set[int]:
    """Firms that worked for this bureau (or its lower bureaus) in the year."""
    subtree = sa.select(Bureau.id).where(Bureau.path.startswith(bureau.path))
    return set(db.session.execute(sa.select(Engagement.firm_id).where(
        Engagement.bureau_id.in_(subtree), Engagement.year == year, Engagement.firm_id.is_not(None))).scalars())


@dataclass
class _FirmYear:
    """What the rating reads about one firm's year, as plain rows (see ``_year_records``)."""
    engagements: list[Any]                 # rows: id, firm_id, state, reference, name, plan_due, report_due (no contract: None)
    first_rounds: list[Any]                # first-round report panels with a score: id, engagement_id, score, passed
    first_submitted: dict[tuple[int, Any], datetime]  # (engagement id, submission kind) → version 1's submitted_at
    extra_rounds: int                      # report panels after round 1
    ratings: list[Decimal]                 # commissioner ratings' totals
    complaints: list[Any]                  # substantiated complaints: id, firm_id, reference
    findings: list[Any]                    # firm_id, inspection_id, severity, description
    external: list[Any]                    # id, firm_id, kind, description, deduction


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
    worked = sa.select(Engagement.firm_id).where(*in_year, Engagement.firm_id.is_not(None))

    out: dict[int, _FirmYear] = {}
    firm_of: dict[int, int] = {}

    def of(fid: int) -> _FirmYear:
        if fid not in out:
            out[fid] = _FirmYear([], [], {}, 0, [], [], [], [])
        return out[fid]

    def firm_filter(column):
        return column == firm_id if firm_id is not None else column.in_(worked)

    for row in db.session.execute(
            sa.select(Engagement.id, Engagement.firm_id, Engagement.state, Engagement.reference, Engagement.name,
                      Contract.plan_due, Contract.report_due)
            .outerjoin(Contract, Contract.engagement_id == Engagement.id)
            .where(*in_year, firms).order_by(Engagement.id)):
        firm_of[row.id] = row.firm_id
        of(row.firm_id).engagements.append(row)
    if not out:
        return out
    for row in db.session.execute(
            sa.select(ReviewPanel.id, ReviewPanel.engagement_id, ReviewPanel.score, ReviewPanel.passed).where(
                ReviewPanel.engagement_id.in_(engagement_ids), ReviewPanel.kind == SubmissionKind.REPORT,
                ReviewPanel.round == 1, ReviewPanel.score.is_not(None)).order_by(ReviewPanel.id)):
        of(firm_of[row.engagement_id]).first_rounds.append(row)
    for engagement_id, kind, submitted_at in db.session.execute(
            sa.select(Submission.engagement_id, Submission.kind, Submission.submitted_at).where(
                Submission.engagement_id.in_(engagement_ids), Submission.version == 1)):
        of(firm_of[engagement_id]).first_submitted[(engagement_id, kind)] = submitted_at
    for engagement_id, count in db.session.execute(
            sa.select(ReviewPanel.engagement_id, sa.func.count(ReviewPanel.id)).where(
                ReviewPanel.engagement_id.in_(engagement_ids), ReviewPanel.kind == SubmissionKind.REPORT,
                ReviewPanel.round > 1).group_by(ReviewPanel.engagement_id)):
        of(firm_of[engagement_id]).extra_rounds += count
    for engagement_id, total in db.session.execute(
            sa.select(CommissionerRating.engagement_id, CommissionerRating.total).where(
                CommissionerRating.engagement_id.in_(engagement_ids)).order_by(CommissionerRating.id)):
        of(firm_of[engagement_id]).ratings.append(total)
    # Complaints and findings count for the year of the work they concern (an inspection of 2025's
    # engagements happens in 2026), or the year they were made when no engagement is named.
    def gather(stmt, into: str) -> None:
        """Append each row of ``stmt`` to the ``into`` list of its firm, for firms that worked in the year."""
        for row in db.session.execute(stmt):
            if row.firm_id in out:
                getattr(out[row.firm_id], into).append(row)

    def of_work_year(created_at):
        return sa.func.coalesce(Engagement.year, sa.extract("year", created_at)) == year

    gather(sa.select(Complaint.id, Complaint.firm_id, Complaint.reference).outerjoin(
               Engagement, Engagement.reference == Complaint.engagement_reference).where(
               firm_filter(Complaint.firm_id), Complaint.substantiated.is_(True), of_work_year(Complaint.created_at))
           .order_by(Complaint.id), "complaints")
    gather(sa.select(Finding.firm_id, Finding.inspection_id, Finding.severity, Finding.description)
           .join(Inspection, Inspection.id == Finding.inspection_id).outerjoin(
               Engagement, Engagement.id == Inspection.engagement_id).where(
               firm_filter(Finding.firm_id), Inspection.bureau_id.in_(subtree), of_work_year(Finding.created_at))
           .order_by(Finding.id), "findings")
    gather(sa.select(ExternalCreditRecord.id, ExternalCreditRecord.firm_id, ExternalCreditRecord.kind,
                     ExternalCreditRecord.description, ExternalCreditRecord.deduction).where(
               firm_filter(ExternalCreditRecord.firm_id), ExternalCreditRecord.bureau_id.in_(subtree),
               sa.extract("year", ExternalCreditRecord.occurred_on) == year).order_by(ExternalCreditRecord.id),
           "external")
    return out


def firm_components(bureau: Bureau, firm: Firm, year: int) -> tuple[bool, list[Component], list[str]]:
    """(rated, components, intentional violations) for one firm, from recorded data only."""
    records = _year_records(bureau, year, firm.id).get(firm.id)
    return _components(bureau, records) if records is not None else (False, [], [])


def _components(bureau: Bureau, records: _FirmYear) -> tuple[bool, list[Component], list[str]]:
    from evalhub.review.models import SubmissionKind
    from evalhub.supervision.models import Severity

    engagements = records.engagements
    completed = [e for e in engagements if e.state in COMPLETED]
    if not completed:
        return False, [], []
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
    checks, late, late_records = 0, 0, []
    for e in engagements:
        if e.plan_due is None:  # no contract
            continue
        for kind, due in ((SubmissionKind.WORK_PLAN, e.plan_due), (SubmissionKind.REPORT, e.report_due)):
            submitted_at = records.first_submitted.get((e.id, kind))
            if submitted_at is None:
                continue
            checks += 1
            if submitted_at.date() > due:
                late += 1
                late_records.append({**ref(e), "label": f"{e.reference} {kind.label}逾期提交"})
    extra_rounds = records.extra_rounds
    on_time = weight * Decimal("0.6") * (Decimal(checks - late) / checks if checks else Decimal(1))
    rounds_part = max(Decimal("0"), weight * Decimal("0.4") - _setting_decimal(bureau, "credit.deduct_round") * extra_rounds)
    components.append(Component("performance", "合同履行", weight, _q(on_time + rounds_part),
                                [f"按期提交 {checks - late}/{checks}", f"整改轮次 {extra_rounds} 次"], late_records))

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
    findings = records.findings
    deductions = {Severity.MINOR: "credit.deduct_minor", Severity.GENERAL: "credit.deduct_general",
                  Severity.SERIOUS: "credit.deduct_serious"}
    intentional = [f.description for f in findings if f.severity == Severity.INTENTIONAL]
    lost = sum((_setting_decimal(bureau, deductions[f.severity]) for f in findings if f.severity in deductions), Decimal("0"))
    supervision = Decimal("0") if intentional else max(Decimal("0"), weight - lost)
    components.append(Component("supervision", "监督检查", weight, _q(supervision),
                                [f"检查发现问题 {len(findings)} 个"] + [f"故意违规：{d}" for d in intentional],
                                [{"type": "inspection", "id": f.inspection_id, "label": f"{f.severity.label}：{f.description[:30]}"} for f in findings]))

    # external credit records entered by the bureau
    weight = _weight(bureau, "external")
    external = records.external
    components.append(Component("external", "外部信用", weight,
                                _q(max(Decimal("0"), weight - sum((r.deduction for r in external), Decimal("0")))),
                                [f"不良信用记录 {len(external)} 条"],
                                [{"type": "external", "id": r.id, "label": f"{r.kind.label}：{r.description[:30]}"} for r in external]))
    return True, components, intentional


def compute(bureau: Bureau, year: int, actor: User | None, *,
            progress: Callable[[int, int], None] | None = None) -> list[CreditRating]:
    """Rate every firm that worked for the bureau in the year. Drafts and published ratings are
    recomputed in place; final ratings are never changed."""
    if actor is not None:
        permissions.require(actor, "credit.manage", bureau)
    firm_ids = sorted(rated_firm_ids(bureau, year))
    existing = {r.firm_id: r for r in db.session.execute(sa.select(CreditRating).where(
        CreditRating.bureau_id == bureau.id, CreditRating.year == year)).scalars()}
    # The whole year's records in a few grouped queries (not a dozen queries per firm), and the firms at once.
    records = _year_records(bureau, year)
    firms = {f.id: f for f in db.session.execute(sa.select(Firm).where(Firm.id.in_(
        sa.select(Engagement.firm_id).where(Engagement.bureau_id.in_(sa.select(Bureau.id).where(
            Bureau.path.startswith(bureau.path))), Engagement.year == year)))).scalars()}
    out = []
    for index, firm_id in enumerate(firm_ids, start=1):
        firm = firms[firm_id]
        rating = existing.get(firm_id)
        if rating is not None and rating.status == RatingStatus.FINAL:
            out.append(rating)
            continue
        rated, components, intentional = (_components(bureau, records[firm_id]) if firm_id in records
                                          else (False, [], []))
        if rating is None:
            rating = CreditRating(bureau_id=bureau.id, firm_id=firm_id, year=year, status=RatingStatus.DRAFT, version=0)
            db.session.add(rating)
        rating.version += 1
        rating.rated = rated
        rating.components = [c.as_dict() for c in components]
        rating.total = _q(sum((c.points for c in components), Decimal("0"))) if rated else None
        rating.grade = grade_for(bureau, rating.total) if rated else None
        rating.watch_list = bool(intentional)
        rating.watch_reason = "；".join(intentional)[:500] or None
        rating.computed_at = utcnow()
        if intentional and firm.status == FirmStatus.ADMITTED and actor is not None and \
                permissions.can(actor, "firm.status", firm):
            from evalhub.registry.services import change_firm_status

            change_firm_status(firm, "suspend", actor, reason=f"{year} 年度检查发现故意违规，列入重点关注名单：{rating.watch_reason}")
        out.append(rating)
        if progress:
            progress(index, len(firm_ids))
    db.session.flush()
    audit.record("credit.computed", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name}计算 {year} 年度机构信用评价：{len(out)} 家",
                 payload={"year": year, "firms": len(out)})
    return out


# === lifecycle =====================================================================================

def publish(bureau: Bureau, year: int, actor: User, *, today: date | None = None) -> int:
    """Publish the year's drafts for objection; the deadline counts working days."""
    permissions.require(actor, "credit.manage", bureau)
    drafts = db.session.execute(sa.select(CreditRating).where(
        CreditRating.bureau_id == bureau.id, CreditRating.year == year, CreditRating.status == RatingStatus.DRAFT)).scalars().all()
    if not drafts:
        raise Conflict(f"{year} 年度没有待公示的评价结果，请先计算。")
    today = today or beijing_today()
    deadline = add_working_days(bureau, today, get_setting(bureau, "credit.objection_days"))
    for rating in drafts:
        rating.status = RatingStatus.PUBLISHED
        rating.published_at = utcnow()
        rating.objection_deadline = deadline
    audit.record("credit.published", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name}公示 {year} 年度机构信用评价 {len(drafts)} 家，异议截止 {deadline:%Y-%m-%d}")
    for rating in drafts:
        emit("rating_publicised", link=f"/credit/ratings/{rating.id}", firm_id=rating.firm_id, year=year,
             detail=f"贵机构 {year} 年度信用评价为 {rating.grade.label if rating.grade else '不予评级'}，"
                    f"如有异议请于 {deadline:%Y-%m-%d} 前提出。")
    return len(drafts)


def object_to(rating: CreditRating, actor: User, text: str, evidence: Iterable[tuple[str, bytes]] = (),
              *, today: date | None = None) -> CreditObjection:
    if actor.role != Role.FIRM_USER or actor.firm_id != rating.firm_id:
        raise PermissionDenied("只有被评价机构可以提出异议。")
    today = today or beijing_today()
    if rating.status != RatingStatus.PUBLISHED:
        raise Conflict("该评价结果不在公示期内。")
    if today > rating.objection_deadline:
        raise Conflict(f"异议期已于 {rating.objection_deadline:%Y-%m-%d} 截止。")
    if len((text or "").strip()) < 10:
        raise ValidationFailed("请写明异议的事实和理由（不少于 10 字）。", {"text": "内容过短"})
    # One objection per click storm: the same unanswered objection to this rating is the one already filed.
    # Serialised per rating, so simultaneous presses (several workers) see each other's objection.
    concurrency.serialise(f"credit.objection:{rating.id}")
    filed = db.session.execute(sa.select(CreditObjection).where(
        CreditObjection.rating_id == rating.id, CreditObjection.decision.is_(None),
        CreditObjection.text == text.strip()).order_by(CreditObjection.id)).scalars().first()
    if filed is not None:
        return filed
    stored = files.store_evidence(evidence, actor=actor)
    objection = CreditObjection(text=text.strip(), evidence_file_ids=[s.id for s in stored], submitted_by_id=actor.id,
                                answer_due=add_working_days(rating.bureau, today, get_setting(rating.bureau, "credit.answer_days")))
    rating.objections.append(objection)
    db.session.flush()
    audit.record("credit.objection", rating, actor=actor, bureau_id=rating.bureau_id,
                 summary=f"{rating.firm.name} 对 {rating.year} 年度信用评价提出异议", payload={"objection": objection.id})
    return objection


def answer(objection: CreditObjection, actor: User, decision: Any, text: str, *, recompute: bool = False) -> None:
    rating = objection.rating
    permissions.require(actor, "credit.manage", rating.bureau)
    if objection.decision is not None:
        raise Conflict("该异议已经答复。")
    if rating.status != RatingStatus.PUBLISHED:
        raise Conflict("该评价结果已确定。")
    try:
        decision = decision if isinstance(decision, ObjectionDecision) else ObjectionDecision.from_label(str(decision))
    except ValueError:
        raise ValidationFailed("请选择异议是否成立。", {"decision": "必选"})
    if len((text or "").strip()) < 10:
        raise ValidationFailed("请写明答复意见（不少于 10 字）。", {"answer": "内容过短"})
    objection.decision, objection.answer = decision, text.strip()
    objection.answered_by_id, objection.answered_at = actor.id, utcnow()
    audit.record("credit.objection_answered", rating, actor=actor, bureau_id=rating.bureau_id,
                 summary=f"答复 {rating.firm.name} 的异议：{decision.label}", payload={"objection": objection.id})
    emit("objection_answered", link=f"/credit/ratings/{rating.id}", firm_id=rating.firm_id, year=rating.year,
         outcome=decision.label, answer=objection.answer)
    if recompute:
        before = (rating.total, rating.grade)
        compute(rating.bureau, rating.year, actor)
        audit.record("credit.recomputed", rating, actor=actor, bureau_id=rating.bureau_id,
                     summary=f"异议处理后重新计算：{before[0]} → {rating.total}")


def finalise(bureau: Bureau, year: int, actor: User, *, today: date | None = None) -> int:
    """Make the year's published ratings final: after the objection deadline, every objection answered."""
    permissions.require(actor, "credit.manage", bureau)
    today = today or beijing_today()
    published = db.session.execute(sa.select(CreditRating).where(
        CreditRating.bureau_id == bureau.id, CreditRating.year == year, CreditRating.status == RatingStatus.PUBLISHED)).scalars().all()
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
    errors: dict[str, str] = {}
    try:
        kind = kind if isinstance(kind, ExternalRecordKind) else ExternalRecordKind.from_label(str(kind or ""))
    except ValueError:
        errors["kind"] = "请选择记录类型"
    if occurred_on is None:
        errors["occurred_on"] = "请填写发生日期"
    if not (description or "").strip():
        errors["description"] = "请填写记录内容"
    try:
        value = Decimal(str(deduction))
        if not Decimal("0") <= value <= Decimal("100"):
            raise ValueError
    except Exception:
        errors["deduction"] = "扣分应为 0–100 的数字"
        value = Decimal("0")
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


# === the effect on procurement ====================================================================

_ORDER = [CreditGrade.A, CreditGrade.B, CreditGrade.C, CreditGrade.D]


def final_grade(firm, bureau, year: int) -> CreditGrade | None:
    """The firm's worst FINAL grade for ``year`` from the bureaus whose libraries the engagement's bureau
    uses (its own and upper bureaus) or the firm's own library bureau; None when not rated."""
    if firm is None or bureau is None:
        return None
    bureaus = {bureau.id} | {b.id for b in bureau.ancestors()} | {firm.bureau_id}
    grades = db.session.execute(sa.select(CreditRating.grade).where(
        CreditRating.firm_id == firm.id, CreditRating.year == year, CreditRating.status == RatingStatus.FINAL,
        CreditRating.rated.is_(True), CreditRating.bureau_id.in_(bureaus))).scalars().all()
    grades = [g for g in grades if g is not None]
    return max(grades, key=_ORDER.index) if grades else None


def _rating_bureau_ids(firm, bureau) -> set[int]:
    """Whose ratings of the firm count for an engagement of ``bureau``: its own, its upper bureaus', and the
    firm's library bureau's (as in ``final_grade``)."""
    return {bureau.id} | {b.id for b in bureau.ancestors()} | {firm.bureau_id}


def grade_in_force(firm, bureau, year: int) -> tuple[CreditGrade | None, int]:
    """The final grade that governs engagements of ``year``, and the rating year it comes from: last year's
    final grade; while last year's rating is still a draft or under publicity (objections open), the year
    before's final grade stays in force — otherwise a C or D firm would be free to win in the weeks between
    the new year's engagements and its rating becoming final."""
    last = year - 1
    bureaus = _rating_bureau_ids(firm, bureau)
    statuses = set(db.session.execute(sa.select(CreditRating.status).where(
        CreditRating.firm_id == firm.id, CreditRating.year == last, CreditRating.bureau_id.in_(bureaus))).scalars())
    if statuses and RatingStatus.FINAL not in statuses:
        return final_grade(firm, bureau, last - 1), last - 1
    return final_grade(firm, bureau, last), last


GRADE_RULE = "上一年度信用评价（最终结果）为 D 级的机构暂停参与评价业务；为 C 级的机构只能通过公开招标参与，竞争性磋商、机构库随机抽取、框架协议轮候和单一来源均不得选定"


@eligibility_check(rule=lambda bureau: GRADE_RULE)
def grade_exclusions(firm, engagement, method) -> list[str]:
    """Last year's final grade decides who may take part this year (D: nobody; C: open tender only, in
    every other method alike)."""
    grade, year = grade_in_force(firm, engagement.bureau, engagement.year)
    if grade == CreditGrade.D:
        return [f"{year} 年度信用评价为 D 级，暂停参与本年度评价业务"]
    if grade == CreditGrade.C and method != ProcurementMethod.OPEN_TENDER:
        return [f"{year} 年度信用评价为 C 级，只能通过公开招标参与（不能通过{method.label}选定）"]
    return []


from evalhub.core.settings import SettingDef, register as register_settings  # noqa: E402  (beside the rule it sets)

register_settings(SettingDef(
    "credit.dishonest_years", "失信记录排除年限（年）", "信用评价", 3, minimum=1, maximum=10,
    help="录入“失信被执行人/严重失信名单”记录的机构，自记录发生之日起该年限内不得参与评价业务。"))


def watch_rule(bureau) -> str:
    years = get_setting(bureau, "credit.dishonest_years")
    return (f"列入重点关注名单（检查发现故意违规）的机构，在该年度及下一年度不得参与；"
            f"有失信被执行人/严重失信名单记录的机构，{years} 年内不得参与")


@eligibility_check(rule=watch_rule)
def watch_list_exclusions(firm, engagement, method) -> list[str]:
    """The watch list (an intentional violation found on inspection, recorded on the year's rating) and
    the dishonesty lists (财库〔2016〕125号: suppliers on them are refused in government procurement) exclude
    in every method, with the reason."""
    bureau = engagement.bureau
    bureaus = _rating_bureau_ids(firm, bureau)
    reasons = []
    watched = db.session.execute(sa.select(CreditRating).where(
        CreditRating.firm_id == firm.id, CreditRating.watch_list.is_(True),
        CreditRating.year.in_((engagement.year - 1, engagement.year)), CreditRating.bureau_id.in_(bureaus))
        .order_by(CreditRating.year, CreditRating.id)).scalars().all()
    for rating in watched:
        reasons.append(f"{rating.year} 年度被{rating.bureau.short_name}列入重点关注名单："
                       f"{rating.watch_reason or '检查发现故意违规'}")
    years = get_setting(bureau, "credit.dishonest_years")
    today = beijing_today()
    since = date(today.year - years, today.month, min(today.day, 28 if today.month == 2 else 31))
    dishonest = db.session.execute(sa.select(ExternalCreditRecord).where(
        ExternalCreditRecord.firm_id == firm.id, ExternalCreditRecord.kind == ExternalRecordKind.DISHONEST_LIST,
        ExternalCreditRecord.occurred_on > since).order_by(ExternalCreditRecord.occurred_on)).scalars().all()
    for record in dishonest:
        reasons.append(f"{record.occurred_on:%Y-%m-%d} 列入{ExternalRecordKind.DISHONEST_LIST.label}："
                       f"{record.description[:60]}")
    return reasons


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
