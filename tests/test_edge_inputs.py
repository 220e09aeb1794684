"""The edges a form does not guard: bureau settings (NaN, control characters), Excel imports run as jobs
(column lengths, control characters, a long file name), the organisations import (the upload checks every other
upload passes, the name rules), and the CLI (a year the web refuses, numbers past what the database holds)."""
from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from evalhub.extensions import db
from tests import factories


def text(response) -> str:
    return response.get_data(as_text=True)


def count(model) -> int:
    db.session.rollback()
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


# --- bureau settings -------------------------------------------------------------------------------

def test_bureau_settings_refuse_nan_for_a_decimal_setting(world, login):
    from evalhub.core.models import BureauSetting

    client = login(world.bz_admin)
    response = client.post(f"/bureaus/{world.bz.id}/settings", data={"results.cut_percent": "nan"})
    assert response.status_code == 422, response.status_code
    assert count(BureauSetting) == 0


def test_bureau_settings_refuse_control_characters_in_a_lines_setting(world, login):
    from evalhub.core.models import BureauSetting

    client = login(world.bz_admin)
    chapters = "\n".join(["基本情况\x00", "绩效评价工作开展情况", "综合评价情况及评价结论"])
    response = client.post(f"/bureaus/{world.bz.id}/settings", data={"review.report_chapters": chapters})
    assert response.status_code == 422, response.status_code
    assert "控制字符" in text(response)
    assert count(BureauSetting) == 0


# --- Excel imports of the registry (a job: no form between the file and the service) ----------------

def _import(client, kind, columns, rows):
    from evalhub.core.models import Job
    from tests.test_registry_views import upload, xlsx

    response = upload(client, kind, xlsx(columns, rows))
    assert response.status_code == 302, text(response)[:300]
    return db.session.execute(sa.select(Job).order_by(Job.id.desc())).scalars().first()


def test_a_firm_import_refuses_an_e_mail_longer_than_its_column(world, login):
    """Firm.contact_email is String(120): the service bounds it, as the form and the API do, so an import names the
    row (on PostgreSQL the job once died at the INSERT with a driver error)."""
    from evalhub.registry.imports import FIRM_COLUMNS
    from evalhub.registry.models import Firm
    from tests.test_registry_views import firm_row

    client = login(world.bz_staff)
    firms = count(Firm)
    job = _import(client, "firms", FIRM_COLUMNS, [firm_row(contact_email="a" * 200 + "@example.cn")])
    assert job.status.value == "failed", job.result
    assert job.result["errors"][0]["row"] == 2
    assert count(Firm) == firms


def test_an_expert_import_refuses_a_phone_and_e_mail_longer_than_their_columns(world, login):
    """Expert.phone is String(30), Expert.email String(120): bounded by the service, for the import too."""
    from evalhub.registry.imports import EXPERT_COLUMNS
    from evalhub.registry.models import Expert

    client = login(world.lt_staff)
    experts = count(Expert)
    row = {"name": "导入专家甲", "id_number": factories.id_number(birth="19680101"), "employer": "轮台县人民医院",
           "title": "中级", "degree": "本科", "years_in_field": "15", "birth_year": "1968", "fields": "医疗卫生",
           "phone": "0996-" + "1" * 60, "email": "b" * 200 + "@example.cn"}
    job = _import(client, "experts", EXPERT_COLUMNS, [row])
    assert job.status.value == "failed", job.result
    assert count(Expert) == experts


def test_a_firm_import_refuses_control_characters_in_the_address(world, login):
    """A C1 control (U+009B, the terminal's CSI) is legal in an .xlsx (XML 1.0) and refused on every other path
    (core.inputs); the import refuses it too, naming the row and the column."""
    from evalhub.registry.imports import FIRM_COLUMNS
    from evalhub.registry.models import Firm
    from tests.test_registry_views import firm_row

    client = login(world.bz_staff)
    firms = count(Firm)
    job = _import(client, "firms", FIRM_COLUMNS, [firm_row(address="新疆库尔勒市\x9b31m天山东路 2 号")])
    assert job.status.value == "failed", job.result
    assert count(Firm) == firms


def test_an_import_with_a_long_file_name_does_not_overflow_the_job_title(world, login):
    """Job.title is String(200); the import names its job "批量导入机构：<file name>", and a file name may be 255
    characters: the title is cut to its column (on PostgreSQL the INSERT once failed: a 500 for a valid file)."""
    from evalhub.core.models import Job
    from evalhub.registry.imports import FIRM_COLUMNS
    from tests.test_registry_views import firm_row, xlsx

    client = login(world.bz_staff)
    name = "巴州" + "第三方机构名录" * 34 + ".xlsx"  # 245 characters
    response = client.post("/imports/firms", data={"file": (io.BytesIO(xlsx(FIRM_COLUMNS, [firm_row()])), name)},
                           content_type="multipart/form-data")
    assert response.status_code in (302, 422), response.status_code
    for title in db.session.execute(sa.select(Job.title)).scalars():
        assert len(title) <= Job.__table__.c.title.type.length, len(title)


