"""Issue 15, the results loop at its service boundary: budget-unit accounts and their scope, findings →
rectification → verification → escalation on a frozen clock, the application proposal at its boundaries,
the list's confirmation and 备案, and the 人大 summary."""
from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import files, permissions
from evalhub.core.enums import Role
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import Notification, User
from evalhub.core.settings import set_setting
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState
from evalhub.results import documents
from evalhub.results import services as S
from evalhub.results.models import (
    EscalationLevel, FindingEscalation, FindingStatus, Measure, Verification,
)
from evalhub.review.models import Grade
from tests import factories


def _inbox(user) -> list[Notification]:
    return db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)
                              .order_by(Notification.id)).scalars().all()


# --- 1. budget-unit users ----------------------------------------------------------------------------

def test_a_bureau_admin_creates_a_unit_account_with_an_activation_link(world):
    unit = world.units["巴州统计局"]
    user, token = S.create_unit_account(world.bz_admin, unit, username="tjj.zhang", display_name="张科长")
    assert user.role == Role.BUDGET_UNIT and user.budget_unit_id == unit.id and user.bureau_id is None
    assert user.awaiting_activation and token  # the one account machinery: no password, a one-time link
    from evalhub.core import accounts

    assert accounts.check_link(token, accounts.LinkPurpose.ACTIVATION).ok
    with pytest.raises(PermissionDenied):  # staff, another bureau's admin: refused
        S.create_unit_account(world.bz_staff, unit, username="x1", display_name="甲")
    with pytest.raises(PermissionDenied):
        S.create_unit_account(world.kz_admin, unit, username="x2", display_name="乙")
    with pytest.raises(ValidationFailed):
        S.create_unit_account(world.bz_admin, unit, username="tjj.zhang", display_name="重名")


def test_a_unit_sees_its_subtree_not_a_sibling_nor_another_unit(world):
    top = factories.unit_user(world, "巴州统计局", "tjj")
    child = factories.unit_user(world, "巴州统计局普查中心", "pczx", parent="巴州统计局")
    sibling = factories.unit_user(world, "巴州民政局", "mzj")
    e_top = factories.contracted(world, unit="巴州统计局")
    e_child = factories.contracted(world, unit="巴州统计局普查中心")
    assert {e.id for e in S.unit_engagements(top)} == {e_top.id, e_child.id}  # 主管部门 sees its 所属单位
    assert {e.id for e in S.unit_engagements(child)} == {e_child.id}  # not the unit above it
    assert S.unit_engagements(sibling) == []
    assert permissions.can(top, "results.unit_engagement", e_child)
    assert not permissions.can(child, "results.unit_engagement", e_top)
    assert not permissions.can(sibling, "results.unit_engagement", e_top)
    # the procurement side stays closed to a unit: no engagement list, no bureau pages
    assert not permissions.can(top, "engagement.view", e_top) and not permissions.can(top, "results.list")


# --- 2. findings and rectification -------------------------------------------------------------------

def test_findings_are_entered_only_after_acceptance_by_the_contracted_firm(world):
    e = factories.contracted(world)
    with pytest.raises(Conflict):
        S.add_finding(e, world.firm_user, S.FindingInput(text="预算编制不细化", category="决策"))
    e.state = EngagementState.ACCEPTED  # fixture shortcut; the full walk is in the view and browser tests
    with pytest.raises(PermissionDenied):
        S.add_finding(e, world.other_firm_user, S.FindingInput(text="预算编制不细化", category="决策"))
    with pytest.raises(ValidationFailed) as bad:
        S.add_finding(e, world.firm_user, S.FindingInput(text="", category="无"))
    assert set(bad.value.fields) == {"text", "category"}
    f = S.add_finding(e, world.firm_user, S.FindingInput(kind="建议", text="细化绩效目标", category="决策", indicator="绩效目标"))
    assert f.status == FindingStatus.DRAFT and f.responsible_unit_id == e.budget_unit_id


def test_report_sections_give_the_firm_a_starting_point():
    text = "\n".join(["一、基本情况", "项目概况。", "六、存在的问题及原因分析", "（一）资金拨付进度滞后，年末结余较大。",
                      "（二）绩效目标设置不够细化。", "七、有关建议", "1. 加快资金拨付。", "八、其他需要说明的问题", "无。"])
    chapters = ["基本情况", "存在的问题及原因分析", "有关建议", "其他需要说明的问题"]
    sections = S.report_sections(text, chapters)
    assert sections[S.PROBLEM_CHAPTER] == ["资金拨付进度滞后，年末结余较大。", "绩效目标设置不够细化。"]
    assert sections[S.ADVICE_CHAPTER] == ["加快资金拨付。"]


