"""The engagement list's total reads counts kept on write (issue 18): ``engagement_count`` always equals the number
of engagements of each bureau — after ORM writes, a rollback, bulk statements through the session and the
migration's fill — and the list (web and API) shows the total it showed before, for every scope, with and
without filters."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import permissions, summaries
from evalhub.core.listing import Listing, page_rows
from evalhub.extensions import db
from evalhub.procurement import counts
from evalhub.core.enums import Field
from evalhub.procurement.models import (
    BudgetKind, Engagement, EngagementCount, EngagementState, EvaluationPlan, ObjectType, PlanItem, ServiceKind,
)
from evalhub.procurement.views import ENGAGEMENT_FILTERS
from tests import factories, migration_files
from tests.kept_states import kept

MIGRATION = "f5c8a1d3b7e2_engagement_count.py"


def _live() -> dict[int, int]:
    rows = db.session.execute(sa.select(Engagement.bureau_id, sa.func.count()).group_by(Engagement.bureau_id))
    return {b: n for b, n in rows}


def _kept() -> dict[int, int]:
    return {b: n for b, n in db.session.execute(sa.select(EngagementCount.bureau_id, EngagementCount.n))}


def _committed_equal() -> dict[int, int]:
    db.session.commit()
    kept = _kept()
    assert kept == _live()
    assert all(n > 0 for n in kept.values())  # no row for a count of 0
    return kept


def _spread(world) -> list[Engagement]:
    """Engagements of four bureaus at three levels, two years, written by the ORM (plans and items too)."""
    made = []
    for key, unit, n in [("bz", "巴州统计局", 3), ("bz", "巴州民政局", 1), ("lt", "轮台县医疗保障局", 2),
                         ("kz", "克州农业农村局", 2), ("region", "巴州统计局", 1)]:
        for i in range(n):
            made.append(factories.engagement(world, bureau_key=key, unit=unit, year=2024 + i % 2))
    return made


def test_the_counts_follow_writes_deletes_moves_and_rollbacks(world):
    bz, lt, kz, region = world.bz.id, world.lt.id, world.kz.id, world.region.id
    made = _spread(world)
    assert _committed_equal() == {bz: 4, lt: 2, kz: 2, region: 1}

    db.session.delete(made[0])  # an ORM delete
    assert _committed_equal() == {bz: 3, lt: 2, kz: 2, region: 1}
    db.session.delete(made[-1])  # the last of a bureau: its row goes
    assert _committed_equal() == {bz: 3, lt: 2, kz: 2}

    moved = made[4]  # one of 轮台县's, moved to 库尔勒市 (the ORM's UPDATE of bureau_id)
    assert moved.bureau_id == lt
    moved.bureau_id = world.krl.id
    assert _committed_equal() == {bz: 3, lt: 1, kz: 2, world.krl.id: 1}

    moved.state = EngagementState.PROCURING  # a state change counts nothing again
    db.session.flush()
    assert not counts.ENGAGEMENTS.pending(db.session)
    _committed_equal()

    # added, then rolled back: the counts as they were, and nothing waiting
    factories.engagement(world, bureau_key="kz", unit="克州农业农村局")
    db.session.flush()
    assert counts.ENGAGEMENTS.pending(db.session) == {(kz,)}
    db.session.rollback()
    assert not counts.ENGAGEMENTS.pending(db.session)
    assert _committed_equal() == {bz: 3, lt: 1, kz: 2, world.krl.id: 1}

    # read in the same transaction, before the commit: the total counts this transaction's own engagement
    added = factories.engagement(world, bureau_key="kz", unit="克州农业农村局")
    assert _list_total(world.kz_admin) == 3
    assert _committed_equal()[kz] == 3
    listing = Listing(permissions.scope(world.kz_admin, sa.select(Engagement), Engagement), args={})
    db.session.delete(added)  # not flushed yet when the total is asked for
    assert page_rows(listing.stmt, 1, 20, total=counts.list_total(world.kz_admin, listing))[1] == 2
    assert _committed_equal()[kz] == 2


def _plan_items(world, key: str, n: int) -> list[int]:
    """``n`` plan items of ``key``'s 2023 plan, written by Core statements."""
    plan = EvaluationPlan(bureau_id=getattr(world, key).id, year=2023)
    db.session.add(plan)
    db.session.flush()
    db.session.execute(PlanItem.__table__.insert(), [dict(
        plan_id=plan.id, position=i, name=f"批量项目{i}", object_type=ObjectType.PROJECT, budget_kind=BudgetKind.GENERAL,
        field=Field.FINANCE, service_kind=ServiceKind.KEY_EVALUATION, amount=Decimal("1000000"),
        budget_unit_id=world.units["巴州统计局"].id, commissioner_unit_id=None, reason="批量") for i in range(n)])
    return list(db.session.execute(sa.select(PlanItem.id).where(PlanItem.plan_id == plan.id).order_by(PlanItem.id))
                .scalars())


def _rows(world, key: str, items: list[int], tag: str) -> list[dict]:
    bureau = getattr(world, key)
    return [dict(plan_item_id=i, bureau_id=bureau.id, year=2023, reference=f"{bureau.code}-{tag}-{i:05d}",
                 name=f"批量任务{i}", service_kind=ServiceKind.KEY_EVALUATION, field=Field.FINANCE,
                 amount=Decimal("1000000"), budget_unit_id=world.units["巴州统计局"].id, firm_id=None,
                 state=EngagementState.PLANNED, due_on=None) for i in items]


