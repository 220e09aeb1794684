"""The last places a public copy still named people (core/scrub.py): a .docx's range permissions (the editor's
account), smart tags and inline custom XML (their properties: a person's name, an address, an OA system's fields);
a PDF's named destinations ("张三_联系方式"), a choice field's options nobody chose (a list of staff), and a JPEG 2000
image's metadata boxes and comments (in a PDF or in a .docx's media). Each crafted file here went public with the
name in it before the scrubber learned it; the text the page shows, the links and the pixels stay the same."""
from __future__ import annotations

import io
import struct
import zipfile

import pytest

from evalhub.core import scrub
from tests import factories
from tests.test_audit_leaks2 import _docx, _parts_holding, _public_copy, _repack
from tests.test_scrub_hidden_content import _pdf_holds, _with_body, answered_within
from tests.test_scrub_names_unseen import W, _shown, _xml
from tests.test_scrub_unseen_parts import _name, _opened, _text_pdf, _written, scanned_once


def _opens(data: bytes) -> None:
    """The package opens in python-docx and its body is well-formed XML."""
    import docx

    docx.Document(io.BytesIO(data))
    _xml(data)


# --- .docx: range permissions (限制编辑 › 例外项) -----------------------------------------------------------------

PERMISSIONS = (
    '<w:p><w:permStart w:id="1" w:ed="BZCZJ\\zhangsan"/><w:r><w:t>可编辑段落</w:t></w:r><w:permEnd w:id="1"/></w:p>'
    '<w:tbl><w:tblPr><w:tblW w:w="0" w:type="auto"/></w:tblPr><w:tblGrid><w:gridCol w:w="2000"/></w:tblGrid><w:tr>'
    '<w:permStart w:id="2" w:edGrp="everyone" w:colFirst="0" w:colLast="0"/><w:tc><w:p><w:r><w:t>单元格</w:t>'
    '</w:r></w:p></w:tc><w:permEnd w:id="2"/></w:tr></w:tbl>'
    "<w:p><w:permStart w:id='3' w:ed='lifang@bzczj.example'></w:permStart><w:r><w:t>第三段</w:t></w:r>"
    '<w:permEnd w:id="3"></w:permEnd></w:p>')


def test_range_permissions_go_with_the_editors_account(world, client):
    """限制编辑 with exceptions: each range the named editor may change is marked w:permStart w:ed="DOMAIN\\account"
    (or an e-mail), in the body, a table row, a header. A public copy has no use for editing permissions: the
    markers go (both ends: they pair by w:id), the text they enclosed stays."""
    data = _with_body(PERMISSIONS)
    assert _parts_holding(data, "zhangsan") and _parts_holding(data, "lifang")
    public = _public_copy(world, client, "公开版.docx", data)
    for needle in ("zhangsan", "lifang", "BZCZJ", "permStart", "permEnd", "edGrp"):
        assert _parts_holding(public, needle) == [], needle
    assert _shown(public) == _shown(data)
    _opens(public)


# --- .docx: smart tags and inline custom XML ---------------------------------------------------------------------

SMART_TAGS = (
    '<w:p><w:r><w:t>联系人：</w:t></w:r><w:smartTag w:uri="urn:schemas-microsoft-com:office:smarttags" '
    'w:element="PersonName"><w:smartTagPr><w:attr w:name="ProductID" w:val="王建国 13899990000"/></w:smartTagPr>'
    '<w:r><w:t>（略）</w:t></w:r></w:smartTag><w:r><w:t>，地址：</w:t></w:r>'
    '<w:smartTag w:uri="urn:schemas-microsoft-com:office:smarttags" w:element="address"><w:smartTag '
    'w:uri="urn:schemas-microsoft-com:office:smarttags" w:element="Street"><w:smartTagPr><w:attr w:name="Street" '
    'w:val="刘芳家 幸福路 8 号"/></w:smartTagPr><w:r><w:t>某路</w:t></w:r></w:smartTag></w:smartTag></w:p>')
