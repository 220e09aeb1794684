"""Issue 15, the rest of the loop: the firm's 资料清单 during fieldwork (the unit uploads, the firm sees it,
overdue lines show on the unit's page), the API routes for opening unit accounts and uploading the signed
整改报告 (with their refusals), and the prefecture's county chart."""
from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import Notification, User
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.results import charts
from evalhub.results import services as S
from evalhub.results.models import MaterialRequest, RectificationReport
from tests import factories
from tests.kept_states import kept


@pytest.fixture()
@kept
def field(world):
    """An engagement of 巴州统计局 in fieldwork, with unit accounts of the unit, a sibling and a 克州 unit."""
    world.e = factories.in_fieldwork(world)
    world.unit = factories.unit_user(world, "巴州统计局", "tjj.zl")
    world.sibling = factories.unit_user(world, "巴州民政局", "mzj.zl")
    world.kz_unit = factories.unit_user(world, "克州农业农村局", "kz.zl")
    db.session.commit()
    return world


def _soon(days: int = 10) -> date:
    return beijing_today() + timedelta(days=days)


def test_the_firm_lists_materials_the_unit_uploads_and_the_firm_sees_them(field):
    w = field
    rows = S.request_materials(w.e, w.firm_user, [("2024 年度项目资金拨付凭证", _soon(), "按月汇总"),
                                                  ("项目绩效目标申报表", _soon(5), None), ("", None, None)])
    assert [r.title for r in rows] == ["2024 年度项目资金拨付凭证", "项目绩效目标申报表"]
    told = db.session.execute(sa.select(Notification.title).where(Notification.user_id == w.unit.id)).scalars().all()
    assert any("请贵单位提供资料" in t for t in told)
    S.upload_material(rows[0], w.unit, files.Upload("拨付凭证.docx", factories.docx_bytes("拨付凭证")), "已汇总")
    assert rows[0].uploaded_at is not None and rows[0].file.original_name == "拨付凭证.docx"
    assert [m.id for m in S.materials_of(w.e)] == [rows[1].id, rows[0].id]  # by due date

    for actor in (w.sibling, w.kz_unit, w.firm_user, w.bz_staff):  # only the evaluated unit uploads
        with pytest.raises(PermissionDenied):
            S.upload_material(rows[1], actor, files.Upload("x.docx", factories.docx_bytes("x")))
    for actor in (w.unit, w.other_firm_user, w.bz_staff):  # only the contracted firm lists
        with pytest.raises(PermissionDenied):
            S.request_materials(w.e, actor, [("甲", _soon(), None)])
    with pytest.raises(ValidationFailed) as bad:
        S.request_materials(w.e, w.firm_user, [("资料", "下周", None), ("", "", None)])
    assert "due_1" in bad.value.fields
    with pytest.raises(ValidationFailed):  # nothing listed
        S.request_materials(w.e, w.firm_user, [])
    with pytest.raises(ValidationFailed):  # an empty file
        S.upload_material(rows[1], w.unit, files.Upload("空.pdf", b""))


def test_an_overdue_line_shows_on_the_units_page_not_a_siblings(field, client, login):
    w = field
    item = S.request_materials(w.e, w.firm_user, [("资金管理办法", _soon(1), None)])[0]
    item.due_on = beijing_today() - timedelta(days=2)  # two days past: still missing
    db.session.commit()
    assert [m.id for m in S.overdue_materials(w.unit)] == [item.id]
    assert S.overdue_materials(w.sibling) == []
    login(w.unit)
    home = client.get("/results/unit").get_data(as_text=True)
    assert "逾期未提供的资料" in home and "资金管理办法" in home
    page = client.get(f"/results/unit/engagements/{w.e.id}").get_data(as_text=True)
    assert f'data-testid="material-overdue-{item.id}"' in page
    login(w.sibling)
    assert "资金管理办法" not in client.get("/results/unit").get_data(as_text=True)


