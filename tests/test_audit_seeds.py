"""Audit: fidelity to the user's own source documents (/work/shared/seeds/, DOMAIN.md).

Each test states the rule as a seed (or DOMAIN.md) gives it, who is hurt when evalhub departs from it, and
fails on the current code for that reason. Seeds: 000 = 克州 2024 年度全面实施预算绩效管理工作开展情况说明,
001 = 自治区 2023 年度说明, 002 = 巴州 第七部分 预算绩效管理工作情况, 003 = 民丰县 2024, 004 = 轮台县 2020.
"""
from __future__ import annotations

import io
from decimal import Decimal

import sqlalchemy as sa

from evalhub.core import files
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState, ServiceKind
from evalhub.results import documents
from evalhub.results import services as S
from evalhub.results.models import Measure
from evalhub.review.models import EvaluationResult, Grade, Submission, SubmissionKind
from tests import factories


def _with_result(w, *, kind: ServiceKind = ServiceKind.KEY_EVALUATION, bureau_key="bz", unit="巴州统计局",
                 score="85", grade=Grade.GOOD, caps=(), amount_wan="300"):
    """An engagement of ``kind`` accepted with a recorded result (the shortcut of tests/test_results_services.py;
    the real walk records the same row: review.services.record_result does not look at the kind)."""
    e = factories.contracted(w, bureau_key=bureau_key, unit=unit, amount_wan=amount_wan)
    e.service_kind = kind
    e.plan_item.service_kind = kind
    stored = files.store("评价报告.docx", factories.docx_bytes(factories.report_text() + f"\n{e.id}"), allowed=("docx",))
    submission = Submission(engagement_id=e.id, kind=SubmissionKind.REPORT, version=1, file_id=stored.id)
    db.session.add(submission)
    db.session.flush()
    db.session.add(EvaluationResult(engagement_id=e.id, submission_id=submission.id, score=Decimal(score),
                                    band_grade=grade, grade=grade, caps=list(caps)))
    e.state = EngagementState.ACCEPTED
    db.session.flush()
    return e


# --- 1. the 人大 report is of key evaluations --------------------------------------------------------

def test_the_peoples_congress_summary_counts_only_key_evaluations(world):
    """Rule: what a bureau sends to the 人大 with the final accounts is its key-evaluation reports — seed 000
    (克州): "州县财政部门负责将本级重点项目绩效评价报告随决算草案报同级人大"; the document evalhub writes says so
    itself ("组织第三方机构对 N 个评价对象开展重点绩效评价"). Other commissioned work (DOMAIN §1, 财预〔2021〕6号:
    事前绩效评估再评估, 绩效目标审核, 指标体系建设 …) is not a 重点绩效评价 and has no 优/良/中/差 of an object.
    Who is hurt: the bureau, which tells its 人大 it evaluated 3 objects and ¥900万 when it evaluated 1 and
    ¥300万 — a false statement to the legislature, with a reassessment's and an indicator study's 'grades'
    counted in the grade distribution.
    Cause: results/documents.py summary_figures selects every engagement with a result, whatever its
    service_kind."""
    import docx

    key = _with_result(world, score="85", grade=Grade.GOOD)
    _with_result(world, kind=ServiceKind.EX_ANTE_REASSESSMENT, score="70", grade=Grade.FAIR)
    _with_result(world, kind=ServiceKind.INDICATOR_SYSTEM, score="95", grade=Grade.EXCELLENT)
    figures = documents.summary_figures(world.bz, 2025)
    assert [e.id for e, _ in figures["rows"]] == [key.id], (
        "人大报送的重点绩效评价情况 counts non-key commissioned work: "
        + "、".join(e.service_kind.label for e, _ in figures["rows"]))
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(documents.people_congress_summary(world.bz, 2025))).paragraphs)
    assert "对 1 个评价对象开展重点绩效评价" in text and "涉及资金 300.00 万元" in text, text.splitlines()[1]


# --- 2. the results-application list is of evaluation results ----------------------------------------

