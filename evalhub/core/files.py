"""Stored files: content-addressed by sha256 under the instance folder, typed by content, text extracted once.

Every upload — web form, API, CLI, demo, job — goes through ``store``, which refuses with a Chinese
``ValidationFailed`` before anything is kept:

* the type comes from the bytes, never from the name: a PDF starts with ``%PDF-``; a .docx is a zip holding
  ``[Content_Types].xml`` and ``word/document.xml``; an .xlsx one holding ``[Content_Types].xml`` and
  ``xl/workbook.xml``; text is text (no NUL, decodable); any other zip is a zip archive (.zip: scans packed
  together), taken only where the caller allows "zip". A 0-byte file is refused, never dropped.
* a zip (.docx, .xlsx, .zip) is checked as a possible zip bomb **before** any library reads it: the end record's
  entry count and directory size (before ``zipfile`` turns every entry into an object), then the declared
  sizes, methods and compression ratios, then every entry is inflated in 256 KiB pieces — nothing kept —
  with hard caps on the running total and ratio, and the result must match what the directory declared
  (size, CRC, end of stream), so a directory that lies is caught while streaming. A bomb costs the worker
  a few milliseconds and no memory beyond the upload itself.
* text is extracted (python-docx, pdfplumber) in a child process with a time and an address-space limit
  (``core.extract``); a document that is merely slow or huge to parse is refused when it runs out.
* the blob is written to a staging folder first and moved into the store only when the database
  transaction that recorded it commits; a refused upload, or a request that fails at a later step, leaves
  neither a blob nor a row.

A file kept only for a job (an Excel import's workbook: identity numbers, phones in clear) is removed when the
job ends (``discard``, called by ``core.jobs``): its row, and its blob unless a row still names the content.

Limits (settings, see config.py): ``MAX_UPLOAD_MB`` (the upload), ``FILE_UNZIPPED_MAX_MB`` (a zip's
content in total), ``FILE_ZIP_MAX_ENTRIES``, ``FILE_ZIP_MAX_RATIO``, ``FILE_EXTRACT_SECONDS``,
``FILE_EXTRACT_MEMORY_MB``.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import struct
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from evalhub.core import extract
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import StoredFile, User
from evalhub.extensions import db

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "txt": "text/plain; charset=utf-8",
    "png": "image/png",
    "jpg": "image/jpeg",
    "zip": "application/zip",
}
KIND_LABELS = {"pdf": "PDF", "docx": "Word (.docx)", "xlsx": "Excel (.xlsx)", "txt": "文本 (.txt)",
               "png": "PNG 图片", "jpg": "JPEG 图片", "zip": "ZIP 压缩包 (.zip)"}
EXTENSIONS = {"pdf": "pdf", "docx": "docx", "xlsx": "xlsx", "txt": "txt", "png": "png", "jpg": "jpg", "jpeg": "jpg",
              "zip": "zip"}
DOCUMENT_KINDS = ("pdf", "docx", "txt")
LICENCE_KINDS = ("pdf", "png", "jpg")

DEFAULTS = {
    "MAX_UPLOAD_MB": 50,
    "FILE_UNZIPPED_MAX_MB": 200,     # a 50 MB Word file of photos and a 500-page text unpacks to well under this
    "FILE_ZIP_MAX_ENTRIES": 2000,    # a report has 20–200 parts; one per picture
    "FILE_ZIP_MAX_RATIO": 100,       # Word/Excel XML deflates 5–30:1; a bomb 1000:1 (Apache POI uses 100:1 too)
    "FILE_EXTRACT_SECONDS": 20,      # below gunicorn's 30 s; python-docx reads a 300-page report in 1–3 s
    "FILE_EXTRACT_MEMORY_MB": 1024,  # the extracting child's address space beyond its start
    "FILE_EXTRACT_ISOLATED": True,   # False: extract in-process, without the time and memory limits
}
RATIO_GRACE = 1024 * 1024            # the ratio applies once an entry has unpacked to more than this
MAX_CENTRAL_DIRECTORY = 512 * 1024   # bytes of zip directory parsed at most (2000 entries need ~150 KB)
_IN_CHUNK = 64 * 1024
_OUT_CHUNK = 256 * 1024


def _setting(name: str):
    if has_app_context():
        return current_app.config.get(name, DEFAULTS[name])
    return DEFAULTS[name]


def _refuse(message: str, field: str = "文件不符合要求") -> ValidationFailed:
    return ValidationFailed(message, {"file": field})


# --- type by content -----------------------------------------------------------------------------------

def _magic_kind(data: bytes) -> str | None:
    """pdf, png, jpg or zip from the first bytes; None when there is no known signature."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    return None


