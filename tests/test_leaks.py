"""Nothing leaks across bureaus or to the wrong role (issue 11, "Leaks").

- A screening card, the queue, the score API, a case opened from a flag and the expert's view quote a stored
  report (its text, firm, reference, chapter, a link to it) only when the viewer may read that submission;
  a report withheld as classified is quoted only inside the bureau that holds it — not to an upper bureau,
  not to the platform's administrator. Everything else reads "另一地区报告（无权查看原文）" with the share.
  The copy features still count every stored report.
- An inspection seen by the inspected firm never carries the screening detail (risk, rank, reasons), on the
  web page or in the API.
- Guards: every API GET endpoint a firm user (and an expert) can reach, in a world with screened reports, a
  case opened from a flag, decided panels with named experts and sealed bids of two firms, answers without a
  screening risk, a trigger detail, an expert's name or another firm's bid.
"""
from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from evalhub.core import files
from evalhub.core.models import Bureau
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import utcnow
from evalhub.credit.models import CreditRating
from evalhub.extensions import db
from evalhub.procurement.models import Engagement, EngagementState, EvaluationPlan, Procurement
from evalhub.registry.models import Expert, Firm, FirmStaff
from evalhub.review.models import Publication, Review, Submission, SubmissionKind
from evalhub.screening import services as S
from evalhub.supervision.models import Inspection, Trigger
from tests import factories
from tests.screening_support import CHAPTERS, docx_bytes, report_text

HIDDEN = "另一地区报告（无权查看原文）"


@pytest.fixture(autouse=True)
def fresh_screening_cache(app_ctx):
    S.forget_cache()
    yield
    S.forget_cache()


def text(response) -> str:
    return response.get_data(as_text=True)


# --- a corpus across three bureaus ---------------------------------------------------------------------

KZ_SENTENCES = [
    "草原保护补助奖励项目2024年下达资金1,250.00万元，覆盖阿克陶县、乌恰县等4县市的牧户2,310户。",
    "{firm}于2025年4月8日至5月20日走访牧户186户，核对禁牧面积台账42本，调取拨付凭证97份。",
    "综合得分86.5分，评价等级为良，扣分主要在资金拨付时效和草畜平衡核查两项。",
    "禁牧面积核实率为94.3%，其中乌恰县2个村因边界争议尚未完成核实；补助资金兑付率为99.1%。",
    "各县市实行网格化管护员制度，每名管护员负责约3.5万亩草场，按月提交巡护日志。",
    "一是阿克陶县2024年第三批补助迟至12月27日才拨付到户，延误约4个月；二是草畜平衡核查记录缺少卫星遥感比对。",
    "建议克州林草局于2025年10月底前补做遥感比对，并将拨付时限写入2026年度实施方案。",
    "本次评价未涉及以前年度结转资金。",
]


def _chapters(report: str) -> list[str]:
    """The eight chapter bodies of a report_text() report."""
    lines = report.splitlines()
    return [lines[i + 1] for i in range(1, len(lines), 2)]


def _report(title: str, bodies: list[str]) -> str:
    lines = [title]
    for numeral, chapter, body in zip("一二三四五六七八", CHAPTERS, bodies):
        lines += [f"{numeral}、{chapter}", body]
    return "\n".join(lines)


def _stored_report(world, bureau_key: str, unit: str, firm: Firm, body: str, name: str) -> Submission:
    """A report stored and screened as an upload is (the engagement is put straight into "report submitted":
    what is tested here is what the screening shows, not how the engagement got there)."""
    e = factories.engagement(world, bureau_key=bureau_key, unit=unit, name=name)
    e.firm_id = firm.id
    e.state = EngagementState.REPORT_SUBMITTED
    stored = files.store("评价报告.docx", docx_bytes(body), allowed=("docx",))
    submission = Submission(engagement_id=e.id, kind=SubmissionKind.REPORT, version=1, file_id=stored.id,
                            submitted_at=utcnow())
    db.session.add(submission)
    db.session.flush()
    S.screen_upload(submission)
    return submission


