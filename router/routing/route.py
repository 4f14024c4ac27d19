"""The routing stage: request facts -> rules -> threshold -> score -> decide -> session -> capabilities.

:class:`RouteStage` is what ``POST /v1/route``, every chat request and ``slm-router replay``
run to choose a request's first tier. The steps that decide are pure
(:func:`router.routing.rules.evaluate_rules`, :func:`router.routing.rules.constraints_for`,
:func:`router.routing.decide.decide`, :func:`router.routing.capabilities.apply_capabilities`);
this stage gathers their inputs: language detection and token counting off the event loop
when a rule reads them, the threshold derived from ``target_cloud_share``, the budget's
threshold shift, and the classifier score (batched on the scoring thread). ``slm-router replay``
runs the same pure steps (:func:`constraints_on_facts`, :func:`decide_on_facts`) on facts
read back from the log. A turn of a session (:mod:`router.routing.session`) may then keep
the tier of the session's previous turn (:class:`router.routing.session_keeper.SessionKeeper`,
state in the shared store) before the capability filter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..ledger.cost import count_prompt_tokens
from ..policy import Policy
from ..request.features import Features, extract_features
from ..request.identity import Caller, rule_headers
from ..request.parse import ChatRequest, message_text
from ..request.tenant import ANONYMOUS
from ..scoring.card import ArtifactCard
from ..scoring.two_stage import StagedScore
from .capabilities import apply_capabilities
from .decide import Constraints, Decision, decide, needs_score
from .rules import RequestFacts, constraints_for, evaluate_rules, facts_needed
from .threshold import threshold_for_cloud_share

if TYPE_CHECKING:  # annotations only
    from .session_keeper import SessionKeeper, SessionTurn

__all__ = ["Routing", "RouteStage", "constraints_on_facts", "decide_on_facts", "first_decision"]


@dataclass(frozen=True, slots=True)
class Routing:
    """How one request is routed, before any model is called (``POST /v1/route``).

    Attributes:
        decision: the decision (tier, score, reason, rules, forbidden tiers).
        caller: the identified caller, or None.
        needs: capabilities the request needs (``vision``, ``tools``, ``json``).
        language: ISO 639-1 code of the last user turn, when a rule needed it.
        prompt_tokens: prompt tokens (cloud model's tokenizer), when a rule needed them.
        prompt_chars: characters in all turns, prompt_messages: how many turns (the
            context-window check reads both: :func:`router.request.features.approx_tokens`).
        facts: the rule facts the decision was made on (the log keeps what rules read).
        session: the turn of the request's session (id, state before it, the tier its own
            decision chose), or None without a session (:mod:`router.routing.session`).
        scored: the classifier's score with the inputs it scored (embedding, text features),
            or None when the classifier did not run; scored_text: the text it scored.
    """

    decision: Decision
    caller: Caller | None
    needs: frozenset[str]
    language: str | None = None
    prompt_tokens: int | None = None
    prompt_chars: int = 0
    facts: RequestFacts | None = None
    session: "SessionTurn | None" = None
    scored: StagedScore | None = None
    scored_text: str | None = None
    prompt_messages: int | None = None

    @property
    def features(self) -> Features:
        """The request's needs and size, as the tier filters read them (a fallback tier is
        checked with them too)."""
        return Features.sized(self.needs, self.prompt_chars, self.prompt_messages)


def constraints_on_facts(policy: Policy, facts: RequestFacts, caller: Caller | None,
                         base_threshold: float | None) -> Constraints:
    """What the matching rules and the caller's overlay ask of the decision (pure)."""
    outcome = evaluate_rules(policy.rules, facts)
    return constraints_for(policy, outcome, caller.overlay if caller else None,
                           caller.overlay_name if caller else None, base_threshold)


def decide_on_facts(policy: Policy, requested_model: str, constraints: Constraints, score: float | None,
                    features: Features, max_out: Any = None) -> Decision:
    """The pure routing decision: :func:`decide` on ``score`` under ``constraints``, then the
    capability filter (:func:`apply_capabilities`).

    Args:
        constraints: from :func:`constraints_on_facts` (a budget may have shifted its threshold).
        score: the classifier's P(needs cloud); ignored when a tier is forced.
        features: the request's needs and size (the capability filter reads them).
        max_out: the request's completion-token cap (tokens), or None.

    Raises:
        ModelNotFoundError, TierForbiddenError, TierUnavailableError, InvalidRequestError:
        see :func:`decide` and :func:`apply_capabilities`.
    """
    decision, forced = first_decision(policy, requested_model, constraints, score)
    return apply_capabilities(decision, features, policy, forced, max_out)


def first_decision(policy: Policy, requested_model: str, constraints: Constraints,
                   score: float | None) -> tuple[Decision, bool]:
    """:func:`decide` on ``score`` (ignored when a tier is forced) under ``constraints``, and
    whether a tier was forced: the step before the capability filter, where the live stage
    lets a session keep its tier (:func:`decide_on_facts` runs both steps)."""
    forced = not needs_score(requested_model, policy, constraints)
    return decide(requested_model, None if forced else score, policy, constraints), forced


