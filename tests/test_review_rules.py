"""Issue 13, review rules that must hold: the pass decision on the unrounded score, the grade after caps,
caps with evidence frozen at publication, invitation withdrawal and replacement from the recorded pool,
avoidance up and down the budget-unit tree, releasing an unavailable expert's seats, and the pages
(running total, pending tasks first, the firm's submissions and letters)."""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, BudgetUnit, Draw, Notification, User
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState as S
from evalhub.registry.models import Expert
from evalhub.registry.services import add_expert_tie, change_expert_status
from evalhub.review import services as R
from evalhub.review import views as V
from evalhub.review.models import (
    EvaluationResult, Grade, IndicatorCategory, InvitationStatus, PanelInvitation, PanelStatus, ReportIndicator,
    ResultCap,
    ReviewStatus,
)
from tests import factories
from tests.factories import docx_bytes as _docx

D = Decimal


# --- helpers -----------------------------------------------------------------------------------------

def _user(expert_id: int) -> User:
    return factories.expert_user(expert_id)


def _fresh_pool(e, n: int, *, logins: bool = True) -> list[Expert]:
    """Exactly n drawable experts for ``e``: everyone else in the library sits out (unavailable)."""
    for x in db.session.execute(sa.select(Expert)).scalars():
        x.available = False
    out = []
    for i in range(n):
        x = factories.expert(e.bureau, name=f"规则专家{x_id()}", employer=f"新疆某学院{x_id()}", fields=[e.field])
        if logins:
            _user(x.id)
        out.append(x)
    db.session.flush()
    return out


_counter = iter(range(1, 10_000))


def x_id() -> int:
    return next(_counter)


def _report_panel(world, *, pool: int = 4, size: int = 3, offline: bool = False):
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    experts = _fresh_pool(e, pool)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=size, offline=offline))
    return e, panel, experts


def _accept(invitation):
    R.respond(invitation, _user(invitation.expert_id), accept=True, declaration_signed=True)


def _score(invitation, points, opinion="总体较好", comment=None):
    user = _user(invitation.expert_id)
    items = invitation.review.rubric.items
    R.save_review(invitation.review, user, scores={i.id: p for i, p in zip(items, points)},
                  comments={i.id: comment or f"关于{i.name}的意见" for i in items}, opinion=opinion)
    return R.submit_review(invitation.review, user)


def _events(action: str) -> list[AuditEvent]:
    return db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == action)).scalars().all()


def _notes(user: User) -> list[Notification]:
    return db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)).scalars().all()


def _accepted(world):
    e = factories.accepted(world)
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == e.id)).scalar_one()
    return e, result


# --- 1. the pass decision compares the unrounded score -------------------------------------------------

def test_pass_decision_uses_the_unrounded_mean():
    exact = R.exact_panel_score([D("90"), D("90"), D("89.99")], 5)
    assert exact < D("90") and R.panel_score([D("90"), D("90"), D("89.99")], 5) == D("90.00")
    assert not R.passes(exact, D("90"))


@pytest.mark.parametrize("score, passed", [("89.995", False), ("89.9999", False), ("90", True), ("90.00", True),
                                           ("90.001", True)])
def test_pass_mark_boundary(score, passed):
    assert R.passes(D(score), D("90")) is passed


def test_a_panel_of_90_90_89_99_fails_although_it_shows_90(world):
    e, panel, _ = _report_panel(world)
    for invitation in panel.invitations:
        _accept(invitation)
    a, b, c = panel.invitations
    _score(a, [18] * 5)
    _score(b, [18] * 5)
    _score(c, [18, 18, 18, 18, D("17.99")])
    assert panel.score == D("90.00") and panel.passed is False
    assert e.state == S.REPORT_IN_REVIEW and panel.status == PanelStatus.DECIDED
    assert "89.9967" in panel.letter and "低于 90 分的通过线" in panel.letter
    assert R._panel_passed(e, R.SubmissionKind.REPORT) is not None  # accept_report stays refused


