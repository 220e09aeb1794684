"""What a public copy still carried of the names an author gives where no page shows them (core/scrub.py): .docx
bookmark names, content controls' tags, titles, placeholders and data bindings, links' screen tips; a PDF's
signature, its form fields' names, its accessibility text (/Alt, /ActualText); a PDF's inline JPEG written through a
filter chain kept its EXIF. Each crafted file here went public with the name in it before the scrubber learned it;
the text the page shows stays the same."""
from __future__ import annotations

import io
import re
import zipfile

import pytest

from evalhub.core import scrub
from evalhub.core.errors import ValidationFailed
from tests import factories
from tests.test_audit_leaks2 import _docx, _parts_holding, _public_copy, _repack
from tests.test_scrub_hidden_content import _with_body, scrubbed_within
from tests.test_scrub_unseen_parts import _field, scanned_once

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _shown(data: bytes, part: str = "word/document.xml") -> str:
    """Every w:t of a part, in order: what the page shows (field instructions are w:instrText, never w:t)."""
    from lxml import etree

    with zipfile.ZipFile(io.BytesIO(data)) as package:
        root = etree.fromstring(package.read(part))
    return "".join(t.text or "" for t in root.iter(f"{{{W}}}t"))


def _xml(data: bytes, part: str = "word/document.xml"):
    from lxml import etree

    with zipfile.ZipFile(io.BytesIO(data)) as package:
        return etree.fromstring(package.read(part))


def _instructions(root) -> list[str]:
    """Each field's instruction: a fldSimple's, or its instrText runs joined (one field per begin)."""
    found, current = [], None
    for element in root.iter(f"{{{W}}}fldSimple", f"{{{W}}}fldChar", f"{{{W}}}instrText"):
        if element.tag == f"{{{W}}}fldSimple":
            found.append(element.get(f"{{{W}}}instr"))
        elif element.tag == f"{{{W}}}fldChar":
            kind = element.get(f"{{{W}}}fldCharType")
            if kind == "begin":
                current = []
            elif kind == "separate" and current is not None:
                found.append("".join(current))
                current = None
        elif current is not None:
            current.append(element.text or "")
    return found


# --- bookmark names -----------------------------------------------------------------------------------------------

def _bookmark(at: int, name: str, text: str) -> str:
    return (f'<w:bookmarkStart w:id="{at}" w:name="{name}"/><w:r><w:t>{text}</w:t></w:r>'
            f'<w:bookmarkEnd w:id="{at}"/>')


BOOKMARKS = (
    '<w:p>' + _bookmark(1, "王建国电话", "联系方式见附件") + '</w:p>'
    '<w:p>' + _bookmark(2, "单价_刘芳核", "12") + _bookmark(3, "_Toc123456789", "一、项目概况")
    + _bookmark(4, "_GoBack", "") + _bookmark(5, "_Toc刘芳意见", "二、评价结论") + '</w:p>'
    '<w:p><w:r><w:t>参见</w:t></w:r>' + _field(" REF 王建国电话 \\h ", "联系方式见附件")
    + '<w:fldSimple w:instr=" PAGEREF 王建国电话 \\h "><w:r><w:t>2</w:t></w:r></w:fldSimple>'
    + _field(' HYPERLINK \\l "王建国电话" ', "跳转") + _field(" = 单价_刘芳核 * 2 \\# \"0\" ", "24")
    + _field(" = SUM(ABOVE) ", "36") + _field(" PAGEREF _Toc123456789 \\h ", "1")
    + _field(" PAGEREF _Toc刘芳意见 \\h ", "5")
    + '<w:hyperlink w:anchor="王建国电话" w:history="1"><w:r><w:t>附件</w:t></w:r></w:hyperlink>'
    + '<w:hyperlink w:anchor="_Toc123456789"><w:r><w:t>概况</w:t></w:r></w:hyperlink></w:p>'
    # a legacy form field: its bookmark bears its name
    + '<w:p><w:bookmarkStart w:id="6" w:name="联系人_赵敏"/><w:r><w:fldChar w:fldCharType="begin"><w:ffData><w:name '
      'w:val="联系人_赵敏"/><w:textInput/></w:ffData></w:fldChar></w:r><w:r><w:instrText xml:space="preserve"> FORMTEXT '
      '</w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>（略）</w:t></w:r><w:r><w:fldChar '
      'w:fldCharType="end"/></w:r><w:bookmarkEnd w:id="6"/></w:p>')
FOOTER = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:ftr xmlns:w="' + W + '"><w:p><w:r><w:t>见 '
          '</w:t></w:r>' + _field(" REF 王建国电话 ", "联系方式见附件") + "</w:p></w:ftr>")


