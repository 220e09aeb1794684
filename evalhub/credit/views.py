"""Credit rating pages (DOMAIN.md §6): the bureau's yearly list with its compute / publish / finalise
buttons, each rating's explanation (components, their records, last year's change, objections and
answers), the firm's own ratings and objection form, the working-day calendar, external credit records,
the public list of FINAL ratings, and the dashboard's cards.

Thin routes: check permission (``load`` / ``require``), call ``evalhub.credit.services``, commit,
redirect. A service's ``ValidationFailed`` is rolled back and shown beside the form with HTTP 422
(nothing written); ``Conflict`` and ``PermissionDenied`` propagate to the app's error handlers (409 /
403) with the service's Chinese sentence.

Who sees what:
- bureau users read the ratings of their bureau and the bureaus below it (``permissions.scope``); only
  a bureau's own administrators compute, publish, finalise, answer objections, keep the calendar and
  enter external records (``credit.manage``);
- a firm user reads only their own firm's ratings, and only once published: a draft is the bureau's
  working copy. Expert-panel links are shown to bureau users only;
- anyone, without logging in, reads FINAL ratings only (``/public/ratings``): nothing draft or still
  open for objection is reachable there.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core import bureau_tree, permissions
from evalhub.core.enums import Role, written
from evalhub.core.errors import ValidationFailed
from evalhub.core.listing import (
    Export, Filter, Listing, as_int, choice_filter, int_arg, int_filter, parse_year, read_distinct, text_filter,
    year_filter,
)
from evalhub.core.models import Bureau, StoredFile, User
from evalhub.core.timeutil import beijing_today, to_beijing
from evalhub.core.web import form_page, handle_form, load, public, require, scoped, send_stored, wants_export
from evalhub.credit import services
from evalhub.credit.forms import AnswerForm, CalendarForm, ExternalRecordForm, ObjectionForm, YearActionForm
from evalhub.core.calendar import Correction
from evalhub.core.models import CalendarDay
from evalhub.credit.models import (
    CreditCorrection,
    CreditGrade,
    CreditGradeCount,
    CreditObjection,
    CreditRating,
    ExternalCreditRecord,
    RatingStatus,
)
from evalhub.extensions import db
from evalhub.registry.forms import BLANK, choice
from evalhub.registry.models import Firm

bp = Blueprint("credit", __name__)

WEEKDAYS = "一二三四五六日"
GRADES = [CreditGrade.A, CreditGrade.B, CreditGrade.C, CreditGrade.D]


# --- small helpers ---------------------------------------------------------------------------------

def _is_firm_user() -> bool:
    return current_user.role == Role.FIRM_USER


def _bureau_side() -> bool:
    return permissions.can(current_user, "dashboard.bureau")


def _year_arg(raw: str) -> Optional[int]:
    """A rating year, 2000–2100; anything else None."""
    try:
        return parse_year((raw or "").strip(), 2000, 2100)
    except ValueError:
        return None


def _managed_bureau() -> Bureau:
    """The current user's own bureau, which they must administer (``credit.manage``)."""
    bureau = current_user.bureau if current_user.role != Role.FIRM_USER else None
    if bureau is None:
        abort(403)
    require("credit.manage", bureau)
    return bureau


def _posted_year() -> int:
    form = YearActionForm()
    return services.check_year(_year_arg(form.year.data or "") if form.validate_on_submit() else None)


def _user_name(user_id: Optional[int]) -> str:
    user = db.session.get(User, user_id) if user_id else None
    return user.display_name if user else ""


def _objection_counts(rating_ids: list[int]) -> dict[int, tuple[int, int]]:
    """rating id → (objections, unanswered)."""
    rows = db.session.execute(
        sa.select(CreditObjection.rating_id, sa.func.count(CreditObjection.id),
                  sa.func.sum(sa.case((CreditObjection.decision.is_(None), 1), else_=0)))
        .where(CreditObjection.rating_id.in_(rating_ids or [-1])).group_by(CreditObjection.rating_id)).all()
    return {rid: (total, int(open_ or 0)) for rid, total, open_ in rows}


