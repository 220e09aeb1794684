"""澄清/更正公告 of an open procurement (procurement/amendments.py).

财政部令第87号 第二十七条: the purchaser may clarify or amend the tender documents already issued (not the subject nor
the qualifications), published as a 澄清公告 on the media of the 采购公告, its content part of the documents; where it
may affect how bids are prepared, every potential bidder is told in writing at least 15 days before the deadline, or the
deadline is extended. 财库〔2014〕214号 第十条: the same, 5 days, for a competitive consultation. Days are calendar days,
the day of the amendment not counted (as the 等标期, procurement/periods.py).

Dates: an open tender published in evalhub on Monday 3 March 2025, its deadline Monday 24 March 10:00 (20 days, the 23rd
a Sunday); a consultation published the same Monday, its deadline Thursday 13 March 10:00 (10 days).
"""
from __future__ import annotations

import base64
import io
import os
import zipfile
from datetime import date, datetime

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, Notification
from evalhub.core.timeutil import simulated_clock
from evalhub.extensions import db
from evalhub.procurement import amendments as A
from evalhub.procurement import media
from evalhub.procurement import services as P
from evalhub.procurement.models import ProcurementAmendment, ProcurementMethod as M, ProcurementStatus
from tests import factories

MONDAY = date(2025, 3, 3)
CCGP = "http://www.ccgp.gov.cn/cggg/dfgg/gzgg/202503/t20250312_7654321.htm"
TEXT = "招标文件第三章“评分标准”第 2 项“项目团队”的分值由 20 分更正为 25 分，“服务方案”由 30 分更正为 25 分。"
NAMED = "联系人：张经办，电话 0996-2020202。"  # the bureau's own words, published as written (nothing redacted)


def _at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour - 8, 0)  # ``hour`` o'clock Beijing, as naive UTC


def _open(world, method: M, deadline: date, bureau_key: str = "bz", unit: str = "巴州统计局"):
    with simulated_clock(_at(MONDAY)):
        return P.open_procurement(factories.engagement(world, bureau_key=bureau_key, unit=unit), P.ProcurementInput(
            method=method, title="", ceiling_price_wan="50", price_weight="20", bid_deadline=_at(deadline)),
            getattr(world, f"{bureau_key}_staff"))


def _tender(world):
    return _open(world, M.OPEN_TENDER, date(2025, 3, 24))


def _consultation(world):
    return _open(world, M.COMPETITIVE_CONSULTATION, date(2025, 3, 13))


def _amend(p, actor, on: date, text: str = TEXT, *, deadline: datetime | None = None, affects=True, **more):
    with simulated_clock(_at(on, 11)):
        return A.amend_procurement(p, A.AmendmentInput(text=text, affects_bids=affects, bid_deadline=deadline, **more),
                                   actor)


def _events(action: str) -> list[AuditEvent]:
    return db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).scalars().all()


def _notes(user, title: str = "更正公告") -> list[Notification]:
    return db.session.execute(sa.select(Notification).where(Notification.user_id == user.id,
                                                             Notification.title.contains(title))
                              .order_by(Notification.id)).scalars().all()


def _refused(call) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        call()
    db.session.rollback()
    return caught.value


# --- 1. the rules -----------------------------------------------------------------------------------------------------

def test_an_amendment_with_time_to_spare_keeps_the_deadline_and_the_next_is_numbered_after_it(world):
    """Published on 5 March, 19 days before the deadline: no new deadline is asked for; numbered 1, then 2; audited on
    the procurement (its history), the deadline untouched."""
    p = _tender(world)
    first = _amend(p, world.bz_staff, date(2025, 3, 5))
    second = _amend(p, world.bz_admin, date(2025, 3, 6), "招标文件第五章合同条款第 3 条付款方式中“验收后 30 日内”更正为“验收后 15 日内”。",
                    affects=False)
    db.session.commit()
    assert (first.number, second.number) == (1, 2) and [a.number for a in p.amendments] == [1, 2]
    assert first.text == TEXT and first.affects_bids and not second.affects_bids
    assert first.deadline_before == first.deadline_after == p.bid_deadline == _at(date(2025, 3, 24))
    assert not first.moved_deadline and first.published_by_id == world.bz_staff.id
    assert not _events("procurement.deadline_changed")
    one, two = _events("procurement.amended")
    assert one.object_type == "procurement" and one.object_id == p.id and "第 1 号澄清/更正公告" in one.summary
    assert one.payload["text"] == TEXT and one.payload["affects_bids"] is True and two.payload["number"] == 2