def decode_text(data: bytes) -> tuple[str, str] | None:
    """Decode plain text written in UTF-8 (with or without BOM) or GB18030/GBK, as Chinese offices do."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        return None
    return str(best), best.encoding


def _claimed_kind(filename: str) -> str | None:
    _, dot, ext = (filename or "").rpartition(".")
    return EXTENSIONS.get(ext.lower()) if dot else None


def _label(kind: str) -> str:
    # a kind without a label still gives a message: a refusal is never a 500
    return KIND_LABELS.get(kind, f".{kind}")


def _wrong_type(filename: str, kind: str | None, allowed: tuple[str, ...], found: str | None = None) -> ValidationFailed:
    wanted = "、".join(_label(k) for k in allowed)
    found = found or (_label(kind) if kind else "无法识别的格式")
    claimed = _claimed_kind(filename)
    hint = ""
    if claimed is not None and claimed != kind:
        hint = f"（文件名是 .{filename.rpartition('.')[2]}，内容却不是 {_label(claimed)}）"
    return _refuse(f"文件类型不符：只接受 {wanted}，上传的文件实际是 {found}{hint}。", "文件类型不符")


# --- zip bombs -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ZipLimits:
    total: int     # bytes unpacked, all entries together
    entries: int
    ratio: int

    @classmethod
    def current(cls) -> "ZipLimits":
        return cls(total=int(_setting("FILE_UNZIPPED_MAX_MB")) * 1024 * 1024,
                   entries=int(_setting("FILE_ZIP_MAX_ENTRIES")), ratio=int(_setting("FILE_ZIP_MAX_RATIO")))


def _bomb(limits: ZipLimits, what: str) -> ValidationFailed:
    return _refuse(f"文件解压后异常庞大（{what}），疑似“压缩炸弹”，已拒收。正常的 Word/Excel 文件或资料压缩包解压后不超过 "
                   f"{limits.total // (1024 * 1024)} MB、压缩比不超过 {limits.ratio}:1；请检查文件后重新上传。", "疑似压缩炸弹")


def _tampered(entry: str) -> ValidationFailed:
    return _refuse(f"文件已损坏或被篡改：压缩包中“{entry}”的实际内容与目录登记的不符，已拒收。", "文件已损坏")


def _end_record(data: bytes) -> tuple[int, int]:
    """(entries, directory size) as the zip's end record declares them, found exactly as ``zipfile`` finds
    it, so that the directory ``zipfile`` will parse is the one measured here."""
    size = len(data)
    if size >= 22 and data[-22:-18] == b"PK\x05\x06" and data[-2:] == b"\x00\x00":
        pos = size - 22
    else:
        pos = data.rfind(b"PK\x05\x06", max(0, size - (1 << 16) - 22))
        if pos < 0 or pos + 22 > size:
            raise zipfile.BadZipFile("no end record")
    _, _, _, _, entries, directory_size, _, _ = struct.unpack("<4s4H2LH", data[pos:pos + 22])
    if pos >= 20 and data[pos - 20:pos - 16] == b"PK\x06\x07":  # zip64: the real figures are in its own record
        record = data[pos - 76:pos - 20]
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            fields = struct.unpack("<4sQ2H2L4Q", record)
            entries, directory_size = fields[7], fields[8]
    return entries, directory_size


def _zip_kind(data: bytes, limits: ZipLimits) -> tuple[str | None, list[zipfile.ZipInfo]]:
    """docx, xlsx or None (a zip, but neither) — after checking what the directory declares. Reads no
    entry. Raises ValidationFailed for a declared bomb; BadZipFile when it is no zip at all."""
    entries, directory_size = _end_record(data)
    if entries > limits.entries:
        raise _refuse(f"压缩包内的文件过多（{entries} 个，上限 {limits.entries} 个），不像正常的 Word/Excel 文件或资料压缩包，已拒收。",
                      "文件过多")
    if directory_size > MAX_CENTRAL_DIRECTORY:
        raise _refuse(f"压缩包的目录异常庞大（{directory_size // 1024} KB，上限 {MAX_CENTRAL_DIRECTORY // 1024} KB），"
                      f"不像正常的 Word/Excel 文件或资料压缩包，已拒收。", "文件过多")
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    if len(infos) > limits.entries:
        raise _refuse(f"压缩包内的文件过多（{len(infos)} 个，上限 {limits.entries} 个），不像正常的 Word/Excel 文件或资料压缩包，已拒收。",
                      "文件过多")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise _refuse("文件已损坏或被篡改：压缩包中有重名的文件，已拒收。", "文件已损坏")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise _refuse("文件设置了打开密码（已加密），无法读取；请取消密码后重新上传。", "文件已加密")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _refuse("文件使用了不常见的压缩方式，无法读取；请用 Word/Excel 另存后重新上传。", "无法读取")
        if info.header_offset + info.compress_size > len(data):
            raise _tampered(info.filename)
        total += info.file_size
        if total > limits.total:
            raise _bomb(limits, f"登记的解压大小超过 {limits.total // (1024 * 1024)} MB")
        if info.file_size > RATIO_GRACE and info.file_size > limits.ratio * max(info.compress_size, 1):
            raise _bomb(limits, f"“{info.filename}”登记的压缩比为 {info.file_size // max(info.compress_size, 1)}:1")
    present = set(names)
    if "[Content_Types].xml" in present and "word/document.xml" in present:
        return "docx", infos
    if "[Content_Types].xml" in present and "xl/workbook.xml" in present:
        return "xlsx", infos
    return None, infos


def _stream_zip(data: bytes, infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    """Inflate every entry piece by piece, keeping nothing, with hard caps on what comes out; each entry
    must end exactly where, and be exactly what, the directory said (size, CRC)."""
    view = memoryview(data)
    total = 0
    for info in infos:
        offset = info.header_offset
        header = data[offset:offset + 30] if offset >= 0 else b""
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise _tampered(info.filename)
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        raw_name = data[offset + 30:offset + 30 + name_length]
        local_name = raw_name.decode("utf-8" if info.flag_bits & 0x800 else "cp437", errors="replace")
        if local_name != info.orig_filename:
            raise _tampered(info.filename)
        start = offset + 30 + name_length + extra_length
        end = start + info.compress_size
        if end > len(data):
            raise _tampered(info.filename)
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise _tampered(info.filename)
            produced, crc = info.file_size, zlib.crc32(view[start:end])
            total += produced
            if total > limits.total:
                raise _bomb(limits, f"实际解压超过 {limits.total // (1024 * 1024)} MB")
        else:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            produced = crc = 0
            position, pending, draining = start, b"", False
            while not inflater.eof:
                if pending or draining:
                    piece = pending
                elif position < end:
                    piece = view[position:min(position + _IN_CHUNK, end)]
                    position += len(piece)
                else:
                    break  # the compressed data ran out before the stream ended
                try:
                    out = inflater.decompress(piece, _OUT_CHUNK)
                except zlib.error:
                    raise _refuse(f"文件已损坏：压缩包中“{info.filename}”无法解压，请检查后重新上传。", "文件已损坏")
                pending = inflater.unconsumed_tail
                draining = len(out) == _OUT_CHUNK  # zlib may hold more output for input already taken
                produced += len(out)
                crc = zlib.crc32(out, crc)
                consumed = position - start - len(pending)
                if produced > info.file_size:
                    raise _tampered(info.filename)
                if total + produced > limits.total:
                    raise _bomb(limits, f"实际解压超过 {limits.total // (1024 * 1024)} MB")
                if produced > RATIO_GRACE and produced > limits.ratio * max(consumed, 1):
                    raise _bomb(limits, f"“{info.filename}”的实际压缩比超过 {limits.ratio}:1")
            if not inflater.eof:
                raise _refuse(f"文件已损坏：压缩包中“{info.filename}”不完整，请检查后重新上传。", "文件已损坏")
            if pending or position < end or inflater.unused_data:
                raise _tampered(info.filename)
            total += produced
        if produced != info.file_size:
            raise _tampered(info.filename)
        if crc != info.CRC:
            raise _refuse(f"文件已损坏：压缩包中“{info.filename}”校验失败，请检查后重新上传。", "文件已损坏")


def check_upload(filename: str, data: bytes, allowed: tuple[str, ...]) -> str:
    """The upload's kind (one of ``allowed``), or ValidationFailed saying in Chinese why it is refused."""
    name = os.path.basename((filename or "").replace("\\", "/"))
    if not data:
        raise _refuse(f"文件“{name}”是空的（0 字节），请检查后重新上传。" if name else "上传的文件是空的（0 字节），请检查后重新上传。",
                      "文件为空")
    limit_mb = _setting("MAX_UPLOAD_MB")
    if len(data) > limit_mb * 1024 * 1024:
        raise _refuse(f"文件超过 {limit_mb} MB 的大小限制。", "文件过大")
    kind = _magic_kind(data)
    if kind == "zip":
        limits = ZipLimits.current()
        try:
            kind, infos = _zip_kind(data, limits)
        except ValidationFailed:
            raise
        except Exception:  # noqa: BLE001 — zipfile's many ways of saying "this is no zip"
            raise _wrong_type(name, None, allowed)
        if kind is None or (kind not in allowed and "zip" in allowed):
            kind = "zip"  # a packed archive (or a Word/Excel file where only archives are taken)
        if kind not in allowed:
            raise _wrong_type(name, kind, allowed, found="ZIP 压缩包（不是 Word 或 Excel 文件）" if kind == "zip" else None)
        # inflated once, nothing kept, under the same caps: an archive's bomb is caught as a document's is
        _stream_zip(data, infos, limits)
        return kind
    if kind is None and data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # an OLE compound file
        raise _wrong_type(name, None, allowed, found="旧版 Office 文件（.doc/.xls）或设置了打开密码的文件，请另存为 .docx/.xlsx")
    if kind is None and b"\x00" not in data[:8192] and decode_text(data) is not None:
        kind = "txt"
    if kind is None or kind not in allowed:
        raise _wrong_type(name, kind, allowed)
    return kind


