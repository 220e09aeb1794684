"""Interpretable features of one report (or work plan, or fragment), computed against the stored-report
index. Each feature is something an inspector can check by reading: a share of copied sentences, a count
of numbers per thousand characters, a missing chapter. A value is None when the text or the context does
not allow it (a fragment has no chapters; a text without an engagement has no recorded budget)."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from evalhub.core.batches import BatchMemory
from evalhub.screening import textproc
from evalhub.screening.index import CorpusIndex, StoredReport, signature

ANALYSIS_CHAPTER = "绩效评价指标分析"
PROBLEM_CHAPTERS = ("存在的问题及原因分析", "有关建议")


@dataclass(frozen=True)
class FeatureDef:
    key: str
    label: str
    riskier_when_higher: bool
    fmt: str = "pct"  # pct, num, int, bool
    group: str = "copy"  # copy, specificity, structure

    def show(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "—"
        if self.fmt == "pct":
            return f"{value * 100:.0f}%"
        if self.fmt == "bool":
            return "是" if value else "否"
        if self.fmt == "int":
            return f"{value:,.0f}"
        return f"{value:.1f}"


FEATURES: list[FeatureDef] = [
    FeatureDef("copy_same_firm", "与本机构其他报告重复的句子", True),
    FeatureDef("copy_other_firms", "与其他机构报告重复的句子", True),
    FeatureDef("copy_previous", "与同一对象以往评价报告重复的句子", True),
    FeatureDef("max_similarity", "与单篇已存报告的最大句子重合度", True),
    FeatureDef("near_duplicate", "与已存报告近似重复", True, "bool"),
    FeatureDef("boilerplate_share", "常见套话句子", True),
    FeatureDef("unit_voice_share", "以被评价单位口吻（我局、我单位）写的句子", True),
    FeatureDef("generic_advice_share", "问题和建议中没有数字、责任主体或时限的空泛表述", True, group="specificity"),
    FeatureDef("numbers_per_1k", "每千字数字个数", False, "num", "specificity"),
    FeatureDef("amounts_per_1k", "每千字金额个数", False, "num", "specificity"),
    FeatureDef("percentages_per_1k", "每千字百分比个数", False, "num", "specificity"),
    FeatureDef("dates_per_1k", "每千字日期个数", False, "num", "specificity"),
    FeatureDef("entities_per_1k", "每千字具体地名、机构名", False, "num", "specificity"),
    FeatureDef("facts_stated", "写明了备案的预算、支出和执行率", False, "pct", "specificity"),
    FeatureDef("missing_chapters", "缺少的章节数", True, "int", "structure"),
    FeatureDef("duplicated_chapters", "重复的章节数", True, "int", "structure"),
    FeatureDef("analysis_chars", "指标分析章节字数", False, "int", "structure"),
    FeatureDef("problems_chars", "问题和建议章节字数", False, "int", "structure"),
    FeatureDef("length_chars", "全文字数", False, "int", "structure"),
    FeatureDef("internal_repetition", "报告内部重复的句子", True, "pct", "structure"),
    # Vacuous specificity (issue 16): figures and claims that look like content but say nothing checkable.
    FeatureDef("quantities_per_1k", "每千字带计量单位的实际数量（金额、人数、里程、面积等，不含年份、文号和100%）", False,
               "num", "specificity"),
    FeatureDef("restated_targets_per_1k", "每千字“实际值照抄目标值”的指标", True, "num", "specificity"),
    FeatureDef("blanket_claims_per_1k", "每千字笼统表述（“均已完成”“100%”“暂无”“效果明显”）", True, "num", "specificity"),
    FeatureDef("unsupported_outcome_share", "没有数字佐证的成效表述", True, "pct", "specificity"),
    FeatureDef("slogan_share", "政策套话和文件依据句子", True, "pct", "specificity"),
    FeatureDef("placeholders", "模板占位符或填写说明（××、XX、20xx、***、“100字以内”）", True, "int", "specificity"),
]
FEATURE_KEYS = [f.key for f in FEATURES]
BY_KEY = {f.key: f for f in FEATURES}

# One pass over the digits: each number with what follows it (a unit of money, %, or the rest of a date). A date
# written with dots (2023.1.1, 2023.12.31) is tried first: otherwise "2023.12" is read as a decimal and the date's
# tail ".31" no longer fits. A year and month with a dot (2023.1) is a date only at either end of a period
# ("2023.1-2023.12", "2023.10至2024.3"): alone it may be a figure.
_RANGE = "-—－~～至到"
_YEAR_MONTH = r"(?:19|20)\d{2}\.(?:1[0-2]|0?[1-9])(?![\d.])"
_NUMBER = re.compile(r"(?<![\d.,])(?:((?:19|20)\d{2}\.\d{1,2}\.\d{1,2}(?![\d.]\d)"
                     rf"|{_YEAR_MONTH}(?=\s?[{_RANGE}])|(?:(?<=[{_RANGE}])|(?<=[{_RANGE}]\s)){_YEAR_MONTH}(?!\s*(?:亿元|万元|元|%)))"
                     r"|(\d+(?:,\d{3})*(?:\.\d+)?)"
                     r"(?:\s*(亿元|万元|元|%)|(\s*年\s*\d{1,2}\s*月|[-/.]\d{1,2}[-/.]\d{1,2}|\s*月\s*\d{1,2}\s*日))?)")
_ENTITY_SUFFIX = re.compile(r"乡|镇|村|社区|街道|水厂|小学|中学|学校|医院|卫生院|卫生室|合作社|公司|园区|灌区|水库|泵站|服务站|幼儿园")
_TITLE = re.compile(r"《[^》]{2,30}》")
_CJK_CHAR = re.compile(r"[\u4e00-\u9fff]")
_GENERIC = re.compile(r"进一步|加强|完善|提高|提升|健全|强化|规范|加大|持续|不断|有待|不够|不足|落实|重视")
_ACTOR = re.compile(r"〔名〕|局|委员会|办公室|财务科|科室|[^学]科(?!学)|项目办|中心|公司|乡|镇|村|街道|政府|学校|医院|卫生院|站")
_DEADLINE = re.compile(r"年底|月底|季度|前完成|之前|以前|日前|周内|天内|年内")
_UNIT_VOICE = re.compile(r"我(?:局|委|厅|办|单位|院|校|中心|县|市|乡|镇)|本单位|本局|我们单位")
_WAN = {"亿元": Decimal(10000), "万元": Decimal(1), "元": Decimal("0.0001")}


@dataclass
class ScreeningContext:
    """What evalhub knows about the text's engagement; every field optional (the API scores bare text)."""

    kind: str = "report"  # the index kind compared with: report or work_plan
    names: list[str] = field(default_factory=list)
    # What the text is: report, work_plan, self_evaluation or fragment; None: decided from the text
    # (textproc.detect_kind). Chapter features are computed only for a whole report.
    text_kind: str | None = None
    firm_id: int | None = None
    engagement_id: int | None = None
    object_key: str | None = None
    year: int | None = None
    budget_wan: Decimal | None = None
    spent_wan: Decimal | None = None
    execution_rate: Decimal | None = None
    chapters: Sequence[str] = ()


