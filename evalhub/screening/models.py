"""Screening results per uploaded work plan or report, and the registry of trained screening models."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evalhub.core.enums import LabeledEnum, enum_column
from evalhub.core.models import User
from evalhub.core.mixins import CreatedBy
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement.models import OfEngagement
from evalhub.review.models import Submission, SubmissionKind


class RiskMethod(LabeledEnum):
    RULE = ("rule", "规则评分（各特征百分位的平均）")
    MODEL = ("model", "模型评分")


class ModelStatus(LabeledEnum):
    CANDIDATE = ("candidate", "待启用")
    ACTIVE = ("active", "使用中")
    RETIRED = ("retired", "已停用")


class ReportScreening(OfEngagement, db.Model):
    """One screened submission: its index entry (sentence keys, MinHash signature), its features and the
    latest risk. Bureau users see it; the firm never does."""

    __tablename__ = "report_screening"
    __table_args__ = (sa.Index("ix_report_screening_year_kind", "year", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submission.id", ondelete="CASCADE"), unique=True)
    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"), index=True)
    firm_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    kind: Mapped[SubmissionKind] = mapped_column(enum_column(SubmissionKind))
    year: Mapped[int] = mapped_column()
    object_key: Mapped[str] = mapped_column(sa.String(240))
    submitted_at: Mapped[datetime] = mapped_column(sa.DateTime)
    sentence_keys: Mapped[bytes] = mapped_column(sa.LargeBinary)
    signature: Mapped[bytes] = mapped_column(sa.LargeBinary)
    features: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    passages: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    risk: Mapped[float] = mapped_column(sa.Float, index=True)
    method: Mapped[RiskMethod] = mapped_column(enum_column(RiskMethod))
    model_version: Mapped[Optional[str]] = mapped_column(sa.String(40))
    screened_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    submission: Mapped[Submission] = relationship()


class ScreeningModel(CreatedBy, db.Model):
    """A trained model: the joblib file and model card in models_ml/, and whether it is the active one."""

    __tablename__ = "screening_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(40), unique=True)
    algorithm: Mapped[str] = mapped_column(sa.String(60))
    artefact: Mapped[str] = mapped_column(sa.String(200))  # file name inside the models directory
    card: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[ModelStatus] = mapped_column(enum_column(ModelStatus), default=ModelStatus.CANDIDATE)
    promoted_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    promoted_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    created_by: Mapped[Optional[User]] = relationship(foreign_keys="ScreeningModel.created_by_id")
    promoted_by: Mapped[Optional[User]] = relationship(foreign_keys=[promoted_by_id])
