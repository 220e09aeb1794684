"""Reviewer R1 (issue 14): ways around the new fairness rules, each a test that failed before its fix."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict
from evalhub.core.settings import set_setting
from evalhub.extensions import db
from evalhub.procurement import team
from evalhub.procurement.models import EngagementState
from evalhub.registry.models import PointKind, StaffPoint
from evalhub.registry.services import StaffInput, add_staff
from tests import factories


def _person(world, name):
    return add_staff(world.firm, StaffInput(name=name, id_number=factories.id_number(), role="评价人员",
                                            years_experience=8), world.firm_user)


def _points(staff):
    return [(p.kind, p.points, p.as_lead) for p in db.session.execute(
        sa.select(StaffPoint).where(StaffPoint.person_digest == staff.id_number_digest)).scalars()]


def test_the_lead_cannot_be_swapped_while_the_report_is_under_review_so_a_return_charges_who_wrote_it(world):
    """Hole: the firm submitted a weak report under lead A, then (during review) named a sacrificial B as lead
    with any reason; the returned report's points went to B, A's record stayed clean."""
    set_setting(world.bz, "people.points_report_returned", 4, world.bz_admin)
    e = factories.in_fieldwork(world, lead=False)
    author, scapegoat = _person(world, "甲主评"), _person(world, "乙替身")
    team.name_team(e, team.TeamInput(lead_staff_id=author.id), world.firm_user)
    factories.submit_report(e)
    assert e.state in (EngagementState.REPORT_SUBMITTED, EngagementState.REPORT_IN_REVIEW)
    with pytest.raises(Conflict):
        team.name_team(e, team.TeamInput(lead_staff_id=scapegoat.id, reason="原主评人调岗，改由乙主持"),
                       world.firm_user)
    panel = factories.own_panel(e)
    assert e.state == EngagementState.REPORT_IN_REVIEW
    with pytest.raises(Conflict):  # nor once the panel sits, before the letter
        team.name_team(e, team.TeamInput(lead_staff_id=scapegoat.id, reason="原主评人调岗，改由乙主持"),
                       world.firm_user)
    factories.review_panel(panel, "0.6", opinion="报告结构不完整，需补充分析")
    from evalhub.review import services as R

    R.send_letter(panel, world.bz_staff, panel.letter)
    assert _points(author) == [(PointKind.REPORT_RETURNED, 4, True)] and _points(scapegoat) == []
    # Returned: the firm may reorganise the team for the rework (with a reason, kept in the history).
    team.name_team(e, team.TeamInput(lead_staff_id=scapegoat.id, reason="原主评人调岗，改由乙主持整改"),
                   world.firm_user)
    assert team.lead(e) == scapegoat


def test_the_inspected_firm_cannot_read_its_inspectors_names_on_the_public_draw_page(world, client):
    """Hole: the inspection pages and API show the inspected firm only "财政检查人员" / "专家", yet once the
    campaign list was published anyone (the firm included, no login) read the drawn inspectors' names on
    /public/draws/<id> of the derived draws, linked from the public sample draw, while the inspection ran."""
    from evalhub.core import draws
    from evalhub.core.models import Draw
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CampaignStatus
    from tests.test_credit_supervision_services import _completed

    _completed(world)
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    V.publish_campaign_list(campaign, world.bz_staff)
    db.session.commit()
    sample = db.session.get(Draw, campaign.engagement_draw_id)
    inspector_draws = [db.session.get(Draw, i.draw_id) for x in campaign.inspections for i in x.inspectors]
    assert client.get(f"/public/draws/{sample.id}").status_code == 200  # the sample itself is public
    for record in inspector_draws:
        name = record.candidate_names[str(record.result_ids[0])]
        page = client.get(f"/public/draws/{record.id}")
        assert page.status_code == 404 and name not in page.get_data(as_text=True)
        assert not draws.is_public(record)
    # Once the results are public (every inspection closed), who inspected may be checked by anyone.
    campaign.status = CampaignStatus.RESULTS_PUBLISHED  # fixture shortcut: closing the cases has its own tests
    db.session.commit()
    assert all(draws.is_public(r) for r in inspector_draws)
    assert client.get(f"/public/draws/{inspector_draws[0].id}").status_code == 200


def test_a_lead_swapped_after_a_case_opened_does_not_take_the_findings_points(world):
    """Hole: the firm, told of a targeted case on its engagement, named a scapegoat lead (any reason will do)
    before the finding was recorded; the finding's points went to the scapegoat, not to who did the work."""
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    e = factories.contracted(world)
    author, scapegoat = _person(world, "甲主评"), _person(world, "乙替身")
    team.name_team(e, team.TeamInput(lead_staff_id=author.id), world.firm_user)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索：底稿不全", engagement=e)
    team.name_team(e, team.TeamInput(lead_staff_id=scapegoat.id, reason="原主评人调岗，改由乙主持"), world.firm_user)
    V.add_finding(case, world.bz_staff, severity=Severity.SERIOUS, description="工作底稿缺少访谈记录")
    assert _points(author) == [(PointKind.FINDING_SERIOUS, 10, True)] and _points(scapegoat) == []