# --- 2. the grade after caps ----------------------------------------------------------------------------

def _rows():
    return [ReportIndicator(position=i, category=c, name=n, weight=D(w), score=D(s)) for i, (c, n, w, s) in enumerate([
        (IndicatorCategory.DECISION, "a", "10", "9"), (IndicatorCategory.PROCESS, "b", "20", "18"),
        (IndicatorCategory.OUTPUT, "c", "35", "33"), (IndicatorCategory.BENEFIT, "d", "35", "32")], 1)]


@pytest.mark.parametrize("total, grade, ok", [
    ("92", Grade.EXCELLENT, True), ("92", Grade.FAIR, True),      # the audit / monitoring cap
    ("92", Grade.POOR, True),                                    # major problems / authenticity
    ("92", Grade.GOOD, False),                                   # no cap gives 良
    ("85", Grade.FAIR, True), ("85", Grade.EXCELLENT, False),    # a cap never raises
    ("70", Grade.POOR, True), ("70", Grade.GOOD, False), ("50", Grade.FAIR, False),
])
def test_a_concluded_grade_lowered_by_a_cap_is_consistent(app_ctx, total, grade, ok):
    rows = _rows()
    checks = {c["code"]: c for c in R.machine_checks("", rows, D(total), grade)}
    assert checks["grade_matches_band"]["ok"] is ok, checks["grade_matches_band"]
    if ok and grade != R.grade_for(D(total)):
        assert "等级限制" in checks["grade_matches_band"]["detail"]


def test_a_report_concluding_92_fair_under_the_audit_cap_is_consistent_and_recorded(client, login, world):
    e = factories.in_fieldwork(world)
    report = factories.submit_report(e, total="92", grade="中")
    assert {c["code"]: c["ok"] for c in report.machine_checks}["grade_matches_band"]
    factories.review_panel(factories.own_panel(e), "0.95")
    assert e.state == S.ACCEPTED
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == e.id)).scalar_one()
    assert result.grade == Grade.EXCELLENT  # no cap recorded yet: the band
    db.session.commit()
    login(world.bz_staff)
    url = f"/engagements/{e.id}/result"
    assert 'data-testid="grade-differs"' in client.get(url).get_data(as_text=True)
    R.add_cap(e, world.bz_staff, "audit_problems", "审计报告指出资金拨付滞后", link="/supervision/inspections/1")
    db.session.commit()
    assert result.grade == Grade.FAIR == report.concluded_grade
    assert 'data-testid="grade-differs"' not in client.get(url).get_data(as_text=True)


@pytest.mark.parametrize("code, grade", [("audit_problems", Grade.FAIR), ("major_fund_problems", Grade.POOR),
                                         ("failed_monitoring_twice", Grade.FAIR), ("failed_authenticity", Grade.POOR)])
def test_each_cap_lowers_the_band_and_keeps_its_evidence(world, code, grade):
    e, result = _accepted(world)
    assert result.band_grade == Grade.EXCELLENT and result.grade == Grade.EXCELLENT
    cap = R.add_cap(e, world.bz_staff, code, "审计报告指出的问题", filename="审计报告.docx",
                    data=_docx("审计报告：资金拨付滞后"))
    assert cap.evidence_file is not None and cap.reason == "审计报告指出的问题" and not cap.after_publication
    assert result.band_grade == Grade.EXCELLENT and result.grade == grade and result.caps == [code]
    assert [ev.payload["code"] for ev in _events("result.cap_added")] == [code]


def test_caps_combine_and_lifting_one_restores_the_next(world):
    e, result = _accepted(world)
    R.add_cap(e, world.bz_staff, "audit_problems", "审计发现问题", link="/supervision/inspections/3")
    major = R.add_cap(e, world.bz_staff, "major_fund_problems", "资金挪用", link="/supervision/inspections/4")
    assert result.grade == Grade.POOR
    R.lift_cap(major, world.bz_staff, "复核后认定不属于重大问题")
    assert result.grade == Grade.FAIR and result.caps == ["audit_problems"]
    assert major.lifted_at is not None and len(result.cap_records) == 2  # history kept
    with pytest.raises(Conflict):
        R.lift_cap(major, world.bz_staff, "再撤一次")


