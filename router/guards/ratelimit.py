"""Per-tenant request-rate limits with the generic cell rate algorithm (GCRA).

GCRA (ITU-T I.371; the "virtual scheduling" form) keeps one number per tenant, the
theoretical arrival time ``tat``. With emission interval ``T = 60 / requests_per_minute``
seconds and tolerance ``tau = (burst - 1) * T``, a request at ``now`` is admitted when
``max(tat, now) - now <= tau`` and then moves ``tat`` to ``max(tat, now) + T``: bursts of
``burst`` requests, then a steady ``requests_per_minute``. :func:`gcra` is the pure rule;
the Redis backend runs the same rule in a Lua script on the server's clock so replicas
agree.
"""

from __future__ import annotations

import logging

from ..errors import RateLimitError, StoreUnavailableError
from ..policy import RateLimitsConfig
from ..state.base import RateVerdict, SharedState, StateUnavailable

__all__ = ["gcra", "limit_for", "RateLimiter"]

log = logging.getLogger(__name__)


def gcra(tat: float | None, now: float, interval_s: float, burst: int) -> tuple[RateVerdict, float]:
    """One GCRA step.

    Args:
        tat: stored theoretical arrival time (Unix s), None for a new tenant.
        now: current time (Unix s).
        interval_s: seconds between requests at the steady rate (``T``).
        burst: requests admitted at once (>= 1).

    Returns:
        (verdict, the ``tat`` to store). A refused request leaves ``tat`` unchanged and its
        verdict says how many seconds until one more would be admitted.
    """
    start = now if tat is None else max(tat, now)
    tolerance = (burst - 1) * interval_s
    if start - now > tolerance:
        return RateVerdict(False, start - now - tolerance), start
    return RateVerdict(True), start + interval_s


def limit_for(tenant: str, config: RateLimitsConfig) -> tuple[float, int]:
    """(interval_s, burst) of a tenant: its own ``tenants`` entry or the default rate."""
    rpm = config.tenants.get(tenant, config.requests_per_minute)
    burst = config.burst if config.burst is not None else max(1, int(rpm))
    return 60.0 / rpm, burst


class RateLimiter:
    """Admits or refuses requests per tenant on a :class:`SharedState`.

    Args:
        state: where ``tat`` lives (shared by replicas on Redis).
        config: the policy's ``rate_limits``.
    """

    def __init__(self, state: SharedState, config: RateLimitsConfig) -> None:
        self.state = state
        self.config = config

    async def admit(self, tenant: str) -> None:
        """Count one request of ``tenant``.

        Raises:
            RateLimitError: over the limit (429, with ``Retry-After``).
            StoreUnavailableError: the state is unreachable and ``on_store_down`` is ``closed`` (503).
        """
        interval, burst = limit_for(tenant, self.config)
        try:
            verdict = await self.state.rate(f"rate:{tenant}", interval, burst)
        except StateUnavailable as err:
            if self.config.on_store_down == "closed":
                raise StoreUnavailableError(
                    "Rate limits cannot be checked (shared state unreachable) and rate_limits.on_store_down is 'closed'."
                ) from err
            log.debug("rate limit not checked for %s: %s", tenant, err)
            return
        if not verdict.allowed:
            raise RateLimitError(
                f"Rate limit of {60.0 / interval:g} requests per minute reached for this API key; "
                f"retry in {verdict.retry_after_s:.1f} s.",
                retry_after_s=verdict.retry_after_s,
            )
