"""The registry audit's fixes, beyond the auditor's failing cases (tests/test_audit_registry.py): a decision's end
date lifted by the job, 重新申请入库 after a refusal, an application's roster checked at admission, a former
employer's view of a person's record, who ends a recusal relation, a committee seat released and refilled."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, Notification
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.registry import people
from evalhub.registry import services as registry
from evalhub.registry.models import FirmStaff, FirmStatus, FirmStatusChange, PointKind, RelationKind
from tests import factories


def _staff(name: str, number: str) -> registry.StaffInput:
    return registry.StaffInput(name=name, id_number=number, role="项目负责人", years_experience=8)


def _events(action: str) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == action)).scalar_one()


# --- end dates ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("action, after", [("suspend", FirmStatus.ADMITTED), ("blacklist", FirmStatus.REMOVED)])
def test_the_job_lifts_a_decision_the_day_after_its_end_date(world, monkeypatch, action, after):
    today = beijing_today()
    monkeypatch.setattr(registry, "beijing_today", lambda: today - timedelta(days=5))
    registry.change_firm_status(world.firm, action, world.bz_admin, reason="年度检查发现问题",
                                effective_until=today - timedelta(days=1))
    monkeypatch.undo()
    open_ended = factories.firm(world.bz, name="无期限黑名单咨询有限公司")
    registry.change_firm_status(open_ended, "blacklist", world.bz_admin, reason="提供虚假材料")
    still = factories.firm(world.bz, name="暂停未满咨询有限公司")
    registry.change_firm_status(still, "suspend", world.bz_admin, reason="整改中", effective_until=today)
    db.session.commit()
    assert registry.status_on(world.firm) == after  # before the job: eligibility already reads it as lifted
    assert registry.lift_lapsed_statuses() == 1
    db.session.commit()
    assert world.firm.status == after and world.firm.status_until is None
    assert open_ended.status == FirmStatus.BLACKLISTED  # no end date: final
    assert still.status == FirmStatus.SUSPENDED  # the end date is the last day it holds
    change = db.session.execute(sa.select(FirmStatusChange).where(FirmStatusChange.firm_id == world.firm.id)
                                .order_by(FirmStatusChange.id.desc())).scalars().first()
    assert change.actor_id is None and change.to_status == after and "已届满" in change.reason
    told = db.session.execute(sa.select(Notification).where(Notification.user_id == world.firm_user.id)
                              .order_by(Notification.id.desc())).scalars().first()
    assert "已届满" in told.body
    assert registry.lift_lapsed_statuses() == 0  # once


def test_an_imposed_suspension_over_a_bureaus_term_is_lifted_back_to_that_term(world):
    """An imposed suspension runs on past the bureau's earlier end date; struck out, it gives the bureau's own
    suspension back with its term (not a readmission: that suspension had another cause)."""
    today = beijing_today()
    until = today + timedelta(days=10)
    registry.change_firm_status(world.firm, "suspend", world.bz_admin, reason="质量控制制度未落实，限期整改",
                                effective_until=until)
    imposed = registry.impose_suspension(world.firm, "检查发现故意违规：伪造评价数据")
    db.session.flush()
    assert imposed is not None and imposed.from_status == FirmStatus.SUSPENDED
    assert world.firm.status_until is None and imposed.effective_until is None
    back = registry.lift_imposed_suspension(world.firm, imposed.id, "异议成立，故意违规不予认定")
    db.session.flush()
    assert back is not None and world.firm.status == FirmStatus.SUSPENDED and world.firm.status_until == until
    assert registry.status_on(world.firm, until + timedelta(days=1)) == FirmStatus.ADMITTED


def test_a_bureau_admin_lifts_a_blacklisting_by_hand(world):
    registry.change_firm_status(world.firm, "blacklist", world.bz_admin, reason="串通投标")
    assert "lift_blacklist" in [a.action for a in registry.available_status_actions(world.firm, world.bz_admin)]
    with pytest.raises(ValidationFailed):
        registry.change_firm_status(world.firm, "lift_blacklist", world.bz_admin, reason="")
    registry.change_firm_status(world.firm, "lift_blacklist", world.bz_admin, reason="行政复议撤销原决定")
    assert world.firm.status == FirmStatus.REMOVED


# --- applying again -------------------------------------------------------------------------------------

def test_a_refused_firm_completes_its_papers_and_applies_again(world, login):
    firm, user = registry.register_firm_application(
        factories.firm_input(name="补正后重新申请咨询有限公司"), world.lt, username="again1", password=factories.PASSWORD,
        display_name="钱七", address="203.0.113.11")
    registry.change_firm_status(firm, "reject", world.lt_admin, reason="缺少培训制度")
    db.session.commit()
    assert [a.action for a in registry.available_status_actions(firm, user)] == ["reapply"]
    with pytest.raises(PermissionDenied):  # another firm may not
        registry.change_firm_status(firm, "reapply", world.firm_user)
    client = login(user)
    assert client.get(f"/firms/{firm.id}/edit").status_code == 200
    response = client.post(f"/firms/{firm.id}/status", data={"action": "reapply", "reason": "已补充培训制度"})
    assert response.status_code == 302
    db.session.expire_all()
    assert firm.status == FirmStatus.PENDING and _events("firm.reapply") == 1
    # back in the queue: the bureau admits it as any application
    registry.change_firm_status(firm, "admit", world.lt_admin, reason="材料齐全", documents=factories.admission_papers())
    assert firm.status == FirmStatus.ADMITTED


def test_the_registration_form_names_no_firm_a_visitor_may_not_see(world):
    with pytest.raises(ValidationFailed) as caught:
        registry.register_firm_application(factories.firm_input(uscc=world.firm.uscc), world.lt, username="probe2",
                                           password="Long-enough-1", display_name="某人", address="203.0.113.12")
    assert caught.value.fields["uscc"] == "该统一社会信用代码已登记，如有疑问请联系所在地财政局"


# --- rosters --------------------------------------------------------------------------------------------

def test_admission_is_refused_while_someone_on_the_roster_practises_for_a_library_firm(world):
    number = factories.id_number()
    applicant, user = registry.register_firm_application(
        factories.firm_input(name="名册冲突咨询有限公司"), world.bz, username="roster1", password="Long-enough-1",
        display_name="某人", address="203.0.113.13")
    registry.add_staff(applicant, _staff("李评价", number), user)  # the applicant is told nothing of others
    registry.add_staff(world.firm, _staff("李评价", number), world.firm_user)  # nor held off the library firm
    db.session.commit()
    with pytest.raises(ValidationFailed) as caught:
        registry.change_firm_status(applicant, "admit", world.bz_admin, reason="材料齐全",
                                    documents=factories.admission_papers())
    assert "李评价" in caught.value.fields["staff"] and world.firm.name not in caught.value.fields["staff"]
    db.session.rollback()
    # and a library firm is still held off another library firm's person
    with pytest.raises(ValidationFailed) as caught:
        registry.add_staff(world.other_firm, _staff("李评价", number), world.other_firm_user)
    assert "其他机构名册" in caught.value.fields["id_number"]


# --- a person's record ------------------------------------------------------------------------------------

def test_the_current_firm_and_the_bureau_read_the_whole_record_a_former_employer_its_own(world, login):
    number = factories.id_number()
    old = registry.add_staff(world.firm, _staff("王评价", number), world.firm_user)
    db.session.flush()
    people.add_points(old, PointKind.REPORT_RETURNED, bureau=world.bz, source_type="letter", source_id=1,
                      note="巴州退回整改的报告", actor=world.bz_admin, reference="652800-2025-001")
    registry.deactivate_staff(old, world.firm_user, "辞职")
    new = registry.add_staff(world.other_firm, _staff("王评价", number), world.other_firm_user)
    db.session.flush()
    people.add_points(new, PointKind.FINDING_SERIOUS, bureau=world.kz, source_type="finding", source_id=7,
                      note="克州检查发现的问题", actor=world.kz_admin, reference="653000-2025-002")
    db.session.commit()
    mine = [p.note for p in people.person_points(old, world.firm_user)]
    assert mine == ["巴州退回整改的报告"]
    assert len(people.person_points(old, world.other_firm_user)) == 2  # the firm they work for now
    assert len(people.person_points(new, world.bz_admin)) == 2
    body = login(world.firm_user).get(f"/people/{old.id}").get_data(as_text=True)
    assert "巴州退回整改的报告" in body and "克州检查发现的问题" not in body and "仅显示其在本机构任职期间的记分" in body


# --- recusal relations --------------------------------------------------------------------------------

def test_a_firm_ends_a_relation_it_declared_from_today_with_a_reason(world):
    unit = world.units["巴州统计局"]
    relation = registry.add_relation(world.firm, kind=RelationKind.TAX_AGENT, bureau_id=None, budget_unit_id=unit.id,
                                     start_date=beijing_today() - timedelta(days=100), end_date=None, note=None,
                                     actor=world.firm_user)
    with pytest.raises(ValidationFailed) as caught:
        registry.end_relation(relation, beijing_today() - timedelta(days=1), world.firm_user, "合同到期")
    assert "不能早于今天" in caught.value.fields["end_date"]
    registry.end_relation(relation, beijing_today(), world.firm_user, "税务代理合同到期")
    assert relation.end_date == beijing_today()
    with pytest.raises(Conflict):
        registry.end_relation(relation, beijing_today(), world.firm_user, "再次结束")


# --- a bid committee's seat ------------------------------------------------------------------------------

def test_a_suspended_members_seat_is_filled_from_the_pool(world):
    from tests.test_audit_registry import _opened
    from evalhub.procurement import services as P

    p = _opened(world, "补抽评委测试机构")
    for i in range(4):
        factories.expert(world.bz, name=f"委员{i}", employer=f"新疆某大学{i}")
    factories.witnessed(P.draw_committee(p, 3, world.bz_staff))
    db.session.flush()
    before = {m.expert_id for m in p.committee}
    member = p.committee[0]
    registry.change_expert_status(member.expert, "suspend", "收受财物", world.bz_admin)
    db.session.flush()
    after = {m.expert_id for m in p.committee}
    assert len(after) == 3 and member.expert_id not in after and len(after - before) == 1
    assert _events("procurement.committee_released") == 1


def test_a_member_whose_login_is_disabled_leaves_the_committee_and_scores_no_more(world):
    from tests.test_audit_registry import _opened
    from evalhub.core.services import set_enabled
    from evalhub.procurement import services as P

    p = _opened(world, "停用账号评委测试机构")
    for i in range(3):
        factories.expert(world.bz, name=f"成员{i}", employer=f"新疆某研究院{i}")
    factories.witnessed(P.draw_committee(p, 3, world.bz_staff))
    db.session.flush()
    member = p.committee[0]
    account = factories.expert_user(member.expert_id)
    db.session.commit()
    set_enabled(account, False, world.sysadmin, "离职")
    db.session.flush()
    assert member.expert_id not in {m.expert_id for m in p.committee} and len(p.committee) == 3  # refilled
    assert _events("procurement.committee_released") == 1
    factories.committee_clears_flags(p, world.bz_staff)
    with pytest.raises(Conflict):
        P.record_technical_scores(p, member, {b.id: {i.id: i.max_points for i in p.rubric} for b in p.bids},
                                  world.bz_staff)


def test_a_committee_left_short_is_made_up_from_the_pool_or_formed_again(world):
    """87号令 第五十条: a committee short after a released seat scores and awards nothing until it is made up (a draw
    derived from its own, once the pool has someone) — the scores already entered stand — or formed again."""
    from tests.test_audit_registry import _opened
    from evalhub.procurement import services as P

    p = _opened(world, "补足评委测试机构")
    for i in range(2):
        factories.expert(world.bz, name=f"补足委员{i}", employer=f"新疆某学院{i}")
    factories.witnessed(P.draw_committee(p, 3, world.bz_staff))
    db.session.flush()
    factories.committee_clears_flags(p, world.bz_staff)
    full = {b.id: {i.id: i.max_points for i in p.rubric} for b in p.bids}
    for member in p.committee:  # scored while whole
        P.record_technical_scores(p, member, full, world.bz_staff)
    registry.change_expert_status(p.committee[0].expert, "suspend", "收受投标人财物", world.bz_admin)
    db.session.flush()
    db.session.refresh(p, ["committee"])
    assert len(p.committee) == 2 and P.committee_shortfall(p) == 1
    with pytest.raises(Conflict) as caught:  # the two left have scored every bid: still no award
        P.award_procurement(p, world.bz_admin, "综合得分第一")
    assert "尚缺 1 人" in caught.value.message
    with pytest.raises(Conflict):  # nobody to draw yet
        P.make_up_committee(p, world.bz_staff)
    factories.expert(world.bz, name="新入库专家", employer="新疆某研究所")
    added = P.make_up_committee(p, world.bz_staff)
    assert [m.name for m in added] == ["新入库专家"] and P.committee_shortfall(p) == 0
    assert _events("procurement.committee_made_up") == 1
    P.record_technical_scores(p, added[0], full, world.bz_staff)
    award = P.award_procurement(p, world.bz_admin, "综合得分第一")
    assert award.firm_id is not None


def test_an_entered_committee_left_short_takes_names_or_is_formed_again(world):
    from tests.test_audit_registry import _opened
    from evalhub.procurement import services as P

    p = _opened(world, "重组评委测试机构")
    P.enter_committee(p, ["甲评委", "乙评委", "丙评委"], world.bz_staff)
    db.session.flush()
    p.committee.remove(p.committee[0])  # as a released seat leaves it (an entered member has no pool record)
    db.session.flush()
    with pytest.raises(ValidationFailed):
        P.make_up_committee(p, world.bz_staff, ["丁评委", "戊评委"])  # one is missing, not two
    with pytest.raises(ValidationFailed):
        P.reform_committee(p, world.bz_staff, "")
    P.reform_committee(p, world.bz_staff, "评委无法及时补足，依法重新组建")
    db.session.flush()
    assert p.committee == [] and p.committee_draw_id is None and _events("procurement.committee_reformed") == 1
    P.enter_committee(p, ["丁评委", "戊评委", "己评委"], world.bz_staff)
    p.committee.remove(p.committee[0])
    db.session.flush()
    assert [m.name for m in P.make_up_committee(p, world.bz_staff, ["庚评委"])] == ["庚评委"]


def _drawable(p) -> int:
    from evalhub.procurement import services as P

    pool, exclusions = P._committee_pool(p)
    return len([e for e in pool if e.id not in exclusions])


def test_a_committee_drawn_at_five_and_left_with_three_is_made_up_to_five(world):
    """87号令 第五十条 "依法补足后继续评标": a released seat is made up to the size the committee was drawn at. A
    5-member consultation panel that loses two members with nobody left to draw keeps 3 — odd and at the floor —
    and used to count as whole: the two left would decide alone what five were drawn to decide."""
    from tests.test_audit_registry import _opened
    from evalhub.procurement import services as P

    p = _opened(world, "五人评委补足机构")
    for i in range(5 - _drawable(p)):
        factories.expert(world.bz, name=f"五人委员{i}", employer=f"新疆某大学{i}")
    assert _drawable(p) == 5  # exactly the committee: nobody left to replace a released seat
    factories.witnessed(P.draw_committee(p, 5, world.bz_staff))
    db.session.flush()
    for member in list(p.committee)[:2]:
        registry.change_expert_status(member.expert, "suspend", "评审期间与投标人私下接触", world.bz_admin)
    db.session.flush()
    db.session.refresh(p, ["committee"])
    assert len(p.committee) == 3 and P.committee_shortfall(p) == 2
    with pytest.raises(Conflict) as caught:
        P.award_procurement(p, world.bz_admin, "综合得分第一")
    assert "应有 5 人，尚缺 2 人" in caught.value.message
    for i in range(2):
        factories.expert(world.bz, name=f"补足五人委员{i}", employer=f"新疆某研究院{i}")
    assert len(P.make_up_committee(p, world.bz_staff)) == 2 and P.committee_shortfall(p) == 0


def test_a_seat_released_while_a_tie_break_waits_withdraws_the_tie_break(world, login):
    """A tie-break is announced on the committee's ranking; a member is then suspended, their seat and scores go and
    a replacement sits. The lot no longer stands on anything — and used to wait for ever: the new member could not
    score while it waited (the ranking frozen), and its reveal was refused because the ranking had changed. Now it
    is withdrawn unrevealed (its secret never shown), the new member scores, and the award announces a new lot."""
    from tests.test_audit_registry import _opened
    from evalhub.core import draws
    from evalhub.core.models import Draw, DrawStatus
    from evalhub.procurement import services as P
    from evalhub.procurement.models import BidStatus

    p = _opened(world, "并列撤销机构")
    p.bids[1].price = p.bids[0].price  # the same price: 甲 and 乙 tie for first at the same scores
    for i in range(4):
        factories.expert(world.bz, name=f"并列委员{i}", employer=f"新疆某学院并列{i}")
    factories.witnessed(P.draw_committee(p, 3, world.bz_staff))
    db.session.flush()
    factories.committee_clears_flags(p, world.bz_staff)
    same = {b.id: {i.id: i.max_points - 10 for i in p.rubric} for b in p.bids if b.status == BidStatus.SUBMITTED}
    for member in p.committee:
        P.record_technical_scores(p, member, same, world.bz_staff)
    lot = P.award_procurement(p, world.bz_admin, "综合得分并列第一")
    assert isinstance(lot, Draw) and lot.status == DrawStatus.ANNOUNCED

    registry.change_expert_status(p.committee[0].expert, "suspend", "与投标人存在利害关系", world.bz_admin)
    db.session.flush()
    db.session.refresh(p, ["committee"])
    assert lot.status == DrawStatus.WITHDRAWN and P.pending_tiebreak(p) is None
    assert "退出评审委员会" in draws.withdrawal_reason(lot) and lot.secret and lot.seed is None
    assert draws.verify(lot).ok
    db.session.commit()
    page = login(world.bz_staff).get(f"/draws/{lot.id}").get_data(as_text=True)
    assert "已撤销（未揭晓）" in page and "退出评审委员会" in page and lot.secret not in page
    with pytest.raises(Conflict):  # never revealed afterwards
        draws.reveal(lot, world.bz_staff, check=False)
    assert len(p.committee) == 3 and P.committee_shortfall(p) == 0
    from evalhub.procurement.models import TechnicalScore

    scored = set(db.session.execute(sa.select(TechnicalScore.member_id)).scalars())
    newcomer = next(m for m in p.committee if m.id not in scored)
    P.record_technical_scores(p, newcomer, same, world.bz_staff)
    award = factories.witnessed(P.award_procurement(p, world.bz_admin, "综合得分并列第一"))
    assert award.firm.name.startswith("并列撤销机构") and "随机抽取" in award.reasons


def test_a_withdrawn_draw_set_back_to_announced_fails_its_check_and_is_not_revealed(world):
    """The audit log holds the withdrawal: a row set back to "announced" (to reveal a lot after all) is caught."""
    from evalhub.core import draws
    from evalhub.core.models import DrawStatus

    record = draws.announce("procurement_tiebreak", "撤销核验", {1: "甲", 2: "乙"}, 1, actor=world.bz_staff,
                            bureau_id=world.bz.id)
    draws.withdraw(record, "测试撤销", world.bz_staff)
    with pytest.raises(Conflict):
        draws.withdraw(record, "再撤销一次", world.bz_staff)
    db.session.flush()
    record.status = DrawStatus.ANNOUNCED
    db.session.flush()
    check = draws.verify(record)
    assert not check.ok and any("已经撤销" in m for m in check.mismatches)
    draws.name_witnesses(record, [world.bz_admin], world.bz_staff, check=False, notify=False)
    draws.enter_number(record, world.bz_admin, 7)
    with pytest.raises(Conflict) as caught:
        draws.reveal(record, world.bz_staff, check=False)
    assert "已经撤销" in caught.value.message
