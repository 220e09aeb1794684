"""Rules of supervision (campaigns, targeted cases, complaints, findings) and report screening (labels, queue,
scores): each test states a rule and its source, and sets up the case it holds on."""
from __future__ import annotations

import pytest

from evalhub.core.errors import ValidationFailed
from evalhub.extensions import db
from evalhub.procurement.models import EngagementState as S
from evalhub.supervision import services as V
from evalhub.supervision.models import CHECKLIST, Severity, Trigger
from tests import factories


def _completed(world, **kw):
    """An engagement of 巴州 for 2025, contracted to world.firm (or ``firm``) and accepted."""
    e = factories.contracted(world, **kw)
    e.state = S.ACCEPTED
    db.session.flush()
    return e


def _complaint(world, engagement=None, *, firm_name=None, address="9.9.9.9"):
    return V.file_complaint(bureau_id=world.bz.id, firm_name=firm_name or world.firm.name,
                            text="评价人员张某未到现场即出具报告，数据照抄单位自评，我是该单位财务科出纳李某某，电话13900000000。",
                            engagement_reference=engagement.reference if engagement is not None else None,
                            complainant_name="李某某", complainant_contact="13900000000", address=address)


# --- a complaint's content never reaches the inspected firm ---------------------------------------------

def test_a_case_opened_on_a_complaint_never_shows_the_complaint_to_the_firm_whatever_trigger_is_picked(world):
    """Rule: a complaint's text and complainant are the bureau's alone — the inspected firm reads no lead of a case
    opened on a complaint (supervision/views.py docstring "a complaint's text and complainant are bureau-only";
    services.WITHHELD_LEADS; supervision/api.py "no lead detail when the case came from a complaint"). A case opened
    on a complaint under another trigger (其他线索) is refused, or its lead is withheld from the firm all the same."""
    e = _completed(world)
    complaint = _complaint(world, e)
    detail = f"投诉举报（{complaint.reference}）：{complaint.text}"
    try:
        case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.OTHER, detail=detail, engagement=e,
                           complaint=complaint)
    except ValidationFailed:
        return  # a complaint case under another trigger is refused: the rule holds
    assert case.complaint_id == complaint.id
    assert V.lead_for(case, world.firm_user) is None, "the inspected firm must not read the complaint (or complainant)"


# --- a substantiated complaint counts against the firm inspected, not another -----------------------------

def test_a_complaint_substantiated_by_a_case_on_another_firm_is_not_charged_to_the_named_firm(world):
    """Rule: commissioner feedback loses points for each substantiated complaint against the firm (DOMAIN.md §6
    "commissioner feedback … and complaints"; docs/rules.md credit.deduct_complaint); a complaint is substantiated
    by the inspection opened on it (services.close). A case on a complaint naming world.firm but inspecting another
    firm is refused, or, closed as 属实, charges nothing to the named firm, which was never inspected."""
    from evalhub.credit import services as C

    named = _completed(world)                                   # world.firm, named by the complainant
    other, other_user, _staff = factories.bidder(world, "巴州第二评价咨询有限公司")
    complaint = _complaint(world, named)
    assert complaint.firm_id == world.firm.id
    try:
        case = V.open_case(world.bz, world.bz_staff, trigger=Trigger.COMPLAINT, detail="投诉线索", firm=other,
                           complaint=complaint)
    except ValidationFailed:
        return  # refused: a complaint case inspects the firm complained about
    recorder = factories.recorder(case)
    V.record_checklist(case, recorder, {k: (k != "working_papers", "") for k, _ in CHECKLIST})
    V.add_finding(case, recorder, severity=Severity.GENERAL, description="工作底稿缺少现场访谈记录", measures=["责令整改"])
    V.respond(case, other_user, "已补充访谈记录并完善底稿复核制度。")
    V.close(case, recorder, "投诉反映问题属实，机构已整改。")
    assert complaint.substantiated is True
    rating = {r.firm_id: r for r in C.compute(world.bz, 2025, world.bz_admin)}[named.firm_id]
    feedback = next(c for c in rating.components if c["code"] == "feedback")
    charged = [r for r in feedback["records"] if r.get("type") == "complaint"]
    assert charged == [], f"{world.firm.name} was never inspected and must lose no points for the complaint: {charged}"


