"""Cross-validated evaluation of a model family against the random, length and oracle routers.

Protocols (``split``):

- ``kfold``: 5 folds of prompts, shuffled (seed 0); every prompt is scored by a model that
  never saw it;
- ``group``: 5 folds of whole groups (MMLU subjects, ...): the held-out prompts come from
  groups absent from training.

Metrics are computed per dataset (routing ranks prompts within one workload), on the
out-of-fold scores, by :mod:`training.metrics`, each with a bootstrap 95% interval.
Baselines: ``random`` (uniform scores, seed 0), ``length`` (characters of the prompt),
``rules`` (:mod:`router.scoring.rules`) and ``oracle`` (the true outcome gap, strong - weak).
The headline protocol, leave-one-family-out, is :mod:`training.assess`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .datasets import Example, label_values
from .metrics import bootstrap_metrics
from .models import fit_model, make_model, raw_scores

__all__ = ["SPLITS", "group_names", "fold_indices", "cross_val_raw", "baseline_scores", "evaluate_scores", "held_out_calibration", "METRIC_NAMES"]

SPLITS = ("kfold", "group")
METRIC_NAMES = ("apgr", "cpt50", "cpt80", "share_for_95pct_strong", "auroc")


def group_names(examples: Sequence[Example]) -> np.ndarray:
    """``source/group`` of each example (the groups of ``--split group`` and of the group prior)."""
    return np.array([f"{e.source}/{e.group}" for e in examples])


def fold_indices(examples: Sequence[Example], split: str = "kfold", k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, test_idx) pairs for ``k`` folds.

    Raises:
        ValueError: an unknown split, fewer than ``k`` prompts, or (``group``) fewer than ``k`` groups.
    """
    from sklearn.model_selection import GroupKFold, KFold

    n = len(examples)
    if n < k:
        raise ValueError(f"{n} prompts are too few for {k} folds")
    if split == "kfold":
        return list(KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)))
    if split == "group":
        groups = group_names(examples)
        if len(set(groups)) < k:
            raise ValueError(f"--split group needs at least {k} groups; this data has {len(set(groups))}")
        return list(GroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), groups=groups))
    raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def cross_val_raw(examples: Sequence[Example], inputs: np.ndarray, kind: str, label: str, dim: int,
                  split: str = "kfold", k: int = 5, seed: int = 0,
                  on_fold: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold raw scores of model family ``kind`` trained on ``label``.

    Args:
        inputs: shape (n, dim + text features), rows aligned with ``examples``.
        on_fold: called with the fold number after each fold (progress bars).
    Returns:
        (scores of shape (n,), fold number of each prompt of shape (n,)).
    """
    y = label_values(examples, label)
    groups = group_names(examples)
    scores, fold_of = np.zeros(len(examples)), np.zeros(len(examples), dtype=int)
    for f, (tr, te) in enumerate(fold_indices(examples, split, k, seed)):
        model = fit_model(make_model(kind, label, dim, seed), inputs[tr], y[tr], groups[tr])
        scores[te], fold_of[te] = raw_scores(model, inputs[te]), f
        if on_fold:
            on_fold(f)
    return scores, fold_of


def baseline_scores(examples: Sequence[Example], seed: int = 0) -> dict[str, np.ndarray]:
    """Scores of the random, length, keyword-rule and oracle routers
    (:func:`training.protocol.fixed_baselines`)."""
    from .protocol import fixed_baselines

    return fixed_baselines(examples, seed)


def evaluate_scores(examples: Sequence[Example], routers: dict[str, np.ndarray], n_boot: int = 200,
                    seed: int = 0) -> dict[str, dict]:
    """Metrics of each router on each dataset.

    Returns:
        ``{source: {"n": int, "q_weak": float, "q_strong": float,
        router: {metric: (point, ci_low, ci_high)}}}``; a dataset whose two models have equal
        quality (PGR undefined) is skipped.
    """
    out: dict[str, dict] = {}
    for source in dict.fromkeys(e.source for e in examples):
        rows = np.array([i for i, e in enumerate(examples) if e.source == source])
        weak = np.array([examples[i].weak for i in rows])
        strong = np.array([examples[i].strong for i in rows])
        if weak.mean() == strong.mean():
            continue
        entry: dict = {"n": len(rows), "q_weak": float(weak.mean()), "q_strong": float(strong.mean())}
        for name, s in routers.items():
            b = bootstrap_metrics(np.asarray(s)[rows], weak, strong, n_boot=n_boot, seed=seed)
            entry[name] = {m: b[m] for m in METRIC_NAMES}
        out[source] = entry
    return out


def held_out_calibration(examples: Sequence[Example], inputs: np.ndarray, kind: str, label: str, dim: int,
                         targets: Sequence[float] = (0.2, 0.5, 0.8), k: int = 5, seed: int = 0,
                         on_fold: Callable[[int], None] | None = None,
                         fit_score: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> dict[float, list[float]]:
    """Does a threshold calibrated on held-out prompts give the target cloud share on new ones?

    For each of ``k`` folds: the other folds are split 80/20 (seed); the model is fitted on
    the 80%, each target's threshold is set on its scores of the 20%
    (:func:`training.calibrate.threshold_for_share`), and the share of this fold's prompts
    scoring >= that threshold is recorded.

    Args:
        fit_score: ``(train_idx, test_idx) -> scores`` (:func:`training.protocol.fit_score_fn`);
            when None, ``kind`` is fitted with its fixed parameters.
    Returns:
        ``{target: [realised share on each fold]}``.
    """
    from .calibrate import threshold_for_share

    y = label_values(examples, label)
    rng = np.random.default_rng(seed + 7)
    out: dict[float, list[float]] = {t: [] for t in targets}
    for f, (tr, te) in enumerate(fold_indices(examples, "kfold", k, seed)):
        tr = rng.permutation(tr)
        cut = len(tr) // 5
        cal, fit = tr[:cut], tr[cut:]
        if fit_score is not None:
            both = fit_score(fit, np.concatenate([cal, te]))
            cal_scores, test_scores = both[: len(cal)], both[len(cal):]
        else:
            model = fit_model(make_model(kind, label, dim, seed), inputs[fit], y[fit], group_names(examples)[fit])
            cal_scores, test_scores = raw_scores(model, inputs[cal]), raw_scores(model, inputs[te])
        for t in targets:
            out[t].append(float(np.mean(test_scores >= threshold_for_share(cal_scores, t))))
        if on_fold:
            on_fold(f)
    return out
