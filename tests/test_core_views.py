"""Core pages: sign-in, lock-out, CSRF, session cookies, and the refusals on audit, draws, jobs and settings."""
from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from evalhub.core import draws, jobs
from evalhub.core.enums import JobStatus
from evalhub.core.models import BureauSetting, Job
from evalhub.extensions import db
from tests import factories


def test_login_failure_is_a_4xx_with_a_chinese_message(client, world):
    response = client.post("/login", data={"username": "bz.admin", "password": "wrong"})
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)
    response = client.post("/login", data={"username": "", "password": ""})
    assert response.status_code == 400 and "请输入用户名" in response.get_data(as_text=True)


def test_login_locks_after_five_failures(client, world):
    for _ in range(5):
        client.post("/login", data={"username": "bz.staff", "password": "wrong"})
    response = client.post("/login", data={"username": "bz.staff", "password": factories.PASSWORD})
    assert response.status_code == 401 and "锁定" in response.get_data(as_text=True)


def test_login_redirects_only_to_local_pages(client, world):
    response = client.post("/login?next=https://evil.example/", data={"username": "bz.admin", "password": factories.PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_anonymous_users_are_sent_to_login(client, world):
    for path in ["/", "/audit", "/draws", "/bureaus", f"/bureaus/{world.bz.id}/settings"]:
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_csrf_is_enforced_on_forms(app, client, world):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post("/login", data={"username": "bz.admin", "password": factories.PASSWORD})
        assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_session_cookie_settings(app):
    from evalhub.config import Config
    import pathlib, tempfile, os

    assert app.config["SESSION_COOKIE_HTTPONLY"] and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    os.environ["EVALHUB_ENV"] = "production"
    os.environ["EVALHUB_SECRET_KEY"] = "prod-secret-" + "7f3a9c" * 8
    os.environ["EVALHUB_PUBLIC_URL"] = "https://evalhub.example.gov.cn"
    try:
        production = Config(pathlib.Path(tempfile.mkdtemp()))
        assert production.SESSION_COOKIE_SECURE and production.REMEMBER_COOKIE_SECURE
        del os.environ["EVALHUB_SECRET_KEY"]
        with pytest.raises(RuntimeError):
            Config(pathlib.Path(tempfile.mkdtemp()))
    finally:
        os.environ.pop("EVALHUB_ENV", None)
        os.environ.pop("EVALHUB_SECRET_KEY", None)
        os.environ.pop("EVALHUB_PUBLIC_URL", None)


def test_production_refuses_placeholder_and_short_keys_development_does_not(monkeypatch, tmp_path):
    from evalhub.config import Config

    good = "0f1e2d3c4b5a69788796a5b4c3d2e1f0" * 2
    monkeypatch.setenv("EVALHUB_PUBLIC_URL", "https://evalhub.example.gov.cn")
    monkeypatch.setenv("EVALHUB_SECRET_KEY", "CHANGE-ME")
    monkeypatch.setenv("EVALHUB_FIELD_KEY", "CHANGE-ME")
    assert Config(tmp_path / "dev").SECRET_KEY == "CHANGE-ME"  # development (make run, tests): as given
    monkeypatch.setenv("EVALHUB_ENV", "production")
    for secret, field_key, refused in [(good, "CHANGE-ME", "EVALHUB_FIELD_KEY"), ("short-but-random-9x", None, "太短"),
                                       (good, "change-me-" + good, "EVALHUB_FIELD_KEY"), (good[:31], None, "太短")]:
        monkeypatch.setenv("EVALHUB_SECRET_KEY", secret)
        if field_key is None:
            monkeypatch.delenv("EVALHUB_FIELD_KEY", raising=False)
        else:
            monkeypatch.setenv("EVALHUB_FIELD_KEY", field_key)
        with pytest.raises(RuntimeError, match=refused):
            Config(tmp_path / "prod")
    monkeypatch.setenv("EVALHUB_SECRET_KEY", good)
    monkeypatch.delenv("EVALHUB_FIELD_KEY", raising=False)
    assert Config(tmp_path / "prod").FIELD_KEY == good  # unset: the (checked) session key
    monkeypatch.delenv("EVALHUB_PUBLIC_URL")
    with pytest.raises(RuntimeError, match="EVALHUB_PUBLIC_URL"):
        Config(tmp_path / "prod")


@pytest.mark.parametrize("username, status", [
    ("sysadmin", 200), ("region_admin", 200), ("bz_admin", 200),
    ("bz_staff", 403), ("firm_user", 403), ("expert_user", 403),
])
def test_audit_log_page(world, login, username, status):
    client = login(getattr(world, username))
    assert client.get("/audit").status_code == status
    if status == 200:
        export = client.get("/audit?export=xlsx")
        assert export.status_code == 200 and export.data[:2] == b"PK"


def test_only_the_system_admin_verifies_the_chain_from_the_page(world, login):
    assert login(world.bz_admin).post("/audit/verify").status_code == 403
    response = login(world.sysadmin).post("/audit/verify", follow_redirects=True)
    assert response.status_code == 200 and "审计链完整" in response.get_data(as_text=True)


def test_draw_pages_are_scoped(world, login):
    record = factories.witnessed_draw("测试", range(1, 10), 2, actor=world.krl_admin, bureau_id=world.krl.id)
    db.session.commit()
    for username, status in [("krl_staff", 200), ("bz_admin", 200), ("region_staff", 200), ("lt_admin", 403),
                             ("kz_admin", 403), ("firm_user", 403), ("expert_user", 403)]:
        client = login(getattr(world, username))
        assert client.get(f"/draws/{record.id}").status_code == status, username
    body = login(world.krl_staff).get(f"/draws/{record.id}").get_data(as_text=True)
    assert "复算一致" in body and record.seed in body
    assert login(world.firm_user).get("/draws").status_code == 403


def test_settings_page_saves_valid_values_and_refuses_bad_ones(world, login):
    client = login(world.bz_admin)
    assert client.get(f"/bureaus/{world.bz.id}/settings").status_code == 200
    response = client.post(f"/bureaus/{world.bz.id}/settings", data={"expert.max_age": "abc"})
    assert response.status_code == 422 and "必须是数字" in response.get_data(as_text=True)
    assert db.session.execute(sa.select(sa.func.count(BureauSetting.id))).scalar_one() == 0
    response = client.post(f"/bureaus/{world.bz.id}/settings", data={"expert.max_age": "70", "expert.min_years": "10"})
    assert response.status_code == 302
    rows = db.session.execute(sa.select(BureauSetting.key, BureauSetting.value)).all()
    assert rows == [("expert.max_age", 70)]  # unchanged values are not stored as overrides
    for username in ["bz_staff", "krl_admin", "region_admin", "firm_user", "expert_user"]:
        assert login(getattr(world, username)).get(f"/bureaus/{world.bz.id}/settings").status_code == 403


def test_bureau_pages_are_scoped(world, login):
    assert login(world.lt_admin).get(f"/bureaus/{world.krl.id}").status_code == 403
    assert login(world.bz_staff).get(f"/bureaus/{world.krl.id}").status_code == 200
    listing = login(world.lt_admin).get("/bureaus").get_data(as_text=True)
    assert "轮台县财政局" in listing and "库尔勒市财政局" not in listing
    assert login(world.firm_user).get("/bureaus").status_code == 403


# --- background jobs -------------------------------------------------------------------------------

@jobs.job_kind("test.count")
def _count_job(job, report):
    for i in range(1, 4):
        report(i, 3, f"第 {i} 步")
    return {"message": f"数到 {job.params['n']}"}


@jobs.job_kind("test.boom")
def _boom_job(job, report):
    raise RuntimeError("坏了")


def test_jobs_record_progress_and_result(world, login):
    job = jobs.submit("test.count", "计数", {"n": 3}, actor=world.bz_admin, bureau_id=world.bz.id)
    assert job.status == JobStatus.SUCCEEDED and job.progress == 3 and job.percent == 100
    assert job.result["message"] == "数到 3"
    failed = jobs.submit("test.boom", "出错", {}, actor=world.bz_admin, bureau_id=world.bz.id)
    # the page says it failed, in Chinese and without the exception's own text (a database error's carries its SQL
    # and values); the error itself is in the log
    assert failed.status == JobStatus.FAILED and failed.message.startswith("任务出错：系统内部错误")
    assert "坏了" not in failed.message and f"#{failed.id}" in failed.message
    client = login(world.bz_admin)
    data = client.get(f"/jobs/{job.id}?format=json").get_json()
    assert data["status"] == "succeeded" and data["finished"]
    assert login(world.bz_staff).get(f"/jobs/{job.id}").status_code == 403  # neither creator nor admin
    assert login(world.kz_admin).get(f"/jobs/{job.id}").status_code == 403
    assert login(world.region_admin).get(f"/jobs/{job.id}").status_code == 200


def test_jobs_go_through_the_real_queue_when_not_immediate(app, world, tmp_path):
    """With immediate mode off, submit only enqueues; a worker (here: one dequeue in-process) runs it."""
    app.config["JOBS_IMMEDIATE"] = False
    app.config["HUEY_SQLITE_PATH"] = str(tmp_path / "huey.sqlite3")
    queue = jobs.configure(app)
    try:
        job = jobs.submit("test.count", "计数", {"n": 3}, actor=world.bz_admin, bureau_id=world.bz.id)
        assert job.status == JobStatus.QUEUED and len(queue) == 1
        task = queue.dequeue()
        queue.execute(task)
        db.session.expire_all()
        done = db.session.get(Job, job.id)
        assert done.status == JobStatus.SUCCEEDED and done.message == "数到 3"
    finally:
        app.config["JOBS_IMMEDIATE"] = True
        jobs.configure(app)


# --- dashboard -------------------------------------------------------------------------------------

def test_an_overdue_expert_review_is_on_the_dashboard_of_its_bureau_only(world, login):
    from datetime import timedelta

    from evalhub.core.timeutil import format_beijing, utcnow
    from tests.test_review_services import _panel, _review

    e, panel = _panel(world)
    _review(panel.invitations[0], world, [18, 18, 18, 18, 18])  # one of three has submitted
    due = utcnow() - timedelta(days=2)
    panel.review_due = due
    db.session.commit()
    body = login(world.bz_staff).get("/").get_data(as_text=True)
    card = body.split('data-testid="overdue-reviews-card"')[1].split('</ul></div>')[0]
    assert f'href="/reviews/panels/{panel.id}"' in card and e.reference in card and e.name in card
    assert format_beijing(due) in card and "2 位专家尚未提交" in card
    assert 'data-testid="overdue-reviews-count">1<' in card
    assert not any(i.expert.name in card for i in panel.invitations)  # the count only, no names
    assert login(world.bz_staff).get(f"/reviews/panels/{panel.id}").status_code == 200
    for username in ["region_admin", "bz_admin"]:
        assert f"/reviews/panels/{panel.id}" in login(getattr(world, username)).get("/").get_data(as_text=True)
    for username in ["kz_admin", "kz_staff", "lt_admin"]:
        body = login(getattr(world, username)).get("/").get_data(as_text=True)
        assert f"/reviews/panels/{panel.id}" not in body and e.reference not in body, username
        assert "暂无逾期未完成的专家评审" in body


def test_a_review_not_yet_due_is_not_overdue(world, login):
    from tests.test_review_services import _panel

    e, panel = _panel(world)
    db.session.commit()
    body = login(world.bz_staff).get("/").get_data(as_text=True)
    assert f"/reviews/panels/{panel.id}" not in body and "暂无逾期未完成的专家评审" in body


def test_pages_are_not_cached_but_static_files_may_be(world, login):
    client = login(world.bz_admin)
    assert client.get("/").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/evalhub.css").headers.get("Cache-Control", "")


def test_the_worker_sends_reminders_every_hour(app):
    from evalhub.core import jobs

    periodic = [t.__name__ for t in jobs.huey._registry._periodic_tasks]
    assert "evalhub.reminders" in periodic


def test_bureau_filters_options_are_escaped_and_keep_the_choice(app):
    """``bureau_options`` (every bureau filter's choices, built in Python): names escaped, the chosen one
    selected whether given as an id or as the text of the query string, a missing short name falls back."""
    from types import SimpleNamespace as Bureau

    options = app.jinja_env.globals["bureau_options"]
    bureaus = [Bureau(id=1, name="甲<script>alert(1)</script>局", short_name=None), Bureau(id=2, name="乙局", short_name="乙")]
    html = str(options(bureaus, "2"))
    assert "<script>" not in html and "甲&lt;script&gt;alert(1)&lt;/script&gt;局" in html
    assert '<option value="2" selected>乙</option>' in html and '<option value="1">' in html
    assert '<option value="1" selected>' in str(options(bureaus, 1))
    assert "selected" not in str(options(bureaus, None)) and "selected" not in str(options(bureaus, ""))
    assert '<option value="2">乙局</option>' in str(options(bureaus, None, "name"))
