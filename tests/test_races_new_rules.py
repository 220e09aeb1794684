"""Rules of two requests at once and of every path: two requests at once get one result, and a rule holds on every
path (page, API, CLI), not only the page it was written for. Each test states its rule and sets up the case.

The races are replayed as in tests/test_races_more.py: request A has read what it checks when request B (its own
thread, app context and session) does the same or the conflicting thing and commits; then A goes on. They run on
PostgreSQL only, like the other race tests."""
from __future__ import annotations

import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.models import AuditEvent, Bureau, User
from evalhub.extensions import db
from tests import factories
from tests.test_races import in_context, postgresql_only
from tests.test_races_more import count, done_or_refused, meanwhile, settle


def events(action: str) -> int:
    return count(AuditEvent, AuditEvent.action == action)


# === procurement: the committee decides a low price once ===========================================

@postgresql_only
def test_a_low_bid_decided_twice_at_once_is_decided_once(app, world, monkeypatch):
    """docs/rules.md (low_bid_ratio): the committee decides an abnormally low price "once, during the evaluation"
    (财政部令第87号 第六十条); decide_justification refuses a second decision. Two clerks press at once, one 接受,
    one 不接受: one decision is recorded, the other refused. A (接受) holds the procurement's row lock when B
    starts (the tie-break freeze takes it before the bid is read), so B waits, then finds the bid decided: the bid
    keeps A's 接受."""
    from evalhub.procurement import services as P
    from evalhub.procurement.models import Bid, JustificationDecision
    from tests.test_procurement_law_more import _low_bid_consultation

    p, firms = _low_bid_consultation(world, {"甲": "20", "乙": "45", "丙": "48"})
    low = next(b for b in p.bids if b.firm.name == "甲")
    P.explain_low_bid(low, firms["甲"][1], "本机构在当地已有同类项目团队，差旅成本很低。")
    db.session.commit()
    bid_id, staff_id, admin_id = low.id, world.bz_staff.id, world.bz_admin.id

    def decide(user_id, accepted):
        return lambda: P.decide_justification(db.session.get(Bid, bid_id), db.session.get(User, user_id), accepted,
                                              None if accepted else "成本构成不合理")

    # A (接受) has read the bid, undecided, when B (不接受) decides and commits
    raced = meanwhile(app, monkeypatch, P, "needs_justification", decide(admin_id, False))
    done_or_refused(app, decide(staff_id, True))
    settle(raced)

    decided = events("bid.justification_decided")
    bid = db.session.get(Bid, bid_id)
    assert (decided, bid.justification_decision) == (1, JustificationDecision.ACCEPTED), (
        f"{decided} decisions recorded for one low bid; it ends {bid.justification_decision.label} "
        f"with invalid_reason={bid.invalid_reason!r}")


# === procurement: one committee ====================================================================

@postgresql_only
def test_a_committee_entered_while_the_drawn_one_is_seated_leaves_one_committee(app, world, monkeypatch):
    """A procurement has one evaluation committee: draw_committee and enter_committee refuse "评审委员会已经组建",
    and the reveal's _seat_committee refuses once one sits. One officer reveals the witnessed committee draw while
    another enters the committee drawn on the platform: one of them is refused, and the procurement ends with one
    committee (three members for a committee of three)."""
    from evalhub.core import draws
    from evalhub.core.models import Draw
    from evalhub.procurement import services as P
    from evalhub.procurement.models import CommitteeMember, Procurement
    from tests.test_conflicts_tree import _opened

    p = _opened(world, "委员会竞态")
    for i in range(4):
        factories.expert(world.bz, name=f"竞态评委{i}", employer=f"新疆某学院{i}")
    record = P.draw_committee(p, 3, world.bz_staff)
    draws.name_witnesses(record, [world.region_staff], world.bz_staff, check=False, notify=False)
    draws.enter_number(record, world.region_staff, 7)
    db.session.commit()
    p_id, draw_id, staff_id, admin_id = p.id, record.id, world.bz_staff.id, world.bz_admin.id

    def enter():
        P.enter_committee(db.session.get(Procurement, p_id), ["场外评委甲", "场外评委乙", "场外评委丙"],
                          db.session.get(User, admin_id))

    # the reveal (A) has found no committee seated when B enters the platform's committee
    raced = meanwhile(app, monkeypatch, P, "_committee_pool", enter)
    done_or_refused(app, lambda: draws.reveal(db.session.get(Draw, draw_id), db.session.get(User, staff_id)))
    settle(raced)

    members = count(CommitteeMember, CommitteeMember.procurement_id == p_id)
    assert members == 3, f"the procurement has {members} committee members for a committee of three"


