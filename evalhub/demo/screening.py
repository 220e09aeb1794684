"""Demo report archive and report screening (`flask evalhub demo`, after the engagements and before credit
and supervision, so the 2023–2025 credit ratings and the random inspection campaign include it).

An archive of past key evaluations as a bureau would migrate it from its previous performance-management
system: about 230 engagements of budget years 2023–2025 at 巴州 (most), 库尔勒市, 轮台县, 民丰县 and the
自治区, each with its report(s), expert panels, result and the commissioner's rating of the firm — so the
screening queue, the flag cards and the model pages have realistic years of reports on `make run`.

- Every report comes from the one report generator (``evalhub.demo.corpus``). Each firm has a quality
  propensity (careful, template-heavy, sloppy or average), so the queue shows a firm's template reused
  across its reports; objects evaluated in consecutive years let ``recycled`` reports copy last year's.
  Firms are chosen as the eligibility rules would allow (usable library, field, recusal, yearly cap,
  rotation where possible).
- Per engagement: a plan item in the bureau-year's approved plan; an ARCHIVED engagement whose amount and
  actual spending are the report's facts; the report as an uploaded .docx (stored and text-extracted by
  ``core.files.store``, as a real upload) with its indicator table; a first-round panel of five drawn by a
  real, recorded, witnessed and verifiable ``core.draws`` draw over the bureau's usable expert pool (with the usual
  exclusions), whose reviews scatter around the report's expected first-round score; after a failed first
  round, a rectified version and a passing second round; then the result and the commissioner's rating.
- Loaded in bulk: the rows are written directly and backdated into their years (indicator lines, seats,
  reviews, scores, results and ratings as bulk inserts) instead of going through submit / form_panel /
  respond / save_review / rate_firm — hundreds of engagements through every service would make `make run`
  and tests/test_demo.py minutes slower, and the services refuse past dates anyway. What stays real: the
  draws (audited), file storage and extraction, the screening (each report screened in submission order, so
  the index grows as it would have, then everything re-screened so early texts are compared with later ones
  too), the inspections, training and promotion. One audit event summarises the import.
- Labels beyond the panels: four targeted cases opened from the top of 巴州's 2024 (then 2023) queue and closed (three
  reports found copied or templated, one not); then the region administrator trains and promotes a model
  (with too few labels the rule score stays); one 2025 case is left open.
- Deterministic: ``random.Random(SEED)`` (the draw seeds come from it too). Idempotent: nothing happens
  once the archive's first engagement (reference ending in ``-A001``) exists.
"""
from __future__ import annotations

import io
import math
import random
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Callable
from xml.sax.saxutils import escape

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from evalhub.core import audit, draws, files
from evalhub.core.enums import Field, Role
from evalhub.core.formatting import points_text
from evalhub.core.models import Bureau, BudgetUnit, User
from evalhub.core.services import create_user
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement.eligibility import field_mismatch, library_bureau_ids
from evalhub.procurement.models import (
    BudgetKind, Engagement, EngagementState as S, EngagementTransition, EvaluationPlan, ObjectType,
    PlanItem, PlanStatus, ServiceKind,
)
from evalhub.registry.models import Expert, Firm, FirmStatus
from evalhub.registry.services import avoidance_reasons_of, expert_is_drawable, firm_recusal_reasons
from evalhub.review import services as R
from evalhub.review.models import (
    CommissionerRating, EvaluationResult, Grade, IndicatorCategory, InvitationStatus, PanelInvitation, PanelStatus, ReportIndicator,
    Review, ReviewPanel, ReviewScore, ReviewStatus, RubricKind, Submission, SubmissionKind,
)
from evalhub.demo.corpus import QUALITIES, SyntheticReport, generate_report, make_facts

SEED = 20260301

# The archive's panels are long closed: their draws are witnessed and verifiable like any, but public, and the
# rows the reveal would seat are bulk-loaded below, so the kind's effect is nothing.
ARCHIVE_PANEL = "archive_review_panel"
draws.on_drawn(ARCHIVE_PANEL, released=lambda record: True)(lambda record, actor: None)
PASSWORD = "evalhub-demo"
YEARS = (2023, 2024, 2025)
# engagements per budget year (2023, 2024, 2025). 巴州 and its two counties make the 2025 queue of 巴州's
# staff; 巴州's own 2025 share is smaller, so its firms stay under the yearly cap for the 2025 engagements
# still to be procured in the demo.
PER_YEAR = {"652800": (34, 34, 24), "652801": (9, 10, 16), "652822": (10, 11, 17), "653227": (9, 9, 10),
            "650000": (7, 7, 8)}
# who acts for a bureau (draws, approvals); 库尔勒市 has no account: its draws are recorded without a person
STAFF = {"652800": "bz.staff", "652822": "lt.admin", "653227": "mf.staff", "650000": "xj.admin"}
ADMIN = {"652800": "bz.admin", "652822": "lt.admin", "653227": "mf.admin", "650000": "xj.admin"}
BUDGET_SCALE = {"650000": 3.0, "652800": 1.0, "652801": 0.6, "652822": 0.4, "653227": 0.35}

FIELD_OF = {"水利": Field.WATER, "教育": Field.EDUCATION, "卫生健康": Field.HEALTH, "社会保障": Field.SOCIAL,
            "交通运输": Field.TRANSPORT, "生态环境": Field.ENVIRONMENT, "文化旅游": Field.CULTURE,
            "农业农村": Field.AGRICULTURE, "财政经济": Field.FINANCE}


def _objects(field_name: str, names: str) -> list[tuple[str, str]]:
    return [(field_name, n) for n in names.split()]