def test_the_loop_from_confirmation_to_verification(world):
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    sibling = factories.unit_user(world, "巴州民政局", "mzj")
    with pytest.raises(PermissionDenied):  # the firm does not confirm its own findings
        S.confirm_findings(e, world.firm_user)
    rows = factories.confirmed_findings(world, e, n=2)
    assert all(f.status == FindingStatus.CONFIRMED and f.deadline for f in rows)
    assert [n.title for n in _inbox(unit)] == [f"{e.reference} 评价发现的问题已确认"]
    assert not _inbox(sibling)
    f = rows[0]
    with pytest.raises(PermissionDenied):
        S.submit_plan(f, sibling, "不是我的")
    with pytest.raises(Conflict):  # confirmed rows are frozen for the firm
        S.edit_finding(f, world.firm_user, S.FindingInput(text="改", category="过程"))
    S.submit_plan(f, unit, "由财务科负责，9 月底前完成支付。")
    assert f.status == FindingStatus.PLANNED
    with pytest.raises(ValidationFailed):  # evidence needs a file
        S.submit_evidence(f, unit, "已完成支付", [])
    S.submit_evidence(f, unit, "已完成支付", [files.Upload("支付凭证.txt", "支付凭证 2025-09-20".encode())])
    assert f.status == FindingStatus.SUBMITTED and len(f.evidence) == 1
    with pytest.raises(ValidationFailed):  # a partial verdict needs a note
        S.verify(f, world.bz_staff, "部分整改", "")
    with pytest.raises(PermissionDenied):  # the upper bureau supervises, it does not verify
        S.verify(f, world.region_admin, "整改到位", "")
    S.verify(f, world.bz_staff, "部分整改", "尚有一笔未支付")
    assert f.status == FindingStatus.RETURNED and f.verification == Verification.PARTIAL
    S.submit_evidence(f, unit, "剩余款项已支付", [files.Upload("补充凭证.txt", "补充凭证".encode())])
    S.verify(f, world.bz_staff, "整改到位", "")
    assert f.status == FindingStatus.CLOSED and not f.is_open
    with pytest.raises(Conflict):  # verified once
        S.verify(f, world.bz_staff, "整改到位", "")
    docx_bytes = documents.rectification_report(e)
    import docx

    text = "\n".join(p.text for p in docx.Document(io.BytesIO(docx_bytes)).paragraphs)
    assert "已整改到位 1 条" in text and "剩余款项已支付" in text and "（盖章）" in text


def test_overdue_items_escalate_reminder_then_interview_then_notice_on_a_frozen_clock(world):
    from evalhub.core.calendar import ensure_national_calendar

    ensure_national_calendar()
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    f = factories.confirmed_findings(world, e, n=1)[0]
    f.deadline = date(2025, 6, 2)  # a Monday
    db.session.flush()
    assert S.escalate_overdue(today=date(2025, 6, 2)) == []  # due today: not overdue yet
    first = S.escalate_overdue(today=date(2025, 6, 3))
    assert [x.level for x in first] == [EscalationLevel.REMINDER] and first[0].on_date == date(2025, 6, 3)
    assert S.escalate_overdue(today=date(2025, 6, 4)) == []  # each level once
    # 10 working days after 2 June 2025 is 16 June (no holiday in between): 约谈
    assert S.escalate_overdue(today=date(2025, 6, 13)) == []
    assert [x.level for x in S.escalate_overdue(today=date(2025, 6, 16))] == [EscalationLevel.INTERVIEW]
    set_setting(world.bz, "results.notice_after_days", 15, world.bz_admin)
    assert [x.level for x in S.escalate_overdue(today=date(2025, 6, 23))] == [EscalationLevel.NOTICE]
    rows = db.session.execute(sa.select(FindingEscalation).order_by(FindingEscalation.id)).scalars().all()
    assert [(r.level, r.on_date, r.overdue_days) for r in rows] == [
        (EscalationLevel.REMINDER, date(2025, 6, 3), 1), (EscalationLevel.INTERVIEW, date(2025, 6, 16), 10),
        (EscalationLevel.NOTICE, date(2025, 6, 23), 15)]
    titles = [n.title for n in _inbox(unit)]
    assert f"{e.reference} 整改事项已逾期" in titles and f"{e.reference} 整改逾期：约谈" in titles
    assert f"{e.reference} 整改逾期：通报" in [n.title for n in _inbox(world.bz_staff)]
    assert not [n for n in _inbox(world.firm_user) if "整改" in n.title]  # the unit's rectification is not the firm's


