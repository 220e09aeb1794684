"""Running it for real: backup → restore round trip into an empty database, /healthz, JSON request logs."""
from __future__ import annotations

import io
import json
import logging
import tarfile

import sqlalchemy as sa
import pytest
from flask_migrate import stamp, upgrade

from evalhub import create_app
from evalhub.config import PROJECT_ROOT
from evalhub.core import audit, files
from evalhub.core.backup import BackupError, backup, restore
from evalhub.core.models import StoredFile
from evalhub.extensions import db
from tests import factories


def _docx(text: str) -> bytes:
    from docx import Document

    document = Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.fixture()
def stamped(app_ctx):
    """The suite builds its schema with create_all; a real installation records its Alembic revision, which a
    backup carries. Stamp the test database for the test, and take the stamp away afterwards."""
    stamp(directory=str(PROJECT_ROOT / "migrations"))
    yield
    db.session.rollback()
    db.session.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()


def _digests(path) -> dict[str, str]:
    with tarfile.open(path, "r:gz") as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())
    return {name: entry["sha256"] for name, entry in manifest["tables"].items()}


def test_backup_restores_into_an_empty_database_with_every_row_and_file(world, stamped, app, empty_database_url, tmp_path):
    firm = factories.firm(world.bz)
    engagement = factories.engagement(world)
    stored = files.store("评价报告.docx", _docx("巴州统计局 2025 年项目支出绩效评价报告"), allowed=("docx",), actor=world.bz_admin)
    db.session.commit()
    original = files.read(stored)
    counts = {t.name: db.session.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
              for t in db.metadata.sorted_tables}
    assert counts["firm"] and counts["engagement"] and counts["audit_event"] and counts["stored_file"]
    assert firm.id and engagement.id

    (tmp_path / "backups").mkdir()
    archive = backup(tmp_path / "backups")
    assert archive.path.parent == tmp_path / "backups" and archive.path.exists() and archive.files == 1

    # A brand-new installation: an empty database, migrated, and an empty file store.
    target = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True, "SECRET_KEY": "test-secret",
                         "FIELD_KEY": "test-field-key", "FILE_STORE": tmp_path / "restored-files",
                         "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
    try:
        with target.app_context():
            upgrade(directory=str(PROJECT_ROOT / "migrations"))
            summary = restore(archive.path)
            assert summary.tables == {k: v for k, v in counts.items() if k in summary.tables}
            assert summary.files == 1
            restored = db.session.execute(sa.select(StoredFile)).scalar_one()
            assert files.read(restored) == original
            assert audit.verify_chain().ok  # the hash chain survives the trip
            # Every table round-trips to the same bytes: back the restored database up again and compare.
            again = backup(tmp_path / "again.tar.gz")
            assert _digests(again.path) == _digests(archive.path)
            # New rows after a restore get fresh ids (PostgreSQL's sequences were moved past the restored ids).
            top = db.session.execute(sa.text("SELECT MAX(id) FROM audit_event")).scalar_one()
            audit.record("test.after_restore", None, summary="恢复后的第一条记录")
            db.session.commit()
            assert db.session.execute(sa.text("SELECT MAX(id) FROM audit_event")).scalar_one() == top + 1
            assert audit.verify_chain().ok
            # A second restore into the now non-empty database is refused and changes nothing.
            try:
                restore(archive.path)
            except BackupError as exc:
                assert "不是空的" in exc.message
            else:
                raise AssertionError("restore into a non-empty database was accepted")
            db.session.remove()
            db.engine.dispose()
    finally:
        db.session.remove()


def test_restore_refuses_a_tampered_archive_and_writes_nothing(world, stamped, app, empty_database_url, tmp_path):
    factories.firm(world.bz)
    db.session.commit()
    good = backup(tmp_path / "good.tar.gz").path
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(good, "r:gz") as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "tables/firm.jsonl":
                data = data.replace("巴州".encode(), "克州".encode(), 1) or data + b" "
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    target = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True, "SECRET_KEY": "x",
                         "FILE_STORE": tmp_path / "files2"})
    with target.app_context():
        upgrade(directory=str(PROJECT_ROOT / "migrations"))
        try:
            restore(tampered)
        except BackupError as exc:
            assert "校验值不符" in exc.message
        else:
            raise AssertionError("a tampered archive was restored")
        assert db.session.execute(sa.text("SELECT COUNT(*) FROM bureau")).scalar_one() == 0
        db.session.remove()
        db.engine.dispose()


def test_backup_and_restore_commands(world, app, tmp_path):
    factories.firm(world.bz)
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["evalhub", "backup", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "已备份" in result.output
    made = list(tmp_path.glob("evalhub-backup-*.tar.gz"))
    assert len(made) == 1
    # This database is not empty: the restore command refuses, with the reason, and exit code 1.
    result = runner.invoke(args=["evalhub", "restore", str(made[0])])
    assert result.exit_code == 1
    assert "不是空的" in result.output


def test_healthz_reports_database_and_queue(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "queue": "ok"}}


def test_healthz_answers_503_when_the_database_is_unreachable(client, monkeypatch):
    from evalhub.core import ops

    def broken(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(ops.db.session, "execute", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("error")


def test_json_request_log_has_one_line_per_request(app, world, tmp_path, capsys):
    logged = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "TESTING": True,
                         "SECRET_KEY": "test-secret", "FIELD_KEY": "test-field-key", "WTF_CSRF_ENABLED": False,
                         "FILE_STORE": tmp_path, "LOG_JSON": True, "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
    records: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.msg)

    handler = Collect()
    logging.getLogger("evalhub.request").addHandler(handler)
    try:
        client = logged.test_client()
        client.post("/login", data={"username": world.bz_admin.username, "password": factories.PASSWORD})
        client.get(f"/bureaus/{world.bz.id}")
        token = client.post("/api/v1/tokens", json={"username": world.lt_admin.username,
                                                    "password": factories.PASSWORD}).json["token"]
        # signed in as 巴州's admin in this browser, calling the API with 轮台's token: the call is 轮台's
        client.get("/api/v1/engagements", headers={"Authorization": f"Bearer {token}"})
    finally:
        logging.getLogger("evalhub.request").removeHandler(handler)
    assert [r["method"] for r in records] == ["POST", "GET", "POST", "GET"]
    assert records[-1]["user_id"] == world.lt_admin.id and records[-1]["route"] == "/api/v1/engagements"
    last = records[1]
    assert last["user_id"] == world.bz_admin.id
    assert last["route"] == "/bureaus/<int:bureau_id>"  # the rule, not the raw path
    assert isinstance(last["duration_ms"], float) and last["status"] in (200, 302, 404)
    assert set(last) >= {"time", "request_id", "user_id", "method", "route", "status", "duration_ms"}
