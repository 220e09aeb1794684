"""A public copy whose "redaction" only paints over the text (core/scrub.py): the names under a black box in a PDF,
or black-highlighted or black-shaded in black in a .docx, look redacted and are still in the file — copied out with
the mouse, shown again by removing the highlight. Refused with what to do; what only looks like it (white text on a
dark header band, a bullet square, an underline, an empty black bar) is published (DOMAIN §2 step 6: only the
redacted report is published)."""
from __future__ import annotations

import io

import pytest

from evalhub.core import extract, files, scrub
from evalhub.core.errors import ValidationFailed
from tests.test_scrub_hidden_content import _refused, _with_body, _with_style, scrubbed_within

NAME = b"BT /F1 12 Tf 50 700 Td (Wang Jianguo 13899990000) Tj ET"  # glyphs from y 697.5 to 709.5, x 50 to 210
OVER_NAME = b"48 696 200 14 re f"
FORM_BOX = b"0 g 0 0 200 14 re f"  # the form /Box: a black bar drawn where the form is placed


def _value(value):
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, TextStringObject

    if isinstance(value, dict):
        return DictionaryObject({NameObject(k): _value(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return ArrayObject(_value(v) for v in value)
    if isinstance(value, str):
        return NameObject(value) if value.startswith("/") else TextStringObject(value)
    return FloatObject(value)


def _pdf(*contents: bytes, annotations: list[dict] | None = None) -> bytes:
    """A PDF of one page per content stream (Helvetica as /F1; the graphics states /Translucent (alpha 0.3),
    /Multiply (a blend mode) and /Opaque; the form /Box), ``annotations`` on its last page."""
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject

    def name(n: str) -> NameObject:
        return NameObject(n)

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({name("/Type"): name("/Font"), name("/Subtype"): name("/Type1"),
                                                name("/BaseFont"): name("/Helvetica")}))
    form = DecodedStreamObject()
    form.set_data(FORM_BOX)
    form.update({name("/Type"): name("/XObject"), name("/Subtype"): name("/Form"),
                 name("/BBox"): _value([0, 0, 200, 14])})
    form = writer._add_object(form)
    states = DictionaryObject({
        name("/Translucent"): DictionaryObject({name("/ca"): _value(0.3)}),
        name("/Multiply"): DictionaryObject({name("/BM"): name("/Multiply")}),
        name("/Opaque"): DictionaryObject({name("/ca"): _value(1), name("/BM"): name("/Normal")})})
    for content in contents:
        page = writer.add_blank_page(595, 842)
        page[name("/Resources")] = DictionaryObject({
            name("/Font"): DictionaryObject({name("/F1"): font}), name("/ExtGState"): states,
            name("/XObject"): DictionaryObject({name("/Box"): form})})
        stream = DecodedStreamObject()
        stream.set_data(content)
        page[name("/Contents")] = writer._add_object(stream)
    if annotations:
        page[name("/Annots")] = ArrayObject(writer._add_object(DictionaryObject(
            {name("/Type"): name("/Annot"), **{name(k): _value(v) for k, v in a.items()}})) for a in annotations)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _text_of(data: bytes) -> str:
    return extract.pdf_text(data)


# --- PDF: text, then a box painted over it ---------------------------------------------------------------------

def test_a_pdf_with_text_under_a_black_box_is_refused_and_nothing_is_stored(world, client, login):
    """The classic: the clerk drew black rectangles over the names; the page looks redacted, pdftotext reads them."""
    data = _pdf(b"BT /F1 12 Tf 50 750 Td (Report text) Tj ET", NAME + b" 0 g " + OVER_NAME)
    assert "13899990000" in _text_of(data)
    _refused(world, client, login, "公开版.pdf", data, "PDF 第 2 页有文字被黑框")


@pytest.mark.parametrize("box", [
    b"0 g " + OVER_NAME,  # gray
    b"0 0 0 rg " + OVER_NAME,  # RGB
    b"0.1 0.12 0.1 rg " + OVER_NAME,  # near-black
    b"0.2 g " + OVER_NAME,  # a dark grey
    b"0 0 0 1 k " + OVER_NAME,  # CMYK black
    b"0.7 0.6 0.6 0.8 k " + OVER_NAME,  # a rich black
    b"0 0 0.5 rg " + OVER_NAME,  # navy
    OVER_NAME,  # no colour set: black
    b"0 g 48 696 m 248 696 l 248 710 l 48 710 l h f",  # a path, not re
    b"0 g 48 696 m 248 696 l 248 710 l 48 710 l f*",  # not closed: the fill closes it
    b"0 g 52 696 m 244 696 l 248 700 l 248 706 l 244 710 l 52 710 l 48 706 l 48 700 l h f",  # corners cut off
    b"q 1 0 0 1 48 696 cm /Box Do Q",  # in a form (a stamp)
    b"/Opaque gs 0 g " + OVER_NAME,  # transparency said, and none
    b"0 g 48 696 100 14 re 148 696 100 14 re f",  # two boxes in one path
])
def test_text_painted_over_by_a_dark_box_is_refused(box):
    with pytest.raises(ValidationFailed, match="第 1 页有文字被黑框") as refused:
        scrub.scrubbed("pdf", _pdf(NAME + b" " + box))
    assert "应用密文" in refused.value.message and "删除文字后再以黑框表示" in refused.value.message
    assert refused.value.fields == {"file": "含被黑框遮盖但未删除的文字"}


def test_the_pages_are_named():
    covered = NAME + b" 0 g " + OVER_NAME
    with pytest.raises(ValidationFailed, match="第 1、3 页有文字"):
        scrub.scrubbed("pdf", _pdf(covered, b"BT /F1 12 Tf 50 750 Td (Report text) Tj ET", covered))


@pytest.mark.parametrize("text", [
    b"0 g " + NAME,  # black on black
    b"0.1 g " + NAME,  # near-black on black
    b"3 Tr 1 g " + NAME,  # invisible (an OCR layer laid over the box): white, but not painted
])
def test_text_drawn_on_a_black_box_in_its_colour_is_refused(text):
    """A Word document's black shading with black text, exported: the box first, the text after, unreadable on it."""
    with pytest.raises(ValidationFailed, match="有文字被黑框"):
        scrub.scrubbed("pdf", _pdf(b"0 g " + OVER_NAME + b" " + text))


@pytest.mark.parametrize("annotation", [
    {"/Subtype": "/Square", "/Rect": [48, 696, 248, 710], "/IC": [0, 0, 0], "/C": [0, 0, 0]},
    {"/Subtype": "/Highlight", "/Rect": [48, 696, 248, 710], "/C": [0, 0, 0],
     "/QuadPoints": [48, 710, 248, 710, 48, 696, 248, 696]},
    {"/Subtype": "/Ink", "/Rect": [40, 690, 260, 716], "/C": [0.05, 0.05, 0.05], "/BS": {"/W": 14},
     "/InkList": [[48, 703, 130, 703.5, 248, 703]]},
])
def test_text_under_a_black_comment_is_refused(annotation):
    """A rectangle, a highlighter or a thick pen in black drawn over the names as a comment (the copy keeps them)."""
    with pytest.raises(ValidationFailed, match="有文字被黑框"):
        scrub.scrubbed("pdf", _pdf(NAME, annotations=[annotation]))


def _published(data: bytes) -> str:
    """The public copy's text (the check answered: published)."""
    return _text_of(scrub.scrubbed("pdf", data))


@pytest.mark.parametrize("page", [
    # a black box, the text on it in another colour: a label, a table's header band
    b"0 g " + OVER_NAME + b" 1 g " + NAME,
    b"0 g " + OVER_NAME + b" 1 0 0 rg " + NAME,
    b"0 g " + OVER_NAME + b" 1 1 0 rg " + NAME,
    b"0.12 0.2 0.4 rg 40 690 500 26 re f 1 1 1 rg " + NAME + b" 0 g BT /F1 12 Tf 50 660 Td (Body 2025) Tj ET",
    # a thin black underline, table borders, a bullet square beside the text, drawn after it
    NAME + b" 0 g 50 697 160 0.8 re f",
    NAME + b" 0 g 40 694 420 0.5 re f 40 714 420 0.5 re f 40 694 0.5 20 re f 460 694 0.5 20 re f",
    NAME + b" 0 g 38 700 6 6 re f",
    # a box over a sliver of the text, or beside it
    NAME + b" 0 g 48 696 200 4 re f",
    NAME + b" 0 g 48 730 200 14 re f",
    # a light box drawn over the text (a colour, not a black bar)
    NAME + b" 1 1 0 rg " + OVER_NAME,
    NAME + b" 0.8 g " + OVER_NAME,
    # a dark fill drawn see-through over the text: a constant alpha, a blend mode (a flattened highlight)
    NAME + b" q /Translucent gs 0 g " + OVER_NAME + b" Q",
    NAME + b" q /Multiply gs 0 0 0.3 rg " + OVER_NAME + b" Q",
    # a black band, a white cell on it, black text in the cell
    b"0 g 40 680 400 40 re f 1 g 45 690 300 24 re f 0 g " + NAME,
    # a frame: a box with a hole around the text (even-odd)
    NAME + b" 0 g 40 690 220 30 re 42 692 216 26 re f*",
    # what a redaction leaves in the text's place, under a box
    b"BT /F1 12 Tf 50 700 Td (XXXX *** ---) Tj ET 0 g " + OVER_NAME,
    # a black circle over the text (a bullet, a logo): not a box
    NAME + b" 0 g 48 703 m 48 711 148 711 148 703 c 148 695 48 695 48 703 c f",
])
def test_what_only_looks_like_a_black_box_is_published(page):
    """Regression guard: no false refusal of the ordinary drawings of a report."""
    assert "13899990000" in _published(_pdf(page)) or b"XXXX" in page


@pytest.mark.parametrize("annotation", [
    {"/Subtype": "/Highlight", "/Rect": [48, 696, 248, 710], "/C": [1, 1, 0],
     "/QuadPoints": [48, 710, 248, 710, 48, 696, 248, 696]},
    {"/Subtype": "/Square", "/Rect": [48, 696, 248, 710], "/C": [0, 0, 0]},  # a black outline, no interior
    {"/Subtype": "/Square", "/Rect": [48, 696, 248, 710], "/IC": [0, 0, 0], "/CA": 0.4},
])
def test_comments_that_do_not_hide_the_text_are_published(annotation):
    assert "13899990000" in _published(_pdf(NAME, annotations=[annotation]))


def test_a_pdf_without_a_filled_path_is_not_read_again(monkeypatch):
    """The common case costs nothing more: a report of text (and links) is not sent to the child at all."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from scrub_pdf import report

    class Read(Exception):
        pass

    def read(data):
        raise Read

    monkeypatch.setattr(files, "covered_pdf_pages", read)
    scrub.scrubbed("pdf", report(3, actual_text=True))
    with pytest.raises(Read):
        scrub.scrubbed("pdf", _pdf(NAME + b" 0.9 g 0 0 10 10 re f"))


def test_the_check_runs_with_the_limits_of_a_text_extraction(monkeypatch):
    """pdfminer may take long on a page built to be slow: the check runs in the extraction's child, and a child out
    of time is refused as an extraction is."""
    def out_of_time(*args, **kwargs):
        raise extract.ExtractionError("timeout")

    monkeypatch.setattr(extract, "extract", out_of_time)
    with pytest.raises(ValidationFailed, match="读取文件中的文字超过"):
        scrub.scrubbed("pdf", _pdf(NAME + b" 0 g " + OVER_NAME))


# --- .docx: blacked out with highlighting or shading, the text black too -------------------------------------------

def _run(properties: str, text: str = "王建国 13899990000") -> str:
    return f'<w:p><w:r><w:t>访谈对象：</w:t></w:r><w:r><w:rPr>{properties}</w:rPr><w:t>{text}</w:t></w:r></w:p>'


BLACK = '<w:color w:val="000000"/>'


def test_a_docx_with_black_highlighted_black_text_is_refused_and_nothing_is_stored(world, client, login):
    _refused(world, client, login, "公开版.docx", _with_body(_run('<w:highlight w:val="black"/>' + BLACK)),
             "正文中有 1 处文字用黑色")


@pytest.mark.parametrize("properties", [
    '<w:highlight w:val="black"/>' + BLACK,
    BLACK + '<w:shd w:val="clear" w:color="auto" w:fill="000000"/>',
    '<w:color w:val="000000" w:themeColor="text1"/><w:shd w:val="solid" w:color="000000" w:fill="FFFFFF"/>',
    '<w:shd w:val="solid" w:color="auto" w:fill="auto"/>' + BLACK,  # solid in the automatic colour: black
    '<w:shd w:val="pct90" w:color="000000" w:fill="FFFFFF"/>' + BLACK,
    '<w:highlight w:val="black"/><w:color w:val="262626"/>',  # dark grey text on black
    '<w:highlight w:val="darkBlue"/>' + BLACK,
    "<w:shd w:fill='1A1A1A'/><w:color w:val='0D0D0D'/>",  # any quote, the pattern left out (clear)
])
def test_every_way_of_blacking_out_in_black_is_refused(properties):
    with pytest.raises(ValidationFailed, match="正文中有 1 处文字用黑色") as refused:
        scrub.scrubbed("docx", _with_body(_run(properties)))
    assert "应用密文" in refused.value.message and "删除文字后再以黑框表示" in refused.value.message
    assert refused.value.fields == {"file": "含涂黑但未删除的文字"}


BLACK_OUT_STYLE = ('<w:style w:type="character" w:customStyle="1" w:styleId="a9"><w:name w:val="涂黑"/>'
                   '<w:rPr><w:color w:val="000000"/><w:highlight w:val="black"/></w:rPr></w:style>')


@pytest.mark.parametrize("style, body", [
    # a character style doing it
    (BLACK_OUT_STYLE, '<w:p><w:r><w:rPr><w:rStyle w:val="a9"/></w:rPr><w:t>王建国</w:t></w:r></w:p>'),
    # a style based on it
    (BLACK_OUT_STYLE + '<w:style w:type="character" w:styleId="b1"><w:name w:val="b1"/><w:basedOn w:val="a9"/>'
     '</w:style>', '<w:p><w:r><w:rPr><w:rStyle w:val="b1"/></w:rPr><w:t>王建国</w:t></w:r></w:p>'),
    # the style shades, the run sets the colour
    ('<w:style w:type="character" w:styleId="c1"><w:name w:val="c1"/><w:rPr><w:shd w:val="clear" w:color="auto" '
     'w:fill="000000"/></w:rPr></w:style>', '<w:p><w:r><w:rPr><w:rStyle w:val="c1"/>' + BLACK + '</w:rPr>'
     '<w:t>王建国</w:t></w:r></w:p>'),
    # a paragraph style shading its paragraphs black, its text black
    ('<w:style w:type="paragraph" w:styleId="p1"><w:name w:val="p1"/><w:pPr><w:shd w:val="clear" w:color="auto" '
     'w:fill="000000"/></w:pPr><w:rPr><w:color w:val="000000"/></w:rPr></w:style>',
     '<w:p><w:pPr><w:pStyle w:val="p1"/></w:pPr><w:r><w:t>王建国</w:t></w:r></w:p>'),
])
def test_text_blacked_out_by_its_style_is_refused(style, body):
    with pytest.raises(ValidationFailed, match="处文字用黑色"):
        scrub.scrubbed("docx", _with_style(style, body))


@pytest.mark.parametrize("body", [
    # the paragraph shaded black, the text black
    '<w:p><w:pPr><w:shd w:val="clear" w:color="auto" w:fill="000000"/></w:pPr><w:r><w:rPr>' + BLACK
    + '</w:rPr><w:t>王建国</w:t></w:r></w:p>',
    # a table cell shaded black, black text in it
    '<w:tbl><w:tr><w:tc><w:tcPr><w:tcW w:w="2000" w:type="dxa"/><w:shd w:val="clear" w:color="auto" w:fill="000000"/>'
    '</w:tcPr><w:p><w:r><w:rPr>' + BLACK + '</w:rPr><w:t>王建国</w:t></w:r></w:p></w:tc></w:tr></w:tbl>',
])
def test_text_on_a_black_paragraph_or_cell_in_black_is_refused(body):
    with pytest.raises(ValidationFailed, match="处文字用黑色"):
        scrub.scrubbed("docx", _with_body(body))


def test_text_blacked_out_in_a_header_is_refused():
    from tests.test_audit_leaks2 import _docx, _repack
    from tests import factories

    data = _repack(_docx(factories.report_text()), add={"word/header1.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:hdr xmlns:w="http://schemas.openxmlformats.org/'
        'wordprocessingml/2006/main">' + _run('<w:highlight w:val="black"/>' + BLACK) + "</w:hdr>").encode()})
    with pytest.raises(ValidationFailed, match="页眉中有 1 处"):
        scrub.scrubbed("docx", data)


@pytest.mark.parametrize("body", [
    # white or light text on black: a label
    _run('<w:highlight w:val="black"/><w:color w:val="FFFFFF"/>'),
    _run('<w:shd w:val="clear" w:color="auto" w:fill="000000"/><w:color w:val="FFC000"/>'),
    # the automatic colour: Word shows it white on a dark background
    _run('<w:highlight w:val="black"/>'),
    _run('<w:shd w:val="clear" w:color="auto" w:fill="000000"/><w:color w:val="auto"/>'),
    # a black bar with nothing under it, or only what a redaction leaves
    _run('<w:highlight w:val="black"/>' + BLACK, "　　　　　　"),
    _run('<w:shd w:val="clear" w:color="auto" w:fill="000000"/>' + BLACK, "XXXX"),
    _run('<w:shd w:val="clear" w:color="auto" w:fill="000000"/>' + BLACK, "■■■■"),
    '<w:p><w:r><w:rPr><w:highlight w:val="black"/>' + BLACK + '</w:rPr></w:r></w:p>',
    # a light shading or a colour highlight with black text
    _run('<w:shd w:val="clear" w:color="auto" w:fill="D9D9D9"/>' + BLACK),
    _run('<w:highlight w:val="yellow"/>' + BLACK),
    _run('<w:highlight w:val="black"/><w:highlight w:val="none"/>' + BLACK),  # said twice: the last one holds
    # black only before a tracked formatting change, or on the paragraph mark (no text)
    '<w:p><w:r><w:rPr>' + BLACK + '<w:rPrChange w:id="5" w:author="张伟" w:date="2025-06-01T10:00:00Z"><w:rPr>'
    '<w:highlight w:val="black"/></w:rPr></w:rPrChange></w:rPr><w:t>王建国</w:t></w:r></w:p>',
    '<w:p><w:pPr><w:rPr><w:highlight w:val="black"/></w:rPr></w:pPr><w:r><w:rPr>' + BLACK + '</w:rPr>'
    '<w:t>王建国</w:t></w:r></w:p>',
    # a black cell, white text in it; a black cell's neighbour
    '<w:tbl><w:tr><w:tc><w:tcPr><w:shd w:val="clear" w:color="auto" w:fill="000000"/></w:tcPr><w:p><w:r><w:rPr>'
    '<w:color w:val="FFFFFF"/></w:rPr><w:t>表头</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:rPr>' + BLACK
    + '</w:rPr><w:t>王建国</w:t></w:r></w:p></w:tc></w:tr></w:tbl>',
])
def test_what_only_looks_blacked_out_is_published(body):
    """Regression guard: no false refusal of ordinary Word formatting."""
    scrub.scrubbed("docx", _with_body(body))


def test_a_black_out_style_nobody_uses_is_published():
    scrub.scrubbed("docx", _with_style(BLACK_OUT_STYLE, '<w:p><w:r><w:t>正文</w:t></w:r></w:p>'))


@pytest.mark.parametrize("piece", ["<w:p>", "<w:tc>", "<w:r>", "<w:rPr>", "<w:pPr>x", "<w:t>x", "</w:p>", "</w:r>",
                                   "<w:tc><w:p><w:r><w:t>王</w:t></w:r>", "<w:tbl>", "<w:tr>", "</w:tbl>",
                                   "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>王</w:t></w:r>"])
def test_markup_left_unclosed_thousands_of_times_is_scanned_once(piece):
    """As the other checks of the body (tests/test_scrub_hidden_content.py): linear whatever the bytes, here with a
    black shading in the part, so that its runs are read."""
    body = ('<w:p><w:pPr><w:shd w:val="clear" w:color="auto" w:fill="000000"/></w:pPr><w:r><w:rPr>'
            '<w:color w:val="FFFFFF"/></w:rPr><w:t>表头</w:t></w:r></w:p>' + piece * 40_000)
    scrubbed_within(_with_body(body), f"{piece!r} × 40,000")


# --- .docx: a table style shading the cells dark (w:tblStyle → a w:style of type table, its conditional parts) ------

LOOK = '<w:tblLook w:val="04A0" w:firstRow="1" w:lastRow="0" w:firstColumn="1" w:lastColumn="0" w:noHBand="0" ' \
       'w:noVBand="1"/>'
DARK_CELL = '<w:tcPr><w:shd w:val="clear" w:color="auto" w:fill="1F1F1F"/></w:tcPr>'
WHITE_TEXT = '<w:rPr><w:b/><w:color w:val="FFFFFF" w:themeColor="background1"/></w:rPr>'


def _table_style(*parts: str, style_id: str = "t1", extra: str = "") -> str:
    """A table style whose conditional parts are ``parts`` ("firstRow:<its XML>"; "" before the colon: the style's own
    properties)."""
    own = "".join(p.split(":", 1)[1] for p in parts if p.startswith(":"))
    conditional = "".join(f'<w:tblStylePr w:type="{p.split(":", 1)[0]}">{p.split(":", 1)[1]}</w:tblStylePr>'
                          for p in parts if not p.startswith(":"))
    return (f'<w:style w:type="table" w:styleId="{style_id}"><w:name w:val="{style_id}"/>{extra}'
            f'<w:tblPr><w:tblBorders><w:top w:val="single" w:sz="4" w:color="000000"/></w:tblBorders></w:tblPr>'
            f'{own}{conditional}</w:style>')


def _table(rows: list[list[str]], style: str | None = "t1", look: str = LOOK, cell: str = "") -> str:
    """A table of ``rows``, each cell a run of text in the run properties given (its cell properties ``cell``)."""
    properties = (f'<w:tblStyle w:val="{style}"/>' if style else "") + '<w:tblW w:w="0" w:type="auto"/>' + look
    return (f"<w:tbl><w:tblPr>{properties}</w:tblPr><w:tblGrid>" + '<w:gridCol w:w="2000"/>' * len(rows[0])
            + "</w:tblGrid>" + "".join(
                '<w:tr><w:trPr><w:cnfStyle w:val="000000000000"/></w:trPr>' + "".join(
                    f'<w:tc>{cell}<w:p><w:r><w:rPr>{run}</w:rPr><w:t>{text}</w:t></w:r></w:p></w:tc>'
                    for run, text in row) + "</w:tr>" for row in rows) + "</w:tbl>")


BODY = [("", "序号"), ("", "名称")]
NAMES = [(BLACK, "王建国"), (BLACK, "13899990000")]


def test_a_table_blacked_out_by_its_style_is_refused_and_nothing_is_stored(world, client, login):
    _refused(world, client, login, "公开版.docx", _with_style(_table_style(":" + DARK_CELL), _table([BODY, NAMES])),
             "正文中有 2 处文字用黑色")


@pytest.mark.parametrize("style, table", [
    # the style shades every cell (its own w:tcPr), the text black
    (_table_style(":" + DARK_CELL), _table([NAMES])),
    # the style's text colour black, its cells black: the runs say nothing
    (_table_style(":" + DARK_CELL + "<w:rPr>" + BLACK + "</w:rPr>"), _table([[("", "王建国")]])),
    # the first row's conditional part shades dark; the names in the first row, in black
    (_table_style("firstRow:" + DARK_CELL), _table([NAMES, BODY])),
    # the look said as bits only (0x0020: the first row's part applies)
    (_table_style("firstRow:" + DARK_CELL), _table([NAMES, BODY], look='<w:tblLook w:val="0020"/>')),
    # banded rows: the first band (the row after the header) dark
    (_table_style("band1Horz:" + DARK_CELL), _table([BODY, NAMES, BODY])),
    # no tblLook at all: banding applies (its default)
    (_table_style("band1Horz:" + DARK_CELL), _table([NAMES, BODY], look="")),
    # the last row's part, the names in the last row
    (_table_style("lastRow:" + DARK_CELL), _table([BODY, BODY, NAMES], look='<w:tblLook w:lastRow="1"/>')),
    # the whole table's part; the table's own shading (w:tblPr)
    (_table_style("wholeTable:" + DARK_CELL), _table([NAMES])),
    (_table_style(":<w:tblPr><w:shd w:val='clear' w:color='auto' w:fill='000000'/></w:tblPr>"), _table([NAMES])),
    # a style based on the dark one
    (_table_style("firstRow:" + DARK_CELL) + _table_style(style_id="t2", extra='<w:basedOn w:val="t1"/>'),
     _table([NAMES], style="t2")),
    # the first row's part over the first column's (Office's order): the corner cell dark
    (_table_style("firstRow:" + DARK_CELL, "firstCol:<w:tcPr><w:shd w:val='clear' w:fill='FFFFFF'/></w:tcPr>"),
     _table([[(BLACK, "王建国")], BODY[:1]])),
])
def test_text_blacked_out_by_a_table_style_is_refused(style, table):
    with pytest.raises(ValidationFailed, match="正文中有 [12] 处文字用黑色") as refused:
        scrub.scrubbed("docx", _with_style(style, table))
    assert refused.value.fields == {"file": "含涂黑但未删除的文字"}


def test_a_table_blacked_out_by_the_default_table_style_is_refused():
    """A table naming no style takes the document's default one (w:default="1"; here in place of Normal Table)."""
    from tests.test_audit_leaks2 import _docx, _repack
    from tests import factories

    def edit(name: str, content: bytes) -> bytes:
        if name in ("word/styles.xml", "word/stylesWithEffects.xml"):
            style = _table_style(":" + DARK_CELL, style_id="t9").replace('w:type="table"',
                                                                         'w:type="table" w:default="1"')
            return content.replace(b' w:default="1" w:styleId="TableNormal"', b' w:styleId="TableNormal"').replace(
                b"</w:styles>", style.encode() + b"</w:styles>", 1)
        return content.replace(b"</w:body>", _table([NAMES], style=None).encode() + b"</w:body>", 1) \
            if name == "word/document.xml" else content

    with pytest.raises(ValidationFailed, match="正文中有 2 处文字用黑色"):
        scrub.scrubbed("docx", _repack(_docx(factories.report_text()), edit=edit))


def _normal_says_black(name: str, content: bytes) -> bytes:
    if name in ("word/styles.xml", "word/stylesWithEffects.xml"):
        content = content.replace(b'<w:name w:val="Normal"/>', b'<w:name w:val="Normal"/><w:rPr>' + BLACK.encode()
                                  + b"</w:rPr>", 1)
        return content.replace(b"</w:styles>", _table_style("firstRow:" + DARK_CELL + WHITE_TEXT).encode()
                               + _PARAGRAPH_BLACK + b"</w:styles>", 1)
    return content


_PARAGRAPH_BLACK = ('<w:style w:type="paragraph" w:styleId="p9"><w:name w:val="p9"/><w:rPr>' + BLACK
                    + "</w:rPr></w:style>").encode()


@pytest.mark.parametrize("paragraph, refused", [
    ("", False),  # Normal (black) under the table style's white: the header band reads white
    ('<w:pPr><w:pStyle w:val="p9"/></w:pPr>', True),  # a paragraph style named in the cell (black) over it
])
def test_a_header_band_and_the_paragraph_styles(paragraph, refused):
    from tests.test_audit_leaks2 import _docx, _repack
    from tests import factories

    table = _table([[("", "序号")]]).replace("<w:p><w:r>", f"<w:p>{paragraph}<w:r>")

    def edit(name: str, content: bytes) -> bytes:
        content = _normal_says_black(name, content)
        return content.replace(b"</w:body>", table.encode() + b"</w:body>", 1) if name == "word/document.xml" \
            else content

    data = _repack(_docx(factories.report_text()), edit=edit)
    if refused:
        with pytest.raises(ValidationFailed, match="正文中有 1 处文字用黑色"):
            scrub.scrubbed("docx", data)
    else:
        scrub.scrubbed("docx", data)


@pytest.mark.parametrize("style, table", [
    # the classic header band: dark, its text white by the style (the runs say nothing, or white)
    (_table_style("firstRow:" + DARK_CELL + WHITE_TEXT), _table([[("", "序号"), ("", "名称")], NAMES])),
    (_table_style("firstRow:" + DARK_CELL + WHITE_TEXT), _table([[('<w:color w:val="FFFFFF"/>', "序号")], NAMES])),
    # the text in Word's automatic colour on the dark style
    (_table_style(":" + DARK_CELL), _table([[("", "王建国")]])),
    # the header's part not used by this table (tblLook firstRow 0), or the bands switched off
    (_table_style("firstRow:" + DARK_CELL), _table([NAMES], look='<w:tblLook w:firstRow="0"/>')),
    (_table_style("band1Horz:" + DARK_CELL), _table([BODY, NAMES], look='<w:tblLook w:firstRow="1" w:noHBand="1"/>')),
    # the dark band is the other one; a dark last row, the names elsewhere
    (_table_style("band2Horz:" + DARK_CELL), _table([BODY, NAMES, BODY])),
    (_table_style("lastRow:" + DARK_CELL), _table([NAMES, BODY], look='<w:tblLook w:lastRow="1"/>')),
    (_table_style("lastCol:" + DARK_CELL), _table([NAMES + [("", "备注")]], look='<w:tblLook w:lastColumn="1"/>')),
    # the cell's own shading overrides the style's: light, or "no colour"
    (_table_style(":" + DARK_CELL), _table([NAMES], cell='<w:tcPr><w:shd w:val="clear" w:fill="FFFFFF"/></w:tcPr>')),
    (_table_style(":" + DARK_CELL), _table([NAMES], cell='<w:tcPr><w:shd w:val="clear" w:fill="auto"/></w:tcPr>')),
    # the first row's part over the first column's: the corner cell light
    (_table_style("firstRow:<w:tcPr><w:shd w:val='clear' w:fill='FFFFFF'/></w:tcPr>", "firstCol:" + DARK_CELL),
     _table([[(BLACK, "王建国")], BODY[:1]])),
    # a dark table style nobody uses; a table style with a light shading
    (_table_style(":" + DARK_CELL), _table([NAMES], style=None)),
    (_table_style("firstRow:<w:tcPr><w:shd w:val='clear' w:fill='D9E2F3'/></w:tcPr>"), _table([NAMES])),
])
def test_a_table_style_that_only_looks_dark_is_published(style, table):
    scrub.scrubbed("docx", _with_style(style, table))


@pytest.mark.parametrize("piece", [
    "<w:tbl><w:tblPr><w:tblStyle w:val='t1'/><w:tblLook w:lastRow='1'/></w:tblPr><w:tr>",
    "<w:tr><w:tc><w:p><w:r><w:rPr><w:color w:val='000000'/></w:rPr><w:t>王</w:t></w:r></w:p></w:tc>",
    "<w:tr><w:tc><w:p><w:r><w:rPr><w:color w:val='000000'/></w:rPr><w:t>王</w:t></w:r></w:p></w:tc></w:tr>",
])
def test_a_styled_table_of_many_rows_or_left_unclosed_is_scanned_once(piece):
    """A table whose style shades its last row dark: each run's cell waits for the table's end (its place), once."""
    body = ("<w:tbl><w:tblPr><w:tblStyle w:val='t1'/><w:tblLook w:lastRow='1'/></w:tblPr>" + piece * 40_000
            + "</w:tbl>")
    scrubbed_within(_with_style(_table_style("lastRow:" + DARK_CELL), body), f"{piece!r} × 40,000")


# --- .docx: a dark shape floating in front of the text -------------------------------------------------------------

BLACK_FILL = '<a:solidFill><a:srgbClr val="000000"/></a:solidFill>'
SHAPE_STYLE = ('<wps:style><a:lnRef idx="2"><a:schemeClr val="accent1"/></a:lnRef><a:fillRef idx="{idx}"><a:schemeClr '
               'val="{fill}"/></a:fillRef><a:effectRef idx="0"><a:schemeClr val="accent1"/></a:effectRef><a:fontRef '
               'idx="minor"><a:schemeClr val="lt1"/></a:fontRef></wps:style>')


def _box_text(text: str, color: str = "") -> str:
    return (f'<wps:txbx><w:txbxContent><w:p><w:r><w:rPr>{color}</w:rPr><w:t>{text}</w:t></w:r></w:p>'
            '</w:txbxContent></wps:txbx>')


def _shape(fill: str = BLACK_FILL, *, behind: str = "0", wrap: str = "<wp:wrapNone/>", cy: int = 228600,
           box: str = "", style: str = SHAPE_STYLE.format(idx=1, fill="accent1"), inline: bool = False) -> str:
    """A run holding a rectangle as Word draws it (插入 › 形状 › 矩形), 2 inches by ``cy`` EMU, filled with ``fill``."""
    graphic = ('<a:graphic xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><a:graphicData uri="http://'
               'schemas.microsoft.com/office/word/2010/wordprocessingShape"><wps:wsp><wps:cNvSpPr/><wps:spPr><a:xfrm>'
               f'<a:off x="0" y="0"/><a:ext cx="1828800" cy="{cy}"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/>'
               f'</a:prstGeom>{fill}<a:ln><a:solidFill><a:srgbClr val="000000"/></a:solidFill></a:ln></wps:spPr>'
               f'{style}{box}<wps:bodyPr/></wps:wsp></a:graphicData></a:graphic>')
    if inline:
        return (f'<w:r><w:drawing><wp:inline><wp:extent cx="1828800" cy="{cy}"/><wp:docPr id="1" name="矩形 1"/>'
                f'{graphic}</wp:inline></w:drawing></w:r>')
    return ('<w:r><w:drawing><wp:anchor distT="0" distB="0" distL="114300" distR="114300" simplePos="0" '
            f'relativeHeight="251659264" behindDoc="{behind}" locked="0" layoutInCell="1" allowOverlap="1">'
            '<wp:simplePos x="0" y="0"/><wp:positionH relativeFrom="column"><wp:posOffset>720000</wp:posOffset>'
            '</wp:positionH><wp:positionV relativeFrom="paragraph"><wp:posOffset>0</wp:posOffset></wp:positionV>'
            f'<wp:extent cx="1828800" cy="{cy}"/><wp:effectExtent l="0" t="0" r="0" b="0"/>{wrap}'
            f'<wp:docPr id="1" name="矩形 1"/><wp:cNvGraphicFramePr/>{graphic}</wp:anchor></w:drawing></w:r>')


def _vml(attributes: str = 'fillcolor="black" stroked="f"', inner: str = "", wrap: str = "",
         style: str = "position:absolute;margin-left:56.7pt;margin-top:0;width:144pt;height:18pt;z-index:251659264"):
    """A run holding a VML rectangle (``inner`` in it, ``wrap`` after it)."""
    return (f'<w:r><w:pict><v:rect id="矩形 2" o:spid="_x0000_s1026" style="{style}" {attributes}>{inner}</v:rect>'
            f'{wrap}</w:pict></w:r>')


def _named(shape: str) -> str:
    """A paragraph of text with ``shape`` anchored in it, after an empty paragraph and before one."""
    return ('<w:p></w:p><w:p><w:r><w:t>访谈对象：</w:t></w:r>' + shape + '<w:r><w:t>王建国 13899990000</w:t></w:r></w:p>'
            '<w:p></w:p>')


def test_a_docx_with_a_black_rectangle_over_the_names_is_refused_and_nothing_is_stored(world, client, login):
    _refused(world, client, login, "公开版.docx", _with_body(_named(_shape())), "正文中有 1 个黑色")


@pytest.mark.parametrize("body", [
    _named(_shape()),
    # a theme colour: Text 1 (black in the theme), Background 1 darkened to 25 %, Text 2 (dark blue in this theme)
    _named(_shape('<a:solidFill><a:schemeClr val="tx1"/></a:solidFill>')),
    _named(_shape('<a:solidFill><a:schemeClr val="bg1"><a:lumMod val="25000"/></a:schemeClr></a:solidFill>')),
    _named(_shape('<a:solidFill><a:schemeClr val="tx2"/></a:solidFill>')),
    _named(_shape('<a:solidFill><a:srgbClr val="1A1A1A"><a:alpha val="100000"/></a:srgbClr></a:solidFill>')),
    _named(_shape('<a:solidFill><a:sysClr val="windowText" lastClr="000000"/></a:solidFill>')),
    # no fill said: the shape style's (a dark one)
    _named(_shape("", style=SHAPE_STYLE.format(idx=1, fill="tx1"))),
    # anchored in the empty paragraph before the names, or after them
    '<w:p>' + _shape() + '</w:p><w:p><w:r><w:t>王建国 13899990000</w:t></w:r></w:p>',
    '<w:p><w:r><w:t>王建国 13899990000</w:t></w:r></w:p><w:p>' + _shape() + '</w:p>',
    # a text box, dark, holding only marks or text as dark as itself
    _named(_shape(box=_box_text("XXXX"))),
    _named(_shape(box=_box_text("王建国", BLACK))),
    # VML (Word 2007, or a converter): a rectangle positioned in front of the text, black by name, by number
    _named(_vml()),
    _named(_vml('fillcolor="#000 [3213]" strokecolor="black"')),
    _named(_vml('fillcolor="#0d0d0d"', '<v:fill opacity="1"/>')),
    # in a table cell
    '<w:tbl><w:tr><w:tc><w:p><w:r><w:t>王建国</w:t></w:r>' + _shape() + '</w:p></w:tc></w:tr></w:tbl>',
    # Word's way: the DrawingML shape, its VML copy for older versions (one shape)
    _named('<mc:AlternateContent><mc:Choice Requires="wps">' + _shape()[5:-6] + '</mc:Choice><mc:Fallback>'
           + _vml()[5:-6] + '</mc:Fallback></mc:AlternateContent>'),
])
def test_a_dark_shape_in_front_of_text_is_refused(body):
    with pytest.raises(ValidationFailed, match="正文中有 1 个黑色（或深色）的形状") as refused:
        scrub.scrubbed("docx", _with_body(body))
    assert "应用密文" in refused.value.message and "删除文字后再以黑框表示" in refused.value.message
    assert refused.value.fields == {"file": "含被形状遮盖但未删除的文字"}


def test_a_dark_shape_in_a_header_is_refused():
    from tests.test_audit_leaks2 import _docx, _repack
    from tests import factories

    data = _repack(_docx(factories.report_text()), add={"word/header1.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:hdr xmlns:w="http://schemas.openxmlformats.org/'
        'wordprocessingml/2006/main" xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"'
        ' xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape">' + _named(_shape())
        + "</w:hdr>").encode()})
    with pytest.raises(ValidationFailed, match="页眉中有 1 个"):
        scrub.scrubbed("docx", data)


@pytest.mark.parametrize("body", [
    # inline (嵌入型): it takes its own place in the line, nothing is under it
    _named(_shape(inline=True)),
    # behind the text (衬于文字下方), or the text wrapped around it (四周型, 上下型)
    _named(_shape(behind="1")),
    _named(_shape(wrap='<wp:wrapSquare wrapText="bothSides"/>')),
    _named(_shape(wrap="<wp:wrapTopAndBottom/>")),
    # light, see-through, no fill (an outline: a frame around the text), a gradient
    _named(_shape('<a:solidFill><a:srgbClr val="FFFF00"/></a:solidFill>')),
    _named(_shape('<a:solidFill><a:schemeClr val="bg1"><a:lumMod val="85000"/></a:schemeClr></a:solidFill>')),
    _named(_shape('<a:solidFill><a:srgbClr val="000000"><a:alpha val="40000"/></a:srgbClr></a:solidFill>')),
    _named(_shape("<a:noFill/>")),
    _named(_shape('<a:gradFill><a:gsLst><a:gs pos="0"><a:srgbClr val="000000"/></a:gs><a:gs pos="100000"><a:srgbClr '
                  'val="FFFFFF"/></a:gs></a:gsLst></a:gradFill>')),
    # no fill said and the style's is the theme's blue (Word's default shape), or none (idx 0)
    _named(_shape("")),
    _named(_shape("", style=SHAPE_STYLE.format(idx=0, fill="tx1"))),
    # a thin dark bar (a rule, 1 pt), too thin to hide a line of text
    _named(_shape(cy=12700)),
    # a dark text box whose own text is readable: white, or in the automatic colour
    _named(_shape(box=_box_text("注：已脱敏", '<w:color w:val="FFFFFF"/>'))),
    _named(_shape(box=_box_text("第一章"))),
    # a dark rectangle in a paragraph of its own, no text beside it
    '<w:p></w:p><w:p></w:p><w:p>' + _shape() + '</w:p><w:p/><w:p><w:r><w:t>XXXX</w:t></w:r></w:p>',
    # VML: behind the text (a negative z-index), inline (not positioned), not filled, white (not said), see-through,
    # text wrapped around it, a picture's frame
    _named(_vml(style="position:absolute;width:144pt;height:18pt;z-index:-251658240")),
    _named(_vml(style="width:144pt;height:18pt")),
    _named(_vml('filled="f" strokecolor="black"')),
    _named(_vml('stroked="t"')),
    _named(_vml('fillcolor="black"', '<v:fill opacity="32768f"/>')),
    _named(_vml(wrap='<w10:wrap type="square"/>')),
    _named(_vml('type="#_x0000_t75" fillcolor="black"', '<v:imagedata r:id="rId9" o:title=""/>')),
    # the DrawingML shape is light, only its VML copy for older versions dark
    _named('<mc:AlternateContent><mc:Choice Requires="wps">' + _shape("<a:noFill/>")[5:-6] + '</mc:Choice>'
           '<mc:Fallback>' + _vml()[5:-6] + '</mc:Fallback></mc:AlternateContent>'),
])
def test_shapes_that_do_not_hide_text_are_published(body):
    """Regression guard: the shapes a report draws (frames, labels, callouts, a logo's band behind the text)."""
    scrub.scrubbed("docx", _with_body(body))


@pytest.mark.parametrize("piece", [
    "<w:drawing><wp:anchor behindDoc='0'><wp:wrapNone/><wps:wsp>", "<w:pict><v:rect style='position:absolute'>",
    "<w:p>" + _shape(), _shape(), "<w:p>" + _vml(), "<mc:Fallback>", "</w:drawing>", "<w:p><w:r><w:t>王</w:t></w:r>",
])
def test_shapes_by_the_thousand_or_left_unclosed_are_scanned_once(piece):
    """Each paragraph's text is read once however many shapes are anchored in or beside it; each shape once."""
    body = "<w:p><w:r><w:t>正文</w:t></w:r>" + _shape("<a:noFill/>") + "</w:p>" + piece * 20_000
    scrubbed_within(_with_body(body), f"{piece[:40]!r} × 20,000")