def test_a_firm_that_never_names_a_lead_cannot_escape_points_by_submitting_without_one(world):
    """Hole: points go to the named team only, and nothing required one, so a firm that never named a 主评人
    handed in reports whose return (or a finding) charged nobody. Now the report step needs a named lead, and
    the refusal comes before anything is stored."""
    from evalhub.core.models import StoredFile
    from evalhub.review.models import Submission

    e = factories.in_fieldwork(world, lead=False)
    files_before = db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one()
    reports_before = db.session.execute(sa.select(sa.func.count(Submission.id))).scalar_one()
    with pytest.raises(Conflict, match="尚未指定主评人"):
        factories.submit_report(e, lead=False)
    assert e.state == EngagementState.FIELDWORK
    assert db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one() == files_before
    assert db.session.execute(sa.select(sa.func.count(Submission.id))).scalar_one() == reports_before
    lead = factories.name_lead(e)
    factories.submit_report(e)
    assert e.state == EngagementState.REPORT_SUBMITTED and team.lead(e) == lead


def test_a_bid_cannot_propose_a_person_over_the_points_limit(world):
    """Hole: the limit held when the firm named its team after the award, but a bid could still win on a
    项目负责人 who could never be named — the bid's promised team must be nameable too."""
    from datetime import timedelta

    from evalhub.core.errors import ValidationFailed
    from evalhub.core.timeutil import utcnow
    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementMethod
    from evalhub.registry import people

    _firm, user, staff = factories.bidder(world, "记分测试机构")
    people.add_points(staff, PointKind.FINDING_SERIOUS, bureau=world.bz, source_type="test", source_id=1,
                      note="检查发现重大问题", actor=world.bz_staff, as_lead=True)
    people.add_points(staff, PointKind.FINDING_SERIOUS, bureau=world.bz, source_type="test", source_id=2,
                      note="检查发现重大问题", actor=world.bz_staff, as_lead=True)
    assert people.naming_block(staff, world.bz)  # 2 × 10 points: at the limit of 20
    p = factories.witnessed(P.open_procurement(factories.engagement(world), P.ProcurementInput(
        method=ProcurementMethod.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
        bid_deadline=utcnow() + timedelta(days=10)), world.bz_staff))
    with pytest.raises(ValidationFailed) as refused:
        factories.bid(p, user, staff, "40")
    assert "不得被指定为主评人" in refused.value.fields["lead_staff_id"]
    assert not p.bids
    other = _person_of(_firm, user, "丁在岗")
    bid = P.submit_bid(p, P.BidInput(price_wan="40", team_staff_ids=[other.id], lead_staff_id=other.id,
                                     technical_filename="方案.docx", technical_data=factories.docx_bytes("方案")), user)
    assert [m.staff_id for m in bid.team] == [other.id]


def _person_of(firm, user, name):
    return add_staff(firm, StaffInput(name=name, id_number=factories.id_number(), role="评价人员", years_experience=8),
                     user)


def test_a_case_opened_on_a_stale_complaint_does_not_overwrite_another_officers_decline(world):
    """Hole: open_case checked the complaint's status as loaded and then wrote "已立案" over it, so an officer
    who declined it meanwhile (another worker, another tab) was silently overruled: the complainant's lookup
    said 已立案 beside a 不予立案 reason, and the inspection stood."""
    from evalhub.core.errors import Conflict
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Complaint, ComplaintStatus, Inspection, Trigger
    from tests.test_supervision_fairness import _complaint

    complaint, _ = _complaint(world)
    # Another officer declines it in their own request: this session still holds it as "received".
    db.session.execute(sa.update(Complaint).where(Complaint.id == complaint.id).values(
        status=ComplaintStatus.DECLINED, decision_reason="投诉事项不属于本局受理范围，已告知向有关部门反映。")
        .execution_options(synchronize_session=False))
    db.session.commit()
    from sqlalchemy.orm.attributes import set_committed_value

    set_committed_value(complaint, "status", ComplaintStatus.RECEIVED)  # as this request loaded it, before
    assert complaint.status == ComplaintStatus.RECEIVED
    with pytest.raises(Conflict):
        V.open_case(world.bz, world.bz_staff, trigger=Trigger.COMPLAINT, detail="投诉线索", complaint=complaint)
    db.session.rollback()
    assert db.session.get(Complaint, complaint.id).status == ComplaintStatus.DECLINED
    assert db.session.execute(sa.select(sa.func.count(Inspection.id))).scalar_one() == 0


def test_a_second_case_on_the_same_complaint_is_refused_so_a_double_click_opens_one(world):
    """Hole: "立案" checked the complaint's status in the view and then wrote; two requests (a double click, two
    officers) both passed the check and opened two cases. The compare-and-set now moves only from 已受理."""
    from evalhub.core.errors import Conflict
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Complaint, ComplaintStatus, Inspection, Trigger
    from sqlalchemy.orm.attributes import set_committed_value
    from tests.test_supervision_fairness import _complaint

    complaint, _ = _complaint(world)
    V.open_case(world.bz, world.bz_staff, trigger=Trigger.COMPLAINT, detail="投诉线索", complaint=complaint)
    db.session.commit()
    set_committed_value(complaint, "status", ComplaintStatus.RECEIVED)  # the second request loaded it before
    with pytest.raises(Conflict, match="已立案"):
        V.open_case(world.bz, world.bz_staff, trigger=Trigger.COMPLAINT, detail="投诉线索", complaint=complaint)
    db.session.rollback()
    assert db.session.get(Complaint, complaint.id).status == ComplaintStatus.CASE_OPENED
    assert db.session.execute(sa.select(sa.func.count(Inspection.id))).scalar_one() == 1
