"""Expert review: machine checks, rubric arithmetic, panels with avoidance, visibility, the outcome
(exactly once), rectification rounds, grade caps, publication."""
from __future__ import annotations

import os
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import draws
from evalhub.core.enums import Field, Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.models import EngagementState as S
from evalhub.review import services as R
from evalhub.core.models import Notification
from evalhub.review.models import (
    Grade, IndicatorCategory, InvitationStatus, PanelStatus, ReportIndicator, ReviewStatus,
    RubricKind, SubmissionKind,
)
from evalhub.registry.services import add_expert_tie
from tests import factories
from tests.factories import docx_bytes as _docx

CHAPTERS = "\n".join(f"{n}、{c}\n本章内容。" for n, c in zip("一二三四五六七八", R.REPORT_CHAPTERS))


INDICATORS = [R.IndicatorInput("决策", "立项依据充分性", "10", "9"), R.IndicatorInput("过程", "资金到位率", "20", "18"),
              R.IndicatorInput("产出", "完成数量", "35", "33"), R.IndicatorInput("效益", "群众满意度", "35", "32")]


def _experts(world, n=7, bureau=None):
    out = []
    for i in range(n):
        expert = factories.expert(bureau or world.bz, name=f"评审专家{i}", employer=f"新疆某大学{i}")
        out.append((expert, factories.user(f"e{expert.id}", Role.EXPERT, expert_id=expert.id)))
    return out


def _report_submitted(world, **kw):
    e = factories.in_fieldwork(world, **kw)  # the work plan through a real panel
    R.submit(e, SubmissionKind.REPORT, "报告.docx", _docx(CHAPTERS), world.firm_user, indicators=INDICATORS,
             concluded_total="92", concluded_grade="优")
    return e


def _expert_users(world):
    return {u.expert_id: u for u in db.session.execute(sa.select(factories.User).where(factories.User.expert_id.is_not(None))).scalars()}


def _accept_all(panel, world):
    users = _expert_users(world)
    for invitation in list(panel.invitations):
        if invitation.status == InvitationStatus.INVITED:
            R.respond(invitation, users[invitation.expert_id], accept=True, declaration_signed=True)


def _review(invitation, world, points: list, opinion="总体较好"):
    users = _expert_users(world)
    review = invitation.review
    items = review.rubric.items
    R.save_review(review, users[invitation.expert_id], scores={i.id: p for i, p in zip(items, points)},
                  comments={i.id: f"关于{i.name}的意见" for i in items}, opinion=opinion)
    return R.submit_review(review, users[invitation.expert_id])


# --- machine checks --------------------------------------------------------------------------------

def _rows(spec):
    return [ReportIndicator(position=i, category=IndicatorCategory.from_label(c), name=n, weight=Decimal(w), score=Decimal(s))
            for i, (c, n, w, s) in enumerate(spec, 1)]


GOOD = [("决策", "a", "10", "9"), ("过程", "b", "20", "18"), ("产出", "c", "35", "33"), ("效益", "d", "35", "32")]


def _failing(checks):
    return [c["code"] for c in checks if not c["ok"]]


def test_a_sound_report_passes_every_machine_check():
    assert _failing(R.machine_checks(CHAPTERS, _rows(GOOD), Decimal("92"), Grade.EXCELLENT)) == []


@pytest.mark.parametrize("mutate, code", [
    (lambda t, r, tot, g: (t, r[:3] + [("效益", "d", "30", "27")], Decimal("87"), Grade.GOOD), "weights_sum"),
    (lambda t, r, tot, g: (t, [("决策", "a", "30", "27"), ("过程", "b", "20", "18"), ("产出", "c", "25", "23"),
                               ("效益", "d", "25", "24")], Decimal("92"), g), "output_benefit_share"),
    (lambda t, r, tot, g: (t, r[:3] + [("效益", "d", "35", "36")], Decimal("96"), g), "scores_within_weights"),
    (lambda t, r, tot, g: (t, r, Decimal("95"), g), "total_adds_up"),
    (lambda t, r, tot, g: (t, r, tot, Grade.GOOD), "grade_matches_band"),
    (lambda t, r, tot, g: (t.replace("五、主要经验及做法", ""), r, tot, g), "chapters_present"),
    (lambda t, r, tot, g: (t + "\n六、存在的问题及原因分析\n重复", r, tot, g), "chapters_unique"),
])
def test_each_machine_check_fails_alone(mutate, code):
    text, rows, total, grade = mutate(CHAPTERS, GOOD, Decimal("92"), Grade.EXCELLENT)
    assert _failing(R.machine_checks(text, _rows(rows), total, grade)) == [code]