@dataclass(kw_only=True)
class _TextFindings:
    """What the text alone shows: its features so far, chapters, sentence keys and signature."""

    features: dict[str, float | None]
    chapters: dict[str, dict[str, Any]]
    gaps: list[str]
    missing: list[str]
    duplicated: list[str]
    keys: np.ndarray
    signature: np.ndarray
    text_kind: str = "report"


@dataclass(kw_only=True)
class Screening(_TextFindings):
    """A text's screening: what the text shows, and what the index says it shares with stored texts."""

    passages: list[dict[str, Any]]
    most_similar: dict[str, Any] | None
    near_duplicates: list[dict[str, Any]]
    # The copy sentences, their index matches and the stock-phrase threshold ``finish`` looked up (None when it
    # looked nothing up: no index, an empty one, or no copy sentence), for the per-chapter shares
    # (``services.sections_for``) without parsing the text and asking the index a second time. Not stored.
    lookup: tuple[list[textproc.Sentence], list, int] | None = field(default=None, repr=False, compare=False)

    def stored(self, doc_id: int, ctx: ScreeningContext, label: str = "") -> StoredReport:
        return StoredReport(doc_id=doc_id, firm_id=ctx.firm_id, engagement_id=ctx.engagement_id,
                            object_key=ctx.object_key, year=ctx.year, kind=ctx.kind, keys=self.keys,
                            signature=self.signature, label=label)


