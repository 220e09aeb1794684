"""Expert review of work plans and reports: submissions (versions), rubrics as data, panels, reviews,
outcomes; then the evaluation result, the commissioner's rating of the firm and publication."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evalhub.core.enums import LabeledEnum, enum_column
from evalhub.core.formatting import points_text
from evalhub.core.models import Bureau, BudgetUnit, Draw, StoredFile
from evalhub.core.mixins import Created, CreatedBy, InBureau
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, ObjectType, ServiceKind
from evalhub.registry.models import Expert, OfFirm

Points = sa.Numeric(6, 2)


class SubmissionKind(LabeledEnum):
    WORK_PLAN = ("work_plan", "实施方案")
    REPORT = ("report", "评价报告")
    # A 主管部门's self-evaluation report of a central transfer, reviewed by the bureau's panel (克州 item 7).
    SELF_EVALUATION = ("self_evaluation", "部门自评报告")


class IndicatorCategory(LabeledEnum):
    DECISION = ("decision", "决策")
    PROCESS = ("process", "过程")
    OUTPUT = ("output", "产出")
    BENEFIT = ("benefit", "效益")


class Grade(LabeledEnum):
    """Evaluation result bands (DOMAIN.md §2 step 5)."""

    EXCELLENT = ("excellent", "优")
    GOOD = ("good", "良")
    FAIR = ("fair", "中")
    POOR = ("poor", "差")


class RubricKind(LabeledEnum):
    WORK_PLAN = ("work_plan", "实施方案评审")
    REPORT = ("report", "评价报告评审")
    COMMISSIONER = ("commissioner", "委托方对机构的评价")
    SELF_EVALUATION = ("self_evaluation", "部门自评报告评审")


class PanelStatus(LabeledEnum):
    REVIEWING = ("reviewing", "评审中")
    DECIDED = ("decided", "已出结果")
    CLOSED = ("closed", "已结束")


class InvitationStatus(LabeledEnum):
    INVITED = ("invited", "已邀请")
    ACCEPTED = ("accepted", "已接受")
    DECLINED = ("declined", "已拒绝")
    EXPIRED = ("expired", "逾期未答复")
    WITHDRAWN = ("withdrawn", "已撤回")  # by the bureau, or released when the expert became unavailable


class ReviewStatus(LabeledEnum):
    DRAFT = ("draft", "草稿")
    SUBMITTED = ("submitted", "已提交")


class SelfEvaluationStatus(LabeledEnum):
    SUBMITTED = ("submitted", "待组织评审")
    REVIEWING = ("reviewing", "评审中")
    RETURNED = ("returned", "退回整改")
    PASSED = ("passed", "评审通过")


class SelfEvaluation(InBureau, CreatedBy, db.Model):
    """A 主管部门's self-evaluation of one central transfer, handed to its bureau for review (克州's plan, item 7:
    the bureau has experts score the self-evaluation reports and returns those under 90). It is what a panel
    reviews in place of an engagement: its versions are ``Submission`` rows, its panels ``ReviewPanel`` rows,
    decided by the same review code. It offers the few names that code reads of an engagement."""

    __tablename__ = "self_evaluation"

    id: Mapped[int] = mapped_column(primary_key=True)
    budget_unit_id: Mapped[int] = mapped_column(sa.ForeignKey("budget_unit.id"), index=True)
    year: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(sa.String(200))
    funds: Mapped[Optional[Decimal]] = mapped_column(sa.Numeric(18, 2))
    status: Mapped[SelfEvaluationStatus] = mapped_column(enum_column(SelfEvaluationStatus),
                                                         default=SelfEvaluationStatus.SUBMITTED)
    score: Mapped[Optional[Decimal]] = mapped_column(Points)  # the latest decided panel's score

    budget_unit: Mapped[BudgetUnit] = relationship()
    submissions: Mapped[list["Submission"]] = relationship(back_populates="self_evaluation",
                                                           order_by="Submission.version")

    # What the shared panel code reads of its subject (an engagement has these too): no firm is evaluated,
    # nobody commissions it, no field narrows the expert pool.
    firm = None
    firm_id = None
    commissioner_unit = None
    commissioner_unit_id = None
    field = None
    object_type = ObjectType.PROJECT  # a transfer's project spending, never a lower government's evaluation

    @property
    def plan_item(self) -> "SelfEvaluation":
        return self  # what avoidance reads of an engagement's plan item (its object type) is the self-evaluation's

    @property
    def reference(self) -> str:
        return f"ZP{self.year}-{self.id:04d}"

    @property
    def commissioner_name(self) -> str:
        return self.bureau.name  # the bureau organises the review


class Submission(db.Model):
    """One uploaded version of a work plan or report (an engagement's), or of a self-evaluation report (a
    budget unit's). Earlier versions and their reviews stay readable."""

    __tablename__ = "submission"
    __table_args__ = (sa.UniqueConstraint("engagement_id", "kind", "version"),
                      sa.UniqueConstraint("self_evaluation_id", "version"))

    id: Mapped[int] = mapped_column(primary_key=True)
    # Exactly one of the two: the engagement's document, or the self-evaluation's.
    engagement_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("engagement.id"), index=True)
    self_evaluation_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("self_evaluation.id"), index=True)
    kind: Mapped[SubmissionKind] = mapped_column(enum_column(SubmissionKind))
    version: Mapped[int] = mapped_column()
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    note: Mapped[Optional[str]] = mapped_column(sa.Text)
    # The firm's own conclusion (reports only): total score and grade of the evaluated object.
    concluded_total: Mapped[Optional[Decimal]] = mapped_column(Points)
    concluded_grade: Mapped[Optional[Grade]] = mapped_column(enum_column(Grade))
    machine_checks: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    submitted_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    submitted_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    engagement: Mapped[Optional[Engagement]] = relationship(foreign_keys=[engagement_id])
    self_evaluation: Mapped[Optional[SelfEvaluation]] = relationship(back_populates="submissions")
    file: Mapped[StoredFile] = relationship()
    indicators: Mapped[list["ReportIndicator"]] = relationship(back_populates="submission",
                                                               order_by="ReportIndicator.position",
                                                               cascade="all, delete-orphan")
    panel: Mapped[Optional["ReviewPanel"]] = relationship(back_populates="submission", uselist=False)


