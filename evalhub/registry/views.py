"""Registry pages: the firm library (第三方机构库), applications and status, rosters, recusal relations,
the expert pool (专家库), and Excel import.

Thin routes: check permission (``load`` / ``require``), call a service, render or redirect. A service's
``ValidationFailed`` is rolled back and shown beside the form with HTTP 422; ``Conflict`` and
``PermissionDenied`` propagate to the app's error handlers (409 / 403).
"""
from __future__ import annotations

import io
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required, login_user
from sqlalchemy.orm import selectinload

from evalhub.core import files, jobs, permissions
from evalhub.core.enums import Field
from evalhub.core.errors import ValidationFailed
from evalhub.core.exports import to_xlsx
from evalhub.core.models import Bureau, BudgetUnit
from evalhub.core.timeutil import beijing_today, format_beijing
from evalhub.core.web import load, paginate, require, submit_form, wants_export, xlsx_response
from evalhub.extensions import db
from evalhub.registry import services
from evalhub.registry.forms import (
    BLANK,
    AvailabilityForm,
    EndRelationForm,
    ExpertForm,
    ExpertStatusForm,
    FirmDocumentForm,
    FirmForm,
    FirmRegisterForm,
    FirmStatusForm,
    ImportForm,
    ReasonForm,
    RelationForm,
    StaffForm,
    TieForm,
    choice,
)
from evalhub.registry.imports import template_xlsx
from evalhub.registry.models import (
    Expert,
    ExpertStatus,
    Firm,
    FirmDocument,
    FirmKind,
    FirmRelation,
    FirmStaff,
    FirmStatus,
    ProfessionalTitle,
    expert_field,
    firm_field,
)

bp = Blueprint("registry", __name__)

IMPORT_KINDS = {
    "firms": {"job": "import.firms", "noun": "第三方机构", "list": "registry.firm_list"},
    "experts": {"job": "import.experts", "noun": "专家", "list": "registry.expert_list"},
}


# --- small helpers ---------------------------------------------------------------------------------

def _own_bureau(action: str) -> Bureau:
    """The signed-in user's own bureau, when ``action`` is allowed on it (bureau users only)."""
    bureau = current_user.bureau
    if bureau is None:
        abort(403)
    require(action, bureau)
    return bureau


def _enum_arg(enum_cls, value: str):
    try:
        return enum_cls(value) if value else None
    except ValueError:
        return None


def _int_arg(value: str) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _all_bureaus() -> list[Bureau]:
    # Bureau names are public: any firm or expert may name one as a commissioner or counterpart.
    return db.session.execute(sa.select(Bureau).order_by(Bureau.path)).scalars().all()


def _bureau_choices() -> list:
    return [BLANK] + [choice(b.id, ("　" * (b.path.count("/") - 1)) + b.name) for b in _all_bureaus()]


def _budget_unit_choices() -> list:
    stmt = permissions.scope(current_user, sa.select(BudgetUnit).options(selectinload(BudgetUnit.bureau)), BudgetUnit)
    units = db.session.execute(stmt.order_by(BudgetUnit.bureau_id, BudgetUnit.name)).scalars().all()
    return [BLANK] + [choice(u.id, f"{u.bureau.short_name} · {u.name}") for u in units]


def _fields_by(table: sa.Table, key: str, ids) -> dict[int, list[Field]]:
    out: dict[int, list[Field]] = {}
    order = list(Field)
    rows = db.session.execute(sa.select(table.c[key], table.c.field).where(table.c[key].in_(ids))).all()
    for owner, value in rows:
        out.setdefault(owner, []).append(value)
    return {k: sorted(v, key=order.index) for k, v in out.items()}


def _labels(fields: list[Field]) -> str:
    return "、".join(f.label for f in fields)


def _date(value) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


# --- firms: list -----------------------------------------------------------------------------------

FIRM_EXPORT_COLUMNS = ["机构名称", "统一社会信用代码", "组织形式", "机构类型", "所属机构库", "状态", "状态原因",
                       "状态截止日期", "业务领域", "法定代表人（负责人）", "联系人", "联系电话", "电子邮箱", "住所地址",
                       "申请日期", "入库日期"]


