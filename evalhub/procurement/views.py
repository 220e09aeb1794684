"""Procurement pages: annual plans, engagements and their timeline, procurement (bids, committee, scores,
award), contracts; and, for firms, the marketplace, bidding and their workspace.

Thin routes: check permission (``load`` / ``require``), call a service, commit, redirect. A service's
``ValidationFailed`` is rolled back and shown beside the form with HTTP 422 (nothing written);
``Conflict`` and ``PermissionDenied`` propagate to the app's error handlers (409 / 403).

Sealing: bids are read only through ``permissions.scope(..., Bid)``, which hides every bid from the
bureau until it is opened and shows a firm only its own. Firm users never reach the bureau's
procurement page (committee names, other firms' bids); they are sent to their own bid page.
"""
from __future__ import annotations

from functools import partial
from dataclasses import dataclass
from datetime import datetime, time, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, Optional

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core import audit, permissions
from evalhub.core.enums import BUREAU_SIDE, Role
from evalhub.core.errors import Conflict, DomainError, ValidationFailed
from evalhub.core.listing import (
    Export,
    Filter,
    Listing,
    enum_filter,
    enum_value,
    looked_up,
    paginate,
    text_filter,
    year_filter,
)
from evalhub.core.models import Bureau, BudgetUnit, DrawStatus, User
from evalhub.core.timeutil import BEIJING, beijing_today, format_beijing, to_beijing, utcnow
from evalhub.core.web import (
    button,
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
    wants_export,
    xlsx_import,
    xlsx_response,
)
from evalhub.extensions import db
from evalhub.procurement import amendments, contract_notices, counts, eligibility, media, page, periods, services, workflow
from evalhub.procurement.forms import (
    BLANK,
    AmendmentForm,
    AwardForm,
    BidForm,
    ChallengeAnswerForm,
    ChallengeForm,
    ContractForm,
    DrawCommitteeForm,
    EnterCommitteeForm,
    ExplanationForm,
    FailForm,
    FrameworkForm,
    MakeUpCommitteeForm,
    ReformCommitteeForm,
    ImportForm,
    JustificationDecisionForm,
    DeadlineForm,
    OpenBidsForm,
    PlanApproveForm,
    PlanItemForm,
    PlanNewForm,
    ProcurementForm,
    ScoreForm,
    SingleSourceApprovalForm,
    SpendingForm,
    TransitionForm,
    WithdrawForm,
    choice,
)
from evalhub.procurement.imports import plan_template_xlsx, plan_xlsx
from evalhub.procurement.models import (
    Award,
    Bid,
    BidStatus,
    BidTeamMember,
    Challenge,
    ChallengeEvidence,
    ChallengeStatus,
    CommitteeMember,
    Contract,
    ContractNotice,
    Engagement,
    EngagementState,
    EvaluationPlan,
    FrameworkAgreement,
    FrameworkMember,
    JustificationDecision,
    PlanItem,
    PlanStatus,
    Procurement,
    ProcurementAmendment,
    ProcurementMethod,
    ProcurementStatus,
    TechnicalScore,
)
from evalhub.registry.models import Firm, FirmStatus

bp = Blueprint("procurement", __name__)

TEN_THOUSAND = Decimal("10000")

# State-machine steps that need more than a button: they are done on the page that records what goes
# with them (the procurement, the contract, the submitted document, the expert panel, the result) and
# whose service performs the transition. The engagement page links there instead of offering a bare
# button; a step whose page is not installed falls back to the plain transition button.
ELSEWHERE: dict[str, str] = {
    "start_procurement": "procurement.procure",
    "rerun_procurement": "procurement.procure",
    "fail_procurement": "procurement.procurement_detail",
    "sign_contract": "procurement.contract",
    "submit_plan": "review.submission_new",
    "resubmit_plan": "review.submission_new",
    "submit_report": "review.submission_new",
    "resubmit_report": "review.submission_new",
    "start_plan_review": "review.panel_new",
    "approve_plan": "review.panel_new",
    "return_plan": "review.panel_new",
    "start_report_review": "review.panel_new",
    "accept_report": "review.panel_new",
    "return_report": "review.panel_new",
    "accept_with_deduction": "review.result",
    "publish": "review.result",
    "withhold": "review.result",
}


def _elsewhere_url(engagement: Engagement, action: str) -> str | None:
    """The page where ``action`` is done for ``engagement``, or None when it is a plain button here."""
    endpoint = ELSEWHERE.get(action)
    if endpoint is None or endpoint not in current_app.view_functions:
        return None
    if endpoint == "procurement.procurement_detail":
        p = engagement.current_procurement
        return url_for(endpoint, procurement_id=p.id) + "#fail" if p else None
    return url_for(endpoint, engagement_id=engagement.id)


# --- small helpers ---------------------------------------------------------------------------------

def _wan(value: Optional[Decimal]) -> str:
    if value is None:
        return ""
    return f"{(value / TEN_THOUSAND).quantize(Decimal('0.01')):f}"


