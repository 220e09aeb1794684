"""Supervision (DOMAIN.md §7): complaints, random inspection campaigns (双随机、一公开), targeted cases,
inspections with their checklist, findings and measures."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evalhub.core.enums import LabeledEnum, enum_column
from evalhub.core.models import Draw, User
from evalhub.core.mixins import Acted, CountedPerBureau, CreatedBy, InBureau, OfUser
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement.models import Engagement
from evalhub.registry.models import Expert, Firm, OfFirm


class Severity(LabeledEnum):
    MINOR = ("minor", "轻微")
    GENERAL = ("general", "一般")
    SERIOUS = ("serious", "严重")
    INTENTIONAL = ("intentional", "故意违规")


class Measure(LabeledEnum):
    ORDER_TO_CORRECT = ("order_to_correct", "责令整改")
    INTERVIEW = ("interview", "约谈")
    PUBLIC_CRITICISM = ("public_criticism", "通报批评")
    SUSPENSION = ("suspension", "暂停承接业务")
    REMOVAL = ("removal", "移出机构库")
    REFERRAL = ("referral", "移送有关部门")


class Trigger(LabeledEnum):
    RANDOM = ("random", "不定向抽查")
    COMPLAINT = ("complaint", "投诉举报")
    LOW_SCORE = ("low_score", "评审得分偏低")
    REEVALUATION_GAP = ("reevaluation_gap", "再评价差异较大")
    SCREENING_FLAG = ("screening_flag", "报告质量筛查提示")
    RED_FLAG = ("red_flag", "采购诚信核查提示")
    OTHER = ("other", "其他线索")


class InspectionStatus(LabeledEnum):
    OPEN = ("open", "检查中")
    AWAITING_RESPONSE = ("awaiting_response", "待机构整改回复")
    CLOSED = ("closed", "已办结")


class CampaignStatus(LabeledEnum):
    DRAWN = ("drawn", "已抽取")
    LIST_PUBLISHED = ("list_published", "名单已公开")
    RESULTS_PUBLISHED = ("results_published", "结果已公开")


class ComplaintStatus(LabeledEnum):
    RECEIVED = ("received", "已受理")
    CASE_OPENED = ("case_opened", "已立案检查")
    CLOSED = ("closed", "已办结")
    DECLINED = ("declined", "不予立案")


CHECKLIST = [
    ("working_papers", "工作底稿完整"),
    ("evidence", "证据支持评分"),
    ("sampling", "按方案完成抽样"),
    ("independence", "独立性（无利益冲突）"),
    # Answered "no" when the report was copied, templated or its data fabricated; the answer is a label
    # for the screening model (an unbiased one when the case came from a random draw).
    ("report_original", "报告内容真实、针对评价对象（无抄袭、套用模板或编造数据）"),
]


class Complaint(InBureau, db.Model):
    """A complaint or tip-off from the public form. The complainant's contact is private to the bureau."""

    __tablename__ = "complaint"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(30), unique=True)
    firm_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    firm_name: Mapped[str] = mapped_column(sa.String(120))
    engagement_reference: Mapped[Optional[str]] = mapped_column(sa.String(40))
    text: Mapped[str] = mapped_column(sa.Text)
    complainant_name: Mapped[Optional[str]] = mapped_column(sa.String(50))
    complainant_contact: Mapped[Optional[str]] = mapped_column(sa.String(100))
    client_digest: Mapped[str] = mapped_column(sa.String(64), index=True)  # keyed hash of the address, for rate limits
    # The public form's one-time token: the same form sent twice (a double click) is one complaint.
    form_token: Mapped[Optional[str]] = mapped_column(sa.String(64))
    status: Mapped[ComplaintStatus] = mapped_column(enum_column(ComplaintStatus), default=ComplaintStatus.RECEIVED)
    substantiated: Mapped[Optional[bool]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, index=True)
    # 不予立案: the reason is written for the complainant, who reads it on the public lookup page.
    decision_reason: Mapped[Optional[str]] = mapped_column(sa.Text)
    decided_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    decided_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    # The complainant's 查询码 (shown once, with the reference), kept as a keyed hash: the reference alone is
    # guessable, so the public lookup needs both.
    lookup_digest: Mapped[Optional[str]] = mapped_column(sa.String(64))

    firm: Mapped[Optional[Firm]] = relationship()
    decided_by: Mapped[Optional[User]] = relationship(foreign_keys=[decided_by_id])


class InspectionCampaign(InBureau, CreatedBy, db.Model):
    """A random inspection campaign: draws of engagements and of inspectors, a published list, results."""

    __tablename__ = "inspection_campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column()
    ratio: Mapped[int] = mapped_column()  # percent
    population_size: Mapped[int] = mapped_column()
    engagement_draw_id: Mapped[int] = mapped_column(sa.ForeignKey("draw.id"))
    status: Mapped[CampaignStatus] = mapped_column(enum_column(CampaignStatus), default=CampaignStatus.DRAWN)
    list_published_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    results_published_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    engagement_draw: Mapped[Draw] = relationship()
    inspections: Mapped[list["Inspection"]] = relationship(back_populates="campaign", order_by="Inspection.id")


