"""More of what a public copy could carry unseen (core/scrub.py): Word fields' instructions, the glossary document,
macros and ActiveX controls; a PDF's scripts and actions, files associated anywhere, hidden annotations, form values
and inline images. Each crafted file here went public as it was before the scrubber learned it."""
from __future__ import annotations

import io
import zipfile
from datetime import date

import pytest

from evalhub.core import scrub
from evalhub.core.errors import ValidationFailed
from evalhub.extensions import db
from tests import factories
from tests.test_audit_leaks2 import _docx, _parts_holding, _public_copy, _repack, _with_parts
from tests.test_scrub_hidden_content import _refused, _with_body, scrubbed_within


def _text(data: bytes) -> str:
    import docx

    return "\n".join(p.text for p in docx.Document(io.BytesIO(data)).paragraphs)


def _field(instruction: str, result: str) -> str:
    """A field as Word writes it: begin, the instruction, separate, the result the page shows, end."""
    return (f'<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve">{instruction}'
            f'</w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>{result}</w:t></w:r>'
            f'<w:r><w:fldChar w:fldCharType="end"/></w:r>')


FIELDS = (
    '<w:p><w:r><w:t>编制：</w:t></w:r>'
    + _field(" AUTHOR \\* MERGEFORMAT ", "评价组")
    + '<w:fldSimple w:instr=" FILENAME \\p \\* MERGEFORMAT "><w:r><w:t>公开版.docx</w:t></w:r></w:fldSimple>'
    + _field(' INCLUDETEXT "C:\\\\Users\\\\zhangwei_bzczj\\\\Desktop\\\\访谈记录.docx" ', "访谈摘要")
    + _field(' HYPERLINK "file:///C:/Users/zhangwei_bzczj/Desktop/底稿.xlsx" ', "见底稿")
    + _field(" DOCPROPERTY Company ", "某某公司")
    # the branch not taken, and a field nested in the instruction with its result: never on the page
    + '<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText> IF 1 = 2 "</w:instrText></w:r>'
    + _field(" USERNAME ", "zhangwei_bzczj") + '<w:r><w:instrText>王建国 13899990000" "" </w:instrText></w:r>'
    + '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r>'
    # a legacy form field: its name, default and help text are kept in the field's data
    + '<w:r><w:fldChar w:fldCharType="begin"><w:ffData><w:name w:val="联系人"/><w:statusText w:type="text" '
      'w:val="刘芳 13700001111"/><w:textInput><w:default w:val="刘芳"/></w:textInput></w:ffData></w:fldChar></w:r>'
      '<w:r><w:instrText xml:space="preserve"> FORMTEXT </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/>'
      '</w:r><w:r><w:t>（略）</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r>'
    + "</w:p>")
LIVE = ('<w:p>' + _field(' HYPERLINK "https://www.ccgp.gov.cn/" ', "中国政府采购网")
        + _field(' HYPERLINK \\l "_Toc1" ', "一、项目概况") + _field(" PAGE ", "3")
        + _field(" = 2 * 3 ", "6") + "</w:p>")


def test_fields_are_unlinked_to_what_the_page_shows_and_their_instructions_go(world, client):
    """A field's instruction is never on the page: INCLUDETEXT and HYPERLINK name a file on the clerk's disk (the
    Windows account), IF keeps the branch not taken, a field nested in an instruction keeps a result nobody sees, a
    form field keeps its default and help texts. The public copy shows the same text, without the fields."""
    public = _public_copy(world, client, "公开版.docx", _with_body(FIELDS))
    for needle in ("zhangwei_bzczj", "王建国", "13899990000", "刘芳", "13700001111", "INCLUDETEXT", "AUTHOR",
                   "FILENAME", "DOCPROPERTY", "FORMTEXT", "USERNAME"):
        assert _parts_holding(public, needle) == [], needle
    assert "编制：评价组公开版.docx访谈摘要见底稿某某公司（略）" in _text(public).splitlines()


def test_fields_word_needs_live_stay_as_they_are():
    """Regression guard: page numbers, the table of contents' links, web links and formulas stay fields."""
    public = scrub.scrubbed("docx", _with_body(LIVE))
    with zipfile.ZipFile(io.BytesIO(public)) as package:
        assert LIVE.encode() in package.read("word/document.xml")
    assert "中国政府采购网一、项目概况36" in _text(public).splitlines()


