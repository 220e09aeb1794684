"""Annual evaluation plans, engagements (评价任务) and procurement: bids, scoring, award, contract."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from evalhub.core.enums import Field, LabeledEnum, enum_column
from evalhub.core.mixins import Acted, Created, CreatedBy, InBureau
from evalhub.core.models import BudgetUnit, Draw, StoredFile, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.registry.models import Expert, Firm, FirmStaff, OfFirm

Money = sa.Numeric(18, 2)


class ObjectType(LabeledEnum):
    PROJECT = ("project", "项目支出")
    DEPARTMENT = ("department", "部门整体支出")
    LOWER_GOVERNMENT = ("lower_government", "下级政府财政运行")
    POLICY = ("policy", "财政政策")
    GOVERNMENT_PROCUREMENT = ("government_procurement", "政府采购")
    SERVICE_PURCHASE = ("service_purchase", "政府购买服务")
    DEBT = ("debt", "政府债务")


class BudgetKind(LabeledEnum):
    GENERAL = ("general", "一般公共预算")
    FUND = ("fund", "政府性基金预算")
    STATE_CAPITAL = ("state_capital", "国有资本经营预算")
    SOCIAL_INSURANCE = ("social_insurance", "社会保险基金预算")
    DEBT = ("debt", "政府债务资金")


class ServiceKind(LabeledEnum):
    """委托事项 (财预〔2021〕6号): same workflow, different rubric, pass mark and outline."""

    KEY_EVALUATION = ("key_evaluation", "重点绩效评价")
    EX_ANTE_REASSESSMENT = ("ex_ante_reassessment", "事前绩效评估再评估")
    TARGET_REVIEW = ("target_review", "绩效目标审核")
    SELF_EVALUATION_REVIEW = ("self_evaluation_review", "自评报告复核")
    RESULT_RECHECK = ("result_recheck", "评价结果复核")
    INDICATOR_SYSTEM = ("indicator_system", "指标体系建设")
    # DOMAIN §1's last item ("research"): a study of the bureau's performance management; graded as a deliverable
    RESEARCH = ("research", "绩效管理课题研究")


# The kinds whose deliverable evaluates its object: a 重点绩效评价 grades the project (优/良/中/差) and that grade is
# its 绩效评价结果 — the 人大 summary, the results-application list and the rotation rule are about these. The
# others grade a deliverable, not the object: a reassessment concludes 支持/不支持 on an ex-ante assessment, a target
# review or an indicator system evaluates nothing, and a self-evaluation review or result recheck checks an
# evaluation that already has its own result (counting it would count the object twice).
EVALUATION_KINDS: tuple[ServiceKind, ...] = (ServiceKind.KEY_EVALUATION,)


class PlanStatus(LabeledEnum):
    DRAFT = ("draft", "编制中")
    APPROVED = ("approved", "已批准")


class EngagementState(LabeledEnum):
    PLANNED = ("planned", "已列入计划")
    PROCURING = ("procuring", "采购中")
    FAILED_PROCUREMENT = ("failed_procurement", "采购失败（流标）")
    CONTRACTED = ("contracted", "已签约")
    PLAN_SUBMITTED = ("plan_submitted", "实施方案已提交")
    PLAN_IN_REVIEW = ("plan_in_review", "实施方案评审中")
    PLAN_RETURNED = ("plan_returned", "实施方案退回修改")
    FIELDWORK = ("fieldwork", "现场评价")
    REPORT_SUBMITTED = ("report_submitted", "报告已提交")
    REPORT_IN_REVIEW = ("report_in_review", "报告评审中")
    REPORT_RETURNED = ("report_returned", "报告退回整改")
    ACCEPTED = ("accepted", "已验收")
    PUBLISHED = ("published", "已公开")
    ARCHIVED = ("archived", "已归档")
    CANCELLED = ("cancelled", "已终止")


class ProcurementMethod(LabeledEnum):
    OPEN_TENDER = ("open_tender", "公开招标")
    COMPETITIVE_CONSULTATION = ("competitive_consultation", "竞争性磋商")
    FRAMEWORK_ROTATION = ("framework_rotation", "框架协议顺序轮候")
    RANDOM_DRAW = ("random_draw", "机构库随机抽取")
    SINGLE_SOURCE = ("single_source", "单一来源")

    @property
    def result_word(self) -> str:
        """What its result is called: a tender ends in 中标, the other methods in 成交 (政府采购法 第二十八、三十六条,
        实施条例 第四十三条, 财政部令第87号 第六十九条) — 中标供应商/中标金额 vs 成交供应商/成交金额."""
        return "中标" if self is ProcurementMethod.OPEN_TENDER else "成交"


class ProcurementStatus(LabeledEnum):
    PENDING_APPROVAL = ("pending_approval", "待审批")
    OPEN = ("open", "投标中")
    EVALUATING = ("evaluating", "评审中")
    AWARDED = ("awarded", "已中标/成交")
    FAILED = ("failed", "流标")
    CANCELLED = ("cancelled", "已取消")

    def label_for(self, method: "ProcurementMethod | None") -> str:
        """The label of a procurement of ``method``: 已中标 for a tender, 已成交 for the others."""
        if self is ProcurementStatus.AWARDED and method is not None:
            return f"已{method.result_word}"
        return self.label


class BidStatus(LabeledEnum):
    SUBMITTED = ("submitted", "已提交")
    WITHDRAWN = ("withdrawn", "已撤回")
    INVALID = ("invalid", "无效")


class JustificationDecision(LabeledEnum):
    ACCEPTED = ("accepted", "说明合理")
    REJECTED = ("rejected", "说明不合理，按无效投标处理")


class EvaluationPlan(InBureau, Created, db.Model):
    """A bureau's plan of key evaluations for one year."""

    __tablename__ = "evaluation_plan"
    __table_args__ = (sa.UniqueConstraint("bureau_id", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column()
    status: Mapped[PlanStatus] = mapped_column(enum_column(PlanStatus), default=PlanStatus.DRAFT)
    note: Mapped[Optional[str]] = mapped_column(sa.Text)
    approved_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    approved_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    # Approving past the plan checks' warnings (the 州 ≥ 10 / 县 ≥ 5 minimum, the type mix) takes a written
    # reason: the warnings as they stood and the reason are kept, shown on the plan and in its export.
    approval_warnings: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    approval_reason: Mapped[Optional[str]] = mapped_column(sa.Text)

    approved_by: Mapped[Optional[User]] = relationship()
    items: Mapped[list["PlanItem"]] = relationship(back_populates="plan", order_by="PlanItem.position",
                                                   cascade="all, delete-orphan")

    @property
    def total_amount(self) -> Decimal:
        return sum((i.amount for i in self.items), Decimal("0"))


class PlanItem(db.Model):
    """An evaluation object in a plan."""

    __tablename__ = "plan_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluation_plan.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(sa.String(200))
    object_type: Mapped[ObjectType] = mapped_column(enum_column(ObjectType))
    budget_kind: Mapped[BudgetKind] = mapped_column(enum_column(BudgetKind))
    field: Mapped[Field] = mapped_column(enum_column(Field))
    service_kind: Mapped[ServiceKind] = mapped_column(enum_column(ServiceKind), default=ServiceKind.KEY_EVALUATION)
    amount: Mapped[Decimal] = mapped_column(Money)  # yuan; shown in 万元
    budget_unit_id: Mapped[int] = mapped_column(sa.ForeignKey("budget_unit.id"), index=True)
    # The commissioner (委托方): a budget unit, or the bureau itself when None.
    commissioner_unit_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("budget_unit.id"))
    reason: Mapped[str] = mapped_column(sa.Text)

    plan: Mapped[EvaluationPlan] = relationship(back_populates="items")
    budget_unit: Mapped[BudgetUnit] = relationship(foreign_keys=[budget_unit_id])
    commissioner_unit: Mapped[Optional[BudgetUnit]] = relationship(foreign_keys=[commissioner_unit_id])
    engagement: Mapped[Optional["Engagement"]] = relationship(back_populates="plan_item", uselist=False)

    @property
    def commissioner_name(self) -> str:
        return self.commissioner_unit.name if self.commissioner_unit else self.plan.bureau.name


class Engagement(InBureau, Created, db.Model):
    """One evaluation object assigned (eventually) to one firm. Its state changes only through
    ``evalhub.procurement.workflow``."""

    __tablename__ = "engagement"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_item_id: Mapped[int] = mapped_column(sa.ForeignKey("plan_item.id"), unique=True)
    year: Mapped[int] = mapped_column(index=True)
    reference: Mapped[str] = mapped_column(sa.String(40), unique=True)  # e.g. 652800-2025-003
    name: Mapped[str] = mapped_column(sa.String(200))
    service_kind: Mapped[ServiceKind] = mapped_column(enum_column(ServiceKind))
    field: Mapped[Field] = mapped_column(enum_column(Field))
    amount: Mapped[Decimal] = mapped_column(Money)
    # Actual spending of the evaluated funds (yuan), recorded by the bureau from its budget-execution data;
    # report screening checks that the report states it.
    spent: Mapped[Optional[Decimal]] = mapped_column(Money)
    budget_unit_id: Mapped[int] = mapped_column(sa.ForeignKey("budget_unit.id"), index=True)
    commissioner_unit_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("budget_unit.id"))
    state: Mapped[EngagementState] = mapped_column(enum_column(EngagementState), index=True,
                                                   default=EngagementState.PLANNED)
    state_changed_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    firm_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    # The Beijing date by which the step the engagement waits on is due (the contract's plan or report date,
    # or the latest rectification deadline), NULL when it waits on nothing: kept on write by
    # ``workflow.refresh_due``, so "overdue" is a range of an index, not a lookup per waiting row (issue 18).
    due_on: Mapped[Optional[date]] = mapped_column(sa.Date)

    plan_item: Mapped[PlanItem] = relationship(back_populates="engagement")
    budget_unit: Mapped[BudgetUnit] = relationship(foreign_keys=[budget_unit_id])
    commissioner_unit: Mapped[Optional[BudgetUnit]] = relationship(foreign_keys=[commissioner_unit_id])
    firm: Mapped[Optional[Firm]] = relationship()
    transitions: Mapped[list["EngagementTransition"]] = relationship(
        back_populates="engagement", order_by="EngagementTransition.id", cascade="all, delete-orphan")
    procurements: Mapped[list["Procurement"]] = relationship(back_populates="engagement",
                                                             order_by="Procurement.id")
    contract: Mapped[Optional["Contract"]] = relationship(back_populates="engagement", uselist=False)

    @property
    def commissioner_name(self) -> str:
        return self.commissioner_unit.name if self.commissioner_unit else self.bureau.name

    @property
    def current_procurement(self) -> Optional["Procurement"]:
        return self.procurements[-1] if self.procurements else None


