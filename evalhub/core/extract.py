"""Text extraction from stored documents, bounded in time and memory.

python-docx and pdfplumber read a whole document into memory and can take minutes on a document built
to be slow (a 0.5 MB .docx of 100,000 tiny paragraphs: ~12 s; a 20 MB document.xml: ~50 s and +400 MB).
Neither library can be interrupted or capped from inside, so the parsing runs in a child process: the
child caps its own address space with ``resource.setrlimit(RLIMIT_AS)`` and the caller kills it when the
time limit passes. The web worker's own memory never grows with the document.

The child is this file loaded by a fresh interpreter with the caller's import path: it imports only the
parsers — not the application, not the caller's ``__main__`` (which ``multiprocessing``'s spawn and
forkserver would re-run), and it is not forked from a threaded worker (which can deadlock). Starting one
costs about half a second, so a couple of idle children are kept per worker process and reused: an
extraction then costs about a millisecond more than in-process. A child that ran out of time or memory,
crashed, or grew large is discarded; the next extraction starts a fresh one. A child that cannot start
at all (the parsers not importable) is a server error, never blamed on the uploaded file.

The child also answers ``CHECKS``: reading a document for something other than its text under the same limits —
the pages of a PDF keeping text under a dark box (``pdf_covered``), for ``core/scrub.py``.

Only the parsing is here; what is accepted (type, size, zip limits) is decided by ``core.files`` before.
This module imports nothing from the application.
"""
from __future__ import annotations

import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import threading
import time

IDLE_CHILDREN = 2           # kept for reuse per worker process
START_SECONDS = 60          # for a child to import the parsers and say it is ready
RECYCLE_RSS_MB = 300        # a child whose peak grew beyond this is not reused (CPython rarely gives memory back)
_HEADER = struct.Struct("<I")


