"""The notices' postings on the designated media (指定媒体): the legal announcement.

政府采购法 第十一条 and 政府采购信息发布管理办法（财政部令第101号）: procurement information is published on the media a
provincial-or-higher finance department designated (中国政府采购网 and its provincial sub-sites); 财政部令第87号 第六十九条:
the result notice within 2 working days of the winner being determined; 政府采购法实施条例 第五十条: the contract
announcement within 2 working days of the signing. evalhub's own public pages are a copy, not a designated medium
(docs/rules.md, Procurement; procurement/media.py). Each test states its rule."""
from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, User
from evalhub.core.timeutil import beijing_today, simulated_clock
from evalhub.extensions import db
from tests import factories
from tests.test_contract_notice import _publish, _signed

CCGP = "http://www.ccgp.gov.cn/cggg/dfgg/htgg/202503/t20250307_1234567.htm"


# a posting after its deadline says why (procurement/media.py); on time, the note is only a note
LATE_NOTE = "经办人出差，返回后即在指定媒体发布。"

def M():
    from evalhub.procurement import media

    return media


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 2, 0)  # 10:00 Beijing


def _input(**kw):
    values = dict(medium="ccgp", url=CCGP, posted_on=date(2025, 3, 7), note=LATE_NOTE)
    values.update(kw)
    return M().PostingInput(**values)


def _record(e, kind, notice_id, actor, day: date, **kw):
    with simulated_clock(_at(day)):
        return M().record_posting(e, kind, notice_id, _input(posted_on=kw.pop("posted_on", day), **kw), actor)


def _postings() -> int:
    from evalhub.procurement.models import MediaPosting

    return db.session.execute(sa.select(sa.func.count(MediaPosting.id))).scalar_one()


def _events(action: str) -> list[AuditEvent]:
    return db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == action)).scalars().all()


def _announced(world):
    """A contract signed Wednesday 5 March 2025 (due Friday 7 March), announced in evalhub on the 6th."""
    e = _signed(world, date(2025, 3, 5))
    _publish(e, world.bz_staff, date(2025, 3, 6))
    return e


def _result(world, day: date = date(2025, 3, 5)):
    """A single source's result notice, published (the award) on ``day``."""
    p = factories.single_source(world)
    p.notice.published_at = _at(day)
    p.notice.media_due_on = M().result_due(world.bz, day)  # owed from that day, as at the award
    db.session.flush()
    return p.engagement, p.notice


# --- 1. the deadlines: 2 working days, on the bureau's calendar ---------------------------------------------------

def test_a_result_notice_posted_within_two_working_days_is_on_time_and_later_counts_working_days(world):
    """87号令 第六十九条 ("自中标人确定之日起2个工作日内，在省级以上财政部门指定的媒体上公告"): the winner was determined on
    Wednesday 5 March 2025 (the result notice is published at the award), so Friday 7 March is the last day; posted on
    Monday 10 March it is 1 working day late (core/calendar.py), not 3 days. The posting is audited."""
    e, notice = _result(world)
    posting = _record(e, "result", notice.id, world.bz_staff, date(2025, 3, 10))
    assert posting.due_on == date(2025, 3, 7) and posting.late_workdays == 1
    assert posting.kind.value == "result" and posting.bureau_id == world.bz.id
    event = _events("notice.media_recorded")
    assert len(event) == 1 and "逾期 1 个工作日" in event[0].summary and event[0].payload["url"] == CCGP
    e2, on_time = _result(world)
    assert _record(e2, "result", on_time.id, world.bz_staff, date(2025, 3, 7)).late_workdays == 0


