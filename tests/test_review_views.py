"""Review pages: who may open and post what (organisation scope, experts not on the panel, firms), what each
role may read (an expert sees others' reviews only after submitting; a firm never sees expert names or
individual totals), bad input answered 422 with the Chinese message and nothing written, the public
report list, and the whole road from a firm's report to a published report through the browser's forms."""
from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.models import Draw, StoredFile, User
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement import workflow
from evalhub.procurement.models import Engagement, EngagementState as S
from evalhub.review import services as R
from evalhub.core.models import Notification
from evalhub.core.notifications import notify
from evalhub.review.models import (
    CommissionerRating,
    EvaluationResult,
    InvitationStatus,
    PanelInvitation,
    Publication,
    ReportIndicator,
    Review,
    ReviewPanel,
    ReviewScore,
    ReviewStatus,
    Rubric,
    RubricKind,
    Submission,
    SubmissionKind,
)
from tests import factories

CHAPTERS = "\n".join(f"{n}、{c}\n本章内容。" for n, c in zip("一二三四五六七八", R.REPORT_CHAPTERS))
ROWS = [("decision", "立项依据充分性", "10", "9"), ("process", "资金到位率", "20", "18"),
        ("output", "完成数量", "35", "33"), ("benefit", "群众满意度", "35", "32")]
EXPERT_NAMES = [f"司马评审{n}" for n in "甲乙丙丁戊己庚"]


def text(response) -> str:
    return response.get_data(as_text=True)


# Rows the work plan's real review left behind (its file, submission, panel, reviews): count() without a
# condition counts what the test itself made after fieldwork began.
_PLAN_ROWS: dict = {}


@pytest.fixture(autouse=True)
def _forget_plan_rows():
    _PLAN_ROWS.clear()
    yield
    _PLAN_ROWS.clear()


def count(model, *where) -> int:
    stmt = sa.select(sa.func.count()).select_from(model)
    for clause in where:
        stmt = stmt.where(clause)
    return db.session.execute(stmt).scalar_one() - (0 if where else _PLAN_ROWS.get(model, 0))


def _docx(content: str) -> bytes:
    import docx

    document = docx.Document()
    for line in content.splitlines():
        document.add_paragraph(line)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def report_data(*, rows=ROWS, total="92", grade="excellent", content: bytes | None = None,
                filename="评价报告.docx", note="第一版") -> dict:
    data = {"concluded_total": total, "concluded_grade": grade, "note": note,
            "file": (io.BytesIO(content if content is not None else _docx(CHAPTERS)), filename)}
    for i in range(12):
        category, name, weight, score = rows[i] if i < len(rows) else ("", "", "", "")
        data.update({f"indicators-{i}-category": category, f"indicators-{i}-name": name,
                     f"indicators-{i}-weight": weight, f"indicators-{i}-score": score})
    return data


def _fieldwork(world, **kw) -> Engagement:
    e = factories.in_fieldwork(world, **kw)  # the work plan through a real panel
    db.session.commit()
    for model in (Submission, ReportIndicator, StoredFile, ReviewPanel, PanelInvitation, Review, ReviewScore):
        _PLAN_ROWS[model] = db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
    return e


def _report_submitted(world, **kw) -> Engagement:
    e = _fieldwork(world, **kw)
    R.submit(e, SubmissionKind.REPORT, "报告.docx", _docx(CHAPTERS), world.firm_user,
             indicators=[R.IndicatorInput(*row) for row in ROWS], concluded_total="92", concluded_grade="优")
    db.session.commit()
    return e


def _experts(world, n=5) -> list[User]:
    """The 巴州 pool's reviewers (with distinctive names), created once per test and reused."""
    users = []
    for i in range(n):
        user = db.session.execute(sa.select(User).where(User.username == f"sm{i}")).scalar_one_or_none()
        if user is None:
            expert = factories.expert(world.bz, name=EXPERT_NAMES[i], employer=f"新疆某研究院{i}")
            user = factories.user(f"sm{i}", Role.EXPERT, expert_id=expert.id)
        users.append(user)
    db.session.commit()
    return users


def _user_of(invitation: PanelInvitation) -> User:
    return db.session.execute(sa.select(User).where(User.expert_id == invitation.expert_id)).scalar_one()


def _outsider(world) -> User:
    """An expert of another prefecture's pool: never on a 巴州 panel."""
    expert = factories.expert(world.kz, name="局外专家")
    user = factories.user("outsider", Role.EXPERT, expert_id=expert.id)
    db.session.commit()
    return user


def _panel(world, size=3, accept=True) -> tuple[Engagement, ReviewPanel]:
    e = _report_submitted(world)
    _experts(world)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=size))
    if accept:
        for invitation in panel.invitations:
            R.respond(invitation, _user_of(invitation), accept=True, declaration_signed=True)
    db.session.commit()
    return e, panel


def _review(invitation, points, opinion="总体较好", comment="意见"):
    user = _user_of(invitation)
    items = invitation.review.rubric.items
    R.save_review(invitation.review, user, scores={i.id: p for i, p in zip(items, points)},
                  comments={i.id: f"{comment}：{i.name}" for i in items}, opinion=opinion)
    R.submit_review(invitation.review, user)
    db.session.commit()


def _accepted(world) -> Engagement:
    e, panel = _panel(world)
    for invitation in panel.invitations:
        _review(invitation, [19] * 5)
    return e


def _published(world) -> tuple[Engagement, Publication]:
    e = _accepted(world)
    publication = R.publish(e, world.bz_staff, filename="脱密版.docx", data=_docx("脱密后的报告全文"))
    db.session.commit()
    return e, publication


def _review_data(review: Review, points, opinion="总体较好", comment="理由", action="submit") -> dict:
    data = {"opinion": opinion, "action": action}
    for item, p in zip(review.rubric.items, points):
        data[f"score_{item.id}"] = str(p)
        data[f"comment_{item.id}"] = f"{comment}：{item.name}"
    return data


