"""The embedder registry: the short key an artifact card names (``embedder_key``) -> a
factory of that embedder (modules imported on use), and the family of vectors it computes.

A new embedder is one module in this folder plus its line in :data:`EMBEDDERS` and in
:data:`FAMILY` (and its description in :data:`router.scoring.embedders.EMBEDDER_IDS` for
cards that name it in full).
"""

from __future__ import annotations

from collections.abc import Callable

from .protocols import Embedder

__all__ = ["EMBEDDERS", "FAMILY", "new_embedder", "resolve_embedder"]


def _minilm(threads: int | None, precision: str, max_tokens: int | None, part_cache_size: int) -> Embedder:
    from .embedder import Embedder as MiniLM

    return MiniLM(threads=threads, precision=precision)


def _minilm_int8(threads: int | None, precision: str, max_tokens: int | None, part_cache_size: int) -> Embedder:
    from .onnx_embedder import DEFAULT_TOKENS, OnnxEmbedder

    n = max_tokens or DEFAULT_TOKENS
    return OnnxEmbedder(threads=threads or 1, max_tokens=n, head=None if n >= DEFAULT_TOKENS else (n - 2) // 2)


def _static(threads: int | None, precision: str, max_tokens: int | None, part_cache_size: int) -> Embedder:
    from .static_embedder import StaticEmbedder

    return StaticEmbedder(part_cache_size=part_cache_size)


EMBEDDERS: dict[str, Callable[[int | None, str, int | None, int], Embedder]] = {
    "minilm": _minilm, "minilm-int8": _minilm_int8, "static": _static,
}
"""Embedder key -> factory ``(threads, precision, max_tokens, part_cache_size) -> embedder``
(loaded lazily on first ``encode``)."""

FAMILY: dict[str, str] = {"minilm": "minilm", "minilm-int8": "minilm", "static": "static"}
"""Embedders whose vectors an artifact trained on one of them can read: the same MiniLM on
torch fp32 or ONNX Runtime int8 (cosine ~0.99, see ``bench/embedder_quality.py``)."""
assert FAMILY.keys() == EMBEDDERS.keys()


def new_embedder(key: str, threads: int | None = None, precision: str = "fp32",
                 max_tokens: int | None = None, part_cache_size: int = 0) -> Embedder:
    """A new embedder for ``key``. ``threads``: torch intra-op threads for ``minilm``
    (process-wide), ONNX Runtime intra-op threads for ``minilm-int8`` (default 1);
    ``precision`` (``fp32``, ``bf16``, ``auto``) applies to ``minilm`` only; ``max_tokens``:
    word pieces ``minilm-int8`` reads (default and most: the first 256, as ``minilm`` reads;
    fewer are taken half from each end of the text); ``part_cache_size``: entries of the static
    embedder's per-turn sums (:mod:`router.scoring.part_cache`; 0 = none; the others ignore it).

    Raises:
        ValueError: an unknown key.
    """
    if key not in EMBEDDERS:
        raise ValueError(f"unknown embedder {key!r}; expected one of {', '.join(EMBEDDERS)}")
    return EMBEDDERS[key](threads, precision, max_tokens, part_cache_size)


def resolve_embedder(card_key: str, wanted: str | None) -> str:
    """The embedder to run for an artifact trained on ``card_key`` when the policy asks for
    ``wanted``: ``wanted`` when it computes the same family of vectors, else ``card_key``
    (a static-embedder artifact always reads static vectors)."""
    if wanted is None or FAMILY.get(wanted) != FAMILY.get(card_key):
        return card_key
    return wanted