def _grade_label(rating: CreditRating) -> str:
    if not rating.rated:
        return "不予评级"
    return rating.grade.label if rating.grade else ""


# --- the bureau's list -----------------------------------------------------------------------------

def _grade_condition(raw: str):
    return CreditRating.rated.is_(False) if raw == "none" else CreditRating.grade == CreditGrade(raw)


GRADE = Filter("grade", _grade_condition, lambda stmt, condition: stmt.where(condition))
FIRM_NAME = text_filter("firm", Firm.name)  # the statement joins Firm
RATING_FILTERS = (int_filter("bureau", CreditRating.bureau_id), GRADE,
                  Filter("status", RatingStatus, lambda stmt, status: stmt.where(CreditRating.status == status)),
                  choice_filter("watch", {"1": CreditRating.watch_list.is_(True)}),
                  FIRM_NAME)


def _rating_rows(ratings: list[CreditRating]) -> list[dict]:
    counts = _objection_counts([r.id for r in ratings])
    return [{"年度": r.year, "财政局": r.bureau.name, "第三方机构": r.firm.name, "统一社会信用代码": r.firm.uscc,
             "总分": float(r.total) if r.total is not None else None, "等级": _grade_label(r),
             "重点关注": "是" if r.watch_list else "", "关注原因": r.watch_reason or "", "状态": r.status.label,
             "异议": counts.get(r.id, (0, 0))[0], "未答复异议": counts.get(r.id, (0, 0))[1],
             "公示异议截止": r.objection_deadline, "计算时间（北京）": to_beijing(r.computed_at), "版本": r.version} for r in ratings]


EXPORT_COLUMNS = ["年度", "财政局", "第三方机构", "统一社会信用代码", "总分", "等级", "重点关注", "关注原因", "状态",
                  "异议", "未答复异议", "公示异议截止", "计算时间（北京）", "版本"]


@bp.route("/credit")
def index():
    require("dashboard.bureau")
    # a probe per year; this page's statements are built once per scope, year and filters (``permissions.kept``)
    years = read_distinct(CreditRating.year, lambda stmt: scoped(CreditRating, stmt), keep="credit.years")[::-1]
    year = _year_arg(request.args.get("year", "")) or (years[0] if years else beijing_today().year - 1)
    order = [CreditRating.rated.desc(), CreditRating.total.desc(), Firm.name, CreditRating.id]

    def of_year(stmt: sa.Select) -> sa.Select:
        return scoped(CreditRating, stmt).join(Firm, Firm.id == CreditRating.firm_id).where(CreditRating.year == year)

    if wants_export():
        return Listing(of_year(sa.select(CreditRating)), *RATING_FILTERS, order_by=order,
                       options=[joinedload(CreditRating.bureau), joinedload(CreditRating.firm)]) \
            .export(Export(f"{year}年度信用评价", EXPORT_COLUMNS, _rating_rows, f"机构信用评价{year}.xlsx"))
    # The page reads what it shows, as rows (not ratings, firms and bureaus as ORM objects): the firm's name from
    # the join already there, not the components (JSON); its count, each rating's bureau and objection counts
    # ride on the same statement.
    ratings = Listing(lambda: of_year(sa.select(
        CreditRating.id, CreditRating.rated, CreditRating.total, CreditRating.grade, CreditRating.watch_list,
        CreditRating.watch_reason, CreditRating.status, CreditRating.objection_deadline, CreditRating.computed_at,
        CreditRating.version, Firm.name.label("firm_name"))), *RATING_FILTERS, order_by=order,
        keep=("credit.ratings", year))
    own = current_user.bureau
    # ``ix_credit_rating_ranking`` gives the year's ratings in score order: the database sorts only the ties by
    # firm name (an incremental sort), stops after the page and counts objections for the rows it read. Not
    # ``late`` (the page chosen over ids, then joined): that shape took PostgreSQL ~0.25 ms more to plan, and
    # its plan cache kept the generic plan at province scale but planned every request at twice that (+15 %
    # per request from data growth alone; this shape measured flat in ``bench/web.py``). Its total,
    # with no filter but the year, sums the kept counts of the user's tree instead of counting the year's ratings
    # (every rating has its firm: the join keeps them all); a filter counts as before.
    page = ratings.page(extra=permissions.kept(current_user, "credit.extra", lambda: _rating_extra(own, year), year),
                        rows=True,
                        total=None if ratings.narrowed() else services.rating_total(current_user, year))
    return render_template("credit/index.html", page=page, filters={**ratings.filters, "year": str(year)}, year=year,
                           years=sorted(set(years) | {year, beijing_today().year - 1}, reverse=True),
                           bureaus=permissions.visible_bureaus(current_user),
                           counts={r.id: (row["objections"], row["unanswered"]) for r, row in zip(page.items, page.extra)},
                           manage=own is not None and permissions.can(current_user, "credit.manage", own), own=own,
                           summary=_summary(page.extra[0] if page.extra else _own_summary(own, year))
                           if own is not None else None, form=YearActionForm(),
                           CreditGrade=CreditGrade, RatingStatus=RatingStatus, grade_label=_grade_label)


