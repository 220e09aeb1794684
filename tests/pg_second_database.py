"""Print the URL of a second, empty PostgreSQL test database beside the one given (same server, name + "_b").

`make test` runs the slowest PostgreSQL tests (browser, demo, state machine, API fuzz) in a second process on
this database while the rest run on the first and SQLite runs beside them, so the two cores stay busy to the
end. Exits 1 (and `make test` falls back to one PostgreSQL process) when the database cannot be created.
"""
from __future__ import annotations

import sys

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def main(url: str) -> int:
    first = make_url(url)
    second = first.set(database=f"{first.database}_b")
    admin = sa.create_engine(first.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{second.database}"'))
            connection.execute(sa.text(f'CREATE DATABASE "{second.database}"'))
    except sa.exc.SQLAlchemyError as error:
        print(f"no second test database: {error.__class__.__name__}", file=sys.stderr)
        return 1
    finally:
        admin.dispose()
    print(second.render_as_string(hide_password=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