def test_bookmark_names_are_renamed_and_what_points_at_them_follows(world, client):
    """A bookmark named after a person or an internal note (插入 › 书签 lists it; the page never shows it): the
    public copy renames it _bm1, _bm2, … — one new name per bookmark, in the body and the footer alike — and every
    REF, PAGEREF, HYPERLINK \\l, formula and w:hyperlink anchor follows it; Word's own _Toc<digits> and _GoBack stay,
    a _Toc followed by the author's words does not. The page shows the same text."""
    data = _repack(_with_body(BOOKMARKS), add={"word/footer1.xml": FOOTER.encode()})
    assert _parts_holding(data, "王建国") and _parts_holding(data, "刘芳")
    public = _public_copy(world, client, "公开版.docx", data)
    for needle in ("王建国", "刘芳", "赵敏"):
        assert _parts_holding(public, needle) == [], needle
    assert _shown(public) == _shown(data) and _shown(public, "word/footer1.xml") == _shown(data, "word/footer1.xml")

    body = _xml(public)
    names = [b.get(f"{{{W}}}name") for b in body.iter(f"{{{W}}}bookmarkStart")]
    assert names[:4] == ["_bm1", "_bm2", "_Toc123456789", "_GoBack"] and set(names[4:]) == {"_bm3", "_bm4"}
    phone = "_bm1"
    assert [i.strip() for i in _instructions(body)] == [
        f"REF {phone} \\h", f"PAGEREF {phone} \\h", f'HYPERLINK \\l "{phone}"', '= _bm2 * 2 \\# "0"', "= SUM(ABOVE)",
        "PAGEREF _Toc123456789 \\h", "PAGEREF _bm3 \\h"]
    assert [h.get(f"{{{W}}}anchor") for h in body.iter(f"{{{W}}}hyperlink")] == [phone, "_Toc123456789"]
    assert [i.strip() for i in _instructions(_xml(public, "word/footer1.xml"))] == [f"REF {phone}"]
    assert "FORMTEXT" not in str(_instructions(body))  # the form field itself is unlinked (its name with it)


def test_a_bookmark_is_one_name_whatever_its_case():
    """Word compares bookmark names without case: REF zhangwei_NOTE goes to the bookmark ZhangWei_Note."""
    body = ('<w:p>' + _bookmark(1, "ZhangWei_Note", "正文") + _field(" REF zhangwei_NOTE ", "正文")
            + '<w:hyperlink w:anchor="ZHANGWEI_note"><w:r><w:t>链接</w:t></w:r></w:hyperlink></w:p>')
    public = scrub.scrubbed("docx", _with_body(body))
    root = _xml(public)
    assert [b.get(f"{{{W}}}name") for b in root.iter(f"{{{W}}}bookmarkStart")] == ["_bm1"]
    assert [i.strip() for i in _instructions(root)] == ["REF _bm1"]
    assert [h.get(f"{{{W}}}anchor") for h in root.iter(f"{{{W}}}hyperlink")] == ["_bm1"]
    assert _parts_holding(public, "hangwei") == [] and _parts_holding(public, "HANGWEI") == []


# --- content controls ----------------------------------------------------------------------------------------------

CONTROLS = (
    '<w:p><w:r><w:t>联系人：</w:t></w:r><w:sdt><w:sdtPr><w:alias w:val="经办人 王建国"/><w:tag w:val="oa:drafter:'
    'zhangwei_bzczj"/><w:id w:val="-1200"/><w:placeholder><w:docPart w:val="刘芳的默认文字"/></w:placeholder>'
    '<w:dataBinding w:prefixMappings="xmlns:ns0=\'http://oa.bzczj.example/王建国\'" w:xpath="/ns0:root[1]/ns0:'
    '拟稿人_王建国[1]" w:storeItemID="{6B1C2A55-0C55-4A38-9C11-3C1D2E0F0A11}"/><w:text/></w:sdtPr><w:sdtContent>'
    '<w:r><w:t>评价组</w:t></w:r></w:sdtContent></w:sdt></w:p>'
    # a drop-down list: the choices not taken are names too; a repeating section's binding (w15)
    '<w:sdt><w:sdtPr><w:tag w:val="reviewer"/><w:dropDownList w:lastValue="1"><w:listItem w:displayText="（略）" '
    'w:value="1"/><w:listItem w:displayText="刘芳 13700001111" w:value="2"/></w:dropDownList>'
    '<w15:dataBinding xmlns:w15="http://schemas.microsoft.com/office/word/2012/wordml" w:xpath="/root/刘芳" '
    'w:storeItemID="{1}"/></w:sdtPr><w:sdtContent><w:p><w:r><w:t>（略）</w:t></w:r></w:p></w:sdtContent></w:sdt>')


