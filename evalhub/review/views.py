"""Review pages: the firm's submissions (work plan, report with its scoring table), the bureau's panels,
letters, results, publication and rubrics, the expert's invitations and reviews, and everyone's inbox.

Thin routes: check permission, call a service, commit, redirect. A service's ``ValidationFailed`` is
rolled back and shown beside the form with HTTP 422 (nothing written); ``Conflict`` and
``PermissionDenied`` propagate to the app's error handlers (409 / 403).

Who sees what (DESIGN.md "Permissions"):
- individual reviews are read only through ``services.visible_reviews`` — the bureau sees all, an expert
  sees others' only after submitting their own, a firm none;
- a firm reads its submissions and, of each panel, only the consolidated outcome and letter: its pages
  never touch invitations or reviews, so expert names and individual totals cannot reach them;
- an expert reads a submission only when seated (accepted) on a panel of that engagement's document of
  the same kind, for that version or a later one (so a reviewer of version 2 can read version 1 and the
  letter that sent it back); an expert never sees a submission before accepting the invitation.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Optional

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core import notifications, permissions
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.exports import to_xlsx
from evalhub.core.models import Bureau, Draw, Notification
from evalhub.core.formatting import points_text
from evalhub.core.timeutil import utcnow
from evalhub.core.listing import Filter, Listing, as_int, choice_filter, year_filter
from evalhub.core.web import (
    bureau_side,
    form_page,
    handle_form,
    load,
    paginate,
    send_stored,
    submit_form,
    xlsx_response,
)
from evalhub.extensions import db
from evalhub.procurement import page, workflow
from evalhub.procurement.models import Engagement, EngagementState as S, ServiceKind
from evalhub.review import services
from evalhub.review.forms import (
    INDICATOR_ROWS,
    RUBRIC_ROWS,
    AcceptForm,
    CapForm,
    ClassifyForm,
    ConfirmForm,
    DeclineForm,
    DeductionForm,
    LetterForm,
    LiftCapForm,
    OfflineAnswerForm,
    PanelForm,
    PublishForm,
    ReopenForm,
    ReportSubmissionForm,
    RubricForm,
    SubmissionForm,
    WithdrawForm,
    rating_form_for,
    review_form_for,
)
from evalhub.review.models import (
    CommissionerRating,
    EvaluationResult,
    InvitationStatus,
    PanelInvitation,
    PanelStatus,
    Publication,
    ResultCap,
    Review,
    ReviewPanel,
    ReviewStatus,
    Rubric,
    RubricKind,
    SelfEvaluation,
    Submission,
    SubmissionKind,
)

bp = Blueprint("review", __name__)


# --- small helpers ---------------------------------------------------------------------------------

def _is_firm_of(engagement: Engagement) -> bool:
    return current_user.role == Role.FIRM_USER and engagement.firm_id is not None \
        and current_user.firm_id == engagement.firm_id


# --- who may read a submission ---------------------------------------------------------------------

def _seated_max_version(user, engagement_id: int, kind: SubmissionKind) -> Optional[int]:
    """The latest version of this engagement's document the expert is seated (accepted) to review."""
    if user.role != Role.EXPERT or user.expert_id is None:
        return None
    return db.session.execute(
        sa.select(sa.func.max(Submission.version))
        .join(ReviewPanel, ReviewPanel.submission_id == Submission.id)
        .join(PanelInvitation, PanelInvitation.panel_id == ReviewPanel.id)
        .where(Submission.engagement_id == engagement_id, Submission.kind == kind,
               PanelInvitation.expert_id == user.expert_id,
               PanelInvitation.status == InvitationStatus.ACCEPTED)).scalar_one_or_none()


def _may_read(submission: Submission) -> bool:
    if submission.self_evaluation_id is not None:  # a budget unit's self-evaluation (克州 item 7)
        if current_user.role == Role.EXPERT:
            seated = db.session.execute(
                sa.select(sa.func.max(Submission.version))
                .join(ReviewPanel, ReviewPanel.submission_id == Submission.id)
                .join(PanelInvitation, PanelInvitation.panel_id == ReviewPanel.id)
                .where(Submission.self_evaluation_id == submission.self_evaluation_id,
                       PanelInvitation.expert_id == current_user.expert_id,
                       PanelInvitation.status == InvitationStatus.ACCEPTED)).scalar_one_or_none()
            return seated is not None and submission.version <= seated
        return permissions.can(current_user, "self_evaluation.view", submission.self_evaluation)
    if current_user.role == Role.EXPERT:
        seated = _seated_max_version(current_user, submission.engagement_id, submission.kind)
        if seated is not None and submission.version <= seated:
            return True
        # an inspector of an open case on the engagement (supervision's grant) reads every version
    return permissions.can(current_user, "engagement.view", submission.engagement)


def _readable_submission(submission_id: int) -> Submission:
    submission = db.get_or_404(Submission, submission_id)
    if not _may_read(submission):
        abort(403)
    return submission


def _firm_outcome(panel: Optional[ReviewPanel] | Any) -> Optional[dict]:
    """What the firm may read of a panel (or of a row with the panel's columns under their names): the
    consolidated outcome, and the letter once the bureau sent it.
    A panel decided against the firm reads "under review" until the bureau has edited and sent its letter."""
    if panel is None:
        return None
    if panel.letter_sent_at is not None:
        return {"status": "returned", "label": "退回整改", "score": panel.score,
                "score_words": services.score_words(panel), "letter": panel.letter,
                "sent_at": panel.letter_sent_at, "resubmit_due": panel.resubmit_due}
    if panel.passed and panel.status == PanelStatus.CLOSED:
        # The letter of a passed panel was never edited and sent by the bureau: the firm reads the outcome only.
        return {"status": "passed", "label": "评审通过", "score": panel.score,
                "score_words": services.score_words(panel), "letter": None,
                "sent_at": panel.decided_at, "resubmit_due": None}
    return {"status": "reviewing", "label": "专家评审中", "score": None, "score_words": None, "letter": None, "sent_at": None,
            "resubmit_due": None}


