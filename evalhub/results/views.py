"""Pages of the results loop: the budget unit's engagements and rectification, the findings of an accepted
report (firm enters, bureau confirms and verifies), the results-application list with its Excel, filing and
county table, the 人大 summary, and the unit accounts a bureau creates.

Thin routes: ``load``/``require`` through core.permissions, then a service of ``evalhub.results.services``.
"""
from __future__ import annotations

import io
from typing import Optional

import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from evalhub.core import accounts, files, permissions
from evalhub.core.listing import Export, as_int, export, parse_year
from evalhub.core.models import Bureau, BudgetUnit
from evalhub.core.timeutil import beijing_today
from evalhub.core.web import button, handle_form, load, require, send_stored, submit_form, wants_export
from evalhub.extensions import db
from evalhub.procurement.models import Engagement
from evalhub.procurement.views import plan_item_context
from evalhub.registry.forms import choice
from evalhub.results import documents, services
from evalhub.results.forms import (
    DraftForm, EntryForm, EvidenceForm, FactAnswerForm, FactResponseForm, FindingForm, PlanForm, SignedReportForm, UnitAccountForm, UnitPublicationForm, VerifyForm,
    YearForm, MaterialListForm, MaterialUploadForm, PanelSizeForm, ResubmitForm, SelfEvaluationForm,
)
from evalhub.results.models import (
    OPEN_STATUSES, OWED_STATUSES, MaterialRequest, ApplicationEntry, FactConfirmation, FindingEvidence, FindingStatus, Measure,
    RectificationReport, ResultFinding,
)
from evalhub.results.permissions import RESULT_STATES, evaluated_ids, is_unit_user, unit_ids
from evalhub.results import charts
from evalhub.core.errors import ValidationFailed
from evalhub.core.listing import Filter, Listing, scoped, year_filter
from evalhub.review import services as review_services
from evalhub.review.models import ReviewPanel, SelfEvaluation, SelfEvaluationStatus

bp = Blueprint("results", __name__, url_prefix="/results")

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _docx(data: bytes, name: str):
    return send_file(io.BytesIO(data), mimetype=DOCX, as_attachment=True, download_name=name)


def _uploads(field) -> list[files.Upload]:
    return [files.Upload(f.filename or "", f.read()) for f in (field.data or []) if getattr(f, "filename", "")]


def _year(default: Optional[int] = None) -> int:
    try:
        return parse_year((request.values.get("year") or "").strip(), 2000, 2100)
    except ValueError:
        return default or beijing_today().year - 1


@bp.route("/")
def home():
    if is_unit_user(current_user):
        return redirect(url_for("results.unit_home"))
    require("results.list")
    return redirect(url_for("results.application"))


# --- the budget unit -------------------------------------------------------------------------------

@bp.route("/unit")
def unit_home():
    require("results.unit_home")
    engagements = services.unit_engagements(current_user)
    # counted as the unit sees them: on an engagement evaluating another unit, only its own findings; with the
    # nearest deadline of those still owed by the unit (one handed in waits on the bureau)
    rows = db.session.execute(permissions.scope(current_user, sa.select(
        ResultFinding.engagement_id, sa.func.count(),
        sa.func.min(sa.case((ResultFinding.status.in_(OWED_STATUSES), ResultFinding.deadline)))).where(
        ResultFinding.engagement_id.in_([e.id for e in engagements] or [-1]), ResultFinding.status.in_(OPEN_STATUSES)),
        ResultFinding).group_by(ResultFinding.engagement_id)).all()
    evaluated = evaluated_ids(current_user, engagements)
    return render_template("results/unit_home.html", engagements=engagements,
                           open_counts={e: n for e, n, _ in rows}, next_deadlines={e: d for e, _, d in rows if d},
                           overdue=services.overdue_findings(current_user, limit=50), today=beijing_today(),
                           evaluated=evaluated, overdue_materials=services.overdue_materials(current_user))


