"""Audit: report screening as a bureau relies on it — the inputs real reports come in, features on real
Chinese writing patterns, and whether the score and its card say what is true. Each test fails on the current
code for the reason in its docstring."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest

from evalhub.core import extract
from evalhub.review import services as R
from evalhub.review.models import SubmissionKind
from evalhub.review.services import REPORT_CHAPTERS
from evalhub.screening import services as S
from evalhub.screening import textproc
from evalhub.screening.features import ScreeningContext, compute, restated_targets
from evalhub.screening.rules import rule_score
from tests.screening_support import INDICATORS, in_fieldwork, report_text

NUMERALS = "一二三四五六七八"
SPECIFIC = {
    "基本情况": "饮水工程由水利局组织实施，预算安排500.00万元，实际支出450.00万元，预算执行率90.0%。",
    "绩效评价工作开展情况": "评价组于2025年3月抽查了东风村、红旗乡等12个实施点，回收有效问卷300份。",
    "综合评价情况及评价结论": "综合得分88分，评价等级为良。",
    "绩效评价指标分析": "新建供水管网完成率为95%，水质达标率为98%，红旗乡2处水厂延期投入使用。",
    "主要经验及做法": "建立了月调度机制，每月5日通报进度并督促整改落实。",
    "存在的问题及原因分析": "一是受益人数未设定基准值，导致完成率无法核实。二是配套资金20万元迟至2024年11月才到位。",
    "有关建议": "进一步加强预算绩效管理，提高思想认识。建议水利局财务科于2025年9月底前完成剩余设施验收。",
    "其他需要说明的问题": "无。",
}
NAMES = ["饮水工程", "水利局", "天衡评价公司"]


def report(body: dict[str, str], title: str = "绩效评价报告") -> str:
    lines = [title]
    for numeral, chapter in zip(NUMERALS, REPORT_CHAPTERS):
        if chapter in body:
            lines += [f"{numeral}、{chapter}", body[chapter]]
    return "\n".join(lines)


def ctx(**kw) -> ScreeningContext:
    base = dict(names=NAMES, firm_id=1, engagement_id=1, object_key="7:饮水工程", year=2024,
                chapters=list(REPORT_CHAPTERS), text_kind="report")
    base.update(kw)
    return ScreeningContext(**base)


@pytest.fixture(autouse=True)
def fresh_screening_cache():
    S.forget_cache()
    yield
    S.forget_cache()


# --- 1. the rule score: a report that omits the recorded facts is scored as LESS risky ------------------------

def test_omitting_the_recorded_budget_spending_and_rate_raises_the_risk_not_lowers_it():
    """Rule: rules.py's own comment on the facts_stated term — "stating none of the facts adds risk" — and
    features.FEATURES (facts_stated: riskier_when_higher=False); DOMAIN §8 ("claims with no data"); the card
    lists "未写明预算（系统记录为 …）" as a gap, i.e. as a sign against the report.
    Defect: RuleTerm("facts_stated", neutral 1.0, scale 0.5, weight +0.5) gives weight × (0 − 1)/0.5 = −1.0
    log-odds to a report that states none of the recorded facts, so the same text scores markedly LOWER when
    it leaves out the budget, spending and execution rate on record than when it states them."""
    text = report(SPECIFIC)  # states 500.00 万元, 450.00 万元, 90.0%
    stated = compute(text, ctx(budget_wan=Decimal("500.00"), spent_wan=Decimal("450.00"),
                               execution_rate=Decimal("90.0")), None)
    omitted = compute(text, ctx(budget_wan=Decimal("812.00"), spent_wan=Decimal("733.00"),
                                execution_rate=Decimal("71.3")), None)
    assert stated.features["facts_stated"] == 1.0 and omitted.features["facts_stated"] == 0.0
    assert {k: v for k, v in stated.features.items() if k != "facts_stated"} == \
        {k: v for k, v in omitted.features.items() if k != "facts_stated"}
    assert any(g.startswith("未写明预算") for g in omitted.gaps)
    assert rule_score(omitted.features) > rule_score(stated.features), (
        f"omitting the recorded facts gives risk {rule_score(omitted.features)}, "
        f"stating them {rule_score(stated.features)}")


# --- 2. an upload with no text (a scanned PDF) is scored and ranked as a confident high risk --------------------

def _scanned_pdf() -> bytes:
    """A one-page PDF with no text layer (what a scanner produces, minus the image)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << >> >>",
               b"<< /Length 0 >>\nstream\n\nendstream"]
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_a_scanned_report_with_no_text_is_not_scored_as_a_confident_high_risk(world):
    """Rule: a bureau relies on the risk and its reasons being about the report's content (docs/rules.md:
    "a model's risk is shown with the model's reasons"); a text that could not be read must say so
    ("文本无法提取，未评分"), not be ranked on densities of a text that was never read.
    Defect: screening.services.screen_submission screens ``submission.file.text or ""`` whatever it is: a
    scanned PDF (no text layer) gets risk 0.82 from the rule score (0.93 with no budget on record), ranks above
    every specific report in the spot-check queue, and its card states "每千字带计量单位的实际数量 … 为 0.0" as
    the reason — a claim about words that were never extracted."""
    e, firm_user = in_fieldwork(world)
    submission = R.submit(e, SubmissionKind.REPORT, "评价报告（扫描件）.pdf", _scanned_pdf(), firm_user,
                          indicators=INDICATORS, concluded_total="92", concluded_grade="优")
    assert not (submission.file.text or "").strip()  # nothing could be extracted
    row = S.screening_for(submission)
    assert row is not None
    reasons = [r["text"] for r in row.reasons]
    assert any("无法提取" in r or "未评分" in r for r in reasons) and row.risk <= 0.5, (
        f"an unreadable upload is scored risk {row.risk} with reasons {reasons}")


