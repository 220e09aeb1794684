"""The documents the loop produces (python-docx): the rectification report (整改报告) a unit signs and
uploads, and the annual key-evaluation summary a bureau sends to the 人大 with the final accounts.

Charts are drawn by matplotlib (Agg, no display). The machine has no CJK font, so the charts carry only
numbers and Latin letters; the Chinese is in the captions and tables of the document.
"""
from __future__ import annotations

import io
from collections import Counter
from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from evalhub.core.models import Bureau
from evalhub.core.timeutil import beijing_today
from evalhub.extensions import db
from evalhub.procurement.models import Engagement
from evalhub.results import services
from evalhub.results.models import ResultFinding, FindingStatus
from evalhub.results.permissions import RESULT_STATES
from evalhub.review.models import EvaluationResult, Grade, IndicatorCategory


def _docx():
    import docx

    return docx.Document()


def _saved(document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _table(document, header: list[str], rows: list[list]) -> None:
    table = document.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header):
        cell.text = text
    for row in rows:
        cells = table.add_row().cells
        for cell, value in zip(cells, row):
            cell.text = "" if value is None else str(value)


def rectification_report(engagement: Engagement, today: date | None = None) -> bytes:
    """The unit's 整改报告: every confirmed finding with its plan, what was done and the bureau's verification;
    a signature block for the unit to sign before uploading it back."""
    today = today or beijing_today()
    findings = list(db.session.execute(sa.select(ResultFinding).where(
        ResultFinding.engagement_id == engagement.id, ResultFinding.status != FindingStatus.DRAFT)
        .order_by(ResultFinding.position, ResultFinding.id)).scalars())
    document = _docx()
    document.add_heading(f"{engagement.name}绩效评价问题整改报告", level=1)
    document.add_paragraph(f"{engagement.bureau.name}：")
    closed = sum(1 for f in findings if f.status == FindingStatus.CLOSED)
    document.add_paragraph(
        f"根据{engagement.year}年度“{engagement.name}”重点绩效评价（任务编号 {engagement.reference}）发现的问题和建议，"
        f"{engagement.budget_unit.name}逐条制定整改措施并落实整改。共 {len(findings)} 条，已整改到位 {closed} 条。现将整改情况报告如下：")
    for n, f in enumerate(findings, start=1):
        document.add_heading(f"{n}. {f.kind.label}（{f.category.label}{'·' + f.indicator if f.indicator else ''}）", level=2)
        document.add_paragraph(f.text)
        document.add_paragraph(f"责任单位：{f.responsible_unit.name}；整改期限：{f.deadline.isoformat() if f.deadline else '—'}；"
                               f"状态：{f.status.label}")
        document.add_paragraph(f"整改措施：{f.plan or '（尚未提交）'}")
        document.add_paragraph(f"整改情况：{f.unit_note or '（尚未提交）'}")
        if f.verification is not None:
            document.add_paragraph(f"财政部门核验：{f.verification.label}。{f.verification_note or ''}")
    document.add_paragraph("")
    document.add_paragraph(f"{engagement.budget_unit.name}（盖章）")
    document.add_paragraph("负责人（签字）：")
    document.add_paragraph(f"{today.year} 年 {today.month} 月 {today.day} 日")
    return _saved(document)


def _chart(kind: str, labels: list[str], values: list[float], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3), dpi=100)
    try:
        if kind == "bar":
            axes.bar(labels, values, color="#0d6efd")
            for x, v in zip(labels, values):
                axes.annotate(f"{v:g}", (x, v), ha="center", va="bottom", fontsize=8)
        else:
            axes.pie(values, labels=labels, autopct="%1.0f%%")
        axes.set_title(title)
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


GRADE_LATIN = {Grade.EXCELLENT: "A (you)", Grade.GOOD: "B (liang)", Grade.FAIR: "C (zhong)", Grade.POOR: "D (cha)"}
CATEGORY_LATIN = {IndicatorCategory.DECISION: "Decision", IndicatorCategory.PROCESS: "Process",
                  IndicatorCategory.OUTPUT: "Output", IndicatorCategory.BENEFIT: "Benefit"}