class ReportIndicator(db.Model):
    """A line of the report's evaluation scoring table (指标评分表)."""

    __tablename__ = "report_indicator"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column()
    category: Mapped[IndicatorCategory] = mapped_column(enum_column(IndicatorCategory))
    name: Mapped[str] = mapped_column(sa.String(200))
    weight: Mapped[Decimal] = mapped_column(Points)
    score: Mapped[Decimal] = mapped_column(Points)

    submission: Mapped[Submission] = relationship(back_populates="indicators")


class Rubric(CreatedBy, db.Model):
    """A versioned review rubric. bureau_id None: the system default seeded from DOMAIN.md §5. service_kind: the
    委托事项 it is for (work plans and reports only; DOMAIN §1 "rubric, pass mark and report outline differ by
    kind"), None: the general one, used for a kind that has none."""

    __tablename__ = "rubric"
    # One version number per rubric (the bureau's or the system's; general or one 委托事项's): on the coalesced
    # values, as NULLs are distinct in a unique constraint (migration c3e5a7b9d1f2).
    __table_args__ = (sa.Index("uq_rubric_version", sa.func.coalesce(sa.text("bureau_id"), 0), "kind",
                               sa.func.coalesce(sa.text("service_kind"), ""), "version", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bureau.id"), index=True)
    kind: Mapped[RubricKind] = mapped_column(enum_column(RubricKind))
    service_kind: Mapped[Optional[ServiceKind]] = mapped_column(enum_column(ServiceKind), nullable=True)
    version: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(sa.String(100))
    is_current: Mapped[bool] = mapped_column(default=True)

    bureau: Mapped[Optional[Bureau]] = relationship()
    items: Mapped[list["RubricItem"]] = relationship(back_populates="rubric", order_by="RubricItem.position",
                                                     cascade="all, delete-orphan")

    @property
    def max_total(self) -> Decimal:
        return sum((i.max_points for i in self.items), Decimal("0"))


class RubricItem(db.Model):
    __tablename__ = "rubric_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    rubric_id: Mapped[int] = mapped_column(sa.ForeignKey("rubric.id"), index=True)
    position: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str] = mapped_column(sa.Text)
    max_points: Mapped[Decimal] = mapped_column(Points)

    rubric: Mapped[Rubric] = relationship(back_populates="items")


class ReviewPanel(InBureau, CreatedBy, db.Model):
    """The expert panel for one submission version. Its outcome is decided exactly once. Its subject is the
    engagement whose document it reviews, or the self-evaluation (``subject``)."""

    __tablename__ = "review_panel"
    # An engagement's latest panel (the resubmission deadline in the overdue rule) by index, without walking
    # every panel of every engagement backwards.
    # Open panels past their deadline (the dashboards' overdue reviews) by index, not a scan of every panel.
    __table_args__ = (sa.Index("ix_review_panel_engagement_latest", "engagement_id", "id"),
                      sa.Index("ix_review_panel_status_due", "status", "review_due"))

    id: Mapped[int] = mapped_column(primary_key=True)
    engagement_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("engagement.id"), index=True)
    self_evaluation_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("self_evaluation.id"), index=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submission.id"), unique=True)
    kind: Mapped[SubmissionKind] = mapped_column(enum_column(SubmissionKind))
    round: Mapped[int] = mapped_column()
    size: Mapped[int] = mapped_column()
    rubric_id: Mapped[int] = mapped_column(sa.ForeignKey("rubric.id"))
    status: Mapped[PanelStatus] = mapped_column(enum_column(PanelStatus), default=PanelStatus.REVIEWING)
    draw_id: Mapped[int] = mapped_column(sa.ForeignKey("draw.id"))
    review_due: Mapped[datetime] = mapped_column(sa.DateTime)
    score: Mapped[Optional[Decimal]] = mapped_column(Points)
    spread: Mapped[Optional[Decimal]] = mapped_column(Points)
    spread_flagged: Mapped[bool] = mapped_column(default=False)
    passed: Mapped[Optional[bool]] = mapped_column()
    pass_mark: Mapped[Optional[Decimal]] = mapped_column(Points)
    decided_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    # The consolidated opinion letter: drafted from the experts' opinions, edited by bureau staff, then sent.
    letter: Mapped[Optional[str]] = mapped_column(sa.Text)
    letter_sent_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    resubmit_due: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    # 线下评审: chosen by the bureau when forming the panel. The draw then also takes experts who cannot sign
    # in, and bureau staff enter the experts' answers and scores on their behalf, recorded as such.
    offline: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    @property
    def mark(self) -> str:
        """The pass mark as a letter states it: 90, 87.5 (not the column's 90.00)."""
        return points_text(self.pass_mark)

    engagement: Mapped[Optional[Engagement]] = relationship(foreign_keys=[engagement_id])
    self_evaluation: Mapped[Optional[SelfEvaluation]] = relationship()
    submission: Mapped[Submission] = relationship(back_populates="panel")
    rubric: Mapped[Rubric] = relationship()
    draw: Mapped[Draw] = relationship()
    invitations: Mapped[list["PanelInvitation"]] = relationship(back_populates="panel", order_by="PanelInvitation.id",
                                                                cascade="all, delete-orphan")

    @property
    def subject(self) -> Any:
        """What the panel reviews: the engagement, or the self-evaluation (each has bureau, reference, name)."""
        return self.engagement if self.engagement_id is not None else self.self_evaluation

    @property
    def author_name(self) -> str:
        """Who answers for the reviewed document, as the panel list and its sheet name them (承担机构): the
        engagement's firm (empty before one is contracted), or the budget unit that evaluated itself."""
        if self.engagement_id is None:
            return self.self_evaluation.budget_unit.name
        return self.engagement.firm.name if self.engagement.firm else ""


