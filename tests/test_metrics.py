import numpy as np
import pytest

from training.metrics import apgr, bootstrap_metrics, cpt, quality_curve, router_metrics, share_for_quality


def _toy():
    # 4 prompts: weak right on 0,1; strong right on 0,1,2 -> q_weak 0.5, q_strong 0.75
    weak = np.array([1, 1, 0, 0.0])
    strong = np.array([1, 1, 1, 0.0])
    return weak, strong


def test_oracle_curve_by_hand():
    weak, strong = _toy()
    curve = quality_curve([0, 0, 1, 0], weak, strong)  # prompt 2 first: the only one that gains
    assert curve.quality.tolist() == [0.5, 0.75, 0.75, 0.75, 0.75]
    assert curve.pgr.tolist() == [0, 1, 1, 1, 1]
    # trapezoid on c = 0, .25, .5, .75, 1: 0.125 + 0.25 * 3 = 0.875
    assert apgr(curve) == pytest.approx(0.875)
    assert cpt(curve, 0.5) == 0.25
    assert share_for_quality(curve, 0.95) == 0.25


def test_worst_router_and_first_crossing():
    weak, strong = _toy()
    # prompt 2 last: PGR stays 0 until c = 1
    curve = quality_curve([3, 2, 0, 1], weak, strong)
    assert curve.pgr.tolist() == [0, 0, 0, 0, 1]
    assert apgr(curve) == pytest.approx(0.125)
    assert cpt(curve, 0.5) == 1.0


def test_non_monotone_curve_takes_first_crossing():
    weak = np.array([0, 1, 0, 0.0])
    strong = np.array([1, 0, 1, 0.0])  # q_weak .25, q_strong .5
    curve = quality_curve([4, 3, 2, 1], weak, strong)
    assert curve.pgr.tolist() == [0, 1, 0, 1, 1]
    assert cpt(curve, 0.8) == 0.25


def test_random_router_apgr_near_half():
    rng = np.random.default_rng(1)
    weak = (rng.random(4000) < 0.6).astype(float)
    strong = np.maximum(weak, rng.random(4000) < 0.5).astype(float)
    m = router_metrics(rng.random(4000), weak, strong)
    assert 0.45 < m["apgr"] < 0.55 and 0.45 < m["auroc"] < 0.55
    oracle = router_metrics(strong - weak, weak, strong)
    assert oracle["apgr"] > 0.9 and oracle["auroc"] == pytest.approx(1.0)


def test_bootstrap_interval_contains_point():
    rng = np.random.default_rng(2)
    weak = (rng.random(500) < 0.6).astype(float)
    strong = np.maximum(weak, rng.random(500) < 0.5).astype(float)
    b = bootstrap_metrics(strong - weak + rng.normal(0, 0.5, 500), weak, strong, n_boot=50)
    point, lo, hi = b["apgr"]
    assert lo <= point <= hi and hi - lo > 0


def test_undefined_pgr_raises():
    with pytest.raises(ValueError):
        quality_curve([1, 2], [1, 1], [1, 1])


def test_auroc_and_strong_share_by_hand():
    from training.metrics import auroc

    # Positives score 0.8 and 0.4, negatives 0.6 and 0.2: 3 of 4 pairs ordered right.
    assert auroc([0.8, 0.4, 0.6, 0.2], [1, 1, 0, 0]) == pytest.approx(0.75)
    assert np.isnan(auroc([0.1, 0.2], [1, 1]))
    weak, strong = _toy()
    curve = quality_curve([0, 0, 1, 0], weak, strong)
    # q_strong .75: 60% of it (.45) is already met by the weak model alone.
    assert share_for_quality(curve, 0.6) == 0.0
    m = router_metrics([0, 0, 1, 0], weak, strong)
    assert m["cpt80"] == 0.25 and m["auroc"] == pytest.approx(1.0)
    assert (m["q_weak"], m["q_strong"], m["n"]) == (0.5, 0.75, 4.0)


def test_ties_behave_as_random():
    weak, strong = _toy()
    # A constant score: ties are broken by a fixed permutation, reproducibly.
    a = quality_curve([1, 1, 1, 1], weak, strong, seed=3).pgr
    b = quality_curve([1, 1, 1, 1], weak, strong, seed=3).pgr
    assert a.tolist() == b.tolist() and a[0] == 0 and a[-1] == 1