def summary_figures(bureau: Bureau, year: int) -> dict:
    """What the summary reports, computed once so that the test checks the same numbers the document shows: the key
    evaluations the bureau sends its 人大 (seed 000 "本级重点项目绩效评价报告"), not its other commissioned work."""
    rows = db.session.execute(sa.select(Engagement, EvaluationResult).join(
        EvaluationResult, EvaluationResult.engagement_id == Engagement.id).where(
        Engagement.bureau_id == bureau.id, Engagement.year == year, Engagement.state.in_(RESULT_STATES),
        services.EVALUATED).order_by(Engagement.id)).all()
    findings = list(db.session.execute(sa.select(ResultFinding).where(
        ResultFinding.engagement_id.in_([e.id for e, _ in rows] or [-1]), ResultFinding.status != FindingStatus.DRAFT)).scalars())
    figures = services.figures(bureau, year)
    return {
        "rows": rows,
        "count": len(rows),
        "funds": sum((e.amount for e, _ in rows), Decimal("0")),
        "grades": Counter(r.grade for _, r in rows),
        "categories": Counter(f.category for f in findings),
        "findings": len(findings),
        "closed": sum(1 for f in findings if f.status == FindingStatus.CLOSED),
        "rate": figures["rate"],
        "reduced": figures["reduced"],
        "cancelled": figures["cancelled"],
        "entries": {en.engagement_id: en for en in services.entries(bureau, year)},
    }


def people_congress_summary(bureau: Bureau, year: int) -> bytes:
    """The year's key-evaluation summary (向人大报送的重点绩效评价情况) as a .docx with charts."""
    from docx.shared import Inches

    f = summary_figures(bureau, year)
    document = _docx()
    document.add_heading(f"{bureau.name}{year}年度重点绩效评价情况报告", level=1)
    # no findings, no rate: a 0 % would read as nothing rectified (the table below says “—”)
    rate = f"，整改率 {f['rate']}%" if f["rate"] is not None else ""
    document.add_paragraph(
        f"{year}年度，{bureau.short_name}本级组织第三方机构对 {f['count']} 个评价对象开展重点绩效评价，"
        f"涉及资金 {f['funds'] / 10000:,.2f} 万元。评价共发现问题和建议 {f['findings']} 条，已整改到位 {f['closed']} 条"
        f"{rate}；依据评价结果调减预算 {f['reduced'] / 10000:,.2f} 万元，取消安排项目资金 {f['cancelled'] / 10000:,.2f} 万元。")
    document.add_heading("一、评价对象及结果", level=2)
    _table(document, ["序号", "评价对象", "预算单位", "资金（万元）", "得分", "等级", "结果应用"], [
        [n, e.name, e.budget_unit.name, f"{e.amount / 10000:,.2f}", r.score, r.grade.label,
         (lambda en: en.labels(en.measures) if en and en.confirmed_at else "（未确认）")(f["entries"].get(e.id))]
        for n, (e, r) in enumerate(f["rows"], start=1)])
    document.add_heading("二、评价等级分布", level=2)
    grades = [g for g in Grade]
    _table(document, ["等级", "个数"], [[g.label, f["grades"].get(g, 0)] for g in grades])
    if f["count"]:
        document.add_picture(io.BytesIO(_chart("bar", [GRADE_LATIN[g] for g in grades],
                                               [f["grades"].get(g, 0) for g in grades], f"{year}")), width=Inches(4.5))
        document.add_paragraph("图 1  评价等级分布（A 优、B 良、C 中、D 差；单位：个）")
    document.add_heading("三、发现问题分类", level=2)
    categories = list(IndicatorCategory)
    _table(document, ["类别", "条数"], [[c.label, f["categories"].get(c, 0)] for c in categories])
    if f["findings"]:
        document.add_picture(io.BytesIO(_chart("bar", [CATEGORY_LATIN[c] for c in categories],
                                               [f["categories"].get(c, 0) for c in categories], f"{year}")),
                             width=Inches(4.5))
        document.add_paragraph("图 2  问题按指标类别分布（Decision 决策、Process 过程、Output 产出、Benefit 效益；单位：条）")
    document.add_heading("四、整改和结果应用", level=2)
    _table(document, ["指标", "数值"], [["问题和建议（条）", f["findings"]], ["已整改到位（条）", f["closed"]],
                                     ["整改率（%）", f["rate"] if f["rate"] is not None else "—"],
                                     ["调减预算（万元）", f"{f['reduced'] / 10000:,.2f}"],
                                     ["取消安排项目资金（万元）", f"{f['cancelled'] / 10000:,.2f}"]])
    return _saved(document)