def _per_1k(count: int, chars: int) -> float:
    return round(count * 1000 / chars, 2) if chars else 0.0


@dataclass
class _Numbers:
    count: int = 0
    amounts: list[Decimal] = field(default_factory=list)  # in 万元
    percents: list[Decimal] = field(default_factory=list)
    dates: int = 0


def _numbers(text: str) -> _Numbers:
    out = _Numbers()
    for dotted_date, number, unit, date_rest in _NUMBER.findall(text):
        out.count += 1
        if dotted_date or date_rest:
            out.dates += 1
            continue
        if not unit:
            continue
        try:
            value = Decimal(number.replace(",", ""))
        except InvalidOperation:
            continue
        if unit == "%":
            out.percents.append(value)
        else:
            out.amounts.append(value * _WAN[unit])
    return out


def _entities(masked: str) -> set[str]:
    """Named places and organisations (东风村, 红旗乡卫生院, 《…》 titles) other than the report's own names:
    the suffix and up to four Chinese characters before it."""
    found = set(_TITLE.findall(masked))
    for match in _ENTITY_SUFFIX.finditer(masked):
        start = match.start()
        head = start
        while head > start - 4 and head > 0 and _CJK_CHAR.match(masked, head - 1):
            head -= 1
        if start - head >= 2:
            found.add(masked[head:match.end()])
    return found


def _states(values: list[Decimal], recorded: Decimal | None, tolerance: Decimal) -> bool | None:
    if recorded is None:
        return None
    return any(abs(v - recorded) <= max(tolerance * abs(recorded), Decimal("0.01")) for v in values)


_LIST_NUMERAL = re.compile(r"^\s*(?:\d+[、.．)）]|[（(]\d+[)）]|[一二三四五六七八九十]+是|[（(]?[一二三四五六七八九十]+[)）、])\s*")


def is_generic(sentence: str) -> bool:
    """A problem or recommendation with stock wording and no number, actor or deadline (a list numeral such as
    "1." or "一是" is not a number)."""
    sentence = _LIST_NUMERAL.sub("", sentence)
    return bool(_GENERIC.search(sentence)) and not any(ch.isdigit() for ch in sentence) \
        and not _ACTOR.search(sentence) and not _DEADLINE.search(sentence)


# --- vacuous specificity ---------------------------------------------------------------------------------

_UNIT = (r"亿元|万元|元|万亩|亩|公顷|平方公里|平方米|㎡|m2|m³|立方米|公里|千米|km|米|m|吨|万人次|人次|万人|人|户|家|个|座|所|处|台|套|"
         r"辆|盏|株|棵|张|床|件|批次|批|份|项|条|次|场|篇|册|卷|页|学时|课时|小时|天|吨/年|%")
