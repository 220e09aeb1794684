"""The bureau's dashboard (工作台): one page drawing on every domain, so it sits at the top level beside the
public pages and the API. Its route stays on the core blueprint (endpoint ``core.dashboard``), where sign-in
sends everyone."""
from __future__ import annotations

import sqlalchemy as sa
from flask import redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core import permissions
from evalhub.core.enums import Role
from evalhub.core.models import AuditEvent, Job
from evalhub.core.views import bp
from evalhub.credit.views import dashboard_cards
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.models import Engagement
from evalhub.registry.models import Expert, Firm, FirmStatus
from evalhub.review.models import PanelInvitation, ReviewPanel
from evalhub.results.services import overdue_findings
from evalhub.review.services import overdue_reviews
from evalhub.supervision.views import dashboard_summary



@bp.route("/")
@login_required
def dashboard():
    context: dict = {}
    if current_user.role == Role.FIRM_USER:
        if permissions.limited_to(current_user) is not None:  # a firm not yet admitted: its application
            return redirect(url_for("registry.firm_detail", firm_id=current_user.firm_id))
        return redirect(url_for("procurement.workspace"))
    if current_user.role == Role.EXPERT:
        return redirect(url_for("registry.expert_detail", expert_id=current_user.expert_id))
    if current_user.role == Role.BUDGET_UNIT:  # an evaluated unit: its engagements and rectification
        return redirect(url_for("results.unit_home"))
    # the expert count rides along the firm counts (one statement less on every dashboard); a scope without
    # firms returns no group to carry it, and then it is read alone
    experts = permissions.scope(current_user, sa.select(sa.func.count(Expert.id)), Expert)
    firms = permissions.scope(current_user, sa.select(Firm.status, sa.func.count(), experts.scalar_subquery())
                              .group_by(Firm.status), Firm)
    rows = db.session.execute(firms).all()
    context["firm_counts"] = {status: count for status, count, _ in rows}
    context["expert_count"] = rows[0][2] if rows else db.session.execute(experts).scalar_one()
    context["pending"] = db.session.execute(
        permissions.scope(current_user, sa.select(Firm).where(Firm.status == FirmStatus.PENDING)
                          .order_by(Firm.applied_at), Firm).limit(10)
    ).scalars().all()
    context["jobs"] = db.session.execute(
        permissions.scope(current_user, sa.select(Job).order_by(Job.id.desc()), Job).limit(5)).scalars().all()
    context["overdue_count"], context["overdue"] = _overdue_engagements()
    context["overdue_reviews"] = _overdue_reviews()
    context["overdue_findings"] = overdue_findings(current_user, limit=10)
    context.update(dashboard_cards(current_user))
    # the 监督检查 card
    context["supervision"] = dashboard_summary(current_user)
    if permissions.can(current_user, "audit.view"):
        context["events"] = db.session.execute(
            permissions.scope(current_user, sa.select(AuditEvent), AuditEvent)
            .order_by(AuditEvent.id.desc()).limit(8)).scalars().all()
    return render_template("core/dashboard.html", FirmStatus=FirmStatus, **context)


def _overdue_engagements() -> tuple[int, list]:
    """How many scoped engagements are overdue, and the ten longest in their state as (engagement, reason): a count
    and one page in SQL (``workflow.overdue_clause``), whatever the history in scope."""
    # the count rides along the page as a window over every matching row (evaluated before the LIMIT); the
    # window runs over ids only, and the rows shown (with their firms) are read for the ten it keeps
    ten = permissions.scope(current_user, sa.select(Engagement.id, sa.func.count().over().label("total"))
                            .where(workflow.overdue_clause()), Engagement) \
        .order_by(Engagement.state_changed_at, Engagement.id).limit(10).subquery()
    rows = db.session.execute(sa.select(Engagement, ten.c.total).join(ten, ten.c.id == Engagement.id)
                              .options(joinedload(Engagement.firm))
                              .order_by(Engagement.state_changed_at, Engagement.id)).all()
    count = rows[0].total if rows else 0
    shown = [row.Engagement for row in rows]
    reasons = workflow.overdue_reasons(shown)
    return count, [(e, reasons[e.id]) for e in shown if e.id in reasons]


def _overdue_reviews() -> list:
    """Open expert panels of scoped engagements past their review deadline, as (panel, members still owing).
    ``permissions.scope`` has no rule for panels: they are scoped through their engagement."""
    engagements = permissions.scope(current_user, sa.select(Engagement.id), Engagement)
    stmt = (sa.select(ReviewPanel).where(ReviewPanel.engagement_id.in_(engagements))
            .options(selectinload(ReviewPanel.engagement),
                     selectinload(ReviewPanel.invitations).selectinload(PanelInvitation.review))
            .order_by(ReviewPanel.review_due, ReviewPanel.id))
    return overdue_reviews(stmt)
