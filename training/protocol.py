"""The headline protocol of ``train``, ``eval`` and the benches: a recipe against the baselines,
leave-one-family-out, with 5-fold and unseen-subject rows as secondary protocols.

A :class:`Recipe` names a model kind, its label, its parameters and whether every training
family weighs the same. :func:`evaluate_protocol` returns the LOFO :class:`training.lofo.FamilyTable`
of the recipe and of the baselines (:data:`BASELINES`):

- ``random``: uniform scores (seed);
- ``length``: characters of the prompt (longer = harder);
- ``rules``: :func:`router.scoring.rules.rule_score`, keyword and structure weights, no training;
- ``logreg``: a plain logistic regression on the embedding alone (C = 0.1, balanced classes,
  label ``needs_strong``), fitted like the recipe (LOFO: on the other families);
- ``oracle``: the true outcome gap (strong - weak), the ceiling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .datasets import Example, label_values
from .families import FAMILY_ORDER
from .lofo import FamilyTable, family_table, kfold_scores, lofo_scores
from .models import fit_model, make_model, raw_scores

__all__ = ["Recipe", "BASELINES", "trusted_rows", "family_weights", "fit_score_fn", "baseline_routers", "fixed_baselines",
           "logreg_fit_score", "evaluate_protocol", "ProtocolResult", "order_families"]

BASELINES = ("random", "length", "rules", "logreg", "oracle")
LOGREG_C = 0.1


@dataclass(frozen=True)
class Recipe:
    """What to train: ``kind`` (:data:`training.models.MODEL_KINDS`), ``label``, ``params``
    (``transfer``'s keyword arguments besides the centroids), ``balance_families`` (each
    training family's rows share one equal total weight; ``transfer`` only), ``exclude``
    (families whose labels are never trained on; they are still scored), ``center_families``
    (subtract each training family's mean label: the model learns only what ranks prompts
    within a family, nothing of how families differ), ``min_group_strong`` (groups, i.e. dataset and
    subject, whose strong model's mean outcome is below this are never trained on; they are still
    scored: :func:`trusted_rows`), ``shift_weight`` (covariate-shift importance weighting toward
    unlabelled chat prompts, the exponent of the clipped density ratio in [0, 1], 0 = off;
    ``transfer`` only: :func:`training.shift.shift_weights`, fitted on the training fold only)."""

    kind: str = "transfer"
    label: str = "needs_strong"
    params: dict[str, Any] = field(default_factory=dict)
    balance_families: bool = True
    exclude: tuple[str, ...] = ()
    center_families: bool = False
    min_group_strong: float = 0.0
    shift_weight: float = 0.0

    def describe(self) -> str:
        """One line: kind, label, parameters, weighting."""
        p = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return (f"{self.kind} on {self.label}" + (f" ({p})" if p else "")
                + (", families weighted equally" if self.balance_families and self.kind == "transfer" else "")
                + (f", not trained on {', '.join(self.exclude)}" if self.exclude else "")
                + (", labels centred per family" if self.center_families else "")
                + (f", groups whose strong model scores below {self.min_group_strong:g} not trained on"
                   if self.min_group_strong else "")
                + (f", rows weighted toward chat prompts (density ratio ^ {self.shift_weight:g})"
                   if self.shift_weight else ""))


def trusted_rows(examples: Sequence[Example], min_group_strong: float) -> np.ndarray:
    """Rows whose group (dataset/subject) has a strong-model mean outcome of at least ``min_group_strong``,
    bool (n,); all True when it is 0.

    A group where the strong model scores below chance has broken grading, not hard questions:
    chance on four answer options is 0.25, and in RouteLLM's MMLU ``high_school_mathematics``
    GPT-4-1106 is marked right on 3% of 270 questions (Mixtral on 32%), its answers marked wrong
    where they are right (e.g. "the diagonal is 5*sqrt(5) and the length twice the width: the
    area?", 50, marked wrong for both models). Trained on, such a group teaches that math
    questions need no strong model.
    """
    if not min_group_strong:
        return np.ones(len(examples), dtype=bool)
    groups = np.array([f"{e.source}/{e.group}" for e in examples])
    strong = np.array([e.strong for e in examples], dtype=float)
    keep = np.ones(len(examples), dtype=bool)
    for g in set(groups.tolist()):
        rows = groups == g
        if strong[rows].mean() < min_group_strong:
            keep[rows] = False
    return keep


def family_weights(families: np.ndarray) -> np.ndarray:
    """Per-row weights giving every family the same total weight (mean weight 1), shape (n,)."""
    names, inverse, counts = np.unique(families, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    return w * len(w) / w.sum()


def centred(y: np.ndarray, families: np.ndarray) -> np.ndarray:
    """``y`` minus the mean of its family, shape (n,) (a regression target: use it with ``gap``)."""
    out = np.asarray(y, dtype=float).copy()
    for fam in set(families.tolist()):
        out[families == fam] -= out[families == fam].mean()
    return out


def fit_score_fn(recipe: Recipe, inputs: np.ndarray, examples: Sequence[Example], families: np.ndarray,
                 dim: int, centroids: np.ndarray | None, seed: int = 0,
                 target_inputs: np.ndarray | None = None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``(train_idx, test_idx) -> raw scores of the test rows`` for ``recipe``.

    ``target_inputs`` (n_target, d): unlabelled chat prompts' inputs, needed when ``recipe.shift_weight``
    is set (the domain classifier is fitted inside each fit, on its training rows only).
    Raises:
        ValueError: ``recipe.shift_weight`` set without ``target_inputs``.
    """
    if recipe.shift_weight and target_inputs is None:
        raise ValueError("a recipe with shift_weight needs the chat prompts' inputs (target_inputs)")
    y = label_values(examples, recipe.label)
    groups = np.array([f"{e.source}/{e.group}" for e in examples])
    params = {**recipe.params, "centroids": centroids} if recipe.kind == "transfer" else None
    trusted = trusted_rows(examples, recipe.min_group_strong)

    def run(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        train = train[~np.isin(families[train], recipe.exclude)] if recipe.exclude else train
        train = train[trusted[train]]
        weights = family_weights(families[train]) if recipe.balance_families and recipe.kind == "transfer" else None
        if recipe.shift_weight and recipe.kind == "transfer":
            from .shift import shift_weights

            shift = shift_weights(inputs[train], target_inputs, families[train], recipe.shift_weight)
            weights = shift if weights is None else weights * shift
        target = centred(y[train], families[train]) if recipe.center_families else y[train]
        model = fit_model(make_model(recipe.kind, recipe.label, dim, seed, params), inputs[train], target,
                          groups[train], sample_weight=weights)
        return raw_scores(model, inputs[test])

    return run


def logreg_fit_score(inputs: np.ndarray, examples: Sequence[Example], dim: int, families: np.ndarray,
                     exclude: Sequence[str] = ()) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The ``logreg`` baseline as ``(train_idx, test_idx) -> scores``: logistic regression on the
    embedding columns alone (C = :data:`LOGREG_C`, balanced classes, label ``needs_strong``), never
    trained on the ``exclude`` families (as the recipe)."""
    from sklearn.linear_model import LogisticRegression

    y = label_values(examples, "needs_strong").astype(int)
    emb = inputs[:, :dim]

    def run(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        train = train[~np.isin(families[train], list(exclude))] if exclude else train
        model = LogisticRegression(C=LOGREG_C, class_weight="balanced", max_iter=2000).fit(emb[train], y[train])
        return model.decision_function(emb[test])

    return run


def fixed_baselines(examples: Sequence[Example], seed: int = 0) -> dict[str, np.ndarray]:
    """Scores of the untrained baselines: ``random``, ``length``, ``rules`` and ``oracle``, shape (n,) each."""
    from router.scoring.rules import rule_score

    rng = np.random.default_rng(seed)
    return {
        "random": rng.random(len(examples)),
        "length": np.array([len(e.prompt) for e in examples], dtype=float),
        "rules": np.array([rule_score(e.prompt) for e in examples]),
        "oracle": np.array([e.gap for e in examples], dtype=float),
    }


def baseline_routers(examples: Sequence[Example], inputs: np.ndarray, dim: int, split: Callable, families: np.ndarray,
                     seed: int = 0, exclude: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Scores of :data:`BASELINES`, in that order; ``split(fit_score) -> scores`` runs the trained
    one (``logreg``) under the protocol (LOFO or k-fold)."""
    fixed = fixed_baselines(examples, seed)
    logreg = split(logreg_fit_score(inputs, examples, dim, families, exclude))
    return {name: logreg if name == "logreg" else fixed[name] for name in BASELINES}


def order_families(names) -> list[str]:
    """Built-in families in :data:`training.families.FAMILY_ORDER`, then the others as given."""
    names = list(dict.fromkeys(names))
    return [f for f in FAMILY_ORDER if f in names] + [f for f in names if f not in FAMILY_ORDER]


@dataclass
class ProtocolResult:
    """``table``: the family table; ``scores``: router name -> scores (n,) under the protocol;
    ``protocol``: a one-line description."""

    table: FamilyTable
    scores: dict[str, np.ndarray]
    protocol: str


def evaluate_protocol(examples: Sequence[Example], families: np.ndarray, inputs: np.ndarray, dim: int,
                      recipe: Recipe | None, centroids: np.ndarray | None, protocol: str = "lofo", k: int = 5,
                      n_boot: int = 200, seed: int = 0, extra: dict[str, np.ndarray] | None = None,
                      on_step: Callable[[str], None] | None = None) -> ProtocolResult:
    """The recipe (as ``router``; left out when None) and the baselines under ``protocol``.

    Args:
        protocol: ``lofo`` (train on the other families), ``kfold`` (``k`` folds of prompts over
            all families pooled), or ``none`` (``extra`` holds the only router scores: an artifact as is).
        extra: more routers' scores already computed under the same protocol (e.g. a shipped artifact).
    Raises:
        ValueError: an unknown protocol, or fewer than two families for ``lofo``.
    """
    if protocol == "lofo":
        if len(set(families.tolist())) < 2:
            raise ValueError("leave-one-family-out needs at least two families; add data or use --protocol kfold")

        def split(fn):
            return lofo_scores(families, fn, on_step)
        how = "leave-one-family-out: each family scored by a model fitted on all other families"
    elif protocol == "kfold":
        def split(fn):
            return kfold_scores(len(examples), fn, k, seed)
        how = f"{k}-fold by prompt over all families pooled (seed {seed})"
    elif protocol == "none":
        def split(fn):
            return kfold_scores(len(examples), fn, k, seed)
        how = "the artifact as it is (baseline logreg: 5-fold by prompt)"
    else:
        raise ValueError(f"unknown protocol {protocol!r}; expected lofo, kfold or none")
    scores: dict[str, np.ndarray] = {}
    if recipe is not None:
        scores["router"] = split(fit_score_fn(recipe, inputs, examples, families, dim, centroids, seed))
    scores.update(extra or {})
    scores.update(baseline_routers(examples, inputs, dim, split, families, seed, recipe.exclude if recipe else ()))
    compare = [r for r in scores if r not in BASELINES]
    table = family_table(examples, families, scores, n_boot=n_boot, seed=seed, compare=compare)
    table.families = {f: table.families[f] for f in order_families(table.families)}
    return ProtocolResult(table, scores, how)