CUSTOM_XML_MARKUP = (
    '<w:p><w:r><w:t>拟稿：</w:t></w:r><w:customXml w:uri="http://oa.bzczj.example/form" w:element="drafter">'
    '<w:customXmlPr><w:placeholder w:val="赵敏的默认文字"/><w:attr w:name="account" w:val="zhangwei_bzczj"/>'
    '</w:customXmlPr><w:r><w:t>评价组</w:t></w:r></w:customXml></w:p>'
    # around a whole paragraph, and around a table's row
    '<w:customXml w:uri="http://oa.bzczj.example/form" w:element="reviewer"><w:customXmlPr><w:attr w:name="phone" '
    'w:val="13700001111"/></w:customXmlPr><w:p><w:r><w:t>复核：（略）</w:t></w:r></w:p></w:customXml>'
    '<w:tbl><w:tblPr><w:tblW w:w="0" w:type="auto"/></w:tblPr><w:tblGrid><w:gridCol w:w="2000"/></w:tblGrid>'
    '<w:customXml w:uri="http://oa.bzczj.example/form" w:element="row"><w:customXmlPr><w:attr w:name="who" '
    'w:val="孙磊"/></w:customXmlPr><w:tr><w:tc><w:p><w:r><w:t>一行</w:t></w:r></w:p></w:tc></w:tr></w:customXml>'
    '</w:tbl>')


def test_smart_tags_and_inline_custom_xml_are_unwrapped_and_their_properties_go(world, client):
    """Word 2003–2007 marked a person's name, an address, a date as smart tags (w:smartTag/w:smartTagPr/w:attr: the
    name, the street, kept beside the text); an OA system's template wraps its fields in custom XML (w:customXml:
    the schema's element, its attributes — the drafter's account, a phone — and a placeholder). No page shows them.
    The wrappers go with their properties; the runs, paragraphs and rows they held stay where they were."""
    data = _with_body(SMART_TAGS + CUSTOM_XML_MARKUP)
    needles = ("王建国", "13899990000", "刘芳", "赵敏", "zhangwei_bzczj", "13700001111", "孙磊", "oa.bzczj")
    assert all(_parts_holding(data, n) for n in needles)
    public = _public_copy(world, client, "公开版.docx", data)
    assert not [n for n in needles if _parts_holding(public, n)]
    with zipfile.ZipFile(io.BytesIO(public)) as package:
        body = package.read("word/document.xml")
    for gone in (b"smartTag", b"customXml", b"PersonName", b"w:attr"):
        assert gone not in body, gone
    assert _shown(public) == _shown(data)
    _opens(public)
    root = _xml(public)
    assert len(root.findall(f".//{{{W}}}tbl/{{{W}}}tr")) == 1  # the row now in its table


def test_smart_tags_and_custom_xml_in_a_header_go_too():
    header = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:hdr xmlns:w="' + W + '"><w:p>'
              '<w:smartTag w:element="PersonName"><w:smartTagPr><w:attr w:name="ProductID" w:val="王建国"/>'
              '</w:smartTagPr><w:r><w:t>评价组</w:t></w:r></w:smartTag><w:permStart w:id="9" w:ed="zhangsan"/>'
              '<w:permEnd w:id="9"/></w:p></w:hdr>')
    public = scrub.scrubbed("docx", _repack(_docx(factories.report_text()), add={"word/header1.xml": header.encode()}))
    assert _parts_holding(public, "王建国") == [] and _parts_holding(public, "zhangsan") == []
    assert _shown(public, "word/header1.xml") == "评价组"


@pytest.mark.parametrize("piece", [
    '<w:smartTag w:element="PersonName">', "</w:smartTag>", '<w:smartTagPr><w:attr w:val="x"/>', "<w:smartTagPr>",
    '<w:customXml w:element="x"><w:customXmlPr>', "<w:customXmlPr><w:placeholder>", '<w:permStart w:id="1" w:ed="x"/>',
    '<w:permStart w:ed="', "<w:permEnd>",
])
def test_smart_tags_custom_xml_and_permissions_built_to_be_slow_are_scanned_once(piece):
    """40,000 of them opened and never closed (or broken) are still one pass over the tags."""
    scanned_once(piece)


# --- PDF: named destinations ---------------------------------------------------------------------------------------

