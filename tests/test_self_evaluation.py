"""Issue 15, self-evaluation reviews (克州's plan, item 7): a 主管部门 hands in its self-evaluation report of a
central transfer; the bureau's panel — the review module's own draw with avoidance, rubric and outcome —
scores it; under 90 it goes back to the unit, which resubmits; the results are listed. Refusals for the wrong
role and the wrong organisation, on the services, the pages and the API."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core import draws, files
from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import Notification
from evalhub.core.settings import set_setting
from evalhub.extensions import db
from evalhub.registry.models import Expert
from evalhub.results import services as S
from evalhub.review import services as R
from evalhub.review.models import (
    InvitationStatus, PanelStatus, ReviewPanel, RubricKind, SelfEvaluation, SelfEvaluationStatus, SubmissionKind,
)
from tests import factories
from tests.kept_states import kept


def _upload(text: str = "中央转移支付项目自评报告") -> files.Upload:
    return files.Upload("自评报告.docx", factories.docx_bytes(text))


def _inbox(user) -> list[str]:
    return list(db.session.execute(sa.select(Notification.title).where(Notification.user_id == user.id)
                                   .order_by(Notification.id)).scalars())


def _reviewers(world, n: int = 3) -> list[Expert]:
    """n experts of 巴州 with accounts; every other expert of the pool sits out, so the draw takes these."""
    for other in db.session.execute(sa.select(Expert)).scalars():
        other.available = False
    out = []
    for i in range(n):
        x = factories.expert(world.bz, name=f"自评评审专家{i}", employer=f"新疆某高校{i}")
        factories.expert_user(x.id)
        out.append(x)
    db.session.flush()
    return out


def _panel(se: SelfEvaluation, staff) -> ReviewPanel:
    """Form the panel through the review module's one draw (announce → witnesses → reveal)."""
    record = R.form_panel(se, staff)
    result = draws.run_witnessed(record) if not isinstance(record, ReviewPanel) else record
    db.session.flush()
    return result if isinstance(result, ReviewPanel) else db.session.execute(
        sa.select(ReviewPanel).where(ReviewPanel.self_evaluation_id == se.id).order_by(ReviewPanel.id.desc())).scalars().first()


@pytest.fixture()
@kept
def unit(world):
    world.unit_user = factories.unit_user(world, "巴州统计局", "tjj.zpj")
    world.sibling_user = factories.unit_user(world, "巴州民政局", "mzj.zpj")
    world.kz_unit_user = factories.unit_user(world, "克州农业农村局", "kz.nync")
    db.session.commit()
    return world


