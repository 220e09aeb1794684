"""Excel import of firms and experts, as background jobs.

All rows are checked first; the error report lists every problem by row number in Chinese; and
nothing is imported when any row is invalid.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Callable

from sqlalchemy.exc import IntegrityError

from evalhub.core import audit, concurrency, files, permissions, workbooks
from evalhub.core.enums import Field
from evalhub.core.errors import ValidationFailed
from evalhub.core.exports import TEXT_HEADERS, to_xlsx
from evalhub.core.jobs import job_kind
from evalhub.core.models import Bureau, Job, StoredFile, User
from evalhub.core.personal import validate_id_number
from evalhub.core.validators import validate_uscc
from evalhub.extensions import db
from evalhub.registry.models import Degree, FirmKind, LegalForm, ProfessionalTitle
from evalhub.registry.services import (
    ExpertInput,
    FirmInput,
    clean_expert,
    clean_firm,
    create_expert,
    create_firm,
)

FIRM_COLUMNS = {
    "机构名称": "name",
    "统一社会信用代码": "uscc",
    "组织形式": "legal_form",
    "机构类型": "kind",
    "住所地址": "address",
    "法定代表人": "legal_representative",
    "联系人": "contact_name",
    "联系电话": "contact_phone",
    "电子邮箱": "contact_email",
    "成立日期": "founded_on",
    "业务领域": "fields",
    "近三年无重大违规承诺": "declares_no_major_violation",
}
EXPERT_COLUMNS = {
    "姓名": "name",
    "身份证号码": "id_number",
    "工作单位": "employer",
    "职称": "title",
    "学历": "degree",
    "从业年限": "years_in_field",
    "出生年份": "birth_year",
    "业务领域": "fields",
    "联系电话": "phone",
    "电子邮箱": "email",
}
OPTIONAL = {"contact_email", "founded_on", "declares_no_major_violation", "phone", "email"}


def _split_fields(value: str) -> list[str]:
    return [p for p in re.split(r"[、,，;；/\s]+", value or "") if p]


def _parse_date(value: str) -> date | None:
    if not value:
        return None
    text = value.strip().replace("/", "-").replace(".", "-")
    text = re.sub(r"[年月]", "-", text).rstrip("日").split(" ")[0]
    return datetime.strptime(text, "%Y-%m-%d").date()


def read_sheet(data: bytes, columns: dict[str, str], optional: set[str] = OPTIONAL,
               sheet: str = "导入数据") -> list[tuple[int, dict[str, str]]]:
    """The filled rows of the template's sheet ``sheet`` (else of the first visible sheet with the columns), each
    with the number Excel shows at its left (row 1 the header): blank rows are skipped, so a row's place in the list
    is not its number — every message names the number read here. How cells are read: ``core.workbooks``."""
    required = [c for c, key in columns.items() if key not in optional]
    with workbooks.opened(data) as book:
        rows = workbooks.read_rows(workbooks.find_sheet(book, [sheet], required), columns, required=required)
    if not rows:
        raise ValidationFailed("表格中没有数据行。", {"file": "没有数据"})
    return rows


# What a clerk types for yes and no: Excel keeps a typed TRUE/FALSE as a boolean cell (read as TRUE/FALSE), and ticks
# and crosses are common; anything else is refused, never read as "no".
YES = {"是", "Y", "YES", "TRUE", "1", "√", "✓", "✔", "已承诺", "承诺"}
NO = {"", "否", "N", "NO", "FALSE", "0", "×", "✗", "✘", "未承诺", "不承诺"}


def _yes_no(text: str, key: str, column: str) -> bool:
    value = re.sub(r"\s+", "", text or "").upper()
    if value in YES or value in NO:
        return value in YES
    raise ValidationFailed(f"{column}应填“是”或“否”", {key: f"“{column}”应填“是”或“否”（当前为“{text}”）"})


def _firm_input(row: dict[str, str]) -> FirmInput:
    return FirmInput(
        name=row["name"], uscc=row["uscc"], legal_form=row["legal_form"], kind=row["kind"],
        address=row["address"], legal_representative=row["legal_representative"],
        contact_name=row["contact_name"], contact_phone=row["contact_phone"],
        contact_email=row.get("contact_email"), founded_on=_parse_date(row.get("founded_on")),
        fields=_split_fields(row["fields"]),
        declares_no_major_violation=_yes_no(row.get("declares_no_major_violation", ""), "declares_no_major_violation",
                                            "近三年无重大违规承诺"),
    )


def _expert_input(row: dict[str, str]) -> ExpertInput:
    return ExpertInput(
        name=row["name"], id_number=row["id_number"], employer=row["employer"], title=row["title"],
        degree=row["degree"], years_in_field=row["years_in_field"], birth_year=row["birth_year"],
        fields=_split_fields(row["fields"]), phone=row.get("phone"), email=row.get("email"),
    )


def _duplicate_key(text: str, stored: Callable[[str], str]) -> str:
    """The code as the service stores it (``stored``: its validator, which also turns full-width digits typed in
    全角 mode into ASCII), so two spellings of one code are one key; a code the validator refuses (its row is
    already in error) by the same normalisation, roughly."""
    try:
        return stored(text)
    except ValidationFailed:
        return re.sub(r"[\s-]+", "", unicodedata.normalize("NFKC", text)).upper()


def _run_import(job: Job, report: Callable[[int, int, str], None], *, columns: dict[str, str], noun: str,
                to_input: Callable, clean: Callable, create: Callable, unique_key: str,
                stored_key: Callable[[str], str]) -> dict:
    bureau = db.session.get(Bureau, job.params["bureau_id"])
    actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
    if bureau is None or not permissions.can(actor, "registry.import", bureau):
        # asked again as the job runs: the rights its person has now (moved, disabled), not when it was queued
        message = "提交导入的账号已无权向该财政局导入，未导入任何记录。"
        return {"failed": True, "message": message, "errors": [{"row": None, "name": "", "messages": [message]}]}
    stored = db.session.get(StoredFile, job.params["file_id"])
    if stored is None:  # an import's workbook goes when its job ends (core.jobs): a job run again finds none
        message = "上传的文件已删除（导入任务结束后不保留），请重新上传。"
        return {"failed": True, "message": message, "errors": [{"row": None, "name": "", "messages": [message]}]}
    try:
        rows = read_sheet(files.read(stored), columns)
    except ValidationFailed as exc:
        return {"failed": True, "message": exc.message, "errors": [{"row": None, "messages": [exc.message]}]}
    total = len(rows)
    errors, cleaned, seen = [], [], {}
    for done, (index, row) in enumerate(rows, start=1):
        messages = []
        try:
            data = to_input(row)
            cleaned.append((index, row, data, clean(data, actor)))
        except ValidationFailed as exc:
            messages.extend(exc.fields.values() or [exc.message])
        except ValueError:
            messages.append("日期格式无法识别（应为 2020-01-31）")
        key = _duplicate_key(row.get(unique_key, ""), stored_key) if row.get(unique_key) else ""
        if key and key in seen:
            messages.append(f"与第 {seen[key]} 行重复")
        seen.setdefault(key, index)
        if messages:
            errors.append({"row": index, "name": row.get("name", ""), "messages": messages})
        if done % 10 == 0 or done == total:
            report(done, total, f"已检查 {done}/{total} 行")
    if errors:
        return {"failed": True, "errors": errors, "checked": total,
                "message": f"{len(errors)} 行有错误，未导入任何{noun}。请修改后重新上传。"}
    created = []
    for index, row, data, clean_result in cleaned:
        try:
            created.append(create(data, bureau, actor, clean=clean_result))
        except IntegrityError as exc:
            # a duplicate the checks above did not see (entered on a page meanwhile, or a spelling they missed):
            # nothing of the file is kept, and the row is named — not the database's English and a traceback
            db.session.rollback()
            message = concurrency.conflict_message(exc)
            if message is None:
                raise
            return {"failed": True, "checked": total, "message": f"第 {index} 行未能写入：{message.rstrip('。')}。未导入任何{noun}，请核对后重新上传。",
                    "errors": [{"row": index, "name": row.get("name", ""), "messages": [message]}]}
    audit.record(f"registry.import_{unique_key}", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name} 批量导入{noun} {len(created)} 条（{stored.original_name}）",
                 payload={"file_sha256": stored.sha256, "ids": [c.id for c in created]})
    db.session.commit()
    report(total, total, "导入完成")
    return {"imported": len(created), "ids": [c.id for c in created], "message": f"已导入 {len(created)} 条{noun}记录。"}


@job_kind("import.firms", upload="file_id")
def import_firms(job: Job, report) -> dict:
    return _run_import(job, report, columns=FIRM_COLUMNS, noun="机构", to_input=_firm_input,
                       clean=lambda d, actor: clean_firm(d, actor=actor),
                       create=lambda d, b, a, clean: create_firm(d, b, a, via="import", clean=clean),
                       unique_key="uscc", stored_key=validate_uscc)


@job_kind("import.experts", upload="file_id")
def import_experts(job: Job, report) -> dict:
    return _run_import(job, report, columns=EXPERT_COLUMNS, noun="专家", to_input=_expert_input,
                       clean=lambda d, actor: clean_expert(d),
                       create=lambda d, b, a, clean: create_expert(d, b, a, clean=clean),
                       unique_key="id_number", stored_key=validate_id_number)


def template_xlsx(kind: str) -> bytes:
    columns = FIRM_COLUMNS if kind == "firms" else EXPERT_COLUMNS
    fields = "、".join(f.label for f in Field)
    if kind == "firms":
        notes = [f"组织形式可填：{'、'.join(m.label for m in LegalForm)}",
                 f"机构类型可填：{'、'.join(m.label for m in FirmKind)}",
                 f"业务领域可填（多个用顿号分隔）：{fields}",
                 "统一社会信用代码须为 18 位并通过 GB 32100 校验",
                 "成立日期格式：2020-01-31；近三年无重大违规承诺填“是”或“否”"]
    else:
        notes = [f"职称可填：{'、'.join(m.label for m in ProfessionalTitle)}",
                 f"学历可填：{'、'.join(m.label for m in Degree)}",
                 f"业务领域可填（多个用顿号分隔）：{fields}",
                 "身份证号码须为 18 位并通过校验；出生年份须与身份证一致"]
    # a plain paste brings the source's number format along and undoes the text format of the template's columns
    notes.append(f"{'、'.join(c for c in columns if c in TEXT_HEADERS)}列已设为文本格式；从其他表格复制时请用“选择性粘贴 → 值”"
                 "（或“只粘贴文本”），否则 Excel 会把长号码变成科学计数法并丢失末几位")
    return to_xlsx([], "导入数据", columns=list(columns), notes={"填写说明": notes})
