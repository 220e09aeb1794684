"""Excel export of any list (pandas + openpyxl), with Chinese headers.

What a person typed (a firm's name, a reason, a rubric item) reaches Excel as text, never as a formula (OWASP
"CSV/formula injection"): see ``_as_text``. No export of ours writes a formula on purpose.
"""
from __future__ import annotations

import io
from typing import Iterable, Mapping

import pandas as pd


def to_xlsx(rows: Iterable[Mapping[str, object]], sheet: str = "数据", *, columns: list[str] | None = None,
            notes: Mapping[str, list[str]] | None = None) -> bytes:
    frame = pd.DataFrame(list(rows), columns=columns)
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name=sheet[:31], index=False)
        sheet_obj = writer.sheets[sheet[:31]]
        for idx, column in enumerate(frame.columns, start=1):
            width = max([len(str(column))] + [len(str(v)) for v in frame[column].head(200)]) + 2
            sheet_obj.column_dimensions[sheet_obj.cell(row=1, column=idx).column_letter].width = min(width * 1.6, 60)
        for name, lines in (notes or {}).items():
            pd.DataFrame({"说明": lines}).to_excel(writer, sheet_name=name[:31], index=False)
        for written in writer.sheets.values():
            _as_text(written)
    return buffer.getvalue()


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
