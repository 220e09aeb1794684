"""Experts rated after each panel by the bureau (issue 14; DOMAIN.md §4 "a poor rating removes them from
future draws"): timeliness (按时) and the quality of their opinions (意见质量), each on a short 1–5 scale,
with a note. Persistent poor ratings — a bureau setting says how many, how poor and over what window — take
the expert out of every draw (panels, bid committees, inspectors) with the reason, through the registry's
``drawable_check``; the exclusion lifts by itself once the window has passed them. The expert's record is
shown to the bureaus that use the pool and to the expert (never to a firm).

The model, the rule and the two pages live here; ``review.views`` registers the pages on its blueprint
(``register_routes``), so this module imports no view module and nothing imports it from below.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Optional

import sqlalchemy as sa
from flask import abort, render_template, url_for
from flask_login import current_user
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from wtforms import SelectField, TextAreaField
from wtforms.validators import Length

from evalhub.core import audit, concurrency, permissions
from evalhub.core.enums import BUREAU_SIDE, Role
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.listing import as_int
from evalhub.core.mixins import InBureau
from evalhub.core.models import User
from evalhub.core.notifications import emit
from evalhub.core.settings import SettingDef, get_setting, register
from evalhub.core.timeutil import beijing_date, beijing_day_start, beijing_today, utcnow
from evalhub.core.web import handle_form
from evalhub.extensions import db
from evalhub.registry.forms import BLANK, ChineseForm, choice
from evalhub.registry.models import Expert
from evalhub.registry.services import drawable_check
from evalhub.review.models import InvitationStatus, PanelStatus, ReviewPanel

register(
    SettingDef("expert.rating_poor_score", "专家评价“不佳”线（任一项不高于该分）", "专家库", 2, minimum=1, maximum=4,
               help="评审结束后财政局对专家按时性和意见质量各打 1–5 分；任一项不高于该分即为一次不佳评价。"),
    SettingDef("expert.rating_poor_count", "暂停抽取所需的不佳评价次数", "专家库", 3, minimum=1, maximum=20),
    SettingDef("expert.rating_window_days", "统计不佳评价的期间（天）", "专家库", 365, minimum=30, maximum=1095,
               help="期间内不佳评价达到次数的专家不参加随机抽取；早于期间的评价不再计入，届时自动恢复。"),
)

SCALE = {1: "1 分（差）", 2: "2 分（较差）", 3: "3 分（一般）", 4: "4 分（较好）", 5: "5 分（好）"}
CRITERIA = {"timeliness": "按时完成（答复邀请、提交意见）", "quality": "意见质量（具体、有依据、不套话）"}


class ExpertRating(InBureau, db.Model):
    """The bureau's rating of one expert's work on one panel (at most one per panel and expert); ``bureau``: the
    rating bureau."""

    __tablename__ = "expert_rating"
    __table_args__ = (sa.UniqueConstraint("panel_id", "expert_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    panel_id: Mapped[int] = mapped_column(sa.ForeignKey("review_panel.id"), index=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("expert.id"), index=True)
    timeliness: Mapped[int] = mapped_column()
    quality: Mapped[int] = mapped_column()
    note: Mapped[Optional[str]] = mapped_column(sa.Text)
    rated_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    rated_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    panel: Mapped[ReviewPanel] = relationship()
    expert: Mapped[Expert] = relationship()
    rated_by: Mapped[Optional[User]] = relationship()

    @property
    def lowest(self) -> int:
        return min(self.timeliness, self.quality)


concurrency.unique_message("expert_rating", "该专家在本评审组的表现已经评价过（可能是同时提交的另一请求），请刷新后查看。")

permissions.rules({
    # the record: the bureaus that may read the expert, and the expert themself — never a firm
    "expert.ratings": lambda u, e: (u.role in BUREAU_SIDE and permissions.visible(u, e))
    or (u.role == Role.EXPERT and u.expert_id == e.id),
})


@permissions.row_scope(ExpertRating)
def _ratings(user: User, stmt: Any, model: type) -> Any:
    # A rating is the rating bureau's appraisal of its own panel (its engagement, its note): read within that
    # bureau's tree, like its other records — a shared pool's expert is read by all, its ratings are not. The
    # expert reads every rating of their own.
    if user.role == Role.EXPERT:
        return stmt.where(ExpertRating.expert_id == user.expert_id) if user.expert_id else stmt.where(sa.false())
    return permissions.bureau_rows(user, stmt, model)


# --- the rules --------------------------------------------------------------------------------------

def _subject(panel: ReviewPanel) -> Any:
    """What the panel reviewed: an engagement, or a self-evaluation (both have bureau, bureau_id, reference)."""
    return getattr(panel, "subject", None) or panel.engagement


def ratable(panel: ReviewPanel) -> list[Expert]:
    """The experts who sat on this panel (accepted their seat), in seat order."""
    return [i.expert for i in panel.invitations if i.status == InvitationStatus.ACCEPTED]


def _score(errors: dict[str, str], name: str, value: Any) -> Optional[int]:
    number = as_int(str(value if value is not None else ""))
    if number is None or number not in SCALE:
        errors[name] = f"请为“{CRITERIA[name]}”选择 1–5 分"
        return None
    return number


def rate_expert(panel: ReviewPanel, expert_id: Any, actor: User, *, timeliness: Any, quality: Any,
                note: str | None = None) -> ExpertRating:
    """The bureau rates an expert of a decided panel (once). A score at or below the poor line needs a note
    saying why. When this rating makes the expert's poor ratings persistent, the expert is told, audited."""
    subject = _subject(panel)
    permissions.require(actor, "review.manage", subject)
    if panel.status == PanelStatus.REVIEWING:
        raise Conflict("评审结束（已出结果）后才能评价专家。")
    errors: dict[str, str] = {}
    expert_id = as_int(str(expert_id or ""))
    seated = {x.id: x for x in ratable(panel)}
    expert = seated.get(expert_id) if expert_id is not None else None
    if expert is None:
        errors["expert_id"] = "请选择参加本评审组的专家"
    scores = {name: _score(errors, name, value) for name, value in (("timeliness", timeliness), ("quality", quality))}
    note = (note or "").strip()
    if len(note) > 500:
        errors["note"] = "说明不能超过 500 字"
    poor_line = get_setting(subject.bureau, "expert.rating_poor_score")
    if not errors.get("timeliness") and not errors.get("quality") and min(scores.values()) <= poor_line and len(note) < 5:
        errors["note"] = f"评分不高于 {poor_line} 分时，请写明具体情况（不少于 5 字）"
    ValidationFailed.raise_if(errors)
    concurrency.serialise(f"expert-rating:{panel.id}:{expert.id}")
    if db.session.execute(sa.select(ExpertRating.id).where(
            ExpertRating.panel_id == panel.id, ExpertRating.expert_id == expert.id)).first():
        raise Conflict(f"已评价过 {expert.name} 在本评审组的表现。")
    before = poor_rating_reasons(expert)
    rating = ExpertRating(panel_id=panel.id, expert_id=expert.id, bureau_id=panel.bureau_id, note=note or None,
                          rated_by_id=actor.id, **scores)
    db.session.add(rating)
    db.session.flush()
    _rated_ids().add(expert.id)
    audit.record("expert.rated", expert, actor=actor, bureau_id=panel.bureau_id,
                 summary=f"评价专家 {expert.name}（{subject.reference} {panel.kind.label}第 {panel.round} 轮）："
                         f"按时 {scores['timeliness']} 分、意见质量 {scores['quality']} 分",
                 payload={"panel": panel.id, "rating": rating.id, **scores, "note": note})
    after = poor_rating_reasons(expert)
    if after and not before:
        audit.record("expert.rating_excluded", expert, actor=actor, bureau_id=panel.bureau_id,
                     summary=f"专家 {expert.name} 暂停参加随机抽取：{after[0]}", payload={"rating": rating.id})
        account = db.session.execute(sa.select(User).where(User.expert_id == expert.id, User.role == Role.EXPERT)
                                     ).scalars().first()
        emit("expert_rating_exclusion", link=f"/experts/{expert.id}/ratings", users=[account], reason=after[0],
             bureau=expert.bureau.name)
    return rating


