"""Plans and procurement: from a bureau's annual plan to a contracted firm.

Rules (DOMAIN.md §2–3): plan checks (minimum counts, required object types, 主体分离); procurement
methods; sealed bids; comprehensive scoring (price score = lowest valid bid ÷ bid × 100); low-bid
justification; 流标 with fewer than 3 valid bids in an open tender; exactly one award per engagement.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable, NamedTuple, Optional

import sqlalchemy as sa
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from evalhub.core import audit, concurrency, draws, files, jobs, permissions
from evalhub.core.calendar import add_working_days, add_working_days_each
from evalhub.core.enums import BureauLevel, Field, Role
from evalhub.core.errors import Conflict, DomainError, PermissionDenied, ValidationFailed
from evalhub.core.inputs import check_text, check_name, money_error, points_value
from evalhub.core.listing import as_int
from evalhub.core.models import Bureau, BudgetUnit, Draw, DrawStatus, User
from evalhub.core.notifications import emit, one_reading, reminder_key
from evalhub.core.settings import SETTINGS, SettingDef, get_setting, register
from evalhub.core.timeutil import beijing_today, format_beijing, to_beijing, utcnow
from evalhub.extensions import db
# team registers lead_named; counts keeps the list totals (engagement_count) on write
from evalhub.procurement import contract_notices, counts, eligibility, media, periods, team, workflow  # noqa: F401
# The bid period's rules (procurement/periods.py, below media.py, which tells of a late posting) under their old names
from evalhub.procurement.periods import (  # noqa: F401
    CONSULTATION_PERIOD, NEGOTIATION_PERIOD, OPEN_TENDER_PERIOD, PERIODS, PeriodRule, change_problem,
    earliest_deadline_day, period_problem,
)
from evalhub.procurement.models import (
    Award,
    Bid,
    BidRubricItem,
    BidStatus,
    BidTeamMember,
    BudgetKind,
    Challenge,
    ChallengeEvidence,
    ChallengeRemedy,
    ChallengeStatus,
    CommitteeMember,
    Contract,
    Engagement,
    EngagementState,
    EvaluationPlan,
    FrameworkAgreement,
    JustificationDecision,
    ObjectType,
    PlanItem,
    PlanStatus,
    Procurement,
    ProcurementMethod,
    ProcurementStatus,
    ResultNotice,
    ServiceKind,
    TechnicalScore,
)
from evalhub.registry import people
from evalhub.registry.models import Expert, ExpertStatus, Firm, FirmStatus
from evalhub.registry.services import avoidance_reasons_of, expert_is_drawable, on_expert_unavailable, parse_enum

TEN_THOUSAND = Decimal("10000")
CENT = Decimal("0.01")

# The law's numbers. Statutory minimums are the settings' floors: a bureau may lengthen a period or raise a
# threshold, never go below the law.
register(
    SettingDef("procurement.open_tender_threshold_wan", "公开招标数额标准（万元）", "采购", 200, minimum=200, maximum=100000,
               help="最高限价达到该数额的服务项目只能公开招标（政府采购法第二十七条）。地方不得低于 200 万元（财库〔2019〕69号）。"),
    SettingDef("procurement.decentralised_limit_wan", "分散采购限额标准（万元）", "采购", 50, minimum=30, maximum=100000,
               help="达到该限额的项目须依法采用政府采购方式，机构库随机抽取仅用于限额以下（财库〔2019〕69号：省级不低于 50 万元、市县级不低于 30 万元）。"),
    SettingDef("procurement.min_days_open_tender", "公开招标：招标文件发出至投标截止不少于（日）", "采购", 20, minimum=20, maximum=90,
               help="政府采购法第三十五条。"),
    SettingDef("procurement.min_days_consultation", "竞争性磋商：磋商文件发出至首次响应截止不少于（日）", "采购", 10, minimum=10, maximum=90,
               help="财库〔2014〕214号 第十条。"),
    SettingDef("procurement.min_workdays_negotiation", "竞争性谈判/询价：文件发出至首次响应截止不少于（工作日）", "采购", 3,
               minimum=3, maximum=30, help="财政部令第74号 第二十九条、第四十五条。"),
    SettingDef("procurement.challenge_days", "质疑期：结果公告期满后（工作日）", "采购", 7, minimum=7, maximum=30,
               help="政府采购法第五十二条：供应商应知其权益受到损害之日起七个工作日内提出质疑；对采购结果的质疑，该日为结果公告期限"
                    "（1 个工作日，财政部令第87号 第六十九条）届满之日（政府采购法实施条例 第五十三条）。期满且无未决质疑方可签订合同。"),
    SettingDef("procurement.challenge_answer_days", "质疑答复期限（工作日）", "采购", 7, minimum=1, maximum=7,
               help="政府采购法第五十三条：收到质疑后七个工作日内作出答复。"),
)


concurrency.unique_message("procurement_challenge", "贵机构已对本结果公告提出质疑（可能是同时提交的另一请求），请刷新后查看，不要重复提交。")


# The draw, the framework rotation and single source have no response period: the draw and the rotation
# award at once among firms already admitted (the competition happened at admission / when the framework
# agreement was made, 财政部令第110号), and single source negotiates with one named firm after approval.
# The result notice stands for one working day (财政部令第87号 第六十九条: 中标、成交结果公告期限为1个工作日).
NOTICE_WORKDAYS = 1
# What a result notice's challenge period is, as the API describes it (the bureau's N is read per notice:
# ``challenge_until`` is the day it gives).
_CHALLENGE = SETTINGS["procurement.challenge_days"]
RESULT_NOTICE_RULE = (
    f"中标/成交结果公告：公告期 {NOTICE_WORKDAYS} 个工作日；质疑期自公告期满之日起计算，为发布财政局设置的 N 个工作日"
    f"（procurement.challenge_days，默认 {_CHALLENGE.default}，不少于 {_CHALLENGE.minimum}），即至发布后第 {NOTICE_WORKDAYS} + N"
    " 个工作日届满；challenge_until 即所适用的最后一日"
    "（政府采购法第五十二条，政府采购法实施条例第五十三条第（三）项，财政部令第87号第六十九条）")
# A challenger not satisfied with the answer, or not answered in time, may complain to the finance department within
# 15 working days after the answer period (政府采购法 第五十五条; 财政部令第94号 第十七条). The supplier's right by
# law, not the bureau's to shorten or lengthen: a constant, not a setting.
COMPLAINT_WORKDAYS = 15


def threshold_yuan(bureau: Bureau, key: str) -> Decimal:
    return wan_to_yuan(Decimal(str(get_setting(bureau, key))))


def method_rules(bureau: Bureau) -> list[str]:
    """The law's numbers as they apply to ``bureau``, one sentence each, for the page where a method is chosen."""
    days = {key: get_setting(bureau, key) for key in (OPEN_TENDER_PERIOD.setting, CONSULTATION_PERIOD.setting,
                                                      "procurement.challenge_days")}
    return [f"最高限价达到公开招标数额标准 {get_setting(bureau, 'procurement.open_tender_threshold_wan')} 万元的，只能公开招标",
            f"机构库随机抽取仅限分散采购限额标准 {get_setting(bureau, 'procurement.decentralised_limit_wan')} 万元以下",
            f"公开招标自发布至投标截止不少于 {days[OPEN_TENDER_PERIOD.setting]} 日；竞争性磋商至首次响应截止不少于 "
            f"{days[CONSULTATION_PERIOD.setting]} 日",
            f"定标即发布结果公告（公告期 {NOTICE_WORKDAYS} 个工作日）；公告期满后 {days['procurement.challenge_days']} 个工作日"
            "质疑期满且无未决质疑，方可签订合同"]


def method_problem(bureau: Bureau, method: ProcurementMethod, ceiling: Decimal) -> Optional[str]:
    """Why ``method`` may not buy a service with this ceiling (yuan), or None. At or above the open-tender
    threshold only open tender (政府采购法第二十七条: another method needs the financial department's prior
    approval, which evalhub does not record, so it is refused); a library draw only below the
    decentralised-procurement limit, where the procurement law's methods are not required."""
    open_tender = threshold_yuan(bureau, "procurement.open_tender_threshold_wan")
    if method != ProcurementMethod.OPEN_TENDER and ceiling >= open_tender:
        return (f"最高限价 {ceiling / TEN_THOUSAND:.2f} 万元已达到公开招标数额标准（{open_tender / TEN_THOUSAND:.2f} 万元），"
                f"应当采用公开招标；改用{method.label}须事先经财政部门批准（政府采购法第二十七条）")
    limit = threshold_yuan(bureau, "procurement.decentralised_limit_wan")
    if method == ProcurementMethod.RANDOM_DRAW and ceiling >= limit:
        return (f"最高限价 {ceiling / TEN_THOUSAND:.2f} 万元已达到分散采购限额标准（{limit / TEN_THOUSAND:.2f} 万元），"
                "须依法采用政府采购方式，不能从机构库随机抽取")
    return None


_raise_if = ValidationFailed.raise_if  # refuse once, naming every problem found


def _decimal(errors, name, value, label, *, positive=True) -> Optional[Decimal]:
    try:
        number = Decimal(str(value).replace(",", "").strip())
    except (InvalidOperation, AttributeError):
        errors[name] = f"{label}必须是数字"
        return None
    if not number.is_finite() or (positive and number <= 0):
        errors[name] = f"{label}必须大于 0"
        return None
    return number


def _wan(errors, name, value, label, *, allow_zero=False) -> Optional[Decimal]:
    """An amount in 万元 within the bounds every amount has (``core.inputs``: one fen to 1e12 元): below one
    fen it would be stored as 0.00 元, above the maximum the column overflows."""
    number = _decimal(errors, name, value, label, positive=not allow_zero)
    problem = money_error(number, label, allow_zero=allow_zero) if number is not None else None
    if problem:
        errors[name] = problem
        return None
    return number


def wan_to_yuan(wan: Decimal) -> Decimal:
    return (wan * TEN_THOUSAND).quantize(CENT, ROUND_HALF_UP)


# === annual plan ==================================================================================

def get_or_create_plan(bureau: Bureau, year: int, actor: User) -> EvaluationPlan:
    return ensure_plan(bureau, year, actor)[0]


def ensure_plan(bureau: Bureau, year: int, actor: User) -> tuple[EvaluationPlan, bool]:
    """The bureau's plan for ``year`` and whether this call created it. One plan per bureau and year, even
    when several requests ask at once: they are serialised on that (bureau, year), so exactly one creates
    it (one audit event) and the others find it."""
    permissions.require(actor, "plan.edit_bureau", bureau)
    if not 2000 <= int(year) <= 2100:
        raise ValidationFailed("年度不合理。", {"year": "年度不合理"})
    concurrency.serialise(f"plan:{bureau.id}:{int(year)}")
    plan = db.session.execute(
        sa.select(EvaluationPlan).where(EvaluationPlan.bureau_id == bureau.id, EvaluationPlan.year == year)
    ).scalar_one_or_none()
    if plan is not None:
        return plan, False
    plan = EvaluationPlan(bureau_id=bureau.id, year=year, status=PlanStatus.DRAFT)
    db.session.add(plan)
    db.session.flush()
    audit.record("plan.created", plan, actor=actor, summary=f"{bureau.short_name}编制 {year} 年度重点绩效评价计划")
    return plan, True


@dataclass
class PlanItemInput:
    name: str
    object_type: Any
    budget_kind: Any
    field: Any
    amount_wan: Any  # 万元, as the bureaus write it
    budget_unit_id: Any
    reason: str
    commissioner_unit_id: Any = None
    service_kind: Any = ServiceKind.KEY_EVALUATION


def _unit_in(bureau: Bureau, unit_id: Any, errors: dict, name: str, label: str) -> Optional[BudgetUnit]:
    unit_id = as_int(str(unit_id if unit_id is not None else ""))  # an id the database can hold, else none
    unit = db.session.get(BudgetUnit, unit_id) if unit_id is not None else None
    if unit is None:
        errors[name] = f"请选择{label}"
        return None
    if not unit.bureau.path.startswith(bureau.path):
        errors[name] = f"{label}“{unit.name}”不属于{bureau.short_name}或其下级"
        return None
    return unit


def clean_plan_item(plan: EvaluationPlan, data: PlanItemInput) -> dict[str, Any]:
    errors: dict[str, str] = {}
    name = (data.name or "").strip()
    if not name:
        errors["name"] = "请填写评价对象名称"
    elif len(name) > 200:
        errors["name"] = "名称不能超过 200 个字符"
    else:
        check_name(errors, "name", name, "评价对象名称")
    values: dict[str, Any] = {
        "name": name,
        "object_type": parse_enum(errors, "object_type", ObjectType, data.object_type, "评价类型"),
        "budget_kind": parse_enum(errors, "budget_kind", BudgetKind, data.budget_kind, "预算类别"),
        "field": parse_enum(errors, "field", Field, data.field, "业务领域"),
        "service_kind": parse_enum(errors, "service_kind", ServiceKind, data.service_kind or ServiceKind.KEY_EVALUATION, "委托事项"),
        "reason": (data.reason or "").strip(),
    }
    if not values["reason"]:
        errors["reason"] = "请填写选取理由"
    amount = _wan(errors, "amount_wan", data.amount_wan, "金额（万元）")
    if amount is not None:
        values["amount"] = wan_to_yuan(amount)
    unit = _unit_in(plan.bureau, data.budget_unit_id, errors, "budget_unit_id", "被评价单位")
    values["budget_unit_id"] = unit.id if unit else None
    values["commissioner_unit_id"] = None
    if data.commissioner_unit_id not in (None, "", 0, "0"):
        commissioner = _unit_in(plan.bureau, data.commissioner_unit_id, errors, "commissioner_unit_id", "委托方")
        values["commissioner_unit_id"] = commissioner.id if commissioner else None
        # 主体分离 (财预〔2021〕6号): a unit may not commission the evaluation of itself.
        if commissioner is not None and unit is not None and commissioner.id == unit.id:
            errors["commissioner_unit_id"] = "委托方与被评价单位不能为同一单位（主体分离）"
    _raise_if(errors)
    return values


def _require_draft(plan: EvaluationPlan) -> None:
    if plan.status != PlanStatus.DRAFT:
        raise Conflict(f"{plan.year} 年度计划已批准，不能再修改评价对象。")