def _assert_refused(client, login, users, method, url, data=None):
    for user in users:
        login(user)
        response = client.open(url, method=method, data=data or {})
        assert response.status_code == 403, (user.username, url, response.status_code)


def _assert_login_required(client, method, url):
    client.post("/logout")  # the tests share one app context, so sign out rather than open a second client
    response = client.open(url, method=method)
    assert response.status_code == 302 and "/login" in response.headers["Location"], url


# --- the firm uploads ------------------------------------------------------------------------------

def test_the_firm_uploads_a_report_with_its_scoring_table(client, login, world):
    e = _fieldwork(world)
    login(world.firm_user)
    page = client.get(f"/engagements/{e.id}/submissions/new?kind=report")
    assert page.status_code == 200
    html = text(page)
    assert 'data-testid="upload-submission"' in html
    assert html.count('class="indicator-row') >= 12
    for label in ("决策", "过程", "产出", "效益"):
        assert label in html
    response = client.post(f"/engagements/{e.id}/submissions/new?kind=report", data=report_data(),
                           content_type="multipart/form-data")
    assert response.status_code == 302, text(response)[:2000]
    submission = db.session.execute(sa.select(Submission).where(Submission.kind == SubmissionKind.REPORT)).scalar_one()
    assert response.headers["Location"].endswith(f"/submissions/{submission.id}")
    assert [i.name for i in submission.indicators] == [r[1] for r in ROWS]  # blank rows ignored
    assert e.state == S.REPORT_SUBMITTED
    detail = text(client.get(f"/submissions/{submission.id}"))
    assert detail.count("✓") == 7 and "✗" not in detail
    assert "8 个章节齐全" in detail and "评价报告.docx" in detail and "基本情况" in detail  # extracted text
    download = client.get(f"/submissions/{submission.id}/file")
    assert download.status_code == 200 and download.data.startswith(b"PK")