# --- bad input ------------------------------------------------------------------------------------------

def test_a_campaign_year_of_superscript_digits_is_refused_not_a_server_error(client, login, world):
    """Rule: bad input is refused beside its field with 422, never a 500 (supervision/views.py docstring: a service's
    ValidationFailed is shown beside the form with HTTP 422; forms.py: the form checks the shape of a number). A
    campaign year of "202⁵" (superscript digits: str.isdigit() says yes, int() says no) is refused with 422."""
    login(world.bz_admin)
    try:
        response = client.post("/campaigns/new", data={"year": "202\u2075", "ratio": "10"})
    except ValueError as exc:  # the app propagates exceptions under TESTING
        pytest.fail(f"/campaigns/new must refuse year '202⁵' with 422, not raise: {exc!r}")
    assert response.status_code == 422, response.status_code


def test_a_public_complaint_naming_a_firm_whose_name_two_firms_share_is_received(client, world):
    """Rule: the public complaint form takes any firm name (services.file_complaint: "The public complaint form: no
    login; a reference number"); firm names are not unique (the USCC is), and a name two firms share is received,
    kept as written for the bureau to tie to a firm, never a 500. Two firms (巴州, 克州) share the name here."""
    import sqlalchemy as sa

    from evalhub.supervision.models import Complaint

    name = "新疆天恒会计师事务所"
    factories.firm(world.bz, name=name)
    factories.firm(world.kz, name=name)  # another entity (another USCC) of the same name, in 克州's library
    db.session.commit()
    try:
        response = client.post("/public/complaints", data={
            "bureau_id": str(world.bz.id), "firm_name": name, "form_token": "t" * 32,
            "text": "评价报告与实际情况严重不符，现场调查仅半天，问卷数据系编造，请予以核查。"})
    except sa.exc.MultipleResultsFound as exc:
        pytest.fail(f"the public complaint form must receive the complaint, not raise: {exc!r}")
    assert response.status_code == 200, response.status_code
    assert db.session.execute(sa.select(sa.func.count(Complaint.id))).scalar_one() == 1


# --- screening labels -----------------------------------------------------------------------------------

def test_an_inspections_label_belongs_to_the_version_it_inspected_not_one_uploaded_after_it_closed(world):
    """Rule: a label is "the features it had when screened" of the report an inspection "answered … was copied,
    templated or fabricated" (screening/services.py labelled_frame; docs/rules.md "Supervision and screening";
    learning.py: a time-based split, so no label may reach a text from after its source). A case opened on version
    1's flag closes as "templated": its label goes to version 1, not to version 2, rectified after the close."""
    from evalhub.review import services as R
    from evalhub.review.models import SubmissionKind
    from evalhub.screening import services as SS
    from tests.screening_support import INDICATORS, report_text, upload_report
    from tests.test_screening_services import _decide_first_round

    first = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=False)
    upload_report(world, first, name="饮水安全工程")
    e2, v1 = upload_report(world, first.replace("饮水安全工程", "高标准农田建设").replace("巴州统计局", "巴州民政局"),
                           name="高标准农田建设", unit="巴州民政局")
    flagged = SS.screening_for(v1)
    case = SS.open_case(flagged, world.bz_staff)
    recorder = factories.recorder(case)
    V.record_checklist(case, recorder, {k: (k != "report_original", "套用本机构模板") for k, _ in CHECKLIST})
    V.close(case, recorder, "第 1 版报告套用本机构其他报告的模板，已移交信用评价扣分。")

    panel = _decide_first_round(world, e2, 0.8)  # the first round fails: the report goes back
    R.send_letter(panel, world.bz_staff, "报告套用模板，问题和建议不具体，请针对评价对象重新撰写后再提交。")
    v2 = R.submit(e2, SubmissionKind.REPORT, "评价报告（整改稿）.docx",
                  factories.docx_bytes(report_text("高标准农田建设", "巴州民政局", world.firm.name, specific=True)),
                  world.firm_user, indicators=INDICATORS, concluded_total="92", concluded_grade="优")
    rectified = SS.screening_for(v2)
    assert rectified is not None and rectified.submitted_at >= case.closed_at

    frame = SS.labelled_frame()
    from_inspection = frame[frame["source"] == "inspection"]
    assert list(from_inspection["screening_id"]) == [flagged.id], (
        f"the inspection of version 1 must label screening {flagged.id} only, not "
        f"{list(from_inspection['screening_id'])} (version 2 was uploaded after the case closed)")


