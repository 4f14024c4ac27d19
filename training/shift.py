"""Covariate-shift importance weights: training rows weighted by how much they look like chat traffic.

Standard importance weighting for covariate shift (Shimodaira 2000, "Improving predictive inference
under covariate shift by weighting the log-likelihood function"; the density ratio estimated by a
discriminative domain classifier as in Bickel, Brückner and Scheffer 2007, "Discriminative learning
for differing training and test distributions"): a logistic regression separates the training rows
(domain 0) from unlabelled target rows (domain 1, here the Arena-Hard prompts); the density ratio is

    w(x) = p(target | x) / p(train | x) * n_train / n_target

(the last factor undoes the two sets' sizes). Each weight is clipped to ``clip``, raised to the
power ``strength`` (0 = all weights 1, 1 = the full ratio), and renormalised to mean 1 within each
training family, so the families keep their equal shares and only the rows inside a family move.

The classifier sees the same inputs as the routing model (embedding + text features), standardised.
It is fitted on the training fold only, so under leave-one-family-out the held-out family never
shapes its own weights.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shift_weights", "DOMAIN_C", "CLIP"]

DOMAIN_C = 0.1
"""Inverse regularisation of the domain classifier (on standardised inputs)."""

CLIP = (0.1, 10.0)
"""Bounds of the density ratio before the exponent: no row gains or loses more than 10x."""


def shift_weights(source: np.ndarray, target: np.ndarray, families: np.ndarray, strength: float,
                  clip: tuple[float, float] = CLIP, C: float = DOMAIN_C) -> np.ndarray:
    """Per-row importance weights of the ``source`` rows, shape (n_source,), mean 1 in each family.

    Args:
        source: training inputs, shape (n_source, d).
        target: unlabelled target-domain inputs (same columns), shape (n_target, d).
        families: family name of each source row, shape (n_source,).
        strength: exponent of the clipped ratio, in [0, 1]; 0 returns all ones.
    Raises:
        ValueError: ``strength`` outside [0, 1], mismatched columns, or an empty set.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"shift strength must be in [0, 1], got {strength}")
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"source {source.shape} and target {target.shape} need the same columns")
    if len(source) == 0 or len(target) == 0:
        raise ValueError("shift weighting needs training rows and target rows")
    if strength == 0.0:
        return np.ones(len(source))
    from sklearn.linear_model import LogisticRegression

    both = np.vstack([source, target])
    mu, sd = both.mean(axis=0), both.std(axis=0)
    sd[sd == 0] = 1.0
    z = (both - mu) / sd
    domain = np.r_[np.zeros(len(source)), np.ones(len(target))].astype(int)
    clf = LogisticRegression(C=C, max_iter=2000).fit(z, domain)
    logit = clf.decision_function(z[: len(source)])
    ratio = np.exp(np.clip(logit, -30, 30)) * len(source) / len(target)
    w = np.clip(ratio, *clip) ** strength
    for fam in set(families.tolist()):
        rows = families == fam
        w[rows] /= w[rows].mean()
    return w
