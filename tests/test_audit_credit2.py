"""Audit of today's credit and inspection changes (a watch-list row for a firm that worked for the bureau on
nothing, inspection answers kept as a history). Each test states the rule it holds the code to and fails on the
defect it names."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from evalhub.core.timeutil import beijing_today
from evalhub.credit import services as C
from evalhub.credit.models import CreditRating
from evalhub.extensions import db
from evalhub.procurement import eligibility
from evalhub.procurement.models import EngagementState as S, ProcurementMethod as M
from evalhub.registry.models import FirmStatus
from evalhub.supervision import services as V
from evalhub.supervision.models import Severity, Trigger
from tests import factories


def _intentional(world, firm, description, *, engagement=None):
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.RED_FLAG, detail="报价规律性一致",
                       firm=firm, engagement=engagement)
    finding = V.add_finding(case, factories.recorder(case), severity=Severity.INTENTIONAL, description=description)
    db.session.flush()
    return case, finding


def test_a_firm_on_the_watch_list_for_a_violation_alone_can_contest_the_finding_that_put_it_there(world):
    """rules.md "Credit rating of firms": "a firm found violating intentionally by an inspection of the year gets a
    rating row (not rated, on the watch list) even if it worked for the bureau on nothing" and "An objection names
    the component and the records it contests; upholding it records a correction per record … and recomputes that
    firm only, from the corrected facts" (DOMAIN §6: the draft rating is published for objection). The new row is
    published for objection like any other — but it carries no components, so ``contestable`` offers nothing and
    ``object_to`` refuses the finding ("请选择本评价中的评分项"). The one fact that put the firm on the watch list and
    suspended it cannot be contested: an upheld objection (even with ``recompute``) leaves the watch list as it was.
    Expected: the finding is offered as a record of the supervision component, the objection naming it can be upheld
    and the recomputed row is no longer on the watch list."""
    bidder = factories.firm(world.bz, name="只投标未中标的评价有限公司")
    firm_user = factories.user("bidder1", factories.Role.FIRM_USER, firm_id=bidder.id)
    _case, finding = _intentional(world, bidder, "与他人串通投标")
    year = beijing_today().year
    C.ensure_national_calendar()
    rating = {r.firm_id: r for r in C.compute(world.bz, year, world.bz_admin)}[bidder.id]
    assert rating.watch_list and rating.rated is False  # control: today's row
    C.publish(world.bz, year, world.bz_admin)
    ref = f"finding:{finding.id}"
    offered = [r["ref"] for records in C.contestable(rating).values() for r in records]
    assert ref in offered, f"the finding that put the firm on the watch list cannot be contested: {offered}"
    objection = C.object_to(rating, firm_user, "我公司未参与串通，报价相近系同一询价来源，附询价记录。",
                            [("询价记录.txt", "询价记录".encode())], component="supervision", records=[ref])
    C.answer(objection, world.bz_admin, "异议成立", "经核实报价来源相同，不构成串通投标，该问题不计入。")
    assert rating.watch_list is False


def test_an_intentional_violation_struck_out_on_objection_no_longer_keeps_the_firm_suspended(world):
    """DOMAIN §6 "An intentional violation … puts the firm on a watch list and suspends it"; rules.md "An
    intentional violation suspends the firm whatever its score: a system action … with the rating as its reason"
    and "upholding [an objection] … recomputes that firm only, from the corrected facts". 巴州's inspection finds
    fabricated data (no suspension measure chosen): computing 2025 puts the firm on the watch list and suspends it,
    the suspension's only reason being this rating. The firm objects to the finding and 巴州 upholds it
    ("经核实不计入"): the recompute lifts the watch list, but ``_rate`` never undoes the suspension it imposed
    (``suspension_id`` stays, ``status_until`` is None) — the firm stays suspended from the library indefinitely
    for a violation the bureau itself found must not count. Expected: once the rating that suspended the firm no
    longer finds an intentional violation, its suspension ends (the firm is admitted again)."""
    e = factories.contracted(world)
    e.state = S.ACCEPTED
    db.session.flush()
    _case, finding = _intentional(world, world.firm, "伪造满意度问卷数据", engagement=e)
    assert world.firm.status == FirmStatus.ADMITTED  # control: the finding itself suspended nothing
    C.ensure_national_calendar()
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    assert rating.watch_list and world.firm.status == FirmStatus.SUSPENDED and rating.suspension_id is not None
    C.publish(world.bz, 2025, world.bz_admin, today=date(2025, 11, 3))
    ref = f"finding:{finding.id}"
    assert [r["ref"] for r in C.contestable(rating)["supervision"]] == [ref]
    objection = C.object_to(rating, world.firm_user, "问卷数据系委托方提供，非我公司伪造，附委托方说明。",
                            [("说明.txt", "委托方说明".encode())], component="supervision", records=[ref],
                            today=date(2025, 11, 4))
    C.answer(objection, world.bz_admin, "异议成立", "经核实问卷数据来源于委托方，不属故意违规，不计入。",
             today=date(2025, 11, 5))
    assert rating.watch_list is False  # the recompute lifted the watch list
    assert world.firm.status == FirmStatus.ADMITTED, (
        f"still {world.firm.status.label}: {world.firm.status_reason}")


def test_an_intentional_violation_found_after_the_years_rating_is_final_still_puts_the_firm_on_the_watch_list(world):
    """DOMAIN §6 "An intentional violation (fabricated data, collusion, …) puts the firm on a watch list and
    suspends it, whatever its score"; rules.md: findings count "for the year of the work they name" and "a firm
    found violating intentionally by an inspection of the year gets a rating row (… on the watch list)"; DOMAIN §7
    random inspections draw the year's completed engagements (so they run the next year, after the rating).
    巴州 rated the firm's 2025 work and made it final; in 2026 an inspection of that 2025 engagement finds
    fabricated data. The finding belongs to 2025 (its engagement's year), whose rating is final and never
    recomputed (``_rate`` returns a final rating untouched); the 2026 rating does not cover the firm at all
    (``_subjects`` reads the finding as 2025's). So the violation reaches no rating: no watch list, no suspension,
    and the firm may be selected in 2026 and 2027 alike. Expected: computing the current year puts the firm on the
    watch list (and suspends it), so it is excluded next year."""
    this_year = beijing_today().year
    last = this_year - 1
    e = factories.contracted(world, year=last)
    e.state = S.ACCEPTED
    db.session.flush()
    C.ensure_national_calendar()
    C.compute(world.bz, last, world.bz_admin)
    C.publish(world.bz, last, world.bz_admin, today=date(last, 11, 3))
    C.finalise(world.bz, last, world.bz_admin, today=date(last, 12, 31))
    _intentional(world, world.firm, "伪造入户调查记录", engagement=e)  # found this year, on last year's work
    C.compute(world.bz, this_year, world.bz_admin)
    C.publish(world.bz, this_year, world.bz_admin)  # the watch list counts once published (the draft suspends)
    watched = db.session.execute(sa.select(CreditRating).where(
        CreditRating.firm_id == world.firm.id, CreditRating.watch_list.is_(True))).scalars().all()
    later = factories.engagement(world, year=this_year + 1, unit="巴州民政局")
    reasons = eligibility.exclusion_reasons(world.firm, later, M.OPEN_TENDER)
    assert watched and any("重点关注名单" in r for r in reasons), (
        f"no watch list anywhere; the firm is {world.firm.status.label} and eligible next year: {reasons}")


def test_a_violation_the_final_rating_already_holds_is_not_carried_into_the_next_year(world):
    """The carry-over is for a finding the final rating could not hold (made after it was computed): a finding
    made on last year's work before last year's rating was computed is on that rating's watch list already, and
    this year's rating does not list it again."""
    this_year = beijing_today().year
    last = this_year - 1
    e = factories.contracted(world, year=last)
    e.state = S.ACCEPTED
    db.session.flush()
    _intentional(world, world.firm, "伪造入户调查记录", engagement=e)  # found before last year's rating
    C.ensure_national_calendar()
    held = {r.firm_id: r for r in C.compute(world.bz, last, world.bz_admin)}[world.firm.id]
    assert held.watch_list
    C.publish(world.bz, last, world.bz_admin, today=date(last, 11, 3))
    C.finalise(world.bz, last, world.bz_admin, today=date(last, 12, 31))
    assert world.firm.id not in {r.firm_id for r in C.compute(world.bz, this_year, world.bz_admin)}