@pytest.fixture()
def corpus(world):
    """巴州 holds a report it withheld from publication as classified; 克州 another firm's report in its own
    words; 轮台县 (a county below 巴州) a report copied from 巴州's (names swapped) with one chapter of
    克州's. Re-screened once all are in."""
    bz_text = report_text("饮水安全工程", "巴州统计局", world.firm.name)
    bz = _stored_report(world, "bz", "巴州统计局", world.firm, bz_text, "饮水安全工程")
    db.session.add(Publication(engagement_id=bz.engagement_id, classified=True, reason="涉密，不予公开",
                               decided_by_id=world.bz_admin.id))
    kz_bodies = [s.format(firm=world.other_firm.name) for s in KZ_SENTENCES]
    kz = _stored_report(world, "kz", "克州农业农村局", world.other_firm,
                        _report("2024年度草原保护补助奖励项目绩效评价报告", kz_bodies), "草原保护补助奖励")
    lt_bodies = [b.replace("饮水安全工程", "医保基金监管").replace("巴州统计局", "轮台县医疗保障局")
                 for b in _chapters(bz_text)]
    lt_bodies[3] = kz_bodies[3]
    lt = _stored_report(world, "lt", "轮台县医疗保障局", world.firm,
                        _report("2024年度医保基金监管绩效评价报告", lt_bodies), "医保基金监管")
    S.rescreen(year=2025)
    db.session.commit()
    rows = {k: S.screening_for(s) for k, s in {"bz": bz, "kz": kz, "lt": lt}.items()}
    lt_row = rows["lt"]
    # The corpus is what the tests need: 轮台县's report copies passages of both, and is a near-duplicate of 巴州's.
    sources = {p["source_doc_id"] for p in lt_row.passages}
    assert {bz.id, kz.id} <= sources, lt_row.passages
    assert lt_row.details["most_similar"]["doc_id"] == bz.id
    assert [d["doc_id"] for d in lt_row.details["near_duplicates"]] == [bz.id], lt_row.details
    assert any(r["feature"] == "near_duplicate" for r in lt_row.reasons)
    return {"rows": rows, "bz": bz, "kz": kz, "lt": lt, "bz_text": bz_text, "kz_bodies": kz_bodies}


def _secrets_of(submission: Submission) -> list[str]:
    """What identifies a stored report: its reference, its firm, its project, its unit and its submission id link."""
    e = submission.engagement
    return [e.reference, e.name, e.budget_unit.name, f"/screening/{S.screening_for(submission).id}"] + \
        ([e.firm.name] if e.firm.name != "巴州示范评价咨询有限公司" else [])


# --- the card --------------------------------------------------------------------------------------

def test_a_countys_card_never_shows_another_bureaus_report(client, login, world, corpus):
    lt_row = corpus["rows"]["lt"]
    login(world.lt_staff)
    response = client.get(f"/screening/{lt_row.id}")
    assert response.status_code == 200
    html = text(response)
    for secret in _secrets_of(corpus["bz"]) + _secrets_of(corpus["kz"]):
        assert secret not in html, secret
    # nor the text of either source: 巴州's names as its report writes them, 克州's copied chapters
    assert "巴州统计局组织实施" not in html and "<mark>巴州统计局</mark>" not in html
    assert corpus["kz_bodies"][3][:20] not in html
    assert "光明乡配套资金18万元" not in html  # 巴州's chapter, as copied
    assert HIDDEN in html and 'data-testid="passage-hidden"' in html
    # the share is still shown, and the copy features are unchanged
    assert "%" in html and 'data-testid="chapters"' in html
    assert lt_row.features["copy_other_firms"] > 0 or lt_row.features["copy_same_firm"] > 0


