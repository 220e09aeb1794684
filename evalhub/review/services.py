"""Review rules (DOMAIN.md §2 steps 3–7, §4, §5): submissions and machine checks, rubrics as versioned
data, panels drawn with avoidance, reviews, the outcome (exactly once), rectification rounds, results
with caps, the commissioner's rating, publication, and notifications."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Optional

import sqlalchemy as sa
from flask import current_app

from evalhub.core import audit, bureau_tree, concurrency, draws, files, jobs, permissions, scrub
from evalhub.core.batches import batches
from evalhub.core.calendar import days_deadline
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from evalhub.core.inputs import check_text, points_value, required_reason
from evalhub.core.models import Bureau, BudgetUnit, Draw, StoredFile, User
from evalhub.core.settings import SETTINGS, SettingDef, get_setting, register
from evalhub.core.timeutil import beijing_today, beijing_year_start, format_beijing, to_beijing, utcnow
from evalhub.core.outline import divides, heading_titles, simplified
from evalhub.core.notifications import emit, reminder_key, send_pending_email
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.models import Engagement, EngagementState as S, EngagementTransition, ServiceKind
from evalhub.procurement.eligibility import engagement_parties, field_mismatch, library_bureau_ids
from evalhub.registry.models import Expert
from evalhub.registry.services import (
    avoidance_reasons_of,
    expert_ids_with_login,
    expert_is_drawable,
    on_expert_unavailable,
)
from evalhub.review.models import (
    CommissionerRating,
    EvaluationResult,
    Grade,
    IndicatorCategory,
    InvitationStatus,
    PanelInvitation,
    PanelStatus,
    Publication,
    ReportIndicator,
    ResultCap,
    Review,
    ReviewPanel,
    ReviewScore,
    ReviewStatus,
    Rubric,
    RubricItem,
    RubricKind,
    SelfEvaluation,
    SelfEvaluationStatus,
    Submission,
    SubmissionKind,
)

# Self-evaluation reviews (克州's plan, item 7): the bureau's panel scores a 主管部门's self-evaluation report of a
# central transfer and returns it under the pass mark. The numbers are the bureau's.
register(
    SettingDef("review.self_evaluation_pass_mark", "部门自评报告评审通过分（低于此分退回单位整改）", "专家评审", 90,
               minimum=0, maximum=100,
               help="依据：克州 2024 年计划第 7 项，对主管部门中央转移支付自评报告组织专家和第三方机构评分，"
                    "“对低于 90 分的退回整改”。"),
    SettingDef("review.self_evaluation_panel_size", "部门自评报告评审专家人数（单数）", "专家评审", 3, minimum=3, maximum=9, odd=True),
    SettingDef("review.self_evaluation_resubmit_days", "部门自评报告退回后重新提交期限（天）", "专家评审", 30,
               minimum=1, maximum=180),
)

CENT = Decimal("0.01")
HUNDRED = Decimal("100")

# The 财预〔2020〕10号 outline; a bureau can change it (setting review.report_chapters).
REPORT_CHAPTERS: list[str] = list(SETTINGS["review.report_chapters"].default)

# An ex-ante assessment is argued on five points (中发〔2018〕34号: "重点论证立项必要性、投入经济性、绩效目标合理性、
# 实施方案可行性、筹资合规性"; seed 002 writes the last 资金筹措合规性, seed 001 calls them "5大要点"), not in the eight
# chapters of an evaluation report: its reassessment is checked against these.
register(
    SettingDef("review.ex_ante_report_chapters", "事前绩效评估再评估报告章节（每行一项，按顺序）", "专家评审",
               ["立项必要性", "投入经济性", "绩效目标合理性", "实施方案可行性", "资金筹措合规性"], kind="lines",
               minimum=3, maximum=20,
               help="默认为事前绩效评估的五个论证要点（《中共中央 国务院关于全面实施预算绩效管理的意见》中发〔2018〕34号；"
                    "巴州写作“资金筹措合规性”）；再评估报告的机器检查和报告筛查按此检查章节是否齐全。"),
)

# The outline each kind of commissioned work is checked against (DOMAIN §1: "rubric, pass mark and report outline
# differ by kind"): its setting and the source named beside the check. A kind with no standard outline (目标审核,
# 自评报告复核, 评价结果复核, 指标体系建设) has no chapter check rather than an evaluation report's.
OUTLINES: dict[ServiceKind, tuple[str, str]] = {
    ServiceKind.KEY_EVALUATION: ("review.report_chapters", "财预〔2020〕10号及本局设置"),
    ServiceKind.EX_ANTE_REASSESSMENT: ("review.ex_ante_report_chapters", "中发〔2018〕34号论证要点及本局设置"),
}


def outline_for(bureau: Bureau, kind: ServiceKind) -> list[str]:
    """The chapters a report of ``kind`` is checked against in ``bureau`` ([]: the kind has no standard outline).
    Where no engagement is known (a text screened on its own, a reference report) callers ask for
    ``ServiceKind.KEY_EVALUATION``: the evaluation report's outline."""
    setting = OUTLINES.get(kind)
    return list(get_setting(bureau, setting[0])) if setting else []


def report_outline(engagement: Engagement) -> list[str]:
    """The chapters a report of this engagement is checked against ([]: its kind has no standard outline)."""
    return outline_for(engagement.bureau, engagement.service_kind)

DEFAULT_RUBRICS: dict[RubricKind, tuple[str, list[tuple[str, str, int]]]] = {
    RubricKind.REPORT: ("评价报告评审表", [
        ("结构与格式", "封面要素齐全；八章结构完整；评分计算正确、等级与得分一致", 20),
        ("证据与数据", "结论有数据和附件佐证，数据来源清楚", 20),
        ("指标体系", "覆盖决策、过程、产出、效益；产出与效益权重合计不低于 60%；指标有目标值、单位和数据来源", 20),
        ("分析与结论", "每项指标有评分依据；结论与得分相符", 20),
        ("问题与建议", "问题针对本项目并分析原因；建议可操作（谁、做什么、何时完成）", 20),
    ]),
    RubricKind.WORK_PLAN: ("实施方案评审表", [
        ("评价思路与目标", "评价目的、范围、重点清楚", 15),
        ("指标体系", "指标完整、权重合理、目标值和评分标准明确", 30),
        ("方法与标准", "评价方法适当，评分标准可操作", 20),
        ("数据采集与调查设计", "资料清单、抽样与问卷设计合理", 15),
        ("组织与进度", "人员分工和时间安排可行", 10),
        ("质量控制与保密", "有复核机制和保密措施", 10),
    ]),
    RubricKind.SELF_EVALUATION: ("部门自评报告评审表", [
        ("自评组织与范围", "自评覆盖项目资金全部，组织有序，时间节点清楚", 15),
        ("绩效目标与指标", "绩效目标明确，指标完整、可衡量，与资金用途相符", 20),
        ("自评结果真实准确", "指标完成值有数据和佐证，评分依据充分，不虚报", 30),
        ("问题查找与原因分析", "如实反映存在的问题并分析原因", 20),
        ("整改措施与结果应用", "整改措施具体可行，说明结果应用情况", 15),
    ]),
    RubricKind.COMMISSIONER: ("委托方评价表", [
        ("团队能力", "项目团队的专业能力", 15),
        ("团队稳定性", "投标承诺人员到岗、无随意更换", 15),
        ("沟通与勤勉", "沟通及时、工作勤勉", 20),
        ("数据真实准确", "报告数据准确、符合实际", 25),
        ("结论与建议可用", "结论清晰，问题和建议可用", 25),
    ]),
}


# A work plan or report of another 委托事项 is not an evaluation report (DOMAIN §1: "rubric, pass mark and report
# outline differ by kind"): its own report rubric, where a source says what it must do. 结果复核 and 指标体系建设
# have no such source here and use the general one until a bureau writes theirs; every kind's work plan too.
KIND_RUBRICS: dict[tuple[RubricKind, ServiceKind], tuple[str, list[tuple[str, str, int]]]] = {
    # 中发〔2018〕34号's five points (seeds 001/002), concluded 支持/部分支持/不支持 (seed 000); seed 001: 立项依据不充分
    # 的"一票否决", 支出标准虚高的压减.
    (RubricKind.REPORT, ServiceKind.EX_ANTE_REASSESSMENT): ("事前绩效评估再评估报告评审表", [
        ("结构与结论", "按五个论证要点成章；明确给出“支持”“部分支持”或“不支持”的再评估结论，与论证相符", 15),
        ("立项必要性", "立项依据充分，与部门职责、发展规划和政策相符；依据不充分的如实指出", 20),
        ("投入经济性", "成本测算有依据，支出标准与市场价格、同类项目比较合理，虚高的指出", 15),
        ("绩效目标合理性", "绩效目标明确、可衡量，与项目内容和预算规模匹配", 15),
        ("实施方案可行性", "组织、进度和保障措施可行，风险有应对", 15),
        ("资金筹措合规性", "资金来源合规，财政可承受", 10),
        ("证据与预算建议", "论证有数据和资料佐证；对预算安排提出可操作的意见（安排、压减、调整或不安排）", 10),
    ]),
    # 财预〔2015〕88号 第十八条: 绩效目标审核 covers 完整性、相关性、适当性、可行性; seed 001: 《自治区项目支出绩效目标
    # 设置指引》（新财预〔2022〕42号）.
    (RubricKind.REPORT, ServiceKind.TARGET_REVIEW): ("绩效目标审核报告评审表", [
        ("审核范围与依据", "覆盖委托审核的全部项目；依据绩效目标设置指引等规定", 15),
        ("完整性审核", "逐项检查绩效目标要素是否完整、指标是否细化量化", 20),
        ("相关性审核", "检查目标与部门职责、项目内容和预算资金是否相符", 20),
        ("适当性审核", "检查目标与预算规模、预期产出和效益是否匹配", 15),
        ("可行性审核", "检查目标实现的条件和措施是否可行", 15),
        ("审核意见与修改建议", "逐项给出审核结论和具体修改意见", 15),
    ]),
    # Seed 000 item 7 (专家和第三方机构对自评报告审核打分，低于 90 分退回整改); seed 001: 全面核查自评报告及佐证材料，
    # 对绩效目标分解下达不一致、佐证材料不完整、规范性审核不合格的督促整改.
    (RubricKind.REPORT, ServiceKind.SELF_EVALUATION_REVIEW): ("自评报告复核报告评审表", [
        ("复核范围与方法", "覆盖委托复核的全部自评报告，复核标准和评分方法清楚", 15),
        ("佐证材料核查", "逐份核查指标完成值的佐证材料，指出不完整、不一致之处", 25),
        ("评分准确", "按评分标准逐份打分，得分有依据、计算正确", 25),
        ("问题认定", "如实指出绩效目标分解下达不一致、自评结果不实、规范性不合格等问题", 20),
        ("整改意见", "对未达到通过分的自评报告提出具体整改要求", 15),
    ]),
}
# The rubrics that may differ by 委托事项: those of a firm's work plan and report.
BY_SERVICE_KIND = (RubricKind.WORK_PLAN, RubricKind.REPORT)


