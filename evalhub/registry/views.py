"""Registry pages: the firm library (第三方机构库), applications and status, rosters, recusal relations,
the expert pool (专家库), and Excel import.

Thin routes: check permission (``load`` / ``require``), call a service, render or redirect. A service's
``ValidationFailed`` is rolled back and shown beside the form with HTTP 422; ``Conflict`` and
``PermissionDenied`` propagate to the app's error handlers (409 / 403).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core import accounts, bureau_tree, permissions
from evalhub.core.enums import Field
from evalhub.core.errors import ValidationFailed
from evalhub.core.listing import Export, Filter, Listing, enum_filter, int_filter, text_list
from evalhub.core.models import Bureau, BudgetUnit, User
from evalhub.core.timeutil import beijing_date, beijing_today
from evalhub.core.web import (
    can_in_own_bureau,
    detail_form,
    form_page,
    handle_form,
    load,
    load_child,
    own_bureau,
    require,
    scoped,
    send_stored,
    submit_form,
    visitors_only,
    wants_export,
    xlsx_import,
    xlsx_response,
)
from evalhub.extensions import db
from evalhub.registry import counts, services
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
    FirmUserForm,
    ImportForm,
    ReasonForm,
    RelationForm,
    StaffForm,
    TieForm,
    choice,
    field_filter,
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
)

bp = Blueprint("registry", __name__)

IMPORT_KINDS = {
    "firms": {"job": "import.firms", "noun": "第三方机构", "list": "registry.firm_list"},
    "experts": {"job": "import.experts", "noun": "专家", "list": "registry.expert_list"},
}


# --- small helpers ---------------------------------------------------------------------------------

def _all_bureaus() -> list[Bureau]:
    # Bureau names are public: any firm or expert may name one as a commissioner or counterpart.
    return db.session.execute(sa.select(Bureau).order_by(Bureau.path)).scalars().all()


def _bureau_choices() -> list:
    return [BLANK] + [choice(b.id, ("　" * (b.path.count("/") - 1)) + b.name) for b in _all_bureaus()]


def _budget_unit_choices() -> list:
    stmt = permissions.scope(current_user, sa.select(BudgetUnit).options(selectinload(BudgetUnit.bureau)), BudgetUnit)
    units = db.session.execute(stmt.order_by(BudgetUnit.bureau_id, BudgetUnit.name)).scalars().all()
    return [BLANK] + [choice(u.id, f"{u.bureau.short_name} · {u.name}") for u in units]


def _labels(fields: list[Field]) -> str:
    return "、".join(f.label for f in fields)


def _bureaus(ids: list[int]) -> list[Bureau | bureau_tree.TreeBureau]:
    """The bureaus ``ids`` in tree order: those this request already holds (its tree) without a statement."""
    tree = bureau_tree.held()
    held: dict[int, Any] = {i: tree.get(i) for i in ids}
    missing = [i for i, b in held.items() if b is None]
    if missing:
        held.update((b.id, b) for b in db.session.execute(sa.select(Bureau).where(Bureau.id.in_(missing))).scalars())
    return sorted(held.values(), key=lambda b: b.path)


# --- firms: list -----------------------------------------------------------------------------------

FIRM_FILTERS = (
    Filter("q", str, lambda stmt, q: stmt.where(sa.or_(Firm.name.contains(q, autoescape=True),
                                                       Firm.uscc.contains(q.upper(), autoescape=True)))),
    enum_filter("status", FirmStatus, Firm.status),
    enum_filter("kind", FirmKind, Firm.kind),
    field_filter(Firm),
    int_filter("bureau", Firm.bureau_id),
)


def _firm_rows(firms: list[Firm]) -> list[dict]:
    fields = Firm.fields_of(f.id for f in firms)
    return [{
        "机构名称": f.name, "统一社会信用代码": f.uscc, "组织形式": f.legal_form.label, "机构类型": f.kind.label,
        "所属机构库": f.bureau.name, "状态": f.status.label, "状态原因": f.status_reason or "",
        "状态截止日期": f.status_until, "业务领域": _labels(fields[f.id]),
        "法定代表人（负责人）": f.legal_representative, "联系人": f.contact_name, "联系电话": f.contact_phone,
        "电子邮箱": f.contact_email or "", "住所地址": f.address,
        "申请日期": f.applied_at and beijing_date(f.applied_at), "入库日期": f.admitted_at and beijing_date(f.admitted_at),
    } for f in firms]


FIRM_EXPORT = Export("第三方机构库", [
    "机构名称", "统一社会信用代码", "组织形式", "机构类型", "所属机构库", "状态", "状态原因", "状态截止日期", "业务领域",
    "法定代表人（负责人）", "联系人", "联系电话", "电子邮箱", "住所地址", "申请日期", "入库日期"], _firm_rows)


@bp.route("/firms")
def firm_list():
    require("firm.list")
    order = [Firm.applied_at.desc(), Firm.id.desc()]
    if wants_export():
        return Listing(scoped(Firm), *FIRM_FILTERS, options=[joinedload(Firm.bureau)], order_by=order) \
            .export(FIRM_EXPORT)
    # The page, its count, each firm's fields and library and the libraries in scope (the filter's choices): one
    # statement, of the columns shown (the sheet has them all), read as rows rather than firms and bureaus (ORM
    # objects). ``ix_firm_applied`` gives the order: the database walks it and stops after the page, so each
    # firm's fields and library are read for the rows shown (chosen over ids first, ``late``, PostgreSQL still
    # read every firm in scope to join the page back); the total and the libraries come from the kept counts.
    # Its statements are built once per scope and filters (``Listing(keep=…)``, ``permissions.kept``).
    firms = Listing(lambda: scoped(Firm, sa.select(Firm.id, Firm.name, Firm.uscc, Firm.kind, Firm.status,
                                                   Firm.status_until, Firm.applied_at)),
                    *FIRM_FILTERS, order_by=order, keep="firms")
    in_scope, extra = permissions.kept(current_user, "firms.extra", _firm_list_extra)
    page = firms.page(extra=extra, rows=True, total=counts.list_total(current_user, firms, Firm))
    if page.extra:
        library_ids = [int(i) for i in (page.extra[0]["libraries"] or "").split(",") if i]
    else:  # an empty page carries nothing
        library_ids = list(db.session.execute(sa.select(in_scope.c.bureau_id)).scalars())
    return render_template(
        "registry/firm_list.html", page=page, filters=firms.filters,
        fields={f.id: Firm.parse_fields(row["fields"]) for f, row in zip(page.items, page.extra)},
        library_bureaus=_bureaus(library_ids), FirmStatus=FirmStatus, FirmKind=FirmKind, Field=Field,
        can_create=can_in_own_bureau("firm.create"), can_import=can_in_own_bureau("registry.import"))


def _firm_list_extra() -> tuple[sa.Subquery, list]:
    """The bureaus of the firms in the signed-in user's scope (from the kept counts where they can say it, not
    from every firm), and the firm list's columns beside each firm's own: its fields, the libraries in scope
    (the filter's choices) and its library's name."""
    library = sa.select(Bureau.short_name).where(Bureau.id == Firm.bureau_id).scalar_subquery()
    kept = counts.firm_libraries(current_user)
    in_scope = (kept if kept is not None else scoped(Firm, sa.select(Firm.bureau_id).distinct())).subquery()
    libraries = sa.select(text_list(sa.cast(in_scope.c.bureau_id, sa.String))).scalar_subquery().label("libraries")
    return in_scope, [Firm.fields_column(), libraries, library.label("bureau_short_name")]


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
def firm_new():
    bureau = own_bureau("firm.create")
    form = FirmForm()
    return handle_form(form, lambda: services.create_firm(_firm_input(form), bureau, current_user, via="staff"),
                       message=lambda firm: f"已录入 {firm.name}，状态为“待审核”。",
                       to=lambda firm: url_for(".firm_detail", firm_id=firm.id),
                       failed=form_page("registry/firm_form.html", form=form, bureau=bureau, firm=None,
                                        title="录入第三方机构"))


@bp.route("/register/firm", methods=["GET", "POST"])
@visitors_only
def firm_register():
    form = FirmRegisterForm()
    form.bureau_id.choices = _bureau_choices()

    def register():
        bureau = db.session.get(Bureau, form.bureau_id.data)
        if bureau is None:
            raise ValidationFailed("所选财政局不存在。", {"bureau_id": "所选财政局不存在"})
        return services.register_firm_application(
            _firm_input(form), bureau, username=form.username.data, password=form.password.data,
            display_name=(form.display_name.data or "").strip(), address=request.remote_addr)

    done, result, status = submit_form(form, register)
    if done:
        firm, user = result
        login_user(user)
        flash("申请已提交，等待财政局审核", "success")
        return redirect(url_for(".firm_detail", firm_id=firm.id))
    return render_template("registry/firm_register.html", form=form,
                           admission_documents=services.ADMISSION_DOCUMENTS), status


@bp.route("/firms/<int:firm_id>/edit", methods=["GET", "POST"])
def firm_edit(firm_id: int):
    firm = load(Firm, firm_id, "firm.edit")
    form = FirmForm(data=_firm_data(firm) if request.method == "GET" else None)
    return handle_form(form, lambda: services.update_firm(firm, _firm_input(form), current_user),
                       message="机构信息已保存。", to=url_for(".firm_detail", firm_id=firm.id),
                       failed=form_page("registry/firm_form.html", form=form, bureau=firm.bureau, firm=firm,
                                        title=f"修改机构信息：{firm.name}"))


# --- firms: detail and status ----------------------------------------------------------------------

def _render_firm(firm: Firm, status: int = 200, **forms: Any):
    """The firm page; ``forms`` carries a failed form back to its place on the page."""
    services.read_firm_details(firm)
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
        admission_documents=services.ADMISSION_DOCUMENTS, admission_missing=services.missing_admission_documents(firm),
        **_firm_account_context(firm, forms.get("new_link")),
    ), status


def _firm_account_context(firm: Firm, new_link: dict | None) -> dict[str, Any]:
    """The 机构登录账号 card: shown to the bureau whose library holds the firm (who may open its first account)."""
    if not permissions.can(current_user, "firm.account", firm):
        return {"account_card": False}
    return {"account_card": True, "account_users": services.firm_users(firm),
            "first_account": services.firm_first_account(firm), "new_link": new_link,
            "account_form": ReasonForm(formdata=None),
            "link_days": accounts.lifetime_text(accounts.LinkPurpose.ACTIVATION)}


def _firm_form(firm: Firm, form, call, form_key: str, *, message: Any, anchor: str = "", **context: Any):
    """``handle_form`` for a form on the firm page: done, back to that page (at ``anchor``); otherwise the
    page again with the form (as ``form_key``, with ``context``) and its errors."""
    return detail_form(form, call, form_key, message=message, render=partial(_render_firm, firm),
                       to=url_for(".firm_detail", firm_id=firm.id) + anchor, **context)


@bp.route("/firms/<int:firm_id>")
def firm_detail(firm_id: int):
    return _render_firm(load(Firm, firm_id, "firm.view"))


@bp.route("/firms/<int:firm_id>/status", methods=["POST"])
def firm_status(firm_id: int):
    firm = load(Firm, firm_id, "firm.view")
    form = FirmStatusForm()
    return _firm_form(firm, form, lambda: services.change_firm_status(
        firm, form.action.data, current_user, reason=form.reason.data, effective_until=form.effective_until.data),
        "status_form", message=lambda change: f"{firm.name}：{change.from_status.label} → {change.to_status.label}。")


@bp.route("/firms/<int:firm_id>/account", methods=["POST"], endpoint="firm_account_open", defaults={"reissue": False})
@bp.route("/firms/<int:firm_id>/account/link", methods=["POST"], endpoint="firm_account_link", defaults={"reissue": True})
def firm_account(firm_id: int, reissue: bool):
    """开通账号 for a firm with no login, or 重新签发激活链接 while that account awaits activation: the page
    answers with the link itself, once."""
    firm = load(Firm, firm_id, "firm.account")
    return _account_action(partial(_render_firm, firm), reissue,
                           open_account=lambda: services.open_firm_account(firm, current_user),
                           reissue_link=lambda: services.reissue_firm_link(firm, current_user),
                           opened=lambda user: f"已为 {firm.name} 开通机构管理员账号，用户名 {user.username}。"
                                               "请把下方激活链接交给机构联系人本人。")


# --- firms: documents ------------------------------------------------------------------------------

@bp.route("/firms/<int:firm_id>/documents", methods=["POST"])
def firm_document_upload(firm_id: int):
    firm = load(Firm, firm_id, "firm.edit")
    form = FirmDocumentForm()

    def attach():
        upload = form.file.data
        return services.attach_firm_document(firm, form.kind.data, upload.filename, upload.read(), current_user)

    return _firm_form(firm, form, attach, "doc_form", anchor="#documents",
                      message=lambda doc: f"已上传{doc.kind.label}：{doc.file.original_name}。")


@bp.route("/firms/<int:firm_id>/documents/<int:doc_id>")
def firm_document(firm_id: int, doc_id: int):
    firm = load(Firm, firm_id, "firm.document.view")
    return send_stored(load_child(FirmDocument, doc_id, firm_id=firm.id).file)


# --- firms: staff roster ---------------------------------------------------------------------------

@bp.route("/firms/<int:firm_id>/staff/new", methods=["GET", "POST"])
def staff_new(firm_id: int):
    firm = load(Firm, firm_id, "firm.staff.manage")
    form = StaffForm()

    def add():
        data = services.StaffInput(
            name=form.name.data, id_number=form.id_number.data, role=form.role.data,
            years_experience=form.years_experience.data, title=form.title.data, phone=form.phone.data,
            certificates=[(entry.kind.data, entry.number.data) for entry in form.certificates])
        return services.add_staff(firm, data, current_user)

    return handle_form(form, add, message=lambda staff: f"已将 {staff.name} 加入人员名册。",
                       to=url_for(".firm_detail", firm_id=firm.id) + "#staff",
                       failed=form_page("registry/staff_form.html", form=form, firm=firm))


@bp.route("/firms/<int:firm_id>/staff/<int:staff_id>/deactivate", methods=["POST"])
def staff_deactivate(firm_id: int, staff_id: int):
    firm = load(Firm, firm_id, "firm.staff.manage")
    staff = load_child(FirmStaff, staff_id, firm_id=firm.id)
    form = ReasonForm()
    return _firm_form(firm, form, lambda: services.deactivate_staff(staff, current_user, form.reason.data), "staff_form",
                      message=f"已将 {staff.name} 移出人员名册。", anchor="#staff", staff_target=staff_id)


# --- firms: recusal relations ----------------------------------------------------------------------

@bp.route("/firms/<int:firm_id>/relations/new", methods=["GET", "POST"])
def relation_new(firm_id: int):
    firm = load(Firm, firm_id, "firm.relation.manage")
    form = RelationForm()
    form.bureau_id.choices = _bureau_choices()
    form.budget_unit_id.choices = _budget_unit_choices()
    return handle_form(form, lambda: services.add_relation(
        firm, kind=form.kind.data, bureau_id=form.bureau_id.data, budget_unit_id=form.budget_unit_id.data,
        start_date=form.start_date.data, end_date=form.end_date.data, note=form.note.data, actor=current_user),
        message="回避关系已登记。", to=url_for(".firm_detail", firm_id=firm.id) + "#relations",
        failed=form_page("registry/relation_form.html", form=form, firm=firm))


@bp.route("/firms/<int:firm_id>/relations/<int:relation_id>/end", methods=["POST"])
def relation_end(firm_id: int, relation_id: int):
    firm = load(Firm, firm_id, "firm.relation.manage")
    relation = load_child(FirmRelation, relation_id, firm_id=firm.id)
    form = EndRelationForm()
    return _firm_form(firm, form, lambda: services.end_relation(relation, form.end_date.data, current_user, form.reason.data),
                      "relation_form", message="回避关系已结束。", anchor="#relations", relation_target=relation_id)


# --- firms: the firm's own accounts (机构账号管理) ------------------------------------------------------

def _render_firm_users(firm: Firm, status: int = 200, *, form: FirmUserForm | None = None,
                       remove_form: ReasonForm | None = None, remove_target: int | None = None,
                       new_link: dict | None = None):
    return render_template(
        "registry/firm_users.html", firm=firm, users=services.firm_users(firm),
        form=form or FirmUserForm(formdata=None), remove_form=remove_form or ReasonForm(formdata=None),
        remove_target=remove_target, new_link=new_link, status_label=accounts.status_label,
        link_days=accounts.lifetime_text(accounts.LinkPurpose.ACTIVATION)), status


@bp.route("/firms/<int:firm_id>/users", methods=["GET", "POST"])
def firm_users(firm_id: int):
    """The firm administrator's page: the firm's accounts; add one (its activation link is shown once)."""
    firm = load(Firm, firm_id, "firm.users.manage")
    if request.method == "GET":
        return _render_firm_users(firm)
    form = FirmUserForm()
    done, result, status = submit_form(form, lambda: services.add_firm_user(
        firm, current_user, username=form.username.data, display_name=form.display_name.data,
        email=form.email.data, phone=form.phone.data, firm_admin=bool(form.firm_admin.data)))
    if not done:
        return _render_firm_users(firm, status, form=form)
    user, token = result
    flash(f"已添加账户 {user.username}。请把下方激活链接交给本人。", "success")
    return _render_firm_users(firm, new_link=_shown_once(user, token, accounts.LinkPurpose.ACTIVATION))


@bp.route("/firms/<int:firm_id>/users/<int:user_id>/remove", methods=["POST"])
def firm_user_remove(firm_id: int, user_id: int):
    """Remove (disable) one of the firm's accounts: its sessions end, its API tokens and links stop working."""
    firm = load(Firm, firm_id, "firm.users.manage")
    target = load_child(User, user_id, firm_id=firm.id)
    form = ReasonForm()
    return handle_form(form, lambda: services.remove_firm_user(firm, target, current_user, form.reason.data or ""),
                       message=f"已移除账户 {target.username}：其所有登录已退出，API 令牌已撤销。",
                       to=url_for(".firm_users", firm_id=firm.id),
                       failed=lambda status: _render_firm_users(firm, status, remove_form=form, remove_target=target.id))


# --- a firm not yet admitted: its accounts reach the application only --------------------------------
# The permission rules refuse such accounts every action but the application's (permissions.py); this gate
# refuses, as well, the pages that check no action (lists scoped to the firm's rows, the firm's credit page).

APPLICANT_ENDPOINTS = frozenset({
    "registry.firm_detail", "registry.firm_edit", "registry.firm_document_upload", "registry.firm_document",
    "registry.staff_new", "registry.staff_deactivate", "registry.relation_new", "registry.relation_end",
    "registry.firm_status",  # 重新申请入库 after a refusal (the service asks "firm.reapply")
    "registry.firm_register", "core.dashboard", "core.login", "core.logout", "static",
    "review.inbox", "review.inbox_read", "review.inbox_read_all",
})


@bp.before_app_request
def _applicants_reach_the_application_only():
    endpoint = request.endpoint or ""
    # their own account pages (password, sign-out, links) and the public pages stay open; the API is not a
    # page: its caller is the bearer token's account, never the cookie's (which is not even read for it)
    if (endpoint in APPLICANT_ENDPOINTS or endpoint.startswith(("public.", "api."))
            or request.path.startswith(("/account", "/login"))):
        return None
    if current_user.is_authenticated and permissions.limited_to(current_user) is not None:
        abort(403)
    return None


# --- experts: list ---------------------------------------------------------------------------------

EXPERT_FILTERS = (
    Filter("q", str, lambda stmt, q: stmt.where(sa.or_(Expert.name.contains(q, autoescape=True),
                                                       Expert.employer.contains(q, autoescape=True)))),
    field_filter(Expert),
    enum_filter("status", ExpertStatus, Expert.status),
    enum_filter("title", ProfessionalTitle, Expert.title),
)


def _eligibility_text(reasons: list[str]) -> str:
    return "；".join(reasons) if reasons else "符合"


def _availability_text(expert: Expert) -> str:
    if expert.available:
        return "可参加评审"
    return "暂不可用" + (f"（至 {expert.unavailable_until:%Y-%m-%d}）" if expert.unavailable_until else "")


def _expert_rows(experts: list[Expert]) -> list[dict]:
    fields = Expert.fields_of(e.id for e in experts)
    return [{
        "姓名": e.name, "身份证号码（掩码）": e.id_number_masked, "工作单位": e.employer, "职称": e.title.label,
        "学历": e.degree.label, "从业年限": e.years_in_field, "出生年份": e.birth_year,
        "业务领域": _labels(fields[e.id]), "所属专家库": e.bureau.name, "状态": e.status.label,
        "可用状态": _availability_text(e), "入库条件": _eligibility_text(services.expert_eligibility(e)),
        "联系电话": e.phone or "", "电子邮箱": e.email or "",
    } for e in experts]


EXPERT_EXPORT = Export("专家库", ["姓名", "身份证号码（掩码）", "工作单位", "职称", "学历", "从业年限", "出生年份",
                                "业务领域", "所属专家库", "状态", "可用状态", "入库条件", "联系电话", "电子邮箱"], _expert_rows)


@bp.route("/experts")
def expert_list():
    require("expert.list")
    experts = Listing(lambda: scoped(Expert), *EXPERT_FILTERS, options=[joinedload(Expert.bureau)],
                      order_by=[Expert.id.desc()], keep="experts")
    if wants_export():
        return experts.export(EXPERT_EXPORT)
    # the page, its count and each expert's fields at once; built once per scope and filters, like the list
    page = experts.page(extra=permissions.kept(current_user, "experts.extra", lambda: [Expert.fields_column()]),
                        total=counts.list_total(current_user, experts, Expert))
    return render_template(
        "registry/expert_list.html", page=page, filters=experts.filters,
        fields={e.id: Expert.parse_fields(row["fields"]) for e, row in zip(page.items, page.extra)},
        eligibility={e.id: services.expert_eligibility(e) for e in page.items},
        availability={e.id: _availability_text(e) for e in page.items},
        ExpertStatus=ExpertStatus, ProfessionalTitle=ProfessionalTitle, Field=Field,
        can_create=can_in_own_bureau("expert.create"), can_import=can_in_own_bureau("registry.import"))


# --- experts: entry, detail, edit ------------------------------------------------------------------

def _expert_input(form: ExpertForm) -> services.ExpertInput:
    return services.ExpertInput(
        name=form.name.data, id_number=(form.id_number.data or "").strip(), employer=form.employer.data,
        title=form.title.data, degree=form.degree.data, years_in_field=form.years_in_field.data,
        birth_year=form.birth_year.data, fields=form.fields.data or [], phone=form.phone.data, email=form.email.data)


@bp.route("/experts/new", methods=["GET", "POST"])
def expert_new():
    bureau = own_bureau("expert.create")
    form = ExpertForm()
    return handle_form(form, lambda: services.create_expert(_expert_input(form), bureau, current_user),
                       message=lambda expert: f"已将 {expert.name} 录入专家库。",
                       to=lambda expert: url_for(".expert_detail", expert_id=expert.id),
                       failed=form_page("registry/expert_form.html", form=form, bureau=bureau, expert=None,
                                        title="录入专家"))


# --- upload progress (static/upload_progress.js) ----------------------------------------------------
# A form marked data-upload-progress is sent by XMLHttpRequest, which follows the answer's redirect with
# this header. That GET gets an empty 204 instead of the page, so the flash messages stay in the session
# for the real navigation the script then makes to the same URL. (App-wide; it belongs in core/web.py.)
UPLOAD_PROBE_HEADER = "X-Upload-Progress"


@bp.before_app_request
def _upload_progress_landing():
    if request.method == "GET" and request.headers.get(UPLOAD_PROBE_HEADER):
        return "", 204, {"X-Upload-Landing": "1", "Cache-Control": "no-store"}
    return None


def _expert_actions(expert: Expert) -> list[tuple[str, str]]:
    return [(a.action, a.label) for a in services.available_expert_actions(expert, current_user)]


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
        **_expert_account_context(expert, forms.get("new_link")),
    ), status


