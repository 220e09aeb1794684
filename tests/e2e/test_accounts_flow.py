"""From an empty database to a bureau with its own people, in the browser (issue 12, "Tests that must exist"):
the operator loads the bureaus and creates the first system administrator on the command line; the
administrator signs in and creates a prefecture's administrator, who activates the account through the
one-time link, signs in and creates a staff member, who activates and signs in too.

Then 巴州's administrator imports its budget units from Excel in the browser (a bad file first: nothing is
imported and every problem is listed), and the staff member opens an account for an expert of the pool, who
activates it through the link and signs in.
"""
from __future__ import annotations

import io

import pandas as pd
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from evalhub.core.enums import Role
from evalhub.core.models import AuditEvent, Bureau, BudgetUnit, User
from evalhub.extensions import db
from tests import factories
from tests.e2e.helpers import Sessions, log_in

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "Tianshan-Admin-2025"
CHIEF_PASSWORD = "Bayingol-Chief-77"
CLERK_PASSWORD = "Korla-Clerk-2025!"
EXPERT_PASSWORD = "Bosten-Lake-Expert-9"
SCREENSHOT = "/tmp/e2e-accounts.png"
FAILURE_SCREENSHOT = "/tmp/e2e-accounts-failure.png"

BUREAUS = [
    {"区划代码": "650000", "名称": "新疆维吾尔自治区财政厅", "简称": "自治区", "层级": "自治区", "上级区划代码": ""},
    {"区划代码": "652800", "名称": "巴音郭楞蒙古自治州财政局", "简称": "巴州", "层级": "州/地区", "上级区划代码": "650000"},
    {"区划代码": "652822", "名称": "轮台县财政局", "简称": "轮台县", "层级": "县/市", "上级区划代码": "652800"},
]


def _workbook(path) -> None:
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        pd.DataFrame(BUREAUS).to_excel(writer, sheet_name="财政局", index=False)
        pd.DataFrame([], columns=["财政局区划代码", "单位名称", "统一社会信用代码", "上级单位名称"]).to_excel(
            writer, sheet_name="预算单位", index=False)
    path.write_bytes(out.getvalue())


def _units(path, units: list[tuple[str, str]]) -> None:
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        pd.DataFrame([{"财政局区划代码": "652800", "单位名称": name, "统一社会信用代码": "", "上级单位名称": parent}
                      for name, parent in units]).to_excel(writer, sheet_name="预算单位", index=False)
    path.write_bytes(out.getvalue())


def _create_account(page, bureau_code: str, username: str, display_name: str, role_label: str) -> str:
    """On the bureau list, open the bureau's accounts page and create an account; returns the one-time link."""
    page.goto("/bureaus")
    page.get_by_test_id(f"bureau-users-{bureau_code}").click()
    expect(page.get_by_role("heading", name="账户管理", exact=False)).to_be_visible()
    page.locator("[data-testid=create-user] summary").click()
    page.get_by_label("用户名").fill(username)
    page.get_by_label("姓名").fill(display_name)
    page.get_by_label("角色").select_option(label=role_label)
    with page.expect_navigation():
        page.get_by_test_id("create-user-submit").click()
    expect(page.get_by_text("只显示这一次")).to_be_visible()
    link = page.get_by_test_id("issued-link").input_value()
    assert "/account/activate/" in link
    return link


def _activate(page, link: str, username: str, password: str) -> None:
    page.goto(link)
    expect(page.get_by_test_id("link-username")).to_have_text(username)
    page.get_by_label("新密码", exact=True).fill("too-short")
    page.get_by_label("再次输入新密码").fill("too-short")
    page.get_by_role("button", name="激活账户").click()
    expect(page.get_by_text("至少需要 10 位").first).to_be_visible()  # the policy, in Chinese
    page.get_by_label("新密码", exact=True).fill(password)
    page.get_by_label("再次输入新密码").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="激活账户").click()
    expect(page.get_by_text("账户已激活")).to_be_visible()
    # the link works once
    page.goto(link)
    expect(page.get_by_test_id("link-problem")).to_contain_text("使用过")


