"""What a request's log row keeps for learning, under ``log.keep_for_learning`` (pure).

``none``: nothing. ``embedding`` (the default): the request's embedding vector exactly as the
scorer computed it on the hot path (never embedded again), as float16 in base64 (768 bytes
for MiniLM's 384 dimensions, ~1 KB of JSON), the embedder's key and the text features the
scorer read (name -> value); no text. ``text``: also the scored text (the last turns the
classifier read), the answer the client got and, for an escalated request, the local
tier's answer (what verifier training needs).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["KEEP_MODES", "kept_inputs", "add_answers", "encode_vector", "decode_vector"]

KEEP_MODES = ("none", "embedding", "text")


def encode_vector(vector: Any) -> str:
    """A float vector as base64 of its little-endian float16 bytes."""
    return base64.b64encode(np.asarray(vector, dtype="<f2").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    """:func:`encode_vector`'s inverse, as float32 of shape (dim,).

    Raises:
        ValueError: not base64 of a whole number of float16 values.
    """
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % 2:
        raise ValueError("not a float16 vector")
    return np.frombuffer(raw, dtype="<f2").astype(np.float32)


def kept_inputs(mode: str, embedding: Any, features: Mapping[str, float] | None, embedder: str | None,
                text: str | None) -> dict[str, Any] | None:
    """The ``learning`` field of a request row.

    Args:
        mode: ``none``, ``embedding`` or ``text``.
        embedding: the vector the scorer computed (shape (dim,)), or None when it kept none.
        features: the text features it read (name -> value), or None.
        embedder: the embedder's key (``minilm-int8``, ``static``, ...).
        text: the text the scorer read (kept only with ``text``).

    Returns:
        None with ``none`` or without an embedding; else ``{"embedder", "embedding",
        "features"}`` (+ ``"text"`` with ``text``).

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in KEEP_MODES:
        raise ValueError(f"keep_for_learning must be one of {', '.join(KEEP_MODES)}, got {mode!r}")
    if mode == "none" or embedding is None:
        return None
    out: dict[str, Any] = {"embedder": embedder, "embedding": encode_vector(embedding),
                           "features": {k: round(float(v), 6) for k, v in (features or {}).items()}}
    if mode == "text" and text is not None:
        out["text"] = text
    return out


def add_answers(learning: dict[str, Any] | None, answer: str | None, local_answer: str | None) -> None:
    """Add the answers to a ``text`` row (in place): ``answer`` (what the client got) and
    ``local_answer`` (the local attempt of an escalated request). Rows without ``text`` are
    left alone."""
    if learning is None or "text" not in learning:
        return
    if answer is not None:
        learning["answer"] = answer
    if local_answer is not None:
        learning["local_answer"] = local_answer