def test_bulk_statements_through_the_session_are_counted(world):
    """The province bench inserts engagements with Core executemany (every row names its bureau); ORM bulk
    inserts, DELETE statements and an UPDATE that moves rows between bureaus are noted too."""
    table = Engagement.__table__
    bz_items, kz_items = _plan_items(world, "bz", 6), _plan_items(world, "kz", 4)
    db.session.execute(table.insert(), _rows(world, "bz", bz_items[:4], "core") + _rows(world, "kz", kz_items[:3], "core"))
    assert _committed_equal() == {world.bz.id: 4, world.kz.id: 3}

    db.session.execute(sa.insert(Engagement), _rows(world, "bz", bz_items[4:], "orm") + _rows(world, "kz", kz_items[3:], "orm"))
    assert _committed_equal() == {world.bz.id: 6, world.kz.id: 4}

    db.session.execute(sa.delete(Engagement).where(Engagement.reference.like("%-orm-%")))
    assert _committed_equal() == {world.bz.id: 4, world.kz.id: 3}

    db.session.execute(sa.update(Engagement).where(Engagement.plan_item_id.in_(kz_items[:2]))
                       .values(bureau_id=world.ats.id))
    assert _committed_equal() == {world.bz.id: 4, world.kz.id: 1, world.ats.id: 2}

    # a statement that moves no engagement between bureaus recounts nothing
    db.session.execute(sa.update(Engagement).values(state=EngagementState.PROCURING))
    assert not counts.ENGAGEMENTS.pending(db.session)
    db.session.execute(sa.delete(Engagement))
    assert counts.ENGAGEMENTS.pending(db.session) == summaries.ALL  # no WHERE: every bureau
    assert _committed_equal() == {}


def _list_total(user, args: dict | None = None):
    listing = Listing(permissions.scope(user, sa.select(Engagement), Engagement), *ENGAGEMENT_FILTERS, args=args or {})
    return page_rows(listing.stmt, 1, 20, total=counts.list_total(user, listing))[1]


def _counted(user, args: dict, bureau_id: int | None = None) -> int:
    """What the list counted before: every engagement in the user's scope that the filters keep."""
    stmt = sa.select(Engagement) if bureau_id is None else sa.select(Engagement).where(Engagement.bureau_id == bureau_id)
    listing = Listing(permissions.scope(user, stmt, Engagement), *ENGAGEMENT_FILTERS, args=args)
    return db.session.execute(sa.select(sa.func.count()).select_from(listing.where.subquery())).scalar_one()


WEB_FILTERS = [{}, {"year": "2024"}, {"state": "contracted"}, {"q": "统计"}, {"overdue": "1"}, {"year": "abc"}]
API_FILTERS = [{}, {"year": "2025"}, {"state": "planned"}, {"bureau": "652822"}, {"q": "民政"}]


@pytest.fixture
@kept
def spread(world):
    _spread(world)
    factories.contracted(world)  # one for the world's firm
    factories.contracted(world, firm=world.other_firm, bureau_key="kz", unit="克州农业农村局")
    db.session.commit()
    return world


def _users(w):
    # (user, whether the kept counts can say the unfiltered total)
    return [(w.sysadmin, True), (w.region_admin, True), (w.bz_admin, True), (w.bz_staff, True), (w.lt_staff, True),
            (w.krl_admin, True), (w.kz_admin, True), (w.ats_staff, True), (w.firm_user, False),
            (w.other_firm_user, False)]


def test_the_total_is_the_count_for_every_scope_with_and_without_filters(spread):
    for user, kept in _users(spread):
        unfiltered = Listing(permissions.scope(user, sa.select(Engagement), Engagement), *ENGAGEMENT_FILTERS, args={})
        assert (counts.list_total(user, unfiltered) is not None) == kept, user.username
        filtered = Listing(permissions.scope(user, sa.select(Engagement), Engagement), *ENGAGEMENT_FILTERS,
                           args={"year": "2024"})
        assert counts.list_total(user, filtered) is None, user.username
        for args in WEB_FILTERS:
            assert _list_total(user, args) == _counted(user, args), (user.username, args)
    assert _counted(spread.sysadmin, {}) == 11 and _counted(spread.firm_user, {}) == 1


def _shown(html: str) -> int:
    return int(re.search(r"共 (\d+) 条", html).group(1))


def test_the_pages_show_the_count_on_the_web_and_the_api(spread, login, auth):
    for user, _ in _users(spread):
        client = login(user)
        for args in WEB_FILTERS:
            for page in ("1", "9"):  # a page past the end has no row to carry the total
                response = client.get("/engagements", query_string={**args, "page": page})
                assert response.status_code == 200, (user.username, args)
                assert _shown(response.get_data(as_text=True)) == _counted(user, args), (user.username, args, page)
        headers = auth(user.username)
        for args in API_FILTERS:
            for page in ("1", "9"):
                response = client.get("/api/v1/engagements", query_string={**args, "page": page}, headers=headers)
                assert response.status_code == 200, (user.username, args, response.get_data(as_text=True))
                # the API's bureau filter names 轮台县 by its region code
                counted = _counted(user, {k: v for k, v in args.items() if k != "bureau"},
                                   spread.lt.id if "bureau" in args else None)
                assert response.json["total"] == counted, (user.username, args, page)
    # the API still refuses a bad filter (422) before counting
    response = login(spread.region_admin).get("/api/v1/engagements?year=abc", headers=auth("region.admin"))
    assert response.status_code == 422


def test_the_migrations_fill_counts_the_same(spread):
    kept = _kept()
    assert kept == _live() and kept
    migration_files.refill(MIGRATION, EngagementCount)
    assert _kept() == kept == _live()
    db.session.commit()
