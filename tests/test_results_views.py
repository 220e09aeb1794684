"""Issue 15 pages and API: every route refuses the wrong role or organisation; a unit never reads an expert's
name (page or JSON); the list exports to Excel; the county table is the prefecture's, not a sibling's."""
from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.extensions import db
from evalhub.registry.models import Expert
from evalhub.procurement.models import Engagement
from evalhub.results import services as S
from evalhub.results.models import ResultFinding, FindingStatus
from tests import factories
from tests.kept_states import kept


@pytest.fixture()
@kept
def loop(world):
    """A really accepted engagement (both expert reviews) of 巴州统计局, two confirmed findings, and unit
    accounts: the unit, its sibling (巴州民政局) and a unit of 克州."""
    e = factories.accepted(world)
    world.e = e
    world.unit = factories.unit_user(world, "巴州统计局", "tjj")
    world.sibling = factories.unit_user(world, "巴州民政局", "mzj")
    world.kz_unit = factories.unit_user(world, "克州农业农村局", "kznyj")
    world.findings = factories.confirmed_findings(world, e, n=2)
    db.session.commit()
    return world


def _expert_names() -> set[str]:
    names = set(db.session.execute(sa.select(Expert.name)).scalars())
    names |= set(db.session.execute(sa.select(User.display_name).where(User.role == Role.EXPERT)).scalars())
    return {n for n in names if n}


def test_the_unit_sees_its_engagement_firm_and_timeline_but_never_an_expert(loop, client, login, auth):
    login(loop.unit)
    assert client.get("/").status_code in (200, 302)  # signing in lands somewhere that works
    home = client.get("/results/unit")
    assert home.status_code == 200 and loop.e.reference in home.get_data(as_text=True)
    page = client.get(f"/results/unit/engagements/{loop.e.id}").get_data(as_text=True)
    assert loop.firm.name in page and "资金支付进度滞后" in page and "已验收" in page
    api = client.get("/api/v1/results/unit/engagements", headers=auth("tjj"))
    assert api.status_code == 200 and api.json[0]["firm"] == loop.firm.name and api.json[0]["timeline"]
    findings = client.get(f"/api/v1/results/engagements/{loop.e.id}/findings", headers=auth("tjj")).get_data(as_text=True)
    docx_page = client.get(f"/results/engagements/{loop.e.id}/rectification.docx")
    assert docx_page.status_code == 200
    names = _expert_names()
    assert names  # the accepted engagement had two real panels
    for text in (home.get_data(as_text=True), page, api.get_data(as_text=True), findings):
        assert not [n for n in names if n in text]


