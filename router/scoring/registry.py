"""The embedder registry: the short key an artifact card names (``embedder_key``) -> a
factory of that embedder (modules imported on use).

A new embedder is one module in this folder plus its line in :data:`EMBEDDERS` (and its
description in :data:`router.scoring.embedders.EMBEDDER_IDS` for cards that name it in full).
"""

from __future__ import annotations

from collections.abc import Callable

from .protocols import Embedder

__all__ = ["EMBEDDERS", "new_embedder"]


def _minilm(threads: int | None, precision: str) -> Embedder:
    from .embedder import Embedder as MiniLM

    return MiniLM(threads=threads, precision=precision)


def _static(threads: int | None, precision: str) -> Embedder:
    from .static_embedder import StaticEmbedder

    return StaticEmbedder()


EMBEDDERS: dict[str, Callable[[int | None, str], Embedder]] = {"minilm": _minilm, "static": _static}
"""Embedder key -> factory ``(threads, precision) -> embedder`` (loaded lazily on first ``encode``)."""


def new_embedder(key: str, threads: int | None = None, precision: str = "fp32") -> Embedder:
    """A new embedder for ``key``; ``threads`` and ``precision`` (``fp32``, ``bf16``, ``auto``)
    apply to the MiniLM one.

    Raises:
        ValueError: an unknown key.
    """
    if key not in EMBEDDERS:
        raise ValueError(f"unknown embedder {key!r}; expected one of {', '.join(EMBEDDERS)}")
    return EMBEDDERS[key](threads, precision)
