"""恢复沿用上级: a bureau takes back a setting it set (core.settings.clear_setting, the settings page's per-row
button). Once cleared, the bureau follows its upper bureaus (for a per-kind pass mark, in the end the general
mark) again, and their later changes with them; only the bureau's own administrator may do it; a value it never
set, a second click, or an inherited value the setting's rule refuses is answered 422 in Chinese, never a 500."""
from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from evalhub.core import audit, permissions, settings
from evalhub.core.errors import PermissionDenied, ValidationFailed
from evalhub.core.models import AuditEvent, Bureau, BureauSetting, User
from evalhub.core.settings import clear_setting, get_setting, inherited, set_setting
from evalhub.core.enums import Role
from evalhub.extensions import db
from tests import factories
from tests.test_races import in_context
from tests.test_races_more import done_or_refused, meanwhile, settle

KIND_MARK = "review.report_pass_mark.target_review"


def text(response) -> str:
    return response.get_data(as_text=True)


def own(bureau_id: int, key: str):
    db.session.rollback()
    return db.session.execute(sa.select(BureauSetting.value).where(
        BureauSetting.bureau_id == bureau_id, BureauSetting.key == key)).scalar_one_or_none()


def cleared_events(bureau_id: int) -> list[AuditEvent]:
    db.session.rollback()
    return db.session.execute(sa.select(AuditEvent).where(
        AuditEvent.action == "setting.cleared", AuditEvent.bureau_id == bureau_id)).scalars().all()


# --- the service ------------------------------------------------------------------------------------

def test_a_cleared_value_follows_the_upper_bureau_and_its_later_changes(world):
    set_setting(world.bz, "expert.min_years", 8, world.bz_admin)
    set_setting(world.lt, "expert.min_years", 12, world.lt_admin)
    db.session.commit()
    assert inherited(world.lt, "expert.min_years") == 8
    assert clear_setting(world.lt, "expert.min_years", world.lt_admin) == 8
    db.session.commit()
    assert own(world.lt.id, "expert.min_years") is None
    assert get_setting(world.lt, "expert.min_years") == 8
    set_setting(world.bz, "expert.min_years", 6, world.bz_admin)  # the prefecture changes it later: followed
    db.session.commit()
    assert get_setting(world.lt, "expert.min_years") == 6
    [event] = cleared_events(world.lt.id)
    assert event.actor_id == world.lt_admin.id and event.payload == {"key": "expert.min_years", "old": 12, "new": 8}
    assert "恢复" in event.summary and "12 → 8" in event.summary
    assert [e.action for e in audit.history("bureau", world.lt.id)] == ["setting.changed", "setting.cleared"]


def test_a_root_bureau_cleared_gets_the_default(world):
    set_setting(world.region, "expert.max_age", 70, world.region_admin)
    db.session.commit()
    assert clear_setting(world.region, "expert.max_age", world.region_admin) == 65
    db.session.commit()
    assert get_setting(world.lt, "expert.max_age") == 65


def test_a_cleared_kind_mark_follows_the_upper_kind_mark_then_the_general_one(world):
    set_setting(world.bz, "review.report_pass_mark", 88, world.bz_admin)
    set_setting(world.lt, KIND_MARK, 75, world.lt_admin)
    db.session.commit()
    assert clear_setting(world.lt, KIND_MARK, world.lt_admin) == 88  # no kind mark above: the general one
    set_setting(world.lt, "review.report_pass_mark", 92, world.lt_admin)
    set_setting(world.lt, KIND_MARK, 75, world.lt_admin)
    db.session.commit()
    assert clear_setting(world.lt, KIND_MARK, world.lt_admin) == 92  # the county's own general mark
    set_setting(world.lt, KIND_MARK, 75, world.lt_admin)
    set_setting(world.region, KIND_MARK, 82, world.region_admin)
    db.session.commit()
    assert clear_setting(world.lt, KIND_MARK, world.lt_admin) == 82  # a kind mark above beats any general one
    db.session.commit()
    assert get_setting(world.lt, KIND_MARK) == 82


