"""Audit of spreadsheet imports and exports, as a bureau clerk who works in WPS/Excel all day would meet them.

Each test states a rule, who is hurt and the source, and fails on the current code for the defect it names. The
workbooks are built with openpyxl the way Excel/WPS stores what a clerk typed (numbers, booleans, hidden sheets,
merged cells), not as pandas would write clean strings."""
from __future__ import annotations

import io
from datetime import date, datetime

import openpyxl
import sqlalchemy as sa

from evalhub.extensions import db
from tests import factories

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _save(workbook: openpyxl.Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _sheet(columns: dict[str, str], rows: list[dict]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "导入数据"
    sheet.append(list(columns))
    for row in rows:
        sheet.append([row.get(key, "") for key in columns.values()])
    return _save(workbook)


def _job():
    from evalhub.core.models import Job

    db.session.rollback()
    return db.session.execute(sa.select(Job).order_by(Job.id.desc())).scalars().first()


def _count(model) -> int:
    db.session.expire_all()
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def _expert_row(name: str, id_number: str) -> dict:
    return {"name": name, "id_number": id_number, "employer": "轮台县人民医院", "title": "中级", "degree": "本科",
            "years_in_field": "15", "birth_year": "1968", "fields": "医疗卫生"}


# --- imports: duplicates inside one file ---------------------------------------------------------------------

def test_an_expert_import_names_the_row_of_an_id_number_repeated_in_full_width_digits(world, login):
    """Rule (docs/rules.md "Files in and out"; registry/imports.py docstring): an import checks every row first, names
    each bad row in Chinese and writes nothing; a duplicate within the file is "与第 N 行重复". Bad input never ends in
    an unexplained error. Who is hurt: the county clerk who pastes the expert list from two sources, one typed with the
    Chinese input method in full-width mode (全角 "１１０１０１…"). ``_run_import`` compares the raw cell (spaces
    removed, upper case) while ``validate_id_number`` (stdnum's ``compact``) turns full-width digits into ASCII, so the
    two rows pass every check, and the second INSERT hits the unique ``id_number_digest``: the job fails with
    "任务出错：(sqlite3.IntegrityError) UNIQUE constraint failed … [SQL: INSERT INTO expert …]" (English SQL, a
    traceback in its result) and no row named. Expected: the job's errors name row 3 as a repeat of row 2."""
    from evalhub.registry.imports import EXPERT_COLUMNS
    from evalhub.registry.models import Expert
    from tests.test_registry_views import upload

    number = factories.id_number(birth="19680101")
    experts = _count(Expert)
    data = _sheet(EXPERT_COLUMNS, [_expert_row("张导入", number), _expert_row("张导入（重复）", number.translate(FULL_WIDTH))])
    assert upload(login(world.lt_staff), "experts", data).status_code == 302
    job = _job()
    assert _count(Expert) == experts
    rows = [e["row"] for e in (job.result or {}).get("errors", [])]
    assert rows == [3] and not (job.message or "").startswith("任务出错"), \
        f"the import crashed on the repeated ID number instead of naming row 3: {job.message[:160]!r}"


def test_a_firm_import_names_the_row_of_a_credit_code_repeated_in_full_width_digits(world, login):
    """Rule (docs/rules.md: "An import finds duplicate codes as stored … and names the row"; registry/imports.py): a
    code repeated within the file is reported by row, nothing imported. Who is hurt: the bureau clerk whose firm list
    has the same firm twice, once with its 统一社会信用代码 typed in full-width digits (全角 "９１６５２８００MA…", common
    when the IME is in full-width mode). ``_run_import``'s duplicate key only drops spaces and upper-cases, while
    ``validate_uscc`` (stdnum's ``compact``) stores ASCII digits: both rows pass, the second INSERT violates
    ``firm.uscc``'s unique index and the job dies with "任务出错：(sqlite3.IntegrityError) …" and a traceback instead
    of "第 3 行：与第 2 行重复". Expected: row 3 named, nothing written."""
    from evalhub.registry.imports import FIRM_COLUMNS
    from evalhub.registry.models import Firm
    from tests.test_registry_views import firm_row, upload

    code = factories.uscc()
    firms = _count(Firm)
    rows = [firm_row(uscc=code), firm_row(uscc=code.translate(FULL_WIDTH), name="重复录入评价咨询有限公司")]
    assert upload(login(world.bz_staff), "firms", _sheet(FIRM_COLUMNS, rows)).status_code == 302
    job = _job()
    assert _count(Firm) == firms
    rows_named = [e["row"] for e in (job.result or {}).get("errors", [])]
    assert rows_named == [3] and not (job.message or "").startswith("任务出错"), \
        f"the import crashed on the repeated code instead of naming row 3: {job.message[:160]!r}"


# --- imports: cells as Excel stores them ---------------------------------------------------------------------

def test_a_declaration_typed_as_true_in_excel_is_not_imported_as_not_declared(world, login):
    """Rule (DOMAIN §3 admission: "no major violation in evaluation work in the last 3 years"; registry/imports.py
    ``_firm_input`` accepts "是", "1", "true", "TRUE", "Y"): the firm's 近三年无重大违规承诺 is what the sheet says. Who
    is hurt: the clerk who types TRUE in that column — Excel/WPS store a typed TRUE as a boolean cell, pandas reads it
    back as "True", which is not in the accepted list, so the firm is imported as "未承诺" (shown so on its page)
    without a word; any other unrecognised value ("√", "已承诺", "y") is silently a "no" too. Expected: the firm
    declares (True), or the row is refused naming the column."""
    from evalhub.registry.imports import FIRM_COLUMNS
    from evalhub.registry.models import Firm
    from tests.test_registry_views import firm_row, upload

    data = _sheet(FIRM_COLUMNS, [firm_row(declares_no_major_violation=True)])  # a boolean cell, as Excel keeps TRUE
    assert upload(login(world.bz_staff), "firms", data).status_code == 302
    job = _job()
    if job.status.value == "failed":
        messages = "；".join(m for e in job.result.get("errors", []) for m in e["messages"])
        assert "承诺" in messages, f"refused, but not for the declaration column: {job.result}"
        return
    firm = db.session.get(Firm, job.result["ids"][0])
    assert firm.declares_no_major_violation, "TRUE in 近三年无重大违规承诺 was imported as 未承诺, without a message"


def test_a_workbook_with_a_hidden_list_sheet_before_the_data_sheet_is_imported(world, login):
    """Rule (registry/imports.py: the template's sheet "导入数据" is read; bad input gets a message that says what is
    wrong): a clerk's workbook often carries the choices of its drop-down lists (组织形式, 机构类型) on a hidden sheet
    placed first. ``read_sheet`` reads the first sheet whatever its name or visibility, so a correct 导入数据 sheet is
    refused with "表头缺少列：机构名称、统一社会信用代码、…请使用导入模板" — the clerk sees every one of those columns on
    the sheet in front of her. Expected: the sheet named 导入数据 (or the first visible sheet) is read; the firm is
    imported."""
    from evalhub.registry.imports import FIRM_COLUMNS
    from tests.test_registry_views import firm_row, upload

    workbook = openpyxl.Workbook()
    choices = workbook.active
    choices.title = "下拉选项"
    for label in ("有限责任公司", "合伙企业", "事业单位"):
        choices.append([label])
    choices.sheet_state = "hidden"
    data_sheet = workbook.create_sheet("导入数据")
    data_sheet.append(list(FIRM_COLUMNS))
    row = firm_row()
    data_sheet.append([row[key] for key in FIRM_COLUMNS.values()])
    workbook.active = 1
    assert upload(login(world.bz_staff), "firms", _save(workbook)).status_code == 302
    job = _job()
    assert job.status.value == "succeeded", f"a correct 导入数据 sheet was refused: {job.message}"


def test_a_plan_import_reads_a_unit_merged_over_several_rows(world, login):
    """Rule (procurement/imports.py: nothing imported when any row is wrong, and the message says what is wrong in the
    row): a clerk's plan sheet lists several objects of one unit with 被评价单位 and 选取理由 merged vertically (合并
    单元格, the usual way in WPS). openpyxl gives the value to the first row of the merge only, so rows 3 and 4 are
    refused with "请选择被评价单位""请填写选取理由" — while the clerk sees the unit and the reason beside them. Expected:
    the merged value is read for every row it covers (three objects imported), or the message says the cells are
    merged (合并单元格) and must be unmerged."""
    from evalhub.procurement import services as P
    from evalhub.procurement.imports import PLAN_COLUMNS
    from evalhub.procurement.models import PlanItem

    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    db.session.commit()
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(list(PLAN_COLUMNS))
    for i, name in enumerate(("统计调查项目", "普查经费", "统计执法检查")):
        sheet.append([f"巴州统计局{name}", "项目支出", "一般公共预算", "统计", "", 100 + i, "巴州统计局", "", "资金量大、社会关注度高"])
    sheet.merge_cells("G2:G4")
    sheet.merge_cells("I2:I4")
    response = login(world.bz_staff).post(f"/plans/{plan.id}/import", data={"file": (io.BytesIO(_save(workbook)), "计划.xlsx")},
                                          content_type="multipart/form-data")
    assert response.status_code == 302
    job = _job()
    if job.status.value == "failed":
        messages = "；".join(m for e in job.result.get("errors", []) for m in e["messages"]) + (job.message or "")
        assert "合并" in messages, f"merged cells read as blank, and the message does not say so: {job.result}"
        return
    assert _count(PlanItem) == 3


def test_the_expert_template_keeps_identity_numbers_as_text(world, login):
    """Rule (DOMAIN §3/§4: identity numbers are 18 characters; registry/imports.py template note "身份证号码须为 18 位并
    通过校验"): the template the page offers must let a clerk type an identity number. Its 身份证号码 column is in
    Excel's General format, so an 18-digit number typed or pasted there becomes 1.10101E+17 and Excel keeps only 15
    significant digits — the last three digits are gone for good, and the import answers "身份证号码无效" for a number
    the clerk typed correctly. Expected: the 身份证号码 column of the template (its column style or its empty data
    cells) is formatted as text ("@"), as are 联系电话 and the firm template's 统一社会信用代码."""
    response = login(world.bz_staff).get("/imports/experts/template")
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).worksheets[0]
    header = [c.value for c in sheet[1]]
    letter = openpyxl.utils.get_column_letter(header.index("身份证号码") + 1)
    column_format = sheet.column_dimensions[letter].number_format
    cell_formats = {sheet[f"{letter}{row}"].number_format for row in range(2, 12)}
    assert column_format == "@" or cell_formats == {"@"}, \
        f"the template's 身份证号码 column is {column_format!r}/{cell_formats}, not text: Excel rounds an 18-digit number"


# --- the organisations import --------------------------------------------------------------------------------

def test_a_blank_row_between_units_does_not_refuse_the_organisations_import(world, login):
    """Rule (docs/rules.md: "An import's error report names each row by the number Excel shows at its left … blank rows
    counted" — blank rows are skipped, as ``read_sheet`` does for firms, experts and plan items): a bureau admin
    separates groups of units with a blank row. ``core.organisations.read_workbook`` keeps the blank row as a unit with
    every field empty, so the whole workbook is refused with "预算单位第 3 行：财政局区划代码 （空） 不存在；单位名称必
    填…" and nothing is imported. Expected: the blank row is skipped and both units are imported."""
    from evalhub.core.models import BudgetUnit

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "预算单位"
    sheet.append(["财政局区划代码", "单位名称", "统一社会信用代码", "上级单位名称"])
    sheet.append([world.bz.code, "巴州数据局", None, None])
    sheet.append([None, None, None, None])  # row 3: blank, between two groups
    sheet.append([world.bz.code, "巴州数据中心", None, "巴州数据局"])
    response = login(world.bz_admin).post("/organisations/import", data={"file": (io.BytesIO(_save(workbook)), "units.xlsx")},
                                          content_type="multipart/form-data")
    body = response.get_data(as_text=True)
    assert response.status_code == 302, f"refused ({response.status_code}) for a blank row: " + \
        ("第 3 行" if "第 3 行" in body else body[:200])
    assert db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == "巴州数据中心")).scalar_one().parent.name == "巴州数据局"


