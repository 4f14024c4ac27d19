"""The fallback layer: what happens when a tier call fails or its budget refuses it.

One place for the three situations the answer and stream paths share:

- the first call (or stream opening) failed before any byte reached the client:
  :func:`recover` calls the fallback tier (cloud -> local with ``on_cloud_unavailable:
  local``; local -> cloud when it is available), or raises the client-visible error;
- a budget refused a cloud call: :func:`refuse` applies ``budgets.on_exhausted`` (the local
  tier answers, degraded, or a 429);
- either way the fallback tier must be able to serve the request: a tier the capability
  filters (:func:`router.routing.capabilities.unmet_needs`: images, tools, context window)
  rule out is never called; the client gets the failure, saying why nothing answered instead;
- an escalation failed: :func:`escalation_failed` keeps the local answer and says why.

It catches only :class:`TierCallError` and :class:`BudgetRefused`, the errors of the
attempts layer below it (:mod:`router.providers.attempts`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..errors import BudgetExceededError, InvalidRequestError, UpstreamError, upstream_error_for
from ..guards.reserve import BudgetRefused
from ..ledger import metrics
from ..policy import Policy
from ..providers.tier_client import CallResult, TierCallError
from ..routing.capabilities import unmet_needs, unmet_text
from ..routing.decide import AUTO, Decision
from .exchange import Exchange

__all__ = ["fallback_tier", "unserved", "refuse", "recover", "escalation_failed"]

Call = Callable[[Exchange, str, str], Awaitable[CallResult]]
"""``(exchange, tier, purpose) -> result``: one call of a tier with the request's turns."""


def fallback_tier(policy: Policy, tier: str, decision: Decision) -> str | None:
    """The tier that answers when ``tier`` failed, or None (pure): cloud -> local with
    ``on_cloud_unavailable: local``, local -> cloud when it is available; never a forbidden one."""
    routing = policy.routing
    if tier == routing.cloud_tier and routing.on_cloud_unavailable == "local":
        alt = routing.local_tier
    elif tier == routing.local_tier and policy.cloud.available:
        alt = routing.cloud_tier
    else:
        return None
    return None if alt in decision.forbidden else alt


def refuse(ex: Exchange, refused: BudgetRefused, policy: Policy) -> None:
    """Apply ``budgets.on_exhausted`` to a refused cloud call: note it (the local tier
    answers, ``x-router-degraded``) or raise the 429.

    Raises:
        BudgetExceededError: ``on_exhausted`` is ``reject``.
    """
    action = policy.budgets.on_exhausted
    metrics.budget_rejection(action)
    if action == "reject":
        raise BudgetExceededError(
            f"The cloud budget of this API key refused the call: {refused}. budgets.on_exhausted is 'reject'."
        ) from refused
    ex.record.degraded = True
    ex.note(f"{refused}, local tier answers")


def escalation_failed(ex: Exchange, err: Exception, policy: Policy) -> None:
    """An escalation call failed or was refused: the local answer is kept (noted on ``ex``).

    Raises:
        BudgetExceededError: the budget refused it and ``on_exhausted`` is ``reject``.
    """
    if isinstance(err, BudgetRefused):
        refuse(ex, err, policy)
        return
    ex.record.degraded = True
    ex.note(f"escalation failed ({err.status}), kept local answer")


async def _fallback_call(ex: Exchange, tier: str, policy: Policy, call: Call, purpose: str = "fallback",
                         after: str | None = None) -> CallResult:
    """The fallback tier's call; its failure is the client's error, whose message adds
    ``after`` (what made it the fallback, e.g. ``tier 'cloud' failed (429)``): the client may
    have named the first tier and would otherwise read only of a tier it never asked for."""
    try:
        return await call(ex, tier, purpose)
    except TierCallError as err:
        message = f"{err} (the fallback, after {after})" if after else str(err)
        if err.client_fault:
            raise InvalidRequestError(message, code="upstream_rejected") from err
        raise upstream_error_for(err.status, message, err.retry_after_s) from err
    except BudgetRefused as refused:
        if policy.budgets.on_exhausted == "reject":
            refuse(ex, refused, policy)
        raise UpstreamError(f"Tier '{tier}' was needed as a fallback but its budget refused the call: {refused}.") from refused


def unserved(ex: Exchange, alt: str | None, policy: Policy) -> list[str]:
    """What the fallback tier ``alt`` cannot do for ``ex``'s request (pure; empty when it can
    serve it, or when there is no ``alt``): the same filters that chose the first tier."""
    if alt is None or ex.routing is None:
        return []
    return unmet_needs(policy.tiers[alt], ex.routing.features, ex.record.max_tokens)


def _no_capable_fallback(ex: Exchange, alt: str, missing: list[str], what: str) -> str:
    """Note on ``ex`` that ``alt`` cannot stand in after ``what`` happened (``missing``: what
    it lacks); the sentence the client's error adds."""
    ex.note(f"{what}; fallback {alt} {unmet_text(missing)}, not called")
    return f"The fallback tier '{alt}' cannot serve this request ({unmet_text(missing)})."


async def recover(ex: Exchange, tier: str, err: Exception, policy: Policy, call: Call) -> tuple[str, CallResult]:
    """Answer after the first call to ``tier`` failed with ``err`` before any byte was sent.

    Returns:
        (tier that answered, its result).

    Raises:
        RouterError: the client-visible error (400 ``upstream_rejected`` for a request the
            provider refused; 429 when the budget refuses with ``reject``, or with ``local``
            when the local tier cannot serve the request; the upstream's status when no
            fallback tier exists, the failure allows none (``err.fallback`` False: a full
            local queue under ``on_queue_full: reject``), the fallback tier cannot serve the
            request (images, tools, context window) or it failed too).
    """
    if isinstance(err, BudgetRefused):
        local = policy.routing.local_tier
        missing = unserved(ex, local, policy)
        if missing:
            metrics.budget_rejection("reject")
            why = _no_capable_fallback(ex, local, missing, str(err))
            raise BudgetExceededError(f"The cloud budget of this API key refused the call: {err}. {why}") from err
        refuse(ex, err, policy)
        return local, await _fallback_call(ex, local, policy, call)
    if not isinstance(err, TierCallError):
        raise err
    # A routed request the local tier rejects as malformed (a strict server's shape rules)
    # may still suit the cloud tier: escalate it instead of surfacing the 400.
    routed_local = ex.decision.model == AUTO and tier == policy.routing.local_tier
    alt = fallback_tier(policy, tier, ex.decision) if err.fallback else None  # a full local queue may refuse it
    missing = unserved(ex, alt, policy)
    if err.client_fault and (not routed_local or alt is None or missing):
        raise InvalidRequestError(str(err), code="upstream_rejected") from err
    if alt is None:
        raise upstream_error_for(err.status, str(err), err.retry_after_s) from err
    if missing:  # e.g. the cloud is down and the request has images or tools the local tier cannot take
        why = _no_capable_fallback(ex, alt, missing, f"{tier} failed ({err.status})")
        raise upstream_error_for(err.status, f"{err}. {why}", err.retry_after_s) from err
    if err.client_fault:
        ex.record.escalated = True
        ex.note(f"{tier} rejected the request ({err.status}), escalated to {alt}")
        return alt, await _fallback_call(ex, alt, policy, call, "escalation",
                                         after=f"tier '{tier}' rejected the request ({err.status})")
    ex.note(f"{tier} failed ({err.status}), fell back to {alt}")
    ex.record.degraded = ex.record.degraded or tier == policy.routing.cloud_tier
    return alt, await _fallback_call(ex, alt, policy, call, after=f"tier '{tier}' failed ({err.status})")

