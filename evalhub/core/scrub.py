"""A document's copy without the metadata that names people: for what the public downloads.

A .docx or .pdf carries, besides its text, who wrote and last saved it (and often the company, comments, the
authors of tracked changes): not shown on the page, so a clerk who blacked out the names in the text does not
see them, yet anyone who opens 文件属性 reads them. ``scrubbed`` returns a copy without them; the text and the
layout are left as they are.

.docx: the package is rewritten part by part, and only the small metadata parts are parsed (core, app and custom
properties; the people list) — the body's XML is never parsed here (it may be huge: ``core.extract`` parses it
only in a child with limits), only its revision and comment author attributes are blanked by a byte pattern.
Word fields other than those the layout needs live (page numbers, the table of contents, cross-references, web links)
are unlinked to the result the page shows (their instructions name paths and accounts, keep text not shown); the
glossary document (building blocks, AutoText) and the package thumbnail of the first page go; custom XML data parts
are emptied (whatever their name). The names an author gives where no page shows them, in the same one pass over a
part's tags: bookmarks are renamed _bm1, _bm2, … with every reference to them (Word's own _Toc…/_Ref…/_GoBack
stay), content controls lose their titles, tags, placeholders, data bindings and drop-down choices, links their
screen tips; range permissions (the editor's account) go, smart tags and inline custom XML are unwrapped (their
properties — a name, an address, an OA system's fields — go, their text stays).
.pdf: pypdf drops the document information dictionary, the XMP metadata (of any object), applications' private
data (/PieceInfo), files associated with any object, page thumbnails, scripts and actions reaching outside the
document, annotations hidden from view and the authors of annotations, accessibility text (/Alt, /ActualText, on the
structure and in the pages' marked content), digital signatures (the signer, the certificate; the copy's signature
would be broken anyway: the field stays unsigned, its appearance as it is); named destinations are renamed d1, d2,
… with every link to them; an empty form's fields are renamed f1, f2, … and lose their tooltips and the choices
nobody chose; only the objects still reached from the catalog are written (pypdf would write what was cut off too).
The upload must have passed ``files.check_upload`` first (type, size, zip limits).

Some of what a document carries unseen is content, not metadata, and only the clerk can decide it: text deleted
with 修订 on (Word keeps it, shown again by one click), text formatted hidden (字体 › 隐藏, likewise), comments
(批注), a PDF's redaction marks not yet applied (the text under them is still there), content imported from another
file (``w:altChunk``: a package or a web page of its own, with its own properties), an embedded object (a whole
Excel or Word file, or any file, of which the page shows a part), macros and ActiveX controls (programs and their
saved data), a PDF form's values, a PDF's hidden layers. A file holding any of these is refused with what to do in
Word or the PDF editor; a PDF's sticky notes and the texts of its other comments go. A Word chart's
workbook stays when it holds the chart's one sheet of figures and nothing else (another sheet or a comment is
refused), cleaned as a package of its own; an equation object stays. Photos, in a .docx or a PDF
(JPEG, as an object or inline in a page's content, written as it is or behind other filters), keep their pixels but
lose their EXIF (the camera's owner, the place) and their text chunks; JPEG 2000 images their metadata boxes (XML,
XMP, EXIF) and comments.

What only looks redacted is refused too: text painted over rather than deleted stays in the file under the paint,
copied out with a mouse. In a PDF, letters under a dark box drawn after them (a rectangle, a shape, a dark Square,
Highlight or Ink comment), or drawn on a dark box in its own colour (black shading with black text, exported); in a
.docx, text highlighted or shaded black (or dark: run, paragraph or table cell, directly or by a style, a table
style's conditional parts too) in a black or dark colour it cannot be read in, or a dark opaque shape floating in
front of the text of its paragraph or the next to it. Not refused: white or light text on a dark band (a table
header, a label), a bullet square, an underline, a black bar holding no text; a PDF's pages are read for this only
where the copy fills a path and shows text (``_refuse_covered_text``, ``_blacked_out_runs``, ``_covering_shapes``:
the rules and what they do not see). The
clerk redacts with a tool that removes the text (the PDF editor's 应用密文, or deleting the text in Word and then
drawing the black bar).
"""
from __future__ import annotations

import colorsys
import functools
import html
import io
import re
import zipfile
import zlib
from typing import Any, Iterator

from evalhub.core import extract
from evalhub.core.errors import ValidationFailed

# docProps/core.xml: only the dates stay (they name nobody); creator, last modified by, description (the
# "comments"), title, subject, keywords, category, status, identifier, version, language go
_CORE_KEPT = {"{http://purl.org/dc/terms/}created", "{http://purl.org/dc/terms/}modified"}
# docProps/app.xml: the fields a person or an organisation fills in
_APP_DROPPED = {"Company", "Manager", "HyperlinkBase", "Template"}
# w:author / w:initials on tracked changes and comments; w15:author, userId, providerId in word/people.xml
_AUTHOR_ATTRIBUTE = re.compile(rb'\b((?:w|w15|w16cid):(?:author|initials|userId|providerId))="[^"<>]*"')
_AUTHOR_NAMES = (b":author=", b":initials=", b":userId=", b":providerId=")
_METADATA_LIMIT = 1024 * 1024  # a properties part is a few KB; a larger one is not parsed in-process


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed(message, {"file": "无法去除文档属性"})


def _xml_parser():
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False)


def _core(data: bytes) -> bytes:
    from lxml import etree

    root = etree.fromstring(data, _xml_parser())
    for child in list(root):
        if child.tag not in _CORE_KEPT:
            root.remove(child)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _app(data: bytes) -> bytes:
    from lxml import etree

    root = etree.fromstring(data, _xml_parser())
    for child in list(root):
        if etree.QName(child).localname in _APP_DROPPED:
            root.remove(child)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _custom(data: bytes) -> bytes:
    """Custom properties may hold anything (an author's name, a case number): all of them go, the part stays
    (its relationship and content type still name it)."""
    from lxml import etree

    root = etree.fromstring(data, _xml_parser())
    for child in list(root):
        root.remove(child)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _custom_xml(data: bytes) -> bytes:
    """A custom XML data part (customXml/itemN.xml: fields a document library or an OA system binds to the file —
    author, reviewer, phone): emptied to its root element, which its relationships and schema reference name — its
    own namespace only (the other prefixes declared on it name other schemas: they go too)."""
    from lxml import etree

    root = etree.fromstring(data, _xml_parser())
    namespace = etree.QName(root).namespace
    empty = etree.Element(root.tag, nsmap={root.prefix: namespace} if namespace else None)
    return etree.tostring(empty, xml_declaration=True, encoding="UTF-8", standalone=True)


# An external target on the author's own disk or network share (an attached template, a linked workbook):
# file:///C:\Users\<Windows user>\…, C:\…, \\server\… — the path names the account; the link is dead on any
# other machine anyway.
_RELATIONSHIP = re.compile(rb"<Relationship\b[^<>]*>(?:\s*</Relationship>)?")  # stops at the next "<": linear (above)
_LOCAL_TARGET = re.compile(rb'\bTarget="(?:file:|[A-Za-z]:\\|\\\\)[^"]*"', re.I)
_GLOSSARY_RELATIONSHIP = re.compile(rb'\bType\s*=\s*"[^"<>]*/(?:glossaryDocument|metadata/thumbnail)"')


def _rels(data: bytes) -> bytes:
    def local_gone(match: re.Match) -> bytes:
        element = match.group(0)
        if _GLOSSARY_RELATIONSHIP.search(element):  # the part goes (``_DROPPED_PARTS``): its relationship with it
            return b""
        if b'TargetMode="External"' not in element:
            return element
        return _LOCAL_TARGET.sub(b'Target="file:///removed"', element)

    return _RELATIONSHIP.sub(local_gone, data)


# The glossary document (word/glossary/…): the building blocks and AutoText saved with the file — whole paragraphs,
# a letterhead, a signature with a name and a phone — never shown in the body, listed under 插入 › 文档部件. The body
# does not need it: it goes, with its relationship and its content types.
_GLOSSARY = "word/glossary/"
# The package's thumbnail (docProps/thumbnail.jpeg or .wmf/.emf, saved with "保存缩略图"): a picture of the first page
# as it was when saved — perhaps before the names were blacked out — with a camera-style EXIF. Nothing shows it but
# the file browser: it goes, with its relationship and content type.
_DROPPED_PARTS = (_GLOSSARY, "docprops/thumbnail")
_OVERRIDE = re.compile(rb"<Override\b[^<>]*>(?:\s*</Override>)?")  # as _RELATIONSHIP: linear


def _content_types(data: bytes) -> bytes:
    def glossary_gone(match: re.Match) -> bytes:
        element = match.group(0).lower()
        return b"" if b"/word/glossary/" in element or b"/docprops/thumbnail" in element else match.group(0)

    return _OVERRIDE.sub(glossary_gone, data)


# Macros (VBA) and ActiveX controls are programs and their data: a .docm renamed .docx passes as a Word file, and the
# scrubber does not open a VBA project (its modules name their author and paths) or a control's saved state (what was
# typed in it). Refused, with what to do; the part's name, its relationship or its content type is enough to tell.
MACROS = ("文件中含有宏（VBA 代码）：宏会随文件一起公开，其中可能写有作者、文件路径等信息，读者打开时还会被提示运行。请在 Word "
          "中点“文件 › 另存为”，保存类型选“Word 文档（*.docx）”（提示将删除宏时点“是”），再上传另存的文件。")
ACTIVEX = ("文件中含有 ActiveX 控件（控件形式的文本框、复选框、按钮等）：控件中保存的内容和属性不在页面文字里，会随文件一起公开，"
           "读者打开时还会加载控件。请在 Word 中点“开发工具 › 设计模式”，选中这些控件后删除（需要的内容改为普通文字或表格），"
           "再另存并上传。")
_ACTIVE_RELATIONSHIP = re.compile(rb'\bType\s*=\s*"[^"<>]*/(vbaProject|wordVbaData|control)"')
_MACRO_PARTS = ("vbaproject.bin", "vbadata.xml")


def _refuse_active_content(name: str, content: bytes) -> None:
    lower = name.lower()
    if lower.rsplit("/", 1)[-1] in _MACRO_PARTS:
        raise ValidationFailed(MACROS, {"file": "含宏"})
    if lower.startswith("word/activex/"):
        raise ValidationFailed(ACTIVEX, {"file": "含 ActiveX 控件"})
    if lower == "[content_types].xml":
        types = content.lower()
        if b"macroenabled" in types or b"vbaproject" in types:  # a .docm's main part, a VBA project
            raise ValidationFailed(MACROS, {"file": "含宏"})
        if b"activex" in types:
            raise ValidationFailed(ACTIVEX, {"file": "含 ActiveX 控件"})
    elif lower.endswith(".rels"):
        found = _ACTIVE_RELATIONSHIP.search(content)
        if found is not None:
            raise ValidationFailed(ACTIVEX if found.group(1) == b"control" else MACROS,
                                   {"file": "含 ActiveX 控件" if found.group(1) == b"control" else "含宏"})


_DOCX_PARTS = {"docProps/core.xml": _core, "docProps/app.xml": _app, "docProps/custom.xml": _custom}
# Custom XML data parts: Word keeps them in customXml/itemN.xml, but a part is one by its relationship's type, whatever
# its name (OPC part names ignore case, another tool may name it otherwise or put it elsewhere): every part named by a
# customXml relationship, and every XML part under customXml/ but their properties (itemProps: an id and the schemas)
# and relationships, is emptied (``_custom_xml``).
_CUSTOM_XML_RELATIONSHIP = re.compile(rb'\bType\s*=\s*"[^"<>]*/customXml"')
_CUSTOM_XML_FOLDER = re.compile(r"customxml/(?!_rels/|itemprops)[^/]+\.xml", re.I)
# A tracked deletion (text or a paragraph mark) and a comment, by their elements: the body is not parsed here.
_TRACKED_DELETION = re.compile(rb"<w:del[\s/>]")
_COMMENT = re.compile(rb"<w:comment[\s/>]")
TRACKED_DELETIONS = ("文件中还有未接受的修订：被删除的文字仍保存在文件里，打开“修订”即可看到。请在 Word 中点“审阅 › 接受 › "
                     "接受所有修订”后另存，再上传。")
COMMENTS = "文件中还有批注，公开后任何人都能看到。请在 Word 中点“审阅 › 删除 › 删除文档中的所有批注”后另存，再上传。"
IMPORTED_CONTENT = ("文件中有从其他文件导入的内容（altChunk），其中可能带有作者等信息，无法逐一去除。请用 Word 打开后另存为新的 .docx"
                    "（Word 会把导入的内容转为正文），再上传。")
_ALT_CHUNK_RELATIONSHIP = re.compile(rb'Type="[^"<>]*/aFChunk"')
UNAPPLIED_REDACTION = ("PDF 中有尚未应用的密文标记：被遮盖的文字仍保存在文件里，可以复制出来。请在 PDF 编辑器中“应用密文”"
                       "（或打印为新的 PDF）后再上传。")


HIDDEN_TEXT = ("文件中有设为“隐藏”格式的文字：页面上看不到，但仍保存在文件里，勾选“显示隐藏文字”即可看到。请在 Word 中点"
               "“文件 › 信息 › 检查问题 › 检查文档”，勾选“隐藏文字”，检查后点“全部删除”（或点“开始 › 显示/隐藏编辑标记”"
               "显示隐藏文字，逐一确认后删除），再另存并上传。")

# Hidden text (字体 › 隐藏, "hide" instead of delete) is w:vanish (or w:specVanish) in a run's properties, directly
# or through a style. Not hidden: w:webHidden (hidden in web layout only: Word writes it on a TOC's page numbers),
# vanish switched off (w:val="0"/"false"/"off"), a hidden paragraph mark (w:pPr/w:rPr: Word's style separator; it
# hides no text) and the properties before a tracked formatting change (w:rPrChange, w:pPrChange). Any namespace
# prefix, either quote: the body is scanned as bytes, never parsed.
# Every pattern here is linear in the part's size, whatever its bytes (an upload is anyone's): a tag's attributes
# and a quoted value stop at the next "<" (never in well-formed XML; so no two tries scan the same bytes), and an
# element's body is found by ``_elements``, one pass over its tags — a lazy ".*?" up to a closing tag rescans the
# rest of the part for every opening tag left unclosed (quadratic: 8,000 of them in a 37 KB upload held a worker
# 4.6 s).
_NS = rb"(?:[A-Za-z_][\w.-]{0,63}:)?"
_ATTRIBUTES = rb"([^<>]*)"
_VANISH = re.compile(rb"<" + _NS + rb"(?:vanish|specVanish)(?=[\s/>])" + _ATTRIBUTES + rb">")
_OFF = re.compile(rb"""(?:^|\s)""" + _NS + rb"""val\s*=\s*(["'])\s*(?:0|false|off)\s*\1""", re.I)
_STYLE_ID = re.compile(rb"""(?:^|\s)""" + _NS + rb"""styleId\s*=\s*(["'])([^"'<>]*)\1""")
_DEFAULT_STYLE = re.compile(rb"""(?:^|\s)""" + _NS + rb"""default\s*=\s*(["'])\s*(?:1|true|on)\s*\1""", re.I)
_BASED_ON = re.compile(rb"<" + _NS + rb"basedOn(?=[\s/>])" + _ATTRIBUTES + rb">")
_STYLE_USED = re.compile(rb"<" + _NS + rb"(?:pStyle|rStyle|tblStyle)(?=[\s/>])" + _ATTRIBUTES + rb">")
_VAL = re.compile(rb"""(?:^|\s)""" + _NS + rb"""val\s*=\s*(["'])([^"'<>]*)\1""")
_STYLES = "word/styles.xml"
_THEME_PART = re.compile(r"word/theme/theme\d{1,4}\.xml")
_STYLES_PART = re.compile(r"word/styles(?:WithEffects)?\.xml")  # the glossary's go with it (``_GLOSSARY``)
# a list level's properties format its number only (numbering.xml); styles are read for the styles in use
_NOT_STORY = re.compile(r"word/(?:styles(?:WithEffects)?|numbering)\.xml")
_ELEMENT_TAGS: dict[tuple[bytes, ...], re.Pattern] = {}