# Draws ask about every expert of a pool (thousands at province scale); most were never rated. The ids of the
# experts with any rating are read once per database session (rate_expert adds to it), so an unrated expert
# costs no query.
_RATED = "evalhub.rated_experts"


@sa.event.listens_for(Session, "after_rollback")
def _forget_rated(session: Session) -> None:
    session.info.pop(_RATED, None)


def _rated_ids() -> set[int]:
    cached = db.session.info.get(_RATED)
    if cached is None:
        cached = set(db.session.execute(sa.select(ExpertRating.expert_id).distinct()).scalars())
        db.session.info[_RATED] = cached
    return cached


def ratings_of(expert: Expert, reader: User | None = None) -> list[ExpertRating]:
    """The expert's ratings ``reader`` may read (its tree's; the expert: all), latest first; None: all of them."""
    stmt = sa.select(ExpertRating).where(ExpertRating.expert_id == expert.id)
    if reader is not None:
        stmt = permissions.scope(reader, stmt, ExpertRating)
    return db.session.execute(stmt.order_by(ExpertRating.rated_at.desc(), ExpertRating.id.desc())).scalars().all()


def ratings_elsewhere(expert: Expert, shown: int) -> int:
    """How many of the expert's ratings were given outside what the reader was shown (``shown`` of them): stated as
    a number, so the record does not look clean when other bureaus rated the expert."""
    total = db.session.execute(sa.select(sa.func.count()).select_from(ExpertRating).where(
        ExpertRating.expert_id == expert.id)).scalar_one()
    return total - shown


