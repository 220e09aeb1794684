"""The credit page's total reads counts kept on write (issue 18): ``credit_rating_count`` always equals the number
of ratings of each (bureau, year) — after ORM writes, deletes, moves between bureaus and years, a rollback, bulk
statements through the session and the migration's fill — and the page (and the API's rating list) shows the
total it counted before, for every scope, with and without filters, in as many statements however many ratings
there are."""
from __future__ import annotations

import contextlib
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import permissions, summaries
from evalhub.core.listing import Listing, page_rows
from evalhub.core.enums import Role
from evalhub.credit import services as C
from evalhub.credit.api import RATING_FILTERS as API_RATING_FILTERS, _shown_to
from evalhub.credit.models import CreditGrade, CreditRating, CreditRatingCount, RatingStatus
from evalhub.credit.views import RATING_FILTERS
from evalhub.extensions import db
from evalhub.core.listing import enum_filter
from evalhub.registry.models import Firm
from tests import factories, migration_files
from tests.kept_states import kept

MIGRATION = "c7a3e5f9d2b4_credit_rating_count.py"
FINAL, PUBLISHED, DRAFT = RatingStatus.FINAL, RatingStatus.PUBLISHED, RatingStatus.DRAFT


def _live() -> dict[tuple[int, int], int]:
    rows = db.session.execute(sa.select(CreditRating.bureau_id, CreditRating.year, sa.func.count())
                              .group_by(CreditRating.bureau_id, CreditRating.year))
    return {(b, y): n for b, y, n in rows}


def _kept() -> dict[tuple[int, int], int]:
    return {(b, y): n for b, y, n in db.session.execute(
        sa.select(CreditRatingCount.bureau_id, CreditRatingCount.year, CreditRatingCount.n))}


def _committed_equal() -> dict[tuple[int, int], int]:
    db.session.commit()
    kept = _kept()
    assert kept == _live()
    assert all(n > 0 for n in kept.values())  # no row for a count of 0
    return kept


def _rating(bureau, firm, year: int, status: RatingStatus = FINAL, grade: CreditGrade | None = CreditGrade.B,
            total: str | None = "85", watch: bool = False) -> CreditRating:
    rating = CreditRating(bureau_id=bureau.id, firm_id=firm.id, year=year, status=status, rated=grade is not None,
                          total=Decimal(total) if total is not None and grade is not None else None, grade=grade,
                          components=[], watch_list=watch, watch_reason="抽查发现问题" if watch else None)
    db.session.add(rating)
    return rating


def _firms(world) -> list[Firm]:
    """The world's two firms and three more of 巴州's library (their names tell them apart for ``?firm=``)."""
    more = [factories.firm(world.bz, name=f"巴州第{i}评价有限公司") for i in range(3)]
    return [world.firm, world.other_firm, *more]


def _spread(world) -> list[CreditRating]:
    """Ratings of every status at three levels and two years, written by the ORM."""
    a, b, c, d, e = _firms(world)
    return [
        _rating(world.bz, a, 2025, grade=CreditGrade.B), _rating(world.bz, c, 2025, PUBLISHED, CreditGrade.C, "70"),
        _rating(world.bz, d, 2025, DRAFT, CreditGrade.A, "95"), _rating(world.bz, e, 2025, FINAL, None),
        _rating(world.bz, a, 2024, grade=CreditGrade.A, total="92"),
        _rating(world.lt, a, 2025, DRAFT, None), _rating(world.lt, b, 2025, grade=CreditGrade.D, total="50"),
        _rating(world.krl, c, 2024),
        _rating(world.kz, b, 2025), _rating(world.kz, a, 2025, PUBLISHED, CreditGrade.C, "65", watch=True),
        _rating(world.ats, d, 2025, DRAFT),
        _rating(world.region, a, 2025, grade=CreditGrade.A, total="90"),
    ]