class ExtractionError(Exception):
    """The text could not be extracted; ``reason`` is "timeout", "memory" or "corrupt"."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# --- the parsers (run in the child, or in-process when isolation is off) ---------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_P, _TBL, _TR, _TC, _T, _TAB = (_W + t for t in ("p", "tbl", "tr", "tc", "t", "tab"))
_BREAKS = {_W + "br", _W + "cr"}
_TXBX = _W + "txbxContent"
# Subtrees whose text is not what the document shows: deleted and moved-away revisions, the fallback copy of a
# text box Word writes beside its DrawingML one (mc:Fallback), and properties (no text; skipped for speed).
_SKIP = {_W + t for t in ("del", "moveFrom", "pPr", "rPr", "tblPr", "trPr", "tcPr", "sectPr", "tblGrid")} | {
    "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"}


_ALT_CHUNK = _W + "altChunk"
_R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
NESTED_MAX_BYTES = 50 * 1024 * 1024  # what a .docx inside a .docx may unpack to
ALT_CHUNK_DEPTH = 3  # a chunk that is a .docx may hold chunks of its own; deeper than this is not read


def _blocks(container, lines: list[str], alt=None) -> None:
    """The lines of block content (the body, a cell, a text box, a content control) in document order.
    ``alt`` reads a ``w:altChunk`` (content Word imports from another file when it opens the document)."""
    for child in container:
        tag = child.tag
        if tag == _P:
            _paragraph(child, lines, alt)
        elif tag == _TBL:
            _table(child, lines, alt)
        elif tag == _ALT_CHUNK:
            if alt is not None:
                lines.extend(alt(child.get(_R_ID)))
        elif tag not in _SKIP and isinstance(tag, str):  # content controls, custom XML: their content
            _blocks(child, lines, alt)


def _paragraph(p, lines: list[str], alt=None) -> None:
    parts: list[str] = []
    _inline(p, parts, lines, alt)
    lines.append("".join(parts))


def _inline(element, parts: list[str], lines: list[str], alt=None) -> None:
    for child in element:
        tag = child.tag
        if tag == _T:
            parts.append(child.text or "")
        elif tag == _TAB:
            parts.append("\t")
        elif tag in _BREAKS:
            parts.append("\n")
        elif tag == _TXBX:  # a text box: its paragraphs are lines of their own where it is anchored
            lines.append("".join(parts))
            parts.clear()
            _blocks(child, lines, alt)
        elif tag not in _SKIP and isinstance(tag, str):  # runs, hyperlinks, insertions, drawings, fields
            _inline(child, parts, lines, alt)


def _table(tbl, lines: list[str], alt=None) -> None:
    """Each row one line of tab-separated cells (a cell's own lines, nested tables included, joined by a line
    break); a cell merged over rows or columns counts once, as Word stores it."""
    for row in _children(tbl, _TR):
        cells = []
        for cell in _children(row, _TC):
            inner: list[str] = []
            _blocks(cell, inner, alt)
            cells.append("\n".join(line.strip() for line in inner if line.strip()))
        lines.append("\t".join(cells))


class _HtmlText:
    """The text of an HTML chunk, a line per block (p, div, li, headings, table rows; cells tab-separated)."""

    BLOCKS = {"p", "div", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section", "blockquote"}

    def __init__(self) -> None:
        from html.parser import HTMLParser

        outer = self
        self.parts: list[str] = []
        self.hidden = 0

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                if tag in ("script", "style", "head"):
                    outer.hidden += 1
                elif tag in outer.BLOCKS:
                    outer.parts.append("\n")
                elif tag in ("td", "th"):
                    outer.parts.append("\t")

            def handle_endtag(self, tag):
                if tag in ("script", "style", "head"):
                    outer.hidden = max(0, outer.hidden - 1)
                elif tag in outer.BLOCKS:
                    outer.parts.append("\n")

            def handle_data(self, data):
                if not outer.hidden:
                    outer.parts.append(" ".join(data.split("\n")))

        self.parser = Parser(convert_charrefs=True)

    def lines(self, html: str) -> list[str]:
        self.parser.feed(html)
        self.parser.close()
        return [line.strip("\t ").replace("\xa0", " ") for line in "".join(self.parts).split("\n")
                if line.strip("\t \xa0")]


def _decode(blob: bytes, charset: str | None) -> str:
    """Text in the charset given, else the one the HTML declares, else UTF-8, else GB18030 (WPS, older Word)."""
    found = re.search(rb"charset=[\"']?([A-Za-z0-9_-]+)", blob[:2048])
    for name in filter(None, [charset, found.group(1).decode() if found else None, "utf-8", "gb18030"]):
        try:
            return blob.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return blob.decode("utf-8", "replace")


def _chunk_lines(blob: bytes, content_type: str, depth: int) -> list[str]:
    """What an altChunk part holds, as lines: another .docx (read the same way), HTML, a web archive (.mht: its
    HTML), plain text. RTF is not read (no parser here): its chunk stays empty."""
    content_type = (content_type or "").lower()
    if "wordprocessingml" in content_type or blob[:2] == b"PK":
        return _docx_lines(blob, depth + 1) if depth + 1 < ALT_CHUNK_DEPTH else []
    if "html" in content_type:
        return _HtmlText().lines(_decode(blob, None))
    if "rfc822" in content_type or "multipart/related" in content_type:
        import email

        message = email.message_from_bytes(blob)
        for part in message.walk():
            if part.get_content_type() == "text/html":
                return _HtmlText().lines(_decode(part.get_payload(decode=True) or b"", part.get_content_charset()))
            if part.get_content_type() == "text/plain":
                return _decode(part.get_payload(decode=True) or b"", part.get_content_charset()).splitlines()
        return []
    if content_type.startswith("text/plain"):
        return _decode(blob, None).splitlines()
    return []


_CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_WORD_MAIN = ("application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
              "application/vnd.ms-word.document.macroEnabled.main+xml",
              "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml")


def _docx_lines(data: bytes, depth: int = 0) -> list[str]:
    """Read straight from the package (zip + lxml), not through python-docx: python-docx parses every part typed as
    a document body as XML, so a .docx holding another .docx as an altChunk (typed so by the Open XML SDK) would not
    open at all."""
    import posixpath
    import zipfile

    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    package = zipfile.ZipFile(io.BytesIO(data))
    if depth and sum(i.file_size for i in package.infolist()) > NESTED_MAX_BYTES:
        return []  # core.files checked the outer package's sizes, not those of a package inside it

    def xml(name: str):
        return etree.fromstring(package.read(name), parser)

    types = xml("[Content_Types].xml")
    defaults = {d.get("Extension", "").lower(): d.get("ContentType") for d in types.iter(_CT + "Default")}
    overrides = {o.get("PartName", "").lstrip("/"): o.get("ContentType") for o in types.iter(_CT + "Override")}

    def content_type(name: str) -> str:
        return overrides.get(name) or defaults.get(name.rsplit(".", 1)[-1].lower(), "")

    main = next((r.get("Target", "").lstrip("/") for r in xml("_rels/.rels").iter(_RELS)
                 if r.get("Type", "").endswith("/officeDocument")), None)
    if main is None or content_type(main) not in _WORD_MAIN:
        raise ValueError(f"not a Word document: {main!r} is {content_type(main) if main else 'missing'}")
    folder, base = posixpath.split(main)
    rels_name = posixpath.join(folder, "_rels", base + ".rels")
    targets = {}
    if rels_name in package.namelist():
        for r in xml(rels_name).iter(_RELS):
            if r.get("TargetMode") != "External":
                target = r.get("Target", "")
                targets[r.get("Id")] = (target.lstrip("/") if target.startswith("/")
                                        else posixpath.normpath(posixpath.join(folder, target)))

    def alt(rid: str | None) -> list[str]:
        name = targets.get(rid)
        if name is None or name not in package.namelist():
            return []
        return _chunk_lines(package.read(name), content_type(name), depth)

    body = xml(main).find(_W + "body")
    lines: list[str] = []
    if body is not None:
        _blocks(body, lines, alt)
    return lines


def _children(element, tag: str):
    """``element``'s children named ``tag``, also inside content controls and custom XML wrapped around them."""
    for child in element:
        if child.tag == tag:
            yield child
        elif child.tag not in _SKIP and child.tag not in (_P, _TBL, _TR, _TC) and isinstance(child.tag, str):
            yield from _children(child, tag)