def _poor_in_window(expert: Expert, on: date | None = None) -> tuple[list[datetime], int, int, int]:
    bureau = expert.bureau
    line = get_setting(bureau, "expert.rating_poor_score")
    count = get_setting(bureau, "expert.rating_poor_count")
    days = get_setting(bureau, "expert.rating_window_days")
    # ``on`` is a Beijing date (a draw's today): its end is Beijing's midnight, not UTC's
    now = utcnow() if on is None or on == beijing_today() else beijing_day_start(on + timedelta(days=1)) - timedelta(microseconds=1)
    since = now - timedelta(days=days)
    times = db.session.execute(sa.select(ExpertRating.rated_at).where(
        ExpertRating.expert_id == expert.id, ExpertRating.rated_at > since, ExpertRating.rated_at <= now,
        sa.or_(ExpertRating.timeliness <= line, ExpertRating.quality <= line))
        .order_by(ExpertRating.rated_at.desc())).scalars().all()
    return times, line, count, days


@drawable_check
def poor_rating_reasons(expert: Expert, on: date | None = None) -> list[str]:
    """Why persistent poor ratings keep this expert out of draws (empty: they do not): at least N ratings
    (``expert.rating_poor_count``) at or below the poor line (``expert.rating_poor_score``, either criterion)
    within the window (``expert.rating_window_days``), all read from the expert's own bureau's settings."""
    if expert.id not in _rated_ids():
        return []
    times, line, count, days = _poor_in_window(expert, on)
    if len(times) < count:
        return []
    until = beijing_date(times[count - 1] + timedelta(days=days))  # the N-th latest leaves the window then
    return [f"近 {days} 天内评审表现评价不佳 {len(times)} 次（按时或意见质量不高于 {line} 分，达到 {count} 次即暂停抽取），"
            f"预计 {until:%Y-%m-%d} 后恢复"]


# --- the pages (registered on the review blueprint by review.views) ----------------------------------

