"""Audit of what the pages and messages say (the user-visible text): a number, a grade line or a score that a
bureau, firm, evaluated unit or the public reads must be the one the rules applied — never a default the
bureau has changed, never a rounded figure that contradicts the decision stated beside it.

Each test here FAILS on the current code because of the defect its docstring names.
"""
from __future__ import annotations

import re
from decimal import Decimal

import sqlalchemy as sa

from evalhub.core import draws, files
from evalhub.core.models import Notification
from evalhub.extensions import db
from tests import factories

D = Decimal


def text(response) -> str:
    return response.get_data(as_text=True)


def _accept_and_score(panel, totals: list[str]) -> None:
    """Every member of ``panel`` accepts and submits; member i's total is ``totals[i]`` (full points on every
    item but the largest, which gives up the difference)."""
    from evalhub.review import services as R
    from evalhub.review.models import InvitationStatus

    for invitation in list(panel.invitations):
        if invitation.status == InvitationStatus.INVITED:
            R.respond(invitation, factories.expert_user(invitation.expert_id), accept=True, declaration_signed=True)
    seated = [i for i in panel.invitations if i.status == InvitationStatus.ACCEPTED]
    assert len(seated) == len(totals)
    for invitation, total in zip(seated, totals):
        member = factories.expert_user(invitation.expert_id)
        items = invitation.review.rubric.items
        points = {i.id: i.max_points for i in items}
        largest = max(items, key=lambda i: i.max_points)
        points[largest.id] -= sum(points.values()) - D(total)
        R.save_review(invitation.review, member, scores=points, comments={i.id: "意见较具体" for i in items},
                      opinion="总体意见：请按评分意见补充完善。")
        R.submit_review(invitation.review, member)


def _stated_scores_at_or_above(message: str, mark: Decimal) -> list[str]:
    """The scores a message states (“得分 90.00 分”, “评审 90.00 分”) that are at or above ``mark``."""
    return [m for m in re.findall(r"(?:得分|评审)\s*([0-9]+(?:\.[0-9]+)?)\s*分", message) if D(m) >= mark]


# --- 1. a score rounded up to the pass mark, stated as the reason for a return --------------------------

def test_the_units_return_notice_never_says_90_00_is_below_90(world):
    """Rule: a self-evaluation report under the pass mark (90) goes back to the unit, decided on the exact
    panel score — 90, 90, 89.99 → 89.9967 fails although it shows as 90.00 (docs/rules.md, Review and Results:
    self-evaluation pass mark; seed 000, 克州 2024 计划第 7 项 “低于 90 分的退回整改”). The house's own
    `_score_words` states the unrounded figure wherever rounding would hide the fail (the letter does).

    Defect: review/services.py `_return_self_evaluation` emits `self_evaluation_returned` with
    score=panel.score (the rounded 90.00), so the 主管部门 reads “自评报告经专家评审得分 90.00 分，低于 90 分，请按意见
    整改” — the system's own sentence contradicts itself (the letter appended after it may explain the rounding,
    but it is cut at 500 characters and the bureau may have edited that explanation out before sending)."""
    from evalhub.registry.models import Expert
    from evalhub.results import services as S
    from evalhub.review import services as R
    from evalhub.review.models import ReviewPanel

    unit_user = factories.unit_user(world, "巴州统计局", "tjj.zpj.ui")
    for other in db.session.execute(sa.select(Expert)).scalars():
        other.available = False
    for i in range(3):
        x = factories.expert(world.bz, name=f"自评评审专家{i}", employer=f"新疆某高校{i}")
        factories.expert_user(x.id)
    db.session.flush()
    se = S.submit_self_evaluation(unit_user, world.units["巴州统计局"], year=2025, name="中央财政统计能力建设补助资金",
                                  upload=files.Upload("自评报告.docx", factories.docx_bytes("中央转移支付项目自评报告")))
    record = R.form_panel(se, world.bz_staff)
    panel = draws.run_witnessed(record) if not isinstance(record, ReviewPanel) else record
    db.session.flush()
    panel = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.self_evaluation_id == se.id)).scalar_one()
    _accept_and_score(panel, ["90", "90", "89.99"])
    db.session.refresh(panel)
    assert panel.passed is False and panel.score == D("90.00")  # the fixture reached the case
    R.send_letter(panel, world.bz_staff, panel.letter)
    db.session.commit()

    body = db.session.execute(sa.select(Notification.body).where(
        Notification.user_id == unit_user.id, Notification.title.contains("退回整改"))).scalar_one()
    assert not _stated_scores_at_or_above(body.split("\n")[0], D("90")), body