def _q(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


_raise_if = ValidationFailed.raise_if  # refuse once, naming every problem found


def _decimal(errors: dict, key: str, raw: Any, label: str) -> Optional[Decimal]:
    return points_value(errors, key, raw, label)  # every point, weight and score here is within 0–100


# === grades ========================================================================================

def grade_for(score: Decimal) -> Grade:
    if score >= 90:
        return Grade.EXCELLENT
    if score >= 80:
        return Grade.GOOD
    if score >= 60:
        return Grade.FAIR
    return Grade.POOR


# The caps of seed 000: each names the best grade still allowed.
CAPS = {
    "audit_problems": ("审计或财会监督发现问题", Grade.FAIR),
    "major_fund_problems": ("资金使用存在重大问题", Grade.POOR),
    "failed_monitoring_twice": ("连续两次监控不合格且拒不整改", Grade.FAIR),
    "failed_authenticity": ("真实性核查不通过（一票否决）", Grade.POOR),
}
VETO = "failed_authenticity"  # 一票否决: seed 000 also recovers the funds (results.services.propose)
_ORDER = [Grade.EXCELLENT, Grade.GOOD, Grade.FAIR, Grade.POOR]


def capped_grade_possible(band: Grade, concluded: Grade) -> bool:
    """Whether a grade below the score's band is what some cap gives (seed 000: 中 for "not 优/良", 差 for
    major problems or a failed authenticity check) — a firm that applied a cap concluded consistently."""
    return concluded != band and any(apply_caps(band, [code]) == concluded for code in CAPS)


def apply_caps(grade: Grade, caps: Iterable[str]) -> Grade:
    worst = grade
    for cap in caps:
        limit = CAPS[cap][1]
        if _ORDER.index(limit) > _ORDER.index(worst):
            worst = limit
    return worst


# === machine checks ================================================================================

@dataclass
class IndicatorInput:
    category: Any
    name: str
    weight: Any
    score: Any


def find_chapters(text: str, chapters: list[str] | None = None) -> dict[str, int]:
    """How often each outline chapter appears as a heading line (一、基本情况 / 第一章 基本情况 / 1. 基本情况)."""
    chapters = chapters or REPORT_CHAPTERS
    counts = {c: 0 for c in chapters}
    joined: list[str] = []  # the chapters of the current heading when it named several (五、…经验及做法、存在的问题…)
    for line in simplified(text or "").splitlines():  # as the screener reads it (traditional characters too)
        titles = heading_titles(line, chapters)
        if titles and not divides(line, titles, joined):  # a sub-heading of a joined heading is not counted again
            for title in titles:
                counts[title] += 1
            joined = titles if len(titles) > 1 else []
    return counts


def machine_checks(text: str | None, indicators: list[ReportIndicator], concluded_total: Decimal | None,
                   concluded_grade: Grade | None, chapters: list[str] | None = None,
                   outline: str = "财预〔2020〕10号及本局设置") -> list[dict[str, Any]]:
    """What a machine can check on a report, shown to the panel: each check with ok and a detail. ``chapters``:
    the outline (None: the evaluation report's; []: none, so no chapter check), ``outline`` its source."""
    checks: list[dict[str, Any]] = []

    def check(code: str, label: str, ok: bool, detail: str) -> None:
        checks.append({"code": code, "label": label, "ok": bool(ok), "detail": detail})

    weights = sum((i.weight for i in indicators), Decimal("0"))
    check("weights_sum", "指标权重合计为 100", weights == HUNDRED, f"权重合计 {weights}")
    output_benefit = sum((i.weight for i in indicators if i.category in (IndicatorCategory.OUTPUT, IndicatorCategory.BENEFIT)),
                         Decimal("0"))
    share = _q(output_benefit / weights * HUNDRED) if weights else Decimal("0")
    check("output_benefit_share", "产出和效益指标权重合计不低于 60%", share >= 60, f"产出+效益占 {share}%")
    over = [i.name for i in indicators if i.score > i.weight or i.score < 0]
    check("scores_within_weights", "各指标得分不超过其权重", not over, "超出：" + "、".join(over) if over else "全部在权重以内")
    total = sum((i.score for i in indicators), Decimal("0"))
    check("total_adds_up", "各指标得分之和等于报告结论总分",
          concluded_total is not None and total == concluded_total,
          f"指标得分合计 {total}，报告结论 {concluded_total if concluded_total is not None else '未填写'}")
    expected = grade_for(concluded_total) if concluded_total is not None else None
    capped = expected is not None and concluded_grade is not None and capped_grade_possible(expected, concluded_grade)
    detail = (f"得分 {concluded_total} 应为“{expected.label if expected else '—'}”，"
              f"报告结论为“{concluded_grade.label if concluded_grade else '未填写'}”")
    if capped:
        detail += f"（按等级限制降档：{'、'.join(v[0] for v in CAPS.values() if v[1] == concluded_grade)}，须在结果中记录限制依据）"
    check("grade_matches_band", "评价等级与得分区间一致（优≥90，良80–90，中60–80，差<60；适用等级限制的按限制降档）",
          expected is not None and (concluded_grade == expected or capped), detail)
    if chapters is not None and not chapters:
        return checks
    counts = find_chapters(text or "", chapters)
    missing = [c for c, n in counts.items() if n == 0]
    duplicated = [c for c, n in counts.items() if n > 1]
    check("chapters_present", f"{len(counts)} 个章节齐全（{outline}）", not missing, "缺少：" + "、".join(missing) if missing else "齐全")
    check("chapters_unique", "章节没有重复", not duplicated, "重复：" + "、".join(duplicated) if duplicated else "无重复")
    return checks


# === rubrics =======================================================================================

def _defaults() -> dict[tuple[RubricKind, Optional[ServiceKind]], tuple[str, list[tuple[str, str, int]]]]:
    return {**{(k, None): v for k, v in DEFAULT_RUBRICS.items()}, **KIND_RUBRICS}


def ensure_default_rubrics() -> bool:
    """Seed the system rubrics not yet stored (the general ones and the kinds' own); True when any was added."""
    have = set(db.session.execute(sa.select(Rubric.kind, Rubric.service_kind).where(Rubric.bureau_id.is_(None))).all())
    missing = [(key, value) for key, value in _defaults().items() if key not in have]
    for (kind, service_kind), (title, items) in missing:
        db.session.add(Rubric(bureau_id=None, kind=kind, service_kind=service_kind, version=1, title=title,
                              is_current=True, items=[RubricItem(position=i, name=n, description=d, max_points=Decimal(p))
                                                      for i, (n, d, p) in enumerate(items, 1)]))
    if missing:
        db.session.flush()
    return bool(missing)


def rubric_service_kind(kind: RubricKind, service_kind: Any) -> Optional[ServiceKind]:
    """The 委托事项 a rubric of ``kind`` is asked for: None for the general one; refused for a kind that has one rubric."""
    if service_kind in (None, ""):
        return None
    try:
        value = ServiceKind(service_kind)
    except ValueError:
        raise ValidationFailed("委托事项无效。", {"service_kind": "可选值：" + "、".join(f"{k.value}（{k.label}）" for k in ServiceKind)})
    if kind not in BY_SERVICE_KIND:
        raise ValidationFailed(f"{kind.label}表不区分委托事项。", {"service_kind": "仅实施方案评审表和评价报告评审表按委托事项区分"})
    return value


def current_rubric(bureau: Bureau, kind: RubricKind, service_kind: Optional[ServiceKind] = None) -> Rubric:
    """The rubric in force. For a 委托事项 (work plans and reports): that kind's own — the bureau's, else its nearest
    upper bureau's, else the system's — and only where there is none anywhere, the general one the same way
    (the bureau's own, its nearest upper bureau's, the system default). A kind's rubric thus beats a general one
    revised closer by: a county's general revision does not put a 绩效目标审核 report back on the evaluation rubric."""
    return current_rubrics(bureau, [kind], service_kind)[kind]


def current_rubrics(bureau: Bureau, kinds: Iterable[RubricKind],
                    service_kind: Optional[ServiceKind] = None) -> dict[RubricKind, Rubric]:
    """``current_rubric`` of several rubric kinds, from one statement (a page showing the work plan's and the
    report's)."""
    kinds = list(kinds)
    chain = bureau_tree.chain_ids(bureau)
    rank = {b: n for n, b in enumerate([*chain, None])}

    def wanted(kind: RubricKind) -> list[Optional[ServiceKind]]:
        return [service_kind, None] if service_kind is not None and kind in BY_SERVICE_KIND else [None]

    def pick() -> dict[RubricKind, Rubric]:
        rows = db.session.execute(sa.select(Rubric).where(
            sa.or_(Rubric.bureau_id.in_(chain), Rubric.bureau_id.is_(None)), Rubric.kind.in_(kinds),
            Rubric.is_current.is_(True),
            sa.or_(Rubric.service_kind.is_(None), *([Rubric.service_kind == service_kind] if service_kind else [])))
        ).scalars().all()
        out = {}
        for kind in kinds:
            choice = wanted(kind)
            mine = sorted((r for r in rows if r.kind == kind and r.service_kind in choice),
                          key=lambda r: (choice.index(r.service_kind), rank[r.bureau_id]))
            if mine:
                out[kind] = mine[0]
        return out

    found = pick()
    if any(kind not in found or (found[kind].service_kind != wanted(kind)[0] and (kind, wanted(kind)[0]) in KIND_RUBRICS)
           for kind in kinds):
        if ensure_default_rubrics():
            found = pick()
    for kind in kinds:
        if kind not in found:
            raise NotFound(f"未找到{kind.label}表。")
    return found


def revise_rubric(bureau: Bureau, kind: RubricKind, items: list[tuple[str, str, Any]], actor: User,
                  title: str | None = None, service_kind: Any = None) -> Rubric:
    """A new version of the bureau's rubric (``service_kind``: for that 委托事项; None: the general one); panels and
    reviews keep the version they were formed with."""
    permissions.require(actor, "rubric.edit", bureau)
    service_kind = rubric_service_kind(kind, service_kind)
    errors: dict[str, str] = {}
    rows = []
    for position, (name, description, points) in enumerate(items, start=1):
        name = (name or "").strip()
        if not name:
            continue
        value = _decimal(errors, f"item_{position}", points, f"“{name}”的分值")
        if value is not None and value <= 0:
            errors[f"item_{position}"] = f"“{name}”的分值必须大于 0"
        rows.append(RubricItem(position=position, name=name, description=(description or "").strip(),
                               max_points=value or Decimal("0")))
    if not rows:
        errors["items"] = "评审表至少需要一个评分项"
    elif not errors and sum(r.max_points for r in rows) != HUNDRED:
        errors["items"] = f"各评分项分值合计应为 100，当前为 {sum(r.max_points for r in rows)}"
    title = (title or "").strip() or default_title(kind, service_kind)
    if len(title) > 100:
        errors["title"] = "标题不超过 100 个字"
    _raise_if(errors)
    # two saves at once would both number their version previous + 1 (the unique key refuses the second)
    concurrency.serialise(f"rubric:{bureau.id}:{kind.value}:{service_kind.value if service_kind else ''}")
    same = [Rubric.bureau_id == bureau.id, Rubric.kind == kind,
            Rubric.service_kind.is_(None) if service_kind is None else Rubric.service_kind == service_kind]
    previous = db.session.execute(sa.select(Rubric).where(*same).order_by(Rubric.version.desc())).scalars().first()
    for old in db.session.execute(sa.select(Rubric).where(*same, Rubric.is_current.is_(True))).scalars():
        old.is_current = False
    rubric = Rubric(bureau_id=bureau.id, kind=kind, service_kind=service_kind,
                    version=(previous.version + 1) if previous else 1,
                    title=title, is_current=True, created_by_id=actor.id, items=rows)
    db.session.add(rubric)
    db.session.flush()
    audit.record("rubric.revised", rubric, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name}修订{rubric_label(kind, service_kind)}，第 {rubric.version} 版",
                 payload={"items": [(r.name, r.max_points) for r in rows],
                          "service_kind": service_kind.value if service_kind else None})
    return rubric


def default_title(kind: RubricKind, service_kind: Optional[ServiceKind]) -> str:
    if (kind, service_kind) in KIND_RUBRICS:
        return KIND_RUBRICS[(kind, service_kind)][0]
    general = DEFAULT_RUBRICS[kind][0]
    return f"{general}（{service_kind.label}）" if service_kind is not None else general


def rubric_label(kind: RubricKind, service_kind: Optional[ServiceKind]) -> str:
    """How a page or the audit log names the rubric: 评价报告评审表（绩效目标审核）, or the general one's name."""
    return f"{kind.label}表（{service_kind.label}）" if service_kind is not None else f"{kind.label}表"


# === submissions ===================================================================================

SUBMIT_ACTIONS = {
    (SubmissionKind.WORK_PLAN, S.CONTRACTED): "submit_plan",
    (SubmissionKind.WORK_PLAN, S.PLAN_RETURNED): "resubmit_plan",
    (SubmissionKind.REPORT, S.FIELDWORK): "submit_report",
    (SubmissionKind.REPORT, S.REPORT_RETURNED): "resubmit_report",
}


# A department-wide evaluation's 三级指标 run to dozens; the scoring table takes this many rows, on every path.
MAX_INDICATOR_ROWS = 200


def submit(engagement: Engagement, kind: SubmissionKind, filename: str, data: bytes, actor: User, *,
           indicators: list[IndicatorInput] | None = None, concluded_total: Any = None,
           concluded_grade: Any = None, note: str | None = None) -> Submission:
    """The contracted firm uploads a new version of its work plan or report."""
    action = SUBMIT_ACTIONS.get((kind, engagement.state))
    if action is None:
        raise Conflict(f"评价任务当前状态为“{engagement.state.label}”，不能提交{kind.label}。")
    if actor.role != Role.FIRM_USER or actor.firm_id != engagement.firm_id:
        raise PermissionDenied("只有承担该任务的第三方机构可以提交。")
    # Refuse a step the engagement is not ready for (no 主评人 named, no rounds left) before storing anything.
    workflow.check(engagement, action, actor, skip=("plan_uploaded", "report_uploaded"))
    errors: dict[str, str] = {}
    rows: list[ReportIndicator] = []
    total = None
    grade = None
    if kind == SubmissionKind.REPORT:
        filled = [row for row in indicators or [] if (row.name or "").strip()]
        if len(filled) > MAX_INDICATOR_ROWS:  # on every path: the web form's table stops at the same number
            errors["indicators"] = f"评价指标评分表最多 {MAX_INDICATOR_ROWS} 行，提交了 {len(filled)} 行，请合并或删去多余的行。"
        for position, row in enumerate(indicators or [], start=1):
            if not (row.name or "").strip() or len(filled) > MAX_INDICATOR_ROWS:
                continue
            try:
                category = row.category if isinstance(row.category, IndicatorCategory) else IndicatorCategory.from_label(str(row.category))
            except ValueError:
                errors[f"indicator_{position}"] = f"第 {position} 行指标类别无效（应为决策、过程、产出或效益）"
                continue
            weight = _decimal(errors, f"indicator_{position}", row.weight, f"第 {position} 行权重")
            score = _decimal(errors, f"indicator_{position}", row.score, f"第 {position} 行得分")
            if weight is not None and score is not None:
                rows.append(ReportIndicator(position=position, category=category, name=row.name.strip()[:200],
                                            weight=weight, score=score))
        if not rows and not errors:
            errors["indicators"] = "请填写评价指标评分表"
        total = _decimal(errors, "concluded_total", concluded_total, "报告结论总分")
        if total is not None and not Decimal("0") <= total <= HUNDRED:
            errors["concluded_total"] = "报告结论总分应在 0–100 之间"
        try:
            grade = concluded_grade if isinstance(concluded_grade, Grade) else Grade.from_label(str(concluded_grade or ""))
        except ValueError:
            errors["concluded_grade"] = "请选择报告结论的评价等级"
    stored = None
    try:
        stored = files.store(filename, data, allowed=("docx", "pdf"), actor=actor)
    except ValidationFailed as exc:
        errors["file"] = exc.message
    _raise_if(errors)
    version = (db.session.execute(sa.select(sa.func.max(Submission.version)).where(
        Submission.engagement_id == engagement.id, Submission.kind == kind)).scalar_one() or 0) + 1
    submission = Submission(engagement_id=engagement.id, kind=kind, version=version, file_id=stored.id,
                            note=(note or "").strip() or None, concluded_total=total, concluded_grade=grade,
                            submitted_by_id=actor.id, indicators=rows)
    if kind == SubmissionKind.REPORT:
        submission.machine_checks = machine_checks(
            stored.text, rows, total, grade, report_outline(engagement),
            OUTLINES[engagement.service_kind][1] if engagement.service_kind in OUTLINES else "")
    db.session.add(submission)
    db.session.flush()
    _screen(submission)
    workflow.perform(engagement, action, actor, note=f"{kind.label}第 {version} 版：{stored.original_name}")
    audit.record("submission.uploaded", submission, actor=actor, bureau_id=engagement.bureau_id,
                 summary=f"{engagement.reference} 上传{kind.label}第 {version} 版", payload={"sha256": stored.sha256})
    emit("submission_received", link=f"/engagements/{engagement.id}", bureau_id=engagement.bureau_id,
         reference=engagement.reference, kind=kind.label, version=version, firm=engagement.firm.name)
    return submission


# Higher modules act on every stored upload (screening screens it for the bureau's queue) and add to what an
# expert sees beside a submission (screening: its risk, when the bureau shows it). They register here, so
# review need not know them.
_upload_hooks: list[Callable[[Submission], None]] = []
_expert_context: list[Callable[[Submission], dict]] = []


def after_upload(fn: Callable[[Submission], None]) -> Callable[[Submission], None]:
    _upload_hooks.append(fn)
    return fn


def expert_context(fn: Callable[[Submission], dict]) -> Callable[[Submission], dict]:
    _expert_context.append(fn)
    return fn


def expert_context_for(submission: Submission) -> dict:
    context: dict = {}
    if submission.engagement_id is None:  # a unit's self-evaluation: the hooks (screening) read firms' reports
        return context
    for fn in _expert_context:
        context.update(fn(submission))
    return context


def _screen(submission: Submission) -> None:
    """Run the upload hooks. A hook's failure (e.g. a screening bug) must not cost the firm its upload: it is
    logged, nothing of it is kept, and `flask evalhub screening rescreen` catches the submission up later."""
    for hook in _upload_hooks:
        try:
            with db.session.begin_nested():
                hook(submission)
        except Exception:  # noqa: BLE001 — any bug in a hook; the upload itself is valid
            current_app.logger.exception("上传后处理失败（%s）：submission %s", hook.__name__, submission.id)
            if current_app.config.get("TESTING"):
                raise  # the suite must see such bugs, not have them logged away


