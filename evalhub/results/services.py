"""The rules of the results loop: budget-unit accounts, findings → rectification → verification →
escalation, the results-application list (proposal by bureau rules, confirmation, 备案 upward).

Plain functions, no request objects: the pages, the API and the hourly job call the same ones. Each state
change is audited (core.audit) and people are told through core.notifications.emit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from evalhub.core import accounts, audit, concurrency, files, jobs, notifications, permissions
from evalhub.core.batches import batches
from evalhub.core.calendar import (
    add_days, add_working_days, last_workday_before_each, working_days_between, working_days_between_each,
)
from evalhub.core.inputs import check_name
from evalhub.core.listing import as_int
from evalhub.core.enums import BureauLevel, Role
from evalhub.core.errors import Conflict, ValidationFailed
from evalhub.core.models import Bureau, BudgetUnit, StoredFile, User
from evalhub.core.outline import heading_numeral, heading_titles, simplified
from evalhub.core.settings import SETTINGS, SettingDef, get_setting, register
from evalhub.core.timeutil import beijing_date, beijing_day_start, beijing_today, format_beijing, utcnow
from evalhub.extensions import db
from evalhub.procurement.models import EVALUATION_KINDS, Award, Engagement, EngagementState, EngagementTransition
from evalhub.results.models import (
    MaterialRequest, OWED_STATUSES, ApplicationEntry, ApplicationFiling, EscalationLevel, ResultFinding, FindingEscalation,
    FactConfirmation, FindingEvidence, FindingKind, FindingStatus, Measure, RectificationReport, UnitPublication,
    Verification,
)
from evalhub.results.permissions import RESULT_STATES, is_unit_user, responsible_engagement_ids, unit_ids
from evalhub.review import services as review_services
from evalhub.review.models import (
    EvaluationResult, Grade, IndicatorCategory, PanelStatus, ReviewPanel, SelfEvaluation, SelfEvaluationStatus, Submission,
    SubmissionKind,
)

SECTION = "结果应用"
register(
    SettingDef("results.rectification_days", "整改期限（自确认问题之日起，天）", SECTION, 90, minimum=7, maximum=365,
               help="财政局确认问题时未逐条填写期限的，按此天数确定整改期限。依据：轮台县（seed 004）“明确整改要求和时限”。"),
    SettingDef("results.interview_after_days", "整改逾期多少个工作日约谈", SECTION, 10, minimum=1, maximum=120,
               help="逾期即催办；逾期达到此工作日数记录约谈。依据：克州（seed 000）“通报批评、约谈等多种方式”。"),
    SettingDef("results.notice_after_days", "整改逾期多少个工作日通报", SECTION, 20, minimum=1, maximum=240,
               help="逾期达到此工作日数记录通报。依据：克州（seed 000）；轮台县（seed 004）“整改和问责机制”。"),
    SettingDef("results.dual_publication_days", "双公开：一方公开后另一方须在多少天内公开", SECTION, 20, minimum=1,
               maximum=180, help="财政部门和被评价单位都应公开脱密后的评价报告；一方公开超过此天数另一方仍未公开的，"
                                  "列入逾期清单。依据：克州（seed 000）“由财政部门、被评价单位……进行‘双公开’”。"),
    SettingDef("results.fact_confirmation_days", "征求意见：被评价单位答复期限（工作日）", SECTION, 5, minimum=1, maximum=30,
               help="第三方机构在报告送专家评审前将初稿送被评价单位征求意见，单位在此期限内答复无异议或提出异议。"
                    "依据：issue 15（“财政部门+预算单位+第三方机构”联动）；期限由各局确定。"),
    SettingDef("results.cut_percent", "评价结果为中/差或低于分数线的项目预算调减比例（%）", SECTION, 10, kind="decimal",
               minimum=0, maximum=100,
               help="依据：克州（seed 000）“对上一年度绩效评价结果为‘中’‘差’的项目，按比例扣减部门单位项目支出预算安排”。"),
    SettingDef("results.cut_below_score", "低于此分数的项目调减预算", SECTION, 80, kind="decimal", minimum=0, maximum=100,
               help="依据：自治区（seed 001）“对本级绩效评价打分低于 80 分的项目，相应调减项目预算”。"),
    SettingDef("results.good_action", "评价结果为“良”的项目", SECTION, "none", kind="choice",
               choices=(("none", "不调整（默认）"), ("reduce", "调减预算"), ("cancel", "取消安排")),
               help="依据：民丰县（seed 003）“对绩效评价结果为良的项目……予以调减或取消”。"),
    SettingDef("results.excellent_priority", "评价结果为“优”的项目优先安排", SECTION, "on", kind="choice",
               choices=(("on", "优先安排（默认）"), ("off", "不提示")),
               help="依据：民丰县（seed 003）“对绩效评价结果为优的，在下一预算年度的同类项目中优先予以安排”。"),
)

TEXT_LIMIT = 2000
NOTE_LIMIT = 5000
EVIDENCE_KINDS = ("pdf", "docx", "xlsx", "txt", "png", "jpg")


def _text(value: Any, field: str, label: str, errors: dict[str, str], *, limit: int = TEXT_LIMIT,
          required: bool = True) -> Optional[str]:
    text = (value or "").strip() if isinstance(value, str) or value is None else str(value).strip()
    if not text:
        if required:
            errors[field] = f"请填写{label}"
        return None
    if len(text) > limit:
        errors[field] = f"{label}不能超过 {limit} 个字"
    return text


def _raise_if(errors: dict[str, str]) -> None:
    if errors:
        raise ValidationFailed("；".join(errors.values()) + "。", errors)


def _enum(enum_cls, raw: Any, field: str, label: str, errors: dict[str, str]):
    if isinstance(raw, enum_cls):
        return raw
    try:
        return enum_cls.from_label(str(raw or ""))
    except ValueError:
        errors[field] = f"请选择{label}"
        return None


# === budget-unit accounts ===========================================================================

def create_unit_account(actor: User, unit: BudgetUnit, *, username: str, display_name: str,
                        email: str | None = None, phone: str | None = None) -> tuple[User, str]:
    """The bureau's admin creates an account for one of its budget units, through the one account
    machinery (an activation link, no password): (user, raw token)."""
    permissions.require(actor, "unit_account.create", unit)
    user, token = accounts.create_account_with_activation(
        username=username, display_name=display_name, role=Role.BUDGET_UNIT, actor=actor, email=email, phone=phone,
        summary=f"{actor.username} 创建预算单位 {unit.name} 的账户 {(username or '').strip()[:64]}（待激活）")
    user.budget_unit_id = unit.id  # create_user does not take it; same transaction, before anyone can sign in
    db.session.flush()
    audit.record("unit_account.created", user, actor=actor, bureau_id=unit.bureau_id,
                 summary=f"预算单位 {unit.name} 的账户 {user.username}", payload={"budget_unit_id": unit.id})
    return user, token


def unit_accounts(unit: BudgetUnit) -> list[User]:
    return list(db.session.execute(sa.select(User).where(User.budget_unit_id == unit.id, User.role == Role.BUDGET_UNIT)
                                   .order_by(User.id)).scalars())


def unit_users(unit_id: int) -> list[User]:
    """The enabled accounts of a unit and of the 主管部门 above it: who is told about the unit's findings."""
    return units_users([unit_id]).get(unit_id, [])


def units_users(unit_ids: Iterable[int]) -> dict[int, list[User]]:
    """``unit_users`` of several units at once ({unit id: its accounts}, each unit asked for a key), for a job
    telling many units: the tree read a level per statement (a unit, its 主管部门 …), the accounts in one."""
    wanted = sorted(set(unit_ids))
    parent: dict[int, int | None] = {}
    level = wanted
    while level:
        rows = db.session.execute(sa.select(BudgetUnit.id, BudgetUnit.parent_id).where(BudgetUnit.id.in_(level))).all()
        parent.update(rows)
        level = sorted({p for _, p in rows if p is not None and p not in parent})
    chains: dict[int, list[int]] = {}
    for unit_id in wanted:
        chain, node = chains.setdefault(unit_id, []), unit_id
        while node is not None and node in parent and node not in chain:
            chain.append(node)
            node = parent[node]
    ids = sorted({i for chain in chains.values() for i in chain})
    accounts = list(db.session.execute(sa.select(User).where(
        User.budget_unit_id.in_(ids), User.role == Role.BUDGET_UNIT, User.is_enabled.is_(True))
        .order_by(User.id)).scalars()) if ids else []
    return {unit_id: [u for u in accounts if u.budget_unit_id in chain] for unit_id, chain in chains.items()}


def unit_engagements(user: User) -> list[Engagement]:
    """The engagements evaluating the user's units, and those with a confirmed finding its units must rectify."""
    ids = unit_ids(user)
    if not ids:
        return []
    return list(db.session.execute(sa.select(Engagement).where(sa.or_(
        Engagement.budget_unit_id.in_(ids), Engagement.id.in_(responsible_engagement_ids(ids))))
        .order_by(Engagement.year.desc(), Engagement.id.desc())).scalars())


def lead_evaluator(engagement: Engagement) -> Optional[str]:
    """The lead evaluator (主评人) the firm named on the engagement (procurement/team.py); before it names one,
    the 项目负责人 of the winning bid, if the procurement had bids."""
    from evalhub.procurement import team

    named = team.lead(engagement)
    if named is not None:
        return named.name
    award = db.session.execute(sa.select(Award).where(Award.engagement_id == engagement.id)).scalar_one_or_none()
    if award is None or award.bid is None:
        return None
    lead = next((m for m in award.bid.team if m.is_lead), None)
    return lead.staff.name if lead is not None else None


def timeline(engagement: Engagement) -> list[dict]:
    """The engagement's steps for the unit: dates and states only (a transition's actor or note may name an
    expert, and a unit never learns who reviewed)."""
    rows = db.session.execute(sa.select(EngagementTransition).where(EngagementTransition.engagement_id == engagement.id)
                              .order_by(EngagementTransition.id)).scalars()
    return [{"at": t.created_at, "from": t.from_state, "to": t.to_state} for t in rows]


# === findings =======================================================================================

@dataclass
class FindingInput:
    kind: Any = FindingKind.PROBLEM
    text: str = ""
    category: Any = ""
    indicator: str = ""
    responsible_unit_id: Any = None
    deadline: Optional[date] = None


def _check_state(engagement: Engagement) -> None:
    if engagement.state not in RESULT_STATES:
        raise Conflict(f"评价任务当前状态为“{engagement.state.label}”，报告验收后才能录入问题和建议。")


