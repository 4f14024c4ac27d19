"""The request path: parse -> identify -> route -> call -> check -> escalate -> log.

:class:`Router` is the façade the HTTP edge calls: it builds one policy's stages (a
reloaded policy gets a new Router, see :mod:`router.api.live_policy`, so a request keeps the
policy it started with) and runs each request through them with one
:class:`~router.pipeline.exchange.Exchange`: rate limit and cache
(:mod:`router.guards`), the routing stage (:mod:`router.routing.route`), the answer layers
(:mod:`router.pipeline.answer`, :mod:`router.pipeline.stream`: fallback, attempts, the
cascade), the response (:mod:`router.pipeline.response`) and the log writer
(:mod:`router.ledger.writer`), which logs every request whatever happens.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from ..batching import MicroBatcher
from .request_id import new_request_id
from ..cascade.cascade import Cascade
from ..cascade.measures import Verifiers
from ..errors import AuthenticationError, PolicyError, RateLimitError, RouterError
from ..guards.budget import Budget, Reservation, budgets_with_key_overlays
from ..guards.cache import response_cache
from ..guards.ratelimit import RateLimiter
from ..guards.reserve import CloudReserver
from ..ledger import metrics
from ..ledger.cost import call_cost
from ..ledger.shadow import ShadowSampler
from ..ledger.writer import LogWriter
from ..learning.keep import add_answers
from ..policy import Policy, hash_api_key
from ..policy.view import policy_hash
from ..providers.attempts import Attempts
from ..providers.tier_client import TierClient
from ..request.identity import CallerIndex, Identity
from ..request.parse import ChatRequest
from ..request.tenant import Tenant
from ..routing.decide import Decision, needs_score
from ..routing.route import Routing, RouteStage
from ..routing.session_keeper import SessionKeeper
from ..scoring import make_scorer, scorer_settings
from ..scoring.embedders import similarity_embedder
from ..scoring.base import Scorer
from ..scoring.protocols import EmbeddingScorer
from ..scoring.two_stage import StagedScore, score_near
from ..state import SharedState, open_state
from ..store.base import RequestStore
from ..store.records import RequestRecord
from . import stream as streaming
from .answer import answer
from .cancelled import log_cancelled
from .candidate import CandidatePolicy
from .exchange import Exchange
from .response import RoutedAnswer, RoutedStream, completion_body, format_note, hit_result, router_headers

__all__ = ["Router", "Routing", "RoutedAnswer", "RoutedStream", "new_request_id"]

log = logging.getLogger(__name__)


async def _route_beside_shadow(router: "Router", ex: Exchange) -> Routing:
    """The routing stage's result for ``ex``; with a policy version in shadow
    (:mod:`.candidate`), that version decides the same request at the same time and its
    version and tier are kept on the record (it never acts)."""
    routed = router.routing.route(ex.request, ex.identity.caller, ex.headers, ex.identity.tenant.tenant)
    candidate = router.candidate  # read once: the request keeps the shadow it started with
    if candidate is None:
        return await routed
    routing, shadow = await asyncio.gather(routed, candidate.decide(ex.request, ex.headers))
    ex.record.shadow_policy_version, ex.record.shadow_tier = shadow
    return routing


def _artifact_card(scorer: Scorer, policy: Policy) -> dict[str, Any]:
    """The classifier artifact's card (blocking when it is not loaded yet)."""
    if isinstance(scorer, EmbeddingScorer):
        return scorer.artifact.card
    from ..scoring.artifact import load_artifact

    return load_artifact(policy.routing.classifier.artifact).card


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
            scorer = make_scorer(policy.routing.classifier)
        self.scorer = scorer
        self.client = client or TierClient(policy)
        self.callers = CallerIndex(policy)
        env_keys = os.environ.get(policy.server.api_keys_env, "")
        self._env_key_hashes = frozenset(hash_api_key(k.strip()) for k in env_keys.split(",") if k.strip())
        # Concurrent decisions score as one batch on this thread, each text with its threshold.
        self.scoring: MicroBatcher[tuple[str, float], StagedScore] = MicroBatcher(
            self._score_batch, max_batch=32, name="slm-router-score")
        self.state = state or open_state(policy.store)
        self.cache = response_cache(policy, self.state, scorer) if policy.cache.enabled else None
        self.budget = Budget(self.state, budgets_with_key_overlays(policy)) if policy.budgets.enabled else None
        self.limiter = RateLimiter(self.state, policy.rate_limits) if policy.rate_limits.enabled else None
        if self.budget is not None and call_cost(policy.cloud, 1000, 1000) is None:
            raise PolicyError(
                f"budgets are enabled but no price is known for the cloud tier's model {policy.cloud.model!r}; "
                "set tiers.<cloud>.price"
            )
        self.sessions = SessionKeeper(policy, self.state)
        self.routing = RouteStage(policy, self._score, functools.partial(_artifact_card, scorer, policy),
                                  self.budget.threshold if self.budget is not None else None, self.sessions)
        reserver = CloudReserver(policy, self.budget)
        self.attempts = Attempts(policy, self.client, reserver)
        self.cascade = Cascade(policy, self.state, Verifiers(scorer))
        self.shadow = ShadowSampler(policy, self.client, store, similarity_embedder(scorer))
        self.writer = LogWriter(policy, store, self.shadow, reserver.settle if self.budget is not None else None,
                                self.sessions.note)
        self.candidate: CandidatePolicy | None = None  # a policy version in shadow (pipeline/candidate.py)

    def with_policy(self, policy: Policy, store: RequestStore | None = None) -> "Router":
        """A router for ``policy`` that shares this one's store (unless ``store`` is given)
        and, when the classifier artifact is the same, its loaded scorer."""
        new, old = policy.routing.classifier, self.policy.routing.classifier
        same_artifact = scorer_settings(new) == scorer_settings(old)
        same_state = policy.store == self.policy.store
        fresh = Router(policy, store or self.store, scorer=self.scorer if same_artifact else None,
                       state=self.state if same_state else None)
        if same_artifact:
            fresh.scoring = self.scoring  # one scoring thread and its batches for the shared scorer
        return fresh

    def _score_batch(self, items: list[tuple[str, float]]) -> list[StagedScore]:
        """P(needs cloud), deciding stage and scored inputs per (text, threshold) (blocking; the scoring thread)."""
        return score_near(self.scorer, items, keep=True)

    async def _score(self, text: str, threshold: float) -> StagedScore:
        return await self.scoring.run((text, threshold))

    def health(self) -> dict[str, Any]:
        """``{"ok", "store", "state", "local"}``: the request log, the shared state and the
        in-process tiers' worker pools; ``ok`` False while one is degraded (records spooled,
        caching paused, budgets per on_store_down, local workers crashed too often)."""
        store = self.store.health()
        state = self.state.health()
        local = self.client.local_health()  # in-process tiers' workers: restarts, crashes, extra buffers
        ok = store.get("ok", True) and state.get("ok", True) and all(p["ok"] for p in local.values())
        return {"ok": bool(ok), "store": store, "state": state, "local": local}

    # -- lifecycle -----------------------------------------------------------------------
    def warm_up(self) -> None:
        """:meth:`warm_up_answers`, then :meth:`warm_up_routing` (blocking, seconds)."""
        self.warm_up_answers()
        self.warm_up_routing()

    def warm_up_answers(self) -> None:
        """What any answer needs: in-process models (launched first) and litellm (blocking)."""
        self.client.launch()
        self.client.warm_up()

    def warm_up_routing(self) -> None:
        """What a decision needs: the classifier, its embedder, the share threshold, language
        detection (blocking; ``serve`` runs it on the scoring thread once it answers)."""
        if isinstance(self.scorer, EmbeddingScorer):
            self.scorer.warm_up()
        self.routing.warm_up()

    async def drain(self) -> None:
        """Wait for log writes and shadow samples still in flight (call before shutdown)."""
        await self.writer.drain()

    async def close(self) -> None:
        """Drain log writes, release the shared state's connections and stop the log
        writer's thread (litellm owns the tiers' HTTP clients)."""
        await self.drain()
        await self.state.close()
        self.writer.close()

    # -- who is calling --------------------------------------------------------------------
    def identify(self, headers: Mapping[str, str] | None) -> Identity:
        """The caller's identity in ``headers``, parsed once (see :class:`Identity`)."""
        return Identity.parse(headers, self.callers)

    def authorize(self, who: Identity | Mapping[str, str] | None) -> None:
        """Check the client's API key when ``server.require_api_key`` is on: an enabled
        ``api_keys`` entry or a key from the environment variable ``server.api_keys_env``.

        Args:
            who: the request's identity, or its headers.

        Raises:
            AuthenticationError: no key, or an unknown one (401; the key is never echoed).
        """
        if not self.policy.server.require_api_key:
            return
        identity = who if isinstance(who, Identity) else self.identify(who)
        if not identity.presented:
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.", code="missing_api_key")
        if not self.callers.admits_hash(identity.key_sha256, self._env_key_hashes):
            raise AuthenticationError("Incorrect API key provided. Use a key this router's policy lists.")

    def caller_name(self, headers: Mapping[str, str] | None) -> str | None:
        """Name of the ``api_keys`` entry whose key is in ``headers['authorization']``, or None."""
        return caller.name if (caller := self.identify(headers).caller) else None

    def new_record(self, request_id: str, started: float) -> RequestRecord:
        """An empty log record for a request that arrived at ``started`` (Unix s), stamped
        with this router's policy hash."""
        return RequestRecord(id=request_id, ts=started, policy_hash=self.policy_hash)

    # -- routing -----------------------------------------------------------------------------
    async def route(self, request: ChatRequest, headers: Mapping[str, str] | None = None,
                    tenant: str | None = None, identity: Identity | None = None) -> Routing:
        """Identify the caller (unless ``identity`` is given), evaluate the rules, score when
        the classifier decides, and choose the first tier. Calls no model.

        Args:
            headers: the HTTP request headers (``Authorization`` identifies the caller).
            tenant: whose budget shifts the threshold as it burns, when budgets are on.

        Raises:
            ModelNotFoundError, TierForbiddenError, TierUnavailableError: see
            :func:`router.routing.decide.decide`.
        """
        identity = identity or self.identify(headers)
        return await self.routing.route(request, identity.caller, headers, tenant, identity.tenant.tenant)

    async def decide(self, request: ChatRequest, headers: Mapping[str, str] | None = None) -> Decision:
        """The decision of :meth:`route`."""
        return (await self.route(request, headers)).decision

    # -- answering -----------------------------------------------------------------------------
    def _exchange(self, request: ChatRequest, record: RequestRecord, headers: Mapping[str, str] | None,
                  tenant: Tenant | None, identity: Identity | None, stream: bool) -> Exchange:
        """The request's context; without ``identity`` the caller is identified from
        ``headers`` and the tenant is ``tenant`` (anonymous when None)."""
        if identity is None:
            identity = replace(self.identify(headers), tenant=tenant or Tenant())
        elif tenant is not None:
            identity = replace(identity, tenant=tenant)
        record.requested_model, record.stream, record.tenant = request.model, stream, identity.tenant.tenant
        record.api_key_name = identity.caller.name if identity.caller else None
        return Exchange(request, record, headers, identity, stream)

    async def _prepare(self, ex: Exchange) -> tuple[str, Any] | None:
        """Rate limit, cache lookup and routing. Returns (tier, result) of a cache hit, else
        None (``ex`` is routed)."""
        if self.limiter is not None:
            try:
                await self.limiter.admit(ex.identity.tenant.tenant)
            except RateLimitError:
                metrics.rate_limited()
                raise
        needs_score(ex.request.model, self.policy)  # an unknown model fails before any cache work
        if self.cache is not None:
            hit, ex.probe = await self.cache.lookup(ex.request, ex.identity.tenant)
            if hit is not None:
                return hit.tier, hit_result(hit, ex.record)
        routing = await _route_beside_shadow(self, ex)
        ex.apply(routing, self.policy.cloud.available, self.policy.rules, self.policy.log.keep_for_learning)
        return None

    async def complete(self, request: ChatRequest, record: RequestRecord,
                       headers: Mapping[str, str] | None = None, tenant: Tenant | None = None,
                       log_later: bool = False, identity: Identity | None = None) -> RoutedAnswer:
        """Answer a non-streaming request; logs it (also on error, then re-raises).

        Order: rate limit -> cache -> rules, score and decide -> call (budget) -> check/escalate.

        Args:
            headers: the HTTP request headers, for caller identification and rules.
            tenant: who the request is for (budgets, rate limits, cache scope); from
                ``identity`` (or the headers) when None.
            log_later: return as soon as the answer is ready; the log record (pricing, write,
                budget settlement) is written on a task, :attr:`RoutedAnswer.logged`, that
                :meth:`drain` also waits for. The server sends the answer, then awaits it.
            identity: the caller's identity when the edge parsed it already.

        Raises:
            RouterError: any client-visible failure (already logged).
        """
        ex = self._exchange(request, record, headers, tenant, identity, stream=False)
        async with self._failures_logged(ex):
            hit = await self._prepare(ex)
            tier, result = hit if hit is not None else await answer(self, ex)
        ex.finish(tier, self.policy.routing.local_tier, result.prompt_tokens, result.completion_tokens)
        if (note := format_note(request, result, record.reason)) is not None:
            ex.note(note)
        body = completion_body(request, record, self.policy.tiers[tier].model, result)
        await self.keep(ex, tier, body)
        headers_out = router_headers(record)
        if log_later:
            return RoutedAnswer(body, headers_out, self.log_soon(ex, result.text))
        await self._log(ex, result.text)
        return RoutedAnswer(body, headers_out)

    async def stream(self, request: ChatRequest, record: RequestRecord,
                     headers: Mapping[str, str] | None = None, tenant: Tenant | None = None,
                     identity: Identity | None = None) -> RoutedStream:
        """Answer a streaming request (see :mod:`router.pipeline.stream`). Errors before the
        first byte fall back or raise (and are logged); cache hits are replayed.

        Raises:
            RouterError: a failure before the first byte (already logged).
        """
        ex = self._exchange(request, record, headers, tenant, identity, stream=True)
        async with self._failures_logged(ex):
            hit = await self._prepare(ex)
            if hit is not None:
                return streaming.replay(self, ex, *hit)
            return await streaming.stream(self, ex)

    async def keep(self, ex: Exchange, tier: str, body: dict[str, Any]) -> None:
        """Cache a fresh, whole, non-degraded answer."""
        if self.cache is not None and ex.probe is not None and not ex.record.cache and not ex.record.degraded:
            await self.cache.store(ex.probe, tier, body)

    # -- logging -------------------------------------------------------------------------
    def log_args(self, ex: Exchange, answer_text: str | None) -> tuple:
        """:meth:`LogWriter.log`'s arguments for ``ex`` (its reservations handed over once)."""
        add_answers(ex.record.learning, answer_text, ex.escalated_local_text)  # only rows kept with text
        reservations, ex.reservations = ex.reservations, []
        return ex.record, ex.request, answer_text, reservations, ex.escalated_local_text

    async def _log(self, ex: Exchange, answer_text: str | None) -> None:
        await self.writer.log(*self.log_args(ex, answer_text))

    def log_soon(self, ex: Exchange, answer_text: str | None) -> asyncio.Task | None:
        """Log the request on a task of its own (see :meth:`LogWriter.log_soon`)."""
        return self.writer.log_soon(*self.log_args(ex, answer_text))

    @asynccontextmanager
    async def _failures_logged(self, ex: Exchange) -> AsyncIterator[None]:
        """Log a request whose answering fails and raise the client-visible error (see
        :meth:`_failed`); a request the server cancels (its client went away) is logged
        ``cancelled``."""
        try:
            yield
        except asyncio.CancelledError:
            log_cancelled(self, ex)  # with the tokens its calls in flight spent
            raise
        except Exception as err:
            failure = await self._failed(ex, err)
            if failure is err:
                raise
            raise failure from err

    async def _failed(self, ex: Exchange, err: Exception) -> RouterError:
        """Log a failed request; return the client-visible error (unexpected errors become a
        500 ``internal_error`` that names the request id, never a bare 500)."""
        if not isinstance(err, RouterError):
            log.exception("request %s failed unexpectedly", ex.record.id)
            err = RouterError(f"Internal error ({type(err).__name__}); logged as request {ex.record.id}.")
        reservations, ex.reservations = ex.reservations, []
        await self.log_failure(ex.record, err, ex.t0, reservations)
        return err

    async def log_failure(self, record: RequestRecord, err: RouterError, t0: float | None = None,
                          reservations: Iterable[Reservation] = ()) -> None:
        """Log a request that ended in ``err`` (its calls so far included; its budget
        reservations settled); ``t0`` (``perf_counter``) gives its latency."""
        record.status, record.http_status = "error", err.status_code
        record.error = f"{err.code}: {err.message}"[:500]
        if t0 is not None:
            record.latency_ms = (time.perf_counter() - t0) * 1000
        await self.writer.log(record, None, None, reservations)
