"""Excel export of any list (pandas + openpyxl), with Chinese headers."""
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
    return buffer.getvalue()


XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
