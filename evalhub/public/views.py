"""What anyone may read without logging in: the home page, the published (redacted) evaluation reports, the
procurement notices (采购公告, with their 澄清/更正公告 and files) and result notices (结果公告) with each procurement's
OCDS package, the contract announcements (合同公告), and each bureau's library of admitted firms. Only what was
published: no procurement awaiting approval or cancelled, no sealed bid, no expert's name, no contract before its
announcement nor what the announcement withheld."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, jsonify, render_template, request
from sqlalchemy.orm import joinedload, selectinload

from evalhub.core import draws
from evalhub.core.models import Bureau
from evalhub.core.listing import Filter, Listing, int_filter, text_filter, year_filter
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.core.web import send_stored, visitors_only
from evalhub.extensions import db
from evalhub.procurement import amendments, ocds
from evalhub.procurement.models import (
    EVALUATION_KINDS, ContractNotice, Engagement, ObjectType, PlanItem, Procurement, ProcurementAmendment, ProcurementMethod,
    ProcurementStatus, ResultNotice,
)
from evalhub.registry.models import Firm, FirmStatus
from evalhub.results.models import UnitPublication
from evalhub.review.models import EvaluationResult, Publication
from evalhub.review.services import published_condition

bp = Blueprint("public", __name__, url_prefix="/public")


LATEST = 5  # rows of each kind on the home page


@bp.route("/")
@visitors_only
def home():
    """The public site's front page: what is open for bids now, and the latest of each kind of announcement and of
    the published reports — from the same statements as their lists, so it shows nothing they would not."""
    def latest(stmt, *order, options=()):
        return db.session.execute(stmt.options(*options).order_by(*order).limit(LATEST)).scalars().all()

    open_now = _announced_stmt().where(Procurement.status == ProcurementStatus.OPEN, Procurement.bid_deadline > utcnow())
    # each row's posting on the designated media, as the lists show it: joined to the row (one-to-one), so the page
    # reads it in the statements it already runs — none per row, and none more
    return render_template(
        "public/home.html",
        open_count=db.session.execute(open_now.with_only_columns(sa.func.count())).scalar_one(),
        procurements=latest(open_now, Procurement.bid_deadline, Procurement.id, options=[
            selectinload(Procurement.bureau), joinedload(Procurement.media_posting)]),
        notices=latest(sa.select(ResultNotice), ResultNotice.published_at.desc(), ResultNotice.id.desc(),
                       options=[selectinload(ResultNotice.procurement).selectinload(Procurement.bureau),
                                joinedload(ResultNotice.media_posting)]),
        contracts=latest(sa.select(ContractNotice), ContractNotice.published_at.desc(), ContractNotice.id.desc(),
                         options=[joinedload(ContractNotice.media_posting)]),
        reports=latest(_published_stmt(), Publication.published_at.desc(), Publication.id.desc(),
                       options=[selectinload(Publication.engagement).options(
                           selectinload(Engagement.bureau), selectinload(Engagement.budget_unit))]))


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
                      text_filter("firm", Firm.name),
                      options=[selectinload(Publication.engagement).options(  # what each row shows, not a read per row
                          selectinload(Engagement.plan_item), selectinload(Engagement.budget_unit),
                          selectinload(Engagement.firm))],
                      order_by=[Publication.published_at.desc(), Publication.id.desc()])
    page = reports.page()
    ids = [p.engagement_id for p in page.items]
    # a grade is an evaluation's (EVALUATION_KINDS): a published reassessment or indicator study shows none
    grades = {r.engagement_id: r for r in db.session.execute(
        sa.select(EvaluationResult).join(Engagement, Engagement.id == EvaluationResult.engagement_id).where(
            EvaluationResult.engagement_id.in_(ids or [-1]), Engagement.service_kind.in_(EVALUATION_KINDS))).scalars()}
    bureaus = db.session.execute(
        sa.select(Bureau).where(Bureau.id.in_(sa.select(Engagement.bureau_id).join(
            Publication, Publication.engagement_id == Engagement.id).where(published_condition())))
        .order_by(Bureau.path)).scalars().all()
    years = db.session.execute(
        sa.select(Engagement.year).join(Publication, Publication.engagement_id == Engagement.id)
        .where(published_condition()).distinct().order_by(Engagement.year.desc())).scalars().all()
    # 双公开: the unit's half, shown beside the bureau's (results.services.unit_publication, one query per page)
    unit_publications = {u.engagement_id: u for u in db.session.execute(
        sa.select(UnitPublication).where(UnitPublication.engagement_id.in_(ids or [-1]))).scalars()}
    return render_template("public/reports.html", page=page, filters=reports.filters, bureaus=bureaus, years=years,
                           grades=grades, unit_publications=unit_publications, ObjectType=ObjectType)


@bp.route("/reports/<int:publication_id>/file")
def report_file(publication_id: int):
    publication = db.session.execute(_published_stmt().where(Publication.id == publication_id)).scalar_one_or_none()
    if publication is None:
        abort(404)
    return send_stored(publication.redacted_file)


# --- procurement notices, result notices, OCDS -----------------------------------------------------

# A procurement is public once announced: not while a single source awaits approval, never once cancelled.
PUBLIC_PROCUREMENT = Procurement.status.not_in([ProcurementStatus.PENDING_APPROVAL, ProcurementStatus.CANCELLED])
ANNOUNCED = (ProcurementMethod.OPEN_TENDER, ProcurementMethod.COMPETITIVE_CONSULTATION)


def _public_bureaus(stmt) -> list[Bureau]:
    return db.session.execute(sa.select(Bureau).where(Bureau.id.in_(stmt)).order_by(Bureau.path)).scalars().all()


def _public_procurement(procurement_id: int) -> Procurement:
    procurement = db.session.execute(sa.select(Procurement).where(Procurement.id == procurement_id, PUBLIC_PROCUREMENT)
                                     ).scalar_one_or_none()
    if procurement is None:
        abort(404)
    return procurement


def _announced_stmt():
    """采购公告: the competitive procurements announced to the market."""
    return sa.select(Procurement).where(PUBLIC_PROCUREMENT, Procurement.method.in_(ANNOUNCED))


@bp.route("/procurements")
def procurements():
    """采购公告: the competitive procurements announced to the market."""
    listing = Listing(_announced_stmt(), int_filter("bureau", Procurement.bureau_id), text_filter("q", Procurement.title),
                      # each row's posting on the designated media, read with the page, not a statement per row
                      options=[selectinload(Procurement.engagement), selectinload(Procurement.media_posting)],
                      order_by=[Procurement.created_at.desc(), Procurement.id.desc()])
    return render_template("public/procurements.html", page=listing.page(), filters=listing.filters,
                           bureaus=_public_bureaus(sa.select(Procurement.bureau_id).where(PUBLIC_PROCUREMENT)),
                           ProcurementStatus=ProcurementStatus)


@bp.route("/procurements/<int:procurement_id>")
def procurement(procurement_id: int):
    p = _public_procurement(procurement_id)
    return render_template("public/procurement.html", p=p, e=p.engagement, notices=list(reversed(p.notices)),
                           ProcurementStatus=ProcurementStatus, draws=draws.published("procurement", p.id),
                           amendments=amendments.listed(p))


@bp.route("/amendments/<int:amendment_id>/file")
def amendment_file(amendment_id: int):
    """A 澄清/更正公告's file as published (part of the documents): ``core.scrub``'s copy, never the bureau's upload;
    only of a procurement the public pages show."""
    amendment = db.get_or_404(ProcurementAmendment, amendment_id)
    _public_procurement(amendment.procurement_id)
    return send_stored(amendment.public_file)


@bp.route("/procurements/<int:procurement_id>/ocds.json")
def procurement_ocds(procurement_id: int):
    p = _public_procurement(procurement_id)
    response = jsonify(ocds.package([p], uri=request.url, publisher=p.bureau.name, public=True))
    response.headers["Content-Disposition"] = f"attachment; filename=ocds-{p.engagement.reference}-P{p.id}.json"
    return response


@bp.route("/notices")
def notices():
    """结果公告: every published result notice (a revoked one stays, marked as revoked)."""
    stmt = sa.select(ResultNotice).join(Procurement, Procurement.id == ResultNotice.procurement_id)
    listing = Listing(stmt, int_filter("bureau", ResultNotice.bureau_id), text_filter("q", Procurement.title),
                      options=[selectinload(ResultNotice.procurement).selectinload(Procurement.bureau),
                               selectinload(ResultNotice.firm),  # what each row names, not a read per row
                               selectinload(ResultNotice.media_posting)],
                      order_by=[ResultNotice.published_at.desc(), ResultNotice.id.desc()])
    return render_template("public/notices.html", page=listing.page(), filters=listing.filters, today=beijing_today(),
                           bureaus=_public_bureaus(sa.select(ResultNotice.bureau_id)))


@bp.route("/notices/<int:notice_id>")
def result_notice(notice_id: int):
    notice = db.get_or_404(ResultNotice, notice_id)
    # the draws that led to this notice (a later notice, after 重新评审, links the ones after it too)
    decided = [d for d in draws.published("procurement", notice.procurement_id)
               if d.drawn_at is None or notice.published_at is None or d.drawn_at <= notice.published_at]
    return render_template("public/notice.html", n=notice, p=notice.procurement, today=beijing_today(), draws=decided)


# --- contract announcements (合同公告, 政府采购法实施条例 第五十条) ----------------------------------------

# An announcement is public once published (a row of contract_notice exists only then); what the bureau withheld
# (the content it left out, its reason) and its own upload are never read here.


@bp.route("/contracts")
def contract_notices():
    """合同公告: every contract announcement published, newest first."""
    listing = Listing(sa.select(ContractNotice), int_filter("bureau", ContractNotice.bureau_id),
                      text_filter("q", ContractNotice.project_name, ContractNotice.supplier_name),
                      options=[selectinload(ContractNotice.media_posting)],  # its posting, with the page
                      order_by=[ContractNotice.published_at.desc(), ContractNotice.id.desc()])
    return render_template("public/contract_notices.html", page=listing.page(), filters=listing.filters,
                           bureaus=_public_bureaus(sa.select(ContractNotice.bureau_id)))


def _contract_notice(notice_id: int) -> ContractNotice:
    return db.get_or_404(ContractNotice, notice_id)


@bp.route("/contracts/<int:notice_id>")
def contract_notice(notice_id: int):
    notice = _contract_notice(notice_id)
    return render_template("public/contract_notice.html", n=notice, e=notice.contract.engagement)


@bp.route("/contracts/<int:notice_id>/file")
def contract_notice_file(notice_id: int):
    """The contract's text as published: ``core.scrub``'s copy, never the bureau's upload."""
    return send_stored(_contract_notice(notice_id).public_file)


# --- the admitted-firm libraries -------------------------------------------------------------------

@bp.route("/firms")
def firms():
    """Each bureau's library of admitted firms (第三方机构库)."""
    stmt = sa.select(Firm).where(Firm.status == FirmStatus.ADMITTED)
    listing = Listing(stmt, int_filter("bureau", Firm.bureau_id), text_filter("q", Firm.name),
                      options=[selectinload(Firm.bureau)], order_by=[Firm.bureau_id, Firm.name, Firm.id])
    return render_template("public/firms.html", page=listing.page(), filters=listing.filters,
                           bureaus=_public_bureaus(sa.select(Firm.bureau_id).where(Firm.status == FirmStatus.ADMITTED)))
