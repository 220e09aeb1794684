"""What a redacted report carries unseen and the clerk must decide (core/scrub.py): text deleted with 修订 on,
comments, a PDF's redaction marks not yet applied are refused with what to do; sticky notes and comment texts of a
PDF, and photos' EXIF, do not reach the public copy (DOMAIN §2 step 6: only the redacted report is published)."""
from __future__ import annotations

import io
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
from tests.test_audit_leaks2 import _docx, _public_copy, _repack

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
