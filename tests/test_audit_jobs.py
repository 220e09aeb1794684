"""Audit of background jobs, the hourly tasks, the command line and notifications (core/jobs.py, the periodic tasks
registered by the domains, cli.py, core/notifications.py): a job or a periodic run that meets a failure records it
in Chinese, leaves nothing half-done and does not repeat what it already did; every message reaches exactly its
audience, and no one else."""
from __future__ import annotations

import os
import re
import smtplib
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core import jobs
from evalhub.core import notifications as N
from evalhub.core.enums import JobStatus, Role
from evalhub.core.models import Job, Notification
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from tests import factories


# --- e-mail: the hourly reminders job sends what the inbox holds ------------------------------------------------

class _SMTP:
    """An SMTP server that refuses one mailbox (a typo in one account's address), as real servers do at RCPT."""

    sent: list = []
    refused = "nobody@bad-domain.invalid"

    def __init__(self, host, port, timeout=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def send_message(self, message):
        if message["To"] == _SMTP.refused:
            raise smtplib.SMTPRecipientsRefused({message["To"]: (550, b"5.1.1 mailbox unavailable")})
        _SMTP.sent.append(message)


@pytest.fixture()
def smtp(app, monkeypatch):
    _SMTP.sent = []
    monkeypatch.setattr(smtplib, "SMTP", _SMTP)
    monkeypatch.setitem(app.config, "MAIL_SERVER", "smtp.example.cn")
    return _SMTP.sent


def _hourly(fn):
    """Run a periodic task as the worker does (jobs._in_app_context: the task, then commit; a task that raises is
    logged by huey and its transaction dropped)."""
    try:
        fn()
        db.session.commit()
        return None
    except Exception as exc:  # noqa: BLE001 — what the worker would log
        db.session.rollback()
        return exc


def test_one_refused_mailbox_does_not_stop_the_hourly_reminders_nor_repeat_everyone_elses_mail(world, smtp):
    """Rule: the hourly reminders job (review/services.py ``send_reminders``, periodic ``evalhub.reminders``) expires
    unanswered invitations, reminds experts and firms, and e-mails each unsent notification once
    (notifications.py ``send_pending_email``: "E-mail unsent notifications"; test_notification_matrix: "sent once").
    Who is hurt: every firm, expert and unit of the region — one account with a mistyped e-mail address (the SMTP
    server answers 550 for it) is enough.

    Defect: ``send_pending_email`` lets ``SMTPRecipientsRefused`` out of its loop. The messages sent before the bad
    address have ``emailed_at`` set only in the session; the exception rolls the whole hourly task back — the
    invitation expiries and replacement draws with it — and the next hour the same messages go out again. Every
    hour, forever: the firm below receives the same e-mail once per hour, and the late invitation never expires.
    Expected: the bad address skipped (or recorded), the job done, each good message e-mailed once."""
    from evalhub.review.models import InvitationStatus
    from evalhub.review.services import send_reminders

    world.firm_user.email = "firm1@example.cn"
    world.other_firm_user.email = _SMTP.refused
    N.emit("firm_admitted", link=f"/firms/{world.firm.id}", firm_id=world.firm.id, bureau="巴州", reason="")
    N.emit("firm_admitted", link=f"/firms/{world.other_firm.id}", firm_id=world.other_firm.id, bureau="克州", reason="")
    e = factories.contracted(world)
    factories.submit_plan(e)
    factories.panel_experts(e, 6)
    from evalhub.review import services as R

    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    invitation = next(i for i in panel.invitations if i.status == InvitationStatus.INVITED)
    invitation.respond_by = utcnow() - timedelta(hours=1)
    invitation_id = invitation.id
    db.session.commit()

    failures = [_hourly(send_reminders), _hourly(send_reminders)]  # two hours pass

    to_firm = [m for m in smtp if m["To"] == "firm1@example.cn" and m["Subject"] == "准予入库：巴州"]
    expired = db.session.get(type(invitation), invitation_id).status == InvitationStatus.EXPIRED
    assert failures == [None, None] and len(to_firm) == 1 and expired, (
        f"hourly runs raised {[type(f).__name__ if f else None for f in failures]}; the firm got the same e-mail "
        f"{len(to_firm)} times; the late invitation expired: {expired}")


def test_a_disabled_account_is_not_e_mailed_what_waited_in_its_inbox(world, smtp):
    """Rule: "A disabled account reads nothing (it cannot sign in); it is not sent what it would find on return"
    (core/notifications.py ``emit``), and ``emit`` sends only to enabled accounts. Who is hurt: the firm (or bureau)
    whose employee left — the account is disabled the day they leave, and the hourly job then mails the firm's
    procurement results, inspection questions and ratings to the former employee's address.

    Defect: ``send_pending_email`` selects every unsent notification of a user with an e-mail address, without
    asking whether the account is still enabled: a message stored while the account was enabled is e-mailed after
    it was disabled (expected nothing sent to the disabled account)."""
    world.firm_user.email = "left.the.firm@example.cn"
    N.emit("bid_lost", link="/procurements/1/bid", firm_id=world.firm.id, reference="CG-2025-001",
           name="巴州统计调查项目", result="中标")
    db.session.commit()
    world.firm_user.is_enabled = False            # the employee left before the hourly e-mail
    db.session.commit()

    N.send_pending_email()

    leaked = [m["Subject"] for m in smtp if m["To"] == "left.the.firm@example.cn"]
    assert leaked == [], f"a disabled account was e-mailed: {leaked}"


# --- a failed job can be run again ----------------------------------------------------------------------------

def test_an_upload_whose_screening_job_failed_is_screened_by_the_rescreen_command_the_page_names(world, app, monkeypatch):
    """Rule: a job that fails is recorded as failed and can be re-run. The screening status page says so itself for
    a failed screening job: "筛查失败 … 管理员可运行 flask evalhub screening rescreen 补筛"
    (templates/screening/reference_pending.html); the CLI's help: "Screen stored submissions again". Who is hurt:
    the bureau — a report whose screening failed once (a worker restarted mid-job, a database hiccup) never gets a
    risk card, so it never reaches the 筛查 queue the bureau reviews reports from; and the firm it copied from.

    Defect: ``screening.services.rescreen`` selects only submissions that already have a ``ReportScreening`` row
    (an inner join), so the one upload whose job failed — the only one that needs it — is never screened by the
    command the page points to (expected: after the command the upload has its screening; actual: still none,
    "已重新筛查 0 份")."""
    from evalhub.screening import services as S
    from tests.screening_support import report_text, upload_report

    monkeypatch.setitem(app.config, "SCREENING_IN_WORKER", True)
    real = S.screen_submission

    def worker_fails(*args, **kwargs):
        raise RuntimeError("server closed the connection unexpectedly")

    monkeypatch.setattr(S, "screen_submission", worker_fails)
    _e, submission = upload_report(world, report_text("饮水安全工程", "巴州统计局", world.firm.name), name="饮水安全工程")
    submission_id = submission.id
    db.session.commit()                                   # the worker runs the job: it fails
    db.session.expire_all()
    job = S.pending_screening(db.session.get(type(submission), submission_id))
    assert job is not None and job.status == JobStatus.FAILED, job and job.message
    monkeypatch.setattr(S, "screen_submission", real)     # the database is back

    result = app.test_cli_runner().invoke(args=["evalhub", "screening", "rescreen"])
    db.session.expire_all()

    assert result.exit_code == 0, result.output
    screened = S.screening_for(db.session.get(type(submission), submission_id))
    assert screened is not None, f"the failed upload is still unscreened after the command: {result.output.strip()!r}"


# --- a failed job says why, in Chinese, and nothing more -------------------------------------------------------

def test_an_import_job_beaten_to_an_expert_by_another_clerk_fails_in_chinese_without_sql(
        world, login, monkeypatch):
    """Rule: a job that fails is recorded as failed with a Chinese reason a bureau can read; a unique violation that
    slips past the checks is answered with the one Chinese message the domain registered for its table
    (docs/architecture.md: "answered 409 with a Chinese message by the one handler in core/concurrency.py";
    registry/services.py: ``unique_message("expert", "该身份证号码的专家已在专家库中（可能是同时提交的另一请求刚刚
    录入）…")``). Who is hurt: the bureau clerk, whose job page shows an English database error that does not
    say what happened (the expert is already in the pool) nor what to do (refresh, do not import again).

    Scene: two clerks import workbooks naming the same expert; the other clerk's row commits while this job is
    between its checks and its inserts. Defect: ``core.jobs.run_job`` writes ``f"任务出错：{exc}"`` for any
    exception — here SQLAlchemy's English ``IntegrityError`` text, naming the table's columns and opening the SQL
    statement (on PostgreSQL also ``DETAIL: Key (id_number_digest)=(…)``, the identity number's keyed digest) —
    onto the job page,
    instead of the registered Chinese message (``concurrency.conflict_message``)."""
    import io

    import pandas as pd

    from evalhub.registry import imports as I

    number = factories.id_number(birth="19680101")
    row = {"姓名": "导入专家甲", "身份证号码": number, "工作单位": "轮台县人民医院", "职称": "中级", "学历": "本科",
           "从业年限": "15", "出生年份": "1968", "业务领域": "医疗卫生"}
    buffer = io.BytesIO()
    pd.DataFrame([row], columns=list(I.EXPERT_COLUMNS)).to_excel(buffer, index=False, engine="openpyxl")
    real = I.clean_expert

    def meanwhile_the_other_clerk_commits(data, *args, **kwargs):
        cleaned = real(data, *args, **kwargs)
        factories.expert(world.lt, name="导入专家甲", id_number=number, birth_year=1968)
        db.session.commit()
        return cleaned

    monkeypatch.setattr(I, "clean_expert", meanwhile_the_other_clerk_commits)
    client = login(world.lt_staff)
    response = client.post("/imports/experts", data={"file": (io.BytesIO(buffer.getvalue()), "专家.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    db.session.expire_all()
    job = db.session.execute(sa.select(Job).where(Job.kind == "import.experts")).scalar_one()
    page = client.get(response.headers["Location"]).get_data(as_text=True)

    assert job.status == JobStatus.FAILED, job.status
    shown = job.message or ""
    assert "专家已在专家库中" in shown and not re.search(r"INSERT|SQL|Integrity|UNIQUE|parameters", shown) \
        and number not in page, f"the bureau's job page reads: {shown!r}"


# --- a job queued twice has its effect once ----------------------------------------------------------------------

def test_the_same_plan_workbook_imported_twice_does_not_put_every_item_in_the_plan_twice(world, login):
    """Rule: a job queued twice — a double click on 导入, the upload form sent again after a slow answer — has its
    effect once (core/jobs.py itself expects "the same workbook uploaded twice: the store keeps one row per
    content" and keeps the file for the second job; the other imports refuse their second run: a firm's credit code
    and an expert's identity number are unique). Who is hurt: the bureau — its 年度重点评价计划 lists every
    evaluation object twice, its total budget and its count of key evaluations (the ≥ 10 / ≥ 5 a year of DOMAIN §2)
    are doubled, and the plan can be submitted for approval that way.

    Defect: the ``import.plan_items`` job (procurement/imports.py ``import_plan_items``) checks each row only on
    its own (``clean_plan_item``), never against the items already in the plan; the second job of the same
    workbook adds the same two items again (expected 2 items in the plan, actual 4)."""
    import io

    from evalhub.procurement import services as P
    from evalhub.procurement.imports import PLAN_COLUMNS
    from evalhub.procurement.models import PlanItem
    from evalhub.core.exports import to_xlsx

    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    db.session.commit()
    rows = [{"评价对象名称": "巴州统计局统计调查项目", "评价类型": "项目支出", "预算类别": "一般公共预算", "业务领域": "统计",
             "委托事项": "", "金额（万元）": "320.5", "被评价单位": "巴州统计局", "委托方": "", "选取理由": "资金量大"},
            {"评价对象名称": "巴州民政局低保资金", "评价类型": "项目支出", "预算类别": "一般公共预算", "业务领域": "社会保障",
             "委托事项": "", "金额（万元）": "1000", "被评价单位": "巴州民政局", "委托方": "", "选取理由": "社会关注度高"}]
    sheet = to_xlsx(rows, "评价对象", columns=list(PLAN_COLUMNS))
    client = login(world.bz_staff)
    answers = [client.post(f"/plans/{plan.id}/import", data={"file": (io.BytesIO(sheet), "计划.xlsx")},
                           content_type="multipart/form-data") for _ in range(2)]   # the double click
    assert [a.status_code for a in answers] == [302, 302]
    db.session.expire_all()

    names = db.session.execute(sa.select(PlanItem.name).where(PlanItem.plan_id == plan.id)
                               .order_by(PlanItem.position)).scalars().all()
    assert len(names) == 2, f"the plan now lists: {names}"


# --- a job acts with the rights its person has when it runs --------------------------------------------------------

def test_an_import_queued_by_an_account_disabled_before_the_worker_ran_it_imports_nothing(world):
    """Rule: a job queued under one person's rights never acts with more rights than that person has when it runs;
    "停用" ends every session and revokes every API token (core/services.py ``set_enabled``) — an account the
    bureau administrator has just disabled (the clerk left; or the account was taken over and disabled as the
    response) acts no more, on any path. The other jobs ask again when they run (``credit.compute`` → ``compute``
    requires "credit.manage"; ``import.plan_items`` → ``add_plan_item`` requires "plan.edit"). Who is hurt: the
    bureau — its expert pool (whose members are drawn for panels and inspections) takes in rows written by an
    account it had already shut.

    Defect: the ``import.experts`` / ``import.firms`` jobs (registry/imports.py ``_run_import``) read the actor and
    the bureau from the job's row and call ``create_expert`` / ``create_firm``, which check nothing: the import
    queued before the account was disabled runs when the worker reaches it, and every row enters the pool
    (expected: the job refused in Chinese, no expert added)."""
    import io

    import pandas as pd

    from evalhub.core import files
    from evalhub.core.services import set_enabled
    from evalhub.registry import imports as I
    from evalhub.registry.models import Expert

    row = {"姓名": "导入专家乙", "身份证号码": factories.id_number(birth="19680101"), "工作单位": "轮台县人民医院",
           "职称": "中级", "学历": "本科", "从业年限": "15", "出生年份": "1968", "业务领域": "医疗卫生"}
    buffer = io.BytesIO()
    pd.DataFrame([row], columns=list(I.EXPERT_COLUMNS)).to_excel(buffer, index=False, engine="openpyxl")
    clerk = world.lt_staff
    stored = files.store("专家.xlsx", buffer.getvalue(), allowed=("xlsx",), actor=clerk)
    job = jobs._record("import.experts", "批量导入专家：专家.xlsx", {"file_id": stored.id, "bureau_id": world.lt.id},
                       actor=clerk, bureau_id=world.lt.id)      # queued: the worker has a backlog
    db.session.commit()
    job_id = job.id
    experts = db.session.execute(sa.select(sa.func.count(Expert.id))).scalar_one()

    set_enabled(clerk, False, world.lt_admin, "账号疑似被盗用，先行停用")
    db.session.commit()
    jobs.run_job(job_id)                                         # the worker reaches the job
    db.session.expire_all()

    added = db.session.execute(sa.select(sa.func.count(Expert.id))).scalar_one() - experts
    done = db.session.get(Job, job_id)
    assert added == 0, f"the disabled account's import ran: {added} expert(s) added; job {done.status.label}: {done.message}"


def test_two_workers_sending_the_hourly_e_mail_at_once_send_each_message_once(app, world, smtp, monkeypatch):
    """Rule: each notification is e-mailed once (core/notifications.py ``send_pending_email``: "E-mail unsent
    notifications"; test_notification_matrix: "sent once"); "two people clicking at once get one result" holds for
    two workers too (docs/architecture.md: a rule that counts, then writes, takes ``core.concurrency.serialise``
    first). Two consumers — two worker containers, each running huey's scheduler, or a consumer restarted while the
    previous run of ``evalhub.reminders`` was still sending — run the hourly task at the same minute. Who is hurt:
    every recipient, who gets each e-mail twice (and learns to ignore them).

    Defect: ``send_pending_email`` reads the unsent notifications, sends them and only then sets ``emailed_at``,
    with no lock or claim; both workers read the same rows before either commits and both send every one
    (expected 1 e-mail to the firm's user, actual 2)."""
    world.firm_user.email = "firm1@example.cn"
    N.emit("firm_admitted", link=f"/firms/{world.firm.id}", firm_id=world.firm.id, bureau="巴州", reason="")
    db.session.commit()
    send = _SMTP.send_message

    def slow(self, message):             # an SMTP round trip of a few hundred milliseconds
        time.sleep(0.3)
        send(self, message)

    monkeypatch.setattr(_SMTP, "send_message", slow)

    outcomes = factories.at_once(app, N.send_pending_email, N.send_pending_email)

    to_firm = [m["Subject"] for m in smtp if m["To"] == "firm1@example.cn"]
    assert len(to_firm) == 1, f"workers {outcomes}; the firm's user received {to_firm}"


# --- a periodic job acts only on what is still true when it runs ---------------------------------------------------

def test_contract_ready_job_does_not_tell_a_firm_suspended_since_the_award_to_sign(world):
    """Rule: a firm's eligibility is checked again at the contract, "because a firm's standing can change between its
    bid and the award or contract" (procurement/eligibility.py ``assert_eligible``; ``sign_contract`` calls it
    with "contract"; DOMAIN §3: a suspended firm is out of the library). The hourly job tells the bureau and the
    winner "可以签订合同" once the challenge period is over (procurement/services.py ``announce_contract_ready``) —
    which must mean the contract may be signed. Who is hurt: the bureau, told (every enabled account) to sign a
    contract the system will refuse, and the suspended firm, told in writing that it may sign.

    Defect: ``announce_contract_ready`` checks the notice, the engagement's state and the challenges
    (``contract_block``) but not the winner's eligibility; a firm suspended after the award is announced
    "{reference} 可以签订合同" while ``sign_contract`` refuses it (expected no announcement, actual one to the firm
    and one to each bureau account)."""
    from evalhub.core.errors import Conflict
    from evalhub.procurement import eligibility
    from evalhub.procurement import services as P
    from evalhub.registry.services import change_firm_status

    p = factories.single_source(world)
    change_firm_status(world.firm, "suspend", world.bz_admin, reason="监督检查发现评价报告存在重大质量问题，暂停入库资格。")
    factories.past_challenge_period(p)
    db.session.flush()
    with pytest.raises(Conflict):                 # the contract is refused to the suspended winner
        eligibility.assert_eligible(p, world.firm, "contract")

    P.announce_contracts_ready()
    db.session.flush()

    told = db.session.execute(sa.select(Notification.title).where(Notification.title.contains("可以签订合同"))).scalars().all()
    assert told == [], f"announced to a suspended winner and its bureau: {told}"
