"""Risk scores: the transparent rule score for a cold start, and the trained scikit-learn model.

Training compares a calibrated logistic regression (imputation + scaling) with calibrated gradient
boosting on a time-based split (the latest quarter of labelled reports held out), against the rule score,
the best single feature and a length-only baseline, and keeps whichever model has the higher average
precision. Metrics are from the held-out split; the kept model is then refitted on every label.
"""
from __future__ import annotations

import json
import math
import platform
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from evalhub.core.timeutil import format_beijing, utcnow
from evalhub.screening import explain
from evalhub.screening.features import BY_KEY, FEATURE_KEYS, FEATURES
from evalhub.screening.rules import RULE_BIAS, RULE_BY_KEY, RULE_TERMS, RuleTerm, rule_score, rule_terms  # noqa: F401

MIN_LABELS = 60
MIN_POSITIVES = 15
TEST_SHARE = 0.25
DEFAULT_BUDGET = 0.10


class IncompatibleModel(Exception):
    """The artefact was built with a scikit-learn this installation cannot load safely."""


class NotEnoughLabels(Exception):
    pass


class NotPromotable(Exception):
    """The candidate does not beat the rule score on its own held-out (time-split) labels."""


def promotion_verdict(candidate: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    """A model may replace the rule score only when, on the same later-in-time held-out labels, its average
    precision is higher and its ROC-AUC is not lower. Otherwise the rule score stays the default."""
    ap, rule_ap = candidate.get("average_precision"), rule.get("average_precision")
    auc, rule_auc = candidate.get("roc_auc"), rule.get("roc_auc")
    if None in (ap, rule_ap, auc, rule_auc):
        return {"allowed": False, "reason": "检验集只有一类标注，无法与规则评分比较；不能启用。"}
    if ap > rule_ap and auc >= rule_auc:
        return {"allowed": True, "reason": f"检验集上平均精度 {ap:.3f} 高于规则评分 {rule_ap:.3f}，ROC-AUC {auc:.3f} 不低于规则评分 {rule_auc:.3f}。"}
    return {"allowed": False,
            "reason": f"检验集（按时间划分的较晚标注）上平均精度 {ap:.3f}、ROC-AUC {auc:.3f}，"
                      f"未超过规则评分（平均精度 {rule_ap:.3f}、ROC-AUC {rule_auc:.3f}）；规则评分继续作为默认，此模型不能启用。"}


def check_promotable(card: dict[str, Any]) -> None:
    """Raise NotPromotable unless the card records that the model beat the rule score (cards from before this
    rule have no verdict and are judged from their metrics)."""
    verdict = card.get("promotion")
    if verdict is None:
        rule = (card.get("baselines") or {}).get("rule_score")
        verdict = promotion_verdict(card.get("metrics") or {}, rule or {})
    if not verdict.get("allowed"):
        raise NotPromotable(verdict.get("reason") or "模型未超过规则评分，不能启用。")


# --- the rule score: screening/rules.py ----------------------------------------------------------------

class Reference:
    """Sorted peer values per feature, for percentiles, medians and the rule score."""

    def __init__(self, rows: Iterable[dict[str, Any]]):
        rows = list(rows)
        self.size = len(rows)
        # one feature at a time over all rows (a screening builds one of these per text screened)
        self.values = {key: sorted([float(value) for row in rows if (value := row.get(key)) is not None
                                    and not (isinstance(value, float) and math.isnan(value))])
                       for key in FEATURE_KEYS}

    def percentile(self, key: str, value: float | None) -> float | None:
        """Share of peers this value is riskier than (mid-rank for ties), 0–1."""
        peers = self.values.get(key) or []
        if value is None or not peers or (isinstance(value, float) and math.isnan(value)):
            return None
        below, above = bisect_left(peers, value), len(peers) - bisect_right(peers, value)
        ties = len(peers) - below - above
        lower = (below + ties / 2) / len(peers)
        return lower if BY_KEY[key].riskier_when_higher else 1 - lower

    def median(self, key: str) -> float | None:
        peers = self.values.get(key) or []
        return float(np.median(peers)) if peers else None

    def rule_score(self, features: dict[str, Any]) -> float:
        """The published rule score (``rule_score``); peers only supply the medians shown beside it."""
        return rule_score(features)

    def reasons(self, features: dict[str, Any], limit: int = 5) -> list[dict[str, Any]]:
        """The rule score's reasons: the terms that moved this score, by exact contribution (screening.explain)."""
        return explain.reasons(features, None, reference=self, limit=limit)


# --- metrics ----------------------------------------------------------------------------------------

def evaluate(y: np.ndarray, score: np.ndarray, budget: float = DEFAULT_BUDGET) -> dict[str, float | None]:
    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    k = max(1, math.ceil(len(y) * budget))
    top = np.argsort(-score, kind="stable")[:k]
    two_classes = 0 < y.sum() < len(y)
    return {"roc_auc": round(float(roc_auc_score(y, score)), 4) if two_classes else None,
            "average_precision": round(float(average_precision_score(y, score)), 4) if two_classes else None,
            "precision_at_budget": round(float(y[top].mean()), 4), "n": int(len(y)), "positives": int(y.sum())}


def _matrix(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[FEATURE_KEYS].astype(float)


def candidates() -> dict[str, Pipeline | CalibratedClassifierCV]:
    logistic = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                         ("scale", StandardScaler()),
                         ("classify", LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000))])
    boosting = Pipeline([("classify", HistGradientBoostingClassifier(max_depth=3, learning_rate=0.08, max_iter=150,
                                                                      random_state=0))])
    return {"logistic_regression": CalibratedClassifierCV(logistic, method="sigmoid", cv=3),
            "gradient_boosting": CalibratedClassifierCV(boosting, method="sigmoid", cv=3)}


