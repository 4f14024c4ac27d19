"""Cap on the share of checked local answers that escalate (``escalation.max_share`` over
``escalation.share_window_s``).

:func:`cap_allows` is the pure decision, from counts. :class:`EscalationShare` keeps the
counts at the edge, in the shared state (:mod:`router.state`: process memory, or Redis so
that every replica counts the same traffic): time buckets of a tenth of the window, each a
pair of counters (``checked``, ``escalated``) that expire after the window, summed over the
last ten buckets. The window therefore slides in steps of a tenth and covers between 90%
and 100% of ``share_window_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..state.base import SharedState, StateUnavailable

__all__ = ["cap_allows", "EscalationShare", "BUCKETS"]

log = logging.getLogger(__name__)

BUCKETS = 10
"""Buckets per window."""


def cap_allows(checked: int, escalated: int, max_share: float) -> bool:
    """True when one more escalation keeps the escalated share within ``max_share``.

    Args:
        checked: checked local answers in the window before this one (>= 0).
        escalated: how many of them escalated (<= checked).
        max_share: the cap in [0, 1]; 1 never binds, 0 never allows.

    Counting this answer: allowed when ``(escalated + 1) / (checked + 1) <= max_share``. An
    empty window with ``max_share < 1`` therefore keeps its first failing answer: the cap
    binds from the first request, it does not wait for a sample.
    """
    if max_share >= 1.0:
        return True
    return escalated + 1 <= max_share * (checked + 1) + 1e-9


class EscalationShare:
    """Window counters of checked and escalated local answers in a :class:`SharedState`.

    Args:
        state: where the counters live (keys ``escshare:<window>:<kind>:<bucket>``).
        window_s: the window (seconds, > 0).
        clock: Unix time source (tests).
    """

    def __init__(self, state: SharedState, window_s: float, clock: Callable[[], float] = time.time) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.state = state
        self.window_s = float(window_s)
        self.width = self.window_s / BUCKETS
        self._clock = clock

    def _keys(self, kind: str, now: float) -> list[str]:
        current = int(now // self.width)
        return [f"escshare:{self.window_s:g}:{kind}:{b}" for b in range(current - BUCKETS + 1, current + 1)]

    async def counts(self) -> tuple[int, int] | None:
        """(checked, escalated) over the window, or None when the state cannot be reached."""
        now = self._clock()
        try:
            values = await self.state.counters(self._keys("checked", now) + self._keys("escalated", now))
        except StateUnavailable as err:
            log.warning("escalation share unknown: %s", err)
            return None
        return sum(values[:BUCKETS]), sum(values[BUCKETS:])

    async def note(self, escalated: bool) -> None:
        """Count one checked answer (and its escalation). Never raises for an unreachable state."""
        now = self._clock()
        ttl = self.window_s + self.width
        keys = self._keys("checked", now)[-1:] + (self._keys("escalated", now)[-1:] if escalated else [])
        try:
            await self.state.adjust(keys, 1, [ttl] * len(keys))
        except StateUnavailable as err:
            log.warning("escalation share not counted: %s", err)