class EngagementCount(db.Model):
    """How many engagements each bureau holds: the unfiltered engagement list's total (web and API) sums these
    few rows over the user's tree instead of counting every engagement in scope (issue 18). Recounted from
    ``engagement`` for each bureau a transaction touched, just before it commits (``procurement.counts``); no
    row for a count of 0."""

    __tablename__ = "engagement_count"

    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"), primary_key=True)
    n: Mapped[int] = mapped_column()


class OfEngagement:
    """A row about one engagement: ``engagement_id`` (required, indexed) and ``engagement``."""

    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), index=True)

    @declared_attr
    def engagement(cls) -> Mapped[Engagement]:
        return relationship(Engagement, foreign_keys=lambda: [cls.engagement_id])


class EngagementTransition(Acted, db.Model):
    """One step of an engagement's timeline (the audit log holds the same event, hash-chained)."""

    __tablename__ = "engagement_transition"

    id: Mapped[int] = mapped_column(primary_key=True)
    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), index=True)
    action: Mapped[str] = mapped_column(sa.String(40))
    from_state: Mapped[EngagementState] = mapped_column(enum_column(EngagementState))
    to_state: Mapped[EngagementState] = mapped_column(enum_column(EngagementState))
    note: Mapped[Optional[str]] = mapped_column(sa.String(1000))

    engagement: Mapped[Engagement] = relationship(back_populates="transitions")