def _unit_page(engagement: Engagement, status: int = 200, forms: dict | None = None):
    findings = services.findings_of(engagement, current_user)  # scoped: a responsible unit reads its own only
    forms = forms or {}
    plan_forms = {f.id: forms.get(("plan", f.id)) or PlanForm(prefix=f"p{f.id}", plan=f.plan) for f in findings}
    evidence_forms = {f.id: forms.get(("evidence", f.id)) or EvidenceForm(prefix=f"e{f.id}") for f in findings}
    context: dict = dict(e=engagement, findings=findings, plan_forms=plan_forms, evidence_forms=evidence_forms,
                         evaluated=False, timeline=[], items=[], confirmations=[], signed=[], accepted=False,
                         today=beijing_today())
    # The rest of the page (timeline, materials, report drafts, signed report, publication) is the evaluated
    # unit's: a unit only responsible for a finding gets the finding, not the engagement's material.
    if permissions.can(current_user, "results.unit_engagement", engagement):
        items = services.materials_of(engagement)
        context.update(
            evaluated=True, timeline=services.timeline(engagement), lead=services.lead_evaluator(engagement),
            signed=services.signed_reports(engagement), sign_form=SignedReportForm(),
            publication=services.unit_publication(engagement), accepted=engagement.state in RESULT_STATES,
            classified=review_services.is_classified(engagement),
            bureau_published=services.bureau_published_on(engagement),
            publication_form=forms.get("publication") or UnitPublicationForm(),
            confirmations=services.confirmations(engagement), answer_form=forms.get("answer") or FactAnswerForm(),
            items=items, upload_forms={m.id: forms.get(("upload", m.id)) or MaterialUploadForm(prefix=f"m{m.id}")
                                       for m in items})
    return render_template("results/unit_engagement.html", **context), status


def _unit_form(engagement: Engagement, form, call, form_key=None, *, message: str, anchor: str = ""):
    """``handle_form`` for a form on the unit's engagement page: done, back to that page (at ``anchor``);
    otherwise the page again with the form (under ``form_key`` in ``_unit_page``'s forms) and its errors."""
    return handle_form(form, call, message=message,
                       failed=lambda s: _unit_page(engagement, s, {form_key: form} if form_key is not None else None),
                       to=url_for("results.unit_engagement", engagement_id=engagement.id) + anchor)


@bp.route("/unit/engagements/<int:engagement_id>")
def unit_engagement(engagement_id: int):
    return _unit_page(load(Engagement, engagement_id, "results.unit_findings"))


def _finding(finding_id: int, action: str) -> ResultFinding:
    return load(ResultFinding, finding_id, action)


@bp.route("/findings/<int:finding_id>/plan", methods=["POST"])
def finding_plan(finding_id: int):
    finding = _finding(finding_id, "finding.answer")
    form = PlanForm(prefix=f"p{finding.id}")
    return _unit_form(finding.engagement, form, lambda: services.submit_plan(finding, current_user, form.plan.data),
                      ("plan", finding.id), anchor=f"#f{finding.id}", message="整改计划已提交。")


@bp.route("/findings/<int:finding_id>/evidence", methods=["POST"])
def finding_evidence(finding_id: int):
    finding = _finding(finding_id, "finding.answer")
    form = EvidenceForm(prefix=f"e{finding.id}")
    return _unit_form(finding.engagement, form,
                      lambda: services.submit_evidence(finding, current_user, form.note.data, _uploads(form.files)),
                      ("evidence", finding.id), anchor=f"#f{finding.id}", message="整改材料已提交，等待财政局核验。")


def _download(model: type, row_id: int, parent: type, parent_id: str, action: str, file_attr: str = "file"):
    """A stored file hanging off a row: 404 when missing, then the parent's permission decides."""
    row = db.get_or_404(model, row_id)
    load(parent, getattr(row, parent_id), action)
    return send_stored(getattr(row, file_attr))


@bp.route("/evidence/<int:evidence_id>")
def evidence_file(evidence_id: int):
    return _download(FindingEvidence, evidence_id, ResultFinding, "finding_id", "finding.view")


@bp.route("/engagements/<int:engagement_id>/rectification.docx")
def rectification_docx(engagement_id: int):
    engagement = load(Engagement, engagement_id, "rectification.report")
    return _docx(documents.rectification_report(engagement), f"{engagement.reference}-整改报告.docx")


@bp.route("/engagements/<int:engagement_id>/rectification/signed", methods=["POST"])
def rectification_signed(engagement_id: int):
    engagement = load(Engagement, engagement_id, "rectification.sign")
    form = SignedReportForm()
    upload = _upload(form.file)
    return _unit_form(engagement, form, lambda: services.upload_signed_report(engagement, current_user, upload),
                      message="已上传签章的整改报告。")


