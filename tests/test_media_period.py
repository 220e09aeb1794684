"""The bid period counts from the 采购公告's posting on the designated media (the legal announcement).

政府采购法 第十一条 and 财政部令第101号: the 采购公告 is announced by its posting on the designated media, and the documents
are issued from then; the period before the deadline is ≥ 20 days for an open tender (政府采购法 第三十五条, 87号令) and
≥ 10 days for a competitive consultation (财库〔2014〕214号 第十条). A posting recorded later than evalhub's publication may
leave the deadline too soon: the posting is recorded (a fact), the bureau is told, and the bids may not be opened until
the deadline is extended to a lawful one (procurement/periods.py, media.py, services.open_bids / change_deadline)."""
from __future__ import annotations

import os
from datetime import date, datetime

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import AuditEvent
from evalhub.core.timeutil import simulated_clock
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import ProcurementMethod as M, ProcurementStatus
from tests import factories

CCGP = "http://www.ccgp.gov.cn/cggg/dfgg/jzxcs/202503/t20250306_1234567.htm"
MONDAY = date(2025, 3, 3)  # evalhub publishes the consultation (no holiday near)
THURSDAY = date(2025, 3, 6)  # its posting on the designated media, three days later


def M_():
    from evalhub.procurement import media

    return media


def _at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour - 8, 0)  # ``hour`` o'clock Beijing, as naive UTC


def _consultation(world):
    """A competitive consultation published in evalhub on Monday 3 March 2025 at 10:00, its deadline Thursday 13 March
    10:00: 10 days from the Monday, lawful counted from evalhub's publication."""
    with simulated_clock(_at(MONDAY)):
        p = P.open_procurement(factories.engagement(world), P.ProcurementInput(
            method=M.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
            bid_deadline=_at(date(2025, 3, 13))), world.bz_staff)
    return p


def _post(p, actor, posted_on: date, today: date | None = None):
    with simulated_clock(_at(today or posted_on, 11)):
        return M_().record_posting(p.engagement, "procurement", p.id, M_().PostingInput(
            medium="ccgp", url=CCGP, posted_on=posted_on), actor)


def _events(action: str) -> list[AuditEvent]:
    return db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == action)).scalars().all()


# --- 1. the service: recorded, told, the opening refused until the deadline is lawful -----------------------------

def test_a_late_posting_is_recorded_and_told_and_the_bids_stay_sealed_until_the_deadline_is_extended(world):
    """Posted on Thursday 6 March, the 10 days run to Sunday 16 March, a rest day, so to Monday 17 March (民法典 第二百零三条,
    the bureau's calendar): the deadline of Thursday 13 March is 3 days short. The posting is recorded (it happened),
    its audit event and the bureau are told; at the deadline the opening is refused, in Chinese; the deadline is
    extended (past as it is: the way to a lawful opening) — not to the Sunday — and then the bids are opened."""
    p = _consultation(world)
    posting = _post(p, world.bz_staff, THURSDAY)
    assert posting.posted_on == THURSDAY
    t = M_().target(p.engagement, "procurement", p.id)
    said = M_().period_problem(t)
    assert said and "等标期不足" in said and "2025-03-06" in said and "不得少于 10 日" in said
    assert "当前仅 7 日" in said and "2025-03-17" in said and "不能开标" in said
    [event] = _events("notice.media_recorded")
    assert "等标期不足" in event.summary and event.payload["period_problem"] == said
    db.session.commit()

    with simulated_clock(_at(date(2025, 3, 13), 11)):
        with pytest.raises(Conflict) as caught:
            P.open_bids(p, world.bz_staff)
        assert "等标期不足，不能开标" in caught.value.message and "2025-03-17" in caught.value.message
        db.session.rollback()
        assert p.status == ProcurementStatus.OPEN and p.opened_at is None
        with pytest.raises(ValidationFailed) as caught:  # the Sunday: the period ends on the next working day
            P.change_deadline(p, _at(date(2025, 3, 16)), world.bz_staff, "采购公告在指定媒体发布较晚，顺延截止时间")
        assert "2025-03-17" in caught.value.fields["bid_deadline"] and "2025-03-06" in caught.value.fields["bid_deadline"]
        db.session.rollback()
        P.change_deadline(p, _at(date(2025, 3, 17)), world.bz_staff, "采购公告在指定媒体发布较晚，顺延截止时间")
        db.session.commit()
    [changed] = _events("procurement.deadline_changed")
    assert changed.payload["counted_from"] == "2025-03-06" and changed.payload["period_was_short"] is True
    assert M_().period_problem(M_().target(p.engagement, "procurement", p.id)) is None
    with simulated_clock(_at(date(2025, 3, 17), 11)):
        P.open_bids(p, world.bz_staff)  # no bids: it opens, and fails for too few (流标)
    assert p.opened_at is not None and p.status != ProcurementStatus.OPEN