def test_content_controls_keep_their_text_without_tags_titles_placeholders_or_bindings(world, client):
    """A template's or an OA system's content controls carry a title (w:alias, shown only while editing), a tag, the
    building block of their placeholder, the XPath binding them to a custom XML part, the choices of a drop-down:
    names and accounts no page shows. The controls stay, holding the text they show."""
    data = _with_body(CONTROLS)
    public = _public_copy(world, client, "公开版.docx", data)
    for needle in ("王建国", "刘芳", "zhangwei_bzczj", "13700001111", "oa.bzczj"):
        assert _parts_holding(public, needle) == [], needle
    assert _shown(public) == _shown(data)
    root = _xml(public)
    properties = list(root.iter(f"{{{W}}}sdtPr"))
    assert len(properties) == 2 and len(list(root.iter(f"{{{W}}}sdtContent"))) == 2
    assert [p.tag.split("}")[1] for p in properties[0]] == ["id", "text"]
    assert [p.tag.split("}")[1] for p in properties[1]] == ["dropDownList"]


def test_custom_xml_parts_are_emptied_whatever_their_name():
    """Word names its custom XML parts customXml/itemN.xml; a part is one by its relationship's type whatever its name
    (and OPC names ignore case): customXml/Item2.xml, or one filed elsewhere, held the OA system's fields as they
    were. The item's properties (an id, the schemas) stay."""
    fields = ('<?xml version="1.0" encoding="UTF-8"?><ns0:root xmlns:ns0="http://oa.example/form" xmlns:z="urn:'
              'zhangwei-private"><拟稿人>王建国 13899990000</拟稿人></ns0:root>').encode()

    def edit(name: str, content: bytes) -> bytes:
        if name == "word/_rels/document.xml.rels":
            return content.replace(b"</Relationships>", b''.join(
                b'<Relationship Id="rIdC%d" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
                b'customXml" Target="%s"/>' % (n, target) for n, target in ((1, b"../customXml/Item2.xml"),
                                                                            (2, b"data/oa.xml"))) + b"</Relationships>")
        return content
    data = _repack(_docx(factories.report_text()), edit=edit, add={
        "customXml/Item2.xml": fields, "word/data/oa.xml": fields, "customXml/form.xml": fields})
    public = scrub.scrubbed("docx", data)
    assert _parts_holding(public, "王建国") == [] and _parts_holding(public, "zhangwei") == []
    with zipfile.ZipFile(io.BytesIO(public)) as package:
        for part in ("customXml/Item2.xml", "word/data/oa.xml", "customXml/form.xml"):
            assert package.read(part).endswith(b'<ns0:root xmlns:ns0="http://oa.example/form"/>'), part
        assert b"itemID" in package.read("customXml/itemProps1.xml")


# --- screen tips ---------------------------------------------------------------------------------------------------

TIPS = (
    '<w:p><w:hyperlink r:id="rIdW" w:tooltip="王建国整理，勿外传" w:history="1"><w:r><w:t>中国政府采购网</w:t></w:r>'
    '</w:hyperlink>' + _field(' HYPERLINK "https://www.ccgp.gov.cn/" \\o "刘芳 13700001111" \\t "_blank" ', "采购网")
    + '<w:fldSimple w:instr=" HYPERLINK &quot;https://www.mof.gov.cn/&quot; \\o &quot;赵敏 \\&quot;经办\\&quot;&quot; ">'
      '<w:r><w:t>财政部</w:t></w:r></w:fldSimple>'
    + '<w:r><w:drawing><wp:inline><wp:docPr id="1" name="图片 1"><a:hlinkClick xmlns:a="http://schemas.openxmlformats'
      '.org/drawingml/2006/main" r:id="rIdW" tooltip="孙磊的照片"/></wp:docPr></wp:inline></w:drawing></w:r></w:p>')