class FrameworkAgreement(InBureau, Created, db.Model):
    """A framework agreement's shortlist, served in a persisted order (顺序轮候)."""

    __tablename__ = "framework_agreement"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    valid_from: Mapped[date] = mapped_column(sa.Date)
    valid_until: Mapped[date] = mapped_column(sa.Date)
    next_position: Mapped[int] = mapped_column(default=1)  # whose turn it is

    members: Mapped[list["FrameworkMember"]] = relationship(back_populates="agreement",
                                                            order_by="FrameworkMember.position",
                                                            cascade="all, delete-orphan")


class FrameworkMember(db.Model):
    __tablename__ = "framework_member"
    __table_args__ = (sa.UniqueConstraint("agreement_id", "position"), sa.UniqueConstraint("agreement_id", "firm_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    agreement_id: Mapped[int] = mapped_column(sa.ForeignKey("framework_agreement.id"), index=True)
    firm_id: Mapped[int] = mapped_column(sa.ForeignKey("firm.id"))
    position: Mapped[int] = mapped_column()

    agreement: Mapped[FrameworkAgreement] = relationship(back_populates="members")
    firm: Mapped[Firm] = relationship()


# The engagement lists' order (newest year first, then by reference), so a page reads its 20 rows by index
# instead of joining and sorting a whole year of engagements first (issue 18, EXPLAIN at province scale).
sa.Index("ix_engagement_list_order", Engagement.year.desc(), Engagement.reference)
# Overdue (``workflow.overdue_clause``: due_on < today), over the waiting engagements only (partial: the
# finished history has no date). Counts: a range per bureau of the scope. The list page: its order over the
# waiting ones, stopping at a page (the full order index walked the whole history with a filter when fewer
# rows matched than a page: 4 ms at province scale 1x, 0.4 ms with this).
_WAITING = Engagement.due_on.is_not(None)
sa.Index("ix_engagement_due", Engagement.bureau_id, Engagement.due_on, postgresql_where=_WAITING, sqlite_where=_WAITING)
sa.Index("ix_engagement_due_order", Engagement.year.desc(), Engagement.reference, postgresql_where=_WAITING,
         sqlite_where=_WAITING)


class Procurement(InBureau, CreatedBy, db.Model):
    """One procurement round for an engagement; a failed round is kept and a new one opened."""

    __tablename__ = "procurement"

    id: Mapped[int] = mapped_column(primary_key=True)
    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), index=True)
    method: Mapped[ProcurementMethod] = mapped_column(enum_column(ProcurementMethod))
    status: Mapped[ProcurementStatus] = mapped_column(enum_column(ProcurementStatus))
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[Optional[str]] = mapped_column(sa.Text)
    ceiling_price: Mapped[Decimal] = mapped_column(Money)  # 最高限价
    price_weight: Mapped[Decimal] = mapped_column(sa.Numeric(5, 2))  # percent, e.g. 20.00
    low_bid_ratio: Mapped[Decimal] = mapped_column(sa.Numeric(5, 2))  # percent of mean valid bid, e.g. 70.00
    bid_deadline: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)  # UTC
    opened_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    justification: Mapped[Optional[str]] = mapped_column(sa.Text)  # single source: why only this firm
    single_source_firm_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("firm.id"))
    approved_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    approved_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    framework_agreement_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("framework_agreement.id"))
    draw_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("draw.id"))
    committee_draw_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("draw.id"))
    failure_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    previous_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("procurement.id"))
    rerun_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))

    engagement: Mapped[Engagement] = relationship(back_populates="procurements")
    single_source_firm: Mapped[Optional[Firm]] = relationship(foreign_keys=[single_source_firm_id])
    framework_agreement: Mapped[Optional[FrameworkAgreement]] = relationship()
    draw: Mapped[Optional[Draw]] = relationship(foreign_keys=[draw_id])
    committee_draw: Mapped[Optional[Draw]] = relationship(foreign_keys=[committee_draw_id])
    bids: Mapped[list["Bid"]] = relationship(back_populates="procurement", order_by="Bid.id")
    rubric: Mapped[list["BidRubricItem"]] = relationship(back_populates="procurement",
                                                        order_by="BidRubricItem.position",
                                                        cascade="all, delete-orphan")
    committee: Mapped[list["CommitteeMember"]] = relationship(back_populates="procurement",
                                                             order_by="CommitteeMember.id",
                                                             cascade="all, delete-orphan")
    award: Mapped[Optional["Award"]] = relationship(back_populates="procurement", uselist=False)
    notices: Mapped[list["ResultNotice"]] = relationship(back_populates="procurement", order_by="ResultNotice.id")
    # the 采购公告's posting on the designated media (procurement/media.py), once recorded
    media_posting: Mapped[Optional["MediaPosting"]] = relationship(
        back_populates="procurement", uselist=False, foreign_keys="MediaPosting.procurement_id")
    # its 澄清/更正公告 (procurement/amendments.py), in their order
    amendments: Mapped[list["ProcurementAmendment"]] = relationship(back_populates="procurement",
                                                                   order_by="ProcurementAmendment.number")

    @property
    def notice(self) -> Optional["ResultNotice"]:
        """The standing result notice (the latest not revoked), if any."""
        return next((n for n in reversed(self.notices) if n.revoked_at is None), None)

    @property
    def is_competitive(self) -> bool:
        return self.method in (ProcurementMethod.OPEN_TENDER, ProcurementMethod.COMPETITIVE_CONSULTATION)


