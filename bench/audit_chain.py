"""Benchmark: how long an audited write (a sign-in) waits while a long transaction that has recorded audit events
is still open (an import of a few thousand rows, a slow request).

Needs an EMPTY PostgreSQL database (on SQLite every writer waits for every other anyway):

    createdb -h 127.0.0.1 -U postgres evalhub_bench_audit
    .venv/bin/python bench/audit_chain.py postgresql+psycopg://postgres@127.0.0.1:5432/evalhub_bench_audit

Two runs of the same scenario, one after the other, in one process:

* baseline — the chain's lock taken at the transaction's first event, as ``audit.record`` did before it kept
  events until the commit (emulated here by calling ``audit.lock_chain()`` right after that first event: that
  call was the first line of the old ``record``);
* now — ``audit.record`` as it is: events join the chain at the commit.

In each, a "long import" records one event per row for ``--import-seconds`` (a little work per row), then
commits; meanwhile ``--sign-ins`` people sign in at even intervals, each in a thread of its own (record
``user.login`` and commit, as ``core.services.signed_in`` does), and each sign-in's time is measured. Prints the sign-ins' median, 95th
percentile and slowest time, beside the import's own time and the chain's check, for both runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url", help="an EMPTY PostgreSQL database (its tables are created, then dropped)")
    parser.add_argument("--import-seconds", type=float, default=4.0, help="how long the long transaction stays open")
    parser.add_argument("--sign-ins", type=int, default=40, help="sign-ins during the import")
    return parser.parse_args()


def scenario(app, *, lock_at_first_event: bool, seconds: float, sign_ins: int) -> dict:
    from evalhub.core import audit
    from evalhub.core.models import Bureau, User
    from evalhub.extensions import db

    with app.app_context():
        bureau_id, user_id = db.session.query(Bureau.id).scalar(), db.session.query(User.id).scalar()
    started, times, imported = threading.Event(), [], {}

    def long_import():
        with app.app_context():
            bureau, user = db.session.get(Bureau, bureau_id), db.session.get(User, user_id)
            t0, rows = time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds:
                audit.record("bench.import_row", bureau, actor=user, summary=f"导入第 {rows + 1} 行")
                if rows == 0:
                    if lock_at_first_event:
                        audit.lock_chain()  # the old record()'s first step
                    started.set()
                rows += 1
                time.sleep(0.002)  # reading and checking the row
            db.session.commit()
            imported.update(rows=rows, seconds=time.perf_counter() - t0)
            db.session.remove()

    def sign_in(at: float):
        time.sleep(at)
        with app.app_context():
            t0 = time.perf_counter()
            user = db.session.get(User, user_id)
            audit.record("user.login", user, actor=user, bureau_id=user.bureau_id, summary="登录（基准测试）")
            db.session.commit()
            times.append(time.perf_counter() - t0)
            db.session.remove()

    importer = threading.Thread(target=long_import)
    importer.start()
    started.wait(30)
    # one sign-in every so often over the first 80 % of the import, each in its own thread (people, not a queue)
    signers = [threading.Thread(target=sign_in, args=(i * seconds * 0.8 / sign_ins,)) for i in range(sign_ins)]
    for t in signers:
        t.start()
    for t in [importer, *signers]:
        t.join(seconds * 10 + 60)
    with app.app_context():
        chain_ok = audit.verify_chain().ok
    ordered = sorted(times)
    return {"sign-ins": len(times), "median ms": statistics.median(times) * 1000,
            "p95 ms": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, "slowest ms": ordered[-1] * 1000,
            "import rows": imported.get("rows"), "import s": imported.get("seconds"), "chain whole": chain_ok}


def main() -> None:
    args = parse_args()
    if not args.database_url.startswith("postgresql"):
        sys.exit("PostgreSQL only: on SQLite every writer waits for every other whatever the audit log does.")
    from evalhub import create_app
    from evalhub.core.enums import BureauLevel, Role
    from evalhub.core.models import Bureau, User
    from evalhub.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": args.database_url, "SECRET_KEY": "bench", "FIELD_KEY": "bench",
                      "JOBS_IMMEDIATE": True,
                      "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": args.sign_ins + 5}})  # no one waits for a connection
    with app.app_context():
        if sa_tables := db.inspect(db.engine).get_table_names():
            sys.exit(f"the database is not empty ({len(sa_tables)} tables): give an empty one")
        db.create_all()
        bureau = Bureau(code="650000", name="自治区财政厅", short_name="自治区", level=BureauLevel.REGION, path="650000/")
        db.session.add(bureau)
        db.session.flush()
        db.session.add(User(username="bench", display_name="基准", password_hash="-", role=Role.BUREAU_ADMIN,
                            bureau_id=bureau.id))
        db.session.commit()
    try:
        rows = {}
        for name, old in (("baseline: lock at the first event", True), ("now: lock at the commit", False)):
            rows[name] = scenario(app, lock_at_first_event=old, seconds=args.import_seconds, sign_ins=args.sign_ins)
        keys = list(next(iter(rows.values())))
        width = max(len(n) for n in rows) + 2
        print(f"{'':{width}}" + "".join(f"{k:>14}" for k in keys))
        for name, row in rows.items():
            print(f"{name:{width}}" + "".join(
                f"{v:>14.1f}" if isinstance(v, float) else f"{str(v):>14}" for v in row.values()))
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()


if __name__ == "__main__":
    main()
