"""The embedders a classifier artifact can name, by short key.

- ``minilm``: all-MiniLM-L6-v2 through sentence-transformers on torch (384-d, ~38 ms for a
  200-token prompt on 2 cores);
- ``minilm-int8``: the same MiniLM exported to ONNX and quantised to int8 (dynamic), run by
  ONNX Runtime on one intra-op thread, no torch (``router/artifacts/minilm-int8``, 23 MB),
  reading the first 256 word pieces as ``minilm`` does (or fewer, half from each end:
  ``max_tokens``): embeddings at cosine 0.994 (median) of ``minilm``, several times faster
  (``bench/decision.py``);
- ``static``: a static (bag-of-token-vectors) embedding distilled from that same MiniLM with
  model2vec (Tulkens & van Dongen, 2024): each vocabulary token's MiniLM output, reduced by
  PCA and weighted by token frequency; shipped in ``router/artifacts/static-minilm``
  (well under 1 ms per prompt).

An artifact's card records the key under ``embedder_key`` (cards without it used ``minilm``).
Training takes the same keys (``slm-router train --embedder minilm-int8``). The factories are
the registry's (:data:`router.scoring.registry.EMBEDDERS`); this module names them in full
and reads a card's key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .registry import EMBEDDERS, FAMILY, new_embedder, resolve_embedder

__all__ = ["EMBEDDER_IDS", "EMBEDDERS", "FAMILY", "make_embedder", "embedder_key", "resolve_embedder",
           "similarity_embedder"]

EMBEDDER_IDS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "minilm-int8": "sentence-transformers/all-MiniLM-L6-v2, ONNX int8 dynamic quantisation (router/artifacts/minilm-int8)",
    "static": "model2vec static embedding distilled from sentence-transformers/all-MiniLM-L6-v2",
}
assert EMBEDDER_IDS.keys() == EMBEDDERS.keys()

make_embedder = new_embedder
"""A new embedder for a key (:func:`router.scoring.registry.new_embedder`)."""


def embedder_key(card: dict[str, Any]) -> str:
    """The short embedder key of an artifact card (``minilm`` when the card predates keys)."""
    key = card.get("embedder_key")
    if key:
        return str(key)
    for k, ident in EMBEDDER_IDS.items():
        if card.get("embedder") == ident:
            return k
    return "minilm"


def similarity_embedder(scorer: Any) -> Any | None:
    """The embedder that compares texts for the semantic cache and shadow agreement, chosen on
    first ``encode`` (so building a router reads no artifact): the scorer's own when it
    computes MiniLM vectors (one model in memory), else a new ``minilm-int8`` one; None when the
    scorer has no embedder (``rules``).

    Why not the default scorer's static embedder: its cosines do not separate near-duplicates
    from different asks ("What is the capital of France?" vs "... of Germany?": 0.91 static,
    0.63 MiniLM int8), and the semantic cache's ``min_similarity`` (0.95) was set on MiniLM."""
    from .protocols import EmbeddingScorer

    return _SimilarityEmbedder(scorer) if isinstance(scorer, EmbeddingScorer) else None


class _SimilarityEmbedder:
    """See :func:`similarity_embedder`; ``encode(texts) -> (n, 384)`` unit vectors."""

    def __init__(self, scorer: Any) -> None:
        self._scorer, self._inner = scorer, None

    @property
    def inner(self) -> Any:
        """The embedder used (resolved on first access)."""
        if self._inner is None:
            same = FAMILY.get(embedder_key(self._scorer.artifact.card)) == "minilm"
            self._inner = self._scorer.embedder if same else new_embedder("minilm-int8")
        return self._inner

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> Any:
        return self.inner.encode(texts)
