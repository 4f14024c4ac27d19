"""bench/learning.py's per-set verdict on the issue's goal (pure: a result entry in, words out)."""

from bench.learning import why_not


def _entry(**kw):
    e = {"gap": (0.10, 0.04, 0.17), "promoted": False, "closed": None,
         "learn_test": {"n": 300, "apgr_diff": (0.01, -0.04, 0.06)}, "learned_vs_default": (0.05, 0.0, 0.1)}
    e.update(kw)
    return e


def test_no_gap_means_refusing_is_right():
    assert "refusing is right" in why_not(_entry(gap=(0.01, -0.01, 0.03)))
    assert "promoted anyway" in why_not(_entry(gap=(0.01, -0.01, 0.03), promoted=True))


def test_promoted_meets_the_goal_only_at_two_thirds():
    assert why_not(_entry(promoted=True, closed=0.7)).startswith("goal met")
    assert why_not(_entry(promoted=True, closed=0.5)).startswith("goal not met")


def test_prior_kept_and_gate_resolution():
    assert "kept the prior" in why_not(_entry(learn_test={"n": 300, "apgr_diff": (0.0, 0.0, 0.0)}))
    text = why_not(_entry())
    # half-width 0.05 on 300 labels, gain 0.05: 300 * (0.05 / 0.05)^2 = 300 labels
    assert "resolves +-0.050" in text and "about 300 test labels" in text
    assert "no better" in why_not(_entry(learned_vs_default=(-0.02, -0.05, 0.01)))