# --- exports -------------------------------------------------------------------------------------------------

def test_the_firm_list_export_writes_dates_as_excel_dates(world, login):
    """Rule (the house rule for every export: numbers as numbers, dates as dates): the firm library's Excel
    (/firms?export=xlsx, registry/views.py ``_firm_rows``) writes 申请日期, 入库日期 and 状态截止日期 as text
    ("2026-12-07", format_beijing/strftime), so the clerk cannot filter by month, sort by date or compute how long a
    suspension has left in Excel (the same in the engagement export's 实施方案期限/评价报告期限, the credit export's
    公示异议截止, the plan list's 批准时间). Expected: the 申请日期 cells are date cells."""
    firm = factories.firm(world.bz, name="日期导出评价咨询有限公司")
    db.session.commit()
    response = login(world.bz_staff).get("/firms?export=xlsx")
    assert response.status_code == 200
    rows = list(openpyxl.load_workbook(io.BytesIO(response.data)).worksheets[0].iter_rows())
    header = [c.value for c in rows[0]]
    name_col, date_col = header.index("机构名称"), header.index("申请日期")
    cell = next(row[date_col] for row in rows[1:] if row[name_col].value == firm.name)
    assert cell.value not in (None, ""), "the firm has no 申请日期 in the export"
    assert isinstance(cell.value, (date, datetime)), \
        f"申请日期 is exported as {type(cell.value).__name__} {cell.value!r}, not as an Excel date"


def test_the_organisations_import_reads_a_header_with_a_trailing_space(world, login):
    """Rule (registry/imports.py ``read_sheet`` strips each header, so firms, experts and plan items accept "单位名称 ";
    bad input gets a message that says what is really wrong): a header cell retyped in WPS often keeps a trailing
    space or a full-width space (全角空格). ``core.organisations.read_workbook`` compares the raw headers, so the
    workbook is refused with "“预算单位”工作表缺少列：单位名称" while the column is plainly there. Expected: the
    header is read as 单位名称 and the unit imported."""
    from evalhub.core.models import BudgetUnit

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "预算单位"
    sheet.append(["财政局区划代码", "单位名称\u3000", "统一社会信用代码", "上级单位名称 "])
    sheet.append([world.bz.code, "巴州数据局", None, None])
    response = login(world.bz_admin).post("/organisations/import", data={"file": (io.BytesIO(_save(workbook)), "units.xlsx")},
                                          content_type="multipart/form-data")
    body = response.get_data(as_text=True)
    assert response.status_code == 302, f"refused ({response.status_code}): " + ("缺少列" if "缺少列" in body else body[:200])
    assert db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == "巴州数据局")).scalar_one_or_none() is not None