def test_a_posting_the_day_evalhub_published_changes_nothing(world):
    """Posted the day evalhub published it, the period counts from the day already checked at the opening: nothing
    said, the opening at the deadline goes ahead."""
    p = _consultation(world)
    _post(p, world.bz_staff, MONDAY, today=date(2025, 3, 4))
    assert M_().period_problem(M_().target(p.engagement, "procurement", p.id)) is None
    assert _events("notice.media_recorded")[0].payload["period_problem"] is None
    with simulated_clock(_at(date(2025, 3, 13), 11)):
        P.open_bids(p, world.bz_staff)
    assert p.opened_at is not None


def test_a_correction_of_the_date_counts_both_ways(world):
    """A date corrected to a later day makes the period short (told, in the correction's audit event); corrected back,
    the opening is free again."""
    p = _consultation(world)
    posting = _post(p, world.bz_staff, MONDAY)
    with simulated_clock(_at(date(2025, 3, 7))):
        M_().correct_posting(p.engagement, posting.id, M_().PostingInput(medium="ccgp", url=CCGP, posted_on=THURSDAY),
                             "登记时日期填错，实际于 3 月 6 日发布。", world.bz_staff)
    db.session.commit()
    [event] = _events("notice.media_corrected")
    assert "等标期不足" in event.summary and "2025-03-17" in event.payload["period_problem"]
    with simulated_clock(_at(date(2025, 3, 13), 11)):
        with pytest.raises(Conflict):
            P.open_bids(p, world.bz_staff)
        db.session.rollback()
        M_().correct_posting(p.engagement, posting.id, M_().PostingInput(medium="ccgp", url=CCGP, posted_on=MONDAY),
                             "核对后确认实际于 3 月 3 日发布，恢复原登记。", world.bz_staff)
        P.open_bids(p, world.bz_staff)
    assert p.opened_at is not None


def test_the_deadline_change_counts_from_the_posting_and_a_passed_lawful_deadline_still_cannot_move(world):
    """Before the deadline, a change counts from the posting, not from evalhub's publication (a deadline lawful from
    the Monday but not from the Thursday is refused). A deadline passed with a lawful period cannot move (as before):
    only the short period opens that door."""
    p = _consultation(world)
    _post(p, world.bz_staff, THURSDAY)
    db.session.commit()
    with simulated_clock(_at(date(2025, 3, 7))):
        with pytest.raises(ValidationFailed) as caught:
            P.change_deadline(p, _at(date(2025, 3, 14)), world.bz_staff, "答疑后延期")
        assert "2025-03-06" in caught.value.fields["bid_deadline"]
        db.session.rollback()
    q = _consultation(world)
    with simulated_clock(_at(date(2025, 3, 13), 11)):
        with pytest.raises(Conflict):
            P.change_deadline(q, _at(date(2025, 3, 20)), world.bz_staff, "延期")


def test_a_posting_recorded_after_the_opening_says_the_bids_were_opened_too_early(world):
    """Recorded after the bids were opened, the posting is still recorded; what the bureau reads is that the opening
    came before the lawful period ended."""
    p = _consultation(world)
    with simulated_clock(_at(date(2025, 3, 13), 11)):
        P.open_bids(p, world.bz_staff)
    _post(p, world.bz_staff, THURSDAY, today=date(2025, 3, 14))
    said = M_().period_problem(M_().target(p.engagement, "procurement", p.id))
    assert "等标期不足" in said and "已于北京时间 2025-03-13" in said and "开标" in said


def test_an_open_tender_counts_twenty_days_from_its_posting(world):
    """政府采购法 第三十五条: 20 days. Published Monday 3 March with its deadline Monday 24 March (21 days), posted on
    Wednesday 5 March: 19 days, short — lawful from Tuesday 25 March."""
    with simulated_clock(_at(MONDAY)):
        p = P.open_procurement(factories.engagement(world), P.ProcurementInput(
            method=M.OPEN_TENDER, title="", ceiling_price_wan="50", price_weight="30",
            bid_deadline=_at(date(2025, 3, 24))), world.bz_staff)
    _post(p, world.bz_staff, date(2025, 3, 5))
    said = M_().period_problem(M_().target(p.engagement, "procurement", p.id))
    assert "不得少于 20 日" in said and "当前仅 19 日" in said and "2025-03-25" in said


# --- 2. two at once: the opening reads the posting committed before it ----------------------------------------------

def test_an_opening_that_read_the_procurement_before_a_late_posting_was_committed_is_refused(app, world):
    """Request A has read the procurement, no posting recorded; request B records the late posting and commits; A's
    opening, under the procurement's lock, reads the posting as committed and is refused."""
    from evalhub.core.models import User
    from evalhub.procurement.models import Procurement
    from tests.test_races import in_context

    p = _consultation(world)
    db.session.commit()
    p_id, staff_id, admin_id = p.id, world.bz_staff.id, world.bz_admin.id
    with app.app_context():
        a_p, a_user = db.session.get(Procurement, p_id), db.session.get(User, staff_id)
        assert a_p.media_posting is None
        in_context(app, lambda: _post(db.session.get(Procurement, p_id), db.session.get(User, admin_id), THURSDAY))
        try:
            with simulated_clock(_at(date(2025, 3, 13), 11)):
                with pytest.raises(Conflict) as caught:
                    P.open_bids(a_p, a_user)
            assert "等标期不足" in caught.value.message
        finally:
            db.session.rollback()
            db.session.remove()
    db.session.expire_all()
    assert db.session.get(Procurement, p_id).opened_at is None


@pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"), reason="concurrency is tested against PostgreSQL")
def test_a_late_posting_and_the_opening_at_once_never_open_unknowingly(app, world):
    """At once on PostgreSQL: either the posting commits first and the opening is refused, or the opening commits first
    and the posting, recorded after it, says the bids were opened too early — never an opening that the posting
    committed before without its knowing."""
    from evalhub.core.models import User
    from evalhub.procurement.models import Procurement

    p = _consultation(world)
    db.session.commit()
    p_id, staff_id, admin_id = p.id, world.bz_staff.id, world.bz_admin.id

    def post():
        _post(db.session.get(Procurement, p_id), db.session.get(User, admin_id), THURSDAY, today=date(2025, 3, 13))

    def open_():
        with simulated_clock(_at(date(2025, 3, 13), 11)):
            P.open_bids(db.session.get(Procurement, p_id), db.session.get(User, staff_id))

    outcomes = factories.at_once(app, post, open_)
    db.session.expire_all()
    procurement = db.session.get(Procurement, p_id)
    [event] = _events("notice.media_recorded")
    if procurement.opened_at is None:
        assert outcomes == ["Conflict", "done"] and "不能开标" in event.payload["period_problem"]
    else:
        assert outcomes == ["done", "done"] and "开标，早于法定等标期届满" in event.payload["period_problem"]


# --- 3. the web: told on recording, the engagement and procurement pages, the opening refused, the deadline moved ----

def test_the_web_tells_the_bureau_shows_the_problem_refuses_the_opening_and_extends_the_deadline(world, login):
    p = _consultation(world)
    e = p.engagement
    db.session.commit()
    client = login(world.bz_staff)
    url = f"/engagements/{e.id}/media/procurement/{p.id}"
    with simulated_clock(_at(THURSDAY, 11)):
        done = client.post(url, data={"medium": "ccgp", "url": CCGP, "posted_on": "2025-03-06"}, follow_redirects=True)
        text = done.get_data(as_text=True)
        assert done.status_code == 200 and "等标期不足" in text and "2025-03-17" in text  # the flash, and the list
        assert 'data-testid="period-short"' in text
        page = client.get(f"/engagements/{e.id}").get_data(as_text=True)
        assert f'data-testid="period-short-{p.id}"' in page and f"/procurements/{p.id}#deadline" in page
    assert f'data-testid="period-short-{p.id}"' not in login(world.firm_user).get(f"/engagements/{e.id}").get_data(as_text=True)
    client = login(world.bz_staff)
    with simulated_clock(_at(date(2025, 3, 13), 11)):
        detail = client.get(f"/procurements/{p.id}").get_data(as_text=True)
        assert 'data-testid="period-short"' in detail and 'data-testid="open-blocked"' in detail
        assert 'data-testid="open-bids"' not in detail and 'data-testid="change-deadline"' in detail
        refused = client.post(f"/procurements/{p.id}/open")
        assert refused.status_code == 409 and "等标期不足" in refused.get_data(as_text=True)
        bad = client.post(f"/procurements/{p.id}/deadline", data={"bid_deadline": "2025-03-14T10:00", "reason": "顺延"})
        assert bad.status_code == 422 and "2025-03-17" in bad.get_data(as_text=True)
        ok = client.post(f"/procurements/{p.id}/deadline",
                         data={"bid_deadline": "2025-03-17T10:00", "reason": "采购公告在指定媒体发布较晚，顺延截止时间"})
        assert ok.status_code == 302, ok.get_data(as_text=True)[:2000]
    db.session.expire_all()
    assert p.bid_deadline == _at(date(2025, 3, 17)) and p.opened_at is None
    with simulated_clock(_at(date(2025, 3, 14))):
        detail = client.get(f"/procurements/{p.id}").get_data(as_text=True)
        assert 'data-testid="period-short"' not in detail
    assert f'data-testid="period-short-{p.id}"' not in client.get(f"/engagements/{e.id}").get_data(as_text=True)


@pytest.mark.parametrize("who", ["region_staff", "firm_user", "kz_staff"])
def test_only_the_purchasing_bureau_changes_the_deadline_on_the_web(world, login, who):
    p = _consultation(world)
    db.session.commit()
    with simulated_clock(_at(date(2025, 3, 5))):
        response = login(getattr(world, who)).post(f"/procurements/{p.id}/deadline",
                                                   data={"bid_deadline": "2025-03-20T10:00", "reason": "答疑后延期"})
    assert response.status_code in (403, 404)
    db.session.expire_all()
    assert p.bid_deadline == _at(date(2025, 3, 13)) and not _events("procurement.deadline_changed")


