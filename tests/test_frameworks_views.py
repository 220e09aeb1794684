"""Framework agreement pages (框架协议, 顺序轮候): who may list and register them, what the form offers and
refuses, and that a registered agreement serves its firms in order through the procure form."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from evalhub.core.models import AuditEvent
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import FrameworkAgreement, FrameworkMember, Procurement, ProcurementStatus
from evalhub.registry.models import FirmStatus
from tests import factories
from tests.test_procurement_views import _procure_form, count, text


def _agreement(world, bureau_key: str, name: str, firms, **kw) -> FrameworkAgreement:
    today = beijing_today()
    values = dict(name=name, valid_from=today - timedelta(days=30), valid_until=today + timedelta(days=365),
                  firm_ids=[f.id for f in firms])
    values.update(kw)
    return P.create_framework_agreement(getattr(world, bureau_key), getattr(world, f"{bureau_key}_admin"), **values)


def _form(**overrides) -> dict:
    today = beijing_today()
    data = {"name": "2025 年绩效评价服务框架协议", "valid_from": (today - timedelta(days=1)).isoformat(),
            "valid_until": (today + timedelta(days=365)).isoformat()}
    data.update(overrides)
    return data


def _nothing_written() -> None:
    db.session.expire_all()
    assert count(FrameworkAgreement) == 0 and count(FrameworkMember) == 0
    assert db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "framework.created")).scalar_one() == 0


# --- who may open what -----------------------------------------------------------------------------

def test_anonymous_users_are_sent_to_login(client, world):
    for url in ["/frameworks", "/frameworks/new"]:
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    response = client.post("/frameworks/new", data=_form())
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    _nothing_written()


@pytest.mark.parametrize("username", ["firm_user", "other_firm_user", "expert_user"])
def test_firm_users_and_experts_are_refused(world, login, username):
    client = login(getattr(world, username))
    assert client.get("/frameworks").status_code == 403
    assert client.get("/frameworks/new").status_code == 403
    assert client.post("/frameworks/new", data=_form(**{f"position_{world.firm.id}": "1"})).status_code == 403
    _nothing_written()


def test_bureau_users_list_and_register_the_system_admin_only_lists(world, login):
    for username in ["bz_admin", "bz_staff", "krl_admin", "kz_admin", "region_staff"]:
        client = login(getattr(world, username))
        body = text(client.get("/frameworks"))
        assert 'data-testid="new-framework"' in body, username
        assert client.get("/frameworks/new").status_code == 200, username
    admin = login(world.sysadmin)
    assert 'data-testid="new-framework"' not in text(admin.get("/frameworks"))
    assert admin.get("/frameworks/new").status_code == 403  # no bureau of their own to register for


def test_the_nav_and_the_procure_page_link_to_the_agreements(world, login):
    engagement = factories.engagement(world)
    db.session.commit()
    client = login(world.bz_staff)
    assert 'data-testid="nav-frameworks"' in text(client.get("/"))
    body = text(client.get(f"/engagements/{engagement.id}/procure"))
    assert 'href="/frameworks" data-testid="frameworks-link"' in body
    assert 'href="/frameworks/new" data-testid="new-framework-link"' in body
    assert 'data-testid="nav-frameworks"' not in text(login(world.firm_user).get("/workspace"))


def test_the_list_shows_own_upper_and_lower_bureaus_agreements_never_a_siblings(world, login):
    region_firms = [factories.firm(world.region, name=f"自治区入围{i}") for i in (1, 2)]
    bz_firms = [factories.firm(world.bz, name=f"巴州入围{i}") for i in (1, 2, 3)]
    kz_firms = [world.other_firm, factories.firm(world.kz, name="克州入围2")]
    region = _agreement(world, "region", "自治区框架协议", region_firms)
    bz = _agreement(world, "bz", "巴州框架协议", bz_firms)
    kz = _agreement(world, "kz", "克州框架协议", kz_firms)
    old = _agreement(world, "bz", "巴州旧框架协议", bz_firms[:2], valid_from=date(2020, 1, 1),
                     valid_until=date(2020, 12, 31))
    bz.next_position = 2
    db.session.commit()

    body = text(login(world.bz_staff).get("/frameworks"))
    for a in (region, bz, old):
        assert f'data-testid="framework-{a.id}"' in body
    assert f'data-testid="framework-{kz.id}"' not in body and "克州框架协议" not in body
    assert "已过期" in body and "有效" in body
    # members in order, with whose turn it is
    card = body.split(f' id="framework-{bz.id}"')[1].split('class="card mb-3"')[0]
    assert card.index("巴州入围1") < card.index("巴州入围2") < card.index("巴州入围3")
    assert card.count('data-testid="next-member"') == 1
    row = card.split("巴州入围2")[1].split("</tr>")[0]
    assert 'data-testid="next-member"' in row

    body = text(login(world.kz_admin).get("/frameworks"))
    assert f'data-testid="framework-{kz.id}"' in body and f'data-testid="framework-{region.id}"' in body
    assert f'data-testid="framework-{bz.id}"' not in body and "巴州入围1" not in body
    body = text(login(world.krl_admin).get("/frameworks"))  # a county uses its prefecture's and the region's
    assert all(f'data-testid="framework-{a.id}"' in body for a in (region, bz))
    assert f'data-testid="framework-{kz.id}"' not in body
    body = text(login(world.region_admin).get("/frameworks"))  # the lower bureaus' too, to read (DESIGN "Permissions")
    assert f'data-testid="framework-{region.id}"' in body and f'data-testid="framework-{bz.id}"' in body
    assert body.count('data-testid="framework-below"') == 3  # 巴州's two and 克州's: not usable for the region's own


# --- the form --------------------------------------------------------------------------------------

def test_the_form_offers_admitted_firms_of_usable_libraries_only(world, login):
    region_firm = factories.firm(world.region, name="自治区库机构")
    suspended = factories.firm(world.bz, FirmStatus.SUSPENDED, name="暂停的巴州机构")
    pending = factories.firm(world.bz, FirmStatus.PENDING, name="申请中的巴州机构")
    county = factories.firm(world.krl, name="库尔勒市库机构")  # visible to 巴州, but not its library
    db.session.commit()
    body = text(login(world.bz_staff).get("/frameworks/new"))
    for firm in (world.firm, region_firm):
        assert f'name="position_{firm.id}"' in body and firm.name in body
    for firm in (suspended, pending, county, world.other_firm):
        assert f'name="position_{firm.id}"' not in body, firm.name
    body = text(login(world.kz_admin).get("/frameworks/new"))
    assert f'name="position_{world.other_firm.id}"' in body and f'name="position_{region_firm.id}"' in body
    assert f'name="position_{world.firm.id}"' not in body and world.firm.name not in body


def test_kz_cannot_shortlist_bz_firms(world, login):
    second = factories.firm(world.bz, name="巴州第二家")
    db.session.commit()
    response = login(world.kz_admin).post("/frameworks/new", data=_form(
        **{f"position_{world.firm.id}": "1", f"position_{second.id}": "2"}))
    assert response.status_code == 422 and "框架协议至少需要 2 家入围机构" in text(response)
    _nothing_written()


@pytest.mark.parametrize("overrides, messages", [
    ({"name": "", "positions": ["1", "2"]}, ["请填写框架协议名称"]),
    ({"valid_until": "", "positions": ["1", "2"]}, ["请填写协议有效期"]),
    ({"valid_from": "2026-01-01", "valid_until": "2025-01-01", "positions": ["1", "2"]}, ["有效期截止日不能早于开始日"]),
    ({"valid_from": "2025-13-45", "positions": ["1", "2"]}, ["不是有效的日期值"]),
    ({"positions": ["1", ""]}, ["框架协议至少需要 2 家入围机构"]),
    ({"positions": ["", ""]}, ["框架协议至少需要 2 家入围机构"]),
    ({"positions": ["1", "1"]}, ["轮候顺序 1 重复"]),
    ({"positions": ["1", "abc"]}, ["轮候顺序须为正整数"]),
    ({"positions": ["0", "2"]}, ["轮候顺序须为正整数"]),
    ({"name": "", "positions": ["2", "2"]}, ["请填写框架协议名称", "轮候顺序 2 重复"]),
])
def test_bad_input_is_refused_with_messages_and_nothing_is_written(world, login, overrides, messages):
    second = factories.firm(world.bz, name="巴州第二家")
    db.session.commit()
    positions = overrides.pop("positions")
    data = _form(**overrides, **{f"position_{world.firm.id}": positions[0], f"position_{second.id}": positions[1]})
    response = login(world.bz_staff).post("/frameworks/new", data=data)
    body = text(response)
    assert response.status_code == 422
    for message in messages:
        assert message in body, message
    assert f'name="position_{second.id}" value="{positions[1]}"' in body  # what was entered is kept
    _nothing_written()


def test_a_registered_agreement_serves_its_firms_in_order_in_the_procure_form(world, login):
    first = factories.firm(world.bz, name="轮候第一")
    second = factories.firm(world.region, name="轮候第二")
    engagement = factories.engagement(world)
    db.session.commit()
    client = login(world.bz_staff)
    response = client.post("/frameworks/new", data=_form(
        name="巴州 2025 框架协议", **{f"position_{second.id}": "5", f"position_{first.id}": "2",
                                      f"position_{world.firm.id}": ""}))
    assert response.status_code == 302 and "/frameworks#framework-" in response.headers["Location"]
    agreement = db.session.execute(sa.select(FrameworkAgreement)).scalar_one()
    assert agreement.bureau_id == world.bz.id and agreement.name == "巴州 2025 框架协议"
    assert [(m.position, m.firm_id) for m in agreement.members] == [(1, first.id), (2, second.id)]
    body = text(client.get("/frameworks"))
    assert "已登记框架协议“巴州 2025 框架协议”" in body
    assert 'data-testid="next-member"' in body.split("轮候第一")[1].split("</tr>")[0]

    body = text(client.get(f"/engagements/{engagement.id}/procure"))
    assert f'<option value="{agreement.id}">巴州 2025 框架协议（巴州' in body
    response = client.post(f"/engagements/{engagement.id}/procure", data=_procure_form(
        method="framework_rotation", framework_agreement_id=str(agreement.id), ceiling_price_wan="10",
        price_weight="", bid_deadline=""))
    assert response.status_code == 302, text(response)[:2000]
    p = db.session.execute(sa.select(Procurement)).scalar_one()
    assert p.status == ProcurementStatus.AWARDED and p.award.firm_id == first.id
    assert p.framework_agreement_id == agreement.id
    body = text(client.get("/frameworks"))  # the turn has passed to the second firm
    assert 'data-testid="next-member"' in body.split("轮候第二")[1].split("</tr>")[0]
    # another bureau cannot use it
    kz_engagement = factories.engagement(world, bureau_key="kz", unit="克州农业农村局")
    db.session.commit()
    kz = login(world.kz_admin)
    assert f'<option value="{agreement.id}"' not in text(kz.get(f"/engagements/{kz_engagement.id}/procure"))
    response = kz.post(f"/engagements/{kz_engagement.id}/procure", data=_procure_form(
        method="framework_rotation", framework_agreement_id=str(agreement.id), ceiling_price_wan="10",
        price_weight="", bid_deadline=""))
    assert response.status_code == 422 and "请选择本级或上级财政局的框架协议" in text(response)
    assert count(Procurement) == 1
