"""Audit of today's new rules walked around on their other paths (the API beside the page, the second sign-in
step beside the first, the OCDS beside the notice, a list beside the eligibility check): "every rule lives in a
service and holds on every path — web, API, CLI, jobs, imports".

Each test here FAILS on the current code because of the defect its docstring names.
"""
from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal as D

import sqlalchemy as sa

from evalhub.extensions import db
from tests import factories


def _text(response) -> str:
    return response.get_data(as_text=True)


# --- 1. the firm's people over the API: the library bureau's limit, not the reader's ------------------------

def test_the_api_firm_people_list_gives_a_bureau_reader_its_own_limit_as_the_firm_page_does(world, client, auth, login):
    """Rule (docs/rules.md, People, "Limit" row; commit 64b6f07): a person's record and the firm page's people
    card show a bureau reader its own bureau's limit ("本局设置") — the block it meets when it names the person
    (`registry/people.py` `reading_settings`, `naming_block`).

    Path: GET /api/v1/firms/<id>/people (procurement/team_api.py `get_firm_people`) calls
    `people.firm_records(firm)` without the reader's bureau, so the standings are computed with the firm's
    library bureau's settings. The firm page's card (registry/people_views.py `staff_records`) and the person's
    record (page and API) pass `reading_settings`.

    Defect: 轮台县 set its limit at 10; a 巴州 firm's evaluator has 10 points, so 轮台县 may not name them. On the
    firm page 轮台县's officer reads 限制 (threshold 10); the API's people list tells the same officer
    threshold 20, status 警示, blocked false — a client that checks before naming is told the opposite of what
    the naming will answer."""
    from evalhub.core.settings import set_setting
    from evalhub.registry import people
    from evalhub.registry.models import PointKind

    firm, _user, staff = factories.bidder(world, "某评价咨询有限公司")
    set_setting(world.lt, "people.points_threshold", 10, world.lt_admin)
    people.add_points(staff, PointKind.FINDING_SERIOUS, bureau=world.bz, source_type="inspection_finding",
                      source_id=1, note="工作底稿缺少抽样记录", actor=world.bz_staff)
    db.session.commit()
    assert people.naming_block(staff, world.lt) is not None  # 轮台县 may not name this person

    # the person's record over the API (same reader) states 轮台县's limit: the API knows the rule
    record = client.get(f"/api/v1/staff/{staff.id}/record", headers=auth("lt.staff"))
    assert record.status_code == 200, _text(record)
    assert record.json["standing"]["threshold"] == 10 and record.json["standing"]["blocked"] is True

    listed = client.get(f"/api/v1/firms/{firm.id}/people", headers=auth("lt.staff"))
    assert listed.status_code == 200, _text(listed)
    mine = next(p for p in listed.json["people"] if p["staff_id"] == staff.id)
    assert (mine["standing"]["threshold"], mine["standing"]["blocked"]) == (10, True), (
        f"API firm people list gives 轮台县's officer {mine['standing']} — the library bureau's limit, not "
        "the reader's (the page and /staff/<id>/record give threshold 10, blocked)")


# --- 2. the per-address sign-in limit: second-factor failures never count --------------------------------------