def test_a_links_screen_tip_goes_and_the_link_stays(world, client):
    """A screen tip (屏幕提示) shows only under the mouse: w:hyperlink/@w:tooltip, HYPERLINK's \\o switch (an escaped
    quote in it too), a picture link's tooltip. The links stay live, to the same place."""
    def edit(name: str, content: bytes) -> bytes:
        if name == "word/_rels/document.xml.rels":
            return content.replace(b"</Relationships>", b'<Relationship Id="rIdW" Type="http://schemas.openxmlformats.'
                                   b'org/officeDocument/2006/relationships/hyperlink" Target="https://www.ccgp.gov.cn/"'
                                   b' TargetMode="External"/></Relationships>')
        return content
    data = _repack(_with_body(TIPS), edit=edit)
    public = _public_copy(world, client, "公开版.docx", data)
    for needle in ("王建国", "刘芳", "13700001111", "赵敏", "经办", "孙磊", "tooltip", "\\o"):
        assert _parts_holding(public, needle) == [], needle
    assert _shown(public) == _shown(data)
    root = _xml(public)
    assert [i.split() for i in _instructions(root)] == [
        ["HYPERLINK", '"https://www.ccgp.gov.cn/"', "\\t", '"_blank"'], ["HYPERLINK", '"https://www.mof.gov.cn/"']]
    link = next(root.iter(f"{{{W}}}hyperlink"))
    assert link.get("{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id") == "rIdW"


@pytest.mark.parametrize("piece", [
    '<w:bookmarkStart w:id="1" w:name="', '<w:hyperlink w:tooltip="x', '<w:sdtPr><w:tag w:val="x"/><w:alias>',
    '<w:sdtPr><w:placeholder>', "<w:sdtPr>", '<w:fldSimple w:instr=" REF a ">',
    '<w:hyperlink w:anchor="x" w:anchor="y" w:tooltip="z">',
])
def test_names_built_to_be_slow_are_scanned_once(piece):
    """40,000 bookmarks, links and controls opened and never closed (or broken) are still one pass."""
    scanned_once(piece)


@pytest.mark.parametrize("instruction", [
    ' HYPERLINK "https://www.ccgp.gov.cn/" ' + '\\o "王建国" ' * 40_000, ' HYPERLINK ' + '\\l "王建国" ' * 40_000,
    " = " + "王建国+" * 40_000 + "1 ", " = " + "王建国" * 100_000, " REF " + "王建国" * 100_000,
    ' TOC \\o "1-3" ' + "\\b " * 40_000,
])
def test_live_instructions_built_to_be_slow_are_read_once(instruction):
    """One live field whose instruction is 40,000 screen tips or names long: read once, and nothing of it left."""
    copy = scrubbed_within(_with_body("<w:p>" + _field(instruction, "x") + "</w:p>"), "the instruction")
    assert _parts_holding(copy, "王建国") == []


# --- PDF: signatures, form field names ----------------------------------------------------------------------------

def _pdf_parts():
    from tests.test_scrub_unseen_parts import _name, _opened, _text_pdf, _written

    return _name, _opened, _text_pdf, _written


def _signed_pdf() -> bytes:
    """A page showing "Public text" and a signature field (its widget showing a seal), signed: the signature dictionary
    names the signer, the certificate in /Contents too; the catalog's DocMDP permission points at it."""
    from pypdf.generic import (ArrayObject, ByteStringObject, DecodedStreamObject, DictionaryObject, FloatObject,
                               NumberObject, TextStringObject)

    _name, _opened, _text_pdf, _written = _pdf_parts()
    writer, page = _text_pdf()
    seal = DecodedStreamObject()
    seal.set_data(b"q 1 0 0 rg 0 0 80 30 re f Q")
    seal.update({_name("/Type"): _name("/XObject"), _name("/Subtype"): _name("/Form"),
                 _name("/BBox"): ArrayObject([FloatObject(0), FloatObject(0), FloatObject(80), FloatObject(30)])})
    signature = writer._add_object(DictionaryObject({
        _name("/Type"): _name("/Sig"), _name("/Filter"): _name("/Adobe.PPKLite"),
        _name("/SubFilter"): _name("/adbe.pkcs7.detached"), _name("/Name"): TextStringObject("王建国"),
        _name("/Reason"): TextStringObject("刘芳审核同意"), _name("/Location"): TextStringObject("巴州财政局三楼"),
        _name("/ContactInfo"): TextStringObject("13899990000"),
        _name("/M"): TextStringObject("D:20250601100000+08'00'"),
        _name("/Contents"): ByteStringObject(b"0\x82 CN=zhangwei_bzczj, E=zhangwei@bzczj.example" + b"\0" * 64),
        _name("/ByteRange"): ArrayObject([NumberObject(0), NumberObject(10), NumberObject(20), NumberObject(30)])}))
    field = writer._add_object(DictionaryObject({
        _name("/Type"): _name("/Annot"), _name("/Subtype"): _name("/Widget"), _name("/FT"): _name("/Sig"),
        _name("/T"): TextStringObject("王建国签名"), _name("/TU"): TextStringObject("请王建国在此签名"),
        _name("/V"): signature, _name("/Lock"): DictionaryObject({_name("/Action"): _name("/All")}),
        _name("/SV"): DictionaryObject({_name("/Reasons"): ArrayObject([TextStringObject("刘芳审核同意")])}),
        _name("/Rect"): ArrayObject([FloatObject(200), FloatObject(20), FloatObject(280), FloatObject(50)]),
        _name("/AP"): DictionaryObject({_name("/N"): writer._add_object(seal)})}))
    page[_name("/Annots")] = ArrayObject([field])
    writer.root_object[_name("/AcroForm")] = writer._add_object(DictionaryObject({
        _name("/Fields"): ArrayObject([field]), _name("/SigFlags"): NumberObject(3)}))
    writer.root_object[_name("/Perms")] = DictionaryObject({_name("/DocMDP"): signature})
    return _written(writer)