def _check_deadline(deadline: date | None, label: str, errors: dict[str, str]) -> None:
    """A deadline from today up to the longest the bureau may set as its default (results.rectification_days):
    a row due in 9999 would never be escalated, so the overdue rules would never reach it."""
    if deadline is None:
        return
    today = beijing_today()
    latest = today + timedelta(days=SETTINGS["results.rectification_days"].maximum)
    if deadline < today:
        errors["deadline"] = f"{label}不能早于今天"
    elif deadline > latest:
        errors["deadline"] = f"{label}不能晚于 {latest.isoformat()}（自今天起最长 {(latest - today).days} 天）"


def _checked(engagement: Engagement, data: FindingInput) -> dict:
    errors: dict[str, str] = {}
    kind = _enum(FindingKind, data.kind, "kind", "类型（问题/建议）", errors)
    text = _text(data.text, "text", "内容", errors)
    category = _enum(IndicatorCategory, data.category, "category", "指标类别（决策/过程/产出/效益）", errors)
    indicator = _text(data.indicator, "indicator", "相关指标", errors, limit=200, required=False)
    raw = data.responsible_unit_id
    if raw is None or raw == "":
        unit_id = engagement.budget_unit_id
    else:  # an id as a form posts it or JSON gives it; true, 1.5 or a number past any id names no unit
        unit_id = as_int(str(raw)) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else None
    unit = db.session.get(BudgetUnit, unit_id) if unit_id else None
    if unit is None or unit.bureau_id != engagement.budget_unit.bureau_id:
        errors["responsible_unit_id"] = "责任单位应为本局的预算单位"
    _check_deadline(data.deadline, "整改期限", errors)
    _raise_if(errors)
    return dict(kind=kind, text=text, category=category, indicator=indicator, responsible_unit_id=unit.id,
                deadline=data.deadline)


def add_finding(engagement: Engagement, actor: User, data: FindingInput) -> ResultFinding:
    permissions.require(actor, "finding.enter", engagement)
    _check_state(engagement)
    values = _checked(engagement, data)
    _refuse_twin_finding(engagement, values)  # the lock also numbers the rows one after another
    # the next number after the highest: a deleted draft leaves a gap, never two rows cited as the same 第 N 条
    position = db.session.execute(sa.select(sa.func.coalesce(sa.func.max(ResultFinding.position), 0)).where(
        ResultFinding.engagement_id == engagement.id)).scalar_one() + 1
    finding = ResultFinding(engagement_id=engagement.id, bureau_id=engagement.bureau_id, position=position,
                      status=FindingStatus.DRAFT, created_by_id=actor.id, **values)
    db.session.add(finding)
    db.session.flush()
    audit.record("finding.added", finding, actor=actor,
                 summary=f"{engagement.reference} 录入{values['kind'].label}：{values['text'][:60]}")
    return finding


def _refuse_twin_finding(engagement: Engagement, values: dict[str, Any], other_than: int | None = None) -> None:
    """One row per finding: the same kind and text entered again (a double click, an edit into its neighbour)
    is refused."""
    twin = sa.select(ResultFinding).where(ResultFinding.engagement_id == engagement.id,
                                          ResultFinding.kind == values["kind"], ResultFinding.text == values["text"])
    if other_than is not None:
        twin = twin.where(ResultFinding.id != other_than)
    concurrency.refuse_twin(f"results.findings:{engagement.id}", twin,
                            lambda row: f"第 {row.position} 条已录入相同的{values['kind'].label}，请勿重复提交。")


def _draft(finding: ResultFinding) -> None:
    """Under the engagement's findings lock, which confirming takes too: a row confirmed a moment ago is not
    reworded or deleted by a request that loaded it as a draft."""
    concurrency.hold(finding, f"results.findings:{finding.engagement_id}")
    if finding.status != FindingStatus.DRAFT:
        raise Conflict("该条已由财政局确认，不能再修改或删除。")


def edit_finding(finding: ResultFinding, actor: User, data: FindingInput) -> ResultFinding:
    permissions.require(actor, "finding.enter", finding.engagement)
    _draft(finding)
    values = _checked(finding.engagement, data)
    _refuse_twin_finding(finding.engagement, values, other_than=finding.id)
    for key, value in values.items():
        setattr(finding, key, value)
    audit.record("finding.edited", finding, actor=actor, summary=f"{finding.engagement.reference} 修改第 {finding.position} 条")
    return finding


def delete_finding(finding: ResultFinding, actor: User) -> None:
    permissions.require(actor, "finding.enter", finding.engagement)
    _draft(finding)
    audit.record("finding.deleted", finding, actor=actor, summary=f"{finding.engagement.reference} 删除第 {finding.position} 条",
                 payload={"text": finding.text})
    db.session.delete(finding)
    db.session.flush()


PROBLEM_CHAPTER, ADVICE_CHAPTER = "存在的问题及原因分析", "有关建议"
_CATEGORY_WORDS = [(IndicatorCategory.DECISION, ("立项", "决策", "目标", "论证", "依据")),
                   (IndicatorCategory.PROCESS, ("资金", "管理", "制度", "执行", "支付", "到位", "财务", "程序")),
                   (IndicatorCategory.OUTPUT, ("产出", "完成", "数量", "质量", "进度", "时效")),
                   (IndicatorCategory.BENEFIT, ("效益", "满意", "效果", "社会", "经济", "可持续"))]


def _guess_category(text: str) -> IndicatorCategory:
    for category, words in _CATEGORY_WORDS:
        if any(w in text for w in words):
            return category
    return IndicatorCategory.PROCESS


def finding_headings(engagement: Engagement) -> list[str]:
    """The headings a report of this engagement is read by to draft findings: its kind's outline
    (``review.report_outline``: a 事前绩效评估再评估 is written on its five points, not the eight chapters), whose
    headings end a 问题 or 建议 chapter, and those two chapters' own headings where the outline has none of them
    (an ex-ante reassessment, a kind with no standard outline, states its problems and advice under them)."""
    outline = review_services.report_outline(engagement)
    return outline + [c for c in (PROBLEM_CHAPTER, ADVICE_CHAPTER) if c not in outline]


def report_sections(text: str, chapters: list[str]) -> dict[str, list[str]]:
    """The paragraphs under the report's 问题 and 建议 chapters (the firm's starting point, which it corrects)."""
    out: dict[str, list[str]] = {PROBLEM_CHAPTER: [], ADVICE_CHAPTER: []}
    current = None
    for line in simplified(text or "").splitlines():  # as the machine checks and the screener read it
        line = line.strip()
        if not line:
            continue
        titles = heading_titles(line, chapters)
        if titles:  # a heading naming several chapters (五、主要经验及做法、存在的问题及原因分析): the first of ours
            current = next((t for t in titles if t in out), None)
            continue
        if current is None:
            continue
        numeral = heading_numeral(line)
        item = line[len(numeral):].strip() if numeral and line.startswith(numeral) else line
        item = re.sub(r"^[（(]?\d+[)）.、]\s*", "", item)
        if len(item) >= 4 and item not in ("本章内容。",):
            out[current].append(item[:TEXT_LIMIT])
    return out


def draft_from_report(engagement: Engagement, actor: User) -> list[ResultFinding]:
    """Draft rows from the accepted report's 问题/建议 chapters; only while the engagement has no rows."""
    from evalhub.review.services import latest_submission

    permissions.require(actor, "finding.enter", engagement)
    _check_state(engagement)
    if db.session.execute(sa.select(ResultFinding.id).where(ResultFinding.engagement_id == engagement.id)).first():
        raise Conflict("已有问题和建议记录，不能再次从报告导入。")
    submission = latest_submission(engagement, SubmissionKind.REPORT)
    text = submission.file.text if submission is not None and submission.file is not None else ""
    sections = report_sections(text or "", finding_headings(engagement))
    created, seen = [], set()
    for chapter, kind in ((PROBLEM_CHAPTER, FindingKind.PROBLEM), (ADVICE_CHAPTER, FindingKind.RECOMMENDATION)):
        for item in sections[chapter]:
            if (kind, item.strip()) in seen:  # a report that states a problem twice drafts it once
                continue
            seen.add((kind, item.strip()))
            created.append(add_finding(engagement, actor, FindingInput(kind=kind, text=item, category=_guess_category(item))))
    if not created:
        raise ValidationFailed("报告中未找到“存在的问题及原因分析”或“有关建议”章节的内容，请逐条录入。", {"text": "未找到可导入的内容"})
    return created


def confirm_findings(engagement: Engagement, actor: User, today: date | None = None) -> list[ResultFinding]:
    """The bureau confirms every draft row; a row without a deadline gets the bureau's default. The units
    responsible are told."""
    permissions.require(actor, "finding.confirm", engagement)
    _check_state(engagement)
    concurrency.serialise(f"results.findings:{engagement.id}")  # an edit or deletion of a draft waits, then sees it
    today = today or beijing_today()
    drafts = list(db.session.execute(sa.select(ResultFinding).where(
        ResultFinding.engagement_id == engagement.id, ResultFinding.status == FindingStatus.DRAFT).order_by(ResultFinding.position)).scalars())
    if not drafts:
        raise Conflict("没有待确认的问题和建议。")
    past = [f for f in drafts if f.deadline is not None and f.deadline < today]
    if past:  # entered days ago with a deadline that has since passed: the unit would be overdue on arrival
        raise ValidationFailed("以下各条的整改期限已早于今天，请修改期限（或清空，按本局默认期限）后再确认："
                               + "；".join(f"第 {f.position} 条（{f.deadline.isoformat()}）" for f in past) + "。",
                               {"deadline": "整改期限已过"})
    days = int(get_setting(engagement.bureau, "results.rectification_days"))
    default = add_days(engagement.bureau, today, days)
    now = utcnow()
    changed = db.session.execute(sa.update(ResultFinding).where(
        ResultFinding.id.in_([f.id for f in drafts]), ResultFinding.status == FindingStatus.DRAFT).values(
        status=FindingStatus.CONFIRMED, confirmed_at=now, confirmed_by_id=actor.id).execution_options(
        synchronize_session=False)).rowcount
    if changed != len(drafts):  # someone confirmed at the same moment
        raise Conflict("问题和建议已被确认，请刷新页面。")
    for f in drafts:
        db.session.refresh(f)
        if f.deadline is None:  # the default: what it was counted with is kept (a calendar correction rolls it)
            f.deadline, f.deadline_from, f.deadline_days = default, today, days
    audit.record("findings.confirmed", engagement, actor=actor,
                 summary=f"{engagement.reference} 确认问题和建议 {len(drafts)} 条", payload={"ids": [f.id for f in drafts]})
    people = units_users(f.responsible_unit_id for f in drafts)  # every unit told, read at once
    for unit_id in sorted(people):
        mine = [f for f in drafts if f.responsible_unit_id == unit_id]
        notifications.emit("findings_confirmed", link=f"/results/unit/engagements/{engagement.id}",
                           users=people[unit_id], reference=engagement.reference, name=engagement.name,
                           count=len(mine), deadline=min(f.deadline for f in mine).isoformat())
    return drafts


