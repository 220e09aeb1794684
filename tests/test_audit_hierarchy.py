"""Audit of the organisation tree (自治区 → 州/地区 → 县/市) and its scope on every surface.

Each test states a rule of the tree, who is hurt when it breaks and where the rule comes from; each fails on
the code as it stands for the reason it names. The rule the whole file leans on is the one the permission
engine states in its own header (evalhub/core/permissions.py, from DESIGN.md "Permissions"): a county sees its
own county, a prefecture itself and its counties, the region everything — and "a bureau *changes* only its
own records (an upper bureau supervises, it does not edit)".
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from evalhub.core.errors import PermissionDenied
from evalhub.extensions import db
from tests import factories as F


# --- screening: outside reference reports ---------------------------------------------------------------

def test_a_prefecture_cannot_delete_the_reference_reports_its_county_imported(world, client, login):
    """Rule: a bureau changes only its own records; an upper bureau supervises, it does not edit (core/permissions.py
    header, DESIGN.md "Permissions"). screening/permissions.py says of references: "listed to the bureau that
    imported them and the bureaus above it" — listed, not handed over. Who is hurt: 库尔勒市 (county) imports the
    published reports it screens its firms' reports against; 巴州's (or the region's) staff can withdraw them from
    the shared index, and every bureau's screening loses the source, though 巴州 never imported it and 库尔勒市 cannot
    stop it. Cause: ``screening.references.delete`` is ``is_bureau_user and visible`` (the read scope, the subtree),
    not the importing bureau's own."""
    from tests.test_screening_references import _import
    from evalhub.screening import references as refs
    from evalhub.screening.models import ReferenceDocument

    result = _import(world, actor=world.krl_staff)
    db.session.commit()
    reference = result.added[0]
    assert reference.bureau_id == world.krl.id
    reference_id = reference.id
    with pytest.raises(PermissionDenied):
        refs.delete_reference(reference, world.bz_staff)
    db.session.rollback()
    # and on the page: the prefecture's staff is offered no delete button and its POST is refused
    login(world.bz_staff)
    response = client.post(f"/screening/references/{reference_id}/delete")
    assert response.status_code in (403, 404), response.status_code
    assert db.session.get(ReferenceDocument, reference_id) is not None


# --- supervision: a county's complaint --------------------------------------------------------------------

def _county_complaint(world):
    from evalhub.supervision import services as V

    complaint = V.file_complaint(bureau_id=world.krl.id, firm_name=world.firm.name,
                                 text="该机构在库尔勒市的评价报告大量套用模板，现场核查没有开展。",
                                 engagement_reference=None, complainant_name=None, complainant_contact=None,
                                 address="10.1.1.1")
    db.session.commit()
    return complaint


def test_a_prefecture_cannot_take_over_a_countys_complaint_through_the_new_case_form(world, client, login):
    """Rule: a complaint is decided by the bureau it was filed with: 立案 from the complaint's page and 不予立案 both
    require ``supervision.manage`` of the complaint's own bureau (supervision/views.py ``complaint_case``,
    ``complaint_decline``; services ``decline_complaint``) — an upper bureau supervises, it does not edit. Who is
    hurt: the public filed with 库尔勒市 (county); 巴州 (prefecture) may not open a case from it on the complaint's page
    (403), but the general 新建定向检查 form accepts the county's complaint number (it is only looked up in the
    reader's scope) and moves the county's complaint to 已立案 under 巴州's case — a case 库尔勒市 cannot read, on a
    complaint 库尔勒市 can then neither case nor decline. Cause: ``inspection_new`` finds the complaint with
    ``scoped(Complaint)`` (the subtree) and ``services.open_case`` never checks ``complaint.bureau_id == bureau.id``."""
    from evalhub.supervision.models import Complaint, ComplaintStatus

    complaint = _county_complaint(world)
    complaint_id, reference = complaint.id, complaint.reference
    login(world.bz_staff)
    # the page's own button is refused to the prefecture, as it should be
    assert client.post(f"/complaints/{complaint_id}/case",
                       data={"firm_id": str(world.firm.id), "detail": "线索"}).status_code == 403
    # the general form must refuse it too
    response = client.post("/inspections/new", data={
        "trigger": "complaint", "firm_id": str(world.firm.id), "detail": "根据投诉立案检查",
        "complaint_reference": reference, "engagement_reference": ""})
    db.session.expire_all()
    stored = db.session.get(Complaint, complaint_id)
    assert stored.status == ComplaintStatus.RECEIVED, (
        f"巴州 opened a case on 库尔勒市's complaint {reference} (HTTP {response.status_code}); "
        f"the county's complaint is now {stored.status.label}")


# --- supervision: an upper bureau's case seen from the county ----------------------------------------------

def test_a_county_does_not_learn_of_its_prefectures_open_case_from_the_publish_step(world, client, login, auth):
    """Rule: an upper bureau's case on a county's engagement stays the upper bureau's own — 轮台县 does not learn of
    巴州's case from its case page nor from the opening warning (supervision/services.py ``other_cases``,
    ``same_engagement_warning``; tests/test_leaks_more.py). A targeted case (定向检查) is opened on a lead — a
    complaint, a tip-off — that the county may be part of. Who is hurt: 巴州 (prefecture), whose confidential case on
    库尔勒市's engagement is announced to the county, with its number, by the 公开 step's unmet requirement in the API's
    engagement detail (``available_actions[].unmet``: "该报告有未办结的检查（#N）", the same sentence the 公开 step's
    refusal gives) — and the county's admin may then even waive it blind. Cause: the ``no_open_inspection`` requirement
    (supervision/services.py ``open_inspection_of_report``) counts and names every open inspection of the engagement,
    whoever's, not those the reader may read (``other_cases``' rule)."""
    from evalhub.core.models import BudgetUnit
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Trigger

    unit = BudgetUnit(bureau_id=world.krl.id, name="库尔勒市教育局")
    db.session.add(unit)
    db.session.flush()
    world.units[unit.name] = unit
    e = F.accepted(world, bureau_key="krl", unit=unit.name, name="库尔勒市义务教育薄弱环节改善项目")
    upper = V.open_case(world.bz, world.bz_admin, trigger=Trigger.OTHER,
                        detail="州局掌握的线索：该报告数据疑似编造，县局经办人员与机构往来密切", engagement=e)
    db.session.commit()
    marker = f"#{upper.id}"
    login(world.krl_admin)
    assert client.get(f"/inspections/{upper.id}").status_code == 403  # not the county's to read
    detail = client.get(f"/api/v1/engagements/{e.id}", headers=auth("krl.admin"))
    assert detail.status_code == 200
    unmet = [a.get("unmet") or "" for a in detail.json["available_actions"]]
    told = [u for u in unmet if marker in u or "未办结的检查" in u]
    assert not told, f"the county is told of the prefecture's open case on its engagement: {told}"


# --- the shared expert pool: what one prefecture wrote about an expert, read in another -------------------

def _region_panel_on_kz(world):
    """克州's engagement reviewed by a panel of three experts of the region's pool (drawn from the usable pools:
    克州's own and the region's; the other experts sit this draw out), the panel decided."""
    from evalhub.procurement.eligibility import library_bureau_ids
    from evalhub.registry.models import Expert
    from evalhub.review import services as R

    e = F.contracted(world, bureau_key="kz", unit="克州农业农村局", firm=world.other_firm, name="克州草原生态保护补助项目")
    F.submit_plan(e)
    reviewers = []
    for n in range(3):
        x = F.expert(world.region, name=f"区级专家{n}", employer=f"新疆某研究院{n}", fields=[e.field])
        F.expert_user(x.id)
        reviewers.append(x)
    others = [x for x in db.session.execute(sa.select(Expert).where(
        Expert.bureau_id.in_(library_bureau_ids(e.bureau)))).scalars() if x not in reviewers]
    for x in others:
        x.available = False
    db.session.flush()
    panel = F.witnessed(R.form_panel(e, world.kz_staff, size=3))
    F.review_panel(panel, "0.9")
    return e, panel, reviewers


def test_a_county_reading_a_region_experts_record_does_not_read_another_prefectures_panels(world, client, login, auth):
    """Rule: a county sees its own county, a prefecture itself and its counties — never a sibling prefecture's records
    (DESIGN.md "Permissions"; core/permissions.py). The region's expert pool is usable by every bureau, so 库尔勒市
    (巴州's county) may open a region expert's page; but the ratings 克州 gave that expert after 克州's own panel are
    克州's appraisal of its own review: which engagement (reference), which round, and the free-text note that says
    what the expert did wrong on it. Who is hurt: 克州 (its internal panel appraisal, with its engagement's reference,
    is read by another prefecture's counties) and the expert (a colleague's criticism shown to every bureau in the
    region). Whether the expert is kept out of draws may be shown (that is the pool's fact); 克州's rows are not.
    Cause: ``expert.ratings`` is "visible(expert)", and review/ratings.py ``ratings_of`` lists every rating of the
    expert, whoever gave it (web page and API alike)."""
    from evalhub.review import ratings

    e, panel, reviewers = _region_panel_on_kz(world)
    expert = reviewers[0]
    ratings.rate_expert(panel, expert.id, world.kz_staff, timeliness=1, quality=1,
                        note="逾期五天提交评审意见，意见照抄模板，未针对克州草原项目提出任何具体问题")
    db.session.commit()
    expert_id, reference = expert.id, e.reference
    login(world.krl_staff)
    page = client.get(f"/experts/{expert_id}/ratings")
    assert page.status_code == 200  # the pool is the county's to use: it may read the expert
    html = page.get_data(as_text=True)
    api = client.get(f"/api/v1/experts/{expert_id}/ratings", headers=auth("krl.staff"))
    body = api.get_data(as_text=True) if api.status_code != 200 else str(api.json)
    leaks = [(where, secret) for where, text in (("page", html), ("api", body))
             for secret in (reference, "照抄模板") if secret in text]
    assert not leaks, f"库尔勒市 reads 克州's panel appraisal of the region's expert: {leaks}"


# --- credit: a county's draft rating read by another prefecture -------------------------------------------

def _county_draft_watch_list(world):
    """轮台县 (a county of 巴州) inspects the 2025 work of a firm of the region's library, finds an intentional
    violation and computes its 2025 ratings: a DRAFT, not yet published, with the firm on its watch list."""
    from evalhub.credit import services as C
    from evalhub.credit.models import CreditRating, RatingStatus
    from evalhub.procurement.models import EngagementState
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Severity, Trigger

    region_firm = F.firm(world.region, name="自治区库内某评价咨询有限公司")
    e = F.contracted(world, bureau_key="lt", unit="轮台县医疗保障局", firm=region_firm)
    e.state = EngagementState.ACCEPTED
    case = V.open_case(world.lt, world.lt_staff, trigger=Trigger.OTHER, detail="举报线索：问卷造假", engagement=e)
    V.add_finding(case, F.recorder(case), severity=Severity.INTENTIONAL, description="轮台县检查发现伪造满意度问卷数据")
    C.compute(world.lt, 2025, world.lt_admin)
    db.session.commit()
    rating = db.session.execute(sa.select(CreditRating).where(CreditRating.firm_id == region_firm.id)).scalar_one()
    assert rating.status == RatingStatus.DRAFT and rating.watch_list  # 轮台县's unpublished draft
    return region_firm


def test_another_prefecture_does_not_read_a_countys_draft_watch_list_reason(world):
    """Rule: a draft rating is its bureau's internal working paper — the firm itself is refused a draft (credit/views.py
    ``_rating``: "该评价结果尚未公示"), the region-wide reach of a grade counts only FINAL ratings (credit/services.py
    ``_final_grade_among``), and a bureau never reads a sibling prefecture's records (DESIGN.md "Permissions").
    Who is hurt: 轮台县 (county of 巴州) computes its 2025 ratings; the draft puts a region-library firm on its watch
    list with the inspection's finding as the reason. Before 轮台县 has published anything (the objection period not
    even begun), 克州 — another prefecture — is shown, when it assesses the same firm for its own engagement,
    "2025 年度被轮台县列入重点关注名单：<轮台县's finding>": the content of a sibling's unpublished rating and of a case
    克州 may not read. (The firm stays out anyway: the violation suspends it in its library at once.) Cause:
    ``watch_list_exclusions`` (credit/services.py) takes ``rating.watch_list`` from every rating within reach,
    whatever its status, and quotes its reason."""
    from evalhub.procurement import eligibility
    from evalhub.procurement.models import ProcurementMethod

    region_firm = _county_draft_watch_list(world)
    kz_engagement = F.engagement(world, bureau_key="kz", unit="克州农业农村局", name="克州草原生态保护补助项目")
    reasons = eligibility.exclusion_reasons(region_firm, kz_engagement, ProcurementMethod.OPEN_TENDER)
    quoted = [r for r in reasons if "轮台县" in r or "伪造满意度问卷" in r]
    assert not quoted, f"克州 reads 轮台县's draft rating: {quoted}"


def test_a_countys_unpublished_finding_is_not_broadcast_on_the_library_firms_page(world, client, login, auth):
    """Rule: as above — a draft rating and the case behind it are the rating bureau's (and its upper bureaus') until
    published; another prefecture's county never reads them (DESIGN.md "Permissions"; credit/views.py refuses a draft
    even to the firm). Who is hurt: 轮台县, whose inspection finding is broadcast before it has published its ratings or
    the firm has had its objection period (DOMAIN.md §6: "The draft rating is published for objection"); and the firm,
    whose alleged violation, in the inspector's own words, is shown to every bureau of the region (here 阿图什市, a
    county of 克州) on its library page and in the API. Cause: credit/services.py ``_suspend_for`` writes the draft's
    ``watch_reason`` (the findings' descriptions) into the suspension's reason, which the firm page and
    ``GET /api/v1/firms/<id>`` show to every user of the library (registry status history)."""
    region_firm = _county_draft_watch_list(world)
    login(world.ats_staff)
    page = client.get(f"/firms/{region_firm.id}")
    assert page.status_code == 200  # the region's library is 阿图什市's to use
    api = client.get(f"/api/v1/firms/{region_firm.id}", headers=auth("ats.staff"))
    assert api.status_code == 200
    leaks = [where for where, text in (("page", page.get_data(as_text=True)), ("api", str(api.json)))
             if "伪造满意度问卷" in text]
    assert not leaks, f"阿图什市 reads 轮台县's unpublished finding on the region firm's {leaks}"


def test_a_county_cannot_waive_its_prefectures_open_inspection_to_publish(world):
    """Rule: the upper bureau supervises the lower (DOMAIN.md §1 "an upper bureau sees and guides its lower ones";
    DESIGN.md "Permissions": a bureau changes only its own records); a report is not published while an inspection
    of it is open — "the public would read a report whose check is unfinished" (supervision/services.py
    ``open_inspection_of_report``) — and only the admin of the bureau that may decide that waives it. Who is hurt:
    巴州 (prefecture) opens a targeted case on a report of 库尔勒市 (county); the county — the party supervised, and
    possibly part of the lead — publishes the report anyway by "waiving" 巴州's open case with a sentence of its own,
    and the public reads the report 巴州 is still checking. Cause: procurement/workflow.py ``may_waive`` lets an admin
    of the engagement's own bureau waive any waivable requirement, including an inspection opened by a bureau above
    it (the requirement does not say whose case it is)."""
    from evalhub.core.errors import Conflict
    from evalhub.core.models import BudgetUnit
    from evalhub.procurement.models import EngagementState
    from evalhub.review import services as R
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Trigger

    unit = BudgetUnit(bureau_id=world.krl.id, name="库尔勒市教育局")
    db.session.add(unit)
    db.session.flush()
    world.units[unit.name] = unit
    e = F.accepted(world, bureau_key="krl", unit=unit.name, name="库尔勒市义务教育薄弱环节改善项目")
    V.open_case(world.bz, world.bz_admin, trigger=Trigger.OTHER,
                detail="州局掌握的线索：该报告数据疑似编造", engagement=e)
    db.session.commit()
    redacted = F.docx_bytes("库尔勒市义务教育薄弱环节改善项目绩效评价报告（脱密版）\n" + F.report_text())
    try:
        R.publish(e, world.krl_admin, filename="脱密版.docx", data=redacted,
                  override="县局认为检查不影响报告公开，先行公开")
        db.session.flush()
    except (PermissionDenied, Conflict):
        db.session.rollback()
        return
    assert e.state != EngagementState.PUBLISHED, "库尔勒市 published its report over 巴州's open inspection"
