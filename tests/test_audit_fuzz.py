"""Audit (fuzz): bad input that reaches a 500 or leaves something half-written, found by driving the JSON API and
the web forms with many more inputs than tests/test_api_fuzz.py. House rule: bad input gets a clear Chinese
message and a 4xx, never a 500, and leaves nothing half-written; the API and the web forms enforce the same rules
with the same messages."""
from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from evalhub.core.models import User
from evalhub.extensions import db
from evalhub.review import services as R
from evalhub.review.models import Review, ReviewStatus
from tests import factories
from tests.test_review_services import _panel


def text(response) -> str:
    return response.get_data(as_text=True)


def _expert_user(invitation) -> User:
    return db.session.execute(sa.select(User).where(User.expert_id == invitation.expert_id)).scalar_one()


# --- review: a signalling NaN typed as a score -------------------------------------------------------------

def test_resubmitting_a_submitted_review_with_a_snan_score_is_not_a_500(world, login):
    """A submitted review is immutable; the same form pressed again answers "already submitted", anything else
    a 409 (review.services.save_review, docs/architecture.md "a repeat of the same action answers as already
    done"). Typing ``sNaN`` as a score into the resent form (a signalling NaN, which ``Decimal`` parses) must be a
    4xx with a Chinese message like any other changed value; ``review.services.matches_submitted`` compares it
    with ``!=``, which raises ``decimal.InvalidOperation`` for a signalling NaN: the expert gets a 500.
    Who is hurt: the expert (a server error page instead of "已提交，不能再修改")."""
    e, panel = _panel(world)
    invitation = panel.invitations[0]
    items = invitation.review.rubric.items
    user = _expert_user(invitation)
    R.save_review(invitation.review, user, scores={i.id: 18 for i in items},
                  comments={i.id: f"理由：{i.name}" for i in items}, opinion="总体较好，建议通过")
    R.submit_review(invitation.review, user)
    db.session.commit()
    review_id = invitation.review.id
    client = login(user)
    data = {"action": "submit", "opinion": "总体较好，建议通过"}
    for item in items:
        data[f"score_{item.id}"], data[f"comment_{item.id}"] = "18", f"理由：{item.name}"
    data[f"score_{items[0].id}"] = "sNaN"
    response = client.post(f"/reviews/{review_id}", data=data)
    assert response.status_code < 500, f"{response.status_code}: {text(response)[:300]}"
    assert response.status_code in (302, 409, 422)
    db.session.rollback()
    assert db.session.get(Review, review_id).status == ReviewStatus.SUBMITTED


# --- results: digits Python calls digits but int() refuses (superscripts) -----------------------------------

def _self_evaluation_count() -> int:
    from evalhub.review.models import SelfEvaluation

    db.session.rollback()
    return db.session.execute(sa.select(sa.func.count(SelfEvaluation.id))).scalar_one()


def test_api_self_evaluation_with_a_superscript_unit_id_is_a_4xx_not_a_500(world, client, auth):
    """POST /api/v1/results/self-evaluations takes ``unit_id`` (an integer id, 1–2147483647 in its OpenAPI
    schema). ``results.api.results_create_self_evaluation`` screens it with ``str.isdigit()``, which is True for
    "²" (U+00B2) and the other superscript/circled digits, and then calls ``int()``, which raises ValueError for
    them: a budget unit's client that sends "²" gets a 500 instead of the 404/422 every other bad id gets.
    Source: house rule (bad input → a Chinese 4xx, never a 500); core/inputs.py ("an id typed into a form becomes
    a row through core.listing.as_int")."""
    import io

    factories.unit_user(world, "巴州统计局", "tjj.fuzz")
    db.session.commit()
    before = _self_evaluation_count()
    response = client.post("/api/v1/results/self-evaluations", headers=auth("tjj.fuzz"),
                           content_type="multipart/form-data",
                           data={"year": "2025", "name": "中央财政就业补助资金", "unit_id": "²",
                                 "file": (io.BytesIO(factories.docx_bytes("中央转移支付自评报告")), "自评报告.docx")})
    assert response.status_code in (404, 422), f"{response.status_code}: {text(response)[:300]}"
    assert _self_evaluation_count() == before


def test_web_self_evaluation_panel_size_in_superscript_digits_is_a_422_not_a_500(world, login):
    """The bureau draws a self-evaluation's review panel with an optional size (results.views.self_evaluation_panel).
    The view refuses a size that is not ``str.isdigit()`` with "评审专家人数必须是整数。", then calls ``int(raw)``:
    "³" passes isdigit and int() raises ValueError, a 500. The engagement's panel form (review.views) answers
    the same input with the Chinese 422, so the two panel forms disagree. Who is hurt: bureau staff.
    Source: house rule; review/views.py panel form ("人数必须是整数")."""
    from evalhub.core import files
    from evalhub.results import services as S

    unit = factories.unit_user(world, "巴州统计局", "tjj.fuzz")
    se = S.submit_self_evaluation(unit, world.units["巴州统计局"], year=2025, name="中央财政统计能力建设补助资金",
                                  upload=files.Upload("自评报告.docx", factories.docx_bytes("中央转移支付自评报告")))
    db.session.commit()
    client = login(world.bz_staff)
    response = client.post(f"/results/self-evaluations/{se.id}/panel", data={"size": "³"})
    assert response.status_code == 422, f"{response.status_code}: {text(response)[:300]}"
    assert "人数必须是整数" in text(response)