def _answering(finding: ResultFinding, actor: User, allowed: tuple[FindingStatus, ...]) -> None:
    permissions.require(actor, "finding.answer", finding)
    concurrency.hold(finding)  # the row as the answer before left it: evidence handed in twice at once is handed in once
    if finding.status not in allowed:
        raise Conflict(f"该条当前状态为“{finding.status.label}”，不能进行此操作。")


def submit_plan(finding: ResultFinding, actor: User, plan: str) -> ResultFinding:
    _answering(finding, actor, (FindingStatus.CONFIRMED, FindingStatus.PLANNED, FindingStatus.RETURNED))
    errors: dict[str, str] = {}
    plan = _text(plan, "plan", "整改计划", errors, limit=NOTE_LIMIT)
    _raise_if(errors)
    finding.plan, finding.planned_at = plan, utcnow()
    if finding.status == FindingStatus.CONFIRMED:
        finding.status = FindingStatus.PLANNED
    audit.record("finding.planned", finding, actor=actor, summary=f"{finding.engagement.reference} 第 {finding.position} 条提交整改计划")
    return finding


def submit_evidence(finding: ResultFinding, actor: User, note: str, uploads: Iterable[files.Upload]) -> ResultFinding:
    """The unit reports what it did, with evidence files; the bureau then verifies."""
    _answering(finding, actor, (FindingStatus.PLANNED, FindingStatus.RETURNED))
    errors: dict[str, str] = {}
    note = _text(note, "note", "整改情况说明", errors, limit=NOTE_LIMIT)
    uploads = [u for u in uploads if u.data]
    if not uploads and not finding.evidence:
        errors["files"] = "请上传整改佐证材料"
    _raise_if(errors)
    for upload in uploads:
        stored = files.store(upload.filename, upload.data, allowed=EVIDENCE_KINDS, actor=actor)
        finding.evidence.append(FindingEvidence(file_id=stored.id, uploaded_by_id=actor.id))
    finding.unit_note, finding.submitted_at, finding.status = note, utcnow(), FindingStatus.SUBMITTED
    db.session.flush()
    engagement = finding.engagement
    audit.record("finding.evidence", finding, actor=actor,
                 summary=f"{engagement.reference} 第 {finding.position} 条提交整改材料 {len(uploads)} 份")
    # the row now waits on the bureau (and drops off the overdue escalation): the bureau is told it is its turn
    notifications.emit("rectification_submitted", link=f"/results/engagements/{engagement.id}/findings",
                       bureau_id=finding.bureau_id, reference=engagement.reference, unit=finding.responsible_unit.name,
                       position=finding.position, text=finding.text[:80], count=len(finding.evidence))
    return finding


def verify(finding: ResultFinding, actor: User, verification: Any, note: str, new_deadline: date | None = None) -> ResultFinding:
    """整改到位 closes the row; 部分整改 / 未整改 send it back to the unit (with a note, and optionally a new
    deadline)."""
    permissions.require(actor, "finding.verify", finding)
    errors: dict[str, str] = {}
    verification = _enum(Verification, verification, "verification", "核验结论", errors)
    note = _text(note, "note", "核验意见", errors, limit=NOTE_LIMIT, required=verification not in (None, Verification.DONE))
    _check_deadline(new_deadline, "新的整改期限", errors)
    _raise_if(errors)
    changed = db.session.execute(sa.update(ResultFinding).where(
        ResultFinding.id == finding.id, ResultFinding.status == FindingStatus.SUBMITTED).values(
        status=FindingStatus.CLOSED if verification == Verification.DONE else FindingStatus.RETURNED,
        verification=verification, verification_note=note, verified_at=utcnow(), verified_by_id=actor.id,
    ).execution_options(synchronize_session=False)).rowcount
    if not changed:
        db.session.refresh(finding, ["status"])  # the status the other verdict left, not the one this page loaded
        raise Conflict(f"该条当前状态为“{finding.status.label}”，只有待核验的事项可以核验。")
    db.session.refresh(finding)
    if verification != Verification.DONE:
        if new_deadline is not None:  # a fresh deadline: what was excused against the old one no longer applies
            finding.deadline, finding.late_from = new_deadline, None
            finding.deadline_from = finding.deadline_days = None  # a date the bureau chose: never recounted
        elif finding.deadline is not None and (waited := _waited_past_deadline(finding)):
            finding.late_from = add_working_days(finding.bureau, finding.late_from or finding.deadline, waited)
    engagement = finding.engagement
    audit.record("finding.verified", finding, actor=actor,
                 summary=f"{engagement.reference} 第 {finding.position} 条核验：{verification.label}",
                 payload={"verification": verification, "note": note,
                          "deadline": finding.deadline.isoformat() if finding.deadline else None,
                          "late_from": finding.late_from.isoformat() if finding.late_from else None})
    if verification != Verification.DONE:
        deadline = finding.deadline.isoformat() if finding.deadline else "—"
        if finding.deadline is not None and finding.deadline < beijing_today():
            deadline += "（已过期限，核验期间不计入逾期，请尽快整改）"
        notifications.emit("rectification_returned", link=f"/results/unit/engagements/{engagement.id}",
                           users=unit_users(finding.responsible_unit_id), reference=engagement.reference,
                           position=finding.position, text=finding.text[:80], verdict=verification.label, note=note,
                           deadline=deadline)
    return finding


def _waited_past_deadline(finding: ResultFinding) -> int:
    """Working days past the deadline that the round just verified waited on the bureau (handed in → verified):
    a row handed in before its deadline and returned after it is late only from its return, one handed in late
    resumes the count where it stood."""
    if finding.deadline is None or finding.submitted_at is None or finding.verified_at is None:
        return 0
    start = max(finding.deadline, beijing_date(finding.submitted_at))
    return working_days_between(finding.bureau, start, beijing_date(finding.verified_at))


def overdue_days(finding: ResultFinding, today: date) -> int:
    """Working days the row is late on ``today`` by the unit's doing: past the deadline, less the days it waited
    on the bureau's verification (counted from ``late_from``)."""
    return working_days_between(*_overdue_span(finding, today)) if finding.deadline is not None else 0


def excused_days(finding: ResultFinding) -> int:
    """The working days past the deadline not counted against the unit (its rounds awaiting verification)."""
    if finding.deadline is None or finding.late_from is None:
        return 0
    return working_days_between(*_excused_span(finding))


def _overdue_span(finding: ResultFinding, today: date) -> tuple[Bureau, date, date]:
    """What ``overdue_days`` counts the working days of, for a row with a deadline."""
    return finding.bureau, finding.late_from or finding.deadline, today


def _excused_span(finding: ResultFinding) -> tuple[Bureau, date, date]:
    """What ``excused_days`` counts, for a row with a deadline (an empty span when it has no ``late_from``)."""
    return finding.bureau, finding.deadline, finding.late_from or finding.deadline


def _late_from() -> sa.ColumnElement:
    """The day a row's delay counts from, in SQL (``overdue_days``'s start): the list and the job agree."""
    return sa.func.coalesce(ResultFinding.late_from, ResultFinding.deadline)


LateCutoffs = tuple[tuple[date, tuple[int, ...]], ...]


def late_cutoffs(bureaus: Iterable[Any], today: date) -> LateCutoffs:
    """For the rows of ``bureaus`` on ``today``: each bureau's latest working day on or before today, grouped
    ((day, bureau ids), …). ``overdue_days`` counts the working days after ``late_from`` up to today, so a row is
    late exactly when its ``late_from`` is before that day — a holiday after the deadline counts for nothing.
    Hashable, so a page that keeps its statement keys it by these (a bureau's calendar corrected today)."""
    groups: dict[date, list[int]] = {}
    for bureau_id, day in last_workday_before_each(bureaus, today + timedelta(days=1)).items():
        groups.setdefault(day, []).append(bureau_id)
    return tuple(sorted((day, tuple(sorted(ids))) for day, ids in groups.items()))


def _late(cutoffs: LateCutoffs) -> sa.ColumnElement[bool]:
    """The one overdue rule in SQL (``overdue_days`` > 0), for the job and the lists alike: still owed by the unit
    and its ``late_from`` before its bureau's cutoff (``late_cutoffs``)."""
    owed = [ResultFinding.status.in_(OWED_STATUSES), ResultFinding.deadline.is_not(None)]
    if len(cutoffs) == 1:  # the bureaus share one calendar (the usual case): no bureau test beside the scope
        return sa.and_(*owed, _late_from() < cutoffs[0][0])
    return sa.and_(*owed, sa.or_(sa.false(), *(sa.and_(permissions.in_bureaus(ResultFinding.bureau_id, set(ids)),
                                                        _late_from() < day) for day, ids in cutoffs)))


def escalate_overdue(today: date | None = None) -> list[FindingEscalation]:
    """Every finding owed by its unit past its deadline: 催办 at once, 约谈 and 通报 after the bureau's working-day
    thresholds of the unit's own delay (``overdue_days``) — each level recorded once per deadline (a new deadline
    set at a return is reminded again when it passes), dated ``today`` (a frozen clock passes ``today``).

    A handful of statements to read however many rows are late: the rows with what they show and the levels they
    had, the calendar once for every count, each unit's and bureau's accounts once (``units_users``,
    ``notifications.one_reading``) — then the rows written, and the messages."""
    today = today or beijing_today()
    # the bureaus with a row past its date by the calendar alone; ``_late`` then leaves out the holidays
    bureaus = db.session.execute(sa.select(Bureau).where(Bureau.id.in_(sa.select(ResultFinding.bureau_id).where(
        ResultFinding.status.in_(OWED_STATUSES), _late_from() < today)))).scalars().all()
    overdue = db.session.execute(sa.select(ResultFinding).where(_late(late_cutoffs(bureaus, today))).options(
        joinedload(ResultFinding.engagement), joinedload(ResultFinding.responsible_unit),
        selectinload(ResultFinding.escalations)).order_by(ResultFinding.id)).unique().scalars().all() if bureaus else []
    counts = working_days_between_each([_overdue_span(f, today) for f in overdue] + [_excused_span(f) for f in overdue])
    due: list[tuple[ResultFinding, EscalationLevel, int, int]] = []  # (row, level, its days late, days excused)
    for finding, days, excused in zip(overdue, counts, counts[len(overdue):]):
        bureau = finding.bureau  # days > 0: the rule ``_late`` asked is this count's
        have = {e.level for e in finding.escalations if e.deadline == finding.deadline}
        levels = [EscalationLevel.REMINDER]
        if days >= int(get_setting(bureau, "results.interview_after_days")):
            levels.append(EscalationLevel.INTERVIEW)
        if days >= int(get_setting(bureau, "results.notice_after_days")):
            levels.append(EscalationLevel.NOTICE)
        due.extend((finding, level, days, excused) for level in levels if level not in have)
    created = []
    for finding, level, days, excused in due:
        spared = f"（不含待核验 {excused} 个工作日）" if finding.late_from else ""
        row = FindingEscalation(level=level, deadline=finding.deadline, on_date=today, overdue_days=days,
                                note=f"{finding.responsible_unit.name}：整改期限 {finding.deadline.isoformat()}，"
                                     f"已逾期 {days} 个工作日{spared}"[:300])
        finding.escalations.append(row)
        created.append(row)
    db.session.flush()  # the rows written together
    for finding, level, days, _excused in due:
        audit.record("finding.escalated", finding, actor=None,
                     summary=f"{finding.engagement.reference} 第 {finding.position} 条逾期{level.label}（{days} 个工作日）",
                     payload={"level": level, "on": today, "deadline": finding.deadline})
    people = units_users(finding.responsible_unit_id for finding, *_ in due)
    keys = {(finding.id, level): notifications.reminder_key(
        "rect-due" if level == EscalationLevel.REMINDER else f"rect-{level.value}", finding.id, due=finding.deadline)
        for finding, level, *_ in due}
    with notifications.one_reading(bureau_ids={f.bureau_id for f, level, *_ in due if level != EscalationLevel.REMINDER},
                                   dedupe_keys=keys.values()):
        for finding, level, days, _excused in due:
            engagement, unit = finding.engagement, finding.responsible_unit
            link, dedupe_key = f"/results/unit/engagements/{engagement.id}", keys[finding.id, level]
            if level == EscalationLevel.REMINDER:
                notifications.emit("rectification_due", link=link, users=people.get(unit.id, []), dedupe_key=dedupe_key,
                                   reference=engagement.reference,
                                   text=finding.text[:80], deadline=finding.deadline.isoformat())
            else:
                # one notice, each audience linked to the page that opens for it: the bureau's findings page
                # (engagement.view), the unit's own page (a unit gets 403 on the bureau's)
                fields = dict(dedupe_key=dedupe_key, reference=engagement.reference,
                              unit=unit.name, text=finding.text[:80], days=days, level=level.label)
                notifications.emit("rectification_escalated", link=f"/results/engagements/{engagement.id}/findings",
                                   bureau_id=finding.bureau_id, **fields)
                notifications.emit("rectification_escalated", link=link, users=people.get(unit.id, []), **fields)
    return created


