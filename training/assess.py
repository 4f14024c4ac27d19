"""A recipe's three held-out protocols, as ``train`` writes them into the card and ``eval`` prints them.

1. **LOFO** (headline): each family scored by a model fitted on all other families
   (:func:`training.lofo.lofo_scores`); needs two families or more.
2. **5-fold** (secondary): folds of prompts over all families pooled; every family is seen in
   training, so this rewards what does not travel.
3. **unseen subjects** (secondary, when MMLU is in the data): 5 folds of whole MMLU subjects;
   each fold's subjects are scored by a model fitted on the other subjects and every other family.

Each protocol's table holds the recipe (``router``) and the baselines of :mod:`training.protocol`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .datasets import Example
from .lofo import FamilyTable, family_table, kfold_scores, lofo_scores
from .protocol import BASELINES, Recipe, fit_score_fn, fixed_baselines, logreg_fit_score, order_families

__all__ = ["Assessment", "assess", "subject_fold_scores", "UNSEEN"]

UNSEEN = "mmlu (unseen subjects)"


@dataclass
class Assessment:
    """Tables (None when a protocol does not apply) and the recipe's raw held-out scores (n,)."""

    lofo: FamilyTable | None
    kfold: FamilyTable | None
    unseen_subject: FamilyTable | None
    lofo_raw: np.ndarray | None
    kfold_raw: np.ndarray | None


def subject_fold_scores(examples: Sequence[Example], fit_score: Callable, k: int = 5, seed: int = 0) -> np.ndarray:
    """Scores of MMLU rows from ``k`` folds of whole subjects (other rows always train; NaN for them)."""
    from sklearn.model_selection import GroupKFold

    is_mmlu = np.array([e.source == "mmlu" for e in examples])
    mmlu = np.nonzero(is_mmlu)[0]
    others = np.nonzero(~is_mmlu)[0]
    subjects = np.array([examples[i].group for i in mmlu])
    out = np.full(len(examples), np.nan)
    for tr, te in GroupKFold(k, shuffle=True, random_state=seed).split(mmlu, groups=subjects):
        out[mmlu[te]] = fit_score(np.concatenate([others, mmlu[tr]]), mmlu[te])
    return out


def _table(examples, fams, scores: dict[str, np.ndarray], n_boot: int, seed: int) -> FamilyTable:
    table = family_table(examples, fams, scores, n_boot=n_boot, seed=seed,
                         compare=[r for r in scores if r not in BASELINES])
    table.families = {f: table.families[f] for f in order_families(table.families)}
    return table


def assess(examples: Sequence[Example], families: np.ndarray, inputs: np.ndarray, dim: int, recipe: Recipe,
           centroids: np.ndarray | None, k: int = 5, n_boot: int = 200, seed: int = 0,
           on_step: Callable[[str], None] | None = None, protocols: Sequence[str] = ("lofo", "kfold", "unseen")) -> Assessment:
    """Run the protocols named in ``protocols`` (``lofo``, ``kfold``, ``unseen``); a protocol that
    does not apply (one family; no MMLU) is left None.

    Raises:
        ValueError: fewer prompts than ``k``.
    """
    step = on_step or (lambda name: None)
    fit = fit_score_fn(recipe, inputs, examples, families, dim, centroids, seed)
    fixed = fixed_baselines(examples, seed)
    logreg = logreg_fit_score(inputs, examples, dim, families, recipe.exclude)
    lofo = lofo_raw = unseen = None
    if "lofo" in protocols and len(set(families.tolist())) >= 2:
        lofo_raw = lofo_scores(families, fit)
        step("lofo")
        lofo = _table(examples, families, {"router": lofo_raw, **fixed, "logreg": lofo_scores(families, logreg)},
                      n_boot, seed)
        step("lofo baselines")
    kfold = kfold_raw = None
    if "kfold" in protocols:
        if len(examples) < k:
            raise ValueError(f"{len(examples)} prompts are too few for {k} folds")
        kfold_raw = kfold_scores(len(examples), fit, k, seed)
        step("kfold")
        kfold = _table(examples, families, {"router": kfold_raw, **fixed,
                                            "logreg": kfold_scores(len(examples), logreg, k, seed)}, n_boot, seed)
    mmlu_subjects = {e.group for e in examples if e.source == "mmlu"}
    if "unseen" in protocols and len(mmlu_subjects) >= k:
        idx = np.array([e.source == "mmlu" for e in examples])
        sub = [e for e, m in zip(examples, idx) if m]
        scores = {"router": subject_fold_scores(examples, fit, k, seed)[idx],
                  **{n: s[idx] for n, s in fixed.items()},
                  "logreg": subject_fold_scores(examples, logreg, k, seed)[idx]}
        unseen = _table(sub, np.array([UNSEEN] * len(sub)), scores, n_boot, seed)
        step("unseen subjects")
    return Assessment(lofo, kfold, unseen, lofo_raw, kfold_raw)