def test_the_lead_evaluators_points_record_never_says_90_00_is_below_90(world, client, login):
    """Rule: a report is returned below the pass mark on the exact panel score (90, 90, 89.99 → 89.9967) and the
    lead evaluator is charged points for it (docs/rules.md, Review: report pass mark; People: points for each
    report returned, 记分办法). The points are a public-credit penalty the person may contest: the record must
    state why.

    Defect: review/services.py `send_letter` writes the points note (and the timeline note) with panel.score,
    the rounded figure: the person's record on /people/<id>, which the firm reads, says “第 1 轮评审 90.00 分，
    低于通过线 90 分，退回整改” — a penalty whose stated ground contradicts itself. `_score_words` (the unrounded
    89.9967 beside it) is used for the letter but not here."""
    from evalhub.registry.models import Expert, StaffPoint
    from evalhub.review import services as R

    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    for other in db.session.execute(sa.select(Expert)).scalars():
        other.available = False
    for i in range(3):
        x = factories.expert(e.bureau, name=f"报告评审专家{i}", employer=f"新疆某学院{i}", fields=[e.field])
        factories.expert_user(x.id)
    db.session.flush()
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    _accept_and_score(panel, ["90", "90", "89.99"])
    assert panel.passed is False and panel.score == D("90.00")
    R.send_letter(panel, world.bz_staff, panel.letter)
    db.session.commit()

    point = db.session.execute(sa.select(StaffPoint)).scalar_one()
    login(world.firm_user)
    page = text(client.get(f"/people/{point.staff_id}"))
    assert point.note in page  # the firm reads this very note
    assert not _stated_scores_at_or_above(point.note, D("90")), point.note


# --- 2. the public ratings page states grade lines the bureau may have changed --------------------------

def test_the_public_ratings_page_states_the_grade_lines_the_bureau_applied(world, client):
    """Rule: the grade cut-offs A / B / C are each bureau's settings (`credit.cut_a` …, default 90/80/60 — no
    national cut-offs are published; docs/rules.md, Credit rating; DOMAIN §6), and ratings are published for
    the public to read (seed 000 “杜绝劣币驱逐良币”).

    Defect: templates/credit/public_list.html hard-codes “A 级 ≥ 90 分，B 级 80–90 分，C 级 60–80 分”. 巴州 sets
    its A line at 85 and rates a firm 87 → A; the public page then lists an A at 87 under a legend saying A is
    ≥ 90 — the public (and the firm's competitors) read a rating that contradicts the page's own rule."""
    from evalhub.core.settings import set_setting
    from evalhub.credit.models import CreditGrade, CreditRating, RatingStatus
    from evalhub.core.models import utcnow

    set_setting(world.bz, "credit.cut_a", 85, world.bz_admin)
    rating = CreditRating(bureau_id=world.bz.id, firm_id=world.firm.id, year=2025, status=RatingStatus.FINAL,
                          rated=True, total=D("87.00"), grade=CreditGrade.A, components=[],
                          published_at=utcnow(), finalised_at=utcnow())
    db.session.add(rating)
    db.session.commit()
    page = text(client.get("/public/ratings"))
    assert f'data-testid="public-rating-{rating.id}"' in page and "87" in page  # the A at 87 is listed
    assert "A 级 ≥ 90 分" not in page


# --- 3. the 人大 summary states a rectification rate of 0 % where there is nothing to rectify --------------

def test_the_peoples_congress_summary_does_not_report_a_0_percent_rectification_rate_for_no_findings(world):
    """Rule: the year's summary to the 人大 reports the rectification rate of the findings (整改率 = closed ÷
    findings; seed 000 “整改”, seed 004 轮台县 “明确整改要求和时限”); a year with no finding has no rate — the
    same document's own table says “—” (results/documents.py).

    Defect: results/documents.py `people_congress_summary` writes the opening paragraph with
    `f['rate'] if f['rate'] is not None else 0`: a bureau whose evaluations found nothing to rectify tells the
    people's congress “发现问题和建议 0 条，已整改到位 0 条，整改率 0%” — a 0 % rate reads as nothing rectified, and
    contradicts the table below it (整改率 —)."""
    import io

    import docx

    from evalhub.results import documents

    factories.accepted(world)
    db.session.commit()
    document = docx.Document(io.BytesIO(documents.people_congress_summary(world.bz, 2025)))
    paragraphs = "\n".join(p.text for p in document.paragraphs)
    cells = [[c.text for c in row.cells] for t in document.tables for row in t.rows]
    assert "问题和建议 0 条" in paragraphs and ["整改率（%）", "—"] in cells  # the case: no findings
    assert "整改率 0%" not in paragraphs, paragraphs


# --- 4. the API's description of a result notice states a challenge period the rules do not apply ---------

def test_the_openapi_description_of_a_result_notice_states_the_challenge_period_applied(client):
    """Rule: the challenge period after a result notice runs from the end of its 1-working-day notice period,
    so it ends 1 + N working days after publication, N the bureau's `procurement.challenge_days` (default 7)
    (docs/rules.md, Procurement; 政府采购法 第五十二条, 实施条例 第五十三条(三), 财政部令第87号 第六十九条). The
    OpenAPI document is what API clients read as the rule (docs/architecture.md: “the document clients read is
    the rule applied”).

    Defect: evalhub/procurement/api.py `RESULT_NOTICE` describes the notice as “质疑期自发布起 7 个工作日” — one
    working day short of the period the service computes (`challenge_until`), and fixed at 7 whatever the bureau
    set: a supplier's system that computes its deadline from the published description files a day early, or
    treats a valid challenge on the last day as late."""
    document = client.get("/api/v1/openapi.json").get_json()
    description = document["components"]["schemas"]["ResultNotice"]["description"]
    assert "自发布起 7 个工作日" not in description, description


