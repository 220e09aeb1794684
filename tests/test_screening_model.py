"""The model against its baselines on a held-out, time-split synthetic set (no database): each report is
screened against the reports submitted before it, as in production; labels are the panel's first-round
score below the pass mark of 90."""
from __future__ import annotations

import re

import pytest

import pandas as pd

from evalhub.review.services import REPORT_CHAPTERS
from evalhub.screening import learning
from evalhub.demo.corpus import generate_corpus
from evalhub.screening.features import FEATURE_KEYS, ScreeningContext, compute
from evalhub.screening.index import CorpusIndex

_YEAR = re.compile(r"\d{4}\s*年度?")


def screened_frame(n: int, seed: int) -> pd.DataFrame:
    corpus = sorted(generate_corpus(n, seed=seed), key=lambda r: r.submitted_on)
    index = CorpusIndex()
    rows = []
    for number, report in enumerate(corpus, start=1):
        facts = report.facts
        ctx = ScreeningContext(names=[facts.object_name, _YEAR.sub("", facts.object_name), facts.unit, facts.firm, facts.region],
                               firm_id=report.firm_key, engagement_id=number, object_key=report.object_key, year=facts.year,
                               budget_wan=facts.budget_wan, spent_wan=facts.spent_wan, execution_rate=facts.execution_rate,
                               chapters=REPORT_CHAPTERS)
        screening = compute(report.text, ctx, index)
        index.add(screening.stored(number, ctx, facts.firm))
        rows.append({**screening.features, "label": int(report.first_round_score < 90), "at": report.submitted_on,
                     "source": "panel", "random": False, "quality": report.quality})
    frame = pd.DataFrame(rows)
    frame[FEATURE_KEYS] = frame[FEATURE_KEYS].astype(float)
    return frame


def test_the_model_beats_the_best_single_feature_and_length_on_a_time_split():
    frame = screened_frame(700, seed=5)
    card = learning.train(frame).card
    model = card["metrics"]
    best = card["baselines"]["best_single_feature"]
    length = card["baselines"]["length_only"]
    print(f"\nheld-out {card['labels']['test']} reports ({model['positives']} below the pass mark); kept {card['algorithm_label']}")
    for name, m in [("model", model), (f"best single feature ({best['feature']})", best), ("length only", length),
                    ("rule score", card["baselines"]["rule_score"])]:
        print(f"  {name:<45} ROC-AUC {m['roc_auc']:.3f}  AP {m['average_precision']:.3f}  precision@10% {m['precision_at_budget']:.3f}")
    assert model["average_precision"] > best["average_precision"]
    assert model["average_precision"] > length["average_precision"]
    assert model["roc_auc"] > max(best["roc_auc"], length["roc_auc"])


def test_copy_features_separate_template_reuse_from_specific_reports():
    frame = screened_frame(300, seed=9)
    by_quality = frame.groupby("quality")
    later = frame.iloc[100:]  # once some reports are stored
    means = later.groupby("quality")[["copy_same_firm", "copy_previous", "generic_advice_share", "unit_voice_share",
                                      "numbers_per_1k"]].mean()
    print("\n" + means.round(3).to_string())
    assert means.loc["template", "copy_same_firm"] > 3 * means.loc["specific", "copy_same_firm"] + 0.1
    assert means.loc["recycled", "copy_previous"] > means.loc["specific", "copy_previous"] + 0.3
    assert means.loc["generic", "generic_advice_share"] > means.loc["specific", "generic_advice_share"] + 0.2
    assert means.loc["unit_summary", "unit_voice_share"] > means.loc["specific", "unit_voice_share"] + 0.05
    assert means.loc["specific", "numbers_per_1k"] > means.loc["generic", "numbers_per_1k"]
    assert set(by_quality.groups) >= {"specific", "template", "generic", "missing_chapters", "unit_summary", "recycled"}


def test_stock_phrase_summaries_agree_with_scanning_the_postings():
    """Sentences found in many reports are answered from running counts; the answer must be the one a
    full scan gives (with discarded reports and other versions of the same engagement left out)."""
    from evalhub.screening.index import COMMON

    corpus = sorted(generate_corpus(420, seed=21), key=lambda r: r.submitted_on)
    index = CorpusIndex()
    contexts = []
    for number, report in enumerate(corpus, start=1):
        facts = report.facts
        ctx = ScreeningContext(names=[facts.object_name, facts.unit, facts.firm, facts.region], firm_id=report.firm_key,
                               engagement_id=number % 400, object_key=report.object_key, year=facts.year,
                               chapters=REPORT_CHAPTERS)
        index.add(compute(report.text, ctx, None).stored(number, ctx, facts.firm))
        contexts.append(ctx)
    for doc_id in range(3, 60, 7):
        index.discard(doc_id)
    assert any(len(bucket) >= COMMON for bucket in index.postings.values())
    compared = 0
    for number in range(380, 420):
        ctx, keys = contexts[number], index.reports[index.slot[number + 1]].keys.tolist()
        args = dict(kind="report", firm_id=ctx.firm_id, engagement_id=ctx.engagement_id, object_key=ctx.object_key,
                    year=ctx.year)
        fast = index.lookup(keys, list_limit=5, **args)
        exact = index.lookup(keys, **args)
        for a, b in zip(fast, exact):
            assert (a is None) == (b is None)
            if a is not None:
                assert (a.frequency, bool(a.same_firm), bool(a.other_firms), bool(a.previous)) == \
                    (b.frequency, bool(b.same_firm), bool(b.other_firms), bool(b.previous))
                compared += a.frequency >= COMMON
    assert compared > 50  # the summaries were really used