def test_a_short_notice_needs_a_new_deadline_and_the_refusal_names_the_earliest_lawful_day(world):
    """Published on 12 March, the deadline of 24 March leaves 12 days: refused without a new deadline, naming 27 March
    (15 days, the 12th not counted); 26 March is still short; 27 March (a Thursday) is lawful — the deadline moves
    through the deadline's one write (its own audit event, naming the amendment) and the amendment keeps both."""
    p = _tender(world)
    db.session.commit()
    refused = _refused(lambda: _amend(p, world.bz_staff, date(2025, 3, 12)))
    said = refused.fields["bid_deadline"]
    assert "仅 12 日" in said and "至少 15 日" in said and "2025-03-27" in said and "财政部令第87号 第二十七条" in said
    refused = _refused(lambda: _amend(p, world.bz_staff, date(2025, 3, 12), deadline=_at(date(2025, 3, 26))))
    assert "2025-03-27" in refused.fields["bid_deadline"] and "仅 14 日" in refused.fields["bid_deadline"]
    assert db.session.execute(sa.select(sa.func.count(ProcurementAmendment.id))).scalar() == 0
    a = _amend(p, world.bz_staff, date(2025, 3, 12), deadline=_at(date(2025, 3, 27), 9))
    db.session.commit()
    assert p.bid_deadline == _at(date(2025, 3, 27), 9) and a.moved_deadline
    assert (a.deadline_before, a.deadline_after) == (_at(date(2025, 3, 24)), _at(date(2025, 3, 27), 9))
    [changed] = _events("procurement.deadline_changed")
    assert changed.payload["amendment"] == 1 and "第 1 号澄清/更正公告" in changed.summary
    assert changed.payload["old"] == "2025-03-24T02:00:00" and changed.payload["new"] == "2025-03-27T01:00:00"
    [amended] = _events("procurement.amended")
    assert "2025-03-27 09:00" in amended.summary and amended.payload["deadline_after"] == "2025-03-27T01:00:00"


def test_a_consultation_needs_five_days_and_one_that_does_not_affect_the_bids_needs_none(world):
    p = _consultation(world)
    db.session.commit()
    _amend(p, world.bz_staff, date(2025, 3, 8))  # 5 days before the 13th: enough
    db.session.commit()
    refused = _refused(lambda: _amend(p, world.bz_staff, date(2025, 3, 9)))  # 4 days
    assert "至少 5 日" in refused.fields["bid_deadline"] and "财库〔2014〕214号 第十条" in refused.fields["bid_deadline"]
    assert "2025-03-14" in refused.fields["bid_deadline"]
    kept = _amend(p, world.bz_staff, date(2025, 3, 12), "磋商文件第 8 页联系电话更正为 0996-2020202。", affects=False)
    db.session.commit()
    assert kept.number == 2 and not kept.moved_deadline and p.bid_deadline == _at(date(2025, 3, 13))