def test_confirming_findings_reads_the_units_to_tell_at_once_however_many_units(world):
    """Findings owed by several units, confirmed together: each unit (with its 主管部门's accounts) is told once, and
    who to tell is read for all of them at once (``units_users``), not the unit tree and accounts again per unit."""
    from tests.statements import recorded

    department = factories.unit_user(world, "巴州统计局", "tjj")
    n = iter(range(100))

    def confirm(count: int) -> list[str]:
        e = factories.contracted(world)
        e.state = EngagementState.ACCEPTED
        subs = {}
        for _ in range(count):
            name = f"巴州统计局下属单位{next(n)}"
            subs[name] = factories.unit_user(world, name, f"sub{name[-1]}", parent="巴州统计局")
            S.add_finding(e, world.firm_user, S.FindingInput(kind="问题", text=f"资金支付进度滞后{name}", category="过程",
                                                             responsible_unit_id=world.units[name].id))
        db.session.commit()
        with recorded() as seen:
            S.confirm_findings(e, world.bz_staff)
        for user in subs.values():
            assert [n.title for n in _inbox(user)] == [f"{e.reference} 评价发现的问题已确认"]
        assert len([n for n in _inbox(department) if n.title.startswith(e.reference)]) == count
        return [s for s in seen if "FROM user_account" in s or "FROM budget_unit" in s]

    one, three = confirm(1), confirm(3)
    assert len(one) == len(three), (len(one), len(three))


def test_the_escalation_job_reads_the_same_statements_however_many_findings_and_units_are_late(world):
    """The hourly job over a province's late findings, each owed by a unit of its own under a 主管部门: what it reads —
    the rows, the levels they had, the calendar, each unit's and the bureau's accounts, who already holds each
    reminder — is as many statements for four late findings as for one (before: a unit's accounts read at every
    message, the bureau's staff at every 约谈/通报, a dedupe check per person told, the calendar per row). Each unit,
    its department and the bureau's people are still told each level once, on the same keys."""
    from evalhub.core.calendar import ensure_national_calendar
    from tests.statements import recorded

    ensure_national_calendar()
    factories.unit_user(world, "巴州统计局", "tjj")
    n = iter(range(100))

    def run(count: int) -> list[str]:
        e = factories.contracted(world)
        e.state = EngagementState.ACCEPTED
        rows = factories.confirmed_findings(world, e, n=count)
        subs = {}
        for f in rows:
            name = f"巴州统计局下属单位{next(n)}"
            subs[f.id] = factories.unit_user(world, name, f"sub{name[-1]}", parent="巴州统计局").username
            f.responsible_unit_id, f.deadline = world.units[name].id, date(2025, 6, 2)
        db.session.commit()
        db.session.expire_all()
        with recorded() as seen:
            created = S.escalate_overdue(today=date(2025, 7, 2))  # 22 working days late: 催办, 约谈 and 通报 at once
            db.session.flush()
        told = set(db.session.execute(sa.select(User.username, Notification.dedupe_key, Notification.title)
                                      .join(User, User.id == Notification.user_id)
                                      .where(Notification.dedupe_key.is_not(None))).all())
        for f in rows:
            assert {(x.level, x.overdue_days) for x in created if x.finding_id == f.id} == {
                (EscalationLevel.REMINDER, 22), (EscalationLevel.INTERVIEW, 22), (EscalationLevel.NOTICE, 22)}
            mine = {t for t in told if t[1].split("-")[2] == str(f.id)}
            due, interview, notice = (f"rect-{level}-{f.id}-2025-06-02" for level in ("due", "interview", "notice"))
            unit, bureau = ("tjj", subs[f.id]), ("bz.admin", "bz.staff")
            assert mine == ({(who, due, f"{e.reference} 整改事项已逾期") for who in unit}
                            | {(who, interview, f"{e.reference} 整改逾期：约谈") for who in unit + bureau}
                            | {(who, notice, f"{e.reference} 整改逾期：通报") for who in unit + bureau})
        db.session.rollback()  # the rows of this run stay late for the next
        return [s for s in seen if not s.startswith("INSERT")]

    one, four = run(1), run(4)
    assert len(one) == len(four), (len(one), len(four))


