"""Each screening feature on small hand-written texts whose right value is known (no database)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from evalhub.review.services import REPORT_CHAPTERS
from evalhub.screening import textproc
from evalhub.screening.features import ScreeningContext, compute, is_generic
from evalhub.screening.index import CorpusIndex

NUMERALS = "一二三四五六七八"


def report(body: dict[str, str], title: str = "绩效评价报告") -> str:
    lines = [title]
    for numeral, chapter in zip(NUMERALS, REPORT_CHAPTERS):
        if chapter in body:
            lines += [f"{numeral}、{chapter}", body[chapter]]
    return "\n".join(lines)


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


def ctx(**kw) -> ScreeningContext:
    # These short hand-written texts are declared whole reports (as an upload is); see test_screening_signals for detection.
    base = dict(names=NAMES, firm_id=1, engagement_id=1, object_key="7:饮水工程", year=2024, chapters=REPORT_CHAPTERS,
                text_kind="report")
    base.update(kw)
    return ScreeningContext(**base)


def stored_index(*entries: tuple[int, str, ScreeningContext]) -> CorpusIndex:
    index = CorpusIndex()
    for doc_id, text, context in entries:
        index.add(compute(text, context, index).stored(doc_id, context, f"报告{doc_id}"))
    return index


def test_normalise_drops_page_furniture_and_contents_and_widens_nothing():
    raw = ("２０２４年度报告\n目录\n一、基本情况\n二、有关建议\n一、基本情况\n第 1 页 共 3 页\n预算５００万元，执行率９０％。\n"
           "某某评价公司\n二、有关建议\n第 2 页 共 3 页\n某某评价公司\n建议限期整改。\n某某评价公司")
    text = textproc.normalise(raw)
    assert "第 1 页" not in text and "某某评价公司" not in text  # footers and a running header
    assert text.count("一、基本情况") == 1  # the table of contents is gone, the heading stays
    assert "预算500万元，执行率90%。" in text  # NFKC: full-width digits and signs; the Chinese comma stays


def test_a_copied_paragraph_counts_by_whose_report_it_came_from():
    paragraph = "新建供水管网完成率为95%，水质达标率为98%，红旗乡2处水厂延期投入使用。"
    mine = report({**SPECIFIC, "绩效评价指标分析": paragraph})
    source_same_firm = report({"基本情况": "另一项目由交通局组织实施，总体顺利完成了年度建设任务和目标。", "绩效评价指标分析": paragraph})
    index = stored_index((10, source_same_firm, ctx(engagement_id=10, object_key="8:道路")))
    result = compute(mine, ctx(), index)
    n = len([s for s in textproc.parse(mine, REPORT_CHAPTERS, NAMES).sentences if s.key])
    assert result.features["copy_same_firm"] == pytest.approx(1 / n, abs=1e-3)
    assert result.features["copy_other_firms"] == 0.0
    assert result.chapters["绩效评价指标分析"]["same_firm"] == 1
    assert result.passages[0]["source_doc_id"] == 10 and result.passages[0]["relation"] == "same_firm"

    other = stored_index((11, source_same_firm, ctx(engagement_id=11, firm_id=2, object_key="8:道路")))
    assert compute(mine, ctx(), other).features["copy_other_firms"] == pytest.approx(1 / n, abs=1e-3)


def test_copied_from_the_previous_evaluation_of_the_same_object():
    last_year = report(SPECIFIC)
    this_year = report(SPECIFIC).replace("2025年3月", "2026年3月")
    index = stored_index((20, last_year, ctx(engagement_id=20, year=2023, firm_id=3)))
    result = compute(this_year, ctx(year=2024), index)
    assert result.features["copy_previous"] >= 0.9  # numbers collapse: only the year changed
    assert compute(this_year, ctx(year=2024, object_key="9:别的对象"), index).features["copy_previous"] == 0.0


def test_masking_a_template_with_only_names_swapped_is_copied():
    template = report(SPECIFIC)
    swapped = template.replace("饮水工程", "农田水利工程").replace("水利局", "农业农村局")
    new_names = ["农田水利工程", "农业农村局", "天衡评价公司"]
    index = stored_index((30, template, ctx(engagement_id=30)))
    masked = compute(swapped, ctx(names=new_names, engagement_id=31, object_key="5:农田"), index)
    assert masked.features["copy_same_firm"] >= 0.9 and masked.features["near_duplicate"] == 1.0
    # Without the names the swapped sentences differ: masking is what finds the template.
    unmasked = compute(swapped, ctx(names=[], engagement_id=31, object_key="5:农田"), index)
    assert unmasked.features["copy_same_firm"] < masked.features["copy_same_firm"]
    assert masked.chapters["基本情况"]["same_firm"] == 1 and unmasked.chapters["基本情况"]["same_firm"] == 0


def test_other_versions_of_the_same_engagement_are_not_copies():
    text = report(SPECIFIC)
    index = stored_index((40, text, ctx(engagement_id=1)))
    assert compute(text, ctx(engagement_id=1), index).features["copy_same_firm"] == 0.0


def test_boilerplate_is_a_sentence_found_in_many_reports():
    stock = "项目决策科学合理，过程管理规范有序，产出和效益目标基本实现。"
    entries = [(50 + i, report({"基本情况": f"第{i}个项目由某局实施，共{i}个村受益，得到群众一致好评。" + "甲乙丙丁" * i,
                                "绩效评价指标分析": stock}),
                ctx(engagement_id=50 + i, firm_id=10 + i, object_key=f"o{i}")) for i in range(6)]
    index = stored_index(*entries)
    result = compute(report({**SPECIFIC, "绩效评价指标分析": stock}), ctx(), index)
    assert result.features["boilerplate_share"] > 0
    assert not result.passages  # a stock phrase is a reason of its own, not a copied passage


def test_generic_recommendation_has_no_number_actor_or_deadline():
    assert is_generic("进一步加强预算绩效管理，提高思想认识。")
    assert is_generic("项目管理制度有待进一步完善。")
    assert not is_generic("建议水利局财务科于2025年9月底前完成剩余设施验收。")
    assert not is_generic("进一步完善管护制度，由乡镇政府负责落实。")  # an actor
    result = compute(report(SPECIFIC), ctx(), None)
    assert result.features["generic_advice_share"] == pytest.approx(1 / 4)
    assert any("没有数字、责任主体或时限" in gap for gap in result.gaps)


def test_missing_and_duplicated_chapters_and_short_analysis():
    body = {k: v for k, v in SPECIFIC.items() if k != "存在的问题及原因分析"}
    text = report(body) + "\n八、其他需要说明的问题\n无。"
    result = compute(text, ctx(), None)
    assert result.features["missing_chapters"] == 1 and result.missing == ["存在的问题及原因分析"]
    assert result.features["duplicated_chapters"] == 1 and result.duplicated == ["其他需要说明的问题"]
    assert result.features["analysis_chars"] == len(SPECIFIC["绩效评价指标分析"])


def test_a_report_quoting_the_recorded_budget_spending_and_rate():
    facts = dict(budget_wan=Decimal("500.00"), spent_wan=Decimal("450.00"), execution_rate=Decimal("90.0"))
    assert compute(report(SPECIFIC), ctx(**facts), None).features["facts_stated"] == 1.0
    vague = report({**SPECIFIC, "基本情况": "饮水工程由水利局组织实施，预算安排500.00万元，资金使用总体规范。"})
    result = compute(vague, ctx(**facts), None)
    assert result.features["facts_stated"] == pytest.approx(1 / 3, abs=1e-3)
    assert "未写明实际支出（系统记录为 450.00 万元）" in result.gaps
    assert compute(report(SPECIFIC), ctx(), None).features["facts_stated"] is None  # nothing on record


def test_numbers_amounts_percentages_dates_and_entities_per_thousand_characters():
    text = "预算500万元，执行率90%，2025年3月完工，覆盖东风村。"
    result = compute(text, ScreeningContext(), None)
    chars = len(text)
    assert result.features["amounts_per_1k"] == pytest.approx(1000 / chars, abs=0.01)
    assert result.features["percentages_per_1k"] == pytest.approx(1000 / chars, abs=0.01)
    assert result.features["dates_per_1k"] == pytest.approx(1000 / chars, abs=0.01)
    assert result.features["entities_per_1k"] == pytest.approx(1000 / chars, abs=0.01)
    assert result.features["numbers_per_1k"] == pytest.approx(3 * 1000 / chars, abs=0.01)  # 500, 90 and the date 2025年3月
    assert result.features["length_chars"] == chars


def test_unit_voice_and_internal_repetition():
    text = ("我局高度重视项目绩效管理工作，成立了以主要领导为组长的工作领导小组。\n"
            "项目总体进展顺利，各项工作按计划推进并取得明显成效。\n"
            "项目总体进展顺利，各项工作按计划推进并取得明显成效。\n"
            "评价组核查了全部资料并走访了三个乡镇的实施现场。")
    result = compute(text, ScreeningContext(), None)
    assert result.features["unit_voice_share"] == pytest.approx(1 / 4)
    assert result.features["internal_repetition"] == pytest.approx(1 / 4)


def test_a_fragment_gets_what_can_be_computed():
    result = compute("进一步加强管理，提高资金使用效益。", ScreeningContext(), None)
    assert result.features["length_chars"] > 0 and result.features["missing_chapters"] is None
    assert result.features["copy_same_firm"] is None  # no index given
    empty_index = compute("进一步加强管理，提高资金使用效益。", ScreeningContext(), CorpusIndex())
    assert empty_index.features["generic_advice_share"] is None  # no problems chapter in a fragment


def test_near_duplicate_is_verified_not_just_a_minhash_candidate():
    text = report(SPECIFIC)
    index = stored_index((60, text, ctx(engagement_id=60)))
    near = compute(text.replace("无。", "本报告无其他需要说明的事项。"), ctx(engagement_id=61), index)
    assert near.features["near_duplicate"] == 1.0 and near.near_duplicates[0]["doc_id"] == 60
    rewritten = {k: f"本章围绕第{i}部分展开，评价组逐项核对了台账、合同和验收资料并形成了独立判断。" for i, k in enumerate(SPECIFIC)}
    different = compute(report({**rewritten, "基本情况": SPECIFIC["基本情况"]}), ctx(engagement_id=62), index)
    assert different.features["near_duplicate"] == 0.0
