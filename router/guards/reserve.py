"""The budget guard of cloud calls: hold a call's worst-case cost before it is made, settle
it to the priced cost once the request is logged.

:class:`CloudReserver` turns one call's parameters into a reservation on the tenant's
:class:`router.guards.budget.Budget` (capping ``max_tokens`` when the call has no cap, so the
reservation bounds it); a spent budget raises :class:`BudgetRefused`, which the fallback
layer (:mod:`router.pipeline.fallback`) turns into ``budgets.on_exhausted``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..ledger.cost import call_cost, count_prompt_tokens
from ..policy import Policy
from ..request.tenant import ANONYMOUS
from .budget import Budget, Reservation, completion_cap, reserve_tokens

if TYPE_CHECKING:
    from ..pipeline.exchange import Exchange

__all__ = ["BudgetRefused", "CloudReserver"]


class BudgetRefused(Exception):
    """A cloud call was refused by the tenant's budget (the message says why)."""


class CloudReserver:
    """Reservations of the cloud tier's calls on the tenants' budgets.

    Args:
        policy: the policy (its cloud tier's price and ``budgets``).
        budget: the budgets in the shared state, or None when budgets are off.
    """

    def __init__(self, policy: Policy, budget: Budget | None) -> None:
        self.policy = policy
        self.budget = budget

    async def reserve(self, ex: "Exchange", tier: str, params: dict[str, Any]) -> Reservation | None:
        """Hold the worst-case cost (USD) of a call to ``tier`` on the request's tenant's budget
        (may set ``params['max_tokens']``, see :func:`router.guards.budget.completion_cap`);
        kept on ``ex.reservations``. Every tier but the local one is held (the cloud tier, and
        any other paid tier a client names); None for the local tier or with budgets off.

        Raises:
            BudgetRefused: the budget is spent (or unknown and failing closed).
        """
        if self.budget is None or tier == self.policy.routing.local_tier:
            return None  # every tier but the local one spends money: a second paid tier too
        cloud = self.policy.tiers[tier]
        cap, inject = completion_cap(params, cloud, self.policy.budgets)
        if inject:
            params["max_tokens"] = cap
        messages = ex.messages()
        try:
            counted = await asyncio.to_thread(count_prompt_tokens, cloud, messages)
        except Exception:  # no tokenizer: one token per 2 characters over-counts English
            counted = sum(len(str(m.get("content") or "")) for m in messages) // 2 + 1
        prompt_tokens, completion_tokens = reserve_tokens(counted, cap, int(params.get("n") or 1))
        usd = call_cost(cloud, prompt_tokens, completion_tokens) or 0.0
        reservation, why = await self.budget.reserve(ex.record.tenant or ANONYMOUS, usd)
        if reservation is None:
            raise BudgetRefused(why)
        ex.reservations.append(reservation)
        return reservation

    async def settle(self, reservations: Iterable[Reservation]) -> None:
        """Settle reservations to their priced calls' real cost (USD; after pricing)."""
        for reservation in reservations:
            call = reservation.call
            await self.budget.settle(reservation, None if call is None else call.cost_usd)