def test_the_results_application_list_proposes_no_budget_cut_for_a_target_review(world):
    """Rule: the budget link applies to *evaluation results* of the year's evaluated objects — seed 000:
    "对上一年度绩效评价结果为‘中’、‘差’的项目，按比例扣减部门单位项目支出预算安排"; seed 001: "对本级绩效评价
    打分低于 80 分的项目，相应调减项目预算". A firm commissioned to review performance targets (绩效目标审核,
    DOMAIN §1) or to build an indicator system evaluates no project: its deliverable's mark is not the
    project's 绩效评价结果. Who is hurt: the budget unit, whose item is proposed a 10 % cut (and a county's
    备案 to the prefecture, which must hold every row) because a target-review deliverable scored 75.
    Cause: results/services.py _with_results (build_list, file_list) takes every engagement with a result,
    whatever its service_kind."""
    key = _with_result(world, score="92", grade=Grade.EXCELLENT)
    review = _with_result(world, kind=ServiceKind.TARGET_REVIEW, score="75", grade=Grade.FAIR)
    rows = {r.engagement_id: r for r in S.build_list(world.bz, 2025, world.bz_staff)}
    assert key.id in rows
    assert review.id not in rows, (
        f"绩效目标审核 on the results-application list with proposal {rows[review.id].proposed} "
        f"({rows[review.id].proposed_basis})")


# --- 3. 一票否决 recovers the funds --------------------------------------------------------------------

def test_a_failed_authenticity_veto_proposes_recovering_the_funds_not_a_ten_percent_cut(world):
    """Rule: seed 000 (克州 5.二): "对核查发现真实性存在问题的项目实行‘一票否决’，收回资金并严肃追究项目实施单位
    和项目负责人的绩效责任"; seed 004 (轮台县): for results 较差 "通过清理结转结余资金，收回部分项目资金". evalhub
    records the veto as a cap (review/services.py CAPS "failed_authenticity", rules.md "一票否决"), but the
    results list then proposes what it proposes for any 差: a 10 % reduction and a 通报. Who is hurt: the
    bureau, whose list (and its 人大 summary, and the county's 备案) shows a falsified project keeping 90 % of
    its money; the bureau must notice and depart from the proposal by hand, with a reason, as if the veto
    were its own idea.
    Cause: results/services.py propose() is given only score and grade, never the result's caps, so the veto
    proposes nothing of its own (no 取消/收回)."""
    vetoed = _with_result(world, score="88", grade=Grade.POOR, caps=["failed_authenticity"])
    row = {r.engagement_id: r for r in S.build_list(world.bz, 2025, world.bz_staff)}[vetoed.id]
    assert Measure.CANCEL.value in row.proposed or "收回" in (row.proposed_basis or ""), (
        f"一票否决 proposes {row.proposed} {row.proposed_percent}%: {row.proposed_basis}")


# --- 4. 双公开 publishes the redacted report: the unit's half follows the bureau's redaction -----------

