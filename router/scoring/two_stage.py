"""Two-stage scoring: a cheap scorer first, the transformer only near the threshold.

A request whose first-stage score is at least ``band`` away from its threshold is decided
by that score; one within the band is scored again by the second stage, whose score
decides. Both stages are classifier artifacts giving P(needs cloud) on the same calibrated
scale (Platt mapping, balanced classes), so a score from either stage means the same.
``bench/embedder_quality.py`` measures, for each band, the share of requests that reach
the second stage and the APGR kept; the policy's default band comes from that table.

:class:`StagedScore` carries the stage that decided, which the request's reason names.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .classifier import EmbeddingClassifier

__all__ = ["StagedScore", "ThresholdScorer", "InputKeeper", "TwoStageScorer", "score_near"]


@dataclass(frozen=True, slots=True)
class StagedScore:
    """A score in [0, 1] and the stage that gave it (``None``: a single-stage scorer).

    When the scorer was asked to keep its inputs (``log.keep_for_learning``), ``embedding``
    is the vector it scored (shape (dim,), float32), ``features`` the text features it read
    (name -> value) and ``embedder`` the embedder's key; None otherwise.
    """

    score: float
    stage: str | None = None
    embedding: Any = field(default=None, compare=False, repr=False)
    features: dict[str, float] | None = field(default=None, compare=False, repr=False)
    embedder: str | None = None

    def note(self) -> str:
        """The reason fragment naming the deciding stage (empty for a single stage)."""
        return f"decided by the {self.stage} stage" if self.stage else ""


@runtime_checkable
class ThresholdScorer(Protocol):
    """A scorer that may spend less on texts whose score is far from their threshold."""

    def score_near(self, items: Sequence[tuple[str, float]]) -> list[StagedScore]:
        """One :class:`StagedScore` per (text, threshold), in order."""
        ...


@runtime_checkable
class InputKeeper(Protocol):
    """A scorer that can also return the inputs it scored (the embedding and text features),
    so the log keeps them without embedding the text a second time."""

    def score_kept(self, texts: Sequence[str]) -> list[StagedScore]:
        """One :class:`StagedScore` per text with ``embedding``, ``features`` and ``embedder`` set."""
        ...


class TwoStageScorer:
    """``first`` for every text; ``second`` for texts whose first score is within ``band``
    of their threshold.

    Args:
        first, second: :class:`~router.scoring.classifier.EmbeddingClassifier` stages.
        band: half-width of the uncertain band, in score units (0 = first stage only,
            1 = second stage always).
        names: stage names shown in reasons (first, second); None: each stage's embedder key
            (its ``embedder_name``, e.g. ``static``, ``minilm-int8``).

    ``score(texts)`` (no threshold known) returns the second stage's scores; ``embedder``
    and ``artifact`` are the second stage's (the embedder is shared with the semantic cache,
    shadow sampling and the verifier; the card gives ``target_cloud_share`` its quantiles), so
    it is an :class:`~router.scoring.protocols.EmbeddingScorer` like a single stage.

    Raises:
        ValueError: ``band`` outside [0, 1].
    """

    def __init__(self, first: "EmbeddingClassifier", second: "EmbeddingClassifier", band: float,
                 names: tuple[str, str] | None = None) -> None:
        if not 0.0 <= band <= 1.0:
            raise ValueError(f"band must be in [0, 1], got {band}")
        self.first, self.second, self.band, self.names = first, second, band, names

    @property
    def embedder(self) -> Any:
        """The second stage's embedder."""
        return self.second.embedder

    @property
    def artifact(self) -> Any:
        """The second stage's artifact (its card's score quantiles set ``target_cloud_share``)."""
        return self.second.artifact

    def warm_up(self) -> None:
        """Load both stages now."""
        self.first.warm_up()
        self.second.warm_up()

    def score(self, texts: Sequence[str]) -> list[float]:
        """The second stage's P(needs cloud) per text."""
        return self.second.score(texts)

    def score_near(self, items: Sequence[tuple[str, float]], keep: bool = False) -> list[StagedScore]:
        """Scores for (text, threshold) pairs: the second stage runs once, on the uncertain ones.
        With ``keep``, each score carries the inputs of the stage that decided."""
        if not items:
            return []
        texts = [t for t, _ in items]
        names = self.names or (self.first.embedder_name, self.second.embedder_name)
        if keep:
            out = [StagedScore(k.score, names[0], k.embedding, k.features, k.embedder)
                   for k in self.first.score_kept(texts)]
        else:
            out = [StagedScore(s, names[0]) for s in self.first.score(texts)]
        near = [i for i, ((_, thr), s) in enumerate(zip(items, out)) if abs(s.score - thr) < self.band]
        if near:
            chosen = [texts[i] for i in near]
            if keep:
                for i, k in zip(near, self.second.score_kept(chosen)):
                    out[i] = StagedScore(k.score, names[1], k.embedding, k.features, k.embedder)
            else:
                for i, s in zip(near, self.second.score(chosen)):
                    out[i] = StagedScore(s, names[1])
        return out


def score_near(scorer: Any, items: Sequence[tuple[str, float]], keep: bool = False) -> list[StagedScore]:
    """Scores of (text, threshold) pairs from any scorer: staged when it is a
    :class:`ThresholdScorer`, else its plain ``score`` (stage None). With ``keep``, a scorer
    that is an :class:`InputKeeper` also returns the inputs it scored."""
    if isinstance(scorer, TwoStageScorer):
        return scorer.score_near(items, keep)
    threshold_scorer, input_keeper = _abilities(type(scorer))
    if threshold_scorer:
        return scorer.score_near(items)
    if keep and input_keeper:
        return scorer.score_kept([t for t, _ in items])
    return [StagedScore(s) for s in scorer.score([t for t, _ in items])]


@functools.lru_cache(maxsize=64)
def _abilities(kind: type) -> tuple[bool, bool]:
    """Whether scorers of class ``kind`` are :class:`ThresholdScorer` and :class:`InputKeeper`
    (both are method Protocols, so the class decides; a runtime Protocol ``isinstance`` costs
    about 0.1 ms, and it ran on every decision)."""
    return callable(getattr(kind, "score_near", None)), callable(getattr(kind, "score_kept", None))
