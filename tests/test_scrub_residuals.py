"""The last places a public copy still named people (core/scrub.py): a .docx's range permissions (the editor's
account), smart tags and inline custom XML (their properties: a person's name, an address, an OA system's fields).
Each crafted file here went public with the name in it before the scrubber learned it; the text the page shows
stays the same."""
from __future__ import annotations

import io
import zipfile

import pytest

from evalhub.core import scrub
from tests import factories
from tests.test_audit_leaks2 import _docx, _parts_holding, _public_copy, _repack
from tests.test_scrub_hidden_content import _with_body
from tests.test_scrub_names_unseen import W, _shown, _xml
from tests.test_scrub_unseen_parts import scanned_once


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
