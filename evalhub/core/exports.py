"""Excel export of any list (pandas + openpyxl), with Chinese headers.

What a person typed (a firm's name, a reason, a rubric item) reaches Excel as text, never as a formula (OWASP
"CSV/formula injection"): see ``_as_text``. No export of ours writes a formula on purpose.

Dates and times are written as Excel dates (a clerk filters by month, sorts, subtracts), never as text: a row
builder passes a ``date``, or a ``datetime`` — an aware one (``timeutil.to_beijing``) is written in Beijing time.
A column of identity numbers, phones or codes (``TEXT_HEADERS``) is formatted as text, so that what a clerk types
or pastes into it (in an import template above all) is not turned into a number that keeps 15 digits.
"""
from __future__ import annotations

import io
from datetime import date, datetime
from typing import Iterable, Mapping

import pandas as pd

from evalhub.core.timeutil import BEIJING


TEXT_HEADERS = frozenset({"身份证号码", "联系电话", "统一社会信用代码"})
DATE_FORMAT, DATETIME_FORMAT = "yyyy-mm-dd", "yyyy-mm-dd hh:mm"
TEMPLATE_ROWS = 1000  # the empty rows of a template whose text columns are formatted as text


def to_xlsx(rows: Iterable[Mapping[str, object]], sheet: str = "数据", *, columns: list[str] | None = None,
            notes: Mapping[str, list[str]] | None = None, datetime_format: str = DATETIME_FORMAT) -> bytes:
    frame = pd.DataFrame([{k: _local(v) for k, v in row.items()} for row in rows], columns=columns)
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name=sheet[:31], index=False)
        sheet_obj = writer.sheets[sheet[:31]]
        _date_formats(sheet_obj, datetime_format)
        for idx, column in enumerate(frame.columns, start=1):
            width = max([len(str(column))] + [len(str(v)) for v in frame[column].head(200)]) + 2
            letter = sheet_obj.cell(row=1, column=idx).column_letter
            sheet_obj.column_dimensions[letter].width = min(width * 1.6, 60)
        text_columns(sheet_obj, list(frame.columns), max(len(frame), TEMPLATE_ROWS if frame.empty else 0))
        for name, lines in (notes or {}).items():
            pd.DataFrame({"说明": lines}).to_excel(writer, sheet_name=name[:31], index=False)
        for written in writer.sheets.values():
            _as_text(written)
    return buffer.getvalue()


def text_columns(sheet, columns: list[str], rows: int) -> None:
    """Format the ``TEXT_HEADERS`` among ``columns`` (the sheet's header row, in order) as text, for rows 2 to
    ``rows`` + 1: an export's rows, or a template's empty rows (``TEMPLATE_ROWS``). The column's style is what Excel
    gives a cell typed in later; the cells themselves carry it too, as some spreadsheet programs read only the
    cell's. Every template that has such a column goes through here (``to_xlsx``; the organisations template,
    core/organisations.py ``template``)."""
    for idx, column in enumerate(columns, start=1):
        if column in TEXT_HEADERS:
            sheet.column_dimensions[sheet.cell(row=1, column=idx).column_letter].number_format = "@"
            for row in range(2, rows + 2):
                sheet.cell(row=row, column=idx).number_format = "@"


def _date_formats(sheet, datetime_format: str) -> None:
    """Each date cell in the date format, each date-and-time cell in ``datetime_format`` (pandas's openpyxl writer
    ignores the formats given to ExcelWriter)."""
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, datetime):
                cell.number_format = datetime_format
            elif isinstance(cell.value, date):
                cell.number_format = DATE_FORMAT


def _local(value: object) -> object:
    """An aware datetime as Beijing wall time (Excel has no time zones; openpyxl refuses an aware one)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(BEIJING).replace(tzinfo=None)
    return value


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what Excel (or a CSV saved from it) may run as a formula/DDE


def _as_text(sheet) -> None:
    """Every string cell that begins like a formula is stored as a string with Excel's quote prefix (the
    apostrophe, without changing the text): openpyxl writes a string beginning with "=" as a live formula, and
    without the prefix Excel would turn "+…", "-…", "@…" into one as soon as the cell is edited. Numbers are left
    alone (a negative amount stays a number)."""
    for row in sheet.iter_rows():
        for cell in row:
            if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                cell.data_type = "s"
                cell.quotePrefix = True


XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
