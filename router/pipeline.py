"""The request path: parse -> features -> rules -> score -> decide -> call -> check ->
escalate -> log.

:class:`Router` wires the stages together for one policy (a reloaded policy gets a new
Router, see :mod:`router.live_policy`, so a request keeps the policy it started with). The
rules, decision and check stages are pure functions (:mod:`router.rules`,
:mod:`router.decision`, :mod:`router.checks`); this module does the I/O around them:
identifying the caller, language detection, token counting and scoring off the event
loop, tier calls through :class:`TierClient`, and one log record per request (plus one per
model call) written to the store, whatever happens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import metrics
from .batching import MicroBatcher
from .budget import Budget, Reservation, budgets_with_key_overlays, completion_cap, reserve_tokens
from .cache import CacheHit, CacheProbe, ResponseCache
from .caller import Caller, CallerIndex, rule_headers
from .capabilities import apply_capabilities
from .checks import Verdict, answer_signals, p_correct, should_escalate
from .cost import call_cost, count_prompt_tokens, price_request
from .decision import Decision, decide, needs_score
from .escalation_cap import EscalationShare, cap_allows
from .errors import (
    AuthenticationError,
    BudgetExceededError,
    InvalidRequestError,
    PolicyError,
    RateLimitError,
    RouterError,
    UpstreamError,
    upstream_error_for,
)
from .features import extract_features
from .openai_format import SSE_DONE, chunk, error_event, split_for_stream, sse
from .policy import EscalationConfig, Policy, hash_api_key
from .policy_view import policy_hash
from .rules import RequestFacts, constraints_for, evaluate_rules, facts_needed
from .providers.tier_client import CallResult, TierCallError, TierClient
from .records import CallRecord, RequestRecord
from .request import ChatRequest, message_text
from .ratelimit import RateLimiter
from .shadow import ShadowSampler
from .scoring.base import Scorer
from .self_check import SELF_CHECK_PARAMS, p_yes, self_check_messages
from .session import switched as session_switched
from .session_keeper import SessionKeeper, SessionTurn
from .signals import AnswerSignals, agreement
from .state import SharedState, open_state
from .store.base import RequestStore
from .tenant import ANONYMOUS, Tenant

__all__ = ["Router", "Routing", "RoutedAnswer", "RoutedStream", "new_request_id"]

log = logging.getLogger(__name__)


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


CONSISTENCY_TEMPERATURE = 0.7
"""Sampling temperature of the consistency samples."""


def _caps_share(policy: Policy) -> bool:
    """True when some escalation setting of ``policy`` (base, an overlay or a rule) sets
    ``max_share`` below 1, so checked answers must be counted."""
    overrides = [o.escalation for o in policy.overlays.values()] + [r.action.escalation for r in policy.rules]
    return policy.escalation.max_share < 1.0 or any(
        o is not None and o.max_share is not None and o.max_share < 1.0 for o in overrides)


def _note_signals(call: CallRecord, signals: AnswerSignals, p: float | None = None, **extra: Any) -> None:
    """Keep an answer's signals on its call record (for the log and ``replay``)."""
    call.mean_logprob, call.empty_answer = signals.mean_logprob, signals.empty
    call.signals = {**signals.as_dict(), **({"p_correct": p} if p is not None else {}), **extra}


class _BudgetRefused(Exception):
    """A cloud call was refused by the tenant's budget (the message says why)."""


@dataclass
class RoutedAnswer:
    """A non-streaming answer: the OpenAI ``chat.completion`` body and the router headers.

    ``logged`` is the task writing the request's log record when :meth:`Router.complete`
    was asked to log later (await it after sending the answer), else None (already logged).
    """

    body: dict[str, Any]
    headers: dict[str, str]
    logged: asyncio.Task | None = None


@dataclass(frozen=True, slots=True)
class Routing:
    """How one request is routed, before any model is called (``POST /v1/route``).

    Attributes:
        decision: the decision (tier, score, reason, rules, forbidden tiers).
        caller: the identified caller, or None.
        needs: capabilities the request needs (``vision``, ``tools``, ``json``).
        language: ISO 639-1 code of the last user turn, when a rule needed it.
        prompt_tokens: prompt tokens (cloud model's tokenizer), when a rule needed them.
    """

    decision: Decision
    caller: Caller | None
    needs: frozenset[str]
    language: str | None = None
    prompt_tokens: int | None = None
    prompt_chars: int = 0
    session: SessionTurn | None = None


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
        "x-router-rules": (record.rules or "").encode("ascii", "replace").decode()[:200],
        "x-router-policy": record.policy_hash or "",
        **({"x-router-cache": record.cache} if record.cache else {}),
        **({"x-router-tenant": record.tenant} if record.tenant else {}),
        **({"x-router-session": record.session_id,
            "x-router-session-switched": "true" if session_switched(record) else "false"} if record.session_id else {}),
    }


