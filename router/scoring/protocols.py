"""The scoring contracts the pipeline relies on, checked with ``isinstance`` (never
``getattr`` probes): an :class:`Embedder` turns texts into vectors; an
:class:`EmbeddingScorer` is a :class:`~router.scoring.base.Scorer` built on one, with its
artifact (card: ``score_quantiles``, ``embedder_key``) and a warm-up.

The semantic cache and the shadow sampler reuse an :class:`EmbeddingScorer`'s embedder, the
verifier shares it when the cards agree, and ``target_cloud_share`` reads its card.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Embedder", "EmbeddingScorer"]


@runtime_checkable
class Embedder(Protocol):
    """Texts -> an ``(n, dim)`` float array of unit-length embeddings (blocking)."""

    def encode(self, texts: Sequence[str]) -> Any:
        ...


@runtime_checkable
class EmbeddingScorer(Protocol):
    """A scorer on embeddings: ``score`` plus its ``embedder``, its ``artifact`` (``card``
    dict, ``path``) and ``warm_up`` (load both now)."""

    @property
    def embedder(self) -> Embedder:
        ...

    @property
    def artifact(self) -> Any:
        ...

    def score(self, texts: Sequence[str]) -> list[float]:
        ...

    def warm_up(self) -> None:
        ...