def test_the_contract_announcement_is_owed_until_posted_on_the_designated_media(world, login):
    """实施条例 第五十条 asks for the announcement "在省级以上人民政府财政部门指定的媒体上": evalhub's own copy does not end the
    duty. Published here only, the contract is still listed overdue — the dashboard, the engagement list and page say
    "未登记指定媒体发布" — until the posting is recorded, which ends it with its working days late kept."""
    e = _announced(world)
    assert e.contract.notice_due_on == date(2025, 3, 7)
    db.session.commit()
    client = login(world.bz_staff)
    dashboard = client.get("/").get_data(as_text=True)
    card = dashboard[dashboard.index('data-testid="contract-notice-card"'):]
    assert e.reference in card[:card.index("</ul>")] and "未登记指定媒体发布" in card[:card.index("</ul>")]
    listed = client.get("/engagements?notice_overdue=1").get_data(as_text=True)
    assert e.reference in listed and "未登记指定媒体发布" in listed
    page = client.get(f"/engagements/{e.id}").get_data(as_text=True)
    assert 'data-testid="contract-notice-overdue"' in page and "未登记指定媒体发布" in page
    posting = _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 11))
    assert posting.due_on == date(2025, 3, 7) and posting.late_workdays == 2 and e.contract.notice_due_on is None
    db.session.commit()
    client = login(world.bz_staff)
    assert e.reference not in client.get("/engagements?notice_overdue=1").get_data(as_text=True)
    page = client.get(f"/engagements/{e.id}").get_data(as_text=True)
    assert 'data-testid="contract-notice-overdue"' not in page and "逾期 2 个工作日" in page and CCGP in page


def test_the_red_flag_reads_the_posting_not_evalhubs_copy(world):
    """The red flag "合同公告逾期或未发布" (integrity/redflags.py) counts the designated media's posting: published here on
    time but not recorded there, the announcement is still missing ("未登记指定媒体发布"); posted there late, the value
    is the posting's working days late, whatever evalhub's copy's date."""
    from evalhub.integrity import redflags as R
    from evalhub.integrity.models import Indicator, RedFlag

    here_only = _announced(world)
    late_there = _announced(world)
    _record(late_there, "contract", late_there.contract.notice.id, world.bz_staff, date(2025, 3, 12))
    on_time = _announced(world)
    _record(on_time, "contract", on_time.contract.notice.id, world.bz_staff, date(2025, 3, 7))
    R.refresh()
    flags = {f.procurement_id: f for f in db.session.execute(sa.select(RedFlag).where(
        RedFlag.indicator == Indicator.CONTRACT_NOTICE)).scalars()}
    assert set(flags) == {here_only.current_procurement.id, late_there.current_procurement.id}
    assert "未登记指定媒体发布" in flags[here_only.current_procurement.id].explanation
    assert flags[late_there.current_procurement.id].value == 3
    assert "在指定媒体发布" in flags[late_there.current_procurement.id].explanation


# --- 2. bad input: a Chinese message beside its field, nothing written --------------------------------------------

@pytest.mark.parametrize("change, field, phrase", [
    ({"url": ""}, "url", "网址"),
    ({"url": "ftp://www.ccgp.gov.cn/a.htm"}, "url", "http://"),
    ({"url": "javascript:alert(1)"}, "url", "http://"),
    ({"url": "http://"}, "url", "域名"),
    ({"url": "https://localhost/x"}, "url", "域名"),
    ({"url": "https://www.ccgp.gov.cn@evil.example/x"}, "url", "用户名"),
    ({"url": "https://www.ccgp.gov.cn/a b.htm"}, "url", "空格"),
    ({"url": "https://www.ccgp.gov.cn/" + "a" * 500}, "url", "500"),
    ({"url": "https://evalhub.example.cn/public/contracts/1"}, "url", "ccgp.gov.cn"),
    ({"medium": "ccgp_xinjiang"}, "url", "ccgp-xinjiang.gov.cn"),
    ({"medium": "人民日报"}, "medium", "指定媒体"),
    ({"medium": "other", "url": "https://www.example-media.cn/n/1"}, "medium_name", "名称"),
    ({"posted_on": "2025/03/07"}, "posted_on", "YYYY-MM-DD"),
    ({"posted_on": "2025-W10-5"}, "posted_on", "YYYY-MM-DD"),  # an ISO week date, which fromisoformat reads
    ({"posted_on": date(2025, 3, 8)}, "posted_on", "不能晚于今天"),
    ({"posted_on": date(2025, 3, 4)}, "posted_on", "合同签订之日"),
    ({"note": "x" * 501}, "note", "500"),
])
def test_bad_input_is_refused_in_chinese_and_nothing_is_written(world, change, field, phrase):
    """The URL is one the public may follow: http or https, a host with a domain, no credentials before an "@", no
    space, at most 500 characters — and on the chosen medium's domain (evalhub's own page pasted by mistake is
    refused). The date is a real posting day: not in the future, not before the event the notice announces."""
    e = _announced(world)
    db.session.commit()
    with pytest.raises(ValidationFailed) as caught:
        with simulated_clock(_at(date(2025, 3, 7))):
            M().record_posting(e, "contract", e.contract.notice.id, _input(**change), world.bz_staff)
    assert field in caught.value.fields and phrase in caught.value.fields[field], caught.value.fields
    db.session.rollback()
    assert _postings() == 0 and not _events("notice.media_recorded")
    assert e.contract.notice_due_on == date(2025, 3, 7)