def _string(text: str):
    from pypdf.generic import TextStringObject

    return TextStringObject(text)


def _three_pages():
    """A writer of three pages each showing "Page n" (Helvetica); and its pages."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({_name("/Type"): _name("/Font"), _name("/Subtype"): _name("/Type1"),
                                                _name("/BaseFont"): _name("/Helvetica")}))
    pages = []
    for number in (1, 2, 3):
        page = writer.add_blank_page(300, 200)
        page[_name("/Resources")] = DictionaryObject({_name("/Font"): DictionaryObject({_name("/F1"): font})})
        stream = DecodedStreamObject()
        stream.set_data(b"BT /F1 12 Tf 20 150 Td (Page %d) Tj ET" % number)
        page[_name("/Contents")] = writer._add_object(stream)
        pages.append(page)
    return writer, pages


def _link_to(writer, *, dest=None, action=None):
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject

    link = DictionaryObject({_name("/Type"): _name("/Annot"), _name("/Subtype"): _name("/Link"),
                             _name("/Rect"): ArrayObject([FloatObject(10), FloatObject(10), FloatObject(60),
                                                          FloatObject(30)])})
    if dest is not None:
        link[_name("/Dest")] = dest
    if action is not None:
        link[_name("/A")] = action
    return writer._add_object(link)


def _goto(dest):
    from pypdf.generic import DictionaryObject

    return DictionaryObject({_name("/S"): _name("/GoTo"), _name("/D"): dest})


def _named_destinations_pdf() -> bytes:
    """Three pages; named destinations both ways a PDF keeps them — the catalog's /Dests (PDF 1.1: names) and the
    /Names tree's /Dests (strings, in a tree of two leaves) —, reached by a link's /Dest, a GoTo action's /D, an
    outline item, the document's /OpenAction, and one name nothing defines (a dead link)."""
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NullObject, NumberObject

    writer, pages = _three_pages()

    def explicit(page, fit: str = "/Fit"):
        if fit == "/XYZ":
            return ArrayObject([page.indirect_reference, _name("/XYZ"), FloatObject(0), FloatObject(180),
                                NullObject()])
        return ArrayObject([page.indirect_reference, _name(fit)])

    writer.root_object[_name("/Dests")] = writer._add_object(DictionaryObject({
        _name("/张三_联系方式"): explicit(pages[1], "/XYZ"),
        _name("/zhangsan_note"): DictionaryObject({_name("/D"): explicit(pages[2])})}))
    leaf_a = writer._add_object(DictionaryObject({
        _name("/Limits"): ArrayObject([_string("刘芳附件"), _string("刘芳附件")]),
        _name("/Names"): ArrayObject([_string("刘芳附件"), DictionaryObject({_name("/D"): explicit(pages[0])})])}))
    leaf_b = writer._add_object(DictionaryObject({
        _name("/Limits"): ArrayObject([_string("王建国电话"), _string("王建国电话")]),
        _name("/Names"): ArrayObject([_string("王建国电话"), writer._add_object(explicit(pages[2], "/XYZ"))])}))
    writer.root_object[_name("/Names")] = DictionaryObject({_name("/Dests"): writer._add_object(DictionaryObject({
        _name("/Kids"): ArrayObject([leaf_a, leaf_b])}))})
    pages[0][_name("/Annots")] = ArrayObject([
        _link_to(writer, dest=_string("王建国电话")),
        _link_to(writer, action=_goto(_name("/张三_联系方式"))),
        _link_to(writer, action=_goto(writer._add_object(_string("刘芳附件")))),
        _link_to(writer, dest=_name("/zhangsan_note")),
        _link_to(writer, dest=_string("赵敏_未定义")),  # nothing defines it: a dead link, dead still
        _link_to(writer, dest=explicit(pages[1]))])
    outline = writer._add_object(DictionaryObject({_name("/Type"): _name("/Outlines"),
                                                   _name("/Count"): NumberObject(1)}))
    item = writer._add_object(DictionaryObject({_name("/Title"): _string("二、评价结论"), _name("/Parent"): outline,
                                                _name("/Dest"): _string("王建国电话")}))
    outline.get_object().update({_name("/First"): item, _name("/Last"): item})
    writer.root_object[_name("/Outlines")] = outline
    writer.root_object[_name("/OpenAction")] = _goto(_string("刘芳附件"))
    return _written(writer)


