"""Rubric and pass mark per 委托事项 (DOMAIN §1: "The workflow is the same for every kind; rubric, pass mark and
report outline differ by kind"). A 绩效目标审核 report was scored on the 重点绩效评价 report rubric (its eight chapters,
its 决策/过程/产出/效益 indicator system) against the report's one 90. Now: a bureau keeps, for work plans and
reports, a rubric and a pass mark per service kind; the kind's own applies along the bureau tree before the
general one; a formed panel keeps what it was formed with; web, API and settings pages alike."""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from evalhub.core.settings import get_setting, set_setting
from evalhub.extensions import db
from evalhub.procurement.models import ServiceKind
from evalhub.review import services as R
from evalhub.review.models import PanelStatus, Rubric, RubricKind, SubmissionKind
from tests import factories

TARGET = ServiceKind.TARGET_REVIEW
REPORT_KEY = "review.report_pass_mark.target_review"
ITEMS = [("完整性", "要素齐全", "50"), ("可行性", "措施可行", "50")]


def text(response) -> str:
    return response.get_data(as_text=True)


def _of_kind(world, kind: ServiceKind):
    """An engagement of ``kind`` in fieldwork (its work plan approved), its firm's report handed in."""
    e = factories.in_fieldwork(world)
    e.service_kind = e.plan_item.service_kind = kind
    db.session.flush()
    factories.submit_report(e)
    return e


def _web_rows(rows, title="巴州目标审核报告评审表") -> dict:
    data = {"title": title}
    for i, (name, description, points) in enumerate(rows):
        data.update({f"items-{i}-name": name, f"items-{i}-description": description, f"items-{i}-max_points": points})
    return data


# --- the rules ------------------------------------------------------------------------------------

def test_a_target_review_report_is_scored_on_its_own_rubric_not_the_evaluation_reports(world):
    """A 绩效目标审核 report's panel: the target-review rubric (完整性、相关性、适当性、可行性, 财预〔2015〕88号), with
    no 决策/过程/产出/效益 indicator-system item; a key evaluation's report panel still the general rubric."""
    e = _of_kind(world, TARGET)
    panel = factories.own_panel(e)
    assert panel.rubric.service_kind == TARGET and panel.rubric.title == "绩效目标审核报告评审表"
    names = [i.name for i in panel.rubric.items]
    assert "完整性审核" in names and "相关性审核" in names
    assert not any("决策" in i.description or "八章" in i.description for i in panel.rubric.items), names
    assert panel.rubric.max_total == Decimal("100")
    key = R.current_rubric(world.bz, RubricKind.REPORT, ServiceKind.KEY_EVALUATION)
    assert key.service_kind is None and any("决策" in i.description for i in key.items)
    # 事前绩效评估再评估: the five 论证要点 and its 支持/不支持 conclusion
    ex_ante = R.current_rubric(world.bz, RubricKind.REPORT, ServiceKind.EX_ANTE_REASSESSMENT)
    assert {"立项必要性", "投入经济性", "资金筹措合规性"} <= {i.name for i in ex_ante.items}


def test_a_kinds_rubric_is_inherited_down_the_tree_before_any_general_one(world):
    """The kind's own along the whole chain (the county's, the prefecture's, the region's, the system's), then the
    general one the same way: 巴州's general revision does not put 库尔勒's target reviews back on it, while a kind
    with no rubric of its own anywhere (评价结果复核) follows 巴州's general revision."""
    general = R.revise_rubric(world.bz, RubricKind.REPORT, [("结构", "", "40"), ("证据", "", "60")], world.bz_admin)
    region = R.revise_rubric(world.region, RubricKind.REPORT, ITEMS, world.region_admin, service_kind=TARGET)
    assert region.service_kind == TARGET and region.version == 1
    assert R.current_rubric(world.krl, RubricKind.REPORT, TARGET).id == region.id
    assert R.current_rubric(world.krl, RubricKind.REPORT, ServiceKind.RESULT_RECHECK).id == general.id
    assert R.current_rubric(world.krl, RubricKind.REPORT).id == general.id
    # 巴州 writes its own target-review rubric: its counties take it, 克州's keep the region's
    own = R.revise_rubric(world.bz, RubricKind.REPORT, ITEMS, world.bz_admin, service_kind=TARGET.value)
    assert R.current_rubric(world.krl, RubricKind.REPORT, TARGET).id == own.id
    assert R.current_rubric(world.ats, RubricKind.REPORT, TARGET).id == region.id
    # versions are numbered per kind: the general rubric's next version is 2 whatever the kinds did
    again = R.revise_rubric(world.bz, RubricKind.REPORT, [("结构", "", "50"), ("证据", "", "50")], world.bz_admin)
    assert again.version == 2 and again.service_kind is None
    assert R.current_rubric(world.bz, RubricKind.REPORT, TARGET).id == own.id  # a general revision leaves it