# --- text ------------------------------------------------------------------------------------------------

def _extracted(kind: str, data: bytes, path: Path) -> tuple[str | None, str | None]:
    if kind == "txt":
        decoded = decode_text(data)
        return (decoded[0].replace("\x00", ""), decoded[1]) if decoded else (None, None)
    if kind not in extract.PARSERS:
        return None, None
    return _read(kind, path).replace("\x00", ""), None  # PostgreSQL text holds no NUL


def _read(kind: str, path: Path) -> str:
    """What the child answers for the document at ``path`` (``extract.PARSERS``' text or ``extract.CHECKS``'s),
    within the limits of a text extraction; passing them, or a document it cannot read, is refused."""
    seconds, memory_mb = _setting("FILE_EXTRACT_SECONDS"), _setting("FILE_EXTRACT_MEMORY_MB")
    started = time.monotonic()
    try:
        return extract.extract(kind, str(path), seconds=seconds, memory_mb=memory_mb,
                               isolated=bool(_setting("FILE_EXTRACT_ISOLATED")))
    except extract.ExtractionError as exc:
        log.info("text extraction refused (%s %s) after %.1f s", exc.reason, exc.detail, time.monotonic() - started)
        if exc.reason == "timeout":
            raise _refuse(f"读取文件中的文字超过 {seconds} 秒仍未完成，文件可能过大或结构异常，已拒收；"
                          f"请精简后或另存为 PDF/Word 重新上传。", "读取超时")
        if exc.reason == "memory":
            raise _refuse(f"读取文件中的文字所需内存超过 {memory_mb} MB 的限制，文件可能过大或结构异常，已拒收；"
                          f"请精简后重新上传。", "文件过于复杂")
        raise _refuse("文件已损坏或无法读取，请检查后重新上传。", "文件无法读取")