def plan_item_key(name: str, unit_id: int | None, service_kind: ServiceKind) -> tuple[str, int | None, ServiceKind]:
    """What makes two plan items the same evaluation object: the name as read (NFKC — full-width letters and
    digits narrowed —, casefolded, every space removed: "统计调查 项目" is "统计调查项目"), the unit, and the
    commissioned work (a 重点绩效评价 and a 事前绩效评估再评估 of one project are two items)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", name or "")).casefold(), unit_id, ServiceKind(service_kind)


def listed_twice(plan: EvaluationPlan, name: str, unit_id: int | None, service_kind: ServiceKind = ServiceKind.KEY_EVALUATION,
                 *, item: PlanItem | None = None) -> Optional[str]:
    """Why ``name`` of the unit ``unit_id`` may not be listed (again) in ``plan`` for ``service_kind``, or None: a
    plan lists an evaluation object once per commissioned work (the same workbook imported twice, the form sent
    again; names compared by ``plan_item_key``). Call it holding the plan (``concurrency.hold``), so two requests at
    once cannot both find it missing."""
    key = plan_item_key(name, unit_id, service_kind)
    stmt = sa.select(PlanItem.id, PlanItem.name).where(
        PlanItem.plan_id == plan.id, PlanItem.service_kind == key[2],
        PlanItem.budget_unit_id.is_(None) if unit_id is None else PlanItem.budget_unit_id == unit_id)
    if item is not None and item.id is not None:
        stmt = stmt.where(PlanItem.id != item.id)
    listed = next((other for _id, other in db.session.execute(stmt)
                   if plan_item_key(other, unit_id, service_kind) == key), None)
    if listed is None:
        return None
    unit = db.session.get(BudgetUnit, unit_id) if unit_id is not None else None
    return (f"{plan.year} 年度计划已列有{unit.name if unit else '该单位'}的评价对象“{listed}”"
            f"（{key[2].label}），不能重复列入")


def add_plan_item(plan: EvaluationPlan, data: PlanItemInput, actor: User, *, values: dict | None = None) -> PlanItem:
    permissions.require(actor, "plan.edit", plan)
    concurrency.hold(plan)
    _require_draft(plan)
    values = values or clean_plan_item(plan, data)
    twin = listed_twice(plan, values["name"], values["budget_unit_id"], values["service_kind"])
    if twin:
        raise ValidationFailed(twin + "。", {"name": twin})
    position = (max((i.position for i in plan.items), default=0)) + 1
    item = PlanItem(position=position, **values)
    plan.items.append(item)
    db.session.flush()
    audit.record("plan.item_added", plan, actor=actor,
                 summary=f"{plan.year} 年计划新增评价对象：{item.name}（{values['amount'] / TEN_THOUSAND:.2f} 万元）",
                 payload={"item_id": item.id})
    return item


def update_plan_item(item: PlanItem, data: PlanItemInput, actor: User) -> PlanItem:
    permissions.require(actor, "plan.edit", item.plan)
    concurrency.hold(item.plan)
    _require_draft(item.plan)
    values = clean_plan_item(item.plan, data)
    twin = listed_twice(item.plan, values["name"], values["budget_unit_id"], values["service_kind"], item=item)
    if twin:
        raise ValidationFailed(twin + "。", {"name": twin})
    for key, value in values.items():
        setattr(item, key, value)
    audit.record("plan.item_updated", item.plan, actor=actor, summary=f"修改评价对象：{item.name}",
                 payload={"item_id": item.id})
    return item


def delete_plan_item(item: PlanItem, actor: User) -> None:
    plan = item.plan
    permissions.require(actor, "plan.edit", plan)
    concurrency.hold(plan)  # as adding and changing one: never out of a plan approved meanwhile
    _require_draft(plan)
    audit.record("plan.item_deleted", plan, actor=actor, summary=f"删除评价对象：{item.name}", payload={"item_id": item.id})
    plan.items.remove(item)
    db.session.delete(item)


@dataclass
class PlanCheck:
    level: str  # "error" blocks approval; "warning" needs acknowledging
    message: str


def plan_items(plan: EvaluationPlan) -> list[PlanItem]:
    """The plan's items with what a row of them shows (its unit, commissioner, engagement), in one statement — a
    plan has tens of items, and a lazy load per row made the plan's page and API grow with them. ``plan.items``
    is set to them, so totals and checks read them without a statement."""
    items = list(db.session.execute(
        sa.select(PlanItem).where(PlanItem.plan_id == plan.id).order_by(PlanItem.position)
        .options(joinedload(PlanItem.budget_unit), joinedload(PlanItem.commissioner_unit),
                 joinedload(PlanItem.engagement))).unique().scalars())
    set_committed_value(plan, "items", items)
    return items


def plan_checks(plan: EvaluationPlan) -> list[PlanCheck]:
    checks: list[PlanCheck] = []
    bureau = plan.bureau
    items = plan.items
    level_key = {BureauLevel.REGION: "plan.min_items_region", BureauLevel.PREFECTURE: "plan.min_items_prefecture",
                 BureauLevel.COUNTY: "plan.min_items_county"}[bureau.level]
    minimum = get_setting(bureau, level_key)
    key_items = [i for i in items if i.service_kind == ServiceKind.KEY_EVALUATION]
    if len(key_items) < minimum:
        checks.append(PlanCheck("warning", f"{bureau.level.label}级每年重点评价不少于 {minimum} 项，本计划仅 {len(key_items)} 项"))
    # Seed 000: the prefecture picks "1 个县（市）、1 个本级部门单位" — a lower-government item counts only when
    # its unit belongs to a lower bureau (as ``eligibility.evaluated_government`` reads it), a whole-department
    # item only when its unit is the plan's bureau's own; the type alone proves neither.
    unit_bureau = dict(db.session.execute(sa.select(BudgetUnit.id, BudgetUnit.bureau_id).where(
        BudgetUnit.id.in_(sorted({i.budget_unit_id for i in key_items}) or [-1]))).all())
    own = {ObjectType.LOWER_GOVERNMENT: False, ObjectType.DEPARTMENT: True}
    types = {i.object_type for i in key_items
             if i.object_type not in own or (unit_bureau.get(i.budget_unit_id) == bureau.id) == own[i.object_type]}
    required = {BureauLevel.PREFECTURE: [ObjectType.LOWER_GOVERNMENT, ObjectType.DEPARTMENT],
                BureauLevel.COUNTY: [ObjectType.DEPARTMENT]}.get(bureau.level, [])
    whose = {ObjectType.LOWER_GOVERNMENT: "（被评价单位须属下级县市）", ObjectType.DEPARTMENT: "（被评价单位须为本级部门单位）"}
    for kind in required:
        if kind not in types:
            checks.append(PlanCheck("warning", f"{bureau.level.label}级计划应至少包含 1 项“{kind.label}”评价"
                                               f"{whose[kind]}"))
    for item in items:
        if item.commissioner_unit_id and item.commissioner_unit_id == item.budget_unit_id:
            checks.append(PlanCheck("error", f"“{item.name}”的委托方与被评价单位相同，违反主体分离原则"))
    if not items:
        checks.append(PlanCheck("error", "计划中还没有评价对象"))
    return checks


def approve_plan(plan: EvaluationPlan, actor: User, *, warnings_reason: str | None = None) -> list[Engagement]:
    """Approve the plan: every evaluation object becomes an engagement in state "planned". Past a warning of
    the plan checks (minimum count, type mix) only with a written reason, kept with the warnings."""
    permissions.require(actor, "plan.approve", plan)
    # the lock adding, changing and deleting an item take: the items approved are the items, and a second approval
    # (a double click) finds the plan approved
    concurrency.hold(plan)
    _require_draft(plan)
    checks = plan_checks(plan)
    errors = [c.message for c in checks if c.level == "error"]
    if errors:
        raise ValidationFailed("计划存在错误，不能批准：" + "；".join(errors) + "。", {"plan": "；".join(errors)})
    warnings = [c.message for c in checks if c.level == "warning"]
    reason = None
    if warnings:
        problems: dict[str, str] = {}
        reason = check_text(problems, "warnings_reason", warnings_reason, label="批准理由", minimum=10, maximum=2000,
                            short="计划存在提示事项（" + "；".join(warnings) + "），请写明仍予批准的理由（不少于 10 字）")
        _raise_if(problems)
    plan.approval_warnings, plan.approval_reason = warnings, reason
    plan.status = PlanStatus.APPROVED
    plan.approved_at = utcnow()
    plan.approved_by_id = actor.id
    engagements = []
    for number, item in enumerate(plan.items, start=1):
        engagement = Engagement(
            plan_item_id=item.id, bureau_id=plan.bureau_id, year=plan.year,
            reference=f"{plan.bureau.code}-{plan.year}-{number:03d}", name=item.name,
            service_kind=item.service_kind, field=item.field, amount=item.amount,
            budget_unit_id=item.budget_unit_id, commissioner_unit_id=item.commissioner_unit_id,
            state=EngagementState.PLANNED)
        db.session.add(engagement)
        engagements.append(engagement)
    db.session.flush()
    audit.record("plan.approved", plan, actor=actor,
                 summary=f"批准{plan.bureau.short_name} {plan.year} 年度计划：{len(engagements)} 个评价对象",
                 payload={"warnings": warnings, "reason": reason, "engagements": [e.id for e in engagements]})
    for engagement in engagements:
        audit.record("engagement.created", engagement, actor=actor,
                     summary=f"{engagement.reference} {engagement.name} 列入计划")
    return engagements


# === procurement ==================================================================================

DEFAULT_BID_RUBRIC = [("评价思路与技术方案", Decimal("40")), ("项目团队与人员资质", Decimal("25")),
                      ("同类项目业绩", Decimal("15")), ("质量控制与保密措施", Decimal("10")),
                      ("进度安排与服务承诺", Decimal("10"))]


def validate_price_weight(method: ProcurementMethod, weight: Decimal) -> Optional[str]:
    """财政部 rules for services: price weight ≥ 10%; competitive consultation 10–30%."""
    if method == ProcurementMethod.COMPETITIVE_CONSULTATION and not Decimal("10") <= weight <= Decimal("30"):
        return "竞争性磋商的价格分权重应在 10%–30% 之间"
    if method == ProcurementMethod.OPEN_TENDER and not Decimal("10") <= weight < Decimal("100"):
        return "服务类公开招标的价格分权重不得低于 10%"
    return None


@dataclass
class ProcurementInput:
    method: Any
    title: str
    ceiling_price_wan: Any
    price_weight: Any = 20
    bid_deadline: Optional[datetime] = None  # UTC, naive
    description: str | None = None
    rubric: list[tuple[str, Any]] = field(default_factory=lambda: list(DEFAULT_BID_RUBRIC))
    framework_agreement_id: Any = None
    single_source_firm_id: Any = None
    justification: str | None = None
    rerun_reason: str | None = None


def open_procurement(engagement: Engagement, data: ProcurementInput, actor: User) -> Procurement:
    permissions.require(actor, "procurement.manage", engagement)
    errors: dict[str, str] = {}
    method = parse_enum(errors, "method", ProcurementMethod, data.method, "采购方式")
    title = (data.title or "").strip() or f"{engagement.name}绩效评价服务"
    ceiling = _wan(errors, "ceiling_price_wan", data.ceiling_price_wan, "最高限价（万元）")
    weight = _decimal(errors, "price_weight", data.price_weight, "价格分权重", positive=False) or Decimal("0")
    if engagement.state == EngagementState.FAILED_PROCUREMENT and not (data.rerun_reason or "").strip():
        errors["rerun_reason"] = "重新采购（或改用其他采购方式）须说明原因"
    elif engagement.state not in (EngagementState.PLANNED, EngagementState.FAILED_PROCUREMENT):
        raise Conflict(f"评价任务当前状态为“{engagement.state.label}”，不能发起采购。")
    rubric_rows = []
    if method is not None and method in (ProcurementMethod.OPEN_TENDER, ProcurementMethod.COMPETITIVE_CONSULTATION):
        problem = validate_price_weight(method, weight)
        if problem:
            errors["price_weight"] = problem
        if data.bid_deadline is None:
            errors["bid_deadline"] = "请设置投标截止时间"
        elif data.bid_deadline <= utcnow():
            errors["bid_deadline"] = "投标截止时间必须晚于现在"
        else:  # the documents are issued now, when the procurement is opened
            problem = period_problem(engagement.bureau, PERIODS[method], utcnow(), data.bid_deadline)
            if problem:
                errors["bid_deadline"] = problem
        total = Decimal("0")
        for position, (name, points) in enumerate(data.rubric, start=1):
            name = (name or "").strip()
            if not name:
                continue
            value = points_value(errors, "rubric", points, f"评分项“{name}”的分值")  # two places, as kept
            if value == 0:
                errors["rubric"], value = f"评分项“{name}”的分值必须大于 0", None
            if value is not None:
                total += value
                rubric_rows.append(BidRubricItem(position=position, name=name, max_points=value))
        if not rubric_rows:
            errors["rubric"] = "请设置技术评分项"
        elif total != Decimal("100") and "rubric" not in errors:
            errors["rubric"] = f"技术评分项分值合计应为 100，当前为 {total}"
    if method is not None and ceiling is not None and "method" not in errors:
        problem = method_problem(engagement.bureau, method, wan_to_yuan(ceiling))
        if problem:
            errors["method"] = problem
    single_firm = None
    if method == ProcurementMethod.SINGLE_SOURCE:
        if len((data.justification or "").strip()) < 20:
            errors["justification"] = "单一来源采购须书面说明理由（不少于 20 字）"
        firm_id = as_int(str(data.single_source_firm_id or ""))
        single_firm = db.session.get(Firm, firm_id) if firm_id is not None else None
        if single_firm is not None and not permissions.can(actor, "firm.view", single_firm):
            single_firm = None  # a firm the bureau may not see (another bureau's applicant) is not named in the refusal
        if single_firm is None:
            errors["single_source_firm_id"] = "请选择单一来源供应商"
        else:
            reasons = eligibility.exclusion_reasons(single_firm, engagement, method)
            if reasons:
                errors["single_source_firm_id"] = f"{single_firm.name}不符合条件：" + "；".join(reasons)
    agreement = None
    if method == ProcurementMethod.FRAMEWORK_ROTATION:
        agreement_id = as_int(str(data.framework_agreement_id or ""))
        agreement = db.session.get(FrameworkAgreement, agreement_id) if agreement_id is not None else None
        if agreement is None or agreement.bureau_id not in eligibility.library_bureau_ids(engagement.bureau):
            errors["framework_agreement_id"] = "请选择本级或上级财政局的框架协议"
        elif not agreement.valid_from <= beijing_today() <= agreement.valid_until:
            errors["framework_agreement_id"] = "该框架协议不在有效期内"
    _raise_if(errors)

    previous = engagement.current_procurement
    if engagement.state == EngagementState.FAILED_PROCUREMENT:
        step, note = "rerun_procurement", data.rerun_reason
    else:
        step, note = "start_procurement", f"采购方式：{method.label}"
    workflow.check(engagement, step, actor, note=note, skip=("procurement_open",))  # refused before anything is written
    procurement = Procurement(
        engagement_id=engagement.id, bureau_id=engagement.bureau_id, method=method, title=title,
        description=(data.description or "").strip() or None, ceiling_price=wan_to_yuan(ceiling),
        price_weight=weight, low_bid_ratio=Decimal(str(get_setting(engagement.bureau, "procurement.low_bid_ratio"))),
        bid_deadline=data.bid_deadline if rubric_rows else None,
        status=ProcurementStatus.OPEN if rubric_rows else ProcurementStatus.EVALUATING,
        justification=(data.justification or "").strip() or None,
        single_source_firm_id=single_firm.id if single_firm else None,
        framework_agreement_id=agreement.id if agreement else None,
        previous_id=previous.id if previous else None, rerun_reason=(data.rerun_reason or "").strip() or None,
        created_by_id=actor.id, rubric=rubric_rows)
    if method == ProcurementMethod.SINGLE_SOURCE:
        procurement.status = ProcurementStatus.PENDING_APPROVAL
    engagement.procurements.append(procurement)
    db.session.flush()
    workflow.perform(engagement, step, actor, note=note)  # the round is open: the engagement is 采购中
    audit.record("procurement.opened", procurement, actor=actor,
                 summary=f"{engagement.reference} 发起{method.label}：{title}，最高限价 {ceiling} 万元",
                 payload={"method": method, "engagement_id": engagement.id, "price_weight": weight,
                          "deadline": procurement.bid_deadline})
    if procurement.status == ProcurementStatus.OPEN:  # the notice goes to every firm that may respond
        eligible = eligibility.assess(engagement, method).eligible
        with one_reading(firm_ids=[firm.id for firm in eligible]):  # a library of hundreds: their users read at once
            for firm in eligible:
                emit("procurement_opened", link=f"/procurements/{procurement.id}/bid", firm_id=firm.id,
                     **_fields(procurement, method=method.label, deadline=format_beijing(procurement.bid_deadline)))
    if method == ProcurementMethod.RANDOM_DRAW:
        _award_by_draw(procurement, actor)
    elif method == ProcurementMethod.FRAMEWORK_ROTATION:
        _award_by_rotation(procurement, agreement, actor)
    return procurement


LIBRARY_MEMBERS = (FirmStatus.ADMITTED, FirmStatus.SUSPENDED)  # in the library, whether drawable today or not


def _award_by_draw(procurement: Procurement, actor: User) -> Draw:
    """Announce the firm lottery (issue 14: witnessed); the award follows its reveal (``_award_drawn_firm``)."""
    engagement = procurement.engagement
    result = eligibility.assess(engagement, procurement.method)
    if not result.eligible:
        raise ValidationFailed("机构库中没有符合条件的机构，不能随机抽取。", {"method": "没有符合条件的机构"})
    names = {f.id: f.name for f in result.eligible}
    # the library's members only: an application (pending, rejected) or a firm out of the library (removed,
    # blacklisted) is no candidate at all — the drawn list is public, and those are their bureau's business
    members = db.session.execute(sa.select(Firm).where(Firm.id.in_(list(result.excluded)),
                                                       Firm.status.in_(LIBRARY_MEMBERS))).scalars().all()
    names.update({f.id: f.name for f in members})
    excluded = {f.id: result.excluded[f.id] for f in members}
    record = draws.announce("firm_lottery", f"{engagement.reference} {engagement.name}：从机构库随机抽取评价机构",
                            {f.id: f.name for f in result.eligible}, 1, excluded, names=names, actor=actor,
                            bureau_id=engagement.bureau_id, context=("procurement", procurement.id),
                            params={"procurement": procurement.id})
    procurement.draw_id = record.id
    return record


@draws.on_drawn("firm_lottery", public=True)
def _award_drawn_firm(record: Draw, actor: User) -> Award:
    procurement = db.session.get(Procurement, record.params["procurement"])
    if procurement.award is not None or procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict(f"该采购当前状态为“{procurement.status.label}”，抽取结果不能再授予。")
    refuse_short_committee(procurement, "据此定标")
    firm = db.session.get(Firm, record.result_ids[0])
    eligible = len(record.candidate_ids) - len(record.exclusions)
    note = f"从机构库符合条件的 {eligible} 家机构中随机抽取（抽取记录 #{record.id}，监督人见证，可复算核验）"
    lapsed = eligibility.exclusion_reasons(firm, procurement.engagement, procurement.method)
    if lapsed:
        # Suspended (or otherwise barred) since the announcement: not awarded; a draw derived from the witnessed
        # seed picks among the candidates that qualify now. None left: the reveal is refused (nothing written).
        candidates = db.session.execute(sa.select(Firm).where(Firm.id.in_(record.candidate_ids))).scalars().all()
        now = eligibility.exclusions(candidates, procurement.engagement, procurement.method)
        exclusions = {f.id: reasons for f, reasons in ((f, now[f.id]) for f in candidates) if reasons}
        exclusions[firm.id] = ["揭晓时已不符合条件：" + "；".join(lapsed)]
        try:
            derived = draws.derive(record, "firm_lottery_replacement", f"{procurement.title}：被抽中的机构揭晓时已不符合条件，补抽",
                                   {f.id: f.name for f in candidates}, 1, exclusions, actor=actor,
                                   context=("procurement", procurement.id))
        except DomainError as exc:
            raise Conflict("被抽中的机构揭晓时已不符合条件，机构库中已无其他符合条件的机构，暂不能揭晓；"
                           "请按流标处理或待机构库变化后再揭晓。") from exc
        firm = db.session.get(Firm, derived.result_ids[0])
        note += f"；被抽中的机构揭晓时已不符合条件（{'；'.join(lapsed)}），经派生抽取 #{derived.id} 补抽"
    return _create_award(procurement, firm, None, procurement.ceiling_price, None, actor, note)


def _award_by_rotation(procurement: Procurement, agreement: FrameworkAgreement, actor: User) -> Award:
    """顺序轮候: the next shortlisted firm in the persisted order; ineligible firms are skipped with reasons."""
    engagement = procurement.engagement
    # Two rotations at once must serve the next two firms, not the same one twice: the turn is read under a
    # lock on the agreement, as the previous holder left it.
    concurrency.serialise(f"framework.turn:{agreement.id}")
    db.session.refresh(agreement, ["next_position"])
    members = agreement.members
    if not members:
        raise ValidationFailed("框架协议中没有入围机构。", {"framework_agreement_id": "没有入围机构"})
    count = len(members)
    start = next((i for i, m in enumerate(members) if m.position >= agreement.next_position), 0)
    skipped = []
    for offset in range(count):
        member = members[(start + offset) % count]
        reasons = eligibility.exclusion_reasons(member.firm, engagement, procurement.method)
        if reasons:
            skipped.append(f"{member.position}号 {member.firm.name}：{'；'.join(reasons)}")
            continue
        following = members[(start + offset + 1) % count]
        agreement.next_position = following.position
        note = f"框架协议“{agreement.name}”顺序轮候，第 {member.position} 号入围机构承接"
        if skipped:
            # the award's reasons are public (the notice, OCDS) and the winner's to read: who was passed over, not
            # why (a rating, a watch list, a recusal); the reasons go to the audit log, for the bureau
            note += "；跳过：" + "；".join(line.split("：", 1)[0] for line in skipped) + "（不符合本任务条件）"
            audit.record("framework.skipped", agreement, actor=actor, bureau_id=agreement.bureau_id,
                         summary=f"{engagement.reference} 顺序轮候跳过 {len(skipped)} 家入围机构",
                         payload={"procurement": procurement.id, "skipped": skipped})
        return _create_award(procurement, member.firm, None, procurement.ceiling_price, None, actor, note)
    raise ValidationFailed("框架协议中的入围机构均不符合本任务条件：" + "；".join(skipped) + "。",
                           {"framework_agreement_id": "没有符合条件的入围机构"})


def approve_single_source(procurement: Procurement, actor: User, price_wan: Any) -> Award:
    """Bureau approval of a single-source procurement, by an admin other than the one who proposed it."""
    permissions.require(actor, "procurement.approve", procurement)
    if procurement.status != ProcurementStatus.PENDING_APPROVAL:
        raise Conflict(f"该采购当前状态为“{procurement.status.label}”，无需审批。")
    if procurement.created_by_id == actor.id:
        raise PermissionDenied("单一来源采购须由发起人以外的财政局管理员审批。")
    errors: dict[str, str] = {}
    price = _wan(errors, "price_wan", price_wan, "成交价格（万元）")
    if price is not None and wan_to_yuan(price) > procurement.ceiling_price:
        errors["price_wan"] = "成交价格不能超过最高限价"
    _raise_if(errors)
    procurement.approved_by_id = actor.id
    procurement.approved_at = utcnow()
    firm = procurement.single_source_firm
    return _create_award(procurement, firm, None, wan_to_yuan(price), None, actor,
                         f"单一来源采购，理由：{procurement.justification}")


# --- bids ------------------------------------------------------------------------------------------

def _deadline_passed(procurement: Procurement, now: datetime | None = None) -> bool:
    return procurement.bid_deadline is not None and (now or utcnow()) >= procurement.bid_deadline


@dataclass
class BidInput:
    price_wan: Any
    team_staff_ids: list[int]
    lead_staff_id: Any = None
    technical_filename: str | None = None
    technical_data: bytes | None = None


def lock_procurement(procurement: Procurement) -> None:
    """The procurement's row lock, which the bids, the opening and the award take (SQLite serialises writers
    anyway), then the row as the request before left it: a bid that passed the deadline check is not committed
    after the opening read the bids out."""
    db.session.execute(sa.select(Procurement.id).where(Procurement.id == procurement.id).with_for_update())
    db.session.refresh(procurement)


def submit_bid(procurement: Procurement, data: BidInput, actor: User) -> Bid:
    """Submit or replace the firm's sealed bid until the deadline."""
    if actor.role != Role.FIRM_USER or actor.firm is None:
        raise PermissionDenied("只有第三方机构用户可以投标。")
    firm = actor.firm
    lock_procurement(procurement)
    if procurement.status != ProcurementStatus.OPEN or not procurement.is_competitive:
        raise Conflict("该采购项目不在投标期内。")
    if _deadline_passed(procurement):
        raise Conflict("投标已截止，不能再提交或修改投标。")
    reasons = eligibility.exclusion_reasons(firm, procurement.engagement, procurement.method)
    if reasons:
        raise PermissionDenied("贵机构不符合本项目的参与条件：" + "；".join(reasons) + "。")
    errors: dict[str, str] = {}
    price = _wan(errors, "price_wan", data.price_wan, "投标报价（万元）")
    if price is not None and wan_to_yuan(price) > procurement.ceiling_price:
        errors["price_wan"] = f"投标报价超过最高限价 {procurement.ceiling_price / TEN_THOUSAND:.2f} 万元"
    staff_ids = {i for i in (as_int(str(raw)) for raw in data.team_staff_ids) if i is not None}
    roster = {s.id: s for s in firm.staff if s.active}
    if not staff_ids:
        errors["team_staff_ids"] = "请从本机构名册中选择项目团队成员"
    elif not staff_ids <= set(roster):
        errors["team_staff_ids"] = "项目团队成员必须是本机构名册中的在岗人员"
    lead = as_int(str(data.lead_staff_id or ""))
    if lead is not None and lead not in staff_ids:
        errors["lead_staff_id"] = "项目负责人必须是团队成员"
    elif staff_ids <= set(roster):
        # A person over the points limit could not be named on the engagement (procurement/team.py), so a bid
        # must not win on them either.
        blocked = {sid: why for sid in sorted(staff_ids) if (why := people.naming_block(roster[sid], procurement.bureau))}
        if blocked:
            errors["lead_staff_id" if lead in blocked else "team_staff_ids"] = "；".join(blocked.values())
    bid = db.session.execute(
        sa.select(Bid).where(Bid.procurement_id == procurement.id, Bid.firm_id == firm.id)
    ).scalar_one_or_none()
    stored = None
    if data.technical_data is not None or data.technical_filename:  # a chosen file, even a 0-byte one
        try:
            stored = files.store(data.technical_filename or "技术方案", data.technical_data or b"",
                                 allowed=("docx", "pdf"), actor=actor)
        except ValidationFailed as exc:
            errors["technical_file"] = exc.message
    elif bid is None or bid.technical_file_id is None:
        errors["technical_file"] = "请上传技术方案（.docx 或 .pdf）"
    _raise_if(errors)
    is_new = bid is None or bid.status == BidStatus.WITHDRAWN
    if bid is None:
        bid = Bid(procurement_id=procurement.id, firm_id=firm.id, price=wan_to_yuan(price))
        db.session.add(bid)
    bid.price = wan_to_yuan(price)
    bid.status = BidStatus.SUBMITTED
    bid.withdrawn_at = None
    bid.updated_at = utcnow()
    if stored is not None:
        bid.technical_file_id = stored.id
    # Change the team in place: replacing the collection would insert before deleting and trip the unique key.
    for member in list(bid.team):
        if member.staff_id not in staff_ids:
            bid.team.remove(member)
    kept = {m.staff_id: m for m in bid.team}
    for sid in sorted(staff_ids):
        member = kept.get(sid) or BidTeamMember(staff_id=sid)
        member.is_lead = sid == lead
        if sid not in kept:
            bid.team.append(member)
    db.session.flush()
    # The audit log is readable by bureau admins: record the act of bidding, never the sealed price.
    audit.record("bid.submitted" if is_new else "bid.updated", procurement, actor=actor,
                 summary=f"{firm.name} {'提交' if is_new else '修改'}投标（密封）", payload={"bid_id": bid.id})
    return bid


