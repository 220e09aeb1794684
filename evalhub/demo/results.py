"""Demo results application (闭环, `flask evalhub demo`): budget-unit accounts, findings in every
rectification state, escalations, the results-application lists and the 人大 summary.

Everything goes through ``evalhub.results.services`` (and the account machinery), so the rules hold and the
audit chain records it. Two parts, each on its own days (``demo.clock``):
- ``load_rectification`` (after the engagements): 巴州's and 民丰县's 2024 reports, published in summer 2025,
  get their findings a few days later; units plan, report and are verified; the overdue ones are escalated
  (催办 → 约谈 → 通报) on the days the rule reaches them; 巴州's 2024 list is confirmed in December 2025. The
  2025 report accepted just before the load date gets open findings (deadlines ahead).
- ``load_applications`` (at the end, just before the load time): the 2025 lists of 巴州 (one departure from
  the rules' proposal, with its reason) and 轮台县 (filed 备案 with 巴州), and 巴州's 2025 人大 summary.
Idempotent: each part does nothing once its first row exists.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Callable

import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.accounts import LinkPurpose, use_link
from evalhub.core.models import Bureau, BudgetUnit, User
from evalhub.core.settings import get_setting
from evalhub.core.timeutil import to_beijing
from evalhub.demo import clock
from evalhub.extensions import db
from evalhub.procurement.models import Engagement
from evalhub.results import documents, services as RS
from evalhub.results.models import ApplicationEntry, FindingKind, Measure, ResultFinding, Verification
from evalhub.review.models import IndicatorCategory as C

PASSWORD = "evalhub-demo"

# username, display name, budget unit, the bureau admin who creates it
UNIT_ACCOUNTS = [
    ("dw0001", "巴州统计局绩效联络员", "巴州统计局", "bz.admin"),
    ("dw0002", "巴州民政局绩效联络员", "巴州民政局", "bz.admin"),
    ("dw0003", "库尔勒经济技术开发区人才服务中心联络员", "库尔勒经济技术开发区人才服务中心", "bz.admin"),
    ("dw0004", "民丰县民政局绩效联络员", "民丰县民政局", "mf.admin"),
]

# engagement name → [(kind, category, text, story)]; story: what happens to the finding
FINDINGS_2024 = {
    "巴州统计局第五次全国经济普查项目": [
        (FindingKind.PROBLEM, C.PROCESS, "普查经费支出中劳务费发放缺少签收凭证，资金管理制度执行不到位", "done"),
        (FindingKind.PROBLEM, C.OUTPUT, "普查数据质量抽查比例低于方案要求，部分乡镇数据复核不及时", "partial"),
        (FindingKind.PROBLEM, C.DECISION, "项目绩效目标设置不够细化，产出指标缺少量化标准", "not_done"),
        (FindingKind.RECOMMENDATION, C.BENEFIT, "建议建立普查成果共享机制，提升数据社会效益", "submitted"),
    ],
    "巴州民政局社会服务设施兜底工程-儿童福利设施项目": [
        (FindingKind.PROBLEM, C.PROCESS, "工程进度款支付滞后，资金到位率不足 70%", "planned_overdue"),
        (FindingKind.PROBLEM, C.OUTPUT, "儿童福利设施配套设备未按期完成采购安装", "silent_overdue"),
        (FindingKind.RECOMMENDATION, C.DECISION, "建议完善项目前期论证和立项程序", "done"),
    ],
    "民丰县困难群众救助资金": [
        (FindingKind.PROBLEM, C.PROCESS, "救助对象动态管理不及时，个别对象未按规定退出", "done"),
        (FindingKind.PROBLEM, C.BENEFIT, "救助对象满意度调查样本不足，效益指标佐证不充分", "late_overdue"),
    ],
}
ACCEPTED_2025 = "库尔勒经济技术开发区人才服务中心就业服务项目"
FINDINGS_2025 = [
    (FindingKind.PROBLEM, C.OUTPUT, "就业服务台账登记不完整，培训完成人数与合同约定不一致", "planned"),
    (FindingKind.PROBLEM, C.PROCESS, "政府购买服务合同履约验收材料不齐全", "open"),
    (FindingKind.RECOMMENDATION, C.BENEFIT, "建议开展用人单位和求职者满意度跟踪调查", "open"),
]
EVIDENCE = [files.Upload("整改佐证材料.txt", "整改情况说明及相关凭证清单（演示）".encode("utf-8"))]


def _one(stmt):
    return db.session.execute(stmt).scalars().first()


def _engagement(name: str) -> Engagement | None:
    return _one(sa.select(Engagement).where(Engagement.name == name).order_by(Engagement.id))


def _entering(engagement: Engagement, fallback: User) -> User:
    """The contracted firm enters the findings with its report; the bureau when it has no login."""
    user = _one(sa.select(User).where(User.firm_id == engagement.firm_id)) if engagement.firm_id else None
    return user or fallback


def _unit_accounts(users: dict[str, User]) -> dict[str, User]:
    out = {}
    for username, display_name, unit_name, admin in UNIT_ACCOUNTS:
        user = users.get(username)
        if user is None:
            unit = _one(sa.select(BudgetUnit).where(BudgetUnit.name == unit_name))
            user, token = RS.create_unit_account(users[admin], unit, username=username, display_name=display_name)
            use_link(token, LinkPurpose.ACTIVATION, PASSWORD)  # the unit sets the demo password on its link
        out[unit_name] = user
    return out


def _enter(engagement: Engagement, rows, actor: User, confirmer: User, *, late_days: int = 0) -> list[tuple[ResultFinding, str]]:
    """Entered in the morning, confirmed by the bureau in the afternoon (default deadline, or ``late_days``
    later for the 'late_overdue' story)."""
    entered = []
    for kind, category, text, story in rows:
        deadline = None
        if story == "late_overdue":
            deadline = _default_deadline(engagement) + timedelta(days=late_days)
        entered.append((RS.add_finding(engagement, actor, RS.FindingInput(kind=kind, text=text, category=category,
                                                                          deadline=deadline)), story))
    clock.at(clock.now_local() + timedelta(hours=5), forward_only=True)
    RS.confirm_findings(engagement, confirmer, today=clock.now_local().date())
    return entered


def _default_deadline(engagement: Engagement) -> date:
    return clock.now_local().date() + timedelta(days=int(get_setting(engagement.bureau, "results.rectification_days")))


def load_rectification(echo: Callable[[str], object] = print, *, load_time: datetime | None = None) -> int:
    if db.session.execute(sa.select(ResultFinding.id)).first():
        return 0
    load_time = load_time or clock.now_local()
    users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
    engagements = {name: _engagement(name) for name in FINDINGS_2024}
    if any(e is None or e.state not in RS.RESULT_STATES for e in engagements.values()):
        return 0
    echo("演示数据：预算单位账户、问题整改与逾期督办（2024 年度报告）…")
    # a few days after the last of these reports was published (the one jump back in time besides the archive)
    published = max(to_beijing(e.state_changed_at).replace(tzinfo=None) for e in engagements.values())
    start = clock.workdays_after(published.date(), 3)
    clock.at(start, 10)
    units = _unit_accounts(users)
    clock.at(clock.workdays_after(start, 1), 10)
    stories: list[tuple[ResultFinding, str]] = []
    for name, rows in FINDINGS_2024.items():
        engagement = engagements[name]
        confirmer = users["mf.admin"] if engagement.bureau.code == "653227" else users["bz.admin"]
        stories += _enter(engagement, rows, _entering(engagement, users["bz.staff"]), confirmer, late_days=24)
        clock.at(clock.now_local() + timedelta(hours=18), forward_only=True)
    confirmed_on = clock.now_local().date()

    def unit_user(finding: ResultFinding) -> User:
        return next(u for u in units.values() if u.budget_unit_id == finding.responsible_unit_id)

    clock.at(clock.workdays_after(confirmed_on, 8), 11)
    for finding, story in stories:
        if story != "silent_overdue":
            RS.submit_plan(finding, unit_user(finding), f"制定整改方案：明确责任科室和完成时限，针对“{finding.text[:20]}”逐项整改。")
    clock.at(clock.workdays_after(confirmed_on, 45), 16)
    for finding, story in stories:
        if story in ("done", "partial", "not_done", "submitted"):
            RS.submit_evidence(finding, unit_user(finding), "已按整改方案完成整改，相关制度和凭证见附件。", EVIDENCE)
    verified_on = clock.workdays_after(confirmed_on, 55)
    clock.at(verified_on, 10)
    bureau_of = {"653227": users["mf.admin"]}
    for finding, story in stories:
        actor = bureau_of.get(finding.bureau.code, users["bz.admin"])
        if story == "done":
            RS.verify(finding, actor, Verification.DONE, "佐证材料齐全，整改到位。")
        elif story == "partial":
            RS.verify(finding, actor, Verification.PARTIAL, "已补充部分乡镇复核记录，仍有 3 个乡镇未完成。",
                      new_deadline=verified_on + timedelta(days=120))
        elif story == "not_done":
            RS.verify(finding, actor, Verification.NOT_DONE, "绩效目标表未修订，请按指标编制指引重新细化。",
                      new_deadline=verified_on + timedelta(days=120))
    # the hourly escalation job on the days each level is reached (deadline 90 days after confirmation)
    deadline = min(f.deadline for f, s in stories if s == "planned_overdue")
    for n in (1, 11, 21, 30):
        day = clock.workdays_after(deadline, n)
        clock.at(day, 9, 41, forward_only=True)
        RS.escalate_overdue(today=day)

    echo("演示数据：巴州 2024 年度结果应用清单 …")
    clock.at(clock.workdays_after(deadline, 32), 10, forward_only=True)
    bz = _bureau("652800")
    _confirm_list(bz, 2024, users["bz.admin"], departure=False)

    created = len(stories) + load_self_evaluations(echo, units, users, load_time=load_time)
    accepted = _engagement(ACCEPTED_2025)
    if accepted is not None and accepted.state in RS.RESULT_STATES:
        echo("演示数据：2025 年度验收报告的问题和建议（整改期内）…")
        at = min(to_beijing(accepted.state_changed_at).replace(tzinfo=None) + timedelta(hours=2),
                 load_time - timedelta(hours=3))
        clock.at(at, forward_only=True)
        open_rows = _enter(accepted, FINDINGS_2025, _entering(accepted, users["bz.staff"]), users["bz.admin"])
        clock.at(clock.now_local() + timedelta(minutes=40), forward_only=True)
        for finding, story in open_rows:
            if story == "planned":
                RS.submit_plan(finding, units[accepted.budget_unit.name], "已制定台账补录和合同验收整改方案。")
        created += len(open_rows)
    return created + len(units)


def _bureau(code: str) -> Bureau:
    return db.session.execute(sa.select(Bureau).where(Bureau.code == code)).scalar_one()


def _confirm_list(bureau: Bureau, year: int, actor: User, *, departure: bool) -> list[ApplicationEntry]:
    """Build the list and confirm each row as the rules propose; with ``departure``, one row otherwise,
    with the bureau's reason."""
    rows = RS.build_list(bureau, year, actor)
    # the row set aside: a proposed cut waived for a 兜底 project, or else one row prioritised
    odd = next((e for e in rows if Measure.REDUCE.value in (e.proposed or [])), None) if departure else None
    if departure and odd is None and rows:
        odd = rows[0]
    for entry in rows:
        measures, percent, reason = list(entry.proposed or []), entry.proposed_percent, ""
        if entry is odd and Measure.REDUCE.value in measures:
            measures = [m for m in measures if m != Measure.REDUCE.value] + (
                [] if Measure.RECTIFY.value in measures else [Measure.RECTIFY.value])
            percent, reason = None, "该项目为民生兜底保障支出，经局务会研究暂不调减预算，改为限期整改并跟踪评价。"
        elif entry is odd:
            measures = [] if Measure.PRIORITY.value in measures else measures + [Measure.PRIORITY.value]
            reason = "经局务会研究，结合下一年度重点工作调整结果应用方式。"
        RS.confirm_entry(entry, actor, measures=measures, cut_percent=percent, reason=reason)
    return rows