# --- the promotion rule (issue 16): the rule score stays the default until a model beats it ----------------

def test_a_model_must_beat_the_rule_score_on_its_own_held_out_labels():
    rule = {"roc_auc": 0.80, "average_precision": 0.70}
    assert learning.promotion_verdict({"roc_auc": 0.85, "average_precision": 0.75}, rule)["allowed"]
    for worse in ({"roc_auc": 0.85, "average_precision": 0.70}, {"roc_auc": 0.79, "average_precision": 0.90},
                  {"roc_auc": None, "average_precision": None}):
        verdict = learning.promotion_verdict(worse, rule)
        assert not verdict["allowed"] and "规则评分" in verdict["reason"]
    with pytest.raises(learning.NotPromotable, match="规则评分"):
        learning.check_promotable({"metrics": {"roc_auc": 0.7, "average_precision": 0.6},
                                   "baselines": {"rule_score": rule}})  # a card from before the rule: judged too
    learning.check_promotable({"promotion": {"allowed": True, "reason": ""}})


def _frame_the_rule_score_ranks_perfectly(n: int = 120) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(np.zeros((n, len(FEATURE_KEYS))), columns=FEATURE_KEYS)
    frame["quantities_per_1k"] = rng.uniform(0, 30, n)
    frame["slogan_share"] = rng.uniform(0, 0.5, n)
    scores = np.array([learning.rule_score(row) for row in frame.to_dict("records")])
    frame["label"] = (scores > np.median(scores)).astype(int)
    frame["at"] = pd.date_range("2023-01-01", periods=n, freq="5D")
    frame["source"] = "panel"
    frame["random"] = False
    return frame


def test_a_candidate_that_does_not_beat_the_rule_score_cannot_be_promoted_and_the_page_says_why(
        app, client, login, world):
    from pathlib import Path

    import sqlalchemy as sa

    from evalhub.core.errors import Conflict
    from evalhub.extensions import db
    from evalhub.screening import services as S
    from evalhub.screening.models import ModelStatus, ScreeningModel

    result = learning.train(_frame_the_rule_score_ranks_perfectly())
    card = result.card
    assert card["baselines"]["rule_score"]["average_precision"] == 1.0
    assert not card["promotion"]["allowed"] and "规则评分" in card["promotion"]["reason"]
    artefact = learning.save(result, Path(app.config["MODELS_DIR"]), "20250301-1")
    model = ScreeningModel(version="20250301-1", algorithm=card["algorithm"], artefact=artefact, card=result.card,
                           status=ModelStatus.CANDIDATE)
    db.session.add(model)
    db.session.commit()
    with pytest.raises(Conflict, match="规则评分"):
        S.promote(model, world.region_admin)
    assert model.status == ModelStatus.CANDIDATE and S.active_model() == (None, None)

    login(world.region_admin)
    page = client.get(f"/screening/models/{model.id}").get_data(as_text=True)
    assert 'data-testid="promotion"' in page and "不能启用" in page and 'data-testid="promote"' not in page
    listing = client.get("/screening/models").get_data(as_text=True)
    assert f'data-testid="not-promotable-{model.id}"' in listing and f'data-testid="promote-{model.id}"' not in listing
    refused = client.post(f"/screening/models/{model.id}/promote")
    assert refused.status_code == 409 and "规则评分" in refused.get_data(as_text=True)
    assert db.session.execute(sa.select(ScreeningModel.status).where(ScreeningModel.id == model.id)).scalar_one() \
        == ModelStatus.CANDIDATE


def test_a_demo_trained_model_is_marked_synthetic_on_its_card(app, client, login, world):
    from pathlib import Path

    from evalhub.extensions import db
    from evalhub.screening.models import ModelStatus, ScreeningModel

    result = learning.train(_frame_the_rule_score_ranks_perfectly())
    artefact = learning.save(result, Path(app.config["MODELS_DIR"]), "20250302-1")
    model = ScreeningModel(version="20250302-1", algorithm=result.card["algorithm"], artefact=artefact,
                           card={**result.card, "synthetic": True, "synthetic_note": "合成报告和合成标注"},
                           status=ModelStatus.CANDIDATE)
    db.session.add(model)
    db.session.commit()
    login(world.region_admin)
    assert 'data-testid="synthetic"' in client.get(f"/screening/models/{model.id}").get_data(as_text=True)
    assert f'data-testid="synthetic-{model.id}"' in client.get("/screening/models").get_data(as_text=True)
