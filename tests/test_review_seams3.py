"""Review of the merged seams (third batch): each test failed before its fix."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from evalhub.core.models import Notification
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.registry.services import impose_suspension
from tests import factories


def _inbox(user):
    return db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)).scalars().all()


# 1. The hourly overdue-contract job asks what the "may be signed" announcement asks (``contract_hold``).

def test_overdue_contract_of_a_suspended_winner_is_not_urged_on_the_firm(world):
    e = factories.engagement(world)
    p = factories.single_source(world, e)
    factories.past_challenge_period(p)  # contract due 2025-03-12
    impose_suspension(world.firm, "测试：暂停")
    db.session.flush()
    today = date(2025, 3, 20)
    assert P.announce_contract_ready(p.notice, today) is False
    P.remind_contracts_overdue(today)
    db.session.flush()
    assert not any("逾期" in n.title for n in _inbox(world.firm_user))
    titles = [n.title for n in _inbox(world.bz_staff)]
    assert any("暂不能签订" in t for t in titles)
    overdue = [n for n in _inbox(world.bz_staff) if "逾期" in n.title]
    assert overdue and all("尽快" not in n.body and "暂不能签订" in n.body for n in overdue)


def test_overdue_contract_with_an_unanswered_challenge_is_not_urged_on_the_firm(world, monkeypatch):
    e = factories.engagement(world)
    p = factories.single_source(world, e)
    factories.past_challenge_period(p)
    monkeypatch.setattr(P, "contract_block", lambda procurement, today=None: "尚有 1 件质疑未答复，答复后方可签订合同")
    P.remind_contracts_overdue(date(2025, 4, 20))
    db.session.flush()
    assert not any("逾期" in n.title for n in _inbox(world.firm_user))
    [note] = [n for n in _inbox(world.bz_staff) if "逾期" in n.title]
    assert "质疑未答复" in note.body and "尽快" not in note.body


def test_overdue_contract_that_may_be_signed_still_reminds_both(world):
    e = factories.engagement(world)
    p = factories.single_source(world, e)
    factories.past_challenge_period(p)
    P.remind_contracts_overdue(date(2025, 3, 20))
    db.session.flush()
    assert any("合同逾期未签订" in n.title and "尽快" in n.body for n in _inbox(world.firm_user))


# 2. A missing report is late only where the firm could hand it in, not while its plan waits on the bureau.

def test_report_not_counted_late_while_the_plan_waits_on_the_bureau(world):
    from datetime import datetime

    from evalhub.core import timeutil
    from evalhub.credit import services as C

    factories.accepted(world)
    e = factories.contracted(world)
    with timeutil.simulated_clock(datetime(2025, 3, 20, 2, 0)):
        factories.submit_plan(e)  # on time; the bureau never forms the panel
    db.session.flush()
    _, comps, _ = C.firm_components(world.bz, world.firm, 2025, today=date(2025, 11, 5))
    perf = next(c for c in comps if c.code == "performance")
    assert not any("report_missing" in (r.get("ref") or "") for r in perf.records), perf.records


def test_report_still_counted_late_in_fieldwork(world):
    from evalhub.credit import services as C
    from evalhub.procurement.models import EngagementState

    factories.accepted(world)
    e = factories.contracted(world)
    e.state = EngagementState.FIELDWORK
    db.session.flush()
    _, comps, _ = C.firm_components(world.bz, world.firm, 2025, today=date(2025, 11, 5))
    perf = next(c for c in comps if c.code == "performance")
    assert any(r.get("ref") == f"report_missing:{e.id}" for r in perf.records), perf.records


# 3. The watch-list check reads no bureau tree per case: the firm's market page stays flat as bureaus are added.

def _open_in(world, key, unit):
    from evalhub.core.models import BudgetUnit
    from evalhub.procurement.models import ProcurementMethod

    if unit not in world.units:
        world.units[unit] = BudgetUnit(bureau_id=getattr(world, key).id, name=unit)
        db.session.add(world.units[unit])
        db.session.flush()
    return factories.witnessed(P.open_procurement(
        factories.engagement(world, bureau_key=key, unit=unit), P.ProcurementInput(
            method=ProcurementMethod.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
            bid_deadline=factories.bid_deadline(getattr(world, key), 10)), getattr(world, f"{key}_staff")))


def test_market_statements_flat_across_lower_bureaus(world, client, login):
    from tests.test_procurement_services import _consultation
    from tests.test_row_statements import _statements

    for _ in range(3):
        _consultation(world)
    db.session.commit()
    login(world.firm_user)
    _statements(client, "/market")
    before, _ = _statements(client, "/market")
    _open_in(world, "lt", "轮台县医疗保障局")
    _open_in(world, "krl", "库尔勒市某局")
    db.session.commit()
    after, _ = _statements(client, "/market")
    assert after == before


# 4. A plan lists an object once per commissioned work, names compared as read (spaces, full width, case).

def _plan_item(world):
    from evalhub.core.models import BudgetUnit

    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    unit = db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == "巴州统计局")).scalar_one()
    data = P.PlanItemInput(name="统计调查项目ＡＢ", object_type="项目支出", budget_kind="一般公共预算", field="统计",
                           amount_wan="100", budget_unit_id=unit.id, reason="资金量大")
    P.add_plan_item(plan, data, world.bz_staff)
    return plan, data


def test_same_object_may_be_listed_for_two_commissioned_kinds(world):
    from evalhub.procurement.models import ServiceKind

    plan, data = _plan_item(world)
    P.add_plan_item(plan, P.PlanItemInput(**{**data.__dict__, "service_kind": ServiceKind.EX_ANTE_REASSESSMENT,
                                            "reason": "事前评估再评估"}), world.bz_staff)
    assert len(plan.items) == 2


def test_whitespace_and_full_width_twins_are_refused(world):
    import pytest

    from evalhub.core.errors import ValidationFailed

    plan, data = _plan_item(world)
    for twin in ("统计调查 项目ＡＢ", "统计调查项目ＡＢ　", "统计调查项目ab"):
        with pytest.raises(ValidationFailed):
            P.add_plan_item(plan, P.PlanItemInput(**{**data.__dict__, "name": twin}), world.bz_staff)
    other = P.add_plan_item(plan, P.PlanItemInput(**{**data.__dict__, "name": "统计年鉴项目"}), world.bz_staff)
    with pytest.raises(ValidationFailed):  # edited into a twin
        P.update_plan_item(other, P.PlanItemInput(**{**data.__dict__, "name": " 统计调查项目AB"}), world.bz_staff)


# 5. 双公开: a unit's publication recorded before the bureau-first rule, the bureau never having published.

def test_unit_only_publication_of_before_the_rule_is_listed_after_the_rolled_days(world):
    from evalhub.procurement.models import EngagementState
    from evalhub.results import services as R
    from evalhub.results.models import UnitPublication
    from evalhub.review.models import Publication

    e = factories.contracted(world)
    withheld = factories.contracted(world)
    for x in (e, withheld):
        x.state = EngagementState.ACCEPTED
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    db.session.add_all([
        UnitPublication(engagement_id=e.id, url="https://www.xjbz.gov.cn/tjj/a.html", published_on=date(2025, 9, 1),
                        recorded_by_id=unit.id),
        UnitPublication(engagement_id=withheld.id, url="https://www.xjbz.gov.cn/tjj/b.html",
                        published_on=date(2025, 9, 1), recorded_by_id=unit.id),
        Publication(engagement_id=withheld.id, classified=True, published_at=None)])
    db.session.flush()
    # the 20th day is Sunday 21 September: the period ends on Monday the 22nd
    assert R.one_sided_publications(world.bz_staff, today=date(2025, 9, 22)) == []
    late = R.one_sided_publications(world.bz_staff, today=date(2025, 9, 23))
    assert [(x.id, text) for x, text in late] == [(e.id, "财政部门未公开；被评价单位已于 2025-09-01 公开")]


# 6. Findings are drafted from a report read by its kind's outline (``review.report_outline``).

def test_findings_drafted_from_an_ex_ante_reassessment_stop_at_its_next_point(world):
    from evalhub.procurement.models import ServiceKind
    from evalhub.results import services as R
    from evalhub.review.models import Submission, SubmissionKind

    e = factories.accepted(world)
    e.service_kind = ServiceKind.EX_ANTE_REASSESSMENT
    report = db.session.execute(sa.select(Submission).where(
        Submission.engagement_id == e.id, Submission.kind == SubmissionKind.REPORT)
        .order_by(Submission.version.desc())).scalars().first()
    report.file.text = "\n".join([
        "一、立项必要性", "项目立项依据充分，符合本地发展规划。",
        "二、存在的问题及原因分析", "（一）绩效目标设置不够细化，缺少量化指标。",
        "三、投入经济性", "（一）测算依据取自同类项目的历史单价资料。",
        "四、有关建议", "（一）细化绩效目标，补充可量化的产出指标。",
    ])
    db.session.flush()
    drafted = R.draft_from_report(e, factories._firm_user_of(e))
    assert [f.text for f in drafted] == ["绩效目标设置不够细化，缺少量化指标。", "细化绩效目标，补充可量化的产出指标。"]


def test_screening_and_references_read_the_outline_of_the_kind():
    """Every reader of a report's chapters asks ``review.outline_for``/``report_outline``, not the eight-chapter
    setting directly: a text screened without an engagement and a reference report by the key-evaluation outline."""
    import inspect

    from evalhub.demo import screening as demo_screening
    from evalhub.results import services as results_services
    from evalhub.screening import references, services as screening_services

    for module in (results_services, screening_services, references, demo_screening):
        assert '"review.report_chapters"' not in inspect.getsource(module), module.__name__


# 7. The waiver hint stands beside the items this reader may waive, not beside a higher bureau's hold.

def test_waiver_hint_follows_only_the_waivable_items(world, monkeypatch):
    import pytest

    from evalhub.core.errors import Conflict
    from evalhub.procurement import workflow

    e = factories.accepted(world)
    monkeypatch.setattr(workflow, "unmet", lambda *a, **k: [
        workflow.Unmet("no_open_inspection", "未办结的检查（#7）", True),
        workflow.Unmet("no_open_inspection", "上级财政局暂缓公开", False)])
    with pytest.raises(Conflict) as caught:
        workflow.check(e, "publish", world.bz_admin)
    message = caught.value.message
    assert "上级财政局暂缓公开（" not in message
    assert "未办结的检查（#7）（本级财政局管理员可说明理由后豁免）" in message
    monkeypatch.setattr(workflow, "unmet", lambda *a, **k: [workflow.Unmet("no_open_inspection", "上级财政局暂缓公开", False)])
    with pytest.raises(Conflict) as caught:
        workflow.check(e, "publish", world.bz_admin)
    assert "豁免" not in caught.value.message


# 8. A project's key strips a year, not a bare number that is no year.

def test_project_key_keeps_a_quantity_that_looks_like_a_year():
    from evalhub.results import services as R

    assert R.project_key("2025年2000亩高标准农田") == "2000亩高标准农田"
    assert R.project_key("2025年2000亩高标准农田") != R.project_key("2026年2050亩高标准农田")
    assert R.project_key("高标准农田2000亩建设") == "高标准农田2000亩建设"
    assert R.project_key("2026城乡居民医保资金") == R.project_key("城乡居民医保资金（2025年度）") == "城乡居民医保资金"