@bp.route("/engagements/<int:engagement_id>/unit-publication", methods=["POST"])
def unit_publication(engagement_id: int):
    engagement = load(Engagement, engagement_id, "publication.unit_record")
    form = UnitPublicationForm()
    return _unit_form(engagement, form, lambda: services.record_unit_publication(
        engagement, current_user, form.url.data, form.published_on.data), "publication", message="已记录本单位的公开情况。")


def _upload(field) -> files.Upload:
    return files.Upload(field.data.filename, field.data.read()) if field.data else files.Upload("", b"")


def _fact_page(engagement: Engagement, status: int = 200, draft_form: DraftForm | None = None,
               response_form: FactResponseForm | None = None):
    return render_template("results/fact_confirmation.html", e=engagement, rows=services.confirmations(engagement),
                           draft_form=draft_form or DraftForm(), response_form=response_form or FactResponseForm(),
                           open_state=engagement.state in services.FACT_STATES), status


@bp.route("/engagements/<int:engagement_id>/fact-confirmation", methods=["GET", "POST"])
def fact_confirmation(engagement_id: int):
    engagement = load(Engagement, engagement_id, "fact.view")
    if request.method == "GET":
        return _fact_page(engagement)
    require("fact.send", engagement)
    form = DraftForm()
    upload = _upload(form.file)
    return handle_form(form, lambda: services.send_for_confirmation(engagement, current_user, upload),
                       failed=lambda s: _fact_page(engagement, s, draft_form=form),
                       to=url_for("results.fact_confirmation", engagement_id=engagement.id),
                       message="已将报告初稿送被评价单位征求意见。")


@bp.route("/fact/<int:row_id>/answer", methods=["POST"])
def fact_answer(row_id: int):
    row = load(FactConfirmation, row_id, "fact.row_answer")
    form = FactAnswerForm()
    return _unit_form(row.engagement, form, lambda: services.answer_confirmation(
        row, current_user, form.agreed.data, form.text.data), "answer", message="已答复。")


@bp.route("/fact/<int:row_id>/respond", methods=["POST"])
def fact_respond(row_id: int):
    row = load(FactConfirmation, row_id, "fact.row_send")
    form = FactResponseForm()
    return handle_form(form, lambda: services.respond_to_confirmation(row, current_user, form.text.data),
                       failed=lambda s: _fact_page(row.engagement, s, response_form=form),
                       to=url_for("results.fact_confirmation", engagement_id=row.engagement_id), message="已回应。")


@bp.route("/fact/<int:row_id>/draft")
def fact_draft(row_id: int):
    return _download(FactConfirmation, row_id, Engagement, "engagement_id", "fact.view", "draft_file")


@bp.route("/rectification/<int:report_id>")
def signed_file(report_id: int):
    return _download(RectificationReport, report_id, Engagement, "engagement_id", "rectification.report")


# --- findings of an accepted report (firm and bureau) ----------------------------------------------

def _unit_choices(engagement: Engagement) -> list:
    units = db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.bureau_id == engagement.budget_unit.bureau_id)
                               .order_by(BudgetUnit.name)).scalars()
    return [choice(u.id, u.name) for u in units]


def _findings_page(engagement: Engagement, form: FindingForm | None = None, status: int = 200,
                   verify_forms: dict | None = None):
    findings = services.findings_of(engagement, current_user)
    if form is None:
        form = FindingForm()
    form.responsible_unit_id.choices = _unit_choices(engagement)
    if form.responsible_unit_id.data is None:
        form.responsible_unit_id.data = engagement.budget_unit_id
    verify_forms = verify_forms or {}
    verify_forms = {f.id: verify_forms.get(f.id) or VerifyForm(prefix=f"v{f.id}") for f in findings
                    if f.status == FindingStatus.SUBMITTED}
    return render_template("results/findings.html", e=engagement, findings=findings, form=form,
                           verify_forms=verify_forms, accepted=engagement.state in RESULT_STATES,
                           has_drafts=any(f.status == FindingStatus.DRAFT for f in findings)), status


