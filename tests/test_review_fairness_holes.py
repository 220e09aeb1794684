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
    V.add_finding(case, factories.recorder(case), severity=Severity.SERIOUS, description="工作底稿缺少访谈记录")
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
        bid_deadline=factories.bid_deadline(world.bz, 10)), world.bz_staff))
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


def _counts():
    from evalhub.core.models import StoredFile
    from evalhub.review.models import Submission

    return tuple(db.session.execute(sa.select(sa.func.count(model.id))).scalar_one()
                 for model in (StoredFile, Submission))


def _refused_until_renamed(world, e, departed: str, stays, reason: str) -> None:
    """The report under a departed lead is refused with nothing stored and the state unchanged; named anew, it goes."""
    state, before = e.state, _counts()
    with pytest.raises(Conflict, match=f"{departed}已不在本机构名册"):
        factories.submit_report(e, lead=False)
    assert e.state == state and _counts() == before
    team.name_team(e, team.TeamInput(lead_staff_id=stays.id, reason=reason), world.firm_user)
    factories.submit_report(e, lead=False)
    assert e.state == EngagementState.REPORT_SUBMITTED and team.lead(e) == stays


def test_a_report_is_not_handed_in_under_a_lead_who_has_left_the_roster(world):
    """Hole: ``lead_named`` asked only that a lead row existed. The firm named A, took A off its roster (离岗, or A
    went to another firm) and handed in the report — and after a return, the rework — under the name of someone
    no longer on its roster. Now the lead must still be on the firm's roster when a report is handed in."""
    from evalhub.registry.services import deactivate_staff
    from evalhub.review import services as R

    e = factories.in_fieldwork(world, lead=False)
    number = factories.id_number()
    departed = add_staff(world.firm, StaffInput(name="甲离岗", id_number=number, role="项目负责人", years_experience=9),
                         world.firm_user)
    stays = _person(world, "乙在岗")
    team.name_team(e, team.TeamInput(lead_staff_id=departed.id, member_staff_ids=[stays.id]), world.firm_user)
    deactivate_staff(departed, world.firm_user, "离职")
    add_staff(world.other_firm, StaffInput(name="甲离岗", id_number=number, role="项目负责人", years_experience=9),
              world.other_firm_user)  # and is now on another firm's roster
    _refused_until_renamed(world, e, "甲离岗", stays, "原主评人离职，改由乙主持")
    # Returned: the firm swaps in C for the rework, then takes C off the roster before handing it in.
    panel = factories.own_panel(e)
    factories.review_panel(panel, "0.6", opinion="报告结构不完整，需补充分析")
    R.send_letter(panel, world.bz_staff, panel.letter)
    assert e.state == EngagementState.REPORT_RETURNED
    rework = _person(world, "丙整改")
    team.name_team(e, team.TeamInput(lead_staff_id=rework.id, reason="改由丙主持整改"), world.firm_user)
    deactivate_staff(rework, world.firm_user, "离职")
    _refused_until_renamed(world, e, "丙整改", stays, "丙离职，仍由乙主持")


def test_the_departed_lead_refusal_is_a_409_in_chinese_on_the_web_and_the_api_with_nothing_stored(world, client,
                                                                                                   login, auth):
    """Hole (the web and API side of the one above): both upload paths took the report under a departed lead."""
    from evalhub.registry.services import deactivate_staff
    from tests.test_review_api import _report_form, _upload
    from tests.test_review_views import report_data

    e = factories.in_fieldwork(world, lead=False)
    departed = _person(world, "甲离岗")
    team.name_team(e, team.TeamInput(lead_staff_id=departed.id), world.firm_user)
    deactivate_staff(departed, world.firm_user, "离职")
    db.session.commit()
    before = _counts()
    api = _upload(client, e.id, auth("firm1"), _report_form())
    assert api.status_code == 409 and "甲离岗已不在本机构名册" in api.json["error"]["message"]
    transition = client.post(f"/api/v1/engagements/{e.id}/transitions", json={"action": "submit_report"},
                             headers=auth("firm1"))
    assert transition.status_code == 409
    web = login(world.firm_user).post(f"/engagements/{e.id}/submissions/new?kind=report", data=report_data(),
                                      content_type="multipart/form-data")
    assert web.status_code == 409 and "甲离岗已不在本机构名册" in web.get_data(as_text=True)
    db.session.rollback()
    assert _counts() == before
    assert db.session.get(type(e), e.id).state == EngagementState.FIELDWORK


