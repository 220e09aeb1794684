"""What a redacted report carries unseen and the clerk must decide (core/scrub.py): text deleted with 修订 on,
comments, a PDF's redaction marks not yet applied are refused with what to do; sticky notes and comment texts of a
PDF, and photos' EXIF, do not reach the public copy (DOMAIN §2 step 6: only the redacted report is published)."""
from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

import pytest
import sqlalchemy as sa

from evalhub.core import scrub
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import StoredFile
from evalhub.extensions import db
from evalhub.review.models import Publication
from tests import factories
from tests.test_audit_leaks2 import _docx, _parts_holding, _public_copy, _repack

DELETED = ('<w:p><w:r><w:t xml:space="preserve">访谈对象：</w:t></w:r><w:del w:id="91" w:author="张伟" '
           'w:date="2025-06-01T10:00:00Z"><w:r><w:delText>王建国 13899990000</w:delText></w:r></w:del></w:p>')
COMMENTS_PART = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:comments xmlns:w="http://schemas.'
                 'openxmlformats.org/wordprocessingml/2006/main"><w:comment w:id="0" w:author="李娜"><w:p><w:r>'
                 '<w:t>此处原为刘芳（评价对象负责人），公开前删去</w:t></w:r></w:p></w:comment></w:comments>').encode()


def _with_body(extra: str) -> bytes:
    def edit(name: str, content: bytes) -> bytes:
        return content.replace(b"</w:body>", extra.encode() + b"</w:body>", 1) if name == "word/document.xml" \
            else content
    return _repack(_docx(factories.report_text()), edit=edit)


def _refused(world, client, login, filename: str, data: bytes, expected: str) -> None:
    """The publish form answers 422 with ``expected`` beside the file, and stores nothing."""
    e = factories.accepted(world)
    db.session.commit()
    files_before = db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one()
    login(world.bz_admin)
    response = client.post(f"/engagements/{e.id}/result", data={
        "form": "publish", "file": (io.BytesIO(data), filename)}, content_type="multipart/form-data")
    assert response.status_code == 422, response.status_code
    assert expected in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(Publication.id))).scalar_one() == 0
    assert db.session.execute(sa.select(sa.func.count(StoredFile.id))).scalar_one() == files_before


def test_a_docx_with_text_deleted_under_track_changes_is_refused(world, client, login):
    """The clerk deleted the name with 修订 on: Word keeps 王建国 in w:delText, one click shows it again."""
    _refused(world, client, login, "公开版.docx", _with_body(DELETED), "接受所有修订")


def test_a_docx_with_comments_is_refused(world, client, login):
    data = _repack(_docx(factories.report_text()), add={"word/comments.xml": COMMENTS_PART})
    _refused(world, client, login, "公开版.docx", data, "删除文档中的所有批注")


def test_a_docx_with_content_imported_from_another_file_is_refused(world, client, login):
    """A w:altChunk part is a package or a web page of its own (a nested .docx keeps its own 作者 in its docProps):
    the scrubber does not open it, so the clerk lets Word turn it into body text first."""
    from tests.test_screening_inputs import _with_chunks

    data = _with_chunks([("text/html", "<html><body><p>访谈对象：王建国</p></body></html>".encode())])
    _refused(world, client, login, "公开版.docx", data, "另存为新的 .docx")


def test_a_docx_whose_revisions_are_accepted_is_published(world, client):
    inserted = ('<w:p><w:ins w:id="92" w:author="张伟" w:date="2025-06-01T10:00:00Z"><w:r><w:t>补充说明</w:t></w:r>'
                '</w:ins></w:p>')
    public = _public_copy(world, client, "公开版.docx", _with_body(inserted))
    with zipfile.ZipFile(io.BytesIO(public)) as package:
        body = package.read("word/document.xml")
    assert "补充说明".encode() in body and "张伟".encode() not in body


