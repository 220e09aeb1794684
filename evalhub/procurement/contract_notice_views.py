"""Pages of the contract announcement (合同公告, procurement/contract_notices.py), on the procurement blueprint.

The bureau that ran the procurement publishes it on /engagements/<id>/contract/notice (the engagement page links there
beside the contract) and downloads its own upload of the contract's text; everyone else is refused (403), and a
visitor is sent to sign in. The public reads the announcement on /public/contracts.
"""
from __future__ import annotations

from flask import Blueprint, render_template, url_for
from flask_login import current_user

from evalhub.core import permissions
from evalhub.core.enums import BUREAU_SIDE
from evalhub.core.errors import Conflict
from evalhub.core.timeutil import beijing_date, beijing_today
from evalhub.core.web import handle_form, load, send_stored
from evalhub.procurement import contract_notices
from evalhub.procurement.forms import ContractNoticeForm
from evalhub.procurement.models import Engagement


def contract_notice_state(engagement: Engagement) -> dict | None:
    """What the engagement page says of the announcement of its contract to the bureaus (None: no contract, or a
    reader not of a bureau — the firm, an inspecting expert: the bureau's reasons are not theirs; the public page
    has the announcement): when due, whether overdue and why, the announcement once published, and whether this
    reader may publish it."""
    contract = engagement.contract
    if contract is None or current_user.role not in BUREAU_SIDE:
        return None
    notice = contract.notice
    due = notice.due_on if notice is not None else contract_notices.due_of(contract)
    own = permissions.can(current_user, "contract.notice.publish", engagement)
    # owed until posted on the designated media (procurement/media.py): evalhub's copy alone does not end it
    return {"due": due, "notice": notice, "own": own, "may_publish": notice is None and own,
            "posting": notice.media_posting if notice is not None else None,
            "may_record": notice is not None and permissions.can(current_user, "notice.media.record", engagement),
            "overdue": contract_notices.overdue_reason(contract.notice_due_on, published_here=notice is not None)}


def _page(engagement: Engagement, form: ContractNoticeForm, status: int = 200):
    contract = engagement.contract
    due = contract_notices.due_of(contract)
    today = beijing_today()
    return render_template("procurement/contract_notice.html", e=engagement, c=contract, form=form, due=due,
                           late=due is not None and today > due, LAW=contract_notices.LAW), status


def contract_notice(engagement_id: int):
    engagement = load(Engagement, engagement_id, "contract.notice.publish")
    contract = engagement.contract
    if contract is None:  # refused on the GET already, as the service would
        raise Conflict("尚未签订合同，不能发布合同公告：合同公告在合同签订后发布。")
    if contract.notice is not None:
        raise Conflict(f"该合同的合同公告已发布（{beijing_date(contract.notice.published_at):%Y-%m-%d}），不能重复发布。")
    form = ContractNoticeForm(data={"services": contract.deliverables})
    upload = form.file.data

    def publish():
        has_file = upload is not None and getattr(upload, "filename", "")
        return contract_notices.publish_notice(engagement, contract_notices.NoticeInput(
            services=form.services.data, filename=upload.filename if has_file else None,
            data=upload.read() if has_file else None, withheld=form.withheld.data,
            withheld_reason=form.withheld_reason.data, late_reason=form.late_reason.data), current_user)

    return handle_form(form, publish,
                       message=lambda n: f"{engagement.reference} 合同公告已发布" + (f"（逾期 {n.late_workdays} 个工作日）。"
                                                                                 if n.late_workdays else "。"),
                       to=url_for("procurement.engagement_detail", engagement_id=engagement.id),
                       failed=lambda status: _page(engagement, form, status))


def contract_notice_upload(engagement_id: int):
    """The bureau's own upload of the contract's public text (its document properties and all): the bureau's alone."""
    engagement = load(Engagement, engagement_id, "contract.notice.publish")
    notice = engagement.contract.notice if engagement.contract is not None else None
    return send_stored(notice.uploaded_file if notice is not None else None)


def register(bp: Blueprint) -> None:
    """Called by ``procurement.views`` with its blueprint (this module does not import it: no import circle)."""
    bp.add_app_template_global(contract_notice_state, "contract_notice_state")
    bp.add_url_rule("/engagements/<int:engagement_id>/contract/notice", view_func=contract_notice,
                    methods=["GET", "POST"])
    bp.add_url_rule("/engagements/<int:engagement_id>/contract/notice/upload", view_func=contract_notice_upload)

