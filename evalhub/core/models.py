"""Organisations, people, and the cross-module spines: audit log, draws, stored files, jobs, settings."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Optional

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evalhub.core.enums import Authority, BureauLevel, JobStatus, LabeledEnum, Role, enum_column
from evalhub.core.mixins import Created, CreatedBy, OfUser
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db


class Bureau(db.Model):
    """A finance bureau (财政局) at region, prefecture or county level."""

    __tablename__ = "bureau"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(12), unique=True)  # administrative division code
    name: Mapped[str] = mapped_column(sa.String(100))
    short_name: Mapped[str] = mapped_column(sa.String(30))
    level: Mapped[BureauLevel] = mapped_column(enum_column(BureauLevel))
    parent_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bureau.id"))
    # Materialised path of division codes ("650000/652800/652822/"): "self and everything below"
    # is one LIKE on an indexed column, the same on SQLite and PostgreSQL.
    path: Mapped[str] = mapped_column(sa.String(200), index=True)

    parent: Mapped[Optional["Bureau"]] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list["Bureau"]] = relationship(back_populates="parent")
    budget_units: Mapped[list["BudgetUnit"]] = relationship(back_populates="bureau")

    def ancestors(self) -> list["Bureau"]:
        out, node = [], self.parent
        while node is not None:
            out.append(node)
            node = node.parent
        return out

    def __repr__(self) -> str:
        return f"<Bureau {self.code} {self.short_name}>"


class BudgetUnit(db.Model):
    """A budget unit (预算单位) under a bureau: a department or agency whose spending is evaluated."""

    __tablename__ = "budget_unit"
    __table_args__ = (sa.UniqueConstraint("bureau_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    code: Mapped[Optional[str]] = mapped_column(sa.String(30))  # 统一社会信用代码, when the unit has one
    # 主管部门 → 所属单位 (e.g. 巴州统计局 → 巴州统计局普查中心): conflict checks look up and down this tree.
    parent_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("budget_unit.id"), index=True)

    bureau: Mapped[Bureau] = relationship(back_populates="budget_units")
    parent: Mapped[Optional["BudgetUnit"]] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list["BudgetUnit"]] = relationship(back_populates="parent")


class User(UserMixin, Created, db.Model):
    __tablename__ = "user_account"
    __table_args__ = (
        # A user belongs to exactly the organisation its role implies.
        sa.CheckConstraint(
            "(role IN ('bureau_admin','bureau_staff') AND bureau_id IS NOT NULL AND firm_id IS NULL AND expert_id IS NULL)"
            " OR (role = 'firm_user' AND firm_id IS NOT NULL AND bureau_id IS NULL AND expert_id IS NULL)"
            " OR (role = 'expert' AND expert_id IS NOT NULL AND bureau_id IS NULL AND firm_id IS NULL)"
            " OR (role = 'system_admin' AND firm_id IS NULL AND expert_id IS NULL)"
            # A budget unit's account (evalhub/results): no bureau, firm or expert; its unit is budget_unit_id
            # (set by results.services right after core.services.create_user, which does not take it).
            " OR (role = 'budget_unit' AND bureau_id IS NULL AND firm_id IS NULL AND expert_id IS NULL)",
            name="one_organisation",
        ),
        # A login name is unique whatever its case ("BZ.ADMIN" is "bz.admin"), held by the database so that two
        # accounts opened at once cannot both pass the check before the insert; sign-in looks names up by it.
        sa.Index("uq_user_account_username_lower", sa.func.lower(sa.text("username")), unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    display_name: Mapped[str] = mapped_column(sa.String(64))
    role: Mapped[Role] = mapped_column(enum_column(Role))
    bureau_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bureau.id"), index=True)
    firm_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    expert_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("expert.id"), index=True)
    # A budget-unit user's unit (role budget_unit): sees that unit and the units under it (evalhub/results).
    budget_unit_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("budget_unit.id"), index=True)
    email: Mapped[Optional[str]] = mapped_column(sa.String(120))
    phone: Mapped[Optional[str]] = mapped_column(sa.String(30))
    is_enabled: Mapped[bool] = mapped_column(default=True)
    # Who disabled it (empty while enabled): only that authority or a higher one enables it again, so a firm's
    # administrator cannot lift the bureau's or the platform's deactivation (core/services.py ``set_enabled``).
    disabled_authority: Mapped[Optional[Authority]] = mapped_column(enum_column(Authority))
    # A firm's own administrator (机构管理员): adds and removes the firm's accounts (firm users only; the
    # contact who registered the firm is the first).
    is_firm_admin: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    last_login_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    # Every browser session carries the generation it was signed in under (see ``get_id``); logout, a
    # password change, deactivation and "sign out everywhere" add one, which ends all of them at once.
    session_generation: Mapped[int] = mapped_column(default=1, server_default="1")
    # When the password was last set; drives the optional expiry (config PASSWORD_MAX_AGE_DAYS).
    password_changed_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime, default=utcnow)
    # Optional TOTP second factor (core/accounts.py): the secret encrypted like identity numbers; set but not
    # yet enabled during enrolment; the last accepted time step, so that a code is never accepted twice.
    totp_secret_encrypted: Mapped[Optional[str]] = mapped_column(sa.String(255))
    totp_enabled_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    # When the enrolment now pending began (set by ``totp_begin``, cleared at its confirmation): its secret is
    # confirmable for TOTP_ENROLMENT_MINUTES only (``accounts.totp_pending``).
    totp_begun_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    totp_last_step: Mapped[Optional[int]] = mapped_column(sa.BigInteger)

    bureau: Mapped[Optional[Bureau]] = relationship()
    firm: Mapped[Optional["Firm"]] = relationship(foreign_keys=[firm_id])  # noqa: F821
    expert: Mapped[Optional["Expert"]] = relationship(foreign_keys=[expert_id])  # noqa: F821
    budget_unit: Mapped[Optional[BudgetUnit]] = relationship(foreign_keys=[budget_unit_id])

    @property
    def is_active(self) -> bool:  # Flask-Login: disabled accounts cannot hold a session
        return self.is_enabled

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: "id:generation" (``services.session_user`` checks both)."""
        return f"{self.id}:{self.session_generation}"

    @property
    def awaiting_activation(self) -> bool:
        """Created without a password (its hash is the unusable "!", core/passwords.py); the person sets one
        through an activation link."""
        return self.password_hash == "!"

    @property
    def totp_enabled(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def is_bureau_user(self) -> bool:
        return self.role in (Role.BUREAU_ADMIN, Role.BUREAU_STAFF)

    @property
    def organisation_name(self) -> str:
        if self.bureau:
            return self.bureau.name
        if self.firm:
            return self.firm.name
        if self.expert:
            return f"评审专家 · {self.expert.employer}"
        if self.budget_unit:
            return self.budget_unit.name
        return "系统"


class ApiToken(OfUser, Created, db.Model):
    """A Bearer token for the API; only its sha256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime)
    last_used_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)


class AuditEvent(db.Model):
    """Append-only, hash-chained log of every state change."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    actor_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    actor_name: Mapped[str] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    object_type: Mapped[str] = mapped_column(sa.String(40))
    object_id: Mapped[Optional[int]] = mapped_column()
    bureau_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bureau.id"), index=True)
    summary: Mapped[str] = mapped_column(sa.String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # Unique: a link can have only one successor, so two writers cannot fork the chain.
    prev_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hash: Mapped[str] = mapped_column(sa.String(64), unique=True)

    __table_args__ = (sa.Index("ix_audit_event_object", "object_type", "object_id"),)

    actor: Mapped[Optional[User]] = relationship()


class DrawStatus(LabeledEnum):
    ANNOUNCED = ("announced", "已公告，待监督人输入数字")
    DRAWN = ("drawn", "已抽取")
    # Its basis gone before the reveal (a tie-break whose committee changed): never revealed, its secret kept.
    WITHDRAWN = ("withdrawn", "已撤销（未揭晓）")


class Draw(CreatedBy, db.Model):
    """A recorded, reproducible random draw (firm lottery, expert panel, inspection sample).

    Two-phase (core/draws.py): announced with its candidate list frozen (``candidate_hash``) and a
    commitment to a server secret (``commitment`` = sha256(secret)); drawn once every witness has entered
    a number, with seed = sha256(secret | candidate hash | witnesses' numbers). ``secret`` is shown only
    once drawn. Rows written before witnessed draws have no commitment (``legacy``)."""

    __tablename__ = "draw"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[Optional[str]] = mapped_column(sa.String(40))  # the caller's handler (draws.on_drawn)
    status: Mapped[DrawStatus] = mapped_column(enum_column(DrawStatus), default=DrawStatus.DRAWN, index=True)
    context_type: Mapped[Optional[str]] = mapped_column(sa.String(40))
    context_id: Mapped[Optional[int]] = mapped_column()
    bureau_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bureau.id"), index=True)
    candidate_ids: Mapped[list[int]] = mapped_column(sa.JSON)  # everyone considered, sorted
    candidate_names: Mapped[Optional[dict[str, str]]] = mapped_column(sa.JSON)  # {"<id>": name}
    exclusions: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)  # [{"id", "reasons": [...]}]
    k: Mapped[int] = mapped_column()
    candidate_hash: Mapped[Optional[str]] = mapped_column(sa.String(64))
    commitment: Mapped[Optional[str]] = mapped_column(sa.String(64))
    secret: Mapped[Optional[str]] = mapped_column(sa.String(64))  # never shown before the draw
    params: Mapped[Optional[dict[str, Any]]] = mapped_column(sa.JSON)  # what the caller's handler needs
    seed: Mapped[Optional[str]] = mapped_column(sa.String(64))
    algorithm: Mapped[str] = mapped_column(sa.String(40))
    result_ids: Mapped[list[int]] = mapped_column(sa.JSON)
    redraw_of_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("draw.id"))
    redraw_reason: Mapped[Optional[str]] = mapped_column(sa.String(300))
    # A draw made inside another draw's reveal (a campaign's inspectors): its seed derives from that seed.
    derived_from_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("draw.id"))
    drawn_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    drawn_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    redraw_of: Mapped[Optional["Draw"]] = relationship(remote_side=[id], foreign_keys=[redraw_of_id])
    derived_from: Mapped[Optional["Draw"]] = relationship(remote_side=[id], foreign_keys=[derived_from_id])
    created_by: Mapped[Optional[User]] = relationship(foreign_keys="Draw.created_by_id")
    drawn_by: Mapped[Optional[User]] = relationship(foreign_keys=[drawn_by_id])
    witnesses: Mapped[list["DrawWitness"]] = relationship(back_populates="draw", order_by="DrawWitness.position",
                                                          cascade="all, delete-orphan")

    @property
    def legacy(self) -> bool:
        return self.commitment is None


