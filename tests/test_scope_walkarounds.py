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