@pytest.mark.parametrize("kwargs, field", [
    (dict(code="audit_problems", reason="有问题"), "evidence"),
    (dict(code="audit_problems", reason="", link="/x"), "reason"),
    (dict(code="no_such_cap", reason="有问题", link="/x"), "code"),
    (dict(code="audit_problems", reason="有问题", link="javascript:alert(1)"), "link"),
    (dict(code="audit_problems", reason="有问题", link="//evil.example/x"), "link"),
])
def test_a_cap_needs_evidence_a_reason_and_a_known_code(world, kwargs, field):
    e, result = _accepted(world)
    code, reason = kwargs.pop("code"), kwargs.pop("reason")
    with pytest.raises(ValidationFailed) as caught:
        R.add_cap(e, world.bz_staff, code, reason, **kwargs)
    assert field in caught.value.fields
    assert db.session.execute(sa.select(sa.func.count(ResultCap.id))).scalar_one() == 0
    assert result.grade == Grade.EXCELLENT


def test_the_same_cap_twice_is_refused_and_others_may_not_add(world):
    e, _ = _accepted(world)
    R.add_cap(e, world.bz_staff, "audit_problems", "审计发现问题", link="/x")
    with pytest.raises(ValidationFailed):
        R.add_cap(e, world.bz_staff, "audit_problems", "再记一次", link="/y")
    for outsider in (world.kz_admin, world.firm_user, world.expert_user):
        with pytest.raises(PermissionDenied):
            R.add_cap(e, outsider, "major_fund_problems", "越权", link="/x")


def test_caps_are_frozen_at_publication_and_an_admin_changes_them_with_a_reason(world):
    e, result = _accepted(world)
    cap = R.add_cap(e, world.bz_staff, "audit_problems", "审计发现问题", link="/x")
    R.publish(e, world.bz_staff, filename="脱密版.docx", data=_docx("脱密后的报告全文"))
    assert R.caps_frozen(e)
    with pytest.raises(PermissionDenied):
        R.add_cap(e, world.bz_staff, "major_fund_problems", "公开后发现", link="/y")
    with pytest.raises(PermissionDenied):
        R.lift_cap(cap, world.bz_staff, "公开后撤销")
    with pytest.raises(ValidationFailed):
        R.lift_cap(cap, world.bz_admin, "  ")
    R.lift_cap(cap, world.bz_admin, "审计整改已认定，经局务会研究撤销")
    assert cap.lifted_after_publication and result.grade == Grade.EXCELLENT
    late = R.add_cap(e, world.bz_admin, "failed_authenticity", "真实性核查不通过", link="/supervision/inspections/9")
    assert late.after_publication and result.grade == Grade.POOR
    assert _events("result.cap_lifted_after_publication") and _events("result.cap_added_after_publication")


# --- 4. invitations: withdrawal and replacement from the recorded pool ----------------------------------

def test_a_withdrawn_invitation_is_replaced_from_the_same_recorded_pool(world):
    e, panel, experts = _report_panel(world, pool=4)
    first = panel.draw
    newcomer = factories.expert(e.bureau, name="抽取后入库专家", employer="新疆某新单位", fields=[e.field])
    _user(newcomer.id)
    target = panel.invitations[0]
    target_user = _user(target.expert_id)
    replacement = factories.witnessed(R.withdraw_invitation(target, world.bz_staff, "专家电话确认出差，无法参加"))[0]
    assert target.status == InvitationStatus.WITHDRAWN and target.withdrawn_by_id == world.bz_staff.id
    assert target.withdrawn_reason == "专家电话确认出差，无法参加"
    spare = next(x for x in experts if x.id not in {i.expert_id for i in panel.invitations[:3]})
    assert replacement.expert_id == spare.id and replacement.status == InvitationStatus.INVITED
    redraw = db.session.get(Draw, replacement.draw_id)
    assert redraw.redraw_of_id == first.id and "撤回邀请" in redraw.redraw_reason
    assert redraw.candidate_ids == first.candidate_ids and newcomer.id not in redraw.candidate_ids
    carried = {x["id"]: x["reasons"] for x in redraw.exclusions}
    for excluded in first.exclusions:  # the first draw's exclusions, with their reasons, still apply
        assert set(excluded["reasons"]) <= set(carried[excluded["id"]])
    assert all(i.expert_id in carried for i in panel.invitations[:3])  # everyone already drawn
    assert any("评审邀请已撤回" in n.title for n in _notes(target_user))
    assert _events("panel.invitation_withdrawn")
    # The pool is used up: the next withdrawal is refused as a whole.
    with pytest.raises(Conflict):
        factories.witnessed(R.withdraw_invitation(replacement, world.bz_staff, "也联系不上"))


