"""Reading an uploaded workbook as a clerk's Excel or WPS stores it — the one reader behind every import (firms,
experts, plan items: ``registry.imports.read_sheet``; bureaus and budget units: ``core.organisations``).

What a clerk's workbook holds that a clean export does not, and how it is read:

* the sheet: the one the template names, else the first *visible* sheet holding the columns (a hidden sheet of
  drop-down choices often comes first);
* headers with a trailing or full-width space (全角空格): trimmed;
* blank rows between groups: skipped, every other row keeping the number Excel shows at its left (row 1 the header);
* a cell merged over several rows (被评价单位 merged down a unit's objects): its value read in every row it covers;
* typed cells: TRUE/FALSE as Excel shows them, dates as 2020-01-31, whole numbers without ".0", a number formatted
  as a percentage as Excel shows it (50%, not 0.5); a number in an identity-number, phone or code column (Excel
  drops a phone's leading 0 and an identity number's digits past the 15th) is refused, asking for a text column.

Every message names the row and the column in Chinese; nothing is returned when any cell is refused.
"""
from __future__ import annotations

import bisect
import io
import logging
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Iterable, Iterator, Mapping

import openpyxl
from openpyxl.utils.cell import range_boundaries
from openpyxl.xml.functions import iterparse

from evalhub.core.errors import ValidationFailed
from evalhub.core.exports import TEXT_HEADERS
from evalhub.core.inputs import control_error

log = logging.getLogger(__name__)

MAX_ROWS = 20000  # filled rows of one sheet; more is a batch to split (and a worker's memory to keep)
_MERGE_TAG = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}mergeCell"
_EXACT_DIGITS = 10 ** 15  # Excel keeps 15 significant digits: a larger number has lost its last ones


@contextmanager
def opened(data: bytes) -> Iterator[Any]:
    """The workbook, streamed (read-only: a sheet's rows are read one at a time and reading stops at the cap), and
    closed after. A damaged or non-Excel file — found on opening or only when a sheet is read — is said plainly."""
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as exc:
        raise _unreadable(exc) from exc
    try:
        yield book
    except ValidationFailed:
        raise
    except Exception as exc:  # a sheet's XML broken past the part openpyxl reads on opening
        log.warning("workbook unreadable", exc_info=exc)
        raise _unreadable(exc) from exc
    finally:
        book.close()  # read-only: the workbook holds its archive open until closed


def _unreadable(exc: Exception) -> ValidationFailed:
    return ValidationFailed(f"无法读取 Excel 文件（{type(exc).__name__}），请上传 .xlsx 格式的工作簿（可使用导入模板）。",
                            {"file": "无法读取"})


def header(sheet) -> list[str]:
    """Row 1, each header trimmed (str.strip also drops the full-width space U+3000 and the no-break space)."""
    sheet.reset_dimensions()  # a stored dimension may be wrong (some writers put A1): read to the real end
    first = next(sheet.iter_rows(min_row=1, max_row=1, values_only=True), ())
    return [str(v).strip() if v is not None else "" for v in first]


def find_sheet(book, names: Iterable[str], required: Iterable[str]):
    """The sheet the template names; else the first visible sheet whose header holds the required columns; else
    the first visible sheet (its missing columns are then what the message names)."""
    for name in names:
        if name in book.sheetnames:
            return book[name]
    visible = [s for s in book.worksheets if s.sheet_state == "visible"] or book.worksheets
    if not visible:  # chart sheets only
        raise ValidationFailed("工作簿中没有可读取的工作表，请使用导入模板。", {"file": "没有工作表"})
    wanted = set(required)
    for sheet in visible:
        if wanted <= set(header(sheet)):
            return sheet
    return visible[0]


