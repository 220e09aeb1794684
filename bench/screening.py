"""Benchmark: report screening at a province's scale.

Generates a synthetic corpus (``evalhub.demo.corpus``, long reports of about 8,000 characters), then
prints, on this machine:

1. corpus generation time (not part of screening, for reference);
2. **batch screening**: every report screened in submission order against all reports stored before it and
   then added to the index (features + sentence index + MinHash LSH) — reports per second, with the text
   work in ``--workers`` helper processes (default 1: with the main process that uses both cores) and, for
   reference, all in one process;
3. **raw HashingVectorizer speed** on the same texts (scikit-learn, character 2–4-grams, 2^20 features) and
   the ratio of our batch speed to it;
4. **single-upload latency** against the full index: fresh reports (another seed) screened one at a time,
   features plus the rule score and reasons against the year's peers — p50 / p95 / max in ms;
5. **training**: labels from the panel's first-round score (< 90), the time-based split, both candidate
   models and the baselines — seconds and the held-out metrics;
6. **peak memory**: the process's maximum resident set size;
7. **the shared index** (issue 16: one index for all workers, in the database), side by side with the
   per-process in-memory index above as the baseline measured in the same run: batch screening with every
   report written to the shared index, single uploads and score-API fragments against the full shared index
   (the API service ``screen_text`` through the Flask test client), and the memory of three web workers
   started one after another — each loading the old per-process index, then each using the shared one.

    .venv/bin/python bench/screening.py                # 20,000 reports (the issue's target size)
    .venv/bin/python bench/screening.py --reports 2000  # a quick run

Targets (issue 6): ≥ 85 reports/s in batch (50,000 in 10 minutes), < 300 ms p95 for one upload against
20,000 stored reports, peak memory < 4 GB. Issue 16 adds: memory per web worker < 300 MB, a second and third
worker add no index memory, the score API answers fragments in < 200 ms p95.

    .venv/bin/python bench/screening.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/evalhub_bench
"""
from __future__ import annotations

import argparse
import re
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from evalhub.review.services import REPORT_CHAPTERS  # noqa: E402
from evalhub.screening import learning  # noqa: E402
from evalhub.demo.corpus import generate_corpus  # noqa: E402
from evalhub.screening.features import FEATURE_KEYS, ScreeningContext, compute, screen_in_order  # noqa: E402
from evalhub.screening.index import CorpusIndex  # noqa: E402
import evalhub.screening.services  # noqa: E402,F401  (all of the app's code loaded now, not mid-run)

_YEAR = re.compile(r"\d{4}\s*年度?")


def context(report, number: int) -> ScreeningContext:
    facts = report.facts
    return ScreeningContext(
        kind="report", names=[facts.object_name, _YEAR.sub("", facts.object_name), facts.unit, facts.firm, facts.region],
        # firm_key + 1: the in-memory index reads firm 0 as "no firm"
        firm_id=report.firm_key + 1, engagement_id=number, object_key=report.object_key, year=facts.year,
        budget_wan=facts.budget_wan, spent_wan=facts.spent_wan, execution_rate=facts.execution_rate,
        chapters=REPORT_CHAPTERS)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--uploads", type=int, default=300, help="single uploads timed against the full index")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=1,
                        help="helper processes for the text work beside the one doing lookups (2 cores: 1)")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/evalhub_bench",
                        help="an empty database for the shared index (its tables are dropped and recreated)")
    parser.add_argument("--fragments", type=int, default=200, help="score-API fragments timed")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-hashing", action="store_true", help="leave out the HashingVectorizer reference")
    parser.add_argument("--skip-baseline", action="store_true", help="measure the shared index only")
    args = parser.parse_args()

    started = time.perf_counter()
    corpus = generate_corpus(args.reports, seed=args.seed, long=True)
    generated = time.perf_counter() - started
    corpus.sort(key=lambda r: r.submitted_on)
    chars = [len(r.text) for r in corpus]
    print(f"corpus: {len(corpus):,} reports, mean {statistics.mean(chars):,.0f} characters "
          f"(min {min(chars):,}, max {max(chars):,}); generated in {generated:.1f} s")

    # --- batch screening ----------------------------------------------------------------------------
    items = [(r.text, context(r, number), number, r.facts.firm) for number, r in enumerate(corpus, start=1)]
    if args.skip_baseline:  # the shared index only (the in-memory baseline takes as long again)
        fresh = generate_corpus(args.uploads, seed=args.seed + 1000, long=True)
        shared_index(args, corpus, items, fresh, None, None, None)
        return
    one = CorpusIndex()
    started = time.perf_counter()
    for _ in screen_in_order(items[:1000], one, workers=0):
        pass
    single_rate = min(1000, len(items)) / (time.perf_counter() - started)
    index = CorpusIndex()
    started = time.perf_counter()
    rows = [s.features for s in screen_in_order(items, index, workers=args.workers)]
    batch = time.perf_counter() - started
    rate = len(corpus) / batch
    single_uploads.batch_seconds = batch
    print(f"batch screening ({args.workers} helper process(es) for the text work, lookups in order): {batch:.1f} s, "
          f"{rate:,.1f} reports/s (50,000 reports would take {50_000 / rate / 60:.1f} min; target ≥ 85 reports/s); "
          f"one process: {single_rate:,.1f} reports/s over the first 1,000")

    # --- the raw HashingVectorizer ------------------------------------------------------------------
    if not args.skip_hashing:
        hashing_vectorizer(corpus, rate)

    # --- single uploads against the full index ------------------------------------------------------
    single_uploads(args, corpus, items, index, one, rows)


