"""Bureaus and budget units are data: imported from Excel (or rows), checked whole, then written all at once.

A workbook has a sheet 财政局 (区划代码, 名称, 简称, 层级, 上级区划代码) and/or a sheet 预算单位 (财政局区划代码,
单位名称, 统一社会信用代码, 上级单位名称). Budget units form a tree (主管部门 → 所属单位, e.g. 巴州统计局 →
巴州统计局普查中心) so that conflict-of-interest checks can look up and down it.

Every row is checked before anything is written; the error list names the sheet, the row and the problem in
Chinese; nothing is imported when any row is bad. Existing rows (same 区划代码; same bureau and unit name)
are updated, so importing the same workbook twice changes nothing. The demo loads its organisations
through this same function.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import sqlalchemy as sa

from evalhub.core import audit, exports, files, permissions, workbooks
from evalhub.core.enums import BureauLevel, Role
from evalhub.core.errors import PermissionDenied, ValidationFailed
from evalhub.core.inputs import name_error
from evalhub.core.models import Bureau, BudgetUnit, User
from evalhub.core.validators import validate_uscc
from evalhub.extensions import db

BUREAU_SHEET, UNIT_SHEET = "财政局", "预算单位"
BUREAU_COLUMNS = {"区划代码": "code", "名称": "name", "简称": "short_name", "层级": "level", "上级区划代码": "parent_code"}
UNIT_COLUMNS = {"财政局区划代码": "bureau_code", "单位名称": "name", "统一社会信用代码": "code", "上级单位名称": "parent_name"}
_DIVISION = re.compile(r"^\d{6}$")
_LEVEL_ORDER = {BureauLevel.REGION: 0, BureauLevel.PREFECTURE: 1, BureauLevel.COUNTY: 2}


@dataclass
class ImportResult:
    bureaus_created: int = 0
    bureaus_updated: int = 0
    units_created: int = 0
    units_updated: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return (f"财政局新增 {self.bureaus_created} 个、更新 {self.bureaus_updated} 个；"
                f"预算单位新增 {self.units_created} 个、更新 {self.units_updated} 个。")


def _name_problems(*names: tuple[str, str]) -> list[str]:
    """What ``check_name`` refuses in every other name (controls, direction overrides, zero-width characters):
    a unit's name is shown on plans, reports and public pages, and plan imports find units by it."""
    return [f"{label}{message}" for label, text in names if text and (message := name_error(text))]


def read_workbook(data: bytes) -> tuple[list[dict], list[dict]]:
    """The two sheets as rows keyed by field name (Chinese column headers), each with its Excel row number under
    "row"; a missing sheet is empty. Blank rows are skipped, headers trimmed (``core.workbooks``)."""
    with workbooks.opened(data) as book:
        if BUREAU_SHEET not in book.sheetnames and UNIT_SHEET not in book.sheetnames:
            raise ValidationFailed(f"工作簿中没有“{BUREAU_SHEET}”或“{UNIT_SHEET}”工作表，请使用导入模板。", {"file": "缺少工作表"})

        def rows(sheet: str, columns: dict[str, str]) -> list[dict]:
            if sheet not in book.sheetnames or not any(workbooks.header(book[sheet])):
                return []  # no sheet, or a blank one: nothing of that kind to import
            found = workbooks.read_rows(book[sheet], columns, required=list(columns), label=f"“{sheet}”工作表")
            return [{**record, "row": number} for number, record in found]

        return rows(BUREAU_SHEET, BUREAU_COLUMNS), rows(UNIT_SHEET, UNIT_COLUMNS)


def template() -> bytes:
    """An empty workbook with both sheets, their headers and one example row each. The 统一社会信用代码 column is
    formatted as text, as in every other template (``exports.text_columns``): typed into a General cell, an
    all-digit code (a 事业单位's 12…) becomes a number Excel rounds to 15 digits, which the import refuses."""
    import pandas as pd

    examples = {
        BUREAU_SHEET: {"区划代码": "652800", "名称": "巴音郭楞蒙古自治州财政局", "简称": "巴州", "层级": "州/地区",
                       "上级区划代码": "650000"},
        UNIT_SHEET: {"财政局区划代码": "652800", "单位名称": "巴州统计局普查中心", "统一社会信用代码": "",
                     "上级单位名称": "巴州统计局"},
    }
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        for sheet, example in examples.items():
            pd.DataFrame([example]).to_excel(writer, sheet_name=sheet, index=False)
            exports.text_columns(writer.sheets[sheet], list(example), exports.TEMPLATE_ROWS)
    return out.getvalue()


