"""Supervision pages (DOMAIN.md §7): the bureau's inspections, targeted cases, random campaigns and
complaints; the inspected firm's view of its inspections and its response; and, without login, the
public complaint form and the published campaign lists and results (双随机、一公开).

Thin routes: check permission, call a service, commit, redirect. A service's ``ValidationFailed`` is
rolled back and shown beside the form with HTTP 422 (nothing written; 429 when the complaint form is
rate-limited); ``Conflict`` and ``PermissionDenied`` propagate to the app's error handlers (409 / 403).

Who sees what:
- rows are read only through ``permissions.scope`` (Inspection: the bureau subtree or the inspected
  firm; InspectionCampaign and Complaint: the bureau subtree only);
- inspector names are shown to bureau users only; the inspected firm reads "财政检查人员" / "专家";
- a complaint's text and complainant are bureau-only: the firm reads only that a case came from a
  complaint (not its reference, not the bureau's note of it), and the public pages show neither;
- the public pages show random campaigns only, once their list is published, and each inspection's
  conclusion and findings' severities only once the results are published;
- the complainant's lookup (reference and 查询码) shows the status, a 不予立案 reason and the outcome only;
- an inspector (an upper bureau's officer, an expert) reads the case they inspect and may declare a tie
  (申报回避); inspectors are named or drawn under the same independence rules (services).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

import sqlalchemy as sa
from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core import bureau_tree, draws, permissions
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.listing import Export, Filter, Listing, choice_filter, enum_filter, enum_options, int_filter
from evalhub.core.models import Bureau
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import BEIJING, beijing_today, to_beijing
from evalhub.core.web import (
    bureau_side,
    button,
    can_in_own_bureau,
    form_page,
    handle_form,
    load,
    own_bureau,
    paginate,
    public,
    require,
    scoped,
    submit_form,
    wants_export,
)
from evalhub.extensions import db
from evalhub.procurement.models import Engagement
from evalhub.registry.forms import BLANK, choice
from evalhub.registry.models import Firm
from evalhub.supervision import services
from evalhub.supervision.forms import (
    CampaignForm,
    CaseForm,
    ChecklistForm,
    CloseForm,
    ComplaintCaseForm,
    ComplaintForm,
    DeclineForm,
    FindingForm,
    InspectorForm,
    LookupForm,
    RecusalForm,
    ResponseForm,
)
from evalhub.supervision.models import (
    CHECKLIST,
    CampaignStatus,
    Complaint,
    ComplaintStatus,
    Finding,
    Inspection,
    InspectionCampaign,
    InspectionStatus,
    Inspector,
    Measure,
    Severity,
    Trigger,
)

bp = Blueprint("supervision", __name__)

PUBLISHED = (CampaignStatus.LIST_PUBLISHED, CampaignStatus.RESULTS_PUBLISHED)
MEASURE_LABELS = {m.value: m.label for m in Measure}


# --- small helpers ---------------------------------------------------------------------------------

def _require_bureau_side() -> None:
    if not bureau_side():
        abort(403)


def _scoped_load(model: type, object_id: int) -> Any:
    """A campaign or complaint: 404 when missing, 403 unless a bureau-side user whose scope holds it."""
    obj = db.get_or_404(model, object_id)
    if not bureau_side() or not permissions.visible(current_user, obj):
        abort(403)
    return obj


def _bureau_of(inspection: Inspection) -> Bureau:
    return db.session.get(Bureau, inspection.bureau_id)


def _visible_firms() -> list[Firm]:
    return db.session.execute(scoped(Firm).order_by(Firm.name)).scalars().all()


def _firm_choices(firms: list[Firm]) -> list:
    return [BLANK] + [choice(str(f.id), f"{f.name}（{f.status.label}）") for f in firms]


def _chosen_firm(raw: Any, firms: list[Firm], errors: dict[str, str]) -> Optional[Firm]:
    if not str(raw or "").strip():
        return None
    firm = next((f for f in firms if str(f.id) == str(raw).strip()), None)
    if firm is None:
        errors["firm_id"] = "所选机构不存在或不在本局可见范围内"
    return firm


def _engagement_by_reference(reference: str, errors: dict[str, str]) -> Optional[Engagement]:
    reference = (reference or "").strip()
    if not reference:
        return None
    engagement = db.session.execute(scoped(Engagement).where(Engagement.reference == reference)).scalar_one_or_none()
    if engagement is None:
        errors["engagement_reference"] = f"未找到评价任务 {reference}（或不在本局可见范围内）"
    return engagement


def _kind_label(inspection: Inspection) -> str:
    return "不定向抽查" if inspection.campaign_id else "定向检查"


def _worst(findings: list[Finding]) -> Optional[Severity]:
    order = list(Severity)
    return max((f.severity for f in findings), key=order.index, default=None)


# --- the dashboard card ----------------------------------------------------------------------------

def dashboard_counts(user, year: int) -> dict[str, sa.Select]:
    """The 监督检查 card's numbers as grouped counts, each a SELECT of (key, n): the inspections in scope by
    status (from the counts kept per bureau, when the user's scope is its tree or everything), and ``year``'s
    findings by severity. The dashboard reads them with every other card's counts in one statement and hands the
    rows to ``dashboard_summary``."""
    start_utc = datetime(year, 1, 1, tzinfo=BEIJING).astimezone(timezone.utc).replace(tzinfo=None)  # stored as naive UTC
    kept = services.INSPECTIONS.scope_counts(user, Inspection)
    return {
        "inspections": kept if kept is not None else permissions.scope(
            user, sa.select(Inspection.status, sa.func.count(Inspection.id)).group_by(Inspection.status), Inspection),
        "severities": permissions.scope(user, sa.select(Finding.severity, sa.func.count(Finding.id))
                                        .join(Inspection, Inspection.id == Finding.inspection_id)
                                        .where(Finding.created_at >= start_utc).group_by(Finding.severity), Inspection),
    }


def dashboard_summary(counted: dict[str, dict[str, int]], year: int) -> dict:
    """For the bureau dashboard: inspections open / closed in scope, ``year``'s findings by severity, from the
    counts of ``dashboard_counts`` (keyed by the stored values)."""
    statuses, severities = counted.get("inspections", {}), counted.get("severities", {})
    closed = statuses.get(InspectionStatus.CLOSED.value, 0)
    return {"open": sum(statuses.values()) - closed, "closed": closed, "year": year,
            "severities": [(s, severities.get(s.value, 0)) for s in Severity]}


# --- inspections -----------------------------------------------------------------------------------

# 进行中: every case not yet closed (检查中 and 待机构整改回复), as the dashboard's card counts them
# (``dashboard_summary``) and links to them: a value of the status filter beside the statuses themselves
ONGOING = ("ongoing", "进行中（未办结）")


def _inspection_status(raw: str) -> Any:
    return ONGOING[0] if raw == ONGOING[0] else InspectionStatus.from_label(raw)


def _with_status(stmt: sa.Select, status: Any) -> sa.Select:
    if status == ONGOING[0]:
        return stmt.where(Inspection.status != InspectionStatus.CLOSED)
    return stmt.where(Inspection.status == status)


INSPECTION_FILTERS = (
    choice_filter("kind", {"random": Inspection.campaign_id.is_not(None), "targeted": Inspection.campaign_id.is_(None)}),
    Filter("status", _inspection_status, _with_status, f"{enum_options(InspectionStatus)}、{ONGOING[0]}（{ONGOING[1]}）"),
    enum_filter("trigger", Trigger, Inspection.trigger),
    int_filter("firm", Inspection.firm_id),
)


def _inspection_export(bureaus: dict[int, Bureau]) -> Export:
    def row(i: Inspection) -> dict:
        worst = _worst(i.findings)
        return {"检查编号": i.id, "类型": _kind_label(i), "线索来源": i.trigger.label,
                "财政局": (bureaus.get(i.bureau_id) or _bureau_of(i)).name, "被检查机构": i.firm.name,
                "评价任务": i.engagement.reference if i.engagement else "", "状态": i.status.label,
                "发现问题数": len(i.findings), "最高严重程度": worst.label if worst else "",
                "立案时间": to_beijing(i.opened_at), "办结时间": to_beijing(i.closed_at),
                "检查结论": i.conclusion or ""}
    return Export("监督检查", ["检查编号", "类型", "线索来源", "财政局", "被检查机构", "评价任务", "状态", "发现问题数",
                           "最高严重程度", "立案时间", "办结时间", "检查结论"], lambda rows: map(row, rows))


@bp.route("/inspections")
def inspection_list():
    if not (bureau_side() or current_user.role == Role.FIRM_USER):
        abort(403)
    require("inspection.list")  # not the account of a firm not admitted (the page gate refuses it too)
    inspections = Listing(lambda: scoped(Inspection), *INSPECTION_FILTERS, order_by=[Inspection.id.desc()], options=[
        selectinload(Inspection.firm), selectinload(Inspection.engagement), selectinload(Inspection.findings)],
        keep="inspections")
    staff = bureau_side()
    bureaus = {b.id: b for b in db.session.execute(scoped(Bureau)).scalars()} if staff else {}
    if wants_export():
        return inspections.export(_inspection_export(bureaus))
    page = inspections.page()
    firms = []
    if staff:
        firm_ids = scoped(Inspection, sa.select(Inspection.firm_id))
        firms = db.session.execute(sa.select(Firm).where(Firm.id.in_(firm_ids)).order_by(Firm.name)).scalars().all()
    for bureau_id in {i.bureau_id for i in page.items} - set(bureaus):
        bureaus[bureau_id] = db.session.get(Bureau, bureau_id)
    return render_template("supervision/inspection_list.html", page=page, filters=inspections.filters, firms=firms,
                           bureaus=bureaus, bureau_side=staff, kind_label=_kind_label, worst=_worst,
                           InspectionStatus=InspectionStatus, Trigger=Trigger, ONGOING=ONGOING,
                           may_open=can_in_own_bureau("supervision.manage"))


def _render_inspection(inspection: Inspection, status: int = 200, **forms):
    bureau = _bureau_of(inspection)
    manage = permissions.can(current_user, "supervision.manage", bureau)
    is_firm = current_user.role == Role.FIRM_USER and current_user.firm_id == inspection.firm_id
    is_open = inspection.status != InspectionStatus.CLOSED
    refusal = services.recording_refusal(inspection, current_user) if bureau_side() and is_open else None
    records = bureau_side() and is_open and refusal is None  # the checklist, findings and conclusion
    checklist_form = forms.get("checklist_form")
    if checklist_form is None and records:
        data = {}
        for key, _label in CHECKLIST:
            entry = (inspection.checklist or {}).get(key)
            if entry is not None:
                data[f"ok_{key}"] = "1" if entry.get("ok") else "0"
                data[f"note_{key}"] = entry.get("note", "")
        checklist_form = ChecklistForm(formdata=None, data=data)
    show_finding = records
    show_close = records and inspection.status == InspectionStatus.OPEN
    show_response = is_firm and inspection.status == InspectionStatus.AWAITING_RESPONSE
    inspector_form = forms.get("inspector_form")
    if inspector_form is None and manage and is_open:
        inspector_form = InspectorForm(formdata=None)
    if inspector_form is not None:
        _inspector_choices(inspector_form, bureau)
    return render_template(
        "supervision/inspection_detail.html", i=inspection, bureau=bureau, manage=manage, is_firm=is_firm,
        recording_refusal=refusal if manage else None,
        inspector_form=inspector_form, other_cases=services.other_cases(inspection, current_user) if bureau_side() else [],
        recusal_form=forms.get("recusal_form") or (RecusalForm(formdata=None) if is_open and services.inspector_of(
            inspection, current_user) is not None else None),
        seats_to_draw=services.seats_to_draw(inspection) if manage and is_open else [],
        lead=services.lead_for(inspection, current_user), withheld_leads=services.WITHHELD_LEADS,
        bureau_side=bureau_side(), kind_label=_kind_label(inspection), CHECKLIST=CHECKLIST,
        MEASURE_LABELS=MEASURE_LABELS, Trigger=Trigger, InspectionStatus=InspectionStatus,
        checklist_form=checklist_form,
        finding_form=forms.get("finding_form") or (FindingForm(formdata=None) if show_finding else None),
        close_form=forms.get("close_form") or (CloseForm(formdata=None) if show_close else None),
        response_form=forms.get("response_form") or (ResponseForm(formdata=None) if show_response else None),
    ), status


@bp.route("/inspections/<int:inspection_id>")
def inspection_detail(inspection_id: int):
    return _render_inspection(load(Inspection, inspection_id, "inspection.view"))


def _inspection_form(inspection: Inspection, form, call, form_key: str, *, message: Any, anchor: str = ""):
    """``handle_form`` for a form on the inspection page: done, back to that page (at ``anchor``); otherwise
    the page again with the form (as ``form_key``) and its errors."""
    return handle_form(form, call, message=message, to=url_for(".inspection_detail", inspection_id=inspection.id) + anchor,
                       failed=lambda status: _render_inspection(inspection, status, **{form_key: form}))


def _recorded_inspection(inspection_id: int) -> Inspection:
    """An inspection whose record (checklist, findings, conclusion) the user writes: its officer inspector, or an
    independent manager of its bureau (the service's rule, asked before the form is read: a refusal is 403)."""
    inspection = load(Inspection, inspection_id, "inspection.view")
    refusal = services.recording_refusal(inspection, current_user)
    if refusal is not None:
        raise PermissionDenied(refusal)
    return inspection


def _managed_inspection(inspection_id: int) -> Inspection:
    inspection = load(Inspection, inspection_id, "inspection.view")
    require("supervision.manage", _bureau_of(inspection))
    return inspection


@bp.route("/inspections/<int:inspection_id>/checklist", methods=["POST"])
def inspection_checklist(inspection_id: int):
    inspection, form = _recorded_inspection(inspection_id), ChecklistForm()
    return _inspection_form(inspection, form, lambda: services.record_checklist(inspection, current_user, form.answers()),
                            "checklist_form", message="检查清单已保存。")


@bp.route("/inspections/<int:inspection_id>/findings", methods=["POST"])
def inspection_finding(inspection_id: int):
    inspection = _recorded_inspection(inspection_id)
    form = FindingForm()
    return _inspection_form(inspection, form, lambda: services.add_finding(
        inspection, current_user, severity=form.severity.data, description=form.description.data or "",
        measures=form.measures.data or []), "finding_form",
        message=lambda finding: f"已记录{finding.severity.label}问题。", anchor="#findings")


@bp.route("/inspections/<int:inspection_id>/close", methods=["POST"])
def inspection_close(inspection_id: int):
    inspection = _recorded_inspection(inspection_id)
    form = CloseForm()
    substantiated = {"yes": True, "no": False}.get(form.substantiated.data or "")
    return _inspection_form(inspection, form, lambda: services.close(
        inspection, current_user, form.conclusion.data or "", substantiated=substantiated),
        "close_form", message="检查已办结。")


@bp.route("/inspections/<int:inspection_id>/response", methods=["POST"])
def inspection_response(inspection_id: int):
    inspection = load(Inspection, inspection_id, "inspection.view")
    form = ResponseForm()
    return _inspection_form(inspection, form, lambda: services.respond(inspection, current_user, form.text.data or ""),
                            "response_form", message="整改回复已提交。")


def _inspector_choices(form: InspectorForm, bureau: Bureau) -> None:
    """Who may be named (the service refuses, with the reasons, anyone not independent of what is inspected)."""
    staff, experts = services.inspector_candidates(bureau)
    form.user_id.choices = [BLANK] + [choice(str(u.id), f"{u.display_name}（{u.username}）") for u in staff]
    form.expert_id.choices = [BLANK] + [choice(str(x.id), f"{x.name}（{x.employer}）") for x in experts]


@bp.route("/inspections/<int:inspection_id>/inspectors", methods=["POST"])
def inspection_name_inspector(inspection_id: int):
    inspection = _managed_inspection(inspection_id)
    form = InspectorForm()
    _inspector_choices(form, _bureau_of(inspection))
    return _inspection_form(inspection, form, lambda: services.name_inspector(
        inspection, current_user, user_id=form.user_id.data, expert_id=form.expert_id.data, reason=form.reason.data),
        "inspector_form", message=lambda p: f"已指定检查人员：{p.name}。", anchor="#inspectors")


@bp.route("/inspections/<int:inspection_id>/recuse", methods=["POST"])
def inspection_recuse(inspection_id: int):
    """申报回避 by one of the inspection's inspectors (the service refuses anyone else, 403)."""
    inspection = load(Inspection, inspection_id, "inspection.view")
    form = RecusalForm()
    return _inspection_form(inspection, form, lambda: services.declare_conflict(inspection, current_user, form.reason.data or ""),
                            "recusal_form", message="已申报回避，本局将另行抽取或指定检查人员。")


@bp.route("/inspections/<int:inspection_id>/draw-inspectors", methods=["POST"])
def inspection_draw_inspectors(inspection_id: int):
    inspection = _managed_inspection(inspection_id)
    return button(lambda: services.draw_case_inspectors(inspection, current_user),
                  message=lambda d: f"已公告检查人员的抽取 #{d.id}：请指定监督人，监督人输入数字后揭晓。",
                  to=lambda d: url_for("core.draw_detail", draw_id=d.id))


@bp.route("/inspections/new", methods=["GET", "POST"])
def inspection_new():
    bureau = own_bureau("supervision.manage")
    firms = _visible_firms()
    form = CaseForm()
    form.firm_id.choices = _firm_choices(firms)
    if request.method == "GET" and request.args.get("firm_id"):
        form.firm_id.data = request.args["firm_id"]

    def call():
        errors: dict[str, str] = {}
        firm = _chosen_firm(form.firm_id.data, firms, errors)
        engagement = _engagement_by_reference(form.engagement_reference.data, errors)
        complaint = None
        reference = (form.complaint_reference.data or "").strip()
        if reference:
            complaint = db.session.execute(
                scoped(Complaint).where(Complaint.reference == reference)).scalar_one_or_none()
            if complaint is None:
                errors["complaint_reference"] = f"未找到投诉 {reference}（或不在本局可见范围内）"
        if form.trigger.data == Trigger.COMPLAINT.value and not reference:
            errors["complaint_reference"] = "投诉线索须关联投诉编号"
        ValidationFailed.raise_if(errors)
        return services.open_case(bureau, current_user, trigger=form.trigger.data, detail=form.detail.data or "",
                                  firm=firm, engagement=engagement, complaint=complaint)

    return handle_form(form, call, message=_opened_message,
                       to=lambda i: url_for(".inspection_detail", inspection_id=i.id),
                       failed=form_page("supervision/inspection_new.html", form=form, bureau=bureau))


def _opened_message(inspection: Inspection):
    """Opened; with a warning (and the other cases on the page) when the engagement already has one."""
    warning = services.same_engagement_warning(inspection, current_user)
    if warning:
        return f"已立案定向检查 #{inspection.id}：{inspection.firm.name}。{warning}", "warning"
    return f"已立案定向检查 #{inspection.id}：{inspection.firm.name}。"


# --- campaigns -------------------------------------------------------------------------------------

@bp.route("/campaigns")
def campaign_list():
    _require_bureau_side()
    stmt = scoped(InspectionCampaign).options(selectinload(InspectionCampaign.bureau),
                                              selectinload(InspectionCampaign.inspections))
    return render_template("supervision/campaign_list.html", may_start=can_in_own_bureau("supervision.manage"),
                           page=paginate(stmt.order_by(InspectionCampaign.year.desc(), InspectionCampaign.id.desc())))


@bp.route("/campaigns/new", methods=["GET", "POST"])
def campaign_new():
    bureau = own_bureau("supervision.manage")
    minimum = get_setting(bureau, "supervision.random_ratio")
    form = CampaignForm(data=None if request.method == "POST" else
                        {"year": str(beijing_today().year), "ratio": str(minimum)})

    def call():
        year = (form.year.data or "").strip()
        if not (year.isascii() and year.isdigit() and len(year) == 4):  # "202⁵" is digits to isdigit, not to int
            raise ValidationFailed("年度应为 4 位数字。", {"year": "年度应为 4 位数字，例如 2025"})
        return services.start_campaign(bureau, int(year), current_user, ratio=(form.ratio.data or "").strip())

    return handle_form(form, call, message=lambda d: f"已公告不定向抽查的抽取 #{d.id}（候选名单与承诺值已固定）："
                       "请指定监督人，监督人输入数字后揭晓，抽查名单与检查人员随即确定。",
                       to=lambda d: url_for("core.draw_detail", draw_id=d.id),
                       failed=form_page("supervision/campaign_new.html", form=form, bureau=bureau, minimum=minimum))


@bp.route("/campaigns/<int:campaign_id>")
def campaign_detail(campaign_id: int):
    campaign = _scoped_load(InspectionCampaign, campaign_id)
    # Its inspections with what each row shows (engagement, firm, findings, inspectors by name): a statement per
    # kind, not five per inspection.
    db.session.execute(sa.select(InspectionCampaign).where(InspectionCampaign.id == campaign.id).options(
        selectinload(InspectionCampaign.inspections).options(
            joinedload(Inspection.engagement), joinedload(Inspection.firm), selectinload(Inspection.findings),
            selectinload(Inspection.inspectors).options(joinedload(Inspector.user), joinedload(Inspector.expert))))
    ).scalar_one()
    manage = permissions.can(current_user, "supervision.manage", campaign.bureau)
    open_count = sum(1 for i in campaign.inspections if i.status != InspectionStatus.CLOSED)
    return render_template("supervision/campaign_detail.html", c=campaign, manage=manage, open_count=open_count,
                           CampaignStatus=CampaignStatus, InspectionStatus=InspectionStatus, worst=_worst)


def _campaign_step(campaign_id: int, step, message: str):
    """A button on the campaign page (publish the list, publish the results): run ``step``, back to the page."""
    campaign = _scoped_load(InspectionCampaign, campaign_id)
    return button(lambda: step(campaign, current_user), message=message,
                  to=url_for(".campaign_detail", campaign_id=campaign.id))


@bp.route("/campaigns/<int:campaign_id>/publish-list", methods=["POST"])
def campaign_publish_list(campaign_id: int):
    return _campaign_step(campaign_id, services.publish_campaign_list, "抽查名单已向社会公开。")


@bp.route("/campaigns/<int:campaign_id>/publish-results", methods=["POST"])
def campaign_publish_results(campaign_id: int):
    return _campaign_step(campaign_id, services.publish_campaign_results, "抽查结果已向社会公开。")


# --- complaints (bureau) ---------------------------------------------------------------------------

@bp.route("/complaints")
def complaint_list():
    _require_bureau_side()
    complaints = Listing(lambda: scoped(Complaint), enum_filter("status", ComplaintStatus, Complaint.status),
                         options=[selectinload(Complaint.bureau)],
                         order_by=[Complaint.created_at.desc(), Complaint.id.desc()], keep="complaints")
    return render_template("supervision/complaint_list.html", page=complaints.page(), filters=complaints.filters,
                           ComplaintStatus=ComplaintStatus)


def _complaint_cases(complaint: Complaint) -> list[Inspection]:
    return db.session.execute(sa.select(Inspection).where(Inspection.complaint_id == complaint.id)
                              .order_by(Inspection.id)).scalars().all()


def _render_complaint(complaint: Complaint, status: int = 200, form: Optional[ComplaintCaseForm] = None,
                      decline_form: Optional[DeclineForm] = None):
    manage = permissions.can(current_user, "supervision.manage", complaint.bureau)
    if decline_form is None and manage and complaint.status == ComplaintStatus.RECEIVED:
        decline_form = DeclineForm(formdata=None)
    if form is None and manage and complaint.status == ComplaintStatus.RECEIVED:
        form = ComplaintCaseForm(formdata=None, data={
            "firm_id": str(complaint.firm_id or ""), "engagement_reference": complaint.engagement_reference or "",
            "detail": f"投诉举报（{complaint.reference}）：{complaint.text[:500]}"})
    if form is not None:
        form.firm_id.choices = _firm_choices(_visible_firms())
    return render_template("supervision/complaint_detail.html", c=complaint, manage=manage, form=form,
                           decline_form=decline_form, cases=_complaint_cases(complaint)), status


@bp.route("/complaints/<int:complaint_id>")
def complaint_detail(complaint_id: int):
    return _render_complaint(_scoped_load(Complaint, complaint_id))


@bp.route("/complaints/<int:complaint_id>/case", methods=["POST"])
def complaint_case(complaint_id: int):
    complaint = _scoped_load(Complaint, complaint_id)
    require("supervision.manage", complaint.bureau)
    if complaint.status != ComplaintStatus.RECEIVED:
        raise Conflict("该投诉已立案检查或已办结。")
    firms = _visible_firms()
    form = ComplaintCaseForm()
    form.firm_id.choices = _firm_choices(firms)

    def call():
        errors: dict[str, str] = {}
        firm = _chosen_firm(form.firm_id.data, firms, errors)
        engagement = _engagement_by_reference(form.engagement_reference.data, errors)
        ValidationFailed.raise_if(errors)
        return services.open_case(complaint.bureau, current_user, trigger=Trigger.COMPLAINT,
                                  detail=form.detail.data or "", firm=firm, engagement=engagement, complaint=complaint)

    return handle_form(form, call, message=_opened_message,
                       to=lambda i: url_for(".inspection_detail", inspection_id=i.id),
                       failed=lambda status: _render_complaint(complaint, status, form))


@bp.route("/complaints/<int:complaint_id>/decline", methods=["POST"])
def complaint_decline(complaint_id: int):
    """不予立案, with the reason the complainant reads on the lookup page."""
    complaint = _scoped_load(Complaint, complaint_id)
    require("supervision.manage", complaint.bureau)
    form = DeclineForm()
    return handle_form(form, lambda: services.decline_complaint(complaint, current_user, form.reason.data or ""),
                       message=lambda c: f"投诉 {c.reference} 已不予立案，投诉人可凭编号和查询码查询理由。",
                       to=url_for(".complaint_detail", complaint_id=complaint.id),
                       failed=lambda status: _render_complaint(complaint, status, decline_form=form))


# --- public pages (no login) -----------------------------------------------------------------------

def _complaint_form() -> ComplaintForm:
    form = ComplaintForm()
    bureaus = db.session.execute(sa.select(Bureau).order_by(Bureau.path)).scalars().all()
    form.bureau_id.choices = [BLANK] + [choice(str(b.id), b.name) for b in bureaus]
    return form


@bp.route("/public/complaints", methods=["GET", "POST"])
@public
def public_complaint():
    form = _complaint_form()
    done, complaint, status = submit_form(form, lambda: services.file_complaint(
        bureau_id=form.bureau_id.data, firm_name=form.firm_name.data or "", text=form.text.data or "",
        engagement_reference=form.engagement_reference.data, complainant_name=form.complainant_name.data,
        complainant_contact=form.complainant_contact.data, address=request.remote_addr or "",
        form_token=form.form_token.data))
    if done:
        # Shown once, to the sender only: never on a page anyone can open by its address.
        return render_template("supervision/public_complaint_done.html", reference=complaint.reference,
                               code=getattr(complaint, "lookup_code", None), bureau=complaint.bureau)
    return render_template("supervision/public_complaint.html", form=form), status


@bp.route("/public/complaints/lookup", methods=["GET", "POST"])
@public
def public_complaint_lookup():
    """The complainant's lookup by reference and 查询码 (POST, so neither lands in an address or a log): the
    status, a 不予立案 reason, the outcome — never the text, the complainant or the firm's answers."""
    form = LookupForm()
    if request.method == "GET":
        return render_template("supervision/public_complaint_lookup.html", form=form, complaint=None)
    if not form.validate_on_submit():
        return render_template("supervision/public_complaint_lookup.html", form=form, complaint=None), 422
    try:
        complaint = services.lookup_complaint(form.reference.data or "", form.code.data or "",
                                              address=request.remote_addr)
    except services.RateLimited as exc:
        db.session.rollback()
        return render_template("supervision/public_complaint_lookup.html", form=form, complaint=None,
                               limited=exc.message), exc.status
    db.session.commit()  # the lookup counted against the hourly limit, found or not
    if complaint is None:
        return render_template("supervision/public_complaint_lookup.html", form=form, complaint=None,
                               not_found=True), 404
    return render_template("supervision/public_complaint_lookup.html", form=form, complaint=complaint,
                           progress=services.complaint_progress(complaint))


@bp.route("/public/inspections")
@public
def public_inspections():
    stmt = (sa.select(InspectionCampaign).where(InspectionCampaign.status.in_(PUBLISHED))
            .options(selectinload(InspectionCampaign.bureau), selectinload(InspectionCampaign.engagement_draw),
                     selectinload(InspectionCampaign.inspections).selectinload(Inspection.engagement)
                     .options(*bureau_tree.with_bureau(Engagement)),  # each row names its buyer
                     selectinload(InspectionCampaign.inspections).selectinload(Inspection.firm),
                     selectinload(InspectionCampaign.inspections).selectinload(Inspection.findings))
            .order_by(InspectionCampaign.list_published_at.desc(), InspectionCampaign.id.desc()))
    page = paginate(stmt, per_page=10)
    # 双随机、一公开: each published list links the draw that sampled it, for anyone to recompute (when it is public)
    sample_draws = {c.id: [c.engagement_draw] for c in page.items
                    if c.engagement_draw is not None and draws.is_public(c.engagement_draw)}
    return render_template("supervision/public_inspections.html", page=page, sample_draws=sample_draws,
                           CampaignStatus=CampaignStatus, Severity=Severity, MEASURE_LABELS=MEASURE_LABELS)


@bp.route("/public/criticisms")
@public
def public_criticisms():
    """通报批评: every finding the bureaus decided to criticise publicly, targeted cases and random campaigns alike
    (``services.published_criticisms``): the firm, the work, the problem and the measures — never the case's lead."""
    stmt = services.published_criticisms().options(
        joinedload(Finding.inspection).joinedload(Inspection.firm),
        joinedload(Finding.inspection).joinedload(Inspection.bureau),
        joinedload(Finding.inspection).joinedload(Inspection.engagement))
    return render_template("supervision/public_criticisms.html", page=paginate(stmt, per_page=20),
                           MEASURE_LABELS=MEASURE_LABELS)
