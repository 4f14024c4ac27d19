"""Cascade learning and simulation on label files: the escalation combiner, held-out signal
AUROCs, and the cost/quality of router + cascade operating points.

Inputs are label rows (:func:`training.label.read_labels`). Everything here is pure numpy /
scikit-learn over those rows; the CLI (``slm-router calibrate --labels``) and
``bench/cascade.py`` do the I/O.

Simulation of one request under (router threshold ``t_r``, escalation cut ``t_e``):

- router score ``s`` >= ``t_r`` (higher = needs the cloud): the cloud answers; cost = one
  cloud call; quality = the cloud outcome;
- else the local tier answers (cost = its tokens, the self-check and consistency tokens
  when those signals are used); if P(correct) < ``t_e`` it escalates: + one cloud call, the
  local tokens are wasted, quality = the cloud outcome; else quality = the local outcome.

The cloud outcome is the recorded GPT-4-1106-preview outcome where the shared data has one
(RouteLLM MMLU/GSM8K, RouterBench ARC/Winogrande), else 1.0: the cloud answer is treated as
correct there, which flatters cloud-heavy lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router.policy import CombinerConfig
from router.cascade.signals import SIGNAL_NAMES, AnswerSignals

__all__ = ["COMBINER_SIGNALS", "signal_matrix", "fit_combiner", "oof_probabilities", "auroc_ci",
           "cloud_outcomes", "Costs", "row_costs", "OperatingPoint", "simulate", "best_point", "grid",
           "JointCalibration", "joint_calibration"]

COMBINER_SIGNALS: tuple[str, ...] = tuple(n for n in SIGNAL_NAMES if n not in ("format_error", "verifier"))
"""Signals the combiner reads by default (``format_error`` is a hard failure instead: label
tasks ask for no ``response_format``; ``verifier`` is added when a verifier is trained)."""


def signal_matrix(rows: Sequence[dict[str, Any]], names: Sequence[str] = COMBINER_SIGNALS,
                  router_scores: Sequence[float] | None = None,
                  verifier: Sequence[float] | None = None) -> np.ndarray:
    """Signals of label rows as an array of shape (n, len(names)); a name ``router_score``
    takes its column from ``router_scores``, ``verifier`` from ``verifier`` (P(correct)
    per row) when given.

    Raises:
        ValueError: ``router_score`` named but no scores given.
    """
    out = np.zeros((len(rows), len(names)))
    for i, row in enumerate(rows):
        sig = AnswerSignals.from_dict(row["signals"])
        for j, name in enumerate(names):
            if name == "verifier" and verifier is not None:
                out[i, j] = float(verifier[i])
            elif name == "router_score":
                if router_scores is None:
                    raise ValueError("router_score is a combiner input but no router scores were given")
                out[i, j] = float(router_scores[i])
            else:
                out[i, j] = sig.value(name)
    return out


def _model(C: float = 1.0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def fit_combiner(X: np.ndarray, y: Sequence[int], names: Sequence[str], min_p_correct: float = 0.5,
                 trained_on: str | None = None, C: float = 1.0) -> CombinerConfig:
    """Fit the logistic-regression combiner P(local answer correct) and return it as policy
    config (standardisation folded into ``means``/``scales``).

    Args:
        X: signals, shape (n, len(names)); y: 1 = local answer correct.
        C: inverse L2 strength (scikit-learn's).
    Raises:
        ValueError: ``y`` has one class only.
    """
    y = np.asarray(y, dtype=int)
    if y.min() == y.max():
        raise ValueError("the labels hold one class only; a combiner needs right and wrong answers")
    model = _model(C).fit(X, y)
    scaler, lr = model[0], model[1]
    scales = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return CombinerConfig(signals=list(names), weights=[round(float(w), 6) for w in lr.coef_[0]],
                          intercept=round(float(lr.intercept_[0]), 6),
                          means=[round(float(m), 6) for m in scaler.mean_],
                          scales=[round(float(s), 6) for s in scales],
                          min_p_correct=min_p_correct, trained_on=trained_on)


def oof_probabilities(X: np.ndarray, y: Sequence[int], k: int = 5, seed: int = 0,
                      strata: Sequence[str] | None = None, C: float = 1.0) -> np.ndarray:
    """Out-of-fold P(correct) of the combiner (``k`` folds, stratified by ``strata`` + label
    so every fold holds every dataset), shape (n,)."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=int)
    key = np.array([f"{s}|{v}" for s, v in zip(strata if strata is not None else [""] * len(y), y)])
    out = np.zeros(len(y))
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, key):
        if y[tr].min() == y[tr].max():
            out[te] = y[tr].mean()
            continue
        out[te] = _model(C).fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
    return out


