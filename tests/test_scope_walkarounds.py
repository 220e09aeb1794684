"""Walk-arounds found by the scope audit of the web views, the JSON API and the CLI side by side (the attacker's
read): each test failed on the code before its fix, and each rule now lives in the service every path calls."""
from __future__ import annotations

import sqlalchemy as sa

from evalhub.extensions import db
from evalhub.registry.models import FirmStatus
from tests import factories as F

JUSTIFICATION = "该项目为上一期评价的延续，需由原机构承担以保证口径一致。"


# --- procurement: a single source names only a firm the bureau may see -------------------------------------------

def test_a_single_source_firm_the_bureau_may_not_see_is_not_named_by_its_id(client, login, world):
    """The procure form offers the eligible library firms, but the service looked up any firm id posted and named it,
    with its library status, in the refusal ("巴州待审申请机构乙不符合条件：…机构库状态为“待审核”"): 克州 read the
    name and status of an applicant to 巴州's library — an application is that bureau's business only
    (registry/permissions.py), as the red-flag page's filter (tests/test_scope_matrix.py) and an expert's tie
    (registry.services.add_expert_tie) already hold. A firm the caller may not see is "no firm chosen"."""
    applicant = F.firm(world.bz, FirmStatus.PENDING, name="巴州待审申请机构乙")
    e = F.engagement(world, bureau_key="kz", unit="克州农业农村局")
    db.session.commit()
    login(world.kz_staff)
    response = client.post(f"/engagements/{e.id}/procure", data={
        "method": "single_source", "ceiling_price_wan": "20", "price_weight": "0",
        "single_source_firm_id": str(applicant.id), "justification": JUSTIFICATION})
    page = response.get_data(as_text=True)
    assert response.status_code == 422, response.status_code
    assert applicant.name not in page
    assert "请选择单一来源供应商" in page
    # its own bureau reads why its applicant may not take the job
    own = F.engagement(world, bureau_key="bz")
    db.session.commit()
    login(world.bz_staff)
    response = client.post(f"/engagements/{own.id}/procure", data={
        "method": "single_source", "ceiling_price_wan": "20", "price_weight": "0",
        "single_source_firm_id": str(applicant.id), "justification": JUSTIFICATION})
    assert response.status_code == 422 and applicant.name in response.get_data(as_text=True)


# --- review: a released seat no longer reads the submission or the panel -----------------------------------------

def test_an_expert_whose_seat_was_released_no_longer_reads_the_review_on_either_path(client, login, auth, world):
    """An expert suspended mid-review (or whose engagement was terminated) has the seat released: "您在该评审组的邀请已
    撤回，无需再参加本次评审" — and the submission's file (``review.views._may_read``) and the API's list of submissions
    answer as to anyone off the panel. The review's own page and ``GET /api/v1/reviews/<id>`` still answered 200 with
    the submission's indicator table, conclusion and machine checks, and, once decided, the panel's score and
    result: the seat is the right to read, on every path."""
    from evalhub.registry.models import Expert
    from evalhub.registry.services import change_expert_status
    from evalhub.review import services as R
    from tests.test_review_rules import _accept, _report_panel, _user

    e, panel, _experts = _report_panel(world)
    invitation = panel.invitations[0]
    _accept(invitation)
    review_id = invitation.review.id
    expert_user = _user(invitation.expert_id)
    db.session.commit()
    login(expert_user)
    assert client.get(f"/reviews/{review_id}").status_code == 200  # seated: the expert's own review
    headers = auth(expert_user.username)
    assert client.get(f"/api/v1/reviews/{review_id}", headers=headers).status_code == 200

    change_expert_status(db.session.get(Expert, invitation.expert_id), "suspend", "违反评审纪律", world.bz_admin)
    db.session.commit()
    assert invitation.status == R.InvitationStatus.WITHDRAWN
    login(expert_user)
    assert client.get(f"/reviews/{review_id}").status_code in (403, 404)
    assert client.get(f"/submissions/{panel.submission_id}/file").status_code in (403, 404)
    response = client.get(f"/api/v1/reviews/{review_id}", headers=headers)
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    assert client.put(f"/api/v1/reviews/{review_id}", headers=headers, json={"opinion": "补充意见"}).status_code == 404
