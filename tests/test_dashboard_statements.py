"""The dashboard builds its statements once per scope and day (``permissions.kept``, issue 18): what it
shows must still be what is true at each request — a deadline passing later the same day, a county added below
the bureau, another account of the same bureau."""
from __future__ import annotations

from datetime import datetime, timedelta

from evalhub.core import permissions
from evalhub.core.enums import BureauLevel, JobStatus, Role
from evalhub.core.models import Job
from evalhub.core.timeutil import set_simulated_now, simulated_clock
from evalhub.extensions import db
from evalhub.registry.models import FirmStatus
from tests import factories

NOON = datetime(2025, 6, 10, 4, 0)  # 12:00 in Beijing: an hour either side is the same day


def test_a_review_falling_due_later_the_same_day_is_overdue_on_the_next_request(world, login):
    from tests.test_review_services import _panel

    with simulated_clock(NOON):
        e, panel = _panel(world)
        panel.review_due = NOON + timedelta(minutes=10)
        db.session.commit()
        client = login(world.bz_staff)
        assert f"/reviews/panels/{panel.id}" not in client.get("/").get_data(as_text=True)
        kept = {key: built for key, built in permissions._KEPT.items()}
        set_simulated_now(NOON + timedelta(minutes=20))
        body = client.get("/").get_data(as_text=True)
        assert f"/reviews/panels/{panel.id}" in body and e.reference in body
        # the same statements ran again (the same key, nothing rebuilt): the present came in as a parameter
        assert permissions._KEPT.keys() == kept.keys() and all(permissions._KEPT[k] is kept[k] for k in kept)


def test_a_county_added_below_the_prefecture_shows_on_its_dashboard_at_once(world, login):
    client = login(world.bz_admin)
    assert "新设县评价咨询有限公司" not in client.get("/").get_data(as_text=True)
    before = permissions.scope_key(db.session.get(type(world.bz_admin), world.bz_admin.id))
    county = factories.bureau("652899", "新设县财政局", "新设县", BureauLevel.COUNTY, db.session.get(type(world.bz), world.bz.id))
    factories.firm(county, FirmStatus.PENDING, name="新设县评价咨询有限公司")
    db.session.commit()
    body = client.get("/").get_data(as_text=True)
    assert "新设县评价咨询有限公司" in body  # the application waiting in the new county
    db.session.expire_all()
    assert permissions.scope_key(db.session.get(type(world.bz_admin), world.bz_admin.id)) != before


def test_two_accounts_of_one_bureau_each_see_their_own_jobs(world, login):
    other = factories.user("bz.staff2", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    for owner, title in [(world.bz_staff, "甲导入的机构名册"), (other, "乙导入的专家名册")]:
        db.session.add(Job(kind="import", title=title, status=JobStatus.SUCCEEDED, bureau_id=world.bz.id,
                           created_by_id=owner.id))
    db.session.commit()
    first, second = (login(u).get("/").get_data(as_text=True) for u in (world.bz_staff, other))
    assert "甲导入的机构名册" in first and "乙导入的专家名册" not in first
    assert "乙导入的专家名册" in second and "甲导入的机构名册" not in second
    admin = login(world.bz_admin).get("/").get_data(as_text=True)  # an admin sees the bureau's
    assert "甲导入的机构名册" in admin and "乙导入的专家名册" in admin


def test_only_a_bureau_users_statements_are_kept(world):
    for user in (world.firm_user, world.expert_user, world.sysadmin):
        assert permissions.scope_key(user) is None
    keys = {permissions.scope_key(u) for u in (world.bz_admin, world.bz_staff, world.lt_admin, world.region_admin)}
    assert len(keys) == 4 and None not in keys
