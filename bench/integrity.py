"""Procurement integrity at scale (issue 17): the two figures the issue asks for.

    .venv/bin/python bench/integrity.py postgresql+psycopg://postgres@127.0.0.1:5432/evalhub_bench_integrity \
        [--bids 20] [--pages 50] [--requests 30]

1. Pairwise collusion checks for one procurement: ``--bids`` technical proposals of ``--pages`` pages each
   (real .docx files written with python-docx, ~1,000 characters a page; three bidders copy parts of one
   proposal, two share a document author) — reading each file's properties, parsing every text into masked
   sentence keys and shingles, and comparing every pair by every rule (``integrity.services.compare``).
   Budget: 2 s.
2. The red-flag page for a province's ten years: a fresh database ``<name>`` (dropped first) migrated and
   filled by ``bench/province.py`` (~20,000 engagements), bids added to every awarded procurement (2–5 each,
   some single bids, lowballs and rotations), the red flags refreshed once as the worker does (timed), then
   the page ``/integrity/red-flags`` read by the region's and 巴州's administrators — side by side, in the same
   run and the same process, with a bare page (bench/bare.py: one row through Flask + Flask-SQLAlchemy +
   Jinja) on the same database. Budget: 1 s.

In-process test clients (no HTTP server): the figures are the application's own time per request.
"""
from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = ["预算执行", "资金拨付", "绩效目标", "政府采购", "资产管理", "项目立项", "制度建设", "档案管理", "满意度调查", "产出数量",
          "产出质量", "时效指标", "成本控制", "社会效益", "可持续影响", "内部控制", "信息公开", "风险防控", "数据核查", "抽样设计"]
VERBS = ["核查", "访谈", "问卷", "比对", "测算", "复核", "抽查", "梳理"]


def proposal(rng: random.Random, pages: int, firm: str) -> list[str]:
    """~1,000 characters a page of sentences a firm might write, mostly its own."""
    lines = []
    for page in range(pages):
        for _ in range(16):
            t1, t2, v = rng.choice(TOPICS), rng.choice(TOPICS), rng.choice(VERBS)
            lines.append(f"{firm}拟对{t1}采取{v}方式，结合{t2}情况，抽取第{rng.randint(1, 99)}批样本{rng.randint(3, 60)}份，"
                         f"形成{rng.choice(['底稿', '台账', '记录', '清单'])}并逐项{rng.choice(VERBS)}。")
    return lines


