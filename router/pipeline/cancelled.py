"""Logging a request whose client went away: the row says ``cancelled`` with the tokens spent.

A cancelled call returns no usage. Its tokens come from:

- an in-process tier (``slm-local/...``): the count its worker reports once it has stopped
  (exact; :class:`router.providers.spend.Spend`, awaited at most ``SETTLE_S`` seconds);
- a streamed call of any other tier (cloud, or a local OpenAI-compatible server), which
  reports usage only at its end: the prompt and the text received so far (relayed live, or
  held back while the cascade checks a prefix, :attr:`Spend.received`) counted with
  litellm's tokenizer for the tier's model (:func:`router.ledger.cost.count_prompt_tokens`);
  the reason says they are estimated;
- a non-streaming call of such a tier: only its prompt can be counted. The upstream
  generates the answer whole and reports its usage with it, so the completion tokens it
  spent before the disconnect are unknown; they are logged as 0 and the reason says they
  are unknown (never a silent 0).

Both the answer paths (a cancelled pipeline, :func:`log_cancelled`) and a live stream's
relay (:func:`log_cancelled_stream`) log through here, on a task the log writer drains. A
stream cut short by its upstream (logged ``partial``) is counted the same way, and so is one
that finished without reporting usage (:func:`counted_stream_usage`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Literal

from ..ledger.cost import count_prompt_tokens, count_text_tokens
from ..providers.spend import Spend
from ..store.records import CallRecord
from .exchange import Exchange

if TYPE_CHECKING:
    from .router import Router

__all__ = ["SETTLE_S", "counted_stream_usage", "log_cancelled", "log_cancelled_stream"]

SETTLE_S = 2.0
"""Seconds a cancelled in-process generation is given to report its count (it stops
within one token, tens of ms)."""

Counted = Literal["exact", "streamed", "prompt", "none"]


async def _spent(router: "Router", ex: Exchange, call: CallRecord, spend: Spend | None) -> Counted:
    """Fill ``call``'s tokens after a cancel. Returns how: ``exact`` (an in-process worker's
    count), ``streamed`` (prompt and the text the stream received counted), ``prompt`` (a
    non-streaming call: its prompt counted, its completion unknown) or ``none`` (the
    counter failed)."""
    tier = router.policy.tiers[call.tier]
    if tier.is_in_process:
        if spend is not None:
            await spend.settled(SETTLE_S)
            call.prompt_tokens, call.completion_tokens = spend.prompt_tokens, spend.completion_tokens
        return "exact"
    streamed = spend is not None and spend.streamed
    try:
        call.prompt_tokens = await asyncio.to_thread(count_prompt_tokens, tier, ex.messages())
        received = spend.received_text if streamed else ""
        call.completion_tokens = await asyncio.to_thread(count_text_tokens, tier, received)
    except Exception:  # a message shape the counter does not know: nothing counted, still logged
        return "none"
    return "streamed" if streamed else "prompt"


def _tiers(counted: list[tuple[str, Counted]], how: Counted) -> str:
    return ", ".join(dict.fromkeys(tier for tier, c in counted if c == how))


async def _settle_and_log(router: "Router", ex: Exchange) -> None:
    counted = [(call.tier, await _spent(router, ex, call, spend)) for call, spend in ex.in_flight()]
    if streams := _tiers(counted, "streamed"):
        ex.note(f"cancelled: prompt and streamed tokens of {streams} counted with litellm's tokenizer (estimated)")
    if whole := _tiers(counted, "prompt"):
        ex.note(f"cancelled: prompt tokens of {whole} counted with litellm's tokenizer (estimated); completion "
                f"tokens unknown ({whole} was called without streaming and reports usage only with its answer), "
                "logged as 0")
    ex.cancel(router.policy.routing.local_tier)
    await router.writer.log(*router.log_args(ex, None))


def log_cancelled(router: "Router", ex: Exchange) -> None:
    """Log a request the server cancelled before its answer was ready (its calls still in
    flight get the tokens they spent), on a task :meth:`LogWriter.drain` waits for."""
    router.writer.spawn(_settle_and_log(router, ex))


def _stream_spend(ex: Exchange, call: CallRecord) -> Spend | None:
    return next((s for c, s in ex.spends if c is call), None)


async def counted_stream_usage(router: "Router", ex: Exchange, call: CallRecord) -> dict[str, int] | None:
    """Prompt and completion tokens (``{"prompt_tokens", "completion_tokens"}``) of ``call``'s
    stream that ended without reporting usage: the prompt and every piece it delivered counted
    with litellm's tokenizer (an in-process tier's worker count when it has one); also set on
    ``call``. None when the counter failed."""
    if await _spent(router, ex, call, _stream_spend(ex, call)) == "none":
        return None
    return {"prompt_tokens": call.prompt_tokens, "completion_tokens": call.completion_tokens}


async def _stream_logged(router: "Router", ex: Exchange, call: CallRecord, answer_text: str) -> None:
    if await _spent(router, ex, call, _stream_spend(ex, call)) == "streamed":
        how = "cancelled: " if ex.record.status == "cancelled" else "stream cut short: "
        ex.note(f"{how}usage not reported by {call.tier}, prompt and streamed tokens counted with "
                "litellm's tokenizer (estimated)")
    call.latency_ms = (time.perf_counter() - ex.t0) * 1000
    ex.finish(call.tier, router.policy.routing.local_tier, call.prompt_tokens, call.completion_tokens)
    await router.writer.log(*router.log_args(ex, answer_text))


def log_cancelled_stream(router: "Router", ex: Exchange, call: CallRecord, answer_text: str) -> None:
    """Log a live stream whose client disconnected (or whose upstream failed) before the tier
    reported usage: ``call`` gets the tokens spent (every text and tool-argument piece its stream received,
    :attr:`Spend.received`). With no event loop running (a generator closed by the GC) it is
    logged at once, uncounted."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        ex.finish(call.tier, router.policy.routing.local_tier, call.prompt_tokens, call.completion_tokens)
        router.log_soon(ex, answer_text)
        return
    router.writer.spawn(_stream_logged(router, ex, call, answer_text))