def test_a_kinds_pass_mark_follows_the_general_one_until_a_bureau_sets_it(world):
    assert get_setting(world.krl, REPORT_KEY) == 90  # unset anywhere: the general mark
    set_setting(world.bz, "review.report_pass_mark", 92, world.bz_admin)
    assert R.pass_mark_for(world.krl, SubmissionKind.REPORT, TARGET) == Decimal("92")
    set_setting(world.region, REPORT_KEY, 85, world.region_admin)
    # the kind's own mark up the chain beats a general mark set closer by
    assert R.pass_mark_for(world.krl, SubmissionKind.REPORT, TARGET) == Decimal("85")
    assert R.pass_mark_for(world.krl, SubmissionKind.REPORT, ServiceKind.RESULT_RECHECK) == Decimal("92")
    assert R.pass_mark_for(world.krl, SubmissionKind.REPORT, ServiceKind.KEY_EVALUATION) == Decimal("92")
    assert R.pass_mark_for(world.ats, SubmissionKind.REPORT, TARGET) == Decimal("85")
    assert R.pass_mark_for(world.krl, SubmissionKind.WORK_PLAN, TARGET) == Decimal("80")
    set_setting(world.krl, "review.plan_pass_mark.target_review", 75, world.krl_admin)
    assert R.pass_mark_for(world.krl, SubmissionKind.WORK_PLAN, TARGET) == Decimal("75")
    assert R.pass_mark_for(world.lt, SubmissionKind.WORK_PLAN, TARGET) == Decimal("80")


def test_a_formed_panel_keeps_its_kinds_rubric_and_mark_whatever_changes_later(world):
    set_setting(world.bz, REPORT_KEY, 85, world.bz_admin)
    e = _of_kind(world, TARGET)
    panel = factories.own_panel(e)
    rubric_id = panel.rubric_id
    assert panel.pass_mark == Decimal("85")
    # while it scores, the bureau raises the kind's mark and writes a new target-review rubric
    set_setting(world.bz, REPORT_KEY, 95, world.bz_admin)
    R.revise_rubric(world.bz, RubricKind.REPORT, ITEMS, world.bz_admin, service_kind=TARGET)
    factories.review_panel(panel, "0.9")  # 90: under 95, over the 85 it was formed with
    assert panel.rubric_id == rubric_id and panel.pass_mark == Decimal("85")
    assert panel.status != PanelStatus.REVIEWING and panel.passed is True, (panel.score, panel.pass_mark)


def test_a_report_under_the_kinds_mark_is_returned_though_over_the_general_one(world):
    set_setting(world.bz, REPORT_KEY, 95, world.bz_admin)
    e = _of_kind(world, TARGET)
    panel = factories.own_panel(e)
    factories.review_panel(panel, "0.92")
    assert panel.score >= 90 and panel.pass_mark == Decimal("95") and panel.passed is False


def test_a_commissioner_rubric_has_no_service_kind(world):
    import pytest

    from evalhub.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        R.revise_rubric(world.bz, RubricKind.COMMISSIONER, ITEMS, world.bz_admin, service_kind=TARGET)
    assert "不区分委托事项" in refused.value.message
    with pytest.raises(ValidationFailed) as bad:
        R.revise_rubric(world.bz, RubricKind.REPORT, ITEMS, world.bz_admin, service_kind="survey")
    assert bad.value.message == "委托事项无效。"


# --- the web --------------------------------------------------------------------------------------