# --- the organisations import: the upload checks and the name rules ------------------------------------------

def _xlsx_bomb(megabytes: int) -> bytes:
    """A real workbook (sheet 预算单位, one good row) whose sheet XML carries ``megabytes`` MB of whitespace:
    ~1000:1, the shape core.files refuses as a zip bomb on every other upload."""
    import zipfile

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "预算单位"
    ws.append(["财政局区划代码", "单位名称", "统一社会信用代码", "上级单位名称"])
    ws.append(["652800", "巴州统计局普查中心", "", ""])
    plain = io.BytesIO()
    wb.save(plain)
    source = zipfile.ZipFile(io.BytesIO(plain.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as package:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename != "xl/worksheets/sheet1.xml":
                package.writestr(info.filename, data)
                continue
            head, tail = data.split(b"</sheetData>")
            with package.open(info.filename, "w") as part:
                part.write(head)
                for _ in range(megabytes):
                    part.write(b" " * (1 << 20))
                part.write(b"</sheetData>" + tail)
    return out.getvalue()


def test_an_xlsx_bomb_is_refused_by_the_organisations_import(world, login):
    """core/files.py: "Every upload — web form, API, CLI, demo, job — goes through" the upload checks (type by
    content, zip-bomb limits before any library reads it). The organisations import once handed the raw bytes to
    pandas: a 20 KB file inflating to 20 MB was imported."""
    from evalhub.core.models import BudgetUnit

    bomb = _xlsx_bomb(20)
    units = count(BudgetUnit)
    client = login(world.bz_admin)
    response = client.post("/organisations/import", data={"file": (io.BytesIO(bomb), "单位.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 422, response.status_code
    assert "压缩炸弹" in text(response)
    assert count(BudgetUnit) == units


@pytest.mark.parametrize("name", ["巴州\u202e心中查普局计统", "巴州统计局\u200b普查中心", "巴州统计局\x9b普查中心"])
def test_the_organisations_import_refuses_invisible_and_control_characters_in_names(world, login, name):
    """A budget unit's name is shown on plans, engagements, public reports and OCDS, and plan imports find units by
    it: the organisations import applies the name rules of every other name (no U+202E, no zero-width space, no
    control character)."""
    from evalhub.core.models import BudgetUnit
    from tests.test_organisations import _workbook

    units = count(BudgetUnit)
    client = login(world.bz_admin)
    rows = [{"财政局区划代码": "652800", "单位名称": name, "统一社会信用代码": "", "上级单位名称": ""}]
    response = client.post("/organisations/import", data={"file": (io.BytesIO(_workbook([], rows)), "单位.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 422, response.status_code
    assert count(BudgetUnit) == units


# --- the CLI -----------------------------------------------------------------------------------------

def test_the_cli_credit_compute_refuses_a_year_the_web_refuses(app, world):
    """A year can be rated from 2000 to this year (credit.services.check_year, the web's rule too): the CLI once
    wrote draft ratings and an audit event for next year."""
    from evalhub.core.models import AuditEvent
    from evalhub.core.timeutil import beijing_today
    from evalhub.credit.models import CreditRating

    next_year = beijing_today().year + 1
    factories.contracted(world, year=next_year)
    db.session.commit()
    events = count(AuditEvent)
    result = app.test_cli_runner().invoke(args=["evalhub", "credit", "compute", "--bureau", "652800",
                                                "--year", str(next_year)])
    assert result.exit_code == 1, result.output
    assert count(CreditRating) == 0
    assert count(AuditEvent) == events


@pytest.mark.parametrize("args", [["draws", "verify", "99999999999999999999"],
                                  ["credit", "compute", "--bureau", "652800", "--year", "99999999999999999999"]])
def test_the_cli_answers_a_huge_number_with_a_message_not_a_traceback(app, world, args):
    """A number past what the database holds is refused in Chinese (exit 2), not an OverflowError's traceback."""
    result = app.test_cli_runner().invoke(args=["evalhub", *args])
    assert not isinstance(result.exception, OverflowError), repr(result.exception)
    assert result.exit_code in (1, 2) and result.output.strip(), (result.exit_code, result.output)