# budget unit → the objects it has had evaluated (corpus field, name without the year)
OBJECTS: dict[str, list[tuple[str, str]]] = {
    # 巴州
    "巴州统计局": _objects("财政经济", "巴州人口变动抽样调查项目 巴州住户收支与生活状况调查项目 巴州农业农村统计调查项目 "
                                   "巴州统计信息化建设项目 巴州统计调查政府购买服务项目"),
    "巴州农业科学研究院": _objects("农业农村", "巴州农业科学研究院农业科技成果转化项目 巴州农业科学研究院棉花良种繁育基地建设项目 "
                                       "巴州农业科学研究院特色林果提质增效技术推广项目 巴州农业科学研究院设施农业示范基地建设项目 "
                                       "巴州农业科学研究院农作物种质资源保护项目 巴州农业产业发展资金项目"),
    "巴州民政局": _objects("社会保障", "巴州困难群众救助补助资金项目 巴州特困人员供养服务设施建设项目 巴州城乡社区居家养老服务项目 "
                                  "巴州残疾人两项补贴资金项目 巴州城乡居民最低生活保障资金项目 巴州儿童福利和未成年人保护项目"),
    "巴州医疗保障局": _objects("卫生健康", "巴州城乡居民医疗救助资金项目 巴州医疗保障信息化建设项目 巴州长期护理保险试点项目 "
                                    "巴州医保基金监管专项经费项目 巴州城乡居民基本医疗保险补助资金项目"),
    "巴州红旗高级技工学校（巴州红旗中等职业学校）": _objects(
        "教育", "巴州红旗高级技工学校中等职业教育国家助学金项目 巴州红旗高级技工学校实训设备购置项目 "
              "巴州红旗高级技工学校职业技能提升行动项目 巴州红旗高级技工学校校舍维修改造项目 巴州红旗高级技工学校产教融合实训中心建设项目"),
    "巴州博斯腾湖科学研究所": _objects("生态环境", "博斯腾湖水生态监测项目 博斯腾湖湖区湿地生态保护修复项目 "
                                        "博斯腾湖入湖河流水质监测站运行项目 博斯腾湖芦苇资源保护利用项目 巴州水污染防治资金项目"),
    "巴州水利局": _objects("水利", "巴州农村饮水安全巩固提升工程项目 巴州中小河流治理项目 巴州高效节水灌溉项目 "
                              "巴州小型水库除险加固项目 巴州灌区续建配套与节水改造项目 巴州农村供水保障工程项目"),
    "库尔勒经济技术开发区市场监督管理局": _objects(
        "财政经济", "库尔勒经济技术开发区食品安全监督抽检与风险监测项目 库尔勒经济技术开发区特种设备安全监管项目 "
                "库尔勒经济技术开发区市场主体培育专项资金项目 库尔勒经济技术开发区知识产权运营服务项目 库尔勒经济技术开发区计量检测能力建设项目"),
    "库尔勒经济技术开发区人才服务中心": _objects(
        "社会保障", "库尔勒经济技术开发区就业补助资金项目 库尔勒经济技术开发区高校毕业生就业见习补贴项目 "
                "库尔勒经济技术开发区职业技能培训补贴项目 库尔勒经济技术开发区高层次人才引进专项资金项目 库尔勒经济技术开发区零工市场建设运营项目"),
    "库尔勒经济技术开发区管理委员会经济发展局": _objects(
        "财政经济", "库尔勒经济技术开发区中小企业发展专项资金项目 库尔勒经济技术开发区产业园区基础设施建设项目 "
                "库尔勒经济技术开发区工业企业技术改造补助资金项目 库尔勒经济技术开发区电子商务公共服务中心建设项目 库尔勒经济技术开发区招商引资专项经费项目"),
    # 库尔勒市
    "库尔勒市教育局": _objects("教育", "库尔勒市义务教育薄弱环节改善与能力提升项目 库尔勒市学生资助补助经费项目 "
                                  "库尔勒市农村义务教育学生营养改善计划项目 库尔勒市学前教育发展资金项目 库尔勒市中小学校舍维修改造项目 "
                                  "库尔勒市普通高中改造计划项目 库尔勒市教师培训专项经费项目 库尔勒市特殊教育提升计划项目 "
                                  "库尔勒市校园安全设施建设项目"),
    "库尔勒市住房和城乡建设局": _objects("生态环境", "库尔勒市城镇污水处理设施提质增效项目 库尔勒市城乡生活垃圾收运处理项目 "
                                         "库尔勒市城市园林绿化提升项目 库尔勒市城市供排水管网改造项目 库尔勒市农村人居环境整治项目 "
                                         "库尔勒市孔雀河沿岸环境综合整治项目 库尔勒市城市黑臭水体治理项目"),
    # 轮台县
    "轮台县医疗保障局": _objects("卫生健康", "轮台县城乡居民医疗救助资金项目 轮台县城乡居民基本医疗保险补助资金项目 "
                                     "轮台县医保经办服务能力提升项目 轮台县定点医药机构监管专项经费项目 轮台县家庭医生签约服务项目"),
    "轮台县教育局": _objects("教育", "轮台县义务教育薄弱环节改善与能力提升项目 轮台县学生资助补助经费项目 "
                                "轮台县农村义务教育学生营养改善计划项目 轮台县学前教育发展资金项目 轮台县中小学校舍维修改造项目 "
                                "轮台县普通高中改造计划项目"),
    "轮台县农业农村局": _objects("农业农村", "轮台县高标准农田建设项目 轮台县农业产业发展资金项目 轮台县动物防疫补助经费项目 "
                                     "轮台县耕地地力保护补贴项目 轮台县设施农业建设项目 轮台县庭院经济发展项目"),
    # 民丰县
    "民丰县民政局": _objects("社会保障", "民丰县困难群众救助补助资金项目 民丰县特困人员供养服务项目 民丰县城乡居民最低生活保障资金项目 "
                                   "民丰县农村留守老人关爱服务项目 民丰县残疾人两项补贴资金项目"),
    "民丰县住房和城乡建设局": _objects("生态环境", "民丰县城镇污水处理设施提质增效项目 民丰县城乡生活垃圾收运处理项目 "
                                        "民丰县农村人居环境整治项目 民丰县县城园林绿化提升项目"),
    "民丰县文化体育广播电视和旅游局": _objects("文化旅游", "民丰县公共文化服务体系建设项目 民丰县文化惠民工程项目 "
                                              "民丰县旅游基础设施建设项目 民丰县非物质文化遗产保护项目 民丰县村级综合文化服务中心建设项目 "
                                              "民丰县全民健身设施建设项目"),
    "民丰县农业农村和水利局": _objects("农业农村", "民丰县高标准农田建设项目 民丰县庭院经济发展项目 民丰县动物防疫补助经费项目")
    + _objects("水利", "民丰县农村饮水安全巩固提升工程项目 民丰县高效节水灌溉项目 民丰县尼雅河中小河流治理项目"),
    "民丰县尼雅镇人民政府": _objects("农业农村", "民丰县尼雅镇庭院经济发展项目 民丰县尼雅镇乡村振兴衔接资金项目 "
                                       "民丰县尼雅镇设施农业建设项目"),
    "民丰县财政局-彩票公益金": _objects("社会保障", "民丰县彩票公益金资助养老服务项目 民丰县彩票公益金支持残疾人康复项目")
    + _objects("文化旅游", "民丰县彩票公益金全民健身设施建设项目"),
    # 自治区
    "新疆维吾尔自治区教育厅": _objects("教育", "自治区学生资助补助经费项目 自治区学前教育发展资金项目 自治区普通高中改造计划项目 "
                                      "自治区农村义务教育学生营养改善计划项目 自治区义务教育薄弱环节改善与能力提升项目"),
    "新疆维吾尔自治区卫生健康委员会": _objects("卫生健康", "自治区基本公共卫生服务项目 自治区县域医共体建设项目 自治区妇幼健康服务项目 "
                                              "自治区医疗服务与保障能力提升项目 自治区村卫生室标准化建设项目"),
    "新疆维吾尔自治区水利厅": _objects("水利", "自治区中小河流治理项目 自治区小型水库除险加固项目 自治区灌区续建配套与节水改造项目 "
                                      "自治区农村供水保障工程项目 自治区高效节水灌溉项目"),
}

