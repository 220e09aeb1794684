"""Issue 12: bureau staff open the FIRST account of a firm their library holds (entered or imported, no login
yet) — the firm's administrator, without a password, with a one-time activation link shown once (the same
machinery as experts' 开通账号). Refused for anyone else; audited."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from evalhub.core import accounts
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied
from evalhub.core.models import AuditEvent, User
from evalhub.extensions import db
from evalhub.registry import services
from evalhub.registry.models import FirmStatus
from tests import factories
from tests.kept_states import kept

LINK = re.compile(r"/account/activate/([A-Za-z0-9_-]{20,})")
NEW_PASSWORD = "Firm-Admin-2025!"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _accounts(firm) -> list[User]:
    db.session.expire_all()
    return list(db.session.execute(sa.select(User).where(User.firm_id == firm.id)).scalars())


@pytest.fixture
@kept
def entered(world):
    """A firm 巴州 staff entered themselves: in the library, no login."""
    firm = factories.firm(world.bz, FirmStatus.ADMITTED, actor=world.bz_staff, name="巴州录入评价咨询有限公司",
                          contact_name="王经理", contact_email="wang@example.cn")
    db.session.commit()
    return firm


# --- the service ---------------------------------------------------------------------------------

def test_staff_open_the_firms_admin_account_awaiting_activation(world, entered):
    user, token = services.open_firm_account(entered, world.bz_staff)
    db.session.commit()
    assert (user.role, user.firm_id, user.is_firm_admin) == (Role.FIRM_USER, entered.id, True)
    assert user.username == f"jg{entered.id:04d}" and user.display_name == "王经理" and user.email == "wang@example.cn"
    assert user.awaiting_activation and accounts.check_link(token, accounts.LinkPurpose.ACTIVATION).ok
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "firm.account_opened")).scalar_one()
    assert event.object_id == entered.id and event.actor_id == world.bz_staff.id


def test_a_second_opening_is_a_conflict(world, entered):
    services.open_firm_account(entered, world.bz_staff)
    with pytest.raises(Conflict):
        services.open_firm_account(entered, world.bz_admin)
    # a firm that registered itself already has its contact's login
    with pytest.raises(Conflict):
        services.open_firm_account(world.firm, world.bz_staff)


@pytest.mark.parametrize("status", [FirmStatus.REJECTED, FirmStatus.REMOVED, FirmStatus.BLACKLISTED])
def test_no_account_for_a_firm_out_of_the_library(world, status):
    firm = factories.firm(world.bz, status)
    with pytest.raises(Conflict):
        services.open_firm_account(firm, world.bz_admin)
    assert _accounts(firm) == []


@pytest.mark.parametrize("who", ["kz_staff", "krl_staff", "region_admin", "firm_user", "expert_user"])
def test_only_the_library_bureau_may_open_it(world, entered, who):
    with pytest.raises(PermissionDenied):
        services.open_firm_account(entered, getattr(world, who))
    assert _accounts(entered) == []


def test_a_new_link_replaces_the_old_only_while_awaiting_activation(world, entered):
    user, first = services.open_firm_account(entered, world.bz_staff)
    _, second, _ = services.reissue_firm_link(entered, world.bz_staff)
    assert not accounts.check_link(first, accounts.LinkPurpose.ACTIVATION).ok
    accounts.use_link(second, accounts.LinkPurpose.ACTIVATION, NEW_PASSWORD, NEW_PASSWORD)
    with pytest.raises(Conflict):
        services.reissue_firm_link(entered, world.bz_staff)  # active: the firm resets its own passwords
    with pytest.raises(PermissionDenied):
        services.reissue_firm_link(entered, world.kz_staff)


# --- the page ------------------------------------------------------------------------------------

def test_open_on_the_firm_page_activate_and_manage_the_firm(client, login, world, entered):
    login(world.bz_staff)
    page = _text(client.get(f"/firms/{entered.id}"))
    assert 'data-testid="firm-account"' in page and 'data-testid="account-open"' in page
    response = client.post(f"/firms/{entered.id}/account")
    assert response.status_code == 200
    body = _text(response)
    token = LINK.search(body).group(1)
    assert f"jg{entered.id:04d}" in body and "只显示这一次" in body
    # shown once: the page reloaded shows the account, not the link
    again = _text(client.get(f"/firms/{entered.id}"))
    assert token not in again and "待激活" in again and 'data-testid="account-open"' not in again
    assert client.post(f"/firms/{entered.id}/account").status_code == 409

    client.post("/logout")
    response = client.post(f"/account/activate/{token}", data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    response = client.post("/login", data={"username": f"jg{entered.id:04d}", "password": NEW_PASSWORD})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    # the firm's administrator now adds its own users
    assert client.get(f"/firms/{entered.id}/users").status_code == 200


def test_the_buttons_are_refused_to_everyone_else(client, login, world, entered):
    for user in (world.kz_staff, world.kz_admin, world.krl_staff, world.firm_user, world.expert_user):
        login(user)
        for url in (f"/firms/{entered.id}/account", f"/firms/{entered.id}/account/link"):
            status = client.post(url).status_code
            assert status in (403, 404), (user.username, url, status)
        page = client.get(f"/firms/{entered.id}")
        assert page.status_code != 200 or 'data-testid="firm-account"' not in _text(page)
    assert _accounts(entered) == []
    # the library's own county staff see the firm but may not open its account
    login(world.krl_staff)
    assert client.get(f"/firms/{entered.id}").status_code == 200
    assert client.post(f"/firms/{entered.id}/account").status_code == 403


def test_reissue_on_the_page(client, login, world, entered):
    login(world.bz_admin)
    first = LINK.search(_text(client.post(f"/firms/{entered.id}/account"))).group(1)
    response = client.post(f"/firms/{entered.id}/account/link")
    assert response.status_code == 200
    second = LINK.search(_text(response)).group(1)
    assert second != first and not accounts.check_link(first, accounts.LinkPurpose.ACTIVATION).ok
