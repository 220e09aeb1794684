"""Outside reference reports (外部公开报告): published evaluation reports a bureau imports so that uploads
are compared with them too. A firm that copies a report published in another province is caught although
that report was never uploaded to evalhub.

A reference is indexed for the copy features (the shared index, doc_id ``index.reference_doc_id``), shown
on cards as "外部公开报告 · 标题 · 地区 年度", and never anything else: not a submission, not in the queue,
not re-screened, not counted among the peers a rule score compares with.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import numpy as np
import sqlalchemy as sa

from evalhub.core import audit, files, permissions
from evalhub.core.errors import ValidationFailed
from evalhub.core.inputs import name_error
from evalhub.core.listing import as_int
from evalhub.core.models import User
from evalhub.extensions import db
from evalhub.procurement.models import ServiceKind
from evalhub.registry.models import Firm
from evalhub.review import services as review_services
from evalhub.review.models import SubmissionKind
from evalhub.screening import textproc
from evalhub.screening.index import SharedIndex, StoredReport, reference_doc_id, signature
from evalhub.screening.models import ReferenceDocument

REFERENCE_LABEL = "外部公开报告"
DOCUMENT_KINDS = ("docx", "pdf", "txt")
MAX_DOCUMENTS = 500  # one import; a province's published reports of a year fit several times over
# The metadata sheet: column title → field. Only 文件名 is required; the others are what the card shows.
COLUMNS = {"文件名": "filename", "标题": "title", "地区": "region", "年度": "year", "机构": "firm", "网址": "url",
           "类型": "kind"}
_URL = re.compile(r"^https?://[^\s]{3,990}$", re.IGNORECASE)


def require_manage(actor: User) -> None:
    permissions.require(actor, "screening.references.manage")


def label(reference: ReferenceDocument) -> str:
    where = " ".join(str(x) for x in (reference.region, f"{reference.year}年" if reference.year else None) if x)
    return " · ".join(x for x in (REFERENCE_LABEL, reference.title, where, reference.firm_name) if x)


@dataclass
class ImportResult:
    added: list[ReferenceDocument] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # already imported (same content) — skipped
    unreadable: list[str] = field(default_factory=list)  # no text (a scanned PDF) — skipped

    @property
    def message(self) -> str:
        parts = [f"已导入 {len(self.added)} 份外部公开报告"]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} 份此前已导入，跳过")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} 份读不出文字（扫描件？），跳过：" + "、".join(self.unreadable[:5]))
        return "；".join(parts) + "。"


def _entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's file name as the user saw it: zips made on Chinese Windows store GBK names unflagged."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("gb18030")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return os.path.basename(name.replace("\\", "/"))


def _documents(filename: str, data: bytes) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each document: the entries of a zip (checked as every upload's zip is: entry
    count, sizes, compression ratio, CRC), or the one document uploaded."""
    if not data:
        raise ValidationFailed("请上传报告文件或压缩包。", {"archive": "文件为空"})
    if not data.startswith(b"PK\x03\x04") or filename.lower().endswith(".docx"):
        return [(os.path.basename(filename.replace("\\", "/")), data)]
    limits = files.ZipLimits.current()
    try:
        kind, infos = files._zip_kind(data, limits)  # the one zip check: declared entries, sizes and ratios
        if kind == "docx":
            return [(os.path.basename(filename.replace("\\", "/")), data)]
        files._stream_zip(data, infos, limits)  # and what they really unpack to
        archive = zipfile.ZipFile(io.BytesIO(data))
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, {"archive": exc.message})
    except (zipfile.BadZipFile, ValueError):
        raise ValidationFailed("压缩包已损坏，无法打开。", {"archive": "压缩包已损坏"})
    out = []
    for info in infos:
        name = _entry_name(info)
        if info.is_dir() or not name or name.startswith(".") or "__MACOSX" in info.filename:
            continue
        out.append((name, archive.read(info)))
    if len(out) > MAX_DOCUMENTS:
        raise ValidationFailed(f"一次最多导入 {MAX_DOCUMENTS} 份报告（压缩包内有 {len(out)} 份）。", {"archive": "文件过多"})
    if not out:
        raise ValidationFailed("压缩包中没有报告文件（.docx、.pdf 或 .txt）。", {"archive": "没有报告文件"})
    return out


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