def withdraw_bid(bid: Bid, actor: User) -> None:
    if actor.role != Role.FIRM_USER or actor.firm_id != bid.firm_id:
        raise PermissionDenied("只能撤回本机构的投标。")
    lock_procurement(bid.procurement)
    db.session.refresh(bid)
    if _deadline_passed(bid.procurement) or bid.procurement.status != ProcurementStatus.OPEN:
        raise Conflict("投标已截止，不能撤回。")
    if bid.status != BidStatus.SUBMITTED:
        raise Conflict("该投标已撤回。")
    bid.status = BidStatus.WITHDRAWN
    bid.withdrawn_at = utcnow()
    audit.record("bid.withdrawn", bid.procurement, actor=actor, summary=f"{bid.firm.name} 撤回投标",
                 payload={"bid_id": bid.id})


# Registration points for a higher module's rules at the opening, before scoring and at the award (integrity:
# the collusion checks run at the opening; the committee decides every flag before any score is entered; the
# reasons for continuing despite a flag go into the award's record).
_AFTER_OPENING: list = []
_BEFORE_SCORING: list = []
_AWARD_NOTES: list = []


def after_bids_opened(fn):
    """``fn(procurement, actor)`` runs when the bids are opened (and enough remain valid)."""
    _AFTER_OPENING.append(fn)
    return fn


def before_scoring(fn):
    """``fn(procurement) -> why scores may not be entered yet, or None``."""
    _BEFORE_SCORING.append(fn)
    return fn


def award_note(fn):
    """``fn(procurement) -> text to add to the award's recorded reasons, or None``."""
    _AWARD_NOTES.append(fn)
    return fn


