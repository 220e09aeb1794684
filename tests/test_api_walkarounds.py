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


# --- 1. results: a finding's responsible_unit_id is not read as an integer id ---------------------------------

@pytest.mark.parametrize("value", ["99999999999999999999", True, 1.5])
def test_finding_responsible_unit_id_that_is_not_an_integer_id_is_a_422(world, client, auth, value):
    """POST /api/v1/results/engagements/<id>/findings passes ``responsible_unit_id`` to
    ``results.services._checked`` as given, which does ``int(value)``: a digit string beyond any id reaches the
    database (SQLite OverflowError, PostgreSQL out-of-range: 500), ``true`` becomes unit 1 and ``1.5`` unit 1.
    The schema says an integer id 1–2147483647; anything else should be refused with a Chinese 422."""
    e = factories.accepted(world)
    db.session.commit()
    before = _finding_count()
    response = client.post(f"/api/v1/results/engagements/{e.id}/findings", headers=auth("firm1"),
                           json={"kind": "问题", "text": "资金支付进度滞后", "category": "过程",
                                 "responsible_unit_id": value})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "responsible_unit_id" in response.json["error"]["fields"]
    assert _finding_count() == before


# --- 2. procurement: the generic transitions endpoint withholds a report without classifying it -------------

def test_api_withhold_does_not_skip_the_classified_publication_record(world, client, auth, login):
    """The web refuses ``withhold`` on the bare transitions form (procurement.views.ELSEWHERE: it is done on the
    result page by ``review.services.publish(classified=True)``, which records the classified Publication with its
    reason). ``procurement.api.create_transition`` refuses only SERVICE_ACTIONS, so a bureau admin's token archives
    the engagement as withheld with no classified Publication: the caps are not frozen (``caps_frozen`` stays
    False, so staff may still change the grade caps without an admin) and the report is not treated as
    classified (``review.permissions.quotable_submission_ids`` still quotes it to the bureaus above)."""
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


# --- 3. review: negative indicator weights and scores pass, and make the weights "sum to 100" -----------------

def test_a_report_with_negative_indicator_weight_and_score_is_refused(world, client, auth):
    """``review.services._decimal`` says "应在 0–100 之间" but accepts −100…100, and ``submit`` only calls it for
    indicator weights and scores (the API documents "权重、得分 0–100"). A firm uploads a table with weight −10 /
    score −9; it is stored, and the machine check weights_sum reports OK because −10+40+35+35 = 100."""
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


# --- 4. registry: the API sets a status change's start date, so a suspension can end before it is made ------

def test_api_cannot_suspend_a_firm_until_a_date_already_past(world, client, auth):
    """The web form (registry.forms.FirmStatusForm) has no effective_from: the service starts the change today,
    so an effective_until must be today or later. ``registry.api.change_firm_status`` also reads
    ``effective_from`` and passes it on, and ``services.change_firm_status`` only checks until ≥ from: a bureau
    admin backdates the change to 2000 and "suspends until 2000-06-01". The firm is suspended now, its record
    says the suspension began in 2000 and ended 25 years ago."""
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