def test_a_posting_after_its_deadline_needs_the_reason_in_the_note(world):
    """As evalhub's own late copy needs a reason (实施条例 第五十条: 2 working days), so does the legal announcement
    posted late: the hourly reminder tells the bureau 逾期发布须说明原因, and the red flag reads the reason."""
    e = _announced(world)
    db.session.commit()
    for note in ("", "来不及"):
        with pytest.raises(ValidationFailed) as caught:
            _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 11), note=note)
        assert "逾期 2 个工作日" in caught.value.fields["note"] and "原因" in caught.value.fields["note"]
        db.session.rollback()
    posting = _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 11),
                      note="经办人出差，返回后即在指定媒体发布。")
    assert posting.late_workdays == 2 and posting.note.startswith("经办人出差")


def test_another_designated_medium_is_named_and_a_provincial_sub_site_is_checked_by_its_domain(world):
    e = _announced(world)
    other = _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 7), medium="其他指定媒体",
                    medium_name="新疆维吾尔自治区政府采购指定媒体", url="https://www.example-media.cn/n/1")
    assert other.medium_label == "新疆维吾尔自治区政府采购指定媒体"
    e2, notice = _result(world)
    xj = _record(e2, "result", notice.id, world.bz_staff, date(2025, 3, 6), medium="ccgp_xinjiang",
                 url="https://www.ccgp-xinjiang.gov.cn/ZcyAnnouncement/1")
    assert xj.medium_label.startswith("中国政府采购网新疆分网")


# --- 3. once; a correction with its reason, the old values in the audit log ----------------------------------------

def test_one_posting_per_notice_and_a_correction_keeps_the_old_values_in_the_audit_log(world):
    e = _announced(world)
    posting = _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 7))
    db.session.commit()
    with pytest.raises(Conflict) as caught:
        _record(e, "contract", e.contract.notice.id, world.bz_admin, date(2025, 3, 7))
    assert "已登记" in caught.value.message and "更正" in caught.value.message
    db.session.rollback()
    fixed = "http://www.ccgp.gov.cn/cggg/dfgg/htgg/202503/t20250310_7654321.htm"
    with simulated_clock(_at(date(2025, 3, 12))):
        with pytest.raises(ValidationFailed) as caught:
            M().correct_posting(e, posting.id, _input(url=fixed), "", world.bz_staff)
        assert "correction_reason" in caught.value.fields
        with pytest.raises(ValidationFailed):
            M().correct_posting(e, posting.id, _input(), "登记时复制错了网址，现予更正。", world.bz_staff)  # nothing changes
        M().correct_posting(e, posting.id, _input(url=fixed, posted_on=date(2025, 3, 10)), "登记时复制错了网址和日期，现予更正。",
                            world.bz_admin)
    db.session.commit()
    assert _postings() == 1 and posting.url == fixed and posting.late_workdays == 1
    assert posting.correction_reason == "登记时复制错了网址和日期，现予更正。" and posting.corrected_by_id == world.bz_admin.id
    event = _events("notice.media_corrected")
    assert len(event) == 1 and event[0].payload["old"]["url"] == CCGP and event[0].payload["new"]["url"] == fixed
    assert event[0].payload["old"]["posted_on"] == "2025-03-07" and "现予更正" in event[0].summary