@pytest.mark.parametrize("status", [FindingStatus.CLOSED, FindingStatus.SUBMITTED, FindingStatus.DRAFT])
def test_a_closed_or_awaiting_verification_finding_is_never_escalated(world, status):
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    f = factories.confirmed_findings(world, e, n=1)[0]
    f.deadline, f.status = date(2025, 6, 2), status
    db.session.flush()
    assert S.escalate_overdue(today=date(2025, 9, 1)) == []


# --- 3. the results-application list ------------------------------------------------------------------

@pytest.mark.parametrize("score,grade,expected", [
    ("79.99", Grade.GOOD, [Measure.REDUCE]),  # under 80 (自治区): reduced, even when the grade is 良
    ("80", Grade.GOOD, []),
    ("80.00", Grade.FAIR, [Measure.REDUCE]),  # 中 (克州): deducted by the percentage
    ("50", Grade.POOR, [Measure.REDUCE, Measure.NOTICE]),
    ("95", Grade.EXCELLENT, [Measure.PRIORITY]),
])
def test_the_proposal_follows_each_rule_at_its_boundary(world, score, grade, expected):
    proposal = S.propose(world.bz, Decimal(score), grade, open_findings=0)
    assert proposal.measures == expected
    assert proposal.percent == (Decimal("10") if Measure.REDUCE in expected else None)


def test_a_bureau_changes_the_rules_by_its_settings(world):
    set_setting(world.lt, "results.good_action", "cancel", world.lt_admin)  # 民丰县-style: 良 cancelled
    set_setting(world.lt, "results.cut_below_score", 85, world.lt_admin)
    set_setting(world.lt, "results.cut_percent", "15", world.lt_admin)
    assert S.propose(world.lt, Decimal("86"), Grade.GOOD, 0).measures == [Measure.CANCEL]
    p = S.propose(world.lt, Decimal("84.99"), Grade.GOOD, 2)
    assert p.measures == [Measure.CANCEL, Measure.RECTIFY] and p.percent is None  # cancelling covers the cut
    assert S.propose(world.bz, Decimal("86"), Grade.GOOD, 0).measures == []  # a sibling keeps its own rules


def test_build_confirm_with_a_reason_when_departing_and_file_with_the_prefecture(world):
    low = factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局", score="79.99", grade=Grade.FAIR)
    good = factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局", score="92", grade=Grade.EXCELLENT)
    factories.confirmed_findings(world, low, n=2, staff=world.lt_staff)
    with pytest.raises(PermissionDenied):
        S.build_list(world.lt, 2025, world.bz_staff)  # the prefecture reads, it does not build a county's list
    rows = S.build_list(world.lt, 2025, world.lt_staff)
    by = {r.engagement_id: r for r in rows}
    assert by[low.id].proposed == ["reduce", "rectify"] and by[low.id].proposed_percent == Decimal("10")
    assert by[good.id].proposed == ["priority"]
    with pytest.raises(ValidationFailed) as no_reason:
        S.confirm_entry(by[low.id], world.lt_staff, measures=["reduce", "rectify"], cut_percent="20")
    assert "reason" in no_reason.value.fields
    S.confirm_entry(by[low.id], world.lt_staff, measures=["reduce", "rectify"], cut_percent="20", reason="连续两年为中")
    assert by[low.id].cut_amount == Decimal("600000.00")  # 20% of 300 万元
    S.confirm_entry(by[good.id], world.lt_staff, measures=["priority"])  # as proposed: no reason needed
    with pytest.raises(PermissionDenied):
        S.file_list(world.lt, 2025, world.lt_staff)  # filing is the admin's
    filing = S.file_list(world.lt, 2025, world.lt_admin)
    assert filing.filed_with_id == world.bz.id and filing.summary["reduced"] == "600000.00"
    with pytest.raises(Conflict):
        S.confirm_entry(by[good.id], world.lt_staff, measures=[])  # frozen once filed
    table = S.county_table(world.bz, 2025, world.bz_staff)
    lt = next(r for r in table if r["bureau"].id == world.lt.id)
    assert lt["filing"] is not None and lt["findings"] == 2 and lt["closed"] == 0 and lt["rate"] == Decimal("0.0")
    assert lt["reduced"] == Decimal("600000.00")
    previous = S.previous_applications([(low.budget_unit_id, low.name, 2026), (low.budget_unit_id, low.name, 2025),
                                        (good.budget_unit_id, "另一个项目", 2026)])
    assert previous == {(low.budget_unit_id, low.name, 2026): by[low.id]}  # next year's plan sees it, nothing else
    # a sibling county (库尔勒市) sees none of it
    assert not permissions.can(world.krl_admin, "results.view_bureau", world.lt)
    with pytest.raises(PermissionDenied):
        S.county_table(world.lt, 2025, world.krl_admin)