class BidRubricItem(db.Model):
    """One line of the technical scoring rubric of a procurement (the rubric is data)."""

    __tablename__ = "bid_rubric_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    procurement_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement.id"), index=True)
    position: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(sa.String(100))
    max_points: Mapped[Decimal] = mapped_column(sa.Numeric(6, 2))

    procurement: Mapped[Procurement] = relationship(back_populates="rubric")


class Bid(OfFirm, db.Model):
    """A sealed bid. Nobody but its firm reads it before the deadline."""

    __tablename__ = "bid"
    __table_args__ = (sa.UniqueConstraint("procurement_id", "firm_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    procurement_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement.id"), index=True)
    price: Mapped[Decimal] = mapped_column(Money)
    technical_file_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("stored_file.id"))
    status: Mapped[BidStatus] = mapped_column(enum_column(BidStatus), default=BidStatus.SUBMITTED)
    invalid_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    low_price_explanation: Mapped[Optional[str]] = mapped_column(sa.Text)
    justification_decision: Mapped[Optional[JustificationDecision]] = mapped_column(enum_column(JustificationDecision))
    submitted_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    withdrawn_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    procurement: Mapped[Procurement] = relationship(back_populates="bids")
    technical_file: Mapped[Optional[StoredFile]] = relationship()
    team: Mapped[list["BidTeamMember"]] = relationship(back_populates="bid", cascade="all, delete-orphan")