# --- 4. who: the bureau that ran the procurement only -------------------------------------------------------------

@pytest.mark.parametrize("who", ["region_staff", "kz_staff", "lt_staff", "sysadmin", "firm_user", "expert_user"])
def test_only_the_bureau_that_ran_the_procurement_records(world, who):
    """Publishing on the designated media is the purchaser's act (第五十条 "采购人应当…", 87号令 第六十九条): not the bureau
    above, another prefecture, a county below, the platform administrator, the firm or an expert. Nothing written."""
    e = _announced(world)
    with pytest.raises(PermissionDenied):
        _record(e, "contract", e.contract.notice.id, getattr(world, who), date(2025, 3, 7))
    db.session.rollback()
    assert _postings() == 0


def test_a_notice_of_another_engagement_is_not_found(world):
    e = _announced(world)
    other, notice = _result(world)
    with pytest.raises(NotFound):
        _record(e, "result", notice.id, world.bz_staff, date(2025, 3, 7))
    with pytest.raises(NotFound):
        _record(e, "procurement", e.current_procurement.id, world.bz_staff, date(2025, 3, 7))  # single source: no 采购公告
    assert _postings() == 0


# --- 5. the web ----------------------------------------------------------------------------------------------------

def test_the_bureau_records_and_corrects_from_the_engagement_page(world, login):
    e = _announced(world)
    db.session.commit()
    client = login(world.bz_staff)
    page = client.get(f"/engagements/{e.id}").get_data(as_text=True)
    assert f"/engagements/{e.id}/media" in page
    listing = client.get(f"/engagements/{e.id}/media").get_data(as_text=True)
    notice_id = e.contract.notice.id
    assert "未登记指定媒体发布" in listing and f"/engagements/{e.id}/media/contract/{notice_id}" in listing
    url = f"/engagements/{e.id}/media/contract/{notice_id}"
    with simulated_clock(_at(date(2025, 3, 7))):
        assert client.get(url).status_code == 200
        bad = client.post(url, data={"medium": "ccgp", "url": "javascript:alert(1)", "posted_on": "2025-03-07"})
        assert bad.status_code == 422 and "http://" in bad.get_data(as_text=True)
        assert _postings() == 0
        done = client.post(url, data={"medium": "ccgp", "url": CCGP, "posted_on": "2025-03-07"})
        assert done.status_code == 302, done.get_data(as_text=True)[:2000]
        again = client.post(url, data={"medium": "ccgp", "url": CCGP, "posted_on": "2025-03-07"})
        assert again.status_code == 422 and "更正原因" in again.get_data(as_text=True)  # now the correction form
        fixed = client.post(url, data={"medium": "ccgp", "url": CCGP + "?v=2", "posted_on": "2025-03-07",
                                       "correction_reason": "网址少了版本参数，现予更正。"})
        assert fixed.status_code == 302
    assert _postings() == 1 and len(_events("notice.media_corrected")) == 1
    listing = login(world.bz_staff).get(f"/engagements/{e.id}/media").get_data(as_text=True)
    assert "按期" in listing and CCGP + "?v=2" in listing


@pytest.mark.parametrize("who, statuses", [
    ("kz_staff", (403, 404)), ("region_staff", (403,)), ("lt_admin", (403, 404)), ("firm_user", (403,)),
    ("other_firm_user", (403, 404)), ("expert_user", (403, 404)),
])
def test_the_web_refuses_everyone_but_the_bureau(world, login, who, statuses):
    e = _announced(world)
    db.session.commit()
    client = login(getattr(world, who))
    url = f"/engagements/{e.id}/media/contract/{e.contract.notice.id}"
    for response in (client.get(f"/engagements/{e.id}/media"), client.get(url),
                     client.post(url, data={"medium": "ccgp", "url": CCGP, "posted_on": "2025-03-07"})):
        assert response.status_code in statuses, (who, response.status_code)
    assert _postings() == 0


