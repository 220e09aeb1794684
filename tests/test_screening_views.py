"""Report screening pages: the bureau queue (ranking, filters, export), the flag card (copied passages beside
their source, names highlighted, text escaped), a targeted case from a flag, the model pages (training as a
background job, promotion by a region administrator), who is refused, and what an expert sees."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.core.models import User
from evalhub.core.settings import set_setting
from evalhub.extensions import db
from evalhub.review import services as R
from evalhub.review.models import SubmissionKind
from evalhub.screening import learning
from evalhub.screening import services as S
from evalhub.screening.features import FEATURE_KEYS
from evalhub.screening.models import ModelStatus, ReportScreening, RiskMethod, ScreeningModel
from evalhub.supervision.models import Inspection, Trigger
from tests import factories
from tests.screening_support import report_text, upload_report

SCRIPT = "<script>alert(1)</script>"


def text(response) -> str:
    return response.get_data(as_text=True)


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-testid="queue-row-(\d+)"', html)]


@pytest.fixture(autouse=True)
def fresh_screening_cache():
    S.forget_cache()
    yield
    S.forget_cache()


def _corpus(world, *, other_prefecture: bool = True) -> dict[str, ReportScreening]:
    """巴州: a specific report (a), a generic one carrying HTML in its text (b) and b again with the names
    swapped (c); 克州: another firm's specific report (d). Re-screened once all are in, as the bureau would."""
    a = upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    generic = report_text("高标准农田", "巴州民政局", world.firm.name, specific=False) \
        .replace("领导高度重视", "领导高度重视" + SCRIPT)
    b = upload_report(world, generic, name="高标准农田", unit="巴州民政局")
    c = upload_report(world, generic.replace("高标准农田", "养老服务").replace("巴州民政局", "巴州统计局"), name="养老服务")
    out = {"a": a, "b": b, "c": c}
    if other_prefecture:
        out["d"] = upload_report(world, _own_words_report(world.other_firm.name), other_firm=True, name="草原保护")
    S.rescreen(year=2025)
    db.session.commit()
    return {k: S.screening_for(submission) for k, (_e, submission) in out.items()}


def _own_words_report(firm: str) -> str:
    """A report written in its own words (nothing shared with report_text's templates)."""
    body = [f"草原保护补助奖励项目2024年下达资金1,250.00万元，覆盖阿克陶县、乌恰县等4县市的牧户2,310户。",
            f"{firm}于2025年4月8日至5月20日走访牧户186户，核对禁牧面积台账42本，调取拨付凭证97份。",
            "综合得分86.5分，评价等级为良，扣分主要在资金拨付时效和草畜平衡核查两项。",
            "禁牧面积核实率为94.3%，其中乌恰县2个村因边界争议尚未完成核实；补助资金兑付率为99.1%。",
            "各县市实行网格化管护员制度，每名管护员负责约3.5万亩草场，按月提交巡护日志。",
            "一是阿克陶县2024年第三批补助迟至12月27日才拨付到户，延误约4个月；二是草畜平衡核查记录缺少卫星遥感比对。",
            "建议克州林草局于2025年10月底前补做遥感比对，并将拨付时限写入2026年度实施方案。",
            "本次评价未涉及以前年度结转资金。"]
    lines = ["2024年度草原保护补助奖励项目绩效评价报告"]
    for numeral, chapter, sentence in zip("一二三四五六七八", R.REPORT_CHAPTERS, body):
        lines += [f"{numeral}、{chapter}", sentence]
    return "\n".join(lines)


def _model_row(version: str = "20250101-1", **kw) -> ScreeningModel:
    model = ScreeningModel(version=version, algorithm="logistic_regression", artefact=f"screening-{version}.joblib",
                           card=kw.pop("card", {}), status=kw.pop("status", ModelStatus.CANDIDATE), **kw)
    db.session.add(model)
    db.session.commit()
    return model


