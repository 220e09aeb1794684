"""Developer benchmark: report screening on real public Chinese evaluation texts (not a CI test).

    python bench/screening_real.py                 # the development two-thirds
    python bench/screening_real.py --final         # the held-aside third (look once, at the end)
    python bench/screening_real.py --import-raw    # rebuild the cache and index from bench/data/cache/raw_*.txt
    python bench/screening_real.py --model         # also a model trained on the synthetic demo corpus
    python bench/screening_real.py --sections      # do per-chapter copy shares help the model? (synthetic corpus)

The set is described in docs/screening_devset.md. Only its index is committed (bench/data/screening_real.csv:
url, kind, label, reason, sha256, length, split); the texts sit in the git-ignored bench/data/cache/<sha256>.txt
and every one is checked against its hash before use (a changed or missing text stops the run).

Printed, overall and by kind: ROC-AUC and average precision, each with a 95% bootstrap interval (resampling
source URLs, since passages of one page are not independent), for
- risk: what POST /api/v1/screening/score answers with no model promoted (kind detected from the text);
- rule score (kind given): the same rule score with the set's kind passed as the API's ``kind``;
- model: with --model, a model trained by learning.train on the synthetic demo corpus;
- baselines: length (shorter = riskier) and digits per 1,000 characters (fewer = riskier), directions fixed
  in advance.
Positive class: "generic".

--sections answers a different question on the synthetic demo corpus (the real set has no stored reports to copy
from and no whole reports, so copy shares per chapter are empty there): whether ``index.section_features`` (copied
and in-house shares of the indicator, findings and recommendation chapters) add anything to the model's features.
The corpus is screened in time order as evalhub does; the later quarter is learning.train's held-out split and is
not used (``--final`` scores it once); inside the earlier three quarters, forward-chaining folds (train on all
before a chunk, predict the chunk) compare the same candidate models with and without those six features, with a
paired bootstrap interval of the difference. Two ways of sorting a copied sentence are tried: ``section_copy`` as
it stands, and a variant that calls a sentence stock only when three or more other firms use it (the firm's own
template, however often reused, is in-house).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "bench" / "data"
INDEX = DATA / "screening_real.csv"
REREAD = DATA / "screening_real_reread.csv"
CACHE = DATA / "cache"
COLUMNS = ["url", "kind", "label", "reason", "sha256", "length", "split"]
KINDS = ("report", "self_evaluation", "fragment", "work_plan")


def split_for(url: str) -> str:
    """Held aside by source URL, fixed before any tuning: the first hex digit of sha256(url) in 0–4."""
    return "holdout" if hashlib.sha256(url.encode("utf-8")).hexdigest()[0] in "01234" else "dev"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the set -------------------------------------------------------------------------------------------

def parse_raw(paths: list[Path]) -> list[dict]:
    """raw_*.txt: records '@@ url | kind | label | reason' followed by the passage text."""
    rows = []
    for path in paths:
        for block in re.split(r"(?m)^(?=@@ )", path.read_text(encoding="utf-8")):
            if not block.startswith("@@ "):
                continue
            head, _, text = block.partition("\n")
            url, kind, label, reason = [part.strip() for part in head[3:].split("|", 3)]
            text = text.strip("\n")
            assert kind in KINDS, (url, kind)
            assert label in ("generic", "specific"), (url, label)
            rows.append({"url": url, "kind": kind, "label": label, "reason": reason, "text": text})
    return rows


def import_raw() -> None:
    rows = parse_raw(sorted(CACHE.glob("raw_*.txt")))
    CACHE.mkdir(parents=True, exist_ok=True)
    with INDEX.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        for row in rows:
            digest = sha(row["text"])
            (CACHE / f"{digest}.txt").write_text(row["text"], encoding="utf-8")
            writer.writerow({"url": row["url"], "kind": row["kind"], "label": row["label"], "reason": row["reason"],
                             "sha256": digest, "length": len(row["text"]), "split": split_for(row["url"])})
    print(f"{len(rows)} passages from {len({r['url'] for r in rows})} pages written to {INDEX.relative_to(ROOT)}")


def load(split: str | None) -> list[dict]:
    """The index rows of ``split`` (None: all) with their texts, each checked against its hash."""
    rows = list(csv.DictReader(INDEX.open(encoding="utf-8")))
    problems = []
    for row in rows:
        path = CACHE / f"{row['sha256']}.txt"
        if not path.exists():
            problems.append(f"missing {path.name} ({row['url']})")
            continue
        text = path.read_text(encoding="utf-8")
        if sha(text) != row["sha256"]:
            problems.append(f"hash mismatch {path.name} ({row['url']})")
        row["text"] = text
    if problems:
        shown = problems if len(problems) <= 12 else problems[:10] + [f"… and {len(problems) - 10} more"]
        raise SystemExit(f"The cache does not match the index ({len(problems)} of {len(rows)} texts); refusing to score.\n"
                         "The texts are not committed and do not survive a new work tree: collect them again as "
                         "docs/screening_devset.md says.\n  " + "\n  ".join(shown))
    return [r for r in rows if split is None or r["split"] == split]


# --- scores --------------------------------------------------------------------------------------------

def features_for(text: str, kind: str | None) -> dict:
    from evalhub.review.services import REPORT_CHAPTERS
    from evalhub.screening.features import ScreeningContext, compute

    ctx = ScreeningContext(kind="work_plan" if kind == "work_plan" else "report", text_kind=kind,
                           chapters=[] if kind == "work_plan" else REPORT_CHAPTERS)
    return compute(text, ctx, None).features


def synthetic_model():
    """A model trained the way evalhub trains one, on the synthetic demo corpus (its labels are synthetic)."""
    import pandas as pd

    from evalhub.demo.corpus import generate_corpus
    from evalhub.screening import learning
    from evalhub.screening.features import FEATURE_KEYS, compute
    from evalhub.screening.index import CorpusIndex

    corpus = sorted(generate_corpus(500, seed=11), key=lambda r: r.submitted_on)
    index, rows = CorpusIndex(), []
    for number, report in enumerate(corpus, start=1):
        f = report.facts
        ctx = _context(report, number)
        screening = compute(report.text, ctx, index)
        index.add(screening.stored(number, ctx, f.firm))
        rows.append({**screening.features, "label": int(report.first_round_score < 90), "at": report.submitted_on,
                     "source": "panel", "random": False})
    frame = pd.DataFrame(rows)
    frame[FEATURE_KEYS] = frame[FEATURE_KEYS].astype(float)
    result = learning.train(frame)
    return learning.LoadedModel(version="synthetic", estimator=result.estimator, card=result.card)


# --- per-chapter copy shares as model features (synthetic corpus) ----------------------------------------

def section_copy_by_firms(sentences, matches, index, stock_firms: int = 3) -> dict[str, dict[str, float]]:
    """``index.section_copy`` with stock decided by how many *other firms* use a sentence (>= ``stock_firms``)
    instead of how many reports: a firm's own template stays in-house however often the firm reuses it.
    ``matches``: ``lookup`` without a list limit (full lists of report numbers)."""
    from evalhub.screening.index import section_copy

    return section_copy(sentences, matches, 0, is_stock=lambda match: len(
        {index.reports[n].firm_id for n in match.other_firms}) >= stock_firms)


def _context(report, number: int):
    """The screening context of one synthetic report (its facts), screened as engagement ``number``."""
    from evalhub.review.services import REPORT_CHAPTERS
    from evalhub.screening.features import ScreeningContext

    f = report.facts
    return ScreeningContext(names=[f.object_name, f.unit, f.firm, f.region], firm_id=report.firm_key, engagement_id=number,
                            object_key=report.object_key, year=f.year, budget_wan=f.budget_wan, spent_wan=f.spent_wan,
                            execution_rate=f.execution_rate, chapters=REPORT_CHAPTERS)


def synthetic_frame(n: int, seed: int):
    """The synthetic demo corpus screened in time order (each report against those before it), with the model's
    features, both versions of the per-chapter shares and the demo's label (first-round score below 90)."""
    import pandas as pd

    from evalhub.demo.corpus import generate_corpus
    from evalhub.screening.features import FEATURE_KEYS, finish, prepare
    from evalhub.screening.index import CorpusIndex, section_copy, section_features

    corpus = sorted(generate_corpus(n, seed=seed), key=lambda r: r.submitted_on)
    index, rows = CorpusIndex(), []
    for number, report in enumerate(corpus, start=1):
        f = report.facts
        ctx = _context(report, number)
        prepared = prepare(report.text, ctx)
        screening = finish(prepared, ctx, index)
        as_is: dict = {}
        by_firms: dict = {}
        sentences = prepared.copy_sentences
        if len(index) and sentences:
            threshold = index.boilerplate_threshold(ctx.kind)
            where = dict(kind=ctx.kind, firm_id=ctx.firm_id, engagement_id=ctx.engagement_id, object_key=ctx.object_key,
                         year=ctx.year)
            keys = [s.key for s in sentences]
            as_is = section_copy(sentences, index.lookup(keys, list_limit=threshold, **where), threshold)
            by_firms = section_copy_by_firms(sentences, index.lookup(keys, **where), index)
        index.add(screening.stored(number, ctx, f.firm))
        rows.append({**screening.features, **section_features(as_is),
                     **{f"{k}~firms": v for k, v in section_features(by_firms).items()},
                     "label": int(report.first_round_score < 90), "at": report.submitted_on, "source": "panel",
                     "random": False})
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c.startswith("section_")]
    frame[FEATURE_KEYS + extra] = frame[FEATURE_KEYS + extra].astype(float)
    return frame