ALGORITHM_LABELS = {"logistic_regression": "逻辑回归（标准化、概率校准）",
                    "gradient_boosting": "梯度提升树（概率校准）"}


@dataclass
class TrainingResult:
    estimator: Any
    card: dict[str, Any]


def train(frame: pd.DataFrame, *, budget: float = DEFAULT_BUDGET,
          progress: Callable[[int, int, str], None] | None = None) -> TrainingResult:
    """``frame``: FEATURE_KEYS columns plus ``label`` (0/1), ``at`` (when submitted), ``source``
    (panel / inspection) and ``random`` (labelled by a random inspection)."""
    # One thread: the data are small, and OpenMP threads fighting the web server or the worker for two cores
    # made a half-second fit take half a minute.
    with threadpool_limits(limits=1):
        return _train(frame, budget=budget, progress=progress)


def _train(frame: pd.DataFrame, *, budget: float,
           progress: Callable[[int, int, str], None] | None) -> TrainingResult:
    step = (lambda done, msg: progress(done, 6, msg)) if progress else (lambda done, msg: None)
    frame = frame.sort_values("at", kind="stable").reset_index(drop=True)
    y_all = frame["label"].astype(int).to_numpy()
    if len(frame) < MIN_LABELS or y_all.sum() < MIN_POSITIVES or (len(frame) - y_all.sum()) < MIN_POSITIVES:
        raise NotEnoughLabels(f"有标注的报告 {len(frame)} 份（其中不合格 {int(y_all.sum())} 份）；训练需要至少 {MIN_LABELS} 份，"
                              f"合格与不合格各不少于 {MIN_POSITIVES} 份。在此之前继续使用规则评分。")
    cut = int(len(frame) * (1 - TEST_SHARE))
    train_rows, test_rows = frame.iloc[:cut], frame.iloc[cut:]
    X_train, X_test = _matrix(train_rows), _matrix(test_rows)
    y_train, y_test = y_all[:cut], y_all[cut:]
    step(1, "按时间划分训练集和检验集")

    reference = Reference(train_rows[FEATURE_KEYS].to_dict("records"))
    baselines = {"rule_score": evaluate(y_test, np.array([reference.rule_score(r) for r in X_test.to_dict("records")]), budget),
                 "length_only": evaluate(y_test, -X_test["length_chars"].fillna(0).to_numpy(), budget)}
    best_key, best_ap = None, -1.0
    for key in FEATURE_KEYS:
        column = X_train[key]
        if column.notna().sum() < 10 or column.nunique() < 2 or len(set(y_train)) < 2:
            continue
        oriented = column.fillna(column.median()) * (1 if BY_KEY[key].riskier_when_higher else -1)
        ap = average_precision_score(y_train, oriented)
        if ap > best_ap:
            best_key, best_ap = key, ap
    if best_key is not None:
        sign = 1 if BY_KEY[best_key].riskier_when_higher else -1
        column = X_test[best_key].fillna(X_train[best_key].median())
        baselines["best_single_feature"] = {**evaluate(y_test, sign * column.to_numpy(), budget), "feature": best_key,
                                            "label": BY_KEY[best_key].label}
    step(2, "计算基准（规则评分、最佳单一特征、仅按篇幅）")

    results: dict[str, dict[str, Any]] = {}
    fitted: dict[str, Any] = {}
    for n, (name, estimator) in enumerate(candidates().items(), start=3):
        estimator.fit(X_train, y_train)
        results[name] = evaluate(y_test, estimator.predict_proba(X_test)[:, 1], budget)
        fitted[name] = estimator
        step(n, f"训练并检验：{ALGORITHM_LABELS[name]}")
    winner = max(results, key=lambda k: (results[k]["average_precision"] or 0, k == "logistic_regression"))
    final = candidates()[winner]
    final.fit(_matrix(frame), y_all)
    step(5, f"用全部标注样本重新拟合：{ALGORITHM_LABELS[winner]}")

    # Labels from random inspections are the unbiased ones: precision among the held-out randomly
    # inspected reports, scored by the winner as fitted on the training split only.
    random_test = test_rows[test_rows["random"].astype(bool)]
    random_estimate = None
    if len(random_test):
        scores = fitted[winner].predict_proba(_matrix(random_test))[:, 1]
        random_estimate = evaluate(random_test["label"].astype(int).to_numpy(), scores, budget)
    promotion = promotion_verdict(results[winner], baselines["rule_score"])
    # Neutral values for the explanations: the training means, where a standardised value is 0.
    neutral_values = {k: (None if math.isnan(v) else round(float(v), 6)) for k, v in _matrix(frame).mean().items()}
    card = {
        "algorithm": winner,
        "promotion": promotion,
        "neutral_values": neutral_values,
        "algorithm_label": ALGORITHM_LABELS[winner],
        # UTC, as every time is stored; shown in Beijing time by ``card_time``
        "trained_at": utcnow().isoformat(timespec="seconds"),
        "data_window": {"from": frame["at"].min().isoformat(), "to": frame["at"].max().isoformat(),
                        "test_from": test_rows["at"].min().isoformat()},
        "labels": {"total": int(len(frame)), "positives": int(y_all.sum()), "negatives": int(len(frame) - y_all.sum()),
                   "from_panels": int((frame["source"] == "panel").sum()),
                   "from_inspections": int((frame["source"] == "inspection").sum()),
                   "from_random_inspections": int(frame["random"].astype(bool).sum()),
                   "train": int(len(train_rows)), "test": int(len(test_rows))},
        "features": [{"key": f.key, "label": f.label, "riskier_when_higher": f.riskier_when_higher} for f in FEATURES],
        "budget": budget,
        "metrics": results[winner],
        "candidates": results,
        "baselines": baselines,
        "random_inspection_estimate": random_estimate,
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__,
                     "python": platform.python_version()},
    }
    step(6, "完成")
    return TrainingResult(estimator=final, card=card)


