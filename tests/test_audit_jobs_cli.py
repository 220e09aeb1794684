"""Audit of the job and CLI paths, and of time: every rule holds when the worker or the command line acts, not
only when a person clicks; a job acts only on rows still in the state it was written for; bad input on the
command line ends with a Chinese message and writes nothing."""
from __future__ import annotations

import io
import os
import re
import tarfile
import time
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from evalhub.core.backup import BackupError, restore
from evalhub.core.models import Notification
from evalhub.core.timeutil import beijing_today, utcnow
from evalhub.extensions import db
from evalhub.procurement import services as P
from evalhub.procurement import workflow
from evalhub.procurement.models import EngagementState as S, ProcurementMethod as M
from tests import factories


def _inbox(user) -> list[str]:
    return list(db.session.execute(sa.select(Notification.title).where(Notification.user_id == user.id)).scalars())


# --- backup / restore --------------------------------------------------------------------------------

def test_restore_command_refuses_a_truncated_archive_in_chinese_without_a_traceback(world, app, tmp_path):
    """Rule: bad input gets a clear Chinese message, never a traceback (DESIGN.md; the restore command's own
    promise: "all or nothing", a BackupError ends the command with status 1). An archive cut short — a copy
    interrupted, a disk filled while backing up — is the commonest bad backup an operator meets.

    Defect: ``restore`` wraps only ``tarfile.open``; reading the members of a truncated gzip raises
    ``EOFError`` ("Compressed file ended before the end-of-stream marker was reached"), which is not a
    BackupError: the service lets it out (a traceback for any other caller) and on the command line click turns
    it into a bare "Aborted!" — the operator is not told the archive is damaged."""
    factories.firm(world.bz)
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["evalhub", "backup", "--out", str(tmp_path / "good.tar.gz")])
    assert result.exit_code == 0, result.output
    data = (tmp_path / "good.tar.gz").read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) * 2 // 3])

    result = runner.invoke(args=["evalhub", "restore", str(truncated)])
    assert result.exit_code == 1
    assert "Aborted" not in result.output and re.search(r"[\u4e00-\u9fff]", result.output), (
        f"the operator read only {result.output!r}")

    with pytest.raises(BackupError):  # the service itself: a Chinese refusal, not EOFError
        restore(truncated)


# --- jobs acting on rows whose state changed -----------------------------------------------------------

def test_contract_ready_job_does_not_announce_a_contract_for_a_cancelled_engagement(world):
    """Rule: the hourly job tells the bureau and the winner, once, that the challenge period ended with no open
    challenge so the contract may be signed (政府采购法 第五十二条; procurement/services.py
    ``announce_contracts_ready``); a job must not act on rows whose state changed since — a 终止 (cancelled)
    engagement will never be contracted (the state machine refuses ``sign_contract`` on it).

    Defect: cancelling an engagement after the award leaves the result notice standing, and the job checks only
    the notice (not revoked, no contract yet, period over) — so the winner and the bureau are told
    "可以签订合同" for an engagement the bureau has terminated."""
    p = factories.single_source(world)
    e = p.engagement
    db.session.flush()
    workflow.perform(e, "cancel", world.bz_admin, note="项目资金调整，本年度不再开展评价")
    assert e.state == S.CANCELLED
    factories.past_challenge_period(p)
    before = _inbox(world.firm_user)

    announced = P.announce_contracts_ready()

    told = [t for t in _inbox(world.firm_user) if t not in before]
    assert announced == 0 and not told, f"job announced {announced} contract(s) for a cancelled engagement: {told}"


# --- reminders ---------------------------------------------------------------------------------------

def _past_due(e, panel, days: int = 2) -> None:
    """Fast-forward: the rectification deadline of this return passed ``days`` days ago."""
    panel.resubmit_due = utcnow() - timedelta(days=days)
    db.session.flush()
    workflow.refresh_due(e)
    db.session.flush()
    assert e.due_on < beijing_today()