def test_a_self_evaluation_returned_under_90_is_resubmitted_and_passes(unit):
    w = unit
    experts = _reviewers(w)
    se = S.submit_self_evaluation(w.unit_user, w.units["巴州统计局"], year=2025, name="中央财政统计能力建设补助资金",
                                  funds="1200000", upload=_upload())
    assert se.bureau_id == w.bz.id and se.status == SelfEvaluationStatus.SUBMITTED
    assert any("收到部门自评报告第 1 版" in t for t in _inbox(w.bz_staff))

    panel = _panel(se, w.bz_staff)
    assert panel.self_evaluation_id == se.id and panel.engagement_id is None
    assert panel.kind == SubmissionKind.SELF_EVALUATION
    assert panel.rubric.kind == RubricKind.SELF_EVALUATION and panel.size == 3  # its own rubric and panel size
    assert {i.expert_id for i in panel.invitations} == {x.id for x in experts}
    assert se.status == SelfEvaluationStatus.REVIEWING

    factories.review_panel(panel, fraction="0.85")  # 85 < 90
    db.session.refresh(panel)
    assert panel.decided_at is not None and panel.passed is False and panel.pass_mark == Decimal("90")
    assert se.score is None and panel.score < 90  # the unit reads the score with the letter, not before
    assert panel.letter.startswith("巴州统计局：") and "贵单位" in panel.letter
    # the outcome is decided exactly once: deciding again changes nothing
    assert R.maybe_decide(panel, None) is False

    with pytest.raises(PermissionDenied):  # another bureau may not send the letter
        R.send_letter(panel, w.kz_staff, panel.letter)
    R.send_letter(panel, w.bz_staff, panel.letter)
    assert se.status == SelfEvaluationStatus.RETURNED and panel.status == PanelStatus.CLOSED
    assert se.score == panel.score
    assert panel.resubmit_due is not None
    assert any("退回整改" in t for t in _inbox(w.unit_user))
    with pytest.raises(Conflict):  # sent once
        R.send_letter(panel, w.bz_staff, panel.letter)

    with pytest.raises(PermissionDenied):  # a sibling unit may not resubmit
        S.resubmit_self_evaluation(se, w.sibling_user, _upload("另一个单位"))
    S.resubmit_self_evaluation(se, w.unit_user, _upload("整改后的自评报告"), note="已按意见补充佐证")
    assert se.status == SelfEvaluationStatus.SUBMITTED
    assert [s.version for s in R.submissions(se)] == [1, 2]
    with pytest.raises(Conflict):  # not returned any more
        S.resubmit_self_evaluation(se, w.unit_user, _upload("再交一次"))

    for x in experts:  # the same experts may sit again (the pool is theirs alone)
        x.available = True
    second = _panel(se, w.bz_staff)
    assert second.round == 2 and second.submission.version == 2
    factories.review_panel(second, fraction="0.95")
    db.session.refresh(second)
    assert second.passed is True and se.status == SelfEvaluationStatus.PASSED and se.score >= 90
    assert any("评审通过" in t for t in _inbox(w.unit_user))
    # the unit never learns who reviewed: its messages carry no expert's name
    names = {x.name for x in experts}
    assert not any(n in t for t in _inbox(w.unit_user) for n in names)


def _score_all(panel: ReviewPanel, total: str) -> None:
    """Every member accepts and gives the same ``total``: full points on every item but the largest, which
    gives up the difference."""
    for invitation in list(panel.invitations):
        if invitation.status == InvitationStatus.INVITED:
            R.respond(invitation, factories.expert_user(invitation.expert_id), accept=True, declaration_signed=True)
    for invitation in list(panel.invitations):
        member = factories.expert_user(invitation.expert_id)
        items = invitation.review.rubric.items
        points = {i.id: i.max_points for i in items}
        largest = max(items, key=lambda i: i.max_points)
        points[largest.id] -= sum(points.values()) - Decimal(total)
        R.save_review(invitation.review, member, scores=points, comments={i.id: "意见" for i in items}, opinion="意见")
        R.submit_review(invitation.review, member)


@pytest.mark.parametrize("mark,total,passed", [(90, "89.99", False), (90, "90", True), (85, "85", True),
                                                (85, "84.99", False)])
def test_the_pass_mark_is_the_bureaus_setting_at_its_boundary(unit, mark, total, passed):
    w = unit
    _reviewers(w)
    if mark != 90:
        set_setting(w.bz, "review.self_evaluation_pass_mark", mark, w.bz_admin)
    se = S.submit_self_evaluation(w.unit_user, w.units["巴州统计局"], year=2025, name="就业补助资金", upload=_upload())
    panel = _panel(se, w.bz_staff)
    _score_all(panel, total)
    db.session.refresh(panel)
    assert panel.pass_mark == Decimal(mark) and panel.score == Decimal(total) and panel.passed is passed
    assert se.status == (SelfEvaluationStatus.PASSED if passed else SelfEvaluationStatus.REVIEWING)


def test_the_draw_avoids_the_unit_and_its_bureau(unit):
    w = unit
    experts = _reviewers(w, 3)
    insider = factories.expert(w.bz, name="统计局内部专家", employer="巴州统计局")
    factories.expert_user(insider.id)
    se = S.submit_self_evaluation(w.unit_user, w.units["巴州统计局"], year=2025, name="统计补助资金", upload=_upload())
    reasons = R.panel_exclusions(se, [insider] + experts)
    assert insider.id in reasons and all(x.id not in reasons for x in experts)


