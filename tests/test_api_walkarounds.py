"""Rules the JSON API once let a caller walk around, and odd JSON it once answered with a 500 or a silent guess:
each rule now lives where every path meets it (the state machine, the service)."""
from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa

from evalhub.extensions import db
from evalhub.registry.models import FirmStatusChange
from evalhub.results.models import ResultFinding
from evalhub.review import services as R
from evalhub.review.models import Publication
from tests import factories
from tests.test_review_services import CHAPTERS, _docx


def _finding_count() -> int:
    db.session.rollback()
    return db.session.execute(sa.select(sa.func.count(ResultFinding.id))).scalar_one()


# --- results: a finding's responsible unit is an integer id --------------------------------------------------

@pytest.mark.parametrize("value", ["99999999999999999999", True, 1.5])
def test_finding_responsible_unit_id_that_is_not_an_integer_id_is_a_422(world, client, auth, value):
    """A finding's ``responsible_unit_id`` is an integer id or a 422 naming the field, nothing written: a digit
    string past any id once reached the database (a 500), and ``true`` or ``1.5`` once became unit 1."""
    e = factories.accepted(world)
    db.session.commit()
    before = _finding_count()
    response = client.post(f"/api/v1/results/engagements/{e.id}/findings", headers=auth("firm1"),
                           json={"kind": "问题", "text": "资金支付进度滞后", "category": "过程",
                                 "responsible_unit_id": value})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "responsible_unit_id" in response.json["error"]["fields"]
    assert _finding_count() == before


# --- procurement: withholding needs the classified decision --------------------------------------------------

def test_api_withhold_does_not_skip_the_classified_publication_record(world, client, auth, login):
    """Withholding a report is the decision the result page records (``review.services.publish(classified=True)``,
    with its reason: it freezes the grade caps and keeps the report from being quoted). The state machine requires
    it, so the API's bare transition is refused as the web's is; it once archived the report unclassified."""
    e = factories.accepted(world)
    db.session.commit()
    web = login(world.bz_admin).post(f"/engagements/{e.id}/transitions",
                                     data={"action": "withhold", "note": "涉密，不予公开"})
    assert web.status_code == 409  # the page refuses it: "须在相应的办理页面完成"
    client.post("/logout")

    response = client.post(f"/api/v1/engagements/{e.id}/transitions", headers=auth("bz.admin"),
                           json={"action": "withhold", "note": "涉密，不予公开"})
    db.session.expire_all()
    if response.status_code == 200:  # allowed only if it records what the result page records
        classified = db.session.execute(sa.select(Publication).where(
            Publication.engagement_id == e.id, Publication.classified.is_(True))).scalar_one_or_none()
        assert classified is not None, "withheld through the API without a classified Publication"
        assert R.caps_frozen(db.session.get(type(e), e.id))
    else:
        assert response.status_code == 409, response.get_data(as_text=True)


# --- review: indicator weights and scores are 0-100 ----------------------------------------------------------

def test_a_report_with_negative_indicator_weight_and_score_is_refused(world, client, auth):
    """Indicator weights and scores are 0–100: a weight of −10 once passed, and made the weights "sum to 100"
    (−10 + 40 + 35 + 35) for the machine check."""
    e = factories.in_fieldwork(world)
    db.session.commit()
    rows = [{"category": "决策", "name": "立项依据充分性", "weight": -10, "score": -9},
            {"category": "过程", "name": "资金到位率", "weight": 40, "score": 38},
            {"category": "产出", "name": "完成数量", "weight": 35, "score": 33},
            {"category": "效益", "name": "群众满意度", "weight": 35, "score": 32}]
    form = {"kind": "report", "file": (io.BytesIO(_docx(CHAPTERS)), "评价报告.docx"),
            "indicators": json.dumps(rows, ensure_ascii=False), "concluded_total": "94", "concluded_grade": "优"}
    response = client.post(f"/api/v1/engagements/{e.id}/submissions", data=form, headers=auth("firm1"),
                           content_type="multipart/form-data")
    assert response.status_code == 422, response.get_data(as_text=True)[:800]
    assert any(k.startswith("indicator") for k in response.json["error"]["fields"])


# --- registry: a status change neither starts later nor ends before today ------------------------------------

def test_api_cannot_suspend_a_firm_until_a_date_already_past(world, client, auth):
    """A status change takes effect now: the API may date it back (a decision taken on paper) but not forward, and a
    suspension cannot end before today — one "from 2000 until 2000-06-01" was once accepted for a firm suspended
    now."""
    response = client.post(f"/api/v1/firms/{world.firm.id}/status", headers=auth("bz.admin"),
                           json={"action": "suspend", "reason": "检查发现严重问题，暂停参与评价",
                                 "effective_from": "2000-01-01", "effective_until": "2000-06-01"})
    assert response.status_code == 422, response.get_data(as_text=True)[:800]
    assert set(response.json["error"]["fields"]) == {"effective_until"}
    future = client.post(f"/api/v1/firms/{world.firm.id}/status", headers=auth("bz.admin"),
                         json={"action": "suspend", "reason": "检查发现严重问题，暂停参与评价", "effective_from": "2999-01-01"})
    assert future.status_code == 422 and set(future.json["error"]["fields"]) == {"effective_from"}
    db.session.rollback()
    assert db.session.execute(sa.select(FirmStatusChange).where(
        FirmStatusChange.firm_id == world.firm.id, FirmStatusChange.effective_until.is_not(None))).first() is None