def _to_utc(value: Optional[datetime]) -> Optional[datetime]:
    """A Beijing local time from a datetime-local input → naive UTC, as stored."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=BEIJING)
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _date(value) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def _is_firm() -> bool:
    return current_user.role == Role.FIRM_USER


def _scoped_bids(procurement: Procurement, *options: Any) -> list[Bid]:
    stmt = sa.select(Bid).where(Bid.procurement_id == procurement.id).order_by(Bid.id).options(*options)
    return db.session.execute(scoped(Bid, stmt)).scalars().all()


# what the 投标 card shows of each bid (its firm, team with their roster rows, technical file), read with the bids
BID_CARD = (joinedload(Bid.firm), joinedload(Bid.technical_file),
            selectinload(Bid.team).joinedload(BidTeamMember.staff))


def _user_name(user_id: Optional[int]) -> str:
    user = db.session.get(User, user_id) if user_id else None
    return user.display_name if user else "系统"


# --- plans -----------------------------------------------------------------------------------------

PLAN_FILTERS = (year_filter(EvaluationPlan.year), enum_filter("status", PlanStatus, EvaluationPlan.status))

PLAN_EXPORT = Export("评价计划", ["财政局", "年度", "状态", "评价对象数", "金额合计（万元）", "批准时间（北京）"], lambda plans: [
    {"财政局": p.bureau.name, "年度": p.year, "状态": p.status.label, "评价对象数": len(p.items),
     "金额合计（万元）": float(p.total_amount / TEN_THOUSAND), "批准时间（北京）": to_beijing(p.approved_at)}
    for p in plans])


@bp.route("/plans")
def plan_list():
    require("plan.list")
    plans = Listing(lambda: scoped(EvaluationPlan).join(Bureau, Bureau.id == EvaluationPlan.bureau_id), *PLAN_FILTERS,
                    options=[selectinload(EvaluationPlan.bureau), selectinload(EvaluationPlan.items)],
                    order_by=[EvaluationPlan.year.desc(), Bureau.path], keep="plans")
    if wants_export():
        return plans.export(PLAN_EXPORT)
    return render_template("procurement/plan_list.html", page=plans.page(), filters=plans.filters,
                           PlanStatus=PlanStatus, can_create=can_in_own_bureau("plan.edit_bureau"))


@bp.route("/plans/new", methods=["GET", "POST"])
def plan_new():
    bureau = own_bureau("plan.edit_bureau")
    form = PlanNewForm(data={"year": str(beijing_today().year + 1)} if request.method == "GET" else None)

    def create():
        try:
            year = int((form.year.data or "").strip())
        except ValueError:
            raise ValidationFailed("年度必须是 4 位数字。", {"year": "年度必须是 4 位数字"})
        plan, created = services.ensure_plan(bureau, year, current_user)
        return plan, not created

    return handle_form(form, create, to=lambda result: url_for(".plan_detail", plan_id=result[0].id),
                       message=lambda result: (f"{result[0].year} 年度计划已存在，已为您打开。", "info") if result[1]
                       else f"已创建 {result[0].year} 年度重点绩效评价计划。",
                       failed=form_page("procurement/plan_new.html", form=form, bureau=bureau))


def _unit_choices(bureau: Bureau) -> list:
    units = db.session.execute(
        sa.select(BudgetUnit).join(Bureau, Bureau.id == BudgetUnit.bureau_id)
        .where(Bureau.path.startswith(bureau.path)).options(selectinload(BudgetUnit.bureau))
        .order_by(Bureau.path, BudgetUnit.name)).scalars().all()
    return [choice(str(u.id), f"{u.bureau.short_name} · {u.name}") for u in units]


def _item_form(plan: EvaluationPlan, item: PlanItem | None = None, *, data: dict | None = None) -> PlanItemForm:
    if item is not None and request.method == "GET":
        data = {"name": item.name, "object_type": item.object_type.value, "budget_kind": item.budget_kind.value,
                "field": item.field.value, "service_kind": item.service_kind.value, "amount_wan": _wan(item.amount),
                "budget_unit_id": str(item.budget_unit_id), "reason": item.reason,
                "commissioner_unit_id": str(item.commissioner_unit_id or "")}
    form = PlanItemForm(data=data)
    units = _unit_choices(plan.bureau)
    form.budget_unit_id.choices = [BLANK] + units
    form.commissioner_unit_id.choices = [choice("", f"{plan.bureau.name}（本级财政局委托）")] + units
    return form


def _item_input(form: PlanItemForm) -> services.PlanItemInput:
    return services.PlanItemInput(
        name=form.name.data, object_type=form.object_type.data, budget_kind=form.budget_kind.data,
        field=form.field.data, amount_wan=form.amount_wan.data, budget_unit_id=form.budget_unit_id.data,
        reason=form.reason.data, commissioner_unit_id=form.commissioner_unit_id.data or None,
        service_kind=form.service_kind.data or None)


# Registration point for the plan page: a higher level adds a line under each plan item without procurement
# importing it — results registers last year's confirmed results application for the same unit and project
# (闭环), so a bureau sees it when planning. fn(items) -> {item_id: text}.
PLAN_ITEM_CONTEXT: list[Callable[[list[PlanItem]], dict[int, str]]] = []


def plan_item_context(fn: Callable[[list[PlanItem]], dict[int, str]]) -> Callable[[list[PlanItem]], dict[int, str]]:
    PLAN_ITEM_CONTEXT.append(fn)
    return fn


def _item_contexts(items: list[PlanItem]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for fn in PLAN_ITEM_CONTEXT:
        for item_id, text in (fn(items) or {}).items():
            if text:
                out.setdefault(item_id, []).append(text)
    return out


def _render_plan(plan: EvaluationPlan, status: int = 200, **forms: Any):
    draft = plan.status == PlanStatus.DRAFT
    items = services.plan_items(plan)
    return render_template(
        "procurement/plan_detail.html", plan=plan, items=items, PlanStatus=PlanStatus,
        item_contexts=_item_contexts(items),
        checks=services.plan_checks(plan) if draft else [],
        item_form=forms.get("item_form") or (_item_form(plan) if draft else None),
        approve_form=forms.get("approve_form") or PlanApproveForm(),
        can_edit=draft and permissions.can(current_user, "plan.edit", plan),
        can_approve=draft and permissions.can(current_user, "plan.approve", plan),
    ), status


@bp.route("/plans/<int:plan_id>")
def plan_detail(plan_id: int):
    plan = load(EvaluationPlan, plan_id, "plan.view")
    if wants_export():
        return xlsx_response(plan_xlsx(plan), f"{plan.bureau.short_name}{plan.year}年度重点绩效评价计划.xlsx")
    return _render_plan(plan)


@bp.route("/plans/<int:plan_id>/items", methods=["GET", "POST"])
def plan_item_add(plan_id: int):
    if request.method == "GET":  # a refresh after a refused form lands here: show the plan
        return redirect(url_for(".plan_detail", plan_id=load(EvaluationPlan, plan_id, "plan.view").id))
    plan = load(EvaluationPlan, plan_id, "plan.edit")
    form = _item_form(plan)
    return handle_form(form, lambda: services.add_plan_item(plan, _item_input(form), current_user),
                       message=lambda item: f"已添加评价对象：{item.name}。",
                       to=url_for(".plan_detail", plan_id=plan.id) + "#items",
                       failed=lambda status: _render_plan(plan, status, item_form=form))


@bp.route("/plans/<int:plan_id>/items/<int:item_id>/edit", methods=["GET", "POST"])
def plan_item_edit(plan_id: int, item_id: int):
    plan = load(EvaluationPlan, plan_id, "plan.edit")
    item = load_child(PlanItem, item_id, plan_id=plan.id)
    if plan.status != PlanStatus.DRAFT:
        raise Conflict(f"{plan.year} 年度计划已批准，不能再修改评价对象。")
    form = _item_form(plan, item)
    return handle_form(form, lambda: services.update_plan_item(item, _item_input(form), current_user),
                       message=lambda _: f"已保存评价对象：{item.name}。",
                       to=url_for(".plan_detail", plan_id=plan.id) + "#items",
                       failed=form_page("procurement/plan_item_form.html", form=form, plan=plan, item=item))


@bp.route("/plans/<int:plan_id>/items/<int:item_id>/delete", methods=["POST"])
def plan_item_delete(plan_id: int, item_id: int):
    plan = load(EvaluationPlan, plan_id, "plan.edit")
    item = load_child(PlanItem, item_id, plan_id=plan.id)
    return button(lambda: services.delete_plan_item(item, current_user), form=OpenBidsForm(),
                  message=f"已删除评价对象：{item.name}。", to=url_for(".plan_detail", plan_id=plan.id) + "#items")


@bp.route("/plans/<int:plan_id>/approve", methods=["POST"])
def plan_approve(plan_id: int):
    plan = load(EvaluationPlan, plan_id, "plan.approve")
    form = PlanApproveForm()
    return handle_form(form, lambda: services.approve_plan(
        plan, current_user, warnings_reason=form.warnings_reason.data),
        message=lambda engagements: f"{plan.year} 年度计划已批准，生成 {len(engagements)} 个评价任务。",
        to=url_for(".plan_detail", plan_id=plan.id), failed=lambda status: _render_plan(plan, status, approve_form=form))


@bp.route("/plans/<int:plan_id>/import", methods=["GET", "POST"])
def plan_import(plan_id: int):
    plan = load(EvaluationPlan, plan_id, "plan.edit")
    if plan.status != PlanStatus.DRAFT:
        raise Conflict(f"{plan.year} 年度计划已批准，不能再导入评价对象。")
    return xlsx_import(ImportForm(), "import.plan_items", f"导入{plan.bureau.short_name} {plan.year} 年度计划",
                       {"plan_id": plan.id}, bureau_id=plan.bureau_id, template="procurement/plan_import.html", plan=plan)


@bp.route("/plans/template.xlsx")
def plan_template():
    require("plan.list")
    return xlsx_response(plan_template_xlsx(), "评价计划导入模板.xlsx")


# --- engagements -----------------------------------------------------------------------------------

ENGAGEMENT_FILTERS = (
    year_filter(Engagement.year), enum_filter("state", EngagementState, Engagement.state),
    text_filter("q", Engagement.name, Engagement.reference),
    # the rule itself (contract dates, rectification deadlines) is the workflow's, in SQL: the list, the
    # dashboard and the engagement page always agree
    Filter("overdue", bool, lambda stmt, _: stmt.where(workflow.overdue_clause())),
    # the contract announcement past its 2 working days (实施条例 第五十条): the bureau's own obligation beside the
    # step the engagement waits on (``contract_notices.overdue_clause``, its day read when the statement runs)
    Filter("notice_overdue", bool, lambda stmt, _: stmt.where(Engagement.id.in_(contract_notices.overdue_engagements()))),
    # a result notice not posted on the designated media past its 2 working days (87号令 第六十九条): the bureau's too
    Filter("result_overdue", bool, lambda stmt, _: stmt.where(Engagement.id.in_(media.result_overdue_engagements()))),
)


def _engagement_rows(engagements) -> Iterator[dict]:
    chunk: list[Engagement] = []
    for e in [*engagements, None]:  # the overdue reasons of every 500 rows in two queries
        if e is not None:
            chunk.append(e)
        if chunk and (e is None or len(chunk) == 500):
            reasons = workflow.overdue_reasons(chunk)
            yield from (_engagement_row(row, reasons.get(row.id)) for row in chunk)
            chunk = []


def _engagement_row(e: Engagement, overdue: str | None) -> dict:
    c = e.contract
    notice = contract_notices.overdue_reason(c.notice_due_on) if c is not None and not _is_firm() else None
    overdue = "；".join(r for r in (overdue, notice) if r) or None
    return {"任务编号": e.reference, "评价对象": e.name, "年度": e.year, "委托事项": e.service_kind.label,
            "业务领域": e.field.label, "财政局": e.bureau.name, "被评价单位": e.budget_unit.name,
            "委托方": e.commissioner_name, "金额（万元）": float(e.amount / TEN_THOUSAND), "状态": e.state.label,
            "承担机构": e.firm.name if e.firm else "", "合同金额（万元）": float(c.amount / TEN_THOUSAND) if c else None,
            "实施方案期限": c.plan_due if c else None, "评价报告期限": c.report_due if c else None,
            "逾期情况": overdue or ""}


ENGAGEMENT_EXPORT = Export("评价任务", [
    "任务编号", "评价对象", "年度", "委托事项", "业务领域", "财政局", "被评价单位", "委托方", "金额（万元）", "状态",
    "承担机构", "合同金额（万元）", "实施方案期限", "评价报告期限", "逾期情况"], _engagement_rows)


ENGAGEMENT_ORDER = (Engagement.year.desc(), Engagement.reference)


def _engagement_list_columns() -> sa.Select:
    """What the engagement list shows, as plain columns: ``overdue_reasons`` reads ``id``, ``state`` and
    ``due_on`` from the rows as from engagements. The names are scalar subqueries, not joins: run for the rows
    shown only, and left out of the count. Joined, PostgreSQL spent more planning the page than running it,
    counted the overdue list through every join, and hashed every firm and unit to name a page of a few dozen
    overdue rows, so the page grew with the registry (2× province: 0.67 → 0.16 ms planning, 0.57 → 0.27 ms
    running, in psql)."""
    return sa.select(Engagement.id, Engagement.reference, Engagement.name, Engagement.amount, Engagement.state,
                     Engagement.due_on, looked_up(Bureau.short_name, Engagement.bureau_id).label("bureau_short_name"),
                     looked_up(BudgetUnit.name, Engagement.budget_unit_id).label("unit_name"),
                     looked_up(Firm.name, Engagement.firm_id).label("firm_name"),
                     # the contract announcement's day while owed (实施条例 第五十条): by the contract's unique key
                     sa.select(Contract.notice_due_on).where(Contract.engagement_id == Engagement.id)
                     .scalar_subquery().label("notice_due_on"),
                     # evalhub's own copy out while still owed: not yet recorded on the designated media
                     sa.select(ContractNotice.id).join(Contract, Contract.id == ContractNotice.contract_id)
                     .where(Contract.engagement_id == Engagement.id).scalar_subquery().label("notice_here"),
                     # the earliest result notice still owed on the designated media (87号令 第六十九条)
                     media.result_owed_due().label("result_due_on"))


@bp.route("/engagements")
def engagement_list():
    require("engagement.list")
    if wants_export():  # whole engagements: the sheet also has the contract and the commissioning unit
        return Listing(scoped(Engagement), *ENGAGEMENT_FILTERS, options=[
            joinedload(Engagement.bureau), joinedload(Engagement.budget_unit).load_only(BudgetUnit.name),
            joinedload(Engagement.firm).load_only(Firm.name), joinedload(Engagement.contract),
            joinedload(Engagement.commissioner_unit)], order_by=ENGAGEMENT_ORDER).export(ENGAGEMENT_EXPORT)
    # The page reads the columns it shows as rows, not engagements with their bureau, unit and firm as ORM
    # objects: building those was a fifth of the page (PostgreSQL, province scale: 巴州's admin 2.5 -> 1.7 ms
    # for the statement and its rows).
    engagements = Listing(lambda: scoped(Engagement, _engagement_list_columns()), *ENGAGEMENT_FILTERS,
                          order_by=ENGAGEMENT_ORDER, keep="engagements")
    page = engagements.page(total=counts.list_total(current_user, engagements), rows=True)
    today = beijing_today()
    return render_template("procurement/engagement_list.html", page=page, filters=engagements.filters,
                           EngagementState=EngagementState,
                           overdue=workflow.overdue_reasons(page.items, today),
                           # the bureau's own obligation: not the firm's list
                           notice_overdue={} if _is_firm() else {
                               e.id: "；".join(reasons) for e in page.items
                               if (reasons := [r for r in (
                                   media.result_overdue_reason(e.result_due_on, today),
                                   contract_notices.overdue_reason(e.notice_due_on, today, e.notice_here is not None))
                                   if r])})


@dataclass
class TimelineEvent:
    at: datetime
    title: str
    detail: str = ""
    who: str = ""
    note: str = ""
    kind: str = "transition"


# Transitions the review module makes when a panel's outcome is decided (recorded without a person).
PANEL_OUTCOMES = ("approve_plan", "accept_report")


def _transition_actor(user: Optional[User]) -> str:
    """Who acted, as the timeline shows it. A panel's decision is recorded with the expert whose review
    closed it: show the panel, never that expert. A firm learns which organisation acted, never which
    person (as in the API)."""
    if user is None:
        return "系统"
    if user.role == Role.EXPERT:
        return "专家评审组"
    if _is_firm():
        if user.role in permissions.BUREAU_ROLES and user.bureau:
            return user.bureau.name
        if user.role == Role.FIRM_USER and user.firm:
            return user.firm.name
        return user.role.label
    return user.display_name


def _timeline_user(user_id: Optional[int]) -> str:
    return _transition_actor(db.session.get(User, user_id) if user_id else None)


def _timeline(engagement: Engagement) -> list[TimelineEvent]:
    """Every state change, with the procurement, award and contract records around them, in order.

    Nothing here names an expert or another firm's bid: firms read this page too.
    """
    events = [TimelineEvent(t.created_at, workflow.TRANSITIONS[t.action].label if t.action in workflow.TRANSITIONS
                            else t.action, f"{t.from_state.label} → {t.to_state.label}",
                            "专家评审组" if t.actor is None and t.action in PANEL_OUTCOMES else _transition_actor(t.actor),
                            t.note or "")
              for t in engagement.transitions]
    for p in engagement.procurements:
        events.append(TimelineEvent(p.created_at, f"发起采购（{p.method.label}）", p.title, _timeline_user(p.created_by_id),
                                    p.rerun_reason or "", "procurement"))
        if p.approved_at:
            events.append(TimelineEvent(p.approved_at, "单一来源采购审批通过", p.title, _timeline_user(p.approved_by_id),
                                        kind="procurement"))
        if p.opened_at:
            events.append(TimelineEvent(p.opened_at, "开标", p.title, kind="procurement"))
        if p.award:
            a = p.award
            events.append(TimelineEvent(a.awarded_at, "定标", f"{a.firm.name}，{_wan(a.amount)} 万元",
                                        _timeline_user(a.awarded_by_id), services.award_reasons_for(a, current_user), "award"))
    if engagement.contract:
        c = engagement.contract
        events.append(TimelineEvent(c.created_at, "合同登记",
                                    f"{c.firm.name}，{_wan(c.amount)} 万元，签订于 {_date(c.signed_on)}", kind="contract"))
        if c.notice is not None:  # 合同公告 (政府采购法实施条例 第五十条)
            n = c.notice
            said = "补录（合同签订早于本系统跟踪合同公告）" if n.due_on is None else f"应于 {_date(n.due_on)} 前发布" + (
                f"，逾期 {n.late_workdays} 个工作日" if n.late_workdays else "，按期")
            events.append(TimelineEvent(n.published_at, "发布合同公告", said, _timeline_user(n.published_by_id),
                                        (n.late_reason or "") if current_user.role in BUREAU_SIDE else "",
                                        "contract"))  # the bureaus' reason: not the firm's, nor an inspecting expert's
    return sorted(events, key=lambda e: e.at)


@dataclass
class StepLink:
    url: str
    action: str  # the first step done there (for the selector)
    labels: list[str]


def _links(engagement: Engagement, actions: list) -> list[StepLink]:
    """One link per page, naming every available step that is done on it."""
    links: dict[str, StepLink] = {}
    for t in actions:
        url = _elsewhere_url(engagement, t.action)
        if url is None:
            continue
        current = engagement.current_procurement
        if t.action == "sign_contract" and not (current and current.award and services.contract_block(current) is None):
            continue  # a contract follows the award and its challenge period (the procurement page says why not)
        if url in links:
            links[url].labels.append(t.label)
        else:
            links[url] = StepLink(url, t.action, [t.label])
    return list(links.values())


def _render_engagement(engagement: Engagement, status: int = 200, transition_form: TransitionForm | None = None,
                       spending_form: SpendingForm | None = None):
    actions = workflow.available(engagement, current_user)
    procurement_rows = []
    # The bids the page shows (a firm its own; the bureau the count once opened) of every procurement at once.
    scoped_bids: dict[int, list[Bid]] = {p.id: [] for p in engagement.procurements}
    wanted = [p.id for p in engagement.procurements if _is_firm() or p.opened_at]
    if wanted:
        for b in db.session.execute(scoped(Bid, sa.select(Bid).where(Bid.procurement_id.in_(wanted))
                                           .order_by(Bid.id))).scalars():
            scoped_bids[b.procurement_id].append(b)
    for p in engagement.procurements:
        bids = scoped_bids[p.id]
        procurement_rows.append({
            "procurement": p, "own_bids": bids if _is_firm() else [],
            "valid_count": sum(1 for b in bids if b.status == BidStatus.SUBMITTED) if p.opened_at and not _is_firm() else None,
            "draws": [d for d in (p.draw, p.committee_draw) if d is not None and permissions.can(current_user, "draw.view", d)],
        })
    return render_template(
        "procurement/engagement_detail.html", e=engagement, timeline=_timeline(engagement),
        procurements=procurement_rows, overdue=workflow.overdue_reason(engagement),
        buttons=[t for t in actions if _elsewhere_url(engagement, t.action) is None],
        links=_links(engagement, actions),
        transition_form=transition_form, form=TransitionForm(),
        spending_form=spending_form or SpendingForm(data={"spent_wan": f"{engagement.spent / 10000:.2f}"} if engagement.spent is not None else None),
        can_manage=permissions.can(current_user, "procurement.manage", engagement), is_firm=_is_firm(),
        EngagementState=EngagementState,
    ), status


def _engagement_form(engagement: Engagement, form, call, form_key: str, *, message: Any):
    """``handle_form`` for a form on the engagement page: done, back to that page; otherwise the page again
    with the form (as ``form_key``) and its errors."""
    return detail_form(form, call, form_key, message=message, render=partial(_render_engagement, engagement),
                       to=url_for(".engagement_detail", engagement_id=engagement.id))


@bp.route("/engagements/<int:engagement_id>")
def engagement_detail(engagement_id: int):
    # Read into the session first (and held: the identity map is weak), so that ``load`` (404/403 as ever)
    # finds it there without a statement of its own.
    held = page.read(engagement_id)  # noqa: F841
    return _render_engagement(load(Engagement, engagement_id, "engagement.view"))


@bp.route("/engagements/<int:engagement_id>/transitions", methods=["POST"])
def engagement_transition(engagement_id: int):
    engagement = load(Engagement, engagement_id, "engagement.view")
    form = TransitionForm()
    action = form.action.data or ""
    if _elsewhere_url(engagement, action) is not None:
        label = workflow.TRANSITIONS[action].label
        raise Conflict(f"“{label}”须在相应的办理页面完成（同时记录采购、合同、提交材料或评审信息），不能直接变更状态。")
    return _engagement_form(engagement, form, lambda: workflow.perform(engagement, action, current_user, note=form.note.data),
                            "transition_form",
                            message=lambda row: f"{engagement.reference}：{row.from_state.label} → {row.to_state.label}。")


@bp.route("/engagements/<int:engagement_id>/spending", methods=["POST"])
def engagement_spending(engagement_id: int):
    engagement = load(Engagement, engagement_id, "procurement.manage")
    form = SpendingForm()
    return _engagement_form(engagement, form, lambda: services.record_spending(engagement, form.spent_wan.data, current_user),
                            "spending_form",
                            message=lambda _: f"{engagement.reference}：已记录实际支出 {form.spent_wan.data} 万元。")


# --- procurement: opening a round -------------------------------------------------------------------

def _default_deadline(engagement: Engagement) -> datetime:
    # the open tender's minimum period (the longest), so the suggestion suits every method with a deadline
    day = services.earliest_deadline_day(engagement.bureau, services.OPEN_TENDER_PERIOD, utcnow())
    return datetime.combine(day, time(17, 0), tzinfo=BEIJING)


def _procure_form(engagement: Engagement) -> ProcurementForm:
    data = None
    if request.method == "GET":
        data = {"rubric": [{"name": n, "points": f"{p:f}"} for n, p in services.DEFAULT_BID_RUBRIC],
                "bid_deadline": _default_deadline(engagement), "price_weight": "20",
                "method": request.args.get("method") or ProcurementMethod.COMPETITIVE_CONSULTATION.value}
    form = ProcurementForm(data=data)
    agreements = db.session.execute(
        sa.select(FrameworkAgreement).where(
            FrameworkAgreement.bureau_id.in_(eligibility.library_bureau_ids(engagement.bureau)))
        .order_by(FrameworkAgreement.valid_until.desc())).scalars().all()
    form.framework_agreement_id.choices = [BLANK] + [
        choice(str(a.id), f"{a.name}（{a.bureau.short_name}，{_date(a.valid_from)} 至 {_date(a.valid_until)}）")
        for a in agreements]
    single = eligibility.assess(engagement, ProcurementMethod.SINGLE_SOURCE)
    form.single_source_firm_id.choices = [BLANK] + [choice(str(f.id), f.name) for f in single.eligible]
    return form


def _procurement_input(form: ProcurementForm) -> services.ProcurementInput:
    method = form.method.data
    competitive = method in (ProcurementMethod.OPEN_TENDER.value, ProcurementMethod.COMPETITIVE_CONSULTATION.value)
    weight = (form.price_weight.data or "").strip()
    if not competitive:
        weight = weight or "0"  # no price score without bids; the field is hidden for these methods
    return services.ProcurementInput(
        method=method, title=form.title.data or "", ceiling_price_wan=form.ceiling_price_wan.data,
        price_weight=weight, bid_deadline=_to_utc(form.bid_deadline.data),
        description=form.description.data, rubric=[(row.form.name.data, row.form.points.data) for row in form.rubric],
        framework_agreement_id=form.framework_agreement_id.data or None,
        single_source_firm_id=form.single_source_firm_id.data or None,
        justification=form.justification.data, rerun_reason=form.rerun_reason.data)


@bp.route("/engagements/<int:engagement_id>/procure", methods=["GET", "POST"])
def procure(engagement_id: int):
    engagement = load(Engagement, engagement_id, "procurement.manage")
    if engagement.state not in (EngagementState.PLANNED, EngagementState.FAILED_PROCUREMENT):
        raise Conflict(f"评价任务当前状态为“{engagement.state.label}”，不能发起采购。")
    form = _procure_form(engagement)
    return handle_form(form, lambda: services.open_procurement(engagement, _procurement_input(form), current_user),
                       message=_opened, to=lambda p: url_for(".procurement_detail", procurement_id=p.id),
                       failed=lambda status: _render_procure(engagement, form, status))


def _opened(procurement: Procurement) -> str:
    if procurement.status == ProcurementStatus.AWARDED:
        return f"已发起{procurement.method.label}并确定承担机构：{procurement.award.firm.name}。"
    if procurement.status == ProcurementStatus.PENDING_APPROVAL:
        return "单一来源采购已提交，须由另一位财政局管理员审批。"
    if procurement.method == ProcurementMethod.RANDOM_DRAW and procurement.draw_id:
        return (f"已公告从机构库随机抽取评价机构（抽取 #{procurement.draw_id}）：请在抽取页面指定监督人，"
                "监督人输入数字后揭晓，随即定标。")
    return f"已发布{procurement.method.label}公告：{procurement.title}。"


def _render_procure(engagement: Engagement, form: ProcurementForm, status: int):
    """The procurement form with who is eligible (and who is excluded, why) for the method chosen."""
    method = enum_value(ProcurementMethod, form.method.data, ProcurementMethod.COMPETITIVE_CONSULTATION)
    assessment = eligibility.assess(engagement, method)
    excluded_firms = {f.id: f for f in db.session.execute(
        sa.select(Firm).where(Firm.id.in_(list(assessment.excluded) or [-1])).order_by(Firm.id)).scalars()}
    return render_template(
        "procurement/procure.html", form=form, e=engagement, assessment=assessment, method=method,
        excluded=[(excluded_firms[i], reasons) for i, reasons in assessment.excluded.items()],
        previous=engagement.current_procurement, ProcurementMethod=ProcurementMethod,
        rules=services.method_rules(engagement.bureau), eligibility_rules=eligibility.rules(engagement.bureau),
    ), status


# --- procurement: the bureau's page ---------------------------------------------------------------

def _render_procurement(p: Procurement, status: int = 200, **forms: Any):
    engagement = p.engagement
    opened = p.opened_at is not None
    bids = _scoped_bids(p, *BID_CARD) if opened else []
    results = services.evaluate(p) if opened and p.is_competitive else []
    scored = dict(db.session.execute(
        sa.select(TechnicalScore.member_id, sa.func.count(TechnicalScore.id))
        .join(CommitteeMember, CommitteeMember.id == TechnicalScore.member_id)
        .where(CommitteeMember.procurement_id == p.id).group_by(TechnicalScore.member_id)).all()) if opened else {}
    history = [ev for ev in audit.history("procurement", p.id) if opened or not ev.action.startswith("bid.")]
    can_manage = permissions.can(current_user, "procurement.manage", engagement)
    deadline_passed = p.bid_deadline is not None and utcnow() >= p.bid_deadline
    return render_template(
        "procurement/procurement_detail.html", p=p, e=engagement, opened=opened, bids=bids, results=results,
        scored=scored, history=history, can_manage=can_manage, deadline_passed=deadline_passed,
        threshold=services.low_bid_threshold(p) if opened else None,
        needs_justification=services.needs_justification,
        can_approve=(p.status == ProcurementStatus.PENDING_APPROVAL
                     and permissions.can(current_user, "procurement.approve", p) and p.created_by_id != current_user.id),
        creator=_user_name(p.created_by_id), approver=_user_name(p.approved_by_id) if p.approved_by_id else "",
        draws=[d for d in (p.draw, p.committee_draw) if d is not None and permissions.can(current_user, "draw.view", d)],
        decision_form=forms.get("decision_form"), decision_target=forms.get("decision_target"),
        draw_form=forms.get("draw_form") or DrawCommitteeForm(data={"size": "5" if p.method == ProcurementMethod.OPEN_TENDER else "3"}),
        enter_form=forms.get("enter_form") or EnterCommitteeForm(),
        make_up_form=forms.get("make_up_form") or MakeUpCommitteeForm(),
        reform_form=forms.get("reform_form") or ReformCommitteeForm(),
        shortfall=services.committee_shortfall(p) if opened else 0,
        committee_drawn=p.committee_draw is not None and p.committee_draw.status == DrawStatus.DRAWN,
        award_form=forms.get("award_form") or AwardForm(),
        fail_form=forms.get("fail_form") or FailForm(),
        # the 采购公告's posting on the designated media may leave the period short: said, the opening held back, the
        # deadline's change offered (services.change_deadline) while it may still move
        period_problem=media.procurement_period_problem(p),
        deadline_form=forms.get("deadline_form") or DeadlineForm(),
        may_change_deadline=can_manage and p.status == ProcurementStatus.OPEN and p.bid_deadline is not None
        and (not deadline_passed or periods.blocks_opening(p) is not None),
        # 澄清/更正公告 (procurement/amendments.py): listed with their postings; published while the deadline may move
        amendments=amendments.listed(p), amendment_form=forms.get("amendment_form") or AmendmentForm(),
        may_amend=p.is_competitive and p.status == ProcurementStatus.OPEN and p.bid_deadline is not None
        and (not deadline_passed or periods.blocks_opening(p) is not None)
        and permissions.can(current_user, "procurement.amend", engagement),
        may_record_posting=permissions.can(current_user, "notice.media.record", engagement),
        amendment_rule=periods.amendment_rule(services.PERIODS[p.method]) if p.is_competitive else "",
        amendment_limits=amendments.LIMITS,
        approve_form=forms.get("approve_form") or SingleSourceApprovalForm(data={"price_wan": _wan(p.ceiling_price)}),
        ProcurementStatus=ProcurementStatus, BidStatus=BidStatus, JustificationDecision=JustificationDecision,
        minimum=services.minimum_valid_bids(p) if p.is_competitive else None,
        floor=services.committee_size_floor(p),
        **_challenge_context(p, forms.get("answer_forms")),
    ), status


# what a challenge's line shows (templates/procurement/_notice.html ``challenge_line``): its evidence files
CHALLENGE_LINE = (selectinload(Challenge.evidence).joinedload(ChallengeEvidence.file),)


def _challenge_context(p: Procurement, answer_forms: dict | None = None) -> dict:
    """The result notices, the challenge period and the challenges, as both sides' pages show them."""
    challenges = db.session.execute(sa.select(Challenge).where(Challenge.procurement_id == p.id)
                                    .options(*CHALLENGE_LINE, joinedload(Challenge.firm))
                                    .order_by(Challenge.id)).scalars().all()
    forms = dict(answer_forms or {})
    for c in challenges:
        if c.status == ChallengeStatus.OPEN and c.id not in forms:
            forms[c.id] = ChallengeAnswerForm(prefix=f"c{c.id}")
    return {"notice": p.notice, "notices": p.notices, "challenges": challenges, "answer_forms": forms,
            "complaint_dates": services.complaint_dates(challenges),
            "contract_block": services.contract_block(p) if p.award is not None else None,
            "today": beijing_today(), "ChallengeStatus": ChallengeStatus}


