"""One request's context: what the stages read and write while it is answered.

An :class:`Exchange` is made when a chat request arrives and travels through every stage
(route, attempts, fallback, cascade, response, ledger) instead of long parameter lists and
request-id-keyed dicts on the long-lived router: the parsed request, its log record, who is
calling, the routing decision, the budget reservations its cloud calls hold, the local
answer of an escalated request (an escalation sample for the shadow stage), the cache
probe and the request's session turn (:attr:`Exchange.session`, from the routing stage). :meth:`Exchange.note` is the only writer of the record's reason after the decision.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..policy import Rule
from ..providers.spend import Spend
from ..request.identity import Identity
from ..request.parse import ChatRequest
from ..learning.keep import kept_inputs
from ..routing.rules import logged_facts
from ..store.records import CallRecord, RequestRecord

if TYPE_CHECKING:  # imported for annotations only (no import cycle at run time)
    from ..guards.budget import Reservation
    from ..guards.cache import CacheProbe
    from ..routing.decide import Decision
    from ..routing.route import Routing
    from ..routing.session_keeper import SessionTurn

__all__ = ["Exchange"]


@dataclass(eq=False)
class Exchange:
    """The context of one chat request, from arrival to its log row.

    Attributes:
        request: the parsed request.
        record: its log record (calls appended as they are made).
        headers: the HTTP request headers (rules read them).
        identity: who is calling (tenant, ``api_keys`` entry), parsed once.
        stream: the client asked for SSE.
        t0: ``time.perf_counter()`` at the start of the pipeline (latencies, ms).
        routing: the routing stage's result, once routed (None for cache hits).
        probe: the response cache's probe (where a fresh answer is stored), or None.
        reservations: budget reservations of this request's cloud calls, settled when it
            is logged.
        escalated_local_text: the local answer of an escalated request (the shadow stage
            keeps it as an escalation sample), or None.
        spends: each call's :class:`Spend` (the tokens an in-process generation reports,
            read when the request is cancelled before the call returned).
    """

    request: ChatRequest
    record: RequestRecord
    headers: Mapping[str, str] | None
    identity: Identity
    stream: bool = False
    t0: float = field(default_factory=time.perf_counter)
    routing: "Routing | None" = None
    probe: "CacheProbe | None" = None
    reservations: list["Reservation"] = field(default_factory=list)
    escalated_local_text: str | None = None
    spends: list[tuple[CallRecord, Spend]] = field(default_factory=list)
    _messages: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def decision(self) -> "Decision":
        """The routing decision (only after the routing stage ran)."""
        assert self.routing is not None, "the request has not been routed"
        return self.routing.decision

    @property
    def session(self) -> "SessionTurn | None":
        """The turn of the request's session, or None (no session, or not routed: a cache hit)."""
        return self.routing.session if self.routing is not None else None

    def messages(self) -> list[dict[str, Any]]:
        """The request's turns as OpenAI message dicts, converted once; each call gets its own
        shallow copies (a provider may annotate what it is given)."""
        if self._messages is None:
            self._messages = self.request.messages_as_dicts()
        return [dict(m) for m in self._messages]

    def apply(self, routing: "Routing", cloud_available: bool, rules: Sequence[Rule] = (), keep: str = "none") -> None:
        """Keep the routing decision on the record, with the decision inputs ``replay``
        re-decides from (needs, prompt size, cloud availability, the completion cap, the
        facts the policy's ``rules`` read), the session's turn (id, previous tier, the
        turn's own tier) and, under ``keep`` (``log.keep_for_learning``), the scorer's inputs
        (:func:`router.learning.keep.kept_inputs`)."""
        self.routing = routing
        decision, record, request = routing.decision, self.record, self.request
        record.routed_tier, record.score = decision.tier, decision.score
        record.threshold = decision.threshold
        scored = routing.scored
        if scored is not None and keep != "none":
            record.learning = kept_inputs(keep, scored.embedding, scored.features, scored.embedder,
                                          routing.scored_text)
        record.reason, record.degraded = decision.reason, decision.degraded
        record.rules = ",".join(decision.rules) or None
        record.api_key_name = routing.caller.name if routing.caller else None
        if request.ignored_fields:
            self.note(f"ignored client fields: {', '.join(request.ignored_fields)}")
        record.needs = ",".join(sorted(routing.needs))
        record.prompt_chars, record.prompt_messages = routing.prompt_chars, routing.prompt_messages
        record.cloud_available = cloud_available
        if routing.facts is not None:
            record.rule_facts = logged_facts(rules, routing.facts)
        cap = request.params.get("max_tokens") or request.params.get("max_completion_tokens")
        record.max_tokens = int(cap) if isinstance(cap, (int, float)) else None
        if routing.session is not None:
            record.session_id, record.session_per_turn_tier = routing.session.id, routing.session.per_turn_tier
            record.session_prev_tier = routing.session.previous.tier if routing.session.previous else None

    def finish(self, tier: str, local_tier: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Record the answering tier, the answer's tokens and the latency (ms since ``t0``);
        the status becomes ok unless the stream already ended ``partial``/``cancelled``."""
        record = self.record
        record.tier = tier
        record.local = tier == local_tier
        record.prompt_tokens, record.completion_tokens = prompt_tokens, completion_tokens
        record.latency_ms = (time.perf_counter() - self.t0) * 1000
        if record.status not in ("partial", "cancelled"):
            record.status, record.http_status = "ok", 200

    def spend_for(self, call: CallRecord) -> Spend:
        """A new :class:`Spend` for ``call`` (one per attempt), kept with it."""
        spend = Spend()
        self.spends.append((call, spend))
        return spend

    def in_flight(self) -> list[tuple[CallRecord, Spend]]:
        """The calls that have not returned (no latency yet), with their spends."""
        return [(call, spend) for call, spend in self.spends if call.status == "ok" and not call.latency_ms]

    def cancel(self, local_tier: str) -> None:
        """The client disconnected before its answer was ready: status ``cancelled``, the
        calls still in flight marked cancelled, the tokens the finished calls reported."""
        record = self.record
        record.status, record.error, record.http_status = "cancelled", "client disconnected", 499
        for call in record.calls:
            if call.status == "ok" and not call.latency_ms:  # still in flight
                call.status, call.error = "cancelled", "client disconnected"
                call.latency_ms = (time.perf_counter() - self.t0) * 1000
        tier = record.calls[-1].tier if record.calls else (record.routed_tier or local_tier)
        self.finish(tier, local_tier, sum(c.prompt_tokens or 0 for c in record.calls),
                    sum(c.completion_tokens or 0 for c in record.calls))

    def note(self, text: str) -> None:
        """Append ``text`` to the record's reason (``x-router-reason``), ``; `` separated."""
        self.record.reason += f"; {text}"
