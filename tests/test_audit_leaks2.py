"""Audit of what leaks to whom after the day's changes (the redacted report's public copy, the public pages linking
draws, the responsible unit's view, the inspection answers). Each test states a rule and fails on the defect it
names: it passes once the leak is closed."""
from __future__ import annotations

import io
import re
import zipfile

from evalhub.extensions import db
from tests import factories


_docx = factories.docx_bytes


def _repack(data: bytes, *, add: dict[str, bytes] | None = None, edit=None) -> bytes:
    """The package ``data`` with parts added (``add``) and parts rewritten (``edit(name, content) -> content``)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            if edit is not None:
                content = edit(info.filename, content)
            target.writestr(info.filename, content)
        for name, content in (add or {}).items():
            target.writestr(name, content)
    return out.getvalue()


def _with_parts(relationship: tuple[str, str, str], overrides: dict[str, str], parts: dict[str, bytes]) -> bytes:
    """A generated report with ``parts`` added, the body's relationship to one of them (id, type under
    officeDocument/2006/relationships/, target) and their content types (part name → content type)."""
    rid, kind, target = relationship

    def edit(name: str, content: bytes) -> bytes:
        if name == "word/_rels/document.xml.rels":
            return content.replace(b"</Relationships>", f'<Relationship Id="{rid}" Type="http://schemas.openxml'
                                   f'formats.org/officeDocument/2006/relationships/{kind}" Target="{target}"/>'
                                   f'</Relationships>'.encode())
        if name == "[Content_Types].xml":
            return content.replace(b"</Types>", "".join(f'<Override PartName="{part}" ContentType="{content_type}"/>'
                                                        for part, content_type in overrides.items()).encode() + b"</Types>")
        return content
    return _repack(_docx(factories.report_text()), edit=edit, add=parts)


def _public_copy(world, client, filename: str, data: bytes) -> bytes:
    """Publish ``data`` as the engagement's redacted report and download what the public gets."""
    from evalhub.review import services as R

    e = factories.accepted(world)
    publication = R.publish(e, world.bz_admin, filename=filename, data=data)
    db.session.commit()
    response = client.get(f"/public/reports/{publication.id}/file")
    assert response.status_code == 200
    return response.data


def _parts_holding(data: bytes, needle: str) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        return [name for name in package.namelist() if needle.encode() in package.read(name)]


# --- the public copy of the redacted report ---------------------------------------------------------------

CUSTOM_XML = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<p:properties xmlns:p="http://schemas.microsoft.com/office/2006/metadata/properties">
<documentManagement><ReportAuthor>评价项目组 张伟 13899990000</ReportAuthor>
<Reviewer>巴州财政局绩效科 李娜</Reviewer></documentManagement></p:properties>""".encode()
CUSTOM_XML_PROPS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<ds:datastoreItem ds:itemID="{6B1C2A55-0C55-4A38-9C11-3C1D2E0F0A11}"
 xmlns:ds="http://schemas.openxmlformats.org/officeDocument/2006/customXml"><ds:schemaRefs/></ds:datastoreItem>""".encode()
