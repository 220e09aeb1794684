"""Issue 14: lead evaluators (主评人) carry their own record. Returned reports and inspection findings add
points (失信记分) to the people responsible by the bureau's table (registry/people.py); a person who reached
the limit in the region cannot be named on an engagement anywhere in that region, nor swapped in later; the
firm page and the person's page show the record, on the web and the API."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core.enums import BureauLevel, Role
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import BudgetUnit, Notification
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.procurement import team
from evalhub.registry import people
from evalhub.registry.models import PointKind, StaffPoint
from evalhub.registry.services import StaffInput, add_staff, deactivate_staff
from evalhub.supervision import services as V
from evalhub.supervision.models import Severity, Trigger
from tests import factories
from tests.kept_states import kept


def person(firm, user, name: str, id_number: str | None = None):
    return add_staff(firm, StaffInput(name=name, id_number=id_number or factories.id_number(), role="评价人员",
                                      years_experience=8), user)


@pytest.fixture()
@kept
def crew(world):
    """world.firm's lead 张主评 and member 李评价 named on a contracted 巴州 engagement."""
    lead = person(world.firm, world.firm_user, "张主评")
    member = person(world.firm, world.firm_user, "李评价")
    e = factories.contracted(world)
    team.name_team(e, team.TeamInput(lead_staff_id=lead.id, member_staff_ids=[member.id]), world.firm_user)
    db.session.commit()
    return e, lead, member


_LEADS = itertools.count(1)


def finding(world, e, severity: Severity, bureau=None, staff=None):
    # a case of its own each time: a lead of its own (the same lead entered twice is one case)
    case = V.open_case(bureau or world.bz, staff or world.bz_staff, trigger=Trigger.OTHER,
                       detail=f"线索：底稿不全（{next(_LEADS)}）", engagement=e)
    return V.add_finding(case, factories.recorder(case), severity=severity, description="工作底稿缺少访谈记录")


def points_of(staff) -> list[tuple[PointKind, int, bool]]:
    return [(p.kind, p.points, p.as_lead) for p in db.session.execute(
        sa.select(StaffPoint).where(StaffPoint.person_digest == staff.id_number_digest).order_by(StaffPoint.id)).scalars()]


# --- points from the deciding services, by the bureau's table -------------------------------------------

def test_a_finding_adds_the_tables_points_to_the_lead_and_tells_the_firm(world, crew):
    e, lead, member = crew
    f = finding(world, e, Severity.SERIOUS)
    assert points_of(lead) == [(PointKind.FINDING_SERIOUS, 10, True)] and points_of(member) == []
    point = db.session.execute(sa.select(StaffPoint)).scalar_one()
    assert point.source_type == "finding" and point.source_id == f.id and point.reference == e.reference
    assert point.bureau_id == world.bz.id and point.firm_id == world.firm.id
    told = db.session.execute(sa.select(Notification).where(Notification.title == "张主评 记分 10 分")).scalars().all()
    assert {n.user_id for n in told} == {world.firm_user.id} and "警示" in told[0].body
    # The same source charges once, whoever calls again.
    assert team.charge(e, PointKind.FINDING_SERIOUS, bureau=world.bz, source_type="finding", source_id=f.id,
                       note="重复", actor=world.bz_staff) == []


def test_the_bureaus_table_decides_the_points_and_who_is_charged(world, crew):
    e, lead, member = crew
    set_setting(world.bz, "people.points_finding_general", 5, world.bz_admin)
    set_setting(world.bz, "people.points_to", "team", world.bz_admin)
    set_setting(world.bz, "people.points_finding_minor", 0, world.bz_admin)
    finding(world, e, Severity.GENERAL)
    finding(world, e, Severity.MINOR)  # 0 points in this bureau's table: nothing recorded
    assert points_of(lead) == [(PointKind.FINDING_GENERAL, 5, True)]
    assert points_of(member) == [(PointKind.FINDING_GENERAL, 5, False)]


def test_a_finding_on_an_engagement_without_a_named_team_charges_nobody(world):
    e = factories.contracted(world)
    finding(world, e, Severity.SERIOUS)
    assert db.session.execute(sa.select(sa.func.count(StaffPoint.id))).scalar_one() == 0


def test_a_returned_report_adds_points_to_the_lead(world):
    set_setting(world.bz, "people.points_report_returned", 4, world.bz_admin)
    e = factories.in_fieldwork(world, lead=False)
    lead = person(world.firm, world.firm_user, "王主评")
    team.name_team(e, team.TeamInput(lead_staff_id=lead.id), world.firm_user)
    factories.submit_report(e)
    panel = factories.own_panel(e)
    factories.review_panel(panel, "0.6", opinion="报告结构不完整，需补充分析")
    assert panel.passed is False and points_of(lead) == []  # decided, not yet returned: nothing yet
    from evalhub.review import services as R

    R.send_letter(panel, world.bz_staff, panel.letter)
    assert points_of(lead) == [(PointKind.REPORT_RETURNED, 4, True)]
    point = db.session.execute(sa.select(StaffPoint)).scalar_one()
    assert point.source_type == "review_panel" and point.source_id == panel.id and "退回整改" in point.note


