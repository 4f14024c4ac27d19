"""The request path: parse -> features -> score -> decide -> call -> check -> escalate -> log.

:class:`Router` wires the stages together. The decision and check stages are pure
functions (:mod:`router.decision`, :mod:`router.checks`); this module does the I/O around
them: scoring off the event loop, tier calls through :class:`TierClient`, and one log
record per request (plus one per model call) written to the store, whatever happens.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .checks import answer_signals, escalation_applies, should_escalate
from .cost import price_request
from .decision import Decision, decide, needs_score
from .errors import InvalidRequestError, RouterError, TierUnavailableError, UpstreamError
from .features import Features, extract_features
from .openai_format import SSE_DONE, chunk, error_event, split_for_stream, sse
from .policy import Policy
from .providers.tier_client import CallResult, TierCallError, TierClient
from .records import CallRecord, RequestRecord
from .request import ChatRequest
from .scoring.base import Scorer
from .shadow import ShadowSampler
from .store.base import RequestStore

__all__ = ["Router", "RoutedAnswer", "RoutedStream", "new_request_id"]

log = logging.getLogger(__name__)


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


@dataclass
class RoutedAnswer:
    """A non-streaming answer: the OpenAI ``chat.completion`` body and the router headers."""

    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class RoutedStream:
    """A streaming answer: headers (known before the first byte) and the SSE byte stream."""

    headers: dict[str, str]
    events: AsyncIterator[bytes]


def _headers(record: RequestRecord) -> dict[str, str]:
    return {
        "x-request-id": record.id,
        "x-router-tier": record.tier or "",
        "x-router-score": "none" if record.score is None else f"{record.score:.4f}",
        "x-router-escalated": "true" if record.escalated else "false",
        "x-router-degraded": "true" if record.degraded else "false",
        "x-router-reason": record.reason.encode("ascii", "replace").decode()[:200],
    }


class Router:
    """Routes chat requests between the policy's tiers and logs every one.

    Args:
        policy: the active policy.
        store: where requests are logged.
        scorer: P(needs cloud) per text; the policy's classifier artifact when None.
        client: tier caller; one built from the policy when None.
    """

    def __init__(self, policy: Policy, store: RequestStore, scorer: Scorer | None = None,
                 client: TierClient | None = None) -> None:
        self.policy = policy
        self.store = store
        if scorer is None:
            from .scoring.classifier import EmbeddingClassifier

            scorer = EmbeddingClassifier(policy.routing.classifier.artifact)
        self.scorer = scorer
        self.client = client or TierClient(policy)
        self._pending: set[asyncio.Task] = set()
        self.shadow = ShadowSampler(policy, self.client, store, getattr(scorer, "embedder", None))
        # local answers of escalated requests, until the request is logged (escalation samples)
        self._escalated_local_text: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the classifier, the embedder and in-process models (blocking, seconds)."""
        warm = getattr(self.scorer, "warm_up", None)
        if warm:
            warm()
        self.client.warm_up()

    async def drain(self) -> None:
        """Wait for log writes and shadow samples still in flight (call before shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.shadow.drain()

    # -- stages --------------------------------------------------------------------------
    async def decide(self, request: ChatRequest, record: RequestRecord | None = None) -> Decision:
        """Score (off the event loop) and choose the first tier; with ``record``, also note
        the decision inputs on it (what ``replay`` needs to re-decide from the log).

        Raises:
            ModelNotFoundError, TierUnavailableError: see :func:`router.decision.decide`.
        """
        cfg = self.policy.routing.classifier
        features = extract_features(request, context_turns=cfg.context_turns, max_chars=cfg.max_chars)
        if record is not None:
            self._note_inputs(record, request, features)
        score = None
        if needs_score(request.model, self.policy):
            score = (await asyncio.to_thread(self.scorer.score, [features.text]))[0]
        return decide(request.model, score, self.policy)

    def _note_inputs(self, record: RequestRecord, request: ChatRequest, features: Features) -> None:
        record.needs = ",".join(sorted(features.needs))
        record.prompt_chars = features.prompt_chars
        record.cloud_available = self.policy.cloud.available
        cap = request.params.get("max_tokens") or request.params.get("max_completion_tokens")
        record.max_tokens = int(cap) if isinstance(cap, (int, float)) else None

    def _escalation_applies(self, request: ChatRequest, tier: str) -> bool:
        return escalation_applies(request.model, tier, self.policy)

    def _fallback_for(self, tier: str) -> str | None:
        routing = self.policy.routing
        if tier == routing.cloud_tier and routing.on_cloud_unavailable == "local":
            return routing.local_tier
        if tier == routing.local_tier and self.policy.cloud.available:
            return routing.cloud_tier
        return None

    def _params(self, request: ChatRequest, tier: str) -> dict[str, Any]:
        params = dict(request.params)
        t = self.policy.tiers[tier]
        if self._escalation_applies(request, tier) and not t.is_in_process:
            params.setdefault("logprobs", True)  # ask an OpenAI-compatible local server for them
        return params

    async def _call(self, tier: str, request: ChatRequest, record: RequestRecord, purpose: str) -> CallResult:
        call = CallRecord(record.id, time.time(), tier, self.policy.tiers[tier].model, purpose)
        record.calls.append(call)
        try:
            result = await self.client.complete(tier, request.messages_as_dicts(), self._params(request, tier))
        except TierCallError as err:
            call.status, call.error = "error", str(err)[:500]
            raise
        call.prompt_tokens, call.completion_tokens = result.prompt_tokens, result.completion_tokens
        call.cached_prompt_tokens = result.cached_prompt_tokens
        call.latency_ms = result.latency_ms
        return result

    async def _answer(self, request: ChatRequest, decision: Decision, record: RequestRecord) -> tuple[str, CallResult]:
        """Call the decided tier, fall back on failure, check a local answer and escalate.

        Returns (tier that answered, its result).
        """
        tier = decision.tier
        try:
            result = await self._call(tier, request, record, "primary")
        except TierCallError as err:
            if err.client_fault:
                raise InvalidRequestError(str(err), code="upstream_rejected") from err
            alt = self._fallback_for(tier)
            if alt is None:
                raise (TierUnavailableError if err.status == 503 else UpstreamError)(str(err)) from err
            record.reason += f"; {tier} failed ({err.status}), fell back to {alt}"
            record.degraded = record.degraded or tier == self.policy.routing.cloud_tier
            tier = alt
            result = await self._call_or_upstream_error(tier, request, record, "fallback")
            return tier, result

        if tier == self.policy.routing.local_tier:  # logged even when unchecked: replay re-checks it
            signals = answer_signals(result.text, result.token_logprobs, result.finish_reason)
            record.calls[-1].mean_logprob = signals.mean_logprob
            record.calls[-1].empty_answer = signals.empty
        if self._escalation_applies(request, tier):
            verdict = should_escalate(signals, self.policy.escalation)
            record.reason += f"; {verdict.reason}"
            if verdict.escalate:
                cloud = self.policy.routing.cloud_tier
                if not self.policy.cloud.available:
                    record.degraded = True
                    record.reason += "; cloud unavailable, kept local answer"
                    return tier, result
                try:
                    escalated = await self._call(cloud, request, record, "escalation")
                except TierCallError as err:
                    record.degraded = True
                    record.reason += f"; escalation failed ({err.status}), kept local answer"
                    return tier, result
                record.escalated = True
                self._escalated_local_text[record.id] = result.text
                return cloud, escalated
        return tier, result

    async def _call_or_upstream_error(self, tier: str, request: ChatRequest, record: RequestRecord, purpose: str) -> CallResult:
        try:
            return await self._call(tier, request, record, purpose)
        except TierCallError as err:
            raise UpstreamError(str(err)) from err

    # -- public entry points -------------------------------------------------------------
    def new_record(self, request_id: str, started: float) -> RequestRecord:
        """An empty log record for a request that arrived at ``started`` (Unix s)."""
        return RequestRecord(id=request_id, ts=started)

    async def complete(self, request: ChatRequest, record: RequestRecord) -> RoutedAnswer:
        """Answer a non-streaming request; logs it (also on error, then re-raises).

        Raises:
            RouterError: any client-visible failure (already logged).
        """
        t0 = time.perf_counter()
        record.requested_model, record.stream = request.model, False
        try:
            decision = await self.decide(request, record)
            self._apply_decision(record, decision)
            tier, result = await self._answer(request, decision, record)
        except Exception as err:
            failure = await self._failed(record, err, t0)
            if failure is err:
                raise
            raise failure from err
        self._finish(record, tier, result.prompt_tokens, result.completion_tokens, t0)
        body = dict(result.response)
        body["id"] = f"chatcmpl-{record.id}"
        body["model"] = self.policy.tiers[tier].model
        for choice in body.get("choices") or []:
            choice.pop("provider_specific_fields", None)
            if not request.params.get("logprobs"):
                choice["logprobs"] = None
        await self._store(record, request, result.text)
        return RoutedAnswer(body, _headers(record))

    async def stream(self, request: ChatRequest, record: RequestRecord) -> RoutedStream:
        """Answer a streaming request. Errors before the first byte raise (and are logged);
        errors after it end the stream with an error event and ``[DONE]``.

        Local answers that the cascade checks are generated whole, checked, then streamed,
        so the client never sees an answer that is later replaced.
        """
        t0 = time.perf_counter()
        record.requested_model, record.stream = request.model, True
        try:
            decision = await self.decide(request, record)
            self._apply_decision(record, decision)
            if self._escalation_applies(request, decision.tier):
                tier, result = await self._answer(request, decision, record)
                return self._replay_stream(request, record, tier, result, t0)
            deltas = self.client.stream(decision.tier, request.messages_as_dicts(), self._params(request, decision.tier))
            call = CallRecord(record.id, time.time(), decision.tier, self.policy.tiers[decision.tier].model, "primary")
            record.calls.append(call)
            try:
                first = await deltas.__anext__()
            except StopAsyncIteration:
                first = None
            except TierCallError as err:
                call.status, call.error = "error", str(err)[:500]
                call.latency_ms = (time.perf_counter() - t0) * 1000
                alt = self._fallback_for(decision.tier)
                if err.client_fault or alt is None:
                    raise (InvalidRequestError if err.client_fault else UpstreamError)(str(err)) from err
                record.reason += f"; {decision.tier} failed ({err.status}), fell back to {alt}"
                record.degraded = record.degraded or decision.tier == self.policy.routing.cloud_tier
                result = await self._call_or_upstream_error(alt, request, record, "fallback")
                return self._replay_stream(request, record, alt, result, t0)
        except Exception as err:
            failure = await self._failed(record, err, t0)
            if failure is err:
                raise
            raise failure from err
        record.tier = decision.tier
        record.local = decision.tier == self.policy.routing.local_tier
        return RoutedStream(_headers(record), self._relay_stream(request, record, call, first, deltas, t0))

    # -- streaming helpers ---------------------------------------------------------------
    def _replay_stream(self, request: ChatRequest, record: RequestRecord, tier: str, result: CallResult, t0: float) -> RoutedStream:
        self._finish(record, tier, result.prompt_tokens, result.completion_tokens, t0)
        model = self.policy.tiers[tier].model
        cid, created = f"chatcmpl-{record.id}", int(time.time())
        include_usage = request.include_usage

        async def events() -> AsyncIterator[bytes]:
            try:
                yield sse(chunk(cid, created, model, role="assistant", content=""))
                for piece in split_for_stream(result.text):
                    yield sse(chunk(cid, created, model, content=piece))
                yield sse(chunk(cid, created, model, finish_reason=result.finish_reason or "stop"))
                if include_usage:
                    yield sse(chunk(cid, created, model, with_choice=False, usage={
                        "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}))
                yield SSE_DONE
            except (asyncio.CancelledError, GeneratorExit):
                record.status, record.error = "cancelled", "client disconnected"
                raise
            finally:
                self._store_soon(record, request, result.text)

        return RoutedStream(_headers(record), events())

    async def _relay_stream(self, request, record: RequestRecord, call: CallRecord, first, deltas, t0: float) -> AsyncIterator[bytes]:
        model = call.model
        cid, created = f"chatcmpl-{record.id}", int(time.time())
        include_usage = request.include_usage
        text_parts: list[str] = []
        usage: dict[str, int] | None = None
        try:
            yield sse(chunk(cid, created, model, role="assistant", content=""))
            pending = [first] if first is not None else []
            while True:
                for d in pending:
                    if d.usage is not None:
                        usage = d.usage
                        continue
                    if d.content:
                        text_parts.append(d.content)
                        yield sse(chunk(cid, created, model, content=d.content, index=d.index))
                    if d.finish_reason:
                        yield sse(chunk(cid, created, model, finish_reason=d.finish_reason, index=d.index))
                try:
                    pending = [await deltas.__anext__()]
                except StopAsyncIteration:
                    break
            if usage is None:
                usage = {"prompt_tokens": 0, "completion_tokens": 0}
                record.reason += "; usage not reported"
            if include_usage:
                yield sse(chunk(cid, created, model, with_choice=False, usage={
                    "prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"]}))
            yield SSE_DONE
        except TierCallError as err:
            call.status, call.error = "error", str(err)[:500]
            record.status, record.http_status, record.error = "partial", err.status, str(err)[:500]
            yield error_event(f"The upstream model failed mid-stream: {err}")
            yield SSE_DONE
        except (asyncio.CancelledError, GeneratorExit):
            record.status, record.error = "cancelled", "client disconnected"
            raise
        finally:
            usage = usage or {"prompt_tokens": 0, "completion_tokens": len(text_parts)}
            call.prompt_tokens, call.completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
            call.cached_prompt_tokens = int(usage.get("cached_prompt_tokens") or 0)
            call.latency_ms = (time.perf_counter() - t0) * 1000
            self._finish(record, call.tier, call.prompt_tokens, call.completion_tokens, t0)
            self._store_soon(record, request, "".join(text_parts))
            # Close the upstream stream (stops local generation) outside a cancelled scope.
            try:
                asyncio.get_running_loop().create_task(deltas.aclose())
            except RuntimeError:
                pass

    # -- logging -------------------------------------------------------------------------
    def _apply_decision(self, record: RequestRecord, decision: Decision) -> None:
        record.routed_tier, record.score = decision.tier, decision.score
        record.reason, record.degraded = decision.reason, decision.degraded

    def _finish(self, record: RequestRecord, tier: str, prompt_tokens: int, completion_tokens: int, t0: float) -> None:
        record.tier = tier
        record.local = tier == self.policy.routing.local_tier
        record.prompt_tokens, record.completion_tokens = prompt_tokens, completion_tokens
        record.latency_ms = (time.perf_counter() - t0) * 1000
        if record.status not in ("partial", "cancelled"):
            record.status, record.http_status = "ok", 200

    async def _failed(self, record: RequestRecord, err: Exception, t0: float) -> RouterError:
        """Log a failed request; return the client-visible error (unexpected errors become a
        500 ``internal_error`` that names the request id, never a bare 500)."""
        if not isinstance(err, RouterError):
            log.exception("request %s failed unexpectedly", record.id)
            err = RouterError(f"Internal error ({type(err).__name__}); logged as request {record.id}.")
        await self.log_failure(record, err, t0)
        return err

    async def log_failure(self, record: RequestRecord, err: RouterError, t0: float | None = None) -> None:
        """Log a request that ended in ``err`` (its calls so far included)."""
        record.status, record.http_status = "error", err.status_code
        record.error = f"{err.code}: {err.message}"[:500]
        if t0 is not None:
            record.latency_ms = (time.perf_counter() - t0) * 1000
        await self._store(record, None)

    def _price(self, record: RequestRecord, request: ChatRequest | None, answer_text: str | None = None) -> None:
        """Fill call costs, request cost and counterfactual (blocking: tokenizer, price map)."""
        price_request(record, self.policy, request.messages_as_dicts() if request is not None else None, answer_text)

    def _write(self, record: RequestRecord, request: ChatRequest | None, answer_text: str | None = None) -> None:
        try:
            self._price(record, request, answer_text)
        except Exception:
            log.exception("pricing request %s failed; logging it unpriced", record.id)
            record.cost_usd = record.counterfactual_usd = None
        self.store.record(record)

    async def _store(self, record: RequestRecord, request: ChatRequest | None, answer_text: str | None = None) -> None:
        local_text = self._escalated_local_text.pop(record.id, None)
        await asyncio.to_thread(self._write, record, request, answer_text)
        if request is not None and answer_text is not None:
            self.shadow.consider(record, request, answer_text, local_text)

    def _store_soon(self, record: RequestRecord, request: ChatRequest | None, answer_text: str | None = None) -> None:
        """Log from a stream's ``finally`` (possibly while being cancelled): on a task of its
        own, or synchronously when no event loop runs (generator closed by the GC)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._escalated_local_text.pop(record.id, None)
            self._write(record, request, answer_text)
            return
        task = loop.create_task(self._store(record, request, answer_text))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
