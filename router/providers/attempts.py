"""Attempts: one tier call (or stream opening) with its retries, each attempt a logged call.

The layer under the fallback (:mod:`router.pipeline.fallback`) and above the tier client
(:class:`router.providers.tier_client.TierClient`), like the single-request layer of an HTTP
client: it reserves the call's budget, makes up to ``1 + max_retries`` attempts (only
retryable failures: a timeout, a 429 or a 5xx), records each as a
:class:`router.store.records.CallRecord` on the request (``retry`` after the first; failed
attempts carry no tokens, so nothing is billed twice), and raises only its own errors: the
last :class:`TierCallError`, or :class:`router.guards.reserve.BudgetRefused`. Each attempt
runs under its own :class:`router.providers.spend.Spend` (kept on the exchange), so a
cancelled call's tokens can still be logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..guards.budget import Reservation
from ..guards.reserve import CloudReserver
from ..policy import Policy
from ..store.records import CallRecord
from .spend import metering
from .tier_client import CallResult, StreamDelta, TierCallError, TierClient

if TYPE_CHECKING:
    from ..pipeline.exchange import Exchange

__all__ = ["Attempts", "backoff_s", "note_cached_tokens"]


def note_cached_tokens(ex: "Exchange", tier: str, prompt_tokens: int, cached_tokens: int) -> None:
    """Note on ``ex`` a tier that reported more cached prompt tokens than prompt tokens (the
    price counts at most all prompt tokens as cached, see :func:`router.ledger.cost.policy_price`)."""
    if cached_tokens > prompt_tokens:
        ex.note(f"{tier} reported {cached_tokens} cached prompt tokens of {prompt_tokens}, "
                f"priced as {prompt_tokens} cached")


def backoff_s(attempt: int) -> float:
    """Seconds to wait before retry ``attempt + 1``: 50 ms doubling, at most 1 s."""
    return min(0.05 * 2**attempt, 1.0)


class Attempts:
    """Calls of one policy's tiers with retries and call records.

    Args:
        policy: the tiers (models, ``max_retries``).
        client: the tier client.
        reserver: the budget guard of cloud calls.
    """

    def __init__(self, policy: Policy, client: TierClient, reserver: CloudReserver) -> None:
        self.policy = policy
        self.client = client
        self.reserver = reserver

    def _record(self, ex: "Exchange", tier: str, purpose: str, attempt: int,
                reservation: Reservation | None) -> CallRecord:
        """The logged call of one attempt (``retry`` after the first), added to the request's
        record and tied to the budget reservation it will settle."""
        call = CallRecord(ex.record.id, time.time(), tier, self.policy.tiers[tier].model,
                          purpose if attempt == 0 else "retry")
        ex.record.calls.append(call)
        if reservation is not None:
            reservation.call = call
        return call

    @staticmethod
    async def _failed(call: CallRecord, err: TierCallError, started: float, attempt: int, attempts: int) -> None:
        """Note a failed attempt on its call record; re-raise ``err`` when it is final (not
        retryable, or the last of ``attempts``), else wait the backoff."""
        call.status, call.error = "error", str(err)[:500]
        call.latency_ms = (time.perf_counter() - started) * 1000
        if not err.retryable or attempt == attempts - 1:
            raise err
        await asyncio.sleep(backoff_s(attempt))

    def _guard(self, ex: "Exchange", tier: str) -> None:
        if tier in ex.decision.forbidden:  # decide() and the fallbacks never get here; a last guard
            raise RuntimeError(f"tier {tier!r} is forbidden for request {ex.record.id}")

    async def call(self, ex: "Exchange", tier: str, purpose: str, params: dict[str, Any],
                   messages: list[dict[str, Any]] | None = None) -> CallResult:
        """Call ``tier`` (``messages`` instead of the request's turns for the cascade's check
        calls), retrying retryable failures; ``params`` may be changed by the budget cap.

        Raises:
            TierCallError: the last attempt's failure.
            BudgetRefused: the tenant's budget refused the cloud call.
        """
        self._guard(ex, tier)
        messages = ex.messages() if messages is None else messages
        reservation = await self.reserver.reserve(ex, tier, params)
        attempts = 1 + self.policy.tiers[tier].max_retries
        for attempt in range(attempts):
            call = self._record(ex, tier, purpose, attempt, reservation)
            started = time.perf_counter()
            try:
                with metering(ex.spend_for(call)):
                    result = await self.client.complete(tier, messages, params)
            except TierCallError as err:
                await self._failed(call, err, started, attempt, attempts)
                continue
            call.prompt_tokens, call.completion_tokens = result.prompt_tokens, result.completion_tokens
            call.cached_prompt_tokens = result.cached_prompt_tokens
            call.latency_ms = result.latency_ms
            if result.usage_rejected:
                ex.note(f"usage reported by {tier} is implausible ({result.usage_rejected}), tokens counted with "
                        "litellm's tokenizer")
            elif result.usage_estimated:
                ex.note(f"usage not reported by {tier}, tokens counted with litellm's tokenizer")
            note_cached_tokens(ex, tier, result.prompt_tokens, result.cached_prompt_tokens)
            return result
        raise AssertionError("unreachable")

    async def open_stream(self, ex: "Exchange", tier: str, purpose: str, params: dict[str, Any]
                          ) -> tuple[CallRecord, StreamDelta | None, AsyncIterator[StreamDelta]]:
        """Start a stream at ``tier`` and wait for its first piece, retrying retryable failures
        (nothing has reached the client yet). Returns (call record, first delta or None, the
        rest of the stream).

        Raises:
            TierCallError: the last attempt failed before its first piece.
            BudgetRefused: the tenant's budget refused the cloud call.
        """
        reservation = await self.reserver.reserve(ex, tier, params)
        attempts = 1 + self.policy.tiers[tier].max_retries
        for attempt in range(attempts):
            call = self._record(ex, tier, purpose, attempt, reservation)
            started = time.perf_counter()
            deltas = self.client.stream(tier, ex.messages(), params)
            try:
                with metering(ex.spend_for(call)):  # the generation reads it when it starts
                    first = await deltas.__anext__()
            except StopAsyncIteration:
                return call, None, deltas
            except TierCallError as err:
                await self._failed(call, err, started, attempt, attempts)
                continue
            return call, first, deltas
        raise AssertionError("unreachable")
