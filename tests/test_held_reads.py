"""What a request reads besides its page (issue 18): an API token with its account, the account's bureau tree
and the tree's settings in one statement; every setting of the tree held with the account; a row's scope
decided without a statement when its rule is "bureau in the user's tree" — each answering as the tables do."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core import permissions, settings
from evalhub.core.models import ApiToken, Bureau, User
from evalhub.core.services import TOKEN_TOUCH_EVERY, issue_token, user_for_token
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from tests import factories
from tests.test_query_counts import counting


def _flat(seen: list[str]) -> list[str]:
    return [" ".join(s.split()) for s in seen]


# --- the API's sign-in ----------------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["bz_admin", "region_admin", "firm_user", "sysadmin"])
def test_an_api_request_signs_in_with_one_statement(world, client, auth, who):
    headers = auth(getattr(world, who).username)
    assert client.get("/api/v1/engagements", headers=headers).status_code == 200  # the first use: touched
    with client.application.app_context(), counting() as seen:
        assert client.get("/api/v1/engagements", headers=headers).status_code == 200
    flat = _flat(seen)
    signin = [s for s in flat if "api_token" in s]
    assert len(signin) == 1 and "JOIN user_account" in signin[0] and "JOIN bureau AS" in signin[0], flat
    rest = [s for s in flat if s not in signin]
    assert not any(s.startswith(("SELECT user_account", "SELECT bureau")) for s in rest), rest
    assert not any("FROM bureau_setting" in s for s in rest), rest
    assert not any(s.startswith(("UPDATE", "INSERT")) for s in flat), flat  # used just now: no write


def test_a_token_is_touched_at_most_every_few_minutes(world, client, auth):
    headers = auth(world.bz_staff.username)
    token = db.session.execute(sa.select(ApiToken).where(ApiToken.user_id == world.bz_staff.id)).scalar_one()
    assert token.last_used_at is None
    assert client.get("/api/v1/engagements", headers=headers).status_code == 200
    db.session.refresh(token)
    first = token.last_used_at
    assert first is not None
    assert client.get("/api/v1/engagements", headers=headers).status_code == 200
    db.session.refresh(token)
    assert token.last_used_at == first
    token.last_used_at = first - TOKEN_TOUCH_EVERY - timedelta(seconds=1)
    db.session.commit()
    with client.application.app_context(), counting() as seen:
        assert client.get("/api/v1/engagements", headers=headers).status_code == 200
    assert sum(s.startswith("UPDATE api_token") for s in _flat(seen)) == 1
    db.session.refresh(token)
    assert token.last_used_at > first


def test_a_token_is_checked_against_its_row_as_it_is_now(world):
    # One session throughout, holding the token and the account from the first check: each later check still
    # sees the rows as they are (a revocation, expiry or deactivation written behind the session's back).
    user_id = world.bz_staff.id
    token = issue_token(world.bz_staff)
    db.session.commit()
    assert user_for_token(token).id == user_id
    assert user_for_token(token + "x") is None and user_for_token("") is None
    for table, values in [(ApiToken, {"revoked_at": utcnow()}), (ApiToken, {"expires_at": utcnow() - timedelta(seconds=1)}),
                          (User, {"is_enabled": False})]:
        where = ApiToken.user_id == user_id if table is ApiToken else User.id == user_id
        db.session.execute(sa.update(table).where(where).values(**values).execution_options(synchronize_session=False))
        assert user_for_token(token) is None, values
        db.session.rollback()
        assert user_for_token(token).id == user_id


# --- settings ---------------------------------------------------------------------------------------------

CHAPTERS = ["基本情况", "评价结论", "问题与建议"]


def _settings(world) -> None:
    settings.set_setting(world.region, "expert.min_years", 12, world.region_admin)
    settings.set_setting(world.region, "review.report_chapters", CHAPTERS, world.region_admin)  # a list
    settings.set_setting(world.bz, "expert.max_age", 60, world.bz_admin)
    settings.set_setting(world.bz, "expert.min_degree", "master", world.bz_admin)  # a string
    settings.set_setting(world.lt, "expert.min_years", 8, world.lt_admin)  # below a value set above it
    settings.set_setting(world.kz, "procurement.low_bid_ratio", 75.5, world.kz_admin)  # a decimal, outside 巴州
    db.session.commit()


def _typed(values: dict) -> dict:
    return {key: (type(value), value) for key, value in values.items()}  # 12 is not 12.0 on a page


@pytest.mark.parametrize("who", ["bz_admin", "lt_staff", "region_admin", "kz_admin", "sysadmin", "firm_user"])
def test_held_settings_answer_as_the_table_does(app, world, who):
    _settings(world)
    user_id = getattr(world, who).id
    bureau_ids = db.session.execute(sa.select(Bureau.id).order_by(Bureau.id)).scalars().all()
    with app.app_context():  # as the table says: every bureau's values read
        expected = {(b.id, key): settings.get_setting(b, key)
                    for b in db.session.execute(sa.select(Bureau)).scalars() for key in settings.SETTINGS}
    with app.app_context():
        user = permissions.load_user(user_id)
        tree = permissions.visible_bureau_ids(user) or set()
        above = {b.id for b in user.bureau.ancestors()} if user.bureau is not None and tree else set()
        with counting() as seen:  # the tree's bureaus as the request holds them (those below as plain rows): nothing read
            held = {b.id: b for b in permissions.visible_bureaus(user)} if tree else {}
            held.update({b.id: b for b in user.bureau.ancestors()} if above else {})
            inside = {(b, key): settings.get_setting(held[b], key) for b in tree | above for key in settings.SETTINGS}
        assert seen == [], _flat(seen)
        # the same bureaus as ORM objects (a row's bureau, read with the row): the walk up is the held tree's
        as_objects = {(b, key): settings.get_setting(db.session.get(Bureau, b), key)
                      for b in tree | above for key in settings.SETTINGS}
        outside = {(b, key): settings.get_setting(db.session.get(Bureau, b), key)
                   for b in bureau_ids if b not in tree | above for key in settings.SETTINGS}
        assert _typed({**inside, **outside}) == _typed(expected) == _typed({**as_objects, **outside})
    assert expected[(world.lt.id, "expert.min_years")] == 8 and expected[(world.krl.id, "expert.min_years")] == 12
    assert expected[(world.ats.id, "review.report_chapters")] == CHAPTERS


def test_a_setting_changed_elsewhere_shows_on_the_next_request(app, world):
    user_id = world.lt_staff.id
    with app.app_context():
        user = permissions.load_user(user_id)
        assert settings.get_setting(user.bureau, "expert.max_age") == 65
    with app.app_context():  # another request
        settings.set_setting(db.session.get(Bureau, world.bz.id), "expert.max_age", 61, db.session.get(User, world.bz_admin.id))
        db.session.commit()
    with app.app_context():
        user = permissions.load_user(user_id)
        assert settings.get_setting(user.bureau, "expert.max_age") == 61


def test_a_page_reads_the_settings_of_the_tree_with_the_account(world, client, login):
    _settings(world)
    login(world.bz_admin)
    with client.application.app_context(), counting() as seen:
        page = client.get("/experts")
    assert page.status_code == 200
    flat = _flat(seen)
    loader = [s for s in flat if "FROM user_account LEFT OUTER JOIN bureau" in s]  # load_user's
    assert len(loader) == 1 and "bureau_setting" in loader[0]
    assert not any("FROM bureau_setting" in s for s in flat if s not in loader), flat


# --- row checks -------------------------------------------------------------------------------------------

def _asked(user: User, obj) -> bool:
    model = type(obj)
    stmt = permissions.scope(user, sa.select(model.id).where(model.id == obj.id), model)
    return db.session.execute(stmt).first() is not None


def test_row_checks_answer_as_the_database_does(world):
    """Every row of every model with a row scope, for a user of every role: ``visible`` says what the scoped
    statement says, and decides a bureau user's check of a bureau-scoped row without one."""
    factories.accepted(world)
    factories.contracted(world, bureau_key="kz", unit="克州农业农村局", firm=world.other_firm)
    factories.engagement(world, bureau_key="lt", unit="轮台县医疗保障局")
    unit_user = factories.unit_user(world, "巴州统计局")
    db.session.commit()
    users = [world.sysadmin, world.region_admin, world.bz_admin, world.bz_staff, world.lt_staff, world.kz_admin,
             world.firm_user, world.other_firm_user, world.expert_user, unit_user]
    checked = in_python = 0
    for model in list(permissions._SCOPES):
        rows = db.session.execute(sa.select(model).order_by(model.id).limit(25)).scalars().all()
        for user in users:
            for obj in rows:
                with counting() as seen:
                    answer = permissions.visible(user, obj)
                assert answer == _asked(user, obj), (model.__name__, user.username, obj.id)
                checked += 1
                in_python += not seen
    assert checked > 500 and in_python > 100, (checked, in_python)