jobs.periodic("evalhub.rectification_escalation", minute="41")(escalate_overdue)


def overdue_findings_query(user: User, today: date | None = None, cutoffs: LateCutoffs | None = None) -> sa.Select:
    """Findings the escalation job counts late on ``today`` (Beijing's date if None) and still owed by the unit
    that ``user`` may see, most overdue first, as a statement (the dashboard asks first whether there are any,
    with its other counts, and reads only the columns it shows). One handed in and awaiting verification is the
    bureau's. ``cutoffs``: ``late_cutoffs`` of the user's bureaus, when the caller has them."""
    if cutoffs is None:
        cutoffs = late_cutoffs(_calendar_bureaus(user), today or beijing_today())
    return permissions.scope(user, sa.select(ResultFinding).where(_late(cutoffs)), ResultFinding) \
        .order_by(_late_from(), ResultFinding.id)


def _calendar_bureaus(user: User) -> list[Any]:
    """The bureaus whose calendars say whether the findings ``user`` may see are late: a bureau user's visible
    bureaus; for an evaluated unit's user — who sees no bureau as such — the bureaus of its findings."""
    if not is_unit_user(user):
        return permissions.visible_bureaus(user)
    ids = permissions.scope(user, sa.select(ResultFinding.bureau_id).distinct(), ResultFinding)
    return list(db.session.execute(sa.select(Bureau).where(Bureau.id.in_(ids))).scalars())


def overdue_findings(user: User, limit: int = 20) -> list[ResultFinding]:
    """Open findings past their deadline that ``user`` may see (the 整改逾期 page), each with what its row shows
    (engagement, responsible unit, escalations) read with the page, not a read per row."""
    return list(db.session.execute(overdue_findings_query(user).limit(limit).options(
        joinedload(ResultFinding.engagement), joinedload(ResultFinding.responsible_unit),
        selectinload(ResultFinding.escalations))).unique().scalars())


def awaiting_verification(user: User, limit: int = 20) -> list[ResultFinding]:
    """Findings handed in and waiting on the bureau's verification (待核验) that ``user`` may see, longest waiting
    first: the bureau's side of the overdue page (such a row is off the unit's overdue list)."""
    return list(db.session.execute(permissions.scope(user, sa.select(ResultFinding).where(
        ResultFinding.status == FindingStatus.SUBMITTED), ResultFinding)
        .order_by(ResultFinding.submitted_at, ResultFinding.id).limit(limit).options(
        joinedload(ResultFinding.engagement), joinedload(ResultFinding.responsible_unit))).unique().scalars())


def findings_of(engagement: Engagement, user: User) -> list[ResultFinding]:
    stmt = permissions.scope(user, sa.select(ResultFinding).where(ResultFinding.engagement_id == engagement.id), ResultFinding)
    return list(db.session.execute(stmt.order_by(ResultFinding.position, ResultFinding.id)).scalars())


def upload_signed_report(engagement: Engagement, actor: User, upload: files.Upload) -> RectificationReport:
    """The unit uploads its signed 整改报告; the latest is the current one (a corrected scan is a new row, the
    earlier ones kept). The file that is the current one already, uploaded again — a double click, a resend, two of
    the unit's people at once — is refused, naming it (409), before anything is stored; a different file, or this
    one again after another superseded it, is recorded."""
    permissions.require(actor, "rectification.sign", engagement)
    if not upload.data:
        raise ValidationFailed("请选择已签章的整改报告文件。", {"file": "请选择文件"})
    latest = sa.select(sa.func.max(RectificationReport.id)).where(
        RectificationReport.engagement_id == engagement.id).scalar_subquery()
    concurrency.refuse_twin(  # the second of two uploads at once waits here and finds the first's row
        f"results.signed_report:{engagement.id}",
        sa.select(RectificationReport).join(StoredFile, StoredFile.id == RectificationReport.file_id).where(
            RectificationReport.id == latest, StoredFile.sha256 == files.digest(upload.data)),
        lambda twin: f"该签章整改报告已于 {format_beijing(twin.created_at)} 上传（{twin.file.original_name}），"
                     "是当前的签章版本，请勿重复提交；如需更正，请上传更正后的签章文件。")
    stored = files.store(upload.filename, upload.data, allowed=("pdf", "docx", "png", "jpg"), actor=actor)
    report = RectificationReport(engagement_id=engagement.id, file_id=stored.id, uploaded_by_id=actor.id)
    db.session.add(report)
    db.session.flush()
    audit.record("rectification.signed", report, actor=actor, bureau_id=engagement.bureau_id,
                 summary=f"{engagement.reference} 上传签章的整改报告")
    return report


def signed_reports(engagement: Engagement) -> list[RectificationReport]:
    return list(db.session.execute(sa.select(RectificationReport).where(
        RectificationReport.engagement_id == engagement.id).order_by(RectificationReport.id.desc())).scalars())


# === 征求意见: fact confirmation before the panel =====================================================

# Before the report goes to the panel: during fieldwork, or when a returned report is being reworked.
FACT_STATES = (EngagementState.FIELDWORK, EngagementState.REPORT_RETURNED)


def send_for_confirmation(engagement: Engagement, actor: User, upload: files.Upload,
                          today: date | None = None) -> FactConfirmation:
    """The contracted firm sends its draft report to the evaluated unit; the unit answers by the due date."""
    permissions.require(actor, "fact.send", engagement)
    if engagement.state not in FACT_STATES:
        raise Conflict(f"评价任务当前状态为“{engagement.state.label}”，只能在报告送审前征求意见。")
    if not upload.data:
        raise ValidationFailed("请选择评价报告初稿。", {"file": "请选择文件"})
    today = today or beijing_today()
    # one open confirmation at a time: the second of two sends at once waits here and finds the first's
    concurrency.serialise(f"results.fact_confirmation:{engagement.id}")
    if db.session.execute(sa.select(FactConfirmation.id).where(
            FactConfirmation.engagement_id == engagement.id, FactConfirmation.answered_at.is_(None),
            FactConfirmation.due_on >= today)).first():
        raise Conflict("上一稿的征求意见尚在答复期内，请等待单位答复。")
    stored = files.store(upload.filename, upload.data, allowed=("docx", "pdf"), actor=actor)
    days = int(get_setting(engagement.bureau, "results.fact_confirmation_days"))
    due = add_working_days(engagement.bureau, today, days)
    row = FactConfirmation(engagement_id=engagement.id, draft_file_id=stored.id, sent_by_id=actor.id, due_on=due,
                           due_workdays=days)
    db.session.add(row)
    db.session.flush()
    audit.record("fact.sent", row, actor=actor, bureau_id=engagement.bureau_id,
                 summary=f"{engagement.reference} 报告初稿征求被评价单位意见，答复期限 {due}")
    notifications.emit("fact_confirmation_requested", link=f"/results/unit/engagements/{engagement.id}",
                       users=unit_users(engagement.budget_unit_id), reference=engagement.reference,
                       firm=engagement.firm.name if engagement.firm else "第三方机构", name=engagement.name,
                       due=due.isoformat())
    return row


def _claim(row: FactConfirmation, once: Any, done: str, **values: Any) -> None:
    """Write ``values`` only while the ``once`` column is still empty (compare-and-set): of two answers that
    cross (a double click, two people of the unit), the second is refused with ``done``, not written over."""
    claimed = db.session.execute(sa.update(FactConfirmation).where(FactConfirmation.id == row.id, once.is_(None))
                                 .values(**values).execution_options(synchronize_session=False)).rowcount
    if not claimed:
        raise Conflict(done)
    for name, value in values.items():
        set_committed_value(row, name, value)


def answer_confirmation(row: FactConfirmation, actor: User, agreed: Any, text: str,
                        today: date | None = None) -> FactConfirmation:
    """The unit answers once, by the due date: no objection, or its objections (one per line)."""
    permissions.require(actor, "fact.answer", row.engagement)
    today = today or beijing_today()
    if row.answered_at is not None:
        raise Conflict("已答复，不能重复答复。")
    if today > row.due_on:
        raise Conflict(f"答复期限（{row.due_on}）已过，视为无异议。")
    errors: dict[str, str] = {}
    if agreed in ("yes", "true", True, "1"):
        agreed = True
    elif agreed in ("no", "false", False, "0"):
        agreed = False
    else:
        errors["agreed"] = "请选择无异议或有异议"
    text = _text(text, "text", "异议内容", errors, limit=NOTE_LIMIT, required=agreed is False)
    _raise_if(errors)
    _claim(row, FactConfirmation.answered_at, "已答复，不能重复答复。",
           agreed=agreed, unit_text=text, answered_at=utcnow(), answered_by_id=actor.id)
    engagement = row.engagement
    audit.record("fact.answered", row, actor=actor, bureau_id=engagement.bureau_id,
                 summary=f"{engagement.reference} 被评价单位答复征求意见：{'无异议' if agreed else '有异议'}")
    notifications.emit("fact_confirmation_answered", link=f"/results/engagements/{engagement.id}/fact-confirmation",
                       firm_id=engagement.firm_id, reference=engagement.reference, unit=engagement.budget_unit.name,
                       answer="无异议。" if agreed else f"有异议：{text}")
    return row


