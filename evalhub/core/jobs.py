"""Background jobs: a Huey task queue runs them, their progress lives in the ``job`` table.

Huey uses its SQLite storage in the instance folder by default, Redis when EVALHUB_REDIS_URL is set.
A job kind is a plain function ``fn(job, report)`` registered with ``@job_kind("name")``; ``report(done,
total, message)`` commits progress in its own short transaction so any page can show it.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa
from flask import Flask
from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evalhub.core import audit, files
from evalhub.core.enums import JobStatus
from evalhub.core.errors import DomainError
from evalhub.core.models import Job, StoredFile, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db

log = logging.getLogger(__name__)

JobFunction = Callable[[Job, Callable[[int, int, str], None]], dict]
_KINDS: dict[str, JobFunction] = {}
_UPLOADS: dict[str, str] = {}  # job kind → the params key of the stored upload that is the job's alone
_PERIODIC: list[tuple[str, str, Callable[[], object]]] = []

# Configured by create_app; the consumer (`huey_consumer evalhub.tasks.huey`) imports the same object.
huey: Huey | None = None
_run_job_task = None
_flask_app: Flask | None = None


def job_kind(name: str, *, upload: str | None = None) -> Callable[[JobFunction], JobFunction]:
    """``upload``: the params key holding the id of a stored file uploaded for this job only (an Excel import's
    workbook); it is discarded when the job ends, succeeded or failed (``files.discard``)."""
    def register(fn: JobFunction) -> JobFunction:
        _KINDS[name] = fn
        if upload:
            _UPLOADS[name] = upload
        return fn

    return register


def periodic(name: str, *, minute: str) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Register a task the worker runs at ``minute`` (a crontab minute field: "17" hourly, "*/10"), in an app
    context, then commits.

    The module that owns the rule registers it (review: reminders; screening: score refresh), so the
    queue knows no domain."""
    def register(fn: Callable[[], object]) -> Callable[[], object]:
        _PERIODIC.append((name, minute, fn))
        return fn

    return register