@bp.route("/engagements/<int:engagement_id>/findings", methods=["GET", "POST"])
def findings(engagement_id: int):
    engagement = load(Engagement, engagement_id, "engagement.view")
    form = FindingForm()
    form.responsible_unit_id.choices = _unit_choices(engagement)
    if request.method == "GET":
        return _findings_page(engagement, form)
    require("finding.enter", engagement)
    data = lambda: services.FindingInput(kind=form.kind.data, text=form.text.data, category=form.category.data,  # noqa: E731
                                         indicator=form.indicator.data, responsible_unit_id=form.responsible_unit_id.data,
                                         deadline=form.deadline.data)
    return handle_form(form, lambda: services.add_finding(engagement, current_user, data()),
                       failed=lambda s: _findings_page(engagement, form, s),
                       to=url_for("results.findings", engagement_id=engagement.id), message="已录入。")


def _engagement_button(engagement_id: int, action: str, call, message):
    """A findings-page button on one engagement: check ``action``, run ``call(engagement, user)``, back."""
    engagement = load(Engagement, engagement_id, action)
    return button(lambda: call(engagement, current_user),
                  to=url_for("results.findings", engagement_id=engagement.id), message=message)


# The two buttons over an engagement's findings: (permission, service, message).
_FINDINGS_STEPS = {
    "import": ("finding.enter", services.draft_from_report,
               lambda rows: f"已从报告导入 {len(rows)} 条草稿，请逐条核对、修改后提交财政局确认。"),
    "confirm": ("finding.confirm", services.confirm_findings, lambda rows: f"已确认 {len(rows)} 条，已通知责任单位。"),
}


@bp.route("/engagements/<int:engagement_id>/findings/import", methods=["POST"], endpoint="findings_import",
          defaults={"step": "import"})
@bp.route("/engagements/<int:engagement_id>/findings/confirm", methods=["POST"], endpoint="findings_confirm",
          defaults={"step": "confirm"})
def findings_step(engagement_id: int, step: str):
    return _engagement_button(engagement_id, *_FINDINGS_STEPS[step])


@bp.route("/findings/<int:finding_id>/delete", methods=["POST"])
def finding_delete(finding_id: int):
    finding = _finding(finding_id, "finding.view")
    engagement_id = finding.engagement_id
    return button(lambda: services.delete_finding(finding, current_user),
                  to=url_for("results.findings", engagement_id=engagement_id), message="已删除。")




@bp.route("/findings/<int:finding_id>/verify", methods=["POST"])
def finding_verify(finding_id: int):
    finding = _finding(finding_id, "finding.verify")
    form = VerifyForm(prefix=f"v{finding.id}")
    return handle_form(form, lambda: services.verify(finding, current_user, form.verification.data, form.note.data,
                                                     form.deadline.data),
                       failed=lambda s: _findings_page(finding.engagement, None, s, {finding.id: form}),
                       to=url_for("results.findings", engagement_id=finding.engagement_id), message="已核验。")


ONE_SIDED_SHOWN = 200  # as many as the findings above: a page, not the province's backlog


@bp.route("/overdue")
def overdue():
    require("results.list")
    return render_template("results/overdue.html", findings=services.overdue_findings(current_user, limit=200),
                           awaiting=services.awaiting_verification(current_user, limit=200),
                           one_sided=services.one_sided_publications(current_user, limit=ONE_SIDED_SHOWN),
                           one_sided_limit=ONE_SIDED_SHOWN)


# --- the results-application list ------------------------------------------------------------------

def _bureau() -> Bureau:
    """The bureau whose list is shown: ``?bureau=<code>`` within the user's scope, else their own."""
    code = (request.values.get("bureau") or "").strip()
    bureau = None
    if code:
        bureau = db.session.execute(sa.select(Bureau).where(Bureau.code == code[:12])).scalar_one_or_none()
    bureau = bureau or current_user.bureau
    if bureau is None:
        abort(403)
    require("results.view_bureau", bureau)
    return bureau


EXPORT = Export("结果应用清单", services.EXPORT_COLUMNS, services.export_rows)


def _application_page(bureau: Bureau, year: int, status: int = 200, entry_forms: dict | None = None):
    rows = services.entries(bureau, year)
    entry_forms = entry_forms or {}
    forms = {}
    for e in rows:
        forms[e.id] = entry_forms.get(e.id) or EntryForm(
            prefix=f"a{e.id}", measures=e.measures if e.confirmed_at else e.proposed,
            cut_percent=str(e.cut_percent if e.confirmed_at else (e.proposed_percent or "")) if (
                e.cut_percent or e.proposed_percent) else "")
    counties = services.county_table(bureau, year, current_user) if bureau.children else []
    return render_template("results/application.html", bureau=bureau, year=year, rows=rows, forms=forms,
                           figures=services.figures(bureau, year), filing=services.filing_of(bureau, year),
                           counties=counties, county_chart=charts.county_chart_svg(counties),
                           Measure=Measure), status