def _expert_account_context(expert: Expert, new_link: dict | None) -> dict[str, Any]:
    """The 账号 card: shown to the expert's bureau (who may open it), not to the expert or other bureaus."""
    if not permissions.can(current_user, "expert.account", expert):
        return {"account_card": False}
    account = services.expert_account(expert)
    return {
        "account_card": True, "account": account,
        "account_status": accounts.status_label(account) if account else None,
        "account_expiry": accounts.pending_expiry(account) if account is not None and account.awaiting_activation else None,
        "can_reset": account is not None and permissions.can(current_user, "expert.account_reset", expert),
        "link_days": accounts.lifetime_text(accounts.LinkPurpose.ACTIVATION),
        "account_form": ReasonForm(formdata=None), "new_link": new_link,
    }


def _shown_once(user, token: str, purpose) -> dict[str, Any]:
    """The link to show on this one page (never stored, never flashed), e-mailed too when possible. Called
    after the commit, so a mail failure cannot undo the account."""
    emailed = accounts.email_link(user, token, purpose)
    return {"url": accounts.link_url(token, purpose), "purpose": accounts.LinkPurpose(purpose).label,
            "username": user.username, "emailed_to": user.email if emailed else None,
            "lifetime": accounts.lifetime_text(accounts.LinkPurpose(purpose))}


