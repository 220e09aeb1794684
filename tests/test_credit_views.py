"""Credit rating pages: who may open and post what (bureau scope, the rated firm only, administrators only
for compute / publish / finalise / answers / calendar / external records), bad input answered 4xx with the
Chinese message and nothing written, the compute button running the background job, the explanation page
(components, record links, last year's change, objections), the public list of FINAL ratings only, and the
dashboard cards."""
from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from evalhub.core.enums import JobStatus
from evalhub.core.models import CalendarDay, Job
from evalhub.core.timeutil import beijing_today
from evalhub.credit import services as C
from evalhub.credit.models import (
    CreditGrade,
    CreditObjection,
    CreditRating,
    ExternalCreditRecord,
    ObjectionDecision,
    RatingStatus,
)
from evalhub.extensions import db
from evalhub.supervision import services as V
from evalhub.supervision.models import Severity, Trigger
from tests import factories
from tests.test_credit_supervision_services import _accepted, _completed


def text(response) -> str:
    return response.get_data(as_text=True)


def count(model, *where) -> int:
    stmt = sa.select(sa.func.count()).select_from(model)
    for clause in where:
        stmt = stmt.where(clause)
    return db.session.execute(stmt).scalar_one()


def _rated(world, year=2025) -> CreditRating:
    """world.firm's draft rating by 巴州 for ``year`` (one completed engagement, no other records)."""
    _completed(world, year=year)
    C.compute(world.bz, year, world.bz_admin)
    db.session.commit()
    return db.session.execute(sa.select(CreditRating).where(
        CreditRating.firm_id == world.firm.id, CreditRating.year == year)).scalar_one()


def _published(world, *, days_left=5) -> CreditRating:
    """Published for objection; the deadline ``days_left`` days from today (negative: already passed)."""
    rating = _rated(world)
    C.publish(world.bz, 2025, world.bz_admin)
    rating.objection_deadline = beijing_today() + timedelta(days=days_left)
    db.session.commit()
    return rating


def _final(world, firm, bureau, year, grade: CreditGrade, total: str, **kw) -> CreditRating:
    rating = CreditRating(bureau_id=bureau.id, firm_id=firm.id, year=year, status=RatingStatus.FINAL, rated=True,
                          total=Decimal(total), grade=grade, components=[
                              {"code": "quality", "label": "执业质量", "max": "40", "points": "30.00", "detail": [], "records": []}],
                          **kw)
    db.session.add(rating)
    db.session.commit()
    return rating


TXT = "处罚决定书：某某税务局行政处罚决定".encode()


# --- the bureau's list -----------------------------------------------------------------------------

def test_the_bureau_list_is_for_bureau_users_in_scope(world, client, login):
    rating = _rated(world)
    assert client.get("/credit").status_code == 302 and "/login" in client.get("/credit").headers["Location"]

    page = text(login(world.bz_admin).get("/credit?year=2025"))
    assert world.firm.name in page and f'data-testid="rating-{rating.id}"' in page
    assert "计算 2025 年度评价" in page and 'data-testid="publish"' in page   # a draft to publish
    assert 'data-testid="finalise"' not in page                               # nothing published yet
    assert "76" in page and "C 级" in page and "草稿" in page

    page = text(login(world.bz_staff).get("/credit?year=2025"))
    assert world.firm.name in page and "计算 2025 年度评价" not in page and 'data-testid="publish"' not in page

    page = text(login(world.region_admin).get("/credit?year=2025"))  # the region supervises 巴州
    assert world.firm.name in page and "计算 2025 年度评价" in page   # … and computes its own ratings

    page = text(login(world.kz_admin).get("/credit?year=2025"))      # 克州 never sees 巴州's ratings
    assert world.firm.name not in page and f'rating-{rating.id}"' not in page

    for user in (world.firm_user, world.expert_user):
        assert login(user).get("/credit").status_code == 403