def test_a_row_check_with_changes_waiting_asks_the_database(world):
    e = factories.engagement(world)
    db.session.commit()
    staff = world.bz_staff
    permissions.visible_bureau_ids(staff), e.bureau_id  # the tree held, the row loaded
    with counting() as seen:
        assert permissions.visible(staff, e)
    assert seen == []
    e.bureau_id = world.kz.id  # not flushed: the check flushes it and sees the row moved out of the tree
    with counting() as seen:
        assert not permissions.visible(staff, e)
    assert seen
    db.session.rollback()


def test_the_engagement_page_checks_its_row_without_a_statement(world, client, login):
    mine, theirs = factories.engagement(world), factories.engagement(world, bureau_key="kz", unit="克州农业农村局")
    db.session.commit()
    login(world.bz_admin)
    with client.application.app_context(), counting() as seen:
        assert client.get(f"/engagements/{mine.id}").status_code == 200
    assert not any(s.startswith("SELECT engagement.id FROM engagement WHERE") for s in _flat(seen)), _flat(seen)
    assert client.get(f"/engagements/{theirs.id}").status_code == 403  # a refusal stays a refusal
    login(world.kz_admin)
    assert client.get(f"/engagements/{mine.id}").status_code == 403
    assert client.get(f"/engagements/{theirs.id}").status_code == 200


