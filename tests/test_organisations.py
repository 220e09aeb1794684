"""Bureaus and budget units as data: Excel import checked whole, trees without cycles, nothing half-written."""
from __future__ import annotations

import io

import pandas as pd
import pytest
import sqlalchemy as sa

from evalhub.core.errors import PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, Bureau, BudgetUnit
from evalhub.core.organisations import (
    import_organisations, import_workbook, read_workbook, template, unit_ancestor_ids, unit_subtree_ids,
)
from evalhub.extensions import db


def _workbook(bureaus: list[dict], units: list[dict]) -> bytes:
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        pd.DataFrame(bureaus).to_excel(writer, sheet_name="财政局", index=False)
        pd.DataFrame(units).to_excel(writer, sheet_name="预算单位", index=False)
    return out.getvalue()


BUREAUS = [
    {"区划代码": "650000", "名称": "新疆维吾尔自治区财政厅", "简称": "自治区", "层级": "自治区", "上级区划代码": ""},
    {"区划代码": "652800", "名称": "巴音郭楞蒙古自治州财政局", "简称": "巴州", "层级": "州/地区", "上级区划代码": "650000"},
    {"区划代码": "652822", "名称": "轮台县财政局", "简称": "轮台县", "层级": "县/市", "上级区划代码": "652800"},
]
UNITS = [
    # the child comes before its parent in the sheet: links are made after every row is in
    {"财政局区划代码": "652800", "单位名称": "巴州统计局普查中心", "统一社会信用代码": "", "上级单位名称": "巴州统计局"},
    {"财政局区划代码": "652800", "单位名称": "巴州统计局", "统一社会信用代码": "", "上级单位名称": ""},
    {"财政局区划代码": "652822", "单位名称": "轮台县教育局", "统一社会信用代码": "", "上级单位名称": ""},
]


def test_an_empty_installation_gets_its_bureaus_and_units_from_excel(app_ctx):
    result = import_workbook(_workbook(BUREAUS, UNITS), actor=None)
    db.session.commit()
    assert (result.bureaus_created, result.units_created) == (3, 3)
    lt = db.session.execute(sa.select(Bureau).where(Bureau.code == "652822")).scalar_one()
    assert lt.path == "650000/652800/652822/" and lt.parent.code == "652800"
    centre = db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == "巴州统计局普查中心")).scalar_one()
    assert centre.parent.name == "巴州统计局"
    assert unit_subtree_ids(centre.parent) == {centre.parent.id, centre.id}
    assert unit_ancestor_ids(centre) == {centre.parent.id}
    events = db.session.execute(sa.select(AuditEvent.action)).scalars().all()
    assert events.count("bureau.created") == 3 and events.count("budget_unit.created") == 3
    # The same workbook again changes nothing (and writes no audit events).
    again = import_workbook(_workbook(BUREAUS, UNITS), actor=None)
    db.session.commit()
    assert (again.bureaus_created, again.bureaus_updated, again.units_created, again.units_updated) == (0, 0, 0, 0)
    assert db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one() == len(events)


@pytest.mark.parametrize("bureaus, units, message", [
    ([{**BUREAUS[0], "区划代码": "65000"}], [], "6 位数字"),
    ([BUREAUS[0], {**BUREAUS[2], "上级区划代码": "659999"}], [], "既不在本表中"),
    ([BUREAUS[0], {**BUREAUS[1], "层级": "县/市"}, {**BUREAUS[2]}], [], "层级不高于本级"),
    ([{**BUREAUS[0], "层级": "乡镇"}], [], "层级应为"),
    (BUREAUS, [{**UNITS[1], "上级单位名称": "巴州统计局普查中心"}, UNITS[0]], "循环"),
    (BUREAUS, [{**UNITS[1], "统一社会信用代码": "91652800ABCDEFGH12"}], "信用代码"),
    (BUREAUS, [{**UNITS[0], "上级单位名称": "不存在的单位"}], "上级单位"),
    (BUREAUS, [{**UNITS[1], "财政局区划代码": "653000"}], "不存在"),
])
def test_one_bad_row_imports_nothing_and_says_where(app_ctx, bureaus, units, message):
    bureau_rows, unit_rows = read_workbook(_workbook(bureaus, units or [dict.fromkeys(UNITS[0], "")]))
    with pytest.raises(ValidationFailed) as caught:
        import_organisations(bureau_rows, unit_rows if units else [], actor=None)
    assert message in caught.value.message
    assert "第" in caught.value.message and "行" in caught.value.message
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(Bureau.id))).scalar_one() == 0
    assert db.session.execute(sa.select(sa.func.count(BudgetUnit.id))).scalar_one() == 0


