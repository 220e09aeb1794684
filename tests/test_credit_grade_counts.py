"""The dashboard's grade chart reads counts kept on write (issue 18): ``credit_grade_count`` always equals the
aggregate of ``credit_rating`` it replaces — after every step of a rating's life, a deleted rating, bulk
statements and the migration's fill — and the chart shows the numbers it showed before, in every scope."""
from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from evalhub.core.settings import set_setting
from evalhub.credit import services as C
from evalhub.credit.models import CreditGrade, CreditGradeCount, CreditRating, RatingStatus
from evalhub.credit.views import dashboard_counts
from evalhub.core import permissions
from evalhub.dashboard import _count_statement, _read_counts
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState as S
from tests import factories, migration_files

MIGRATION = "d7f1a3c5e8b2_credit_grade_count.py"


def _count(parts: dict) -> dict:
    """The dashboard's counts of ``parts``, as it reads them."""
    return _read_counts(*_count_statement(parts), {})


def _live() -> dict:
    """What the dashboard counted before: published or final rated ratings by (bureau, year, grade)."""
    rows = db.session.execute(sa.select(CreditRating.bureau_id, CreditRating.year, CreditRating.grade,
                                        sa.func.count()).where(
        CreditRating.status.in_([RatingStatus.PUBLISHED, RatingStatus.FINAL]), CreditRating.rated.is_(True),
        CreditRating.grade.is_not(None)).group_by(CreditRating.bureau_id, CreditRating.year, CreditRating.grade))
    return {(b, y, g): n for b, y, g, n in rows}


def _kept() -> dict:
    rows = db.session.execute(sa.select(CreditGradeCount.bureau_id, CreditGradeCount.year, CreditGradeCount.grade,
                                        CreditGradeCount.n))
    return {(b, y, g): n for b, y, g, n in rows}


def _committed_equal() -> dict:
    db.session.commit()
    kept = _kept()
    assert kept == _live()
    assert all(n > 0 for n in kept.values())  # no row for a count of 0
    return kept


def _late_plan(world, unit: str):
    """An accepted engagement of world.firm whose work plan shows as submitted after its due date."""
    e = factories.contracted(world, unit=unit)
    e.contract.plan_due = date(2025, 4, 10)
    submission = factories.submit_plan(e)
    submission.submitted_at = datetime(2025, 6, 1, 3, 0)
    e.state = S.ACCEPTED
    db.session.flush()
    return submission


def test_the_counts_follow_a_ratings_life_and_a_deleted_rating(world):
    C.ensure_national_calendar()
    set_setting(world.bz, "credit.cut_b", 70, world.bz_admin)  # so that the upheld objection changes the grade
    late = [_late_plan(world, "巴州统计局"), _late_plan(world, "巴州民政局")]
    lt_firm, _, _ = factories.bidder(world, "另一家巴州评价公司")
    factories.contracted(world, firm=lt_firm, unit="轮台县医疗保障局", bureau_key="lt").state = S.ACCEPTED
    factories.contracted(world, firm=world.other_firm, unit="克州农业农村局", bureau_key="kz").state = S.ACCEPTED
    bz, kz = world.bz.id, world.kz.id

    ratings = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}
    C.compute(world.kz, 2025, world.kz_admin)
    assert _committed_equal() == {}  # drafts are not counted
    C.publish(world.bz, 2025, world.bz_admin, today=date(2025, 9, 25))
    C.publish(world.kz, 2025, world.kz_admin, today=date(2025, 9, 25))
    # 巴州 (its B line at 70): 67 → C, 76 → B; 克州 (the default 80): 76 → C
    assert _committed_equal() == {(bz, 2025, CreditGrade.C): 1, (bz, 2025, CreditGrade.B): 1, (kz, 2025, CreditGrade.C): 1}

    # an upheld objection corrects the late plans: 67 (C) → 76 (B), republished
    rating = ratings[world.firm.id]
    assert rating.grade == CreditGrade.C
    refs = [f"submission:{s.id}" for s in late]
    objection = C.object_to(rating, world.firm_user, "两份实施方案于 2025-04-10 邮寄报送，系统显示的是迁移日期。",
                            [("邮寄回执.txt", "EMS 回执".encode())], component="performance", records=refs,
                            today=date(2025, 9, 26))
    C.answer(objection, world.bz_admin, "异议成立", "经核实邮寄回执，两份方案均按期报送，予以更正。",
             corrections={ref: "2025-04-10" for ref in refs}, today=date(2025, 9, 29))
    assert objection.grade_before == CreditGrade.C and rating.grade == CreditGrade.B
    # read in the same transaction, before the commit: the dashboard recounts this transaction's changes first
    counted = _count({"g": dashboard_counts(world.region_admin)["credit_grades"]})["g"]
    assert counted == {("B", 2025): 2, ("C", 2025): 1}
    assert _committed_equal() == {(bz, 2025, CreditGrade.B): 2, (kz, 2025, CreditGrade.C): 1}

    assert C.finalise(world.bz, 2025, world.bz_admin, today=date(2025, 12, 1)) == 2
    assert _committed_equal() == {(bz, 2025, CreditGrade.B): 2, (kz, 2025, CreditGrade.C): 1}
    C.compute(world.bz, 2025, world.bz_admin)  # final ratings are history: nothing changes
    assert _committed_equal() == {(bz, 2025, CreditGrade.B): 2, (kz, 2025, CreditGrade.C): 1}

    # a rating deleted, then computed anew (a draft), then published again
    db.session.delete(db.session.execute(sa.select(CreditRating).where(CreditRating.bureau_id == kz)).scalar_one())
    assert _committed_equal() == {(bz, 2025, CreditGrade.B): 2}
    C.compute(world.kz, 2025, world.kz_admin)
    assert _committed_equal() == {(bz, 2025, CreditGrade.B): 2}
    C.publish(world.kz, 2025, world.kz_admin, today=date(2025, 12, 2))
    assert _committed_equal() == {(bz, 2025, CreditGrade.B): 2, (kz, 2025, CreditGrade.C): 1}

    # a rolled-back change leaves the counts as they were, and nothing waiting
    rating.grade = CreditGrade.D
    db.session.flush()
    db.session.rollback()
    assert not C.GRADE_COUNTS.pending(db.session)
    assert _committed_equal() == {(bz, 2025, CreditGrade.B): 2, (kz, 2025, CreditGrade.C): 1}