# --- the limit: anywhere in the region, never in another ---------------------------------------------

def test_over_the_limit_a_person_cannot_be_named_anywhere_in_the_region(world, crew):
    e, lead, member = crew
    finding(world, e, Severity.INTENTIONAL)  # 20 at once: the limit
    assert people.standing(lead, world.bz).blocked
    # Another bureau of the same region (轮台县, below 巴州) using the same library: refused, with the reason.
    county = factories.contracted(world, bureau_key="lt", unit="轮台县医疗保障局")
    with pytest.raises(ValidationFailed) as refused:
        team.name_team(county, team.TeamInput(lead_staff_id=lead.id), world.firm_user)
    message = refused.value.fields["lead_staff_id"]
    assert "张主评" in message and "累计记分 20 分" in message and "限制分数 20 分" in message
    assert (beijing_today() + timedelta(days=365)).isoformat() in message
    # Not as a team member either; someone else may be named.
    with pytest.raises(ValidationFailed) as as_member:
        team.name_team(county, team.TeamInput(lead_staff_id=member.id, member_staff_ids=[lead.id]), world.firm_user)
    assert "张主评" in as_member.value.fields["member_staff_ids"]
    team.name_team(county, team.TeamInput(lead_staff_id=member.id), world.firm_user)
    # A sibling prefecture (克州): the person moved to a 克州 firm carries the record there.
    deactivate_staff(lead, world.firm_user, "离职")
    moved = person(world.other_firm, world.other_firm_user, "张主评", id_number=None)
    moved.id_number_digest = lead.id_number_digest  # the same identity number (keyed hash) on the new roster
    kz_work = factories.contracted(world, bureau_key="kz", unit="克州农业农村局", firm=world.other_firm)
    with pytest.raises(ValidationFailed):
        team.name_team(kz_work, team.TeamInput(lead_staff_id=moved.id), world.other_firm_user)


def test_points_of_another_region_do_not_count(world, crew):
    e, lead, _ = crew
    finding(world, e, Severity.INTENTIONAL)
    xz = factories.bureau("540000", "西藏自治区财政厅", "西藏", BureauLevel.REGION)
    lasa = factories.bureau("540100", "拉萨市财政局", "拉萨市", BureauLevel.PREFECTURE, xz)
    assert people.naming_block(lead, world.kz) is not None and people.naming_block(lead, world.lt) is not None
    assert people.naming_block(lead, lasa) is None and people.standing(lead, lasa).total == 0
    # A 拉萨 engagement of a 拉萨 firm: the same person, moved there, may be named.
    world.lasa, world.lasa_admin = lasa, factories.user("lasa.admin", Role.BUREAU_ADMIN, bureau_id=lasa.id)
    world.lasa_staff = factories.user("lasa.staff", Role.BUREAU_STAFF, bureau_id=lasa.id)
    world.units["拉萨市统计局"] = BudgetUnit(bureau_id=lasa.id, name="拉萨市统计局")
    db.session.add(world.units["拉萨市统计局"])
    firm = factories.firm(lasa, name="拉萨评价咨询有限公司")
    firm_user = factories.user("lasa.firm", Role.FIRM_USER, firm_id=firm.id)
    deactivate_staff(lead, world.firm_user, "离职")
    moved = person(firm, firm_user, "张主评")
    moved.id_number_digest = lead.id_number_digest
    work = factories.contracted(world, bureau_key="lasa", unit="拉萨市统计局", firm=firm)
    assert team.name_team(work, team.TeamInput(lead_staff_id=moved.id), firm_user)[0].staff_id == moved.id