def submissions(engagement: Engagement | SelfEvaluation, kind: SubmissionKind | None = None) -> list[Submission]:
    """The versions handed in, of an engagement's documents or of a self-evaluation."""
    stmt = _submissions_stmt(isinstance(engagement, SelfEvaluation), kind is not None)
    values = {"owner_id": engagement.id} if kind is None else {"owner_id": engagement.id, "kind": kind}
    return db.session.execute(stmt, values).scalars().all()


@functools.cache
def _submissions_stmt(of_self_evaluation: bool, of_kind: bool) -> sa.Select:
    """``submissions``'s statement, built once per shape."""
    owner = Submission.self_evaluation_id if of_self_evaluation else Submission.engagement_id
    stmt = sa.select(Submission).where(owner == sa.bindparam("owner_id"))
    if of_kind:
        stmt = stmt.where(Submission.kind == sa.bindparam("kind", type_=Submission.__table__.c.kind.type))
    return stmt.order_by(Submission.kind, Submission.version)


def latest_submission(engagement: Engagement | SelfEvaluation, kind: SubmissionKind) -> Optional[Submission]:
    rows = submissions(engagement, kind)
    return rows[-1] if rows else None


def rounds_used(engagement: Engagement | SelfEvaluation, kind: SubmissionKind) -> int:
    owner = ReviewPanel.self_evaluation_id if isinstance(engagement, SelfEvaluation) else ReviewPanel.engagement_id
    return db.session.execute(sa.select(sa.func.count(ReviewPanel.id)).where(
        owner == engagement.id, ReviewPanel.kind == kind)).scalar_one()


@workflow.requirement("rounds_left")
def rounds_exhausted(engagement: Engagement) -> Optional[str]:
    """Why the firm may not resubmit its report (the round limit is used up), or None."""
    limit = get_setting(engagement.bureau, "review.max_rounds")
    if rounds_used(engagement, SubmissionKind.REPORT) >= limit:
        return f"报告已评审 {limit} 轮仍未通过，须由财政局决定扣分验收或终止"
    return None


# --- what the state machine needs from review (the table in procurement/workflow.py names them) ----------
# Each answers "why not" about the latest version of the kind; the services below create the fact first
# (the submission, the panel, the decided outcome, the result, the redacted file) and then move the
# engagement, so a bare transition — from the API, a form or a script — finds nothing and is refused.

_HAND_IN_STEPS = {SubmissionKind.WORK_PLAN: ("submit_plan", "resubmit_plan"),
                  SubmissionKind.REPORT: ("submit_report", "resubmit_report")}


def _latest_panel(engagement: Engagement, kind: SubmissionKind) -> tuple[Optional[Submission], Optional[ReviewPanel]]:
    submission = latest_submission(engagement, kind)
    if submission is None:
        return None, None
    panel = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.submission_id == submission.id)
                               .order_by(ReviewPanel.id.desc())).scalars().first()
    return submission, panel


def _uploaded(engagement: Engagement, kind: SubmissionKind) -> Optional[str]:
    """A stored submission of the version this (re)submission hands in: one more than the versions
    already handed in through the state machine, and on no panel yet."""
    handed_in = db.session.execute(sa.select(sa.func.count(EngagementTransition.id)).where(
        EngagementTransition.engagement_id == engagement.id,
        EngagementTransition.action.in_(_HAND_IN_STEPS[kind]))).scalar_one()
    submission, panel = _latest_panel(engagement, kind)
    if submission is None or submission.version != handed_in + 1 or panel is not None:
        return f"尚未上传{kind.label}第 {handed_in + 1} 版（须上传文件，提交后状态随之变更）"
    return None


def _panel_requirement(ready: Callable[[ReviewPanel], bool], unreceived: str,
                       not_ready: str) -> Callable[[Engagement, SubmissionKind], Optional[str]]:
    """A requirement on the latest panel of a kind: None when it exists and is ``ready``; else why not —
    ``unreceived`` (nothing of the kind handed in) or ``not_ready``, templates over ``kind`` and ``version``."""
    def check(engagement: Engagement, kind: SubmissionKind) -> Optional[str]:
        submission, panel = _latest_panel(engagement, kind)
        if submission is None:
            return unreceived.format(kind=kind.label)
        if panel is None or not ready(panel):
            return not_ready.format(kind=kind.label, version=submission.version)
        return None
    return check


_panel_drawn = _panel_requirement(
    lambda p: p.status == PanelStatus.REVIEWING and p.decided_at is None,
    "尚未收到{kind}", "尚未为{kind}第 {version} 版抽取评审专家")
_panel_passed = _panel_requirement(
    lambda p: (p.decided_at is not None and bool(p.passed) and p.score is not None and p.pass_mark is not None
               and p.score >= p.pass_mark),
    "尚未收到{kind}，没有达到通过线的专家评审结果", "{kind}第 {version} 版尚无达到通过线的专家评审结果")
_panel_failed = _panel_requirement(
    lambda p: p.decided_at is not None and not p.passed and p.letter_sent_at is not None,
    "尚未收到{kind}", "{kind}第 {version} 版尚无未通过且已发出整改意见的专家评审结果")


def _result_of_latest_report(engagement: Engagement) -> Optional[EvaluationResult]:
    submission = latest_submission(engagement, SubmissionKind.REPORT)
    if submission is None:
        return None
    return db.session.execute(sa.select(EvaluationResult).where(
        EvaluationResult.engagement_id == engagement.id,
        EvaluationResult.submission_id == submission.id)).scalar_one_or_none()


workflow.requirement("plan_uploaded")(lambda e: _uploaded(e, SubmissionKind.WORK_PLAN))
workflow.requirement("report_uploaded")(lambda e: _uploaded(e, SubmissionKind.REPORT))
workflow.requirement("plan_panel_drawn")(lambda e: _panel_drawn(e, SubmissionKind.WORK_PLAN))
workflow.requirement("report_panel_drawn")(lambda e: _panel_drawn(e, SubmissionKind.REPORT))
workflow.requirement("plan_passed")(lambda e: _panel_passed(e, SubmissionKind.WORK_PLAN))
workflow.requirement("plan_failed")(lambda e: _panel_failed(e, SubmissionKind.WORK_PLAN))
workflow.requirement("report_failed")(lambda e: _panel_failed(e, SubmissionKind.REPORT))


@workflow.requirement("report_passed")
def _report_passed(engagement: Engagement) -> Optional[str]:
    """accept_report: the latest report's panel passed it (score at or above the pass mark) and its
    evaluation result is recorded."""
    problem = _panel_passed(engagement, SubmissionKind.REPORT)
    if problem:
        return problem
    if _result_of_latest_report(engagement) is None:
        return "尚未记录评价结果"
    return None


@workflow.requirement("rounds_used_up")
def _rounds_used_up(engagement: Engagement) -> Optional[str]:
    """accept_with_deduction: only once the report has used every round."""
    if rounds_exhausted(engagement) is None:
        limit = get_setting(engagement.bureau, "review.max_rounds")
        return f"报告整改轮次尚未用完（已评审 {rounds_used(engagement, SubmissionKind.REPORT)} 轮，上限 {limit} 轮）"
    return None


@workflow.requirement("deduction_recorded")
def _deduction_recorded(engagement: Engagement) -> Optional[str]:
    result = _result_of_latest_report(engagement)
    if result is None or result.deduction is None or not result.deduction_reason:
        return "尚未记录扣分和扣分理由"
    return None


@workflow.requirement("redacted_file")
def _redacted_file(engagement: Engagement) -> Optional[str]:
    found = db.session.execute(sa.select(Publication.id).where(
        Publication.engagement_id == engagement.id, Publication.classified.is_(False),
        Publication.redacted_file_id.is_not(None))).first()
    return None if found else "尚未上传脱密后的报告"


def is_classified(engagement: Engagement) -> bool:
    """The bureau withheld the report as classified or sensitive (``publish(classified=True)``)."""
    return db.session.execute(sa.select(Publication.id).where(
        Publication.engagement_id == engagement.id, Publication.classified.is_(True))).first() is not None


@workflow.requirement("grade_within_conclusion")
def _grade_within_conclusion(engagement: Engagement) -> Optional[str]:
    """publish, withhold (the caps freeze then): the recorded grade is no better than the grade the accepted report
    concluded, unless a cap is recorded — a report that concluded 中 under a cap (seed 000: "不得评为‘优’、‘良’")
    must not go out as 优 because only its band was recorded. An admin who finds the report's conclusion wrong
    waives it with the reason, kept in the timeline and the audit log."""
    result = db.session.execute(sa.select(EvaluationResult).where(
        EvaluationResult.engagement_id == engagement.id)).scalar_one_or_none()
    if result is None:
        return None
    concluded = db.session.execute(sa.select(Submission.concluded_grade).where(
        Submission.id == result.submission_id)).scalar()
    if concluded is None or _ORDER.index(result.grade) >= _ORDER.index(concluded) or active_caps(result):
        return None
    return (f"记录的评价等级“{result.grade.label}”好于报告结论“{concluded.label}”：报告按等级限制降档的，"
            f"请先在评价结果页记录该限制及其依据")


@workflow.requirement("classified_publication")
def _classified_publication(engagement: Engagement) -> Optional[str]:
    """Withholding is the decision ``publish(classified=True)`` records with its reason: it freezes the grade
    caps and keeps the report from being quoted, so a bare state change (API, script) must not stand in for it."""
    return None if is_classified(engagement) else "尚未在评价结果页标记为涉密不予公开并说明理由"


# === panels ========================================================================================

PANEL_ACTIONS = {SubmissionKind.WORK_PLAN: ("start_plan_review", S.PLAN_SUBMITTED),
                 SubmissionKind.REPORT: ("start_report_review", S.REPORT_SUBMITTED)}
OPEN_PANEL = (PanelStatus.REVIEWING,)


def _per_expert(stmt: sa.Select, expert_ids: Iterable[int]) -> dict[int, int]:
    """``stmt`` (expert id, count, grouped by expert) for these experts, 500 ids a statement: a panel is checked
    against a whole pool (the region's: thousands of experts) in a few statements, not two per expert."""
    ids = sorted({int(i) for i in expert_ids})
    out: dict[int, int] = {}
    for part in batches(ids):
        out.update(db.session.execute(stmt.where(PanelInvitation.expert_id.in_(part))).all())
    return out


def open_review_loads(expert_ids: Iterable[int]) -> dict[int, int]:
    """Per expert, the reviews accepted or invited to and not yet finished (an expert with none is absent)."""
    return _per_expert(
        sa.select(PanelInvitation.expert_id, sa.func.count(PanelInvitation.id))
        .join(ReviewPanel, ReviewPanel.id == PanelInvitation.panel_id)
        .outerjoin(Review, Review.invitation_id == PanelInvitation.id)
        .where(ReviewPanel.status.in_(OPEN_PANEL),
               PanelInvitation.status.in_([InvitationStatus.INVITED, InvitationStatus.ACCEPTED]),
               sa.or_(Review.id.is_(None), Review.status != ReviewStatus.SUBMITTED))
        .group_by(PanelInvitation.expert_id), expert_ids)


def reviews_of_firm_this_year(expert_ids: Iterable[int], firm_id: int, year: int) -> dict[int, int]:
    """Per expert, the panels on the firm's engagements formed in (Beijing's) ``year`` that invited them (invited or
    accepted; an expert with none is absent)."""
    return _per_expert(
        sa.select(PanelInvitation.expert_id, sa.func.count(PanelInvitation.id))
        .join(ReviewPanel, ReviewPanel.id == PanelInvitation.panel_id)
        .join(Engagement, Engagement.id == ReviewPanel.engagement_id)
        .where(Engagement.firm_id == firm_id, ReviewPanel.created_at >= beijing_year_start(year),
               ReviewPanel.created_at < beijing_year_start(year + 1),
               PanelInvitation.status.in_([InvitationStatus.INVITED, InvitationStatus.ACCEPTED]))
        .group_by(PanelInvitation.expert_id), expert_ids)


NO_LOGIN = "未开通账号或未激活，不能在线评审"


def panel_exclusions(engagement: Engagement, experts: list[Expert], *, already: Iterable[int] = (),
                     offline: bool = False) -> dict[int, list[str]]:
    """Every expert who may not sit on this engagement's panel, with the reasons. An online panel also
    excludes the experts who cannot sign in (no enabled, activated account); an offline one (线下评审) does not."""
    with_login = set() if offline else expert_ids_with_login(e.id for e in experts)
    bureau = engagement.bureau
    cap = get_setting(bureau, "review.load_cap")
    per_firm = get_setting(bureau, "review.same_firm_per_year")
    year = beijing_today().year
    already = set(already)
    firm = engagement.firm  # None for a self-evaluation: its unit tree and its bureau are the parties
    parties = engagement_parties(engagement)  # the unit tree both ways, a lower government's bureau and units
    loads = open_review_loads(e.id for e in experts)
    of_firm = reviews_of_firm_this_year((e.id for e in experts), firm.id, year) if firm else {}
    fields = Expert.fields_of(e.id for e in experts) if engagement.field is not None else {}
    avoid = avoidance_reasons_of(experts, firm_ids=[firm.id] if firm else [], names=[firm.name] if firm else [],
                                 parties=parties)
    out: dict[int, list[str]] = {}
    for expert in experts:
        reasons = []
        if expert.id in already:
            reasons.append("已在本评审组中（或已拒绝/逾期）")
        reasons += expert_is_drawable(expert)
        if not offline and expert.id not in with_login:
            reasons.append(NO_LOGIN)
        if engagement.field is not None:
            reasons += field_mismatch(fields[expert.id], engagement.field)
        reasons += avoid[expert.id]
        load = loads.get(expert.id, 0)
        if load >= cap:
            reasons.append(f"在审任务 {load} 项，已达上限 {cap} 项")
        count = of_firm.get(expert.id, 0)
        if count >= per_firm:
            reasons.append(f"今年已评审该机构 {count} 次，达到上限 {per_firm} 次")
        if reasons:
            out[expert.id] = reasons
    return out


def _pool(engagement: Engagement) -> list[Expert]:
    return db.session.execute(sa.select(Expert).where(Expert.bureau_id.in_(library_bureau_ids(engagement.bureau)))
                              .order_by(Expert.id)).scalars().all()


PANEL_SIZE_SETTING = {SubmissionKind.WORK_PLAN: "review.plan_panel_size", SubmissionKind.REPORT: "review.report_panel_size",
                      SubmissionKind.SELF_EVALUATION: "review.self_evaluation_panel_size"}
PASS_MARK_SETTING = {SubmissionKind.WORK_PLAN: "review.plan_pass_mark", SubmissionKind.REPORT: "review.report_pass_mark",
                     SubmissionKind.SELF_EVALUATION: "review.self_evaluation_pass_mark"}
RUBRIC_OF = {SubmissionKind.WORK_PLAN: RubricKind.WORK_PLAN, SubmissionKind.REPORT: RubricKind.REPORT,
             SubmissionKind.SELF_EVALUATION: RubricKind.SELF_EVALUATION}


