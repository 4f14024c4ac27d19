"""Leave-one-family-out (LOFO) scores and their per-family, mean and worst metrics.

Protocol: for each family (:mod:`training.families`), fit on every other family and score the
one left out; a family is never seen in training before it is scored. The metrics follow
``../shared/data/README.md`` (:mod:`training.metrics`: APGR by trapezoid on the finest grid,
CPT(50%) at the first crossing, AUROC of the score against "strong right and weak wrong"),
computed per family (routing ranks prompts within one workload).

Intervals: a paired bootstrap (Efron & Tibshirani, 1993): each of ``n_boot`` resamples draws
every family's prompts with replacement once and scores every router on the same draw, so
the mean over families, the worst family and the difference between two routers each get a
95% percentile interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .datasets import Example
from .metrics import apgr, cpt, quality_curve

__all__ = ["lofo_scores", "kfold_scores", "FamilyTable", "family_table", "fast_auroc"]

FitScore = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(train_idx, test_idx) -> scores of the test rows``: fit a router on the train rows."""


def lofo_scores(families: np.ndarray, fit_score: FitScore, on_family: Callable[[str], None] | None = None,
                only: Sequence[str] | None = None) -> np.ndarray:
    """Out-of-family scores: each family's rows scored by a model fitted on all other families.

    Args:
        families: family of each row, shape (n,).
        only: score only these families (others stay NaN).
    Returns:
        float array (n,).
    """
    out = np.full(len(families), np.nan)
    for fam in dict.fromkeys(families.tolist()):
        if only is not None and fam not in only:
            continue
        test = np.nonzero(families == fam)[0]
        train = np.nonzero(families != fam)[0]
        out[test] = fit_score(train, test)
        if on_family:
            on_family(fam)
    return out


def kfold_scores(n: int, fit_score: FitScore, k: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold scores of ``k`` folds of prompts (shuffled with ``seed``), shape (n,)."""
    from sklearn.model_selection import KFold

    out = np.zeros(n)
    for train, test in KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)):
        out[test] = fit_score(train, test)
    return out


def fast_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC by the Mann-Whitney rank sum (ties get mean ranks); NaN with one class only."""
    from scipy.stats import rankdata

    y = np.asarray(labels).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


@dataclass
class FamilyTable:
    """Metrics of several routers on several families.

    Attributes:
        families: family -> {"n", "q_weak", "q_strong", router -> {"apgr": (point, lo, hi),
            "auroc": (point, lo, hi), "cpt50": point}}.
        mean, worst: router -> (point, lo, hi) of the APGR mean over families / the lowest family APGR.
        worst_family: router -> the family with its lowest APGR.
        diff: (router, other) -> (point, lo, hi) of mean APGR(router) - mean APGR(other), paired.
        family_diff: (family, router, other) -> (point, lo, hi) of the same difference on one family.
        n_boot: resamples behind every interval.
    """

    families: dict[str, dict] = field(default_factory=dict)
    mean: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    worst: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    worst_family: dict[str, str] = field(default_factory=dict)
    diff: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)
    family_diff: dict[tuple[str, str, str], tuple[float, float, float]] = field(default_factory=dict)
    n_boot: int = 0


def _ci(point: float, samples: np.ndarray) -> tuple[float, float, float]:
    s = samples[np.isfinite(samples)]
    lo, hi = np.percentile(s, [2.5, 97.5]) if len(s) else (np.nan, np.nan)
    return float(point), float(lo), float(hi)


def family_table(examples: Sequence[Example], families: np.ndarray, routers: dict[str, np.ndarray],
                 n_boot: int = 200, seed: int = 0, compare: Sequence[str] = ("router",)) -> FamilyTable:
    """Per-family APGR/AUROC/CPT(50%) of each router with paired bootstrap intervals, and the
    mean and worst over families. A family whose two models have equal quality (PGR undefined)
    or with a NaN score is skipped.

    Args:
        routers: name -> scores of shape (n,) (higher = needs the strong model).
        compare: routers whose paired differences to every other router are recorded.
    """
    weak_all = np.array([e.weak for e in examples])
    strong_all = np.array([e.strong for e in examples])
    labels_all = (strong_all >= 0.5) & (weak_all < 0.5)
    table = FamilyTable(n_boot=n_boot)
    names = list(routers)
    boot: dict[str, dict[str, np.ndarray]] = {}
    for fi, fam in enumerate(dict.fromkeys(families.tolist())):
        idx = np.nonzero(families == fam)[0]
        w, s, lab = weak_all[idx], strong_all[idx], labels_all[idx]
        if w.mean() == s.mean() or any(np.isnan(routers[r][idx]).any() for r in names):
            continue
        entry: dict = {"n": len(idx), "q_weak": float(w.mean()), "q_strong": float(s.mean())}
        rng = np.random.default_rng(seed + fi)
        draws = [rng.integers(0, len(idx), len(idx)) for _ in range(n_boot)]
        boot[fam] = {}
        for r in names:
            sc = np.asarray(routers[r], dtype=float)[idx]
            curve = quality_curve(sc, w, s, seed)
            samples_apgr, samples_auc = np.full(n_boot, np.nan), np.full(n_boot, np.nan)
            for b, d in enumerate(draws):
                if w[d].mean() != s[d].mean():
                    samples_apgr[b] = apgr(quality_curve(sc[d], w[d], s[d], seed))
                samples_auc[b] = fast_auroc(sc[d], lab[d])
            boot[fam][r] = samples_apgr
            entry[r] = {"apgr": _ci(apgr(curve), samples_apgr), "auroc": _ci(fast_auroc(sc, lab), samples_auc),
                        "cpt50": cpt(curve, 0.5)}
        table.families[fam] = entry
        for r in compare:
            for o in names:
                if o != r and r in boot[fam]:
                    table.family_diff[(fam, r, o)] = _ci(entry[r]["apgr"][0] - entry[o]["apgr"][0],
                                                         boot[fam][r] - boot[fam][o])
    fams = list(table.families)
    if not fams:
        return table
    for r in names:
        stack = np.stack([boot[f][r] for f in fams])  # (families, n_boot)
        points = np.array([table.families[f][r]["apgr"][0] for f in fams])
        table.mean[r] = _ci(points.mean(), np.nanmean(stack, axis=0))
        table.worst[r] = _ci(points.min(), np.nanmin(stack, axis=0))
        table.worst_family[r] = fams[int(points.argmin())]
    for r in compare:
        for o in names:
            if o != r and r in routers:
                d = np.nanmean(np.stack([boot[f][r] - boot[f][o] for f in fams]), axis=0)
                table.diff[(r, o)] = _ci(table.mean[r][0] - table.mean[o][0], d)
    return table