def test_a_list_with_unconfirmed_rows_is_not_filed(world):
    factories.accepted_with_result(world, bureau_key="lt", unit="轮台县医疗保障局")
    S.build_list(world.lt, 2025, world.lt_staff)
    with pytest.raises(ValidationFailed):
        S.file_list(world.lt, 2025, world.lt_admin)
    with pytest.raises(ValidationFailed):  # the prefecture itself files with nobody here
        S.file_list(world.bz, 2025, world.bz_admin)


# --- 4. the 人大 summary -------------------------------------------------------------------------------

def test_the_peoples_congress_summary_opens_and_its_totals_are_right(world):
    import docx

    a = factories.accepted_with_result(world, score="79.99", grade=Grade.FAIR, amount_wan="300")
    b = factories.accepted_with_result(world, score="93", grade=Grade.EXCELLENT, amount_wan="200")
    rows = factories.confirmed_findings(world, a, n=3)
    rows[0].status = FindingStatus.CLOSED
    db.session.flush()
    entries = {r.engagement_id: r for r in S.build_list(world.bz, 2025, world.bz_staff)}
    S.confirm_entry(entries[a.id], world.bz_staff, measures=["reduce", "rectify"], cut_percent="10")
    document = docx.Document(io.BytesIO(documents.people_congress_summary(world.bz, 2025)))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "对 2 个评价对象" in text and "涉及资金 500.00 万元" in text
    assert "问题和建议 3 条，已整改到位 1 条，整改率 33.3%" in text and "调减预算 30.00 万元" in text
    cells = [[c.text for c in row.cells] for t in document.tables for row in t.rows]
    assert ["过程", "3"] in cells and ["优", "1"] in cells and ["中", "1"] in cells
    assert len(document.inline_shapes) == 2  # the two charts
    assert b.name in text or any(b.name in row for row in cells)


# --- 5. 双公开: the unit's half ---------------------------------------------------------------------------

def test_a_report_published_by_one_side_only_is_overdue_after_the_bureaus_days(world):
    from datetime import datetime

    from evalhub.review.models import Publication

    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    db.session.add(Publication(engagement_id=e.id, classified=False, published_at=datetime(2025, 9, 1, 4, 0)))
    db.session.flush()
    # the 20th day is Sunday 21 September: the period ends on Monday the 22nd (民法典 第二百零三条)
    assert S.one_sided_publications(world.bz_staff, today=date(2025, 9, 22)) == []  # not yet
    late = S.one_sided_publications(world.bz_staff, today=date(2025, 9, 23))
    assert [x[0].id for x in late] == [e.id] and "被评价单位" in late[0][1]
    assert S.one_sided_publications(world.kz_staff, today=date(2025, 9, 23)) == []  # another prefecture's
    with pytest.raises(PermissionDenied):
        S.record_unit_publication(e, factories.unit_user(world, "巴州民政局", "mzj"), "https://x.gov.cn/a", "2025-09-10")
    with pytest.raises(ValidationFailed) as bad:
        S.record_unit_publication(e, unit, "javascript:alert(1)", "2099-01-01")
    assert set(bad.value.fields) == {"url", "published_on"}
    S.record_unit_publication(e, unit, "https://www.xjbz.gov.cn/tjj/2025/report.html", "2025-09-10")
    assert S.one_sided_publications(world.bz_staff, today=date(2025, 9, 23)) == []  # both halves now


