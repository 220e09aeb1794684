"""The demo data set: loads, is idempotent, keeps the audit chain whole, and is refused in production."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core.audit import verify_chain
from evalhub.core.enums import Role
from evalhub.core.models import AuditEvent, Bureau, BudgetUnit, Notification, User
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.demo import ACCOUNT_NAMES, DEMO_PASSWORD, load_demo
from evalhub.extensions import db
from evalhub.registry import services as registry
from evalhub.registry.models import (
    Expert,
    ExpertTie,
    Firm,
    FirmKind,
    FirmRelation,
    FirmStaff,
    FirmStatus,
    FirmStatusChange,
    LegalForm,
    StaffCertificate,
)

COUNTED = [Bureau, BudgetUnit, User, Firm, FirmStatusChange, FirmStaff, StaffCertificate, FirmRelation, Expert,
           ExpertTie, AuditEvent]


def _counts() -> dict[str, int]:
    return {m.__name__: db.session.execute(sa.select(sa.func.count()).select_from(m)).scalar_one() for m in COUNTED}


def test_demo_loads_is_idempotent_and_keeps_the_audit_chain(app, app_ctx):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["evalhub", "demo"])  # the command `make run` uses
    assert result.exit_code == 0, result.output
    summary = result.output
    assert "演示数据已加载" in summary
    assert "第三方机构 42 家" in summary and "评审专家 150 名" in summary and DEMO_PASSWORD in summary

    first = _counts()
    assert first["Bureau"] == 8
    assert first["Expert"] == 150
    assert 35 <= first["Firm"] <= 45
    assert first["FirmRelation"] > 0 and first["FirmStaff"] >= 2 * first["Firm"]

    # every status, kind and legal form is present; statuses were reached through the service (history)
    firms = db.session.execute(sa.select(Firm)).scalars().all()
    assert {f.status for f in firms} == set(FirmStatus)
    assert {f.kind for f in firms} == set(FirmKind)
    assert {f.legal_form for f in firms} == set(LegalForm)
    for firm in firms:
        assert firm.status_history[-1].to_status == firm.status
        if firm.status != FirmStatus.PENDING:
            assert len(firm.status_history) >= 2
    pending = {f.bureau.code for f in firms if f.status == FirmStatus.PENDING}
    assert {"652800", "653000"} <= pending  # 巴州 and 克州 each have an application waiting

    bureaus = {b.code: b for b in db.session.execute(sa.select(Bureau)).scalars()}
    assert bureaus["652822"].parent.code == "652800" and bureaus["653227"].path == "650000/653200/653227/"

    experts = db.session.execute(sa.select(Expert)).scalars().all()
    assert 5 <= sum(1 for e in experts if registry.expert_eligibility(e)) <= 30
    assert any(t.kind.value != "employment" or t.firm_id for t in db.session.execute(sa.select(ExpertTie)).scalars())

    users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
    assert set(ACCOUNT_NAMES) <= set(users)
    assert users["firm1"].firm.status == FirmStatus.ADMITTED and users["firm1"].firm.bureau.code == "652800"
    assert users["expert1"].expert.bureau.code == "652800" and not registry.expert_eligibility(users["expert1"].expert)
    assert users["admin"].role == Role.SYSTEM_ADMIN and users["bz.staff"].role == Role.BUREAU_STAFF

    # plans, procurement and review: every state, every method, published and withheld reports
    from evalhub.core.draws import verify as verify_draw
    from evalhub.core.models import Draw
    from evalhub.procurement.models import Engagement, EngagementState, Procurement, ProcurementMethod
    from evalhub.review.models import Publication

    states = set(db.session.execute(sa.select(Engagement.state)).scalars())
    assert states >= {EngagementState.PLANNED, EngagementState.PROCURING, EngagementState.FAILED_PROCUREMENT,
                      EngagementState.CONTRACTED, EngagementState.PLAN_IN_REVIEW, EngagementState.FIELDWORK,
                      EngagementState.REPORT_IN_REVIEW, EngagementState.REPORT_RETURNED, EngagementState.ACCEPTED,
                      EngagementState.PUBLISHED, EngagementState.ARCHIVED, EngagementState.CANCELLED}
    assert set(db.session.execute(sa.select(Procurement.method)).scalars()) == set(ProcurementMethod)
    from evalhub.procurement.models import ProcurementAmendment

    # the open consultation's 更正公告, published after its first response: that bidder was told it may revise
    amendment = db.session.execute(sa.select(ProcurementAmendment)).scalar_one()
    assert amendment.procurement.status.value == "open" and amendment.number == 1
    assert amendment.procurement.bids[0].submitted_at < amendment.published_at < amendment.procurement.bids[-1].submitted_at
    told = db.session.execute(sa.select(Notification).where(Notification.title.contains("更正公告"))).scalars().all()
    assert amendment.procurement.bids[0].firm_id in {n.user.firm_id for n in told}
    publications = db.session.execute(sa.select(Publication)).scalars().all()
    assert sum(1 for p in publications if p.classified) >= 2 and sum(1 for p in publications if p.redacted_file_id) >= 9
    assert all(verify_draw(d).ok for d in db.session.execute(sa.select(Draw)).scalars())

    # credit ratings and supervision
    from evalhub.credit.models import CreditObjection, CreditRating, ObjectionDecision, RatingStatus
    from evalhub.supervision.models import CampaignStatus, Inspection, InspectionCampaign, Trigger

    ratings = db.session.execute(sa.select(CreditRating)).scalars().all()
    assert {(r.year, r.status) for r in ratings} >= {(2023, RatingStatus.FINAL), (2024, RatingStatus.FINAL),
                                                     (2025, RatingStatus.PUBLISHED)}
    decisions = {o.decision for o in db.session.execute(sa.select(CreditObjection)).scalars()}
    assert decisions == {ObjectionDecision.UPHELD, ObjectionDecision.REJECTED}
    campaign = db.session.execute(sa.select(InspectionCampaign)).scalar_one()
    assert campaign.status == CampaignStatus.RESULTS_PUBLISHED and campaign.inspections
    triggers = set(db.session.execute(sa.select(Inspection.trigger)).scalars())
    assert {Trigger.RANDOM, Trigger.COMPLAINT, Trigger.LOW_SCORE} <= triggers

    # the migrated archive: a realistic screening queue, flag cards, labels and an active model
    from evalhub.review.models import EvaluationResult, ReviewPanel, Submission, SubmissionKind
    from evalhub.screening import services as screening
    from evalhub.screening.models import ModelStatus, ScreeningModel
    from evalhub.supervision.models import InspectionStatus

    archived = db.session.execute(sa.select(Engagement).where(Engagement.reference.like("%-A%"))).scalars().all()
    assert 200 <= len(archived) <= 280 and all(e.state == EngagementState.ARCHIVED for e in archived)
    assert {e.bureau.code for e in archived} == {"650000", "652800", "652801", "652822", "653227"}
    assert {e.year for e in archived} == {2023, 2024, 2025}
    archived_ids = [e.id for e in archived]
    assert db.session.execute(sa.select(sa.func.count(EvaluationResult.id)).where(
        EvaluationResult.engagement_id.in_(archived_ids))).scalar_one() == len(archived)
    first_rounds = db.session.execute(sa.select(ReviewPanel).where(
        ReviewPanel.engagement_id.in_(archived_ids), ReviewPanel.round == 1)).scalars().all()
    assert len(first_rounds) == len(archived) and {p.passed for p in first_rounds} == {True, False}
    assert all(len(p.invitations) == 5 and all(i.review.total is not None for i in p.invitations) for p in first_rounds[:20])
    oldest, newest = db.session.execute(sa.select(sa.func.min(Submission.submitted_at), sa.func.max(Submission.submitted_at))
                                        .where(Submission.engagement_id.in_(archived_ids))).one()
    assert oldest.year == 2024 and newest.year == 2026 and newest < utcnow()

    staff = users["bz.staff"]
    entries = screening.queue(staff, year=2025)
    assert len(entries) >= 60
    top = entries[0]
    assert top.flagged and top.screening.reasons
    cards = [screening.flag_card(e.screening, staff) for e in entries[:10]]
    assert any(card["passages"] for card in cards)
    assert all(card["model_problem"] is None for card in cards)
    # The region admin trains a model and promotes it only if it beats the rule score on the time split (issue
    # 16): whichever way that goes, the card says why and the reports are scored accordingly.
    model = db.session.execute(sa.select(ScreeningModel).order_by(ScreeningModel.id.desc())).scalars().first()
    metrics = model.card["metrics"]
    assert metrics["average_precision"] is not None and metrics["roc_auc"] is not None
    assert metrics["precision_at_budget"] is not None and model.card["labels"]["from_inspections"] >= 4
    promotion = model.card["promotion"]
    assert promotion["reason"]
    top_report = next(e.screening for e in entries if e.screening.kind == SubmissionKind.REPORT)
    if promotion["allowed"]:
        assert model.status == ModelStatus.ACTIVE
        assert top_report.method.value == "model" and top_report.model_version == model.version
    else:
        assert model.status != ModelStatus.ACTIVE and top_report.method.value == "rule"
    frame = screening.labelled_frame()
    assert len(frame) >= 150 and 0 < frame["label"].sum() < len(frame)
    flags = db.session.execute(sa.select(Inspection).where(Inspection.trigger == Trigger.SCREENING_FLAG)).scalars().all()
    answers = [(i.checklist or {}).get("report_original", {}).get("ok") for i in flags if i.status == InspectionStatus.CLOSED]
    assert sorted(answers) == [False, False, False, True]
    assert any(i.status != InspectionStatus.CLOSED for i in flags)
    assert db.session.execute(sa.select(sa.func.count()).select_from(Submission).where(
        Submission.kind == SubmissionKind.REPORT)).scalar_one() == db.session.execute(
        sa.select(sa.func.count()).select_from(screening.ReportScreening).where(
            screening.ReportScreening.kind == SubmissionKind.REPORT)).scalar_one()

    # results application (issue 15): units with accounts, findings in every state, the 2025 lists
    from evalhub.demo.results import UNIT_ACCOUNTS
    from evalhub.results.models import (
        ApplicationEntry, ApplicationFiling, EscalationLevel, FindingEscalation, FindingStatus, ResultFinding, Verification,
    )

    for username, _, unit_name, _ in UNIT_ACCOUNTS:
        assert users[username].role == Role.BUDGET_UNIT and users[username].budget_unit.name == unit_name
    assert {users[u].budget_unit.bureau.code for u, *_ in UNIT_ACCOUNTS} >= {"652800", "653227"}  # and a county's
    findings = db.session.execute(sa.select(ResultFinding)).scalars().all()
    assert {f.status for f in findings} >= {FindingStatus.CONFIRMED, FindingStatus.PLANNED, FindingStatus.SUBMITTED,
                                            FindingStatus.RETURNED, FindingStatus.CLOSED}
    assert {f.verification for f in findings} >= set(Verification)
    assert {f.engagement.year for f in findings} == {2024, 2025}
    from evalhub.procurement.models import EngagementTransition

    accepted_at = dict(db.session.execute(sa.select(EngagementTransition.engagement_id, EngagementTransition.created_at)
                                          .where(EngagementTransition.to_state == EngagementState.ACCEPTED)).all())
    assert all(f.confirmed_at > accepted_at[f.engagement_id] for f in findings)  # after the report's acceptance
    escalations = db.session.execute(sa.select(FindingEscalation)).scalars().all()
    assert {x.level for x in escalations} == set(EscalationLevel)
    assert all(x.on_date > x.finding.deadline and x.on_date <= beijing_today() for x in escalations)
    open_now = [f for f in findings if f.engagement.year == 2025]
    assert open_now and all(f.deadline > beijing_today() and not f.escalations for f in open_now)
    bz_2025 = db.session.execute(sa.select(ApplicationEntry).where(
        ApplicationEntry.bureau_id == bureaus["652800"].id, ApplicationEntry.year == 2025)).scalars().all()
    assert len(bz_2025) >= 10 and all(e.confirmed_at for e in bz_2025)
    assert sum(1 for e in bz_2025 if e.reason) >= 1  # a departure from the rules' proposal, with its reason
    filing = db.session.execute(sa.select(ApplicationFiling).where(ApplicationFiling.year == 2025)).scalar_one()
    assert filing.bureau_id == bureaus["652822"].id and filing.filed_with_id == bureaus["652800"].id

    _dated_like_a_year(users)

    report = verify_chain()
    assert report.ok, report.problem
    assert report.checked == first["AuditEvent"]
    result = runner.invoke(args=["evalhub", "audit", "verify"])
    assert result.exit_code == 0 and "审计链完整" in result.output, result.output

    again = load_demo(echo=lambda message: None)
    assert "未做任何改动" in again
    assert _counts() == first
    assert verify_chain().ok

    # every demo account logs in with the documented password
    client = app.test_client()
    for username in ACCOUNT_NAMES + [u for u, *_ in UNIT_ACCOUNTS]:
        response = client.post("/login", data={"username": username, "password": DEMO_PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        client.post("/logout")
    assert client.post("/login", data={"username": "bz.admin", "password": "wrong-password"}).status_code == 401


MAX_OVERDUE_DAYS = 60


def _dated_like_a_year(users: dict) -> None:
    """The demo reads like a bureau's real record: history on its own days in 2023–today, each engagement's
    events after their causes, overdue items overdue by days, `expert1` with work to do, mostly punctual firms."""
    import re
    from datetime import datetime, timedelta

    from evalhub.credit.models import CreditRating
    from evalhub.procurement import workflow
    from evalhub.procurement.models import Engagement, EngagementTransition
    from evalhub.review.models import InvitationStatus, PanelInvitation, PanelStatus, ReviewPanel, ReviewStatus, Submission

    now, start = utcnow(), datetime(2023, 1, 1)
    story = db.session.execute(sa.select(Engagement).where(~Engagement.reference.like("%-A%"))).scalars().all()

    # overdue, by days, not by years; and some are (a real bureau always has a few)
    overdue = [(e.reference, workflow.overdue_reason(e)) for e in story if workflow.overdue_reason(e)]
    days = {ref: int(re.search(r"已逾期 (\d+) 天", reason).group(1)) for ref, reason in overdue}
    assert days and max(days.values()) <= MAX_OVERDUE_DAYS, days

    # every timestamp between 2023 and now; the audit log too
    first_event, last_event = db.session.execute(sa.select(sa.func.min(AuditEvent.occurred_at),
                                                           sa.func.max(AuditEvent.occurred_at))).one()
    assert start <= first_event and last_event <= now
    years = set()
    for engagement in story:
        steps = db.session.execute(sa.select(EngagementTransition).where(
            EngagementTransition.engagement_id == engagement.id).order_by(EngagementTransition.id)).scalars().all()
        times = [t.created_at for t in steps]
        assert all(start <= t <= now for t in times), engagement.reference
        assert times == sorted(times), f"{engagement.reference}: timeline out of order"
        years.update(t.year for t in times)
        contract = engagement.contract
        for submission in db.session.execute(sa.select(Submission).where(
                Submission.engagement_id == engagement.id).order_by(Submission.id)).scalars():
            assert contract is not None and submission.submitted_at.date() >= contract.signed_on
            panel = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.submission_id == submission.id)).scalar_one_or_none()
            if panel is None:
                continue
            assert panel.created_at >= submission.submitted_at
            for invitation in panel.invitations:
                review = invitation.review
                if invitation.responded_at is not None:
                    assert invitation.responded_at >= panel.created_at
                if review is not None and review.submitted_at is not None:
                    assert review.submitted_at >= invitation.responded_at
                    assert panel.decided_at is None or panel.decided_at >= review.submitted_at
    assert {2023, 2024, 2025} <= years  # history on its own days, not all at load time
    applications = db.session.execute(sa.select(Firm.applied_at)).scalars().all()
    assert sum(1 for at in applications if at.year == 2023) >= 30 and sum(1 for at in applications if now - at < timedelta(days=14)) >= 4

    # expert1: an invitation to answer within days, and an accepted review not yet scored
    expert_id = users["expert1"].expert_id
    invitations = db.session.execute(sa.select(PanelInvitation).where(PanelInvitation.expert_id == expert_id)).scalars().all()
    waiting = [i for i in invitations if i.status == InvitationStatus.INVITED and i.panel.status == PanelStatus.REVIEWING]
    assert waiting and all(now < i.respond_by < now + timedelta(days=4) for i in waiting)
    assert any(i.status == InvitationStatus.ACCEPTED and i.panel.status == PanelStatus.REVIEWING
               and i.review is not None and i.review.status != ReviewStatus.SUBMITTED for i in invitations)

    # contract performance (timeliness) of the rated firms: most high, a few late; grades a mix
    ratings = db.session.execute(sa.select(CreditRating).where(CreditRating.year.in_([2023, 2024]),
                                                               CreditRating.rated.is_(True))).scalars().all()
    performance = [next(c for c in r.components if c["code"] == "performance") for r in ratings]
    high = [p for p in performance if float(p["points"]) >= 0.6 * float(p["max"])]
    assert len(high) >= 0.6 * len(performance), [p["points"] for p in performance]
    assert any(p["records"] for p in performance)  # someone handed in late, and it shows
    assert len({r.grade for r in ratings}) >= 3

    # result notices: every award published one; a challenge filed and dismissed before that contract;
    # one award of the current cycle still in its challenge period, its contract waiting
    from evalhub.core.timeutil import beijing_today
    from evalhub.procurement.models import Challenge, ChallengeStatus, Procurement, ResultNotice

    notices = db.session.execute(sa.select(ResultNotice)).scalars().all()
    assert len(notices) >= 20 and all(n.published_at <= now for n in notices)
    challenge = db.session.execute(sa.select(Challenge)).scalar_one()
    assert challenge.status == ChallengeStatus.DISMISSED and challenge.answered_at > challenge.filed_at
    contract = challenge.procurement.engagement.contract
    assert contract is not None and contract.signed_on > challenge.notice.challenge_until
    waiting = [n for n in notices if n.challenge_until >= beijing_today() and n.revoked_at is None]
    assert waiting and all(db.session.get(Procurement, n.procurement_id).engagement.contract is None for n in waiting)


def test_simulated_clock_is_off_by_default_and_moves_on_from_the_time_set(app, app_ctx):
    from datetime import datetime, timedelta

    from evalhub.core import timeutil

    real = timeutil.utcnow()
    assert abs(real - datetime.utcnow()) < timedelta(seconds=5)  # noqa: DTZ003  (the real clock, naive UTC)
    with pytest.raises(RuntimeError):
        timeutil.set_simulated_now(datetime(2024, 1, 1))  # only inside simulated_clock
    with timeutil.simulated_clock(datetime(2024, 3, 31, 17, 0)):
        first = timeutil.utcnow()
        assert datetime(2024, 3, 31, 17, 0) <= first < datetime(2024, 3, 31, 17, 1)
        assert timeutil.beijing_today().isoformat() == "2024-04-01"  # 01:00 in Beijing
        assert timeutil.utcnow() >= first  # the clock runs on
        timeutil.set_simulated_now(datetime(2025, 6, 1, 2, 0))
        assert timeutil.utcnow().date().isoformat() == "2025-06-01"
    assert abs(timeutil.utcnow() - datetime.utcnow()) < timedelta(seconds=5)  # noqa: DTZ003


def test_simulated_clocks_of_two_threads_at_once_leave_every_other_on_the_real_clock(app, app_ctx):
    """A race test runs two requests in threads, each on a simulated clock of its own. The clock was one module
    global: thread A set it, thread B set it (saving A's), A closed (restoring "off"), B closed (restoring A's) — and
    the clock stayed on A's day for every test after, on PostgreSQL only (where the race tests run): dates "later
    than today" refused far from any race. Each thread has its own clock now."""
    import threading
    from datetime import datetime, timedelta

    from evalhub.core import timeutil

    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with timeutil.simulated_clock(datetime(2025, 3, 13, 3, 0)):
            a_in.set()
            b_in.wait(5)
            seen["a"] = timeutil.utcnow()
        a_out.set()

    def b():
        a_in.wait(5)
        with timeutil.simulated_clock(datetime(2024, 1, 1)):
            b_in.set()
            a_out.wait(5)  # A closes its clock first
            seen["b"] = timeutil.utcnow()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["a"].date().isoformat() == "2025-03-13" and seen["b"].date().isoformat() == "2024-01-01"
    assert abs(timeutil.utcnow() - datetime.utcnow()) < timedelta(seconds=5)  # noqa: DTZ003  (this thread)
    after = {}
    later = threading.Thread(target=lambda: after.setdefault("now", timeutil.utcnow()))
    later.start()
    later.join(5)
    assert abs(after["now"] - datetime.utcnow()) < timedelta(seconds=5)  # noqa: DTZ003  (a thread started later)