def _current_rubric(bureau: Bureau, kind: RubricKind, service_kind: Optional[ServiceKind] = None) -> Rubric:
    """The rubric in force; the system defaults are seeded (and kept) on first use."""
    if services.ensure_default_rubrics():
        db.session.commit()
    return services.current_rubric(bureau, kind, service_kind)


def _sent_letter_before(submission: Submission) -> Optional[ReviewPanel]:
    """The panel whose letter sent the previous version of this document back, if any."""
    if submission.version <= 1:
        return None
    owner = (Submission.self_evaluation_id == submission.self_evaluation_id if submission.self_evaluation_id is not None
             else Submission.engagement_id == submission.engagement_id)
    previous = db.session.execute(sa.select(Submission).where(
        owner, Submission.kind == submission.kind,
        Submission.version == submission.version - 1)).scalar_one_or_none()
    if previous is None or previous.panel is None or previous.panel.letter_sent_at is None:
        return None
    return previous.panel


# --- the engagement page: submissions, letters and outcomes ----------------------------------------

# The engagement page's submissions: every version handed in (as ``services.submissions`` orders them), with what
# ``_firm_outcome`` reads of its panel under the panel's own names; read with the engagement by the page.
_PAGE_SUBMISSIONS = page.part("submissions", sa.select(
    Submission.id, Submission.kind, Submission.version, Submission.concluded_total, Submission.concluded_grade,
    Submission.submitted_at, ReviewPanel.id.label("panel_id"), ReviewPanel.status, ReviewPanel.passed,
    ReviewPanel.score, ReviewPanel.pass_mark, ReviewPanel.decided_at, ReviewPanel.letter, ReviewPanel.letter_sent_at,
    ReviewPanel.resubmit_due).outerjoin(ReviewPanel, ReviewPanel.submission_id == Submission.id)
    .where(Submission.engagement_id == page.ENGAGEMENT_ID).order_by(Submission.kind, Submission.version))


# the panel's score as letters state it, for the pages that show the rounded figure beside the outcome
bp.add_app_template_global(services.score_words, "panel_score_words")
bp.add_app_template_global(services.rounding_hides_fail, "rounding_hides_fail")


@bp.app_template_global("review_submissions")
def _review_submissions(engagement: Engagement) -> list[dict]:
    """For the engagement page (templates/review/_engagement_submissions.html): every version the firm handed
    in, each with what the firm may read of its panel — the outcome and the return letter once sent. The
    firm of the engagement, the bureau side and an expert inspecting it (``engagement.view``) see it; no other
    expert (experts read through their panels)."""
    if not (_is_firm_of(engagement) or ((bureau_side() or current_user.role == Role.EXPERT)
                                        and permissions.can(current_user, "engagement.view", engagement))):
        return []
    return [{"submission": row, "outcome": _firm_outcome(row if row.panel_id is not None else None)}
            for row in page.rows_of("submissions", engagement)]


@bp.app_template_global("review_standards")
def _review_standards(engagement: Engagement) -> list:
    """For the engagement page: the rubric and pass mark a work-plan and a report panel formed now would get (its
    委托事项's, else the general ones) — the bureau side only."""
    if not (bureau_side() and permissions.can(current_user, "engagement.view", engagement)):
        return []
    return services.standards_for(engagement.bureau, (SubmissionKind.WORK_PLAN, SubmissionKind.REPORT),
                                  engagement.service_kind)


# --- the navbar's unread badge ---------------------------------------------------------------------

def _unread_count() -> int:
    # Read with the account by ``permissions.load_user`` (one statement less on every page).
    user = current_user._get_current_object()
    if not getattr(user, "is_authenticated", False):
        return 0
    return permissions.unread_notifications(user)


@bp.app_context_processor
def _inbox_badge() -> dict:
    return {"unread_count": _unread_count}


# --- the firm: submissions -------------------------------------------------------------------------

def _kind_for(engagement: Engagement) -> SubmissionKind:
    raw = request.args.get("kind", "").strip()
    if raw:
        try:
            return SubmissionKind(raw)
        except ValueError:
            abort(404)
    if engagement.state in (S.FIELDWORK, S.REPORT_RETURNED):
        return SubmissionKind.REPORT
    return SubmissionKind.WORK_PLAN


def _submission_form(kind: SubmissionKind, previous: Optional[Submission]) -> SubmissionForm:
    if kind == SubmissionKind.WORK_PLAN:
        return SubmissionForm()
    if request.method == "POST" or previous is None:
        return ReportSubmissionForm()
    # A resubmission starts from the previous version's scoring table.
    rows = [{"category": i.category.value, "name": i.name, "weight": points_text(i.weight), "score": points_text(i.score)}
            for i in previous.indicators]
    rows += [{}] * max(0, INDICATOR_ROWS - len(rows))
    return ReportSubmissionForm(data={
        "indicators": rows, "concluded_total": points_text(previous.concluded_total),
        "concluded_grade": previous.concluded_grade.value if previous.concluded_grade else ""})