def load_applications(echo: Callable[[str], object] = print, *, load_time: datetime | None = None) -> int:
    bz, lt = _bureau("652800"), _bureau("652822")
    if db.session.execute(sa.select(ApplicationEntry.id).where(ApplicationEntry.bureau_id == bz.id,
                                                               ApplicationEntry.year == 2025)).first():
        return 0
    load_time = load_time or clock.now_local()
    users = {u.username: u for u in db.session.execute(sa.select(User)).scalars()}
    echo("演示数据：2025 年度结果应用清单（巴州、轮台县备案）与人大报告 …")
    clock.at(load_time - timedelta(hours=2), forward_only=True)
    rows = _confirm_list(bz, 2025, users["bz.admin"], departure=True)
    clock.at(load_time - timedelta(hours=1, minutes=30), forward_only=True)
    county = _confirm_list(lt, 2025, users["lt.admin"], departure=False)
    if county:
        clock.at(load_time - timedelta(hours=1), forward_only=True)
        RS.file_list(lt, 2025, users["lt.admin"])
    # the hourly escalation job, as it would have run up to now: findings sent back in January are long overdue
    RS.escalate_overdue(today=load_time.date())
    summary = documents.people_congress_summary(bz, 2025)  # what 巴州 sends with its final accounts
    echo(f"演示数据：已生成巴州 2025 年度重点绩效评价情况报告（{len(summary) // 1024} KB）")
    return len(rows) + len(county)


