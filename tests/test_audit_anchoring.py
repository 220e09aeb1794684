"""Audit anchoring (issue 11): checkpoints of the chain's head kept outside the database, checked by
`audit verify --checkpoint`, and draws checked against the audit event that recorded them.

Each attack from the issue is played by someone who can write to the database (and knows the hash
recipe, which is in the source): the first two pass plain `audit verify` — that is why the checkpoint
must leave the database — and are caught by the checkpoint file; the third is caught by `draws verify`.
"""
from __future__ import annotations

import json
import logging
import re

import pytest
import sqlalchemy as sa

import evalhub.core.anchoring  # noqa: F401  (registers the daily task before the app's queue is configured)
import evalhub.core.audit_views  # noqa: F401  (registers the checkpoint pages on the core blueprint)
from evalhub.core import anchoring, audit, draws, jobs
from evalhub.core.models import AuditCheckpoint, AuditEvent
from evalhub.extensions import db
from tests import factories


# --- helpers ---------------------------------------------------------------------------------------

def _events(n: int, actor=None) -> None:
    for i in range(n):
        audit.record("test.event", summary=f"测试事件 {i}", actor=actor, payload={"i": i})
    db.session.commit()


def _chain() -> list[AuditEvent]:
    return list(db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id)).scalars())


def _rewrite(event_id: int, **changes) -> None:
    """The attack: change one event, then recompute every later link so the chain verifies again."""
    prev = audit.GENESIS_HASH
    touched = False
    for event in _chain():
        if event.id == event_id:
            for key, value in changes.items():
                setattr(event, key, value)
            touched = True
        if touched:
            event.prev_hash = prev
            event.hash = audit.event_digest(event)
            db.session.flush()
        prev = event.hash
    db.session.commit()


def _drop_stored_checkpoints() -> None:
    """The same writer removes the platform's own copies of the checkpoints: only copies outside remain."""
    db.session.execute(sa.delete(AuditCheckpoint))
    db.session.commit()


def _checkpoint_file(tmp_path, name="cp.json") -> str:
    checkpoint, created = anchoring.create_checkpoint(source="cli")
    assert created
    db.session.commit()
    path = tmp_path / name
    path.write_text(anchoring.dumps(anchoring.document(checkpoint)), encoding="utf-8")
    return str(path)


def _verify(app, *args):
    return app.test_cli_runner().invoke(args=["evalhub", "audit", "verify", *args])


# --- the three attacks -----------------------------------------------------------------------------

def test_a_rewritten_event_with_recomputed_hashes_passes_plain_verify_but_not_the_checkpoint(app, world, tmp_path):
    _events(40)
    checkpoint_file = _checkpoint_file(tmp_path)
    _events(5)  # life goes on after the checkpoint
    target = _chain()[20]
    _rewrite(target.id, summary="改写后的摘要")

    # The stored checkpoint is signed: a writer without the key cannot make it match the rewrite.
    result = _verify(app)
    assert result.exit_code == 1 and "库内检查点" in result.output, result.output

    # Without the stored copies, the chain in the database looks perfect…
    _drop_stored_checkpoints()
    assert audit.verify_chain().ok
    result = _verify(app)
    assert result.exit_code == 0 and "审计链完整" in result.output, result.output

    # …but not against the file an upper bureau kept.
    result = _verify(app, "--checkpoint", checkpoint_file)
    assert result.exit_code == 1, result.output
    report = anchoring.verify_all([anchoring.parse(open(checkpoint_file, encoding="utf-8").read(), "cp.json")])
    assert not report.ok
    # The first event that shows it is an anchor at or after the rewritten one, and the message names the
    # stretch in which the rewrite happened.
    assert report.broken_id >= target.id
    assert f"#{report.broken_id} 及之前" in report.problem and "cp.json" in report.problem
    lower = int(re.search(r"事件 #(\d+) 之后、#\d+ 及之前", report.problem).group(1))
    assert lower < target.id <= report.broken_id
    assert report.broken_id - lower <= 45 // anchoring.ANCHOR_COUNT + 2  # the anchors narrow it down
    assert f"事件 #{report.broken_id}" in result.output


def test_deleting_the_last_events_passes_plain_verify_but_not_the_checkpoint(app, world, tmp_path):
    _events(10)
    checkpoint_file = _checkpoint_file(tmp_path)
    document = json.loads(open(checkpoint_file, encoding="utf-8").read())
    last_id = document["last_event_id"]
    # Delete the newest events: the checkpoint's own event and a few before it.
    db.session.execute(sa.delete(AuditEvent).where(AuditEvent.id > last_id - 3))
    db.session.commit()
    _drop_stored_checkpoints()

    assert audit.verify_chain().ok
    assert _verify(app).exit_code == 0

    result = _verify(app, "--checkpoint", checkpoint_file)
    assert result.exit_code == 1
    assert "已不存在" in result.output and f"现存最后一个事件为 #{last_id - 3}" in result.output
    assert f"事件 #{last_id - 3} 之后的事件被删除" in result.output