def test_a_bureau_edits_the_self_evaluation_rubric(unit):
    w = unit
    rubric = R.revise_rubric(w.bz, RubricKind.SELF_EVALUATION, [("真实性", "数据真实", 60), ("完整性", "覆盖全部资金", 40)],
                             w.bz_admin)
    assert R.current_rubric(w.bz, RubricKind.SELF_EVALUATION).id == rubric.id
    assert R.current_rubric(w.lt, RubricKind.SELF_EVALUATION).id == rubric.id  # a county under it inherits
    with pytest.raises(PermissionDenied):
        R.revise_rubric(w.bz, RubricKind.SELF_EVALUATION, [("甲", "", 100)], w.kz_admin)


def test_the_rubric_page_has_the_self_evaluation_rubric(unit, client, login):
    w = unit
    url = f"/bureaus/{w.bz.id}/rubrics/self_evaluation"
    login(w.bz_admin)
    page = client.get(url)
    assert page.status_code == 200 and "自评结果真实准确" in page.get_data(as_text=True)
    for who in (w.kz_admin, w.unit_user, w.firm_user):
        login(who)
        assert client.get(url).status_code == 403, who.username


def test_refusals_on_the_service(unit):
    w = unit
    unit_obj = w.units["巴州统计局"]
    for actor in (w.sibling_user, w.bz_staff, w.firm_user, w.expert_user, w.kz_unit_user):
        with pytest.raises(PermissionDenied):
            S.submit_self_evaluation(actor, unit_obj, year=2025, name="某资金", upload=_upload())
    with pytest.raises(ValidationFailed) as bad:
        S.submit_self_evaluation(w.unit_user, unit_obj, year="明年", name="", funds="-1",
                                 upload=files.Upload("x.exe", b""))
    assert set(bad.value.fields) >= {"year", "name", "funds"}
    with pytest.raises(ValidationFailed) as hidden:  # a name with a zero-width character
        S.submit_self_evaluation(w.unit_user, unit_obj, year=2025, name="某\u200b资金", upload=_upload())
    assert "name" in hidden.value.fields
    se = S.submit_self_evaluation(w.unit_user, unit_obj, year=2025, name="某资金", upload=_upload())
    for actor in (w.kz_staff, w.unit_user, w.firm_user, w.expert_user):
        with pytest.raises(PermissionDenied):  # only its own bureau forms the panel
            R.form_panel(se, actor)


# --- pages and API -----------------------------------------------------------------------------------

def _doc():
    return (io.BytesIO(factories.docx_bytes("中央转移支付自评报告")), "自评报告.docx")


def test_pages_list_and_refuse(unit, client, login):
    w = unit
    login(w.unit_user)
    page = client.get("/results/self-evaluations/new")
    assert page.status_code == 200 and "部门自评报告" in page.get_data(as_text=True)
    bad = client.post("/results/self-evaluations/new", data={"year": "abc", "name": "", "unit_id": str(w.units["巴州统计局"].id)},
                      content_type="multipart/form-data")
    assert bad.status_code == 422 and "年度" in bad.get_data(as_text=True)
    done = client.post("/results/self-evaluations/new", data={
        "year": "2025", "name": "中央财政农业补助资金", "funds": "500000", "unit_id": str(w.units["巴州统计局"].id),
        "file": _doc()}, content_type="multipart/form-data")
    assert done.status_code == 302
    se = db.session.execute(sa.select(SelfEvaluation)).scalars().one()
    assert client.get(f"/results/self-evaluations/{se.id}").status_code == 200
    assert "中央财政农业补助资金" in client.get("/results/self-evaluations").get_data(as_text=True)

    login(w.sibling_user)  # the wrong unit
    assert client.get(f"/results/self-evaluations/{se.id}").status_code == 403
    assert "中央财政农业补助资金" not in client.get("/results/self-evaluations").get_data(as_text=True)
    login(w.kz_staff)  # the wrong bureau
    assert client.get(f"/results/self-evaluations/{se.id}").status_code == 403
    assert client.post(f"/results/self-evaluations/{se.id}/panel", data={}).status_code == 403
    login(w.firm_user)  # the wrong role
    assert client.get(f"/results/self-evaluations/{se.id}").status_code == 403
    assert client.get("/results/self-evaluations").status_code == 403
    login(w.bz_staff)
    body = client.get("/results/self-evaluations").get_data(as_text=True)
    assert "中央财政农业补助资金" in body and "待组织评审" in body
    assert client.get(f"/results/self-evaluations/{se.id}").status_code == 200


