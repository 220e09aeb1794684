"""Backup and restore: the database and the file store together, in one archive.

Why a logical dump through SQLAlchemy rather than pg_dump alone: it works the same on SQLite and PostgreSQL
(so the round trip is tested on both in the suite), it needs no client binaries on the app server, and it
carries the stored files with it. For a very large installation, pg_dump of the database plus a copy of
the file store is the faster alternative (the README says how); this command is the one a bureau's IT staff
can run and restore without a DBA.

Consistency: all tables are read in one transaction (REPEATABLE READ on PostgreSQL: one snapshot). Stored
files are content-addressed and never changed, so every file a row of the snapshot names is on disk when it is
copied after the read — except one discarded meanwhile (``files.discard``: an import's workbook, which no row
names), which the manifest lists under ``discarded`` and restore leaves out.

The archive (``.tar.gz``):
- ``manifest.json`` — format, time, Alembic revision, per table the row count and the sha256 of its member;
- ``tables/<table>.jsonl`` — one JSON object per row, values tagged where JSON has no type
  (``{"$dt": …}``, ``{"$d": …}``, ``{"$dec": …}``, ``{"$b64": …}``);
- ``files/<sha256>`` — every stored file.

Restore goes into an empty database migrated to the same revision (``flask db upgrade`` first), checks every
member's hash and every file's sha256, inserts in dependency order (foreign keys that point at a table not yet
loaded, or at their own table, are filled in afterwards), resets PostgreSQL's id sequences, and commits only
when everything is in.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from evalhub.core import files, summaries
from evalhub.core.errors import DomainError
from evalhub.core.models import StoredFile
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db

FORMAT = "evalhub-backup/1"
BATCH = 2000


class BackupError(DomainError):
    """A backup that cannot be restored here, said plainly."""


@dataclass
class Summary:
    path: Path | None = None
    revision: str | None = None
    tables: dict[str, int] = field(default_factory=dict)
    files: int = 0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


# --- values ----------------------------------------------------------------------------------------

def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decoder(column: sa.Column) -> Callable[[Any], Any]:
    type_ = column.type
    if isinstance(type_, sa.JSON):
        return lambda v: v  # JSON columns hold JSON as it was
    if isinstance(type_, sa.Enum) and type_.enum_class is not None:
        members = {m.value: m for m in type_.enum_class}
        return lambda v: None if v is None else members[v]

    def decode(v: Any) -> Any:
        if isinstance(v, dict) and len(v) == 1:
            (tag, raw), = v.items()
            if tag == "$dt":
                return datetime.fromisoformat(raw)
            if tag == "$d":
                return date.fromisoformat(raw)
            if tag == "$dec":
                return Decimal(raw)
            if tag == "$b64":
                return base64.b64decode(raw)
        return v

    return decode


def _tables() -> list[sa.Table]:
    return [t for t in db.metadata.sorted_tables if t.name != "alembic_version"]


def _revision() -> str | None:
    inspector = sa.inspect(db.engine)
    if not inspector.has_table("alembic_version"):
        return None
    return db.session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


# --- backup ----------------------------------------------------------------------------------------

def backup(destination: Path, progress: Callable[[str], None] | None = None) -> Summary:
    """Write the archive to ``destination`` (a file name, or a folder to put a dated file in)."""
    destination = Path(destination)
    if destination.is_dir():
        destination = destination / f"evalhub-backup-{utcnow():%Y%m%dT%H%M%SZ}.tar.gz"
    if not destination.parent.is_dir():
        raise BackupError(f"保存备份的目录 {destination.parent} 不存在：请先建好目录，或换一个位置。")
    summary = Summary(path=destination)
    db.session.rollback()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    summary.revision = _revision()
    manifest: dict[str, Any] = {"format": FORMAT, "created_at": utcnow().isoformat() + "Z",
                                "revision": summary.revision, "dialect": db.engine.dialect.name,
                                "tables": {}, "files": 0}
    partial = destination.with_name(destination.name + ".partial")
    try:
        _write(partial, manifest, summary, progress)
    except OSError as exc:  # a full disk, a folder not writable: a refusal, not a traceback
        raise BackupError(f"无法写入备份文件 {destination}：{exc.strerror or exc}。") from exc
    finally:
        partial.unlink(missing_ok=True)  # moved into place when complete; an unfinished one is not left behind
    return summary


def _write(partial: Path, manifest: dict[str, Any], summary: Summary, progress: Callable[[str], None] | None) -> None:
    with tarfile.open(partial, "w:gz") as archive:
        for table in _tables():
            count, digest, data = _dump_table(table)
            summary.tables[table.name] = count
            manifest["tables"][table.name] = {"rows": count, "sha256": digest}
            _add_bytes(archive, f"tables/{table.name}.jsonl", data)
            if progress:
                progress(f"{table.name}: {count}")
        paths = [(f.sha256, files.blob_path(f)) for f in
                 db.session.execute(sa.select(StoredFile).order_by(StoredFile.id)).scalars()]
        db.session.rollback()  # the snapshot ends here; the files it names are immutable
        missing = []
        for sha, path in paths:
            if not path.exists():
                missing.append(sha)
                continue
            archive.add(str(path), arcname=f"files/{sha}", recursive=False)
            summary.files += 1
        # A file discarded since the snapshot (an import's workbook, files.discard) is no loss: its row, which
        # nothing names, is left out on restore. Any other missing blob is.
        still = set(db.session.execute(sa.select(StoredFile.sha256).where(StoredFile.sha256.in_(missing))).scalars()) \
            if missing else set()
        db.session.rollback()
        discarded = [sha for sha in missing if sha not in still]
        missing = [sha for sha in missing if sha in still]
        if missing:
            raise BackupError(f"文件库中缺少 {len(missing)} 个文件（如 {missing[0][:12]}…），备份未完成：请先检查 FILE_STORE。")
        manifest["files"] = summary.files
        manifest["discarded"] = discarded
        _add_bytes(archive, "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
    os.replace(partial, summary.path)


def _dump_table(table: sa.Table) -> tuple[int, str, bytes]:
    buffer = io.BytesIO()
    names = [c.name for c in table.columns]
    order = list(table.primary_key.columns) or list(table.columns)
    count = 0
    result = db.session.execute(sa.select(table).order_by(*order).execution_options(yield_per=BATCH))
    for row in result:
        record = {name: _encode(value) for name, value in zip(names, row)}
        buffer.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        buffer.write(b"\n")
        count += 1
    data = buffer.getvalue()
    return count, hashlib.sha256(data).hexdigest(), data


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(utcnow().timestamp())
    archive.addfile(info, io.BytesIO(data))


# --- restore ---------------------------------------------------------------------------------------

def restore(source: Path, progress: Callable[[str], None] | None = None) -> Summary:
    """Load an archive into this (empty, migrated) database and file store; all or nothing."""
    source = Path(source)
    try:
        archive = tarfile.open(source, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"无法读取备份文件：{exc}") from exc
    with archive:
        manifest = _member_json(archive, "manifest.json")
        if manifest.get("format") != FORMAT:
            raise BackupError("这不是 evalhub 的备份文件（格式标识不符）。")
        revision = _revision()
        if manifest.get("revision") != revision:
            raise BackupError(f"备份的数据库版本为 {manifest.get('revision')}，本库为 {revision}：请先把本库迁移到同一版本"
                              "（flask db upgrade），或使用与备份同一版本的 evalhub。")
        tables = {t.name: t for t in _tables()}
        unknown = set(manifest["tables"]) - set(tables)
        if unknown:
            raise BackupError(f"备份中有本版本没有的表：{'、'.join(sorted(unknown))}。")
        for table in tables.values():
            if db.session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
                raise BackupError(f"目标数据库不是空的（表 {table.name} 已有数据）：只能恢复到新建并迁移好的空库。")
        summary = Summary(path=source, revision=revision)
        order = [t for t in _tables() if t.name in manifest["tables"]]
        position = {t.name: i for i, t in enumerate(order)}
        pending: list[tuple[sa.Table, dict, dict]] = []  # (table, primary key, deferred foreign keys)
        try:
            for table in order:
                data = _member(archive, f"tables/{table.name}.jsonl")
                expected = manifest["tables"][table.name]
                if hashlib.sha256(data).hexdigest() != expected["sha256"]:
                    raise BackupError(f"备份中表 {table.name} 的内容与清单的校验值不符：文件已损坏或被改动。")
                summary.tables[table.name] = _load_table(table, data, position, pending)
                if summary.tables[table.name] != expected["rows"]:
                    raise BackupError(f"表 {table.name} 应有 {expected['rows']} 行，实际读到 {summary.tables[table.name]} 行。")
                if progress:
                    progress(f"{table.name}: {summary.tables[table.name]}")
            for table, key, values in pending:
                db.session.execute(table.update().where(*[table.c[k] == v for k, v in key.items()]).values(**values))
            _reset_sequences(order)
            summary.files = _restore_files(archive, manifest)
            # the kept counts came with their tables, as they were: no recount (it would rewrite them, and take
            # its named lock, so the restored database would no longer back up to the same bytes)
            summaries.discard(db.session)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    return summary


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    try:
        member = archive.getmember(name)
        handle = archive.extractfile(member)
        if handle is None:
            raise BackupError(f"备份文件中的 {name} 不是普通文件。")
        return handle.read()
    except KeyError as exc:
        raise BackupError(f"备份文件不完整：缺少 {name}。") from exc
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:  # cut short or damaged while read
        raise BackupError(f"备份文件已损坏或不完整（读取 {name} 时出错：{exc}），请换用完整的备份。") from exc


def _member_json(archive: tarfile.TarFile, name: str) -> dict:
    try:
        return json.loads(_member(archive, name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"备份文件中的 {name} 无法解析。") from exc


def _load_table(table: sa.Table, data: bytes, position: dict[str, int], pending: list) -> int:
    decoders = {c.name: _decoder(c) for c in table.columns}
    # Foreign keys to a table loaded later (a cycle, e.g. firm ↔ user_account) or to the same table (a
    # bureau's parent) are inserted empty and filled in once every row is in.
    deferred = {fk.parent.name for fk in table.foreign_keys
                if fk.parent.nullable and position.get(fk.column.table.name, -1) >= position[table.name]}
    keys = [c.name for c in table.primary_key.columns]
    rows: list[dict] = []
    count = 0
    for line in data.splitlines():
        if not line:
            continue
        record = json.loads(line)
        row = {name: decoders[name](value) for name, value in record.items() if name in decoders}
        later = {name: row[name] for name in deferred if row.get(name) is not None}
        if later:
            pending.append((table, {k: row[k] for k in keys}, later))
            row.update({name: None for name in later})
        rows.append(row)
        count += 1
        if len(rows) >= BATCH:
            db.session.execute(table.insert(), rows)
            rows = []
    if rows:
        db.session.execute(table.insert(), rows)
    return count


def _reset_sequences(tables: list[sa.Table]) -> None:
    if db.engine.dialect.name != "postgresql":
        return  # SQLite continues after the largest rowid by itself
    for table in tables:
        columns = list(table.primary_key.columns)
        if len(columns) != 1 or not isinstance(columns[0].type, sa.Integer):
            continue
        name = columns[0].name
        db.session.execute(sa.text(
            f"SELECT setval(pg_get_serial_sequence(:table, :column), COALESCE((SELECT MAX({name}) FROM {table.name}), 0) + 1, false)"
        ), {"table": table.name, "column": name})


def _restore_files(archive: tarfile.TarFile, manifest: dict) -> int:
    count = 0
    discarded = set(manifest.get("discarded") or ())
    for record in db.session.execute(sa.select(StoredFile)).scalars().all():
        sha = record.sha256
        if sha in discarded:  # removed while the backup ran (files.discard): nothing names it
            db.session.delete(record)
            continue
        data = _member(archive, f"files/{sha}")
        if hashlib.sha256(data).hexdigest() != sha:
            raise BackupError(f"备份中的文件 {sha[:12]}… 内容与其校验值不符。")
        path = files.blob_path(record)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        count += 1
    if count != manifest.get("files", count):
        raise BackupError(f"备份清单记有 {manifest.get('files')} 个文件，实际恢复 {count} 个。")
    return count