# --- artefacts ----------------------------------------------------------------------------------------

def save(result: TrainingResult, directory: Path, version: str) -> str:
    """Write ``screening-<version>.joblib``, its model card as JSON and as a readable Markdown page."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"screening-{version}"
    card = {**result.card, "version": version, "artefact": f"{name}.joblib"}
    joblib.dump({"estimator": result.estimator, "card": card, "feature_keys": FEATURE_KEYS}, directory / f"{name}.joblib")
    (directory / f"{name}.json").write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")
    (directory / f"{name}.md").write_text(card_markdown(card), encoding="utf-8")
    result.card = card
    return f"{name}.joblib"


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2] if p.isdigit())


def check_compatible(card: dict[str, Any]) -> None:
    built = (card.get("versions") or {}).get("scikit-learn", "")
    if _minor(built) != _minor(sklearn.__version__):
        raise IncompatibleModel(f"模型 {card.get('version', '')} 由 scikit-learn {built or '未知版本'} 训练，当前安装的是 "
                                f"{sklearn.__version__}；不同版本之间模型文件不能可靠加载。请用当前版本重新训练后再启用。")


@dataclass
class LoadedModel:
    version: str
    estimator: Any
    card: dict[str, Any]

    def predict(self, rows: list[dict[str, Any]]) -> np.ndarray:
        frame = pd.DataFrame([{k: (np.nan if r.get(k) is None else r.get(k)) for k in FEATURE_KEYS} for r in rows],
                             columns=FEATURE_KEYS).astype(float)
        return self.estimator.predict_proba(frame)[:, 1]


def load(directory: Path, artefact: str) -> LoadedModel:
    """Load an artefact, checking the card beside it before unpickling anything."""
    path = directory / artefact
    card_path = path.with_suffix(".json")
    if not path.exists() or not card_path.exists():
        raise FileNotFoundError(f"找不到模型文件 {path.name}（或其模型说明 {card_path.name}）")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    check_compatible(card)
    payload = joblib.load(path)
    if payload.get("feature_keys") != FEATURE_KEYS:
        raise IncompatibleModel(f"模型 {card.get('version')} 使用的特征与当前程序不一致，请重新训练。")
    return LoadedModel(version=card.get("version", ""), estimator=payload["estimator"], card=card)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def card_time(value: Any) -> str:
    """A time a model card holds, as the site shows times (Beijing, to the minute). Cards keep ISO text in UTC
    (naive); a card written before kept its training time with the server's offset, which is honoured."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return format_beijing(parsed)