class RouteStage:
    """Chooses the first tier of requests under one policy.

    Args:
        policy: the policy (fixed for the stage's lifetime).
        score: coroutine giving the classifier's P(needs cloud) of a text at the request's
            threshold, and the stage that decided (the batched scoring thread).
        artifact_card: gives the classifier artifact's card (``score_quantiles``), read
            once, when ``target_cloud_share`` is set.
        budget_threshold: coroutine ``(tenant, base threshold) -> (threshold, note)`` when
            budgets shift the threshold, else None.
        sessions: steers the decision of a session's turn (between :func:`decide` and the
            capability filter), or None (turns routed one by one).
    """

    def __init__(self, policy: Policy, score: Callable[[str, float], Awaitable[StagedScore]],
                 artifact_card: Callable[[], Any],
                 budget_threshold: Callable[[str, float], Awaitable[tuple[float, str | None]]] | None = None,
                 sessions: "SessionKeeper | None" = None) -> None:
        self.policy = policy
        self.sessions = sessions
        self._score = score
        self._artifact_card = artifact_card
        self._budget_threshold = budget_threshold
        self.facts_needed = facts_needed(policy.rules)
        self._share_threshold: float | None = None

    def base_threshold(self) -> float | None:
        """The threshold derived from ``target_cloud_share`` (None when the policy sets a
        threshold); reads the artifact card once (blocking)."""
        cfg = self.policy.routing.classifier
        if cfg.target_cloud_share is None:
            return None
        if self._share_threshold is None:
            card = ArtifactCard.read(self._artifact_card())
            self._share_threshold = threshold_for_cloud_share(card.score_quantiles, cfg.target_cloud_share)
        return self._share_threshold

    def warm_up(self) -> None:
        """Read what :meth:`route` reads on first use: the share threshold's card and the
        language detector when a rule needs it (blocking)."""
        self.base_threshold()
        if "language" in self.facts_needed:
            from ..request.language import warm_up as warm_language

            warm_language()

    def facts(self, request: ChatRequest, caller: Caller | None, headers: Mapping[str, str] | None,
              needs: frozenset[str]) -> RequestFacts:
        """Rule facts (blocking when a rule needs the language or the token count)."""
        text = message_text(request.messages[request.asking_index()])
        language = prompt_tokens = None
        if "language" in self.facts_needed:
            from ..request.language import detect_language

            language = detect_language(text)
        if "prompt_tokens" in self.facts_needed:
            prompt_tokens = count_prompt_tokens(self.policy.cloud, request.messages_as_dicts())
        return RequestFacts(
            requested_model=request.model, last_user_text=text, needs=needs, headers=rule_headers(headers),
            metadata=request.metadata or {}, key_name=caller.name if caller else None,
            key_group=caller.group if caller else None, prompt_tokens=prompt_tokens, language=language,
        )

    async def route(self, request: ChatRequest, caller: Caller | None, headers: Mapping[str, str] | None = None,
                    tenant: str | None = None, session_tenant: str | None = None) -> Routing:
        """Evaluate the rules, score (off the event loop) when the classifier decides, and
        choose the first tier. Calls no model.

        Args:
            caller: the identified caller (rules on keys/groups, overlays), or None.
            headers: the HTTP request headers (header rules).
            tenant: whose budget shifts the threshold as it burns, when budgets are on.
            session_tenant: whose session state a session's turn reads (the caller's tenant;
                anonymous when None).

        Raises:
            ModelNotFoundError, TierForbiddenError, TierUnavailableError: see
            :func:`router.routing.decide.decide`.
        """
        cfg = self.policy.routing.classifier
        features = extract_features(request, **cfg.bound())
        if self.facts_needed:
            facts = await asyncio.to_thread(self.facts, request, caller, headers, features.needs)
        else:
            facts = self.facts(request, caller, headers, features.needs)
        base = await asyncio.to_thread(self.base_threshold) if cfg.target_cloud_share is not None else None
        constraints = constraints_on_facts(self.policy, facts, caller, base)
        score, staged = None, None
        forced = not needs_score(request.model, self.policy, constraints)
        if not forced and self._budget_threshold is not None:
            start = constraints.threshold if constraints.threshold is not None else cfg.threshold
            shifted, note = await self._budget_threshold(tenant or ANONYMOUS, start)
            if note:
                constraints = replace(constraints, threshold=shifted, threshold_source=note)
        if not forced and features.text.strip():
            staged = await self._score(features.text, cfg.threshold if constraints.threshold is None
                                       else constraints.threshold)
            score = staged.score
        elif not forced:
            score = 1.0  # nothing to embed (an image-only turn): treat as hard
        max_out = request.params.get("max_completion_tokens") or request.params.get("max_tokens")
        decision, forced = first_decision(self.policy, request.model, constraints, score)
        session = None
        if self.sessions is not None:
            decision, session = await self.sessions.steer(decision, request, headers, session_tenant or tenant)
        decision = apply_capabilities(decision, features, self.policy, forced, max_out)
        if staged is not None and staged.stage:  # a two-stage scorer: the reason names the stage that decided
            decision = replace(decision, reason=f"{decision.reason}; {staged.note()}")
        return Routing(decision, caller, features.needs, facts.language, facts.prompt_tokens, features.prompt_chars,
                       facts, session, staged, features.text if staged is not None else None,
                       features.prompt_messages)