class BidTeamMember(db.Model):
    __tablename__ = "bid_team_member"
    __table_args__ = (sa.UniqueConstraint("bid_id", "staff_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bid_id: Mapped[int] = mapped_column(sa.ForeignKey("bid.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(sa.ForeignKey("firm_staff.id"))
    is_lead: Mapped[bool] = mapped_column(default=False)

    bid: Mapped[Bid] = relationship(back_populates="team")
    staff: Mapped[FirmStaff] = relationship()


class CommitteeMember(db.Model):
    """A member of the bid evaluation committee: a drawn expert, or a person entered by bureau staff."""

    __tablename__ = "committee_member"

    id: Mapped[int] = mapped_column(primary_key=True)
    procurement_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement.id"), index=True)
    expert_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("expert.id"))
    name: Mapped[str] = mapped_column(sa.String(50))

    procurement: Mapped[Procurement] = relationship(back_populates="committee")
    expert: Mapped[Optional[Expert]] = relationship()


class TechnicalScore(db.Model):
    __tablename__ = "technical_score"
    __table_args__ = (sa.UniqueConstraint("member_id", "bid_id", "rubric_item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("committee_member.id"), index=True)
    bid_id: Mapped[int] = mapped_column(sa.ForeignKey("bid.id"), index=True)
    rubric_item_id: Mapped[int] = mapped_column(sa.ForeignKey("bid_rubric_item.id"))
    points: Mapped[Decimal] = mapped_column(sa.Numeric(6, 2))


class Award(OfFirm, db.Model):
    """The award decision. Unique per procurement AND per engagement: the database refuses a second one."""

    __tablename__ = "award"

    id: Mapped[int] = mapped_column(primary_key=True)
    procurement_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement.id"), unique=True)
    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), unique=True)
    bid_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bid.id"))
    amount: Mapped[Decimal] = mapped_column(Money)
    score: Mapped[Optional[Decimal]] = mapped_column(sa.Numeric(6, 2))
    reasons: Mapped[str] = mapped_column(sa.Text)
    notice: Mapped[str] = mapped_column(sa.Text)  # the public award notice (中标/成交公告)
    awarded_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    awarded_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    procurement: Mapped[Procurement] = relationship(back_populates="award")
    bid: Mapped[Optional[Bid]] = relationship()


class Contract(OfFirm, Created, db.Model):
    __tablename__ = "contract"

    id: Mapped[int] = mapped_column(primary_key=True)
    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), unique=True)
    award_id: Mapped[int] = mapped_column(sa.ForeignKey("award.id"), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    signed_on: Mapped[date] = mapped_column(sa.Date)
    start_date: Mapped[date] = mapped_column(sa.Date)
    end_date: Mapped[date] = mapped_column(sa.Date)
    plan_due: Mapped[date] = mapped_column(sa.Date)  # work plan (实施方案) due
    report_due: Mapped[date] = mapped_column(sa.Date)
    deliverables: Mapped[str] = mapped_column(sa.Text)
    # The Beijing date by which the contract announcement (合同公告) is due while it is owed: 2 working days after
    # ``signed_on`` (政府采购法实施条例 第五十条; ``contract_notices.notice_due``), stored at the signing. The law asks
    # for the announcement on the designated media, so it is owed until its posting there is recorded
    # (``media.record_posting``), not merely until evalhub's own copy is out; NULL then (the announcement and the
    # posting keep their own ``due_on``), so "overdue" is a range of a partial index, as ``Engagement.due_on`` is.
    # NULL too for a contract signed before evalhub tracked the announcement: owed nothing here
    # (``contract_notices.due_of``).
    notice_due_on: Mapped[Optional[date]] = mapped_column(sa.Date)

    engagement: Mapped[Engagement] = relationship(back_populates="contract")
    award: Mapped[Award] = relationship()
    notice: Mapped[Optional["ContractNotice"]] = relationship(back_populates="contract", uselist=False)


_OWED = Contract.notice_due_on.is_not(None)
sa.Index("ix_contract_notice_due", Contract.notice_due_on, postgresql_where=_OWED, sqlite_where=_OWED)


class WithheldContent(LabeledEnum):
    """What a contract announcement leaves out, and why (政府采购法实施条例 第五十条 "但政府采购合同中涉及国家秘密、商业秘密的
    内容除外"): the only two grounds the law gives."""

    STATE_SECRET = ("state_secret", "国家秘密")
    COMMERCIAL_SECRET = ("commercial_secret", "商业秘密")
    BOTH = ("both", "国家秘密和商业秘密")


class ContractNotice(InBureau, db.Model):
    """The contract announcement (合同公告) of a signed contract, published by the bureau that ran the procurement
    (政府采购法实施条例 第五十条; ``contract_notices.publish_notice``), once per contract (the unique key holds it). It
    keeps what it published — the parties, amount, service content and dates as they stood — as a result notice
    does; the service content may leave out what is withheld (``withheld``), whose reason is the bureau's record and
    never public. The public file is ``core.scrub``'s copy of the bureau's upload (``uploaded_file``)."""

    __tablename__ = "contract_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(sa.ForeignKey("contract.id"), unique=True)
    project_name: Mapped[str] = mapped_column(sa.String(200))
    purchaser_name: Mapped[str] = mapped_column(sa.String(200))  # 采购人: the commissioning unit, else the bureau
    supplier_name: Mapped[str] = mapped_column(sa.String(120))
    supplier_uscc: Mapped[str] = mapped_column(sa.String(18))
    amount: Mapped[Decimal] = mapped_column(Money)
    services: Mapped[str] = mapped_column(sa.Text)  # 主要服务内容 as announced
    start_date: Mapped[date] = mapped_column(sa.Date)
    end_date: Mapped[date] = mapped_column(sa.Date)
    signed_on: Mapped[date] = mapped_column(sa.Date)
    # None: the contract was signed before evalhub tracked its announcement (补录), so nothing is counted late
    due_on: Mapped[Optional[date]] = mapped_column(sa.Date)
    published_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, index=True)
    published_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    late_workdays: Mapped[int] = mapped_column(default=0)  # working days after ``due_on`` (0: on time)
    late_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    withheld: Mapped[Optional[WithheldContent]] = mapped_column(enum_column(WithheldContent))
    withheld_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))  # 不予公开的内容及理由 (the bureau's)
    uploaded_file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    public_file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))

    contract: Mapped[Contract] = relationship(back_populates="notice")
    uploaded_file: Mapped[StoredFile] = relationship(foreign_keys=[uploaded_file_id])
    public_file: Mapped[StoredFile] = relationship(foreign_keys=[public_file_id])
    media_posting: Mapped[Optional["MediaPosting"]] = relationship(
        back_populates="contract_notice", uselist=False, foreign_keys="MediaPosting.contract_notice_id")