def card_markdown(card: dict[str, Any]) -> str:
    labels = card["labels"]
    window = card["data_window"]
    lines = [f"# 报告质量筛查模型 {card.get('version', '')}", "",
             f"- 算法：{card['algorithm_label']}", f"- 训练时间：{card_time(card['trained_at'])}",
             f"- 数据窗口：{card_time(window['from'])} 至 {card_time(window['to'])}（{card_time(window['test_from'])} 起为检验集）",
             f"- 标注：共 {labels['total']} 份，不合格 {labels['positives']}，合格 {labels['negatives']}；来自专家评审 "
             f"{labels['from_panels']}，来自检查 {labels['from_inspections']}（其中不定向抽查 {labels['from_random_inspections']}）",
             f"- 抽查比例：{card['budget']:.0%}", "", "## 检验集指标", "",
             "| 方法 | ROC-AUC | 平均精度 | 抽查比例内的精确率 |", "|---|---|---|---|"]
    rows = [(ALGORITHM_LABELS.get(k, k), v) for k, v in card["candidates"].items()]
    names = {"rule_score": "规则评分", "length_only": "仅按篇幅", "best_single_feature": "最佳单一特征"}
    rows += [(names[k] + (f"（{v.get('label')}）" if v.get("label") else ""), v) for k, v in card["baselines"].items()]
    for name, m in rows:
        lines.append(f"| {name} | {_pct(m['roc_auc'])} | {_pct(m['average_precision'])} | {_pct(m['precision_at_budget'])} |")
    verdict = card.get("promotion")
    if verdict:
        lines += ["", "## 能否启用", "", ("可以启用：" if verdict.get("allowed") else "不能启用：") + verdict.get("reason", "")]
    lines += ["", "## 特征", ""] + [f"- {f['label']}（{'越高' if f['riskier_when_higher'] else '越低'}风险越大）"
                                   for f in card["features"]]
    lines += ["", "## 软件版本", ""] + [f"- {k} {v}" for k, v in card["versions"].items()]
    return "\n".join(lines) + "\n"