def test_only_the_bureau_s_administrator_changes_its_settings_whatever_the_path(world):
    """The rule is the service's (the settings page checked "bureau.settings"; ``set_setting``, ``save_settings``
    and ``clear_setting`` checked nothing): the bureau's staff, an upper bureau's administrator, another bureau's or
    a firm's user setting, saving or clearing a county's value is refused, with nothing written."""
    set_setting(world.lt, "expert.min_years", 12, world.lt_admin)
    db.session.commit()
    before = db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one()
    for outsider in (world.lt_staff, world.bz_admin, world.kz_admin, world.firm_user):
        with pytest.raises(PermissionDenied):
            set_setting(world.lt, "expert.min_years", 15, outsider)
        with pytest.raises(PermissionDenied):
            settings.save_settings(world.lt, {"expert.min_years": "15"}, outsider)
        with pytest.raises(PermissionDenied):
            clear_setting(world.lt, "expert.min_years", outsider)
        assert not db.session.new and not db.session.deleted
    assert own(world.lt.id, "expert.min_years") == 12 and cleared_events(world.lt.id) == []
    assert db.session.execute(sa.select(sa.func.count(AuditEvent.id))).scalar_one() == before
    # the bureau's own administrator and the system administrator still may
    assert settings.save_settings(world.lt, {"expert.min_years": "15"}, world.lt_admin) == ["expert.min_years"]
    assert clear_setting(world.lt, "expert.min_years", world.sysadmin) == 10


def test_the_held_values_of_the_signed_in_tree_are_forgotten(app, world):
    """The account's tree is read with its bureaus' own values (``permissions.load_user``, held in the session):
    a clear in the same request must not leave the cleared value answering."""
    set_setting(world.lt, "expert.min_years", 12, world.lt_admin)
    db.session.commit()
    with app.app_context():
        user = permissions.load_user(world.lt_admin.id)
        assert get_setting(user.bureau, "expert.min_years") == 12
        clear_setting(db.session.get(Bureau, world.lt.id), "expert.min_years", user)
        assert get_setting(user.bureau, "expert.min_years") == 10
        db.session.rollback()  # and back again when the clear is undone
        assert get_setting(db.session.get(Bureau, world.lt.id), "expert.min_years") == 12


def test_clearing_a_value_never_set_or_unknown_is_refused(world):
    with pytest.raises(ValidationFailed) as caught:
        clear_setting(world.lt, "expert.min_years", world.lt_admin)
    assert "本局未单独设置“专家最低从业年限（年）”" in caught.value.message
    db.session.rollback()
    with pytest.raises(ValidationFailed) as caught:
        clear_setting(world.lt, "expert.no_such_thing", world.lt_admin)
    assert "未知的设置项" in caught.value.message
    db.session.rollback()
    assert cleared_events(world.lt.id) == []


def test_clearing_is_refused_when_the_value_it_would_follow_breaks_the_rule(world):
    """The value a clear puts in force passes the rule a value set must pass: a prefecture's value stored before
    the bound it breaks (written here directly) is not put in force by a county's clear."""
    db.session.add(BureauSetting(bureau_id=world.bz.id, key="expert.max_age", value=95, updated_by_id=world.bz_admin.id))
    set_setting(world.lt, "expert.max_age", 60, world.lt_admin)
    db.session.commit()
    with pytest.raises(ValidationFailed) as caught:
        clear_setting(world.lt, "expert.max_age", world.lt_admin)
    assert "不能恢复沿用上级" in caught.value.message and "95" in caught.value.message and "不能大于 80" in caught.value.message
    db.session.rollback()
    assert own(world.lt.id, "expert.max_age") == 60 and cleared_events(world.lt.id) == []


