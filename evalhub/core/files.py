"""Stored files: content-addressed by sha256 under the instance folder, typed by content, text extracted once."""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from evalhub.core.errors import ValidationFailed
from evalhub.core.models import StoredFile, User
from evalhub.extensions import db

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "txt": "text/plain; charset=utf-8",
    "png": "image/png",
    "jpg": "image/jpeg",
}
KIND_LABELS = {"pdf": "PDF", "docx": "Word (.docx)", "xlsx": "Excel (.xlsx)", "txt": "文本 (.txt)",
               "png": "PNG 图片", "jpg": "JPEG 图片"}
DOCUMENT_KINDS = ("pdf", "docx", "txt")
LICENCE_KINDS = ("pdf", "png", "jpg")


def detect_kind(data: bytes) -> str | None:
    """The file's real type from its bytes; the name the uploader gave it is not trusted."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except zipfile.BadZipFile:
            return None
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        return None
    if b"\x00" in data[:8192]:
        return None
    return "txt" if decode_text(data) is not None else None


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


def extract_text(kind: str, data: bytes) -> tuple[str | None, str | None]:
    if kind == "txt":
        decoded = decode_text(data)
        return (decoded[0], decoded[1]) if decoded else (None, None)
    if kind == "docx":
        import docx

        document = docx.Document(io.BytesIO(data))
        lines = [p.text for p in document.paragraphs]
        for table in document.tables:  # tables kept as rows of tab-separated cells
            for row in table.rows:
                lines.append("\t".join(cell.text.strip() for cell in row.cells))
        return "\n".join(lines), None
    if kind == "pdf":
        import pdfplumber

        with pdfplumber.open(io.BytesIO(data)) as pdf:
            return "\n".join((page.extract_text() or "") for page in pdf.pages), None
    return None, None


def _path_for(sha: str) -> Path:
    root = Path(current_app.config["FILE_STORE"])
    return root / sha[:2] / sha[2:4] / sha


@dataclass
class Upload:
    filename: str
    data: bytes


def store(filename: str, data: bytes, *, allowed: tuple[str, ...], actor: User | None = None) -> StoredFile:
    """Check, store and extract one upload. Raises ValidationFailed with a Chinese message."""
    limit_mb = current_app.config["MAX_UPLOAD_MB"]
    if not data:
        raise ValidationFailed("上传的文件是空的。", {"file": "文件为空"})
    if len(data) > limit_mb * 1024 * 1024:
        raise ValidationFailed(f"文件超过 {limit_mb} MB 的大小限制。", {"file": "文件过大"})
    kind = detect_kind(data)
    if kind is None or kind not in allowed:
        wanted = "、".join(KIND_LABELS[k] for k in allowed)
        found = KIND_LABELS.get(kind, "无法识别的格式") if kind else "无法识别的格式"
        raise ValidationFailed(f"文件类型不符：只接受 {wanted}，上传的文件实际是 {found}。", {"file": "文件类型不符"})
    sha = hashlib.sha256(data).hexdigest()
    existing = db.session.execute(sa.select(StoredFile).where(StoredFile.sha256 == sha)).scalar_one_or_none()
    if existing is not None:
        _write_blob(sha, data)  # restore the blob if the store was cleaned
        return existing
    try:
        text, encoding = extract_text(kind, data)
    except Exception as exc:  # a corrupt document is the uploader's problem, said plainly
        raise ValidationFailed(f"文件已损坏或无法读取（{type(exc).__name__}），请检查后重新上传。",
                               {"file": "文件无法读取"}) from exc
    _write_blob(sha, data)
    record = StoredFile(
        sha256=sha, size=len(data), content_type=CONTENT_TYPES[kind], kind=kind,
        original_name=os.path.basename(filename or f"upload.{kind}")[:255],
        text=text, text_encoding=encoding, uploaded_by_id=actor.id if actor else None,
    )
    db.session.add(record)
    db.session.flush()
    return record


def _write_blob(sha: str, data: bytes) -> None:
    path = _path_for(sha)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def read(record: StoredFile) -> bytes:
    return _path_for(record.sha256).read_bytes()


def blob_path(record: StoredFile) -> Path:
    return _path_for(record.sha256)