def test_the_unit_cannot_record_publishing_a_report_the_bureau_has_not_yet_redacted_or_withheld(world):
    """Rule: seed 000 (克州 (四)1): "财政重点项目绩效评价工作结束后，由财政部门、被评价单位负责按规定将第三方机构
    评价报告脱密后进行‘双公开’"; seed 002 (巴州): the bureau organises the publication and withholds what is
    classified ("2 个项目报告涉及涉密及敏感信息，不予公开"). What either side publishes is the *redacted* report,
    and whether it may be published at all is the bureau's decision (evalhub: review.services.publish stores the
    redacted file; withhold marks it classified). Who is hurt: the public interest and the bureau — evalhub
    lets the evaluated unit record (and is thus told it may) publish the report the day it is accepted, before
    any redacted version exists and before the classified decision; the bureau may then withhold a report the
    unit has already put on its website, and evalhub's 双公开 tracker even lists the bureau as late
    ("财政部门未公开；被评价单位已于 … 公开") for not following the unit.
    Cause: results/services.py record_unit_publication only refuses a report already classified; it does not
    require the bureau's redacted publication first."""
    from evalhub.core.errors import Conflict, ValidationFailed
    from evalhub.review import services as R

    e = factories.accepted(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    from evalhub.core.timeutil import beijing_today
    try:
        S.record_unit_publication(e, unit, "https://www.xjbz.gov.cn/tjj/2025/report.html", beijing_today())
    except (Conflict, ValidationFailed):
        return  # refused until the bureau has published its redacted version: the rule holds
    # recorded; and the bureau then withholds the very report the unit has put online
    R.publish(e, world.bz_admin, classified=True, reason="涉及涉密及敏感信息")
    raise AssertionError("the unit recorded publishing the report before the bureau redacted it; the bureau then "
                         f"withheld it as classified (engagement state {e.state.label}) with the unit's publication "
                         f"on record: {S.unit_publication(e).url}")


# --- 5. a report's own cap is not lost between its conclusion and the published grade -----------------

def test_a_report_concluding_fair_under_a_cap_is_not_published_as_excellent(world, client):
    """Rule: seed 000 (克州 5.一): "对审计、财会监督等检查发现问题的项目，绩效评价结果不得评为‘优’、‘良’档次"
    (DOMAIN §2.5; rules.md "Cap: problems found by audit …"). The firm's report applies it — 92 points,
    concluded 中 — and evalhub's own machine check accepts that as consistent ("按等级限制降档 … 须在结果中记录
    限制依据"). But acceptance records the *band* (优), and nothing holds the report back until the bureau
    records the cap: the bureau publishes, and the public list (and the 人大 summary, and the results list,
    which proposes 优先安排) says 优 for a project the report itself says may not be 优. Who is hurt: the public
    and the 人大, told a project with audit problems was excellent; the next year's budget, which gives it
    priority. Cause: review/services.py record_result takes only the caps the bureau recorded; the workflow's
    "publish" (procurement/workflow.py) has no requirement that the recorded grade is not better than the
    report's concluded grade (the result page only shows a 'grade-differs' warning)."""
    from evalhub.core.errors import Conflict, ValidationFailed
    from evalhub.review import services as R

    e = factories.in_fieldwork(world)
    factories.submit_report(e, total="92", grade="中")
    factories.review_panel(factories.own_panel(e), "0.95")
    assert e.state == EngagementState.ACCEPTED
    result = db.session.execute(sa.select(EvaluationResult).where(EvaluationResult.engagement_id == e.id)).scalar_one()
    if result.grade == Grade.FAIR:
        return
    try:
        R.publish(e, world.bz_staff, filename="脱密版.docx", data=factories.docx_bytes("脱密后的报告全文"))
    except (Conflict, ValidationFailed):
        return
    db.session.commit()
    html = client.get("/public/reports").get_data(as_text=True)
    row = html.split(e.name, 1)[1].split("</tr>", 1)[0]
    raise AssertionError(f"report concluded 中 (audit cap), result recorded {result.grade.label} and published; "
                         f"public row shows 优: {'<td>优</td>' in row}")


# --- 6. an ex-ante reassessment is not held to the key-evaluation report outline ----------------------

def test_an_ex_ante_reassessment_report_is_not_checked_against_the_key_evaluation_outline(world):
    """Rule: DOMAIN §1: a firm may be commissioned to re-assess an ex-ante performance assessment (事前绩效评估
    再评估, seed 000: "对重大项目…或专业性较强项目，可引入第三方机构独立实施再评估"); "The workflow is the same for
    every kind; rubric, pass mark and report outline differ by kind" (so says procurement/models.py ServiceKind
    too). An ex-ante assessment covers 立项必要性、投入经济性、绩效目标合理性、实施方案可行性、资金筹措合规性
    (seed 002 巴州; seed 001: "围绕事前绩效评估5大要点") and concludes 支持/部分支持/不支持 (seed 000) — not the
    eight chapters of a 财预〔2020〕10号 evaluation report. Who is hurt: the firm and the panel — every proper
    reassessment report is shown to the experts as failing "8 个章节齐全" (missing 绩效评价指标分析, 主要经验及做法 …),
    and the screener reads the same outline. Cause: review/services.py submit → machine_checks uses the
    bureau's one review.report_chapters whatever engagement.service_kind (no per-kind outline, rubric or pass
    mark exists)."""
    from evalhub.review import services as R

    e = factories.in_fieldwork(world)
    e.service_kind = e.plan_item.service_kind = ServiceKind.EX_ANTE_REASSESSMENT
    db.session.flush()
    factories.name_lead(e)
    text = "\n".join(["一、项目基本情况", "项目概况和资金安排。", "二、立项必要性", "与部门职责和发展规划相符。",
                      "三、投入经济性", "单价与市场价格比较。", "四、绩效目标合理性", "目标明确、指标可衡量。",
                      "五、实施方案可行性", "进度安排可行。", "六、资金筹措合规性", "资金来源合规，财政可承受。",
                      "七、再评估结论", "支持。"])
    firm_user = factories._firm_user_of(e)
    submission = R.submit(e, SubmissionKind.REPORT, "事前绩效评估再评估报告.docx", factories.docx_bytes(text), firm_user,
                          indicators=factories.report_indicators(), concluded_total="92", concluded_grade="优")
    chapters = {c["code"]: c for c in submission.machine_checks}["chapters_present"]
    assert chapters["ok"], f"ex-ante reassessment held to the key-evaluation outline: {chapters['detail']}"


# --- 7. the 闭环 finds last year's result of a recurring project whose name carries its year -----------

def _with_named_result(w, name: str, *, unit="巴州民政局", score="72", grade=Grade.FAIR):
    return factories.accepted_with_result(w, unit=unit, name=name, score=score, grade=grade)


def test_next_years_plan_sees_last_years_result_of_a_project_named_with_its_year(world):
    """Rule: the results loop carries last year's result into next year's budget — seed 000: "项目预算安排中，对
    上一年度绩效评价结果为‘中’、‘差’的项目，按比例扣减"; seed 001: "建立健全财政项目支出‘全覆盖’绩效管理结果应用
    清单，逐项跟踪绩效结果应用"; seed 003 (民丰县): results "应用于2025年预算编制". evalhub shows it on next
    year's plan item (results/views.py last_year_application, rules.md "闭环"). The bureaus name recurring
    projects with their year — seed 003: "2023 年困难群众救助资金", "2023 年中央专项彩票公益金支持地方社会公益事业
    发展（体育健身）资金"; seed 002: "巴州医疗保障局 2024 城乡居民基本医疗保险财政补助资金" — so next year's item is
    "2026 年困难群众救助资金", never last year's exact name. Who is hurt: the bureau planning next year, which is
    shown nothing for the very recurring projects the budget link is about (a 中 last year, cut 10 %, looks like
    a project never evaluated). Cause: results/services.py previous_applications matches Engagement.name
    exactly (Engagement.name.in_(names)), year digits included."""
    from evalhub.results.models import Measure

    e = _with_named_result(world, "2025 年困难群众救助资金")
    entry = {r.engagement_id: r for r in S.build_list(world.bz, 2025, world.bz_staff)}[e.id]
    S.confirm_entry(entry, world.bz_staff, measures=[Measure.REDUCE.value], cut_percent="10")
    found = S.previous_applications([(e.budget_unit_id, "2026 年困难群众救助资金", 2026)])
    assert found, ("next year's plan item “2026 年困难群众救助资金” of 巴州民政局 finds no application of last year's "
                   "“2025 年困难群众救助资金” (中, 调减 10%)")


# --- 8. the rotation rule is about evaluating a unit, not about every commissioned service -------------

def test_a_yearly_target_review_by_the_same_firm_is_not_barred_as_consecutive_evaluation(world):
    """Rule: DOMAIN §3: a firm "may not evaluate the same budget unit two years running" (rules.md: "A firm may
    not evaluate the same budget unit in consecutive years"); the sibling rule, the yearly cap, is explicitly of
    key evaluations only ("other commissioned work neither counts nor is capped"). Seed 003 (民丰县): "目前民丰县
    第三方机构只有一家…主要聘请第三方审核预算资金项目绩效目标、监控、自评等指导、审核及重点项目评价工作" — the
    bureau's one firm reviews every unit's performance targets every year (绩效目标审核, DOMAIN §1, a
    commissioned service that evaluates nothing). Who is hurt: 民丰县 and bureaus like it — evalhub excludes
    their only firm from this year's target review of every unit it reviewed last year ("不得连续评价同一预算
    单位"), so the yearly target review cannot be commissioned at all (or the bureau must switch rotation off
    for its key evaluations too). Cause: procurement/eligibility.py rotations counts every engagement of the
    firm with the unit, whatever the service_kind of either engagement."""
    from evalhub.procurement import eligibility
    from evalhub.procurement.models import ProcurementMethod

    last_year = factories.contracted(world, year=2024)
    last_year.service_kind = last_year.plan_item.service_kind = ServiceKind.TARGET_REVIEW
    this_year = factories.engagement(world, year=2025)
    this_year.service_kind = this_year.plan_item.service_kind = ServiceKind.TARGET_REVIEW
    db.session.flush()
    reasons = eligibility.exclusions([world.firm], this_year, ProcurementMethod.SINGLE_SOURCE)[world.firm.id]
    assert not [r for r in reasons if "连续评价" in r], f"2025 绩效目标审核 refused to last year's reviewer: {reasons}"


# --- 9. the 人大 summary's budget figure leaves out the items cancelled on their result -----------------

def test_the_peoples_congress_summary_counts_the_funds_of_items_cancelled_on_their_result(world):
    """Rule: results are applied by cutting *or cancelling* an item's budget — seed 004 (轮台县): "对绩效评价结果
    不好的项目，下一年度相应削减预算或取消项目资金安排"; seed 003 (民丰县): 良 "予以调减或取消" (evalhub's
    results.good_action = cancel); seed 000: "大力削减低效无效资金". The bureau reports what its results
    application did to the 人大 (seed 000: "随决算草案报同级人大"; seed 003: "呈报县人大"). Who is hurt: the
    bureau and its 人大 — a ¥300万 item cancelled on its result (the strongest application there is) adds
    nothing to the summary's "依据评价结果调减预算 … 万元" nor to its table 四, which state 30.00 万元 for the one
    10 % cut beside it; the county's 备案 summary (figures) carries the same understated number. Cause:
    results/services.py confirm_entry leaves cut_amount empty for 取消, and figures_of / documents.py
    people_congress_summary sum cut_amount only."""
    import docx
    from evalhub.core.settings import set_setting

    set_setting(world.bz, "results.good_action", "cancel", world.bz_admin)
    fair = _with_result(world, score="75", grade=Grade.FAIR, amount_wan="300")
    good = _with_result(world, score="85", grade=Grade.GOOD, amount_wan="300")
    rows = {r.engagement_id: r for r in S.build_list(world.bz, 2025, world.bz_staff)}
    assert rows[good.id].proposed == [Measure.CANCEL.value]
    S.confirm_entry(rows[fair.id], world.bz_staff, measures=[Measure.REDUCE.value], cut_percent="10")
    S.confirm_entry(rows[good.id], world.bz_staff, measures=[Measure.CANCEL.value])
    document = docx.Document(io.BytesIO(documents.people_congress_summary(world.bz, 2025)))
    text = "\n".join(p.text for p in document.paragraphs)
    section_four = [[c.text for c in row.cells] for row in document.tables[-1].rows]
    states_cancelled = "330.00" in text or any("取消" in r[0] and "300.00" in r[1] for r in section_four)
    assert states_cancelled, (f"summary: {text.splitlines()[1]} | 四、整改和结果应用: {section_four}")