@bp.route("/firms")
@login_required
def firm_list():
    require("firm.list")
    filters = {k: request.args.get(k, "").strip() for k in ("q", "status", "kind", "field", "bureau")}
    stmt = permissions.scope(current_user, sa.select(Firm), Firm)
    if filters["q"]:
        q = filters["q"]
        stmt = stmt.where(sa.or_(Firm.name.contains(q, autoescape=True),
                                 Firm.uscc.contains(q.upper(), autoescape=True)))
    if (status := _enum_arg(FirmStatus, filters["status"])) is not None:
        stmt = stmt.where(Firm.status == status)
    if (kind := _enum_arg(FirmKind, filters["kind"])) is not None:
        stmt = stmt.where(Firm.kind == kind)
    if (field := _enum_arg(Field, filters["field"])) is not None:
        stmt = stmt.where(Firm.id.in_(sa.select(firm_field.c.firm_id).where(firm_field.c.field == field)))
    if (bureau_id := _int_arg(filters["bureau"])) is not None:
        stmt = stmt.where(Firm.bureau_id == bureau_id)
    ids = stmt.with_only_columns(Firm.id)
    stmt = stmt.options(selectinload(Firm.bureau)).order_by(Firm.applied_at.desc(), Firm.id.desc())

    if wants_export():
        firms = db.session.execute(stmt).scalars().all()
        fields = _fields_by(firm_field, "firm_id", ids)
        rows = [{
            "机构名称": f.name, "统一社会信用代码": f.uscc, "组织形式": f.legal_form.label, "机构类型": f.kind.label,
            "所属机构库": f.bureau.name, "状态": f.status.label, "状态原因": f.status_reason or "",
            "状态截止日期": _date(f.status_until), "业务领域": _labels(fields.get(f.id, [])),
            "法定代表人（负责人）": f.legal_representative, "联系人": f.contact_name, "联系电话": f.contact_phone,
            "电子邮箱": f.contact_email or "", "住所地址": f.address,
            "申请日期": format_beijing(f.applied_at, "%Y-%m-%d"), "入库日期": format_beijing(f.admitted_at, "%Y-%m-%d"),
        } for f in firms]
        return xlsx_response(to_xlsx(rows, "第三方机构库", columns=FIRM_EXPORT_COLUMNS), "第三方机构库.xlsx")

    page = paginate(stmt)
    library_bureaus = db.session.execute(
        sa.select(Bureau).where(Bureau.id.in_(permissions.scope(current_user, sa.select(Firm.bureau_id), Firm)))
        .order_by(Bureau.path)).scalars().all()
    own = current_user.bureau
    return render_template(
        "registry/firm_list.html", page=page, filters=filters,
        fields=_fields_by(firm_field, "firm_id", [f.id for f in page.items]),
        library_bureaus=library_bureaus, FirmStatus=FirmStatus, FirmKind=FirmKind, Field=Field,
        can_create=own is not None and permissions.can(current_user, "firm.create", own),
        can_import=own is not None and permissions.can(current_user, "registry.import", own),
    )


# --- firms: entry, registration, edit --------------------------------------------------------------

def _firm_input(form: FirmForm) -> services.FirmInput:
    return services.FirmInput(
        name=form.name.data, uscc=form.uscc.data, legal_form=form.legal_form.data, kind=form.kind.data,
        address=form.address.data, legal_representative=form.legal_representative.data,
        contact_name=form.contact_name.data, contact_phone=form.contact_phone.data,
        contact_email=form.contact_email.data, founded_on=form.founded_on.data, fields=form.fields.data or [],
        description=form.description.data, declares_no_major_violation=form.declares_no_major_violation.data,
    )


def _firm_data(firm: Firm) -> dict[str, Any]:
    data = {name: getattr(firm, name) for name in FirmForm.firm_fields if name != "fields"}
    data.update(legal_form=firm.legal_form.value, kind=firm.kind.value, fields=[f.value for f in firm.fields])
    return data


@bp.route("/firms/new", methods=["GET", "POST"])
@login_required
def firm_new():
    bureau = _own_bureau("firm.create")
    form = FirmForm()
    done, firm, status = submit_form(form, lambda: services.create_firm(_firm_input(form), bureau, current_user, via="staff"))
    if done:
        flash(f"已录入 {firm.name}，状态为“待审核”。", "success")
        return redirect(url_for(".firm_detail", firm_id=firm.id))
    return render_template("registry/firm_form.html", form=form, bureau=bureau, firm=None,
                           title="录入第三方机构"), status


