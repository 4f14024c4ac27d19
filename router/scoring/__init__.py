"""Score stage: how likely a request needs the cloud tier.

``base.Scorer`` is the interface; :data:`SCORER_KINDS` names the factory of each
implementation (``routing.classifier.kind``, see :mod:`router.scoring.factory`):
``embedding`` (``classifier.EmbeddingClassifier``, the default: an embedding + a trained
artifact, or ``two_stage.TwoStageScorer`` over two of them when ``first_stage`` is set) and
``rules`` (``rules.RuleScorer``: keyword and structure weights, no model). A new signal is one
new module here, its factory and one line below.
"""

from __future__ import annotations

from typing import Any

from .base import Scorer

__all__ = ["Scorer", "SCORER_KINDS", "make_scorer", "scorer_settings"]

SCORER_KINDS = {
    "embedding": "router.scoring.factory:embedding_scorer",
    "rules": "router.scoring.factory:rule_scorer",
}
"""``routing.classifier.kind`` -> ``module:factory``, a function of the ``ClassifierConfig``
(imported on use, so loading this package imports no model code)."""


def make_scorer(config: Any) -> Scorer:
    """The scorer of a ``routing.classifier`` config (lazily loaded: nothing is read until first use).

    Raises:
        ValueError: an unknown kind.
    """
    from importlib import import_module

    if config.kind not in SCORER_KINDS:
        raise ValueError(f"unknown classifier kind {config.kind!r}; expected one of {', '.join(SCORER_KINDS)}")
    module, name = SCORER_KINDS[config.kind].split(":")
    return getattr(import_module(module), name)(config)


def scorer_settings(config: Any) -> tuple:
    """The fields of a ``ClassifierConfig`` that change the scorer :func:`make_scorer` builds
    (two equal tuples: the loaded scorer can be kept across a policy reload)."""
    return (config.kind, config.artifact, config.threads, config.precision, config.embedder, config.max_tokens,
            config.first_stage, config.first_stage_band, config.cache_size)
