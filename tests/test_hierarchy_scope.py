"""The organisation tree's scope on the paths the hierarchy audit (tests/test_audit_hierarchy.py) found open: who may
still do what once the holes are closed — the importing bureau withdraws its references, a complaint's own bureau
opens its case, a county reads and waives its own cases but not an upper bureau's, a rating is read in the rating
bureau's tree, a draft watch list stays the rating bureau's until it is published."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied
from evalhub.extensions import db
from tests import factories as F


# --- outside reference reports --------------------------------------------------------------------------

def test_a_reference_is_withdrawn_by_the_bureau_that_imported_it_or_the_system_administrator(world):
    from tests.test_screening_references import _import
    from evalhub.screening import references as refs
    from evalhub.screening.models import ReferenceDocument

    first, second = _import(world, actor=world.krl_staff).added
    db.session.commit()
    for outsider in (world.bz_admin, world.region_admin, world.lt_staff, world.firm_user):
        with pytest.raises(PermissionDenied):
            refs.delete_reference(first, outsider)
        db.session.rollback()
    refs.delete_reference(first, world.krl_staff)
    refs.delete_reference(second, world.sysadmin)  # imports nothing, may tidy the shared index
    db.session.commit()
    assert db.session.execute(sa.select(sa.func.count()).select_from(ReferenceDocument)).scalar_one() == 0


# --- complaints -------------------------------------------------------------------------------------------

def test_only_the_complaints_own_bureau_opens_a_case_on_it_on_every_path(world):
    from tests.test_audit_hierarchy import _county_complaint
    from evalhub.supervision import services as V
    from evalhub.supervision.models import ComplaintStatus, Trigger

    complaint = _county_complaint(world)
    for bureau, actor in ((world.bz, world.bz_admin), (world.region, world.region_staff), (world.bz, None)):
        with pytest.raises(PermissionDenied) as refused:  # the page, the API and a system path alike
            V.open_case(bureau, actor, trigger=Trigger.COMPLAINT, detail="根据投诉立案", firm=world.firm, complaint=complaint)
        assert "由库尔勒市财政局受理" in refused.value.message
        db.session.rollback()
    assert complaint.status == ComplaintStatus.RECEIVED
    case = V.open_case(world.krl, world.krl_staff, trigger=Trigger.COMPLAINT, detail="根据投诉立案", firm=world.firm,
                       complaint=complaint)
    assert case.bureau_id == world.krl.id and complaint.status == ComplaintStatus.CASE_OPENED


# --- an upper bureau's case and the county's publish step -------------------------------------------------

def _krl_accepted(world, name):
    from evalhub.core.models import BudgetUnit

    unit = world.units.get("库尔勒市教育局")
    if unit is None:
        unit = BudgetUnit(bureau_id=world.krl.id, name="库尔勒市教育局")
        db.session.add(unit)
        db.session.flush()
        world.units[unit.name] = unit
    return F.accepted(world, bureau_key="krl", unit=unit.name, name=name)


def _redacted(e):
    return F.docx_bytes(f"{e.name}绩效评价报告（脱密版）\n" + F.report_text())


def test_the_county_reads_and_waives_its_own_case_but_not_its_prefectures(world):
    from evalhub.procurement import workflow
    from evalhub.procurement.models import EngagementState
    from evalhub.review import services as R
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Trigger

    e = _krl_accepted(world, "库尔勒市学前教育补助项目")
    own = V.open_case(world.krl, world.krl_admin, trigger=Trigger.OTHER, detail="县局线索", engagement=e)
    upper = V.open_case(world.bz, world.bz_admin, trigger=Trigger.OTHER, detail="州局线索", engagement=e)
    db.session.commit()

    [county] = workflow.unmet(e, "publish", skip=("redacted_file",), reader=world.krl_admin)
    assert f"#{own.id}" in county.problem and "上级财政局暂缓公开" in county.problem
    assert f"#{upper.id}" not in county.problem and not county.waivable
    [prefecture] = workflow.unmet(e, "publish", skip=("redacted_file",), reader=world.bz_staff)
    assert f"#{own.id}" in prefecture.problem and f"#{upper.id}" in prefecture.problem

    with pytest.raises(Conflict) as refused:
        R.publish(e, world.krl_admin, filename="脱密版.docx", data=_redacted(e), override="县局认为可以先行公开")
    assert f"#{upper.id}" not in refused.value.message and "上级财政局暂缓公开" in refused.value.message
    assert "豁免" not in refused.value.message  # no hint the county could set it aside
    db.session.rollback()

    # the system administrator may still waive it, with the reason on the record
    R.publish(e, world.sysadmin, filename="脱密版.docx", data=_redacted(e), override="经自治区协调，州局同意先行公开")
    db.session.flush()
    assert e.state == EngagementState.PUBLISHED


def test_the_county_still_waives_its_own_open_case(world):
    from evalhub.procurement.models import EngagementState
    from evalhub.review import services as R
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Trigger

    e = _krl_accepted(world, "库尔勒市校舍维修项目")
    own = V.open_case(world.krl, world.krl_admin, trigger=Trigger.OTHER, detail="县局线索", engagement=e)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        R.publish(e, world.krl_admin, filename="脱密版.docx", data=_redacted(e))
    assert f"#{own.id}" in refused.value.message and "豁免" in refused.value.message
    db.session.rollback()
    R.publish(e, world.krl_admin, filename="脱密版.docx", data=_redacted(e), override="检查不涉及报告内容，先行公开")
    db.session.flush()
    assert e.state == EngagementState.PUBLISHED


# --- an expert's ratings ----------------------------------------------------------------------------------

def test_an_experts_ratings_are_read_in_the_rating_bureaus_tree_and_counted_elsewhere(world, client, login, auth):
    from tests.test_audit_hierarchy import _region_panel_on_kz
    from evalhub.core.settings import set_setting
    from evalhub.review import ratings

    e, panel, reviewers = _region_panel_on_kz(world)
    expert = reviewers[0]
    set_setting(world.region, "expert.rating_poor_count", 1, world.sysadmin)  # one poor rating keeps it out
    ratings.rate_expert(panel, expert.id, world.kz_staff, timeliness=1, quality=2, note="逾期五天提交评审意见")
    db.session.commit()
    url, api = f"/experts/{expert.id}/ratings", f"/api/v1/experts/{expert.id}/ratings"

    for username in ("kz.staff", "region.staff", "admin"):  # 克州, the region above it, the system: the rows
        body = client.get(api, headers=auth(username)).json
        assert [r["panel"]["subject_reference"] for r in body["items"]] == [e.reference], username
        assert body["elsewhere"] == 0 and body["excluded"] is True
    for username in ("krl.staff", "bz.admin", "ats.staff"):  # outside 克州's reach (its own county reads its own)
        body = client.get(api, headers=auth(username)).json  # a count, and the pool's fact
        assert body["items"] == [] and body["elsewhere"] == 1 and body["excluded"] is True and body["exclusion"]
    login(world.krl_staff)
    html = client.get(url).get_data(as_text=True)
    assert e.reference not in html and "逾期五天" not in html
    assert 'data-testid="ratings-elsewhere"' in html and 'data-testid="rating-exclusion"' in html
    login(world.kz_staff)
    assert "逾期五天" in client.get(url).get_data(as_text=True)


# --- a county's draft watch list --------------------------------------------------------------------------

def test_a_draft_watch_list_keeps_the_firm_out_by_its_suspension_and_counts_once_published(world):
    from tests.test_audit_hierarchy import _county_draft_watch_list
    from evalhub.credit import services as C
    from evalhub.credit.models import CreditRating
    from evalhub.procurement import eligibility
    from evalhub.procurement.models import ProcurementMethod as M
    from evalhub.registry.models import FirmStatus, FirmStatusChange

    region_firm = _county_draft_watch_list(world)
    rating = db.session.execute(sa.select(CreditRating).where(CreditRating.firm_id == region_firm.id)).scalar_one()
    assert "伪造满意度问卷" in rating.watch_reason  # the rating keeps the finding
    change = db.session.get(FirmStatusChange, rating.suspension_id)
    assert "轮台县" in change.reason and "故意违规" in change.reason and "伪造满意度问卷" not in change.reason

    kz = F.engagement(world, bureau_key="kz", unit="克州农业农村局", year=2026)
    bz = F.engagement(world, bureau_key="bz", unit="巴州民政局", year=2026)
    reasons = eligibility.exclusion_reasons(region_firm, kz, M.OPEN_TENDER)
    assert reasons and any("暂停" in r for r in reasons)  # the suspension keeps it out while the rating is a draft
    assert not any("重点关注名单" in r for r in reasons)

    C.ensure_national_calendar()
    C.publish(world.lt, 2025, world.lt_admin, today=date(2026, 1, 12))
    region_firm.status = FirmStatus.ADMITTED  # reinstated by its library: the published watch list still bars it
    db.session.flush()
    outside = eligibility.exclusion_reasons(region_firm, kz, M.OPEN_TENDER)
    assert "2025 年度被轮台县列入重点关注名单（检查发现故意违规）" in outside
    assert not any("伪造满意度问卷" in r for r in outside)  # 克州 may not read 轮台县's rating
    inside = eligibility.exclusion_reasons(region_firm, bz, M.OPEN_TENDER)
    assert any(r.startswith("2025 年度被轮台县列入重点关注名单：") and "伪造满意度问卷" in r for r in inside)


# --- framework agreements ---------------------------------------------------------------------------------

def test_a_prefecture_reads_its_counties_agreements_and_a_county_not_its_siblings(world, login):
    """DESIGN.md "Permissions": a prefecture sees itself and its counties. The list showed a bureau only the agreements
    it may rotate (its own and above), so 巴州 never saw what 库尔勒市 had registered; it reads them now, marked as a
    lower bureau's (not usable for its own procurements, which still offer only its own and above)."""
    from tests.test_frameworks_views import _agreement

    krl = _agreement(world, "krl", "库尔勒市框架协议", [F.firm(world.krl, name=f"库尔勒入围{i}") for i in (1, 2)])
    lt = _agreement(world, "lt", "轮台县框架协议", [F.firm(world.lt, name=f"轮台入围{i}") for i in (1, 2)])
    bz = _agreement(world, "bz", "巴州框架协议", [F.firm(world.bz, name=f"巴州入围{i}") for i in (1, 2)])
    db.session.commit()
    html = login(world.bz_staff).get("/frameworks").get_data(as_text=True)
    assert f'data-testid="framework-{krl.id}"' in html and f'data-testid="framework-{lt.id}"' in html
    assert html.count('data-testid="framework-below"') == 2
    html = login(world.krl_staff).get("/frameworks").get_data(as_text=True)
    assert f'data-testid="framework-{krl.id}"' in html and f'data-testid="framework-{bz.id}"' in html
    assert f'data-testid="framework-{lt.id}"' not in html and 'data-testid="framework-below"' not in html
    html = login(world.kz_staff).get("/frameworks").get_data(as_text=True)
    assert "库尔勒市框架协议" not in html and "巴州框架协议" not in html