def test_reference_import_with_a_superscript_year_in_the_metadata_is_a_422_not_a_500(world, login):
    """A bureau imports published reports with a metadata sheet; a bad 年度 refuses the whole sheet naming its row
    ("第 2 行年度…无效", screening.references.read_metadata, tests/test_screening_references.py). The check is
    ``year.isdigit() and 1990 <= int(year) <= 2100``: a cell "²⁰²⁴" (superscript digits, as a copy from a PDF
    gives them) is ``isdigit()`` and ``int()`` raises ValueError — the staff member gets a 500 instead of the row
    named. Source: house rule; screening/references.py read_metadata's own "any bad row refuses the whole
    sheet, each problem named by its row"."""
    import io

    from evalhub.screening.models import ReferenceDocument
    from tests.test_screening_references import _sheet, _zip

    client = login(world.bz_staff)
    archive = _zip(("甲.txt", ("一份公开发布的绩效评价报告的正文内容。" * 10).encode("utf-8")))
    metadata = _sheet(("甲.txt", "某县绩效评价报告", "某地", "²⁰²⁴", "", ""))
    response = client.post("/screening/references", content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(archive), "甲.zip"),
                                 "metadata": (io.BytesIO(metadata), "元数据.xlsx")})
    assert response.status_code == 422, f"{response.status_code}: {text(response)[:300]}"
    assert "年度" in text(response)
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count()).select_from(ReferenceDocument)).scalar_one() == 0


# --- review: the indicator table inside a multipart field, nested too deep ----------------------------------

def test_api_report_upload_with_an_indicator_table_nested_too_deep_is_a_4xx_not_a_500(world, client, auth):
    """A JSON body nested deeper than the parser's recursion limit is a 400, not a RecursionError and a 500
    (core.api.request_json; tests/test_bad_input.py::test_json_nested_too_deep_for_the_parser_is_400). The report
    upload carries its indicator table as JSON *inside* a multipart field (``indicators``, maxLength 100000 in the
    OpenAPI document), parsed by ``review.api._parse_indicators`` with ``json.loads`` catching only ValueError:
    3,000 "[" (well within the documented length) raise RecursionError, a 500 to the firm. Source: house rule;
    core/api.py request_json's own rule for nested JSON."""
    import io

    from evalhub.review.models import Submission

    e = factories.in_fieldwork(world)
    db.session.commit()
    db.session.rollback()
    before = db.session.execute(sa.select(sa.func.count(Submission.id))).scalar_one()
    form = {"kind": "report", "file": (io.BytesIO(factories.docx_bytes(factories.report_text())), "评价报告.docx"),
            "indicators": "[" * 3000, "concluded_total": "92", "concluded_grade": "优"}
    response = client.post(f"/api/v1/engagements/{e.id}/submissions", data=form, headers=auth("firm1"),
                           content_type="multipart/form-data")
    assert response.status_code in (400, 422), f"{response.status_code}: {text(response)[:300]}"
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(Submission.id))).scalar_one() == before


# --- results: several evidence files under one key; only the last file's name is checked -------------------

def test_api_evidence_upload_refuses_a_control_character_in_any_file_name_not_only_the_last(world, client, auth):
    """Control characters are refused, never stored, on every path: "the API's JSON bodies and form fields by its
    operation wrapper (core.api.check_body, 422 naming each field) … and the files' names (stored with the file)"
    (core/inputs.py; tests/test_bad_input.py::test_control_characters_in_an_upload_form_and_file_name_are_refused).
    ``check_body`` gathers the file names as ``{key: f.filename for key, f in request.files.items(multi=True)}``,
    so of several files under one key only the LAST name is checked, while POST /api/v1/results/findings/{id}/
    evidence stores every ``file`` (``request.files.getlist("file")``). A first file named with ESC sequences is
    stored as ``StoredFile.original_name`` (on PostgreSQL a NUL there is a 500). Who is hurt: the bureau staff
    whose terminal/log/export shows the name; the rule's source: core/inputs.py CONTROL."""
    import io

    from evalhub.core.inputs import CONTROL
    from evalhub.core.models import StoredFile
    from evalhub.results import services as S

    e = factories.accepted(world)
    findings = factories.confirmed_findings(world, e, n=1)
    unit = factories.unit_user(world, "巴州统计局", "tjj.fuzz")
    S.submit_plan(findings[0], unit, "本单位将于三个月内完成资金拨付并建立台账。")
    db.session.commit()
    finding_id = findings[0].id
    response = client.post(f"/api/v1/results/findings/{finding_id}/evidence", headers=auth("tjj.fuzz"),
                           content_type="multipart/form-data",
                           data={"note": "已完成整改，附拨付凭证。",
                                 "file": [(io.BytesIO(factories.PNG + b"first"), "拨付凭证\x1b[2J\x1b[31m.png"),
                                          (io.BytesIO(factories.PNG + b"second"), "台账.png")]})
    db.session.rollback()
    names = list(db.session.execute(sa.select(StoredFile.original_name)).scalars())
    assert not [n for n in names if CONTROL.search(n)], f"stored with control characters: {names!r}"
    assert response.status_code == 422, f"{response.status_code}: {text(response)[:300]}"


