"""Generated Chinese work plans and evaluation reports for the demo data.

The reports come from the one report generator, ``evalhub.demo.corpus`` (the 财预〔2020〕10号 outline,
an indicator table whose arithmetic holds, and a quality: *specific* — numbers, dates, actors, findings tied
to the object — or the generic "进一步加强…" prose bureaus complain about, seed 001, among others).
Deterministic for a given seed. All content is invented.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from evalhub.review.services import IndicatorInput
from evalhub.demo.corpus import (  # noqa: F401  (re-exported: other modules import them from here)
    GENERIC_ADVICE as BOILERPLATE_ADVICE,
    GENERIC_PROBLEMS as BOILERPLATE_PROBLEMS,
    _docx,
    _generate,
    _grade,
    indicators_for,
    make_facts,
    to_docx,
)


@dataclass
class GeneratedReport:
    text: str
    docx: bytes
    indicators: list[IndicatorInput]
    total: Decimal
    grade_label: str
    specific: bool


def report(rng: random.Random, *, object_name: str, unit: str, firm: str, year: int, amount_wan: Decimal,
           specific: bool, break_outline: bool = False, quality: str | None = None) -> GeneratedReport:
    """A report for the demo: ``specific`` → quality "specific", otherwise "generic"; ``break_outline`` →
    "missing_chapters" with 主要经验及做法 left out; ``quality`` (one of ``corpus.QUALITIES``) overrides both."""
    facts = make_facts(rng, object_name=object_name, unit=unit, firm=firm, year=year, budget_wan=amount_wan)
    omit = None
    if quality is None:
        quality = "missing_chapters" if break_outline else "specific" if specific else "generic"
        omit = ("主要经验及做法",) if break_outline else None
    generated = _generate(rng, facts, quality, omit=omit)
    return GeneratedReport(text=generated.text, docx=to_docx(generated), indicators=generated.indicators,
                           total=generated.total, grade_label=generated.grade_label, specific=quality == "specific")


def work_plan(rng: random.Random, *, object_name: str, unit: str, firm: str, year: int) -> bytes:
    lines = [f"评价对象：{object_name}（{unit}）", f"评价机构：{firm}",
             "一、评价目的与范围", f"评价 {year} 年度项目资金的决策、过程、产出和效益情况。",
             "二、评价指标体系", "按决策、过程、产出、效益四类设置 13 项二级指标，产出和效益权重合计 60%。",
             "三、评价方法与标准", "采用比较法、因素分析法和公众评判法；评分标准见附件。",
             "四、数据采集与调查设计", f"资料清单 {rng.randint(20, 40)} 项；抽取实施点 {rng.randint(8, 20)} 个；问卷样本 {rng.randint(200, 500)} 份。",
             "五、组织与进度", "3 月完成资料收集，4 月现场评价，5 月提交报告初稿。",
             "六、质量控制与保密", "实行项目负责人、质控部、合伙人三级复核；评价资料专人保管。"]
    return _docx(f"{object_name}绩效评价实施方案", lines)