def test_the_rubric_page_edits_a_kinds_rubric_for_the_bureaus_admin_only(client, login, world):
    from tests.test_review_views import _assert_login_required, _assert_refused

    url = f"/bureaus/{world.bz.id}/rubrics/report/target_review"
    _assert_refused(client, login, [world.kz_admin, world.firm_user, world.expert_user], "GET", url)
    _assert_refused(client, login, [world.bz_staff, world.region_admin, world.krl_admin, world.kz_admin], "POST", url,
                    _web_rows([("结构", "", "100")]))
    _assert_login_required(client, "GET", url)
    login(world.bz_staff)
    page = text(client.get(url))
    assert "绩效目标审核报告评审表" in page and "完整性审核" in page and "通过分：90 分（绩效目标审核）" in page
    login(world.bz_admin)
    bad = client.post(url, data=_web_rows([("完整性", "", "50"), ("可行性", "", "40")]))
    assert bad.status_code == 422 and "各评分项分值合计应为 100，当前为 90" in text(bad)
    assert db.session.execute(sa.select(sa.func.count()).select_from(Rubric).where(Rubric.bureau_id == world.bz.id)).scalar() == 0
    assert client.post(url, data=_web_rows(ITEMS)).status_code == 302
    saved = R.current_rubric(world.bz, RubricKind.REPORT, TARGET)
    assert saved.bureau_id == world.bz.id and saved.service_kind == TARGET and saved.title == "巴州目标审核报告评审表"
    assert R.current_rubric(world.bz, RubricKind.REPORT).bureau_id is None  # the general one untouched
    page = text(client.get(url))
    assert "当前使用本局第 1 版" in page and "第 1 版" in page
    # a kind with no rubric of its own says the general one applies
    recheck = text(client.get(f"/bureaus/{world.bz.id}/rubrics/report/result_recheck"))
    assert "本委托事项尚无专用评审表，适用通用评审表" in recheck and "评价报告评审表（评价结果复核）" in recheck
    assert client.get(f"/bureaus/{world.bz.id}/rubrics/report/survey").status_code == 404
    assert client.get(f"/bureaus/{world.bz.id}/rubrics/commissioner/target_review").status_code == 404


def test_the_settings_page_sets_a_kinds_pass_mark(client, login, world):
    url = f"/bureaus/{world.bz.id}/settings"
    login(world.bz_admin)
    page = text(client.get(url))
    assert "评价报告评审通过分：绩效目标审核" in page and "上级均未设置的同“评价报告评审通过分（低于此分退回整改）”" in page
    bad = client.post(url, data={REPORT_KEY: "101"})
    assert bad.status_code == 422 and "不能大于 100" in text(bad)
    assert client.post(url, data={REPORT_KEY: "85"}).status_code == 302
    db.session.expire_all()
    assert R.pass_mark_for(world.bz, SubmissionKind.REPORT, TARGET) == Decimal("85")
    assert R.pass_mark_for(world.bz, SubmissionKind.REPORT, ServiceKind.KEY_EVALUATION) == Decimal("90")
    login(world.bz_staff)
    assert client.post(url, data={REPORT_KEY: "70"}).status_code == 403


def test_the_engagement_and_panel_pages_say_which_rubric_and_mark_apply(client, login, world):
    set_setting(world.bz, REPORT_KEY, 85, world.bz_admin)
    e = _of_kind(world, TARGET)
    db.session.commit()
    login(world.bz_staff)
    page = text(client.get(f"/engagements/{e.id}"))
    assert "绩效目标审核报告评审表" in page and "通过分 85 分" in page and "通过分 80 分" in page
    review = text(client.get(f"/engagements/{e.id}/panel"))
    assert "评审标准（绩效目标审核）：绩效目标审核报告评审表" in review and "通过分 85 分" in review
    panel = factories.own_panel(e)
    set_setting(world.bz, REPORT_KEY, 95, world.bz_admin)
    db.session.commit()
    shown = text(client.get(f"/reviews/panels/{panel.id}"))
    assert "绩效目标审核 · 评审表 绩效目标审核报告评审表" in shown and "通过分 85（组建时确定）" in shown
    login(world.firm_user)
    assert "review-standards" not in text(client.get(f"/engagements/{e.id}"))


# --- the API --------------------------------------------------------------------------------------

