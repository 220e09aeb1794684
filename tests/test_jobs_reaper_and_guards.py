"""Jobs and the hourly tasks beyond the audit's own tests (tests/test_audit_jobs.py): a job whose worker died is
failed and cleaned up; a training is not queued twice; the e-mail sends only what is still news; a plan lists an
evaluation object once on every path; a winner refused at contract is reported to the bureau once."""
from __future__ import annotations

import io
import smtplib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from evalhub.core import files, jobs
from evalhub.core import notifications as N
from evalhub.core.enums import JobStatus
from evalhub.core.errors import ValidationFailed
from evalhub.core.models import BudgetUnit, Job, Notification, StoredFile
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from tests import factories
from tests.test_audit_jobs import _SMTP, smtp  # noqa: F401 — the fake server and its fixture, one copy


def test_a_job_whose_worker_died_is_failed_in_chinese_and_its_workbook_discarded(world):
    clerk = world.lt_staff
    import pandas as pd

    from evalhub.registry import imports as I

    buffer = io.BytesIO()
    pd.DataFrame([], columns=list(I.EXPERT_COLUMNS)).to_excel(buffer, index=False, engine="openpyxl")
    stored = files.store("专家.xlsx", buffer.getvalue(), allowed=("xlsx",), actor=clerk)
    job = jobs._record("import.experts", "批量导入专家：专家.xlsx", {"file_id": stored.id, "bureau_id": world.lt.id},
                       actor=clerk, bureau_id=world.lt.id)
    # its worker died 40 minutes after it started: the heartbeat stopped there, an hour ago
    job.status, job.started_at = JobStatus.RUNNING, utcnow() - timedelta(minutes=100)
    job.heartbeat_at = utcnow() - timedelta(minutes=60)
    fresh = jobs._record("import.experts", "批量导入专家：另一个.xlsx", {"file_id": -1, "bureau_id": world.lt.id},
                         actor=clerk, bureau_id=world.lt.id)
    fresh.status, fresh.started_at = JobStatus.RUNNING, utcnow() - timedelta(minutes=5)   # still at work
    long = jobs._record("screening.train", "训练报告筛查模型", {}, actor=clerk, bureau_id=world.lt.id)
    # a job at work for seven hours, its heartbeat a few minutes old: long, not lost
    long.status, long.started_at, long.heartbeat_at = JobStatus.RUNNING, utcnow() - timedelta(hours=7), utcnow() - timedelta(minutes=4)
    db.session.commit()
    job_id, fresh_id, long_id, file_id = job.id, fresh.id, long.id, stored.id

    assert jobs.reap_interrupted() == 1
    assert jobs.reap_interrupted() == 0                       # recorded once
    db.session.expire_all()

    reaped = db.session.get(Job, job_id)
    assert reaped.status == JobStatus.FAILED and reaped.message == jobs.INTERRUPTED and reaped.finished_at
    assert db.session.get(StoredFile, file_id) is None       # the identity numbers do not stay in the store
    assert db.session.get(Job, fresh_id).status == JobStatus.RUNNING
    assert db.session.get(Job, long_id).status == JobStatus.RUNNING


def test_a_running_job_beats_on_its_own_connection_while_it_works_and_stops_when_it_ends(world, monkeypatch):
    """A job between two progress reports (a training's fit) still shows it is alive: the heartbeat thread moves
    heartbeat_at; it stops with the job (no beat after the end)."""
    import time

    seen: dict = {}

    def slow(job, report):
        started = db.session.execute(sa.select(Job.heartbeat_at).where(Job.id == job.id)).scalar_one()
        time.sleep(0.6)  # no report meanwhile
        seen["started"] = started
        return {"message": "好了"}

    monkeypatch.setitem(jobs._KINDS, "test.slow", slow)
    monkeypatch.setattr(jobs, "HEARTBEAT_EVERY", timedelta(seconds=0.1))
    job = jobs._record("test.slow", "慢任务", {}, actor=world.lt_staff, bureau_id=world.lt.id)
    db.session.commit()
    job_id = job.id
    jobs.run_job(job_id)
    db.session.expire_all()
    done = db.session.get(Job, job_id)
    assert done.status == JobStatus.SUCCEEDED
    assert done.heartbeat_at > seen["started"], "no heartbeat while the job worked"
    last = done.heartbeat_at
    time.sleep(0.3)
    db.session.expire_all()
    assert db.session.get(Job, job_id).heartbeat_at == last   # the thread stopped with the job


def test_a_double_click_on_train_queues_one_training(world):
    from evalhub.screening import services as S

    queued = jobs._record("screening.train", "训练报告筛查模型", {}, actor=world.region_admin, bureau_id=world.region_admin.bureau_id)
    db.session.commit()

    again = S.start_training(world.region_admin)

    count = db.session.execute(sa.select(sa.func.count(Job.id)).where(Job.kind == "screening.train")).scalar_one()
    assert again.id == queued.id and count == 1


