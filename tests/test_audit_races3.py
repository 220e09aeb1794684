"""Audit: two people clicking at once get one result (third round). Each test replays a race between two requests
(two app contexts, two sessions: request A has read what it checks when request B — its own thread, app context and
session — does the same or the conflicting thing and commits; then A goes on), as tests/test_races_more.py does.
Each test states the rule, its source and the defect it shows; each fails on the current code for that defect."""
from __future__ import annotations

import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import AuditEvent, User
from evalhub.extensions import db
from tests import factories
from tests.test_races import in_context, postgresql_only
from tests.test_races_more import count, done_or_refused, meanwhile, settle


# === registry: the library decides an application once ================================================

def test_an_application_admitted_and_refused_at_once_is_decided_once(app, world):
    """Rule (docs/rules.md, firms; registry.services FIRM_STATUS_ACTIONS, core/steps.py): a firm moves in the library
    only by a step from the states it leaves — 准予入库 and 不予入库 leave only 待审核; from 不予入库 there is no step to
    入库 (DOMAIN §3: "admit, suspend, remove, blacklist, each change with a reason and an audit trail").
    Defect: registry.services.change_firm_status checks the step against the firm it loaded (refuse_unless_from on
    firm.status) and writes the new status without a lock or a compare-and-set. Two reviewers decide one application
    at the same moment — one 不予入库, one 准予入库: both are recorded, the firm is told it was refused and admitted,
    and it ends 已入库 after its refusal (a status step from 不予入库 that the machine has not got)."""
    from evalhub.registry import services as registry
    from evalhub.registry.models import Firm, FirmStatus, FirmStatusChange

    firm = factories.firm(world.bz, status=FirmStatus.PENDING)
    for kind, filename, data in factories.admission_papers():
        registry.attach_firm_document(firm, kind, filename, data, world.bz_staff)
    reviewer = factories.user("race.reviewer", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    db.session.commit()
    firm_id, staff_id, reviewer_id = firm.id, world.bz_staff.id, reviewer.id

    with app.app_context():  # request A (准予入库) has loaded the application, still 待审核 …
        a_firm, a_user = db.session.get(Firm, firm_id), db.session.get(User, staff_id)
        assert a_firm.status == FirmStatus.PENDING
        # … when request B (another reviewer: 不予入库) decides and commits
        in_context(app, lambda: registry.change_firm_status(db.session.get(Firm, firm_id), "reject",
                                                            db.session.get(User, reviewer_id),
                                                            reason="质量控制制度不健全，不予入库"))
        try:
            registry.change_firm_status(a_firm, "admit", a_user, reason="材料齐全，符合入库条件")
            db.session.commit()
        except Conflict:
            db.session.rollback()
        finally:
            db.session.remove()

    decisions = count(FirmStatusChange, FirmStatusChange.firm_id == firm_id,
                      FirmStatusChange.to_status.in_([FirmStatus.ADMITTED, FirmStatus.REJECTED]))
    status = db.session.get(Firm, firm_id).status
    assert (decisions, status) == (1, FirmStatus.REJECTED), (
        f"{decisions} library decisions recorded for one application; the firm, refused, ends “{status.label}”")


def test_an_expert_removed_while_another_officer_reinstates_stays_removed(app, world):
    """Rule (docs/rules.md, accounts: "No new activation or reset link for a removed expert"; registry.services
    EXPERT_STATUS_ACTIONS): 恢复 leaves only 暂停; 移出专家库 is final — no step leads from 已移出 back to 在库.
    Defect: registry.services.change_expert_status checks the step against the expert it loaded and writes the status
    without a lock or a compare-and-set. One officer removes a suspended expert (弄虚作假) while another reinstates
    the same expert (the suspension's period over): both are recorded and the removed expert ends 在库 — drawable
    again for panels and inspections."""
    from evalhub.registry import services as registry
    from evalhub.registry.models import Expert, ExpertStatus

    expert = factories.expert(world.bz, name="竞态专家")
    registry.change_expert_status(expert, "suspend", "暂停三个月", world.bz_admin)
    officer = factories.user("race.officer", Role.BUREAU_ADMIN, bureau_id=world.bz.id)
    db.session.commit()
    expert_id, admin_id, officer_id = expert.id, world.bz_admin.id, officer.id

    with app.app_context():  # request A (恢复) has loaded the expert, 暂停 …
        a_expert, a_user = db.session.get(Expert, expert_id), db.session.get(User, admin_id)
        assert a_expert.status == ExpertStatus.SUSPENDED
        # … when request B removes the expert from the pool and commits
        in_context(app, lambda: registry.change_expert_status(db.session.get(Expert, expert_id), "remove",
                                                              "评审中弄虚作假，移出专家库", db.session.get(User, officer_id)))
        try:
            registry.change_expert_status(a_expert, "reinstate", "暂停期满，恢复", a_user)
            db.session.commit()
        except Conflict:
            db.session.rollback()
        finally:
            db.session.remove()

    db.session.rollback()
    status = db.session.get(Expert, expert_id).status
    steps = count(AuditEvent, AuditEvent.object_type == "expert", AuditEvent.object_id == expert_id,
                  AuditEvent.action.in_(["expert.remove", "expert.reinstate"]))
    assert (status, steps) == (ExpertStatus.REMOVED, 1), (
        f"the expert removed from the pool ends “{status.label}” after {steps} status steps")


# === credit: a recompute of the year does not undo an upheld objection ===============================

@postgresql_only
def test_a_year_recomputed_while_an_objection_is_upheld_keeps_the_correction(app, world, monkeypatch):
    """Rule (docs/rules.md, credit: "upholding it records a correction per record … and recomputes that firm only,
    from the corrected facts; the answer keeps the score before and after"; credit.services._hold_year: "One
    computation or publication of a bureau's year at a time … must not write a firm's rating twice"; DOMAIN §6: the
    bureau answers each objection before the rating becomes final).
    Defect: credit.services.answer recomputes the firm (compute_firm → _rate) without the year's lock that compute,
    publish and finalise take. An officer recomputes the year (重新计算) while another upholds the firm's objection
    that its work plan was posted on time: the year's computation, which read the records before the correction was
    committed, writes its rating over the corrected one — the rating under publicity still counts the plan as late,
    while the objection's answer tells the firm its score went up. (The year is computed again because a penalty was
    entered since the publication: the rating it writes differs from the one it read, so every component is written.)"""
    from datetime import date

    from evalhub.core.models import Bureau
    from evalhub.credit import services as C
    from evalhub.credit.models import CreditObjection, CreditRating
    from tests.test_credit_fairness import MAILED, _late_plan

    C.ensure_national_calendar()
    _, submission = _late_plan(world)
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    C.publish(world.bz, 2025, world.bz_admin, today=date(2025, 9, 25))
    ref = f"submission:{submission.id}"
    objection = C.object_to(rating, world.firm_user, "实施方案于 2025-04-10 邮寄报送，系统显示的是迁移日期。",
                            [("邮寄回执.txt", "EMS 回执 2025-04-10".encode())], component="performance",
                            records=[ref], today=date(2025, 9, 26))
    # since the publication a penalty was entered, which is why the year is computed again
    C.add_external_record(world.bz, world.firm, world.bz_admin, kind="行政处罚", occurred_on=date(2025, 6, 1),
                          description="违反合同约定被处以警告", deduction="3", filename="决定书.txt", data="处罚决定书".encode())
    other = factories.user("race.credit", Role.BUREAU_ADMIN, bureau_id=world.bz.id)
    db.session.commit()
    rating_id, objection_id, bureau_id, admin_id, other_id = rating.id, objection.id, world.bz.id, world.bz_admin.id, other.id

    def uphold():
        C.answer(db.session.get(CreditObjection, objection_id), db.session.get(User, other_id), "异议成立",
                 "经核实邮寄回执，方案按期报送，予以更正。", corrections={ref: MAILED.isoformat()}, today=date(2025, 9, 29))

    # the year's computation (A) has read the year's records when the objection is upheld (B) and committed
    raced = meanwhile(app, monkeypatch, C, "_rate", uphold)
    done_or_refused(app, lambda: C.compute(db.session.get(Bureau, bureau_id), 2025, db.session.get(User, admin_id)))
    settle(raced)

    db.session.rollback()
    answered = db.session.get(CreditObjection, objection_id)
    rating = db.session.get(CreditRating, rating_id)
    performance = next(c for c in rating.components if c["code"] == "performance")["points"]
    assert (answered.decision is not None, performance) == (True, "15.00"), (
        f"the objection was upheld (total {answered.total_before} → {answered.total_after}), yet the rating under "
        f"publicity reads contract performance {performance}, total {rating.total}")


# === review: a cap recorded once ======================================================================

def test_a_cap_recorded_twice_at_once_is_one_cap_and_lifting_it_restores_the_band(app, world, monkeypatch):
    """Rule (docs/rules.md, review: "the recorded grade is the score's band lowered by the caps in force"; "A cap needs
    a reason and evidence"; review.services.add_cap refuses a cap already in force: 已记录“…”; seed 000 caps).
    Defect: review.services.add_cap checks active_caps(result) and inserts the ResultCap without a lock (no
    refuse_twin, no unique key). The form sent twice (a double click on 记录等级限制, or two officers at once) records
    the same cap twice; when the bureau later lifts the cap recorded in error, its twin stays in force and the result
    keeps the lowered grade (优 capped to 中 stays 中) though the cap was lifted. (A cap evidenced by a link; two
    uploads of the same file happen to collide on stored_file.sha256 and the second is refused 409 — by accident.)"""
    from evalhub.procurement.models import Engagement
    from evalhub.review import services as R
    from evalhub.review.models import EvaluationResult, Grade, ResultCap

    e = factories.accepted(world)
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == e.id)).scalar_one()
    band = result.band_grade
    assert band in (Grade.EXCELLENT, Grade.GOOD)
    db.session.commit()
    e_id, result_id, staff_id = e.id, result.id, world.bz_staff.id

    def add():
        R.add_cap(db.session.get(Engagement, e_id), db.session.get(User, staff_id), "audit_problems",
                  "审计报告指出资金拨付滞后", link="/supervision/inspections/1")

    # the first click (A) has found no such cap in force when the second (B) records it and commits
    raced = meanwhile(app, monkeypatch, R, "_cap_reason", add)
    done_or_refused(app, add)
    settle(raced)

    caps = count(ResultCap, ResultCap.result_id == result_id, ResultCap.code == "audit_problems")
    first = db.session.execute(sa.select(ResultCap).where(ResultCap.result_id == result_id)
                               .order_by(ResultCap.id)).scalars().first()
    R.lift_cap(first, db.session.get(User, staff_id), "复核后认定审计指出的问题已在评价前整改完毕")
    db.session.commit()
    grade = db.session.get(EvaluationResult, result_id).grade
    assert (caps, grade) == (1, band), (
        f"one cap recorded {caps} times; after the bureau lifted it the result is still {grade.label} "
        f"(its band {band.label})")