def test_an_upper_bureau_reads_its_subtree_but_never_a_lower_bureaus_withheld_report(client, login, world, corpus):
    lt_row, bz, kz = corpus["rows"]["lt"], corpus["bz"], corpus["kz"]
    # The rule, as the permission module declares it.
    from evalhub.core import permissions

    assert permissions.can(world.bz_staff, "submission.quote", bz)
    assert permissions.can(world.bz_staff, "submission.quote", corpus["lt"])
    assert not any(permissions.can(u, "submission.quote", bz) for u in (world.region_staff, world.sysadmin, world.lt_staff))
    assert permissions.can(world.region_staff, "submission.quote", kz) and permissions.can(world.sysadmin, "submission.quote", kz)
    assert not any(permissions.can(u, "submission.quote", kz) for u in (world.bz_staff, world.lt_staff, world.ats_staff))
    assert not any(permissions.can(u, "submission.quote", corpus["lt"]) for u in (world.firm_user, world.expert_user))
    # 巴州 holds the withheld report: it reads it beside its county's copy, but not 克州's.
    login(world.bz_staff)
    html = text(client.get(f"/screening/{lt_row.id}"))
    assert bz.engagement.reference in html and "<mark>巴州统计局</mark>" in html
    assert f'href="/screening/{corpus["rows"]["bz"].id}"' in html
    for secret in _secrets_of(kz):
        assert secret not in html, secret
    assert HIDDEN in html
    # The region reads 克州's report, but 巴州's withheld one is never quoted outside 巴州.
    for user in (world.region_staff, world.sysadmin):
        login(user)
        html = text(client.get(f"/screening/{lt_row.id}"))
        assert kz.engagement.reference in html and world.other_firm.name in html, user.username
        for secret in _secrets_of(bz):
            assert secret not in html, (user.username, secret)
        assert "光明乡配套资金18万元" not in html and HIDDEN in html


def test_the_queue_and_its_export_and_api_name_no_hidden_report(client, login, auth, world, corpus):
    bz = corpus["bz"]
    login(world.lt_staff)
    page = text(client.get("/screening/queue?year=2025"))
    assert corpus["lt"].engagement.reference in page and "近似重复" in page
    assert bz.engagement.reference not in page
    export = client.get("/screening/queue?year=2025&export=xlsx")
    assert export.status_code == 200
    import io

    import openpyxl

    sheet = openpyxl.load_workbook(io.BytesIO(export.data)).active
    cells = " ".join(str(c.value) for row in sheet.iter_rows() for c in row if c.value is not None)
    assert "近似重复" in cells and bz.engagement.reference not in cells
    body = client.get("/api/v1/screening/queue?year=2025", headers=auth("lt.staff"))
    assert body.status_code == 200 and bz.engagement.reference not in text(body)
    assert any(HIDDEN in r for item in body.json["items"] for r in item["reasons"])


def test_a_case_opened_from_a_flag_names_no_report_its_readers_may_not_read(client, login, world, corpus):
    lt_row, bz = corpus["rows"]["lt"], corpus["bz"]
    login(world.lt_admin)
    assert client.post(f"/screening/{lt_row.id}/case").status_code == 302
    inspection = db.session.execute(sa.select(Inspection)).scalar_one()
    # 巴州 (above 轮台县) reads this case too: a withheld report is not named even though 巴州 holds it.
    assert bz.engagement.reference not in inspection.trigger_detail and "近似重复" in inspection.trigger_detail
    for user in (world.lt_staff, world.bz_staff, world.region_staff):
        login(user)
        assert bz.engagement.reference not in text(client.get(f"/inspections/{inspection.id}")), user.username


def test_experts_never_read_which_other_report_was_copied(world, corpus):
    set_setting(world.lt, "screening.show_risk_to_experts", "on", world.lt_admin)
    shown = S.expert_view(corpus["lt"])["screening"]
    assert shown.reasons and any("近似重复" in r["text"] for r in shown.reasons)
    joined = " ".join(r["text"] for r in shown.reasons)
    assert corpus["bz"].engagement.reference not in joined and HIDDEN in joined


