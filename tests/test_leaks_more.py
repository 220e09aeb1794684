"""What one party must not read: a red-flag case's lead (the firm), an upper bureau's case on a county's engagement
(the county), an engagement's existence (another firm or bureau, through the upload API), a single source before
its approval (the other firms), the exclusion reasons of a draw among people (the public)."""
from __future__ import annotations

import json

import sqlalchemy as sa

from evalhub.core.enums import Role
from evalhub.extensions import db
from tests import factories


def text(response) -> str:
    return response.get_data(as_text=True)


# --- 1. a case opened from a procurement red flag: the firm reads the screening risk and the flag ----------

def test_a_red_flag_case_shows_the_inspected_firm_neither_the_screening_risk_nor_the_flag(client, login, auth, world):
    """integrity.redflags.open_inspection opens the case with trigger OTHER and a lead holding the red flag's
    explanation and the delivered quality — including the report's screening risk ("筛查风险 0.91"). lead_for
    withholds only COMPLAINT and SCREENING_FLAG leads, so the inspected firm reads it all (web page and API):
    the bureaus' screening risk and the red flag, which no firm may read (integrity/permissions.py)."""
    from evalhub.integrity import redflags as R
    from evalhub.integrity.models import Indicator, RedFlag
    from tests.test_integrity_redflags import _history

    firms = [factories.firm(world.bz, name=n) for n in ("低价中标公司", "常规甲公司", "常规乙公司")]
    _history(world, firms)
    R.refresh()
    flag = db.session.execute(sa.select(RedFlag).where(RedFlag.indicator == Indicator.LOWBALL)).scalar_one()
    # what refresh records when the lowball award's report was also screened at a high risk
    flag.quality = {**flag.quality, "risk": 0.91, "worse": ["findings", "risk"]}
    inspection = R.open_inspection(flag, world.bz_admin)
    firm_user = factories.user("lowball.firm", Role.FIRM_USER, firm_id=firms[0].id)
    db.session.commit()
    assert "筛查风险 0.91" in inspection.trigger_detail  # the bureau's lead

    body = client.get(f"/api/v1/inspections/{inspection.id}", headers=auth("lowball.firm"))
    assert body.status_code == 200
    page = text(login(firm_user).get(f"/inspections/{inspection.id}"))
    for where, shown in (("page", page), ("api", json.dumps(body.json, ensure_ascii=False))):
        assert "筛查风险" not in shown and "0.91" not in shown, where
        assert "采购诚信红旗" not in shown and "红旗#" not in shown, where


# --- 2. a county's case page names its prefecture's case on the same engagement ---------------------------

def test_a_countys_case_page_does_not_reveal_an_upper_bureaus_case_it_may_not_read(client, login, world):
    """supervision.services.other_cases reads every other inspection of the engagement, unscoped, and the case
    page (templates/supervision/inspection_detail.html, data-testid="other-cases"), the opening flash
    (same_engagement_warning) and the audit payload name them: 轮台县 learns that 巴州 (above it) opened a case —
    its number, kind and status — although the inspection row scope hides 巴州's cases from 轮台县."""
    from evalhub.supervision import services as V
    from evalhub.supervision.models import Trigger

    e = factories.engagement(world, bureau_key="lt", unit="轮台县医疗保障局", name="医保基金监管")
    e.firm_id = world.firm.id
    db.session.flush()
    upper = V.open_case(world.bz, world.bz_admin, trigger=Trigger.OTHER, detail="州局掌握的线索：报告数据疑似编造",
                        engagement=e)
    own = V.open_case(world.lt, world.lt_admin, trigger=Trigger.OTHER, detail="县局复核", engagement=e)
    db.session.commit()
    client = login(world.lt_staff)
    assert client.get(f"/inspections/{upper.id}").status_code == 403  # not the county's to read
    page = text(client.get(f"/inspections/{own.id}"))
    assert f'href="/inspections/{upper.id}"' not in page and f"检查 #{upper.id}<" not in page
    assert V.same_engagement_warning(own, world.lt_staff) is None  # the warning shown to the county
    assert [i.id for i in V.other_cases(own, world.bz_staff)] == [upper.id]  # the prefecture reads both


# --- 3. the upload endpoint tells another firm or bureau which engagements exist --------------------------

