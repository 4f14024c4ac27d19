"""A bounded in-memory cache of embeddings keyed by the SHA-256 of each text.

:class:`CachedEmbedder` wraps any embedder with ``encode(texts) -> (n, dim)``: texts seen
recently are not embedded again (a retried request, the same prompt from many callers, the
same text scored by the router and then by the semantic cache or a shadow sample). The
least recently used entry is dropped when ``max_items`` are held: 384 float32 = 1.5 KB
each, so the default 4,096 entries hold about 6 MB.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["CachedEmbedder", "text_key"]


def text_key(text: str) -> bytes:
    """The cache key of a text: its UTF-8 SHA-256 digest (32 bytes)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class CachedEmbedder:
    """``inner`` with an LRU cache of at most ``max_items`` embeddings; thread-safe.

    ``encode(texts)`` returns what ``inner.encode`` returns (float32, shape (n, dim)) and
    calls ``inner.encode`` once, with only the texts not cached (duplicates embedded once).
    ``hits`` and ``misses`` count texts since creation; ``inner`` is the wrapped embedder
    (one of :data:`router.scoring.registry.EMBEDDERS`, which all give their ``dimension``).

    Raises:
        ValueError: ``max_items`` < 1.
    """

    def __init__(self, inner: Any, max_items: int = 4096) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.inner = inner
        self.max_items = max_items
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def dimension(self) -> int:
        """The inner embedder's dimensions."""
        return int(self.inner.dimension)

    def __len__(self) -> int:
        return len(self._items)

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Embeddings of ``texts``, shape (len(texts), dim), from the cache where present."""
        keys = [text_key(t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for k in keys:
                v = self._items.get(k)
                if v is not None:
                    self._items.move_to_end(k)
                    found[k] = v
        todo = {k: t for k, t in zip(keys, texts) if k not in found}
        if todo:
            vectors = np.asarray(self.inner.encode(list(todo.values()), show_progress_bar=show_progress_bar),
                                 dtype=np.float32)
            new = dict(zip(todo, vectors))
            found.update(new)
            with self._lock:
                for k, v in new.items():
                    self._items[k] = v
                    self._items.move_to_end(k)
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
        with self._lock:
            self.misses += len(todo)
            self.hits += len(keys) - len(todo)
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([found[k] for k in keys])