def _elements(content: bytes, names: tuple[bytes, ...]) -> Iterator[tuple[int, int, int, int, bytes]]:
    """The outermost elements named one of ``names`` (any prefix), in one pass over their tags: (start, end of the
    opening tag, start of the closing tag, end, the opening tag's attributes). An element left unclosed is not
    one (its text stays where it is, for the checks to see)."""
    pattern = _ELEMENT_TAGS.get(names)
    if pattern is None:
        pattern = _ELEMENT_TAGS[names] = re.compile(
            rb"<(/?)" + _NS + rb"(?:" + b"|".join(names) + rb")(?=[\s/>])" + _ATTRIBUTES + rb">")
    depth, opened = 0, None
    for tag in pattern.finditer(content):
        if tag.group(1):  # a closing tag
            if depth:
                depth -= 1
                if depth == 0:
                    yield opened.start(), opened.end(), tag.start(), tag.end(), opened.group(2)
        elif not tag.group(2).endswith(b"/"):  # an opening tag (an empty element <x/> holds nothing)
            if depth == 0:
                opened = tag
            depth += 1


def _without(content: bytes, names: tuple[bytes, ...]) -> bytes:
    """``content`` without the elements named one of ``names``."""
    kept, at = [], 0
    for start, _open_end, _close_start, end, _attributes in _elements(content, names):
        kept.append(content[at:start])
        at = end
    kept.append(content[at:])
    return b"".join(kept)


_FORMER = (b"rPrChange", b"pPrChange")  # the properties before a tracked formatting change
_PARAGRAPH = (b"pPr",)


def _val(tag_attributes: bytes) -> bytes | None:
    match = _VAL.search(tag_attributes)
    return match.group(2) if match else None


def _hidden(properties: bytes) -> bool | None:
    """Whether run properties (their XML, a style's, the defaults') make text hidden: True, False (switched off
    explicitly) or None (not said: inherited)."""
    said = None
    for match in _VANISH.finditer(properties):
        if not _OFF.search(match.group(1)):
            return True
        said = False
    return said


def _hidden_styles(parts: list[bytes]) -> tuple[set[bytes], bool]:
    """The ids of the styles that hide their text (their own properties or a style they are based on), and whether
    text is hidden without any style named (the document defaults, or a hidden default style)."""
    own: dict[bytes, bool | None] = {}
    based_on: dict[bytes, bytes] = {}
    defaults: list[bytes] = []
    everywhere = False
    for content in parts:
        content = _without(content, _FORMER)
        for _start, open_end, close_start, _end, _attributes in _elements(content, (b"rPrDefault",)):
            everywhere = everywhere or bool(_hidden(content[open_end:close_start]))
        for _start, open_end, close_start, _end, attributes in _elements(content, (b"style",)):
            style_id = _STYLE_ID.search(attributes)
            if style_id is None:
                continue
            key, body = style_id.group(2), content[open_end:close_start]
            own[key] = _hidden(_without(body, _PARAGRAPH))
            parent = _BASED_ON.search(body)
            if parent is not None and (parent_id := _val(parent.group(1))) is not None:
                based_on[key] = parent_id
            if _DEFAULT_STYLE.search(attributes):
                defaults.append(key)

    def resolved(key: bytes) -> bool:
        seen = set()
        while key in own and key not in seen:  # a loop of basedOn (a broken file) ends the walk
            seen.add(key)
            if own[key] is not None:
                return bool(own[key])
            key = based_on.get(key, b"")
        return False

    hidden = {key for key in own if resolved(key)}
    return hidden, everywhere or any(key in hidden for key in defaults)


def _has_hidden_text(content: bytes, hidden_styles: set[bytes]) -> bool:
    if b"PrChange" in content:  # a passage over every tag only where there is a former formatting to take out
        content = _without(content, _FORMER)
    if hidden_styles and any(_val(m.group(1)) in hidden_styles for m in _STYLE_USED.finditer(content)):
        return True
    if b"anish" not in content:  # neither vanish nor specVanish: no passage over every paragraph's properties
        return False
    return any(_hidden(m.group(0)) for m in _VANISH.finditer(_without(content, _PARAGRAPH)))


def _refuse_hidden_content(name: str, content: bytes, hidden_styles: set[bytes] = frozenset()) -> None:
    if name.startswith("word/") and name.endswith(".xml"):
        if _TRACKED_DELETION.search(content):
            raise ValidationFailed(TRACKED_DELETIONS, {"file": "含未接受的修订"})
        if name == "word/comments.xml" and _COMMENT.search(content):
            raise ValidationFailed(COMMENTS, {"file": "含批注"})
        if not _NOT_STORY.fullmatch(name) and _has_hidden_text(content, hidden_styles):
            raise ValidationFailed(HIDDEN_TEXT, {"file": "含隐藏文字"})


# Blacked out, not deleted (.docx): a run highlighted black (突出显示) or shaded black (底纹), its text set black too —
# the page shows a black bar, the text is in the file (removing the highlight, or copying it out, shows it). The
# background is the run's highlight, else its shading, else the paragraph's shading, else the table cell's, each
# directly or through the run's character style, the paragraph's style (or the default one), the table's style and
# the document defaults; "dark" and "invisible on it" are judged as in a PDF (``extract.DARK``,
# ``extract.VISIBLE_CONTRAST``). A table style (w:tblStyle, else the default table style) says a cell's shading
# (its w:tcPr, else its w:tblPr: the table's) and its text's colours, in its own properties and in the conditional
# parts (w:tblStylePr) the cell takes by its place and the table's w:tblLook: the whole table, row bands, column bands,
# first/last column, first/last row, corner cells — each overriding the ones before (Office's order); the cell's own
# shading overrides the style's (a light one, or "no colour", is not a black bar). A cell's place in the last row or
# column is known only when its table closes: a run whose verdict depends on it waits, counted in its cell, for it.
# The text's colour must be said (directly or by a style): Word shows the automatic colour white on a dark background,
# so a run left "自动" is read, not hidden. Not refused: white or light text on black (a label, a table header), a
# black bar with no text or only marks (spaces, XXX, ■). Not read: the header rows repeated after the first
# (w:tblHeader: the first row's part is taken by the first row only), a row's exceptions (w:tblPrEx), the theme's
# colours (w:themeFill without a w:fill). The body is scanned as bytes as for hidden text, in one pass over the tags,
# and only in a part (or with styles) holding a dark highlight or shading, or naming a table style that shades dark.
COVERED_TEXT_DOCX = ("文件{place}中有 {count} 处文字用黑色（或深色）的突出显示或底纹涂黑，而文字本身也是黑色（或深色）：页面上看起来"
                     "已经涂黑，但文字仍保存在文件里，去掉突出显示或底纹、或复制出来即可看到。请用真正删除文字的方式脱敏（例如 "
                     "Acrobat 的“应用密文”，或在 Word 中删除文字后再以黑框表示），然后重新上传。")
_PLACES = (("word/document.xml", "的正文"), ("word/header", "的页眉"), ("word/footer", "的页脚"),
           ("word/footnotes", "的脚注"), ("word/endnotes", "的尾注"))
_HIGHLIGHT_COLORS = {  # ST_HighlightColor
    b"black": "000000", b"blue": "0000FF", b"cyan": "00FFFF", b"green": "00FF00", b"magenta": "FF00FF",
    b"red": "FF0000", b"yellow": "FFFF00", b"white": "FFFFFF", b"darkblue": "000080", b"darkcyan": "008080",
    b"darkgreen": "008000", b"darkmagenta": "800080", b"darkred": "800000", b"darkyellow": "808000",
    b"darkgray": "808080", b"lightgray": "C0C0C0"}
_SHADING_TAG = re.compile(rb"<" + _NS + rb"(shd|highlight|color)(?=[\s/>])" + _ATTRIBUTES + rb">")
_BACKGROUND_TAG = re.compile(rb"<" + _NS + rb"(shd|highlight)(?=[\s/>])" + _ATTRIBUTES + rb">")
_COLOR_ATTRIBUTE = re.compile(rb"""(?:^|\s)""" + _NS + rb"""(val|color|fill)\s*=\s*(["'])([^"'<>]*)\2""")
_HEX = re.compile(rb"\s*([0-9A-Fa-f]{6})\s*")
_HEX_NUMBER = re.compile(rb"\s*[0-9A-Fa-f]{1,4}\s*")
_PATTERN_PERCENT = re.compile(rb"pct(\d{1,3})")
_RUN_TOKEN = re.compile(rb"<(/?)" + _NS + rb"(tbl|tblPr|tr|tc|tcPr|p|pPr|r|rPr|t|shd|highlight|color|rStyle|pStyle"
                        rb"|tblStyle|tblLook|gridSpan|tblStyleRowBandSize|tblStyleColBandSize)(?=[\s/>])"
                        + _ATTRIBUTES + rb">")
_CONTAINERS = (b"tbl", b"tblPr", b"tr", b"tc", b"tcPr", b"p", b"pPr", b"r", b"rPr")
_TABLE_STYLE_USED = re.compile(rb"<" + _NS + rb"tblStyle(?=[\s/>])" + _ATTRIBUTES + rb">")
_AUTO = "auto"  # a text colour Word picks against its background


def _rgb(value: bytes | None) -> tuple[float, float, float] | None:
    found = _HEX.fullmatch(value) if value else None
    if found is None:
        return None
    number = int(found.group(1), 16)
    return (number >> 16) / 255, (number >> 8 & 255) / 255, (number & 255) / 255


def _color_attributes(attributes: bytes) -> dict[bytes, bytes]:
    return {m.group(1): m.group(3).strip().lower() for m in _COLOR_ATTRIBUTE.finditer(attributes)}


def _background(name: bytes, attributes: bytes):
    """What a w:highlight or w:shd paints under its text: an RGB colour, or None (nothing: none, nil, clear with an
    automatic fill)."""
    said = _color_attributes(attributes)
    if name == b"highlight":
        color = _HIGHLIGHT_COLORS.get(said.get(b"val", b""))
        return _rgb(color.encode()) if color else None
    pattern = said.get(b"val", b"clear")
    fill = _rgb(said.get(b"fill"))  # "auto": no fill
    if pattern in (b"nil", b"none"):
        return None
    if pattern == b"clear":
        return fill
    color = _rgb(said.get(b"color")) or (0.0, 0.0, 0.0)  # the pattern's colour; "auto" is black
    percent = _PATTERN_PERCENT.fullmatch(pattern)
    share = 1.0 if pattern == b"solid" else min(int(percent.group(1)), 100) / 100 if percent else 0.5
    under = fill or (1.0, 1.0, 1.0)
    return tuple(c * share + u * (1 - share) for c, u in zip(color, under))


def _text_color(attributes: bytes):
    value = _color_attributes(attributes).get(b"val")
    return _rgb(value) or _AUTO


def _dark(color) -> bool:
    return color is not None and color != _AUTO and extract._luminance(color) <= extract.DARK


@functools.lru_cache(maxsize=1024)  # a document has a few colours, its runs many
def _dim(text) -> bool:
    """Whether a text colour could be unreadable on some dark background (lighter ones read on all of them)."""
    return extract._luminance(text) < (extract.DARK + 0.05) * extract.VISIBLE_CONTRAST - 0.05


@functools.lru_cache(maxsize=1024)
def _invisible_on(text, background) -> bool:
    """Whether text of colour ``text`` cannot be read on ``background`` (dark: a black bar)."""
    if text is None or text == _AUTO or not _dark(background):
        return False
    return extract.contrast(extract._luminance(text), extract._luminance(background)) < extract.VISIBLE_CONTRAST


_STYLE_TYPE = re.compile(rb"""(?:^|\s)""" + _NS + rb"""type\s*=\s*(["'])([^"'<>]*)\1""")
_BACKGROUNDS = ("highlight", "shd", "pshd", "cell", "table")  # the keys of a style's say that paint under text
_UNSAID = object()
_NO_TABLE = (None, ())  # a run outside a table (or in one without a style): no table style's say
_BAND_SIZE = re.compile(rb"<" + _NS + rb"tblStyle(Row|Col)BandSize(?=[\s/>])" + _ATTRIBUTES + rb">")
# w:tblLook: which of the table style's conditional parts the table uses (the attributes, else the bits of w:val)
_LOOK_BITS = {b"firstRow": 0x20, b"lastRow": 0x40, b"firstColumn": 0x80, b"lastColumn": 0x100, b"noHBand": 0x200,
              b"noVBand": 0x400}
_ON = (b"1", b"true", b"on")


def _last_shading(content: bytes, holders: tuple[bytes, ...]):
    """The background of the last w:shd directly in the elements named ``holders`` of ``content`` (_UNSAID if none)."""
    found = _UNSAID
    for _start, open_end, close_start, _end, _attributes in _elements(content, holders):
        for tag in _BACKGROUND_TAG.finditer(content, open_end, close_start):
            if tag.group(1) == b"shd":
                found = _background(b"shd", tag.group(2))
    return found


def _band_size(attributes: bytes) -> int:
    value = _val(attributes) or b""
    return max(int(value), 1) if value.strip().isdigit() and len(value) < 6 else 1


def _table_style(body: bytes) -> dict[str, object]:
    """A table style's say (``_Shadings``): "<part>/<key>", part "" for what it says outside its conditional parts."""
    said: dict[str, object] = {}
    parts = [(b"", _without(body, (b"tblStylePr",)))]
    for _start, open_end, close_start, _end, attributes in _elements(body, (b"tblStylePr",)):
        kind = _STYLE_TYPE.search(attributes)
        if kind is not None:
            parts.append((kind.group(2).strip(), body[open_end:close_start]))
    for part, content in parts:
        prefix = part.decode("ascii", "replace") + "/"
        for _start, open_end, close_start, _end, _attributes in _elements(content, (b"rPr",)):
            said.update({prefix + key: value for key, value in _run_properties(content[open_end:close_start]).items()})
        for key, holder in (("cell", b"tcPr"), ("table", b"tblPr")):
            if (shading := _last_shading(content, (holder,))) is not _UNSAID:
                said[prefix + key] = shading
        for size in _BAND_SIZE.finditer(content):
            said[prefix + size.group(1).decode().lower() + "Band"] = _band_size(size.group(2))
    return said


def _table_look(attributes: bytes) -> int:
    look = int(value, 16) if (value := _val(attributes)) and _HEX_NUMBER.fullmatch(value) else 0
    for found in _ATTRIBUTE.finditer(attributes):
        bit = _LOOK_BITS.get(found.group(2))
        if bit:
            look = look | bit if (found.group(3) or found.group(4) or b"").strip().lower() in _ON else look & ~bit
    return look


