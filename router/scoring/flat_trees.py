"""A fitted scikit-learn histogram gradient-boosting regressor evaluated in plain numpy.

Why: scikit-learn's ``predict`` validates its input, limits OpenMP threads and enters a
parallel region on every call; for one routing decision (one row, ~100 trees of at most 8
leaves) that overhead is most of the classifier's time (about 0.4 ms, and a source of p99
spikes on a busy box). Here all trees are flattened into one node table, every split of
the table is decided at once, and every row walks every tree at once, one vectorised lookup
per tree level.

Rule (scikit-learn's ``TreePredictor`` for numerical splits): at a split node go left when
``x <= num_threshold``, or when ``x`` is NaN and ``missing_go_to_left``; a leaf keeps its
place. The prediction is the model's baseline plus the sum of the leaves' values (shrinkage
is already in the values). Categorical splits are not supported (the routing models have none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FlatTrees"]


@dataclass(frozen=True)
class FlatTrees:
    """The node table of all trees; build with :meth:`of`, evaluate with :meth:`predict`."""

    roots: np.ndarray  # (t,) index of each tree's root in the table
    feature: np.ndarray  # (m,) feature index of each node
    threshold: np.ndarray  # (m,) split threshold (raw feature units)
    missing_left: np.ndarray  # (m,) bool: NaN goes left
    left: np.ndarray  # (m,) table index of the left child (leaves: themselves)
    right: np.ndarray  # (m,) table index of the right child (leaves: themselves)
    value: np.ndarray  # (m,) leaf value (0 at split nodes)
    depth: int  # levels to walk (the deepest leaf's depth)
    baseline: float

    @classmethod
    def of(cls, model) -> "FlatTrees":
        """Flatten a fitted ``HistGradientBoostingRegressor`` (one output).

        Raises:
            ValueError: the model has categorical splits or more than one output.
        """
        trees = [p[0].nodes for p in model._predictors]
        if any(len(p) != 1 for p in model._predictors):
            raise ValueError("one output only")
        if any(n["is_categorical"].any() for n in trees):
            raise ValueError("categorical splits are not supported")
        offsets = np.cumsum([0] + [len(n) for n in trees[:-1]]).astype(np.int64)
        nodes = np.concatenate(trees)
        shift = np.concatenate([np.full(len(n), o) for n, o in zip(trees, offsets)])
        leaf = nodes["is_leaf"].astype(bool)
        here = np.arange(len(nodes), dtype=np.int64)
        left = np.where(leaf, here, nodes["left"].astype(np.int64) + shift)
        right = np.where(leaf, here, nodes["right"].astype(np.int64) + shift)
        return cls(offsets, nodes["feature_idx"].astype(np.int64), nodes["num_threshold"].astype(np.float64),
                   nodes["missing_go_to_left"].astype(bool), left, right, np.where(leaf, nodes["value"], 0.0),
                   int(nodes["depth"].max()), float(np.ravel(model._baseline_prediction)[0]))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for rows ``X`` of shape (n, features), float64 (n,).

        Every node's split is decided at once (one comparison over the whole table), which
        gives each row its next node at every node; the walk is then one lookup per level.
        The leaves reached, and so the sums, are the ones a level-by-level walk reaches."""
        X = np.asarray(X, dtype=np.float64)
        x = X[:, self.feature]  # (n, m): each node's feature value, per row
        go_left = (x <= self.threshold) | (np.isnan(x) & self.missing_left)
        step = np.where(go_left, self.left, self.right)  # (n, m): the next node from each node
        rows = np.arange(len(X))[:, None]
        at = np.broadcast_to(self.roots, (len(X), len(self.roots)))
        for _ in range(self.depth):
            at = step[rows, at]
        return self.baseline + self.value[at].sum(axis=1)
