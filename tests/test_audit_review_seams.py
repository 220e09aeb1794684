"""Reviewer's findings on today's diff (uncommitted): each test fails on HEAD for the defect it names."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import OperationalError

from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import User
from evalhub.core.personal import id_number_digest
from evalhub.extensions import db
from tests import factories
from tests.test_races import in_context, postgresql_only
from tests.test_races_more import count, done_or_refused, settle


@postgresql_only
def test_a_person_added_to_an_application_while_it_is_admitted_is_not_on_two_library_rosters(app, world, monkeypatch):
    """Rule (docs/rules.md, 3840836: "only a library firm's roster holds a person off another library firm's; an
    application's roster ... is checked at admission"; 92cbe9f: "one person on two rosters ... each now waits for the
    other"). Defect: add_staff takes only the person's lock and reads the firm's status unlocked; admission takes the
    firm's lock and the locks of the people *already* on its roster. A person added to the application while the
    bureau admits it is checked against an application's roster (nobody held off), the admission never saw them:
    both commit and the person practises on two library firms at once."""
    from evalhub.registry import services as registry
    from evalhub.registry.models import Firm, FirmStaff, FirmStatus

    number = factories.id_number()
    registry.add_staff(world.firm, registry.StaffInput(name="王双册", id_number=number, role="项目负责人",
                                                       years_experience=8), world.firm_user)
    applicant, applicant_user = registry.register_firm_application(
        factories.firm_input(name="双册竞态咨询有限公司"), world.bz, username="dualroster", password="Long-enough-1",
        display_name="申请人", address="203.0.113.77")
    for kind, filename, data in factories.admission_papers():
        registry.attach_firm_document(applicant, kind, filename, data, world.bz_staff)
    db.session.commit()
    applicant_id, applicant_user_id, admin_id = applicant.id, applicant_user.id, world.bz_admin.id

    def add_to_application():
        registry.add_staff(db.session.get(Firm, applicant_id), registry.StaffInput(
            name="王双册", id_number=number, role="项目负责人", years_experience=8),
            db.session.get(User, applicant_user_id))

    real, raced = registry._roster_errors, []

    def hooked(firm, errors):  # admission (A) has read its roster when the applicant (B) adds the person
        real(firm, errors)
        if not raced:
            raced.append(threading.Thread(target=done_or_refused, args=(app, add_to_application)))
            raced[0].start()
            raced[0].join(2.0)

    monkeypatch.setattr(registry, "_roster_errors", hooked)
    with app.app_context():
        try:
            registry.change_firm_status(db.session.get(Firm, applicant_id), "admit", db.session.get(User, admin_id),
                                        reason="材料齐全")
            db.session.commit()
        except (Conflict, ValidationFailed):
            db.session.rollback()
        finally:
            db.session.remove()
    settle(raced)

    on_library_rosters = count(FirmStaff, FirmStaff.id_number_digest == id_number_digest(number),
                               FirmStaff.active.is_(True),
                               FirmStaff.firm_id.in_(db.session.query(Firm.id).filter(
                                   Firm.status.in_([FirmStatus.ADMITTED, FirmStatus.SUSPENDED]))))
    assert on_library_rosters == 1, f"one person is active on {on_library_rosters} library firms' rosters"


def test_the_api_list_of_a_firms_people_reads_the_readers_limit_as_the_person_record_does(world, client):
    """Rule (64b6f07, docs/rules.md People: a person's record and the firm page's people card use the reading bureau's
    limit — the block it will meet when it names the person). Defect (merge seam): GET /staff/<id>/record (team_api
    get_person_record) and the web pages were moved to people.reading_settings, GET /firms/<id>/people still calls
    people.firm_records(firm) with the library bureau's settings: 轮台县 (limit 10) reads the same person 受限 in
    one answer and 警示/正常 in the other."""
    from evalhub.core.settings import set_setting
    from evalhub.registry import people
    from evalhub.registry.models import PointKind

    firm, _user, staff = factories.bidder(world, "某评价咨询有限公司")
    set_setting(world.lt, "people.points_threshold", 10, world.lt_admin)
    people.add_points(staff, PointKind.FINDING_SERIOUS, bureau=world.bz, source_type="inspection_finding",
                      source_id=1, note="工作底稿缺少抽样记录", actor=world.bz_staff)
    db.session.commit()
    token = client.post("/api/v1/tokens", json={"username": world.lt_staff.username, "password": factories.PASSWORD})
    assert token.status_code == 201, token.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {token.json['token']}"}
    one = client.get(f"/api/v1/staff/{staff.id}/record", headers=headers)
    listed = client.get(f"/api/v1/firms/{firm.id}/people", headers=headers)
    assert one.status_code == 200 and listed.status_code == 200, (one.get_data(as_text=True), listed.get_data(as_text=True))
    in_list = next(p for p in listed.json["people"] if p["staff_id"] == staff.id)
    assert in_list["standing"] == one.json["standing"], (in_list["standing"], one.json["standing"])


@postgresql_only
@pytest.mark.parametrize("pool_left", [True, False], ids=["refilled", "nobody-left"])
def test_a_seat_released_while_the_procurement_is_awarded_does_not_change_an_awarded_committee(app, world, monkeypatch,
                                                                                               pool_left):
    """Rule (e73c5ac, 87号令 第五十条: a seat is released and refilled only while the procurement is evaluating;
    architecture: "A step checked against a row's state takes the row's lock first"). Defect (merge seam): the award
    takes the procurement's row lock (procurement.services._lock in 92cbe9f, now lock_procurement), the seat release takes another lock,
    _hold_committee's named lock (e73c5ac). An expert suspended while the bureau awards: the release still reads the
    procurement as 评审中, deletes the member's scores and seats a replacement, the award commits on the scores it
    read and its notice names a member who no longer sits. When a replacement is drawn, the release (holding the audit
    chain since its first audit record) inserts the new member, whose foreign key waits on the award's row lock,
    while the award waits on the chain: PostgreSQL aborts one of them in a deadlock (a 409 to an officer)."""
    from decimal import Decimal as D

    from evalhub.core.models import AuditEvent
    from evalhub.procurement import services as P
    from evalhub.procurement.models import BidStatus, Procurement, ProcurementStatus
    from evalhub.registry import services as registry
    from evalhub.registry.models import Expert
    from tests.test_audit_registry import _opened

    p = _opened(world, "定标竞态机构")
    for i in range(5):
        factories.expert(world.bz, name=f"定标评委{i}", employer=f"新疆某定标大学{i}")
    factories.witnessed(P.draw_committee(p, 3, world.bz_staff))
    db.session.flush()
    factories.committee_clears_flags(p, world.bz_staff)
    for n, member in enumerate(p.committee):
        P.record_technical_scores(p, member, {
            b.id: {i.id: D(90 - 10 * k) * i.max_points / 100 for i in p.rubric}
            for k, b in enumerate(x for x in p.bids if x.status == BidStatus.SUBMITTED)}, world.bz_staff)
    db.session.commit()
    p_id, staff_id, admin_id = p.id, world.bz_staff.id, world.bz_admin.id
    leaving = p.committee[0].expert_id

    def suspend():
        registry.change_expert_status(db.session.get(Expert, leaving), "suspend", "收受财物",
                                      db.session.get(User, admin_id))

    real, raced = P._create_award, []

    def hooked(*args, **kwargs):  # the award (A) has ranked the bids on the committee's scores …
        if not raced:  # … when another officer (B) suspends a member
            raced.append(threading.Thread(target=done_or_refused, args=(app, suspend)))
            raced[0].start()
            raced[0].join(2.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "_create_award", hooked)
    if not pool_left:  # nobody left to draw: the committee stays short
        from evalhub.core import draws
        from evalhub.core.errors import DomainError

        def no_one(*args, **kwargs):
            raise DomainError("可抽取的专家不足")
        monkeypatch.setattr(draws, "derive", no_one)
    deadlocked = []
    with app.app_context():
        try:
            factories.witnessed(P.award_procurement(db.session.get(Procurement, p_id), db.session.get(User, staff_id),
                                                    "综合得分第一"))
            db.session.commit()
        except Conflict:
            db.session.rollback()
        except OperationalError as exc:
            deadlocked.append(str(exc.orig).splitlines()[0])
            db.session.rollback()
        finally:
            db.session.remove()
    settle(raced)

    assert not deadlocked, f"the award was aborted by PostgreSQL: {deadlocked}"
    db.session.rollback()
    p = db.session.get(Procurement, p_id)
    released = count(AuditEvent, AuditEvent.action == "procurement.committee_released")
    assert not (p.status == ProcurementStatus.AWARDED and released), (
        f"awarded on the old committee's scores, and the seat of expert #{leaving} released after (refilled if anyone was left): "
        f"committee now {[m.name for m in p.committee]}; notice: {p.award.notice if p.award else None}")