def award_reasons_for(award: Award, user: Optional[User]) -> str:
    """The award's reasons as ``user`` reads them: whole for the bureau side; for a firm, a budget unit or the
    public (``user`` None) without the notes higher modules add for the bureau (integrity: the committee's
    reasons on collusion flags name other bidders and what was found about them)."""
    reasons = award.reasons or ""
    if user is not None and user.role in (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN, Role.BUREAU_STAFF):
        return reasons
    procurement = db.session.get(Procurement, award.procurement_id)
    for fn in _AWARD_NOTES:
        note = fn(procurement)
        if note:
            reasons = reasons.replace("；" + note, "")
    return reasons


def scoring_block(procurement: Procurement) -> Optional[str]:
    return next((why for why in (fn(procurement) for fn in _BEFORE_SCORING) if why), None)


def _tiebreaks(procurement: Procurement) -> sa.Select:
    return sa.select(Draw).where(Draw.kind == "procurement_tiebreak", Draw.context_type == "procurement",
                                 Draw.context_id == procurement.id)


def pending_tiebreak(procurement: Procurement) -> Optional[Draw]:
    """The tie-break announced for this procurement and not yet revealed, if any."""
    return db.session.execute(draws.pending().where(Draw.kind == "procurement_tiebreak", Draw.context_type == "procurement",
                                                    Draw.context_id == procurement.id)).scalars().first()


def refuse_while_tiebreak(procurement: Procurement) -> None:
    """The ranking a tie-break was announced on is frozen until its reveal: a score or a decision changed meanwhile
    could put another bid first while the lot still awards one of the tied (87号令 第五十五条、第六十八条). It takes
    the procurement's row lock the award takes before it ranks: a score arriving while the award announces the
    draw waits for it, then sees it."""
    db.session.execute(sa.select(Procurement.id).where(Procurement.id == procurement.id).with_for_update())
    waiting = pending_tiebreak(procurement)
    if waiting is not None:
        raise Conflict(f"并列第一的随机确定已公告（抽取 #{waiting.id}），候选投标按当时的评审结果固定；"
                       "揭晓前不能更改评分、低价认定或投标的有效性。")


def open_bids(procurement: Procurement, actor: User, *, now: datetime | None = None) -> Procurement:
    """Unseal the bids after the deadline (开标). Before it, nobody at the bureau can read them."""
    permissions.require(actor, "procurement.manage", procurement.engagement)
    lock_procurement(procurement)  # a bid that checked the deadline a moment before commits first, and is read out here
    if procurement.status != ProcurementStatus.OPEN:
        raise Conflict(f"该采购当前状态为“{procurement.status.label}”，不能开标。")
    if not _deadline_passed(procurement, now):
        raise Conflict(f"投标截止时间（北京时间 {format_beijing(procurement.bid_deadline)}）未到，不能开标。")
    # The period counts from the 采购公告's posting on the designated media (the legal announcement): recorded later
    # than evalhub's publication, it may leave the deadline too soon — the bids stay sealed until it is extended.
    # (``lock_procurement`` read the row again, its posting with it: one committed before the lock is seen here.)
    blocked = periods.blocks_opening(procurement)
    if blocked:
        raise Conflict(f"{blocked}（变更投标截止时间并说明原因）。")
    procurement.status = ProcurementStatus.EVALUATING
    procurement.opened_at = utcnow()
    valid = [b for b in procurement.bids if b.status == BidStatus.SUBMITTED]
    audit.record("procurement.bids_opened", procurement, actor=actor,
                 summary=f"{procurement.title} 开标：有效投标 {len(valid)} 家",
                 payload={"bids": [{"firm": b.firm.name, "price": b.price} for b in valid]})
    if not _fail_if_too_few(procurement, actor):
        for fn in _AFTER_OPENING:
            fn(procurement, actor)
    return procurement


def minimum_valid_bids(procurement: Procurement) -> int:
    if procurement.method == ProcurementMethod.OPEN_TENDER:
        return 3  # 政府采购法: fewer than three qualified bidders → the tender fails
    return get_setting(procurement.bureau, "procurement.min_bids_consultation")


def _fail_if_too_few(procurement: Procurement, actor: User) -> bool:
    valid = valid_bids(procurement)
    needed = minimum_valid_bids(procurement)
    if len(valid) < needed:
        fail_procurement(procurement, actor, f"有效投标 {len(valid)} 家，不足 {needed} 家，{procurement.method.label}失败（流标）")
        return True
    return False


def fail_procurement(procurement: Procurement, actor: User, reason: str) -> None:
    permissions.require(actor, "procurement.manage", procurement.engagement)
    if procurement.status in (ProcurementStatus.AWARDED, ProcurementStatus.FAILED, ProcurementStatus.CANCELLED):
        raise Conflict(f"该采购当前状态为“{procurement.status.label}”。")
    procurement.status = ProcurementStatus.FAILED
    procurement.failure_reason = reason
    workflow.perform(procurement.engagement, "fail_procurement", actor, note=reason, system=True)
    audit.record("procurement.failed", procurement, actor=actor, summary=f"{procurement.title}：{reason}")
    emit("procurement_failed", link=f"/procurements/{procurement.id}", bureau_id=procurement.bureau_id,
         **_fields(procurement, reason=reason))


def valid_bids(procurement: Procurement) -> list[Bid]:
    return [b for b in procurement.bids if b.status == BidStatus.SUBMITTED
            and b.justification_decision != JustificationDecision.REJECTED]


def low_bid_threshold(procurement: Procurement) -> Optional[Decimal]:
    # The mean of the bids as opened, a rejected justification's included: fixed at the opening, so rejecting
    # one low bid never lowers the bar under the next (a cascade), and the order of decisions cannot matter.
    bids = [b for b in procurement.bids if b.status == BidStatus.SUBMITTED]
    if not bids:
        return None
    mean = sum(b.price for b in bids) / len(bids)
    return mean * procurement.low_bid_ratio / Decimal("100")  # not rounded: shown to the fen, compared exactly


def needs_justification(bid: Bid) -> bool:
    """Below the line by any amount, a fraction of a fen included (a line rounded to the fen let 280,000.00
    元 pass under a line of 280,000.0023 元)."""
    threshold = low_bid_threshold(bid.procurement)
    return threshold is not None and bid.status == BidStatus.SUBMITTED and bid.price < threshold


def explain_low_bid(bid: Bid, actor: User, explanation: str) -> None:
    if actor.role != Role.FIRM_USER or actor.firm_id != bid.firm_id:
        raise PermissionDenied("只有投标机构本身可以说明报价。")
    # the lock the committee's decision takes (refuse_while_tiebreak), then the bid as the request before left it
    lock_procurement(bid.procurement)
    db.session.refresh(bid)
    if bid.procurement.status != ProcurementStatus.EVALUATING or not needs_justification(bid):
        raise Conflict("该投标无需说明报价。")
    if bid.justification_decision is not None:  # decided on the text it read: that text stays (第六十条, once)
        raise Conflict(f"评审委员会已认定该低价说明（{bid.justification_decision.label}），不能再修改。")
    if len((explanation or "").strip()) < 10:
        raise ValidationFailed("请书面说明报价的合理性（不少于 10 字）。", {"explanation": "说明过短"})
    if bid.low_price_explanation == explanation.strip():
        return  # the same text again (a double click, a resend): recorded once
    bid.low_price_explanation = explanation.strip()
    audit.record("bid.low_price_explained", bid.procurement, actor=actor,
                 summary=f"{bid.firm.name} 对异常低价作出书面说明", payload={"bid_id": bid.id})


def decide_justification(bid: Bid, actor: User, accepted: bool, note: str | None = None) -> None:
    """The committee decides, once and during the evaluation (87号令 第六十条), whether a low price is explained;
    a rejection that leaves too few valid bids fails the procurement (流标) there and then."""
    procurement = bid.procurement
    permissions.require(actor, "procurement.manage", procurement.engagement)
    if procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict(f"该采购当前状态为“{procurement.status.label}”，评审阶段才能认定低价说明。")
    refuse_while_tiebreak(procurement)
    if not needs_justification(bid):
        raise Conflict("该投标不属于异常低价，无需认定。")
    if not bid.low_price_explanation:
        raise Conflict("投标人尚未提交书面说明。")
    decision = JustificationDecision.ACCEPTED if accepted else JustificationDecision.REJECTED
    reason = None if accepted else "异常低价且说明不被评审委员会接受" + (f"：{note.strip()}" if note and note.strip() else "")
    # once: of two decisions at the same moment, the first is kept and the second refused (compare-and-set)
    claimed = db.session.execute(sa.update(Bid).where(Bid.id == bid.id, Bid.justification_decision.is_(None)).values(
        justification_decision=decision, invalid_reason=reason if reason else Bid.invalid_reason)
        .execution_options(synchronize_session=False)).rowcount
    db.session.refresh(bid)
    if not claimed:
        raise Conflict(f"评审委员会已认定该低价说明：{bid.justification_decision.label}。")
    audit.record("bid.justification_decided", procurement, actor=actor,
                 summary=f"评审委员会认定 {bid.firm.name} 的低价说明：{bid.justification_decision.label}",
                 payload={"bid_id": bid.id, "accepted": accepted, "note": note})
    if not accepted:
        _fail_if_too_few(procurement, actor)


# --- committee and scoring -------------------------------------------------------------------------

def _hold_committee(procurement: Procurement) -> None:
    """One committee per procurement: drawing, seating, entering, scoring and releasing a seat take the procurement's
    row lock — the one the bids, the opening and the award take (``lock_procurement``), so an award never goes through on a
    committee changed meanwhile — and read the committee again under it."""
    lock_procurement(procurement)
    db.session.refresh(procurement, ["committee_draw", "committee"])


def committee_size_floor(procurement: Procurement) -> int:
    """87号令 第四十七条: a tender's committee is 5 or more, 7 or more from a budget of 1000 万元; 214号: a
    consultation's panel 3 or more (odd, both)."""
    if procurement.method != ProcurementMethod.OPEN_TENDER:
        return 3
    return 7 if procurement.ceiling_price >= 1000 * TEN_THOUSAND else 5


def _check_committee_size(procurement: Procurement, size: int) -> None:
    floor = committee_size_floor(procurement)
    if size < floor or size % 2 == 0:
        raise ValidationFailed(f"评审委员会应为不少于 {floor} 人的单数。", {"size": f"应为不少于 {floor} 的单数"})


def draw_committee(procurement: Procurement, size: int, actor: User) -> Draw:
    """Announce the draw of the bid evaluation committee from the expert pool, with avoidance against every
    bidder, the commissioner and the evaluated unit; the committee is seated when it is revealed."""
    permissions.require(actor, "procurement.manage", procurement.engagement)
    _check_committee_size(procurement, size)
    if procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict("开标后才能组建评审委员会。")
    _hold_committee(procurement)  # two clicks announce one draw
    if procurement.committee:
        raise Conflict("评审委员会已经组建。")
    if procurement.committee_draw_id is not None and procurement.committee_draw.status == DrawStatus.ANNOUNCED:
        raise Conflict(f"评审委员会抽取已公告（抽取 #{procurement.committee_draw_id}），请监督人输入数字后揭晓。")
    engagement = procurement.engagement
    pool, exclusions = _committee_pool(procurement)
    record = draws.announce("procurement_committee", f"{procurement.title}：抽取评审委员会 {size} 人",
                            {e.id: e.name for e in pool}, size, exclusions, actor=actor, bureau_id=engagement.bureau_id,
                            context=("procurement", procurement.id), params={"procurement": procurement.id})
    procurement.committee_draw_id = record.id
    return record


def _committee_pool(procurement: Procurement) -> tuple[list[Expert], dict[int, list[str]]]:
    """The experts a committee is drawn from (the usable pools), with why each may not sit: not drawable, or a
    tie with a bidder, the commissioner or the evaluated unit (both ways up the unit tree; a lower government)."""
    engagement = procurement.engagement
    pool = db.session.execute(
        sa.select(Expert).where(Expert.bureau_id.in_(eligibility.library_bureau_ids(engagement.bureau)))
        .order_by(Expert.id)).scalars().all()
    bidders = [b.firm_id for b in procurement.bids if b.status == BidStatus.SUBMITTED]
    parties = eligibility.engagement_parties(engagement)
    avoid = avoidance_reasons_of(pool, firm_ids=bidders, names=[b.firm.name for b in procurement.bids], parties=parties)
    exclusions = {}
    for expert in pool:
        reasons = expert_is_drawable(expert) + avoid[expert.id]
        if reasons:
            exclusions[expert.id] = reasons
    return pool, exclusions


def _committee_released(record: Draw) -> bool:
    """The committee's names are confidential until the result is published (the award)."""
    procurement = db.session.get(Procurement, (record.params or {}).get("procurement"))
    return procurement is not None and procurement.award is not None


@draws.on_drawn("procurement_committee", released=_committee_released)
def _seat_committee(record: Draw, actor: User) -> list[CommitteeMember]:
    procurement = db.session.get(Procurement, record.params["procurement"])
    _hold_committee(procurement)
    if procurement.committee or procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict("评审委员会已经组建或采购状态已改变，抽取结果不能再组成委员会。")
    # The rules are asked again at the reveal, of the drawn (the draw stands as recorded): one suspended, or tied
    # with a bidder since the announcement, does not sit; a draw derived from the witnessed seed fills the seat
    # among those who qualify now. Too few left: the reveal is refused, and waits for the pool to grow.
    pool, exclusions = _committee_pool(procurement)
    experts = {e.id: e for e in pool}
    lapsed = [i for i in record.result_ids if i in exclusions or i not in experts]  # out of the usable pools too
    seated = [i for i in record.result_ids if i not in lapsed]
    if lapsed:
        for expert_id in set(record.result_ids) & set(experts):
            reasons = exclusions.get(expert_id)
            exclusions[expert_id] = (["揭晓时已不符合条件：" + "；".join(reasons)] if reasons
                                     else ["已被本次抽取选中"])
        try:
            derived = draws.derive(record, "procurement_committee_replacement",
                                   f"{procurement.title}：补抽评审委员会 {len(lapsed)} 人（被抽中的专家揭晓时已不符合条件）",
                                   {e.id: e.name for e in pool}, len(lapsed), exclusions, actor=actor,
                                   context=("procurement", procurement.id))
        except DomainError as exc:
            # not how many lapsed: the result stays unknown to the operator until the reveal succeeds
            raise Conflict("被抽中的专家中有人揭晓时已不符合条件，专家库中可补抽的专家不足，暂不能揭晓；"
                           "请待专家库补充或恢复专家后再揭晓。") from exc
        seated += derived.result_ids
        audit.record("procurement.committee_replaced", procurement, actor=actor, bureau_id=record.bureau_id,
                     summary=f"{procurement.title}：{len(lapsed)} 名被抽中的专家揭晓时已不符合条件，补抽（抽取 #{derived.id}）",
                     payload={"draw": record.id, "replacement": derived.id,
                              "lapsed": {str(i): exclusions.get(i, ["不在可用专家库中"]) for i in lapsed}})
    members = [CommitteeMember(expert_id=i, name=experts[i].name) for i in seated]
    procurement.committee.extend(members)
    db.session.flush()
    return members