def test_after_a_model_is_promoted_the_reasons_shown_are_the_models_not_the_rule_scores(world, monkeypatch):
    """Rule: a screening's reasons are "the features that moved this risk, by their exact contribution" (screening/
    services.py assess; screening/explain.py: for a model, risk minus risk with the feature at its training mean),
    shown beside the risk on the queue, the card, the API and a case's lead. When a model is promoted (promote(),
    the hourly rescore), each report's model risk comes with the model's reasons, not the rule score's."""
    from evalhub.screening import explain
    from evalhub.screening import services as SS
    from evalhub.screening.models import RiskMethod
    from tests.screening_support import report_text, upload_report
    from tests.test_screening_services import _synthetic_frame

    first = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=False)
    upload_report(world, first, name="饮水安全工程")
    _e, s2 = upload_report(world, first.replace("饮水安全工程", "高标准农田建设").replace("巴州统计局", "巴州民政局"),
                           name="高标准农田建设", unit="巴州民政局")
    monkeypatch.setattr(SS, "labelled_frame", lambda: _synthetic_frame())
    SS.promote(SS.train_model(world.region_admin), world.region_admin)
    row = SS.screening_for(s2)
    assert row.method == RiskMethod.MODEL
    model, _problem = SS.active_model()
    expected = [(r["feature"], r["contribution"]) for r in explain.reasons(row.features, model, limit=6)]
    shown = [(r["feature"], r.get("contribution")) for r in row.reasons]
    assert shown == expected, f"model risk {row.risk} must be shown with the model's reasons {expected}, not {shown}"


# --- something done twice -------------------------------------------------------------------------------

def test_two_clicks_at_once_on_a_flag_open_one_case(app, world, monkeypatch):
    """Rule: a flag opens one targeted case (screening/forms.py: "a flag opens one case only"; services.open_case
    refuses a second with Conflict; tests/test_screening_services.py checks it one click after the other). Two
    officers (or a double click) press the card's 立案检查 on one flag at the same moment: one case is opened."""
    import sqlalchemy as sa

    from evalhub.core.models import User
    from evalhub.screening import services as SS
    from evalhub.screening.models import ReportScreening
    from evalhub.supervision.models import Inspection
    from tests.screening_support import report_text, upload_report

    first = report_text("饮水安全工程", "巴州统计局", world.firm.name, specific=False)
    upload_report(world, first, name="饮水安全工程")
    _e, s2 = upload_report(world, first.replace("饮水安全工程", "高标准农田建设").replace("巴州统计局", "巴州民政局"),
                           name="高标准农田建设", unit="巴州民政局")
    screening_id, user_ids = SS.screening_for(s2).id, [world.bz_staff.id, world.bz_admin.id]
    db.session.commit()

    # The two requests meet after open_case's "already a case?" read (at rank_of, its next step), as they do when
    # the clicks land together; a request that cannot get there (held by a lock) passes on after 2 s.
    import threading

    meet, rank_of = threading.Barrier(2), SS.rank_of

    def rank_of_after_both_read(screening, actor):
        try:
            meet.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass
        return rank_of(screening, actor)

    monkeypatch.setattr(SS, "rank_of", rank_of_after_both_read)

    def click(user_id):
        return lambda: SS.open_case(db.session.get(ReportScreening, screening_id), db.session.get(User, user_id))

    outcomes = factories.at_once(app, *(click(u) for u in user_ids))
    db.session.expire_all()
    cases = db.session.execute(sa.select(sa.func.count(Inspection.id))).scalar_one()
    assert cases == 1, f"two clicks at once must open one case on a flag, not {cases} ({outcomes})"