def _rating_extra(own: Bureau | None, year: int) -> list:
    """The credit page's columns beside each rating's own: its objections (all, unanswered), its bureau's name,
    and the boxes of how far ``own``'s ratings of ``year`` have come (``_summary_columns``)."""
    bureau_name = sa.select(Bureau.short_name).where(Bureau.id == CreditRating.bureau_id).scalar_subquery()
    summary = _summary_columns(own, year) if own is not None else {}
    return [_objections_column().label("objections"),
            _objections_column(CreditObjection.decision.is_(None)).label("unanswered"),
            bureau_name.label("bureau_short_name"), *(column.label(name) for name, column in summary.items())]


def _objections_column(*conditions: Any) -> Any:
    """Each listed rating's objections (meeting ``conditions``), read with the page."""
    return sa.select(sa.func.count(CreditObjection.id)).where(
        CreditObjection.rating_id == CreditRating.id, *conditions).correlate(CreditRating).scalar_subquery()


def _summary_columns(bureau: Bureau, year: int) -> dict[str, Any]:
    """How far the bureau's own ratings of the year have come, a scalar subquery per box (read with the
    ratings' page, or on their own by ``_own_summary``): counts by status, the deadline, open objections."""
    of_year = sa.and_(CreditRating.bureau_id == bureau.id, CreditRating.year == year)

    def ratings(value: Any, *conditions: Any) -> Any:
        return sa.select(value).where(of_year, *conditions).correlate(None).scalar_subquery()

    # the statuses written into the SQL (``written``): bound, PostgreSQL planned the ratings page at every
    # request (0.5 ms, in psql at province scale, for 巴州's and the region's admin)
    published = CreditRating.status == written(RatingStatus.PUBLISHED)
    return {"summary_draft": ratings(sa.func.count(), CreditRating.status == written(RatingStatus.DRAFT)),
            "summary_published": ratings(sa.func.count(), published),
            "summary_final": ratings(sa.func.count(), CreditRating.status == written(RatingStatus.FINAL)),
            "summary_deadline": ratings(sa.func.max(CreditRating.objection_deadline), published),
            "summary_unanswered": sa.select(sa.func.count(CreditObjection.id)).join(CreditRating).where(
                of_year, CreditObjection.decision.is_(None)).correlate(None).scalar_subquery()}


def _own_summary(bureau: Bureau, year: int) -> dict:
    """``_summary_columns`` in one statement of their own (a page without rows carries none)."""
    columns = _summary_columns(bureau, year)
    return dict(db.session.execute(sa.select(*(c.label(name) for name, c in columns.items()))).one()._mapping)