@bp.route("/engagements/<int:engagement_id>/submissions/new", methods=["GET", "POST"])
def submission_new(engagement_id: int):
    engagement = load(Engagement, engagement_id, "engagement.view")
    if not _is_firm_of(engagement):
        abort(403)
    kind = _kind_for(engagement)
    if (kind, engagement.state) not in services.SUBMIT_ACTIONS:
        raise Conflict(f"评价任务当前状态为“{engagement.state.label}”，不能提交{kind.label}。")
    if kind == SubmissionKind.REPORT and engagement.state == S.REPORT_RETURNED:
        exhausted = services.rounds_exhausted(engagement)
        if exhausted:
            raise Conflict(exhausted + "。")
    previous = services.latest_submission(engagement, kind)
    form = _submission_form(kind, previous)
    row_errors: dict[int, str] = {}

    def submit():
        upload = form.file.data
        extra: dict[str, Any] = {}
        if kind == SubmissionKind.REPORT:
            extra = dict(indicators=[services.IndicatorInput(r.form.category.data or "", r.form.name.data or "",
                                                             r.form.weight.data, r.form.score.data)
                                     for r in form.indicators],
                         concluded_total=form.concluded_total.data, concluded_grade=form.concluded_grade.data)
        try:
            return services.submit(engagement, kind, upload.filename or "", upload.read(), current_user,
                                   note=form.note.data, **extra)
        except ValidationFailed as exc:
            row_errors.update({int(k.split("_")[1]): v for k, v in exc.fields.items() if k.startswith("indicator_")})
            raise

    return handle_form(form, submit, message=lambda submission: f"已提交{kind.label}第 {submission.version} 版。",
                       to=lambda submission: url_for(".submission_detail", submission_id=submission.id),
                       failed=form_page("review/submission_new.html", e=engagement, kind=kind, form=form,
                                        previous=previous, row_errors=row_errors, SubmissionKind=SubmissionKind,
                                        lead_problem=workflow.REQUIREMENTS["lead_named"](engagement) if kind == SubmissionKind.REPORT else None,
                                        letter_panel=previous.panel if previous and previous.panel
                                        and previous.panel.letter_sent_at else None))


@bp.route("/submissions/<int:submission_id>")
def submission_detail(submission_id: int):
    submission = _readable_submission(submission_id)
    if submission.self_evaluation_id is not None:  # its page is the self-evaluation's (experts: the file)
        if current_user.role == Role.EXPERT:
            return redirect(url_for(".submission_file", submission_id=submission.id))
        return redirect(url_for("results.self_evaluation", se_id=submission.self_evaluation_id))
    engagement = submission.engagement
    versions = services.submissions(engagement, submission.kind)
    role = "firm" if current_user.role == Role.FIRM_USER else "expert" if current_user.role == Role.EXPERT else "bureau"
    if role == "expert" and not permissions.can(current_user, "engagement.view", engagement):  # an inspector: all
        seated = _seated_max_version(current_user, engagement.id, submission.kind) or 0
        versions = [v for v in versions if v.version <= seated]
    outcomes = {v.id: _firm_outcome(v.panel) for v in versions}
    panel_form = None
    awaiting_panel = (role == "bureau" and submission.panel is None and versions and versions[-1].id == submission.id
                      and engagement.state == services.PANEL_ACTIONS[submission.kind][1])
    if awaiting_panel and permissions.can(current_user, "review.manage", engagement):
        panel_form = PanelForm()
    return render_template("review/submission_detail.html", s=submission, e=engagement, versions=versions,
                           role=role, outcomes=outcomes, panel_form=panel_form,
                           can_submit=_is_firm_of(engagement) and (submission.kind, engagement.state) in services.SUBMIT_ACTIONS)


@bp.route("/submissions/<int:submission_id>/file")
def submission_file(submission_id: int):
    submission = _readable_submission(submission_id)
    return send_stored(submission.file)


# --- the bureau: panels ----------------------------------------------------------------------------

def _pending_submission(engagement: Engagement) -> Optional[Submission]:
    for kind, (_, state) in services.PANEL_ACTIONS.items():
        if engagement.state == state:
            latest = services.latest_submission(engagement, kind)
            if latest is not None and latest.panel is None:
                return latest
    return None


def _engagement_panels(engagement: Engagement) -> list[ReviewPanel]:
    return db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.engagement_id == engagement.id)
                              .order_by(ReviewPanel.kind, ReviewPanel.round)).scalars().all()


@bp.route("/engagements/<int:engagement_id>/panel", methods=["GET", "POST"])
def panel_new(engagement_id: int):
    engagement = load(Engagement, engagement_id, "review.manage")
    pending = _pending_submission(engagement)
    form = PanelForm()

    def draw():
        raw = (form.size.data or "").strip()
        size = None
        if raw:
            try:
                size = int(raw)
            except ValueError:
                raise ValidationFailed("评审专家人数必须是整数。", {"size": "人数必须是整数"})
        return services.form_panel(engagement, current_user, size=size, offline=bool(form.offline.data))

    return handle_form(form, draw, message=lambda record: f"已公告评审专家抽取 #{record.id}（候选名单与承诺值已固定）："
                       "请指定监督人，待监督人输入数字后揭晓，评审组随即成立并发出邀请。",
                       to=lambda record: url_for("core.draw_detail", draw_id=record.id),
                       failed=lambda status: (render_template(
                           "review/panel_new.html", e=engagement, pending=pending, form=form,
                           panels=_engagement_panels(engagement),
                           # what the panel drawn now will be held to (its 委托事项's, else the general)
                           standard=services.standard_for(engagement.bureau, pending.kind, engagement.service_kind)
                           if pending is not None else None), status))


def _manageable_panel(panel_id: int) -> ReviewPanel:
    panel = db.get_or_404(ReviewPanel, panel_id)
    if not permissions.can(current_user, "review.manage", panel.subject):
        abort(403)
    return panel


