"""The result notice's posting on the designated media, owed until recorded — as the contract announcement's is.

财政部令第87号 第六十九条: the result notice (中标/成交结果公告) is posted "自中标人确定之日起2个工作日内，在省级以上财政部门指定的
媒体上". evalhub publishes its own copy at the award, which is no designated medium (procurement/media.py). So the
posting's due date is stored on the notice at the award (``ResultNotice.media_due_on``) and, while it is owed, drives
what the contract announcement's does (docs/rules.md, Procurement): the dashboard's card, the engagement list's filter,
the engagement page, the hourly reminder (the notification matrix's ``result_posting_due`` / ``result_posting_overdue``),
the red flag "结果公告未按期在指定媒体发布", and a calendar correction moves it both ways (the bureau's duty). Recording
the posting ends it; a revoked notice owes nothing more; a notice published before this change owes nothing here.
Each test states its rule."""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from evalhub.core.timeutil import simulated_clock
from evalhub.extensions import db
from tests import factories
from tests.statements import recorded
from tests.test_contract_notice import _inbox  # one copy: the titles a user was told, in order

CCGP = "http://www.ccgp.gov.cn/cggg/dfgg/zbgg/202503/t20250310_1234567.htm"


def M():
    from evalhub.procurement import media

    return media


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 2, 0)  # 10:00 Beijing


def _awarded(world, day: date = date(2025, 3, 5), bureau_key: str = "bz"):
    """A single source awarded (its result notice published) on ``day``: Wednesday 5 March 2025 by default."""
    firm = world.firm if bureau_key == "bz" else world.other_firm
    with simulated_clock(_at(day)):
        e = factories.engagement(world, bureau_key=bureau_key,
                                 unit="巴州统计局" if bureau_key == "bz" else "克州农业农村局")
        p = factories.single_source(world, e, firm, bureau_key)
    db.session.flush()
    return p


def _post(p, actor, day: date):
    with simulated_clock(_at(day)):
        return M().record_posting(p.engagement, "result", p.notice.id, M().PostingInput(
            medium="ccgp", url=CCGP.replace("1234567", f"{p.notice.id:07d}"), posted_on=day, note="经办人出差，返回后即在指定媒体发布。"), actor)


def _card(html: str) -> str:
    start = html.index('data-testid="result-posting-card"')
    return html[start:html.index("</ul>", start)]


# --- 1. the due date: stored at the award, ended by the posting ---------------------------------------------------

def test_the_posting_is_owed_from_the_award_for_two_working_days_and_the_recorded_posting_ends_it(world):
    """87号令 第六十九条: the winner determined on Wednesday 5 March 2025 (the notice is published at the award), the
    posting is due Friday 7 March — stored on the notice; a Friday award is due the Tuesday after (the weekend is not
    counted). Recording the posting ends the duty; the posting keeps the due date and its working days late."""
    p = _awarded(world)
    assert p.notice.media_due_on == date(2025, 3, 7)
    assert _awarded(world, date(2025, 3, 7)).notice.media_due_on == date(2025, 3, 11)
    posting = _post(p, world.bz_staff, date(2025, 3, 10))
    assert p.notice.media_due_on is None
    assert posting.due_on == date(2025, 3, 7) and posting.late_workdays == 1


def test_a_revoked_notice_owes_no_posting(world):
    """An upheld challenge revokes the award and its notice (财政部令第94号 第三十二条): the result it announced no longer
    stands, so its posting is owed no more — the next award's notice is owed in its turn. It can still be recorded
    (a posting made before the revocation), measured against the 2 working days from its publication."""
    from evalhub.procurement import services as P
    from tests.test_procurement_law import EVIDENCE, _awarded as consultation

    p, bidders = consultation(world)
    notice = p.notice
    assert notice.media_due_on is not None
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，技术分计算确有错误。", "reevaluate")
    db.session.flush()
    assert notice.revoked_at is not None and notice.media_due_on is None
    t = M().target(p.engagement, "result", notice.id)
    assert t.due is not None and "已撤销" in t.title


# --- 2. where overdue work shows: the dashboard, the engagement list, the engagement page ----------------------------