def test_a_work_plan_is_a_file_and_a_note(client, login, world):
    e = factories.contracted(world)
    db.session.commit()
    login(world.firm_user)
    assert "indicator-row" not in text(client.get(f"/engagements/{e.id}/submissions/new"))
    response = client.post(f"/engagements/{e.id}/submissions/new?kind=work_plan",
                           data={"file": (io.BytesIO(_docx("实施方案")), "方案.docx"), "note": "初稿"},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    assert e.state == S.PLAN_SUBMITTED and R.latest_submission(e, SubmissionKind.WORK_PLAN).note == "初稿"


def test_failed_machine_checks_are_shown_with_details(client, login, world):
    e = _fieldwork(world)
    login(world.firm_user)
    rows = ROWS[:3] + [("benefit", "群众满意度", "30", "27")]
    client.post(f"/engagements/{e.id}/submissions/new?kind=report", data=report_data(rows=rows, total="88"),
                content_type="multipart/form-data")
    submission = db.session.execute(sa.select(Submission).where(Submission.kind == SubmissionKind.REPORT)).scalar_one()
    html = text(client.get(f"/submissions/{submission.id}"))
    assert 'data-testid="check-weights_sum" data-ok="false"' in html and "权重合计 95" in html
    assert 'data-testid="check-grade_matches_band" data-ok="false"' in html


@pytest.mark.parametrize("data, message", [
    (dict(rows=[("decision", "立项依据充分性", "十", "9")] + ROWS[1:]), "第 1 行权重必须是数字"),
    (dict(rows=ROWS[:3] + [("benefit", "群众满意度", "35", "很好")]), "第 4 行得分必须是数字"),
    (dict(rows=[("", "立项依据充分性", "10", "9")] + ROWS[1:]), "第 1 行指标类别无效"),
    (dict(rows=ROWS + [("output", "", "5", "5")]), "第 5 行填写了分值，请填写指标名称"),
    (dict(rows=[]), "请填写评价指标评分表"),
    (dict(total="九十二"), "报告结论总分必须是数字"),
    (dict(total="120"), "报告结论总分应在 0–100 之间"),
    (dict(grade=""), "请选择报告结论的评价等级"),
    (dict(content="纯文本的报告".encode(), filename="报告.txt"), "文件类型不符：只接受 Word (.docx)、PDF"),
])
def test_bad_report_input_is_refused_with_nothing_written(client, login, world, data, message):
    e = _fieldwork(world)
    login(world.firm_user)
    response = client.post(f"/engagements/{e.id}/submissions/new?kind=report", data=report_data(**data),
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert message in text(response)
    db.session.expire_all()
    assert count(Submission) == 0 and count(ReportIndicator) == 0 and count(StoredFile) == 0
    assert db.session.get(Engagement, e.id).state == S.FIELDWORK


def test_a_missing_file_is_refused(client, login, world):
    e = _fieldwork(world)
    login(world.firm_user)
    data = report_data()
    del data["file"]
    response = client.post(f"/engagements/{e.id}/submissions/new?kind=report", data=data,
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "请选择要上传的文件" in text(response)
    assert count(Submission) == 0


def test_only_the_contracted_firm_opens_the_upload_page(app, client, login, world):
    e = _fieldwork(world)
    url = f"/engagements/{e.id}/submissions/new?kind=report"
    _assert_refused(client, login, [world.bz_staff, world.bz_admin, world.sysadmin, world.other_firm_user,
                                    world.expert_user, world.kz_admin], "GET", url)
    _assert_refused(client, login, [world.bz_staff, world.other_firm_user], "POST", url)
    _assert_login_required(client, "GET", url)
    login(world.firm_user)
    assert client.get(f"/engagements/{e.id}/submissions/new?kind=work_plan").status_code == 409  # wrong state
    assert client.get(f"/engagements/{e.id}/submissions/new?kind=nonsense").status_code == 404
    assert client.get("/engagements/99999/submissions/new").status_code == 404
    assert count(Submission) == 0


def test_who_reads_a_submission(app, client, login, world):
    e, panel = _panel(world, accept=False)
    submission = panel.submission
    outsider = _outsider(world)
    for url in (f"/submissions/{submission.id}", f"/submissions/{submission.id}/file"):
        for user in (world.firm_user, world.bz_staff, world.bz_admin, world.region_admin, world.sysadmin):
            login(user)
            assert client.get(url).status_code == 200, (user.username, url)
        # an invited expert has not declared yet; others are not on the panel; other organisations are out of scope
        invited = _user_of(panel.invitations[0])
        _assert_refused(client, login, [invited, outsider, world.other_firm_user, world.kz_admin, world.krl_admin],
                        "GET", url)
        _assert_login_required(client, "GET", url)
    R.respond(panel.invitations[0], invited, accept=True, declaration_signed=True)
    db.session.commit()
    login(invited)
    assert client.get(f"/submissions/{submission.id}").status_code == 200
    assert client.get(f"/submissions/{submission.id}/file").status_code == 200


# --- the bureau forms a panel ----------------------------------------------------------------------

def test_the_bureau_forms_a_panel_and_sees_the_experts(app, client, login, world):
    e = _report_submitted(world)
    _experts(world)
    submission = R.latest_submission(e, SubmissionKind.REPORT)
    url = f"/engagements/{e.id}/panel"
    _assert_refused(client, login, [world.kz_admin, world.region_admin, world.krl_admin, world.firm_user,
                                    world.expert_user], "GET", url)
    _assert_refused(client, login, [world.kz_admin, world.firm_user, world.expert_user], "POST", url, {"size": "3"})
    _assert_login_required(client, "POST", url)
    login(world.bz_staff)
    assert 'data-testid="form-panel"' in text(client.get(f"/submissions/{submission.id}"))
    assert 'data-testid="form-panel"' in text(client.get(url))
    response = client.post(url, data={"size": "3"})
    assert response.status_code == 302
    announced = db.session.execute(sa.select(Draw).where(Draw.kind == "review_panel")
                                   .order_by(Draw.id.desc())).scalars().first()
    assert response.headers["Location"].endswith(f"/draws/{announced.id}")  # witnessed, then revealed
    factories.witnessed(announced)
    db.session.commit()
    panel = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.kind == SubmissionKind.REPORT)).scalar_one()
    assert e.state == S.REPORT_IN_REVIEW and len(panel.invitations) == 3
    html = text(client.get(f"/reviews/panels/{panel.id}"))
    for invitation in panel.invitations:
        assert invitation.expert.name in html
    assert f"/draws/{panel.draw_id}" in html
    assert client.get(f"/draws/{panel.draw_id}").status_code == 200
    # the panel page: own bureau and upper bureaus read it; another prefecture, firms and experts do not
    for user in (world.bz_admin, world.region_admin, world.sysadmin):
        login(user)
        assert client.get(f"/reviews/panels/{panel.id}").status_code == 200
    _assert_refused(client, login, [world.kz_admin, world.kz_staff, world.krl_admin, world.firm_user,
                                    world.other_firm_user, _user_of(panel.invitations[0])],
                    "GET", f"/reviews/panels/{panel.id}")
    _assert_login_required(client, "GET", f"/reviews/panels/{panel.id}")
    login(world.bz_staff)
    assert client.post(url, data={"size": "3"}).status_code == 409  # already in review


@pytest.mark.parametrize("size, message", [("4", "评审专家人数应为不少于 3 的单数"), ("三", "评审专家人数必须是整数"),
                                           ("7", "符合条件的候选不足")])
def test_a_bad_panel_size_is_refused_with_nothing_written(client, login, world, size, message):
    e = _report_submitted(world)
    _experts(world)
    login(world.bz_staff)
    response = client.post(f"/engagements/{e.id}/panel", data={"size": size})
    assert response.status_code == 422 and message in text(response)
    db.session.expire_all()
    assert count(ReviewPanel) == 0 and count(PanelInvitation) == 0
    assert db.session.get(Engagement, e.id).state == S.REPORT_SUBMITTED


# --- the expert: invitations and reviews -----------------------------------------------------------

def test_an_expert_accepts_with_the_declaration_or_declines_with_a_reason(app, client, login, world):
    e, panel = _panel(world, accept=False)
    first, second = panel.invitations[0], panel.invitations[1]
    url = f"/reviews/invitations/{first.id}"
    _assert_refused(client, login, [_user_of(second), world.bz_staff, world.firm_user, world.sysadmin], "GET", url)
    _assert_refused(client, login, [_user_of(second)], "POST", url, {"action": "accept", "declaration": "y"})
    _assert_login_required(client, "GET", url)
    login(_user_of(first))
    workspace = text(client.get("/reviews"))
    assert f"/reviews/invitations/{first.id}" in workspace
    page = text(client.get(url))
    assert R.DECLARATION in page and 'data-testid="accept-invitation"' in page
    assert "submissions/" not in page  # nothing of the submission before the declaration
    refused = client.post(url, data={"action": "accept"})
    assert refused.status_code == 422 and "接受邀请前须签署无利益冲突声明" in text(refused)
    assert count(Review) == 0 and first.status == InvitationStatus.INVITED
    response = client.post(url, data={"action": "accept", "declaration": "y"})
    assert response.status_code == 302
    assert first.status == InvitationStatus.ACCEPTED and first.declaration == R.DECLARATION
    assert response.headers["Location"].endswith(f"/reviews/{first.review.id}")
    assert client.post(url, data={"action": "accept", "declaration": "y"}).status_code == 409

    login(_user_of(second))
    url = f"/reviews/invitations/{second.id}"
    refused = client.post(url, data={"action": "decline", "reason": ""})
    assert refused.status_code == 422 and "请说明拒绝的原因" in text(refused)
    assert len(panel.invitations) == 3
    assert client.post(url, data={"action": "decline", "reason": "近期出差"}).status_code == 302
    db.session.expire_all()
    assert second.status == InvitationStatus.DECLINED and len(panel.invitations) == 3  # the replacement is announced
    factories.witness_pending()
    assert len(panel.invitations) == 4


def test_the_review_form_saves_drafts_refuses_bad_scores_and_submits_once(client, login, world):
    e, panel = _panel(world)
    invitation = panel.invitations[0]
    review = invitation.review
    expert = _user_of(invitation)
    login(expert)
    page = text(client.get(f"/reviews/{review.id}"))
    assert 'data-testid="submit-review"' in page and "保存草稿" in page
    for item in review.rubric.items:
        assert item.name in page and f'name="score_{item.id}"' in page
    assert "基本情况" in page and "8 个章节齐全" in page  # the submission and its machine checks beside it

    over = client.post(f"/reviews/{review.id}", data=_review_data(review, [25, 18, 18, 18, 18], action="save"))
    assert over.status_code == 422 and "“结构与格式”得分应在 0–20" in text(over)
    assert count(ReviewScore) == 0
    bad = client.post(f"/reviews/{review.id}", data=_review_data(review, ["很好", 18, 18, 18, 18], action="save"))
    assert bad.status_code == 422 and "得分必须是数字" in text(bad)
    assert count(ReviewScore) == 0

    assert client.post(f"/reviews/{review.id}", data=_review_data(review, [18, 17, "", "", ""], action="save",
                                                                  opinion="")).status_code == 302
    # two items scored; the other three keep their reasons unscored (a draft holds what was typed)
    mine = ReviewScore.review_id == review.id
    assert count(ReviewScore, mine, ReviewScore.points.is_not(None)) == 2 and count(ReviewScore, mine) == 5
    assert review.status == ReviewStatus.DRAFT
    incomplete = client.post(f"/reviews/{review.id}", data=_review_data(review, [18, 17, "", "", ""], opinion=""))
    assert incomplete.status_code == 422 and "请填写总体评审意见" in text(incomplete)
    assert review.status == ReviewStatus.DRAFT

    assert client.post(f"/reviews/{review.id}", data=_review_data(review, [18, 17, 16, 19, 18])).status_code == 302
    assert review.status == ReviewStatus.SUBMITTED and review.total == Decimal("88")
    done = text(client.get(f"/reviews/{review.id}"))
    assert 'data-testid="submit-review"' not in done and 'data-testid="own-review"' in done
    assert client.post(f"/reviews/{review.id}", data=_review_data(review, [20] * 5)).status_code == 409


def test_an_expert_not_on_the_panel_gets_403(app, client, login, world):
    e, panel = _panel(world)
    outsider = _outsider(world)
    review = panel.invitations[0].review
    colleague = _user_of(panel.invitations[1])
    seated = {i.expert_id for i in panel.invitations}
    others = [outsider, colleague] + ([world.expert_user] if world.expert.id not in seated else [])
    for user in others:
        login(user)
        if user is not colleague:
            assert client.get(f"/submissions/{panel.submission_id}").status_code == 403
            assert client.get(f"/submissions/{panel.submission_id}/file").status_code == 403
        assert client.get(f"/reviews/{review.id}").status_code == 403
        assert client.post(f"/reviews/{review.id}", data=_review_data(review, [18] * 5)).status_code == 403
        assert client.get(f"/reviews/panels/{panel.id}").status_code == 403
    _assert_refused(client, login, [world.bz_staff, world.firm_user], "GET", f"/reviews/{review.id}")
    _assert_login_required(client, "GET", f"/reviews/{review.id}")
    assert count(ReviewScore) == 0


def test_an_expert_sees_other_reviews_only_after_submitting(client, login, world):
    e, panel = _panel(world)
    a, b, c = panel.invitations
    _review(a, [18] * 5, opinion="甲的总体意见独一无二", comment="甲的理由")
    login(_user_of(b))
    before = text(client.get(f"/reviews/{b.review.id}"))
    assert "甲的总体意见独一无二" not in before and "甲的理由" not in before
    client.post(f"/reviews/{b.review.id}", data=_review_data(b.review, [17] * 5, opinion="乙的意见"))
    after = text(client.get(f"/reviews/{b.review.id}"))
    assert "甲的总体意见独一无二" in after and "甲的理由" in after and 'data-testid="other-review"' in after
    assert a.expert.name not in after  # other reviewers are shown without their names
    # the one still drafting sees nobody else's
    login(_user_of(c))
    drafting = text(client.get(f"/reviews/{c.review.id}"))
    assert "甲的总体意见独一无二" not in drafting and "乙的意见" not in drafting


# --- the outcome, the letter, the firm's view ------------------------------------------------------

def _failed_panel(world):
    e, panel = _panel(world)
    # totals 81.5, 84.5, 88.5 → 84.83 below the pass mark 90
    for invitation, points in zip(panel.invitations, ([16.5, 16, 16, 17, 16], [17.5, 17, 17, 17, 16],
                                                      [18.5, 18, 18, 17, 17])):
        _review(invitation, points, opinion="问题分析不够具体", comment="需补充数据")
    return e, panel


def test_the_bureau_edits_and_sends_the_letter(client, login, world):
    e, panel = _failed_panel(world)
    assert panel.score == Decimal("84.83") and not panel.passed
    login(world.bz_staff)
    html = text(client.get(f"/reviews/panels/{panel.id}"))
    assert 'data-testid="send-letter"' in html and "84.83" in html and "问题分析不够具体" in html
    for invitation in panel.invitations:
        assert invitation.expert.name in html
    _assert_refused(client, login, [world.kz_admin, world.region_admin, world.firm_user, _user_of(panel.invitations[0])],
                    "POST", f"/reviews/panels/{panel.id}/letter", {"letter": panel.letter + "\n补充"})
    login(world.bz_staff)
    short = client.post(f"/reviews/panels/{panel.id}/letter", data={"letter": "太短"})
    assert short.status_code == 422 and "整改意见过短" in text(short)
    db.session.expire_all()
    assert e.state == S.REPORT_IN_REVIEW and panel.letter_sent_at is None
    edited = panel.letter + "\n财政局补充：请于十五日内完成整改并说明修改情况。"
    assert client.post(f"/reviews/panels/{panel.id}/letter", data={"letter": edited}).status_code == 302
    assert e.state == S.REPORT_RETURNED and panel.letter == edited.strip()
    assert client.post(f"/reviews/panels/{panel.id}/letter", data={"letter": edited}).status_code == 409


def test_the_firm_never_sees_expert_names_or_individual_totals(client, login, world):
    e, panel = _failed_panel(world)
    R.send_letter(panel, world.bz_staff, panel.letter + "\n财政局补充：请逐条整改。")
    db.session.commit()
    names = [i.expert.name for i in panel.invitations] + [i.expert.employer for i in panel.invitations]
    login(world.firm_user)
    pages = [client.get(f"/submissions/{panel.submission_id}"), client.get("/inbox"),
             client.get(f"/engagements/{e.id}/submissions/new?kind=report")]
    for response in pages:
        assert response.status_code == 200
        html = text(response)
        for name in names:
            assert name not in html
        for total in ("81.5", "84.5", "88.5"):
            assert total not in html
    firm_page = text(pages[0])
    assert "财政局补充：请逐条整改。" in firm_page and "退回整改" in firm_page and "84.83" in firm_page
    assert "previous-letter" in text(pages[2])
    _assert_refused(client, login, [world.firm_user], "GET", f"/reviews/panels/{panel.id}")
    _assert_refused(client, login, [world.firm_user], "GET", f"/reviews/{panel.invitations[0].review.id}")
    _assert_refused(client, login, [world.firm_user], "GET", f"/engagements/{e.id}/reviews.xlsx")
    _assert_refused(client, login, [world.firm_user], "GET", "/reviews/export")


def test_the_engagement_timeline_names_the_panel_never_the_expert_who_closed_it(client, login, world):
    e = _accepted(world)  # the last expert's submission decided the panel and accepted the report
    experts = _experts(world)
    for user in (world.firm_user, world.bz_staff):
        html = text(login(user).get(f"/engagements/{e.id}"))
        assert "报告验收通过" in html and "专家评审组" in html
        for expert_user in experts:
            assert f">{expert_user.display_name}<" not in html and expert_user.expert.name not in html


def test_the_bureau_reopens_a_submitted_review_with_a_reason(client, login, world):
    e, panel = _panel(world)
    a = panel.invitations[0]
    _review(a, [18] * 5)
    url = f"/reviews/{a.review.id}/reopen"
    _assert_refused(client, login, [world.kz_admin, world.firm_user, _user_of(a)], "POST", url, {"reason": "理由"})
    login(world.bz_staff)
    assert 'data-testid="reopen-review-%d"' % a.review.id in text(client.get(f"/reviews/panels/{panel.id}"))
    refused = client.post(url, data={"reason": ""})
    assert refused.status_code == 422 and "退回专家修改须说明原因" in text(refused)
    assert a.review.status == ReviewStatus.SUBMITTED
    assert client.post(url, data={"reason": "评分理由过于简单"}).status_code == 302
    assert a.review.status == ReviewStatus.DRAFT


# --- result, rating, publication -------------------------------------------------------------------

def test_result_page_caps_and_commissioner_rating(app, client, login, world):
    e = _accepted(world)
    url = f"/engagements/{e.id}/result"
    _assert_refused(client, login, [world.firm_user, world.expert_user, world.kz_admin], "GET", url)
    _assert_refused(client, login, [world.region_admin, world.kz_admin, world.firm_user], "POST", url,
                    {"form": "cap_add", "code": "audit_problems", "reason": "审计发现问题", "link": "/x"})
    _assert_login_required(client, "GET", url)
    login(world.region_admin)
    assert client.get(url).status_code == 200  # an upper bureau reads
    login(world.bz_staff)
    html = text(client.get(url))
    assert "优" in html and 'data-testid="publish"' in html and 'data-testid="rate-firm"' in html
    assert 'data-testid="classify"' not in html  # withholding is for admins
    assert client.post(url, data={"form": "cap_add", "code": "audit_problems", "reason": "审计发现问题"}).status_code == 422
    assert client.post(url, data={"form": "cap_add", "code": "audit_problems", "reason": "审计发现问题",
                                  "link": "/supervision/inspections/1"}).status_code == 302
    result = db.session.execute(sa.select(EvaluationResult)).scalar_one()
    assert result.grade.label == "中" and result.band_grade.label == "优"

    rubric = R.current_rubric(world.bz, RubricKind.COMMISSIONER)
    data = {"form": "rating", "comment": "配合良好"}
    data.update({f"score_{i.id}": str(i.max_points - 1) for i in rubric.items})
    over = dict(data, **{f"score_{rubric.items[0].id}": "99"})
    response = client.post(url, data=over)
    assert response.status_code == 422 and f"“{rubric.items[0].name}”应在 0–15" in text(response)
    assert count(CommissionerRating) == 0
    assert client.post(url, data=data).status_code == 302
    rating = db.session.execute(sa.select(CommissionerRating)).scalar_one()
    assert rating.total == Decimal("95")
    assert client.post(url, data=data).status_code == 409


def test_publication_refuses_bad_files_and_classification_needs_an_admin_and_a_reason(client, login, world):
    e = _accepted(world)
    url = f"/engagements/{e.id}/result"
    login(world.bz_staff)
    bad = client.post(url, data={"form": "publish", "file": (io.BytesIO("脱密文本".encode()), "脱密.txt")},
                      content_type="multipart/form-data")
    assert bad.status_code == 422 and "文件类型不符" in text(bad)
    missing = client.post(url, data={"form": "publish"}, content_type="multipart/form-data")
    assert missing.status_code == 422 and "请上传脱密后的报告文件" in text(missing)
    assert client.post(url, data={"form": "classify", "reason": "涉密"}).status_code == 403
    assert count(Publication) == 0 and e.state == S.ACCEPTED
    login(world.bz_admin)
    assert 'data-testid="classify"' in text(client.get(url))
    empty = client.post(url, data={"form": "classify", "reason": ""})
    assert empty.status_code == 422 and "标记为涉密不予公开须说明理由" in text(empty)
    assert count(Publication) == 0
    assert client.post(url, data={"form": "classify", "reason": "涉及国家秘密"}).status_code == 302
    assert e.state == S.ARCHIVED
    assert client.post(url, data={"form": "nonsense"}).status_code == 400


def test_an_open_inspection_holds_publication_until_an_admin_waives_it_with_a_reason(client, login, world):
    from evalhub.core.models import AuditEvent
    from evalhub.supervision import services as V

    e = _accepted(world)
    inspection = V.open_case(world.bz, world.bz_admin, trigger="other", detail="群众反映问卷数据存疑", engagement=e)
    db.session.commit()
    url = f"/engagements/{e.id}/result"
    upload = {"form": "publish", "file": (io.BytesIO(_docx("脱密后的报告全文")), "脱密版.docx")}
    login(world.bz_staff)
    page = text(client.get(url))
    assert 'data-testid="publish-blocked"' in page and f"未办结的检查（#{inspection.id}）" in page
    assert "须由本级财政局管理员说明理由后豁免" in page and 'name="override"' not in page
    refused = client.post(url, data=dict(upload), content_type="multipart/form-data")
    assert refused.status_code == 409 and "未办结的检查" in text(refused)
    waived = dict(upload, override="领导要求", file=(io.BytesIO(_docx("脱密后的报告全文")), "脱密版.docx"))
    assert client.post(url, data=waived, content_type="multipart/form-data").status_code == 403  # staff may not waive
    assert count(Publication) == 0 and db.session.get(Engagement, e.id).state == S.ACCEPTED
    login(world.bz_admin)
    assert 'name="override"' in text(client.get(url))
    waived["file"] = (io.BytesIO(_docx("脱密后的报告全文")), "脱密版.docx")
    waived["override"] = "检查只涉及问卷归档，不影响报告结论"
    assert client.post(url, data=waived, content_type="multipart/form-data").status_code == 302
    db.session.expire_all()
    assert db.session.get(Engagement, e.id).state == S.PUBLISHED
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "engagement.publish")).scalar_one()
    assert event.payload["waived"][0]["reason"] == "检查只涉及问卷归档，不影响报告结论"
    assert "管理员豁免" in text(client.get(f"/engagements/{e.id}"))  # on the timeline


