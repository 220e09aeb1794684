"""Audit: accounts and deployment, tried as an attacker and as a bureau administrator.

Each test states the rule it holds the code to, who is hurt and the source; it fails on the current code because
of the defect it names, and passes once that defect is fixed. Nothing here changes product code.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.models import AuditEvent, User
from evalhub.extensions import db
from tests import factories
from tests.browsers import Browser


def _user(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


def _events_about(user: User) -> list[AuditEvent]:
    """Events naming the account: as their object, as their actor, or in their summary."""
    return list(db.session.execute(sa.select(AuditEvent).where(sa.or_(
        sa.and_(AuditEvent.object_type == User.__tablename__, AuditEvent.object_id == user.id),
        AuditEvent.actor_id == user.id, AuditEvent.summary.contains(user.username))).order_by(AuditEvent.id)).scalars())


# --- a deactivation undone by a lower authority ---------------------------------------------------------

def test_a_firm_admin_cannot_re_enable_an_account_the_system_administrator_disabled(app, world):
    """GB/T 22239-2019 8.1.4.2 访问控制 (授予管理用户所需的最小权限，实现管理用户的权限分离) and common practice: a
    deactivation decided by a higher authority (the platform's system administrator, e.g. because the account was
    used by someone else — 冒用) is lifted by that authority, not by the party it was imposed on.

    Who is hurt: the bureaus and the platform operator. The system administrator disables a firm's user for misuse,
    with a reason; the firm's own administrator presses 启用 on /users/<id>/enable and the account is back at once,
    without a reason and without anyone on the bureau side agreeing — the deactivation is worthless.

    Defect: core/services.py ``set_enabled`` (via core/permissions.py ``manages_account``, "user.account") lets
    whoever may disable an account also re-enable it, whoever disabled it; a firm administrator may manage every
    account of the firm, so it lifts the platform's own deactivation."""
    admin = world.firm_user
    admin.is_firm_admin = True
    member = factories.user("firm1.member", Role.FIRM_USER, firm_id=world.firm.id)
    db.session.commit()
    system = Browser(app).sign_in(world.sysadmin.username)
    assert system.post(f"/users/{member.id}/disable", data={"reason": "账号被他人冒用，平台停用"}).status_code == 302
    assert not _user(member.id).is_enabled

    firm_admin = Browser(app).sign_in(admin.username)
    response = firm_admin.post(f"/users/{member.id}/enable", data={})
    assert not _user(member.id).is_enabled, (
        f"the firm's administrator re-enabled (HTTP {response.status_code}) an account the system administrator "
        "had disabled for misuse")
    assert response.status_code == 403


# --- binding an authenticator without proving who one is ---------------------------------------------

def test_binding_an_authenticator_asks_for_the_password_again(app, world):
    """OWASP ASVS 4.0.3 3.7.1 (re-authentication before sensitive account modifications) and 2.8 (authenticator
    lifecycle); GB/T 22239-2019 8.1.4.1 身份鉴别. Turning the second factor *off* already asks for the password
    (core/accounts.py ``totp_disable``); turning it *on* — binding an authenticator — must ask too.

    Who is hurt: an administrator. Whoever holds their browser session for a moment (an unlocked PC in the office,
    a stolen cookie) binds their own phone on /account/totp/setup + /confirm: from then on the administrator cannot
    sign in (the code is on the attacker's phone) until the bureau above resets it, and the attacker who later
    learns the password holds the only second factor.

    Defect: core/auth_views.py ``account_totp_setup`` (ActionForm, CSRF token only) calls
    core/accounts.py ``totp_begin`` without the current password; ``totp_confirm`` asks only for the code of the
    authenticator being bound."""
    admin = world.bz_admin
    browser = Browser(app).sign_in(admin.username)
    response = browser.post("/account/totp/setup", data={})
    assert _user(admin.id).totp_secret_encrypted is None, (
        f"a signed-in session started binding a new authenticator (HTTP {response.status_code}) without the password")
    assert 400 <= response.status_code < 500


# --- a budget unit's account that nobody at its bureau can recover ---------------------------------------

def test_the_bureau_that_opened_a_budget_units_account_can_issue_it_a_new_link(app, world):
    """Account lifecycle (GB/T 22239-2019 8.1.4.1 身份鉴别; docs/rules.md Accounts): whoever opens an account that
    waits for activation can give a new activation link when the first one is lost or expires (7 days,
    ``ACTIVATION_LINK_DAYS``) — the bureau does so for its staff (/users/<id>/reset-link), for its experts
    (``reissue_expert_link``) and for its firms (``reissue_firm_link``).

    Who is hurt: a county bureau and its evaluated budget units (闭环). The county's administrator opens
    轮台县医疗保障局's account on /results/units/<id>/accounts; the unit misses the e-mail or the week; the county —
    which sees the account in its directory and may disable it — gets 403 on 重新签发激活链接, and there is no
    other button: only the platform's system administrator can ever recover the unit's account.

    Defect: core/permissions.py ``administers`` ("user.administer", used by core/account_views.py
    ``user_reset_link`` and core/accounts.py ``admin_reset_link``) refuses every account that is not a bureau
    role, although ``manages_account`` already gives a unit's account to the administrator of the unit's bureau."""
    from evalhub.results import services as results

    unit = world.units["轮台县医疗保障局"]
    user, _token = results.create_unit_account(world.lt_admin, unit, username="lt.ybj", display_name="轮台医保局王科长")
    db.session.commit()
    assert user.awaiting_activation

    county = Browser(app).sign_in(world.lt_admin.username)
    response = county.post(f"/users/{user.id}/reset-link", data={})
    assert response.status_code == 200, (
        f"the county bureau that opened the unit's account cannot issue it a new activation link "
        f"(HTTP {response.status_code})")
    assert "/account/activate/" in response.get_data(as_text=True)