def test_an_overdue_posting_shows_on_the_bureaus_dashboard_list_and_engagement_page_until_recorded(world, login):
    """Where the contract announcement overdue shows, a result notice not posted on the designated media past its day
    shows, for the bureau that ran the procurement (and the region above it), with "未登记指定媒体发布" — evalhub's
    copy is out, the legal announcement is not — until the posting is recorded."""
    p = _awarded(world)
    e = p.engagement
    db.session.commit()
    client = login(world.bz_staff)
    dashboard = client.get("/").get_data(as_text=True)
    card = _card(dashboard)
    assert e.reference in card and "2025-03-07" in card and "未登记指定媒体发布" in card
    assert 'data-testid="result-posting-count">1<' in dashboard
    listed = client.get("/engagements?result_overdue=1").get_data(as_text=True)
    assert e.reference in listed and "结果公告应于 2025-03-07 前在指定媒体发布" in listed
    page = client.get(f"/engagements/{e.id}").get_data(as_text=True)
    assert 'data-testid="result-posting-overdue"' in page
    assert f"/engagements/{e.id}/media/result/{p.notice.id}" in page  # the bureau records it from there
    assert e.reference in _card(login(world.region_staff).get("/").get_data(as_text=True))
    other = login(world.kz_staff)
    assert e.reference not in _card(other.get("/").get_data(as_text=True))
    assert e.reference not in other.get("/engagements?result_overdue=1").get_data(as_text=True)

    _post(p, world.bz_staff, date(2025, 3, 10))
    db.session.commit()
    client = login(world.bz_staff)
    dashboard = client.get("/").get_data(as_text=True)
    assert e.reference not in _card(dashboard) and 'data-testid="result-posting-count">0<' in dashboard
    assert e.reference not in client.get("/engagements?result_overdue=1").get_data(as_text=True)
    assert 'data-testid="result-posting-overdue"' not in client.get(f"/engagements/{e.id}").get_data(as_text=True)


def test_the_firm_is_not_shown_the_bureaus_duty(world, login):
    """The posting is the purchaser's duty (as the contract announcement): the bureau's page says it is overdue, the
    winning firm's engagement page says nothing of it."""
    p = _awarded(world)
    db.session.commit()
    url = f"/engagements/{p.engagement.id}"
    assert 'data-testid="result-posting-overdue"' in login(world.bz_admin).get(url).get_data(as_text=True)
    page = login(world.firm_user).get(url).get_data(as_text=True)
    assert 'data-testid="result-posting-overdue"' not in page and "未登记指定媒体发布" not in page


# --- 3. the hourly reminder ----------------------------------------------------------------------------------------

def test_the_job_tells_the_bureau_the_working_day_the_posting_falls_due_and_once_overdue(world):
    """The hourly job (``procurement.result_posting``) tells the bureau that ran the procurement — its staff and admins,
    through the matrix's ``result_posting_due`` and ``result_posting_overdue`` — on the due working day and once it
    has passed, each once; nobody else, and nothing once the posting is recorded."""
    p = _awarded(world)
    job = M().remind_result_postings
    assert job(today=date(2025, 3, 6)) == 0
    assert job(today=date(2025, 3, 7)) == 2  # bz.admin and bz.staff
    assert job(today=date(2025, 3, 7)) == 0
    assert [t for t in _inbox(world.bz_staff) if "指定媒体" in t] == [
        f"{p.engagement.reference} 成交结果公告今日须在指定媒体发布"]
    assert job(today=date(2025, 3, 8)) == 2
    assert job(today=date(2025, 3, 10)) == 0
    assert _inbox(world.bz_admin)[-1] == f"{p.engagement.reference} 成交结果公告逾期未在指定媒体发布"
    assert not any("指定媒体" in t for t in _inbox(world.firm_user))
    assert not any("指定媒体" in t for t in _inbox(world.kz_staff) + _inbox(world.region_staff))
    posted = _awarded(world)
    _post(posted, world.bz_staff, date(2025, 3, 6))
    assert job(today=date(2025, 3, 11)) == 0


def test_a_notice_published_before_this_change_owes_nothing_here(world, login):
    """A notice published before evalhub tracked the posting (no due date stored: the migration dates none, as for
    contracts) is not made overdue — not on the dashboard, not by the job, not as a red flag: its bureau posted it or
    not without evalhub knowing. It can still be recorded, measured against the 2 working days as before."""
    from evalhub.integrity import redflags
    from evalhub.integrity.models import Indicator, RedFlag

    p = _awarded(world)
    p.notice.media_due_on = None
    db.session.commit()
    assert M().remind_result_postings(today=date(2025, 3, 10)) == 0
    assert p.engagement.reference not in _card(login(world.bz_staff).get("/").get_data(as_text=True))
    redflags.refresh()
    assert not db.session.execute(sa.select(RedFlag).where(RedFlag.indicator == Indicator.RESULT_NOTICE)).first()
    posting = _post(p, world.bz_staff, date(2025, 3, 10))
    assert posting.due_on == date(2025, 3, 7) and posting.late_workdays == 1


# --- 4. integrity: the red flag ----------------------------------------------------------------------------------