class DrawWitness(OfUser, db.Model):
    """A witness (监督人) named by the bureau for one draw, and the number they entered."""

    __tablename__ = "draw_witness"
    __table_args__ = (sa.UniqueConstraint("draw_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    draw_id: Mapped[int] = mapped_column(sa.ForeignKey("draw.id"), index=True)
    position: Mapped[int] = mapped_column()  # the fixed order of the numbers in the seed
    number: Mapped[Optional[str]] = mapped_column(sa.String(20))
    entered_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    named_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))

    draw: Mapped[Draw] = relationship(back_populates="witnesses")


class StoredFile(Created, db.Model):
    """An uploaded document, stored once by content hash, with its text extracted once."""

    __tablename__ = "stored_file"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    size: Mapped[int] = mapped_column()
    content_type: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[str] = mapped_column(sa.String(10))  # docx, pdf, txt, xlsx, png, jpg, zip
    original_name: Mapped[str] = mapped_column(sa.String(255))
    text: Mapped[Optional[str]] = mapped_column(sa.Text)
    text_encoding: Mapped[Optional[str]] = mapped_column(sa.String(20))
    uploaded_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))


class Job(Created, db.Model):
    """A background job's record: progress lives here so any worker and any page can read it."""

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    title: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[JobStatus] = mapped_column(enum_column(JobStatus), default=JobStatus.QUEUED)
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    progress: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(sa.String(300), default="")
    result: Mapped[Optional[dict[str, Any]]] = mapped_column(sa.JSON)
    bureau_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bureau.id"), index=True)
    created_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"), index=True)
    started_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    heartbeat_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)  # a running job's last sign of life
    finished_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    created_by: Mapped[Optional[User]] = relationship()

    @property
    def percent(self) -> int:
        if self.status == JobStatus.SUCCEEDED:
            return 100
        return int(100 * self.progress / self.total) if self.total else 0


