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


@pytest.mark.parametrize("action, source", CASES, ids=[f"{a}-from-{s.value}" for a, s in CASES])
def test_each_declared_transition_succeeds_for_its_role_only(world, action, source):
    transition = workflow.TRANSITIONS[action]
    for username in EVERYONE:
        engagement = _ready(world, source)
        user = getattr(world, username)
        events_before = db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one()
        if username in ALLOWED[transition.actor]:
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
    engagement = _ready(world, S.PLANNED)
    workflow.perform(engagement, "start_procurement", world.bz_staff)
    with pytest.raises(Conflict) as caught:
        workflow.perform(engagement, "sign_contract", world.bz_staff)
    assert "合同" in caught.value.message


def test_system_consequences_skip_the_role_check_but_keep_the_rules(world):
    engagement = _ready(world, S.REPORT_IN_REVIEW)
    workflow.perform(engagement, "accept_report", world.expert_user, system=True)
    assert engagement.state == S.ACCEPTED
    with pytest.raises(Conflict):
        workflow.perform(engagement, "return_report", None, note="x", system=True)


def test_the_whole_happy_path_leaves_a_complete_timeline(world):
    e = factories.contracted(world)
    steps = [("submit_plan", world.firm_user), ("start_plan_review", world.bz_staff),
             ("return_plan", world.bz_staff), ("resubmit_plan", world.firm_user), ("start_plan_review", world.bz_staff),
             ("approve_plan", world.bz_staff), ("submit_report", world.firm_user),
             ("start_report_review", world.bz_staff), ("return_report", world.bz_staff),
             ("resubmit_report", world.firm_user), ("start_report_review", world.bz_staff),
             ("accept_report", world.bz_staff), ("publish", world.bz_staff), ("archive", world.bz_staff)]
    for action, user in steps:
        workflow.perform(e, action, user, note="意见")
    db.session.commit()
    assert e.state == S.ARCHIVED
    assert [t.action for t in e.transitions] == ["start_procurement", "sign_contract"] + [a for a, _ in steps]
    from evalhub.core import audit

    assert audit.verify_chain().ok


def test_overdue_engagements(world):
    from datetime import date

    e = factories.contracted(world)
    assert workflow.overdue_reason(e, date(2025, 3, 31)) is None
    assert "逾期 1 天" in workflow.overdue_reason(e, date(2025, 4, 2))
    workflow.perform(e, "submit_plan", world.firm_user)
    assert workflow.overdue_reason(e, date(2025, 4, 2)) is None  # submitted: waiting on the bureau, not the firm
