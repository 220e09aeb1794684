"""What a public copy still carried of the names an author gives where no page shows them (core/scrub.py): .docx
bookmark names, content controls' tags, titles, placeholders and data bindings, links' screen tips; a PDF's
signature, its form fields' names, its accessibility text (/Alt, /ActualText); a PDF's inline JPEG written through a
filter chain kept its EXIF. Each crafted file here went public with the name in it before the scrubber learned it;
the text the page shows stays the same."""
from __future__ import annotations

import io
import zipfile

from evalhub.core import scrub
from tests import factories
from tests.test_audit_leaks2 import _docx, _parts_holding, _repack


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
