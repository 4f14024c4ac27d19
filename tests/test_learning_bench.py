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
    kept = why_not(_entry(learn_test={"n": 300, "apgr_diff": (0.0, 0.0, 0.0)}, labels_used=400,
                          labels_needing_cloud=370))
    assert "kept the prior" in kept and "30 that say the local answer was enough" in kept
    text = why_not(_entry())
    # half-width 0.05 on 300 labels, gain 0.05: 300 * (0.05 / 0.05)^2 = 300 labels
    assert "resolves +-0.050" in text and "about 300 test labels" in text
    wide = why_not(_entry(learned_vs_default=(0.08, 0.02, 0.12)))
    assert "enough for the +0.080" in wide and "gained +0.010 there" in wide
    assert "no better" in why_not(_entry(learned_vs_default=(-0.02, -0.05, 0.01)))


def test_the_gates_log_loss_test_is_named():
    t = {"n": 700, "apgr_diff": (0.01, -0.1, 0.1), "probe_gain": 0.0004, "probe_se": 0.0005, "probe_p": 0.21,
         "chosen_gain": 0.0001}
    text = why_not(_entry(learn_test=t))
    assert "p = 0.210" in text and "+0.0004 +- 0.0005 on 700 later labels" in text
    chosen = why_not(_entry(learn_test={**t, "probe_p": 0.01, "chosen_gain": -0.0002}))
    assert "probe is better (p = 0.010)" in chosen and "-0.0002" in chosen
    kept = why_not(_entry(learn_test={**t, "probe_p": 0.01}, learn_choice={"blocks": "prior", "C": None},
                          labels_used=402))
    assert "kept the prior on all 402 labels" in kept and "p = 0.010" in kept


def test_strategy_names_and_the_rate_for_a_budget():
    from bench.learning import probabilities, rate_for, strategy_of

    assert strategy_of("uniform") == ("uniform", 0.05, 0.0)
    assert strategy_of("uncertain") == ("uncertain", 0.05, 0.0)
    assert strategy_of("uncertain@0.15") == ("uncertain", 0.15, 0.0)
    assert strategy_of("uncertain@0.05:0.3") == ("uncertain", 0.05, 0.3)
    scores = [i / 100 for i in range(100)]
    thresholds = [0.5] * 100
    for name in ("uniform", "uncertain", "uncertain@0.05:0.3"):
        rate = rate_for(8, scores, thresholds, name)
        assert abs(sum(probabilities(rate, scores, thresholds, name)) - 8) < 0.01
    # with a floor, the far requests keep the floor's share of the rate: larger than pure uncertain's 0.01
    rate = rate_for(8, scores, thresholds, "uncertain@0.05:0.3")
    assert min(probabilities(rate, scores, thresholds, "uncertain@0.05:0.3")) > 0.3 * rate * 0.99
    assert rate_for(20, scores, thresholds, "uncertain") == 1.0  # 10.5 at most: beyond what the strategy can sample
