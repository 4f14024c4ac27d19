"""The estimator inside a classifier artifact: any scikit-learn model plus a Platt mapping.

A :class:`RoutingModel` takes the input matrix of :func:`build_inputs` (the request's
embedding, then its :mod:`text features <router.scoring.text_features>`) and returns
P(needs the cloud tier). The wrapped model is a classifier (its ``predict_proba[:, 1]``) or a
regressor of the outcome gap (``predict``); either raw score is mapped through
``sigmoid(a * raw + b)``, fitted on out-of-fold raw scores against the label "strong right
and weak wrong" with balanced class weights (Platt, 1999), so 0.5 means even odds under
balanced classes and the ranking of prompts is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .text_features import FEATURE_NAMES, text_features

__all__ = ["RoutingModel", "build_inputs", "fit_platt"]


def build_inputs(embeddings: np.ndarray, texts: Sequence[str], names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """Concatenate embeddings (n, d) and the text features ``names`` (n, f) into (n, d + f) float32
    (``names``: an artifact card's ``text_features``; the first 23 of them by default).

    Raises:
        ValueError: the two disagree on n.
    """
    if len(embeddings) != len(texts):
        raise ValueError(f"{len(embeddings)} embeddings for {len(texts)} texts")
    return np.hstack([np.asarray(embeddings, dtype=np.float32), text_features(list(texts), names)])


def fit_platt(raw: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Fit ``sigmoid(a * raw + b)`` to binary labels with balanced class weights; returns (a, b).

    A constant or one-class input gives (0, 0) (every score 0.5).
    """
    from sklearn.linear_model import LogisticRegression

    raw = np.asarray(raw, dtype=float).reshape(-1, 1)
    y = np.asarray(labels).astype(int)
    if y.min() == y.max() or np.ptp(raw) == 0:
        return 0.0, 0.0
    scale = float(raw.std())
    lr = LogisticRegression(C=1e4, class_weight="balanced").fit(raw / scale, y)
    return float(lr.coef_[0, 0] / scale), float(lr.intercept_[0])


class RoutingModel:
    """A fitted model that ranks prompts by need for the cloud tier.

    Args:
        model: fitted scikit-learn estimator over :func:`build_inputs` rows.
        kind: model family (``logistic``, ``knn``, ``gbm``, ``mlp``, ``ridge``, ``stack``).
        label: training target (``needs_strong``, ``weak_wrong``, ``gap``).
        platt: (a, b) of the sigmoid that maps raw scores to P(needs cloud).
    """

    def __init__(self, model: Any, kind: str, label: str, platt: tuple[float, float] = (1.0, 0.0)) -> None:
        self.model, self.kind, self.label, self.platt = model, kind, label, tuple(platt)

    def raw_score(self, inputs: np.ndarray) -> np.ndarray:
        """Raw score per row, shape (n,); higher = more in need of the cloud tier."""
        if hasattr(self.model, "predict_proba"):
            return self.model.predict_proba(inputs)[:, 1]
        return np.asarray(self.model.predict(inputs), dtype=float)

    def predict_proba_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """P(needs cloud) for raw scores, shape (n,)."""
        a, b = self.platt
        z = np.clip(a * np.asarray(raw, dtype=float) + b, -50, 50)
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        """Shape (n, 2): [P(local is enough), P(needs cloud)], via the Platt mapping."""
        p = self.predict_proba_from_raw(self.raw_score(inputs))
        return np.column_stack([1.0 - p, p])

    def __repr__(self) -> str:
        return f"RoutingModel(kind={self.kind!r}, label={self.label!r}, platt=({self.platt[0]:.3g}, {self.platt[1]:.3g}))"