_QUANTITY = re.compile(rf"(?<![\d.,])(\d+(?:,\d{{3}})*(?:\.\d+)?)\s*({_UNIT})")
_TABLE_PAIR = re.compile(r"(?<![\d.])([≥≤=><]?)\s*(\d+(?:\.\d+)?)\s*([%a-zA-Z\u4e00-\u9fff]{0,3})\s+[≥≤=><]?\s*(\d+(?:\.\d+)?)\s*\3(?![\d.])")
# Two equal numbers side by side are a target written again only when something shows the first is a target: a
# comparison sign (≥150 150) or a unit of measure on both (300 公里 300 公里, 100% 100%). Bare pairs are a scoring
# row's 分值 and 得分 (10 10) or a budget row's 年初预算 and 调整预算 (50.00 50.00); money and points say the same.
_NOT_TARGET_UNITS = {"", "元", "万元", "亿元", "分"}
_TARGET_HEADER = re.compile(r"^(?:年度)?(?:目标值|指标值|目标|计划值|预期值)$")
_ACTUAL_HEADER = re.compile(r"^(?:实际值|实际完成值|完成值|实际完成|实际完成情况)$")
_FIRST_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?")
_PROSE_PAIR = re.compile(r"(?:目标|指标)值?[^。；，\n\d]{0,12}?(\d+(?:\.\d+)?)[^。；\n]{0,24}?(?:实际|完成)值?[^。；，\n\d]{0,12}?(\d+(?:\.\d+)?)")
_BLANKET = re.compile(r"均已完成|全部完成|全面完成|圆满完成|均已到位|全部到位|均达到|均已达到|均能按时|按时按量|已完成100%|100%完成|"
                      r"完成率(?:为|达到?)?100|均为100|暂无|无问题|达成预期指标|效果明显|成效显著|成效明显|较好地完成|良好的社会效益|"
                      r"明显改善|显著提升|不断提升|不断提高|(?<![\d.])100(?:\.0+)?%")
_OUTCOME = re.compile(r"效益|成效|效果|改善|提升|提高|促进|增强|满意|保障了|推动|发挥了")
_SLOGAN = re.compile(r"贯彻落实|习近平|党中央|十八大|十九大|二十大|高质量发展|高度重视|为进一步|根据《|按照《|依据《|文件精神|文件要求|"
                     r"决策部署|重要讲话|指示精神|报告如下|治理体系和治理能力|以人民为中心|新发展理念|重要举措|重要组成部分|"
                     r"重要意义|内在要求|关键举措|民生工程|德政工程")
_PLACEHOLDER = re.compile(r"[×✕]{2,}|(?<![A-Za-z])[Xx]{2,}(?![A-Za-z])|20[xX]{2}|[xX]{2}\.[xX]{2}|\*{2,}(?:\.\*+)?|【\s*】|此处填写|请填写|"
                          r"\d+字以内|\[[^\]]{0,20}(?:填写|名称)[^\]]{0,10}\]|年\s+月\s+日")
_PROBLEM_HEADING = re.compile(r"问题|不足|建议|措施|改进|下一步")


def quantities(text: str) -> int:
    """Measured quantities (an amount, a count, a length … with its unit), leaving out 100% (see blanket claims)."""
    return sum(1 for number, unit in _QUANTITY.findall(text)
               if not (unit == "%" and number.replace(",", "").rstrip("0").rstrip(".") == "1"))


def _cell_number(cell: str) -> float | None:
    match = _FIRST_NUMBER.search(cell)
    return float(match.group()) if match else None


