"""Why a screening's risk is what it is: the features that moved this score, each with its exact contribution.

Method, chosen for faithfulness: a feature's contribution is risk(text) − risk(the same features with that one
set to its neutral value). For the rule score the neutral value is the term's ``neutral`` (what a clean or
typical text has: no placeholders, a typical density of quantities), so the stated amount is exactly what
removing the cause from the text changes, and it is computed, not estimated. For a trained model the neutral
value is the training mean, where a logistic regression's standardised value is 0: the change in log-odds is
then exactly coefficient × standardised value, shown in risk points through the model's own calibration. The
same occlusion works for gradient boosting (an exact effect of that one change, though not additive). SHAP or
an explainable boosting machine would add a dependency for the same numbers on a linear score.

Listed: features that raise the risk, by at least ``MIN_LOG_ODDS`` in log-odds, largest first. A feature
that contributed nothing is never listed, and neither is one at its neutral value (text length is not a term
at all, so "全文字数" is not a reason on every text). tests/test_screening_explain.py checks all of this.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from evalhub.screening.features import BY_KEY
from evalhub.screening.rules import RULE_BY_KEY, RULE_TERMS, rule_score

# A trained model (learning.LoadedModel: predict(rows), card) and the peers (learning.Reference: median(key),
# size), duck-typed so that learning can build on this module.
LoadedModel = Any
Reference = Any

MIN_LOG_ODDS = 0.05  # smaller changes are noise to a reader; near 0 or 1 a real cause moves few risk points


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def score(features: dict[str, Any], model: LoadedModel | None = None) -> float:
    return float(model.predict([features])[0]) if model is not None else rule_score(features)


def neutral_value(key: str, model: LoadedModel | None = None) -> float | None:
    if model is not None:
        value = (model.card.get("neutral_values") or {}).get(key)
        if value is not None:
            return float(value)
    term = RULE_BY_KEY.get(key)
    return term.neutral if term is not None else None


def _keys(model: LoadedModel | None) -> Iterable[str]:
    if model is not None:
        return [f["key"] for f in model.card.get("features", [])] or list(RULE_BY_KEY)
    return [t.key for t in RULE_TERMS]


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def effects(features: dict[str, Any], model: LoadedModel | None = None) -> dict[str, tuple[float, float]]:
    """Per feature: (risk points, log-odds) it adds (positive) or removes (negative) against its neutral value.
    Reasons are ordered by log-odds, the score's additive scale (for the rule score exactly weight × capped
    standardised value), and state risk points, what a reader can check by neutralising the cause; near 0 or 1
    the risk saturates, so the log-odds order is the fair one."""
    keys, rows = [], [features]
    for key in _keys(model):
        value = features.get(key)
        neutral = neutral_value(key, model)
        if _missing(value) or neutral is None or float(value) == neutral:
            continue
        keys.append(key)
        rows.append({**features, key: neutral})
    # one call for a model (a calibrated ensemble costs the same for one row or thirty)
    scores = [float(p) for p in model.predict(rows)] if model is not None else [rule_score(r) for r in rows]
    base, out = scores[0], {}
    for key, without in zip(keys, scores[1:]):
        if base != without:
            out[key] = (round(base - without, 4), round(_logit(base) - _logit(without), 4))
    return out


def contributions(features: dict[str, Any], model: LoadedModel | None = None) -> dict[str, float]:
    """Risk points each feature adds (positive) or removes (negative) against its neutral value."""
    return {k: risk for k, (risk, _lo) in effects(features, model).items()}


def _amount(delta: float) -> str:
    return f"（使风险 +{delta:.2f}）" if delta >= 0.01 else f"（使风险 +{delta:.3f}）"


def _reason_text(key: str, value: Any, neutral: float | None, delta: float, *, missing: Iterable[str] = (),
                 duplicated: Iterable[str] = (), reference: Reference | None = None) -> str:
    amount = _amount(delta)
    if key == "missing_chapters" and missing:
        return "缺少章节：" + "、".join(missing) + amount
    if key == "duplicated_chapters" and duplicated:
        return "章节重复：" + "、".join(duplicated) + amount
    definition = BY_KEY[key]
    word = "占" if definition.fmt == "pct" else "为"
    compared = f"中性值 {definition.show(neutral)}" if neutral is not None else ""
    median = reference.median(key) if reference is not None and reference.size else None
    if median is not None:
        compared += f"，同类中位数 {definition.show(median)}"
    return f"{definition.label}{word} {definition.show(value)}，{compared}{amount}"


def reasons(features: dict[str, Any], model: LoadedModel | None = None, *, reference: Reference | None = None,
            limit: int = 5, missing: Iterable[str] = (), duplicated: Iterable[str] = (),
            near_duplicate: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The features that raised this risk, largest contribution first, in plain Chinese with the amount.
    ``near_duplicate``: {"doc_id", "jaccard", "text"} naming the other report (its text is redacted per reader
    when shown)."""
    out: list[dict[str, Any]] = []
    ranked = sorted(((k, d, lo) for k, (d, lo) in effects(features, model).items() if d > 0 and lo >= MIN_LOG_ODDS),
                    key=lambda item: -item[2])
    for key, delta, _lo in ranked[:limit]:
        value, neutral = features.get(key), neutral_value(key, model)
        item = {"feature": key, "contribution": delta, "percentile": None, "value": value, "neutral": neutral}
        if key == "near_duplicate" and near_duplicate is not None:
            item.update(doc_id=near_duplicate.get("doc_id"), jaccard=near_duplicate.get("jaccard"),
                        text=near_duplicate["text"] + _amount(delta))
        else:
            item["text"] = _reason_text(key, value, neutral, delta, missing=missing, duplicated=duplicated,
                                        reference=reference)
        out.append(item)
    return out