def _trained_model(app, version: str = "20250102-1") -> ScreeningModel:
    """A real candidate: trained on a synthetic labelled frame and saved where the app looks for models."""
    rng = np.random.default_rng(7)
    n = 80
    frame = pd.DataFrame(rng.random((n, len(FEATURE_KEYS))), columns=FEATURE_KEYS)
    frame["label"] = ((frame["copy_same_firm"] + rng.normal(0, 0.15, n)) > 0.5).astype(int)
    frame["at"] = pd.date_range("2023-01-01", periods=n, freq="7D")
    frame["source"] = "panel"
    frame["random"] = [i % 5 == 0 for i in range(n)]
    assert frame["label"].sum() >= 15 and (n - frame["label"].sum()) >= 15
    result = learning.train(frame)
    artefact = learning.save(result, Path(app.config["MODELS_DIR"]), version)
    model = ScreeningModel(version=version, algorithm=result.card["algorithm"], artefact=artefact, card=result.card,
                           status=ModelStatus.CANDIDATE)
    db.session.add(model)
    db.session.commit()
    return model


# --- the queue ------------------------------------------------------------------------------------

def test_the_queue_ranks_riskier_reports_first_within_the_users_scope(client, login, world):
    rows = _corpus(world)
    login(world.bz_staff)
    response = client.get("/screening/queue?kind=report")  # the approved work plans are ranked apart
    assert response.status_code == 200
    html = text(response)
    assert "2025 年度" in html  # the latest year with screenings, without asking
    ids = row_ids(html)
    assert set(ids) == {rows["a"].id, rows["b"].id, rows["c"].id}  # 克州's report is not 巴州's business
    risks = [db.session.get(ReportScreening, i).risk for i in ids]
    assert risks == sorted(risks, reverse=True)
    assert ids.index(rows["c"].id) < ids.index(rows["a"].id)  # the copied, generic report above the specific one
    assert html.count('data-testid="flagged"') == 1 and "建议抽查" in html  # 10% of 3, rounded up
    assert "规则评分" in html and "前 10%" in html
    # the firm box suggests the firms of the rows the user sees, as JSON, and lists none on the page
    assert world.firm.name not in html.split('name="firm"')[1].split("</datalist>")[0]
    suggested = client.get("/screening/queue/firms?year=2025").get_json()["firms"]
    assert [f["name"] for f in suggested] == [world.firm.name]  # not 克州's firm
    top = db.session.get(ReportScreening, ids[0])
    assert top.engagement.reference in html and top.reasons[0]["text"] in html
    assert f'href="/screening/{top.id}"' in html