def test_accept_with_deduction_after_the_last_round(client, login, world):
    set_setting(world.bz, "review.max_rounds", 1, world.bz_admin)
    e, panel = _failed_panel(world)
    R.send_letter(panel, world.bz_staff, panel.letter)
    db.session.commit()
    url = f"/engagements/{e.id}/result"
    login(world.firm_user)
    assert client.get(f"/engagements/{e.id}/submissions/new?kind=report").status_code == 409
    login(world.bz_staff)
    html = text(client.get(url))
    assert "报告已评审 1 轮仍未通过" in html and 'data-testid="accept-with-deduction"' not in html
    assert client.post(url, data={"form": "deduction", "deduction": "5", "reason": "一轮未通过"}).status_code == 403
    login(world.bz_admin)
    assert 'data-testid="accept-with-deduction"' in text(client.get(url))
    bad = client.post(url, data={"form": "deduction", "deduction": "五分", "reason": "一轮未通过"})
    assert bad.status_code == 422 and "扣分必须是数字" in text(bad)
    db.session.expire_all()
    assert db.session.get(Engagement, e.id).state == S.REPORT_RETURNED and count(EvaluationResult) == 0
    assert client.post(url, data={"form": "deduction", "deduction": "5", "reason": "一轮未通过，扣分验收"}).status_code == 302
    assert e.state == S.ACCEPTED
    assert db.session.execute(sa.select(EvaluationResult)).scalar_one().deduction == Decimal("5")


