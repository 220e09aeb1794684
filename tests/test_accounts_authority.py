"""Accounts after the audit of accounts and deployment (tests/test_audit_accounts.py): who lifts a deactivation,
links of a disabled issuer, the unit's bureau and its accounts' links, sign-ins in the audit log, login names
whatever their case."""
from __future__ import annotations

import pyotp
import sqlalchemy as sa

from evalhub.core import accounts, concurrency
from evalhub.core.personal import encrypt_field
from evalhub.core.enums import Authority, Role
from evalhub.core.models import AuditEvent, User
from evalhub.core.services import authenticate, set_enabled
from evalhub.extensions import db
from tests import factories
from tests.browsers import Browser


def _user(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


def _events(user: User, action: str) -> list[AuditEvent]:
    return list(db.session.execute(sa.select(AuditEvent).where(
        AuditEvent.object_type == User.__tablename__, AuditEvent.object_id == user.id, AuditEvent.action == action)
        .order_by(AuditEvent.id)).scalars())


# --- who lifts a deactivation ------------------------------------------------------------------------------

def test_a_bureau_admin_cannot_re_enable_staff_the_system_administrator_disabled(app, world):
    system = Browser(app).sign_in(world.sysadmin.username)
    assert system.post(f"/users/{world.bz_staff.id}/disable", data={"reason": "冒用，平台停用"}).status_code == 302
    assert _user(world.bz_staff.id).disabled_authority == Authority.SYSTEM

    bureau = Browser(app).sign_in(world.bz_admin.username)
    page = bureau.get(f"/bureaus/{world.bz.id}/users").get_data(as_text=True)
    assert f'data-testid="disabled-by-{world.bz_staff.username}"' in page  # no 启用 button, who disabled it instead
    assert bureau.post(f"/users/{world.bz_staff.id}/enable", data={}).status_code == 403
    assert not _user(world.bz_staff.id).is_enabled

    assert system.post(f"/users/{world.bz_staff.id}/enable", data={}).status_code == 302
    assert _user(world.bz_staff.id).is_enabled and _user(world.bz_staff.id).disabled_authority is None


def test_a_bureau_below_cannot_lift_what_the_bureau_above_decided(app, world):
    """The region disables a county administrator: the prefecture between them (which also looks after it) may not
    enable it again; the region may."""
    set_enabled(world.krl_admin, False, world.region_admin, "调离岗位")
    db.session.commit()
    assert _user(world.krl_admin.id).disabled_authority == Authority.REGION
    prefecture = Browser(app).sign_in(world.bz_admin.username)
    assert prefecture.post(f"/users/{world.krl_admin.id}/enable", data={}).status_code == 403
    assert not _user(world.krl_admin.id).is_enabled
    region = Browser(app).sign_in(world.region_admin.username)
    assert region.post(f"/users/{world.krl_admin.id}/enable", data={}).status_code == 302
    assert _user(world.krl_admin.id).is_enabled


def test_what_a_firm_admin_disabled_the_firm_admin_or_the_bureau_may_lift(app, world):
    admin = world.firm_user
    admin.is_firm_admin = True
    member = factories.user("firm1.helper", Role.FIRM_USER, firm_id=world.firm.id)
    other = factories.user("firm1.second", Role.FIRM_USER, firm_id=world.firm.id)
    db.session.commit()
    firm_admin = Browser(app).sign_in(admin.username)
    for target in (member, other):
        assert firm_admin.post(f"/users/{target.id}/disable", data={"reason": "离职"}).status_code == 302
        assert _user(target.id).disabled_authority == Authority.FIRM
    assert firm_admin.post(f"/users/{member.id}/enable", data={}).status_code == 302
    assert _user(member.id).is_enabled
    system = Browser(app).sign_in(world.sysadmin.username)
    assert system.post(f"/users/{other.id}/enable", data={}).status_code == 302
    assert _user(other.id).is_enabled


def test_an_account_disabled_before_the_authority_was_recorded_is_the_bureau_sides(app, world):
    admin = world.firm_user
    admin.is_firm_admin = True
    member = factories.user("firm1.legacy", Role.FIRM_USER, firm_id=world.firm.id)
    member.is_enabled = False  # as the migration leaves one with no "user.disabled" event
    db.session.commit()
    assert Browser(app).sign_in(admin.username).post(f"/users/{member.id}/enable", data={}).status_code == 403
    assert not _user(member.id).is_enabled


# --- the links a disabled administrator issued -------------------------------------------------------------

def test_disabling_an_administrator_voids_the_unused_links_it_issued_only(app, world):
    staff_token = accounts.admin_reset_link(world.bz_staff, world.bz_admin)
    own_token = accounts.issue_link(world.bz_admin, accounts.LinkPurpose.RESET, world.region_admin)
    db.session.commit()
    set_enabled(world.bz_admin, False, world.region_admin, "调离岗位")
    db.session.commit()
    event = _events(world.bz_admin, "user.disabled")[-1]
    assert event.payload["links_voided"] == 1 and event.payload["authority"] == "region"
    check = accounts.check_link(staff_token, accounts.LinkPurpose.RESET)
    assert not check.ok and "签发该链接的管理员账户已停用" in check.problem
    assert not accounts.check_link(own_token, accounts.LinkPurpose.RESET).ok  # its own links, as before
    # Enabled again, the administrator's old links stay void (voided, not merely refused while disabled).
    set_enabled(world.bz_admin, True, world.region_admin)
    db.session.commit()
    assert not accounts.check_link(staff_token, accounts.LinkPurpose.RESET).ok


# --- the unit's bureau reissues its accounts' links --------------------------------------------------------

def test_only_the_units_own_bureau_reissues_a_unit_accounts_link(app, world):
    from evalhub.results import services as results

    unit = world.units["轮台县医疗保障局"]
    user, _token = results.create_unit_account(world.lt_admin, unit, username="lt.ybj2", display_name="轮台医保局李科长")
    db.session.commit()
    for outsider in (world.krl_admin, world.lt_staff, world.bz_admin):
        response = Browser(app).sign_in(outsider.username).post(f"/users/{user.id}/reset-link", data={})
        assert response.status_code in (403, 404), outsider.username
    assert Browser(app).sign_in(world.sysadmin.username).post(f"/users/{user.id}/reset-link", data={}).status_code == 200


# --- sign-ins in the audit log -----------------------------------------------------------------------------

def test_an_api_sign_in_and_a_wrong_second_factor_code_are_recorded(app, world):
    client = app.test_client()
    assert client.post("/api/v1/tokens", json={"username": world.bz_staff.username, "password": factories.PASSWORD},
                       environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 201
    login = _events(world.bz_staff, "user.login")[-1]
    assert login.payload == {"address": "10.1.2.3", "via": "api"} and "API" in login.summary

    admin = _user(world.bz_admin.id)
    secret = pyotp.random_base32()
    admin.totp_secret_encrypted = encrypt_field(secret)
    admin.totp_enabled_at = admin.created_at
    db.session.commit()
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    refused = client.post("/api/v1/tokens", json={"username": admin.username, "password": factories.PASSWORD,
                                                  "totp": wrong})
    assert refused.status_code == 401
    failed = _events(admin, "user.login_failed")[-1]
    assert failed.payload["via"] == "api" and failed.payload["what"] == "两步验证码错误"
    assert failed.actor_id is None


def test_the_lock_is_recorded_and_attempts_on_a_locked_account_add_nothing(app, world):
    limit = app.config["LOGIN_MAX_FAILURES"]
    for _ in range(limit):
        assert authenticate(world.krl_staff.username, "wrong-Password-9", "10.9.9.9").user is None
    assert len(_events(world.krl_staff, "user.login_failed")) == limit
    assert len(_events(world.krl_staff, "user.locked")) == 1
    chain = db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one()
    for _ in range(3):
        assert "锁定" in authenticate(world.krl_staff.username, "wrong-Password-9", "10.9.9.9").error
    assert db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one() == chain


# --- login names whatever their case -----------------------------------------------------------------------

def test_sign_in_and_forgotten_password_find_the_name_whatever_its_case(app, world):
    assert authenticate("BZ.Staff", factories.PASSWORD).user.id == world.bz_staff.id
    assert authenticate("  bz.STAFF ", factories.PASSWORD).user.id == world.bz_staff.id
    staff = _user(world.bz_staff.id)
    staff.email = "bz.staff@example.gov.cn"
    db.session.commit()
    issued = accounts.request_password_reset("BZ.STAFF", "10.3.3.3")
    assert issued is not None and issued[0].id == world.bz_staff.id


def test_a_name_differing_only_in_case_is_refused_and_the_database_holds_the_rule(app, world):
    response = Browser(app).sign_in(world.krl_admin.username).post(
        f"/bureaus/{world.krl.id}/users", data={"username": "KRL.STAFF", "display_name": "王三", "role": "bureau_staff"})
    assert response.status_code == 422 and "该用户名已被使用" in response.get_data(as_text=True)
    # Past the check (two requests at once), the unique index answers, with the account's message (409).
    db.session.add(User(username="BZ.ADMIN", password_hash="x", display_name="重名", role=Role.SYSTEM_ADMIN))
    try:
        db.session.flush()
    except sa.exc.IntegrityError as exc:
        db.session.rollback()
        assert "该用户名已被使用" in concurrency.conflict_message(exc)
    else:
        raise AssertionError("a name differing only in case was written")