def respond_to_confirmation(row: FactConfirmation, actor: User, text: str) -> FactConfirmation:
    """The firm answers the unit's objections (once), before the report goes to the panel."""
    permissions.require(actor, "fact.send", row.engagement)
    if row.answered_at is None or row.agreed:
        raise Conflict("单位尚未提出异议，无需回应。")
    if row.responded_at is not None:
        raise Conflict("已回应。")
    errors: dict[str, str] = {}
    text = _text(text, "text", "对异议的回应", errors, limit=NOTE_LIMIT)
    _raise_if(errors)
    _claim(row, FactConfirmation.responded_at, "已回应。", firm_response=text, responded_at=utcnow())
    audit.record("fact.responded", row, actor=actor, bureau_id=row.engagement.bureau_id,
                 summary=f"{row.engagement.reference} 第三方机构回应被评价单位的异议")
    return row


def confirmations(engagement: Engagement) -> list[FactConfirmation]:
    return list(db.session.execute(sa.select(FactConfirmation).where(
        FactConfirmation.engagement_id == engagement.id).order_by(FactConfirmation.id.desc())).scalars())


@review_services.after_upload
def attach_confirmation(submission: Submission) -> None:
    """A report upload carries the exchanges not yet attached to an earlier version, so its panel sees them."""
    if submission.kind != SubmissionKind.REPORT:
        return
    db.session.execute(sa.update(FactConfirmation).where(
        FactConfirmation.engagement_id == submission.engagement_id, FactConfirmation.submission_id.is_(None))
        .values(submission_id=submission.id).execution_options(synchronize_session=False))


@review_services.expert_context
def confirmation_for_panel(submission: Submission) -> dict:
    """The panel's review page: the unit's answers and the firm's responses attached to this version."""
    rows = list(db.session.execute(sa.select(FactConfirmation).where(
        FactConfirmation.submission_id == submission.id).order_by(FactConfirmation.id)).scalars())
    return {"fact_confirmations": rows} if rows else {}


# === 双公开: the unit's half ==========================================================================

def bureau_published_on(engagement: Engagement) -> Optional[date]:
    """The Beijing date the bureau published the redacted report (None: not published, or withheld)."""
    from evalhub.review.models import Publication

    at = db.session.execute(sa.select(Publication.published_at).where(
        Publication.engagement_id == engagement.id, Publication.classified.is_(False),
        Publication.published_at.is_not(None))).scalar()
    return beijing_date(at) if at is not None else None


def record_unit_publication(engagement: Engagement, actor: User, url: str, published_on: Any) -> UnitPublication:
    """The unit records where and when it published the redacted report (once; a correction replaces it). What it
    publishes is the bureau's redacted version, and whether the report may be published at all is the bureau's
    decision (seed 000: "脱密后进行‘双公开’"; seed 002: classified reports withheld): so the bureau publishes first."""
    permissions.require(actor, "publication.unit_record", engagement)
    _check_state(engagement)
    if review_services.is_classified(engagement):
        raise Conflict("财政部门已将该评价报告标记为涉密或敏感、不予公开，被评价单位不得公开。")
    bureau_on = bureau_published_on(engagement)
    if bureau_on is None:
        raise Conflict("财政部门尚未公开脱密后的评价报告（或尚未决定是否公开）。请待财政部门公开脱密版本后，"
                       "公开同一脱密版本并在此登记。")
    errors: dict[str, str] = {}
    url = _text(url, "url", "公开网址", errors, limit=300)
    if url and not re.match(r"^https?://[^\s/]+\.[^\s]+$", url):
        errors["url"] = "公开网址应以 http:// 或 https:// 开头"
    if not isinstance(published_on, date):
        try:
            published_on = date.fromisoformat(str(published_on or ""))
        except ValueError:
            errors["published_on"] = "请填写公开日期（如 2025-09-30）"
            published_on = None
    if published_on is not None and published_on > beijing_today():
        errors["published_on"] = "公开日期不能晚于今天"
    elif published_on is not None and published_on < bureau_on:
        # the unit publishes the redacted version, which exists from the bureau's publication (seed 000)
        errors["published_on"] = f"公开日期不能早于财政部门公开脱密报告之日（{bureau_on.isoformat()}）"
    _raise_if(errors)
    row = db.session.execute(sa.select(UnitPublication).where(
        UnitPublication.engagement_id == engagement.id)).scalar_one_or_none()
    if row is None:
        row = UnitPublication(engagement_id=engagement.id, url=url, published_on=published_on, recorded_by_id=actor.id)
        db.session.add(row)
    else:
        row.url, row.published_on, row.recorded_by_id = url, published_on, actor.id
    db.session.flush()
    audit.record("publication.unit_recorded", row, actor=actor, bureau_id=engagement.bureau_id,
                 summary=f"{engagement.reference} 被评价单位公开评价报告：{published_on}", payload={"url": url})
    return row


def unit_publication(engagement: Engagement) -> Optional[UnitPublication]:
    return db.session.execute(sa.select(UnitPublication).where(
        UnitPublication.engagement_id == engagement.id)).scalar_one_or_none()


def one_sided_publications(user: User, today: date | None = None, limit: int | None = None) -> list[tuple[Engagement, str]]:
    """Engagements ``user`` may see whose redacted report the bureau published more than the bureau's days ago and
    the evaluated unit has not (the unit publishes only after the bureau: ``record_unit_publication``), and those a
    unit published, recorded before that rule, that the bureau never did: (engagement, what is missing). The rule is asked of the database — the days per bureau, read from the settings
    of the user's bureaus, become one cut-off date per distinct value — and read from the bureau's publications
    (not from every engagement of the province's history), so only the late rows come back; ``limit``: the first so
    many by engagement."""
    from evalhub.review.models import Publication

    today = today or beijing_today()
    bureaus = permissions.visible_bureaus(user)
    before = last_workday_before_each(bureaus, today)
    by_cutoff: dict[date, list[int]] = {}
    for bureau in bureaus:
        # The period (``add_days``: its last day past a holiday moved to the next working day) has ended by today
        # when its N-th day is on or before the last working day before today: published before this cut-off.
        days = int(get_setting(bureau, "results.dual_publication_days"))
        by_cutoff.setdefault(before[bureau.id] - timedelta(days=days - 1), []).append(bureau.id)
    if not by_cutoff:
        return []
    def late(published: Any, cutoff_of: Callable[[date], Any]) -> sa.ColumnElement[bool]:
        return sa.or_(*(sa.and_(permissions.in_bureaus(Engagement.bureau_id, set(ids)), published < cutoff_of(cutoff))
                        for cutoff, ids in sorted(by_cutoff.items())))

    shown = sa.or_(Publication.classified.is_(None), Publication.classified.is_(False))
    bureau_only = sa.select(Engagement, Publication).join(Publication, Publication.engagement_id == Engagement.id).where(
        shown, late(Publication.published_at, beijing_day_start),  # a stored instant against Beijing's midnight
        ~sa.exists().where(UnitPublication.engagement_id == Engagement.id))
    # The unit's side alone: no longer recorded today (the unit publishes after the bureau), but rows recorded
    # before that rule, where the bureau never published, are still one-sided and late (a date against the day).
    unit_only = sa.select(Engagement, UnitPublication).join(
        UnitPublication, UnitPublication.engagement_id == Engagement.id).where(
        late(UnitPublication.published_on, lambda day: day),
        ~sa.exists().where(Publication.engagement_id == Engagement.id,  # published, or classified: not one-sided
                           sa.or_(Publication.published_at.is_not(None), Publication.classified.is_(True))))
    out = []
    for stmt in (bureau_only, unit_only):
        stmt = permissions.scope(user, stmt.where(Engagement.state.in_(RESULT_STATES)), Engagement) \
            .order_by(Engagement.id).limit(limit).options(joinedload(Engagement.budget_unit))
        for engagement, side in db.session.execute(stmt).all():
            if isinstance(side, Publication):
                text = f"被评价单位（{engagement.budget_unit.name}）未公开；财政部门已于 {beijing_date(side.published_at)} 公开"
            else:
                text = f"财政部门未公开；被评价单位已于 {side.published_on} 公开"
            out.append((engagement, text))
    return sorted(out, key=lambda pair: pair[0].id)[:limit]


# === the results-application list ===================================================================

@dataclass
class Proposal:
    measures: list[Measure]
    percent: Optional[Decimal]
    basis: list[str]


def propose(bureau: Bureau, score: Decimal, grade: Grade, open_findings: int, caps: Iterable[str] = ()) -> Proposal:
    """What the bureau's rules propose for one evaluated object; ``caps``: the result's caps in force."""
    measures: list[Measure] = []
    basis: list[str] = []
    percent = Decimal(str(get_setting(bureau, "results.cut_percent")))
    below = Decimal(str(get_setting(bureau, "results.cut_below_score")))
    if grade in (Grade.FAIR, Grade.POOR):
        measures.append(Measure.REDUCE)
        basis.append(f"评价结果为“{grade.label}”，按比例调减")
    if score < below:
        if Measure.REDUCE not in measures:
            measures.append(Measure.REDUCE)
        basis.append(f"得分 {score} 低于 {below:g} 分，调减预算")
    if grade == Grade.GOOD:
        action = get_setting(bureau, "results.good_action")
        if action == "reduce" and Measure.REDUCE not in measures:
            measures.append(Measure.REDUCE)
            basis.append("评价结果为“良”，按本局规则调减")
        elif action == "cancel":
            if Measure.REDUCE in measures:  # cancelling takes the whole item; a reduction beside it means nothing
                measures.remove(Measure.REDUCE)
                basis.append("取消安排已涵盖调减")
            measures.append(Measure.CANCEL)
            basis.append("评价结果为“良”，按本局规则取消安排")
    if review_services.VETO in caps:
        # 一票否决: the funds are recovered (seed 000 "收回资金"), not cut by the share any 差 loses
        if Measure.REDUCE in measures:
            measures.remove(Measure.REDUCE)
        if Measure.CANCEL not in measures:
            measures.append(Measure.CANCEL)
        basis.append("真实性核查不通过，一票否决：取消安排，收回资金")
    if grade == Grade.POOR:
        measures.append(Measure.NOTICE)
        basis.append("评价结果为“差”，通报批评")
    if grade == Grade.EXCELLENT and get_setting(bureau, "results.excellent_priority") == "on":
        measures.append(Measure.PRIORITY)
        basis.append("评价结果为“优”，下一年度同类项目优先安排")
    if open_findings:
        measures.append(Measure.RECTIFY)
        basis.append(f"尚有 {open_findings} 条问题未整改到位")
    return Proposal(measures, percent if Measure.REDUCE in measures else None, basis)


