"""Demo credit ratings and supervision (`flask evalhub demo`, after the engagements).

- A random campaign over 巴州's 2024 completed engagements (20%), run in 2025: list and results published.
- Targeted cases: one from a public complaint (a general finding, rectified, closed) and one from a low
  first-round review score (open).
- Ratings of 巴州's firms for 2023 and 2024, published and made final (2024 with two objections: one upheld
  and recomputed, one rejected); 2025 computed and published for objection.
Dated (``demo.clock``): the complaint case in summer 2025, the random campaign in autumn 2025 (once the
2024 reports are in), the 2023 ratings in October–November 2024, the 2024 ratings in December 2025 (after
the campaign's findings) and final in January 2026, the 2025 ratings published the day before the load date.
Idempotent: nothing happens once 巴州 has a campaign.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Callable

import sqlalchemy as sa

from evalhub.core import draws
from evalhub.core.models import Bureau, User
from evalhub.core.timeutil import to_beijing
from evalhub.credit import services as C
from evalhub.credit.models import CreditRating
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, EngagementState as S
from evalhub.review.models import ReviewPanel
from evalhub.supervision import services as V
from evalhub.supervision.models import CHECKLIST, InspectionCampaign, Trigger
from evalhub.demo import clock


def recorder(inspection, operator: User) -> User:
    """Who writes an inspection's record (supervision.services.recording_refusal): its officer inspector; a targeted
    case first gets one named by ``operator``, the first officer the independence rules allow (of the bureau, else
    the bureau above: 巴州's two accounts ran the procurements they would inspect)."""
    seat = next((p for p in inspection.inspectors if p.user_id), None)
    if seat is None:
        bureau = db.session.get(Bureau, inspection.bureau_id)
        staff, exclusions = V.inspector_staff_candidates(bureau, inspection.engagement, firm=inspection.firm)
        officer = next(u for u in staff if u.id not in exclusions)
        seat = V.name_inspector(inspection, operator, user_id=officer.id, reason="独立于被检查事项，熟悉该机构业务")
    return seat.user


def load_credit_and_supervision(echo: Callable[[str], object] = print, *, load_time: datetime | None = None,
                                registry_news: Callable[[], object] | None = None) -> int:
    """``load_time``: the real Beijing time of the load; ``registry_news``: the registry's recent decisions,
    run after the history and before the current ratings (the clock moves forward only)."""
    bz = db.session.execute(sa.select(Bureau).where(Bureau.code == "652800")).scalar_one()
    if db.session.execute(sa.select(InspectionCampaign.id).where(InspectionCampaign.bureau_id == bz.id)).first():
        return 0
    users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
    admin, staff = users["bz.admin"], users["bz.staff"]
    C.ensure_national_calendar()
    load_time = load_time or clock.now_local()
    created = 0

    echo("演示数据：机构年度信用评价 2023 …")
    clock.at(date(2024, 10, 14), 10)
    C.compute(bz, 2023, admin)
    clock.at(date(2024, 10, 15), 10)
    C.publish(bz, 2023, admin)
    clock.at(date(2024, 11, 18), 10)
    C.finalise(bz, 2023, admin)

    echo("演示数据：定向检查（投诉举报、评审低分）…")
    published = db.session.execute(sa.select(Engagement).where(Engagement.bureau_id == bz.id, Engagement.year == 2024,
                                                               Engagement.state == S.PUBLISHED).order_by(Engagement.id)).scalars().all()
    target = published[-1]
    clock.at(max(date(2025, 8, 12), to_beijing(target.state_changed_at).date() + timedelta(days=10)), 15)
    complaint = V.file_complaint(bureau_id=bz.id, firm_name=target.firm.name, engagement_reference=target.reference,
                                 text="该机构出具的评价报告“存在问题”一章与其他项目报告几乎相同，建议核查是否套用模板。",
                                 complainant_name="王先生", complainant_contact="13899990000", address="demo")
    clock.at((clock.now_local() + timedelta(days=2)).date(), 10)
    case = V.open_case(bz, staff, trigger=Trigger.COMPLAINT, detail="群众投诉报告套用模板", complaint=complaint, engagement=target)
    clock.at((clock.now_local() + timedelta(days=9)).date(), 16)
    officer = recorder(case, staff)
    V.record_checklist(case, officer, {key: (key != "evidence", "部分问题描述缺少证据" if key == "evidence" else "") for key, _ in CHECKLIST})
    V.add_finding(case, officer, severity="一般", description="“存在的问题”一章与该机构另一份报告重复率较高，缺少本项目证据",
                  measures=["责令整改", "约谈"])
    firm_user = db.session.execute(sa.select(User).where(User.firm_id == target.firm_id)).scalars().first()
    clock.at((clock.now_local() + timedelta(days=12)).date(), 11)
    V.respond(case, firm_user, "已重新核实问题并补充证据，修订报告已报送财政局。")
    clock.at((clock.now_local() + timedelta(days=5)).date(), 15)
    V.close(case, officer, "投诉部分属实，机构已整改。")

    echo("演示数据：不定向抽查（双随机、一公开）…")
    clock.at(date(2025, 9, 22), 10)  # the archive's 2024 reports are all in by mid-September 2025
    # A witnessed draw (issue 14): announced by the staff member, the bureau admin witnesses and enters a number.
    campaign = draws.run_witnessed(V.start_campaign(bz, 2024, staff, ratio=20), operator=staff, witnesses=[admin],
                                   numbers=["20250922"])
    clock.at(date(2025, 9, 23), 10)
    V.publish_campaign_list(campaign, staff)
    for index, inspection in enumerate(campaign.inspections):
        clock.at((clock.now_local() + timedelta(days=2)).date(), 10 + index % 6)
        officer = recorder(inspection, staff)  # the drawn officer
        V.record_checklist(inspection, officer, {key: (not (index == 0 and key == "sampling"),
                                                     "抽样记录与实施方案不一致" if index == 0 and key == "sampling" else "")
                                               for key, _ in CHECKLIST})
        if index == 0:
            V.add_finding(inspection, officer, severity="一般", description="问卷样本量少于实施方案约定的 300 份",
                          measures=["责令整改"])
            firm_user = db.session.execute(sa.select(User).where(User.firm_id == inspection.firm_id)).scalars().first()
            clock.at((clock.now_local() + timedelta(days=10)).date(), 11)
            V.respond(inspection, firm_user, "已补充发放问卷 120 份，并修订抽样复核流程。")
        clock.at((clock.now_local() + timedelta(days=1)).date(), 15)
        V.close(inspection, officer, "底稿基本完整，评分依据充分。" if index else "抽样不足，已责令整改并完成整改。")
    clock.at(max(date(2025, 11, 20), clock.now_local().date() + timedelta(days=3)), 10)
    V.publish_campaign_results(campaign, staff)
    created += len(campaign.inspections)

    echo("演示数据：机构年度信用评价 2024 …")
    clock.at(date(2025, 12, 1), 10)
    C.compute(bz, 2024, admin)
    C.publish(bz, 2024, admin)
    rated = db.session.execute(sa.select(CreditRating).where(CreditRating.bureau_id == bz.id, CreditRating.year == 2024,
                                                             CreditRating.rated.is_(True)).order_by(CreditRating.total)).scalars().all()
    objections = []
    for rating, text in zip(rated[:2], ["合同履行得分有误：实施方案实际于约定日期前以纸质方式报送。",
                                        "委托方评价偏低，与实际服务情况不符，请求复核。"]):
        clock.at((clock.now_local() + timedelta(days=1)).date(), 16)
        user = db.session.execute(sa.select(User).where(User.firm_id == rating.firm_id)).scalars().first()
        objections.append(C.object_to(rating, user, text, [("说明.txt", text.encode("utf-8"))]))
    clock.at(date(2025, 12, 9), 10)
    if objections:
        C.answer(objections[0], admin, "异议成立", "经核实纸质报送回执，予以更正并重新计算。", recompute=True)
    if len(objections) > 1:
        C.answer(objections[1], admin, "异议不成立", "委托方评价有评分表和说明为据，维持原评价。")
    clock.at(date(2026, 1, 5), 10)
    C.finalise(bz, 2024, admin)


    if registry_news is not None:
        registry_news()
    low = db.session.execute(sa.select(ReviewPanel).join(Engagement).where(
        Engagement.bureau_id == bz.id, ReviewPanel.round == 1, ReviewPanel.passed.is_(False)).order_by(ReviewPanel.score)).scalars().first()
    if low is not None:  # staff open it from their list of low first rounds
        clock.at(max(to_beijing(low.decided_at or low.created_at).replace(tzinfo=None) + timedelta(days=3),
                     clock.now_local()), forward_only=True)
        V.open_case(bz, staff, trigger=Trigger.LOW_SCORE, engagement=low.engagement,
                    detail=f"{low.engagement.reference} 报告首轮评审仅 {low.score} 分，低于通过线 {low.pass_mark} 分")
    created += 2
    echo("演示数据：机构年度信用评价 2025（公示中）…")
    clock.at((load_time - timedelta(days=1)).date(), 10, forward_only=True)
    C.compute(bz, 2025, admin)
    C.publish(bz, 2025, admin)
    created += db.session.execute(sa.select(sa.func.count(CreditRating.id))).scalar_one()
    return created