def _named(reader) -> dict:
    """Every named destination of ``reader``'s document: (the name's kind, its text) → its explicit destination."""
    from pypdf.generic import ArrayObject, DictionaryObject

    found = {}
    root = reader.trailer["/Root"]
    if "/Dests" in root:
        for key, value in root["/Dests"].get_object().items():
            found[("name", str(key))] = value.get_object()
    todo = [root["/Names"]["/Dests"]] if "/Names" in root and "/Dests" in root["/Names"] else []
    while todo:
        node = todo.pop().get_object()
        todo.extend(node.get("/Kids", []))
        pairs = list(node.get("/Names", []))
        for at in range(0, len(pairs), 2):
            found[("string", str(pairs[at].get_object()))] = pairs[at + 1].get_object()
    for key, value in list(found.items()):
        if isinstance(value, DictionaryObject):
            value = value["/D"].get_object()
        assert isinstance(value, ArrayObject)
        found[key] = value
    return found


def _target(reader, dest) -> int | None:
    """The page number (from 0) ``dest`` (explicit, a name, a string, a GoTo action) goes to; None if nowhere."""
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject

    dest = dest.get_object()
    if isinstance(dest, DictionaryObject):
        assert dest["/S"] == "/GoTo"
        dest = dest["/D"].get_object()
    if not isinstance(dest, ArrayObject):
        dest = _named(reader).get(("name" if isinstance(dest, NameObject) else "string", str(dest)))
        if dest is None:
            return None
    pages = [page.indirect_reference.idnum for page in reader.pages]
    return pages.index(dest[0].idnum)


def _targets(data: bytes) -> list:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=True)
    root = reader.trailer["/Root"]
    links = [a.get_object() for a in reader.pages[0]["/Annots"]]
    return ([_target(reader, link.get("/Dest", link.get("/A"))) for link in links]
            + [_target(reader, root["/Outlines"]["/First"]["/Dest"]), _target(reader, root["/OpenAction"])])


def test_named_destinations_are_renamed_and_every_link_goes_where_it_went(world, client):
    """Named destinations are the author's words no page shows ("张三_联系方式", "王建国电话": a link's target, named
    in Acrobat or by a Word heading's bookmark). Each is renamed d1, d2, … in the catalog's /Dests and the /Names
    tree, and every reference follows — links' /Dest, GoTo actions' /D, the outline, /OpenAction; a name nothing
    defines is renamed too (the dead link stays dead). Every link goes to the page it went to."""
    data = _named_destinations_pdf()
    needles = ("张三", "zhangsan", "王建国", "刘芳", "赵敏")
    assert all(_pdf_holds(data, n) for n in needles)
    before = _targets(data)
    assert before == [2, 1, 0, 2, None, 1, 2, 0]
    public = _public_copy(world, client, "公开版.pdf", data)
    assert not [n for n in needles if _pdf_holds(public, n)]
    assert _targets(public) == before
    from pypdf import PdfReader

    names = sorted(text.lstrip("/") for _kind, text in _named(PdfReader(io.BytesIO(public))))
    assert names == ["d1", "d2", "d3", "d4"]
    assert PdfReader(io.BytesIO(public)).outline[0].title == "二、评价结论"


def test_a_name_tree_built_to_be_slow_is_walked_once():
    """A name tree whose every node lists its one kid twice (2^40 paths), and a kid that is its own parent: each
    node is read once."""
    from pypdf.generic import ArrayObject, DictionaryObject

    writer, page = _text_pdf()
    node = writer._add_object(DictionaryObject({_name("/Names"): ArrayObject([_string("王建国"), ArrayObject([
        page.indirect_reference, _name("/Fit")])])}))
    for _ in range(40):
        node = writer._add_object(DictionaryObject({_name("/Kids"): ArrayObject([node, node])}))
    node.get_object()[_name("/Kids")].append(node)  # a loop
    writer.root_object[_name("/Names")] = DictionaryObject({_name("/Dests"): node})
    page[_name("/Annots")] = ArrayObject([_link_to(writer, dest=_string("王建国"))])
    public = answered_within(lambda: scrub.scrubbed("pdf", _written(writer)), "scrubbing the name tree")
    assert isinstance(public, bytes) and not _pdf_holds(public, "王建国")
    _opened(public)


