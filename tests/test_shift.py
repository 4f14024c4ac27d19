"""Covariate-shift importance weights (training/shift.py) and their Recipe option."""

import numpy as np
import pytest

from training.protocol import Recipe, fit_score_fn
from training.shift import CLIP, shift_weights


def _domains(seed: int = 0):
    rng = np.random.default_rng(seed)
    source = rng.normal(0.0, 1.0, size=(600, 3))
    target = rng.normal(0.0, 1.0, size=(200, 3)) + np.array([1.5, 0.0, 0.0])
    families = np.array(["a"] * 300 + ["b"] * 300)
    return source, target, families


def test_rows_like_the_target_weigh_more_and_each_family_keeps_mean_one():
    source, target, families = _domains()
    w = shift_weights(source, target, families, strength=1.0)
    assert w.shape == (600,)
    for fam in ("a", "b"):
        assert w[families == fam].mean() == pytest.approx(1.0)
    near = source[:, 0] > 1.0
    far = source[:, 0] < -1.0
    assert w[near].mean() > 3 * w[far].mean()
    # clipped before renormalising: the spread within a family stays within the clip's range
    for fam in ("a", "b"):
        r = w[families == fam]
        assert r.max() / r.min() <= CLIP[1] / CLIP[0] + 1e-9


def test_strength_scales_the_spread_and_zero_is_no_weighting():
    source, target, families = _domains()
    assert np.array_equal(shift_weights(source, target, families, 0.0), np.ones(600))
    half, full = (shift_weights(source, target, families, s) for s in (0.5, 1.0))
    assert np.std(np.log(half)) == pytest.approx(0.5 * np.std(np.log(full)), rel=0.05)


def test_bad_arguments_raise():
    source, target, families = _domains()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        shift_weights(source, target, families, 1.5)
    with pytest.raises(ValueError, match="same columns"):
        shift_weights(source, target[:, :2], families, 0.5)


def test_a_shift_recipe_needs_the_chat_inputs():
    source, _, families = _domains()
    with pytest.raises(ValueError, match="target_inputs"):
        fit_score_fn(Recipe(label="gap", shift_weight=0.5), source, [], families, 0, None)
    assert "density ratio ^ 0.5" in Recipe(label="gap", shift_weight=0.5).describe()