def test_a_lines_setting_is_cleared_to_the_upper_list(world):
    chapters = ["基本情况", "工作开展情况", "评价结论"]
    set_setting(world.bz, "review.report_chapters", chapters, world.bz_admin)
    set_setting(world.lt, "review.report_chapters", ["一", "二", "三"], world.lt_admin)
    db.session.commit()
    assert clear_setting(world.lt, "review.report_chapters", world.lt_admin) == chapters
    db.session.commit()
    assert get_setting(world.lt, "review.report_chapters") == chapters


# --- the settings page ------------------------------------------------------------------------------

def test_the_page_offers_the_clear_with_the_value_that_would_apply(client, login, world):
    set_setting(world.bz, "expert.min_years", 8, world.bz_admin)
    set_setting(world.lt, "expert.min_years", 12, world.lt_admin)
    set_setting(world.lt, "expert.min_degree", "master", world.lt_admin)
    db.session.commit()
    url = f"/bureaus/{world.lt.id}/settings"
    login(world.lt_admin)
    page = text(client.get(url))
    assert page.count('form="setting-clear"') == 2  # one per value the county set, none elsewhere
    assert 'name="key" value="expert.min_years"' in page and "恢复后为 8" in page and "恢复后为 本科" in page
    assert 'id="setting-clear"' in page
    response = client.post(f"{url}/clear", data={"key": "expert.min_years"})
    assert response.status_code == 302 and response.headers["Location"].endswith(url)
    page = text(client.get(url))
    assert "“专家最低从业年限（年）”已恢复沿用上级，现为 8。" in page and page.count('form="setting-clear"') == 1
    assert own(world.lt.id, "expert.min_years") is None and len(cleared_events(world.lt.id)) == 1


def test_the_page_refuses_a_clear_of_a_value_never_set_in_chinese(client, login, world):
    url = f"/bureaus/{world.lt.id}/settings/clear"
    login(world.lt_admin)
    response = client.post(url, data={"key": "expert.min_years"})
    assert response.status_code == 422 and "本局未单独设置“专家最低从业年限（年）”" in text(response)
    response = client.post(url, data={"key": "expert.no_such_thing"})
    assert response.status_code == 422 and "未知的设置项" in text(response)
    response = client.post(url, data={})
    assert response.status_code == 422 and "请选择要恢复沿用上级的设置项" in text(response)
    response = client.post(url, data={"key": "expert.min_years\x00"})
    assert response.status_code == 422 and "控制字符" in text(response)
    assert cleared_events(world.lt.id) == []


def test_only_the_bureaus_own_administrator_may_clear(client, login, world):
    """The same refusals as the settings page itself: another bureau's administrator (above, beside, below),
    a staff member, a firm, an expert — each answered as the page answers them, the value kept."""
    set_setting(world.bz, "expert.min_years", 8, world.bz_admin)
    db.session.commit()
    url = f"/bureaus/{world.bz.id}/settings"
    for name in ["lt_admin", "krl_admin", "region_admin", "kz_admin", "bz_staff", "firm_user", "expert_user"]:
        login(getattr(world, name))
        page_status = client.get(url).status_code
        assert page_status in (403, 404), name
        assert client.post(f"{url}/clear", data={"key": "expert.min_years"}).status_code == page_status, name
    assert client.post(f"/bureaus/2147483647/settings/clear", data={"key": "expert.min_years"}).status_code == 404
    assert own(world.bz.id, "expert.min_years") == 8 and cleared_events(world.bz.id) == []
    login(world.bz_admin)
    assert client.post(f"{url}/clear", data={"key": "expert.min_years"}).status_code == 302
    assert own(world.bz.id, "expert.min_years") is None