def test_the_list_filters_and_exports(world, login):
    rating = _rated(world)
    other = factories.firm(world.bz, name="巴州第二评价事务所")
    _final(world, other, world.bz, 2025, CreditGrade.A, "93", watch_list=True, watch_reason="伪造问卷数据")
    client = login(world.bz_admin)
    assert world.firm.name in text(client.get("/credit?year=2025&grade=C"))
    assert world.firm.name not in text(client.get("/credit?year=2025&grade=A"))
    assert other.name in text(client.get("/credit?year=2025&watch=1"))
    assert world.firm.name not in text(client.get("/credit?year=2025&watch=1"))
    assert other.name not in text(client.get("/credit?year=2025&firm=示范"))
    assert world.firm.name not in text(client.get("/credit?year=2025&status=final"))
    assert world.firm.name not in text(client.get("/credit?year=2024"))

    response = client.get("/credit?year=2025&export=xlsx")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    frame = pd.read_excel(io.BytesIO(response.data))
    assert set(frame["第三方机构"]) == {world.firm.name, other.name}
    assert list(frame.loc[frame["第三方机构"] == world.firm.name, "等级"]) == ["C 级"]
    assert list(frame.loc[frame["第三方机构"] == other.name, "重点关注"]) == ["是"]

    frame = pd.read_excel(io.BytesIO(login(world.kz_admin).get("/credit?year=2025&export=xlsx").data))
    assert frame.empty and rating.firm_id not in set(frame.get("第三方机构", []))


def test_the_compute_button_runs_the_job_and_the_ratings_appear(world, login):
    _completed(world)
    db.session.commit()
    client = login(world.bz_admin)
    response = client.post("/credit/compute", data={"year": "2025"})
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    job_page = text(client.get(response.headers["Location"]))
    assert "已完成" in job_page and "评价 1 家" in job_page
    job = db.session.execute(sa.select(Job)).scalar_one()
    assert job.kind == "credit.compute" and job.status == JobStatus.SUCCEEDED
    assert job.params == {"bureau_id": world.bz.id, "year": 2025}
    rating = db.session.execute(sa.select(CreditRating)).scalar_one()
    assert rating.firm_id == world.firm.id and rating.grade == CreditGrade.C and rating.status == RatingStatus.DRAFT
    assert world.firm.name in text(client.get("/credit?year=2025"))


def test_only_the_bureaus_own_admins_compute_publish_and_finalise(world, login):
    _completed(world)
    db.session.commit()
    for user in (world.bz_staff, world.firm_user, world.expert_user):
        client = login(user)
        for action in ("compute", "publish", "finalise"):
            assert client.post(f"/credit/{action}", data={"year": "2025"}).status_code == 403, (user.username, action)
    assert count(Job) == 0 and count(CreditRating) == 0

    # 克州's button computes 克州's ratings: 巴州's firm is not among them
    response = login(world.kz_admin).post("/credit/compute", data={"year": "2025"})
    assert response.status_code == 302 and count(CreditRating) == 0


def test_a_bad_year_is_refused_with_nothing_submitted(world, login):
    client = login(world.bz_admin)
    for year in ("abc", "", "1999", str(beijing_today().year + 1)):
        response = client.post("/credit/compute", data={"year": year})
        assert response.status_code == 422 and "年度应为" in text(response), year
    assert count(Job) == 0


def test_queuing_the_computation_is_the_service_s_whatever_the_path(world):
    """The rule and the write are the service's (the page checked "credit.manage" and the year, then queued the job
    itself): another bureau's administrator, the bureau's staff or a firm queuing 巴州's computation, or a year
    that cannot be rated, is refused with no job queued; the bureau's administrator queues it."""
    from evalhub.core.errors import PermissionDenied, ValidationFailed

    for outsider in (world.kz_admin, world.bz_staff, world.firm_user):
        with pytest.raises(PermissionDenied):
            C.start_compute(world.bz, 2025, outsider)
    for year in (None, 1999, beijing_today().year + 1):
        with pytest.raises(ValidationFailed):
            C.start_compute(world.bz, year, world.bz_admin)
    assert not db.session.new and count(Job) == 0
    job = C.start_compute(world.bz, 2025, world.bz_admin)
    assert job.kind == "credit.compute" and job.params == {"bureau_id": world.bz.id, "year": 2025}


