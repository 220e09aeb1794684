"""Issue 14: each engagement names its lead evaluator (主评人) and team from the firm's own roster
(procurement/team.py) — on the web and the API; the bureau sees them, the budget unit sees the lead."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, Notification
from evalhub.extensions import db
from evalhub.procurement import team
from evalhub.procurement.models import EngagementMember, EngagementState
from evalhub.registry.services import StaffInput, add_staff
from tests import factories
from tests.kept_states import kept


def roster(firm, user, n: int = 3) -> list:
    """n people on the firm's roster (the first a 项目负责人)."""
    return [add_staff(firm, StaffInput(name=f"{firm.name[:2]}评价{i}", id_number=factories.id_number(),
                                       role="项目负责人" if i == 0 else "评价人员", years_experience=8), user)
            for i in range(n)]


@pytest.fixture()
@kept
def named(world):
    """A contracted 巴州 engagement of world.firm and three people on its roster."""
    e = factories.contracted(world)
    people = roster(world.firm, world.firm_user)
    db.session.commit()
    return e, people


def _name(e, user, lead, members=(), reason=None):
    return team.name_team(e, team.TeamInput(lead_staff_id=lead.id, member_staff_ids=[m.id for m in members],
                                            reason=reason), user)


# --- the service ---------------------------------------------------------------------------------------

def test_the_firm_names_its_lead_and_team_from_its_roster_and_the_bureau_hears(world, named):
    e, (a, b, c) = named
    members = _name(e, world.firm_user, a, [b, c])
    assert [(m.staff_id, m.is_lead) for m in members] == [(a.id, True), (b.id, False), (c.id, False)]
    assert team.lead(e) == a
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "engagement.team_named")).scalar_one()
    assert a.name in event.summary and event.object_id == e.id
    told = db.session.execute(sa.select(Notification).where(Notification.title.contains("主评人及团队"))).scalars().all()
    assert {n.user_id for n in told} == {world.bz_admin.id, world.bz_staff.id}
    assert a.name in told[0].body


def test_another_firms_staff_or_a_departed_person_is_refused(world, named):
    e, (a, b, _) = named
    stranger = roster(world.other_firm, world.other_firm_user, 1)[0]
    with pytest.raises(ValidationFailed) as lead_refused:
        _name(e, world.firm_user, stranger)
    assert "本机构名册" in lead_refused.value.fields["lead_staff_id"]
    with pytest.raises(ValidationFailed) as member_refused:
        _name(e, world.firm_user, a, [stranger])
    assert "本机构名册" in member_refused.value.fields["member_staff_ids"]
    from evalhub.registry.services import deactivate_staff

    deactivate_staff(b, world.firm_user, "离职")
    with pytest.raises(ValidationFailed):
        _name(e, world.firm_user, b)
    with pytest.raises(ValidationFailed) as nothing:
        team.name_team(e, team.TeamInput(lead_staff_id="abc"), world.firm_user)
    assert "lead_staff_id" in nothing.value.fields
    assert team.members(e) == []


def test_only_the_engagements_firm_names_it_wrong_role_and_wrong_organisation(world, named):
    e, (a, _, _) = named
    for user in (world.bz_staff, world.bz_admin, world.other_firm_user, world.kz_admin, world.expert_user):
        with pytest.raises(PermissionDenied):
            _name(e, user, a)
    planned = factories.engagement(world)  # no firm yet: nobody names a team
    with pytest.raises(PermissionDenied):
        _name(planned, world.firm_user, a)


def test_a_change_needs_a_reason_and_keeps_who_was_named_before(world, named):
    e, (a, b, c) = named
    _name(e, world.firm_user, a, [b])
    assert _name(e, world.firm_user, a, [b]) == team.members(e)  # the same team again: already done, no reason asked
    with pytest.raises(ValidationFailed) as no_reason:
        _name(e, world.firm_user, b, [c])
    assert "变更理由" in no_reason.value.fields["reason"]
    _name(e, world.firm_user, b, [c], reason="原主评人调岗，改由评价1主持")
    assert team.lead(e) == b and {m.staff_id for m in team.members(e)} == {b.id, c.id}
    closed = [m for m in team.history(e) if m.removed_at is not None]
    assert {(m.staff_id, m.is_lead) for m in closed} == {(a.id, True), (b.id, False)}
    assert all(m.removed_reason == "原主评人调岗，改由评价1主持" for m in closed)


def test_once_accepted_the_team_is_the_record(world, named):
    e, (a, _, _) = named
    e.state = EngagementState.ACCEPTED  # fixture shortcut: the review flow has its own tests
    with pytest.raises(Conflict):
        _name(e, world.firm_user, a)