def test_the_new_deadline_still_counts_the_bid_period_from_the_posting_on_the_designated_media(world):
    """The consultation's 采购公告 posted on the designated media on Thursday 6 March: its 10 days run to Monday 17 March.
    An amendment of 10 March needs 5 days (the 15th) and the period from the posting (the 17th): the later is named;
    a new deadline on the 15th is refused for the period, the 17th passes."""
    p = _consultation(world)
    with simulated_clock(_at(date(2025, 3, 6), 11)):
        media.record_posting(p.engagement, "procurement", p.id, media.PostingInput(
            medium="ccgp", url=CCGP, posted_on=date(2025, 3, 6)), world.bz_staff)
    db.session.commit()
    assert "2025-03-17" in _refused(lambda: _amend(p, world.bz_staff, date(2025, 3, 10))).fields["bid_deadline"]
    refused = _refused(lambda: _amend(p, world.bz_staff, date(2025, 3, 10), deadline=_at(date(2025, 3, 15))))
    assert "等标期" in refused.fields["bid_deadline"] and "2025-03-17" in refused.fields["bid_deadline"]
    _amend(p, world.bz_staff, date(2025, 3, 10), deadline=_at(date(2025, 3, 17)))
    db.session.commit()
    assert p.bid_deadline == _at(date(2025, 3, 17)) and media.procurement_period_problem(p) is None


def test_an_empty_text_a_deadline_in_the_past_and_a_bad_file_are_refused_beside_their_fields(world):
    p = _tender(world)
    db.session.commit()
    assert "请填写澄清或者修改的内容" in _refused(lambda: _amend(p, world.bz_staff, date(2025, 3, 5), "  ")).fields["text"]
    assert "晚于现在" in _refused(lambda: _amend(p, world.bz_staff, date(2025, 3, 5),
                                                 deadline=_at(date(2025, 3, 4)))).fields["bid_deadline"]
    assert "空的" in _refused(lambda: _amend(p, world.bz_staff, date(2025, 3, 5), filename="更正.pdf",
                                             data=b"")).fields["file"]
    assert not p.amendments and p.bid_deadline == _at(date(2025, 3, 24))


def test_an_opened_failed_cancelled_or_closed_procurement_is_not_amended(world):
    """Past its deadline (not opened yet, its period lawful), opened, failed: 409, nothing written."""
    p = _consultation(world)
    db.session.commit()
    with pytest.raises(Conflict) as caught:
        _amend(p, world.bz_staff, date(2025, 3, 14))
    assert "尚未开标" in caught.value.message
    db.session.rollback()
    with simulated_clock(_at(date(2025, 3, 14))):
        P.open_bids(p, world.bz_staff)  # no bids: opened, and failed for too few
    db.session.commit()
    assert p.status == ProcurementStatus.FAILED
    with pytest.raises(Conflict):
        _amend(p, world.bz_staff, date(2025, 3, 14), deadline=_at(date(2025, 3, 25)))
    db.session.rollback()
    assert not p.amendments


@pytest.mark.parametrize("who", ["region_staff", "kz_staff", "sysadmin", "firm_user", "expert_user"])
def test_only_the_purchasing_bureaus_staff_amend(world, who):
    p = _tender(world)
    db.session.commit()
    with pytest.raises(PermissionDenied):
        _amend(p, getattr(world, who), date(2025, 3, 5))
    db.session.rollback()
    assert not p.amendments


# --- 2. who is told ---------------------------------------------------------------------------------------------------

def test_every_potential_supplier_is_told_in_writing_and_a_bidder_that_it_may_revise_or_withdraw(world):
    """The firm the 采购公告 went to (巴州's library) reads the text and the moved deadline; the firm that bid reads the
    same and that its bid, in before the amendment, may be revised or withdrawn until then; another prefecture's firm
    and the bureau are not told, nor is anyone of a refused amendment."""
    p = _tender(world)
    bidder, bidder_user, staff = factories.bidder(world, "巴州更正测试评价有限公司")
    with simulated_clock(_at(date(2025, 3, 4))):
        factories.bid(p, bidder_user, staff, "40")
    db.session.commit()
    _refused(lambda: _amend(p, world.bz_staff, date(2025, 3, 12)))
    assert not _notes(world.firm_user) and not _notes(bidder_user)
    _amend(p, world.bz_staff, date(2025, 3, 12), deadline=_at(date(2025, 3, 28)))
    db.session.commit()
    [note] = _notes(world.firm_user)
    assert note.title == f"{p.engagement.reference} 第 1 号澄清/更正公告：{p.title}" and note.link == f"/procurements/{p.id}/bid"
    assert TEXT in note.body and "2025-03-24 10:00" in note.body and "2025-03-28 10:00" in note.body
    assert "撤回" not in note.body
    [told] = _notes(bidder_user)
    assert TEXT in told.body and "2025-03-28 10:00" in told.body and "补充、修改或撤回" in told.body
    assert not _notes(world.other_firm_user) and not _notes(world.bz_staff) and not _notes(world.bz_admin)
    unchanged = _amend(p, world.bz_staff, date(2025, 3, 13), "补充说明：现场踏勘不组织。", affects=False)
    db.session.commit()
    assert "截止时间不变" in _notes(world.firm_user)[-1].body and unchanged.number == 2