def test_the_queue_filters_and_exports(client, login, world):
    rows = _corpus(world)
    login(world.region_staff)
    assert set(row_ids(text(client.get("/screening/queue?year=2025&kind=report")))) == {s.id for s in rows.values()}
    assert row_ids(text(client.get(f"/screening/queue?year=2025&kind=report&firm_id={world.other_firm.id}"))) \
        == [rows["d"].id]
    assert row_ids(text(client.get(f"/screening/queue?year=2025&kind=report&bureau_id={world.kz.id}"))) == [rows["d"].id]
    # the firm box: text in the firm's name; a link's firm_id shows as its name there
    part = world.other_firm.name[1:-1]
    assert world.firm.name.find(part) < 0
    assert row_ids(text(client.get(f"/screening/queue?year=2025&kind=report&firm={part}"))) == [rows["d"].id]
    assert row_ids(text(client.get("/screening/queue?year=2025&kind=report&firm=无此机构"))) == []
    assert row_ids(text(client.get("/screening/queue?year=2025&kind=report&firm=%25"))) == []  # a LIKE wildcard is text
    shown = text(client.get(f"/screening/queue?year=2025&kind=report&firm_id={world.other_firm.id}"))
    assert f'name="firm" value="{world.other_firm.name}"' in shown
    assert {f["name"] for f in client.get("/screening/queue/firms?year=2025").get_json()["firms"]} \
        == {world.firm.name, world.other_firm.name}
    assert client.get(f"/screening/queue/firms?year=2025&q={part}").get_json()["firms"] \
        == [{"id": world.other_firm.id, "name": world.other_firm.name}]
    assert client.get("/screening/queue/firms?year=2019").get_json()["firms"] == []
    assert len(row_ids(text(client.get("/screening/queue?year=2025")))) == 8  # and the 4 approved work plans
    assert len(row_ids(text(client.get("/screening/queue?year=2025&kind=report")))) == 4
    plans = {e.screening.id for e in S.queue(world.region_staff, year=2025, kind=SubmissionKind.WORK_PLAN)}
    assert set(row_ids(text(client.get("/screening/queue?year=2025&kind=work_plan")))) == plans
    assert "没有可见的筛查结果" in text(client.get("/screening/queue?year=2019"))

    export = client.get(f"/screening/queue?year=2025&kind=report&bureau_id={world.bz.id}&export=xlsx")
    assert export.status_code == 200 and export.mimetype.endswith("spreadsheetml.sheet")
    sheet = pd.read_excel(io.BytesIO(export.data))
    # Ranks are over everything the user supervises (4 reports in the region); a filter does not renumber.
    ranks = list(sheet["排名"])
    assert ranks == sorted(ranks) and len(ranks) == 3 and set(ranks) <= {1, 2, 3, 4}
    assert list(sheet["风险分"]) == sorted(sheet["风险分"], reverse=True)
    assert set(sheet["评价任务编号"]) == {rows[k].engagement.reference for k in "abc"}
    assert list(sheet["建议抽查"].fillna("")) == ["是" if r == 1 else "" for r in ranks]  # 10% of 4, rounded up


# --- the flag card --------------------------------------------------------------------------------

def test_the_card_shows_copied_passages_beside_their_source_escaped_and_highlighted(client, login, world):
    rows = _corpus(world, other_prefecture=False)
    c, b = rows["c"], rows["b"]
    login(world.bz_staff)
    response = client.get(f"/screening/{c.id}")
    assert response.status_code == 200
    html = text(response)
    assert 'data-testid="passage"' in html
    # Left: this report with its own names marked; right: the source, its names marked, firm, reference, date.
    assert "<mark>养老服务</mark>由<mark>巴州统计局</mark>组织实施" in html
    assert "<mark>高标准农田</mark>由<mark>巴州民政局</mark>组织实施" in html
    assert b.engagement.reference in html and world.firm.name in html and "本机构其他报告" in html
    assert f'href="/screening/{b.id}"' in html  # the source's own card
    # The report's text is escaped, never rendered as markup.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and SCRIPT not in html
    # Rank, method, reasons, the features against their peers, gaps, chapters, the case button.
    rank, total = S.rank_of(c, world.bz_staff)
    assert f"第 {rank} / {total} 名" in html and RiskMethod.RULE.label in html
    assert "近似重复" in html and c.reasons[0]["text"] in html
    assert "与本机构其他报告重复的句子" in html and "同类中位数" in html
    assert 'data-testid="gaps"' in html and "没有数字、责任主体或时限" in html
    assert 'data-testid="chapters"' in html and 'data-testid="open-case"' in html
    # Per chapter group: c's findings are the same firm's text on another object (b), not its in-house template.
    assert 'data-testid="section-findings"' in html
    assert c.details["sections"]["findings"]["same_firm_content"] > 0

    login(world.region_staff)  # reads every card in the region, but opens cases only in its own bureau
    page = text(client.get(f"/screening/{c.id}"))
    assert "养老服务" in page and 'data-testid="open-case"' not in page


