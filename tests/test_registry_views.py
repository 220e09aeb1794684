"""Registry pages: who may open and post what (organisation scope included), bad input answered with a
4xx, the Chinese message and nothing written, the admission flow, Excel import and export."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from evalhub.core.models import AuditEvent, Job, StoredFile, User
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.registry import services
from evalhub.registry.imports import EXPERT_COLUMNS, FIRM_COLUMNS
from evalhub.registry.models import (
    Expert,
    ExpertStatus,
    ExpertTie,
    Firm,
    FirmDocument,
    FirmRelation,
    FirmStaff,
    FirmStatus,
    FirmStatusChange,
    StaffCertificate,
)
from tests import factories
from tests.test_admission import admission_papers

ROLES = ["sysadmin", "region_admin", "region_staff", "bz_admin", "bz_staff", "kz_admin", "kz_staff",
         "krl_admin", "krl_staff", "lt_staff", "ats_staff", "firm_user", "other_firm_user", "expert_user"]
BUREAU_USERS = {r for r in ROLES if r.split("_")[0] in ("region", "bz", "kz", "krl", "lt", "ats")}
# Who sees 巴州's admitted firm / active expert: the system, the region, 巴州 and its counties.
SEES_BZ_LIBRARY = {"sysadmin", "region_admin", "region_staff", "bz_admin", "bz_staff", "krl_admin", "krl_staff",
                   "lt_staff"}
BZ_OWN = {"sysadmin", "bz_admin", "bz_staff"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
TXT = "本机构质量控制制度：三级复核。".encode()


@pytest.fixture(autouse=True)
def immediate_jobs(app):
    """Jobs run in-process here. The job queue is module state that any create_app() replaces (test_migrations
    builds a second app without JOBS_IMMEDIATE), so point it back at the test app before each test."""
    from evalhub.core import jobs

    app.config["JOBS_IMMEDIATE"] = True
    jobs.configure(app)
    yield


def count(model) -> int:
    db.session.expire_all()
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def text(response) -> str:
    return response.get_data(as_text=True)


def firm_form(**overrides) -> dict:
    data = {"name": "新录入评价咨询有限公司", "uscc": factories.uscc(), "legal_form": "limited_company",
            "kind": "consultancy", "address": "新疆库尔勒市石化大道 8 号", "legal_representative": "赵六",
            "contact_name": "钱七", "contact_phone": "0996-2111111", "fields": ["finance", "education"],
            "declares_no_major_violation": "y"}
    data.update(overrides)
    return data


def expert_form(**overrides) -> dict:
    data = {"name": "孙专家", "id_number": factories.id_number(birth="19750305"), "employer": "巴州人民医院",
            "title": "senior", "degree": "master", "years_in_field": "20", "birth_year": "1975",
            "fields": ["health"], "phone": "13800000000"}
    data.update(overrides)
    return data


def xlsx(columns: dict[str, str], rows: list[dict[str, str]]) -> bytes:
    frame = pd.DataFrame([{header: row.get(key, "") for header, key in columns.items()} for row in rows],
                         columns=list(columns))
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False, engine="openpyxl")
    return buffer.getvalue()


def read_xlsx(data: bytes) -> pd.DataFrame:
    return pd.read_excel(io.BytesIO(data), dtype=str, engine="openpyxl").fillna("")


def pending_firm(world, bureau=None, **kw) -> Firm:
    firm = factories.firm(bureau or world.bz, FirmStatus.PENDING, **kw)
    db.session.commit()
    return firm


def as_role(world, login, role):
    return login(getattr(world, role))


# --- anonymous -------------------------------------------------------------------------------------

def test_anonymous_users_are_sent_to_login(client, world):
    f, e = world.firm.id, world.expert.id
    gets = ["/firms", "/firms/new", f"/firms/{f}", f"/firms/{f}/edit", f"/firms/{f}/staff/new",
            f"/firms/{f}/relations/new", f"/firms/{f}/documents/1", "/experts", "/experts/new", f"/experts/{e}",
            f"/experts/{e}/edit", f"/experts/{e}/ties/new", "/imports/firms", "/imports/firms/template"]
    posts = [f"/firms/{f}/status", f"/firms/{f}/documents", f"/firms/{f}/staff/1/deactivate",
             f"/firms/{f}/relations/1/end", f"/experts/{e}/status", f"/experts/{e}/availability", "/imports/experts"]
    for path in gets:
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    for path in posts:
        response = client.post(path, data={"action": "suspend", "reason": "x"})
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    assert client.get("/register/firm").status_code == 200


# --- who may open which page -----------------------------------------------------------------------

def _document(world) -> FirmDocument:
    document = services.attach_firm_document(world.firm, "licence", "营业执照.png", PNG, world.firm_user)
    db.session.commit()
    return document


PAGES = [
    ("/firms", BUREAU_USERS | {"sysadmin"}),
    ("/firms/new", BUREAU_USERS),  # into the user's own library: the system admin has none
    ("/firms/{firm}", SEES_BZ_LIBRARY | {"firm_user"}),
    ("/firms/{firm}/edit", BZ_OWN | {"firm_user"}),
    ("/firms/{firm}/staff/new", BZ_OWN | {"firm_user"}),
    ("/firms/{firm}/relations/new", BZ_OWN | {"firm_user"}),
    ("/firms/{firm}/documents/{doc}", SEES_BZ_LIBRARY | {"firm_user"}),
    ("/experts", BUREAU_USERS | {"sysadmin"}),
    ("/experts/new", BUREAU_USERS),
    ("/experts/{expert}", SEES_BZ_LIBRARY | {"expert_user"}),
    ("/experts/{expert}/edit", BZ_OWN),
    ("/experts/{expert}/ties/new", BZ_OWN | {"expert_user"}),
    ("/imports/firms", BUREAU_USERS),
    ("/imports/experts", BUREAU_USERS),
    ("/imports/firms/template", BUREAU_USERS),
    ("/imports/experts/template", BUREAU_USERS),
]


@pytest.mark.parametrize("pattern, allowed", PAGES, ids=[p for p, _ in PAGES])
def test_page_access_by_role(world, login, pattern, allowed):
    document = _document(world) if "{doc}" in pattern else None
    path = pattern.format(firm=world.firm.id, expert=world.expert.id, doc=document.id if document else "")
    for role in ROLES:
        response = as_role(world, login, role).get(path)
        expected = 200 if role in allowed else 403
        assert response.status_code == expected, (role, path, response.status_code)


def test_missing_records_and_unknown_import_kinds_are_404(world, login):
    client = login(world.bz_admin)
    for path in ["/firms/999999", "/experts/999999", "/imports/banks", "/imports/banks/template",
                 f"/firms/{world.firm.id}/documents/999999"]:
        assert client.get(path).status_code == 404, path
    other = services.attach_firm_document(world.other_firm, "other", "制度.txt", TXT, world.other_firm_user)
    db.session.commit()
    # A document is reached only through its own firm.
    assert client.get(f"/firms/{world.firm.id}/documents/{other.id}").status_code == 404


def test_registration_page_sends_signed_in_users_to_the_dashboard(world, login):
    response = login(world.bz_staff).get("/register/firm")
    assert response.status_code == 302 and response.headers["Location"] == "/"


# --- firm list: scope, filters, export -------------------------------------------------------------

def test_firm_list_rows_follow_organisation_scope(world, login):
    krl_firm = factories.firm(world.krl, FirmStatus.ADMITTED, name="库尔勒本地评价有限公司")
    lt_firm = factories.firm(world.lt, FirmStatus.ADMITTED, name="轮台本地评价有限公司")
    bz_pending = factories.firm(world.bz, FirmStatus.PENDING, name="巴州待审评价有限公司")
    db.session.commit()
    ids = {"bz": world.firm.id, "kz": world.other_firm.id, "krl": krl_firm.id, "lt": lt_firm.id, "pending": bz_pending.id}
    expectations = {
        "region_staff": {"bz", "kz", "krl", "lt", "pending"},
        "bz_staff": {"bz", "krl", "lt", "pending"},
        "krl_staff": {"bz", "krl"},  # 巴州's admitted library, not its applications, not 轮台's firms
        "lt_staff": {"bz", "lt"},
        "kz_staff": {"kz"},
        "sysadmin": {"bz", "kz", "krl", "lt", "pending"},
    }
    for role, visible in expectations.items():
        body = text(as_role(world, login, role).get("/firms"))
        for key, firm_id in ids.items():
            assert (f'data-testid="firm-row-{firm_id}"' in body) == (key in visible), (role, key)
    body = text(login(world.bz_staff).get("/firms"))
    assert "已入库" in body and "待审核" in body and "新增机构" in body and "批量导入" in body


def test_firm_list_filters(world, login):
    law = factories.firm(world.bz, FirmStatus.SUSPENDED, name="巴州法律评价律师事务所", kind="律师事务所",
                         legal_form="普通合伙企业", fields=["法律"])
    db.session.commit()
    client = login(world.bz_admin)

    def rows(query):
        body = text(client.get("/firms?" + query))
        return {fid for fid in (world.firm.id, law.id) if f'data-testid="firm-row-{fid}"' in body}

    assert rows("") == {world.firm.id, law.id}
    assert rows("q=律师") == {law.id}
    assert rows("q=" + world.firm.uscc[-8:].lower()) == {world.firm.id}
    assert rows("status=suspended") == {law.id}
    assert rows("kind=law_firm") == {law.id}
    assert rows("field=law") == {law.id}
    assert rows("field=finance") == {world.firm.id}
    assert rows(f"bureau={world.bz.id}") == {world.firm.id, law.id}
    assert rows(f"bureau={world.krl.id}") == set()
    assert rows("status=nonsense") == {world.firm.id, law.id}  # unknown filter values are ignored


def test_firm_list_pagination(app, world, login):
    for n in range(app.config["PAGE_SIZE"] + 3):
        factories.firm(world.bz, FirmStatus.ADMITTED, name=f"分页测试评价有限公司{n:02d}")
    db.session.commit()
    client = login(world.bz_admin)
    first, second = text(client.get("/firms")), text(client.get("/firms?page=2"))
    assert first.count('data-testid="firm-row-') == app.config["PAGE_SIZE"]
    assert second.count('data-testid="firm-row-') == 4 and "page=2" in first


def test_firm_list_exports_the_filtered_scoped_list(world, login):
    factories.firm(world.bz, FirmStatus.PENDING, name="巴州导出待审有限公司")
    db.session.commit()
    response = login(world.bz_staff).get("/firms?export=xlsx&status=admitted")
    assert response.status_code == 200 and response.data[:2] == b"PK"
    assert "spreadsheetml" in response.headers["Content-Type"]
    frame = read_xlsx(response.data)
    assert {"机构名称", "统一社会信用代码", "机构类型", "所属机构库", "状态", "业务领域"} <= set(frame.columns)
    assert list(frame["机构名称"]) == ["巴州示范评价咨询有限公司"]
    assert list(frame["状态"]) == ["已入库"] and list(frame["业务领域"]) == ["财政经济"]
    # Another prefecture's export does not contain 巴州's firm.
    frame = read_xlsx(login(world.kz_staff).get("/firms?export=xlsx").data)
    assert list(frame["机构名称"]) == ["克州另一家评价有限公司"]


# --- firm detail and the admission flow -------------------------------------------------------------

def test_firm_page_shows_actions_only_to_those_who_may_take_them(world, login):
    firm = pending_firm(world, name="巴州待审评价咨询有限公司")
    body = text(login(world.bz_staff).get(f"/firms/{firm.id}"))
    assert 'data-testid="status-action-admit"' in body and 'data-testid="status-action-reject"' in body
    assert ">准予入库</button>" in body and ">不予入库</button>" in body
    body = text(login(world.region_admin).get(f"/firms/{firm.id}"))
    assert "巴州待审评价咨询有限公司" in body and "status-action-" not in body  # supervises, does not decide
    body = text(login(world.bz_admin).get(f"/firms/{world.firm.id}"))
    assert all(f'data-testid="status-action-{a}"' in body for a in ("suspend", "remove", "blacklist"))
    body = text(login(world.bz_staff).get(f"/firms/{world.firm.id}"))
    assert "status-action-" not in body  # suspend, remove, blacklist are for the bureau's admins
    body = text(login(world.firm_user).get(f"/firms/{world.firm.id}"))
    assert "巴州示范评价咨询有限公司" in body and "status-action-" not in body
    assert login(world.other_firm_user).get(f"/firms/{world.firm.id}").status_code == 403
    assert login(world.krl_staff).get(f"/firms/{firm.id}").status_code == 403  # upper bureau's application


def test_admit_flow_writes_history_and_audit(world, login):
    firm = pending_firm(world, name="巴州待审评价咨询有限公司")
    for kind, name, data in admission_papers():
        services.attach_firm_document(firm, kind, name, data, world.bz_staff)
    db.session.commit()
    changes, events = count(FirmStatusChange), factories.audit_events()
    client = login(world.bz_admin)
    response = client.post(f"/firms/{firm.id}/status", data={"action": "admit", "reason": "申请材料齐全，符合入库条件"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/firms/{firm.id}")
    db.session.expire_all()
    firm = db.session.get(Firm, firm.id)
    assert firm.status == FirmStatus.ADMITTED and firm.admitted_at is not None
    assert count(FirmStatusChange) == changes + 1
    change = firm.status_history[-1]
    assert (change.from_status, change.to_status, change.actor_id) == (FirmStatus.PENDING, FirmStatus.ADMITTED, world.bz_admin.id)
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "firm.admit")).scalar_one()
    assert event.object_id == firm.id and event.actor_id == world.bz_admin.id and factories.audit_events() > events
    body = text(client.get(f"/firms/{firm.id}"))
    assert "待审核 → 已入库" in body and "申请材料齐全，符合入库条件" in body and "status-action-suspend" in body
    row = text(client.get("/firms"))
    assert f'data-testid="firm-row-{firm.id}"' in row and "已入库" in row


def test_reject_without_reason_is_refused_with_nothing_written(world, login):
    firm = pending_firm(world)
    changes, events = count(FirmStatusChange), factories.audit_events()
    response = login(world.bz_staff).post(f"/firms/{firm.id}/status", data={"action": "reject", "reason": "  "})
    assert response.status_code == 422
    assert "“不予入库”必须填写原因" in text(response)
    assert count(FirmStatusChange) == changes and factories.audit_events() == events
    assert db.session.get(Firm, firm.id).status == FirmStatus.PENDING


def test_suspension_with_an_end_date_and_bad_dates(world, login):
    client = login(world.bz_admin)
    yesterday = (beijing_today() - timedelta(days=1)).isoformat()
    changes = count(FirmStatusChange)
    response = client.post(f"/firms/{world.firm.id}/status",
                           data={"action": "suspend", "reason": "检查发现问题", "effective_until": yesterday})
    assert response.status_code == 422 and "截止日期不能早于生效日期" in text(response)
    response = client.post(f"/firms/{world.firm.id}/status",
                           data={"action": "suspend", "reason": "检查发现问题", "effective_until": "明年"})
    assert response.status_code == 422 and "不是有效的日期值" in text(response)
    assert count(FirmStatusChange) == changes
    until = (beijing_today() + timedelta(days=90)).isoformat()
    response = client.post(f"/firms/{world.firm.id}/status",
                           data={"action": "suspend", "reason": "检查发现问题", "effective_until": until})
    assert response.status_code == 302
    body = text(client.get(f"/firms/{world.firm.id}"))
    assert "检查发现问题" in body and until in body and "status-action-reinstate" in body


@pytest.mark.parametrize("role, status", [
    ("bz_admin", 302), ("sysadmin", 302),
    ("bz_staff", 403),  # suspension is for the bureau's admins
    ("region_admin", 403), ("krl_admin", 403),  # see the firm, may not change another bureau's library
    ("kz_admin", 403), ("firm_user", 403), ("other_firm_user", 403), ("expert_user", 403),
])
def test_who_may_change_a_firms_status(world, login, role, status):
    changes, events = count(FirmStatusChange), factories.audit_events()
    response = as_role(world, login, role).post(f"/firms/{world.firm.id}/status",
                                                data={"action": "suspend", "reason": "约谈整改"})
    assert response.status_code == status
    if status == 403:
        assert count(FirmStatusChange) == changes and factories.audit_events() == events
        assert db.session.get(Firm, world.firm.id).status == FirmStatus.ADMITTED


def test_status_conflicts_and_unknown_actions(world, login):
    client = login(world.bz_admin)
    response = client.post(f"/firms/{world.firm.id}/status", data={"action": "admit"})
    assert response.status_code == 409 and "不能执行“准予入库”" in text(response)
    response = client.post(f"/firms/{world.firm.id}/status", data={"action": "promote", "reason": "x"})
    assert response.status_code == 422 and "未知的操作" in text(response)
    response = client.post(f"/firms/{world.firm.id}/status", data={"reason": "x"})
    assert response.status_code == 422 and "缺少操作类型" in text(response)


# --- firm entry by staff, self-registration, edit --------------------------------------------------

def test_staff_enter_a_firm_into_their_own_library(world, login):
    response = login(world.krl_staff).post("/firms/new", data=firm_form(name="库尔勒新录入有限公司"))
    assert response.status_code == 302
    firm = db.session.execute(sa.select(Firm).where(Firm.name == "库尔勒新录入有限公司")).scalar_one()
    assert firm.bureau_id == world.krl.id and firm.status == FirmStatus.PENDING
    assert firm.status_history[0].reason == "财政局录入" and firm.created_by_id == world.krl_staff.id
    assert [f.value for f in firm.fields] == ["finance", "education"]


@pytest.mark.parametrize("role", ["sysadmin", "firm_user", "expert_user"])
def test_only_bureau_users_enter_firms(world, login, role):
    before = count(Firm)
    assert as_role(world, login, role).post("/firms/new", data=firm_form()).status_code == 403
    assert count(Firm) == before


def test_bad_firm_input_is_422_with_chinese_messages_and_nothing_written(world, login):
    before, events = count(Firm), factories.audit_events()
    good = factories.uscc()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    response = login(world.bz_staff).post("/firms/new", data=firm_form(uscc=bad, name="", fields=[]))
    body = text(response)
    assert response.status_code == 422
    assert "统一社会信用代码校验位错误" in body and "请填写机构名称" in body and "请至少选择一个业务领域" in body
    response = login(world.bz_staff).post("/firms/new", data=firm_form(uscc="91652800MA0001"))
    assert response.status_code == 422 and "统一社会信用代码应为 18 位" in text(response)
    response = login(world.bz_staff).post("/firms/new", data=firm_form(uscc=world.firm.uscc))
    assert response.status_code == 422 and "该统一社会信用代码已登记" in text(response)
    response = login(world.bz_staff).post("/firms/new", data=firm_form(founded_on="2020-13-45"))
    assert response.status_code == 422 and "不是有效的日期值" in text(response)
    assert count(Firm) == before and factories.audit_events() == events


def test_firm_self_registration_logs_in_and_shows_the_application(client, world):
    users, firms = count(User), count(Firm)
    data = firm_form(name="自行申请评价咨询有限公司", bureau_id=str(world.lt.id), username="newfirm",
                     display_name="新机构管理员", password="long-enough-1", password_confirm="long-enough-1")
    response = client.post("/register/firm", data=data)
    assert response.status_code == 302
    firm = db.session.execute(sa.select(Firm).where(Firm.name == "自行申请评价咨询有限公司")).scalar_one()
    assert response.headers["Location"].endswith(f"/firms/{firm.id}")
    assert firm.bureau_id == world.lt.id and firm.status == FirmStatus.PENDING
    user = db.session.execute(sa.select(User).where(User.username == "newfirm")).scalar_one()
    assert user.firm_id == firm.id and firm.created_by_id == user.id
    assert count(User) == users + 1 and count(Firm) == firms + 1
    page = client.get(response.headers["Location"])  # signed in as the new firm user
    body = text(page)
    assert page.status_code == 200 and "申请已提交，等待财政局审核" in body and "status-action-" not in body
    assert client.get("/firms").status_code == 403
    # …and the bureau sees the application.
    client.post("/logout")
    client.post("/login", data={"username": "lt.admin", "password": factories.PASSWORD})
    assert "status-action-admit" in text(client.get(f"/firms/{firm.id}"))


def test_bad_registration_is_422_and_writes_nothing(client, world):
    users, firms, events = count(User), count(Firm), factories.audit_events()
    data = firm_form(uscc="123", bureau_id=str(world.lt.id), username="firm1", password="short",
                     password_confirm="short", declares_no_major_violation="")
    response = client.post("/register/firm", data=data)
    body = text(response)
    assert response.status_code == 422
    for message in ("统一社会信用代码应为 18 位", "该用户名已被使用", "密码至少需要 8 位", "须承诺近三年"):
        assert message in body, message
    response = client.post("/register/firm", data=firm_form(bureau_id="", username="x1", password="long-enough-1",
                                                            password_confirm="different-1"))
    body = text(response)
    assert response.status_code == 422 and "请选择要申请进入的财政局机构库" in body and "两次输入的密码不一致" in body
    response = client.post("/register/firm", data=firm_form(bureau_id="999999", username="x2",
                                                            password="long-enough-1", password_confirm="long-enough-1"))
    assert response.status_code == 422 and "所选财政局不存在" in text(response)
    assert (count(User), count(Firm), factories.audit_events()) == (users, firms, events)
    assert client.get("/firms").status_code == 302  # still anonymous


@pytest.mark.parametrize("role, status", [
    ("bz_staff", 302), ("firm_user", 302), ("sysadmin", 302),
    ("region_admin", 403), ("krl_admin", 403), ("kz_staff", 403), ("other_firm_user", 403), ("expert_user", 403),
])
def test_who_may_edit_a_firm(world, login, role, status):
    client = as_role(world, login, role)
    data = firm_form(name="巴州示范评价咨询有限公司（更名）", uscc=world.firm.uscc)
    assert client.post(f"/firms/{world.firm.id}/edit", data=data).status_code == status
    db.session.expire_all()
    renamed = db.session.get(Firm, world.firm.id).name == "巴州示范评价咨询有限公司（更名）"
    assert renamed == (status == 302)


def test_firm_edit_form_is_prefilled_and_refuses_bad_input(world, login):
    client = login(world.bz_staff)
    body = text(client.get(f"/firms/{world.firm.id}/edit"))
    assert world.firm.uscc in body and "巴州示范评价咨询有限公司" in body
    assert re.search(r'<input checked[^>]*value="finance"', body) and not re.search(r'<input checked[^>]*value="law"', body)
    response = client.post(f"/firms/{world.firm.id}/edit", data=firm_form(uscc=world.other_firm.uscc, contact_phone=""))
    assert response.status_code == 422
    assert "该统一社会信用代码已登记" in text(response) and "请填写联系电话" in text(response)
    db.session.expire_all()
    assert db.session.get(Firm, world.firm.id).uscc != world.other_firm.uscc
    # Out of the library, the firm can no longer edit itself.
    world.firm.status = FirmStatus.REMOVED
    db.session.commit()
    assert login(world.firm_user).get(f"/firms/{world.firm.id}/edit").status_code == 403


# --- documents -------------------------------------------------------------------------------------

def test_document_upload_and_download(world, login):
    client = login(world.firm_user)
    response = client.post(f"/firms/{world.firm.id}/documents",
                           data={"kind": "quality_control", "file": (io.BytesIO(TXT), "质量控制制度.txt")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    document = db.session.execute(sa.select(FirmDocument)).scalar_one()
    assert document.kind.value == "quality_control"
    body = text(client.get(f"/firms/{world.firm.id}"))
    assert "质量控制制度.txt" in body and f"/documents/{document.id}" in body
    for role in ("bz_staff", "region_staff", "krl_staff", "firm_user"):
        download = as_role(world, login, role).get(f"/firms/{world.firm.id}/documents/{document.id}")
        assert download.status_code == 200 and download.data == TXT, role
    for role in ("kz_staff", "other_firm_user", "expert_user"):
        assert as_role(world, login, role).get(f"/firms/{world.firm.id}/documents/{document.id}").status_code == 403


def test_bad_document_uploads_are_refused_with_nothing_written(world, login):
    client = login(world.bz_staff)
    files_before, documents_before = count(StoredFile), count(FirmDocument)
    response = client.post(f"/firms/{world.firm.id}/documents",
                           data={"kind": "licence", "file": (io.BytesIO(TXT), "营业执照.pdf")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "文件类型不符" in text(response)
    response = client.post(f"/firms/{world.firm.id}/documents", data={"kind": "licence"},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "请选择要上传的文件" in text(response)
    response = client.post(f"/firms/{world.firm.id}/documents",
                           data={"kind": "", "file": (io.BytesIO(PNG), "a.png")}, content_type="multipart/form-data")
    assert response.status_code == 422 and "请选择材料类型" in text(response)
    assert (count(StoredFile), count(FirmDocument)) == (files_before, documents_before)
    for role in ("region_admin", "krl_admin", "kz_staff", "other_firm_user", "expert_user"):
        response = as_role(world, login, role).post(
            f"/firms/{world.firm.id}/documents", data={"kind": "licence", "file": (io.BytesIO(PNG), "a.png")},
            content_type="multipart/form-data")
        assert response.status_code == 403, role
    assert (count(StoredFile), count(FirmDocument)) == (files_before, documents_before)


# --- staff roster ----------------------------------------------------------------------------------

def staff_form(**overrides) -> dict:
    data = {"name": "周八", "id_number": factories.id_number(birth="19850612"), "role": "project_lead",
            "years_experience": "12", "title": "高级会计师", "certificates-0-kind": "cpa",
            "certificates-0-number": "650100012345", "certificates-1-kind": "senior_title",
            "certificates-1-number": "", "certificates-2-kind": "", "certificates-2-number": ""}
    data.update(overrides)
    return data


def test_firm_adds_staff_and_only_masked_numbers_are_shown(world, login):
    client = login(world.firm_user)
    data = staff_form()
    response = client.post(f"/firms/{world.firm.id}/staff/new", data=data)
    assert response.status_code == 302
    staff = db.session.execute(sa.select(FirmStaff)).scalar_one()
    assert sorted(c.kind.value for c in staff.certificates) == ["cpa", "senior_title"]
    for role in ("firm_user", "bz_staff", "region_admin"):
        body = text(as_role(world, login, role).get(f"/firms/{world.firm.id}"))
        assert staff.id_number_masked in body and data["id_number"] not in body and "注册会计师" in body


def test_bad_staff_input_is_422_and_writes_nothing(world, login):
    client = login(world.bz_staff)
    staff, certs = count(FirmStaff), count(StaffCertificate)
    response = client.post(f"/firms/{world.firm.id}/staff/new",
                           data=staff_form(id_number="652801198506120000", years_experience="很多", name=""))
    body = text(response)
    assert response.status_code == 422
    assert "身份证号码无效" in body and "从业年限必须是整数" in body and "请填写姓名" in body
    assert (count(FirmStaff), count(StaffCertificate)) == (staff, certs)


@pytest.mark.parametrize("role, status", [
    ("firm_user", 302), ("bz_staff", 302), ("sysadmin", 302),
    ("region_admin", 403), ("krl_staff", 403), ("kz_staff", 403), ("other_firm_user", 403), ("expert_user", 403),
])
def test_who_may_add_staff(world, login, role, status):
    before = count(FirmStaff)
    assert as_role(world, login, role).post(f"/firms/{world.firm.id}/staff/new", data=staff_form()).status_code == status
    assert count(FirmStaff) == before + (1 if status == 302 else 0)


def test_staff_deactivation(world, login):
    member = services.add_staff(world.firm, services.StaffInput(
        name="吴九", id_number=factories.id_number(), role="评价人员", years_experience=3), world.firm_user)
    db.session.commit()
    url = f"/firms/{world.firm.id}/staff/{member.id}/deactivate"
    for role in ("region_admin", "kz_staff", "other_firm_user", "expert_user"):
        assert as_role(world, login, role).post(url, data={"reason": "离职"}).status_code == 403, role
    client = login(world.firm_user)
    response = client.post(url, data={"reason": ""})
    assert response.status_code == 422 and "请填写人员离岗原因" in text(response)
    assert db.session.get(FirmStaff, member.id).active
    assert client.post(url, data={"reason": "已离职"}).status_code == 302
    db.session.expire_all()
    assert not db.session.get(FirmStaff, member.id).active
    assert client.post(url, data={"reason": "再次"}).status_code == 409
    other = services.add_staff(world.other_firm, services.StaffInput(
        name="郑十", id_number=factories.id_number(), role="评价人员", years_experience=3), world.other_firm_user)
    db.session.commit()
    assert client.post(f"/firms/{world.firm.id}/staff/{other.id}/deactivate", data={"reason": "x"}).status_code == 404


# --- recusal relations -----------------------------------------------------------------------------

def test_relations_are_registered_and_ended(world, login):
    client = login(world.firm_user)
    unit = world.units["巴州统计局"]
    page = text(client.get(f"/firms/{world.firm.id}/relations/new"))
    assert "巴州统计局" in page and "轮台县财政局" in page
    response = client.post(f"/firms/{world.firm.id}/relations/new",
                           data={"kind": "accounting_agent", "budget_unit_id": str(unit.id), "start_date": "2023-01-01",
                                 "note": "代理记账合同"})
    assert response.status_code == 302
    relation = db.session.execute(sa.select(FirmRelation)).scalar_one()
    assert relation.budget_unit_id == unit.id and relation.end_date is None
    body = text(client.get(f"/firms/{world.firm.id}"))
    assert "巴州统计局" in body and "代理记账" in body and "结束关系" in body
    url = f"/firms/{world.firm.id}/relations/{relation.id}/end"
    today = beijing_today().isoformat()
    response = client.post(url, data={"end_date": "2024-06-30", "reason": "合同到期"})
    assert response.status_code == 422 and "结束日期不能早于今天" in text(response)  # never backdated
    response = client.post(url, data={"end_date": today})
    assert response.status_code == 422 and "请填写结束原因" in text(response)
    response = client.post(url, data={"end_date": ""})
    assert response.status_code == 422 and "请填写结束日期" in text(response)
    assert db.session.get(FirmRelation, relation.id).end_date is None
    for role in ("region_admin", "kz_admin", "other_firm_user", "expert_user"):
        assert as_role(world, login, role).post(url, data={"end_date": today, "reason": "合同到期"}).status_code == 403, role
    assert login(world.bz_staff).post(url, data={"end_date": today, "reason": "代理记账合同已解除"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(FirmRelation, relation.id).end_date.isoformat() == today
    # ended: not again
    assert login(world.bz_staff).post(url, data={"end_date": today, "reason": "再次结束"}).status_code in (409, 422)


def test_a_relation_the_bureau_recorded_is_ended_by_the_bureau_only(world, login):
    unit = world.units["巴州统计局"]
    relation = services.add_relation(world.firm, kind="accounting_agent", bureau_id=None, budget_unit_id=unit.id,
                                     start_date=beijing_today() - timedelta(days=30), end_date=None,
                                     note="检查发现", actor=world.bz_staff)
    db.session.commit()
    url = f"/firms/{world.firm.id}/relations/{relation.id}/end"
    firm = login(world.firm_user)
    assert "由财政局结束" in text(firm.get(f"/firms/{world.firm.id}"))
    today = beijing_today().isoformat()
    assert firm.post(url, data={"end_date": today, "reason": "已解除"}).status_code == 403
    db.session.expire_all()
    assert db.session.get(FirmRelation, relation.id).end_date is None


def test_bad_relations_are_422_and_write_nothing(world, login):
    client = login(world.bz_staff)
    before = count(FirmRelation)
    both = {"kind": "tax_agent", "bureau_id": str(world.lt.id), "budget_unit_id": str(world.units["巴州民政局"].id),
            "start_date": "2023-01-01"}
    response = client.post(f"/firms/{world.firm.id}/relations/new", data=both)
    assert response.status_code == 422 and "请选择一个关联方" in text(response)
    response = client.post(f"/firms/{world.firm.id}/relations/new",
                           data={"kind": "", "bureau_id": str(world.lt.id), "start_date": ""})
    body = text(response)
    assert response.status_code == 422 and "请选择关系类型" in body and "请填写关系开始日期" in body
    for role in ("region_admin", "krl_staff", "kz_staff", "other_firm_user", "expert_user"):
        response = as_role(world, login, role).post(
            f"/firms/{world.firm.id}/relations/new",
            data={"kind": "tax_agent", "bureau_id": str(world.lt.id), "start_date": "2023-01-01"})
        assert response.status_code == 403, role
    assert count(FirmRelation) == before


# --- expert pool -----------------------------------------------------------------------------------

def test_expert_list_scope_eligibility_and_masking(world, login):
    young = factories.expert(world.bz, name="年轻专家", years_in_field=3, title="初级")
    kz_expert = factories.expert(world.kz, name="克州专家")
    removed = factories.expert(world.bz, name="已移出专家")
    removed.status = ExpertStatus.REMOVED
    db.session.commit()
    body = text(login(world.bz_staff).get("/experts"))
    assert f'data-testid="expert-row-{world.expert.id}"' in body and f'data-testid="expert-row-{young.id}"' in body
    assert f'data-testid="expert-row-{kz_expert.id}"' not in body and f'data-testid="expert-row-{removed.id}"' in body
    assert "从业年限 3 年，低于 10 年" in body and "职称为初级，低于中级" in body and "符合" in body
    assert world.expert.id_number_masked in body
    assert "新增专家" in body and "批量导入" in body
    body = text(login(world.krl_staff).get("/experts"))  # the upper pool, less its removed experts
    assert f'data-testid="expert-row-{world.expert.id}"' in body and f'data-testid="expert-row-{removed.id}"' not in body
    assert "新增专家" in body
    body = text(login(world.kz_staff).get("/experts"))
    assert f'data-testid="expert-row-{kz_expert.id}"' in body and f'data-testid="expert-row-{world.expert.id}"' not in body


def test_expert_list_filters_and_export(world, login):
    doctor = factories.expert(world.bz, name="李医生", employer="巴州人民医院", fields=["医疗卫生"], title="副高级")
    db.session.commit()
    client = login(world.bz_admin)

    def rows(query):
        body = text(client.get("/experts?" + query))
        return {eid for eid in (world.expert.id, doctor.id) if f'data-testid="expert-row-{eid}"' in body}

    assert rows("") == {world.expert.id, doctor.id}
    assert rows("q=医院") == {doctor.id} and rows("q=王专家") == {world.expert.id}
    assert rows("field=health") == {doctor.id}
    assert rows("title=associate_senior") == {doctor.id}
    assert rows("status=suspended") == set()
    response = client.get("/experts?export=xlsx&field=health")
    assert response.status_code == 200 and response.data[:2] == b"PK"
    frame = read_xlsx(response.data)
    assert list(frame["姓名"]) == ["李医生"] and list(frame["入库条件"]) == ["符合"]
    assert list(frame["身份证号码（掩码）"]) == [doctor.id_number_masked] and "*" in doctor.id_number_masked
    assert {"职称", "学历", "业务领域", "所属专家库", "状态"} <= set(frame.columns)


def test_experts_are_entered_by_bureau_users(world, login):
    data = expert_form()
    response = login(world.bz_staff).post("/experts/new", data=data)
    assert response.status_code == 302
    expert = db.session.execute(sa.select(Expert).where(Expert.name == "孙专家")).scalar_one()
    assert expert.bureau_id == world.bz.id and expert.status == ExpertStatus.ACTIVE
    body = text(login(world.bz_staff).get(f"/experts/{expert.id}"))
    assert expert.id_number_masked in body and data["id_number"] not in body and "巴州人民医院" in body
    for role in ("sysadmin", "firm_user", "expert_user"):
        before = count(Expert)
        assert as_role(world, login, role).post("/experts/new", data=expert_form()).status_code == 403, role
        assert count(Expert) == before


def test_bad_expert_input_is_422_and_writes_nothing(world, login):
    experts, ties, events = count(Expert), count(ExpertTie), factories.audit_events()
    client = login(world.bz_staff)
    response = client.post("/experts/new", data=expert_form(id_number="65280119750305001X", fields=[]))
    body = text(response)
    assert response.status_code == 422 and "身份证号码无效" in body and "请至少选择一个业务领域" in body
    response = client.post("/experts/new", data=expert_form(birth_year="1980"))
    assert response.status_code == 422 and "出生年份与身份证号码不一致" in text(response)
    response = client.post("/experts/new", data=expert_form(title="", degree="phd"))
    assert response.status_code == 422 and "请选择职称" in text(response) and "学历无效：phd" in text(response)
    assert (count(Expert), count(ExpertTie), factories.audit_events()) == (experts, ties, events)


def test_expert_edit(world, login):
    client = login(world.bz_staff)
    body = text(client.get(f"/experts/{world.expert.id}/edit"))
    assert world.expert.id_number_masked in body
    data = expert_form(name="王专家", id_number=world.expert.id_number_masked, birth_year="1970",
                       employer="新疆大学", fields=["finance", "law"])
    assert client.post(f"/experts/{world.expert.id}/edit", data=data).status_code == 302
    db.session.expire_all()
    expert = db.session.get(Expert, world.expert.id)
    assert expert.employer == "新疆大学" and [f.value for f in expert.fields] == ["finance", "law"]
    assert {t.counterpart_name for t in expert.ties} == {"新疆财经大学", "新疆大学"}  # the former employer is kept
    response = client.post(f"/experts/{world.expert.id}/edit", data=dict(data, years_in_field="-1"))
    assert response.status_code == 422 and "从业年限应在 0–60 年之间" in text(response)
    for role in ("region_admin", "krl_admin", "kz_staff", "expert_user", "firm_user"):
        assert as_role(world, login, role).post(f"/experts/{world.expert.id}/edit", data=data).status_code == 403


def test_expert_page_for_the_expert_and_for_the_bureau(world, login):
    body = text(login(world.expert_user).get(f"/experts/{world.expert.id}"))
    assert "王专家" in body and "更新可用状态" in body and "expert-action-" not in body and "申报关系" in body
    body = text(login(world.bz_admin).get(f"/experts/{world.expert.id}"))
    assert 'data-testid="expert-action-suspend"' in body and 'data-testid="expert-action-remove"' in body
    body = text(login(world.krl_admin).get(f"/experts/{world.expert.id}"))
    assert "王专家" in body and "expert-action-" not in body and "更新可用状态" not in body


@pytest.mark.parametrize("role, status", [
    ("bz_admin", 302), ("sysadmin", 302),
    ("bz_staff", 403), ("region_admin", 403), ("krl_admin", 403), ("kz_admin", 403), ("expert_user", 403),
    ("firm_user", 403),
])
def test_who_may_change_an_experts_status(world, login, role, status):
    events = factories.audit_events()
    response = as_role(world, login, role).post(f"/experts/{world.expert.id}/status",
                                                data={"action": "suspend", "reason": "评审质量差"})
    assert response.status_code == status
    db.session.expire_all()
    expected = ExpertStatus.SUSPENDED if status == 302 else ExpertStatus.ACTIVE
    assert db.session.get(Expert, world.expert.id).status == expected
    if status == 403:
        assert factories.audit_events() == events


def test_expert_status_needs_a_reason(world, login):
    client = login(world.bz_admin)
    response = client.post(f"/experts/{world.expert.id}/status", data={"action": "remove", "reason": ""})
    assert response.status_code == 422 and "“移出专家库”必须填写原因" in text(response)
    assert db.session.get(Expert, world.expert.id).status == ExpertStatus.ACTIVE
    assert client.post(f"/experts/{world.expert.id}/status", data={"action": "reinstate", "reason": "x"}).status_code == 409


@pytest.mark.parametrize("role, status", [
    ("expert_user", 302), ("bz_staff", 302), ("sysadmin", 302),
    ("krl_admin", 403), ("region_admin", 403), ("kz_staff", 403), ("firm_user", 403),
])
def test_who_may_set_an_experts_availability(world, login, role, status):
    until = (beijing_today() + timedelta(days=30)).isoformat()
    response = as_role(world, login, role).post(f"/experts/{world.expert.id}/availability",
                                                data={"available": "0", "until": until, "note": "出差"})
    assert response.status_code == status
    db.session.expire_all()
    assert db.session.get(Expert, world.expert.id).available == (status != 302)


def test_availability_in_the_past_is_refused(world, login):
    client = login(world.expert_user)
    past = (beijing_today() - timedelta(days=3)).isoformat()
    response = client.post(f"/experts/{world.expert.id}/availability", data={"available": "0", "until": past})
    assert response.status_code == 422 and "不可用截止日期不能早于今天" in text(response)
    assert db.session.get(Expert, world.expert.id).available
    response = client.post(f"/experts/{world.expert.id}/availability", data={"available": "1"})
    assert response.status_code == 302


def test_expert_declares_ties(world, login):
    client = login(world.expert_user)
    ties = count(ExpertTie)
    response = client.post(f"/experts/{world.expert.id}/ties/new",
                           data={"kind": "kinship", "counterpart_type": "other", "counterpart_name": "",
                                 "start_date": "2020-01-01"})
    assert response.status_code == 422 and "请填写关联单位名称" in text(response)
    response = client.post(f"/experts/{world.expert.id}/ties/new",
                           data={"kind": "employment", "counterpart_type": "bureau", "start_date": "2020-01-01"})
    assert response.status_code == 422 and "请选择关联的财政局" in text(response)
    assert count(ExpertTie) == ties
    response = client.post(f"/experts/{world.expert.id}/ties/new",
                           data={"kind": "employment", "counterpart_type": "budget_unit",
                                 "budget_unit_id": str(world.units["巴州民政局"].id), "start_date": "2019-03-01",
                                 "end_date": "2023-02-28"})
    assert response.status_code == 302 and count(ExpertTie) == ties + 1
    body = text(client.get(f"/experts/{world.expert.id}"))
    assert "巴州民政局" in body and "2023-02-28" in body
    form = text(login(world.bz_staff).get(f"/experts/{world.expert.id}/ties/new"))
    assert "巴州示范评价咨询有限公司" in form  # bureau users pick firms from their library
    for role in ("firm_user", "krl_admin", "kz_staff", "region_admin"):
        response = as_role(world, login, role).post(
            f"/experts/{world.expert.id}/ties/new",
            data={"kind": "interest", "counterpart_type": "other", "counterpart_name": "某公司", "start_date": "2020-01-01"})
        assert response.status_code == 403, role
    assert count(ExpertTie) == ties + 1


# --- Excel import ----------------------------------------------------------------------------------

def firm_row(**overrides) -> dict[str, str]:
    row = {"name": f"导入评价咨询有限公司{factories.uscc()[-5:]}", "uscc": factories.uscc(), "legal_form": "有限责任公司",
           "kind": "会计师事务所", "address": "新疆库尔勒市天山东路 2 号", "legal_representative": "刘一",
           "contact_name": "陈二", "contact_phone": "0996-2222222", "contact_email": "office@example.cn",
           "founded_on": "2015-06-01", "fields": "财政经济、财务会计", "declares_no_major_violation": "是"}
    row.update(overrides)
    return row


def upload(client, kind: str, data: bytes, name: str = "导入.xlsx"):
    return client.post(f"/imports/{kind}", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def test_import_template_downloads(world, login):
    response = login(world.bz_staff).get("/imports/firms/template")
    assert response.status_code == 200 and response.data[:2] == b"PK"
    assert list(read_xlsx(response.data).columns) == list(FIRM_COLUMNS)
    response = login(world.bz_staff).get("/imports/experts/template")
    assert list(read_xlsx(response.data).columns) == list(EXPERT_COLUMNS)


def test_a_valid_firm_file_imports_every_row(world, login):
    client = login(world.bz_staff)
    firms = count(Firm)
    response = upload(client, "firms", xlsx(FIRM_COLUMNS, [firm_row() for _ in range(3)]))
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    job = db.session.execute(sa.select(Job)).scalar_one()
    assert job.kind == "import.firms" and job.status.value == "succeeded" and job.result["imported"] == 3
    assert job.params["bureau_id"] == world.bz.id and job.created_by_id == world.bz_staff.id
    assert count(Firm) == firms + 3
    imported = db.session.execute(sa.select(Firm).where(Firm.id.in_(job.result["ids"]))).scalars().all()
    assert {f.bureau_id for f in imported} == {world.bz.id} and {f.status for f in imported} == {FirmStatus.PENDING}
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and "已导入 3 条机构记录" in text(page)


def test_a_firm_file_with_one_bad_row_imports_nothing(world, login):
    client = login(world.krl_admin)
    firms, changes = count(Firm), count(FirmStatusChange)
    rows = [firm_row(), firm_row(uscc="91652800MA00000XX9", name="错误代码有限公司"), firm_row()]
    response = upload(client, "firms", xlsx(FIRM_COLUMNS, rows))
    assert response.status_code == 302
    job = db.session.execute(sa.select(Job)).scalar_one()
    assert job.status.value == "failed" and job.result["errors"][0]["row"] == 3
    assert (count(Firm), count(FirmStatusChange)) == (firms, changes)
    body = text(client.get(response.headers["Location"]))
    assert 'data-testid="import-errors"' in body and "<td>3</td>" in body and "错误代码有限公司" in body
    assert "统一社会信用代码" in body and "未导入任何机构" in body


def test_a_valid_expert_file_imports_every_row(world, login):
    client = login(world.lt_staff)
    experts = count(Expert)
    rows = [{"name": f"导入专家{i}", "id_number": factories.id_number(birth="19680101"), "employer": "轮台县人民医院",
             "title": "中级", "degree": "本科", "years_in_field": "15", "birth_year": "1968", "fields": "医疗卫生"}
            for i in range(2)]
    response = upload(client, "experts", xlsx(EXPERT_COLUMNS, rows))
    assert response.status_code == 302
    job = db.session.execute(sa.select(Job)).scalar_one()
    assert job.kind == "import.experts" and job.status.value == "succeeded"
    assert count(Expert) == experts + 2
    rows[1]["id_number"] = "123"
    response = upload(client, "experts", xlsx(EXPERT_COLUMNS, rows))
    body = text(client.get(response.headers["Location"]))
    assert "<td>3</td>" in body and "身份证号码无效" in body and count(Expert) == experts + 2


def test_non_xlsx_uploads_are_refused_with_nothing_written(world, login):
    client = login(world.bz_staff)
    files_before, jobs_before, events = count(StoredFile), count(Job), factories.audit_events()
    response = upload(client, "firms", "机构名称,统一社会信用代码\n某公司,123\n".encode(), "机构.xlsx")
    assert response.status_code == 422
    assert "文件类型不符：只接受 Excel (.xlsx)" in text(response)
    response = client.post("/imports/firms", data={}, content_type="multipart/form-data")
    assert response.status_code == 422 and "请选择要上传的 Excel 文件" in text(response)
    assert (count(StoredFile), count(Job), factories.audit_events()) == (files_before, jobs_before, events)


@pytest.mark.parametrize("role", ["sysadmin", "firm_user", "other_firm_user", "expert_user"])
def test_only_bureau_users_import(world, login, role):
    response = upload(as_role(world, login, role), "firms", xlsx(FIRM_COLUMNS, [firm_row()]))
    assert response.status_code == 403
    assert (count(StoredFile), count(Job)) == (0, 0)