@bp.route("/application")
def application():
    bureau, year = _bureau(), _year()
    if wants_export():
        return export(Export(EXPORT.sheet, EXPORT.columns, EXPORT.rows, f"{bureau.short_name}{year}年度结果应用清单.xlsx"),
                      services.entries(bureau, year))
    return _application_page(bureau, year)


@bp.route("/application/build", methods=["POST"])
def application_build():
    bureau, year = _bureau(), _year()
    return button(lambda: services.build_list(bureau, year, current_user),
                  to=url_for("results.application", bureau=bureau.code, year=year),
                  message=lambda rows: f"已生成 {year} 年度结果应用清单，共 {len(rows)} 项。")


@bp.route("/application/entries/<int:entry_id>", methods=["POST"])
def application_confirm(entry_id: int):
    entry = load(ApplicationEntry, entry_id, "application.confirm")
    form = EntryForm(prefix=f"a{entry.id}")
    return handle_form(form, lambda: services.confirm_entry(
        entry, current_user, measures=form.measures.data, cut_percent=form.cut_percent.data,
        cut_amount_wan=form.cut_amount_wan.data, reason=form.reason.data),
        failed=lambda s: _application_page(entry.bureau, entry.year, s, {entry.id: form}),
        to=url_for("results.application", bureau=entry.bureau.code, year=entry.year) + f"#a{entry.id}",
        message="已确认。")


@bp.route("/application/file", methods=["POST"])
def application_file():
    bureau, year = _bureau(), _year()
    form = YearForm()
    return handle_form(form, lambda: services.file_list(bureau, year, current_user),
                       failed=lambda s: _application_page(bureau, year, s),
                       to=url_for("results.application", bureau=bureau.code, year=year),
                       message=f"已向上级财政局备案 {year} 年度结果应用清单。")


@bp.route("/summary.docx")
def summary_docx():
    bureau, year = _bureau(), _year()
    return _docx(documents.people_congress_summary(bureau, year), f"{bureau.short_name}{year}年度重点绩效评价情况.docx")


# --- budget-unit accounts --------------------------------------------------------------------------

def _accounts_page(unit: BudgetUnit, form: UnitAccountForm | None = None, status: int = 200, link: str | None = None):
    return render_template("results/unit_accounts.html", unit=unit, users=services.unit_accounts(unit),
                           form=form or UnitAccountForm(), link=link), status


@bp.route("/units/<int:unit_id>/accounts", methods=["GET", "POST"])
def unit_accounts(unit_id: int):
    unit = load(BudgetUnit, unit_id, "unit_account.create")
    form = UnitAccountForm()
    if request.method == "GET":
        return _accounts_page(unit, form)
    done, result, status = submit_form(form, lambda: services.create_unit_account(
        current_user, unit, username=form.username.data, display_name=form.display_name.data,
        email=form.email.data, phone=form.phone.data))
    if not done:
        return _accounts_page(unit, form, status)
    user, token = result
    accounts.email_link(user, token, accounts.LinkPurpose.ACTIVATION)
    # The link is shown once, here, as for every account an administrator creates.
    return _accounts_page(unit, UnitAccountForm(formdata=None), 201,
                          link=accounts.link_url(token, accounts.LinkPurpose.ACTIVATION))


# --- 闭环 on next year's plan: last year's confirmed application for the same unit and project ----------------

@plan_item_context
def last_year_application(items) -> dict[int, str]:
    out = {}
    previous = services.previous_applications([(item.budget_unit_id, item.name, item.plan.year) for item in items])
    for item in items:
        entry = previous.get((item.budget_unit_id, item.name, item.plan.year))
        if entry is not None:
            out[item.id] = (f"{entry.year} 年度评价：{entry.grade.label}（{entry.score} 分），"
                            f"结果应用：{entry.labels(entry.measures)}")
    return out


# --- self-evaluation reviews (克州 item 7) ------------------------------------------------------------

