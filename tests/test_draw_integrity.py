"""Draws, verification and red flags that cannot be steered or dodged: a panel's reveal asks the rules again of
the drawn, verification catches a witnessed draw passed off as old and a derived draw's changed list, and the
near-identical-text and regular-price checks are not escaped by a look-alike full stop or one uneven step."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core import audit, draws
from evalhub.core.errors import Conflict, DomainError
from evalhub.core.models import Draw, DrawStatus
from evalhub.extensions import db
from evalhub.procurement.eligibility import library_bureau_ids
from evalhub.registry import services as registry
from evalhub.registry.models import Expert
from evalhub.review import services as R
from evalhub.review.models import InvitationStatus
from tests import factories


def _only_these_drawable(e, n):
    """n fresh experts of the engagement's field are the only drawable ones of its pools."""
    fresh = factories.panel_experts(e, n)
    for x in db.session.execute(sa.select(Expert).where(Expert.bureau_id.in_(library_bureau_ids(e.bureau)))).scalars():
        if x not in fresh:
            x.available = False
    db.session.flush()
    return fresh


# --- a panel's reveal asks the rules again of the drawn experts ----------------------------------------------

def test_an_expert_suspended_while_the_panel_draw_waits_is_not_seated_at_the_reveal(world):
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    fresh = _only_these_drawable(e, 3)
    record = R.form_panel(e, world.bz_staff, size=3)
    assert record.status == DrawStatus.ANNOUNCED and sorted(draws.eligible_ids(record)) == sorted(x.id for x in fresh)
    # days later, before the witnesses meet, the bureau suspends one of them (a complaint about their work)
    suspended = fresh[0]
    registry.change_expert_status(suspended, "suspend", "被投诉，暂停参加评审", world.bz_admin)
    db.session.flush()
    draws.name_witnesses(record, [world.bz_admin], world.bz_staff)
    draws.enter_number(record, world.bz_admin, "2718")
    panel = draws.reveal(record, world.bz_staff).effect
    seated = {i.expert_id for i in panel.invitations if i.status in (InvitationStatus.INVITED, InvitationStatus.ACCEPTED)}
    # a suspended expert holds no seat: the rule that releases their seats at the suspension must also keep them
    # from being seated by a draw that was waiting when they were suspended
    assert suspended.id not in seated, "a suspended expert was invited to the panel by a draw announced before the suspension"


# --- verification: a witnessed draw passed off as old --------------------------------------------------------

def _lottery(world):
    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementMethod as M

    e = factories.engagement(world)
    p = P.open_procurement(e, P.ProcurementInput(method=M.RANDOM_DRAW, title="", ceiling_price_wan="15"), world.bz_staff)
    factories.witnessed(p.draw)
    db.session.commit()
    record = p.draw
    assert record.status == DrawStatus.DRAWN and draws.verify(record).ok
    return record


def test_blanking_the_commitment_of_a_witnessed_draw_is_caught_by_verify(app, world, client):
    record = _lottery(world)
    winner = str(record.result_ids[0])
    assert draws.is_public(record) and client.get(f"/public/draws/{record.id}").status_code == 200
    # someone with the database rewrites the stored draw: the commitment blanked (it now reads as a draw made
    # before witnessed draws existed), the winner shown under another name, the witness swapped
    record.commitment = None
    record.candidate_names = {**record.candidate_names, winner: "另一家评价机构"}
    record.witnesses[0].user_id = world.bz_admin.id
    db.session.commit()
    # the audit trail says this draw was announced with a commitment and revealed with a secret and witnesses
    announced = next(ev for ev in audit.history("draw", record.id) if ev.action == "draw.announced")
    assert announced.payload["commitment"]
    check = draws.verify(record)
    result = app.test_cli_runner().invoke(args=["evalhub", "draws", "verify", str(record.id)])
    assert not check.ok, ("verify accepts a witnessed draw whose commitment was blanked, its winner renamed and its "
                          f"witness swapped: {check}")
    assert result.exit_code == 1, result.output


# --- verification: the kind, which decides who may read a draw ----------------------------------------------------

def test_changing_the_kind_of_a_witnessed_draw_is_caught_by_verify(world):
    """A review panel's draw is confidential until the review ends; one rewritten as a firm lottery would be public.
    The kind is compared with the announcement's audit event."""
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    record = factories.own_panel(e, n=3).draw
    db.session.commit()
    assert draws.verify(record).ok and not draws.is_public(record)
    record.kind = "firm_lottery"
    db.session.commit()
    check = draws.verify(record)
    assert not check.ok and any("抽取类型" in m for m in check.mismatches), check


@pytest.mark.parametrize("field, label", [("params", "抽取用途参数"), ("bureau_id", "所属财政局"),
                                          ("context_id", "抽取事由")])
def test_pointing_a_witnessed_draw_elsewhere_is_caught_by_verify(world, field, label):
    """What a draw is for lies outside its candidate hash: the submission its panel reviews (params), the bureau
    that manages and reads it, what it is about (context). Each is compared with the audit events."""
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    record = factories.own_panel(e, n=3).draw
    db.session.commit()
    assert draws.verify(record).ok
    if field == "params":
        record.params = {**record.params, "submission": record.params["submission"] + 1}
    elif field == "bureau_id":
        record.bureau_id = world.kz.id
    else:
        record.context_id = (record.context_id or 0) + 1
    db.session.commit()
    check = draws.verify(record)
    assert not check.ok and any(label in m for m in check.mismatches), check