def test_the_api_reads_and_revises_a_kinds_rubric_with_its_mark(client, world, auth):
    set_setting(world.region, REPORT_KEY, 85, world.region_admin)
    db.session.commit()
    url = f"/api/v1/bureaus/{world.bz.id}/rubrics"
    got = client.get(url + "?kind=report&service_kind=target_review", headers=auth(world.bz_staff.username))
    assert got.status_code == 200, got.json
    body = got.json
    assert body["service_kind"]["value"] == "target_review" and body["title"] == "绩效目标审核报告评审表"
    assert body["bureau"] is None and body["own"] is False and body["pass_mark"] == 85
    general = client.get(url + "?kind=report&service_kind=result_recheck", headers=auth(world.bz_staff.username)).json
    assert general["service_kind"] is None and general["requested_service_kind"]["value"] == "result_recheck"
    assert general["pass_mark"] == 90
    item_rows = [{"name": n, "description": d, "max_points": p} for n, d, p in ITEMS]
    made = client.post(url, json={"kind": "report", "service_kind": "绩效目标审核", "items": item_rows},
                       headers=auth(world.bz_admin.username))
    assert made.status_code == 201, made.json
    assert made.json["own"] is True and made.json["version"] == 1 and made.json["service_kind"]["value"] == "target_review"
    assert made.json["title"] == "绩效目标审核报告评审表"
    db.session.expire_all()
    assert R.current_rubric(world.krl, RubricKind.REPORT, TARGET).id == made.json["id"]
    # refusals: another role, another bureau, bad input (Chinese, 4xx)
    assert client.post(url, json={"kind": "report", "items": item_rows},
                       headers=auth(world.bz_staff.username)).status_code == 403
    assert client.get(url + "?kind=report", headers=auth(world.kz_admin.username)).status_code == 404
    assert client.post(url, json={"kind": "report", "items": item_rows},
                       headers=auth(world.kz_admin.username)).status_code == 404
    assert client.get(url + "?kind=report", headers=auth(world.firm_user.username)).status_code == 403
    wrong = client.post(url, json={"kind": "report", "service_kind": "target_review",
                                   "items": [{"name": "完整性", "max_points": 60}]}, headers=auth(world.bz_admin.username))
    assert wrong.status_code == 422 and "各评分项分值合计应为 100" in wrong.json["error"]["message"]
    no_kind = client.post(url, json={"kind": "commissioner", "service_kind": "target_review", "items": item_rows},
                          headers=auth(world.bz_admin.username))
    assert no_kind.status_code == 422 and "不区分委托事项" in no_kind.json["error"]["message"]
    bad_query = client.get(url + "?kind=nonsense", headers=auth(world.bz_staff.username))
    assert bad_query.status_code == 422 and "评审表类型无效" in bad_query.json["error"]["message"]
    assert db.session.execute(sa.select(sa.func.count()).select_from(Rubric).where(
        Rubric.bureau_id == world.bz.id)).scalar() == 1


def test_two_saves_of_a_kinds_rubric_at_once_make_two_versions(app, world):
    """Two admins' saves at the same moment: versions 1 and 2, one current (the version is counted under the
    rubric's lock, not both numbered 1 and the second refused by the unique key)."""
    from evalhub.core.models import Bureau, User

    db.session.commit()

    def save(points: str):
        rest = str(100 - int(points))
        return lambda: R.revise_rubric(db.session.get(Bureau, world.bz.id), RubricKind.REPORT,
                                       [("完整性", "", points), ("可行性", "", rest)],
                                       db.session.get(User, world.bz_admin.id), service_kind=TARGET)

    assert factories.at_once(app, save("40"), save("60")) == ["done", "done"]
    rows = db.session.execute(sa.select(Rubric).where(Rubric.bureau_id == world.bz.id, Rubric.service_kind == TARGET)
                              .order_by(Rubric.version)).scalars().all()
    assert [r.version for r in rows] == [1, 2] and [r.is_current for r in rows] == [False, True]


def test_a_rubric_version_is_one_row_for_the_general_and_the_system_rubrics_too(world):
    """The database keeps one row per (bureau or system, rubric kind, 委托事项 or general, version): a unique
    constraint would not, NULLs being distinct — two general versions 1 of one bureau, or two system defaults of one
    kind (two first pages seeding them at once), were both accepted; only revise_rubric's lock kept them apart."""
    for bureau_id in (world.bz.id, None):
        db.session.add_all([Rubric(bureau_id=bureau_id, kind=RubricKind.REPORT, version=7, title="甲", is_current=False),
                            Rubric(bureau_id=bureau_id, kind=RubricKind.REPORT, version=7, title="乙", is_current=False)])
        with pytest.raises(sa.exc.IntegrityError):
            db.session.flush()
        db.session.rollback()