def _procurement_form(p: Procurement, form, call, form_key: str, *, message: Any, anchor: str = "",
                      to: Any = None, category: str = "success", **context: Any):
    """``handle_form`` for a form on the procurement page: done, to ``to`` (by default back to that page, at
    ``anchor``); otherwise the page again with the form (as ``form_key``, with ``context``) and its errors."""
    return handle_form(form, call, message=message, category=category,
                       to=to if to is not None else url_for(".procurement_detail", procurement_id=p.id) + anchor,
                       failed=lambda status: _render_procurement(p, status, **{form_key: form}, **context))


def _manageable(procurement_id: int) -> Procurement:
    p = load(Procurement, procurement_id, "procurement.view")
    require("procurement.manage", p.engagement)
    return p


@bp.route("/procurements/<int:procurement_id>")
def procurement_detail(procurement_id: int):
    p = load(Procurement, procurement_id, "procurement.view")
    if _is_firm():
        return redirect(url_for(".bid", procurement_id=p.id))
    return _render_procurement(p)


@bp.route("/procurements/<int:procurement_id>/open", methods=["POST"])
def procurement_open(procurement_id: int):
    p = _manageable(procurement_id)
    return button(lambda: services.open_bids(p, current_user), form=OpenBidsForm(),
                  message=lambda _: (f"已开标：{p.failure_reason}。", "warning") if p.status == ProcurementStatus.FAILED
                  else "已开标，请组建评审委员会并录入评分。", to=url_for(".procurement_detail", procurement_id=p.id))