@bp.route("/register/firm", methods=["GET", "POST"])
def firm_register():
    if current_user.is_authenticated:
        return redirect(url_for("core.dashboard"))
    form = FirmRegisterForm()
    form.bureau_id.choices = _bureau_choices()

    def register():
        bureau = db.session.get(Bureau, form.bureau_id.data)
        if bureau is None:
            raise ValidationFailed("所选财政局不存在。", {"bureau_id": "所选财政局不存在"})
        return services.register_firm_application(
            _firm_input(form), bureau, username=form.username.data, password=form.password.data,
            display_name=(form.display_name.data or "").strip())

    done, result, status = submit_form(form, register)
    if done:
        firm, user = result
        login_user(user)
        flash("申请已提交，等待财政局审核", "success")
        return redirect(url_for(".firm_detail", firm_id=firm.id))
    return render_template("registry/firm_register.html", form=form), status


@bp.route("/firms/<int:firm_id>/edit", methods=["GET", "POST"])
@login_required
def firm_edit(firm_id: int):
    firm = load(Firm, firm_id, "firm.edit")
    form = FirmForm(data=_firm_data(firm) if request.method == "GET" else None)
    done, _, status = submit_form(form, lambda: services.update_firm(firm, _firm_input(form), current_user))
    if done:
        flash("机构信息已保存。", "success")
        return redirect(url_for(".firm_detail", firm_id=firm.id))
    return render_template("registry/firm_form.html", form=form, bureau=firm.bureau, firm=firm,
                           title=f"修改机构信息：{firm.name}"), status


# --- firms: detail and status ----------------------------------------------------------------------

def _render_firm(firm: Firm, status: int = 200, **forms: Any):
    """The firm page; ``forms`` carries a failed form back to its place on the page."""
    staff = sorted(firm.staff, key=lambda s: (not s.active, s.id))
    documents = sorted(firm.documents, key=lambda d: d.id, reverse=True)
    relations = sorted(firm.relations, key=lambda r: (r.end_date is not None, r.start_date), reverse=False)
    return render_template(
        "registry/firm_detail.html", firm=firm, staff=staff, documents=documents, relations=relations,
        actions=services.available_status_actions(firm, current_user),
        doc_form=forms.get("doc_form") or FirmDocumentForm(),
        status_form=forms.get("status_form"), staff_form=forms.get("staff_form"),
        staff_target=forms.get("staff_target"), relation_form=forms.get("relation_form"),
        relation_target=forms.get("relation_target"), FirmStatus=FirmStatus, today=beijing_today(),
    ), status


@bp.route("/firms/<int:firm_id>")
@login_required
def firm_detail(firm_id: int):
    return _render_firm(load(Firm, firm_id, "firm.view"))


@bp.route("/firms/<int:firm_id>/status", methods=["POST"])
@login_required
def firm_status(firm_id: int):
    firm = load(Firm, firm_id, "firm.view")
    form = FirmStatusForm()
    done, change, status = submit_form(form, lambda: services.change_firm_status(
        firm, form.action.data, current_user, reason=form.reason.data, effective_until=form.effective_until.data))
    if not done:
        return _render_firm(firm, status, status_form=form)
    flash(f"{firm.name}：{change.from_status.label} → {change.to_status.label}。", "success")
    return redirect(url_for(".firm_detail", firm_id=firm.id))


# --- firms: documents ------------------------------------------------------------------------------

@bp.route("/firms/<int:firm_id>/documents", methods=["POST"])
@login_required
def firm_document_upload(firm_id: int):
    firm = load(Firm, firm_id, "firm.edit")
    form = FirmDocumentForm()

    def attach():
        upload = form.file.data
        return services.attach_firm_document(firm, form.kind.data, upload.filename, upload.read(), current_user)

    done, document, status = submit_form(form, attach)
    if not done:
        return _render_firm(firm, status, doc_form=form)
    flash(f"已上传{document.kind.label}：{document.file.original_name}。", "success")
    return redirect(url_for(".firm_detail", firm_id=firm.id) + "#documents")


@bp.route("/firms/<int:firm_id>/documents/<int:doc_id>")
@login_required
def firm_document(firm_id: int, doc_id: int):
    firm = load(Firm, firm_id, "firm.document.view")
    document = db.session.get(FirmDocument, doc_id)
    if document is None or document.firm_id != firm.id:
        abort(404)
    try:
        data = files.read(document.file)
    except FileNotFoundError:
        abort(404)
    return send_file(io.BytesIO(data), mimetype=document.file.content_type, as_attachment=True,
                     download_name=document.file.original_name)


