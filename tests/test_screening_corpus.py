"""The synthetic report corpus: deterministic, outline and arithmetic right, and the qualities tell apart the way
a screening model needs (specific reports differ from each other; a firm's template repeats; recycled reports
copy last year's; generic ones share stock sentences). Plain pytest, no database."""
from __future__ import annotations

import io
import itertools
import random
import re
import statistics
from collections import Counter
from decimal import Decimal

import pytest

from evalhub.review.services import REPORT_CHAPTERS, find_chapters
from evalhub.demo import corpus as C
from evalhub.core.outline import heading_title

SPLIT = re.compile(r"[。！？\n]")
DIGITS = re.compile(r"\d+(?:\.\d+)?")
NOT_CONTENT = re.compile(r"[\W_0]+")
OUTPUT_BENEFIT = {"产出", "效益"}


def sentences(text: str) -> set[str]:
    """Sentences (split on 。！？ and line ends), without the outline headings every report must have."""
    return {s for s in (p.strip() for p in SPLIT.split(text)) if s and heading_title(s, REPORT_CHAPTERS) is None}


def masked(report: C.SyntheticReport) -> set[str]:
    """Sentences with the report's own names masked and every number collapsed, as a copy detector sees them;
    only sentences with 12 or more content characters (headings and table-like scraps say nothing)."""
    text = report.text
    f = report.facts
    for name in sorted({f.object_name, f.unit, f.firm, f.region}, key=len, reverse=True):
        text = text.replace(name, "〔名〕")
    text = DIGITS.sub("0", text)
    return {s for s in (p.strip() for p in SPLIT.split(text)) if len(NOT_CONTENT.sub("", s).replace("〔名〕", "")) >= 12}


_MASKED: dict[int, set[str]] = {}


def masked_once(report: C.SyntheticReport) -> set[str]:
    key = id(report)
    if key not in _MASKED:
        _MASKED[key] = masked(report)
    return _MASKED[key]


def share(a: set[str], b: set[str]) -> float:
    return len(a & b) / min(len(a), len(b))


@pytest.fixture(scope="module")
def corpus() -> list[C.SyntheticReport]:
    return C.generate_corpus(400, seed=7)


@pytest.fixture(scope="module")
def by_quality(corpus) -> dict[str, list[C.SyntheticReport]]:
    groups: dict[str, list[C.SyntheticReport]] = {q: [] for q in C.QUALITIES}
    for report in corpus:
        groups[report.quality].append(report)
    return groups


def test_same_seed_same_corpus_other_seed_other_corpus():
    first, again, other = C.generate_corpus(40, seed=3), C.generate_corpus(40, seed=3), C.generate_corpus(40, seed=4)
    assert [r.text for r in first] == [r.text for r in again]
    assert [(r.quality, r.firm_key, r.object_key, r.first_round_score, r.submitted_on, r.total) for r in first] == \
        [(r.quality, r.firm_key, r.object_key, r.first_round_score, r.submitted_on, r.total) for r in again]
    assert [r.text for r in first] != [r.text for r in other]
    state = random.getstate()
    C.generate_report(random.Random(1), C.make_facts(random.Random(1)), "specific")
    assert random.getstate() == state  # the global random is never touched


def test_corpus_shape(corpus, by_quality):
    assert len(corpus) == 400
    counts = Counter(r.quality for r in corpus)
    for quality, share_ in C.DEFAULT_MIX.items():
        assert abs(counts[quality] / 400 - share_) < 0.06, (quality, counts)
    assert {r.firm_key for r in corpus} == set(range(12))
    assert len({r.facts.firm for r in corpus}) == 12
    years = [r.facts.year for r in corpus]
    assert years == sorted(years) and set(years) == {2022, 2023, 2024, 2025}
    for r in corpus:
        assert r.submitted_on.year == r.facts.year + 1 and 3 <= r.submitted_on.month <= 11
        assert r.facts.field in C.FIELD_NAMES and r.quality in C.QUALITY_LABELS
        assert 55 <= r.first_round_score <= 99 and r.first_round_score == r.first_round_score.quantize(Decimal("0.1"))
        assert r.text.split("\n", 1)[0] == f"{r.facts.object_name}绩效评价报告"
        assert 2500 <= len(r.text) <= 5000, (r.quality, len(r.text))
    # objects recur in consecutive years, keeping their unit, region and field
    seen: dict[str, C.SyntheticReport] = {}
    recurring = 0
    for r in corpus:
        if r.object_key in seen:
            recurring += 1
            before = seen[r.object_key].facts
            assert (before.unit, before.region, before.field) == (r.facts.unit, r.facts.region, r.facts.field)
        seen[r.object_key] = r
    assert recurring >= 40