def test_after_an_award_moves_to_another_firm_the_old_team_is_history(world, named):
    e, (a, _, _) = named
    _name(e, world.firm_user, a)
    e.firm = world.other_firm  # fixture shortcut: an upheld challenge re-awarded the engagement
    db.session.flush()
    assert team.members(e) == [] and team.lead(e) is None and [m.staff_id for m in team.history(e)] == [a.id]
    stranger = roster(world.other_firm, world.other_firm_user, 1)[0]
    assert team.name_team(e, team.TeamInput(lead_staff_id=stranger.id), world.other_firm_user)[0].staff_id == stranger.id


# --- the pages -----------------------------------------------------------------------------------------

def test_the_firm_names_the_team_on_the_web_and_the_engagement_page_shows_the_lead(world, named, login):
    e, (a, b, _) = named
    client = login(world.firm_user)
    page = client.get(f"/engagements/{e.id}/team")
    assert page.status_code == 200 and "指定主评人和团队成员" in page.get_data(as_text=True)
    bad = client.post(f"/engagements/{e.id}/team", data={"lead_staff_id": ""})
    assert bad.status_code == 422 and "请从本机构名册中选择主评人" in bad.get_data(as_text=True)
    done = client.post(f"/engagements/{e.id}/team", data={"lead_staff_id": str(a.id), "member_staff_ids": [str(b.id)]})
    assert done.status_code == 302
    assert {(m.staff_id, m.is_lead) for m in team.members(e)} == {(a.id, True), (b.id, False)}
    detail = login(world.bz_staff).get(f"/engagements/{e.id}").get_data(as_text=True)
    assert 'data-testid="engagement-lead"' in detail and a.name in detail
    bureau_page = login(world.bz_staff).get(f"/engagements/{e.id}/team")
    text = bureau_page.get_data(as_text=True)
    assert bureau_page.status_code == 200 and a.name in text and b.name in text and "<form method=\"post\"" not in text.split("当前团队")[1]


def test_the_team_page_refuses_the_wrong_role_and_the_wrong_organisation(world, named, login):
    e, (a, _, _) = named
    assert login(world.bz_staff).post(f"/engagements/{e.id}/team", data={"lead_staff_id": str(a.id)}).status_code == 403
    assert login(world.other_firm_user).get(f"/engagements/{e.id}/team").status_code == 403
    assert login(world.kz_staff).get(f"/engagements/{e.id}/team").status_code == 403
    assert login(world.expert_user).get(f"/engagements/{e.id}/team").status_code == 403
    assert team.members(e) == []


def test_the_budget_unit_sees_the_lead_evaluator(world, named, login):
    e, (a, b, _) = named
    _name(e, world.firm_user, a, [b])
    db.session.commit()
    unit = factories.unit_user(world, "巴州统计局")
    db.session.commit()
    page = login(unit).get(f"/results/unit/engagements/{e.id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "主评人" in text and a.name in text
    assert login(unit).get(f"/engagements/{e.id}/team").status_code == 403  # the team page is not the unit's


# --- the API -------------------------------------------------------------------------------------------

def test_the_api_names_and_reads_the_team(world, named, client, auth):
    e, (a, b, c) = named
    url = f"/api/v1/engagements/{e.id}/team"
    assert client.get(url, headers=auth("bz.staff")).json["lead"] is None
    refused = client.post(url, json={"lead_staff_id": a.id}, headers=auth("bz.staff"))
    assert refused.status_code == 403
    assert client.post(url, json={"lead_staff_id": a.id}, headers=auth("firm2")).status_code == 404
    bad = client.post(url, json={"lead_staff_id": a.id, "member_staff_ids": "x"}, headers=auth("firm1"))
    assert bad.status_code == 422
    done = client.post(url, json={"lead_staff_id": a.id, "member_staff_ids": [b.id, c.id]}, headers=auth("firm1"))
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.json["lead"]["staff_id"] == a.id and len(done.json["members"]) == 3
    change = client.post(url, json={"lead_staff_id": b.id}, headers=auth("firm1"))
    assert change.status_code == 422 and "reason" in change.json["error"]["fields"]
    read = client.get(url, headers=auth("bz.admin")).json
    assert read["lead"]["name"] == a.name and read["may_name"] is False
    assert client.get(url, headers=auth("kz.staff")).status_code == 404
    assert db.session.execute(sa.select(sa.func.count(EngagementMember.id))).scalar_one() == 3