def test_pointing_a_derived_draw_at_another_inspection_is_caught_by_verify(world):
    from evalhub.supervision import services as V
    from tests.test_credit_supervision_services import _completed

    _completed(world)
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    db.session.commit()
    staff_draw = next(db.session.get(Draw, i.draw_id) for i in campaign.inspections[0].inspectors if i.user_id)
    assert draws.verify(staff_draw).ok
    staff_draw.kind = "inspection_expert"
    staff_draw.context_id += 1
    db.session.commit()
    check = draws.verify(staff_draw)
    assert not check.ok and {"抽取类型", "抽取事由"} <= {label for label in ("抽取类型", "抽取事由")
                                                       if any(label in m for m in check.mismatches)}, check


# --- verification: a derived draw's list against its hash ----------------------------------------------------

def test_renaming_the_drawn_inspector_of_a_derived_draw_is_caught_by_verify(world):
    from evalhub.supervision import services as V
    from tests.test_credit_supervision_services import _completed

    _completed(world)
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    db.session.commit()
    staff_draw = next(db.session.get(Draw, i.draw_id) for i in campaign.inspections[0].inspectors if i.user_id)
    assert staff_draw.derived_from_id is not None and draws.verify(staff_draw).ok
    drawn = str(staff_draw.result_ids[0])
    staff_draw.candidate_names = {**staff_draw.candidate_names, drawn: "另一位检查人员"}
    db.session.commit()
    assert staff_draw.candidate_hash != draws.sha256(draws.canonical(staff_draw))  # the frozen list no longer hashes
    check = draws.verify(staff_draw)
    assert not check.ok, f"verify accepts a derived draw whose candidate list no longer matches its hash: {check}"


# --- near-identical proposals: a look-alike full stop --------------------------------------------------------

def test_a_copied_proposal_with_its_full_stops_swapped_for_the_fullwidth_dot_is_still_flagged():
    from decimal import Decimal

    from evalhub.integrity import services as I
    from evalhub.integrity.models import CollusionRule
    from tests.test_integrity import PROPOSAL

    # a technical proposal as Word holds it: paragraphs of several sentences
    original = "\n".join("".join(PROPOSAL[i:i + 3]) for i in range(0, len(PROPOSAL), 3))
    # the copier's one find-and-replace: 。 → ． (U+FF0E, looks the same on the page); every character else equal
    copied = original.replace("。", "．")
    assert I.compare([I.BidDoc(1, 1, "甲公司", Decimal("400000"), "a", original),
                      I.BidDoc(2, 2, "乙公司", Decimal("450000"), "b", original)])  # the plain copy is flagged
    found = I.compare([I.BidDoc(1, 1, "甲公司", Decimal("400000"), "a", original),
                       I.BidDoc(2, 2, "乙公司", Decimal("450000"), "b", copied)])
    assert [f.rule for f in found] == [CollusionRule.SIMILAR_TEXT], (
        "a proposal identical but for the full-stop glyph escapes the near-identical-text check "
        "(sentence keys split only on 。！？；, the shingle similarity of 100% is never consulted)")


# --- regular price pattern: every step is asked whether it is a whole 万元 -------------------------------------

def test_three_prices_with_one_whole_and_one_uneven_step_are_a_regular_pattern():
    from decimal import Decimal

    from evalhub.integrity import services as I

    # 40.0000, 41.0000 and 42.0020 万元: steps of 1.0000 and 1.0020 万元, within the 5 ‰ tolerance (0.0050 万元);
    # not "three bids in whole-万元 steps" (the second step is not whole, the third bid is not round)
    docs = [I.BidDoc(i, i, f"机构{i}", Decimal(p)) for i, p in enumerate(["400000", "410000", "420020"], start=1)]
    found = I.price_flags(docs, 5)
    assert [f.rule.value for f in found] == ["price_pattern"], (
        "the whole-万元 exemption looks at the first step only (price_flags: step = diffs[start]), so a second step "
        "off by up to the tolerance escapes; the ratio branch checks every step")


# --- avoidance reads the firms' rosters, not only what an expert declared ------------------------------------

def test_an_expert_on_the_firms_roster_is_neither_a_reviewer_nor_an_inspector_of_its_work(world):
    from evalhub.procurement import team
    from evalhub.supervision import services as V

    number = factories.id_number()
    # the firm's 主评人 — the person who writes the report
    lead = registry.add_staff(world.firm, registry.StaffInput(name="赵主评", id_number=number, role="项目负责人",
                                                              years_experience=12), world.firm_user)
    e = factories.in_fieldwork(world)
    assert team.lead(e).id == lead.id
    factories.submit_report(e)
    # the same person is also in the bureau's expert pool, giving a university as employer and declaring no tie
    moonlighter = factories.expert(world.bz, name="赵主评", id_number=number, employer="新疆财经大学")
    factories.expert_user(moonlighter.id)
    assert moonlighter.id_number_digest == lead.id_number_digest  # the registry knows it is one person
    panel = R.panel_exclusions(e, [moonlighter])
    _pool, inspectors = V.inspector_expert_candidates(world.bz, e, e.firm)
    assert moonlighter.id in panel, ("the firm's own 主评人, registered as an expert, may be drawn to review the report "
                                     "he wrote (avoidance reads only declared ties, never the firm's roster)")
    assert moonlighter.id in inspectors, "and may be drawn to inspect it"