def _render_panel(panel: ReviewPanel, status: int = 200, letter_form: LetterForm | None = None,
                  reopen_form: ReopenForm | None = None, offline_form: OfflineAnswerForm | None = None,
                  offline_target: int | None = None, withdraw_form: WithdrawForm | None = None,
                  withdraw_target: int | None = None):
    engagement = panel.subject  # the engagement, or a budget unit's self-evaluation
    reviews = {r.invitation_id: r for r in services.visible_reviews(panel, current_user)}
    can_manage = permissions.can(current_user, "review.manage", engagement)
    draw_ids = [panel.draw_id] + sorted({i.draw_id for i in panel.invitations if i.draw_id != panel.draw_id})
    draws = [db.session.get(Draw, d) for d in draw_ids]
    if letter_form is None:
        letter_form = LetterForm(data={"letter": panel.letter or ""})
    return render_template(
        "review/panel_detail.html", panel=panel, e=engagement, reviews=reviews, can_manage=can_manage,
        draws=[d for d in draws if d is not None and permissions.can(current_user, "draw.view", d)],
        letter_form=letter_form, reopen_form=reopen_form or ReopenForm(), ReviewStatus=ReviewStatus,
        PanelStatus=PanelStatus, InvitationStatus=InvitationStatus,
        can_send=can_manage and panel.status == PanelStatus.DECIDED and panel.passed is False,
        can_enter=can_manage and panel.offline and panel.status == PanelStatus.REVIEWING,
        offline_form=offline_form or OfflineAnswerForm(formdata=None), offline_target=offline_target,
        withdraw_form=withdraw_form or WithdrawForm(formdata=None), withdraw_target=withdraw_target,
        can_withdraw=can_manage and panel.status == PanelStatus.REVIEWING,
        can_reopen=can_manage and panel.decided_at is None), status


@bp.route("/reviews/panels/<int:panel_id>")
def panel_detail(panel_id: int):
    # The panel with each member's invitation, expert and review (scores too): a statement per kind, not three
    # per member.
    panel = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.id == panel_id).options(
        selectinload(ReviewPanel.invitations).options(
            joinedload(PanelInvitation.expert), joinedload(PanelInvitation.recorded_by),
            joinedload(PanelInvitation.review).selectinload(Review.scores)))).scalar_one_or_none()
    if panel is None:
        abort(404)
    if not bureau_side() or not services.may_view_subject(current_user, panel):
        abort(403)
    return _render_panel(panel)


@bp.route("/reviews/panels/<int:panel_id>/letter", methods=["POST"])
def panel_letter(panel_id: int):
    panel = _manageable_panel(panel_id)
    form = LetterForm()
    return handle_form(form, lambda: services.send_letter(panel, current_user, form.letter.data or ""),
                       message=f"整改意见已发送，{panel.kind.label}已退回 "
                               f"{panel.engagement.firm.name if panel.engagement_id else panel.subject.budget_unit.name} 整改。",
                       to=url_for(".panel_detail", panel_id=panel.id),
                       failed=lambda status: _render_panel(panel, status, letter_form=form))


@bp.route("/reviews/<int:review_id>/reopen", methods=["POST"])
def review_reopen(review_id: int):
    review = db.get_or_404(Review, review_id)
    panel = _manageable_panel(review.invitation.panel_id)
    form = ReopenForm()

    def refused(status: int):
        form.review_id.data = str(review.id)  # the page opens this review's form again
        return _render_panel(panel, status, reopen_form=form)

    return handle_form(form, lambda: services.reopen_review(review, current_user, form.reason.data or ""),
                       message="已退回该评审意见，专家可修改后重新提交。", to=url_for(".panel_detail", panel_id=panel.id),
                       failed=refused)


# --- the bureau: result, rating, publication --------------------------------------------------------

RESULT_FORMS = ("cap_add", "cap_lift", "rating", "deduction", "publish", "classify")


def _result_forms(engagement: Engagement, result: Optional[EvaluationResult], posted: Optional[str]) -> dict:
    rubric = _current_rubric(engagement.bureau, RubricKind.COMMISSIONER)

    def make(name: str, factory: Callable[..., FlaskForm], **defaults) -> FlaskForm:
        return factory() if posted == name else factory(formdata=None, **defaults)

    return {
        "cap_add": make("cap_add", CapForm),
        "cap_lift": make("cap_lift", LiftCapForm),
        "rating": make("rating", lambda **kw: rating_form_for(rubric, **kw)),
        "deduction": make("deduction", DeductionForm),
        "publish": make("publish", PublishForm),
        "classify": make("classify", ClassifyForm),
        "rubric": rubric,
    }


def _render_result(engagement: Engagement, forms: dict, status: int = 200):
    result = db.session.execute(sa.select(EvaluationResult).where(
        EvaluationResult.engagement_id == engagement.id)).scalar_one_or_none()
    rating = db.session.execute(sa.select(CommissionerRating).where(
        CommissionerRating.engagement_id == engagement.id)).scalar_one_or_none()
    rating_rubric = db.session.get(Rubric, rating.rubric_id) if rating else None
    publication = db.session.execute(sa.select(Publication).where(
        Publication.engagement_id == engagement.id)).scalar_one_or_none()
    can_manage = permissions.can(current_user, "review.manage", engagement)
    is_admin = can_manage and current_user.role in (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN)
    exhausted = services.rounds_exhausted(engagement) if engagement.state == S.REPORT_RETURNED else None
    report = services.latest_submission(engagement, SubmissionKind.REPORT)
    # What stops publication besides the file the form uploads (e.g. an open inspection), from the state machine.
    publish_blocked = workflow.unmet(engagement, "publish", skip=("redacted_file",), reader=current_user) \
        if engagement.state == S.ACCEPTED and can_manage else []
    grade_blocked = any(u.requirement == "grade_within_conclusion" for u in publish_blocked)
    return render_template(
        "review/result.html", e=engagement, result=result, rating=rating, rating_rubric=rating_rubric,
        publish_blocked=publish_blocked, grade_blocked=grade_blocked,
        publication=publication, forms=forms, can_manage=can_manage, is_admin=is_admin, exhausted=exhausted,
        report=report, CAPS=services.CAPS, S=S, panels=_engagement_panels(engagement),
        caps_frozen=services.caps_frozen(engagement),
        may_change_caps=can_manage and (not services.caps_frozen(engagement) or current_user.role == Role.BUREAU_ADMIN),
        rated=rating is not None, can_rate=can_manage and rating is None and engagement.state in (S.ACCEPTED, S.PUBLISHED, S.ARCHIVED),
    ), status