def restated_targets(text: str) -> int:
    """Target/actual pairs where the actual value is the target written again (“≥150 150”, “目标值90%，实际值90%”):
    under a table header naming the target and actual columns (目标值/指标值 … 实际值/实际完成值), those two cells
    of each row with the header's number of cells; elsewhere a pair whose sign or unit shows a target
    (``_TABLE_PAIR``); and in prose. Cells are told apart by whitespace (the extractor's tabs become spaces
    when the text is normalised), so a row whose cells hold spaces falls back to the sign-or-unit rule."""
    count = 0
    header: tuple[int, int, int] | None = None  # (cells, target, actual) of the table being read
    for line in text.split("\n"):
        cells = line.split()
        target = next((i for i, c in enumerate(cells) if _TARGET_HEADER.match(c)), None)
        actual = next((i for i, c in enumerate(cells) if _ACTUAL_HEADER.match(c)), None)
        if target is not None and actual is not None:
            header = (len(cells), target, actual)
            continue
        if "。" in line:
            header = None  # a sentence: the table is over
        elif header is not None and header[0] - min(header[1], header[2]) <= len(cells) <= header[0]:
            # fewer cells than the header: the left ones merged over rows (一级/二级指标), stored empty and gone
            # with the whitespace — the columns are counted from the right
            shift = header[0] - len(cells)
            a, b = _cell_number(cells[header[1] - shift]), _cell_number(cells[header[2] - shift])
            count += a is not None and a == b
            continue
        for sign, a, unit, b in _TABLE_PAIR.findall(line):
            count += float(a) == float(b) and (bool(sign) or unit not in _NOT_TARGET_UNITS)
        for a, b in _PROSE_PAIR.findall(line):
            count += float(a) == float(b)
    return count


def blanket_claims(text: str) -> int:
    return len(_BLANKET.findall(text))


_HUNDRED = re.compile(r"(?<![\d.])100(?:\.0+)?%")


def _has_figure(sentence: str) -> bool:
    """A figure that could support a claim: any number but a blanket 100%."""
    return any(ch.isdigit() for ch in _HUNDRED.sub("", sentence))


def placeholders(text: str) -> int:
    """Template placeholders and filling instructions left in the text."""
    return len(_PLACEHOLDER.findall(text))


def _problem_sentences(doc: textproc.Document, whole: bool) -> list[textproc.Sentence]:
    """Problems and recommendations: their chapters in a whole report; in a fragment, the sentences under a
    heading that names problems, recommendations or measures."""
    if whole:
        return [s for s in doc.sentences if s.chapter in PROBLEM_CHAPTERS and len(s.text) >= 6]
    out: list[textproc.Sentence] = []
    inside = False
    for s in doc.sentences:
        if textproc.heading_numeral(s.text) and len(s.text) <= 40:
            inside = bool(_PROBLEM_HEADING.search(s.text))
            continue
        if (inside or s.chapter in PROBLEM_CHAPTERS) and len(s.text) >= 6:
            out.append(s)
    return out


@dataclass(kw_only=True)
class Prepared(_TextFindings):
    """Everything that needs only the text and its context (the expensive part, run in worker processes
    by ``screen_in_order``); the copy features need the index and come after."""

    copy_sentences: list[textproc.Sentence]


