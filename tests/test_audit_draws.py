"""Audit of the one draw service and the fairness of every draw (core/draws.py and its callers).

Each test states the rule it holds the code to (docs/rules.md, /work/shared/DESIGN.md or DOMAIN.md, the
module's own contract, or the law it cites) and fails on the current code because of the defect it names.
"""
from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from evalhub.core import audit, draws
from evalhub.core.errors import Conflict
from evalhub.core.models import Draw, DrawStatus
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import BidStatus
from tests import factories
from tests.test_procurement_services import rescore, tied_consultation


# --- helpers -------------------------------------------------------------------------------------------------

def _campaign(world):
    from evalhub.supervision import services as V
    from tests.test_credit_supervision_services import _completed

    _completed(world)
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    db.session.commit()
    return campaign


# --- 1. a tie-break awards a bid that is no longer first ------------------------------------------------------

def test_a_tie_break_does_not_award_a_bid_that_rescoring_has_put_behind_another(world):
    """docs/rules.md (Procurement): "lots are drawn (a witnessed draw) only among the bids equal to the first in
    both" (财政部令第87号 第五十五条、第六十八条); the draw module: "the candidate list … is frozen" between the
    announcement and the reveal. 甲 and 乙 tie for first and the tie-break is announced among them; while it waits
    for its witnesses the committee's scores are entered again (nothing stops it) and 丙 is now first alone. The
    reveal still awards 甲 or 乙 — whoever the lot picks — over the bid ranked first: the scores the candidate list
    was frozen from are not frozen, and ``_award_tie_winner`` never asks whether its bids are still tied for first."""
    p = tied_consultation(world)
    record = P.award_procurement(p, world.bz_staff, "综合得分与报价并列第一")
    assert isinstance(record, Draw) and record.kind == "procurement_tiebreak"
    tied = set(record.candidate_ids)

    # (amended with the fix: the scores are now frozen while the tie-break waits — the service refuses, 409 — so
    # the rescoring is written to the score rows directly, standing for any path around the freeze, and the
    # reveal must still not award a bid that is no longer tied first)
    try:
        rescore(world, p, {"甲": 80, "乙": 80, "丙": 100})
        refused = False
    except Conflict:
        refused = True
    assert refused, "record_technical_scores accepts new scores while the tie-break waits for its witnesses"
    from evalhub.procurement.models import TechnicalScore
    third = next(b for b in p.bids if b.firm.name == "丙")
    for score in db.session.execute(sa.select(TechnicalScore).where(TechnicalScore.bid_id == third.id)).scalars():
        item = next(i for i in p.rubric if i.id == score.rubric_item_id)
        score.points = item.max_points  # 100 of 100
    db.session.flush()
    first = next(r for r in P.evaluate(p) if r.rank == 1)
    assert first.bid.firm.name == "丙" and first.bid.id not in tied and not first.tied

    try:
        award = factories.witnessed(record, operator=world.bz_staff, witnesses=[world.bz_admin])
    except Conflict:
        award = None  # refusing the reveal (the tie no longer holds) is a fix too
    assert award is None or award.bid_id == first.bid.id, (
        f"the tie-break awarded bid #{award.bid_id} ({award.firm.name}), ranked behind 丙's bid #{first.bid.id}, "
        "which the scores entered after the announcement put first alone")


# --- 2. verify: a derived draw cut loose from its parent ---------------------------------------------------------