# === review: a review sent back while the panel is decided ============================================

@postgresql_only
def test_a_review_is_not_sent_back_to_its_expert_once_the_panel_has_been_decided_on_it(app, world, monkeypatch):
    """Rule (review.services.reopen_review: "评审结果已产生，不能再退回专家修改"; docs/rules.md, review: a submitted
    review is immutable until the bureau reopens it, and the outcome is computed when the last member submits —
    exactly once, on the submitted reviews; DOMAIN §4: the score is the mean of the experts' totals).
    Defect: review.services.reopen_review checks panel.decided_at and the review's status as it loaded them and sets
    the review back to draft without the panel's row lock that submit_review takes (nor a compare-and-set). The
    bureau sends one expert's review back (退回专家修改) at the moment the last expert submits: the panel is decided on
    that review's total, and the review is a draft again — the expert may now change scores the decided outcome (and
    the letter to the firm) was computed from."""
    from evalhub.core import audit
    from evalhub.review import services as R
    from evalhub.review.models import Review, ReviewPanel, ReviewStatus
    from tests.test_races import _draft, _expert_user
    from tests.test_review_services import _panel, _review

    e, panel = _panel(world)
    first, second, last = panel.invitations[:3]
    _review(first, world, [18] * 5)
    _review(second, world, [18] * 5)
    _draft(last, [18] * 5)
    db.session.commit()
    panel_id, first_review, last_review = panel.id, first.review.id, last.review.id
    staff_id, last_user = world.bz_staff.id, _expert_user(last).id

    def submit_last():
        R.submit_review(db.session.get(Review, last_review), db.session.get(User, last_user))

    # the reopen (A) has found the review submitted and the panel undecided when the last expert (B) submits
    raced = meanwhile(app, monkeypatch, audit, "record", submit_last)
    done_or_refused(app, lambda: R.reopen_review(db.session.get(Review, first_review), db.session.get(User, staff_id),
                                                 "评分理由与分值不一致，请核实后重新提交"))
    settle(raced)

    db.session.rollback()
    decided = db.session.get(ReviewPanel, panel_id).decided_at is not None
    status = db.session.get(Review, first_review).status
    assert (decided, status) in ((True, ReviewStatus.SUBMITTED), (False, ReviewStatus.DRAFT)), (
        f"the panel was decided (decided={decided}) on a review that is now “{status.label}”, open to its expert again")


