"""Audit of complaints (投诉举报), challenges (质疑) and inspections (监督检查), walked as a complainant, a bureau
officer, an inspector, the inspected firm and the public.

Each test here FAILS on the current code because of the defect its docstring names.
"""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from evalhub.core.models import Notification, User
from evalhub.extensions import db
from tests import factories


def text(response) -> str:
    return response.get_data(as_text=True)


def inbox(user: User) -> list[Notification]:
    return db.session.execute(sa.select(Notification).where(Notification.user_id == user.id)
                              .order_by(Notification.id)).scalars().all()


# --- 1. the challenger is never told of its right to complain (投诉) ---------------------------------------

def test_a_challenge_answer_tells_the_challenger_of_its_right_to_complain(world, client, login):
    """Rule: 财政部令第94号《政府采购质疑和投诉办法》第十五条: a challenge answer (质疑答复) contains "(四)告知质疑
    供应商依法投诉的权利"; 政府采购法 第五十五条 / 94号令 第十七条: a challenger not satisfied with the answer may
    complain to the finance department within 15 working days after the answer period.

    Defect: the answer the firm receives — the ``challenge_answered`` notification
    (core/notifications.py MATRIX: "贵机构对 {name} 的质疑已答复：{outcome}。{answer}") sent by
    procurement/services.py ``answer_challenge``, and the challenge block of the firm's bid page
    (templates/procurement/_notice.html ``challenge_line``) — never mentions 投诉: a supplier whose challenge is
    dismissed is not told that it may complain, to whom, or by when."""
    from evalhub.procurement import services as P
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    challenger = bidders["乙"][1]
    challenge = P.file_challenge(p, challenger, "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "dismissed", "经核查，技术分计算无误，质疑不成立。")
    db.session.commit()
    told = [n for n in inbox(challenger) if "质疑答复" in n.title]
    assert told, "the challenger is told of the answer"
    login(challenger)
    page = text(client.get(f"/procurements/{p.id}/bid"))
    assert "技术分计算无误" in page  # the answer is on the firm's page
    assert "投诉" in told[0].body or "投诉" in page, (
        "neither the answer notification nor the firm's page tells the challenger of its right to complain (投诉)")


# --- 2. the other suppliers are not told of an upheld challenge -----------------------------------------

def test_an_upheld_challenge_that_reruns_the_procurement_is_told_to_the_other_bidders(world):
    """Rule: 财政部令第94号 第十三条: the purchaser answers a challenge in writing within 7 working days "并以书面
    形式通知质疑供应商和其他有关供应商"; 第十六条: an upheld challenge may void the result and rerun the procurement.

    Defect: procurement/services.py ``answer_challenge`` tells only the challenger (``challenge_answered``) and
    ``_revoke_award`` only the revoked winner (``award_revoked``). 丙, a third bidder whose bid dies with the rerun
    (the procurement is set to 流标), hears nothing at all: its bid page still shows the old procurement and it does
    not learn that it must bid again."""
    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementStatus
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    third = bidders["丙"][1]
    before = len(inbox(third))
    challenge = P.file_challenge(p, bidders["乙"][1], "评审委员会未按采购文件规定的评分标准打分，请求重新采购。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld", "经核查，评审委员会未按评分标准打分，质疑成立。", "rerun")
    db.session.commit()
    assert p.status == ProcurementStatus.FAILED  # the procurement is rerun: 丙's bid is void
    after = inbox(third)[before:]
    assert after, "丙, another supplier of the procurement, is told nothing of the answer or of the rerun"


# --- 3. the public revocation publishes the answer, which names the challenger ------------------------------

def test_the_public_revocation_does_not_publish_the_answer_addressed_to_the_challenger(world, client):
    """Rule: docs/rules.md (Procurement): "What is public of a procurement names no challenger (a revoked notice says
    质疑成立, not who)" (财政部令第94号: challenges are the challenger's and the bureau's); and 94号令 第十五条(一):
    the written answer to a challenge contains "质疑供应商的姓名或者名称".

    Defect: procurement/services.py ``answer_challenge`` passes the bureau's whole answer to ``_revoke_award`` as the
    public ``revoked_reason`` (f"质疑成立：{answer}"), shown on /public/notices/<id> and /public/procurements/<id>.
    The one answer box holds the answer the law addresses to the challenger — an answer written as 94号令 requires
    ("乙公司：…") puts the challenger's name on the public pages and in the public OCDS package."""
    from evalhub.procurement import services as P
    from tests.test_procurement_law import EVIDENCE, _awarded

    p, bidders = _awarded(world)
    loser = bidders["乙"][0]
    loser.name = "长风绩效评价咨询有限公司"
    db.session.flush()
    challenge = P.file_challenge(p, bidders["乙"][1], "技术分计算有误，请求重新评审。", EVIDENCE)
    P.answer_challenge(challenge, world.bz_staff, "upheld",
                       f"{loser.name}：你公司 {date.today():%Y-%m-%d} 提交的质疑函收悉。经核查，技术分计算确有错误，质疑成立，"
                       "将组织原评审委员会重新评审。", "reevaluate")
    db.session.commit()
    for url in (f"/public/notices/{p.notices[0].id}", f"/public/procurements/{p.id}"):
        page = client.get(url)
        assert page.status_code == 200
        assert loser.name not in text(page), f"{url} names the challenger"


# --- 4. a severity with no credit consequence -------------------------------------------------------------

def test_a_serious_finding_made_after_the_years_rating_is_final_still_counts_in_a_rating(world):
    """Rule: DOMAIN §7: findings carry a severity and "All feed the credit rating"; DOMAIN §6 / docs/rules.md
    (Credit): the supervision component deducts by severity (serious 8 of 15 points). A random inspection of a
    year's completed engagements (seed 000, 不定向抽查) naturally runs after that year's rating.

    Defect: credit/services.py ``_year_records`` counts a finding only in the rating of the year of the work it
    names (``_work_year``), and a FINAL rating is never recomputed; ``_late`` carries a late finding to the year it
    was made in for INTENTIONAL findings only. So a 严重 finding on 2025 work, made after the 2025 rating became
    final, counts in no rating at all — neither 2025's (final) nor 2026's (the work is not 2026's): a serious
    violation with no credit consequence. Expected: it reaches the 2026 rating (as intentional ones do)."""
    from evalhub.credit import services as C
    from evalhub.credit.models import CreditRating
    from evalhub.procurement.models import EngagementState as S
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    work_2025 = factories.contracted(world, year=2025)
    work_2025.state = S.ACCEPTED
    work_2026 = factories.contracted(world, year=2026, unit="巴州民政局")
    work_2026.state = S.ACCEPTED
    db.session.flush()
    C.compute(world.bz, 2025, world.bz_admin, today=date(2026, 3, 1))
    C.publish(world.bz, 2025, world.bz_admin, today=date(2026, 3, 2))
    C.finalise(world.bz, 2025, world.bz_admin, today=date(2026, 3, 20))
    # the 2025 random inspection (here a targeted case on the same work) finds a serious problem afterwards
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="抽查发现：报告评分依据缺失",
                       engagement=work_2025)
    finding = V.add_finding(case, factories.recorder(case), severity=Severity.SERIOUS,
                            description="工作底稿缺少现场核查记录，报告评分无依据")
    db.session.flush()
    C.compute(world.bz, 2026, world.bz_admin, today=date(2026, 12, 31))
    ratings = db.session.execute(sa.select(CreditRating).where(CreditRating.firm_id == world.firm.id)).scalars().all()
    assert {r.year for r in ratings} == {2025, 2026}
    assert next(r for r in ratings if r.year == 2026).rated  # the firm is rated for 2026: a deduction had a place
    counted = [r.year for r in ratings for c in (r.components or []) for rec in c.get("records", [])
               if rec.get("ref") == f"finding:{finding.id}"]
    assert counted, "the serious finding is deducted in no rating: neither 2025's (final) nor 2026's"


