"""The embedders a classifier artifact can name, by short key.

- ``minilm``: all-MiniLM-L6-v2 through sentence-transformers on torch (384-d, ~38 ms for a
  200-token prompt on 2 cores);
- ``static``: a static (bag-of-token-vectors) embedding distilled from that same MiniLM with
  model2vec (Tulkens & van Dongen, 2024): each vocabulary token's MiniLM output, reduced by
  PCA and weighted by token frequency; shipped in ``router/artifacts/static-minilm``
  (well under 1 ms per prompt).

An artifact's card records the key under ``embedder_key`` (cards without it used ``minilm``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["EMBEDDER_IDS", "make_embedder", "embedder_key"]

EMBEDDER_IDS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "static": "model2vec static embedding distilled from sentence-transformers/all-MiniLM-L6-v2",
}


def embedder_key(card: dict[str, Any]) -> str:
    """The short embedder key of an artifact card (``minilm`` when the card predates keys)."""
    key = card.get("embedder_key")
    if key:
        return str(key)
    for k, ident in EMBEDDER_IDS.items():
        if card.get("embedder") == ident:
            return k
    return "minilm"


def make_embedder(key: str, threads: int | None = None, precision: str = "fp32") -> Any:
    """A new embedder for ``key`` (loaded lazily on first ``encode``); ``threads`` and
    ``precision`` (``fp32``, ``bf16``, ``auto``) apply to the MiniLM one
    (:class:`router.scoring.embedder.Embedder`).

    Raises:
        ValueError: an unknown key.
    """
    if key == "minilm":
        from .embedder import Embedder

        return Embedder(threads=threads, precision=precision)
    if key == "static":
        from .static_embedder import StaticEmbedder

        return StaticEmbedder()
    raise ValueError(f"unknown embedder {key!r}; expected one of {', '.join(EMBEDDER_IDS)}")
