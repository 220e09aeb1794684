"""Accounts (issue 12): the first administrator from the command line, who creates whom, role changes with a
reason, one-time activation and reset links, "忘记密码", the password policy (length, classes, history,
expiry) and the optional TOTP second factor, enforced by a bureau setting."""
from __future__ import annotations

import os
import re
import threading
import time
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa

from evalhub.core import accounts, audit, passwords
from evalhub.core import notifications
from evalhub.core.accounts import LinkPurpose
from evalhub.core.enums import Role
from evalhub.core.errors import PermissionDenied, ValidationFailed
from evalhub.core.models import AccountLink, AuditEvent, PasswordHistory, User
from evalhub.core.personal import decrypt_field
from evalhub.core.services import authenticate, change_password
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from tests import factories
from tests.test_sessions import Browser, _browser, _refused

STRONG = "Tianshan-2025!"  # 14 characters, four classes
STRONG2 = "Kunlun#Peak2026"


def _actions(user) -> list[str]:
    return [e.action for e in audit.history("user_account", user.id)]


def _user(username: str) -> User | None:
    db.session.expire_all()
    return db.session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()


def _link_from(response) -> str:
    html = response.get_data(as_text=True)
    match = re.search(r'value="(http[^"]+/account/(?:activate|reset)/[^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def _create(browser, bureau, **fields):
    data = {"username": "new.user", "display_name": "新用户", "role": "bureau_staff", "email": "", "phone": ""}
    data.update(fields)
    return browser.post(f"/bureaus/{bureau.id}/users", data=data)


# === the first administrator ========================================================================

def test_create_admin_refuses_a_weak_password_and_a_taken_name_and_is_audited(app, app_ctx):
    runner = app.test_cli_runner()
    weak = runner.invoke(args=["evalhub", "users", "create-admin", "--username", "root", "--password", "password12"])
    assert weak.exit_code == 1 and "至少 3 类" in weak.output
    short = runner.invoke(args=["evalhub", "users", "create-admin", "--username", "root", "--password", "Ab1!"])
    assert short.exit_code == 1 and "至少需要 10 位" in short.output
    assert _user("root") is None

    done = runner.invoke(args=["evalhub", "users", "create-admin", "--username", "root", "--password", STRONG])
    assert done.exit_code == 0, done.output
    root = _user("root")
    assert root.role == Role.SYSTEM_ADMIN and root.bureau_id is None and not root.awaiting_activation
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "user.created")).scalar_one()
    assert event.object_id == root.id and event.actor_id is None and "命令行创建系统管理员 root" in event.summary
    assert authenticate("root", STRONG).user is not None

    again = runner.invoke(args=["evalhub", "users", "create-admin", "--username", "root", "--password", STRONG2])
    assert again.exit_code == 1 and "已被使用" in again.output
    assert db.session.execute(sa.select(sa.func.count(User.id))).scalar_one() == 1


def test_create_admin_prompts_for_a_hidden_confirmed_password(app, app_ctx):
    runner = app.test_cli_runner()
    mismatch = runner.invoke(args=["evalhub", "users", "create-admin"],
                             input=f"chief\n{STRONG}\nsomething-else\n{STRONG}\n{STRONG}\n")
    assert mismatch.exit_code == 0, mismatch.output
    assert STRONG not in mismatch.output  # never echoed
    assert "密码要求" in mismatch.output  # the policy is said before asking
    assert _user("chief").role == Role.SYSTEM_ADMIN


# === who creates whom ===============================================================================

def test_the_system_admin_creates_a_bureau_admin_who_activates_and_signs_in(app, world):
    admin = _browser(app, world.sysadmin)
    response = _create(admin, world.bz, username="bz.chief", display_name="巴州管理员", role="bureau_admin")
    assert response.status_code == 200
    url = _link_from(response)
    assert "只显示这一次" in response.get_data(as_text=True)
    chief = _user("bz.chief")
    assert chief.role == Role.BUREAU_ADMIN and chief.bureau_id == world.bz.id and chief.awaiting_activation
    assert accounts.status_label(chief) == "待激活"
    assert {"user.created", "user.link_issued"} <= set(_actions(chief))
    # the raw token is stored nowhere
    token = url.rsplit("/", 1)[1]
    assert db.session.execute(sa.select(AccountLink.token_hash)).scalar_one() != token
    # nobody can sign in before activation, not even with an empty or a guessed password
    assert authenticate("bz.chief", "").user is None and authenticate("bz.chief", "!").user is None

    person = Browser(app)
    page = person.get(_path(url))
    assert page.status_code == 200 and "bz.chief" in page.get_data(as_text=True)
    weak = person.post(_path(url), data={"new_password": "short", "confirm": "short"})
    assert weak.status_code == 422 and "至少需要 10 位" in weak.get_data(as_text=True)
    assert _user("bz.chief").awaiting_activation  # a refused password does not spend the link
    done = person.post(_path(url), data={"new_password": STRONG, "confirm": STRONG})
    assert done.status_code == 302 and "/login" in done.headers["Location"]
    assert "user.activated" in _actions(chief)
    assert not _user("bz.chief").awaiting_activation
    assert not _refused(_browser(app, _user("bz.chief"), STRONG))