def test_a_county_admin_cannot_create_bureaus_or_touch_another_bureaus_units(world):
    rows = [{"code": "652823", "name": "尉犁县财政局", "short_name": "尉犁县", "level": "县/市", "parent_code": "652800"}]
    with pytest.raises(ValidationFailed) as caught:
        import_organisations(rows, [], actor=world.lt_admin)
    assert "无权" in caught.value.message
    units = [{"bureau_code": "652800", "name": "巴州新单位", "code": "", "parent_name": ""}]
    with pytest.raises(ValidationFailed) as caught:
        import_organisations([], units, actor=world.lt_admin)
    assert "无权维护" in caught.value.message
    # 巴州's admin may open a county under 巴州 and add units to 巴州.
    result = import_organisations(rows, units, actor=world.bz_admin)
    assert (result.bureaus_created, result.units_created) == (1, 1)
    with pytest.raises(PermissionDenied):
        import_workbook(template(), actor=world.bz_staff)


def test_the_template_reads_back_as_its_own_example(app_ctx):
    bureaus, units = read_workbook(template())
    assert bureaus[0]["code"] == "652800" and units[0]["parent_name"] == "巴州统计局"
    with pytest.raises(ValidationFailed):
        read_workbook(b"not an excel file")


def test_the_template_formats_the_credit_code_column_as_text(world, login):
    """Rule (core/exports.py ``TEXT_HEADERS``: a column of codes in a template is text-formatted, as the firm and
    expert templates' 统一社会信用代码, 身份证号码 and 联系电话 are): the organisations template's 统一社会信用代码
    column on 预算单位 is formatted as text ("@") — the column's style, which Excel gives a cell typed in later, and
    its empty cells below the example.

    Who is hurt otherwise: the bureau's clerk importing budget units. A 事业单位's code is often all digits
    (12652800…); typed into a General cell Excel makes it a number, keeps 15 significant digits and shows 1.27E+17,
    and the import refuses the row ("是数字…须为文本") for a code typed correctly — or, with a leading 0, the 0 is gone."""
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    from evalhub.core.exports import TEMPLATE_ROWS

    response = login(world.bz_admin).get("/organisations/import/template.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data))["预算单位"]
    header = [c.value for c in sheet[1]]
    letter = get_column_letter(header.index("统一社会信用代码") + 1)
    assert sheet.column_dimensions[letter].number_format == "@"
    assert {sheet[f"{letter}{row}"].number_format for row in (2, 3, 50, TEMPLATE_ROWS + 1)} == {"@"}
    # only that column: the names stay General
    assert sheet[f"{get_column_letter(header.index('单位名称') + 1)}3"].number_format == "General"
    bureaus, units = read_workbook(response.data)  # and the template still reads back as its own example
    assert bureaus[0]["code"] == "652800" and units[0]["name"] == "巴州统计局普查中心"


def test_orgs_commands(app, app_ctx, tmp_path):
    runner = app.test_cli_runner()
    out = tmp_path / "模板.xlsx"
    assert runner.invoke(args=["evalhub", "orgs", "template", str(out)]).exit_code == 0
    bad = runner.invoke(args=["evalhub", "orgs", "import", str(out)])  # the example's parent 650000 is missing
    assert bad.exit_code == 1 and "650000" in bad.output
    good = tmp_path / "组织机构.xlsx"
    good.write_bytes(_workbook(BUREAUS, UNITS))
    result = runner.invoke(args=["evalhub", "orgs", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "财政局新增 3 个" in result.output


def test_the_import_page_imports_or_lists_every_problem(world, login):
    client = login(world.bz_admin)
    assert client.get("/organisations/import").status_code == 200
    assert client.get("/organisations/import/template.xlsx").status_code == 200
    units = [{"财政局区划代码": "652800", "单位名称": "巴州数据中心", "统一社会信用代码": "", "上级单位名称": "巴州数据局"}]
    response = client.post("/organisations/import", data={"file": (io.BytesIO(_workbook([], units)), "units.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "上级单位“巴州数据局”不在本表中".encode() in response.data
    assert db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == "巴州数据中心")).scalar_one_or_none() is None
    units.append({"财政局区划代码": "652800", "单位名称": "巴州数据局", "统一社会信用代码": "", "上级单位名称": ""})
    response = client.post("/organisations/import", data={"file": (io.BytesIO(_workbook([], units)), "units.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    assert db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == "巴州数据中心")).scalar_one().parent.name == "巴州数据局"


@pytest.mark.parametrize("who", ["bz_staff", "firm_user", "expert_user"])
def test_the_import_page_is_for_administrators(world, login, who):
    client = login(getattr(world, who))
    assert client.get("/organisations/import").status_code == 403
    assert client.get("/organisations/import/template.xlsx").status_code == 403