# --- 4. the API: the same services ------------------------------------------------------------------------------------

def test_the_api_tells_on_recording_shows_the_problem_and_extends_the_deadline(world, client, auth):
    p = _consultation(world)
    e = p.engagement
    db.session.commit()
    staff, region, kz = auth("bz.staff"), auth("region.staff"), auth("kz.staff")  # tokens of today, not of the clock's
    body = {"notice_kind": "procurement", "notice_id": p.id, "medium": "ccgp", "url": CCGP, "posted_on": "2025-03-06"}
    with simulated_clock(_at(THURSDAY, 11)):
        done = client.post(f"/api/v1/engagements/{e.id}/media-postings", headers=staff, json=body)
    assert done.status_code == 201, done.get_data(as_text=True)
    assert "等标期不足" in done.json["period_problem"] and "2025-03-17" in done.json["period_problem"]
    listed = client.get(f"/api/v1/engagements/{e.id}/media-postings", headers=staff)
    assert listed.status_code == 200, listed.get_data(as_text=True)
    listed = listed.json
    [notice] = [n for n in listed["notices"] if n["kind"]["value"] == "procurement"]
    assert "等标期不足" in notice["posting"]["period_problem"]
    url = f"/api/v1/procurements/{p.id}/deadline"
    with simulated_clock(_at(date(2025, 3, 13), 11)):
        assert "等标期不足" in client.get(f"/api/v1/procurements/{p.id}", headers=staff).json["period_problem"]
        lawful = {"bid_deadline": "2025-03-17T10:00:00+08:00", "reason": "采购公告在指定媒体发布较晚，顺延截止时间"}
        for headers, status in [(region, 403), (kz, 404)]:
            assert client.post(url, headers=headers, json=lawful).status_code == status
        assert client.post(url, json=lawful).status_code == 401
        for bad, field in [({"bid_deadline": "2025-03-14T10:00:00+08:00"}, "2025-03-17"),
                           ({"bid_deadline": "2025-03-17 10:00"}, "带时区"), ({"bid_deadline": "明天"}, "带时区"),
                           ({"reason": ""}, "变更原因")]:
            refused = client.post(url, headers=staff, json={**lawful, **bad})
            assert refused.status_code == 422 and field in refused.json["error"]["message"], refused.json
        db.session.expire_all()
        assert p.bid_deadline == _at(date(2025, 3, 13))
        ok = client.post(url, headers=staff, json=lawful)
        assert ok.status_code == 200, ok.get_data(as_text=True)
        assert ok.json["bid_deadline"].startswith("2025-03-17T02:00") and ok.json["period_problem"] is None
    db.session.expire_all()
    assert p.bid_deadline == _at(date(2025, 3, 17)) and len(_events("procurement.deadline_changed")) == 1
    with simulated_clock(_at(date(2025, 3, 18))):  # passed with a lawful period: no more change (as before)
        again = client.post(url, headers=staff, json={**lawful, "bid_deadline": "2025-03-25T10:00:00+08:00"})
    assert again.status_code == 409 and "投标截止前" in again.json["error"]["message"]


def test_the_openapi_document_describes_the_deadline_change(client):
    spec = client.get("/api/v1/openapi.json").json
    post = spec["paths"]["/api/v1/procurements/{procurement_id}/deadline"]["post"]
    assert {"200", "403", "404", "409", "422"} <= set(post["responses"])
    assert "period_problem" in spec["components"]["schemas"]["Procurement"]["properties"]
    assert "period_problem" in spec["components"]["schemas"]["MediaPosting"]["properties"]


# --- 5. the red flag 投标期限仅为法定最短期限 counts from the posting too ----------------------------------------------

def test_the_short_period_red_flag_counts_from_the_posting(world):
    """Cardinal's short submission period: 10 days from evalhub's Monday is the legal minimum (flagged as before); from
    the Thursday posting it is 7 days — below the minimum, said so, the posting's day named."""
    from evalhub.integrity import redflags as R
    from evalhub.integrity.models import Indicator, RedFlag

    p = _consultation(world)
    on_monday = _consultation(world)
    _post(p, world.bz_staff, THURSDAY)
    R.refresh()
    flags = {f.procurement_id: f for f in db.session.execute(sa.select(RedFlag).where(
        RedFlag.indicator == Indicator.SHORT_PERIOD)).scalars()}
    assert flags[on_monday.id].value == 10 and "等标期不足" not in flags[on_monday.id].explanation
    assert flags[p.id].value == 7 and "2025-03-06" in flags[p.id].explanation and "等标期不足" in flags[p.id].explanation


# --- 6. the public lists: where each notice was legally posted ---------------------------------------------------------