@bp.route("/experts/<int:expert_id>")
def expert_detail(expert_id: int):
    return _render_expert(load(Expert, expert_id, "expert.view"))


def _account_button(call) -> tuple[bool, Any, int]:
    """A CSRF-protected button running ``call``: 400 for a bad token; a refused input (422) is flashed in
    Chinese above the page it came from."""
    form = ReasonForm()
    done, result, status = submit_form(form, call)
    if not done:
        if not form.form_errors:
            abort(400)
        for message in form.form_errors:
            flash(message, "danger")
    return done, result, status


def _account_action(render, reissue: bool, *, open_account, reissue_link, opened):
    """开通账号, or when ``reissue`` 重新签发链接 (experts and firms alike): ``open_account`` / ``reissue_link``
    return (user, token[, purpose]); refused, the page (``render``) again with the reason flashed; done, the
    page with the link shown once (200, no redirect) and ``opened(user)`` or the reissue sentence flashed."""
    done, result, status = _account_button(reissue_link if reissue else open_account)
    if not done:
        return render(status)
    user, token, purpose = result if len(result) == 3 else (*result, accounts.LinkPurpose.ACTIVATION)
    flash(f"已为账号 {user.username} 重新签发{purpose.label}链接，此前未使用的链接已失效。" if reissue
          else opened(user), "success")
    return render(new_link=_shown_once(user, token, purpose))