@bp.route("/procurements/<int:procurement_id>/deadline", methods=["POST"])
def procurement_deadline(procurement_id: int):
    p = _manageable(procurement_id)
    form = DeadlineForm()
    return _procurement_form(p, form, lambda: services.change_deadline(
        p, _to_utc(form.bid_deadline.data), current_user, form.reason.data or ""), "deadline_form",
        message=lambda _: f"投标截止时间已变更为北京时间 {format_beijing(p.bid_deadline)}。", anchor="#deadline")


@bp.route("/procurements/<int:procurement_id>/amendments", methods=["POST"])
def procurement_amend(procurement_id: int):
    """发布澄清/更正公告: the service decides (procurement/amendments.py); refusals beside the form (422) or 409/403."""
    p = load(Procurement, procurement_id, "procurement.view")
    require("procurement.amend", p.engagement)
    form = AmendmentForm()

    def amend():
        upload = form.file.data
        has_file = upload is not None and getattr(upload, "filename", "")
        return amendments.amend_procurement(p, amendments.AmendmentInput(
            text=form.text.data, affects_bids=form.affects_bids.data, bid_deadline=_to_utc(form.bid_deadline.data),
            filename=upload.filename if has_file else None, data=upload.read() if has_file else None), current_user)

    return _procurement_form(p, form, amend, "amendment_form", anchor="#amendments",
                             message=lambda a: f"{a.title}已发布，已通知全部潜在供应商" + (
                                 f"；投标截止时间变更为北京时间 {format_beijing(a.deadline_after)}。" if a.moved_deadline else "。"))