@pytest.mark.parametrize("value", ["²", "³⁴"])
def test_a_crafted_staff_id_on_the_team_form_or_api_is_a_422_not_a_500(world, login, client, auth, value):
    """Hole: the team's id parser took any Unicode digit ("²".isdigit() is True) and then int() failed: a crafted
    post to /engagements/<id>/team or its API answered 500 instead of saying which field is wrong."""
    e = factories.contracted(world)
    person = _person(world, "甲主评")
    db.session.commit()
    page = login(world.firm_user)
    web = page.post(f"/engagements/{e.id}/team", data={"lead_staff_id": value})
    assert web.status_code == 422 and "请从本机构名册中选择主评人" in web.get_data(as_text=True)
    web = page.post(f"/engagements/{e.id}/team", data={"lead_staff_id": str(person.id), "member_staff_ids": [value]})
    assert web.status_code == 422 and "团队成员应为本机构名册中的人员" in web.get_data(as_text=True)
    url = f"/api/v1/engagements/{e.id}/team"
    api = client.post(url, json={"lead_staff_id": value}, headers=auth("firm1"))
    assert api.status_code == 422, api.get_data(as_text=True)
    api = client.post(url, json={"lead_staff_id": person.id, "member_staff_ids": [value]}, headers=auth("firm1"))
    assert api.status_code == 422, api.get_data(as_text=True)
    db.session.rollback()
    assert team.members(e) == []


def test_after_the_last_round_the_team_cannot_be_swapped_so_a_later_finding_charges_who_wrote_the_report(world,
                                                                                                          login):
    """Hole: a report returned with no round left is not handed in again (the bureau accepts it with a deduction
    or ends the engagement), yet the firm could still swap its lead in that state, with any reason. The swapped-in
    person wrote nothing, and an inspection of the accepted report charged them, not the author."""
    from evalhub.review import services as R
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    set_setting(world.bz, "review.max_rounds", 1, world.bz_admin)
    e = factories.in_fieldwork(world, lead=False)
    author, scapegoat = _person(world, "甲主评"), _person(world, "乙替身")
    team.name_team(e, team.TeamInput(lead_staff_id=author.id), world.firm_user)
    factories.submit_report(e)
    panel = factories.own_panel(e)
    factories.review_panel(panel, "0.6", opinion="报告结构不完整，需补充分析")
    R.send_letter(panel, world.bz_staff, panel.letter)
    assert e.state == EngagementState.REPORT_RETURNED and R.rounds_exhausted(e)
    with pytest.raises(Conflict, match="整改轮次已用完"):
        team.name_team(e, team.TeamInput(lead_staff_id=scapegoat.id, reason="原主评人调岗，改由乙负责"),
                       world.firm_user)
    assert team.lead(e) == author
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索：底稿不全", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.SERIOUS, description="工作底稿缺少访谈记录")
    assert _points(scapegoat) == []
    assert (PointKind.FINDING_SERIOUS, 10, True) in _points(author)
    db.session.commit()
    browser = login(world.firm_user)  # the page offers no form to refuse; a crafted post is a 409 in Chinese
    page = browser.get(f"/engagements/{e.id}/team").get_data(as_text=True)
    assert "主评人和团队不能再变更" in page and 'name="lead_staff_id"' not in page
    refused = browser.post(f"/engagements/{e.id}/team", data={"lead_staff_id": str(scapegoat.id), "reason": "改由乙负责"})
    assert refused.status_code == 409 and "整改轮次已用完" in refused.get_data(as_text=True)
    db.session.rollback()
    assert team.lead(e) == author