def sections_report(n: int, seeds: list[int], final: bool) -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score
    from threadpoolctl import threadpool_limits

    from evalhub.screening import learning
    from evalhub.screening.features import FEATURE_KEYS

    for seed in seeds:
        frame = synthetic_frame(n, seed)
        y = frame["label"].to_numpy()
        cut = int(len(frame) * (1 - learning.TEST_SHARE))
        plain = [c for c in frame.columns if c.startswith("section_") and not c.endswith("~firms")]
        variants = {"+ section_copy": plain, "+ by other firms": [c + "~firms" for c in plain]}
        part = "held-out later quarter" if final else "dev (earlier three quarters), forward-chaining folds"
        print(f"\n== synthetic corpus n={n} seed={seed}: {part} ==")
        for name, columns in variants.items():
            shares = frame.iloc[:cut][columns[3]]  # the findings chapter's in-house share, as a sign of life
            print(f"   {name}: findings in-house share mean {shares.mean():.3f}, non-zero in {int((shares > 0).sum())} of {cut}")
        for algo in learning.candidates():
            predictions: dict[str, np.ndarray] = {}
            for name, columns in {"base": [], **variants}.items():
                keys = FEATURE_KEYS + columns
                out = np.full(len(frame), np.nan)
                if final:
                    chunks = [(cut, len(frame))]
                else:
                    edges = np.linspace(cut // 5, cut, 5).astype(int)
                    chunks = list(zip(edges[:-1], edges[1:]))
                for start, end in chunks:
                    estimator = learning.candidates()[algo]
                    with threadpool_limits(limits=1):
                        estimator.fit(frame.iloc[:start][keys], y[:start])
                        out[start:end] = estimator.predict_proba(frame.iloc[start:end][keys])[:, 1]
                predictions[name] = out
            scored = ~np.isnan(predictions["base"])
            yy = y[scored]
            groups = [str(i) for i in range(int(scored.sum()))]
            for name, pred in predictions.items():
                auc, ap = auc_ap(yy, pred[scored])
                line = f"   {algo:<20} {name:<18} n={len(yy)} ({int(yy.sum())} below 90)  ROC-AUC {auc:.3f}  AP {ap:.3f}"
                if name != "base":
                    low, high = paired_difference(yy, pred[scored], predictions["base"][scored], groups)
                    line += f"   ΔAUC {auc - auc_ap(yy, predictions['base'][scored])[0]:+.3f} [{low:+.3f}, {high:+.3f}]"
                print(line)
        rows = frame.iloc[(cut if final else cut // 5):(None if final else cut)]
        rule = np.array([learning.rule_score(r) for r in rows[FEATURE_KEYS].to_dict("records")])
        auc, ap = auc_ap(rows["label"].to_numpy(), rule)
        print(f"   {'rule score':<39} ROC-AUC {auc:.3f}  AP {ap:.3f}")


def scores(rows: list[dict], with_model: bool) -> dict[str, np.ndarray]:
    from evalhub.screening import learning

    out: dict[str, list[float]] = defaultdict(list)
    detected = []
    feature_rows = []
    for row in rows:
        auto = features_for(row["text"], None)
        given = features_for(row["text"], row["kind"])
        feature_rows.append(given)
        out["risk"].append(learning.rule_score(auto))
        out["rule score (kind given)"].append(learning.rule_score(given))
        chars = len(re.sub(r"\s", "", row["text"]))
        out["baseline: length"].append(-chars)
        out["baseline: digits/1k"].append(-len(re.findall(r"\d", row["text"])) * 1000 / max(chars, 1))
        detected.append(auto)
    if with_model:
        model = synthetic_model()
        out["model (synthetic demo)"] = list(model.predict(feature_rows))
    result = {k: np.asarray(v, dtype=float) for k, v in out.items()}
    result["_features"] = feature_rows  # type: ignore[assignment]
    return result


# --- metrics -------------------------------------------------------------------------------------------

def auc_ap(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """ROC-AUC (mid-ranks for ties) and average precision (sklearn's step definition, ties grouped), in numpy:
    the bootstrap calls this thousands of times."""
    y = np.asarray(y, dtype=int)
    s = np.asarray(s, dtype=float)
    pos, n = int(y.sum()), len(y)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(n)
    sorted_s = s[order]
    i = 0
    while i < n:  # mid-ranks
        j = i
        while j + 1 < n and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    auc = (ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * (n - pos))
    desc = np.argsort(-s, kind="mergesort")
    ys, ss = y[desc], s[desc]
    last = np.r_[np.flatnonzero(np.diff(ss)), n - 1]  # the last index of each distinct threshold
    tp = np.cumsum(ys)[last]
    precision = tp / (last + 1)
    recall = tp / pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return float(auc), ap


def bootstrap(y: np.ndarray, s: np.ndarray, groups: list[str], n: int = 1000, seed: int = 0):
    """95% intervals for ROC-AUC and AP, resampling source URLs with replacement."""
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_group[g].append(i)
    keys = list(by_group)
    aucs, aps = [], []
    for _ in range(n):
        idx = np.concatenate([by_group[keys[k]] for k in rng.integers(0, len(keys), len(keys))])
        yy = y[idx]
        if 0 < yy.sum() < len(yy):
            a, p = auc_ap(yy, s[idx])
            aucs.append(a)
            aps.append(p)
    return (np.percentile(aucs, [2.5, 97.5]), np.percentile(aps, [2.5, 97.5])) if aucs else (None, None)


def paired_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, groups: list[str], n: int = 1000, seed: int = 0):
    """95% interval of ROC-AUC(a) − ROC-AUC(b) on the same resampled pages."""
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_group[g].append(i)
    keys = list(by_group)
    diffs = []
    for _ in range(n):
        idx = np.concatenate([by_group[keys[k]] for k in rng.integers(0, len(keys), len(keys))])
        if 0 < y[idx].sum() < len(idx):
            diffs.append(auc_ap(y[idx], a[idx])[0] - auc_ap(y[idx], b[idx])[0])
    return tuple(np.percentile(diffs, [2.5, 97.5])) if diffs else (float("nan"), float("nan"))


def report(rows: list[dict], results: dict, title: str) -> None:
    y = np.array([1 if r["label"] == "generic" else 0 for r in rows])
    groups = [r["url"] for r in rows]
    print(f"\n== {title}: {len(rows)} passages from {len(set(groups))} pages, {int(y.sum())} generic ==")
    if not 0 < y.sum() < len(y):
        print("   (one class only: no ROC-AUC)")
        return
    print(f"   {'score':<26} {'ROC-AUC':>7}  {'95% CI':<13}  {'AP':>5}  {'95% CI':<13}")
    for name, s in results.items():
        if name.startswith("_"):
            continue
        auc, ap = auc_ap(y, s)
        ci_auc, ci_ap = bootstrap(y, s, groups)
        fmt = (lambda ci: f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci is not None else "—")
        print(f"   {name:<26} {auc:7.3f}  {fmt(ci_auc):<13}  {ap:5.3f}  {fmt(ci_ap):<13}")
    baselines = {k: v for k, v in results.items() if k.startswith("baseline")}
    if "risk" in results and baselines:
        best = max(baselines, key=lambda k: auc_ap(y, baselines[k])[0])
        low, high = paired_difference(y, results["risk"], baselines[best], groups)
        diff = auc_ap(y, results["risk"])[0] - auc_ap(y, baselines[best])[0]
        print(f"   risk − best baseline ({best}): ROC-AUC {diff:+.3f}, paired 95% CI [{low:+.2f}, {high:+.2f}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--final", action="store_true", help="score the held-aside third")
    parser.add_argument("--import-raw", action="store_true", help="rebuild cache and index from raw_*.txt")
    parser.add_argument("--model", action="store_true", help="also a model trained on the synthetic demo corpus")
    parser.add_argument("--features", action="store_true", help="print each feature's ROC-AUC on the split")
    parser.add_argument("--sections", action="store_true",
                        help="per-chapter copy shares as model features, on the synthetic demo corpus (with --final: its held-out quarter)")
    parser.add_argument("--n", type=int, default=1600, help="--sections: synthetic reports per seed")
    parser.add_argument("--seeds", default="11,7,23", help="--sections: corpus seeds")
    args = parser.parse_args(argv)
    if args.sections:
        sections_report(args.n, [int(x) for x in args.seeds.split(",")], args.final)
        return 0
    if args.import_raw:
        import_raw()
        return 0
    split = "holdout" if args.final else "dev"
    rows = load(split)
    results = scores(rows, args.model)
    report(rows, {k: v for k, v in results.items()}, f"{split} — all kinds")
    for kind in KINDS:
        picked = [i for i, r in enumerate(rows) if r["kind"] == kind]
        if len(picked) >= 8:
            report([rows[i] for i in picked], {k: (v[picked] if isinstance(v, np.ndarray) else v)
                                               for k, v in results.items() if not k.startswith("_")}, f"{split} — {kind}")
    if args.features:
        from evalhub.screening.features import BY_KEY

        y = np.array([1 if r["label"] == "generic" else 0 for r in rows])
        print("\n   feature (riskier direction as declared)       ROC-AUC  present")
        for key, definition in BY_KEY.items():
            values = [f.get(key) for f in results["_features"]]
            present = [i for i, v in enumerate(values) if v is not None]
            if len(present) < 10 or not 0 < y[present].sum() < len(present):
                continue
            v = np.array([values[i] for i in present], dtype=float) * (1 if definition.riskier_when_higher else -1)
            print(f"   {key:<45} {auc_ap(y[present], v)[0]:.3f}   {len(present)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
