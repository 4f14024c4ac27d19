"""Threshold calibration and text features, by hand on tiny inputs."""

import numpy as np
import pytest

from router.scoring.routing_model import RoutingModel, build_inputs, fit_platt
from router.scoring.text_features import FEATURE_NAMES, N_FEATURES, text_features
from training.calibrate import threshold_for_quality, threshold_for_share


def test_threshold_for_share_by_hand():
    scores = [0.9, 0.1, 0.5, 0.7, 0.3]
    assert threshold_for_share(scores, 0.4) == 0.7  # 2 of 5 score >= 0.7
    assert np.mean(np.array(scores) >= threshold_for_share(scores, 0.4)) == 0.4
    assert threshold_for_share(scores, 1.0) == 0.1
    t0 = threshold_for_share(scores, 0.0)
    assert t0 > 0.9 and not any(s >= t0 for s in scores)
    with pytest.raises(ValueError):
        threshold_for_share(scores, 1.5)
    with pytest.raises(ValueError):
        threshold_for_share([], 0.5)


def test_threshold_for_quality_by_hand():
    # weak right on 0,1; strong right on 0,1,2 -> q_strong .75; prompt 2 scores highest.
    weak, strong = [1, 1, 0, 0], [1, 1, 1, 0]
    threshold, share = threshold_for_quality([0.1, 0.2, 0.9, 0.3], weak, strong, 1.0)
    assert (threshold, share) == (0.9, 0.25)
    # Ranked worst-first, 100% of strong quality needs every prompt in the cloud.
    assert threshold_for_quality([0.9, 0.8, 0.1, 0.7], weak, strong, 1.0) == (0.1, 1.0)
    # 0.5/0.75 = 67% of strong quality is met by the weak model alone: share 0.
    assert threshold_for_quality([0.1, 0.2, 0.9, 0.3], weak, strong, 0.6)[1] == 0.0


def test_text_features_by_hand():
    mc = "Which of the following is NOT a prime?\nA. 2\nB. 3\nC. 9\nD. 7\nAnswer:"
    f = dict(zip(FEATURE_NAMES, text_features([mc])[0]))
    assert f["choices"] == 4 and f["negated_stem"] == 1 and f["which_of_following"] == 1
    assert f["numbers"] == 4 and f["code"] == 0
    code = dict(zip(FEATURE_NAMES, text_features(["def f(x):\n    return x + 1"])[0]))
    assert code["code"] == 1 and code["choices"] == 0
    assert text_features([]).shape == (0, N_FEATURES)
    assert build_inputs(np.ones((2, 3)), ["a", "b"]).shape == (2, 3 + N_FEATURES)
    with pytest.raises(ValueError):
        build_inputs(np.ones((2, 3)), ["a"])


def test_platt_keeps_ranking_and_balances():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=400)
    y = (raw + rng.normal(size=400) > 1.2).astype(int)  # about 20% positive
    a, b = fit_platt(raw, y)
    assert a > 0
    model = RoutingModel(None, "ridge", "gap", (a, b))
    p = model.predict_proba_from_raw(raw)
    assert np.array_equal(np.argsort(p), np.argsort(raw))
    # Balanced weights: the mean probability of the positives and negatives straddles 0.5.
    assert p[y == 1].mean() > 0.5 > p[y == 0].mean()
    assert fit_platt(np.ones(5), [0, 1, 0, 1, 0]) == (0.0, 0.0)