# --- 5. a finding the firm could not answer is recorded as not rectified ------------------------------------

def test_a_minor_finding_the_firm_was_never_asked_to_answer_is_not_recorded_as_unrectified(world, client, login):
    """Rule: docs/rules.md (Supervision): "a finding counts as rectified at the close when an answer came after it
    was recorded"; seed 000 asks the firm to "登录系统提交说明及整改情况". A firm is judged on a rectification it
    was asked for and could give.

    Defect: supervision/services.py ``add_finding`` asks the firm to answer only when the finding has measures or is
    above 轻微; a 轻微 finding without measures leaves the case 检查中, ``respond`` refuses the firm ("该检查当前不需要
    机构回复", 409), and ``close`` then sets ``rectified = False``: the firm's page and the API record the finding as
    未整改 — a rectification failure the firm was never asked about and was not allowed to answer."""
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CHECKLIST, Severity, Trigger

    e = factories.contracted(world)
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索：报告格式不规范", engagement=e)
    recorder = factories.recorder(case)
    finding = V.add_finding(case, recorder, severity=Severity.MINOR, description="报告目录页码与正文不一致")
    db.session.commit()
    login(world.firm_user)
    answer = client.post(f"/inspections/{case.id}/response", data={"text": "已核对目录页码并重新排版，更正后的报告已提交。"})
    assert answer.status_code == 409  # the firm may not answer this finding
    V.record_checklist(case, recorder, {key: (True, "") for key, _ in CHECKLIST})
    V.close(case, recorder, "报告存在轻微格式问题，其余符合要求。")
    db.session.commit()
    page = text(client.get(f"/inspections/{case.id}"))
    assert not (finding.rectified is False and "未整改" in page), (
        "a 轻微 finding the firm was never asked (nor allowed) to answer is shown as 未整改")