def test_the_first_e_mail_run_sends_only_unread_recent_messages(world, smtp):
    world.firm_user.email = "firm1@example.cn"
    old, read, new = (N.emit("firm_admitted", link=f"/firms/{world.firm.id}", firm_id=world.firm.id, bureau=b, reason="")[0]
                      for b in ("旧", "已读", "新"))
    old.created_at = utcnow() - N.EMAIL_MAX_AGE - timedelta(hours=1)
    read.read_at = utcnow()
    db.session.commit()

    assert N.send_pending_email() == 1
    assert [m["Subject"] for m in smtp] == ["准予入库：新"]


def test_a_server_that_cannot_be_reached_leaves_the_message_for_the_next_run(world, smtp, monkeypatch):
    world.firm_user.email = "firm1@example.cn"
    N.emit("firm_admitted", link=f"/firms/{world.firm.id}", firm_id=world.firm.id, bureau="巴州", reason="")
    db.session.commit()

    def unreachable(*args, **kwargs):
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(smtplib, "SMTP", unreachable)
    assert N.send_pending_email() == 0
    monkeypatch.setattr(smtplib, "SMTP", _SMTP)
    assert N.send_pending_email() == 1 and len(smtp) == 1
    assert db.session.execute(sa.select(Notification.emailed_at)).scalar_one() is not None


def test_a_plan_item_added_or_edited_into_one_already_listed_is_refused(world):
    from evalhub.procurement import services as P

    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    unit = db.session.execute(sa.select(BudgetUnit).where(BudgetUnit.name == "巴州统计局")).scalar_one()
    data = P.PlanItemInput(name="统计调查项目", object_type="项目支出", budget_kind="一般公共预算", field="统计",
                           amount_wan="100", budget_unit_id=unit.id, reason="资金量大")
    P.add_plan_item(plan, data, world.bz_staff)
    other = P.add_plan_item(plan, P.PlanItemInput(**{**data.__dict__, "name": "另一个项目"}), world.bz_staff)
    db.session.commit()

    with pytest.raises(ValidationFailed) as added:
        P.add_plan_item(plan, data, world.bz_staff)
    with pytest.raises(ValidationFailed) as edited:
        P.update_plan_item(other, data, world.bz_staff)
    assert "不能重复列入" in added.value.message and "不能重复列入" in edited.value.message
    P.update_plan_item(other, P.PlanItemInput(**{**data.__dict__, "name": "另一个项目", "amount_wan": "90"}), world.bz_staff)


def test_the_bureau_is_told_once_why_a_suspended_winner_may_not_sign(world):
    from evalhub.procurement import services as P
    from evalhub.registry.services import change_firm_status

    p = factories.single_source(world)
    change_firm_status(world.firm, "suspend", world.bz_admin, reason="监督检查发现评价报告存在重大质量问题，暂停入库资格。")
    factories.past_challenge_period(p)
    db.session.flush()

    P.announce_contracts_ready()
    P.announce_contracts_ready()                                # the next hour
    db.session.flush()

    told = db.session.execute(sa.select(Notification.title, Notification.body).where(
        Notification.title.contains("暂不能签订合同"))).all()
    bureau_accounts = 2                                         # 巴州's admin and staff
    assert len(told) == bureau_accounts and "不符合" in told[0].body, told


def test_a_plan_workbook_listing_an_object_twice_names_the_second_row(world, login):
    from evalhub.core.exports import to_xlsx
    from evalhub.procurement import services as P
    from evalhub.procurement.imports import PLAN_COLUMNS

    plan = P.get_or_create_plan(world.bz, 2026, world.bz_staff)
    db.session.commit()
    row = {"评价对象名称": "巴州统计局统计调查项目", "评价类型": "项目支出", "预算类别": "一般公共预算", "业务领域": "统计",
           "委托事项": "", "金额（万元）": "320.5", "被评价单位": "巴州统计局", "委托方": "", "选取理由": "资金量大"}
    sheet = to_xlsx([row, row], "评价对象", columns=list(PLAN_COLUMNS))
    client = login(world.bz_staff)
    assert client.post(f"/plans/{plan.id}/import", data={"file": (io.BytesIO(sheet), "计划.xlsx")},
                       content_type="multipart/form-data").status_code == 302
    db.session.expire_all()

    job = db.session.execute(sa.select(Job).where(Job.kind == "import.plan_items")).scalar_one()
    assert job.status == JobStatus.FAILED
    assert job.result["errors"] == [{"row": 3, "name": row["评价对象名称"], "messages": ["与第 2 行重复（评价对象名称、被评价单位和委托事项相同）"]}]


def test_a_job_handed_to_two_workers_runs_once(world, monkeypatch):
    """run_job claims the job (queued → running) by compare-and-set: a second delivery of the same task, arriving
    while the first has not finished or after it, finds it claimed and runs nothing."""
    ran = []

    def _count(job, report):
        jobs.run_job(job.id)  # the same task delivered again while this one runs
        ran.append(job.id)
        return {"message": "完成"}

    monkeypatch.setitem(jobs._KINDS, "test.count_runs", _count)

    job = jobs._record("test.count_runs", "计数任务", {}, actor=world.bz_staff, bureau_id=world.bz.id)
    db.session.commit()
    jobs.run_job(job.id)
    jobs.run_job(job.id)  # and once more after it finished
    db.session.expire_all()
    assert ran == [job.id] and db.session.get(Job, job.id).status == JobStatus.SUCCEEDED