def test_only_a_pending_invitation_is_withdrawn_with_a_reason_by_its_bureau(world):
    e, panel, _ = _report_panel(world, pool=5)
    invitation = panel.invitations[0]
    with pytest.raises(ValidationFailed):
        factories.witnessed(R.withdraw_invitation(invitation, world.bz_staff, "   "))
    for outsider in (world.kz_admin, world.firm_user, _user(panel.invitations[1].expert_id)):
        with pytest.raises(PermissionDenied):
            factories.witnessed(R.withdraw_invitation(invitation, outsider, "越权撤回"))
    _accept(invitation)
    with pytest.raises(Conflict):
        factories.witnessed(R.withdraw_invitation(invitation, world.bz_staff, "已接受的不能撤回"))


def _panel_beside_an_expert_without_login(world, *, offline: bool):
    """A report panel of 3 drawn from 3 experts with logins and one without."""
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    _fresh_pool(e, 3)
    no_login = factories.expert(e.bureau, name="无账号专家", employer="新疆某无账号单位", fields=[e.field])
    db.session.flush()
    return factories.witnessed(R.form_panel(e, world.bz_staff, size=3, offline=offline)), no_login


def test_a_replacement_never_draws_an_expert_without_a_login_unless_offline(world):
    panel, no_login = _panel_beside_an_expert_without_login(world, offline=False)
    # In the recorded pool, excluded for having no login; the online replacement finds nobody else.
    assert any(x["id"] == no_login.id and R.NO_LOGIN in x["reasons"] for x in panel.draw.exclusions)
    with pytest.raises(Conflict) as caught:
        factories.witnessed(R.withdraw_invitation(panel.invitations[0], world.bz_staff, "联系不上"))
    assert "候选不足" in caught.value.message


def test_an_offline_panel_may_draw_an_expert_without_a_login(world):
    panel, spare = _panel_beside_an_expert_without_login(world, offline=True)
    target = next(i for i in panel.invitations if i.expert_id != spare.id)
    factories.witnessed(R.withdraw_invitation(target, world.bz_staff, "联系不上"))
    assert spare.id in {i.expert_id for i in panel.invitations}


def _child_unit(parent: BudgetUnit, name: str) -> BudgetUnit:
    unit = BudgetUnit(bureau_id=parent.bureau_id, name=name, parent_id=parent.id)
    db.session.add(unit)
    db.session.flush()
    return unit