class ChallengeStatus(LabeledEnum):
    OPEN = ("open", "待答复")
    DISMISSED = ("dismissed", "驳回")
    UPHELD = ("upheld", "成立")


class ChallengeRemedy(LabeledEnum):
    """What an upheld challenge does to the procurement (财政部令第94号 第十六条)."""

    REEVALUATE = ("reevaluate", "撤销中标/成交结果，重新评审")
    RERUN = ("rerun", "撤销中标/成交结果，重新开展采购")

    def for_method(self, method: "ProcurementMethod") -> str:
        """The remedy in the procurement's own word (an open tender's 中标, the other methods' 成交)."""
        return self.label.replace("中标/成交", method.result_word)


class ResultNotice(InBureau, db.Model):
    """The public result notice (中标/成交结果公告) of an award. Published at the award; the challenge period
    (质疑期) runs from its publication. An upheld challenge revokes it (the text stays, marked revoked)."""

    __tablename__ = "result_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    procurement_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement.id"), index=True)
    # None once the award it announced has been revoked (the award row is deleted so a new one may be made).
    award_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("award.id"))
    firm_id: Mapped[int] = mapped_column(sa.ForeignKey("firm.id"))
    # The supplier as published: a firm renamed later does not rename a notice already out.
    supplier_name: Mapped[str] = mapped_column(sa.String(120))
    supplier_uscc: Mapped[str] = mapped_column(sa.String(18))
    amount: Mapped[Decimal] = mapped_column(Money)
    text: Mapped[str] = mapped_column(sa.Text)
    published_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    challenge_until: Mapped[date] = mapped_column(sa.Date)  # last day a challenge may be filed (Beijing)
    # the working days ``challenge_until`` counts from the publication's Beijing date (1 + the bureau's setting then),
    # kept so that a calendar correction recounts the period announced, not today's setting; NULL: published before
    # it was kept (derived from the dates when needed: core.calendar.recompute)
    challenge_workdays: Mapped[Optional[int]] = mapped_column()
    contract_ready_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)  # told once
    revoked_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    revoked_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    # The Beijing date by which the notice is due on the designated media while its posting is owed: 2 working days
    # after the winner was determined (its publication here, at the award; 财政部令第87号 第六十九条; ``media.result_due``),
    # stored at the publication and recounted on a calendar correction (procurement/deadlines.py). NULL once the
    # posting is recorded (the posting keeps its own ``due_on``), once the notice is revoked (the result it announced
    # no longer stands), and for a notice published before evalhub tracked it: owed nothing here. So "overdue" is a
    # range of a partial index, as ``Contract.notice_due_on`` is.
    media_due_on: Mapped[Optional[date]] = mapped_column(sa.Date)

    procurement: Mapped[Procurement] = relationship(back_populates="notices")
    firm: Mapped[Firm] = relationship()
    challenges: Mapped[list["Challenge"]] = relationship(back_populates="notice", order_by="Challenge.id")
    media_posting: Mapped[Optional["MediaPosting"]] = relationship(
        back_populates="result_notice", uselist=False, foreign_keys="MediaPosting.result_notice_id")

    @property
    def open_challenges(self) -> list["Challenge"]:
        return [c for c in self.challenges if c.status == ChallengeStatus.OPEN]


