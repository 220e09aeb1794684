"""Rules of expert review (evalhub/review/) on every path (a replacement draw's reveal, a cancellation, the hourly
job, the result page, the draws): each test states a rule and its source, and sets up the case it holds on."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import draws
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import Draw
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.registry import services as registry
from evalhub.review import ratings as RT
from evalhub.review import services as R
from evalhub.review.models import InvitationStatus, ReviewPanel, Rubric, RubricKind
from tests import factories
from tests.test_draw_integrity import _only_these_drawable


def _seated(panel) -> set[int]:
    return {i.expert_id for i in panel.invitations if i.status in (InvitationStatus.INVITED, InvitationStatus.ACCEPTED)}


# --- a replacement draw's reveal asks the rules again -----------------------------------------------------

def test_an_expert_suspended_while_a_replacement_draw_waits_is_not_seated_at_its_reveal(world):
    """Rule (docs/rules.md, Review: "the rules are asked again of whom it picks at the reveal: a panel's expert …
    who no longer qualifies (suspended, disabled, tied since) does not sit; … a panel's replacement draw is asked
    the same at its own reveal"). An expert declines; the only candidate left is suspended while the replacement
    draw waits for its witnesses, and its reveal does not seat that expert."""
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    fresh = _only_these_drawable(e, 4)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    spare = next(x for x in fresh if x.id not in _seated(panel))
    first = panel.invitations[0]
    record = R.respond(first, factories.expert_user(first.expert_id), accept=False, reason="出差在外，无法参加")
    assert record is not None and draws.eligible_ids(record) == [spare.id]
    # before the witnesses meet, the bureau suspends the only candidate left
    registry.change_expert_status(spare, "suspend", "被投诉，暂停参加评审", world.bz_admin)
    db.session.flush()
    factories.witnessed(record)
    assert spare.id not in _seated(panel), \
        "an expert suspended since the replacement draw was announced must not be invited at its reveal"


# --- a cancelled engagement's panel is no open review task ----------------------------------------------

def test_a_cancelled_engagements_panel_no_longer_counts_against_the_experts_load_cap(world):
    """Rule (docs/rules.md, Review: "Expert load: open review tasks at once", setting ``review.load_cap``): only
    live work counts. With the cap at 1, three experts accept a report's panel; the engagement is then cancelled
    (终止) while under review, and ``open_review_loads`` no longer counts that review against them."""
    set_setting(world.bz, "review.load_cap", 1, world.bz_admin)
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    panel = factories.own_panel(e, n=3)
    for invitation in panel.invitations:
        R.respond(invitation, factories.expert_user(invitation.expert_id), accept=True, declaration_signed=True)
    seated = sorted(_seated(panel))
    assert R.open_review_loads(seated) == {x: 1 for x in seated}
    workflow.perform(e, "cancel", world.bz_admin, note="项目资金调整，本年度不再开展评价")
    db.session.flush()
    loads = R.open_review_loads(seated)
    assert loads == {}, f"a cancelled engagement's review must not count as an open task: {loads}"


# --- the expiry's replacement reason gives the deadline in Beijing time ----------------------------------

def test_the_expired_invitations_replacement_reason_gives_the_deadline_in_beijing_time(world):
    """Rule: deadlines are shown in Beijing time (rules.md: "Days for an expert to answer an invitation …";
    ``_answer_in_time`` and the invitation notice say "北京时间 …"), the replacement draw's reason written by
    ``expire_invitations`` (shown on the draw page, public once the review ends) included. An invitation due
    2025-01-01 20:00 UTC expires: its reason gives 2025-01-02 04:00, not the raw UTC value."""
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    _only_these_drawable(e, 4)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    late = panel.invitations[0]
    late.respond_by = datetime(2025, 1, 1, 20, 0)  # UTC, as stored: 2025-01-02 04:00 in Beijing
    db.session.flush()
    assert R.expire_invitations() == 1
    record = db.session.execute(sa.select(Draw).where(Draw.kind == "review_replacement")).scalars().one()
    assert "2025-01-02 04:00" in record.redraw_reason and "2025-01-01 20:00" not in record.redraw_reason, \
        record.redraw_reason


# --- a rubric is stored as it was checked -----------------------------------------------------------------

@pytest.mark.parametrize("points", [("33.333", "33.333", "33.334"), ("99.999", "0.001")])
def test_a_rubric_is_stored_as_checked_items_above_zero_adding_up_to_100(world, points):
    """Rule (services.revise_rubric: "各评分项分值合计应为 100" and each item "分值必须大于 0"; DOMAIN §5 rubrics
    of 100): what is stored is what was checked (``RubricItem.max_points`` keeps two decimals). Items of more than
    two decimals (33.333 ×2 + 33.334; 99.999 + 0.001) are either refused or stored above 0 and adding up to 100."""
    items = [(f"评分项{n}", "要点", p) for n, p in enumerate(points, 1)]
    try:
        rubric = R.revise_rubric(world.bz, RubricKind.REPORT, items, world.bz_admin)
    except ValidationFailed:
        return  # refused: fine
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Rubric, rubric.id)
    maxima = [i.max_points for i in stored.items]
    assert all(m > 0 for m in maxima) and sum(maxima) == Decimal("100"), \
        f"a rubric accepted as 100 must be stored as 100, items above 0: stored {maxima} (total {sum(maxima)})"


# --- a crafted cap id on the result page --------------------------------------------------------------------

def test_a_crafted_cap_id_on_the_result_page_is_a_404_not_a_500(world, client, login):
    """Rule: bad input never gives a 500 (tests/test_bad_input.py: ids past INT_MAX are answered like any unknown
    id; core.listing.as_int bounds them). The result page's lift-a-cap form posts a hidden ``cap_id`` of 20 digits
    (past any INTEGER column's range): ``review.views._cap_of`` answers it with the 404 of an unknown cap."""
    e = factories.accepted(world)
    db.session.commit()
    response = login(world.bz_staff).post(f"/engagements/{e.id}/result",
                                          data={"form": "cap_lift", "cap_id": "99999999999999999999", "reason": "依据有误，撤销该限制"})
    assert response.status_code == 404, response.status_code


# --- the poor-rating window at draw time counts Beijing days ---------------------------------------------

def test_a_poor_rating_inside_the_365_day_window_still_keeps_the_expert_out_of_draws(world):
    """Rule (docs/rules.md, Registry: "Persistent poor ratings take an expert out of every draw …, until the
    window passes them (the window counted in Beijing days)", ``expert.rating_window_days`` 365, source DOMAIN §4).
    A poor rating made 364 days 23 hours ago is inside the window both on the expert's record page
    (``poor_rating_reasons``) and at draw time (``expert_is_drawable``, asked with ``on=beijing_today()``)."""
    e = factories.in_fieldwork(world)
    panel = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.engagement_id == e.id)).scalar_one()
    expert = RT.ratable(panel)[0]
    set_setting(world.bz, "expert.rating_poor_count", 1, world.bz_admin)
    rating = RT.rate_expert(panel, expert.id, world.bz_staff, timeliness=1, quality=3, note="逾期 6 天提交评审意见")
    rating.rated_at = utcnow() - timedelta(days=365) + timedelta(hours=1)  # 364 days 23 hours ago
    db.session.flush()
    on_record = RT.poor_rating_reasons(expert)
    assert on_record, "the record page: still inside the 365-day window"
    assert on_record[0] in registry.expert_is_drawable(expert), \
        "the draw-time check must keep a poor rating still inside the window (a Beijing date is not UTC)"
