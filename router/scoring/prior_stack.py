"""The learned router: a logistic model stacked on the prior scorer (what ``slm-router learn`` writes).

Its input rows are those of the prior artifact (:func:`router.scoring.routing_model.build_inputs`:
the embedding of ``dim`` columns, then the prior card's text features). The model reads

    z = [PRIOR_GAIN * logit(P_prior), standardised embedding, standardised text features]

(each standardised column clipped to [-5, 5]) and gives ``P(needs cloud) = sigmoid(coef . z +
intercept)``. ``blocks == "prior"`` keeps the first column only: a recalibration of the prior
that ranks prompts exactly as it does. The L2 penalty shrinks the embedding and feature
weights toward 0, i.e. the candidate toward the prior; the prior column is scaled up by
``PRIOR_GAIN`` so the same penalty barely touches it. How much to shrink (or whether to keep
the prior alone) is chosen by inner cross-validation in :mod:`router.learning.candidate`.
Scoring is plain numpy on the fitted coefficients plus the prior's own scoring.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PriorStackedModel", "PRIOR_GAIN"]

PRIOR_GAIN = 3.0


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class PriorStackedModel:
    """See the module docstring.

    Args:
        prior: the prior artifact's estimator (``predict_proba`` over rows, or over the
            embedding alone when ``prior_reads_features`` is False).
        prior_reads_features: the prior reads the text features too.
        dim: embedding columns at the front of each row.
        blocks: ``prior`` (the prior column only) or ``all``.
    """

    def __init__(self, prior: Any, prior_reads_features: bool, dim: int, blocks: str = "all") -> None:
        self.prior, self.prior_reads_features, self.dim, self.blocks = prior, prior_reads_features, dim, blocks

    def prior_proba(self, X: np.ndarray) -> np.ndarray:
        """The prior's P(needs cloud) per row, shape (n,)."""
        X = np.asarray(X, dtype=np.float32)
        return np.asarray(self.prior.predict_proba(X if self.prior_reads_features else X[:, : self.dim])[:, 1])

    def design(self, X: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """The model's inputs ``z`` for rows ``X`` (the prior's probabilities given or computed)."""
        p = self.prior_proba(X) if prior is None else np.asarray(prior, dtype=float)
        col = PRIOR_GAIN * _logit(p)[:, None]
        if self.blocks == "prior":
            return col
        rest = np.clip((np.asarray(X, dtype=float) - self.mean_) / self.scale_, -5.0, 5.0)
        return np.hstack([col, rest])

    def fit_scaling(self, X: np.ndarray) -> "PriorStackedModel":
        """Set the standardisation of the embedding and feature columns from rows ``X``."""
        X = np.asarray(X, dtype=float)
        self.mean_, self.scale_ = X.mean(axis=0), X.std(axis=0)
        self.scale_[self.scale_ < 1e-9] = 1.0
        return self

    def set_weights(self, coef: np.ndarray, intercept: float) -> "PriorStackedModel":
        """Set the fitted logistic weights (over :meth:`design`'s columns)."""
        self.coef_, self.intercept_ = np.asarray(coef, dtype=float).ravel(), float(intercept)
        return self

    def predict_proba(self, X: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """Shape (n, 2): [P(local is enough), P(needs cloud)]."""
        z = np.clip(self.design(X, prior) @ self.coef_ + self.intercept_, -50, 50)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1.0 - p, p])

    def __repr__(self) -> str:
        head = f"PriorStackedModel(blocks={self.blocks!r}, dim={self.dim})"
        if not hasattr(self, "coef_"):
            return head
        return f"{head}; prior weight {self.coef_[0] * PRIOR_GAIN:+.3f}, other weights |w|_1 {np.abs(self.coef_[1:]).sum():.3f}"