def test_nobody_over_the_limit_is_swapped_in_later_but_those_on_the_team_stay(world, crew):
    e, lead, member = crew
    newcomer = person(world.firm, world.firm_user, "赵新人")
    other = factories.contracted(world)
    team.name_team(other, team.TeamInput(lead_staff_id=newcomer.id), world.firm_user)
    finding(world, other, Severity.INTENTIONAL)  # 赵新人 reaches the limit on another engagement
    with pytest.raises(ValidationFailed) as refused:
        team.name_team(e, team.TeamInput(lead_staff_id=lead.id, member_staff_ids=[member.id, newcomer.id],
                                         reason="补充人员"), world.firm_user)
    assert "赵新人" in refused.value.fields["member_staff_ids"]
    # 张主评 reaches the limit while leading: stays on, and the team may still change around them.
    finding(world, e, Severity.INTENTIONAL)
    kept = team.name_team(e, team.TeamInput(lead_staff_id=lead.id, reason="李评价调离"), world.firm_user)
    assert [m.staff_id for m in kept] == [lead.id]
    # ...but demoted and promoted again is "named as lead" anew: refused.
    team.name_team(e, team.TeamInput(lead_staff_id=member.id, member_staff_ids=[lead.id], reason="调整"), world.firm_user)
    with pytest.raises(ValidationFailed):
        team.name_team(e, team.TeamInput(lead_staff_id=lead.id, member_staff_ids=[member.id], reason="换回"),
                       world.firm_user)


def test_points_leave_the_rolling_window_and_the_threshold_is_a_setting(world, crew):
    e, lead, _ = crew
    today = beijing_today()
    for days_ago, source in ((400, 1), (200, 2)):  # one outside the 365-day window, one inside
        people.add_points(lead, PointKind.FINDING_SERIOUS, bureau=world.bz, source_type="test", source_id=source,
                          note="测试", actor=None, on=today - timedelta(days=days_ago))
    result = people.standing(lead, world.bz)
    assert result.total == 10 and result.status == "警示" and not result.blocked
    set_setting(world.bz, "people.points_threshold", 10, world.bz_admin)
    blocked = people.standing(lead, world.bz)
    assert blocked.blocked and blocked.blocked_until == today - timedelta(days=200) + timedelta(days=365)
    set_setting(world.bz, "people.points_window_days", 500, world.bz_admin)
    assert people.standing(lead, world.bz).total == 20


# --- the record: firm page, person page, API ---------------------------------------------------------

def test_the_firm_page_and_the_persons_page_show_the_record(world, crew, login):
    e, lead, member = crew
    finding(world, e, Severity.SERIOUS)
    db.session.commit()
    for user in (world.firm_user, world.bz_staff, world.region_admin):
        firm_page = login(user).get(f"/firms/{world.firm.id}").get_data(as_text=True)
        assert 'data-testid="people-records"' in firm_page and "张主评" in firm_page and "10 分" in firm_page
        page = login(user).get(f"/people/{lead.id}")
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and "监督检查发现严重问题" in text and e.reference in text and "警示" in text
    for user in (world.other_firm_user, world.kz_staff, world.expert_user):
        assert login(user).get(f"/people/{lead.id}").status_code == 403
    assert login(world.other_firm_user).get(f"/people/{10 ** 6}").status_code == 404


def test_the_api_reads_a_persons_record_and_the_firms_people(world, crew, client, auth):
    e, lead, member = crew
    finding(world, e, Severity.INTENTIONAL)
    db.session.commit()
    record = client.get(f"/api/v1/staff/{lead.id}/record", headers=auth("firm1"))
    assert record.status_code == 200
    body = record.json
    assert body["standing"]["total"] == 20 and body["standing"]["blocked"] is True and body["standing"]["status"] == "限制"
    assert body["points"][0]["kind"]["value"] == "finding_intentional" and body["points"][0]["reference"] == e.reference
    assert client.get(f"/api/v1/staff/{lead.id}/record", headers=auth("firm2")).status_code == 404
    assert client.get(f"/api/v1/staff/{lead.id}/record", headers=auth("kz.staff")).status_code == 404
    listed = client.get(f"/api/v1/firms/{world.firm.id}/people", headers=auth("bz.staff"))
    assert listed.status_code == 200
    totals = {p["name"]: p["standing"]["total"] for p in listed.json["people"]}
    assert totals == {"张主评": 20, "李评价": 0}
    assert client.get(f"/api/v1/firms/{world.firm.id}/people", headers=auth("firm2")).status_code == 404


def test_the_demo_names_teams_and_gives_a_lead_evaluator_points(world):
    """evalhub/demo/people.py on a small world: the firm names its team, 巴州 records two findings, the lead
    evaluator has 13 points (警示); a second run adds nothing."""
    from evalhub.core.timeutil import simulated_clock, utcnow
    from evalhub.demo.people import load_people

    lead = person(world.firm, world.firm_user, "周负责")
    lead.role = lead.role.__class__("project_lead")
    person(world.firm, world.firm_user, "吴评价")
    e = factories.contracted(world)
    db.session.commit()
    with simulated_clock(utcnow()):
        assert load_people(lambda _: None) == 5
        assert load_people(lambda _: None) == 0
    assert team.lead(e) == lead and len(team.members(e)) == 2
    record = people.standing(lead, world.bz)
    assert record.total == 13 and record.status == "警示"
