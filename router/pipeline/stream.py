"""The streaming path: the answer layers of :mod:`router.pipeline.answer` for SSE.

A checked local answer (and an ``n > 1`` answer of the in-process tier, and a routed JSON
answer that may go to another tier, :mod:`router.pipeline.format_escalation`) is generated whole,
then replayed as chunks, so the client never sees an answer that is later replaced; with
``escalation.stream_check_tokens`` only its first tokens are held back
(:func:`prefix_checked`). Other answers are relayed live (:func:`relay`). Errors before the
first byte go through the same fallback layer as non-streaming answers; after it, the
stream ends with an error event and ``[DONE]`` and the request is logged ``partial``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

from ..cascade.cascade import checks, may_escalate
from ..cascade.verdict import answer_signals
from ..guards.reserve import BudgetRefused
from ..ledger.cost import count_prompt_tokens
from ..openai_format import SSE_DONE, ToolCallAssembler, chunk, error_event, split_for_stream, sse, tool_call_fragments
from ..providers.attempts import note_cached_tokens
from ..providers.tier_client import CallResult, TierCallError
from ..store.records import CallRecord
from .answer import answer, call_tier, check_call_for, params_for
from .cancelled import counted_stream_usage, log_cancelled_stream
from .exchange import Exchange
from .fallback import escalation_failed, recover
from .format_escalation import format_escalates
from .response import RoutedStream, client_logprobs, completion_body, format_note, router_headers

if TYPE_CHECKING:
    from .router import Router

__all__ = ["stream", "prefix_checked", "replay", "relay"]


async def stream(router: "Router", ex: Exchange) -> RoutedStream:
    """Answer a routed streaming request (see the module docstring).

    Raises:
        RouterError: before the first byte (the caller logs it).
    """
    policy, decision, request = router.policy, ex.decision, ex.request
    tier = decision.tier
    checked = checks(policy, decision, tier) and may_escalate(policy, decision)
    n = int(request.params.get("n") or 1)
    prefix = (checked and n == 1 and decision.escalation.stream_check_tokens is not None
              and not request.params.get("response_format"))
    if (checked and not prefix) or (policy.tiers[tier].is_in_process and n > 1) or format_escalates(policy, ex):
        tier, result = await answer(router, ex)
        if (note := format_note(request, result, ex.record.reason)) is not None:
            ex.note(note)
        await router.keep(ex, tier, completion_body(request, ex.record, policy.tiers[tier].model, result))
        return replay(router, ex, tier, result)
    try:
        if prefix:
            return await prefix_checked(router, ex)
        params = params_for(policy, ex, tier)
        call, first, deltas = await router.attempts.open_stream(ex, tier, "primary", params)
    except (BudgetRefused, TierCallError) as err:
        tier, result = await recover(ex, tier, err, policy, lambda e, t, p: call_tier(router, e, t, p))
        return replay(router, ex, tier, result)
    ex.record.tier = tier
    ex.record.local = tier == policy.routing.local_tier
    held = [first] if first is not None else []
    return RoutedStream(router_headers(ex.record), relay(router, ex, call, held, deltas))


async def prefix_checked(router: "Router", ex: Exchange) -> RoutedStream:
    """Stream a checked local answer after checking only its first
    ``escalation.stream_check_tokens`` tokens.

    The local stream is read until that many tokens (counted by their log-probabilities,
    or by text pieces when the tier streams none) or its end; nothing reaches the client
    meanwhile. Their signals (not ``empty`` or ``finish_length`` of an unfinished answer) go
    through the cascade, without its measures (they judge a whole answer). An answer that
    ends within the prefix is checked whole. Keep: the held pieces, then the rest of the
    local stream, live. Escalate: the cloud stream is opened first; once it answers, the
    local generation is closed (which stops it) and the client gets only the cloud answer;
    when the cloud fails or its budget refuses, the local answer is kept.

    Raises:
        TierCallError: the local stream failed before the check (the caller falls back).
    """
    policy, decision, request = router.policy, ex.decision, ex.request
    local = decision.tier
    limit = int(decision.escalation.stream_check_tokens)
    call, first, deltas = await router.attempts.open_stream(ex, local, "primary", params_for(policy, ex, local))
    held = [first] if first is not None else []
    text: list[str] = []
    logprobs: list[float] = []
    tops: list[list[tuple[str, float]]] = []
    pieces = 0
    finish: str | None = None
    usage: dict[str, int] | None = None

    def absorb(d) -> None:
        nonlocal pieces, finish, usage
        if d.usage is not None:
            usage = d.usage
        if d.content and d.index == 0:
            text.append(d.content)
            pieces += 1
        for lp, top in d.logprobs or ():
            logprobs.append(lp)
            tops.append(top)
        if d.finish_reason:
            finish = d.finish_reason

    for d in held:
        absorb(d)
    while True:
        counted = len(logprobs) if logprobs else pieces
        if finish is None and counted >= limit:
            break
        try:
            d = await deltas.__anext__()
        except StopAsyncIteration:
            break
        except TierCallError as err:
            call.status, call.error = "error", str(err)[:500]
            raise
        held.append(d)
        absorb(d)
    whole = finish is not None
    text_so_far = "".join(text)
    signals = answer_signals(text_so_far, logprobs, finish, request.params.get("response_format") if whole else None,
                             tops)
    if not whole:  # an unfinished answer is neither empty nor cut yet
        signals = replace(signals, empty=False, finish_length=False)
        ex.note(f"checked the first {len(logprobs) or pieces} streamed tokens")
    verdict = await router.cascade.verdict(ex, call, text_so_far, signals, check_call_for(router, ex), whole=whole)
    if not whole:
        call.signals = {**(call.signals or {}), "prefix_tokens": len(logprobs) or pieces}
    if await router.cascade.escalation_allowed(ex, verdict):
        cloud = policy.routing.cloud_tier
        try:
            cloud_call, cloud_first, cloud_deltas = await router.attempts.open_stream(
                ex, cloud, "escalation", params_for(policy, ex, cloud))
        except (BudgetRefused, TierCallError) as err:
            escalation_failed(ex, err, policy)
        else:
            await deltas.aclose()  # stops the local generation
            await _close_cut_call(router, ex, call, local, usage, len(logprobs) or pieces)
            ex.record.escalated = True
            if whole:
                ex.escalated_local_text = text_so_far
            ex.record.tier, ex.record.local = cloud, False
            held = [cloud_first] if cloud_first is not None else []
            return RoutedStream(router_headers(ex.record), relay(router, ex, cloud_call, held, cloud_deltas))
    ex.record.tier, ex.record.local = local, True
    return RoutedStream(router_headers(ex.record), relay(router, ex, call, held, deltas))


async def _close_cut_call(router: "Router", ex: Exchange, call: CallRecord, tier: str,
                          usage: dict[str, int] | None, generated: int) -> None:
    """Fill the tokens of a local stream closed after the check: the reported usage when
    the answer had ended, else ``generated`` completion tokens and the prompt counted
    with the tier's tokenizer (litellm's fallback for unknown models)."""
    if usage is not None:
        call.prompt_tokens, call.completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
    else:
        call.completion_tokens = generated
        try:
            call.prompt_tokens = await asyncio.to_thread(count_prompt_tokens, router.policy.tiers[tier], ex.messages())
        except Exception:
            call.prompt_tokens = 0
    call.latency_ms = (time.perf_counter() - ex.t0) * 1000


def replay(router: "Router", ex: Exchange, tier: str, result: CallResult) -> RoutedStream:
    """Stream an answer that is already complete: each choice in turn, in pieces."""
    record, request = ex.record, ex.request
    ex.finish(tier, router.policy.routing.local_tier, result.prompt_tokens, result.completion_tokens)
    model = router.policy.tiers[tier].model
    cid, created = f"chatcmpl-{record.id}", int(time.time())
    choices = result.response.get("choices") or [{"index": 0, "message": {"content": result.text},
                                                  "finish_reason": result.finish_reason}]

    async def events() -> AsyncIterator[bytes]:
        try:
            for choice in choices:
                i = int(choice.get("index") or 0)
                message = choice.get("message") or {}
                yield sse(chunk(cid, created, model, role="assistant", content="", index=i))
                for piece in split_for_stream(message.get("content") or ""):
                    yield sse(chunk(cid, created, model, content=piece, index=i))
                if message.get("tool_calls"):
                    yield sse(chunk(cid, created, model, index=i, tool_calls=tool_call_fragments(message["tool_calls"])))
                yield sse(chunk(cid, created, model, finish_reason=choice.get("finish_reason") or "stop", index=i))
            if request.include_usage:
                yield sse(chunk(cid, created, model, with_choice=False, usage={
                    "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}))
            yield SSE_DONE
        except (asyncio.CancelledError, GeneratorExit):
            record.status, record.error = "cancelled", "client disconnected"
            raise
        finally:
            router.log_soon(ex, result.text)

    return RoutedStream(router_headers(record), events())


async def relay(router: "Router", ex: Exchange, call: CallRecord, held: list, deltas) -> AsyncIterator[bytes]:
    """Relay a live upstream stream under one id: the ``held`` deltas already read from it
    first, then the rest. Log-probabilities on deltas are never sent. A stream that fails,
    or ends without a finish reason (the upstream closed early), ends with an error event
    and ``[DONE]`` and is logged ``partial``; a client that disconnects stops the upstream
    call and is logged ``cancelled`` with the tokens spent so far."""
    record, request = ex.record, ex.request
    model = call.model
    cid, created = f"chatcmpl-{record.id}", int(time.time())
    pieces = 0
    text_parts: list[str] = []
    finish_reason: str | None = None
    finished: set[int] = set()
    started: set[int] = set()
    tool_calls = ToolCallAssembler()
    usage: dict[str, int] | None = None
    try:
        yield sse(chunk(cid, created, model, role="assistant", content=""))
        pending = list(held)
        while True:
            for d in pending:
                if d.usage is not None:
                    usage = d.usage
                    continue
                if d.content or d.tool_calls:
                    started.add(d.index)
                if d.content:
                    pieces += 1
                    if d.index == 0:
                        text_parts.append(d.content)
                    yield sse(chunk(cid, created, model, content=d.content, index=d.index,
                                    logprobs=client_logprobs(request, d.logprob_entries)))
                if d.tool_calls:
                    pieces += 1
                    if d.index == 0:
                        tool_calls.add(d.tool_calls)
                    yield sse(chunk(cid, created, model, tool_calls=d.tool_calls, index=d.index))
                if d.finish_reason:
                    finished.add(d.index)
                    finish_reason = d.finish_reason
                    yield sse(chunk(cid, created, model, finish_reason=d.finish_reason, index=d.index))
            try:
                pending = [await deltas.__anext__()]
            except StopAsyncIteration:
                break
        if not finished:
            raise TierCallError(call.tier, 502, f"tier '{call.tier}' closed the stream before finishing")
        # litellm's stream wrapper passes on one finish reason (choice 0's): every other
        # choice that streamed ends with it too, so no client waits for a choice forever.
        for index in sorted(started - finished):
            finished.add(index)
            yield sse(chunk(cid, created, model, finish_reason=finish_reason or "stop", index=index))
        if usage is None and (usage := await counted_stream_usage(router, ex, call)) is not None:
            ex.note(f"usage not reported by {call.tier}, prompt and streamed tokens counted with litellm's "
                    "tokenizer (estimated)")
        elif usage is None:
            ex.note("usage not reported, completion tokens counted from chunks")
        whole = {k: v for k, v in (usage or {"prompt_tokens": 0, "completion_tokens": pieces}).items()
                 if k in ("prompt_tokens", "completion_tokens")}
        if request.include_usage:
            yield sse(chunk(cid, created, model, with_choice=False, usage=whole))
        if ex.probe is not None and finished == {0} and (text_parts or tool_calls):  # one whole choice: cacheable
            message = {"role": "assistant", "content": "".join(text_parts) or None}
            if tool_calls:
                message["tool_calls"] = tool_calls.calls()
            router.writer.spawn(router.keep(ex, call.tier, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message,
                             "logprobs": None, "finish_reason": finish_reason or "stop"}],
                "usage": {**whole, "total_tokens": whole["prompt_tokens"] + whole["completion_tokens"]},
            }))
        yield SSE_DONE
    except TierCallError as err:
        call.status, call.error = "error", str(err)[:500]
        record.status, record.http_status, record.error = "partial", err.status, str(err)[:500]
        yield error_event(f"The upstream model failed mid-stream: {str(err).rstrip('.')}. The answer above is incomplete; it was "
                          "not continued on another tier (a fallback happens only before the first byte).")
        yield SSE_DONE
    except (asyncio.CancelledError, GeneratorExit):
        record.status, record.error = "cancelled", "client disconnected"
        raise
    finally:
        if usage is None and record.status in ("cancelled", "partial"):  # the tokens spent, counted or reported
            log_cancelled_stream(router, ex, call, "".join(text_parts))
        else:
            usage = usage or {"prompt_tokens": 0, "completion_tokens": pieces}
            call.prompt_tokens, call.completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
            call.cached_prompt_tokens = int(usage.get("cached_prompt_tokens") or 0)
            note_cached_tokens(ex, call.tier, call.prompt_tokens, call.cached_prompt_tokens)
            call.latency_ms = (time.perf_counter() - ex.t0) * 1000
            ex.finish(call.tier, router.policy.routing.local_tier, call.prompt_tokens, call.completion_tokens)
            router.log_soon(ex, "".join(text_parts))
        # Close the upstream stream (stops local generation) outside a cancelled scope.
        try:
            asyncio.get_running_loop().create_task(deltas.aclose())
        except RuntimeError:
            pass