def import_organisations(bureau_rows: Iterable[dict], unit_rows: Iterable[dict], *, actor: User | None,
                         source: str = "导入") -> ImportResult:
    """Check every row, then create or update bureaus and budget units; raises ValidationFailed listing every
    problem, with nothing written. ``actor=None`` is the operator at the command line (trusted)."""
    bureau_rows, unit_rows = list(bureau_rows), list(unit_rows)
    errors: list[str] = []
    existing = {b.code: b for b in db.session.execute(sa.select(Bureau)).scalars()}
    planned: dict[str, dict] = {}  # code → checked bureau row

    for number, row in enumerate(bureau_rows, start=2):
        where = f"{BUREAU_SHEET}第 {row.get('row', number)} 行"  # the Excel row when read from a workbook
        code, name, short = row.get("code", ""), row.get("name", ""), row.get("short_name", "")
        parent_code = row.get("parent_code", "")
        problems = []
        if not _DIVISION.match(code):
            problems.append("区划代码应为 6 位数字")
        if not name or len(name) > 100:
            problems.append("名称必填，不超过 100 字")
        if not short or len(short) > 30:
            problems.append("简称必填，不超过 30 字")
        problems += _name_problems(("名称", name), ("简称", short))
        try:
            level = BureauLevel.from_label(row.get("level", ""))
        except ValueError:
            level = None
            problems.append(f"层级应为 {'、'.join(m.label for m in BureauLevel)} 之一")
        if code in planned:
            problems.append(f"区划代码 {code} 在本表中重复")
        if parent_code and not _DIVISION.match(parent_code):
            problems.append("上级区划代码应为 6 位数字或留空")
        if problems:
            errors.append(f"{where}：{'；'.join(problems)}。")
            continue
        planned[code] = {"code": code, "name": name, "short_name": short, "level": level, "parent_code": parent_code or None,
                         "where": where}

    def level_of(code: str) -> BureauLevel | None:
        if code in planned:
            return planned[code]["level"]
        return existing[code].level if code in existing else None

    children: dict[str, list[Bureau]] = {}
    for b in existing.values():
        if b.parent is not None:
            children.setdefault(b.parent.code, []).append(b)
    for code, row in planned.items():
        parent_code = row["parent_code"]
        # Levels strictly increase downwards, against the bureaus already below an existing one too.
        for child in children.get(code, []):
            if _LEVEL_ORDER[level_of(child.code)] <= _LEVEL_ORDER[row["level"]]:
                errors.append(f"{row['where']}：下级 {child.code} {child.short_name}（{level_of(child.code).label}）"
                              f"的层级不低于本级（{row['level'].label}），不能改为该层级。")
        if row["level"] == BureauLevel.REGION:
            if parent_code or (code in existing and existing[code].parent is not None):
                errors.append(f"{row['where']}：自治区（省）级财政局不能有上级"
                              + (f"（{code} 隶属于 {existing[code].parent.code}，不能通过导入改变隶属关系）"
                                 if code in existing and existing[code].parent is not None else "") + "。")
            continue
        if not parent_code:
            errors.append(f"{row['where']}：{row['level'].label}级财政局必须填写上级区划代码。")
            continue
        parent_level = level_of(parent_code)
        if parent_level is None:
            errors.append(f"{row['where']}：上级区划代码 {parent_code} 既不在本表中，也不在系统中。")
        elif _LEVEL_ORDER[parent_level] >= _LEVEL_ORDER[row["level"]]:
            # Levels strictly increase downwards, so no bureau can be its own ancestor.
            errors.append(f"{row['where']}：上级（{parent_level.label}）的层级不高于本级（{row['level'].label}）。")
        elif code in existing and existing[code].parent is not None and existing[code].parent.code != parent_code:
            errors.append(f"{row['where']}：{code} 已隶属于 {existing[code].parent.code}，不能通过导入改变隶属关系。")
        if actor is not None and code not in existing:
            parent = existing.get(parent_code)
            if parent is None or not permissions.can(actor, "bureau.manage", parent):
                errors.append(f"{row['where']}：您无权在 {parent_code} 之下新建财政局。")
    if actor is not None:
        for code, row in planned.items():
            if code in existing and not permissions.can(actor, "bureau.rename", existing[code]):
                errors.append(f"{row['where']}：您无权修改 {code} 的信息。")
            if code not in existing and row["level"] == BureauLevel.REGION and actor.role != Role.SYSTEM_ADMIN:
                errors.append(f"{row['where']}：只有系统管理员可以新建自治区（省）级财政局。")

    # Budget units: bureau must exist (or be created above); parent by name within the same bureau.
    units_existing = {(u.bureau_id, u.name): u for u in db.session.execute(sa.select(BudgetUnit)).scalars()}
    # A unit is the organisation its credit code names: a row with a known code and a new name renames it
    # (机构改革, 更名) instead of adding a second unit with the same code.
    units_by_code = {u.code: u for u in units_existing.values() if u.code}
    codes_in_sheet: dict[str, str] = {}
    unit_plan: dict[tuple[str, str], dict] = {}
    for number, row in enumerate(unit_rows, start=2):
        where = f"{UNIT_SHEET}第 {row.get('row', number)} 行"
        bureau_code, name = row.get("bureau_code", ""), row.get("name", "")
        code, parent_name = row.get("code", ""), row.get("parent_name", "")
        problems = []
        if bureau_code not in planned and bureau_code not in existing:
            problems.append(f"财政局区划代码 {bureau_code or '（空）'} 不存在")
        if not name or len(name) > 100:
            problems.append("单位名称必填，不超过 100 字")
        problems += _name_problems(("单位名称", name), ("上级单位名称", parent_name))
        if code:
            try:
                code = validate_uscc(code, "code")
            except ValidationFailed as exc:
                problems.append(exc.fields.get("code") or exc.message)
        if (bureau_code, name) in unit_plan:
            problems.append(f"{name} 在本表中重复")
        renames = None
        if code and not problems:
            if code in codes_in_sheet:
                problems.append(f"统一社会信用代码与本表中的 {codes_in_sheet[code]} 相同")
            codes_in_sheet[code] = where
            known, bureau = units_by_code.get(code), existing.get(bureau_code)
            named = units_existing.get((bureau.id, name)) if bureau is not None else None
            if known is not None and (bureau is None or known.bureau_id != bureau.id):
                problems.append(f"统一社会信用代码已登记为 {known.bureau.short_name} 的 {known.name}")
            elif known is not None and known.name != name:
                if named is not None:
                    problems.append(f"统一社会信用代码属于 {known.name}，而 {name} 是另一个已登记的单位")
                else:
                    renames = known
        if parent_name and parent_name == name:
            problems.append("上级单位不能是本单位")
        if actor is not None and bureau_code in existing and not permissions.can(actor, "budget_unit.manage", existing[bureau_code]):
            problems.append(f"您无权维护 {existing[bureau_code].short_name} 的预算单位")
        if problems:
            errors.append(f"{where}：{'；'.join(problems)}。")
            continue
        unit_plan[(bureau_code, name)] = {"bureau_code": bureau_code, "name": name, "code": code or None,
                                          "parent_name": parent_name or None, "where": where, "renames": renames}

    def existing_unit(bureau_code: str, name: str) -> BudgetUnit | None:
        bureau = existing.get(bureau_code)
        return units_existing.get((bureau.id, name)) if bureau else None

    for key, row in unit_plan.items():
        parent = row["parent_name"]
        if parent and (row["bureau_code"], parent) not in unit_plan and existing_unit(row["bureau_code"], parent) is None:
            errors.append(f"{row['where']}：上级单位“{parent}”不在本表中，也不在该财政局的预算单位中。")
    # A unit may not end up below itself: follow each chain of parents, as the import would leave it.
    def parent_of(bureau_code: str, name: str) -> str | None:
        if (bureau_code, name) in unit_plan:
            return unit_plan[(bureau_code, name)]["parent_name"]
        unit = existing_unit(bureau_code, name)
        return unit.parent.name if unit is not None and unit.parent is not None else None

    for (bureau_code, name), row in unit_plan.items():
        seen, node = {name}, parent_of(bureau_code, name)
        while node is not None:
            if node in seen:
                errors.append(f"{row['where']}：上级单位关系形成循环（{name} → … → {node}）。")
                break
            seen.add(node)
            node = parent_of(bureau_code, node)

    if errors:
        raise ValidationFailed(f"导入文件有 {len(errors)} 处问题，未导入任何数据：" + " ".join(errors[:50])
                               + (f"（另有 {len(errors) - 50} 处未列出）" if len(errors) > 50 else ""),
                               {"file": "；".join(errors[:5])})

    result = ImportResult()
    # Bureaus top-down, so that each parent exists (and has its path) before its children.
    for row in sorted(planned.values(), key=lambda r: _LEVEL_ORDER[r["level"]]):
        bureau = existing.get(row["code"])
        if bureau is None:
            parent = existing.get(row["parent_code"]) if row["parent_code"] else None
            bureau = Bureau(code=row["code"], name=row["name"], short_name=row["short_name"], level=row["level"],
                            parent=parent, path=(parent.path if parent else "") + row["code"] + "/")
            db.session.add(bureau)
            db.session.flush()
            existing[row["code"]] = bureau
            audit.record("bureau.created", bureau, actor=actor, bureau_id=bureau.id,
                         summary=f"{source}：新建{row['level'].label}财政局 {row['name']}（{row['code']}）",
                         payload={"code": row["code"], "parent": row["parent_code"]})
            result.bureaus_created += 1
        elif (bureau.name, bureau.short_name, bureau.level) != (row["name"], row["short_name"], row["level"]):
            before = {"name": bureau.name, "short_name": bureau.short_name, "level": bureau.level}
            bureau.name, bureau.short_name, bureau.level = row["name"], row["short_name"], row["level"]
            audit.record("bureau.updated", bureau, actor=actor, bureau_id=bureau.id,
                         summary=f"{source}：更新财政局 {row['code']} 的名称或层级", payload={"before": before})
            result.bureaus_updated += 1

    # Units: create or update all first, then link parents (a parent may come later in the sheet). The sheet
    # is the truth for the rows it has: an empty 上级单位名称 makes the unit a top-level one.
    units: dict[tuple[str, str], tuple[BudgetUnit, dict]] = {}
    for key, row in unit_plan.items():
        bureau = existing[row["bureau_code"]]
        unit = units_existing.get((bureau.id, row["name"]))
        changes: dict[str, Any] = {}
        if unit is None and row["renames"] is not None:
            unit = row["renames"]
            changes["name"] = unit.name
            del units_existing[(bureau.id, unit.name)]
            unit.name = row["name"]
            units_existing[(bureau.id, unit.name)] = unit
        elif unit is None:
            unit = BudgetUnit(bureau_id=bureau.id, name=row["name"], code=row["code"])
            db.session.add(unit)
            db.session.flush()
            units_existing[(bureau.id, row["name"])] = unit
            audit.record("budget_unit.created", unit, actor=actor, bureau_id=bureau.id,
                         summary=f"{source}：{bureau.short_name}新增预算单位 {row['name']}")
            result.units_created += 1
            changes = {"created": True}
        elif row["code"] and unit.code != row["code"]:
            changes["code"] = unit.code
            unit.code = row["code"]
        units[key] = (unit, changes)
    for key, row in unit_plan.items():
        unit, changes = units[key]
        bureau = existing[row["bureau_code"]]
        parent = units_existing[(bureau.id, row["parent_name"])] if row["parent_name"] else None
        if unit.parent_id != (parent.id if parent else None):
            changes.setdefault("parent_id", unit.parent_id)
            unit.parent = parent
        if changes and not changes.get("created"):
            audit.record("budget_unit.updated", unit, actor=actor, bureau_id=bureau.id,
                         summary=f"{source}：更新预算单位 {row['name']}" + (
                             f"（原名 {changes['name']}）" if "name" in changes else "（信用代码或上级单位）"),
                         payload={"before": changes})
            result.units_updated += 1
    db.session.flush()
    return result