# === registry: one person on one roster ================================================================

def test_one_person_added_to_the_roster_twice_at_once_is_one_member(app, world, monkeypatch):
    """Rule (registry.services.add_staff: "该人员已在本机构名册/其他机构名册中登记，同一人员不得同时在多家机构执业";
    docs/rules.md: points, avoidance and the same-person collusion check all find a person by the identity number's
    keyed hash on the rosters; DOMAIN §3: staff roster with certificates).
    Defect: add_staff looks for an active member with the same identity-number digest and then inserts, without a
    lock or a unique key on the active digest. The firm's 新增人员 form sent twice (a double click; or two firms
    entering one person at the same moment) puts the same person on the roster twice, both active."""
    from evalhub.core.personal import id_number_digest
    from evalhub.registry import services as registry
    from evalhub.registry.models import Firm, FirmStaff

    number = factories.id_number()
    firm_id, user_id = world.firm.id, world.firm_user.id
    db.session.commit()

    def add():
        registry.add_staff(db.session.get(Firm, firm_id), registry.StaffInput(
            name="周九", id_number=number, role="评价人员", years_experience=6), db.session.get(User, user_id))

    def add_or_refused():
        try:
            add()
        except ValidationFailed:  # waited for the other click, then saw its row: the right answer too
            pass

    # the first click (A) has found nobody with this identity number when the second (B) adds the person and commits
    raced = meanwhile(app, monkeypatch, registry, "_raise_if", add_or_refused)
    try:
        done_or_refused(app, add)
    except ValidationFailed:  # "该人员已在本机构名册中登记": the right answer to the second click
        pass
    settle(raced)

    members = count(FirmStaff, FirmStaff.id_number_digest == id_number_digest(number), FirmStaff.active.is_(True))
    assert members == 1, f"one person is on the roster {members} times, all active"



