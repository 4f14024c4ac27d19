"""Shared state in process memory: the embedded default (``store: sqlite``).

Right for one process; with several workers or replicas each keeps its own caches, budgets
and rate limits, so use ``store: redis`` there. Everything is lost at restart. Operations
are atomic because they never await while holding state (one event loop).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..guards.ratelimit import gcra
from .base import HOLD_TTL_S, NO_LIMIT, SETTLED_TTL_S, RateVerdict

__all__ = ["MemoryState"]


_HOLD = "hold:"
_SETTLED = b"settled"


class MemoryState:
    """In-process :class:`~router.state.base.SharedState`. Never raises ``StateUnavailable``."""

    backend = "memory"

    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._values: dict[str, tuple[bytes, float]] = {}
        self._scopes: dict[str, tuple[dict[str, bytes], float]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._tats: dict[str, float] = {}
        self._writes = 0

    def _live(self, table: dict, key: str):
        item = table.get(key)
        if item is None:
            return None
        if item[-1] <= self._clock():
            del table[key]
            return None
        return item

    async def get(self, key: str) -> bytes | None:
        item = self._live(self._values, key)
        return item[0] if item else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._values[key] = (value, self._clock() + ttl_s)
        self._writes += 1
        if self._writes % 1024 == 0:
            self._sweep()

    def _sweep(self) -> None:
        """Drop expired entries (reads drop them lazily; this bounds what is never read again)."""
        now = self._clock()
        for table in (self._values, self._scopes, self._counters):
            for key in [k for k, item in table.items() if item[-1] <= now]:
                del table[key]
        for key in [k for k, tat in self._tats.items() if tat <= now]:
            del self._tats[key]

    async def vectors(self, scope: str) -> list[tuple[str, bytes]]:
        item = self._live(self._scopes, scope)
        return list(item[0].items()) if item else []

    async def add_vector(self, scope: str, entry: str, vector: bytes, ttl_s: float, max_entries: int) -> None:
        item = self._live(self._scopes, scope)
        entries = item[0] if item else {}
        entries[entry] = vector
        for old in sorted(entries)[: max(0, len(entries) - max_entries)]:
            del entries[old]
        self._scopes[scope] = (entries, self._clock() + ttl_s)

    def _counter(self, key: str) -> int:
        item = self._live(self._counters, key)
        return item[0] if item else 0

    async def reserve(self, keys: Sequence[str], limits: Sequence[int], amount: int,
                      ttls_s: Sequence[float], hold: str | None = None) -> tuple[bool, list[int]]:
        before = [self._counter(k) for k in keys]
        if any(limit != NO_LIMIT and value + amount > limit for value, limit in zip(before, limits)):
            return False, before
        await self.adjust(keys, amount, ttls_s)
        if hold is not None:
            await self.set(_HOLD + hold, str(int(amount)).encode(), HOLD_TTL_S)
        return True, before

    async def settle(self, keys: Sequence[str], hold: str, amount: int, ttls_s: Sequence[float]) -> None:
        held = self._live(self._values, _HOLD + hold)
        if held is not None and held[0] == _SETTLED:
            return
        await self.set(_HOLD + hold, _SETTLED, SETTLED_TTL_S)
        await self.adjust(keys, int(amount) - (int(held[0]) if held is not None else 0), ttls_s)

    async def adjust(self, keys: Sequence[str], delta: int, ttls_s: Sequence[float]) -> None:
        now = self._clock()
        for key, ttl in zip(keys, ttls_s):
            item = self._live(self._counters, key)
            self._counters[key] = ((item[0] if item else 0) + delta, item[1] if item else now + ttl)

    async def counters(self, keys: Sequence[str]) -> list[int]:
        return [self._counter(k) for k in keys]

    async def rate(self, key: str, interval_s: float, burst: int) -> RateVerdict:
        verdict, tat = gcra(self._tats.get(key), self._clock(), interval_s, burst)
        self._tats[key] = tat
        self._writes += 1
        if self._writes % 1024 == 0:
            self._sweep()
        return verdict

    async def probe(self) -> None:
        """Nothing to reach: process memory is always there."""

    def health(self) -> dict[str, Any]:
        return {"backend": self.backend, "ok": True}

    async def close(self) -> None:
        return None
