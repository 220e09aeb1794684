"""Who may see and change plans, engagements, procurements and bids (declared with core.permissions)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select

from evalhub.core.enums import Role
from evalhub.core.models import AuditEvent, User
from evalhub.core.permissions import (
    BUREAU_ROLES, bureau_rows, in_bureaus, is_admin, is_bureau_user, own_bureau, restrict, row_scope, rules, visible,
    visible_bureau_ids,
)
from evalhub.procurement.eligibility import library_bureau_ids
from evalhub.procurement.models import Bid, Engagement, EvaluationPlan, MediaPosting, Procurement, ProcurementStatus


@row_scope(EvaluationPlan, Engagement, Procurement)
def _bureau_work(user: User, stmt: Select, model: type) -> Select:
    return bureau_rows(user, stmt, model, firm_column=Engagement.firm_id if model is Engagement else None)


@row_scope(MediaPosting)
def _postings(user: User, stmt: Select, model: type) -> Select:
    """The postings on the designated media of the bureau's subtree (an upper bureau reads its lower ones', as it reads
    their engagements): the bureaus' own record of their announcements, not the platform's nor a firm's."""
    return bureau_rows(user, stmt, model, bureaus_only=True)


@row_scope(Bid)
def _bids(user: User, stmt: Select, model: type) -> Select:
    if user.role == Role.SYSTEM_ADMIN:
        # Sealed bids are sealed for the platform's own administrators too.
        return stmt.where(Bid.procurement_id.in_(sa.select(Procurement.id).where(Procurement.opened_at.is_not(None))))
    if user.role == Role.FIRM_USER:
        return stmt.where(Bid.firm_id == user.firm_id)
    if user.role not in BUREAU_ROLES:
        return stmt.where(sa.false())
    # Sealed: a bureau sees bids only once they have been opened after the deadline.
    opened = sa.select(Procurement.id).where(Procurement.opened_at.is_not(None),
                                             in_bureaus(Procurement.bureau_id, visible_bureau_ids(user)))
    return stmt.where(Bid.procurement_id.in_(opened))


def hide_sealed_bid_events(stmt: Select) -> Select:
    """Leave out bid events (who bid, changed or withdrew) of procurements not yet opened: until the bids
    are opened not even the purchasing bureau may learn which firms have bid (the procurement page hides
    them too). They reappear once the procurement is opened."""
    sealed = sa.select(Procurement.id).where(Procurement.opened_at.is_(None))
    return stmt.where(sa.not_(sa.and_(AuditEvent.object_type == "procurement", AuditEvent.action.startswith("bid."),
                                      AuditEvent.object_id.in_(sealed))))


restrict(AuditEvent, hide_sealed_bid_events)


def _marketplace_visible(user: User, procurement: Any) -> bool:
    """A firm sees a procurement notice of any library it belongs to, and any procurement it bid in. A single
    source awaiting approval is not announced yet (the public pages do not show it either): of the firms, only
    the one it names sees it."""
    if user.role != Role.FIRM_USER or user.firm is None:
        return False
    if any(b.firm_id == user.firm_id for b in procurement.bids):
        return True
    if procurement.status == ProcurementStatus.PENDING_APPROVAL:
        return procurement.single_source_firm_id == user.firm_id
    return user.firm.bureau_id in library_bureau_ids(procurement.bureau)


rules({
    "plan.list": lambda u, o: is_bureau_user(u) or u.role == Role.SYSTEM_ADMIN,
    "plan.edit_bureau": lambda u, b: own_bureau(u, b.id),
    "plan.view": lambda u, p: visible(u, p),
    "plan.edit": lambda u, p: own_bureau(u, p.bureau_id),
    "plan.approve": lambda u, p: is_admin(u) and own_bureau(u, p.bureau_id),
    "engagement.list": lambda u, o: is_bureau_user(u) or u.role in (Role.SYSTEM_ADMIN, Role.FIRM_USER),
    "engagement.view": lambda u, e: visible(u, e),
    "procurement.manage": lambda u, e: own_bureau(u, e.bureau_id),
    # A clarification or amendment of the documents (澄清/更正公告, procurement/amendments.py) is the purchaser's act
    # (财政部令第87号 第二十七条 "采购人或者采购代理机构可以对已发出的招标文件进行必要的澄清或者修改"), published to the market:
    # the staff and admins of the bureau that runs the procurement only — not the bureau above, nor the platform's
    # administrator (who may still change a deadline).
    "procurement.amend": lambda u, e: u.role in BUREAU_ROLES and u.bureau_id == e.bureau_id,
    # The contract announcement is the purchaser's act (实施条例 第五十条 "采购人应当…"): the staff and admins of the
    # bureau that ran the procurement only — not the bureau above, nor the platform's administrator.
    "contract.notice.publish": lambda u, e: u.role in BUREAU_ROLES and u.bureau_id == e.bureau_id,
    # Posting a notice on the designated media (procurement/media.py) is the purchaser's act too (政府采购法 第十一条,
    # 87号令 第六十九条, 实施条例 第五十条): the same people record it, on the engagement.
    "notice.media.record": lambda u, e: u.role in BUREAU_ROLES and u.bureau_id == e.bureau_id,
    # The year's postings of the bureau and the bureaus below it, for the 政府采购信息公开 return: the bureaus' staff.
    "notice.media.list": lambda u, o: u.role in BUREAU_ROLES,
    "procurement.approve": lambda u, p: is_admin(u) and own_bureau(u, p.bureau_id),
    "procurement.view": lambda u, p: visible(u, p) or _marketplace_visible(u, p),
    "bid.view": lambda u, b: visible(u, b),
    # A challenge (grounds, evidence) is read by the purchasing bureau and by the firm that filed it only.
    "challenge.view": lambda u, c: visible(u, c.procurement) if u.role != Role.FIRM_USER else u.firm_id == c.firm_id,
    "challenge.file": lambda u, p: u.role == Role.FIRM_USER and _marketplace_visible(u, p),
    "marketplace.use": lambda u, o: u.role == Role.FIRM_USER,
})