# --- PDF: a choice field's options ---------------------------------------------------------------------------------

def _choice_form() -> bytes:
    """An empty form of a combo box (its choices a list of staff) and a list box (export values and display names),
    a parent's /Opt inherited by its kid, with the selected-index and top-index entries."""
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NumberObject

    writer, page = _text_pdf()

    def rect(at: int):
        return ArrayObject([FloatObject(10), FloatObject(10 + 30 * at), FloatObject(120), FloatObject(30 + 30 * at)])

    combo = writer._add_object(DictionaryObject({
        _name("/Type"): _name("/Annot"), _name("/Subtype"): _name("/Widget"), _name("/FT"): _name("/Ch"),
        _name("/Ff"): NumberObject(1 << 17), _name("/T"): _string("经办人"), _name("/Rect"): rect(0),
        _name("/Opt"): ArrayObject([_string("王建国"), _string("刘芳"), _string("赵敏")]),
        _name("/TI"): NumberObject(1)}))
    listbox = writer._add_object(DictionaryObject({
        _name("/Type"): _name("/Annot"), _name("/Subtype"): _name("/Widget"), _name("/FT"): _name("/Ch"),
        _name("/T"): _string("复核人"), _name("/Rect"): rect(1), _name("/I"): ArrayObject([]),
        _name("/Opt"): writer._add_object(ArrayObject([
            ArrayObject([_string("13899990000"), _string("孙磊")]),
            ArrayObject([_string("13700001111"), _string("李娜")])]))}))
    parent = writer._add_object(DictionaryObject({
        _name("/FT"): _name("/Ch"), _name("/Ff"): NumberObject(1 << 17), _name("/T"): _string("联系人"),
        _name("/Opt"): ArrayObject([_string("周杰 13600002222")])}))
    kid = writer._add_object(DictionaryObject({
        _name("/Type"): _name("/Annot"), _name("/Subtype"): _name("/Widget"), _name("/Parent"): parent,
        _name("/Rect"): rect(2)}))
    parent.get_object()[_name("/Kids")] = ArrayObject([kid])
    page[_name("/Annots")] = ArrayObject([combo, listbox, kid])
    writer.root_object[_name("/AcroForm")] = writer._add_object(DictionaryObject({
        _name("/Fields"): ArrayObject([combo, listbox, parent])}))
    return _written(writer)


def test_an_empty_forms_choice_fields_lose_the_options_nobody_chose(world, client):
    """A combo box's or a list box's choices (/Opt: the staff a clerk could pick, with their phones as export
    values) are in the file whatever the page shows; nobody chose any in an empty form. They go, with the indexes
    into them (/I, /TI); the fields stay, empty, as choice fields."""
    data = _choice_form()
    needles = ("王建国", "刘芳", "赵敏", "孙磊", "李娜", "13899990000", "13700001111", "周杰")
    assert all(_pdf_holds(data, n) for n in needles)
    public = _public_copy(world, client, "公开版.pdf", data)
    assert not [n for n in needles if _pdf_holds(public, n)]
    reader = _opened(public)
    fields = [f.get_object() for f in reader.trailer["/Root"]["/AcroForm"]["/Fields"]]
    assert [f["/FT"] for f in fields] == ["/Ch", "/Ch", "/Ch"]
    for field in fields:
        assert not field.get("/Opt") and "/I" not in field and "/TI" not in field


