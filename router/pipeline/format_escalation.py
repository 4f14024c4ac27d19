"""Escalation of an answer that breaks the request's ``response_format``, to a tier not tried yet.

The cascade escalates a local answer that is not valid JSON (or does not match the schema)
to the cloud tier. When the answer that would be returned still breaks the format (the
cloud tier wrote prose), a routed (``auto``) request is asked again of the next tier in
``[routing.cloud_tier] + routing.escalation_order`` that has not been called for it, is not
forbidden and is available, until one answers in the format. Only when no tier is left is
the answer returned as it is, marked ``returned anyway: <problem>`` in ``x-router-reason``
and the log (:func:`router.pipeline.response.format_note`). A forced tier (``model: cloud``)
is never replaced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..cascade.signals import format_error
from ..guards.reserve import BudgetRefused
from ..policy import Policy
from ..providers.tier_client import CallResult, TierCallError
from ..routing.decide import AUTO
from .exchange import Exchange

if TYPE_CHECKING:
    from .router import Router

__all__ = ["format_escalates", "next_format_tiers", "escalate_format"]


def format_escalates(policy: Policy, ex: Exchange) -> bool:
    """True when a broken ``response_format`` answer of this request may go to another tier
    (routed, a JSON format asked, an ``escalation_order`` set): a stream is then answered
    whole and replayed, so a replaced answer never reaches the client. Pure."""
    fmt = ex.request.params.get("response_format") or {}
    return (ex.decision.model == AUTO and fmt.get("type") in ("json_object", "json_schema")
            and bool(policy.routing.escalation_order))


def next_format_tiers(policy: Policy, ex: Exchange) -> list[str]:
    """The tiers still to ask, in order: the cloud tier, then ``routing.escalation_order``,
    without tiers already called for this request, forbidden or unavailable ones. Pure."""
    tried = {call.tier for call in ex.record.calls}
    order = dict.fromkeys([policy.routing.cloud_tier, *policy.routing.escalation_order])
    return [t for t in order if t not in tried and t not in ex.decision.forbidden
            and t in policy.tiers and policy.tiers[t].available]


async def escalate_format(router: "Router", ex: Exchange, tier: str, result: CallResult,
                          call: Callable[["Router", Exchange, str, str], Awaitable[CallResult]]
                          ) -> tuple[str, CallResult]:
    """Ask the next tiers (see the module docstring) while ``result`` breaks the request's
    ``response_format``; ``call`` is ``(router, ex, tier, purpose) -> CallResult``.

    Returns:
        (the tier whose answer is returned, its result): the first in the format, else the last.
    """
    policy, fmt = router.policy, ex.request.params.get("response_format")
    if ex.decision.model != AUTO or not fmt or result.tool_calls:
        return tier, result
    problem = format_error(result.text, fmt)
    for alt in next_format_tiers(policy, ex) if problem else ():
        try:
            answered = await call(router, ex, alt, "escalation")
        except (BudgetRefused, TierCallError) as err:
            ex.note(f"{tier}'s answer broke response_format ({problem}); {alt} could not answer "
                    f"({getattr(err, 'status', 'budget')})")
            continue
        ex.note(f"{tier}'s answer broke response_format ({problem}), escalated to {alt}")
        ex.record.escalated = True
        tier, result = alt, answered
        problem = None if result.tool_calls else format_error(result.text, fmt)
        if not problem:
            break
    return tier, result
