"""Generated Chinese work plans and evaluation reports for the demo data.

The reports come from the one report generator, ``evalhub.demo.corpus`` (the 财预〔2020〕10号 outline,
an indicator table whose arithmetic holds, and a quality: *specific* — numbers, dates, actors, findings tied
to the object — or the generic "进一步加强…" prose bureaus complain about, seed 001, among others).
Deterministic for a given seed. All content is invented.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from decimal import Decimal

from evalhub.review.services import IndicatorInput
from evalhub.demo.corpus import _docx, _generate, make_facts, to_docx


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
    # Several templates per firm, edited per object (corpus.generate_work_plan, issue 16).
    from evalhub.demo.corpus import generate_work_plan

    lines = generate_work_plan(rng, object_name=object_name, unit=unit, firm=firm, year=year)
    return _docx(f"{object_name}绩效评价实施方案", lines)


def _png(width: int = 8, height: int = 8) -> bytes:
    """A small grey PNG: the scanned business licence of the demo (stored by content type like any upload)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xc8" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def admission_documents(firm: str, day) -> list[tuple[str, str, bytes]]:
    """The seven documents an application must carry before admission (registry.services.ADMISSION_DOCUMENTS),
    as (kind, filename, bytes): the licence as a scan, the rest as short texts naming the firm."""
    texts = [
        ("credit_record", "信用记录", f"信用记录查询结果（信用中国、国家企业信用信息公示系统），查询日期 {day:%Y-%m-%d}：无不良记录。"),
        ("staff_qualifications", "从业人员资格证明", "注册会计师、资产评估师、高级职称人员证书复印件清单。"),
        ("quality_control", "质量控制制度", "项目负责人、质控部、合伙人三级复核；底稿归档与抽查。"),
        ("confidentiality", "保密制度", "评价资料专人保管，涉密信息不出单位，离职人员签署保密承诺。"),
        ("training", "培训制度", "每年预算绩效管理业务培训不少于 40 学时，新入职人员岗前培训。"),
        ("no_violation", "近三年无重大违法违规声明", "本机构近三年在经营活动中无重大违法违规记录。"),
    ]
    return [("licence", f"{firm}营业执照.png", _png())] + [
        (kind, f"{firm}{name}.txt", f"{firm}{name}\n{text}\n".encode("utf-8")) for kind, name, text in texts]


def redacted_report(title: str, text: str) -> bytes:
    """A report's public version: its text with phone numbers blacked out, as a Word file of its own (the firm's
    own file is never published: review.services.publish refuses it)."""
    lines = [re.sub(r"(?<!\d)1[3-9]\d{9}(?!\d)", "***********", line) for line in (text or "").splitlines()]
    return _docx(title, lines[1:] if lines else [])


def contract_text(*, name: str, purchaser: str, supplier: str, amount_wan: Decimal, signed: str, start: str, end: str,
                  deliverables: str) -> bytes:
    """The public text of a service contract for its announcement (合同公告, 政府采购法实施条例 第五十条): the terms a
    bureau publishes, the supplier's price breakdown (its commercial secret) left out."""
    return _docx(f"{name}绩效评价服务合同（公开版）", [
        f"甲方（采购人）：{purchaser}", f"乙方（供应商）：{supplier}",
        f"一、服务内容：对“{name}”开展第三方绩效评价，交付{deliverables}。",
        f"二、服务期限：{start} 至 {end}。", f"三、合同金额：人民币 {amount_wan} 万元（分项报价明细不予公开）。",
        "四、双方权利义务、验收、违约责任等按采购文件和乙方响应文件约定执行。", f"五、签订日期：{signed}。"])