def test_grade_bands():
    assert [R.grade_for(Decimal(x)) for x in ("90", "89.99", "80", "60", "59.9")] == \
        [Grade.EXCELLENT, Grade.GOOD, Grade.GOOD, Grade.FAIR, Grade.POOR]


@pytest.mark.parametrize("cap, grade", [("audit_problems", Grade.FAIR), ("major_fund_problems", Grade.POOR),
                                        ("failed_monitoring_twice", Grade.FAIR), ("failed_authenticity", Grade.POOR)])
def test_each_grade_cap_alone(cap, grade):
    assert R.apply_caps(Grade.EXCELLENT, [cap]) == grade
    assert R.apply_caps(Grade.POOR, [cap]) == Grade.POOR  # a cap never raises a grade


def test_mean_and_trimmed_mean():
    values = [Decimal(v) for v in ("90", "80", "85")]
    assert R.panel_score(values, 5) == Decimal("85.00")
    five = [Decimal(v) for v in ("60", "88", "90", "92", "99")]
    assert R.panel_score(five, 5) == Decimal("90.00")   # drop 60 and 99
    assert R.panel_score(five, 7) == Decimal("85.80")   # setting: trim only from 7


# --- rubrics ---------------------------------------------------------------------------------------

def test_default_rubrics_sum_to_100_and_bureau_revisions_are_versions(world):
    for kind in RubricKind:
        assert R.current_rubric(world.bz, kind).max_total == Decimal("100")
    with pytest.raises(ValidationFailed):
        R.revise_rubric(world.bz, RubricKind.REPORT, [("结构", "", "50"), ("证据", "", "40")], world.bz_admin)
    with pytest.raises(PermissionDenied):
        R.revise_rubric(world.bz, RubricKind.REPORT, [("结构", "", "100")], world.bz_staff)
    v1 = R.revise_rubric(world.bz, RubricKind.REPORT, [("结构", "", "40"), ("证据", "", "60")], world.bz_admin)
    v2 = R.revise_rubric(world.bz, RubricKind.REPORT, [("结构", "", "30"), ("证据", "", "70")], world.bz_admin)
    assert (v1.version, v2.version) == (1, 2) and not v1.is_current
    assert R.current_rubric(world.lt, RubricKind.REPORT).id == v2.id  # counties inherit
    assert R.current_rubric(world.kz, RubricKind.REPORT).bureau_id is None


# --- submissions -----------------------------------------------------------------------------------

def test_only_the_contracted_firm_submits_and_each_upload_is_a_version(world):
    e = factories.contracted(world)
    with pytest.raises(PermissionDenied):
        R.submit(e, SubmissionKind.WORK_PLAN, "方案.docx", _docx("方案"), world.other_firm_user)
    with pytest.raises(Conflict):
        R.submit(e, SubmissionKind.REPORT, "报告.docx", _docx("报告"), world.firm_user)  # no report before fieldwork
    with pytest.raises(ValidationFailed) as caught:
        R.submit(e, SubmissionKind.WORK_PLAN, "方案.txt", "纯文本".encode(), world.firm_user)
    assert "只接受" in caught.value.message and e.state == S.CONTRACTED
    first = R.submit(e, SubmissionKind.WORK_PLAN, "方案.docx", _docx("实施方案第一版"), world.firm_user)
    assert first.version == 1 and e.state == S.PLAN_SUBMITTED
    assert "实施方案第一版" in first.file.text