def test_publish_then_finalise_with_their_conflicts(world, login):
    rating = _rated(world)
    client = login(world.bz_admin)
    response = client.post("/credit/finalise", data={"year": "2025"})
    assert response.status_code == 409 and "没有公示中的评价结果" in text(response)

    response = client.post("/credit/publish", data={"year": "2025"})
    assert response.status_code == 302
    db.session.expire_all()
    assert rating.status == RatingStatus.PUBLISHED and rating.objection_deadline > beijing_today()
    assert count(CalendarDay, CalendarDay.bureau_id.is_(None)) > 0   # the national calendar was seeded
    page = text(client.get("/credit?year=2025"))
    assert "已公示 2025 年度评价结果 1 家" in page and 'data-testid="finalise"' in page

    response = client.post("/credit/publish", data={"year": "2025"})
    assert response.status_code == 409 and "没有待公示的评价结果" in text(response)
    response = client.post("/credit/finalise", data={"year": "2025"})
    assert response.status_code == 409 and "尚未结束" in text(response)
    db.session.expire_all()
    assert rating.status == RatingStatus.PUBLISHED

    rating.objection_deadline = beijing_today() - timedelta(days=1)
    db.session.commit()
    response = client.post("/credit/finalise", data={"year": "2025"}, follow_redirects=True)
    assert response.status_code == 200 and "已确定：1 家" in text(response)
    db.session.expire_all()
    assert rating.status == RatingStatus.FINAL


# --- one rating ------------------------------------------------------------------------------------

def test_the_explanation_page_shows_components_records_and_last_year(world, login):
    e = _accepted(world)   # a first-round report panel (95, passed): a practice-quality record
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索", engagement=e)
    V.add_finding(case, factories.recorder(case), severity=Severity.GENERAL, description="底稿缺少抽样记录")
    C.add_external_record(world.bz, world.firm, world.bz_admin, kind="行政处罚", occurred_on=date(2025, 6, 1),
                          description="税务行政处罚", deduction="4", filename="决定书.txt", data=TXT)
    _final(world, world.firm, world.bz, 2024, CreditGrade.C, "70.00")
    C.compute(world.bz, 2025, world.bz_admin)
    db.session.commit()
    rating = db.session.execute(sa.select(CreditRating).where(CreditRating.year == 2025)).scalar_one()
    panel_id = rating.components[0]["records"][0]["id"]

    page = text(login(world.bz_staff).get(f"/credit/ratings/{rating.id}"))
    for label in ("执业质量", "合同履行", "委托方评价", "监督检查", "外部信用"):
        assert label in page
    assert "38.5 / 40 分" in page and "首轮报告评审平均" in page
    assert f'href="/reviews/panels/{panel_id}"' in page                 # bureau users follow the panel
    assert f'href="/inspections/{case.id}"' in page
    assert "行政处罚：税务行政处罚" in page                              # text only
    assert "草稿" in page
    delta = rating.total - Decimal("70")
    assert f"+{delta.normalize():f} 分" in page and "C 级 → " in page     # the change from 2024
    assert 'data-testid="external-records"' in page and "决定书.txt" in page
    record = db.session.execute(sa.select(ExternalCreditRecord)).scalar_one()
    download = login(world.bz_staff).get(f"/credit/external/{record.id}/file")
    assert download.status_code == 200 and download.data == TXT

    # the firm reads its published rating, without the expert panel's page
    C.publish(world.bz, 2025, world.bz_admin)
    db.session.commit()
    page = text(login(world.firm_user).get(f"/credit/ratings/{rating.id}"))
    assert "执业质量" in page and "公示中" in page and "/reviews/panels/" not in page
    assert login(world.firm_user).get(f"/credit/external/{record.id}/file").status_code == 200
    assert login(world.other_firm_user).get(f"/credit/external/{record.id}/file").status_code == 403
    assert login(world.kz_admin).get(f"/credit/external/{record.id}/file").status_code == 403