def test_the_counts_follow_writes_deletes_moves_and_rollbacks(world):
    bz, lt, krl, kz, ats, region = (getattr(world, k).id for k in ("bz", "lt", "krl", "kz", "ats", "region"))
    made = _spread(world)
    assert _committed_equal() == {(bz, 2025): 4, (bz, 2024): 1, (lt, 2025): 2, (krl, 2024): 1, (kz, 2025): 2,
                                  (ats, 2025): 1, (region, 2025): 1}

    db.session.delete(made[1])  # an ORM delete
    assert _committed_equal()[(bz, 2025)] == 3
    db.session.delete(made[-1])  # the last of a key: its row goes
    assert (region, 2025) not in _committed_equal()

    moved = made[6]  # 轮台县's 2025 rating of the other firm, moved to 库尔勒市 (the ORM's UPDATE of bureau_id)
    moved.bureau_id = krl
    kept = _committed_equal()
    assert kept[(lt, 2025)] == 1 and kept[(krl, 2025)] == 1
    moved.year = 2023  # and to another year
    kept = _committed_equal()
    assert (krl, 2025) not in kept and kept[(krl, 2023)] == 1

    # a rating's life (recomputed, published, graded, watched) moves no count: nothing waits for this count
    # (the grade chart's count has its own)
    rating = made[2]
    rating.status, rating.grade, rating.total, rating.watch_list, rating.version = \
        PUBLISHED, CreditGrade.B, Decimal("84"), True, 2
    db.session.flush()
    assert not C.RATING_COUNTS.pending(db.session)
    assert C.GRADE_COUNTS.pending(db.session)
    _committed_equal()

    # added, then rolled back: the counts as they were, and nothing waiting
    before = _committed_equal()
    _rating(world.ats, world.firm, 2025)
    db.session.flush()
    assert C.RATING_COUNTS.pending(db.session) == {(ats, 2025)}
    db.session.rollback()
    assert not C.RATING_COUNTS.pending(db.session)
    assert _committed_equal() == before

    # read in the same transaction, before the commit: the total counts this transaction's own ratings,
    # flushed or not
    # (the system admin's account loaded first: its scope then runs no statement that would flush the rating)
    assert world.sysadmin.role == Role.SYSTEM_ADMIN
    added = _rating(world.ats, world.firm, 2025)
    shown = _page_total(world.sysadmin, {"year": "2025"})
    assert shown == _counted(world.sysadmin, {"year": "2025"}) == 8
    assert _page_total(world.kz_admin, {"year": "2025"}) == 4  # 克州's two and 阿图什市's two
    assert _committed_equal()[(ats, 2025)] == 2
    assert world.sysadmin.role == Role.SYSTEM_ADMIN
    db.session.delete(added)  # not flushed when the total is asked for
    shown = _page_total(world.sysadmin, {"year": "2025"})
    assert shown == _counted(world.sysadmin, {"year": "2025"}) == 7
    assert _page_total(world.kz_admin, {"year": "2025"}) == 3
    assert _committed_equal()[(ats, 2025)] == 1


def _rows(world, firms: list[Firm], key: str, year: int, status: RatingStatus = FINAL) -> list[dict]:
    bureau = getattr(world, key)
    return [dict(bureau_id=bureau.id, firm_id=f.id, year=year, status=status, rated=True, total=Decimal("80"),
                 grade=CreditGrade.B, components=[], watch_list=False, version=1) for f in firms]


def test_bulk_statements_through_the_session_are_counted(world):
    """The province bench inserts ratings with Core executemany (every row names its bureau and year); ORM bulk
    inserts, DELETE statements and an UPDATE that moves ratings between years are noted too."""
    bz, kz = world.bz.id, world.kz.id
    firms = _firms(world)
    table = CreditRating.__table__
    db.session.execute(table.insert(), _rows(world, firms[:3], "bz", 2025) + _rows(world, firms[:2], "kz", 2025))
    assert _committed_equal() == {(bz, 2025): 3, (kz, 2025): 2}

    db.session.execute(sa.insert(CreditRating), _rows(world, firms, "bz", 2024, DRAFT) + _rows(world, firms[3:], "kz", 2025))
    assert _committed_equal() == {(bz, 2025): 3, (bz, 2024): 5, (kz, 2025): 4}

    db.session.execute(sa.delete(CreditRating).where(CreditRating.status == DRAFT))
    assert _committed_equal() == {(bz, 2025): 3, (kz, 2025): 4}

    db.session.execute(sa.update(CreditRating).where(CreditRating.bureau_id == kz, CreditRating.firm_id.in_(
        [f.id for f in firms[:2]])).values(year=2023))
    assert _committed_equal() == {(bz, 2025): 3, (kz, 2025): 2, (kz, 2023): 2}

    # a statement that moves no rating between bureaus or years recounts nothing
    db.session.execute(sa.update(CreditRating).values(status=PUBLISHED, watch_list=True))
    assert not C.RATING_COUNTS.pending(db.session)
    db.session.execute(sa.delete(CreditRating))
    assert C.RATING_COUNTS.pending(db.session) == summaries.ALL  # no WHERE: every key
    assert _committed_equal() == {}


# --- the totals shown -------------------------------------------------------------------------------

def _page_listing(user, args: dict) -> Listing:
    """The credit page's list (as ``credit.views.index`` builds it) for ``args`` with a year."""
    stmt = permissions.scope(user, sa.select(CreditRating), CreditRating).join(Firm, Firm.id == CreditRating.firm_id)
    return Listing(stmt.where(CreditRating.year == int(args["year"])), *RATING_FILTERS, args=args)


