"""The contract announcement (合同公告) the law requires: 政府采购法实施条例 第五十条 — "采购人应当自政府采购合同签订之日起
2个工作日内，将政府采购合同在省级以上人民政府财政部门指定的媒体上公告，但政府采购合同中涉及国家秘密、商业秘密的内容除外。"

What evalhub does with it (docs/rules.md, Procurement): the announcement is due 2 working days after the signing date
(the signing day not counted; the bureau's working-day calendar, core/calendar.py); the bureau that ran the procurement
publishes it once (web, API), audited; late is allowed with a reason and its working days recorded; the hourly job tells
the bureau the working day it falls due and once it is overdue; an overdue one shows on the dashboard, the engagement
list and page; the public pages show it only once published, without what the bureau withheld; integrity flags it.
Each test states its rule and source."""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, Notification, StoredFile, User
from evalhub.core.timeutil import simulated_clock
from evalhub.extensions import db
from evalhub.procurement import services as P, workflow
from tests import factories
from tests.statements import recorded

DELIVERABLES = "实施方案、评价报告、工作底稿；现场核查 3 个乡镇；报价明细见附件二"
PUBLIC_SERVICES = "实施方案、评价报告、工作底稿；现场核查 3 个乡镇"
CONTRACT_TEXT = "政府采购服务合同\n甲方：巴音郭楞蒙古自治州财政局\n乙方：巴州示范评价咨询有限公司\n服务内容：重点绩效评价"
AUTHOR = "巴州财政局绩效科 李娜 13899990000"


# --- helpers ---------------------------------------------------------------------------------------

# a posting after its deadline says why (procurement/media.py); on time, the note is only a note
LATE_NOTE = "经办人出差，返回后即在指定媒体发布。"

def CN():
    from evalhub.procurement import contract_notices

    return contract_notices


def _docx(text: str = CONTRACT_TEXT, author: str | None = AUTHOR) -> bytes:
    return factories.docx_bytes(text, author)


def _at(day: date) -> datetime:
    """10:00 Beijing on ``day`` (naive UTC), for ``simulated_clock``."""
    return datetime(day.year, day.month, day.day, 2, 0)


def _signed(world, signed_on: date, *, bureau_key: str = "bz", commissioner: str | None = None):
    """An engagement of ``bureau_key`` procured by single source, its contract signed on ``signed_on`` (the result
    notice moved back so the challenge period ended the day before and the 30 days of 第四十六条 still run)."""
    unit = "巴州统计局" if bureau_key == "bz" else "克州农业农村局"
    firm = world.firm if bureau_key == "bz" else world.other_firm
    e = factories.engagement(world, bureau_key=bureau_key, unit=unit, commissioner=commissioner)
    p = factories.single_source(world, e, firm, bureau_key)
    notice = p.notice
    notice.published_at = _at(signed_on - timedelta(days=20))
    notice.challenge_until = signed_on - timedelta(days=1)
    notice.media_due_on = None  # posted on the designated media (procurement/media.py): the contract is this file's
    db.session.flush()
    workflow.refresh_due(e)
    P.sign_contract(e, P.ContractInput(
        amount_wan="18", signed_on=signed_on, start_date=signed_on, end_date=signed_on + timedelta(days=300),
        plan_due=signed_on + timedelta(days=30), report_due=signed_on + timedelta(days=240),
        deliverables=DELIVERABLES), getattr(world, f"{bureau_key}_staff"))
    db.session.flush()
    return e


def _input(**kw):
    values = dict(services=DELIVERABLES, filename="合同公开版.docx", data=_docx())
    values.update(kw)
    return CN().NoticeInput(**values)


def _publish(e, actor, day: date, **kw):
    with simulated_clock(_at(day)):
        return CN().publish_notice(e, _input(**kw), actor)


def _post(e, actor, day: date):
    """Record the announcement's posting on the designated media (procurement/media.py): the legal announcement."""
    from evalhub.procurement import media

    with simulated_clock(_at(day)):
        return media.record_posting(e, "contract", e.contract.notice.id, media.PostingInput(
            medium="ccgp", url=f"http://www.ccgp.gov.cn/cggg/dfgg/htgg/t{day:%Y%m%d}_{e.id}.htm", posted_on=day, note=LATE_NOTE), actor)


def _notices() -> int:
    from evalhub.procurement.models import ContractNotice

    return db.session.execute(sa.select(sa.func.count(ContractNotice.id))).scalar_one()


def _events(action: str) -> list[AuditEvent]:
    return db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == action)).scalars().all()


def _inbox(user: User) -> list[str]:
    return [n.title for n in db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)
                                                .order_by(Notification.id)).scalars()]


def _card(html: str) -> str:
    """The dashboard's card of overdue announcements."""
    start = html.index('data-testid="contract-notice-card"')
    return html[start:html.index("</ul>", start)]