def docx_text(data: bytes) -> str:
    """The body's text in document order: paragraphs, table rows where the table stands (nested tables in their
    cell), text boxes where they are anchored, and the content of ``w:altChunk`` parts (documents exported by
    some office systems are nothing else). python-docx's ``paragraphs`` and ``tables`` give neither the order
    nor the text boxes."""
    return "\n".join(_docx_lines(data))


def pdf_text(data: bytes) -> str:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return "\n".join((page.extract_text() or "") for page in pdf.pages)


PARSERS = {"docx": docx_text, "pdf": pdf_text}


# --- text a PDF keeps under a dark box (core/scrub.py refuses it; read here, in the child, as the text is) ----------
#
# The failed redaction: the names painted over with a black rectangle (drawn in a PDF editor, a Word shape, black
# shading exported with black text on it), the page looks redacted, the text is still under the box — copied out
# with the mouse, read by pdftotext. It is found from the page's drawing operations, without rendering, with
# pdfminer's interpreter (the one pdfplumber drives), which meets the text and the paths in the order they are
# drawn: a letter or digit whose box (the font size high, its advance wide) is covered for COVERED of its area by
#   - a dark opaque fill drawn after it (a rectangle, or a filled shape nearly its bounding box: a rounded
#     rectangle), or a dark Square, Highlight or Ink annotation (drawn over the page), whatever the text's colour; or
#   - a dark fill drawn before it, the last fill under it, when the text is the box's colour or near it (contrast
#     ratio below VISIBLE_CONTRAST) or invisible (render mode 3: an OCR layer laid over a box).
# Not hidden: white or light text on a dark band (a table header, a label), text next to a black bullet square or
# over a thin line (an underline, a table border: they cover little of a letter), text under a fill drawn with
# transparency (a constant alpha below 1, a blend mode — a flattened highlight multiplies —, a soft mask), text
# of marks only (XXX, ***, ■: what a redaction leaves in the text's place). Not seen: images drawn over text (a
# picture of a black bar; its pixels are not read), clipping (a box clipped away still counts), colours in a
# spot, indexed, Lab or pattern colour space (not judged dark).
COVERED = 0.6  # of a letter's box
DARK = 0.1  # relative luminance (WCAG): black, dark grey up to about #595959, navy, dark red
VISIBLE_CONTRAST = 1.5  # (lighter + 0.05) / (darker + 0.05): black on #262626 is 1.4
MIN_BOX_PT = 1.0  # a fill thinner than this (a border, an underline) covers no letter
_BAND_PT = 32.0
# Operators, as bytes in a decoded content stream: whether it fills a path and shows text (a page is read only if
# it does both; a string holding " f " only makes a page read for nothing).
_FILL_OPERATOR = re.compile(rb"(?<![^\s\])>])(?:f\*?|F|B\*?|b\*?)(?![^\s\[(<>/%])")
_TEXT_OPERATOR = re.compile(rb"(?<![^\s\])>])(?:Tj|TJ|'|\")(?![^\s\[(<>/%])")
_COVERING_ANNOTATIONS = ("Square", "Highlight", "Ink")


