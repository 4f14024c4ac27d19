"""bench/active_sampling.py's stream sampler on a small synthetic set (pure: no server, no model)."""

import numpy as np

from bench.active_sampling import TrafficSet, draw


def _set(n: int = 400, seed: int = 0) -> TrafficSet:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    prior = 1 / (1 + np.exp(-0.5 * X[:, 0]))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X[:, 0] + X[:, 1])))).astype(float)
    return TrafficSet("toy", X, prior, prior.copy(), y, (y < 0.5).astype(float), np.ones(n), n // 2,
                      float(np.quantile(prior[: n // 2], 0.8)), (None, False, 6))


def test_every_strategy_spends_about_its_budget_with_valid_probabilities():
    ts = _set()
    for strategy in ("uniform", "uncertain@0.15:0.3", "learner", "committee", "committee:0.1"):
        idx, ps = draw(ts, strategy, 60, seed=1, C=0.01, members=3)
        assert 35 <= len(idx) <= 85, (strategy, len(idx))
        assert len(idx) == len(ps) and (ps > 0).all() and (ps <= 1).all()
        assert (np.diff(idx) > 0).all() and idx.max() < ts.n_first  # stream order, learning period only


def test_the_adaptive_samplers_never_pass_the_budget_and_repeat_with_the_seed():
    ts = _set()
    a = draw(ts, "committee", 50, seed=3, C=0.01, members=3)
    b = draw(ts, "committee", 50, seed=3, C=0.01, members=3)
    assert len(a[0]) <= 50 and np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1])
    for budget in (20, 100):  # pacing: the labels stop at the budget, and a tight budget is nearly spent
        idx, _ = draw(ts, "learner", budget, seed=0, C=0.01, members=3)
        assert 0.7 * budget <= len(idx) <= budget