def _form(**kw) -> dict:
    form = {"services": DELIVERABLES, "file": (io.BytesIO(_docx()), "合同公开版.docx")}
    form.update(kw)
    return {k: v for k, v in form.items() if v is not None}


# --- 1. the due date: 2 working days from the signing date -----------------------------------------------------

@pytest.mark.parametrize("signed_on, due", [
    (date(2025, 3, 5), date(2025, 3, 7)),    # Wednesday → Friday
    (date(2025, 3, 7), date(2025, 3, 11)),   # Friday → Tuesday: the weekend is not counted
    (date(2025, 4, 3), date(2025, 4, 8)),    # Thursday before 清明 (4–6 April off) → Tuesday
    (date(2025, 4, 25), date(2025, 4, 28)),  # Friday → Monday: Sunday 27 April is a 调休 working day
])
def test_the_announcement_is_due_two_working_days_after_the_signing_day(world, signed_on, due):
    """实施条例 第五十条 ("自政府采购合同签订之日起2个工作日内"): the signing day is not counted (民法典 第二百零一条), the two
    days are working days of the bureau's calendar (core/calendar.py: weekends, 国务院办公厅 holidays and 调休 days).
    ``sign_contract`` stores the date on the contract."""
    e = _signed(world, signed_on)
    assert CN().notice_due(world.bz, signed_on) == due
    assert e.contract.notice_due_on == due


# --- 2. publishing: once, by the bureau that ran the procurement, audited ---------------------------------------

def test_publishing_on_the_due_day_is_on_time_audited_and_keeps_the_announcement_as_published(world):
    """第五十条: the bureau publishes the contract (项目名称、采购人、供应商、合同金额、主要服务内容和期限、签订日期、
    公告日期). The announcement keeps what it published (a firm renamed later does not rename it, as the result notice
    does, 实施条例 第四十三条); the step is audited (core/audit.py) and the contract no longer waits on it."""
    e = _signed(world, date(2025, 3, 5), commissioner="巴州民政局")
    notice = _publish(e, world.bz_staff, date(2025, 3, 7))
    assert notice.late_workdays == 0 and notice.due_on == date(2025, 3, 7) and notice.late_reason is None
    assert (notice.project_name, notice.purchaser_name, notice.supplier_name) == (e.name, "巴州民政局", world.firm.name)
    assert notice.supplier_uscc == world.firm.uscc and notice.amount == e.contract.amount
    assert (notice.signed_on, notice.start_date, notice.end_date) == (date(2025, 3, 5), e.contract.start_date,
                                                                      e.contract.end_date)
    assert notice.services == DELIVERABLES and notice.withheld is None
    # still owed: evalhub's copy is not the designated media's posting (procurement/media.py) …
    assert e.contract.notice_due_on == date(2025, 3, 7)
    _post(e, world.bz_staff, date(2025, 3, 7))
    assert e.contract.notice_due_on is None  # … which ends it
    event = _events("contract.notice_published")
    assert len(event) == 1 and event[0].bureau_id == world.bz.id and e.reference in event[0].summary
    world.firm.name = "改名后的评价公司"
    db.session.commit()
    assert notice.supplier_name == "巴州示范评价咨询有限公司"


def test_a_late_announcement_is_allowed_with_its_reason_and_counts_working_days_across_the_weekend(world):
    """Publishing after the due date is still allowed (the public must still read the contract) and records the
    lateness in working days (core/calendar.py ``working_days_between``): due Friday 7 March 2025, published Monday
    10 March is 1 working day late, not 3 days. Late needs a written reason (as a late contract does, 政府采购法 第四十六条
    in docs/rules.md), kept on the announcement and in the audit event."""
    e = _signed(world, date(2025, 3, 5))
    with pytest.raises(ValidationFailed) as caught:
        _publish(e, world.bz_staff, date(2025, 3, 10))
    assert "2025-03-07" in caught.value.fields["late_reason"] and "第五十条" in caught.value.fields["late_reason"]
    assert _notices() == 0
    notice = _publish(e, world.bz_staff, date(2025, 3, 10), late_reason="经办人出差，返回后即行公告。")
    assert notice.late_workdays == 1 and notice.late_reason == "经办人出差，返回后即行公告。"
    event = _events("contract.notice_published")[0]
    assert event.payload["late_workdays"] == 1 and "逾期 1 个工作日" in event.summary


def test_published_on_the_weekend_after_the_due_friday_is_one_working_day_late(world):
    """Due Friday 7 March 2025 (24:00, 民法典 第二百零三条), published Saturday 8 March: late — a reason is asked — and
    counted as of the next working day (1), not as on time (0 working days between Friday and Saturday)."""
    e = _signed(world, date(2025, 3, 5))
    with pytest.raises(ValidationFailed) as caught:
        _publish(e, world.bz_staff, date(2025, 3, 8))
    assert "late_reason" in caught.value.fields
    assert _publish(e, world.bz_staff, date(2025, 3, 8), late_reason="周末补发，周五未及发布。").late_workdays == 1