def import_workbook(data: bytes, *, actor: User | None, source: str = "Excel 导入",
                    filename: str = "组织机构.xlsx") -> ImportResult:
    if actor is not None and not permissions.can(actor, "organisations.import"):
        raise PermissionDenied("只有系统管理员和财政局管理员可以导入财政局和预算单位。")
    files.check_upload(filename, data, allowed=("xlsx",))  # type by content and the zip-bomb limits, as every upload
    bureaus, units = read_workbook(data)
    return import_organisations(bureaus, units, actor=actor, source=source)


def unit_subtree_ids(unit: BudgetUnit) -> set[int]:
    """The unit and every unit below it (所属单位 of a 主管部门), for conflict checks down the tree."""
    children: dict[int | None, list[int]] = {}
    for uid, parent_id in db.session.execute(sa.select(BudgetUnit.id, BudgetUnit.parent_id)
                                             .where(BudgetUnit.bureau_id == unit.bureau_id)).all():
        children.setdefault(parent_id, []).append(uid)
    out, stack = set(), [unit.id]
    while stack:
        node = stack.pop()
        if node in out:
            continue
        out.add(node)
        stack.extend(children.get(node, []))
    return out


def unit_ancestor_ids(unit: BudgetUnit) -> set[int]:
    """Every unit above this one (its 主管部门 and theirs), for conflict checks up the tree."""
    out, node = set(), unit.parent
    while node is not None and node.id not in out:
        out.add(node.id)
        node = node.parent
    return out
