"""Demo plans, procurements and reviews (`flask evalhub demo`, after the registry demo).

巴州's 2024 key evaluations are the eleven objects of seed 002 (nine reports published, two withheld as
classified); 民丰县's are the five of seed 003. 2025 plans hold engagements in every state of the state
machine and procurements of every method with bids. Everything goes through the services, so the
timelines, draws and audit chain are real. Idempotent: nothing happens when 巴州's 2024 plan exists.
Past deadlines are reached the only way the services allow: bids are sealed while the deadline is in
the future, then the deadline is moved back before opening (a demo shortcut, recorded nowhere else).
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
from evalhub.core.services import create_user
from evalhub.core.timeutil import utcnow
from evalhub.demo.documents import report as make_report, work_plan as make_work_plan
from evalhub.extensions import db
from evalhub.procurement import eligibility, services as P, workflow
from evalhub.procurement.models import (
    BidStatus, Engagement, EngagementState as S, EvaluationPlan, FrameworkAgreement, FrameworkMember, ObjectType,
    ProcurementMethod as M,
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
]


class _Demo:
    def __init__(self, echo: Callable[[str], object]) -> None:
        self.echo = echo
        self.rng = random.Random(2024)
        self.users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
        self.bz = self._bureau("652800")
        self.mf = self._bureau("653227")

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

    def plan(self, bureau: Bureau, year: int, rows, admin: str, staff: str) -> list[Engagement]:
        plan = P.get_or_create_plan(bureau, year, self.users[staff])
        for row in rows:
            name, kind, budget, field, amount, unit = row[:6]
            P.add_plan_item(plan, P.PlanItemInput(
                name=name, object_type=kind, budget_kind=budget, field=field, amount_wan=amount,
                budget_unit_id=self._unit(unit).id, reason="资金量大、涉及面广、社会关注度高，列入年度重点绩效评价"), self.users[staff])
        return P.approve_plan(plan, self.users[admin], acknowledge_warnings=True)

    # --- procurement -------------------------------------------------------------------------------

    def eligible(self, engagement: Engagement, method=M.COMPETITIVE_CONSULTATION) -> list[Firm]:
        return eligibility.assess(engagement, method).eligible

    def competitive(self, engagement: Engagement, method: M, staff: User, *, bidders: int, award: bool = True,
                    low_bid: bool = False) -> None:
        firms = self.eligible(engagement, method)[:bidders]
        p = P.open_procurement(engagement, P.ProcurementInput(
            method=method, title="", ceiling_price_wan=str(self._ceiling(engagement)), price_weight="20" if method == M.COMPETITIVE_CONSULTATION else "30",
            bid_deadline=utcnow() + timedelta(days=10)), staff)
        ceiling = self._ceiling(engagement)
        for index, firm in enumerate(firms):
            user = self.firm_user(firm)
            staff_ids = [s.id for s in firm.staff if s.active][:3]
            factor = Decimal("0.5") if (low_bid and index == 0) else Decimal(str(round(self.rng.uniform(0.82, 0.98), 2)))
            P.submit_bid(p, P.BidInput(price_wan=str((ceiling * factor).quantize(Decimal("0.01"))), team_staff_ids=staff_ids,
                                       lead_staff_id=staff_ids[0], technical_filename="技术方案.docx",
                                       technical_data=make_work_plan(self.rng, object_name=engagement.name,
                                                                     unit=engagement.budget_unit.name, firm=firm.name,
                                                                     year=engagement.year)), user)
        if not award:
            return
        p.bid_deadline = utcnow() - timedelta(minutes=1)
        P.open_bids(p, staff)
        if engagement.state == S.FAILED_PROCUREMENT:
            return
        members = P.enter_committee(p, ["王建国", "李慧", "阿依古丽", "张海涛", "刘强"][:P.committee_size_floor(p)], staff)
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
                P.explain_low_bid(bid, self.firm_user(bid.firm), "本机构在当地设有常驻团队，可节约差旅和人工成本，报价构成见附件。")
                P.decide_justification(bid, staff, False, "成本测算依据不足")
        P.award_procurement(p, staff, "综合得分排名第一，推荐为成交供应商")

    def _ceiling(self, engagement: Engagement) -> Decimal:
        return max(Decimal("8"), (engagement.amount / 10000 * Decimal("0.006")).quantize(Decimal("0.01")))

    def contract(self, engagement: Engagement, staff: User) -> None:
        award = engagement.current_procurement.award
        y = engagement.year
        P.sign_contract(engagement, P.ContractInput(
            amount_wan=str((award.amount / 10000).quantize(Decimal("0.01"))), signed_on=date(y, 3, 1),
            start_date=date(y, 3, 1), end_date=date(y + 1, 6, 30), plan_due=date(y, 4, 15),
            report_due=date(y + 1, 5, 31), deliverables="实施方案、评价报告（含指标评分表）、工作底稿"), staff)

    def procure(self, engagement: Engagement, method: M, admin: User, staff: User, **kw) -> None:
        if method in (M.OPEN_TENDER, M.COMPETITIVE_CONSULTATION):
            self.competitive(engagement, method, staff, bidders=kw.get("bidders", 4), low_bid=kw.get("low_bid", False))
        elif method == M.RANDOM_DRAW:
            P.open_procurement(engagement, P.ProcurementInput(method=method, title="", ceiling_price_wan="12"), staff)
        elif method == M.FRAMEWORK_ROTATION:
            P.open_procurement(engagement, P.ProcurementInput(method=method, title="", ceiling_price_wan="15",
                                                              framework_agreement_id=kw["agreement"].id), staff)
        elif method == M.SINGLE_SOURCE:
            firm = self.eligible(engagement, method)[0]
            p = P.open_procurement(engagement, P.ProcurementInput(
                method=method, title="", ceiling_price_wan="10", single_source_firm_id=firm.id,
                justification="该项目为上一周期评价的延续，需沿用原指标体系和基础数据，仅原机构具备条件。"), staff)
            P.approve_single_source(p, admin, "9.5")
        if engagement.state == S.FAILED_PROCUREMENT and kw.get("rerun", True):
            P.open_procurement(engagement, P.ProcurementInput(
                method=M.RANDOM_DRAW, title="", ceiling_price_wan="12",
                rerun_reason=f"{method.label}有效投标不足，金额较小，改为从机构库随机抽取"), staff)
        if engagement.state == S.PROCURING and engagement.current_procurement.award is not None:
            self.contract(engagement, staff)

    # --- review ------------------------------------------------------------------------------------

    def plan_review(self, engagement: Engagement, staff: User, passing: bool = True) -> None:
        firm_user = self.firm_user(engagement.firm)
        R.submit(engagement, SubmissionKind.WORK_PLAN, "实施方案.docx",
                 make_work_plan(self.rng, object_name=engagement.name, unit=engagement.budget_unit.name,
                                firm=engagement.firm.name, year=engagement.year), firm_user)
        panel = R.form_panel(engagement, staff)
        self.review_panel(panel, 0.9 if passing else 0.7)

    def backdate(self, panel) -> None:
        """Demo panels are formed in the year the work happened (the per-year caps count by that year)."""
        year = panel.engagement.year + (1 if panel.kind == SubmissionKind.REPORT else 0)
        panel.created_at = min(panel.created_at, datetime(year, 4, 1) + timedelta(days=panel.id))

    def review_panel(self, panel, quality: float, *, complete: bool = True) -> None:
        self.backdate(panel)
        for invitation in list(panel.invitations):
            if invitation.status == InvitationStatus.INVITED:
                R.respond(invitation, self.expert_user(invitation.expert_id), accept=True, declaration_signed=True)
        reviews = [i.review for i in panel.invitations if i.review is not None]
        for index, review in enumerate(reviews):
            if not complete and index == len(reviews) - 1:
                break
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

    def report(self, engagement: Engagement, *, specific: bool, version_note: str = ""):
        firm_user = self.firm_user(engagement.firm)
        generated = make_report(self.rng, object_name=engagement.name, unit=engagement.budget_unit.name,
                                firm=engagement.firm.name, year=engagement.year,
                                amount_wan=(engagement.amount / 10000).quantize(Decimal("0.01")), specific=specific)
        return R.submit(engagement, SubmissionKind.REPORT, f"{engagement.name}绩效评价报告{version_note}.docx", generated.docx,
                        firm_user, indicators=generated.indicators, concluded_total=str(generated.total),
                        concluded_grade=generated.grade_label)

    def report_cycle(self, engagement: Engagement, staff: User, *, returned_first: bool, publish: str | None) -> None:
        self.report(engagement, specific=not returned_first)
        panel = R.form_panel(engagement, staff)
        self.review_panel(panel, 0.8 if returned_first else 0.95)
        if returned_first:
            R.send_letter(panel, staff, panel.letter + "\n请于十五个工作日内完成整改并重新提交。")
            self.report(engagement, specific=True, version_note="（整改稿）")
            panel = R.form_panel(engagement, staff)
            self.review_panel(panel, 0.95)
        if engagement.state != S.ACCEPTED:
            return
        rubric = R.current_rubric(engagement.bureau, RubricKind.COMMISSIONER)
        R.rate_firm(engagement, staff, {i.id: (i.max_points * Decimal(str(round(self.rng.uniform(0.75, 0.98), 2)))).quantize(Decimal("0.5"))
                                        for i in rubric.items}, "按合同完成评价工作。")
        if publish == "publish":
            latest = R.latest_submission(engagement, SubmissionKind.REPORT)
            from evalhub.core import files

            R.publish(engagement, staff, filename=f"{engagement.name}绩效评价报告（公开版）.docx", data=files.read(latest.file))
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

    def run(self) -> int:
        admin, staff = self.users["bz.admin"], self.users["bz.staff"]
        self.expert_logins(self.bz, self.mf)
        agreement = self.framework()
        methods = [M.OPEN_TENDER, M.COMPETITIVE_CONSULTATION, M.FRAMEWORK_ROTATION, M.RANDOM_DRAW, M.SINGLE_SOURCE]
        self.echo("演示数据：巴州 2023 年度 4 项重点评价 …")
        for index, engagement in enumerate(self.plan(self.bz, 2023, BZ_2023, "bz.admin", "bz.staff")):
            self.procure(engagement, [M.RANDOM_DRAW, M.FRAMEWORK_ROTATION][index % 2], admin, staff, agreement=agreement)
            self.plan_review(engagement, staff)
            self.report_cycle(engagement, staff, returned_first=index == 2, publish="publish")
            db.session.flush()
        self.echo("演示数据：巴州 2024 年度 11 项重点评价（采购、评审、公开）…")
        engagements = self.plan(self.bz, 2024, BZ_2024, "bz.admin", "bz.staff")
        for index, engagement in enumerate(engagements):
            self.procure(engagement, methods[index % len(methods)], admin, staff, agreement=agreement, low_bid=index == 1)
            self.plan_review(engagement, staff)
            self.report_cycle(engagement, staff, returned_first=index in (2, 5, 8),
                              publish="classified" if index in (4, 9) else "publish")
            db.session.flush()
        self.echo("演示数据：民丰县 2024 年度 5 项重点评价 …")
        mf_admin = self.users["mf.admin"]
        mf_staff = self.users.get("mf.staff") or create_user(username="mf.staff", password=PASSWORD, display_name="民丰县财政局工作人员",
                                                             role=Role.BUREAU_STAFF, actor=self.users["admin"], bureau_id=self.mf.id)
        for index, engagement in enumerate(self.plan(self.mf, 2024, MF_2024, "mf.admin", "mf.admin")):
            self.procure(engagement, [M.RANDOM_DRAW, M.COMPETITIVE_CONSULTATION][index % 2], mf_admin, mf_staff, bidders=3)
            self.plan_review(engagement, mf_staff)
            self.report_cycle(engagement, mf_staff, returned_first=index == 1, publish="publish")
            db.session.flush()
        self.echo("演示数据：巴州 2025 年度计划，评价任务处于各个环节 …")
        rows = [(n, k, "一般公共预算", f, a, u) for n, k, f, a, u, _ in BZ_2025]
        targets = [t[-1] for t in BZ_2025]
        for index, (engagement, target) in enumerate(zip(self.plan(self.bz, 2025, rows, "bz.admin", "bz.staff"), targets)):
            self.advance(engagement, target, index, admin, staff, agreement)
            db.session.flush()
        return db.session.execute(sa.select(sa.func.count(Engagement.id))).scalar_one()

    def advance(self, engagement: Engagement, target: S, index: int, admin: User, staff: User, agreement) -> None:
        if target == S.PLANNED:
            return
        if target == S.PROCURING:
            self.competitive(engagement, M.COMPETITIVE_CONSULTATION, staff, bidders=3, award=False)
            return
        if target == S.FAILED_PROCUREMENT:
            self.competitive(engagement, M.OPEN_TENDER, staff, bidders=2)
            return
        if target == S.CANCELLED:
            self.procure(engagement, M.RANDOM_DRAW, admin, staff)
            workflow.perform(engagement, "cancel", admin, note="项目资金调整，本年度不再开展评价")
            return
        self.procure(engagement, [M.OPEN_TENDER, M.COMPETITIVE_CONSULTATION, M.FRAMEWORK_ROTATION, M.RANDOM_DRAW][index % 4],
                     admin, staff, agreement=agreement)
        if target == S.CONTRACTED:
            return
        firm_user = self.firm_user(engagement.firm)
        if target == S.PLAN_IN_REVIEW:
            R.submit(engagement, SubmissionKind.WORK_PLAN, "实施方案.docx",
                     make_work_plan(self.rng, object_name=engagement.name, unit=engagement.budget_unit.name,
                                    firm=engagement.firm.name, year=engagement.year), firm_user)
            panel = R.form_panel(engagement, staff)
            self.review_panel(panel, 0.9, complete=False)
            return
        self.plan_review(engagement, staff)
        if target == S.FIELDWORK:
            return
        if target == S.REPORT_IN_REVIEW:
            self.report(engagement, specific=False)
            self.review_panel(R.form_panel(engagement, staff), 0.85, complete=False)
            return
        if target == S.REPORT_RETURNED:
            self.report(engagement, specific=False)
            panel = R.form_panel(engagement, staff)
            self.review_panel(panel, 0.78)
            R.send_letter(panel, staff, panel.letter + "\n请于十五个工作日内完成整改并重新提交。")
            return
        if target == S.ACCEPTED:
            self.report_cycle(engagement, staff, returned_first=False, publish=None)


def load_engagements(echo: Callable[[str], object] = print) -> int:
    """Returns how many engagements were created (0 when the demo plans already exist)."""
    exists = db.session.execute(sa.select(EvaluationPlan.id).join(Bureau).where(
        Bureau.code == "652800", EvaluationPlan.year == 2024)).first()
    if exists:
        return 0
    R.ensure_default_rubrics()
    # Deterministic demo: the draw seeds come from a fixed generator (they are recorded as usual, so every
    # demo draw still verifies); the real service draws its seeds from the secrets module.
    seeds = random.Random(20240301)
    original = draws_module.secrets.token_hex
    draws_module.secrets.token_hex = lambda n=16: "%0*x" % (2 * n, seeds.getrandbits(8 * n))
    try:
        return _Demo(echo).run()
    finally:
        draws_module.secrets.token_hex = original