def docx_file(lines: list[str], author: str | None) -> bytes:
    import docx

    document = docx.Document()
    for line in lines:
        document.add_paragraph(line)
    if author:
        document.core_properties.author = author
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pairwise(bids: int, pages: int) -> dict:
    from evalhub.core.extract import docx_text
    from evalhub.integrity import services as I

    rng = random.Random(17)
    texts = [proposal(rng, pages, f"第{n}评价公司") for n in range(bids)]
    for n in (1, 2):  # two copy half of the first proposal, firm name swapped
        texts[n] = [line.replace("第0评价公司", f"第{n}评价公司") for line in texts[0][: len(texts[0]) // 2]] + texts[n][len(texts[n]) // 2:]
    files = [docx_file(lines, "王文书" if n in (3, 4) else None) for n, lines in enumerate(texts)]
    extracted = [docx_text(data) for data in files]  # done once at upload (core.files), not part of the check
    chars = sum(len(t) for t in extracted) / bids
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        docs = [I.BidDoc(n + 1, n + 1, f"第{n}评价公司", Decimal(300000 + rng.randint(-30000, 30000)), f"sha{n}", extracted[n],
                         I.docx_metadata(files[n]), [I.Person(f"digest-{n}", f"负责人{n}", "项目负责人")],
                         {"phone": f"0996-{2000000 + n}"}) for n in range(bids)]
        found = I.compare(docs)
        timings.append(time.perf_counter() - started)
    return {"bids": bids, "pages": pages, "chars_per_bid": int(chars), "pairs": bids * (bids - 1) // 2,
            "seconds": min(timings), "median": statistics.median(timings),
            "flags": sorted(f"{f.rule.value}:{'-'.join(map(str, f.bids))}" for f in found)}


# --- the red-flag page ----------------------------------------------------------------------------------

def fresh_database(base_url: str) -> str:
    url = sa.engine.make_url(base_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database)
        path.unlink(missing_ok=True)
        return base_url
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    return url.render_as_string(hide_password=False)


def add_bids(rng: random.Random) -> int:
    """Bids for every awarded procurement of the province data (it writes awards only): the winner's at the
    award amount and 1–4 others, with periods, some single bids, lowballs and small rotating groups."""
    from datetime import timedelta

    from evalhub.extensions import db
    from evalhub.procurement.models import Award, Bid, BidStatus, Procurement
    from evalhub.registry.models import Firm

    firms = list(db.session.execute(sa.select(Firm.id)).scalars())
    awards = db.session.execute(sa.select(Award.procurement_id, Award.firm_id, Award.amount, Award.awarded_at)).all()
    rows, periods = [], []
    for procurement_id, winner, amount, awarded_at in awards:
        others = rng.sample(firms, rng.choice([0, 1, 2, 2, 3, 3, 4]) if rng.random() < 0.97 else 0)
        rows.append({"procurement_id": procurement_id, "firm_id": winner, "price": amount, "status": BidStatus.SUBMITTED})
        low = rng.random() < 0.02
        for firm in others:
            if firm == winner:
                continue
            factor = Decimal(str(round(rng.uniform(1.01, 1.15) if not low else rng.uniform(2.5, 3.5), 3)))
            rows.append({"procurement_id": procurement_id, "firm_id": firm, "price": (amount * factor).quantize(Decimal("0.01")),
                         "status": BidStatus.INVALID if rng.random() < 0.05 else BidStatus.SUBMITTED})
        deadline = awarded_at - timedelta(days=rng.randint(1, 5))
        periods.append({"pid": procurement_id, "created_at": deadline - timedelta(days=rng.choice([10, 10, 12, 15, 20])),
                        "bid_deadline": deadline, "opened_at": deadline})
    for start in range(0, len(rows), 5000):
        db.session.execute(sa.insert(Bid), rows[start:start + 5000])
    table = Procurement.__table__
    db.session.execute(table.update().where(table.c.id == sa.bindparam("pid")).values(
        created_at=sa.bindparam("created_at"), bid_deadline=sa.bindparam("bid_deadline"), opened_at=sa.bindparam("opened_at")),
        periods)
    db.session.commit()
    return len(rows)


def timed(client, path: str, headers: dict | None, requests: int) -> tuple[float, float, int]:
    client.get(path, headers=headers)  # warm
    times, status = [], 0
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append(time.perf_counter() - started)
        status = response.status_code
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], status


def red_flag_page(base_url: str, requests: int) -> list[dict]:
    url = fresh_database(base_url)
    os.environ["EVALHUB_DATABASE_URL"] = url
    from flask_migrate import upgrade

    from evalhub import create_app
    from evalhub.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False})
    results = []
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        from bench import province
        from evalhub.integrity import redflags
        from evalhub.procurement.models import Procurement

        started = time.perf_counter()
        province.build(1.0)
        built = time.perf_counter() - started
        bids = add_bids(random.Random(7))
        procurements = db.session.execute(sa.select(sa.func.count(Procurement.id))).scalar_one()
        started = time.perf_counter()
        record = redflags.refresh()
        db.session.commit()
        refresh_seconds = time.perf_counter() - started
        print(f"province data: {procurements} procurements, {bids} bids, built in {built:.0f} s; "
              f"red flags refreshed (the worker's job) in {refresh_seconds:.1f} s: {record.flags} flags", flush=True)
        from evalhub.integrity.models import RedFlag

        per = db.session.execute(sa.select(RedFlag.indicator, sa.func.count()).group_by(RedFlag.indicator)).all()
        print("  by indicator: " + ", ".join(f"{i.label} {n}" for i, n in sorted(per, key=lambda x: -x[1])), flush=True)
        db.session.remove()

    import bench.bare as bare

    bare_client = bare.app.test_client()
    for username, who in (("region.admin", "region admin (自治区)"), ("bz.admin", "prefecture admin (巴州)")):
        client = app.test_client()
        response = client.post("/login", data={"username": username, "password": "Bench-password-1"})
        assert response.status_code == 302, response.status_code
        for label, path in (("red flags, all years", "/integrity/red-flags"),
                            ("red flags, 2024", "/integrity/red-flags?year=2024"),
                            ("red flags, one indicator", "/integrity/red-flags?indicator=lowball")):
            with app.app_context():
                p50, p95, status = timed(client, path, None, requests)
            b50, b95, _ = timed(bare_client, "/", None, requests)
            results.append({"user": who, "page": label, "status": status, "p50": p50, "p95": p95, "bare_p50": b50,
                            "bare_p95": b95})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database_url", nargs="?", help="PostgreSQL URL of a scratch database (dropped and recreated)")
    parser.add_argument("--bids", type=int, default=20)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--skip-page", action="store_true", help="only the pairwise checks")
    args = parser.parse_args()
    os.environ.setdefault("EVALHUB_SECRET_KEY", "bench-secret-key-0123456789")
    os.environ.setdefault("EVALHUB_COOKIE_SECURE", "0")

    figures = pairwise(args.bids, args.pages)
    print(f"\n## Pairwise collusion checks: {figures['bids']} bids × {figures['pages']} pages "
          f"(~{figures['chars_per_bid']:,} characters each), {figures['pairs']} pairs")
    print(f"best of 3: {figures['seconds']:.2f} s, median {figures['median']:.2f} s (budget 2 s) — "
          f"{'PASS' if figures['seconds'] < 2 else 'OVER'}")
    print("flags found:", ", ".join(figures["flags"]))
    if args.skip_page or not args.database_url:
        return
    rows = red_flag_page(args.database_url, args.requests)
    print("\n## Red-flag page from precomputed figures, side by side with a bare one-row page (same run, in-process)")
    print("| user | page | status | p50 ms | p95 ms | bare p50 ms | bare p95 ms | budget 1 s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['user']} | {r['page']} | {r['status']} | {r['p50'] * 1000:.0f} | {r['p95'] * 1000:.0f} | "
              f"{r['bare_p50'] * 1000:.1f} | {r['bare_p95'] * 1000:.1f} | {'PASS' if r['p95'] < 1 else 'OVER'} |")


if __name__ == "__main__":
    main()
