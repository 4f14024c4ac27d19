"""The cascade: is a local answer checked, which measures run, does it go to the cloud tier.

The rules are pure functions of the policy, the decision and the verdict
(:func:`checks`, :func:`may_escalate`, :func:`measures_apply`, :func:`kept_because`), unit
tested without a server; :class:`Cascade` applies them to one answer: it runs the measures
the settings want through the check calls the pipeline provides, takes the pure verdict
(:func:`router.cascade.verdict.should_escalate`) and applies the escalation share cap
(:mod:`router.cascade.share_cap`, counts in the shared state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ledger import metrics
from ..policy import EscalationConfig, Policy
from ..routing.decide import Decision
from ..state import SharedState
from ..store.records import CallRecord
from .measures import CheckCall, MeasureInput, Verifiers, build_measures
from .share_cap import EscalationShare, cap_allows
from .signals import AnswerSignals
from .verdict import Verdict, p_correct, should_escalate

if TYPE_CHECKING:
    from ..pipeline.exchange import Exchange

__all__ = ["Cascade", "caps_share", "checks", "keep_signals", "kept_because", "may_escalate", "measures_apply"]


def checks(policy: Policy, decision: Decision, tier: str) -> bool:
    """True when an answer of ``tier`` to this request is checked by the cascade (the local
    tier, with escalation settings; a forced tier has none)."""
    return tier == policy.routing.local_tier and decision.escalation is not None


def may_escalate(policy: Policy, decision: Decision) -> bool:
    """True when a failed check can send the request to the cloud tier (escalation enabled
    and the cloud tier not forbidden)."""
    return (decision.escalation is not None and decision.escalation.enabled
            and policy.routing.cloud_tier not in decision.forbidden)


def measures_apply(policy: Policy, decision: Decision, verdict: Verdict, whole: bool) -> bool:
    """Whether the self-check / consistency / verifier measures run: not on a streamed
    prefix (``whole`` False), not when escalation cannot happen (disabled, cloud forbidden
    or unavailable), and not when the answer already fails on a signal they cannot change
    (a hard failure or a threshold; a combiner's verdict can change, so it does not skip)."""
    return (whole and may_escalate(policy, decision) and policy.cloud.available
            and not (verdict.escalate and verdict.p_correct is None))


def kept_because(policy: Policy, decision: Decision) -> tuple[str, bool] | None:
    """Why a failing answer is kept although its verdict escalates, before the share cap:
    (reason, degraded) when the cloud tier is forbidden or unavailable, else None."""
    cloud = policy.routing.cloud_tier
    if cloud in decision.forbidden:
        return f"cloud forbidden ({decision.forbidden[cloud]}), kept local answer", False
    if not policy.cloud.available:
        return "cloud unavailable, kept local answer", True
    return None


def caps_share(policy: Policy) -> bool:
    """True when some escalation setting of ``policy`` (base, an overlay or a rule) sets
    ``max_share`` below 1, so checked answers must be counted."""
    overrides = [o.escalation for o in policy.overlays.values()] + [r.action.escalation for r in policy.rules]
    return policy.escalation.max_share < 1.0 or any(
        o is not None and o.max_share is not None and o.max_share < 1.0 for o in overrides)


def keep_signals(call: CallRecord, signals: AnswerSignals, p: float | None = None, **extra: Any) -> None:
    """Keep an answer's signals on its call record (for the log and ``replay``)."""
    call.mean_logprob, call.empty_answer = signals.mean_logprob, signals.empty
    call.signals = {**signals.as_dict(), **({"p_correct": p} if p is not None else {}), **extra}


class Cascade:
    """Checks local answers of one policy.

    Args:
        policy: the escalation settings' base and the tiers.
        state: where the share cap counts checked and escalated answers.
        verifiers: the verifier classifiers (the ``verifier`` measure).
    """

    def __init__(self, policy: Policy, state: SharedState, verifiers: Verifiers) -> None:
        self.policy = policy
        self.state = state
        self.measures = build_measures(verifiers)
        self._share_counted = caps_share(policy)
        self._shares: dict[float, EscalationShare] = {}

    async def verdict(self, ex: "Exchange", answered: CallRecord, text: str, signals: AnswerSignals,
                      check_call: CheckCall, whole: bool = True) -> Verdict:
        """Check a local answer: the pure verdict on its signals, after the measures the
        settings ask for when :func:`measures_apply`. The signals (with ``p_correct`` when a
        combiner is set) are kept on ``answered``; the reason is noted on ``ex``."""
        decision = ex.decision
        esc = decision.escalation
        verdict = should_escalate(signals, esc, decision.score)
        if measures_apply(self.policy, decision, verdict, whole):
            measured = await self._measure(ex, text, esc, check_call)
            if measured:
                signals = signals.with_extra(**measured)
                verdict = should_escalate(signals, esc, decision.score)
        keep_signals(answered, signals, None if esc.combiner is None else p_correct(esc.combiner, signals, decision.score))
        ex.note(verdict.reason)
        return verdict

    async def _measure(self, ex: "Exchange", text: str, esc: EscalationConfig,
                       check_call: CheckCall) -> dict[str, float]:
        """The wanted measures' values; their notes go into the reason, comma-separated."""
        given = MeasureInput(text, esc, ex.messages, ex.request.params, check_call)
        out: dict[str, float] = {}
        notes: list[str] = []
        for measure in self.measures:
            if not measure.wanted(esc):
                continue
            result = await measure.measure(given)
            if result.value is not None:
                out[measure.signal] = result.value
            if result.note:
                notes.append(result.note)
        if notes:
            ex.note(", ".join(notes))
        return out

    def _share(self, esc: EscalationConfig) -> EscalationShare:
        share = self._shares.get(esc.share_window_s)
        if share is None:
            share = self._shares[esc.share_window_s] = EscalationShare(self.state, esc.share_window_s)
        return share

    async def escalation_allowed(self, ex: "Exchange", verdict: Verdict) -> bool:
        """Whether a checked local answer goes to the cloud tier: the verdict escalates, the
        cloud tier is allowed and available, and one more escalation keeps the share within
        ``max_share`` (:func:`router.cascade.share_cap.cap_allows`; when the shared state is
        unreachable the cap is not applied and the reason says so). Counts the answer for the
        cap; notes on ``ex`` why an escalation is not made."""
        decision = ex.decision
        esc = decision.escalation
        counted = self._share_counted and may_escalate(self.policy, decision)
        if not verdict.escalate:
            if counted:
                await self._share(esc).note(False)
            return False
        kept = kept_because(self.policy, decision)
        if kept is not None:
            ex.record.degraded = ex.record.degraded or kept[1]
            ex.note(kept[0])
            return False
        if counted and esc.max_share < 1.0:
            share = self._share(esc)
            counts = await share.counts()
            if counts is None:
                ex.note("escalation share unknown (shared state unreachable), cap not applied")
            elif not cap_allows(counts[0], counts[1], esc.max_share):
                metrics.escalation_capped()
                ex.note(f"escalation capped ({counts[1]} of {counts[0]} checked answers escalated in "
                        f"the last {esc.share_window_s:g}s, max_share {esc.max_share:g}), kept local answer")
                await share.note(False)
                return False
        if counted:
            await self._share(esc).note(True)
        return True