# --- 6. a 通报批评 that is published nowhere ------------------------------------------------------------------

def test_a_public_criticism_measure_is_published_with_the_campaign_results(world, client):
    """Rule: DOMAIN §7: findings "lead to measures: order to correct, interview (约谈), public criticism (通报), …";
    seed 000 (双随机、一公开): the list and the results of a random inspection are published. A 通报批评 is by
    definition a public notice of the criticism.

    Defect: the measure 通报批评 (supervision/models.py ``Measure.PUBLIC_CRITICISM``) has no effect anywhere:
    supervision/services.py ``add_finding`` applies only 暂停 and 移出 (firm status), and the public results page
    (supervision/views.py ``public_inspections``, templates/supervision/public_inspections.html) shows each finding's
    severity but never its measures. A firm the bureau decided to criticise publicly is, on the public site, one
    "一般" badge among others — the 通报 is never made."""
    from evalhub.procurement.models import EngagementState as S
    from evalhub.supervision import services as V
    from evalhub.supervision.models import CHECKLIST, Measure, Severity
    from tests.test_review_services import _experts

    e = factories.contracted(world)
    e.state = S.ACCEPTED
    _experts(world, 2)
    db.session.flush()
    campaign = factories.witnessed(V.start_campaign(world.bz, 2025, world.bz_staff, ratio=100))
    V.publish_campaign_list(campaign, world.bz_staff)
    inspection = campaign.inspections[0]
    recorder = factories.recorder(inspection)
    V.record_checklist(inspection, recorder, {key: (True, "") for key, _ in CHECKLIST})
    V.add_finding(inspection, recorder, severity=Severity.GENERAL, description="评价报告照搬被评价单位自评材料，问题分析空泛",
                  measures=[Measure.ORDER_TO_CORRECT, Measure.PUBLIC_CRITICISM])
    V.respond(inspection, world.firm_user, "已重新撰写问题分析部分，并对项目组进行通报和培训。")
    V.close(inspection, recorder, "报告问题分析存在一般问题，机构已完成整改。")
    V.publish_campaign_results(campaign, world.bz_staff)
    db.session.commit()
    page = text(client.get("/public/inspections"))
    assert world.firm.name in page and "一般" in page  # the results are public
    assert "通报批评" in page, "the 通报批评 decided on the finding is not published with the results"


# --- 7. an expert drawn to inspect cannot read what is inspected --------------------------------------------

def test_an_expert_inspector_can_read_the_report_and_the_case_it_inspects(world, client, login, auth):
    """Rule: seed 000 ("通过随机抽取检查对象、随机选派检查人员等方式开展不定向检查"), DOMAIN §7: inspectors are
    drawn "from eligible staff and experts"; the checklist asks whether the working papers are complete, the evidence
    supports the scores and the report is original — an inspector must read the report to answer. docs/architecture:
    web, API and jobs apply the same rules.

    Defect: an expert seated as an inspector (drawn by ``_draw_inspectors`` / ``_case_inspectors_drawn`` or named by
    ``name_inspector``) reads only the inspection page (supervision/permissions.py ``_inspects``): the engagement
    (procurement/permissions.py ``engagement.view`` = bureau rows or the firm) and the report file
    (review/views.py ``_readable_submission``) are 403 for it, and the API refuses every expert outright
    (supervision/api.py ``_require_reader``: "评审专家不能查看监督检查记录"), even for its own case. The expert is
    told it was drawn to inspect, then can open nothing it must inspect."""
    from evalhub.review.models import Submission, SubmissionKind
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Trigger

    e = factories.accepted(world)
    report = db.session.execute(sa.select(Submission).where(
        Submission.engagement_id == e.id, Submission.kind == SubmissionKind.REPORT).order_by(Submission.id.desc())).scalars().first()
    assert report is not None
    case = V.open_case(world.bz, world.bz_admin, trigger=Trigger.LOW_SCORE, detail="报告复核得分偏低，需核查底稿",
                       engagement=e)
    V.name_inspector(case, world.bz_admin, expert_id=world.expert.id, reason="熟悉该领域")
    db.session.commit()
    login(world.expert_user)
    assert client.get(f"/inspections/{case.id}").status_code == 200  # the expert is this case's inspector
    refused = []
    for url in (f"/engagements/{e.id}", f"/submissions/{report.id}/file"):
        status = client.get(url).status_code
        if status != 200:
            refused.append(f"{url} → {status}")
    api = client.get(f"/api/v1/inspections/{case.id}", headers=auth(world.expert_user.username))
    if api.status_code != 200:
        refused.append(f"GET /api/v1/inspections/{case.id} → {api.status_code}")
    assert not refused, "the expert inspector cannot read what it inspects: " + "; ".join(refused)