@bp.route("/engagements/<int:engagement_id>/result", methods=["GET", "POST"])
def result(engagement_id: int):
    engagement = load(Engagement, engagement_id, "engagement.view")
    if not bureau_side():
        abort(403)
    existing = db.session.execute(sa.select(EvaluationResult).where(
        EvaluationResult.engagement_id == engagement.id)).scalar_one_or_none()
    if request.method == "GET":
        return _render_result(engagement, _result_forms(engagement, existing, None))
    if not permissions.can(current_user, "review.manage", engagement):
        abort(403)
    which = request.form.get("form", "")
    if which not in RESULT_FORMS:
        abort(400)
    forms = _result_forms(engagement, existing, which)
    form = forms[which]
    if which == "cap_add":
        upload = form.file.data
        call = lambda: services.add_cap(  # noqa: E731
            engagement, current_user, form.code.data or "", form.reason.data, link=form.link.data,
            filename=getattr(upload, "filename", None), data=upload.read() if upload else None)
        done_message = "已记录等级限制及其依据，最终等级已按限制重新确定。"
    elif which == "cap_lift":
        cap = _cap_of(engagement, form.cap_id.data)
        call = lambda: services.lift_cap(cap, current_user, form.reason.data)  # noqa: E731
        done_message = "已撤销该等级限制，最终等级已重新确定。"
    elif which == "rating":
        rubric = forms["rubric"]
        call = lambda: services.rate_firm(engagement, current_user,  # noqa: E731
                                          {i.id: getattr(form, f"score_{i.id}").data for i in rubric.items},
                                          form.comment.data)
        done_message = f"已完成对 {engagement.firm.name} 的委托方评价。"
    elif which == "deduction":
        call = lambda: services.accept_with_deduction(engagement, current_user, form.deduction.data,  # noqa: E731
                                                      form.reason.data)
        done_message = "报告已扣分验收。"
    elif which == "publish":
        call = lambda: services.publish(engagement, current_user, filename=form.file.data.filename,  # noqa: E731
                                        data=form.file.data.read(), override=form.override.data)
        done_message = "已公开脱密后的评价报告。"
    else:
        call = lambda: services.publish(engagement, current_user, classified=True,  # noqa: E731
                                        reason=form.reason.data, override=form.override.data)
        done_message = "已标记为不予公开并归档。"
    return handle_form(form, call, message=done_message, to=url_for(".result", engagement_id=engagement.id),
                       failed=lambda status: _render_result(engagement, forms, status))


def _cap_of(engagement: Engagement, raw: Any) -> ResultCap:
    cap_id = as_int(str(raw or ""))  # an id past any column's range names no cap (a 404, not a 500)
    cap = db.session.get(ResultCap, cap_id) if cap_id is not None else None
    if cap is None or cap.result.engagement_id != engagement.id:
        abort(404)
    return cap


@bp.route("/engagements/<int:engagement_id>/publication/upload")
def publication_upload(engagement_id: int):
    """The redacted report as the bureau uploaded it, document properties and all (the public downloads the
    copy without them): bureau side, engagements the user may see."""
    engagement = load(Engagement, engagement_id, "engagement.view")
    if not bureau_side():
        abort(403)
    publication = db.session.execute(sa.select(Publication).where(
        Publication.engagement_id == engagement.id)).scalar_one_or_none()
    return send_stored(publication.uploaded_file if publication else None)


@bp.route("/engagements/<int:engagement_id>/caps/<int:cap_id>/evidence")
def cap_evidence(engagement_id: int, cap_id: int):
    """The document a cap was recorded with: bureau side, engagements the user may see."""
    engagement = load(Engagement, engagement_id, "engagement.view")
    if not bureau_side():
        abort(403)
    cap = _cap_of(engagement, cap_id)
    if cap.evidence_file is None:
        abort(404)
    return send_stored(cap.evidence_file)


# --- the bureau: rubrics ---------------------------------------------------------------------------

def _rubric_kind(kind: str) -> RubricKind:
    try:
        return RubricKind(kind)
    except ValueError:
        abort(404)


@bp.route("/bureaus/<int:bureau_id>/rubrics/<kind>", methods=["GET", "POST"])
@bp.route("/bureaus/<int:bureau_id>/rubrics/<kind>/<service_kind>", methods=["GET", "POST"])
def rubric_edit(bureau_id: int, kind: str, service_kind: str | None = None):
    """A bureau's rubric of one kind: the general one, or (work plans, reports) one 委托事项's own."""
    bureau = load(Bureau, bureau_id, "bureau.view")
    rubric_kind = _rubric_kind(kind)
    try:
        for_kind = services.rubric_service_kind(rubric_kind, service_kind)
    except ValidationFailed:
        abort(404)
    current = _current_rubric(bureau, rubric_kind, for_kind)
    can_edit = permissions.can(current_user, "rubric.edit", bureau)
    here = url_for(".rubric_edit", bureau_id=bureau.id, kind=rubric_kind.value,
                   **({"service_kind": for_kind.value} if for_kind else {}))
    status = 200
    if request.method == "POST":
        if not can_edit:
            abort(403)
        form = RubricForm()
        done, rubric, status = submit_form(form, lambda: services.revise_rubric(
            bureau, rubric_kind, [(r.form.name.data, r.form.description.data, r.form.max_points.data) for r in form.items],
            current_user, title=form.title.data or None, service_kind=for_kind))
        if done:
            flash(f"已保存{services.rubric_label(rubric_kind, for_kind)}第 {rubric.version} 版；此后组建的评审组使用新版本。",
                  "success")
            return redirect(here)
    else:
        # a kind with no rubric of its own yet starts from the one in force (the general one), titled for the kind
        rows = [{"name": i.name, "description": i.description, "max_points": points_text(i.max_points)} for i in current.items]
        rows += [{}] * max(0, RUBRIC_ROWS - len(rows), 2 if len(rows) >= RUBRIC_ROWS else 0)
        title = current.title if current.service_kind == for_kind else services.default_title(rubric_kind, for_kind)
        form = RubricForm(data={"title": title, "items": rows})
    same_kind = Rubric.service_kind.is_(None) if for_kind is None else Rubric.service_kind == for_kind
    history = db.session.execute(sa.select(Rubric).where(Rubric.bureau_id == bureau.id, Rubric.kind == rubric_kind, same_kind)
                                 .options(selectinload(Rubric.items)).order_by(Rubric.version.desc())).scalars().all()
    submission_kind = next((k for k, r in services.RUBRIC_OF.items() if r == rubric_kind), None)
    pass_mark = services.pass_mark_for(bureau, submission_kind, for_kind) if submission_kind else None
    return render_template("review/rubric_edit.html", bureau=bureau, kind=rubric_kind, current=current, form=form,
                           history=history, can_edit=can_edit, RubricKind=RubricKind, service_kind=for_kind,
                           ServiceKind=ServiceKind, by_service_kind=rubric_kind in services.BY_SERVICE_KIND,
                           pass_mark=pass_mark, can_settings=permissions.can(current_user, "bureau.settings", bureau)), status