def _finding_counts(engagement_ids: list[int]) -> dict[int, tuple[int, int]]:
    """engagement id → (confirmed findings, closed)."""
    rows = db.session.execute(sa.select(ResultFinding.engagement_id, ResultFinding.status, sa.func.count()).where(
        ResultFinding.engagement_id.in_(engagement_ids or [-1]), ResultFinding.status != FindingStatus.DRAFT)
        .group_by(ResultFinding.engagement_id, ResultFinding.status)).all()
    out: dict[int, list[int]] = {}
    for eid, status, count in rows:
        pair = out.setdefault(eid, [0, 0])
        pair[0] += count
        if status == FindingStatus.CLOSED:
            pair[1] += count
    return {k: (v[0], v[1]) for k, v in out.items()}


# The results loop is about evaluation results: a target review's or an indicator study's mark grades a deliverable,
# not the project (procurement.models.EVALUATION_KINDS), and proposes nothing for its budget.
EVALUATED = Engagement.service_kind.in_(EVALUATION_KINDS)


def _with_results(bureau: Bureau, year: int) -> sa.Select:
    """The bureau's evaluated objects of the year with a recorded result: the rows its list must hold (each result
    with its cap records, which the proposal reads)."""
    return sa.select(EvaluationResult, Engagement).join(Engagement, Engagement.id == EvaluationResult.engagement_id).where(
        Engagement.bureau_id == bureau.id, Engagement.year == year, Engagement.state.in_(RESULT_STATES), EVALUATED) \
        .options(selectinload(EvaluationResult.cap_records))


def _proposed_on_veto(entry: ApplicationEntry) -> bool:
    # a 差 is proposed 取消 only under the veto (propose): so the row tells whether its proposal saw the veto
    return entry.grade == Grade.POOR and Measure.CANCEL.value in (entry.proposed or [])


def _result_changed(entry: ApplicationEntry, result: EvaluationResult) -> bool:
    """The row was decided on another result than the one recorded now: another score or grade, or the veto
    recorded (or lifted) since on a grade that was already 差."""
    return ((entry.score, entry.grade) != (result.score, result.grade)
            or _proposed_on_veto(entry) != (review_services.VETO in review_services.active_caps(result)))


def _hold_list(bureau: Bureau, year: int) -> None:
    """One change to a bureau's year list at a time: building, confirming a row and filing take the same lock, so a
    row confirmed while the list is filed is either in the filing or refused after it."""
    concurrency.serialise(f"results.list:{bureau.id}:{year}")


def build_list(bureau: Bureau, year: int, actor: User) -> list[ApplicationEntry]:
    """One row per evaluated object of the bureau's year with a recorded result; proposals of rows not yet
    confirmed are refreshed (a finding closed since, a setting changed)."""
    permissions.require(actor, "results.manage", bureau)
    _hold_list(bureau, year)
    if _filed(bureau, year):
        raise Conflict(f"{year} 年度结果应用清单已备案，不能再修改。")
    results = db.session.execute(_with_results(bureau, year).order_by(Engagement.id)).all()
    existing = {e.engagement_id: e for e in db.session.execute(_listed(bureau, year)).scalars()}
    counts = _finding_counts([e.id for _, e in results])
    for result, engagement in results:
        total, closed = counts.get(engagement.id, (0, 0))
        proposal = propose(bureau, result.score, result.grade, total - closed, review_services.active_caps(result))
        entry = existing.get(engagement.id)
        if entry is None:
            entry = ApplicationEntry(bureau_id=bureau.id, year=year, engagement_id=engagement.id)
            db.session.add(entry)
            existing[engagement.id] = entry
        if entry.confirmed_at is not None and _result_changed(entry, result):
            # the result changed under a decided row (a cap recorded since, 一票否决): decided again on it
            audit.record("application.reopened", entry, actor=actor, bureau_id=bureau.id,
                         summary=f"{engagement.reference} 评价结果已变更（{entry.grade.label} → {result.grade.label}），"
                                 "结果应用须重新确认", payload={"score": str(entry.score), "grade": entry.grade.value,
                                                        "measures": entry.measures, "reason": entry.reason,
                                                        "cut_percent": entry.cut_percent, "cut_amount": entry.cut_amount})
            # the old decision goes with its confirmation (the event above keeps it): the Excel and the API must
            # not send a reduction nobody decided for the present result
            entry.confirmed_at = entry.confirmed_by_id = None
            entry.measures = entry.cut_percent = entry.cut_amount = entry.reason = None
        if entry.confirmed_at is None:
            entry.score, entry.grade = result.score, result.grade
            entry.proposed = [m.value for m in proposal.measures]
            entry.proposed_percent = proposal.percent
            entry.proposed_basis = "；".join(proposal.basis)[:500]
    db.session.flush()
    audit.record("application.built", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name} 生成 {year} 年度结果应用清单（{len(results)} 项）")
    return sorted(existing.values(), key=lambda e: e.engagement_id)


def _money(raw: Any, field: str, label: str, errors: dict[str, str], *, high: Decimal,
           places: int = 2) -> Optional[Decimal]:
    """A number from 0 to ``high`` with at most ``places`` decimals: more is refused, never rounded away (a
    reduction in 万元 is exact to the fen with 6)."""
    if raw in (None, ""):
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        errors[field] = f"{label}必须是数字"
        return None
    if not value.is_finite() or value < 0 or value > high:
        errors[field] = f"{label}应在 0 到 {high.normalize():f} 之间"
        return None
    if value != value.quantize(Decimal(1).scaleb(-places)):
        errors[field] = f"{label}最多保留 {places} 位小数"
        return None
    return value.quantize(Decimal(1).scaleb(-places))


def confirm_entry(entry: ApplicationEntry, actor: User, *, measures: Iterable[Any], cut_percent: Any = None,
                  cut_amount_wan: Any = None, reason: str = "") -> ApplicationEntry:
    """The bureau decides the row. A departure from the proposal (other measures, another percentage, an
    amount instead of it) needs a reason."""
    permissions.require(actor, "results.manage", entry.bureau)
    _hold_list(entry.bureau, entry.year)
    db.session.refresh(entry)
    if _filed(entry.bureau, entry.year):
        raise Conflict(f"{entry.year} 年度结果应用清单已备案，不能再修改。")
    errors: dict[str, str] = {}
    chosen: list[Measure] = []
    for raw in measures or []:
        m = _enum(Measure, raw, "measures", "应用方式", errors)
        if m is not None and m not in chosen:
            chosen.append(m)
    if Measure.REDUCE in chosen and Measure.CANCEL in chosen:
        errors["measures"] = "“预算调减”与“取消”不能同时选择"
    percent = _money(cut_percent, "cut_percent", "调减比例", errors, high=Decimal("100"))
    # a reduction is a share of the item's budget: at most the whole of it, to the fen
    amount_wan = _money(cut_amount_wan, "cut_amount_wan", "调减金额（万元）", errors,
                        high=entry.engagement.amount / 10000, places=6)
    if Measure.REDUCE in chosen and percent is None and amount_wan is None:
        errors["cut_percent"] = "预算调减须填写调减比例或调减金额"
    if Measure.REDUCE not in chosen and (percent or amount_wan):
        errors["cut_percent"] = "未选择“预算调减”时不填写调减比例或金额"
    reason = _text(reason, "reason", "理由", errors, limit=NOTE_LIMIT, required=False)
    ordered = [m.value for m in Measure if m in chosen]
    departs = ordered != [m.value for m in Measure if m.value in (entry.proposed or [])] or (
        Measure.REDUCE in chosen and (amount_wan is not None or percent != entry.proposed_percent))
    if departs and not reason and "reason" not in errors:
        errors["reason"] = "与规则建议不一致，请说明理由"
    _raise_if(errors)
    entry.measures, entry.reason = ordered, reason
    entry.cut_percent = percent if Measure.REDUCE in chosen else None
    # 四舍五入 to the fen, as every amount in evalhub (the default context would round half to even)
    entry.cut_amount = ((amount_wan * 10000).quantize(Decimal("0.01"), ROUND_HALF_UP) if amount_wan is not None else
                        (entry.engagement.amount * percent / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
                        if percent is not None else None)
    entry.confirmed_at, entry.confirmed_by_id = utcnow(), actor.id
    audit.record("application.confirmed", entry, actor=actor,
                 summary=f"{entry.engagement.reference} 结果应用：{entry.labels(ordered)}" + ("（与建议不同）" if departs else ""),
                 payload={"measures": ordered, "proposed": entry.proposed, "percent": percent, "reason": reason})
    return entry


def _listed(bureau: Bureau, year: int) -> sa.Select:
    """The rows of the bureau's list for the year: of evaluations only (a row built for another kind before the kind
    was asked is no part of the list, nor of its figures)."""
    return sa.select(ApplicationEntry).join(Engagement, Engagement.id == ApplicationEntry.engagement_id).where(
        ApplicationEntry.bureau_id == bureau.id, ApplicationEntry.year == year, EVALUATED)


def entries(bureau: Bureau, year: int) -> list[ApplicationEntry]:
    """The bureau's list for the year, each row with its engagement and unit (what the list shows) read with it."""
    return list(db.session.execute(_listed(bureau, year).order_by(ApplicationEntry.engagement_id)
        .options(joinedload(ApplicationEntry.engagement).joinedload(Engagement.budget_unit))
        .execution_options(populate_existing=True)).scalars())  # as a confirmation just before left them


def _filed(bureau: Bureau, year: int) -> Optional[ApplicationFiling]:
    return db.session.execute(sa.select(ApplicationFiling).where(
        ApplicationFiling.bureau_id == bureau.id, ApplicationFiling.year == year)).scalar_one_or_none()


def figures(bureau: Bureau, year: int) -> dict:
    """The completion figures of one bureau's year: objects, confirmed rows, findings and how many are
    closed (the rectification rate), the budget reduced and the funds of the items cancelled (yuan), and the funds
    evaluated."""
    return figures_of([bureau.id], year)[bureau.id]


def figures_of(bureau_ids: Iterable[int], year: int) -> dict[int, dict]:
    """``figures`` for several bureaus (a prefecture's counties) at once: three statements whatever their number,
    not four per bureau."""
    ids = sorted(set(bureau_ids))
    rows: dict[int, list[tuple[ApplicationEntry, Decimal]]] = {i: [] for i in ids}
    objects: dict[int, list[tuple[int, Decimal]]] = {i: [] for i in ids}
    for part in batches(ids):
        for entry, amount in db.session.execute(sa.select(ApplicationEntry, Engagement.amount).join(
                Engagement, Engagement.id == ApplicationEntry.engagement_id).where(
                ApplicationEntry.bureau_id.in_(part), ApplicationEntry.year == year, EVALUATED)):
            rows[entry.bureau_id].append((entry, amount))
        for engagement_id, bureau_id, amount in db.session.execute(
                sa.select(Engagement.id, Engagement.bureau_id, Engagement.amount).where(
                    Engagement.bureau_id.in_(part), Engagement.year == year, Engagement.state.in_(RESULT_STATES),
                    EVALUATED)):
            objects[bureau_id].append((engagement_id, amount))
    counts = {}
    for part in batches([e for pairs in objects.values() for e, _ in pairs]):
        counts.update(_finding_counts(part))
    out = {}
    for i in ids:
        found = [counts.get(e, (0, 0)) for e, _ in objects[i]]
        total, closed = sum(c[0] for c in found), sum(c[1] for c in found)
        decided = [(e, amount) for e, amount in rows[i] if e.confirmed_at]
        reduced = sum((e.cut_amount or Decimal("0") for e, _ in decided), Decimal("0"))
        # 取消安排 takes the whole item (seed 004 "取消项目资金安排"): its funds are what the application withdrew
        cancelled = sum((amount for e, amount in decided if Measure.CANCEL.value in (e.measures or [])), Decimal("0"))
        out[i] = {"objects": len(objects[i]), "entries": len(rows[i]),
                  "confirmed": len(decided), "findings": total, "closed": closed,
                  "rate": (Decimal(closed * 100) / total).quantize(Decimal("0.1"), ROUND_HALF_UP) if total else None,
                  "reduced": Decimal(reduced).quantize(Decimal("0.01"), ROUND_HALF_UP),
                  "cancelled": Decimal(cancelled).quantize(Decimal("0.01"), ROUND_HALF_UP),
                  "funds": sum((amount for _, amount in objects[i]), Decimal("0"))}
    return out


def file_list(bureau: Bureau, year: int, actor: User) -> ApplicationFiling:
    """A county files its confirmed list with the bureau above it (备案); once, and then it is frozen."""
    permissions.require(actor, "results.file", bureau)
    if bureau.level != BureauLevel.COUNTY or bureau.parent_id is None:
        raise ValidationFailed("只有县（市）财政局向上级财政局备案结果应用清单。", {"year": "本级无需备案"})
    _hold_list(bureau, year)
    rows = entries(bureau, year)
    if not rows:
        raise ValidationFailed(f"{year} 年度结果应用清单为空，请先生成清单。", {"year": "清单为空"})
    listed = {e.engagement_id: e for e in rows}
    current = db.session.execute(_with_results(bureau, year).order_by(Engagement.id)).all()
    missing = [e.reference for _, e in current if e.id not in listed]
    if missing:  # accepted since the list was built: filed without them, their measures could never be recorded
        raise ValidationFailed(f"清单生成后又有 {len(missing)} 项评价结果（{'、'.join(missing[:5])}"
                               f"{'等' if len(missing) > 5 else ''}），请重新生成清单并确认后再备案。", {"year": "清单不完整"})
    changed = [e.reference for r, e in current if _result_changed(listed[e.id], r)]
    if changed:  # a result changed since its row was decided: the list would file the old grade and measures
        raise ValidationFailed(f"清单生成后有 {len(changed)} 项评价结果发生变更（{'、'.join(changed[:5])}"
                               f"{'等' if len(changed) > 5 else ''}），请重新生成清单并确认后再备案。", {"year": "评价结果已变更"})
    pending = [e for e in rows if e.confirmed_at is None]
    if pending:
        raise ValidationFailed(f"还有 {len(pending)} 项未确认，全部确认后才能备案。", {"year": "有未确认的项目"})
    if _filed(bureau, year):
        raise Conflict(f"{year} 年度结果应用清单已备案。")
    summary = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in figures(bureau, year).items()}
    filing = ApplicationFiling(bureau_id=bureau.id, year=year, filed_with_id=bureau.parent_id, filed_at=utcnow(),
                               filed_by_id=actor.id, summary=summary)
    db.session.add(filing)
    db.session.flush()
    audit.record("application.filed", filing, actor=actor,
                 summary=f"{bureau.short_name} 向 {bureau.parent.short_name} 备案 {year} 年度结果应用清单", payload=summary)
    return filing