def test_a_bureau_admin_creates_its_own_staff_and_the_admins_below_only(app, world):
    admin = _browser(app, world.bz_admin)
    assert _create(admin, world.bz, username="bz.clerk", role="bureau_staff").status_code == 200
    assert _user("bz.clerk").role == Role.BUREAU_STAFF
    # not another administrator of its own bureau …
    assert _create(admin, world.bz, username="bz.second", role="bureau_admin").status_code == 403
    # … nor anyone of a bureau beside or above it
    assert _create(admin, world.kz, username="kz.clerk", role="bureau_staff").status_code == 403
    assert _create(admin, world.region, username="region.x", role="bureau_staff").status_code == 403
    # the administrator of a county below it, yes; that county's staff, no (the county's admin does that)
    assert _create(admin, world.lt, username="lt.chief", role="bureau_admin").status_code == 200
    assert _create(admin, world.lt, username="lt.clerk", role="bureau_staff").status_code == 403
    assert [u for u in ("bz.second", "kz.clerk", "region.x", "lt.clerk") if _user(u) is not None] == []
    # bureau staff and the county's administrator for the prefecture: refused
    staff = _browser(app, world.bz_staff)
    assert staff.get(f"/bureaus/{world.bz.id}/users").status_code == 403
    assert _create(staff, world.bz, username="sneaky", role="bureau_staff").status_code == 403
    county = _browser(app, world.lt_admin)
    assert _create(county, world.bz, username="up.clerk", role="bureau_staff").status_code == 403
    assert _user("sneaky") is None and _user("up.clerk") is None


def test_bad_input_is_refused_in_chinese_with_nothing_written(app, world):
    admin = _browser(app, world.bz_admin)
    before = db.session.execute(sa.select(sa.func.count(User.id))).scalar_one()
    for fields, message in [({"username": "bz.staff"}, "已被使用"), ({"username": "BZ.STAFF"}, "已被使用"),
                            ({"username": "中文名"}, "英文字母"), ({"display_name": ""}, "请填写姓名"),
                            ({"email": "not-an-email"}, "电子邮箱格式不正确"), ({"role": "expert"}, "角色")]:
        response = _create(admin, world.bz, **fields)
        assert response.status_code in (422, 403) and message in response.get_data(as_text=True), fields
    assert db.session.execute(sa.select(sa.func.count(User.id))).scalar_one() == before


def test_a_system_admin_creates_another_system_admin_from_the_directory(app, world):
    admin = _browser(app, world.sysadmin)
    response = admin.post("/users", data={"username": "ops2", "display_name": "运维", "role": "system_admin"})
    assert response.status_code == 200 and "/account/activate/" in response.get_data(as_text=True)
    assert _user("ops2").role == Role.SYSTEM_ADMIN
    bureau_admin = _browser(app, world.region_admin)
    assert bureau_admin.post("/users", data={"username": "ops3", "display_name": "x", "role": "system_admin"}).status_code == 403


# === roles ==========================================================================================

def test_a_role_change_needs_a_reason_is_audited_and_ends_the_sessions(app, world):
    target = world.lt_staff
    target_browser = _browser(app, target)
    admin = _browser(app, world.bz_admin)  # the prefecture above 轮台县
    refused = admin.post(f"/users/{target.id}/role", data={"role": "bureau_admin", "reason": ""})
    assert refused.status_code == 422 and "原因" in refused.get_data(as_text=True)
    assert _user(target.username).role == Role.BUREAU_STAFF
    done = admin.post(f"/users/{target.id}/role", data={"role": "bureau_admin", "reason": "原管理员调离"})
    assert done.status_code == 302
    assert _user(target.username).role == Role.BUREAU_ADMIN
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "user.role_changed")).scalar_one()
    assert event.actor_id == world.bz_admin.id and "原管理员调离" in event.summary
    assert event.payload == {"old": "bureau_staff", "new": "bureau_admin", "reason": "原管理员调离"}
    assert _refused(target_browser)


def test_who_may_change_a_role(app, world):
    own = _browser(app, world.bz_admin)
    # a bureau admin cannot promote its own staff to administrator (only the bureau above can)
    assert own.post(f"/users/{world.bz_staff.id}/role", data={"role": "bureau_admin", "reason": "x"}).status_code == 403
    # nor change its own role
    assert own.post(f"/users/{world.bz_admin.id}/role", data={"role": "bureau_staff", "reason": "x"}).status_code == 403
    # another prefecture does not even see the account
    other = _browser(app, world.kz_admin)
    assert other.post(f"/users/{world.lt_staff.id}/role", data={"role": "bureau_admin", "reason": "x"}).status_code == 404
    # the system admin may; a firm user or an expert has no bureau role to change
    sysadmin = _browser(app, world.sysadmin)
    assert sysadmin.post(f"/users/{world.bz_staff.id}/role", data={"role": "bureau_admin", "reason": "任命"}).status_code == 302
    assert sysadmin.post(f"/users/{world.firm_user.id}/role", data={"role": "bureau_admin", "reason": "x"}).status_code == 403
    assert _user("firm1").role == Role.FIRM_USER


# === one-time links =================================================================================

def test_an_admin_reset_link_works_once_and_ends_everything(app, world):
    user = world.bz_staff
    user_browser = _browser(app, user)
    admin = _browser(app, world.bz_admin)
    outsider = _browser(app, world.kz_admin)
    assert outsider.post(f"/users/{user.id}/reset-link").status_code == 404
    assert _browser(app, world.bz_staff).post(f"/users/{world.bz_admin.id}/reset-link").status_code == 404
    response = admin.post(f"/users/{user.id}/reset-link")
    assert response.status_code == 200
    url = _link_from(response)
    assert "/account/reset/" in url
    # the old password keeps working until the link is used
    assert authenticate(user.username, factories.PASSWORD).user is not None

    person = Browser(app)
    assert person.post(_path(url), data={"new_password": STRONG, "confirm": STRONG}).status_code == 302
    assert _refused(user_browser)
    assert authenticate(user.username, factories.PASSWORD).user is None
    assert authenticate(user.username, STRONG).user is not None
    assert {"user.link_issued", "user.password_reset"} <= set(_actions(user))

    again = person.get(_path(url))
    assert again.status_code == 410 and "使用过" in again.get_data(as_text=True)
    assert person.post(_path(url), data={"new_password": STRONG2, "confirm": STRONG2}).status_code == 410
    assert authenticate(user.username, STRONG).user is not None
    assert person.get("/account/reset/not-a-real-token-at-all-000000").status_code == 404


