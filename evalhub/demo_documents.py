"""Generated Chinese work plans and evaluation reports for the demo data (and, later, the screening model).

Reports follow the 财预〔2020〕10号 outline and come in two qualities: *specific* (numbers, dates, actors,
findings tied to the object) and *boilerplate* (the generic "进一步加强…" prose bureaus complain about,
seed 001). Deterministic for a given seed. All content is invented.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass
from decimal import Decimal

from evalhub.review.services import REPORT_CHAPTERS, IndicatorInput

BOILERPLATE_PROBLEMS = [
    "预算绩效管理意识有待进一步提高。",
    "项目管理制度有待进一步完善。",
    "绩效目标设置不够细化量化。",
    "资金使用效益有待进一步提升。",
    "部门之间沟通协调机制有待进一步加强。",
]
BOILERPLATE_ADVICE = [
    "进一步加强预算绩效管理，提高思想认识。",
    "进一步完善项目管理制度，规范资金使用。",
    "进一步细化量化绩效目标，提高绩效目标质量。",
    "进一步加强部门协作，形成工作合力。",
    "持续提升资金使用效益。",
]


@dataclass
class GeneratedReport:
    text: str
    docx: bytes
    indicators: list[IndicatorInput]
    total: Decimal
    grade_label: str
    specific: bool


def _docx(title: str, paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for line in paragraphs:
        document.add_paragraph(line)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.rows[r].cells[c].text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _grade(total: Decimal) -> str:
    return "优" if total >= 90 else "良" if total >= 80 else "中" if total >= 60 else "差"


def indicators_for(rng: random.Random, quality: float) -> list[IndicatorInput]:
    """A scoring table whose weights sum to 100 with outputs + benefits at 60% or more."""
    spec = [("决策", "项目立项规范性", 6), ("决策", "绩效目标合理性", 7), ("决策", "资金分配合理性", 7),
            ("过程", "资金到位率", 5), ("过程", "预算执行率", 5), ("过程", "资金使用合规性", 5), ("过程", "管理制度健全性", 5),
            ("产出", "实际完成率", 10), ("产出", "质量达标率", 10), ("产出", "完成及时性", 10),
            ("效益", "社会效益", 12), ("效益", "可持续影响", 8), ("效益", "服务对象满意度", 10)]
    rows = []
    for category, name, weight in spec:
        ratio = min(1.0, max(0.4, rng.gauss(quality, 0.06)))
        score = (Decimal(weight) * Decimal(str(round(ratio, 2)))).quantize(Decimal("0.1"))
        rows.append(IndicatorInput(category, name, str(weight), str(score)))
    return rows


def report(rng: random.Random, *, object_name: str, unit: str, firm: str, year: int, amount_wan: Decimal,
           specific: bool, break_outline: bool = False) -> GeneratedReport:
    quality = rng.uniform(0.86, 0.97) if specific else rng.uniform(0.8, 0.92)
    indicators = indicators_for(rng, quality)
    total = sum((Decimal(i.score) for i in indicators), Decimal("0"))
    spent = (amount_wan * Decimal(str(rng.uniform(0.78, 0.99)))).quantize(Decimal("0.01"))
    rate = (spent / amount_wan * 100).quantize(Decimal("0.1"))
    towns = rng.sample(["库尔勒市", "轮台县", "尉犁县", "若羌县", "且末县", "焉耆县", "和静县", "和硕县", "博湖县"], 3)
    body: dict[str, list[str]] = {
        "基本情况": [f"{object_name}由{unit}组织实施，{year} 年度预算安排 {amount_wan} 万元，实际支出 {spent} 万元，预算执行率 {rate}%。"
                 + (f"项目覆盖{'、'.join(towns)}，共 {rng.randint(12, 60)} 个实施点。" if specific else "项目实施总体顺利。")],
        "绩效评价工作开展情况": [f"受委托，{firm}于 {year + 1} 年 3 月至 5 月开展评价，采用资料核查、现场勘查和问卷调查相结合的方法，"
                           + (f"抽查 {rng.randint(8, 20)} 个实施点，回收有效问卷 {rng.randint(150, 600)} 份。" if specific else "对项目进行了全面评价。")],
        "综合评价情况及评价结论": [f"经评价，该项目综合得分 {total} 分，评价等级为“{_grade(total)}”。"],
        "绩效评价指标分析": [f"{i.category}类指标“{i.name}”权重 {i.weight} 分，得 {i.score} 分" +
                       (f"，依据为{unit}提供的台账及现场核实情况。" if specific else "。") for i in indicators],
        "主要经验及做法": (["建立了项目月调度机制，按月通报进度。"] if specific else ["领导高度重视，组织保障有力。"]),
        "存在的问题及原因分析": ([f"一是{towns[0]}实施点有 {rng.randint(2, 9)} 处设施未按期投入使用，原因是配套资金 {rng.randint(20, 90)} 万元迟至 {year} 年 11 月才到位。",
                          f"二是绩效目标中“受益人数”未设定基准值，导致完成率无法核实。"] if specific
                         else rng.sample(BOILERPLATE_PROBLEMS, 3)),
        "有关建议": ([f"一是{unit}于 {year + 1} 年 9 月底前完成剩余设施验收，并报{object_name[:4]}主管部门备案。",
                  f"二是在 {year + 2} 年预算申报时补充受益人数基准值，由财务科负责复核。"] if specific
                 else rng.sample(BOILERPLATE_ADVICE, 3)),
        "其他需要说明的问题": ["无。"],
    }
    chapters = list(REPORT_CHAPTERS)
    if break_outline:
        chapters.remove("主要经验及做法")
    numbers = "一二三四五六七八"
    lines = [f"{year} 年度{object_name}绩效评价报告", f"评价机构：{firm}"]
    for n, chapter in zip(numbers, chapters):
        lines.append(f"{n}、{chapter}")
        lines.extend(body[chapter])
    table = [["一级指标", "二级指标", "权重", "得分"]] + [[i.category, i.name, i.weight, i.score] for i in indicators]
    text = "\n".join(lines)
    return GeneratedReport(text=text, docx=_docx(lines[0], lines[1:], table), indicators=indicators, total=total,
                           grade_label=_grade(total), specific=specific)


def work_plan(rng: random.Random, *, object_name: str, unit: str, firm: str, year: int) -> bytes:
    lines = [f"评价对象：{object_name}（{unit}）", f"评价机构：{firm}",
             "一、评价目的与范围", f"评价 {year} 年度项目资金的决策、过程、产出和效益情况。",
             "二、评价指标体系", "按决策、过程、产出、效益四类设置 13 项二级指标，产出和效益权重合计 60%。",
             "三、评价方法与标准", "采用比较法、因素分析法和公众评判法；评分标准见附件。",
             "四、数据采集与调查设计", f"资料清单 {rng.randint(20, 40)} 项；抽取实施点 {rng.randint(8, 20)} 个；问卷样本 {rng.randint(200, 500)} 份。",
             "五、组织与进度", "3 月完成资料收集，4 月现场评价，5 月提交报告初稿。",
             "六、质量控制与保密", "实行项目负责人、质控部、合伙人三级复核；评价资料专人保管。"]
    return _docx(f"{object_name}绩效评价实施方案", lines)
