"""Two requests at once (two workers, a double click, the hourly job while someone acts) get one result. Each
test replays the race: one request ("A") has read what it checks when another ("B", its own app context and
session) does the same thing; A is refused (or answers "already done") and exactly one result is recorded.
The state machine claims each step (UPDATE … WHERE state = <from>); the rest take a named lock or a
compare-and-set of their own."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import AuditEvent, Notification, User
from evalhub.extensions import db
from evalhub.procurement.models import EngagementTransition
from evalhub.review import services as R
from evalhub.review.models import PanelStatus, ReviewPanel
from tests.test_races import in_context, postgresql_only
from tests.test_review_services import _panel, _review

pytestmark = postgresql_only  # as tests/test_races.py: simultaneous transactions need PostgreSQL's


def count(model, *where) -> int:
    db.session.rollback()
    return db.session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def notifications(event_title_part: str, user_id: int) -> int:
    db.session.rollback()
    return db.session.execute(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.title.contains(event_title_part))).scalar_one()


# === review: the consolidated letter sent twice ===================================================

def test_send_letter_twice_at_once_returns_the_report_once(app, world):
    """A double click on “发送整改意见” returns the report once: the second request, which read the panel as
    decided too, is refused by the state machine's claim of the step (it once returned the report twice)."""
    e, panel = _panel(world)
    for invitation, points in zip(panel.invitations, ([17] * 5, [18] * 5, [16] * 5)):
        _review(invitation, world, points, opinion="问题分析不够具体")
    assert panel.status == PanelStatus.DECIDED and not panel.passed
    db.session.commit()
    panel_id, staff_id, firm_user_id = panel.id, world.bz_staff.id, world.firm_user.id
    letter = panel.letter + "\n请于十五日内完成整改。"
    before = notifications("退回整改", firm_user_id)

    with app.app_context():  # request A has loaded the panel and its engagement …
        a_panel, a_user = db.session.get(ReviewPanel, panel_id), db.session.get(User, staff_id)
        assert a_panel.status == PanelStatus.DECIDED and a_panel.engagement.state.value == "report_in_review"
        # … when request B (the second click, another worker) sends the letter and commits
        in_context(app, lambda: R.send_letter(db.session.get(ReviewPanel, panel_id), db.session.get(User, staff_id), letter))
        try:
            R.send_letter(a_panel, a_user, letter)
            db.session.commit()
        except Conflict:
            db.session.rollback()
        finally:
            db.session.remove()

    returned = count(EngagementTransition, EngagementTransition.engagement_id == e.id,
                     EngagementTransition.action == "return_report")
    told = notifications("退回整改", firm_user_id) - before
    assert (returned, told) == (1, 1), f"the report was returned {returned} times for one letter; the firm was told {told} times"


def meanwhile(app, monkeypatch, module, name: str, other) -> list[threading.Thread]:
    """Replay the race: when request A reaches ``module.name`` (its check passed), request B (``other``, in its
    own thread, app context and session) starts, and A waits up to two seconds for it. Without a lock B
    commits first; with one, B waits on the lock A holds and goes on after A's commit. ``settle`` joins B
    (a refusal of B's is an answer, not an error)."""
    real, raced = getattr(module, name), []

    def hooked(*args, **kwargs):
        if not raced:
            raced.append(threading.Thread(target=done_or_refused, args=(app, other)))
            raced[0].start()
            raced[0].join(2.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, hooked)
    return raced


def done_or_refused(app, fn) -> None:
    """Request B: ``fn`` in its own app context, committed, or refused (409, or 422 when what it would record is
    already there) and rolled back."""
    try:
        in_context(app, fn)
    except (Conflict, ValidationFailed):
        pass


def settle(raced: list[threading.Thread]) -> None:
    for thread in raced:
        thread.join(30)
        assert not thread.is_alive(), "the second request hung"


# === procurement: one engagement, one procurement =================================================

