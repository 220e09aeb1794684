"""Annual credit rating of firms (DOMAIN.md §6): ratings with their components, objections, external
credit records, and the working-day calendar that objection deadlines are counted in."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evalhub.core.enums import LabeledEnum, enum_column
from evalhub.core.models import StoredFile
from evalhub.core.mixins import Created, InBureau
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.registry.models import OfFirm

Points = sa.Numeric(6, 2)


class CreditGrade(LabeledEnum):
    A = ("A", "A 级")
    B = ("B", "B 级")
    C = ("C", "C 级")
    D = ("D", "D 级")


class RatingStatus(LabeledEnum):
    DRAFT = ("draft", "草稿")
    PUBLISHED = ("published", "公示中")
    FINAL = ("final", "已确定")


class ObjectionDecision(LabeledEnum):
    UPHELD = ("upheld", "异议成立")
    REJECTED = ("rejected", "异议不成立")


class ExternalRecordKind(LabeledEnum):
    ADMINISTRATIVE_PENALTY = ("administrative_penalty", "行政处罚")
    DISHONEST_LIST = ("dishonest_list", "失信被执行人/严重失信名单")
    INDUSTRY_DISCIPLINE = ("industry_discipline", "行业协会惩戒")
    OTHER = ("other", "其他不良信用记录")


class CreditRating(InBureau, OfFirm, db.Model):
    """One firm's rating by one bureau for one year. Recomputing a draft or published rating replaces its
    components (version + 1); a final rating is history."""

    __tablename__ = "credit_rating"
    __table_args__ = (sa.UniqueConstraint("bureau_id", "firm_id", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column()  # indexed first by ix_credit_rating_ranking (below)
    status: Mapped[RatingStatus] = mapped_column(enum_column(RatingStatus), default=RatingStatus.DRAFT)
    rated: Mapped[bool] = mapped_column(default=True)  # False: "not rated" (no completed engagement)
    total: Mapped[Optional[Decimal]] = mapped_column(Points)
    grade: Mapped[Optional[CreditGrade]] = mapped_column(enum_column(CreditGrade))
    components: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    # The grade lines the total was graded on ({"a": "90", "b": "80", "c": "60"}): a bureau may move its lines
    # later, and a published grade is stated with the lines it was given on. None: computed before they were kept.
    grade_cuts: Mapped[Optional[dict[str, str]]] = mapped_column(sa.JSON)
    watch_list: Mapped[bool] = mapped_column(default=False)
    watch_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    version: Mapped[int] = mapped_column(default=1)
    computed_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    published_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    objection_deadline: Mapped[Optional[date]] = mapped_column(sa.Date)
    # the period announced: ``objection_deadline`` is ``objection_workdays`` working days after ``objection_from``
    # (a republication that keeps a longer window keeps its count too), so that a calendar correction recounts it;
    # NULL: published before they were kept
    objection_from: Mapped[Optional[date]] = mapped_column(sa.Date)
    objection_workdays: Mapped[Optional[int]] = mapped_column()
    finalised_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    # The library suspension this rating's intentional violation imposed (once: a later reinstatement by the
    # library's bureau is a decision of its own, not undone by the next recompute).
    suspension_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("firm_status_change.id"))

    objections: Mapped[list["CreditObjection"]] = relationship(back_populates="rating", order_by="CreditObjection.id")


# The dashboard asks whether any rating in scope is on the watch list: without this a scan of every rating in
# scope when none is (1.8 ms at province scale 2x, 0.1 ms with it).
_WATCHED = CreditRating.watch_list.is_(True)
sa.Index("ix_credit_rating_watched", CreditRating.bureau_id, postgresql_where=_WATCHED, sqlite_where=_WATCHED)
# A bureau's ratings of a year, by status (the credit page's progress boxes, its own list): without this the
# year's index was read for every bureau's ratings and filtered (500 rows at province scale, 1,000 at 2x).
sa.Index("ix_credit_rating_bureau_year", CreditRating.bureau_id, CreditRating.year, CreditRating.status)
# The credit page's order within a year (rated first, highest score first): a page of a large scope (the region's)
# is read in this order and stops after its rows, instead of sorting the year's ratings (firm name and id
# break ties, sorted within the few rows of a tie). It leads with the year, so it also serves what asks by year
# alone: a plain index on the year (dropped) drew the planner to read a prefecture's page from the whole year's
# ratings, filtered, and sort it (1,000 rows read at 2x province for 75 kept; its cost grew with every bureau's
# ratings), where this index or the bureau's own (above) reads about the prefecture's share.
sa.Index("ix_credit_rating_ranking", CreditRating.year, CreditRating.rated.desc(), CreditRating.total.desc(),
         CreditRating.id)


class CreditGradeCount(db.Model):
    """How many of a bureau's ratings of a year stand at each grade (published or final, rated): the dashboard's
    grade chart reads these few rows instead of counting the whole history (issue 18). Recounted from
    ``credit_rating`` for each (bureau, year) a transaction touched, just before it commits
    (``services.recount_grades``); no row for a count of 0."""

    __tablename__ = "credit_grade_count"
    __table_args__ = (sa.UniqueConstraint("bureau_id", "year", "grade"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"))  # led by the unique key's index
    year: Mapped[int] = mapped_column()
    grade: Mapped[CreditGrade] = mapped_column(enum_column(CreditGrade))
    n: Mapped[int] = mapped_column()


class CreditRatingCount(db.Model):
    """How many ratings each bureau holds for each year (every status, rated or not): the credit page's total
    (a year's ratings in the user's tree) sums these few rows instead of counting the year's ratings, which
    grow with the data (issue 18). Recounted from ``credit_rating`` for each (bureau, year) a transaction
    touched, just before it commits (``services.RATING_COUNTS``); no row for a count of 0."""

    __tablename__ = "credit_rating_count"

    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column()


class CreditObjection(db.Model):
    __tablename__ = "credit_objection"

    id: Mapped[int] = mapped_column(primary_key=True)
    rating_id: Mapped[int] = mapped_column(sa.ForeignKey("credit_rating.id"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    # stored files named by id in a list: ``files.referenced`` reads the columns marked so, as it reads foreign keys
    evidence_file_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list, info={"stored_file_ids": True})
    submitted_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    submitted_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    answer_due: Mapped[date] = mapped_column(sa.Date)
    answer_workdays: Mapped[Optional[int]] = mapped_column()  # counted from submitted_at's Beijing date; NULL: before it was kept
    decision: Mapped[Optional[ObjectionDecision]] = mapped_column(enum_column(ObjectionDecision))
    answer: Mapped[Optional[str]] = mapped_column(sa.Text)
    answered_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    answered_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    # What the objection contests: a component code and the records of it (``[{"ref", "label"}]``, refs as
    # the component lists them, e.g. "submission:12"); None for an objection to the rating as a whole.
    component: Mapped[Optional[str]] = mapped_column(sa.String(20))
    contested: Mapped[Optional[list[dict[str, Any]]]] = mapped_column(sa.JSON)
    # The rating before and after the answer's recomputation (an upheld objection shows what it changed).
    total_before: Mapped[Optional[Decimal]] = mapped_column(Points)
    total_after: Mapped[Optional[Decimal]] = mapped_column(Points)
    grade_before: Mapped[Optional[CreditGrade]] = mapped_column(enum_column(CreditGrade))
    grade_after: Mapped[Optional[CreditGrade]] = mapped_column(enum_column(CreditGrade))

    rating: Mapped[CreditRating] = relationship(back_populates="objections")
    corrections: Mapped[list["CreditCorrection"]] = relationship(back_populates="objection",
                                                                 order_by="CreditCorrection.id")


class CreditCorrection(Created, db.Model):
    """A correction of one record a rating counted, decided on an upheld objection. The record itself (the
    submission, the finding) stays as it was; the rating reads the corrected fact from here."""

    __tablename__ = "credit_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    objection_id: Mapped[int] = mapped_column(sa.ForeignKey("credit_objection.id"), index=True)
    rating_id: Mapped[int] = mapped_column(sa.ForeignKey("credit_rating.id"), index=True)
    component: Mapped[str] = mapped_column(sa.String(20))
    record_type: Mapped[str] = mapped_column(sa.String(20))   # submission, finding, external, work_plan_missing / report_missing (engagement id)
    record_id: Mapped[int] = mapped_column()
    label: Mapped[str] = mapped_column(sa.String(200))
    original: Mapped[str] = mapped_column(sa.String(200))     # the fact as recorded, e.g. "2025-06-01 提交"
    corrected: Mapped[str] = mapped_column(sa.String(200))    # the fact as corrected, e.g. "2025-04-10 提交"
    corrected_on: Mapped[Optional[date]] = mapped_column(sa.Date)  # a submission's real date
    excluded: Mapped[bool] = mapped_column(default=False)     # a finding or record that must not count
    evidence_file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    decided_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    objection: Mapped[CreditObjection] = relationship(back_populates="corrections")
    evidence_file: Mapped[StoredFile] = relationship()


class ExternalCreditRecord(OfFirm, InBureau, Created, db.Model):
    """An administrative penalty or public credit record, entered by bureau staff with its source document."""

    __tablename__ = "external_credit_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ExternalRecordKind] = mapped_column(enum_column(ExternalRecordKind))
    occurred_on: Mapped[date] = mapped_column(sa.Date)
    description: Mapped[str] = mapped_column(sa.Text)
    deduction: Mapped[Decimal] = mapped_column(Points)
    source_file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    entered_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    source_file: Mapped[StoredFile] = relationship()