def extract_text(kind: str, data: bytes) -> tuple[str | None, str | None]:
    """(text, encoding) of a document's bytes, with the same limits as an upload."""
    with tempfile.TemporaryDirectory(prefix="evalhub-extract-") as folder:
        path = Path(folder) / "document"
        path.write_bytes(data)
        return _extracted(kind, data, path)


def covered_pdf_pages(data: bytes) -> list[int]:
    """The pages of a PDF (numbered from 1) keeping text under a dark box (``extract.pdf_covered``: a failed
    redaction), read in the child with the limits of an upload's text extraction."""
    with tempfile.TemporaryDirectory(prefix="evalhub-extract-") as folder:
        path = Path(folder) / "document"
        path.write_bytes(data)
        return list(json.loads(_read("pdf-covered", path))["pages"])


# --- the store: staged, then moved in when the transaction commits -------------------------------------------

_PENDING = "evalhub.files.pending"   # session.info: sha256 -> _Staged, this transaction's new blobs
_PLACED = "evalhub.files.placed"     # session.info: blobs moved in by a commit that has not finished yet
_DISCARDED = "evalhub.files.discarded"  # session.info: sha256 of rows this transaction deleted (``discard``)


@dataclass
class _Staged:
    path: Path           # <store>/.staging/<folder>/<sha256>
    final: Path          # <store>/ab/cd/<sha256>
    record: StoredFile


