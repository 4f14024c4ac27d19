"""The model families the toolkit trains, over the rows of ``router.scoring.routing_model.build_inputs``
(an embedding of ``dim`` columns, then the text features).

| kind | binary label (``needs_strong``, ``weak_wrong``) | regression label (``gap``) |
|---|---|---|
| ``logistic`` | standardised logistic regression, balanced classes | (not available) |
| ``ridge`` | (not available) | ridge regression |
| ``knn`` | k nearest neighbours by cosine, share of positives | mean gap of the neighbours |
| ``gbm`` | histogram gradient boosting classifier | histogram gradient boosting regressor |
| ``mlp`` | one-hidden-layer perceptron classifier | perceptron regressor |
| ``stack`` | :class:`router.scoring.stacked.StackedRouter` on the 0/1 label | the same on the gap: kNN means (k = 30, 100, 300), ridge, group prior; ridge on their 5-fold predictions |
| ``transfer`` | :class:`router.scoring.transfer.TransferRouter`: logistic regression on task-type similarities, text features (and optionally the embedding) | the same as ridge on the gap |

The hyper-parameters of the first six are fixed here (chosen by 5-fold APGR on RouteLLM MMLU
and GSM8K while building the toolkit). ``transfer`` takes its parameters (``centroids``, ``C``,
``embedding_weight``, ...) from the caller; ``bench/model_selection.py`` chooses them by
leave-one-family-out APGR (see the artifact card for what the shipped model used).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from router.scoring.text_features import N_FEATURES

__all__ = ["MODEL_KINDS", "make_model", "fit_model", "raw_scores", "is_regression"]

MODEL_KINDS = ("logistic", "ridge", "knn", "gbm", "mlp", "stack", "transfer")
KNN_NEIGHBOURS = 100


def is_regression(label: str) -> bool:
    """True for the ``gap`` label (a regression target), False for binary labels."""
    return label == "gap"


def _columns(dim: int) -> tuple[list[int], list[int]]:
    return list(range(dim)), list(range(dim, dim + N_FEATURES))


def _prep(dim: int, embedding: bool = True, text: bool = True, scale_embedding: bool = False):
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import StandardScaler

    emb, txt = _columns(dim)
    parts = []
    if embedding:
        parts.append(("embedding", StandardScaler() if scale_embedding else "passthrough", emb))
    if text:
        parts.append(("text", StandardScaler(), txt))
    return ColumnTransformer(parts)


def make_model(kind: str, label: str, dim: int, seed: int = 0, params: dict[str, Any] | None = None) -> Any:
    """An unfitted scikit-learn estimator of family ``kind`` for target ``label``.

    Args:
        kind: one of :data:`MODEL_KINDS`.
        label: ``needs_strong``, ``weak_wrong`` or ``gap``.
        dim: number of embedding columns at the front of each input row.
        params: keyword arguments of ``transfer`` (:class:`router.scoring.transfer.TransferRouter`;
            ``centroids`` is required); ignored by the other kinds.
    Raises:
        ValueError: an unknown kind, a kind that does not fit the label, or ``transfer`` without centroids.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline

    reg = is_regression(label)
    boost = dict(max_iter=300, learning_rate=0.04, max_leaf_nodes=15, min_samples_leaf=40,
                 l2_regularization=1.0, random_state=seed)
    if kind == "logistic":
        if reg:
            raise ValueError("logistic needs a binary label (needs_strong or weak_wrong); use ridge for gap")
        return make_pipeline(_prep(dim, scale_embedding=True),
                             LogisticRegression(C=3e-3, class_weight="balanced", max_iter=3000))
    if kind == "ridge":
        if not reg:
            raise ValueError("ridge fits the gap label; use logistic for a binary label")
        return make_pipeline(_prep(dim), Ridge(alpha=30.0))
    if kind == "knn":
        knn = (KNeighborsRegressor if reg else KNeighborsClassifier)(KNN_NEIGHBOURS, metric="cosine", algorithm="brute")
        return make_pipeline(_prep(dim, text=False), knn)
    if kind == "gbm":
        return make_pipeline(_prep(dim), (HistGradientBoostingRegressor if reg else HistGradientBoostingClassifier)(**boost))
    if kind == "mlp":
        mlp = (MLPRegressor if reg else MLPClassifier)(hidden_layer_sizes=(64,), alpha=3.0, early_stopping=True,
                                                       max_iter=300, random_state=seed)
        return make_pipeline(_prep(dim, scale_embedding=True), mlp)
    if kind == "stack":
        from router.scoring.stacked import StackedRouter

        return StackedRouter(dim, seed=seed)
    if kind == "transfer":
        from router.scoring.transfer import TransferRouter

        params = dict(params or {})
        if "centroids" not in params:
            raise ValueError("the transfer model needs task-type centroids (training.task_types.prototype_centroids)")
        return TransferRouter(dim, regression=reg, **params)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")


def raw_scores(model: Any, inputs: np.ndarray) -> np.ndarray:
    """Higher = more in need of the cloud tier: ``predict_proba[:, 1]`` or ``predict``."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(inputs)[:, 1]
    return np.asarray(model.predict(inputs), dtype=float)


def fit_model(model: Any, inputs: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
              sample_weight: np.ndarray | None = None) -> Any:
    """Fit ``model``; models that use groups (``stack``'s group prior) receive them, and
    ``transfer`` the per-row ``sample_weight`` (None = equal weights)."""
    from router.scoring.stacked import StackedRouter
    from router.scoring.transfer import TransferRouter

    if isinstance(model, StackedRouter):
        return model.fit(inputs, y, groups)
    if isinstance(model, TransferRouter):
        return model.fit(inputs, y, sample_weight)
    return model.fit(inputs, y)
