"""Fit the candidate router on the user's labels, stacked on the prior (pure, scikit-learn).

:func:`fit_candidate` chooses among the prior alone (recalibrated: its ranking unchanged)
and :class:`~router.scoring.prior_stack.PriorStackedModel` with the embedding and text
features at L2 strengths ``C_GRID``, by ``inner_folds``-fold cross-validation on the training
labels (weighted log loss of the held-out predictions; weights = inverse sampling
probabilities, so the loss estimates the loss on all locally served traffic), by the
one-standard-error rule (Breiman et al. 1984, *Classification and Regression Trees*,
sec. 3.4.3): the simplest option (the prior, then the smallest C) whose loss exceeds the
lowest by at most one standard error. Every option is scored on the same held-out labels,
so that standard error is the one of the paired per-label loss differences (option minus
the lowest), not of one option's loss alone: the per-label losses of two routers that share
the prior are strongly correlated (on MMLU-STEM's 2,500 labels: unpaired 0.011, paired
0.002, for a gain of 0.009 over the prior), and the unpaired error kept the prior even where
the embedding carried a real signal.

Weights in the fit: the sampling probability depends only on the request's score (a
function of its inputs), so labels sampled ``uncertain`` have the same P(needs cloud | inputs)
as all traffic and an unweighted fit is consistent for a well-specified model, with less
variance than the weighted one (covariate shift; Shimodaira 2000, *J. Statist. Plann.
Inference* 90, "Improving predictive inference under covariate shift by weighting the
log-likelihood function", whose weights ``w ** lambda`` this follows with lambda 0 or 1).
When the weights differ, both fits are options of the cross-validation (still judged by the
weighted held-out loss).

The embedding and feature weights start at 0 = the prior, and the penalty pulls them back
there, so with few or noisy labels the cross-validation keeps the prior: few labels cannot
make the candidate much worse than the prior, only a recalibration of it (and ``learn``
promotes only a candidate that beats the active router on later traffic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..scoring.prior_stack import PriorStackedModel

__all__ = ["Choice", "fit_candidate", "fit_probe", "training_weights", "option_name", "C_GRID", "MIN_LABELS",
           "MIN_CLASS"]

C_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.1, 1.0)
"""L2 strengths tried (scikit-learn's C: the penalty is ``|b|^2 / (2 C n)`` per label). It reaches
down to 1e-4 because on a few thousand labels of 300 standardised columns the useful
shrinkage is strong: on MMLU-STEM (2,500 prompts, 5-fold) every C from 0.01 up fitted worse
than the prior (log loss +0.009 to +0.100), C = 0.001 better (-0.009, AUROC 0.650 against the
prior's 0.607)."""
MIN_LABELS = 40
MIN_CLASS = 8


@dataclass(frozen=True)
class Choice:
    """What the inner cross-validation chose: ``blocks`` (``prior`` or ``all``), ``C`` (None
    for the prior alone), the held-out log loss of every option tried (option -> loss), and
    ``weight_power`` (lambda: the fit's weights are ``w ** lambda``; 1 = inverse-probability
    weighted, 0 = unweighted)."""

    blocks: str
    C: float | None
    losses: dict[str, float]
    why: str
    weight_power: float = 1.0


def training_weights(w: np.ndarray, cap: float | None) -> np.ndarray:
    """Inverse-probability weights ``w`` (n,) for fitting, capped at ``cap`` times their median
    (truncated importance weights: Ionides 2008, *J. Comput. Graph. Stat.* 17, "Truncated
    importance sampling"): a few labels sampled with a small probability no longer dominate the
    fit and its cross-validation. The cap trades a small bias for much less variance; only
    training uses it (estimates and ``learn``'s test keep the exact ``1 / p``). ``cap`` None:
    ``w`` unchanged (a float copy).

    Raises:
        ValueError: ``cap`` below 1, or a weight that is not positive.
    """
    w = np.asarray(w, dtype=float).copy()
    if len(w) and not (w > 0).all():
        raise ValueError("weights must be positive")
    if cap is None or not len(w):
        return w
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    return np.minimum(w, cap * float(np.median(w)))


def _fit_lr(Z: np.ndarray, y: np.ndarray, w: np.ndarray, C: float):
    """scikit-learn's logistic regression on targets ``y`` in [0, 1]: a target between 0 and 1
    (a three-way "as good", 0.5) is two rows, y = 1 with weight ``w * y`` and y = 0 with
    ``w * (1 - y)``, which is the cross-entropy of the soft target."""
    from sklearn.linear_model import LogisticRegression

    soft = (y > 0) & (y < 1)
    if soft.any():
        Z = np.vstack([Z, Z[soft]])
        w = np.concatenate([np.where(soft, w * y, w), w[soft] * (1 - y[soft])])
        y = np.concatenate([np.where(soft, 1.0, y), np.zeros(int(soft.sum()))])
    return LogisticRegression(C=C, max_iter=2000).fit(Z, y.astype(int), sample_weight=w)


def _fit_offset(Z: np.ndarray, offset: np.ndarray, y: np.ndarray, w: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """Weighted logistic regression with a fixed offset: minimise
    ``sum w * logloss(y, sigmoid(offset + Z b + b0)) / sum w + |b|^2 / (2 C n)`` (b0 unpenalised),
    by L-BFGS. Returns (b, b0); b = 0 gives back the offset (the calibrated prior)."""
    from scipy.optimize import minimize

    n, k = Z.shape
    wn = w / w.sum()

    def f(theta):
        b, b0 = theta[:k], theta[k]
        z = offset + Z @ b + b0
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        loss = float((wn * (np.logaddexp(0, z) - y * z)).sum()) + float(b @ b) / (2 * C * n)
        g = wn * (p - y)
        return loss, np.concatenate([Z.T @ g + b / (C * n), [g.sum()]])

    res = minimize(f, np.zeros(k + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:k], float(res.x[k])


def _losses(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def _mean_se(losses: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean of per-label losses and its standard error (effective sample size)."""
    mean = float((w * losses).sum() / w.sum())
    n_eff = w.sum() ** 2 / (w * w).sum()
    var = float((w * (losses - mean) ** 2).sum() / w.sum())
    return mean, (var / max(n_eff, 1.0)) ** 0.5


def _fit(model: PriorStackedModel, X: np.ndarray, prior: np.ndarray, y: np.ndarray, w: np.ndarray,
         C: float | None, power: float = 1.0) -> PriorStackedModel:
    """The prior recalibrated (``sigmoid(a * logit + b)``, unpenalised), then, for ``all``, the
    embedding and feature weights on top of it with the prior's part as a fixed offset; the
    fit's weights are ``w ** power``."""
    w = w ** power
    model.fit_scaling(X)
    Z = model.design(X, prior)
    cal = _fit_lr(Z[:, :1], y, w, 1e4)
    a, b = float(cal.coef_[0, 0]), float(cal.intercept_[0])
    if a <= 0:  # a recalibration never reverses the prior's ranking: keep its order, fit the base rate
        rate = float(np.clip((w * y).sum() / w.sum(), 1e-3, 1 - 1e-3))
        a, b = 1e-3, float(np.log(rate / (1 - rate)) - 1e-3 * Z[:, 0].mean())
    if model.blocks == "prior" or C is None:
        coef = np.zeros(Z.shape[1])
        coef[0] = a
        return model.set_weights(coef, b)
    beta, b0 = _fit_offset(Z[:, 1:], a * Z[:, 0] + b, y, w, C)
    return model.set_weights(np.concatenate([[a], beta]), b + b0)


def option_name(blocks: str, C: float | None, power: float = 1.0) -> str:
    """An option's name in :attr:`Choice.losses`: ``prior``, ``all C=0.1`` or ``all C=0.1 unweighted``."""
    if blocks == "prior":
        return "prior"
    return f"all C={C:g}" + ("" if power == 1.0 else " unweighted")


def fit_candidate(X: np.ndarray, y: np.ndarray, w: np.ndarray, prior: np.ndarray, prior_estimator: Any,
                  prior_reads_features: bool, dim: int, inner_folds: int = 5, seed: int = 0,
                  grid: tuple[float, ...] = C_GRID) -> tuple[PriorStackedModel, Choice]:
    """Fit the candidate on rows ``X`` (n, dim + f) with targets ``y`` (n,) in [0, 1]
    (``needs_cloud``, or the three-way ``(1 + gain) / 2``: :meth:`~.labels.LabelSet.targets`;
    the weighted log loss is the cross-entropy of these targets), weights ``w`` and the
    prior's probabilities ``prior`` (n,). The rarer outcome and the folds' strata are the
    targets above 0.5 (needs the cloud) against the rest.

    Returns:
        (the fitted model, refitted on every row with the chosen option; the choice).

    Raises:
        ValueError: ``y`` has one class only.
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError("the labels have one class only")
    strata = (y > 0.5).astype(int)
    minority = int(min(strata.sum(), len(y) - strata.sum()))
    powers = (1.0,) if np.allclose(w, w[0]) else (1.0, 0.0)
    options: list[tuple[str, float | None, float]] = [("prior", None, 1.0)] + [
        ("all", C, p) for C in grid for p in powers]
    if len(y) < MIN_LABELS or minority < MIN_CLASS:
        options = options[:1]
        why = f"{len(y)} labels ({minority} in the rarer class): too few to fit more than the prior"
    else:
        why = (f"{inner_folds}-fold inner cross-validated log loss on {len(y)} training labels, "
               "simplest option within one paired standard error of the lowest")
    losses: dict[str, float] = {}
    if len(options) > 1:
        folds = min(inner_folds, minority)
        held = {o: np.zeros(len(y)) for o in options}
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, strata):
            for blocks, C, p in options:
                m = _fit(PriorStackedModel(prior_estimator, prior_reads_features, dim, blocks), X[tr], prior[tr],
                         y[tr], w[tr], C, p)
                held[(blocks, C, p)][te] = m.predict_proba(X[te], prior[te])[:, 1]
        per_label = {o: _losses(held[o], y) for o in options}
        losses = {option_name(*o): _mean_se(per_label[o], w)[0] for o in options}
        lowest = min(options, key=lambda o: losses[option_name(*o)])

        def within(o) -> bool:  # paired: this option's excess loss over the lowest, within one SE
            excess, se = _mean_se(per_label[o] - per_label[lowest], w)
            return excess <= se

        best = next(o for o in options if within(o))
    else:
        best = options[0]
    blocks, C, p = best
    model = _fit(PriorStackedModel(prior_estimator, prior_reads_features, dim, blocks), X, prior, y, w, C, p)
    return model, Choice(blocks, C, losses, why, p)


def fit_probe(X: np.ndarray, y: np.ndarray, w: np.ndarray, prior: np.ndarray, prior_estimator: Any,
              prior_reads_features: bool, dim: int, C: float = C_GRID[0]) -> PriorStackedModel:
    """The stack with the embedding and features at the fixed L2 strength ``C`` (default: the
    grid's strongest shrinkage), no cross-validation: ``learn``'s direction probe
    (:mod:`.gate`, step 5). Arguments as :func:`fit_candidate`; the fit is weighted by ``w``.

    Raises:
        ValueError: ``y`` has one class only.
    """
    y = np.asarray(y, dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError("the labels have one class only")
    return _fit(PriorStackedModel(prior_estimator, prior_reads_features, dim, "all"), X, prior, y,
                np.asarray(w, dtype=float), C)