def _own_units() -> list[BudgetUnit]:
    ids = unit_ids(current_user)
    return list(db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.id.in_(ids or {-1}))
                                   .order_by(BudgetUnit.id)).scalars())


SELF_EVALUATION_FILTERS = (year_filter(SelfEvaluation.year),
                           Filter("status", SelfEvaluationStatus,
                                  lambda stmt, status: stmt.where(SelfEvaluation.status == status)))
SELF_EVALUATION_EXPORT = Export("部门自评报告评审", ["编号", "年度", "自评单位", "项目（资金）名称", "资金（万元）", "状态", "评审得分", "评审轮次"],
                                lambda rows: [{"编号": se.reference, "年度": se.year, "自评单位": se.budget_unit.name,
                                               "项目（资金）名称": se.name,
                                               "资金（万元）": float(se.funds / 10000) if se.funds is not None else None,
                                               "状态": se.status.label,
                                               "评审得分": float(se.score) if se.score is not None else None,
                                               "评审轮次": len(services.self_evaluation_panels(se))} for se in rows],
                                "部门自评报告评审结果.xlsx")


@bp.route("/self-evaluations")
def self_evaluations():
    """The results list: the unit's own (and its units'), or the bureau's and the bureaus' below."""
    require("self_evaluation.list")
    listing = Listing(scoped(SelfEvaluation), *SELF_EVALUATION_FILTERS,
                      order_by=[SelfEvaluation.year.desc(), SelfEvaluation.id.desc()])
    if wants_export():
        return listing.export(SELF_EVALUATION_EXPORT)
    return render_template("results/self_evaluations.html", page=listing.page(), filters=listing.filters,
                           Status=SelfEvaluationStatus, unit_side=is_unit_user(current_user))


def _self_evaluation_form(form: SelfEvaluationForm) -> SelfEvaluationForm:
    form.unit_id.choices = [(u.id, u.name) for u in _own_units()]
    return form


@bp.route("/self-evaluations/new", methods=["GET", "POST"])
def self_evaluation_new():
    require("results.unit_home")
    form = _self_evaluation_form(SelfEvaluationForm())

    def call():
        unit = db.session.get(BudgetUnit, form.unit_id.data or current_user.budget_unit_id)
        if unit is None:
            raise ValidationFailed("请选择自评单位。", {"unit_id": "请选择自评单位"})
        return services.submit_self_evaluation(current_user, unit, year=form.year.data, name=form.name.data,
                                               funds=form.funds.data, upload=_upload(form.file), note=form.note.data)

    if request.method == "GET":
        form.unit_id.data = current_user.budget_unit_id
        return render_template("results/self_evaluation_new.html", form=form)
    return handle_form(form, call, message=lambda se: f"已提交部门自评报告（{se.reference}），财政局将组织专家评审。",
                       to=lambda se: url_for("results.self_evaluation", se_id=se.id),
                       failed=lambda status: (render_template("results/self_evaluation_new.html", form=form), status))


def _self_evaluation_page(se: SelfEvaluation, status: int = 200, resubmit_form: ResubmitForm | None = None,
                          panel_form: PanelSizeForm | None = None):
    panels = {p.submission_id: p for p in services.self_evaluation_panels(se)}
    unit_side = is_unit_user(current_user)
    versions = [{"submission": s, "panel": panels.get(s.id),
                 "outcome": services.unit_outcome(panels[s.id]) if s.id in panels else None}
                for s in review_services.submissions(se)]
    latest = versions[-1]["submission"] if versions else None
    # the status line states the score of the last outcome the unit was given, as that outcome states it
    stated = next((v["outcome"]["score_words"] for v in reversed(versions) if v["outcome"] and v["outcome"]["score_words"]),
                  None)
    pending = review_services.pending_panel_draw(latest) if latest is not None and latest.id not in panels else None
    return render_template("results/self_evaluation.html", se=se, versions=versions, unit_side=unit_side, stated=stated,
                           can_manage=permissions.can(current_user, "review.manage", se), pending=pending,
                           resubmit_form=resubmit_form or ResubmitForm(), panel_form=panel_form or PanelSizeForm(),
                           Status=SelfEvaluationStatus), status


@bp.route("/self-evaluations/<int:se_id>")
def self_evaluation(se_id: int):
    return _self_evaluation_page(load(SelfEvaluation, se_id, "self_evaluation.view"))


