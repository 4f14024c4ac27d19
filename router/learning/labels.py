"""Labels of the user's own requests, read from the log (pure).

A label says whether the local tier's answer was enough for a request (``needs_cloud`` 0)
or the request needed the cloud tier (1). Sources, strongest first (one label per request):

1. explicit feedback (``POST /v1/feedback``) on an answer the local tier gave: good (thumbs
   up, score >= 0.5) -> 0, bad -> 1. Feedback on a cloud answer says nothing about the local
   tier and is not a label;
2. a shadow sample judged by ``shadow.judge_tier`` (kind ``shadow``): the judge said the
   local answer is at least as good as the cloud's -> 0, else 1; a sample the judge gave no
   verdict (unsure) is no label. Agreement by embedding similarity alone is not used: it estimates a
   rate, it does not judge single answers (``bench/shadow_agreement.py``);
3. an escalation (the local answer failed its check, the cloud answered): 1, unless the
   escalation sample of that request was judged, whose verdict is used;
4. a ``local_shadow`` sample of a request the classifier sent to the cloud
   (``shadow.cloud_rate``: the local tier answered it in the background, the judge compared
   that answer with the cloud's): as good -> 0, else 1. These are the only labels on the
   cloud side of the threshold.

Besides ``needs_cloud`` each label has a ``gain``: what sending the request to the cloud tier
gains over the local answer, +1 (the local answer was worse), 0 (as good) or -1 (the local
answer was better). A judge's three-way verdict (``judge_outcome``) gives all three; a binary
verdict (logs written before the three-way verdict, a YES/NO judge), feedback and escalations
give ``needs_cloud`` only (gain 1 or 0, ``three_way`` False). :meth:`LabelSet.targets` is what
the candidate is fitted to: ``needs_cloud`` when no label is three-way (the binary labels of
old logs, as before), else ``(1 + gain) / 2`` (1, 0.5, 0; a binary "as good" counts as 0.5),
whose expectation ``(1 + E[gain | x]) / 2`` ranks requests as APGR on the outcomes rewards:
by the expected quality the cloud tier adds, which a local answer better than the cloud's
lowers (the binary label counts it as merely "as good").

Each label carries its weight ``1 / sample_p`` (the probability its request was sampled,
stored per sample; 1 for escalations and feedback), so estimates over labelled requests
can be made unbiased for all routed ones (Horvitz and Thompson 1952), as long as both sides
of the threshold were sampled (``shadow.rate`` and ``shadow.cloud_rate`` both above 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..ledger.judge import OUTCOMES, outcome_gain
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
        gain: what the cloud tier gains over the local answer: +1, 0 or -1 (-1 only from a
            three-way verdict: the local answer was better).
        three_way: the label came from a three-way verdict (``better`` / ``same`` / ``worse``).
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
    gain: int | None = None
    three_way: bool = False

    @property
    def cloud_gain(self) -> int:
        """``gain``, or ``needs_cloud`` for a label built without one."""
        return self.needs_cloud if self.gain is None else self.gain


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

    @property
    def three_way(self) -> bool:
        """Some label came from a three-way verdict."""
        return any(lb.three_way for lb in self.labels)

    def gains(self) -> np.ndarray:
        """``(n,)`` floats: each label's :attr:`Label.cloud_gain` (+1, 0, -1), what APGR on labels adds up."""
        return np.array([lb.cloud_gain for lb in self.labels], dtype=float)

    def targets(self) -> np.ndarray:
        """``(n,)`` floats in [0, 1]: the fit's target (see the module docstring): ``needs_cloud``
        when no label is three-way, else ``(1 + gain) / 2``."""
        if not self.three_way:
            return np.array([lb.needs_cloud for lb in self.labels], dtype=float)
        return (1.0 + self.gains()) / 2.0


def _verdict(s: ShadowRecord) -> tuple[int, int, bool]:
    """(needs_cloud, gain, three_way) of a judged sample: its three-way verdict when it has
    one, else its binary verdict."""
    if s.judge_outcome in OUTCOMES:
        gain = outcome_gain(s.judge_outcome)
        return int(gain > 0), gain, True
    needs = 0 if s.judge_verdict else 1
    return needs, needs, False


def _verdict_labels(shadows: Iterable[ShadowRecord]) -> tuple[dict[str, tuple], dict[str, tuple], dict[str, tuple]]:
    """(request id -> (needs_cloud, weight, gain, three_way) from judged shadow samples, the same
    from judged escalation samples (weight 1), and from judged ``local_shadow`` samples)."""
    shadow, escalation, local_shadow = {}, {}, {}
    for s in shadows:
        if s.status != "ok" or s.judge_verdict is None:
            continue
        p = s.sample_p if s.sample_p else 1.0
        needs, gain, three = _verdict(s)
        if s.kind == "shadow":
            shadow[s.request_id] = (needs, 1.0 / max(p, 1e-6), gain, three)
        elif s.kind == "escalation":
            escalation[s.request_id] = (needs, 1.0, gain, three)
        elif s.kind == "local_shadow":
            local_shadow[s.request_id] = (needs, 1.0 / max(p, 1e-6), gain, three)
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
        found: tuple[str, tuple] | None = None  # (source, (needs_cloud, weight, gain, three_way))
        f = fb.get(r.id)
        if f is not None and r.local and not r.escalated:
            found = ("feedback", (0 if f.good else 1, 1.0, 0 if f.good else 1, False))
        elif r.id in shadow and r.local:
            found = ("shadow", shadow[r.id])
        elif r.escalated:
            found = ("escalation", escalation.get(r.id, (1, 1.0, 1, False)))
        elif r.id in local_shadow and not r.local:
            found = ("local_shadow", local_shadow[r.id])
        if found is None:
            continue
        source, (needs, weight, gain, three) = found
        kept = r.learning or {}
        if "embedding" not in kept:
            without += 1
            continue
        key = kept.get("embedder") or "unknown"
        embedders[key] = embedders.get(key, 0) + 1
        labels.append(Label(r.id, r.ts, needs, source, weight, r.score, decode_vector(kept["embedding"]),
                            dict(kept.get("features") or {}), key, gain, three))
        by_source[source] += 1
    if len(embedders) > 1:  # rows embedded by another embedder (a first stage) live in another space
        main = max(embedders, key=embedders.get)
        labels = [lb for lb in labels if lb.embedder == main]
        by_source = {s: sum(lb.source == s for lb in labels) for s in SOURCES}
    return LabelSet(labels, by_source, without, embedders)
