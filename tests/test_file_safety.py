"""Hostile uploads (issue 11, Files).

A zip bomb (.docx or .xlsx) and a zip whose directory lies about its sizes are refused before anything
reads them, in bounded time and worker memory, with a Chinese 4xx message; text extraction is bounded in
time and memory (a child process); the type comes from the content (a text file renamed .docx is no
technical file; a .docx is a Word package); a 0-byte evidence file is refused, not dropped; and a refused
upload — or a request refused at a later step — leaves no blob on disk and no row.

The bombs are built here with zipfile at level 9, written in 1 MiB pieces: ~200 KB each, built once.
"""
from __future__ import annotations

import functools
import hashlib
import io
import struct
import time
import tracemalloc
import uuid
import zipfile
import zlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import Job, StoredFile, User
from evalhub.core.enums import Role
from evalhub.credit.models import CreditObjection
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement.models import Bid, EngagementState as S, PlanItem
from evalhub.review.models import Submission, SubmissionKind
from tests.test_api import assert_error
from tests.test_credit_views import _published
from tests.test_procurement_views import _consultation, _staff
from tests.test_review_api import _fieldwork, _report_form, _state, _upload

BOMB_MB = 200
SECONDS = 3.0                  # generous for a busy 2-core machine: the refusals take milliseconds
PEAK_BYTES = 50 * 1024 * 1024  # Python allocations while the request runs (the old code read 200 MB into one)

CONTENT_TYPES = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                 b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                 b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                 b'<Default Extension="xml" ContentType="application/xml"/>'
                 b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                 b'wordprocessingml.document.main+xml"/></Types>')
RELS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'officeDocument" Target="word/document.xml"/></Relationships>')
W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
DOCUMENT_HEAD = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ' + W + b'><w:body>'
DOCUMENT_TAIL = b"</w:body></w:document>"
LIE_SIZE = 4096