def _summary(values: dict) -> dict:
    deadline = values["summary_deadline"]
    return {"draft": values["summary_draft"], "published": values["summary_published"],
            "final": values["summary_final"], "deadline": deadline, "unanswered": values["summary_unanswered"],
            "period_over": deadline is not None and beijing_today() > deadline}


@bp.route("/credit/compute", methods=["POST"])
def compute():
    bureau = _managed_bureau()
    job = services.start_compute(bureau, _posted_year(), current_user)
    return redirect(url_for("core.job_detail", job_id=job.id))


@bp.route("/credit/publish", methods=["POST"])
def publish():
    bureau = _managed_bureau()
    year = _posted_year()
    services.ensure_national_calendar()  # deadlines count working days: the national holidays must be there
    count = services.publish(bureau, year, current_user)
    db.session.commit()
    deadline = db.session.execute(sa.select(sa.func.max(CreditRating.objection_deadline)).where(
        CreditRating.bureau_id == bureau.id, CreditRating.year == year)).scalar_one_or_none()
    flash(f"已公示 {year} 年度评价结果 {count} 家，异议截止 {deadline:%Y-%m-%d}。", "success")
    return redirect(url_for(".index", year=year))


@bp.route("/credit/finalise", methods=["POST"])
def finalise():
    bureau = _managed_bureau()
    year = _posted_year()
    count = services.finalise(bureau, year, current_user)
    db.session.commit()
    flash(f"{year} 年度评价结果已确定：{count} 家，已在信用评价公示中公开。", "success")
    return redirect(url_for(".index", year=year))


# --- one rating ------------------------------------------------------------------------------------

def _rating(rating_id: int) -> CreditRating:
    return load(CreditRating, rating_id, "credit.view")  # a firm: its own, once published


def _record_link(record: dict) -> Optional[str]:
    """Where a component's record is explained; None for text only."""
    kind, rid = record.get("type"), record.get("id")
    if rid is None:
        return None
    if kind == "engagement":
        return url_for("procurement.engagement_detail", engagement_id=rid)
    if kind == "panel":
        return url_for("review.panel_detail", panel_id=rid) if _bureau_side() else None
    if kind == "inspection":
        return f"/inspections/{rid}"
    return None  # complaints and external records: the label says what it is