def paints_and_shows(content: bytes) -> tuple[bool, bool]:
    """Whether a decoded content stream fills a path, and whether it shows text."""
    return _FILL_OPERATOR.search(content) is not None, _TEXT_OPERATOR.search(content) is not None


def _luminance(color, space: str = "") -> float | None:
    """A fill colour's relative luminance (WCAG 2), from pdfminer's value (gray: a number; RGB: 3; CMYK: 4
    components); None for a colour not judged (a pattern; a spot, indexed or Lab colour space)."""
    if space in ("Separation", "DeviceN", "Indexed", "Lab", "Pattern"):
        return None
    if isinstance(color, (int, float)):
        color = (color,)
    if not isinstance(color, (tuple, list)) or not all(isinstance(c, (int, float)) for c in color):
        return None
    values = [min(1.0, max(0.0, float(c))) for c in color]
    if len(values) == 1:
        red = green = blue = values[0]
    elif len(values) == 3:
        red, green, blue = values
    elif len(values) == 4:
        cyan, magenta, yellow, black = values
        red, green, blue = ((1 - c) * (1 - black) for c in (cyan, magenta, yellow))
    else:
        return None

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)


def contrast(first: float, second: float) -> float:
    return (max(first, second) + 0.05) / (min(first, second) + 0.05)


def _secret(text: str) -> bool:
    """Whether text could say something: a letter or a digit other than the x of XXX."""
    return any(c.isalnum() and c not in "xXｘＸ" for c in text)