# --- firms: staff roster ---------------------------------------------------------------------------

@bp.route("/firms/<int:firm_id>/staff/new", methods=["GET", "POST"])
@login_required
def staff_new(firm_id: int):
    firm = load(Firm, firm_id, "firm.staff.manage")
    form = StaffForm()

    def add():
        data = services.StaffInput(
            name=form.name.data, id_number=form.id_number.data, role=form.role.data,
            years_experience=form.years_experience.data, title=form.title.data, phone=form.phone.data,
            certificates=[(entry.kind.data, entry.number.data) for entry in form.certificates])
        return services.add_staff(firm, data, current_user)

    done, staff, status = submit_form(form, add)
    if done:
        flash(f"已将 {staff.name} 加入人员名册。", "success")
        return redirect(url_for(".firm_detail", firm_id=firm.id) + "#staff")
    return render_template("registry/staff_form.html", form=form, firm=firm), status


@bp.route("/firms/<int:firm_id>/staff/<int:staff_id>/deactivate", methods=["POST"])
@login_required
def staff_deactivate(firm_id: int, staff_id: int):
    firm = load(Firm, firm_id, "firm.staff.manage")
    staff = db.session.get(FirmStaff, staff_id)
    if staff is None or staff.firm_id != firm.id:
        abort(404)
    form = ReasonForm()
    done, _, status = submit_form(form, lambda: services.deactivate_staff(staff, current_user, form.reason.data))
    if not done:
        return _render_firm(firm, status, staff_form=form, staff_target=staff_id)
    flash(f"已将 {staff.name} 移出人员名册。", "success")
    return redirect(url_for(".firm_detail", firm_id=firm.id) + "#staff")


# --- firms: recusal relations ----------------------------------------------------------------------

@bp.route("/firms/<int:firm_id>/relations/new", methods=["GET", "POST"])
@login_required
def relation_new(firm_id: int):
    firm = load(Firm, firm_id, "firm.relation.manage")
    form = RelationForm()
    form.bureau_id.choices = _bureau_choices()
    form.budget_unit_id.choices = _budget_unit_choices()
    done, _, status = submit_form(form, lambda: services.add_relation(
        firm, kind=form.kind.data, bureau_id=form.bureau_id.data, budget_unit_id=form.budget_unit_id.data,
        start_date=form.start_date.data, end_date=form.end_date.data, note=form.note.data, actor=current_user))
    if done:
        flash("回避关系已登记。", "success")
        return redirect(url_for(".firm_detail", firm_id=firm.id) + "#relations")
    return render_template("registry/relation_form.html", form=form, firm=firm), status


@bp.route("/firms/<int:firm_id>/relations/<int:relation_id>/end", methods=["POST"])
@login_required
def relation_end(firm_id: int, relation_id: int):
    firm = load(Firm, firm_id, "firm.relation.manage")
    relation = db.session.get(FirmRelation, relation_id)
    if relation is None or relation.firm_id != firm.id:
        abort(404)
    form = EndRelationForm()
    done, _, status = submit_form(form, lambda: services.end_relation(relation, form.end_date.data, current_user))
    if not done:
        return _render_firm(firm, status, relation_form=form, relation_target=relation_id)
    flash("回避关系已结束。", "success")
    return redirect(url_for(".firm_detail", firm_id=firm.id) + "#relations")


# --- experts: list ---------------------------------------------------------------------------------

EXPERT_EXPORT_COLUMNS = ["姓名", "身份证号码（掩码）", "工作单位", "职称", "学历", "从业年限", "出生年份", "业务领域",
                         "所属专家库", "状态", "可用状态", "入库条件", "联系电话", "电子邮箱"]


def _eligibility_text(reasons: list[str]) -> str:
    return "；".join(reasons) if reasons else "符合"


def _availability_text(expert: Expert) -> str:
    if expert.available:
        return "可参加评审"
    return "暂不可用" + (f"（至 {expert.unavailable_until:%Y-%m-%d}）" if expert.unavailable_until else "")