def test_facts_arithmetic():
    rng = random.Random(5)
    for _ in range(200):
        f = C.make_facts(rng, year=2023)
        assert f.budget_wan == f.budget_wan.quantize(Decimal("0.01")) and 0 < f.spent_wan <= f.budget_wan
        assert f.execution_rate == (f.spent_wan / f.budget_wan * 100).quantize(Decimal("0.1"))
        assert f.object_name.startswith("2023年") and f.unit.startswith(f.region)
    f = C.make_facts(rng, object_name="巴州水利局水库除险加固政府采购项目", unit="巴州水利局", firm="某所", year=2024,
                     budget_wan=Decimal("5300"))
    assert (f.field, f.region, f.budget_wan, f.firm) == ("水利", "巴州", Decimal("5300.00"), "某所")
    assert C.make_facts(rng, object_name="民丰县农村污水处理项目", unit="民丰县农业农村和水利局").field == "生态环境"


def test_indicator_tables_add_up(corpus):
    for r in corpus:
        weights = [Decimal(i.weight) for i in r.indicators]
        scores = [Decimal(i.score) for i in r.indicators]
        assert sum(weights) == 100
        assert sum(Decimal(i.weight) for i in r.indicators if i.category in OUTPUT_BENEFIT) >= 60
        assert all(0 <= s <= w for s, w in zip(scores, weights))
        assert r.total == sum(scores)
        band = "优" if r.total >= 90 else "良" if r.total >= 80 else "中" if r.total >= 60 else "差"
        assert r.grade_label == band
        if r.quality != "missing_chapters":  # the conclusion chapter may be the missing one
            assert f"{r.total}分" in r.text and f"“{band}”" in r.text, r.quality


def test_specific_reports_have_the_outline_and_state_the_facts(by_quality):
    for r in by_quality["specific"]:
        assert find_chapters(r.text) == {c: 1 for c in REPORT_CHAPTERS}
        lines = r.text.split("\n")
        assert [line[2:] for line in lines if heading_title(line, REPORT_CHAPTERS)] == REPORT_CHAPTERS
        f = r.facts
        assert f"{f.budget_wan}万元" in r.text and f"{f.spent_wan}万元" in r.text and f"{f.execution_rate}%" in r.text
        assert "万元" in r.text and re.search(r"20\d\d年\d{1,2}月", r.text)
        # recommendations name a deadline
        advice = r.text.split("七、有关建议", 1)[1].split("八、其他需要说明的问题", 1)[0]
        assert re.search(r"\d{4}年[^。；]{0,12}前", advice)


def test_other_qualities_keep_the_outline(by_quality):
    for quality in ("template", "generic", "unit_summary"):
        for r in by_quality[quality]:
            assert find_chapters(r.text) == {c: 1 for c in REPORT_CHAPTERS}, quality


def test_specific_reports_of_a_field_share_few_sentences(by_quality):
    pairs = [(a, b) for a, b in itertools.combinations(by_quality["specific"], 2) if a.facts.field == b.facts.field]
    assert len(pairs) > 500
    plain = {id(r): sentences(r.text) for r in by_quality["specific"]}
    raw = [share(plain[id(a)], plain[id(b)]) for a, b in pairs]
    copy = [share(masked_once(a), masked_once(b)) for a, b in pairs]
    assert max(raw) < 0.2
    assert statistics.mean(copy) < 0.1 and max(copy) < 0.3


def test_a_firm_reuses_its_template_and_firms_differ():
    rng = random.Random(11)
    reports = [C.generate_report(rng, C.make_facts(rng, year=rng.choice((2023, 2024))), "template", firm_key=firm)
               for firm in (1, 2, 3) for _ in range(4)]
    same = [share(masked(a), masked(b)) for a, b in itertools.combinations(reports, 2) if a.firm_key == b.firm_key]
    other = [share(masked(a), masked(b)) for a, b in itertools.combinations(reports, 2) if a.firm_key != b.firm_key]
    assert min(same) > 0.85
    assert max(other) < 0.3 and statistics.mean(other) < 0.15
    # template_seed overrides the firm
    facts = C.make_facts(rng)
    a = C.generate_report(rng, facts, "template", firm_key=1, template_seed=99)
    b = C.generate_report(rng, facts, "template", firm_key=2, template_seed=99)
    assert share(masked(a), masked(b)) > 0.85


def test_generic_reports_share_stock_sentences_and_say_little(by_quality):
    generic, specific = by_quality["generic"], by_quality["specific"]
    pairs = list(itertools.combinations(generic, 2))
    assert statistics.mean(share(masked_once(a), masked_once(b)) for a, b in pairs) > 0.3
    stated = sum(f"{r.facts.execution_rate}%" in r.text for r in generic) / len(generic)
    assert stated < 0.5

    def numbers(r):
        return len(DIGITS.findall(r.text)) / len(r.text) * 1000

    assert statistics.mean(map(numbers, generic)) < statistics.mean(map(numbers, specific)) / 2
    assert all(r.text.count("进一步") >= 2 for r in generic)