# --- the score API -----------------------------------------------------------------------------------

def _score(client, headers, body: str) -> dict:
    response = client.post("/api/v1/screening/score", json={"text": body}, headers=headers)
    assert response.status_code == 200, text(response)
    return response.json


def test_the_score_api_quotes_only_what_the_caller_may_read(client, auth, world, corpus):
    bz, bz_text = corpus["bz"], corpus["bz_text"]
    # 克州 submits 巴州's withheld text: it learns the score and that it was copied, never from where.
    result = _score(client, auth("kz.staff"), bz_text)
    raw = json.dumps(result, ensure_ascii=False)
    assert result["copied_passages"] and all(p["source"] == HIDDEN for p in result["copied_passages"])
    assert all(p["source_submission_id"] is None and p["text"] is None and p["chapter"] is None
               for p in result["copied_passages"])
    assert all(0 < p["share"] <= 1 for p in result["copied_passages"])
    for secret in _secrets_of(bz):
        assert secret not in raw, secret
    assert not re.search(rf'"source_submission_id": {bz.id}\b', raw)
    # The score itself is unchanged: the copy features count every stored report.
    holder = _score(client, auth("bz.staff"), bz_text)
    assert holder["risk"] == result["risk"] and holder["features"] == result["features"]
    # 巴州 holds it: the source is named to 巴州; the region, above it, is not told.
    assert any(bz.engagement.reference in p["source"] for p in holder["copied_passages"])
    assert any(p["source_submission_id"] == bz.id for p in holder["copied_passages"])
    region = json.dumps(_score(client, auth("region.staff"), bz_text), ensure_ascii=False)
    assert bz.engagement.reference not in region and HIDDEN in region
    # A county is not told about another prefecture's report either.
    county = _score(client, auth("lt.staff"), _report("2024年度草原保护补助奖励项目绩效评价报告", corpus["kz_bodies"]))
    assert county["copied_passages"] and corpus["kz"].engagement.reference not in json.dumps(county, ensure_ascii=False)


# --- the inspected firm and the screening detail -------------------------------------------------------

def test_the_inspected_firm_never_reads_the_screening_detail_of_its_case(client, login, auth, world, corpus):
    lt_row = corpus["rows"]["lt"]
    inspection = S.open_case(lt_row, world.lt_admin)
    db.session.commit()
    assert "风险" in inspection.trigger_detail
    headers = auth("firm1")
    detail = client.get(f"/api/v1/inspections/{inspection.id}", headers=headers)
    assert detail.status_code == 200 and detail.json["trigger"]["value"] == "screening_flag"
    assert detail.json["trigger_detail"] is None
    for url in (f"/api/v1/inspections/{inspection.id}", f"/api/v1/inspections/{inspection.id}/findings",
                "/api/v1/inspections"):
        body = text(client.get(url, headers=headers))
        assert "风险" not in body and "筛查#" not in body and "近似重复" not in body, url
    login(world.firm_user)
    page = text(client.get(f"/inspections/{inspection.id}"))
    assert "根据报告质量筛查提示立案" in page and "风险" not in page and "筛查#" not in page
    # the bureau reads the lead in full, on the page and in the API
    assert "风险" in client.get(f"/api/v1/inspections/{inspection.id}", headers=auth("lt.staff")).json["trigger_detail"]


# --- guards: every API GET endpoint, as a firm and as an expert ---------------------------------------

# Path arguments of the API's GET routes and the rows whose ids fill them. A new argument fails the walk
# until it is added here, so a new endpoint is walked too.
ARG_MODELS = {"engagement_id": Engagement, "plan_id": EvaluationPlan, "procurement_id": Procurement, "firm_id": Firm,
              "expert_id": Expert, "review_id": Review, "inspection_id": Inspection, "rating_id": CreditRating,
              "staff_id": FirmStaff, "bureau_id": Bureau}