def test_a_report_carries_its_scoring_table_and_machine_checks(world):
    e = _report_submitted(world)
    report = R.latest_submission(e, SubmissionKind.REPORT)
    assert [i.name for i in report.indicators] == ["立项依据充分性", "资金到位率", "完成数量", "群众满意度"]
    assert all(c["ok"] for c in report.machine_checks)
    assert report.concluded_grade == Grade.EXCELLENT


# --- panels ----------------------------------------------------------------------------------------

def test_panel_draw_applies_every_avoidance_reason(world):
    e = _report_submitted(world)
    pool = _experts(world, 9)
    from datetime import date

    (firm_tie, _), (unit_tie, _), (wrong_field, _), (busy, _), (old_tie, _) = pool[:5]
    add_expert_tie(firm_tie, kind="任职", counterpart_type="第三方机构", counterpart_name=None, firm_id=world.firm.id,
                   bureau_id=None, budget_unit_id=None, start_date=date(2020, 1, 1), end_date=None, note=None,
                   actor=world.bz_staff)
    add_expert_tie(unit_tie, kind="其他利害关系", counterpart_type="预算单位", counterpart_name=None, firm_id=None,
                   bureau_id=None, budget_unit_id=e.budget_unit_id, start_date=date(2024, 1, 1), end_date=None,
                   note=None, actor=world.bz_staff)
    add_expert_tie(old_tie, kind="任职", counterpart_type="第三方机构", counterpart_name=None, firm_id=world.firm.id,
                   bureau_id=None, budget_unit_id=None, start_date=date(2010, 1, 1), end_date=date(2015, 1, 1),
                   note=None, actor=world.bz_staff)
    from evalhub.registry.models import expert_field

    db.session.execute(expert_field.update().where(expert_field.c.expert_id == wrong_field.id).values(field=Field.WATER))
    set_setting(world.bz, "review.load_cap", 1, world.bz_admin)
    other = _report_submitted(world, unit="巴州民政局")
    set_setting(world.bz, "review.report_panel_size", 3, world.bz_admin)
    exclusions = R.panel_exclusions(e, [p[0] for p in pool])
    assert "任职" in exclusions[firm_tie.id][0]
    assert "巴州统计局" in exclusions[unit_tie.id][0]
    assert "业务领域不含" in exclusions[wrong_field.id][0]
    assert old_tie.id not in exclusions  # ended more than 3 years ago
    # load cap: seat the busy expert on another open panel first
    panel = factories.witnessed(R.form_panel(other, world.bz_staff, size=3))
    seated = {i.expert_id for i in panel.invitations}
    reasons = R.panel_exclusions(e, R._pool(e))
    assert all("上限" in " ".join(reasons[x]) for x in seated)
    assert draws.verify(panel.draw).ok


def test_same_firm_cap_per_year(world):
    set_setting(world.bz, "review.same_firm_per_year", 1, world.bz_admin)
    set_setting(world.bz, "review.report_panel_size", 3, world.bz_admin)
    pool = _experts(world, 6)
    first = factories.witnessed(R.form_panel(_report_submitted(world), world.bz_staff))
    second = _report_submitted(world, unit="巴州民政局")
    reasons = R.panel_exclusions(second, R._pool(second))
    for invitation in first.invitations:
        assert any("今年已评审该机构" in r for r in reasons[invitation.expert_id])


def test_panel_size_must_be_odd_and_enough_experts_must_be_eligible(world):
    e = _report_submitted(world)
    _experts(world, 3)
    with pytest.raises(ValidationFailed):
        factories.witnessed(R.form_panel(e, world.bz_staff, size=4))
    with pytest.raises(Exception) as caught:
        factories.witnessed(R.form_panel(e, world.bz_staff, size=7))
    assert "不足" in str(caught.value)
    assert e.state == S.REPORT_SUBMITTED