# --- self-evaluation reviews (克州's plan, item 7; shown here for 巴州) ---------------------------------------
# unit, central transfer, funds (元), how well the first version is scored (share of each item's points), story
SELF_EVALUATIONS = [
    ("巴州统计局", "中央财政统计能力建设补助资金", "1860000", 0.84, "returned"),  # under 90: returned, resubmitted
    ("巴州民政局", "中央财政困难群众救助补助资金", "12500000", 0.95, "passed"),
]


def _self_evaluation_docx(unit: str, name: str, year: int, version: int) -> bytes:
    import io

    from docx import Document

    document = Document()
    document.add_heading(f"{unit}{year}年度{name}绩效自评报告", level=1)
    for title, text in [
        ("一、基本情况", f"{name}由中央财政下达，{unit}负责组织实施，资金全部纳入预算管理。"),
        ("二、绩效目标完成情况", "产出指标和效益指标逐项列示目标值、完成值和佐证材料。"),
        ("三、存在的问题及原因", "部分指标完成值缺少佐证，资金支付进度前慢后快。"),
        ("四、整改措施和结果应用", "建立资金支付月调度机制，自评结果用于下一年度预算安排。"
         + ("（整改后版本：已补充佐证材料和指标测算过程。）" if version > 1 else "")),
    ]:
        document.add_heading(title, level=2)
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _score_panel(panel, quality: float) -> None:
    """Members accept and score: each item at ``quality`` of its points (a little spread between members)."""
    from decimal import Decimal

    from evalhub.review import services as R
    from evalhub.review.models import InvitationStatus

    def member(expert_id: int) -> User:
        return _one(sa.select(User).where(User.expert_id == expert_id))

    for invitation in list(panel.invitations):
        if invitation.status == InvitationStatus.INVITED:
            R.respond(invitation, member(invitation.expert_id), accept=True, declaration_signed=True)
    clock.at(clock.now_local() + timedelta(days=2), forward_only=True)
    for n, invitation in enumerate(panel.invitations):
        review = invitation.review
        if review is None:
            continue
        ratio = Decimal(str(quality)) + Decimal("0.01") * (n - 1)
        scores = {i.id: min(i.max_points, (i.max_points * ratio).quantize(Decimal("0.5"))) for i in review.rubric.items}
        comments = {i.id: (f"{i.name}基本符合要求。" if ratio >= Decimal("0.9") else
                           f"{i.name}不够充分：指标完成值缺少佐证，需补充数据来源。") for i in review.rubric.items}
        R.save_review(review, member(invitation.expert_id), scores=scores, comments=comments,
                      opinion="自评报告结构完整，结论可信。" if ratio >= Decimal("0.9") else "自评结论依据不足，建议退回整改。")
        R.submit_review(review, member(invitation.expert_id))