@bp.route("/procurements/<int:procurement_id>/amendments/<int:amendment_id>/upload")
def amendment_upload(procurement_id: int, amendment_id: int):
    """The bureau's own upload of an amendment's file (its document properties and all): the purchasing bureau's alone;
    the suppliers and the public read ``core.scrub``'s copy (/public/amendments/<id>/file)."""
    p = load(Procurement, procurement_id, "procurement.view")
    require("procurement.amend", p.engagement)
    return send_stored(load_child(ProcurementAmendment, amendment_id, procurement_id=p.id).uploaded_file)


@bp.route("/procurements/<int:procurement_id>/bids/<int:bid_id>/decision", methods=["POST"])
def justification_decide(procurement_id: int, bid_id: int):
    p = _manageable(procurement_id)
    bid = load(Bid, bid_id, "bid.view")
    if bid.procurement_id != p.id:
        abort(404)
    form = JustificationDecisionForm()
    return _procurement_form(p, form, lambda: services.decide_justification(
        bid, current_user, form.decision.data == "accept", form.note.data), "decision_form",
        message=lambda _: f"已认定 {bid.firm.name} 的低价说明：{bid.justification_decision.label}。",
        anchor="#bids", decision_target=bid.id)


@bp.route("/procurements/<int:procurement_id>/committee/draw", methods=["POST"])
def committee_draw(procurement_id: int):
    p = _manageable(procurement_id)
    form = DrawCommitteeForm()

    def draw():
        try:
            size = int((form.size.data or "").strip())
        except ValueError:
            raise ValidationFailed("评审委员会人数必须是数字。", {"size": "人数必须是数字"})
        try:
            return services.draw_committee(p, size, current_user)
        except (Conflict, ValidationFailed):
            raise
        except DomainError as exc:  # e.g. too few drawable experts: said beside the form
            raise ValidationFailed(exc.message, {"size": exc.message})

    return _procurement_form(p, form, draw, "draw_form", to=lambda record: url_for("core.draw_detail", draw_id=record.id),
                             message=lambda record: f"已公告评审委员会抽取 #{record.id}：请指定监督人，监督人输入数字后揭晓。")