def test_a_derived_draw_unlinked_from_its_parent_and_rewritten_is_caught_by_verify(app, world):
    """DESIGN.md ("anyone can re-run it (flask evalhub draws verify ID)") and the draw module: a derived draw's
    candidate list is frozen by its hash and its seed follows from the parent's; verify compares the row with the
    audit event written at the time (``_performed``: "so the draw row can be checked against its audit event"),
    and a witnessed draw passed off as a pre-witness (legacy) draw is caught. A campaign's inspector draw is
    rewritten: ``derived_from_id`` blanked, the drawn inspector renamed, the kind and the inspection it is for
    changed. With no parent and no commitment it now reads as a legacy draw: neither its hash, nor its derivation,
    nor its kind or context is checked, although its own ``draw.performed`` event says it was derived from the
    campaign's draw with that candidate hash. verify (and the CLI) say it is fine."""
    campaign = _campaign(world)
    staff_draw = next(db.session.get(Draw, i.draw_id) for i in campaign.inspections[0].inspectors if i.user_id)
    assert staff_draw.derived_from_id is not None and draws.verify(staff_draw).ok
    performed = next(e for e in audit.history("draw", staff_draw.id) if e.action == "draw.performed")
    assert performed.payload["derived_from"] == staff_draw.derived_from_id

    drawn = str(staff_draw.result_ids[0])
    staff_draw.derived_from_id = None
    staff_draw.candidate_names = {**staff_draw.candidate_names, drawn: "另一位检查人员"}
    staff_draw.kind = "inspection_expert"
    staff_draw.context_id += 1
    db.session.commit()

    check = draws.verify(staff_draw)
    result = app.test_cli_runner().invoke(args=["evalhub", "draws", "verify", str(staff_draw.id)])
    assert not check.ok, f"verify accepts a derived draw cut loose from its parent and rewritten: {check}"
    assert result.exit_code == 1, result.output


# --- 3. a tie-break drawn again after a challenge, as if for the first time ----------------------------------------

def test_a_tie_break_drawn_again_after_a_challenge_cites_the_first_or_lets_it_stand(world):
    """DESIGN.md (Verifiable random draws): "A draw is never deleted; a redraw cites its reason" (``announce``'s
    ``redraw_of`` / ``redraw_reason``, as a panel's replacement does). 甲 and 乙 tie for first; the witnessed lot
    awards one of them. The loser challenges, the bureau upholds it with 重新评审 and awards again on the very same
    scores: a brand-new tie-break is announced among the same two bids, with a new secret, as if no lot had been
    drawn — it neither lets the first lot stand nor cites it (``redraw_of_id`` empty, no reason), so the losing
    side of a lot gets a second throw and the public page of the new lot does not say there was a first."""
    from evalhub.procurement.models import Award
    from tests.test_procurement_law import EVIDENCE

    p = tied_consultation(world)
    first = P.award_procurement(p, world.bz_staff, "综合得分与报价并列第一")
    award = factories.witnessed(first, operator=world.bz_staff, witnesses=[world.bz_admin])
    won = award.bid_id
    loser_bid = next(b for b in p.bids if b.id in first.candidate_ids and b.id != won)
    loser_user = db.session.execute(sa.select(factories.User).where(
        factories.User.firm_id == loser_bid.firm_id)).scalars().first()
    challenge = P.file_challenge(p, loser_user, "并列第一的随机确定过程存在瑕疵，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，评审过程记录不完整，重新评审。", "reevaluate")
    db.session.flush()

    again = P.award_procurement(p, world.bz_staff, "重新评审：综合得分与报价仍并列第一")
    if isinstance(again, Award):
        assert again.bid_id == won  # the first lot stands
        return
    assert isinstance(again, Draw) and again.id != first.id and set(again.candidate_ids) == set(first.candidate_ids)
    assert again.redraw_of_id == first.id and (again.redraw_reason or "").strip(), (
        f"the tie between the same bids is drawn again (#{again.id}) with a fresh secret, citing neither the first "
        f"lot #{first.id} nor a reason (redraw_of_id={again.redraw_of_id!r}, redraw_reason={again.redraw_reason!r})")


# --- 4. public draws nobody can reach from the public pages ------------------------------------------------------

def test_the_public_pages_of_a_firm_lottery_and_a_published_campaign_link_to_their_verifiable_draws(world, client):
    """DESIGN.md: "Firm lotteries, expert panels and random inspections all use one draw service … anyone can re-run
    it"; core/draws.py: a public kind is "published to anyone once drawn (firm lotteries, inspection draws)", and
    /public/draws/<id> is where anyone "reads and recomputes a published draw"; seed 000 / DOMAIN §7 (双随机、一公开):
    "publish the list and results". Yet no public page leads there: the public procurement page and the result
    notice of a library draw say only 从机构库随机抽取 and the winner, and the public campaign list (抽查公示) shows the
    sampled engagements — none gives the draw's number or a link to its public page, so the public, and the firms
    that were candidates, cannot find the draw they are told they may verify (only guess its id)."""
    from evalhub.procurement.models import ProcurementMethod as M
    from evalhub.supervision import services as V

    e = factories.engagement(world)
    p = P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"), world.bz_staff)
    factories.witnessed(p.draw)
    campaign = _campaign(world)
    V.publish_campaign_list(campaign, world.bz_staff)
    db.session.commit()
    lottery, sample = p.draw_id, campaign.engagement_draw_id
    assert client.get(f"/public/draws/{lottery}").status_code == 200   # published …
    assert client.get(f"/public/draws/{sample}").status_code == 200

    pages = {"采购项目公开页": (f"/public/procurements/{p.id}", lottery),
             "结果公告页": (f"/public/notices/{p.notices[0].id}", lottery),
             "抽查公示页": ("/public/inspections", sample)}
    unlinked = [label for label, (url, draw_id) in pages.items()
                if f"/public/draws/{draw_id}" not in client.get(url).get_data(as_text=True)]
    assert not unlinked, f"… but not linked from the public pages: {unlinked}"