# --- sign-ins leave no trace in the audit log --------------------------------------------------------

def test_sign_ins_and_failed_sign_ins_are_in_the_audit_log(app, world):
    """GB/T 22239-2019 8.1.4.3 安全审计 a) 审计覆盖到每个用户，对重要的用户行为和重要安全事件进行审计; b) 审计记录
    应包括事件的日期和时间、用户、事件类型、事件是否成功. OWASP ASVS 4.0.3 7.2.1 (all authentication decisions are
    logged). A sign-in (web or API token) and a refused sign-in are the first events an inspection of the log asks
    for.

    Who is hurt: the bureau answering for an incident ("who was signed in as bz.staff on the day the bid prices
    were read?") and the 等保 assessment. Only a lock after five failures is recorded (``user.locked``); a
    successful sign-in updates ``last_login_at`` (overwritten by the next one) and a wrong password leaves nothing.

    Defect: core/services.py ``_authenticate`` (and core/accounts.py ``_verify_totp_login``,
    evalhub/api ``create_token``) write no audit event for a successful or a failed sign-in."""
    staff = world.bz_staff
    before = len(_events_about(staff))
    Browser(app).sign_in(staff.username)
    after_success = _events_about(staff)
    assert len(after_success) > before, "a successful sign-in of bz.staff left no audit event"

    refused = Browser(app).post("/login", data={"username": staff.username, "password": "wrong-Password-9"},
                                environ_base={"REMOTE_ADDR": "10.7.7.7"})
    assert refused.status_code == 401
    after_failure = _events_about(staff)
    assert len(after_failure) > len(after_success), "a refused sign-in of bz.staff left no audit event"


# --- production configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Production", "prod"])
def test_an_unknown_environment_name_is_refused_not_run_as_development(monkeypatch, tmp_path, name):
    """OWASP ASVS 4.0.3 14.1 / 14.3 (secure build and configuration; fail securely) and 6.4.1 (no default secrets):
    the production safeguards (a real EVALHUB_SECRET_KEY, EVALHUB_PUBLIC_URL for e-mailed links, Secure cookies and
    HSTS, no demo data, no simulated clock) hang on ``EVALHUB_ENV == "production"``; any other spelling must stop
    the start, never silently give the development defaults.

    Who is hurt: every account on a server whose operator wrote ``EVALHUB_ENV=Production`` or ``prod``: it starts
    with a generated key, cookies without Secure over the proxy's HTTPS, reset links built from the request's Host
    header (reset poisoning, as no EVALHUB_PUBLIC_URL is required) — and ``flask evalhub demo`` loads ~120 demo
    accounts whose published password is in README.md into the production database.

    Defect: evalhub/config.py ``Config.__init__`` takes any value of EVALHUB_ENV and treats everything but the
    exact string "production" as development."""
    from evalhub.config import Config

    monkeypatch.setenv("EVALHUB_ENV", name)
    monkeypatch.delenv("EVALHUB_SECRET_KEY", raising=False)
    monkeypatch.delenv("EVALHUB_PUBLIC_URL", raising=False)
    monkeypatch.delenv("EVALHUB_COOKIE_SECURE", raising=False)
    try:
        config = Config(tmp_path)
    except RuntimeError:
        return  # refused to start (as production without its key would be, or as an unknown name): fixed
    pytest.fail(f"EVALHUB_ENV={name!r} started as {config.ENV_NAME!r} with development defaults: "
                f"SESSION_COOKIE_SECURE={config.SESSION_COOKIE_SECURE}, PUBLIC_URL={config.PUBLIC_URL!r}, "
                "a generated session key")