def _covered_pages(data: bytes) -> list[int]:
    """The pages (numbered from 1) where a letter or digit is hidden under a dark box (above)."""
    import pdfplumber
    from pdfminer.converter import PDFLayoutAnalyzer
    from pdfminer.pdfinterp import PDFPageInterpreter
    from pdfminer.pdftypes import PDFStream, resolve1
    from pdfminer.psparser import literal_name
    from pdfminer.utils import apply_matrix_pt

    class Device(PDFLayoutAnalyzer):
        """Records, in drawing order, the letters (as drawn: their box is worked out only near a dark fill) and the
        opaque fills shaped as boxes (their box, luminance); keeps no layout."""

        see_through = False

        def begin_page(self, page, ctm):
            super().begin_page(page, ctm)
            self.page_ctm, self.order, self.render_mode, self.see_through = ctm, 0, 0, False
            self.letters: list[tuple] = []  # (order, how it is drawn …, its colour, its colour space, invisible)
            self.fills: list[tuple] = []  # (order, x0, y0, x1, y1, luminance)

        def end_page(self, page):
            self.pageno += 1

        def render_image(self, name, stream):
            self.order += 1

        def render_string(self, textstate, seq, ncs, graphicstate):
            self.render_mode = textstate.render
            super().render_string(textstate, seq, ncs, graphicstate)

        def render_char(self, matrix, font, fontsize, scaling, rise, cid, ncs, graphicstate):
            # kept as drawn, read only if a dark fill is near it (``_any_hidden``): most pages have none
            self.order += 1
            stroked = self.render_mode in (1, 5)
            self.letters.append((self.order, matrix, font, fontsize, scaling, rise, cid,
                                 graphicstate.scolor if stroked else graphicstate.ncolor,
                                 getattr(graphicstate.scs if stroked else ncs, "name", ""), self.render_mode in (3, 7)))
            return font.char_width(cid) * fontsize * scaling

        def paint_path(self, gstate, stroke, fill, evenodd, path):
            self.order += 1
            if not fill or self.see_through:
                return
            luminance = _luminance(gstate.ncolor, getattr(gstate.ncs, "name", ""))
            if luminance is None:
                return
            shapes, start = [], None
            for at, segment in enumerate(path):
                if segment[0] == "m":
                    if start is not None:
                        shapes.append(path[start:at])
                    start = at
            if start is not None:
                shapes.append(path[start:])
            boxes = []
            for shape in shapes:
                try:
                    points = [apply_matrix_pt(self.ctm, (float(s[-2]), float(s[-1]))) for s in shape if s[0] != "h"]
                except (TypeError, ValueError, IndexError):
                    continue
                if len(points) < 4:
                    continue
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                box = (min(xs), min(ys), max(xs), max(ys))
                if min(box[2] - box[0], box[3] - box[1]) < MIN_BOX_PT:
                    continue
                operators = "".join(s[0] for s in shape)
                if operators.rstrip("h") not in ("mlll", "mllll") or not _axis_aligned(points):
                    # a filled shape nearly its bounding box (a rounded rectangle; not a circle, not a triangle)
                    area = abs(sum(points[i - 1][0] * p[1] - p[0] * points[i - 1][1] for i, p in enumerate(points)))
                    if area / 2 < 0.85 * (box[2] - box[0]) * (box[3] - box[1]):
                        continue
                boxes.append(box)
            # a frame (a box with a hole: another box of the same path inside it) covers nothing inside it: neither box
            # is taken (looked for in a path of a few boxes)
            nested = 1 < len(boxes) <= 64
            for box in boxes:
                if not (nested and any(other is not box and (_inside(other, box) or _inside(box, other))
                                       for other in boxes)):
                    self.fills.append((self.order, *box, luminance))

    class Interpreter(PDFPageInterpreter):
        """pdfminer's, with the transparency of the graphics state (its /ExtGState: a constant alpha, a blend mode,
        a soft mask), which pdfminer does not follow."""

        def init_resources(self, resources):
            super().init_resources(resources)
            states = resolve1(resources.get("ExtGState")) if isinstance(resources, dict) else None
            self.ext_states = states if isinstance(states, dict) else {}

        def init_state(self, ctm):
            super().init_state(ctm)
            self.see_through = self.device.see_through  # a form is drawn in the state of where it is drawn

        def get_current_state(self):
            return (*super().get_current_state(), self.see_through)

        def set_current_state(self, state):
            super().set_current_state(state[:3])
            self.see_through = self.device.see_through = state[3] if len(state) > 3 else False

        def do_Do(self, xobjid_arg):
            super().do_Do(xobjid_arg)
            self.device.see_through = self.see_through

        def do_gs(self, name):
            params = resolve1(self.ext_states.get(literal_name(name)))
            if not isinstance(params, dict):
                return
            see_through = self.see_through
            if "ca" in params:
                alpha = resolve1(params["ca"])
                see_through = isinstance(alpha, (int, float)) and alpha < 0.999
            if "BM" in params:
                blend = resolve1(params["BM"])
                blend = resolve1(blend[0]) if isinstance(blend, list) and blend else blend
                see_through = see_through or literal_name(blend) not in ("Normal", "Compatible")
            if "SMask" in params:
                see_through = see_through or isinstance(resolve1(params["SMask"]), dict)
            self.see_through = self.device.see_through = see_through

    def streams_of(page) -> list[bytes]:
        """The decoded content of a page and of the forms it draws (pdfminer keeps them for the interpreter)."""
        found, seen, todo = [], set(), [(page.resources, 0)]
        for stream in page.contents:
            stream = resolve1(stream)
            if isinstance(stream, PDFStream):
                found.append(stream.get_data())
        while todo:
            resources, depth = todo.pop()
            resources = resolve1(resources)
            forms = resolve1(resources.get("XObject")) if isinstance(resources, dict) else None
            if not isinstance(forms, dict) or depth > 8:
                continue
            for form in forms.values():
                key = (getattr(form, "objid", None) or id(form))
                form = resolve1(form)
                if key in seen or not isinstance(form, PDFStream) or literal_name(form.get("Subtype")) != "Form":
                    continue
                seen.add(key)
                found.append(form.get_data())
                todo.append((form.get("Resources"), depth + 1))
        return found

    def annotations_of(page) -> list:
        annotations = resolve1(page.annots)
        found = []
        for annotation in annotations if isinstance(annotations, list) else []:
            annotation = resolve1(annotation)
            if isinstance(annotation, dict) and literal_name(resolve1(annotation.get("Subtype"))) in \
                    _COVERING_ANNOTATIONS:
                found.append(annotation)
        return found

    pages = []
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        device = Device(pdf.rsrcmgr)
        for page in pdf.pages:
            page_obj = page.page_obj
            annotations = annotations_of(page_obj)
            if not annotations:
                fills = shows = False
                for content in streams_of(page_obj):
                    fill, show = paints_and_shows(content)
                    fills, shows = fills or fill, shows or show
                if not (fills and shows):
                    continue
            Interpreter(pdf.rsrcmgr, device).process_page(page_obj)
            fills = device.fills + _annotation_fills(annotations, device.page_ctm, device.order + 1)
            if device.letters and fills and _any_hidden(device.letters, fills):
                pages.append(page.page_number)
            device.letters, device.fills = [], []
    return pages