def test_a_sibling_or_another_bureaus_unit_is_refused_everywhere(loop, client, login, auth):
    f = loop.findings[0]
    for who in (loop.sibling, loop.kz_unit):
        login(who)
        assert client.get(f"/results/unit/engagements/{loop.e.id}").status_code == 403
        assert client.get(f"/results/engagements/{loop.e.id}/rectification.docx").status_code == 403
        assert client.post(f"/results/findings/{f.id}/plan", data={f"p{f.id}-plan": "x"}).status_code == 403
        assert client.post(f"/results/findings/{f.id}/evidence", data={f"e{f.id}-note": "x"}).status_code == 403
        assert client.post(f"/results/engagements/{loop.e.id}/rectification/signed").status_code == 403
        assert client.post(f"/results/engagements/{loop.e.id}/unit-publication",
                           data={"url": "https://x.gov.cn/a", "published_on": "2025-09-01"}).status_code == 403
        assert client.post(f"/api/v1/results/engagements/{loop.e.id}/unit-publication", headers=auth(who.username),
                           json={"url": "https://x.gov.cn/a", "published_on": "2025-09-01"}).status_code == 404
        assert client.get(f"/api/v1/results/engagements/{loop.e.id}/findings", headers=auth(who.username)).status_code == 404
        assert client.post(f"/api/v1/results/findings/{f.id}/plan", json={"plan": "x"},
                           headers=auth(who.username)).status_code == 404
    # a unit is no bureau: the bureau's pages and the list are closed to it
    login(loop.unit)
    for url in ("/results/application", "/results/overdue", f"/results/engagements/{loop.e.id}/findings",
                f"/results/units/{loop.units['巴州统计局'].id}/accounts"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/results/findings/{f.id}/verify", data={f"v{f.id}-verification": "done"}).status_code == 403


def test_firm_and_bureau_routes_refuse_the_others(loop, client, login, auth):
    e, f = loop.e, loop.findings[0]
    login(loop.other_firm_user)  # not the contracted firm
    assert client.get(f"/results/engagements/{e.id}/findings").status_code == 403
    assert client.post(f"/results/engagements/{e.id}/findings", data={"text": "x", "category": "process"}).status_code == 403
    assert client.post(f"/results/engagements/{e.id}/findings/import").status_code == 403
    login(loop.firm_user)  # the contracted firm enters, but does not confirm or verify
    assert client.get(f"/results/engagements/{e.id}/findings").status_code == 200
    assert client.post(f"/results/engagements/{e.id}/findings/confirm").status_code == 403
    assert client.post(f"/results/findings/{f.id}/verify", data={f"v{f.id}-verification": "done"}).status_code == 403
    assert client.post(f"/api/v1/results/findings/{f.id}/verify", json={"verification": "done"},
                       headers=auth("firm1")).status_code == 403
    login(loop.kz_staff)  # another prefecture sees nothing of it
    assert client.get(f"/results/engagements/{e.id}/findings").status_code == 403
    assert client.post(f"/results/findings/{f.id}/verify", data={f"v{f.id}-verification": "done"}).status_code == 403
    assert client.get("/results/application?bureau=652800&year=2025").status_code == 403
    assert client.post("/results/application/build?bureau=652800&year=2025").status_code == 403
    login(loop.bz_staff)  # staff do not create accounts; the region reads but does not verify
    assert client.get(f"/results/units/{loop.units['巴州统计局'].id}/accounts").status_code == 403
    login(loop.region_admin)
    assert client.post(f"/results/findings/{f.id}/verify", data={f"v{f.id}-verification": "done"}).status_code == 403
    assert client.get("/results/application?bureau=652800&year=2025").status_code == 200


def test_a_bureau_admin_creates_a_unit_account_on_its_page_and_the_link_shows_once(loop, client, login):
    unit = loop.units["巴州民政局"]
    login(loop.bz_admin)
    response = client.post(f"/results/units/{unit.id}/accounts", data={"username": "mzj.li", "display_name": "李主任"})
    assert response.status_code == 201 and "/account/activate/" in response.get_data(as_text=True)
    user = db.session.execute(sa.select(User).where(User.username == "mzj.li")).scalar_one()
    assert user.role == Role.BUDGET_UNIT and user.budget_unit_id == unit.id
    bad = client.post(f"/results/units/{unit.id}/accounts", data={"username": "mzj.li", "display_name": "重名"})
    assert bad.status_code == 422 and "已被使用" in bad.get_data(as_text=True)
    login(loop.kz_admin)
    assert client.post(f"/results/units/{unit.id}/accounts",
                       data={"username": "x9", "display_name": "某"}).status_code == 403


def test_unit_answers_and_bureau_verifies_through_the_pages(loop, client, login, auth):
    from evalhub.core.timeutil import beijing_today

    f, today = loop.findings[0], beijing_today().isoformat()
    login(loop.unit)
    bad = client.post(f"/results/findings/{f.id}/plan", data={f"p{f.id}-plan": ""})
    assert bad.status_code == 422 and "请填写整改计划" in bad.get_data(as_text=True)
    assert client.post(f"/results/findings/{f.id}/plan", data={f"p{f.id}-plan": "财务科负责"}).status_code == 302
    upload = {f"e{f.id}-note": "已支付", f"e{f.id}-files": (io.BytesIO("凭证".encode()), "凭证.txt")}
    assert client.post(f"/results/findings/{f.id}/evidence", data=upload,
                       content_type="multipart/form-data").status_code == 302
    early = client.post(f"/api/v1/results/engagements/{loop.e.id}/unit-publication", headers=auth("tjj"),
                        json={"url": "https://www.xjbz.gov.cn/tjj/report.html", "published_on": today})
    assert early.status_code == 409  # the unit publishes the bureau's redacted version: after the bureau (seed 000)
    from evalhub.review import services as R

    R.publish(db.session.get(Engagement, loop.e.id), loop.bz_staff, filename="脱密版.docx",
              data=factories.docx_bytes("脱密后的报告全文"))
    db.session.commit()
    published = client.post(f"/api/v1/results/engagements/{loop.e.id}/unit-publication", headers=auth("tjj"),
                            json={"url": "https://www.xjbz.gov.cn/tjj/report.html", "published_on": today})
    assert published.status_code == 200 and published.json["published_on"] == today  # not before the acceptance
    assert "www.xjbz.gov.cn/tjj/report.html" in client.get(f"/results/unit/engagements/{loop.e.id}").get_data(as_text=True)
    login(loop.bz_staff)
    assert client.post(f"/results/findings/{f.id}/verify", data={f"v{f.id}-verification": "done"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(ResultFinding, f.id).status == FindingStatus.CLOSED
    again = client.post(f"/results/findings/{f.id}/verify", data={f"v{f.id}-verification": "done"})
    assert again.status_code == 409


def test_the_list_page_exports_the_budget_offices_columns(loop, client, login):
    login(loop.bz_staff)
    assert client.post("/results/application/build?bureau=652800&year=2025").status_code == 302
    page = client.get("/results/application?year=2025").get_data(as_text=True)
    assert loop.e.name in page and "规则建议" in page
    xlsx = client.get("/results/application?year=2025&export=xlsx")
    assert xlsx.status_code == 200
    import openpyxl

    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.data)).active
    header = [c.value for c in sheet[1]]
    assert header == S.EXPORT_COLUMNS and sheet.max_row == 2 and sheet.cell(2, 3).value == loop.e.name
    summary = client.get("/results/summary.docx?year=2025")
    assert summary.status_code == 200 and summary.data[:2] == b"PK"


def test_the_api_confirms_an_entry_and_asks_for_a_reason_when_departing(loop, client, auth):
    headers = auth("bz.staff")
    built = client.post("/api/v1/results/application/build?year=2025", headers=headers)
    assert built.status_code == 200 and len(built.json) == 1
    entry = built.json[0]
    departing = client.post(f"/api/v1/results/application/entries/{entry['id']}/confirm",
                            json={"measures": ["cancel"]}, headers=headers)
    assert departing.status_code == 422 and "reason" in departing.json["error"]["fields"]
    ok = client.post(f"/api/v1/results/application/entries/{entry['id']}/confirm",
                     json={"measures": ["cancel"], "reason": "项目已完成，不再安排"}, headers=headers)
    assert ok.status_code == 200 and ok.json["measures"] == ["cancel"]
    assert client.post(f"/api/v1/results/application/entries/{entry['id']}/confirm", json={"measures": []},
                       headers=auth("kz.staff")).status_code == 404
    assert client.get("/api/v1/results/application?bureau=652800&year=2025", headers=auth("kz.staff")).status_code == 404


def test_fact_confirmation_pages_and_their_refusals(world, client, login):
    from evalhub.results.models import FactConfirmation

    e = factories.in_fieldwork(world)
    factories.unit_user(world, "巴州统计局", "tjj")
    sibling = factories.unit_user(world, "巴州民政局", "mzj")
    db.session.commit()
    def draft():
        return {"file": (io.BytesIO(factories.docx_bytes("评价报告初稿")), "初稿.docx")}

    login(world.other_firm_user)
    assert client.get(f"/results/engagements/{e.id}/fact-confirmation").status_code == 403
    assert client.post(f"/results/engagements/{e.id}/fact-confirmation", data=draft(),
                       content_type="multipart/form-data").status_code == 403
    login(world.bz_staff)  # the bureau reads the exchange; it does not send the firm's draft
    assert client.get(f"/results/engagements/{e.id}/fact-confirmation").status_code == 200
    assert client.post(f"/results/engagements/{e.id}/fact-confirmation", data=draft(),
                       content_type="multipart/form-data").status_code == 403
    login(world.firm_user)
    empty = client.post(f"/results/engagements/{e.id}/fact-confirmation", data={}, content_type="multipart/form-data")
    assert empty.status_code == 422 and "请选择评价报告初稿" in empty.get_data(as_text=True)
    assert client.post(f"/results/engagements/{e.id}/fact-confirmation", data=draft(),
                       content_type="multipart/form-data").status_code == 302
    row = db.session.execute(sa.select(FactConfirmation)).scalar_one()
    login(sibling)
    assert client.post(f"/results/fact/{row.id}/answer", data={"agreed": "yes"}).status_code == 403
    assert client.get(f"/results/fact/{row.id}/draft").status_code == 403
    login(world.firm_user)
    assert client.post(f"/results/fact/{row.id}/answer", data={"agreed": "yes"}).status_code == 403
    login(db.session.execute(sa.select(User).where(User.username == "tjj")).scalar_one())
    page = client.get(f"/results/unit/engagements/{e.id}").get_data(as_text=True)
    assert "初稿.docx" in page and "待单位答复" in page
    assert client.get(f"/results/fact/{row.id}/draft").status_code == 200
    assert client.post(f"/results/fact/{row.id}/answer", data={"agreed": "no", "text": "口径有误"}).status_code == 302
    assert client.post(f"/results/fact/{row.id}/respond", data={"text": "不是我回应"}).status_code == 403
    login(world.firm_user)
    assert client.post(f"/results/fact/{row.id}/respond", data={"text": "已重新核对"}).status_code == 302
    assert "已重新核对" in client.get(f"/results/engagements/{e.id}/fact-confirmation").get_data(as_text=True)


def test_a_bureau_admin_manages_its_units_accounts_and_no_other_bureau_does(world):
    """Unit accounts are the bureau's to see, disable and sign out (core's account scope), not a sibling's."""
    from evalhub.core import permissions
    from evalhub.core.models import User

    unit_account = factories.unit_user(world, "轮台县医疗保障局", "lt.unit")
    db.session.commit()
    listed = lambda admin: set(db.session.execute(permissions.scope(admin, sa.select(User.id), User)).scalars())  # noqa: E731
    assert unit_account.id in listed(world.lt_admin) and unit_account.id in listed(world.bz_admin)  # its bureau, and above
    assert unit_account.id not in listed(world.krl_admin) and unit_account.id not in listed(world.kz_admin)
    assert permissions.manages_account(world.lt_admin, unit_account)
    assert not permissions.manages_account(world.krl_admin, unit_account)
    assert not permissions.manages_account(world.lt_staff, unit_account)


def test_a_unit_account_is_refused_every_bureau_and_firm_page(world, client, login):
    """An evaluated unit reads its own engagements on its own pages; the bureau's lists, the expert pool,
    panels, screening, credit, audit and the firms' workspace are closed to it (403), never showing an expert."""
    unit = factories.unit_user(world, "巴州统计局", "refused.unit")
    db.session.commit()
    login(unit)
    for url in ["/engagements", "/firms", "/experts", f"/experts/{world.expert.id}", "/reviews", "/credit",
                "/inspections", "/screening/queue", "/users", "/audit", "/draws", "/plans", "/complaints",
                "/market", "/workspace", "/results/application", "/results/overdue"]:
        response = client.get(url)
        assert response.status_code == 403, url
        assert world.expert.name not in response.get_data(as_text=True), url


def test_the_overdue_page_lists_what_awaits_the_bureaus_verification_in_its_scope(loop, client, login):
    """rules.md 结果应用 "Who is told in rectification": a row handed in waits on the bureau, which finds it on the
    逾期未整改 page (待核验), its own bureau only."""
    from evalhub.core import files

    f = loop.findings[0]
    S.submit_plan(f, loop.unit, "由财务科负责。")
    S.submit_evidence(f, loop.unit, "已完成", [files.Upload("凭证.txt", "凭证".encode())])
    db.session.commit()
    login(loop.bz_staff)
    page = client.get("/results/overdue").get_data(as_text=True)
    table = page.split('data-testid="awaiting-verification"')[1].split("</table>")[0]
    assert loop.e.reference in table and f.text[:20] in table
    login(loop.kz_staff)
    page = client.get("/results/overdue").get_data(as_text=True)
    assert loop.e.reference not in page.split('data-testid="awaiting-verification"')[1].split("</table>")[0]


def test_the_units_home_names_its_overdue_findings_and_each_engagements_nearest_deadline(loop, client, login):
    """An evaluated unit signing in sees first what it is late on (its findings past their deadline, with the
    escalations already taken) and, per engagement, the nearest deadline it still owes; a sibling unit sees none of
    it. (The overdue rule counts on the bureaus' calendars; a unit sees no bureau as such, so the calendars are those
    of its findings' bureaus — before, a unit's list was always empty.)"""
    from datetime import timedelta

    from evalhub.core.timeutil import beijing_today

    late, later = loop.findings
    late.deadline = beijing_today() - timedelta(days=20)
    later.deadline = beijing_today() + timedelta(days=30)
    S.escalate_overdue()
    db.session.commit()
    login(loop.unit)
    home = client.get("/results/unit").get_data(as_text=True)
    alert = home.split('data-testid="unit-overdue-findings"')[1].split("</div>")[0]
    assert "逾期未整改的问题 1 项" in alert and late.text[:20] in alert and later.text[:20] not in alert
    assert "催办提醒" in alert and f"#f{late.id}" in alert
    cell = home.split(f'data-testid="next-deadline-{loop.e.reference}"')[1].split("</td>")[0]
    assert late.deadline.isoformat() in cell
    login(loop.sibling)
    home = client.get("/results/unit").get_data(as_text=True)
    assert 'data-testid="unit-overdue-findings"' not in home and late.text[:20] not in home
