"""The stacked router: neighbour gaps, a linear model and a group prior, combined by ridge.

Base scores of a prompt (its input row = embedding of ``dim`` columns + text features):

- ``knn_k`` for k in ``ks``: mean training target of its k nearest training prompts by
  cosine similarity of the embedding (one neighbour search, prefix means);
- ``linear``: ridge regression on the embedding and the standardised text features;
- ``text_gbm``: gradient-boosted trees on the text features alone (100 trees of 15 leaves);
- ``prior``: softmax over cosine similarity to each training group's mean embedding
  (temperature ``1 / prior_beta``), times each group's mean target: "which subject is this
  like, and how much does that subject gain from the strong model" (only with >= 2 groups).

The meta-model is a ridge regression on the standardised base scores, fitted on their
``inner_folds``-fold out-of-fold values (stacked generalisation, Wolpert 1992). The target
is any label (for a 0/1 label this is a linear probability model); the output is a raw score.
Training embeddings are kept as float16 in the pickle and widened to float32 once in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["StackedRouter"]


_CONTROLLER = None


def _one_thread():
    """A context that runs BLAS and OpenMP on the calling thread only.

    Scoring one prompt is a 17k x 384 matrix-vector product and 100 small trees: threads
    cost more than they give. Worse, OpenBLAS worker threads keep spinning after a product
    and slowed the next MiniLM embedding (torch) about threefold (32 ms alone, ~100 ms
    interleaved with the classifier on 2 cores; 39 ms with this limit), and gradient
    boosting's per-tree parallel regions turned a 1.5 ms prediction into a p90 of ~500 ms on
    a busy machine. The controller is built once (it scans the loaded libraries).
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)