# --- procurement: a committee member's technical score with more places than the column keeps ---------------

def test_a_technical_score_with_three_decimals_is_refused_not_silently_rounded(world):
    """Every point, weight and score is kept to two places (Numeric(6, 2)); the review's scores refuse more
    ("最多保留两位小数": "kept to two places: a check on what is typed holds for what is kept",
    review.services._decimal), as do the results module's amounts (results.services._money: "more is refused,
    never rounded away"). The bid committee's technical scores (procurement.services.record_technical_scores,
    web form /procurements/<id>/members/<id>/scores) accept "12.345" and the database rounds it: the score the
    ranking uses is not the one the member typed and signed. Who is hurt: the bidders (a tie-break or a rank
    decided by a rounding the member never saw)."""
    from evalhub.core.errors import ValidationFailed
    from evalhub.procurement import services as P
    from evalhub.procurement.models import TechnicalScore
    from tests.test_audit_registry import _opened

    p = _opened(world, "三位小数评分机构")
    for i in range(4):
        factories.expert(world.bz, name=f"评委{i}", employer=f"新疆某学院{i}")
    factories.witnessed(P.draw_committee(p, 3, world.bz_staff))
    db.session.commit()
    factories.committee_clears_flags(p, world.bz_staff)
    member = p.committee[0]
    first = p.rubric[0]
    typed = (first.max_points - Decimal("0.005")).quantize(Decimal("0.001"))  # e.g. 29.995
    scores = {b.id: {i.id: (typed if i.id == first.id else i.max_points) for i in p.rubric} for b in p.bids}
    try:
        P.record_technical_scores(p, member, scores, world.bz_staff)
    except ValidationFailed:
        return  # refused, as the review's scores are
    db.session.commit()
    kept = db.session.execute(sa.select(TechnicalScore.points).where(
        TechnicalScore.member_id == member.id, TechnicalScore.rubric_item_id == first.id)).scalars().first()
    assert Decimal(kept) == typed, f"typed {typed}, kept {kept}"


def test_a_bid_rubric_summing_to_100_only_before_rounding_is_refused(world):
    """A procurement's technical rubric must total 100 ("技术评分项分值合计应为 100", procurement.services.
    open_procurement). The check adds the points as typed, the rows keep two places (BidRubricItem.max_points,
    Numeric(6, 2)): 33.335 + 33.335 + 33.33 passes the check and is read back as 33.34 + 33.34 + 33.33 = 100.01
    (PostgreSQL and SQLite alike) — a rubric that breaks the rule it was checked against,
    and a technical score out of a total that is not 100. Who is hurt: the bidders and the committee. Same rule
    as review.services._decimal: "a check on what is typed holds for what is kept"."""
    from datetime import timedelta

    from evalhub.core.errors import ValidationFailed
    from evalhub.core.timeutil import utcnow
    from evalhub.procurement import services as P
    from evalhub.procurement.models import BidRubricItem, ProcurementMethod

    e = factories.engagement(world)
    db.session.commit()
    try:
        p = factories.witnessed(P.open_procurement(e, P.ProcurementInput(
            method=ProcurementMethod.COMPETITIVE_CONSULTATION, title="", ceiling_price_wan="50", price_weight="20",
            bid_deadline=utcnow() + timedelta(days=12),
            rubric=[("评价方案", "33.335"), ("团队能力", "33.335"), ("质量控制", "33.33")]), world.bz_staff))
    except ValidationFailed:
        return  # refused: the rule holds for what is typed and kept alike
    db.session.commit()
    db.session.expire_all()
    rows = db.session.execute(sa.select(BidRubricItem.max_points).where(
        BidRubricItem.procurement_id == p.id)).scalars().all()
    kept = sum(rows, Decimal("0"))
    assert kept == Decimal("100"), f"rubric checked as 100 is kept as {' + '.join(map(str, rows))} = {kept}"
