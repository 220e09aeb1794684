"""The screening queue's page walks the ranking and reads its lengths from counts kept on write (issue 18): the
same rows, ranks, marks and numbers as ranking the whole year, and counts that follow every way a screening is
written (a new version, a deletion, a bulk insert, a rollback, a reader in the writing transaction)."""
from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.review.models import Submission, SubmissionKind
from evalhub.screening import services as S
from evalhub.screening.models import ReportScreening, RiskMethod, ScreeningQueueCount
from tests import factories, migration_files

REPORT, PLAN = SubmissionKind.REPORT, SubmissionKind.WORK_PLAN
_n = itertools.count(1)


def _screening(e, kind: SubmissionKind, risk: float, *, version: int = 1) -> ReportScreening:
    """A screened submission of ``e`` (written directly: the risk is the test's, not the screening's)."""
    stored = files.store("报告.txt", f"文本{next(_n)}".encode(), allowed=("txt",))
    submission = Submission(engagement_id=e.id, kind=kind, version=version, file_id=stored.id, machine_checks=[],
                            submitted_at=utcnow())
    db.session.add(submission)
    db.session.flush()
    row = ReportScreening(submission_id=submission.id, engagement_id=e.id, bureau_id=e.bureau_id, firm_id=None,
                          kind=kind, year=e.year, object_key=f"{e.id}", submitted_at=utcnow(), sentence_keys=b"",
                          signature=b"", features={}, details={}, passages=[], reasons=[], risk=risk,
                          method=RiskMethod.RULE)
    db.session.add(row)
    db.session.flush()
    return row


def _queue_of_ties(world):
    """Reports and work plans in 巴州, 轮台县 and 克州 with tied risks, earlier versions riskier than the latest
    (they leave the queue), and a report of another year."""
    risks = [0.9, 0.5, 0.5, 0.5, 0.2, 0.9, 0.1, 0.5, 0.7, 0.3]
    places = [("bz", "巴州统计局"), ("lt", "轮台县医疗保障局"), ("kz", "克州农业农村局")]
    for i, risk in enumerate(risks):
        key, unit = places[i % 3]
        e = factories.engagement(world, bureau_key=key, unit=unit)
        _screening(e, PLAN, round(1 - risk, 1))
        if i % 4 == 0:
            _screening(e, REPORT, 0.99, version=1)  # superseded by the next version
            _screening(e, REPORT, risk, version=2)
        else:
            _screening(e, REPORT, risk)
    _screening(factories.engagement(world, year=2024), REPORT, 0.95)
    db.session.commit()


def _expected(user, kind, page, per_page):
    """What ranking the whole year gives (``queue``: the ranking window over every screening in scope)."""
    entries = S.queue(user, year=2025, kind=kind, fill=False)
    shown = entries[(page - 1) * per_page:page * per_page]
    return ([(e.rank, e.screening_id, e.flagged) for e in shown], len(entries), sum(e.flagged for e in entries))