def read_metadata(data: bytes) -> dict[str, dict[str, Any]]:
    """The metadata sheet: file name → {title, region, year, firm, url, kind}. Any bad row refuses the whole
    sheet, each problem named by its row."""
    import openpyxl

    try:
        files.check_upload("元数据.xlsx", data, ("xlsx",))
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, {"metadata": exc.message})
    except Exception:  # noqa: BLE001 — openpyxl's many ways of saying "not a workbook"
        raise ValidationFailed("元数据文件无法读取，请上传 .xlsx 格式的 Excel 文件。", {"metadata": "无法读取"})
    rows = book.worksheets[0].iter_rows(values_only=True)
    header = [_cell(c) for c in next(rows, ())]
    if "文件名" not in header:
        raise ValidationFailed("元数据表第一行应为列名，且包含“文件名”列（可选：标题、地区、年度、机构、网址、类型）。",
                               {"metadata": "缺少“文件名”列"})
    where = {COLUMNS[h]: i for i, h in enumerate(header) if h in COLUMNS}
    out: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for number, row in enumerate(rows, start=2):
        values = {f: _cell(row[i]) if i < len(row) else "" for f, i in where.items()}
        if not any(values.values()):
            continue
        name = os.path.basename(values.get("filename", "").replace("\\", "/"))
        if not name:
            errors.append(f"第 {number} 行没有文件名")
            continue
        if name in out:
            errors.append(f"第 {number} 行的文件名“{name[:60]}”重复")
        year = values.get("year") or ""
        year = year[:-2] if year.endswith(".0") else year
        if year and as_int(year, 1990, 2100) is None:  # "²⁰²⁴" is digits to isdigit(), not to int()
            errors.append(f"第 {number} 行年度“{year[:10]}”无效（应为 1990–2100 的四位年份）")
        url = values.get("url") or ""
        if url and not _URL.match(url):
            errors.append(f"第 {number} 行网址无效（应以 http:// 或 https:// 开头）")
        kind = values.get("kind") or SubmissionKind.REPORT.label
        try:
            kind = SubmissionKind.from_label(kind) if kind not in {k.value for k in SubmissionKind} else SubmissionKind(kind)
        except ValueError:
            errors.append(f"第 {number} 行类型“{kind[:20]}”无效（应为{'、'.join(k.label for k in SubmissionKind)}）")
            kind = SubmissionKind.REPORT
        for key, limit in (("title", 300), ("region", 100), ("firm", 200)):
            if len(values.get(key) or "") > limit:
                errors.append(f"第 {number} 行{ {'title': '标题', 'region': '地区', 'firm': '机构'}[key]}超过 {limit} 个字")
            problem = name_error(values.get(key) or "")  # shown on every bureau's cards: no bidi or control characters
            if problem:
                errors.append(f"第 {number} 行{ {'title': '标题', 'region': '地区', 'firm': '机构'}[key]}{problem}")
        out[name] = {"title": values.get("title") or None, "region": values.get("region") or None,
                     "year": as_int(year, 1990, 2100), "firm": values.get("firm") or None,
                     "url": url or None, "kind": kind}
    if errors:
        raise ValidationFailed("元数据表有误，整份未导入：" + "；".join(errors[:10]) + ("等。" if len(errors) > 10 else "。"),
                               {"metadata": "；".join(errors[:10])})
    return out


def _outline(reference: ReferenceDocument) -> list[str]:
    """The outline a reference is split by, the same when it is indexed and when its passages are found again. A
    reference has no engagement, so no kind of work: its reports are read as evaluation reports (published
    evaluation reports are what the library holds), by the key-evaluation outline (``review.outline_for``)."""
    if reference.kind != SubmissionKind.REPORT:
        return []
    return review_services.outline_for(reference.bureau, ServiceKind.KEY_EVALUATION)


def _stored(reference: ReferenceDocument) -> StoredReport:
    """The reference's keys and signature, computed as an upload's are (names masked: its firm and region)."""
    chapters = _outline(reference)
    names = [n for n in (reference.firm_name, reference.region) if n]
    doc = textproc.parse(reference.text, list(chapters), names)
    keys = np.unique(np.array([s.key for s in doc.copy_sentences], dtype=np.uint64))
    sig = signature(textproc.shingle_hashes(doc.text, textproc.NameMask(names)))
    return StoredReport(doc_id=reference_doc_id(reference.id), firm_id=reference.firm_id, engagement_id=None,
                        object_key=None, year=reference.year, kind=reference.kind.value, keys=keys, signature=sig,
                        label=label(reference))