def test_deleting_an_event_in_the_middle_and_relinking_is_caught(app, world, tmp_path):
    _events(20)
    checkpoint_file = _checkpoint_file(tmp_path)
    victim = _chain()[8]
    db.session.delete(victim)
    db.session.commit()
    following = db.session.execute(sa.select(AuditEvent).where(AuditEvent.id > victim.id).order_by(AuditEvent.id)).scalars().first()
    _rewrite(following.id)  # relink from the gap on
    _drop_stored_checkpoints()
    assert audit.verify_chain().ok

    result = _verify(app, "--checkpoint", checkpoint_file)
    assert result.exit_code == 1
    assert "被删除" in result.output or "被改写或删除" in result.output


def test_a_replaced_seed_with_a_matching_result_fails_draws_verify(app, world):
    record = factories.witnessed_draw("抽取专家", range(1, 30), 3, {5: ["回避：同一单位"]}, actor=world.bz_admin, bureau_id=world.bz.id)
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["evalhub", "draws", "verify", str(record.id)])
    assert result.exit_code == 0 and "一致" in result.output, result.output

    # The attack: a seed chosen to draw a friend, and the matching result, written into the draw row.
    eligible = [i for i in record.candidate_ids if i != 5]
    forged_seed = next(f"forged{n}" for n in range(10000) if 7 in draws.rank(f"forged{n}", eligible)[:3])
    record.seed = forged_seed
    record.result_ids = draws.rank(forged_seed, eligible)[:3]
    db.session.commit()

    check = draws.verify(record)
    assert check.rerun_ok  # re-running alone (the old check) is satisfied…
    assert not check.ok  # …the audit event written at the time is not
    assert any("种子" in m for m in check.mismatches) and any("抽取结果" in m for m in check.mismatches)
    result = runner.invoke(args=["evalhub", "draws", "verify", str(record.id)])
    assert result.exit_code == 1 and "种子与审计事件" in result.output, result.output


@pytest.mark.parametrize("change", ["candidates", "exclusions", "algorithm"])
def test_draws_verify_compares_candidates_exclusions_and_algorithm(world, change):
    record = factories.witnessed_draw("抽取机构", range(1, 12), 2, {3: ["信用等级 C"]}, actor=world.bz_admin)
    db.session.commit()
    if change == "candidates":  # slip an extra candidate in, keep the result
        record.candidate_ids = sorted(record.candidate_ids + [99])
        # 99 must not change the top 2 for the re-run to stay consistent: pick a result that matches.
        eligible = [i for i in record.candidate_ids if i != 3]
        record.result_ids = draws.rank(record.seed, eligible)[:2]
    elif change == "exclusions":
        record.exclusions = [{"id": 3, "reasons": ["另一个原因"]}]
    else:
        record.algorithm = "sha256-rank-v0"
    db.session.commit()
    check = draws.verify(record)
    assert not check.ok and check.mismatches
    label = {"candidates": "候选名单", "exclusions": "排除及原因", "algorithm": "算法"}[change]
    assert any(label in m for m in check.mismatches), check.mismatches


def test_draws_verify_notices_an_edited_audit_event(world):
    record = factories.witnessed_draw("抽取", range(1, 20), 2, actor=world.bz_admin)
    db.session.commit()
    event = audit.history("draw", record.id)[0]
    event.payload = {**event.payload, "seed": "forged"}
    record.seed = "forged"
    eligible = list(record.candidate_ids)
    record.result_ids = draws.rank("forged", eligible)[:2]
    db.session.commit()
    check = draws.verify(record)
    assert not check.ok and any("本身被改动过" in m for m in check.mismatches)


def test_draw_without_its_audit_event_fails(world):
    record = factories.witnessed_draw("抽取", range(1, 20), 2, actor=world.bz_admin)
    db.session.commit()
    db.session.execute(sa.delete(AuditEvent).where(AuditEvent.object_type == "draw"))
    db.session.commit()
    check = draws.verify(record)
    assert not check.ok and "找不到" in check.mismatches[0]


# --- the checkpoint itself -------------------------------------------------------------------------