@bp.route("/experts/<int:expert_id>/account", methods=["POST"], endpoint="expert_account_open",
          defaults={"reissue": False})
@bp.route("/experts/<int:expert_id>/account/link", methods=["POST"], endpoint="expert_account_link",
          defaults={"reissue": True})
def expert_account(expert_id: int, reissue: bool):
    """开通账号, or 重新签发链接 (a new activation link, or once activated a password-reset link): the page
    answers with the link itself, once (200, no redirect)."""
    expert = load(Expert, expert_id, "expert.account")
    return _account_action(partial(_render_expert, expert), reissue,
                           open_account=lambda: services.open_expert_account(expert, current_user),
                           reissue_link=lambda: services.reissue_expert_link(expert, current_user),
                           opened=lambda user: f"已为专家 {expert.name} 开通账号，用户名 {user.username}。"
                                               "请把下方激活链接交给专家本人。")


@bp.route("/experts/<int:expert_id>/edit", methods=["GET", "POST"])
def expert_edit(expert_id: int):
    expert = load(Expert, expert_id, "expert.edit")
    data = None
    if request.method == "GET":
        data = {"name": expert.name, "id_number": expert.id_number_masked, "employer": expert.employer,
                "title": expert.title.value, "degree": expert.degree.value, "years_in_field": str(expert.years_in_field),
                "birth_year": str(expert.birth_year), "fields": [f.value for f in expert.fields],
                "phone": expert.phone, "email": expert.email}
    form = ExpertForm(data=data)
    return handle_form(form, lambda: services.update_expert(expert, _expert_input(form), current_user),
                       message="专家信息已保存。", to=url_for(".expert_detail", expert_id=expert.id),
                       failed=form_page("registry/expert_form.html", form=form, bureau=expert.bureau, expert=expert,
                                        title=f"修改专家信息：{expert.name}"))


