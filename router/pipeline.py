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

from . import metrics
from .budget import Budget, Reservation, completion_cap, reserve_tokens
from .cache import CacheHit, CacheProbe, ResponseCache
from .checks import answer_signals, should_escalate
from .cost import call_cost, count_prompt_tokens
from .decision import Decision, decide, needs_score
from .errors import (
    BudgetExceededError,
    InvalidRequestError,
    PolicyError,
    RateLimitError,
    RouterError,
    TierUnavailableError,
    UpstreamError,
)
from .features import extract_features
from .openai_format import SSE_DONE, chunk, error_event, split_for_stream, sse
from .policy import Policy
from .providers.tier_client import CallResult, TierCallError, TierClient
from .records import CallRecord, RequestRecord
from .request import ChatRequest
from .ratelimit import RateLimiter
from .scoring.base import Scorer
from .state import SharedState, open_state
from .store.base import RequestStore
from .tenant import ANONYMOUS, Caller

__all__ = ["Router", "RoutedAnswer", "RoutedStream", "new_request_id"]

log = logging.getLogger(__name__)


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


class _BudgetRefused(Exception):
    """A cloud call was refused by the tenant's budget (the message says why)."""


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
        **({"x-router-cache": record.cache} if record.cache else {}),
        **({"x-router-tenant": record.tenant} if record.tenant else {}),
    }


