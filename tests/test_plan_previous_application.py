"""The plan page shows, under each item, what higher levels register through procurement.views'
``plan_item_context`` hook — results registers last year's confirmed application for the same unit and
project (闭环), without procurement importing results."""
from __future__ import annotations

from decimal import Decimal

import pytest

from evalhub.core import files
from evalhub.extensions import db
from evalhub.procurement import services as P, views as procurement_views
from evalhub.results.views import last_year_application
from evalhub.procurement.models import EngagementState, ObjectType
from evalhub.results import services as S
from evalhub.review.models import EvaluationResult, Grade, Submission, SubmissionKind
from tests import factories

NAME = "巴州统计局统计基础能力建设项目"


@pytest.fixture()
def hooks(monkeypatch):
    registered = []
    monkeypatch.setattr(procurement_views, "PLAN_ITEM_CONTEXT", registered)
    return registered


def _last_year(world):
    """巴州统计局's 2025 evaluation of NAME, scored 中 and its application confirmed (reduce)."""
    e = factories.contracted(world, unit="巴州统计局", name=NAME)
    stored = files.store("评价报告.docx", factories.docx_bytes(factories.report_text()), allowed=("docx",))
    submission = Submission(engagement_id=e.id, kind=SubmissionKind.REPORT, version=1, file_id=stored.id)
    db.session.add(submission)
    db.session.flush()
    db.session.add(EvaluationResult(engagement_id=e.id, submission_id=submission.id, score=Decimal("75"),
                                    band_grade=Grade.FAIR, grade=Grade.FAIR, caps=[]))
    e.state = EngagementState.ACCEPTED
    db.session.flush()
    entry = S.build_list(world.bz, 2025, world.bz_staff)[0]
    S.confirm_entry(entry, world.bz_staff, measures=entry.proposed, cut_percent=entry.proposed_percent)
    return e


def _next_year_plan(world, name=NAME):
    plan = P.get_or_create_plan(world.bz, 2026, world.bz_admin)
    P.add_plan_item(plan, P.PlanItemInput(
        name=name, object_type=ObjectType.PROJECT, budget_kind="一般公共预算", field="statistics", amount_wan="500",
        budget_unit_id=world.units["巴州统计局"].id, reason="上年评价为中，跟踪整改"), world.bz_admin)
    db.session.commit()
    return plan


def test_a_registered_context_shows_under_its_item(world, client, login, hooks):
    plan = _next_year_plan(world)
    item = plan.items[0]
    procurement_views.plan_item_context(lambda items: {i.id: f"提示：{i.name}" for i in items})
    procurement_views.plan_item_context(lambda items: {})  # a hook with nothing to say adds no line
    login(world.bz_staff)
    html = client.get(f"/plans/{plan.id}").get_data(as_text=True)
    assert html.count(f'data-testid="item-context-{item.id}"') == 1 and f"提示：{NAME}" in html


def test_last_years_confirmed_application_shows_on_next_years_plan(world, client, login, hooks):
    _last_year(world)
    plan = _next_year_plan(world)
    other = _next_year_plan(world, name="巴州统计局新项目")
    procurement_views.plan_item_context(last_year_application)
    login(world.bz_staff)
    html = client.get(f"/plans/{plan.id}").get_data(as_text=True)
    same = next(i for i in plan.items if i.name == NAME)
    assert f'data-testid="item-context-{same.id}"' in html
    assert "2025 年度评价：中（75.00 分），结果应用：预算调减" in html
    new = next(i for i in other.items if i.name != NAME)
    assert f'data-testid="item-context-{new.id}"' not in html  # another project: nothing from last year


def test_another_bureau_never_sees_the_plan_nor_its_context(world, client, login, hooks):
    _last_year(world)
    plan = _next_year_plan(world)
    procurement_views.plan_item_context(last_year_application)
    login(world.kz_staff)
    response = client.get(f"/plans/{plan.id}")
    assert response.status_code in (403, 404) and "年度评价" not in response.get_data(as_text=True)