def test_decline_triggers_a_replacement_draw_that_cites_it(world):
    e = _report_submitted(world)
    _experts(world, 6)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    users = _expert_users(world)
    first = panel.invitations[0]
    with pytest.raises(ValidationFailed):
        R.respond(first, users[first.expert_id], accept=False, reason="")
    with pytest.raises(ValidationFailed):
        R.respond(first, users[first.expert_id], accept=True, declaration_signed=False)
    announced = R.respond(first, users[first.expert_id], accept=False, reason="出差")
    assert announced.status.value == "announced" and len(panel.invitations) == 3  # waits for its witnesses
    replacement = factories.witnessed(announced)[0]
    assert first.status == InvitationStatus.DECLINED and replacement.expert_id != first.expert_id
    redraw = db.session.get(draws.Draw, replacement.draw_id)
    assert redraw.redraw_of_id == panel.draw_id and "出差" in redraw.redraw_reason
    assert first.expert_id in {x["id"] for x in redraw.exclusions}
    assert draws.verify(redraw).ok


def test_a_missed_response_deadline_expires_and_is_replaced(world):
    e = _report_submitted(world)
    _experts(world, 6)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    late = panel.invitations[0]
    late.respond_by = utcnow() - timedelta(minutes=1)
    counts = R.send_reminders()
    assert counts["expired"] == 1 and late.status == InvitationStatus.EXPIRED
    factories.witness_pending()
    assert len(panel.invitations) == 4 and "未在" in db.session.get(draws.Draw, panel.invitations[-1].draw_id).redraw_reason


# --- reviewing and the outcome ---------------------------------------------------------------------

def _panel(world, size=3):
    e = _report_submitted(world)
    _experts(world, size + 2)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=size))
    _accept_all(panel, world)
    return e, panel


def test_visibility_before_and_after_an_experts_own_submission(world):
    e, panel = _panel(world)
    users = _expert_users(world)
    a, b, c = panel.invitations
    _review(a, world, [18, 18, 18, 18, 18])
    assert [r.id for r in R.visible_reviews(panel, users[b.expert_id])] == [b.review.id]  # only their own draft
    assert {r.id for r in R.visible_reviews(panel, users[a.expert_id])} == {a.review.id}
    _review(b, world, [19, 19, 19, 19, 19])
    assert {r.id for r in R.visible_reviews(panel, users[b.expert_id])} == {a.review.id, b.review.id}
    assert R.visible_reviews(panel, world.firm_user) == []
    assert len(R.visible_reviews(panel, world.bz_staff)) == 3
    assert R.visible_reviews(panel, world.kz_admin) == []
    with pytest.raises(PermissionDenied):
        R.save_review(c.review, users[a.expert_id], scores={}, comments={}, opinion="x")


def test_submitted_reviews_are_read_only_until_the_bureau_reopens_them(world):
    e, panel = _panel(world)
    users = _expert_users(world)
    a = panel.invitations[0]
    _review(a, world, [18] * 5)
    with pytest.raises(Conflict):
        R.save_review(a.review, users[a.expert_id], scores={}, comments={}, opinion="改")
    with pytest.raises(PermissionDenied):
        R.reopen_review(a.review, world.kz_admin, "理由")
    R.reopen_review(a.review, world.bz_staff, "评分理由过于简单")
    assert a.review.status == ReviewStatus.DRAFT


def test_incomplete_or_out_of_range_reviews_are_refused(world):
    e, panel = _panel(world)
    users = _expert_users(world)
    a = panel.invitations[0]
    items = a.review.rubric.items
    with pytest.raises(ValidationFailed):
        R.save_review(a.review, users[a.expert_id], scores={items[0].id: "25"}, comments={}, opinion=None)
    R.save_review(a.review, users[a.expert_id], scores={items[0].id: "15"}, comments={items[0].id: "好"}, opinion=None)
    with pytest.raises(ValidationFailed) as caught:
        R.submit_review(a.review, users[a.expert_id])
    assert "opinion" in caught.value.fields and f"score_{items[1].id}" in caught.value.fields