# === the audit chain's lock against a row lock: a deadlock is a 500 =====================================

@postgresql_only
def test_the_last_review_and_a_spending_record_at_once_never_answer_500(app, world, monkeypatch):
    """Rule (docs/architecture.md, "Where a new rule goes": a conflict between simultaneous requests is answered 409
    with a Chinese message — "never a 500"; core/concurrency.py: "instead of a 500").
    Defect: core.audit.record takes the audit chain's lock (pg_advisory_xact_lock) in the middle of the caller's
    transaction, wherever the caller records its first event, and holds it to the commit. A service that records an
    event and then moves the engagement (submit_review: "review.submitted", then maybe_decide → workflow.perform's
    UPDATE of the engagement) and one that writes the engagement and then records its event (record_spending: the
    UPDATE is flushed by audit.record, then the chain's lock) take the two locks in opposite orders. The last expert
    submits while an officer records the engagement's actual spending: PostgreSQL detects the deadlock and aborts one
    of them with DeadlockDetected, which no handler turns into a 409 — the expert or the officer gets
    “服务器内部错误”."""
    from evalhub.procurement import services as P
    from evalhub.procurement.models import Engagement
    from evalhub.review import services as R
    from evalhub.review.models import Review
    from tests.test_races import _draft, _expert_user
    from tests.test_review_services import _panel, _review

    e, panel = _panel(world)
    first, second, last = panel.invitations[:3]
    _review(first, world, [18] * 5)
    _review(second, world, [18] * 5)
    _draft(last, [18] * 5)
    db.session.commit()
    e_id, last_review, last_user, staff_id = e.id, last.review.id, _expert_user(last).id, world.bz_staff.id
    outcomes: dict[str, BaseException | None] = {}

    def run(name, fn):
        try:
            in_context(app, fn)
            outcomes[name] = None
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion
            outcomes[name] = exc

    def spending():
        P.record_spending(db.session.get(Engagement, e_id), "180", db.session.get(User, staff_id))

    # the last expert's submit (A) has recorded its event (the chain's lock) when the officer's spending (B) writes
    # the engagement; then A's decision moves the engagement
    raced = meanwhile(app, monkeypatch, R, "maybe_decide", lambda: run("spending", spending))
    run("submit", lambda: R.submit_review(db.session.get(Review, last_review), db.session.get(User, last_user)))
    settle(raced)

    failures = {name: f"{type(exc).__name__}: {str(exc).splitlines()[0]}" for name, exc in outcomes.items()
                if exc is not None and not isinstance(exc, Conflict)}
    assert not failures, f"requests failed with errors no handler answers (a 500 to the user): {failures}"