def test_wrong_second_factor_codes_over_many_accounts_count_against_the_address(app, world, monkeypatch):
    """Rule (docs/rules.md, Accounts, "Sign-in" row; commit f30ea4c): five wrong passwords *or second-factor
    codes* lock the account, and failed sign-ins from one source address, over all accounts, are limited per
    hour (429 "本网络地址近一小时登录失败次数过多"); a right password gives its slot back. GB/T 22239-2019 身份鉴别
    ("限制非法登录次数").

    Path: the second step of signing in — POST /api/v1/tokens with `totp` (evalhub/api/__init__.py
    `create_token`) and the web's /login/totp (core/auth_views.py `login_totp`) — calls
    `core.accounts.verify_totp_login`, which counts only the account's failures. `core.services.authenticate`
    gave the address's slot back as soon as the password matched (`result.pending`), and nothing counts the
    wrong code against the address.

    Defect: from one address, a wrong code tried on every administrator whose password is known (a leaked
    password list) is never limited: with the limit at 2, the third, fourth… failed sign-ins from the address
    still answer 401 and keep trying codes — the address limit, which exists precisely for attempts spread over
    accounts, does not see them. Expected: 429 once the address has 2 failed sign-ins."""
    import pyotp

    from evalhub.core.personal import encrypt_field
    from evalhub.core.timeutil import utcnow

    monkeypatch.setitem(app.config, "LOGIN_FAILURES_PER_ADDRESS_HOUR", 2)
    admins = [world.bz_admin, world.kz_admin, world.lt_admin, world.krl_admin]
    secret = pyotp.random_base32()
    for admin in admins:
        admin.totp_secret_encrypted, admin.totp_enabled_at = encrypt_field(secret), utcnow()
    db.session.commit()
    right = pyotp.TOTP(secret, interval=30).now()
    wrong = f"{(int(right) + 500000) % 1000000:06d}"
    sprayer = {"REMOTE_ADDR": "198.51.100.77"}
    api = app.test_client()
    answers = []
    for admin in admins:
        response = api.post("/api/v1/tokens", json={"username": admin.username, "password": factories.PASSWORD,
                                                    "totp": wrong}, environ_base=sprayer)
        answers.append(response.status_code)
        if response.status_code == 401:  # refused for the code, the password was right
            assert response.get_json()["error"]["message"].startswith("验证码不正确"), response.get_json()
    assert answers[:2] == [401, 401], answers
    assert 429 in answers[2:], (
        f"failed second-factor sign-ins from one address over {len(admins)} accounts answered {answers}: "
        "never limited by LOGIN_FAILURES_PER_ADDRESS_HOUR=2")


# --- 3. the scoring table's row limit: the API takes any number of rows ---------------------------------------

def test_the_api_refuses_a_report_scoring_table_longer_than_the_form_takes(world, client, auth):
    """Rule (commit ac17036; core/forms.py `RowList`): a table with more rows than its form takes is refused
    with the limit, not taken — the report's scoring table (评价指标评分表) takes 200 rows
    (review/forms.py `MAX_INDICATOR_ROWS`), and "every rule lives in a service and holds on every path".

    Path: POST /api/v1/engagements/<id>/submissions (review/api.py `_parse_indicators` →
    review/services.py `submit`): neither counts the rows; the limit lives only in the web form.

    Defect: the API stores a 201-row scoring table (201 ReportIndicator rows) that the upload page refuses with
    "评价指标评分表最多 200 行，提交了 201 行" — the same report is refused on one path and stored on the other,
    and the bureau's and experts' pages then show a table the form can never hold (edit/resubmit cuts it).
    Expected: 422 naming the limit, nothing stored."""
    from evalhub.review.models import ReportIndicator, Submission

    e = factories.in_fieldwork(world)
    db.session.commit()
    rows = [{"category": "产出", "name": f"三级指标{n}", "weight": "0.4", "score": "0.4"} for n in range(1, 201)]
    rows.append({"category": "效益", "name": "三级指标201", "weight": "20", "score": "12"})
    text = "\n".join(["一、项目概况", "二、评价工作开展情况", "三、综合评价情况及评价结论", "四、绩效评价指标分析",
                      "五、主要经验及做法", "六、存在的问题及原因分析", "七、有关建议", "八、其他需要说明的问题"])
    form = {"kind": "评价报告", "file": (io.BytesIO(factories.docx_bytes(text)), "评价报告.docx"),
            "indicators": json.dumps(rows, ensure_ascii=False), "concluded_total": "92", "concluded_grade": "优"}
    response = client.post(f"/api/v1/engagements/{e.id}/submissions", data=form, headers=auth("firm1"),
                           content_type="multipart/form-data")
    db.session.rollback()
    stored = db.session.execute(sa.select(sa.func.count()).select_from(ReportIndicator)
                                .join(Submission, Submission.id == ReportIndicator.submission_id)
                                .where(Submission.engagement_id == e.id)).scalar_one()
    assert response.status_code == 422 and stored == 0, (
        f"API answered {response.status_code}, stored {stored} scoring rows (the form takes at most 200)")


# --- 4. an open tender's award is a 中标: the public OCDS still calls it 成交 --------------------------------

def _awarded_open_tender(world):
    """An open tender of 巴州, three bids scored by a five-member committee, awarded to 甲 (as
    tests/test_audit_ui_text.py builds it)."""
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
    return p