def test_missing_chapters_really_miss_or_double_a_chapter(by_quality):
    assert by_quality["missing_chapters"]
    for r in by_quality["missing_chapters"]:
        counts = find_chapters(r.text)
        assert any(n == 0 for n in counts.values()) or any(n > 1 for n in counts.values())


def test_unit_summary_speaks_in_the_units_voice(by_quality):
    for r in by_quality["unit_summary"]:
        assert len(re.findall(r"我局|我委|我单位|本单位", r.text)) >= 8
    assert all(len(re.findall(r"我局|我委|我单位|本单位", r.text)) <= 2 for r in by_quality["specific"])


def test_recycled_reports_copy_last_years_report(corpus, by_quality):
    by_key = {(r.object_key, r.facts.year): r for r in corpus}
    recycled = by_quality["recycled"]
    assert recycled
    for r in recycled:
        before = by_key[(r.object_key, r.facts.year - 1)]
        assert share(masked(r), masked(before)) > 0.8
        assert str(r.facts.year) in r.text.split("\n", 1)[0]
        if f"{before.facts.budget_wan}万元" in before.text:  # the budget it states is this year's
            assert f"{r.facts.budget_wan}万元" in r.text
    # without a previous report it falls back to the firm's template
    rng = random.Random(2)
    facts = C.make_facts(rng)
    fallback = C.generate_report(random.Random(3), facts, "recycled", firm_key=4)
    template = C.generate_report(random.Random(3), facts, "template", firm_key=4)
    assert share(masked(fallback), masked(template)) > 0.85


def test_long_reports_are_about_8000_characters():
    rng = random.Random(21)
    previous = None
    for n, quality in enumerate(C.QUALITIES * 3):
        facts = C.make_facts(rng, year=2024)
        report = C.generate_report(rng, facts, quality, firm_key=n % 4, previous_text=previous, long=True)
        assert 6800 <= len(report.text) <= 9200, (quality, len(report.text))
        previous = report.text if quality != "recycled" else None


def test_first_round_scores_follow_quality(by_quality):
    mean = {q: statistics.mean(float(r.first_round_score) for r in rs) for q, rs in by_quality.items()}
    assert mean["specific"] > 90 > mean["generic"]
    assert mean["specific"] > max(v for q, v in mean.items() if q != "specific")
    passed = sum(r.first_round_score >= 90 for r in by_quality["specific"]) / len(by_quality["specific"])
    assert 0.6 < passed < 0.95  # most specific reports pass the 90 mark, not all
    poor = [r for q in ("generic", "missing_chapters", "template") for r in by_quality[q]]
    assert sum(r.first_round_score < 90 for r in poor) / len(poor) > 0.6


def test_quality_mix_and_bad_input():
    only = C.generate_corpus(30, seed=1, quality_mix={"generic": 1})
    assert {r.quality for r in only} == {"generic"}
    with pytest.raises(ValueError):
        C.generate_corpus(10, quality_mix={"sloppy": 1})
    with pytest.raises(ValueError):
        C.generate_report(random.Random(1), C.make_facts(random.Random(1)), "sloppy")


def test_docx_carries_text_and_indicator_table(by_quality):
    import docx

    report = by_quality["specific"][0]
    document = docx.Document(io.BytesIO(C.to_docx(report)))
    paragraphs = [p.text for p in document.paragraphs]
    assert paragraphs[0] == report.text.split("\n", 1)[0] and "一、基本情况" in paragraphs
    rows = [[cell.text for cell in row.cells] for row in document.tables[0].rows]
    assert rows[0] == ["一级指标", "二级指标", "权重", "得分"] and len(rows) == 14
    assert rows[1:] == [[i.category, i.name, i.weight, i.score] for i in report.indicators]


def test_demo_report_uses_the_corpus_generator():
    from evalhub.demo.documents import report

    kwargs = dict(object_name="巴州水利局水库除险加固政府采购项目", unit="巴州水利局", firm="新疆天衡会计师事务所有限公司",
                  year=2024, amount_wan=Decimal("5300.00"))
    good = report(random.Random(1), specific=True, **kwargs)
    assert good.specific and find_chapters(good.text) == {c: 1 for c in REPORT_CHAPTERS}
    assert "5300.00万元" in good.text and good.docx[:2] == b"PK"
    assert good.total == sum(Decimal(i.score) for i in good.indicators)
    broken = report(random.Random(1), specific=True, break_outline=True, **kwargs)
    assert not broken.specific and find_chapters(broken.text)["主要经验及做法"] == 0
    assert sum(find_chapters(broken.text).values()) == 7
    plain = report(random.Random(1), specific=False, **kwargs)
    assert not plain.specific and "进一步" in plain.text
    own = report(random.Random(1), specific=True, quality="unit_summary", **kwargs)
    assert not own.specific and "我局" in own.text