# --- rubrics ---------------------------------------------------------------------------------------

def _rubric_data(rows, title="巴州报告评审表") -> dict:
    data = {"title": title}
    for i, (name, description, points) in enumerate(rows):
        data.update({f"items-{i}-name": name, f"items-{i}-description": description, f"items-{i}-max_points": points})
    return data


def test_rubric_editing_makes_versions(app, client, login, world):
    url = f"/bureaus/{world.bz.id}/rubrics/report"
    _assert_refused(client, login, [world.kz_admin, world.firm_user, world.expert_user], "GET", url)
    _assert_refused(client, login, [world.bz_staff, world.region_admin, world.krl_admin, world.kz_admin], "POST", url,
                    _rubric_data([("结构", "", "100")]))
    _assert_login_required(client, "GET", url)
    login(world.bz_staff)
    assert client.get(url).status_code == 200  # read-only for staff
    login(world.bz_admin)
    page = text(client.get(url))
    assert "结构与格式" in page and "沿用系统默认" in page
    bad = client.post(url, data=_rubric_data([("结构", "", "50"), ("证据", "", "40")]))
    assert bad.status_code == 422 and "各评分项分值合计应为 100，当前为 90" in text(bad)
    nan = client.post(url, data=_rubric_data([("结构", "", "五十"), ("证据", "", "50")]))
    assert nan.status_code == 422 and "“结构”的分值必须是数字" in text(nan)
    assert count(Rubric, Rubric.bureau_id == world.bz.id) == 0
    assert client.post(url, data=_rubric_data([("结构", "八章", "40"), ("证据", "数据", "60")])).status_code == 302
    assert client.post(url, data=_rubric_data([("结构", "八章", "30"), ("证据", "数据", "70")])).status_code == 302
    history = text(client.get(url))
    assert "第 1 版" in history and "第 2 版" in history
    assert R.current_rubric(world.bz, RubricKind.REPORT).version == 2
    assert client.get(f"/bureaus/{world.bz.id}/rubrics/nonsense").status_code == 404