def test_the_public_ocds_of_an_open_tender_calls_its_award_a_winning_bid(world, client):
    """Rule (commit a7de8f0; docs/rules.md, Procurement): an open tender's result notice, pages, status and
    messages say 中标 (中标供应商, 中标金额, 已中标), the other methods 成交 (`ProcurementMethod.result_word`;
    政府采购法 第二十八、三十六条, 87号令 第六十九条).

    Path: the public OCDS release (GET /public/procurements/<id>/ocds.json and the API's /ocds, both
    procurement/ocds.py `_release`) titles every award "<title> 成交结果" and a revoked one
    "<title> 成交结果（已撤销）", whatever the method — the one public machine-readable copy of the result.

    Defect: the notice of this open tender says 中标供应商 while its OCDS award, read by the procurement
    platforms and the public, is titled 成交结果 — the legal act of 竞争性磋商/谈判/单一来源, not a tender's."""
    p = _awarded_open_tender(world)
    assert "中标供应商" in p.notice.text  # the notice follows the rule
    response = client.get(f"/public/procurements/{p.id}/ocds.json")
    assert response.status_code == 200, _text(response)[:300]
    awards = response.get_json()["releases"][0]["awards"]
    titles = [a["title"] for a in awards]
    assert titles and all("中标" in t and "成交" not in t for t in titles), titles


# --- 5. the overdue page lists a row the unit is not late on ---------------------------------------------------

def test_the_overdue_page_does_not_list_a_row_returned_after_its_deadline_that_the_unit_handed_in_on_time(
        world, client, login):
    """Rule (docs/rules.md, Results application, "Overdue rectification" row; commit 5bd8c1f): the days counted
    are the unit's own — the working days past its deadline less those it waited on the bureau's verification;
    "a row handed in on time and returned after its deadline is late from its return"; a row is "neither
    escalated nor listed as overdue" for the bureau's time (`results/services.py` `overdue_days`).

    Path: the 逾期未整改 page (GET /results/overdue → `overdue_findings` → `overdue_findings_query`, also the
    dashboard's 整改逾期 card) lists every owed row whose deadline is before today — it never asks
    `overdue_days`. The hourly job (`escalate_overdue`) does, and skips the row (0 days of its own).

    Defect: the unit handed its evidence in three weeks before the deadline; the bureau returned it (部分整改)
    today, long after the deadline, keeping the deadline. The job counts 0 days and escalates nothing, but the
    page (and the dashboard) list the row under 逾期未整改事项 at once — the bureau's verification time shown as
    the unit's delay, the page and the job disagreeing on the same row."""
    from evalhub.core import files
    from evalhub.core.calendar import ensure_national_calendar
    from evalhub.core.timeutil import beijing_today, simulated_clock
    from evalhub.procurement.models import EngagementState
    from evalhub.results import services as S
    from evalhub.results.models import FindingStatus
    from tests.test_audit_results2 import _at

    ensure_national_calendar()
    e = factories.contracted(world)
    e.state = EngagementState.ACCEPTED  # fixture shortcut, as tests/test_audit_results2.py
    unit = factories.unit_user(world, "巴州统计局", "tjj.paths2")
    f = factories.confirmed_findings(world, e, n=1)[0]
    today = beijing_today()
    f.deadline = today - timedelta(days=28)
    db.session.flush()
    with simulated_clock(_at(f.deadline - timedelta(days=21))):  # handed in three weeks before the deadline
        S.submit_plan(f, unit, "由财务科负责，按期完成剩余资金支付。")
        S.submit_evidence(f, unit, "已完成支付", [files.Upload("支付凭证.txt", "支付凭证 记账凭证第 18 号".encode())])
    S.verify(f, world.bz_staff, "部分整改", "尚有一笔款项未支付，请继续整改")  # returned today, deadline kept
    db.session.commit()
    assert f.status == FindingStatus.RETURNED
    assert S.overdue_days(f, today) == 0 and S.escalate_overdue(today=today) == []  # the job: not late
    db.session.commit()

    page = _text(login(world.bz_staff).get("/results/overdue"))
    listed = page.split('data-testid="overdue-findings"', 1)[1].split("</table>", 1)[0]
    assert f.text not in listed, (
        "逾期未整改事项 lists a row the unit handed in on time and got back today (0 working days of its own; "
        "the job escalates nothing)")
