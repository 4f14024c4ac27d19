"""One ``slm-router learn`` run: log -> labels -> candidate -> out-of-time test (:mod:`.gate`) -> artifact.

:func:`learn` is the whole run on records already read (the CLI reads the log and prints);
:func:`write_outputs` writes what a promoted candidate leaves in ``--out``: the artifact
(``artifact/model.joblib`` and ``card.json``, loadable as ``routing.classifier.artifact``) and
``candidate-policy.yaml`` (the active policy with that artifact and the threshold that keeps
the active policy's cloud share on the logged traffic). When the log kept answers
(``log.keep_for_learning: text``) a verifier is trained too (:mod:`.verifier`); a promoted one
is written to ``verifier/`` and the candidate policy's cascade checks it
(``escalation.verifier_artifact``, ``escalation.min.verifier``). ``learning.json`` (labels,
choice, comparison, learning curve, verifier, decision) is written whatever the decision.
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
from .candidate import Choice, fit_candidate, fit_probe, option_name
from .evaluate import Comparison, time_splits, weighted_apgr
from .gate import LossTest, gate
from .keep import decode_vector
from .labels import LabelSet, build_labels
from .verifier import VerifierResult, answer_texts, fit_verifier

__all__ = ["LearnResult", "learn", "write_outputs", "curve_sizes", "MIN_TEST", "WARMUP", "BLOCKS"]

MIN_TEST = 20
WARMUP = 0.3
"""The earliest share of the labels (by time) only trained on; the rest is tested on in ``BLOCKS``
rolling blocks (:mod:`.gate`)."""
BLOCKS = 4


@dataclass
class LearnResult:
    """What a run found. ``promote`` is True only when the promotion test (:mod:`.gate`) found
    the candidate better on later traffic; ``reason`` says why (not). ``loss_test``: that test
    (the direction probe's pooled out-of-time log loss against the recalibrated active router);
    ``loss_check``: the same on the inner CV's chosen candidates. ``curve``: (labels used, candidate APGR,
    active APGR) on the (last) test block. ``candidate`` is the candidate refitted on every label;
    ``model`` is it when promoted, else None. ``split_choices``: the inner CV's choice on each
    time split's training labels; ``choice``: on every label. ``cloud_side_labels``: test labels
    of cloud-routed requests (``local_shadow``); with none while the later traffic sent some
    to the cloud, nothing is promoted."""

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
    verifier: VerifierResult | None = None
    split_choices: list[Choice] = field(default_factory=list)
    candidate: Any = None
    cloud_side_labels: int = 0
    loss_test: LossTest | None = None
    loss_check: LossTest | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (``learning.json``)."""
        return {
            "promote": self.promote, "reason": self.reason,
            "labels": {"used": len(self.labels.labels), "by_source": self.labels.by_source,
                       "without_inputs": self.labels.without_inputs, "embedders": self.labels.embedders},
            "n_train": self.n_train, "n_test": self.n_test, "cloud_side_test_labels": self.cloud_side_labels,
            "choice": None if self.choice is None else asdict(self.choice),
            "split_choices": [asdict(c) for c in self.split_choices],
            "comparison": None if self.comparison is None else asdict(self.comparison),
            "loss_test": None if self.loss_test is None else asdict(self.loss_test),
            "loss_check": None if self.loss_check is None else asdict(self.loss_check),
            "curve": [{"labels": n, "apgr_candidate": c, "apgr_active": a} for n, c, a in self.curve],
            "threshold": self.threshold,
            "verifier": None if self.verifier is None else self.verifier.summary(),
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


def _answer_rows(policy: Policy, names: list[str]):
    """answers -> verifier input rows (n, dim + f): the prior artifact's embedder and text features."""
    from ..scoring.classifier import EmbeddingClassifier
    from ..scoring.routing_model import build_inputs

    scorer = EmbeddingClassifier(policy.routing.classifier.artifact, embedder_key=policy.routing.classifier.embedder)
    return lambda texts: build_inputs(np.asarray(scorer.embedder.encode(texts), dtype=np.float32), texts, names)


def _traffic(records: list[RequestRecord], policy: Policy, since_ts: float) -> tuple[float, float | None]:
    """(cloud share of the classifier-routed ok requests from ``since_ts`` on, mean counterfactual cloud cost)."""
    routed = [r for r in records if r.status == "ok" and r.score is not None and r.ts >= since_ts]
    share = sum(r.routed_tier == policy.routing.cloud_tier for r in routed) / len(routed) if routed else 0.0
    costs = [r.counterfactual_usd for r in records if r.status == "ok" and r.counterfactual_usd is not None]
    return share, (float(np.mean(costs)) if costs else None)


def learn(records: Iterable[RequestRecord], shadows: Iterable[ShadowRecord], feedback: Iterable[FeedbackRecord],
          policy: Policy, train_share: float = WARMUP, n_boot: int = 200, seed: int = 0, blocks: int = BLOCKS,
          rule: str = "log", verifier_share: float = 0.7) -> LearnResult:
    """Build labels, test the candidate procedure on later traffic and decide (see the module
    docstring and :mod:`.gate`): the labels after the earliest ``train_share`` (by time) are
    cut into ``blocks`` rolling time blocks (:func:`~.evaluate.time_splits`), each predicted by
    candidates fitted on every label before it; the pooled predictions are tested against the
    active router (``rule``: ``log`` or ``brier`` loss, one-sided at 5%) and compared by APGR.
    A candidate is promoted only when its test labels also cover both sides of the active
    threshold (``local_shadow`` labels on the cloud-routed requests, when any went to the
    cloud): a candidate re-ranks every request, and labels of the locally served ones alone
    cannot show how it orders the rest. The verifier (text kept) is trained on the earlier
    ``verifier_share`` and judged on the rest.

    Raises:
        ValueError: the log's embeddings do not fit the prior artifact (another dimension).
    """
    records = sorted(records, key=lambda r: r.ts)
    shadows = list(shadows)
    labels = build_labels(records, shadows, feedback)
    if not labels.labels:
        why = ("the log has labels but kept no embeddings (log.keep_for_learning: none, or written before it)"
               if labels.without_inputs else
               "no labelled requests: set shadow.rate with shadow.judge_tier, or send POST /v1/feedback")
        return LearnResult(labels, False, why)
    artifact, reads_features, names = _prior(policy)
    X, y, w, ts = labels.arrays(names)  # y: needs_cloud (0/1)
    target, gain = labels.targets(), labels.gains()  # what the candidate fits; what its test adds up
    dim = len(labels.labels[0].embedding)
    expected = artifact.card.get("embedding_dim")
    if expected and int(expected) != dim:
        raise ValueError(f"the log's embeddings have {dim} dimensions but the prior artifact reads {expected}")
    from ..scoring.prior_stack import PriorStackedModel

    prior_p = PriorStackedModel(artifact.estimator, reads_features, dim).prior_proba(X)
    active = np.array([lb.score for lb in labels.labels], dtype=float)
    splits = time_splits(ts, train_share, blocks)
    tr = splits[0][0]
    te = np.concatenate([b for _, b in splits]) if splits else np.zeros(0, dtype=int)
    result = LearnResult(labels, False, "", len(tr), len(te), feature_names=names)
    texts = answer_texts(records, labels.labels,
                         {s.request_id: s.local_text for s in shadows if s.kind == "local_shadow" and s.status == "ok"})
    if any(t is not None for t in texts):  # log.keep_for_learning: text kept the local answers
        result.verifier = fit_verifier(texts, y, w, ts, _answer_rows(policy, names), verifier_share, n_boot, seed)
    if len(te) < MIN_TEST or len(set(y[te].astype(int))) < 2:
        result.reason = f"too few labels to test on later traffic ({len(te)} in the test part, need {MIN_TEST} with both outcomes)"
        return result
    if len(set(y[tr].astype(int))) < 2:
        result.reason = "the earlier labels have one outcome only; nothing to learn yet"
        return result

    def fit(idx):
        return fit_candidate(X[idx], target[idx], w[idx], prior_p[idx], artifact.estimator, reads_features, dim,
                             seed=seed)

    def fit_predict(a, b):  # a block's candidate, fitted on every label before the block
        model, choice = fit(a)
        return model.predict_proba(X[b], prior_p[b])[:, 1], choice

    def probe(a, b):  # the direction probe: the same stack at the strongest shrinkage (gate.py, step 5)
        model = fit_probe(X[a], target[a], w[a], prior_p[a], artifact.estimator, reads_features, dim)
        return model.predict_proba(X[b], prior_p[b])[:, 1], None

    share, cost = _traffic(records, policy, float(ts[te].min()))
    g = gate(splits, fit_predict, active, target, gain, w, share, cost, rule=rule,
             learned=lambda c: c.blocks != "prior", n_boot=n_boot, seed=seed, probe=probe)
    result.split_choices, result.comparison = g.pooled.choices, g.comparison
    result.loss_test, result.loss_check = g.test, g.check
    comparison = g.comparison
    last_train, last = splits[-1]
    for n in curve_sizes(len(last_train)):
        part = last_train[:n]
        if len(set(y[part].astype(int))) < 2:
            continue
        m, _ = fit(part)
        result.curve.append((n, weighted_apgr(m.predict_proba(X[last], prior_p[last])[:, 1], gain[last], w[last]),
                             weighted_apgr(active[last], gain[last], w[last])))
    final, choice = fit(np.arange(len(y)))
    result.choice, result.candidate = choice, final
    d = comparison.apgr_diff
    where = f"on {len(te)} later requests" + (f" ({len(splits)} rolling time blocks, each predicted by a candidate "
                                              f"fitted on the labels before it)" if len(splits) > 1 else "")
    cloud_side = sum(labels.labels[i].source == "local_shadow" for i in te)
    result.cloud_side_labels = int(cloud_side)
    if share > 0 and cloud_side == 0:
        # no label checks how the candidate ranks the cloud-routed requests: its test saw one side only
        # (checked first: whatever the fit chose, this test could not have shown it)
        result.reason = (f"not promoted: the later labels cover only the locally served requests, while "
                         f"{share:.0%} of the later routed traffic went to the cloud tier unjudged, so how the "
                         f"candidate ranks those is checked by nothing (set shadow.cloud_rate with shadow.judge_tier); "
                         f"on the labelled requests: candidate APGR {comparison.apgr_candidate[0]:.3f} vs active "
                         f"{comparison.apgr_active[0]:.3f}, difference {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] {where}")
        return result
    if all(c.blocks == "prior" for c in result.split_choices) or choice.blocks == "prior":
        # a recalibrated prior ranks as the prior: nothing learned to promote (or to test)
        if choice.blocks == "prior":
            why = f"inner CV kept the prior alone ({choice.why})"
        else:
            sizes = f"{len(tr)}" if len(splits) == 1 else f"{len(tr)} to {len(splits[-1][0])}"
            why = (f"inner CV kept the prior alone on the {sizes} earlier labels of every test block "
                   f"({result.split_choices[0].why}), "
                   f"so nothing learned could be tested on later traffic; on all {len(y)} labels it chooses "
                   f"{option_name(choice.blocks, choice.C, choice.weight_power)}: more judged labels may show it")
        result.reason = (f"not promoted: {why}; candidate APGR {comparison.apgr_candidate[0]:.3f} vs active "
                         f"{comparison.apgr_active[0]:.3f} {where}")
        return result
    apgr = (f"APGR candidate {comparison.apgr_candidate[0]:.3f} vs active {comparison.apgr_active[0]:.3f}, "
            f"difference {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
    probe_line = g.test.describe("direction probe (C=1e-4)")
    chosen = f"the blocks' chosen candidates: mean {rule} loss gain {g.check.diff:+.4f} +- {g.check.se:.4f}"
    if not g.promote:
        why = (f"nothing to learn shown on later traffic: {probe_line}" if not g.test.better else
               f"{probe_line}, but the strength the inner CV chose is not better: {chosen}")
        result.reason = (f"not promoted: {why}; {apgr} {where} (inner CV on every label chose "
                         f"{option_name(choice.blocks, choice.C, choice.weight_power)}: {choice.why})")
        return result
    result.model = final
    result.promote = True
    result.reason = f"promoted: {probe_line}; {chosen}; {apgr} {where}"
    everything = _rows(records, names, max(labels.embedders, key=labels.embedders.get))
    scores = final.predict_proba(everything)[:, 1] if len(everything) else g.pooled.candidate
    result.threshold = float(np.quantile(scores, 1.0 - share)) if share > 0 else float(min(1.0, scores.max() + 1e-6))
    result.score_quantiles = {f"{q:.1f}": round(float(np.quantile(scores, 1.0 - q)), 4) for q in np.arange(0.1, 1.0, 0.1)}
    return result


def write_outputs(result: LearnResult, out: Path, policy: Policy, policy_path: Path | None) -> list[Path]:
    """Write ``learning.json`` and, when the router or the verifier was promoted, its artifact
    (``artifact/``, ``verifier/``) and ``candidate-policy.yaml``; returns the paths written."""
    import yaml

    from ..scoring.artifact import load_artifact, save_artifact

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "learning.json"]
    (out / "learning.json").write_text(json.dumps(result.summary(), indent=2, default=float) + "\n")
    verifier = result.verifier if result.verifier is not None and result.verifier.promote else None
    if not result.promote and verifier is None:
        return written
    prior = load_artifact(policy.routing.classifier.artifact).card
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    inputs = {"embedder": prior.get("embedder"), "embedder_key": prior.get("embedder_key"),
              "embedding_dim": prior.get("embedding_dim"), "inputs": ["embedding", "text_features"],
              "text_features": result.feature_names}
    base: dict[str, Any] = {}
    if policy_path is not None:
        base = yaml.safe_load(Path(policy_path).read_text()) or {}
    if result.promote:
        card = {
            "name": "learned", "created": created,
            "model": {"kind": "prior_stack", "estimator": repr(result.model), "prior": policy.routing.classifier.artifact,
                      "choice": asdict(result.choice) if result.choice else None},
            **inputs,
            "score_quantiles": {**result.score_quantiles, "meaning": "threshold giving this cloud share on the logged traffic"},
            "learning": result.summary(),
            "output": "P(needs the cloud tier) on the user's labels: the prior's logit stacked with the embedding and text "
                      "features (router/scoring/prior_stack.py)",
        }
        art = save_artifact(out / "artifact", result.model, card)
        written.append(art)
        classifier = base.setdefault("routing", {}).setdefault("classifier", {})
        classifier.pop("target_cloud_share", None)
        classifier["artifact"] = str(art.resolve())
        classifier["threshold"] = round(float(result.threshold), 4)
    if verifier is not None:
        card = {"name": "learned-verifier", "created": created, "label": "weak_wrong",
                "model": {"kind": "verifier", "estimator": repr(verifier.model), "C": verifier.C}, **inputs,
                "learning": verifier.summary(),
                "output": "P(the local answer is wrong) from the answer's text (router/learning/verifier.py); the "
                          "cascade's verifier signal is 1 - this"}
        art = save_artifact(out / "verifier", verifier.model, card)
        written.append(art)
        escalation = base.setdefault("escalation", {})
        if not policy.escalation.enabled:  # the cascade was off: turn it on with the verifier as its check
            escalation["enabled"], escalation["min_mean_logprob"] = True, -100.0
        escalation["verifier_artifact"] = str(art.resolve())
        escalation.setdefault("min", {})["verifier"] = verifier.cut
    (out / "candidate-policy.yaml").write_text(
        "# written by slm-router learn: the active policy with the learned artifact and/or verifier\n"
        + yaml.safe_dump(base, sort_keys=False))
    written.append(out / "candidate-policy.yaml")
    return written