# --- the bureau: panel list and exports -----------------------------------------------------------

EXPORT_FIXED = ["任务编号", "评价对象", "承担机构", "评审类型", "版本", "轮次", "评审专家", "邀请状态", "评审状态"]
EXPORT_TAIL = ["专家合计", "评审组得分（均值）", "极差", "分歧提示", "通过线", "评审结果"]


def _outcome_label(panel: ReviewPanel) -> str:
    if panel.passed is None:
        return panel.status.label
    if panel.passed:
        return "通过"
    return "退回整改" if panel.letter_sent_at else "未通过（待发送整改意见）"


def _export_rows(panels: list[ReviewPanel]) -> tuple[list[dict], list[str]]:
    item_columns: list[str] = []
    rows: list[dict] = []
    for panel in panels:
        items = panel.rubric.items
        for item in items:
            column = f"{item.name}（{points_text(item.max_points)}）"
            if column not in item_columns:
                item_columns.append(column)
        base = {"任务编号": panel.subject.reference, "评价对象": panel.subject.name, "承担机构": panel.author_name,
                "评审类型": panel.kind.label, "版本": panel.submission.version, "轮次": panel.round,
                "评审组得分（均值）": float(panel.score) if panel.score is not None else None,
                "极差": float(panel.spread) if panel.spread is not None else None,
                "分歧提示": "是" if panel.spread_flagged else "",
                "通过线": float(panel.pass_mark) if panel.pass_mark is not None else None,
                "评审结果": _outcome_label(panel)}
        reviews = {r.invitation_id: r for r in services.visible_reviews(panel, current_user)}
        seats = [i for i in panel.invitations if i.id in reviews or i.status != InvitationStatus.ACCEPTED]
        if not seats:
            rows.append(dict(base))
        for invitation in seats:
            review = reviews.get(invitation.id)
            row = dict(base, **{"评审专家": invitation.expert.name, "邀请状态": invitation.status.label,
                                "评审状态": review.status.label if review else ""})
            if review is not None:
                by_item = {s.rubric_item_id: s.points for s in review.scores if s.points is not None}
                for item in items:
                    if item.id in by_item:
                        row[f"{item.name}（{points_text(item.max_points)}）"] = float(by_item[item.id])
                row["专家合计"] = float(review.total) if review.total is not None else None
            rows.append(row)
    return rows, EXPORT_FIXED + item_columns + EXPORT_TAIL


def _panels_stmt():
    """Panels whose subject the user sees (``services.scoped_panels``: an engagement's or a self-evaluation's),
    with the subject's table beside each for the year and the order."""
    return services.scoped_panels(current_user) \
        .outerjoin(Engagement, Engagement.id == ReviewPanel.engagement_id) \
        .outerjoin(SelfEvaluation, SelfEvaluation.id == ReviewPanel.self_evaluation_id)


PANEL_FILTERS = (year_filter(sa.func.coalesce(Engagement.year, SelfEvaluation.year)),
                 Filter("kind", SubmissionKind, lambda stmt, kind: stmt.where(ReviewPanel.kind == kind)),
                 Filter("status", PanelStatus, lambda stmt, status: stmt.where(ReviewPanel.status == status)),
                 # the dashboard's 逾期未完成的专家评审: the same rule, so its count is this list's
                 choice_filter("overdue", {"1": services.overdue_clause()}))


@bp.route("/reviews/export")
def review_export():
    if not bureau_side():
        abort(403)
    # the list page's own filters: the sheet holds the panels the list shows (all its pages), no more
    panels = Listing(_panels_stmt(), *PANEL_FILTERS,
                     order_by=[Engagement.reference, SelfEvaluation.id, ReviewPanel.kind, ReviewPanel.round])
    rows, columns = _export_rows(panels.all())
    return xlsx_response(to_xlsx(rows, "专家评审", columns=columns), f"专家评审{panels['year'] or ''}.xlsx")


@bp.route("/engagements/<int:engagement_id>/reviews.xlsx")
def engagement_reviews_export(engagement_id: int):
    engagement = load(Engagement, engagement_id, "engagement.view")
    if not bureau_side():
        abort(403)
    rows, columns = _export_rows(_engagement_panels(engagement))
    return xlsx_response(to_xlsx(rows, "专家评审", columns=columns), f"{engagement.reference}专家评审.xlsx")


# --- experts: workspace, invitations, reviews ------------------------------------------------------

