"""The report's learning section: what the log keeps for learning, the labels it holds,
and explicit feedback per tier (pure).

- kept: requests per ``log.keep_for_learning`` outcome: ``none`` (no inputs kept),
  ``embedding`` (the embedding vector and text features, no text) or ``text`` (also the
  scored text and the answers). Shadow samples keep both answers whatever this setting.
- labels: what ``slm-router learn`` uses, counted by its own :func:`~router.learning.labels.build_labels`
  (one label per ok, classifier-routed request, strongest source first): feedback on local
  answers, judged shadow samples, escalations, judged ``local_shadow`` samples of
  cloud-routed requests; ``without_embedding``: labelled requests whose log row kept no
  embedding (``learn`` cannot use them).
- feedback by tier: per answering tier, feedback count, the share that was good (thumbs up
  or score >= 0.5), the mean score of scored feedback, thumbs up / down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..learning.labels import SOURCES, build_labels
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
    shadows, feedback = list(shadows), list(feedback)
    usable = build_labels(records, shadows, feedback)  # exactly what `slm-router learn` reads
    labels = {**{source: usable.by_source.get(source, 0) for source in SOURCES},
              "without_embedding": usable.without_inputs}
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