@pytest.mark.parametrize("share", [10, 35])
def test_a_queue_page_is_the_page_of_the_whole_ranking(world, share):
    _queue_of_ties(world)
    set_setting(world.region, "screening.spot_check_share", share, world.region_admin)
    set_setting(world.bz, "screening.spot_check_share", share, world.bz_admin)
    db.session.commit()
    for user in (world.bz_staff, world.region_staff, world.sysadmin, world.kz_staff):
        for kind in (None, REPORT, PLAN):
            for per_page in (1, 3, 7, 50):
                for page in range(1, 26 // per_page + 3):
                    got = S.queue_page(user, year=2025, kind=kind, page=page, per_page=per_page)
                    rows, total, flagged = _expected(user, kind, page, per_page)
                    assert ([(e.rank, e.screening_id, e.flagged) for e in got.entries], got.total, got.flagged) \
                        == (rows, total, flagged), (user.username, kind, page, per_page)
    region = S.queue_page(world.region_staff, year=2025, page=1, per_page=50)
    assert region.total == 20 and {e.shown.kind for e in region.entries} == {REPORT, PLAN}
    assert 0.99 not in {e.risk for e in region.entries}  # the superseded versions are not queued


def test_a_page_built_once_reads_the_queue_as_it_is_at_each_request(world):
    # the page's statements are kept per scope, year, kinds and page (``permissions.kept``): a screening written
    # after the first request is on the next one, in its place
    _queue_of_ties(world)
    first = S.queue_page(world.bz_staff, year=2025, kind=REPORT, page=1, per_page=3)
    riskiest = _screening(factories.engagement(world), REPORT, 0.97)
    db.session.commit()
    again = S.queue_page(world.bz_staff, year=2025, kind=REPORT, page=1, per_page=3)
    assert again.entries[0].screening_id == riskiest.id and again.total == first.total + 1
    assert [e.screening_id for e in again.entries[1:]] == [e.screening_id for e in first.entries[:2]]
    assert ([(e.rank, e.screening_id, e.flagged) for e in again.entries], again.total) \
        == _expected(world.bz_staff, REPORT, 1, 3)[:2]


def _counts() -> dict[tuple[int, str, int], int]:
    qc = ScreeningQueueCount
    return {(y, k.value, b): n for y, k, b, n in db.session.execute(sa.select(qc.year, qc.kind, qc.bureau_id, qc.n))}


def _recounted() -> dict[tuple[int, str, int], int]:
    """The latest version of each engagement's text per (year, kind, bureau), counted from the screenings."""
    latest: dict[tuple, ReportScreening] = {}
    for row in db.session.execute(sa.select(ReportScreening)).scalars():
        key = (row.engagement_id, row.kind, row.year)
        if key not in latest or row.submission_id > latest[key].submission_id:
            latest[key] = row
    out: dict[tuple[int, str, int], int] = {}
    for row in latest.values():
        out[(row.year, row.kind.value, row.bureau_id)] = out.get((row.year, row.kind.value, row.bureau_id), 0) + 1
    return out


def test_the_counts_follow_every_write(world):
    _queue_of_ties(world)
    assert _counts() == _recounted() and _counts()[(2025, "report", world.bz.id)] == 4

    # a new version replaces the engagement's earlier one: the count stays
    e = factories.engagement(world)
    _screening(e, REPORT, 0.4)
    db.session.commit()
    before = _counts()[(2025, "report", world.bz.id)]
    _screening(e, REPORT, 0.6, version=2)
    db.session.commit()
    assert _counts() == _recounted() and _counts()[(2025, "report", world.bz.id)] == before

    # rescored risks move no count; a deleted screening leaves the count
    S.rescore()
    db.session.commit()
    assert _counts() == _recounted()
    latest = db.session.execute(sa.select(ReportScreening).where(ReportScreening.engagement_id == e.id)
                                .order_by(ReportScreening.submission_id.desc())).scalars().first()
    db.session.delete(latest)
    db.session.commit()
    assert _counts() == _recounted() and _counts()[(2025, "report", world.bz.id)] == before  # version 1 is back

    # a bulk insert through the session (as the province bench loads), counted at the commit
    other = factories.engagement(world, bureau_key="kz", unit="克州农业农村局", year=2023)
    source = _screening(factories.engagement(world, year=2022), REPORT, 0.3)
    values = {c.key: getattr(source, c.key) for c in ReportScreening.__table__.c if c.key != "id"}
    db.session.execute(sa.delete(ReportScreening).where(ReportScreening.id == source.id))
    db.session.execute(sa.insert(ReportScreening), [{**values, "engagement_id": other.id, "bureau_id": world.kz.id,
                                                     "year": 2023}])
    db.session.commit()
    assert _counts() == _recounted() and _counts()[(2023, "report", world.kz.id)] == 1
    assert (2022, "report", world.bz.id) not in _counts()

    # a rolled-back screening counts nowhere; a reader in the writing transaction counts its own
    _screening(factories.engagement(world), REPORT, 0.5)
    db.session.rollback()
    assert _counts() == _recounted()
    _screening(factories.engagement(world), REPORT, 0.5)
    assert S.queue_counts(world.bz_staff, 2025, [REPORT])[REPORT] == _recounted()[(2025, "report", world.bz.id)] \
        + _recounted()[(2025, "report", world.lt.id)]
    db.session.commit()
    assert _counts() == _recounted()



def test_a_deleted_submission_recounts_the_queue(world):
    """A deleted submission takes its screening with it in the database (ON DELETE CASCADE), unseen by the
    session: everything is recounted. (SQLite, without foreign keys enforced here, keeps the screening.)"""
    _queue_of_ties(world)
    gone = _screening(factories.engagement(world), REPORT, 0.5)
    db.session.commit()
    db.session.delete(db.session.get(Submission, gone.submission_id))
    db.session.commit()
    db.session.expire_all()
    assert _counts() == _recounted()


def test_a_cards_rank_is_its_place_in_the_whole_ranking(world):
    _queue_of_ties(world)
    for user in (world.bz_staff, world.region_staff, world.kz_staff):
        for row in db.session.execute(sa.select(ReportScreening)).scalars():
            ranked = [e.screening_id for e in S.queue(user, year=row.year, kind=row.kind, fill=False)]
            # a superseded version or one outside the user's scope: after the last
            expected = ranked.index(row.id) + 1 if row.id in ranked else len(ranked) + 1
            assert S.rank_of(row, user) == (expected, len(ranked)), (user.username, row.id)


def test_the_migrations_fill_counts_the_same(world):
    """The migration fills the counts of screenings written before the table existed as the code keeps them."""
    _queue_of_ties(world)
    kept = _counts()
    assert kept == _recounted() and kept
    migration_files.refill("e4b7d2a9c6f3_screening_queue_count.py", ScreeningQueueCount)
    assert _counts() == kept
    db.session.commit()
    assert _counts() == kept