def test_the_review_pages_serve_a_self_evaluation_panel(unit, client, login, auth):
    """The expert's invitation, review form and file, the bureau's panel page and the expert's API list are
    the review module's own pages, for a self-evaluation panel too; the wrong bureau and the unit are refused."""
    w = unit
    experts = _reviewers(w)
    se = S.submit_self_evaluation(w.unit_user, w.units["巴州统计局"], year=2025, name="农业补助资金", upload=_upload())
    panel = _panel(se, w.bz_staff)
    db.session.commit()
    invitation = panel.invitations[0]
    member = factories.expert_user(invitation.expert_id)
    login(member)
    page = client.get(f"/reviews/invitations/{invitation.id}")
    assert page.status_code == 200 and "农业补助资金" in page.get_data(as_text=True)
    assert client.post(f"/reviews/invitations/{invitation.id}",
                       data={"action": "accept", "declaration": "y"}).status_code == 302
    db.session.expire_all()
    review = db.session.get(ReviewPanel, panel.id).invitations[0].review
    form = client.get(f"/reviews/{review.id}")
    assert form.status_code == 200 and "自评结果真实准确" in form.get_data(as_text=True)  # its own rubric
    assert client.get(f"/submissions/{panel.submission_id}/file").status_code == 200
    assert "农业补助资金" in client.get("/reviews").get_data(as_text=True)
    listed = client.get("/api/v1/reviews", headers=auth(member.username))
    assert listed.status_code == 200 and listed.get_json()["items"][0]["engagement"]["name"] == "农业补助资金"
    assert client.get(f"/api/v1/reviews/{review.id}", headers=auth(member.username)).status_code == 200
    other = factories.expert_user(panel.invitations[1].expert_id)
    login(other)  # not yet seated: no file
    assert client.get(f"/submissions/{panel.submission_id}/file").status_code == 403

    login(w.bz_staff)
    detail = client.get(f"/reviews/panels/{panel.id}")
    assert detail.status_code == 200 and se.reference in detail.get_data(as_text=True)
    assert client.get(f"/submissions/{panel.submission_id}").status_code == 302  # to the self-evaluation's page
    for who in (w.kz_staff, w.unit_user, w.firm_user):
        login(who)
        assert client.get(f"/reviews/panels/{panel.id}").status_code == 403, who.username
    login(w.sibling_user)
    assert client.get(f"/submissions/{panel.submission_id}/file").status_code == 403
    assert {x.name for x in experts}.isdisjoint(
        client.get(f"/results/self-evaluations/{se.id}").get_data(as_text=True).split())


def test_the_demo_story_returns_one_self_evaluation_under_90_and_passes_the_other(unit):
    """evalhub/demo/results.py's self-evaluations, on the test world: 巴州统计局's is scored under 90, returned
    with the letter and handed in again (waiting for its second panel); 巴州民政局's passes."""
    from datetime import datetime, timedelta

    from evalhub.core import timeutil
    from evalhub.demo.results import load_self_evaluations

    w = unit
    _reviewers(w, 6)
    units = {"巴州统计局": w.unit_user, "巴州民政局": w.sibling_user}
    users = {"bz.staff": w.bz_staff}
    start = timeutil.utcnow()
    with timeutil.simulated_clock(start):
        made = load_self_evaluations(lambda _: None, units, users, load_time=datetime.now() + timedelta(days=60))
    assert made == 2
    returned, passed = db.session.execute(sa.select(SelfEvaluation).order_by(SelfEvaluation.id)).scalars().all()
    assert returned.status == SelfEvaluationStatus.SUBMITTED and [s.version for s in returned.submissions] == [1, 2]
    first = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.self_evaluation_id == returned.id)).scalar_one()
    assert first.passed is False and first.score < 90 and first.letter_sent_at is not None
    assert passed.status == SelfEvaluationStatus.PASSED and passed.score >= 90