def prepare(text: str | None, ctx: ScreeningContext) -> Prepared:
    doc = textproc.parse(text, ctx.chapters, ctx.names)
    body = doc.text
    chars = len(re.sub(r"\s", "", body))
    mask = textproc.NameMask(ctx.names)
    masked = mask(body)
    copy_sentences = doc.copy_sentences
    keys = np.unique(np.array([s.key for s in copy_sentences], dtype=np.uint64))
    sig = signature(textproc.shingle_hashes(body, mask))
    f: dict[str, float | None] = dict.fromkeys(FEATURE_KEYS)
    chapters: dict[str, dict[str, Any]] = {}
    for s in doc.sentences:
        row = chapters.setdefault(s.chapter or "", {"sentences": 0, "same_firm": 0, "other_firms": 0, "previous": 0,
                                                  "chars": 0})
        row["sentences"] += 1
        row["chars"] += len(s.text)
    n = len(copy_sentences)
    if n:
        key_counts = Counter(s.key for s in copy_sentences)
        f["internal_repetition"] = round(sum(c - 1 for c in key_counts.values()) / n, 4)
    f["unit_voice_share"] = round(sum(1 for s in doc.sentences if ("我" in s.text or "本" in s.text)
                                      and _UNIT_VOICE.search(s.text)) / len(doc.sentences), 4) if doc.sentences else None

    # --- specificity -------------------------------------------------------------------------------
    numbers = _numbers(masked)
    f["numbers_per_1k"] = _per_1k(numbers.count, chars)
    f["amounts_per_1k"] = _per_1k(len(numbers.amounts), chars)
    f["percentages_per_1k"] = _per_1k(len(numbers.percents), chars)
    f["dates_per_1k"] = _per_1k(numbers.dates, chars)
    f["entities_per_1k"] = _per_1k(len(_entities(masked)), chars)
    gaps: list[str] = []
    stated = {
        "预算": _states(numbers.amounts, ctx.budget_wan, Decimal("0.001")),
        "实际支出": _states(numbers.amounts, ctx.spent_wan, Decimal("0.001")),
        "预算执行率": _states(numbers.percents, ctx.execution_rate, Decimal("0.002")),
    }
    known = {k: v for k, v in stated.items() if v is not None}
    if known:
        f["facts_stated"] = round(sum(1 for v in known.values() if v) / len(known), 4)
        recorded = {"预算": f"{ctx.budget_wan} 万元", "实际支出": f"{ctx.spent_wan} 万元",
                    "预算执行率": f"{ctx.execution_rate}%"}
        gaps += [f"未写明{k}（系统记录为 {recorded[k]}）" for k, v in known.items() if not v]
    whole = _is_whole(doc, ctx)
    text_kind = ctx.text_kind or ("work_plan" if ctx.kind == "work_plan" else "report" if whole else "fragment")
    sentences = [s for s in doc.sentences if len(s.text) >= 6]
    per_1k = max(chars, 300)  # short fragments: one hit in 80 characters is not twelve per thousand
    f["quantities_per_1k"] = round(quantities(masked) * 1000 / per_1k, 2) if chars else 0.0
    f["restated_targets_per_1k"] = round(restated_targets(body) * 1000 / per_1k, 2) if chars else 0.0
    f["blanket_claims_per_1k"] = round(blanket_claims(body) * 1000 / per_1k, 2) if chars else 0.0
    f["placeholders"] = float(placeholders(body))
    if sentences:
        f["unsupported_outcome_share"] = round(sum(1 for s in sentences if _OUTCOME.search(s.text)
                                                   and not _has_figure(s.text)) / len(sentences), 4)
        f["slogan_share"] = round(sum(1 for s in sentences if _SLOGAN.search(s.text)) / len(sentences), 4)
    problem_sentences = _problem_sentences(doc, whole)
    if problem_sentences:
        generic = [s for s in problem_sentences if is_generic(s.text)]
        f["generic_advice_share"] = round(len(generic) / len(problem_sentences), 4)
        if generic:
            gaps.append(f"问题和建议共 {len(problem_sentences)} 句，其中 {len(generic)} 句没有数字、责任主体或时限，"
                        f"如“{generic[0].text[:40]}”")

    # --- structure -----------------------------------------------------------------------------------
    missing: list[str] = []
    duplicated: list[str] = []
    if whole and ctx.chapters:
        missing = [c for c, k in doc.heading_counts.items() if k == 0]
        duplicated = [c for c, k in doc.heading_counts.items() if k > 1]
        f["missing_chapters"] = float(len(missing))
        f["duplicated_chapters"] = float(len(duplicated))
        if ANALYSIS_CHAPTER in doc.heading_counts:
            f["analysis_chars"] = float(len(doc.chapter_text(ANALYSIS_CHAPTER).replace("\n", "")))
        if any(c in doc.heading_counts for c in PROBLEM_CHAPTERS):
            f["problems_chars"] = float(sum(len(doc.chapter_text(c).replace("\n", "")) for c in PROBLEM_CHAPTERS))
    f["length_chars"] = float(chars)
    return Prepared(copy_sentences=copy_sentences, features=f, chapters=chapters, gaps=gaps, missing=missing, duplicated=duplicated,
                    keys=keys, signature=sig, text_kind=text_kind)