def test_the_demo_clock_takes_an_hour_only_with_a_date(app, app_ctx):
    """``clock.at(datetime, hour)`` used to ignore the hour silently (the demo's integrity story then opened bids
    before their deadline on a Chinese morning); now a date takes the hour and a datetime refuses one."""
    from datetime import date, datetime

    from evalhub.core import timeutil
    from evalhub.demo import clock

    with timeutil.simulated_clock(datetime(2025, 6, 1, 2, 0)):
        assert clock.at(date(2025, 6, 3), 17, 30) == datetime(2025, 6, 3, 17, 30)
        assert clock.now_local().replace(second=0, microsecond=0) == datetime(2025, 6, 3, 17, 30)
        assert clock.at(datetime(2025, 6, 4, 9, 15)) == datetime(2025, 6, 4, 9, 15)
        with pytest.raises(TypeError):
            clock.at(datetime(2025, 6, 5, 0, 8), 17, 30)


def test_simulated_clock_refused_in_production(app, app_ctx):
    from datetime import datetime

    from evalhub.core import timeutil

    saved = app.config["ENV_NAME"]
    app.config["ENV_NAME"] = "production"
    try:
        with pytest.raises(RuntimeError), timeutil.simulated_clock(datetime(2024, 1, 1)):
            pass
    finally:
        app.config["ENV_NAME"] = saved
    assert timeutil.utcnow().year >= 2026 or timeutil.utcnow() > datetime(2025, 1, 1)


def test_demo_command_refused_in_production(app, app_ctx):
    """`flask evalhub demo` must never touch a production database."""
    runner = app.test_cli_runner()
    saved = app.config["ENV_NAME"]
    app.config["ENV_NAME"] = "production"
    try:
        result = runner.invoke(args=["evalhub", "demo"])
    finally:
        app.config["ENV_NAME"] = saved
    assert result.exit_code == 1
    assert "生产环境" in result.output
    assert db.session.execute(sa.select(sa.func.count()).select_from(Bureau)).scalar_one() == 0

