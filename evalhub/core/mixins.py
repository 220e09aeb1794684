"""Model mixins: the columns many tables share, declared once.

Each mixin adds exactly the columns (and relationships) its name says, with the same types, nullability,
indexes and foreign keys the tables have always had — the migrations describe them, and
``tests/test_migrations.py`` checks the models still match. A table whose column differs (nullable, not
indexed, a ``back_populates``) declares it itself instead.

    class Complaint(InBureau, CreatedBy, db.Model): ...

Domain packages add their own on top (``registry.models.OfFirm``, ``procurement.models.OfEngagement``).
The relationships name their targets ("Bureau", "User") instead of importing them: ``core.models`` itself
uses these mixins, and importing it back here would be a circle (tests/test_layers.py). SQLAlchemy finds the
classes by name in its registry when the mappers are configured.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from evalhub.core.timeutil import utcnow


class Created:
    """``created_at``: when the row was written (naive UTC)."""

    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class CreatedBy(Created):
    """``created_by_id`` (the user who wrote the row; None for the system) and ``created_at``."""

    created_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))


class Acted(Created):
    """A history row: who acted (``actor_id``, ``actor``; None for the system) and when (``created_at``)."""

    actor_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    @declared_attr
    def actor(cls) -> Mapped[Optional["User"]]:
        return relationship("User", foreign_keys=lambda: [cls.actor_id])


class InBureau:
    """A row that belongs to one bureau: ``bureau_id`` (required, indexed) and ``bureau`` — the column the
    row scope of ``permissions`` narrows by."""

    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"), index=True)

    @declared_attr
    def bureau(cls) -> Mapped["Bureau"]:
        return relationship("Bureau", foreign_keys=lambda: [cls.bureau_id])


class OfUser:
    """A row that belongs to one account: ``user_id`` (required, indexed) and ``user``."""

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"), index=True)

    @declared_attr
    def user(cls) -> Mapped["User"]:
        return relationship("User", foreign_keys=lambda: [cls.user_id])


class CountedPerBureau:
    """A summary table of ``core.summaries``: how many rows each bureau holds per the key its class declares
    beside (a ``status``), ``bureau_id`` first in the primary key, and ``n`` (no row for a count of 0)."""

    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"), primary_key=True, sort_order=-1)
    n: Mapped[int] = mapped_column(sort_order=1)