class StackedRouter:
    """See the module docstring. ``fit(X, y, groups=None)``, ``predict(X) -> (n,)``.

    Args:
        dim: number of embedding columns at the front of each row.
        ks: neighbour counts (each <= number of training rows is enforced at fit).
        ridge_alpha, meta_alpha: ridge penalties of the linear base model and the meta-model.
        prior_beta: inverse temperature of the group prior's softmax.
    """

    def __init__(self, dim: int, ks: Sequence[int] = (30, 100, 300), ridge_alpha: float = 30.0,
                 prior_beta: float = 20.0, meta_alpha: float = 1.0, inner_folds: int = 5, seed: int = 0) -> None:
        self.dim, self.ks, self.ridge_alpha, self.prior_beta = dim, tuple(ks), ridge_alpha, prior_beta
        self.meta_alpha, self.inner_folds, self.seed = meta_alpha, inner_folds, seed

    # -- base models -------------------------------------------------------------------
    def _fit_base(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> dict:
        from sklearn.linear_model import Ridge
        from sklearn.preprocessing import StandardScaler

        emb = np.ascontiguousarray(X[:, : self.dim], dtype=np.float32)
        scaler = StandardScaler().fit(X[:, self.dim:])
        lin_in = np.hstack([emb, scaler.transform(X[:, self.dim:])])
        from sklearn.ensemble import HistGradientBoostingRegressor

        base = {"emb": emb, "y": y.astype(np.float32), "scaler": scaler,
                "ridge": Ridge(alpha=self.ridge_alpha).fit(lin_in, y), "centroids": None,
                "text_gbm": HistGradientBoostingRegressor(
                    max_iter=100, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40,
                    l2_regularization=1.0, random_state=self.seed).fit(X[:, self.dim:], y)}
        if groups is not None and len(set(groups)) >= 2:
            names = sorted(set(groups))
            cent = np.stack([emb[groups == g].mean(0) for g in names])
            cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
            base["centroids"] = cent.astype(np.float32)
            base["group_means"] = np.array([y[groups == g].mean() for g in names], dtype=np.float32)
        return base

    def _base_scores(self, base: dict, X: np.ndarray) -> np.ndarray:
        # Plain numpy on the fitted coefficients (no per-call input validation): a routing
        # decision scores one prompt, where scikit-learn's checks would cost more than the maths.
        emb = np.ascontiguousarray(X[:, : self.dim], dtype=np.float32)
        text = np.asarray(X[:, self.dim:], dtype=np.float64)
        train = base["emb"]
        k_max = min(max(self.ks), len(train))
        sims = emb @ train.T
        top = np.argpartition(-sims, k_max - 1, axis=1)[:, :k_max]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        nearest = base["y"][np.take_along_axis(top, order, axis=1)]
        cols = [nearest[:, : min(k, k_max)].mean(axis=1) for k in self.ks]
        scaler, ridge = base["scaler"], base["ridge"]
        lin_in = np.hstack([emb, (text - scaler.mean_) / scaler.scale_])
        cols.append(lin_in @ ridge.coef_ + ridge.intercept_)
        cols.append(base["text_gbm"].predict(text))
        if base["centroids"] is not None:
            z = self.prior_beta * (emb @ base["centroids"].T)
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            cols.append((p / p.sum(axis=1, keepdims=True)) @ base["group_means"])
        return np.column_stack(cols)

    # -- stacked model -----------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, groups: Sequence[str] | None = None) -> "StackedRouter":
        """Fit the base models on all rows and the meta-model on their out-of-fold scores.

        Raises:
            ValueError: fewer rows than ``inner_folds``.
        """
        from sklearn.linear_model import Ridge
        from sklearn.model_selection import KFold
        from sklearn.preprocessing import StandardScaler

        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=float)
        g = None if groups is None else np.asarray(groups)
        if len(X) < self.inner_folds:
            raise ValueError(f"{len(X)} rows are too few for {self.inner_folds} inner folds")
        inner = None
        for tr, te in KFold(self.inner_folds, shuffle=True, random_state=self.seed).split(X):
            part = self._base_scores(self._fit_base(X[tr], y[tr], None if g is None else g[tr]), X[te])
            if inner is None:
                inner = np.zeros((len(X), part.shape[1]))
            if part.shape[1] != inner.shape[1]:  # a fold with one group only: no prior column
                part = np.column_stack([part, np.full(len(te), y[tr].mean())])[:, : inner.shape[1]]
            inner[te] = part
        self.base_ = self._fit_base(X, y, g)
        full_cols = self._base_scores(self.base_, X[:1]).shape[1]
        inner = inner[:, :full_cols] if inner.shape[1] >= full_cols else np.column_stack(
            [inner, np.full((len(X), full_cols - inner.shape[1]), y.mean())])
        self.meta_scaler_ = StandardScaler().fit(inner)
        self.meta_ = Ridge(alpha=self.meta_alpha).fit(self.meta_scaler_.transform(inner), y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw score per row, shape (n,); higher = more in need of the strong model."""
        with _one_thread():
            cols = self._base_scores(self.base_, np.asarray(X, dtype=np.float32))
        scaled = (cols - self.meta_scaler_.mean_) / self.meta_scaler_.scale_
        return scaled @ self.meta_.coef_ + self.meta_.intercept_

    def base_names(self) -> list[str]:
        """Names of the meta-model's inputs, in order."""
        names = [f"knn_{k}" for k in self.ks] + ["linear", "text_gbm"]
        return names + (["prior"] if self.base_.get("centroids") is not None else [])

    def __repr__(self) -> str:
        head = (f"StackedRouter(dim={self.dim}, ks={self.ks}, ridge_alpha={self.ridge_alpha:g}, "
                f"prior_beta={self.prior_beta:g}, meta_alpha={self.meta_alpha:g})")
        if not hasattr(self, "meta_"):
            return head
        weights = ", ".join(f"{n} {c:+.3f}" for n, c in zip(self.base_names(), self.meta_.coef_))
        return f"{head}; meta-model weights on standardised base scores: {weights}; {len(self.base_['emb'])} neighbours stored"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if "base_" in state:
            base = dict(state["base_"])
            base["emb"] = base["emb"].astype(np.float16)
            state["base_"] = base
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "base_" in self.__dict__:
            self.base_["emb"] = self.base_["emb"].astype(np.float32)
