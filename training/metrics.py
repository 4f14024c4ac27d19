"""The field's router metrics, as ``../shared/data/README.md`` defines them.

A router gives each prompt a score (higher = needs the strong model). Sorting by score
and sending the top ``k`` of ``n`` prompts to the strong model gives the cloud share
``c = k / n`` for k = 0..n, the finest grid the data allows; at each c the quality q(c) is
the mean outcome of the model each prompt was routed to.

- PGR(c) = (q(c) - q_weak) / (q_strong - q_weak)   (RouteLLM, Ong et al. 2024, sec. 5.1)
- APGR: trapezoid-rule area under PGR(c) over c in [0, 1] on that grid
- CPT(x): the smallest c with PGR(c) >= x (first crossing, no monotone interpolation)
- strong share for 95% of the strong model's quality: smallest c with q(c) >= 0.95 q_strong
- AUROC of the score against the label ``needs strong``
Ties in score are broken by a fixed random permutation, so a constant score behaves as
the random router.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Curve", "quality_curve", "apgr", "cpt", "share_for_quality", "auroc", "router_metrics", "bootstrap_metrics"]


@dataclass(frozen=True)
class Curve:
    """Quality against cloud share. Arrays of length n + 1: ``share`` (0..1), ``quality``
    (mean outcome), ``pgr``; scalars ``q_weak`` and ``q_strong``."""

    share: np.ndarray
    quality: np.ndarray
    pgr: np.ndarray
    q_weak: float
    q_strong: float


def quality_curve(scores, weak, strong, seed: int = 0) -> Curve:
    """Build the quality/PGR curve for one router on one set of prompts.

    Args:
        scores: shape (n,), higher = more in need of the strong model.
        weak, strong: shape (n,), outcomes in [0, 1].
    Raises:
        ValueError: empty input, mismatched lengths, or q_strong == q_weak.
    """
    s, w, t = (np.asarray(a, dtype=float) for a in (scores, weak, strong))
    n = len(s)
    if n == 0 or len(w) != n or len(t) != n:
        raise ValueError("scores, weak and strong must be non-empty and of equal length")
    q_weak, q_strong = float(w.mean()), float(t.mean())
    if q_strong == q_weak:
        raise ValueError("PGR is undefined: the strong and weak models have equal quality here")
    perm = np.random.default_rng(seed).permutation(n)
    order = perm[np.argsort(-s[perm], kind="stable")]
    gain = np.concatenate([[0.0], np.cumsum(t[order] - w[order])])
    quality = (w.sum() + gain) / n
    share = np.arange(n + 1) / n
    pgr = (quality - q_weak) / (q_strong - q_weak)
    return Curve(share, quality, pgr, q_weak, q_strong)


def apgr(curve: Curve) -> float:
    """Average performance gap recovered: trapezoid area under PGR(c), c in [0, 1]."""
    return float(np.trapezoid(curve.pgr, curve.share))


def cpt(curve: Curve, x: float) -> float:
    """Call-performance threshold: the smallest cloud share whose PGR reaches ``x`` (e.g. 0.5)."""
    hit = np.nonzero(curve.pgr >= x - 1e-12)[0]
    return float(curve.share[hit[0]]) if len(hit) else 1.0


def share_for_quality(curve: Curve, fraction: float = 0.95) -> float:
    """Smallest cloud share whose quality reaches ``fraction`` x the strong model's quality."""
    hit = np.nonzero(curve.quality >= fraction * curve.q_strong - 1e-12)[0]
    return float(curve.share[hit[0]]) if len(hit) else 1.0


def auroc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels``; NaN if one class only."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def router_metrics(scores, weak, strong, seed: int = 0) -> dict[str, float]:
    """APGR, CPT(50%), CPT(80%), strong share for 95% quality and AUROC of one router."""
    curve = quality_curve(scores, weak, strong, seed)
    labels = (np.asarray(strong) >= 0.5) & (np.asarray(weak) < 0.5)
    return {
        "apgr": apgr(curve),
        "cpt50": cpt(curve, 0.5),
        "cpt80": cpt(curve, 0.8),
        "share_for_95pct_strong": share_for_quality(curve, 0.95),
        "auroc": auroc(scores, labels.astype(int)),
        "q_weak": curve.q_weak,
        "q_strong": curve.q_strong,
        "n": float(len(curve.share) - 1),
    }


def bootstrap_metrics(scores, weak, strong, n_boot: int = 200, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Each metric of :func:`router_metrics` with a bootstrap 95% interval (percentile method).

    Returns:
        ``{metric: (point, low, high)}`` over ``n_boot`` resamples of the prompts.
    """
    s, w, t = (np.asarray(a, dtype=float) for a in (scores, weak, strong))
    point = router_metrics(s, w, t, seed)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {k: [] for k in point if k not in ("n",)}
    for _ in range(n_boot):
        idx = rng.integers(0, len(s), len(s))
        try:
            m = router_metrics(s[idx], w[idx], t[idx], seed)
        except ValueError:
            continue
        for k in samples:
            samples[k].append(m[k])
    out = {}
    for k, v in samples.items():
        arr = np.array([x for x in v if np.isfinite(x)])
        lo, hi = (np.percentile(arr, [2.5, 97.5]) if len(arr) else (np.nan, np.nan))
        out[k] = (point[k], float(lo), float(hi))
    out["n"] = (point["n"], point["n"], point["n"])
    return out
