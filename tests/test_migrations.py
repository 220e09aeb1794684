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
