"""Workbooks in and out beyond the audit's cases (tests/test_audit_xlsx.py): cells Excel turned into numbers, yes/no
spellings, the row cap, the unique-violation safety net of an import, failed jobs' messages, dates in exports and the
audit log's cut."""
from __future__ import annotations

import io
import logging
from datetime import date, datetime, timezone

import openpyxl
import pytest
import sqlalchemy as sa

from evalhub.extensions import db
from tests import factories
from tests.test_audit_xlsx import _count, _expert_row, _job, _save, _sheet


def _errors(job) -> str:
    return "；".join(m for e in (job.result or {}).get("errors", []) for m in e["messages"])


def test_an_identity_number_excel_turned_into_a_number_is_refused_saying_so(world, login):
    """An 18-digit number typed into a General column is kept by Excel as a float of 15 significant digits: the row
    is refused with a message that says Excel converted it, not "身份证号码无效"."""
    from evalhub.registry.imports import EXPERT_COLUMNS
    from evalhub.registry.models import Expert
    from tests.test_registry_views import upload

    experts = _count(Expert)
    row = _expert_row("张数字", "")
    row["id_number"] = float(factories.id_number(birth="19680101")[:17] + "0")  # what Excel stores
    assert upload(login(world.lt_staff), "experts", _sheet(EXPERT_COLUMNS, [row])).status_code == 302
    job = _job()
    assert job.status.value == "failed" and "Excel" in _errors(job) and "第 2 行“身份证号码”" in _errors(job)
    assert _count(Expert) == experts


@pytest.mark.parametrize("cell, declares", [("√", True), ("否", False), (False, False), ("", False)])
def test_a_declaration_reads_ticks_crosses_and_booleans(world, login, cell, declares):
    from evalhub.registry.imports import FIRM_COLUMNS
    from evalhub.registry.models import Firm
    from tests.test_registry_views import firm_row, upload

    assert upload(login(world.bz_staff), "firms", _sheet(FIRM_COLUMNS, [firm_row(declares_no_major_violation=cell)])).status_code == 302
    job = _job()
    assert job.status.value == "succeeded", job.result
    assert db.session.get(Firm, job.result["ids"][0]).declares_no_major_violation is declares


def test_an_unknown_declaration_is_refused_naming_the_column(world, login):
    from evalhub.registry.imports import FIRM_COLUMNS
    from evalhub.registry.models import Firm
    from tests.test_registry_views import firm_row, upload

    firms = _count(Firm)
    assert upload(login(world.bz_staff), "firms", _sheet(FIRM_COLUMNS, [firm_row(declares_no_major_violation="待定")])).status_code == 302
    job = _job()
    assert job.status.value == "failed" and "近三年无重大违规承诺" in _errors(job) and "待定" in _errors(job)
    assert _count(Firm) == firms


def test_an_import_over_the_row_cap_is_refused(world, login, monkeypatch):
    """Firms, experts and plan items stop at the same cap as the organisations import (core.workbooks.MAX_ROWS)."""
    from evalhub.core import workbooks
    from evalhub.registry.imports import FIRM_COLUMNS
    from evalhub.registry.models import Firm
    from tests.test_registry_views import firm_row, upload

    monkeypatch.setattr(workbooks, "MAX_ROWS", 2)
    firms = _count(Firm)
    assert upload(login(world.bz_staff), "firms", _sheet(FIRM_COLUMNS, [firm_row() for _ in range(3)])).status_code == 302
    job = _job()
    assert job.status.value == "failed" and "超过 2 行，请分批导入" in job.message
    assert _count(Firm) == firms