def test_lateness_is_counted_on_the_bureaus_calendar_across_a_holiday(world):
    """清明 2025 (4–6 April): signed Wednesday 2 April, the two working days are 3 and 7 April — published on Monday
    7 April is on time (a Monday-to-Friday count would say due 4 April); published on Wednesday 9 April is 2 working
    days late. A bureau's own correction to the calendar counts too (core/calendar.py)."""
    on_time = _signed(world, date(2025, 4, 2))
    assert _publish(on_time, world.bz_staff, date(2025, 4, 7)).late_workdays == 0
    late = _signed(world, date(2025, 4, 2))
    notice = _publish(late, world.bz_staff, date(2025, 4, 9), late_reason="清明节后集中办理，延误两日。")
    assert notice.due_on == date(2025, 4, 7) and notice.late_workdays == 2


def test_a_bureau_closure_entered_in_its_calendar_moves_the_due_date(world):
    """The bureau's calendar is the one counted (core/calendar.py: "a bureau's corrections apply to it and the bureaus
    under it"): a day the bureau marks as not working is not one of the two."""
    from evalhub.core.models import CalendarDay

    db.session.add(CalendarDay(bureau_id=world.bz.id, day=date(2025, 3, 6), is_workday=False, note="系统停机"))
    db.session.flush()
    assert CN().notice_due(world.bz, date(2025, 3, 5)) == date(2025, 3, 10)


def test_only_a_signed_contract_is_announced_and_only_once(world):
    """A contract announcement announces a signed contract (第五十条: "自政府采购合同签订之日起"), once: a second publication
    is refused (409) with nothing written — no second announcement, file or audit event."""
    unsigned = factories.engagement(world)
    with pytest.raises(Conflict) as caught:
        _publish(unsigned, world.bz_staff, date(2025, 3, 7))
    assert "尚未签订合同" in caught.value.message
    e = _signed(world, date(2025, 3, 5))
    _publish(e, world.bz_staff, date(2025, 3, 7))
    db.session.commit()
    files = db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one()
    with pytest.raises(Conflict) as caught:
        _publish(e, world.bz_admin, date(2025, 3, 7))
    assert "已发布" in caught.value.message
    db.session.rollback()
    assert _notices() == 1 and len(_events("contract.notice_published")) == 1
    assert db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one() == files


@pytest.mark.parametrize("who", ["region_staff", "kz_staff", "lt_staff", "sysadmin", "firm_user", "expert_user"])
def test_only_the_bureau_that_ran_the_procurement_publishes(world, who):
    """The announcement is the purchaser's (第五十条 "采购人应当…"): only the bureau that ran the procurement (its staff
    or admin) publishes it — not the bureau above it, another prefecture, a county below, the platform administrator,
    the firm or an expert. Nothing is written."""
    e = _signed(world, date(2025, 3, 5))
    with pytest.raises(PermissionDenied):
        _publish(e, getattr(world, who), date(2025, 3, 7))
    db.session.rollback()
    assert _notices() == 0


@pytest.mark.parametrize("change, field, phrase", [
    ({"services": "  "}, "services", "主要服务内容"),
    ({"data": None, "filename": None}, "file", "合同文本"),
    ({"filename": "合同.txt", "data": "纯文本合同".encode()}, "file", ""),
    ({"withheld_reason": "报价明细属于乙方商业秘密，不予公开。"}, "withheld", "国家秘密"),
    ({"withheld": "商业秘密"}, "withheld_reason", "不予公开"),
    ({"withheld": "机密"}, "withheld", ""),
    ({"services": PUBLIC_SERVICES}, "withheld", "不予公开"),
])
def test_bad_input_is_refused_in_chinese_and_nothing_is_written(world, change, field, phrase):
    """Bad input → a Chinese message beside its field (422), nothing half-written: the service content and the public
    text of the contract are required (第五十条 publishes the contract); content left out of the announcement is
    excluded only as 国家秘密 or 商业秘密 with the bureau's reason (第五十条 "…的内容除外") — a basis without a reason, a
    reason without its basis, or a shortened service content without either is refused, never silently skipped."""
    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    files = db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one()
    with pytest.raises(ValidationFailed) as caught:
        _publish(e, world.bz_staff, date(2025, 3, 7), **change)
    assert field in caught.value.fields and phrase in caught.value.fields[field], caught.value.fields
    db.session.rollback()
    assert _notices() == 0 and not _events("contract.notice_published")
    assert db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one() == files


