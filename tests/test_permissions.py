"""The permission matrix: every role at every bureau level against firms and experts at every level.

The expected answers are written out by hand from DESIGN.md "Permissions", not computed from the code.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core import permissions
from evalhub.core.errors import PermissionDenied
from evalhub.core.models import AuditEvent, Bureau
from evalhub.extensions import db
from evalhub.registry.models import Expert, Firm, FirmStatus
from tests import factories

USERS = ["sysadmin", "region_admin", "region_staff", "bz_admin", "bz_staff", "kz_admin", "krl_admin", "krl_staff",
         "lt_admin", "ats_admin", "firm_user", "other_firm_user", "expert_user"]

# Which users see an ADMITTED firm in the library of each bureau.
SEES_ADMITTED = {
    "region": {"sysadmin", "region_admin", "region_staff", "bz_admin", "bz_staff", "kz_admin", "krl_admin",
               "krl_staff", "lt_admin", "ats_admin"},                      # everyone below may use it
    "bz": {"sysadmin", "region_admin", "region_staff", "bz_admin", "bz_staff", "krl_admin", "krl_staff", "lt_admin"},
    "krl": {"sysadmin", "region_admin", "region_staff", "bz_admin", "bz_staff", "krl_admin", "krl_staff"},
    "kz": {"sysadmin", "region_admin", "region_staff", "kz_admin", "ats_admin"},
}
# A PENDING application is visible to the bureau applied to and those above it, not below.
SEES_PENDING = {
    "region": {"sysadmin", "region_admin", "region_staff"},
    "bz": {"sysadmin", "region_admin", "region_staff", "bz_admin", "bz_staff"},
    "krl": {"sysadmin", "region_admin", "region_staff", "bz_admin", "bz_staff", "krl_admin", "krl_staff"},
    "kz": {"sysadmin", "region_admin", "region_staff", "kz_admin"},
}
# Who may admit/reject an application (the bureau applied to; the system admin).
MAY_REVIEW = {
    "region": {"sysadmin", "region_admin", "region_staff"},
    "bz": {"sysadmin", "bz_admin", "bz_staff"},
    "krl": {"sysadmin", "krl_admin", "krl_staff"},
    "kz": {"sysadmin", "kz_admin"},
}
# Who may suspend, remove, blacklist (admins of the firm's own bureau).
MAY_CHANGE_STATUS = {
    "region": {"sysadmin", "region_admin"},
    "bz": {"sysadmin", "bz_admin"},
    "krl": {"sysadmin", "krl_admin"},
    "kz": {"sysadmin", "kz_admin"},
}


def _firms(world, status):
    return {key: factories.firm(getattr(world, key), status) for key in ("region", "bz", "krl", "kz")}


@pytest.mark.parametrize("username", USERS)
def test_firm_visibility_and_actions(world, username):
    user = getattr(world, username)
    admitted = _firms(world, FirmStatus.ADMITTED)
    pending = _firms(world, FirmStatus.PENDING)
    db.session.commit()
    for key, firm in admitted.items():
        assert permissions.can(user, "firm.view", firm) == (username in SEES_ADMITTED[key]), (username, key, "admitted")
        assert permissions.can(user, "firm.status", firm) == (username in MAY_CHANGE_STATUS[key]), (username, key)
    for key, firm in pending.items():
        assert permissions.can(user, "firm.view", firm) == (username in SEES_PENDING[key]), (username, key, "pending")
        assert permissions.can(user, "firm.review", firm) == (username in MAY_REVIEW[key]), (username, key)
    # The row scope agrees with the per-object answer.
    visible = set(db.session.execute(permissions.scope(user, sa.select(Firm.id), Firm)).scalars())
    for firm in list(admitted.values()) + list(pending.values()):
        assert (firm.id in visible) == permissions.can(user, "firm.view", firm)


def test_firm_users_see_only_their_own_firm(world):
    others = db.session.execute(sa.select(Firm).where(Firm.id != world.firm.id)).scalars().all()
    assert permissions.can(world.firm_user, "firm.view", world.firm)
    assert permissions.can(world.firm_user, "firm.edit", world.firm)
    assert permissions.can(world.firm_user, "firm.staff.manage", world.firm)
    assert not permissions.can(world.firm_user, "firm.review", world.firm)
    assert not permissions.can(world.firm_user, "firm.status", world.firm)
    assert not permissions.can(world.firm_user, "firm.list")
    for firm in others:
        assert not permissions.can(world.firm_user, "firm.view", firm)
        assert not permissions.can(world.firm_user, "firm.edit", firm)
    assert set(db.session.execute(permissions.scope(world.firm_user, sa.select(Firm.id), Firm)).scalars()) == {world.firm.id}


def test_a_removed_firm_can_no_longer_edit_itself(world):
    world.firm.status = FirmStatus.REMOVED
    assert not permissions.can(world.firm_user, "firm.edit", world.firm)


@pytest.mark.parametrize("username, expected", [
    ("sysadmin", {"region", "bz", "krl", "kz"}),
    ("region_admin", {"region", "bz", "krl", "kz"}),
    ("bz_staff", {"region", "bz", "krl"}),     # own pool, its county's pool, and the region's pool to use
    ("krl_staff", {"region", "bz", "krl"}),
    ("kz_admin", {"region", "kz"}),
    ("ats_admin", {"region", "kz"}),
    ("firm_user", set()),
])
def test_expert_pool_visibility(world, username, expected):
    user = getattr(world, username)
    experts = {key: factories.expert(getattr(world, key)) for key in ("region", "bz", "krl", "kz")}
    db.session.commit()
    seen = {key for key, e in experts.items() if permissions.can(user, "expert.view", e)}
    assert seen == expected


def test_experts_see_only_themselves_and_may_edit_only_availability(world):
    other = factories.expert(world.bz)
    assert permissions.can(world.expert_user, "expert.view", world.expert)
    assert permissions.can(world.expert_user, "expert.self", world.expert)
    assert not permissions.can(world.expert_user, "expert.edit", world.expert)
    assert not permissions.can(world.expert_user, "expert.view", other)
    assert not permissions.can(world.expert_user, "expert.self", other)
    assert not permissions.can(world.expert_user, "expert.list")


@pytest.mark.parametrize("username, bureau_key, allowed", [
    ("bz_admin", "bz", True), ("bz_staff", "bz", True), ("bz_admin", "krl", False), ("region_admin", "bz", False),
    ("krl_staff", "krl", True), ("kz_admin", "bz", False), ("firm_user", "bz", False), ("expert_user", "bz", False),
    ("sysadmin", "kz", True),
])
def test_only_a_bureau_enters_firms_and_experts_into_its_own_library(world, username, bureau_key, allowed):
    user, bureau = getattr(world, username), getattr(world, bureau_key)
    assert permissions.can(user, "firm.create", bureau) == allowed
    assert permissions.can(user, "expert.create", bureau) == allowed
    assert permissions.can(user, "registry.import", bureau) == allowed


@pytest.mark.parametrize("username, expected", [
    ("sysadmin", {"650000", "652800", "652801", "652822", "653000", "653001"}),
    ("region_staff", {"650000", "652800", "652801", "652822", "653000", "653001"}),
    ("bz_admin", {"652800", "652801", "652822"}),
    ("krl_admin", {"652801"}),
    ("lt_admin", {"652822"}),      # a county never sees another county
    ("kz_admin", {"653000", "653001"}),
    ("firm_user", set()),
    ("expert_user", set()),
])
def test_bureau_scope(world, username, expected):
    user = getattr(world, username)
    codes = set(db.session.execute(permissions.scope(user, sa.select(Bureau.code), Bureau)).scalars())
    assert codes == expected


def test_settings_belong_to_each_bureaus_own_admin(world):
    assert permissions.can(world.bz_admin, "bureau.settings", world.bz)
    assert not permissions.can(world.bz_staff, "bureau.settings", world.bz)
    assert not permissions.can(world.bz_admin, "bureau.settings", world.krl)
    assert not permissions.can(world.region_admin, "bureau.settings", world.bz)
    assert permissions.can(world.sysadmin, "bureau.settings", world.bz)


def test_audit_log_rows_are_scoped_to_the_bureau_subtree(world):
    from evalhub.core import audit

    audit.record("x", world.krl, actor=world.krl_admin, bureau_id=world.krl.id, summary="库尔勒")
    audit.record("x", world.kz, actor=world.kz_admin, bureau_id=world.kz.id, summary="克州")
    db.session.commit()

    def seen(user):
        stmt = permissions.scope(user, sa.select(AuditEvent.summary).where(AuditEvent.action == "x"), AuditEvent)
        return set(db.session.execute(stmt).scalars())

    assert seen(world.bz_admin) == {"库尔勒"}
    assert seen(world.lt_admin) == set()
    assert seen(world.region_admin) == {"库尔勒", "克州"}
    assert seen(world.firm_user) == set()
    assert permissions.can(world.bz_admin, "audit.view") and not permissions.can(world.bz_staff, "audit.view")


def test_require_raises_and_anonymous_is_refused(world):
    with pytest.raises(PermissionDenied):
        permissions.require(world.firm_user, "firm.review", world.firm)
    assert not permissions.can(None, "firm.view", world.firm)


def test_undeclared_actions_are_a_programming_error(world):
    with pytest.raises(KeyError):
        permissions.can(world.bz_admin, "firm.teleport", world.firm)