@on_expert_unavailable
def _release_committee_seats(expert: Expert, actor: User | None, reason: str) -> None:
    """An expert suspended, removed or with their login disabled leaves every bid committee still evaluating
    (87号令 第五十条: a member who cannot go on is replaced, "依法补足后继续评标"): the seat, with any scores the
    member entered, is released, and filled as at the reveal — a draw derived from the committee's witnessed
    draw among those who qualify now, never anyone drawn for this committee before. With nobody left to draw,
    the committee stays short, recorded for the bureau; the suspension itself goes through."""
    seats = db.session.execute(
        sa.select(CommitteeMember).join(Procurement, Procurement.id == CommitteeMember.procurement_id)
        .where(CommitteeMember.expert_id == expert.id, Procurement.status == ProcurementStatus.EVALUATING)
        .order_by(CommitteeMember.procurement_id)).scalars().all()
    for procurement in sorted({m.procurement for m in seats}, key=lambda p: p.id):
        _hold_committee(procurement)  # every one first, in one order, before this handler writes anything
    for member in seats:
        procurement = member.procurement
        if member not in procurement.committee or procurement.status != ProcurementStatus.EVALUATING:
            continue
        waiting = pending_tiebreak(procurement)
        if waiting is not None:
            # The lot was announced on a ranking this member's scores made; they go, so it no longer stands, and
            # its reveal would be refused for ever (the new member could not score while it waits). Withdrawn
            # unrevealed; the award, once the committee has scored again, announces a new one if still tied.
            draws.withdraw(waiting, f"评委 {member.name} 退出评审委员会（{reason}），其评分作废，"
                                    "并列第一的评审结果不再成立", actor)
        scored = db.session.execute(sa.delete(TechnicalScore).where(TechnicalScore.member_id == member.id)).rowcount
        procurement.committee.remove(member)  # delete-orphan: the seat goes; the draw and the audit keep who sat
        db.session.flush()
        why = f"评委 {member.name} 不再符合条件（{reason}）"
        try:
            derived = _draw_replacements(procurement, 1, why, actor)
        except DomainError:
            derived = None
        audit.record("procurement.committee_released", procurement, actor=actor,
                     bureau_id=procurement.engagement.bureau_id,
                     summary=f"{procurement.title}：{why}，退出评审委员会" + (f"，已录入的 {scored} 项评分作废" if scored else "")
                             + (f"；补抽 1 人（抽取 #{derived.id}）" if derived is not None
                                else "；专家库中无可补抽的专家，评审委员会暂缺 1 人，请财政局处理"),
                     payload={"expert_id": expert.id, "reason": reason, "scores_discarded": scored,
                              "replacement": derived.id if derived is not None else None})
    db.session.flush()


def _draw_replacements(procurement: Procurement, count: int, why: str, actor: User | None) -> Draw | None:
    """Seat ``count`` experts by a draw derived from the committee's witnessed draw, among those who qualify now
    and were never drawn for this committee; None for a committee not drawn in evalhub (entered by name).
    ``DomainError`` when the pool has too few."""
    record = procurement.committee_draw
    if record is None or record.status != DrawStatus.DRAWN:
        return None
    pool, exclusions = _committee_pool(procurement)
    earlier = db.session.execute(sa.select(Draw.result_ids).where(Draw.derived_from_id == record.id)).scalars()
    drawn = set(record.result_ids or []).union(*[set(ids or []) for ids in earlier])
    drawn |= {m.expert_id for m in procurement.committee if m.expert_id is not None}
    for expert_id in drawn & {e.id for e in pool}:
        exclusions[expert_id] = exclusions.get(expert_id, []) + ["已被本评审委员会抽取选中"]
    derived = draws.derive(record, "procurement_committee_replacement",
                           f"{procurement.title}：补抽评审委员会 {count} 人（{why}）",
                           {e.id: e.name for e in pool}, count, exclusions, actor=actor,
                           context=("procurement", procurement.id))
    experts = {e.id: e for e in pool}
    procurement.committee.extend(CommitteeMember(expert_id=i, name=experts[i].name) for i in derived.result_ids)
    return derived


def committee_shortfall(procurement: Procurement) -> int:
    """Seats a seated committee lacks (0: none). A released seat is made up before evaluation goes on (87号令
    第五十条 "依法补足后继续评标"): to the size the committee was drawn at — a 7-member committee left with 5 is
    short by 2, though 5 is odd and at a tender's floor — and never below the floor, never even (第四十七条,
    214号). An entered committee (named by the bureau) only loses a seat by hand: its size now is its size."""
    size = len(procurement.committee)
    if not size:
        return 0
    record = procurement.committee_draw
    formed = record.k if record is not None and record.status == DrawStatus.DRAWN else 0
    target = max(size, formed, committee_size_floor(procurement))
    return target + (1 - target % 2) - size


def refuse_short_committee(procurement: Procurement, what: str) -> None:
    """Refuse ``what`` (scoring, the award) while the committee is short: the bureau makes it up, or forms it again."""
    missing = committee_shortfall(procurement)
    if missing:
        raise Conflict(f"评审委员会现有 {len(procurement.committee)} 人，应有 {len(procurement.committee) + missing} 人，尚缺 {missing} 人，"
                       f"不能{what}。请先补足评审委员会（从专家库补抽或录入补充评委）后继续评审；无法及时补足的，"
                       "应停止评审，重新组建评审委员会（财政部令第87号 第五十条）。")


def make_up_committee(procurement: Procurement, actor: User, names: list[str] | None = None) -> list[CommitteeMember]:
    """Fill the seats a short committee lacks (87号令 第五十条): a committee drawn in evalhub by a draw derived from
    its witnessed draw (never someone drawn for it before), one entered by name by the names the bureau gives —
    exactly as many as are missing. The new members score; the others' scores stand."""
    permissions.require(actor, "procurement.manage", procurement.engagement)
    _hold_committee(procurement)
    if procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict("该采购不在评审阶段。")
    missing = committee_shortfall(procurement)
    if not missing:
        raise Conflict("评审委员会人数符合要求，无需补足。")
    before = list(procurement.committee)
    drawn = procurement.committee_draw is not None and procurement.committee_draw.status == DrawStatus.DRAWN
    if drawn:
        try:
            derived = _draw_replacements(procurement, missing, f"评审委员会缺 {missing} 人，依法补足", actor)
        except DomainError as exc:
            raise Conflict(f"专家库中可补抽的专家不足 {missing} 人，不能补足；请待专家库补充或恢复专家后再补抽，"
                           "或重新组建评审委员会。") from exc
        how = f"补抽（抽取 #{derived.id}）"
    else:
        names = [n.strip() for n in (names or []) if n and n.strip()]
        if len(names) != missing:
            raise ValidationFailed(f"评审委员会尚缺 {missing} 人，请录入 {missing} 名补充评委。",
                                   {"names": f"应录入 {missing} 人"})
        if any(len(n) > 50 for n in names):
            raise ValidationFailed("评委姓名不超过 50 字。", {"names": "姓名过长"})
        procurement.committee.extend(CommitteeMember(name=n) for n in names)
        how = "录入"
    db.session.flush()
    added = [m for m in procurement.committee if m not in before]
    audit.record("procurement.committee_made_up", procurement, actor=actor,
                 summary=f"{procurement.title}：评审委员会{how}补足 {len(added)} 人", payload={"members": [m.id for m in added]})
    return added


def reform_committee(procurement: Procurement, actor: User, reason: str) -> None:
    """Form the committee again when it cannot be made up in time (87号令 第五十条 "依法重新组建评标委员会进行
    评标"): every seat and every score entered goes (the draws and the audit log keep who sat); the bureau then
    draws or enters a new committee, which evaluates afresh."""
    permissions.require(actor, "procurement.manage", procurement.engagement)
    reason = (reason or "").strip()
    if len(reason) < 4:
        raise ValidationFailed("请写明重新组建评审委员会的原因。", {"reason": "必填"})
    _hold_committee(procurement)
    if procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict("该采购不在评审阶段。")
    if not committee_shortfall(procurement):
        raise Conflict("评审委员会人数符合要求，不能重新组建；评委不能继续评审的，先退出并补足。")
    refuse_while_tiebreak(procurement)
    members = list(procurement.committee)
    scored = db.session.execute(sa.delete(TechnicalScore).where(
        TechnicalScore.member_id.in_([m.id for m in members]))).rowcount
    procurement.committee.clear()
    old_draw, procurement.committee_draw_id = procurement.committee_draw_id, None
    db.session.flush()
    audit.record("procurement.committee_reformed", procurement, actor=actor,
                 summary=f"{procurement.title}：评审委员会无法及时补足，重新组建（{reason[:200]}）；原委员会 {len(members)} 人"
                         + (f"及其 {scored} 项评分" if scored else "") + "作废",
                 payload={"members": [m.name for m in members], "draw": old_draw, "scores_discarded": scored,
                          "reason": reason})


def enter_committee(procurement: Procurement, names: list[str], actor: User) -> list[CommitteeMember]:
    """A committee named by bureau staff (e.g. drawn on the procurement platform outside evalhub)."""
    permissions.require(actor, "procurement.manage", procurement.engagement)
    names = [n.strip() for n in names if n and n.strip()]
    _check_committee_size(procurement, len(names))
    too_long = [n[:10] + "…" for n in names if len(n) > 50]
    if too_long:  # committee_member.name holds 50 characters
        raise ValidationFailed(f"评委姓名不超过 50 字：{'、'.join(too_long)}", {"names": "姓名过长"})
    _hold_committee(procurement)
    if procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict("开标后才能录入评审委员会。")
    if procurement.committee:
        raise Conflict("评审委员会已经组建。")
    if procurement.committee_draw_id is not None and procurement.committee_draw.status == DrawStatus.ANNOUNCED:
        raise Conflict(f"评审委员会抽取已公告（抽取 #{procurement.committee_draw_id}），请揭晓该抽取，不能另行录入。")
    members = [CommitteeMember(name=n) for n in names]
    procurement.committee.extend(members)
    audit.record("procurement.committee_entered", procurement, actor=actor,
                 summary=f"{procurement.title}：录入评审委员会 {len(names)} 人")
    db.session.flush()
    return members


def record_technical_scores(procurement: Procurement, member: CommitteeMember,
                            scores: dict[int, dict[int, Any]], actor: User) -> None:
    """One committee member's points: {bid_id: {rubric_item_id: points}} for every valid bid and item."""
    permissions.require(actor, "procurement.manage", procurement.engagement)
    if member.procurement_id != procurement.id:
        raise ValidationFailed("该评委不属于本项目评审委员会。")
    _hold_committee(procurement)  # a seat released meanwhile is seen: its member no longer scores
    if procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict("该采购不在评审阶段。")
    if member not in procurement.committee or (member.expert is not None and member.expert.status != ExpertStatus.ACTIVE):
        # released (suspended, removed, login disabled): a member who no longer sits does not score
        raise Conflict(f"评委 {member.name} 已不在本项目评审委员会（不再符合条件），不能录入其评分。")
    refuse_short_committee(procurement, "录入评分")  # 第五十条: 补足后继续评标
    refuse_while_tiebreak(procurement)
    blocked = scoring_block(procurement)
    if blocked:
        raise Conflict(blocked)
    items = {i.id: i for i in procurement.rubric}
    bids = {b.id: b for b in procurement.bids if b.status == BidStatus.SUBMITTED}
    errors: dict[str, str] = {}
    rows = []
    for bid_id, bid in bids.items():
        for item_id, item in items.items():
            raw = scores.get(bid_id, {}).get(item_id)
            key = f"score_{bid_id}_{item_id}"
            value = points_value(errors, key, raw, f"{bid.firm.name}“{item.name}”得分", top=item.max_points)
            rows.append((bid_id, item_id, value))
    _raise_if(errors)
    db.session.execute(sa.delete(TechnicalScore).where(TechnicalScore.member_id == member.id))
    db.session.add_all(TechnicalScore(member_id=member.id, bid_id=b, rubric_item_id=i, points=v) for b, i, v in rows)
    audit.record("procurement.scores_recorded", procurement, actor=actor,
                 summary=f"{procurement.title}：录入评委 {member.name} 的技术评分")


@dataclass
class BidResult:
    bid: Bid
    valid: bool
    price_score: Optional[Decimal]
    technical_score: Optional[Decimal]
    total: Optional[Decimal]
    needs_justification: bool
    note: str = ""
    rank: Optional[int] = None
    tied: bool = False