def test_content_withheld_as_a_commercial_secret_is_recorded_with_its_reason_and_audited(world):
    """第五十条 "但政府采购合同中涉及国家秘密、商业秘密的内容除外": the bureau leaves the 报价明细 out of the announcement's service
    content, naming the basis (商业秘密) and its reason; the reason is the bureau's record (the announcement and the
    audit event), the public reads only that content was withheld and on which basis."""
    e = _signed(world, date(2025, 3, 5))
    reason = "附件二报价明细含乙方人工成本构成，属于乙方商业秘密。"
    notice = _publish(e, world.bz_staff, date(2025, 3, 6), services=PUBLIC_SERVICES, withheld="商业秘密",
                      withheld_reason=reason)
    assert notice.services == PUBLIC_SERVICES and notice.withheld.label == "商业秘密" and notice.withheld_reason == reason
    event = _events("contract.notice_published")[0]
    assert event.payload["withheld"] == "commercial_secret" and event.payload["withheld_reason"] == reason
    assert "商业秘密" in event.summary


# --- 3. the web --------------------------------------------------------------------------------------------------

def test_the_bureau_publishes_from_the_engagement_page(world, login):
    """A button on the engagement page (where the contract shows) leads to the announcement's form; posted, the
    announcement is published and the page says when and links the public page."""
    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    client = login(world.bz_staff)
    page = client.get(f"/engagements/{e.id}").get_data(as_text=True)
    assert 'data-testid="contract-notice-status"' in page and "2025-03-07" in page
    assert f"/engagements/{e.id}/contract/notice" in page
    form = client.get(f"/engagements/{e.id}/contract/notice")
    assert form.status_code == 200 and DELIVERABLES in form.get_data(as_text=True)
    done = client.post(f"/engagements/{e.id}/contract/notice", content_type="multipart/form-data",
                       data=_form(late_reason="补录历史合同，原合同已在纸质公告栏公告。"))
    assert done.status_code == 302, done.get_data(as_text=True)[:2000]
    assert _notices() == 1
    page = client.get(f"/engagements/{e.id}").get_data(as_text=True)
    from evalhub.procurement.models import ContractNotice

    notice = db.session.execute(sa.select(ContractNotice)).scalar_one()
    assert f"/public/contracts/{notice.id}" in page and "已发布" in page
    again = client.post(f"/engagements/{e.id}/contract/notice", content_type="multipart/form-data", data=_form(
        late_reason="补录历史合同，原合同已在纸质公告栏公告。"))
    assert again.status_code == 409 and "已发布" in again.get_data(as_text=True)
    assert _notices() == 1
    assert "补录历史合同" in page  # the timeline keeps the late reason for the bureau …
    firm_page = login(world.firm_user).get(f"/engagements/{e.id}").get_data(as_text=True)
    assert "发布合同公告" in firm_page and "补录历史合同" not in firm_page  # … the firm reads the step, not the reason


def test_bad_input_on_the_web_is_shown_beside_the_form_with_422(world, login):
    """Bad input → the form again with the Chinese message and 422, never a 500; nothing written."""
    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    client = login(world.bz_staff)
    response = client.post(f"/engagements/{e.id}/contract/notice", content_type="multipart/form-data",
                           data=_form(file=None, withheld="商业秘密"))
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "合同文本" in body and "不予公开" in body
    assert _notices() == 0


@pytest.mark.parametrize("who, statuses", [
    ("kz_staff", (403, 404)), ("region_staff", (403,)), ("lt_admin", (403, 404)), ("firm_user", (403,)),
    ("other_firm_user", (403, 404)), ("expert_user", (403, 404)),
])
def test_the_web_refuses_everyone_but_the_bureau(world, login, who, statuses):
    """Every new route behind the role and the organisation: another prefecture, the bureau above, a county below, the
    contracted firm, another firm, an expert — refused on the form and on the post; nothing written."""
    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    client = login(getattr(world, who))
    for response in (client.get(f"/engagements/{e.id}/contract/notice"),
                     client.post(f"/engagements/{e.id}/contract/notice", content_type="multipart/form-data",
                                 data=_form(late_reason="补录历史合同，原合同已在纸质公告栏公告。"))):
        assert response.status_code in statuses, (who, response.status_code)
    assert _notices() == 0
    assert f"/engagements/{e.id}/contract/notice" not in client.get(f"/engagements/{e.id}").get_data(as_text=True)


def test_a_visitor_is_sent_to_sign_in(world, client):
    """The form is not public (core.web.close_to_visitors)."""
    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    for response in (client.get(f"/engagements/{e.id}/contract/notice"),
                     client.post(f"/engagements/{e.id}/contract/notice", data=_form())):
        assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    assert _notices() == 0


# --- 4. the API --------------------------------------------------------------------------------------------------