def test_a_visitor_is_sent_to_sign_in_and_an_unknown_kind_is_404(world, client, login):
    e = _announced(world)
    db.session.commit()
    for response in (client.get(f"/engagements/{e.id}/media"),
                     client.post(f"/engagements/{e.id}/media/contract/{e.contract.notice.id}", data={"url": CCGP})):
        assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    staff = login(world.bz_staff)
    assert staff.get(f"/engagements/{e.id}/media/tender/{e.contract.notice.id}").status_code == 404
    assert _postings() == 0


# --- 6. the API ----------------------------------------------------------------------------------------------------

def test_the_api_records_once_corrects_and_refuses_in_chinese(world, client, auth):
    e = _announced(world)
    db.session.commit()
    base = f"/api/v1/engagements/{e.id}/media-postings"
    state = client.get(base, headers=auth("bz.staff")).json
    contract = next(n for n in state["notices"] if n["kind"]["value"] == "contract")
    assert contract["status"] == "未登记指定媒体发布" and contract["posting"] is None and state["may_record"] is True
    body = {"notice_kind": "contract", "notice_id": e.contract.notice.id, "medium": "ccgp", "url": CCGP,
            "posted_on": "2025-03-07"}
    bad = client.post(base, headers=auth("bz.staff"), json={**body, "url": "ftp://x", "posted_on": "明天"})
    assert bad.status_code == 422 and {"url", "posted_on"} <= set(bad.json["error"]["fields"])
    for username, expected in [("region.staff", 403), ("kz.staff", 404), ("firm1", 403), ("firm2", 404)]:
        refused = client.post(base, headers=auth(username), json=body)
        assert refused.status_code == expected and refused.json["error"]["message"], (username, refused.status_code)
    assert client.post(base, json=body).status_code == 401
    assert _postings() == 0
    done = client.post(base, headers=auth("bz.staff"), json=body)
    assert done.status_code == 201, done.get_data(as_text=True)
    assert done.json["late_workdays"] == 0 and done.json["due_on"] == "2025-03-07" and done.json["posted_on"] == "2025-03-07"
    assert client.post(base, headers=auth("bz.staff"), json=body).status_code == 409
    put = f"{base}/{done.json['id']}"
    fixed = {k: body[k] for k in ("medium", "url", "posted_on")} | {"url": CCGP + "?v=2"}
    assert client.put(put, headers=auth("bz.staff"), json=fixed).status_code == 422  # the reason is required
    assert client.put(put, headers=auth("region.staff"), json={**fixed, "correction_reason": "网址有误，现予更正。"}
                      ).status_code == 403
    ok = client.put(put, headers=auth("bz.staff"), json={**fixed, "correction_reason": "网址有误，现予更正。"})
    assert ok.status_code == 200 and ok.json["url"] == CCGP + "?v=2"
    state = client.get(f"/api/v1/engagements/{e.id}/contract-notice", headers=auth("firm1")).json
    assert state["overdue"] is False and state["media_posting"]["url"] == CCGP + "?v=2"
    assert state["media_posting"]["correction_reason"] is None  # the bureau's, not the firm's
    assert _postings() == 1


