"""Deciding a logged request again, on the live routing stage's pure steps.

``replay`` re-decides each logged request with the same functions the router runs
(:func:`router.routing.route.constraints_on_facts` and
:func:`router.routing.route.decide_on_facts`: rules, the caller's overlay, the threshold,
:func:`router.routing.decide.decide`, the capability filter) on the facts the log holds
(requested model, score, needs, prompt size in characters and turns, completion cap, the caller's key name, the
rule facts of :func:`router.routing.rules.logged_facts`), with the cloud tier's
availability as it was. The escalation share cap is replayed over the log in order
(:class:`ShareCapReplay`), and so are sessions (:class:`SessionReplay`: a turn may keep
the tier of its session's previous replayed turn). Pure: no model is called.
"""

from __future__ import annotations

from ..cascade.share_cap import cap_allows
from ..policy import EscalationConfig, Policy
from ..request.features import Features
from ..request.identity import CallerIndex
from ..routing.decide import Decision
from ..request.tenant import ANONYMOUS
from ..routing.capabilities import apply_capabilities
from ..routing.route import constraints_on_facts, first_decision
from ..routing.rules import facts_from_log
from ..routing.session import SessionState, next_state, prices_switch, steer, switch_cost
from ..store.records import RequestRecord
from .report import answering_call

__all__ = ["ShareCapReplay", "SessionReplay", "decision_for", "logged_decision", "policy_as_logged"]


def policy_as_logged(policy: Policy, cloud_available: bool | None) -> Policy:
    """``policy`` with its cloud tier's availability set as it was when a request was
    decided (availability is a decision input; the replaying machine's keys are not)."""
    if cloud_available is None or policy.cloud.available == cloud_available:
        return policy
    cloud = policy.cloud
    update = {"api_key": "replay-placeholder"} if cloud_available else {"api_key": None, "api_base": None}
    tiers = {**policy.tiers, policy.routing.cloud_tier: cloud.model_copy(update=update)}
    return policy.model_copy(update={"tiers": tiers})


def logged_decision(record: RequestRecord, policy: Policy, base_threshold: float | None = None,
                    sessions: "SessionReplay | None" = None) -> Decision:
    """The decision ``policy`` makes for a logged request, through the live routing steps.

    Args:
        base_threshold: the threshold ``policy``'s ``target_cloud_share`` derives from its
            artifact card, or None when the policy sets a threshold.
        sessions: the sessions replayed so far (a session's turn may keep its tier), or None.

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
    features = Features.sized(needs, record.prompt_chars, record.prompt_messages)
    decision, forced = first_decision(view, facts.requested_model, constraints, record.score)
    if sessions is not None:
        decision = sessions.steer(record, decision, view)
    return apply_capabilities(decision, features, view, forced, record.max_tokens)


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


class SessionReplay:
    """Sessions over replayed requests, in log order: the state the live router keeps in its
    shared store (:class:`router.routing.session.SessionState`), per tenant and session id,
    forgotten ``routing.session.ttl_s`` seconds after a session's last turn. A downgrade's
    cache value is priced on the logged cloud prompt tokens."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, SessionState]] = {}

    def _previous(self, record: RequestRecord, policy: Policy) -> SessionState | None:
        if record.session_id is None:
            return None
        seen = self._last.get((record.tenant or ANONYMOUS, record.session_id))
        if seen is None or record.ts - seen[0] > policy.routing.session.ttl_s:
            return None
        return seen[1]

    def steer(self, record: RequestRecord, decision: Decision, policy: Policy) -> Decision:
        """The decision of a logged turn under its replayed session (unchanged without one)."""
        previous = self._previous(record, policy)
        cost = None
        if previous is not None and record.cloud_prompt_tokens is not None and prices_switch(decision, previous, policy):
            cost = switch_cost(policy, record.cloud_prompt_tokens, previous)
        return steer(decision, previous, policy, cost)

    def note(self, record: RequestRecord, tier: str, policy: Policy) -> None:
        """Remember that ``tier`` answered a logged turn (as the live router does once the
        turn is answered by the local or the cloud tier)."""
        routing = policy.routing
        if record.session_id is None or record.cache or tier not in (routing.local_tier, routing.cloud_tier):
            return
        call = answering_call(record)
        self._last[(record.tenant or ANONYMOUS, record.session_id)] = (record.ts, next_state(
            self._previous(record, policy), tier, record.prompt_tokens, record.completion_tokens,
            call.cached_prompt_tokens if call else 0))