QUERIES = ("", "?per_page=200", "?year=2025")


def _walk(app, client, headers: dict) -> dict[str, str]:
    """Every API GET endpoint with every stored id of its arguments: url → body of each 200 answer."""
    import itertools

    answered: dict[str, str] = {}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or "GET" not in rule.methods or rule.rule.endswith("/openapi.json"):
            continue
        names = sorted(rule.arguments)
        unknown = set(names) - set(ARG_MODELS)
        assert not unknown, f"{rule.rule}: add {unknown} to ARG_MODELS"
        choices = [db.session.execute(sa.select(ARG_MODELS[n].id)).scalars().all() + [999999] for n in names]
        for values in itertools.product(*choices):
            path = rule.rule
            for name, value in zip(names, values):
                path = re.sub(rf"<(?:int:)?{name}>", str(value), path)
            for query in QUERIES if not names else ("",):  # lists: also the longest page and a year
                response = client.get(path + query, headers=headers)
                assert response.status_code < 500, (path + query, text(response)[:300])
                if response.status_code == 200:
                    answered[path + query] = text(response)
    return answered


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value)) if value else set()
    return set()


@pytest.fixture()
def busy(world):
    """A world like the demo's: screened reports of the firm (one copied from the other) and a case opened from
    the flag; a report panel of named experts decided against the firm and its letter sent; a consultation
    with the sealed, then opened, bids of two other firms."""
    from evalhub.procurement import services as P
    from evalhub.review import services as R
    from tests.screening_support import upload_report
    from tests.test_procurement_services import _bidder, _consultation, _past_deadline
    from tests.test_review_services import _panel, _review

    generic = report_text("高标准农田", "巴州民政局", world.firm.name, specific=False)
    upload_report(world, generic, name="高标准农田", unit="巴州民政局")
    _e, copied = upload_report(world, generic.replace("高标准农田", "养老服务").replace("巴州民政局", "巴州统计局"),
                               name="养老服务")
    S.rescreen(year=2025)
    flag = S.screening_for(copied)
    case = S.open_case(flag, world.bz_staff)
    e, panel = _panel(world)
    for invitation, points in zip(panel.invitations, ([17] * 5, [18] * 5, [16] * 5)):
        _review(invitation, world, points, opinion="问题分析不够具体")
    R.send_letter(panel, world.bz_staff, (panel.letter or "") + "\n请于十五日内完成整改，逐条说明。")
    p = _consultation(world)
    (firm_a, user_a, staff_a), (firm_b, user_b, staff_b) = _bidder(world, "甲方评价咨询公司"), _bidder(world, "乙方评价咨询公司")
    for user, staff, price in ((user_a, staff_a, "41.37"), (user_b, staff_b, "43.21")):
        P.submit_bid(p, P.BidInput(price_wan=price, team_staff_ids=[staff.id], lead_staff_id=staff.id,
                                   technical_filename="技术方案.docx",
                                   technical_data=docx_bytes(f"技术方案\n{user.username} 的评价思路")), user)
    _past_deadline(p)
    P.open_bids(p, world.bz_staff)
    db.session.commit()
    screenings = db.session.execute(sa.select(S.ReportScreening)).scalars().all()
    return {"case": case, "panel": panel, "engagement": e, "procurement": p, "bidders": (user_a, user_b),
            "reasons": [r["text"] for s in screenings for r in s.reasons or []],
            "experts": db.session.execute(sa.select(Expert)).scalars().all()}


# An ISO 8601 timestamp as the API writes it (``apiutil.datetime_str``), fractional seconds and offset included.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)?")