def test_the_public_lists_show_each_recorded_posting_and_nothing_more(world, client):
    """The 采购公告, result and contract notice lists name, for a notice with a recorded posting, the medium, the day and
    the link (an external link: rel="noopener noreferrer"); a notice without one reads as before. Only public fields:
    never the late posting's reason (the bureau's note)."""
    from tests.test_media_posting import _announced, _input, _record

    e = _announced(world)  # its contract notice posted, late, with its reason
    bare = _announced(world)  # nothing posted
    _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 11), note="经办人出差，返回后即在指定媒体发布。")
    notice = e.current_procurement.notice
    _record(e, "result", notice.id, world.bz_staff, date(2025, 3, 7), posted_on=date(2025, 2, 20))
    p = _consultation(world)
    other = _consultation(world)
    _post(p, world.bz_staff, THURSDAY)
    db.session.commit()
    link = f'href="{CCGP}" rel="noopener noreferrer nofollow"'
    contracts = client.get("/public/contracts").get_data(as_text=True)
    row = contracts[contracts.index(f'data-testid="listed-media-contract-{e.contract.notice.id}"'):]
    assert "2025-03-11 发布于中国政府采购网" in row[:400] and 'rel="noopener noreferrer nofollow"' in row[:400]
    assert f"listed-media-contract-{bare.contract.notice.id}" not in contracts and "经办人出差" not in contracts
    notices = client.get("/public/notices").get_data(as_text=True)
    assert f'data-testid="listed-media-result-{notice.id}"' in notices and "2025-02-20" in notices
    assert f"listed-media-result-{bare.current_procurement.notice.id}" not in notices
    procurements = client.get("/public/procurements").get_data(as_text=True)
    assert f'data-testid="listed-media-procurement-{p.id}"' in procurements and link in procurements
    assert f"listed-media-procurement-{other.id}" not in procurements
    assert "等标期不足" not in procurements  # the bureau's warning, not the public's


def test_the_public_lists_read_the_postings_with_the_page(world, client):
    """A posting is read with its list's page, not by a statement per row (tests/test_row_statements.py)."""
    from tests.test_media_posting import _announced, _record
    from tests.test_row_statements import _flat

    def add(count: int = 3):
        for _ in range(count):
            e = _announced(world)
            _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 7))
            _record(e, "result", e.current_procurement.notice.id, world.bz_staff, date(2025, 3, 7))
            _post(_consultation(world), world.bz_staff, MONDAY)

    add(1)
    db.session.commit()
    # and the home page, the latest of each list
    _flat(client, ["/public/contracts", "/public/notices", "/public/procurements", "/public/"], add, [])
    for url in ("/public/contracts", "/public/notices", "/public/procurements"):
        assert "发布于中国政府采购网" in client.get(url).get_data(as_text=True), url


# --- 7. the media list's Excel: a late posting's reason, as the bureau files the list --------------------------------

def _sheet(response) -> list[dict]:
    import io

    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(response.data)).active
    header, *rows = [[c.value for c in row] for row in sheet.iter_rows()]
    return [dict(zip(header, row)) for row in rows]


def test_the_media_list_exports_each_posting_with_a_late_postings_reason(world, login):
    """The bureau files the list: each notice, its legal deadline, where and when it was posted, the working days late
    and — apart from a note given on time — the reason a late result or contract notice posting gave; the 采购公告's
    period problem. Only the purchasing bureau's (as the page)."""
    from tests.test_media_posting import _announced, _record

    e = _announced(world)
    _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 11), note="经办人出差，返回后即在指定媒体发布。")
    _record(e, "result", e.current_procurement.notice.id, world.bz_staff, date(2025, 3, 7), posted_on=date(2025, 2, 17),
            note="按期发布。")  # its last day
    db.session.commit()
    client = login(world.bz_staff)
    assert 'data-testid="media-export"' in client.get(f"/engagements/{e.id}/media").get_data(as_text=True)
    response = client.get(f"/engagements/{e.id}/media?export=xlsx")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    rows = {r["公告类型"]: r for r in _sheet(response)}
    contract, result = rows["合同公告"], rows["中标/成交结果公告"]
    assert contract["任务编号"] == e.reference and contract["逾期工作日"] == 2 and contract["逾期原因"].startswith("经办人出差")
    assert contract["备注"] is None and contract["网址"].startswith("http://www.ccgp.gov.cn/")
    assert str(contract["法定发布期限"])[:10] == "2025-03-07" and str(contract["发布日期"])[:10] == "2025-03-11"
    assert contract["登记人"] and contract["发布情况"].endswith("逾期 2 个工作日）")
    assert result["逾期工作日"] == 0 and result["逾期原因"] is None and result["备注"] == "按期发布。"
    p = _consultation(world)
    _post(p, world.bz_staff, THURSDAY)
    db.session.commit()
    [row] = _sheet(login(world.bz_staff).get(f"/engagements/{p.engagement.id}/media?export=xlsx"))
    assert row["公告类型"] == "采购公告" and "等标期不足" in row["等标期"]
    for who in ("region_staff", "firm_user", "kz_staff"):
        assert login(getattr(world, who)).get(f"/engagements/{e.id}/media?export=xlsx").status_code in (403, 404)


