"""Audit of the web forms and actions (a person in a hurry, or careless): bad input gets a clear Chinese
message and a 4xx, never a 500, and leaves nothing half-written; a double click gives one result; every
route is behind the right role and organisation scope.

Each test here FAILS on the current code because of the defect its docstring names.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.extensions import db
from tests import factories


def text(response) -> str:
    return response.get_data(as_text=True)


def count(model, *where) -> int:
    db.session.rollback()
    query = sa.select(sa.func.count()).select_from(model)
    for clause in where:
        query = query.where(clause)
    return db.session.execute(query).scalar_one()


def post_no_500(client, url, data):
    """POST and return the response; an exception escaping the view (a 500 in production) fails the test
    with what escaped, rather than erroring."""
    try:
        return client.post(url, data=data)
    except Exception as exc:  # noqa: BLE001 - the defect under test is precisely an exception escaping
        raise AssertionError(f"POST {url} raised {type(exc).__name__}: {exc} (a 500 for the user)") from exc


# --- 1. a '%' in a field label breaks the length message -------------------------------------------------

def test_campaign_ratio_too_long_is_a_chinese_422_not_a_500(world, client, login):
    """Rule: bad input gets a clear Chinese message and a 4xx, never a 500.

    Defect: on 新建不定向抽查 (/campaigns/new) a ratio longer than 3 characters (a careless "100%" or "1000")
    fails the form's Length check, whose message is built as f"{label}不能超过 3 个字符" with the label
    "抽查比例（%）"; WTForms then %-formats that message and the bare "%）" raises
    ValueError("unsupported format character") — a 500 instead of the message beside the field."""
    login(world.bz_admin)
    response = post_no_500(client, "/campaigns/new", {"year": "2025", "ratio": "100%"})
    assert response.status_code == 422
    assert "抽查比例" in text(response)


def test_procurement_price_weight_too_long_is_a_chinese_422_not_a_500(world, client, login):
    """Rule: bad input gets a clear Chinese message and a 4xx, never a 500.

    Defect: on the 发起采购 form (/engagements/<id>/procure) a 价格分权重 of more than 10 characters (e.g. a
    pasted "20（百分之二十）") fails Length(max=10, message="价格分权重（%）不能超过 10 个字符"); WTForms
    %-formats the message and the "%）" in the label raises ValueError — a 500, not a 422 beside the field."""
    e = factories.engagement(world)
    db.session.commit()
    login(world.bz_staff)
    response = post_no_500(client, f"/engagements/{e.id}/procure",
                           {"method": "competitive_consultation", "ceiling_price_wan": "200",
                            "price_weight": "20（百分之二十，按磋商文件）"})
    assert response.status_code == 422
    assert "价格分权重" in text(response)


# --- 2. double clicks that write twice -------------------------------------------------------------------

def test_a_double_click_on_record_finding_records_one_finding_and_charges_the_lead_once(world, client, login):
    """Rule: two clicks (a double click, a resend after a slow page) give one result; points (失信记分) go to the
    people responsible once per decision (docs/rules.md, People).

    Defect: POST /inspections/<id>/findings has no form token or duplicate check
    (supervision/services.py:add_finding), so the same 严重 finding posted twice is stored twice and the
    engagement's 主评人 is charged 10 points twice: 20 points, the regional limit — a person banned from
    being named anywhere in the region by a double click. Expected: one finding, 10 points."""
    from evalhub.procurement.models import EngagementState
    from evalhub.registry.models import StaffPoint
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Finding, Trigger

    e = factories.contracted(world)
    factories.name_lead(e)
    e.state = EngagementState.ACCEPTED
    case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail="线索：报告结论与底稿不符", engagement=e)
    recorder = factories.recorder(case)
    db.session.commit()
    login(recorder)
    data = {"severity": "serious", "description": "工作底稿缺少抽样记录，报告结论无依据"}
    for _ in range(2):
        assert post_no_500(client, f"/inspections/{case.id}/findings", data).status_code in (302, 409)
    assert count(Finding) == 1
    assert db.session.execute(sa.select(sa.func.coalesce(sa.func.sum(StaffPoint.points), 0))).scalar_one() == 10


def test_a_double_click_on_the_results_finding_form_enters_one_row(world, client, login):
    """Rule: two clicks give one result (the house does this for objections and complaints: the same text
    filed twice is one row).

    Defect: POST /results/engagements/<id>/findings (results/services.py:add_finding) writes a new draft
    row each time: the firm's double click enters the same 问题 twice, numbered 1 and 2, and once confirmed the
    evaluated unit must rectify and report on the same problem twice. Expected: one row."""
    from evalhub.results.models import ResultFinding

    e = factories.accepted(world)
    db.session.commit()
    login(world.firm_user)
    data = {"kind": "problem", "text": "部分项目资金支付进度滞后，未按合同约定拨付。", "category": "process",
            "indicator": "资金到位率"}
    for _ in range(2):
        assert post_no_500(client, f"/results/engagements/{e.id}/findings", data).status_code in (302, 409)
    assert count(ResultFinding, ResultFinding.engagement_id == e.id) == 1



# --- 3. an id typed into a select past any column's range ---------------------------------------------

HUGE_ID = "99999999999999999999"  # past 2**63: even SQLite's driver cannot bind it (PostgreSQL: past 2**31 - 1)


def _relation(world):
    return world.bz_admin, f"/firms/{world.firm.id}/relations/new", {
        "kind": "audit_client", "bureau_id": HUGE_ID, "start_date": "2024-01-01"}


def _tie(world):
    return world.expert_user, f"/experts/{world.expert.id}/ties/new", {
        "kind": "employment", "counterpart_type": "firm", "firm_id": HUGE_ID, "start_date": "2020-01-01"}


def _self_evaluation(world):
    unit = factories.unit_user(world, "巴州统计局", "unit.audit")
    return unit, "/results/self-evaluations/new", {"unit_id": HUGE_ID, "year": "2025", "name": "中央财政统计能力建设补助资金"}


@pytest.mark.parametrize("case", [_relation, _tie, _self_evaluation], ids=["firm-relation", "expert-tie", "self-evaluation"])
def test_a_huge_id_in_a_select_field_is_a_4xx_not_a_500(world, client, login, case):
    """Rule (core/inputs.py): an id typed into a web form becomes a row through core.listing.as_int, so an id
    past any column's range is refused with a message, never a driver error; bad input is a 4xx.

    Defect: the select fields coerced by registry/forms.py:optional_int (plain int(), no bound) hand a
    20-digit id straight to db.session.get in the service: 登记回避关系 (关联财政局), 申报关联关系 (关联第三方机构)
    and 提交部门自评报告 (自评单位) raise OverflowError ("Python int too large to convert to SQLite INTEGER";
    on PostgreSQL any id past 2**31 - 1 is a DataError) — a 500. Expected: 422 (or 404) with the field named,
    and nothing written."""
    who, url, data = case(world)
    db.session.commit()
    login(who)
    response = post_no_500(client, url, data)
    assert 400 <= response.status_code < 500


def test_a_double_click_on_the_external_credit_record_form_deducts_once(world, client, login):
    """Rule: two clicks give one result. An external credit record (行政处罚, 失信名单…) is deducted from the
    firm's 外部信用 score: each stored row counts (credit/services.py sums every record's deduction).

    Defect: POST /credit/external/new (credit/views.py:external_new → credit/services.py:add_external_record)
    stores a new record for every post. The bureau's double click on the same 处罚决定书 stores it twice and
    the firm loses 2 × 4 points in its annual credit rating for one penalty. Expected: one record."""
    import io

    from evalhub.credit.models import ExternalCreditRecord

    login(world.bz_admin)
    data = {"firm_id": str(world.firm.id), "kind": "administrative_penalty", "occurred_on": "2025-06-01",
            "description": "库税一罚〔2025〕12号：未按期申报，罚款 2000 元", "deduction": "4"}
    for _ in range(2):
        response = client.post("/credit/external/new", content_type="multipart/form-data",
                               data={**data, "file": (io.BytesIO("处罚决定书".encode()), "决定书.txt")})
        assert response.status_code in (302, 409)
    assert count(ExternalCreditRecord) == 1


def test_a_double_click_on_submit_self_evaluation_hands_in_one_report(world, client, login):
    """Rule: two clicks give one result.

    Defect: POST /results/self-evaluations/new (results/services.py:submit_self_evaluation) creates a new
    SelfEvaluation with its own reference on every post, with no check for the same unit, year, name and
    file. A 主管部门's double click on 提交 hands the same 自评报告 in twice: two references, two 'received'
    notices to the bureau, and two expert panels to be drawn for one report. Expected: one self-evaluation."""
    import io

    from evalhub.review.models import SelfEvaluation

    unit_user = factories.unit_user(world, "巴州统计局", "tjj.audit")
    db.session.commit()
    login(unit_user)
    report = factories.docx_bytes("中央转移支付自评报告\n绩效目标完成情况")
    for _ in range(2):
        response = client.post("/results/self-evaluations/new", content_type="multipart/form-data", data={
            "year": "2025", "name": "中央财政统计能力建设补助资金", "funds": "500000",
            "unit_id": str(world.units["巴州统计局"].id), "file": (io.BytesIO(report), "自评报告.docx")})
        assert response.status_code in (302, 409)
    assert count(SelfEvaluation) == 1


# --- 4. an English message -------------------------------------------------------------------------------

def test_a_garbled_witness_choice_is_refused_in_chinese(world, client, login):
    """Rule: bad input gets a clear Chinese message (never WTForms' English).

    Defect: core/views.py:WitnessesForm derives from core.forms.BaseForm, not the Chinese-meta form
    (registry/forms.py:ChineseForm), and its select coerces with int: a witness value that is not a number
    (a stale or tampered page) is refused beside the field with WTForms' English "Invalid choice(s): one or
    more data inputs could not be coerced." on 指定监督人 (/draws/<id>/witnesses). Expected: a Chinese message."""
    from evalhub.core import draws

    draws.on_drawn("test", public=True)(factories._no_effect)
    record = draws.announce("test", "抽取专家", range(1, 10), 3, actor=world.bz_admin, bureau_id=world.bz.id)
    db.session.commit()
    login(world.bz_admin)
    response = post_no_500(client, f"/draws/{record.id}/witnesses", {"witnesses": ["abc"]})
    assert 400 <= response.status_code < 500
    body = text(response)
    assert "Invalid choice" not in body and "could not be coerced" not in body, \
        body[body.find("invalid-feedback"):][:200]


def test_a_table_with_more_rows_than_the_form_takes_is_refused_not_cut(app):
    """WTForms' FieldList keeps the first ``max_entries`` posted rows and drops the rest without a word; a RowList
    (core/forms.py) refuses them with a message naming the limit, on every form with a growing table."""
    from werkzeug.datastructures import MultiDict

    from evalhub.review.forms import MAX_INDICATOR_ROWS, ReportSubmissionForm

    rows = MAX_INDICATOR_ROWS + 2
    data = MultiDict({f"indicators-{i}-name": f"指标{i}" for i in range(rows)})
    with app.test_request_context(method="POST", data=data):
        form = ReportSubmissionForm(meta={"csrf": False})
        assert form.indicators.posted == rows and len(form.indicators.entries) == MAX_INDICATOR_ROWS
        assert not form.validate()
        assert f"最多 {MAX_INDICATOR_ROWS} 行，提交了 {rows} 行" in " ".join(e for e in form.indicators.errors if isinstance(e, str))