def test_a_flag_becomes_a_targeted_case_once(client, login, world):
    c = _corpus(world, other_prefecture=False)["c"]
    login(world.region_staff)
    assert client.post(f"/screening/{c.id}/case").status_code == 403  # not its own bureau's engagement
    login(world.bz_staff)
    response = client.post(f"/screening/{c.id}/case")
    assert response.status_code == 302
    inspection = db.session.execute(sa.select(Inspection)).scalar_one()
    assert response.headers["Location"].endswith(f"/inspections/{inspection.id}")
    assert inspection.trigger == Trigger.SCREENING_FLAG and inspection.engagement_id == c.engagement_id
    detail = text(client.get(f"/inspections/{inspection.id}"))
    assert "报告质量筛查提示" in detail and c.reasons[0]["text"] in detail
    assert f"已依据筛查提示立案定向检查 #{inspection.id}" in detail  # the flash

    again = client.post(f"/screening/{c.id}/case")
    assert again.status_code == 409 and "已因筛查提示立案" in text(again)
    assert db.session.execute(sa.select(sa.func.count(Inspection.id))).scalar_one() == 1
    card = text(client.get(f"/screening/{c.id}"))
    assert 'data-testid="case-link"' in card and 'data-testid="open-case"' not in card

    # The inspected firm sees the case and its trigger, never the risk, the rank or the reasons.
    login(world.firm_user)
    firm_page = text(client.get(f"/inspections/{inspection.id}"))
    assert "根据报告质量筛查提示立案" in firm_page
    assert "风险" not in firm_page and "筛查#" not in firm_page and c.reasons[0]["text"] not in firm_page


# --- who is refused -------------------------------------------------------------------------------

def test_firms_experts_and_other_bureaus_are_refused(client, login, world):
    a = _corpus(world, other_prefecture=False)["a"]
    model = _model_row()
    pages = [("GET", "/screening/queue"), ("GET", "/screening/queue/firms?year=2025"), ("GET", f"/screening/{a.id}"), ("POST", f"/screening/{a.id}/case"),
             ("GET", "/screening/models"), ("GET", f"/screening/models/{model.id}"),
             ("POST", "/screening/models/train"), ("POST", f"/screening/models/{model.id}/promote")]
    for user in (world.firm_user, world.expert_user):
        login(user)
        for method, url in pages:
            assert client.open(url, method=method).status_code == 403, (user.username, method, url)
    # Another prefecture, and a county below 巴州, do not open 巴州's card.
    for user in (world.kz_staff, world.krl_staff):
        login(user)
        assert client.get(f"/screening/{a.id}").status_code == 403, user.username
        assert client.post(f"/screening/{a.id}/case").status_code == 403, user.username
        assert a.engagement.reference not in text(client.get("/screening/queue?year=2025"))
    # Models are the region's: a prefecture administrator reads them but neither trains nor promotes.
    login(world.bz_admin)
    page = text(client.get("/screening/models"))
    assert model.version in page and 'data-testid="train"' not in page and "promote-" not in page
    assert client.post("/screening/models/train").status_code == 403
    assert client.post(f"/screening/models/{model.id}/promote").status_code == 403
    assert db.session.get(ScreeningModel, model.id).status == ModelStatus.CANDIDATE
    assert client.get("/screening/99999").status_code == 404
    client.post("/logout")
    response = client.get("/screening/queue")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_nav_shows_screening_to_bureau_users_only(client, login, world):
    login(world.bz_staff)
    assert 'data-testid="nav-screening"' in text(client.get("/", follow_redirects=True))
    login(world.firm_user)
    assert 'data-testid="nav-screening"' not in text(client.get("/", follow_redirects=True))


# --- models ---------------------------------------------------------------------------------------