def test_checkpoint_content_signature_log_and_audit_event(app, world, caplog):
    _events(3)
    head = _chain()[-1]
    count = len(_chain())
    with caplog.at_level(logging.INFO, logger="evalhub.audit"):
        checkpoint, created = anchoring.create_checkpoint(source="manual", actor=world.sysadmin)
    db.session.commit()
    assert created
    doc = anchoring.document(checkpoint)
    assert doc["format"] == anchoring.FORMAT
    assert doc["last_event_id"] == head.id and doc["head_hash"] == head.hash and doc["event_count"] == count
    assert doc["created_at"].endswith("Z") and doc["key_id"] == anchoring.key_id()
    assert len(doc["signature"]) == 64 and doc["anchors"] and all(i < head.id for i, _ in doc["anchors"])
    assert anchoring.parse(anchoring.dumps(doc)).signature_status() == "ok"

    # Written to the log: the line is itself a checkpoint that can be cut out and used.
    line = next(r.getMessage() for r in caplog.records if "审计链检查点" in r.getMessage())
    assert head.hash in line
    assert anchoring.parse(line).signature == doc["signature"]

    # And audited: the checkpoint event follows the head it notes.
    newest = _chain()[-1]
    assert newest.action == "audit.checkpoint" and newest.object_id == checkpoint.id
    assert newest.payload["head_hash"] == head.hash

    # Nothing new since: a second click hands back the same checkpoint.
    again, created = anchoring.create_checkpoint(source="manual", actor=world.sysadmin)
    assert not created and again.id == checkpoint.id
    assert anchoring.verify_all().ok


def test_checkpoint_cli_writes_a_file_that_verifies(app, world, tmp_path):
    _events(4)
    result = app.test_cli_runner().invoke(args=["evalhub", "audit", "checkpoint", "--out", str(tmp_path)])
    assert result.exit_code == 0 and "已生成检查点" in result.output, result.output
    files = list(tmp_path.glob("evalhub-audit-checkpoint-*Z-*.json"))
    assert len(files) == 1
    _events(2)
    result = _verify(app, "--checkpoint", str(files[0]))
    assert result.exit_code == 0 and "与 2 个检查点相符" in result.output, result.output  # the file and the stored row


def test_an_altered_or_foreign_checkpoint_file_is_refused(app, world, tmp_path):
    _events(5)
    path = _checkpoint_file(tmp_path)
    doc = json.loads(open(path, encoding="utf-8").read())
    doc["head_hash"] = "f" * 64
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc), encoding="utf-8")
    result = _verify(app, "--checkpoint", str(forged))
    assert result.exit_code == 1 and "签名无效" in result.output
    result = _verify(app, "--checkpoint", str(forged), "--ignore-signature")
    assert result.exit_code == 1 and "哈希与检查点文件 forged.json" in result.output

    app.config["AUDIT_CHECKPOINT_KEY"] = "another-key"
    try:
        result = _verify(app, "--checkpoint", path)
        assert result.exit_code == 1 and "另一签名密钥" in result.output
        result = _verify(app, "--checkpoint", path, "--ignore-signature")
        assert result.exit_code == 0, result.output
    finally:
        del app.config["AUDIT_CHECKPOINT_KEY"]

    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json", encoding="utf-8")
    result = _verify(app, "--checkpoint", str(garbage))
    assert result.exit_code == 2 and "不是有效的 JSON" in result.output


def test_a_stored_checkpoint_altered_to_match_is_noticed(app, world):
    _events(6)
    checkpoint, _ = anchoring.create_checkpoint(source="manual", actor=world.sysadmin)
    db.session.commit()
    target = _chain()[2]
    _rewrite(target.id, summary="改写")
    # The writer edits the stored checkpoint to the rewritten head, but cannot sign it.
    rewritten = db.session.execute(sa.select(AuditEvent.hash).where(AuditEvent.id == checkpoint.last_event_id)).scalar_one()
    checkpoint.head_hash = rewritten
    checkpoint.anchors = [[i, db.session.get(AuditEvent, i).hash] for i, _ in checkpoint.anchors]
    db.session.commit()
    report = anchoring.verify_all()
    assert not report.ok and any("签名无效" in p for p in report.problems)
    with pytest.raises(anchoring.ChainBroken):  # no new checkpoint over a chain that does not verify
        anchoring.create_checkpoint(source="manual", actor=world.sysadmin)


def test_no_checkpoint_over_a_broken_chain(app, world):
    _events(5)
    event = _chain()[1]
    event.summary = "直接改动，未重算"
    db.session.commit()
    with pytest.raises(anchoring.ChainBroken) as caught:
        anchoring.create_checkpoint(source="manual")
    assert f"事件 #{event.id}" in caught.value.message
    db.session.rollback()
    result = app.test_cli_runner().invoke(args=["evalhub", "audit", "checkpoint"])
    assert result.exit_code == 1 and "审计链断裂" in result.output
    assert db.session.execute(sa.select(sa.func.count(AuditCheckpoint.id))).scalar_one() == 0


