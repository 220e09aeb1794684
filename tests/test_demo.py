"""The demo data set: loads, is idempotent, keeps the audit chain whole, and is refused in production."""
from __future__ import annotations

import sqlalchemy as sa

from evalhub.core.audit import verify_chain
from evalhub.core.enums import Role
from evalhub.core.models import AuditEvent, Bureau, BudgetUnit, User
from evalhub.core.timeutil import utcnow
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
    model = db.session.execute(sa.select(ScreeningModel).where(ScreeningModel.status == ModelStatus.ACTIVE)).scalar_one()
    metrics = model.card["metrics"]
    assert metrics["average_precision"] is not None and metrics["roc_auc"] is not None
    assert metrics["precision_at_budget"] is not None and model.card["labels"]["from_inspections"] >= 4
    top_report = next(e.screening for e in entries if e.screening.kind == SubmissionKind.REPORT)
    assert top_report.method.value == "model" and top_report.model_version == model.version
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
    for username in ACCOUNT_NAMES:
        response = client.post("/login", data={"username": username, "password": DEMO_PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        client.post("/logout")
    assert client.post("/login", data={"username": "bz.admin", "password": "wrong-password"}).status_code == 401


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