def test_a_signed_pdfs_signature_goes_and_its_field_stays_unsigned(world, client):
    """A digital signature names the signer (/Name, /Reason, /Location, /ContactInfo, the certificate in /Contents);
    and the public copy, written anew, would show it as broken (签名无效) anyway. The signature goes; the field and the
    seal its widget shows stay, unsigned."""
    from tests.test_scrub_hidden_content import _pdf_holds

    _name, _opened, _text_pdf, _written = _pdf_parts()
    data = _signed_pdf()
    needles = ("王建国", "刘芳", "巴州财政局", "13899990000", "zhangwei")
    assert all(_pdf_holds(data, n) or n.encode() in data for n in needles)
    public = _public_copy(world, client, "公开版.pdf", data)
    assert not [n for n in needles if _pdf_holds(public, n) or n.encode() in public]
    reader = _opened(public)
    root = reader.trailer["/Root"]
    assert "/Perms" not in root and "/SigFlags" not in root["/AcroForm"]
    field = reader.pages[0]["/Annots"][0].get_object()
    assert field["/FT"] == "/Sig" and "/V" not in field and "/Lock" not in field and "/SV" not in field
    assert field["/T"] == "f1" and "/TU" not in field
    assert field["/AP"]["/N"].get_object().get_data() == b"q 1 0 0 rg 0 0 80 30 re f Q"


def _named_form() -> bytes:
    """An empty form: a parent field with two kids (widgets), each named after a person, with a tooltip."""
    from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, TextStringObject

    _name, _opened, _text_pdf, _written = _pdf_parts()
    writer, page = _text_pdf()
    parent = writer._add_object(DictionaryObject({
        _name("/FT"): _name("/Tx"), _name("/T"): TextStringObject("访谈对象_王建国"),
        _name("/TU"): TextStringObject("填写刘芳提供的电话"), _name("/TM"): TextStringObject("zhangwei_export")}))
    kids = []
    for at, (name, tip) in enumerate((("手机", "王建国的手机"), ("座机", "刘芳的座机"))):
        kids.append(writer._add_object(DictionaryObject({
            _name("/Type"): _name("/Annot"), _name("/Subtype"): _name("/Widget"), _name("/Parent"): parent,
            _name("/T"): TextStringObject(name), _name("/TU"): TextStringObject(tip),
            _name("/Rect"): ArrayObject([FloatObject(10), FloatObject(10 + 30 * at), FloatObject(120),
                                         FloatObject(30 + 30 * at)])})))
    parent.get_object()[_name("/Kids")] = ArrayObject(kids)
    page[_name("/Annots")] = ArrayObject(kids)
    writer.root_object[_name("/AcroForm")] = writer._add_object(DictionaryObject({
        _name("/Fields"): ArrayObject([parent])}))
    return _written(writer)


def test_an_empty_forms_field_names_and_tooltips_are_renamed_and_go(world, client):
    """Nobody filled the form in, but its fields are named after people (/T), with the tooltips a reader shows over
    them (/TU) and export names (/TM). Each field is renamed f1, f2, … (unique: their full names too), the others go;
    the fields and their widgets stay."""
    from tests.test_scrub_hidden_content import _pdf_holds

    _name, _opened, _text_pdf, _written = _pdf_parts()
    data = _named_form()
    public = _public_copy(world, client, "公开版.pdf", data)
    assert not [n for n in ("王建国", "刘芳", "zhangwei", "手机", "座机") if _pdf_holds(public, n)]
    reader = _opened(public)
    fields = reader.get_fields()
    assert sorted(fields) == ["f1", "f1.f2", "f1.f3"], sorted(fields)
    widgets = [a.get_object() for a in reader.pages[0]["/Annots"]]
    assert [w["/Parent"]["/T"] for w in widgets] == ["f1", "f1"] and not [w for w in widgets if "/TU" in w]


