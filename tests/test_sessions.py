"""Sessions and tokens end on the server (issue 11): logout, password change, deactivation and "sign out
everywhere" end every browser session of the account at once (a per-user session generation); API tokens
can be revoked and are revoked on deactivation and password change. The login lock-out counts atomically
(at most the limit of passwords checked however many arrive together) and every refusal costs one hash."""
from __future__ import annotations

import os
import threading
import time

import pytest
import sqlalchemy as sa

from evalhub.core import audit
from evalhub.core import services as core_services
from evalhub.core.models import ApiToken, AuditEvent, User
from evalhub.core.services import authenticate
from evalhub.extensions import db
from tests import factories
from tests.browsers import Browser

NEW_PASSWORD = "battery-staple-2"



def _browser(app, user, password: str = factories.PASSWORD) -> Browser:
    """A separate browser signed in as ``user``."""
    browser = Browser(app)
    response = browser.post("/login", data={"username": user.username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert not _refused(browser)
    return browser


def _refused(browser) -> bool:
    """The session is not accepted: the dashboard sends the browser to the login page."""
    response = browser.get("/")
    return response.status_code == 302 and "/login" in response.headers["Location"]


def _token(client, user, password: str = factories.PASSWORD) -> dict:
    response = client.post("/api/v1/tokens", json={"username": user.username, "password": password})
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def _api_ok(client, headers) -> bool:
    status = client.get("/api/v1/firms", headers=headers).status_code
    assert status in (200, 401)
    return status == 200


def _actions(user) -> list[str]:
    return [e.action for e in audit.history("user_account", user.id)]


# --- browser sessions end on the server ------------------------------------------------------------

def test_a_copied_session_cookie_is_refused_after_logout(app, world):
    user = world.bz_staff
    browser = _browser(app, user)
    assert browser.get("/").status_code == 200
    copied = browser.client.get_cookie("session").value
    thief = Browser(app)
    thief.client.set_cookie("session", copied)
    assert thief.get("/").status_code == 200  # a copied cookie works while the session lives …
    assert browser.post("/logout").status_code == 302
    response = thief.get("/")  # … and not after logout
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert _browser(app, user)  # a new sign-in works as before


def test_a_session_without_its_generation_is_refused(app, world):
    """A cookie carrying only the user id (as before this change, or forged with a leaked key) loads nobody."""
    browser = Browser(app)
    with browser.app.app_context(), browser.client.session_transaction() as session:
        session["_user_id"] = str(world.bz_staff.id)
        session["_fresh"] = True
    response = browser.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_logout_ends_every_session_of_the_account_but_not_its_tokens(app, world):
    user = world.bz_staff
    first, second = _browser(app, user), _browser(app, user)
    headers = _token(first, user)
    first.post("/logout")
    assert _refused(first) and _refused(second)
    assert _api_ok(app.test_client(), headers)  # a program's token is not a browser session


def test_password_change_ends_other_sessions_and_revokes_tokens(app, world):
    user = world.bz_staff
    here, elsewhere = _browser(app, user), _browser(app, user)
    headers = _token(here, user)
    response = here.post("/account/password", data={"current_password": factories.PASSWORD,
                                                     "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert here.get("/account").status_code == 200  # the browser that changed it stays signed in
    assert _refused(elsewhere)
    assert not _api_ok(here, headers)
    assert db.session.execute(sa.select(ApiToken.revoked_at).where(ApiToken.user_id == user.id)).scalar_one() is not None
    assert "user.password_changed" in _actions(user)
    assert authenticate(user.username, factories.PASSWORD).user is None
    assert authenticate(user.username, NEW_PASSWORD).user is not None


def test_a_wrong_current_password_changes_nothing(app, world):
    user = world.bz_staff
    here, elsewhere = _browser(app, user), _browser(app, user)
    response = here.post("/account/password", data={"current_password": "not-my-password",
                                                    "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 422 and "当前密码不正确" in response.get_data(as_text=True)
    response = here.post("/account/password", data={"current_password": factories.PASSWORD,
                                                    "new_password": "short", "confirm": "short"})
    assert response.status_code == 422 and "至少需要 10 位" in response.get_data(as_text=True)  # the policy (issue 12)
    assert not _refused(elsewhere)
    assert "user.password_changed" not in _actions(user)


def test_deactivation_ends_sessions_and_revokes_tokens(app, client, world):
    user = world.bz_staff
    browser = _browser(app, user)
    headers = [_token(browser, user), _token(browser, user)]
    admin = _browser(app, world.bz_admin)
    assert admin.post(f"/users/{user.id}/disable", data={"reason": ""}).status_code == 422  # a reason is required
    assert not _refused(browser)
    response = admin.post(f"/users/{user.id}/disable", data={"reason": "调离岗位"})
    assert response.status_code == 302
    assert _refused(browser)
    assert not any(_api_ok(client, h) for h in headers)
    assert all(r is not None for r in db.session.execute(
        sa.select(ApiToken.revoked_at).where(ApiToken.user_id == user.id)).scalars())
    assert "user.disabled" in _actions(user)
    # even the right password now only says the account is disabled; a wrong one does not tell
    assert "停用" in authenticate(user.username, factories.PASSWORD).error
    assert authenticate(user.username, "wrong-password").error == "用户名或密码错误。"
    # enabled again, the old session and tokens stay dead; a new sign-in works
    assert admin.post(f"/users/{user.id}/enable").status_code == 302
    assert _refused(browser) and not any(_api_ok(client, h) for h in headers)
    assert _browser(app, user)


def test_an_admin_signs_an_account_out_everywhere(app, world):
    user = world.bz_staff
    browser = _browser(app, user)
    headers = _token(browser, user)
    outsider = _browser(app, world.kz_admin)  # another prefecture's administrator
    assert outsider.post(f"/users/{user.id}/sign-out-everywhere").status_code == 403
    assert outsider.post(f"/users/{user.id}/disable", data={"reason": "x"}).status_code == 403
    assert not _refused(browser)
    admin = _browser(app, world.bz_admin)
    page = admin.get(f"/bureaus/{world.bz.id}/users").get_data(as_text=True)
    assert user.username in page and "退出所有登录" in page
    assert admin.post(f"/users/{user.id}/sign-out-everywhere").status_code == 302
    assert _refused(browser) and not _api_ok(app.test_client(), headers)
    assert not _refused(admin)
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "user.signed_out_everywhere")).scalar_one()
    assert event.actor_id == world.bz_admin.id and event.object_id == user.id


def test_sign_out_everywhere_from_my_account(app, world):
    user = world.firm_user
    here, elsewhere = _browser(app, user), _browser(app, user)
    headers = _token(here, user)
    page = here.get("/account").get_data(as_text=True)
    assert "我的账号" in page and "退出所有登录" in page and "修改密码" in page and user.username in page
    response = here.post("/account/sign-out-everywhere")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert _refused(here) and _refused(elsewhere) and not _api_ok(app.test_client(), headers)
    assert "user.signed_out_everywhere" in _actions(user)


# --- API tokens can be revoked ---------------------------------------------------------------------

def test_delete_current_token_revokes_it(app, client, world):
    user = world.bz_staff
    headers, other = _token(client, user), _token(client, user)
    response = client.delete("/api/v1/tokens/current", headers=headers)
    assert response.status_code == 204
    assert not _api_ok(client, headers)
    assert client.delete("/api/v1/tokens/current", headers=headers).status_code == 401
    assert _api_ok(client, other)  # only the token used
    assert client.delete("/api/v1/tokens/current").status_code == 401
    assert db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "token.revoked")).scalar_one() == 1
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/tokens/current"]["delete"]
    assert "204" in operation["responses"] and "401" in operation["responses"]
    assert operation["security"] == [{"bearerAuth": []}]


def test_my_account_lists_live_tokens_and_revokes_one(app, client, world):
    user = world.bz_staff
    first, second = _token(client, user), _token(client, user)
    assert _api_ok(client, first)  # last used
    browser = _browser(app, user)
    rows = db.session.execute(sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)).scalars().all()
    page = browser.get("/account").get_data(as_text=True)
    assert f"#{rows[0].id}" in page and f"#{rows[1].id}" in page and "撤销" in page and "从未使用" in page
    assert browser.post(f"/account/tokens/{rows[0].id}/revoke").status_code == 302
    assert not _api_ok(client, first) and _api_ok(client, second)
    assert f"token-{rows[0].id}" not in browser.get("/account").get_data(as_text=True)
    # somebody else's token is not there to revoke
    other = _token(client, world.bz_admin)
    other_row = db.session.execute(sa.select(ApiToken).where(ApiToken.user_id == world.bz_admin.id)).scalar_one()
    assert browser.post(f"/account/tokens/{other_row.id}/revoke").status_code == 404
    assert _api_ok(client, other)
    assert "token.revoked" in _actions(user)


# --- login: one hash per attempt, lock-out counted atomically --------------------------------------

@pytest.fixture()
def hash_checks(monkeypatch):
    """Every call to the password checker, as the stored hash it compared against (thread-safe)."""
    calls: list[str] = []
    guard = threading.Lock()
    real = core_services.check_password_hash

    def counting(stored_hash, password, *args, **kwargs):
        with guard:
            calls.append(stored_hash)
        time.sleep(0.05)  # what scrypt costs in production; widens the window a race needs
        return real(stored_hash, password, *args, **kwargs)

    monkeypatch.setattr(core_services, "check_password_hash", counting)
    return calls


def test_every_refusal_costs_exactly_one_hash(app, world, hash_checks):
    """Unknown, disabled and locked accounts are hashed against a dummy of the same method, so the answer
    takes as long as for a real account with a wrong password (counted rather than timed: robust on a
    busy machine)."""
    method = app.config["PASSWORD_HASH_METHOD"]
    assert authenticate("no-such-user", "whatever").error == "用户名或密码错误。"
    assert len(hash_checks) == 1 and hash_checks[0].startswith(method + "$")

    hash_checks.clear()
    assert authenticate(world.bz_staff.username, "wrong-password").error == "用户名或密码错误。"
    assert hash_checks == [world.bz_staff.password_hash]

    world.kz_staff.is_enabled = False
    db.session.commit()
    hash_checks.clear()
    assert authenticate(world.kz_staff.username, "wrong-password").error == "用户名或密码错误。"
    assert len(hash_checks) == 1

    user = world.lt_staff
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        authenticate(user.username, "wrong-password")
    hash_checks.clear()
    assert "锁定" in authenticate(user.username, factories.PASSWORD).error
    assert len(hash_checks) == 1 and hash_checks[0] != user.password_hash  # the real one is not even checked


@pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"), reason="concurrency is tested against PostgreSQL")
def test_forty_simultaneous_wrong_passwords_check_at_most_the_limit(app, world, hash_checks):
    user_id, username, real_hash = world.bz_staff.id, world.bz_staff.username, world.bz_staff.password_hash
    limit = app.config["LOGIN_MAX_FAILURES"]
    attempts = 40
    barrier = threading.Barrier(attempts)
    answers: list[str] = []
    errors: list[str] = []

    def attempt(n: int) -> None:
        with app.app_context():
            try:
                barrier.wait(30)
                answers.append(authenticate(username, f"wrong-password-{n}").error or "")
            except Exception as exc:  # pragma: no cover - reported below
                db.session.rollback()
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    real_checks = sum(1 for h in hash_checks if h == real_hash)
    print(f"{attempts} simultaneous wrong passwords: {real_checks} checked against the account (limit {limit})")
    assert 1 <= real_checks <= limit
    assert len(hash_checks) == attempts  # and every attempt cost one hash
    assert len(answers) == attempts and all(a for a in answers)
    db.session.expire_all()
    user = db.session.get(User, user_id)
    assert user.locked_until is not None
    locked = db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                                .where(AuditEvent.action == "user.locked")).scalar_one()
    assert locked == 1
    hash_checks.clear()
    assert "锁定" in authenticate(username, factories.PASSWORD).error
    assert real_hash not in hash_checks
