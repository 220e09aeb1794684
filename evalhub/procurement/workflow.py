"""The engagement state machine: ONE table of every state change, who may trigger it, what it needs.

Every module changes an engagement's state only through ``perform``. Each transition writes one
timeline row and one audit event; anything the table does not allow is a Conflict (HTTP 409).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Iterable, Optional

import sqlalchemy as sa

from evalhub.core import audit
from evalhub.core.calendar import add_days
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import Bureau, User
from evalhub.core.steps import Step
from evalhub.core.timeutil import beijing_date, beijing_today, to_beijing, utcnow
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, EngagementState as S, EngagementTransition, Procurement, ResultNotice

# Who may trigger a transition.
BUREAU = "bureau"              # staff or admin of the engagement's own bureau
BUREAU_ADMIN = "bureau_admin"  # an admin of the engagement's own bureau
FIRM = "firm"                  # a user of the contracted firm


@dataclass(frozen=True)
class Transition(Step[S]):
    actor: str
    requires: tuple[str, ...] = ()
    needs_note: bool = False
    # Requirements (among ``requires``) that an admin of the engagement's bureau may waive, with a reason
    # that goes into the timeline and the audit event. Everything else is never waived.
    waivable: tuple[str, ...] = ()


_ACTIVE = (S.CONTRACTED, S.PLAN_SUBMITTED, S.PLAN_IN_REVIEW, S.PLAN_RETURNED, S.FIELDWORK,
           S.REPORT_SUBMITTED, S.REPORT_IN_REVIEW, S.REPORT_RETURNED)

# What each step needs (``requires``) is named here; procurement's own are defined below, the others are
# registered by the module that knows the fact: review (submissions, panels, outcomes, results, the
# redacted file), supervision (open inspections). A step the table names but nobody registered is refused.
TRANSITIONS: dict[str, Transition] = {t.action: t for t in [
    Transition("start_procurement", "启动采购", (S.PLANNED,), S.PROCURING, BUREAU, requires=("procurement_open",)),
    Transition("fail_procurement", "采购失败（流标）", (S.PROCURING,), S.FAILED_PROCUREMENT, BUREAU, needs_note=True,
               requires=("procurement_failed",)),
    Transition("rerun_procurement", "重新采购", (S.FAILED_PROCUREMENT,), S.PROCURING, BUREAU, needs_note=True,
               requires=("procurement_open",)),
    Transition("sign_contract", "签订合同", (S.PROCURING,), S.CONTRACTED, BUREAU, requires=("contract",)),
    Transition("submit_plan", "提交实施方案", (S.CONTRACTED,), S.PLAN_SUBMITTED, FIRM,
               requires=("firm", "plan_uploaded")),
    Transition("start_plan_review", "组织方案评审", (S.PLAN_SUBMITTED,), S.PLAN_IN_REVIEW, BUREAU,
               requires=("plan_panel_drawn",)),
    Transition("return_plan", "退回实施方案", (S.PLAN_IN_REVIEW,), S.PLAN_RETURNED, BUREAU, needs_note=True,
               requires=("plan_failed",)),
    Transition("resubmit_plan", "重新提交实施方案", (S.PLAN_RETURNED,), S.PLAN_SUBMITTED, FIRM,
               requires=("firm", "plan_uploaded")),
    Transition("approve_plan", "方案评审通过", (S.PLAN_IN_REVIEW,), S.FIELDWORK, BUREAU, requires=("plan_passed",)),
    Transition("submit_report", "提交评价报告", (S.FIELDWORK,), S.REPORT_SUBMITTED, FIRM,
               requires=("firm", "lead_named", "report_uploaded")),
    Transition("start_report_review", "组织报告评审", (S.REPORT_SUBMITTED,), S.REPORT_IN_REVIEW, BUREAU,
               requires=("report_panel_drawn",)),
    Transition("return_report", "退回整改", (S.REPORT_IN_REVIEW,), S.REPORT_RETURNED, BUREAU, needs_note=True,
               requires=("report_failed",)),
    Transition("resubmit_report", "提交整改后报告", (S.REPORT_RETURNED,), S.REPORT_SUBMITTED, FIRM,
               requires=("firm", "lead_named", "rounds_left", "report_uploaded")),
    Transition("accept_report", "报告验收通过", (S.REPORT_IN_REVIEW,), S.ACCEPTED, BUREAU, requires=("report_passed",)),
    Transition("accept_with_deduction", "扣分后验收", (S.REPORT_RETURNED,), S.ACCEPTED, BUREAU_ADMIN, needs_note=True,
               requires=("rounds_used_up", "deduction_recorded")),
    Transition("publish", "公开报告", (S.ACCEPTED,), S.PUBLISHED, BUREAU,
               requires=("redacted_file", "no_open_inspection", "grade_within_conclusion"),
               waivable=("no_open_inspection", "grade_within_conclusion")),
    Transition("withhold", "不予公开并归档", (S.ACCEPTED,), S.ARCHIVED, BUREAU_ADMIN, needs_note=True,
               requires=("classified_publication", "grade_within_conclusion"), waivable=("grade_within_conclusion",)),
    Transition("archive", "归档", (S.PUBLISHED,), S.ARCHIVED, BUREAU),
    Transition("cancel", "终止", (S.PLANNED, S.PROCURING, S.FAILED_PROCUREMENT) + _ACTIVE, S.CANCELLED, BUREAU_ADMIN,
               needs_note=True),
]}


def _has_contract(e: Engagement) -> Optional[str]:
    return None if e.contract is not None else "尚未签订合同"


def _has_firm(e: Engagement) -> Optional[str]:
    return None if e.firm_id is not None else "尚未确定承担机构"


# "采购中" means a procurement round is under way, "采购失败" that the round failed: the procurement service opens
# or fails the round, then takes the step, so the engagement never shows a state its procurement does not have.
def _procurement_open(e: Engagement) -> Optional[str]:
    from evalhub.procurement.models import ProcurementStatus

    p = e.current_procurement
    if p is None or p.status in (ProcurementStatus.FAILED, ProcurementStatus.CANCELLED):
        return "尚未发起采购（请在“发起采购”页面选择采购方式并发布）"
    return None


def _procurement_failed(e: Engagement) -> Optional[str]:
    from evalhub.procurement.models import ProcurementStatus

    p = e.current_procurement
    if p is None or p.status != ProcurementStatus.FAILED:
        return "本轮采购未流标（流标由开标时有效投标不足、或撤销成交结果后的重新采购认定）"
    return None


# A requirement answers "why not" (a sentence) or None. The table above names them; procurement's own are
# here, the rest are registered by the module that knows the fact (review: submissions, panels, outcomes,
# results, rounds left, the redacted file; supervision: open inspections), so the table stays the one place
# that says what each step needs, and no path (web, API, CLI, jobs, the demo) can step around it.
Requirement = Callable[..., "Optional[str | Problem]"]
REQUIREMENTS: dict[str, Requirement] = {
    "contract": _has_contract,
    "firm": _has_firm,
    "procurement_open": _procurement_open,
    "procurement_failed": _procurement_failed,
}
# Requirements whose answer depends on who asks (registered with ``reader=True``): called ``fn(engagement, reader)``,
# the reader being the actor of a step, or the person shown the step (None: the system, no person reads it).
_READS_READER: set[str] = set()


@dataclass(frozen=True)
class Problem:
    """A requirement's answer that the step's table alone cannot qualify: ``waivable`` False when the reader may not
    waive this instance of a waivable requirement (an upper bureau's open case is not the county's to set aside)."""
    text: str
    waivable: bool = True


def requirement(name: str, *, reader: bool = False) -> Callable[[Requirement], Requirement]:
    def register(fn: Requirement) -> Requirement:
        if name in REQUIREMENTS:
            raise RuntimeError(f"state-machine requirement {name!r} registered twice")
        REQUIREMENTS[name] = fn
        if reader:
            _READS_READER.add(name)
        return fn

    return register


# What a higher module does when a step is taken, in the same transaction (review closes a cancelled
# engagement's open panels): registered by the module that owns the rows, so the machine imports nothing above it.
AFTER_STEP: dict[str, list[Callable[[Engagement, User | None, str], None]]] = {}


def after_step(action: str) -> Callable:
    def register(fn: Callable[[Engagement, User | None, str], None]) -> Callable:
        AFTER_STEP.setdefault(action, []).append(fn)
        return fn

    return register


# When a returned plan or report is due again (UTC), set by the review module when it returns one. It is
# registered as a SQL expression correlated to ``Engagement`` (a scalar subquery, NULL when nothing was
# returned); ``refresh_due`` reads it on a return to store the engagement's ``due_on``.
_resubmission_due: list[Callable[[], sa.ColumnElement]] = []


def resubmission_deadline(fn: Callable[[], sa.ColumnElement]) -> Callable[[], sa.ColumnElement]:
    _resubmission_due.append(fn)
    return fn


def _resubmission_due_expr() -> sa.ColumnElement:
    exprs = [fn() for fn in _resubmission_due]
    if not exprs:
        return sa.null()
    return exprs[0] if len(exprs) == 1 else sa.func.coalesce(*exprs)


def actor_may(user: User | None, transition: Transition, engagement: Engagement) -> bool:
    if user is None:
        return False
    if user.role == Role.SYSTEM_ADMIN:
        return transition.actor != FIRM
    if transition.actor == FIRM:
        return user.role == Role.FIRM_USER and engagement.firm_id is not None and user.firm_id == engagement.firm_id
    own = user.role in (Role.BUREAU_ADMIN, Role.BUREAU_STAFF) and user.bureau_id == engagement.bureau_id
    if transition.actor == BUREAU_ADMIN:
        return own and user.role == Role.BUREAU_ADMIN
    return own


def available(engagement: Engagement, user: User | None) -> list[Transition]:
    return [t for t in TRANSITIONS.values() if engagement.state in t.sources and actor_may(user, t, engagement)]


@dataclass(frozen=True)
class Unmet:
    """A requirement of a step that the engagement does not meet now, with the sentence saying why."""
    requirement: str
    problem: str
    waivable: bool


def unmet(engagement: Engagement, action: str, *, skip: tuple[str, ...] = (), reader: User | None = None) -> list[Unmet]:
    """The requirements of ``action`` that ``engagement`` does not meet (those in ``skip`` not asked), as ``reader``
    may be told them (None: the system)."""
    transition = TRANSITIONS[action]
    out = []
    for name in transition.requires:
        if name in skip:
            continue
        check_fn = REQUIREMENTS.get(name)
        if check_fn is None:  # a wiring bug, never a user's mistake
            raise RuntimeError(f"state-machine requirement {name!r} is named in TRANSITIONS but nobody registered it")
        problem = check_fn(engagement, reader) if name in _READS_READER else check_fn(engagement)
        if isinstance(problem, Problem):
            out.append(Unmet(name, problem.text, name in transition.waivable and problem.waivable))
        elif problem:
            out.append(Unmet(name, problem, name in transition.waivable))
    return out


def may_waive(user: User | None, engagement: Engagement) -> bool:
    """An admin of the engagement's own bureau (or the system admin) may waive a waivable requirement — one the
    requirement itself does not mark unwaivable for them (``Problem.waivable``)."""
    if user is None:
        return False
    return user.role == Role.SYSTEM_ADMIN or (user.role == Role.BUREAU_ADMIN and user.bureau_id == engagement.bureau_id)


def check(engagement: Engagement, action: str, actor: User | None, *, note: str | None = None,
          system: bool = False, override: str | None = None, skip: tuple[str, ...] = ()) -> list[dict]:
    """Everything ``perform`` checks before it moves, in its order: the step exists, the state allows it,
    the actor may take it, the note is there, every requirement is met or (waivable, with ``override``
    as the reason, by an admin) waived. Raises the refusal; returns the waivers granted. A service calls it
    first when it must not store anything for a refused step (``skip``: what it is about to provide)."""
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise Conflict(f"未定义的操作“{action}”：状态机中没有这一步。")
    transition.refuse_unless_from(engagement.state, "评价任务")
    if not system and not actor_may(actor, transition, engagement):
        who = {BUREAU: "本级财政局工作人员", BUREAU_ADMIN: "本级财政局管理员", FIRM: "承担任务的第三方机构"}[transition.actor]
        raise PermissionDenied(f"“{transition.label}”只能由{who}执行。")
    if transition.needs_note and not (note or "").strip():
        raise ValidationFailed(f"“{transition.label}”必须填写说明。", {"note": "必填"})
    override = (override or "").strip()
    problems = unmet(engagement, action, skip=skip, reader=actor)
    blocking = [u for u in problems if not (u.waivable and override)]
    if blocking:
        # The hint follows the waivable items only: those no admin of this bureau may waive (a higher bureau's
        # hold) come first, unmarked, so nobody reads "豁免" beside them.
        fixed = [u.problem for u in blocking if not u.waivable]
        waivable = [u.problem for u in blocking if u.waivable]
        said = fixed + (["；".join(waivable) + "（本级财政局管理员可说明理由后豁免）"] if waivable else [])
        raise Conflict(f"不能执行“{transition.label}”：{'；'.join(said)}。")
    waived = [u for u in problems if u.waivable and override]
    if waived and not may_waive(actor, engagement):
        raise PermissionDenied(f"豁免“{transition.label}”的前提（{'；'.join(u.problem for u in waived)}）"
                               "只能由本级财政局管理员执行。")
    return [{"requirement": u.requirement, "problem": u.problem, "reason": override} for u in waived]


def perform(engagement: Engagement, action: str, actor: User | None, *, note: str | None = None,
            system: bool = False, override: str | None = None) -> EngagementTransition:
    """Move ``engagement`` by ``action``. ``system=True`` is for consequences computed by the system
    (e.g. the review outcome when the last expert submits); the role check is then skipped but the
    actor, if any, is still recorded, and every requirement still holds. ``override`` is an admin's
    reason for waiving the step's waivable requirements (e.g. publishing while an inspection is open);
    each waiver is written into the timeline note and the audit event."""
    waivers = check(engagement, action, actor, note=note, system=system, override=override)
    transition = TRANSITIONS[action]
    note = (note or "").strip()
    if waivers:
        note = (note + "；" if note else "") + "；".join(
            f"管理员豁免：{w['problem']}（理由：{w['reason']}）" for w in waivers)
    old = engagement.state
    if action == "cancel":
        # A cancelled engagement takes its unfinished procurement with it (out of the marketplace).
        from evalhub.procurement.models import ProcurementStatus

        for procurement in engagement.procurements:
            if procurement.status in (ProcurementStatus.OPEN, ProcurementStatus.EVALUATING,
                                      ProcurementStatus.PENDING_APPROVAL):
                procurement.status = ProcurementStatus.CANCELLED
                procurement.failure_reason = f"评价任务终止：{note}"
    # Claim the step: of two requests that read the engagement in the same state (a double click, two staff,
    # a job), one moves it and the other is refused here, and its transaction — with whatever the service
    # wrote before this step (a procurement, a letter) — rolls back.
    claimed = db.session.execute(
        sa.update(Engagement).where(Engagement.id == engagement.id, Engagement.state == old)
        .values(state=transition.target).execution_options(synchronize_session=False)).rowcount
    if not claimed:
        raise Conflict(f"评价任务已被他人变更（不再是“{old.label}”），“{transition.label}”未执行。请刷新页面后查看。")
    engagement.state = transition.target
    engagement.state_changed_at = utcnow()
    refresh_due(engagement)  # what it waits on, and by when, changes with the state
    row = EngagementTransition(engagement_id=engagement.id, action=action, from_state=old,
                               to_state=transition.target, note=note[:1000] or None,  # the audit keeps it all
                               actor_id=actor.id if actor is not None else None)
    db.session.add(row)
    audit.record(f"engagement.{action}", engagement, actor=actor,
                 summary=f"{engagement.reference} {engagement.name}：{old.label} → {transition.target.label}"
                         + (f"（{note}）" if note else ""),
                 payload={"from": old, "to": transition.target, "note": note, "system": system,
                          **({"waived": waivers} if waivers else {})})
    for effect in AFTER_STEP.get(action, ()):
        effect(engagement, actor, note)
    return row


# --- deadlines -------------------------------------------------------------------------------------

CONTRACT_PENDING = (S.PROCURING,)  # awarded, its result notice out: the contract is owed
PLAN_PENDING = (S.CONTRACTED, S.PLAN_RETURNED)
REPORT_PENDING = (S.FIELDWORK, S.REPORT_RETURNED)
WAITING = CONTRACT_PENDING + PLAN_PENDING + REPORT_PENDING
RETURNED = (S.PLAN_RETURNED, S.REPORT_RETURNED)

# The contract is signed within 30 days of the 中标/成交通知书 (政府采购法 第四十六条; 实施条例 第六十七条(五) makes a
# late signing the purchaser's liability), which evalhub sends with the result notice at the award (财政部令第87号
# 第六十九条): the law's number, not a bureau's setting. Counted in days, its last day past a holiday moved on.
CONTRACT_DAYS = 30


def contract_due(bureau: Bureau, notice_published_at: datetime) -> date:
    """The last day for signing the contract of an award whose result notice went out at ``notice_published_at``
    (UTC): the 30th day after its Beijing date, or the first working day after it (``core.calendar.add_days``)."""
    return add_days(bureau, beijing_date(notice_published_at), CONTRACT_DAYS)


def due_date(state: S, plan_due: date | None, report_due: date | None,
             resubmit_due: datetime | None = None, contract_due_on: date | None = None) -> Optional[date]:
    """The rule for ``Engagement.due_on``: the Beijing date by which the step an engagement in ``state`` waits
    on is due — the contract's last day of an awarded one still procuring (``contract_due``, None before the
    award), the rectification deadline (UTC, from the latest returned review) of a returned one, else the
    contract's plan or report date; None when it waits on nothing. Bulk loaders call it too."""
    if state not in WAITING:
        return None
    if state in CONTRACT_PENDING:
        return contract_due_on
    if state in RETURNED and resubmit_due is not None:  # the rectification deadline replaces the contract's
        return to_beijing(resubmit_due).date()
    return plan_due if state in PLAN_PENDING else report_due