def _conditional_parts(look: int, row: int, col: int, last_row: bool, last_col: bool, row_band: int,
                       col_band: int) -> tuple[str, ...]:
    """The parts of a table style a cell takes, the one that overrides the others first (the order Office applies
    them in, [MS-OI29500] 2.1.252: the whole table, row bands, column bands, first/last column, first/last row,
    corners)."""
    first_row, last_row = bool(look & 0x20) and row == 0, bool(look & 0x40) and last_row
    first_col, last_col = bool(look & 0x80) and col == 0, bool(look & 0x100) and last_col
    parts = ["", "wholeTable"]
    if not look & 0x200 and not first_row and not last_row:
        parts.append(("band1Horz", "band2Horz")[(row - bool(look & 0x20)) // row_band % 2])
    if not look & 0x400 and not first_col and not last_col:
        parts.append(("band1Vert", "band2Vert")[(col - bool(look & 0x80)) // col_band % 2])
    parts += [part for part, applies in (("firstCol", first_col), ("lastCol", last_col), ("firstRow", first_row),
                                         ("lastRow", last_row), ("nwCell", first_row and first_col),
                                         ("neCell", first_row and last_col), ("swCell", last_row and first_col),
                                         ("seCell", last_row and last_col)) if applies]
    return tuple(parts[::-1])


class _Shadings:
    """The styles' say on a run's colours (``_run_properties``' keys: highlight, shd, color; a paragraph style's
    pshd), each through the styles it is based on; and the document defaults. A table style's say is kept under
    "<part>/<key>" (``_table_style``): part "" for the style itself, else the conditional part (w:tblStylePr w:type:
    firstRow, band1Horz, …); keys those of its rPr, "cell" (its tcPr's shading), "table" (its tblPr's), "rowBand" and
    "colBand" (the banding sizes)."""

    def __init__(self, parts: list[bytes], theme: bytes = b""):
        self.theme = _theme_colors(theme)  # for the shapes' fills (``_covering_shapes``)
        self.own: dict[bytes, dict[str, object]] = {}
        self.based_on: dict[bytes, bytes] = {}
        self.defaults: dict[str, object] = {}
        self.default_paragraph: bytes | None = None
        self.default_table: bytes | None = None
        self.dark_tables: set[bytes] = set()  # the table styles shading something dark (or based on one that does)
        tables: set[bytes] = set()
        for content in parts:
            content = _without(content, _FORMER)
            for _start, open_end, close_start, _end, _attributes in _elements(content, (b"rPrDefault",)):
                self.defaults.update(_run_properties(content[open_end:close_start]))
            for _start, open_end, close_start, _end, attributes in _elements(content, (b"style",)):
                style_id = _STYLE_ID.search(attributes)
                if style_id is None:
                    continue
                key, body = style_id.group(2), content[open_end:close_start]
                if key in self.own:  # defined twice: the first holds (styles.xml before its copy, ``_docx``)
                    continue
                kind = _STYLE_TYPE.search(attributes)
                kind = kind.group(2) if kind else b"paragraph"
                if kind == b"table":
                    said = _table_style(body)
                    tables.add(key)
                else:
                    said = {}
                    for _s, rpr_end, rpr_close, _e, _a in _elements(body, (b"rPr",)):
                        said.update(_run_properties(body[rpr_end:rpr_close]))
                    if (shading := _last_shading(body, (b"pPr",))) is not _UNSAID:
                        said["pshd"] = shading
                self.own[key] = said
                parent = _BASED_ON.search(body)
                if parent is not None and (parent_id := _val(parent.group(1))) is not None:
                    self.based_on[key] = parent_id
                if _DEFAULT_STYLE.search(attributes):
                    if kind == b"paragraph" and self.default_paragraph is None:
                        self.default_paragraph = key
                    elif kind == b"table" and self.default_table is None:
                        self.default_table = key
        dark = {key for key, said in self.own.items()
                if any(_dark(value) for name, value in said.items() if name.rsplit("/", 1)[-1] in _BACKGROUNDS)}
        self.any_dark = bool(dark - tables) or any(_dark(self.defaults.get(k)) for k in _BACKGROUNDS)
        for key in tables:  # a table style shades dark if it, or a style it is based on, does
            seen, at = set(), key
            while at in self.own and at not in seen:
                seen.add(at)
                if at in dark:
                    self.dark_tables.add(key)
                    break
                at = self.based_on.get(at, b"")
        self._resolved: dict[tuple[bytes, str], object] = {}

    def table_parts(self, style: bytes) -> set[str]:
        """The parts ("" and the conditional ones) that ``style`` and the styles it is based on say something in."""
        found = self._resolved.get((style, "parts"))
        if found is None:
            found, seen, at = {""}, set(), style
            while at in self.own and at not in seen:
                seen.add(at)
                found.update(name.split("/", 1)[0] for name in self.own[at] if "/" in name)
                at = self.based_on.get(at, b"")
            self._resolved[(style, "parts")] = found
        return found

    def get(self, style: bytes | None, key: str):
        """What ``style`` (or a style it is based on) says of ``key``; KeyError if none says."""
        if style is None:
            raise KeyError(key)
        found = self._resolved.get((style, key), self)
        if found is self:
            found, seen, at = KeyError, set(), style
            while at in self.own and at not in seen:  # a loop of basedOn (a broken file) ends the walk
                seen.add(at)
                if key in self.own[at]:
                    found = self.own[at][key]
                    break
                at = self.based_on.get(at, b"")
            self._resolved[(style, key)] = found
        if found is KeyError:
            raise KeyError(key)
        return found


def _run_properties(properties: bytes) -> dict[str, object]:
    """The colours a run's properties (their XML) say: highlight, shd (a background or None), color (RGB or auto)."""
    said: dict[str, object] = {}
    for found in _SHADING_TAG.finditer(properties):
        name, attributes = found.group(1), found.group(2)
        said[name.decode()] = _text_color(attributes) if name == b"color" else _background(name, attributes)
    return said


def _blacked_out_runs(content: bytes, styles: _Shadings) -> int:
    """How many runs of a story part show text on a dark highlight or shading in a colour that cannot be read on it
    (above), in one pass over its tags (an element left unclosed is closed with the element it is in; each is
    opened and closed once, so the pass stays linear whatever the markup). A run in a table whose style shades is
    judged for each of the four places its cell may have (in the last row or not, the last column or not: known when
    the table closes); when they differ, its cell counts it for each and the table adds the count of its place."""
    if not styles.any_dark and not _uses_dark_table(content, styles) and not any(
            _dark(_background(m.group(1), m.group(2))) for m in _BACKGROUND_TAG.finditer(content)):
        return 0
    if b"PrChange" in content:
        content = _without(content, _FORMER)
    stack: list[tuple[bytes, dict]] = []  # the open containers (_CONTAINERS), each with what it says
    open_of: dict[bytes, list[dict]] = {name: [] for name in _CONTAINERS}  # the same, by kind
    text_at, found = -1, 0
    table_cache: dict = {}

    def innermost(name: bytes) -> dict | None:
        return open_of[name][-1] if open_of[name] else None

    def said(run: dict, paragraph: dict | None, key: str, table: tuple):
        """What the run, its character style, its paragraph's style, the table's style or the defaults say of ``key``
        (the standard's order) — but the table's style before the default paragraph style (Normal) in a paragraph
        naming none: Word is reported to let a table style win over Normal there, and taken the other way a header
        band whose white text the table style says would be refused for a Normal saying black."""
        if key in run:
            return run[key]
        named = (paragraph or {}).get("pStyle")
        for style in (run.get("rStyle"), named):
            try:
                return styles.get(style, key)
            except KeyError:
                pass
        found = table_said(table, key, _UNSAID)
        if found is not _UNSAID:
            return found
        if named is None:
            try:
                return styles.get(styles.default_paragraph, key)
            except KeyError:
                pass
        return styles.defaults.get(key)

    def table_said(table: tuple, key: str, otherwise):
        """What the table's style says of ``key`` in the cell's conditional ``parts``, the first of them saying it."""
        found = table_cache.get((table, key), table_cache)
        if found is table_cache:
            found, (style, parts) = KeyError, table
            for part in parts:
                try:
                    found = styles.get(style, part + "/" + key)
                    break
                except KeyError:
                    pass
            table_cache[(table, key)] = found
        return otherwise if found is KeyError else found

    def invisible(run: dict, paragraph: dict | None, cell: dict | None, table: tuple) -> bool:
        color = said(run, paragraph, "color", table)
        if color is None or color == _AUTO or not _dim(color):
            return False
        background = said(run, paragraph, "highlight", table)
        if background is None:
            background = said(run, paragraph, "shd", table)
        if background is None and paragraph is not None:
            background = paragraph["shd"] if "shd" in paragraph else said({}, paragraph, "pshd", _NO_TABLE)
        if background is None and cell is not None:  # the cell's own shading, its style's, the table's
            background = cell["shd"] if "shd" in cell else table_said(table, "cell", _UNSAID)
            if background is _UNSAID:
                grid = cell.get("table", {})
                background = grid["shd"] if "shd" in grid else table_said(table, "table", None)
        return _invisible_on(color, background)

    def places(cell: dict) -> list[tuple]:
        """The table style and the parts of it the cell takes in each of its four possible places (not last, last
        column, last row, both), only the parts the style has; one place if they are the same."""
        grid = cell.get("table")
        style = grid.get("style", styles.default_table) if grid is not None else None
        if style not in styles.own:
            return [_NO_TABLE]
        if "bands" not in grid:
            grid["bands"] = [grid.get(name) or table_said((style, ("",)), name, 1) for name in ("rowBand", "colBand")]
            grid["places"] = {}  # by the cell's kind of place: the same answer for every cell of a kind
        look, (row_band, col_band), row, col = grid.get("look", 0), grid["bands"], cell["row"], cell["col"]
        kind = (row == 0, (row - bool(look & 0x20)) // row_band % 2, col == 0,
                (col - bool(look & 0x80)) // col_band % 2)
        found = grid["places"].get(kind)
        if found is None:
            has = styles.table_parts(style)
            found = [(style, tuple(part for part in _conditional_parts(look, row, col, last_row, last_col, row_band,
                                                                       col_band) if part in has))
                     for last_row in (False, True) for last_col in (False, True)]
            found = grid["places"][kind] = found[:1] if found.count(found[0]) == 4 else found
        return found

    def judged(run: dict, paragraph: dict | None, cell: dict | None) -> int:
        """The run counted (1) or not; or, in a styled table and depending on its cell's place, 0 with the
        count left in the cell (``pending``: one for each place, not last/last column/last row/both)."""
        if cell is None:
            return invisible(run, paragraph, cell, _NO_TABLE)
        if "places" not in cell:
            cell["places"] = places(cell)
        counted = [invisible(run, paragraph, cell, place) for place in cell["places"]]
        if len(counted) == 1 or all(counted) or not any(counted):
            return int(counted[0])
        pending = cell.setdefault("pending", [0, 0, 0, 0])
        for at, place in enumerate(counted):
            pending[at] += place
        return 0

    for tag in _RUN_TOKEN.finditer(content):
        closing, name, attributes = tag.groups()
        if name == b"t":
            if not closing:
                text_at = -1 if attributes.endswith(b"/") else tag.end()
            elif text_at >= 0:
                if stack and stack[-1][0] == b"r" and extract._secret(
                        html.unescape(content[text_at:tag.start()].decode("utf-8", "replace"))):
                    stack[-1][1]["text"] = True
                text_at = -1
            continue
        if name in open_of:
            if not closing:
                if not attributes.endswith(b"/"):
                    opened: dict = {}
                    if name in (b"tr", b"tc") and (grid := innermost(b"tbl")) is not None:
                        if name == b"tr" or not grid["rows"]:
                            grid["rows"].append(0)  # the grid columns each row has filled so far
                        if name == b"tc":
                            opened.update(table=grid, row=len(grid["rows"]) - 1, col=grid["rows"][-1], span=1)
                    elif name == b"tbl":
                        opened.update(rows=[], pending=[])
                    stack.append((name, opened))
                    open_of[name].append(opened)
                continue
            if not open_of[name]:
                continue
            while stack:  # closes what was left open inside it
                popped, properties = stack.pop()
                open_of[popped].pop()
                if popped == b"r" and properties.get("text"):
                    found += judged(properties, innermost(b"p"), innermost(b"tc"))
                elif popped == b"tc" and "table" in properties:
                    rows, row = properties["table"]["rows"], properties["row"]
                    rows[row] = max(rows[row], properties["col"] + properties["span"])
                    if "pending" in properties:
                        properties["table"]["pending"].append((row, rows[row], properties["pending"]))
                elif popped == b"tbl":
                    for row, end, pending in properties["pending"]:
                        found += pending[2 * (row == len(properties["rows"]) - 1) + (end >= properties["rows"][row])]
                if popped == name:
                    break
            continue
        if closing or len(stack) < 2:
            continue
        (parent, _), (holder, properties) = stack[-2], stack[-1]
        if holder == b"rPr" and parent == b"r":  # a run's own properties (not a paragraph mark's: pPr/rPr)
            if name == b"rStyle":
                stack[-2][1]["rStyle"] = _val(attributes)
            elif name in (b"shd", b"highlight", b"color"):
                stack[-2][1][name.decode()] = (_text_color(attributes) if name == b"color"
                                                else _background(name, attributes))
        elif holder == b"pPr" and parent == b"p":
            if name == b"pStyle":
                stack[-2][1]["pStyle"] = _val(attributes)
            elif name == b"shd":
                stack[-2][1]["shd"] = _background(name, attributes)
        elif holder == b"tcPr" and parent == b"tc":
            if name == b"shd":
                stack[-2][1]["shd"] = _background(name, attributes)
            elif name == b"gridSpan":
                stack[-2][1]["span"] = _band_size(attributes)
        elif holder == b"tblPr" and parent == b"tbl":
            if name == b"tblStyle":
                stack[-2][1]["style"] = _val(attributes)
            elif name == b"tblLook":
                stack[-2][1]["look"] = _table_look(attributes)
            elif name == b"shd":
                stack[-2][1]["shd"] = _background(name, attributes)
            elif name in (b"tblStyleRowBandSize", b"tblStyleColBandSize"):
                stack[-2][1][name[8:11].decode().lower() + "Band"] = _band_size(attributes)
    return found


def _uses_dark_table(content: bytes, styles: _Shadings) -> bool:
    """Whether a table of the part takes a table style that shades something dark (named, or the default one)."""
    if not styles.dark_tables or b"tbl" not in content:
        return False
    return styles.default_table in styles.dark_tables or any(
        _val(m.group(1)) in styles.dark_tables for m in _TABLE_STYLE_USED.finditer(content))


# Blacked out with a shape (.docx): a rectangle (or any autoshape, or a text box) filled black and laid over the names
# — the page shows a black bar, the text is in the file under it (moving the shape, or copying, shows it). Where a
# floating shape lands on the page is Word's layout (its offsets from a column, a margin, a paragraph, the page, the
# text's wrapping around other floats), not in the XML: which letters it covers is not computed. The rule instead:
# a shape is a cover when it floats (wp:anchor; VML: position:absolute) in front of the text (not behindDoc; VML: a
# z-index not negative) with no wrapping (wp:wrapNone; VML: no w10:wrap or type none — text wrapped around a shape
# is never under it), is at least ``_COVER_MIN_EMU`` high and wide (a rule, an underline, a border hides no line of
# text), and is filled with one opaque dark colour (a:solidFill, else the style's a:fillRef, in RGB, a theme colour
# through the theme with its lumMod/lumOff/shade/tint, a system or preset colour; VML fillcolor, white when not
# said; any alpha or VML opacity below 100 % is see-through, as a PDF fill with transparency is); and it is refused
# when the paragraph it is anchored in, or the one before or after it, holds text (a letter or a digit: not spaces,
# XXX or ■), outside any shape — Word anchors a shape to the paragraph it was drawn over, or to an empty one next to
# it. Not refused: inline pictures and shapes (wp:inline, VML without position:absolute), pictures (a photo's pixels
# are not read), shapes behind the text or with text wrapped around them, light, see-through, gradient, pattern or
# picture fills, a text box whose own text is readable on it (a label: its text in a colour said light, or not said),
# shapes in mc:Fallback (the VML copy of a DrawingML shape Word shows). Not seen: a cover anchored two or more
# paragraphs away from what it covers, a cover over text with nothing else in the paragraph near its anchor (it then
# covers the text of another paragraph, unseen by this rule), a group's child judged by the group's size, a text
# box labelled over the text it hides (its label is readable: not refused).
COVERED_BY_SHAPE_DOCX = ("文件{place}中有 {count} 个黑色（或深色）的形状（矩形等自选图形或文本框）浮于文字上方，所在段落或相邻段落"
                         "中有文字：页面上看起来已经涂黑，但被遮住的文字仍保存在文件里，移开形状或复制出来即可看到。请用真正删除"
                         "文字的方式脱敏（例如 Acrobat 的“应用密文”，或在 Word 中删除文字后再以黑框表示），然后重新上传。")
_COVER_MIN_EMU = 63_500  # 5 pt: the height of a small letter
_EMU_PER = {b"pt": 12_700, b"in": 914_400, b"cm": 360_000, b"mm": 36_000, b"px": 9_525, b"": 9_525}
_SHAPE_TOKEN = re.compile(rb"<(/?)" + _NS + rb"(p|drawing|pict|Fallback)(?=[\s/>])" + _ATTRIBUTES + rb">")
_TEXT = re.compile(rb"<" + _NS + rb"t(?:\s[^<>]*)?>([^<]*)<")
_ANCHOR = re.compile(rb"<" + _NS + rb"anchor(?=[\s/>])" + _ATTRIBUTES + rb">")
_BEHIND = re.compile(rb"""(?:^|\s)behindDoc\s*=\s*["']\s*(?:1|true|on)\s*["']""", re.I)
_EXTENT = re.compile(rb"<" + _NS + rb"extent(?=[\s/>])" + _ATTRIBUTES + rb">")
_SIZE = re.compile(rb"""(?:^|\s)(cx|cy)\s*=\s*["']\s*(\d{1,12})\s*["']""")
_WRAP_NONE = re.compile(rb"<" + _NS + rb"wrapNone(?=[\s/>])")
_DRAWN_SHAPE = (b"wsp",)  # DrawingML's word-processing shape (wps:wsp), in an anchor or a group in one
# what holds colours other than the shape's fill: its outline, effects, 3-D, style, text box
_NOT_FILL = (b"ln", b"effectLst", b"effectDag", b"scene3d", b"sp3d", b"style", b"txbx", b"bodyPr")
_FILL = re.compile(rb"<" + _NS + rb"(noFill|solidFill|gradFill|blipFill|pattFill|grpFill|fillRef)(?=[\s/>])"
                   + _ATTRIBUTES + rb">")
_COLOR_TAG = re.compile(rb"<" + _NS + rb"(srgbClr|schemeClr|sysClr|prstClr|lumMod|lumOff|shade|tint|alpha)"
                        rb"(?=[\s/>])" + _ATTRIBUTES + rb">")
_LAST_COLOR = re.compile(rb"""(?:^|\s)lastClr\s*=\s*["']\s*([0-9A-Fa-f]{6})""")
_IDX = re.compile(rb"""(?:^|\s)idx\s*=\s*["']\s*(\d{1,5})""")
_SCHEME = {b"tx1": b"dk1", b"tx2": b"dk2", b"bg1": b"lt1", b"bg2": b"lt2"}  # Word's colour mapping (w:clrSchemeMapping)
_PRESET = {b"black": (0.0, 0.0, 0.0), b"navy": (0.0, 0.0, 0.5), b"darkblue": (0.0, 0.0, 0.55),
           b"maroon": (0.5, 0.0, 0.0), b"darkgreen": (0.0, 0.39, 0.0), b"darkslategray": (0.18, 0.31, 0.31),
           b"dimgray": (0.41, 0.41, 0.41), b"midnightblue": (0.1, 0.1, 0.44), b"white": (1.0, 1.0, 1.0),
           b"windowtext": (0.0, 0.0, 0.0)}  # DrawingML's preset and VML's named colours that are dark (and white)
_THEME_COLOR = re.compile(rb"<" + _NS + rb"(dk1|lt1|dk2|lt2|accent[1-6]|hlink|folHlink)>\s*<" + _NS
                          + rb"(?:srgbClr|sysClr)(?=[\s/>])" + _ATTRIBUTES + rb">")
_VML_SHAPE = re.compile(rb"<" + _NS + rb"(?:rect|roundrect|shape)(?=[\s/>])" + _ATTRIBUTES + rb">")
_VML_ATTRIBUTE = re.compile(rb"""(?:^|\s)(style|fillcolor|filled|type)\s*=\s*(["'])([^"'<>]*)\2""")
_VML_FILL = re.compile(rb"<" + _NS + rb"fill(?=[\s/>])" + _ATTRIBUTES + rb">")
_VML_OFF = re.compile(rb"""(?:^|\s)on\s*=\s*["']\s*(?:f|false|0)\s*["']""", re.I)
_VML_OPACITY = re.compile(rb"""(?:^|\s)opacity\s*=\s*["']\s*([\d.]{1,12})(f?)\s*["']""")
_VML_WRAP = re.compile(rb"<" + _NS + rb"wrap(?=[\s/>])" + _ATTRIBUTES + rb">")
_VML_WRAP_TYPE = re.compile(rb"""(?:^|\s)type\s*=\s*["']\s*(\w{1,20})""")
_STYLE_LENGTH = re.compile(rb"(width|height|z-index|position)\s*:\s*([-\w.]{1,30})")


def _theme_colors(theme: bytes) -> dict[bytes, tuple[float, float, float]]:
    """The theme's colour scheme (a:clrScheme: dk1, lt1, accent1, …) as RGB, the document's tx1/bg1/… through
    Word's mapping of them."""
    colors = {}
    for found in _THEME_COLOR.finditer(theme):
        value = _LAST_COLOR.search(found.group(2)) or _VAL.search(found.group(2))
        rgb = _rgb(value.group(value.lastindex)) if value else None
        if rgb is not None:
            colors.setdefault(found.group(1), rgb)  # the first scheme (a theme part has one)
    colors.update({alias: colors[name] for alias, name in _SCHEME.items() if name in colors})
    return colors


def _base_color(name: bytes, attributes: bytes, theme: dict) -> tuple[float, float, float] | None:
    value = (_val(attributes) or b"").strip()
    if name == b"srgbClr":
        return _rgb(value)
    if name == b"schemeClr":
        return theme.get(value)
    if name == b"sysClr":
        last = _LAST_COLOR.search(attributes)
        return _rgb(last.group(1)) if last else None
    return _PRESET.get(value.lower())  # prstClr


def _drawing_color(content: bytes, theme: dict) -> tuple[tuple[float, float, float] | None, float]:
    """The colour a DrawingML fill (its XML) says first (RGB, None if not known) and its opacity, its transforms
    applied (lumMod/lumOff in HLS, shade towards black, tint towards white)."""
    rgb, alpha, seen = None, 1.0, False
    for found in _COLOR_TAG.finditer(content):
        name, value = found.group(1), (_val(found.group(2)) or b"").strip()
        if name in (b"srgbClr", b"schemeClr", b"sysClr", b"prstClr"):
            if seen:
                break  # another colour (a gradient's next stop): the first is judged
            seen, rgb = True, _base_color(name, found.group(2), theme)
            continue
        if rgb is None or not value.isdigit() or len(value) > 7:
            continue
        share = int(value) / 100_000
        if name == b"alpha":
            alpha = share
        elif name in (b"lumMod", b"lumOff"):
            hue, lightness, saturation = colorsys.rgb_to_hls(*rgb)
            lightness = lightness * share if name == b"lumMod" else lightness + share
            rgb = colorsys.hls_to_rgb(hue, min(max(lightness, 0.0), 1.0), saturation)
        elif name == b"shade":
            rgb = tuple(c * share for c in rgb)
        else:  # tint
            rgb = tuple(c + (1 - c) * (1 - share) for c in rgb)
    return rgb, alpha


def _readable_text(content: bytes, fill) -> bool:
    """Whether a shape's own text (its text box's runs) says something in a colour that can be read on ``fill``: a
    run with a letter or a digit, its colour said light (w:color) or not said."""
    for _start, open_end, close_start, _end, _attributes in _elements(content, (b"r",)):
        run = content[open_end:close_start]
        if any(extract._secret(html.unescape(t.group(1).decode("utf-8", "replace"))) for t in _TEXT.finditer(run)):
            colors = [m.group(2) for m in _SHADING_TAG.finditer(run) if m.group(1) == b"color"]
            if not _invisible_on(_text_color(colors[-1]) if colors else _AUTO, fill):
                return True
    return False


def _drawn_cover(drawing: bytes, theme: dict) -> bool:
    """Whether a w:drawing is a cover (above): anchored in front of the text without wrapping, large enough, a shape
    in it filled with an opaque dark colour and without readable text of its own."""
    anchor = _ANCHOR.search(drawing)
    if anchor is None or _BEHIND.search(anchor.group(1)) or not _WRAP_NONE.search(drawing):
        return False
    extent = _EXTENT.search(drawing)
    if extent is not None and any(int(size.group(2)) < _COVER_MIN_EMU for size in _SIZE.finditer(extent.group(1))):
        return False
    for _start, open_end, close_start, _end, _attributes in _elements(drawing, _DRAWN_SHAPE):
        shape = drawing[open_end:close_start]
        said = _without(shape, _NOT_FILL)
        fill = _FILL.search(said)  # the shape properties' own fill (not its outline's, its shadow's)
        if fill is None:  # none said: the shape style's fill reference (idx 0: no fill)
            said = b"".join(shape[s:e] for s, _o, _c, e, _a in _elements(shape, (b"style",)))
            fill = _FILL.search(said)
            index = _IDX.search(fill.group(2)) if fill is not None else None
            fill = fill if index is not None and int(index.group(1)) > 0 else None
        if fill is None or fill.group(1) not in (b"solidFill", b"fillRef"):
            continue
        rgb, alpha = _drawing_color(said[fill.end():], theme)
        if alpha >= 1.0 and _dark(rgb) and not _readable_text(shape, rgb):
            return True
    return False


def _vml_length(value: bytes) -> float | None:
    found = re.fullmatch(rb"\s*(-?[\d.]{1,12})\s*(pt|in|cm|mm|px|)\s*", value)
    try:
        return float(found.group(1)) * _EMU_PER[found.group(2)] if found else None
    except ValueError:
        return None


def _vml_cover(picture: bytes) -> bool:
    """Whether a w:pict is a cover (above): a VML rectangle or shape positioned absolutely in front of the text
    without wrapping, large enough, filled with an opaque dark colour, without readable text of its own."""
    wrap = _VML_WRAP.search(picture)
    if wrap is not None and (kind := _VML_WRAP_TYPE.search(wrap.group(1))) and kind.group(1).lower() != b"none":
        return False
    for shape in _VML_SHAPE.finditer(picture):
        said = {m.group(1): m.group(3).strip().lower() for m in _VML_ATTRIBUTE.finditer(shape.group(1))}
        style = {m.group(1): m.group(2).lower() for m in _STYLE_LENGTH.finditer(said.get(b"style", b""))}
        if style.get(b"position") != b"absolute" or style.get(b"z-index", b"0").startswith(b"-"):
            continue
        if said.get(b"filled", b"t") in (b"f", b"false") or said.get(b"type", b"") == b"#_x0000_t75":
            continue  # no fill; a picture's frame
        sizes = [_vml_length(style.get(name, b"")) for name in (b"width", b"height")]
        if any(size is not None and size < _COVER_MIN_EMU for size in sizes):
            continue
        color = said.get(b"fillcolor", b"white").split(b"[")[0].strip()
        rgb = _rgb(color[1:]) if color.startswith(b"#") and len(color) == 7 else (
            _rgb(bytes(c for c in color[1:] for _ in (0, 1))) if color.startswith(b"#") and len(color) == 4
            else _PRESET.get(color))
        fill = _VML_FILL.search(picture, shape.end())
        if fill is not None and (_VML_OFF.search(fill.group(1)) or _see_through(fill.group(1))):
            continue
        if _dark(rgb) and not _readable_text(picture[shape.end():], rgb):
            return True
    return False


def _see_through(fill_attributes: bytes) -> bool:
    opacity = _VML_OPACITY.search(fill_attributes)
    if opacity is None:
        return False
    try:  # "0.5", ".5", or 32768f (in 1/65536)
        value = float(opacity.group(1)) / (65_536 if opacity.group(2) else 1)
    except ValueError:
        return False
    return value < 1.0


def _covering_shapes(content: bytes, theme: dict) -> int:
    """How many covers (above) of a story part lie in front of text, in one pass over its paragraphs and shapes: each
    outermost paragraph's text (outside the shapes in it) is read once, when a cover is anchored in or beside it."""
    if b"wrapNone" not in content and b"absolute" not in content:  # no cover in it (a cover says one or the other)
        return 0
    paragraphs: list[list] = []  # outermost paragraphs: [start, end, the shapes' spans in it, its text (None: unread)]
    covers: list[int] = []  # for each cover, its paragraph's index
    depth, fallback, shape_at, shape_depth = 0, 0, -1, 0
    for tag in _SHAPE_TOKEN.finditer(content):
        closing, name, attributes = tag.groups()
        if attributes.endswith(b"/"):
            if name == b"p" and depth == 0 and shape_at < 0:  # an empty paragraph: a neighbour with no text
                paragraphs.append([tag.start(), tag.end(), [], False])
            continue
        if name == b"Fallback":  # mc:Fallback: the copy for older Word of the shape in mc:Choice
            fallback = max(fallback - 1, 0) if closing else fallback + 1
        elif name == b"p" and shape_at < 0:
            if not closing:
                if depth == 0:
                    paragraphs.append([tag.start(), None, [], None])
                depth += 1
            elif depth:
                depth -= 1
                if depth == 0:
                    paragraphs[-1][1] = tag.end()
        elif name in (b"drawing", b"pict"):
            if not closing:
                if shape_at < 0:
                    shape_at = tag.start()
                shape_depth += 1
            elif shape_at >= 0:
                shape_depth -= 1
                if shape_depth == 0:
                    span, shape_at = (shape_at, tag.end()), -1
                    if depth and paragraphs:
                        paragraphs[-1][2].append(span)
                        shape = content[span[0]:span[1]]
                        if not fallback and (_drawn_cover(shape, theme) if name == b"drawing"
                                             else _vml_cover(shape)):
                            covers.append(len(paragraphs) - 1)
    if not covers:
        return 0

    def has_text(at: int) -> bool:
        if not 0 <= at < len(paragraphs) or paragraphs[at][1] is None:
            return False
        paragraph = paragraphs[at]
        if paragraph[3] is None:
            start, pieces = paragraph[0], []
            for shape_start, shape_end in paragraph[2]:
                pieces.append(content[start:shape_start])
                start = shape_end
            pieces.append(content[start:paragraph[1]])
            paragraph[3] = any(extract._secret(html.unescape(t.group(1).decode("utf-8", "replace")))
                               for piece in pieces for t in _TEXT.finditer(piece))
        return paragraph[3]

    return sum(1 for at in covers if has_text(at - 1) or has_text(at) or has_text(at + 1))


def _refuse_blacked_out(name: str, content: bytes, styles: _Shadings) -> None:
    if name.startswith("word/") and name.endswith(".xml") and not _NOT_STORY.fullmatch(name):
        place = next((said for prefix, said in _PLACES if name.startswith(prefix)), f"（{name}）")
        count = _blacked_out_runs(content, styles)
        if count:
            raise ValidationFailed(COVERED_TEXT_DOCX.format(place=place, count=count), {"file": "含涂黑但未删除的文字"})
        count = _covering_shapes(content, styles.theme)
        if count:
            raise ValidationFailed(COVERED_BY_SHAPE_DOCX.format(place=place, count=count),
                                   {"file": "含被形状遮盖但未删除的文字"})


# Fields (域). A field is an instruction Word runs and the result it shows; the instruction is never on the page and
# may hold what the result does not: { INCLUDETEXT "C:\\Users\\<account>\\…\\访谈记录.docx" }, { HYPERLINK "file:///…" },
# { SET 名 "text" } (shows nothing), { IF … "a" "b" } (the branch not taken), { ADDIN ZOTERO_ITEM … } (the reference
# manager's account), a legacy form field's default and help texts; { AUTHOR }, { USERNAME }, { FILENAME \p },
# { DOCPROPERTY … } show the properties removed above, and show them again (or the reader's own name) once updated.
# Fields Word needs live to lay the document out (page numbers, the table of contents and its links, cross-references,
# captions, dates, formulas, web links) stay, their instructions cleaned (below). Every other field is unlinked as
# Ctrl+Shift+F9 does: the result the page shows stays as plain text; the instruction goes, with all inside it (a field
# nested in it, and that field's result, part of the instruction too). Unlinking leaves what the reader sees
# unchanged, so nothing is refused.
_LIVE_FIELDS = frozenset({
    "PAGE", "NUMPAGES", "SECTIONPAGES", "SECTION", "PAGEREF", "REF", "NOTEREF", "STYLEREF", "SEQ", "TOC", "TOA",
    "INDEX", "DATE", "TIME", "CREATEDATE", "SAVEDATE", "PRINTDATE", "NUMWORDS", "NUMCHARS", "EQ", "SYMBOL", "LISTNUM",
    "AUTONUM", "AUTONUMLGL", "AUTONUMOUT", "ADVANCE", "HYPERLINK"})
_WEB_TARGET = ("http://", "https://", "mailto:")
_FIELD_CHAR_TYPE = re.compile(rb"""(?:^|\s)""" + _NS + rb"""fldCharType\s*=\s*(["'])\s*(begin|separate|end)\s*\1""")
_INSTR = re.compile(rb"""(?:^|\s)""" + _NS + rb"""instr\s*=\s*(?:"([^"<>]*)"|'([^'<>]*)')""")
# a field's words: a quoted argument (\" inside it is a quote), a switch (\l), a bare word; each stops at the next
# quote or space: linear
_FIELD_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"?|(\\\S)|([^\s"]+)', re.S)

# Names the author gave, kept where no page shows them (Word lists them in 插入 › 书签, 开发工具 › 属性, a screen tip
# pops up only under the mouse):
# - bookmarks (w:bookmarkStart/@w:name): named after a person ("王建国电话"), an internal note ("待删_刘芳意见"); a
#   legacy form field's bookmark bears the field's name. They stay (the table of contents, cross-references and links
#   go to them), renamed _bm1, _bm2, … in the order met, one name for one bookmark throughout the package (headers and
#   footnotes too; Word compares bookmark names without case), and every reference follows: REF, PAGEREF, NOTEREF's
#   bookmark, HYPERLINK's \l, TOC/TOA/INDEX's \b, the names a formula reads (= 单价 * 2), w:hyperlink/@w:anchor.
#   Word's own names stay: _Toc, _Ref, _Hlk, _Hlt followed by digits (a counter Word draws: nothing of the author) and
#   _GoBack (where the last edit was); one of them followed by anything but digits is the author's and renamed. The
#   new names start with "_", as Word's own hidden bookmarks do: 插入 › 书签 does not list them.
# - content controls' titles and tags (w:sdtPr/w:alias, w:tag: what a template or an OA system calls the control,
#   "联系人 王建国"), their placeholder's building block (w:placeholder: the glossary document it names is gone,
#   above), their data binding (w:dataBinding, w15:dataBinding: an XPath into a custom XML part — emptied, above —,
#   its namespaces an OA system's; bound, Word would refill the control from the part when the file opens), and a drop-
#   down list's items (w:listItem: the choices not taken; the control shows its text as it is). The controls stay.
# - a link's screen tip: w:hyperlink/@w:tooltip, a picture's a:hlinkClick/@tooltip, HYPERLINK's \o "…".
# - range permissions (审阅 › 限制编辑's exceptions): w:permStart/@w:ed names the one editor allowed a range, as the
#   account ("BZCZJ\zhangsan") or an e-mail. A public copy has no use for editing permissions: every w:permStart and
#   w:permEnd tag goes (both ends of each range, so none is left unpaired: they pair by w:id); the text they mark stays.
# - smart tags (w:smartTag: Word 2003–2007 marked a person's name, an address, a date, its w:smartTagPr/w:attr keeping
#   the name, the street) and inline custom XML (w:customXml: an OA system's template wraps its fields in its schema's
#   elements, w:customXmlPr holding their attributes — the drafter's account, a phone — and a placeholder). Both are
#   unwrapped, as Word 2010 and later do on opening: the opening and closing tags go, each on its own, and the
#   properties with all they hold; the runs, paragraphs, rows or cells inside stay where they were (each wrapper's
#   content is what its parent holds, so the document stays valid).
_WORD_BOOKMARK = re.compile(r"_(?:Toc|Ref|Hlk|Hlt)\d{1,12}|_GoBack", re.I)
_FORMULA_NAME = re.compile(r"[^\W\d]\w*")
_FORMULA_WORDS = frozenset({"ABS", "AND", "AVERAGE", "COUNT", "DEFINED", "FALSE", "IF", "INT", "MAX", "MIN", "MOD",
                            "NOT", "OR", "PRODUCT", "ROUND", "SIGN", "SUM", "TRUE", "ABOVE", "BELOW", "LEFT", "RIGHT"})
_CELL = re.compile(r"[A-Z]{1,2}\d{0,5}|R\d{0,5}C?\d{0,2}|C\d{1,2}", re.I)  # A1, B, R1C2: a table's cells in a formula
_BOOKMARK_ARGUMENT = {"HYPERLINK": "\\l", "TOC": "\\b", "TOA": "\\b", "INDEX": "\\b"}
_REFERENCES = frozenset({"REF", "PAGEREF", "NOTEREF"})  # their first argument is a bookmark
_NAMING_FIELDS = frozenset({*_REFERENCES, *_BOOKMARK_ARGUMENT})  # the live fields naming a bookmark (and formulas)
# the names grouped by their first letters: the alternatives are tried at every tag of the part, one by one (twenty
# of them side by side made this pass, the bulk of a large report's cost, a quarter slower)
_STORY_TOKEN = re.compile(
    rb"<(/?)" + _NS + rb"(t(?:ag)?|f(?:ldChar|ldSimple)|instrText|bookmarkStart|h(?:yperlink|link(?:Click|Hover))"
    rb"|s(?:dtPr|martTag(?:Pr)?)|alias|p(?:laceholder|erm(?:Start|End))|dataBinding|listItem|customXml(?:Pr)?)"
    rb"(?=[\s/>])" + _ATTRIBUTES + rb">")
_STORY_MARKERS = (b"instr", b"fldChar", b"bookmarkStart", b"hyperlink", b"hlink", b"sdtPr", b"perm", b"smartTag",
                  b"customXml")
_CONTROL_DROPPED = frozenset({b"alias", b"tag", b"placeholder", b"dataBinding", b"listItem"})  # in w:sdtPr
_UNWRAPPED = frozenset({b"permStart", b"permEnd", b"smartTag", b"customXml"})  # each tag goes, what it holds stays
_PROPERTIES_DROPPED = frozenset({b"smartTagPr", b"customXmlPr"})  # they go with all they hold
_ATTRIBUTE = re.compile(rb"""(\s+)""" + _NS + rb"""([A-Za-z]{1,64})\s*=\s*(?:"([^"<>]*)"|'([^'<>]*)')""")
_TAG_ATTRIBUTES = {b"bookmarkStart": {b"name": "rename"}, b"hyperlink": {b"anchor": "rename", b"tooltip": "drop"},
                   b"hlinkClick": {b"tooltip": "drop"}, b"hlinkHover": {b"tooltip": "drop"}}
_NAMED = frozenset({*_TAG_ATTRIBUTES, *_CONTROL_DROPPED, *_UNWRAPPED, *_PROPERTIES_DROPPED, b"sdtPr"})  # not fields
_NAMED_ATTRIBUTE = re.compile(rb"""(?:^|\s)""" + _NS + rb"""(?:name|anchor)\s*=\s*(?:"([^"<>]*)"|'([^'<>]*)')""")


def _live_keyword(matches: list[re.Match]) -> str | None:
    """A field's keyword (in capitals) if it stays live (above), from its instruction's words (``_FIELD_WORD``'s
    matches); None if it is unlinked."""
    if not matches or matches[0].lastindex == 2:
        return None
    keyword = matches[0].group(matches[0].lastindex).upper()
    if keyword.startswith("="):  # a formula: = SUM(ABOVE)
        return keyword
    if keyword not in _LIVE_FIELDS:
        return None
    if keyword != "HYPERLINK":
        return keyword
    # HYPERLINK "target" \l "bookmark" \o "screen tip": a web or mail address, or a place in the document, stays live;
    # a path (file:///C:/Users/…, C:\…, \\server\…, a file beside the document) names the author's disk
    rest, target = iter([(m.group(m.lastindex), m.lastindex == 2) for m in matches[1:]]), None
    for word, is_switch in rest:
        if is_switch:
            if word.lower() in ("\\l", "\\o", "\\t"):
                next(rest, None)
        elif target is None:
            target = word
    return keyword if target is None or target.strip().lower().startswith(_WEB_TARGET) else None


class _Bookmarks:
    """A package's bookmark names and their new ones (above)."""
    __slots__ = ("new", "seen", "seen_written")

    def __init__(self):
        self.new: dict[str, str] = {}  # a name renamed, without case → its new name
        self.seen: dict[str, str] = {}  # a name as read → what it becomes (a bookmark is named a few times)
        self.seen_written: dict[tuple[bytes, str], bytes | None] = {}  # the same for attributes' values as written

    def __call__(self, name: str) -> str:
        found = self.seen.get(name)
        if found is None:
            found = self.seen[name] = self._new_name(name)
        return found

    def written(self, value: bytes, quote: str) -> bytes | None:
        """An attribute's value (as written between ``quote``s) renamed as written, or None when it stays."""
        key = (value, quote)
        if key not in self.seen_written:
            name = html.unescape(value.decode("utf-8", "replace"))
            renamed = self(name)
            self.seen_written[key] = None if renamed == name else _xml_text(renamed, quote)
        return self.seen_written[key]

    def _new_name(self, name: str) -> str:
        if not name.strip() or _WORD_BOOKMARK.fullmatch(name):
            return name
        if _CELL.fullmatch(name) or name.upper() in _FORMULA_WORDS:  # a formula reads it as a cell or a function:
            return name  # kept everywhere, so the formulas and the bookmark still agree (a few letters, five digits)
        key = name.casefold()
        renamed = self.new.get(key)
        if renamed is None:
            renamed = self.new[key] = f"_bm{len(self.new) + 1}"
        return renamed


def _renamed(edits: list, bookmarks: _Bookmarks, name: str, at: int) -> None:
    """The bookmark ``name`` (written at ``at``) renamed in ``edits`` if it changes."""
    renamed = bookmarks(name)
    if renamed != name:
        edits.append((at, at + len(name), renamed))


def _live_instruction(instruction: str, words: list[re.Match], keyword: str, bookmarks: _Bookmarks) -> str | None:
    """A live field's instruction (as read: entities resolved; ``words``: its words, ``keyword``: the first in
    capitals) with the bookmarks it names renamed and a HYPERLINK's screen tip gone; None when nothing changes."""
    edits: list[tuple[int, int, str]] = []  # (start, end, new text), only where it changes
    if keyword in _REFERENCES:
        if len(words) > 1 and words[1].lastindex != 2:
            _renamed(edits, bookmarks, words[1].group(words[1].lastindex), words[1].start(words[1].lastindex))
    elif keyword.startswith("="):  # the names an expression reads, up to its first switch (\# "0.00")
        for word in words:
            if word.lastindex == 2:
                break
            if word.lastindex == 3:  # functions, cells and ABOVE are never renamed (``_Bookmarks``)
                for name in _FORMULA_NAME.finditer(instruction, word.start(3), word.end(3)):
                    _renamed(edits, bookmarks, name.group(), name.start())
    elif keyword in _BOOKMARK_ARGUMENT:
        for at, word in enumerate(words):
            if word.lastindex != 2:
                continue
            switch = word.group(2).lower()
            argument = words[at + 1] if at + 1 < len(words) and words[at + 1].lastindex != 2 else None
            if switch == _BOOKMARK_ARGUMENT[keyword] and argument is not None:
                _renamed(edits, bookmarks, argument.group(argument.lastindex), argument.start(argument.lastindex))
            elif switch == "\\o" and keyword == "HYPERLINK":  # with the space before it
                start = word.start()
                while start > 0 and instruction[start - 1] == " ":
                    start -= 1
                edits.append((start, argument.end() if argument is not None else word.end(), ""))
    if not edits:
        return None
    kept, at = [], 0
    for start, end, new in edits:
        kept.append(instruction[at:start] + new)
        at = end
    kept.append(instruction[at:])
    return "".join(kept)


def _xml_text(text: str, quote: str = "") -> bytes:
    """``text`` escaped for an element's content (or an attribute's value between ``quote``s)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if quote:
        escaped = escaped.replace(quote, "&quot;" if quote == '"' else "&apos;")
    return escaped.encode()


def _tag_cleaned(found: re.Match, bookmarks: _Bookmarks) -> bytes | None:
    """An opening tag of ``_TAG_ATTRIBUTES`` (``_STORY_TOKEN``'s match) with its bookmark name renamed and its screen
    tip gone; None when nothing changes."""
    name, attributes = found.group(2), found.group(3)
    if b"tooltip" not in attributes and attributes.count(b"name") + attributes.count(b"anchor") <= 1:
        named = _NAMED_ATTRIBUTE.search(attributes)  # the common case, a bookmark or a link to one: one look-up
        if named is None:
            return None
        group = 1 if named.group(1) is not None else 2
        renamed = bookmarks.written(named.group(group), '"' if group == 1 else "'")
        if renamed is None:
            return None
        tag, at = found.group(0), found.start(3) - found.start()
        return tag[:at + named.start(group)] + renamed + tag[at + named.end(group):]
    tag, attributes_at = found.group(0), found.start(3) - found.start()
    wanted, kept, at, changed = _TAG_ATTRIBUTES[name], [], 0, False
    for attribute in _ATTRIBUTE.finditer(tag, attributes_at):
        what = wanted.get(attribute.group(2))
        if what == "drop":
            kept.append(tag[at:attribute.start()])
            at, changed = attribute.end(), True
        elif what == "rename":
            group = 3 if attribute.group(3) is not None else 4
            renamed = bookmarks.written(attribute.group(group), '"' if group == 3 else "'")
            if renamed is not None:
                kept.append(tag[at:attribute.start(group)] + renamed)
                at, changed = attribute.end(group), True
    if not changed:
        return None
    kept.append(tag[at:])
    return b"".join(kept)


# What the fields read, kept in the settings: document variables (w:docVars, DOCVARIABLE's values: an OA system's
# template writes the drafter, the reviewer, a phone there) and a mail merge's data source (w:mailMerge: the query and
# the connection name the workbook on the author's disk). The fields are unlinked above; these go.
_SETTINGS_DROPPED = (b"docVars", b"mailMerge")


def _settings(content: bytes) -> bytes:
    return _without(content, _SETTINGS_DROPPED)


class _Field:
    __slots__ = ("instruction", "spans", "texts", "attribute", "inner", "in_result", "gone")

    def __init__(self, instruction: bytes = b"", in_result: bool = False):
        self.instruction = [instruction]  # the instruction's text, as written (entities not yet read)
        self.spans: list[list[int]] = []  # its own markup: fldChar, instrText, the fldSimple tags
        self.texts: list[tuple[int, int]] = []  # where its instruction's text is written: instrText's contents
        self.attribute: tuple[int, int, str] | None = None  # or a fldSimple's w:instr value (and its quote)
        self.inner: list = []  # what lies in its instruction: spans of text, the fields nested there
        self.in_result = in_result  # past its separator (a fldSimple's content is all result)
        self.gone = False


def _story(content: bytes, bookmarks: _Bookmarks) -> bytes:
    """``content`` (a story part) with every field but the live ones unlinked, the live ones' instructions cleaned,
    and the names the author gave renamed or gone (above), in one pass over its tags."""
    if not any(marker in content for marker in _STORY_MARKERS):
        return content
    removed: list[list[int]] = []
    replaced: list[tuple[int, int, bytes]] = []
    stack: list[tuple[_Field, bool]] = []  # (field, a fldSimple)
    owner: list[int] = []  # owner[i]: the innermost field at or below stack[i] still in its instruction (-1: none)
    open_at: dict[bytes, tuple[int, int, list[int] | None]] = {}  # an element opened, not yet closed
    dropping: dict[bytes, int] = {}  # a content control's element going (its start), not yet closed
    control_depth = 0  # w:sdtPr elements open

    def remove_field(field: _Field) -> None:
        todo = [field]
        while todo:  # each field is removed once, however deep it sits (so this stays linear)
            item = todo.pop()
            if isinstance(item, _Field):
                if not item.gone:
                    item.gone = True
                    removed.extend(item.spans)
                    todo.extend(item.inner)
            else:
                removed.append(item)

    def close(field: _Field) -> None:
        instruction = html.unescape(b"".join(field.instruction).decode("utf-8", "replace"))
        words = list(_FIELD_WORD.finditer(instruction))
        keyword = _live_keyword(words)
        if keyword is None:
            remove_field(field)
        elif keyword in _NAMING_FIELDS or keyword.startswith("="):
            cleaned = _live_instruction(instruction, words, keyword, bookmarks)
            if cleaned is not None and field.attribute is not None:
                start, end, quote = field.attribute
                replaced.append((start, end, _xml_text(cleaned, quote)))
            elif cleaned is not None and field.texts:  # written whole in its first instrText, the others emptied
                for at, (start, end) in enumerate(field.texts):
                    replaced.append((start, end, _xml_text(cleaned) if at == 0 else b""))
        if stack and not stack[-1][0].in_result:  # nested in its parent's instruction: goes if the parent goes
            stack[-1][0].inner.append(field)

    simple_open = 0  # fldSimple elements on the stack

    def push(field: _Field, simple: bool) -> None:
        nonlocal simple_open
        below = owner[-1] if owner else -1
        stack.append((field, simple))
        owner.append(below if field.in_result else len(stack) - 1)
        simple_open += simple

    def pop() -> tuple[_Field, bool]:
        nonlocal simple_open
        owner.pop()
        field, simple = stack.pop()
        simple_open -= simple
        return field, simple

    text_at = -1  # where the w:t open starts (the most frequent tag: no tuple, no dictionary)
    for tag in _STORY_TOKEN.finditer(content):
        closing, name, attributes = tag.groups()
        if name == b"t":
            if not closing:
                text_at = -1 if attributes.endswith(b"/") else tag.start()
            elif text_at >= 0:
                if owner and owner[-1] >= 0:  # text in a field's instruction: part of it
                    stack[owner[-1]][0].inner.append([text_at, tag.end()])
                text_at = -1
            continue
        if name in _NAMED:
            if name in _TAG_ATTRIBUTES:
                if not closing:
                    cleaned = _tag_cleaned(tag, bookmarks)
                    if cleaned is not None:
                        replaced.append((tag.start(), tag.end(), cleaned))
            elif name in _UNWRAPPED:
                removed.append([tag.start(), tag.end()])
            elif name == b"sdtPr":
                if closing:
                    control_depth -= control_depth > 0
                elif not attributes.endswith(b"/"):
                    control_depth += 1
            elif closing:
                start = dropping.pop(name, None)
                if start is not None:
                    removed.append([start, tag.end()])
            elif (control_depth or name in _PROPERTIES_DROPPED) and name not in dropping:
                if attributes.endswith(b"/"):
                    removed.append([tag.start(), tag.end()])
                else:
                    dropping[name] = tag.start()
            continue
        if closing:
            started = open_at.pop(name, None)
            if started is None:
                if name == b"fldSimple" and simple_open:  # its fldSimple ends (and any field left open in it)
                    while True:
                        field, simple = pop()
                        if simple:
                            field.spans.append([tag.start(), tag.end()])
                        close(field)
                        if simple:
                            break
                continue
            start, open_end, span = started
            if span is not None:  # a fldChar with children (a form field's data): the span ends here
                span[1] = tag.end()
            elif name == b"instrText":
                span = [start, tag.end()]
                if stack:
                    stack[-1][0].instruction.append(content[open_end:tag.start()])
                    stack[-1][0].texts.append((open_end, tag.start()))
                    stack[-1][0].spans.append(span)
                else:
                    removed.append(span)  # an instruction outside any field: hidden text, nothing else
            continue
        empty = attributes.endswith(b"/")
        if name == b"fldSimple":
            value = _INSTR.search(attributes)
            field = _Field((value.group(1) or value.group(2) or b"") if value else b"", in_result=True)
            if value is not None:
                group = 1 if value.group(1) is not None else 2
                field.attribute = (tag.start(3) + value.start(group), tag.start(3) + value.end(group),
                                   '"' if group == 1 else "'")
            field.spans.append([tag.start(), tag.end()])
            if empty:
                close(field)
            else:
                push(field, True)
            continue
        if name == b"fldChar":
            span = [tag.start(), tag.end()]
            if not empty:
                open_at[name] = (tag.start(), tag.end(), span)
            kind = _FIELD_CHAR_TYPE.search(attributes)
            kind = kind.group(2) if kind else b""
            if kind == b"begin":
                field = _Field()
                field.spans.append(span)
                push(field, False)
            elif stack and not stack[-1][1] and kind in (b"separate", b"end"):
                field = stack[-1][0]
                field.spans.append(span)
                if kind == b"separate" and not field.in_result:
                    field.in_result = True
                    owner[-1] = owner[-2] if len(owner) > 1 else -1
                elif kind == b"end":
                    close(pop()[0])
            else:
                removed.append(span)  # a separator or an end without its field
            continue
        if not empty:  # instrText: its content comes at the closing tag
            open_at[name] = (tag.start(), tag.end(), None)
        elif name == b"instrText":
            removed.append([tag.start(), tag.end()])
    while stack:  # a field left open at the end of the part: decided on what it holds
        close(pop()[0])
    if not removed and not replaced:
        return content
    removed.sort()
    replaced.sort(key=lambda edit: edit[0])
    kept, at, next_new = [], 0, 0
    for start, end in removed:
        # what is replaced before this span (where both start at once, the removal comes first)
        while next_new < len(replaced) and replaced[next_new][0] < start:
            new_start, new_end, new = replaced[next_new]
            next_new += 1
            if new_start >= at:  # what starts inside a span removed goes with it
                kept.append(content[at:new_start])
                kept.append(new)
                at = new_end
        if start >= at:
            kept.append(content[at:start])
            at = end
        elif end > at:  # a span inside one already removed
            at = end
    for new_start, new_end, new in replaced[next_new:]:
        if new_start >= at:
            kept.append(content[at:new_start])
            kept.append(new)
            at = new_end
    kept.append(content[at:])
    return b"".join(kept)


def _jpeg(data: bytes) -> bytes:
    """A JPEG without its EXIF/XMP (APP1), Photoshop/IPTC (APP13) and comment segments; the image data is
    copied byte for byte. Anything not laid out as expected is returned as it is."""
    stripped = _jpeg_stripped(data)
    return data if stripped is None else stripped


def _jpeg_stripped(data: bytes) -> bytes | None:
    """``_jpeg``'s copy, or None when ``data`` is not laid out as a JPEG."""
    if not data.startswith(b"\xff\xd8"):
        return None
    out, at = [data[:2]], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xDA:  # start of scan: the rest is the image
            out.append(data[at:])
            return b"".join(out)
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if length < 2 or at + 2 + length > len(data):
            return None
        if marker not in (0xE1, 0xED, 0xFE):
            out.append(data[at:at + 2 + length])
        at += 2 + length
    return None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DROPPED = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def _png(data: bytes) -> bytes:
    """A PNG without its text, EXIF and time chunks (each chunk carries its own checksum: the rest is kept as is)."""
    if not data.startswith(_PNG_SIGNATURE):
        return data
    out, at = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while at + 12 <= len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        kind = data[at + 4:at + 8]
        end = at + 12 + length
        if end > len(data):
            return data
        if kind not in _PNG_DROPPED:
            out.append(data[at:end])
        at = end
        if kind == b"IEND":
            return b"".join(out)
    return data


# JPEG 2000 (a .jp2/.jpx in a .docx's media; a PDF's /JPXDecode image: a JP2 file, or its codestream alone) keeps
# what a JPEG keeps in its EXIF in boxes beside the image: "xml " (XML: a camera's, an editor's, a GIS tool's
# metadata), "uuid" (a vendor's data: XMP, EXIF, GeoTIFF), "jp2i" (intellectual property rights: a name), "uinf" (a
# list of URLs: a path on the author's disk), and JPX's "asoc" and "lbl " (labels and XML tied to a region); and in
# its codestream's comments (COM marker segments of the main header: the encoder, sometimes the user or a path). They
# go; the signature, the file type, the header (size, colour "colr", resolution "res ") and the codestream stay, byte
# for byte but its comments. One walk over the top-level boxes and the main header's marker segments (no box is
# read twice: a file of 200,000 boxes is one pass). Anything not laid out as expected (a box's length past the end,
# a codestream whose main header does not end) is returned as it is, as a JPEG is; so is a JPX whose codestream is
# kept in fragments (ftbl: offsets into the file, which dropping a box would move). Not read: COM segments in tile-part
# headers (rare; the tile-parts' lengths, and TLM's, would have to be written again).
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_CODESTREAM = b"\xff\x4f\xff\x51"  # SOC, then SIZ
_JP2_DROPPED = {b"xml ", b"uuid", b"jp2i", b"uinf", b"asoc", b"lbl "}
_JP2_NAMES = (".jp2", ".jpx", ".jpf", ".j2k", ".j2c", ".jpc")  # not .jpm (part 6): its fragment tables sit inside boxes


def _jp2(data: bytes) -> bytes:
    """A JPEG 2000 file (or codestream) without its metadata boxes and comments (above)."""
    stripped = _jp2_stripped(data)
    return data if stripped is None else stripped


def _codestream_stripped(data: bytes, start: int = 0, end: int | None = None) -> bytes | None:
    """``data[start:end]``, a JPEG 2000 codestream, without the COM segments of its main header; None when it is not
    laid out as one."""
    end = len(data) if end is None else end
    if data[start:start + 4] != _CODESTREAM:
        return None
    out, at, kept = [], start + 2, start
    while at + 4 <= end and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0x90:  # SOT: the first tile-part, the end of the main header
            if kept == start:
                return data[start:end]
            out.append(data[kept:end])
            return b"".join(out)
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if length < 2 or at + 2 + length > end:
            return None
        if marker == 0x64:  # COM
            out.append(data[kept:at])
            kept = at + 2 + length
        at += 2 + length
    return None


def _jp2_stripped(data: bytes) -> bytes | None:
    """``_jp2``'s copy, or None when ``data`` is not laid out as JPEG 2000."""
    if data.startswith(_CODESTREAM):
        return _codestream_stripped(data)
    if not data.startswith(_JP2_SIGNATURE):
        return None
    out, at = [], 0
    while at < len(data):
        if at + 8 > len(data):
            return None
        length, kind, header = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8], 8
        if length == 1:  # a 64-bit length follows
            if at + 16 > len(data):
                return None
            length, header = int.from_bytes(data[at + 8:at + 16], "big"), 16
        elif length == 0:  # to the end of the file
            length = len(data) - at
        if length < header or at + length > len(data):
            return None
        if kind == b"ftbl":
            return None
        if kind == b"jp2c":
            codestream = _codestream_stripped(data, at + header, at + length)
            if codestream is None:
                return None
            if len(codestream) == length - header:
                out.append(data[at:at + length])
            elif len(codestream) + 8 < 2 ** 32:
                out.append((len(codestream) + 8).to_bytes(4, "big") + b"jp2c" + codestream)
            else:
                out.append(b"\x00\x00\x00\x01jp2c" + (len(codestream) + 16).to_bytes(8, "big") + codestream)
        elif kind not in _JP2_DROPPED:
            out.append(data[at:at + length])
        at += length
    return b"".join(out)


def _image(name: str, content: bytes) -> bytes:
    lower = name.lower()
    if lower.endswith((".jpg", ".jpeg")):
        return _jpeg(content)
    if lower.endswith(".png"):
        return _png(content)
    if lower.endswith(_JP2_NAMES):
        return _jp2(content)
    return content


EMBEDDED_OBJECT = ("文件中嵌入了其他文件（对象，如 Excel 工作表、Word 文档、PDF 或其他附件）：它是一份完整的文件，页面上只显示其中"
                   "一部分，其余内容和其中的作者等信息会随文件一起公开，无法逐一去除。请在 Word 中右键该对象 › 复制，再点“开始 › 粘贴 › "
                   "选择性粘贴”粘贴为图片（或改为普通表格、文字）替换它，然后另存并上传。Word 自带的图表不受影响。")
_EMBEDDINGS = "word/embeddings/"
_CHART_RELS = re.compile(r"word/charts/_rels/[^/]+\.rels")
_TARGET = re.compile(rb"""\bTarget\s*=\s*(["'])([^"'<>]*)\1""")
_COMPOUND_FILE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_NESTED_MAX_BYTES = 50 * 1024 * 1024  # what a chart's workbook may unpack to (core.extract's bound for a nested .docx)


def _chart_data(source: zipfile.ZipFile) -> set[str]:
    """The embedded parts that are a chart's data (Word's own charts keep theirs as a workbook in word/embeddings)."""
    found = set()
    for info in source.infolist():
        if _CHART_RELS.fullmatch(info.filename):
            for match in _TARGET.finditer(source.read(info)):
                found.add(_part_name("word/charts", match.group(2)))
    return found


def _part_name(folder: str, target: bytes) -> str:
    """The part a relationship's target names, from the folder of the part the relationships are of."""
    import posixpath

    target = html.unescape(target.decode("utf-8", "replace"))
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))


def _custom_xml_parts(source: zipfile.ZipFile) -> set[str]:
    """The parts named by a customXml relationship, wherever they are (above), in lower case."""
    found = set()
    for info in source.infolist():
        if info.filename.endswith(".rels") and "/_rels/" in "/" + info.filename:
            content = source.read(info)
            if b"customXml" not in content:
                continue
            folder = ("/" + info.filename).rsplit("/_rels/", 1)[0].lstrip("/")
            for relationship in _RELATIONSHIP.finditer(content):
                target = _TARGET.search(relationship.group(0))
                if target is not None and _CUSTOM_XML_RELATIONSHIP.search(relationship.group(0)) \
                        and b'TargetMode="External"' not in relationship.group(0):
                    found.add(_part_name(folder, target.group(2)).lower())  # part names ignore case
    return found


# What the workbook Word keeps for one of its charts holds: one sheet of the chart's figures and the parts any
# workbook has. Anything else — another sheet (a chart pasted from a working file brings the whole file), comments
# and their authors, the people of threaded comments, links to other files, embedded objects, a data connection —
# is content the chart does not show.
_CHART_WORKBOOK_PARTS = re.compile(
    r"\[Content_Types\]\.xml|_rels/\.rels|docProps/[^/]+\.xml|xl/workbook\.xml|xl/_rels/workbook\.xml\.rels"
    r"|xl/styles\.xml|xl/theme/theme\d+\.xml|xl/sharedStrings\.xml|xl/calcChain\.xml|xl/worksheets/sheet\d+\.xml"
    r"|xl/worksheets/_rels/sheet\d+\.xml\.rels|xl/tables/table\d+\.xml|xl/printerSettings/printerSettings\d+\.bin")
_SHEET = re.compile(r"xl/worksheets/sheet\d+\.xml")
CHART_WORKBOOK = ("文件中图表的数据工作簿里除图表所用的一张数据表外还有其他内容（其他工作表、批注及其作者、外部链接或嵌入的对象），"
                  "会随文件一起公开。请在 Word 中右键图表 › 编辑数据，删除其他工作表和批注后关闭，或将图表“选择性粘贴”为图片，"
                  "然后另存并上传。")
# where the workbook was last saved (x15ac:absPath url="C:\Users\<account>\…"): names the account
_ABS_PATH = re.compile(rb"""(<(?:[A-Za-z_][\w.-]{0,63}:)?absPath\b[^<>]*?\burl\s*=\s*)(["'])[^"'<>]*\2""")


def _chart_workbook_problem(nested: zipfile.ZipFile) -> str | None:
    names = [info.filename for info in nested.infolist() if not info.filename.endswith("/")]
    if sum(1 for n in names if _SHEET.fullmatch(n)) > 1 or not all(_CHART_WORKBOOK_PARTS.fullmatch(n) for n in names):
        return CHART_WORKBOOK
    return None


def _embedded(name: str, content: bytes, chart_data: set[str], depth: int) -> bytes:
    """An embedded object is a whole file of its own, shown only in part (an Excel object: a range of one sheet),
    with its own properties: refused. Two kinds are kept: a Word chart's workbook when it holds the chart's one
    sheet of figures and nothing else (``_CHART_WORKBOOK_PARTS``), cleaned as a package of its own, and an equation
    (Equation Editor, MathType: an OLE file holding the equation, without document properties)."""
    if name in chart_data and content.startswith(b"PK\x03\x04") and depth == 0:
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as nested:
                if sum(info.file_size for info in nested.infolist()) > _NESTED_MAX_BYTES:
                    raise ValidationFailed(EMBEDDED_OBJECT, {"file": "含嵌入的对象"})
                problem = _chart_workbook_problem(nested)
            if problem:
                raise ValidationFailed(problem, {"file": "图表数据含其他内容"})
            return _docx(content, depth + 1)
        except ValidationFailed as exc:
            if exc.message in (EMBEDDED_OBJECT, CHART_WORKBOOK):
                raise
            raise ValidationFailed("文件中图表的数据（嵌入的 Excel 工作表）：" + exc.message, exc.fields) from exc
    if (content.startswith(_COMPOUND_FILE) and "Equation Native".encode("utf-16-le") in content
            and "SummaryInformation".encode("utf-16-le") not in content):
        return content
    raise ValidationFailed(EMBEDDED_OBJECT, {"file": "含嵌入的对象"})


# A drawing's names (wp:docPr, pic:cNvPr, any object's non-visual properties), kept where no page shows them: Word
# names an inserted picture after its file ("IMG_20240312_王建国.jpg"), and older versions wrote the file's whole path
# as its description ("C:\Users\wangjg\Desktop\现场照片\…"). A description or title the author wrote (alt text, read
# aloud by a screen reader) stays; one that is a path or a file's name goes, and such a name becomes Word's "Picture N".
_DRAWING_TAG = re.compile(rb"<" + _NS + rb"(?:docPr|cNvPr)(?=[\s/>])" + _ATTRIBUTES + rb">")
_FILE_LIKE = re.compile(r"^\s*(?:[a-z]:[\\/]|file:|~/|/(?:users|home|mnt|tmp)/)|\\"  # a path (any backslash)
                        r"|[\\/](?:users|documents and settings|desktop|桌面)[\\/]"
                        r"|\.(?:jpe?g|png|gif|bmp|tiff?|emf|wmf|heic|webp|svg|docx?|xlsx?|pdf)\s*$", re.I)  # a file
_DRAWING_ID = re.compile(rb"""(?:^|\s)""" + _NS + rb"""id\s*=\s*["']\s*(\d{1,10})""")


def _drawing_names(content: bytes) -> bytes:
    """``content`` (a story part) with its drawings' file names and paths gone (above), one pass over their tags."""
    def cleaned(tag: re.Match) -> bytes:
        whole, at = tag.group(0), tag.start(1) - tag.start()
        kept, last = [], 0
        for attribute in _ATTRIBUTE.finditer(whole, at):
            local = attribute.group(2)
            value = attribute.group(3) if attribute.group(3) is not None else attribute.group(4)
            if local not in (b"name", b"descr", b"title"):
                continue
            if not _FILE_LIKE.search(html.unescape(value.decode("utf-8", "replace"))):
                continue
            kept.append(whole[last:attribute.start()])
            if local == b"name":  # required: Word's own name for it
                number = _DRAWING_ID.search(tag.group(1))
                kept.append(attribute.group(1) + b'name="Picture ' + (number.group(1) if number else b"1") + b'"')
            last = attribute.end()
        if not kept:
            return whole
        kept.append(whole[last:])
        return b"".join(kept)

    return _DRAWING_TAG.sub(cleaned, content)


def _docx(data: bytes, depth: int = 0) -> bytes:
    """The package's copy (a .docx; ``depth`` 1: a chart's workbook inside one)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        chart_data = _chart_data(source)
        custom_xml = _custom_xml_parts(source)
        # the styles first: a story part names the styles it uses, whichever comes first in the package
        # styles.xml before Word 2010's copy of it (stylesWithEffects.xml): its definitions and defaults hold
        style_parts = [source.read(info) for info in sorted(source.infolist(), key=lambda i: i.filename != _STYLES)
                       if _STYLES_PART.fullmatch(info.filename)]
        hidden_styles, hidden_everywhere = _hidden_styles(style_parts)
        theme = next((source.read(info) for info in source.infolist() if _THEME_PART.fullmatch(info.filename)), b"")
        shadings = _Shadings(style_parts, theme)
        if hidden_everywhere:
            raise ValidationFailed(HIDDEN_TEXT, {"file": "含隐藏文字"})
        bookmarks = _Bookmarks()  # one name for one bookmark in every part
        for info in source.infolist():
            if info.filename.lower().startswith(_DROPPED_PARTS):
                continue
            content = source.read(info)
            _refuse_active_content(info.filename, content)
            clean = _DOCX_PARTS.get(info.filename)
            if info.filename.lower() in custom_xml or _CUSTOM_XML_FOLDER.fullmatch(info.filename):
                clean = _custom_xml
            if clean is not None:
                if len(content) > _METADATA_LIMIT:
                    raise _refuse("文档属性部分异常庞大，无法去除其中的作者等信息；请用 Word 另存后重新上传。")
                try:
                    content = clean(content)
                except Exception as exc:  # noqa: BLE001 — lxml's many ways of saying "not XML"
                    raise _refuse("文档属性已损坏，无法去除其中的作者等信息；请用 Word 另存后重新上传。") from exc
            elif info.filename.startswith("word/") and info.filename.endswith(".xml"):
                _refuse_hidden_content(info.filename, content, hidden_styles)
                _refuse_blacked_out(info.filename, content, shadings)
                if any(name in content for name in _AUTHOR_NAMES):  # the pattern has no literal to skip ahead by
                    content = _AUTHOR_ATTRIBUTE.sub(rb'\1=""', content)
                content = _story(content, bookmarks)
                if b"docPr" in content or b"cNvPr" in content:
                    content = _drawing_names(content)
                if info.filename == "word/settings.xml":
                    content = _settings(content)
            elif info.filename.startswith("word/media/"):
                content = _image(info.filename, content)
            elif depth and info.filename == "xl/workbook.xml":  # a chart's workbook: where it was saved
                content = _ABS_PATH.sub(rb'\1\2\2', content)
            elif info.filename.startswith(_EMBEDDINGS) and not info.filename.endswith("/"):
                content = _embedded(info.filename, content, chart_data, depth)
            elif info.filename == "[Content_Types].xml":
                content = _content_types(content)
            elif info.filename.endswith(".rels"):
                if _ALT_CHUNK_RELATIONSHIP.search(content):  # another package or web page inside, not scrubbed here
                    raise ValidationFailed(IMPORTED_CONTENT, {"file": "含导入内容"})
                content = _rels(content)
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)  # same dates: the same upload
            copy.compress_type = zipfile.ZIP_STORED if info.compress_type == zipfile.ZIP_STORED else zipfile.ZIP_DEFLATED
            copy.external_attr = info.external_attr
            target.writestr(copy, content)
    return out.getvalue()


# A PDF's keys that carry what no page shows: an application's private data (/PieceInfo: Illustrator's, Photoshop's,
# on the document, a page or a form), XMP metadata (an image or a form placed from a file keeps its own: creator,
# camera), files associated with any object (/AF, PDF 2.0 and PDF/A-3: a page or an annotation may carry the working
# file) and a file specification's embedded file (/EF), a page's thumbnail (/Thumb: drawn when the page was saved by
# the tool that made it, perhaps before the names were blacked out), and actions run on an event rather than a click
# (/AA: on opening a page, on focusing a field — where a form's scripts sit). And the accessibility text: a figure's
# alternate description (/Alt) and the text standing for content (/ActualText), on a structure element or a marked-
# content property list. A screen reader reads them, no page shows them, and they may say what was blacked out: an
# /ActualText over a black box holding the name it covers, Office's automatic description of a photo reading the
# text in it. The visible text and the structure stay (a screen reader reads the page's text; a figure goes without
# its description).
_PDF_DROPPED = ("/PieceInfo", "/Metadata", "/AF", "/EF", "/Thumb", "/AA", "/Alt", "/ActualText")
# a structure element's expansion of an abbreviation (/E) and its title (/T): the author's words too
_STRUCTURE_DROPPED = ("/E", "/T")
# A signature (a field's /V: a signature dictionary) names the signer — /Name, /Reason, /Location, /ContactInfo, /M, and
# the certificate in /Contents (name, organisation, often an e-mail or an ID number) —, and the public copy's signature
# is broken anyway: the copy is written anew, so the bytes it signed are gone and a reader would show 签名无效 (as if
# the file had been tampered with). The signature dictionary goes with the field's lock and seed value (/Lock, /SV:
# the certificates and reasons allowed), the document's signature permissions (/Perms: DocMDP, UR3) and validation
# data (/DSS: certificates, OCSP responses); the field stays, its appearance (the seal image, "Digitally signed by …"
# as the page shows it) as it is, now unsigned.
_SIGNATURE_KEYS = ("/Name", "/Reason", "/Location", "/ContactInfo", "/M", "/Contents", "/Cert", "/Prop_Build",
                   "/Prop_AuthTime", "/Prop_AuthType", "/Reference", "/Changes", "/ByteRange")
_SIGNATURE_TYPES = ("/Sig", "/DocTimeStamp")
# Actions that run a script, open or send to another file or program, or bring data in: a path names the author's
# disk and account, a script may hold anything and runs on the reader's machine. A link to a place in the document,
# a web address, a named step (next page) stays.
_PDF_ACTIVE = {"/JavaScript", "/Launch", "/GoToR", "/GoToE", "/SubmitForm", "/ImportData", "/RichMediaExecute",
               "/Rendition"}
_LOCAL_URI = re.compile(r"\s*(?:file:|[A-Za-z]:[\\/]|\\\\|//)", re.I)
FORM_VALUES = ("PDF 中有可填写的表单（表单域），其中填写的内容和默认值会随文件一起公开，不一定显示在页面上（隐藏的表单域也在）。"
               "请在 PDF 编辑器中“拼合表单”（或打印为新的 PDF）后再上传。")
PHOTO_ENCODING = ("PDF 中有照片（JPEG 或 JPEG 2000 图片）的编码无法读取，无法去除其中的拍摄信息（EXIF：相机、拍摄者、地点等）。"
                  "请重新导出 PDF（或打印为新的 PDF）后再上传。")
HIDDEN_LAYERS = ("PDF 中有隐藏的图层（可选内容）：隐藏图层里的文字和图片页面上看不到，但仍保存在文件里，在“图层”面板中打开即可"
                 "看到。请删除隐藏的图层（或全部显示、确认后打印为新的 PDF）再上传。")
_ANNOTATION_HIDDEN = 2 | 32  # the annotation flags Hidden and NoView
# Blacked out, not deleted (.pdf): text painted over with a dark box (a rectangle drawn over the names in a PDF editor,
# a Word shape exported over them, black shading with black text exported), or under a dark Square, Highlight or Ink
# comment: the page looks redacted, the text is in the file, copied out with the mouse or pdftotext. Found from the
# order in which the page draws its text and its fills (``extract.pdf_covered``: what counts as covered, dark and
# invisible, what does not — white text on a dark header band, a bullet square beside the text, an underline); read
# in the child process that extracts an upload's text, with its limits (pdfminer may take long on a page built to be
# slow), and only when the copy fills a path and shows text somewhere, or keeps such a comment (a report of text alone
# costs nothing more).
COVERED_TEXT_PDF = ("PDF 第 {pages}页有文字被黑框（或深色的方块、底纹、高亮、涂画）遮盖：页面上看不到，但文字仍保存在文件里，选中"
                    "复制或用工具提取即可得到。请用真正删除文字的方式脱敏（例如 Acrobat 的“应用密文”，或在 Word 中删除文字后"
                    "再以黑框表示），然后重新上传。")
_COVERING_ANNOTATIONS = tuple("/" + kind for kind in extract._COVERING_ANNOTATIONS)


def _refuse_covered_text(public_copy: bytes) -> None:
    from evalhub.core import files

    pages = files.covered_pdf_pages(public_copy)
    if pages:
        said = "、".join(str(page) for page in pages[:10]) + (f" 等共 {len(pages)} " if len(pages) > 10 else " ")
        raise ValidationFailed(COVERED_TEXT_PDF.format(pages=said), {"file": "含被黑框遮盖但未删除的文字"})


def _active_action(value) -> bool:
    """Whether an action (/A, /OpenAction, /Next) runs something or reaches outside the document (above)."""
    from pypdf.generic import DictionaryObject

    action = value.get_object() if value is not None else None
    if not isinstance(action, DictionaryObject):
        return False  # a destination: a page and a position
    kind = action.get("/S")
    if kind in _PDF_ACTIVE:
        return True
    return kind == "/URI" and bool(_LOCAL_URI.match(str(action.get("/URI", ""))))


def _is_signature(value) -> bool:
    """Whether ``value`` (a field's /V, resolved) is a signature dictionary."""
    from pypdf.generic import DictionaryObject

    return isinstance(value, DictionaryObject) and (value.get("/Type") in _SIGNATURE_TYPES or "/ByteRange" in value)


def _pdf_object(obj, destinations: _Destinations) -> None:
    """One object of a PDF's copy, and the dictionaries written inside it: the keys above go, an active action goes
    from where it is attached, a signature goes from its field (and a signature dictionary, reached from anywhere
    else, is emptied of its signer), a destination's name is renamed where it is used (``_Destinations``); a JPEG
    image (DCTDecode, maybe behind other filters: the JPEG file) loses its EXIF/XMP segments, as in a .docx."""
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, StreamObject

    todo = [obj]
    while todo:  # each direct dictionary or array once (an indirect one is an object of its own)
        item = todo.pop()
        if isinstance(item, ArrayObject):
            todo.extend(v for v in list.__iter__(item) if isinstance(v, (DictionaryObject, ArrayObject)))
            continue
        for key in _PDF_DROPPED:
            if key in item:
                del item[NameObject(key)]
        if "/S" in item and "/P" in item and "/Subtype" not in item:  # a structure element
            for key in _STRUCTURE_DROPPED:
                if key in item:
                    del item[NameObject(key)]
        if "/V" in item and _is_signature(item["/V"]):  # a signature field (or its widget)
            for key in ("/V", "/Lock", "/SV"):
                if key in item:
                    del item[NameObject(key)]
        if "/ByteRange" in item or item.get("/Type") in _SIGNATURE_TYPES:  # a signature dictionary itself
            for key in _SIGNATURE_KEYS:
                if key in item:
                    del item[NameObject(key)]
        for key in ("/A", "/OpenAction"):
            if key in item and _active_action(item[key]):
                del item[NameObject(key)]
        if "/Dest" in item and _name_or_string(item["/Dest"].get_object()):  # a link's, an outline item's
            item[NameObject("/Dest")] = destinations(item["/Dest"].get_object())
        if "/D" in item and item.get("/S") == "/GoTo" and _name_or_string(item["/D"].get_object()):
            item[NameObject("/D")] = destinations(item["/D"].get_object())
        chained = item.get("/Next")  # an action's next action(s): one, or an array
        if chained is not None:
            chain = chained.get_object()
            if isinstance(chain, ArrayObject):
                item[NameObject("/Next")] = ArrayObject(a for a in chain if not _active_action(a))
            elif _active_action(chained):
                del item[NameObject("/Next")]
        todo.extend(v for v in dict.values(item) if isinstance(v, (DictionaryObject, ArrayObject)))
    if isinstance(obj, StreamObject) and obj.get("/Subtype") == "/Image":
        filters = _filter_names(obj.get("/Filter"))
        if filters and filters[-1] in _PHOTOS:
            # the raw bytes (set_data refuses a filter other than Flate); /Length is written from them
            obj._data, parameters = _photo(obj._data, filters, obj.get("/DecodeParms"))
            obj.decoded_self = None
            if len(filters) > 1:  # written as the JPEG (JPEG 2000) file it is
                obj[NameObject("/Filter")] = NameObject("/JPXDecode" if filters[-1] in _JPX else "/DCTDecode")
                if parameters is None:
                    obj.pop(NameObject("/DecodeParms"), None)
                else:
                    obj[NameObject("/DecodeParms")] = parameters


# A JPEG written through other filters first ([/FlateDecode /DCTDecode]: compressed again, or ASCII-encoded) holds its
# EXIF as any other: the filters before DCTDecode are undone (inflating within a bound) and the JPEG written as it is,
# with DCTDecode alone. A filter not undone here, data they cannot undo or that is no JPEG then, is refused: what it
# holds cannot be told. The same for JPEG 2000 (JPXDecode: ``_jp2``; an inline image cannot be one).
_INFLATED_MAX_BYTES = 50 * 1024 * 1024  # what one photo may inflate to (a chart's workbook's bound)
_DCT = ("/DCTDecode", "/DCT")
_JPX = ("/JPXDecode",)
_PHOTOS = _DCT + _JPX
_UNDONE_FILTERS = {"/FlateDecode": "flate", "/Fl": "flate", "/ASCIIHexDecode": "hex", "/AHx": "hex",
                   "/ASCII85Decode": "a85", "/A85": "a85", "/LZWDecode": "lzw", "/LZW": "lzw",
                   "/RunLengthDecode": "rl", "/RL": "rl"}


def _filter_names(filters) -> list:
    from pypdf.generic import ArrayObject

    filters = filters.get_object() if filters is not None else None
    if filters is None:
        return []
    return [f.get_object() for f in filters] if isinstance(filters, ArrayObject) else [filters]


def _photo(data: bytes, filters: list, parameters):
    """A JPEG image's data (``filters`` ending in DCTDecode; JPXDecode: JPEG 2000) without its EXIF (its metadata
    boxes), written with DCTDecode (JPXDecode) alone; and the decode parameters left for it (None: none)."""
    from pypdf.filters import ASCII85Decode, ASCIIHexDecode, LZWDecode, RunLengthDecode
    from pypdf.generic import ArrayObject, DictionaryObject

    whole, stripped = (_jp2, _jp2_stripped) if filters[-1] in _JPX else (_jpeg, _jpeg_stripped)
    if len(filters) == 1:  # the JPEG file itself: as a .docx's photos, copied as it is if not laid out as expected
        return whole(data), None
    parameters = parameters.get_object() if parameters is not None else None
    parameters = [p.get_object() for p in parameters] if isinstance(parameters, ArrayObject) else []
    parameters = [p if isinstance(p, DictionaryObject) else DictionaryObject() for p in parameters]
    parameters += [DictionaryObject()] * (len(filters) - len(parameters))
    try:
        for name, given in zip(filters[:-1], parameters):
            kind = _UNDONE_FILTERS.get(name)
            if kind is None or int(given["/Predictor"] if "/Predictor" in given else 1) > 1:  # for samples only
                raise ValidationFailed(PHOTO_ENCODING, {"file": "图片编码无法读取"})
            if kind == "flate":  # strictly: pypdf's FlateDecode recovers what it can from broken data
                inflater = zlib.decompressobj()
                data = inflater.decompress(data, _INFLATED_MAX_BYTES)
                if inflater.unconsumed_tail or not inflater.eof:
                    raise ValidationFailed(PHOTO_ENCODING, {"file": "图片编码无法读取"})
            elif kind == "lzw":
                data = LZWDecode.decode(data, given)
            elif kind == "hex":
                data = ASCIIHexDecode.decode(data)
            elif kind == "a85":
                data = ASCII85Decode.decode(data)
            else:
                data = RunLengthDecode.decode(data)
    except ValidationFailed:
        raise
    except Exception as exc:  # noqa: BLE001 — zlib's, pypdf's and the decoders' many ways of saying "broken"
        raise ValidationFailed(PHOTO_ENCODING, {"file": "图片编码无法读取"}) from exc
    photo = stripped(bytes(data))
    if photo is None:
        raise ValidationFailed(PHOTO_ENCODING, {"file": "图片编码无法读取"})
    own = parameters[len(filters) - 1]
    return photo, (own if len(own) else None)


# In a content stream, a marked-content property list written in place (/Span <</ActualText (…)>> BDC) carries the
# accessibility text above as the structure does; any key written with a #-escape is found too.
_MARKED_TEXT = re.compile(rb"/(?:ActualText|Alt|E)\s*[(<]|/[^\s/<>()\[\]{}%]*#[0-9A-Fa-f]{2}")
_MARKED_DROPPED = ("/ActualText", "/Alt", "/E")


def _content_stream(stream, writer) -> tuple[bool, bool]:
    """A content stream's inline images (BI … ID … EI) in JPEG (/DCT, maybe behind other filters) lose their EXIF/XMP
    as the others do, its marked content its accessibility text; the stream is parsed and written again only when
    it holds one or the other. Whether it fills a path, and whether it shows text (``_refuse_covered_text``)."""
    from pypdf.generic import ContentStream, DictionaryObject, NameObject

    data = stream.get_data()  # inflated within pypdf's bound on a stream's size
    stream.decoded_self = None  # not kept: one page's content in memory at a time
    painting = extract.paints_and_shows(data)
    photos = b"ID" in data and b"/DCT" in data
    if not photos and not _MARKED_TEXT.search(data):
        return painting
    content = ContentStream(stream, writer)
    changed = False
    for operands, operator in content.operations:
        if operator == b"INLINE IMAGE":
            settings = operands["settings"]
            key = "/F" if "/F" in settings else "/Filter"
            filters = _filter_names(settings.get(key))
            if filters and filters[-1] in _DCT:
                parameters_key = "/DP" if "/DP" in settings else "/DecodeParms"
                photo, parameters = _photo(operands["data"], filters, settings.get(parameters_key))
                changed = changed or photo != operands["data"] or len(filters) > 1
                operands["data"] = photo
                if len(filters) > 1:  # written as the JPEG file it is
                    settings[NameObject(key)] = NameObject("/DCT")
                    settings.pop(NameObject(parameters_key), None)
                    if parameters is not None:
                        settings[NameObject(parameters_key)] = parameters
        elif operator in (b"BDC", b"DP") and len(operands) > 1 and isinstance(operands[1], DictionaryObject):
            for key in _MARKED_DROPPED:
                if key in operands[1]:
                    del operands[1][NameObject(key)]
                    changed = True
    if changed:  # written unfiltered: /Length from the data
        for key in ("/Filter", "/DecodeParms"):
            if key in stream:
                del stream[NameObject(key)]
        stream._data = content.get_data()
        stream.decoded_self = None
    return painting


def _each_once(todo: list) -> Iterator[Any]:
    """A walk of a PDF's tree from the objects in ``todo``, which the caller extends as it goes (a node's kids): each
    reached object resolved, an indirect one once (a hostile file may loop back to an ancestor)."""
    seen: set[int] = set()
    while todo:
        item = todo.pop()
        if item is None:
            continue
        reference = getattr(item, "idnum", None)
        if reference is not None:
            if reference in seen:
                continue
            seen.add(reference)
        yield item.get_object()


def _form_fields(root) -> list | None:
    """The fields of the document's form (AcroForm: its /Fields and their /Kids, each once), or None for an XFA form
    (its XML holds the data wherever it is shown)."""
    from pypdf.generic import ArrayObject, DictionaryObject

    form = root.get("/AcroForm")
    form = form.get_object() if form is not None else None
    if not isinstance(form, DictionaryObject):
        return []
    if "/XFA" in form:
        return None
    fields, todo = [], [form.get("/Fields")]
    for item in _each_once(todo):
        if isinstance(item, ArrayObject):
            todo.extend(list.__iter__(item))
        elif isinstance(item, DictionaryObject):
            fields.append(item)
            todo.append(item.get("/Kids"))
    return fields


def _form_values(fields: list | None) -> bool:
    """Whether the form holds text typed in or set as a default in any field (a list box's choices too), or is XFA."""
    from pypdf.generic import ArrayObject, ByteStringObject, TextStringObject

    if fields is None:
        return True
    for field in fields:
        for key in ("/V", "/DV"):
            value = field.get(key)
            value = value.get_object() if value is not None else None
            values = [v.get_object() for v in value] if isinstance(value, ArrayObject) else [value]
            if any(isinstance(v, (TextStringObject, ByteStringObject)) and str(v).strip() for v in values):
                return True
    return False


def _fields_renamed(fields: list) -> set[int]:
    """A form's field names (/T: "王建国电话"), alternate names (/TU: the tooltip a reader shows over the field, read
    aloud by a screen reader) and export names (/TM) are the author's words no page shows: each field with a name is
    renamed f1, f2, … (unique, so the fully qualified names are too), the others go. The fields renamed (their ids)."""
    from pypdf.generic import NameObject, TextStringObject

    renamed = set()
    for number, field in enumerate(fields, 1):
        if "/T" in field:
            field[NameObject("/T")] = TextStringObject(f"f{number}")
            renamed.add(id(field))
        for key in ("/TU", "/TM"):
            if key in field:
                del field[NameObject(key)]
    return renamed


# Named destinations: a link, an outline item or an action may go to a place by its name rather than by a page and
# a position, the name the author (or the tool, from a Word bookmark or heading) gave it — "张三_联系方式",
# "王建国电话" — shown by no page (Acrobat lists them under 目标). Each is renamed d1, d2, … wherever it is defined (the
# catalog's /Dests, PDF 1.1: names; the /Names tree's /Dests: strings — one new name per text, so a viewer that looks
# a name up in either finds the same place) and wherever it is used: a link's or an outline item's /Dest, a GoTo
# action's /D (``_pdf_object``). A name nothing defines is renamed too (the link it is on was dead, and stays so).
# The destinations themselves stay as they were: every link goes to the page it went to. The tree is written again as
# one node, its names in order; each node of the old one is read once (a tree built to be slow, its kids listed
# twice at every level or a node its own kid, is still one walk).
class _Destinations:
    __slots__ = ("new",)

    def __init__(self):
        self.new: dict[str, str] = {}  # a destination's name, as read → its new one

    def __call__(self, value):
        """``value`` (a name or a string, resolved) renamed, of the same kind."""
        from pypdf.generic import NameObject, TextStringObject

        name, text = isinstance(value, NameObject), _text_of(value)
        renamed = self.new.get(text)
        if renamed is None:
            renamed = self.new[text] = f"d{len(self.new) + 1}"
        return NameObject("/" + renamed) if name else TextStringObject(renamed)


def _name_or_string(value) -> bool:
    from pypdf.generic import ByteStringObject, NameObject, TextStringObject

    return isinstance(value, (NameObject, TextStringObject, ByteStringObject))


def _text_of(value) -> str:
    """A name's or a string's text (a name without its slash)."""
    from pypdf.generic import NameObject

    return str(value)[1:] if isinstance(value, NameObject) else str(value)


def _destinations_renamed(root, destinations: _Destinations) -> None:
    """The catalog's /Dests and the /Names tree's /Dests with their names renamed (above)."""
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject

    dests = root.get("/Dests")
    dests = dests.get_object() if dests is not None else None
    if isinstance(dests, DictionaryObject):
        root[NameObject("/Dests")] = DictionaryObject(
            {destinations(NameObject(key)): value for key, value in list(dests.items())})
    names = root.get("/Names")
    names = names.get_object() if names is not None else None
    if not isinstance(names, DictionaryObject) or "/Dests" not in names:
        return
    pairs: dict[str, tuple] = {}  # a name's new text → (new name, destination): the first met in the tree's order
    todo = [names["/Dests"]]
    for node in _each_once(todo):
        if not isinstance(node, DictionaryObject):
            continue
        kids = node.get("/Kids")
        kids = kids.get_object() if kids is not None else None
        if isinstance(kids, ArrayObject):
            todo.extend(list.__reversed__(kids))  # in order: the first of a name twice defined is kept
        listed = node.get("/Names")
        listed = listed.get_object() if listed is not None else None
        if isinstance(listed, ArrayObject):
            items = list.__iter__(listed)
            for key, value in zip(items, items):
                key = key.get_object()
                if _name_or_string(key):
                    renamed = destinations(key)
                    pairs.setdefault(str(renamed), (renamed, value))
    names[NameObject("/Dests")] = DictionaryObject({NameObject("/Names"): ArrayObject(
        item for text in sorted(pairs) for item in pairs[text])})


def _options_unchosen_gone(fields: list) -> None:
    """A choice field's options (/Opt: a combo box's or a list box's choices, each a text or an export value and the
    text shown — the staff a clerk could pick, their phones) are in the file whatever the page shows, and the page
    shows only the one chosen (a list box: the ones its appearance draws). An option not chosen goes: in an empty form
    (a form holding values is refused: ``_form_values``), all of them; one matching the field's value or default
    (a name, not a text) stays. The selected and top indexes into them (/I, /TI) go with them; the field stays."""
    from pypdf.generic import ArrayObject, NameObject

    for field in fields:
        options = field.get("/Opt")
        options = options.get_object() if options is not None else None
        if options is None:
            continue
        chosen = set()
        for key in ("/V", "/DV"):
            value = field.get(key)
            value = value.get_object() if value is not None else None
            for item in ([v.get_object() for v in value] if isinstance(value, ArrayObject) else [value]):
                if _name_or_string(item):
                    chosen.add(_text_of(item))
        kept = []
        for option in (list.__iter__(options) if isinstance(options, ArrayObject) else ()):
            option = option.get_object()
            texts = [t.get_object() for t in option] if isinstance(option, ArrayObject) else [option]
            if chosen and any(_name_or_string(t) and _text_of(t) in chosen for t in texts):
                kept.append(option)
        if isinstance(options, ArrayObject) and len(kept) == len(options):
            continue
        if kept:
            field[NameObject("/Opt")] = ArrayObject(kept)
        else:
            del field[NameObject("/Opt")]
        for key in ("/I", "/TI"):
            if key in field:
                del field[NameObject(key)]


def _hidden_layers(root) -> bool:
    """Whether optional content (layers) is hidden when the document opens: what is drawn in it is in the file."""
    from pypdf.generic import ArrayObject, DictionaryObject

    properties = root.get("/OCProperties")
    properties = properties.get_object() if properties is not None else None
    if not isinstance(properties, DictionaryObject):
        return False
    default = properties.get("/D")
    default = default.get_object() if default is not None else None
    if not isinstance(default, DictionaryObject):
        return False
    off = default.get("/OFF")
    off = off.get_object() if off is not None else None
    return default.get("/BaseState") == "/OFF" or (isinstance(off, ArrayObject) and len(off) > 0)


def _unreachable_gone(writer) -> None:
    """pypdf writes every object it holds, reached or not: what was cut off above (the information dictionary, the
    XMP, the embedded files, the sticky notes) would still be in the file, readable with any text editor. Only the
    objects reached from the document catalog are written."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    reached: set[int] = set()
    todo = [writer.root_object.indirect_reference]
    while todo:
        item = todo.pop()
        if isinstance(item, IndirectObject):
            if item.pdf is not writer or item.idnum in reached or not 0 < item.idnum <= len(writer._objects):
                continue
            reached.add(item.idnum)
            item = writer._objects[item.idnum - 1]
        if isinstance(item, DictionaryObject):
            todo.extend(dict.values(item))  # the references themselves, not resolved
        elif isinstance(item, ArrayObject):
            todo.extend(list.__iter__(item))
    for index in range(len(writer._objects)):
        if index + 1 not in reached:
            writer._objects[index] = None


def _pdf(data: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PyPdfError
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, StreamObject

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _refuse("PDF 文件设置了密码，无法去除其中的作者等信息；请取消密码后重新上传。")
        writer = PdfWriter(clone_from=reader)
        writer.metadata = None  # the information dictionary: Author, Creator, Producer, Title, …
        root = writer.root_object
        if "/Metadata" in root:  # XMP: the same names again
            del root[NameObject("/Metadata")]
        fields = _form_fields(root)
        if _form_values(fields):
            raise ValidationFailed(FORM_VALUES, {"file": "含表单内容"})
        renamed = _fields_renamed(fields)
        _options_unchosen_gone(fields)
        if _hidden_layers(root):
            raise ValidationFailed(HIDDEN_LAYERS, {"file": "含隐藏图层"})
        # files carried inside the PDF (a hybrid PDF's whole source document, an attached working file) and the
        # document's scripts (run when it opens)
        names = root.get("/Names")
        for tree in ("/EmbeddedFiles", "/JavaScript"):
            if names is not None and tree in names.get_object():
                del names.get_object()[NameObject(tree)]
        for key in ("/Perms", "/DSS"):  # signatures' permissions and validation data (the signatures go below)
            if key in root:
                del root[NameObject(key)]
        form = root.get("/AcroForm")
        form = form.get_object() if form is not None else None
        if isinstance(form, DictionaryObject) and "/SigFlags" in form:  # no signature left to say exists
            del form[NameObject("/SigFlags")]
        destinations = _Destinations()
        _destinations_renamed(root, destinations)
        for obj in writer._objects:  # every object of the copy (clone_from copied them all)
            if isinstance(obj, DictionaryObject):
                _pdf_object(obj, destinations)
        fills = shows = covering = False  # anywhere in the document: what ``_refuse_covered_text`` reads
        for obj in list(writer._objects):  # the content streams drawing inline images: pages' and forms'
            if isinstance(obj, StreamObject) and obj.get("/Subtype") == "/Form":
                fill, show = _content_stream(obj, writer)
                fills, shows = fills or fill, shows or show
        for page in writer.pages:
            contents = page.get("/Contents")
            contents = contents.get_object() if contents is not None else None
            for stream in (contents if isinstance(contents, ArrayObject) else [contents]):
                if stream is not None and isinstance(stream.get_object(), StreamObject):
                    fill, show = _content_stream(stream.get_object(), writer)
                    fills, shows = fills or fill, shows or show
            annotations = page.get("/Annots")
            if annotations is not None:
                kept = []
                for reference in annotations.get_object():
                    annotation = reference.get_object()
                    subtype = annotation.get("/Subtype")
                    if subtype == "/Redact":
                        raise ValidationFailed(UNAPPLIED_REDACTION, {"file": "含未应用的密文标记"})
                    # a file pinned to the page; a sticky note and the pop-up that shows a comment's text; a voice
                    # note; an annotation flagged hidden or not to be viewed (a form's field is the form's: above)
                    if subtype in ("/FileAttachment", "/Text", "/Popup", "/Sound") or (
                            subtype != "/Widget" and int(annotation.get("/F", 0) or 0) & _ANNOTATION_HIDDEN):
                        continue
                    for key in ("/T", "/Popup", "/Subj", "/TU", "/TM") + (
                            () if subtype == "/FreeText" else ("/Contents", "/RC")):
                        # a comment's author, subject and, but for text shown on the page, text; a widget outside
                        # the form's tree, its names (a field's were renamed above)
                        if key in annotation and not (key == "/T" and id(annotation) in renamed):
                            del annotation[NameObject(key)]
                    kept.append(reference)
                    covering = covering or subtype in _COVERING_ANNOTATIONS
                page[NameObject("/Annots")] = ArrayObject(kept)
        _unreachable_gone(writer)
        out = io.BytesIO()
        writer.write(out)
        if (fills and shows) or covering:
            _refuse_covered_text(out.getvalue())
        return out.getvalue()
    except ValidationFailed:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, NotImplementedError, AssertionError, RecursionError) as exc:
        # pypdf's own (an unsupported filter, an assertion on an inline image's layout) as well
        raise _refuse("PDF 文件结构异常，无法去除其中的作者等信息；请重新导出 PDF 后上传。") from exc


def scrubbed(kind: str, data: bytes) -> bytes:
    """A copy of ``data`` (of ``kind``, "docx" or "pdf") without the metadata naming people; other kinds as
    they are. Raises ValidationFailed (Chinese) when the document cannot be cleaned."""
    if kind == "docx":
        try:
            return _docx(data)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise _refuse("文件已损坏，无法去除其中的作者等信息；请用 Word 另存后重新上传。") from exc
    if kind == "pdf":
        return _pdf(data)
    return data
