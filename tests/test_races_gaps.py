"""Two people clicking at once get one result: services that still wrote twice when two requests met (found in the
audit of every write service, fix-races). Each test runs two real threads — each its own app context, session and
connection — on PostgreSQL (SQLite serialises writers, so the race cannot happen there), with the harness of
tests/test_races_one_result.py: each thread loads what its page showed, both are released by one Barrier, and
``both_pass`` holds each past the service's own check until the other gets there too. Each test failed on the code
before its fix: both requests passed the check and the result was written twice. A race that is also a plain stale
read (the second request's page loaded before the first committed) is replayed in order, on both databases."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core.draws import Draw, DrawStatus
from evalhub.core.errors import Conflict
from evalhub.core.models import User
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.review import services as R
from evalhub.review.models import InvitationStatus, PanelInvitation
from tests import factories
from tests.test_races import postgresql_only
from tests.test_races_one_result import both_pass, count, events, get, race
from tests.test_review_services import _experts, _report_submitted


def second_refused(outcomes, words: str, refusal: str = "Conflict") -> None:
    """One of the two went through; the other was refused (409, or 422 for a form's field) saying ``words``."""
    assert [o for o, _ in outcomes] == sorted([refusal, "done"]), outcomes
    assert words in next(m for o, m in outcomes if o == refusal), outcomes


def _expert_user_id(invitation: PanelInvitation) -> int:
    return db.session.execute(sa.select(User.id).where(User.expert_id == invitation.expert_id)).scalar_one()


# === review: two seats declined at once, one replacement draw ======================================

@postgresql_only
def test_two_experts_declining_one_panel_at_once_announce_one_replacement_draw(app, world, monkeypatch):
    """One replacement draw per panel at a time, for every open seat (review.services.replace_member): a second
    vacancy while one is announced waits, and the reveal announces the next when short. Defect: ``respond`` (and
    ``respond_offline``, ``withdraw_invitation``, the expiry job, an expert made unavailable) asked
    ``_replacement_waiting`` without a lock: two experts of one panel declining at the same moment each found none
    waiting, and the panel had two replacement draws announced, the bureau told twice to find witnesses."""
    e = _report_submitted(world)
    _experts(world, 7)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    db.session.commit()
    panel_id = panel.id
    seats = [(i.id, _expert_user_id(i)) for i in panel.invitations[:2]]

    def decline(invitation_id: int, user_id: int):
        return lambda: R.respond(get(PanelInvitation, invitation_id), get(User, user_id), accept=False,
                                 reason="时间冲突，无法参加")

    both_pass(monkeypatch, R, "_replacement_waiting")
    outcomes = race(app, lambda: (), *(decline(*seat) for seat in seats))
    assert [o for o, _ in outcomes] == ["done", "done"], outcomes  # both declines stand
    assert count(PanelInvitation, PanelInvitation.panel_id == panel_id,
                 PanelInvitation.status == InvitationStatus.DECLINED) == 2
    waiting = count(Draw, Draw.kind == "review_replacement", Draw.context_id == panel_id,
                    Draw.status == DrawStatus.ANNOUNCED)
    assert waiting == 1, f"{waiting} replacement draws announced for one panel at once"
    assert events("draw.announced") == 1 + 1 + 1  # the plan's panel, the report's panel, one replacement


# === supervision: one lead, one case ===============================================================

@postgresql_only
def test_a_targeted_case_opened_twice_at_once_is_one_case(app, world):
    """A targeted inspection (定向检查) records its lead (DOMAIN §7); the points and the rating count what it finds.
    Defect: supervision.services.open_case inserted the case with no check for its twin: a double click on 立案, the
    form resent, or the API and the page at once opened two cases on one lead — two inspections, two inspectors'
    draws, two sets of findings against the same firm. Now the second is refused (409, naming the first)."""
    from evalhub.core.models import Bureau
    from evalhub.registry.models import Firm
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Inspection, Trigger

    bureau_id, admin_id, firm_id = world.bz.id, world.bz_admin.id, world.firm.id

    outcomes = race(app, lambda: (get(Bureau, bureau_id), get(User, admin_id), get(Firm, firm_id)),
                    lambda b, u, f: V.open_case(b, u, trigger=Trigger.OTHER, detail="群众反映该机构评价报告套用模板", firm=f))
    second_refused(outcomes, "已就同一线索立案")
    assert count(Inspection, Inspection.firm_id == firm_id) == 1
    assert events("inspection.opened") == 1


# === review: a cap lifted once =====================================================================

@postgresql_only
def test_a_cap_lifted_twice_at_once_is_lifted_once(app, world):
    """A cap recorded in error is lifted once, with its reason, and the row stays as history (review.services.lift_cap:
    "该等级限制已撤销"). Defect: lift_cap checked ``cap.lifted_at`` as the page loaded it, without the lock add_cap takes
    (``result.caps:<id>``): a double click on 撤销 lifted it twice — two audit events, the result recorded twice,
    the reason and the officer of the first overwritten by the second."""
    from evalhub.review.models import EvaluationResult, ResultCap

    e = factories.accepted(world)
    cap = R.add_cap(e, world.bz_staff, "audit_problems", "审计报告指出资金拨付滞后", link="/supervision/inspections/1")
    db.session.commit()
    cap_id, staff_id, result_id = cap.id, world.bz_staff.id, cap.result_id
    recorded = events("result.recorded")

    outcomes = race(app, lambda: (get(ResultCap, cap_id), get(User, staff_id)),
                    lambda c, u: R.lift_cap(c, u, "复核后认定审计指出的问题已在评价前整改完毕"))
    second_refused(outcomes, "已撤销")
    assert events("result.cap_lifted") == 1
    assert events("result.recorded") == recorded + 1
    assert get(EvaluationResult, result_id).caps == []


# === procurement: a low price explained, then decided ==============================================

def _explained_low_bid(world):
    from tests.test_procurement_law_more import _low_bid_consultation

    p, firms = _low_bid_consultation(world, {"甲": "20", "乙": "45", "丙": "48"})
    low = next(b for b in p.bids if b.firm.name == "甲")
    P.explain_low_bid(low, firms["甲"][1], "本机构在当地已有同类项目团队，差旅成本很低。")
    db.session.commit()
    return low, firms["甲"][1]


def test_a_low_price_explanation_is_not_rewritten_after_the_committee_decided_on_it(world):
    """财政部令第87号 第六十条: the committee decides once, during the evaluation, on the supplier's written
    justification (decide_justification). Defect: explain_low_bid checked only that the bid still needs one and that
    the evaluation is open, not that it was decided, and wrote without the procurement's lock: the firm, on the page
    it loaded before the decision (or a moment after), replaced the text the committee had accepted — the record then
    shows a decision on words the committee never read."""
    from evalhub.procurement.models import JustificationDecision

    low, firm_user = _explained_low_bid(world)
    P.decide_justification(low, world.bz_staff, True)
    db.session.commit()
    with pytest.raises(Conflict, match="已认定"):
        P.explain_low_bid(low, firm_user, "另行补充：本机构承诺按报价完成全部工作内容。")
    db.session.rollback()
    assert low.low_price_explanation == "本机构在当地已有同类项目团队，差旅成本很低。"
    assert low.justification_decision == JustificationDecision.ACCEPTED


@postgresql_only
def test_a_low_price_explanation_sent_twice_at_once_is_recorded_once(app, world):
    """The same explanation sent twice (a double click, the form resent) is one explanation: the second finds it
    recorded (one audit event), under the procurement's lock the committee's decision takes too."""
    from evalhub.procurement.models import Bid

    low, firm_user = _explained_low_bid(world)
    bid_id, user_id = low.id, firm_user.id
    explained = events("bid.low_price_explained")

    outcomes = race(app, lambda: (get(Bid, bid_id), get(User, user_id)),
                    lambda b, u: P.explain_low_bid(b, u, "报价构成：人工 12 万元，差旅 2 万元，其他 6 万元。"))
    assert [o for o, _ in outcomes] == ["done", "done"], outcomes
    assert events("bid.low_price_explained") == explained + 1


# === procurement: one framework agreement ==========================================================

@postgresql_only
def test_a_framework_agreement_registered_twice_at_once_is_one_agreement(app, world):
    """A framework agreement's shortlist serves its firms in turn (顺序轮候, ``_award_by_rotation``): two copies of one
    agreement keep two turns, and the firms are served twice over. Defect: procurement.services.create_framework_agreement
    inserted without looking for the agreement it was about to write again: a double click on 登记 (or the form
    resent) registered it twice. Now the second is refused (409)."""
    from datetime import date

    from evalhub.core.models import Bureau
    from evalhub.procurement.models import FrameworkAgreement

    firms = [factories.firm(world.bz, name=f"入围机构{i}") for i in range(3)]
    db.session.commit()
    bureau_id, admin_id, firm_ids = world.bz.id, world.bz_admin.id, [f.id for f in firms]

    outcomes = race(app, lambda: (get(Bureau, bureau_id), get(User, admin_id)),
                    lambda b, u: P.create_framework_agreement(b, u, name="2025 年绩效评价服务框架协议",
                                                              valid_from=date(2025, 1, 1), valid_until=date(2025, 12, 31),
                                                              firm_ids=firm_ids))
    second_refused(outcomes, "已登记")
    assert count(FrameworkAgreement, FrameworkAgreement.bureau_id == bureau_id) == 1
    assert events("framework.created") == 1


# === accounts: an account disabled, a role changed, once ===========================================

@postgresql_only
def test_an_account_disabled_twice_at_once_is_disabled_once(app, world):
    """停用 an account: every session ends and every API token is revoked, audited once with its reason
    (core.services.set_enabled: "该账户已经停用"). Defect: set_enabled checked ``user.is_enabled`` as the page loaded
    it, without a lock: a double click (or two administrators) disabled the account twice — two audit events, the
    authority and reason of the first overwritten by the second."""
    from evalhub.core import services as core

    target = factories.user("race.disabled", world.bz_staff.role, bureau_id=world.bz.id)
    db.session.commit()
    target_id, admin_id = target.id, world.bz_admin.id

    outcomes = race(app, lambda: (get(User, target_id), get(User, admin_id)),
                    lambda t, u: core.set_enabled(t, False, u, "调离本单位"))
    second_refused(outcomes, "已经停用")
    assert events("user.disabled") == 1


@postgresql_only
def test_a_role_changed_twice_at_once_is_changed_once(app, world):
    """Staff ↔ administrator with a reason, audited once (core.accounts.change_role: "该账户已经是…"). Defect: the
    check read ``target.role`` as the page loaded it, without a lock: a double click promoted the account twice — two
    "role changed" events, from 工作人员 to 管理员 both times."""
    from evalhub.core import accounts
    from evalhub.core.enums import Role

    target = factories.user("race.promoted", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    db.session.commit()
    target_id, admin_id = target.id, world.region_admin.id  # an administrator is made by the bureau above

    outcomes = race(app, lambda: (get(User, target_id), get(User, admin_id)),
                    lambda t, u: accounts.change_role(t, Role.BUREAU_ADMIN, u, "接任科长"))
    second_refused(outcomes, "已经是", "ValidationFailed")
    assert events("user.role_changed") == 1


# === screening: one active model ===================================================================

@postgresql_only
def test_two_models_promoted_at_once_leave_one_active_model(app, world, monkeypatch):
    """The screening model in use is one (screening.services.active_model_row: "the active model"; a promotion retires
    the one before it). Defect: promote read the active model and the candidate's status without a lock: two
    administrators promoting two candidates at the same moment each retired the model before (none, or the same one)
    and each made its own active — two active models, the reports scored by whichever was read first. Now the second
    promotion waits, finds the first's model active and retires it."""
    from evalhub.screening import services as S
    from evalhub.screening.models import ModelStatus, ScreeningModel
    from tests.test_screening_services import _synthetic_frame

    monkeypatch.setattr(S, "labelled_frame", lambda: _synthetic_frame())
    first, second = S.train_model(world.region_admin), S.train_model(world.region_admin)
    db.session.commit()
    ids, admin_id = (first.id, second.id), world.region_admin.id

    def promote(model_id: int):
        return lambda: S.promote(get(ScreeningModel, model_id), get(User, admin_id))

    both_pass(monkeypatch, S, "active_model_row")
    outcomes = race(app, lambda: (), *(promote(i) for i in ids))
    assert [o for o, _ in outcomes] == ["done", "done"], outcomes
    active = count(ScreeningModel, ScreeningModel.status == ModelStatus.ACTIVE)
    assert active == 1, f"{active} screening models active at once"
    assert count(ScreeningModel, ScreeningModel.status == ModelStatus.RETIRED) == 1


# === procurement: a plan approved while an item is added ===========================================

@postgresql_only
def test_an_item_added_while_the_plan_is_approved_is_refused_or_becomes_an_engagement(app, world, monkeypatch):
    """Approving the plan turns every evaluation object into an engagement (procurement.services.approve_plan); after
    it the items are fixed ("年度计划已批准，不能再修改评价对象"). Defect: add_plan_item and update_plan_item hold the
    plan (concurrency.hold), approve_plan and delete_plan_item did not: an officer adding an item while the admin
    approved saw the plan still a draft, and the item was written into the approved plan after approve_plan had read
    the items — an evaluation object in the approved plan with no engagement, never procured. Now the approval holds
    the plan too: the item is refused, or it came first and became an engagement."""
    import time

    from evalhub.procurement.models import Engagement, EvaluationPlan, PlanItem
    from tests.test_procurement_services import _item

    plan = P.get_or_create_plan(world.bz, 2025, world.bz_staff)
    P.add_plan_item(plan, _item(world), world.bz_staff)
    db.session.commit()
    plan_id, admin_id, staff_id = plan.id, world.bz_admin.id, world.bz_staff.id
    second = _item(world, name="巴州统计局统计执法专项经费")

    real_checks = P.plan_checks
    monkeypatch.setattr(P, "plan_checks", lambda p: (real_checks(p), time.sleep(0.5))[0])  # approving takes a while

    def approve():
        P.approve_plan(get(EvaluationPlan, plan_id), get(User, admin_id), warnings_reason="本年度集中评价重点项目，其余列入明年计划。")

    def add():
        time.sleep(0.2)  # the approval has read the items
        P.add_plan_item(get(EvaluationPlan, plan_id), second, get(User, staff_id))

    outcomes = race(app, lambda: (), approve, add)
    items = count(PlanItem, PlanItem.plan_id == plan_id)
    engagements = count(Engagement, Engagement.plan_item_id.in_(sa.select(PlanItem.id).where(PlanItem.plan_id == plan_id)))
    assert items == engagements, f"{outcomes}: the approved plan has {items} items and {engagements} engagements"
    assert [o for o, _ in outcomes] in (["Conflict", "done"], ["done", "done"]), outcomes
    assert outcomes[0][0] == "done" or "已批准" in outcomes[0][1]