def standing_notice_published_at(engagement: Engagement) -> Optional[datetime]:
    """When the result notice of the engagement's standing award went out (UTC), or None: no award, or its
    notice revoked by an upheld challenge (the award goes with it)."""
    return db.session.execute(sa.select(ResultNotice.published_at).join(
        Procurement, Procurement.id == ResultNotice.procurement_id).where(
        Procurement.engagement_id == engagement.id, ResultNotice.award_id.is_not(None),
        ResultNotice.revoked_at.is_(None)).order_by(ResultNotice.id.desc()).limit(1)).scalar()


def refresh_due(engagement: Engagement) -> Optional[date]:
    """Store ``engagement.due_on`` from its inputs now. Called on every write of an input: each state change
    (``perform``), a contract's dates, a returned review's deadline (through ``perform``), a result notice
    published or revoked (procurement's services)."""
    state = engagement.state
    resubmit = contract_due_on = None
    if state in RETURNED and _resubmission_due:
        # one lookup, on a return only (the query flushes the returned panel's new deadline first)
        resubmit = db.session.execute(sa.select(_resubmission_due_expr()).select_from(Engagement)
                                      .where(Engagement.id == engagement.id)).scalar()
    if state in CONTRACT_PENDING and (published := standing_notice_published_at(engagement)) is not None:
        contract_due_on = contract_due(engagement.bureau, published)
    contract = engagement.contract if state in WAITING else None
    engagement.due_on = due_date(state, contract.plan_due if contract else None,
                                 contract.report_due if contract else None, resubmit, contract_due_on)
    return engagement.due_on


