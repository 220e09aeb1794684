"""The engagement state machine: every declared transition for its role, refusals for the others,
409 for everything undeclared, and one audit event per transition."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.models import Contract, EngagementState as S, EngagementTransition
from tests import factories

# For each kind of actor: users who may act, users who may not (by role or by organisation).
ALLOWED = {
    workflow.BUREAU: ["bz_staff", "bz_admin", "sysadmin"],
    workflow.BUREAU_ADMIN: ["bz_admin", "sysadmin"],
    workflow.FIRM: ["firm_user"],
}
EVERYONE = ["sysadmin", "region_admin", "bz_admin", "bz_staff", "krl_admin", "kz_admin", "firm_user",
            "other_firm_user", "expert_user"]


def _ready(world, state):
    """An engagement of 巴州, contracted to world.firm (so firm transitions have a firm), put in ``state``."""
    engagement = factories.engagement(world)
    engagement.firm_id = world.firm.id
    db.session.flush()
    if state == S.PROCURING:
        # sign_contract requires a contract; give it one
        from datetime import date
        from evalhub.procurement.models import Award, Procurement, ProcurementMethod, ProcurementStatus
        from decimal import Decimal

        p = Procurement(engagement_id=engagement.id, bureau_id=engagement.bureau_id, method=ProcurementMethod.RANDOM_DRAW,
                        status=ProcurementStatus.AWARDED, title="t", ceiling_price=Decimal(1), price_weight=Decimal(0),
                        low_bid_ratio=Decimal(70))
        db.session.add(p)
        db.session.flush()
        award = Award(procurement_id=p.id, engagement_id=engagement.id, firm_id=world.firm.id, amount=Decimal(1),
                      reasons="r", notice="n")
        db.session.add(award)
        db.session.flush()
        db.session.add(Contract(engagement_id=engagement.id, award_id=award.id, firm_id=world.firm.id, amount=Decimal(1),
                                signed_on=date(2025, 1, 1), start_date=date(2025, 1, 1), end_date=date(2025, 12, 1),
                                plan_due=date(2025, 2, 1), report_due=date(2025, 11, 1), deliverables="d"))
    engagement.state = state
    db.session.flush()
    db.session.refresh(engagement)
    return engagement


CASES = [(t.action, source) for t in workflow.TRANSITIONS.values() for source in t.sources]
# Steps that need a fact only the review (or supervision) services create: a bare engagement put in the
# source state does not have it, so even the right role is refused (409) — the gate the API used to skip.
GATED = {a for a, t in workflow.TRANSITIONS.items() if set(t.requires) - {"contract", "firm", "rounds_left"}}


@pytest.mark.parametrize("action, source", CASES, ids=[f"{a}-from-{s.value}" for a, s in CASES])
def test_each_declared_transition_succeeds_for_its_role_only(world, action, source):
    transition = workflow.TRANSITIONS[action]
    for username in EVERYONE:
        engagement = _ready(world, source)
        user = getattr(world, username)
        events_before = db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one()
        if username in ALLOWED[transition.actor] and action in GATED:
            with pytest.raises(Conflict) as caught:
                workflow.perform(engagement, action, user, note="说明")
            assert f"不能执行“{transition.label}”" in caught.value.message
            assert engagement.state == source
            assert db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one() == events_before
        elif username in ALLOWED[transition.actor]:
            row = workflow.perform(engagement, action, user, note="说明")
            assert engagement.state == transition.target and row.from_state == source
            events = db.session.execute(sa.select(AuditEvent).where(AuditEvent.id > 0)
                                        .order_by(AuditEvent.id.desc())).scalars().first()
            assert events.action == f"engagement.{action}" and events.object_id == engagement.id
            assert db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one() == events_before + 1
        else:
            with pytest.raises(PermissionDenied):
                workflow.perform(engagement, action, user, note="说明")
            assert engagement.state == source
        db.session.rollback()


UNDECLARED = [(action, state) for action, t in workflow.TRANSITIONS.items() for state in S if state not in t.sources]


@pytest.mark.parametrize("action, state", UNDECLARED, ids=[f"{a}-from-{s.value}" for a, s in UNDECLARED])
def test_every_undeclared_transition_is_a_conflict(world, action, state):
    engagement = _ready(world, state)
    with pytest.raises(Conflict) as caught:
        workflow.perform(engagement, action, world.sysadmin if workflow.TRANSITIONS[action].actor != workflow.FIRM
                         else world.firm_user, note="说明")
    assert state.label in caught.value.message
    assert engagement.state == state
    assert db.session.execute(sa.select(sa.func.count(EngagementTransition.id))).scalar_one() == 0


def test_unknown_actions_are_conflicts(world):
    engagement = _ready(world, S.PLANNED)
    with pytest.raises(Conflict):
        workflow.perform(engagement, "teleport", world.bz_admin)


def test_transitions_that_need_a_note_refuse_without_one(world):
    engagement = _ready(world, S.REPORT_IN_REVIEW)
    with pytest.raises(ValidationFailed):
        workflow.perform(engagement, "return_report", world.bz_staff, note=" ")
    assert engagement.state == S.REPORT_IN_REVIEW


def test_requirements_are_checked(world):
    engagement = factories.engagement(world)
    engagement.state = S.PROCURING  # a round under way, no contract yet
    with pytest.raises(Conflict) as caught:
        workflow.perform(engagement, "sign_contract", world.bz_staff)
    assert "合同" in caught.value.message


def test_procuring_and_failed_follow_the_procurement_round_on_every_path(world):
    """"采购中" needs a round under way and "采购失败" a failed one: the bare step (a script, a job, a future
    endpoint calling the machine) is refused, so an engagement never shows a state its procurement does not have;
    the procurement services open or fail the round, then take the step."""
    engagement = _ready(world, S.PLANNED)
    with pytest.raises(Conflict) as caught:
        workflow.perform(engagement, "start_procurement", world.bz_staff)
    assert "尚未发起采购" in caught.value.message and engagement.state == S.PLANNED
    db.session.rollback()
    engagement = _ready(world, S.PROCURING)  # its round awarded, the contract signed
    with pytest.raises(Conflict) as caught:
        workflow.perform(engagement, "fail_procurement", world.bz_staff, note="无人投标")
    assert "未流标" in caught.value.message and engagement.state == S.PROCURING
    db.session.rollback()

    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementMethod

    engagement = _ready(world, S.PLANNED)
    procurement = P.open_procurement(engagement, P.ProcurementInput(
        method=ProcurementMethod.SINGLE_SOURCE, title="", ceiling_price_wan="20", single_source_firm_id=world.firm.id,
        justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。"), world.bz_staff)
    assert engagement.state == S.PROCURING and engagement.current_procurement is procurement
    P.fail_procurement(procurement, world.bz_staff, "单一来源采购未获批准")
    assert engagement.state == S.FAILED_PROCUREMENT
    with pytest.raises(Conflict) as caught:  # the round failed: a new one is opened before 重新采购
        workflow.perform(engagement, "rerun_procurement", world.bz_staff, note="重新采购")
    assert "尚未发起采购" in caught.value.message


def test_system_consequences_skip_the_role_check_but_keep_the_rules(world):
    engagement = _ready(world, S.REPORT_IN_REVIEW)
    with pytest.raises(Conflict) as caught:  # no panel passed the report, no result recorded
        workflow.perform(engagement, "accept_report", world.expert_user, system=True)
    assert "评价报告" in caught.value.message and "通过线" in caught.value.message
    assert engagement.state == S.REPORT_IN_REVIEW
    with pytest.raises(Conflict):
        workflow.perform(engagement, "return_report", None, note="x", system=True)


def test_the_whole_happy_path_leaves_a_complete_timeline(world):
    """Plan returned once and approved, report returned once and accepted, published, archived — every
    step through the service that records what goes with it (upload, panel, letter, result, file)."""
    from evalhub.review import services as R

    e = factories.contracted(world)
    factories.submit_plan(e)
    factories.panel_experts(e, 3)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    factories.review_panel(panel, "0.5")  # 50 < 80: decided, not passed
    R.send_letter(panel, world.bz_staff, panel.letter)
    factories.approve_plan(e)  # version 2, a new panel that passes
    factories.submit_report(e)
    factories.panel_experts(e, 3)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    factories.review_panel(panel, "0.5")
    R.send_letter(panel, world.bz_staff, panel.letter)
    factories.accept_report(e)
    R.publish(e, world.bz_staff, filename="公开版.docx", data=factories.docx_bytes("脱密后的评价报告"))
    workflow.perform(e, "archive", world.bz_staff)
    db.session.commit()
    assert e.state == S.ARCHIVED
    assert [t.action for t in e.transitions] == [
        "start_procurement", "sign_contract", "submit_plan", "start_plan_review", "return_plan", "resubmit_plan",
        "start_plan_review", "approve_plan", "submit_report", "start_report_review", "return_report",
        "resubmit_report", "start_report_review", "accept_report", "publish", "archive"]
    from evalhub.core import audit

    assert audit.verify_chain().ok


# --- the review gates: requirements registered by the modules that know the facts -------------------

OWNERS = {"contract": "evalhub.procurement.workflow", "firm": "evalhub.procurement.workflow",
          "procurement_open": "evalhub.procurement.workflow", "procurement_failed": "evalhub.procurement.workflow",
          "no_open_inspection": "evalhub.supervision.services", "lead_named": "evalhub.procurement.team"}


def test_every_requirement_the_table_names_is_registered_by_the_module_that_knows_it(app):
    named = {r for t in workflow.TRANSITIONS.values() for r in t.requires}
    assert named <= set(workflow.REQUIREMENTS)
    for name in named:
        assert workflow.REQUIREMENTS[name].__module__ == OWNERS.get(name, "evalhub.review.services"), name
    for t in workflow.TRANSITIONS.values():
        assert set(t.waivable) <= set(t.requires)
    assert {a: t.waivable for a, t in workflow.TRANSITIONS.items() if t.waivable} == {
        "publish": ("no_open_inspection", "grade_within_conclusion"), "withhold": ("grade_within_conclusion",)}
    with pytest.raises(RuntimeError):
        workflow.requirement("no_open_inspection")(lambda e: None)


BARE = [  # (action, state, who, what the refusal names)
    ("submit_plan", S.CONTRACTED, "firm_user", "尚未上传实施方案第 1 版"),
    ("resubmit_plan", S.PLAN_RETURNED, "firm_user", "尚未上传实施方案第 1 版"),
    ("start_plan_review", S.PLAN_SUBMITTED, "bz_staff", "尚未收到实施方案"),
    ("return_plan", S.PLAN_IN_REVIEW, "bz_staff", "尚未收到实施方案"),
    ("approve_plan", S.PLAN_IN_REVIEW, "bz_admin", "尚未收到实施方案"),
    ("submit_report", S.FIELDWORK, "firm_user", "尚未上传评价报告第 1 版"),
    ("start_report_review", S.REPORT_SUBMITTED, "bz_staff", "尚未收到评价报告"),
    ("return_report", S.REPORT_IN_REVIEW, "bz_staff", "尚未收到评价报告"),
    ("resubmit_report", S.REPORT_RETURNED, "firm_user", "尚未上传评价报告第 1 版"),
    ("accept_report", S.REPORT_IN_REVIEW, "bz_admin", "尚未收到评价报告"),
    ("accept_with_deduction", S.REPORT_RETURNED, "bz_admin", "报告整改轮次尚未用完"),
    ("publish", S.ACCEPTED, "bz_admin", "尚未上传脱密后的报告"),
]


@pytest.mark.parametrize("action, state, who, missing", BARE, ids=[b[0] for b in BARE])
def test_a_bare_transition_is_refused_saying_what_is_missing(world, action, state, who, missing):
    engagement = _ready(world, state)
    with pytest.raises(Conflict) as caught:
        workflow.perform(engagement, action, getattr(world, who), note="直接变更")
    assert missing in caught.value.message
    assert engagement.state == state
    assert db.session.execute(sa.select(sa.func.count(EngagementTransition.id))).scalar_one() == 0


def test_a_plan_needs_a_fresh_upload_and_a_panel_that_passed(world):
    from evalhub.review import services as R

    e = factories.contracted(world)
    factories.submit_plan(e)
    assert e.state == S.PLAN_SUBMITTED
    with pytest.raises(Conflict) as caught:
        workflow.perform(e, "start_plan_review", world.bz_staff)
    assert "尚未为实施方案第 1 版抽取评审专家" in caught.value.message
    factories.panel_experts(e, 3)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    for action in ("approve_plan", "return_plan"):  # the panel has not decided yet
        with pytest.raises(Conflict) as caught:
            workflow.perform(e, action, world.bz_admin, note="直接变更")
        assert "实施方案第 1 版尚无" in caught.value.message
    factories.review_panel(panel, "0.5")  # decided, failed: approve is still refused
    with pytest.raises(Conflict):
        workflow.perform(e, "approve_plan", world.bz_admin)
    with pytest.raises(Conflict) as caught:  # returning needs the letter sent, which the letter service does
        workflow.perform(e, "return_plan", world.bz_admin, note="直接退回")
    assert "已发出整改意见" in caught.value.message
    R.send_letter(panel, world.bz_staff, panel.letter)
    assert e.state == S.PLAN_RETURNED
    with pytest.raises(Conflict) as caught:  # resubmitting needs version 2 uploaded
        workflow.perform(e, "resubmit_plan", world.firm_user)
    assert "尚未上传实施方案第 2 版" in caught.value.message


def test_a_report_is_accepted_only_with_a_passed_outcome_and_a_recorded_result(world):
    from evalhub.review.models import EvaluationResult

    e = factories.in_fieldwork(world)
    factories.accept_report(e)
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == e.id)).scalar_one()
    assert result.score == 92
    accepted = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "engagement.accept_report")).scalar_one()
    recorded = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "result.recorded")).scalar_one()
    assert recorded.id < accepted.id  # the result first, then the state machine finds it


def test_the_deduction_path_records_its_deduction_before_accepting(world):
    from evalhub.core.settings import set_setting
    from evalhub.review import services as R

    set_setting(world.bz, "review.max_rounds", 1, world.bz_admin)
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    factories.panel_experts(e, 3)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    factories.review_panel(panel, "0.5")
    R.send_letter(panel, world.bz_staff, panel.letter)
    with pytest.raises(Conflict) as caught:  # the bare step: no deduction recorded
        workflow.perform(e, "accept_with_deduction", world.bz_admin, note="直接验收")
    assert "尚未记录扣分" in caught.value.message
    with pytest.raises(ValidationFailed):
        R.accept_with_deduction(e, world.bz_admin, "", "一轮未通过")
    result = R.accept_with_deduction(e, world.bz_admin, "5", "一轮未通过，扣 5 分验收")
    assert e.state == S.ACCEPTED and result.deduction == 5
    assert e.transitions[-1].note == "扣 5 分：一轮未通过，扣 5 分验收"


def _open_inspection(world, e):
    from evalhub.supervision import services as V

    return V.open_case(world.bz, world.bz_admin, trigger="other", detail="群众反映问卷数据存疑", engagement=e)


def test_publishing_waits_for_an_open_inspection_unless_an_admin_waives_it(world):
    from evalhub.core.models import StoredFile
    from evalhub.core.errors import PermissionDenied as Denied
    from evalhub.review import services as R

    e = factories.accepted(world)
    inspection = _open_inspection(world, e)
    db.session.commit()
    redacted = factories.docx_bytes("脱密后的评价报告（公开版）")
    files_before = db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one()
    with pytest.raises(Conflict) as caught:
        R.publish(e, world.bz_staff, filename="公开版.docx", data=redacted)
    assert f"未办结的检查（#{inspection.id}）" in caught.value.message and "管理员可说明理由后豁免" in caught.value.message
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one() == files_before  # nothing stored
    with pytest.raises(Denied):  # staff may not waive
        R.publish(e, world.bz_staff, filename="公开版.docx", data=redacted, override="领导要求先公开")
    db.session.rollback()
    with pytest.raises(Denied):  # another bureau's admin may not either (nor see it: refused before)
        workflow.perform(e, "publish", world.kz_admin, override="越权")
    db.session.rollback()
    with pytest.raises(Conflict):  # an empty reason waives nothing
        R.publish(e, world.bz_admin, filename="公开版.docx", data=redacted, override="   ")
    db.session.rollback()
    R.publish(e, world.bz_admin, filename="公开版.docx", data=redacted, override="检查只涉及问卷归档，不影响报告结论")
    db.session.commit()
    assert e.state == S.PUBLISHED
    row = e.transitions[-1]
    assert row.action == "publish" and "管理员豁免" in row.note and "不影响报告结论" in row.note
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "engagement.publish")).scalar_one()
    assert event.actor_id == world.bz_admin.id
    assert event.payload["waived"] == [{"requirement": "no_open_inspection",
                                        "problem": f"该报告有未办结的检查（#{inspection.id}），办结前不能公开",
                                        "reason": "检查只涉及问卷归档，不影响报告结论"}]
    from evalhub.core import audit

    assert audit.verify_chain().ok


def test_a_closed_inspection_no_longer_blocks_and_nothing_is_waived(world):
    from evalhub.review import services as R
    from evalhub.supervision import services as V

    e = factories.accepted(world)
    inspection = _open_inspection(world, e)
    from evalhub.supervision.models import CHECKLIST

    V.record_checklist(inspection, factories.recorder(inspection), {code: (True, "") for code, _ in CHECKLIST})
    V.close(inspection, factories.recorder(inspection), "经核查问卷数据真实，线索不实。", substantiated=False)
    R.publish(e, world.bz_staff, filename="公开版.docx", data=factories.docx_bytes("脱密后的评价报告"),
              override="无须豁免")  # nothing unmet: the reason waives nothing and is not recorded
    assert e.state == S.PUBLISHED and "豁免" not in (e.transitions[-1].note or "")
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "engagement.publish")).scalar_one()
    assert "waived" not in event.payload


def test_overdue_engagements(world):
    from datetime import date

    e = factories.contracted(world)
    assert workflow.overdue_reason(e, date(2025, 3, 31)) is None
    assert "逾期 1 天" in workflow.overdue_reason(e, date(2025, 4, 2))
    factories.submit_plan(e)
    assert workflow.overdue_reason(e, date(2025, 4, 2)) is None  # submitted: waiting on the bureau, not the firm
