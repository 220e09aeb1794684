"""``Engagement.due_on`` (issue 18): the stored date the waiting step is due equals the rule derived from its
sources — the contract's plan or report date, the latest returned panel's rectification deadline, or an award's
last day for the contract (30 days from its notice) — after
every step an engagement can take; the migration's backfill derives the same dates; the overdue list follows."""
from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from evalhub.core.timeutil import to_beijing
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.models import Contract, Engagement, EngagementState as S
from evalhub.registry.models import FirmStatus
from evalhub.review import services as R
from tests import factories, migration_files

MIGRATION = "c4e8a2f6d1b3_engagement_due_on.py"


def derived() -> dict[int, date | None]:
    """The rule from its sources, as the overdue rule read them before the date was stored: per engagement, the
    contract's date for the step its state waits on, replaced by the latest returned panel's deadline (a
    Beijing date) when it is returned; None when it waits on nothing."""
    rows = db.session.execute(sa.select(Engagement, Contract.plan_due, Contract.report_due,
                                        workflow._resubmission_due_expr())
                              .outerjoin(Contract, Contract.engagement_id == Engagement.id)).all()
    out = {}
    for engagement, plan_due, report_due, resubmit in rows:
        id_, state = engagement.id, engagement.state
        if state == S.PROCURING:  # awarded: 30 days from the standing notice (政府采购法 第四十六条); else nothing
            published = workflow.standing_notice_published_at(engagement)
            out[id_] = workflow.contract_due(engagement.bureau, published) if published is not None else None
        elif state in (S.PLAN_RETURNED, S.REPORT_RETURNED) and resubmit is not None:
            out[id_] = to_beijing(resubmit).date()
        elif state in (S.CONTRACTED, S.PLAN_RETURNED):
            out[id_] = plan_due
        elif state in (S.FIELDWORK, S.REPORT_RETURNED):
            out[id_] = report_due
        else:
            out[id_] = None
    return out


def stored() -> dict[int, date | None]:
    db.session.flush()
    return dict(db.session.execute(sa.select(Engagement.id, Engagement.due_on)).all())


def assert_consistent() -> dict[int, date | None]:
    now = stored()
    assert now == derived()
    return now


def overdue_ids(day: date) -> set[int]:
    return set(db.session.execute(sa.select(Engagement.id).where(workflow.overdue_clause(day))).scalars())


def test_the_stored_date_follows_every_step(world):
    staff = world.bz_staff
    plan_late = factories.contracted(world)                        # plan due 2025-04-01
    assert plan_late.due_on == date(2025, 4, 1)
    assert_consistent()

    plan_back = factories.contracted(world)                        # plan returned, then resubmitted
    factories.submit_plan(plan_back)
    assert plan_back.due_on is None                                # waits on the bureau now
    assert_consistent()
    factories.returned(plan_back, staff)
    assert plan_back.state == S.PLAN_RETURNED
    assert plan_back.due_on == R.resubmission_due(plan_back) and plan_back.due_on != date(2025, 4, 1)
    assert_consistent()
    factories.submit_plan(plan_back)
    assert plan_back.state == S.PLAN_SUBMITTED and plan_back.due_on is None
    assert_consistent()

    report_back = factories.in_fieldwork(world)                   # report due 2025-10-31
    assert report_back.due_on == date(2025, 10, 31)
    factories.submit_report(report_back)
    factories.returned(report_back, staff)
    assert report_back.state == S.REPORT_RETURNED and report_back.due_on == R.resubmission_due(report_back)
    assert_consistent()
    factories.submit_report(report_back)                           # the rectified report
    assert report_back.state == S.REPORT_SUBMITTED and report_back.due_on is None
    assert_consistent()
    panel = factories.returned(report_back, staff)                            # returned again: the new deadline
    assert report_back.due_on == to_beijing(panel.resubmit_due).date()
    assert_consistent()

    awarded = factories.engagement(world)                          # awarded, no contract yet
    other = factories.firm(world.bz, FirmStatus.ADMITTED, name="巴州另一评价咨询有限公司")  # the first is at its cap
    procurement = factories.single_source(world, awarded, firm=other)
    assert awarded.state == S.PROCURING and awarded.due_on == workflow.contract_due(
        world.bz, procurement.notice.published_at)
    assert_consistent()

    accepted = factories.accepted(world)
    assert accepted.state == S.ACCEPTED and accepted.due_on is None
    ended = factories.in_fieldwork(world)
    workflow.perform(ended, "cancel", world.bz_admin, note="项目终止")
    assert ended.due_on is None
    now = assert_consistent()
    assert {plan_late.id: date(2025, 4, 1)}.items() <= now.items()

    # the migration's backfill derives the same dates for rows written before the column existed
    db.session.execute(sa.update(Engagement).values(due_on=None))
    migration = migration_files.load(MIGRATION)
    db.session.execute(sa.text(migration.backfill_sql(db.engine.dialect.name)))
    db.session.expire_all()
    # an award made before the contract's date was stored gets it from the hourly contract reminder
    from evalhub.procurement import services as P

    P.remind_contracts_overdue()
    assert stored() == now

    # the overdue list (SQL) and the worded reasons pick the same engagements, on each side of each date
    everyone = db.session.execute(sa.select(Engagement)).scalars().all()
    for due in {d for d in now.values() if d is not None}:
        for day in (due - timedelta(days=1), due, due + timedelta(days=1)):
            assert overdue_ids(day) == set(workflow.overdue_reasons(everyone, day)), day


def test_the_reasons_keep_their_words(world):
    plan_late = factories.contracted(world)
    assert workflow.overdue_reason(plan_late, date(2025, 4, 3)) == "实施方案应于 2025-04-01 前提交，已逾期 2 天"
    assert workflow.overdue_reason(plan_late, date(2025, 4, 1)) is None
    in_field = factories.in_fieldwork(world)
    assert workflow.overdue_reason(in_field, date(2025, 11, 1)) == "评价报告应于 2025-10-31 前提交，已逾期 1 天"
    factories.submit_report(in_field)
    factories.returned(in_field, world.bz_staff)
    due = R.resubmission_due(in_field)
    assert workflow.overdue_reason(in_field, due + timedelta(days=3)) == \
        f"整改稿应于 {due:%Y-%m-%d} 前重新提交，已逾期 3 天"


def test_a_resubmitted_engagement_leaves_the_overdue_list(world):
    e = factories.contracted(world)
    factories.submit_plan(e)
    factories.returned(e, world.bz_staff)
    late = e.due_on + timedelta(days=5)
    assert e.id in overdue_ids(late)
    factories.submit_plan(e)
    assert e.id not in overdue_ids(late) and workflow.overdue_reason(e, late) is None


def test_a_changed_contract_deadline_moves_it(world):
    e = factories.contracted(world)
    assert e.id in overdue_ids(date(2025, 4, 10))
    e.contract.plan_due = date(2025, 4, 30)  # a contract's dates change: the writer refreshes the stored date
    workflow.refresh_due(e)
    assert_consistent()
    assert e.id not in overdue_ids(date(2025, 4, 10)) and e.id in overdue_ids(date(2025, 5, 1))
    assert workflow.overdue_reason(e, date(2025, 5, 1)) == "实施方案应于 2025-04-30 前提交，已逾期 1 天"