def _axis_aligned(points: list) -> bool:
    """Whether four corners (a fifth back at the first) make a rectangle with sides along the page's."""
    if len(points) == 5 and (abs(points[4][0] - points[0][0]) > 0.01 or abs(points[4][1] - points[0][1]) > 0.01):
        return False
    corners = points[:4]
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        if abs(x0 - x1) > 0.01 and abs(y0 - y1) > 0.01:
            return False
    return True


def _inside(inner: tuple, outer: tuple) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def _annotation_fills(annotations: list, ctm, order: int) -> list[tuple]:
    """The dark opaque areas a Square (its interior colour), Highlight (its colour, multiplied over the page) or Ink
    (its strokes, near-horizontal or near-vertical segments, as wide as its border) annotation paints over the page,
    as fills drawn after everything."""
    from pdfminer.pdftypes import resolve1
    from pdfminer.psparser import literal_name
    from pdfminer.utils import apply_matrix_pt

    def numbers(value) -> list[float]:
        value = resolve1(value)
        if not isinstance(value, list):
            return []
        value = [resolve1(v) for v in value]
        return [float(v) for v in value if isinstance(v, (int, float))]

    def box(x0, y0, x1, y1) -> tuple:
        (a, b), (c, d) = apply_matrix_pt(ctm, (x0, y0)), apply_matrix_pt(ctm, (x1, y1))
        return min(a, c), min(b, d), max(a, c), max(b, d)

    fills = []
    for annotation in annotations:
        kind = literal_name(resolve1(annotation.get("Subtype")))
        opacity = resolve1(annotation.get("CA", 1))
        luminance = _luminance(tuple(numbers(annotation.get("IC" if kind == "Square" else "C"))))
        if luminance is None or luminance > DARK or (isinstance(opacity, (int, float)) and opacity < 0.999):
            continue
        rect = numbers(annotation.get("Rect"))
        if kind == "Square" and len(rect) == 4:
            fills.append((order, *box(*rect), luminance))
        elif kind == "Highlight":
            quads = numbers(annotation.get("QuadPoints"))
            for at in range(0, len(quads) - 7, 8):
                xs, ys = quads[at:at + 8:2], quads[at + 1:at + 8:2]
                fills.append((order, *box(min(xs), min(ys), max(xs), max(ys)), luminance))
            if not quads and len(rect) == 4:
                fills.append((order, *box(*rect), luminance))
        elif kind == "Ink":
            style = resolve1(annotation.get("BS"))
            width = numbers(annotation.get("Border"))[2:3] or [1.0]
            if isinstance(style, dict) and isinstance(resolve1(style.get("W")), (int, float)):
                width = [float(resolve1(style.get("W")))]
            half = width[0] / 2
            for stroke in resolve1(annotation.get("InkList")) or []:
                points = numbers(stroke)
                points = list(zip(points[::2], points[1::2]))
                for (x0, y0), (x1, y1) in zip(points, points[1:]):
                    if abs(y1 - y0) <= 2 * half or abs(x1 - x0) <= 2 * half:
                        fills.append((order, *box(min(x0, x1) - half, min(y0, y1) - half, max(x0, x1) + half,
                                                  max(y0, y1) + half), luminance))
    return fills


