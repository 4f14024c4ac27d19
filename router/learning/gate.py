"""``learn``'s promotion test: out-of-time predictions pooled over rolling blocks, compared
with a paired one-sided test on a proper scoring rule (pure).

Why not the APGR difference alone: APGR is an area under a curve built from every test label
at once, and with three-way labels it divides by the test part's net gap (the mean gain, about
0.09 on MMLU-STEM), so on a few hundred labels its interval is very wide: on MMLU-STEM's 300
later labels, +0.013 [-0.227, +0.347] for a candidate that closes 92% of the gap on the later
traffic. A per-request score has a per-request difference, and the mean of those differences
has a far smaller standard error.

The test, step by step:

1. **Prequential predictions** (Dawid 1984, *J. R. Statist. Soc. A* 147, "Statistical theory:
   the prequential approach"; rolling origin, Tashman 2000): the labels after the earliest
   ``warmup`` share (by time) are cut into ``blocks`` consecutive blocks
   (:func:`~.evaluate.time_splits`), and every request of block k is predicted by a candidate
   fitted (inner cross-validation and all) on the labels before block k only. All those
   out-of-time predictions are pooled, so most labels test while none is predicted by a
   model that saw it or anything after it.
2. **The active router on the same footing**: its logged score is recalibrated on the same
   earlier labels (Platt 1999, "Probabilistic outputs for support vector machines": a
   logistic fit of the target on the score's logit, :func:`platt`; a monotone map, so its
   ranking is unchanged). A candidate that only recalibrates the prior then scores as the
   active router, and a better score can only come from ranking the requests better.
3. **A proper scoring rule per request** (Gneiting and Raftery 2007, *JASA* 102, "Strictly
   proper scoring rules, prediction, and estimation"): the log loss (cross-entropy) of each
   prediction against the label's target (``needs_cloud``, or the three-way ``(1 + gain) /
   2``: the loss the candidate is fitted on), or the Brier score.
4. **A paired one-sided test** of the per-request loss differences ``d = loss(active) -
   loss(candidate)`` (Diebold and Mariano 1995, *J. Bus. Econ. Statist.* 13, "Comparing
   predictive accuracy"; one-step forecasts of independent requests, so no autocorrelation
   correction): the weighted mean of ``d`` (weights = inverse sampling probabilities, so it
   estimates the mean over all routed traffic), its standard error on the effective sample
   size ``(sum w)^2 / sum w^2`` (Kish 1965), and the one-sided p-value of Student's t with
   ``n_eff - 1`` degrees of freedom. The candidate is better when ``p < alpha`` (0.05): only
   "better" promotes, so only that side is tested.

5. **What is tested, what is promoted.** The test's statistic is computed on a *direction
   probe*: the stacked candidate at the grid's strongest shrinkage (``learn``: C = 1e-4, the
   prior plus a small step along what the earlier labels say), fitted on each block's earlier
   labels. Its per-request differences are small and vary little, so it tells whether there is
   anything to learn with far more power than the candidate whose strength the inner CV
   chooses (on MMLU-STEM's 700 pooled labels: probe p = 0.002, chosen strength 0.29; both
   rank the later traffic alike: APGR 0.781 and 0.806 against the default's 0.635). The
   router promoted is the inner CV's choice, and only when its own out-of-time predictions
   on the same blocks have a lower mean loss than the active router's too (point estimate:
   the chosen strength is not worse), and some block learned more than the prior.

``bench/learning_gate.py`` measures how often this rule promotes a candidate fitted on
labels shuffled within the set (which cannot be better than the active router).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["platt", "request_losses", "LossTest", "paired_loss_test", "Pooled", "pooled_predictions", "Gate", "gate", "RULES",
           "ALPHA"]

RULES = ("log", "brier")
ALPHA = 0.05


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def platt(scores: np.ndarray, target: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Recalibrate ``scores`` (n,) in [0, 1] to ``target`` (n,) in [0, 1] (soft targets allowed)
    with weights ``w`` (n,): ``sigmoid(a * logit(score) + b)`` minimising the weighted
    cross-entropy (Platt 1999). A slope ``a <= 0`` would reverse the ranking; then the map is
    the weighted base rate (constant). Returns the map, array in -> array out.

    Raises:
        ValueError: empty input.
    """
    from scipy.optimize import minimize

    z, t, w = _logit(scores), np.asarray(target, dtype=float), np.asarray(w, dtype=float)
    if len(z) == 0:
        raise ValueError("nothing to recalibrate on")
    wn = w / w.sum()

    def f(theta):
        u = theta[0] * z + theta[1]
        p = 1.0 / (1.0 + np.exp(-np.clip(u, -50, 50)))
        g = wn * (p - t)
        return float((wn * (np.logaddexp(0, u) - t * u)).sum()), np.array([(g * z).sum(), g.sum()])

    a, b = minimize(f, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
    if a <= 0:
        rate = float(np.clip((wn * t).sum(), 1e-6, 1 - 1e-6))
        return lambda s: np.full(len(np.asarray(s)), rate)
    return lambda s: 1.0 / (1.0 + np.exp(-np.clip(a * _logit(s) + b, -50, 50)))


def request_losses(p: np.ndarray, target: np.ndarray, rule: str = "log") -> np.ndarray:
    """Per-request loss (n,) of predictions ``p`` against ``target`` (both (n,), in [0, 1]):
    ``log``: ``-(t log p + (1 - t) log(1 - p))`` (p clipped to [1e-6, 1 - 1e-6]);
    ``brier``: ``(p - t)^2``. Both are strictly proper for the mean of the target.

    Raises:
        ValueError: an unknown rule.
    """
    p, t = np.asarray(p, dtype=float), np.asarray(target, dtype=float)
    if rule == "log":
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return -(t * np.log(p) + (1 - t) * np.log(1 - p))
    if rule == "brier":
        return (p - t) ** 2
    raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")


@dataclass(frozen=True)
class LossTest:
    """The paired one-sided test (module docstring, step 4).

    Attributes:
        n, n_eff: test requests and their effective number ``(sum w)^2 / sum w^2``.
        rule: ``log`` or ``brier``.
        loss_candidate, loss_active: weighted mean losses (per request).
        diff: weighted mean of ``loss(active) - loss(candidate)`` (> 0: the candidate is better).
        se: its standard error; t: ``diff / se``; p_value: one-sided, ``P(T >= t)`` for Student's
            t with ``n_eff - 1`` degrees of freedom (1.0 when ``se`` is 0 and ``diff`` <= 0).
        alpha: the level.
    """

    n: int
    n_eff: float
    rule: str
    loss_candidate: float
    loss_active: float
    diff: float
    se: float
    t: float
    p_value: float
    alpha: float = ALPHA

    @property
    def better(self) -> bool:
        """The candidate's loss is lower beyond chance: ``p_value < alpha``."""
        return bool(self.p_value < self.alpha)

    def describe(self, what: str = "candidate") -> str:
        """One line: the mean losses of ``what`` and the active router, the gain, its standard
        error and the one-sided p-value."""
        name = "log loss" if self.rule == "log" else "Brier score"
        return (f"mean {name} {what} {self.loss_candidate:.4f} vs active {self.loss_active:.4f} (recalibrated on "
                f"the same earlier labels), gain {self.diff:+.4f} +- {self.se:.4f} (SE), one-sided paired t-test "
                f"p = {self.p_value:.3f} ({'<' if self.better else '>='} {self.alpha:g})")


def paired_loss_test(p_candidate: np.ndarray, p_active: np.ndarray, target: np.ndarray, w: np.ndarray,
                     rule: str = "log", alpha: float = ALPHA) -> LossTest:
    """Test whether the candidate's predictions have a lower mean loss than the active
    router's on the same requests (module docstring, step 4). All arrays (n,).

    Raises:
        ValueError: empty input or an unknown rule.
    """
    from scipy.stats import t as student

    w = np.asarray(w, dtype=float)
    if len(w) == 0:
        raise ValueError("no requests to test on")
    lc, la = request_losses(p_candidate, target, rule), request_losses(p_active, target, rule)
    d = la - lc
    W = w.sum()
    mean = float((w * d).sum() / W)
    n_eff = float(W ** 2 / (w * w).sum())
    var = float((w * (d - mean) ** 2).sum() / W) * n_eff / max(n_eff - 1.0, 1.0)
    se = (var / n_eff) ** 0.5
    if se <= 1e-15:
        t_stat, p = (np.inf, 0.0) if mean > 0 else (0.0, 1.0)
    else:
        t_stat = mean / se
        p = float(student.sf(t_stat, max(n_eff - 1.0, 1.0)))
    return LossTest(len(d), n_eff, rule, float((w * lc).sum() / W), float((w * la).sum() / W), mean, se,
                    float(t_stat), p, alpha)


@dataclass
class Pooled:
    """Out-of-time predictions pooled over the blocks (module docstring, steps 1-2).

    Attributes:
        test: indices of the test requests (block after block), (m,).
        candidate: each one's prediction by the candidate fitted before its block, (m,).
        active: the active score recalibrated on the labels before its block, (m,).
        choices: what each block's fit returned besides its predictions (``learn``: the inner
            CV's :class:`~.candidate.Choice`), one per block.
        blocks: [(training labels, test labels)] per block.
    """

    test: np.ndarray
    candidate: np.ndarray
    active: np.ndarray
    choices: list[Any] = field(default_factory=list)
    blocks: list[tuple[int, int]] = field(default_factory=list)


def pooled_predictions(splits: Sequence[tuple[np.ndarray, np.ndarray]],
                       fit_predict: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Any]],
                       active: np.ndarray, target: np.ndarray, w: np.ndarray) -> Pooled:
    """Score every test block of ``splits`` ([(train indices, test indices)], from
    :func:`~.evaluate.time_splits`) with ``fit_predict(train, test) -> (P(needs cloud) of the
    test rows, extra)``, and the ``active`` scores (n,) recalibrated (:func:`platt`) on the
    same training rows' ``target`` and ``w``; pooled in block order."""
    test, cand, act, choices, sizes = [], [], [], [], []
    for tr, te in splits:
        p, extra = fit_predict(tr, te)
        test.append(te)
        cand.append(np.asarray(p, dtype=float))
        act.append(platt(active[tr], target[tr], w[tr])(active[te]))
        choices.append(extra)
        sizes.append((len(tr), len(te)))
    cat = lambda xs, dt=float: np.concatenate(xs) if xs else np.zeros(0, dtype=dt)  # noqa: E731
    return Pooled(cat(test, int), cat(cand), cat(act), choices, sizes)


