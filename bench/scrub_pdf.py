"""What the public copy of a large PDF costs (core/scrub.py), beside the same module at another git revision.

A tagged report of N pages, as Word exports one: per page 40 lines of text each in its marked content (/P <</MCID n>>
BDC … EMC) with a structure element, 10 links, a figure with its /Alt; with --actual-text, one line per page also
carries an /ActualText in its marked content (what makes the scrubber parse the page's content); with --boxes, every
page also draws a table as Word does, with filled rectangles: a dark header band under white text, thin borders
around the rows and an underline (what makes the scrubber read the pages for text under a dark box; none is there).

    .venv/bin/python bench/scrub_pdf.py --against HEAD~3               # 250, 500, 1000 pages
    .venv/bin/python bench/scrub_pdf.py --against HEAD~3 --actual-text
    .venv/bin/python bench/scrub_pdf.py --against HEAD~3 --boxes

Best of three, CPU time of this process, the two modules alternating. The reading for covered text, done in the
text extraction's child process in the application, is done in this process here (FILE_EXTRACT_ISOLATED off), so
that its time is counted.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scrub_fields import module_at  # noqa: E402


# A table as Word draws it (the fills first, then the text): a dark blue header band with white text, the body rows'
# borders as thin filled rectangles, an underline under the last row.
TABLE = b"\n".join([  # below the 40 lines (the last at y 98)
    b"0.12 0.2 0.4 rg 50 70 495 18 re f",
    b"1 1 1 rg BT /F1 10 Tf 56 75 Td (Indicator) Tj 200 0 Td (Score) Tj ET",
    b"0 g " + b" ".join(b"50 %d 495 0.5 re f" % y for y in range(10, 71, 20)),
    b"50 10 0.5 60 re f 297 10 0.5 60 re f 545 10 0.5 60 re f",
    b"BT /F1 10 Tf 56 55 Td (Funds in place) Tj 0 -20 Td (Quantity done) Tj 0 -20 Td (Satisfaction) Tj ET",
    b"56 12 80 0.6 re f"])


def report(pages: int, actual_text: bool, boxes: bool = False) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import (ArrayObject, DecodedStreamObject, DictionaryObject, FloatObject, NameObject,
                               NumberObject, TextStringObject)

    def name(n: str) -> NameObject:
        return NameObject(n)

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({name("/Type"): name("/Font"), name("/Subtype"): name("/Type1"),
                                                name("/BaseFont"): name("/Helvetica")}))
    tree = writer._add_object(DictionaryObject({name("/Type"): name("/StructTreeRoot")}))
    elements = []
    for p in range(pages):
        page = writer.add_blank_page(595, 842)
        page[name("/Resources")] = DictionaryObject({name("/Font"): DictionaryObject({name("/F1"): font})})
        lines = []
        for line in range(40):
            extra = b" /ActualText (Line)" if actual_text and line == 0 else b""
            lines.append(b"/P <</MCID %d%s>> BDC BT /F1 10 Tf 50 %d Td (Page %d line %d of the report text) Tj ET EMC"
                         % (line, extra, 800 - 18 * line, p, line))
            elements.append(writer._add_object(DictionaryObject({
                name("/Type"): name("/StructElem"), name("/S"): name("/P"), name("/P"): tree,
                name("/Pg"): page.indirect_reference, name("/K"): NumberObject(line)})))
        elements.append(writer._add_object(DictionaryObject({
            name("/Type"): name("/StructElem"), name("/S"): name("/Figure"), name("/P"): tree,
            name("/Pg"): page.indirect_reference, name("/Alt"): TextStringObject("图 %d" % p)})))
        stream = DecodedStreamObject()
        stream.set_data(b"\n".join(lines + ([TABLE] if boxes else [])))
        page[name("/Contents")] = writer._add_object(stream)
        page[name("/Annots")] = ArrayObject(writer._add_object(DictionaryObject({
            name("/Type"): name("/Annot"), name("/Subtype"): name("/Link"),
            name("/Rect"): ArrayObject([FloatObject(50), FloatObject(y), FloatObject(200), FloatObject(y + 10)]),
            name("/A"): DictionaryObject({name("/S"): name("/URI"), name("/URI"): TextStringObject("https://x.cn/")})}))
            for y in range(100, 300, 20))
    tree.get_object()[name("/K")] = ArrayObject(elements)
    writer.root_object[name("/StructTreeRoot")] = tree
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", help="a git revision whose core/scrub.py is timed too")
    parser.add_argument("--sizes", default="250,500,1000")
    parser.add_argument("--actual-text", action="store_true")
    parser.add_argument("--boxes", action="store_true")
    args = parser.parse_args()
    from evalhub.core import files, scrub

    files.DEFAULTS["FILE_EXTRACT_ISOLATED"] = False  # the child's reading counted in this process (above)

    other = module_at(args.against) if args.against else None
    print(f"{'pages':>6} {'size':>8} {'this tree':>10}" + (f" {args.against:>12}" if other else ""))
    for size in (int(s) for s in args.sizes.split(",")):
        data = report(size, args.actual_text, args.boxes)
        times: dict[str, float] = {}
        for _ in range(3):
            for key, module in (("new", scrub), ("old", other)):
                if module is None:
                    continue
                started = time.process_time()
                module.scrubbed("pdf", data)
                times[key] = min(times.get(key, 9e9), time.process_time() - started)
        print(f"{size:>6} {len(data) / 1e6:>6.1f}MB {times['new']:>9.2f}s"
              + (f" {times['old']:>11.2f}s" if other else ""), flush=True)


if __name__ == "__main__":
    main()
