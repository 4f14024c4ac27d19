"""What the log holds: one :class:`RequestRecord` per client request and one
:class:`CallRecord` per model call made for it (the local attempt and the escalation of a
cascaded request are two calls)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CallRecord", "RequestRecord"]


@dataclass(slots=True)
class CallRecord:
    """One call to a tier.

    Attributes:
        request_id: the request it served.
        ts: start time, Unix seconds.
        tier, model: tier name and litellm model string.
        purpose: ``primary`` (first tier tried), ``escalation`` (after a failed check) or
            ``fallback`` (after an error or unavailable tier).
        status: ``ok`` or ``error``; ``error`` holds the message then.
        prompt_tokens, completion_tokens: as the tier reported (tokens).
        latency_ms: wall time of the call (ms).
        cost_usd: price of the call (USD); None when no price is known (flagged, never $0).
        mean_logprob: mean token log-probability of the answer (nats), when available.
    """

    request_id: str
    ts: float
    tier: str
    model: str
    purpose: str = "primary"
    status: str = "ok"
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = 0.0
    mean_logprob: float | None = None


@dataclass(slots=True)
class RequestRecord:
    """One client request, successful or not.

    Attributes:
        id: request id (also the response ``id`` suffix and ``x-request-id``).
        ts: arrival time, Unix seconds.
        requested_model: the client's ``model`` field (None when unparseable).
        routed_tier: tier the policy chose first; tier: tier whose answer was returned.
        local: True when the returned answer came from the policy's local tier.
        score: classifier P(needs cloud); None when not scored.
        reason: why (the ``x-router-reason`` text).
        escalated, degraded, stream: flags.
        status: ``ok`` or ``error``; http_status and error describe failures.
        prompt_tokens, completion_tokens: of the returned answer (tokens).
        latency_ms: request wall time (ms).
        cost_usd: sum of its calls' cost (USD); None if any call's price is unknown.
        counterfactual_usd: what it would have cost on the cloud tier (USD); None if unknown.
        policy_hash: :func:`router.policy_view.policy_hash` of the policy that routed it.
        rules: names of the routing rules that matched, comma-separated; None when none did.
        api_key_name: the caller's ``api_keys`` entry name; None for an unknown caller.
        tenant: who asked (:func:`router.tenant.tenant_id`: a key hash or ``anonymous``).
        cache: ``exact`` or ``semantic`` when answered from the response cache, else None.
        calls: the model calls made for it.
    """

    id: str
    ts: float
    requested_model: str | None = None
    routed_tier: str | None = None
    tier: str | None = None
    local: bool = False
    score: float | None = None
    reason: str = ""
    escalated: bool = False
    degraded: bool = False
    stream: bool = False
    status: str = "ok"
    http_status: int = 200
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = 0.0
    counterfactual_usd: float | None = 0.0
    policy_hash: str | None = None
    rules: str | None = None
    api_key_name: str | None = None
    tenant: str | None = None
    cache: str | None = None
    calls: list[CallRecord] = field(default_factory=list)
