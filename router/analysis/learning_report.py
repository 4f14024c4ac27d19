"""The report's learning section: what the log keeps for learning, the labels it holds,
and explicit feedback per tier (pure).

- kept: requests per ``log.keep_for_learning`` outcome: ``none`` (no inputs kept),
  ``embedding`` (the embedding vector and text features, no text) or ``text`` (also the
  scored text and the answers). Shadow samples keep both answers whatever this setting.
- labels: what ``slm-router learn`` can use: judged shadow samples, escalations, feedback,
  judged ``local_shadow`` samples of cloud-routed requests.
- feedback by tier: per answering tier, feedback count, the share that was good (thumbs up
  or score >= 0.5), the mean score of scored feedback, thumbs up / down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..store.records import FeedbackRecord, RequestRecord, ShadowRecord

__all__ = ["FeedbackRow", "LearningSection", "learning_section", "FEEDBACK_HEADER", "feedback_rows"]

FEEDBACK_HEADER = ["tier", "feedback", "good", "mean score", "thumbs up", "thumbs down"]


@dataclass(frozen=True)
class FeedbackRow:
    """Feedback on the requests one tier answered."""

    tier: str
    n: int
    good: int
    mean_score: float | None
    up: int
    down: int


@dataclass(frozen=True)
class LearningSection:
    """kept: requests per kept mode; labels: usable label counts per source (judged shadow
    samples of locally served requests, escalations, feedback on local answers, judged
    ``local_shadow`` samples of cloud-routed requests); feedback:
    per tier; curve: an optional learning curve (``learning.json``'s ``curve`` or a bench's
    per-strategy curves: name -> [(labels, APGR)])."""

    kept: dict[str, int]
    labels: dict[str, int]
    feedback: list[FeedbackRow]
    curves: dict[str, list[tuple[int, float]]]


def _kept(record: RequestRecord) -> str:
    kept = record.learning or {}
    if "embedding" not in kept:
        return "none"
    return "text" if "text" in kept else "embedding"


def learning_section(records: Iterable[RequestRecord], shadows: Iterable[ShadowRecord] = (),
                     feedback: Iterable[FeedbackRecord] = (),
                     curves: dict[str, list[tuple[int, float]]] | None = None) -> LearningSection:
    """Summarise the learning inputs of a window of the log."""
    records = list(records)
    by_id = {r.id: r for r in records}
    kept = {"none": 0, "embedding": 0, "text": 0}
    for r in records:
        kept[_kept(r)] += 1
    judged = {s.request_id for s in shadows if s.kind == "shadow" and s.status == "ok" and s.judge_verdict is not None
              and s.request_id in by_id and by_id[s.request_id].local}
    feedback = list(feedback)
    on_local = {f.request_id for f in feedback if f.request_id in by_id and by_id[f.request_id].local}
    cloud_judged = {s.request_id for s in shadows if s.kind == "local_shadow" and s.status == "ok"
                    and s.judge_verdict is not None and s.request_id in by_id and not by_id[s.request_id].local}
    labels = {"shadow": len(judged - on_local), "local_shadow": len(cloud_judged),
              "escalation": sum(r.status == "ok" and r.escalated for r in records),
              "feedback": len(on_local)}
    groups: dict[str, list[FeedbackRecord]] = defaultdict(list)
    for f in feedback:
        r = by_id.get(f.request_id)
        if r is not None:
            groups[r.tier or "(none)"].append(f)
    rows = []
    for tier, items in sorted(groups.items()):
        scores = [f.score for f in items if f.score is not None]
        rows.append(FeedbackRow(tier, len(items), sum(f.good for f in items),
                                sum(scores) / len(scores) if scores else None,
                                sum(f.thumbs == "up" for f in items), sum(f.thumbs == "down" for f in items)))
    return LearningSection(kept, labels, rows, dict(curves or {}))


def feedback_rows(section: LearningSection) -> list[list[str]]:
    """Table rows under :data:`FEEDBACK_HEADER`."""
    return [[r.tier, str(r.n), f"{r.good} ({100 * r.good / r.n:.0f}%)",
             "-" if r.mean_score is None else f"{r.mean_score:.2f}", str(r.up), str(r.down)] for r in section.feedback]
