"""Score stage: how likely a request needs the cloud tier.

``base.Scorer`` is the interface; :data:`SCORER_KINDS` names the implementations
(``routing.classifier.kind``): ``embedding`` (``classifier.EmbeddingClassifier``, the default:
an embedding + a trained artifact) and ``rules`` (``rules.RuleScorer``: keyword and
structure weights, no model). A new signal is one new module here and one line below.
"""

from __future__ import annotations

from typing import Any

from .base import Scorer

__all__ = ["Scorer", "SCORER_KINDS", "make_scorer"]

SCORER_KINDS = {
    "embedding": "router.scoring.classifier:EmbeddingClassifier",
    "rules": "router.scoring.rules:RuleScorer",
}


def make_scorer(config: Any) -> Scorer:
    """The scorer of a ``routing.classifier`` config (``kind``, ``artifact``, ``threads``, ``precision``).

    Raises:
        ValueError: an unknown kind.
    """
    from importlib import import_module

    kind = getattr(config, "kind", "embedding")
    if kind not in SCORER_KINDS:
        raise ValueError(f"unknown classifier kind {kind!r}; expected one of {', '.join(SCORER_KINDS)}")
    module, name = SCORER_KINDS[kind].split(":")
    cls = getattr(import_module(module), name)
    if kind == "rules":
        return cls()
    return cls(config.artifact, threads=config.threads, precision=config.precision)