# --- 8. told in the inbox: the bureau of a short period, the firms of a changed deadline ------------------------------

def _notes(user, link_part: str = "", title: str = "") -> list:
    """``user``'s inbox: the messages whose link has ``link_part`` and whose title has ``title``."""
    from evalhub.core.models import Notification

    return db.session.execute(sa.select(Notification).where(
        Notification.user_id == user.id, Notification.link.contains(link_part), Notification.title.contains(title))
        .order_by(Notification.id)).scalars().all()


def test_a_late_posting_tells_the_bureau_in_the_inbox_not_only_in_the_flash(world):
    """The service tells the bureau that runs the procurement (its staff and admins; not the bureau above, not another
    bureau, not the firms): the inbox holds what the flash said, with the link to change the deadline. A posting the
    day evalhub published it tells nothing; a correction of the link alone tells nothing new; a correction of the date
    that makes the period short tells."""
    p = _consultation(world)
    on_time = _consultation(world)
    _post(on_time, world.bz_staff, MONDAY, today=THURSDAY)
    assert not _notes(world.bz_admin, f"/procurements/{on_time.id}#", "等标期")
    posting = _post(p, world.bz_staff, THURSDAY)
    db.session.commit()
    link = f"/procurements/{p.id}#deadline"
    for user in (world.bz_staff, world.bz_admin):
        [note] = _notes(user, link)
        assert note.link == link and p.engagement.reference in note.title and "等标期不足" in note.title
        assert "2025-03-06" in note.body and "当前仅 7 日" in note.body and "2025-03-17" in note.body
        assert "不能开标" in note.body
    for user in (world.region_staff, world.kz_staff, world.firm_user, world.krl_staff):
        assert not _notes(user, link) and not _notes(user, title="等标期")
    with simulated_clock(_at(date(2025, 3, 7))):
        M_().correct_posting(p.engagement, posting.id, M_().PostingInput(
            medium="ccgp", url=CCGP + "?from=list", posted_on=THURSDAY), "网址复制时缺少参数，重新登记完整网址。", world.bz_staff)
    assert len(_notes(world.bz_admin, link)) == 1  # nothing new to tell
    q = _consultation(world)
    posting = _post(q, world.bz_staff, MONDAY, today=date(2025, 3, 5))
    with simulated_clock(_at(date(2025, 3, 7))):
        M_().correct_posting(q.engagement, posting.id, M_().PostingInput(medium="ccgp", url=CCGP, posted_on=THURSDAY),
                             "登记时日期填错，实际于 3 月 6 日发布。", world.bz_staff)
    [note] = _notes(world.bz_staff, f"/procurements/{q.id}#deadline")
    assert "等标期不足" in note.body and "2025-03-17" in note.body


def test_the_api_recording_tells_the_bureau_too(world, client, auth):
    """Recorded through the API (no flash there), the bureau is told all the same: the service sends it."""
    p = _consultation(world)
    db.session.commit()
    body = {"notice_kind": "procurement", "notice_id": p.id, "medium": "ccgp", "url": CCGP, "posted_on": "2025-03-06"}
    with simulated_clock(_at(THURSDAY, 11)):
        done = client.post(f"/api/v1/engagements/{p.engagement.id}/media-postings", headers=auth("bz.staff"), json=body)
    assert done.status_code == 201, done.get_data(as_text=True)
    db.session.expire_all()
    [note] = _notes(world.bz_admin, f"/procurements/{p.id}#deadline")
    assert "等标期不足" in note.body and "2025-03-17" in note.body


def test_a_changed_deadline_is_told_to_every_potential_supplier(world):
    """财政部令第87号 第二十七条: a change of the documents goes to every potential supplier. The firms the 采购公告 went to
    (those eligible to respond) and the firm that bid are told the old and the new deadline and why; another
    prefecture's firm (not of the library) is not, nor is the bureau (it made the change). Not before the change is
    made: a deadline refused tells nobody."""
    p = _consultation(world)
    bidder, bidder_user, staff = factories.bidder(world, "巴州投标评价有限公司")
    with simulated_clock(_at(date(2025, 3, 4))):
        factories.bid(p, bidder_user, staff, "40")
    _post(p, world.bz_staff, THURSDAY)
    db.session.commit()
    link = f"/procurements/{p.id}/bid"
    with simulated_clock(_at(date(2025, 3, 7))):
        with pytest.raises(ValidationFailed):
            P.change_deadline(p, _at(date(2025, 3, 14)), world.bz_staff, "采购公告在指定媒体发布较晚，顺延截止时间")
        db.session.rollback()
        assert not _notes(world.firm_user, link, "截止时间变更") and not _notes(bidder_user, link, "截止时间变更")
        P.change_deadline(p, _at(date(2025, 3, 17)), world.bz_staff, "采购公告在指定媒体发布较晚，顺延截止时间。")
        db.session.commit()
    for user in (world.firm_user, bidder_user):
        [note] = _notes(user, link, "截止时间变更")
        assert p.engagement.reference in note.title and p.title in note.title
        assert "2025-03-13 10:00" in note.body and "2025-03-17 10:00" in note.body
        assert "采购公告在指定媒体发布较晚，顺延截止时间。" in note.body and "。。" not in note.body
    assert not _notes(world.other_firm_user, title="截止时间变更") and not _notes(world.bz_staff, title="截止时间变更")


