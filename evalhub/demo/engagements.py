"""Demo plans, procurements and reviews (`flask evalhub demo`, after the registry demo).

巴州's 2024 key evaluations are the eleven objects of seed 002 (nine reports published, two withheld as
classified); 民丰县's are the five of seed 003. 2025 plans hold engagements in every state of the state
machine and procurements of every method with bids. Everything goes through the services, so the
timelines, draws and audit chain are real. Idempotent: nothing happens when 巴州's 2024 plan exists.
Dates (``demo.clock``): the 2023 and 2024 plans run on the days they would have (approved in March, procured
in spring, work plans a month after the contract, reports by the end of May of the next year, a few firms
late), their engagements interleaved in time order; the 2025 plan — the current cycle — is placed relative to
the load date, so its deadlines are days or weeks away and the few overdue items are overdue by days.
"""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Callable

import sqlalchemy as sa

from evalhub.core import draws as draws_module
from evalhub.core.enums import Field, Role
from evalhub.core.models import Bureau, BudgetUnit, User
from evalhub.core.calendar import add_working_days, ensure_national_calendar, is_workday
from evalhub.core.services import create_user
from evalhub.demo import clock
from evalhub.demo.clock import Story
from evalhub.demo.documents import contract_text, redacted_report, report as make_report, work_plan as make_work_plan
from evalhub.extensions import db
from evalhub.procurement import amendments, contract_notices, eligibility, media, services as P, team, workflow
from evalhub.procurement.models import (
    Award, BidStatus, ChallengeStatus, DesignatedMedium, Engagement, NoticeKind, EngagementState as S, EvaluationPlan, FrameworkAgreement, FrameworkMember, ObjectType,
    Procurement, ProcurementMethod as M, WithheldContent,
)
from evalhub.registry.models import Expert, ExpertStatus, Firm, FirmStatus
from evalhub.registry.services import StaffInput, add_staff
from evalhub.review import services as R
from evalhub.review.models import InvitationStatus, RubricKind, SubmissionKind

PASSWORD = "evalhub-demo"
T = ObjectType

# seed 002: 巴州本级 2024 重点绩效评价 (11 objects, ¥5.38亿; two reports withheld)
BZ_2024 = [
    ("巴州统计局第五次全国经济普查项目", T.PROJECT, "一般公共预算", Field.STATISTICS, "3120", "巴州统计局"),
    ("巴州农业科学研究院 2024 年棉花产业集群项目", T.PROJECT, "一般公共预算", Field.AGRICULTURE, "8650", "巴州农业科学研究院"),
    ("巴州民政局社会服务设施兜底工程-儿童福利设施项目", T.PROJECT, "政府性基金预算", Field.SOCIAL, "4210", "巴州民政局"),
    ("巴州医疗保障局 2024 城乡居民基本医疗保险财政补助资金", T.POLICY, "社会保险基金预算", Field.HEALTH, "12600", "巴州医疗保障局"),
    ("巴州红旗高级技工学校中央现代职业教育质量提升项目", T.PROJECT, "一般公共预算", Field.EDUCATION, "2380", "巴州红旗高级技工学校（巴州红旗中等职业学校）"),
    ("博斯腾湖化学需氧量超标溯源及监测平台建设项目", T.GOVERNMENT_PROCUREMENT, "一般公共预算", Field.ENVIRONMENT, "1960", "巴州博斯腾湖科学研究所"),
    ("库尔勒经济技术开发区市场监督管理局部门整体支出", T.DEPARTMENT, "一般公共预算", Field.FINANCE, "2870", "库尔勒经济技术开发区市场监督管理局"),
    ("库尔勒经济技术开发区人才服务中心政府购买服务项目", T.SERVICE_PURCHASE, "一般公共预算", Field.SOCIAL, "1450", "库尔勒经济技术开发区人才服务中心"),
    ("库尔勒经济技术开发区财政运行综合绩效", T.LOWER_GOVERNMENT, "一般公共预算", Field.FINANCE, "6900", "库尔勒经济技术开发区管理委员会经济发展局"),
    ("巴州水利局水库除险加固政府采购项目", T.GOVERNMENT_PROCUREMENT, "政府债务资金", Field.WATER, "5300", "巴州水利局"),
    ("巴州本级对下转移支付财政运行综合绩效", T.LOWER_GOVERNMENT, "一般公共预算", Field.FINANCE, "4360", "巴州民政局"),
]
# seed 003: 民丰县 2023 重点项目 (five objects, ¥11285.11万)
MF_2024 = [
    ("民丰县污水处理厂运营项目", T.PROJECT, "一般公共预算", Field.ENVIRONMENT, "1680.50", "民丰县住房和城乡建设局"),
    ("民丰县困难群众救助资金", T.POLICY, "一般公共预算", Field.SOCIAL, "4320.00", "民丰县民政局"),
    ("民丰县彩票公益金项目", T.PROJECT, "政府性基金预算", Field.SOCIAL, "860.61", "民丰县财政局-彩票公益金"),
    ("民丰县文化体育广播电视和旅游局部门整体支出", T.DEPARTMENT, "一般公共预算", Field.CULTURE, "1204.00", "民丰县文化体育广播电视和旅游局"),
    ("民丰县农村污水处理项目", T.PROJECT, "政府债务资金", Field.ENVIRONMENT, "3220.00", "民丰县农业农村和水利局"),
]
BZ_2023 = [
    ("巴州教育高质量发展专项资金", T.POLICY, "一般公共预算", Field.EDUCATION, "5200", "巴州红旗高级技工学校（巴州红旗中等职业学校）"),
    ("巴州农村饮水安全巩固提升工程", T.PROJECT, "政府债务资金", Field.WATER, "3900", "巴州水利局"),
    ("巴州城乡居民临时救助资金", T.PROJECT, "一般公共预算", Field.SOCIAL, "1650", "巴州民政局"),
    ("库尔勒经济技术开发区市场监督管理局部门整体支出（2023）", T.DEPARTMENT, "一般公共预算", Field.FINANCE, "2500", "库尔勒经济技术开发区市场监督管理局"),
]
BZ_2025 = [
    ("巴州统计局统计基础能力建设项目", T.PROJECT, Field.STATISTICS, "980", "巴州统计局", S.PLANNED),
    ("巴州水利局部门整体支出", T.DEPARTMENT, Field.WATER, "7600", "巴州水利局", S.PROCURING),
    ("库尔勒经济技术开发区财政运行综合绩效（2025）", T.LOWER_GOVERNMENT, Field.FINANCE, "7100", "库尔勒经济技术开发区管理委员会经济发展局", S.FAILED_PROCUREMENT),
    ("巴州民政局养老服务体系建设项目", T.PROJECT, Field.SOCIAL, "3300", "巴州民政局", S.CONTRACTED),
    ("巴州医疗保障局医疗救助资金", T.POLICY, Field.HEALTH, "5400", "巴州医疗保障局", S.PLAN_IN_REVIEW),
    ("巴州农业科学研究院种业振兴项目", T.PROJECT, Field.AGRICULTURE, "2650", "巴州农业科学研究院", S.FIELDWORK),
    ("巴州红旗高级技工学校实训基地建设项目", T.PROJECT, Field.EDUCATION, "1900", "巴州红旗高级技工学校（巴州红旗中等职业学校）", S.REPORT_IN_REVIEW),
    ("巴州博斯腾湖科学研究所湖泊生态监测项目", T.PROJECT, Field.ENVIRONMENT, "1200", "巴州博斯腾湖科学研究所", S.REPORT_RETURNED),
    ("库尔勒经济技术开发区人才服务中心就业服务项目", T.SERVICE_PURCHASE, Field.SOCIAL, "900", "库尔勒经济技术开发区人才服务中心", S.ACCEPTED),
    ("库尔勒经济技术开发区市场监督管理局食品安全抽检项目", T.GOVERNMENT_PROCUREMENT, Field.HEALTH, "760", "库尔勒经济技术开发区市场监督管理局", S.CANCELLED),
    # awarded by a draw from the library three days before the load date: its result notice is in the
    # challenge period, the contract waits
    ("巴州统计局统计执法检查专项经费", T.PROJECT, Field.STATISTICS, "620", "巴州统计局", S.PROCURING),
]
IN_CHALLENGE_PERIOD = BZ_2025[-1][0]
# the open consultation whose documents are amended after the first response (a 更正公告: procurement/amendments.py)
AMENDED = "巴州水利局部门整体支出"
AMENDMENT = ("磋商文件第四章评分标准“项目团队与人员资质”中“项目负责人须具有高级职称”更正为“项目负责人须具有中级及以上职称”；"
             "其余内容不变。已提交响应文件的供应商可在截止时间前修改或撤回。")


