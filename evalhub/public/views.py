"""What anyone may read without logging in: the home page and the published (redacted) evaluation reports."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy.orm import selectinload

from evalhub.core.models import Bureau
from evalhub.core.listing import Filter, Listing, int_filter, text_filter, year_filter
from evalhub.core.web import send_stored
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, ObjectType, PlanItem
from evalhub.registry.models import Firm
from evalhub.review.models import EvaluationResult, Publication
from evalhub.review.services import published_condition

bp = Blueprint("public", __name__, url_prefix="/public")


@bp.route("/")
def home():
    if current_user.is_authenticated:
        return redirect(url_for("core.dashboard"))
    return render_template("public/home.html")


# --- published reports -----------------------------------------------------------------------------

def _published_stmt():
    return (sa.select(Publication).join(Engagement, Engagement.id == Publication.engagement_id)
            .join(PlanItem, PlanItem.id == Engagement.plan_item_id)
            .outerjoin(Firm, Firm.id == Engagement.firm_id)
            .where(published_condition()))


@bp.route("/reports")
def reports():
    reports = Listing(_published_stmt(), year_filter(Engagement.year), int_filter("bureau", Engagement.bureau_id),
                      Filter("object_type", ObjectType, lambda stmt, kind: stmt.where(PlanItem.object_type == kind)),
                      text_filter("firm", Firm.name), options=[selectinload(Publication.engagement)],
                      order_by=[Publication.published_at.desc(), Publication.id.desc()])
    page = reports.page()
    ids = [p.engagement_id for p in page.items]
    grades = {r.engagement_id: r for r in db.session.execute(
        sa.select(EvaluationResult).where(EvaluationResult.engagement_id.in_(ids or [-1]))).scalars()}
    bureaus = db.session.execute(
        sa.select(Bureau).where(Bureau.id.in_(sa.select(Engagement.bureau_id).join(
            Publication, Publication.engagement_id == Engagement.id).where(published_condition())))
        .order_by(Bureau.path)).scalars().all()
    years = db.session.execute(
        sa.select(Engagement.year).join(Publication, Publication.engagement_id == Engagement.id)
        .where(published_condition()).distinct().order_by(Engagement.year.desc())).scalars().all()
    return render_template("public/reports.html", page=page, filters=reports.filters, bureaus=bureaus, years=years,
                           grades=grades, ObjectType=ObjectType)


@bp.route("/reports/<int:publication_id>/file")
def report_file(publication_id: int):
    publication = db.session.execute(_published_stmt().where(Publication.id == publication_id)).scalar_one_or_none()
    if publication is None:
        abort(404)
    return send_stored(publication.redacted_file)