# --- 9. the year's postings of a bureau's subtree, in one workbook (the 政府采购信息公开 return) ---------------------------

def _consultation_of(world, bureau_key: str, unit: str):
    """``_consultation`` of another bureau (its own staff open it)."""
    with simulated_clock(_at(MONDAY)):
        return P.open_procurement(factories.engagement(world, bureau_key=bureau_key, unit=unit), P.ProcurementInput(
            method=M.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
            bid_deadline=_at(date(2025, 3, 13))), getattr(world, f"{bureau_key}_staff"))


@pytest.fixture()
def year_postings(world):
    """巴州: a consultation posted late (its period short) and a contract announcement posted 2 working days late with
    its reason; 轮台县 (under 巴州): a consultation posted on time; 克州: a consultation posted on time."""
    from tests.test_media_posting import _announced, _record

    bz = _consultation(world)
    _post(bz, world.bz_staff, THURSDAY)
    e = _announced(world)
    _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 11), note="经办人出差，返回后即在指定媒体发布。")
    lt = _consultation_of(world, "lt", "轮台县医疗保障局")
    _post(lt, world.lt_staff, MONDAY, today=date(2025, 3, 4))
    kz = _consultation_of(world, "kz", "克州农业农村局")
    _post(kz, world.kz_staff, MONDAY, today=date(2025, 3, 4))
    db.session.commit()
    return {"bz": bz, "contract": e, "lt": lt, "kz": kz}


def test_a_bureau_exports_its_subtrees_postings_of_a_year_in_one_workbook(world, login, year_postings):
    bz, e, lt, kz = (year_postings[k] for k in ("bz", "contract", "lt", "kz"))
    client = login(world.bz_staff)
    response = client.get("/media-postings?year=2025&export=xlsx")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    rows = _sheet(response)
    by_project = {(r["采购项目"], r["公告类型"]): r for r in rows}
    assert len(rows) == 3 and set(by_project) == {(bz.title, "采购公告"), (lt.title, "采购公告"),
                                                  (e.current_procurement.title, "合同公告")}
    assert kz.engagement.reference not in {r["任务编号"] for r in rows}  # another prefecture's: absent
    late = by_project[(bz.title, "采购公告")]
    assert late["财政局"] == world.bz.name and late["任务编号"] == bz.engagement.reference
    assert late["指定媒体"].startswith("中国政府采购网") and late["网址"] == CCGP and str(late["发布日期"])[:10] == "2025-03-06"
    assert late["逾期工作日"] is None and late["逾期原因"] is None and late["法定发布期限"] is None
    contract = by_project[(e.current_procurement.title, "合同公告")]
    assert contract["逾期工作日"] == 2 and contract["逾期原因"].startswith("经办人出差") and contract["备注"] is None
    assert str(contract["法定发布期限"])[:10] == "2025-03-07" and contract["登记人"]
    county = by_project[(lt.title, "采购公告")]
    assert county["财政局"] == world.lt.name
    # the county sees its own only; 克州 its own only; a bureau filter narrows to a bureau and those below it
    assert {r["任务编号"] for r in _sheet(login(world.lt_staff).get("/media-postings?year=2025&export=xlsx"))} == {
        lt.engagement.reference}
    assert {r["任务编号"] for r in _sheet(login(world.kz_staff).get("/media-postings?year=2025&export=xlsx"))} == {
        kz.engagement.reference}
    client = login(world.bz_admin)
    assert [r["采购项目"] for r in _sheet(client.get(f"/media-postings?year=2025&bureau={world.lt.id}&export=xlsx"))] == [
        lt.title]
    assert [r["公告类型"] for r in _sheet(client.get("/media-postings?year=2025&kind=contract&export=xlsx"))] == ["合同公告"]
    assert _sheet(client.get(f"/media-postings?year=2025&bureau={world.kz.id}&export=xlsx")) == []  # not its subtree
    assert _sheet(client.get("/media-postings?year=2024&export=xlsx")) == []  # posted in 2025: not 2024's
    # the region reads every bureau's
    assert len(_sheet(login(world.region_staff).get("/media-postings?year=2025&export=xlsx"))) == 4