_POSTING_OWED = ResultNotice.media_due_on.is_not(None)
sa.Index("ix_result_notice_media_due", ResultNotice.media_due_on, postgresql_where=_POSTING_OWED,
         sqlite_where=_POSTING_OWED)


class Challenge(OfFirm, db.Model):
    """A supplier's challenge (质疑) of a result notice: one per firm and notice — 财政部令第94号 第十条 asks
    for all grounds against one step at once."""

    __tablename__ = "procurement_challenge"
    __table_args__ = (sa.UniqueConstraint("notice_id", "firm_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    procurement_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement.id"), index=True)
    notice_id: Mapped[int] = mapped_column(sa.ForeignKey("result_notice.id"), index=True)
    grounds: Mapped[str] = mapped_column(sa.Text)
    filed_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    filed_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    answer_due: Mapped[date] = mapped_column(sa.Date)
    answer_workdays: Mapped[Optional[int]] = mapped_column()  # counted from filed_at's Beijing date (as challenge_workdays)
    status: Mapped[ChallengeStatus] = mapped_column(enum_column(ChallengeStatus), default=ChallengeStatus.OPEN)
    answer: Mapped[Optional[str]] = mapped_column(sa.Text)
    remedy: Mapped[Optional[ChallengeRemedy]] = mapped_column(enum_column(ChallengeRemedy))
    answered_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    answered_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    procurement: Mapped[Procurement] = relationship()
    notice: Mapped[ResultNotice] = relationship(back_populates="challenges")
    evidence: Mapped[list["ChallengeEvidence"]] = relationship(back_populates="challenge", order_by="ChallengeEvidence.id",
                                                               cascade="all, delete-orphan")


class ChallengeEvidence(db.Model):
    __tablename__ = "procurement_challenge_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement_challenge.id"), index=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))

    challenge: Mapped[Challenge] = relationship(back_populates="evidence")
    file: Mapped[StoredFile] = relationship()


class ProcurementAmendment(db.Model):
    """A clarification or amendment (澄清/更正公告) of an open tender's or a consultation's documents already issued
    (财政部令第87号 第二十七条; 财库〔2014〕214号 第十条; procurement/amendments.py): numbered in sequence per procurement,
    its text part of the documents from then on. ``affects_bids``: the bureau's word that it may affect how bids are
    prepared (then the deadline leaves the law's notice after it). The deadline before it and after it (the same when
    it did not move the deadline). The optional file: the bureau's upload and ``core.scrub``'s copy the firms and the
    public read. Published once, never edited: a later change is a later amendment."""

    __tablename__ = "procurement_amendment"
    __table_args__ = (sa.UniqueConstraint("procurement_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    procurement_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement.id"))  # the unique key's first column
    number: Mapped[int] = mapped_column()  # 第 N 号, 1, 2, … per procurement
    text: Mapped[str] = mapped_column(sa.Text)
    affects_bids: Mapped[bool] = mapped_column(default=True)
    deadline_before: Mapped[datetime] = mapped_column(sa.DateTime)  # UTC
    deadline_after: Mapped[datetime] = mapped_column(sa.DateTime)  # UTC; == deadline_before when not moved
    uploaded_file_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("stored_file.id"))
    public_file_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("stored_file.id"))
    published_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    published_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    procurement: Mapped[Procurement] = relationship(back_populates="amendments")
    uploaded_file: Mapped[Optional[StoredFile]] = relationship(foreign_keys=[uploaded_file_id])
    public_file: Mapped[Optional[StoredFile]] = relationship(foreign_keys=[public_file_id])
    published_by: Mapped[Optional[User]] = relationship()
    media_posting: Mapped[Optional["MediaPosting"]] = relationship(
        back_populates="amendment", uselist=False, foreign_keys="MediaPosting.amendment_id")

    @property
    def moved_deadline(self) -> bool:
        return self.deadline_after != self.deadline_before

    @property
    def title(self) -> str:
        return f"第 {self.number} 号澄清/更正公告"