def test_production_never_runs_in_flask_debug_mode(app, monkeypatch, tmp_path):
    """Flask documentation, "Debug Mode" / "Deploying to Production": "Do not enable debug mode when deploying in
    production"; OWASP ASVS 4.0.3 14.3.2 (debug modes disabled in production). Flask turns debug on from the
    FLASK_DEBUG environment variable by itself, so the application must refuse it (or switch it off) when
    EVALHUB_ENV=production.

    Who is hurt: everyone on the server. With FLASK_DEBUG=1 left in /etc/evalhub/evalhub.env (or the shell that
    runs `flask --app wsgi run`), an unhandled error is propagated instead of the Chinese 500 page, templates are
    re-read from disk, and under `flask run` the Werkzeug debugger offers a console that runs Python.

    Defect: evalhub/__init__.py ``create_app`` / evalhub/config.py ``Config`` check the keys and the public address
    in production but not ``app.debug``."""
    from evalhub import create_app
    from evalhub.core import jobs

    monkeypatch.setenv("EVALHUB_ENV", "production")
    monkeypatch.setenv("EVALHUB_SECRET_KEY", "a-production-secret-" + "5e1d" * 8)
    monkeypatch.setenv("EVALHUB_PUBLIC_URL", "https://evalhub.example.gov.cn")
    monkeypatch.setenv("EVALHUB_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("FLASK_DEBUG", "1")
    try:
        try:
            production = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                                     "FILE_STORE": app.config["FILE_STORE"], "MODELS_DIR": app.config["MODELS_DIR"]})
        except RuntimeError as exc:
            assert "DEBUG" in str(exc).upper() or "调试" in str(exc), exc
            return
        assert not production.debug, "the production application runs with Flask's debug mode on (FLASK_DEBUG=1)"
    finally:
        jobs.configure(app)


# --- a link shown to an administrator outlives the administrator's own deactivation -----------------------

def test_a_reset_link_an_administrator_issued_stops_working_when_that_administrator_is_disabled(app, world):
    """GB/T 22239-2019 8.1.4.2 访问控制 (应及时删除或停用多余的、过期的账户; 管理用户的权限分离) and OWASP ASVS 4.0.3
    2.5.x (recovery secrets must not outlive the trust they were issued on): a reset link issued by an
    administrator is shown on that administrator's screen (core/account_views.py ``_link_issued``); when that
    administrator is removed from office (停用) the links they hold and nobody has used yet stop working — the
    person concerned asks the remaining administrator for a new one.

    Who is hurt: the bureau and its staff. bz.admin, about to be dismissed, issues a 重置密码 link for bz.staff and
    keeps it; the system administrator disables bz.admin (sessions and API tokens end, as they should); from home,
    the former administrator opens the public reset page, sets bz.staff's password and works as bz.staff — under
    the staff member's name in the audit log — for the whole validity of the link (24 hours).

    Defect: core/services.py ``set_enabled`` voids the disabled account's *own* links only
    (``void_links(user)``); the unused links it *issued* (``AccountLink.created_by_id``) stay live, and
    core/accounts.py ``check_link`` does not ask whether the issuer is still enabled."""
    import re

    from evalhub.core.services import authenticate

    issuer = Browser(app).sign_in(world.bz_admin.username)
    issued = issuer.post(f"/users/{world.bz_staff.id}/reset-link", data={})
    assert issued.status_code == 200
    path = re.search(r"/account/reset/[A-Za-z0-9_\-]+", issued.get_data(as_text=True)).group(0)

    system = Browser(app).sign_in(world.sysadmin.username)
    assert system.post(f"/users/{world.bz_admin.id}/disable", data={"reason": "调离岗位，停用管理员账户"}).status_code == 302
    assert not _user(world.bz_admin.id).is_enabled

    chosen = "Taken-Over-2024!"
    response = Browser(app).post(path, data={"new_password": chosen, "confirm": chosen})
    db.session.expire_all()
    assert authenticate(world.bz_staff.username, chosen).user is None, (
        f"the disabled administrator's reset link still set bz.staff's password (HTTP {response.status_code})")
    assert response.status_code in (409, 410)


# --- "unique whatever its case", except when two accounts are opened together -----------------------------

def test_two_accounts_whose_names_differ_only_in_case_cannot_be_opened_at_once(app, world):
    """docs/rules.md, Accounts: "A login name is unique whatever its case … on every path that opens an account"
    (core/accounts.py ``username_problem``). Common practice (PostgreSQL documentation, "Indexes on Expressions":
    ``CREATE UNIQUE INDEX … ON users (lower(username))``): a uniqueness rule is held by the database, not only by a
    check made before the insert.

    Who is hurt: the bureau reading its audit log and its people. Two administrators (or a firm's public
    self-registration and a bureau's form) open "KRL.Wang" and "krl.wang" at the same moment: both checks see no
    such name, both rows are written, and from then on two different people act under names the log and every page
    show as the same person — the confusion the rule exists to prevent.

    Defect: core/accounts.py ``username_problem`` checks ``lower(username)`` with a SELECT; the table's only
    constraint is ``unique=True`` on the name as typed (core/models.py ``User.username``), so simultaneous
    creations both succeed (SQLite and PostgreSQL alike)."""
    from evalhub.core import accounts
    from evalhub.core.models import Bureau

    def create(username: str, name: str):
        return lambda: accounts.create_bureau_account(
            db.session.get(User, world.krl_admin.id), db.session.get(Bureau, world.krl.id), username=username,
            display_name=name, role="bureau_staff")

    factories.at_once(app, create("KRL.Wang", "王一"), create("krl.wang", "王二"))
    db.session.expire_all()
    names = db.session.execute(sa.select(User.username).where(sa.func.lower(User.username) == "krl.wang")).scalars().all()
    assert len(names) == 1, f"two accounts whose names differ only in case were opened at once: {sorted(names)}"