# --- 3. the web -------------------------------------------------------------------------------------------------------

def test_the_bureau_publishes_on_the_procurement_page_and_reads_each_refusal_in_chinese(world, login):
    p = _tender(world)
    db.session.commit()
    client = login(world.bz_staff)
    url = f"/procurements/{p.id}/amendments"
    with simulated_clock(_at(date(2025, 3, 12), 11)):
        page = client.get(f"/procurements/{p.id}").get_data(as_text=True)
        assert 'data-testid="publish-amendment"' in page and "不得改变采购标的和资格条件" in page
        # the choice as two checks in a fieldset named by its question (the forms macro), not a bulleted list
        assert '<ul class="form-control' not in page and '<fieldset id="affects_bids">' in page
        assert page.count('class="form-check-input" id="affects_bids-') == 2
        short = client.post(url, data={"text": TEXT, "affects_bids": "yes"})
        assert short.status_code == 422 and "2025-03-27" in short.get_data(as_text=True)
        empty = client.post(url, data={"text": "", "affects_bids": "yes", "bid_deadline": "2025-03-28T10:00"})
        assert empty.status_code == 422 and "请填写澄清或者修改的内容" in empty.get_data(as_text=True)
        past = client.post(url, data={"text": TEXT, "bid_deadline": "2025-03-01T10:00"})
        assert past.status_code == 422 and "晚于现在" in past.get_data(as_text=True)
        done = client.post(url, data={"text": TEXT, "affects_bids": "yes", "bid_deadline": "2025-03-28T10:00",
                                      "file": (io.BytesIO(factories.docx_bytes("修改后的评分标准", author="张经办")), "评分标准.docx")},
                           content_type="multipart/form-data")
        assert done.status_code == 302, done.get_data(as_text=True)[:3000]
        page = client.get(f"/procurements/{p.id}").get_data(as_text=True)
    assert 'data-testid="amendment-1"' in page and "评分标准.docx" in page and "2025-03-28 10:00" in page
    assert "未登记指定媒体发布" in page and f"/engagements/{p.engagement.id}/media/amendment/" in page
    db.session.expire_all()
    [a] = p.amendments
    assert p.bid_deadline == _at(date(2025, 3, 28)) and a.uploaded_file_id != a.public_file_id
    upload = client.get(f"/procurements/{p.id}/amendments/{a.id}/upload")
    assert upload.status_code == 200 and b"\xe5\xbc\xa0\xe7\xbb\x8f\xe5\x8a\x9e" in _core_xml(upload.data)  # 张经办
    public = client.get(f"/public/amendments/{a.id}/file")
    assert public.status_code == 200 and "张经办".encode() not in _core_xml(public.data)