def test_the_api_submits_lists_and_resubmits_with_refusals(unit, client, auth):
    w = unit
    unit_id = w.units["巴州统计局"].id

    def post(who, url, **data):
        return client.post(url, data={**data, "file": _doc()}, content_type="multipart/form-data", headers=auth(who))

    made = post("tjj.zpj", "/api/v1/results/self-evaluations", year="2025", name="中央财政就业补助资金",
                unit_id=str(unit_id))
    assert made.status_code == 201, made.get_data(as_text=True)
    se_id = made.get_json()["id"]
    assert made.get_json()["status"]["value"] == "submitted"
    for who in ("mzj.zpj", "bz.staff", "firm1", "expert1"):  # another unit, the bureau, a firm, an expert
        assert post(who, "/api/v1/results/self-evaluations", year="2025", name="某资金",
                    unit_id=str(unit_id)).status_code == 403, who
    bad = post("tjj.zpj", "/api/v1/results/self-evaluations", year="明年", name="")
    assert bad.status_code == 422 and {"year", "name"} <= set(bad.get_json()["error"]["fields"])
    listed = client.get("/api/v1/results/self-evaluations", headers=auth("bz.staff")).get_json()
    assert [i["id"] for i in listed["items"]] == [se_id]
    assert client.get("/api/v1/results/self-evaluations", headers=auth("mzj.zpj")).get_json()["items"] == []
    assert client.get("/api/v1/results/self-evaluations", headers=auth("kz.staff")).get_json()["items"] == []
    assert client.get("/api/v1/results/self-evaluations", headers=auth("firm1")).status_code == 403
    # not returned: a resubmission is refused; another unit does not even see it
    assert post("tjj.zpj", f"/api/v1/results/self-evaluations/{se_id}/resubmit").status_code == 409
    assert post("mzj.zpj", f"/api/v1/results/self-evaluations/{se_id}/resubmit").status_code == 404


# --- late reviews: the bureau's dashboard card and panel list ---------------------------------------------

def _overdue_self_evaluation_panel(w):
    """A self-evaluation of 巴州统计局 whose panel's review deadline passed two days ago, nobody having reviewed."""
    from datetime import timedelta

    from evalhub.core.timeutil import utcnow

    _reviewers(w)
    se = S.submit_self_evaluation(w.unit_user, w.units["巴州统计局"], year=2025, name="中央财政统计能力建设补助资金",
                                  upload=_upload())
    panel = _panel(se, w.bz_staff)
    panel.review_due = utcnow() - timedelta(days=2)
    db.session.commit()
    return se, panel


def _card(body: str) -> str:
    return body.split('data-testid="overdue-reviews-card"')[1].split("</ul></div>")[0]