def test_the_openapi_document_describes_the_operations(client):
    spec = client.get("/api/v1/openapi.json").json
    path = spec["paths"]["/api/v1/engagements/{engagement_id}/media-postings"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(path["post"]["responses"])
    assert "get" in path
    put = spec["paths"]["/api/v1/engagements/{engagement_id}/media-postings/{posting_id}"]["put"]
    assert {"200", "403", "404", "422"} <= set(put["responses"])
    request = spec["components"]["schemas"]["MediaPostingRequest"]
    assert request["properties"]["url"]["maxLength"] == 500 and "ccgp" in request["properties"]["medium"]["enum"]
    assert "MediaPosting" in spec["components"]["schemas"]


# --- 7. the public pages and OCDS ------------------------------------------------------------------------------------

def test_the_public_pages_link_the_posting_beside_evalhubs_copy(world, client):
    """The public may follow the legal announcement: each public notice page shows its posting on the designated
    media (the medium, the day, the link) or says it is not recorded — evalhub's page being only a copy."""
    from tests.test_procurement_law import _open

    e = _announced(world)
    p = e.current_procurement
    db.session.commit()
    contract_page = client.get(f"/public/contracts/{e.contract.notice.id}").get_data(as_text=True)
    assert "未登记指定媒体发布" in contract_page
    _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 7))
    _record(e, "result", p.notice.id, world.bz_staff, date(2025, 3, 7), posted_on=date(2025, 2, 20))
    tender = _open(world)
    M().record_posting(tender.engagement, "procurement", tender.id, _input(
        url="https://www.ccgp-xinjiang.gov.cn/cggg/1.htm", medium="ccgp_xinjiang", posted_on=beijing_today()),
        world.bz_staff)
    db.session.commit()
    contract_page = client.get(f"/public/contracts/{e.contract.notice.id}").get_data(as_text=True)
    assert 'data-testid="media-contract"' in contract_page and f'href="{CCGP}"' in contract_page
    assert "2025-03-07" in contract_page and "未登记指定媒体发布" not in contract_page
    notice_page = client.get(f"/public/notices/{p.notice.id}").get_data(as_text=True)
    assert f'href="{CCGP}"' in notice_page and "2025-02-20" in notice_page
    tender_page = client.get(f"/public/procurements/{tender.id}").get_data(as_text=True)
    assert 'href="https://www.ccgp-xinjiang.gov.cn/cggg/1.htm"' in tender_page and "新疆分网" in tender_page


def test_the_ocds_release_lists_the_designated_media_documents(world):
    """OCDS 1.1 documents (tender/award/contract ``documents``: ``documentType`` tenderNotice / awardNotice /
    contractNotice, ``url``, ``datePublished``) carry the designated media's posting beside evalhub's copy; the
    release still validates against the schema (shared/ocds-1.1)."""
    from pathlib import Path

    from evalhub.procurement import ocds
    from tests import test_procurement_services as TPS

    e = _announced(world)
    p = e.current_procurement
    _record(e, "contract", e.contract.notice.id, world.bz_staff, date(2025, 3, 7))
    _record(e, "result", p.notice.id, world.bz_staff, date(2025, 3, 7))
    release = ocds.release(p, public=True)
    award_docs = release["awards"][0]["documents"]
    assert [d["documentType"] for d in award_docs] == ["awardNotice", "awardNotice"]
    assert award_docs[1]["url"] == CCGP and award_docs[1]["datePublished"].startswith("2025-03-07")
    contract_docs = release["contracts"][0]["documents"]
    assert [d["documentType"] for d in contract_docs] == ["contractNotice", "contractNotice"]
    assert contract_docs[1]["url"] == CCGP
    shared = Path("/work/shared/ocds-1.1")
    if not TPS.OCDS_DIR.exists() and shared.exists():
        TPS.OCDS_DIR = shared
    if TPS.OCDS_DIR.exists():
        package = ocds.package([p], uri="http://127.0.0.1/x", publisher="巴州财政局", public=True)
        assert [err.message for err in TPS._ocds_validator().iter_errors(package)] == []


# --- 8. two clicks at once ------------------------------------------------------------------------------------------

def test_a_record_that_read_the_notice_before_another_committed_is_refused(app, world):
    """Two clicks at once give one record (core/concurrency.py ``hold``: the notice's lock, then the row read again):
    request A has read the notice unrecorded when request B records and commits; A is refused (409), nothing of it
    written."""
    from tests.test_races import in_context
    from evalhub.procurement.models import Engagement

    e = _announced(world)
    db.session.commit()
    e_id, notice_id, staff_id, admin_id = e.id, e.contract.notice.id, world.bz_staff.id, world.bz_admin.id
    with app.app_context():
        a_e, a_user = db.session.get(Engagement, e_id), db.session.get(User, staff_id)
        assert a_e.contract.notice.media_posting is None
        in_context(app, lambda: _record(db.session.get(Engagement, e_id), "contract", notice_id,
                                        db.session.get(User, admin_id), date(2025, 3, 7)))
        try:
            with pytest.raises(Conflict):
                _record(a_e, "contract", notice_id, a_user, date(2025, 3, 7))
        finally:
            db.session.rollback()
            db.session.remove()
    assert _postings() == 1 and len(_events("notice.media_recorded")) == 1