def test_an_anonymous_clear_is_sent_to_sign_in(client, world):
    response = client.post(f"/bureaus/{world.bz.id}/settings/clear", data={"key": "expert.min_years"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- two at once ------------------------------------------------------------------------------------

def _user(user_id: int) -> User:
    return db.session.get(User, user_id)


def test_two_clears_at_once_clear_once(app, world, monkeypatch):
    set_setting(world.lt, "expert.min_years", 12, world.lt_admin)
    officer = factories.user("lt.admin2", Role.BUREAU_ADMIN, bureau_id=world.lt.id)
    db.session.commit()
    lt_id, admin_id, officer_id = world.lt.id, world.lt_admin.id, officer.id
    raced = meanwhile(app, monkeypatch, settings, "inherited",
                      lambda: clear_setting(db.session.get(Bureau, lt_id), "expert.min_years", _user(officer_id)))
    with app.app_context():
        try:
            clear_setting(db.session.get(Bureau, lt_id), "expert.min_years", _user(admin_id))
            db.session.commit()
        except ValidationFailed:
            db.session.rollback()
        finally:
            db.session.remove()
    settle(raced)
    assert own(lt_id, "expert.min_years") is None and len(cleared_events(lt_id)) == 1


def test_a_clear_and_a_set_at_once_leave_one_answer(app, world, monkeypatch):
    """A clear and a save at once: the save waits for the clear and stores its value anew (it once updated the
    row the clear had just deleted: a 500); the log holds both, in the order they took effect."""
    set_setting(world.lt, "expert.min_years", 12, world.lt_admin)
    db.session.commit()
    lt_id, admin_id = world.lt.id, world.lt_admin.id
    raced = meanwhile(app, monkeypatch, settings, "inherited",
                      lambda: set_setting(db.session.get(Bureau, lt_id), "expert.min_years", 15, _user(admin_id)))
    in_context(app, lambda: clear_setting(db.session.get(Bureau, lt_id), "expert.min_years", _user(admin_id)))
    settle(raced)
    assert own(lt_id, "expert.min_years") == 15
    db.session.rollback()
    actions = [e.action for e in audit.history("bureau", lt_id)]
    assert actions == ["setting.changed", "setting.cleared", "setting.changed"], actions


def test_the_clear_button_carries_its_own_csrf_token(app, client, login, world):
    """The clear form stands outside the save form (Enter in a field saves, never clears a row): it carries its own
    token, and a post without one is refused."""
    import re

    set_setting(world.lt, "expert.min_years", 12, world.lt_admin)
    db.session.commit()
    url = f"/bureaus/{world.lt.id}/settings"
    login(world.lt_admin)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        page = text(client.get(url))
        form = re.search(r'<form id="setting-clear" method="post" action="([^"]+)">(.*?)</form>', page, re.S)
        assert form is not None and form.group(1) == f"{url}/clear"
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.group(2)).group(1)
        assert client.post(f"{url}/clear", data={"key": "expert.min_years"}).status_code == 400
        assert own(world.lt.id, "expert.min_years") == 12
        response = client.post(f"{url}/clear", data={"key": "expert.min_years", "csrf_token": token})
        assert response.status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert own(world.lt.id, "expert.min_years") is None


# --- settings that must hold together (credit weights and grade lines) ------------------------------------------

WEIGHTS = {"credit.weight_quality": 40, "credit.weight_performance": 15, "credit.weight_feedback": 20,
           "credit.weight_supervision": 15, "credit.weight_external": 10}


def test_the_page_refuses_credit_weights_that_do_not_add_up_to_100_and_keeps_nothing(client, login, world):
    """DOMAIN §6: the credit rating's components are out of 100 (40/15/20/15/10 by default), and the grade lines fall
    A > B > C. Each value is valid alone; together they were checked only when a year's ratings were computed, so
    a bureau saved 45 for practice quality (a total of 105) and found out at the next computation. Now the save is
    refused, with the total, and nothing of the page is kept; several values changed at once are checked together."""
    login(world.bz_admin)
    url = f"/bureaus/{world.bz.id}/settings"
    refused = client.post(url, data={"credit.weight_quality": "45", "expert.min_years": "8"})
    assert refused.status_code == 422 and "合计应为 100" in text(refused) and "105" in text(refused)
    assert own(world.bz.id, "credit.weight_quality") is None and own(world.bz.id, "expert.min_years") is None
    lines = client.post(url, data={"credit.cut_b": "92"})
    assert lines.status_code == 422 and "A 级 > B 级 > C 级" in html.unescape(text(lines))
    saved = client.post(url, data={"credit.weight_quality": "45", "credit.weight_external": "5"})
    assert saved.status_code == 302
    assert (own(world.bz.id, "credit.weight_quality"), own(world.bz.id, "credit.weight_external")) == (45, 5)


def test_an_upper_change_that_breaks_a_lower_bureaus_own_weights_is_refused_naming_it(world):
    """A county that set some weights of its own inherits the others: a prefecture's change that makes the county's
    total other than 100 is refused, naming the county (its ratings would otherwise be refused at computation). A
    county whose values never held together does not stop the prefecture."""
    from evalhub.core.settings import save_settings

    set_setting(world.lt, "credit.weight_quality", 45, world.lt_admin)
    set_setting(world.lt, "credit.weight_external", 5, world.lt_admin)
    db.session.commit()
    with pytest.raises(ValidationFailed) as caught:
        save_settings(world.bz, {"credit.weight_quality": "35", "credit.weight_feedback": "25"}, world.bz_admin)
    assert "轮台县" in caught.value.message and "合计应为 100" in caught.value.message
    db.session.rollback()
    assert set(save_settings(world.bz, {"credit.weight_supervision": "10", "credit.weight_feedback": "25"},
                             world.bz_admin)) == {"credit.weight_feedback", "credit.weight_supervision"}
    db.session.commit()
    set_setting(world.krl, "credit.weight_quality", 60, world.krl_admin)  # 库尔勒: 110, never held together
    db.session.commit()
    save_settings(world.bz, {"credit.cut_a": "88"}, world.bz_admin)  # not the prefecture's doing: allowed


def test_clearing_one_of_the_weights_that_only_held_together_is_refused(world):
    set_setting(world.lt, "credit.weight_quality", 45, world.lt_admin)
    set_setting(world.lt, "credit.weight_external", 5, world.lt_admin)
    db.session.commit()
    with pytest.raises(ValidationFailed) as caught:
        clear_setting(world.lt, "credit.weight_external", world.lt_admin)
    assert "合计应为 100" in caught.value.message and "105" in caught.value.message
    db.session.rollback()
    assert own(world.lt.id, "credit.weight_external") == 5


@pytest.mark.skipif(not __import__("os").environ.get("EVALHUB_TEST_DATABASE_URL"),
                    reason="concurrency is tested against PostgreSQL")
def test_a_county_and_its_prefecture_saving_weights_at_once_cannot_break_the_countys(app, world, monkeypatch):
    """轮台县 sets its own practice-quality and external weights (45 + 5, the rest inherited: 100) while 巴州 moves 5
    points from practice quality to contract performance (35 + 20: its own 100). Each check alone passes; both
    together would leave the county at 45 + 20 + 20 + 15 + 5 = 105. The second to commit must see the first."""
    import threading

    from evalhub.core.settings import save_settings

    real, other = settings._refuse_apart, []

    def checked_then_the_prefecture_saves(*args, **kwargs):
        real(*args, **kwargs)  # the county's check has passed; before its commit, the prefecture saves
        if not other:
            other.append(threading.Thread(target=lambda: done_or_refused(app, lambda: save_settings(
                db.session.get(Bureau, world.bz.id), {"credit.weight_quality": "35", "credit.weight_performance": "20"},
                db.session.get(User, world.bz_admin.id)))))
            other[0].start()
            other[0].join(2.0)

    monkeypatch.setattr(settings, "_refuse_apart", checked_then_the_prefecture_saves)
    try:
        in_context(app, lambda: save_settings(db.session.get(Bureau, world.lt.id),
                                              {"credit.weight_quality": "45", "credit.weight_external": "5"},
                                              db.session.get(User, world.lt_admin.id)))
    finally:
        monkeypatch.setattr(settings, "_refuse_apart", real)
        for thread in other:
            thread.join(30)
    db.session.rollback()
    from evalhub.credit.services import settings_problems

    assert settings_problems(db.session.get(Bureau, world.lt.id)) == []
