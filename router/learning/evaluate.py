"""Candidate vs active on later traffic: weighted APGR, quality retention, cost (pure).

Each labelled request has what the cloud tier gains over the local answer, ``needs`` (the
label's gain: 1 the local answer was not enough, 0 as good, -1 better, from a three-way
verdict; binary labels give 1 or 0) and a weight (inverse sampling probability). Taking the
cloud answer as the reference (quality 1) and the local answer's quality as 1 - gain, a
router that sends the top-scored share ``c`` of the (weighted) requests to the cloud has
quality ``q(c) = 1 - (weighted gain left local) / W`` (above 1 where better local answers
are kept local); PGR, APGR (trapezoid area under
PGR(c), c in [0, 1]) follow ``../shared/data/README.md`` with these weights (ties broken by a
fixed random permutation, as :mod:`training.metrics` does). Intervals are percentile
bootstraps over requests, paired (both routers on the same resample).

- quality retention at the active policy's cloud share ``s``: ``q(s)`` for each router;
- cost at the active router's quality: the cloud share each router needs to reach the
  active router's ``q(s)``, times the mean cloud cost of a request (USD).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["weighted_curve", "weighted_apgr", "retention_at", "share_for", "Comparison", "compare",
           "time_split", "time_splits"]


def weighted_curve(scores: np.ndarray, needs: np.ndarray, w: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(share, quality)`` arrays of length n + 1 (share 0..1 by weight; quality 0..1).

    Raises:
        ValueError: empty input.
    """
    s, y, w = (np.asarray(a, dtype=float) for a in (scores, needs, w))
    if len(s) == 0:
        raise ValueError("no requests to evaluate")
    perm = np.random.default_rng(seed).permutation(len(s))
    order = perm[np.argsort(-s[perm], kind="stable")]
    total = w.sum()
    share = np.concatenate([[0.0], np.cumsum(w[order]) / total])
    missing = (w * y).sum() / total
    quality = 1.0 - missing + np.concatenate([[0.0], np.cumsum((w * y)[order]) / total])
    return share, quality


def weighted_apgr(scores: np.ndarray, needs: np.ndarray, w: np.ndarray, seed: int = 0) -> float:
    """APGR of ``scores`` on weighted labels; NaN when no request needs the cloud."""
    share, quality = weighted_curve(scores, needs, w, seed)
    gap = 1.0 - quality[0]
    if gap <= 1e-12:
        return float("nan")
    return float(np.trapezoid((quality - quality[0]) / gap, share))


def retention_at(scores: np.ndarray, needs: np.ndarray, w: np.ndarray, share: float, seed: int = 0) -> float:
    """Quality (= retention relative to all-cloud) when the top ``share`` goes to the cloud."""
    s, q = weighted_curve(scores, needs, w, seed)
    return float(np.interp(share, s, q))


def share_for(scores: np.ndarray, needs: np.ndarray, w: np.ndarray, quality: float, seed: int = 0) -> float:
    """The smallest cloud share whose quality reaches ``quality`` (first crossing)."""
    s, q = weighted_curve(scores, needs, w, seed)
    hit = np.nonzero(q >= quality - 1e-12)[0]
    return float(s[hit[0]]) if len(hit) else 1.0


@dataclass(frozen=True)
class Comparison:
    """Candidate vs active on one test set; every triple is (point, low, high) of a 95% interval.

    Attributes:
        n: test requests; cloud_share: the active policy's cloud share ``s``.
        apgr_candidate, apgr_active, apgr_diff: APGR and candidate - active.
        retention_candidate, retention_active: quality at share ``s``.
        share_candidate, share_active: cloud share needed for the active router's quality at ``s``.
        cost_candidate_usd, cost_active_usd: those shares times the mean cloud cost per request
            (USD per request; None when no cost is known).
    """

    n: int
    cloud_share: float
    apgr_candidate: tuple[float, float, float]
    apgr_active: tuple[float, float, float]
    apgr_diff: tuple[float, float, float]
    retention_candidate: tuple[float, float, float]
    retention_active: tuple[float, float, float]
    share_candidate: tuple[float, float, float]
    share_active: tuple[float, float, float]
    cost_candidate_usd: tuple[float, float, float] | None
    cost_active_usd: tuple[float, float, float] | None

    @property
    def better(self) -> bool:
        """The candidate's APGR beats the active router's beyond the interval (difference low > 0)."""
        return bool(np.isfinite(self.apgr_diff[1]) and self.apgr_diff[1] > 0)