def _q(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def tie_key(procurement: Procurement, result: BidResult) -> tuple:
    """What two bids must share to be 并列: score and price (87号令 第五十五条); in a consultation the technical
    score ranks them first (214号 第二十四条: 评审得分且最后报价相同的，按照技术指标优劣顺序推荐)."""
    if procurement.method == ProcurementMethod.COMPETITIVE_CONSULTATION:
        return result.total, result.bid.price, result.technical_score
    return result.total, result.bid.price


def evaluate(procurement: Procurement) -> list[BidResult]:
    """Comprehensive scoring: price score = lowest valid bid ÷ bid × 100; technical score = mean of the
    committee members' totals; total = price weight × price score + (1 − weight) × technical score.
    Ranking: total desc, then lower price (财政部令第87号 第五十五条: equal in both are 并列, decided by lot,
    第六十八条); in a consultation, then the higher technical score (财库〔2014〕214号 第二十四条)."""
    bids = [b for b in procurement.bids if b.status == BidStatus.SUBMITTED]
    valid = valid_bids(procurement)
    lowest = min((b.price for b in valid), default=None)
    members = procurement.committee
    scores = db.session.execute(
        sa.select(TechnicalScore.member_id, TechnicalScore.bid_id, sa.func.sum(TechnicalScore.points))
        .join(CommitteeMember, CommitteeMember.id == TechnicalScore.member_id)
        .where(CommitteeMember.procurement_id == procurement.id)
        .group_by(TechnicalScore.member_id, TechnicalScore.bid_id)).all()
    per_bid: dict[int, list[Decimal]] = {}
    for _member_id, bid_id, total in scores:
        per_bid.setdefault(bid_id, []).append(Decimal(str(total)))
    weight = procurement.price_weight / Decimal("100")
    results = []
    for bid in bids:
        flagged = needs_justification(bid)
        is_valid = bid in valid
        note = ""
        if bid.justification_decision == JustificationDecision.REJECTED:
            note = bid.invalid_reason or "异常低价说明不被接受"
        elif flagged and bid.justification_decision != JustificationDecision.ACCEPTED:
            note = "报价低于有效报价平均值的 {:f}%，须投标人说明并经评审委员会认定".format(procurement.low_bid_ratio.normalize())
        price_score = _q(lowest / bid.price * 100) if is_valid and lowest else None
        member_totals = per_bid.get(bid.id, [])
        technical = _q(sum(member_totals) / len(member_totals)) if members and len(member_totals) == len(members) else None
        total = _q(weight * price_score + (1 - weight) * technical) if price_score is not None and technical is not None else None
        results.append(BidResult(bid, is_valid, price_score, technical, total, flagged, note))
    ranked = sorted([r for r in results if r.total is not None],
                    key=lambda r: (-r.total, r.bid.price, -(r.technical_score or 0)))
    for position, result in enumerate(ranked, start=1):
        result.rank = position
    for a, b in zip(ranked, ranked[1:]):
        if tie_key(procurement, a) == tie_key(procurement, b):
            a.tied = b.tied = True
    return sorted(results, key=lambda r: (r.rank is None, r.rank or 0, r.bid.id))


def award_procurement(procurement: Procurement, actor: User, reasons: str) -> Award | Draw:
    """Award to the best-ranked bid (a tie for first: the tie-break draw is announced and returned; the award
    follows its reveal). Exactly once per engagement, even under concurrent clicks: the
    procurement row is locked (SELECT … FOR UPDATE on PostgreSQL; SQLite serialises writers) and the
    award table has unique keys on procurement and engagement."""
    permissions.require(actor, "procurement.manage", procurement.engagement)
    lock_procurement(procurement)
    if procurement.status == ProcurementStatus.AWARDED or procurement.award is not None:
        raise Conflict("该采购已经定标，不能重复授予。")
    if procurement.status != ProcurementStatus.EVALUATING or not procurement.is_competitive:
        raise Conflict(f"该采购当前状态为“{procurement.status.label}”，不能定标。")
    if not (reasons or "").strip():
        raise ValidationFailed("请填写定标理由。", {"reasons": "必填"})
    blocked = scoring_block(procurement)  # scores entered while a gate was off do not carry an award past it
    if blocked:
        raise Conflict(blocked)
    refuse_short_committee(procurement, "定标")  # read under the lock: a seat released meanwhile is seen
    if len(valid_bids(procurement)) < minimum_valid_bids(procurement):  # a refusal writes nothing: fail it by hand
        raise Conflict(f"有效投标不足 {minimum_valid_bids(procurement)} 家，不能定标，请按流标处理。")
    results = evaluate(procurement)
    ranked = [r for r in results if r.rank is not None]
    if not ranked or len(ranked) < len(valid_bids(procurement)):
        raise Conflict("评审委员会的技术评分尚未全部录入，不能定标。")
    # every flagged bid decided first: an undecided low price would still set everyone's price score (第五十五条)
    undecided = [r.bid.firm.name for r in results if r.needs_justification and r.bid.justification_decision is None]
    if undecided:
        raise Conflict(f"{'、'.join(undecided)} 报价异常偏低，须先由投标人说明、评审委员会认定后才能定标。")
    winner = ranked[0]
    note = reasons.strip()
    if winner.tied:
        # A tie-break is a witnessed draw like any other: announced here, the award follows its reveal.
        waiting = pending_tiebreak(procurement)
        if waiting is not None:
            raise Conflict(f"并列第一的随机确定已公告（抽取 #{waiting.id}），请监督人输入数字后揭晓。")
        tied = _tied_first(procurement, ranked)
        tie = [str(v) for v in tie_key(procurement, winner)]
        previous = db.session.execute(_tiebreaks(procurement).where(Draw.status == DrawStatus.DRAWN)
                                      .order_by(Draw.id.desc())).scalars().first()
        why = _redraw_reason(previous, {r.bid.id for r in tied}, tie) if previous is not None else None
        if previous is not None and why is None:
            # Re-evaluated (a challenge upheld) to the same tie: the lot already drawn stands — a second throw would
            # hand the losing side of a witnessed lot another chance.
            bid = next(r for r in tied if r.bid.id == previous.result_ids[0])
            return _create_award(procurement, bid.bid.firm, bid.bid, bid.bid.price, bid.total, actor,
                                 note + f"（重新评审后仍为同样的投标以同样的得分与报价并列第一，沿用随机抽取 #{previous.id} 的结果）")
        # Labelled by bid number: the tie-break is public and its candidate hash published — names from the public
        # library could be tried against it; the bureau's page names the tenderers (_tiebreak_names).
        return draws.announce("procurement_tiebreak", f"{procurement.title}：得分与报价均相同，随机确定{procurement.method.result_word}人",
                              {r.bid.id: f"投标 #{r.bid.id}" for r in tied}, 1, actor=actor,
                              bureau_id=procurement.bureau_id, context=("procurement", procurement.id),
                              params={"procurement": procurement.id, "reasons": note, "tie": tie},
                              redraw_of=previous, redraw_reason=why)
    return _create_award(procurement, winner.bid.firm, winner.bid, winner.bid.price, winner.total, actor, note)


def _tied_first(procurement: Procurement, ranked: list[BidResult]) -> list[BidResult]:
    """The bids tied with the first (none when the first stands alone): tied with the winner, not any tie."""
    if not ranked or not ranked[0].tied:
        return []
    key = tie_key(procurement, ranked[0])
    return [r for r in ranked if tie_key(procurement, r) == key]


def _redraw_reason(previous: Draw, tied_ids: set[int], tie: list[str]) -> Optional[str]:
    """Why a tie-break drawn before does not decide the tie now (None: it stands) — the reason the new one cites."""
    if not draws.verify(previous).ok:
        return f"原随机抽取 #{previous.id} 核验不通过，重新抽取"
    if set(draws.eligible_ids(previous)) != tied_ids:
        return f"重新评审后并列第一的投标与原随机抽取 #{previous.id} 的候选不同，重新抽取"
    if (previous.params or {}).get("tie") is None:
        return f"原随机抽取 #{previous.id} 未记录当时的得分与报价，无法确认并列情形未变，重新抽取"
    if previous.params["tie"] != tie:
        return f"重新评审后并列第一的得分或报价与原随机抽取 #{previous.id} 时不同，重新抽取"
    return None


def _tiebreak_names(record: Draw) -> dict[int, str]:
    """The tie-break's bids as the bureau reads them (the public page shows their ids only: procurement/ocds.py keeps
    the tenderers' names out of what is public)."""
    bids = db.session.execute(sa.select(Bid).where(Bid.id.in_(list(record.candidate_ids)))).scalars()
    return {b.id: f"投标 #{b.id}（{b.firm.name}）" for b in bids}


@draws.on_drawn("procurement_tiebreak", public=True, names=_tiebreak_names)
def _award_tie_winner(record: Draw, actor: User) -> Award:
    procurement = db.session.get(Procurement, record.params["procurement"])
    if procurement.award is not None or procurement.status != ProcurementStatus.EVALUATING:
        raise Conflict(f"该采购当前状态为“{procurement.status.label}”，抽取结果不能再授予。")
    refuse_short_committee(procurement, "据此定标")
    ranked = [r for r in evaluate(procurement) if r.rank is not None]
    tied = _tied_first(procurement, ranked)
    # The lot decides only among the bids it was announced on, and only while they are still the ones tied first.
    if {r.bid.id for r in tied} != set(draws.eligible_ids(record)):
        raise Conflict(f"随机抽取 #{record.id} 公告后评审结果已改变，其候选投标已不再是并列第一的投标，不能据此定标；"
                       "请核查评分记录。")
    winner = next(r for r in tied if r.bid.id == record.result_ids[0])
    return _create_award(procurement, winner.bid.firm, winner.bid, winner.bid.price, winner.total, actor,
                         record.params["reasons"] + f"（并列第一，经随机抽取 #{record.id} 确定，监督人见证）")


def _create_award(procurement: Procurement, firm: Firm, bid: Optional[Bid], amount: Decimal,
                  score: Optional[Decimal], actor: User, reasons: str) -> Award:
    engagement = procurement.engagement
    # The yearly cap holds at the award, not only at the bid: a firm may have bid on (or been proposed
    # for) several at once. The firm row is locked so two awards at the same moment count each other.
    db.session.execute(sa.select(Firm.id).where(Firm.id == firm.id).with_for_update())
    eligibility.assert_eligible(procurement, firm, "award")  # every rule again, the cap counting pending awards
    reasons = "；".join([reasons] + [n for n in (fn(procurement) for fn in _AWARD_NOTES) if n])
    word = procurement.method.result_word  # 中标 for a tender, 成交 otherwise
    # the supplier's address is part of the notice (财政部令第87号 第六十九条(三)), frozen in its text as published
    notice = (f"{engagement.bureau.name}{procurement.title}（{engagement.reference}）采用{procurement.method.label}方式，"
              f"{word}供应商：{firm.name}（统一社会信用代码 {firm.uscc}），供应商地址：{firm.address}，"
              f"{word}金额：{amount / TEN_THOUSAND:.2f} 万元"
              + (f"，综合得分 {score}" if score is not None else "")
              # the committee's names, secret until the result (第六十二条), are part of the result notice
              + (f"；评审委员会成员：{'、'.join(m.name for m in procurement.committee)}" if procurement.committee else "")
              + f"。公告日期：{beijing_today():%Y-%m-%d}。")
    award = Award(procurement_id=procurement.id, engagement_id=engagement.id, bid_id=bid.id if bid else None,
                  firm_id=firm.id, amount=amount, score=score, reasons=reasons, notice=notice,
                  awarded_by_id=actor.id)
    procurement.award = award
    procurement.status = ProcurementStatus.AWARDED
    engagement.firm = firm
    db.session.flush()  # the unique keys speak here if another award slipped in
    audit.record("procurement.awarded", procurement, actor=actor,
                 summary=f"{engagement.reference} 定标：{firm.name}，{amount / TEN_THOUSAND:.2f} 万元",
                 payload={"firm_id": firm.id, "amount": amount, "score": score, "reasons": reasons})
    _publish_result_notice(procurement, award, actor)
    return award


# --- result notice, challenge period, challenges ----------------------------------------------------

def _fields(procurement: Procurement, **more: Any) -> dict[str, Any]:
    engagement = procurement.engagement
    return {"reference": engagement.reference, "name": procurement.title, **more}


def _publish_result_notice(procurement: Procurement, award: Award, actor: User) -> ResultNotice:
    """Publish the result notice at the award (the law allows 2 working days; publishing at once leaves no
    notice overdue) and start the challenge period; tell the winner, every other bidder and the bureau."""
    bureau = procurement.bureau
    today = beijing_today()
    # The challenge period counts from the day the notice period ends (政府采购法实施条例 第五十三条(三)), one
    # working day after publication (财政部令第87号 第六十九条), so it ends 1 + N working days after publication.
    workdays = NOTICE_WORKDAYS + int(get_setting(bureau, "procurement.challenge_days"))
    challenge_until = add_working_days(bureau, today, workdays)
    notice = ResultNotice(challenge_workdays=workdays,  # kept: a calendar correction recounts this period (deadlines.py)
                          procurement_id=procurement.id, bureau_id=procurement.bureau_id, award_id=award.id,
                          firm_id=award.firm_id, supplier_name=award.firm.name, supplier_uscc=award.firm.uscc,
                          amount=award.amount, text=award.notice, published_at=utcnow(), challenge_until=challenge_until,
                          # owed on the designated media within 2 working days (87号令 第六十九条), until recorded
                          media_due_on=media.result_due(bureau, today))
    procurement.notices.append(notice)
    db.session.flush()
    workflow.refresh_due(procurement.engagement)  # the contract is owed from the notice (政府采购法 第四十六条)
    audit.record("procurement.notice_published", procurement, actor=actor,
                 summary=f"{procurement.engagement.reference} 发布结果公告，质疑期至 {notice.challenge_until:%Y-%m-%d}",
                 payload={"notice_id": notice.id, "challenge_until": notice.challenge_until})
    link = f"/procurements/{procurement.id}"
    emit("bid_won", link=f"{link}/bid", firm_id=award.firm_id,
         **_fields(procurement, amount=f"{award.amount:,.2f}", result=procurement.method.result_word))
    losers = sorted(_bidder_ids(procurement) - {award.firm_id})
    with one_reading(firm_ids=losers):
        for firm_id in losers:
            emit("bid_lost", link=f"{link}/bid", firm_id=firm_id, **_fields(procurement, result=procurement.method.result_word))
    emit("result_notice_published", link=link, bureau_id=procurement.bureau_id,
         **_fields(procurement, published=format_beijing(notice.published_at), challenge_until=f"{notice.challenge_until:%Y-%m-%d}"))
    return notice


def _bidder_ids(procurement: Procurement) -> set[int]:
    return {b.firm_id for b in procurement.bids if b.status != BidStatus.WITHDRAWN}


def participant_ids(procurement: Procurement) -> set[int]:
    """The firms that took part and so may challenge the result: every bidder (not withdrawn), the firms a
    library draw drew among, the framework agreement's members — never the firm awarded."""
    ids = _bidder_ids(procurement)
    if procurement.draw is not None:
        ids |= set(procurement.draw.candidate_ids) - {e["id"] for e in procurement.draw.exclusions}
    if procurement.framework_agreement is not None:
        ids |= {m.firm_id for m in procurement.framework_agreement.members}
    notice = procurement.notice
    return ids - ({notice.firm_id} if notice else set())


def challenge_window_open(notice: ResultNotice, today: date | None = None) -> bool:
    return (today or beijing_today()) <= notice.challenge_until


def contract_block(procurement: Procurement, today: date | None = None) -> Optional[str]:
    """Why the contract cannot be signed yet because of the notice and challenges, or None."""
    notice = procurement.notice
    if notice is None:
        return "结果公告尚未发布"
    if challenge_window_open(notice, today):
        return (f"质疑期至 {notice.challenge_until:%Y-%m-%d}（结果公告期满后 {get_setting(procurement.bureau, 'procurement.challenge_days')} "
                "个工作日，政府采购法第五十二条、实施条例第五十三条），期满后方可签订合同")
    # every notice's: a challenge filed in time against a notice revoked since is still owed its answer
    waiting = [c for n in procurement.notices for c in n.open_challenges]
    if waiting:
        return f"尚有 {len(waiting)} 件质疑未答复，答复后方可签订合同"
    return None


def _written(errors: dict[str, str], name: str, value: Optional[str], ask: str, what: str) -> str:
    """A written statement of 10 to 5000 characters (a challenge's grounds, the bureau's answer)."""
    return check_text(errors, name, value, short=f"{ask}（不少于 10 字）", label=what, minimum=10)


def file_challenge(procurement: Procurement, actor: User, grounds: str,
                   evidence: list[tuple[str, bytes]], *, today: date | None = None) -> Challenge:
    """A firm that took part challenges the result (质疑) within the period, with grounds and evidence."""
    if actor.role != Role.FIRM_USER or actor.firm is None:
        raise PermissionDenied("只有参与采购的第三方机构可以提出质疑。")
    firm = actor.firm
    notice = procurement.notice
    if notice is None:
        raise Conflict("该采购尚未发布结果公告，不能提出质疑。")
    if firm.id not in participant_ids(procurement):
        raise PermissionDenied("只有参与本项目采购的供应商（中标/成交供应商除外）可以提出质疑。")
    today = today or beijing_today()
    if not challenge_window_open(notice, today):
        raise Conflict(f"质疑期已于 {notice.challenge_until:%Y-%m-%d} 届满，不能再提出质疑（政府采购法第五十二条）。")
    errors: dict[str, str] = {}
    grounds = _written(errors, "grounds", grounds, "请写明质疑事项、事实依据和请求", "质疑内容")
    if not evidence:
        errors["evidence"] = "请上传证明材料（财政部令第94号 第十二条）"
    _raise_if(errors)
    # One challenge per firm and notice, even when the button is pressed twice on two workers.
    concurrency.serialise(f"procurement.challenge:{notice.id}:{firm.id}")
    if db.session.execute(sa.select(Challenge.id).where(Challenge.notice_id == notice.id,
                                                       Challenge.firm_id == firm.id)).first():
        raise Conflict("贵机构已对本结果公告提出质疑，请一次性提出全部质疑事项并等待答复。")
    stored = files.store_evidence(evidence, actor=actor)  # every file chosen is checked, none dropped
    bureau = procurement.bureau
    answer_days = int(get_setting(bureau, "procurement.challenge_answer_days"))
    challenge = Challenge(procurement_id=procurement.id, notice_id=notice.id, firm_id=firm.id, grounds=grounds,
                          filed_by_id=actor.id, filed_at=utcnow(), status=ChallengeStatus.OPEN,
                          answer_due=add_working_days(bureau, today, answer_days), answer_workdays=answer_days,
                          evidence=[ChallengeEvidence(file_id=f.id) for f in stored])
    db.session.add(challenge)
    db.session.flush()
    audit.record("procurement.challenge_filed", procurement, actor=actor,
                 summary=f"{firm.name} 对 {procurement.engagement.reference} 的结果提出质疑",
                 payload={"challenge_id": challenge.id, "files": [f.id for f in stored]})
    emit("challenge_filed", link=f"/procurements/{procurement.id}#challenges", bureau_id=procurement.bureau_id,
         **_fields(procurement, firm=firm.name, answer_due=f"{challenge.answer_due:%Y-%m-%d}"))
    return challenge


def answer_challenge(challenge: Challenge, actor: User, outcome: Any, answer: str, remedy: Any = None) -> Challenge:
    """The bureau answers a challenge: dismissed, or upheld — which revokes the award and either reopens the
    evaluation (competitive methods) or reruns the procurement (财政部令第94号 第三十二条)."""
    procurement = challenge.procurement
    permissions.require(actor, "procurement.manage", procurement.engagement)
    errors: dict[str, str] = {}
    status = parse_enum(errors, "outcome", ChallengeStatus, outcome, "答复结论")
    if status == ChallengeStatus.OPEN:
        errors["outcome"] = "请选择“驳回”或“成立”"
    answer = _written(errors, "answer", answer, "请书面答复质疑事项及理由", "答复")
    how = None
    if status == ChallengeStatus.UPHELD:
        how = parse_enum(errors, "remedy", ChallengeRemedy, remedy, "处理方式") if remedy not in (None, "") else None
        if how is None:
            errors.setdefault("remedy", "质疑成立时请选择处理方式：重新评审或重新采购")
        elif how == ChallengeRemedy.REEVALUATE and not procurement.is_competitive:
            errors["remedy"] = f"{procurement.method.label}没有评审环节，质疑成立只能重新开展采购"
    _raise_if(errors)
    # Compare-and-set: of two answers at the same moment exactly one lands; the other is told it is done.
    done = db.session.execute(sa.update(Challenge).where(Challenge.id == challenge.id, Challenge.status == ChallengeStatus.OPEN)
                              .values(status=status, answer=answer, remedy=how, answered_by_id=actor.id,
                                      answered_at=utcnow()).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise Conflict("该质疑已经答复。")
    db.session.refresh(challenge)
    audit.record("procurement.challenge_answered", procurement, actor=actor,
                 summary=f"答复 {challenge.firm.name} 的质疑：{status.label}" + (f"，{how.for_method(procurement.method)}" if how else ""),
                 payload={"challenge_id": challenge.id, "outcome": status, "remedy": how, "answer": answer})
    if status == ChallengeStatus.UPHELD and challenge.notice.revoked_at is None:
        # Those whose bids the outcome reopens or voids are told (财政部令第94号 第十三条 "其他有关供应商"): who took
        # part, as before the revocation, less the challenger (told below) and the winner (told of the revocation).
        others = participant_ids(procurement) - {challenge.firm_id}
        # The reason is public (the revoked notice, OCDS), so it is fixed: the answer is addressed to the
        # challenger (94号令 第十五条(一) names it) and stays between it and the bureau (challenge.view).
        _revoke_award(procurement, challenge.notice, actor, how, f"质疑成立，{how.for_method(procurement.method)}")
        for firm_id in sorted(others):
            emit("challenge_upheld", link=f"/procurements/{procurement.id}/bid", firm_id=firm_id,
                 **_fields(procurement, remedy=how.for_method(procurement.method),
                           next_step=_upheld_next_step(how, procurement)))
    emit("challenge_answered", link=f"/procurements/{procurement.id}/bid", firm_id=challenge.firm_id,
         **_fields(procurement, outcome=status.label + (f"，{how.for_method(procurement.method)}" if how else ""), answer=answer,
                   complaint=complaint_right(challenge)))
    if status == ChallengeStatus.DISMISSED:
        announce_contract_ready(challenge.notice)
    return challenge


# What an upheld challenge means for the other suppliers' bids (told to them, without the grounds or the challenger).
def _upheld_next_step(remedy: ChallengeRemedy, procurement: Procurement) -> str:
    """What an upheld challenge means for the other suppliers' part in it: a bid for a competitive method; for a
    library draw or a framework's rotation, the firm's place among the candidates (it handed in no bid)."""
    if remedy == ChallengeRemedy.REEVALUATE:
        return "评审委员会将对有效投标重新评审，贵机构的响应文件继续有效，重新评审结果将另行公告。"
    if procurement.is_competitive:
        return "本次采购终止，已提交的响应文件不再有效；财政部门将重新组织采购，请关注新的采购公告并按要求重新响应。"
    return "本次采购终止，本次确定的结果不再有效；财政部门将重新组织采购，请关注新的采购公告。"


def complaint_until(challenge: Challenge) -> date:
    """The last day the challenger may complain: 15 working days after the answer period (``COMPLAINT_WORKDAYS``)."""
    return complaint_dates([challenge])[challenge.id]


def complaint_dates(challenges: Iterable[Challenge]) -> dict[int, date]:
    """``complaint_until`` of each challenge listed, by id: one calendar read per purchasing bureau for the
    whole span of their answer periods (a page lists a procurement's challenges: one bureau, one read)."""
    by_bureau: dict[int, tuple[Bureau, list[Challenge]]] = {}
    for c in challenges:
        bureau = c.procurement.bureau
        by_bureau.setdefault(bureau.id, (bureau, []))[1].append(c)
    out: dict[int, date] = {}
    for bureau, listed in by_bureau.values():
        until = add_working_days_each(bureau, [c.answer_due for c in listed], COMPLAINT_WORKDAYS)
        out.update((c.id, until[c.answer_due]) for c in listed)
    return out


def complaint_right(challenge: Challenge, until: date | None = None) -> str:
    """The answer's notice of the right to complain, to whom and by when (财政部令第94号 第十五条(四)); ``until``
    is the challenge's ``complaint_until`` when a page has read it with the others' (``complaint_dates``)."""
    until = until or complaint_until(challenge)
    return (f"对答复不满意或者未在答复期限内收到答复的，可于 {until:%Y-%m-%d} 前（答复期满后 "
            f"{COMPLAINT_WORKDAYS} 个工作日内）向{challenge.procurement.bureau.name}（本级财政部门）依法提起投诉"
            "（政府采购法第五十五条、财政部令第94号第十七条）。")


def _revoke_award(procurement: Procurement, notice: ResultNotice, actor: User, remedy: ChallengeRemedy, reason: str) -> None:
    engagement = procurement.engagement
    award = procurement.award
    if engagement.contract is not None:  # the contract waits for the period, so this is a wiring bug
        raise Conflict(f"合同已签订，不能撤销{procurement.method.result_word}结果。")
    notice.revoked_at = utcnow()
    notice.revoked_reason = reason[:500]
    notice.award_id = None
    notice.media_due_on = None  # the result no longer stands: its posting is owed no more (the next award's is)
    db.session.flush()  # the notice lets go of the award before the award row goes
    revoked = {"firm_id": award.firm_id, "amount": award.amount, "score": award.score, "awarded_at": award.awarded_at} if award else {}
    if award is not None:
        procurement.award = None
        db.session.delete(award)  # the unique keys allow one award per engagement: the revoked one goes
    engagement.firm = None
    word = procurement.method.result_word
    team.close_team(engagement, actor, f"{word}结果已撤销：{remedy.for_method(procurement.method)}")
    db.session.flush()
    workflow.refresh_due(engagement)  # no award, no contract owed: until the next notice
    audit.record("procurement.award_revoked", procurement, actor=actor,
                 summary=f"{engagement.reference} 撤销{word}结果：{remedy.for_method(procurement.method)}", payload={"award": revoked, "reason": reason})
    emit("award_revoked", link=f"/procurements/{procurement.id}/bid", firm_id=notice.firm_id,
         **_fields(procurement, remedy=remedy.for_method(procurement.method), result=word))
    if remedy == ChallengeRemedy.REEVALUATE:
        procurement.status = ProcurementStatus.EVALUATING
    else:
        procurement.status = ProcurementStatus.FAILED
        procurement.failure_reason = reason[:500]
        workflow.perform(engagement, "fail_procurement", actor, note=reason)


class ContractHold(NamedTuple):
    """Why a contract may not be signed now: ``reason`` in Chinese; ``winner`` when it is the winner's
    eligibility at ``sign_contract`` (suspended since the award…), not the notice's challenge period or an
    unanswered challenge (``contract_block``)."""
    reason: str
    winner: bool


def contract_hold(procurement: Procurement, today: date | None = None) -> Optional[ContractHold]:
    """May the contract be signed now, and if not why: the checks ``sign_contract`` makes (the challenge period
    and open challenges, then the winner's eligibility at contract), asked by both hourly jobs — the "may be
    signed" announcement and the overdue reminder — so neither tells anyone to sign what may not be signed."""
    block = contract_block(procurement, today)
    if block is not None:
        return ContractHold(block, winner=False)
    winner = procurement.award.firm if procurement.award is not None else procurement.notice.firm
    try:
        eligibility.assert_eligible(procurement, winner, "contract")
    except Conflict as exc:
        return ContractHold(exc.message, winner=True)
    return None


def announce_contract_ready(notice: ResultNotice, today: date | None = None) -> bool:
    """Tell the bureau and the winner, once, that the period ended with no open challenge."""
    procurement = notice.procurement
    engagement = procurement.engagement
    if (notice.revoked_at is not None or notice.contract_ready_at is not None or engagement.contract is not None
            or engagement.state not in workflow.TRANSITIONS["sign_contract"].sources):  # e.g. cancelled since the award
        return False
    hold = contract_hold(procurement, today)  # "可以签订合同" means the contract may be signed
    if hold is not None:
        if hold.winner:
            # Not announced: the bureau is told why, once (the job asks every hour until the winner may sign,
            # and announces then).
            emit("contract_blocked", link=f"/engagements/{procurement.engagement_id}", bureau_id=procurement.bureau_id,
                 dedupe_key=f"contract-blocked-{notice.id}", **_fields(procurement, reason=hold.reason))
        return False
    # Claim the announcement (of two workers at once, one tells them; the other finds it taken).
    now = utcnow()
    claimed = db.session.execute(
        sa.update(ResultNotice).where(ResultNotice.id == notice.id, ResultNotice.contract_ready_at.is_(None))
        .values(contract_ready_at=now).execution_options(synchronize_session=False)).rowcount
    if not claimed:
        return False
    notice.contract_ready_at = now
    emit("contract_ready", link=f"/engagements/{procurement.engagement_id}", bureau_id=procurement.bureau_id,
         firm_id=notice.firm_id, **_fields(procurement))
    return True


@jobs.periodic("procurement.contract_ready", minute="7")
def announce_contracts_ready() -> int:
    """Hourly: every notice whose challenge period has just ended without an open challenge."""
    today = beijing_today()
    notices = db.session.execute(sa.select(ResultNotice).where(
        ResultNotice.revoked_at.is_(None), ResultNotice.contract_ready_at.is_(None),
        ResultNotice.challenge_until < today)).scalars().all()
    return sum(announce_contract_ready(n, today) for n in notices)


@jobs.periodic("procurement.contract_overdue", minute="7")
def remind_contracts_overdue(today: date | None = None) -> int:
    """Hourly: tell the bureau and the winner, once per due date, of every award whose contract is not signed
    within 30 days of the notice (``workflow.contract_due``; listed overdue by ``workflow.overdue_clause``)."""
    today = today or beijing_today()
    # an award whose notice went out before its date was stored (before this rule) gets it now
    for engagement in db.session.execute(sa.select(Engagement).where(
            Engagement.state.in_(workflow.CONTRACT_PENDING), Engagement.due_on.is_(None),
            Engagement.id.in_(sa.select(Procurement.engagement_id).join(
                ResultNotice, ResultNotice.procurement_id == Procurement.id).where(
                ResultNotice.award_id.is_not(None), ResultNotice.revoked_at.is_(None))))).scalars():
        workflow.refresh_due(engagement)
    late = db.session.execute(sa.select(Engagement).where(
        workflow.overdue_clause(today), Engagement.state.in_(workflow.CONTRACT_PENDING))).scalars().all()
    reasons = workflow.overdue_reasons(late, today)
    sent = 0
    for engagement in late:
        procurement = engagement.current_procurement
        hold = contract_hold(procurement, today)
        if hold is not None:
            # Past the 30 days but not signable now (the winner suspended since the award, a challenge still
            # unanswered): the winner is not told to sign, the bureau is told what stands in the way.
            sent += len(emit("contract_overdue_blocked", link=f"/engagements/{engagement.id}", bureau_id=engagement.bureau_id,
                             dedupe_key=reminder_key("contract-overdue-blocked", engagement.id, due=engagement.due_on),
                             reason=reasons[engagement.id], hold=hold.reason.rstrip("。"), **_fields(procurement)))
            continue
        sent += len(emit("contract_overdue", link=f"/engagements/{engagement.id}", bureau_id=engagement.bureau_id,
                         firm_id=engagement.firm_id,
                         dedupe_key=reminder_key("contract-overdue", engagement.id, due=engagement.due_on),
                         reason=reasons[engagement.id], result=procurement.method.result_word, **_fields(procurement)))
    return sent


def change_deadline(procurement: Procurement, deadline: Optional[datetime], actor: User, reason: str) -> Procurement:
    """Move the bid deadline of an open procurement; the minimum period counts from the documents' issue — the
    采购公告's posting on the designated media when recorded (``periods.announced_on``) — and a deadline brought
    forward leaves the bidders the law's notice after the change. A deadline already passed may still be extended
    while the period counted from the posting is short (the bids unopened): that is the way to a lawful opening."""
    permissions.require(actor, "procurement.manage", procurement.engagement)
    lock_procurement(procurement)  # one at a time with the opening, which reads the deadline (and the posting) under the same lock
    short = deadline_movable(procurement, "只有投标截止前的采购（或因等标期不足尚不能开标的采购）可以变更截止时间。")
    errors: dict[str, str] = {}
    problem = deadline_problem(procurement, deadline)
    if problem:
        errors["bid_deadline"] = problem
    if not (reason or "").strip():
        errors["reason"] = "请说明变更原因"
    elif len(reason.strip()) > 500:
        errors["reason"] = "变更原因不能超过 500 个字符"
    _raise_if(errors)
    old = move_deadline(procurement, deadline, actor, reason.strip(), short)
    # A changed deadline is an amendment of the documents (更正公告, 财政部令第87号 第二十七条): every potential supplier
    # is told — the firms that may respond (those the 采购公告 went to: ``open_procurement``) and every firm that bid
    # (its bid stays sealed; each firm reads only its own message).
    for firm_id in sorted(potential_suppliers(procurement)):
        emit("bid_deadline_changed", link=f"/procurements/{procurement.id}/bid", firm_id=firm_id,
             dedupe_key=f"deadline-{procurement.id}-{deadline:%Y%m%d%H%M}",
             **_fields(procurement, old=format_beijing(old), new=format_beijing(deadline),
                       reason=reason.strip().rstrip("。.；;")))
    return procurement


def deadline_movable(procurement: Procurement, refusal: str) -> Optional[str]:
    """Refuse (409, ``refusal``) unless the procurement's deadline may still move — open and before its deadline, or
    past it while the period counted from the 采购公告's posting is short (``periods.blocks_opening``, returned then,
    else None). Called under the procurement's lock (``lock_procurement``): what the opening reads."""
    short = periods.blocks_opening(procurement)
    if procurement.status != ProcurementStatus.OPEN or not procurement.is_competitive or procurement.bid_deadline is None \
            or (_deadline_passed(procurement) and short is None):
        raise Conflict(refusal)
    return short


def deadline_problem(procurement: Procurement, deadline: Optional[datetime], now: datetime | None = None) -> Optional[str]:
    """Why ``deadline`` (naive UTC) may not be the procurement's new bid deadline, or None: it must come after now,
    complete the minimum period from the documents' issue (from the 采购公告's posting on the designated media when
    that is later: ``periods.posting_problem``), and — brought forward — leave the law's notice after the change."""
    now = now or utcnow()
    if deadline is None:
        return "请设置投标截止时间"
    if deadline <= now:
        return "投标截止时间必须晚于现在"
    rule = PERIODS[procurement.method]
    problem = periods.posting_problem(procurement, deadline) or period_problem(
        procurement.bureau, rule, procurement.created_at, deadline)
    if problem is None and deadline < procurement.bid_deadline:
        problem = change_problem(procurement.bureau, rule, now, deadline)
    return problem


def move_deadline(procurement: Procurement, deadline: datetime, actor: User, reason: str, short: Optional[str],
                  **more: Any) -> datetime:
    """Write the new bid deadline, checked (``deadline_problem``) under the procurement's lock, and its audit event
    (``procurement.deadline_changed``: old, new, reason, where the period counts from; ``more`` into the payload); the
    old deadline is returned. The one place a deadline changes: ``change_deadline`` and an amendment that moves it
    (``amendments.amend_procurement``) each tell the suppliers in their own words."""
    old = procurement.bid_deadline
    procurement.bid_deadline = deadline
    counted = periods.announced_on(procurement)
    audit.record("procurement.deadline_changed", procurement, actor=actor,
                 summary=f"{procurement.title}：投标截止时间由 {format_beijing(old)} 变更为 {format_beijing(deadline)}（{reason}）"
                         + (f"；等标期自采购公告在指定媒体发布之日 {counted:%Y-%m-%d} 起算" if short else ""),
                 payload={"old": old, "new": deadline, "reason": reason, "counted_from": counted,
                          "period_was_short": short is not None, **more})
    return old


def potential_suppliers(procurement: Procurement) -> set[int]:
    """The firms an amendment of an open procurement goes to: those eligible to respond now, and those that bid."""
    eligible = {firm.id for firm in eligibility.assess(procurement.engagement, procurement.method).eligible}
    return eligible | _bidder_ids(procurement)


@dataclass
class ContractInput:
    amount_wan: Any
    signed_on: Optional[date]
    start_date: Optional[date]
    end_date: Optional[date]
    plan_due: Optional[date]
    report_due: Optional[date]
    deliverables: str
    # Why the contract is signed after the 30 days from the award notice (政府采购法 第四十六条): asked then only.
    late_reason: Optional[str] = None


def record_spending(engagement: Engagement, spent_wan: Any, actor: User) -> Engagement:
    """The bureau records the evaluated funds' actual spending from its budget-execution data, so report
    screening can check that the report states the spending and execution rate on record."""
    permissions.require(actor, "procurement.manage", engagement)
    errors: dict[str, str] = {}
    spent = _wan(errors, "spent_wan", spent_wan, "实际支出（万元）", allow_zero=True)
    if spent is not None and spent < 0:
        errors["spent_wan"] = "实际支出不能为负数"
    elif spent is not None and wan_to_yuan(spent) > engagement.amount * 2:
        errors["spent_wan"] = f"实际支出超过评价对象金额（{engagement.amount / TEN_THOUSAND:.2f} 万元）的两倍，请核对单位（万元）"
    if errors:
        raise ValidationFailed(next(iter(errors.values())) + "。", errors)
    old = engagement.spent
    engagement.spent = wan_to_yuan(spent)
    audit.record("engagement.spending", engagement, actor=actor, bureau_id=engagement.bureau_id,
                 summary=f"{engagement.reference} 记录实际支出 {spent} 万元",
                 payload={"old": str(old) if old is not None else None, "new": str(engagement.spent)})
    return engagement


def sign_contract(engagement: Engagement, data: ContractInput, actor: User) -> Contract:
    permissions.require(actor, "procurement.manage", engagement)
    procurement = engagement.current_procurement
    award = procurement.award if procurement else None
    if award is None:
        raise Conflict("尚未定标，不能签订合同。")
    if engagement.contract is not None:
        raise Conflict("该任务已签订合同。")
    blocked = contract_block(procurement)
    if blocked:
        raise Conflict(f"不能签订合同：{blocked}。")
    eligibility.assert_eligible(procurement, award.firm, "contract")
    errors: dict[str, str] = {}
    amount = _wan(errors, "amount_wan", data.amount_wan, "合同金额（万元）")
    if amount is not None and wan_to_yuan(amount) > award.amount:
        errors["amount_wan"] = f"合同金额不能超过{procurement.method.result_word}金额"
    dates_missing = False
    for name, label in [("signed_on", "签订日期"), ("start_date", "服务开始日期"), ("end_date", "服务结束日期"),
                        ("plan_due", "实施方案提交期限"), ("report_due", "评价报告提交期限")]:
        if getattr(data, name) is None:
            errors[name] = f"请填写{label}"
            dates_missing = True
    if not dates_missing:
        if data.signed_on > beijing_today():  # the bureau records a contract it has signed
            errors["signed_on"] = "签订日期不能晚于今天"
        elif data.signed_on <= procurement.notice.challenge_until:  # signed only after the period (contract_block)
            errors["signed_on"] = (f"签订日期应在质疑期（至 {procurement.notice.challenge_until:%Y-%m-%d}）届满之后："
                                   "合同在结果公告和质疑期之后签订")
        else:  # and only after every challenge was answered (contract_block)
            answered = max((to_beijing(c.answered_at).date() for n in procurement.notices for c in n.challenges
                            if c.answered_at is not None), default=None)
            if answered is not None and data.signed_on < answered:
                errors["signed_on"] = f"签订日期不能早于质疑答复日（{answered:%Y-%m-%d}）：未决质疑答复后方可签订合同"
        if data.end_date < data.start_date:
            errors["end_date"] = "服务结束日期不能早于开始日期"
        if not data.start_date <= data.plan_due <= data.report_due:
            errors["plan_due"] = "实施方案期限应在服务开始之后、报告期限之前"
        if data.report_due > data.end_date:
            errors["report_due"] = "报告期限不能晚于服务结束日期"
    # Signed after the legal 30 days: allowed (the work still has to be done), with the reason on the record.
    due = workflow.contract_due(procurement.bureau, procurement.notice.published_at)
    late_reason = (data.late_reason or "").strip()
    late = not dates_missing and data.signed_on > due
    if late:
        late_reason = check_text(errors, "late_reason", late_reason, label="逾期签订原因", minimum=10, maximum=500,
                                 short=f"签订日期晚于法定期限 {due:%Y-%m-%d}（中标、成交通知书发出之日起三十日内，"
                                       "政府采购法第四十六条），请说明逾期签订的原因（不少于 10 字）")
    if not (data.deliverables or "").strip():
        errors["deliverables"] = "请填写交付成果"
    _raise_if(errors)
    contract = Contract(engagement_id=engagement.id, award_id=award.id, firm_id=award.firm_id,
                        amount=wan_to_yuan(amount), signed_on=data.signed_on, start_date=data.start_date,
                        end_date=data.end_date, plan_due=data.plan_due, report_due=data.report_due,
                        deliverables=data.deliverables.strip(),
                        # the contract announcement is owed from the signing (实施条例 第五十条): 2 working days
                        notice_due_on=contract_notices.notice_due(engagement.bureau, data.signed_on))
    engagement.contract = contract
    db.session.flush()
    note = f"合同金额 {amount} 万元；方案 {data.plan_due:%Y-%m-%d}、报告 {data.report_due:%Y-%m-%d} 前提交"
    if late:  # recorded with the step: the timeline row and its audit event
        note += (f"；逾期签订（法定期限 {due:%Y-%m-%d}，签订日期 {data.signed_on:%Y-%m-%d}，政府采购法第四十六条），"
                 f"原因：{late_reason}")
    note += f"；合同公告应于 {contract.notice_due_on:%Y-%m-%d} 前发布（{contract_notices.LAW}）"
    workflow.perform(engagement, "sign_contract", actor, note=note)
    emit("contract_signed", link=f"/engagements/{engagement.id}", firm_id=award.firm_id, **_fields(procurement))
    return contract


# --- marketplace -----------------------------------------------------------------------------------

def opportunities_stmt(firm: Firm) -> sa.Select:
    """Every open competitive procurement still taking bids whose libraries include the firm's (an engagement
    uses its own bureau's library and every upper bureau's: so the procurements of the firm's bureau and the
    bureaus below it), soonest deadline first, with what a row shows of it — chosen by the database, not by
    reading every open procurement of the region to drop most of them."""
    return sa.select(Procurement).where(
        Procurement.status == ProcurementStatus.OPEN, Procurement.bid_deadline > utcnow(),
        permissions.in_bureaus(Procurement.bureau_id, permissions.subtree_ids(firm.bureau))) \
        .order_by(Procurement.bid_deadline, Procurement.id) \
        .options(joinedload(Procurement.engagement).options(
            joinedload(Engagement.bureau), joinedload(Engagement.budget_unit), joinedload(Engagement.plan_item),
            joinedload(Engagement.commissioner_unit)))  # what the rules read of each (``with_exclusion_reasons``)


def with_exclusion_reasons(firm: Firm, procurements: Iterable[Procurement]) -> list[tuple[Procurement, list[str]]]:
    """Each procurement with the firm's exclusion reasons (empty: may bid), every rule applied to the whole page
    at once (``eligibility.exclusion_matrix``): the statements do not grow with the procurements shown."""
    procurements = list(procurements)
    found = eligibility.exclusion_matrix([firm], [(p.engagement, p.method) for p in procurements])
    return [(p, found[(firm.id, i)]) for i, p in enumerate(procurements)]


def open_opportunities(firm: Firm) -> list[tuple[Procurement, list[str]]]:
    """Every open competitive procurement the firm could see, with its exclusion reasons (empty: may bid)."""
    return with_exclusion_reasons(firm, db.session.execute(opportunities_stmt(firm)).unique().scalars())


# --- framework agreements --------------------------------------------------------------------------

def create_framework_agreement(bureau: Bureau, actor: User, *, name: str, valid_from: date | None,
                               valid_until: date | None, firm_ids: list[Any]) -> FrameworkAgreement:
    """Record a framework agreement's shortlist in the order firms will be served (顺序轮候)."""
    permissions.require(actor, "plan.edit_bureau", bureau)
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = "请填写框架协议名称"
    if valid_from is None or valid_until is None:
        errors["valid_until"] = "请填写协议有效期"
    elif valid_until < valid_from:
        errors["valid_until"] = "有效期截止日不能早于开始日"
    ids = []
    for raw in firm_ids:
        firm_id = as_int(str(raw))
        if firm_id is not None and firm_id not in ids:
            ids.append(firm_id)
    firms = [db.session.get(Firm, i) for i in ids]
    usable = eligibility.library_bureau_ids(bureau)
    bad = [str(i) for i, f in zip(ids, firms) if f is None or f.bureau_id not in usable]
    if bad:
        errors["firm_ids"] = "入围机构必须是本级或上级机构库中的机构"
    elif len(ids) < 2:
        errors["firm_ids"] = "框架协议至少需要 2 家入围机构"
    _raise_if(errors)
    from evalhub.procurement.models import FrameworkMember

    # the same agreement registered twice (a double click, the form resent) would keep two turns of one shortlist
    concurrency.refuse_twin(f"framework.create:{bureau.id}", sa.select(FrameworkAgreement).where(
        FrameworkAgreement.bureau_id == bureau.id, FrameworkAgreement.name == name,
        FrameworkAgreement.valid_from == valid_from, FrameworkAgreement.valid_until == valid_until),
        lambda twin: f"框架协议“{twin.name}”（{twin.valid_from:%Y-%m-%d} 至 {twin.valid_until:%Y-%m-%d}）已登记，请勿重复提交。")
    agreement = FrameworkAgreement(bureau_id=bureau.id, name=name, valid_from=valid_from, valid_until=valid_until,
                                   members=[FrameworkMember(firm_id=i, position=p) for p, i in enumerate(ids, start=1)])
    db.session.add(agreement)
    db.session.flush()
    audit.record("framework.created", agreement, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name}登记框架协议“{name}”，入围机构 {len(ids)} 家（按顺序轮候）",
                 payload={"firms": ids})
    return agreement