def _page_total(user, args: dict) -> int:
    """The page's total as the page asks for it: from the kept counts when only the year is set."""
    listing = _page_listing(user, args)
    kept = C.rating_total(user, int(args["year"])) if all(v is None for v in listing.values.values()) else None
    return page_rows(listing.stmt, 1, 20, late=CreditRating.id, total=kept)[1]


def _counted(user, args: dict) -> int:
    """What the page counted before: every rating of the year in scope, joined to its firm, that the filters keep."""
    listing = _page_listing(user, args)
    return db.session.execute(sa.select(sa.func.count()).select_from(listing.where.subquery())).scalar_one()


def _by_hand(user, year: int | None, hidden_firm: int | None = None) -> int:
    """The unfiltered total worked out apart from any statement the page builds: the ratings of the year whose
    bureau is in the user's tree (the system admin: all), less those of ``hidden_firm``."""
    ratings = db.session.execute(sa.select(CreditRating.bureau_id, CreditRating.year, CreditRating.firm_id)).all()
    tree = None if user.role == Role.SYSTEM_ADMIN else permissions.visible_bureau_ids(user)
    return sum(1 for b, y, f in ratings
               if (year is None or y == year) and (tree is None or b in tree) and f != hidden_firm)


@pytest.fixture
@kept
def spread(world):
    _spread(world)
    db.session.commit()
    return world


def _bureau_users(w):
    return [w.sysadmin, w.region_admin, w.region_staff, w.bz_admin, w.bz_staff, w.krl_admin, w.lt_staff,
            w.kz_admin, w.ats_staff]


WEB_FILTERS = [{"year": "2025"}, {"year": "2024"}, {"year": "2023"}, {"year": "2025", "grade": "B"},
               {"year": "2025", "grade": "none"}, {"year": "2025", "status": "draft"}, {"year": "2025", "watch": "1"},
               {"year": "2025", "firm": "第1"}, {"year": "2025", "grade": "nope"}, {"year": "2025", "status": "?"}]


def _bureau_filter(w) -> dict:
    return {"year": "2025", "bureau": str(w.lt.id)}


def test_the_total_is_the_count_for_every_scope_with_and_without_filters(spread):
    for user in _bureau_users(spread):
        assert C.rating_total(user, 2025) is not None, user.username  # the kept counts can say it
        for args in [*WEB_FILTERS, _bureau_filter(spread)]:
            assert _page_total(user, args) == _counted(user, args), (user.username, args)
        for year in (2025, 2024, 2023):
            assert _counted(user, {"year": str(year)}) == _by_hand(user, year), (user.username, year)
    assert _by_hand(spread.region_admin, 2025) == 10 and _by_hand(spread.bz_admin, 2025) == 6
    assert _by_hand(spread.lt_staff, 2025) == 2 and _by_hand(spread.kz_admin, 2025) == 3
    # a firm's scope is its own firm's ratings, not a tree of bureaus: the kept counts cannot say it
    assert C.rating_total(spread.firm_user, 2025) is None


@pytest.fixture
def other_shape(spread):
    """A restriction a higher module might register (hiding one firm's ratings from everyone): every scope is
    then "other", and the page counts as before."""
    hidden = spread.other_firm.id

    def hide(stmt):
        return stmt.where(CreditRating.firm_id != hidden)

    permissions.restrict(CreditRating, hide)
    try:
        yield spread
    finally:
        permissions.unrestrict(CreditRating, hide)


def _shown(html: str) -> int:
    return int(re.search(r"共 (\d+) 条", html).group(1))


def test_any_other_scope_counts_as_before(other_shape, login):
    w = other_shape
    assert _by_hand(w.region_admin, 2025, hidden_firm=w.other_firm.id) == _by_hand(w.region_admin, 2025) - 2
    for user in _bureau_users(w):
        assert permissions.tree_scope(user, CreditRating)[0] == "other"
        assert C.rating_total(user, 2025) is None, user.username
        client = login(user)
        for args in [{"year": "2025"}, {"year": "2024"}]:
            counted = _counted(user, args)
            assert counted == _by_hand(user, int(args["year"]), hidden_firm=w.other_firm.id)
            response = client.get("/credit", query_string=args)
            assert response.status_code == 200
            assert _shown(response.get_data(as_text=True)) == counted, (user.username, args)


def _api_counted(user, args: dict) -> int:
    """What the API's rating list counted before (``_shown_to``, the API's filters read as it reads them)."""
    listing = Listing(_shown_to(user, sa.select(CreditRating)), *API_RATING_FILTERS,
                      enum_filter("status", RatingStatus, CreditRating.status), strict=True, args=args)
    return db.session.execute(sa.select(sa.func.count()).select_from(listing.where.subquery())).scalar_one()