def read_rows(sheet, columns: Mapping[str, str], *, required: Iterable[str],
              label: str = "") -> list[tuple[int, dict[str, str]]]:
    """The sheet's filled rows as (Excel row number, {key: text}) for ``columns`` (header → key); a column not in
    ``required`` may be absent (its text is ""). ``label`` names the sheet in messages ("“预算单位”工作表")."""
    names = header(sheet)
    missing = [c for c in required if c not in names]
    if missing:
        raise ValidationFailed(f"{label or '表头'}缺少列：{'、'.join(missing)}。请使用导入模板。", {"file": "缺少列"})
    where = {names.index(c): (c, key) for c, key in columns.items() if c in names}
    merges = _merges(sheet, set(where))
    firsts: dict[tuple[int, int], Any] = {}  # (row, column index) of a merge's first cell → its value
    rows, problems = [], []
    for number, cells in enumerate(sheet.iter_rows(min_row=1), start=1):
        # (value, number format): a percentage is read as Excel shows it
        own = {i: (cells[i].value, cells[i].number_format) if i < len(cells) else (None, None) for i in where}
        for i, spans in merges.items():
            if (start := _covering(spans, number)) == number:
                firsts[(start, i)] = own[i]
        if number == 1 or all(_blank(v) for v, _ in own.values()):
            continue  # the header; a blank row between groups (a merged value alone does not make a row)
        if len(rows) == MAX_ROWS:
            raise ValidationFailed(f"{label or '表格'}超过 {MAX_ROWS} 行，请分批导入。", {"file": "行数过多"})
        record = {key: "" for key in columns.values()}
        for i, (column, key) in where.items():
            value, shown = own[i]
            if _blank(value) and i in merges and (start := _covering(merges[i], number)) is not None:
                value, shown = firsts.get((start, i), (None, None))
            text, problem = _text(value, column, shown)
            # A web form or an API body with a control character never reaches a service (core.inputs); a cell
            # of a workbook (XML allows C1 controls) must not either.
            problem = problem or control_error(text)
            if problem:
                problems.append(f"{label}第 {number} 行“{column}”{problem}")
            record[key] = text
        rows.append((number, record))
    if problems:
        raise ValidationFailed("；".join(problems[:10]) + ("等" if len(problems) > 10 else "") + "。", {"file": "单元格有误"})
    return rows


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, column: str, number_format: str | None = None) -> tuple[str, str | None]:
    """(the cell as the clerk sees it, why it is refused or None)."""
    if value is None:
        return "", None
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE"), None
    if isinstance(value, datetime):
        return (value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")), None
    if isinstance(value, (date, time)):
        return value.isoformat(), None
    if isinstance(value, (int, float)):
        shown = _number(value)
        if column in TEXT_HEADERS:
            if isinstance(value, float) and value.is_integer() and abs(value) >= _EXACT_DIGITS:
                return shown, (f"是数字（{shown}）：Excel 把超过 15 位的数字只保留前 15 位，后几位已丢失。"
                               "请把该列设置为“文本”格式（或使用导入模板），重新填写后再上传")
            # A phone typed into a General cell has lost its leading 0 (09912345678 → 9912345678): never guessed back.
            return shown, (f"是数字（{shown}），须为文本：数字格式会去掉开头的 0、截去 15 位以后的数字。"
                           "请把该列设置为“文本”格式（导入模板已如此设置），重新填写后再上传")
        if number_format and "%" in number_format.replace('"%"', "").replace("\\%", ""):
            return _number(Decimal(repr(value)) * 100) + "%", None  # 50%, as Excel shows it, not 0.5
        return shown, None
    return str(value).strip(), None


def _number(value: "int | float | Decimal") -> str:
    """A number as typed: whole numbers without ".0", 15 significant digits at most (Excel's)."""
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text if "." not in text else text.rstrip("0").rstrip(".")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.15g}"
    return str(value)


def _covering(spans: list[tuple[int, int]], number: int) -> int | None:
    """The first row of the merged range (sorted, not overlapping) that covers row ``number``, or None."""
    k = bisect.bisect_right(spans, (number, float("inf"))) - 1
    return spans[k][0] if k >= 0 and spans[k][0] <= number <= spans[k][1] else None


def _merges(sheet, columns: set[int]) -> dict[int, list[tuple[int, int]]]:
    """{column index: [(first row, last row) of each range merged down it]}, for the columns read. A range's value
    is its first column's: a merge across columns gives the others nothing (G2:H4 is G's value, not H's). Merges
    are listed after the rows in the sheet's XML and read-only mode does not parse them: read here, once."""
    out: dict[int, list[tuple[int, int]]] = {}
    with sheet._get_source() as source:  # the sheet's XML part, through openpyxl's own (defused) parser
        for _, element in iterparse(source):
            if element.tag == _MERGE_TAG:
                min_col, min_row, _, max_row = range_boundaries(element.get("ref"))
                if min_col - 1 in columns and max_row > min_row:
                    out.setdefault(min_col - 1, []).append((min_row, max_row))
            element.clear()
    return {i: sorted(spans) for i, spans in out.items()}