def _render_rating(rating: CreditRating, status: int = 200, *, objection_form: Optional[ObjectionForm] = None,
                   answer_forms: Optional[dict[int, AnswerForm]] = None):
    components = []
    for c in rating.components or []:
        points, maximum = Decimal(str(c.get("points") or 0)), Decimal(str(c.get("max") or 0))
        components.append({**c, "percent": int(points / maximum * 100) if maximum else 0,
                           "links": [(r.get("label", ""), _record_link(r), r.get("type"))
                                     for r in (services.record_shown_to(x, current_user) for x in c.get("records", []))]})

    previous = db.session.execute(sa.select(CreditRating).where(
        CreditRating.bureau_id == rating.bureau_id, CreditRating.firm_id == rating.firm_id,
        CreditRating.year == rating.year - 1)).scalar_one_or_none()
    if previous is not None and not permissions.can(current_user, "credit.view", previous):
        previous = None  # a firm's draft of last year: not its rating yet
    delta = None
    if previous is not None and previous.total is not None and rating.total is not None:
        delta = rating.total - previous.total

    today = beijing_today()
    is_rated_firm = _is_firm_user() and current_user.firm_id == rating.firm_id
    can_object = is_rated_firm and rating.status == RatingStatus.PUBLISHED and rating.objection_deadline is not None \
        and today <= rating.objection_deadline
    can_manage = permissions.can(current_user, "credit.manage", rating.bureau)
    can_answer = can_manage and rating.status == RatingStatus.PUBLISHED
    answer_forms = dict(answer_forms or {})
    if can_answer:
        for o in rating.objections:
            if o.decision is None and o.id not in answer_forms:
                answer_forms[o.id] = AnswerForm(prefix=f"a{o.id}", formdata=None)

    file_ids = [fid for o in rating.objections for fid in (o.evidence_file_ids or [])]
    evidence = {f.id: f for f in db.session.execute(
        sa.select(StoredFile).where(StoredFile.id.in_(file_ids or [-1]))).scalars()}
    subtree = sa.select(Bureau.id).where(Bureau.path.startswith(rating.bureau.path))
    external = db.session.execute(sa.select(ExternalCreditRecord).where(
        ExternalCreditRecord.firm_id == rating.firm_id, ExternalCreditRecord.bureau_id.in_(subtree))
        .order_by(ExternalCreditRecord.occurred_on.desc(), ExternalCreditRecord.id.desc())).scalars().all()
    own = current_user.bureau if not _is_firm_user() else None
    can_add_external = own is not None and permissions.can(current_user, "credit.manage", own)
    offered = services.contestable(rating)
    labels = {c["code"]: c["label"] for c in rating.components or []}
    if objection_form is None and can_object:
        objection_form = ObjectionForm(formdata=None)
    record_choices = [(r["ref"], f"{labels[code]}：{r['label']}") for code, records in offered.items() for r in records]
    if objection_form is not None:
        objection_form.component.choices = [BLANK] + [choice(code, label) for code, label in labels.items()]
        objection_form.records.choices = [choice(value, label) for value, label in record_choices]
    return render_template(
        "credit/rating_detail.html", rating=rating, components=components, previous=previous, delta=delta,
        today=today, can_object=can_object, is_rated_firm=is_rated_firm, can_manage=can_manage,
        objection_form=objection_form, component_labels=labels, record_choices=record_choices, in_force_note=services.in_force_note(rating),
        answer_forms=answer_forms, evidence=evidence, external=external, can_add_external=can_add_external,
        bureau_side=_bureau_side(), user_name=_user_name, grade_label=_grade_label, RatingStatus=RatingStatus,
        form=YearActionForm(),
    ), status


@bp.route("/credit/ratings/<int:rating_id>")
def rating_detail(rating_id: int):
    return _render_rating(_rating(rating_id))


@bp.route("/credit/ratings/<int:rating_id>/objections", methods=["POST"])
def objection_new(rating_id: int):
    rating = _rating(rating_id)
    if not (_is_firm_user() and current_user.firm_id == rating.firm_id):
        abort(403)
    form = ObjectionForm()
    return handle_form(form, lambda: services.object_to(rating, current_user, form.text.data, [
        (f.filename, f.read()) for f in (form.evidence.data or []) if f is not None and f.filename],
        component=form.component.data or None, records=form.records.data or []),
        message=lambda objection: f"异议已提交，财政部门将于 {objection.answer_due:%Y-%m-%d} 前答复。",
        to=url_for(".rating_detail", rating_id=rating.id) + "#objections",
        failed=lambda status: _render_rating(rating, status, objection_form=form))


@bp.route("/credit/objections/<int:objection_id>/answer", methods=["POST"])
def objection_answer(objection_id: int):
    objection = db.get_or_404(CreditObjection, objection_id)
    rating = _rating(objection.rating_id)
    require("credit.manage", rating.bureau)
    form = AnswerForm(prefix=f"a{objection.id}")
    recompute = bool(form.recompute.data)
    # The corrected fact of each contested record, posted beside the form as "a<id>-fix-<ref>".
    fixes = {item["ref"]: request.form.get(f"a{objection.id}-fix-{item['ref']}", "")
             for item in objection.contested or []}
    upload = form.evidence.data
    evidence = [(upload.filename, upload.read())] if upload is not None and getattr(upload, "filename", "") else []
    return handle_form(form, lambda: services.answer(objection, current_user, form.decision.data, form.answer.data,
                                                     recompute=recompute, corrections=fixes, evidence=evidence),
                       message=lambda _: f"已答复异议：{objection.decision.label}" + (
                           f"；已重新计算：{objection.total_before} 分 → {objection.total_after} 分"
                           f"（现为 {_grade_label(rating)}）。" if objection.total_after is not None else "。"),
                       to=url_for(".rating_detail", rating_id=rating.id) + "#objections",
                       failed=lambda status: _render_rating(rating, status, answer_forms={objection.id: form}))