@bp.route("/reviews")
def workspace():
    if current_user.role == Role.EXPERT:
        invitations = db.session.execute(
            sa.select(PanelInvitation).where(PanelInvitation.expert_id == current_user.expert_id)
            .options(selectinload(PanelInvitation.review), selectinload(PanelInvitation.panel).options(
                selectinload(ReviewPanel.engagement), selectinload(ReviewPanel.self_evaluation),
                selectinload(ReviewPanel.submission)))  # what each row names: a statement per kind, not per row
            .order_by(PanelInvitation.id.desc())).scalars().all()
        return render_template("review/workspace.html", invitations=invitations, now=utcnow(),
                               tasks=_tasks_pending_first(invitations),
                               InvitationStatus=InvitationStatus, ReviewStatus=ReviewStatus)
    if not bureau_side():
        abort(403)
    panels = Listing(_panels_stmt, *PANEL_FILTERS, order_by=[ReviewPanel.id.desc()], options=[
        selectinload(ReviewPanel.engagement).selectinload(Engagement.firm), selectinload(ReviewPanel.submission),
        selectinload(ReviewPanel.self_evaluation).selectinload(SelfEvaluation.budget_unit)],
        keep="review.panels")
    return render_template("review/panel_list.html", page=panels.page(), filters=panels.filters,
                           SubmissionKind=SubmissionKind, PanelStatus=PanelStatus)


def _tasks_pending_first(invitations: list[PanelInvitation]) -> list[PanelInvitation]:
    """The expert's accepted reviews: those still to fill in (draft, panel reviewing) first, the nearest
    deadline on top; then the finished ones, newest first."""
    seated = [i for i in invitations if i.review is not None and i.status == InvitationStatus.ACCEPTED]

    def pending(i: PanelInvitation) -> bool:
        return i.review.status == ReviewStatus.DRAFT and i.panel.status == PanelStatus.REVIEWING

    todo = sorted((i for i in seated if pending(i)), key=lambda i: (i.panel.review_due, i.id))
    return todo + [i for i in seated if not pending(i)]


@bp.app_template_global("review_pending_tasks")
def _review_pending_tasks() -> dict:
    """For an expert's home page (templates/review/_expert_tasks.html): invitations to answer and reviews to
    fill in, nearest deadline first. Empty for everyone but a signed-in expert."""
    if not getattr(current_user, "is_authenticated", False) or current_user.role != Role.EXPERT:
        return {"invited": [], "todo": []}
    invitations = db.session.execute(
        sa.select(PanelInvitation).join(ReviewPanel, ReviewPanel.id == PanelInvitation.panel_id)
        .where(PanelInvitation.expert_id == current_user.expert_id, ReviewPanel.status == PanelStatus.REVIEWING,
               PanelInvitation.status.in_([InvitationStatus.INVITED, InvitationStatus.ACCEPTED]))
        .options(selectinload(PanelInvitation.review), selectinload(PanelInvitation.panel))).scalars().all()
    invited = sorted((i for i in invitations if i.status == InvitationStatus.INVITED), key=lambda i: (i.respond_by, i.id))
    todo = [i for i in _tasks_pending_first(invitations) if i.review.status == ReviewStatus.DRAFT]
    return {"invited": invited, "todo": todo}


def _own_invitation(invitation_id: int) -> PanelInvitation:
    invitation = db.get_or_404(PanelInvitation, invitation_id)
    if current_user.role != Role.EXPERT or current_user.expert_id != invitation.expert_id:
        abort(403)
    return invitation


@bp.route("/reviews/invitations/<int:invitation_id>", methods=["GET", "POST"])
def invitation(invitation_id: int):
    inv = _own_invitation(invitation_id)
    accept_form, decline_form = AcceptForm(), DeclineForm()
    status = 200
    if request.method == "POST":
        if request.form.get("action") == "accept":
            done, _, status = submit_form(accept_form, lambda: services.respond(
                inv, current_user, accept=True, declaration_signed=bool(accept_form.declaration.data)))
            if done:
                flash("已接受邀请并签署无利益冲突声明，请在截止时间前完成评审。", "success")
                return redirect(url_for(".review_form", review_id=inv.review.id))
        elif request.form.get("action") == "decline":
            done, _, status = submit_form(decline_form, lambda: services.respond(
                inv, current_user, accept=False, reason=decline_form.reason.data))
            if done:
                flash("已拒绝邀请，财政局将另行抽取专家。", "success")
                return redirect(url_for(".workspace"))
        else:
            abort(400)
    return render_template("review/invitation.html", inv=inv, panel=inv.panel, e=inv.panel.subject,
                           accept_form=accept_form, decline_form=decline_form, declaration=services.DECLARATION,
                           InvitationStatus=InvitationStatus, PanelStatus=PanelStatus), status


def _own_review(review_id: int) -> Review:
    """The expert's own review — or, on an offline panel (线下评审), one the bureau enters for the expert."""
    review = db.get_or_404(Review, review_id)
    if not services.reads_own_review(review, current_user):
        abort(403)
    return review


def _managed_invitation(invitation_id: int) -> tuple[PanelInvitation, ReviewPanel]:
    """An invitation on a panel the user manages (404 / 403 otherwise), with its panel."""
    inv = db.get_or_404(PanelInvitation, invitation_id)
    return inv, _manageable_panel(inv.panel_id)


@bp.route("/reviews/invitations/<int:invitation_id>/offline", methods=["POST"])
def invitation_offline(invitation_id: int):
    """线下评审: bureau staff record the answer the expert gave off-line (and the paper declaration)."""
    inv, panel = _managed_invitation(invitation_id)
    form = OfflineAnswerForm()
    actions = request.form.getlist("action")
    if "accept" in actions:
        accept = True
    elif "decline" in actions:
        accept = False
    else:
        abort(400)
    return handle_form(form, lambda: services.respond_offline(
        inv, current_user, accept=accept, declaration_received=bool(form.declaration.data), reason=form.reason.data),
        message=(f"已登记：{inv.expert.name} 接受邀请，纸质无利益冲突声明已收到。" if accept
                 else f"已登记：{inv.expert.name} 拒绝邀请，已公告补抽，请在抽取页面指定监督人并揭晓。"),
        to=url_for(".panel_detail", panel_id=panel.id),
        failed=lambda status: _render_panel(panel, status, offline_form=form, offline_target=inv.id))