@bp.route("/self-evaluations/<int:se_id>/file/<int:submission_id>")
def self_evaluation_file(se_id: int, submission_id: int):
    se = load(SelfEvaluation, se_id, "self_evaluation.view")
    submission = next((s for s in review_services.submissions(se) if s.id == submission_id), None)
    if submission is None:
        abort(404)
    return send_stored(submission.file)


@bp.route("/self-evaluations/<int:se_id>/resubmit", methods=["POST"])
def self_evaluation_resubmit(se_id: int):
    se = load(SelfEvaluation, se_id, "self_evaluation.resubmit")
    form = ResubmitForm()
    return handle_form(form, lambda: services.resubmit_self_evaluation(se, current_user, _upload(form.file), form.note.data),
                       message=lambda s: f"已重新提交自评报告第 {s.version} 版。",
                       to=url_for("results.self_evaluation", se_id=se.id),
                       failed=lambda status: _self_evaluation_page(se, status, resubmit_form=form))


@bp.route("/self-evaluations/<int:se_id>/panel", methods=["POST"])
def self_evaluation_panel(se_id: int):
    """The bureau draws the panel: the review module's own draw (announced, witnessed, revealed)."""
    se = load(SelfEvaluation, se_id, "review.manage")
    form = PanelSizeForm()

    def call():
        raw = (form.size.data or "").strip()
        size = as_int(raw, 0) if raw else None  # ASCII digits only: "³" is a digit to isdigit(), not to int()
        if raw and size is None:
            raise ValidationFailed("评审专家人数必须是整数。", {"size": "人数必须是整数"})
        return review_services.form_panel(se, current_user, size=size)

    def to(result):
        if isinstance(result, ReviewPanel):
            return url_for("review.panel_detail", panel_id=result.id)
        return url_for("core.draw_detail", draw_id=result.id)

    return handle_form(form, call, to=to,
                       message=lambda r: (f"已公告评审专家抽取 #{r.id}：请指定监督人，待监督人输入数字后揭晓，评审组随即成立。"
                                          if not isinstance(r, ReviewPanel) else "已抽取评审专家并发出邀请。"),
                       failed=lambda status: _self_evaluation_page(se, status, panel_form=form))


# --- 资料清单 during fieldwork ------------------------------------------------------------------------

def _materials_page(engagement: Engagement, status: int = 200, form: MaterialListForm | None = None):
    return render_template("results/materials.html", e=engagement, items=services.materials_of(engagement),
                           form=form or MaterialListForm(), today=beijing_today(),
                           upload_forms={m.id: MaterialUploadForm(prefix=f"m{m.id}") for m in services.materials_of(engagement)}
                           ), status


@bp.route("/engagements/<int:engagement_id>/materials", methods=["GET", "POST"])
def materials(engagement_id: int):
    """The firm lists what it needs and sees what the unit uploaded; the unit and the bureau read it."""
    engagement = load(Engagement, engagement_id, "material.view")
    form = MaterialListForm()
    if request.method == "GET":
        return _materials_page(engagement)
    require("material.request", engagement)
    return handle_form(form, lambda: services.request_materials(engagement, current_user, form.items()),
                       message=lambda rows: f"已列出资料 {len(rows)} 项，并通知被评价单位。",
                       to=url_for("results.materials", engagement_id=engagement.id),
                       failed=lambda status: _materials_page(engagement, status, form))


@bp.route("/materials/<int:item_id>/upload", methods=["POST"])
def material_upload(item_id: int):
    item = load(MaterialRequest, item_id, "material.upload")
    form = MaterialUploadForm(prefix=f"m{item.id}")
    back = url_for("results.unit_engagement", engagement_id=item.engagement_id) + "#materials"
    return handle_form(form, lambda: services.upload_material(item, current_user, _upload(form.file), form.note.data),
                       message=f"已上传“{item.title}”。", to=back,
                       # the page the unit uploads from, with this line's form and its reason beside it
                       failed=lambda status: _unit_page(item.engagement, status, {("upload", item.id): form}))


@bp.route("/materials/<int:item_id>/file")
def material_file(item_id: int):
    item = db.get_or_404(MaterialRequest, item_id)
    require("material.view", item.engagement)
    return send_stored(item.file)