def import_references(actor: User, archive_name: str, archive: bytes, metadata: bytes | None = None) -> ImportResult:
    """Import published reports (a zip of .docx/.pdf/.txt, or one such file) with an optional metadata sheet,
    into the actor's bureau, and index them. All or nothing on bad input; repeats of a text already imported
    by the bureau are skipped."""
    require_manage(actor)
    bureau = actor.bureau
    if bureau is None:
        raise ValidationFailed("系统管理员请以财政局账号导入外部公开报告。", {"archive": "需要财政局账号"})
    meta = read_metadata(metadata) if metadata else {}
    documents = _documents(archive_name or "", archive)
    names = {name for name, _data in documents}
    unmatched = [n for n in meta if n not in names]
    if unmatched:
        raise ValidationFailed("元数据表中的文件不在上传的文件中：" + "、".join(unmatched[:10]) + "。",
                               {"metadata": "文件名与压缩包不一致"})
    result = ImportResult()
    seen = set(db.session.execute(sa.select(ReferenceDocument.sha256).where(ReferenceDocument.bureau_id == bureau.id))
               .scalars())
    errors = []
    texts = []
    for name, data in documents:
        if name_error(name):  # the file name is the title when the sheet gives none
            errors.append(f"“{name[:60]}”：文件名{name_error(name)}")
            continue
        try:
            kind = files.check_upload(name, data, DOCUMENT_KINDS)
            text, _encoding = files.extract_text(kind, data)
        except ValidationFailed as exc:
            errors.append(f"“{name[:60]}”：{exc.message}")
            continue
        texts.append((name, data, (text or "").strip()))
    if errors:
        raise ValidationFailed("部分文件无法导入，整批未导入：" + "；".join(errors[:5]), {"archive": "；".join(errors[:5])})
    firms = {n: i for i, n in db.session.execute(sa.select(Firm.id, Firm.name).where(Firm.name.in_(
        [m["firm"] for m in meta.values() if m["firm"]] or ["-"]))).all()}
    index = SharedIndex(db.session)
    for name, data, text in texts:
        # The same report saved again (another docx, a PDF of it) is the same reference: compare the text.
        digest = sha256(re.sub(r"\s", "", text).encode("utf-8")).hexdigest()
        if digest in seen:
            result.duplicates.append(name)
            continue
        if len(re.sub(r"\s", "", text)) < 50:
            result.unreadable.append(name)
            continue
        seen.add(digest)
        m = meta.get(name, {})
        reference = ReferenceDocument(
            bureau_id=bureau.id, bureau=bureau, kind=m.get("kind") or SubmissionKind.REPORT,
            title=(m.get("title") or os.path.splitext(name)[0])[:300], filename=name[:300], region=m.get("region"),
            year=m.get("year"), firm_name=m.get("firm"), firm_id=firms.get(m.get("firm")), url=m.get("url"),
            sha256=digest, text=text, chars=len(text), imported_by_id=actor.id)
        db.session.add(reference)
        db.session.flush()
        index.add(_stored(reference))
        result.added.append(reference)
    audit.record("screening.references_imported", None, actor=actor, bureau_id=bureau.id,
                 object_type="reference_document", summary=result.message,
                 payload={"added": [r.id for r in result.added], "duplicates": len(result.duplicates),
                          "unreadable": len(result.unreadable)})
    return result


def delete_reference(reference: ReferenceDocument, actor: User) -> None:
    """Withdraw a reference: out of the index (stored screenings keep what they found until re-screened)."""
    # The delete rule says who (the importing bureau, or the system administrator, who imports nothing).
    permissions.require(actor, "screening.references.delete", reference)
    SharedIndex(db.session).discard(reference_doc_id(reference.id))
    audit.record("screening.reference_deleted", reference, actor=actor, bureau_id=reference.bureau_id,
                 summary=f"删除外部公开报告：{reference.title}")
    db.session.delete(reference)
    db.session.flush()


def visible_references(actor: User):
    return permissions.scope(actor, sa.select(ReferenceDocument), ReferenceDocument)


def reference_for(doc_id: int) -> ReferenceDocument | None:
    from evalhub.screening.index import reference_id_of

    reference_id = reference_id_of(doc_id)
    return db.session.get(ReferenceDocument, reference_id) if reference_id is not None else None


def source_sentences(reference: ReferenceDocument) -> list[textproc.Sentence]:
    """The reference split as it was indexed, so a copied passage is found again by its keys."""
    chapters = _outline(reference)
    return textproc.parse(reference.text, list(chapters), [n for n in (reference.firm_name, reference.region) if n]).sentences