def filing_of(bureau: Bureau, year: int) -> Optional[ApplicationFiling]:
    return _filed(bureau, year)


def county_table(bureau: Bureau, year: int, actor: User) -> list[dict]:
    """The prefecture's one table: each county below it, its filing and its completion figures."""
    permissions.require(actor, "results.view_bureau", bureau)
    children = [c for c in sorted(bureau.children, key=lambda b: b.code)
                if permissions.can(actor, "results.view_bureau", c)]
    ids = [c.id for c in children]
    filings = {f.bureau_id: f for f in db.session.execute(sa.select(ApplicationFiling).where(
        ApplicationFiling.bureau_id.in_(ids or [-1]), ApplicationFiling.year == year)).scalars()}
    numbers = figures_of(ids, year)
    return [{"bureau": c, "filing": filings.get(c.id), **numbers[c.id]} for c in children]


# A recurring project carries its year in its name (seed 003: "2023 年困难群众救助资金"; seed 002: "巴州医疗保障局 2024
# 城乡居民…"): the year — with 年 or 年度, in brackets, or alone — and the spaces are no part of the project (digits of
# a code, G2012, are). A bare 20xx is a year only where it reads as one — followed by 年/年度, in brackets, at the
# start of the name, or a word of its own between spaces —: "2025年2000亩高标准农田" keeps its 2000 亩.
_YEAR_TOKEN = re.compile(r"[（(【\[]\s*20\d{2}\s*(?:年度|年)?\s*[）)】\]]"  # (2025) 【2025年度】
                         r"|(?<![\dA-Za-z])20\d{2}\s*(?:年度|年)"  # 2025年, 2025 年度
                         r"|^\s*20\d{2}(?![\dA-Za-z])"  # 2025城乡居民… at the start
                         r"|(?<=\s)20\d{2}(?=\s)")  # 巴州医疗保障局 2024 城乡居民…


def project_key(name: str) -> str:
    """A project's name without its year, for finding the same project another year."""
    return re.sub(r"\s+", "", _YEAR_TOKEN.sub("", name or ""))


def previous_applications(keys: Iterable[tuple[int, str, int]]) -> dict[tuple[int, str, int], ApplicationEntry]:
    """For each (budget unit, project name, plan year): the year before's confirmed application for the same unit
    and project — the name matched without its year (``project_key``) — for next year's plan page (the plan module
    shows it through a hook it offers; see the issue 15 report). A statement per plan year and 500 units, not one per
    item: it reads the units' confirmed rows of the year before (a unit's few evaluations a year) and matches the
    names here; where a unit ran two engagements of the same project that year, the first recorded."""
    wanted: dict[tuple[int, str, int], list[tuple[int, str, int]]] = {}
    for unit, name, year in set(keys):
        wanted.setdefault((unit, project_key(name), year), []).append((unit, name, year))
    out: dict[tuple[int, str, int], ApplicationEntry] = {}
    for year in sorted({y for _, _, y in wanted}):
        units = sorted({u for u, _, y in wanted if y == year})
        for part in batches(units):
            rows = db.session.execute(
                sa.select(ApplicationEntry, Engagement.budget_unit_id, Engagement.name)
                .join(Engagement, Engagement.id == ApplicationEntry.engagement_id)
                .where(Engagement.budget_unit_id.in_(part), EVALUATED,
                       ApplicationEntry.year == year - 1, ApplicationEntry.confirmed_at.is_not(None))
                .order_by(ApplicationEntry.id))
            for entry, unit_id, name in rows:
                for key in wanted.get((unit_id, project_key(name), year), ()):
                    out.setdefault(key, entry)
    return out


EXPORT_COLUMNS = ["序号", "预算单位", "项目名称", "评价对象类型", "预算金额（万元）", "评价得分", "评价等级", "等级限制",
                  "问题总数", "已整改", "规则建议", "应用方式", "调减比例（%）", "调减金额（万元）", "理由", "确认时间"]


def export_rows(rows: list[ApplicationEntry]) -> list[dict]:
    """The list in the columns a budget office works with."""
    from evalhub.core.timeutil import to_beijing

    counts = _finding_counts([e.engagement_id for e in rows])
    caps = {r.engagement_id: r.caps for r in db.session.execute(sa.select(EvaluationResult).where(
        EvaluationResult.engagement_id.in_([e.engagement_id for e in rows] or [-1]))).scalars()}
    out = []
    for n, e in enumerate(rows, start=1):
        g = e.engagement
        total, closed = counts.get(g.id, (0, 0))
        out.append({"序号": n, "预算单位": g.budget_unit.name, "项目名称": g.name,
                    "评价对象类型": g.plan_item.object_type.label, "预算金额（万元）": float(g.amount / 10000),
                    "评价得分": float(e.score), "评价等级": e.grade.label, "等级限制": "、".join(caps.get(g.id) or []),
                    "问题总数": total, "已整改": closed, "规则建议": e.labels(e.proposed),
                    "应用方式": e.labels(e.measures) if e.confirmed_at else "（未确认）",
                    "调减比例（%）": float(e.cut_percent) if e.cut_percent is not None else None,
                    "调减金额（万元）": float(e.cut_amount / 10000) if e.cut_amount is not None else None,
                    "理由": e.reason or "", "确认时间": to_beijing(e.confirmed_at)})
    return out


# === self-evaluation reviews (克州 item 7) ==============================================================
# The unit hands in its 自评报告; the bureau's panel is review's own (review.services.form_panel with the
# self-evaluation as subject: the same draw with avoidance, the bureau's editable rubric, the outcome decided
# once); under the pass mark the bureau sends the letter back and the unit hands in a new version.

SELF_EVALUATION_FILES = ("docx", "pdf")


def _stored_upload(upload: files.Upload, allowed: tuple[str, ...], actor: User, errors: dict[str, str], *,
                   missing: str) -> StoredFile | None:
    """The chosen file, stored; None, with ``errors["file"]`` saying why, when none was chosen or it is refused."""
    if not upload.data:
        errors["file"] = missing
        return None
    try:
        return files.store(upload.filename, upload.data, allowed=allowed, actor=actor)
    except ValidationFailed as exc:
        errors["file"] = exc.message
        return None


