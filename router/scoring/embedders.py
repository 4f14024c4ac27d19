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
Training takes the same keys (``slm-router train --embedder minilm-int8``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["EMBEDDER_IDS", "EMBEDDERS", "FAMILY", "make_embedder", "embedder_key", "resolve_embedder"]

EMBEDDER_IDS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "minilm-int8": "sentence-transformers/all-MiniLM-L6-v2, ONNX int8 dynamic quantisation (router/artifacts/minilm-int8)",
    "static": "model2vec static embedding distilled from sentence-transformers/all-MiniLM-L6-v2",
}


def _minilm(threads: int | None, precision: str, max_tokens: int | None) -> Any:
    from .embedder import Embedder

    return Embedder(threads=threads, precision=precision)


def _minilm_int8(threads: int | None, precision: str, max_tokens: int | None) -> Any:
    from .onnx_embedder import DEFAULT_TOKENS, OnnxEmbedder

    n = max_tokens or DEFAULT_TOKENS
    return OnnxEmbedder(threads=threads or 1, max_tokens=n, head=None if n >= DEFAULT_TOKENS else (n - 2) // 2)


def _static(threads: int | None, precision: str, max_tokens: int | None) -> Any:
    from .static_embedder import StaticEmbedder

    return StaticEmbedder()


EMBEDDERS: dict[str, Callable[[int | None, str, int | None], Any]] = {
    "minilm": _minilm, "minilm-int8": _minilm_int8, "static": _static,
}
assert EMBEDDERS.keys() == EMBEDDER_IDS.keys()


FAMILY = {"minilm": "minilm", "minilm-int8": "minilm", "static": "static"}
"""Embedders whose vectors an artifact trained on one of them can read: the same MiniLM on
torch fp32 or ONNX Runtime int8 (cosine ~0.99, see ``bench/embedder_quality.py``)."""
assert FAMILY.keys() == EMBEDDER_IDS.keys()


def resolve_embedder(card_key: str, wanted: str | None) -> str:
    """The embedder to run for an artifact trained on ``card_key`` when the policy asks for
    ``wanted``: ``wanted`` when it computes the same family of vectors, else ``card_key``
    (a static-embedder artifact always reads static vectors)."""
    if wanted is None or FAMILY.get(wanted) != FAMILY.get(card_key):
        return card_key
    return wanted


def embedder_key(card: dict[str, Any]) -> str:
    """The short embedder key of an artifact card (``minilm`` when the card predates keys)."""
    key = card.get("embedder_key")
    if key:
        return str(key)
    for k, ident in EMBEDDER_IDS.items():
        if card.get("embedder") == ident:
            return k
    return "minilm"


def make_embedder(key: str, threads: int | None = None, precision: str = "fp32", max_tokens: int | None = None) -> Any:
    """A new embedder for ``key`` (loaded lazily on first ``encode``). ``threads``: torch
    intra-op threads for ``minilm`` (process-wide), ORT intra-op threads for ``minilm-int8``
    (default 1); ``precision`` (``fp32``, ``bf16``, ``auto``) applies to ``minilm`` only;
    ``max_tokens``: word pieces ``minilm-int8`` reads (default and most: the first 256, as
    ``minilm`` reads; fewer are taken half from each end of the text).

    Raises:
        ValueError: an unknown key.
    """
    factory = EMBEDDERS.get(key)
    if factory is None:
        raise ValueError(f"unknown embedder {key!r}; expected one of {', '.join(EMBEDDER_IDS)}")
    return factory(threads, precision, max_tokens)
