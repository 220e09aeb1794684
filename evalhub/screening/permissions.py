"""Who may see report screening (declared with core.permissions): bureau users only — the firm never sees a
risk score, and neither do experts (unless a bureau setting shows it on their review page)."""
from __future__ import annotations

from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.permissions import bureau_rows, is_bureau_user, own_bureau, row_scope, rules, visible
from evalhub.screening.models import ReferenceDocument, ReportScreening


@row_scope(ReportScreening)
def _screenings(user: User, stmt: Select, model: type) -> Select:
    # Screening results are the bureaus' own working material: never shown to firms or experts.
    return bureau_rows(user, stmt, model)


@row_scope(ReferenceDocument)
def _references(user: User, stmt: Select, model: type) -> Select:
    # Outside reference reports: listed to the bureau that imported them and the bureaus above it (every
    # bureau's uploads are compared with all of them: they are published reports).
    return bureau_rows(user, stmt, model)


rules({
    "screening.references.manage": lambda u, o: is_bureau_user(u),
    # Listed to the bureaus above, not handed to them: only the importing bureau (or the system administrator)
    # withdraws a reference from the index every bureau screens against.
    "screening.references.delete": lambda u, r: own_bureau(u, r.bureau_id),
    # Whether an upload is still being screened: the bureau side, for an engagement it supervises.
    "screening.pending": lambda u, s: (is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN) and s.engagement is not None
    and visible(u, s.engagement),
    "screening.view": lambda u, o: is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "screening.card": lambda u, s: visible(u, s),
    # Models are shared by the whole region: the region's administrators train and promote them.
    "screening.models.manage": lambda u, o: u.role == Role.SYSTEM_ADMIN or (
        u.role == Role.BUREAU_ADMIN and u.bureau is not None and u.bureau.parent_id is None),
})