def _pdf_with_annotations(*annotations: dict) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, TextStringObject

    writer = PdfWriter()
    page = writer.add_blank_page(595, 842)
    refs = []
    for fields in annotations:
        annotation = DictionaryObject({NameObject("/Type"): NameObject("/Annot"),
                                       NameObject("/Rect"): ArrayObject([])})
        for key, value in fields.items():
            annotation[NameObject(key)] = NameObject(value) if value.startswith("/") else TextStringObject(value)
        refs.append(writer._add_object(annotation))
    page[NameObject("/Annots")] = ArrayObject(refs)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_a_pdf_with_redaction_marks_not_yet_applied_is_refused(world, client, login):
    data = _pdf_with_annotations({"/Subtype": "/Redact", "/Contents": "王建国"})
    _refused(world, client, login, "公开版.pdf", data, "应用密文")


def test_a_pdfs_sticky_notes_and_comment_texts_do_not_reach_the_public(world, client):
    from pypdf import PdfReader

    data = _pdf_with_annotations({"/Subtype": "/Text", "/Contents": "访谈对象王建国的电话 13899990000"},
                                 {"/Subtype": "/Highlight", "/Contents": "刘芳说的", "/T": "李娜"},
                                 {"/Subtype": "/FreeText", "/Contents": "（此处已删除）"})
    public = _public_copy(world, client, "公开版.pdf", data)
    annotations = [a.get_object() for a in PdfReader(io.BytesIO(public)).pages[0]["/Annots"]]
    assert [a["/Subtype"] for a in annotations] == ["/Highlight", "/FreeText"]
    assert "/Contents" not in annotations[0] and "/T" not in annotations[0]
    assert annotations[1]["/Contents"] == "（此处已删除）"  # shown on the page: what the clerk chose to show
    assert b"13899990000" not in public


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


PNG = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
       + _png_chunk(b"tEXt", b"Author\x00zhangwei") + _png_chunk(b"IDAT", zlib.compress(b"\x00\x00"))
       + _png_chunk(b"IEND", b""))
