"""Reviewer R2: holes found in procurement integrity (issue 17), the new screening paths (issue 16) and the
self-evaluation / 资料清单 routes (issue 15). Each test failed before its fix."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict
from evalhub.core.settings import set_setting
from evalhub.extensions import db
from evalhub.integrity import services as I
from evalhub.integrity.models import CollusionFlag, FlagDecision, IntegrityCheck
from evalhub.procurement import ocds
from evalhub.procurement import services as P
from tests import factories
from tests.test_integrity import _flagged, _scores

SECRET = "甲公司与乙公司报价相同系巧合经核实两家无股权关联"


def _awarded_despite_flag(world):
    p, bidders, flag = _flagged(world)
    I.decide(flag, world.bz_staff, FlagDecision.NOT_COLLUSION, SECRET)
    members = P.enter_committee(p, ["评委甲", "评委乙", "评委丙"], world.bz_staff)
    for member in members:
        P.record_technical_scores(p, member, _scores(p), world.bz_staff)
    award = factories.witnessed(P.award_procurement(p, world.bz_staff, "综合得分第一"))
    return p, bidders, award


def test_flag_decisions_in_the_award_reasons_stay_out_of_public_and_firm_views(world, login, auth):
    """The committee's reasons on a collusion flag name other bidders: they belong to the bureau's award record
    and OCDS package, never to the public package, the firms' procurement API or their pages."""
    p, bidders, award = _awarded_despite_flag(world)
    assert SECRET in award.reasons  # the bureau's record keeps it
    assert SECRET in json.dumps(ocds.release(p), ensure_ascii=False)
    public = json.dumps(ocds.release(p, public=True), ensure_ascii=False)
    assert SECRET not in public and "综合得分第一" in public
    db.session.commit()
    for name in ("甲公司", "乙公司", "丙公司"):
        firm_user = bidders[name][1]
        client = login(firm_user)
        body = json.dumps(client.get(f"/api/v1/procurements/{p.id}", headers=auth(firm_user.username)).get_json(),
                          ensure_ascii=False)
        assert SECRET not in body and "综合得分第一" in body
        assert SECRET not in client.get(f"/procurements/{p.id}/bid").get_data(as_text=True)
    winner = next(u for n, (_, u, _) in bidders.items() if u.firm_id == award.firm_id)
    page = login(winner).get(f"/engagements/{p.engagement.id}")
    assert page.status_code == 200 and SECRET not in page.get_data(as_text=True)
    staff_api = login(world.bz_staff).get(f"/api/v1/procurements/{p.id}", headers=auth(world.bz_staff.username))
    assert SECRET in json.dumps(staff_api.get_json(), ensure_ascii=False)


def test_no_award_while_a_flag_is_undecided(world):
    """Scores entered while the gate was off, the gate switched on again: the award still waits for the
    committee's decision on every flag."""
    p, _, flag = _flagged(world)
    set_setting(world.bz, "integrity.scoring_gate", 0, world.bz_admin)
    members = P.enter_committee(p, ["评委甲", "评委乙", "评委丙"], world.bz_staff)
    for member in members:
        P.record_technical_scores(p, member, _scores(p), world.bz_staff)
    set_setting(world.bz, "integrity.scoring_gate", 1, world.bz_admin)
    with pytest.raises(Conflict, match="一致性检查尚有 1 条提示"):
        P.award_procurement(p, world.bz_staff, "综合得分第一")
    assert p.award is None


def test_no_check_after_the_evaluation_leaves_flags_nobody_can_decide(world):
    """A check run after the award (e.g. a procurement awarded before the checks existed) would leave flags
    the committee can no longer decide, shown forever as blocking scoring: refused."""
    p, _, _award = _awarded_despite_flag(world)
    db.session.execute(sa.delete(CollusionFlag).where(CollusionFlag.procurement_id == p.id))
    db.session.execute(sa.delete(IntegrityCheck).where(IntegrityCheck.procurement_id == p.id))
    with pytest.raises(Conflict):
        I.run_checks(p, world.bz_staff)
    assert I.flags_of(p) == []


def test_reference_titles_refuse_bidi_and_control_characters(world):
    """An outside report's title, region and firm come from an uploaded sheet (or the file name) and are shown on
    every bureau's screening cards: names with bidi overrides or control characters are refused as elsewhere."""
    from evalhub.core.errors import ValidationFailed
    from evalhub.screening import references as refs
    from evalhub.screening.models import ReferenceDocument
    from tests.test_screening_references import PUBLISHED, _sheet, _zip

    archive = _zip(("报告.txt", PUBLISHED.encode("utf-8")))
    for row in (("报告.txt", "某县绩效评价报告\u202e告报", None, None, None, None),
                ("报告.txt", "某县绩效评价报告", "甘肃\u2067某县", None, None, None),
                ("报告.txt", "某县绩效评价报告", None, None, "某某\u200b咨询有限公司", None)):
        with pytest.raises(ValidationFailed) as bad:
            refs.import_references(world.bz_staff, "公开报告.zip", archive, _sheet(row))
        assert "metadata" in bad.value.fields
    with pytest.raises(ValidationFailed):  # the title taken from the file name
        refs.import_references(world.bz_staff, "公开报告.zip", _zip(("报告\u202etxt.exe.txt", PUBLISHED.encode("utf-8"))))
    assert db.session.execute(sa.select(sa.func.count(ReferenceDocument.id))).scalar_one() == 0


def test_a_second_refresh_click_does_not_queue_a_second_region_wide_job(world):
    """Any bureau administrator may recompute the region's red flags; a double click (or two admins at once)
    while one recomputation waits in the queue gets that job back instead of a second full pass."""
    from evalhub.core.models import Job, JobStatus
    from evalhub.integrity import redflags

    waiting = Job(kind="integrity.red_flags", title="重新计算采购红旗指标", params={}, bureau_id=world.bz.id,
                  created_by_id=world.bz_admin.id, status=JobStatus.QUEUED)
    db.session.add(waiting)
    db.session.commit()
    again = redflags.start_refresh(world.bz_admin)
    assert again.id == waiting.id
    assert db.session.execute(sa.select(sa.func.count(Job.id)).where(Job.kind == "integrity.red_flags")).scalar_one() == 1