BY_SUBMISSION = (SubmissionKind.WORK_PLAN, SubmissionKind.REPORT)  # a firm's deliverables: they differ by 委托事项


def kind_pass_mark_key(kind: SubmissionKind, service_kind: ServiceKind) -> str:
    """The setting of the pass mark of ``kind`` (work plan, report) for one 委托事项."""
    return f"{PASS_MARK_SETTING[kind]}.{service_kind.value}"


# A pass mark per 委托事项 (DOMAIN §1). No source fixes one for any kind — seed 000's 90 is the report's, the
# general setting's default — so each follows the general mark (``fallback``) until a bureau sets it.
register(*[
    SettingDef(kind_pass_mark_key(kind, service_kind), f"{SETTINGS[PASS_MARK_SETTING[kind]].label.split('（')[0]}："
               f"{service_kind.label}", "专家评审（按委托事项）", None, minimum=0, maximum=100,
               fallback=PASS_MARK_SETTING[kind],
               help="未设置时沿用上级财政局对该委托事项的设置，均未设置的同通用通过分。")
    for kind in (SubmissionKind.WORK_PLAN, SubmissionKind.REPORT) for service_kind in ServiceKind])


def pass_mark_for(bureau: Any, kind: SubmissionKind, service_kind: Optional[ServiceKind] = None) -> Decimal:
    """The pass mark a panel of ``kind`` formed now in ``bureau`` is held to: the 委托事项's own mark (the bureau's,
    else an upper bureau's), else the general one."""
    key = kind_pass_mark_key(kind, service_kind) if service_kind is not None and kind in BY_SUBMISSION else \
        PASS_MARK_SETTING[kind]
    return Decimal(str(get_setting(bureau, key)))


@dataclass
class Standard:
    """What a panel formed now is held to: its rubric version and pass mark (kept on the panel at formation)."""
    kind: SubmissionKind
    service_kind: Optional[ServiceKind]
    rubric: Rubric
    pass_mark: Decimal

    @property
    def rubric_source(self) -> str:
        """Whose rubric it is, as a page says it: 本局/上级（巴州）/系统默认, and whether it is the kind's own."""
        whose = "系统默认" if self.rubric.bureau_id is None else f"{self.rubric.bureau.short_name}第 {self.rubric.version} 版"
        if self.service_kind is None or self.rubric.service_kind is not None:
            return whose
        return f"{whose}，通用（本委托事项未制定专用评审表）"


def standard_for(bureau: Any, kind: SubmissionKind, service_kind: Optional[ServiceKind] = None) -> Standard:
    return standards_for(bureau, [kind], service_kind)[0]


def standards_for(bureau: Any, kinds: Iterable[SubmissionKind], service_kind: Optional[ServiceKind] = None) -> list[Standard]:
    """``standard_for`` of several submission kinds, their rubrics read in one statement."""
    kinds = list(kinds)
    rubrics = current_rubrics(bureau, [RUBRIC_OF[kind] for kind in kinds], service_kind)
    out = []
    for kind in kinds:
        own = service_kind if kind in BY_SUBMISSION else None
        out.append(Standard(kind, own, rubrics[RUBRIC_OF[kind]], pass_mark_for(bureau, kind, own)))
    return out


def _service_kind_of(subject: Any) -> Optional[ServiceKind]:
    return subject.service_kind if isinstance(subject, Engagement) else None


# --- a panel's subject: an engagement (its state machine moves) or a budget unit's self-evaluation ---------

def _panel_entry(subject: Engagement | SelfEvaluation) -> Optional[tuple[SubmissionKind, Optional[str]]]:
    """What a new panel would review now, and the state-machine action it takes (None for a self-evaluation)."""
    if isinstance(subject, SelfEvaluation):
        return (SubmissionKind.SELF_EVALUATION, None) if subject.status == SelfEvaluationStatus.SUBMITTED else None
    return next(((k, a) for k, (a, state) in PANEL_ACTIONS.items() if state == subject.state), None)


def _subject_word(subject: Engagement | SelfEvaluation) -> str:
    return "部门自评报告" if isinstance(subject, SelfEvaluation) else "评价任务"


def _subject_state(subject: Engagement | SelfEvaluation):
    return subject.status if isinstance(subject, SelfEvaluation) else subject.state


def _subject_columns(subject: Engagement | SelfEvaluation) -> dict:
    if isinstance(subject, SelfEvaluation):
        return {"self_evaluation_id": subject.id}
    return {"engagement_id": subject.id}


def _subject_key(subject: Engagement | SelfEvaluation) -> str:
    """How a panel draw's parameters name its subject."""
    return "self_evaluation" if isinstance(subject, SelfEvaluation) else "engagement"


def _subject_of(params: dict) -> Engagement | SelfEvaluation:
    if "self_evaluation" in params:
        return db.session.get(SelfEvaluation, params["self_evaluation"])
    return db.session.get(Engagement, params["engagement"])


def _advance(subject: Engagement | SelfEvaluation, action: Optional[str], actor: User | None, note: str) -> None:
    """Move the engagement through its state machine; a self-evaluation's status moves by compare-and-set."""
    if not isinstance(subject, SelfEvaluation):
        workflow.perform(subject, action, actor, note=note)
        return
    move_self_evaluation(subject, SelfEvaluationStatus.SUBMITTED, SelfEvaluationStatus.REVIEWING)


def move_self_evaluation(se: SelfEvaluation, from_: SelfEvaluationStatus, to: SelfEvaluationStatus) -> None:
    """Compare-and-set a self-evaluation's status (two requests at once: the second is answered 409)."""
    moved = db.session.execute(sa.update(SelfEvaluation).where(
        SelfEvaluation.id == se.id, SelfEvaluation.status == from_).values(status=to)
        .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        db.session.refresh(se, ["status"])
        raise Conflict(f"该部门自评报告当前状态为“{se.status.label}”，请刷新后查看。")
    se.status = to


def unit_accounts_of(unit_id: int) -> list[User]:
    """The enabled accounts of a budget unit (told about its self-evaluation's outcome)."""
    return db.session.execute(sa.select(User).where(User.budget_unit_id == unit_id, User.role == Role.BUDGET_UNIT,
                                                    User.is_enabled.is_(True)).order_by(User.id)).scalars().all()


def pending_panel_draw(submission: Submission) -> Optional[Draw]:
    """The announced panel draw of this submission still waiting for its witnesses, if any."""
    return db.session.execute(draws.pending().where(Draw.kind == "review_panel", Draw.context_type == "submission",
                                                    Draw.context_id == submission.id)).scalars().first()


def form_panel(engagement: Engagement, actor: User, *, size: int | None = None, offline: bool = False,
               witnesses: Iterable[User] = ()) -> Draw:
    """Announce the draw of the panel for the latest submission (issue 14: witnessed draws). When the draw is
    revealed, ``_seat_panel`` forms the panel, invites the drawn experts and moves the engagement into review.
    ``offline`` (线下评审): experts who cannot sign in may be drawn, and bureau staff enter their answers and
    scores for them."""
    permissions.require(actor, "review.manage", engagement)
    entry = _panel_entry(engagement)
    if entry is None:
        raise Conflict(f"{_subject_word(engagement)}当前状态为“{_subject_state(engagement).label}”，没有待评审的提交。")
    kind, action = entry
    submission = latest_submission(engagement, kind)
    if submission is None or submission.panel is not None:
        raise Conflict("没有待评审的新版本。")
    concurrency.serialise(f"review.panel_draw:{submission.id}")  # two clicks announce one draw
    waiting = pending_panel_draw(submission)
    if waiting is not None:
        raise Conflict(f"该版本的评审专家抽取已公告（抽取 #{waiting.id}），请监督人输入数字后揭晓。")
    bureau = engagement.bureau
    size = size or get_setting(bureau, PANEL_SIZE_SETTING[kind])
    if size < 3 or size % 2 == 0:
        raise ValidationFailed("评审专家人数应为不少于 3 的单数。", {"size": "应为不少于 3 的单数"})
    pool = _pool(engagement)
    exclusions = panel_exclusions(engagement, pool, offline=offline)
    return draws.announce("review_panel", f"{engagement.reference} {kind.label}第 {submission.version} 版评审专家（{size} 人"
                          + ("，线下评审）" if offline else "）"),
                          {e.id: e.name for e in pool}, size, exclusions, actor=actor, bureau_id=engagement.bureau_id,
                          context=("submission", submission.id), witnesses=list(witnesses),
                          params={_subject_key(engagement): engagement.id, "submission": submission.id, "size": size,
                                  "offline": offline})


def _review_over(record: Draw) -> bool:
    """An expert-panel draw stays confidential to the bureau and its witnesses until that review has ended."""
    panel = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.draw_id == (record.redraw_of_id or record.id))
                               ).scalars().first()
    if panel is None and record.kind == "review_replacement":
        panel = db.session.get(ReviewPanel, (record.params or {}).get("panel"))
    return panel is not None and panel.status != PanelStatus.REVIEWING


@draws.on_drawn("review_panel", released=_review_over)
def _seat_panel(record: Draw, actor: User | None) -> ReviewPanel:
    engagement = _subject_of(record.params)
    submission = db.session.get(Submission, record.params["submission"])
    entry = _panel_entry(engagement)
    if entry is None or entry[0] != submission.kind or submission.panel is not None:
        raise Conflict("评价任务的状态已经改变，该评审专家抽取不能再组成评审组。")
    kind, action = entry
    size, offline = record.params["size"], bool(record.params.get("offline"))
    bureau = engagement.bureau
    # the 委托事项's rubric and mark (else the general ones), both kept on the panel: a later revision or setting
    # never rescores it
    standard = standard_for(bureau, kind, _service_kind_of(engagement))
    now = utcnow()
    panel = ReviewPanel(**_subject_columns(engagement), submission_id=submission.id, bureau_id=engagement.bureau_id,
                        kind=kind, round=rounds_used(engagement, kind) + 1, size=size, rubric_id=standard.rubric.id,
                        draw_id=record.id, created_by_id=record.created_by_id or (actor.id if actor else None),
                        # to the end (Beijing) of the period's last day, a holiday moved on to the next working day
                        offline=offline, review_due=days_deadline(bureau, now, get_setting(bureau, "review.review_days")),
                        # the standard the panel is formed on, like its rubric version: a setting changed while it
                        # scores does not move the bar under it
                        pass_mark=standard.pass_mark)
    db.session.add(panel)
    db.session.flush()
    _made, lapsed = _seat_drawn(panel, record, engagement)
    _advance(engagement, action, actor, note=f"抽取评审专家 {size} 人（抽取记录 #{record.id}，监督人见证）")
    audit.record("panel.formed", panel, actor=actor, bureau_id=engagement.bureau_id,
                 summary=f"{engagement.reference} {kind.label}第 {panel.round} 轮评审组成立" + ("（线下评审）" if offline else "")
                         + (f"；{len(lapsed)} 名被抽中的专家揭晓时已不符合抽取条件，补抽" if lapsed else ""),
                 payload={"draw": record.id, "offline": offline, "lapsed": {str(k): v for k, v in lapsed.items()}})
    if lapsed:
        _replace_or_record(panel, record, f"揭晓时 {len(lapsed)} 名被抽中的专家已不符合抽取条件（暂停、在审任务已满等）", actor)
    return panel


def _seat_drawn(panel: ReviewPanel, record: Draw, subject: Any) -> tuple[list[PanelInvitation], dict[int, list[str]]]:
    """Invite whom ``record`` drew and the panel has not yet seated. The rules are asked again at the reveal, of
    the drawn only (the draw itself stands as recorded): an expert suspended while the draw waited for its
    witnesses, or seated meanwhile by another panel's reveal up to the load cap, is not invited; the seat is
    recorded as released, for a replacement to fill, as after a decline. A panel's first draw and every
    replacement draw alike."""
    now = utcnow()
    seated = {i.expert_id for i in panel.invitations}
    ids = [i for i in record.result_ids if i not in seated]
    drawn = db.session.execute(sa.select(Expert).where(Expert.id.in_(ids))).scalars().all()
    lapsed = panel_exclusions(subject, drawn, offline=panel.offline)
    made = []
    for expert_id in ids:
        if expert_id in lapsed:
            panel.invitations.append(PanelInvitation(
                expert_id=expert_id, draw_id=record.id, respond_by=now, status=InvitationStatus.WITHDRAWN,
                withdrawn_at=now, withdrawn_reason=("揭晓时已不符合抽取条件：" + "；".join(lapsed[expert_id]))[:500]))
        else:
            made.append(_invite(panel, expert_id, record.id))
    db.session.flush()
    return made, lapsed


def _replace_or_record(panel: ReviewPanel, original: Draw, reason: str, actor: User | None) -> Optional[Draw]:
    """Announce the replacement draw (returned; None when one already waits); a pool with too few left keeps
    the panel short, recorded in the audit log for the bureau to act on, and whatever else the caller does
    (an expert's decline, the hourly expiry) still goes through."""
    _hold_seats(panel)  # outside the savepoint: rolling back to it would give the lock back
    try:
        with db.session.begin_nested():
            if not _replacement_waiting(panel):
                return _announce_replacement(panel, original, reason, actor)
    except DomainError as exc:
        audit.record("panel.replacement_failed", panel, actor=actor, bureau_id=panel.bureau_id,
                     summary=f"{panel.subject.reference} 评审组补抽失败，需另行组织：{exc.message}", payload={"reason": reason})
    return None


def _invite(panel: ReviewPanel, expert_id: int, draw_id: int) -> PanelInvitation:
    bureau = panel.subject.bureau
    # an answer period ending in a holiday runs to the end of the next working day (民法典 第二百零三条)
    respond_by = days_deadline(bureau, utcnow(), get_setting(bureau, "review.respond_days"))
    invitation = PanelInvitation(expert_id=expert_id, draw_id=draw_id, respond_by=respond_by)
    panel.invitations.append(invitation)
    db.session.flush()
    expert_user = db.session.execute(sa.select(User).where(User.expert_id == expert_id)).scalar_one_or_none()
    emit("panel_invitation", link=f"/reviews/invitations/{invitation.id}", users=[expert_user],
         name=panel.subject.name, kind=panel.kind.label, respond_due=f"北京时间 {format_beijing(invitation.respond_by)}")
    return invitation