class _Demo:
    def __init__(self, echo: Callable[[str], object]) -> None:
        self.echo = echo
        self.rng = random.Random(2024)
        self.users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
        self.bz = self._bureau("652800")
        self.mf = self._bureau("653227")
        self.engagements: dict[tuple[str, int], list[Engagement]] = {}  # (bureau code, year) → the approved plan's

    def _bureau(self, code: str) -> Bureau:
        return db.session.execute(sa.select(Bureau).where(Bureau.code == code)).scalar_one()

    def _unit(self, name: str) -> BudgetUnit:
        return db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == name)).scalar_one()

    # --- people who act ----------------------------------------------------------------------------

    def firm_user(self, firm: Firm) -> User:
        user = db.session.execute(sa.select(User).where(User.firm_id == firm.id)).scalars().first()
        if user is None:
            user = create_user(username=f"firm-{firm.id}", password=PASSWORD, display_name=f"{firm.name} 联系人",
                               role=Role.FIRM_USER, actor=self.users["admin"], firm_id=firm.id)
        if not [s for s in firm.staff if s.active]:
            from evalhub.core.validators import compose_id_number

            add_staff(firm, StaffInput(name=f"{firm.name[:2]}项目负责人", role="项目负责人", years_experience=12,
                                       id_number=compose_id_number("652801", "19800101", 100 + firm.id % 800)), user)
        return user

    def expert_logins(self, *bureaus: Bureau) -> None:
        """The demo's experts review online, and a panel drawn for online review takes only experts who can
        sign in (review.services.NO_LOGIN): every active expert of these bureaus' pools gets an activated
        login (zj<id>, the demo password) before the first draw."""
        ids: set[int] = set()
        for bureau in bureaus:
            ids.update(db.session.execute(sa.select(Expert.id).where(
                Expert.bureau_id.in_(eligibility.library_bureau_ids(bureau)),
                Expert.status == ExpertStatus.ACTIVE)).scalars())
        for expert_id in sorted(ids):
            self.expert_user(expert_id)

    def expert_user(self, expert_id: int) -> User:
        user = db.session.execute(sa.select(User).where(User.expert_id == expert_id)).scalar_one_or_none()
        if user is None:
            user = create_user(username=f"zj{expert_id:04d}", password=PASSWORD, display_name=f"专家{expert_id}",
                               role=Role.EXPERT, actor=self.users["admin"], expert_id=expert_id)
        return user

    # --- plans -------------------------------------------------------------------------------------

    def plan(self, bureau: Bureau, year: int, rows, admin: str, staff: str, *, drafted: datetime,
             approved: datetime) -> Story:
        """Drafted, then approved some days later; yields its steps' times and leaves the engagements in
        ``self.engagements[(bureau.code, year)]``."""
        yield drafted
        plan = P.get_or_create_plan(bureau, year, self.users[staff])
        for row in rows:
            name, kind, budget, field, amount, unit = row[:6]
            P.add_plan_item(plan, P.PlanItemInput(
                name=name, object_type=kind, budget_kind=budget, field=field, amount_wan=amount,
                budget_unit_id=self._unit(unit).id, reason="资金量大、涉及面广、社会关注度高，列入年度重点绩效评价"), self.users[staff])
        yield approved
        self.engagements[(bureau.code, year)] = P.approve_plan(
            plan, self.users[admin], warnings_reason="本年度预算规模较上年压减，重点评价对象按资金量和关注度择优确定，"
                                                    "其余项目纳入部门评价和财政运行监控，次年补足。")

    # --- time ----------------------------------------------------------------------------------------

    def after(self, days: float = 0, *, hour: int | None = None, workday: bool = False) -> datetime:
        """A Beijing time ``days`` after the clock's; ``hour``: at that hour (a random minute); ``workday``:
        moved to the next working day of the national calendar (bureau staff do not work on rest days)."""
        when = clock.now_local() + timedelta(days=days)
        if workday:
            while not is_workday(self.bz, when.date()):
                when += timedelta(days=1)
        if hour is not None:
            when = when.replace(hour=hour, minute=self.rng.randint(0, 50))
        return when

    # --- procurement -------------------------------------------------------------------------------

    def eligible(self, engagement: Engagement, method=M.COMPETITIVE_CONSULTATION) -> list[Firm]:
        return eligibility.assess(engagement, method).eligible

    def competitive(self, engagement: Engagement, method: M, staff: User, *, bidders: int, award: bool = True,
                    low_bid: bool = False, bid_gap: float = 2, amend: str | None = None) -> Story:
        """Opened now with a 20-day bid window; bids come in over the window (``bid_gap`` days apart), the
        bids are opened after the deadline, the committee scores them and the best is awarded. ``amend``: the text
        of a 澄清/更正公告 published after the first bid (its bidder is told it may revise)."""
        opened = clock.now_local()
        # 20 days, or to the first working day after a 20th day on a holiday (the open tender's minimum period)
        last = P.earliest_deadline_day(engagement.bureau, P.OPEN_TENDER_PERIOD, clock.to_utc(opened))
        deadline = (opened + timedelta(days=(last - opened.date()).days)).replace(hour=17, minute=0)
        ceiling = self._ceiling(engagement)
        p = P.open_procurement(engagement, P.ProcurementInput(
            method=method, title="", ceiling_price_wan=str(ceiling), price_weight="20" if method == M.COMPETITIVE_CONSULTATION else "30",
            bid_deadline=clock.to_utc(deadline)), staff)
        self.post_on_media(engagement, NoticeKind.PROCUREMENT, p.id, staff)
        done: set[int] = set()
        for index in range(bidders):
            yield opened + timedelta(days=1 + index * bid_gap, hours=self.rng.randint(0, 6))
            # who may still bid is decided at the bid (another award may have used up a firm's yearly cap)
            firm = next((f for f in self.eligible(engagement, method) if f.id not in done), None)
            if firm is None:
                break
            done.add(firm.id)
            user = self.firm_user(firm)
            staff_ids = [s.id for s in firm.staff if s.active][:3]
            factor = Decimal("0.5") if (low_bid and index == 0) else Decimal(str(round(self.rng.uniform(0.82, 0.98), 2)))
            P.submit_bid(p, P.BidInput(price_wan=str((ceiling * factor).quantize(Decimal("0.01"))), team_staff_ids=staff_ids,
                                       lead_staff_id=staff_ids[0], technical_filename="技术方案.docx",
                                       technical_data=make_work_plan(self.rng, object_name=engagement.name,
                                                                     unit=engagement.budget_unit.name, firm=firm.name,
                                                                     year=engagement.year)), user)
            if amend and index == 0:
                yield opened + timedelta(days=1 + bid_gap / 2, hours=7)
                amendments.amend_procurement(p, amendments.AmendmentInput(text=amend), staff)
        if not award:
            return
        yield deadline + timedelta(minutes=30)
        P.open_bids(p, staff)
        if engagement.state == S.FAILED_PROCUREMENT:
            return
        yield self.after(1, hour=9, workday=True)  # the committee meets the next working day
        members = P.enter_committee(p, ["王建国", "李慧", "阿依古丽", "张海涛", "刘强"][:P.committee_size_floor(p)], staff)
        from evalhub.demo.integrity import committee_decides  # the committee first decides any collusion flag

        committee_decides(p, staff)
        for member in members:
            scores = {}
            for bid in p.bids:
                if bid.status == BidStatus.SUBMITTED:
                    base = self.rng.uniform(0.72, 0.95)
                    scores[bid.id] = {item.id: (item.max_points * Decimal(str(round(base, 2)))).quantize(Decimal("0.1"))
                                      for item in p.rubric}
            P.record_technical_scores(p, member, scores, staff)
        for bid in p.bids:
            if P.needs_justification(bid):
                yield self.after(0.1)
                P.explain_low_bid(bid, self.firm_user(bid.firm), "本机构在当地设有常驻团队，可节约差旅和人工成本，报价构成见附件。")
                yield self.after(0.2)
                P.decide_justification(bid, staff, False, "成本测算依据不足")
        yield self.after(0.1)
        draws_module.run_witnessed(P.award_procurement(p, staff, "综合得分排名第一，推荐为成交供应商"))
        if p.notice is not None:
            self.post_on_media(engagement, NoticeKind.RESULT, p.notice.id, staff)

    def post_on_media(self, engagement: Engagement, kind: NoticeKind, notice_id: int, staff: User) -> None:
        """The bureau posts the notice on the designated media the same day and records it (procurement/media.py);
        about one in ten is left unrecorded, so the pages show "未登记指定媒体发布" too."""
        rng = random.Random(f"media-{kind.value}-{notice_id}")  # its own: the story's draws stay as they were
        if rng.random() < 0.1:
            return
        today = clock.now_local().date()
        xinjiang = rng.random() < 0.5
        host = "www.ccgp-xinjiang.gov.cn" if xinjiang else "www.ccgp.gov.cn"
        path = {NoticeKind.PROCUREMENT: "cggg", NoticeKind.RESULT: "zbgg", NoticeKind.CONTRACT: "htgg"}[kind]
        media.record_posting(engagement, kind, notice_id, media.PostingInput(
            medium=DesignatedMedium.XINJIANG if xinjiang else DesignatedMedium.CCGP, posted_on=today,
            url=f"http://{host}/{path}/{today:%Y%m}/t{today:%Y%m%d}_{engagement.bureau.code}{notice_id:06d}.htm"), staff)

    def _ceiling(self, engagement: Engagement) -> Decimal:
        return max(Decimal("8"), (engagement.amount / 10000 * Decimal("0.006")).quantize(Decimal("0.01")))

    def contract(self, engagement: Engagement, staff: User, *, plan_due: date | None = None,
                 report_due: date | None = None, challenged: bool = False) -> Story:
        """Signed in the first working days after the result notice's challenge period (and after the answer
        to a challenge, ``challenged``: a losing bidder challenges, the bureau dismisses it); the work plan is
        due a month later, the report by the end of May of the next year (or the dates given)."""
        procurement = engagement.current_procurement
        notice = procurement.notice
        if challenged:
            loser = next(b.firm for b in procurement.bids if b.firm_id != procurement.award.firm_id)
            yield self.after(2, hour=16, workday=True)
            grounds = ("对成交结果提出质疑：成交供应商项目团队中两名成员同期承担其他评价项目，"
                       "技术评分中“团队配置”一项得分偏高，请求复核评审委员会的评分。")
            challenge = P.file_challenge(procurement, self.firm_user(loser), grounds,
                                         [("质疑函.txt", f"{loser.name}质疑函\n{grounds}\n".encode("utf-8"))])
            yield self.after(4, hour=11, workday=True)
            P.answer_challenge(challenge, staff, ChallengeStatus.DISMISSED,
                               "经复核评审委员会评分记录及成交供应商投标文件，团队成员的在岗承诺和工作量安排符合采购文件要求，"
                               "“团队配置”评分依据充分，质疑事项不成立，予以驳回。")
        if notice is not None:  # the contract waits for the challenge period (政府采购法第五十二条)
            yield clock.beijing(add_working_days(engagement.bureau, notice.challenge_until, self.rng.randint(1, 3)), 15)
        else:
            yield self.after(12, hour=15, workday=True)
        signed = clock.now_local().date()
        y = engagement.year
        plan_due = plan_due or signed + timedelta(days=30)
        report_due = report_due or date(y + 1, 5, 31)
        award = engagement.current_procurement.award
        contract = P.sign_contract(engagement, P.ContractInput(
            amount_wan=str((award.amount / 10000).quantize(Decimal("0.01"))), signed_on=signed,
            start_date=signed, end_date=max(report_due + timedelta(days=30), date(y + 1, 6, 30)), plan_due=plan_due,
            report_due=report_due, deliverables="实施方案、评价报告（含指标评分表）、工作底稿"), staff)
        # the contract announcement the same day (政府采购法实施条例 第五十条: within 2 working days of the signing)
        contract_notices.publish_notice(engagement, contract_notices.NoticeInput(
            services=contract.deliverables, filename="合同（公开版）.docx", data=contract_text(
                name=engagement.name, purchaser=engagement.commissioner_name, supplier=contract.firm.name,
                amount_wan=(contract.amount / 10000).quantize(Decimal("0.01")), signed=f"{signed:%Y-%m-%d}",
                start=f"{contract.start_date:%Y-%m-%d}", end=f"{contract.end_date:%Y-%m-%d}",
                deliverables=contract.deliverables), withheld=WithheldContent.COMMERCIAL_SECRET,
            withheld_reason="合同附件中乙方的分项报价明细含人工成本构成，属于乙方商业秘密，公开版已删去。"), staff)
        self.post_on_media(engagement, NoticeKind.CONTRACT, contract.notice.id, staff)
        self.name_team(engagement)  # at the signing: the team the bid promised becomes the engagement's

    def name_team(self, engagement: Engagement) -> None:
        """The firm confirms the team its bid proposed (its first roster people when it bid none) as the
        engagement's 主评人 and team: reports are handed in under a named lead (procurement/team.py)."""
        lead_id, member_ids = team.proposed(engagement)
        if lead_id is None:
            roster = [s.id for s in engagement.firm.staff if s.active]
            lead_id, member_ids = roster[0], roster[:3]
        team.name_team(engagement, team.TeamInput(lead_staff_id=lead_id, member_staff_ids=member_ids),
                       self.firm_user(engagement.firm))

    def procure(self, engagement: Engagement, method: M, admin: User, staff: User, *, sign: bool = True,
                plan_due: date | None = None, report_due: date | None = None, **kw) -> Story:
        if method in (M.OPEN_TENDER, M.COMPETITIVE_CONSULTATION):
            yield from self.competitive(engagement, method, staff, bidders=kw.get("bidders", 4), low_bid=kw.get("low_bid", False))
        elif method == M.RANDOM_DRAW:  # announced, then witnessed and revealed (issue 14)
            self.lottery(P.open_procurement(engagement, P.ProcurementInput(method=method, title="", ceiling_price_wan="12"),
                                            staff).draw)
        elif method == M.FRAMEWORK_ROTATION:
            P.open_procurement(engagement, P.ProcurementInput(method=method, title="", ceiling_price_wan="15",
                                                              framework_agreement_id=kw["agreement"].id), staff)
        elif method == M.SINGLE_SOURCE:
            firm = self.eligible(engagement, method)[0]
            p = P.open_procurement(engagement, P.ProcurementInput(
                method=method, title="", ceiling_price_wan="10", single_source_firm_id=firm.id,
                justification="该项目为上一周期评价的延续，需沿用原指标体系和基础数据，仅原机构具备条件。"), staff)
            yield self.after(2, hour=11, workday=True)  # the bureau's approval of the single source
            P.approve_single_source(p, admin, "9.5")
        if engagement.state == S.FAILED_PROCUREMENT and kw.get("rerun", True):
            yield self.after(5, hour=10, workday=True)
            self.lottery(P.open_procurement(engagement, P.ProcurementInput(
                method=M.RANDOM_DRAW, title="", ceiling_price_wan="12",
                rerun_reason=f"{method.label}有效投标不足，金额较小，改为从机构库随机抽取"), staff).draw)
        current = engagement.current_procurement
        if (current is not None and current.method not in (M.OPEN_TENDER, M.COMPETITIVE_CONSULTATION)
                and current.notice is not None):  # the competitive ones are posted at their award (``competitive``)
            self.post_on_media(engagement, NoticeKind.RESULT, current.notice.id, staff)
        if sign and engagement.state == S.PROCURING and engagement.current_procurement.award is not None:
            yield from self.contract(engagement, staff, plan_due=plan_due, report_due=report_due,
                                     challenged=kw.get("challenged", False))

    # --- review ------------------------------------------------------------------------------------

    def submission_time(self, due: date, *, late: bool, earliest: datetime) -> datetime:
        """Most firms hand in a few days to weeks before the due date; a late one 2–12 days after it."""
        day = due + timedelta(days=self.rng.randint(2, 12)) if late else due - timedelta(days=self.rng.randint(2, 20))
        return max(clock.beijing(day, self.rng.randint(10, 17)), earliest + timedelta(days=1))

    def submit_plan(self, engagement: Engagement) -> None:
        R.submit(engagement, SubmissionKind.WORK_PLAN, "实施方案.docx",
                 make_work_plan(self.rng, object_name=engagement.name, unit=engagement.budget_unit.name,
                                firm=engagement.firm.name, year=engagement.year), self.firm_user(engagement.firm))

    def plan_review(self, engagement: Engagement, staff: User, *, late: bool = False, passing: bool = True) -> Story:
        yield self.submission_time(engagement.contract.plan_due, late=late, earliest=clock.now_local())
        self.submit_plan(engagement)
        yield self.after(1, hour=10, workday=True)
        panel = draws_module.run_witnessed(R.form_panel(engagement, staff))
        yield from self.review_panel(panel, 0.9 if passing else 0.7)

    def review_panel(self, panel, quality: float, *, complete: bool = True, pending: int | None = None,
                     invited: int | None = None, until: datetime | None = None) -> Story:
        """Members accept within a day and score within a week (the panel decides at the last score).
        ``complete=False``: the last member has not scored yet; ``pending``: this expert has accepted and not
        scored; ``invited``: this expert has not answered the invitation yet; ``until``: nobody scores later."""
        formed = clock.now_local()

        def by_until(when: datetime) -> datetime:
            # nothing after ``until``: a panel drawn just before the load (a Monday dawn: three hours back) had
            # its members accept up to 4 h 40 min later, after the load, in the future
            return min(when, until) if until is not None else when

        yield by_until(formed + timedelta(hours=self.rng.randint(1, 4)))
        for invitation in list(panel.invitations):
            if invitation.status == InvitationStatus.INVITED and invitation.expert_id != invited:
                clock.at(by_until(self.after(self.rng.randint(5, 40) / 1440)))
                R.respond(invitation, self.expert_user(invitation.expert_id), accept=True, declaration_signed=True)
        reviews = [i.review for i in panel.invitations if i.review is not None]
        if pending is None and not complete:
            pending = reviews[-1].invitation.expert_id
        offsets = sorted(self.rng.uniform(1.5, 6.5) for _ in reviews)
        for offset, review in zip(offsets, reviews):
            if review.invitation.expert_id == pending or (until and formed + timedelta(days=offset) > until):
                continue
            yield formed + timedelta(days=offset)
            user = self.expert_user(review.invitation.expert_id)
            scores, comments = {}, {}
            for item in review.rubric.items:
                ratio = min(1.0, max(0.5, self.rng.gauss(quality, 0.04)))
                scores[item.id] = (item.max_points * Decimal(str(round(ratio, 2)))).quantize(Decimal("0.5"))
                comments[item.id] = (f"{item.name}基本符合要求。" if ratio >= 0.9 else
                                     f"{item.name}存在不足：论据不够充分，需补充数据来源和测算过程。")
            R.save_review(review, user, scores=scores, comments=comments,
                          opinion="报告结构完整，结论基本可信。" if quality >= 0.9 else "问题和建议过于笼统，缺少针对本项目的具体分析，建议退回整改。")
            R.submit_review(review, user)

    def panel_with(self, engagement: Engagement, staff: User, expert_id: int):
        """Form the panel so that ``expert_id`` is on it (the demo's `expert1` needs work to do): the service
        announces the draw and the demo's witness enters a number under which it seats this expert
        (``witness_for``) — the draw is recorded and verifies as usual. The exclusions are the service's: an
        expert it would not draw is an error in the demo data."""
        problems = R.panel_exclusions(engagement, [db.session.get(Expert, expert_id)]).get(expert_id)
        if problems:
            raise RuntimeError(f"演示数据：专家 {expert_id} 不能进入 {engagement.reference} 的评审组：{problems}")
        record = R.form_panel(engagement, staff)
        panel = self.witness_for(record, expert_id)
        self.seat(panel, expert_id)  # only if the service's exclusions have moved on from the ones read above
        return panel

    def lottery(self, record):
        """Witness and reveal a firm lottery. The demo's witness (who, unlike a real one, can know the secret)
        enters the first of a few numbers of the demo's stream that draws a firm with the fewest awards this
        year: the demo's competitive procurements that run meanwhile then do not find their best bidder at the
        yearly cap (the demo's data, not a rule)."""
        year = db.session.get(Procurement, record.params["procurement"]).engagement.year
        loads = dict(db.session.execute(sa.select(Award.firm_id, sa.func.count(Award.id)).join(
            Engagement, Engagement.id == Award.engagement_id).where(Engagement.year == year)
            .group_by(Award.firm_id)).all())
        eligible = draws_module.eligible_ids(record)
        options = [str(self.rng.randint(1, 10 ** 9)) for _ in range(32)]
        chosen = min(options, key=lambda n: loads.get(draws_module.rank(
            draws_module.seed_of(record.secret, record.candidate_hash, [n]), eligible)[0], 0))
        return draws_module.run_witnessed(record, numbers=[chosen])

    def witness_for(self, record, expert_id: int):
        """Witness and reveal ``record`` (announced by the service); the demo's witness enters the first number
        of the demo's stream under which the draw seats ``expert_id``, if any (the demo knows the secret, which
        no real witness does; the draw is recorded and verifies as usual)."""
        if record is None:
            return None
        eligible = draws_module.eligible_ids(record)
        chosen = first = str(self.rng.randint(1, 10 ** 9))
        for _ in range(2_000):
            if expert_id in draws_module.rank(draws_module.seed_of(record.secret, record.candidate_hash, [chosen]),
                                              eligible)[:record.k]:
                break
            chosen = str(self.rng.randint(1, 10 ** 9))
        else:
            chosen = first
        return draws_module.run_witnessed(record, numbers=[chosen])

    def seat(self, panel, expert_id: int) -> None:
        """Members who have not answered yet decline for a stated reason and the service draws replacements
        until ``expert_id`` is drawn."""
        for _ in range(80):
            if any(i.expert_id == expert_id for i in panel.invitations):
                return
            invitation = next(i for i in panel.invitations if i.status == InvitationStatus.INVITED)
            clock.at(self.after(self.rng.randint(2, 10) / 1440))
            replacement = R.respond(invitation, self.expert_user(invitation.expert_id), accept=False,
                                    reason=self.rng.choice(["评审期间在外地出差，无法按期完成", "近期承担本单位年度决算工作，时间冲突",
                                                            "身体原因，近期不能参加评审"]))
            self.witness_for(replacement, expert_id)
        raise RuntimeError(f"演示数据：补抽 80 次仍未抽到专家 {expert_id}")

    def report(self, engagement: Engagement, *, specific: bool, version_note: str = ""):
        firm_user = self.firm_user(engagement.firm)
        generated = make_report(self.rng, object_name=engagement.name, unit=engagement.budget_unit.name,
                                firm=engagement.firm.name, year=engagement.year,
                                amount_wan=(engagement.amount / 10000).quantize(Decimal("0.01")), specific=specific)
        return R.submit(engagement, SubmissionKind.REPORT, f"{engagement.name}绩效评价报告{version_note}.docx", generated.docx,
                        firm_user, indicators=generated.indicators, concluded_total=str(generated.total),
                        concluded_grade=generated.grade_label)

    def report_cycle(self, engagement: Engagement, staff: User, *, returned_first: bool, publish: str | None,
                     late: bool = False) -> Story:
        """Report in by its due date (or late), reviewed; a returned one is rectified within the deadline and
        reviewed again; then the commissioner rates the firm and the bureau publishes within about 20 days."""
        yield self.submission_time(engagement.contract.report_due, late=late, earliest=clock.now_local())
        self.report(engagement, specific=not returned_first)
        yield self.after(1, hour=10, workday=True)
        panel = draws_module.run_witnessed(R.form_panel(engagement, staff))
        yield from self.review_panel(panel, 0.8 if returned_first else 0.95)
        if returned_first:
            yield self.after(1, hour=11, workday=True)
            R.send_letter(panel, staff, panel.letter + "\n请于十五个工作日内完成整改并重新提交。")
            yield self.after(self.rng.randint(7, 12), hour=16)
            self.report(engagement, specific=True, version_note="（整改稿）")
            yield self.after(1, hour=10, workday=True)
            panel = draws_module.run_witnessed(R.form_panel(engagement, staff))
            yield from self.review_panel(panel, 0.95)
        if engagement.state != S.ACCEPTED:
            return
        yield self.after(self.rng.randint(3, 8), hour=15, workday=True)
        rubric = R.current_rubric(engagement.bureau, RubricKind.COMMISSIONER)
        R.rate_firm(engagement, staff, {i.id: (i.max_points * Decimal(str(round(self.rng.uniform(0.75, 0.98), 2)))).quantize(Decimal("0.5"))
                                        for i in rubric.items}, "按合同完成评价工作。")
        if publish is None:
            return
        yield self.after(self.rng.randint(8, 16), hour=10, workday=True)
        if publish == "publish":
            latest = R.latest_submission(engagement, SubmissionKind.REPORT)
            title = f"{engagement.name}绩效评价报告（公开版）"
            R.publish(engagement, staff, filename=f"{title}.docx", data=redacted_report(title, latest.file.text))
        elif publish == "classified":
            R.publish(engagement, self.users["bz.admin"] if engagement.bureau_id == self.bz.id else self.users["mf.admin"],
                      classified=True, reason="报告涉及涉密及敏感信息，按规定不予公开")

    # --- the whole story ---------------------------------------------------------------------------

    def framework(self) -> FrameworkAgreement:
        agreement = FrameworkAgreement(bureau_id=self.bz.id, name="巴州 2023—2026 年预算绩效评价服务框架协议",
                                       valid_from=date(2023, 1, 1), valid_until=date(2026, 12, 31))
        firms = db.session.execute(sa.select(Firm).where(Firm.bureau_id.in_([self.bz.id, self.bz.parent_id]),
                                                         Firm.status == FirmStatus.ADMITTED).order_by(Firm.id)).scalars().all()
        agreement.members = [FrameworkMember(firm_id=f.id, position=i) for i, f in enumerate(firms[:6], start=1)]
        db.session.add(agreement)
        db.session.flush()
        return agreement

    def engagement(self, engagement: Engagement, index: int, method: M, admin: User, staff: User, *, returned_first: bool,
                   publish: str, late_plan: bool = False, late_report: bool = False, **kw) -> Story:
        """One past engagement from procurement to publication, its first step a few working days after the
        plan's approval (the engagements of a plan are procured one after another)."""
        yield self.after(2 + 3 * index, hour=10, workday=True)
        yield from self.procure(engagement, method, admin, staff, **kw)
        yield from self.plan_review(engagement, staff, late=late_plan)
        yield from self.report_cycle(engagement, staff, returned_first=returned_first, publish=publish, late=late_report)

    def history(self, bureau: Bureau, year: int, rows, admin: User, staff: User, each: Callable[[int], dict], *,
                drafter: User | None = None) -> Story:
        """A past plan: drafted in February, approved in early March, then its engagements run."""
        yield from self.plan(bureau, year, rows, admin.username, (drafter or staff).username,
                             drafted=datetime(year, 2, 20, 9, 30), approved=datetime(year, 3, 6, 10, 0))
        for index, engagement in enumerate(self.engagements[(bureau.code, year)]):
            clock.spawn(self.engagement(engagement, index, admin=admin, staff=staff, **each(index)))

    def run(self, load_time: datetime) -> int:
        admin, staff = self.users["bz.admin"], self.users["bz.staff"]
        clock.at(datetime(2023, 2, 16, 10), forward_only=True)
        ensure_national_calendar()  # working days (challenge periods, answers) count the national holidays
        self.expert_logins(self.bz, self.mf)
        agreement = self.framework()
        methods = [M.OPEN_TENDER, M.COMPETITIVE_CONSULTATION, M.FRAMEWORK_ROTATION, M.RANDOM_DRAW, M.SINGLE_SOURCE]
        mf_admin = self.users["mf.admin"]
        mf_staff = self.users.get("mf.staff") or create_user(username="mf.staff", password=PASSWORD, display_name="民丰县财政局工作人员",
                                                             role=Role.BUREAU_STAFF, actor=self.users["admin"], bureau_id=self.mf.id)
        # A few firms hand in late (their credit rating's contract-performance part shows it), most on time.
        self.echo("演示数据：巴州 2023、2024 年度及民丰县 2024 年度重点评价（按实际日期：采购、评审、公开）…")
        clock.run_stories([
            self.history(self.bz, 2023, BZ_2023, admin, staff, lambda i: dict(
                method=[M.RANDOM_DRAW, M.FRAMEWORK_ROTATION][i % 2], agreement=agreement, returned_first=i == 2,
                publish="publish", late_report=i == 1)),
            self.history(self.bz, 2024, BZ_2024, admin, staff, lambda i: dict(
                method=methods[i % len(methods)], agreement=agreement, low_bid=i == 1, challenged=i == 0,
                returned_first=i in (2, 5, 8),
                publish="classified" if i in (4, 9) else "publish", late_plan=i in (3, 8), late_report=i == 6)),
            self.history(self.mf, 2024, MF_2024, mf_admin, mf_staff, lambda i: dict(
                method=[M.RANDOM_DRAW, M.COMPETITIVE_CONSULTATION][i % 2], bidders=3,
                returned_first=i == 1, publish="publish", late_plan=i == 2, late_report=i == 4), drafter=mf_admin),
        ])
        self.echo("演示数据：巴州 2025 年度计划（当前周期，相对加载日期：在办、临期、个别逾期）…")
        self.current(load_time, admin, staff, agreement)
        return db.session.execute(sa.select(sa.func.count(Engagement.id))).scalar_one()

    def current(self, now: datetime, admin: User, staff: User, agreement) -> None:
        """巴州's 2025 plan, approved about seven months before the load date, its engagements in every state
        of the state machine as of the load date: a procurement open for bids, a contract whose work plan is
        three days overdue, a plan review where `expert1` has an invitation to answer, fieldwork with the
        report due in three weeks, a report review where `expert1` has accepted and not scored yet, a
        rectification some days past its deadline."""
        rows = [(n, k, "一般公共预算", f, a, u) for n, k, f, a, u, _ in BZ_2025]
        targets = [t[-1] for t in BZ_2025]
        expert1 = self.users["expert1"].expert_id
        today = now.date()

        def day(days: int, hour: int = 10) -> datetime:
            """``days`` before the load date at ``hour``; for bureau steps (hour 9–11) the working day before
            if that day is a rest day."""
            when = today - timedelta(days=days)
            while hour < 12 and not is_workday(self.bz, when):
                when -= timedelta(days=1)
            return clock.beijing(when, hour)

        def drawn_lately() -> datetime:
            """The latest office hour before the load (at most 2½ days back, so the invitation is still open)."""
            when = now - timedelta(hours=3)
            while not (is_workday(self.bz, when.date()) and 9 <= when.hour < 18) and now - when < timedelta(days=2.5):
                when = when.replace(hour=17, minute=0) if when.hour >= 18 else (when - timedelta(days=1)).replace(hour=17, minute=0)
            return when if now - when < timedelta(days=2.5) else now - timedelta(hours=3)

        stories = []

        def story(index: int, engagement: Engagement, target: S) -> Story:
            method = [M.OPEN_TENDER, M.COMPETITIVE_CONSULTATION, M.FRAMEWORK_ROTATION, M.RANDOM_DRAW][index % 4]
            if engagement.name == IN_CHALLENGE_PERIOD:
                yield day(3)
                yield from self.procure(engagement, M.RANDOM_DRAW, admin, staff, sign=False)
                return
            if target == S.PROCURING:
                yield day(6)
                yield from self.competitive(engagement, M.COMPETITIVE_CONSULTATION, staff, bidders=3, award=False, bid_gap=1.5,
                                            amend=AMENDMENT if engagement.name == AMENDED else None)
                return
            if target == S.FAILED_PROCUREMENT:
                yield day(50)
                yield from self.competitive(engagement, M.OPEN_TENDER, staff, bidders=2)
                return
            if target == S.CANCELLED:
                yield day(80)
                yield from self.procure(engagement, M.RANDOM_DRAW, admin, staff, report_due=today + timedelta(days=120))
                yield day(60, 16)
                workflow.perform(engagement, "cancel", admin, note="项目资金调整，本年度不再开展评价")
                return
            # when the engagement starts, and its contract's dates, by how far it has come
            start, plan_due, report_due = {
                S.CONTRACTED: (40, today - timedelta(days=3), today + timedelta(days=160)),
                S.PLAN_IN_REVIEW: (60, today + timedelta(days=2), today + timedelta(days=150)),
                S.FIELDWORK: (170, today - timedelta(days=100), today + timedelta(days=21)),
                S.REPORT_IN_REVIEW: (190, today - timedelta(days=130), today + timedelta(days=8)),
                S.REPORT_RETURNED: (200, today - timedelta(days=140), today - timedelta(days=35)),
                S.ACCEPTED: (205, today - timedelta(days=150), today - timedelta(days=40)),
            }[target]
            yield day(start)
            yield from self.procure(engagement, method, admin, staff, agreement=agreement, plan_due=plan_due,
                                    report_due=report_due)
            if target == S.CONTRACTED:
                return
            if target == S.PLAN_IN_REVIEW:
                yield day(1, 16)
                self.submit_plan(engagement)
                yield drawn_lately()  # expert1 answers within the 3 days the invitation gives
                panel = self.panel_with(engagement, staff, expert1)
                yield from self.review_panel(panel, 0.9, invited=expert1, until=now)
                return
            yield from self.plan_review(engagement, staff)
            if target == S.FIELDWORK:
                return
            if target == S.REPORT_IN_REVIEW:
                yield day(6, 15)
                self.report(engagement, specific=False)
                yield day(5)
                panel = self.panel_with(engagement, staff, expert1)
                yield from self.review_panel(panel, 0.85, pending=expert1, until=now - timedelta(hours=2))
                return
            if target == S.REPORT_RETURNED:
                yield day(40, 15)
                self.report(engagement, specific=False)
                yield day(38)
                panel = draws_module.run_witnessed(R.form_panel(engagement, staff))
                yield from self.review_panel(panel, 0.78)
                yield day(30, 11)  # the rectification was due 15 days after this letter: overdue by some days
                R.send_letter(panel, staff, panel.letter + "\n请于十五个工作日内完成整改并重新提交。")
                return
            if target == S.ACCEPTED:
                yield from self.report_cycle(engagement, staff, returned_first=False, publish=None)

        def plan_then_engagements() -> Story:
            yield from self.plan(self.bz, 2025, rows, "bz.admin", "bz.staff", drafted=day(230, 9), approved=day(215))
            for index, (engagement, target) in enumerate(zip(self.engagements[("652800", 2025)], targets)):
                if target != S.PLANNED:
                    clock.spawn(story(index, engagement, target))

        stories.append(plan_then_engagements())
        clock.run_stories(stories)


def load_engagements(echo: Callable[[str], object] = print, *, load_time: datetime | None = None) -> int:
    """Returns how many engagements were created (0 when the demo plans already exist). Runs inside the
    simulated clock; ``load_time``: the real Beijing time of the load, which the current cycle is placed
    against (default: the clock's time)."""
    exists = db.session.execute(sa.select(EvaluationPlan.id).join(Bureau).where(
        Bureau.code == "652800", EvaluationPlan.year == 2024)).first()
    if exists:
        return 0
    R.ensure_default_rubrics()
    with clock.seeded_draw_secrets(20240301):
        return _Demo(echo).run(load_time or clock.now_local())
