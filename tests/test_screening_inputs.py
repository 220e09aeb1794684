"""What reaches the screener from real uploads and how it is read: an upload with too little text is not scored
(queue, card, export, API); .docx text in document order with text boxes and nested tables; a heading that joins
outline chapters; traditional characters; dates written with dots; target/actual table columns."""
from __future__ import annotations

import io

import pandas as pd
import pytest

from evalhub.core import extract
from evalhub.extensions import db
from evalhub.review.services import REPORT_CHAPTERS, find_chapters
from evalhub.screening import services as S
from evalhub.screening import textproc
from evalhub.screening.features import restated_targets
from evalhub.screening.models import RiskMethod
from tests.screening_support import report_text, upload_report

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


@pytest.fixture(autouse=True)
def fresh_screening_cache():
    S.forget_cache()
    yield
    S.forget_cache()


# --- an upload with too little text ----------------------------------------------------------------

def test_an_unreadable_upload_is_listed_apart_never_ranked(client, login, auth, world):
    _e, readable = upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    _e, scan = upload_report(world, "评价报告\n（扫描件）", name="高标准农田")
    db.session.commit()
    blank, read = S.screening_for(scan), S.screening_for(readable)
    assert blank.method == RiskMethod.UNSCORED and read.method == RiskMethod.RULE
    assert [r["text"] for r in blank.reasons] == [S.unscored_reason(blank.features)["text"]]
    assert "未评分：文本无法提取" in blank.reasons[0]["text"] and not blank.details["gaps"]
    # not in the ranking, the counts or the share; listed apart
    assert S.queue_counts(world.bz_staff, 2025, [blank.kind]) == {blank.kind: 1}
    assert [e.screening_id for e in S.queue(world.bz_staff, year=2025, kind=blank.kind)] == [read.id]
    assert [r.id for r in S.unscored(world.bz_staff, year=2025)] == [blank.id]
    assert S.rescore() and blank.method == RiskMethod.UNSCORED  # a rescore never scores it

    login(world.bz_staff)
    page = client.get("/screening/queue?year=2025").get_data(as_text=True)
    assert f'data-testid="unscored-row-{blank.id}"' in page and f'data-testid="queue-row-{blank.id}"' not in page
    card = client.get(f"/screening/{blank.id}").get_data(as_text=True)
    assert 'data-testid="unscored"' in card and "不参与排名" in card and 'data-testid="features"' not in card
    sheet = pd.read_excel(io.BytesIO(client.get("/screening/queue?year=2025&kind=report&export=xlsx").data))
    assert list(sheet["风险分"].astype(str)) == [str(round(read.risk, 4)), "未评分"]

    body = client.get("/api/v1/screening/unscored?year=2025", headers=auth("bz.staff")).json
    assert [(i["submission_id"], i["method"]) for i in body["items"]] == [(scan.id, "unscored")]
    assert body["items"][0]["chars"] < S.MIN_SCORED_CHARS and "未评分" in body["items"][0]["reasons"][0]
    queued = client.get("/api/v1/screening/queue?year=2025&kind=report", headers=auth("bz.staff")).json
    assert [i["submission_id"] for i in queued["items"]] == [readable.id]
    assert client.get("/api/v1/screening/unscored?year=2025", headers=auth("firm1")).status_code == 403


# --- .docx in document order -----------------------------------------------------------------------

def _docx(body_xml: str) -> bytes:
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    body = document.element.body
    for element in parse_xml(f"<w:body {W} xmlns:mc=\"http://schemas.openxmlformats.org/markup-compatibility/2006\" "
                             f"xmlns:v=\"urn:schemas-microsoft-com:vml\">{body_xml}</w:body>"):
        body.insert(len(body) - 1, element)  # before the section properties
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _p(text: str) -> str:
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"


