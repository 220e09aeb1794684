"""The issue-16 signals on small hand-written texts (no database): page chrome stripped before scoring, whole
report vs fragment decided from the text, chapter features only for whole reports, and the vacuous-specificity
features (restated targets, blanket claims, unsupported outcomes, slogans, placeholders, quantities with units).
Also a smoke test of the real-text benchmark on three tiny texts."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
from pathlib import Path

import pytest

from evalhub.review.services import REPORT_CHAPTERS
from evalhub.screening import learning, textproc
from evalhub.screening.features import (
    ScreeningContext, blanket_claims, compute, placeholders, quantities, restated_targets,
)

NUMERALS = "一二三四五六七八"


def outline(body: str = "评价组核查了资料。") -> str:
    return "\n".join(f"{n}、{c}\n{body}" for n, c in zip(NUMERALS, REPORT_CHAPTERS))


def features(text: str, **kw) -> dict:
    return compute(text, ScreeningContext(chapters=REPORT_CHAPTERS, **kw), None).features


# --- chrome --------------------------------------------------------------------------------------------

def test_page_chrome_is_stripped_before_scoring():
    body = "项目新建机井1座、水塔1座，管道1100米，受益农户320户。"
    page = ("预算绩效管理\n- 索引号: zsjfzzx/2025-00002\n- 发布机构: 红河州数据发展中心\n- 发布日期: 2025-04-29\n"
            "浏览量:1 | | |\n【字体: 大 中 小】\n" + body)
    assert textproc.normalise(page).endswith(body)
    assert "索引号" not in textproc.normalise(page) and "发布机构" not in textproc.normalise(page)
    clean, dirty = features(body), features(page)
    # the dates and index numbers of the page are not counted as the report's numbers
    assert dirty["numbers_per_1k"] * dirty["length_chars"] == pytest.approx(clean["numbers_per_1k"] * clean["length_chars"], rel=0.01)
    assert not textproc.is_chrome("资金来源:财政拨款600万元")  # "来源" inside a sentence is content
    assert not textproc.is_chrome("评价资金使用的科学性、合理性和有效性,分析存在的问题")


# --- whole report or fragment --------------------------------------------------------------------------

def test_a_fragment_quoting_headings_gets_no_chapter_features():
    excerpt = "一、基本情况\n项目资金已全部到位。\n五、存在的问题及原因分析\n暂无问题。"
    doc = textproc.parse(excerpt, REPORT_CHAPTERS)
    assert textproc.detect_kind(doc) == "fragment"
    f = features(excerpt)
    assert f["missing_chapters"] is None and f["duplicated_chapters"] is None  # not "7 chapters missing"
    assert compute(excerpt, ScreeningContext(chapters=REPORT_CHAPTERS), None).text_kind == "fragment"


def test_a_long_text_with_the_outline_is_a_whole_report():
    long = outline("评价组于2025年3月抽查东风村等12个实施点，回收问卷300份，核对合同18份、凭证246张。" * 5)
    doc = textproc.parse(long, REPORT_CHAPTERS)
    assert textproc.content_chars(doc.text) > textproc.WHOLE_MIN_CHARS and textproc.detect_kind(doc) == "report"
    assert features(long)["missing_chapters"] == 0
    missing_one = long.replace("四、绩效评价指标分析", "")
    assert features(missing_one)["missing_chapters"] == 1
    # declared: a caller's "report" is believed only with an outline; self-evaluations have no chapter check
    assert features(outline(), text_kind="report")["missing_chapters"] == 0
    assert features("一、基本情况\n很好。", text_kind="report")["missing_chapters"] is None
    assert features(long, text_kind="self_evaluation")["missing_chapters"] is None
    assert compute(long, ScreeningContext(chapters=REPORT_CHAPTERS, text_kind="self_evaluation"), None).text_kind == "self_evaluation"


# --- vacuous specificity -------------------------------------------------------------------------------

def test_restated_targets_are_found_in_tables_and_prose():
    assert restated_targets("指标5:药品不良反应每百万人口报告数 ≥150 150") == 1
    assert restated_targets("培训人员覆盖率 100% 100%\n乡村道路建设养护里程 300 公里 300 公里") == 2
    assert restated_targets("目标值≥90%，实际值≥90%。") == 1
    assert restated_targets("指标4.药品监管企业数 ≥124 253") == 0  # a real actual value
    assert restated_targets("目标值90%，实际完成值87.5%。") == 0


def test_blanket_claims_and_placeholders():
    assert blanket_claims("各项指标均已完成，完成率100%，存在问题：暂无。") == 3
    assert blanket_claims("执行率87.3%，3个乡镇未完工。") == 0
    assert placeholders("镇 xxxx 年涉农整合资金预算金额为 xxxx.xx 万元，项目 x 个") >= 2
    assert placeholders("说明相关任务目标的完成情况(100字以内)") == 1
    assert placeholders("共计**.**万元，20xx年") == 2
    assert placeholders("预算500万元，2024年完工。") == 0


def test_quantities_count_measured_amounts_not_years_document_numbers_or_100_percent():
    text = "根据财预〔2020〕10号文件，2022年新建管网12.6公里，受益农户320户，执行率87.3%，完成率100%。"
    assert quantities(text) == 3  # 12.6公里, 320户, 87.3%


def test_vacuous_text_scores_riskier_than_a_specific_one():
    specific = ("新建300米深机井1座、100吨水塔1座，配套干管1100m；资金105万元已于2022年6月拨付，"
                "受益农户320户，灌溉面积由850亩增至1200亩，东风村2处管道渗漏已于9月返修。")
    vacuous = ("为深入贯彻落实党中央决策部署，我局高度重视，项目各项指标均已完成，完成率100%，"
               "取得了良好的社会效益和经济效益，群众满意度明显提升。存在问题：暂无。")
    fs, fv = features(specific), features(vacuous)
    assert fv["blanket_claims_per_1k"] > fs["blanket_claims_per_1k"]
    assert fv["unsupported_outcome_share"] > fs["unsupported_outcome_share"]
    assert fv["slogan_share"] > fs["slogan_share"]
    assert fs["quantities_per_1k"] > fv["quantities_per_1k"]
    assert learning.rule_score(fv) > learning.rule_score(fs) + 0.3


def test_generic_advice_is_found_in_a_fragment_under_a_problems_heading():
    fragment = ("(二)存在的问题。\n1.项目管理机制不够完善,有待进一步健全机制。\n"
                "(三)相关建议。\n进一步规范资金使用,健全项目管理机制。")
    f = features(fragment)
    assert f["generic_advice_share"] == 1.0  # "1." is a list numeral, not a figure
    specific = "(二)存在的问题。\n红旗乡2处水厂延期投入使用，配套资金20万元迟至11月到位。"
    assert features(specific)["generic_advice_share"] == 0.0


# --- the real-text benchmark ---------------------------------------------------------------------------

def _bench_module():
    path = Path(__file__).resolve().parents[1] / "bench" / "screening_real.py"
    spec = importlib.util.spec_from_file_location("screening_real_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_text_benchmark_runs_on_three_tiny_texts_and_checks_hashes(tmp_path, capsys):
    bench = _bench_module()
    texts = [("https://a.example/1", "fragment", "generic", "各项工作均已完成，取得良好成效。暂无问题。"),
             ("https://b.example/2", "fragment", "specific", "新建管网12.6公里，受益农户320户，执行率87.3%。"),
             ("https://c.example/3", "self_evaluation", "generic", "我局高度重视，严格按照文件要求，专款专用。")]
    cache = tmp_path / "cache"
    cache.mkdir()
    index = tmp_path / "index.csv"
    with index.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, bench.COLUMNS)
        writer.writeheader()
        for url, kind, label, text in texts:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            (cache / f"{digest}.txt").write_text(text, encoding="utf-8")
            writer.writerow({"url": url, "kind": kind, "label": label, "reason": "test", "sha256": digest,
                             "length": len(text), "split": "dev"})
    bench.INDEX, bench.CACHE = index, cache
    rows = bench.load("dev")
    results = bench.scores(rows, with_model=False)
    assert set(results) >= {"risk", "rule score (kind given)", "baseline: length", "baseline: digits/1k"}
    assert results["risk"][1] < min(results["risk"][0], results["risk"][2])  # the specific one is least risky
    bench.report(rows, results, "smoke")
    assert "ROC-AUC" in capsys.readouterr().out
    # a changed text is refused
    first = next(cache.glob("*.txt"))
    first.write_text("改过的文本", encoding="utf-8")
    with pytest.raises(SystemExit, match="does not match"):
        bench.load("dev")
    assert bench.split_for("https://a.example/1") in ("dev", "holdout")


# --- demo work plans vary like real ones ------------------------------------------------------------------

def test_demo_work_plans_come_from_several_templates_per_firm_edited_per_object():
    import random

    from evalhub.demo.corpus import _firm_families, generate_work_plan
    from evalhub.screening.index import CorpusIndex

    rng = random.Random(5)
    firms = ["巴州天衡会计师事务所有限公司", "新疆正信工程咨询有限公司", "和田华审资产评估有限公司"]
    objects = ["农村饮水安全巩固提升工程项目", "高标准农田建设项目", "农村公路建设项目", "学前教育发展资金项目"]
    plans = {(f, o): "\n".join(generate_work_plan(rng, object_name=o, unit="和田县水利局", firm=f, year=2024))
             for f in firms for o in objects}
    assert len(set(plans.values())) == len(plans)  # every object gets its own edited plan
    assert len({_firm_families(f) for f in firms}) == len(firms)  # firms keep different house styles
    # copies across firms are no longer the norm: a plan shares few sentences with other firms' plans
    index = CorpusIndex()
    ctx_of = {}
    for n, ((firm, obj), text) in enumerate(plans.items(), start=1):
        ctx_of[(firm, obj)] = ScreeningContext(kind="work_plan", firm_id=firms.index(firm) + 1, engagement_id=n,
                                               object_key=obj, year=2024)
        index.add(compute(text, ctx_of[(firm, obj)], None).stored(n, ctx_of[(firm, obj)], firm))
    shares = []
    for key, text in plans.items():
        ctx = ScreeningContext(kind="work_plan", firm_id=ctx_of[key].firm_id, engagement_id=10_000,
                               object_key="别的对象", year=2025)
        shares.append(compute(text, ctx, index).features["copy_other_firms"])
    assert sorted(shares)[len(shares) // 2] < 0.5  # the median other-firm copy share (was 100% with one template)