class NoticeKind(LabeledEnum):
    """The notices the law requires on the designated media (政府采购法 第十一条; 财政部令第101号) that evalhub keeps."""

    PROCUREMENT = ("procurement", "采购公告")
    RESULT = ("result", "中标/成交结果公告")
    CONTRACT = ("contract", "合同公告")
    # a clarification or amendment of the documents, on the media of the 采购公告 (财政部令第87号 第二十七条)
    AMENDMENT = ("amendment", "更正公告")


class DesignatedMedium(LabeledEnum):
    """The media a provincial-or-higher finance department designated (政府采购信息发布管理办法, 财政部令第101号 第八条:
    中国政府采购网 and its provincial sub-sites); another one is named by the bureau (``MediaPosting.medium_name``)."""

    CCGP = ("ccgp", "中国政府采购网（www.ccgp.gov.cn）")
    XINJIANG = ("ccgp_xinjiang", "中国政府采购网新疆分网（www.ccgp-xinjiang.gov.cn）")
    OTHER = ("other", "其他指定媒体")


class MediaPosting(InBureau, db.Model):
    """Where and when a notice was posted on a designated medium (procurement/media.py) — the legal announcement;
    evalhub's own public page is not a designated medium. One per notice (each key unique; exactly one is set), recorded
    by the bureau that ran the procurement; a correction replaces the values, the old ones kept in its audit event."""

    __tablename__ = "media_posting"
    __table_args__ = (sa.CheckConstraint(
        "(CASE WHEN procurement_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN result_notice_id IS NULL THEN 0 ELSE 1 END)"
        " + (CASE WHEN contract_notice_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN amendment_id IS NULL THEN 0 ELSE 1 END)"
        " = 1",
        name="one_notice"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[NoticeKind] = mapped_column(enum_column(NoticeKind))
    procurement_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("procurement.id"), unique=True)
    result_notice_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("result_notice.id"), unique=True)
    contract_notice_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("contract_notice.id"), unique=True)
    amendment_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("procurement_amendment.id"), unique=True)
    medium: Mapped[DesignatedMedium] = mapped_column(enum_column(DesignatedMedium))
    medium_name: Mapped[Optional[str]] = mapped_column(sa.String(100))  # 其他指定媒体: its name
    url: Mapped[str] = mapped_column(sa.String(500))
    posted_on: Mapped[date] = mapped_column(sa.Date)  # Beijing date of the posting on the medium
    note: Mapped[Optional[str]] = mapped_column(sa.String(500))
    # the legal deadline the posting is measured against (2 working days: result and contract notices), and the
    # working days it was late (0: on time, or no deadline — a 采购公告, a contract signed before it was tracked)
    due_on: Mapped[Optional[date]] = mapped_column(sa.Date)
    late_workdays: Mapped[int] = mapped_column(default=0)
    recorded_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    corrected_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    corrected_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    correction_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))  # the latest; each in the audit log

    procurement: Mapped[Optional[Procurement]] = relationship(back_populates="media_posting",
                                                              foreign_keys=[procurement_id])
    result_notice: Mapped[Optional[ResultNotice]] = relationship(back_populates="media_posting",
                                                                 foreign_keys=[result_notice_id])
    contract_notice: Mapped[Optional[ContractNotice]] = relationship(back_populates="media_posting",
                                                                     foreign_keys=[contract_notice_id])
    amendment: Mapped[Optional[ProcurementAmendment]] = relationship(back_populates="media_posting",
                                                                     foreign_keys=[amendment_id])

    @property
    def medium_label(self) -> str:
        return self.medium_name if self.medium == DesignatedMedium.OTHER and self.medium_name else self.medium.label


class EngagementMember(OfEngagement, db.Model):
    """A person of the firm's roster named on an engagement's team (procurement/team.py); ``is_lead``: the lead
    evaluator (主评人). A change closes the row (``removed_at``) instead of deleting it, so that the points of a
    later finding go to whoever was responsible, and the history shows who was named when."""

    __tablename__ = "engagement_member"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(sa.ForeignKey("firm_staff.id"), index=True)
    is_lead: Mapped[bool] = mapped_column(default=False)
    named_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    named_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    removed_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    removed_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    removed_reason: Mapped[Optional[str]] = mapped_column(sa.String(300))

    staff: Mapped[FirmStaff] = relationship()