def test_a_report_under_the_pass_mark_goes_back_with_an_edited_letter(world):
    e, panel = _panel(world)
    for invitation, points in zip(panel.invitations, ([17] * 5, [18] * 5, [16] * 5)):
        _review(invitation, world, points, opinion="问题分析不够具体")
    assert panel.status == PanelStatus.DECIDED and panel.score == Decimal("85.00") and not panel.passed
    assert e.state == S.REPORT_IN_REVIEW  # not yet sent: the bureau edits the letter first
    assert "问题分析不够具体" in panel.letter and "评审专家" not in panel.letter
    for invitation in panel.invitations:
        assert invitation.expert.name not in panel.letter
    with pytest.raises(ValidationFailed):
        R.send_letter(panel, world.bz_staff, "太短")
    R.send_letter(panel, world.bz_staff, panel.letter + "\n请于十五日内完成整改。")
    assert e.state == S.REPORT_RETURNED and panel.resubmit_due is not None
    firm_notes = db.session.execute(sa.select(Notification).where(Notification.user_id == world.firm_user.id)).scalars().all()
    assert any("退回整改" in n.title for n in firm_notes)


def test_a_report_at_the_pass_mark_is_accepted_and_graded(world):
    e, panel = _panel(world)
    for invitation in panel.invitations:
        _review(invitation, world, [18] * 5)
    assert panel.passed and e.state == S.ACCEPTED
    from evalhub.review.models import EvaluationResult

    result = db.session.execute(sa.select(EvaluationResult)).scalar_one()
    assert result.score == Decimal("92.00") and result.grade == Grade.EXCELLENT
    R.add_cap(e, world.bz_staff, "audit_problems", "审计发现资金拨付滞后", link="/supervision/inspections/1")
    assert result.grade == Grade.FAIR and result.band_grade == Grade.EXCELLENT


def test_spread_above_the_setting_is_flagged(world):
    e, panel = _panel(world)
    for invitation, points in zip(panel.invitations, ([20] * 5, [20] * 5, [16] * 5)):
        _review(invitation, world, points)
    assert panel.spread == Decimal("20") and panel.spread_flagged


def test_after_three_failed_rounds_the_bureau_decides(world):
    set_setting(world.bz, "review.report_panel_size", 3, world.bz_admin)
    e = _report_submitted(world)
    _experts(world, 12)
    for round_number in range(1, 4):
        panel = factories.witnessed(R.form_panel(e, world.bz_staff))
        _accept_all(panel, world)
        for invitation in panel.invitations:
            if invitation.status == InvitationStatus.ACCEPTED:
                _review(invitation, world, [15] * 5)
        R.send_letter(panel, world.bz_staff, panel.letter)
        assert panel.round == round_number
        if round_number < 3:
            R.submit(e, SubmissionKind.REPORT, "整改稿.docx", _docx(CHAPTERS + f"\n第{round_number}次修改"),
                     world.firm_user, indicators=INDICATORS, concluded_total="92", concluded_grade="优")
    with pytest.raises(Conflict) as caught:
        R.submit(e, SubmissionKind.REPORT, "第四稿.docx", _docx(CHAPTERS + "四"), world.firm_user,
                 indicators=INDICATORS, concluded_total="92", concluded_grade="优")
    assert "3 轮" in caught.value.message
    with pytest.raises(PermissionDenied):
        R.accept_with_deduction(e, world.bz_staff, "5", "三轮未通过")
    result = R.accept_with_deduction(e, world.bz_admin, "5", "三轮未通过，扣 5 分验收")
    assert e.state == S.ACCEPTED and result.deduction == Decimal("5")


@pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"), reason="concurrency is tested against PostgreSQL")
def test_the_outcome_fires_exactly_once_when_two_experts_submit_together(app, world):
    e, panel = _panel(world)
    users = _expert_users(world)
    first, second, third = panel.invitations
    _review(first, world, [18] * 5)
    for invitation in (second, third):
        items = invitation.review.rubric.items
        R.save_review(invitation.review, users[invitation.expert_id], scores={i.id: 18 for i in items},
                      comments={i.id: "意见" for i in items}, opinion="同意")
    db.session.commit()
    ids = [(second.review.id, users[second.expert_id].id), (third.review.id, users[third.expert_id].id)]
    barrier = threading.Barrier(2)
    errors = []

    def press(review_id, user_id):
        with app.app_context():
            from evalhub.core.models import User
            from evalhub.review.models import Review

            review, user = db.session.get(Review, review_id), db.session.get(User, user_id)
            barrier.wait()
            try:
                R.submit_review(review, user)
                db.session.commit()
            except Exception as exc:  # pragma: no cover - reported below
                db.session.rollback()
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=press, args=pair) for pair in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    db.session.expire_all()
    from evalhub.core.models import AuditEvent

    # This panel's decision (the work plan's panel, walked before fieldwork, decided once already).
    decided = db.session.execute(sa.select(sa.func.count(AuditEvent.id)).where(
        AuditEvent.action == "panel.decided", AuditEvent.object_type == "review_panel",
        AuditEvent.object_id == panel.id)).scalar_one()
    accepted = db.session.execute(sa.select(sa.func.count(AuditEvent.id)).where(
        AuditEvent.action == "engagement.accept_report")).scalar_one()
    assert decided == 1 and accepted == 1
    assert db.session.get(type(e), e.id).state == S.ACCEPTED


# --- after acceptance ------------------------------------------------------------------------------

def _accepted(world):
    e, panel = _panel(world)
    for invitation in panel.invitations:
        _review(invitation, world, [19] * 5)
    return e


def test_publication_of_a_redacted_file_or_classification(world):
    e = _accepted(world)
    with pytest.raises(ValidationFailed):
        R.publish(e, world.bz_staff)
    with pytest.raises(PermissionDenied):
        R.publish(e, world.kz_admin, filename="x.docx", data=_docx("脱密"))
    publication = R.publish(e, world.bz_staff, filename="脱密版.docx", data=_docx("脱密后的报告"))
    assert e.state == S.PUBLISHED and publication.redacted_file.text.startswith("脱密后的报告")
    other = _accepted(world)
    with pytest.raises(ValidationFailed):
        R.publish(other, world.bz_admin, classified=True, reason="")
    R.publish(other, world.bz_admin, classified=True, reason="涉及国家秘密")
    assert other.state == S.ARCHIVED


def test_the_commissioner_rates_the_firm_once(world):
    e = _accepted(world)
    rubric = R.current_rubric(world.bz, RubricKind.COMMISSIONER)
    scores = {i.id: i.max_points - 1 for i in rubric.items}
    with pytest.raises(ValidationFailed):
        R.rate_firm(e, world.bz_staff, {rubric.items[0].id: 99}, None)
    rating = R.rate_firm(e, world.bz_staff, scores, "整体满意")
    assert rating.total == Decimal("95") and rating.firm_id == world.firm.id
    with pytest.raises(Conflict):
        R.rate_firm(e, world.bz_staff, scores, "再评")


def test_reminders_before_and_after_due_dates_are_sent_once(world):
    e, panel = _panel(world)
    panel.review_due = utcnow() + timedelta(days=1)
    first = R.send_reminders()
    again = R.send_reminders()
    assert first["reminders"] == 3 and again["reminders"] == 0
    panel.review_due = utcnow() - timedelta(days=1)
    assert R.send_reminders()["reminders"] == 3


def test_a_missed_resubmission_deadline_makes_the_engagement_overdue(world):
    from datetime import date

    e, panel = _panel(world)
    for invitation in panel.invitations:
        _review(invitation, world, [15] * 5)
    R.send_letter(panel, world.bz_staff, panel.letter)
    due = R.resubmission_due(e)
    assert workflow.overdue_reason(e, due) is None
    assert "整改稿" in workflow.overdue_reason(e, due + timedelta(days=2))


def test_overdue_reviews_list_the_members_still_owing(world):
    e, panel = _panel(world)
    _review(panel.invitations[0], world, [18] * 5)
    from evalhub.review.models import ReviewPanel

    stmt = sa.select(ReviewPanel)
    assert R.overdue_reviews(stmt) == (0, [])
    total, late = R.overdue_reviews(stmt, now=panel.review_due + timedelta(hours=1))
    assert total == 1 and late[0].id == panel.id and late[0].late == 2