def load_self_evaluations(echo: Callable[[str], object], units: dict[str, User], users: dict[str, User], *,
                          load_time: datetime) -> int:
    """Two 主管部门 hand in their self-evaluation reports; 巴州's panels score them; 巴州统计局's (under 90) is
    returned with the letter and handed in again, waiting for its second panel."""
    from evalhub.core import draws
    from evalhub.core.errors import DomainError
    from evalhub.review import services as R

    echo("演示数据：部门自评报告评审（低于 90 分退回整改）…")
    staff = users["bz.staff"]
    latest = load_time - timedelta(days=2)

    def later(days: int, hour: int) -> None:
        clock.at(min(clock.beijing(clock.workdays_after(clock.now_local().date(), days), hour), latest), forward_only=True)

    made = 0
    for unit_name, name, funds, quality, story in SELF_EVALUATIONS:
        user = units.get(unit_name)
        if user is None:
            continue
        unit = db.session.get(BudgetUnit, user.budget_unit_id)
        year = clock.now_local().year - 1
        later(1, 10)
        se = RS.submit_self_evaluation(user, unit, year=year, name=name, funds=funds, upload=files.Upload(
            f"{name}绩效自评报告.docx", _self_evaluation_docx(unit_name, name, year, 1)))
        made += 1
        later(2, 10)
        try:
            panel = draws.run_witnessed(R.form_panel(se, staff))
        except DomainError as exc:  # a library without enough free experts: the report waits for its panel
            echo(f"  {se.reference} 未能抽取评审专家：{exc.message}")
            continue
        _score_panel(panel, quality)
        if story == "returned" and panel.passed is False:
            later(1, 15)
            R.send_letter(panel, staff, panel.letter)
            later(8, 11)
            RS.resubmit_self_evaluation(se, user, files.Upload(f"{name}绩效自评报告（整改后）.docx",
                                                                _self_evaluation_docx(unit_name, name, year, 2)),
                                        note="已按评审意见补充指标完成值佐证和资金支付进度说明。")
    return made