class Inspection(OfFirm, InBureau, db.Model):
    """One inspection: from a random campaign or a targeted case (its trigger recorded with it)."""

    __tablename__ = "inspection"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("inspection_campaign.id"), index=True)
    engagement_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("engagement.id"), index=True)
    trigger: Mapped[Trigger] = mapped_column(enum_column(Trigger))
    trigger_detail: Mapped[str] = mapped_column(sa.Text)
    complaint_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("complaint.id"))
    status: Mapped[InspectionStatus] = mapped_column(enum_column(InspectionStatus), default=InspectionStatus.OPEN)
    checklist: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)  # item → {"ok": bool, "note": str}
    conclusion: Mapped[Optional[str]] = mapped_column(sa.Text)
    opened_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    opened_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    closed_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    campaign: Mapped[Optional[InspectionCampaign]] = relationship(back_populates="inspections")
    engagement: Mapped[Optional[Engagement]] = relationship()
    complaint: Mapped[Optional[Complaint]] = relationship()
    inspectors: Mapped[list["Inspector"]] = relationship(back_populates="inspection", cascade="all, delete-orphan")
    # Named with its module: results.models has a Finding of its own (a report's findings, not an inspection's).
    findings: Mapped[list["Finding"]] = relationship("evalhub.supervision.models.Finding", back_populates="inspection",
                                                     order_by=lambda: Finding.id, cascade="all, delete-orphan")
    # Every answer the firm gave, oldest first: a later finding asks again, and the record keeps what it was told.
    responses: Mapped[list["InspectionResponse"]] = relationship(
        back_populates="inspection", order_by=lambda: InspectionResponse.id, cascade="all, delete-orphan")

    @property
    def firm_response(self) -> Optional[str]:
        """The firm's latest answer (None before the first)."""
        return self.responses[-1].text if self.responses else None

    @property
    def responded_at(self) -> Optional[datetime]:
        return self.responses[-1].created_at if self.responses else None


class InspectionResponse(Acted, db.Model):
    """One answer of the inspected firm (说明及整改情况): its text, when and by whom. Never edited: a second
    answer is a second row."""

    __tablename__ = "inspection_response"

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(sa.ForeignKey("inspection.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)

    inspection: Mapped[Inspection] = relationship(back_populates="responses")


class InspectionCount(CountedPerBureau, db.Model):
    """How many inspections each bureau holds at each status: the dashboard's 监督检查 card sums these few rows
    over the user's tree instead of counting the inspections, which grow with the history (issue 18).
    Recounted from ``inspection`` for each bureau a transaction touched, just before it commits
    (``services.INSPECTIONS``); no row for a count of 0."""

    __tablename__ = "inspection_count"

    status: Mapped[InspectionStatus] = mapped_column(enum_column(InspectionStatus), primary_key=True)


class Inspector(db.Model):
    """A drawn inspector: a bureau staff member or an expert."""

    __tablename__ = "inspector"
    __table_args__ = (sa.CheckConstraint("(user_id IS NULL) <> (expert_id IS NULL)", name="one_person"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(sa.ForeignKey("inspection.id"), index=True)
    user_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    expert_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("expert.id"))
    draw_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("draw.id"))

    inspection: Mapped[Inspection] = relationship(back_populates="inspectors")
    user: Mapped[Optional[User]] = relationship()
    expert: Mapped[Optional[Expert]] = relationship()

    @property
    def name(self) -> str:
        return self.user.display_name if self.user else self.expert.name


class StaffTie(OfUser, OfFirm, db.Model):
    """A bureau officer's declared tie with a firm (申报回避, issue 14): kept, so that the officer is never drawn
    or named to inspect that firm again. (An expert's declaration is an ExpertTie of the registry.)"""

    __tablename__ = "staff_tie"

    id: Mapped[int] = mapped_column(primary_key=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    inspection_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("inspection.id"))
    declared_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class Finding(OfFirm, CreatedBy, db.Model):
    __tablename__ = "finding"

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(sa.ForeignKey("inspection.id"), index=True)
    severity: Mapped[Severity] = mapped_column(enum_column(Severity))
    description: Mapped[str] = mapped_column(sa.Text)
    measures: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # Set at the close: the firm answered after the finding was recorded. False too for a finding that asked no
    # answer (``asks_answer``): read ``rectification`` for what to show.
    rectified: Mapped[bool] = mapped_column(default=False)

    inspection: Mapped[Inspection] = relationship(back_populates="findings")

    @property
    def asks_answer(self) -> bool:
        """Whether the finding asks the firm to explain and rectify: any measure, or above 轻微. A 轻微 finding with
        no measure is recorded only; the firm is not asked, and may not answer for it."""
        return bool(self.measures) or self.severity != Severity.MINOR

    @property
    def rectification(self) -> "Rectification":
        if not self.asks_answer:
            return Rectification.NOT_REQUIRED
        if self.inspection.status != InspectionStatus.CLOSED:
            return Rectification.PENDING
        return Rectification.RECTIFIED if self.rectified else Rectification.NOT_RECTIFIED


class Rectification(LabeledEnum):
    """A finding's rectification as pages and the API show it (``Finding.rectification``)."""

    PENDING = ("pending", "待办结")
    RECTIFIED = ("rectified", "已整改")
    NOT_RECTIFIED = ("not_rectified", "未整改")
    NOT_REQUIRED = ("not_required", "无需整改")