@bp.route("/procurements/<int:procurement_id>/committee/enter", methods=["POST"])
def committee_enter(procurement_id: int):
    p = _manageable(procurement_id)
    form = EnterCommitteeForm()
    return _procurement_form(p, form, lambda: services.enter_committee(p, form.members(), current_user), "enter_form",
                             message=lambda members: f"已录入评审委员会 {len(members)} 人。", anchor="#committee")


@bp.route("/procurements/<int:procurement_id>/committee/make-up", methods=["POST"])
def committee_make_up(procurement_id: int):
    p = _manageable(procurement_id)
    form = MakeUpCommitteeForm()
    return _procurement_form(p, form, lambda: services.make_up_committee(p, current_user, form.members()), "make_up_form",
                             message=lambda members: f"已补足评审委员会 {len(members)} 人，新评委录入评分后继续评审。",
                             anchor="#committee")


@bp.route("/procurements/<int:procurement_id>/committee/reform", methods=["POST"])
def committee_reform(procurement_id: int):
    p = _manageable(procurement_id)
    form = ReformCommitteeForm()
    return _procurement_form(p, form, lambda: services.reform_committee(p, current_user, form.reason.data), "reform_form",
                             message="原评审委员会及其评分已作废，请重新抽取或录入评审委员会。", anchor="#committee")


@bp.route("/procurements/<int:procurement_id>/scores/<int:member_id>", methods=["GET", "POST"])
def scores(procurement_id: int, member_id: int):
    p = _manageable(procurement_id)
    member = load_child(CommitteeMember, member_id, procurement_id=p.id)
    bids = [b for b in _scoped_bids(p) if b.status == BidStatus.SUBMITTED]
    form = ScoreForm()
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        values = {f"score_{b.id}_{i.id}": request.form.get(f"score_{b.id}_{i.id}", "").strip()
                  for b in bids for i in p.rubric}
        entered = {b.id: {i.id: values[f"score_{b.id}_{i.id}"] for i in p.rubric} for b in bids}
        try:
            services.record_technical_scores(p, member, entered, current_user)
        except ValidationFailed as exc:
            db.session.rollback()
            errors, status = exc.fields, 422
            form.form_errors = [exc.message]
        else:
            db.session.commit()
            flash(f"已保存评委 {member.name} 的技术评分。", "success")
            return redirect(url_for(".procurement_detail", procurement_id=p.id) + "#committee")
    else:
        existing = db.session.execute(sa.select(TechnicalScore).where(TechnicalScore.member_id == member.id)).scalars()
        values = {f"score_{s.bid_id}_{s.rubric_item_id}": f"{s.points.normalize():f}" for s in existing}
    return render_template("procurement/scores.html", p=p, member=member, bids=bids, form=form, values=values,
                           errors=errors), status


@bp.route("/procurements/<int:procurement_id>/award", methods=["POST"])
def award(procurement_id: int):
    p = _manageable(procurement_id)
    form = AwardForm()
    return _procurement_form(p, form, lambda: services.award_procurement(p, current_user, form.reasons.data or ""),
                             "award_form",
                             message=lambda award: f"已定标：{award.firm.name}，{_wan(award.amount)} 万元。请签订合同。"
                             if isinstance(award, Award) else f"得分与报价并列第一：已公告随机确定{p.method.result_word}人的抽取 #{award.id}，"
                             "请指定监督人，监督人输入数字后揭晓并定标。")


@bp.route("/procurements/<int:procurement_id>/fail", methods=["POST"])
def procurement_fail(procurement_id: int):
    p = _manageable(procurement_id)
    form = FailForm()
    return _procurement_form(p, form, lambda: services.fail_procurement(p, current_user, (form.reason.data or "").strip()),
                             "fail_form", message="已按流标处理，可重新发起采购。", category="warning",
                             to=url_for(".engagement_detail", engagement_id=p.engagement_id))