def test_a_field_in_a_footer_is_unlinked_too():
    footer = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:ftr xmlns:w="http://schemas.openxmlformats.'
              'org/wordprocessingml/2006/main"><w:p><w:fldSimple w:instr=" USERNAME "><w:r><w:t>第一组</w:t></w:r>'
              '</w:fldSimple><w:r><w:t> 第 </w:t></w:r>' + _field(" PAGE ", "1") + "</w:p></w:ftr>")
    data = _repack(_docx(factories.report_text()), add={"word/footer1.xml": footer.encode()})
    with zipfile.ZipFile(io.BytesIO(scrub.scrubbed("docx", data))) as package:
        kept = package.read("word/footer1.xml").decode()
    assert "USERNAME" not in kept and "fldSimple" not in kept and "<w:t>第一组</w:t>" in kept
    assert " PAGE " in kept


# --- the glossary document (building blocks, AutoText) ---------------------------------------------------------

GLOSSARY = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:glossaryDocument xmlns:w="http://schemas.'
            'openxmlformats.org/wordprocessingml/2006/main"><w:docParts><w:docPart><w:docPartPr><w:name w:val="签名"/>'
            '<w:category><w:name w:val="常规"/><w:gallery w:val="autoTxt"/></w:category></w:docPartPr><w:docPartBody>'
            '<w:p><w:r><w:t>项目负责人 王建国 13899990000</w:t></w:r></w:p></w:docPartBody></w:docPart></w:docParts>'
            '</w:glossaryDocument>').encode()
GLOSSARY_STYLES = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles xmlns:w="http://schemas.'
                   'openxmlformats.org/wordprocessingml/2006/main"><w:style w:type="paragraph" w:default="1" '
                   'w:styleId="a"><w:name w:val="Normal"/><w:rPr><w:vanish/></w:rPr></w:style></w:styles>').encode()


def _with_glossary() -> bytes:
    return _with_parts(("rIdG1", "glossaryDocument", "glossary/document.xml"), {
        "/word/glossary/document.xml": "application/vnd.openxmlformats-officedocument.wordprocessingml.document.glossary+xml",
        "/word/glossary/styles.xml": "application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"}, {
        "word/glossary/document.xml": GLOSSARY, "word/glossary/styles.xml": GLOSSARY_STYLES,
        "word/glossary/_rels/document.xml.rels": b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship '
        b'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
        b'Target="styles.xml"/></Relationships>'})


def test_the_glossary_document_goes_with_its_relationship_and_content_types(world, client):
    """Building blocks and AutoText saved in the file (a signature with a name and a phone) are not in the body; the
    public copy leaves them out — and the glossary's own styles (a hidden default here) no longer count."""
    data = _with_glossary()
    assert _text(data) == factories.report_text()
    public = _public_copy(world, client, "公开版.docx", data)
    with zipfile.ZipFile(io.BytesIO(public)) as package:
        assert not [n for n in package.namelist() if "glossary" in n.lower()]
        assert b"glossary" not in package.read("word/_rels/document.xml.rels")
        assert b"glossary" not in package.read("[Content_Types].xml")
    assert _parts_holding(public, "王建国") == []
    assert _text(public) == factories.report_text()


def test_the_packages_thumbnail_of_the_first_page_goes(world, client):
    """Word's "保存缩略图" keeps a picture of the first page as it was saved — perhaps before the names were blacked
    out — in docProps/thumbnail.jpeg (python-docx's template carries one too): the public copy leaves it out, with
    its relationship and content type."""
    def edit(name: str, content: bytes) -> bytes:
        if name == "docProps/thumbnail.jpeg":
            return b"\xff\xd8\xff\xe0" + "王建国 未涂黑的首页".encode() + b"\xff\xd9"
        return content
    data = _repack(_docx(factories.report_text()), edit=edit)
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        assert b"thumbnail" in package.read("_rels/.rels")
    public = _public_copy(world, client, "公开版.docx", data)
    with zipfile.ZipFile(io.BytesIO(public)) as package:
        assert not [n for n in package.namelist() if "thumbnail" in n.lower()]
        assert b"thumbnail" not in package.read("_rels/.rels") and b"thumbnail" not in package.read("[Content_Types].xml")
    assert _parts_holding(public, "王建国") == []
    assert _text(public) == factories.report_text()