def test_a_result_notice_posted_late_or_still_owed_is_a_red_flag(world):
    """The red flag "结果公告未按期在指定媒体发布" (integrity/redflags.py, as "合同公告逾期或未发布"): posted on the designated
    media after its 2 working days (the posting's working days late), or still not posted past them (the working days
    late until today). The bureau's flag, naming no firm; on time, nothing."""
    from evalhub.integrity import redflags as R
    from evalhub.integrity.models import Indicator, RedFlag

    late = _awarded(world)
    _post(late, world.bz_staff, date(2025, 3, 11))
    owed = _awarded(world)
    on_time = _awarded(world)
    _post(on_time, world.bz_staff, date(2025, 3, 7))
    R.refresh()
    flags = {f.procurement_id: f for f in db.session.execute(sa.select(RedFlag).where(
        RedFlag.indicator == Indicator.RESULT_NOTICE)).scalars()}
    assert set(flags) == {late.id, owed.id}
    assert flags[late.id].value == 2 and "晚 2 个工作日在指定媒体发布" in flags[late.id].explanation
    assert "未登记指定媒体发布" in flags[owed.id].explanation and flags[owed.id].value > 100
    assert all(f.firm_id is None and f.bureau_id == world.bz.id and f.threshold == 0 for f in flags.values())
    assert "第六十九条" in R.EXPLAIN[Indicator.RESULT_NOTICE]


def test_the_red_flag_counts_every_owed_posting_from_one_calendar_read(world):
    """The working days each owed contract announcement and result notice is late are counted from one read of the
    calendar for them all (``core.calendar.late_workdays_each``), as the one-by-one rule gives them."""
    from evalhub.integrity import redflags as R
    from evalhub.procurement.contract_notices import late_workdays

    for day in (date(2025, 3, 3), date(2025, 3, 5), date(2025, 3, 7)):
        _awarded(world, day)
        _awarded(world, day, "kz")
    db.session.flush()
    rows = R.load_rows()
    bureaus = {b.id: b for b in (world.bz, world.kz)}
    with recorded() as seen:
        R.count_unpublished_lateness(rows, bureaus, date(2025, 4, 13))
    owed = [(row, posting) for row in rows for posting in row.results]
    assert len(owed) == 6 and sum("calendar_day" in s.lower() for s in seen) == 1
    assert [posting.late_workdays for _, posting in owed] == [
        late_workdays(bureaus[row.bureau_id], posting.due, date(2025, 4, 13)) for row, posting in owed]


# --- 5. a calendar correction: the bureau's duty follows it both ways --------------------------------------------

def test_the_posting_due_follows_the_corrected_calendar_both_ways(world):
    """A holiday entered after the award moves the posting's day (the bureau's duty: both ways, core.calendar
    ``recompute``); taken back, it returns. A posting already recorded, a revoked notice, never move."""
    from evalhub.credit import services as C

    today = date(2025, 11, 3)  # a Monday
    with simulated_clock(_at(today)):
        owed = _awarded(world, today)
        posted = _awarded(world, today)
        _post(posted, world.bz_staff, today)
        db.session.commit()
        assert owed.notice.media_due_on == date(2025, 11, 5)
        done = C.set_calendar_day(world.bz, date(2025, 11, 4), False, "地方节假日", world.bz_admin)
        assert owed.notice.media_due_on == date(2025, 11, 6)
        assert [m.row_id for m in done.moved if m.kind == "procurement.result_posting_due"] == [owed.notice.id]
        assert posted.notice.media_due_on is None and posted.notice.media_posting.due_on == date(2025, 11, 5)
        C.set_calendar_day(world.bz, date(2025, 11, 4), True, "更正：照常上班", world.bz_admin)
        assert owed.notice.media_due_on == date(2025, 11, 5)
        db.session.commit()


# --- 6. the upgrade dates no notice published before it ------------------------------------------------------------

def test_the_upgrade_leaves_the_notices_published_before_it_owing_nothing(empty_database_url, tmp_path):
    """The revision adds ``result_notice.media_due_on`` without a value for the notices already published (as was
    decided for contracts): dating them would list every past result as overdue at once."""
    from flask_migrate import upgrade

    from evalhub import create_app
    from evalhub.config import PROJECT_ROOT

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True, "SECRET_KEY": "x",
                      "FILE_STORE": tmp_path})
    directory = str(PROJECT_ROOT / "migrations")
    with app.app_context():
        upgrade(directory=directory, revision="4b8de4a7f75e")
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # a bare notice: its procurement, firm and bureau are not the point
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            conn.execute(sa.text(
                "INSERT INTO result_notice (id, procurement_id, firm_id, supplier_name, supplier_uscc, amount, text,"
                " published_at, challenge_until, bureau_id) VALUES (1, 1, 1, '机构', '91650000000000000X', 1000, '公告',"
                " '2025-03-05 02:00:00', '2025-03-14', 1)"))
        upgrade(directory=directory)
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT media_due_on FROM result_notice")).all() == [(None,)]
        db.engine.dispose()
