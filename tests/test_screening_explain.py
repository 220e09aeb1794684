"""Explanations are true: the reasons are the features that moved this score, in order of their contribution;
neutralising a listed reason's cause changes the risk in the stated direction by the stated amount; a feature
that contributed nothing is never listed; no reason is on every text (no database)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from evalhub.review.services import REPORT_CHAPTERS
from evalhub.screening import explain, learning
from evalhub.screening.features import FEATURE_KEYS, ScreeningContext, compute

AMOUNT = re.compile(r"使风险 \+(\d+\.\d+)")

SPECIFIC = ("新建300米深机井1座、100吨水塔1座，配套干管1100m；资金105万元已于2022年6月拨付，受益农户320户，"
            "灌溉面积由850亩增至1200亩，东风村2处管道渗漏已于9月返修，红旗乡卫生院设备于10月验收。")
VACUOUS = ("为深入贯彻落实党中央决策部署，我局高度重视，项目各项指标均已完成，完成率100%，"
           "取得了良好的社会效益和经济效益，群众满意度明显提升。存在问题：暂无。")
TEMPLATE = ("镇 xxxx 年涉农整合资金预算金额为 xxxx.xx 万元，其中产业项目 x 个。我镇于 xxxx 年 x 月初开展了自评工作，"
            "项目绩效明显，群众满意度不断提高。")
TABLE = "质量指标 药品抽检完成率 100% 100%\n不良反应每百万人口报告数 ≥150 150\n培训人员覆盖率 100% 100%\n任务完成时间 2021年底 2021年底"
TEXTS = [SPECIFIC, VACUOUS, TEMPLATE, TABLE,
         "评价组抽查了12个村，回收问卷300份，发现3个村的管护台账缺失，涉及资金46.5万元。",
         "一、基本情况\n项目资金已全部到位，严格管理，做到专款专用。\n五、存在的问题\n暂无问题。"]


def features(text: str) -> dict:
    return compute(text, ScreeningContext(chapters=REPORT_CHAPTERS), None).features


def test_each_listed_reason_states_what_neutralising_it_changes():
    for text in TEXTS:
        f = features(text)
        risk = learning.rule_score(f)
        for reason in explain.reasons(f):
            changed = {**f, reason["feature"]: reason["neutral"]}
            drop = risk - learning.rule_score(changed)
            assert drop > 0  # the stated direction: the cause raised the risk
            assert drop == pytest.approx(reason["contribution"], abs=1e-4)
            stated = float(AMOUNT.search(reason["text"]).group(1))
            assert stated == pytest.approx(drop, abs=0.006)  # the amount printed, rounded


def test_removing_the_placeholders_from_the_text_lowers_the_risk_by_about_the_stated_amount():
    f = features(TEMPLATE)
    listed = {r["feature"]: r for r in explain.reasons(f)}
    assert "placeholders" in listed and f["placeholders"] >= 4
    cleaned = TEMPLATE.replace("xxxx.xx", "").replace("xxxx", "").replace(" x ", " ")
    g = features(cleaned)
    assert g["placeholders"] == 0
    drop = learning.rule_score(f) - learning.rule_score(g)
    # the text change also shortens the text a little, so "about": within a quarter of the stated amount
    assert drop == pytest.approx(listed["placeholders"]["contribution"], rel=0.25)


def test_reasons_are_ordered_by_contribution_and_nothing_is_listed_that_contributed_nothing():
    for text in TEXTS:
        f = features(text)
        reasons = explain.reasons(f, limit=20)
        effects = explain.effects(f)
        log_odds = [effects[r["feature"]][1] for r in reasons]
        assert log_odds == sorted(log_odds, reverse=True)
        listed = {r["feature"] for r in reasons}
        for key in FEATURE_KEYS:
            term = learning.RULE_BY_KEY.get(key)
            if term is None or f.get(key) is None or term.term(f[key]) <= 0:
                assert key not in listed, (key, text[:20])
    # length is not a term of the score: never a reason (it was "全文字数 … 中位数 3,727" on every text)
    assert all(r["feature"] != "length_chars" for t in TEXTS for r in explain.reasons(features(t), limit=20))


def test_no_reason_is_on_every_text():
    listed = [{r["feature"] for r in explain.reasons(features(t), limit=20)} for t in TEXTS]
    assert not set.intersection(*listed)
    assert not listed[0] or all(k in ("entities_per_1k",) for k in listed[0])  # the specific text: nothing (or little) to flag


def test_unit_voice_that_does_not_move_the_score_is_not_a_reason():
    """Issue 16: removing every 我局 changed the risk by 0.000 yet unit voice was listed. Now a feature is listed
    only by what it moves, so a text at the neutral value lists nothing for it."""
    text = "评价组抽查了12个村，回收问卷300份，涉及资金46.5万元。"
    f = features(text)
    assert f["unit_voice_share"] == 0.0
    assert "unit_voice_share" not in {r["feature"] for r in explain.reasons(f, limit=20)}
    with_voice = features("我局" + text)
    assert with_voice["unit_voice_share"] > 0
    listed = {r["feature"]: r for r in explain.reasons(with_voice, limit=20)}
    if "unit_voice_share" in listed:  # listed only with the amount it really adds
        drop = learning.rule_score(with_voice) - learning.rule_score({**with_voice, "unit_voice_share": 0.0})
        assert listed["unit_voice_share"]["contribution"] == pytest.approx(drop, abs=1e-4)


class _Linear:
    """A fitted-looking linear model: P = sigmoid(b + Σ w·(x − mean)/sd), the shape of the logistic pipeline."""

    def __init__(self, weights: dict, means: dict, sds: dict, bias: float = -0.3):
        self.weights, self.means, self.sds, self.bias = weights, means, sds, bias

    def predict_proba(self, frame):
        logit = np.full(len(frame), self.bias)
        for key, w in self.weights.items():
            logit = logit + w * (frame[key].fillna(self.means[key]).to_numpy() - self.means[key]) / self.sds[key]
        p = 1 / (1 + np.exp(-logit))
        return np.column_stack([1 - p, p])


def test_model_reasons_are_coefficient_times_standardised_value_and_a_zero_coefficient_is_never_listed():
    weights = {"quantities_per_1k": -1.2, "slogan_share": 0.8, "blanket_claims_per_1k": 0.5, "unit_voice_share": 0.0}
    means = {k: 0.0 for k in FEATURE_KEYS} | {"quantities_per_1k": 8.0, "slogan_share": 0.1, "blanket_claims_per_1k": 1.0}
    sds = {k: 1.0 for k in FEATURE_KEYS} | {"quantities_per_1k": 6.0, "slogan_share": 0.2, "blanket_claims_per_1k": 2.0}
    card = {"features": [{"key": k} for k in FEATURE_KEYS], "neutral_values": means}
    model = learning.LoadedModel(version="t", estimator=_Linear(weights, means, sds), card=card)
    f = {**features("我局" + VACUOUS)}
    assert f["unit_voice_share"] > 0
    effects = explain.effects(f, model)
    for key, w in weights.items():
        if w == 0:
            assert key not in effects
            continue
        z = (f[key] - means[key]) / sds[key]
        assert effects[key][1] == pytest.approx(w * z, abs=1e-3)  # log-odds: coefficient × standardised value
    listed = [r["feature"] for r in explain.reasons(f, model, limit=20)]
    assert "unit_voice_share" not in listed and set(listed) == {"quantities_per_1k", "slogan_share", "blanket_claims_per_1k"}
    assert [effects[k][1] for k in listed] == sorted((effects[k][1] for k in listed), reverse=True)
    for r in explain.reasons(f, model):
        drop = explain.score(f, model) - explain.score({**f, r["feature"]: r["neutral"]}, model)
        assert drop == pytest.approx(r["contribution"], abs=1e-4) and drop > 0


def test_the_rule_score_is_a_published_function_of_the_features():
    f = features(VACUOUS)
    logit = learning.RULE_BIAS + sum(learning.rule_terms(f).values())
    assert learning.rule_score(f) == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-4)
    assert learning.Reference([]).rule_score(f) == learning.rule_score(f)  # no peers needed


def test_every_rule_term_points_the_way_its_feature_says_risk_lies():
    """Each term's weight has the sign of features.FEATURES' "riskier when higher" flag: more of a risky thing
    adds risk, more of a good thing (quantities, named places, stated facts) removes it. A wrong sign scored a
    report that left out its recorded budget as safer than one that stated it."""
    from evalhub.screening.features import BY_KEY
    from evalhub.screening.rules import RULE_TERMS

    for term in RULE_TERMS:
        assert term.weight != 0, term.key
        assert (term.weight > 0) == BY_KEY[term.key].riskier_when_higher, term.key
        below, above = term.neutral - term.scale, term.neutral + term.scale
        if term.log:
            below, above = max(term.neutral - 1.0, 0.0), term.neutral + 1.0
        assert (term.term(above) > term.term(below)) == BY_KEY[term.key].riskier_when_higher, term.key