def test_open_procurement_twice_at_once_opens_one_procurement(app, world):
    """Opening the procurement twice at once (a double click, two staff) opens one: the second is refused at the
    step's claim and its procurement rolls back with it (an engagement once got two procurements)."""
    from evalhub.procurement import services as P
    from evalhub.procurement.models import Engagement, Procurement, ProcurementMethod
    from tests import factories

    e = factories.engagement(world)
    db.session.commit()
    e_id, staff_id, firm_id = e.id, world.bz_staff.id, world.firm.id

    def data():
        return P.ProcurementInput(method=ProcurementMethod.SINGLE_SOURCE, title="", ceiling_price_wan="20",
                                  single_source_firm_id=firm_id,
                                  justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。")

    with app.app_context():  # request A has loaded the engagement (state planned) …
        a_e, a_user = db.session.get(Engagement, e_id), db.session.get(User, staff_id)
        assert a_e.state.value == "planned"
        # … when request B opens the procurement and commits
        in_context(app, lambda: P.open_procurement(db.session.get(Engagement, e_id), data(), db.session.get(User, staff_id)))
        try:
            P.open_procurement(a_e, data(), a_user)
            db.session.commit()
        except Conflict:
            db.session.rollback()
        finally:
            db.session.remove()

    opened = count(Procurement, Procurement.engagement_id == e_id)
    steps = count(EngagementTransition, EngagementTransition.engagement_id == e_id,
                  EngagementTransition.action == "start_procurement")
    assert (opened, steps) == (1, 1), f"{opened} procurements and {steps} 启动采购 steps for one engagement"


# === credit: the year's ratings published twice ===================================================

def test_publishing_the_credit_ratings_twice_at_once_tells_each_firm_once(app, world, monkeypatch):
    """Two presses of “公示” publish the year once and tell each firm once: publication takes the year's lock before
    it reads the drafts (both once read them and published twice)."""
    from evalhub.core.models import Bureau
    from evalhub.credit import services as C
    from tests.test_credit_supervision_services import _completed

    C.ensure_national_calendar()
    _completed(world)
    C.compute(world.bz, 2025, world.bz_admin)
    db.session.commit()
    bz_id, admin_id, firm_user_id = world.bz.id, world.bz_admin.id, world.firm_user.id
    raced = meanwhile(app, monkeypatch, C, "add_working_days",
                      lambda: C.publish(db.session.get(Bureau, bz_id), 2025, db.session.get(User, admin_id)))
    done_or_refused(app, lambda: C.publish(db.session.get(Bureau, bz_id), 2025, db.session.get(User, admin_id)))
    settle(raced)

    published = count(AuditEvent, AuditEvent.action == "credit.published")
    told = notifications("信用评价结果公示", firm_user_id)
    assert (published, told) == (1, 1), f"the year was published {published} times; the firm was told {told} times"


# === review: one submission, one panel draw ======================================================

def test_forming_the_panel_twice_at_once_announces_one_draw(app, world, monkeypatch):
    """Two presses announce one panel draw for a report version: form_panel takes the submission's lock before it
    looks for an announced draw (two draws, two commitments to choose between, were once possible)."""
    from evalhub.core.draws import Draw, DrawStatus
    from evalhub.procurement.models import Engagement
    from tests.test_review_services import _experts, _report_submitted

    e = _report_submitted(world)
    _experts(world, 5)
    db.session.commit()
    e_id, staff_id = e.id, world.bz_staff.id
    raced = meanwhile(app, monkeypatch, R, "panel_exclusions",
                      lambda: R.form_panel(db.session.get(Engagement, e_id), db.session.get(User, staff_id), size=3))
    done_or_refused(app, lambda: R.form_panel(db.session.get(Engagement, e_id), db.session.get(User, staff_id), size=3))
    settle(raced)

    announced = count(Draw, Draw.kind == "review_panel", Draw.status == DrawStatus.ANNOUNCED)
    assert announced == 1, f"{announced} panel draws announced for one report version"


# === procurement: framework rotation (顺序轮候) ===================================================

def test_two_rotation_procurements_at_once_serve_the_next_two_firms(app, world, monkeypatch):
    """Two engagements procured by rotation at the same moment are served by the next two firms: the agreement's
    turn is read under its lock (both once read position 1, so the first firm was served twice)."""
    from datetime import date

    from evalhub.procurement import services as P, workflow
    from evalhub.procurement.models import (
        Award, Engagement, FrameworkAgreement, FrameworkMember, ProcurementMethod,
    )
    from tests import factories

    firms = [factories.firm(world.bz, name=f"入围机构{i}") for i in range(1, 4)]
    agreement = FrameworkAgreement(bureau_id=world.bz.id, name="2025 年绩效评价框架协议", valid_from=date(2020, 1, 1),
                                   valid_until=date(2099, 12, 31),
                                   members=[FrameworkMember(firm_id=f.id, position=i) for i, f in enumerate(firms, 1)])
    db.session.add(agreement)
    one, two = factories.engagement(world), factories.engagement(world, unit="巴州民政局")
    db.session.commit()
    agreement_id, staff_id, one_id, two_id = agreement.id, world.bz_staff.id, one.id, two.id
    firm_ids = [f.id for f in firms]

    def open_(engagement_id):
        return P.open_procurement(db.session.get(Engagement, engagement_id), P.ProcurementInput(
            method=ProcurementMethod.FRAMEWORK_ROTATION, title="", ceiling_price_wan="10",
            framework_agreement_id=agreement_id), db.session.get(User, staff_id))

    # request A has read the agreement (next in line: position 1) when request B procures the other engagement
    raced = meanwhile(app, monkeypatch, workflow, "perform", lambda: open_(two_id))
    in_context(app, lambda: open_(one_id))
    settle(raced)

    db.session.rollback()
    awarded = dict(db.session.execute(sa.select(Award.engagement_id, Award.firm_id)
                                      .where(Award.engagement_id.in_([one_id, two_id]))).all())
    assert sorted(awarded.values()) == firm_ids[:2], (
        f"rotation served firm positions {[firm_ids.index(f) + 1 for f in awarded.values()]} (expected 1 and 2)")


# === review: an invitation expired by the job while the expert accepts ============================

def test_the_expiry_job_does_not_overwrite_an_acceptance_made_meanwhile(app, world, monkeypatch):
    """The expiry job does not overwrite an acceptance committed after it read the invitation: it moves the seat by
    compare-and-set and leaves an answered one (an accepted seat was once overwritten and redrawn)."""
    from evalhub.core.draws import Draw, DrawStatus
    from evalhub.core.timeutil import utcnow
    from evalhub.review.models import InvitationStatus, PanelInvitation
    from tests import factories
    from tests.test_review_services import _experts, _report_submitted

    e = _report_submitted(world)
    _experts(world, 6)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    late = panel.invitations[0]
    late.respond_by = utcnow() + timedelta(minutes=1)  # the expert answers in time; the job runs as if just after
    db.session.commit()
    late_id = late.id
    expert_user_id = db.session.execute(sa.select(User.id).where(User.expert_id == late.expert_id)).scalar_one()

    def accept():
        R.respond(db.session.get(PanelInvitation, late_id), db.session.get(User, expert_user_id), accept=True,
                  declaration_signed=True)

    # the hourly job has read the invitation as still invited when the expert's acceptance commits
    raced = meanwhile(app, monkeypatch, R, "_move", accept)  # between the job's read and its write
    in_context(app, lambda: R.expire_invitations(now=utcnow() + timedelta(minutes=2)))
    settle(raced)

    db.session.rollback()
    status = db.session.get(PanelInvitation, late_id).status
    redraws = count(Draw, Draw.kind == "review_replacement", Draw.status == DrawStatus.ANNOUNCED)
    assert (status, redraws) == (InvitationStatus.ACCEPTED, 0), (
        f"the accepted seat is now “{status.label}” and {redraws} replacement draw(s) were announced")


# === the state machine itself ====================================================================

def test_the_state_machine_moves_an_engagement_once_when_two_requests_read_it_at_once(app, world):
    """The state machine moves an engagement once: perform claims the step with UPDATE … WHERE state = <from>, so
    终止 pressed twice is one step and one event (the root of the doubled steps above)."""
    from evalhub.procurement import workflow
    from evalhub.procurement.models import Engagement
    from tests import factories

    e = factories.engagement(world)
    db.session.commit()
    e_id, admin_id = e.id, world.bz_admin.id
    with app.app_context():
        a_e, a_user = db.session.get(Engagement, e_id), db.session.get(User, admin_id)
        assert a_e.state.value == "planned"
        in_context(app, lambda: workflow.perform(db.session.get(Engagement, e_id), "cancel",
                                                 db.session.get(User, admin_id), note="计划调整，取消该评价对象"))
        try:
            workflow.perform(a_e, "cancel", a_user, note="计划调整，取消该评价对象")
            db.session.commit()
        except Conflict:
            db.session.rollback()
        finally:
            db.session.remove()

    steps = count(EngagementTransition, EngagementTransition.engagement_id == e_id, EngagementTransition.action == "cancel")
    events = count(AuditEvent, AuditEvent.action == "engagement.cancel", AuditEvent.object_id == e_id)
    assert (steps, events) == (1, 1), f"{steps} 终止 steps and {events} events for one engagement"


# === results: the unit answers the fact confirmation once =========================================

def test_the_fact_confirmation_is_answered_once_when_two_answers_cross(app, world):
    """The unit answers the fact confirmation once: two answers that both read the open row (two of its accounts,
    the form sent twice) — the second is refused by a compare-and-set, not written over the first."""
    from datetime import date

    from evalhub.core import files
    from evalhub.core.calendar import ensure_national_calendar
    from evalhub.results import services as S
    from evalhub.results.models import FactConfirmation
    from tests import factories

    ensure_national_calendar()
    e = factories.in_fieldwork(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    draft = files.Upload("报告初稿.docx", factories.docx_bytes("评价报告初稿\n存在的问题：资金支付滞后"))
    row = S.send_for_confirmation(e, world.firm_user, draft, today=date(2025, 9, 26))
    db.session.commit()
    row_id, unit_id, firm_user_id = row.id, unit.id, world.firm_user.id
    day = date(2025, 9, 29)
    before = notifications("被评价单位已答复征求意见", firm_user_id)

    with app.app_context():  # request A (“无异议”) has loaded the open row …
        a_row, a_user = db.session.get(FactConfirmation, row_id), db.session.get(User, unit_id)
        assert a_row.answered_at is None
        in_context(app, lambda: S.answer_confirmation(db.session.get(FactConfirmation, row_id),  # … B answers first
                                                      db.session.get(User, unit_id), "yes", "", today=day))
        try:
            S.answer_confirmation(a_row, a_user, "no", "资金到位率计算口径有误", today=day)
            db.session.commit()
        except Conflict:
            db.session.rollback()
        finally:
            db.session.remove()

    db.session.rollback()
    answered = db.session.get(FactConfirmation, row_id)
    told = notifications("被评价单位已答复征求意见", firm_user_id) - before
    assert (answered.agreed, told) == (True, 1), f"the first answer became agreed={answered.agreed}; the firm was told {told} times"


# === review: an expert's load cap across two panels drawn at the same time ========================

def test_two_panels_drawn_at_the_same_time_keep_each_expert_within_the_load_cap(world):
    """Two panels announced before either is revealed do not seat an expert past the load cap: the reveal asks the
    rules again of the drawn and draws replacements for those now at the cap (the same experts once sat on both)."""
    from evalhub.core.settings import set_setting
    from tests import factories
    from tests.test_review_services import _experts, _report_submitted

    set_setting(world.bz, "review.load_cap", 1, world.bz_admin)
    one = _report_submitted(world)
    two = _report_submitted(world, unit="巴州民政局")
    _experts(world, 3)
    world.expert.available = False  # the pool: exactly the three experts just added
    db.session.flush()
    first = R.form_panel(one, world.bz_staff, size=3)   # two staff form their panels at the same time:
    second = R.form_panel(two, world.bz_staff, size=3)  # both announced, then both witnessed and revealed
    factories.witnessed(first)
    factories.witnessed(second)
    db.session.commit()

    loads = R.open_review_loads(db.session.execute(sa.select(R.Expert.id)).scalars())
    assert max(loads.values()) <= 1, f"open reviews per expert {sorted(loads.values())} under a load cap of 1"


# === supervision: one campaign draw for a bureau's year ==========================================

def test_starting_the_campaign_twice_at_once_announces_one_draw(app, world, monkeypatch):
    """supervision.services.start_campaign refuses a second draw while one is announced for the bureau's year;
    it takes a lock before it looks, so two presses (or two staff) announce one draw, not two."""
    from evalhub.core import draws
    from evalhub.core.draws import Draw, DrawStatus
    from evalhub.core.models import Bureau
    from evalhub.supervision import services as V
    from tests.test_credit_supervision_services import _completed

    for unit in ("巴州统计局", "巴州民政局"):
        _completed(world, unit=unit)
    db.session.commit()
    bz_id, admin_id = world.bz.id, world.bz_admin.id

    def start():
        return V.start_campaign(db.session.get(Bureau, bz_id), 2025, db.session.get(User, admin_id), ratio=50)

    raced = meanwhile(app, monkeypatch, draws, "announce", start)  # after every check, before the write
    done_or_refused(app, start)
    settle(raced)
    assert count(Draw, Draw.kind == "inspection_sample", Draw.status == DrawStatus.ANNOUNCED) == 1