class RatingForm(ChineseForm):
    expert_id = SelectField("专家", validate_choice=False)
    timeliness = SelectField(CRITERIA["timeliness"], choices=[BLANK] + [choice(str(k), v) for k, v in SCALE.items()],
                             validate_choice=False)
    quality = SelectField(CRITERIA["quality"], choices=[BLANK] + [choice(str(k), v) for k, v in SCALE.items()],
                          validate_choice=False)
    note = TextAreaField("说明", validators=[Length(max=500, message="说明不能超过 500 字")],
                         description="评分偏低时须写明具体情况，如逾期几天、意见空泛之处")


def _panel_for_rating(panel_id: int) -> ReviewPanel:
    panel = db.get_or_404(ReviewPanel, panel_id)
    if not permissions.can(current_user, "review.manage", _subject(panel)):
        abort(403)
    return panel


def _render_panel_ratings(panel: ReviewPanel, status: int = 200, form: RatingForm | None = None):
    rated = {r.expert_id: r for r in db.session.execute(sa.select(ExpertRating).where(
        ExpertRating.panel_id == panel.id)).scalars()}
    experts = ratable(panel)
    open_ = panel.status != PanelStatus.REVIEWING and any(x.id not in rated for x in experts)
    if form is None and open_:
        form = RatingForm(formdata=None)
    if form is not None:
        form.expert_id.choices = [BLANK] + [choice(str(x.id), x.name) for x in experts if x.id not in rated]
    return render_template("review/expert_rating_panel.html", panel=panel, experts=experts, rated=rated, form=form,
                           CRITERIA=CRITERIA, PanelStatus=PanelStatus,
                           subject=_subject(panel),
                           poor_line=get_setting(_subject(panel).bureau, "expert.rating_poor_score")), status


def panel_ratings(panel_id: int):
    """评价专家: the panel's experts with their ratings, and the form for those not yet rated."""
    panel = _panel_for_rating(panel_id)
    return _render_panel_ratings(panel)


def panel_rate(panel_id: int):
    panel = _panel_for_rating(panel_id)
    form = RatingForm()
    form.expert_id.choices = [BLANK] + [choice(str(x.id), x.name) for x in ratable(panel)]
    return handle_form(form, lambda: rate_expert(panel, form.expert_id.data, current_user, timeliness=form.timeliness.data,
                                                 quality=form.quality.data, note=form.note.data),
                       message=lambda r: f"已评价专家 {r.expert.name}。",
                       to=url_for("review.panel_ratings", panel_id=panel.id),
                       failed=lambda status: _render_panel_ratings(panel, status, form))


def expert_ratings(expert_id: int):
    """The expert's record: the ratings the reader may read with their panels (the others counted), and whether
    the ratings — all of them — keep the expert out of draws."""
    expert = db.get_or_404(Expert, expert_id)
    if not permissions.can(current_user, "expert.ratings", expert):
        abort(403)
    bureau = expert.bureau
    shown = ratings_of(expert, current_user)
    return render_template("review/expert_ratings.html", expert=expert, ratings=shown,
                           elsewhere=ratings_elsewhere(expert, len(shown)),
                           exclusion=poor_rating_reasons(expert), own=current_user.expert_id == expert.id,
                           poor_line=get_setting(bureau, "expert.rating_poor_score"),
                           poor_count=get_setting(bureau, "expert.rating_poor_count"),
                           window=get_setting(bureau, "expert.rating_window_days"), CRITERIA=CRITERIA)


def register_routes(bp) -> None:
    """Called once by review.views with its blueprint (endpoints review.panel_ratings, review.panel_rate,
    review.expert_ratings)."""
    bp.add_url_rule("/reviews/panels/<int:panel_id>/expert-ratings", "panel_ratings", panel_ratings)
    bp.add_url_rule("/reviews/panels/<int:panel_id>/expert-ratings", "panel_rate", panel_rate, methods=["POST"])
    bp.add_url_rule("/experts/<int:expert_id>/ratings", "expert_ratings", expert_ratings)