class BureauSetting(db.Model):
    """A bureau's own value for a rule parameter; lower bureaus inherit their parent's."""

    __tablename__ = "bureau_setting"
    __table_args__ = (sa.UniqueConstraint("bureau_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"))
    key: Mapped[str] = mapped_column(sa.String(64))
    value: Mapped[Any] = mapped_column(sa.JSON)
    updated_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, onupdate=utcnow)


class Notification(OfUser, Created, db.Model):
    """An in-app message (the inbox); e-mailed too when an SMTP server is configured."""

    __tablename__ = "notification"
    __table_args__ = (sa.UniqueConstraint("user_id", "dedupe_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    link: Mapped[Optional[str]] = mapped_column(sa.String(300))
    # Reminders are idempotent: the same reminder for the same thing is stored once.
    dedupe_key: Mapped[Optional[str]] = mapped_column(sa.String(120))
    read_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    emailed_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)


# The e-mail run (core/notifications.py ``send_pending_email``, hourly) looks for the unsent, unread messages of
# the last days (``EMAIL_MAX_AGE``): a range of this index. Partial, so it holds only messages still waiting —
# sent and read ones leave it — and keyed by ``created_at``, because the messages never sent (an account without
# an address, or read in the inbox first) stay unsent for ever and must not be read at every run.
_UNSENT = sa.and_(Notification.emailed_at.is_(None), Notification.read_at.is_(None))
sa.Index("ix_notification_unsent", Notification.created_at, postgresql_where=_UNSENT, sqlite_where=_UNSENT)


class AuditCheckpoint(CreatedBy, db.Model):
    """A signed note of the audit chain's head at one moment (core.anchoring). The row is only the
    platform's own copy: what anchors the chain are the copies outside the database — the application
    log and the files upper bureaus and auditors download and keep."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(10))  # daily / manual / cli
    last_event_id: Mapped[int] = mapped_column()
    head_hash: Mapped[str] = mapped_column(sa.String(64))
    event_count: Mapped[int] = mapped_column()
    anchors: Mapped[list[list[Any]]] = mapped_column(sa.JSON)  # [[event id, hash], …] spread over the chain
    key_id: Mapped[str] = mapped_column(sa.String(16))
    signature: Mapped[str] = mapped_column(sa.String(64))

    created_by: Mapped[Optional[User]] = relationship()


class NamedLock(db.Model):
    """A row per named lock (core.concurrency.serialise): taking it is an UPDATE of the row, held until the
    transaction ends. Rows nobody took for a day are pruned."""

    __tablename__ = "named_lock"

    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    locked_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class IdempotencyKey(db.Model):
    """An API client's Idempotency-Key and the answer its first request got (core.concurrency.run_once).
    ``status`` is empty while that request runs; kept for 24 hours."""

    __tablename__ = "idempotency_key"
    __table_args__ = (sa.UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(100))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))  # sha256 of method, path, query and body
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, index=True)
    status: Mapped[Optional[int]] = mapped_column()
    content_type: Mapped[Optional[str]] = mapped_column(sa.String(100))
    body: Mapped[Optional[str]] = mapped_column(sa.Text)


class PasswordHistory(Created, db.Model):
    """The hashes of a user's recent passwords (the current one included): a new password may not repeat
    any of the last ``PASSWORD_HISTORY`` (core/passwords.py). Older rows are deleted."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))


class AccountLink(db.Model):
    """A one-time link that lets a person set their password: activation of an account created without one,
    or a password reset. Only the token's sha256 is stored; the link is shown once (and e-mailed)."""

    __tablename__ = "account_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(20))  # activation / reset (core.accounts.LinkPurpose)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime)
    used_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    # A newer link for the same purpose replaces this one.
    revoked_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    # Empty for a link the person asked for themselves ("忘记密码").
    created_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id", ondelete="SET NULL"))

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    created_by: Mapped[Optional[User]] = relationship(foreign_keys=[created_by_id])


class RateLimitHit(Created, db.Model):
    """One counted request for a rate limit kept in the database (so several workers share it): a bucket
    (e.g. "password_reset") and a keyed digest of who asked (their address). Rows older than a day are pruned."""

    __tablename__ = "rate_limit_hit"
    __table_args__ = (sa.Index("ix_rate_limit_hit_bucket_digest", "bucket", "digest", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[str] = mapped_column(sa.String(40))
    digest: Mapped[str] = mapped_column(sa.String(64))


class CalendarDay(db.Model):
    """An exception to "Monday–Friday are working days": a holiday on a weekday, or a make-up working day
    (调休) at a weekend. bureau_id None: the national calendar; a bureau's own rows override it."""

    __tablename__ = "calendar_day"
    __table_args__ = (sa.UniqueConstraint("bureau_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bureau.id"), index=True)
    day: Mapped[date] = mapped_column(sa.Date, index=True)
    is_workday: Mapped[bool] = mapped_column()
    note: Mapped[str] = mapped_column(sa.String(100))