def _in_app_context(fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with _flask_app.app_context():
            fn()
            db.session.commit()

    run.__name__ = fn.__name__
    return run


def configure(app: Flask) -> Huey:
    """Create the queue for this app: Redis when configured, else SQLite; in-process when immediate."""
    global huey, _run_job_task, _flask_app
    _flask_app = app
    immediate = app.config["JOBS_IMMEDIATE"]
    if app.config.get("REDIS_URL") and not immediate:
        huey = RedisHuey("evalhub", url=app.config["REDIS_URL"])
    else:
        huey = SqliteHuey("evalhub", filename=app.config["HUEY_SQLITE_PATH"], immediate=immediate)

    def run_job_task(job_id: int) -> None:
        with _flask_app.app_context():
            run_job(job_id)

    _run_job_task = huey.task(name="evalhub.run_job")(run_job_task)

    for name, minute, fn in _PERIODIC:
        huey.periodic_task(crontab(minute=minute), name=name)(_in_app_context(fn))
    return huey


def _record(kind: str, title: str, params: dict, *, actor: User | None, bureau_id: int | None) -> Job:
    """The queued job's row (flushed, audited); the callers decide when the worker may see it."""
    if kind not in _KINDS:
        raise KeyError(kind)
    job = Job(kind=kind, title=title[:200], params=params, bureau_id=bureau_id,  # a file name may be 255 long
              created_by_id=actor.id if actor else None, status=JobStatus.QUEUED)
    db.session.add(job)
    db.session.flush()
    audit.record("job.submitted", job, actor=actor, bureau_id=bureau_id, summary=f"提交后台任务：{title}")
    return job


def submit(kind: str, title: str, params: dict, *, actor: User | None, bureau_id: int | None) -> Job:
    """Record a job and queue it. Commits: the worker runs in another process and must see the row."""
    job = _record(kind, title, params, actor=actor, bureau_id=bureau_id)
    db.session.commit()
    job_id = job.id
    _run_job_task(job_id)  # in immediate mode this runs now, in a nested app context
    db.session.expire_all()
    return db.session.get(Job, job_id)


_AFTER_COMMIT = "evalhub.jobs_after_commit"


def submit_after_commit(kind: str, title: str, params: dict, *, actor: User | None, bureau_id: int | None) -> Job:
    """Record a job in the caller's transaction and queue it only once that transaction commits: for work on
    rows the caller is still writing (an upload screened in the worker), which the worker must be able to
    read. Nothing is queued when the transaction rolls back."""
    job = _record(kind, title, params, actor=actor, bureau_id=bureau_id)
    db.session.info.setdefault(_AFTER_COMMIT, []).append(job.id)
    return job


@sa_event.listens_for(Session, "after_commit")
def _queue_committed_jobs(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: nothing is visible to the worker yet
        return
    for job_id in session.info.pop(_AFTER_COMMIT, None) or ():
        _run_job_task(job_id)  # immediate mode: runs now, in a nested app context with its own session


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back_jobs(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_AFTER_COMMIT, None)


def _refuse(job: Job, message: str) -> None:
    """End a queued job without running it: failed with ``message``, audited, its upload discarded."""
    job.status = JobStatus.FAILED
    job.message = message[:300]
    job.finished_at = utcnow()
    audit.record("job.finished", job, actor=None, bureau_id=job.bureau_id,
                 summary=f"后台任务结束：{job.title}（{job.status.label}：{job.message}）")
    db.session.commit()
    _discard_upload(job)


# Modules above that know what an exception means in Chinese (core.concurrency: a unique violation on a table it
# has a sentence for) register here: jobs cannot import them (they register their own periodic jobs with us).
_EXPLAINERS: list[Callable[[Exception], "str | None"]] = []


def explains_failures(fn: Callable[[Exception], "str | None"]) -> Callable[[Exception], "str | None"]:
    _EXPLAINERS.append(fn)
    return fn


def failure_message(exc: Exception, job_id: int) -> str:
    """What a failed job's page says: a domain error's own Chinese message, or a registered explanation (the
    record a unique violation stands for), else a sentence without the error's text (a database error carries its
    SQL and the values it refused)."""
    if isinstance(exc, DomainError):
        return exc.message
    explained = next((m for m in (explain(exc) for explain in _EXPLAINERS) if m), None)
    if explained:
        return explained
    if isinstance(exc, IntegrityError):
        return "要写入的记录与已有记录冲突（可能是同时进行的另一操作刚刚写入），任务未完成，请稍后重试。"
    return f"系统内部错误，任务未完成。请稍后重试；仍出错时请将任务编号 #{job_id} 告知系统管理员。"


def run_job(job_id: int) -> None:
    job = db.session.get(Job, job_id)
    if job is None or job.status not in (JobStatus.QUEUED,):
        return
    if job.created_by is not None and not job.created_by.is_enabled:
        # A job acts with its person's rights as they are when it runs: an account disabled since acts no more.
        _refuse(job, "提交任务的账号已停用，任务未执行。如仍需要，请由在用账号重新提交。")
        return
    # Compare-and-set: of two workers handed the same job (a task delivered twice, a retry), one runs it.
    now = utcnow()
    claimed = db.session.execute(sa.update(Job).where(Job.id == job_id, Job.status == JobStatus.QUEUED)
                                 .values(status=JobStatus.RUNNING, started_at=now, heartbeat_at=now)
                                 .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if claimed != 1:
        return
    job = db.session.get(Job, job_id, populate_existing=True)

    def report(done: int, total: int, message: str = "") -> None:
        # Progress is committed on its own; the job's own writes happen in the job function.
        db.session.execute(Job.__table__.update().where(Job.id == job_id).values(
            progress=done, total=total, message=message[:300], heartbeat_at=utcnow()))
        db.session.commit()

    kind = job.kind
    fn = _KINDS[kind]
    heartbeat = _Heartbeat(job_id)
    try:
        result = fn(job, report) or {}
        job = db.session.get(Job, job_id)
        job.result = result
        job.status = JobStatus.SUCCEEDED if not result.get("failed") else JobStatus.FAILED
        job.message = result.get("message", "已完成")[:300]
    except Exception as exc:  # a job failure must be visible on its page, not lost in a worker log
        db.session.rollback()
        # the page says what happened in Chinese; the database's text (its SQL, a DETAIL naming an identity number
        # or a code) and the traceback go to the log only
        log.exception("job %s (%s) failed", job_id, kind)
        job = db.session.get(Job, job_id)
        job.status = JobStatus.FAILED
        job.message = f"任务出错：{failure_message(exc, job_id)}"[:300]
        job.result = {"error": type(exc).__name__}
    finally:
        heartbeat.stop()
    job.finished_at = utcnow()
    audit.record("job.finished", job, actor=None, bureau_id=job.bureau_id,
                 summary=f"后台任务结束：{job.title}（{job.status.label}）")
    db.session.commit()
    _discard_upload(job)


class _Heartbeat:
    """While a job runs, its row's ``heartbeat_at`` is moved every ``HEARTBEAT_EVERY`` on a connection of its own
    (a job may run long between two progress reports — a training — or hold its session's transaction open): the
    reaper fails a running job by its last heartbeat, so a job whose worker died is found within ``LOST_AFTER``,
    and a job still at work is never failed for being long."""

    def __init__(self, job_id: int) -> None:
        self._job_id, self._engine, self._stopped = job_id, db.engine, threading.Event()
        threading.Thread(target=self._beat, name=f"job-{job_id}-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        while not self._stopped.wait(HEARTBEAT_EVERY.total_seconds()):
            try:
                with self._engine.begin() as connection:
                    # only while running: a beat that waited for the job's own lock on its row changes nothing after
                    connection.execute(Job.__table__.update().where(
                        Job.id == self._job_id, Job.status == JobStatus.RUNNING).values(heartbeat_at=utcnow()))
            except Exception:  # a missed beat is not the job's failure; enough of them and the reaper decides
                log.warning("job %s: heartbeat not recorded", self._job_id, exc_info=True)

    def stop(self) -> None:
        # not joined: a beat waiting for a row lock the job's session still holds would wait for us
        self._stopped.set()


def _discard_upload(job: Job) -> None:
    """The finished job's own upload goes from the file store (an import's workbook holds identity numbers and
    phones in clear; what was imported is kept, encrypted where it must be) — unless another job still to run
    was queued on the same file (the same workbook uploaded twice: the store keeps one row per content)."""
    key = _UPLOADS.get(job.kind)
    file_id = (job.params or {}).get(key) if key else None
    if not file_id:
        return
    # The file's row lock first: an upload of the same bytes (``files.store`` takes it to reuse the row) waits for
    # this to end, then finds the row gone and stores anew; a job queued on it before is seen below.
    if db.session.execute(sa.select(StoredFile.id).where(StoredFile.id == file_id).with_for_update()).first() is None:
        return
    waiting = db.session.execute(sa.select(Job).where(
        Job.id != job.id, Job.kind.in_(list(_UPLOADS)), Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))).scalars()
    if any((other.params or {}).get(_UPLOADS[other.kind]) == file_id for other in waiting):
        return
    try:
        record = db.session.get(StoredFile, file_id)
        if record is not None:
            files.discard(record)
        db.session.commit()
    except Exception:  # the job's outcome stands; the file stays until a later job on it ends
        db.session.rollback()
        log.exception("could not discard the upload of job %s", job.id)


# A running job whose heartbeat stopped has lost its worker (restarted, killed for memory): huey does not run it
# again and ``run_job`` runs only queued jobs, so it would show 运行中 for ever — and an import's workbook, identity
# numbers in clear, would stay in the file store. Six beats missed; the reaper looks every ten minutes.
HEARTBEAT_EVERY = timedelta(minutes=5)
LOST_AFTER = timedelta(minutes=30)
INTERRUPTED = "任务中断（工作进程重启或退出），请重新提交"
# A job still queued this long after it was submitted lost its task with the queue.
STALE_AFTER = timedelta(hours=6)
NEVER_STARTED = "任务排队超时仍未执行（任务队列可能已重启），请重新提交"


def reap_interrupted(now: datetime | None = None) -> int:
    """Fail every running job whose heartbeat is older than ``LOST_AFTER`` (its worker is gone) — and every job
    still queued ``STALE_AFTER`` after it was submitted (its task lost with the queue, a Redis restart: no worker
    will ever claim it) — with its kind's cleanup (its upload discarded); returns how many. Every ten minutes in
    the worker."""
    now = now or utcnow()
    # a row from before heartbeats were kept counts from its start
    stale = db.session.execute(sa.select(Job.id, Job.status).where(sa.or_(
        sa.and_(Job.status == JobStatus.RUNNING, sa.func.coalesce(Job.heartbeat_at, Job.started_at) < now - LOST_AFTER),
        sa.and_(Job.status == JobStatus.QUEUED, Job.created_at < now - STALE_AFTER))).order_by(Job.id)).all()
    reaped = 0
    for job_id, status in stale:
        reason = INTERRUPTED if status == JobStatus.RUNNING else NEVER_STARTED
        # Compare-and-set: a job that ends (or is claimed) meanwhile keeps its own course, and of two reapers one
        # records it.
        if not db.session.execute(sa.update(Job).where(Job.id == job_id, Job.status == status)
                                  .values(status=JobStatus.FAILED, message=reason, finished_at=utcnow())
                                  .execution_options(synchronize_session=False)).rowcount:
            continue
        job = db.session.get(Job, job_id)
        db.session.refresh(job)
        audit.record("job.finished", job, actor=None, bureau_id=job.bureau_id,
                     summary=f"后台任务结束：{job.title}（{job.status.label}：{reason}）")
        db.session.commit()
        _discard_upload(job)
        reaped += 1
    return reaped


periodic("evalhub.jobs_reaper", minute="*/10")(reap_interrupted)