# The archive's quality mix (more careful work than corpus.DEFAULT_MIX: about 40% of first rounds fail,
# as 巴州's own 2024 list suggests), and each firm's propensity (multipliers, in corpus.QUALITIES order).
MIX = {"specific": 0.64, "template": 0.12, "generic": 0.06, "missing_chapters": 0.04, "unit_summary": 0.05,
       "recycled": 0.09}
PROFILES = {"careful": (2.2, 0.5, 0.5, 0.6, 0.6, 0.6), "template": (0.7, 3.0, 0.8, 0.8, 0.8, 1.4),
            "sloppy": (0.5, 0.8, 2.4, 2.0, 2.0, 1.2), "average": (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)}

FINDINGS = {
    "template": "报告“存在的问题及原因分析”“有关建议”等章节与本机构其他项目报告大段相同，仅替换项目名称和个别数字，未针对评价对象",
    "recycled": "报告沿用上年度同一项目的评价报告，仅改动年份和个别数字，本年度评价证据不足",
    "generic": "问题和建议为通用套话，缺少本项目的证据和数据，评分依据不足",
    "unit_summary": "报告大段照搬被评价单位的自评材料，缺少评价机构的独立核查和分析",
    "missing_chapters": "报告缺少规定章节，部分章节内容与其他报告雷同，质量控制流于形式",
}


# === the .docx writer ===============================================================================

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>')
_HEADING = re.compile(r"^[一二三四五六七八九十]、")


def _paragraph(text: str, *, bold: bool = False, size: int | None = None, tabs: str = "") -> str:
    """One paragraph of one run (python-docx reads a document run by run): tabs in the text become tab
    characters, newlines line breaks."""
    props = ("<w:b/>" if bold else "") + (f'<w:sz w:val="{size}"/>' if size else "")
    content = "<w:br/>".join("<w:tab/>".join(f'<w:t xml:space="preserve">{escape(part)}</w:t>' for part in line.split("\t"))
                             for line in text.split("\n"))
    return f"<w:p>{tabs}<w:r>" + (f"<w:rPr>{props}</w:rPr>" if props else "") + f"{content}</w:r></w:p>"


# The indicator table's columns, as tab stops (twentieths of a point).
_TABLE_TABS = '<w:pPr><w:tabs>' + "".join(f'<w:tab w:val="left" w:pos="{pos}"/>' for pos in (1400, 4600, 5600)) + '</w:tabs></w:pPr>'


def report_docx(report: SyntheticReport) -> bytes:
    """The report as a Word document: the title, bold chapter headings each followed by the chapter's
    lines, then the indicator table as tab-aligned lines — a minimal WordprocessingML package that Word
    and python-docx read, whose extracted text is exactly what ``corpus.to_docx`` gives. Reading it back
    (``core.files.store``) takes python-docx ~4 ms instead of ~14 ms (it reads run by run: a real Word
    table and a paragraph per line are what cost)."""
    lines = report.text.split("\n")
    body = [_paragraph(lines[0], bold=True, size=32)]
    block: list[str] = []  # the cover, then each chapter's lines: one paragraph with line breaks
    for line in lines[1:]:
        if _HEADING.match(line):
            body += [_paragraph("\n".join(block))] if block else []
            body.append(_paragraph(line, bold=True))
            block = []
        else:
            block.append(line)
    body += [_paragraph("\n".join(block))] if block else []
    body.append(_paragraph("一级指标\t二级指标\t权重\t得分", bold=True, tabs=_TABLE_TABS))
    body.append(_paragraph("\n".join(f"{i.category}\t{i.name}\t{i.weight}\t{i.score}" for i in report.indicators),
                           tabs=_TABLE_TABS))
    document = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
                + "".join(body) + '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr></w:body></w:document>')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _RELS)
        package.writestr("word/document.xml", document)
    return buffer.getvalue()


# === the plan (pure Python, before the database is written) =========================================

@dataclass
class _Version:
    report: SyntheticReport
    submitted_at: datetime
    points: list[list[Decimal]] = field(default_factory=list)  # per expert, per rubric item
    panel_at: datetime | None = None
    reviewed_at: list[datetime] = field(default_factory=list)
    decided_at: datetime | None = None
    letter_at: datetime | None = None  # a failed round: when the opinion letter went back to the firm
    score: Decimal | None = None
    passed: bool = False


@dataclass
class _Planned:
    bureau: Bureau
    year: int
    number: int
    unit: BudgetUnit
    base: str
    corpus_field: str
    firm: Firm
    quality: str
    versions: list[_Version]

    @property
    def name(self) -> str:
        return f"{self.year}年{self.base}"


def _redate(text: str, old: date, new: date) -> str:
    return text.replace(f"{old.year}年{old.month}月{old.day}日", f"{new.year}年{new.month}月{new.day}日")


def _filename(engagement, number: int) -> str:
    return f"{engagement.name}绩效评价报告{'' if number == 1 else '（整改稿）'}.docx"


def _object_type(base: str) -> ObjectType:
    if "政府购买" in base:
        return ObjectType.SERVICE_PURCHASE
    if base.endswith(("资金项目", "经费项目", "补贴项目")) or "资金" in base:
        return ObjectType.POLICY
    return ObjectType.PROJECT