# --- a tree bound as one parameter ------------------------------------------------------------------

@pytest.mark.parametrize("ids", [set(), {1}, "all", "all+missing"])
def test_in_bureaus_selects_exactly_its_bureaus(world, ids):
    """``in_bureaus`` binds a tree as one ``integer[]`` (on PostgreSQL in its text form): the rows it selects are
    those of the set, for an empty set none, and a statement may bind several trees."""
    every = set(db.session.execute(sa.select(Bureau.id)).scalars())
    wanted = {"all": every, "all+missing": every | {10**6}}.get(ids, ids) if isinstance(ids, str) else ids
    got = set(db.session.execute(sa.select(Bureau.id).where(permissions.in_bureaus(Bureau.id, wanted))).scalars())
    assert got == wanted & every
    some = sorted(every)[: len(every) // 2]
    both = db.session.execute(sa.select(Bureau.id).where(
        permissions.in_bureaus(Bureau.id, wanted), ~permissions.in_bureaus(Bureau.id, set(some)))).scalars()
    assert set(both) == (wanted & every) - set(some)


def test_a_bound_tree_reads_as_its_ids_in_logs(world):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the text-form array is PostgreSQL's")
    clause = permissions.in_bureaus(Bureau.id, {3, 1, 2})
    value = clause.compile(dialect=db.engine.dialect).params
    assert [repr(v) for v in value.values()] == ["[1, 2, 3]"]