def hashing_vectorizer(corpus, rate: float) -> None:
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(analyzer="char", ngram_range=(2, 4), n_features=2 ** 20, alternate_sign=False)
    texts = [r.text for r in corpus]
    started = time.perf_counter()
    for chunk in range(0, len(texts), 500):
        vectorizer.transform(texts[chunk:chunk + 500])
    hashing = time.perf_counter() - started
    hashing_rate = len(texts) / hashing
    print(f"HashingVectorizer (char 2–4-grams): {hashing:.1f} s, {hashing_rate:,.1f} reports/s; "
          f"our batch screening runs at {rate / hashing_rate:.2f}× its speed")


def single_uploads(args, corpus, items, index, one, rows) -> None:
    rate = len(corpus) / single_uploads.batch_seconds
    reference = learning.Reference(rows[-5000:])
    fresh = generate_corpus(args.uploads, seed=args.seed + 1000, long=True)
    timings = []
    fresh_numbers = range(len(corpus) + 1, len(corpus) + 1 + len(fresh))
    for number, report in zip(fresh_numbers, fresh):
        ctx = context(report, number)
        t0 = time.perf_counter()
        screening = compute(report.text, ctx, index)
        reference.rule_score(screening.features)
        reference.reasons(screening.features)
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    p50 = statistics.median(timings)
    p95 = timings[int(len(timings) * 0.95) - 1]
    print(f"single upload against {len(index):,} stored reports: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"max {timings[-1]:.1f} ms (target p95 < 300 ms)")
    del index, one

    if not args.skip_training:
        train(rows, corpus)
    print(f"peak memory (max RSS) so far: {peak_rss_mb():,.0f} MB (target < 4,096 MB)")
    shared_index(args, corpus, items, fresh, rate, p95, reference)


def train(rows, corpus) -> None:
    frame = pd.DataFrame(rows, columns=FEATURE_KEYS).astype(float)
    frame["label"] = [int(r.first_round_score < 90) for r in corpus]
    frame["at"] = pd.to_datetime([r.submitted_on for r in corpus])
    frame["source"] = "panel"
    frame["random"] = False
    started = time.perf_counter()
    result = learning.train(frame)
    trained = time.perf_counter() - started
    card = result.card
    print(f"training on {len(frame):,} labels ({int(frame['label'].sum()):,} positive): {trained:.1f} s; "
          f"kept {card['algorithm_label']}")
    names = {"logistic_regression": "logistic regression", "gradient_boosting": "gradient boosting",
             "rule_score": "rule score", "length_only": "length only", "best_single_feature": "best single feature"}
    for group in ("candidates", "baselines"):
        for key, m in card[group].items():
            extra = f" ({m['feature']})" if m.get("feature") else ""
            print(f"  {names[key] + extra:<42} ROC-AUC {m['roc_auc']:.3f}  AP {m['average_precision']:.3f}  "
                  f"precision@{card['budget']:.0%} {m['precision_at_budget']:.3f}")


def _fmt(value: float | None, unit: str) -> str:
    return f"{value:,.1f}{unit}" if value is not None else "not measured in this run"


def percentile(values: list[float], share: float) -> float:
    values = sorted(values)
    return values[max(0, int(len(values) * share + 0.5) - 1)]


def fragments_of(reports, count: int) -> list[str]:
    """Score-API fragments: one to three consecutive paragraphs (100–1,500 characters) of unseen reports."""
    import random

    rng = random.Random(5)
    out = []
    while len(out) < count:
        lines = [line for line in rng.choice(reports).text.split("\n") if len(line) >= 40]
        start = rng.randrange(len(lines))
        text = "\n".join(lines[start:start + rng.randint(1, 3)])[:1500]
        if len(text) >= 100:
            out.append(text)
    return out


_WORKER = """
import json, os, resource, sys, time
from evalhub import create_app
from evalhub.extensions import db
mode, url = sys.argv[1], sys.argv[2]
app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "x"})
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
with app.app_context():
    from evalhub.screening.features import ScreeningContext, compute
    from evalhub.screening.index import CorpusIndex, SharedIndex, _stored
    from evalhub.screening.models import IndexedDocument
    import sqlalchemy as sa
    started = rss()
    if mode == "memory":  # the old design: every worker loads every stored text into its own index
        index = CorpusIndex()
        for row in db.session.execute(sa.select(IndexedDocument).execution_options(yield_per=2000)).scalars():
            index.add(_stored(row))
            db.session.expunge(row)
    else:
        index = SharedIndex(db.session)
    t = time.perf_counter()
    compute(sys.stdin.read(), ScreeningContext(kind="report"), index)
    print(json.dumps({"started": started, "rss": rss(), "ms": (time.perf_counter() - t) * 1000, "docs": len(index)}))
"""


def workers_memory(url: str, mode: str, text: str, count: int = 3) -> list[dict]:
    """Start ``count`` web workers one after another (each a fresh process, as gunicorn forks them), each
    answering one score request; their resident memory afterwards."""
    import json
    import subprocess

    out = []
    for _ in range(count):
        done = subprocess.run([sys.executable, "-c", _WORKER, mode, url], input=text, capture_output=True, text=True,
                              cwd=str(Path(__file__).resolve().parent.parent))
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def shared_index(args, corpus, items, fresh, baseline_rate: float, baseline_p95: float, reference) -> None:
    """The shared index in a database, measured beside the in-memory baseline above."""
    import sqlalchemy as sa

    from evalhub import create_app
    from evalhub.extensions import db
    from evalhub.screening.index import BufferedIndex, SharedIndex

    print(f"--- shared index in {sa.engine.make_url(args.database_url).render_as_string(hide_password=True)} ---")
    app = create_app({"SQLALCHEMY_DATABASE_URI": args.database_url, "SECRET_KEY": "bench", "TESTING": True,
                      "WTF_CSRF_ENABLED": False, "JOBS_IMMEDIATE": True})
    with app.app_context():
        db.drop_all()
        db.create_all()
        # The batch job (services.rescreen, a bulk import): lookups in the job's own copy of the index, new
        # texts written to the shared index in bulk (BufferedIndex). Then ANALYZE, as autovacuum would after a
        # bulk load.
        batched = BufferedIndex(db.session, flush_every=1000)
        started = time.perf_counter()
        features = []
        for n, screening in enumerate(screen_in_order(items, batched, workers=args.workers), start=1):
            features.append(screening.features)
            if n % 1000 == 0:
                db.session.commit()
        batched.flush()
        db.session.commit()
        batch = time.perf_counter() - started
        rate = len(items) / batch
        del batched
        shared = SharedIndex(db.session)
        if reference is None:
            reference = learning.Reference(features[-5000:])
        print(f"batch screening into the shared index: {batch:.1f} s, {rate:,.1f} reports/s "
              f"(in-memory baseline {_fmt(baseline_rate, '/s')}; target ≥ 85/s)")
        for table in ("screening_posting", "screening_key", "screening_band", "screening_doc"):
            if db.engine.dialect.name == "postgresql":
                db.session.execute(sa.text(f"ANALYZE {table}"))
        db.session.commit()

        timings = []
        fresh_numbers = range(len(corpus) + 1, len(corpus) + 1 + len(fresh))
        for number, report in zip(fresh_numbers, fresh):
            ctx = context(report, number)
            t0 = time.perf_counter()
            screening = compute(report.text, ctx, SharedIndex(db.session))
            reference.rule_score(screening.features)
            reference.reasons(screening.features)
            timings.append((time.perf_counter() - t0) * 1000)
        db.session.rollback()
        print(f"single upload against {len(shared):,} stored reports in the shared index: "
              f"p50 {statistics.median(timings):.1f} ms, p95 {percentile(timings, 0.95):.1f} ms, max {max(timings):.1f} ms "
              f"(in-memory baseline p95 {_fmt(baseline_p95, ' ms')}; target p95 < 300 ms)")

        # The score API on fragments: the real endpoint (token, JSON checks, service, reasons) via the test client.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests import factories

        world = factories.make_world()
        db.session.commit()
        client = app.test_client()
        token = client.post("/api/v1/tokens", json={"username": world.bz_staff.username,
                                                    "password": factories.PASSWORD}).json["token"]
        headers = {"Authorization": f"Bearer {token}"}
        fragments = fragments_of(fresh, args.fragments)
        api = []
        for text in fragments:
            t0 = time.perf_counter()
            response = client.post("/api/v1/screening/score", json={"text": text}, headers=headers)
            api.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
        print(f"score API on {len(fragments)} fragments (100–1,500 characters) against the shared index: "
              f"p50 {statistics.median(api):.1f} ms, p95 {percentile(api, 0.95):.1f} ms (target < 200 ms)")
        db.session.remove()
        db.engine.dispose()

    sample = fragments[0]
    for mode, name, count in (("shared", "shared index (now)", 3), ("memory", "per-process index (before)", 1)):
        measured = workers_memory(args.database_url, mode, sample, count)
        figures = ", ".join(f"worker {n}: {m['rss']:,.0f} MB (app alone {m['started']:,.0f} MB, "
                            f"index adds {m['rss'] - m['started']:,.0f} MB; first request {m['ms']:,.0f} ms)"
                            for n, m in enumerate(measured, start=1))
        print(f"web workers with the {name}: {figures}; together {sum(m['rss'] for m in measured):,.0f} MB "
              f"(target < 300 MB each, no index memory per worker)", flush=True)


if __name__ == "__main__":
    main()