def test_avoidance_follows_the_budget_unit_tree_down_and_up(world):
    e = factories.contracted(world)  # evaluated unit: 巴州统计局
    parent = db.session.get(BudgetUnit, e.budget_unit_id)
    child = _child_unit(parent, "巴州统计局普查中心")
    top = BudgetUnit(bureau_id=parent.bureau_id, name="巴州统计主管部门")
    db.session.add(top)
    db.session.flush()
    parent.parent_id = top.id
    by_tie = factories.expert(world.bz, name="下属单位专家", employer="新疆某大学甲")
    add_expert_tie(by_tie, kind="任职", counterpart_type="预算单位", counterpart_name=None, firm_id=None, bureau_id=None,
                   budget_unit_id=child.id, start_date=date(2022, 1, 1), end_date=None, note=None, actor=world.bz_staff)
    by_employer = factories.expert(world.bz, name="普查中心专家", employer="巴州统计局普查中心")
    above = factories.expert(world.bz, name="主管部门专家", employer="巴州统计主管部门")
    unrelated = factories.expert(world.bz, name="无关专家", employer="新疆某大学乙")
    db.session.flush()
    out = R.panel_exclusions(e, [by_tie, by_employer, above, unrelated], offline=True)
    assert any("普查中心" in r for r in out[by_tie.id])
    assert any("普查中心" in r for r in out[by_employer.id])
    assert any("主管部门" in r for r in out[above.id])
    assert not any("关系" in r for r in out.get(unrelated.id, []))


# --- releasing an unavailable expert's seats --------------------------------------------------------------

@pytest.mark.parametrize("action", ["suspend", "remove"])
def test_suspending_or_removing_an_expert_releases_their_seats(world, action):
    e, panel, experts = _report_panel(world, pool=5)
    invited, accepted = panel.invitations[0], panel.invitations[1]
    _accept(accepted)
    for invitation in (invited, accepted):
        change = db.session.get(Expert, invitation.expert_id)
        change_expert_status(change, action, "违反评审纪律", world.bz_admin)
    assert invited.status == accepted.status == InvitationStatus.WITHDRAWN
    assert "违反评审纪律" in invited.withdrawn_reason
    factories.witness_pending()  # one replacement draw for both open seats, witnessed in turn
    seated = [i for i in panel.invitations if i.status in R.PENDING]
    assert len(seated) == 3 and not {invited.expert_id, accepted.expert_id} & {i.expert_id for i in seated}


def test_disabling_an_experts_login_releases_their_seat(world):
    e, panel, _ = _report_panel(world, pool=4)
    invitation = panel.invitations[0]
    user = _user(invitation.expert_id)
    user.is_enabled = False
    db.session.flush()
    assert invitation.status == InvitationStatus.WITHDRAWN
    factories.witness_pending()
    assert len([i for i in panel.invitations if i.status in R.PENDING]) == 3


def test_a_suspension_goes_through_when_nobody_is_left_to_draw(world):
    e, panel, _ = _report_panel(world, pool=3)
    expert = db.session.get(Expert, panel.invitations[0].expert_id)
    change_expert_status(expert, "suspend", "长期联系不上", world.bz_admin)
    assert expert.status.value == "suspended" and panel.invitations[0].status == InvitationStatus.WITHDRAWN
    assert _events("panel.replacement_failed")


def test_a_submitted_review_is_not_released(world):
    e, panel, _ = _report_panel(world, pool=4)
    done = panel.invitations[0]
    _accept(done)
    _score(done, [18] * 5)
    change_expert_status(db.session.get(Expert, done.expert_id), "suspend", "其他原因", world.bz_admin)
    assert done.status == InvitationStatus.ACCEPTED and done.review.status == ReviewStatus.SUBMITTED


def test_a_withdrawal_racing_an_acceptance_loses_cleanly(world):
    """The expert accepted in another request after this one read the invitation: the compare-and-set
    refuses the withdrawal (409) instead of overwriting the acceptance."""
    e, panel, _ = _report_panel(world, pool=5)
    invitation = panel.invitations[0]
    db.session.execute(sa.update(PanelInvitation).where(PanelInvitation.id == invitation.id)
                       .values(status=InvitationStatus.ACCEPTED).execution_options(synchronize_session=False))
    assert invitation.status == InvitationStatus.INVITED  # this request's stale view
    with pytest.raises(Conflict):
        factories.witnessed(R.withdraw_invitation(invitation, world.bz_staff, "联系不上"))
    assert invitation.status == InvitationStatus.ACCEPTED