def test_material_pages_and_their_refusals(field, client, login):
    w = field
    login(w.firm_user)
    assert client.get(f"/results/engagements/{w.e.id}/materials").status_code == 200
    bad = client.post(f"/results/engagements/{w.e.id}/materials", data={"title_1": "凭证", "due_1": "2001-01-01"})
    assert bad.status_code == 422 and "不能早于今天" in bad.get_data(as_text=True)
    done = client.post(f"/results/engagements/{w.e.id}/materials",
                       data={"title_1": "项目合同", "due_1": _soon().isoformat(), "note_1": "含补充协议"})
    assert done.status_code == 302
    item = db.session.execute(sa.select(MaterialRequest)).scalars().one()

    login(w.unit)
    up = client.post(f"/results/materials/{item.id}/upload", data={
        f"m{item.id}-file": (io.BytesIO(factories.docx_bytes("合同")), "合同.docx"), f"m{item.id}-note": "扫描件"},
        content_type="multipart/form-data")
    assert up.status_code == 302
    assert client.get(f"/results/materials/{item.id}/file").status_code == 200
    assert client.post(f"/results/engagements/{w.e.id}/materials",
                       data={"title_1": "x", "due_1": _soon().isoformat()}).status_code == 403  # a unit does not list

    login(w.firm_user)  # the firm sees the upload
    page = client.get(f"/results/engagements/{w.e.id}/materials").get_data(as_text=True)
    assert "合同.docx" in page and "已提供" in page
    assert client.get(f"/results/materials/{item.id}/file").status_code == 200

    for who in (w.sibling, w.kz_unit, w.other_firm_user, w.kz_staff, w.expert_user):
        login(who)
        assert client.get(f"/results/engagements/{w.e.id}/materials").status_code == 403, who.username
        assert client.get(f"/results/materials/{item.id}/file").status_code == 403, who.username
        assert client.post(f"/results/materials/{item.id}/upload", data={}).status_code == 403, who.username


# --- API: unit accounts and the signed 整改报告 ------------------------------------------------------

def test_api_opens_a_unit_account_for_the_bureaus_admin_only(world, client, auth):
    unit = world.units["巴州统计局"]
    body = {"username": "tjj.api", "display_name": "统计局张科长"}
    made = client.post(f"/api/v1/results/units/{unit.id}/accounts", json=body, headers=auth("bz.admin"))
    assert made.status_code == 201, made.get_data(as_text=True)
    data = made.get_json()
    assert data["budget_unit_id"] == unit.id and data["activation_url"].startswith("http")
    user = db.session.execute(sa.select(User).where(User.username == "tjj.api")).scalar_one()
    assert user.role == Role.BUDGET_UNIT and user.budget_unit_id == unit.id
    # staff, another bureau's admin, a firm: refused (404: the API does not reveal another bureau's unit)
    for who in ("bz.staff", "kz.admin", "firm1", "expert1"):
        refused = client.post(f"/api/v1/results/units/{unit.id}/accounts", json={"username": f"x.{who}",
                                                                                 "display_name": "某人"}, headers=auth(who))
        assert refused.status_code in (403, 404), who
    assert client.post(f"/api/v1/results/units/{unit.id}/accounts", json={"username": "", "display_name": "甲"},
                       headers=auth("bz.admin")).status_code == 422
    assert client.post(f"/api/v1/results/units/{unit.id}/accounts", json=body,
                       headers=auth("bz.admin")).status_code in (409, 422)  # the name is taken


def test_api_uploads_the_signed_rectification_report_for_the_unit_only(world, client, auth):
    e = factories.accepted(world)
    factories.unit_user(world, "巴州统计局", "tjj.sign")
    factories.unit_user(world, "巴州民政局", "mzj.sign")
    factories.confirmed_findings(world, e, n=1)
    db.session.commit()
    url = f"/api/v1/results/engagements/{e.id}/rectification/signed"

    def post(who, data=None, name="整改报告.docx"):
        data = factories.docx_bytes("整改报告 已签章") if data is None else data
        return client.post(url, data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data",
                           headers=auth(who))

    done = post("tjj.sign")
    assert done.status_code == 201, done.get_data(as_text=True)
    assert db.session.execute(sa.select(RectificationReport)).scalars().one().engagement_id == e.id
    assert post("mzj.sign").status_code == 404  # a sibling unit does not see the engagement
    assert post("bz.staff").status_code == 403  # the bureau reads, the unit signs
    assert post("firm1").status_code == 403
    assert post("tjj.sign", data=b"").status_code == 422
    assert client.post(url, json={}, headers=auth("tjj.sign")).status_code in (400, 415, 422)


# --- the county chart --------------------------------------------------------------------------------

def test_the_county_chart_draws_each_countys_rate_and_reduction(world):
    from decimal import Decimal

    rows = [{"bureau": world.lt, "rate": Decimal("75.0"), "reduced": Decimal("300000")},
            {"bureau": world.krl, "rate": None, "reduced": Decimal("0")}]
    svg = str(charts.county_chart_svg(rows))
    assert svg.startswith("<svg") and "轮台县" in svg and "库尔勒市" in svg and "30.00" in svg and "75" in svg
    assert "<script" not in svg and "style=" not in svg  # nothing the CSP would refuse
    assert str(charts.county_chart_svg([])) == ""


def test_the_prefecture_sees_the_chart_a_county_does_not(world, client, login):
    login(world.bz_staff)
    page = client.get("/results/application?year=2025").get_data(as_text=True)
    assert 'data-testid="county-chart"' in page and "轮台县" in page
    login(world.lt_staff)
    page = client.get("/results/application?year=2025").get_data(as_text=True)
    assert 'data-testid="county-chart"' not in page