API_FILTERS = [{}, {"year": "2025"}, {"year": "2024"}, {"year": "2022"}, {"status": "final"}, {"grade": "B"},
               {"bureau": "652822"}, {"year": "2025", "status": "draft"}]


def test_the_page_and_the_api_show_the_count(spread, login, auth):
    for user in _bureau_users(spread):
        client = login(user)
        for args in [*WEB_FILTERS, _bureau_filter(spread)]:
            for page in ("1", "9"):  # a page past the end has no row to carry the total
                response = client.get("/credit", query_string={**args, "page": page})
                assert response.status_code == 200, (user.username, args)
                assert _shown(response.get_data(as_text=True)) == _counted(user, args), (user.username, args, page)
        # no year asked: the page shows the latest year of the user's scope
        latest = max(y for y, in db.session.execute(permissions.scope(user, sa.select(CreditRating.year), CreditRating)))
        assert _shown(client.get("/credit").get_data(as_text=True)) == _by_hand(user, latest), user.username
    for user in [*_bureau_users(spread), spread.firm_user, spread.other_firm_user]:
        headers = auth(user.username)
        for args in API_FILTERS:
            for page in ("1", "9"):
                response = login(user).get("/api/v1/ratings", query_string={**args, "page": page}, headers=headers)
                assert response.status_code == 200, (user.username, args, response.get_data(as_text=True))
                assert response.json["total"] == _api_counted(user, args), (user.username, args, page)
        if user.role != Role.FIRM_USER:
            assert _api_counted(user, {}) == _by_hand(user, None), user.username
    # a firm sees its own firm's ratings, drafts left out: the world's firm has 5 ratings, 1 of them a draft
    assert _api_counted(spread.firm_user, {}) == 4


# --- statements ------------------------------------------------------------------------------------

@contextlib.contextmanager
def _counting():
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    sa.event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", before)


def _statements(client, url: str, headers: dict | None = None) -> list[str]:
    with client.application.app_context(), _counting() as seen:  # an empty session, as on a server
        response = client.get(url, headers=headers or {})
    assert response.status_code == 200, (url, response.status_code)
    return seen


def _grow(w, n: int) -> None:
    """``n`` more firms, each rated by every bureau for 2025 and for two earlier years."""
    bureaus = [w.region, w.bz, w.kz, w.krl, w.lt, w.ats]
    for i in range(n):
        firm = factories.firm(w.bz, name=f"规模评价公司{next(factories._seq)}")
        for bureau in bureaus:
            for year in (2025, 2024, 2022):
                _rating(bureau, firm, year, PUBLISHED if i % 2 else FINAL)
    db.session.commit()


@pytest.mark.parametrize("who", ["region_admin", "bz_admin"])
def test_the_pages_statements_do_not_grow_and_read_the_kept_counts(spread, client, login, auth, who):
    user = getattr(spread, who)
    login(user)
    headers = auth(user.username)
    urls = ["/credit?year=2025", "/credit?year=2025&status=final", "/credit?year=2025&page=9",
            "/api/v1/ratings", "/api/v1/ratings?year=2025", "/api/v1/ratings?status=final"]
    for url in urls:  # warm caches (settings, the token) once
        _statements(client, url, headers if url.startswith("/api/") else None)
    small = {url: _statements(client, url, headers if url.startswith("/api/") else None) for url in urls}
    _grow(spread, 6)
    large = {url: _statements(client, url, headers if url.startswith("/api/") else None) for url in urls}
    assert {url: len(s) for url, s in large.items()} == {url: len(s) for url, s in small.items()}

    def counts_kept(statements: list[str]) -> bool:
        return any("credit_rating_count" in s for s in statements)

    # unfiltered but for the year: the total is a sum of kept counts, in the page's one statement
    page = [s for s in large[urls[0]] if "rows_in_all" in s]
    assert len(page) == 1 and "credit_rating_count" in page[0] and "JOIN firm" in page[0]
    assert counts_kept(large[urls[2]]) and counts_kept(large[urls[3]]) and counts_kept(large[urls[4]])
    # a filter counts the ratings as before
    assert not counts_kept(large[urls[1]]) and not counts_kept(large[urls[5]])
    # and the kept path costs no statement of its own
    assert len(large[urls[0]]) <= len(large[urls[1]])
    assert len(large[urls[3]]) <= len(large[urls[5]])


def test_the_migrations_fill_counts_the_same(spread):
    kept = _kept()
    assert kept == _live() and kept
    migration_files.refill(MIGRATION, CreditRatingCount)
    assert _kept() == kept == _live()
    db.session.commit()
