"""The shared-state interface: the few atomic operations that caches, budgets and rate
limits need. Two implementations: :mod:`.memory` (one process) and :mod:`.redis` (shared by
replicas). Callers never know which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["SharedState", "StateUnavailable", "RateVerdict", "NO_LIMIT", "HOLD_TTL_S", "SETTLED_TTL_S"]

NO_LIMIT = -1
"""A limit that never binds (budget counters)."""


class StateUnavailable(Exception):
    """The shared state cannot be reached now (Redis down or timed out). Callers degrade:
    the cache pauses, budgets and rate limits follow their ``on_store_down`` choice."""


HOLD_TTL_S = 86_400.0
"""How long a reservation's amount stays known under its hold id (s): a call settles within
its timeout, an owed settlement within an outage of up to a day."""

SETTLED_TTL_S = 3_600.0
"""How long a settled hold id is remembered (s), against a retry of the same settlement."""


@dataclass(frozen=True, slots=True)
class RateVerdict:
    """Outcome of one rate-limit check: ``allowed``, and ``retry_after_s`` (seconds) when not."""

    allowed: bool
    retry_after_s: float = 0.0


class SharedState(Protocol):
    """Atomic operations on shared state. Every method raises :class:`StateUnavailable` when
    the backing store cannot be reached; none raises anything else for I/O trouble.

    Keys are plain strings chosen by the callers (``cache:...``, ``budget:...``); the
    implementation may prefix them.
    """

    backend: str
    """``memory`` or ``redis``."""

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` at ``key`` for ``ttl_s`` seconds."""
        ...

    async def vectors(self, scope: str) -> list[tuple[str, bytes]]:
        """Every (entry id, vector bytes) stored in ``scope`` by :meth:`add_vector`."""
        ...

    async def add_vector(self, scope: str, entry: str, vector: bytes, ttl_s: float, max_entries: int) -> None:
        """Add an entry to ``scope``; entries sort by id and the oldest beyond
        ``max_entries`` are dropped; the scope expires ``ttl_s`` after its last write."""
        ...

    async def reserve(self, keys: Sequence[str], limits: Sequence[int], amount: int,
                      ttls_s: Sequence[float], hold: str | None = None) -> tuple[bool, list[int]]:
        """Atomically add ``amount`` to every counter in ``keys`` if none would then exceed
        its limit (``NO_LIMIT`` never binds); nothing is added otherwise. With ``hold`` (a
        unique id), the amount added is remembered under it (for :data:`HOLD_TTL_S`) so that
        :meth:`settle` can replace it exactly once.

        Returns:
            (reserved, the counters' values before the call). Counters are integers (the
            budget module counts nano-USD); each expires ``ttls_s[i]`` after creation.
        """
        ...

    async def settle(self, keys: Sequence[str], hold: str, amount: int, ttls_s: Sequence[float]) -> None:
        """Replace what :meth:`reserve` added under ``hold`` (0 when that reservation never
        reached the store) by ``amount`` on every counter in ``keys``, once: settling the same
        ``hold`` again within :data:`SETTLED_TTL_S` changes nothing. So a settlement retried
        after a lost reply, or a reservation whose reply was lost (charged by the store, seen
        as failed here), is not charged twice."""
        ...

    async def adjust(self, keys: Sequence[str], delta: int, ttls_s: Sequence[float]) -> None:
        """Add ``delta`` (may be negative) to every counter in ``keys``."""
        ...

    async def counters(self, keys: Sequence[str]) -> list[int]:
        """Current values of counters (0 when absent)."""
        ...

    async def rate(self, key: str, interval_s: float, burst: int) -> RateVerdict:
        """One GCRA admission check (see :func:`router.guards.ratelimit.gcra`) on ``key``."""
        ...

    def health(self) -> dict[str, Any]:
        """``{"backend", "ok", "error"?}``: whether the last operations reached the store."""
        ...

    async def probe(self) -> None:
        """Reach the store now (Redis: one PING) so that :meth:`health` is current even when
        no request has touched it; never raises (a failure is what ``health`` then shows)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
