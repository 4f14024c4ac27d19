"""One ``slm-router learn`` run: log -> labels -> candidate -> time-split evaluation -> artifact.

:func:`learn` is the whole run on records already read (the CLI reads the log and prints);
:func:`write_outputs` writes what a promoted candidate leaves in ``--out``: the artifact
(``artifact/model.joblib`` and ``card.json``, loadable as ``routing.classifier.artifact``) and
``candidate-policy.yaml`` (the active policy with that artifact and the threshold that keeps
the active policy's cloud share on the logged traffic). ``learning.json`` (labels, choice,
comparison, learning curve, decision) is written whatever the decision.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..policy import Policy
from ..store.records import FeedbackRecord, RequestRecord, ShadowRecord
from .candidate import Choice, fit_candidate
from .evaluate import Comparison, compare, time_split, weighted_apgr
from .keep import decode_vector
from .labels import LabelSet, build_labels

__all__ = ["LearnResult", "learn", "write_outputs", "curve_sizes", "MIN_TEST"]

MIN_TEST = 20


@dataclass
class LearnResult:
    """What a run found. ``promote`` is True only when the candidate beat the active router
    beyond its interval; ``reason`` says why (not). ``curve``: (labels used, candidate APGR,
    active APGR) on the test part. ``model`` is the candidate refitted on every label."""

    labels: LabelSet
    promote: bool
    reason: str
    n_train: int = 0
    n_test: int = 0
    choice: Choice | None = None
    comparison: Comparison | None = None
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    model: Any = None
    threshold: float | None = None
    score_quantiles: dict[str, float] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (``learning.json``)."""
        return {
            "promote": self.promote, "reason": self.reason,
            "labels": {"used": len(self.labels.labels), "by_source": self.labels.by_source,
                       "without_inputs": self.labels.without_inputs, "embedders": self.labels.embedders},
            "n_train": self.n_train, "n_test": self.n_test,
            "choice": None if self.choice is None else asdict(self.choice),
            "comparison": None if self.comparison is None else asdict(self.comparison),
            "curve": [{"labels": n, "apgr_candidate": c, "apgr_active": a} for n, c, a in self.curve],
            "threshold": self.threshold,
        }


def curve_sizes(n_train: int) -> list[int]:
    """Label counts of the learning curve: 25, 50, 100, ... below ``n_train``, then ``n_train``."""
    sizes, n = [], 25
    while n < n_train:
        sizes.append(n)
        n *= 2
    return sizes + [n_train]


def _prior(policy: Policy):
    from ..scoring.artifact import load_artifact
    from ..scoring.card import ArtifactCard
    from ..scoring.text_features import EXTRA_FEATURE_NAMES, FEATURE_NAMES

    artifact = load_artifact(policy.routing.classifier.artifact)
    card = ArtifactCard.read(artifact.card)
    names = list(artifact.card.get("text_features") or (FEATURE_NAMES + EXTRA_FEATURE_NAMES))
    return artifact, card.needs_text_features, names


def _rows(records: Iterable[RequestRecord], names: list[str], embedder: str | None) -> np.ndarray:
    """Input rows of every logged request that kept its embedding (with ``embedder``)."""
    out = []
    for r in records:
        kept = r.learning or {}
        if "embedding" in kept and (embedder is None or (kept.get("embedder") or "unknown") == embedder):
            f = kept.get("features") or {}
            out.append(np.concatenate([decode_vector(kept["embedding"]),
                                       np.array([f.get(n, 0.0) for n in names], dtype=np.float32)]))
    return np.stack(out) if out else np.zeros((0, 0), np.float32)


def _traffic(records: list[RequestRecord], policy: Policy, since_ts: float) -> tuple[float, float | None]:
    """(cloud share of the classifier-routed ok requests from ``since_ts`` on, mean counterfactual cloud cost)."""
    routed = [r for r in records if r.status == "ok" and r.score is not None and r.ts >= since_ts]
    share = sum(r.routed_tier == policy.routing.cloud_tier for r in routed) / len(routed) if routed else 0.0
    costs = [r.counterfactual_usd for r in records if r.status == "ok" and r.counterfactual_usd is not None]
    return share, (float(np.mean(costs)) if costs else None)