def test_the_sql_overdue_rule_and_the_worded_one_agree(world):
    """``workflow.overdue_clause`` (lists, counts) and ``workflow.overdue_reasons`` (the words on the rows)
    are one rule: on every day around each deadline they pick the same engagements."""
    from datetime import date

    from evalhub.procurement.models import Engagement

    plan_late = factories.contracted(world)                       # plan due 2025-04-01
    in_field = factories.in_fieldwork(world)                      # report due 2025-10-31
    returned, panel = _panel(world)                               # a report returned with a rectification deadline
    for invitation in panel.invitations:
        _review(invitation, world, [15] * 5)
    R.send_letter(panel, world.bz_staff, panel.letter)
    due = R.resubmission_due(returned)
    engagements = [plan_late, in_field, returned]
    days = [date(2025, 3, 31), date(2025, 4, 1), date(2025, 4, 2), date(2025, 10, 31), date(2025, 11, 1),
            due - timedelta(days=1), due, due + timedelta(days=1)]
    for day in days:
        in_sql = set(db.session.execute(sa.select(Engagement.id).where(
            Engagement.id.in_([e.id for e in engagements]), workflow.overdue_clause(day))).scalars())
        assert in_sql == set(workflow.overdue_reasons(engagements, day)), day
    assert returned.id in workflow.overdue_reasons(engagements, due + timedelta(days=1))
    assert returned.id not in workflow.overdue_reasons(engagements, due)


def test_checking_a_pool_reads_each_experts_load_and_firm_count_at_once(world):
    """The load cap and the same-firm cap are read for the whole pool in one statement each, not per expert: a
    region's pool has thousands of experts (checked on a pool of 4 and of 12: the same statements)."""
    e = _report_submitted(world)
    db.session.commit()

    def statements(pool) -> list[str]:
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        sa.event.listen(db.engine, "before_cursor_execute", listener)
        try:
            R.panel_exclusions(e, pool)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listener)
        return [s for s in seen if "panel_invitation" in s]

    small = [x for x, _ in _experts(world, 4)]
    large = small + [x for x, _ in _experts(world, 8)]
    assert len(statements(large)) == len(statements(small)) == 2


def test_checking_a_pool_reads_its_ties_rosters_and_fields_at_once(world):
    """Every exclusion of a pool (ties, the firms' rosters, fields, status) is read in statements per pool, not
    per expert: a draw over a region's thousands of experts must not cost two statements an expert. Pools of 4
    and of 12 experts, each with a declared tie, read freshly as a draw reads its pool: the same statements, and
    the tie with the firm still found."""
    from evalhub.registry.models import CounterpartType, Expert, ExpertTie, TieKind

    e = _report_submitted(world)
    experts = [x for x, _ in _experts(world, 12)]
    for x in experts:
        db.session.add(ExpertTie(expert_id=x.id, counterpart_type=CounterpartType.FIRM, firm_id=world.firm.id,
                                 counterpart_name=world.firm.name, kind=TieKind.SHAREHOLDER,
                                 start_date=utcnow().date() - timedelta(days=400)))
    db.session.commit()

    def statements(ids) -> tuple[int, dict]:
        db.session.expire_all()
        pool = db.session.execute(sa.select(Expert).where(Expert.id.in_(ids)).order_by(Expert.id)).scalars().all()
        R.panel_exclusions(e, pool)  # settings and the engagement warmed
        db.session.expire_all()
        pool = db.session.execute(sa.select(Expert).where(Expert.id.in_(ids)).order_by(Expert.id)).scalars().all()
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        sa.event.listen(db.engine, "before_cursor_execute", listener)
        try:
            out = R.panel_exclusions(e, pool)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen), out

    small, small_out = statements([x.id for x in experts[:4]])
    large, large_out = statements([x.id for x in experts])
    assert small == large
    assert all(any(world.firm.name in r for r in large_out[x.id]) for x in experts)
