"""Labels of the user's own requests, read from the log (pure).

A label says whether the local tier's answer was enough for a request (``needs_cloud`` 0)
or the request needed the cloud tier (1). Sources, strongest first (one label per request):

1. explicit feedback (``POST /v1/feedback``) on an answer the local tier gave: good (thumbs
   up, score >= 0.5) -> 0, bad -> 1. Feedback on a cloud answer says nothing about the local
   tier and is not a label;
2. a shadow sample judged by ``shadow.judge_tier`` (kind ``shadow``): the judge said the
   local answer is as good as the cloud's -> 0, else 1; a sample the judge gave no verdict
   (unsure) is no label. Agreement by embedding similarity alone is not used: it estimates a
   rate, it does not judge single answers (``bench/shadow_agreement.py``);
3. an escalation (the local answer failed its check, the cloud answered): 1, unless the
   escalation sample of that request was judged, whose verdict is used;
4. a ``local_shadow`` sample of a request the classifier sent to the cloud
   (``shadow.cloud_rate``: the local tier answered it in the background, the judge compared
   that answer with the cloud's): as good -> 0, else 1. These are the only labels on the
   cloud side of the threshold.

Each label carries its weight ``1 / sample_p`` (the probability its request was sampled,
stored per sample; 1 for escalations and feedback), so estimates over labelled requests
can be made unbiased for all routed ones (Horvitz and Thompson 1952), as long as both sides
of the threshold were sampled (``shadow.rate`` and ``shadow.cloud_rate`` both above 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..store.records import FeedbackRecord, RequestRecord, ShadowRecord
from .keep import decode_vector

__all__ = ["Label", "LabelSet", "build_labels", "SOURCES"]

SOURCES = ("feedback", "shadow", "escalation", "local_shadow")


@dataclass(frozen=True, slots=True)
class Label:
    """One labelled request.

    Attributes:
        request_id, ts: the request and its arrival (Unix s).
        needs_cloud: 1 when the local answer was not enough, else 0.
        source: ``feedback``, ``shadow``, ``escalation`` or ``local_shadow`` (the only
            source on a cloud-routed request).
        weight: inverse sampling probability (>= 1).
        score: the active scorer's logged P(needs cloud).
        embedding: the kept embedding (float32, (dim,)); features: the kept text features.
        embedder: the key of the embedder that computed it.
    """

    request_id: str
    ts: float
    needs_cloud: int
    source: str
    weight: float
    score: float | None
    embedding: np.ndarray
    features: dict[str, float]
    embedder: str = "unknown"


@dataclass(frozen=True)
class LabelSet:
    """Labels in arrival order, and what could not be used.

    Attributes:
        labels: usable labels (a kept embedding), oldest first.
        by_source: usable labels per source.
        without_inputs: requests with a label but no kept embedding (``keep_for_learning:
            none``, or logged before it existed).
        embedders: embedder key -> labels read with it (learning uses the commonest).
    """

    labels: list[Label]
    by_source: dict[str, int]
    without_inputs: int
    embedders: dict[str, int]

    def arrays(self, feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(rows (n, dim + f), needs_cloud (n,), weights (n,), ts (n,))``: each row is the
        embedding then the features ``feature_names`` (0 for a feature the row lacks)."""
        if not self.labels:
            return np.zeros((0, 0), np.float32), np.zeros(0), np.zeros(0), np.zeros(0)
        rows = np.stack([np.concatenate([lb.embedding, np.array([lb.features.get(n, 0.0) for n in feature_names],
                                                                 dtype=np.float32)]) for lb in self.labels])
        return (rows.astype(np.float32), np.array([lb.needs_cloud for lb in self.labels], dtype=float),
                np.array([lb.weight for lb in self.labels]), np.array([lb.ts for lb in self.labels]))


def _verdict_labels(shadows: Iterable[ShadowRecord]) -> tuple[dict[str, tuple[int, float]], dict[str, int],
                                                               dict[str, tuple[int, float]]]:
    """(request id -> (needs_cloud, weight) from judged shadow samples, request id -> needs_cloud
    from judged escalation samples, request id -> (needs_cloud, weight) from judged
    ``local_shadow`` samples)."""
    shadow, escalation, local_shadow = {}, {}, {}
    for s in shadows:
        if s.status != "ok" or s.judge_verdict is None:
            continue
        p = s.sample_p if s.sample_p else 1.0
        if s.kind == "shadow":
            shadow[s.request_id] = (0 if s.judge_verdict else 1, 1.0 / max(p, 1e-6))
        elif s.kind == "escalation":
            escalation[s.request_id] = 0 if s.judge_verdict else 1
        elif s.kind == "local_shadow":
            local_shadow[s.request_id] = (0 if s.judge_verdict else 1, 1.0 / max(p, 1e-6))
    return shadow, escalation, local_shadow


def build_labels(records: Iterable[RequestRecord], shadows: Iterable[ShadowRecord] = (),
                 feedback: Iterable[FeedbackRecord] = ()) -> LabelSet:
    """Labels of the logged ``records`` (see the module docstring for the sources).

    Only ok requests routed by the classifier (``auto``, scored) can be labels; the last
    feedback on a request wins.
    """
    shadow, escalation, local_shadow = _verdict_labels(shadows)
    fb = {f.request_id: f for f in sorted(feedback, key=lambda f: f.ts)}
    labels, without, embedders = [], 0, {}
    by_source = {s: 0 for s in SOURCES}
    for r in sorted(records, key=lambda r: r.ts):
        if r.status != "ok" or r.score is None:
            continue
        found: tuple[int, str, float] | None = None
        f = fb.get(r.id)
        if f is not None and r.local and not r.escalated:
            found = (0 if f.good else 1, "feedback", 1.0)
        elif r.id in shadow and r.local:
            found = (shadow[r.id][0], "shadow", shadow[r.id][1])
        elif r.escalated:
            found = (escalation.get(r.id, 1), "escalation", 1.0)
        elif r.id in local_shadow and not r.local:
            found = (local_shadow[r.id][0], "local_shadow", local_shadow[r.id][1])
        if found is None:
            continue
        kept = r.learning or {}
        if "embedding" not in kept:
            without += 1
            continue
        key = kept.get("embedder") or "unknown"
        embedders[key] = embedders.get(key, 0) + 1
        labels.append(Label(r.id, r.ts, found[0], found[1], found[2], r.score, decode_vector(kept["embedding"]),
                            dict(kept.get("features") or {}), key))
        by_source[found[1]] += 1
    if len(embedders) > 1:  # rows embedded by another embedder (a first stage) live in another space
        main = max(embedders, key=embedders.get)
        labels = [lb for lb in labels if lb.embedder == main]
        by_source = {s: sum(lb.source == s for lb in labels) for s in SOURCES}
    return LabelSet(labels, by_source, without, embedders)