def _self_evaluation_version(se: SelfEvaluation, actor: User, upload: files.Upload, note: str | None) -> Submission:
    errors: dict[str, str] = {}
    note = _text(note, "note", "说明", errors, required=False, limit=1000)
    stored = _stored_upload(upload, SELF_EVALUATION_FILES, actor, errors, missing="请选择自评报告文件（docx 或 pdf）")
    _raise_if(errors)
    version = (db.session.execute(sa.select(sa.func.max(Submission.version)).where(
        Submission.self_evaluation_id == se.id)).scalar_one() or 0) + 1
    submission = Submission(self_evaluation_id=se.id, kind=SubmissionKind.SELF_EVALUATION, version=version,
                            file_id=stored.id, note=note or None, submitted_by_id=actor.id)
    db.session.add(submission)
    db.session.flush()
    audit.record("self_evaluation.uploaded", se, actor=actor, bureau_id=se.bureau_id,
                 summary=f"{se.reference} {se.budget_unit.name} 提交部门自评报告第 {version} 版",
                 payload={"sha256": stored.sha256, "version": version})
    notifications.emit("self_evaluation_received", link=f"/results/self-evaluations/{se.id}", bureau_id=se.bureau_id,
                       reference=se.reference, version=version, unit=se.budget_unit.name, name=se.name)
    return submission


def submit_self_evaluation(actor: User, unit: BudgetUnit, *, year: Any, name: str, funds: Any = None,
                           upload: files.Upload, note: str | None = None) -> SelfEvaluation:
    """A 主管部门 (or a unit under it) hands its self-evaluation report of a central transfer to its bureau."""
    permissions.require(actor, "self_evaluation.submit", unit)
    errors: dict[str, str] = {}
    name = _text(name, "name", "项目（资金）名称", errors, limit=200)
    check_name(errors, "name", name, "项目（资金）名称")
    try:
        year_value = int(str(year).strip())
        if not 2000 <= year_value <= 2100:
            raise ValueError
    except (TypeError, ValueError):
        errors["year"] = "年度应为 2000–2100 之间的整数"
        year_value = 0
    amount = None
    if funds not in (None, ""):
        amount = _money(funds, "funds", "资金金额", errors, high=Decimal("1e12"))
        if amount is not None and amount < Decimal("0.01"):
            errors["funds"] = "资金金额必须大于 0"
    _raise_if(errors)
    concurrency.refuse_twin(
        f"results.self_evaluation:{unit.id}",
        sa.select(SelfEvaluation).where(SelfEvaluation.budget_unit_id == unit.id, SelfEvaluation.year == year_value,
                                        SelfEvaluation.name == name),
        lambda twin: f"{unit.name} {year_value} 年度“{name}”的自评报告已提交（{twin.reference}，{twin.status.label}）："
                     "退回整改后请在该报告中提交新版本，不要重复提交。")
    se = SelfEvaluation(bureau_id=unit.bureau_id, budget_unit_id=unit.id, year=year_value, name=name, funds=amount,
                        status=SelfEvaluationStatus.SUBMITTED, created_by_id=actor.id)
    db.session.add(se)
    db.session.flush()
    _self_evaluation_version(se, actor, upload, note)
    return se


def resubmit_self_evaluation(se: SelfEvaluation, actor: User, upload: files.Upload, note: str | None = None) -> Submission:
    """After the bureau returned it (under the pass mark), the unit hands in the rectified version."""
    permissions.require(actor, "self_evaluation.resubmit", se)
    if se.status != SelfEvaluationStatus.RETURNED:
        raise Conflict(f"该自评报告当前状态为“{se.status.label}”，只有退回整改的自评报告可以重新提交。")
    submission = _self_evaluation_version(se, actor, upload, note)
    review_services.move_self_evaluation(se, SelfEvaluationStatus.RETURNED, SelfEvaluationStatus.SUBMITTED)
    return submission


def self_evaluation_panels(se: SelfEvaluation) -> list[ReviewPanel]:
    return list(db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.self_evaluation_id == se.id)
                                   .order_by(ReviewPanel.round)).scalars())


def unit_outcome(panel: ReviewPanel) -> Optional[dict]:
    """What the unit reads of a panel: the outcome once decided and, under the pass mark, the letter once
    sent — never who reviewed nor an individual score. The score is stated as the letter states it
    (``review.services.score_words``: the unrounded figure first where rounding would show 90.00 under 90)."""
    if panel.letter_sent_at is not None:
        return {"label": "退回整改", "score": panel.score, "score_words": review_services.score_words(panel),
                "letter": panel.letter, "due": panel.resubmit_due}
    if panel.passed and panel.status == PanelStatus.CLOSED:
        return {"label": "评审通过", "score": panel.score, "score_words": review_services.score_words(panel),
                "letter": None, "due": None}
    return {"label": "专家评审中", "score": None, "score_words": None, "letter": None, "due": None}


# === 资料清单: what the firm needs from the evaluated unit during fieldwork =============================

MATERIAL_FILES = ("pdf", "docx", "xlsx", "txt", "png", "jpg", "zip")


def request_materials(engagement: Engagement, actor: User, items: Iterable[tuple[str, Any, str | None]]) -> list[MaterialRequest]:
    """The contracted firm lists the materials it needs (title, due date, note); the unit is told once. A material
    is asked for once while it is owed: a line whose name is already on the list and not yet provided — the same
    list submitted twice (a double click, a resend, two of the firm's people at once) — is refused, naming it
    (409), with nothing written; once the unit has provided it, the firm may ask for it again."""
    permissions.require(actor, "material.request", engagement)
    if engagement.state not in (EngagementState.CONTRACTED, EngagementState.PLAN_SUBMITTED, EngagementState.PLAN_IN_REVIEW,
                                EngagementState.PLAN_RETURNED, EngagementState.FIELDWORK, EngagementState.REPORT_RETURNED):
        raise Conflict(f"评价任务当前状态为“{engagement.state.label}”，不在实地评价阶段，不能列资料清单。")
    errors: dict[str, str] = {}
    rows: list[MaterialRequest] = []
    listed: dict[str, int] = {}  # title → its line
    today = beijing_today()
    for n, (title, due, note) in enumerate(items, start=1):
        if not (title or "").strip() and due in (None, ""):
            continue
        title_clean = _text(title, f"title_{n}", f"第 {n} 项资料名称", errors, limit=200)
        check_name(errors, f"title_{n}", title_clean, f"第 {n} 项资料名称")
        if title_clean and title_clean in listed:
            errors[f"title_{n}"] = f"第 {n} 项资料名称与第 {listed[title_clean]} 项相同，请合并为一项"
        elif title_clean:
            listed[title_clean] = n
        note_clean = _text(note, f"note_{n}", f"第 {n} 项说明", errors, required=False, limit=1000)
        due_value = due if isinstance(due, date) else None
        if due_value is None:
            try:
                due_value = date.fromisoformat(str(due or "").strip())
            except ValueError:
                errors[f"due_{n}"] = f"第 {n} 项提供期限应为日期（如 2025-06-30）"
        if due_value is not None and due_value < today:
            errors[f"due_{n}"] = f"第 {n} 项提供期限不能早于今天"
        if title_clean and due_value is not None and f"due_{n}" not in errors:
            rows.append(MaterialRequest(engagement_id=engagement.id, title=title_clean, note=note_clean or None,
                                        due_on=due_value, created_by_id=actor.id))
    if not rows and not errors:
        errors["items"] = "请至少列出一项资料及其提供期限"
    _raise_if(errors)
    # the second of two lists submitted at once waits here and reads the lines the first wrote
    concurrency.serialise(f"results.materials:{engagement.id}")
    owed = db.session.execute(sa.select(MaterialRequest).where(
        MaterialRequest.engagement_id == engagement.id, MaterialRequest.uploaded_at.is_(None),
        MaterialRequest.title.in_([r.title for r in rows])).order_by(MaterialRequest.due_on, MaterialRequest.id)).scalars().all()
    if owed:
        raise Conflict("资料清单中已列有以下资料，被评价单位尚未提供，请勿重复列出："
                       + "、".join(f"“{m.title}”（提供期限 {m.due_on.isoformat()}）" for m in owed) + "。")
    db.session.add_all(rows)
    db.session.flush()
    audit.record("materials.requested", engagement, actor=actor, bureau_id=engagement.bureau_id,
                 summary=f"{engagement.reference} 机构列出资料清单 {len(rows)} 项",
                 payload={"items": [(r.title, r.due_on.isoformat()) for r in rows]})
    notifications.emit("materials_requested", link=f"/results/unit/engagements/{engagement.id}",
                       users=unit_users(engagement.budget_unit_id), reference=engagement.reference,
                       firm=engagement.firm.name if engagement.firm else "", name=engagement.name, count=len(rows),
                       due=min(r.due_on for r in rows).isoformat())
    return rows


def upload_material(item: MaterialRequest, actor: User, upload: files.Upload, note: str | None = None) -> MaterialRequest:
    """The unit answers one line with its file (a later upload replaces the file; the audit log keeps each). The
    file the line holds already, uploaded again with the same note — a double click, a resend, two of the unit's
    people at once — is refused, naming it (409), before anything is stored; another file or note replaces it."""
    permissions.require(actor, "material.upload", item)
    if upload.data:
        concurrency.refuse_twin(  # the second of two uploads at once waits here and finds the first's file
            f"results.material:{item.id}",
            sa.select(MaterialRequest).join(StoredFile, StoredFile.id == MaterialRequest.file_id).where(
                MaterialRequest.id == item.id, StoredFile.sha256 == files.digest(upload.data),
                sa.func.coalesce(MaterialRequest.unit_note, "") == (note or "").strip()),
            lambda twin: f"资料“{twin.title}”已于 {format_beijing(twin.uploaded_at)} 上传此文件，请勿重复提交。")
    errors: dict[str, str] = {}
    note_clean = _text(note, "unit_note", "说明", errors, required=False, limit=1000)
    stored = _stored_upload(upload, MATERIAL_FILES, actor, errors, missing="请选择要上传的资料文件")
    _raise_if(errors)
    item.file_id = stored.id
    item.unit_note = note_clean or None
    item.uploaded_at = utcnow()
    item.uploaded_by_id = actor.id
    db.session.flush()
    audit.record("materials.uploaded", item.engagement, actor=actor, bureau_id=item.engagement.bureau_id,
                 summary=f"{item.engagement.reference} 被评价单位提供资料：{item.title}", payload={"item": item.id,
                                                                                                  "sha256": stored.sha256})
    return item


def materials_of(engagement: Engagement) -> list[MaterialRequest]:
    return list(db.session.execute(sa.select(MaterialRequest).where(MaterialRequest.engagement_id == engagement.id)
                                   .order_by(MaterialRequest.due_on, MaterialRequest.id)).scalars())


def overdue_materials(user: User) -> list[MaterialRequest]:
    """Lines past their date and not yet answered, of the engagements the user sees (the unit's home page)."""
    stmt = permissions.scope(user, sa.select(MaterialRequest).where(
        MaterialRequest.uploaded_at.is_(None), MaterialRequest.due_on < beijing_today()), MaterialRequest)
    return list(db.session.execute(stmt.order_by(MaterialRequest.due_on, MaterialRequest.id)).scalars())
