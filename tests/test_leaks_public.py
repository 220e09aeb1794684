"""Rules of what must not leave the system through the public pages, exports, OCDS and downloads.

Each test states the rule it holds the product to and where the rule comes from."""
from __future__ import annotations

import json

import sqlalchemy as sa

from evalhub.extensions import db
from tests import factories


def text(response) -> str:
    return response.get_data(as_text=True)


# --- the public page of a released panel draw: no reason about a person ----------------------------------

def test_a_released_panel_draw_does_not_publish_why_a_drawn_expert_was_replaced(client, world):
    """A draw among people is public once the review ends, but the reasons about a person stay off the public page
    (core/draws.py ``among_organisations``: "Other kinds draw people … whose reasons (a suspension, a rating, an
    availability note, a tie) stay off the public page even once the draw itself is public"; 排除原因涉及个人信息，
    公开页面不显示). A drawn expert is suspended and replaced; the replacement's ``redraw_reason`` keeps the
    reason, and neither the released panel draw's page (后续补抽) nor the replacement's own page prints it."""
    from evalhub.core.models import Draw
    from evalhub.registry import services as registry
    from evalhub.registry.models import Expert
    from evalhub.review import services as R
    from evalhub.review.models import PanelStatus, ReviewPanel

    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    reviewers = factories.panel_experts(e, 4)  # three seats and one left over for the replacement
    for x in db.session.execute(sa.select(Expert)).scalars():
        x.available = x in reviewers
    db.session.flush()
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    assert isinstance(panel, ReviewPanel)
    suspended = db.session.get(Expert, panel.invitations[0].expert_id)
    secret = "收受被评价单位礼金经查属实暂停一年"
    registry.change_expert_status(suspended, "suspend", secret, world.bz_admin)
    factories.witness_pending()  # the replacement draw, witnessed and revealed
    db.session.refresh(panel)
    factories.review_panel(panel, "0.95")
    db.session.commit()
    assert panel.status != PanelStatus.REVIEWING
    replacement = db.session.execute(sa.select(Draw).where(Draw.redraw_of_id == panel.draw_id)).scalars().one()
    assert secret in (replacement.redraw_reason or "")  # the bureau's own record keeps it

    original_page = client.get(f"/public/draws/{panel.draw_id}")
    assert original_page.status_code == 200  # the review is over: the draw is public (by design)
    assert suspended.name in text(original_page)  # the drawn are named for verification (by design)
    assert secret not in text(original_page)
    replacement_page = client.get(f"/public/draws/{replacement.id}")
    assert replacement_page.status_code == 200
    assert secret not in text(replacement_page)


# --- the public OCDS package names no losing tenderer ------------------------------------------------------

def test_the_public_ocds_package_of_a_revoked_award_names_no_losing_tenderer(client, world):
    """The public OCDS package leaves the tenderers' names out ("the bids' prices and the tenderers' names stay
    out …", procurement/ocds.py ``release``), the public procurement pages publish "no sealed bid" (public/views.py),
    and a challenge is read by the bureau and its filer only (procurement/permissions.py "challenge.view"). When 乙,
    a losing bidder, has a challenge upheld, neither the revoked award's public package nor the public pages name 乙."""
    from evalhub.procurement import services as P
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    loser = bidders["乙"][0]
    loser.name = "长风绩效评价咨询有限公司"  # a name that cannot turn up by chance
    db.session.flush()
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，技术分计算确有错误。", "reevaluate")
    db.session.commit()
    package = client.get(f"/public/procurements/{p.id}/ocds.json")
    assert package.status_code == 200
    assert package.json["releases"][0]["awards"][0]["status"] == "cancelled"
    shown = json.dumps(package.json, ensure_ascii=False)
    assert loser.name not in shown, "the public OCDS names no losing tenderer"
    notice_page = text(client.get(f"/public/notices/{p.notices[0].id}"))
    # the revocation's public reason is fixed; the answer is the challenger's and the bureau's (94号令 第十五条)
    assert "质疑成立，撤销成交结果，重新评审" in notice_page
    assert "技术分计算确有错误" not in notice_page and "技术分计算确有错误" not in shown
    for url in (f"/public/procurements/{p.id}", f"/public/notices/{p.notices[0].id}"):
        assert loser.name not in text(client.get(url)), url


# --- a public firm lottery publishes no unpublished rating and no case finding --------------------------

def test_a_public_firm_lottery_does_not_publish_a_draft_ratings_watch_list_or_a_cases_finding(client, world):
    """Only FINAL ratings are public (credit/views.py "public: FINAL ratings only"; DOMAIN §6: the draft rating
    is published for objection, to the firm, before it becomes final), and a targeted case's findings are not
    published (only a random campaign's results are, supervision ``public_inspections``). A firm lottery's page
    is public with its exclusion reasons, but a firm excluded for the watch list of a DRAFT rating (an
    intentional-violation finding) shows neither the finding nor "重点关注名单" on /public/draws/<id>."""
    from evalhub.credit import services as C
    from evalhub.credit.models import RatingStatus
    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementMethod as M
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    finding = "项目组伪造入户调查问卷一百二十份"
    worked = factories.contracted(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="举报线索", engagement=worked)
    V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description=finding)
    db.session.flush()
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    assert rating.status == RatingStatus.DRAFT and rating.watch_list  # not published: the bureau's draft
    factories.bidder(world, "巴州另一家评价咨询公司")  # someone the lottery may draw
    e = factories.engagement(world, unit="巴州民政局")
    p = P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"),
                           world.bz_staff)
    factories.witnessed(p.draw)
    db.session.commit()
    # the bureau's own record: out, suspended by the violation (a draft's watch list counts once published)
    assert any("暂停" in r for x in p.draw.exclusions for r in x["reasons"])

    page = client.get(f"/public/draws/{p.draw_id}")
    assert page.status_code == 200  # a firm lottery is public once drawn (by design)
    html = text(page)
    assert "巴州另一家评价咨询公司" in html  # the firm drawn is published (by design)
    assert finding not in html
    assert "重点关注名单" not in html