@bp.route("/credit/objections/<int:objection_id>/files/<int:file_id>")
def objection_file(objection_id: int, file_id: int):
    objection = db.get_or_404(CreditObjection, objection_id)
    _rating(objection.rating_id)
    if file_id not in (objection.evidence_file_ids or []):
        abort(404)
    record = db.get_or_404(StoredFile, file_id)
    return send_stored(record)


@bp.route("/credit/corrections/<int:correction_id>/file")
def correction_file(correction_id: int):
    """The evidence a correction rests on: for whoever may read the rating (its bureaus, the rated firm)."""
    correction = db.get_or_404(CreditCorrection, correction_id)
    _rating(correction.rating_id)
    return send_stored(correction.evidence_file)


@bp.route("/credit/mine")
def mine():
    if not _is_firm_user():
        abort(403)
    require("credit.list")  # not the account of a firm not admitted (the page gate refuses it too)
    ratings = db.session.execute(
        permissions.scope(current_user, sa.select(CreditRating), CreditRating)  # published ones: the scope
        .options(selectinload(CreditRating.bureau), selectinload(CreditRating.objections))
        .order_by(CreditRating.year.desc(), CreditRating.bureau_id)).scalars().all()
    return render_template("credit/mine.html", ratings=ratings, firm=current_user.firm, today=beijing_today(),
                           grade_label=_grade_label, RatingStatus=RatingStatus)


# --- the working-day calendar ----------------------------------------------------------------------

@bp.route("/credit/calendar", methods=["GET", "POST"])
def calendar():
    bureau = current_user.bureau if current_user.role in permissions.BUREAU_ROLES else None
    if bureau is None:
        abort(403)
    can_manage = permissions.can(current_user, "credit.manage", bureau)
    form = CalendarForm()
    if request.method == "POST" and not can_manage:
        abort(403)
    if request.method == "GET" and services.ensure_national_calendar():
        db.session.commit()  # the national holidays are seeded on first use, as the rubrics are
    return handle_form(form, lambda: services.set_calendar_day(bureau, form.day.data, form.kind.data == "workday",
                                                               form.note.data, current_user),
                       message=_calendar_message,
                       to=url_for(".calendar"), failed=lambda status: _render_calendar(bureau, form, can_manage, status))


def _calendar_message(done: Correction) -> str:
    row, moved = done
    text = f"已将 {row.day:%Y-%m-%d} 设为{'工作日' if row.is_workday else '休息日'}（{row.note}）"
    if not moved:
        return text + "，没有未届满的期限受影响。"
    return text + f"，{len(moved)} 项未届满的期限已按调整后的日历重新计算，并已通知相关单位和机构。"


def _render_calendar(bureau: Bureau, form: CalendarForm, can_manage: bool, status: int):
    today = beijing_today()
    chain = bureau_tree.chain_ids(bureau)
    rank = {b: i for i, b in enumerate(chain)}
    rows = db.session.execute(sa.select(CalendarDay).where(
        CalendarDay.day >= today, sa.or_(CalendarDay.bureau_id.is_(None), CalendarDay.bureau_id.in_(chain)))
        .order_by(CalendarDay.day)).scalars().all()
    best: dict[date, int] = {}
    for row in rows:
        priority = rank.get(row.bureau_id, len(chain))
        best[row.day] = min(best.get(row.day, priority), priority)
    names = {b.id: b.short_name for b in [bureau] + bureau.ancestors()}
    days = [{"row": row, "weekday": WEEKDAYS[row.day.weekday()],
             "source": "全国" if row.bureau_id is None else names.get(row.bureau_id, ""),
             "own": row.bureau_id == bureau.id,
             "overridden": rank.get(row.bureau_id, len(chain)) != best[row.day]} for row in rows[:400]]
    # a year still on the statutory holidays alone, unless this bureau or one above has entered its 调休 working days
    entered = {row.day.year for row in rows if row.bureau_id is not None and row.is_workday}
    provisional = [year for year in (today.year, today.year + 1) if services.is_provisional(year) and year not in entered]
    return render_template("credit/calendar.html", form=form, bureau=bureau, days=days, can_manage=can_manage,
                           today=today, provisional=provisional), status


