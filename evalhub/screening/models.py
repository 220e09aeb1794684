"""Screening results per uploaded work plan or report, and the registry of trained screening models."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evalhub.core.enums import LabeledEnum, enum_column
from evalhub.core.models import User
from evalhub.core.mixins import CreatedBy, InBureau
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement.models import OfEngagement
from evalhub.review.models import Submission, SubmissionKind


class RiskMethod(LabeledEnum):
    RULE = ("rule", "规则评分（公开的各特征加权和）")
    MODEL = ("model", "模型评分")
    # Too little text came out of the upload to score (a scan, text only in images): no risk, no rank; the
    # queue lists it apart for a person to open (services.MIN_SCORED_CHARS). Its ``risk`` column holds 0 only
    # because the column is required: nothing reads it as a risk.
    UNSCORED = ("unscored", "未评分：文本无法提取（可能是扫描件）")


class ModelStatus(LabeledEnum):
    CANDIDATE = ("candidate", "待启用")
    ACTIVE = ("active", "使用中")
    RETIRED = ("retired", "已停用")


class ReportScreening(OfEngagement, InBureau, db.Model):
    """One screened submission: its index entry (sentence keys, MinHash signature), its features and the
    latest risk. Bureau users see it; the firm never does."""

    __tablename__ = "report_screening"
    __table_args__ = (sa.Index("ix_report_screening_year_kind", "year", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submission.id", ondelete="CASCADE"), unique=True)
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


# The queue's order within a year and kind (riskiest first, ties by id): the queue walks it and stops at the
# page's last row instead of ranking the whole year (issue 18). The (year, kind) index stays for reading a
# whole year: in risk order the rows are scattered over the table (the year's firms read 8x the pages).
sa.Index("ix_report_screening_ranking", ReportScreening.year, ReportScreening.kind, ReportScreening.risk.desc(),
         ReportScreening.id)


class ScreeningQueueCount(db.Model):
    """How many texts of a kind a bureau has in a year's queue (the latest screened version of each engagement's
    text, as the queue ranks them): the queue's length and spot-check budget read these few rows instead of
    counting the year (issue 18). Recounted from ``report_screening`` for each (year, kind) a transaction
    touched, just before it commits (``services.QUEUE_COUNTS``, ``core.summaries``); no row for a count of 0."""

    __tablename__ = "screening_queue_count"
    __table_args__ = (sa.UniqueConstraint("year", "kind", "bureau_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column()
    kind: Mapped[SubmissionKind] = mapped_column(enum_column(SubmissionKind))
    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"))  # read through the unique key's index
    n: Mapped[int] = mapped_column()


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


# === the shared index ===============================================================================
# Every web worker and the background worker read one index in the database instead of each building its
# own copy in memory (about 2 GB at 20,000 reports, per process). A document is a screened submission
# (doc_id = submission id) or an outside reference report (doc_id = -(REFERENCE_BASE + its id)).
# ``kind`` in the three key tables is a small code (screening.index.KIND_CODES), to keep their rows narrow.

class IndexedDocument(db.Model):
    """One text in the shared index: what a lookup needs to place a match (firm, engagement, evaluated
    object, year) and, for the few candidates that are verified or shown, its keys and signature."""

    __tablename__ = "screening_doc"
    __table_args__ = (sa.Index("ix_screening_doc_engagement", "engagement_id", "kind"),
                      sa.Index("ix_screening_doc_object", "object_hash", "kind"))

    doc_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(sa.String(20))
    firm_id: Mapped[Optional[int]] = mapped_column()
    engagement_id: Mapped[Optional[int]] = mapped_column()
    object_hash: Mapped[Optional[int]] = mapped_column(sa.BigInteger)
    year: Mapped[Optional[int]] = mapped_column()
    label: Mapped[str] = mapped_column(sa.String(300), default="")
    sentence_keys: Mapped[bytes] = mapped_column(sa.LargeBinary)
    signature: Mapped[bytes] = mapped_column(sa.LargeBinary)


class IndexPosting(db.Model):
    """A masked sentence key → a document containing it. The key's own firm comes first after the key so
    "how often does this firm use the sentence" is one index range."""

    __tablename__ = "screening_posting"

    # The key leads every primary key here: lookups ask for a few hundred keys at once, and with the key
    # first the index is the plan even before the planner has statistics.
    key: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    firm_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # -1: no firm known
    doc_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)


class IndexKeyCount(db.Model):
    """How many documents of a kind hold a key: a stock phrase is answered from here without reading its
    thousands of postings."""

    __tablename__ = "screening_key"

    key: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column()


class IndexBand(db.Model):
    """One LSH band of a document's MinHash signature (the band number is mixed into the hash)."""

    __tablename__ = "screening_band"

    bucket: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    doc_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)


# === outside reference reports =======================================================================

class ReferenceDocument(InBureau, db.Model):
    """A published report a bureau imported to compare uploads against (外部公开报告): indexed for the copy
    features, never an evalhub submission, never ranked in the queue."""

    __tablename__ = "reference_document"
    __table_args__ = (sa.UniqueConstraint("bureau_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[SubmissionKind] = mapped_column(enum_column(SubmissionKind))
    title: Mapped[str] = mapped_column(sa.String(300))
    filename: Mapped[str] = mapped_column(sa.String(300))
    region: Mapped[Optional[str]] = mapped_column(sa.String(100))
    year: Mapped[Optional[int]] = mapped_column()
    firm_name: Mapped[Optional[str]] = mapped_column(sa.String(200))
    firm_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("firm.id"))  # when the name is a registered firm
    url: Mapped[Optional[str]] = mapped_column(sa.String(1000))
    sha256: Mapped[str] = mapped_column(sa.String(64))  # of the extracted text without whitespace
    text: Mapped[str] = mapped_column(sa.Text)
    chars: Mapped[int] = mapped_column()
    imported_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    imported_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    imported_by: Mapped[Optional[User]] = relationship()
