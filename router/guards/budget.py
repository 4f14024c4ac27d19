"""Per-tenant budgets for the cloud tier: USD per UTC day and per UTC month.

Every cloud call first *reserves* its worst-case cost on the tenant's day and month
counters, atomically (one Lua script on Redis; see :mod:`router.state.redis`): the
reservation succeeds only if no counter would pass its limit. When the request is logged
the reservation is *settled* to the call's real cost. So concurrent requests on any number
of replicas never spend past a limit, provided a call costs no more than its reservation:

    reserve = price(prompt tokens counted with the cloud tokenizer * 1.1 + 8,
                    completion cap * n)

The completion cap is the request's ``max_tokens``/``max_completion_tokens``, else the
tier's ``max_tokens``, else ``budgets.reserve_completion_tokens`` (then sent as
``max_tokens``). The 10% + 8 tokens margin covers tokenizer differences and per-message
overhead. Counters hold integer nano-USD (1e-9 USD), so sums are exact.

As a budget burns, :func:`shifted_threshold` raises the routing threshold so fewer
requests go to the cloud before the limit is hit.
"""

from __future__ import annotations

import asyncio

import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..policy import BudgetLimit, BudgetsConfig, ThresholdShift, TierConfig
from ..store.records import CallRecord
from ..state.base import NO_LIMIT, SharedState, StateUnavailable

__all__ = [
    "NANO_PER_USD",
    "to_nano",
    "Window",
    "windows",
    "limit_for",
    "reserve_tokens",
    "completion_cap",
    "burn_fraction",
    "shifted_threshold",
    "Reservation",
    "Budget",
]

log = logging.getLogger(__name__)

NANO_PER_USD = 1_000_000_000
PROMPT_MARGIN_PERCENT = 10
PROMPT_EXTRA_TOKENS = 8


def to_nano(usd: float, *, round_up: bool = False) -> int:
    """USD -> integer nano-USD (rounded, or up for reservations)."""
    value = usd * NANO_PER_USD
    return int(math.ceil(value - 1e-6)) if round_up else int(round(value))


@dataclass(frozen=True, slots=True)
class Window:
    """One budget counter: ``key`` in the shared state, ``limit`` (nano-USD), ``ttl_s``
    (seconds the counter lives: to the window's end plus a day)."""

    key: str
    limit: int
    ttl_s: float


def windows(tenant: str, limits: BudgetLimit, now: float) -> list[Window]:
    """The tenant's day and month counters at Unix time ``now`` (UTC windows); a window
    without a limit is left out."""
    t = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    out = []
    if limits.daily_usd is not None:
        end = dt.datetime(t.year, t.month, t.day, tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
        out.append(Window(f"budget:{tenant}:day:{t:%Y-%m-%d}", to_nano(limits.daily_usd), end.timestamp() - now + 86400))
    if limits.monthly_usd is not None:
        end = dt.datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=dt.timezone.utc)
        out.append(Window(f"budget:{tenant}:month:{t:%Y-%m}", to_nano(limits.monthly_usd), end.timestamp() - now + 86400))
    return out


def limit_for(tenant: str, config: BudgetsConfig) -> BudgetLimit:
    """The tenant's own limits (``budgets.tenants``) or the default ones."""
    return config.tenants.get(tenant, config.default)


def completion_cap(params: dict[str, Any], tier: TierConfig, config: BudgetsConfig) -> tuple[int, bool]:
    """(completion-token cap of a cloud call, whether it must be sent as ``max_tokens``)."""
    for name in ("max_completion_tokens", "max_tokens"):
        if isinstance(params.get(name), int) and params[name] > 0:
            return params[name], False
    if tier.max_tokens:
        return tier.max_tokens, False
    return config.reserve_completion_tokens, True