class _Archive:
    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        self.users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
        self.bureaus = {b.code: b for b in db.session.execute(sa.select(Bureau)).scalars()}
        self.units = {(u.bureau_id, u.name): u for u in db.session.execute(sa.select(BudgetUnit)).scalars()}
        self.library: dict[str, list[Firm]] = {}
        for code in PER_YEAR:
            bureau = self.bureaus[code]
            self.library[code] = db.session.execute(
                sa.select(Firm).where(Firm.bureau_id.in_(library_bureau_ids(bureau)), Firm.status == FirmStatus.ADMITTED)
                .options(selectinload(Firm.relations)).order_by(Firm.id)).scalars().all()
        # the demo's reports are key evaluations: that 委托事项's rubric and mark (the general ones unless a bureau set its own)
        self.rubrics = {self.bureaus[code].id: R.current_rubric(self.bureaus[code], RubricKind.REPORT, ServiceKind.KEY_EVALUATION)
                        for code in PER_YEAR}
        firms = sorted({f.id: f for fs in self.library.values() for f in fs}.values(), key=lambda f: f.id)
        kinds = [list(PROFILES)[i % len(PROFILES)] for i in range(len(firms))]
        self.rng.shuffle(kinds)
        self.profile = {f.id: kind for f, kind in zip(firms, kinds)}
        self.firm_fields = {f.id: f.fields for f in firms}  # a query per read: read once
        self.firm_weight = {f.id: math.exp(self.rng.gauss(0, 0.5)) for f in firms}
        self.propensity = {f.id: [m * p * math.exp(self.rng.gauss(0, 0.25)) for m, p in
                                  zip((MIX[q] for q in QUALITIES), PROFILES[self.profile[f.id]])] for f in firms}
        # what the engagements already in the database hold: per bureau-year counts, firm × unit × year
        self.held: Counter = Counter()
        self.did: set[tuple[int, int, int]] = set()
        for bureau_id, year, firm_id, unit_id in db.session.execute(sa.select(
                Engagement.bureau_id, Engagement.year, Engagement.firm_id, Engagement.budget_unit_id).where(
                Engagement.firm_id.is_not(None), Engagement.state != S.CANCELLED)):
            self.held[(bureau_id, year, firm_id)] += 1
            self.did.add((firm_id, unit_id, year))

    # --- choices ---------------------------------------------------------------------------------

    def _firm(self, bureau: Bureau, year: int, unit: BudgetUnit, wanted: Field) -> Firm:
        """A firm the eligibility rules would have allowed: in the usable library, fitting the field, no
        recusal relation; under the yearly cap (for the latest year two below it, so the demo's 2025
        engagements still to be procured find firms) and, where possible, not the unit's firm of the year
        before (rotation)."""
        cap = get_setting(bureau, "firm.max_key_evaluations")
        soft = cap - 2 if year == max(YEARS) else cap
        on = date(year, 3, 1)
        candidates = [f for f in self.library[bureau.code] if not field_mismatch(self.firm_fields[f.id], wanted)
                      and not firm_recusal_reasons(f, bureau_ids=[bureau.id], budget_unit_ids=[unit.id], on=on)]

        def tier(firm: Firm) -> tuple:
            held = self.held[(bureau.id, year, firm.id)]
            return held >= cap, held >= soft, (firm.id, unit.id, year - 1) in self.did

        best = min(tier(f) for f in candidates)
        pool = [f for f in candidates if tier(f) == best]
        # local firms win more of a bureau's work than the upper bureaus' firms
        near = {bureau.id: 2.0, bureau.parent_id: 1.5}
        firm = self.rng.choices(pool, [self.firm_weight[f.id] * near.get(f.bureau_id, 1.0) for f in pool])[0]
        self.held[(bureau.id, year, firm.id)] += 1
        self.did.add((firm.id, unit.id, year))
        return firm

    def _quality(self, firm: Firm, has_previous: bool) -> str:
        weights = list(self.propensity[firm.id])
        weights[QUALITIES.index("recycled")] *= 2.5 if has_previous else 0.0
        return self.rng.choices(QUALITIES, weights)[0]

    def _objects_for(self, bureau: Bureau, year: int, count: int, last: set[tuple[int, str]]) -> list[tuple[BudgetUnit, str, str]]:
        """count distinct objects: about a third evaluated the year before too, the rest not."""
        pool = [(self.units[(bureau.id, unit_name)], field_name, base)
                for unit_name, objects in OBJECTS.items() if (bureau.id, unit_name) in self.units
                for field_name, base in objects]
        again = [o for o in pool if (o[0].id, o[2]) in last]
        fresh = [o for o in pool if (o[0].id, o[2]) not in last]
        self.rng.shuffle(again)
        self.rng.shuffle(fresh)
        repeats = min(len(again), round(count * 0.35))
        chosen = again[:repeats] + fresh[:count - repeats]
        chosen += again[repeats:repeats + count - len(chosen)]
        return chosen

    def _at(self, day: date) -> datetime:
        """Office hours in Beijing (10:00–17:00), stored in UTC."""
        return datetime(day.year, day.month, day.day, 2) + timedelta(minutes=self.rng.randint(0, 420))

    def _review_round(self, bureau: Bureau, version: _Version, centre: float, *, must_pass: bool = False) -> None:
        """Five experts' item points: each expert's total within ±2.5 of ``centre`` (the report's expected
        first-round score), spread over the rubric items; the panel's score follows as the service computes it."""
        rng = self.rng
        rubric = self.rubrics[bureau.id]
        pass_mark = R.pass_mark_for(bureau, SubmissionKind.REPORT, ServiceKind.KEY_EVALUATION)
        version.panel_at = self._at(version.submitted_at.date() + timedelta(days=rng.randint(1, 4)))
        while True:
            version.points = []
            for _ in range(5):
                share = min(99.0, max(50.0, centre + rng.uniform(-2.5, 2.5))) / 100
                version.points.append([min(item.max_points, max(Decimal("0"), (
                    item.max_points * Decimal(f"{share + rng.gauss(0, 0.02):.4f}") * 2).quantize(Decimal("1")) / 2))
                    for item in rubric.items])
            totals = [sum(p, Decimal("0")) for p in version.points]
            version.score = R.panel_score(totals, get_setting(bureau, "review.trimmed_mean_from"))
            if not must_pass or version.score >= pass_mark:
                break
            centre += 0.5
        version.passed = version.score >= pass_mark
        version.reviewed_at = sorted(version.panel_at + timedelta(days=rng.randint(2, 9), hours=rng.randint(0, 6))
                                     for _ in version.points)
        version.decided_at = version.reviewed_at[-1]

    def plan(self) -> list[_Planned]:
        rng = self.rng
        planned: list[_Planned] = []
        final_text: dict[tuple[int, str], tuple[int, str, Decimal]] = {}  # (unit id, object) → (year, text, budget)
        for year in YEARS:
            this_year: dict[tuple[int, str], tuple[int, str, Decimal]] = {}
            for code, counts in PER_YEAR.items():
                count = counts[YEARS.index(year)]
                bureau = self.bureaus[code]
                last = {key for key, (y, _t, _b) in final_text.items() if y == year - 1}
                for number, (unit, corpus_field, base) in enumerate(self._objects_for(bureau, year, count, last), start=1):
                    wanted = Field.STATISTICS if unit.name.endswith("统计局") else FIELD_OF[corpus_field]
                    firm = self._firm(bureau, year, unit, wanted)
                    before = final_text.get((unit.id, base))
                    previous = before if before is not None and before[0] == year - 1 else None
                    quality = self._quality(firm, previous is not None)
                    if previous is not None:
                        budget = (previous[2] * Decimal(str(round(rng.uniform(0.85, 1.2), 3)))).quantize(Decimal("0.01"))
                    else:
                        scale = BUDGET_SCALE[code]
                        budget = Decimal(f"{min(30000.0, max(60.0, math.exp(rng.gauss(math.log(1500 * scale), 0.7)))):.2f}")
                    facts = make_facts(rng, object_name=f"{year}年{base}", unit=unit.name, firm=firm.name,
                                       region=bureau.short_name, year=year, field=corpus_field, budget_wan=budget)
                    key = f"{unit.id}:{base}"
                    first = generate_report(rng, facts, quality, firm_key=firm.id, object_key=key,
                                            previous_text=previous[1] if previous else None)
                    # Reports of year Y come in from March to mid-September of Y + 1 (all reviewed before today).
                    offset = (first.submitted_on - date(year + 1, 3, 1)).days
                    day = date(year + 1, 3, 1) + timedelta(days=offset * 200 // 275)
                    first.text = _redate(first.text, first.submitted_on, day)
                    first.submitted_on = day
                    v1 = _Version(first, self._at(day))
                    self._review_round(bureau, v1, float(first.first_round_score))
                    versions = [v1]
                    if not v1.passed:
                        rectified = generate_report(rng, facts, "specific", firm_key=firm.id, object_key=key)
                        v1.letter_at = self._at(v1.decided_at.date() + timedelta(days=rng.randint(1, 3)))
                        day2 = v1.letter_at.date() + timedelta(days=rng.randint(8, 15))
                        rectified.text = _redate(rectified.text, rectified.submitted_on, day2)
                        rectified.submitted_on = day2
                        v2 = _Version(rectified, self._at(day2))
                        self._review_round(bureau, v2, max(91.0, float(rectified.first_round_score)), must_pass=True)
                        versions.append(v2)
                    planned.append(_Planned(bureau, year, number, unit, base, corpus_field, firm, quality, versions))
                    this_year[(unit.id, base)] = (year, versions[-1].report.text, facts.budget_wan)
            final_text.update(this_year)
        return planned

    # --- writing ---------------------------------------------------------------------------------

    def firm_users(self, planned: list[_Planned]) -> dict[int, User]:
        """Every firm of the archive gets an account (firms answer inspections and credit ratings)."""
        users = {u.firm_id: u for u in self.users.values() if u.firm_id is not None}
        for firm in sorted({p.firm.id: p.firm for p in planned}.values(), key=lambda f: f.id):
            if firm.id not in users:
                users[firm.id] = create_user(username=f"firm-{firm.id}", password=PASSWORD,
                                             display_name=f"{firm.name} 联系人", role=Role.FIRM_USER,
                                             actor=self.users["admin"], firm_id=firm.id)
        return users

    def _plan_for(self, bureau: Bureau, year: int) -> EvaluationPlan:
        plan = db.session.execute(sa.select(EvaluationPlan).where(EvaluationPlan.bureau_id == bureau.id,
                                                                  EvaluationPlan.year == year)).scalar_one_or_none()
        if plan is None:
            admin = self.users.get(ADMIN.get(bureau.code, ""))
            plan = EvaluationPlan(bureau_id=bureau.id, year=year, status=PlanStatus.APPROVED,
                                  note="由原预算绩效管理系统迁入", approved_at=datetime(year, 1, 15, 2),
                                  approved_by_id=admin.id if admin else None, created_at=datetime(year - 1, 12, 10, 2))
            db.session.add(plan)
            db.session.flush()
        return plan

    def _experts(self, bureau: Bureau) -> list[Expert]:
        if bureau.code not in self._pools:
            self._pools[bureau.code] = db.session.execute(
                sa.select(Expert).where(Expert.bureau_id.in_(library_bureau_ids(bureau)))
                .options(selectinload(Expert.ties)).order_by(Expert.id)).scalars().all()
        return self._pools[bureau.code]

    def _draw(self, item: _Planned, engagement: SimpleNamespace, version: _Version, number: int):
        """The panel's draw over the usable pool with the exclusions form_panel applies (status and
        eligibility, field, ties, the same-firm yearly limit); the open-review load does not apply to
        panels long closed."""
        bureau, firm, unit = item.bureau, item.firm, item.unit
        on = version.panel_at.date()
        per_firm = get_setting(bureau, "review.same_firm_per_year")
        pool = self._experts(bureau)
        reasons: dict[int, list[str]] = {}
        limited: dict[int, list[str]] = {}
        avoid = avoidance_reasons_of(pool, firm_ids=[firm.id], budget_unit_ids=[unit.id], bureau_ids=[bureau.id],
                                     names=[firm.name, unit.name, bureau.name], on=on)
        for expert in pool:
            if expert.id not in self._static:
                self._static[expert.id] = (expert_is_drawable(expert), expert.fields)
            static, fields = self._static[expert.id]
            why = list(static) + field_mismatch(fields, engagement.field)
            why += avoid[expert.id]
            if why:
                reasons[expert.id] = why
            count = self._seats[(expert.id, firm.id, on.year)]
            if count >= per_firm:
                limited[expert.id] = [f"{on.year} 年已评审该机构 {count} 次，达到上限 {per_firm} 次"]
        merged = {i: reasons.get(i, []) + limited.get(i, []) for i in set(reasons) | set(limited)}
        if len(pool) - len(merged) < 5:  # a small pool: the yearly limit gives way before the rules do
            merged = reasons
        actor = self.users.get(STAFF.get(bureau.code, ""))
        # Witnessed like every draw (issue 14): announced, a second account of the bureau witnesses, revealed.
        record = draws.announce(ARCHIVE_PANEL, f"{engagement.reference} 评价报告第 {number} 版评审专家（5 人）",
                                {e.id: e.name for e in pool}, 5, merged, actor=actor, bureau_id=bureau.id,
                                context=("engagement", engagement.id), secret="%064x" % self.rng.getrandbits(256))
        draws.run_witnessed(record, operator=actor, numbers=[str(self.rng.getrandbits(30))])
        record.created_at = record.drawn_at = version.panel_at
        for expert_id in record.result_ids:
            self._seats[(expert_id, firm.id, on.year)] += 1
        return record, actor

    def _panel(self, item: _Planned, engagement: SimpleNamespace, submission: SimpleNamespace, version: _Version,
               round_: int, rows: dict[str, list]) -> dict:
        """The panel's row; its seats, reviews and scores go to ``rows``."""
        rng = self.rng
        bureau = item.bureau
        rubric = self.rubrics[bureau.id]
        record, actor = self._draw(item, engagement, version, submission.version)
        totals = [sum(p, Decimal("0")) for p in version.points]
        spread = max(totals) - min(totals)
        panel = dict(engagement_id=engagement.id, submission_id=submission.id, bureau_id=bureau.id,
                     kind=SubmissionKind.REPORT, round=round_, size=5, rubric_id=rubric.id, status=PanelStatus.CLOSED,
                     draw_id=record.id, review_due=version.panel_at + timedelta(days=get_setting(bureau, "review.review_days")),
                     score=version.score, spread=spread, spread_flagged=spread > get_setting(bureau, "review.spread_flag"),
                     pass_mark=R.pass_mark_for(bureau, SubmissionKind.REPORT, ServiceKind.KEY_EVALUATION), passed=version.passed,
                     decided_at=version.decided_at, created_by_id=actor.id if actor else None, created_at=version.panel_at,
                     letter_sent_at=None, resubmit_due=None)
        reviews = []
        for expert_id, points, total, reviewed_at in zip(record.result_ids, version.points, totals, version.reviewed_at):
            scores = []
            for rubric_item, value in zip(rubric.items, points):
                ratio = value / rubric_item.max_points
                comment = (f"{rubric_item.name}基本符合要求。" if ratio >= Decimal("0.9") else
                           f"{rubric_item.name}存在不足：论据不够充分，需补充数据来源和测算过程。" if ratio >= Decimal("0.8") else
                           f"{rubric_item.name}问题较多：与本项目结合不紧，多处表述可套用于任何项目，需重写。")
                scores.append(SimpleNamespace(rubric_item_id=rubric_item.id, points=value, comment=comment))
            opinion = ("报告结构完整，结论基本可信。" if total >= 90 else
                       "问题和建议过于笼统，缺少针对本项目的具体分析，建议退回整改。")
            reviews.append(SimpleNamespace(scores=scores, opinion=opinion))
            rows["seats"].append((len(rows["panels"]), dict(
                expert_id=expert_id, draw_id=record.id, status=InvitationStatus.ACCEPTED,
                respond_by=version.panel_at + timedelta(days=get_setting(bureau, "review.respond_days")),
                responded_at=version.panel_at + timedelta(hours=rng.randint(1, 30)), declaration=R.DECLARATION,
                created_at=version.panel_at), dict(
                rubric_id=rubric.id, status=ReviewStatus.SUBMITTED, total=total, opinion=opinion,
                submitted_at=reviewed_at, updated_at=reviewed_at), scores))
        # the letter the service drafts from the experts' comments (it reads only these attributes)
        panel["letter"] = R.consolidated_letter(SimpleNamespace(
            engagement=engagement, kind=SubmissionKind.REPORT, submission=submission, rubric=rubric,
            score=version.score, passed=version.passed, pass_mark=panel["pass_mark"],
            mark=points_text(panel["pass_mark"])), reviews)
        if not version.passed:
            panel["letter_sent_at"] = version.letter_at
            panel["resubmit_due"] = version.letter_at + timedelta(days=get_setting(bureau, "review.resubmit_days"))
        rows["panels"].append(panel)
        # the engagement's timeline, as the workflow would have recorded it
        firm_user = engagement.firm_user
        steps = [("submit_report" if round_ == 1 else "resubmit_report", S.FIELDWORK if round_ == 1 else S.REPORT_RETURNED,
                  S.REPORT_SUBMITTED, firm_user, version.submitted_at, f"评价报告第 {round_} 版：{_filename(engagement, round_)}"),
                 ("start_report_review", S.REPORT_SUBMITTED, S.REPORT_IN_REVIEW, actor, version.panel_at,
                  f"抽取评审专家 5 人（抽取记录 #{record.id}）")]
        if version.passed:
            steps.append(("accept_report", S.REPORT_IN_REVIEW, S.ACCEPTED, None, version.decided_at,
                          f"专家评审 {version.score} 分（通过线 {panel['pass_mark']}）"))
        else:
            steps.append(("return_report", S.REPORT_IN_REVIEW, S.REPORT_RETURNED, actor, version.letter_at,
                          f"第 {round_} 轮评审 {version.score} 分，退回整改；请于 {panel['resubmit_due']:%Y-%m-%d} 前重新提交"))
        rows["transitions"] += [dict(engagement_id=engagement.id, action=action, from_state=old, to_state=new,
                                     actor_id=who.id if who else None, created_at=at, note=note)
                                for action, old, new, who, at, note in steps]
        return panel

    def _submission(self, engagement: SimpleNamespace, version: _Version, number: int, user: User | None) -> dict:
        """The report stored as an upload is (type check, text extraction), and the submission's row."""
        report = version.report
        stored = files.store(_filename(engagement, number), report_docx(report), allowed=("docx",), actor=user)
        stored.created_at = version.submitted_at
        indicators = [SimpleNamespace(position=n, category=IndicatorCategory.from_label(str(i.category)), name=i.name,
                                      weight=Decimal(str(i.weight)), score=Decimal(str(i.score)))
                      for n, i in enumerate(report.indicators, start=1)]
        grade = Grade.from_label(report.grade_label)
        return dict(engagement_id=engagement.id, kind=SubmissionKind.REPORT, version=number, file_id=stored.id,
                    note="整改后重新提交" if number > 1 else None, concluded_total=report.total, concluded_grade=grade,
                    machine_checks=R.machine_checks(stored.text, indicators, report.total, grade, self.chapters[engagement.bureau_id]),
                    submitted_by_id=user.id if user else None, submitted_at=version.submitted_at,
                    indicators=[vars(line) for line in indicators])

    def _insert(self, model, rows: list[dict], returning: bool = True) -> list[int]:
        if not returning:
            db.session.execute(sa.insert(model), rows)
            return []
        return db.session.execute(sa.insert(model).returning(model.id, sort_by_parameter_order=True), rows).scalars().all()

    def write(self, planned: list[_Planned], firm_users: dict[int, User]) -> list[Submission]:
        """Stored files through ``core.files``, draws through ``core.draws``; every other row in bulk inserts
        (the ORM's unit of work costs more than all the rest for thousands of rows). Returns the reports'
        submissions, in the order planned."""
        self._pools: dict[str, list[Expert]] = {}
        self._static: dict[int, tuple[list[str], list[Field]]] = {}
        self._seats: Counter = Counter()
        self._commissioner: dict[int, object] = {}
        # the demo plans key evaluations only (``service_kind`` below): their outline, as ``review.report_outline`` gives it
        self.chapters = {b.id: R.outline_for(b, ServiceKind.KEY_EVALUATION) for b in self.bureaus.values()}
        for expert_id, firm_id, created_at in db.session.execute(
                sa.select(PanelInvitation.expert_id, Engagement.firm_id, ReviewPanel.created_at)
                .join(ReviewPanel, ReviewPanel.id == PanelInvitation.panel_id)
                .join(Engagement, Engagement.id == ReviewPanel.engagement_id)
                .where(PanelInvitation.status.in_([InvitationStatus.INVITED, InvitationStatus.ACCEPTED]))):
            self._seats[(expert_id, firm_id, created_at.year)] += 1
        now = utcnow()

        # plan items and engagements
        plans: dict[tuple[int, int], EvaluationPlan] = {}
        positions: dict[int, int] = {}
        items, engagements = [], []
        for item in planned:
            bureau, year = item.bureau, item.year
            if (bureau.id, year) not in plans:
                plan = plans[(bureau.id, year)] = self._plan_for(bureau, year)
                positions[plan.id] = db.session.execute(sa.select(sa.func.max(PlanItem.position)).where(
                    PlanItem.plan_id == plan.id)).scalar_one() or 0
            plan = plans[(bureau.id, year)]
            positions[plan.id] += 1
            facts = item.versions[0].report.facts
            wanted = Field.STATISTICS if item.unit.name.endswith("统计局") else FIELD_OF[item.corpus_field]
            items.append(dict(plan_id=plan.id, position=positions[plan.id], name=item.name,
                              object_type=_object_type(item.base), budget_kind=BudgetKind.GENERAL, field=wanted,
                              service_kind=ServiceKind.KEY_EVALUATION, amount=facts.budget_wan * 10000,
                              budget_unit_id=item.unit.id, commissioner_unit_id=None,
                              reason="资金量大、涉及面广、社会关注度高，列入年度重点绩效评价"))
            engagements.append(dict(
                bureau_id=bureau.id, year=year, reference=f"{bureau.code}-{year}-A{item.number:03d}", name=item.name,
                service_kind=ServiceKind.KEY_EVALUATION, field=wanted, amount=facts.budget_wan * 10000,
                spent=facts.spent_wan * 10000, budget_unit_id=item.unit.id, commissioner_unit_id=None,
                state=S.ARCHIVED, firm_id=item.firm.id,
                created_at=datetime(year, 1, 20, 2) + timedelta(days=self.rng.randint(0, 40)),
                state_changed_at=min(now, item.versions[-1].decided_at + timedelta(days=self.rng.randint(20, 40)))))
        for row, plan_item_id in zip(engagements, self._insert(PlanItem, items)):
            row["plan_item_id"] = plan_item_id
        for row, engagement_id in zip(engagements, self._insert(Engagement, engagements)):
            row["id"] = engagement_id

        # the reports as uploads, then the submissions and their indicator tables
        subs = [self._submission(SimpleNamespace(**engagement), version, number, firm_users.get(item.firm.id))
                for item, engagement in zip(planned, engagements) for number, version in enumerate(item.versions, start=1)]
        lines = [sub.pop("indicators") for sub in subs]
        for sub, submission_id in zip(subs, self._insert(Submission, subs)):
            sub["id"] = submission_id
        self._insert(ReportIndicator, [{"submission_id": sub["id"], **line} for sub, rows_ in zip(subs, lines)
                                       for line in rows_], returning=False)

        # panels with their draws, seats, reviews and scores
        rows: dict[str, list] = {"panels": [], "seats": [], "transitions": []}
        queue = iter(subs)
        finals = []
        for item, engagement in zip(planned, engagements):
            context = SimpleNamespace(**engagement, firm=item.firm, bureau=item.bureau, firm_user=firm_users.get(item.firm.id))
            for number, version in enumerate(item.versions, start=1):
                sub = next(queue)
                self._panel(item, context, SimpleNamespace(**sub), version, number, rows)
            finals.append(sub)
            rows["transitions"].append(dict(engagement_id=engagement["id"], action="archive", from_state=S.ACCEPTED,
                                            to_state=S.ARCHIVED, actor_id=None, created_at=engagement["state_changed_at"],
                                            note="自原预算绩效管理系统迁入的历史档案"))
        self._insert(EngagementTransition, rows["transitions"], returning=False)
        panel_ids = self._insert(ReviewPanel, rows["panels"])
        seats = rows["seats"]
        invitation_ids = self._insert(PanelInvitation, [{"panel_id": panel_ids[n], **invitation}
                                                        for n, invitation, _review, _scores in seats])
        review_ids = self._insert(Review, [{"invitation_id": i, **review}
                                           for i, (_n, _invitation, review, _scores) in zip(invitation_ids, seats)])
        self._insert(ReviewScore, [{"review_id": r, "rubric_item_id": s.rubric_item_id, "points": s.points, "comment": s.comment}
                                   for r, (_n, _invitation, _review, scores) in zip(review_ids, seats) for s in scores],
                     returning=False)

        # results and the commissioners' ratings
        self._insert(EvaluationResult, [
            {"engagement_id": engagement["id"], "submission_id": final["id"], "score": final["concluded_total"],
             "band_grade": R.grade_for(final["concluded_total"]), "grade": R.grade_for(final["concluded_total"]),
             "caps": [], "decided_at": item.versions[-1].decided_at}
            for item, engagement, final in zip(planned, engagements, finals)], returning=False)
        self._insert(CommissionerRating, [self._rating(item, engagement["id"]) for item, engagement in zip(planned, engagements)],
                     returning=False)
        ids = [sub["id"] for sub in subs]
        loaded = {s.id: s for s in db.session.execute(sa.select(Submission).where(Submission.id.in_(ids))).scalars()}
        return [loaded[i] for i in ids]

    def _rating(self, item: _Planned, engagement_id: int) -> dict:
        """The commissioner's rating of the firm after acceptance (lower when the report had to be redone)."""
        bureau = item.bureau
        if bureau.id not in self._commissioner:
            self._commissioner[bureau.id] = R.current_rubric(bureau, RubricKind.COMMISSIONER)
        rubric = self._commissioner[bureau.id]
        base = 0.9 if len(item.versions) == 1 else 0.8
        scores = {str(rubric_item.id): str(min(rubric_item.max_points, (rubric_item.max_points * Decimal(
            f"{min(1.0, max(0.6, self.rng.gauss(base, 0.05))):.3f}") * 2).quantize(Decimal("1")) / 2))
            for rubric_item in rubric.items}
        rater = self.users.get(STAFF.get(bureau.code, ""))
        return {"engagement_id": engagement_id, "firm_id": item.firm.id, "rubric_id": rubric.id, "scores": scores,
                "total": sum((Decimal(v) for v in scores.values()), Decimal("0")),
                "comment": "按合同完成评价工作。" if len(item.versions) == 1 else "报告首轮评审未通过，经整改后验收。",
                "rated_by_id": rater.id if rater else None,
                "rated_at": item.versions[-1].decided_at + timedelta(days=self.rng.randint(3, 15))}


# === labels, model, open case =======================================================================

def _inspect(screenings, quality_of: dict[int, str], firm_users: dict[int, User],
             actor_of: Callable[[Any], User]) -> tuple[int, int]:
    """Open a targeted case for each flag, by the flagged report's bureau, and close it: report_original answered
    as the inspection found."""
    from evalhub.screening import services as S
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CHECKLIST
    from evalhub.demo.supervision import recorder

    copied = found_ok = 0
    for screening, original in screenings:
        staff = actor_of(screening)
        inspection = S.open_case(screening, staff)
        quality = quality_of.get(screening.submission_id, "generic")
        note = "" if original else FINDINGS.get(quality, FINDINGS["generic"])
        officer = recorder(inspection, staff)
        V.record_checklist(inspection, officer, {key: (original or key != "report_original",
                                                     note if key == "report_original" else "") for key, _ in CHECKLIST})
        if original:
            V.close(inspection, officer, "调阅工作底稿并核对账表，报告数据与被评价单位账表一致，问题和建议针对本项目；"
                                       "筛查提示的相似段落为政策依据等通用表述，不属于抄袭或套用模板。")
            found_ok += 1
            continue
        V.add_finding(inspection, officer, severity="一般", description=note, measures=["责令整改"])
        V.respond(inspection, firm_users[screening.firm_id], "已对该项目重新开展现场核查，补充证据后修订报告，并完善报告三级复核制度。")
        V.close(inspection, officer, "筛查提示属实：报告未针对评价对象，已责令整改，整改报告已报送。")
        copied += 1
    return copied, found_ok


def load_screening_archive(echo: Callable[[str], object] = print) -> int:
    """Load the archive, screen everything, label, train and promote. Returns the engagements created
    (0 when the archive exists)."""
    from evalhub.screening import learning, services as S
    from evalhub.screening.features import reusing_prepared
    from evalhub.screening.index import BufferedIndex

    if db.session.execute(sa.select(Engagement.id).where(Engagement.reference.like("%-A001"))).first():
        return 0
    R.ensure_default_rubrics()
    if db.session.get_bind().dialect.name == "sqlite":
        # Every screening call scans report_screening (rows of sentence keys, signatures and JSON); with
        # SQLite's default 2 MB page cache that scan is the slowest part of the import. This connection only.
        db.session.execute(sa.text("PRAGMA cache_size = -65536"))
    archive = _Archive()
    total = sum(sum(counts) for counts in PER_YEAR.values())
    echo(f"演示数据：重点评价档案 {total} 项（2023—2025 年度，自原系统迁入：报告、专家评审、评价结果）…")
    planned = archive.plan()
    firm_users = archive.firm_users(planned)
    submissions = archive.write(planned, firm_users)
    quality_of = {}
    for item, in_db in zip((p for p in planned for _ in p.versions), submissions):
        quality_of[in_db.id] = "specific" if in_db.version > 1 else item.quality

    echo(f"演示数据：报告筛查（按提交顺序筛查 {len(submissions)} 份报告，再与全部文本重新比对）…")
    # In submission order against an in-memory copy of the shared index that grows as it goes (what the
    # shared index would answer, without its round trips per text), written back in bulk before the rescreen.
    index = BufferedIndex(db.session)
    # The rescreen reads the same texts in the same contexts again: what depends on the text alone is computed once.
    with reusing_prepared(), S.peer_features_kept():
        for submission in sorted(submissions, key=lambda s: (s.submitted_at, s.id)):
            S.screen_submission(submission, index)
        index.flush()
        rescreened = S.rescreen()

    echo("演示数据：筛查提示转定向检查，训练筛查模型（超过规则评分才启用）…")
    staff, region_admin = archive.users["bz.staff"], archive.users["xj.admin"]
    bz = archive.bureaus["652800"]
    # 巴州's 2024 queue first, then its 2023 queue, then the other bureaus' (each opens its own cases): which archive
    # reports are templated depends on the firms the archive could choose, so 巴州 alone may show fewer than three
    admins = {bz.id: staff}  # who opens a bureau's cases: 巴州's officer, elsewhere the bureau's first administrator
    for user in sorted(archive.users.values(), key=lambda u: u.id):
        if user.role == Role.BUREAU_ADMIN and user.bureau_id is not None:
            admins.setdefault(user.bureau_id, user)
    queues = [e.screening for year in (2024, 2023) for e in S.queue(region_admin, year=year, kind=SubmissionKind.REPORT)
              if e.screening.bureau_id in admins]
    top = [s for s in queues if s.bureau_id == bz.id]
    flagged = [s for s in top + [s for s in queues if s.bureau_id != bz.id]
               if quality_of.get(s.submission_id) not in (None, "specific")][:3]
    # the clean case is another engagement's: an inspection labels its engagement's report, so a clean case on a
    # flagged report's engagement would speak of the same report
    taken = {s.engagement_id for s in flagged}
    clean = next((s for s in top[:20] if quality_of.get(s.submission_id) == "specific" and s.engagement_id not in taken),
                 None) or next(s for s in top if s.engagement_id not in taken)
    copied, found_ok = _inspect([(s, False) for s in flagged] + [(clean, True)], quality_of, firm_users,
                                lambda s: admins[s.bureau_id])
    labels = len(S.labelled_frame())
    model = None
    try:  # learning.train runs on one thread (see there)
        model = S.train_model(region_admin)
    except learning.NotEnoughLabels as exc:
        echo(f"演示数据：未训练模型，继续使用规则评分：{exc}")
    if model is not None:
        # The demo's reports and labels are generated: the model card says so, and its figures say nothing about
        # real reports (bench/screening_real.py measures those).
        model.card = {**model.card, "synthetic": True,
                      "synthetic_note": "此模型由演示用的合成报告和合成标注（合成专家评分、演示检查结论）训练；"
                                        "其指标只说明它在合成数据上的表现，不代表真实报告。"}
        m = model.card["metrics"]
        if model.card.get("promotion", {}).get("allowed"):
            S.promote(model, region_admin)
            echo(f"演示数据：已启用报告筛查模型 {model.version}（{model.card['algorithm_label']}，合成数据；标注 {labels} 份；"
                 f"检验集平均精度 {m['average_precision']}，ROC-AUC {m['roc_auc']}，抽查比例内精确率 {m['precision_at_budget']}）")
        else:
            echo(f"演示数据：模型 {model.version} 未超过规则评分，未启用，继续使用规则评分："
                 f"{model.card.get('promotion', {}).get('reason', '')}")
    open_top = next(e.screening for e in S.queue(staff, year=2025, kind=SubmissionKind.REPORT)
                    if e.screening.bureau_id == bz.id)
    S.open_case(open_top, staff)

    panels = sum(len(p.versions) for p in planned)
    audit.record("demo.archive_imported", actor=archive.users.get("admin"),
                 summary=f"演示数据：自原系统迁入 2023—2025 年度重点评价档案 {len(planned)} 项（报告 {len(submissions)} 份、"
                         f"专家评审 {panels} 轮），筛查 {rescreened} 份文本，定向检查 {copied + found_ok + 1} 件",
                 payload={"engagements": len(planned), "reports": len(submissions), "screened": rescreened,
                          "labels": labels, "model": model.version if model else None})
    db.session.flush()
    return len(planned)