@bp.route("/experts")
@login_required
def expert_list():
    require("expert.list")
    filters = {k: request.args.get(k, "").strip() for k in ("q", "field", "status", "title")}
    stmt = permissions.scope(current_user, sa.select(Expert), Expert)
    if filters["q"]:
        q = filters["q"]
        stmt = stmt.where(sa.or_(Expert.name.contains(q, autoescape=True), Expert.employer.contains(q, autoescape=True)))
    if (field := _enum_arg(Field, filters["field"])) is not None:
        stmt = stmt.where(Expert.id.in_(sa.select(expert_field.c.expert_id).where(expert_field.c.field == field)))
    if (status := _enum_arg(ExpertStatus, filters["status"])) is not None:
        stmt = stmt.where(Expert.status == status)
    if (title := _enum_arg(ProfessionalTitle, filters["title"])) is not None:
        stmt = stmt.where(Expert.title == title)
    ids = stmt.with_only_columns(Expert.id)
    stmt = stmt.options(selectinload(Expert.bureau)).order_by(Expert.id.desc())

    if wants_export():
        experts = db.session.execute(stmt).scalars().all()
        fields = _fields_by(expert_field, "expert_id", ids)
        rows = [{
            "姓名": e.name, "身份证号码（掩码）": e.id_number_masked, "工作单位": e.employer, "职称": e.title.label,
            "学历": e.degree.label, "从业年限": e.years_in_field, "出生年份": e.birth_year,
            "业务领域": _labels(fields.get(e.id, [])), "所属专家库": e.bureau.name, "状态": e.status.label,
            "可用状态": _availability_text(e), "入库条件": _eligibility_text(services.expert_eligibility(e)),
            "联系电话": e.phone or "", "电子邮箱": e.email or "",
        } for e in experts]
        return xlsx_response(to_xlsx(rows, "专家库", columns=EXPERT_EXPORT_COLUMNS), "专家库.xlsx")

    page = paginate(stmt)
    own = current_user.bureau
    return render_template(
        "registry/expert_list.html", page=page, filters=filters,
        fields=_fields_by(expert_field, "expert_id", [e.id for e in page.items]),
        eligibility={e.id: services.expert_eligibility(e) for e in page.items},
        availability={e.id: _availability_text(e) for e in page.items},
        ExpertStatus=ExpertStatus, ProfessionalTitle=ProfessionalTitle, Field=Field,
        can_create=own is not None and permissions.can(current_user, "expert.create", own),
        can_import=own is not None and permissions.can(current_user, "registry.import", own),
    )


# --- experts: entry, detail, edit ------------------------------------------------------------------

def _expert_input(form: ExpertForm) -> services.ExpertInput:
    return services.ExpertInput(
        name=form.name.data, id_number=(form.id_number.data or "").strip(), employer=form.employer.data,
        title=form.title.data, degree=form.degree.data, years_in_field=form.years_in_field.data,
        birth_year=form.birth_year.data, fields=form.fields.data or [], phone=form.phone.data, email=form.email.data)


@bp.route("/experts/new", methods=["GET", "POST"])
@login_required
def expert_new():
    bureau = _own_bureau("expert.create")
    form = ExpertForm()
    done, expert, status = submit_form(form, lambda: services.create_expert(_expert_input(form), bureau, current_user))
    if done:
        flash(f"已将 {expert.name} 录入专家库。", "success")
        return redirect(url_for(".expert_detail", expert_id=expert.id))
    return render_template("registry/expert_form.html", form=form, bureau=bureau, expert=None,
                           title="录入专家"), status


def _expert_actions(expert: Expert) -> list[tuple[str, str]]:
    if not permissions.can(current_user, "expert.status", expert):
        return []
    return [(name, label) for name, (label, sources, _target) in services.EXPERT_STATUS_ACTIONS.items()
            if expert.status in sources]


def _render_expert(expert: Expert, status: int = 200, **forms: Any):
    ties = sorted(expert.ties, key=lambda t: (t.end_date is not None, t.start_date), reverse=False)
    availability_form = forms.get("availability_form") or AvailabilityForm(data={
        "available": "1" if expert.available else "0", "until": expert.unavailable_until,
        "note": expert.availability_note})
    return render_template(
        "registry/expert_detail.html", expert=expert, ties=ties,
        eligibility=services.expert_eligibility(expert), drawable=services.expert_is_drawable(expert),
        actions=_expert_actions(expert), status_form=forms.get("status_form"),
        availability_form=availability_form, availability_text=_availability_text(expert),
    ), status


@bp.route("/experts/<int:expert_id>")
@login_required
def expert_detail(expert_id: int):
    return _render_expert(load(Expert, expert_id, "expert.view"))