@bp.route("/procurements/<int:procurement_id>/approve", methods=["POST"])
def single_source_approve(procurement_id: int):
    p = load(Procurement, procurement_id, "procurement.approve")
    form = SingleSourceApprovalForm()
    return _procurement_form(p, form, lambda: services.approve_single_source(p, current_user, form.price_wan.data),
                             "approve_form",
                             message=lambda award: f"单一来源采购已审批：{award.firm.name}，{_wan(award.amount)} 万元。")


# --- challenges (质疑) -------------------------------------------------------------------------------

@bp.route("/procurements/<int:procurement_id>/challenges/<int:challenge_id>/answer", methods=["POST"])
def challenge_answer(procurement_id: int, challenge_id: int):
    p = _manageable(procurement_id)
    challenge = load_child(Challenge, challenge_id, procurement_id=p.id)
    form = ChallengeAnswerForm(prefix=f"c{challenge.id}")
    return handle_form(
        form, lambda: services.answer_challenge(challenge, current_user, form.outcome.data, form.answer.data or "",
                                                form.remedy.data),
        to=url_for(".procurement_detail", procurement_id=p.id) + "#challenges",
        failed=lambda status: _render_procurement(p, status, answer_forms={challenge.id: form}),
        message=lambda c: f"已答复 {c.firm.name} 的质疑：{c.status.label}" + (f"，{c.remedy.label}" if c.remedy else "") + "。")


@bp.route("/procurements/<int:procurement_id>/challenge", methods=["POST"])
def challenge_file(procurement_id: int):
    p = _firm_procurement(procurement_id)
    require("challenge.file", p)
    form = ChallengeForm()
    return handle_form(form, lambda: services.file_challenge(p, current_user, form.grounds.data or "", [
        (f.filename, f.read()) for f in (form.evidence.data or []) if f is not None and getattr(f, "filename", "")]),
        message=lambda c: f"质疑已提交，财政局应于 {c.answer_due:%Y-%m-%d} 前书面答复。", to=url_for(".bid", procurement_id=p.id) + "#challenge",
        failed=lambda status: _render_bid(p, status, challenge_form=form))


@bp.route("/challenges/<int:challenge_id>/evidence/<int:file_id>")
def challenge_evidence(challenge_id: int, file_id: int):
    challenge = load(Challenge, challenge_id, "challenge.view")
    item = next((e for e in challenge.evidence if e.file_id == file_id), None)
    if item is None:
        abort(404)
    return send_stored(item.file)


# --- contract --------------------------------------------------------------------------------------

@bp.route("/engagements/<int:engagement_id>/contract", methods=["GET", "POST"])
def contract(engagement_id: int):
    engagement = load(Engagement, engagement_id, "procurement.manage")
    award_row = getattr(engagement.current_procurement, "award", None)
    if award_row is None or engagement.contract is not None:  # refused on the GET already, as the service would
        raise Conflict("尚未定标，不能签订合同。" if award_row is None else "该任务已签订合同。")
    blocked = services.contract_block(engagement.current_procurement)
    if blocked:
        raise Conflict(f"不能签订合同：{blocked}。")
    data = None
    if request.method == "GET":
        today = beijing_today()
        data = {"amount_wan": _wan(award_row.amount), "signed_on": today, "start_date": today}
    form = ContractForm(data=data)
    return handle_form(form, lambda: services.sign_contract(engagement, services.ContractInput(
        amount_wan=form.amount_wan.data, signed_on=form.signed_on.data, start_date=form.start_date.data,
        end_date=form.end_date.data, plan_due=form.plan_due.data, report_due=form.report_due.data,
        deliverables=form.deliverables.data or "", late_reason=form.late_reason.data), current_user),
        message=f"{engagement.reference} 已签订合同。", to=url_for(".engagement_detail", engagement_id=engagement.id),
        failed=form_page("procurement/contract.html", form=form, e=engagement, award=award_row))


# --- framework agreements --------------------------------------------------------------------------

def _next_member(agreement: FrameworkAgreement) -> Optional[FrameworkMember]:
    """Whose turn it is: the first member at or after ``next_position``, wrapping round as the rotation does
    (a firm found ineligible for a given engagement is still skipped then)."""
    members = agreement.members
    return next((m for m in members if m.position >= agreement.next_position), members[0] if members else None)


@bp.route("/frameworks")
def framework_list():
    require("plan.list")
    stmt = sa.select(FrameworkAgreement)
    own = current_user.bureau
    usable = eligibility.library_bureau_ids(own) if own else set()
    if current_user.role != Role.SYSTEM_ADMIN:
        # the agreements it may rotate (its own and the bureaus' above), and — to read, as it reads their
        # procurements — those of the bureaus below it
        below = permissions.subtree_ids(own) if own else set()
        stmt = stmt.where(FrameworkAgreement.bureau_id.in_((usable | below) or {-1}))
    agreements = db.session.execute(
        stmt.join(Bureau, Bureau.id == FrameworkAgreement.bureau_id)
        .options(selectinload(FrameworkAgreement.bureau),
                 selectinload(FrameworkAgreement.members).selectinload(FrameworkMember.firm))
        .order_by(FrameworkAgreement.valid_until.desc(), Bureau.path, FrameworkAgreement.id.desc())).scalars().all()
    return render_template("procurement/framework_list.html", agreements=agreements, today=beijing_today(),
                           usable=usable if current_user.role != Role.SYSTEM_ADMIN else None,
                           next_member={a.id: _next_member(a) for a in agreements},
                           can_create=can_in_own_bureau("plan.edit_bureau"))


def _framework_candidates(bureau: Bureau) -> list[Firm]:
    """Admitted firms, visible to the user, of the libraries ``bureau`` may use (its own and upper bureaus')."""
    stmt = sa.select(Firm).where(Firm.status == FirmStatus.ADMITTED,
                                 Firm.bureau_id.in_(eligibility.library_bureau_ids(bureau)))
    return db.session.execute(
        scoped(Firm, stmt).join(Bureau, Bureau.id == Firm.bureau_id)
        .options(selectinload(Firm.bureau)).order_by(Bureau.path, Firm.id)).scalars().all()


def _framework_order(candidates: list[Firm], errors: dict[str, str]) -> list[int]:
    """The shortlisted firms' ids in the order entered (inputs ``position_<firm id>``, blank = not shortlisted).

    An order that is not a positive whole number, or is repeated, is put in ``errors``; such firms go last,
    so the service still counts them.
    """
    entered: dict[int, Optional[int]] = {}
    for firm in candidates:
        raw = request.form.get(f"position_{firm.id}", "").strip()
        if not raw:
            continue
        try:
            entered[firm.id] = int(raw) if raw.isascii() and int(raw) >= 1 else None
        except ValueError:
            entered[firm.id] = None
    names = {f.id: f.name for f in candidates}
    taken = [n for n in entered.values() if n is not None]
    for firm_id, number in entered.items():
        if number is None:
            errors[f"position_{firm_id}"] = f"{names[firm_id]}：轮候顺序须为正整数"
        elif taken.count(number) > 1:
            errors[f"position_{firm_id}"] = f"{names[firm_id]}：轮候顺序 {number} 重复"
    return sorted(entered, key=lambda firm_id: (entered[firm_id] is None, entered[firm_id] or 0, firm_id))


@bp.route("/frameworks/new", methods=["GET", "POST"])
def framework_new():
    bureau = own_bureau("plan.edit_bureau")
    form = FrameworkForm()
    candidates = _framework_candidates(bureau)
    order_errors: dict[str, str] = {}

    def create():
        firm_ids = _framework_order(candidates, order_errors)
        try:
            agreement = services.create_framework_agreement(
                bureau, current_user, name=form.name.data or "", valid_from=form.valid_from.data,
                valid_until=form.valid_until.data, firm_ids=firm_ids)
        except ValidationFailed as exc:
            if not order_errors:
                raise
            fields = {**exc.fields, **order_errors}
            raise ValidationFailed("；".join(fields.values()) + "。", fields)
        if order_errors:
            raise ValidationFailed("；".join(order_errors.values()) + "。", dict(order_errors))
        return agreement

    return handle_form(
        form, create, message=lambda a: f"已登记框架协议“{a.name}”，入围机构 {len(a.members)} 家，按顺序轮候。",
        to=lambda a: url_for(".framework_list") + f"#framework-{a.id}",
        failed=lambda status: form_page(  # the candidates' fields read only when the page is shown
            "procurement/framework_new.html", form=form, bureau=bureau, candidates=candidates,
            fields=Firm.fields_of(f.id for f in candidates), errors=order_errors)(status))