def test_the_api_publishes_once_and_answers_in_chinese(world, client, auth):
    """POST /api/v1/engagements/{id}/contract-notice (multipart): 201 with the announcement; a second 409; bad input
    422 with each field; the bureau above 403; another prefecture, another firm 404 (what one may not see does not
    exist); the contracted firm 403; no token 401. GET reads the state: due, published, late."""
    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    url = f"/api/v1/engagements/{e.id}/contract-notice"
    status = client.get(url, headers=auth("bz.staff"))
    assert status.status_code == 200 and status.json["due_on"] == "2025-03-07" and status.json["notice"] is None
    assert status.json["overdue"] is True
    bad = client.post(url, headers=auth("bz.staff"), content_type="multipart/form-data", data=_form(file=None))
    assert bad.status_code == 422 and "file" in bad.json["error"]["fields"] and "late_reason" in bad.json["error"]["fields"]
    for username, expected in [("region.staff", 403), ("kz.staff", 404), ("firm1", 403), ("firm2", 404)]:
        refused = client.post(url, headers=auth(username), content_type="multipart/form-data",
                              data=_form(late_reason="补录历史合同，原合同已在纸质公告栏公告。"))
        assert refused.status_code == expected, (username, refused.status_code)
        assert refused.json["error"]["message"]
    assert client.post(url, content_type="multipart/form-data", data=_form()).status_code == 401
    assert _notices() == 0
    done = client.post(url, headers=auth("bz.staff"), content_type="multipart/form-data",
                       data=_form(late_reason="补录历史合同，原合同已在纸质公告栏公告。"))
    assert done.status_code == 201, done.get_data(as_text=True)
    body = done.json
    assert body["supplier_name"] == world.firm.name and body["due_on"] == "2025-03-07" and body["late_workdays"] > 0
    assert body["public_url"] == f"/public/contracts/{body['id']}" and body["amount"] == "180000.00"
    again = client.post(url, headers=auth("bz.staff"), content_type="multipart/form-data",
                        data=_form(late_reason="补录历史合同，原合同已在纸质公告栏公告。"))
    assert again.status_code == 409 and "已发布" in again.json["error"]["message"]
    assert body["late_reason"] == "补录历史合同，原合同已在纸质公告栏公告。"
    firm_view = client.get(url, headers=auth("firm1")).json["notice"]  # the firm reads the announcement, not the reasons
    assert firm_view["id"] == body["id"] and firm_view["late_reason"] is None and firm_view["withheld_reason"] is None
    assert _notices() == 1