# === procurement: a bid and the opening at the deadline ================================================

@postgresql_only
def test_a_bid_that_commits_after_the_opening_is_not_a_valid_bid(app, world, monkeypatch):
    """Rule (docs/rules.md, procurement: bids are sealed until the opening after the deadline; 政府采购法 and 财政部令第87号
    第三十三条: a bid that arrives after the deadline is refused; at the opening every valid bid is read out and
    compared for collusion, integrity.services._check_at_opening).
    Defect: procurement.services.submit_bid checks the status and the deadline on the procurement it loaded and writes
    the bid without the procurement's row lock (open_bids takes none either). A firm presses 提交投标 a moment before the
    deadline, its technical plan is stored and read while the clerk opens the bids (开标) at the deadline: the bid
    commits after the opening, into a procurement under evaluation, as a valid bid that was never read out at the
    opening nor compared with the others."""
    from datetime import timedelta

    from evalhub.core.timeutil import utcnow
    from evalhub.procurement import services as P
    from evalhub.procurement.models import Bid, BidStatus, Procurement, ProcurementMethod

    e = factories.engagement(world)
    p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(
        method=ProcurementMethod.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
        bid_deadline=factories.bid_deadline(world.bz, 10)), world.bz_staff))
    for name, price in (("甲", "40"), ("乙", "45")):
        _firm, user, staff = factories.bidder(world, f"开标竞态{name}")
        factories.bid(p, user, staff, price)
    _late_firm, late_user, late_staff = factories.bidder(world, "开标竞态丙")
    db.session.commit()
    p_id, late_user_id, late_staff_id, staff_id = p.id, late_user.id, late_staff.id, world.bz_staff.id

    def opening():
        procurement = db.session.get(Procurement, p_id)
        P.open_bids(procurement, db.session.get(User, staff_id), now=procurement.bid_deadline + timedelta(seconds=1))

    def late_bid():
        P.submit_bid(db.session.get(Procurement, p_id), P.BidInput(
            price_wan="42", team_staff_ids=[late_staff_id], lead_staff_id=late_staff_id, technical_filename="方案.docx",
            technical_data=factories.docx_bytes("技术方案 开标竞态丙")), db.session.get(User, late_user_id))

    # the bid (A) has passed the deadline check when the clerk (B) opens the bids at the deadline and commits
    raced = meanwhile(app, monkeypatch, P, "_wan", opening)
    done_or_refused(app, late_bid)
    settle(raced)

    db.session.rollback()
    opened = db.session.execute(sa.select(AuditEvent.payload).where(
        AuditEvent.action == "procurement.bids_opened", AuditEvent.object_id == p_id)).scalar_one()
    valid = count(Bid, Bid.procurement_id == p_id, Bid.status == BidStatus.SUBMITTED)
    assert valid == len(opened["bids"]), (
        f"the opening read out {len(opened['bids'])} bids; {valid} bids are valid in the evaluation "
        f"(procurement {db.session.get(Procurement, p_id).status.label})")