# --- firms: marketplace, bids, workspace -----------------------------------------------------------

@bp.route("/market")
def market():
    require("marketplace.use")
    firm = current_user.firm
    # A page of the open procurements, each checked against the rules: the rules read per procurement, so the
    # page, not the region's whole market, bounds what a request reads.
    page = paginate(services.opportunities_stmt(firm))
    shown = [p.id for p in page.items]
    own = {b.procurement_id: b for b in db.session.execute(
        scoped(Bid).where(Bid.procurement_id.in_(shown or [-1]))).scalars()}
    return render_template("procurement/market.html", page=page,
                           opportunities=services.with_exclusion_reasons(firm, page.items), own=own, firm=firm,
                           BidStatus=BidStatus)


def _bid_form(firm: Firm, bid: Bid | None) -> BidForm:
    data = None
    if request.method == "GET" and bid is not None and bid.status == BidStatus.SUBMITTED:
        lead = next((m.staff_id for m in bid.team if m.is_lead), None)
        data = {"price_wan": _wan(bid.price), "team_staff_ids": [m.staff_id for m in bid.team], "lead_staff_id": lead}
    form = BidForm(data=data)
    roster = [s for s in sorted(firm.staff, key=lambda s: s.id) if s.active]
    form.team_staff_ids.choices = [choice(s.id, f"{s.name}（{s.role.label}）") for s in roster]
    form.lead_staff_id.choices = [choice(None, "— 请选择 —")] + [choice(s.id, s.name) for s in roster]
    return form


def _render_bid(p: Procurement, status: int = 200, **forms: Any):
    firm = current_user.firm
    bid = next(iter(_scoped_bids(p)), None)
    deadline_passed = p.bid_deadline is not None and utcnow() >= p.bid_deadline
    accepting = p.is_competitive and p.status == ProcurementStatus.OPEN and not deadline_passed
    reasons = eligibility.exclusion_reasons(firm, p.engagement, p.method) if accepting else []
    flagged = bid is not None and p.status == ProcurementStatus.EVALUATING and services.needs_justification(bid)
    listed = amendments.listed(p)
    return render_template(
        "procurement/bid.html", p=p, e=p.engagement, bid=bid, firm=firm, accepting=accepting, reasons=reasons,
        deadline_passed=deadline_passed, flagged=flagged,
        form=forms.get("form") or _bid_form(firm, bid), withdraw_form=WithdrawForm(),
        explain_form=forms.get("explain_form") or ExplanationForm(
            data={"explanation": bid.low_price_explanation} if bid is not None else None),
        BidStatus=BidStatus, ProcurementStatus=ProcurementStatus,
        award=p.award if p.status == ProcurementStatus.AWARDED else None,
        # 澄清/更正公告: each one, and whether the firm's bid came before the latest (it may revise or withdraw it)
        amendments=listed, revise_for=amendments.bid_before(listed, bid) if accepting else None,
        may_challenge=firm.id in services.participant_ids(p),
        challenge_form=forms.get("challenge_form") or ChallengeForm(),
        **_own_challenges(p, firm),
    ), status


# the right to complain, as the answer told it (templates/procurement/_notice.html ``challenge_line``)
bp.add_app_template_global(services.complaint_right, "complaint_right")


def _own_challenges(p: Procurement, firm: Firm) -> dict:
    """The firm sees the notices and its own challenges only (never another firm's grounds)."""
    mine = db.session.execute(sa.select(Challenge).where(Challenge.procurement_id == p.id, Challenge.firm_id == firm.id)
                              .options(*CHALLENGE_LINE).order_by(Challenge.id)).scalars().all()
    notice = p.notice
    return {"notice": notice, "notices": p.notices, "my_challenges": mine, "today": beijing_today(),
            "complaint_dates": services.complaint_dates(mine),
            "window_open": notice is not None and services.challenge_window_open(notice),
            "filed_on_notice": notice is not None and any(c.notice_id == notice.id for c in mine)}


def _firm_procurement(procurement_id: int) -> Procurement:
    require("marketplace.use")
    return load(Procurement, procurement_id, "procurement.view")


def _own_bid(procurement_id: int) -> tuple[Procurement, Bid]:
    """The firm's procurement and the firm's own bid on it (404 when it has none)."""
    p = _firm_procurement(procurement_id)
    own = next(iter(_scoped_bids(p)), None)
    if own is None:
        abort(404)
    return p, own


@bp.route("/procurements/<int:procurement_id>/bid", methods=["GET", "POST"])
def bid(procurement_id: int):
    p = _firm_procurement(procurement_id)
    if request.method == "GET":
        return _render_bid(p)
    existing = next(iter(_scoped_bids(p)), None)
    form = _bid_form(current_user.firm, existing)

    def submit():
        upload = form.technical_file.data
        has_file = upload is not None and getattr(upload, "filename", "")
        return services.submit_bid(p, services.BidInput(
            price_wan=form.price_wan.data, team_staff_ids=form.team_staff_ids.data or [],
            lead_staff_id=form.lead_staff_id.data,
            technical_filename=upload.filename if has_file else None,
            technical_data=upload.read() if has_file else None), current_user)

    return handle_form(form, submit, message="投标已提交（密封），截止前可修改或撤回。",
                       to=url_for(".bid", procurement_id=p.id), failed=lambda status: _render_bid(p, status, form=form))


@bp.route("/procurements/<int:procurement_id>/bid/withdraw", methods=["POST"])
def bid_withdraw(procurement_id: int):
    p, own = _own_bid(procurement_id)
    return button(lambda: services.withdraw_bid(own, current_user), form=WithdrawForm(), category="info",
                  message="投标已撤回；截止前可重新提交。", to=url_for(".bid", procurement_id=p.id))


@bp.route("/procurements/<int:procurement_id>/bid/explain", methods=["POST"])
def bid_explain(procurement_id: int):
    p, own = _own_bid(procurement_id)
    form = ExplanationForm()
    return handle_form(form, lambda: services.explain_low_bid(own, current_user, form.explanation.data or ""),
                       message="报价说明已提交，等待评审委员会认定。", to=url_for(".bid", procurement_id=p.id),
                       failed=lambda status: _render_bid(p, status, explain_form=form))


@bp.route("/bids/<int:bid_id>/technical")
def bid_file(bid_id: int):
    return send_stored(load(Bid, bid_id, "bid.view").technical_file)


@bp.route("/workspace")
def workspace():
    require("marketplace.use")
    engagements = db.session.execute(
        scoped(Engagement)
        .options(selectinload(Engagement.bureau), selectinload(Engagement.contract))
        .order_by(Engagement.year.desc(), Engagement.reference)).scalars().all()
    bids = db.session.execute(
        scoped(Bid).options(selectinload(Bid.procurement))
        .order_by(Bid.id.desc())).scalars().all()
    return render_template("procurement/workspace.html", engagements=engagements, bids=bids, firm=current_user.firm,
                           overdue=workflow.overdue_reasons(engagements),
                           BidStatus=BidStatus, ProcurementStatus=ProcurementStatus)


from evalhub.procurement import contract_notice_views, media_views, team_views  # noqa: E402  (routes on this blueprint)

team_views.register(bp)  # 主评人及团队 (issue 14)
contract_notice_views.register(bp)  # 合同公告 (政府采购法实施条例 第五十条)
media_views.register(bp)  # 指定媒体发布 (政府采购法 第十一条)