def _is_whole(doc: textproc.Document, ctx: ScreeningContext) -> bool:
    """Whether the chapter features apply. A caller who says "report" is believed when the text has at least
    three of the outline's chapters (an upload is a whole document); otherwise the text decides (length and
    headings, ``textproc.detect_kind``). Self-evaluations and fragments have no outline to check."""
    if ctx.text_kind in ("fragment", "self_evaluation", "work_plan") or ctx.kind == "work_plan":
        return False
    if ctx.text_kind == "report":
        return sum(1 for n in doc.heading_counts.values() if n) >= textproc.WHOLE_MIN_CHAPTERS
    return textproc.detect_kind(doc) == "report"


def finish(prepared: Prepared, ctx: ScreeningContext, index: CorpusIndex | None) -> Screening:
    """The copy features of a prepared text against the stored reports."""
    f, keys, sig = dict(prepared.features), prepared.keys, prepared.signature
    chapters = {k: dict(v) for k, v in prepared.chapters.items()}
    copy_sentences = prepared.copy_sentences
    n = len(copy_sentences)
    passages: list[dict[str, Any]] = []
    most_similar = None
    near: list[dict[str, Any]] = []
    looked_up = None
    if index is not None and len(index) and n:
        threshold = index.boilerplate_threshold(ctx.kind)
        matches = index.lookup([s.key for s in copy_sentences], kind=ctx.kind, firm_id=ctx.firm_id,
                               engagement_id=ctx.engagement_id, object_key=ctx.object_key, year=ctx.year,
                               list_limit=threshold)
        looked_up = (copy_sentences, matches, threshold)
        same = other = previous = boiler = 0
        per_report: Counter[int] = Counter()
        for s, m in zip(copy_sentences, matches):
            if m is None:
                continue
            row = chapters[s.chapter or ""]
            if m.same_firm:
                same += 1
                row["same_firm"] += 1
            if m.other_firms:
                other += 1
                row["other_firms"] += 1
            if m.previous:
                previous += 1
                row["previous"] += 1
            if m.frequency >= threshold:
                boiler += 1
            else:
                per_report.update(set(m.same_firm) | set(m.other_firms))
        f["copy_same_firm"] = round(same / n, 4)
        f["copy_other_firms"] = round(other / n, 4)
        f["copy_previous"] = round(previous / n, 4)
        f["boilerplate_share"] = round(boiler / n, 4)
        best_number, best_count = per_report.most_common(1)[0] if per_report else (None, 0)
        f["max_similarity"] = round(best_count / n, 4)
        if best_number is not None:
            most_similar = {"doc_id": index.reports[best_number].doc_id, "share": round(best_count / n, 4),
                            "label": index.reports[best_number].label}
        dups = index.near_duplicates(keys, sig, kind=ctx.kind, engagement_id=ctx.engagement_id)
        near = [{"doc_id": index.reports[number].doc_id, "jaccard": round(j, 4), "label": index.reports[number].label}
                for number, j in dups[:5]]
        f["near_duplicate"] = 1.0 if near else 0.0
        passages = _passages(copy_sentences, matches, threshold, best_number, index)
    elif index is not None and n:
        for key in ("copy_same_firm", "copy_other_firms", "copy_previous", "boilerplate_share", "max_similarity",
                    "near_duplicate"):
            f[key] = 0.0
    return Screening(features=f, chapters={k: v for k, v in chapters.items() if k}, passages=passages,
                     most_similar=most_similar, near_duplicates=near, gaps=list(prepared.gaps),
                     missing=list(prepared.missing), duplicated=list(prepared.duplicated), keys=keys, signature=sig,
                     text_kind=prepared.text_kind, lookup=looked_up)