@bp.route("/reviews/invitations/<int:invitation_id>/withdraw", methods=["POST"])
def invitation_withdraw(invitation_id: int):
    """The bureau withdraws a pending invitation with a reason; the replacement is drawn from the same pool."""
    inv, panel = _managed_invitation(invitation_id)
    form = WithdrawForm()
    return handle_form(form, lambda: services.withdraw_invitation(inv, current_user, form.reason.data or ""),
                       message=lambda new: f"已撤回 {inv.expert.name} 的邀请；" + (
                           f"已公告从原抽取名单补抽（抽取 #{new.id}），请指定监督人并揭晓。" if new else "补抽已在等待揭晓的抽取中。"),
                       to=url_for(".panel_detail", panel_id=panel.id),
                       failed=lambda status: _render_panel(panel, status, withdraw_form=form, withdraw_target=inv.id))


def _review_form_data(review: Review) -> dict:
    data: dict[str, Any] = {"opinion": review.opinion or ""}
    for s in review.scores:
        data[f"score_{s.rubric_item_id}"] = points_text(s.points) if s.points is not None else ""
        data[f"comment_{s.rubric_item_id}"] = s.comment
    return data


@bp.route("/reviews/<int:review_id>", methods=["GET", "POST"])
def review_form(review_id: int):
    review = _own_review(review_id)
    panel = review.invitation.panel
    rubric = review.rubric
    status = 200
    if request.method == "POST":
        form = review_form_for(rubric)
        # The form's own hidden ``action`` field (rendered by hidden_tag) comes before the pressed button in
        # the posted data, so read every value rather than the first.
        submitting = "submit" in request.form.getlist("action")

        def save():
            posted = dict(scores={i.id: getattr(form, f"score_{i.id}").data for i in rubric.items},
                          comments={i.id: getattr(form, f"comment_{i.id}").data for i in rubric.items},
                          opinion=form.opinion.data)
            try:
                services.save_review(review, current_user, **posted)
            except services.AlreadySubmitted:
                db.session.rollback()
                # The same form submitted again (a double click, a resent request): it went in with the first
                # press, nothing more happens. Anything else after the submit is a change: 409.
                if submitting and services.matches_submitted(review, **posted):
                    return "already submitted"
                raise
            if submitting:
                services.submit_review(review, current_user)

        done, outcome, status = submit_form(form, save)
        if done and outcome == "already submitted":
            flash("评审意见此前已经提交，本次未重复提交，内容保持提交时的样子。", "info")
            return redirect(url_for(".review_form", review_id=review.id))
        if done:
            if submitting:
                decided = panel.decided_at is not None
                flash("评审意见已提交。" + ("全部专家已提交，评审结果已产生。" if decided else ""), "success")
            else:
                flash("草稿已保存。", "success")
            return redirect(url_for(".review_form", review_id=review.id))
    else:
        form = review_form_for(rubric, formdata=None, data=_review_form_data(review))
    submission = panel.submission
    earlier = [s for s in services.submissions(panel.subject, submission.kind) if s.version < submission.version]
    labels = {i.id: f"专家 {n}" for n, i in enumerate(panel.invitations, start=1)}
    others = [r for r in services.visible_reviews(panel, current_user)
              if r.id != review.id and r.status == ReviewStatus.SUBMITTED]
    return render_template(
        "review/review_form.html", review=review, panel=panel, e=panel.subject, rubric=rubric, form=form,
        submission=submission, earlier=earlier, letter_panel=_sent_letter_before(submission), others=others,
        labels=labels, editable=review.status == ReviewStatus.DRAFT and panel.status == PanelStatus.REVIEWING
        and review.invitation.status == InvitationStatus.ACCEPTED,
        saved_total=sum((s.points for s in review.scores if s.points is not None), Decimal("0")),
        on_behalf=review.invitation.expert if current_user.role != Role.EXPERT else None,
        ReviewStatus=ReviewStatus, **{"screening": None, **services.expert_context_for(submission)}), status


# --- everyone: the inbox ---------------------------------------------------------------------------

@bp.route("/inbox")
def inbox():
    stmt = (sa.select(Notification).where(Notification.user_id == current_user.id)
            .order_by(Notification.created_at.desc(), Notification.id.desc()))
    return render_template("review/inbox.html", page=paginate(stmt), form=ConfirmForm())


def _safe_link(link: Optional[str]) -> Optional[str]:
    if link and link.startswith("/") and not link.startswith("//") and "\\" not in link:
        return link
    return None


@bp.route("/inbox/<int:note_id>/read", methods=["POST"])
def inbox_read(note_id: int):
    note = db.get_or_404(Notification, note_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    notifications.mark_read(note, current_user)
    db.session.commit()
    target = _safe_link(note.link) if request.form.get("open") else None
    return redirect(target or url_for(".inbox", page=request.args.get("page", 1, type=int)))


@bp.route("/inbox/read-all", methods=["POST"])
def inbox_read_all():
    if not ConfirmForm().validate_on_submit():
        abort(400)
    notifications.mark_all_read(current_user)
    db.session.commit()
    flash("已全部标为已读。", "success")
    return redirect(url_for(".inbox"))


# Template helpers used by several review pages.


# Experts rated after each panel (issue 14): the pages live beside their rule in review.ratings.
from evalhub.review import ratings as _ratings  # noqa: E402

_ratings.register_routes(bp)