def test_an_overdue_self_evaluation_review_is_on_the_dashboard_and_the_panel_list_in_scope(unit, client, login):
    """The bureau whose experts are late on a self-evaluation report is told so, as for an engagement's report:
    on the dashboard's 逾期未完成的专家评审 (named by the report and its unit) and in the panel list the card links
    to, for its bureau and the bureau above; another prefecture, a county below, a firm and an expert see neither."""
    w = unit
    se, panel = _overdue_self_evaluation_panel(w)
    link, row = f'href="/reviews/panels/{panel.id}"', f'data-testid="panel-row-{panel.id}"'
    for who in (w.bz_staff, w.bz_admin, w.region_admin):
        login(who)
        card = _card(client.get("/").get_data(as_text=True))
        assert link in card and se.name in card and "巴州统计局" in card and "3 位专家尚未提交" in card, who.username
        assert 'data-testid="overdue-reviews-count">1<' in card and 'href="/reviews?overdue=1"' in card
        late = client.get("/reviews?overdue=1").get_data(as_text=True)
        assert late.count('data-testid="panel-row-') == 1, who.username  # the card's count
        shown = late.split(row)[1].split("</tr>")[0]
        assert se.reference in shown and se.name in shown and "巴州统计局" in shown and "部门自评报告" in shown
        assert row in client.get("/reviews?year=2025").get_data(as_text=True)
        assert row not in client.get("/reviews?year=2024").get_data(as_text=True)
        assert client.get(f"/reviews/panels/{panel.id}").status_code == 200  # the link opens
    for who in (w.kz_staff, w.kz_admin, w.lt_admin):
        login(who)
        body = client.get("/").get_data(as_text=True)
        assert link not in body and se.name not in body and "暂无逾期未完成的专家评审" in _card(body), who.username
        for url in ("/reviews", "/reviews?overdue=1"):
            assert row not in client.get(url).get_data(as_text=True), (who.username, url)
    for who in (w.firm_user, w.expert_user):  # sent elsewhere from the dashboard; no bureau list
        login(who)
        body = client.get("/", follow_redirects=True).get_data(as_text=True)
        assert link not in body and se.name not in body, who.username
        listed = client.get("/reviews?overdue=1")
        assert listed.status_code == 403 or (row not in listed.get_data(as_text=True)
                                             and se.name not in listed.get_data(as_text=True)), who.username


def test_the_card_counts_what_the_late_list_shows_with_engagements_and_self_evaluations(unit, client, login):
    """An engagement's late report review and a self-evaluation's: the card counts two and the list it links to
    (``?overdue=1``) shows those two, each named by its subject; the sheet of that list has both too."""
    import pandas as pd

    from tests.test_review_services import _panel as engagement_panel

    w = unit
    e, report_panel = engagement_panel(w)
    report_panel.review_due = report_panel.review_due.replace(year=2020)
    se, panel = _overdue_self_evaluation_panel(w)
    db.session.commit()
    login(w.bz_staff)
    card = _card(client.get("/").get_data(as_text=True))
    assert 'data-testid="overdue-reviews-count">2<' in card
    assert f"{e.reference} {e.name}" in card and f"部门自评报告 {se.name}（巴州统计局）" in card
    late = client.get("/reviews?overdue=1").get_data(as_text=True)
    assert late.count('data-testid="panel-row-') == 2
    assert e.reference in late.split(f'data-testid="panel-row-{report_panel.id}"')[1].split("</tr>")[0]
    assert se.reference in late.split(f'data-testid="panel-row-{panel.id}"')[1].split("</tr>")[0]
    sheet = pd.read_excel(io.BytesIO(client.get("/reviews/export?overdue=1").data), dtype=str).fillna("")
    assert set(sheet["任务编号"]) == {e.reference, se.reference}
    assert set(sheet[sheet["任务编号"] == se.reference]["承担机构"]) == {"巴州统计局"}


def test_the_late_list_kept_for_the_day_reads_the_present_at_each_request(unit, client, login):
    """``/reviews?overdue=1`` is built once for the bureau's scope (``keep``): a deadline passing after the first
    request shows on the next one, as on the dashboard's card."""
    from datetime import datetime, timedelta

    from evalhub.core.timeutil import set_simulated_now, simulated_clock

    w = unit
    noon = datetime(2025, 6, 10, 4, 0)
    with simulated_clock(noon):
        se, panel = _overdue_self_evaluation_panel(w)
        panel.review_due = noon + timedelta(minutes=10)
        db.session.commit()
        login(w.bz_staff)
        row = f'data-testid="panel-row-{panel.id}"'
        assert row not in client.get("/reviews?overdue=1").get_data(as_text=True)
        set_simulated_now(noon + timedelta(minutes=20))
        assert row in client.get("/reviews?overdue=1").get_data(as_text=True)
        assert 'data-testid="overdue-reviews-count">1<' in _card(client.get("/").get_data(as_text=True))