@pytest.mark.parametrize("value", ["indirect", "list box"])
def test_form_values_written_otherwise_are_refused_too(value):
    """A value written as an object of its own, or a list box's selections (an array of texts): values as well."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, NameObject, TextStringObject
    from tests.test_scrub_unseen_parts import _form_pdf

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_form_pdf(None))))
    field = writer.root_object["/AcroForm"]["/Fields"][0].get_object()
    field[NameObject("/V")] = (writer._add_object(TextStringObject("王建国 13899990000")) if value == "indirect"
                               else ArrayObject([TextStringObject("王建国"), TextStringObject("刘芳")]))
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ValidationFailed, match="拼合表单"):
        scrub.scrubbed("pdf", buffer.getvalue())


def test_a_pdf_pypdf_cannot_decode_is_refused_in_chinese_not_a_server_error(world, client, login):
    """A form XObject behind a filter pypdf does not implement (/Crypt with a name) raised NotImplementedError out of
    the scrubber: a 500 on the publish form. It is the structure message now (422), nothing stored."""
    from pypdf.generic import DictionaryObject, StreamObject
    from tests.test_scrub_hidden_content import _refused

    _name, _opened, _text_pdf, _written = _pdf_parts()
    writer, page = _text_pdf()
    form = StreamObject()
    form._data = b"q Q"
    crypt = DictionaryObject({_name("/Name"): _name("/Std")})
    form.update({_name("/Type"): _name("/XObject"), _name("/Subtype"): _name("/Form")})
    form.update({_name("/Filter"): _name("/Crypt"), _name("/DecodeParms"): crypt})
    page[_name("/Resources")][_name("/XObject")] = DictionaryObject({_name("/X0"): writer._add_object(form)})
    _refused(world, client, login, "公开版.pdf", _written(writer), "PDF 文件结构异常")


# --- PDF: accessibility text (/Alt, /ActualText) ------------------------------------------------------------------

def _utf16(text: str) -> bytes:
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def _tagged_pdf() -> bytes:
    """A tagged page: "Public text", then a black box over where a name was, its marked content's /ActualText holding
    the name; a figure whose /Alt describes what it shows; a span's /E and a title (/T) on the structure; a property
    list in the resources (/Properties) with an /ActualText, used by name."""
    from pypdf.generic import ArrayObject, DictionaryObject, NumberObject, TextStringObject

    _name, _opened, _text_pdf, _written = _pdf_parts()
    writer, page = _text_pdf(
        b"/Span <</MCID 0 /ActualText " + _utf16("王建国") + b" /E (Wang Jianguo)>> BDC q 0 g 20 100 60 14 re f Q EMC "
        b"/Figure <</MCID 1 /Alt " + _utf16("刘芳的签名") + b">> BDC q 0.5 g 20 60 40 20 re f Q EMC "
        b"/Span /MC0 BDC EMC /Note <</ActualText (zhangwei)>> DP")
    page[_name("/Resources")][_name("/Properties")] = DictionaryObject({_name("/MC0"): DictionaryObject({
        _name("/ActualText"): TextStringObject("赵敏 13700001111")})})
    root = writer._add_object(DictionaryObject({_name("/Type"): _name("/StructTreeRoot")}))
    span = writer._add_object(DictionaryObject({
        _name("/Type"): _name("/StructElem"), _name("/S"): _name("/Span"), _name("/P"): root, _name("/Pg"): page
        .indirect_reference, _name("/K"): NumberObject(0), _name("/ActualText"): TextStringObject("王建国"),
        _name("/E"): TextStringObject("王建国 (Wang Jianguo)"), _name("/T"): TextStringObject("刘芳删改处")}))
    figure = writer._add_object(DictionaryObject({
        _name("/S"): _name("/Figure"), _name("/P"): root, _name("/Pg"): page.indirect_reference,
        _name("/K"): NumberObject(1), _name("/Alt"): TextStringObject("刘芳的签名 13700001111")}))
    root.get_object()[_name("/K")] = ArrayObject([span, figure])
    writer.root_object[_name("/StructTreeRoot")] = root
    writer.root_object[_name("/MarkInfo")] = DictionaryObject({_name("/Marked"): _name("/true")})
    return _written(writer)


def test_a_pdfs_accessibility_text_goes_and_its_structure_stays(world, client):
    """/ActualText over a black box may hold the very name the box covers, a figure's /Alt what a photo shows (Office
    writes one for every picture, reading the text in it): on the structure and in the page's marked content, written
    in place or in the resources. They go; the structure, the marked content and the page's text stay."""
    from pypdf.generic import ContentStream
    from tests.test_scrub_hidden_content import _pdf_holds

    _name, _opened, _text_pdf, _written = _pdf_parts()
    data = _tagged_pdf()
    needles = ("王建国", "刘芳", "赵敏", "Wang Jianguo", "zhangwei")
    assert all(_pdf_holds(data, n) for n in needles)
    public = _public_copy(world, client, "公开版.pdf", data)
    assert not [n for n in needles if _pdf_holds(public, n)]
    assert b"/ActualText" not in public and b"/Alt" not in public
    reader = _opened(public)
    assert reader.pages[0].extract_text().strip() == "Public text"
    structure = reader.trailer["/Root"]["/StructTreeRoot"]
    assert [e.get_object()["/S"] for e in structure["/K"]] == ["/Span", "/Figure"]
    operations = ContentStream(reader.pages[0].get_contents(), reader).operations
    marked = [(operator, operands[1]) for operands, operator in operations if operator in (b"BDC", b"DP")]
    assert [(operator, dict(properties) if isinstance(properties, dict) else properties)
            for operator, properties in marked] == [(b"BDC", {"/MCID": 0}), (b"BDC", {"/MCID": 1}), (b"BDC", "/MC0"),
                                                    (b"DP", {})]