@dataclass
class Gate:
    """The whole test on one set of labels (module docstring, step 5).

    Attributes:
        pooled: the candidate procedure's pooled out-of-time predictions (as promoted).
        probe: the direction probe's (the most shrunk fit; ``pooled`` when there is none).
        test: the paired one-sided loss test of ``probe`` (is there anything to learn?).
        check: the same statistic on ``pooled`` (is the chosen strength not worse?).
        comparison: APGR etc. of ``pooled`` against the raw active scores (:func:`~.evaluate.compare`).
        learned: some block's candidate learned more than the prior.

    ``promote``: ``learned``, ``test.better`` (p < alpha) and ``check.diff > 0``."""

    pooled: Pooled
    probe: Pooled
    test: LossTest
    check: LossTest
    comparison: Any
    learned: bool

    @property
    def promote(self) -> bool:
        """See the class docstring."""
        return bool(self.learned and self.test.better and self.check.diff > 0)


def gate(splits: Sequence[tuple[np.ndarray, np.ndarray]],
         fit_predict: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Any]], active: np.ndarray,
         target: np.ndarray, gain: np.ndarray, w: np.ndarray, cloud_share: float, cloud_cost_usd: float | None = None,
         learned: Callable[[Any], bool] = lambda extra: True, rule: str = "log", alpha: float = ALPHA,
         n_boot: int = 200, seed: int = 0,
         probe: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Any]] | None = None) -> Gate:
    """Pool the out-of-time predictions of ``splits`` (:func:`pooled_predictions`) of the
    candidate procedure ``fit_predict`` and of the direction ``probe`` (None: the procedure
    itself), test the probe's losses against the recalibrated active router's
    (:func:`paired_loss_test` on ``target``), check the procedure's mean loss gain, and compare
    the APGR of the procedure's and the raw active scores on ``gain`` (paired bootstrap,
    ``n_boot``). ``learned(extra)`` says whether a block's fit learned anything beyond the
    prior (``learn``: its inner CV did not keep the prior alone). Arrays (n,) over every
    label; ``splits`` index them.

    Raises:
        ValueError: no test request.
    """
    from .evaluate import compare

    pooled = pooled_predictions(splits, fit_predict, active, target, w)
    te = pooled.test
    if len(te) == 0:
        raise ValueError("no requests to test on")
    probed = pooled if probe is None else pooled_predictions(splits, probe, active, target, w)
    test = paired_loss_test(probed.candidate, probed.active, target[te], w[te], rule, alpha)
    check = test if probe is None else paired_loss_test(pooled.candidate, pooled.active, target[te], w[te], rule, alpha)
    comparison = compare(pooled.candidate, active[te], gain[te], w[te], cloud_share, cloud_cost_usd, n_boot, seed)
    return Gate(pooled, probed, test, check, comparison, any(learned(c) for c in pooled.choices))