def _any_hidden(letters: list[tuple], fills: list[tuple]) -> bool:
    """Whether a letter is covered (above) by a dark fill drawn after it, or drawn on a dark fill it does not stand
    out from. Fills are looked up by horizontal bands: a fill covering COVERED of a letter holds its middle line; a
    letter is read (its box, its text, its colour) only in a band holding a dark fill."""
    from pdfminer.layout import LTChar
    from pdfminer.pdffont import PDFUnicodeNotDefined

    bands: dict[int, list[tuple]] = {}
    dark: set[int] = set()
    for fill in fills:
        for band in range(int(fill[2] // _BAND_PT), int(fill[4] // _BAND_PT) + 1):
            bands.setdefault(band, []).append(fill)
            if fill[5] <= DARK:
                dark.add(band)
    if not dark:
        return False
    luminances: dict[tuple, float | None] = {}
    for order, matrix, font, fontsize, scaling, rise, cid, color, space, invisible in letters:
        a, b, c, d, e, f = matrix
        vertical = font.is_vertical()
        if not vertical and b == 0 and c == 0:  # upright: the middle line without the letter's box
            if int((d * (font.get_descent() * fontsize + rise + fontsize / 2) + f) // _BAND_PT) not in dark:
                continue
        try:
            text = font.to_unichr(cid)
        except PDFUnicodeNotDefined:
            continue
        if not isinstance(text, str) or not _secret(text):
            continue
        letter = LTChar(matrix, font, fontsize, scaling, rise, text, font.char_width(cid),
                        font.char_disp(cid) if vertical else 0, None, None)
        x0, y0, x1, y1 = letter.bbox
        middle, area = (y0 + y1) / 2, (x1 - x0) * (y1 - y0)
        if area <= 0 or int(middle // _BAND_PT) not in dark:
            continue
        under = None  # the last fill drawn under the letter that covers it
        for fill in bands[int(middle // _BAND_PT)]:
            drawn, fx0, fy0, fx1, fy1, shade = fill
            if not (fy0 <= middle <= fy1 and fx0 < x1 and fx1 > x0):
                continue
            if (min(x1, fx1) - max(x0, fx0)) * (min(y1, fy1) - max(y0, fy0)) < COVERED * area:
                continue
            if drawn > order:
                if shade <= DARK:
                    return True
            elif under is None or drawn > under[0]:
                under = fill
        if under is None or under[5] > DARK:
            continue
        if invisible:
            return True
        key = (color if isinstance(color, (int, float)) else tuple(color) if isinstance(color, list) else color, space)
        try:
            luminance = luminances[key] if key in luminances else luminances.setdefault(key, _luminance(color, space))
        except TypeError:  # a colour not hashable: not judged
            luminance = None
        if luminance is not None and contrast(luminance, under[5]) < VISIBLE_CONTRAST:
            return True
    return False


def pdf_covered(data: bytes) -> str:
    """``_covered_pages`` as the child answers: JSON."""
    return json.dumps({"pages": _covered_pages(data)})


# Checks run in the child as the parsers are (kind → function of the bytes answering text), not text extraction.
CHECKS = {"pdf-covered": pdf_covered}


def _parse(kind: str, path: str) -> str:
    with open(path, "rb") as fh:
        data = fh.read()
    return (PARSERS.get(kind) or CHECKS[kind])(data)


# --- framing: a 4-byte length, then the bytes ----------------------------------------------------------------

def _write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, missing = [], size
    while missing:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None = None) -> bytes:
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    return _read_exactly(fd, size, deadline)


# --- the child ---------------------------------------------------------------------------------------------

def _limit_memory(extra_bytes: int) -> None:
    """Cap the child's address space at what it already maps (the interpreter and the parsers) plus
    ``extra_bytes``: beyond that an allocation fails with MemoryError instead of growing the machine's."""
    import resource

    with open("/proc/self/statm") as fh:
        base = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = base + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. Not ``ru_maxrss``: Linux carries the parent's peak across
    fork and exec into it, so a child started by a large worker would look large from its first request."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _serve(extra_bytes: int) -> None:
    """The child's loop: receive kind and path, answer status, whether it stays, and the text (or what
    went wrong), until its input closes. Replies go to a private copy of stdout; anything a library
    prints goes to stderr."""
    requests, replies = 0, os.dup(1)
    os.dup2(2, 1)
    import email  # noqa: F401 — loaded before the limit, once for every document
    import zipfile  # noqa: F401
    from html import parser  # noqa: F401

    import pdfplumber  # noqa: F401
    from lxml import etree  # noqa: F401

    try:
        _limit_memory(extra_bytes)
    except (OSError, ValueError, IndexError):
        print("evalhub extract: could not limit the child's memory", file=sys.stderr)
    start_rss_mb = _peak_rss_mb()
    _write_frame(replies, b"ready")
    while True:
        try:
            kind, _, path = _read_frame(requests).decode().partition("\0")
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            status, payload = "ok", _parse(kind, path)
        except MemoryError:
            status, payload = "memory", ""
        except Exception as exc:  # noqa: BLE001 — a document that cannot be read, said as such
            # libxml2 reports a failed allocation as a syntax error ("unknown error", "Memory allocation
            # failed"); a child that grew to half its allowance before failing is taken to have run out
            grew = (_peak_rss_mb() - start_rss_mb) * 1024 * 1024 > extra_bytes / 2
            message = str(exc).lower()
            memory = grew or "memory" in message or "unknown error" in message
            status, payload = ("memory", "") if memory else ("corrupt", type(exc).__name__)
        stays = status == "ok" and _peak_rss_mb() <= RECYCLE_RSS_MB
        try:
            _write_frame(replies, f"{status}\0{int(stays)}\0".encode() + payload.encode("utf-8", "surrogatepass"))
        except (MemoryError, OSError):
            return  # the parent sees the pipe close
        payload = ""
        if not stays:
            return


# --- the parent's side --------------------------------------------------------------------------------------

# Run by ``python -c``: drop the current directory from the path first, then take the caller's path.
_BOOT = ("import sys; del sys.path[0]; import json, importlib.util as u; sys.path[:] = json.loads(sys.argv[3]); "
         "spec = u.spec_from_file_location('evalhub_extract_child', sys.argv[1]); m = u.module_from_spec(spec); "
         "sys.modules[spec.name] = m; spec.loader.exec_module(m); m._serve(int(sys.argv[2]))")


class _Child:
    def __init__(self, extra_bytes: int) -> None:
        self.extra_bytes = extra_bytes
        self.owner = os.getpid()
        path = json.dumps([os.path.abspath(p) for p in sys.path])
        self.process = subprocess.Popen(
            [sys.executable, "-E", "-s", "-c", _BOOT, os.path.abspath(__file__), str(extra_bytes), path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        try:
            ready = _read_frame(self.process.stdout.fileno(), time.monotonic() + START_SECONDS)
        except (TimeoutError, EOFError, OSError) as exc:
            self.close()
            raise RuntimeError("the text extraction child process did not start (are python-docx and "
                               "pdfplumber importable?)") from exc
        if ready != b"ready":
            self.close()
            raise RuntimeError(f"the text extraction child process answered {ready[:50]!r} at start")

    def usable(self, extra_bytes: int) -> bool:
        return self.owner == os.getpid() and self.extra_bytes == extra_bytes and self.process.poll() is None

    def send(self, kind: str, path: str) -> None:
        _write_frame(self.process.stdin.fileno(), f"{kind}\0{path}".encode())

    def answer(self, seconds: float) -> tuple[str, bool, str]:
        reply = _read_frame(self.process.stdout.fileno(), time.monotonic() + seconds)
        status, stays, payload = reply.split(b"\0", 2)
        return status.decode(), stays == b"1", payload.decode("utf-8", "surrogatepass")

    def close(self) -> None:
        if self.owner != os.getpid():
            return  # inherited through a fork: not ours
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


_pool_lock = threading.Lock()
_idle: list[_Child] = []


def _take(extra_bytes: int) -> _Child:
    with _pool_lock:
        while _idle:
            child = _idle.pop()
            if child.usable(extra_bytes):
                return child
            child.close()
    return _Child(extra_bytes)


def _give_back(child: _Child) -> None:
    with _pool_lock:
        if len(_idle) < IDLE_CHILDREN and child.owner == os.getpid():
            _idle.append(child)
            return
    child.close()


def shutdown() -> None:
    """Stop the idle children (they also stop by themselves when this process exits: their input closes)."""
    with _pool_lock:
        children, _idle[:] = list(_idle), []
    for child in children:
        child.close()


def extract(kind: str, path: str, *, seconds: float, memory_mb: int, isolated: bool = True) -> str:
    """The text of the document at ``path`` (``kind`` "docx" or "pdf"), or ExtractionError."""
    if not isolated:
        try:
            return _parse(kind, path)
        except MemoryError as exc:
            raise ExtractionError("memory") from exc
        except Exception as exc:  # noqa: BLE001
            raise ExtractionError("corrupt", type(exc).__name__) from exc
    child = _take(memory_mb * 1024 * 1024)
    try:
        child.send(kind, str(path))
    except OSError:  # an idle child that died meanwhile (killed from outside): the document never reached it
        child.close()
        child = _Child(memory_mb * 1024 * 1024)
        child.send(kind, str(path))
    try:
        status, stays, payload = child.answer(seconds)
    except TimeoutError as exc:
        child.close()
        raise ExtractionError("timeout") from exc
    except (EOFError, OSError, ValueError) as exc:  # the child died: killed at its memory limit, or crashed
        child.close()
        raise ExtractionError("memory", "the child exited") from exc
    if stays:
        _give_back(child)
    else:
        child.close()
    if status != "ok":
        raise ExtractionError(status, payload)
    return payload