def test_the_daily_checkpoint_is_a_registered_periodic_task_and_runs_once_a_day(app, world):
    assert any(name == "evalhub.audit_checkpoint" for name, _, _ in jobs._PERIODIC)
    _events(3)
    first = anchoring.daily_checkpoint()
    db.session.commit()
    assert first is not None and first.source == "daily"
    _events(2)
    again = anchoring.daily_checkpoint()
    db.session.commit()
    assert again.id == first.id
    assert db.session.execute(sa.select(sa.func.count(AuditCheckpoint.id))).scalar_one() == 1


def test_several_checkpoints_narrow_a_rewrite_down(app, world, tmp_path):
    _events(10)
    early = _checkpoint_file(tmp_path, "early.json")
    _events(10)
    late = _checkpoint_file(tmp_path, "late.json")
    early_last = json.loads(open(early, encoding="utf-8").read())["last_event_id"]
    target = next(e for e in _chain() if e.id > early_last + 3)
    _rewrite(target.id, summary="改写")
    _drop_stored_checkpoints()
    result = _verify(app, "--checkpoint", early, "--checkpoint", late)
    assert result.exit_code == 1
    assert "late.json" in result.output and "early.json" not in result.output.split("审计链与检查点不符")[1].split("记录的不符")[0]


# --- the page --------------------------------------------------------------------------------------

@pytest.mark.parametrize("username,status", [("sysadmin", 200), ("region_admin", 200), ("bz_admin", 200),
                                             ("krl_staff", 403), ("bz_staff", 403), ("firm_user", 403),
                                             ("expert_user", 403)])
def test_checkpoint_page_permissions(world, login, username, status):
    anchoring.create_checkpoint(source="manual", actor=world.sysadmin)
    checkpoint = db.session.execute(sa.select(AuditCheckpoint)).scalar_one()
    db.session.commit()
    client = login(getattr(world, username))
    page = client.get("/audit/checkpoints")
    assert page.status_code == status
    download = client.get(f"/audit/checkpoints/{checkpoint.id}.json")
    assert download.status_code == status
    create = client.post("/audit/checkpoints")
    assert create.status_code == (302 if status == 200 else 403)
    if status == 200:
        text = page.get_data(as_text=True)
        assert checkpoint.head_hash in text and "立即生成检查点" in text
        assert download.mimetype == "application/json"
        disposition = download.headers["Content-Disposition"]
        assert "attachment" in disposition and "evalhub-audit-checkpoint-" in disposition
        doc = json.loads(download.data)
        assert doc["head_hash"] == checkpoint.head_hash and doc["last_event_id"] == checkpoint.last_event_id
        assert anchoring.parse(download.data.decode("utf-8")).signature_status() == "ok"


def test_only_who_may_take_checkpoints_takes_one_whatever_the_path(world):
    """The rule is the service's (the page checked "audit.checkpoints"; ``create_checkpoint`` checked nothing): a
    county's administrator, a bureau's staff, a firm or an expert calling it is refused, with nothing written; the
    system (the CLI, the daily task: no actor) and an administrator who may still take one."""
    from evalhub.core.errors import PermissionDenied

    _events(2)
    events = len(_chain())
    for outsider in (world.krl_admin, world.bz_staff, world.firm_user, world.expert_user):
        with pytest.raises(PermissionDenied):
            anchoring.create_checkpoint(source="manual", actor=outsider)
    assert not db.session.new
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(AuditCheckpoint.id))).scalar_one() == 0
    assert len(_chain()) == events
    assert anchoring.create_checkpoint(source="manual", actor=world.bz_admin)[1]
    assert not anchoring.create_checkpoint(source="cli")[1]  # nothing new since: the same checkpoint


def test_an_admin_takes_a_checkpoint_from_the_page(world, login):
    client = login(world.bz_admin)
    response = client.post("/audit/checkpoints", follow_redirects=True)
    assert response.status_code == 200 and "已生成检查点" in response.get_data(as_text=True)
    checkpoint = db.session.execute(sa.select(AuditCheckpoint)).scalar_one()
    assert checkpoint.source == "manual" and checkpoint.created_by_id == world.bz_admin.id
    response = client.post("/audit/checkpoints", follow_redirects=True)
    assert "无需重复生成" in response.get_data(as_text=True)
    assert db.session.execute(sa.select(sa.func.count(AuditCheckpoint.id))).scalar_one() == 1
    assert client.get("/audit/checkpoints/999.json").status_code == 404


def test_the_draw_page_shows_a_mismatch_with_the_audit_event(world, login):
    record = factories.witnessed_draw("抽取", range(1, 20), 2, actor=world.bz_admin, bureau_id=world.bz.id)
    db.session.commit()
    record.seed = "forged"
    record.result_ids = draws.rank("forged", list(record.candidate_ids))[:2]
    db.session.commit()
    text = login(world.bz_admin).get(f"/draws/{record.id}").get_data(as_text=True)
    assert "与审计事件不一致" in text and "种子与审计事件" in text
