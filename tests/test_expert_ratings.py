"""Issue 14, experts rated after each panel: the bureau rates each seated expert once (按时完成, 意见质量, 1–5,
a note when poor); persistent poor ratings (settings: how poor, how many, over what window) take the expert
out of every draw with the reason and tell the expert; the record is shown to the bureau and to the expert
(never to another expert, a firm or another prefecture)."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core.errors import Conflict, PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, Notification, User
from evalhub.core.settings import set_setting
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.registry.services import expert_is_drawable
from evalhub.review import ratings as RT
from evalhub.review import services as R
from evalhub.review.models import PanelStatus, ReviewPanel
from tests import factories
from tests.kept_states import kept


@pytest.fixture()
@kept
def panel(world):
    """The decided work-plan panel of an engagement of 巴州 (three seated experts with accounts)."""
    e = factories.in_fieldwork(world)
    p = db.session.execute(sa.select(ReviewPanel).where(ReviewPanel.engagement_id == e.id)).scalar_one()
    assert p.status != PanelStatus.REVIEWING and len(RT.ratable(p)) == 3
    db.session.commit()
    return p


def _account(expert) -> User:
    return db.session.execute(sa.select(User).where(User.expert_id == expert.id)).scalar_one()


def test_a_rating_is_checked_and_given_once(world, panel):
    expert = RT.ratable(panel)[0]
    with pytest.raises(ValidationFailed) as caught:
        RT.rate_expert(panel, expert.id, world.bz_staff, timeliness="6", quality="", note="")
    assert {"timeliness", "quality"} <= set(caught.value.fields)
    with pytest.raises(ValidationFailed) as caught:
        RT.rate_expert(panel, expert.id, world.bz_staff, timeliness=2, quality=4, note="")
    assert "不高于 2 分" in caught.value.fields["note"]
    with pytest.raises(ValidationFailed) as caught:
        RT.rate_expert(panel, world.expert.id, world.bz_staff, timeliness=4, quality=4)   # not on this panel
    assert "expert_id" in caught.value.fields
    with pytest.raises(PermissionDenied):
        RT.rate_expert(panel, expert.id, world.kz_admin, timeliness=4, quality=4)
    rating = RT.rate_expert(panel, expert.id, world.bz_staff, timeliness=5, quality=4, note="意见具体")
    assert rating.bureau_id == world.bz.id and rating.lowest == 4
    with pytest.raises(Conflict):
        RT.rate_expert(panel, expert.id, world.bz_admin, timeliness=3, quality=3)
    assert db.session.execute(sa.select(AuditEvent.id).where(AuditEvent.action == "expert.rated")).first()


def test_a_panel_still_reviewing_cannot_be_rated(world, panel):
    panel.status = PanelStatus.REVIEWING
    with pytest.raises(Conflict):
        RT.rate_expert(panel, RT.ratable(panel)[0].id, world.bz_staff, timeliness=4, quality=4)


def test_persistent_poor_ratings_take_the_expert_out_of_draws_and_tell_them(world, panel):
    expert, good = RT.ratable(panel)[:2]
    set_setting(world.bz, "expert.rating_poor_count", 1, world.bz_admin)
    RT.rate_expert(panel, good.id, world.bz_staff, timeliness=4, quality=3)
    assert RT.poor_rating_reasons(good) == []
    RT.rate_expert(panel, expert.id, world.bz_staff, timeliness=1, quality=3, note="逾期 6 天提交评审意见")
    reasons = RT.poor_rating_reasons(expert)
    assert reasons and "评审表现评价不佳 1 次" in reasons[0] and "不高于 2 分" in reasons[0]
    assert reasons[0] in expert_is_drawable(expert)        # every draw: panels, committees, inspectors
    other = factories.contracted(world, unit="巴州民政局")
    assert reasons[0] in R.panel_exclusions(other, [expert], offline=True)[expert.id]
    note = db.session.execute(sa.select(Notification).where(Notification.user_id == _account(expert).id,
                                                            Notification.link == f"/experts/{expert.id}/ratings")).scalar_one()
    assert "暂停参加随机抽取" in note.title and "评审表现评价不佳" in note.body
    assert db.session.execute(sa.select(AuditEvent.id).where(AuditEvent.action == "expert.rating_excluded")).first()


def test_the_settings_decide_how_many_how_poor_and_how_long(world, panel):
    expert = RT.ratable(panel)[0]
    rating = RT.rate_expert(panel, expert.id, world.bz_staff, timeliness=3, quality=2, note="意见空泛，套用模板")
    assert RT.poor_rating_reasons(expert) == []                        # default: 3 poor ratings
    set_setting(world.bz, "expert.rating_poor_count", 1, world.bz_admin)
    assert RT.poor_rating_reasons(expert)
    set_setting(world.bz, "expert.rating_poor_score", 1, world.bz_admin)
    assert RT.poor_rating_reasons(expert) == []                        # 2 is no longer poor
    set_setting(world.bz, "expert.rating_poor_score", 2, world.bz_admin)
    rating.rated_at = utcnow() - timedelta(days=400)
    db.session.flush()
    assert RT.poor_rating_reasons(expert) == []                        # out of the 365-day window
    set_setting(world.bz, "expert.rating_window_days", 500, world.bz_admin)
    assert RT.poor_rating_reasons(expert)


# --- the pages ----------------------------------------------------------------------------------------

def test_rating_on_the_web_needs_a_manager_of_the_own_bureau(client, login, world, panel):
    url = f"/reviews/panels/{panel.id}/expert-ratings"
    expert = RT.ratable(panel)[0]
    data = {"expert_id": str(expert.id), "timeliness": "4", "quality": "5", "note": ""}
    for user in (world.firm_user, world.expert_user, world.kz_admin, world.kz_staff):
        login(user)
        assert client.get(url).status_code == 403
        assert client.post(url, data=data).status_code == 403
    login(world.bz_staff)
    page = client.get(url).get_data(as_text=True)
    assert 'data-testid="rating-form"' in page and expert.name in page
    response = client.post(url, data={**data, "timeliness": "1"})
    assert response.status_code == 422 and "请写明具体情况" in response.get_data(as_text=True)
    assert client.post(url, data=data).status_code == 302
    assert client.post(url, data=data).status_code == 409
    assert f"/reviews/panels/{panel.id}/expert-ratings" in client.get(f"/reviews/panels/{panel.id}").get_data(as_text=True)


def test_the_record_is_for_the_bureau_and_the_expert_only(client, login, world, panel):
    rated, other = RT.ratable(panel)[:2]
    RT.rate_expert(panel, rated.id, world.bz_staff, timeliness=2, quality=3, note="逾期 4 天提交评审意见")
    db.session.commit()
    url = f"/experts/{rated.id}/ratings"
    login(_account(rated))
    page = client.get(url).get_data(as_text=True)
    assert "我的评审表现评价记录" in page and "逾期 4 天提交评审意见" in page
    for user in (_account(other), world.firm_user, world.kz_admin):
        login(user)
        assert client.get(url).status_code == 403
    login(world.bz_staff)
    page = client.get(url).get_data(as_text=True)
    assert "逾期 4 天提交评审意见" in page and 'data-testid="rating-ok"' in page
    assert 'data-testid="expert-ratings-link"' in client.get(f"/experts/{rated.id}").get_data(as_text=True)
    assert client.get("/experts/999999/ratings").status_code == 404