def learn(records: Iterable[RequestRecord], shadows: Iterable[ShadowRecord], feedback: Iterable[FeedbackRecord],
          policy: Policy, train_share: float = 0.7, n_boot: int = 200, seed: int = 0) -> LearnResult:
    """Build labels, fit the candidate on the earlier ``train_share`` of them (by time), compare
    it with the active router on the later rest, and decide (see the module docstring).

    Raises:
        ValueError: the log's embeddings do not fit the prior artifact (another dimension).
    """
    records = sorted(records, key=lambda r: r.ts)
    labels = build_labels(records, shadows, feedback)
    if not labels.labels:
        why = ("the log has labels but kept no embeddings (log.keep_for_learning: none, or written before it)"
               if labels.without_inputs else
               "no labelled requests: set shadow.rate with shadow.judge_tier, or send POST /v1/feedback")
        return LearnResult(labels, False, why)
    artifact, reads_features, names = _prior(policy)
    X, y, w, ts = labels.arrays(names)
    dim = len(labels.labels[0].embedding)
    expected = artifact.card.get("embedding_dim")
    if expected and int(expected) != dim:
        raise ValueError(f"the log's embeddings have {dim} dimensions but the prior artifact reads {expected}")
    from ..scoring.prior_stack import PriorStackedModel

    prior_p = PriorStackedModel(artifact.estimator, reads_features, dim).prior_proba(X)
    active = np.array([lb.score for lb in labels.labels], dtype=float)
    tr, te = time_split(ts, train_share)
    result = LearnResult(labels, False, "", len(tr), len(te), feature_names=names)
    if len(te) < MIN_TEST or len(set(y[te].astype(int))) < 2:
        result.reason = f"too few labels to test on later traffic ({len(te)} in the test part, need {MIN_TEST} with both outcomes)"
        return result
    if len(set(y[tr].astype(int))) < 2:
        result.reason = "the earlier labels have one outcome only; nothing to learn yet"
        return result
    model, choice = fit_candidate(X[tr], y[tr], w[tr], prior_p[tr], artifact.estimator, reads_features, dim, seed=seed)
    result.choice = choice
    cand = model.predict_proba(X[te], prior_p[te])[:, 1]
    share, cost = _traffic(records, policy, float(ts[te].min()))
    result.comparison = comparison = compare(cand, active[te], y[te], w[te], share, cost, n_boot, seed)
    for n in curve_sizes(len(tr)):
        part = tr[:n]
        if len(set(y[part].astype(int))) < 2:
            continue
        m, _ = fit_candidate(X[part], y[part], w[part], prior_p[part], artifact.estimator, reads_features, dim, seed=seed)
        result.curve.append((n, weighted_apgr(m.predict_proba(X[te], prior_p[te])[:, 1], y[te], w[te]),
                             comparison.apgr_active[0]))
    d = comparison.apgr_diff
    if choice.blocks == "prior":  # a recalibrated prior ranks as the prior: nothing learned to promote
        result.reason = (f"not promoted: inner CV kept the prior alone ({choice.why}); candidate APGR "
                         f"{comparison.apgr_candidate[0]:.3f} vs active {comparison.apgr_active[0]:.3f} on {len(te)} "
                         "later requests")
        return result
    if not comparison.better:
        kept = "the prior alone (recalibrated)" if choice.blocks == "prior" else f"C={choice.C:g}"
        result.reason = (f"not promoted: candidate APGR {comparison.apgr_candidate[0]:.3f} vs active "
                         f"{comparison.apgr_active[0]:.3f}; the difference {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] "
                         f"does not exclude 0 on {len(te)} later requests (inner CV chose {kept}: {choice.why})")
        return result
    final, _ = fit_candidate(X, y, w, prior_p, artifact.estimator, reads_features, dim, seed=seed)
    result.model = final
    result.promote = True
    result.reason = (f"promoted: candidate APGR {comparison.apgr_candidate[0]:.3f} vs active "
                     f"{comparison.apgr_active[0]:.3f}, difference {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] on "
                     f"{len(te)} later requests")
    everything = _rows(records, names, max(labels.embedders, key=labels.embedders.get))
    scores = final.predict_proba(everything)[:, 1] if len(everything) else cand
    result.threshold = float(np.quantile(scores, 1.0 - share)) if share > 0 else float(min(1.0, scores.max() + 1e-6))
    result.score_quantiles = {f"{q:.1f}": round(float(np.quantile(scores, 1.0 - q)), 4) for q in np.arange(0.1, 1.0, 0.1)}
    return result


def write_outputs(result: LearnResult, out: Path, policy: Policy, policy_path: Path | None) -> list[Path]:
    """Write ``learning.json`` and, when promoted, the artifact and ``candidate-policy.yaml``;
    returns the paths written."""
    import yaml

    from ..scoring.artifact import load_artifact, save_artifact

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "learning.json"]
    (out / "learning.json").write_text(json.dumps(result.summary(), indent=2, default=float) + "\n")
    if not result.promote:
        return written
    prior = load_artifact(policy.routing.classifier.artifact).card
    card = {
        "name": "learned", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"kind": "prior_stack", "estimator": repr(result.model), "prior": policy.routing.classifier.artifact,
                  "choice": asdict(result.choice) if result.choice else None},
        "embedder": prior.get("embedder"), "embedder_key": prior.get("embedder_key"),
        "embedding_dim": prior.get("embedding_dim"), "inputs": ["embedding", "text_features"],
        "text_features": result.feature_names,
        "score_quantiles": {**result.score_quantiles, "meaning": "threshold giving this cloud share on the logged traffic"},
        "learning": result.summary(),
        "output": "P(needs the cloud tier) on the user's labels: the prior's logit stacked with the embedding and text "
                  "features (router/scoring/prior_stack.py)",
    }
    art = save_artifact(out / "artifact", result.model, card)
    written.append(art)
    base: dict[str, Any] = {}
    if policy_path is not None:
        base = yaml.safe_load(Path(policy_path).read_text()) or {}
    classifier = base.setdefault("routing", {}).setdefault("classifier", {})
    classifier.pop("target_cloud_share", None)
    classifier["artifact"] = str(art.resolve())
    classifier["threshold"] = round(float(result.threshold), 4)
    (out / "candidate-policy.yaml").write_text(
        "# written by slm-router learn: the active policy with the learned artifact\n" + yaml.safe_dump(base, sort_keys=False))
    written.append(out / "candidate-policy.yaml")
    return written