# === supervision: 申报回避 once ======================================================================

@postgresql_only
def test_declaring_a_tie_twice_at_once_records_one_recusal(app, world):
    """申报回避 (docs/rules.md, inspectors): the inspector leaves the case once; the declaration is kept once and the
    bureau told once to draw or name a replacement. A double click on “申报回避”: the second request, which read the
    officer still seated, is refused (the seat is gone) — one staff tie and one recusal event for one declaration."""
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Inspection, StaffTie, Trigger

    officer = factories.user("race.recuser", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    case = V.open_case(world.bz, world.bz_admin, trigger=Trigger.OTHER, detail="竞态线索", firm=world.firm)
    V.name_inspector(case, world.bz_admin, user_id=officer.id)
    db.session.commit()
    case_id, officer_id = case.id, officer.id
    reason = "本人配偶在该机构任项目负责人"

    with app.app_context():  # request A has loaded the case and its inspectors (the officer seated) …
        a_case, a_officer = db.session.get(Inspection, case_id), db.session.get(User, officer_id)
        assert V.inspector_of(a_case, a_officer) is not None
        # … when request B (the first click) declares and commits
        in_context(app, lambda: V.declare_conflict(db.session.get(Inspection, case_id),
                                                   db.session.get(User, officer_id), reason))
        try:
            V.declare_conflict(a_case, a_officer, reason)
            db.session.commit()
        except Exception:  # noqa: BLE001 - a refusal (Conflict, PermissionDenied) is the right answer
            db.session.rollback()
        finally:
            db.session.remove()

    ties = count(StaffTie, StaffTie.user_id == officer_id)
    recusals = count(AuditEvent, AuditEvent.action == "inspection.inspector_recused", AuditEvent.object_id == case_id)
    assert (ties, recusals) == (1, 1), f"{ties} staff ties and {recusals} recusal events for one declaration"


# === supervision: no close over a finding the firm must answer =====================================

@postgresql_only
def test_an_inspection_is_not_closed_over_a_finding_added_meanwhile(app, world, monkeypatch):
    """close refuses while the firm owes its response ("须待机构提交整改回复后再办结"): a serious finding (or one with
    measures) puts the inspection to 待机构回复. Two recorders at once — one closes as clean, the other records a
    serious finding: the close, though it read the inspection open, is refused, and the inspection stays 待机构回复
    for the firm to answer the finding."""
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CHECKLIST, Inspection, InspectionStatus, Severity, Trigger

    officer = factories.user("race.recorder", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    case = V.open_case(world.bz, world.bz_admin, trigger=Trigger.OTHER, detail="竞态线索", firm=world.firm)
    V.name_inspector(case, world.bz_admin, user_id=officer.id)
    V.record_checklist(case, officer, {code: (True, "") for code, _ in CHECKLIST})
    db.session.commit()
    case_id, officer_id, admin_id = case.id, officer.id, world.bz_admin.id

    def finding():
        V.add_finding(db.session.get(Inspection, case_id), db.session.get(User, admin_id), severity=Severity.SERIOUS,
                      description="报告数据照抄被评价单位自评材料，未实地核查")

    # the officer's close (A) has read the inspection open when the manager's finding (B) commits
    raced = meanwhile(app, monkeypatch, V, "recording_refusal", finding)
    done_or_refused(app, lambda: V.close(db.session.get(Inspection, case_id), db.session.get(User, officer_id),
                                         "检查未发现问题，评价工作规范，予以办结。"))
    settle(raced)

    db.session.rollback()
    inspection = db.session.get(Inspection, case_id)
    assert inspection.status == InspectionStatus.AWAITING_RESPONSE, (
        f"the inspection is “{inspection.status.label}” with {len(inspection.findings)} serious finding(s) "
        f"unanswered by the firm (firm_response={inspection.firm_response!r})")


# === results: a filed list is frozen =================================================================

@postgresql_only
def test_a_row_confirmed_while_the_list_is_filed_does_not_change_the_filed_list(app, world, monkeypatch):
    """A county files (备案) its confirmed list "once, and then it is frozen" (results.services.file_list;
    confirm_entry refuses "已备案，不能再修改"). A staff member re-confirms a row (a deeper reduction) while the admin
    files: either the change is refused or it is in what was filed — the frozen list matches its filing."""
    from decimal import Decimal

    from evalhub.results import services as S
    from evalhub.results.models import ApplicationEntry, ApplicationFiling
    from evalhub.review.models import Grade

    low = factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局", score="79.99", grade=Grade.FAIR)
    good = factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局", score="92", grade=Grade.EXCELLENT)
    by = {r.engagement_id: r for r in S.build_list(world.lt, 2025, world.lt_staff)}
    S.confirm_entry(by[low.id], world.lt_staff, measures=["reduce"], cut_percent="20", reason="连续两年为中")
    S.confirm_entry(by[good.id], world.lt_staff, measures=["priority"])
    db.session.commit()
    entry_id, lt_id, staff_id, admin_id = by[low.id].id, world.lt.id, world.lt_staff.id, world.lt_admin.id

    def file():
        S.file_list(db.session.get(Bureau, lt_id), 2025, db.session.get(User, admin_id))

    # the staff member's re-confirmation (A) has found the list not filed when the admin's filing (B) commits
    raced = meanwhile(app, monkeypatch, S, "_money", file)
    done_or_refused(app, lambda: S.confirm_entry(db.session.get(ApplicationEntry, entry_id),
                                                 db.session.get(User, staff_id), measures=["reduce"],
                                                 cut_percent="50", reason="整改不力，加大调减"))
    settle(raced)

    db.session.rollback()
    filing = db.session.execute(sa.select(ApplicationFiling).where(ApplicationFiling.bureau_id == lt_id)).scalar_one()
    entry = db.session.get(ApplicationEntry, entry_id)
    assert Decimal(filing.summary["reduced"]) == entry.cut_amount, (
        f"filed with a reduction of {filing.summary['reduced']} yuan; the frozen list now says {entry.cut_amount} "
        f"(row confirmed at {entry.confirmed_at}, the list filed at {filing.filed_at})")


# === accounts: no new link for a removed expert, on the CLI either ===================================

def test_the_cli_issues_no_link_for_an_expert_removed_from_the_pool(app, world):
    """docs/rules.md: "No new activation or reset link for a removed expert or a rejected, removed or blacklisted firm
    (as for opening an account), on every path (…, the CLI)" — core.accounts.issue_link asks the rule registry
    registers. An expert with an account is removed from the pool (the login stays enabled): ``flask evalhub users
    reset-link zj…`` exits 1 and issues no link."""
    from evalhub.core.models import AccountLink
    from evalhub.registry import services

    expert = factories.expert(world.bz)
    db.session.commit()
    user, _token = services.open_expert_account(expert, world.bz_staff)
    services.change_expert_status(expert, "remove", "弄虚作假，移出专家库", world.bz_admin)
    db.session.commit()
    username, user_id = user.username, user.id
    links = count(AccountLink, AccountLink.user_id == user_id)

    result = app.test_cli_runner().invoke(args=["evalhub", "users", "reset-link", username])

    issued = count(AccountLink, AccountLink.user_id == user_id) - links
    assert (result.exit_code, issued) == (1, 0), (
        f"exit {result.exit_code}, {issued} new link(s) for the removed expert's account: {result.output.strip()}")