def test_links_expire_and_a_new_one_replaces_the_old(app, world):
    user = world.bz_staff
    first = accounts.issue_link(user, LinkPurpose.RESET, world.bz_admin)
    second = accounts.issue_link(user, LinkPurpose.RESET, world.bz_admin)
    db.session.commit()
    person = Browser(app)
    replaced = person.get(f"/account/reset/{first}")
    assert replaced.status_code == 410 and "新的链接" in replaced.get_data(as_text=True)
    link = accounts.find_link(second)
    link.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    expired = person.get(f"/account/reset/{second}")
    assert expired.status_code == 410 and "过期" in expired.get_data(as_text=True)
    assert person.post(f"/account/reset/{second}", data={"new_password": STRONG, "confirm": STRONG}).status_code == 410
    # a reset link is not an activation link, and the reverse
    third = accounts.issue_link(user, LinkPurpose.RESET, world.bz_admin)
    db.session.commit()
    assert person.get(f"/account/activate/{third}").status_code == 404
    assert accounts.link_lifetime(LinkPurpose.RESET) == timedelta(hours=24)
    assert accounts.link_lifetime(LinkPurpose.ACTIVATION) == timedelta(days=7)


def test_create_account_with_activation_for_other_modules(app, world, monkeypatch):
    sent = []
    monkeypatch.setattr(notifications, "send_mail", lambda to, subject, body: sent.append((to, subject, body)) or True)
    user, token = accounts.create_account_with_activation(
        username="zj9001", display_name="王专家", role=Role.EXPERT, actor=world.bz_admin,
        expert_id=factories.expert(world.bz).id, email="wang@example.cn")
    db.session.commit()
    assert user.awaiting_activation and accounts.pending_expiry(user) is not None
    with app.test_request_context():
        assert accounts.email_link(user, token, LinkPurpose.ACTIVATION)
    assert sent[0][0] == "wang@example.cn" and f"/account/activate/{token}" in sent[0][2]
    with app.test_request_context():
        accounts.use_link(token, LinkPurpose.ACTIVATION, STRONG)
    db.session.commit()
    assert authenticate("zj9001", STRONG).user is not None


# === 忘记密码 ========================================================================================

def test_forgot_password_answers_the_same_for_unknown_users(app, world, monkeypatch):
    sent = []
    monkeypatch.setattr(notifications, "send_mail", lambda to, subject, body: sent.append((to, body)) or True)
    monkeypatch.setitem(app.config, "MAIL_SERVER", "smtp.example.cn")
    world.bz_staff.email = "bz.staff@example.cn"
    db.session.commit()
    answers = {}
    for name in ("bz.staff", "nobody-here", "bz.admin", "bz.staff@example.cn"):  # bz.admin has no e-mail
        response = Browser(app).post("/account/forgot", data={"identifier": name},
                                     environ_base={"REMOTE_ADDR": f"10.0.0.{len(answers) + 1}"})
        assert response.status_code == 200
        answers[name] = response.get_data(as_text=True)
    assert len(set(answers.values())) == 1
    assert "如果该账户存在并登记了电子邮箱" in answers["nobody-here"]
    assert [to for to, _ in sent] == ["bz.staff@example.cn", "bz.staff@example.cn"]
    url = re.search(r"http\S+/account/reset/\S+", sent[-1][1]).group(0)
    person = Browser(app)
    assert person.post(_path(url), data={"new_password": STRONG, "confirm": STRONG}).status_code == 302
    assert authenticate("bz.staff", STRONG).user is not None
    links = db.session.execute(sa.select(AccountLink).where(AccountLink.user_id == world.bz_staff.id)).scalars().all()
    assert all(link.created_by_id is None for link in links)


