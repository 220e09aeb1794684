"""Rules of case inspection (reveal-time re-check, independent recording), offline answers to review invitations
and the statutory holiday calendar: each test states a rule of docs/rules.md, of the code's own contract or of the
law it cites, and sets up the case it holds on."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from evalhub.core import draws
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied
from evalhub.extensions import db
from evalhub.supervision import services as V
from evalhub.supervision.models import CHECKLIST, Trigger
from tests import factories


def _fresh_officers(world, *names):
    out = [factories.user(name, Role.BUREAU_STAFF, bureau_id=world.bz.id) for name in names]
    db.session.flush()
    return out


# --- reveal-time re-check of a case's drawn officer ----------------------------------------------------------

def test_a_case_officer_disabled_between_the_announcement_and_the_reveal_does_not_sit(world):
    """docs/rules.md: "a case's officer who no longer qualifies (suspended, disabled, tied since) does not sit" —
    the seat goes to a draw derived from the witnessed seed. The drawn officer's account is disabled between the
    announcement and the reveal; at the reveal that officer is not seated."""
    from evalhub.core import services as core_services

    e = factories.in_fieldwork(world)
    _fresh_officers(world, "audit.officer1", "audit.officer2")
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.LOW_SCORE, detail="实施方案评审得分偏低", engagement=e)
    record = V.draw_case_inspectors(case, world.bz_admin)
    draws.name_witnesses(record, [world.region_staff], world.bz_admin, check=False, notify=False)
    draws.enter_number(record, world.region_staff, 20261207)
    seed = draws.seed_of(record.secret, record.candidate_hash, ["20261207"])
    picked = draws.rank(seed, draws.eligible_ids(record))[0]
    picked_user = db.session.get(factories.User, picked)
    core_services.set_enabled(picked_user, False, world.bz_admin, "调离本局")  # between announcement and reveal
    db.session.flush()

    draws.reveal(record, world.bz_admin)

    officers = [p.user_id for p in case.inspectors if p.user_id]
    assert officers and picked not in officers, "a disabled account must not sit as the case's officer inspector"


# --- the inspection record is written by an independent officer ----------------------------------------------

def test_an_officer_who_declared_a_tie_with_the_firm_does_not_write_another_of_its_inspections(world):
    """docs/rules.md: 申报回避 is kept as a StaffTie "so neither inspects that firm again", and the record is written
    by someone independent of what is inspected. An officer named on two open cases of the same firm declares a tie
    on one; recording_refusal refuses them on the other, and record_checklist raises PermissionDenied."""
    e = factories.in_fieldwork(world)
    [officer] = _fresh_officers(world, "audit.officer")
    first = V.open_case(world.bz, world.bz_admin, trigger=Trigger.OTHER, detail="线索一", firm=world.firm)
    second = V.open_case(world.bz, world.bz_admin, trigger=Trigger.LOW_SCORE, detail="线索二", engagement=e)
    for case in (first, second):
        V.name_inspector(case, world.bz_admin, user_id=officer.id)
    V.declare_conflict(first, officer, "本人配偶在该机构任职")
    assert V.staff_independence(e, [officer], world.firm).get(officer.id)  # the tie is on record

    assert V.recording_refusal(second, officer) is not None
    with pytest.raises(PermissionDenied):
        V.record_checklist(second, officer, {code: (True, "") for code, _ in CHECKLIST})


# --- an answer after the invitation's deadline ---------------------------------------------------------------

def test_staff_cannot_record_an_offline_acceptance_after_the_invitations_deadline(world):
    """review/services.py respond: an answer after respond_by is refused "even before the hourly job expires it" —
    the seat is the replacement draw's once the time is up. The same holds for respond_offline, the answer the
    bureau records for an offline panel: a minute after the deadline, before the job runs, it raises Conflict and
    the invitation stays INVITED."""
    from evalhub.core.timeutil import simulated_clock
    from evalhub.review import services as R
    from evalhub.review.models import InvitationStatus
    from tests.test_review_rules import _panel_beside_an_expert_without_login

    panel, _spare = _panel_beside_an_expert_without_login(world, offline=True)
    invitation = panel.invitations[0]
    assert invitation.status == InvitationStatus.INVITED
    with simulated_clock(invitation.respond_by + timedelta(minutes=1)):
        with pytest.raises(Conflict):
            R.respond_offline(invitation, world.bz_staff, accept=True, declaration_received=True)
    assert invitation.status == InvitationStatus.INVITED


# --- the statutory holidays of a year without its notice ------------------------------------------------------

def test_a_statutory_holiday_on_a_weekend_is_made_up_on_a_working_day_in_a_year_without_its_notice(world):
    """《全国年节及纪念日放假办法》(国务院令第798号) 第六条: 全体公民放假的假日，如果适逢周六、周日，应当在工作日补假 —
    the law gives these days, not the annual 调休 notice (the notices for 2023–2026 carry every one). In 2027, a
    year without its notice, 春节 初一–初二 (6–7 Feb), 劳动节 (1–2 May) and 国庆 2–3 Oct fall on a weekend, so
    9–10 Feb, 3–4 May and 4–5 Oct are days off, not working days."""
    from evalhub.core.calendar import is_provisional, is_workday

    assert is_provisional(2027)
    made_up = [date(2027, 2, 9), date(2027, 2, 10), date(2027, 5, 3), date(2027, 5, 4), date(2027, 10, 4), date(2027, 10, 5)]
    assert [day for day in made_up if is_workday(world.bz, day)] == []