class PanelInvitation(Created, db.Model):
    """An expert's seat on a panel: invited, then accepted (with a signed declaration) or declined."""

    __tablename__ = "panel_invitation"
    __table_args__ = (sa.UniqueConstraint("panel_id", "expert_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    panel_id: Mapped[int] = mapped_column(sa.ForeignKey("review_panel.id"), index=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("expert.id"), index=True)
    draw_id: Mapped[int] = mapped_column(sa.ForeignKey("draw.id"))
    status: Mapped[InvitationStatus] = mapped_column(enum_column(InvitationStatus), default=InvitationStatus.INVITED)
    respond_by: Mapped[datetime] = mapped_column(sa.DateTime)
    responded_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    decline_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    declaration: Mapped[Optional[str]] = mapped_column(sa.Text)  # the no-conflict declaration as signed
    # Offline review: the bureau user who recorded the expert's answer (and the paper declaration) for them.
    recorded_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    # Withdrawn by the bureau (or released because the expert was suspended/removed/disabled): why, by whom.
    withdrawn_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    withdrawn_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    withdrawn_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    panel: Mapped[ReviewPanel] = relationship(back_populates="invitations")
    expert: Mapped[Expert] = relationship()
    recorded_by: Mapped[Optional["User"]] = relationship(foreign_keys=[recorded_by_id])  # noqa: F821
    review: Mapped[Optional["Review"]] = relationship(back_populates="invitation", uselist=False)


class Review(db.Model):
    """One expert's review of one submission version, on the rubric version it was made with."""

    __tablename__ = "review"

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(sa.ForeignKey("panel_invitation.id"), unique=True)
    rubric_id: Mapped[int] = mapped_column(sa.ForeignKey("rubric.id"))
    status: Mapped[ReviewStatus] = mapped_column(enum_column(ReviewStatus), default=ReviewStatus.DRAFT)
    total: Mapped[Optional[Decimal]] = mapped_column(Points)
    opinion: Mapped[Optional[str]] = mapped_column(sa.Text)
    submitted_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    # Offline review: the bureau user who entered the expert's scores for them, when, and the note saying so.
    entered_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    entered_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    offline_note: Mapped[Optional[str]] = mapped_column(sa.String(300))

    invitation: Mapped[PanelInvitation] = relationship(back_populates="review")
    entered_by: Mapped[Optional["User"]] = relationship(foreign_keys=[entered_by_id])  # noqa: F821
    rubric: Mapped[Rubric] = relationship()
    scores: Mapped[list["ReviewScore"]] = relationship(back_populates="review", cascade="all, delete-orphan")


class ReviewScore(db.Model):
    __tablename__ = "review_score"
    __table_args__ = (sa.UniqueConstraint("review_id", "rubric_item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(sa.ForeignKey("review.id", ondelete="CASCADE"), index=True)
    rubric_item_id: Mapped[int] = mapped_column(sa.ForeignKey("rubric_item.id"))
    # None in a draft whose reason is typed before its score (or whose score was cleared); submit needs it
    points: Mapped[Optional[Decimal]] = mapped_column(Points, nullable=True)
    comment: Mapped[str] = mapped_column(sa.Text)

    review: Mapped[Review] = relationship(back_populates="scores")
    item: Mapped[RubricItem] = relationship()


class EvaluationResult(db.Model):
    """The evaluated object's result once its report is accepted: concluded score and grade, with caps."""

    __tablename__ = "evaluation_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), unique=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submission.id"))
    score: Mapped[Decimal] = mapped_column(Points)
    band_grade: Mapped[Grade] = mapped_column(enum_column(Grade))
    grade: Mapped[Grade] = mapped_column(enum_column(Grade))
    caps: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    deduction: Mapped[Optional[Decimal]] = mapped_column(Points)  # accepted with a recorded deduction
    deduction_reason: Mapped[Optional[str]] = mapped_column(sa.Text)
    decided_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    decided_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    engagement: Mapped[Engagement] = relationship()
    cap_records: Mapped[list["ResultCap"]] = relationship(back_populates="result", order_by="ResultCap.id",
                                                          cascade="all, delete-orphan")


class ResultCap(CreatedBy, db.Model):
    """One grade cap applied to a result (seed 000), with its evidence (an uploaded document and/or a link to
    the record that found the problem) and the reason. Never deleted: lifting a cap stamps ``lifted_*``, so
    the rows are the cap history. ``after_publication``: added or lifted by a bureau admin after the report
    was published (the caps are frozen then)."""

    __tablename__ = "result_cap"

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluation_result.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(40))
    reason: Mapped[str] = mapped_column(sa.Text)
    evidence_file_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("stored_file.id"))
    evidence_link: Mapped[Optional[str]] = mapped_column(sa.String(300))
    after_publication: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    lifted_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    lifted_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    lifted_reason: Mapped[Optional[str]] = mapped_column(sa.Text)
    lifted_after_publication: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    result: Mapped[EvaluationResult] = relationship(back_populates="cap_records")
    evidence_file: Mapped[Optional[StoredFile]] = relationship()
    created_by: Mapped[Optional["User"]] = relationship(foreign_keys="ResultCap.created_by_id")  # noqa: F821
    lifted_by: Mapped[Optional["User"]] = relationship(foreign_keys=[lifted_by_id])  # noqa: F821


