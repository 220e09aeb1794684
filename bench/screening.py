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
6. **peak memory**: the process's maximum resident set size.

    .venv/bin/python bench/screening.py                # 20,000 reports (the issue's target size)
    .venv/bin/python bench/screening.py --reports 2000  # a quick run

Targets (issue 6): ≥ 85 reports/s in batch (50,000 in 10 minutes), < 300 ms p95 for one upload against
20,000 stored reports, peak memory < 4 GB. The database is not involved: the app keeps the same index in
memory per process and adds one row read and one row write per upload (see the README's note).
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

_YEAR = re.compile(r"\d{4}\s*年度?")


def context(report, number: int) -> ScreeningContext:
    facts = report.facts
    return ScreeningContext(
        kind="report", names=[facts.object_name, _YEAR.sub("", facts.object_name), facts.unit, facts.firm, facts.region],
        firm_id=report.firm_key, engagement_id=number, object_key=report.object_key, year=facts.year,
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
    print(f"batch screening ({args.workers} helper process(es) for the text work, lookups in order): {batch:.1f} s, "
          f"{rate:,.1f} reports/s (50,000 reports would take {50_000 / rate / 60:.1f} min; target ≥ 85 reports/s); "
          f"one process: {single_rate:,.1f} reports/s over the first 1,000")

    # --- the raw HashingVectorizer ------------------------------------------------------------------
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

    # --- single uploads against the full index ------------------------------------------------------
    reference = learning.Reference(rows[-5000:])
    fresh = generate_corpus(args.uploads, seed=args.seed + 1000, long=True)
    timings = []
    for number, report in enumerate(fresh, start=len(corpus) + 1):
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

    # --- training -----------------------------------------------------------------------------------
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

    print(f"peak memory (max RSS): {peak_rss_mb():,.0f} MB (target < 4,096 MB)")


if __name__ == "__main__":
    main()