def _package(main_part: str, write_main, **extra: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as package:
        package.writestr("[Content_Types].xml", CONTENT_TYPES)
        package.writestr("_rels/.rels", RELS)
        for name, data in extra.items():
            package.writestr(name.replace("__", "/"), data)
        with package.open(main_part, "w") as part:
            write_main(part)
    return buffer.getvalue()


def _whitespace(head: bytes, tail: bytes, megabytes: int):
    def write(part) -> None:
        part.write(head)
        block = b" " * (1 << 20)
        for _ in range(megabytes):
            part.write(block)
        part.write(tail)
    return write


@functools.lru_cache(maxsize=None)
def bomb_docx() -> bytes:
    """A valid Word package whose document.xml is 200 MB of whitespace: ~200 KB, ratio ~1000:1."""
    return _package("word/document.xml", _whitespace(DOCUMENT_HEAD, DOCUMENT_TAIL, BOMB_MB))


@functools.lru_cache(maxsize=None)
def bomb_xlsx() -> bytes:
    workbook = b'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"/>'
    head = b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    return _package("xl/worksheets/sheet1.xml", _whitespace(head, b"</sheetData></worksheet>", BOMB_MB),
                    xl__workbook_xml=workbook)


@functools.lru_cache(maxsize=None)
def lying_docx() -> bytes:
    """The bomb with its central directory saying document.xml is 4 KB (and giving the CRC of those first
    4 KB): every declared size and ratio looks harmless; only inflating the entry shows what it is."""
    data = bytearray(bomb_docx())
    name = b"word/document.xml"
    at = 0
    while True:
        at = data.index(b"PK\x01\x02", at + 1)
        (name_length,) = struct.unpack_from("<H", data, at + 28)
        if bytes(data[at + 46:at + 46 + name_length]) == name:
            break
    prefix = (DOCUMENT_HEAD + b" " * LIE_SIZE)[:LIE_SIZE]
    struct.pack_into("<L", data, at + 16, zlib.crc32(prefix))
    struct.pack_into("<L", data, at + 24, LIE_SIZE)
    return bytes(data)


def _docx(text: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _slow_docx(paragraphs: int = 100_000) -> bytes:
    """No bomb (deflates ~8:1, 0.5 MB) but 100,000 tiny paragraphs: python-docx's parse needs ~75 MB; reading
    the text (core.extract walks the XML, no paragraph objects) about 0.3 s per 100,000."""
    def write(part) -> None:
        part.write(DOCUMENT_HEAD)
        for i in range(paragraphs):
            part.write(b"<w:p><w:r><w:t>%d</w:t></w:r></w:p>" % (i * 7919))
        part.write(DOCUMENT_TAIL)
    return _package("word/document.xml", write)


def measured(call):
    """(result, seconds, peak bytes of Python allocations) of ``call()``."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = call()
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, elapsed, peak


def count(model, *where) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def blob(app, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return Path(app.config["FILE_STORE"]) / sha[:2] / sha[2:4] / sha


def assert_nothing_stored(app, data: bytes) -> None:
    db.session.rollback()
    assert not blob(app, data).exists(), "a refused upload left its blob in the store"
    staging = Path(app.config["FILE_STORE"]) / ".staging"
    assert not staging.exists() or not any(staging.iterdir()), list(staging.iterdir())
    sha = hashlib.sha256(data).hexdigest()
    assert db.session.execute(sa.select(StoredFile).where(StoredFile.sha256 == sha)).first() is None


def text(response) -> str:
    return response.get_data(as_text=True)


# --- zip bombs -----------------------------------------------------------------------------------------

def test_a_docx_bomb_through_the_api_is_refused_in_bounded_time_and_memory(app, client, world, auth):
    e = _fieldwork(world)
    headers = auth("firm1")
    bomb = bomb_docx()
    assert len(bomb) < 1024 * 1024
    response, seconds, peak = measured(lambda: _upload(client, e.id, headers, _report_form(bomb)))
    error = assert_error(response, 422, "validation_failed")
    assert "压缩炸弹" in error["message"] and "file" in error["fields"], error
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak)
    assert count(Submission, Submission.kind == SubmissionKind.REPORT) == 0 and _state(e.id) == S.FIELDWORK
    assert_nothing_stored(app, bomb)


def test_a_docx_bomb_as_a_bid_technical_file_is_refused_through_the_web_form(app, world, login):
    p = _consultation(world)
    staff = _staff(world.firm, "示范负责人")
    db.session.commit()
    client = login(world.firm_user)
    bomb = bomb_docx()
    response, seconds, peak = measured(lambda: client.post(f"/procurements/{p.id}/bid", data={
        "price_wan": "40", "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id),
        "technical_file": (io.BytesIO(bomb), "技术方案.docx")}, content_type="multipart/form-data"))
    assert response.status_code == 422 and "压缩炸弹" in text(response)
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak)
    assert count(Bid) == 0
    assert_nothing_stored(app, bomb)


def test_an_xlsx_bomb_import_is_refused_at_upload_and_no_job_runs(app, world, login):
    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    db.session.commit()
    client = login(world.bz_staff)
    bomb = bomb_xlsx()
    response, seconds, peak = measured(lambda: client.post(f"/plans/{plan.id}/import", data={
        "file": (io.BytesIO(bomb), "计划.xlsx")}, content_type="multipart/form-data"))
    assert response.status_code == 422 and "压缩炸弹" in text(response)
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak)
    assert count(Job) == 0 and count(PlanItem) == 0
    assert_nothing_stored(app, bomb)


def test_a_central_directory_that_lies_about_sizes_is_caught_while_streaming(app, world):
    lie = lying_docx()
    info = zipfile.ZipFile(io.BytesIO(lie)).getinfo("word/document.xml")
    assert info.file_size == LIE_SIZE and info.file_size < info.compress_size  # nothing declared looks like a bomb
    caught, seconds, peak = measured(lambda: pytest.raises(
        ValidationFailed, files.store, "报告.docx", lie, allowed=("docx",), actor=world.firm_user))
    message = caught.value.message
    assert "与目录登记的不符" in message and "word/document.xml" in message, message
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak)
    assert_nothing_stored(app, lie)


def test_zip_limits_count_entries_and_what_they_unpack_to(app, world):
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as package:
        package.writestr("[Content_Types].xml", CONTENT_TYPES)
        package.writestr("word/document.xml", DOCUMENT_HEAD + DOCUMENT_TAIL)
        for i in range(2001):
            package.writestr(f"word/media/{i}.png", b"")
    with pytest.raises(ValidationFailed) as caught:
        files.store("报告.docx", many.getvalue(), allowed=("docx",))
    assert "文件过多" in caught.value.message and "2000" in caught.value.message
    # an honest, not very compressed file is refused only beyond the total
    app.config["FILE_UNZIPPED_MAX_MB"] = 1
    try:
        big = _package("word/document.xml", lambda part: part.write(DOCUMENT_HEAD + b"<w:p/>" * 200_000 + DOCUMENT_TAIL))
        with pytest.raises(ValidationFailed) as caught:
            files.store("报告.docx", big, allowed=("docx",))
        assert "压缩炸弹" in caught.value.message and "1 MB" in caught.value.message
    finally:
        app.config["FILE_UNZIPPED_MAX_MB"] = 200
    assert count(StoredFile) == 0


# --- extraction limits ---------------------------------------------------------------------------------

def test_text_extraction_is_stopped_at_its_time_limit(app, world):
    warm = _docx(f"预热 {uuid.uuid4()}")  # the first extraction starts the child process
    assert "预热" in files.store("warm.docx", warm, allowed=("docx",)).text
    db.session.rollback()
    slow = _slow_docx(1_500_000)  # 7 MB: several seconds to read, however fast the machine
    app.config["FILE_EXTRACT_SECONDS"] = 1
    try:
        caught, seconds, peak = measured(lambda: pytest.raises(
            ValidationFailed, files.store, "报告.docx", slow, allowed=("docx",)))
    finally:
        app.config["FILE_EXTRACT_SECONDS"] = 20
    assert "超过 1 秒仍未完成" in caught.value.message, caught.value.message
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak)
    assert_nothing_stored(app, slow)
    # the next document is read as usual (a fresh child)
    assert "之后" in files.store("after.docx", _docx(f"之后 {uuid.uuid4()}"), allowed=("docx",)).text


def test_text_extraction_is_stopped_at_its_memory_limit(app, world):
    slow = _slow_docx()
    app.config["FILE_EXTRACT_MEMORY_MB"] = 40  # python-docx needs ~75 MB for this one
    try:
        # a small document fits (and starts the child with this limit)
        assert "小文件" in files.store("small.docx", _docx(f"小文件 {uuid.uuid4()}"), allowed=("docx",)).text
        db.session.rollback()
        caught, seconds, peak = measured(lambda: pytest.raises(
            ValidationFailed, files.store, "报告.docx", slow, allowed=("docx",)))
    finally:
        app.config["FILE_EXTRACT_MEMORY_MB"] = 1024
    assert "内存超过 40 MB" in caught.value.message, caught.value.message
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak)
    assert_nothing_stored(app, slow)


def test_a_large_worker_reuses_its_extraction_child(tmp_path):
    """A worker far above the child's recycle limit (a busy gunicorn worker, a test run) must still reuse its
    child: Linux carries the parent's peak memory into a child's ``ru_maxrss``, so measured that way every
    document started a fresh child (0.13 s each). Run in its own process, made large on purpose."""
    import subprocess
    import sys

    from evalhub.core import extract

    document = tmp_path / "a.docx"
    document.write_bytes(_docx("同一个子进程"))
    script = (
        "import sys; from evalhub.core import extract\n"
        f"ballast = b'x' * ({extract.RECYCLE_RSS_MB} + 100) * 2**20  # this process's peak, written\n"
        "pids = []\n"
        "for _ in range(3):\n"
        "    assert '同一个子进程' in extract.extract('docx', sys.argv[1], seconds=20, memory_mb=200)\n"
        "    pids.append(extract._idle[0].process.pid if extract._idle else None)\n"
        "print(pids)\n")
    done = subprocess.run([sys.executable, "-c", script, str(document)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    pids = eval(done.stdout.strip())  # noqa: S307 — our own script's list of ints
    assert pids[0] is not None and pids == [pids[0]] * 3, pids


# --- type by content -----------------------------------------------------------------------------------

def test_a_text_file_renamed_docx_is_no_bid_technical_file(app, world, login):
    p = _consultation(world)
    staff = _staff(world.firm, "示范负责人")
    db.session.commit()
    client = login(world.firm_user)
    plain = "技术方案：我们将认真完成评价工作。".encode()
    response = client.post(f"/procurements/{p.id}/bid", data={
        "price_wan": "40", "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id),
        "technical_file": (io.BytesIO(plain), "技术方案.docx")}, content_type="multipart/form-data")
    body = text(response)
    assert response.status_code == 422 and "文件类型不符" in body and "实际是 文本 (.txt)" in body
    assert "文件名是 .docx" in body
    assert count(Bid) == 0
    assert_nothing_stored(app, plain)


@pytest.mark.parametrize("name, build", [
    ("no content types", lambda: _zip({"word/document.xml": DOCUMENT_HEAD + DOCUMENT_TAIL})),
    ("another zip", lambda: _zip({"[Content_Types].xml": CONTENT_TYPES, "readme.txt": b"hello"})),
    ("a text file", lambda: "一、项目基本情况".encode()),
    ("binary", lambda: b"%PDX-1.4\x00\x01\x02 not a pdf"),
])
def test_a_docx_must_be_a_word_package_and_the_refusal_says_what_it_is(app, world, name, build):
    data = build()
    with pytest.raises(ValidationFailed) as caught:
        files.store("评价报告.docx", data, allowed=("docx", "pdf"))
    message = caught.value.message
    assert message.startswith("文件类型不符：只接受 Word (.docx)、PDF，上传的文件实际是 "), message
    assert "（文件名是 .docx，内容却不是 Word (.docx)）" in message, message
    assert_nothing_stored(app, data)


def _zip(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in parts.items():
            package.writestr(name, data)
    return buffer.getvalue()


# --- empty files ---------------------------------------------------------------------------------------

# Content no other test stores: the file store is content-addressed and outlives each test's rows.
RECEIPT = "邮寄回执（本测试专用）：2025-04-10 寄出实施方案两份。".encode()


def test_a_0_byte_evidence_file_is_refused_not_dropped(app, world, login):
    rating = _published(world)
    client = login(world.firm_user)
    response = client.post(f"/credit/ratings/{rating.id}/objections", content_type="multipart/form-data", data={
        "text": "合同履行得分有误：实施方案实际按期提交，附回执。",
        "evidence": [(io.BytesIO(RECEIPT), "回执.txt"), (io.BytesIO(b""), "扫描件.pdf")]})
    body = text(response)
    assert response.status_code == 422 and "扫描件.pdf" in body and "是空的（0 字节）" in body
    assert count(CreditObjection) == 0
    assert_nothing_stored(app, RECEIPT)


def test_a_0_byte_technical_file_does_not_silently_keep_the_old_one(app, world, login):
    p = _consultation(world)
    staff = _staff(world.firm, "示范负责人")
    db.session.commit()
    client = login(world.firm_user)
    form = {"price_wan": "40", "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id)}
    first = _docx(f"技术方案 {uuid.uuid4()}")
    response = client.post(f"/procurements/{p.id}/bid", content_type="multipart/form-data",
                           data={**form, "technical_file": (io.BytesIO(first), "技术方案.docx")})
    assert response.status_code == 302
    response = client.post(f"/procurements/{p.id}/bid", content_type="multipart/form-data",
                           data={**form, "price_wan": "39", "technical_file": (io.BytesIO(b""), "技术方案（修改）.docx")})
    assert response.status_code == 422 and "是空的（0 字节）" in text(response)
    db.session.rollback()
    bid = db.session.execute(sa.select(Bid)).scalar_one()
    assert bid.price == 400000 and bid.technical_file.sha256 == hashlib.sha256(first).hexdigest()


# --- nothing stored when refused -----------------------------------------------------------------------

def test_a_bid_refused_for_its_price_leaves_no_blob_and_no_row(app, world, login):
    p = _consultation(world)
    staff = _staff(world.firm, "示范负责人")
    db.session.commit()
    client = login(world.firm_user)
    plan = _docx(f"合格的技术方案 {uuid.uuid4()}")
    response = client.post(f"/procurements/{p.id}/bid", data={
        "price_wan": "60", "team_staff_ids": [str(staff.id)], "lead_staff_id": str(staff.id),
        "technical_file": (io.BytesIO(plan), "技术方案.docx")}, content_type="multipart/form-data")
    assert response.status_code == 422 and "超过最高限价" in text(response)
    assert count(Bid) == 0
    assert_nothing_stored(app, plan)


def test_a_report_refused_for_its_indicator_table_leaves_no_blob_and_no_row(app, client, world, auth):
    e = _fieldwork(world)
    report = _docx(f"一、基本情况 {uuid.uuid4()}")
    response = _upload(client, e.id, auth("firm1"), _report_form(report, concluded_total="abc"))
    assert "concluded_total" in assert_error(response, 422, "validation_failed")["fields"]
    assert count(Submission, Submission.kind == SubmissionKind.REPORT) == 0
    assert_nothing_stored(app, report)


def test_blobs_enter_the_store_only_when_their_transaction_commits(app, world):
    data = _docx(f"提交后才入库 {uuid.uuid4()}")
    record = files.store("a.docx", data, allowed=("docx",))
    assert files.read(record) == data and not blob(app, data).exists()  # readable in its transaction
    db.session.rollback()
    assert_nothing_stored(app, data)

    record = files.store("a.docx", data, allowed=("docx",))
    db.session.commit()
    assert blob(app, data).read_bytes() == data and files.blob_path(record) == blob(app, data)

    # a savepoint rolled back takes its upload with it
    other = _docx(f"保存点 {uuid.uuid4()}")
    with pytest.raises(RuntimeError):
        with db.session.begin_nested():
            files.store("b.docx", other, allowed=("docx",))
            raise RuntimeError("a later step fails")
    db.session.commit()
    assert not blob(app, other).exists()
    assert db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one() == 1


def test_a_commit_that_fails_takes_its_blobs_back(app, world):
    data = _docx(f"提交失败 {uuid.uuid4()}")
    files.store("a.docx", data, allowed=("docx",))
    db.session.add(User(username=world.bz_admin.username, display_name="重名", role=Role.BUREAU_STAFF,
                        password_hash="x", bureau_id=world.bz.id))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    assert_nothing_stored(app, data)