def test_no_api_answer_gives_a_firm_a_risk_a_lead_an_expert_or_another_firms_bid_nor_an_expert_a_name(
        app, client, auth, world, busy):
    case, (user_a, user_b) = busy["case"], busy["bidders"]
    assert case.trigger == Trigger.SCREENING_FLAG and "风险" in case.trigger_detail
    expert_names = [x.name for x in busy["experts"]]
    assert len(expert_names) >= 6 and busy["reasons"]
    for user, others_bid in ((world.firm_user, ("41.37", "43.21", "甲方评价咨询公司", "乙方评价咨询公司")),
                             (user_a, ("43.21", "乙方评价咨询公司")), (user_b, ("41.37", "甲方评价咨询公司"))):
        answered = _walk(app, client, auth(user.username))
        if user is world.firm_user:  # the walk reached what the firm may read
            assert f"/api/v1/inspections/{case.id}" in answered
            assert f"/api/v1/engagements/{busy['engagement'].id}/outcomes" in answered
            assert json.loads(answered[f"/api/v1/engagements/{busy['engagement'].id}/outcomes"])["items"]
        else:
            assert f"/api/v1/procurements/{busy['procurement'].id}/bids" in answered
        for url, body in answered.items():
            where = (user.username, url)
            assert "风险" not in body and "筛查#" not in body and "近似重复" not in body, where
            assert not {"risk", "experts", "opened_by", "complaint"} & _keys(json.loads(body)), where
            assert case.trigger_detail[:12] not in body, where
            assert not [r for r in busy["reasons"] if r in body], where
            assert not [n for n in expert_names if n in body], where
            # a price is looked for outside the answer's timestamps ("…T05:14:41.370123+00:00" holds "41.37")
            assert not [b for b in others_bid if b in _TIMESTAMP.sub("", body)], where

    # An expert of the panel: the others' opinions anonymised, never their names, no risk, no bid.
    from tests.test_review_services import _expert_users

    invitation = busy["panel"].invitations[0]
    expert = _expert_users(world)[invitation.expert_id]
    own = db.session.get(Expert, invitation.expert_id).name
    others = [x.name for x in busy["experts"] if x.name != own and x.name not in own]
    answered = _walk(app, client, auth(expert.username))
    assert f"/api/v1/reviews/{invitation.review.id}" in answered
    assert json.loads(answered[f"/api/v1/reviews/{invitation.review.id}"])["others"]  # read, anonymised
    for url, body in answered.items():
        assert not [n for n in others if n in body], (url, [n for n in others if n in body])
        assert "风险" not in body and "risk" not in _keys(json.loads(body)), url
        assert not [b for b in ("41.37", "43.21") if b in body], url


# --- a complaint's reference in the firm's rating ------------------------------------------------------

def test_the_rated_firm_reads_that_a_complaint_counted_never_which(client, login, auth, world):
    from datetime import timedelta
    from decimal import Decimal

    from evalhub.core.timeutil import beijing_today
    from evalhub.credit.models import CreditGrade, RatingStatus

    reference = "TS-652800-2025-0007"
    components = [{"code": "feedback", "label": "委托方评价", "max": "20", "points": "14.00",
                   "detail": ["委托方评价 0 份（无评价，按 80% 计）", "查实投诉 1 件"],
                   "records": [{"type": "complaint", "id": 7, "label": reference}]}]
    rating = CreditRating(bureau_id=world.bz.id, firm_id=world.firm.id, year=2025, status=RatingStatus.PUBLISHED,
                          rated=True, total=Decimal("74"), grade=CreditGrade.C, components=components,
                          objection_deadline=beijing_today() + timedelta(days=10))
    db.session.add(rating)
    db.session.commit()
    body = client.get(f"/api/v1/ratings/{rating.id}", headers=auth("firm1"))
    assert body.status_code == 200 and reference not in text(body)
    (record,) = body.json["components"][0]["records"]
    assert record == {"type": "complaint", "id": None, "label": "查实投诉"}
    login(world.firm_user)
    page = text(client.get(f"/credit/ratings/{rating.id}"))
    assert "查实投诉" in page and reference not in page
    # the bureau reads which complaint counted
    assert reference in text(client.get(f"/api/v1/ratings/{rating.id}", headers=auth("bz.staff")))