# --- 5. verify: a drawn draw set back to "announced" ---------------------------------------------------------------

def test_a_revealed_draw_set_back_to_announced_is_caught_by_verify(app, world, client):
    """DESIGN.md: "A draw is never deleted … anyone can re-run it (flask evalhub draws verify ID)"; the draw module:
    a draw "is revealed once", and ``DrawCheck`` is ok only when "the draw row still says what the audit events
    written at the time say". A firm lottery is revealed and published (its ``draw.performed`` event records the
    seed and the winner). Someone with the database sets the row back to 已公告 (status only): the lottery vanishes
    from /public/draws (404: "not drawn: nothing to publish") and waits on the bureau's page to be revealed again, yet
    verify and the CLI answer "一致" — for an announced row they check the announcement only and never ask whether
    the audit log says the draw was already performed."""
    from evalhub.procurement.models import ProcurementMethod as M

    e = factories.engagement(world)
    p = P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"), world.bz_staff)
    factories.witnessed(p.draw)
    db.session.commit()
    record = p.draw
    assert draws.verify(record).ok and client.get(f"/public/draws/{record.id}").status_code == 200
    assert any(ev.action == "draw.performed" for ev in audit.history("draw", record.id))

    record.status = DrawStatus.ANNOUNCED
    db.session.commit()
    assert client.get(f"/public/draws/{record.id}").status_code == 404  # hidden from the public
    check = draws.verify(record)
    result = app.test_cli_runner().invoke(args=["evalhub", "draws", "verify", str(record.id)])
    assert not check.ok, f"verify accepts a revealed lottery set back to announced: {check}"
    assert result.exit_code == 1, result.output


# --- 6. the public page of a tie-break names the losing tenderer ------------------------------------------------

def test_the_public_page_of_a_tie_break_does_not_name_the_losing_tenderer(world, client):
    """What the public reads of a procurement: procurement/ocds.py ``package(public=True)``: "the bids' prices and
    the tenderers' names stay out (the number of tenderers and the award are published)"; public/views.py: "no sealed
    bid"; tests/test_leaks_public.py holds the public procurement pages and the OCDS package to it. The tie-break
    draw is a public kind (``on_drawn("procurement_tiebreak", public=True)``) and its candidates are named
    "<firm>的投标": once revealed, /public/draws/<id> names the losing tied tenderer to anyone — and, the tie being on
    score and price, tells them that its bid price equals the published award amount. The draw can be recomputed
    from the bid ids alone (as the public page already does for people, leaving out what it must not show)."""
    p = tied_consultation(world)
    names = {"甲": "长风绩效评价咨询有限公司", "乙": "远山绩效评价咨询有限公司"}  # names that cannot turn up by chance
    for bid in p.bids:
        bid.firm.name = names.get(bid.firm.name, bid.firm.name)
    db.session.flush()
    record = P.award_procurement(p, world.bz_staff, "综合得分与报价并列第一")
    award = factories.witnessed(record, operator=world.bz_staff, witnesses=[world.bz_admin])
    loser = next(b for b in p.bids if b.id in record.candidate_ids and b.id != award.bid_id).firm
    db.session.commit()
    ocds = client.get(f"/public/procurements/{p.id}/ocds.json").get_data(as_text=True)
    assert loser.name not in ocds  # the public package keeps the losing tenderer out …
    page = client.get(f"/public/draws/{record.id}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert loser.name not in body, (
        "the public tie-break page names the losing tenderer (its bid tied the award's price)")