def test_who_may_read_a_rating(world, client, login):
    rating = _rated(world)
    url = f"/credit/ratings/{rating.id}"
    response = client.get(url)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    for user in (world.bz_admin, world.bz_staff, world.region_staff):
        assert login(user).get(url).status_code == 200, user.username
    for user in (world.kz_admin, world.krl_admin, world.other_firm_user, world.expert_user):
        assert login(user).get(url).status_code == 403, user.username   # 克州, a lower bureau, another firm
    assert login(world.firm_user).get(url).status_code == 403  # the bureau's draft: not the firm's rating yet
    assert f'data-testid="rating-{rating.id}"' not in text(login(world.firm_user).get("/credit/mine"))
    # one rule ("credit.view" and the rating scope), whatever path asks
    from evalhub.core import permissions

    assert not permissions.can(world.firm_user, "credit.view", rating)
    assert rating.id not in db.session.execute(permissions.scope(
        world.firm_user, sa.select(CreditRating.id), CreditRating)).scalars().all()

    C.publish(world.bz, 2025, world.bz_admin)
    db.session.commit()
    assert login(world.firm_user).get(url).status_code == 200
    assert login(world.other_firm_user).get(url).status_code == 403


def test_firm_users_list_only_their_own_published_ratings(world, login):
    rating = _published(world)
    page = text(login(world.firm_user).get("/credit/mine"))
    assert f'data-testid="rating-{rating.id}"' in page and "公示中" in page and "提出异议" in page
    page = text(login(world.other_firm_user).get("/credit/mine"))
    assert f'data-testid="rating-{rating.id}"' not in page and "暂无已公示" in page
    for user in (world.bz_admin, world.expert_user):
        assert login(user).get("/credit/mine").status_code == 403


# --- objections and answers ------------------------------------------------------------------------