def test_overdue_reminder_is_sent_again_for_a_second_returned_round(world):
    """Rule: "Reminders before and after each due date (idempotent)" (review/services.py ``send_reminders``;
    docs/rules.md: the firm resubmits within ``review.resubmit_days``, and every return sets a rectification
    deadline). Idempotent means once per due date, not once per engagement life.

    Defect: the firm's overdue reminder is de-duplicated on ``overdue-{engagement}-{state}``. A report returned a
    second time is in the same state (报告退回整改) with a new deadline; when that second deadline passes the
    job finds the key already used and the firm is never told it is late again (expected 2 overdue reminders
    over the two rounds, got 1)."""
    staff = world.bz_staff
    e = factories.in_fieldwork(world)
    factories.submit_report(e)
    panel = factories.returned(e, staff)
    assert e.state == S.REPORT_RETURNED
    _past_due(e, panel)
    from evalhub.review.services import send_reminders

    send_reminders()
    first = [t for t in _inbox(world.firm_user) if "逾期" in t]
    assert len(first) == 1, first

    factories.submit_report(e)                                   # the rectified report
    panel = factories.returned(e, staff)                                  # returned again, with a new deadline
    assert e.state == S.REPORT_RETURNED
    _past_due(e, panel, days=1)                                  # ... which has passed too
    send_reminders()

    late = [t for t in _inbox(world.firm_user) if "逾期" in t]
    assert len(late) == 2, f"overdue reminders over two returned rounds: {late}"


def test_expiring_an_unanswered_invitation_is_audited_like_a_decline(world):
    """Rule: every state change is audited, whoever makes it — "every rule lives in a service and holds on every
    path — web, API, CLI, jobs" (DESIGN.md); an expert's decline writes ``panel.invitation_declined``, a
    bureau's withdrawal ``panel.invitation_withdrawn``. The hourly job (review/services.py
    ``expire_invitations``) takes the seat from an expert who did not answer in time (rules.md: "an answer
    after the deadline is refused … the hourly job expires the invitation") — the same loss of the seat.

    Defect: the job moves the invitation 已邀请 → 已过期 with ``_move`` and writes no audit event of its own (the
    replacement draw it announces, when it announces one, is the only trace). An auditor reading the log
    cannot see which expert lost which seat, when, or why; expected an event naming the invitation's expiry."""
    from evalhub.core.models import AuditEvent
    from evalhub.review.models import InvitationStatus
    from evalhub.review.services import send_reminders

    from evalhub.review import services as R

    e = factories.contracted(world)
    factories.submit_plan(e)
    factories.panel_experts(e, 6)                    # a pool larger than the panel: a replacement can be drawn
    panel = factories.witnessed(R.form_panel(e, world.bz_staff, size=3))
    invitation = next(i for i in panel.invitations if i.status == InvitationStatus.INVITED)
    invitation.respond_by = utcnow() - timedelta(hours=1)
    db.session.flush()
    last = db.session.execute(sa.select(sa.func.max(AuditEvent.id))).scalar_one()

    counts = send_reminders()

    assert counts["expired"] == 1 and invitation.status == InvitationStatus.EXPIRED
    new = db.session.execute(sa.select(AuditEvent.action, AuditEvent.summary).where(AuditEvent.id > last)).all()
    assert any("invitation" in action or "expire" in action for action, _summary in new), (
        f"the expiry wrote only: {new}")


# --- the command line: bad input ends with a Chinese message and writes nothing ------------------------

