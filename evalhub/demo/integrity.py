"""Demo of procurement integrity (issue 17; `flask evalhub demo`, at the end).

- 轮台县's plan for the load year gets one object, procured by competitive consultation; of four bidders two
  upload the same technical proposal (the case that once went unnoticed). At the opening the consistency
  check flags the pair (财政部令第87号 第三十七条); lt.admin, for the committee, records 排除 with the reason
  (移送 when fewer than four firms could bid), so the procurement waits for its committee's scores with a
  decided flag: /procurements/<id>/integrity.
- The red flags are computed once over the whole history (the worker refreshes them hourly), with the
  delivered quality of the flagged awards against the region's median: /integrity/red-flags.
Idempotent: nothing happens once the demo procurement exists.
The demo history's own committees decide their flags before scoring (``committee_decides``).
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa

from evalhub.core.enums import Field, Role
from evalhub.core.models import Bureau, BudgetUnit, User
from evalhub.demo import clock
from evalhub.demo.documents import work_plan
from evalhub.extensions import db
from evalhub.integrity import redflags
from evalhub.integrity import services as integrity
from evalhub.integrity.models import CollusionRule, FlagDecision
from evalhub.procurement import eligibility
from evalhub.procurement import services as P
from evalhub.procurement.models import ObjectType, PlanStatus, Procurement, ProcurementMethod

TITLE = "轮台县农村饮水工程运行维护补助资金绩效评价服务（竞争性磋商）"


def committee_decides(procurement: Procurement, staff: User) -> None:
    """The demo history's committees look at each consistency flag before scoring; the generated proposals
    and round prices are alike by construction, so they find no collusion and say why."""
    for flag in integrity.open_flags(procurement):
        integrity.decide(flag, staff, FlagDecision.NOT_COLLUSION,
                         "经评审委员会核对，相关内容系采购文件规定的格式或报价巧合，未发现其他串通情形，不构成串通投标。")


def _bidders(engagement, limit: int) -> list[tuple]:
    """Eligible firms that already have an account and an active roster: (firm, user, staff ids)."""
    out = []
    for firm in eligibility.assess(engagement, ProcurementMethod.COMPETITIVE_CONSULTATION).eligible:
        user = db.session.execute(sa.select(User).where(User.firm_id == firm.id, User.role == Role.FIRM_USER)
                                  .order_by(User.id)).scalars().first()
        staff = [s.id for s in firm.staff if s.active][:2]
        if user is not None and staff:
            out.append((firm, user, staff))
        if len(out) == limit:
            break
    return out


def load_integrity(echo: Callable[[str], object] = print, *, load_time: datetime | None = None) -> int:
    if db.session.execute(sa.select(Procurement.id).where(Procurement.title == TITLE)).first():
        return 0
    lt = db.session.execute(sa.select(Bureau).where(Bureau.code == "652822")).scalar_one_or_none()
    admin = db.session.execute(sa.select(User).where(User.username == "lt.admin")).scalar_one_or_none()
    unit = db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == "轮台县农业农村局")).scalar_one_or_none()
    if lt is None or admin is None or unit is None:
        return 0
    echo("演示数据：投标文件一致性检查（轮台县，一对相同的技术方案）与采购红旗 …")
    load_time = load_time or clock.now_local()
    rng = random.Random(17)
    created = 0
    clock.at((load_time - timedelta(days=16)).date(), 9)  # a jump back: the consultation ran over the last two weeks
    plan = P.get_or_create_plan(lt, clock.now_local().year, admin)
    if plan.status == PlanStatus.DRAFT:
        P.add_plan_item(plan, P.PlanItemInput(
            name="轮台县农村饮水工程运行维护补助资金", object_type=ObjectType.PROJECT, budget_kind="一般公共预算",
            field=Field.WATER, amount_wan="860", budget_unit_id=unit.id,
            reason="覆盖全县农村供水站点，资金量大、群众关注度高"), admin)
        engagement = P.approve_plan(plan, admin, warnings_reason=(
            "本县本年度仅将农村饮水工程补助列入重点评价，其余项目纳入部门评价，次年按要求补足。"))[0]
        clock.at((load_time - timedelta(days=15)).date(), 10)
        procurement = P.open_procurement(engagement, P.ProcurementInput(
            method=ProcurementMethod.COMPETITIVE_CONSULTATION, title=TITLE, ceiling_price_wan="60", price_weight="20",
            bid_deadline=clock.to_utc((load_time - timedelta(days=3)).replace(hour=17, minute=0, second=0, microsecond=0))),
            admin)
        bidders = _bidders(engagement, 4)
        copied = None
        for index, ((firm, user, staff), price) in enumerate(zip(bidders, ["52.80", "54.30", "55.90", "57.10"])):
            clock.at((load_time - timedelta(days=12 - 2 * index)).date(), 15)
            data = work_plan(rng, object_name=engagement.name, unit=unit.name, firm=firm.name, year=engagement.year)
            if index == 0:
                copied = data
            elif index == 1:
                data = copied  # the second bidder uploads the first one's file as it is
            P.submit_bid(procurement, P.BidInput(price_wan=price, team_staff_ids=staff, lead_staff_id=staff[0],
                                                 technical_filename="技术响应文件.docx", technical_data=data), user)
            created += 1
        clock.at((load_time - timedelta(days=3)).date(), 17, 30)
        P.open_bids(procurement, admin)
        clock.at((load_time - timedelta(days=2)).date(), 10)
        for flag in integrity.open_flags(procurement):
            if flag.rule == CollusionRule.SAME_FILE:
                decision, reason = ((FlagDecision.EXCLUDE, "两家供应商上传的技术响应文件完全相同（同一文件），属于投标文件异常一致，"
                                                           "依据财政部令第87号第三十七条认定为串通投标，两家投标均无效。")
                                    if len(bidders) >= 4 else
                                    (FlagDecision.REFER, "两家供应商上传的技术响应文件完全相同，评审委员会无法当场查明原因，移送县财政局调查处理。"))
            else:
                decision, reason = FlagDecision.NOT_COLLUSION, "评审委员会核对后认为系报价习惯或格式条款所致，不构成串通投标。"
            integrity.decide(flag, admin, decision, reason)
            created += 1
        echo(f"  采购 #{procurement.id}：{len(bidders)} 家投标，一致性检查提示 {len(integrity.flags_of(procurement))} 条，均已处理")
    clock.at(load_time - timedelta(minutes=10), forward_only=True)
    record = redflags.refresh()
    medians = "，".join(f"{redflags.QUALITY_LABELS[k]} {v}" for k, v in record.medians.items() if k in redflags.QUALITY_LABELS)
    echo(f"  采购红旗：{record.procurements} 个采购项目，{record.flags} 条提示（全区中位数：{medians or '—'}）")
    db.session.commit()
    return created + record.flags