# --- 5. an open tender's result notice names a 成交 supplier -------------------------------------------------

def test_an_open_tenders_result_notice_names_the_winning_bidder_and_bid_amount(world):
    """Rule: an open tender ends in a 中标 (winning bid): its notice is the 中标结果公告 naming the 中标供应商 and the
    中标金额 (政府采购法 第二十八、三十六条 and 实施条例 第四十三条 distinguish 中标 for tenders from 成交 for the other
    methods; 财政部令第87号 第六十九条: “中标结果公告内容应当包括…中标供应商名称、地址和中标金额”). The result notice
    is published at the award (docs/rules.md, Procurement) and kept as published.

    Defect: procurement/services.py `award_procurement` writes every notice as “采用公开招标方式，成交供应商：…，成交金
    额：…万元” — the legal notice of an open tender, read by every bidder and the public, names the wrong legal act
    (成交 is the result of 竞争性磋商/谈判/单一来源), so the published 中标公告 does not say who won the tender."""
    from datetime import timedelta

    from evalhub.core.models import utcnow
    from evalhub.procurement import services as P
    from evalhub.procurement.models import BidStatus, ProcurementMethod as M

    e = factories.engagement(world, amount_wan="600")
    p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(
        method=M.OPEN_TENDER, title="", ceiling_price_wan="300", price_weight="30",
        bid_deadline=factories.bid_deadline(world.bz, 21)), world.bz_staff))
    bidders = {n: factories.bidder(world, f"{n}评价咨询有限公司") for n in "甲乙丙"}
    for name, price in [("甲", "260"), ("乙", "270"), ("丙", "280")]:
        factories.bid(p, bidders[name][1], bidders[name][2], price)
    p.bid_deadline = utcnow() - timedelta(seconds=1)
    P.open_bids(p, world.bz_staff)
    factories.committee_clears_flags(p, world.bz_staff)
    members = P.enter_committee(p, ["评委甲", "评委乙", "评委丙", "评委丁", "评委戊"], world.bz_staff)
    points = {"甲": 90, "乙": 80, "丙": 70}
    for member in members:
        P.record_technical_scores(p, member, {
            b.id: {i.id: D(points[b.firm.name[0]]) * i.max_points / 100 for i in p.rubric}
            for b in p.bids if b.status == BidStatus.SUBMITTED}, world.bz_staff)
    factories.witnessed(P.award_procurement(p, world.bz_staff, "综合得分第一"))
    db.session.commit()

    notice = p.notice
    assert notice is not None and "公开招标" in notice.text  # the case: an open tender, awarded
    assert "中标供应商" in notice.text and "成交供应商" not in notice.text, notice.text


# --- 6. a person's record states another bureau's limit as “本局设置” ---------------------------------------

def test_a_persons_record_shows_the_reading_bureaus_limit_it_calls_its_own(world, client, login):
    """Rule: the points limit (`people.points_threshold`, default 20) is a bureau setting; “the threshold and window
    are the settings of the bureau that would name the person” (registry/people.py; docs/rules.md, People:
    limit — a person at it “cannot be named lead or team member on an engagement anywhere in the region”, the
    reason naming the total and the limit; 记分办法 第二条).

    Defect: registry/people_views.py `person_record` computes the standing with the settings of the firm's
    library bureau (`staff.firm.bureau`) and templates/registry/person.html labels them “（本局设置）”. 轮台县 has
    set its limit at 10; a 巴州 firm's evaluator has 10 points, so 轮台县 may not name them (`naming_block` says
    so). 轮台县's officer opening the person's record reads “状态 警示 … 限制分数 20 分（本局设置）” — neither its
    limit nor the block it will meet when it names them."""
    from evalhub.core.settings import set_setting
    from evalhub.registry import people
    from evalhub.registry.models import PointKind

    _firm, _user, staff = factories.bidder(world, "某评价咨询有限公司")
    set_setting(world.lt, "people.points_threshold", 10, world.lt_admin)
    people.add_points(staff, PointKind.FINDING_SERIOUS, bureau=world.bz, source_type="inspection_finding",
                      source_id=1, note="工作底稿缺少抽样记录", actor=world.bz_staff)
    db.session.commit()
    assert people.naming_block(staff, world.lt) is not None  # 轮台县 may not name this person

    login(world.lt_staff)
    page = text(client.get(f"/people/{staff.id}"))
    assert 'data-testid="person-standing"' in page
    standing = page.split('data-testid="person-standing"', 1)[1].split("记分记录", 1)[0]
    assert "限制分数 20 分（本局设置）" not in standing, standing