def _interval(point: float, samples: list[float]) -> tuple[float, float, float]:
    arr = np.array([x for x in samples if np.isfinite(x)])
    if not len(arr):
        return point, float("nan"), float("nan")
    lo, hi = np.percentile(arr, [2.5, 97.5])
    return float(point), float(lo), float(hi)


def _measures(cand, act, y, w, s) -> tuple[float, ...]:
    q_active = retention_at(act, y, w, s)
    return (weighted_apgr(cand, y, w), weighted_apgr(act, y, w), retention_at(cand, y, w, s), q_active,
            share_for(cand, y, w, q_active), share_for(act, y, w, q_active))


def compare(candidate: np.ndarray, active: np.ndarray, needs: np.ndarray, w: np.ndarray, cloud_share: float,
            cloud_cost_usd: float | None = None, n_boot: int = 200, seed: int = 0) -> Comparison:
    """Compare two routers' scores on the same labelled test requests (see the module docstring)."""
    c, a, y, w = (np.asarray(x, dtype=float) for x in (candidate, active, needs, w))
    point = _measures(c, a, y, w, cloud_share)
    rng = np.random.default_rng(seed)
    boots: list[tuple[float, ...]] = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        m = _measures(c[i], a[i], y[i], w[i], cloud_share)
        boots.append(m + (m[0] - m[1],))
    col = [list(x) for x in zip(*boots)] if boots else [[] for _ in range(7)]
    ivs = [_interval(p, col[k]) for k, p in enumerate(point)]
    diff = _interval(point[0] - point[1], col[6])

    def cost(t: tuple[float, float, float]) -> tuple[float, float, float] | None:
        return None if cloud_cost_usd is None else tuple(x * cloud_cost_usd for x in t)  # type: ignore[return-value]

    return Comparison(len(y), cloud_share, ivs[0], ivs[1], diff, ivs[2], ivs[3], ivs[4], ivs[5], cost(ivs[4]),
                      cost(ivs[5]))


def time_split(ts: np.ndarray, train_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the earlier ``train_share`` of rows by time (train) and the later rest (test).

    Raises:
        ValueError: ``train_share`` outside (0, 1).
    """
    if not 0.0 < train_share < 1.0:
        raise ValueError("train_share must be between 0 and 1")
    order = np.argsort(np.asarray(ts, dtype=float), kind="stable")
    cut = int(round(len(order) * train_share))
    return order[:cut], order[cut:]


def time_splits(ts: np.ndarray, train_share: float, blocks: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rolling-origin time splits (Tashman 2000, *Int. J. Forecasting* 16, "Out-of-sample tests
    of forecasting accuracy"): the rows after the earlier ``train_share`` (by time) are cut into
    ``blocks`` consecutive test blocks, and block k is predicted by a model trained on every
    row before it. ``blocks == 1`` is :func:`time_split`. Returns [(train indices, test indices)].

    Raises:
        ValueError: ``train_share`` outside (0, 1) or ``blocks`` < 1.
    """
    if blocks < 1:
        raise ValueError("blocks must be at least 1")
    first, _ = time_split(ts, train_share)
    order = np.argsort(np.asarray(ts, dtype=float), kind="stable")
    edges = np.linspace(len(first), len(order), blocks + 1).round().astype(int)
    return [(order[: edges[k]], order[edges[k]: edges[k + 1]]) for k in range(blocks) if edges[k + 1] > edges[k]]