class Router:
    """Routes chat requests between the policy's tiers and logs every one.

    Args:
        policy: the policy this router applies (fixed for its lifetime).
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
        self.policy_hash = policy_hash(policy)
        self.store = store
        if scorer is None:
            from .scoring.classifier import EmbeddingClassifier

            cfg = policy.routing.classifier
            scorer = EmbeddingClassifier(cfg.artifact, threads=cfg.threads, precision=cfg.precision)
        self.scorer = scorer
        self.client = client or TierClient(policy)
        self.callers = CallerIndex(policy)
        env_keys = os.environ.get(policy.server.api_keys_env, "")
        self._env_key_hashes = frozenset(hash_api_key(k.strip()) for k in env_keys.split(",") if k.strip())
        self._facts_needed = facts_needed(policy.rules)
        self._share_threshold: float | None = None
        self._pending: set[asyncio.Task] = set()
        # Embedding + classifier for concurrent decisions run as one batch on one thread;
        # finished requests are priced and written in batches (one transaction each).
        self._scores: MicroBatcher[str, float] = MicroBatcher(self._score_batch, max_batch=32, name="slm-router-score")
        self._log: MicroBatcher[tuple, Exception | None] = MicroBatcher(self._write_batch, max_batch=256,
                                                                         name="slm-router-log")
        self.state = state or open_state(policy.store)
        self.cache = self._response_cache() if policy.cache.enabled else None
        self.budget = Budget(self.state, budgets_with_key_overlays(policy)) if policy.budgets.enabled else None
        self.limiter = RateLimiter(self.state, policy.rate_limits) if policy.rate_limits.enabled else None
        self.sessions = SessionKeeper(policy, self.state)
        self._reservations: dict[str, list[Reservation]] = {}
        self.shadow = ShadowSampler(policy, self.client, store, getattr(scorer, "embedder", None))
        # local answers of escalated requests, until the request is logged (escalation samples)
        self._escalated_local_text: dict[str, str] = {}
        # escalation share cap: counted only when some escalation setting can cap
        self._share_counted = _caps_share(policy)
        self._shares: dict[float, EscalationShare] = {}
        self._verifiers: dict[str, Any] = {}  # verifier artifact -> its classifier, loaded on first use
        if self.budget is not None and call_cost(policy.cloud, 1000, 1000) is None:
            raise PolicyError(
                f"budgets are enabled but no price is known for the cloud tier's model {policy.cloud.model!r}; "
                "set tiers.<cloud>.price"
            )

    def with_policy(self, policy: Policy, store: RequestStore | None = None) -> "Router":
        """A router for ``policy`` that shares this one's store (unless ``store`` is given)
        and, when the classifier artifact is the same, its loaded scorer."""
        new, old = policy.routing.classifier, self.policy.routing.classifier
        same_artifact = (new.artifact, new.threads, new.precision) == (old.artifact, old.threads, old.precision)
        same_state = policy.store == self.policy.store
        fresh = Router(policy, store or self.store, scorer=self.scorer if same_artifact else None,
                       state=self.state if same_state else None)
        if same_artifact:
            fresh._scores = self._scores  # one scoring thread and its batches for the shared scorer
        return fresh

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
        self._base_threshold()
        if "language" in self._facts_needed:
            from .language import warm_up as warm_language

            warm_language()

    async def drain(self) -> None:
        """Wait for log writes and shadow samples still in flight (call before shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self._log.drain()
        await self.shadow.drain()

    async def close(self) -> None:
        """Drain log writes, release the shared state's connections and stop the log
        writer's thread (litellm owns the tiers' HTTP clients)."""
        await self.drain()
        await self.state.close()
        self._log.close()

    # -- stages --------------------------------------------------------------------------
    def _base_threshold(self) -> float | None:
        """The threshold derived from ``target_cloud_share`` (None when the policy sets a
        threshold); reads the artifact card once."""
        cfg = self.policy.routing.classifier
        if cfg.target_cloud_share is None:
            return None
        if self._share_threshold is None:
            from .calibration import threshold_for_cloud_share

            artifact = getattr(self.scorer, "artifact", None)
            if artifact is None:
                from .scoring.artifact import load_artifact

                artifact = load_artifact(cfg.artifact)
            self._share_threshold = threshold_for_cloud_share(
                artifact.card.get("score_quantiles") or {}, cfg.target_cloud_share)
        return self._share_threshold

    def _facts(self, request: ChatRequest, caller: Caller | None, headers: Mapping[str, str] | None,
               needs: frozenset[str]) -> RequestFacts:
        """Rule facts (blocking when a rule needs the language or the token count)."""
        last_user = next(m for m in reversed(request.messages) if m.role == "user")
        text = message_text(last_user)
        language = prompt_tokens = None
        if "language" in self._facts_needed:
            from .language import detect_language

            language = detect_language(text)
        if "prompt_tokens" in self._facts_needed:
            prompt_tokens = count_prompt_tokens(self.policy.cloud, request.messages_as_dicts())
        return RequestFacts(
            requested_model=request.model, last_user_text=text, needs=needs, headers=rule_headers(headers),
            metadata=request.metadata or {}, key_name=caller.name if caller else None,
            key_group=caller.group if caller else None, prompt_tokens=prompt_tokens, language=language,
        )

    async def route(self, request: ChatRequest, headers: Mapping[str, str] | None = None,
                    tenant: str | None = None) -> Routing:
        """Identify the caller, evaluate the rules, score (off the event loop) when the
        classifier decides, and choose the first tier. Calls no model.

        Args:
            request: the parsed request.
            headers: the HTTP request headers (``Authorization`` identifies the caller).
            tenant: whose budget shifts the threshold as it burns
                (:func:`router.budget.shifted_threshold`), when budgets are on.

        Raises:
            ModelNotFoundError, TierForbiddenError, TierUnavailableError: see
            :func:`router.decision.decide`.
        """
        caller = self.callers.identify((headers or {}).get("authorization"))
        cfg = self.policy.routing.classifier
        features = extract_features(request, context_turns=cfg.context_turns, max_chars=cfg.max_chars)
        if self._facts_needed:
            facts = await asyncio.to_thread(self._facts, request, caller, headers, features.needs)
        else:
            facts = self._facts(request, caller, headers, features.needs)
        outcome = evaluate_rules(self.policy.rules, facts)
        base = await asyncio.to_thread(self._base_threshold) if cfg.target_cloud_share is not None else None
        constraints = constraints_for(self.policy, outcome, caller.overlay if caller else None,
                                      caller.overlay_name if caller else None, base)
        score = None
        forced = not needs_score(request.model, self.policy, constraints)
        if not forced and self.budget is not None:
            base = constraints.threshold if constraints.threshold is not None else cfg.threshold
            shifted, note = await self.budget.threshold(tenant or ANONYMOUS, base)
            if note:
                constraints = replace(constraints, threshold=shifted, threshold_source=note)
        if not forced and features.text.strip():
            score = await self._scores.run(features.text)
        elif not forced:
            score = 1.0  # nothing to embed (an image-only turn): treat as hard
        decision = decide(request.model, score, self.policy, constraints)
        decision, session = await self.sessions.steer(decision, request, headers, tenant)
        max_out = request.params.get("max_completion_tokens") or request.params.get("max_tokens")
        decision = apply_capabilities(decision, features, self.policy, forced, max_out)
        return Routing(decision, caller, features.needs, facts.language, facts.prompt_tokens, features.prompt_chars,
                       session)

    async def decide(self, request: ChatRequest, headers: Mapping[str, str] | None = None) -> Decision:
        """The decision of :meth:`route`."""
        return (await self.route(request, headers)).decision

    def _checks(self, decision: Decision, tier: str) -> bool:
        """True when a local answer of this request is checked by the cascade."""
        return tier == self.policy.routing.local_tier and decision.escalation is not None

    def _may_escalate(self, decision: Decision) -> bool:
        return (decision.escalation is not None and decision.escalation.enabled
                and self.policy.routing.cloud_tier not in decision.forbidden)

    def _fallback_for(self, tier: str, decision: Decision) -> str | None:
        routing = self.policy.routing
        if tier == routing.cloud_tier and routing.on_cloud_unavailable == "local":
            alt = routing.local_tier
        elif tier == routing.local_tier and self.policy.cloud.available:
            alt = routing.cloud_tier
        else:
            return None
        return None if alt in decision.forbidden else alt

    def _params(self, request: ChatRequest, tier: str, decision: Decision) -> dict[str, Any]:
        """The request's parameters for ``tier``; a checked local answer also asks for
        log-probabilities with two alternatives per token (the margins); :meth:`_body` strips
        what the client did not ask for."""
        params = dict(request.params)
        if self._checks(decision, tier):
            params["logprobs"] = True
            params["top_logprobs"] = max(int(params.get("top_logprobs") or 0), 2)
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

    @staticmethod
    async def _failed_attempt(call: CallRecord, err: TierCallError, started: float, attempt: int,
                              attempts: int) -> None:
        """Note a failed attempt on its call record; re-raise ``err`` when it is final (not
        retryable, or the last of ``attempts``), else wait the backoff (50 ms doubling, at
        most 1 s) before the caller's next attempt."""
        call.status, call.error = "error", str(err)[:500]
        call.latency_ms = (time.perf_counter() - started) * 1000
        if not err.retryable or attempt == attempts - 1:
            raise err
        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))

    def _attempt_record(self, record: RequestRecord, tier: str, purpose: str, attempt: int,
                        reservation: Reservation | None) -> CallRecord:
        """The logged call of one attempt (``retry`` after the first), added to ``record``
        and tied to the budget reservation it will settle."""
        call = CallRecord(record.id, time.time(), tier, self.policy.tiers[tier].model,
                          purpose if attempt == 0 else "retry")
        record.calls.append(call)
        if reservation is not None:
            reservation.call = call
        return call

    async def _call(self, tier: str, request: ChatRequest, record: RequestRecord, purpose: str,
                    decision: Decision, messages: list[dict[str, Any]] | None = None,
                    params: dict[str, Any] | None = None) -> CallResult:
        """Call ``tier`` with up to ``max_retries`` extra attempts on retryable failures; every
        attempt is one logged call (failed attempts carry no tokens, so nothing is billed twice).

        Args:
            messages, params: what to send instead of the request's turns and parameters
                (the cascade's check calls).

        Raises:
            TierCallError: the last attempt's failure.
        """
        if tier in decision.forbidden:  # decide() and the fallbacks never get here; a last guard
            raise RuntimeError(f"tier {tier!r} is forbidden for request {record.id}")
        params = self._params(request, tier, decision) if params is None else dict(params)
        messages = request.messages_as_dicts() if messages is None else messages
        reservation = await self._reserve(tier, request, record, params)
        attempts = 1 + self.policy.tiers[tier].max_retries
        for attempt in range(attempts):
            call = self._attempt_record(record, tier, purpose, attempt, reservation)
            started = time.perf_counter()
            try:
                result = await self.client.complete(tier, messages, params)
            except TierCallError as err:
                await self._failed_attempt(call, err, started, attempt, attempts)
                continue
            call.prompt_tokens, call.completion_tokens = result.prompt_tokens, result.completion_tokens
            call.cached_prompt_tokens = result.cached_prompt_tokens
            call.latency_ms = result.latency_ms
            return result
        raise AssertionError("unreachable")

    async def _answer(self, request: ChatRequest, decision: Decision, record: RequestRecord) -> tuple[str, CallResult]:
        """Call the decided tier, fall back on failure, check a local answer and escalate.

        Returns (tier that answered, its result).
        """
        tier = decision.tier
        try:
            result = await self._call(tier, request, record, "primary", decision)
        except _BudgetRefused as refused:
            self._budget_refusal(refused, record)
            tier = self.policy.routing.local_tier
            return tier, await self._call_or_upstream_error(tier, request, record, "fallback", decision)
        except TierCallError as err:
            if err.client_fault:
                raise InvalidRequestError(str(err), code="upstream_rejected") from err
            alt = self._fallback_for(tier, decision)
            if alt is None:
                raise upstream_error_for(err.status, str(err)) from err
            record.reason += f"; {tier} failed ({err.status}), fell back to {alt}"
            record.degraded = record.degraded or tier == self.policy.routing.cloud_tier
            tier = alt
            result = await self._call_or_upstream_error(tier, request, record, "fallback", decision)
            return tier, result

        if tier == self.policy.routing.local_tier:  # logged even when unchecked: replay re-checks it
            answered = record.calls[-1]
            signals = answer_signals(result.text, result.token_logprobs, result.finish_reason,
                                     request.params.get("response_format"), result.top_logprobs)
            _note_signals(answered, signals)
        if self._checks(decision, tier):
            verdict = await self._verdict(request, decision, record, answered, result.text, signals)
            if await self._escalation_allowed(decision, record, verdict):
                cloud = self.policy.routing.cloud_tier
                try:
                    escalated = await self._call(cloud, request, record, "escalation", decision)
                except _BudgetRefused as refused:
                    self._budget_refusal(refused, record)
                    return tier, result
                except TierCallError as err:
                    record.degraded = True
                    record.reason += f"; escalation failed ({err.status}), kept local answer"
                    return tier, result
                record.escalated = True
                self._escalated_local_text[record.id] = result.text
                return cloud, escalated
        return tier, result

    # -- the cascade's check: extra measurements (I/O) around the pure verdict -------------
    async def _verdict(self, request: ChatRequest, decision: Decision, record: RequestRecord, answered: CallRecord,
                       text: str, signals: AnswerSignals, whole: bool = True) -> Verdict:
        """Check a local answer: the pure verdict on its signals, after the self-check and
        consistency calls the settings ask for. Those calls are skipped when escalation
        cannot happen (disabled, cloud forbidden or unavailable), when ``whole`` is False (a streamed
        prefix), and when the answer already fails on a signal they cannot change (a hard
        failure or a threshold on measured signals; a combiner's verdict can change, so it
        does not skip them). The signals (with ``p_correct`` when a combiner is set) are
        kept on ``answered``; the reason goes into ``record.reason``."""
        esc = decision.escalation
        verdict = should_escalate(signals, esc, decision.score)
        if (whole and self._may_escalate(decision) and self.policy.cloud.available
                and not (verdict.escalate and verdict.p_correct is None)):
            measured = await self._measure_extras(request, decision, record, text, esc)
            if measured:
                signals = signals.with_extra(**measured)
                verdict = should_escalate(signals, esc, decision.score)
        _note_signals(answered, signals, None if esc.combiner is None else p_correct(esc.combiner, signals, decision.score))
        record.reason += f"; {verdict.reason}"
        return verdict

    async def _measure_extras(self, request: ChatRequest, decision: Decision, record: RequestRecord, text: str,
                              esc: EscalationConfig) -> dict[str, float]:
        """The self-check P(yes) and the consistency of extra samples, as the settings ask
        (``self_check``, ``consistency_samples``, or a threshold/combiner reading them; a
        reader of ``consistency`` with ``consistency_samples: 0`` draws one sample). Each
        call goes to the local tier through :meth:`_call` (retries included) and is logged
        with purpose ``self_check`` / ``consistency``; a failed call leaves its signal
        unmeasured and says so in the reason."""
        local = self.policy.routing.local_tier
        out: dict[str, float] = {}
        notes: list[str] = []
        if esc.self_check or esc.needs("self_check"):
            check = await self._check_call(local, request, record, decision, "self_check",
                                           self_check_messages(request.messages_as_dicts(), text), dict(SELF_CHECK_PARAMS))
            if check is not None:
                p = p_yes(check.top_logprobs[0] if check.top_logprobs else None)
                if p is None:
                    notes.append("self-check gave neither yes nor no")
                else:
                    out["self_check"] = p
                    notes.append(f"self-check {p:.2f}")
        if esc.verifier_artifact and esc.needs("verifier"):
            try:
                out["verifier"] = await self._verify(esc.verifier_artifact, text)
                notes.append(f"verifier {out['verifier']:.2f}")
            except Exception as err:  # noqa: BLE001 - an unloadable verifier leaves the signal unmeasured
                notes.append(f"verifier failed ({type(err).__name__})")
        samples = esc.consistency_samples or (1 if esc.needs("consistency") else 0)
        if samples:
            base = {k: v for k, v in request.params.items()
                    if k not in ("n", "logprobs", "top_logprobs", "stream", "stream_options")}
            agreements = []
            for i in range(samples):
                params = {**base, "temperature": CONSISTENCY_TEMPERATURE}
                if base.get("seed") is not None:
                    params["seed"] = int(base["seed"]) + 1 + i  # distinct, still reproducible
                sample = await self._check_call(local, request, record, decision, "consistency",
                                                request.messages_as_dicts(), params)
                if sample is not None:
                    agreements.append(agreement(text, sample.text))
            if agreements:
                out["consistency"] = sum(agreements) / len(agreements)
                notes.append(f"consistency {out['consistency']:.2f} over {len(agreements)}")
        if notes:
            record.reason += "; " + ", ".join(notes)
        return out

    async def _verify(self, artifact: str, text: str) -> float:
        """The verifier signal: 1 - P(answer wrong) of ``artifact`` (trained with ``slm-router
        train --text answer`` on labelled answers) for the answer text; embedded on a worker
        thread with the router's own embedder.

        Raises:
            FileNotFoundError: the artifact is incomplete.
        """
        scorer = self._verifiers.get(artifact)
        if scorer is None:
            from .scoring.artifact import load_artifact
            from .scoring.classifier import EmbeddingClassifier
            from .scoring.embedders import embedder_key

            router_card = getattr(getattr(self.scorer, "artifact", None), "card", None)
            card = (await asyncio.to_thread(load_artifact, artifact)).card
            same = router_card is not None and embedder_key(router_card) == embedder_key(card)
            # the router's embedder is shared when both artifacts read the same embeddings
            scorer = EmbeddingClassifier(artifact, getattr(self.scorer, "embedder", None) if same else None)
            self._verifiers[artifact] = scorer
        (p_wrong,) = await asyncio.to_thread(scorer.score, [text or " "])
        return 1.0 - float(p_wrong)

    async def _check_call(self, tier: str, request: ChatRequest, record: RequestRecord, decision: Decision,
                          purpose: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> CallResult | None:
        """One check call; None (and a note in the reason) when it failed after its retries."""
        try:
            return await self._call(tier, request, record, purpose, decision, messages=messages, params=params)
        except TierCallError as err:
            record.reason += f"; {purpose} call failed ({err.status})"
            return None

    def _share(self, esc: EscalationConfig) -> EscalationShare:
        share = self._shares.get(esc.share_window_s)
        if share is None:
            share = self._shares[esc.share_window_s] = EscalationShare(self.state, esc.share_window_s)
        return share

    async def _escalation_allowed(self, decision: Decision, record: RequestRecord, verdict: Verdict) -> bool:
        """Whether a checked local answer goes to the cloud tier: the verdict escalates, the
        cloud tier is allowed and available, and one more escalation keeps the share within
        ``max_share`` (:func:`router.escalation_cap.cap_allows`, counts from the shared
        state; when the state is unreachable the cap is not applied and the reason says so).
        Counts the answer for the cap; notes on ``record`` why an escalation is not made."""
        esc = decision.escalation
        counted = self._share_counted and self._may_escalate(decision)
        if not verdict.escalate:
            if counted:
                await self._share(esc).note(False)
            return False
        cloud = self.policy.routing.cloud_tier
        if cloud in decision.forbidden:
            record.reason += f"; cloud forbidden ({decision.forbidden[cloud]}), kept local answer"
            return False
        if not self.policy.cloud.available:
            record.degraded = True
            record.reason += "; cloud unavailable, kept local answer"
            return False
        if counted and esc.max_share < 1.0:
            share = self._share(esc)
            counts = await share.counts()
            if counts is None:
                record.reason += "; escalation share unknown (shared state unreachable), cap not applied"
            elif not cap_allows(counts[0], counts[1], esc.max_share):
                metrics.escalation_capped()
                record.reason += (f"; escalation capped ({counts[1]} of {counts[0]} checked answers escalated in "
                                  f"the last {esc.share_window_s:g}s, max_share {esc.max_share:g}), kept local answer")
                await share.note(False)
                return False
        if counted:
            await self._share(esc).note(True)
        return True

    async def _call_or_upstream_error(self, tier: str, request: ChatRequest, record: RequestRecord, purpose: str,
                                      decision: Decision) -> CallResult:
        try:
            return await self._call(tier, request, record, purpose, decision)
        except TierCallError as err:
            raise upstream_error_for(err.status, str(err)) from err
        except _BudgetRefused as refused:
            if self.policy.budgets.on_exhausted == "reject":
                self._budget_refusal(refused, record)
            raise UpstreamError(f"Tier '{tier}' was needed as a fallback but its budget refused the call: {refused}.") from refused

    # -- public entry points -------------------------------------------------------------
    def authorize(self, headers: Mapping[str, str] | None) -> None:
        """Check the client's API key when ``server.require_api_key`` is on: an enabled
        ``api_keys`` entry or a key from the environment variable ``server.api_keys_env``.

        Raises:
            AuthenticationError: no key, or an unknown one (401; the key is never echoed).
        """
        if not self.policy.server.require_api_key:
            return
        authorization = (headers or {}).get("authorization")
        if not authorization:
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.", code="missing_api_key")
        if not self.callers.admits(authorization, self._env_key_hashes):
            raise AuthenticationError("Incorrect API key provided. Use a key this router's policy lists.")

    def caller_name(self, headers: Mapping[str, str] | None) -> str | None:
        """Name of the ``api_keys`` entry whose key is in ``headers['authorization']``, or None."""
        caller = self.callers.identify((headers or {}).get("authorization"))
        return caller.name if caller else None

    def new_record(self, request_id: str, started: float) -> RequestRecord:
        """An empty log record for a request that arrived at ``started`` (Unix s), stamped
        with this router's policy hash."""
        return RequestRecord(id=request_id, ts=started, policy_hash=self.policy_hash)

    async def _admit(self, tenant: Tenant) -> None:
        """Apply the tenant's rate limit (raises RateLimitError / StoreUnavailableError)."""
        if self.limiter is not None:
            try:
                await self.limiter.admit(tenant.tenant)
            except RateLimitError:
                metrics.rate_limited()
                raise

    async def _cached(self, request: ChatRequest, tenant: Tenant) -> tuple[CacheHit | None, CacheProbe | None]:
        if self.cache is None:
            return None, None
        return await self.cache.lookup(request, tenant)

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
        """The OpenAI ``chat.completion`` body: our id, the tier's model, logprobs only when asked."""
        body = dict(result.response)
        body["id"] = f"chatcmpl-{record.id}"
        body["model"] = self.policy.tiers[tier].model
        if record.cache:
            body["created"] = int(time.time())
        keep_top = int(request.params.get("top_logprobs") or 0)
        for choice in body.get("choices") or []:
            choice.pop("provider_specific_fields", None)
            if not request.params.get("logprobs"):
                choice["logprobs"] = None
            elif isinstance(choice.get("logprobs"), dict):  # the cascade may have asked for more alternatives
                for token in choice["logprobs"].get("content") or []:
                    if isinstance(token, dict) and isinstance(token.get("top_logprobs"), list):
                        token["top_logprobs"] = token["top_logprobs"][:keep_top]
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

    def _begin(self, request: ChatRequest, record: RequestRecord, headers: Mapping[str, str] | None,
               tenant: Tenant | None, stream: bool) -> Tenant:
        tenant = tenant or Tenant()
        record.requested_model, record.stream, record.tenant = request.model, stream, tenant.tenant
        record.api_key_name = self.caller_name(headers)
        return tenant

    async def complete(self, request: ChatRequest, record: RequestRecord,
                       headers: Mapping[str, str] | None = None, tenant: Tenant | None = None,
                       log_later: bool = False) -> RoutedAnswer:
        """Answer a non-streaming request; logs it (also on error, then re-raises).

        Order: rate limit -> cache -> rules, score and decide -> call (budget) -> check/escalate.

        Args:
            headers: the HTTP request headers, for caller identification and rules.
            tenant: who the request is for (budgets, rate limits, cache scope).
            log_later: return as soon as the answer is ready; the log record (pricing, write,
                budget settlement) is written on a task, :attr:`RoutedAnswer.logged`, that
                :meth:`drain` also waits for. The server sends the answer, then awaits it.

        Raises:
            RouterError: any client-visible failure (already logged).
        """
        t0 = time.perf_counter()
        tenant = self._begin(request, record, headers, tenant, stream=False)
        try:
            await self._admit(tenant)
            needs_score(request.model, self.policy)  # an unknown model fails before any cache work
            hit, probe = await self._cached(request, tenant)
            if hit is not None:
                tier, result = hit.tier, self._hit_result(hit, record)
            else:
                routing = await self.route(request, headers, tenant.tenant)
                self._apply_decision(record, routing, request)
                tier, result = await self._answer(request, routing.decision, record)
        except Exception as err:
            failure = await self._failed(record, err, t0)
            if failure is err:
                raise
            raise failure from err
        self._finish(record, tier, result.prompt_tokens, result.completion_tokens, t0)
        body = self._body(request, record, tier, result)
        await self._keep(probe, record, tier, body)
        headers = _headers(record)
        if log_later:
            return RoutedAnswer(body, headers, self._store_soon(record, request, result.text))
        await self._store(record, request, result.text)
        return RoutedAnswer(body, headers)

    async def stream(self, request: ChatRequest, record: RequestRecord,
                     headers: Mapping[str, str] | None = None, tenant: Tenant | None = None) -> RoutedStream:
        """Answer a streaming request. Errors before the first byte are retried, fall back or
        raise (and are logged); errors after it end the stream with an error event and
        ``[DONE]`` and the request is logged as ``partial``.

        Local answers that the cascade checks, and ``n > 1`` answers of the in-process tier,
        are generated whole, then streamed (choice by choice), so the client never sees an
        answer that is later replaced; with ``escalation.stream_check_tokens`` only the first
        tokens of a checked answer are held back (:meth:`_prefix_checked_stream`). Cache hits
        are replayed.
        """
        t0 = time.perf_counter()
        tenant = self._begin(request, record, headers, tenant, stream=True)
        try:
            await self._admit(tenant)
            needs_score(request.model, self.policy)  # an unknown model fails before any cache work
            hit, probe = await self._cached(request, tenant)
            if hit is not None:
                return self._replay_stream(request, record, hit.tier, self._hit_result(hit, record), t0)
            routing = await self.route(request, headers, tenant.tenant)
            decision = routing.decision
            self._apply_decision(record, routing, request)
            tier = decision.tier
            checked = self._checks(decision, tier) and self._may_escalate(decision)
            n = int(request.params.get("n") or 1)
            prefix_checked = (checked and n == 1 and decision.escalation.stream_check_tokens is not None
                              and not request.params.get("response_format"))
            buffered = (checked and not prefix_checked) or (self.policy.tiers[tier].is_in_process and n > 1)
            if buffered:
                tier, result = await self._answer(request, decision, record)
                await self._keep(probe, record, tier, self._body(request, record, tier, result))
                return self._replay_stream(request, record, tier, result, t0)
            try:
                if prefix_checked:
                    return await self._prefix_checked_stream(request, record, decision, t0, probe)
                call, first, deltas = await self._open_stream(tier, request, record, decision)
            except _BudgetRefused as refused:
                self._budget_refusal(refused, record)
                local = self.policy.routing.local_tier
                result = await self._call_or_upstream_error(local, request, record, "fallback", decision)
                return self._replay_stream(request, record, local, result, t0)
            except TierCallError as err:
                alt = self._fallback_for(tier, decision)
                if err.client_fault or alt is None:
                    raise (InvalidRequestError(str(err), code="upstream_rejected") if err.client_fault
                           else upstream_error_for(err.status, str(err))) from err
                record.reason += f"; {tier} failed ({err.status}), fell back to {alt}"
                record.degraded = record.degraded or tier == self.policy.routing.cloud_tier
                result = await self._call_or_upstream_error(alt, request, record, "fallback", decision)
                return self._replay_stream(request, record, alt, result, t0)
        except Exception as err:
            failure = await self._failed(record, err, t0)
            if failure is err:
                raise
            raise failure from err
        record.tier = tier
        record.local = tier == self.policy.routing.local_tier
        held = [first] if first is not None else []
        return RoutedStream(_headers(record), self._relay_stream(request, record, call, held, deltas, t0, probe))

    async def _prefix_checked_stream(self, request: ChatRequest, record: RequestRecord, decision: Decision,
                                     t0: float, probe: CacheProbe | None) -> RoutedStream:
        """Stream a checked local answer after checking only its first
        ``escalation.stream_check_tokens`` tokens.

        The local stream is read until that many tokens (counted by their log-probabilities,
        or by text pieces when the tier streams none) or its end; nothing reaches the client
        meanwhile. Their signals (mean/min/quantile log-probabilities, margins, repetition,
        refusal; not ``empty`` or ``finish_length`` of an unfinished answer) go through
        :func:`router.checks.should_escalate`; the self-check and consistency calls are
        skipped on a prefix (they judge a whole answer). An answer that ends within the
        prefix is checked whole, like a held-back answer. Keep: the held pieces, then the
        rest of the local stream, live. Escalate: the cloud stream is opened first; once it
        answers, the local generation is closed (which stops it) and the client gets only the
        cloud answer; when the cloud fails or its budget refuses, the local answer is kept.

        Raises:
            TierCallError: the local stream failed before the check (the caller falls back).
        """
        local = decision.tier
        limit = int(decision.escalation.stream_check_tokens)
        call, first, deltas = await self._open_stream(local, request, record, decision)
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
        answer = "".join(text)
        signals = answer_signals(answer, logprobs, finish, request.params.get("response_format") if whole else None,
                                 tops)
        if not whole:  # an unfinished answer is neither empty nor cut yet
            signals = replace(signals, empty=False, finish_length=False)
            record.reason += f"; checked the first {len(logprobs) or pieces} streamed tokens"
        verdict = await self._verdict(request, decision, record, call, answer, signals, whole=whole)
        if not whole:
            call.signals = {**(call.signals or {}), "prefix_tokens": len(logprobs) or pieces}
        if await self._escalation_allowed(decision, record, verdict):
            cloud = self.policy.routing.cloud_tier
            try:
                cloud_call, cloud_first, cloud_deltas = await self._open_stream(
                    cloud, request, record, decision, purpose="escalation")
            except _BudgetRefused as refused:
                self._budget_refusal(refused, record)
            except TierCallError as err:
                record.degraded = True
                record.reason += f"; escalation failed ({err.status}), kept local answer"
            else:
                await deltas.aclose()  # stops the local generation
                await self._close_cut_call(call, local, request, usage, len(logprobs) or pieces, t0)
                record.escalated = True
                if whole:
                    self._escalated_local_text[record.id] = answer
                record.tier, record.local = cloud, False
                held = [cloud_first] if cloud_first is not None else []
                return RoutedStream(_headers(record), self._relay_stream(
                    request, record, cloud_call, held, cloud_deltas, t0, probe))
        record.tier, record.local = local, True
        return RoutedStream(_headers(record), self._relay_stream(request, record, call, held, deltas, t0, probe))

    async def _close_cut_call(self, call: CallRecord, tier: str, request: ChatRequest, usage: dict[str, int] | None,
                              generated: int, t0: float) -> None:
        """Fill the tokens of a local stream closed after the check: the reported usage when
        the answer had ended, else ``generated`` completion tokens and the prompt counted
        with the tier's tokenizer (litellm's fallback for unknown models)."""
        if usage is not None:
            call.prompt_tokens, call.completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
        else:
            call.completion_tokens = generated
            try:
                call.prompt_tokens = await asyncio.to_thread(count_prompt_tokens, self.policy.tiers[tier],
                                                             request.messages_as_dicts())
            except Exception:
                call.prompt_tokens = 0
        call.latency_ms = (time.perf_counter() - t0) * 1000

    async def _open_stream(self, tier: str, request: ChatRequest, record: RequestRecord, decision: Decision,
                           purpose: str = "primary"):
        """Start a stream at ``tier`` and wait for its first piece, retrying retryable failures
        (nothing has reached the client yet). Returns (call record, first delta or None,
        the rest of the stream).

        Raises:
            TierCallError: the last attempt failed before its first piece.
            _BudgetRefused: the tenant's budget refused the cloud call.
        """
        params = self._params(request, tier, decision)
        reservation = await self._reserve(tier, request, record, params)
        attempts = 1 + self.policy.tiers[tier].max_retries
        for attempt in range(attempts):
            call = self._attempt_record(record, tier, purpose, attempt, reservation)
            started = time.perf_counter()
            deltas = self.client.stream(tier, request.messages_as_dicts(), params)
            try:
                first = await deltas.__anext__()
            except StopAsyncIteration:
                return call, None, deltas
            except TierCallError as err:
                await self._failed_attempt(call, err, started, attempt, attempts)
                continue
            return call, first, deltas
        raise AssertionError("unreachable")

    # -- streaming helpers ---------------------------------------------------------------
    def _replay_stream(self, request: ChatRequest, record: RequestRecord, tier: str, result: CallResult, t0: float) -> RoutedStream:
        """Stream an answer that is already complete: each choice in turn, in pieces."""
        self._finish(record, tier, result.prompt_tokens, result.completion_tokens, t0)
        model = self.policy.tiers[tier].model
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
                    for k, call in enumerate(message.get("tool_calls") or ()):  # each call whole, in one piece
                        yield sse(chunk(cid, created, model, index=i, tool_calls=[{**call, "index": k}]))
                    yield sse(chunk(cid, created, model, finish_reason=choice.get("finish_reason") or "stop", index=i))
                if request.include_usage:
                    yield sse(chunk(cid, created, model, with_choice=False, usage={
                        "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}))
                yield SSE_DONE
            except (asyncio.CancelledError, GeneratorExit):
                record.status, record.error = "cancelled", "client disconnected"
                raise
            finally:
                self._store_soon(record, request, result.text)

        return RoutedStream(_headers(record), events())

    async def _relay_stream(self, request: ChatRequest, record: RequestRecord, call: CallRecord, held: list,
                            deltas, t0: float, probe: CacheProbe | None = None) -> AsyncIterator[bytes]:
        """Relay a live upstream stream under one id: the ``held`` deltas already read from it
        first, then the rest. Log-probabilities on deltas are never sent. A stream that fails, or ends without a
        finish reason (the upstream closed early), ends with an error event and ``[DONE]``
        and is logged ``partial``; a client that disconnects stops the upstream call and is
        logged ``cancelled`` with the tokens spent so far."""
        model = call.model
        cid, created = f"chatcmpl-{record.id}", int(time.time())
        pieces = 0
        text_parts: list[str] = []
        finish_reason: str | None = None
        finished: set[int] = set()
        usage: dict[str, int] | None = None
        tools_streamed = False
        try:
            yield sse(chunk(cid, created, model, role="assistant", content=""))
            pending = list(held)
            while True:
                for d in pending:
                    if d.usage is not None:
                        usage = d.usage
                        continue
                    if d.content:
                        pieces += 1
                        if d.index == 0:
                            text_parts.append(d.content)
                        yield sse(chunk(cid, created, model, content=d.content, index=d.index))
                    if d.tool_calls:
                        tools_streamed = True
                        yield sse(chunk(cid, created, model, index=d.index, tool_calls=d.tool_calls))
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
            if usage is None:
                record.reason += "; usage not reported, completion tokens counted from chunks"
            whole = {k: v for k, v in (usage or {"prompt_tokens": 0, "completion_tokens": pieces}).items()
                     if k in ("prompt_tokens", "completion_tokens")}
            if request.include_usage:
                yield sse(chunk(cid, created, model, with_choice=False, usage=whole))
            if probe is not None and finished == {0} and text_parts and not tools_streamed:  # one whole text choice
                self._keep_soon(probe, record, call.tier, {
                    "id": cid, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text_parts)},
                                 "logprobs": None, "finish_reason": finish_reason or "stop"}],
                    "usage": {**whole, "total_tokens": whole["prompt_tokens"] + whole["completion_tokens"]},
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
            usage = usage or {"prompt_tokens": 0, "completion_tokens": pieces}
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
    def _apply_decision(self, record: RequestRecord, routing: Routing, request: ChatRequest) -> None:
        decision = routing.decision
        record.routed_tier, record.score = decision.tier, decision.score
        record.reason, record.degraded = decision.reason, decision.degraded
        record.rules = ",".join(decision.rules) or None
        record.api_key_name = routing.caller.name if routing.caller else None
        if request.ignored_fields:
            record.reason += f"; ignored client fields: {', '.join(request.ignored_fields)}"
        # decision inputs, so that `replay` can re-decide from the log
        record.needs = ",".join(sorted(routing.needs))
        record.prompt_chars = routing.prompt_chars
        record.cloud_available = self.policy.cloud.available
        cap = request.params.get("max_tokens") or request.params.get("max_completion_tokens")
        record.max_tokens = int(cap) if isinstance(cap, (int, float)) else None
        if routing.session is not None:
            record.session_id, record.session_per_turn_tier = routing.session.id, routing.session.per_turn_tier
            record.session_prev_tier = routing.session.previous.tier if routing.session.previous else None

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

    def _write_batch(self, items: list[tuple[RequestRecord, ChatRequest | None, str | None]]) -> list[Exception | None]:
        """Price finished requests and write them to the store (blocking; the log writer's
        thread). One transaction for the batch when the store has ``record_many``; one
        record at a time otherwise, or when that fails. Returns, per item, the exception
        that kept it out of the log, or None."""
        records = []
        for record, request, answer_text in items:
            try:
                self._price(record, request, answer_text)
            except Exception:
                log.exception("pricing request %s failed; logging it unpriced", record.id)
                record.cost_usd = record.counterfactual_usd = None
            records.append(record)
        errors: list[Exception | None] = [None] * len(records)
        record_many = getattr(self.store, "record_many", None)
        written = False
        if record_many is not None and len(records) > 1:
            try:
                record_many(records)
                written = True
            except Exception:
                log.exception("writing %d log records at once failed; writing them one by one", len(records))
        if not written:
            for i, record in enumerate(records):
                try:
                    self.store.record(record)
                except Exception as err:
                    errors[i] = err
        for record, err in zip(records, errors):
            if err is None:
                metrics.observe(record)
        return errors

    def _write(self, record: RequestRecord, request: ChatRequest | None, answer_text: str | None = None) -> None:
        """Price and write one request now, on the calling thread.

        Raises:
            Exception: the store's, when the record could not be written.
        """
        error = self._write_batch([(record, request, answer_text)])[0]
        if error is not None:
            raise error

    def _score_batch(self, texts: list[str]) -> list[float]:
        """P(needs cloud) per text (blocking; the scoring thread)."""
        return self.scorer.score(texts)

    async def _store(self, record: RequestRecord, request: ChatRequest | None, answer_text: str | None = None) -> None:
        local_text = self._escalated_local_text.pop(record.id, None)
        await self.sessions.note(record)  # before the log write, so the session's next turn sees it
        try:
            error = await self._log.run((record, request, answer_text))
            if error is not None:
                raise error
        finally:
            await self._settle(record)
        if request is not None and answer_text is not None:
            self.shadow.consider(record, request, answer_text, local_text)

    async def _settle(self, record: RequestRecord) -> None:
        """Settle the request's budget reservations to its priced calls' real cost."""
        for reservation in self._reservations.pop(record.id, []):
            call = reservation.call
            await self.budget.settle(reservation, None if call is None else call.cost_usd)

    def _store_soon(self, record: RequestRecord, request: ChatRequest | None,
                    answer_text: str | None = None) -> asyncio.Task | None:
        """Log on a task of its own (after a non-streaming answer, or from a stream's
        ``finally``, possibly while being cancelled), which :meth:`drain` waits for; returns
        it. Logs synchronously and returns None when no event loop runs (a generator
        closed by the GC)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._escalated_local_text.pop(record.id, None)
            self._write(record, request, answer_text)
            return None
        task = loop.create_task(self._store(record, request, answer_text))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task