def _core_xml(docx: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        return z.read("docProps/core.xml") if "docProps/core.xml" in z.namelist() else b""


@pytest.mark.parametrize("who", ["firm_user", "kz_staff", "region_staff", "expert_user"])
def test_a_firm_another_bureau_the_bureau_above_and_an_expert_are_refused_on_the_web(world, login, who):
    p = _tender(world)
    db.session.commit()
    with simulated_clock(_at(date(2025, 3, 5))):
        response = login(getattr(world, who)).post(f"/procurements/{p.id}/amendments", data={"text": TEXT})
    assert response.status_code in (403, 404)
    db.session.expire_all()
    assert not p.amendments


def test_the_web_refuses_an_amendment_after_the_opening(world, login):
    p = _consultation(world)
    with simulated_clock(_at(date(2025, 3, 14))):
        P.open_bids(p, world.bz_staff)
    db.session.commit()
    client = login(world.bz_staff)
    with simulated_clock(_at(date(2025, 3, 14), 11)):
        refused = client.post(f"/procurements/{p.id}/amendments", data={"text": TEXT, "bid_deadline": "2025-03-28T10:00"})
        assert refused.status_code == 409 and "尚未开标" in refused.get_data(as_text=True)
        assert 'data-testid="publish-amendment"' not in client.get(f"/procurements/{p.id}").get_data(as_text=True)


def test_the_firms_bid_page_and_the_public_page_list_the_amendment(world, login, client):
    """The bidder's page: the amendment, and that its bid came before it (it may revise or withdraw); once it revises,
    no more. The public 采购公告 page: the text as the bureau wrote it, the deadline moved, the public file, the posting
    on the designated media once recorded."""
    p = _tender(world)
    bidder, bidder_user, staff = factories.bidder(world, "巴州投标人甲评价有限公司")
    with simulated_clock(_at(date(2025, 3, 4))):
        factories.bid(p, bidder_user, staff, "40")
    a = _amend(p, world.bz_staff, date(2025, 3, 12), TEXT + NAMED, deadline=_at(date(2025, 3, 28)),
               filename="更正.docx", data=factories.docx_bytes("更正内容"))
    db.session.commit()
    firm = login(bidder_user)
    with simulated_clock(_at(date(2025, 3, 13))):
        page = firm.get(f"/procurements/{p.id}/bid").get_data(as_text=True)
        assert 'data-testid="amendment-1"' in page and TEXT in page
        assert 'data-testid="revise-after-amendment"' in page and "2025-03-28 10:00" in page
        assert f"/public/amendments/{a.id}/file" in page and f"/amendments/{a.id}/upload" not in page
        factories.bid(p, bidder_user, staff, "39")  # revised after the amendment
        assert 'data-testid="revise-after-amendment"' not in firm.get(f"/procurements/{p.id}/bid").get_data(as_text=True)
        other = login(world.firm_user).get(f"/procurements/{p.id}/bid").get_data(as_text=True)
        assert 'data-testid="amendment-1"' in other and 'data-testid="revise-after-amendment"' not in other
    with simulated_clock(_at(date(2025, 3, 13), 12)):
        media.record_posting(p.engagement, "amendment", a.id, media.PostingInput(
            medium="ccgp", url=CCGP, posted_on=date(2025, 3, 13)), world.bz_staff)
    db.session.commit()
    client.get("/logout")
    public = client.get(f"/public/procurements/{p.id}")
    text = public.get_data(as_text=True)
    assert public.status_code == 200 and 'data-testid="public-amendments"' in text and 'id="amendment-1"' in text
    assert TEXT + NAMED in text and "2025-03-28 10:00" in text and f"/public/amendments/{a.id}/file" in text
    assert f'href="{CCGP}" rel="noopener noreferrer nofollow"' in text
    assert client.get(f"/public/amendments/{a.id}/file").status_code == 200


def test_the_public_page_reads_the_amendments_in_one_statement(world, client):
    """More amendments (with files and postings), the same statements for the public page."""
    from tests.test_row_statements import _flat

    p = _tender(world)
    _amend(p, world.bz_staff, date(2025, 3, 5), filename="一.docx", data=factories.docx_bytes("一"))
    db.session.commit()

    def add():
        for day in (6, 7):
            a = _amend(p, world.bz_staff, date(2025, 3, day), f"第 {day} 日的更正。", filename=f"{day}.docx",
                       data=factories.docx_bytes(str(day)))
            with simulated_clock(_at(date(2025, 3, day), 12)):
                media.record_posting(p.engagement, "amendment", a.id, media.PostingInput(
                    medium="ccgp", url=CCGP, posted_on=date(2025, 3, day)), world.bz_staff)

    _flat(client, [f"/public/procurements/{p.id}"], add, ["第 7 日的更正。", "7.docx", CCGP])


# --- 4. the API -------------------------------------------------------------------------------------------------------

def test_the_api_publishes_lists_and_refuses_as_the_page_does(world, client, auth):
    p = _tender(world)
    cancelled = _consultation(world)
    db.session.commit()
    staff, region, kz, firm = auth("bz.staff"), auth("region.staff"), auth("kz.staff"), auth("firm1")
    url = f"/api/v1/procurements/{p.id}/amendments"
    body = {"text": TEXT, "bid_deadline": "2025-03-28T10:00:00+08:00",
            "file": {"name": "更正.docx", "content_base64": base64.b64encode(factories.docx_bytes("更正")).decode()}}
    with simulated_clock(_at(date(2025, 3, 12), 11)):
        assert client.post(url, json=body).status_code == 401
        assert client.post(url, headers=region, json=body).status_code == 403
        assert client.post(url, headers=firm, json=body).status_code == 403
        assert client.post(url, headers=kz, json=body).status_code == 404
        for bad, field, phrase in [({"bid_deadline": None}, "bid_deadline", "2025-03-27"),
                                   ({"text": ""}, "text", "请填写"),
                                   ({"bid_deadline": "2025-03-28 10:00"}, "bid_deadline", "带时区"),
                                   ({"bid_deadline": "2025-03-11T10:00:00+08:00"}, "bid_deadline", "晚于现在"),
                                   ({"affects_bids": "yes"}, "affects_bids", "true"),
                                   ({"file": {"name": "a.pdf", "content_base64": "%%%"}}, "file", "Base64")]:
            refused = client.post(url, headers=staff, json={**body, **bad})
            assert refused.status_code == 422 and phrase in refused.json["error"]["fields"][field], (bad, refused.json)
        done = client.post(url, headers=staff, json=body)
        assert done.status_code == 201, done.get_data(as_text=True)
        again = client.post(url, headers=staff, json={"text": "补充：投标文件份数为正本一份、副本四份。", "affects_bids": False})
        assert again.status_code == 201 and again.json["number"] == 2 and again.json["deadline_moved"] is False
    made = done.json
    assert made["number"] == 1 and made["deadline_moved"] and made["deadline_after"].startswith("2025-03-28T02:00")
    assert made["file"]["url"] == f"/public/amendments/{made['id']}/file" and made["media_posting"] is None
    listed = client.get(url, headers=firm)
    assert listed.status_code == 200 and [a["number"] for a in listed.json["amendments"]] == [1, 2]
    assert listed.json["may_amend"] is False and listed.json["amendments"][0]["published_by"] is None
    assert listed.json["amendments"][0]["text"] == TEXT
    own = client.get(url, headers=staff).json
    assert own["may_amend"] is True and own["amendments"][0]["published_by"]
    assert client.get(url, headers=kz).status_code == 404
    with simulated_clock(_at(date(2025, 3, 14), 11)):
        closed = client.post(f"/api/v1/procurements/{cancelled.id}/amendments", headers=staff, json={"text": TEXT})
    assert closed.status_code == 409 and "尚未开标" in closed.json["error"]["message"]


def test_the_openapi_document_describes_the_amendments(client):
    spec = client.get("/api/v1/openapi.json").json
    path = spec["paths"]["/api/v1/procurements/{procurement_id}/amendments"]
    assert {"201", "403", "404", "409", "422"} <= set(path["post"]["responses"]) and "200" in path["get"]["responses"]
    request = spec["components"]["schemas"]["ProcurementAmendmentRequest"]
    assert request["required"] == ["text"] and request["properties"]["text"]["maxLength"] == A.TEXT_MAX
    assert "更正公告" in str(spec["components"]["schemas"]["NoticeKind"])


# --- 5. the posting on the designated media ---------------------------------------------------------------------------

def test_a_posting_of_the_amendment_is_recorded_and_listed_in_the_years_workbook(world, login, client, auth):
    """The 更正公告 is posted on the media of the 采购公告 (第二十七条): recorded as the other notices are (not before its
    publication; the page and the API), on the engagement's media list, and in the bureau's year workbook with its
    procurement."""
    from tests.test_media_period import _sheet

    p = _tender(world)
    a = _amend(p, world.bz_staff, date(2025, 3, 10), affects=False)
    db.session.commit()
    e = p.engagement
    t = media.target(e, "amendment", a.id)
    assert t.title.startswith("第 1 号澄清/更正公告") and t.due is None and t.event_day == date(2025, 3, 10)
    staff = auth("bz.staff")
    body = {"notice_kind": "amendment", "notice_id": a.id, "medium": "ccgp", "url": CCGP, "posted_on": "2025-03-09"}
    with simulated_clock(_at(date(2025, 3, 11))):
        refused = client.post(f"/api/v1/engagements/{e.id}/media-postings", headers=staff, json=body)
        assert refused.status_code == 422 and "2025-03-10" in refused.json["error"]["fields"]["posted_on"]
        form = login(world.bz_staff).get(f"/engagements/{e.id}/media/amendment/{a.id}").get_data(as_text=True)
        assert "更正公告" in form and "第 1 号澄清/更正公告" in form
        done = client.post(f"/api/v1/engagements/{e.id}/media-postings", headers=staff,
                           json={**body, "posted_on": "2025-03-11"})
    assert done.status_code == 201 and done.json["kind"]["label"] == "更正公告", done.get_data(as_text=True)
    db.session.expire_all()
    assert a.media_posting.id == done.json["id"] and a.media_posting.amendment_id == a.id
    listed = login(world.bz_staff).get(f"/engagements/{e.id}/media").get_data(as_text=True)
    assert f'data-testid="media-amendment-{a.id}"' in listed and "2025-03-11" in listed
    rows = _sheet(client.get("/media-postings?year=2025&kind=amendment&export=xlsx"))
    assert [(r["采购项目"], r["公告类型"], r["网址"]) for r in rows] == [(p.title, "更正公告", CCGP)]
    assert f'>{p.title}<' in client.get("/media-postings?year=2025").get_data(as_text=True)


# --- 6. two at once (PostgreSQL) ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"), reason="concurrency is tested against PostgreSQL")
def test_two_amendments_at_once_get_consecutive_numbers_and_one_deadline_history(app, world):
    """Two officers publish at once, each with a new deadline: the procurement's lock puts one after the other — numbers
    1 and 2, the second's deadline before is the first's after, one deadline change audited each."""
    from evalhub.core.models import User
    from evalhub.procurement.models import Procurement

    p = _tender(world)
    db.session.commit()
    p_id, staff_id, admin_id = p.id, world.bz_staff.id, world.bz_admin.id

    def publish(user_id: int, day: int):
        def call():
            _amend(db.session.get(Procurement, p_id), db.session.get(User, user_id), date(2025, 3, 12),
                   deadline=_at(date(2025, 3, day)))
        return call

    assert factories.at_once(app, publish(staff_id, 28), publish(admin_id, 31)) == ["done", "done"]
    db.session.expire_all()
    first, second = db.session.get(Procurement, p_id).amendments
    assert (first.number, second.number) == (1, 2) and second.deadline_before == first.deadline_after
    assert db.session.get(Procurement, p_id).bid_deadline == second.deadline_after
    assert [e.payload["amendment"] for e in _events("procurement.deadline_changed")] == [1, 2]