def test_forgot_password_is_rate_limited_per_address_and_per_account(app, world, monkeypatch):
    sent = []
    monkeypatch.setattr(notifications, "send_mail", lambda to, subject, body: sent.append(to) or True)
    monkeypatch.setitem(app.config, "MAIL_SERVER", "smtp.example.cn")
    world.bz_staff.email = "bz.staff@example.cn"
    db.session.commit()
    browser = Browser(app)
    limit = app.config["RESET_REQUESTS_PER_HOUR"]
    for n in range(limit):
        assert browser.post("/account/forgot", data={"identifier": "nobody"},
                            environ_base={"REMOTE_ADDR": "10.1.1.1"}).status_code == 200
    blocked = browser.post("/account/forgot", data={"identifier": "bz.staff"}, environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert blocked.status_code == 429 and "请求过于频繁" in blocked.get_data(as_text=True)
    assert sent == []
    # per account: the same answer, but no more than the limit of links an hour
    for n in range(5):
        assert browser.post("/account/forgot", data={"identifier": "bz.staff"},
                            environ_base={"REMOTE_ADDR": f"10.2.0.{n}"}).status_code == 200
    assert len(sent) == app.config["RESET_LINKS_PER_ACCOUNT_HOUR"]



def test_failed_sign_ins_from_one_address_are_limited_over_all_accounts(app, world, monkeypatch):
    """One password tried on every account never trips an account's lock (one failure each): the failures
    from one address are limited over all accounts (GB/T 22239-2019 身份鉴别; OWASP ASVS 2.2.1)."""
    monkeypatch.setitem(app.config, "LOGIN_FAILURES_PER_ADDRESS_HOUR", 3)
    sprayer = {"REMOTE_ADDR": "198.51.100.7"}
    browser = Browser(app)
    for user in (world.bz_staff, world.kz_staff, world.lt_staff):
        assert browser.post("/login", data={"username": user.username, "password": "Spring2025!"},
                            environ_base=sprayer).status_code == 401
    blocked = browser.post("/login", data={"username": world.bz_admin.username, "password": factories.PASSWORD},
                           environ_base=sprayer)
    assert blocked.status_code == 429 and "本网络地址近一小时登录失败次数过多" in blocked.get_data(as_text=True)
    assert "Location" not in blocked.headers  # not signed in, though the password was right
    api = app.test_client().post("/api/v1/tokens", json={"username": world.bz_admin.username,
                                                         "password": factories.PASSWORD}, environ_base=sprayer)
    assert api.status_code == 429 and api.get_json()["error"]["code"] == "too_many_requests"
    # the accounts are not locked: their owners, elsewhere, sign in
    for user in (world.bz_staff, world.bz_admin):
        assert Browser(app).post("/login", data={"username": user.username, "password": factories.PASSWORD},
                                 environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 302
    assert _user(world.bz_staff.username).locked_until is None


def test_right_passwords_do_not_count_toward_the_address_limit(app, world, monkeypatch):
    """An office behind one address signs in all morning: only failures count against the address."""
    monkeypatch.setitem(app.config, "LOGIN_FAILURES_PER_ADDRESS_HOUR", 2)
    office = {"REMOTE_ADDR": "192.0.2.20"}
    for user in (world.bz_staff, world.bz_admin, world.kz_staff, world.lt_staff):
        browser = Browser(app)
        assert browser.post("/login", data={"username": user.username, "password": factories.PASSWORD},
                            environ_base=office).status_code == 302
    browser = Browser(app)
    assert browser.post("/login", data={"username": world.bz_staff.username, "password": "typo"},
                        environ_base=office).status_code == 401
    assert browser.post("/login", data={"username": world.bz_staff.username, "password": factories.PASSWORD},
                        environ_base=office).status_code == 302

# === the password policy ============================================================================

@pytest.mark.parametrize("password, message", [
    ("Ab1!xyz", "至少需要 10 位"),
    ("alllowercase1", "至少 3 类"),
    ("ALLUPPER-ONLY", "至少 3 类"),
    ("bz.staff-Is-Mine1", "不能包含用户名"),
    (" Leading-space1", "空格"),
])
def test_the_policy_refuses_weak_passwords(world, password, message):
    with pytest.raises(ValidationFailed) as caught:
        change_password(world.bz_staff, factories.PASSWORD, password)
    assert message in caught.value.message


def test_the_policy_accepts_three_classes_of_four(world):
    for good in ("lowercase-and-1", "UPPER-and-lower", "Upper1lower2x", "中文密码Abc123"):
        assert passwords.problems(good) == [], good


def test_the_last_five_passwords_cannot_be_reused(world):
    user = world.bz_staff
    used = [factories.PASSWORD] + [f"Rotation-{n}-pass" for n in range(1, 6)]
    for old, new in zip(used, used[1:]):
        change_password(user, old, new)
    db.session.commit()
    # the current one and the four before it are refused; the one before those is allowed again
    for again in used[1:5]:
        with pytest.raises(ValidationFailed) as caught:
            change_password(user, used[-1], again)
        assert "最近 5 次" in caught.value.message
    assert db.session.execute(sa.select(sa.func.count(PasswordHistory.id))
                              .where(PasswordHistory.user_id == user.id)).scalar_one() == 5
    change_password(user, used[-1], used[0])  # the factory's password, six passwords ago: out of the history
    db.session.commit()
    with pytest.raises(ValidationFailed):  # and a reset link obeys the history too
        token = accounts.issue_link(user, LinkPurpose.RESET, world.bz_admin)
        accounts.use_link(token, LinkPurpose.RESET, used[3])


def test_an_expired_password_must_be_changed_before_anything_else(app, world, monkeypatch):
    monkeypatch.setitem(app.config, "PASSWORD_MAX_AGE_DAYS", 90)
    user = world.bz_staff
    user.password_changed_at = utcnow() - timedelta(days=91)
    db.session.commit()
    browser = Browser(app)
    assert browser.post("/login", data={"username": user.username, "password": factories.PASSWORD}).status_code == 302
    for path in ("/", "/firms", f"/bureaus/{world.bz.id}"):
        response = browser.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/account"), path
    page = browser.get("/account").get_data(as_text=True)
    assert "密码已过期" in page and "至少 10 位" in page
    assert Browser(app).post("/api/v1/tokens", json={"username": user.username, "password": factories.PASSWORD}).status_code == 403
    response = browser.post("/account/password", data={"current_password": factories.PASSWORD,
                                                       "new_password": STRONG, "confirm": STRONG})
    assert response.status_code == 302
    assert browser.get("/").status_code == 200
    assert not passwords.expired(_user(user.username))


def test_a_token_issued_before_the_password_expired_stops_until_it_is_changed(app, world, monkeypatch):
    """The web's account gate asks for a new password first; a token issued while the password was fresh is
    refused (403) from the moment it expires, and works again once it is changed."""
    monkeypatch.setitem(app.config, "PASSWORD_MAX_AGE_DAYS", 90)
    user = world.bz_staff
    client = Browser(app)
    token = client.post("/api/v1/tokens", json={"username": user.username, "password": factories.PASSWORD}).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/engagements", headers=headers).status_code == 200
    _user(user.username).password_changed_at = utcnow() - timedelta(days=91)
    db.session.commit()
    refused = client.get("/api/v1/engagements", headers=headers)
    assert refused.status_code == 403 and "密码已过期" in refused.json["error"]["message"]
    _user(user.username).password_changed_at = utcnow()
    db.session.commit()
    assert client.get("/api/v1/engagements", headers=headers).status_code == 200


def test_the_demo_waiver_is_off_in_production(app, app_ctx, monkeypatch):
    with passwords.policy_waived("test"):
        assert passwords.problems("evalhub-demo") == []
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    with passwords.policy_waived("test"):
        assert passwords.problems("evalhub-demo") != []


def test_only_the_demo_waiver_shares_one_hash_of_a_password(app, app_ctx, monkeypatch):
    with passwords.policy_waived("test"):
        inside = {passwords.hash_password("evalhub-demo") for _ in range(3)}
        assert len(inside) == 1 and passwords.matches(inside.pop(), "evalhub-demo")
        assert passwords.hash_password("another-one") != passwords.hash_password("evalhub-demo")
    assert passwords.hash_password("evalhub-demo") != passwords.hash_password("evalhub-demo")  # a salt each
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    with passwords.policy_waived("test"):
        assert passwords.hash_password("evalhub-demo") != passwords.hash_password("evalhub-demo")


# === the TOTP second factor =========================================================================

def _enrol(browser, user) -> pyotp.TOTP:
    assert browser.post("/account/totp/setup", data={"password": "wrong-Password-9"}).status_code == 422
    assert _user(user.username).totp_secret_encrypted is None
    begun = browser.post("/account/totp/setup", data={"password": factories.PASSWORD})
    assert begun.status_code == 200
    page = begun.get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page
    secret = decrypt_field(_user(user.username).totp_secret_encrypted)
    assert secret in page and _user(user.username).totp_secret_encrypted != secret  # encrypted at rest
    assert secret not in browser.get("/account/totp").get_data(as_text=True)  # shown once, at the begin
    totp = pyotp.TOTP(secret)
    wrong = "000000" if totp.now() != "000000" else "111111"
    assert browser.post("/account/totp/confirm", data={"code": wrong, "password": factories.PASSWORD}).status_code == 422
    assert browser.post("/account/totp/confirm", data={"code": totp.now(), "password": factories.PASSWORD}).status_code == 302
    assert _user(user.username).totp_enabled
    return totp


def _next_code(totp: pyotp.TOTP, steps: int = 1) -> str:
    return totp.at(int(time.time()) + 30 * steps)


def test_totp_enrolment_then_login_needs_the_code(app, world):
    user = world.bz_admin
    totp = _enrol(_browser(app, user), user)
    assert "user.totp_enabled" in _actions(user)

    browser = Browser(app)
    step_one = browser.post("/login", data={"username": user.username, "password": factories.PASSWORD})
    assert step_one.status_code == 302 and "/login/totp" in step_one.headers["Location"]
    assert _refused(browser)  # not signed in until the code is right
    wrong = browser.post("/login/totp", data={"code": "12345x"})
    assert wrong.status_code == 401 and "验证码不正确" in wrong.get_data(as_text=True)
    code = _next_code(totp)
    assert browser.post("/login/totp", data={"code": code}).status_code == 302
    assert not _refused(browser)
    # the same code is not accepted twice
    other = Browser(app)
    other.post("/login", data={"username": user.username, "password": factories.PASSWORD})
    assert other.post("/login/totp", data={"code": code}).status_code == 401
    # the API asks for the code too
    api = app.test_client()
    no_code = api.post("/api/v1/tokens", json={"username": user.username, "password": factories.PASSWORD})
    assert no_code.status_code == 401 and no_code.json["error"]["code"] == "totp_required"
    db.session.execute(sa.update(User).where(User.id == user.id).values(totp_last_step=None))
    db.session.commit()
    with_code = api.post("/api/v1/tokens", json={"username": user.username, "password": factories.PASSWORD,
                                                  "totp": totp.now()})
    assert with_code.status_code == 201 and with_code.json["token"]
    # a stale pending step (older than five minutes) starts again
    stale = Browser(app)
    stale.post("/login", data={"username": user.username, "password": factories.PASSWORD})
    with stale.app.app_context(), stale.client.session_transaction() as session:
        pending = dict(session["totp_pending"])
        pending["at"] -= accounts.PENDING_SECONDS + 1
        session["totp_pending"] = pending
    assert "/login" in stale.post("/login/totp", data={"code": "000000"}).headers["Location"]


def test_totp_failures_count_toward_the_lock(app, world):
    user = world.bz_admin
    _enrol(_browser(app, user), user)
    # the wrong password re-entered at the enrolment's begin counts too (the right ones after give back only their own)
    assert _user(user.username).failed_logins == 1
    browser = Browser(app)
    browser.post("/login", data={"username": user.username, "password": factories.PASSWORD})
    limit = app.config["LOGIN_MAX_FAILURES"]
    for _ in range(limit - 2):
        assert browser.post("/login/totp", data={"code": "000001"}).status_code == 401
    locked = browser.post("/login/totp", data={"code": "000001"})
    assert locked.status_code == 302 and "/login" in locked.headers["Location"]
    assert _user(user.username).locked_until is not None
    assert "锁定" in (authenticate(user.username, factories.PASSWORD).error or "")
    # and a right password does not reset the count of wrong codes
    user2 = world.kz_admin
    _enrol(_browser(app, user2), user2)
    for _ in range(limit - 2):
        assert authenticate(user2.username, factories.PASSWORD).pending is not None
        assert accounts.verify_totp_login(_user(user2.username), "000001").user is None
    assert _user(user2.username).failed_logins == limit - 1


def test_a_pending_second_factor_secret_expires(app, world, monkeypatch):
    """Rule (OWASP ASVS 2.8 / 3.7: an enrolment secret is short-lived): an enrolment begun and not confirmed within
    ``TOTP_ENROLMENT_MINUTES`` (15) can no longer be confirmed — the confirmation is refused with a Chinese message
    asking to begin again, and the stale secret is cleared, so no code of it is accepted afterwards.

    Who is hurt otherwise: the administrator whose QR code and secret stood on a screen at the begin — shoulder-surfed,
    photographed, left in a screenshot. The unconfirmed secret stayed valid for ever, so weeks later whoever kept it
    (and had a moment at the signed-in browser with the password) could finish the enrolment with their own copy:
    from then on they hold a second factor of the account, and the owner, who abandoned the enrolment, is asked at
    sign-in for codes of a phone they never set up."""
    user = world.bz_admin
    browser = _browser(app, user)
    assert browser.post("/account/totp/setup", data={"password": factories.PASSWORD}).status_code == 200
    secret = decrypt_field(_user(user.username).totp_secret_encrypted)
    minutes = app.config.get("TOTP_ENROLMENT_MINUTES", 15)
    begun = utcnow()
    monkeypatch.setattr(accounts, "utcnow", lambda: begun + timedelta(minutes=minutes, seconds=30))
    late = browser.post("/account/totp/confirm", data={"code": pyotp.TOTP(secret).now(), "password": factories.PASSWORD})
    assert late.status_code == 422, late.status_code
    assert "重新开始绑定" in late.get_data(as_text=True)
    stale = _user(user.username)
    assert not stale.totp_enabled and stale.totp_secret_encrypted is None, "the stale secret must be cleared"
    assert not accounts.totp_pending(stale)
    assert "user.totp_enabled" not in _actions(stale)
    # Begun again and confirmed within the lifetime: enabled as before.
    monkeypatch.setattr(accounts, "utcnow", utcnow)
    assert browser.post("/account/totp/setup", data={"password": factories.PASSWORD}).status_code == 200
    secret = decrypt_field(_user(user.username).totp_secret_encrypted)
    begun = utcnow()
    monkeypatch.setattr(accounts, "utcnow", lambda: begun + timedelta(minutes=minutes - 1))
    assert accounts.totp_pending(_user(user.username))
    on_time = browser.post("/account/totp/confirm", data={"code": pyotp.TOTP(secret).now(), "password": factories.PASSWORD})
    assert on_time.status_code == 302 and _user(user.username).totp_enabled


WRONG = "wrong-Password-9"


def _recheck_failures(user) -> list[AuditEvent]:
    db.session.expire_all()
    return [e for e in audit.history("user_account", user.id)
            if e.action in ("user.login_failed", "user.reauth_failed", "user.locked")]


def test_wrong_passwords_re_entered_count_toward_the_lock(app, world):
    """Rule (GB/T 22239-2019 身份鉴别 "应具有登录失败处理功能…限制非法登录次数"; OWASP ASVS 2.2.1): the current password
    asked again on a signed-in page — binding an authenticator (its begin and its confirmation), changing the password
    — counts like a wrong password at sign-in: each wrong one is in the audit log, the failures add up with the
    sign-ins' (web and API) toward ``LOGIN_MAX_FAILURES``, and the last one allowed locks the account for
    ``LOGIN_LOCK_MINUTES`` (``user.locked``) and ends the session that guessed. While locked, neither the web
    sign-in nor the API (``POST /api/v1/tokens``) lets the right password in.

    Who is hurt otherwise: the account's owner. Whoever holds their signed-in browser for a while — a PC left
    unlocked in the bureau's office, a copied session cookie — could try passwords on these forms without any
    limit or trace, and with the password found change it (locking the owner out) or bind their own phone."""
    user = world.bz_admin
    limit = app.config["LOGIN_MAX_FAILURES"]
    assert limit >= 4
    browser = _browser(app, user)
    assert browser.post("/account/totp/setup", data={"password": factories.PASSWORD}).status_code == 200  # pending
    # one wrong password at the API's sign-in counts toward the same lock
    api = app.test_client()
    assert api.post("/api/v1/tokens", json={"username": user.username, "password": WRONG}).status_code == 401
    forms = [("/account/totp/confirm", {"code": "000000", "password": WRONG}),
             ("/account/totp/setup", {"password": WRONG}),
             ("/account/password", {"current_password": WRONG, "new_password": STRONG, "confirm": STRONG})]
    for n in range(limit - 2):
        path, data = forms[n % len(forms)]
        refused = browser.post(path, data=data)
        assert refused.status_code == 422, (path, refused.status_code)
        assert "密码不正确" in refused.get_data(as_text=True)
    assert _user(user.username).failed_logins == limit - 1
    assert [e.action for e in _recheck_failures(user)] == ["user.login_failed"] + ["user.reauth_failed"] * (limit - 2)
    assert "修改密码" in _recheck_failures(user)[-1].summary or "两步验证" in _recheck_failures(user)[-1].summary
    # the last one allowed locks the account and ends the session that guessed
    last = browser.post("/account/password", data={"current_password": WRONG, "new_password": STRONG, "confirm": STRONG})
    assert last.status_code == 302 and "/login" in last.headers["Location"], last.status_code
    assert _refused(browser)
    locked = _user(user.username)
    assert locked.locked_until is not None and locked.locked_until > utcnow()
    assert passwords.matches(locked.password_hash, factories.PASSWORD)  # nothing was changed
    assert [e.action for e in _recheck_failures(user)][-2:] == ["user.reauth_failed", "user.locked"]
    # while locked, the right password opens neither the web nor the API
    assert "锁定" in (authenticate(user.username, factories.PASSWORD).error or "")
    token = api.post("/api/v1/tokens", json={"username": user.username, "password": factories.PASSWORD})
    assert token.status_code == 401 and "锁定" in token.json["error"]["message"]


def test_a_wrong_password_to_turn_the_second_factor_off_counts_too(app, world):
    """The same rule on 停用两步验证 (core/accounts.py ``totp_disable``): with the password found there, a borrowed
    session would switch the owner's second factor off. Wrong passwords count; the last allowed locks and signs
    the browser out; the second factor stays on."""
    user = world.kz_admin
    browser = _browser(app, user)
    _enrol(browser, user)  # one wrong password at its begin (counted), then right ones
    limit = app.config["LOGIN_MAX_FAILURES"]
    assert _user(user.username).failed_logins == 1
    for _ in range(limit - 2):
        assert browser.post("/account/totp/disable", data={"password": WRONG}).status_code == 422
    last = browser.post("/account/totp/disable", data={"password": WRONG})
    assert last.status_code == 302 and "/login" in last.headers["Location"]
    assert _refused(browser)
    assert _user(user.username).totp_enabled and _user(user.username).locked_until is not None


def test_a_right_password_re_entered_gives_back_only_its_own_attempt(app, world):
    """A right password re-entered in a signed-in session does not clear the failures counted before it (they end
    at the next whole sign-in, or at the lock): a session does not show that its holder signed in (a copied
    cookie), and a holder who saw the password typed must not reset the count of wrong second-factor codes with it
    (core/services.py ``recheck_password``). An account locked by failures elsewhere is not checked at all until
    the lock ends (the same answer as the sign-in's), and that lock does not sign the owner's browser out."""
    user = world.bz_staff
    browser = _browser(app, user)
    for _ in range(2):
        assert browser.post("/account/password", data={"current_password": WRONG, "new_password": STRONG,
                                                       "confirm": STRONG}).status_code == 422
    assert _user(user.username).failed_logins == 2
    # a new password the policy refuses after the right current one: that attempt is not counted, the two stay
    weak = browser.post("/account/password", data={"current_password": factories.PASSWORD, "new_password": "short",
                                                   "confirm": "short"})
    assert weak.status_code == 422 and _user(user.username).failed_logins == 2
    assert authenticate(user.username, factories.PASSWORD).user is not None  # a whole sign-in clears them
    assert _user(user.username).failed_logins == 0
    # locked by someone guessing at the login page: the re-check is refused unchecked, the session stays
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        authenticate(user.username, WRONG)
    refused = browser.post("/account/password", data={"current_password": factories.PASSWORD, "new_password": STRONG,
                                                      "confirm": STRONG})
    assert refused.status_code == 422 and "锁定" in refused.get_data(as_text=True)
    assert passwords.matches(_user(user.username).password_hash, factories.PASSWORD)
    assert not _refused(browser)


def test_the_bureau_setting_forces_admins_to_enrol(app, world):
    set_setting(world.bz, "security.require_totp_admins", "on", world.bz_admin)
    db.session.commit()
    # a county below inherits it; staff are not concerned
    assert accounts.totp_required(world.lt_admin) and not accounts.totp_required(world.kz_admin)
    assert accounts.gate(world.bz_staff) is None
    browser = _browser(app, world.lt_admin)
    for path in ("/", "/account", f"/bureaus/{world.lt.id}/users"):
        response = browser.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/account/totp"), path
    assert "绑定验证器之后才能继续" in browser.get("/account/totp").get_data(as_text=True)
    totp = _enrol(browser, world.lt_admin)
    assert browser.get("/").status_code == 200
    # required: it cannot be switched off
    refused = browser.post("/account/totp/disable", data={"password": factories.PASSWORD})
    assert refused.status_code == 409
    assert _user("lt.admin").totp_enabled
    # the system admin follows the region's (top-level) value
    assert not accounts.totp_required(world.sysadmin)
    set_setting(world.region, "security.require_totp_admins", "on", world.sysadmin)
    db.session.commit()
    assert accounts.totp_required(world.sysadmin)
    assert totp.now()


def test_an_admin_resets_a_lost_second_factor(app, world):
    user = world.lt_admin
    _enrol(_browser(app, user), user)
    assert _browser(app, world.kz_admin).post(f"/users/{user.id}/totp-reset", data={"reason": "丢失手机"}).status_code == 404
    admin = _browser(app, world.bz_admin)
    assert admin.post(f"/users/{user.id}/totp-reset", data={"reason": ""}).status_code == 422
    assert admin.post(f"/users/{user.id}/totp-reset", data={"reason": "丢失手机"}).status_code == 302
    assert not _user("lt.admin").totp_enabled and "user.totp_reset" in _actions(user)
    assert authenticate("lt.admin", factories.PASSWORD).user is not None


def test_no_administrator_looks_after_a_fellow_administrator(app, world):
    """A reset link, a cleared second factor, 停用/启用, 退出所有登录, a role: refused to a fellow administrator
    (same bureau; system administrators among themselves), on the page and in the service; the bureau above
    and the system administrator may; the server's operator recovers a system administrator on the CLI."""
    from evalhub.core import permissions

    peer = factories.user("bz.admin2", Role.BUREAU_ADMIN, bureau_id=world.bz.id)
    peer.totp_secret_encrypted, peer.totp_enabled_at = "x", utcnow()
    other_sysadmin = factories.user("admin2", Role.SYSTEM_ADMIN)
    db.session.commit()
    for actor, target in [(world.bz_admin, peer), (world.sysadmin, other_sysadmin)]:
        for action in ("user.administer", "user.account", "user.change_role"):
            assert not permissions.can(actor, action, target), (actor.username, action, target.username)
        browser = _browser(app, actor)
        assert browser.post(f"/users/{target.id}/reset-link").status_code == 403
        assert browser.post(f"/users/{target.id}/totp-reset", data={"reason": "丢失手机"}).status_code == 403
        assert browser.post(f"/users/{target.id}/disable", data={"reason": "试探"}).status_code == 403
        assert browser.post(f"/users/{target.id}/sign-out-everywhere").status_code == 403
    with pytest.raises(PermissionDenied):
        accounts.admin_reset_link(peer, world.bz_admin)
    with pytest.raises(PermissionDenied):
        accounts.totp_reset(peer, world.bz_admin, "丢失手机")
    db.session.rollback()
    assert _user("bz.admin2").totp_secret_encrypted and _user("bz.admin2").is_enabled
    assert not {"user.link_issued", "user.totp_reset", "user.disabled"} & set(_actions(_user("bz.admin2")))
    page = _browser(app, world.bz_admin).get(f"/bureaus/{world.bz.id}/users").get_data(as_text=True)
    assert "reset-link-bz.admin2" not in page and f"/users/{peer.id}/disable" not in page
    # the bureau's own staff, the bureau above, the system administrator: as before
    assert _browser(app, world.bz_admin).post(f"/users/{world.bz_staff.id}/reset-link").status_code == 200
    assert _browser(app, world.bz_admin).post(f"/users/{world.lt_admin.id}/disable", data={"reason": "调离"}).status_code == 302
    assert _browser(app, world.sysadmin).post(f"/users/{peer.id}/reset-link").status_code == 200
    # a system administrator locked out: the operator's command line
    result = app.test_cli_runner().invoke(args=["evalhub", "users", "reset-link", "admin2"])
    assert result.exit_code == 0 and "/account/" in result.output, result.output


def test_totp_is_for_administrators(app, world):
    staff = _browser(app, world.bz_staff)
    assert staff.get("/account/totp").status_code == 403
    assert staff.post("/account/totp/setup").status_code == 403


# === the directory ==================================================================================

def test_the_directory_lists_filters_and_exports_within_scope(app, world):
    sysadmin = _browser(app, world.sysadmin)
    page = sysadmin.get("/users").get_data(as_text=True)
    assert "firm1" in page and "kz.staff" in page
    filtered = sysadmin.get("/users?role=bureau_admin&q=bz").get_data(as_text=True)
    assert "bz.admin" in filtered and "bz.staff" not in filtered and "kz.admin" not in filtered
    assert sysadmin.get("/users?bureau=abc&status=nope&page=99999999999").status_code == 200
    export = sysadmin.get("/users?export=xlsx")
    assert export.status_code == 200 and export.mimetype.endswith("spreadsheetml.sheet")
    prefecture = _browser(app, world.bz_admin).get("/users").get_data(as_text=True)
    assert "lt.staff" in prefecture and "kz.staff" not in prefecture and "firm1" not in prefecture
    assert _browser(app, world.bz_staff).get("/users").status_code == 403
    assert _browser(app, world.firm_user).get("/users").status_code == 403


def test_the_operator_recovers_an_administrator_from_the_command_line(app, world):
    """The only administrator lost their password and their phone: a reset link and a cleared second factor,
    from the server's command line, both audited."""
    user = world.sysadmin
    user.totp_secret_encrypted, user.totp_enabled_at = "x", utcnow()
    db.session.commit()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["evalhub", "users", "reset-link", "nobody"]).exit_code == 2
    result = runner.invoke(args=["evalhub", "users", "reset-link", "admin"])
    assert result.exit_code == 0, result.output
    url = re.search(r"\S+/account/reset/\S+", result.output).group(0)
    assert url.startswith("http://localhost:8000/")  # EVALHUB_PUBLIC_URL when set
    assert runner.invoke(args=["evalhub", "users", "reset-totp", "admin"]).exit_code == 2  # --reason is required
    result = runner.invoke(args=["evalhub", "users", "reset-totp", "admin", "--reason", "手机丢失"])
    assert result.exit_code == 0, result.output
    assert not _user("admin").totp_enabled
    assert {"user.link_issued", "user.totp_reset"} <= set(_actions(user))
    assert Browser(app).post(_path(url), data={"new_password": STRONG, "confirm": STRONG}).status_code == 302
    assert authenticate("admin", STRONG).user is not None


@pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"), reason="concurrency is tested against PostgreSQL")
def test_a_link_used_twice_at_once_sets_one_password(app, world):
    token = accounts.issue_link(world.bz_staff, LinkPurpose.RESET, world.bz_admin)
    db.session.commit()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def use(password: str) -> None:
        with app.app_context(), app.test_request_context():
            try:
                barrier.wait(10)
                accounts.use_link(token, LinkPurpose.RESET, password)
                db.session.commit()
                outcomes.append("ok")
            except Exception as exc:  # the loser: the link is spent
                db.session.rollback()
                outcomes.append(type(exc).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=use, args=(p,)) for p in (STRONG, STRONG2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["Conflict", "ok"]
    assert db.session.execute(sa.select(sa.func.count(AuditEvent.id))
                              .where(AuditEvent.action == "user.password_reset")).scalar_one() == 1


def test_a_password_change_or_a_deactivation_voids_the_links_issued_before(app, world):
    """A reset link asked for before the user chose a new password, or issued before the account was disabled,
    is no way back in: neither overrides the password nor wakes with the account re-enabled."""
    from evalhub.core.services import set_enabled

    user = world.bz_staff
    from evalhub.core.errors import Conflict

    earlier = accounts.issue_link(user, LinkPurpose.RESET, world.bz_admin)
    assert accounts.check_link(earlier, LinkPurpose.RESET).ok
    change_password(user, factories.PASSWORD, STRONG)
    assert not accounts.check_link(earlier, LinkPurpose.RESET).ok
    with pytest.raises(Conflict):
        accounts.use_link(earlier, LinkPurpose.RESET, STRONG2, STRONG2)

    before = accounts.issue_link(user, LinkPurpose.RESET, world.bz_admin)
    set_enabled(user, False, world.bz_admin, "离职")
    set_enabled(user, True, world.bz_admin)
    assert not accounts.check_link(before, LinkPurpose.RESET).ok
    with pytest.raises(Conflict):
        accounts.use_link(before, LinkPurpose.RESET, STRONG2, STRONG2)
    assert authenticate(user.username, STRONG).user is not None