# --- macros and ActiveX controls --------------------------------------------------------------------------------

OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
MACRO_TYPES = b'<Override PartName="/word/vbaProject.bin" ContentType="application/vnd.ms-office.vbaProject"/>'
DOCM_MAIN = b"application/vnd.ms-word.document.macroEnabled.main+xml"


def _with_macros(*, project: bool = True, docm: bool = True, relationship: bool = True) -> bytes:
    def edit(name: str, content: bytes) -> bytes:
        if name == "[Content_Types].xml":
            if docm:
                content = content.replace(
                    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml", DOCM_MAIN)
            return content.replace(b"</Types>", (MACRO_TYPES if project else b"") + b"</Types>")
        if name == "word/_rels/document.xml.rels" and relationship:
            return content.replace(b"</Relationships>", b'<Relationship Id="rIdV" Type="http://schemas.microsoft.'
                                   b'com/office/2006/relationships/vbaProject" Target="vbaProject.bin"/>'
                                   b'</Relationships>')
        return content
    vba = OLE + "Attribute VB_Name = \"ThisDocument\" ' C:\\Users\\zhangwei".encode("utf-16-le")
    return _repack(_docx(factories.report_text()), edit=edit, add={"word/vbaProject.bin": vba} if project else {})


@pytest.mark.parametrize("data", [
    pytest.param(_with_macros(), id="a .docm renamed .docx"),
    pytest.param(_with_macros(docm=False, relationship=False), id="a VBA project only"),
    pytest.param(_with_macros(project=False, relationship=False), id="a macro-enabled main part"),
])
def test_a_docx_with_macros_is_refused(data):
    with pytest.raises(ValidationFailed, match="另存为") as refused:
        scrub.scrubbed("docx", data)
    assert "宏" in refused.value.message


def test_a_docx_with_macros_is_refused_by_the_publish_form(world, client, login):
    _refused(world, client, login, "公开版.docx", _with_macros(), "Word 文档（*.docx）")


ACTIVEX_PART = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><ax:ocx ax:classid="{8BD21D10-EC42-11CE-'
                b'9E0D-00AA006002F3}" ax:persistence="persistStreamInit" r:id="rId1" xmlns:ax="http://schemas.'
                b'microsoft.com/office/2006/activeX" xmlns:r="http://schemas.openxmlformats.org/officeDocument/'
                b'2006/relationships"/>')


def _with_activex() -> bytes:
    return _with_parts(("rIdX", "control", "activeX/activeX1.xml"), {
        "/word/activeX/activeX1.xml": "application/vnd.ms-office.activeX+xml"}, {
        "word/activeX/activeX1.xml": ACTIVEX_PART,
        "word/activeX/activeX1.bin": OLE + "王建国 13899990000".encode("utf-16-le")})


def test_a_docx_with_activex_controls_is_refused():
    with pytest.raises(ValidationFailed, match="ActiveX") as refused:
        scrub.scrubbed("docx", _with_activex())
    assert "设计模式" in refused.value.message


def test_the_contract_notice_api_refuses_activex_controls_in_chinese(world, client, auth):
    """The other upload path, end to end: the API answers 422 naming the file field, nothing is published."""
    from tests.test_contract_notice import _form, _notices, _signed

    e = _signed(world, date(2025, 3, 5))
    db.session.commit()
    response = client.post(f"/api/v1/engagements/{e.id}/contract-notice", headers=auth("bz.staff"),
                           content_type="multipart/form-data", data=_form(
                               file=(io.BytesIO(_with_activex()), "合同公开版.docx"),
                               late_reason="补录历史合同，原合同已在纸质公告栏公告。"))
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "ActiveX" in response.json["error"]["fields"]["file"]
    assert _notices() == 0


# --- markup built to be slow ------------------------------------------------------------------------------------

@pytest.mark.parametrize("piece", [
    '<w:fldChar w:fldCharType="begin"/>', '<w:fldChar w:fldCharType="begin"/><w:t>x</w:t>',
    '<w:fldChar w:fldCharType="begin"/><w:fldChar w:fldCharType="separate"/><w:t>x</w:t>',
    '<w:fldSimple w:instr="x">', '<w:fldSimple w:instr="x', "<w:instrText>x", '<w:fldChar w:fldCharType="begin">',
    '</w:fldSimple>', '<w:fldChar w:fldCharType="end"/>',
])
def test_fields_built_to_be_slow_are_scanned_once(piece):
    """Fields nest: 40,000 of them opened and never closed (in an instruction, in a result) are still one pass."""
    scanned_once(piece)


