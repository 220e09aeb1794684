"""Excel import of firms and experts, as background jobs.

All rows are checked first; the error report lists every problem by row number in Chinese; and
nothing is imported when any row is invalid.
"""
from __future__ import annotations

import io
import re
from datetime import date, datetime
from typing import Any, Callable

import pandas as pd

from evalhub.core import audit, files, permissions
from evalhub.core.enums import Field
from evalhub.core.errors import ValidationFailed
from evalhub.core.inputs import control_error
from evalhub.core.exports import to_xlsx
from evalhub.core.jobs import job_kind
from evalhub.core.models import Bureau, Job, StoredFile, User
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


def _parse_date(value: Any) -> date | None:
    if value in (None, "") or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, datetime):
        return value.date()
    text = str(value).strip().replace("/", "-").replace(".", "-")
    text = re.sub(r"[年月]", "-", text).rstrip("日").split(" ")[0]
    return datetime.strptime(text, "%Y-%m-%d").date()


def read_sheet(data: bytes, columns: dict[str, str],
               optional: set[str] = OPTIONAL) -> list[tuple[int, dict[str, str]]]:
    """The sheet's filled rows, each with the number Excel shows at its left (row 1 the header): blank rows are
    skipped, so a row's place in the list is not its number — every message names the number read here."""
    try:
        frame = pd.read_excel(io.BytesIO(data), dtype=str, engine="openpyxl").fillna("")
    except Exception as exc:
        raise ValidationFailed(f"无法读取 Excel 文件：{exc}", {"file": "无法读取"}) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c, key in columns.items() if c not in frame.columns and key not in optional]
    if missing:
        raise ValidationFailed(f"表头缺少列：{'、'.join(missing)}。请使用导入模板。", {"file": "表头不符"})
    rows, problems = [], []
    for number, (_, row) in enumerate(frame.iterrows(), start=2):  # row 1 is the header, as Excel numbers them
        record = {key: str(row.get(col, "")).strip() for col, key in columns.items()}
        # A web form or an API body with a control character never reaches a service (core.inputs); a cell
        # of a workbook (XML allows C1 controls) must not either.
        problems += [f"第 {number} 行“{col}”{message}" for col, key in columns.items()
                     if (message := control_error(record[key]))]
        if any(record.values()):
            rows.append((number, record))
    if problems:
        raise ValidationFailed("；".join(problems[:10]) + ("等" if len(problems) > 10 else "") + "。", {"file": "含控制字符"})
    if not rows:
        raise ValidationFailed("表格中没有数据行。", {"file": "没有数据"})
    return rows


def _firm_input(row: dict[str, str]) -> FirmInput:
    return FirmInput(
        name=row["name"], uscc=row["uscc"], legal_form=row["legal_form"], kind=row["kind"],
        address=row["address"], legal_representative=row["legal_representative"],
        contact_name=row["contact_name"], contact_phone=row["contact_phone"],
        contact_email=row.get("contact_email"), founded_on=_parse_date(row.get("founded_on")),
        fields=_split_fields(row["fields"]),
        declares_no_major_violation=row.get("declares_no_major_violation", "") in ("是", "1", "true", "TRUE", "Y"),
    )


def _expert_input(row: dict[str, str]) -> ExpertInput:
    return ExpertInput(
        name=row["name"], id_number=row["id_number"], employer=row["employer"], title=row["title"],
        degree=row["degree"], years_in_field=row["years_in_field"], birth_year=row["birth_year"],
        fields=_split_fields(row["fields"]), phone=row.get("phone"), email=row.get("email"),
    )


def _run_import(job: Job, report: Callable[[int, int, str], None], *, columns: dict[str, str], noun: str,
                to_input: Callable, clean: Callable, create: Callable, unique_key: str) -> dict:
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
            cleaned.append((data, clean(data, actor)))
        except ValidationFailed as exc:
            messages.extend(exc.fields.values() or [exc.message])
        except ValueError:
            messages.append("日期格式无法识别（应为 2020-01-31）")
        key = re.sub(r"\s+", "", row.get(unique_key, "")).upper()  # as stored: a space typed in is no new code
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
    created = [create(data, bureau, actor, clean=clean_result) for data, clean_result in cleaned]
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
                       unique_key="uscc")


@job_kind("import.experts", upload="file_id")
def import_experts(job: Job, report) -> dict:
    return _run_import(job, report, columns=EXPERT_COLUMNS, noun="专家", to_input=_expert_input,
                       clean=lambda d, actor: clean_expert(d),
                       create=lambda d, b, a, clean: create_expert(d, b, a, clean=clean),
                       unique_key="id_number")


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
    return to_xlsx([], "导入数据", columns=list(columns), notes={"填写说明": notes})
