"""Review A's findings on the merged diff: each test failed before its fix."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from evalhub.core import jobs
from evalhub.core.enums import JobStatus
from evalhub.core.models import AuditEvent, Job, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from tests import factories


# 3. training dedupe and the reaper of queued jobs -------------------------------------------------------------

def test_training_is_not_handed_a_disabled_admins_queued_job(world):
    from evalhub.screening import services as S

    queued = jobs._record("screening.train", "训练报告筛查模型", {}, actor=world.sysadmin, bureau_id=None)
    world.sysadmin.is_enabled = False
    db.session.commit()
    mine = S.start_training(world.region_admin)
    assert mine.id != queued.id and mine.created_by_id == world.region_admin.id


def test_a_queued_job_whose_task_was_lost_is_reaped_and_no_longer_blocks_training(world):
    from evalhub.screening import services as S

    lost = jobs._record("screening.train", "训练报告筛查模型", {}, actor=world.region_admin, bureau_id=None)
    lost.created_at = utcnow() - jobs.STALE_AFTER - timedelta(minutes=5)
    fresh = jobs._record("screening.train", "训练报告筛查模型", {}, actor=world.region_admin, bureau_id=None)
    db.session.commit()
    assert S.start_training(world.region_admin).id == fresh.id   # a fresh queued one is still handed back
    fresh.status = JobStatus.FAILED
    db.session.commit()
    assert S.start_training(world.region_admin).id != lost.id     # the lost one is not

    assert jobs.reap_interrupted() == 1
    db.session.expire_all()
    job = db.session.get(Job, lost.id)
    assert job.status == JobStatus.FAILED and "排队" in job.message and job.finished_at is not None
    assert jobs.reap_interrupted() == 0
    jobs.run_job(lost.id)                      # a task delivered late does not run a reaped job
    db.session.expire_all()
    assert db.session.get(Job, lost.id).status == JobStatus.FAILED


# 4. a 4xx reply is "try later", not "this message's fault" ------------------------------------------------------

def _pending_mail(app, monkeypatch, world, error):
    from evalhub.core import notifications as N
    from evalhub.core.models import Notification

    u = world.lt_staff
    u.email = "staff@example.cn"
    for i in range(3):
        db.session.add(Notification(user_id=u.id, title=f"t{i}", body="b", link="/x"))
    db.session.commit()
    tried = []

    class Server:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def send_message(self, msg):
            tried.append(msg["Subject"])
            raise error

    monkeypatch.setitem(app.config, "MAIL_SERVER", "smtp.example.cn")
    monkeypatch.setattr(N, "_smtp", lambda: Server())
    sent = N.send_pending_email()
    db.session.expire_all()
    left = db.session.execute(sa.select(sa.func.count(Notification.id)).where(
        Notification.user_id == u.id, Notification.emailed_at.is_(None))).scalar_one()
    return sent, left, tried


def test_a_throttling_451_at_data_gives_the_claim_back_and_stops(world, app, monkeypatch):
    import smtplib
    sent, left, tried = _pending_mail(app, monkeypatch, world,
                                      smtplib.SMTPDataError(451, b"4.7.1 Too many messages, try again later"))
    assert (sent, left, len(tried)) == (0, 3, 1)


def test_a_greylisting_450_for_the_recipient_gives_the_claim_back(world, app, monkeypatch):
    import smtplib
    sent, left, tried = _pending_mail(app, monkeypatch, world, smtplib.SMTPRecipientsRefused(
        {"staff@example.cn": (450, b"4.2.0 Greylisted, please try again later")}))
    assert (sent, left, len(tried)) == (0, 3, 1)


def test_a_5xx_refusal_is_still_the_messages_own(world, app, monkeypatch):
    import smtplib
    sent, left, tried = _pending_mail(app, monkeypatch, world, smtplib.SMTPDataError(554, b"5.6.0 content refused"))
    assert (sent, left, len(tried)) == (0, 0, 3)


# 5. a begun enrolment is neither shown again nor confirmed without the password -------------------------------

def test_a_begun_enrolment_is_not_shown_again_nor_confirmed_without_the_password(world, app):
    import pyotp

    from evalhub.core import accounts
    from tests.test_sessions import Browser

    admin = world.bz_admin
    browser = Browser(app).sign_in(admin.username)
    begun = browser.post("/account/totp/setup", data={"password": factories.PASSWORD})
    db.session.expire_all()
    secret = accounts.totp_pending_secret(db.session.get(User, admin.id))
    assert secret and secret in begun.get_data(as_text=True)      # the owner, who typed the password, sees it
    # ... the owner walks away; someone else at the same browser:
    assert secret not in browser.get("/account/totp").get_data(as_text=True)
    code = pyotp.TOTP(secret, interval=accounts.TOTP_STEP).now()
    refused = browser.post("/account/totp/confirm", data={"code": code})
    wrong = browser.post("/account/totp/confirm", data={"code": code, "password": "wrong-Password-9"})
    db.session.expire_all()
    assert (refused.status_code, wrong.status_code) == (422, 422)
    assert not db.session.get(User, admin.id).totp_enabled
    assert browser.post("/account/totp/confirm", data={"code": code, "password": factories.PASSWORD}).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, admin.id).totp_enabled


# 6. an API token the gate refuses is no sign-in ----------------------------------------------------------------

def test_an_api_token_refused_by_the_gate_records_a_refusal_not_a_sign_in(world, client, app, monkeypatch):
    u = world.lt_staff
    monkeypatch.setitem(app.config, "PASSWORD_MAX_AGE_DAYS", 90)
    u.password_changed_at = utcnow() - timedelta(days=4000)
    u.failed_logins = 2
    db.session.commit()
    before = u.last_login_at
    r = client.post("/api/v1/tokens", json={"username": u.username.upper(), "password": factories.PASSWORD})
    assert r.status_code == 403 and "token" not in (r.get_json() or {})
    db.session.expire_all()
    actions = db.session.execute(sa.select(AuditEvent.action, AuditEvent.summary).where(
        AuditEvent.object_id == u.id, AuditEvent.action.in_(("user.login", "user.login_refused")))).all()
    assert [a for a, _ in actions] == ["user.login_refused"] and "API" in actions[0][1] and "密码已过期" in actions[0][1]
    again = db.session.get(User, u.id)
    assert again.last_login_at == before and again.failed_logins == 2   # the earlier failures stand
    # the web still signs the same account in (to change its password)
    from tests.test_sessions import Browser
    Browser(app).sign_in(u.username)
    db.session.expire_all()
    assert db.session.execute(sa.select(sa.func.count(AuditEvent.id)).where(
        AuditEvent.object_id == u.id, AuditEvent.action == "user.login")).scalar_one() == 1


# 8. a withdrawn draw says it was withdrawn ---------------------------------------------------------------------

def test_a_withdrawn_draw_refuses_numbers_and_reveal_saying_it_was_withdrawn(world):
    import pytest

    from evalhub.core import draws
    from evalhub.core.errors import Conflict
    from tests.test_draws import _announce

    record = _announce(world, witnesses=[world.krl_staff])
    draws.withdraw(record, "委员会成员变动", world.krl_admin)
    db.session.commit()
    with pytest.raises(Conflict) as number:
        draws.enter_number(record, world.krl_staff, "12345")
    with pytest.raises(Conflict) as revealed:
        draws.reveal(record, world.krl_admin)
    assert number.value.message == "该抽取已撤销（未揭晓），不能再输入数字。"
    assert revealed.value.message == "该抽取已撤销（未揭晓），不能再揭晓。"


# 11. the case-insensitive login-name index: names that clash are listed, not a bare IntegrityError ------------

def test_the_lower_username_migration_names_the_accounts_that_differ_only_in_case(empty_database_url, tmp_path):
    import datetime as dt

    import pytest
    from flask_migrate import upgrade

    from evalhub import create_app
    from evalhub.config import PROJECT_ROOT

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True,
                      "SECRET_KEY": "x", "FILE_STORE": tmp_path})
    directory = str(PROJECT_ROOT / "migrations")
    with app.app_context():
        try:
            upgrade(directory=directory, revision="e1f3a5c7b9d2")
            with db.engine.begin() as conn:
                columns = sa.inspect(conn).get_columns("user_account")
                for i, name in enumerate(("KRL.Wang", "krl.wang", "bz.admin")):
                    row = {}
                    for c in columns:
                        if c["nullable"] or c.get("default") is not None or c.get("autoincrement") is True:
                            continue
                        kind = c["type"].python_type if hasattr(c["type"], "python_type") else str
                        row[c["name"]] = (True if kind is bool else 0 if kind is int else
                                          dt.datetime(2026, 1, 1) if kind is dt.datetime else "x")
                    row.update(id=i + 1, username=name, role="system_admin")
                    table = sa.table("user_account", *(sa.column(k) for k in row))
                    conn.execute(sa.insert(table).values(**row))
            from alembic import command
            from flask import current_app
            config = current_app.extensions["migrate"].migrate.get_config(directory)
            with pytest.raises(RuntimeError) as refused:   # flask_migrate's upgrade would log it and exit
                command.upgrade(config, "head")
            message = str(refused.value)
            assert "KRL.Wang" in message and "krl.wang" in message and "bz.admin" not in message and "改名" in message
        finally:
            db.session.remove()
            db.engine.dispose()


# 12. a link whose issuer left: after the link's own states, worded for who holds it -----------------------------

def test_a_used_or_expired_link_of_an_issuer_disabled_since_says_so(world):
    from evalhub.core import accounts
    from evalhub.core.models import AccountLink
    from evalhub.core.services import set_enabled

    used = accounts.issue_link(world.bz_staff, accounts.LinkPurpose.RESET, world.bz_admin)
    db.session.commit()
    accounts.use_link(used, accounts.LinkPurpose.RESET, "Another-Passw0rd-7", "Another-Passw0rd-7")
    db.session.commit()
    expired = accounts.issue_link(world.lt_staff, accounts.LinkPurpose.RESET, world.bz_admin)
    db.session.commit()
    db.session.execute(sa.update(AccountLink).where(AccountLink.user_id == world.lt_staff.id)
                       .values(expires_at=utcnow() - timedelta(days=1)))
    set_enabled(world.bz_admin, False, world.region_admin, "调离岗位")
    db.session.commit()
    check = accounts.check_link(used, accounts.LinkPurpose.RESET)
    assert not check.ok and "使用过" in check.problem and "停用" not in check.problem
    check = accounts.check_link(expired, accounts.LinkPurpose.RESET)
    assert not check.ok and "过期" in check.problem and "停用" not in check.problem, check.problem


def test_a_link_whose_issuer_left_tells_experts_and_firms_to_ask_the_bureau(world):
    from evalhub.core import accounts
    from evalhub.core.services import set_enabled

    tokens = {who: accounts.issue_link(getattr(world, who), accounts.LinkPurpose.RESET, world.bz_admin)
              for who in ("expert_user", "firm_user", "bz_staff")}
    db.session.commit()
    set_enabled(world.bz_admin, False, world.region_admin, "调离岗位")
    db.session.commit()
    problems = {who: accounts.check_link(t, accounts.LinkPurpose.RESET).problem for who, t in tokens.items()}
    for who in ("expert_user", "firm_user"):
        assert "签发该链接的管理员账户已停用" in problems[who] and "发放链接的财政局" in problems[who], problems[who]
        assert "本单位" not in problems[who]
    assert "本单位的其他管理员" in problems["bz_staff"]


# 9. numbers in text columns, percentages ------------------------------------------------------------------------

def _read(rows, formats=None):
    import io

    import openpyxl

    from evalhub.core import workbooks

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["名称", "联系电话", "比例"])
    for row in rows:
        sheet.append(row)
    for ref, fmt in (formats or {}).items():
        sheet[ref].number_format = fmt
    data = io.BytesIO()
    book.save(data)
    with workbooks.opened(data.getvalue()) as opened:
        return workbooks.read_rows(opened.active, {"名称": "name", "联系电话": "phone", "比例": "share"},
                                   required=["名称"])


def test_a_phone_typed_as_a_number_is_refused_asking_for_a_text_column(world):
    import pytest

    from evalhub.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        _read([["甲", 9912345678, None]])              # 09912345678 typed into a General cell
    message = refused.value.message
    assert "第 2 行" in message and "联系电话" in message and "9912345678" in message and "文本" in message
    assert _read([["甲", "09912345678", None]])[0][1]["phone"] == "09912345678"


def test_a_percentage_cell_is_read_as_excel_shows_it(world):
    rows = _read([["甲", None, 0.5], ["乙", None, 0.075], ["丙", None, 3]], {"C2": "0%", "C3": "0.0%"})
    assert [r["share"] for _, r in rows] == ["50%", "7.5%", "3"]