def test_a_unique_violation_while_writing_names_the_row_and_writes_nothing(world, login, monkeypatch):
    """The safety net behind the duplicate check: a clash the checks did not see (here: the check switched off) is
    named by its row in Chinese, nothing of the file kept, no SQL on the page."""
    from evalhub.registry import imports
    from evalhub.registry.models import Firm
    from tests.test_registry_views import firm_row, upload

    keys = iter(range(10))
    monkeypatch.setattr(imports, "_duplicate_key", lambda text, stored: str(next(keys)))
    code = factories.uscc()
    firms = _count(Firm)
    rows = [firm_row(uscc=code), firm_row(uscc=code, name="同码评价咨询有限公司")]
    assert upload(login(world.bz_staff), "firms", _sheet(imports.FIRM_COLUMNS, rows)).status_code == 302
    job = _job()
    assert job.status.value == "failed" and [e["row"] for e in job.result["errors"]] == [3]
    assert "统一社会信用代码" in _errors(job) and "INSERT" not in str(job.result) + job.message
    assert _count(Firm) == firms


def test_the_templates_format_codes_and_phones_as_text(world, login):
    response = login(world.bz_staff).get("/imports/firms/template")
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).worksheets[0]
    header = [c.value for c in sheet[1]]
    for name in ("统一社会信用代码", "联系电话"):
        letter = openpyxl.utils.get_column_letter(header.index(name) + 1)
        assert sheet.column_dimensions[letter].number_format == "@" and sheet[f"{letter}2"].number_format == "@"


def test_a_failed_job_says_so_in_chinese_and_logs_the_error(world, caplog):
    from evalhub.core import jobs

    @jobs.job_kind("test.database_error")
    def _fails(job, report):
        raise sa.exc.IntegrityError("INSERT INTO firm (uscc) VALUES (?)", ("91652800MA0000000X",), Exception("UNIQUE"))

    with caplog.at_level(logging.ERROR, logger="evalhub.core.jobs"):
        job = jobs.submit("test.database_error", "出错", {}, actor=world.bz_admin, bureau_id=world.bz.id)
    assert job.status.value == "failed" and job.message.startswith("任务出错：")
    assert "INSERT" not in job.message + str(job.result) and "91652800MA0000000X" not in job.message + str(job.result)
    assert "INSERT INTO firm" in caplog.text


def test_to_xlsx_writes_dates_and_beijing_times_as_excel_dates():
    from evalhub.core.exports import to_xlsx

    data = to_xlsx([{"日期": date(2026, 3, 1), "时间": datetime(2026, 3, 1, 1, 30, tzinfo=timezone.utc), "空": None}])
    sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    assert sheet["A2"].value == datetime(2026, 3, 1) and sheet["A2"].number_format == "yyyy-mm-dd"
    assert sheet["B2"].value == datetime(2026, 3, 1, 9, 30) and sheet["B2"].number_format == "yyyy-mm-dd hh:mm"


def test_the_audit_log_export_says_when_it_is_cut(world, login, monkeypatch):
    from evalhub.core import views

    monkeypatch.setattr(views, "AUDIT_EXPORT_LIMIT", 2)
    for _ in range(3):  # three events of 巴州 at least
        factories.firm(world.bz)
    db.session.commit()
    response = login(world.bz_admin).get("/audit?export=xlsx")
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.data))
    assert book.worksheets[0].max_row == 3 and "说明" in book.sheetnames
    assert "超过 2 条" in book["说明"]["A2"].value
    assert isinstance(book.worksheets[0]["B2"].value, datetime)


def test_the_organisations_import_names_the_excel_row_after_a_blank_row(world, login):
    from evalhub.core.organisations import read_workbook

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "预算单位"
    sheet.append(["财政局区划代码", "单位名称", "统一社会信用代码", "上级单位名称"])
    sheet.append([world.bz.code, "巴州数据局", None, None])
    sheet.append([None, None, None, None])
    sheet.append([int(world.bz.code), "巴州数据中心", None, "巴州数据局"])
    _, units = read_workbook(_save(workbook))
    assert [(u["row"], u["bureau_code"]) for u in units] == [(2, world.bz.code), (4, world.bz.code)]