EXIF = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08 Canon EOS owner: zhangwei GPS 41.7N 86.1E"
JPEG = (b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xe1" + struct.pack(">H", len(EXIF) + 2) + EXIF
        + b"\xff\xfe" + struct.pack(">H", 10) + b"zhangwei"
        + b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x00\x3f\x00" + b"\x12\x34\xff\xd9")


def test_photos_in_a_docx_lose_their_exif_and_text_chunks_but_keep_their_pixels():
    data = _repack(_docx(factories.report_text()), add={"word/media/image1.jpeg": JPEG, "word/media/image2.png": PNG})
    with zipfile.ZipFile(io.BytesIO(scrub.scrubbed("docx", data))) as package:
        jpeg, png = package.read("word/media/image1.jpeg"), package.read("word/media/image2.png")
    assert b"zhangwei" not in jpeg and b"Exif" not in jpeg
    assert jpeg.startswith(b"\xff\xd8\xff\xe0") and jpeg.endswith(b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x124\xff\xd9")
    assert b"zhangwei" not in png and b"IDAT" in png and png.endswith(_png_chunk(b"IEND", b""))


@pytest.mark.parametrize("broken", [b"\xff\xd8\xff\xe1\x00", b"not an image at all", PNG[:20]])
def test_an_image_not_laid_out_as_expected_is_copied_as_it_is(broken):
    assert scrub._image("word/media/x.jpeg", broken) == broken
    assert scrub._image("word/media/x.png", broken) == broken


def test_the_service_refuses_the_same_on_every_path(world):
    from evalhub.review import services as R

    e = factories.accepted(world)
    with pytest.raises(ValidationFailed, match="接受所有修订"):
        R.publish(e, world.bz_admin, filename="公开版.docx", data=_with_body(DELETED))


# --- text formatted hidden (字体 › 隐藏): in the file, shown by one click ------------------------------------------

def _run(properties: str, text: str = "王建国 13899990000") -> str:
    return f'<w:p><w:r><w:t>访谈对象：</w:t></w:r><w:r><w:rPr>{properties}</w:rPr><w:t>{text}</w:t></w:r></w:p>'


def _with_style(style: str, body: str) -> bytes:
    """A .docx whose styles.xml holds ``style`` too, and whose body ends with ``body``."""
    def edit(name: str, content: bytes) -> bytes:
        if name == "word/styles.xml":
            return content.replace(b"</w:styles>", style.encode() + b"</w:styles>", 1)
        if name == "word/document.xml":
            return content.replace(b"</w:body>", body.encode() + b"</w:body>", 1)
        return content
    return _repack(_docx(factories.report_text()), edit=edit)


def test_a_docx_with_text_formatted_hidden_is_refused(world, client, login):
    """The clerk "hid" the name (字体 › 隐藏) instead of deleting it: Word keeps it, 显示隐藏文字 shows it again."""
    _refused(world, client, login, "公开版.docx", _with_body(_run("<w:vanish/>")), "隐藏文字")


@pytest.mark.parametrize("properties", [
    '<w:vanish w:val="1"/>', '<w:vanish w:val="true"/>', "<w:vanish w:val='on' />", "<w:vanish></w:vanish>",
    '<w:b/><w:vanish w:val="true"/><w:sz w:val="21"/>', "<w:specVanish/>",
])
def test_every_way_of_writing_hidden_is_refused(properties):
    with pytest.raises(ValidationFailed, match="隐藏文字"):
        scrub.scrubbed("docx", _with_body(_run(properties)))


def test_text_hidden_in_a_header_is_refused():
    data = _repack(_docx(factories.report_text()), add={"word/header1.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:hdr xmlns:w="http://schemas.openxmlformats.org/'
        'wordprocessingml/2006/main">' + _run("<w:vanish/>") + "</w:hdr>").encode()})
    with pytest.raises(ValidationFailed, match="隐藏文字"):
        scrub.scrubbed("docx", data)


HIDDEN_CHARACTER_STYLE = ('<w:style w:type="character" w:customStyle="1" w:styleId="a9"><w:name w:val="隐藏"/>'
                          '<w:rPr><w:vanish/></w:rPr></w:style>')


@pytest.mark.parametrize("style, body", [
    (HIDDEN_CHARACTER_STYLE, '<w:p><w:r><w:rPr><w:rStyle w:val="a9"/></w:rPr><w:t>王建国</w:t></w:r></w:p>'),
    # a paragraph style based on a hidden one hides its paragraphs' text
    ('<w:style w:type="paragraph" w:styleId="Hide"><w:name w:val="Hide"/><w:rPr><w:vanish w:val="1"/></w:rPr>'
     '</w:style><w:style w:type="paragraph" w:styleId="Note"><w:name w:val="Note"/><w:basedOn w:val="Hide"/>'
     '</w:style>', '<w:p><w:pPr><w:pStyle w:val="Note"/></w:pPr><w:r><w:t>王建国</w:t></w:r></w:p>'),
])
def test_text_hidden_by_its_style_is_refused(style, body):
    with pytest.raises(ValidationFailed, match="隐藏文字"):
        scrub.scrubbed("docx", _with_style(style, body))


def test_text_hidden_by_the_document_defaults_is_refused():
    def edit(name: str, content: bytes) -> bytes:
        if name == "word/styles.xml":
            return re.sub(rb"<w:rPrDefault>\s*<w:rPr>", rb"\g<0><w:vanish/>", content, count=1)
        return content
    data = _repack(_docx(factories.report_text()), edit=edit)
    assert b"<w:vanish/>" in zipfile.ZipFile(io.BytesIO(data)).read("word/styles.xml")
    with pytest.raises(ValidationFailed, match="隐藏文字"):
        scrub.scrubbed("docx", data)


@pytest.mark.parametrize("body", [
    # a TOC entry's page number as Word writes it: hidden in web layout only
    '<w:p><w:hyperlink w:anchor="_Toc1" w:history="1"><w:r><w:t>一、项目概况</w:t></w:r><w:r><w:rPr><w:noProof/>'
    '<w:webHidden/></w:rPr><w:tab/></w:r><w:r><w:rPr><w:webHidden/></w:rPr><w:fldChar w:fldCharType="begin"/></w:r>'
    '<w:r><w:rPr><w:webHidden/></w:rPr><w:instrText xml:space="preserve"> PAGEREF _Toc1 \\h </w:instrText></w:r>'
    '<w:r><w:rPr><w:webHidden/></w:rPr><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:rPr><w:webHidden/>'
    '</w:rPr><w:t>1</w:t></w:r><w:r><w:rPr><w:webHidden/></w:rPr><w:fldChar w:fldCharType="end"/></w:r>'
    '</w:hyperlink></w:p>',
    # hidden switched off, in each spelling
    _run('<w:vanish w:val="0"/>'), _run('<w:vanish w:val="false"/>'), _run("<w:vanish w:val='off'/>"),
    # Word's style separator: a hidden paragraph mark, no text hidden
    '<w:p><w:pPr><w:pStyle w:val="Heading1"/><w:rPr><w:vanish/><w:specVanish/></w:rPr></w:pPr><w:r><w:t>一、概况'
    '</w:t></w:r></w:p>',
    # hidden before a tracked formatting change, shown now
    '<w:p><w:r><w:rPr><w:b/><w:rPrChange w:id="5" w:author="张伟" w:date="2025-06-01T10:00:00Z"><w:rPr><w:vanish/>'
    '</w:rPr></w:rPrChange></w:rPr><w:t>补充说明</w:t></w:r></w:p>',
])
def test_what_word_writes_without_hiding_text_is_published(body):
    """Regression guard for the check above: no false refusal of ordinary Word files."""
    with zipfile.ZipFile(io.BytesIO(scrub.scrubbed("docx", _with_body(body)))) as package:
        assert body.replace('w:author="张伟"', 'w:author=""').encode() in package.read("word/document.xml")


def test_a_hidden_style_nobody_uses_is_published():
    """A template's hidden style that no text uses hides nothing (regression guard)."""
    scrub.scrubbed("docx", _with_style(HIDDEN_CHARACTER_STYLE, '<w:p><w:r><w:t>正文</w:t></w:r></w:p>'))


def test_the_extracted_text_holds_the_hidden_text_too():
    """core.extract reads every w:t, hidden or not: the screening of the upload sees what was hidden."""
    from evalhub.core import extract

    assert "王建国" in extract.docx_text(_with_body(_run("<w:vanish/>")))


# --- a PDF's photos and an application's private data ------------------------------------------------------------

def _pdf_with_photo() -> tuple[bytes, bytes]:
    """A one-page PDF showing a JPEG photo whose EXIF names the camera's owner and the place, with Illustrator's
    private data (/PieceInfo) on the document and the page and the photo's own XMP; and the JPEG."""
    from PIL import Image
    from pypdf import PdfWriter
    from pypdf.generic import (DecodedStreamObject, DictionaryObject, NameObject, NumberObject, StreamObject,
                               TextStringObject)

    exif = Image.Exif()
    exif[0x013B] = "zhangwei"  # Artist
    exif[0x010F] = "Canon owner zhangwei GPS 41.7N 86.1E"  # Make
    photo = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 30, 30)).save(photo, "JPEG", exif=exif.tobytes())
    jpeg = photo.getvalue()
    assert b"zhangwei" in jpeg

    def name(n: str) -> NameObject:
        return NameObject(n)

    writer = PdfWriter()
    page = writer.add_blank_page(160, 80)
    xmp = DecodedStreamObject()
    xmp.set_data(b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>zhangwei</dc:creator></x:xmpmeta>')
    xmp.update({name("/Type"): name("/Metadata"), name("/Subtype"): name("/XML")})
    image = StreamObject()
    image._data = jpeg
    image.update({name("/Type"): name("/XObject"), name("/Subtype"): name("/Image"), name("/Width"): NumberObject(16),
                  name("/Height"): NumberObject(8), name("/ColorSpace"): name("/DeviceRGB"),
                  name("/BitsPerComponent"): NumberObject(8), name("/Filter"): name("/DCTDecode"),
                  name("/Metadata"): writer._add_object(xmp)})
    page[name("/Resources")] = DictionaryObject({name("/XObject"): DictionaryObject(
        {name("/Im0"): writer._add_object(image)})})
    content = DecodedStreamObject()
    content.set_data(b"q 160 0 0 80 0 0 cm /Im0 Do Q")
    page[name("/Contents")] = writer._add_object(content)
    private = DictionaryObject({name("/Illustrator"): DictionaryObject(
        {name("/Private"): TextStringObject("C:\\Users\\zhangwei\\评价报告封面.ai")})})
    page[name("/PieceInfo")] = private
    writer.root_object[name("/PieceInfo")] = private.clone(writer)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue(), jpeg


def test_a_pdfs_photos_lose_their_exif_and_private_data_goes(world, client):
    from PIL import Image
    from pypdf import PdfReader

    data, jpeg = _pdf_with_photo()
    assert data.count(b"zhangwei") >= 3
    public = _public_copy(world, client, "公开版.pdf", data)
    assert b"zhangwei" not in public and b"Exif" not in public and b"/PieceInfo" not in public
    reader = PdfReader(io.BytesIO(public), strict=True)  # /Length as the stream is: read strictly
    assert "/PieceInfo" not in reader.trailer["/Root"] and "/PieceInfo" not in reader.pages[0]
    image = reader.pages[0]["/Resources"]["/XObject"]["/Im0"].get_object()
    assert "/Metadata" not in image
    assert image._data.startswith(b"\xff\xd8") and image._data.endswith(jpeg[-200:])  # the pixels as they were
    photo = Image.open(io.BytesIO(image._data))
    photo.load()
    assert photo.size == (16, 8) and not photo.getexif()
    assert reader.pages[0].images[0].image.size == (16, 8)


def _pdf_holds(data: bytes, text: str) -> bool:
    """Whether ``text`` is in any object the PDF's cross-reference table lists, referenced or not: in a string (any
    encoding pypdf reads) or in a stream's decoded data."""
    from pypdf import PdfReader
    from pypdf.generic import IndirectObject, StreamObject

    reader = PdfReader(io.BytesIO(data))
    for generation, objects in reader.xref.items():
        for number in objects:
            obj = reader.get_object(IndirectObject(number, generation, reader))
            if text in str(obj):
                return True
            if isinstance(obj, StreamObject):
                decoded = obj.get_data()
                if text.encode() in decoded or text.encode("utf-16-be") in decoded:
                    return True
    return False


def test_what_is_cut_from_a_pdf_is_not_left_in_the_file_unreferenced():
    """pypdf writes every object it holds: the information dictionary, the XMP, an attached file, a sticky note cut
    from the copy were still in its bytes (unreferenced, invisible in a reader, plain in a text editor)."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DecodedStreamObject, NameObject

    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.add_metadata({"/Author": "王建国"})
    xmp = DecodedStreamObject()
    xmp.set_data('<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>刘芳</dc:creator></x:xmpmeta>'.encode())
    writer.root_object[NameObject("/Metadata")] = writer._add_object(xmp)
    writer.add_attachment("原稿.txt", "被评价单位负责人 王建国，联系电话 13899990000".encode())
    buffer = io.BytesIO()
    writer.write(buffer)
    attached = _pdf_with_annotations({"/Subtype": "/Text", "/Contents": "访谈对象电话 13700001111"})
    for data, needles in ((buffer.getvalue(), ("王建国", "刘芳", "13899990000")), (attached, ("13700001111",))):
        assert all(_pdf_holds(data, needle) for needle in needles)
        public = scrub.scrubbed("pdf", data)
        assert not [needle for needle in needles if _pdf_holds(public, needle)]
        assert len(PdfReader(io.BytesIO(public), strict=True).pages) == 1


# --- files embedded in a .docx -------------------------------------------------------------------------------------

def _workbook(author: str) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["指标", "得分"])
    book.active.append(["资金到位率", 18])
    book.create_sheet("访谈名单").append(["王建国", "13899990000"])  # not shown by the chart or the object
    book.properties.creator = author
    book.properties.lastModifiedBy = author
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


CHART_RELS = b'''<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/package"
 Target="../embeddings/Microsoft_Excel_Worksheet.xlsx"/></Relationships>'''


def _chart_docx(workbook: bytes) -> bytes:
    return _repack(_docx(factories.report_text()), add={
        "word/charts/chart1.xml": b'<c:chartSpace xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart"/>',
        "word/charts/_rels/chart1.xml.rels": CHART_RELS,
        "word/embeddings/Microsoft_Excel_Worksheet.xlsx": workbook})


def _one_sheet(author: str, *, comment: bool = False) -> bytes:
    import openpyxl
    from openpyxl.comments import Comment

    book = openpyxl.Workbook()
    book.active.append(["指标", "得分"])
    book.active.append(["资金到位率", 18])
    if comment:
        book.active["B2"].comment = Comment("核对过 13899990000", "王建国")
    book.properties.creator = book.properties.lastModifiedBy = author
    buffer = io.BytesIO()
    book.save(buffer)
    return _repack(buffer.getvalue(), edit=lambda name, content: content.replace(
        b"</workbook>", b'<mc:AlternateContent xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
        b'<mc:Choice Requires="x15"><x15ac:absPath xmlns:x15ac="http://schemas.microsoft.com/office/spreadsheetml/2010/'
        b'11/ac" url="C:\\Users\\zhangwei\\Desktop\\"/></mc:Choice></mc:AlternateContent></workbook>', 1)
        if name == "xl/workbook.xml" else content)


def test_a_word_charts_workbook_is_kept_without_the_properties_naming_its_author():
    """Word keeps a chart's data as a workbook of its own (word/embeddings, named by the chart's relationships):
    charts are common in reports, so it stays — one sheet of the chart's figures — cleaned as a package of its own:
    its properties, and the folder it was last saved in (x15ac:absPath names the Windows account)."""
    import openpyxl

    with zipfile.ZipFile(io.BytesIO(scrub.scrubbed("docx", _chart_docx(_one_sheet("张伟"))))) as package:
        workbook = package.read("word/embeddings/Microsoft_Excel_Worksheet.xlsx")
    assert _parts_holding(workbook, "张伟") == [] and _parts_holding(workbook, "zhangwei") == []
    book = openpyxl.load_workbook(io.BytesIO(workbook))
    assert book.active["A2"].value == "资金到位率" and "张伟" not in (book.properties.creator, book.properties.lastModifiedBy)


@pytest.mark.parametrize("workbook", ["another sheet", "a comment"])
def test_a_charts_workbook_holding_more_than_the_charts_figures_is_refused(workbook):
    """A chart pasted from a working file brings the whole file: its other sheets (an interview list) and the
    comments with their authors would go public beside the chart, which shows none of them."""
    data = _chart_docx(_workbook("张伟") if workbook == "another sheet" else _one_sheet("张伟", comment=True))
    with pytest.raises(ValidationFailed, match="编辑数据"):
        scrub.scrubbed("docx", data)


def _with_embedding(name: str, content: bytes) -> bytes:
    return _repack(_docx(factories.report_text()), add={f"word/embeddings/{name}": content})


def test_a_docx_with_an_embedded_excel_object_is_refused(world, client, login):
    """An Excel object pasted into the report shows a range; the whole workbook (the interview list, the author)
    goes out with it."""
    _refused(world, client, login, "公开版.docx", _with_embedding("Microsoft_Excel_Worksheet1.xlsx",
                                                                 _workbook("张伟")), "选择性粘贴")


OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


@pytest.mark.parametrize("streams", [
    ["\x05SummaryInformation", "WordDocument"],  # a .doc inside
    ["\x01Ole10Native"],  # a packaged file (a PDF, a .txt): anything
])
def test_an_embedded_ole_file_is_refused(streams):
    content = OLE + b"".join(s.encode("utf-16-le").ljust(64, b"\x00") for s in streams)
    with pytest.raises(ValidationFailed, match="选择性粘贴"):
        scrub.scrubbed("docx", _with_embedding("oleObject1.bin", content))


def test_an_equation_object_is_kept():
    """Equation Editor and MathType equations are OLE objects too, without document properties (regression guard)."""
    content = OLE + "Equation Native".encode("utf-16-le").ljust(64, b"\x00")
    with zipfile.ZipFile(io.BytesIO(scrub.scrubbed("docx", _with_embedding("oleObject1.bin", content)))) as package:
        assert package.read("word/embeddings/oleObject1.bin") == content


# --- markup built to be slow --------------------------------------------------------------------------------------

HOSTILE_MARKUP = {  # part → what is repeated in it, left unclosed: each of the scrubber's patterns once scanned on
    "word/document.xml": ["<w:pPr>x", "<w:rPrChange>x", '<w:r w:author="x', "<w:vanish ", '<w:pStyle w:val="a',
                          "<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
    "word/styles.xml": ['<w:style w:styleId="s', "<w:rPrDefault>x", "<w:basedOn "],
    "word/_rels/document.xml.rels": ["<Relationship ", 'Type="x', 'Target="x'],
    "word/settings.xml": ["<w:docVars>x", "<w:mailMerge "],
}


@pytest.mark.parametrize("part,piece", [(part, piece) for part, pieces in HOSTILE_MARKUP.items() for piece in pieces])
def test_markup_left_unclosed_thousands_of_times_is_scanned_once(part, piece):
    """The upload is anyone's: the scrubber runs in the web worker, so its scans must be linear in the part's size
    whatever the bytes. A lazy ".*?" up to a closing tag (or a "[^>]*" up to a ">", a '[^"]*' up to a quote) rescans
    the rest of the part for every opening left unclosed: 8,000 unclosed <w:pPr> in a 37 KB upload held a worker
    4.6 s, and 40,000 would hold it two minutes. Each case here is 40,000 pieces (a few hundred KB unpacked); the
    scan gets 20 s, two orders of magnitude more than it needs."""
    data = _repack(_docx(factories.report_text()), edit=lambda name, content: content.replace(
        b"</", piece.encode() * 40_000 + b"</", 1) if name == part else content)
    scrubbed_within(data, f"{part} with {piece!r} × 40,000")


def scrubbed_within(data: bytes, what: str, seconds: float = 20):
    """The answer of scrubbing ``data`` (.docx): the copy, or the ValidationFailed refusing it (an answer too);
    fails the test if there is none within ``seconds``."""
    return answered_within(lambda: scrub.scrubbed("docx", data), f"scrubbing {what}", seconds)


def answered_within(run, what: str, seconds: float = 20):
    """``run()``'s answer, or the ValidationFailed it raised (refusing is an answer too); fails the test if there is
    none within ``seconds`` (the call runs in a thread left behind)."""
    import threading

    outcome: list = []

    def worker():
        try:
            outcome.append(run())
        except ValidationFailed as exc:
            outcome.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"{what} took more than {seconds} s"
    return outcome[0]