def test_training_without_enough_labels_fails_visibly_on_the_job_page(client, login, world):
    login(world.region_admin)
    page = text(client.get("/screening/models"))
    assert 'data-testid="train"' in page and "尚未启用模型" in page
    response = client.post("/screening/models/train")
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    job_page = text(client.get(response.headers["Location"]))
    assert "失败" in job_page and "标注" in job_page and "规则评分" in job_page
    assert db.session.execute(sa.select(sa.func.count(ScreeningModel.id))).scalar_one() == 0
    assert "训练任务" in text(client.get("/screening/models"))  # the latest job is listed with its message


def test_a_region_admin_promotes_a_trained_model_and_reports_are_rescored(app, client, login, world):
    upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    db.session.commit()
    model = _trained_model(app)
    login(world.region_admin)
    card = text(client.get(f"/screening/models/{model.id}"))
    for words in ("ROC-AUC", "平均精度", "抽查比例内精确率", "规则评分", "仅按篇幅", "scikit-learn", "数据窗口",
                  "不定向抽查", 'data-testid="promote"'):
        assert words in card, words
    assert "共 80 份" in card and "（占 20.0%）" in card  # label counts and the random-inspection share

    response = client.post(f"/screening/models/{model.id}/promote")
    assert response.status_code == 302
    page = text(client.get(response.headers["Location"]))
    rescored = db.session.execute(sa.select(sa.func.count(ReportScreening.id))).scalar_one()
    assert f"已启用模型 {model.version}，已重新计算 {rescored} 份筛查结果的风险分" in page
    assert db.session.get(ScreeningModel, model.id).status == ModelStatus.ACTIVE
    row = db.session.execute(sa.select(ReportScreening).where(ReportScreening.kind == SubmissionKind.REPORT)).scalar_one()
    assert row.method == RiskMethod.MODEL and row.model_version == model.version
    assert f"评价报告按模型 {model.version} 评分" in text(client.get("/screening/queue"))
    assert model.version in text(client.get("/screening/models"))
    again = client.post(f"/screening/models/{model.id}/promote")
    assert again.status_code == 409 and "已在使用中" in text(again)


def test_an_unloadable_active_model_is_shown_as_a_warning(client, login, world):
    upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    _model_row("20240101-1", status=ModelStatus.ACTIVE)  # no file behind it
    login(world.bz_staff)
    html = text(client.get("/screening/queue"))
    assert 'data-testid="model-problem"' in html and "找不到模型文件" in html
    row = db.session.execute(sa.select(ReportScreening).where(ReportScreening.kind == SubmissionKind.REPORT)).scalar_one()
    assert 'data-testid="model-problem"' in text(client.get(f"/screening/{row.id}"))


# --- the expert -----------------------------------------------------------------------------------

def test_experts_see_the_risk_only_when_the_bureau_shows_it(client, login, world):
    upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    e, submission = upload_report(world, report_text("高标准农田", "巴州民政局", world.firm.name, specific=False),
                                  name="高标准农田", unit="巴州民政局")
    for n in range(3):
        expert = factories.expert(world.bz, name=f"评审专家{n}")
        factories.user(f"screening-expert{n}", Role.EXPERT, expert_id=expert.id)
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    invitation = panel.invitations[0]
    expert_user = db.session.execute(sa.select(User).where(User.expert_id == invitation.expert_id)).scalar_one()
    R.respond(invitation, expert_user, accept=True, declaration_signed=True)
    db.session.commit()
    login(expert_user)
    url = f"/reviews/{invitation.review.id}"
    hidden = text(client.get(url))
    assert 'data-testid="machine-checks"' in hidden
    assert 'data-testid="screening-risk"' not in hidden and "风险分" not in hidden

    set_setting(world.bz, "screening.show_risk_to_experts", "on", world.bz_admin)
    db.session.commit()
    shown = text(client.get(url))
    screening = S.screening_for(submission)
    assert 'data-testid="screening-risk"' in shown and f"{screening.risk:.2f}" in shown
    assert screening.reasons and screening.reasons[0]["text"] in shown
    assert client.get(f"/screening/{screening.id}").status_code == 403  # still never the bureau's card
