"""``slm-router eval``: an artifact (or its recipe refitted under a protocol) against the baselines, per family.

Splits:

- ``lofo``: the artifact's recipe refitted leaving each family out (the headline protocol);
- ``kfold`` / ``group``: ``k`` folds of prompts / of whole groups (``source/group``);
- ``unseen``: ``k`` folds of whole MMLU subjects, every other family always in training;
- ``none``: the artifact as it is, on data it never saw (a user's own labelled prompts);
  ``--artifact rules`` is the keyword rule (no training, so always ``none``);
- ``auto``: ``lofo`` when the data has two families or more, else ``none``.

The baselines (:mod:`training.protocol`) are computed under the same split; under ``none`` the
logistic regression baseline is fitted by 5-fold on the data itself (in-domain, a reference
the artifact does not get).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .families import load_with_families
from .lofo import FamilyTable, family_table, kfold_scores, lofo_scores
from .protocol import BASELINES, Recipe, fit_score_fn, fixed_baselines, logreg_fit_score, order_families

__all__ = ["EvalError", "EvalResult", "run_eval", "artifact_recipe"]


class EvalError(ValueError):
    """A combination of artifact, data and split that cannot be evaluated (message for the user)."""


@dataclass
class EvalResult:
    """The family table, a one-line description of the split, the split run and the plots written."""

    table: FamilyTable
    how: str
    split: str
    plots: list[Path] = field(default_factory=list)


def artifact_recipe(card: dict) -> tuple[Recipe, str]:
    """(recipe, embedder key) recorded in an artifact card by ``slm-router train``.

    Raises:
        EvalError: the card records no model kind (an older artifact).
    """
    from router.scoring.embedders import embedder_key

    model = card.get("model")
    if not isinstance(model, dict) or "kind" not in model:
        raise EvalError("the card records no model kind; retrain it with 'slm-router train'")
    recipe = Recipe(model["kind"], model["label"], dict(model.get("params") or {}),
                    bool(model.get("balance_families", False)), tuple(model.get("exclude") or ()),
                    min_group_strong=float(model.get("min_group_strong", 0.0)))
    return recipe, embedder_key(card)


def _split_fn(split: str, examples, families: np.ndarray, k: int, seed: int) -> Callable:
    from .assess import subject_fold_scores
    from .evaluate import fold_indices

    if split == "lofo":
        return lambda fn: lofo_scores(families, fn)
    if split == "kfold":
        return lambda fn: kfold_scores(len(examples), fn, k, seed)
    if split == "unseen":
        if len({e.group for e in examples if e.source == "mmlu"}) < k:
            raise EvalError(f"--split unseen needs MMLU with at least {k} subjects in --data")
        return lambda fn: subject_fold_scores(examples, fn, k, seed)
    folds = fold_indices(examples, "group", k, seed)

    def by_group(fn):
        out = np.zeros(len(examples))
        for train, test in folds:
            out[test] = fn(train, test)
        return out

    return by_group


def run_eval(artifact: str, data: str, split: str, k: int = 5, n_boot: int = 200, limit: int | None = None,
             seed: int = 0, note: Callable[[str], None] = lambda m: None, plot: Path | None = None) -> EvalResult:
    """Evaluate; see the module docstring. ``note`` receives warnings for the user.

    Raises:
        EvalError, ValueError, FileNotFoundError: bad arguments or missing data/artifact.
    """
    from router.scoring.text_features import FEATURE_NAMES

    from .train import limit_indices, prepare_inputs, task_centroids

    rows, fams = load_with_families(data)
    keep = limit_indices(rows, limit)
    rows, fams = [rows[i] for i in keep], fams[keep]
    n_fam = len(set(fams.tolist()))
    if split == "auto":
        split = "lofo" if n_fam >= 2 and artifact != "rules" else "none"
    if artifact == "rules" and split != "none":
        raise EvalError("the keyword rule has no training to refit; use --split none (or auto)")
    if split == "lofo" and n_fam < 2:
        raise EvalError("--split lofo needs at least two families in --data; use --split none or kfold")
    routers: dict[str, np.ndarray] = {}
    if artifact == "rules":
        from router.scoring.rules import rule_score

        card, emb_key, names = {}, "minilm", FEATURE_NAMES
        routers["router"] = np.array([rule_score(e.prompt) for e in rows])
        how = "the keyword rule (router/scoring/rules.py), no training"
    else:
        from router.scoring.artifact import load_artifact

        card = load_artifact(artifact).card
        recipe, emb_key = artifact_recipe(card) if split != "none" else (None, None)
        from router.scoring.embedders import embedder_key

        emb_key = emb_key or embedder_key(card)
        names = card.get("text_features") or FEATURE_NAMES
    x, dim = prepare_inputs(rows, emb_key, progress=False, names=names)
    split_of = _split_fn("kfold" if split == "none" else split, rows, fams, k, seed)
    if artifact != "rules" and split == "none":
        from router.scoring.classifier import EmbeddingClassifier

        trained = set(card.get("data", {}).get("trained_on_families") or card.get("data", {}).get("datasets") or [])
        overlap = trained & (set(fams.tolist()) | {e.source for e in rows})
        if overlap:
            note(f"the artifact was trained on {', '.join(sorted(overlap))}; --split none scores its own training "
                 "prompts (use lofo or kfold for held-out numbers)")
        clf = EmbeddingClassifier(artifact)
        routers["router"] = np.array(clf.score_embeddings(x[:, :dim], [e.prompt for e in rows]))
        how = "artifact as is"
    elif artifact != "rules":
        centroids = task_centroids(emb_key) if recipe.kind == "transfer" else None
        routers["router"] = split_of(fit_score_fn(recipe, x, rows, fams, dim, centroids, seed))
        how = {"lofo": "leave-one-family-out", "kfold": f"{k}-fold by prompt", "group": f"{k}-fold by group",
               "unseen": f"{k} folds of whole MMLU subjects"}[split] + f", {recipe.describe()}"
    fixed = fixed_baselines(rows, seed)
    logreg = split_of(logreg_fit_score(x, rows, dim, fams, recipe.exclude if artifact != "rules" and split != "none"
                                       else ()))
    routers.update({b: logreg if b == "logreg" else fixed[b] for b in BASELINES})
    if split == "none":
        how += f"; logreg baseline: {k}-fold on this data"
    table = family_table(rows, fams, routers, n_boot=n_boot, seed=seed, compare=["router"])
    table.families = {f: table.families[f] for f in order_families(table.families)}
    return EvalResult(table, how, split, _plots(rows, fams, routers, table, split, how, plot, seed))


def _plots(rows, fams, routers, table, split, how, plot, seed) -> list[Path]:
    from .metrics import quality_curve
    from .plot import plot_quality

    out = []
    for fam in table.families:
        idx = np.nonzero(fams == fam)[0]
        weak, strong = np.array([rows[i].weak for i in idx]), np.array([rows[i].strong for i in idx])
        curves = {name: quality_curve(s[idx], weak, strong, seed) for name, s in routers.items()}
        target = (plot.with_name(f"{plot.stem}-{fam}{plot.suffix or '.png'}") if plot and len(table.families) > 1
                  else plot or Path("runs") / "eval" / f"{fam}-{split}.png")
        plot_quality(curves, target, f"{fam}: {how}")
        out.append(target)
    return out
