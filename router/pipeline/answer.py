"""The answer layer: call the decided tier, check a local answer, escalate it.

Layers, each catching only the errors of the one below it: :func:`answer` (the cascade's
check and the escalation) -> :func:`router.pipeline.fallback.recover` (a failed or refused
first call) -> :class:`router.providers.attempts.Attempts` (retries, call records) -> the
tier client. The streaming path (:mod:`router.pipeline.stream`) runs the same layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..cascade.cascade import checks, keep_signals
from ..cascade.measures import CheckCall
from ..cascade.signals import tool_choice_error
from ..cascade.verdict import answer_signals
from ..errors import UpstreamError
from ..guards.reserve import BudgetRefused
from ..policy import Policy
from ..providers.tier_client import CallResult, TierCallError
from .exchange import Exchange
from .fallback import escalation_failed, recover
from .format_escalation import escalate_format

if TYPE_CHECKING:
    from .router import Router

__all__ = ["answer", "call_tier", "check_call_for", "params_for"]


def params_for(policy: Policy, ex: Exchange, tier: str) -> dict[str, Any]:
    """The request's parameters for ``tier`` (the tier client leaves out what an in-process
    tier is not given: :data:`router.providers.local_provider.IN_PROCESS_UNSENT`); a checked
    local answer also asks for log-probabilities with two alternatives per token (the
    margins); the response layer strips what the client did not ask for."""
    params = dict(ex.request.params)
    if checks(policy, ex.decision, tier):
        params["logprobs"] = True
        params["top_logprobs"] = max(int(params.get("top_logprobs") or 0), 2)
    return params


async def call_tier(router: "Router", ex: Exchange, tier: str, purpose: str) -> CallResult:
    """One call of ``tier`` with the request's turns (retries included).

    Raises:
        TierCallError, BudgetRefused: from the attempts layer.
    """
    return await router.attempts.call(ex, tier, purpose, params_for(router.policy, ex, tier))


def check_call_for(router: "Router", ex: Exchange) -> CheckCall:
    """The cascade's check calls for this request: the local tier, logged with the measure's
    purpose; a failure (after retries) is noted in the reason and gives None."""
    local = router.policy.routing.local_tier

    async def check_call(purpose: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> CallResult | None:
        try:
            return await router.attempts.call(ex, local, purpose, dict(params), messages)
        except TierCallError as err:
            ex.note(f"{purpose} call failed ({err.status})")
            return None

    return check_call


async def answer(router: "Router", ex: Exchange) -> tuple[str, CallResult]:
    """Call the decided tier, fall back on failure, check a local answer and escalate.

    Returns:
        (tier that answered, its result).

    Raises:
        RouterError: the client-visible failure (see :func:`router.pipeline.fallback.recover`);
            502 ``tool_choice_ignored`` when the answer that would be returned ignores the
            request's forced or ``required`` ``tool_choice`` (no tier could answer as asked).
    """
    tier, result = await _answer(router, ex)
    tier, result = await escalate_format(router, ex, tier, result, call_tier)  # prose for a JSON format
    problem = tool_choice_error(result.tool_calls, ex.request.params.get("tool_choice"))
    if problem:
        raise UpstreamError(f"Tier '{tier}' answered, but its {problem} and no other tier could answer "
                            "as asked.", code="tool_choice_ignored")
    return tier, result


async def _answer(router: "Router", ex: Exchange) -> tuple[str, CallResult]:
    policy = router.policy
    tier = ex.decision.tier
    try:
        result = await call_tier(router, ex, tier, "primary")
    except (BudgetRefused, TierCallError) as err:
        return await recover(ex, tier, err, policy, lambda e, t, p: call_tier(router, e, t, p))

    if tier == policy.routing.local_tier:  # logged even when unchecked: replay re-checks it
        answered = ex.record.calls[-1]
        signals = answer_signals(result.text, result.token_logprobs, result.finish_reason,
                                 ex.request.params.get("response_format"), result.top_logprobs,
                                 tool_calls=result.tool_calls, tool_choice=ex.request.params.get("tool_choice"))
        keep_signals(answered, signals)
    if checks(policy, ex.decision, tier):
        verdict = await router.cascade.verdict(ex, answered, result.text, signals, check_call_for(router, ex))
        if await router.cascade.escalation_allowed(ex, verdict):
            cloud = policy.routing.cloud_tier
            try:
                escalated = await call_tier(router, ex, cloud, "escalation")
            except (BudgetRefused, TierCallError) as err:
                escalation_failed(ex, err, policy)
                return tier, result
            ex.record.escalated = True
            ex.escalated_local_text = result.text
            return cloud, escalated
    return tier, result
