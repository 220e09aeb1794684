"""Who reads collusion flags and red flags: bureau users only (and the system administrator). A flag names
other bidders and quotes their documents, so no firm reads one — not even a flag about itself."""
from __future__ import annotations

from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.permissions import bureau_rows, in_subtree, is_bureau_user, own_bureau, row_scope, rules, visible
from evalhub.integrity.models import RedFlag, RedFlagCase


@row_scope(RedFlag, RedFlagCase)
def _red_flags(user: User, stmt: Select, model: type) -> Select:
    return bureau_rows(user, stmt, model)  # firms, experts and budget units: nothing


def _bureau_reader(user: User) -> bool:
    return is_bureau_user(user) or user.role == Role.SYSTEM_ADMIN


rules({
    # The consistency panel of an opened procurement: the bureaus that see the procurement itself.
    "integrity.view": lambda u, p: _bureau_reader(u) and p.opened_at is not None and visible(u, p),
    # The committee's decisions are recorded by the purchasing bureau's staff (they run the evaluation).
    "integrity.decide": lambda u, p: is_bureau_user(u) and own_bureau(u, p.bureau_id),
    "redflags.view": lambda u, b: _bureau_reader(u) and (b is None or in_subtree(u, b.id)),
    "redflags.refresh": lambda u, o: u.role in (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN),
})
