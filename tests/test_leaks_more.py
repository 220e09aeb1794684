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


# --- a case opened from a procurement red flag: its lead stays the bureau's ----------------------------------

def test_a_red_flag_case_shows_the_inspected_firm_neither_the_screening_risk_nor_the_flag(client, login, auth, world):
    """A case opened from a procurement red flag has its own trigger (RED_FLAG), whose lead the inspected firm does
    not read, on the page or through the API: the flag's explanation and the bureau's screening risk. (It was once
    opened as OTHER, whose lead the firm reads.)"""
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


# --- the other cases of an engagement: those the reader may read ---------------------------------------------

def test_a_countys_case_page_does_not_reveal_an_upper_bureaus_case_it_may_not_read(client, login, world):
    """The other cases of the same engagement are those the reader may read: 轮台县 does not learn of 巴州's case
    from its own case page, nor from the warning when it opens one; 巴州 reads both. (They were once unscoped.)"""
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


# --- the upload endpoint: what one cannot see does not exist -------------------------------------------------

def test_uploading_to_an_engagement_one_cannot_see_answers_as_if_it_did_not_exist(client, auth, world):
    """Uploading to an engagement one cannot see answers 404, as for an id that does not exist (core.apiutil.visible:
    the API "does not reveal what exists elsewhere"); it once answered 403, which told the engagements apart."""
    e = factories.engagement(world, name="饮水安全工程")
    db.session.commit()
    for username in ("firm2", "kz.staff"):
        headers = auth(username)
        assert client.get(f"/api/v1/engagements/{e.id}", headers=headers).status_code == 404  # not theirs to see
        existing = client.post(f"/api/v1/engagements/{e.id}/submissions", headers=headers, data={"kind": "report"})
        missing = client.post(f"/api/v1/engagements/{e.id + 1000}/submissions", headers=headers, data={"kind": "report"})
        assert missing.status_code == 404
        assert existing.status_code == missing.status_code, (username, existing.status_code)


# --- a single source awaiting approval: read by the firm it names only ---------------------------------------

def test_a_single_source_awaiting_approval_is_not_read_by_the_other_firms_of_the_library(client, login, auth, world):
    """A single source awaiting approval is not announced: the public pages hide it, and of the firms only the one it
    names reads it; the others of the library once read, through the API, the intended firm, the justification
    and the ceiling."""
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


# --- a released panel draw: who was excluded, not why --------------------------------------------------------

def test_the_public_page_of_a_panel_draw_does_not_publish_an_experts_poor_ratings(client, world):
    """Once a review ends, its panel draw is public, its candidates by name; the reasons an expert was excluded (a
    poor rating, a suspension, an availability note, a tie) are not — the page once published "近 365 天内评审表现
    评价不佳"."""
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
