"""Deciding a logged request again, on the live routing stage's pure steps.

``replay`` re-decides each logged request with the same functions the router runs
(:func:`router.routing.route.constraints_on_facts` and
:func:`router.routing.route.decide_on_facts`: rules, the caller's overlay, the threshold,
:func:`router.routing.decide.decide`, the capability filter) on the facts the log holds
(requested model, score, needs, prompt size, completion cap, the caller's key name, the
rule facts of :func:`router.routing.rules.logged_facts`), with the cloud tier's
availability as it was. The escalation share cap is replayed over the log in order
(:class:`ShareCapReplay`). Pure: no model is called.
"""

from __future__ import annotations

from ..cascade.share_cap import cap_allows
from ..policy import EscalationConfig, Policy
from ..request.features import Features
from ..request.identity import CallerIndex
from ..routing.decide import Decision
from ..routing.route import constraints_on_facts, decide_on_facts
from ..routing.rules import facts_from_log
from ..store.records import RequestRecord

__all__ = ["ShareCapReplay", "decision_for", "logged_decision", "policy_as_logged"]


def policy_as_logged(policy: Policy, cloud_available: bool | None) -> Policy:
    """``policy`` with its cloud tier's availability set as it was when a request was
    decided (availability is a decision input; the replaying machine's keys are not)."""
    if cloud_available is None or policy.cloud.available == cloud_available:
        return policy
    cloud = policy.cloud
    update = {"api_key": "replay-placeholder"} if cloud_available else {"api_key": None, "api_base": None}
    tiers = {**policy.tiers, policy.routing.cloud_tier: cloud.model_copy(update=update)}
    return policy.model_copy(update={"tiers": tiers})


def logged_decision(record: RequestRecord, policy: Policy, base_threshold: float | None = None) -> Decision:
    """The decision ``policy`` makes for a logged request, through the live routing steps.

    Args:
        base_threshold: the threshold ``policy``'s ``target_cloud_share`` derives from its
            artifact card, or None when the policy sets a threshold.

    Raises:
        RouterError: the policy rejects the request (unknown model, a forbidden or
            unavailable tier, no tier able to serve it).
    """
    view = policy_as_logged(policy, record.cloud_available)
    caller = CallerIndex(view).by_name(record.api_key_name)
    needs = frozenset(n for n in (record.needs or "").split(",") if n)
    facts = facts_from_log(record.rule_facts, record.requested_model or "", needs,
                           caller.name if caller else None, caller.group if caller else None)
    constraints = constraints_on_facts(view, facts, caller, base_threshold)
    features = Features(text="", prompt_chars=record.prompt_chars,
                        approx_prompt_tokens=max(1, record.prompt_chars // 4), needs=needs)
    return decide_on_facts(view, facts.requested_model, constraints, record.score, features, record.max_tokens)


def decision_for(record: RequestRecord, policy: Policy, base_threshold: float | None = None) -> str:
    """The first tier ``policy`` chooses for a logged request (see :func:`logged_decision`).

    Raises:
        RouterError: the policy rejects the request.
    """
    return logged_decision(record, policy, base_threshold).tier


class ShareCapReplay:
    """The escalation share cap over replayed answers, in log order: the same counts the
    live router keeps in its shared state (checked answers and escalations in the last
    ``share_window_s`` seconds, one count per window length)."""

    def __init__(self) -> None:
        self._seen: dict[float, list[tuple[float, bool]]] = {}

    def _window(self, esc: EscalationConfig, ts: float) -> list[tuple[float, bool]]:
        seen = self._seen.setdefault(esc.share_window_s, [])
        seen[:] = [(t, e) for t, e in seen if t > ts - esc.share_window_s]
        return seen

    def allows(self, esc: EscalationConfig, ts: float) -> bool:
        """Whether one more escalation at ``ts`` keeps the share within ``max_share``."""
        seen = self._window(esc, ts)
        return cap_allows(len(seen), sum(e for _, e in seen), esc.max_share)

    def note(self, esc: EscalationConfig, ts: float, escalated: bool) -> None:
        """Count a checked answer at ``ts``."""
        self._window(esc, ts).append((ts, escalated))