def _move(invitation: PanelInvitation, status: InvitationStatus,
          from_: tuple[InvitationStatus, ...] = (InvitationStatus.INVITED,)) -> None:
    """Compare-and-set the invitation's status: an expert answering while the bureau withdraws the same seat
    (two requests, two workers) — the second to arrive finds it moved and is answered 409, not overwritten."""
    moved = db.session.execute(sa.update(PanelInvitation).where(
        PanelInvitation.id == invitation.id, PanelInvitation.status.in_(from_)).values(status=status)
        .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        db.session.refresh(invitation, ["status"])
        raise Conflict(f"该邀请当前状态为“{invitation.status.label}”，已被答复或撤回，请刷新后查看。")
    invitation.status = status


DECLARATION = ("本人承诺：与该评价任务的承担机构、委托方和被评价单位不存在任职、股权、近亲属或其他利害关系，"
               "近三年未在上述单位任职；评审中独立、客观、公正，对评审内容保密。")


def _answer_in_time(invitation: PanelInvitation) -> None:
    """The seat is the replacement draw's once the time to answer is up, whether or not the hourly job has
    expired the invitation yet (online, and an off-line answer recorded by staff alike)."""
    if invitation.respond_by is not None and utcnow() > invitation.respond_by:
        raise Conflict(f"答复期限（北京时间 {format_beijing(invitation.respond_by)}）已过，不能再答复；"
                       "系统将按规则另行抽取替补专家。")


def respond(invitation: PanelInvitation, actor: User, *, accept: bool, declaration_signed: bool = False,
            reason: str | None = None) -> Optional[Draw]:
    """Accept (with the signed no-conflict declaration) or decline (with a reason, then a replacement draw is
    announced: returned)."""
    if actor.role != Role.EXPERT or actor.expert_id != invitation.expert_id:
        raise PermissionDenied("只能答复发给本人的邀请。")
    if invitation.status != InvitationStatus.INVITED:
        raise Conflict(f"该邀请当前状态为“{invitation.status.label}”，不能再答复。")
    if invitation.panel.status != PanelStatus.REVIEWING:
        raise Conflict("该评审已结束。")
    _answer_in_time(invitation)
    invitation.responded_at = utcnow()
    if accept:
        if not declaration_signed:
            raise ValidationFailed("接受邀请前须签署无利益冲突声明。", {"declaration": "请勾选并签署声明"})
        _move(invitation, InvitationStatus.ACCEPTED)
        invitation.declaration = DECLARATION
        db.session.add(Review(invitation=invitation, rubric_id=invitation.panel.rubric_id))
        audit.record("panel.invitation_accepted", invitation.panel, actor=actor, bureau_id=invitation.panel.bureau_id,
                     summary="专家接受评审邀请并签署无利益冲突声明", payload={"invitation": invitation.id})
        return None
    if not (reason or "").strip():
        raise ValidationFailed("请说明拒绝的原因。", {"reason": "必填"})
    _move(invitation, InvitationStatus.DECLINED)
    invitation.decline_reason = reason.strip()
    audit.record("panel.invitation_declined", invitation.panel, actor=actor, bureau_id=invitation.panel.bureau_id,
                 summary=f"专家拒绝评审邀请：{reason.strip()}", payload={"invitation": invitation.id})
    return _replace_or_record(invitation.panel, db.session.get(Draw, invitation.draw_id),
                              f"专家拒绝邀请（{reason.strip()}）", actor)


def respond_offline(invitation: PanelInvitation, actor: User, *, accept: bool, declaration_received: bool = False,
                    reason: str | None = None) -> Optional[Draw]:
    """线下评审: bureau staff record the answer an expert gave off-line — acceptance, with the expert's signed
    paper declaration of no conflict received, or a decline with its reason (then a replacement is drawn, as
    online). Recorded as such: who recorded it and when, on the invitation and in the audit log."""
    panel = invitation.panel
    permissions.require(actor, "review.manage", panel.subject)
    if not panel.offline:
        raise Conflict("该评审组为在线评审，须由专家本人登录答复邀请。")
    if invitation.status != InvitationStatus.INVITED:
        raise Conflict(f"该邀请当前状态为“{invitation.status.label}”，不能再答复。")
    if panel.status != PanelStatus.REVIEWING:
        raise Conflict("该评审已结束。")
    _answer_in_time(invitation)
    reason = (reason or "").strip()
    if accept and not declaration_received:
        raise ValidationFailed("登记接受前须收到专家本人签署的纸质无利益冲突声明。",
                               {"declaration": "请确认已收到专家签署的纸质声明"})
    if not accept and not reason:
        raise ValidationFailed("请填写专家拒绝的原因。", {"reason": "必填"})
    if len(reason) > 500:
        raise ValidationFailed("原因不能超过 500 个字符。", {"reason": "不能超过 500 个字符"})
    now = utcnow()
    invitation.responded_at = now
    invitation.recorded_by_id = actor.id
    if accept:
        _move(invitation, InvitationStatus.ACCEPTED)
        invitation.declaration = (DECLARATION + f"\n（线下评审：专家签署的纸质声明由{actor.display_name}（{actor.username}）"
                                  f"于北京时间 {format_beijing(now)} 登记收到。）")
        db.session.add(Review(invitation=invitation, rubric_id=panel.rubric_id))
        audit.record("panel.invitation_accepted", panel, actor=actor, bureau_id=panel.bureau_id,
                     summary=f"线下评审：{actor.username} 登记专家接受评审邀请，已收到专家签署的纸质无利益冲突声明",
                     payload={"invitation": invitation.id, "offline": True, "paper_declaration": True})
        return None
    _move(invitation, InvitationStatus.DECLINED)
    invitation.decline_reason = reason
    audit.record("panel.invitation_declined", panel, actor=actor, bureau_id=panel.bureau_id,
                 summary=f"线下评审：{actor.username} 登记专家拒绝评审邀请：{reason}",
                 payload={"invitation": invitation.id, "offline": True})
    return _replace_or_record(invitation.panel, db.session.get(Draw, invitation.draw_id),
                              f"专家拒绝邀请（{reason}；线下登记）", actor)


def _vacancies(panel: ReviewPanel) -> int:
    return panel.size - sum(1 for i in panel.invitations if i.status in (InvitationStatus.INVITED, InvitationStatus.ACCEPTED))


def replace_member(invitation: PanelInvitation, reason: str, actor: User | None) -> Optional[Draw]:
    """Announce the replacement draw that cites the decline, the missed deadline or the withdrawal (issue 14:
    it waits on the bureau's draw page for witnesses and the reveal, like any draw); the original draw stays.
    One replacement draw per panel at a time, for every open seat: a second vacancy while one is announced
    waits, and ``_seat_replacements`` announces the next when short. It draws from the SAME recorded pool as
    the panel's draw, keeps that draw's exclusions with their reasons, excludes everyone already drawn for the
    panel, and re-checks who may still sit today (someone suspended, at their load cap or without a login since
    the first draw). Returns the announced draw, or None when one is already waiting."""
    panel = invitation.panel
    _hold_seats(panel)
    if _replacement_waiting(panel):
        return None
    return _announce_replacement(panel, db.session.get(Draw, invitation.draw_id), reason, actor)


def _hold_seats(panel: ReviewPanel) -> None:
    """One change to a panel's replacements at a time — two experts declining at once, a decline while the
    replacement draw is revealed, the expiry job meanwhile: the lock to the end of the transaction, then the seats
    read again, so the second finds the first's replacement draw waiting (it covers the new vacancy when revealed),
    or the vacancy the first opened (one draw covers both)."""
    concurrency.serialise(f"review.replacements:{panel.id}")
    db.session.expire(panel, ["invitations"])


def _replacement_waiting(panel: ReviewPanel) -> bool:
    return db.session.execute(draws.pending().where(Draw.kind == "review_replacement", Draw.context_type == "review_panel",
                                                    Draw.context_id == panel.id)).scalars().first() is not None


def _announce_replacement(panel: ReviewPanel, original: Draw, reason: str, actor: User | None) -> Optional[Draw]:
    open_seats = _vacancies(panel)
    if open_seats < 1:
        return None
    engagement = panel.subject
    first = panel.draw
    recorded = {int(e["id"]): list(e["reasons"]) for e in first.exclusions}
    pool = db.session.execute(sa.select(Expert).where(Expert.id.in_(first.candidate_ids)).order_by(Expert.id)).scalars().all()
    exclusions = panel_exclusions(engagement, pool, already=[i.expert_id for i in panel.invitations], offline=panel.offline)
    for expert_id, reasons in recorded.items():
        exclusions[expert_id] = reasons + [r for r in exclusions.get(expert_id, []) if r not in reasons]
    return draws.announce("review_replacement", f"{engagement.reference} 评审组补抽 {open_seats} 人",
                          {e.id: e.name for e in pool}, open_seats, exclusions,
                          actor=actor if actor is not None and actor.role != Role.EXPERT else None,
                          bureau_id=panel.bureau_id, context=("review_panel", panel.id), params={"panel": panel.id},
                          redraw_of=original, redraw_reason=reason)


@draws.on_drawn("review_replacement", released=_review_over)
def _seat_replacements(record: Draw, actor: User | None) -> list[PanelInvitation]:
    panel = db.session.get(ReviewPanel, record.params["panel"])
    if panel.status != PanelStatus.REVIEWING:
        raise Conflict("该评审已结束，补抽结果不再发出邀请。")
    _hold_seats(panel)  # a seat declined while this draw is revealed is counted below, or finds no draw waiting
    made, _lapsed = _seat_drawn(panel, record, panel.subject)
    # a seat that opened while this draw waited (or one it drew who no longer qualifies) gets the next draw
    try:
        with db.session.begin_nested():
            _announce_replacement(panel, record, f"补抽 #{record.id} 揭晓后仍有空缺", actor)
    except DomainError as exc:
        audit.record("panel.replacement_failed", panel, actor=actor, bureau_id=panel.bureau_id,
                     summary=f"{panel.subject.reference} 评审组补抽失败，需另行组织：{exc.message}",
                     payload={"draw": record.id})
    return made


PENDING = (InvitationStatus.INVITED, InvitationStatus.ACCEPTED)


def _withdraw(invitation: PanelInvitation, actor: User | None, reason: str,
              from_: tuple[InvitationStatus, ...] = (InvitationStatus.INVITED,)) -> None:
    """Take the seat back (recorded, audited, the expert told); the caller draws the replacement."""
    panel = invitation.panel
    _move(invitation, InvitationStatus.WITHDRAWN, from_=from_)
    invitation.withdrawn_reason = reason[:500]
    invitation.withdrawn_by_id = actor.id if actor else None
    invitation.withdrawn_at = utcnow()
    audit.record("panel.invitation_withdrawn", panel, actor=actor, bureau_id=panel.bureau_id,
                 summary=f"{panel.subject.reference} 撤回一位专家的评审邀请：{reason}",
                 payload={"invitation": invitation.id, "expert": invitation.expert_id, "reason": reason})
    expert_user = db.session.execute(sa.select(User).where(User.expert_id == invitation.expert_id,
                                                           User.is_enabled.is_(True))).scalar_one_or_none()
    emit("invitation_withdrawn", link="/reviews", users=[expert_user], name=panel.subject.name,
         kind=panel.kind.label, reason=f"您在该评审组的邀请已撤回，无需再参加本次评审。原因：{reason}")


def withdraw_invitation(invitation: PanelInvitation, actor: User, reason: str) -> Optional[Draw]:
    """The bureau withdraws a pending (not yet answered) invitation with a reason; the replacement draw is
    announced from the panel's recorded pool (returned; None when one already waits). A draw that finds nobody
    refuses the whole withdrawal (nothing written)."""
    panel = invitation.panel
    permissions.require(actor, "review.manage", panel.subject)
    if invitation.status != InvitationStatus.INVITED:
        raise Conflict(f"该邀请当前状态为“{invitation.status.label}”，只能撤回尚未答复的邀请。")
    if panel.status != PanelStatus.REVIEWING:
        raise Conflict("该评审已结束，不能撤回邀请。")
    reason = required_reason(reason, missing="撤回邀请须说明原因。", label="原因", maximum=300)
    _withdraw(invitation, actor, reason)
    try:
        return replace_member(invitation, f"财政局撤回邀请（{reason}）", actor)
    except DomainError as exc:
        raise Conflict(f"无法补抽专家：{exc.message}") from exc


@on_expert_unavailable
def _release_invitations(expert: Expert, actor: User | None, reason: str) -> None:
    """An expert suspended, removed or with their login disabled: every seat they hold on a panel still
    reviewing (invited, or accepted without a submitted review) is released and a replacement drawn. A panel
    whose pool has nobody left stays short, recorded in the audit log for the bureau to act on; the
    suspension itself goes through."""
    seats = db.session.execute(sa.select(PanelInvitation).join(ReviewPanel).outerjoin(
        Review, Review.invitation_id == PanelInvitation.id).where(
        PanelInvitation.expert_id == expert.id, PanelInvitation.status.in_(PENDING),
        ReviewPanel.status == PanelStatus.REVIEWING,
        sa.or_(Review.id.is_(None), Review.status != ReviewStatus.SUBMITTED))).scalars().all()
    for invitation in seats:
        _withdraw(invitation, actor, f"专家不再可用（{reason}）", from_=PENDING)
        _replace_or_record(invitation.panel, db.session.get(Draw, invitation.draw_id), f"专家不再可用（{reason}）", actor)


@workflow.after_step("cancel")
def _close_panels_of_cancelled(engagement: Engagement, actor: User | None, note: str) -> None:
    """A cancelled (终止) engagement's open panels close with it: the experts' seats are released (they are told),
    so the load cap, the reminders and the expiry job no longer count a review nobody will decide."""
    reason = "评价任务已终止" + (f"：{note}" if note else "")
    for panel in db.session.execute(sa.select(ReviewPanel).where(
            ReviewPanel.engagement_id == engagement.id, ReviewPanel.status == PanelStatus.REVIEWING)).scalars():
        for invitation in panel.invitations:
            review = invitation.review
            if invitation.status in PENDING and (review is None or review.status != ReviewStatus.SUBMITTED):
                _withdraw(invitation, actor, reason, from_=PENDING)
        panel.status = PanelStatus.CLOSED
        audit.record("panel.closed", panel, actor=actor, bureau_id=panel.bureau_id,
                     summary=f"{engagement.reference} {panel.kind.label}第 {panel.round} 轮评审组随任务终止而结束")


def expire_invitations(now: datetime | None = None) -> int:
    """Invitations past their response deadline expire and are replaced (run by the reminders job)."""
    now = now or utcnow()
    late = db.session.execute(sa.select(PanelInvitation).join(ReviewPanel).where(
        PanelInvitation.status == InvitationStatus.INVITED, PanelInvitation.respond_by < now,
        ReviewPanel.status == PanelStatus.REVIEWING)).scalars().all()
    expired = 0
    for invitation in late:
        try:  # an answer committed since the read above stands: the seat is filled, nothing to replace
            _move(invitation, InvitationStatus.EXPIRED)
        except Conflict:
            continue
        panel = invitation.panel
        reason = f"专家未在北京时间 {format_beijing(invitation.respond_by)} 前答复邀请"
        audit.record("panel.invitation_expired", panel, actor=None, bureau_id=panel.bureau_id,
                     summary=f"{panel.subject.reference} 一位专家的评审邀请逾期未答复，已失效",
                     payload={"invitation": invitation.id, "expert": invitation.expert_id, "reason": reason})
        # one panel whose pool is spent is recorded for its bureau; the other panels' reminders still go out
        _replace_or_record(panel, db.session.get(Draw, invitation.draw_id), reason, None)
        expired += 1
    return expired


# === reviews =======================================================================================

def _own_review(review: Review, actor: User) -> None:
    if not (actor.role == Role.EXPERT and actor.expert_id == review.invitation.expert_id
            or enters_for_expert(review.invitation, actor)):
        raise PermissionDenied("只能填写本人的评审意见。")
    if review.invitation.status == InvitationStatus.WITHDRAWN:  # a released seat no longer counts, nor writes
        raise Conflict(f"该评审邀请已撤回（{review.invitation.withdrawn_reason or '财政局撤回'}），不能再填写或提交评审意见。")


def reads_own_review(review: Review, actor: User) -> bool:
    """``actor`` reads ``review`` as its author (its page, ``GET /api/v1/reviews/<id>``): the expert while the seat
    stands — a seat released (the expert suspended, removed or signed out for good, the engagement terminated) reads
    no more of the submission or the panel than an expert off the panel, as the submission's file already answers
    (seated: accepted) — or the bureau entering an offline panel's answers for the expert."""
    invitation = review.invitation
    if actor.role == Role.EXPERT:
        return actor.expert_id == invitation.expert_id and invitation.status == InvitationStatus.ACCEPTED
    return enters_for_expert(invitation, actor)


def enters_for_expert(invitation: PanelInvitation, actor: User) -> bool:
    """线下评审: the panel is offline and ``actor`` manages its review, so may record the expert's answer and
    enter their scores for them (recorded as entered on the expert's behalf)."""
    return (invitation.panel.offline and actor.role != Role.EXPERT
            and permissions.can(actor, "review.manage", invitation.panel.subject))


class AlreadySubmitted(Conflict):
    """The review has been submitted — by an earlier request or by this one's twin (a double click, a second
    worker): it no longer changes."""


SUBMITTED_MESSAGE = "评审意见已提交，不能再修改。如需修改，请联系组织评审的财政部门退回。"


def _hold_draft(review: Review) -> bool:
    """Take the review's row until this transaction ends, if it is still a draft; False once it is submitted.

    A compare-and-set UPDATE (``… WHERE status = 'draft'``), the same on both databases: on PostgreSQL the
    row lock makes a save and a submit of one review wait for each other, and the WHERE is checked again
    after the wait; on SQLite the UPDATE takes the database's write lock. Whatever this session read of the
    review and its scores before the lock is read again, so a submit totals the scores as saved."""
    held = db.session.execute(
        sa.update(Review).where(Review.id == review.id, Review.status == ReviewStatus.DRAFT)
        .values(updated_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    db.session.expire(review)
    db.session.execute(sa.select(ReviewScore).where(ReviewScore.review_id == review.id)
                       .execution_options(populate_existing=True)).scalars().all()
    return held == 1


def save_review(review: Review, actor: User, *, scores: dict[int, Any], comments: dict[int, str],
                opinion: str | None) -> Review:
    """Save a draft: points and a comment per rubric item, and the overall opinion. A submitted review is
    immutable: saving it raises ``AlreadySubmitted`` (409), even when the submit is a moment ahead.

    The draft is what was typed: an item given with blank points (None or "") clears its saved points, so a
    later submit asks for them again; a comment is kept whether or not the item is scored yet. An item absent
    from ``scores`` (or ``comments``) keeps what is saved — the API's partial drafts; the web form gives all."""
    _own_review(review, actor)
    if review.status == ReviewStatus.SUBMITTED or not _hold_draft(review):
        raise AlreadySubmitted(SUBMITTED_MESSAGE)
    if review.invitation.panel.status != PanelStatus.REVIEWING:
        raise Conflict("该评审已结束。")
    errors: dict[str, str] = {}
    by_item = {s.rubric_item_id: s for s in review.scores}
    posted: dict[int, tuple[Optional[Decimal], str]] = {}
    for item in review.rubric.items:
        row = by_item.get(item.id)
        points, comment = (row.points, row.comment) if row is not None else (None, "")
        if item.id in scores:
            raw = scores[item.id]
            points = None
            if raw not in (None, "") and not (isinstance(raw, str) and not raw.strip()):
                points = _decimal(errors, f"score_{item.id}", raw, f"“{item.name}”得分")
                if points is not None and not Decimal("0") <= points <= item.max_points:
                    errors[f"score_{item.id}"] = f"“{item.name}”得分应在 0–{item.max_points} 之间"
        if item.id in comments:
            comment = (comments[item.id] or "").strip()
        posted[item.id] = (points, comment)
    _raise_if(errors)
    for item in review.rubric.items:
        points, comment = posted[item.id]
        row = by_item.get(item.id)
        if points is None and not comment:
            if row is not None:
                review.scores.remove(row)  # nothing typed for the item: no row (delete-orphan)
            continue
        if row is None:
            row = ReviewScore(rubric_item_id=item.id, points=points, comment=comment)
            review.scores.append(row)
        row.points, row.comment = points, comment
    review.opinion = (opinion or "").strip() or None
    review.updated_at = utcnow()
    return review


def matches_submitted(review: Review, *, scores: dict[int, Any], comments: dict[int, str], opinion: str | None) -> bool:
    """Whether posted values are exactly the submitted review (the same form sent twice), so a repeated
    submit can answer "already submitted" instead of refusing a change."""
    if review.status != ReviewStatus.SUBMITTED or (opinion or "").strip() != (review.opinion or ""):
        return False
    saved = {s.rubric_item_id: s for s in review.scores}
    for item in review.rubric.items:
        row = saved.get(item.id)
        try:
            points = Decimal(str(scores.get(item.id)).strip())
        except (InvalidOperation, ValueError):
            return False
        if not points.is_finite():  # NaN, sNaN, Infinity: never a submitted score (sNaN would raise on ``!=``)
            return False
        if row is None or points != row.points or (comments.get(item.id) or "").strip() != row.comment:
            return False
    return True


def submit_review(review: Review, actor: User) -> Review:
    """Submit once; the outcome is computed when the last member submits — exactly once.

    Idempotent: submitting a review that is already submitted (a double click, a retried request) changes
    nothing, records nothing and returns it as it was submitted."""
    _own_review(review, actor)
    panel = review.invitation.panel
    # Serialise the members of one panel: the panel row is locked until this transaction ends, so the
    # last of two simultaneous submissions sees the other and decides the outcome.
    db.session.execute(sa.select(ReviewPanel.id).where(ReviewPanel.id == panel.id).with_for_update())
    # Then the review's own row: a draft save in flight finishes first, and the total below is of its scores.
    if not _hold_draft(review):
        return review  # already submitted
    errors: dict[str, str] = {}
    by_item = {s.rubric_item_id: s for s in review.scores}
    for item in review.rubric.items:
        row = by_item.get(item.id)
        if row is None or row.points is None:  # a draft may hold a reason before its score
            errors[f"score_{item.id}"] = f"请为“{item.name}”打分"
        elif not row.comment:
            errors[f"comment_{item.id}"] = f"请填写“{item.name}”的评分理由"
    if not review.opinion:
        errors["opinion"] = "请填写总体评审意见"
    _raise_if(errors)
    review.total = sum((s.points for s in review.scores), Decimal("0"))
    review.status = ReviewStatus.SUBMITTED
    review.submitted_at = utcnow()
    on_behalf = actor.role != Role.EXPERT  # 线下评审: entered by bureau staff (``_own_review`` allowed it)
    if on_behalf:
        review.entered_by_id, review.entered_at = actor.id, review.submitted_at
        review.offline_note = f"专家线下评审，评审意见由{actor.display_name}（{actor.username}）代为录入"
    else:
        review.entered_by_id = review.entered_at = review.offline_note = None
    audit.record("review.submitted", panel, actor=actor, bureau_id=panel.bureau_id,
                 summary=f"{panel.subject.reference} " + (f"{actor.username} 代一位专家录入线下评审意见（专家线下评审）"
                                                              if on_behalf else "一位专家提交评审意见"),
                 payload={"review": review.id, **({"offline": True, "entered_by": actor.id} if on_behalf else {})})
    db.session.flush()
    # The outcome is the panel's, not the last expert's: recorded without a person (a firm reads the timeline).
    maybe_decide(panel, None)
    return review


def reopen_review(review: Review, actor: User, reason: str) -> None:
    panel = review.invitation.panel
    permissions.require(actor, "review.manage", panel.subject)
    # the panel's row lock, as the members' submissions take it: a decision made meanwhile on this review is seen
    db.session.execute(sa.select(ReviewPanel.id).where(ReviewPanel.id == panel.id).with_for_update())
    db.session.refresh(panel)
    db.session.refresh(review)
    if review.status != ReviewStatus.SUBMITTED:
        raise Conflict("该评审意见尚未提交。")
    if panel.decided_at is not None:
        raise Conflict("评审结果已产生，不能再退回专家修改。")
    if not (reason or "").strip():
        raise ValidationFailed("退回专家修改须说明原因。", {"reason": "必填"})
    review.status = ReviewStatus.DRAFT
    review.submitted_at = None
    audit.record("review.reopened", panel, actor=actor, bureau_id=panel.bureau_id,
                 summary=f"财政局退回一份评审意见供专家修改：{reason.strip()}", payload={"review": review.id})


def exact_panel_score(totals: list[Decimal], trimmed_from: int) -> Decimal:
    """Mean of the experts' totals, unrounded; trimmed (drop the highest and the lowest) from ``trimmed_from``
    experts. The pass decision is made on this: 90, 90, 89.99 → 89.9967 fails a pass mark of 90."""
    values = sorted(totals)
    if len(values) >= trimmed_from and len(values) >= 3:
        values = values[1:-1]
    return sum(values, Decimal("0")) / len(values)


def panel_score(totals: list[Decimal], trimmed_from: int) -> Decimal:
    """The panel score as shown and stored (two places)."""
    return _q(exact_panel_score(totals, trimmed_from))


def passes(exact: Decimal, pass_mark: Decimal) -> bool:
    """THE pass decision: the unrounded score against the pass mark (display rounding never lifts a fail)."""
    return exact >= pass_mark


def decided_exact(panel: ReviewPanel | Any) -> Optional[Decimal]:
    """The unrounded score a decided panel (or a row with its columns, its id as ``panel_id``) was decided on.
    Only the rounded score is stored, so it is worked out again from the submitted reviews; the trimming setting
    may have changed since the decision, so the reading that agrees with the stored score and decision is taken
    (the bureau's current setting first, when the panel is at hand)."""
    if panel.score is None:
        return None
    own = isinstance(panel, ReviewPanel)
    totals = list(db.session.execute(
        sa.select(Review.total).join(PanelInvitation, PanelInvitation.id == Review.invitation_id)
        .where(PanelInvitation.panel_id == (panel.id if own else panel.panel_id),
               PanelInvitation.status == InvitationStatus.ACCEPTED,
               Review.status == ReviewStatus.SUBMITTED, Review.total.is_not(None))).scalars())
    if not totals:
        return panel.score
    as_set = (get_setting(panel.subject.bureau, "review.trimmed_mean_from"),) if own else ()
    for trimmed_from in (*as_set, 3, len(totals) + 1):  # as set now, trimmed, untrimmed
        exact = exact_panel_score(totals, trimmed_from)
        if _q(exact) == panel.score and (panel.pass_mark is None or passes(exact, panel.pass_mark) == panel.passed):
            return exact
    return panel.score


def rounding_hides_fail(panel: ReviewPanel | Any) -> bool:
    """A failed panel whose rounded score reaches the pass mark (90, 90, 89.99 → 90.00, failed)."""
    return (panel.score is not None and panel.passed is False and panel.pass_mark is not None
            and panel.score >= panel.pass_mark)


def score_words(panel: ReviewPanel | Any, exact: Optional[Decimal] = None) -> str:
    """The panel's score as every letter, message, note and page states it: “90.00 分”; where rounding would
    show a fail at or above the pass mark, the unrounded figure the decision was taken on comes first
    (“89.9967 分（四舍五入为 90.00 分）”), so no sentence reads “90.00 分，低于 90 分”."""
    if rounding_hides_fail(panel):
        exact = exact if exact is not None else decided_exact(panel)
        if exact is not None and exact != panel.score:
            return f"{exact.quantize(Decimal('0.0001'), ROUND_HALF_UP)} 分（四舍五入为 {panel.score} 分）"
    return f"{panel.score} 分"


def maybe_decide(panel: ReviewPanel, actor: User | None) -> bool:
    """Decide the outcome if every accepted member submitted and nobody is still invited."""
    invitations = db.session.execute(sa.select(PanelInvitation).where(PanelInvitation.panel_id == panel.id)
                                     .execution_options(populate_existing=True)).scalars().all()
    seated = [i for i in invitations if i.status in (InvitationStatus.INVITED, InvitationStatus.ACCEPTED)]
    if len(seated) < panel.size or any(i.status == InvitationStatus.INVITED for i in seated):
        return False
    reviews = db.session.execute(sa.select(Review).where(Review.invitation_id.in_([i.id for i in seated]))
                                 .execution_options(populate_existing=True)).scalars().all()
    if len(reviews) < panel.size or any(r.status != ReviewStatus.SUBMITTED for r in reviews):
        return False
    now = utcnow()
    # Compare-and-set: only one transaction can move decided_at from NULL.
    claimed = db.session.execute(sa.update(ReviewPanel).where(ReviewPanel.id == panel.id, ReviewPanel.decided_at.is_(None))
                                 .values(decided_at=now)).rowcount
    if claimed != 1:
        return False
    db.session.refresh(panel)
    bureau = panel.subject.bureau
    totals = [r.total for r in reviews]
    exact = exact_panel_score(totals, get_setting(bureau, "review.trimmed_mean_from"))
    panel.score = _q(exact)
    panel.spread = max(totals) - min(totals)
    panel.spread_flagged = panel.spread > get_setting(bureau, "review.spread_flag")
    if panel.pass_mark is None:  # a panel formed before the mark was kept at formation
        panel.pass_mark = pass_mark_for(bureau, panel.kind, _service_kind_of(panel.subject))
    panel.passed = passes(exact, panel.pass_mark)
    panel.status = PanelStatus.DECIDED
    engagement = panel.subject
    words = score_words(panel, exact)
    audit.record("panel.decided", panel, actor=actor, bureau_id=panel.bureau_id,
                 summary=f"{engagement.reference} {panel.kind.label}第 {panel.round} 轮评审结果：{words}，"
                         + ("通过" if panel.passed else f"低于 {panel.mark} 分"),
                 payload={"score": panel.score, "exact": str(exact), "spread": panel.spread, "flag": panel.spread_flagged})
    if isinstance(engagement, SelfEvaluation):
        _decide_self_evaluation(panel, engagement, reviews, words)
    elif panel.passed:
        if panel.kind == SubmissionKind.REPORT:
            record_result(engagement, panel.submission, None)  # accept_report requires the recorded result
        workflow.perform(engagement, "approve_plan" if panel.kind == SubmissionKind.WORK_PLAN else "accept_report",
                         actor, note=f"专家评审 {panel.score} 分（通过线 {panel.mark}）", system=True)
        panel.letter = consolidated_letter(panel, reviews, words)
        panel.status = PanelStatus.CLOSED
        emit("review_passed", link=f"/engagements/{engagement.id}", firm_id=engagement.firm_id,
             reference=engagement.reference, kind=panel.kind.label, detail=f"专家评审得分 {panel.score} 分。")
    else:
        panel.letter = consolidated_letter(panel, reviews, words)  # bureau staff edit it before it is sent
        emit("review_failed", link=f"/reviews/panels/{panel.id}", bureau_id=engagement.bureau_id,
             reference=engagement.reference, kind=panel.kind.label,
             detail=f"专家评审得分 {words}，低于 {panel.mark} 分。请审核汇总意见后退回机构。")
    return True


def _decide_self_evaluation(panel: ReviewPanel, se: SelfEvaluation, reviews: list[Review], words: str) -> None:
    """The decided outcome of a self-evaluation's panel: passed closes it and tells the unit; under the pass
    mark the bureau edits the drafted letter and sends it back (``send_letter``). The unit reads the score with
    the outcome: at once when passed, with the letter when returned (``se.score`` is what its pages show)."""
    panel.letter = consolidated_letter(panel, reviews, words)
    if panel.passed:
        se.score = panel.score
        move_self_evaluation(se, SelfEvaluationStatus.REVIEWING, SelfEvaluationStatus.PASSED)
        panel.status = PanelStatus.CLOSED
        emit("self_evaluation_passed", link=f"/results/self-evaluations/{se.id}", users=unit_accounts_of(se.budget_unit_id),
             reference=se.reference, name=se.name, score=words)
    else:
        emit("review_failed", link=f"/reviews/panels/{panel.id}", bureau_id=se.bureau_id, reference=se.reference,
             kind=panel.kind.label, detail=f"专家评审得分 {words}，低于 {panel.mark} 分。请审核汇总意见后退回单位整改。")


_CLAUSE_END = "。；;，,、.！!？? \u3000\t\r\n"


def join_clauses(parts: Iterable[str]) -> str:
    """The experts' comments as one sentence: each stripped of its own closing punctuation, joined with "；",
    ended with "。" — never "。；", "；。" or "。。" (the comments often end with a full stop already)."""
    clauses = [c.strip().rstrip(_CLAUSE_END).strip() for c in parts if c and c.strip()]
    clauses = [c for c in dict.fromkeys(clauses) if c]
    return "；".join(clauses) + "。" if clauses else ""


def consolidated_letter(panel: ReviewPanel, reviews: list[Review], score_words: str | None = None) -> str:
    """The opinion letter drafted from the experts' comments — no names, no individual scores."""
    # the panel's subject (read as two attributes: the demo archive drafts letters for stand-in panels)
    engagement = panel.engagement or panel.self_evaluation
    own = isinstance(engagement, SelfEvaluation)  # addressed to the budget unit, not to a firm
    lines = [f"{engagement.budget_unit.name if own else engagement.firm.name}：", "",
             f"{'贵单位' if own else '贵机构'}提交的《{engagement.name}》{panel.kind.label}（第 {panel.submission.version} 版）经专家评审，"
             f"综合得分 {score_words or f'{panel.score} 分'}，"
             + ("达到通过线。" if panel.passed else f"低于 {panel.mark} 分的通过线，请按以下意见整改后重新提交。"),
             ""]
    for number, item in enumerate(panel.rubric.items, start=1):
        text = join_clauses(s.comment for r in reviews for s in r.scores if s.rubric_item_id == item.id)
        if text:
            lines.append(f"{number}. {item.name}：{text}")
    opinions = join_clauses(r.opinion or "" for r in reviews)
    if opinions:
        lines += ["", f"总体意见：{opinions}"]
    lines += ["", f"{engagement.bureau.name}"]
    return "\n".join(lines)


def send_letter(panel: ReviewPanel, actor: User, letter: str) -> None:
    """Bureau staff send the (edited) letter: the submission goes back for rectification."""
    permissions.require(actor, "review.manage", panel.subject)
    if panel.status != PanelStatus.DECIDED or panel.passed:
        raise Conflict("只有未通过、尚未退回的评审可以发送整改意见。")
    letter = (letter or "").strip()
    if len(letter) < 20:
        raise ValidationFailed("整改意见过短，请完善后发送。", {"letter": "整改意见过短"})
    if isinstance(panel.subject, SelfEvaluation):
        _return_self_evaluation(panel, panel.subject, actor, letter)
        return
    engagement = panel.engagement
    words = score_words(panel)
    panel.letter = letter
    panel.letter_sent_at = utcnow()
    # the end (Beijing) of the period's last day, a holiday moved on to the next working day (民法典 第二百零三条)
    panel.resubmit_due = days_deadline(engagement.bureau, utcnow(), get_setting(engagement.bureau, "review.resubmit_days"))
    panel.status = PanelStatus.CLOSED
    workflow.perform(engagement, "return_plan" if panel.kind == SubmissionKind.WORK_PLAN else "return_report", actor,
                     note=f"第 {panel.round} 轮评审 {words}，低于通过线 {panel.mark} 分，退回整改；请于 {format_beijing(panel.resubmit_due, '%Y-%m-%d')} 前重新提交")
    emit("returned_for_rectification", link=f"/engagements/{engagement.id}", firm_id=engagement.firm_id,
         reference=engagement.reference, kind=panel.kind.label, letter=letter[:500])
    if panel.kind == SubmissionKind.REPORT:  # a returned report: points to the people responsible (issue 14)
        from evalhub.procurement import team
        from evalhub.registry.models import PointKind

        team.charge(engagement, PointKind.REPORT_RETURNED, bureau=engagement.bureau, source_type="review_panel",
                    source_id=panel.id, actor=actor, link=f"/engagements/{engagement.id}",
                    note=f"第 {panel.round} 轮评审 {words}，低于通过线 {panel.mark} 分，退回整改")


def _return_self_evaluation(panel: ReviewPanel, se: SelfEvaluation, actor: User, letter: str) -> None:
    """Under the pass mark: the letter goes to the unit, which rectifies and hands in a new version."""
    claimed = db.session.execute(sa.update(ReviewPanel).where(
        ReviewPanel.id == panel.id, ReviewPanel.status == PanelStatus.DECIDED, ReviewPanel.letter_sent_at.is_(None))
        .values(letter_sent_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        raise Conflict("整改意见已经发送。")
    db.session.refresh(panel)
    panel.letter = letter
    panel.resubmit_due = days_deadline(se.bureau, utcnow(), get_setting(se.bureau, "review.self_evaluation_resubmit_days"))
    panel.status = PanelStatus.CLOSED
    se.score = panel.score  # read with the letter, not before
    words = score_words(panel)
    move_self_evaluation(se, SelfEvaluationStatus.REVIEWING, SelfEvaluationStatus.RETURNED)
    audit.record("self_evaluation.returned", se, actor=actor, bureau_id=se.bureau_id,
                 summary=f"{se.reference} 部门自评报告第 {panel.round} 轮评审 {words}，低于 {panel.mark} 分，退回单位整改",
                 payload={"panel": panel.id, "score": panel.score})
    emit("self_evaluation_returned", link=f"/results/self-evaluations/{se.id}", users=unit_accounts_of(se.budget_unit_id),
         reference=se.reference, name=se.name, score=words, pass_mark=panel.mark,
         due=format_beijing(panel.resubmit_due, "%Y-%m-%d"), letter=letter[:500])


@workflow.resubmission_deadline
@functools.cache  # built once: lists and dashboards call it per request, the expression never changes
def _resubmit_due_sql() -> sa.ColumnElement:
    """When (UTC) the firm must resubmit after the engagement's last returned review: NULL if none."""
    # The latest such panel by max(id) over the engagement's own panels (the engagement_id index), not
    # ORDER BY id DESC LIMIT 1, which PostgreSQL answers by walking the whole panel table backwards.
    latest = (sa.select(sa.func.max(ReviewPanel.id))
              .where(ReviewPanel.engagement_id == Engagement.id, ReviewPanel.resubmit_due.is_not(None))
              .correlate(Engagement).scalar_subquery())
    panel = sa.orm.aliased(ReviewPanel)
    return sa.select(panel.resubmit_due).where(panel.id == latest).correlate(Engagement).scalar_subquery()


def resubmission_due(engagement: Engagement) -> Optional[date]:
    """The date (Beijing) by which the firm must resubmit after the last returned review, if any."""
    due = db.session.execute(sa.select(_resubmit_due_sql()).select_from(Engagement)
                             .where(Engagement.id == engagement.id)).scalar()
    return to_beijing(due).date() if due else None


def scoped_panels(user: User) -> sa.Select:
    """The expert panels whose subject ``user`` sees: an engagement or a self-evaluation in the user's row scope
    (``permissions.scope`` has no rule for panels; each subject's rule carries it)."""
    engagements = permissions.scope(user, sa.select(Engagement.id), Engagement)
    self_evaluations = permissions.scope(user, sa.select(SelfEvaluation.id), SelfEvaluation)
    return sa.select(ReviewPanel).where(sa.or_(ReviewPanel.engagement_id.in_(engagements),
                                               ReviewPanel.self_evaluation_id.in_(self_evaluations)))


# The present time for a statement kept and run again later (a list's ``?overdue=1``): read when it runs.
NOW = sa.bindparam("review_now", callable_=utcnow, type_=sa.DateTime)


def _owing() -> sa.ScalarSelect:
    """How many members of the panel (correlated) still owe a review: invited or accepted, review not submitted."""
    return (sa.select(sa.func.count(PanelInvitation.id))
            .outerjoin(Review, Review.invitation_id == PanelInvitation.id)
            .where(PanelInvitation.panel_id == ReviewPanel.id,
                   PanelInvitation.status.in_([InvitationStatus.INVITED, InvitationStatus.ACCEPTED]),
                   sa.or_(Review.id.is_(None), Review.status != ReviewStatus.SUBMITTED))
            .correlate(ReviewPanel).scalar_subquery())


def _past_due(now: Any) -> sa.ColumnElement[bool]:
    return sa.and_(ReviewPanel.status == PanelStatus.REVIEWING, ReviewPanel.review_due < now)


def overdue_clause(now: Any = NOW) -> sa.ColumnElement[bool]:
    """``overdue_reviews_query``'s rule as a condition on ``ReviewPanel`` (the panel list's filter): the same
    panels, so the dashboard's count is what the filtered list shows."""
    return sa.and_(_past_due(now), _owing() > 0)


def overdue_reviews_query(panels_stmt: sa.Select, now: Any = None) -> sa.Select:
    """Open panels past their review deadline with members still owing a review (invited or accepted, review
    not submitted), as a statement of (id, review_due, engagement_id, late — how many members owe,
    self_evaluation_id), by deadline.
    ``panels_stmt``: a SELECT of ``ReviewPanel`` narrowed by the caller; ``now``: a time (the present if None) or
    a bound parameter standing for it. Counted in SQL: no panel, invitation
    or review is loaded (the dashboard also asks it first whether there are any, with its other counts)."""
    now = utcnow() if now is None else now
    due = panels_stmt.with_only_columns(ReviewPanel.id, ReviewPanel.review_due, ReviewPanel.engagement_id,
                                        _owing().label("late"), ReviewPanel.self_evaluation_id) \
        .order_by(None).where(_past_due(now)).subquery("due")
    return sa.select(due).where(due.c.late > 0).order_by(due.c.review_due, due.c.id)


def overdue_reviews_page(panels_stmt: sa.Select, now: Any = None, limit: int = 10) -> sa.Select:
    """``overdue_reviews_query``'s first ``limit`` as rows (id, review_due, engagement_id, late, self_evaluation_id,
    reference, name, unit, total — how many there are, a window over every late panel evaluated before the LIMIT).
    An engagement's panel names its reference and name; a self-evaluation's its name and its budget unit (no
    reference). ``now`` may be a bound parameter, for a statement built once and run at later times."""
    due = overdue_reviews_query(panels_stmt, now).subquery("late")
    return sa.select(due, Engagement.reference, sa.func.coalesce(Engagement.name, SelfEvaluation.name).label("name"),
                     BudgetUnit.name.label("unit"), sa.func.count().over().label("total")) \
        .outerjoin(Engagement, Engagement.id == due.c.engagement_id) \
        .outerjoin(SelfEvaluation, SelfEvaluation.id == due.c.self_evaluation_id) \
        .outerjoin(BudgetUnit, BudgetUnit.id == SelfEvaluation.budget_unit_id) \
        .order_by(due.c.review_due, due.c.id).limit(limit)


def overdue_reviews(panels_stmt: sa.Select, now: datetime | None = None,
                    limit: int = 10) -> tuple[int, list[sa.Row]]:
    """``overdue_reviews_page`` read: how many, and the first ``limit``."""
    rows = db.session.execute(overdue_reviews_page(panels_stmt, now, limit)).all()
    return (rows[0].total if rows else 0), rows


# === visibility ====================================================================================

def may_view_subject(user: User, panel: ReviewPanel) -> bool:
    """Whether the user reads the panel's subject: the engagement, or the self-evaluation (its rule is
    declared by results, which owns the budget units' side)."""
    if panel.engagement_id is not None:
        return permissions.can(user, "engagement.view", panel.engagement)
    return permissions.can(user, "self_evaluation.view", panel.self_evaluation)


def visible_reviews(panel: ReviewPanel, user: User) -> list[Review]:
    """Individual reviews: the bureau sees all; an expert sees others' only after submitting their own;
    a firm sees none (it reads the consolidated letter)."""
    reviews = [i.review for i in panel.invitations if i.review is not None]
    if user.role == Role.SYSTEM_ADMIN or (user.role in (Role.BUREAU_ADMIN, Role.BUREAU_STAFF) and
                                          may_view_subject(user, panel)):
        return reviews
    if user.role == Role.EXPERT:
        own = next((r for r in reviews if r.invitation.expert_id == user.expert_id), None)
        if own is None:
            return []
        if own.status != ReviewStatus.SUBMITTED:
            return [own]
        return [r for r in reviews if r.status == ReviewStatus.SUBMITTED]
    return []


# === after acceptance ==============================================================================

def active_caps(result: EvaluationResult) -> list[str]:
    """The caps in force: those recorded with evidence and not lifted (a result recorded before caps carried
    evidence keeps the codes it was recorded with)."""
    if not result.cap_records:
        return list(result.caps or [])
    return list(dict.fromkeys(c.code for c in result.cap_records if c.lifted_at is None))


def record_result(engagement: Engagement, submission: Submission, actor: User | None, *,
                  caps: Iterable[str] | None = None, deduction: Any = None,
                  deduction_reason: str | None = None) -> EvaluationResult:
    score = submission.concluded_total or Decimal("0")
    errors: dict[str, str] = {}
    deduction_value = None
    if deduction not in (None, ""):
        deduction_value = _decimal(errors, "deduction", deduction, "扣分")
        if deduction_value is not None and not Decimal("0") <= deduction_value <= HUNDRED:
            errors["deduction"] = "扣分应在 0–100 之间"
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == engagement.id)).scalar_one_or_none()
    caps = [c for c in (caps if caps is not None else (active_caps(result) if result else [])) if c]
    unknown = [c for c in caps if c not in CAPS]
    if unknown:
        errors["caps"] = "未知的等级限制：" + "、".join(unknown)
    _raise_if(errors)
    band = grade_for(score)  # the band from the score, then the caps lower it
    if result is None:
        result = EvaluationResult(engagement_id=engagement.id, submission_id=submission.id, score=score,
                                  band_grade=band, grade=band)
        db.session.add(result)
    result.submission_id = submission.id
    result.score = score
    result.band_grade = band
    result.caps = caps
    result.grade = apply_caps(band, caps)
    result.deduction = deduction_value
    result.deduction_reason = (deduction_reason or "").strip() or None
    result.decided_by_id = actor.id if actor else None
    db.session.flush()
    audit.record("result.recorded", engagement, actor=actor,
                 summary=f"{engagement.reference} 评价结果：{score} 分，{result.grade.label}"
                         + (f"（等级限制：{'、'.join(CAPS[c][0] for c in caps)}）" if caps else ""),
                 payload={"score": score, "band": band, "grade": result.grade, "caps": caps})
    return result


def accept_with_deduction(engagement: Engagement, actor: User, deduction: Any, reason: str) -> EvaluationResult:
    """After the round limit the bureau accepts the report with a recorded deduction (or cancels).
    The result with its deduction is recorded first: the state machine accepts only what it finds recorded."""
    if rounds_exhausted(engagement) is None:
        raise Conflict("报告整改轮次尚未用完，不能扣分验收。")
    note = f"扣 {deduction} 分：{(reason or '').strip()}"
    workflow.check(engagement, "accept_with_deduction", actor, note=reason, skip=("deduction_recorded",))
    if deduction in (None, "") or isinstance(deduction, str) and not deduction.strip():
        raise ValidationFailed("扣分验收须填写扣分。", {"deduction": "必填"})
    result = record_result(engagement, latest_submission(engagement, SubmissionKind.REPORT), actor,
                           deduction=deduction, deduction_reason=reason)
    workflow.perform(engagement, "accept_with_deduction", actor, note=note)
    return result


# --- caps: recorded with evidence and reason, frozen at publication ---------------------------------

def caps_frozen(engagement: Engagement) -> bool:
    """Once the report is published or withheld (a Publication decided), the caps are frozen."""
    return db.session.execute(sa.select(Publication.id).where(
        Publication.engagement_id == engagement.id,
        sa.or_(Publication.published_at.is_not(None), Publication.classified.is_(True)))).first() is not None


def _cap_change_allowed(engagement: Engagement, actor: User) -> bool:
    """Who may change caps now; True when the change comes after publication (an admin's, recorded as such)."""
    permissions.require(actor, "review.manage", engagement)
    if not caps_frozen(engagement):
        return False
    if actor.role != Role.BUREAU_ADMIN:
        raise PermissionDenied("评价报告已公开（或已不予公开归档），等级限制已冻结；如需变更，须由本局管理员填写理由办理。")
    return True


def _result_for_caps(engagement: Engagement) -> EvaluationResult:
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == engagement.id)).scalar_one_or_none()
    if result is None:
        raise Conflict("报告验收后才有评价结果。")
    return result


def _rerecord(engagement: Engagement, result: EvaluationResult, actor: User) -> EvaluationResult:
    db.session.flush()
    db.session.refresh(result, ["cap_records"])
    return record_result(engagement, db.session.get(Submission, result.submission_id), actor,
                         deduction=result.deduction, deduction_reason=result.deduction_reason)


def _cap_reason(errors: dict[str, str], reason: str | None, key: str = "reason") -> str:
    return check_text(errors, key, reason, short="请说明理由", label="理由", maximum=1000)


def add_cap(engagement: Engagement, actor: User, code: str, reason: str | None, *, filename: str | None = None,
            data: bytes | None = None, link: str | None = None) -> ResultCap:
    """Apply a cap (seed 000) to the result with its evidence — an uploaded document (audit report, inspection
    finding…) and/or a link to the record in evalhub — and the reason; the grade is recomputed from the band."""
    after = _cap_change_allowed(engagement, actor)
    result = _result_for_caps(engagement)
    errors: dict[str, str] = {}
    if code not in CAPS:
        errors["code"] = "请选择等级限制情形"
    else:
        # read again under the result's lock: of a double click the second sees the first's cap (one cap, or
        # lifting it would leave its twin in force)
        concurrency.serialise(f"result.caps:{result.id}")
        twin = db.session.execute(sa.select(ResultCap.id).where(
            ResultCap.result_id == result.id, ResultCap.code == code, ResultCap.lifted_at.is_(None)).limit(1)).first()
        if twin is not None or code in active_caps(result):
            errors["code"] = f"已记录“{CAPS[code][0]}”"
    reason = _cap_reason(errors, reason)
    link = (link or "").strip() or None
    if link and (len(link) > 300 or not (link.startswith("/") and not link.startswith("//")
                                         or link.startswith(("https://", "http://")))):
        errors["link"] = "依据链接应为本系统内的记录地址（以 / 开头）或 http(s) 网址，不超过 300 个字符"
    if not link and not data:
        errors["evidence"] = "请上传依据文件或填写依据记录的链接"
    _raise_if(errors)
    stored = files.store(filename or "依据.pdf", data, allowed=("pdf", "docx", "xlsx", "jpg", "png"), actor=actor) if data else None
    cap = ResultCap(result_id=result.id, code=code, reason=reason, evidence_file_id=stored.id if stored else None,
                    evidence_link=link, after_publication=after, created_by_id=actor.id)
    db.session.add(cap)
    db.session.flush()
    audit.record("result.cap_added_after_publication" if after else "result.cap_added", engagement, actor=actor,
                 summary=f"{engagement.reference} 记录等级限制：{CAPS[code][0]}（{reason}）" + ("；公开后由管理员变更" if after else ""),
                 payload={"cap": cap.id, "code": code, "evidence_file": cap.evidence_file_id, "link": link,
                          "after_publication": after})
    _rerecord(engagement, result, actor)
    return cap


def lift_cap(cap: ResultCap, actor: User, reason: str | None) -> ResultCap:
    """Lift a cap recorded in error, with the reason; the row stays as history."""
    result = cap.result
    engagement = result.engagement
    after = _cap_change_allowed(engagement, actor)
    # add_cap's lock, and the cap read again under it: of a double click the second finds it lifted
    concurrency.hold(cap, f"result.caps:{result.id}")
    if cap.lifted_at is not None:
        raise Conflict("该等级限制已撤销。")
    errors: dict[str, str] = {}
    reason = _cap_reason(errors, reason)
    _raise_if(errors)
    cap.lifted_at, cap.lifted_by_id, cap.lifted_reason, cap.lifted_after_publication = utcnow(), actor.id, reason, after
    audit.record("result.cap_lifted_after_publication" if after else "result.cap_lifted", engagement, actor=actor,
                 summary=f"{engagement.reference} 撤销等级限制：{CAPS[cap.code][0]}（{reason}）" + ("；公开后由管理员变更" if after else ""),
                 payload={"cap": cap.id, "code": cap.code, "after_publication": after})
    _rerecord(engagement, result, actor)
    return cap


def rate_firm(engagement: Engagement, actor: User, scores: dict[int, Any], comment: str | None) -> CommissionerRating:
    permissions.require(actor, "review.manage", engagement)
    if engagement.state not in (S.ACCEPTED, S.PUBLISHED, S.ARCHIVED):
        raise Conflict("报告验收后才能评价机构。")
    rubric = current_rubric(engagement.bureau, RubricKind.COMMISSIONER)
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for item in rubric.items:
        value = _decimal(errors, f"score_{item.id}", scores.get(item.id), f"“{item.name}”")
        if value is not None and not Decimal("0") <= value <= item.max_points:
            errors[f"score_{item.id}"] = f"“{item.name}”应在 0–{item.max_points} 之间"
        elif value is not None:
            clean[str(item.id)] = str(value)
    _raise_if(errors)
    rating = db.session.execute(sa.select(CommissionerRating).where(CommissionerRating.engagement_id == engagement.id)).scalar_one_or_none()
    if rating is not None:
        raise Conflict("已经评价过该机构。")
    rating = CommissionerRating(engagement_id=engagement.id, firm_id=engagement.firm_id, rubric_id=rubric.id,
                                scores=clean, total=sum((Decimal(v) for v in clean.values()), Decimal("0")),
                                comment=(comment or "").strip() or None, rated_by_id=actor.id)
    db.session.add(rating)
    db.session.flush()
    audit.record("firm.rated_by_commissioner", engagement, actor=actor,
                 summary=f"{engagement.reference} 委托方评价 {engagement.firm.name}：{rating.total} 分")
    return rating


def publish(engagement: Engagement, actor: User, *, filename: str | None = None, data: bytes | None = None,
            classified: bool = False, reason: str | None = None, override: str | None = None) -> Publication:
    """Publish a redacted version, or mark the report classified (not published, archived). ``override``:
    an admin's reason to publish although a waivable requirement is unmet (an inspection of the report is
    still open); the state machine checks who may waive and records the waiver in the timeline and audit."""
    permissions.require(actor, "review.manage", engagement)
    if engagement.state != S.ACCEPTED:
        raise Conflict(f"评价任务当前状态为“{engagement.state.label}”，不能公开或归档。")
    publication = Publication(engagement_id=engagement.id, decided_by_id=actor.id)
    if classified:
        if not (reason or "").strip():
            raise ValidationFailed("标记为涉密不予公开须说明理由。", {"reason": "必填"})
        publication.classified = True
        publication.reason = reason.strip()
        db.session.add(publication)
        workflow.perform(engagement, "withhold", actor, note=f"涉密或敏感，不予公开：{reason.strip()}", override=override)
        return publication
    if not data and not filename:
        raise ValidationFailed("请上传脱密后的报告文件。", {"file": "必填"})
    # Everything but the file we are about to store is checked first, so a refusal stores nothing.
    workflow.check(engagement, "publish", actor, override=override, skip=("redacted_file",))
    _refuse_unredacted(engagement, data or b"")
    # The public gets a copy without the document properties naming the authors and the clerk (not visible on
    # the page, so not blacked out with the text); the upload as chosen stays the bureau's. A file still holding
    # deleted text or comments is refused here, before anything is extracted or stored.
    public_copy = scrub.scrubbed(files.check_upload(filename or "报告.pdf", data, ("pdf", "docx")), data)
    uploaded = files.store(filename or "报告.pdf", data, allowed=("pdf", "docx"), actor=actor)
    public = files.store(uploaded.original_name, public_copy, allowed=("pdf", "docx"), actor=actor)
    publication.uploaded_file_id = uploaded.id
    publication.redacted_file_id = public.id
    publication.published_at = utcnow()
    db.session.add(publication)
    workflow.perform(engagement, "publish", actor, note=f"公开脱密版本：{uploaded.original_name}", override=override)
    return publication


def _refuse_unredacted(engagement: Engagement, data: bytes) -> None:
    """The file published as the redacted version is not one the firm handed in (work plan or report, any
    version): the same bytes are the report before redaction, whatever the clerk named the file."""
    sha = hashlib.sha256(data).hexdigest()
    handed_in = db.session.execute(
        sa.select(Submission.kind, Submission.version).join(StoredFile, StoredFile.id == Submission.file_id)
        .where(Submission.engagement_id == engagement.id, StoredFile.sha256 == sha)
        .order_by(Submission.version.desc())).first()
    if handed_in is not None:
        kind, version = handed_in
        message = (f"所选文件就是机构提交的{kind.label}（第 {version} 版）原件，未经脱密，不能作为公开版本。"
                   f"请上传删除了涉密和个人信息后的版本。")
        raise ValidationFailed(message, {"file": "未脱密的原件"})


def published_condition():
    """The one definition of "published" (public pages and the public API): a redacted file was published
    and the engagement went through publication (published, or archived after it). Classified reports and
    anything merely accepted are not. Use in a query joining Publication and Engagement."""
    return sa.and_(Publication.classified.is_(False), Publication.redacted_file_id.is_not(None),
                   Publication.published_at.is_not(None), Engagement.state.in_([S.PUBLISHED, S.ARCHIVED]))


# === reminders =====================================================================================

def send_reminders(now: datetime | None = None) -> dict[str, int]:
    """Reminders before and after each due date (idempotent), expiring late invitations, and e-mail."""
    now = now or utcnow()
    counts = {"expired": expire_invitations(now), "reminders": 0}
    panels = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.status == PanelStatus.REVIEWING)).scalars().all()
    for panel in panels:
        before = timedelta(days=get_setting(panel.subject.bureau, "review.remind_days_before"))
        for invitation in panel.invitations:
            review = invitation.review
            if invitation.status != InvitationStatus.ACCEPTED or review is None or review.status == ReviewStatus.SUBMITTED:
                continue
            user = db.session.execute(sa.select(User).where(User.expert_id == invitation.expert_id)).scalar_one_or_none()
            if user is None:
                continue
            # once per deadline date: a review deadline a calendar correction moves is reminded again for its new day
            if now > panel.review_due:
                key, title = reminder_key("review-overdue", review.id, due=panel.review_due), "评审已逾期"
            elif now > panel.review_due - before:
                key, title = reminder_key("review-due", review.id, due=panel.review_due), "评审即将到期"
            else:
                continue
            if emit("review_reminder", link=f"/reviews/{review.id}", users=[user], dedupe_key=key, title=title,
                    name=panel.subject.name, due=format_beijing(panel.review_due)):
                counts["reminders"] += 1
    late = db.session.execute(sa.select(Engagement).where(workflow.overdue_clause())).scalars().all()
    reasons = workflow.overdue_reasons(late)
    for engagement in late:
        if engagement.state in workflow.CONTRACT_PENDING:  # the bureau's to sign: procurement's contract_overdue
            continue
        reason = reasons.get(engagement.id)
        if reason:
            firm_users = db.session.execute(sa.select(User).where(User.firm_id == engagement.firm_id,
                                                                  User.is_enabled.is_(True))).scalars().all()
            counts["reminders"] += len(emit("engagement_overdue", link=f"/engagements/{engagement.id}", users=firm_users,
                                            # once per due date: a report returned again has a new one
                                            dedupe_key=reminder_key("overdue", engagement.id, engagement.state.value,
                                                                    due=engagement.due_on),
                                            reference=engagement.reference, reason=reason))
    db.session.flush()
    # Last: it commits the expiries and reminders above before its first message, so no mail failure undoes them.
    counts["emailed"] = send_pending_email()
    return counts


# Reminders before and after due dates, and replacements for experts who never answered: the worker does
# this every hour, so nobody has to remember a cron job.
jobs.periodic("evalhub.reminders", minute="7")(send_reminders)
