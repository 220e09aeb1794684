"""Demo lead evaluators (主评人) and a person with points (`flask evalhub demo`, last; issue 14).

- Every engagement a firm is working on has its lead evaluator and team, named by the firm from its roster
  (procurement/team.py): the stories name them after the contract; any still without one is named here.
- 巴州 opens a targeted case on one of them (工作底稿抽查) and records a general and a serious finding: the
  lead evaluator is charged 3 + 10 = 13 points by 巴州's table (registry/people.py) — 警示 on the firm's page
  and the person's record, under the limit of 20.
Idempotent: nothing happens once any person has points.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.models import Bureau, User
from evalhub.extensions import db
from evalhub.procurement import team
from evalhub.procurement.models import Engagement
from evalhub.registry.models import StaffPoint, StaffRole
from evalhub.supervision import services as V
from evalhub.supervision.models import Trigger
from evalhub.demo import clock
from evalhub.demo.supervision import recorder


def _firm_user(firm_id: int) -> User | None:
    return db.session.execute(sa.select(User).where(User.firm_id == firm_id, User.role == Role.FIRM_USER,
                                                    User.is_enabled.is_(True)).order_by(User.id)).scalars().first()


def load_people(echo: Callable[[str], object] = print, *, load_time: datetime | None = None) -> int:
    if db.session.execute(sa.select(StaffPoint.id)).first():
        return 0
    echo("演示数据：主评人及项目团队、人员记分 …")
    load_time = load_time or clock.now_local()
    clock.at(load_time - timedelta(minutes=20), forward_only=True)
    working = db.session.execute(sa.select(Engagement).where(
        Engagement.state.in_(team.OPEN_STATES), Engagement.firm_id.is_not(None))
        .order_by(Engagement.year.desc(), Engagement.id)).scalars().all()
    created, charged = 0, None
    for engagement in working:
        user = _firm_user(engagement.firm_id)
        roster = sorted((s for s in engagement.firm.staff if s.active),
                        key=lambda s: (s.role != StaffRole.PROJECT_LEAD, s.id))
        if user is None or not roster:
            continue
        if team.lead(engagement) is None:
            lead, others = roster[0], roster[1:3]
            team.name_team(engagement, team.TeamInput(lead_staff_id=lead.id,
                                                      member_staff_ids=[s.id for s in others]), user)
            created += 1 + len(others)
        if charged is None and engagement.bureau.code == "652800":
            charged = engagement
    db.session.commit()
    if charged is None:
        return created
    bz = db.session.execute(sa.select(Bureau).where(Bureau.code == "652800")).scalar_one()
    staff = db.session.execute(sa.select(User).where(User.username == "bz.staff")).scalar_one()
    clock.at(load_time - timedelta(minutes=10), forward_only=True)
    case = V.open_case(bz, staff, trigger=Trigger.OTHER, engagement=charged,
                       detail="现场评价阶段工作底稿抽查：核对访谈记录和佐证材料")
    officer = recorder(case, staff)
    V.add_finding(case, officer, severity="一般", description="部分访谈记录无被访谈人签字，工作底稿不完整")
    V.add_finding(case, officer, severity="严重", description="满意度调查样本数据与原始问卷不符，存在数据处理错误",
                  measures=["责令整改"])
    db.session.commit()
    return created + 3