def auroc_ci(scores: Sequence[float], labels: Sequence[int], n_boot: int = 200,
             seed: int = 0) -> tuple[float, float, float]:
    """AUROC of ``scores`` for ``labels`` with a bootstrap 95% interval (percentile method,
    ``n_boot`` resamples); NaNs when one class only."""
    from sklearn.metrics import roc_auc_score

    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if len(y) == 0 or y.min() == y.max():
        return float("nan"), float("nan"), float("nan")
    point = float(roc_auc_score(y, s))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            boots.append(roc_auc_score(y[idx], s[idx]))
    lo, hi = (np.percentile(boots, [2.5, 97.5]) if boots else (float("nan"), float("nan")))
    return point, float(lo), float(hi)


def cloud_outcomes(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """Per row, the recorded strong-model outcome where known, else 1.0; shape (n,)."""
    return np.array([float((r.get("recorded") or {}).get("correct", 1.0)
                           if (r.get("recorded") or {}).get("correct") is not None else 1.0) for r in rows])


@dataclass(frozen=True, slots=True)
class Costs:
    """Per-row costs in USD, each shape (n,).

    Attributes:
        local: the local answer (prompt + completion tokens at the local tier's price).
        check: the self-check call and the consistency sample.
        cloud: one cloud call for the row.
    """

    local: np.ndarray
    check: np.ndarray
    cloud: np.ndarray


def row_costs(rows: Sequence[dict[str, Any]], local_usd_per_hour: float, utilization: float,
              cloud_prompt_usd: float, cloud_completion_usd: float) -> Costs:
    """Price each row.

    Local calls (the answer, the self-check, the consistency sample) are priced by the time
    they held the hardware, as :class:`router.policy.Price` does for an hourly tier:
    ``usd_per_hour * latency_ms / 3.6e6 / utilization``. The cloud call is priced per token
    (``cloud_prompt_usd`` / ``cloud_completion_usd`` USD per token) with the local prompt-token
    count and the local answer's completion tokens (at least 1): the cloud tokenizer is
    assumed to count about the same, and short-answer tasks ask for short answers.
    """
    rate = local_usd_per_hour / 3.6e6 / utilization
    local = np.array([r["latency_ms"] * rate for r in rows])
    check = np.array([sum((r.get(k) or {}).get("latency_ms", 0.0) for k in ("self_check", "sample")) * rate
                      for r in rows])
    cloud = np.array([r["prompt_tokens"] * cloud_prompt_usd + max(r["completion_tokens"], 1) * cloud_completion_usd
                      for r in rows])
    return Costs(local, check, cloud)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """One simulated (router threshold, escalation cut) pair on a set of rows.

    Attributes:
        t_router: route to the cloud when router score >= this (inf = never).
        t_escalate: escalate a local answer when P(correct) < this (0 = never).
        quality: mean outcome (0..1); quality_vs_cloud: quality / all-cloud quality.
        cloud_share: share of requests that made a cloud call (routed or escalated).
        escalated_share: share of requests escalated after a local answer.
        cost_usd: total cost (USD) incl. checks and wasted local tokens.
    """

    t_router: float
    t_escalate: float
    quality: float
    quality_vs_cloud: float
    cloud_share: float
    escalated_share: float
    cost_usd: float


def simulate(router_score: np.ndarray | None, p_correct: np.ndarray | None, local_ok: np.ndarray,
             cloud_ok: np.ndarray, costs: Costs, t_router: float, t_escalate: float) -> OperatingPoint:
    """Quality and cost of one operating point (rules in the module docstring). Pass
    ``router_score=None`` for no pre-routing and ``p_correct=None`` for no cascade."""
    n = len(local_ok)
    to_cloud = np.zeros(n, bool) if router_score is None else router_score >= t_router
    local = ~to_cloud
    escalate = np.zeros(n, bool) if p_correct is None else local & (p_correct < t_escalate)
    keep = local & ~escalate
    quality = float(np.where(keep, local_ok, cloud_ok).mean())
    check = costs.check if p_correct is not None else np.zeros(n)
    cost = float(costs.cloud[to_cloud].sum() + (costs.local + check)[local].sum() + costs.cloud[escalate].sum())
    q_cloud = float(cloud_ok.mean()) or 1.0
    return OperatingPoint(t_router, t_escalate, quality, quality / q_cloud, float((to_cloud | escalate).mean()),
                          float(escalate.mean()), cost)


def grid(values: np.ndarray | None, n: int = 41) -> list[float]:
    """Candidate thresholds: ``n`` quantiles of ``values`` plus +inf/-inf ends (or [inf] when
    there are no values, i.e. the stage is off)."""
    if values is None:
        return [float("inf")]
    qs = np.unique(np.quantile(values, np.linspace(0, 1, n)))
    return [float("-inf"), *map(float, qs), float("inf")]


def best_point(router_score: np.ndarray | None, p_correct: np.ndarray | None, local_ok: np.ndarray,
               cloud_ok: np.ndarray, costs: Costs, target: float = 0.95, n: int = 41) -> OperatingPoint | None:
    """The cheapest operating point whose quality >= ``target`` x all-cloud quality, over a
    grid of router thresholds and escalation cuts; None when no point reaches it."""
    best = None
    routers = grid(router_score, n)
    cuts = [0.0] if p_correct is None else [0.0, *map(float, np.unique(np.quantile(p_correct, np.linspace(0, 1, n)))), 1.01]
    for t_r in routers:
        for t_e in cuts:
            point = simulate(router_score, p_correct, local_ok, cloud_ok, costs, t_r, t_e)
            if point.quality_vs_cloud >= target and (best is None or point.cost_usd < best.cost_usd):
                best = point
    return best


@dataclass(frozen=True, slots=True)
class JointCalibration:
    """Result of :func:`joint_calibration`.

    Attributes:
        point: the chosen operating point, measured with held-out (out-of-fold) P(correct).
        combiner: the combiner fitted on every row, ``min_p_correct`` set to the chosen cut.
        n: labelled rows used; recorded_share: share whose cloud outcome is a recorded one
            (the rest treat the cloud answer as correct).
        all_cloud_usd, all_local_quality: reference lines on the same rows.
    """

    point: OperatingPoint
    combiner: CombinerConfig
    n: int
    recorded_share: float
    all_cloud_usd: float
    all_local_quality: float


def joint_calibration(rows: Sequence[dict[str, Any]], router_score: np.ndarray, costs: Costs, target: float,
                      names: Sequence[str] = (*COMBINER_SIGNALS, "router_score"), trained_on: str | None = None,
                      seed: int = 0, verifier: np.ndarray | None = None) -> JointCalibration:
    """Choose the router threshold and the escalation cut together: the cheapest pair whose
    simulated quality >= ``target`` x all-cloud quality (module docstring), with the
    combiner's held-out P(correct); then fit the combiner on all rows.

    Args:
        rows: label rows; router_score: the policy classifier's score per row (higher =
            cloud); costs: :func:`row_costs` of the rows; target: e.g. 0.95.
        names: combiner inputs (signal names and ``router_score``).
        verifier: held-out verifier P(correct) per row, when ``names`` has ``verifier``.
    Raises:
        ValueError: no operating point reaches the target (even all-cloud fails only when
            the target is above 1), or the labels hold one class only.
    """
    y = np.array([int(bool(r["correct"])) for r in rows])
    X = signal_matrix(rows, names, router_score, verifier)
    strata = [r["task"] for r in rows]
    p_oof = oof_probabilities(X, y, strata=strata, seed=seed)
    local_ok, cloud_ok = y.astype(float), cloud_outcomes(rows)
    point = best_point(router_score, p_oof, local_ok, cloud_ok, costs, target)
    if point is None:
        raise ValueError(f"no router threshold and escalation cut reach {target:.0%} of cloud quality on these labels")
    combiner = fit_combiner(X, y, names, min_p_correct=min(max(point.t_escalate, 0.0), 1.0), trained_on=trained_on)
    recorded = float(np.mean([(r.get("recorded") or {}).get("correct") is not None for r in rows]))
    all_cloud = simulate(np.zeros(len(y)), None, local_ok, cloud_ok, costs, -np.inf, 0.0).cost_usd
    return JointCalibration(point, combiner, len(rows), recorded, all_cloud, float(local_ok.mean()))