class Router:
    """Routes chat requests between the policy's tiers and logs every one.

    Args:
        policy: the active policy.
        store: where requests are logged.
        scorer: P(needs cloud) per text; the policy's classifier artifact when None.
        client: tier caller; one built from the policy when None.
        state: shared state for caches, budgets and rate limits; the policy's ``store``
            (memory or Redis) when None.

    Raises:
        PolicyError: budgets are on but the cloud tier has no known price.
    """

    def __init__(self, policy: Policy, store: RequestStore, scorer: Scorer | None = None,
                 client: TierClient | None = None, state: SharedState | None = None) -> None:
        self.policy = policy
        self.store = store
        if scorer is None:
            from .scoring.classifier import EmbeddingClassifier

            scorer = EmbeddingClassifier(policy.routing.classifier.artifact)
        self.scorer = scorer
        self.client = client or TierClient(policy)
        self._pending: set[asyncio.Task] = set()
        self.state = state or open_state(policy.store)
        self.cache = self._response_cache() if policy.cache.enabled else None
        self.budget = Budget(self.state, policy.budgets) if policy.budgets.enabled else None
        self.limiter = RateLimiter(self.state, policy.rate_limits) if policy.rate_limits.enabled else None
        self._reservations: dict[str, list[Reservation]] = {}
        if self.budget is not None and call_cost(policy.cloud, 1000, 1000) is None:
            raise PolicyError(
                f"budgets are enabled but no price is known for the cloud tier's model {policy.cloud.model!r}; "
                "set tiers.<cloud>.price"
            )

    def _response_cache(self) -> ResponseCache:
        embed = None
        if self.policy.cache.semantic.enabled:
            embedder = getattr(self.scorer, "embedder", None)
            if embedder is None:
                from .scoring.embedder import Embedder

                embedder = Embedder()
            embed = lambda text: embedder.encode([text])[0]  # noqa: E731
        models = {name: t.model for name, t in self.policy.tiers.items()}
        return ResponseCache(self.state, self.policy.cache, models, embed)

    def health(self) -> dict[str, Any]:
        """``{"ok", "store", "state"}``: the request log and the shared state; ``ok`` False
        while either is degraded (records spooled, caching paused, budgets per on_store_down)."""
        store_health = getattr(self.store, "health", None)
        store = store_health() if store_health else {"ok": True}
        state = self.state.health()
        return {"ok": bool(store.get("ok", True) and state.get("ok", True)), "store": store, "state": state}

    # -- lifecycle -----------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the classifier, the embedder and in-process models (blocking, seconds)."""
        warm = getattr(self.scorer, "warm_up", None)
        if warm:
            warm()
        self.client.warm_up()

    async def drain(self) -> None:
        """Wait for log writes still in flight (call before shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        """Drain log writes and release the shared state's connections."""
        await self.drain()
        await self.state.close()

    # -- stages --------------------------------------------------------------------------
    async def decide(self, request: ChatRequest, tenant: str | None = None) -> Decision:
        """Score (off the event loop) and choose the first tier. With budgets on, the
        threshold rises as ``tenant``'s budget burns (:func:`router.budget.shifted_threshold`).

        Raises:
            ModelNotFoundError, TierUnavailableError: see :func:`router.decision.decide`.
        """
        score, threshold, note = None, None, ""
        if needs_score(request.model, self.policy):
            cfg = self.policy.routing.classifier
            features = extract_features(request, context_turns=cfg.context_turns, max_chars=cfg.max_chars)
            score = (await asyncio.to_thread(self.scorer.score, [features.text]))[0]
            if self.budget is not None:
                threshold, note = await self.budget.threshold(tenant or ANONYMOUS, cfg.threshold)
        decision = decide(request.model, score, self.policy, threshold=threshold)
        if note:
            decision = Decision(decision.tier, decision.score, f"{decision.reason}; {note}", decision.degraded)
        return decision

    def _escalation_applies(self, request: ChatRequest, tier: str) -> bool:
        return (
            tier == self.policy.routing.local_tier
            and request.model == "auto"
            and self.policy.escalation.enabled
        )

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

    async def _reserve(self, tier: str, request: ChatRequest, record: RequestRecord,
                       params: dict[str, Any]) -> Reservation | None:
        """Hold the worst-case cost of a cloud call on the tenant's budget (may cap
        ``params['max_tokens']``, see :mod:`router.budget`). None for other tiers.

        Raises:
            _BudgetRefused: the budget is spent (or unknown and failing closed).
        """
        if self.budget is None or tier != self.policy.routing.cloud_tier:
            return None
        cloud = self.policy.cloud
        cap, inject = completion_cap(params, cloud, self.policy.budgets)
        if inject:
            params["max_tokens"] = cap
        messages = request.messages_as_dicts()
        try:
            counted = await asyncio.to_thread(count_prompt_tokens, cloud, messages)
        except Exception:  # no tokenizer: one token per 2 characters over-counts English
            counted = sum(len(str(m.get("content") or "")) for m in messages) // 2 + 1
        prompt_tokens, completion_tokens = reserve_tokens(counted, cap, int(params.get("n") or 1))
        usd = call_cost(cloud, prompt_tokens, completion_tokens) or 0.0
        reservation, why = await self.budget.reserve(record.tenant or ANONYMOUS, usd)
        if reservation is None:
            raise _BudgetRefused(why)
        self._reservations.setdefault(record.id, []).append(reservation)
        return reservation

    def _budget_refusal(self, refused: _BudgetRefused, record: RequestRecord) -> None:
        """Apply ``budgets.on_exhausted`` to a refused cloud call: note it on the record
        (the local tier answers) or raise the 429."""
        action = self.policy.budgets.on_exhausted
        metrics.budget_rejection(action)
        if action == "reject":
            raise BudgetExceededError(
                f"The cloud budget of this API key is spent: {refused}. budgets.on_exhausted is 'reject'."
            ) from refused
        record.degraded = True
        record.reason += f"; {refused}, local tier answers"

    async def _call(self, tier: str, request: ChatRequest, record: RequestRecord, purpose: str) -> CallResult:
        params = self._params(request, tier)
        reservation = await self._reserve(tier, request, record, params)
        call = CallRecord(record.id, time.time(), tier, self.policy.tiers[tier].model, purpose)
        record.calls.append(call)
        if reservation is not None:
            reservation.call = call
        try:
            result = await self.client.complete(tier, request.messages_as_dicts(), params)
        except TierCallError as err:
            call.status, call.error = "error", str(err)[:500]
            raise
        call.prompt_tokens, call.completion_tokens = result.prompt_tokens, result.completion_tokens
        call.latency_ms = result.latency_ms
        return result

    async def _answer(self, request: ChatRequest, decision: Decision, record: RequestRecord) -> tuple[str, CallResult]:
        """Call the decided tier, fall back on failure, check a local answer and escalate.

        Returns (tier that answered, its result).
        """
        tier = decision.tier
        try:
            result = await self._call(tier, request, record, "primary")
        except _BudgetRefused as refused:
            self._budget_refusal(refused, record)
            tier = self.policy.routing.local_tier
            return tier, await self._call_or_upstream_error(tier, request, record, "fallback")
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

        if self._escalation_applies(request, tier):
            signals = answer_signals(result.text, result.token_logprobs, result.finish_reason)
            record.calls[-1].mean_logprob = signals.mean_logprob
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
                except _BudgetRefused as refused:
                    self._budget_refusal(refused, record)
                    return tier, result
                except TierCallError as err:
                    record.degraded = True
                    record.reason += f"; escalation failed ({err.status}), kept local answer"
                    return tier, result
                record.escalated = True
                return cloud, escalated
        return tier, result

    async def _call_or_upstream_error(self, tier: str, request: ChatRequest, record: RequestRecord, purpose: str) -> CallResult:
        try:
            return await self._call(tier, request, record, purpose)
        except TierCallError as err:
            raise UpstreamError(str(err)) from err
        except _BudgetRefused as refused:
            if self.policy.budgets.on_exhausted == "reject":
                self._budget_refusal(refused, record)
            raise UpstreamError(f"Tier '{tier}' was needed as a fallback but its budget refused the call: {refused}.") from refused

    # -- public entry points -------------------------------------------------------------
    def new_record(self, request_id: str, started: float) -> RequestRecord:
        """An empty log record for a request that arrived at ``started`` (Unix s)."""
        return RequestRecord(id=request_id, ts=started)

    async def _admit(self, caller: Caller) -> None:
        """Apply the tenant's rate limit (raises RateLimitError / StoreUnavailableError)."""
        if self.limiter is not None:
            try:
                await self.limiter.admit(caller.tenant)
            except RateLimitError:
                metrics.rate_limited()
                raise

    async def _cached(self, request: ChatRequest, caller: Caller) -> tuple[CacheHit | None, CacheProbe | None]:
        if self.cache is None:
            return None, None
        return await self.cache.lookup(request, caller)

    def _hit_result(self, hit: CacheHit, record: RequestRecord) -> CallResult:
        """The cached answer as a call result; notes the hit on the record."""
        record.cache, record.routed_tier = hit.kind, hit.tier
        record.reason = f"{hit.kind} cache hit" + (f" (similarity {hit.similarity:.3f})" if hit.similarity else "")
        body = dict(hit.body)
        choice = (body.get("choices") or [{}])[0]
        usage = body.get("usage") or {}
        return CallResult(response=body, text=(choice.get("message") or {}).get("content") or "",
                          finish_reason=choice.get("finish_reason"), prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0), latency_ms=0.0)

    def _body(self, request: ChatRequest, record: RequestRecord, tier: str, result: CallResult) -> dict[str, Any]:
        body = dict(result.response)
        body["id"] = f"chatcmpl-{record.id}"
        body["model"] = self.policy.tiers[tier].model
        if record.cache:
            body["created"] = int(time.time())
        for choice in body.get("choices") or []:
            choice.pop("provider_specific_fields", None)
            if not request.params.get("logprobs"):
                choice["logprobs"] = None
        return body

    async def _keep(self, probe: CacheProbe | None, record: RequestRecord, tier: str, body: dict[str, Any]) -> None:
        """Cache a fresh, whole, non-degraded answer."""
        if self.cache is not None and probe is not None and not record.cache and not record.degraded:
            await self.cache.store(probe, tier, body)

    def _keep_soon(self, probe: CacheProbe, record: RequestRecord, tier: str, body: dict[str, Any]) -> None:
        """:meth:`_keep` on a task of its own (from inside a stream)."""
        task = asyncio.get_running_loop().create_task(self._keep(probe, record, tier, body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def complete(self, request: ChatRequest, record: RequestRecord, caller: Caller | None = None) -> RoutedAnswer:
        """Answer a non-streaming request; logs it (also on error, then re-raises).

        Order: rate limit -> cache -> score and decide -> call (budget) -> check/escalate.

        Raises:
            RouterError: any client-visible failure (already logged).
        """
        caller = caller or Caller()
        t0 = time.perf_counter()
        record.requested_model, record.stream, record.tenant = request.model, False, caller.tenant
        try:
            await self._admit(caller)
            needs_score(request.model, self.policy)  # an unknown model fails before any cache work
            hit, probe = await self._cached(request, caller)
            if hit is not None:
                tier, result = hit.tier, self._hit_result(hit, record)
            else:
                decision = await self.decide(request, caller.tenant)
                self._apply_decision(record, decision)
                tier, result = await self._answer(request, decision, record)
        except Exception as err:
            failure = await self._failed(record, err, t0)
            if failure is err:
                raise
            raise failure from err
        self._finish(record, tier, result.prompt_tokens, result.completion_tokens, t0)
        body = self._body(request, record, tier, result)
        await self._keep(probe, record, tier, body)
        await self._store(record, request)
        return RoutedAnswer(body, _headers(record))

    async def stream(self, request: ChatRequest, record: RequestRecord, caller: Caller | None = None) -> RoutedStream:
        """Answer a streaming request. Errors before the first byte raise (and are logged);
        errors after it end the stream with an error event and ``[DONE]``.

        Local answers that the cascade checks are generated whole, checked, then streamed,
        so the client never sees an answer that is later replaced. Cache hits are replayed.
        """
        caller = caller or Caller()
        t0 = time.perf_counter()
        record.requested_model, record.stream, record.tenant = request.model, True, caller.tenant
        try:
            await self._admit(caller)
            needs_score(request.model, self.policy)  # an unknown model fails before any cache work
            hit, probe = await self._cached(request, caller)
            if hit is not None:
                return self._replay_stream(request, record, hit.tier, self._hit_result(hit, record), t0)
            decision = await self.decide(request, caller.tenant)
            self._apply_decision(record, decision)
            if self._escalation_applies(request, decision.tier):
                tier, result = await self._answer(request, decision, record)
                await self._keep(probe, record, tier, self._body(request, record, tier, result))
                return self._replay_stream(request, record, tier, result, t0)
            params = self._params(request, decision.tier)
            try:
                reservation = await self._reserve(decision.tier, request, record, params)
            except _BudgetRefused as refused:
                self._budget_refusal(refused, record)
                local = self.policy.routing.local_tier
                result = await self._call_or_upstream_error(local, request, record, "fallback")
                return self._replay_stream(request, record, local, result, t0)
            deltas = self.client.stream(decision.tier, request.messages_as_dicts(), params)
            call = CallRecord(record.id, time.time(), decision.tier, self.policy.tiers[decision.tier].model, "primary")
            record.calls.append(call)
            if reservation is not None:
                reservation.call = call
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
        return RoutedStream(_headers(record), self._relay_stream(request, record, call, first, deltas, t0, probe))

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
                self._store_soon(record, request)

        return RoutedStream(_headers(record), events())

    async def _relay_stream(self, request, record: RequestRecord, call: CallRecord, first, deltas, t0: float,
                            probe: CacheProbe | None = None) -> AsyncIterator[bytes]:
        model = call.model
        cid, created = f"chatcmpl-{record.id}", int(time.time())
        include_usage = request.include_usage
        text_parts: list[str] = []
        usage: dict[str, int] | None = None
        finish, indexes = None, set()
        try:
            yield sse(chunk(cid, created, model, role="assistant", content=""))
            pending = [first] if first is not None else []
            while True:
                for d in pending:
                    if d.usage is not None:
                        usage = d.usage
                        continue
                    indexes.add(d.index)
                    if d.content:
                        text_parts.append(d.content)
                        yield sse(chunk(cid, created, model, content=d.content, index=d.index))
                    if d.finish_reason:
                        finish = d.finish_reason
                        yield sse(chunk(cid, created, model, finish_reason=d.finish_reason, index=d.index))
                try:
                    pending = [await deltas.__anext__()]
                except StopAsyncIteration:
                    break
            if usage is None:
                usage = {"prompt_tokens": 0, "completion_tokens": 0}
                record.reason += "; usage not reported"
            if include_usage:
                yield sse(chunk(cid, created, model, with_choice=False, usage=usage))
            if probe is not None and indexes <= {0} and text_parts:  # one whole choice: cacheable
                self._keep_soon(probe, record, call.tier, {
                    "id": cid, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text_parts)},
                                 "logprobs": None, "finish_reason": finish or "stop"}],
                    "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
                })
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
            call.latency_ms = (time.perf_counter() - t0) * 1000
            self._finish(record, call.tier, call.prompt_tokens, call.completion_tokens, t0)
            self._store_soon(record, request)
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

    def _price(self, record: RequestRecord, request: ChatRequest | None) -> None:
        """Fill call costs, request cost and counterfactual (blocking: tokenizer, price map)."""
        for c in record.calls:
            c.cost_usd = call_cost(self.policy.tiers[c.tier], c.prompt_tokens, c.completion_tokens) if c.tier in self.policy.tiers else None
        costs = [c.cost_usd for c in record.calls]
        record.cost_usd = None if any(x is None for x in costs) else sum(costs)
        if record.status not in ("ok", "partial") or request is None:
            record.counterfactual_usd = 0.0
            return
        cloud_name = self.policy.routing.cloud_tier
        cloud_calls = [c for c in record.calls if c.tier == cloud_name and c.status == "ok"]
        if record.tier == cloud_name and cloud_calls:
            record.counterfactual_usd = cloud_calls[-1].cost_usd
            return
        try:
            prompt_tokens = count_prompt_tokens(self.policy.cloud, request.messages_as_dicts())
        except Exception:  # tokenizer unavailable: fall back to the local count
            prompt_tokens = record.prompt_tokens
        record.counterfactual_usd = call_cost(self.policy.cloud, prompt_tokens, record.completion_tokens)

    def _write(self, record: RequestRecord, request: ChatRequest | None) -> None:
        try:
            self._price(record, request)
        except Exception:
            log.exception("pricing request %s failed; logging it unpriced", record.id)
            record.cost_usd = record.counterfactual_usd = None
        self.store.record(record)
        metrics.observe(record)

    async def _store(self, record: RequestRecord, request: ChatRequest | None) -> None:
        try:
            await asyncio.to_thread(self._write, record, request)
        finally:
            await self._settle(record)

    async def _settle(self, record: RequestRecord) -> None:
        """Settle the request's budget reservations to its priced calls' real cost."""
        for reservation in self._reservations.pop(record.id, []):
            call = reservation.call
            await self.budget.settle(reservation, None if call is None else call.cost_usd)

    def _store_soon(self, record: RequestRecord, request: ChatRequest | None) -> None:
        """Log from a stream's ``finally`` (possibly while being cancelled): on a task of its
        own, or synchronously when no event loop runs (generator closed by the GC)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write(record, request)
            return
        task = loop.create_task(self._store(record, request))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
