"""A bounded LRU cache of per-part token-vector sums, for exact multi-turn reuse.

The static embedder pools a text as the mean of its word pieces' integer (int8) vectors,
and MiniLM's (BERT's) tokenizer cuts a text at whitespace before it cuts words into pieces,
so the pieces of ``a + "\\n\\n" + b`` are those of ``a`` followed by those of ``b``. The
sum of the vectors and the number of pieces of each part therefore combine into the whole
text's mean exactly: integer sums, one division (``tests/test_part_cache.py`` checks the
scores bit for bit against the uncached path on real conversations). A conversation's
earlier turns are parts of its previous request's text (:data:`PART_SEPARATOR` joins
turns, :func:`router.request.features.extract_features`), so a multi-turn decision embeds
only its new turn.

An entry is the part's SHA-256 (32 bytes), a (dim,) int32 sum (256 dims: 1 KB) and two counts:
about 1.2 KB, so the default 4,096 entries hold about 5 MB.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .embedding_cache import text_key

__all__ = ["PartSums", "PART_SEPARATOR"]

PART_SEPARATOR = "\n\n"
"""Where a text is cut into cached parts (a blank line: between turns, and between paragraphs)."""


class PartSums:
    """LRU map: part text -> (sum of its word pieces' vectors, int32 (dim,); piece count; raw
    piece count with the unknown token, as
    :meth:`router.scoring.static_embedder.StaticEmbedder._part_sum` gives them).

    ``get``/``put`` are thread-safe; ``hits`` and ``misses`` count ``get`` calls.

    Raises:
        ValueError: ``max_items`` < 1.
    """

    def __init__(self, max_items: int = 4096) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self._items: OrderedDict[bytes, tuple[np.ndarray, int, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, part: str) -> tuple[bytes, tuple[np.ndarray, int, int] | None]:
        """(the part's key, its cached (sum, count, raw count) or None)."""
        key = text_key(part)
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._items.move_to_end(key)
        return key, found

    def put(self, key: bytes, value: tuple[np.ndarray, int, int]) -> None:
        """Remember ``value`` under ``key`` (from :meth:`get`), dropping the least recently used."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