@bp.route("/experts/<int:expert_id>/edit", methods=["GET", "POST"])
@login_required
def expert_edit(expert_id: int):
    expert = load(Expert, expert_id, "expert.edit")
    data = None
    if request.method == "GET":
        data = {"name": expert.name, "id_number": expert.id_number_masked, "employer": expert.employer,
                "title": expert.title.value, "degree": expert.degree.value, "years_in_field": str(expert.years_in_field),
                "birth_year": str(expert.birth_year), "fields": [f.value for f in expert.fields],
                "phone": expert.phone, "email": expert.email}
    form = ExpertForm(data=data)
    done, _, status = submit_form(form, lambda: services.update_expert(expert, _expert_input(form), current_user))
    if done:
        flash("专家信息已保存。", "success")
        return redirect(url_for(".expert_detail", expert_id=expert.id))
    return render_template("registry/expert_form.html", form=form, bureau=expert.bureau, expert=expert,
                           title=f"修改专家信息：{expert.name}"), status


@bp.route("/experts/<int:expert_id>/status", methods=["POST"])
@login_required
def expert_status(expert_id: int):
    expert = load(Expert, expert_id, "expert.view")
    form = ExpertStatusForm()
    done, _, status = submit_form(form, lambda: services.change_expert_status(
        expert, form.action.data, form.reason.data, current_user))
    if not done:
        return _render_expert(expert, status, status_form=form)
    flash(f"专家 {expert.name} 现为“{expert.status.label}”。", "success")
    return redirect(url_for(".expert_detail", expert_id=expert.id))


@bp.route("/experts/<int:expert_id>/availability", methods=["POST"])
@login_required
def expert_availability(expert_id: int):
    expert = load(Expert, expert_id, "expert.self")
    form = AvailabilityForm()
    done, _, status = submit_form(form, lambda: services.set_expert_availability(
        expert, available=form.available.data == "1", until=form.until.data, note=form.note.data,
        actor=current_user))
    if not done:
        return _render_expert(expert, status, availability_form=form)
    flash("可用状态已更新。", "success")
    return redirect(url_for(".expert_detail", expert_id=expert.id))


@bp.route("/experts/<int:expert_id>/ties/new", methods=["GET", "POST"])
@login_required
def tie_new(expert_id: int):
    expert = load(Expert, expert_id, "expert.self")
    form = TieForm()
    firms = db.session.execute(permissions.scope(current_user, sa.select(Firm), Firm).order_by(Firm.name)).scalars()
    form.firm_id.choices = [BLANK] + [choice(f.id, f.name) for f in firms]
    form.bureau_id.choices = _bureau_choices()
    form.budget_unit_id.choices = _budget_unit_choices()
    done, _, status = submit_form(form, lambda: services.add_expert_tie(
        expert, kind=form.kind.data, counterpart_type=form.counterpart_type.data,
        counterpart_name=form.counterpart_name.data, firm_id=form.firm_id.data, bureau_id=form.bureau_id.data,
        budget_unit_id=form.budget_unit_id.data, start_date=form.start_date.data, end_date=form.end_date.data,
        note=form.note.data, actor=current_user))
    if done:
        flash("关联关系已申报。", "success")
        return redirect(url_for(".expert_detail", expert_id=expert.id) + "#ties")
    return render_template("registry/tie_form.html", form=form, expert=expert), status


# --- Excel import ----------------------------------------------------------------------------------

def _import_kind(kind: str) -> dict[str, str]:
    spec = IMPORT_KINDS.get(kind)
    if spec is None:
        abort(404)
    return spec


@bp.route("/imports/<kind>", methods=["GET", "POST"])
@login_required
def registry_import(kind: str):
    spec = _import_kind(kind)
    bureau = _own_bureau("registry.import")
    form = ImportForm()

    def upload():
        stored = files.store(form.file.data.filename, form.file.data.read(), allowed=("xlsx",), actor=current_user)
        return jobs.submit(spec["job"], f"批量导入{spec['noun']}：{stored.original_name}",
                           {"file_id": stored.id, "bureau_id": bureau.id}, actor=current_user, bureau_id=bureau.id)

    done, job, status = submit_form(form, upload)
    if done:
        return redirect(url_for("core.job_detail", job_id=job.id))
    return render_template("registry/import.html", form=form, kind=kind, spec=spec, bureau=bureau), status


@bp.route("/imports/<kind>/template")
@login_required
def import_template(kind: str):
    spec = _import_kind(kind)
    _own_bureau("registry.import")
    return xlsx_response(template_xlsx(kind), f"{spec['noun']}导入模板.xlsx")