# === results: a confirmed finding stays ===================================================================

def test_a_draft_finding_deleted_while_the_bureau_confirms_it_stays_confirmed(app, world):
    """Rule (results.services._draft: "该条已由财政局确认，不能再修改或删除"; docs/rules.md, results: the rectification
    deadline runs from the confirmation of findings and the units responsible are told; seed 004: "明确整改要求和时限").
    Defect: results.services.delete_finding (and edit_finding alike) checks that the row is still a draft on the
    finding it loaded and deletes it without a compare-and-set; confirm_findings moves the rows with one. The firm
    deletes (or rewords) a draft row at the moment the bureau confirms the list: the confirmed finding the unit was
    just told to rectify is deleted after its confirmation (or its confirmed text changed)."""
    from evalhub.procurement.models import Engagement
    from evalhub.results import services as S
    from evalhub.results.models import FindingStatus, ResultFinding

    e = factories.accepted(world)
    finding = S.add_finding(e, world.firm_user, S.FindingInput(kind="问题", text="资金支付进度滞后，影响项目实施",
                                                               category="过程", indicator="资金到位率"))
    db.session.commit()
    e_id, finding_id, firm_user_id, staff_id = e.id, finding.id, world.firm_user.id, world.bz_staff.id

    with app.app_context():  # request A (the firm's 删除) has loaded the draft row …
        a_finding, a_user = db.session.get(ResultFinding, finding_id), db.session.get(User, firm_user_id)
        assert a_finding.status == FindingStatus.DRAFT
        # … when request B (the bureau's 确认) confirms the list and commits
        in_context(app, lambda: S.confirm_findings(db.session.get(Engagement, e_id), db.session.get(User, staff_id)))
        try:
            S.delete_finding(a_finding, a_user)
            db.session.commit()
        except Conflict:
            db.session.rollback()
        finally:
            db.session.remove()

    db.session.rollback()
    confirmed = count(ResultFinding, ResultFinding.id == finding_id, ResultFinding.status == FindingStatus.CONFIRMED)
    assert confirmed == 1, "the finding the bureau confirmed (and told the unit to rectify) was deleted after its confirmation"


def test_a_transaction_the_database_gave_up_in_a_deadlock_is_a_409_not_a_500(app, client, auth, world, monkeypatch):
    """Rule (core/concurrency.py): a conflict between simultaneous requests answers 409 with a Chinese message,
    never a 500. A deadlock PostgreSQL breaks (SQLSTATE 40P01) or a serialization failure (40001) wrote nothing;
    the person is told to try again — on the web and on the API. Any other database error stays a 500."""
    from sqlalchemy.exc import OperationalError

    from evalhub.registry import views as registry_views

    class Deadlock(Exception):
        sqlstate = "40P01"

    def deadlocked(*args, **kwargs):
        raise OperationalError("UPDATE engagement …", {}, Deadlock("deadlock detected"))

    monkeypatch.setattr(registry_views.services, "change_firm_status", deadlocked)
    login = client.post("/login", data={"username": world.bz_admin.username, "password": factories.PASSWORD})
    assert login.status_code == 302
    response = client.post(f"/firms/{world.firm.id}/status", data={"action": "suspend", "reason": "测试暂停原因"})
    assert response.status_code == 409 and "请稍后重试" in response.get_data(as_text=True)

    class Broken(Exception):
        sqlstate = "08006"  # connection failure: not the user's to retry

    def broken(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Broken("connection lost"))

    monkeypatch.setattr(registry_views.services, "change_firm_status", broken)
    import pytest

    with pytest.raises(OperationalError):
        client.post(f"/firms/{world.firm.id}/status", data={"action": "suspend", "reason": "测试暂停原因"})