def overdue_clause(today: date | None = None) -> sa.ColumnElement[bool]:
    """The overdue rule as a SQL condition on ``Engagement`` (for filters and counts); ``overdue_reasons``
    words the same rule for the rows shown. A test holds the two to the same answers."""
    today = today or beijing_today()
    # A range of the (bureau_id, due_on) index, nothing else: ``perform`` clears the date of every state that
    # waits on nothing, and a state test beside it made PostgreSQL multiply the two selectivities (12 rows
    # expected, 361 found at province scale 2x), so it joined every overdue row before sorting the page.
    return Engagement.due_on < today


def overdue_reasons(engagements: Iterable[Engagement], today: date | None = None) -> dict[int, str]:
    """Why each of ``engagements`` is overdue today (only those that are), from the stored date: no query."""
    today = today or beijing_today()
    out = {}
    for e in engagements:
        due = e.due_on
        if due is None or e.state not in WAITING or not today > due:
            continue
        days = (today - due).days
        if e.state in CONTRACT_PENDING:
            out[e.id] = (f"合同应于 {due:%Y-%m-%d} 前签订（中标、成交通知书发出之日起三十日内，政府采购法第四十六条），"
                         f"已逾期 {days} 天")
        elif e.state in RETURNED:  # every return sets a rectification deadline (review's ``send_letter``)
            out[e.id] = f"整改稿应于 {due:%Y-%m-%d} 前重新提交，已逾期 {days} 天"
        elif e.state in PLAN_PENDING:
            out[e.id] = f"实施方案应于 {due:%Y-%m-%d} 前提交，已逾期 {days} 天"
        else:
            out[e.id] = f"评价报告应于 {due:%Y-%m-%d} 前提交，已逾期 {days} 天"
    return out


def overdue_reason(engagement: Engagement, today: date | None = None) -> Optional[str]:
    """Why the engagement is overdue today, or None."""
    return overdue_reasons([engagement], today).get(engagement.id)