def _root() -> Path:
    return Path(current_app.config["FILE_STORE"])


def _final_path(sha: str) -> Path:
    return _root() / sha[:2] / sha[2:4] / sha


def _path_for(sha: str) -> Path:
    final = _final_path(sha)
    if not final.exists():
        staged = db.session.info.get(_PENDING, {}).get(sha)
        if staged is not None:  # recorded in this transaction, not committed yet
            return staged.path
    return final


STAGING_HOURS = 24  # a staged upload older than this was left by a process that died mid-request


def _stage(sha: str, data: bytes) -> Path:
    staging = _root() / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - STAGING_HOURS * 3600
    for entry in os.scandir(staging):
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            pass
    folder = Path(tempfile.mkdtemp(dir=staging, prefix="upload-"))
    path = folder / sha
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _discard(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def _keep_until_commit(sha: str, path: Path, record: StoredFile) -> None:
    pending = db.session.info.setdefault(_PENDING, {})
    previous = pending.get(sha)
    if previous is not None and previous.path != path:
        _discard(previous.path)
    pending[sha] = _Staged(path, _final_path(sha), record)


@sa.event.listens_for(Session, "before_commit")
def _move_staged_blobs_in(session: Session) -> None:
    """Just before the outermost commit: the blobs of rows that are still part of the transaction go
    into the store (a blob without its row is harmless; a row without its blob is not); the blobs of
    rows undone by a savepoint rollback are dropped."""
    if session.in_nested_transaction():
        return
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    placed = session.info.setdefault(_PLACED, [])
    for staged in pending.values():
        state = sa.inspect(staged.record)
        if state.key is not None and not state.deleted and not state.was_deleted and not staged.final.exists():
            staged.final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged.path, staged.final)  # atomic: a reader never sees half a file
            placed.append(staged.final)
        _discard(staged.path)


@sa.event.listens_for(Session, "after_commit")
def _blobs_committed(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_PLACED, None)
        discarded = session.info.pop(_DISCARDED, None)
        if discarded:
            _unlink_unrecorded(discarded)


@sa.event.listens_for(Session, "after_transaction_end")
def _drop_uncommitted_blobs(session: Session, transaction) -> None:
    """The outermost transaction ended without committing (rollback, close, failed commit): what it
    staged or moved in goes."""
    if transaction.parent is not None:
        return
    for staged in session.info.pop(_PENDING, {}).values():
        _discard(staged.path)
    for path in session.info.pop(_PLACED, []):
        path.unlink(missing_ok=True)
    session.info.pop(_DISCARDED, None)  # the rows were not deleted after all: their blobs stay


@dataclass
class Upload:
    filename: str
    data: bytes


def digest(data: bytes) -> str:
    """The key the store keeps ``data`` under (``StoredFile.sha256``): a service asks whether the same file is on
    record already — the same upload submitted twice — before it stores anything."""
    return hashlib.sha256(data or b"").hexdigest()


def store(filename: str, data: bytes, *, allowed: tuple[str, ...], actor: User | None = None) -> StoredFile:
    """Check, extract and record one upload; its blob enters the store when the transaction commits.
    Raises ValidationFailed with a Chinese message, leaving nothing behind."""
    kind = check_upload(filename, data, allowed)
    sha = digest(data)
    # locked to be reused: a finished import discarding the same bytes (``discard``) is waited for, not raced
    existing = db.session.execute(sa.select(StoredFile).where(StoredFile.sha256 == sha).with_for_update()).scalar_one_or_none()
    if existing is not None:
        if not _path_for(sha).exists():  # restore the blob if the store was cleaned
            _keep_until_commit(sha, _stage(sha, data), existing)
        return existing
    path = _stage(sha, data)
    try:
        text, encoding = _extracted(kind, data, path)
        name = os.path.basename((filename or "").replace("\\", "/")) or f"upload.{kind}"
        record = StoredFile(
            sha256=sha, size=len(data), content_type=CONTENT_TYPES[kind], kind=kind, original_name=name[:255],
            text=text, text_encoding=encoding, uploaded_by_id=actor.id if actor else None,
        )
        db.session.add(record)
        db.session.flush()
    except BaseException:
        _discard(path)
        raise
    _keep_until_commit(sha, path, record)
    return record