def test_a_bureau_published_report_is_late_after_its_own_bureaus_days(world):
    """On a county whose own setting is shorter than the prefecture's, each engagement is held to the days its own
    bureau set. Only the bureau's publication starts the count: the unit publishes after it (seed 000, 脱密后双公开),
    so a unit's publication alone is never on record, and a withheld report is never late."""
    from datetime import datetime

    from evalhub.review.models import Publication

    set_setting(world.lt, "results.dual_publication_days", "5", world.lt_admin)
    county = factories.contracted(world, bureau_key="lt", unit="轮台县医疗保障局")
    prefecture = factories.contracted(world)
    classified = factories.contracted(world)
    for e in (county, prefecture, classified):
        e.state = EngagementState.ACCEPTED
    db.session.add_all([Publication(engagement_id=county.id, classified=False, published_at=datetime(2025, 9, 1, 2, 0)),
                        Publication(engagement_id=prefecture.id, classified=False, published_at=datetime(2025, 9, 1, 2, 0)),
                        Publication(engagement_id=classified.id, classified=True, published_at=None)])
    db.session.flush()
    # 5 days: Saturday 6 September, so the period ends on Monday the 8th (民法典 第二百零三条)
    assert S.one_sided_publications(world.bz_staff, today=date(2025, 9, 8)) == []  # not yet
    late = S.one_sided_publications(world.bz_staff, today=date(2025, 9, 9))
    assert [(e.id, text) for e, text in late] == [(county.id, "被评价单位（轮台县医疗保障局）未公开；财政部门已于 2025-09-01 公开")]
    # 20 days: Sunday 21 September, ended on Monday the 22nd
    assert [e.id for e, _ in S.one_sided_publications(world.bz_staff, today=date(2025, 9, 22))] == [county.id]
    assert [e.id for e, _ in S.one_sided_publications(world.bz_staff, today=date(2025, 9, 23))] == [county.id, prefecture.id]
    assert [e.id for e, _ in S.one_sided_publications(world.lt_staff, today=date(2025, 9, 23))] == [county.id]
    S.record_unit_publication(county, factories.unit_user(world, "轮台县医疗保障局", "ltyb"),
                              "https://www.lt.gov.cn/yb/report.html", "2025-09-20")
    assert [e.id for e, _ in S.one_sided_publications(world.bz_staff, today=date(2025, 9, 23))] == [prefecture.id]


# --- 6. 征求意见: fact confirmation before the panel --------------------------------------------------------

def test_fact_confirmation_is_answered_in_time_responded_to_and_attached_to_the_report(world):
    from evalhub.core.calendar import ensure_national_calendar

    ensure_national_calendar()
    e = factories.in_fieldwork(world)
    unit = factories.unit_user(world, "巴州统计局", "tjj")
    draft = files.Upload("报告初稿.docx", factories.docx_bytes("评价报告初稿\n存在的问题：资金支付滞后"))
    with pytest.raises(PermissionDenied):  # only the contracted firm sends its draft
        S.send_for_confirmation(e, world.other_firm_user, draft)
    row = S.send_for_confirmation(e, world.firm_user, draft, today=date(2025, 9, 26))  # a Friday before 国庆
    assert row.due_on == date(2025, 10, 10)  # 28 Sep (a make-up Sunday), 29, 30 Sep, then 1–8 Oct off: 9, 10 Oct
    assert [n.title for n in _inbox(unit)] == [f"{e.reference} 评价报告征求意见"]
    with pytest.raises(Conflict):  # one draft at a time while the unit may still answer
        S.send_for_confirmation(e, world.firm_user, draft, today=date(2025, 9, 29))
    with pytest.raises(PermissionDenied):
        S.answer_confirmation(row, factories.unit_user(world, "巴州民政局", "mzj"), "no", "不同意", today=date(2025, 9, 29))
    with pytest.raises(ValidationFailed):  # an objection says what
        S.answer_confirmation(row, unit, "no", "", today=date(2025, 9, 29))
    with pytest.raises(Conflict):  # too late
        S.answer_confirmation(row, unit, "no", "资金到位率计算口径有误", today=date(2025, 10, 11))
    S.answer_confirmation(row, unit, "no", "资金到位率计算口径有误", today=date(2025, 10, 10))
    assert [n.title for n in _inbox(world.firm_user)][-1] == f"{e.reference} 被评价单位已答复征求意见"
    S.respond_to_confirmation(row, world.firm_user, "已按单位提供的拨付凭证重新计算。")
    assert row.state == "机构已回应"
    submission = factories.submit_report(e)
    db.session.refresh(row)
    assert row.submission_id == submission.id  # attached: the panel sees the exchange
    from evalhub.review.services import expert_context_for

    assert expert_context_for(submission)["fact_confirmations"] == [row]