# --- external credit records -----------------------------------------------------------------------

@bp.route("/credit/external/new", methods=["GET", "POST"])
def external_new():
    bureau = _managed_bureau()
    firms = db.session.execute(scoped(Firm).order_by(Firm.name)).scalars().all()
    by_id = {f.id: f for f in firms}
    form = ExternalRecordForm()
    form.firm_id.choices = [BLANK] + [choice(str(f.id), f"{f.name}（{f.status.label}）") for f in firms]
    if request.method == "GET" and int_arg("firm_id") in by_id:
        form.firm_id.data = str(int_arg("firm_id"))

    def add():
        firm = by_id.get(as_int(form.firm_id.data))
        if firm is None:
            raise ValidationFailed("请选择第三方机构。", {"firm_id": "请选择第三方机构"})
        upload = form.file.data
        filename, data = (upload.filename, upload.read()) if upload is not None and upload.filename else ("", b"")
        return services.add_external_record(
            bureau, firm, current_user, kind=form.kind.data, occurred_on=form.occurred_on.data,
            description=form.description.data, deduction=(form.deduction.data or "").strip(), filename=filename,
            data=data)

    return handle_form(form, add, message=lambda record: (
        f"已录入 {record.firm.name} 的外部信用记录（{record.kind.label}，扣 {record.deduction} 分）；"
        f"重新计算 {record.occurred_on.year} 年度评价后计入得分。"), to=_after_external,
        failed=form_page("credit/external_new.html", form=form, bureau=bureau))


def _after_external(record: ExternalCreditRecord) -> str:
    """The firm's rating of that year, where the record will count; the year's list when there is none yet."""
    rating = db.session.execute(sa.select(CreditRating).where(
        CreditRating.bureau_id == record.bureau_id, CreditRating.firm_id == record.firm_id,
        CreditRating.year == record.occurred_on.year)).scalar_one_or_none()
    if rating is not None:
        return url_for(".rating_detail", rating_id=rating.id) + "#external"
    return url_for(".index", year=record.occurred_on.year)


@bp.route("/credit/external/<int:record_id>/file")
def external_file(record_id: int):
    record = db.get_or_404(ExternalCreditRecord, record_id)
    visible = permissions.visible_bureau_ids(current_user)
    bureau_reader = _bureau_side() and (visible is None or record.bureau_id in visible)
    firm_reader = _is_firm_user() and current_user.firm_id == record.firm_id
    if not (bureau_reader or firm_reader):
        abort(403)
    return send_stored(record.source_file)


# --- public: FINAL ratings only --------------------------------------------------------------------

def _public_stmt():
    """Every public query starts here: final, rated ratings only."""
    return sa.select(CreditRating).where(CreditRating.status == RatingStatus.FINAL, CreditRating.rated.is_(True))


