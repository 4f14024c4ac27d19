"""Response cache: exact (same request fingerprint) and optional semantic (a last user turn
whose MiniLM embedding is close to a cached one), both scoped per tenant.

Pure parts: :func:`cache_plan` (may this request read or write the cache?),
:func:`fingerprint` and :func:`semantic_scope` (what identifies an answer). The
:class:`ResponseCache` keeps entries on a :class:`~router.state.base.SharedState`; when
that is unreachable the cache pauses (every lookup misses, nothing is stored) and
requests are answered as usual.

Fingerprint: SHA-256 of canonical JSON (sorted keys, no spaces) of the tenant, the
requested model (``auto`` or a tier), the policy's tier -> litellm model map, every turn,
and every forwarded generation parameter (``temperature``, ``max_tokens``, ``tools``...).
The semantic scope is the same without the last user turn's text; within a scope the
closest cached turn by cosine similarity answers if it reaches ``min_similarity``. Plain
Redis has no vector index, so a lookup reads the scope's vectors (at most
``max_entries``, 1.5 KB each) and compares them here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..policy import CacheConfig, Policy
from ..request.parse import ChatRequest, message_text
from ..state.base import SharedState, StateUnavailable
from ..request.tenant import Tenant

__all__ = ["CachePlan", "CacheHit", "CacheProbe", "cache_plan", "fingerprint", "semantic_scope", "ResponseCache",
           "response_cache"]

log = logging.getLogger(__name__)

OPENAI_DEFAULT_TEMPERATURE = 1.0  # what OpenAI uses when a request sets none


@dataclass(frozen=True, slots=True)
class CachePlan:
    """Whether a request may be answered from the cache (``read``) and its answer stored
    (``write``); ``reason`` says why not."""

    read: bool
    write: bool
    reason: str = ""


def cache_plan(request: ChatRequest, tenant: Tenant, config: CacheConfig) -> CachePlan:
    """Decide cache use for one request.

    Rules, in order: cache disabled -> neither; ``Cache-Control: no-store`` -> neither;
    temperature above 0 (absent counts as OpenAI's default 1.0) and not
    ``allow_nonzero_temperature`` -> neither; ``Cache-Control: no-cache`` -> write only;
    else both.
    """
    if not config.enabled:
        return CachePlan(False, False, "cache disabled")
    if tenant.no_store:
        return CachePlan(False, False, "no-store")
    temperature = request.params.get("temperature", OPENAI_DEFAULT_TEMPERATURE)
    if not isinstance(temperature, (int, float)) or (temperature > 0 and not config.allow_nonzero_temperature):
        return CachePlan(False, False, f"temperature {temperature} > 0")
    if tenant.no_cache:
        return CachePlan(False, True, "no-cache")
    return CachePlan(True, True)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(request: ChatRequest, tenant: str, tier_models: dict[str, str]) -> str:
    """Hex SHA-256 identifying an exact answer (see the module docstring)."""
    return _digest({"v": 1, "tenant": tenant, "model": request.model, "tiers": tier_models,
                    "messages": request.messages_as_dicts(), "params": request.params})


def semantic_scope(request: ChatRequest, tenant: str, tier_models: dict[str, str]) -> tuple[str, str]:
    """(scope hex digest, text of the asking turn: the last user turn, or without one the
    turn of :func:`router.request.parse.asking_turn`): everything but that text identifies the scope."""
    last = request.asking_index()
    turns = request.messages_as_dicts()
    turns[last] = {"role": request.messages[last].role, "content": None}
    scope = _digest({"v": 1, "tenant": tenant, "model": request.model, "tiers": tier_models,
                     "messages": turns, "params": request.params})
    return scope, message_text(request.messages[last])


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached answer: ``kind`` (``exact`` or ``semantic``), the ``tier`` that produced it,
    the OpenAI ``body``, and for semantic hits the cosine ``similarity``."""

    kind: str
    tier: str
    body: dict[str, Any]
    similarity: float | None = None


@dataclass(slots=True)
class CacheProbe:
    """What a lookup computed, reused to store the fresh answer: plan, exact key,
    semantic scope and the last user turn's embedding (float32, unit norm)."""

    plan: CachePlan
    key: str | None = None
    scope: str | None = None
    vector: np.ndarray | None = None


class ResponseCache:
    """Exact and semantic answer cache on a :class:`SharedState`.

    Args:
        state: where entries live.
        config: the policy's ``cache``.
        tier_models: tier name -> litellm model string (part of every key).
        embed: text -> unit-norm float32 vector (the MiniLM embedder); needed only when
            the semantic cache is on. Blocking; called off the event loop.
    """

    def __init__(self, state: SharedState, config: CacheConfig, tier_models: dict[str, str],
                 embed: Callable[[str], np.ndarray] | None = None) -> None:
        self.state = state
        self.config = config
        self.tier_models = dict(tier_models)
        self.embed = embed
        if config.semantic.enabled and embed is None:
            raise ValueError("the semantic cache needs an embedder")

    async def lookup(self, request: ChatRequest, tenant: Tenant) -> tuple[CacheHit | None, CacheProbe]:
        """Find a cached answer for ``request``. Never raises for state trouble (a miss)."""
        probe = CacheProbe(cache_plan(request, tenant, self.config))
        if not (probe.plan.read or probe.plan.write):
            return None, probe
        probe.key = "cache:" + fingerprint(request, tenant.tenant, self.tier_models)
        if self.config.semantic.enabled:
            probe.scope, text = semantic_scope(request, tenant.tenant, self.tier_models)
            probe.vector = np.asarray(await asyncio.to_thread(self.embed, text), dtype=np.float32).reshape(-1)
        if not probe.plan.read:
            return None, probe
        try:
            raw = await self.state.get(probe.key)
            if raw is not None:
                entry = json.loads(raw)
                return CacheHit("exact", entry["tier"], entry["body"]), probe
            if probe.scope is not None:
                return await self._nearest(probe), probe
        except StateUnavailable as err:
            log.debug("cache lookup skipped: %s", err)
        return None, probe

    async def _nearest(self, probe: CacheProbe) -> CacheHit | None:
        entries = await self.state.vectors("sem:" + probe.scope)
        if not entries:
            return None
        ids = [e for e, _ in entries]
        matrix = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in entries])
        sims = matrix @ probe.vector
        for i in np.argsort(-sims):
            if sims[i] < self.config.semantic.min_similarity:
                break
            raw = await self.state.get(f"semans:{probe.scope}:{ids[i]}")
            if raw is not None:  # else expired; try the next closest
                entry = json.loads(raw)
                return CacheHit("semantic", entry["tier"], entry["body"], float(sims[i]))
        return None

    async def store(self, probe: CacheProbe, tier: str, body: dict[str, Any]) -> None:
        """Keep a fresh answer for later identical (or close) requests. Never raises."""
        if not probe.plan.write or probe.key is None:
            return
        value = json.dumps({"tier": tier, "body": body}, separators=(",", ":")).encode("utf-8")
        try:
            await self.state.set(probe.key, value, self.config.ttl_s)
            if probe.scope is not None and probe.vector is not None:
                entry = f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:8]}"
                await self.state.set(f"semans:{probe.scope}:{entry}", value, self.config.ttl_s)
                await self.state.add_vector("sem:" + probe.scope, entry, probe.vector.tobytes(),
                                            self.config.ttl_s, self.config.semantic.max_entries)
        except StateUnavailable as err:
            log.debug("answer not cached: %s", err)


def response_cache(policy: Policy, state: SharedState, scorer: Any = None) -> ResponseCache:
    """The policy's response cache on ``state``; the semantic cache embeds with the scorer's
    embedder when that computes MiniLM vectors (else a MiniLM embedder of its own, loaded on
    first use: :func:`router.scoring.embedders.similarity_embedder`)."""
    embed = None
    if policy.cache.semantic.enabled:
        from ..scoring.embedders import similarity_embedder

        embedder = similarity_embedder(scorer)
        if embedder is None:
            from ..scoring.embedder import Embedder

            embedder = Embedder()
        embed = lambda text: embedder.encode([text])[0]  # noqa: E731
    models = {name: t.model for name, t in policy.tiers.items()}
    return ResponseCache(state, policy.cache, models, embed)