def test_a_released_expert_can_no_longer_write_the_review(world):
    e, panel, _ = _report_panel(world, pool=5)
    invitation = panel.invitations[0]
    _accept(invitation)
    user = _user(invitation.expert_id)
    change_expert_status(db.session.get(Expert, invitation.expert_id), "suspend", "违反评审纪律", world.bz_admin)
    items = invitation.review.rubric.items
    with pytest.raises(Conflict):
        R.save_review(invitation.review, user, scores={i.id: 18 for i in items}, comments={}, opinion="x")
    with pytest.raises(Conflict):
        R.submit_review(invitation.review, user)


# --- 5. the letter, the pages ------------------------------------------------------------------------------

@pytest.mark.parametrize("parts, text", [
    (["结构不完整。", "数据来源不清；"], "结构不完整；数据来源不清。"),
    (["问题分析不够具体。", "问题分析不够具体。"], "问题分析不够具体。"),
    (["建议可操作性不强。。", " "], "建议可操作性不强。"),
    ([], ""),
])
def test_join_clauses_has_no_punctuation_glitches(parts, text):
    assert R.join_clauses(parts) == text


def test_the_return_letter_has_no_punctuation_glitches(world):
    e, panel, _ = _report_panel(world)
    for invitation in panel.invitations:
        _accept(invitation)
    for invitation, opinion in zip(panel.invitations, ("问题分析不够具体。", "建议缺少责任主体；", "证据不足。")):
        _score(invitation, [16] * 5, opinion=opinion, comment="指标得分依据不充分。")
    assert not panel.passed
    assert not re.search("。；|；。|。。", panel.letter), panel.letter
    assert "总体意见：问题分析不够具体；建议缺少责任主体；证据不足。" in panel.letter
    R.send_letter(panel, world.bz_staff, panel.letter)
    assert any("退回整改" in n.title for n in _notes(world.firm_user))


def test_pending_tasks_come_first(app_ctx):
    def seat(id_, status, panel_status, due):
        return SimpleNamespace(id=id_, status=InvitationStatus.ACCEPTED, review=SimpleNamespace(status=status),
                               panel=SimpleNamespace(status=panel_status, review_due=due))
    now = date(2026, 1, 1)
    done = seat(1, ReviewStatus.SUBMITTED, PanelStatus.REVIEWING, now)
    later = seat(2, ReviewStatus.DRAFT, PanelStatus.REVIEWING, now + timedelta(days=5))
    sooner = seat(3, ReviewStatus.DRAFT, PanelStatus.REVIEWING, now + timedelta(days=1))
    closed = seat(4, ReviewStatus.DRAFT, PanelStatus.CLOSED, now)
    assert [i.id for i in V._tasks_pending_first([done, later, closed, sooner])] == [3, 2, 1, 4]


def test_the_expert_sees_a_running_total_from_a_static_script(client, login, world):
    e, panel, _ = _report_panel(world)
    invitation = panel.invitations[0]
    _accept(invitation)
    items = invitation.review.rubric.items
    R.save_review(invitation.review, _user(invitation.expert_id), scores={items[0].id: "18.5", items[1].id: "17"},
                  comments={}, opinion=None)
    db.session.commit()
    login(_user(invitation.expert_id))
    html = client.get(f"/reviews/{invitation.review.id}").get_data(as_text=True)
    assert 'data-testid="running-total">35.5<' in html and "review_total.js" in html
    assert 'data-score-max="20"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script (CSP)
    workspace = client.get("/reviews").get_data(as_text=True)
    assert f'data-testid="task-{invitation.review.id}" data-pending="true"' in workspace


def test_the_firm_sees_its_submissions_letters_and_outcomes_on_the_engagement_page(client, login, world):
    e, panel, _ = _report_panel(world)
    for invitation in panel.invitations:
        _accept(invitation)
        _score(invitation, [16] * 5, opinion="证据不足。")
    R.send_letter(panel, world.bz_staff, panel.letter)
    db.session.commit()
    login(world.firm_user)
    html = client.get(f"/engagements/{e.id}").get_data(as_text=True)
    assert 'data-testid="engagement-submissions"' in html
    report = panel.submission
    assert f'data-testid="return-letter-{report.id}"' in html and "证据不足" in html
    assert "退回整改" in html and "实施方案第 1 版" in html and "评价报告第 1 版" in html
    for invitation in panel.invitations:
        assert invitation.expert.name not in html
    login(world.other_firm_user)
    assert client.get(f"/engagements/{e.id}").status_code in (403, 404)


