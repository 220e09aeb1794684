"""The paths around the seed-fidelity fixes (tests/test_audit_seeds.py) that its tests do not walk: the veto recorded
on a row already decided as 差, the admin's waiver of the grade check, the kinds with no outline, the year in
brackets, and the cancelled funds in the county's 备案."""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState, ServiceKind
from evalhub.results import services as S
from evalhub.results.models import Measure
from evalhub.review import services as R
from evalhub.review.models import EvaluationResult, Grade, ResultCap
from tests import factories
from tests.test_audit_seeds import _with_named_result, _with_result


def test_a_veto_recorded_on_a_row_already_decided_as_poor_reopens_it(world):
    e = _with_result(world, score="50", grade=Grade.POOR)
    entry = {r.engagement_id: r for r in S.build_list(world.bz, 2025, world.bz_staff)}[e.id]
    assert Measure.REDUCE.value in entry.proposed and Measure.CANCEL.value not in entry.proposed
    S.confirm_entry(entry, world.bz_staff, measures=entry.proposed, cut_percent=entry.proposed_percent)
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == e.id)).scalar_one()
    db.session.add(ResultCap(result_id=result.id, code=R.VETO, reason="核查发现虚报", evidence_link="/x"))
    db.session.flush()
    db.session.refresh(result, ["cap_records"])
    entry = {r.engagement_id: r for r in S.build_list(world.bz, 2025, world.bz_staff)}[e.id]
    assert entry.confirmed_at is None  # the grade stayed 差, but the decision was made without the veto
    assert Measure.CANCEL.value in entry.proposed and Measure.REDUCE.value not in entry.proposed
    assert "收回资金" in entry.proposed_basis


def test_an_admin_publishes_a_grade_better_than_the_conclusion_only_with_a_reason(world):
    e = factories.in_fieldwork(world)
    factories.submit_report(e, total="92", grade="中")
    factories.review_panel(factories.own_panel(e), "0.95")
    assert e.state == EngagementState.ACCEPTED
    data = factories.docx_bytes("脱密后的报告全文")
    with pytest.raises(Conflict, match="好于报告结论"):
        R.publish(e, world.bz_admin, filename="脱密版.docx", data=data)
    R.publish(e, world.bz_admin, filename="脱密版.docx", data=data, override="报告误将本项目按审计发现问题降档，经核实审计未发现问题")
    assert e.state == EngagementState.PUBLISHED
    from evalhub.procurement.models import EngagementTransition

    note = db.session.execute(sa.select(EngagementTransition.note).where(
        EngagementTransition.engagement_id == e.id, EngagementTransition.action == "publish")).scalar_one()
    assert "经核实审计未发现问题" in note  # the reason kept in the timeline


@pytest.mark.parametrize("kind", [ServiceKind.TARGET_REVIEW, ServiceKind.INDICATOR_SYSTEM])
def test_a_kind_without_a_standard_outline_gets_no_chapter_check(world, kind):
    e = factories.in_fieldwork(world)
    e.service_kind = e.plan_item.service_kind = kind
    db.session.flush()
    factories.name_lead(e)
    submission = R.submit(e, R.SubmissionKind.REPORT, "审核报告.docx", factories.docx_bytes("一、审核情况\n目标明确。"),
                          factories._firm_user_of(e), indicators=factories.report_indicators(),
                          concluded_total="92", concluded_grade="优")
    codes = {c["code"] for c in submission.machine_checks}
    assert "chapters_present" not in codes and "weights_sum" in codes


def test_the_year_in_brackets_or_alone_is_no_part_of_the_project():
    assert S.project_key("困难群众救助资金（2025）") == S.project_key("2026年度 困难群众救助资金") == "困难群众救助资金"
    assert S.project_key("巴州医疗保障局 2024 城乡居民基本医疗保险财政补助资金") == "巴州医疗保障局城乡居民基本医疗保险财政补助资金"
    assert S.project_key("G2012 线公路养护") == "G2012线公路养护"  # digits inside a code are not a year


def test_next_years_plan_does_not_see_another_project_of_the_unit(world):
    e = _with_named_result(world, "2025 年困难群众救助资金")
    entry = {r.engagement_id: r for r in S.build_list(world.bz, 2025, world.bz_staff)}[e.id]
    S.confirm_entry(entry, world.bz_staff, measures=[Measure.REDUCE.value], cut_percent="10")
    assert not S.previous_applications([(e.budget_unit_id, "2026 年困难群众临时救助资金", 2026)])


def test_a_county_files_its_cancelled_funds(world):
    from evalhub.core.settings import set_setting

    set_setting(world.lt, "results.good_action", "cancel", world.lt_admin)
    good = _with_result(world, bureau_key="lt", unit="轮台县医疗保障局", score="85", grade=Grade.GOOD, amount_wan="120")
    entry = S.build_list(world.lt, 2025, world.lt_staff)[0]
    assert entry.engagement_id == good.id
    S.confirm_entry(entry, world.lt_staff, measures=[Measure.CANCEL.value])
    filing = S.file_list(world.lt, 2025, world.lt_admin)
    assert Decimal(filing.summary["cancelled"]) == Decimal("1200000.00") and Decimal(filing.summary["reduced"]) == 0