EVIDENCE_KINDS = DOCUMENT_KINDS + ("png", "jpg")


def store_evidence(uploads: Iterable[tuple[str, bytes]], *, actor: User | None, field: str = "evidence",
                   allowed: tuple[str, ...] = EVIDENCE_KINDS) -> list[StoredFile]:
    """Store every file of a set of supporting documents (证明材料: an objection's, a challenge's). Each file
    chosen is checked — an empty one is refused, not dropped — and a refusal names the set under ``field``."""
    stored = []
    for name, data in uploads:
        try:
            stored.append(store(name, data, allowed=allowed, actor=actor))
        except ValidationFailed as exc:
            raise ValidationFailed(f"证明材料：{exc.message}", {field: exc.message}) from exc
    return stored


def read(record: StoredFile) -> bytes:
    return _path_for(record.sha256).read_bytes()


def blob_path(record: StoredFile) -> Path:
    return _path_for(record.sha256)


# --- discarding a file nothing needs any more ------------------------------------------------------------------

def _references() -> list[sa.Column]:
    """Every column that names a stored file (a foreign key to ``stored_file.id``), in every module's tables."""
    target = StoredFile.__table__
    return [fk.parent for table in db.metadata.tables.values() for fk in table.foreign_keys
            if fk.column.table is target]


def _id_lists() -> list[sa.Column]:
    """Every JSON column holding a list of stored files' ids (marked ``info={"stored_file_ids": True}``)."""
    return [column for table in db.metadata.tables.values() for column in table.columns
            if column.info.get("stored_file_ids")]


def _names_in_list(column: sa.Column, file_id: int) -> sa.ColumnElement[bool]:
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return sa.cast(column, JSONB).contains([file_id])
    members = sa.func.json_each(column).table_valued("value")
    return sa.exists(sa.select(sa.literal(1)).select_from(members).where(members.c.value == file_id))


def referenced(record: StoredFile) -> bool:
    """Whether any row names the stored file, by a foreign key or in a list of ids. The store keeps one row per
    content (``store`` hands back the existing row for the same bytes), so the same row may serve uploads of
    different purposes."""
    wheres = [(column.table, column == record.id) for column in _references()]
    wheres += [(column.table, _names_in_list(column, record.id)) for column in _id_lists()]
    return any(db.session.execute(sa.select(sa.literal(1)).select_from(table).where(where).limit(1)).first()
               is not None for table, where in wheres)


def discard(record: StoredFile) -> bool:
    """Delete a stored file that was kept only for a while (an Excel import's workbook, read by its job): its
    row now, its blob once the transaction commits — unless a row still names it (the same bytes uploaded for
    another purpose), when it stays. Returns whether it goes. A backup taken meanwhile skips it
    (``core.backup``)."""
    if referenced(record):
        return False
    sha = record.sha256
    staged = db.session.info.get(_PENDING, {}).pop(sha, None)
    if staged is not None:  # stored and discarded in one transaction: never moved in
        _discard(staged.path)
    db.session.delete(record)
    db.session.flush()
    db.session.info.setdefault(_DISCARDED, []).append(sha)
    return True


def _unlink_unrecorded(shas: list[str]) -> None:
    """Remove the blobs of rows deleted by the commit just made — unless a row of the same content was recorded
    since by another transaction (its blob is the same file)."""
    with db.engine.connect() as connection:
        recorded = set(connection.execute(sa.select(StoredFile.sha256).where(StoredFile.sha256.in_(shas))).scalars())
    for sha in shas:
        if sha not in recorded:
            try:
                _final_path(sha).unlink(missing_ok=True)
            except OSError:  # the row is gone: a blob left behind is unreachable, not served
                log.warning("could not remove the discarded blob %s", sha[:12])