CUSTOM_XML_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/customXmlProps"
 Target="itemProps7.xml"/></Relationships>""".encode()


def test_the_public_copy_of_a_report_keeps_no_names_in_its_custom_xml_data(world, client):
    """DOMAIN §2 step 6 / seed 000: the public reads the report "脱密后"; core/scrub.py promises the public "a copy
    without the metadata that names people" (its docstring: what "a clerk who blacked out the names in the text does
    not see"). A .docx saved from a document library (SharePoint/OA 公文系统) carries its library columns — author,
    reviewer — in a custom XML data part (customXml/item<N>.xml, bound to the document, shown in Word only under
    文件 › 信息 › 属性). ``scrub._docx`` cleans docProps/core, app and custom and the author attributes under word/,
    and copies every other part byte for byte: the anonymous visitor downloading /public/reports/<id>/file reads the
    evaluator's name and mobile number and the bureau clerk's name. Expected: no part of the public copy names them."""
    data = _with_parts(("rIdCx1", "customXml", "../customXml/item7.xml"), {
        "/customXml/itemProps7.xml": "application/vnd.openxmlformats-officedocument.customXmlProperties+xml"}, {
        "customXml/item7.xml": CUSTOM_XML, "customXml/itemProps7.xml": CUSTOM_XML_PROPS,
        "customXml/_rels/item7.xml.rels": CUSTOM_XML_RELS})
    public = _public_copy(world, client, "公开版.docx", data)
    leaked = {needle: _parts_holding(public, needle) for needle in ("张伟", "13899990000", "李娜")}
    leaked = {k: v for k, v in leaked.items() if v}
    assert not leaked, f"the public redacted report still names people in parts the scrubber copies as is: {leaked}"


def test_the_public_copy_of_a_report_does_not_name_the_clerk_through_its_template_path(world, client):
    """Same rule (DOMAIN §2 step 6; core/scrub.py: the public copy is "without the metadata that names people";
    docProps/app.xml's Template is dropped for that reason, scrub._APP_DROPPED). Word records the template a
    document was made from with its full path — file:///C:\\Users\\<Windows user>\\…\\Templates\\<name>.dotm — in
    word/_rels/settings.xml.rels (w:attachedTemplate). That part is neither a docProps part nor a word/*.xml part, so
    ``scrub._docx`` copies it unchanged: the public copy names the clerk's Windows account (zhangwei_bzczj) and the
    firm's template. Expected: the public copy carries no such path."""
    template = (r"file:///C:\Users\zhangwei_bzczj\AppData\Roaming\Microsoft\Templates"
                "\\天山绩效评价咨询有限公司报告模板.dotm")
    settings_rels = ("""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate"
 Target="%s" TargetMode="External"/></Relationships>""" % template).encode()

    def attach(name: str, content: bytes) -> bytes:
        if name == "word/settings.xml":
            content = re.sub(rb"(<w:settings\b[^>]*>)", rb'\1<w:attachedTemplate r:id="rId1"/>', content, count=1)
            if b"xmlns:r=" not in content[:2000]:
                content = content.replace(b"<w:settings ", b'<w:settings xmlns:r="http://schemas.openxmlformats.org/'
                                          b'officeDocument/2006/relationships" ', 1)
        return content

    data = _repack(_docx(factories.report_text()), edit=attach, add={"word/_rels/settings.xml.rels": settings_rels})
    public = _public_copy(world, client, "公开版.docx", data)
    leaked = _parts_holding(public, "zhangwei_bzczj")
    assert not leaked, f"the public redacted report names the clerk's Windows account in {leaked}"


def test_the_public_copy_of_a_pdf_report_drops_the_files_embedded_in_it(world, client):
    """Same rule (DOMAIN §2 step 6: only the redacted report is published; core/scrub.py's public copy). A PDF may
    carry files of its own: LibreOffice's 混合 PDF (hybrid PDF) embeds the whole source document, and a clerk
    attaches the working file to a PDF without seeing it on any page. ``scrub._pdf`` clones the document and removes
    the information dictionary, XMP and annotation authors only: the /EmbeddedFiles name tree is copied, so the
    anonymous visitor downloads, inside the "redacted" PDF, the unredacted source naming the unit's head and his
    phone. Expected: the public copy has no embedded file (and does not hold the phone number)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.add_attachment("评价报告（未脱密原稿）.txt",
                          "被评价单位负责人 王建国，联系电话 13899990000；访谈对象 刘芳。".encode())
    buffer = io.BytesIO()
    writer.write(buffer)
    public = _public_copy(world, client, "公开版.pdf", buffer.getvalue())
    attachments = list(PdfReader(io.BytesIO(public)).attachments)
    assert not attachments, f"the public redacted PDF still carries embedded files: {attachments}"


# --- a unit responsible for one finding of another unit's engagement --------------------------------------

def test_a_responsible_unit_is_not_given_the_progress_of_another_units_engagement(client, login, auth, world):
    """results/permissions.py: a unit named responsible for a finding of an engagement evaluating another unit "reads
    and answers its own findings there, nothing else of the engagement"; the unit page accordingly shows such a unit
    neither 主评人 nor 当前进度 (templates/results/unit_engagement.html, ``{% if evaluated %}``), and the API's own
    schema says so (results/api.py UNIT_ENGAGEMENT.evaluated: "只见自己负责的问题（不含进度和主评人）"). Yet
    GET /api/v1/results/unit/engagements gives that unit the engagement's ``state`` (its 当前进度, e.g. 已公开 /
    已归档) and the unit home page (/results/unit, templates/results/unit_home.html) prints ``e.state.label`` in the
    进度 column for it. Expected: for an engagement the unit is only responsible in, no state in the API answer and
    none on the home page, as on the unit page."""
    from evalhub.results import services as S

    e = factories.accepted(world)  # evaluates 巴州统计局
    mzj = factories.unit_user(world, "巴州民政局", "mzj.progress")
    S.add_finding(e, world.firm_user, S.FindingInput(kind="问题", text="民政配套资金未按期拨付", category="过程",
                                                     indicator="资金到位率", responsible_unit_id=world.units["巴州民政局"].id))
    S.confirm_findings(e, world.bz_staff)
    db.session.commit()
    state_label = e.state.label

    rows = client.get("/api/v1/results/unit/engagements", headers=auth(mzj.username)).json
    row = next(r for r in rows if r["id"] == e.id)
    assert row["evaluated"] is False and row["lead_evaluator"] is None and row["timeline"] == []
    leaks = []
    if row.get("state"):
        leaks.append(f"API state={row['state']}")
    login(mzj)
    home = client.get("/results/unit").get_data(as_text=True)
    line = re.search(r'data-testid="open-%s".*?</tr>' % re.escape(e.reference), home, re.S).group(0)
    if f"<td>{state_label}</td>" in line:
        leaks.append(f"home page row shows {state_label}")
    assert not leaks, f"the responsible unit (巴州民政局) is given the 统计局 engagement's progress: {leaks}"