def test_an_objection_too_short_is_refused_and_a_good_one_is_recorded(world, login):
    rating = _published(world)
    client = login(world.firm_user)
    page = text(client.get(f"/credit/ratings/{rating.id}"))
    assert 'data-testid="objection-form"' in page

    response = client.post(f"/credit/ratings/{rating.id}/objections", data={"text": "不服"},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "不少于 10 字" in text(response)
    assert count(CreditObjection) == 0

    response = client.post(f"/credit/ratings/{rating.id}/objections", content_type="multipart/form-data", data={
        "text": "合同履行得分有误：实施方案实际按期提交，附回执。", "evidence": [(io.BytesIO("回执".encode()), "回执.txt")]})
    assert response.status_code == 302
    objection = db.session.execute(sa.select(CreditObjection)).scalar_one()
    assert objection.rating_id == rating.id and len(objection.evidence_file_ids) == 1
    file_url = f"/credit/objections/{objection.id}/files/{objection.evidence_file_ids[0]}"
    page = text(client.get(f"/credit/ratings/{rating.id}"))
    assert "实施方案实际按期提交" in page and file_url in page and "待财政部门答复" in page
    assert client.get(file_url).data == "回执".encode()
    assert login(world.bz_staff).get(file_url).status_code == 200
    assert login(world.other_firm_user).get(file_url).status_code == 403

    # nobody but the rated firm objects
    for user in (world.bz_admin, world.other_firm_user):
        response = login(user).post(f"/credit/ratings/{rating.id}/objections", data={"text": "别人的异议内容，理由很充分。"})
        assert response.status_code == 403
    assert count(CreditObjection) == 1


def test_a_late_objection_is_refused_with_409(world, login):
    rating = _published(world, days_left=-1)
    client = login(world.firm_user)
    page = text(client.get(f"/credit/ratings/{rating.id}"))
    assert 'data-testid="objection-form"' not in page and "异议期已于" in page
    response = client.post(f"/credit/ratings/{rating.id}/objections",
                           data={"text": "逾期提出的异议，理由如下：方案按期提交。"})
    assert response.status_code == 409 and "异议期已于" in text(response)
    assert count(CreditObjection) == 0


def test_the_bureau_answers_an_objection_and_may_recompute(world, login):
    rating = _published(world)
    objection = C.object_to(rating, world.firm_user, "合同履行得分有误：方案实际按期提交。")
    db.session.commit()
    prefix = f"a{objection.id}-"
    url = f"/credit/objections/{objection.id}/answer"
    assert f'data-testid="answer-form-{objection.id}"' in text(login(world.bz_admin).get(f"/credit/ratings/{rating.id}"))
    assert f'data-testid="answer-form-{objection.id}"' not in text(login(world.bz_staff).get(f"/credit/ratings/{rating.id}"))

    good = {prefix + "decision": "upheld", prefix + "answer": "经核实，方案回执日期为 3 月 28 日，予以更正。",
            prefix + "recompute": "y"}
    for user in (world.bz_staff, world.kz_admin, world.firm_user):
        assert login(user).post(url, data=good).status_code == 403, user.username

    client = login(world.bz_admin)
    response = client.post(url, data={prefix + "decision": "upheld", prefix + "answer": "同意"})
    assert response.status_code == 422 and "不少于 10 字" in text(response)
    response = client.post(url, data={prefix + "decision": "", prefix + "answer": "经核实，情况属实，予以更正。"})
    assert response.status_code == 422 and "请选择异议是否成立" in text(response)
    db.session.expire_all()
    assert objection.decision is None and rating.version == 1

    response = client.post(url, data=good, follow_redirects=True)
    assert response.status_code == 200 and "已答复异议：异议成立" in text(response) and "已重新计算" in text(response)
    db.session.expire_all()
    assert objection.decision == ObjectionDecision.UPHELD and rating.version == 2
    page = text(login(world.firm_user).get(f"/credit/ratings/{rating.id}"))
    assert "异议成立" in page and "予以更正" in page
    assert login(world.bz_admin).post(url, data=good).status_code == 409   # answered once


# --- calendar and external records -----------------------------------------------------------------

def test_the_calendar_lists_exceptions_and_takes_a_bureau_day(world, login):
    soon = beijing_today() + timedelta(days=30)
    db.session.add(CalendarDay(bureau_id=None, day=soon, is_workday=False, note="全国测试假日"))
    db.session.commit()
    client = login(world.bz_admin)
    page = text(client.get("/credit/calendar"))
    assert "全国测试假日" in page and 'data-testid="calendar-form"' in page and "全国" in page

    day = soon + timedelta(days=1)
    response = client.post("/credit/calendar", data={"day": day.isoformat(), "kind": "holiday", "note": "古尔邦节"})
    assert response.status_code == 302
    row = db.session.execute(sa.select(CalendarDay).where(CalendarDay.bureau_id == world.bz.id)).scalar_one()
    assert row.day == day and not row.is_workday
    client.post("/credit/calendar", data={"day": day.isoformat(), "kind": "workday", "note": "调休上班"})
    db.session.expire_all()
    assert row.is_workday and row.note == "调休上班"
    assert "调休上班" in text(login(world.lt_staff).get("/credit/calendar"))   # counties see the prefecture's days

    client = login(world.bz_admin)
    response = client.post("/credit/calendar", data={"day": day.isoformat(), "kind": "holiday", "note": ""})
    assert response.status_code == 422 and "请注明节假日或调休名称" in text(response)
    response = client.post("/credit/calendar", data={"day": "", "kind": "holiday", "note": "某节"})
    assert response.status_code == 422 and "请选择日期" in text(response)
    db.session.expire_all()
    assert row.is_workday and count(CalendarDay, CalendarDay.bureau_id == world.bz.id) == 1

    staff = login(world.bz_staff)
    page = text(staff.get("/credit/calendar"))
    assert "全国测试假日" in page and 'data-testid="calendar-form"' not in page
    assert staff.post("/credit/calendar", data={"day": day.isoformat(), "kind": "holiday", "note": "x"}).status_code == 403
    for user in (world.firm_user, world.expert_user, world.sysadmin):
        assert login(user).get("/credit/calendar").status_code == 403


def test_an_external_record_needs_its_source_file(world, login):
    rating = _rated(world)
    client = login(world.bz_admin)
    page = text(client.get(f"/credit/external/new?firm_id={world.firm.id}"))
    assert f'<option selected value="{world.firm.id}"' in page or f'value="{world.firm.id}" selected' in page
    data = {"firm_id": str(world.firm.id), "kind": "administrative_penalty", "occurred_on": "2025-06-01",
            "description": "税务行政处罚", "deduction": "4"}
    response = client.post("/credit/external/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 422 and "请上传来源文件" in text(response)
    response = client.post("/credit/external/new", content_type="multipart/form-data",
                           data={**data, "deduction": "120", "file": (io.BytesIO(TXT), "决定书.txt")})
    assert response.status_code == 422 and "扣分应为 0–100 的数字" in text(response)
    assert count(ExternalCreditRecord) == 0

    response = client.post("/credit/external/new", content_type="multipart/form-data",
                           data={**data, "file": (io.BytesIO(TXT), "决定书.txt")})
    assert response.status_code == 302 and f"/credit/ratings/{rating.id}" in response.headers["Location"]
    record = db.session.execute(sa.select(ExternalCreditRecord)).scalar_one()
    assert record.firm_id == world.firm.id and record.deduction == Decimal("4") and record.source_file.original_name == "决定书.txt"
    page = text(client.get(f"/credit/ratings/{rating.id}"))
    assert "税务行政处罚" in page and "决定书.txt" in page

    # 克州 cannot pick 巴州's firm; staff and firms cannot enter records at all
    response = login(world.kz_admin).post("/credit/external/new", content_type="multipart/form-data",
                                          data={**data, "file": (io.BytesIO(TXT), "决定书.txt")})
    assert response.status_code == 422 and "请选择第三方机构" in text(response)
    for user in (world.bz_staff, world.firm_user):
        assert login(user).get("/credit/external/new").status_code == 403
    assert count(ExternalCreditRecord) == 1


# --- public ----------------------------------------------------------------------------------------

def test_the_public_sees_final_ratings_only(world, client):
    final = _final(world, world.firm, world.bz, 2024, CreditGrade.B, "85.50", finalised_at=None)
    open_for_objection = CreditRating(bureau_id=world.kz.id, firm_id=world.other_firm.id, year=2025,
                                      status=RatingStatus.PUBLISHED, rated=True, total=Decimal("95"),
                                      grade=CreditGrade.A, components=[], objection_deadline=beijing_today())
    draft = CreditRating(bureau_id=world.bz.id, firm_id=world.firm.id, year=2025, status=RatingStatus.DRAFT,
                         rated=True, total=Decimal("50"), grade=CreditGrade.D, components=[])
    db.session.add_all([open_for_objection, draft])
    db.session.commit()

    page = text(client.get("/public/ratings"))
    assert f'data-testid="public-rating-{final.id}"' in page and world.firm.name in page and "85.5" in page
    assert world.other_firm.name not in page and f"public-rating-{open_for_objection.id}" not in page
    assert f"public-rating-{draft.id}" not in page and ">50<" not in page
    assert "信用评价公示" in page   # the anonymous navbar link

    assert world.firm.name in text(client.get("/public/ratings?year=2024&grade=B&firm=示范"))
    assert world.firm.name in text(client.get(f"/public/ratings?bureau={world.bz.id}"))
    for query in ("year=2025", "grade=A", f"bureau={world.kz.id}", "firm=不存在的机构"):
        assert f"public-rating-{final.id}" not in text(client.get(f"/public/ratings?{query}")), query

    page = text(client.get(f"/public/ratings/firm/{world.firm.id}"))
    assert 'data-testid="history-2024"' in page and "B 级" in page and "history-2025" not in page
    assert "执业质量" in page and "30 / 40" in page
    assert client.get(f"/public/ratings/firm/{world.other_firm.id}").status_code == 404   # only published
    response = client.get(f"/credit/ratings/{open_for_objection.id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- dashboard and navigation ----------------------------------------------------------------------

def _chart(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="credit-chart-data">(.*?)</script>', page, re.S)
    return json.loads(found.group(1)) if found else {}


def test_the_dashboard_shows_the_grade_chart_and_watch_list_in_scope(world, login):
    _published(world)   # 2025: C, published
    watched = factories.firm(world.bz, name="巴州重点关注咨询公司")
    _final(world, watched, world.bz, 2024, CreditGrade.D, "40", watch_list=True, watch_reason="伪造问卷数据")
    _final(world, world.other_firm, world.kz, 2024, CreditGrade.A, "95")   # 克州's

    page = text(login(world.bz_admin).get("/"))
    assert "信用评价等级分布" in page and "重点关注名单" in page
    # vendored: no script, style or image from another host (a random nonce or token once held "cdn" when lower-cased: a false failure)
    assert "vendor/chartjs/chart.umd.min.js" in page and not re.search(r"(?:\ssrc|<link[^>]*\shref)\s*=\s*[\"']?(?:https?:)?//", page)
    chart = _chart(page)
    assert chart["labels"] == ["2024", "2025"]
    data = {d["grade"]: d["data"] for d in chart["datasets"]}
    assert data == {"A": [0, 0], "B": [0, 0], "C": [0, 1], "D": [1, 0]}
    assert watched.name in page and "伪造问卷数据" in page
    assert 'data-testid="nav-credit"' in page and 'href="/credit"' in page

    page = text(login(world.kz_admin).get("/"))
    data = {d["grade"]: d["data"] for d in _chart(page)["datasets"]}
    assert _chart(page)["labels"] == ["2024"] and data["A"] == [1] and data["D"] == [0]
    assert watched.name not in page

    page = text(login(world.firm_user).get("/credit/mine"))
    assert 'data-testid="nav-my-credit"' in page


def test_every_page_but_the_public_ones_needs_a_login(world, client):
    rating = _published(world)
    objection = C.object_to(rating, world.firm_user, "合同履行得分有误：方案实际按期提交。", [("回执.txt", "回执".encode())])
    record = C.add_external_record(world.bz, world.firm, world.bz_admin, kind="行政处罚", occurred_on=date(2025, 6, 1),
                                   description="税务行政处罚", deduction="4", filename="决定书.txt", data=TXT)
    db.session.commit()
    gets = ["/credit", "/credit?year=2025&export=xlsx", f"/credit/ratings/{rating.id}", "/credit/mine", "/credit/calendar",
            "/credit/external/new", f"/credit/external/{record.id}/file",
            f"/credit/objections/{objection.id}/files/{objection.evidence_file_ids[0]}"]
    posts = ["/credit/compute", "/credit/publish", "/credit/finalise", f"/credit/ratings/{rating.id}/objections",
             f"/credit/objections/{objection.id}/answer", "/credit/calendar", "/credit/external/new"]
    for url in gets:
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    for url in posts:
        response = client.post(url, data={"year": "2025"})
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    assert count(CreditObjection) == 1 and count(Job) == 0
    assert client.get("/public/ratings").status_code == 200
    assert client.get(f"/public/ratings/firm/{world.firm.id}").status_code == 404   # published, not final