def test_docx_text_follows_the_document_with_nested_tables_controls_and_revisions():
    nested = f"<w:tbl><w:tr><w:tc>{_p('内层甲')}</w:tc><w:tc>{_p('内层乙')}</w:tc></w:tr></w:tbl>"
    text_box = (f"<w:p><w:r><w:t>锚点</w:t></w:r><w:r><mc:AlternateContent><mc:Choice Requires=\"wps\"><w:txbxContent>"
                f"{_p('文本框内容')}</w:txbxContent></mc:Choice><mc:Fallback><w:pict><v:textbox><w:txbxContent>"
                f"{_p('文本框内容')}</w:txbxContent></v:textbox></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>")
    data = _docx(
        _p("一、基本情况") +
        f"<w:tbl><w:tr><w:tc>{_p('指标')}</w:tc><w:tc>{_p('目标值')}</w:tc></w:tr>"
        f"<w:tr><w:tc>{_p('外层')}</w:tc><w:tc>{nested}</w:tc></w:tr></w:tbl>" +
        f"<w:sdt><w:sdtContent>{_p('内容控件里的段落')}</w:sdtContent></w:sdt>" + text_box +
        "<w:p><w:r><w:t>保留</w:t></w:r><w:del w:id=\"1\" w:author=\"a\"><w:r><w:delText>删除的</w:delText></w:r></w:del>"
        "<w:ins w:id=\"2\" w:author=\"a\"><w:r><w:t>插入的</w:t></w:r></w:ins></w:p>" +
        _p("二、绩效评价工作开展情况"))
    lines = [line for line in extract.docx_text(data).split("\n") if line]
    assert lines == ["一、基本情况", "指标\t目标值", "外层\t内层甲\t内层乙", "内容控件里的段落", "锚点", "文本框内容",
                     "保留插入的", "二、绩效评价工作开展情况"], lines


# --- a heading that joins two outline chapters -----------------------------------------------------

JOINED = "五、主要经验及做法、存在的问题及原因分析"


def test_a_joined_heading_counts_each_chapter_and_its_sub_headings_do_not_count_again():
    lines = [f"{n}、{c}" for n, c in zip("一二三四", REPORT_CHAPTERS[:4])]
    lines += [JOINED, "（一）主要经验及做法", "建立了月调度机制。", "（二）存在的问题及原因分析", "配套资金迟至11月到位。",
              "六、有关建议", "七、其他需要说明的问题"]
    text = "\n".join(lines)
    assert find_chapters(text, list(REPORT_CHAPTERS)) == dict.fromkeys(REPORT_CHAPTERS, 1)
    doc = textproc.parse(text, REPORT_CHAPTERS)
    assert doc.heading_counts == dict.fromkeys(REPORT_CHAPTERS, 1)
    by_text = {s.text: s.chapter for s in doc.sentences}
    assert by_text["建立了月调度机制。"] == "主要经验及做法" and by_text["配套资金迟至11月到位。"] == "存在的问题及原因分析"
    # a second top-level heading of a chapter already named is still a duplicate
    again = textproc.parse(text + "\n八、存在的问题及原因分析", REPORT_CHAPTERS)
    assert again.heading_counts["存在的问题及原因分析"] == 2
    # a heading that only begins with a chapter's name counts that chapter alone
    assert textproc.heading_titles("一、基本情况概述", REPORT_CHAPTERS) == ["基本情况"]
    assert textproc.heading_titles("五、主要经验及做法和存在的问题及原因分析", REPORT_CHAPTERS) == \
        ["主要经验及做法", "存在的问题及原因分析"]


# --- traditional characters ------------------------------------------------------------------------

def test_traditional_characters_are_read_as_simplified_and_simplified_text_is_left_alone():
    assert textproc.normalise("一、基本情況\n進一步加強預算績效管理，提高思想認識。") == \
        "一、基本情况\n进一步加强预算绩效管理，提高思想认识。"
    simplified = report_text("饮水安全工程", "巴州统计局", "天衡评价公司")
    assert textproc.simplified(simplified) is simplified  # nothing traditional: not converted at all