def test_the_openapi_document_describes_the_operations_and_their_refusals(client):
    spec = client.get("/api/v1/openapi.json").json
    post = spec["paths"]["/api/v1/engagements/{engagement_id}/contract-notice"]["post"]
    assert list(post["requestBody"]["content"]) == ["multipart/form-data"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(post["responses"])
    assert "第五十条" in post["summary"] + post.get("description", "")
    assert "get" in spec["paths"]["/api/v1/engagements/{engagement_id}/contract-notice"]
    public = spec["paths"]["/api/v1/public/contract-notices"]["get"]
    assert "security" not in public


# --- 5. the public pages --------------------------------------------------------------------------------------

def test_the_public_reads_an_announcement_only_once_published_and_never_what_was_withheld(world, client):
    """The public pages (like the result notices, tests/test_public_procurement.py) show what was published: a signed
    contract appears once its announcement is out — never before, never another bureau's unpublished one; the
    announcement names 项目名称、采购人、供应商、合同金额、主要服务内容和期限、签订日期、公告日期, says that content was withheld
    and on which basis, but not the content left out nor the bureau's reason."""
    e = _signed(world, date(2025, 3, 5))
    other = _signed(world, date(2025, 3, 5), bureau_key="kz")
    db.session.commit()
    listing = client.get("/public/contracts")
    assert listing.status_code == 200 and e.name not in listing.get_data(as_text=True)
    reason = "附件二报价明细含乙方人工成本构成，属于乙方商业秘密。"
    notice = _publish(e, world.bz_staff, date(2025, 3, 6), services=PUBLIC_SERVICES, withheld="商业秘密",
                      withheld_reason=reason)
    db.session.commit()
    listing = client.get("/public/contracts").get_data(as_text=True)
    assert e.name in listing and other.name not in listing and world.other_firm.name not in listing
    page = client.get(f"/public/contracts/{notice.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for shown in (e.name, world.bz.name, world.firm.name, "18.00", PUBLIC_SERVICES, "2025-03-05", "2025-03-06",
                  e.contract.end_date.strftime("%Y-%m-%d"), "商业秘密", "第五十条"):
        assert shown in html, shown
    assert "报价明细见附件二" not in html and reason not in html
    assert "报价明细见附件二" not in listing and reason not in listing
    assert client.get(f"/public/contracts/{notice.id + 1000}").status_code == 404
    assert 'href="/public/contracts"' in client.get("/public/").get_data(as_text=True)


def test_the_public_file_is_the_bureaus_text_without_the_properties_that_name_people(world, client, login):
    """The contract text published is the copy core/scrub.py makes for every public file (as a published report's,
    docs/rules.md "Files in and out"): the .docx's author and last-modified-by are gone; the bureau keeps its upload."""
    import docx

    e = _signed(world, date(2025, 3, 5))
    notice = _publish(e, world.bz_staff, date(2025, 3, 6))
    db.session.commit()
    response = client.get(f"/public/contracts/{notice.id}/file")
    assert response.status_code == 200
    core = docx.Document(io.BytesIO(response.data)).core_properties
    assert not core.author and not core.last_modified_by
    assert "政府采购服务合同" in "\n".join(p.text for p in docx.Document(io.BytesIO(response.data)).paragraphs)
    original = login(world.bz_staff).get(f"/engagements/{e.id}/contract/notice/upload")
    assert original.status_code == 200 and docx.Document(io.BytesIO(original.data)).core_properties.author == AUTHOR
    for outsider in (world.firm_user, world.kz_staff):
        assert login(outsider).get(f"/engagements/{e.id}/contract/notice/upload").status_code in (403, 404)


def test_the_public_api_lists_published_announcements_only(world, client):
    e = _signed(world, date(2025, 3, 5))
    unpublished = _signed(world, date(2025, 3, 5), bureau_key="kz")
    _publish(e, world.bz_staff, date(2025, 3, 6))
    db.session.commit()
    body = client.get("/api/v1/public/contract-notices").json
    assert body["total"] == 1 and body["items"][0]["project_name"] == e.name
    assert body["items"][0]["purchaser_name"] == world.bz.name and "withheld_reason" not in body["items"][0]
    assert unpublished.name not in str(body)
    assert client.get("/api/v1/public/contract-notices?bureau=653000").json["total"] == 0


# --- 6. reminders and the overdue surfaces ------------------------------------------------------------------------

def test_the_job_tells_the_bureau_the_working_day_it_falls_due_and_once_overdue(world):
    """The hourly job (core/jobs.py periodic ``procurement.contract_notice``) tells the bureau that signed — its staff,
    through the notification matrix's ``contract_notice_due`` and ``contract_notice_overdue`` — on the due working day
    and once the day has passed, each once; nobody else (not the firm, not another bureau), and nothing once published."""
    e = _signed(world, date(2025, 3, 5))
    job = CN().remind_notices
    assert job(today=date(2025, 3, 6)) == 0
    assert job(today=date(2025, 3, 7)) == 2  # bz.admin and bz.staff
    assert job(today=date(2025, 3, 7)) == 0
    assert [t for t in _inbox(world.bz_staff) if "合同公告" in t] == [f"{e.reference} 合同公告今日到期"]
    assert job(today=date(2025, 3, 8)) == 2
    assert job(today=date(2025, 3, 10)) == 0
    assert _inbox(world.bz_admin)[-1] == f"{e.reference} 合同公告逾期未发布"
    assert "2025-03-07" in db.session.execute(sa.select(Notification.body).where(
        Notification.user_id == world.bz_admin.id).order_by(Notification.id.desc()).limit(1)).scalar_one()
    assert not any("合同公告" in t for t in _inbox(world.firm_user))
    assert not _inbox(world.kz_staff) and not _inbox(world.region_staff)
    published = _signed(world, date(2025, 3, 5))
    _publish(published, world.bz_staff, date(2025, 3, 6))
    _post(published, world.bz_staff, date(2025, 3, 6))
    assert job(today=date(2025, 3, 20)) == 0


def test_a_contract_signed_before_this_rule_is_not_dated_overdue_after_the_upgrade(world, login, auth):
    """A contract recorded before evalhub tracked the announcement (no due date stored) is not made overdue by the
    upgrade — not on the dashboard, the engagement page or the API, not by the job, not as a red flag: the bureau
    announced it on the designated media or not, without evalhub knowing, and dating every past contract would fill
    the dashboard and send a reminder for each. It can still be announced here, as a 补录 with nothing counted late."""
    from evalhub.integrity import redflags
    from evalhub.integrity.models import Indicator, RedFlag

    e = _signed(world, date(2025, 3, 5))
    e.contract.notice_due_on = None
    db.session.commit()
    assert CN().remind_notices(today=date(2025, 4, 1)) == 0
    assert e.contract.notice_due_on is None
    client = login(world.bz_staff)
    assert e.reference not in _card(client.get("/").get_data(as_text=True))
    page = client.get(f"/engagements/{e.id}").get_data(as_text=True)
    assert 'data-testid="contract-notice-overdue"' not in page and "可在此补录" in page
    state = client.get(f"/api/v1/engagements/{e.id}/contract-notice", headers=auth("bz.staff")).json
    assert state["overdue"] is False and state["due_on"] is None
    notice = _publish(e, world.bz_staff, date(2026, 6, 1))  # a year on: no late reason asked
    assert notice.due_on is None and notice.late_workdays == 0 and notice.late_reason is None
    redflags.refresh()
    assert not db.session.execute(sa.select(RedFlag).where(RedFlag.indicator == Indicator.CONTRACT_NOTICE)).first()
    db.session.commit()
    assert "补录" in login(world.bz_staff).get(f"/engagements/{e.id}").get_data(as_text=True)


def test_the_public_ocds_package_shows_the_contract_once_it_is_announced(world, client):
    """The public learns of the contract from its announcement (实施条例 第五十条): the public OCDS release of the
    procurement lists no contract while the announcement is owed, and lists it once it is out."""
    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    url = f"/public/procurements/{e.current_procurement.id}/ocds.json"
    assert client.get(url).json["releases"][0].get("contracts", []) == []
    _publish(e, world.bz_staff, date(2025, 3, 6))
    db.session.commit()
    contracts = client.get(url).json["releases"][0]["contracts"]
    assert [c["dateSigned"][:10] for c in contracts] == ["2025-03-05"]


def test_an_overdue_announcement_shows_on_the_bureaus_dashboard_list_and_engagement_page(world, login):
    """Where overdue contracts show (the dashboard, the engagement list's filter, the engagement page), an announcement
    past its due date shows, for the bureau that owes it only, until it is published."""
    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    client = login(world.bz_staff)
    card = _card(client.get("/").get_data(as_text=True))
    assert e.reference in card and "2025-03-07" in card
    listed = client.get("/engagements?notice_overdue=1").get_data(as_text=True)
    assert e.reference in listed and "合同公告应于 2025-03-07 前发布" in listed
    assert 'data-testid="contract-notice-overdue"' in client.get(f"/engagements/{e.id}").get_data(as_text=True)
    assert e.reference not in _card(login(world.kz_staff).get("/").get_data(as_text=True))
    _publish(e, world.bz_staff, date(2025, 3, 6))
    _post(e, world.bz_staff, date(2025, 3, 6))  # the legal announcement: its posting on the designated media
    db.session.commit()
    client = login(world.bz_staff)
    assert e.reference not in _card(client.get("/").get_data(as_text=True))
    assert e.reference not in client.get("/engagements?notice_overdue=1").get_data(as_text=True)
    assert 'data-testid="contract-notice-overdue"' not in client.get(f"/engagements/{e.id}").get_data(as_text=True)


# --- 7. two at once ---------------------------------------------------------------------------------------------

def test_a_publication_that_read_the_contract_before_another_committed_is_refused(app, world):
    """Two clicks at once give one announcement (core/concurrency.py ``hold``: the contract's lock, then the row read
    again): request A has loaded the unpublished contract when request B publishes and commits; A is refused (409)
    and nothing of it is written."""
    from tests.test_races import in_context
    from evalhub.procurement.models import Engagement

    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    e_id, staff_id, admin_id = e.id, world.bz_staff.id, world.bz_admin.id
    with app.app_context():
        a_e, a_user = db.session.get(Engagement, e_id), db.session.get(User, staff_id)
        assert a_e.contract.notice_due_on is not None
        in_context(app, lambda: CN().publish_notice(db.session.get(Engagement, e_id), _input(
            late_reason="补录历史合同，原合同已在纸质公告栏公告。"), db.session.get(User, admin_id)))
        try:
            with pytest.raises(Conflict):
                CN().publish_notice(a_e, _input(late_reason="补录历史合同，原合同已在纸质公告栏公告。"), a_user)
        finally:
            db.session.rollback()
            db.session.remove()
    assert _notices() == 1 and len(_events("contract.notice_published")) == 1


def test_two_publications_at_once_give_one_announcement(app, world, monkeypatch):
    """The same race with both requests running (PostgreSQL, as the other race tests): B starts once A holds the
    contract and has found nothing published (A is storing its files); B waits on the lock and, A committed, is
    refused by the service's own check — not by the unique key, which would leave B's stored files behind and
    answer with the database's words. One announcement, one audit event."""
    from tests.test_races import postgresql_only  # noqa: F401  (skipped on SQLite below)
    from tests.test_races_more import done_or_refused, meanwhile, settle
    from evalhub.procurement.models import Engagement

    if db.engine.dialect.name != "postgresql":
        pytest.skip("concurrency is tested against PostgreSQL")
    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    e_id, staff_id, admin_id = e.id, world.bz_staff.id, world.bz_admin.id

    def publish(user_id):
        return lambda: CN().publish_notice(db.session.get(Engagement, e_id), _input(
            late_reason="补录历史合同，原合同已在纸质公告栏公告。"), db.session.get(User, user_id))

    refusals: list[str] = []

    def second():
        try:
            publish(admin_id)()
        except Conflict as exc:
            refusals.append(exc.message)

    raced = meanwhile(app, monkeypatch, CN().files, "store", second)
    done_or_refused(app, publish(staff_id))
    settle(raced)
    assert _notices() == 1 and len(_events("contract.notice_published")) == 1
    assert len(refusals) == 1 and "不能重复发布" in refusals[0]


# --- 8. integrity: a red flag on the bureau's procurement history -----------------------------------------------

def test_an_announcement_late_or_missing_is_a_red_flag(world):
    """Procurement integrity red flags (evalhub/integrity/redflags.py, after the Open Contracting Partnership's
    Cardinal: indicators over the procurement history, each explained and linked to its procurement): a contract
    announced after its due date (the working days late) or not at all past it. The flag is the bureau's, not the
    firm's (the purchaser owes the announcement)."""
    from evalhub.integrity import redflags as R
    from evalhub.integrity.models import Indicator, RedFlag

    late = _signed(world, date(2025, 3, 5))
    _publish(late, world.bz_staff, date(2025, 3, 11), late_reason="经办人出差，返回后即行公告。")
    _post(late, world.bz_staff, date(2025, 3, 11))
    missing = _signed(world, date(2025, 3, 5))
    on_time = _signed(world, date(2025, 3, 5))
    _publish(on_time, world.bz_staff, date(2025, 3, 7))
    _post(on_time, world.bz_staff, date(2025, 3, 7))
    R.refresh()
    flags = {f.procurement_id: f for f in db.session.execute(sa.select(RedFlag).where(
        RedFlag.indicator == Indicator.CONTRACT_NOTICE)).scalars()}
    assert set(flags) == {late.current_procurement.id, missing.current_procurement.id}
    assert flags[late.current_procurement.id].value == 2 and "2 个工作日" in flags[late.current_procurement.id].explanation
    assert "未发布" in flags[missing.current_procurement.id].explanation
    assert all(f.firm_id is None and f.bureau_id == world.bz.id for f in flags.values())


def test_an_announcement_published_late_before_media_postings_were_recorded_keeps_its_red_flag(world):
    """Announcements evalhub published before it recorded postings on the designated media are owed nothing more
    (migration 4b8de4a7f75e: the contract's due date was cleared at publication, and is not set again). One published
    late then keeps its flag, on evalhub's copy's lateness, said as such; one on time is not flagged."""
    from evalhub.integrity import redflags as R
    from evalhub.integrity.models import Indicator, RedFlag

    late = _signed(world, date(2025, 3, 5))
    _publish(late, world.bz_staff, date(2025, 3, 11), late_reason="经办人出差，返回后即行公告。")
    on_time = _signed(world, date(2025, 3, 5))
    _publish(on_time, world.bz_staff, date(2025, 3, 7))
    for e in (late, on_time):  # as the upgrade leaves them: published, no posting, nothing owed
        e.contract.notice_due_on = None
    db.session.commit()
    R.refresh()
    flags = {f.procurement_id: f for f in db.session.execute(sa.select(RedFlag).where(
        RedFlag.indicator == Indicator.CONTRACT_NOTICE)).scalars()}
    assert set(flags) == {late.current_procurement.id}
    assert flags[late.current_procurement.id].value == 2
    assert "在本系统发布（未登记指定媒体发布）" in flags[late.current_procurement.id].explanation


def test_the_red_flag_counts_every_overdue_announcement_as_the_one_by_one_rule_does_from_one_calendar_read(world):
    """The refresh counts the working days each announcement still owed is late over the whole province: the batch
    (``core.calendar.late_workdays_each``) gives what ``late_workdays`` gives one by one — weekends, the national
    holidays, a prefecture's correction a county inherits, a day off rolled to the next working day — and reads
    the calendar once, however many contracts are overdue (it read it twice per contract)."""
    from evalhub.core.calendar import late_workdays_each
    from evalhub.core.models import CalendarDay
    from evalhub.procurement.contract_notices import late_workdays

    db.session.add_all([CalendarDay(bureau_id=world.bz.id, day=date(2025, 4, 8), is_workday=False, note="地方节日"),
                        CalendarDay(bureau_id=world.lt.id, day=date(2025, 4, 12), is_workday=True, note="调休上班")])
    db.session.flush()
    today = date(2025, 4, 13)  # a Sunday
    items = [(bureau, date(2025, 3, 28) + timedelta(days=n)) for bureau in (world.bz, world.lt, world.kz, world.krl)
             for n in range(0, 20)]
    with recorded() as seen:
        batch = late_workdays_each(items, today)
    assert batch == [late_workdays(bureau, due, today) for bureau, due in items]
    assert sum("calendar_day" in s.lower() for s in seen) == 1
    assert late_workdays_each([(world.bz, today)], today) == [0]
