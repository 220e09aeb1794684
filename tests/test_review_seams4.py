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
