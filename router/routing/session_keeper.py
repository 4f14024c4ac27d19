"""Sessions at run time: read a session's state from the shared state (memory or Redis, so
replicas agree), steer the turn's decision with :func:`router.routing.session.choose_tier`, and
write the state back once the turn is answered. The decision itself is pure
(:mod:`router.routing.session`); this module does the I/O around it.

A session's turns are expected one after another (a conversation); the state is read at
decision time and written when the request is logged, with the sliding TTL
``routing.session.ttl_s``. When the shared state is unreachable the turn is routed on its
own and the reason says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..analysis.report import answering_call
from ..ledger.cost import count_prompt_tokens
from ..policy import Policy
from ..request.parse import ChatRequest
from ..request.tenant import ANONYMOUS
from ..state import SharedState, StateUnavailable
from ..store.records import RequestRecord
from .decide import Decision
from .session import (SESSION_HEADER, SessionState, SwitchCost, next_state, prices_switch, session_id, state_key,
                      steer, switch_cost)

__all__ = ["SessionTurn", "SessionKeeper"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionTurn:
    """One turn of a session: its id, the state before it (None: a new session) and the
    tier the turn's own decision chose (``per_turn_tier``)."""

    id: str
    previous: SessionState | None
    per_turn_tier: str


class SessionKeeper:
    """Steers decisions of session turns and remembers each session's tier.

    Args:
        policy: its ``routing.session``, tier roles and prices.
        state: the shared state holding ``session:<tenant>:<hash>`` keys.
    """

    def __init__(self, policy: Policy, state: SharedState) -> None:
        self.policy = policy
        self.cfg = policy.routing.session
        self.state = state

    def _switch_cost(self, request: ChatRequest, previous: SessionState) -> SwitchCost | None:
        """:func:`router.routing.session.switch_cost` of this turn (blocking: the cloud tokenizer)."""
        prompt = count_prompt_tokens(self.policy.cloud, request.messages_as_dicts())
        return switch_cost(self.policy, prompt, previous)

    async def steer(self, decision: Decision, request: ChatRequest, headers: Mapping[str, str] | None,
                    tenant: str | None) -> tuple[Decision, SessionTurn | None]:
        """The decision for a turn of the request's session (unchanged without a session);
        ``tenant`` (the caller's, anonymous when None) scopes the session's state.

        Only classifier-routed turns (``model: auto``, scored, not degraded) are steered;
        forced tiers (model name, rule) and cache hits keep their tier but are remembered.
        """
        headers = headers or {}
        header, user = headers.get(SESSION_HEADER), request.params.get("user")
        if not (header or user):  # most requests: no session, and no per-request cost
            return decision, None
        sid = session_id(header, user, request.messages_as_dicts())
        if sid is None:
            return decision, None
        tenant = tenant or ANONYMOUS
        try:
            raw = await self.state.get(state_key(tenant, sid))
            previous = SessionState.from_json(raw) if raw else None
        except StateUnavailable:
            return replace(decision, reason=decision.reason + "; session state unreachable, routed per turn"), \
                SessionTurn(sid, None, decision.tier)
        except ValueError:
            previous = None
        turn = SessionTurn(sid, previous, decision.tier)
        cost = None
        if prices_switch(decision, previous, self.policy):
            try:
                cost = await asyncio.to_thread(self._switch_cost, request, previous)
            except Exception:  # noqa: BLE001 - no tokenizer: decide without the cache's value
                log.exception("pricing a session switch failed")
        return steer(decision, previous, self.policy, cost), turn

    async def note(self, record: RequestRecord) -> None:
        """Remember the tier that answered a session's turn (ok or partial answers from the
        local or cloud tier), with its usage, for ``ttl_s`` seconds. Never raises."""
        routing = self.policy.routing
        if (record.session_id is None or record.status not in ("ok", "partial") or record.cache
                or record.tier not in (routing.local_tier, routing.cloud_tier)):
            return
        key = state_key(record.tenant or ANONYMOUS, record.session_id)
        call = answering_call(record)
        try:
            raw = await self.state.get(key)
            previous = SessionState.from_json(raw) if raw else None
        except (StateUnavailable, ValueError):
            previous = None
        new = next_state(previous, record.tier, record.prompt_tokens, record.completion_tokens,
                         call.cached_prompt_tokens if call else 0)
        try:
            await self.state.set(key, new.to_json(), self.cfg.ttl_s)
        except StateUnavailable:
            log.warning("session %s not remembered: shared state unreachable", record.session_id)