def test_from_an_empty_database_to_a_bureau_with_its_people(app, app_ctx, browser, live_server, tmp_path):
    assert db.session.execute(sa.select(sa.func.count(User.id))).scalar_one() == 0
    runner = app.test_cli_runner()
    workbook = tmp_path / "组织机构.xlsx"
    _workbook(workbook)
    result = runner.invoke(args=["evalhub", "orgs", "import", str(workbook)])
    assert result.exit_code == 0, result.output
    weak = runner.invoke(args=["evalhub", "users", "create-admin", "--username", "root", "--password", "root123"])
    assert weak.exit_code == 1
    result = runner.invoke(args=["evalhub", "users", "create-admin", "--username", "root",
                                 "--password", ADMIN_PASSWORD, "--display-name", "平台管理员"])
    assert result.exit_code == 0, result.output

    bz = db.session.execute(sa.select(Bureau).where(Bureau.code == "652800")).scalar_one()
    expert_id = factories.expert(bz, name="艾尔肯·吐尔逊").id  # in the pool (imported or entered), no account yet
    db.session.commit()

    sessions = Sessions(browser, live_server)
    page = None
    try:
        # the system administrator signs in and creates 巴州's administrator
        page = sessions.page()
        log_in(page, "root", ADMIN_PASSWORD)
        chief_link = _create_account(page, "652800", "bz.chief", "巴州财政局管理员", "财政局管理员")

        # who activates the account through the link and signs in
        chief = sessions.page()
        _activate(chief, chief_link, "bz.chief", CHIEF_PASSWORD)
        page = chief
        log_in(chief, "bz.chief", CHIEF_PASSWORD)
        expect(chief.get_by_test_id("nav-account")).to_contain_text("巴州财政局管理员")

        # and creates a member of staff (the only role a bureau admin may give in its own bureau)
        chief.goto("/bureaus")
        chief.get_by_test_id("bureau-users-652800").click()
        chief.locator("[data-testid=create-user] summary").click()
        assert chief.get_by_label("角色").locator("option").all_inner_texts() == ["财政局工作人员"]
        clerk_link = _create_account(chief, "652800", "bz.clerk", "巴州财政局工作人员", "财政局工作人员")

        # who activates and signs in
        clerk = sessions.page()
        _activate(clerk, clerk_link, "bz.clerk", CLERK_PASSWORD)
        page = clerk
        log_in(clerk, "bz.clerk", CLERK_PASSWORD)
        expect(clerk.get_by_test_id("nav-account")).to_contain_text("巴州财政局工作人员")
        clerk.goto(f"/bureaus/{db.session.execute(sa.select(Bureau.id).where(Bureau.code == '652800')).scalar_one()}/users")
        expect(clerk.get_by_text("您没有权限访问此页面")).to_be_visible()  # staff do not manage accounts

        # the administrator's page shows both accounts in use
        page = chief
        chief.goto("/bureaus")
        chief.get_by_test_id("bureau-users-652800").click()
        expect(chief.get_by_test_id("status-bz.clerk")).to_have_text("启用")

        # 巴州's administrator imports the budget units: a file with a problem first (nothing is written), then the fixed one
        bad, good = tmp_path / "单位（有误）.xlsx", tmp_path / "单位.xlsx"
        _units(bad, [("巴州统计局普查中心", "巴州统计局")])
        _units(good, [("巴州统计局普查中心", "巴州统计局"), ("巴州统计局", "")])
        chief.goto("/bureaus")
        chief.get_by_test_id("organisations-import").click()
        chief.get_by_label("Excel 文件").set_input_files(str(bad))
        chief.get_by_role("button", name="导入", exact=True).click()
        expect(chief.get_by_text("上级单位“巴州统计局”不在本表中").first).to_be_visible()
        chief.get_by_label("Excel 文件").set_input_files(str(good))
        with chief.expect_navigation():
            chief.get_by_role("button", name="导入", exact=True).click()
        expect(chief.get_by_text("预算单位新增 2 个")).to_be_visible()

        # the staff member opens an account for an expert of 巴州's pool; the expert activates it and signs in
        page = clerk
        clerk.goto(f"/experts/{expert_id}")
        clerk.get_by_test_id("account-open").click()
        expert_link = clerk.get_by_test_id("account-link-url").input_value()
        expert_username = clerk.get_by_test_id("account-username").inner_text()
        expert_page = sessions.page()
        page = expert_page
        _activate(expert_page, expert_link, expert_username, EXPERT_PASSWORD)
        log_in(expert_page, expert_username, EXPERT_PASSWORD)
        expect(expert_page.get_by_test_id("nav-account")).to_be_visible()
        page = clerk
        clerk.goto(f"/experts/{expert_id}")
        expect(clerk.get_by_test_id("account-activated")).to_contain_text("已激活")
        chief.screenshot(path=SCREENSHOT, full_page=True)
    except Exception:
        if page is not None:
            page.screenshot(path=FAILURE_SCREENSHOT, full_page=True)
        raise
    finally:
        sessions.close()

    db.session.expire_all()
    users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
    assert set(users) - {"root", "bz.chief", "bz.clerk"} == {expert_username}
    assert users[expert_username].role == Role.EXPERT and users[expert_username].expert_id == expert_id
    assert not users[expert_username].awaiting_activation
    centre = db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == "巴州统计局普查中心")).scalar_one()
    assert centre.parent.name == "巴州统计局" and centre.bureau.code == "652800"
    assert users["bz.chief"].role == Role.BUREAU_ADMIN and users["bz.clerk"].role == Role.BUREAU_STAFF
    assert not users["bz.chief"].awaiting_activation and users["bz.clerk"].last_login_at is not None
    actions = db.session.execute(sa.select(AuditEvent.action)).scalars().all()
    assert actions.count("user.created") == 4 and actions.count("user.activated") == 3
    assert actions.count("budget_unit.created") == 2