def test_a_choice_the_form_holds_is_kept_and_the_others_go():
    """Where a choice field's value is not a text (a value as the form keeps it past ``_form_values``: a name
    object), the options matching it stay and the others go."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_choice_form())))
    combo = writer.root_object["/AcroForm"]["/Fields"][0].get_object()
    combo[_name("/Opt")] = ArrayObject([_string("王建国"), _string("Yes"), _string("刘芳")])
    combo[_name("/V")] = _name("/Yes")
    public = scrub.scrubbed("pdf", _written(writer))
    field = PdfReader(io.BytesIO(public)).trailer["/Root"]["/AcroForm"]["/Fields"][0].get_object()
    assert list(field["/Opt"]) == ["Yes"] and field["/V"] == "/Yes"
    assert not _pdf_holds(public, "王建国") and not _pdf_holds(public, "刘芳")


# --- JPEG 2000: metadata boxes and comments ------------------------------------------------------------------------

XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _jp2() -> tuple[bytes, bytes]:
    """A JPEG 2000 photo (Pillow: a JP2 file whose codestream has a comment naming its maker) with an XML box, an
    XMP and an EXIF uuid box, an IPR box and a UUID-info box (its URL a path) added, one of them written with a
    64-bit length; and the raw codestream without its comment."""
    from PIL import Image

    image = Image.new("RGB", (16, 8), (200, 30, 30))
    image.paste((20, 40, 220), (0, 0, 8, 8))
    out = io.BytesIO()
    image.save(out, "JPEG2000", comment=b"Created by zhangwei, C:\\Users\\zhangwei")
    data = out.getvalue()
    at = data.index(b"jp2c") - 4
    xml = _box(b"xml ", "<gml><dc:creator>王建国</dc:creator><where>巴州财政局三楼</where></gml>".encode())
    xmp = _box(b"uuid", XMP_UUID + b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>zhangwei</dc:creator></x:xmpmeta>')
    exif = b"\x00\x00\x00\x01uuid" + struct.pack(">Q", 16 + 16 + 30) + b"JpgTiffExif->JP2" + b"Exif\0\0Artist liufang"
    exif += b"\0" * (16 + 16 + 30 - len(exif))
    ipr = _box(b"jp2i", "<rights>版权 刘芳</rights>".encode())
    uinf = _box(b"uinf", _box(b"ulst", b"\0\x01" + b"\0" * 16) + _box(b"url ", b"\0\0\0\0file:///C:/Users/liufang/x"))
    jp2 = data[:at] + xml + xmp + exif + ipr + uinf + data[at:] + _box(b"xml ", "<note>赵敏</note>".encode())
    codestream = data[data.index(b"\xff\x4f\xff\x51"):]
    com = codestream.index(b"\xff\x64")
    length = int.from_bytes(codestream[com + 2:com + 4], "big")
    return jp2, codestream[:com] + codestream[com + 2 + length:]


def _boxes(data: bytes) -> list[bytes]:
    kinds, at = [], 0
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if length == 1:
            length = struct.unpack(">Q", data[at + 8:at + 16])[0]
        kinds.append(kind)
        at = len(data) if length == 0 else at + length
    return kinds


def _pixels(data: bytes) -> bytes:
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


JP2_NEEDLES = (b"zhangwei", "王建国".encode(), "巴州".encode(), b"liufang", "刘芳".encode(), "赵敏".encode(), b"Exif")


def test_a_jpeg_2000s_metadata_boxes_and_comments_go_and_its_pixels_stay():
    jp2, codestream = _jp2()
    assert all(n in jp2 for n in JP2_NEEDLES) and _boxes(jp2).count(b"uuid") == 2
    clean = scrub._jp2(jp2)
    assert not [n for n in JP2_NEEDLES if n in clean]
    assert _boxes(clean) == [b"jP  ", b"ftyp", b"jp2h", b"jp2c"]
    assert clean.endswith(codestream) and _pixels(clean) == _pixels(jp2)
    # a codestream alone (.j2k, or what a PDF's /JPXDecode may hold): its comments go
    bare = jp2[jp2.index(b"\xff\x4f\xff\x51"):jp2.index("<note>".encode()) - 8]
    assert b"zhangwei" in bare and scrub._jp2(bare) == codestream


@pytest.mark.parametrize("broken", [b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00\x00\xff\xffjp2h", b"\xff\x4f\xff\x51\x00",
                                    b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00\x00\x00\x01uuid\x00"])
def test_a_jpeg_2000_not_laid_out_as_expected_is_copied_as_it_is(broken):
    assert scrub._jp2(broken) == broken


def test_a_jpeg_2000_in_a_docxs_media_loses_its_metadata(world, client):
    jp2, codestream = _jp2()
    data = _repack(_docx(factories.report_text()), add={"word/media/image9.jp2": jp2, "word/media/image8.JPX": jp2})
    public = _public_copy(world, client, "公开版.docx", data)
    with zipfile.ZipFile(io.BytesIO(public)) as package:
        for part in ("word/media/image9.jp2", "word/media/image8.JPX"):
            kept = package.read(part)
            assert not [n for n in JP2_NEEDLES if n in kept] and kept.endswith(codestream), part


def _jpx_pdf(image_data: bytes, filters) -> bytes:
    from pypdf.generic import DictionaryObject, NumberObject, StreamObject

    writer, page = _text_pdf(b"q 160 0 0 80 100 20 cm /Im0 Do Q")
    image = StreamObject()
    image._data = image_data
    image.update({_name("/Type"): _name("/XObject"), _name("/Subtype"): _name("/Image"),
                  _name("/Width"): NumberObject(16), _name("/Height"): NumberObject(8), _name("/Filter"): filters})
    page[_name("/Resources")][_name("/XObject")] = DictionaryObject({_name("/Im0"): writer._add_object(image)})
    return _written(writer)


@pytest.mark.parametrize("chain", ["jp2", "codestream", "flate"])
def test_a_pdfs_jpeg_2000_image_loses_its_metadata_and_keeps_its_pixels(world, client, chain):
    """/JPXDecode: a JP2 file (or its codestream alone) as the image's data, perhaps compressed again: the same boxes
    and comments as in a file of its own. The image is written with /JPXDecode alone, its pixels the same."""
    import zlib

    from pypdf import PdfReader
    from pypdf.generic import ArrayObject

    jp2, codestream = _jp2()
    if chain == "codestream":
        jp2 = jp2[jp2.index(b"\xff\x4f\xff\x51"):jp2.index("<note>".encode()) - 8]
    data = _jpx_pdf(zlib.compress(jp2) if chain == "flate" else jp2,
                    ArrayObject([_name("/FlateDecode"), _name("/JPXDecode")]) if chain == "flate"
                    else _name("/JPXDecode"))
    assert _pdf_holds(data, "zhangwei")
    public = _public_copy(world, client, "公开版.pdf", data)
    assert not _pdf_holds(public, "zhangwei") and b"zhangwei" not in public
    image = _opened(public).pages[0]["/Resources"]["/XObject"]["/Im0"].get_object()
    assert image["/Filter"] == "/JPXDecode"
    kept = image._data
    assert not [n for n in JP2_NEEDLES if n in kept] and kept.endswith(codestream)
    assert _pixels(kept) == _pixels(jp2)
    assert PdfReader(io.BytesIO(public)).pages[0].extract_text().strip() == "Public text"


@pytest.mark.parametrize("shape", ["boxes", "comments"])
def test_a_jpeg_2000_built_to_be_slow_is_walked_once(shape):
    """200,000 empty boxes, or 200,000 comments in the codestream's header: one walk (a few MB; 5 s is ample)."""
    jp2, codestream = _jp2()
    at = jp2.index(b"jp2c") - 4
    if shape == "boxes":
        hostile = jp2[:at] + _box(b"xml ", b"") * 200_000 + jp2[at:]
    else:
        start = jp2.index(b"\xff\x4f\xff\x51")
        siz_end = start + 4 + int.from_bytes(jp2[start + 4:start + 6], "big")
        comments = b"\xff\x64\x00\x05\x00\x01x" * 200_000
        end = at + int.from_bytes(jp2[at:at + 4], "big")
        inner = jp2[at + 8:siz_end] + comments + jp2[siz_end:end]
        hostile = jp2[:at] + struct.pack(">I", 8 + len(inner)) + b"jp2c" + inner + jp2[end:]
    clean = answered_within(lambda: scrub._jp2(hostile), "stripping the JPEG 2000 file", 5)
    assert b"xml " not in clean[:200] and clean.endswith(codestream[-50:]) and len(clean) < len(jp2)