# --- exports, workspace, inbox ---------------------------------------------------------------------

def test_review_exports_are_for_the_bureau(app, client, login, world):
    e, panel = _failed_panel(world)
    login(world.bz_staff)
    response = client.get("/reviews/export?year=2025")
    assert response.status_code == 200 and response.mimetype.endswith("sheet")
    frame = pd.read_excel(io.BytesIO(response.data))
    assert set(frame["评审类型"]) == {"实施方案", "评价报告"}  # the work plan's review is in the year too
    frame = frame[frame["评审类型"] == "评价报告"]
    assert set(frame["评审专家"]) == {i.expert.name for i in panel.invitations}
    assert "结构与格式（20）" in frame.columns and set(frame["专家合计"]) == {81.5, 84.5, 88.5}
    assert set(frame["评审组得分（均值）"]) == {84.83}
    assert pd.read_excel(io.BytesIO(client.get("/reviews/export?year=2024").data)).empty
    one = client.get(f"/engagements/{e.id}/reviews.xlsx")
    assert one.status_code == 200 and len(pd.read_excel(io.BytesIO(one.data))) == 3 + 3  # plan and report panels
    login(world.kz_admin)
    assert pd.read_excel(io.BytesIO(client.get("/reviews/export").data)).empty  # nothing of 巴州
    _assert_refused(client, login, [world.kz_admin, world.firm_user, world.expert_user], "GET",
                    f"/engagements/{e.id}/reviews.xlsx")
    _assert_refused(client, login, [world.firm_user, world.expert_user], "GET", "/reviews/export")
    _assert_login_required(client, "GET", "/reviews/export")


