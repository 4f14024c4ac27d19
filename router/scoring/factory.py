"""The scorers a policy's ``routing.classifier`` section describes, one factory per
``kind`` (registered in :data:`router.scoring.SCORER_KINDS`).

``embedding``, one stage: an :class:`~router.scoring.classifier.EmbeddingClassifier` over
``artifact`` (its card's embedder, or ``embedder`` when that computes the same vectors), its
embeddings cached in memory. Two stages (``first_stage`` set): a
:class:`~router.scoring.two_stage.TwoStageScorer` whose first stage is the ``first_stage``
artifact and whose second is the one-stage scorer above.

``rules``: :class:`~router.scoring.rules.RuleScorer` (no artifact, no embedding).
"""

from __future__ import annotations

from typing import Any

from .base import Scorer

__all__ = ["embedding_scorer", "rule_scorer"]


def embedding_scorer(cfg: Any) -> Scorer:
    """The ``embedding`` scorer of a ``ClassifierConfig`` (one or two stages)."""
    from .classifier import EmbeddingClassifier

    main = EmbeddingClassifier(cfg.artifact, threads=cfg.threads, precision=cfg.precision,
                               embedder_key=cfg.embedder, cache_size=cfg.cache_size, max_tokens=cfg.max_tokens,
                               part_cache_size=cfg.turn_cache_size)
    if cfg.first_stage is None:
        return main
    from .two_stage import TwoStageScorer

    first = EmbeddingClassifier(cfg.first_stage, threads=cfg.threads, precision=cfg.precision)
    return TwoStageScorer(first, main, cfg.first_stage_band)


def rule_scorer(cfg: Any) -> Scorer:
    """The ``rules`` scorer (the config's artifact is unused)."""
    from .rules import RuleScorer

    return RuleScorer()