def test_a_public_firm_lottery_does_not_list_pending_or_rejected_applicants(client, world):
    """The public library lists admitted firms only (public/views.py ``firms``; tests/test_public_procurement.py
    "the firm library shows admitted firms only"), and applications and rejected firms are their library
    bureau's business only (registry/permissions.py). A firm lottery's public draw page lists the admitted
    library and names neither a pending nor a rejected applicant of it."""
    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementMethod as M
    from evalhub.registry.models import FirmStatus

    pending = factories.firm(world.bz, FirmStatus.PENDING, name="正在申请入库的咨询公司")
    rejected = factories.firm(world.bz, FirmStatus.REJECTED, name="申请入库被驳回的咨询公司")
    e = factories.engagement(world, unit="巴州民政局")
    p = P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"),
                           world.bz_staff)
    factories.witnessed(p.draw)
    db.session.commit()
    assert client.get("/public/firms").status_code == 200
    assert pending.name not in text(client.get("/public/firms"))  # the public library (by design)

    page = client.get(f"/public/draws/{p.draw_id}")
    assert page.status_code == 200
    html = text(page)
    assert world.firm.name in html  # the admitted library is listed (by design)
    assert pending.name not in html and rejected.name not in html

def test_a_framework_rotations_award_does_not_publish_why_a_member_was_skipped(client, auth, world):
    """Only FINAL ratings are public and a firm reads no other firm's rating (credit/views.py: "a firm user reads
    only their own firm's ratings, and only once published"; "anyone … reads FINAL ratings only"); a targeted
    case's findings are not published. A framework rotation skips a member on a DRAFT rating's watch list: the
    award's reasons (the public OCDS award description, public/views.py ``procurement_ocds``, and the winning
    firm's API) say "跳过：1号" but not why; the finding stays in the bureau's audit log."""
    from datetime import timedelta

    from evalhub.core.timeutil import beijing_today
    from evalhub.credit import services as C
    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementMethod as M
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    finding = "项目组伪造入户调查问卷一百二十份"
    worked = factories.contracted(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="举报线索", engagement=worked)
    V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description=finding)
    db.session.flush()
    C.compute(world.bz, 2025, world.bz_admin)  # a draft: the bureau's working copy, published to nobody
    winner, winner_user, _ = factories.bidder(world, "巴州入围评价咨询公司")
    agreement = P.create_framework_agreement(world.bz, world.bz_admin, name="绩效评价框架协议",
                                             valid_from=beijing_today() - timedelta(days=30),
                                             valid_until=beijing_today() + timedelta(days=300),
                                             firm_ids=[world.firm.id, winner.id])
    p = factories.witnessed(P.open_procurement(factories.engagement(world, unit="巴州民政局"), P.ProcurementInput(
        method=M.FRAMEWORK_ROTATION, title="", ceiling_price_wan="20", framework_agreement_id=agreement.id),
        world.bz_staff))
    db.session.commit()
    assert p.award.firm_id == winner.id and "跳过：1号" in p.award.reasons and finding not in p.award.reasons
    from evalhub.core.models import AuditEvent

    skipped = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "framework.skipped")).scalar_one()
    # why, in the log: suspended by the violation (a draft's watch list counts once published)
    assert "暂停" in json.dumps(skipped.payload, ensure_ascii=False)

    package = client.get(f"/public/procurements/{p.id}/ocds.json")
    assert package.status_code == 200
    shown = json.dumps(package.json, ensure_ascii=False)
    assert finding not in shown and "重点关注名单" not in shown, "public OCDS"
    api = client.get(f"/api/v1/procurements/{p.id}", headers=auth(winner_user.username))
    assert api.status_code == 200
    shown = json.dumps(api.json, ensure_ascii=False)
    assert finding not in shown and "重点关注名单" not in shown, "the winning firm's API"


# --- a filter parameter names no firm the reader may not see ------------------------------------------------

def test_the_screening_queues_firm_filter_does_not_name_a_firm_outside_the_readers_libraries(client, login, world):
    """Applications and rejected firms are their library bureau's business only (registry/permissions.py:
    "Applications and rejected firms of an upper bureau are that bureau's business only"; a bureau user sees the
    firms of its own bureaus' libraries and the admitted ones above it, never a sibling prefecture's). The
    screening queue's ``?firm_id=`` filter is held to the same scope: a county's staff passing the id of a firm
    克州 rejected does not read its name in the filter box."""
    from evalhub.core import permissions
    from evalhub.registry.models import Firm, FirmStatus

    applicant = factories.firm(world.kz, FirmStatus.REJECTED, name="被克州驳回的申请机构")
    db.session.commit()
    assert not permissions.visible(world.lt_staff, applicant)  # not in the county's libraries (by design)
    login(world.lt_staff)
    firm_page = client.get(f"/firms/{applicant.id}")
    assert firm_page.status_code in (403, 404)  # the registry keeps it from the county
    queue = client.get(f"/screening/queue?firm_id={applicant.id}")
    assert queue.status_code == 200
    assert applicant.name not in text(queue)