def test_uploading_to_an_engagement_one_cannot_see_answers_as_if_it_did_not_exist(client, auth, world):
    """review.api.create_submission looks the engagement up (404 only when missing), then refuses anyone but the
    contracted firm with 403: another firm or another prefecture's bureau tells 巴州's engagements from ids that
    do not exist, contrary to the API's rule (core.apiutil.visible: "does not reveal what exists elsewhere")."""
    e = factories.engagement(world, name="饮水安全工程")
    db.session.commit()
    for username in ("firm2", "kz.staff"):
        headers = auth(username)
        assert client.get(f"/api/v1/engagements/{e.id}", headers=headers).status_code == 404  # not theirs to see
        existing = client.post(f"/api/v1/engagements/{e.id}/submissions", headers=headers, data={"kind": "report"})
        missing = client.post(f"/api/v1/engagements/{e.id + 1000}/submissions", headers=headers, data={"kind": "report"})
        assert missing.status_code == 404
        assert existing.status_code == missing.status_code, (username, existing.status_code)


# --- 4. a single source awaiting approval: not public, yet every firm of the library reads it in full -----

def test_a_single_source_awaiting_approval_is_not_read_by_the_other_firms_of_the_library(client, login, auth, world):
    """public.views hides a procurement while a single source awaits approval (PUBLIC_PROCUREMENT), but the
    rule "procurement.view" (procurement/permissions.py: _marketplace_visible) lets every firm whose library may
    use the bureau read any of its procurements, whatever the status: another firm reads, through
    GET /api/v1/procurements/<id> (procurement.api.procurement_json) and the bid page, the pending single source —
    the firm it is meant for, the bureau's justification and the ceiling price — before the bureau decided."""
    from evalhub.procurement import services as P
    from evalhub.procurement.models import ProcurementMethod, ProcurementStatus

    e = factories.engagement(world, name="饮水安全工程")
    p = P.open_procurement(e, P.ProcurementInput(
        method=ProcurementMethod.SINGLE_SOURCE, title="", ceiling_price_wan="20", single_source_firm_id=world.firm.id,
        justification="该项目为上一期评价的延续，需由原机构承担以保证口径一致。"), world.bz_staff)
    rival = factories.firm(world.bz, name="巴州另一家评价咨询公司")
    rival_user = factories.user("rival1", Role.FIRM_USER, firm_id=rival.id)
    db.session.commit()
    assert p.status == ProcurementStatus.PENDING_APPROVAL
    assert client.get(f"/public/procurements/{p.id}").status_code == 404  # not announced: nobody's business yet

    page = login(rival_user).get(f"/procurements/{p.id}/bid")
    client.post("/logout")
    body = client.get(f"/api/v1/procurements/{p.id}", headers=auth("rival1"))
    shown = json.dumps(body.json, ensure_ascii=False)
    assert "该项目为上一期评价的延续" not in shown and world.firm.name not in shown, shown[:600]
    assert body.status_code == 404
    assert page.status_code in (403, 404)


# --- 5. a released panel draw publishes the pool's confidential exclusion reasons -------------------------

def test_the_public_page_of_a_panel_draw_does_not_publish_an_experts_poor_ratings(client, world):
    """Once a review ends, its panel draw is public (review.services._review_over; core.views.draw_public) and
    templates/core/draw_detail.html lists every candidate by name with the draw's exclusion reasons
    (review.services.panel_exclusions → registry.services.expert_is_drawable → review.ratings.poor_rating_reasons):
    an anonymous visitor reads that a named expert "近 365 天内评审表现评价不佳 1 次…" — an expert's ratings,
    which the API refuses even to firms (review.api.expert_ratings) and the expert's bureau keeps to itself."""
    from evalhub.core.settings import set_setting
    from evalhub.registry.models import Expert
    from evalhub.review import ratings
    from evalhub.review.models import ReviewPanel

    set_setting(world.bz, "expert.rating_poor_count", "1", world.bz_admin)
    e = factories.in_fieldwork(world)
    plan_panel = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.engagement_id == e.id)).scalars().first()
    rated = db.session.get(Expert, plan_panel.invitations[0].expert_id)
    ratings.rate_expert(plan_panel, rated.id, world.bz_staff, timeliness=1, quality=3, note="逾期五天才提交评审意见")
    factories.submit_report(e)
    report_panel = factories.own_panel(e, n=3)
    factories.review_panel(report_panel, "0.95")
    db.session.commit()
    assert any("评价不佳" in r for x in db.session.get(type(report_panel.draw), report_panel.draw_id).exclusions
               if x["id"] == rated.id for r in x["reasons"])  # the bureau's own record of the draw

    page = client.get(f"/public/draws/{report_panel.draw_id}")
    assert page.status_code == 200  # the review is over: the draw is public (by design)
    html = text(page)
    assert rated.name in html  # candidates are listed by name for verification (by design)
    assert "评价不佳" not in html and "评审表现" not in html