def scanned_once(piece: str) -> None:
    """``piece`` 40,000 times at the end of a report's body is scrubbed (or refused) within 20 s: one pass."""
    scrubbed_within(_repack(_docx(factories.report_text()), edit=lambda name, content: content.replace(
        b"</w:body>", b"<w:p><w:r>" + piece.encode() * 40_000 + b"</w:r></w:p></w:body>", 1)
        if name == "word/document.xml" else content), f"{piece!r} × 40,000")


# --- PDF: scripts and actions, associated files, hidden annotations, forms, layers, inline images ------------------

def _name(n: str):
    from pypdf.generic import NameObject

    return NameObject(n)


def _text_pdf(content: bytes = b""):
    """A writer holding one page that shows "Public text" (Helvetica), then ``content``; and the page."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject

    writer = PdfWriter()
    page = writer.add_blank_page(300, 200)
    font = DictionaryObject({_name("/Type"): _name("/Font"), _name("/Subtype"): _name("/Type1"),
                             _name("/BaseFont"): _name("/Helvetica")})
    page[_name("/Resources")] = DictionaryObject({_name("/Font"): DictionaryObject({_name("/F1"): font})})
    stream = DecodedStreamObject()
    stream.set_data(b"BT /F1 12 Tf 20 150 Td (Public text) Tj ET " + content)
    page[_name("/Contents")] = writer._add_object(stream)
    return writer, page


def _written(writer) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _action(kind: str, **fields):
    from pypdf.generic import DictionaryObject, TextStringObject

    action = DictionaryObject({_name("/S"): _name(kind)})
    for key, value in fields.items():
        action[_name("/" + key)] = TextStringObject(value)
    return action


def _link(writer, action):
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject

    return writer._add_object(DictionaryObject({
        _name("/Type"): _name("/Annot"), _name("/Subtype"): _name("/Link"),
        _name("/Rect"): ArrayObject([FloatObject(10), FloatObject(10), FloatObject(60), FloatObject(30)]),
        _name("/A"): action}))


def _opened(public: bytes):
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(public), strict=True)
    assert len(reader.pages) == 1 and "Public text" in reader.pages[0].extract_text()
    return reader


def test_a_pdfs_scripts_and_actions_reaching_outside_it_go_and_its_web_links_stay(world, client):
    """A script (run when the document or a page opens, on the reader's machine: it may hold anything) and an action
    opening another file (a path on the author's disk names the account) are not the report; a web link is."""
    from pypdf.generic import ArrayObject, DictionaryObject, TextStringObject
    from tests.test_scrub_hidden_content import _pdf_holds

    writer, page = _text_pdf()
    script = writer._add_object(_action("/JavaScript", JS="app.alert('审核人 王建国 13899990000');"))
    writer.root_object[_name("/Names")] = DictionaryObject({_name("/JavaScript"): DictionaryObject(
        {_name("/Names"): ArrayObject([TextStringObject("doc"), script])})})
    writer.root_object[_name("/OpenAction")] = _action("/JavaScript", JS="this.info.zhangwei_bzczj;")
    page[_name("/AA")] = DictionaryObject({_name("/O"): _action("/JavaScript", JS="var who = '李娜';")})
    web = _action("/URI", URI="https://www.ccgp.gov.cn/")
    web[_name("/Next")] = _action("/Launch", F="C:\\Users\\zhangwei_bzczj\\Desktop\\run.bat")
    page[_name("/Annots")] = ArrayObject([
        _link(writer, _action("/Launch", F="C:\\Users\\zhangwei_bzczj\\Desktop\\原稿.docx")),
        _link(writer, _action("/URI", URI="file:///C:/Users/zhangwei_bzczj/Desktop/底稿.xlsx")),
        _link(writer, _action("/GoToR", F="\\\\fileserver\\zhangwei_bzczj\\访谈.pdf")),
        _link(writer, web)])
    data = _written(writer)
    assert all(_pdf_holds(data, needle) for needle in ("王建国", "zhangwei_bzczj", "李娜"))
    public = _public_copy(world, client, "公开版.pdf", data)
    assert not [n for n in ("王建国", "zhangwei_bzczj", "李娜", "/JavaScript", "/Launch", "/GoToR")
                if _pdf_holds(public, n)]
    reader = _opened(public)
    assert "/OpenAction" not in reader.trailer["/Root"] and "/AA" not in reader.pages[0]
    actions = [a.get_object().get("/A") for a in reader.pages[0]["/Annots"]]
    assert [a["/URI"] for a in actions if a is not None] == ["https://www.ccgp.gov.cn/"]


def test_files_associated_with_a_page_and_its_thumbnail_go():
    """Beside the document's attachments (already gone), PDF 2.0 and PDF/A-3 attach files to any object (/AF): the
    page's here carries the working file; a thumbnail drawn when the page was saved may show it before redaction."""
    from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NumberObject, TextStringObject
    from tests.test_scrub_hidden_content import _pdf_holds

    writer, page = _text_pdf()
    attached = DecodedStreamObject()
    attached.set_data("被评价单位负责人 王建国，联系电话 13899990000".encode())
    attached[_name("/Type")] = _name("/EmbeddedFile")
    spec = DictionaryObject({_name("/Type"): _name("/Filespec"), _name("/F"): TextStringObject("原稿.txt"),
                             _name("/EF"): DictionaryObject({_name("/F"): writer._add_object(attached)})})
    page[_name("/AF")] = ArrayObject([writer._add_object(spec)])
    thumb = DecodedStreamObject()
    thumb.set_data("刘芳".encode("utf-16-be") * 4)
    thumb.update({_name("/Width"): NumberObject(2), _name("/Height"): NumberObject(2),
                  _name("/ColorSpace"): _name("/DeviceRGB"), _name("/BitsPerComponent"): NumberObject(8)})
    page[_name("/Thumb")] = writer._add_object(thumb)
    data = _written(writer)
    assert _pdf_holds(data, "13899990000") and _pdf_holds(data, "刘芳")
    public = scrub.scrubbed("pdf", data)
    assert not _pdf_holds(public, "13899990000") and not _pdf_holds(public, "刘芳")
    page = _opened(public).pages[0]
    assert "/AF" not in page and "/Thumb" not in page


def test_annotations_hidden_from_view_go_and_comments_lose_their_subjects():
    from pypdf import PdfReader
    from tests.test_scrub_hidden_content import _pdf_holds, _pdf_with_annotations

    data = _pdf_with_annotations({"/Subtype": "/FreeText", "/Contents": "王建国 13899990000", "/F": "2"},
                                 {"/Subtype": "/Square", "/Contents": "x", "/F": "32"},
                                 {"/Subtype": "/Highlight", "/Subj": "刘芳的意见"},
                                 {"/Subtype": "/FreeText", "/Contents": "（此处已删除）"})
    data = data.replace(b"/F (2)", b"/F 2").replace(b"/F (32)", b"/F 32")  # flags are numbers
    public = scrub.scrubbed("pdf", data)
    annotations = [a.get_object() for a in PdfReader(io.BytesIO(public)).pages[0]["/Annots"]]
    assert [a["/Subtype"] for a in annotations] == ["/Highlight", "/FreeText"]
    assert not _pdf_holds(public, "13899990000") and not _pdf_holds(public, "刘芳")
    assert annotations[1]["/Contents"] == "（此处已删除）"


def _form_pdf(value: str | None, *, xfa: bool = False) -> bytes:
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NumberObject, TextStringObject

    writer, page = _text_pdf()
    field = DictionaryObject({
        _name("/Type"): _name("/Annot"), _name("/Subtype"): _name("/Widget"), _name("/FT"): _name("/Tx"),
        _name("/T"): TextStringObject("contact"), _name("/F"): NumberObject(2),  # a hidden field
        _name("/Rect"): ArrayObject([FloatObject(10), FloatObject(10), FloatObject(120), FloatObject(30)])})
    if value is not None:
        field[_name("/V")] = TextStringObject(value)
    reference = writer._add_object(field)
    page[_name("/Annots")] = ArrayObject([reference])
    form = DictionaryObject({_name("/Fields"): ArrayObject([reference])})
    if xfa:
        form[_name("/XFA")] = TextStringObject("<xdp:xdp><xfa:datasets>王建国</xfa:datasets></xdp:xdp>")
    writer.root_object[_name("/AcroForm")] = writer._add_object(form)
    return _written(writer)


def test_a_pdf_whose_form_holds_values_is_refused(world, client, login):
    """A form field's value (a hidden one here) is in the file whatever the page shows: the clerk flattens the form."""
    _refused(world, client, login, "公开版.pdf", _form_pdf("王建国 13899990000"), "拼合表单")
    with pytest.raises(ValidationFailed, match="拼合表单"):
        scrub.scrubbed("pdf", _form_pdf(None, xfa=True))


def test_a_pdf_with_an_empty_form_is_published():
    """Regression guard: form fields nobody filled in hold nothing."""
    _opened(scrub.scrubbed("pdf", _form_pdf(None)))


def test_a_pdf_with_hidden_layers_is_refused():
    from pypdf.generic import ArrayObject, DictionaryObject, TextStringObject

    writer, page = _text_pdf(b"/OC /L0 BDC BT /F1 12 Tf 20 100 Td (Wang Jianguo 13899990000) Tj ET EMC")
    layer = writer._add_object(DictionaryObject({_name("/Type"): _name("/OCG"),
                                                 _name("/Name"): TextStringObject("原文")}))
    page[_name("/Resources")][_name("/Properties")] = DictionaryObject({_name("/L0"): layer})
    writer.root_object[_name("/OCProperties")] = DictionaryObject({
        _name("/OCGs"): ArrayObject([layer]), _name("/D"): DictionaryObject({_name("/OFF"): ArrayObject([layer])})})
    with pytest.raises(ValidationFailed, match="隐藏的图层"):
        scrub.scrubbed("pdf", _written(writer))


def test_a_pdfs_inline_jpeg_images_lose_their_exif():
    """An image may be written in the page's own content (BI … ID … EI) rather than as an object: the same JPEG,
    the same EXIF (the camera's owner, the place)."""
    from pypdf import PdfReader
    from pypdf.generic import ContentStream
    from tests.test_scrub_hidden_content import JPEG

    inline = b"q 16 0 0 8 100 20 cm BI /W 1 /H 1 /CS /RGB /BPC 8 /F /DCT ID " + JPEG + b" EI Q"
    writer, _page = _text_pdf(inline)
    data = _written(writer)
    assert b"zhangwei" in data
    public = scrub.scrubbed("pdf", data)
    assert b"zhangwei" not in public and b"Exif" not in public
    reader = _opened(public)
    operations = ContentStream(reader.pages[0].get_contents(), reader).operations
    images = [operands["data"] for operands, operator in operations if operator == b"INLINE IMAGE"]
    assert len(images) == 1 and images[0].startswith(b"\xff\xd8\xff\xe0") and images[0].endswith(JPEG[-12:])
    assert PdfReader(io.BytesIO(public)).pages[0].extract_text().strip() == "Public text"


def test_what_the_fields_read_in_the_settings_goes():
    """Document variables (DOCVARIABLE's values, written by an OA system's template) and a mail merge's data source
    (its connection names the workbook on the clerk's disk) are kept in word/settings.xml, shown nowhere."""
    settings = ('<w:docVars><w:docVar w:name="拟稿人" w:val="王建国 13899990000"/></w:docVars><w:mailMerge>'
                '<w:mainDocumentType w:val="formLetters"/><w:dataType w:val="native"/><w:connectString w:val="Provider='
                'Microsoft.ACE.OLEDB.12.0;Data Source=C:\\Users\\zhangwei_bzczj\\Desktop\\访谈名单.xlsx"/><w:query '
                'w:val="SELECT * FROM `Sheet1$`"/></w:mailMerge>')
    data = _repack(_docx(factories.report_text()), edit=lambda name, content: content.replace(
        b"</w:settings>", settings.encode() + b"</w:settings>", 1) if name == "word/settings.xml" else content)
    public = scrub.scrubbed("docx", data)
    assert _parts_holding(public, "王建国") == [] and _parts_holding(public, "zhangwei_bzczj") == []
    with zipfile.ZipFile(io.BytesIO(public)) as package:
        kept = package.read("word/settings.xml")
    assert b"docVars" not in kept and b"mailMerge" not in kept and b"<w:settings" in kept
    assert _text(public) == factories.report_text()
