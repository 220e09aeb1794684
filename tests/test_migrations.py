"""`flask db upgrade` on an empty database gives exactly the models' schema (and downgrade undoes it)."""
from __future__ import annotations


import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from evalhub import create_app
from evalhub.config import PROJECT_ROOT
from evalhub.extensions import db


def test_upgrade_from_empty_matches_the_models_and_downgrade_empties(empty_database_url, tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True,
                      "SECRET_KEY": "x", "FILE_STORE": tmp_path})
    directory = str(PROJECT_ROOT / "migrations")
    with app.app_context():
        upgrade(directory=directory)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            differences = compare_metadata(context, db.metadata)
        assert differences == [], differences
        downgrade(directory=directory, revision="base")
        with db.engine.connect() as conn:
            left = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
        assert left == set()
        db.engine.dispose()


def test_the_rubric_kind_downgrade_keeps_a_kind_rubric_in_use_out_of_the_old_numbering(empty_database_url, tmp_path):
    """Migration c3e5a7b9d1f2 (a rubric per 委托事项) downgraded with a kind's rubric in use by a panel: the rubric
    stays (the panel points at it) but leaves the numbering and is no longer current — the old key (bureau, kind,
    version) would meet the bureau's general rubric of the same version, and the old code reads one current rubric
    per kind (two: a 500)."""
    from datetime import datetime

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True,
                      "SECRET_KEY": "x", "FILE_STORE": tmp_path})
    directory = str(PROJECT_ROOT / "migrations")
    with app.app_context():
        upgrade(directory=directory, revision="c3e5a7b9d1f2")
        with db.engine.begin() as conn:
            # the rows alone, without their bureau, engagement and the rest: the foreign keys are not checked
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            else:
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.execute(sa.text(
                "INSERT INTO rubric (id, bureau_id, kind, service_kind, version, title, is_current, created_at) VALUES "
                "(1, 1, 'report', NULL, 1, '通用', :yes, :at), (2, 1, 'report', 'target_review', 1, '目标审核', :yes, :at)"),
                {"yes": True, "at": datetime(2026, 1, 1)})
            values = {}
            for column in sa.inspect(conn).get_columns("review_panel"):
                if column["nullable"] or column.get("default") is not None or column.get("autoincrement") is True:
                    continue
                kind = str(column["type"]).upper()
                values[column["name"]] = (True if "BOOL" in kind else datetime(2026, 1, 1) if "DATE" in kind or "TIME" in kind
                                          else 1 if "INT" in kind or "NUMERIC" in kind else "report")
            values.pop("id", None)
            values["rubric_id"] = 2
            conn.execute(sa.text(f"INSERT INTO review_panel ({', '.join(values)}) VALUES "
                                 f"({', '.join(':' + k for k in values)})"), values)
        downgrade(directory=directory, revision="a4c6e8f0b2d4")
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, version, is_current FROM rubric ORDER BY id")).all()
        assert [(i, v, bool(c)) for i, v, c in rows] == [(1, 1, True), (2, 1000002, False)]
        with db.engine.begin() as conn:  # the rows made up here, before older revisions' rules meet them
            conn.exec_driver_sql("DELETE FROM review_panel")
            conn.exec_driver_sql("DELETE FROM rubric")
        downgrade(directory=directory, revision="base")
        db.engine.dispose()
