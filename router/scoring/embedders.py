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

from typing import Any

from .registry import EMBEDDERS, FAMILY, new_embedder, resolve_embedder

__all__ = ["EMBEDDER_IDS", "EMBEDDERS", "FAMILY", "make_embedder", "embedder_key", "resolve_embedder"]

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
