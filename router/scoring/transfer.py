"""The transfer router: a linear model over features that travel across domains.

Input rows are :func:`router.scoring.routing_model.build_inputs` rows (an embedding of
``dim`` columns, then the text features named in ``feature_names``). The model reads:

- ``task_type``: cosine similarity of the embedding to each task-type prototype centroid
  (code, math, reasoning, writing, extraction, classification, chit-chat, knowledge;
  ``training.task_types``), shape (n, t);
- ``text``: the text features, counts compressed by ``log1p``;
- ``embedding`` (optional, ``embedding_weight`` > 0): the raw embedding, scaled down by
  ``embedding_weight`` so that the same L2 penalty shrinks it harder than the few features above.

Every block is standardised on the training rows and clipped to [-``clip``, ``clip``] (a prompt far
outside the training range moves the score by a bounded amount; 5 by default, 2 in the shipped
recipe). With ``min_support`` > 0, a column that differs from its training median on fewer than that
share of the training rows is left out (its input is set to 0): a feature the training families
almost never show (paragraphs, numbered items, code fences on the benchmarks) would otherwise get
a weight from a handful of rows and then decide chat prompts, where it is common. With
``embedding_logreg_weight`` > 0, a plain logistic regression on the raw embedding (the ``logreg``
baseline's model: balanced classes, ``embedding_logreg_C``, label "gap > 0" = strong right and
weak wrong) is fitted beside the linear model and its decision value, standardised on the
training rows, is added at that weight. With ``type_prior_weight`` > 0 a fixed,
hand-set prior on the task-type similarities (hard types minus easy ones, :data:`HARD_TYPES`) is
added to the learned score. The estimator is a logistic
regression (binary label, balanced classes) or a ridge regression (``gap``); ``C`` is the
inverse L2 penalty (ridge uses ``alpha = 1 / C``). With ``trees`` > 0, a small gradient-boosted
tree ensemble (``trees`` trees of at most 8 leaves, at least 100 rows a leaf) is fitted on the
task-type and text blocks (not the embedding) as well, and the score is the sum of the two
models' raw scores, each divided by its standard deviation on the training rows. No group or
dataset prior: nothing in the model knows which family a training row came from. Scoring one
prompt is a few hundred multiply-adds on the fitted coefficients (plain numpy, no per-call
validation), plus the trees when there are any (walked in numpy: :mod:`router.scoring.flat_trees`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .text_features import ALL_FEATURE_NAMES, EXTRA_FEATURE_NAMES, FEATURE_NAMES

__all__ = ["TransferRouter", "BLOCKS", "LOG_FEATURES", "FEATURE_GROUPS", "MULTIPLE_CHOICE", "expand_drop", "HARD_TYPES", "EASY_TYPES"]

BLOCKS = ("task_type", "text", "embedding")
LOG_FEATURES = frozenset({"numbers", "choices", "mean_choice_chars", "max_choice_chars", "percent_signs", "lines",
                          "question_marks", "sentences", "wh_words", "n_questions", "numbered_items", "paragraphs"})
"""Count features compressed by log1p before standardising."""

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "task_type": ("similarity to the task-type prototypes",),
    "structure": ("choices", "mean_choice_chars", "max_choice_chars", "negated_stem", "statement_pair",
                  "roman_options", "which_of_following", "code", "code_fence", "math_markup", "operator_density",
                  "percent_signs", "numbers", "log_number_chars", "digit_share", "lines", "sentences",
                  "capitalised_share", "mean_word_chars", "wh_words", "imperative"),
    "length": ("log_chars", "log_words", "log_stem_chars"),
    "questions": ("n_questions", "question_marks", "numbered_items"),
    "language": ("non_ascii_share", "non_latin_share"),
    "keywords": ("rule_code", "rule_math", "rule_arithmetic", "rule_reasoning", "rule_technical", "rule_constraints",
                 "rule_multi_part", "rule_simple"),
    "turns": ("paragraphs",),
    "embedding": ("the raw embedding",),
    "embedding_logreg": ("the logistic regression on the raw embedding, added to the score",),
    "type_prior": ("the fixed prior: similarity to code, math, reasoning minus writing, chit-chat, knowledge",),
}
"""The ablation's feature groups (``bench/model_selection.py --ablation``). The scorer sees the
turns joined by blank lines, so ``turns`` is measured by its proxy, the number of paragraphs."""


MULTIPLE_CHOICE = ("choices", "mean_choice_chars", "max_choice_chars", "negated_stem", "statement_pair",
                   "roman_options", "which_of_following")
"""The answer-option features (``--drop multiple_choice``): what a benchmark's question format looks
like, constant on chat traffic."""


def expand_drop(spec: str) -> list[str]:
    """Text feature names of a comma-separated ``--drop`` value (``multiple_choice`` = :data:`MULTIPLE_CHOICE`).

    Raises:
        ValueError: a name that is no text feature.
    """
    out: list[str] = []
    for name in (s.strip() for s in spec.split(",") if s.strip()):
        names = MULTIPLE_CHOICE if name == "multiple_choice" else (name,)
        unknown = [n for n in names if n not in ALL_FEATURE_NAMES]
        if unknown:
            raise ValueError(f"unknown text feature {name!r} in --drop; known: multiple_choice, {', '.join(ALL_FEATURE_NAMES)}")
        out.extend(n for n in names if n not in out)
    return out


HARD_TYPES, EASY_TYPES = (0, 1, 2), (3, 6, 7)
"""Rows of the centroids (``training.task_types.TYPE_NAMES`` order) of the task types the type prior
counts as hard (code, math, reasoning) and easy (writing, chit-chat, knowledge)."""


class TransferRouter:
    """See the module docstring. ``fit(X, y, sample_weight=None)``, ``predict(X) -> (n,)`` raw scores.

    Args:
        dim: embedding columns at the front of each row.
        centroids: task-type prototype centroids, shape (t, dim), unit norm.
        feature_names: the text features after the embedding, in order.
        C: inverse L2 penalty.
        regression: fit the ``gap`` (ridge) instead of a binary label (logistic).
        embedding_weight: scale of the raw embedding block (0 leaves it out).
        use_text, use_task_type: include those blocks (ablations); ``drop`` removes single text features.
        trees: size of the tree ensemble added on the task-type and text blocks (0 = linear only).
        prior_weight: weight of a fixed prior, the keyword rule's points (:func:`rule_prior`), added in
            standard deviations to the learned score (0 = none): knowledge the training families
            cannot teach (code, math and reasoning asks are hard, greetings and lookups easy).
        clip: standardised inputs are clipped to [-clip, clip].
        min_support: leave out columns that differ from their training median on fewer than this share
            of the training rows (0 = keep all).
        embedding_logreg_weight: weight of the embedding logistic regression's standardised decision
            value (0 = none); ``embedding_logreg_C`` is its inverse L2 penalty.
        type_prior_weight: weight of a fixed task-type prior (:meth:`_type_prior`: the mean similarity
            to the code, math and reasoning prototypes minus that to writing, chit-chat and knowledge),
            added in standard deviations like ``prior_weight`` (0 = none): the same knowledge read from
            the embedding instead of keywords. The benchmark families hold no writing or chit-chat, so
            what a fit learns about those types is extrapolation; the prior sets their direction.
    """

    prior_weight = 0.0  # models pickled before these options existed read them from here
    type_prior_weight = 0.0
    clip = 5.0
    min_support = 0.0
    embedding_logreg_weight = 0.0
    embedding_logreg_C = 0.1
    support_ = None

    def __init__(self, dim: int, centroids: np.ndarray, feature_names: Sequence[str] = FEATURE_NAMES + EXTRA_FEATURE_NAMES,
                 C: float = 0.1, regression: bool = False, embedding_weight: float = 0.0, use_text: bool = True,
                 use_task_type: bool = True, drop: Sequence[str] = (), trees: int = 0, prior_weight: float = 0.0,
                 type_prior_weight: float = 0.0, clip: float = 5.0, min_support: float = 0.0,
                 embedding_logreg_weight: float = 0.0, embedding_logreg_C: float = 0.1, seed: int = 0) -> None:
        self.dim, self.centroids = dim, np.asarray(centroids, dtype=np.float32)
        self.feature_names = tuple(feature_names)
        self.C, self.regression, self.embedding_weight = C, regression, embedding_weight
        self.use_text, self.use_task_type, self.drop = use_text, use_task_type, tuple(drop)
        self.trees, self.seed, self.prior_weight = trees, seed, prior_weight
        self.type_prior_weight = type_prior_weight
        self.clip, self.min_support = clip, min_support
        self.embedding_logreg_weight, self.embedding_logreg_C = embedding_logreg_weight, embedding_logreg_C

    def _features(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        emb = X[:, : self.dim]
        cols = []
        if self.use_task_type:
            cols.append(emb @ self.centroids.T)
        if self.use_text:
            keep, logs = self._text_columns()
            text = X[:, self.dim:][:, keep].astype(np.float64)
            text[:, logs] = np.log1p(np.maximum(text[:, logs], 0.0))
            cols.append(text)
        if self.embedding_weight > 0:
            cols.append(emb)
        return np.hstack(cols).astype(np.float64) if cols else np.zeros((len(X), 1))

    def _text_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(the text columns read, as indices into the text features; which of those are
        log-compressed, as indices into the columns read), computed once (not pickled)."""
        cols = self.__dict__.get("_text_cols")
        if cols is None:
            keep = [i for i, n in enumerate(self.feature_names) if n not in self.drop]
            logs = [j for j, i in enumerate(keep) if self.feature_names[i] in LOG_FEATURES]
            cols = self._text_cols = (np.array(keep, dtype=np.intp), np.array(logs, dtype=np.intp))
        return cols

    def _standardise(self, F: np.ndarray) -> np.ndarray:
        z = (F - self.mean_) / self.scale_
        z = np.clip(z, -self.clip, self.clip)
        if self.support_ is not None:
            z[:, ~self.support_] = 0.0
        if self.embedding_weight > 0:
            z[:, -self.dim:] *= self.embedding_weight
        return z

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "TransferRouter":
        """Fit on rows ``X`` (n, dim + f) and target ``y`` (n,).

        Raises:
            ValueError: a binary fit whose target has one class only.
        """
        from sklearn.linear_model import LogisticRegression, Ridge

        F = self._features(X)
        self.mean_, self.scale_ = F.mean(axis=0), F.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        self.support_ = None
        if self.min_support > 0:
            self.support_ = (np.abs(F - np.median(F, axis=0)) > 1e-9).mean(axis=0) >= self.min_support
        Z = self._standardise(F)
        y = np.asarray(y, dtype=float)
        if self.regression:
            model = Ridge(alpha=1.0 / self.C).fit(Z, y, sample_weight=sample_weight)
            self.coef_, self.intercept_ = model.coef_.ravel(), float(model.intercept_)
        else:
            if len(set(y.astype(int))) < 2:
                raise ValueError("the binary label has one class only in these training rows")
            model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
            model.fit(Z, y.astype(int), sample_weight=sample_weight)
            self.coef_, self.intercept_ = model.coef_.ravel(), float(model.intercept_[0])
        self.linear_scale_ = float(np.std(Z @ self.coef_)) or 1.0
        if self.embedding_logreg_weight:
            emb = np.asarray(X, dtype=np.float64)[:, : self.dim]
            target = (y > 0) if self.regression else y.astype(int)
            lr = LogisticRegression(C=self.embedding_logreg_C, class_weight="balanced", max_iter=2000)
            lr.fit(emb, target.astype(int), sample_weight=sample_weight)
            self.elr_coef_, self.elr_intercept_ = lr.coef_.ravel(), float(lr.intercept_[0])
            d = emb @ self.elr_coef_
            self.elr_mean_, self.elr_scale_ = float(d.mean()), float(d.std()) or 1.0
        if self.prior_weight:
            p = self._prior(X)
            self.prior_mean_, self.prior_scale_ = float(p.mean()), float(p.std()) or 1.0
        if self.type_prior_weight:
            p = self._type_prior(X)
            self.type_prior_mean_, self.type_prior_scale_ = float(p.mean()), float(p.std()) or 1.0
        self.trees_ = None
        if self.trees > 0:
            from sklearn.ensemble import HistGradientBoostingRegressor

            small = Z[:, : Z.shape[1] - (self.dim if self.embedding_weight > 0 else 0)]
            self.trees_ = HistGradientBoostingRegressor(
                max_iter=self.trees, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=100,
                l2_regularization=1.0, random_state=self.seed).fit(small, y, sample_weight=sample_weight)
            self.trees_scale_ = float(np.std(self.trees_.predict(small))) or 1.0
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw score per row, shape (n,); higher = more in need of the strong model."""
        Z = self._standardise(self._features(X))
        out = (Z @ self.coef_ + self.intercept_) / self.linear_scale_
        if self.embedding_logreg_weight:
            d = np.asarray(X, dtype=np.float64)[:, : self.dim] @ self.elr_coef_
            out = out + self.embedding_logreg_weight * (d - self.elr_mean_) / self.elr_scale_
        if self.prior_weight:
            out = out + self.prior_weight * (self._prior(X) - self.prior_mean_) / self.prior_scale_
        if self.type_prior_weight:
            out = out + self.type_prior_weight * (self._type_prior(X) - self.type_prior_mean_) / self.type_prior_scale_
        if self.trees_ is not None:
            small = Z[:, : Z.shape[1] - (self.dim if self.embedding_weight > 0 else 0)]
            out = out + self._flat_trees().predict(small) / self.trees_scale_
        return out

    def _flat_trees(self):
        """The tree ensemble as :class:`~router.scoring.flat_trees.FlatTrees` (built on first use, not pickled):
        the same predictions as scikit-learn's, without its per-call overhead."""
        flat = self.__dict__.get("_flat")
        if flat is None:
            from .flat_trees import FlatTrees

            flat = self._flat = FlatTrees.of(self.trees_)
        return flat

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_flat", "_text_cols")}

    def _prior(self, X: np.ndarray) -> np.ndarray:
        """The keyword rule's points of each row, read from its ``rule_*`` and ``log_words`` features."""
        from .rules import WEIGHTS

        text = np.asarray(X, dtype=np.float64)[:, self.dim:]
        col = {n: i for i, n in enumerate(self.feature_names)}
        points = sum(WEIGHTS[k] * text[:, col[f"rule_{k}"]] for k in WEIGHTS if f"rule_{k}" in col)
        long = np.minimum(1.0, text[:, col["log_words"]] / np.log(400)) - 0.5
        return points + WEIGHTS["long"] * long

    def _type_prior(self, X: np.ndarray) -> np.ndarray:
        """Mean similarity to the hard task types (code, math, reasoning) minus the mean to the easy
        ones (writing, chit-chat, knowledge), shape (n,)."""
        sims = np.asarray(X, dtype=np.float32)[:, : self.dim] @ self.centroids.T
        return sims[:, list(HARD_TYPES)].mean(axis=1) - sims[:, list(EASY_TYPES)].mean(axis=1)

    def input_names(self) -> list[str]:
        """Names of the linear model's inputs, in coefficient order."""
        from_types = [f"type_{i}" for i in range(len(self.centroids))] if self.use_task_type else []
        text = [n for n in self.feature_names if n not in self.drop] if self.use_text else []
        return from_types + text + ([f"emb_{i}" for i in range(self.dim)] if self.embedding_weight > 0 else [])

    def __repr__(self) -> str:
        head = (f"TransferRouter(C={self.C:g}, regression={self.regression}, embedding_weight={self.embedding_weight:g}, "
                f"task_types={len(self.centroids) if self.use_task_type else 0}, text={self.use_text}, trees={self.trees}, "
                f"clip={self.clip:g}, min_support={self.min_support:g}, embedding_logreg_weight={self.embedding_logreg_weight:g}, "
                f"type_prior_weight={self.type_prior_weight:g})")
        if not hasattr(self, "coef_"):
            return head
        top = sorted(zip(self.input_names(), self.coef_), key=lambda p: -abs(p[1]))[:8]
        return head + "; largest weights on standardised inputs: " + ", ".join(f"{n} {c:+.3f}" for n, c in top)