def _grid(world) -> None:
    """Ratings over bureaus at every level, years, statuses and grades, written by the ORM."""
    firms = [world.firm, world.other_firm] + [factories.firm(world.bz, name=f"巴州计数评价咨询公司{i}") for i in range(3)]
    bureaus = [world.region, world.bz, world.lt, world.krl, world.kz, world.ats]
    statuses = [RatingStatus.FINAL, RatingStatus.PUBLISHED, RatingStatus.DRAFT]
    grades = [CreditGrade.A, CreditGrade.B, CreditGrade.C, CreditGrade.D]
    n = 0
    for b in bureaus:
        for year in (2022, 2023, 2024):
            for f in firms:
                n += 1
                rated = n % 7 != 0
                db.session.add(CreditRating(bureau_id=b.id, firm_id=f.id, year=year, status=statuses[n % 3],
                                            rated=rated, total=Decimal("70") if rated else None,
                                            grade=grades[(n * 5) % 4] if rated else None, components=[]))
    db.session.commit()


def _old_counts(user) -> dict:
    """The dashboard's former statement for the chart, over credit_rating in the user's scope."""
    return _count({"g": permissions.scope(user, sa.select(
        CreditRating.grade, CreditRating.year, sa.func.count(CreditRating.id)).where(
        CreditRating.status.in_([RatingStatus.PUBLISHED, RatingStatus.FINAL]), CreditRating.rated.is_(True),
        CreditRating.grade.is_not(None)).group_by(CreditRating.year, CreditRating.grade), CreditRating)})["g"]


def test_the_chart_shows_what_it_showed_before_in_every_scope(world, login):
    _grid(world)
    assert _kept() == _live()
    users = [world.sysadmin, world.region_admin, world.bz_admin, world.bz_staff, world.lt_staff, world.krl_admin,
             world.kz_admin, world.ats_staff]
    for user in users:
        before = _old_counts(user)
        assert before, user.username
        assert _count({"g": dashboard_counts(user)["credit_grades"]})["g"] == before, user.username

    before = _old_counts(world.region_admin)
    page = login(world.region_admin).get("/").get_data(as_text=True)
    found = re.search(r'<script type="application/json" id="credit-chart-data">(.*?)</script>', page, re.S)
    chart = json.loads(found.group(1))
    assert chart["labels"] == ["2022", "2023", "2024"]
    for dataset in chart["datasets"]:
        assert dataset["data"] == [before.get((dataset["grade"], y), 0) for y in (2022, 2023, 2024)]


def test_bulk_statements_through_the_session_are_counted(world):
    """The province bench inserts ratings with Core executemany; UPDATE and DELETE statements are noted too."""
    table = CreditRating.__table__
    rows = [dict(bureau_id=b.id, firm_id=f.id, year=year, status=RatingStatus.FINAL, rated=True, total=Decimal("80"),
                 grade=CreditGrade.B if year % 2 else CreditGrade.A, components=[], watch_list=False, version=1,
                 computed_at=datetime(2025, 1, 1))
            for b in (world.bz, world.kz) for f in (world.firm, world.other_firm) for year in (2020, 2021, 2022)]
    db.session.execute(table.insert(), rows)
    assert len(_committed_equal()) == 6  # 2 bureaus × 3 years, one grade each

    db.session.execute(sa.update(CreditRating).where(CreditRating.bureau_id == world.kz.id, CreditRating.year == 2021)
                       .values(grade=CreditGrade.D))
    kept = _committed_equal()
    assert kept[(world.kz.id, 2021, CreditGrade.D)] == 2 and (world.kz.id, 2021, CreditGrade.B) not in kept

    db.session.execute(sa.update(CreditRating).where(CreditRating.year == 2020).values(year=2019))
    assert (world.bz.id, 2019, CreditGrade.A) in _committed_equal()

    db.session.execute(sa.delete(CreditRating).where(CreditRating.bureau_id == world.bz.id,
                                                     CreditRating.firm_id == world.firm.id))
    kept = _committed_equal()
    assert kept[(world.bz.id, 2022, CreditGrade.A)] == 1

    # a statement that moves no counted column (a deadline) recounts nothing
    db.session.execute(sa.update(CreditRating).values(objection_deadline=date(2025, 1, 1)))
    assert not C.GRADE_COUNTS.pending(db.session)
    _committed_equal()


def test_the_migrations_fill_counts_the_same(world):
    _grid(world)
    kept = _kept()
    migration_files.refill(MIGRATION, CreditGradeCount)
    assert _kept() == kept == _live()
    db.session.commit()
