"""Pages of the notices' postings on the designated media (指定媒体, procurement/media.py), on the procurement blueprint.

The bureau that ran the procurement lists its engagement's notices on /engagements/<id>/media and records (or corrects)
each one's posting on /engagements/<id>/media/<kind>/<notice id>; everyone else is refused (403), a visitor is sent to
sign in. The engagement page states the contract announcement's posting; the public pages link the posting. A bureau's
staff list and export the year's postings of their bureau and the bureaus below it on /media-postings (the annual
政府采购信息公开 return); a firm, a budget unit, an expert and the platform's administrator are refused (403).
"""
from __future__ import annotations

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user

from evalhub.core import permissions
from evalhub.core.enums import BUREAU_SIDE
from evalhub.core.errors import NotFound
from evalhub.core.listing import Export, Filter, Listing, enum_filter, export, parse_int, wants_export
from evalhub.core.timeutil import beijing_today
from evalhub.core.web import handle_form, load, require, scoped
from evalhub.extensions import db
from evalhub.procurement import media
from evalhub.procurement.forms import MediaPostingForm
from evalhub.procurement.models import Engagement, MediaPosting, NoticeKind, ProcurementStatus


def may_record(engagement: Engagement) -> bool:
    """The engagement page's link to the media page: the purchasing bureau's, once a procurement exists."""
    return bool(engagement.procurements) and permissions.can(current_user, "notice.media.record", engagement)


def overdue_result_postings(engagement: Engagement) -> list[dict]:
    """What the engagement page says to the bureaus of its result notices not posted on the designated media past
    their day (none for the firm or an inspecting expert: the bureau's duty, as the contract announcement's): each
    with its reason and, for the bureau that ran the procurement, the link to record the posting."""
    if current_user.role not in BUREAU_SIDE:
        return []
    may = permissions.can(current_user, "notice.media.record", engagement)
    return [{"notice_id": notice_id, "reason": reason, "may_record": may}
            for notice_id, reason in media.overdue_results(engagement)]


def period_problems(engagement: Engagement) -> list[dict]:
    """What the engagement page says to the bureaus of a procurement whose bid period, counted from its 采购公告's
    posting on the designated media, is short (media.procurement_period_problem): each with its reason and, for the
    bureau that runs it, the link to change the deadline. Not the firm's: the bureau's duty, as the postings are."""
    if current_user.role not in BUREAU_SIDE:
        return []
    may = permissions.can(current_user, "procurement.manage", engagement)
    out = []
    for p in sorted(engagement.procurements, key=lambda p: p.id):
        reason = media.procurement_period_problem(p)
        if reason:
            out.append({"procurement_id": p.id, "reason": reason, "may_change": may and p.status == ProcurementStatus.OPEN})
    return out


def media_list(engagement_id: int):
    engagement = load(Engagement, engagement_id, "notice.media.record")
    if wants_export():  # the list as the bureau files it: each posting, a late one's reason beside it
        return export(Export("指定媒体发布", media.EXPORT_COLUMNS, lambda _: media.export_rows(engagement),
                             filename=f"指定媒体发布-{engagement.reference}.xlsx"), [])
    return render_template("procurement/media_list.html", e=engagement, targets=media.targets(engagement),
                           status=media.status, period_problem=media.period_problem, LAW=media.LAW)


def media_posting(engagement_id: int, kind: str, notice_id: int):
    engagement = load(Engagement, engagement_id, "notice.media.record")
    try:
        target = media.target(engagement, kind, notice_id)
    except NotFound:
        abort(404)
    posting = target.posting
    form = MediaPostingForm(data={} if posting is None else {
        "medium": posting.medium.value, "medium_name": posting.medium_name, "url": posting.url,
        "posted_on": posting.posted_on.isoformat(), "note": posting.note})

    def save():
        data = media.PostingInput(medium=form.medium.data, medium_name=form.medium_name.data, url=form.url.data,
                                  posted_on=form.posted_on.data, note=form.note.data)
        if posting is None:
            return media.record_posting(engagement, target.kind, target.id, data, current_user)
        return media.correct_posting(engagement, posting.id, data, form.correction_reason.data, current_user)

    def page(status: int):
        return render_template("procurement/media_posting.html", e=engagement, t=target, posting=posting, form=form,
                               status=media.status(target), today=beijing_today(), LAW=media.LAW), status

    def said(_):
        done = f"{target.title}：" + ("已更正指定媒体发布记录。" if posting is not None else
                                     f"已登记指定媒体发布（{media.status(target)}）。")
        short = media.period_problem(target)  # a 采购公告 posted late: recorded, and the bureau told what follows
        return (f"{done}{short}。", "warning") if short else done

    return handle_form(form, save, failed=page, to=url_for("procurement.media_list", engagement_id=engagement.id),
                       message=said)


POSTING_FILTERS = (
    # a bureau and the bureaus below it (the list is scoped to the user's own subtree anyway)
    Filter("bureau", parse_int, lambda stmt, bureau_id: stmt.where(media.in_bureau_tree(bureau_id)), "应为财政局编号"),
    enum_filter("kind", NoticeKind, MediaPosting.kind),
)


def media_postings():
    """The postings on the designated media of the user's bureau and the bureaus below it with a posting date in a year
    (this year unless ``?year=``), as a page and as one workbook: the annual 政府采购信息公开 return. A bad year or filter
    is refused (422), not ignored: the workbook is filed as that year's."""
    require("notice.media.list")
    year = media.report_year(request.args.get("year"))
    postings = Listing(lambda: scoped(MediaPosting, media.postings_of_year(year)), *POSTING_FILTERS, strict=True,
                       order_by=media.POSTINGS_ORDER)
    if wants_export():
        return export(Export(f"{year}年指定媒体发布", media.YEAR_EXPORT_COLUMNS, media.year_export_rows,
                             filename=f"指定媒体发布-{current_user.bureau.short_name or current_user.bureau.name}-{year}.xlsx"),
                      db.session.execute(postings.stmt).all())
    return render_template("procurement/media_postings.html", page=postings.page(rows=True), year=year,
                           filters={**postings.filters, "year": str(year)},
                           years=range(beijing_today().year, media.FIRST_YEAR - 1, -1),
                           bureaus=permissions.visible_bureaus(current_user), NoticeKind=NoticeKind)


def register(bp: Blueprint) -> None:
    """Called by ``procurement.views`` with its blueprint (this module does not import it: no import circle)."""
    bp.add_app_template_global(may_record, "may_record_media")
    bp.add_app_template_global(overdue_result_postings, "overdue_result_postings")
    bp.add_app_template_global(period_problems, "period_problems")
    bp.add_url_rule("/engagements/<int:engagement_id>/media", view_func=media_list)
    bp.add_url_rule("/media-postings", view_func=media_postings)
    bp.add_url_rule("/engagements/<int:engagement_id>/media/<kind>/<int:notice_id>", view_func=media_posting,
                    methods=["GET", "POST"])