# --- routes: refusals --------------------------------------------------------------------------------------

def test_withdraw_route_refuses_others_and_withdraws_for_the_bureau(client, login, world):
    e, panel, _ = _report_panel(world, pool=5)
    invitation = panel.invitations[0]
    db.session.commit()
    url = f"/reviews/invitations/{invitation.id}/withdraw"
    for outsider in (world.kz_admin, world.firm_user, _user(invitation.expert_id), _user(panel.invitations[1].expert_id)):
        login(outsider)
        assert client.post(url, data={"reason": "越权"}).status_code == 403, outsider.username
    login(world.bz_staff)
    assert client.post(url, data={"reason": ""}).status_code == 422
    db.session.expire_all()
    assert invitation.status == InvitationStatus.INVITED
    response = client.post(url, data={"reason": "专家来电说明有利害关系"})
    assert response.status_code == 302
    db.session.expire_all()
    assert invitation.status == InvitationStatus.WITHDRAWN
    assert "专家来电说明有利害关系" in client.get(f"/reviews/panels/{panel.id}").get_data(as_text=True)
    client.post("/logout")
    assert client.post(url, data={"reason": "x"}).status_code == 302  # to the login page


def test_cap_evidence_route_is_for_the_bureau_side_only(client, login, world):
    e, _ = _accepted(world)
    cap = R.add_cap(e, world.bz_staff, "audit_problems", "审计发现问题", filename="审计报告.docx",
                    data=_docx("审计报告：资金拨付滞后"))
    db.session.commit()
    url = f"/engagements/{e.id}/caps/{cap.id}/evidence"
    for outsider in (world.kz_admin, world.firm_user, world.expert_user):
        login(outsider)
        assert client.get(url).status_code == 403, outsider.username
    login(world.bz_staff)
    assert client.get(url).status_code == 200
    assert client.get(f"/engagements/{e.id}/caps/{cap.id + 99}/evidence").status_code == 404
    html = client.get(f"/engagements/{e.id}/result").get_data(as_text=True)
    assert 'data-testid="cap-history"' in html and "审计发现问题" in html


def test_result_page_refuses_a_staff_cap_change_after_publication(client, login, world):
    e, _ = _accepted(world)
    R.publish(e, world.bz_staff, filename="脱密版.docx", data=_docx("脱密后的报告全文"))
    db.session.commit()
    url = f"/engagements/{e.id}/result"
    data = {"form": "cap_add", "code": "audit_problems", "reason": "公开后发现", "link": "/x"}
    login(world.bz_staff)
    assert 'data-testid="caps-frozen"' in client.get(url).get_data(as_text=True)
    assert client.post(url, data=data).status_code == 403
    login(world.bz_admin)
    assert client.post(url, data=data).status_code == 302


def test_the_experts_pending_tasks_partial_lists_invitations_then_reviews(app, world):
    from flask import render_template_string
    from flask_login import login_user

    e, panel, _ = _report_panel(world)
    invited, accepted = panel.invitations[0], panel.invitations[1]
    _accept(accepted)
    db.session.commit()
    with app.test_request_context("/"):
        login_user(_user(accepted.expert_id))
        html = render_template_string('{% include "review/_expert_tasks.html" %}')
        assert f'data-testid="pending-review-{accepted.review.id}"' in html
        assert "pending-invitation" not in html
        login_user(_user(invited.expert_id))
        html = render_template_string('{% include "review/_expert_tasks.html" %}')
        assert f'data-testid="pending-invitation-{invited.id}"' in html
        login_user(world.bz_staff)
        assert "expert-pending-tasks" not in render_template_string('{% include "review/_expert_tasks.html" %}')
