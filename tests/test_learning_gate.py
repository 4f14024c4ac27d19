"""``learn``'s promotion test (router/learning/gate.py): the paired one-sided loss test, the
active router's recalibration, and the pooled rolling-block gate promoting a real signal and
refusing shuffled labels."""

from __future__ import annotations

import numpy as np
import pytest

from router.learning.evaluate import time_splits
from router.learning.gate import gate, paired_loss_test, platt, request_losses


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_losses_are_the_log_loss_and_the_brier_score():
    p, t = np.array([0.9, 0.2, 0.5]), np.array([1.0, 0.0, 0.5])
    assert request_losses(p, t) == pytest.approx([-np.log(0.9), -np.log(0.8), np.log(2)])
    assert request_losses(p, t, "brier") == pytest.approx([0.01, 0.04, 0.0])
    with pytest.raises(ValueError):
        request_losses(p, t, "hinge")


def test_paired_test_finds_a_better_candidate_and_not_an_equal_one():
    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=n)
    y = (rng.random(n) < _sigmoid(1.5 * x)).astype(float)
    informed, base = _sigmoid(1.5 * x), np.full(n, y.mean())
    better = paired_loss_test(informed, base, y, np.ones(n))
    assert better.better and better.diff > 0.05 and better.p_value < 1e-6 and better.n_eff == pytest.approx(n)
    assert better.loss_active == pytest.approx(request_losses(base, y).mean())
    same = paired_loss_test(base, base, y, np.ones(n))
    assert not same.better and same.p_value == 1.0 and same.diff == 0.0
    worse = paired_loss_test(base, informed, y, np.ones(n))  # one-sided: a worse candidate is never "better"
    assert not worse.better and worse.p_value > 0.99
    noise = _sigmoid(1.5 * rng.normal(size=n))  # as sharp as the informed one, but about nothing
    assert not paired_loss_test(noise, base, y, np.ones(n)).better
    # weights: half the requests at weight 9 have an effective sample size well below n
    w = np.where(np.arange(n) % 2 == 0, 1.0, 9.0)
    assert paired_loss_test(informed, base, y, w).n_eff == pytest.approx((5 * n) ** 2 / (41 * n))


def test_platt_recalibrates_without_reranking_and_never_reverses():
    rng = np.random.default_rng(1)
    s = rng.random(2000)
    y = (rng.random(2000) < _sigmoid(3 * (s - 0.5) - 1.0)).astype(float)  # calibrated would be a shifted logistic
    f = platt(s, y, np.ones(2000))
    out = f(s)
    assert np.all(np.diff(out[np.argsort(s)]) >= 0)  # the ranking is kept
    assert abs(out.mean() - y.mean()) < 0.01  # the base rate is matched
    assert request_losses(out, y).mean() < request_losses(s, y).mean()  # and the loss improves
    backwards = platt(s, 1.0 - (s > 0.5), np.ones(2000))  # a score that ranks backwards becomes the base rate
    assert np.ptp(backwards(s)) == 0.0 and backwards(s)[0] == pytest.approx(0.5, abs=0.02)


def _gate(active, y, ts, fit_x):
    """The gate with a candidate that recalibrates ``fit_x`` on each block's earlier labels,
    against the ``active`` scores."""

    def fit_predict(tr, te):
        f = platt(_sigmoid(fit_x[tr]), y[tr], np.ones(len(tr)))
        return f(_sigmoid(fit_x[te])), "fit"

    n = len(y)
    return gate(time_splits(ts, 0.3, 4), fit_predict, active, y, y, np.ones(n), 0.2, n_boot=50)


def test_gate_promotes_a_real_signal_and_rarely_a_shuffled_one():
    rng = np.random.default_rng(2)
    n = 800
    x = rng.normal(size=n)
    y = (rng.random(n) < _sigmoid(1.6 * x)).astype(float)
    ts = np.arange(n, dtype=float)
    z = x + 1.5 * rng.normal(size=n)  # what the active router reads: the signal under noise
    active = _sigmoid(0.5 * z)
    good = _gate(active, y, ts, x)
    assert good.promote and good.test.better and good.comparison.apgr_diff[0] > 0
    assert len(good.pooled.test) == n - int(round(0.3 * n)) and good.pooled.blocks[0] == (240, 140)
    # the candidate reads the active router's own score only: it can only recalibrate it, never beat it
    assert not _gate(active, y, ts, z).promote
    promoted = 0
    for seed in range(20):  # labels shuffled: whatever the candidate learns cannot be better
        perm = np.random.default_rng(100 + seed).permutation(n)
        promoted += _gate(active, y[perm], ts, x).promote
    assert promoted <= 2
    refused = gate(time_splits(ts, 0.3, 4), lambda tr, te: (_sigmoid(x[te]), "prior"), active, y, y,
                   np.ones(n), 0.2, learned=lambda c: c != "prior", n_boot=20)
    assert refused.test.better and not refused.learned and not refused.promote  # nothing learned: never promoted


def test_the_probe_decides_only_with_a_chosen_strength_that_is_not_worse():
    rng = np.random.default_rng(3)
    n = 800
    x = rng.normal(size=n)
    y = (rng.random(n) < _sigmoid(1.6 * x)).astype(float)
    ts = np.arange(n, dtype=float)
    active = _sigmoid(0.5 * (x + 1.5 * rng.normal(size=n)))
    splits = time_splits(ts, 0.3, 4)

    def probe(tr, te):  # a shrunk step along the signal
        return platt(_sigmoid(x[tr]), y[tr], np.ones(len(tr)))(_sigmoid(x[te])), None

    def overshoot(tr, te):  # the "chosen strength": far too sharp, so worse than the active router
        return _sigmoid(8 * x[te] - 3), "all"

    g = gate(splits, overshoot, active, y, y, np.ones(n), 0.2, probe=probe, n_boot=20)
    assert g.test.better and g.check.diff < 0 and not g.promote
    assert g.probe is not g.pooled and np.array_equal(g.probe.test, g.pooled.test)
    ok = gate(splits, probe, active, y, y, np.ones(n), 0.2, probe=probe, n_boot=20)
    assert ok.promote and ok.check.diff > 0