def compute(text: str | None, ctx: ScreeningContext, index: CorpusIndex | None) -> Screening:
    """All the features of one text against the index (the index is not changed)."""
    if _reused.memory is None:
        return finish(prepare(text, ctx), ctx, index)
    key = (text, ctx.kind, tuple(ctx.names), ctx.text_kind, ctx.firm_id, ctx.engagement_id, ctx.object_key, ctx.year,
           ctx.budget_wan, ctx.spent_wan, ctx.execution_rate, tuple(ctx.chapters))
    prepared = _reused.memory.get(key)
    if prepared is None:
        prepared = _reused.memory[key] = prepare(text, ctx)
    return finish(prepared, ctx, index)


# Within ``reusing_prepared``: a text screened again with the same context reuses what ``prepare`` found the first
# time (it depends on nothing else; ``finish`` copies what it changes): a batch that screens its texts and then
# re-screens them against the whole corpus (the demo's archive) reads each text once. Kept until the block ends.
_reused: BatchMemory[tuple, Prepared] = BatchMemory()
reusing_prepared = _reused.kept


def _prepare_item(item: tuple[str | None, ScreeningContext]) -> Prepared:
    return prepare(*item)


def screen_in_order(items: Iterable[tuple[str | None, ScreeningContext, int, str]], index: CorpusIndex, *,
                    workers: int = 0, chunk: int = 64) -> Iterator[Screening]:
    """Screen many texts in order, each against the texts before it, adding each to the index: (text,
    context, doc_id, label) in, Screening out. With ``workers`` > 0 the text-only work runs in that many
    helper processes while this one does the lookups in order (on 2 cores: 1 helper)."""
    items = list(items)
    pairs = ((text, ctx) for text, ctx, _doc_id, _label in items)
    pool = None
    if workers > 0 and len(items) > chunk:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(workers)
        prepared: Iterator[Prepared] = pool.imap(_prepare_item, pairs, chunksize=max(1, chunk // workers))
    else:
        prepared = map(_prepare_item, pairs)
    try:
        for (_text, ctx, doc_id, label), ready in zip(items, prepared):
            screening = finish(ready, ctx, index)
            index.add(screening.stored(doc_id, ctx, label))
            yield screening
    finally:
        if pool is not None:
            pool.close()
            pool.join()


def _passages(sentences: list[textproc.Sentence], matches: list, threshold: int, best: int | None,
              index: CorpusIndex, limit: int = 8) -> list[dict[str, Any]]:
    """Runs of consecutive copied sentences from one source report (stock phrases left out: they have a
    reason of their own), longest first. The source sentence is found again by its key when shown."""
    runs: list[dict[str, Any]] = []
    for s, m in zip(sentences, matches):
        if m is None or m.frequency >= threshold:
            continue
        candidates = m.previous or m.same_firm or m.other_firms
        source = best if best is not None and (best in m.same_firm or best in m.other_firms) else candidates[0]
        relation = "previous" if source in m.previous else "same_firm" if source in m.same_firm else "other_firms"
        last = runs[-1] if runs else None
        if last and last["source_number"] == source and last["chapter"] == s.chapter \
                and s.position - last["positions"][-1] <= 2:
            last["positions"].append(s.position)
            last["keys"].append(s.key)
            last["text"] += s.text
            continue
        runs.append({"source_number": source, "relation": relation, "chapter": s.chapter, "positions": [s.position],
                     "keys": [s.key], "text": s.text})
    runs.sort(key=lambda r: -len(r["text"]))
    out = []
    for run in runs[:limit]:
        source = index.reports[run.pop("source_number")]
        run["source_doc_id"] = source.doc_id
        run["source_label"] = source.label
        run["share"] = round(len(run["positions"]) / len(sentences), 4) if sentences else 0.0
        run["keys"] = [str(k) for k in run["keys"]]  # JSON has no 64-bit integers everywhere
        out.append(run)
    return out