# --- PDF: a JPEG behind other filters -----------------------------------------------------------------------------

def _encoded(jpeg: bytes, chain: tuple[str, ...]) -> bytes:
    """``jpeg`` written through ``chain`` (the filters a reader undoes, in its order; DCT last)."""
    import base64
    import zlib

    data = jpeg
    for name in reversed(chain[:-1]):
        if name in ("/Fl", "/FlateDecode"):
            data = zlib.compress(data)
        elif name in ("/AHx", "/ASCIIHexDecode"):
            data = data.hex().encode() + b">"
        elif name in ("/A85", "/ASCII85Decode"):
            data = base64.a85encode(data) + b"~>"
    return data


def _undone(data: bytes, filters: list) -> bytes:
    """An inline JPEG's data with its filters but DCT undone (a reader's view of the JPEG file)."""
    import base64
    import zlib

    for name in filters[:-1]:
        if name in ("/Fl", "/FlateDecode"):
            data = zlib.decompress(data)
        elif name in ("/AHx", "/ASCIIHexDecode"):
            data = bytes.fromhex(data.rstrip(b">").decode())
        elif name in ("/A85", "/ASCII85Decode"):
            data = base64.a85decode(data.rstrip().removesuffix(b"~>"))
    return data


def _inline_photos(public: bytes) -> list[tuple[list, bytes]]:
    """The inline images of the PDF's page: their filters and their data."""
    from pypdf import PdfReader
    from pypdf.generic import ContentStream

    reader = PdfReader(io.BytesIO(public))
    operations = ContentStream(reader.pages[0].get_contents(), reader).operations
    found = []
    for operands, operator in operations:
        if operator == b"INLINE IMAGE":
            settings = operands["settings"]
            filters = settings.get("/F", settings.get("/Filter"))
            found.append((list(filters) if isinstance(filters, list) else [filters], operands["data"]))
    return found


@pytest.mark.parametrize("chain", [("/Fl", "/DCT"), ("/AHx", "/DCT"), ("/A85", "/Fl", "/DCT"),
                                   ("/FlateDecode", "/DCTDecode")])
def test_a_pdfs_inline_jpeg_behind_other_filters_loses_its_exif(world, client, chain):
    """An inline JPEG compressed again or ASCII-encoded ([/Fl /DCT]) holds the same EXIF; the public copy writes the
    JPEG without it, as the JPEG it is (/DCT alone), its pixels as they were."""
    from tests.test_scrub_hidden_content import JPEG

    _name, _opened, _text_pdf, _written = _pdf_parts()
    key = "/Filter" if chain[0].endswith("Decode") else "/F"
    inline = (f"q 16 0 0 8 100 20 cm BI /W 1 /H 1 /CS /RGB /BPC 8 {key} [{' '.join(chain)}] ID ".encode()
              + _encoded(JPEG, chain) + b" EI Q")
    writer, _page = _text_pdf(inline)
    data = _written(writer)
    [(filters, encoded)] = _inline_photos(data)
    assert b"zhangwei" not in encoded and b"zhangwei" in _undone(encoded, filters)  # behind the filters
    public = _public_copy(world, client, "公开版.pdf", data)
    [(filters, photo)] = _inline_photos(public)
    assert b"zhangwei" not in _undone(photo, filters) and b"Exif" not in _undone(photo, filters)
    assert filters == ["/DCT"] and photo.startswith(b"\xff\xd8\xff\xe0") and photo.endswith(JPEG[-12:])
    assert _opened(public).pages[0].extract_text().strip() == "Public text"