def test_workspace_lists_for_experts_and_panels_for_bureaus(app, client, login, world):
    e, panel = _panel(world, accept=False)
    invitation = panel.invitations[0]
    login(_user_of(invitation))
    html = text(client.get("/reviews"))
    assert e.name in html and f"/reviews/invitations/{invitation.id}" in html and "我的评审" in html
    login(world.bz_staff)
    listing = text(client.get("/reviews"))
    assert f'data-testid="panel-row-{panel.id}"' in listing
    login(world.kz_admin)
    assert f'data-testid="panel-row-{panel.id}"' not in text(client.get("/reviews"))
    _assert_refused(client, login, [world.firm_user], "GET", "/reviews")
    _assert_login_required(client, "GET", "/reviews")


def test_the_inbox_shows_notifications_newest_first_and_marks_them_read(app, client, login, world):
    e, panel = _panel(world, accept=False)
    expert = _user_of(panel.invitations[0])
    notify(expert, "较新的消息", "正文", "/reviews")
    db.session.commit()
    login(expert)
    html = text(client.get("/inbox"))
    assert html.index("较新的消息") < html.index("评审邀请")
    assert 'data-testid="unread-count">2<' in html
    notes = db.session.execute(sa.select(Notification).where(Notification.user_id == expert.id)
                               .order_by(Notification.id)).scalars().all()
    assert f'data-testid="note-{notes[0].id}" data-unread="true"' in html
    response = client.post(f"/inbox/{notes[0].id}/read", data={"open": "1"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/reviews/invitations/{panel.invitations[0].id}")
    assert notes[0].read_at is not None
    assert 'data-testid="unread-count">1<' in text(client.get("/inbox"))
    login(world.bz_staff)  # someone else's message
    assert client.post(f"/inbox/{notes[1].id}/read").status_code == 404
    assert notes[1].read_at is None
    login(expert)
    assert client.post("/inbox/read-all").status_code == 302
    assert notes[1].read_at is not None and 'data-testid="unread-count"' not in text(client.get("/inbox"))
    _assert_login_required(client, "GET", "/inbox")
    _assert_login_required(client, "POST", "/inbox/read-all")
    _assert_login_required(client, "POST", f"/inbox/{notes[0].id}/read")


def test_only_its_recipient_marks_a_notification_read_whatever_the_path(world):
    """The rule is the service's (the inbox page checked the recipient and wrote ``read_at`` itself): another
    account marking someone's notification read is answered as missing, nothing changed; "全部标为已读" marks the
    account's own and nobody else's."""
    from evalhub.core import notifications
    from evalhub.core.errors import NotFound

    mine = notify(world.bz_staff, "本人的消息", "正文")
    theirs = notify(world.firm_user, "机构的消息", "正文")
    db.session.commit()
    for outsider in (world.bz_staff, world.bz_admin, world.sysadmin):
        with pytest.raises(NotFound):
            notifications.mark_read(theirs, outsider)
    assert theirs.read_at is None and not db.session.dirty
    assert notifications.mark_all_read(world.bz_staff) == 1
    db.session.commit()
    db.session.refresh(mine), db.session.refresh(theirs)
    assert mine.read_at is not None and theirs.read_at is None
    assert notifications.mark_read(theirs, world.firm_user).read_at is not None


def test_navbar_links(client, login, world):
    login(world.expert_user)
    html = text(client.get("/inbox"))
    assert 'data-testid="nav-reviews"' in html and 'data-testid="nav-inbox"' in html
    login(world.firm_user)
    html = text(client.get("/inbox"))
    assert 'data-testid="nav-reviews"' not in html and 'data-testid="nav-inbox"' in html


def test_the_reminders_command(app, world):
    e, panel = _panel(world)
    panel.review_due = utcnow() + timedelta(hours=12)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["evalhub", "reminders"])
    assert result.exit_code == 0, result.output
    assert "提醒：3 条" in result.output


# --- the public ------------------------------------------------------------------------------------

def test_the_public_sees_published_reports_only(app, world):
    published, publication = _published(world)
    accepted = _accepted(world)
    classified = _accepted(world)
    withheld = R.publish(classified, world.bz_admin, classified=True, reason="涉及国家秘密")
    db.session.commit()
    public = app.test_client()
    html = text(public.get("/public/reports"))
    assert published.name in html and accepted.name not in html and classified.name not in html
    assert world.firm.name in html and "项目支出" in html
    download = public.get(f"/public/reports/{publication.id}/file")
    assert download.status_code == 200
    from evalhub.core.files import extract_text

    assert extract_text("docx", download.data)[0].startswith("脱密后的报告全文")
    assert public.get(f"/public/reports/{withheld.id}/file").status_code == 404
    assert public.get("/public/reports/99999/file").status_code == 404
    # filters
    assert published.name in text(public.get("/public/reports?year=2025&object_type=project&firm=巴州示范"))
    assert published.name not in text(public.get("/public/reports?firm=克州另一家"))
    assert published.name not in text(public.get("/public/reports?year=2024"))
    assert published.name in text(public.get(f"/public/reports?bureau={world.bz.id}"))
    assert published.name not in text(public.get(f"/public/reports?bureau={world.kz.id}"))
    assert published.name not in text(public.get("/public/reports?object_type=policy"))
    # archived after publication stays public
    workflow.perform(published, "archive", world.bz_staff)
    db.session.commit()
    assert published.name in text(public.get("/public/reports"))
    assert public.get(f"/public/reports/{publication.id}/file").status_code == 200


def test_an_accepted_unpublished_report_file_is_404(app, world):
    e = _accepted(world)
    # a publication row that is not (yet) a publication: no file, not classified
    row = Publication(engagement_id=e.id)
    db.session.add(row)
    db.session.commit()
    assert app.test_client().get(f"/public/reports/{row.id}/file").status_code == 404


# --- the whole road --------------------------------------------------------------------------------

def test_the_whole_road_from_report_to_public_through_the_pages(app, client, login, world):
    set_setting(world.bz, "review.report_panel_size", 3, world.bz_admin)
    e = _fieldwork(world)
    _experts(world, 7)

    # 1. the firm uploads its report
    login(world.firm_user)
    assert client.post(f"/engagements/{e.id}/submissions/new?kind=report", data=report_data(),
                       content_type="multipart/form-data").status_code == 302
    first = R.latest_submission(e, SubmissionKind.REPORT)

    # 2. the bureau forms the panel
    login(world.bz_staff)
    response = client.post(f"/engagements/{e.id}/panel", data={"size": ""})
    assert response.status_code == 302
    factories.witness_pending()  # the announced draw: witnessed and revealed
    db.session.commit()
    db.session.expire_all()
    panel = first.panel
    assert panel.size == 3

    # 3. three experts accept and review (below 90)
    for invitation, points in zip(list(panel.invitations), ([17] * 5, [18] * 5, [16] * 5)):
        login(_user_of(invitation))
        assert client.post(f"/reviews/invitations/{invitation.id}",
                           data={"action": "accept", "declaration": "y"}).status_code == 302
        assert client.post(f"/reviews/{invitation.review.id}",
                           data=_review_data(invitation.review, points, opinion="问题与建议不够具体")).status_code == 302
    assert panel.score == Decimal("85.00") and panel.passed is False

    # 4. the bureau edits the letter and sends it back
    login(world.bz_staff)
    assert 'data-testid="send-letter"' in text(client.get(f"/reviews/panels/{panel.id}"))
    letter = panel.letter + "\n请补充问题成因分析，建议须明确责任单位和完成时限。"
    assert client.post(f"/reviews/panels/{panel.id}/letter", data={"letter": letter}).status_code == 302
    assert e.state == S.REPORT_RETURNED

    # 5. the firm reads the letter and resubmits
    login(world.firm_user)
    assert "请补充问题成因分析" in text(client.get(f"/submissions/{first.id}"))
    page = text(client.get(f"/engagements/{e.id}/submissions/new?kind=report"))
    assert "立项依据充分性" in page  # the previous scoring table is the starting point
    assert client.post(f"/engagements/{e.id}/submissions/new?kind=report",
                       data=report_data(note="按意见整改", content=_docx(CHAPTERS + "\n整改说明")),
                       content_type="multipart/form-data").status_code == 302
    second = R.latest_submission(e, SubmissionKind.REPORT)
    assert second.version == 2 and e.state == S.REPORT_SUBMITTED

    # 6. the second panel accepts and passes it
    login(world.bz_staff)
    assert client.post(f"/engagements/{e.id}/panel", data={"size": "3"}).status_code == 302
    factories.witness_pending()
    db.session.commit()
    db.session.expire_all()
    panel2 = second.panel
    assert panel2.round == 2
    for invitation in list(panel2.invitations):
        login(_user_of(invitation))
        assert client.post(f"/reviews/invitations/{invitation.id}",
                           data={"action": "accept", "declaration": "y"}).status_code == 302
        review_page = text(client.get(f"/reviews/{invitation.review.id}"))
        assert "请补充问题成因分析" in review_page  # the letter that sent version 1 back
        assert f"/submissions/{first.id}" in review_page
        assert client.get(f"/submissions/{first.id}").status_code == 200
        assert client.post(f"/reviews/{invitation.review.id}",
                           data=_review_data(invitation.review, [19] * 5, opinion="整改到位")).status_code == 302
    assert panel2.passed and e.state == S.ACCEPTED

    # 7. the bureau publishes a redacted version
    login(world.bz_staff)
    assert client.post(f"/engagements/{e.id}/result",
                       data={"form": "publish", "file": (io.BytesIO(_docx("脱密后的评价报告")), "脱密版.docx")},
                       content_type="multipart/form-data").status_code == 302
    assert e.state == S.PUBLISHED

    # 8. anyone reads it
    public = app.test_client()
    html = text(public.get("/public/reports"))
    assert e.name in html
    publication = db.session.execute(sa.select(Publication)).scalar_one()
    assert public.get(f"/public/reports/{publication.id}/file").status_code == 200
    # the firm's inbox holds both outcomes, and still no expert names
    login(world.firm_user)
    inbox = text(client.get("/inbox"))
    passed = text(client.get(f"/submissions/{second.id}"))
    assert "退回整改" in inbox and "评审通过" in inbox and "评审结果：评审通过" in passed
    for invitation in panel.invitations + panel2.invitations:
        assert invitation.expert.name not in inbox and invitation.expert.name not in passed