def test_the_year_page_lists_the_postings_and_links_the_export(world, login, year_postings):
    bz, kz = year_postings["bz"], year_postings["kz"]
    client = login(world.bz_staff)
    page = client.get("/media-postings?year=2025")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and bz.engagement.reference in text and kz.engagement.reference not in text
    assert f'href="{CCGP}" rel="noopener noreferrer nofollow"' in text and "export=xlsx" in text and "year=2025" in text
    assert 'data-testid="nav-media-postings"' in text
    media_page = client.get(f"/engagements/{bz.engagement.id}/media").get_data(as_text=True)
    assert 'data-testid="media-year-link"' in media_page


@pytest.mark.parametrize("query, phrase", [("?year=abc", "年度应为"), ("?year=1999", "年度应为"), ("?year=9999", "年度应为"),
                                           ("?year=2025&kind=nope", "kind"), ("?year=2025&bureau=x", "bureau")])
def test_a_bad_year_or_filter_is_refused_in_words_not_ignored(world, login, query, phrase):
    client = login(world.bz_staff)
    for suffix in ("", "&export=xlsx"):
        response = client.get("/media-postings" + query + suffix)
        assert response.status_code == 422 and phrase in response.get_data(as_text=True), (query, suffix)


def test_a_firm_a_budget_unit_an_expert_and_the_platform_are_refused_the_year_postings(world, login, client,
                                                                                      year_postings):
    """The bureaus' own record: a firm, a budget unit and an expert are refused (403), so is the platform's
    administrator (it files no return); a visitor is sent to sign in."""
    assert client.get("/media-postings?year=2025&export=xlsx").status_code in (302, 401)
    unit = factories.unit_user(world, "巴州统计局")
    db.session.commit()
    for user in (world.firm_user, unit, world.expert_user, world.sysadmin):
        signed_in = login(user)
        for url in ("/media-postings", "/media-postings?year=2025&export=xlsx"):
            response = signed_in.get(url)
            assert response.status_code == 403, (user.username, url, response.status_code)
            assert year_postings["bz"].engagement.reference not in response.get_data(as_text=True)


def test_the_year_page_and_workbook_read_the_postings_at_once(world, login, year_postings):
    """More postings, the same statements (tests/test_row_statements.py): no statement per row."""
    from tests.test_media_posting import _announced, _record
    from tests.test_row_statements import _flat

    def add():
        for _ in range(3):
            e = _announced(world)
            _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 7))
            _post(_consultation(world), world.bz_staff, THURSDAY)
            _post(_consultation_of(world, "lt", "轮台县医疗保障局"), world.lt_staff, THURSDAY)

    from tests.test_query_counts import counting

    client = login(world.bz_staff)
    workbook = "/media-postings?year=2025&export=xlsx"

    def statements() -> tuple[int, int]:
        with client.application.app_context(), counting() as seen:
            response = client.get(workbook)
        assert response.status_code == 200
        return len(seen), len(_sheet(response))

    statements()  # warm settings and kept statements
    before, rows = statements()
    _flat(client, ["/media-postings?year=2025"], add, [])  # adds 9 postings
    after, more = statements()
    assert (after, more) == (before, rows + 9)


# --- 10. the public home page shows each latest row's posting, as the lists do -------------------------------------

def test_the_public_home_shows_each_rows_posting_as_the_lists_do(world, client):
    """The home page's latest rows (open 采购公告, result and contract notices) name a recorded posting's medium, day
    and link (rel="noopener noreferrer nofollow"), with the lists' own macro; a row without one reads as before; never
    the bureau's note or its period warning."""
    from tests.test_media_posting import _announced, _record

    e = _announced(world)
    _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 11), note="经办人出差，返回后即在指定媒体发布。")
    notice = e.current_procurement.notice
    _record(e, "result", notice.id, world.bz_staff, date(2025, 3, 7), posted_on=date(2025, 2, 20))
    bare = _announced(world)
    p, other = _consultation(world), _consultation(world)
    _post(p, world.bz_staff, THURSDAY)
    db.session.commit()
    with simulated_clock(_at(date(2025, 3, 12))):  # both consultations still open
        home = client.get("/public/").get_data(as_text=True)
    link = f'href="{CCGP}" rel="noopener noreferrer nofollow"'
    for testid, day in [(f"home-media-procurement-{p.id}", "2025-03-06"),
                        (f"home-media-result-{notice.id}", "2025-02-20"),
                        (f"home-media-contract-{e.contract.notice.id}", "2025-03-11")]:
        row = home[home.index(f'data-testid="{testid}"'):][:400]
        assert f"{day} 发布于中国政府采购网" in row and 'href="http://www.ccgp.gov.cn/' in row, testid
        assert 'rel="noopener noreferrer nofollow"' in row, testid
    assert link in home  # the 采购公告's own
    assert f"/public/procurements/{other.id}" in home and f"home-media-procurement-{other.id}" not in home
    assert f"home-media-contract-{bare.contract.notice.id}" not in home
    assert f"home-media-result-{bare.current_procurement.notice.id}" not in home
    assert "经办人出差" not in home and "等标期不足" not in home