def test_a_pdfs_jpeg_image_behind_other_filters_loses_its_exif():
    """The same for an image object ([/FlateDecode /DCTDecode]): written as the JPEG it is, pixels as they were."""
    import zlib

    from PIL import Image
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, NameObject
    from tests.test_scrub_hidden_content import _pdf_with_photo

    data, jpeg = _pdf_with_photo()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    image = writer.pages[0]["/Resources"]["/XObject"]["/Im0"].get_object()
    image._data = zlib.compress(jpeg)
    image[NameObject("/Filter")] = ArrayObject([NameObject("/FlateDecode"), NameObject("/DCTDecode")])
    buffer = io.BytesIO()
    writer.write(buffer)
    public = scrub.scrubbed("pdf", buffer.getvalue())
    image = PdfReader(io.BytesIO(public), strict=True).pages[0]["/Resources"]["/XObject"]["/Im0"].get_object()
    assert b"zhangwei" not in image.get_data() and b"Exif" not in image.get_data()  # the JPEG file a reader gets
    assert image["/Filter"] == "/DCTDecode" and image._data.endswith(jpeg[-200:])
    photo = Image.open(io.BytesIO(image._data))
    photo.load()
    assert photo.size == (16, 8) and not photo.getexif()


@pytest.mark.parametrize("inline", [
    b"BI /W 1 /H 1 /CS /G /BPC 8 /F [/Fl /DCT] ID not deflate data EI",
    b"BI /W 1 /H 1 /CS /G /BPC 8 /F [/CCF /DCT] ID \xff\xd8\xff\xe1 EI",
])
def test_a_pdfs_jpeg_behind_filters_not_undone_is_refused_in_chinese(world, client, login, inline):
    """A JPEG whose other filters cannot be undone (broken data, a filter a JPEG is never written through) could keep
    its EXIF: refused (422, in Chinese), nothing stored."""
    from tests.test_scrub_hidden_content import _refused

    _name, _opened, _text_pdf, _written = _pdf_parts()
    writer, _page = _text_pdf(b"q 16 0 0 8 100 20 cm " + inline + b" Q")
    _refused(world, client, login, "公开版.pdf", _written(writer), "拍摄信息")


# --- a drawing's names --------------------------------------------------------------------------------------------

def _with_photo() -> bytes:
    """A report with a photo as Word 2007/2010 saved one: its file's path as the description, the file's name as the
    picture's name; a second picture with alt text the author wrote."""
    import docx
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(picture, format="PNG")
    document = docx.Document()
    document.add_paragraph("现场照片如下。")
    for _ in range(2):
        picture.seek(0)
        document.add_picture(picture)
    out = io.BytesIO()
    document.save(out)
    photos = iter([
        ('<wp:docPr id="7" name="IMG_20240312_王建国.jpg" '
         'descr="C:\\Users\\wangjg\\Desktop\\现场照片\\IMG_20240312_王建国.jpg"/>',
         "<pic:cNvPr id='0' name='现场照片_王建国.png'/>"),
        ('<wp:docPr id="8" name="Picture 8" descr="泵站改造后的出水口（2024 年 3 月）" title="泵站 2024/03"/>',
         '<pic:cNvPr id="0" name="Picture 8"/>')])

    def edit(name: str, content: bytes) -> bytes:
        if name != "word/document.xml":
            return content

        def crafted(_found) -> str:
            doc_pr, c_nv_pr = next(photos)
            return doc_pr + _found.group(1) + c_nv_pr

        return re.sub(r'<wp:docPr [^>]*/>(.*?)<pic:cNvPr [^>]*/>', crafted, content.decode(), flags=re.S).encode()

    return _repack(out.getvalue(), edit=edit)


def test_a_pictures_file_name_and_path_go_and_the_alt_text_the_author_wrote_stays(world, client):
    data = _with_photo()
    assert "王建国" in _xml(data).xpath("string(//*[local-name()='docPr'][1]/@descr)")
    public = _public_copy(world, client, "报告.docx", data)
    assert _parts_holding(public, "王建国") == [] and _parts_holding(public, "wangjg") == []
    root = _xml(public)
    drawn = root.xpath("//*[local-name()='docPr']")
    assert [(d.get("id"), d.get("name"), d.get("descr"), d.get("title")) for d in drawn] == [
        ("7", "Picture 7", None, None), ("8", "Picture 8", "泵站改造后的出水口（2024 年 3 月）", "泵站 2024/03")]
    assert [p.get("name") for p in root.xpath("//*[local-name()='cNvPr']")] == ["Picture 0", "Picture 8"]
    assert _shown(public) == _shown(data)