def _expert_form(expert: Expert, form, call, form_key: str, *, message: Any):
    """``handle_form`` for a form on the expert page: done, back to that page; otherwise the page again with
    the form (as ``form_key``) and its errors."""
    return detail_form(form, call, form_key, message=message, render=partial(_render_expert, expert),
                       to=url_for(".expert_detail", expert_id=expert.id))


@bp.route("/experts/<int:expert_id>/status", methods=["POST"])
def expert_status(expert_id: int):
    expert = load(Expert, expert_id, "expert.view")
    form = ExpertStatusForm()
    return _expert_form(expert, form, lambda: services.change_expert_status(
        expert, form.action.data, form.reason.data, current_user), "status_form",
        message=lambda _: f"专家 {expert.name} 现为“{expert.status.label}”。")


@bp.route("/experts/<int:expert_id>/availability", methods=["POST"])
def expert_availability(expert_id: int):
    expert = load(Expert, expert_id, "expert.self")
    form = AvailabilityForm()
    return _expert_form(expert, form, lambda: services.set_expert_availability(
        expert, available=form.available.data == "1", until=form.until.data, note=form.note.data, actor=current_user),
        "availability_form", message="可用状态已更新。")


@bp.route("/experts/<int:expert_id>/ties/new", methods=["GET", "POST"])
def tie_new(expert_id: int):
    expert = load(Expert, expert_id, "expert.self")
    form = TieForm()
    firms = db.session.execute(scoped(Firm).order_by(Firm.name)).scalars()
    form.firm_id.choices = [BLANK] + [choice(f.id, f.name) for f in firms]
    form.bureau_id.choices = _bureau_choices()
    form.budget_unit_id.choices = _budget_unit_choices()
    return handle_form(form, lambda: services.add_expert_tie(
        expert, kind=form.kind.data, counterpart_type=form.counterpart_type.data,
        counterpart_name=form.counterpart_name.data, firm_id=form.firm_id.data, bureau_id=form.bureau_id.data,
        budget_unit_id=form.budget_unit_id.data, start_date=form.start_date.data, end_date=form.end_date.data,
        note=form.note.data, actor=current_user),
        message="关联关系已申报。", to=url_for(".expert_detail", expert_id=expert.id) + "#ties",
        failed=form_page("registry/tie_form.html", form=form, expert=expert))


# --- Excel import ----------------------------------------------------------------------------------

def _import_kind(kind: str) -> dict[str, str]:
    spec = IMPORT_KINDS.get(kind)
    if spec is None:
        abort(404)
    return spec


@bp.route("/imports/<kind>", methods=["GET", "POST"])
def registry_import(kind: str):
    spec = _import_kind(kind)
    bureau = own_bureau("registry.import")
    return xlsx_import(ImportForm(), spec["job"], f"批量导入{spec['noun']}", {"bureau_id": bureau.id},
                       bureau_id=bureau.id, template="registry/import.html", kind=kind, spec=spec, bureau=bureau)


@bp.route("/imports/<kind>/template")
def import_template(kind: str):
    spec = _import_kind(kind)
    own_bureau("registry.import")
    return xlsx_response(template_xlsx(kind), f"{spec['noun']}导入模板.xlsx")


from evalhub.registry import people_views  # noqa: E402  (a person's record page, issue 14)

people_views.register(bp)
