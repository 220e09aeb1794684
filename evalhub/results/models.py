"""Closing the loop (闭环): findings and their rectification, escalations of overdue items, the signed
rectification report, and the results-application list (结果应用清单) with its filing (备案) upward."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evalhub.core.enums import LabeledEnum, enum_column
from evalhub.core.mixins import Created, CreatedBy, InBureau
from evalhub.core.models import BudgetUnit, StoredFile
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, Money, OfEngagement
from evalhub.review.models import Grade, IndicatorCategory, Points


class FindingKind(LabeledEnum):
    PROBLEM = ("problem", "问题")
    RECOMMENDATION = ("recommendation", "建议")


class FindingStatus(LabeledEnum):
    DRAFT = ("draft", "待财政局确认")
    CONFIRMED = ("confirmed", "待制定整改计划")
    PLANNED = ("planned", "整改中")
    SUBMITTED = ("submitted", "待核验")
    RETURNED = ("returned", "需继续整改")
    CLOSED = ("closed", "整改到位")


# Open for rectification: the unit still owes something (an escalation can follow while it does).
OPEN_STATUSES = (FindingStatus.CONFIRMED, FindingStatus.PLANNED, FindingStatus.SUBMITTED, FindingStatus.RETURNED)
# Open and waiting on the unit: a row handed in (SUBMITTED) waits on the bureau's verification, not the unit's delay.
OWED_STATUSES = (FindingStatus.CONFIRMED, FindingStatus.PLANNED, FindingStatus.RETURNED)


class Verification(LabeledEnum):
    DONE = ("done", "整改到位")
    PARTIAL = ("partial", "部分整改")
    NOT_DONE = ("not_done", "未整改")


class EscalationLevel(LabeledEnum):
    """Declared in escalation order: each is recorded once per deadline of a finding."""

    REMINDER = ("reminder", "催办提醒")
    INTERVIEW = ("interview", "约谈")
    NOTICE = ("notice", "通报")


class Measure(LabeledEnum):
    REDUCE = ("reduce", "预算调减")
    CANCEL = ("cancel", "取消")
    PRIORITY = ("priority", "优先安排")
    NOTICE = ("notice", "通报")
    RECTIFY = ("rectify", "整改")


class ResultFinding(OfEngagement, InBureau, CreatedBy, db.Model):
    """One finding (问题) or recommendation (建议) of an accepted report, and its rectification."""

    __tablename__ = "result_finding"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[FindingKind] = mapped_column(enum_column(FindingKind))
    text: Mapped[str] = mapped_column(sa.Text)
    category: Mapped[IndicatorCategory] = mapped_column(enum_column(IndicatorCategory))
    indicator: Mapped[Optional[str]] = mapped_column(sa.String(200))
    responsible_unit_id: Mapped[int] = mapped_column(sa.ForeignKey("budget_unit.id"), index=True)
    deadline: Mapped[Optional[date]] = mapped_column(sa.Date)
    # The bureau's default deadline (results.rectification_days) is counted in calendar days from the confirmation
    # day and rolled to a working day; kept so a calendar correction can roll it again (results/deadlines.py).
    # NULL: a date the bureau chose (never moved by a correction), or a row confirmed before they were kept.
    deadline_from: Mapped[Optional[date]] = mapped_column(sa.Date)
    deadline_days: Mapped[Optional[int]] = mapped_column()
    status: Mapped[FindingStatus] = mapped_column(enum_column(FindingStatus), default=FindingStatus.DRAFT, index=True)
    confirmed_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    confirmed_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    plan: Mapped[Optional[str]] = mapped_column(sa.Text)
    planned_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    unit_note: Mapped[Optional[str]] = mapped_column(sa.Text)
    submitted_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    verification: Mapped[Optional[Verification]] = mapped_column(enum_column(Verification))
    verification_note: Mapped[Optional[str]] = mapped_column(sa.Text)
    verified_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    verified_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    # The day the unit's delay counts from when it is not the deadline: the deadline moved on by the working days
    # the row waited past it on the bureau's verification (not the unit's delay). None: the deadline; cleared when
    # a return sets a new deadline. Kept as a date so the overdue list compares it in SQL, as the job counts it.
    late_from: Mapped[Optional[date]] = mapped_column(sa.Date)

    responsible_unit: Mapped[BudgetUnit] = relationship(foreign_keys=[responsible_unit_id])
    evidence: Mapped[list["FindingEvidence"]] = relationship(back_populates="finding", order_by="FindingEvidence.id")
    escalations: Mapped[list["FindingEscalation"]] = relationship(back_populates="finding",
                                                                  order_by="FindingEscalation.id")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class FindingEvidence(Created, db.Model):
    """A file the unit uploaded as evidence of its rectification."""

    __tablename__ = "result_finding_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(sa.ForeignKey("result_finding.id"), index=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    uploaded_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    finding: Mapped[ResultFinding] = relationship(back_populates="evidence")
    file: Mapped[StoredFile] = relationship()


class FindingEscalation(Created, db.Model):
    """One escalation of an overdue finding (催办 → 约谈 → 通报), dated; each level once per deadline (a new
    deadline set when the bureau returns the row is escalated again when it passes)."""

    __tablename__ = "result_finding_escalation"
    __table_args__ = (sa.UniqueConstraint("finding_id", "deadline", "level"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(sa.ForeignKey("result_finding.id"), index=True)
    level: Mapped[EscalationLevel] = mapped_column(enum_column(EscalationLevel))
    deadline: Mapped[date] = mapped_column(sa.Date)  # the deadline that passed
    on_date: Mapped[date] = mapped_column(sa.Date)
    overdue_days: Mapped[int] = mapped_column()  # working days owed past the deadline on that date
    note: Mapped[str] = mapped_column(sa.String(300))

    finding: Mapped[ResultFinding] = relationship(back_populates="escalations")


class RectificationReport(OfEngagement, Created, db.Model):
    """The 整改报告 the unit signed and uploaded (the generated draft is rebuilt on demand)."""

    __tablename__ = "rectification_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    uploaded_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    file: Mapped[StoredFile] = relationship()


class ApplicationEntry(InBureau, db.Model):
    """One evaluated object's row in the year's results-application list: what the rules propose, what the
    bureau confirmed (with a reason when it departs from the proposal)."""

    __tablename__ = "application_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), unique=True)
    year: Mapped[int] = mapped_column(index=True)
    score: Mapped[Decimal] = mapped_column(Points)
    grade: Mapped[Grade] = mapped_column(enum_column(Grade))
    proposed: Mapped[list[str]] = mapped_column(sa.JSON, default=list)  # Measure values
    proposed_percent: Mapped[Optional[Decimal]] = mapped_column(sa.Numeric(5, 2))
    proposed_basis: Mapped[str] = mapped_column(sa.String(500), default="")
    measures: Mapped[Optional[list[str]]] = mapped_column(sa.JSON)  # confirmed; None until then
    cut_percent: Mapped[Optional[Decimal]] = mapped_column(sa.Numeric(5, 2))
    cut_amount: Mapped[Optional[Decimal]] = mapped_column(Money)
    reason: Mapped[Optional[str]] = mapped_column(sa.Text)
    confirmed_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    confirmed_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    engagement: Mapped[Engagement] = relationship()

    def labels(self, values: list[str] | None) -> str:
        return "、".join(Measure(v).label for v in (values or [])) or "维持"


class ApplicationFiling(InBureau, db.Model):
    """A county's list for one year filed (备案) with the bureau above it."""

    __tablename__ = "application_filing"
    __table_args__ = (sa.UniqueConstraint("bureau_id", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column()
    filed_with_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"))
    filed_at: Mapped[datetime] = mapped_column(sa.DateTime)
    filed_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    summary: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)  # the figures as filed


class UnitPublication(Created, db.Model):
    """The evaluated unit's half of 双公开 (seed 000): where and when it published the redacted report."""

    __tablename__ = "unit_publication"

    id: Mapped[int] = mapped_column(primary_key=True)
    engagement_id: Mapped[int] = mapped_column(sa.ForeignKey("engagement.id"), unique=True)
    url: Mapped[str] = mapped_column(sa.String(300))
    published_on: Mapped[date] = mapped_column(sa.Date)
    recorded_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    engagement: Mapped[Engagement] = relationship()


class FactConfirmation(OfEngagement, Created, db.Model):
    """征求意见: the firm sends its draft report to the evaluated unit before the panel; the unit answers within
    the bureau's working days (agreement, or its objections); the firm responds. Attached to the report
    submission that follows, so the panel sees the exchange."""

    __tablename__ = "fact_confirmation"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("submission.id"), index=True)
    draft_file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    sent_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    due_on: Mapped[date] = mapped_column(sa.Date)
    due_workdays: Mapped[Optional[int]] = mapped_column()  # counted from created_at's Beijing date; NULL: before it was kept
    agreed: Mapped[Optional[bool]] = mapped_column()
    unit_text: Mapped[Optional[str]] = mapped_column(sa.Text)
    answered_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    answered_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    firm_response: Mapped[Optional[str]] = mapped_column(sa.Text)
    responded_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    draft_file: Mapped[StoredFile] = relationship()

    @property
    def state(self) -> str:
        if self.answered_at is None:
            return "待单位答复"
        if self.agreed:
            return "单位无异议"
        return "机构已回应" if self.responded_at else "单位有异议，待机构回应"


class MaterialRequest(OfEngagement, CreatedBy, db.Model):
    """One line of the firm's 资料清单 during fieldwork: what it needs from the evaluated unit, by when; the
    unit answers with the file (core.files), and an unanswered line past its date is overdue on the unit's page."""

    __tablename__ = "material_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    note: Mapped[Optional[str]] = mapped_column(sa.String(1000))
    due_on: Mapped[date] = mapped_column(sa.Date)
    file_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("stored_file.id"))
    unit_note: Mapped[Optional[str]] = mapped_column(sa.String(1000))
    uploaded_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    uploaded_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    file: Mapped[Optional[StoredFile]] = relationship()

    def overdue_on(self, today: date) -> bool:
        return self.uploaded_at is None and self.due_on < today