# --- dates and restated targets --------------------------------------------------------------------

def test_dotted_dates_do_not_swallow_section_numbers_or_amounts():
    from evalhub.screening.features import _numbers

    found = _numbers("2023.1.1至2023.12.31；3.2.1 产出指标；500.00万元；2024-03-15")
    assert (found.count, found.dates, len(found.amounts)) == (5, 3, 1)
    # a year and month with a dot is a date at the ends of a period; alone, or with a unit, it is a figure
    found = _numbers("评价期间为2023.1-2023.12，2023.10 至 2024.3 开展核查；支出 2023.5万元，系数 2019.6")
    assert (found.count, found.dates, len(found.amounts)) == (6, 4, 1)


def test_target_and_actual_columns_named_in_the_header_are_compared_row_by_row():
    table = textproc.normalise("指标\t目标值\t实际值\t分值\t得分\n受益人数\t1200\t1200\t10\t10\n"
                               "覆盖率\t≥95%\t96%\t10\t10\n满意度\t90\t88\t5\t4")
    assert restated_targets(table) == 1  # 1200 again; the scores 10 10 are not a target
    assert restated_targets("指标\t分值\t得分\n受益人数\t10\t10") == 0  # no target column named


# --- a .docx whose content is imported from other files (w:altChunk) -------------------------------------

def _with_chunks(chunks: list[tuple[str, bytes]]) -> bytes:
    """A .docx whose body is a heading, then each chunk as a w:altChunk (what some office systems export)."""
    import docx
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part
    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_paragraph("一、基本情况")
    for n, (content_type, blob) in enumerate(chunks, 1):
        ext = {"text/html": "htm", "message/rfc822": "mht"}.get(content_type, "docx")
        part = Part(PackURI(f"/word/afchunk{n}.{ext}"), content_type, blob, document.part.package)
        rid = document.part.relate_to(part, "http://schemas.openxmlformats.org/officeDocument/2006/relationships/aFChunk")
        document.element.body.insert(len(document.element.body) - 1, parse_xml(
            f'<w:altChunk {W} xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" r:id="{rid}"/>'))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_altchunk_content_is_read_where_it_stands():
    """A report exported as HTML or a nested .docx inside ``w:altChunk`` (Word imports it on opening) used to extract
    as its heading alone, and was screened as unscored; its text is now read in place — GBK HTML and web archives too."""
    import docx

    inner = docx.Document()
    inner.add_paragraph("三、综合评价情况及评价结论")
    inner.add_paragraph("项目综合得分 86.5 分，等级为良。")
    inner_bytes = io.BytesIO()
    inner.save(inner_bytes)
    html = ('<html><head><meta charset="gbk"><style>p{color:red}</style></head><body>'
            "<h2>二、绩效评价工作开展情况</h2><p>2023年5月至8月，评价组走访12个乡镇。</p>"
            "<table><tr><td>指标</td><td>目标值</td></tr></table></body></html>").encode("gbk")
    mht = ("MIME-Version: 1.0\nContent-Type: multipart/related; boundary=\"B\"\n\n--B\n"
           "Content-Type: text/html; charset=\"utf-8\"\nContent-Transfer-Encoding: 8bit\n\n"
           "<html><body><p>四、绩效评价指标分析</p></body></html>\n--B--\n").encode()
    data = _with_chunks([("text/html", html), ("application/vnd.openxmlformats-officedocument.wordprocessingml."
                                                "document.main+xml", inner_bytes.getvalue()), ("message/rfc822", mht)])
    lines = [line for line in extract.docx_text(data).split("\n") if line]
    assert lines == ["一、基本情况", "二、绩效评价工作开展情况", "2023年5月至8月，评价组走访12个乡镇。", "指标\t目标值",
                     "三、综合评价情况及评价结论", "项目综合得分 86.5 分，等级为良。", "四、绩效评价指标分析"], lines