# --- 3. .docx text in text boxes is dropped ---------------------------------------------------------------------

def _docx_in_text_boxes(lines: list[str]) -> bytes:
    """A .docx whose every line sits in a text box (a designed report layout), as Word writes it (VML)."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    ns = ('xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
          'xmlns:v="urn:schemas-microsoft-com:vml"')
    for line in lines:
        paragraph = document.add_paragraph()
        paragraph._p.append(parse_xml(
            f'<w:r {ns}><w:pict><v:shape style="width:400pt;height:40pt"><v:textbox><w:txbxContent>'
            f'<w:p><w:r><w:t>{line}</w:t></w:r></w:p></w:txbxContent></v:textbox></v:shape></w:pict></w:r>'))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_report_text_in_docx_text_boxes_reaches_the_screener(world):
    """Rule: a bureau relies on the screener reading what the firm handed in (docs/architecture.md "How an
    upload travels": text extracted once, then screened); a .docx laid out in text boxes is a common real input.
    Defect: core.extract.docx_text reads ``document.paragraphs`` and top-level tables only; text inside
    w:txbxContent is dropped, so the whole report extracts as empty lines and is screened as an empty text
    (length_chars 0, quantities 0.0, risk 0.82 with the reasons of the scanned-PDF test)."""
    text = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=True)
    lines = text.splitlines()
    data = _docx_in_text_boxes(lines)
    extracted = extract.docx_text(data)
    e, firm_user = in_fieldwork(world)
    submission = R.submit(e, SubmissionKind.REPORT, "评价报告.docx", data, firm_user,
                          indicators=INDICATORS, concluded_total="92", concluded_grade="优")
    row = S.screening_for(submission)
    assert "预算安排300.00万元" in extracted and row.features["length_chars"] > 200, (
        f"extracted {extracted!r}; screened length {row.features['length_chars']}, risk {row.risk}")


# --- 4. .docx tables are moved after the last chapter -------------------------------------------------------------

def test_a_docx_table_stays_in_the_chapter_it_belongs_to(world):
    """Rule: chapter features (analysis_chars, problems_chars, generic advice in the problems chapters) read
    each chapter's own text (features.prepare; DOMAIN §5 "score basis for each indicator"); real reports put the
    indicator scoring table in 绩效评价指标分析 and often the problem list in a table.
    Defect: core.extract.docx_text appends every table after ALL paragraphs, so a table under
    "四、绩效评价指标分析" is read as part of the last chapter (其他需要说明的问题): the analysis chapter
    is screened as empty (analysis_chars counts only its heading's paragraphs)."""
    import docx

    document = docx.Document()
    text = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=True)
    row_text = ["新建供水管网长度", "≥12公里", "12.6公里", "10", "9.5"]
    for line in text.splitlines():
        if line == "四、绩效评价指标分析":
            document.add_paragraph(line)
            table = document.add_table(rows=1, cols=len(row_text))
            for cell, value in zip(table.rows[0].cells, row_text):
                cell.text = value
            continue
        if line.startswith("产出数量指标完成率"):
            continue  # the chapter's analysis is the table
        document.add_paragraph(line)
    buffer = io.BytesIO()
    document.save(buffer)
    e, firm_user = in_fieldwork(world)
    submission = R.submit(e, SubmissionKind.REPORT, "评价报告.docx", buffer.getvalue(), firm_user,
                          indicators=INDICATORS, concluded_total="92", concluded_grade="优")
    extracted = submission.file.text
    row = S.screening_for(submission)
    assert extracted.index("新建供水管网长度") < extracted.index("五、主要经验及做法"), extracted
    assert row.details["chapters"].get("绩效评价指标分析", {}).get("chars", 0) > 0, row.details["chapters"]


# --- 5. the outline heading that joins two chapters (财预〔2020〕10号 提纲) -----------------------------------------

def test_a_heading_naming_two_outline_chapters_counts_both():
    """Rule: docs/rules.md "Report outline the machine checks and the screener use" (财预〔2020〕10号 附件);
    the ministry's reference outline writes chapter five as one heading, "五、主要经验及做法、存在的问题及原因分析",
    and reports that follow it (六、有关建议 七、其他需要说明的问题) have every chapter.
    Defect: core.outline.heading_title returns the first chapter a heading starts with, so the joined heading
    counts only 主要经验及做法: the screener reports "缺少章节：存在的问题及原因分析" (missing_chapters 1,
    +0.6 log-odds), and the problems written under that heading are not read as problems (problems_chars
    counts only 有关建议)."""
    lines = ["绩效评价报告"]
    for numeral, chapter in zip("一二三四", REPORT_CHAPTERS[:4]):
        lines += [f"{numeral}、{chapter}", SPECIFIC[chapter]]
    lines += ["五、主要经验及做法、存在的问题及原因分析", SPECIFIC["主要经验及做法"], SPECIFIC["存在的问题及原因分析"],
              "六、有关建议", SPECIFIC["有关建议"], "七、其他需要说明的问题", SPECIFIC["其他需要说明的问题"]]
    result = compute("\n".join(lines), ctx(), None)
    assert result.features["missing_chapters"] == 0, result.missing
    assert result.features["problems_chars"] >= len(SPECIFIC["存在的问题及原因分析"]), result.features["problems_chars"]


# --- 6. dates written 2023.1.1 / 2023.12.31 -----------------------------------------------------------------------

def test_dates_written_with_dots_are_counted_as_dates():
    """Rule: features.FEATURES dates_per_1k ("每千字日期个数"), shown on the card against peers; "2023.1.1至
    2023.12.31" is how many real reports and 评价期间 lines write dates (as common as 2023-12-31, which is counted).
    Defect: features._NUMBER's number group takes "2023.12" as a decimal, and the optional date tail then
    fails silently on ".31", so "评价期间为2023.1.1至2023.12.31，现场核查于2024.3.15完成" counts 0 dates
    (expected 3): they are counted as three plain numbers "2023.1", "2023.12", "2024.3" instead."""
    text = "本次评价期间为2023.1.1至2023.12.31，现场核查于2024.3.15完成。"
    result = compute(text, ctx(text_kind="fragment"), None)
    chars = len(textproc.normalise(text).replace("\n", "").replace(" ", ""))
    assert result.features["dates_per_1k"] == round(3 * 1000 / chars, 2), result.features["dates_per_1k"]


# --- 7. restated targets: a score table's 分值 and 得分 -----------------------------------------------------------

def test_a_full_mark_score_or_an_unadjusted_budget_is_not_a_restated_target():
    """Rule: docs/screening_devset.md label rule — "figures that only restate targets (“目标值≥90%，实际值≥90%”)";
    features.FEATURES restated_targets_per_1k ("实际值照抄目标值"). A scoring table's weight and score, or a
    budget table's 年初预算 and 调整预算, are not a target and an actual.
    Defect: features._TABLE_PAIR counts any two equal adjacent numbers on a line, so the common scoring-table row
    "新建供水管网长度 ≥12公里 12.6公里 10 10" (target 12, actual 12.6, weight 10, full marks 10) and the budget row
    "设备购置 50.00 50.00 48.00" (年初预算 = 调整预算, spent 48) each count one restated target: a specific
    report whose indicators scored full marks is scored as restating its targets."""
    score_row = "新建供水管网长度\t≥12公里\t12.6公里\t10\t10"  # as core.extract writes a table row
    budget_row = "设备购置\t50.00\t50.00\t48.00"
    body = textproc.normalise(score_row + "\n" + budget_row)
    assert restated_targets(body) == 0, body


# --- 8. traditional characters -----------------------------------------------------------------------------------

_TRADITIONAL = str.maketrans({
    "况": "況", "绩": "績", "评": "評", "价": "價", "开": "開", "综": "綜", "论": "論", "标": "標", "经": "經",
    "验": "驗", "问": "問", "题": "題", "关": "關", "议": "議", "说": "說", "实": "實", "际": "際", "预": "預",
    "执": "執", "资": "資", "组": "組", "织": "織", "进": "進", "强": "強", "过": "過", "设": "設", "处": "處",
    "厂": "廠", "调": "調", "报": "報", "计": "計", "划": "劃", "财": "財", "务": "務", "级": "級",
    "个": "個", "点": "點", "项": "項", "应": "應", "网": "網",
})


def test_a_report_in_traditional_characters_is_not_missing_all_its_chapters():
    """Rule: docs/screening_devset.md ("a few are in traditional characters" among real texts); a bureau relies
    on "缺少章节" naming chapters that are really absent (the card shows it in red; DOMAIN §8 "missing or duplicated
    chapters").
    Defect: textproc.normalise applies NFKC only; nothing maps traditional to simplified characters, so
    "一、基本情況 … 八、其他需要說明的問題" matches none of the configured chapters while textproc.detect_kind still
    calls the text a whole report (four top-level headings): an upload in traditional characters is screened as
    missing all eight chapters (missing_chapters 8, the capped +1.8 log-odds, "缺少章节：基本情况、…")."""
    body = {c: (SPECIFIC[c] + "。".join([SPECIFIC[c].rstrip("。")] * 6) + "。") for c in REPORT_CHAPTERS}
    simplified = report(body)
    traditional = simplified.translate(_TRADITIONAL)
    assert "基本情況" in traditional and "存在的問題及原因分析" in traditional
    plain = ScreeningContext(names=NAMES, chapters=list(REPORT_CHAPTERS))  # an upload: the text decides its kind
    assert compute(simplified, plain, None).features["missing_chapters"] == 0
    result = compute(traditional, plain, None)
    assert result.text_kind == "report"
    assert result.features["missing_chapters"] == 0, result.missing
