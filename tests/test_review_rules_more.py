"""Audit of expert review (evalhub/review/): rules some path does not enforce. Each test states the rule and
its source, and fails until the defect it names is fixed."""
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
from evalhub.procurement.eligibility import library_bureau_ids
from evalhub.registry import services as registry
from evalhub.registry.models import Expert
from evalhub.review import ratings as RT
from evalhub.review import services as R
from evalhub.review.models import InvitationStatus, ReviewPanel, Rubric, RubricKind
from tests import factories


def _only_these_drawable(e, n):
    """n fresh experts of the engagement's field (with logins) are the only drawable ones of its pools."""
    fresh = factories.panel_experts(e, n)
    for x in db.session.execute(sa.select(Expert).where(Expert.bureau_id.in_(library_bureau_ids(e.bureau)))).scalars():
        if x not in fresh:
            x.available = False
    db.session.flush()
    return fresh


def _seated(panel) -> set[int]:
    return {i.expert_id for i in panel.invitations if i.status in (InvitationStatus.INVITED, InvitationStatus.ACCEPTED)}


# --- 1. a replacement draw's reveal does not ask the rules again ------------------------------------------

def test_an_expert_suspended_while_a_replacement_draw_waits_is_not_seated_at_its_reveal(world):
    """Rule (docs/rules.md, Review: "A witnessed draw stands as announced, but the rules are asked again of whom
    it picks at the reveal: a panel's expert … who no longer qualifies (suspended, disabled, tied since) does not
    sit"; and "A withdrawn invitation … is replaced … with the same exclusions"). ``_seat_panel`` re-asks
    ``panel_exclusions`` of the drawn; ``_seat_replacements`` (the reveal of a replacement draw after a decline,
    expiry or withdrawal) invites whoever the draw picked, so an expert suspended while the replacement waited
    for its witnesses is seated on the panel."""
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
        "a suspended expert was invited to the panel by the replacement draw announced before the suspension"


# --- 2. a cancelled engagement's panel stays an open review task ----------------------------------------

def test_a_cancelled_engagements_panel_no_longer_counts_against_the_experts_load_cap(world):
    """Rule (docs/rules.md, Review: "Expert load: open review tasks at once", setting ``review.load_cap``).
    Cancelling (终止) an engagement while its report is under review leaves its panel REVIEWING: the seated
    experts' reviews of work that no longer exists keep counting as open tasks in ``open_review_loads`` (so with
    the cap reached they are excluded from every other draw), and the hourly job keeps reminding/expiring them."""
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
    assert loads == {}, f"a cancelled engagement's review still counts as an open task: {loads}"


# --- 3. the expiry's replacement reason gives the deadline in UTC -----------------------------------------

def test_the_expired_invitations_replacement_reason_gives_the_deadline_in_beijing_time(world):
    """Rule: deadlines are shown in Beijing time (rules.md: "Days for an expert to answer an invitation …";
    ``_answer_in_time`` and the invitation notice say "北京时间 …"). ``expire_invitations`` writes the
    replacement draw's reason (shown on the draw page, public once the review ends) with the raw UTC value:
    an invitation due 2025-01-02 04:00 Beijing reads "专家未在 2025-01-01 20:00 前答复邀请"."""
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


# --- 4. rubric points past two decimals are rounded away after the checks ---------------------------------

@pytest.mark.parametrize("points", [("33.333", "33.333", "33.334"), ("99.999", "0.001")])
def test_a_rubric_is_stored_as_checked_items_above_zero_adding_up_to_100(world, points):
    """Rule (services.revise_rubric: "各评分项分值合计应为 100" and each item "分值必须大于 0"; DOMAIN §5 rubrics
    of 100). The checks run on the values as typed, but ``RubricItem.max_points`` is Numeric(6, 2): 33.333 ×2 +
    33.334 passes as 100 and is stored as 99.99; 99.999 + 0.001 passes and stores an item whose maximum is 0.00
    (no expert can give it a point). Either refuse more than two decimals or store what was checked."""
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
        f"rubric accepted as 100 but stored as {maxima} (total {sum(maxima)})"


# --- 5. a crafted cap id on the result page -----------------------------------------------------------------

def test_a_crafted_cap_id_on_the_result_page_is_a_404_not_a_500(world, client, login):
    """Rule: bad input never gives a 500 (tests/test_bad_input.py: ids past INT_MAX are answered like any unknown
    id; core.listing.as_int bounds them). ``review.views._cap_of`` does ``db.session.get(ResultCap, int(raw))``
    on the posted hidden ``cap_id`` unbounded: past 2**63 SQLite's driver raises OverflowError, past 2**31
    PostgreSQL's INTEGER raises DataError — a 500 instead of the 404 an unknown cap gets."""
    e = factories.accepted(world)
    db.session.commit()
    response = login(world.bz_staff).post(f"/engagements/{e.id}/result",
                                          data={"form": "cap_lift", "cap_id": "99999999999999999999", "reason": "依据有误，撤销该限制"})
    assert response.status_code == 404, response.status_code


# --- 6. the poor-rating window at draw time treats a Beijing date as UTC ------------------------------------

def test_a_poor_rating_inside_the_365_day_window_still_keeps_the_expert_out_of_draws(world):
    """Rule (docs/rules.md, Registry: "Persistent poor ratings take an expert out of every draw …, until the
    window passes them", ``expert.rating_window_days`` 365, source DOMAIN §4). Draws ask
    ``expert_is_drawable(expert)``, which passes ``on=beijing_today()``; ``ratings._poor_in_window`` turns that
    Beijing date into ``datetime.combine(on, max.time())`` and compares it with UTC ``rated_at``, so "now" runs 8
    to 32 hours ahead and a rating made 364 days 23 hours ago has already left the window: the draws seat the
    expert while the expert's record page (``poor_rating_reasons(expert)``, real UTC now) still says excluded."""
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
        "the draw-time check dropped a poor rating still inside the window (Beijing date read as UTC)"
