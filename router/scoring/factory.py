"""The scorer a policy's ``routing.classifier`` section describes.

One stage: an :class:`~router.scoring.classifier.EmbeddingClassifier` over ``artifact``
(embedder from the card, or ``embedder``), its embeddings cached in memory. Two stages
(``first_stage`` set): a :class:`~router.scoring.two_stage.TwoStageScorer` whose first stage
is the ``first_stage`` artifact and whose second is the one-stage scorer above.
"""

from __future__ import annotations

from typing import Any

from .classifier import EmbeddingClassifier
from .two_stage import TwoStageScorer

__all__ = ["scorer_for", "scorer_settings"]


def scorer_settings(cfg: Any) -> tuple:
    """The fields of a ``ClassifierConfig`` that change the scorer (two equal tuples: the
    loaded scorer can be kept across a policy reload)."""
    return (cfg.artifact, cfg.threads, cfg.precision, cfg.embedder, cfg.max_tokens, cfg.first_stage,
            cfg.first_stage_band, cfg.cache_size)


def scorer_for(cfg: Any) -> Any:
    """A lazily loaded scorer for a ``ClassifierConfig`` (nothing is read until first use)."""
    main = EmbeddingClassifier(cfg.artifact, threads=cfg.threads, precision=cfg.precision,
                               embedder_key=cfg.embedder, cache_size=cfg.cache_size, max_tokens=cfg.max_tokens)
    if cfg.first_stage is None:
        return main
    first = EmbeddingClassifier(cfg.first_stage, threads=cfg.threads, precision=cfg.precision)
    return TwoStageScorer(first, main, cfg.first_stage_band)