def reserve_tokens(counted_prompt_tokens: int, cap: int, n: int = 1) -> tuple[int, int]:
    """(prompt, completion) tokens to reserve for: margin on the prompt, cap times choices."""
    margin = -(-counted_prompt_tokens * PROMPT_MARGIN_PERCENT // 100)  # ceil, in integers
    return counted_prompt_tokens + margin + PROMPT_EXTRA_TOKENS, cap * max(1, n)


def burn_fraction(spent: Sequence[int], limits: Sequence[int]) -> float:
    """Share of the tightest limit spent (0..1+); 1.0 for a zero limit, 0.0 without limits."""
    fractions = [(s / lim) if lim > 0 else 1.0 for s, lim in zip(spent, limits) if lim != NO_LIMIT]
    return max(fractions, default=0.0)


def shifted_threshold(base: float, fraction: float, shift: ThresholdShift | None) -> float:
    """Routing threshold once ``fraction`` of a budget is spent: ``base`` until
    ``shift.start_fraction``, then linear to ``shift.max_threshold`` at 1.0 (never below base)."""
    if shift is None or fraction <= shift.start_fraction or shift.max_threshold <= base:
        return base
    progress = min(1.0, (fraction - shift.start_fraction) / (1.0 - shift.start_fraction))
    return base + (shift.max_threshold - base) * progress


@dataclass(slots=True)
class Reservation:
    """Budget held for one cloud call.

    Attributes:
        tenant: whose budget.
        windows: counters charged.
        nano: amount held (nano-USD); 0 when unmetered.
        metered: False when the state was unreachable and ``on_store_down: open`` let the
            call through without a reservation.
        call: the logged call it pays for (set by the pipeline; its ``cost_usd`` settles it).
        hold: the reservation's id in the state (:meth:`SharedState.settle`): it is settled
            once, even when a reply was lost (a reservation the store made while this
            process saw it fail is replaced, not added to); "" when nothing was held.
    """

    tenant: str
    windows: list[Window]
    nano: int
    metered: bool = True
    call: CallRecord | None = field(default=None)
    hold: str = ""


class Budget:
    """Reserves and settles cloud spend per tenant on a :class:`SharedState`.

    Args:
        state: where the counters live.
        config: the policy's ``budgets``.
        clock: Unix seconds (tests pass their own).
    """

    def __init__(self, state: SharedState, config: BudgetsConfig, clock=time.time) -> None:
        self.state = state
        self.config = config
        self._clock = clock
        # Settlements that could not reach the state (outage): applied when it answers again.
        self._owed: dict[str, tuple[tuple[str, ...], int, tuple[float, ...]]] = {}  # hold -> (keys, nano-USD, ttls)
        self._retry: asyncio.Task | None = None
        self._paying = asyncio.Lock()  # one payer at a time: an owed entry is charged once

    def _retry_owed_soon(self) -> None:
        """Keep retrying the owed settlements every 0.5 s until the state takes them, so a
        charge owed after the last request of an outage is not left waiting for the next
        :meth:`reserve` (which also pays them)."""
        if self._retry is not None and not self._retry.done():
            return

        async def retry() -> None:
            while self._owed:
                await asyncio.sleep(0.5)
                try:
                    await self._pay_owed()
                except StateUnavailable:
                    continue

        try:
            self._retry = asyncio.get_running_loop().create_task(retry())
        except RuntimeError:  # no running loop: the next reserve() pays them
            self._retry = None

    async def _pay_owed(self) -> None:
        """Apply settlements left over from an outage (raises StateUnavailable if still down)."""
        if not self._owed:
            return
        async with self._paying:
            while self._owed:
                hold = next(iter(self._owed))
                keys, nano, ttls = self._owed.pop(hold)
                try:
                    await self.state.settle(list(keys), hold, nano, list(ttls))  # once per hold, even if retried
                except BaseException:
                    self._owed[hold] = (keys, nano, ttls)
                    raise
                if not self._owed:
                    log.warning("budget settlements held during the store outage are now applied")

    async def threshold(self, tenant: str, base: float) -> tuple[float, str]:
        """(routing threshold for ``tenant`` now, a note for ``x-router-reason`` or "")."""
        ws = windows(tenant, limit_for(tenant, self.config), self._clock())
        if not ws or self.config.threshold_shift is None:
            return base, ""
        try:
            spent = await self.state.counters([w.key for w in ws])
        except StateUnavailable:
            if self.config.on_store_down == "closed":
                return max(base, self.config.threshold_shift.max_threshold), "budget unknown (store down)"
            return base, ""
        fraction = burn_fraction(spent, [w.limit for w in ws])
        shifted = shifted_threshold(base, fraction, self.config.threshold_shift)
        note = f"budget {fraction:.0%} spent, threshold {shifted:.3f}" if shifted != base else ""
        return shifted, note

    async def reserve(self, tenant: str, usd: float) -> tuple[Reservation | None, str]:
        """Hold ``usd`` (a worst-case cost) on the tenant's counters.

        Returns:
            (reservation, "") when the call may go ahead, (None, reason) when the budget
            is spent (``budget exhausted (...)``), when what is left cannot hold ``usd``
            (``budget left cannot hold this call's worst-case cost ...``), or unknown with
            ``on_store_down: closed``.
        """
        ws = windows(tenant, limit_for(tenant, self.config), self._clock())
        if not ws:
            return Reservation(tenant, [], 0, metered=False), ""
        nano = to_nano(usd, round_up=True)
        hold = uuid.uuid4().hex
        try:
            await self._pay_owed()
            ok, before = await self.state.reserve([w.key for w in ws], [w.limit for w in ws], nano,
                                                  [w.ttl_s for w in ws], hold=hold)
        except StateUnavailable as err:
            # the store may have made the reservation before its reply was lost: it is settled
            # like any other (to 0 when the call is refused), once the store answers
            if self.config.on_store_down == "closed":
                self._owe(hold, tuple(w.key for w in ws), 0, tuple(w.ttl_s for w in ws), err)
                return None, "budget unknown (store down, fail closed)"
            log.debug("budget unmetered for %s: %s", tenant, err)
            return Reservation(tenant, ws, 0, metered=False, hold=hold), ""
        if not ok:
            spent = ", ".join(f"{w.key.rsplit(':', 2)[1]} ${b / NANO_PER_USD:.6f} of ${w.limit / NANO_PER_USD:.6f}"
                              for w, b in zip(ws, before))
            if all(b < w.limit for w, b in zip(ws, before)):  # room is left, but not this call's worst case
                return None, (f"budget left cannot hold this call's worst-case cost of ${nano / NANO_PER_USD:.6f} "
                              f"({spent} spent or held; a lower max_tokens holds less)")
            return None, f"budget exhausted ({spent})"
        return Reservation(tenant, ws, nano, hold=hold), ""

    async def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        """Replace the held amount by the real cost (``None``: unknown, keep the hold), once
        per reservation (:meth:`SharedState.settle`: a retried settlement, or a reservation
        the store made although its reply was lost, is not charged twice). When the state is
        unreachable the settlement is kept in this process and applied by a later
        :meth:`reserve` or the retry loop once it answers (lost only if the process stops
        first), so calls made during an outage are charged. Never raises."""
        if not reservation.windows:
            return
        if actual_usd is None:
            return
        nano = to_nano(actual_usd)
        if reservation.metered and nano == reservation.nano:
            return
        keys = tuple(w.key for w in reservation.windows)
        ttls = tuple(w.ttl_s for w in reservation.windows)
        try:
            await self.state.settle(list(keys), reservation.hold, nano, list(ttls))
        except StateUnavailable as err:
            self._owe(reservation.hold, keys, nano, ttls, err)

    def _owe(self, hold: str, keys: tuple[str, ...], nano: int, ttls: tuple[float, ...], err: Exception) -> None:
        """Keep the settlement of ``hold`` (to ``nano`` nano-USD) for when the state answers."""
        if not self._owed:
            log.warning("budget settlements wait for the store (%s)", err)
        self._owed[hold] = (keys, nano, ttls)
        self._retry_owed_soon()

    async def spent(self, tenant: str) -> dict[str, float]:
        """USD spent by ``tenant`` per current window, e.g. ``{"day": 0.12, "month": 3.4}``.

        Raises:
            StateUnavailable: the state is unreachable.
        """
        ws = windows(tenant, limit_for(tenant, self.config), self._clock())
        values = await self.state.counters([w.key for w in ws])
        return {w.key.rsplit(":", 2)[1]: v / NANO_PER_USD for w, v in zip(ws, values)}


def budgets_with_key_overlays(policy) -> "BudgetsConfig":
    """The policy's budgets with each ``api_keys`` entry whose overlay sets ``budgets`` added
    under ``tenants`` (tenant id ``key-`` + the first 16 hex digits of the key's SHA-256, as
    :func:`router.request.tenant.tenant_id` computes it); an explicit ``budgets.tenants`` entry wins."""
    tenants = dict(policy.budgets.tenants)
    for key in policy.api_keys:
        overlay = policy.overlays.get(key.overlay) if key.overlay else None
        if key.sha256 and overlay is not None and overlay.budgets is not None:
            tenants.setdefault("key-" + key.sha256[:16], overlay.budgets)
    return policy.budgets.model_copy(update={"tenants": tenants})