class CommissionerRating(OfFirm, db.Model):
    """The commissioner's rating of the firm after the engagement (DOMAIN.md §5; feeds the credit rating)."""

    __tablename__ = "commissioner_rating"

    id: Mapped[int] = mapped_column(primary_key=True)
    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), unique=True)
    rubric_id: Mapped[int] = mapped_column(sa.ForeignKey("rubric.id"))
    scores: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # rubric item id → points
    total: Mapped[Decimal] = mapped_column(Points)
    comment: Mapped[Optional[str]] = mapped_column(sa.Text)
    rated_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    rated_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class Publication(db.Model):
    """What the public may read of an accepted report: a redacted file, or nothing when classified."""

    __tablename__ = "publication"

    id: Mapped[int] = mapped_column(primary_key=True)
    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), unique=True)
    # What the public downloads: the bureau's upload without the metadata that names people (core.scrub) ...
    redacted_file_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("stored_file.id"))
    # ... and the upload as the bureau chose it, kept for the bureau (never served on the public pages)
    uploaded_file_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("stored_file.id"))
    classified: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    published_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    decided_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    engagement: Mapped[Engagement] = relationship()
    redacted_file: Mapped[Optional[StoredFile]] = relationship(foreign_keys=[redacted_file_id])
    uploaded_file: Mapped[Optional[StoredFile]] = relationship(foreign_keys=[uploaded_file_id])