@bp.route("/public/ratings")
@public
def public_ratings():
    ratings = Listing(
        _public_stmt().join(Firm, Firm.id == CreditRating.firm_id).join(Bureau, Bureau.id == CreditRating.bureau_id),
        year_filter(CreditRating.year, lo=2000, hi=2100), int_filter("bureau", CreditRating.bureau_id),
        Filter("grade", CreditGrade, lambda stmt, grade: stmt.where(CreditRating.grade == grade)), FIRM_NAME,
        options=[selectinload(CreditRating.firm), selectinload(CreditRating.bureau)],
        order_by=[CreditRating.year.desc(), Bureau.path, CreditRating.total.desc(), Firm.name])
    public_ids = _public_stmt().with_only_columns(CreditRating.bureau_id)
    bureaus = db.session.execute(sa.select(Bureau).where(Bureau.id.in_(public_ids)).order_by(Bureau.path)).scalars().all()
    years = db.session.execute(_public_stmt().with_only_columns(CreditRating.year).distinct()
                               .order_by(CreditRating.year.desc())).scalars().all()
    listed = ratings.page()
    # the lines each listed grade was given on (a bureau's own settings, kept on the rating: no line is national)
    lines = services.stated_lines(listed.items)
    return render_template("credit/public_list.html", page=listed, filters=ratings.filters, bureaus=bureaus,
                           years=years, CreditGrade=CreditGrade, grade_lines=lines)


@bp.route("/public/ratings/firm/<int:firm_id>")
@public
def public_firm(firm_id: int):
    ratings = db.session.execute(_public_stmt().where(CreditRating.firm_id == firm_id)
                                 .options(selectinload(CreditRating.bureau))
                                 .order_by(CreditRating.year.desc(), CreditRating.bureau_id)).scalars().all()
    if not ratings:
        abort(404)  # a firm without a final rating is nobody's business here
    labels: list[tuple[str, str]] = []
    for r in ratings:
        for c in r.components or []:
            if (c["code"], c["label"]) not in labels:
                labels.append((c["code"], c["label"]))
    return render_template("credit/public_firm.html", firm=ratings[0].firm, ratings=ratings, labels=labels)


# --- dashboard cards -------------------------------------------------------------------------------

def dashboard_counts(user) -> dict[str, sa.Select]:
    """The credit cards' numbers as grouped counts, read by the dashboard with its other counts in one
    statement: published or final ratings in scope by (grade, year), summed from the bureaus' kept counts
    (``CreditGradeCount``: a few rows per bureau and year, not every rating of the history), and whether any
    rating in scope is on the watch list (a partial index: no scan when none is)."""
    services.recount_grades()  # this transaction's own rating changes, if any (none: no statement)
    watched = permissions.scope(user, sa.select(CreditRating.id).where(CreditRating.watch_list.is_(True)),
                                CreditRating).limit(1).subquery()
    return {
        "credit_grades": permissions.scope(user, sa.select(
            CreditGradeCount.grade, CreditGradeCount.year, sa.func.sum(CreditGradeCount.n))
            .group_by(CreditGradeCount.year, CreditGradeCount.grade), CreditGradeCount),
        "credit_watched": sa.select(sa.func.count()).select_from(watched),
    }


def dashboard_cards(user, counted: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's "信用评价等级分布" chart (A–D counts by year of published or final ratings in the
    user's scope) and "重点关注名单" (watch-list ratings in scope), from the counts of ``dashboard_counts``;
    the list is read only when there is one, and only the columns it shows."""
    counts = counted.get("credit_grades", {})  # (grade value, year) → n
    years = sorted({year for _, year in counts})
    chart = {"labels": [str(y) for y in years],
             "datasets": [{"label": g.label, "grade": g.value, "data": [counts.get((g.value, y), 0) for y in years]}
                          for g in GRADES]}
    watch = []
    if counted.get("credit_watched"):
        watch = db.session.execute(permissions.scope(user, sa.select(
            CreditRating.id, CreditRating.year, CreditRating.watch_reason, Firm.name.label("firm_name"),
            Bureau.short_name.label("bureau_short_name"))
            .join(Firm, Firm.id == CreditRating.firm_id).join(Bureau, Bureau.id == CreditRating.bureau_id)
            .where(CreditRating.watch_list.is_(True)), CreditRating)
            .order_by(CreditRating.year.desc(), CreditRating.id.desc()).limit(10)).all()
    return {"credit_chart": chart, "credit_watch": watch}