def test_backup_command_to_a_missing_folder_says_so_in_chinese(world, app, tmp_path):
    """Rule: bad input gets a clear Chinese message, never a traceback (DESIGN.md; cli.py ``_backup_step``: "a
    BackupError ends the command with status 1"). A mistyped ``--out`` folder is the most ordinary mistake
    of the IT staff the backup command is written for (backup.py: "the one a bureau's IT staff can run").

    Defect: ``backup`` opens ``<out>.partial`` without checking that its folder exists; ``FileNotFoundError``
    is not a BackupError, so the command ends with an uncaught exception and prints nothing (actual output
    '', exception FileNotFoundError) instead of a Chinese refusal."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["evalhub", "backup", "--out", str(tmp_path / "no-such-folder" / "evalhub.tar.gz")])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}")
    assert re.search(r"[\u4e00-\u9fff]", result.output), result.output


def test_audit_checkpoint_command_with_a_bad_out_path_records_nothing_and_says_why(world, app, tmp_path):
    """Rule: a CLI command with bad input exits non-zero with a Chinese message and writes nothing (cli.py
    ``_committed``: "commit what it wrote, or — when it refuses — write nothing"). The checkpoint file is
    the whole point of the command ("请保存在本系统之外": the anchor kept outside the database).

    Defect: ``audit_checkpoint`` commits the signed checkpoint (and its ``audit.checkpoint`` event) first, then
    writes the file; a ``--out`` in a folder that does not exist raises an uncaught ``FileNotFoundError``. The
    operator gets a traceback and no file, while the database records a checkpoint that was never handed
    out (expected: a Chinese refusal, no new checkpoint row; actual: traceback, 1 checkpoint committed)."""
    from evalhub.core.models import AuditCheckpoint

    runner = app.test_cli_runner()
    result = runner.invoke(args=["evalhub", "audit", "checkpoint", "--out", str(tmp_path / "no-such-folder" / "cp.json")])
    db.session.rollback()
    made = db.session.execute(sa.select(sa.func.count(AuditCheckpoint.id))).scalar_one()
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}; checkpoints committed: {made}")
    assert re.search(r"[\u4e00-\u9fff]", result.output), result.output
    assert made == 0


def test_one_panel_without_a_replacement_does_not_stop_every_reminder(world):
    """Rule: the hourly reminders job (review/services.py ``send_reminders``, registered as
    ``evalhub.reminders``; docs/rules.md "Days for an expert to answer … the hourly job expires the invitation")
    sends every firm its overdue notice, every expert their review reminder, and replaces experts who never
    answered. When a replacement cannot be drawn the platform records it and carries on — the reveal path does
    exactly that (``_seat_replacements`` catches the DomainError and audits ``panel.replacement_failed``).

    Defect: ``expire_invitations`` catches only Conflict around the move; ``replace_member`` raising
    DomainError ("符合条件的候选不足") escapes, the periodic task rolls back and fails — and since the invitation
    is still 已邀请 next hour, it fails again every hour: no firm, expert or e-mail reminder goes out anywhere in
    the system again until someone notices. Expected: the late invitation expired, the failed replacement
    recorded, the other engagement's firm told it is overdue; actual: DomainError from the job."""
    from evalhub.core.errors import DomainError
    from evalhub.review.models import InvitationStatus
    from evalhub.review.services import send_reminders

    late = factories.contracted(world)                 # plan due 2025-04-01: overdue, its firm is to be told
    assert late.due_on < beijing_today()
    e = factories.contracted(world, firm=world.other_firm, bureau_key="kz", unit="克州农业农村局")
    factories.submit_plan(e, world.other_firm_user)
    panel = factories.own_panel(e, world.kz_staff)     # the panel's whole pool drawn: no one left to replace
    invitation = next(i for i in panel.invitations if i.status == InvitationStatus.INVITED)
    invitation.respond_by = utcnow() - timedelta(hours=1)
    db.session.flush()

    try:
        counts = send_reminders()
    except DomainError as exc:
        raise AssertionError(f"the hourly reminders job failed as a whole: {exc.message}") from exc
    assert counts["expired"] == 1
    assert [t for t in _inbox(world.firm_user) if "逾期" in t], "the overdue firm was not told"


@pytest.mark.skipif(not os.environ.get("EVALHUB_TEST_DATABASE_URL"), reason="concurrency is tested against PostgreSQL")
def test_two_workers_running_the_contract_ready_job_tell_the_winner_once(app, world):
    """Rule: "two people clicking at once get one result" holds for two workers too; the job itself promises to
    "Tell the bureau and the winner, once, that the period ended with no open challenge" (procurement/services.py
    ``announce_contract_ready``). Two consumers (or a consumer and a re-queued periodic run after a restart)
    run the same hourly task at the same minute.

    Defect: the job reads ``contract_ready_at IS NULL``, then sets it in Python and emits ``contract_ready`` with no
    dedupe key — no compare-and-set, no lock — so both workers pass the check and the winner (and every bureau
    user) gets "可以签订合同" twice (expected 1 notice, actual 2)."""
    from evalhub.procurement.models import Procurement

    p = factories.single_source(world)
    e = p.engagement
    factories.past_challenge_period(p)
    db.session.commit()
    procurement_id, firm_user_id = p.id, world.firm_user.id

    def worker():
        notice = db.session.get(Procurement, procurement_id).notice  # the row as this worker read it
        assert notice.contract_ready_at is None
        time.sleep(0.2)                                                 # the other worker reads it too
        P.announce_contracts_ready()

    outcomes = factories.at_once(app, worker, worker)
    db.session.expire_all()
    told = db.session.execute(sa.select(Notification.title).where(
        Notification.user_id == firm_user_id, Notification.title.contains("可以签订合同"))).scalars().all()
    assert len(told) == 1, f"outcomes {outcomes}; the winner was told {len(told)} times: {told}"
