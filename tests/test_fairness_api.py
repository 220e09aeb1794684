"""Issue 14's fairness rules on the API ("every rule on every path"): 不予立案 of a complaint, 指定检查人员 with
the independence refusals, and the bureau's rating of the experts after a panel (also a self-evaluation
panel) with the expert's record — each through the same service as the pages, refused for the wrong role
and the wrong organisation, and for bad input with a Chinese message."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.extensions import db
from evalhub.review import ratings as RT
from evalhub.review.models import PanelStatus, ReviewPanel
from evalhub.supervision import services as V
from evalhub.supervision.models import ComplaintStatus, Inspection, Trigger
from tests import factories
from tests.kept_states import kept

TEXT = "评价人员未到现场即出具报告，报告数据照抄被评价单位的自评材料。"
REASON = "投诉事项已由审计部门处理，本局不予重复立案。"


def _text(response) -> str:
    """The answer as readable text (the JSON escapes Chinese)."""
    return json.dumps(response.json, ensure_ascii=False) if response.is_json else response.get_data(as_text=True)


# --- 不予立案 ----------------------------------------------------------------------------------------

@pytest.fixture()
@kept
def complaint(world):
    c = V.file_complaint(bureau_id=world.bz.id, firm_name=world.firm.name, text=TEXT, engagement_reference=None,
                         complainant_name="举报人钱七", complainant_contact="13700000000", address="10.9.9.9")
    db.session.commit()
    return c


def test_a_complaint_is_declined_on_the_api(client, auth, world, complaint):
    url = f"/api/v1/complaints/{complaint.id}/decline"
    for username in ("firm1", "expert1"):
        response = client.post(url, json={"reason": REASON}, headers=auth(username))
        assert response.status_code == 403, username
    assert client.post(url, json={"reason": REASON}, headers=auth("kz.admin")).status_code in (403, 404)
    # the region sees 巴州's complaint but only the bureau that received it decides
    assert client.post(url, json={"reason": REASON}, headers=auth("region.admin")).status_code == 403
    response = client.post(url, json={"reason": "不属实"}, headers=auth("bz.staff"))
    assert response.status_code == 422 and "不少于 10 字" in _text(response)
    assert "reason" in response.json["error"]["fields"]
    response = client.post(url, json={"reason": 12345678901}, headers=auth("bz.staff"))
    assert response.status_code == 422 and "字符串" in _text(response)
    assert client.post(url, data="x", headers=auth("bz.staff")).status_code == 400
    db.session.refresh(complaint)
    assert complaint.status == ComplaintStatus.RECEIVED

    response = client.post(url, json={"reason": REASON}, headers=auth("bz.staff"))
    assert response.status_code == 200, _text(response)
    assert response.json["status"]["value"] == ComplaintStatus.DECLINED.value
    assert response.json["decision_reason"] == REASON
    assert TEXT not in _text(response) and "13700000000" not in _text(response)
    assert client.post(url, json={"reason": REASON}, headers=auth("bz.admin")).status_code == 409
    assert client.post("/api/v1/complaints/999999/decline", json={"reason": REASON},
                       headers=auth("bz.staff")).status_code == 404


# --- 指定检查人员 -------------------------------------------------------------------------------------

@pytest.fixture()
@kept
def case(world):
    """A targeted case of 巴州 on an engagement whose work plan a panel approved; a fresh officer of 巴州."""
    e = factories.in_fieldwork(world)
    world.fresh = factories.user("bz.inspector", Role.BUREAU_STAFF, bureau_id=world.bz.id)
    world.clean = factories.expert(world.bz, name="独立专家", employer="新疆某研究院乙")
    inspection = V.open_case(world.bz, world.bz_staff, trigger=Trigger.LOW_SCORE, detail="实施方案评审得分偏低", engagement=e)
    db.session.commit()
    return inspection


def test_an_inspector_is_named_on_the_api_with_the_independence_refusals(client, auth, world, case):
    url = f"/api/v1/inspections/{case.id}/inspectors"
    # the inspected firm sees the case, but does not run it; an expert not seated on it does not see it
    assert client.post(url, json={"user_id": world.fresh.id}, headers=auth("firm1")).status_code == 403
    assert client.post(url, json={"user_id": world.fresh.id}, headers=auth("expert1")).status_code == 404
    assert client.post(url, json={"user_id": world.fresh.id}, headers=auth("kz.admin")).status_code in (403, 404)
    assert client.post(url, json={"user_id": world.fresh.id}, headers=auth("region.admin")).status_code == 403

    # bz.staff ran the engagement's procurement: not independent, refused with the reason in Chinese
    response = client.post(url, json={"user_id": world.bz_staff.id}, headers=auth("bz.admin"))
    body = _text(response)
    assert response.status_code == 422 and "经办过该评价任务的采购" in body and "user_id" in response.json["error"]["fields"]
    response = client.post(url, json={"user_id": world.fresh.id, "expert_id": world.clean.id}, headers=auth("bz.admin"))
    assert response.status_code == 422 and "只能选一个" in _text(response)
    response = client.post(url, json={}, headers=auth("bz.admin"))
    assert response.status_code == 422 and "请选择" in _text(response)
    response = client.post(url, json={"user_id": "abc"}, headers=auth("bz.admin"))
    assert response.status_code == 422 and "整数" in _text(response)
    response = client.post(url, json={"user_id": world.kz_staff.id}, headers=auth("bz.admin"))
    assert response.status_code == 422 and "不是本局或上级财政局" in _text(response)
    assert client.post(url, json={"user_id": 2**40}, headers=auth("bz.admin")).status_code == 422
    assert not db.session.get(Inspection, case.id).inspectors

    response = client.post(url, json={"user_id": world.fresh.id, "reason": "熟悉该领域"}, headers=auth("bz.admin"))
    assert response.status_code == 201, _text(response)
    assert [(p["kind"], p["id"]) for p in response.json["inspectors"]] == [("staff", world.fresh.id)]
    response = client.post(url, json={"expert_id": world.clean.id}, headers=auth("bz.admin"))
    assert response.status_code == 201 and len(response.json["inspectors"]) == 2
    assert client.post(url, json={"expert_id": world.clean.id}, headers=auth("bz.admin")).status_code == 409
    assert client.post("/api/v1/inspections/999999/inspectors", json={"user_id": world.fresh.id},
                       headers=auth("bz.admin")).status_code == 404


# --- 评价专家 and the expert's record ------------------------------------------------------------------

@pytest.fixture()
@kept
def panel(world):
    """The decided work-plan panel of an engagement of 巴州 (three seated experts with accounts)."""
    e = factories.in_fieldwork(world)
    p = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.engagement_id == e.id)).scalar_one()
    assert p.status != PanelStatus.REVIEWING and len(RT.ratable(p)) == 3
    db.session.commit()
    return p


def _account(expert) -> str:
    return factories.expert_user(expert.id).username


def test_experts_are_rated_on_the_api(client, auth, world, panel):
    url = f"/api/v1/panels/{panel.id}/ratings"
    expert, other = RT.ratable(panel)[:2]
    good = {"expert_id": expert.id, "timeliness": 5, "quality": 4, "note": "意见具体、按时提交"}
    for username in ("firm1", "expert1", _account(expert)):
        assert client.post(url, json=good, headers=auth(username)).status_code == 403, username
    assert client.post(url, json=good, headers=auth("kz.admin")).status_code in (403, 404)
    assert client.post("/api/v1/panels/999999/ratings", json=good, headers=auth("bz.staff")).status_code == 404

    response = client.post(url, json={**good, "timeliness": 6}, headers=auth("bz.staff"))
    assert response.status_code == 422 and "不能大于 5" in _text(response)
    response = client.post(url, json={**good, "quality": "好"}, headers=auth("bz.staff"))
    assert response.status_code == 422 and "quality" in response.json["error"]["fields"]
    response = client.post(url, json={"expert_id": expert.id, "timeliness": 2, "quality": 4}, headers=auth("bz.staff"))
    assert response.status_code == 422 and "请写明具体情况" in _text(response)
    response = client.post(url, json={**good, "expert_id": world.expert.id}, headers=auth("bz.staff"))  # not seated
    assert response.status_code == 422 and "参加本评审组的专家" in _text(response)
    response = client.post(url, json={"expert_id": expert.id}, headers=auth("bz.staff"))
    assert response.status_code == 422 and "选择 1–5 分" in _text(response)

    response = client.post(url, json=good, headers=auth("bz.staff"))
    assert response.status_code == 201, _text(response)
    assert response.json["expert"]["id"] == expert.id and response.json["timeliness"] == 5
    assert response.json["panel"]["id"] == panel.id
    assert client.post(url, json=good, headers=auth("bz.admin")).status_code == 409

    # the record: the bureau and the expert themself; never a firm, another expert or another prefecture
    record = f"/api/v1/experts/{expert.id}/ratings"
    for username in ("bz.staff", _account(expert)):
        response = client.get(record, headers=auth(username))
        assert response.status_code == 200, username
        assert [r["quality"] for r in response.json["items"]] == [4] and response.json["excluded"] is False
    assert client.get(record, headers=auth("firm1")).status_code == 403
    assert client.get(record, headers=auth(_account(other))).status_code == 403
    assert client.get(record, headers=auth("kz.admin")).status_code in (403, 404)
    assert client.get("/api/v1/experts/999999/ratings", headers=auth("bz.staff")).status_code == 404


def test_a_self_evaluation_panel_is_rated_on_the_page_and_the_api(client, auth, login, world):
    from tests.test_self_evaluation import _panel, _reviewers, _upload
    from evalhub.results import services as S

    unit_user = factories.unit_user(world, "巴州统计局", "tjj.zpj")
    experts = _reviewers(world)
    se = S.submit_self_evaluation(unit_user, world.units["巴州统计局"], year=2025, name="中央财政统计能力建设补助资金",
                                  funds="1200000", upload=_upload())
    panel = _panel(se, world.bz_staff)
    factories.review_panel(panel, fraction="0.95")
    db.session.commit()
    db.session.refresh(panel)
    assert panel.engagement_id is None and panel.decided_at is not None

    login(world.bz_staff)
    page = client.get(f"/reviews/panels/{panel.id}").get_data(as_text=True)
    assert 'data-testid="rate-experts"' in page
    assert client.get(f"/reviews/panels/{panel.id}/expert-ratings").status_code == 200

    url = f"/api/v1/panels/{panel.id}/ratings"
    body = {"expert_id": experts[0].id, "timeliness": 4, "quality": 5}
    assert client.post(url, json=body, headers=auth("tjj.zpj")).status_code == 403
    assert client.post(url, json=body, headers=auth("kz.staff")).status_code in (403, 404)
    response = client.post(url, json=body, headers=auth("bz.staff"))
    assert response.status_code == 201, _text(response)
    assert response.json["panel"]["subject_reference"] == se.reference
    response = client.get(f"/api/v1/experts/{experts[0].id}/ratings", headers=auth("bz.staff"))
    assert response.status_code == 200 and response.json["items"][0]["panel"]["id"] == panel.id
    page = client.get(f"/experts/{experts[0].id}/ratings").get_data(as_text=True)
    assert se.reference in page
