"""Rules stage: which of the policy's rules match a request, and what they and the caller's
overlay ask of the decision.

Pure: :func:`evaluate_rules` takes the rules and the :class:`RequestFacts` of a request and
returns a :class:`RuleOutcome`; :func:`constraints_for` folds that outcome and the caller's
overlay into the :class:`~router.routing.decide.Constraints` that :func:`router.routing.decide.decide`
honours. Nothing here calls a model or reads a file; facts that cost something to compute
(language, token count) are computed by the pipeline only when :func:`facts_needed` says a
rule looks at them.

Precedence (documented in the README): rules run in file order and every matching rule
contributes; ``forbid`` accumulates over all matching rules and the overlay's
``allowed_tiers`` and always wins; the first matching rule that sets ``tier`` forces it;
the first matching rule that sets ``threshold`` wins over the overlay's threshold, which
wins over the policy's; ``disable_escalation`` from any matching rule (or
``escalation.enabled: false`` in the overlay) turns escalation off. A rule's
``escalation`` override is applied after the overlay's: per field, the first matching
rule that sets it wins (``min``/``max`` per signal); ``disable_escalation`` beats any
override.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .decide import Constraints
from ..policy import EscalationOverride, Overlay, Policy, Rule

__all__ = ["RequestFacts", "RuleOutcome", "rule_matches", "evaluate_rules", "constraints_for", "facts_needed",
           "logged_facts", "facts_from_log"]


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What rules can look at in one request.

    Attributes:
        requested_model: the ``model`` the client sent, before aliasing.
        last_user_text: text of the last user turn.
        needs: capabilities the request needs (``vision``, ``tools``, ``json``).
        headers: request headers, names lower-case (``authorization`` left out).
        metadata: the request's ``metadata`` object (string values).
        key_name, key_group: the caller's ``api_keys`` entry, or None for an unknown caller.
        prompt_tokens: prompt tokens of all turns (the cloud model's tokenizer, litellm), or
            None when not computed.
        language: ISO 639-1 code of the last user turn, or None when not computed.
    """

    requested_model: str
    last_user_text: str = ""
    needs: frozenset[str] = frozenset()
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    key_name: str | None = None
    key_group: str | None = None
    prompt_tokens: int | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What the matching rules ask for.

    Attributes:
        matched: names of the matching rules, in file order.
        tier, tier_rule: the forced tier and the rule that forced it (first wins).
        forbidden: tiers forbidden by any matching rule, with the first rule naming each.
        threshold, threshold_rule: the threshold override and its rule (first wins).
        escalation_disabled_by: the first matching rule that disables escalation, or None.
        escalation_overrides: (rule name, its ``action.escalation``) of the matching rules
            that set one, in file order; :attr:`escalation` folds them into one.
    """

    matched: tuple[str, ...] = ()
    tier: str | None = None
    tier_rule: str | None = None
    forbidden: Mapping[str, str] = field(default_factory=dict)
    threshold: float | None = None
    threshold_rule: str | None = None
    escalation_disabled_by: str | None = None
    escalation_overrides: tuple[tuple[str, EscalationOverride], ...] = ()

    @property
    def escalation(self) -> EscalationOverride | None:
        """The rules' escalation overrides folded into one (first rule per field wins), or None."""
        return EscalationOverride.first_wins([o for _, o in self.escalation_overrides])


def facts_needed(rules: Sequence[Rule]) -> frozenset[str]:
    """Costly facts some rule looks at: ``language`` and/or ``prompt_tokens``."""
    needed = set()
    for rule in rules:
        if rule.match.languages:
            needed.add("language")
        if rule.match.min_prompt_tokens is not None or rule.match.max_prompt_tokens is not None:
            needed.add("prompt_tokens")
    return frozenset(needed)


def _full_match(pattern: str, value: str | None) -> bool:
    return value is not None and re.fullmatch(pattern, value) is not None


def rule_matches(rule: Rule, facts: RequestFacts) -> bool:
    """True when every condition of ``rule.match`` holds for ``facts``.

    A condition on a fact that was not computed (None) does not hold.
    """
    m = rule.match
    if m.keys is not None and facts.key_name not in m.keys:
        return False
    if m.groups is not None and facts.key_group not in m.groups:
        return False
    if m.models is not None and facts.requested_model not in m.models:
        return False
    for name, pattern in (m.headers or {}).items():
        if not _full_match(pattern, facts.headers.get(name)):
            return False
    for name, pattern in (m.metadata or {}).items():
        value = facts.metadata.get(name)
        if not _full_match(pattern, None if value is None else str(value)):
            return False
    if m.last_user_regex is not None and re.search(m.last_user_regex, facts.last_user_text) is None:
        return False
    if m.min_prompt_tokens is not None and (facts.prompt_tokens is None or facts.prompt_tokens < m.min_prompt_tokens):
        return False
    if m.max_prompt_tokens is not None and (facts.prompt_tokens is None or facts.prompt_tokens > m.max_prompt_tokens):
        return False
    if m.needs is not None and not (set(m.needs) & facts.needs):
        return False
    if m.languages is not None and facts.language not in m.languages:
        return False
    return True


def evaluate_rules(rules: Sequence[Rule], facts: RequestFacts) -> RuleOutcome:
    """Evaluate ``rules`` in order against ``facts`` and combine the matching ones' actions
    (precedence in the module docstring)."""
    matched: list[str] = []
    tier = tier_rule = threshold_rule = disabled_by = None
    threshold = None
    forbidden: dict[str, str] = {}
    overrides: list[tuple[str, EscalationOverride]] = []
    for rule in rules:
        if not rule_matches(rule, facts):
            continue
        matched.append(rule.name)
        a = rule.action
        if a.tier is not None and tier is None:
            tier, tier_rule = a.tier, rule.name
        for name in a.forbid:
            forbidden.setdefault(name, rule.name)
        if a.threshold is not None and threshold is None:
            threshold, threshold_rule = a.threshold, rule.name
        if a.disable_escalation and disabled_by is None:
            disabled_by = rule.name
        if a.escalation is not None:
            overrides.append((rule.name, a.escalation))
    return RuleOutcome(tuple(matched), tier, tier_rule, forbidden, threshold, threshold_rule, disabled_by,
                       tuple(overrides))


def constraints_for(policy: Policy, outcome: RuleOutcome, overlay: Overlay | None = None,
                    overlay_name: str | None = None, base_threshold: float | None = None) -> Constraints:
    """Fold the rules' outcome and the caller's overlay into decision constraints.

    Args:
        policy: the active policy (its tiers, threshold and escalation settings).
        outcome: from :func:`evaluate_rules`.
        overlay: the caller's overlay, or None.
        overlay_name: its name, for reasons.
        base_threshold: the policy's classifier threshold when it was derived from
            ``target_cloud_share``; ``routing.classifier.threshold`` when None.
    """
    forbidden = {tier: f"rule {name}" for tier, name in outcome.forbidden.items()}
    label = f"overlay {overlay_name}" if overlay_name else "overlay"
    if overlay is not None and overlay.allowed_tiers is not None:
        for name in policy.tiers:
            if name not in overlay.allowed_tiers:
                forbidden.setdefault(name, label)

    threshold = base_threshold if base_threshold is not None else policy.routing.classifier.threshold
    threshold_source = None
    if outcome.threshold is not None:
        threshold, threshold_source = outcome.threshold, f"rule {outcome.threshold_rule}"
    elif overlay is not None and overlay.threshold is not None:
        threshold, threshold_source = overlay.threshold, label

    esc = policy.escalation
    escalation_note = None
    if overlay is not None and overlay.escalation is not None:
        o = overlay.escalation
        esc = o.apply(esc)
        if o.enabled is False:
            escalation_note = f"escalation off by {label}"
    rules_override = outcome.escalation
    if rules_override is not None:
        esc = rules_override.apply(esc)
        switch = next((name for name, o in outcome.escalation_overrides if o.enabled is not None), None)
        if rules_override.enabled is False:
            escalation_note = f"escalation off by rule {switch}"
        elif rules_override.enabled is True:
            escalation_note = None  # a rule turned on what the policy or the overlay turned off
    if outcome.escalation_disabled_by is not None:
        esc = esc.model_copy(update={"enabled": False})
        escalation_note = f"escalation off by rule {outcome.escalation_disabled_by}"

    return Constraints(
        forced_tier=outcome.tier,
        forced_by=f"rule {outcome.tier_rule}" if outcome.tier_rule else None,
        forbidden=forbidden,
        threshold=threshold,
        threshold_source=threshold_source,
        escalation=esc,
        escalation_note=escalation_note,
        rules=outcome.matched,
    )


def logged_facts(rules: Sequence[Rule], facts: RequestFacts) -> dict[str, Any]:
    """The rule facts a log record keeps so that ``replay`` can evaluate rules again (pure):
    the headers and metadata entries some rule names, the last user turn only when a rule
    reads it with a regex, and the language and prompt tokens when they were computed.
    The requested model, the needs and the caller are logged in their own fields."""
    headers = {n.lower() for r in rules for n in (r.match.headers or {})}
    metadata = {n for r in rules for n in (r.match.metadata or {})}
    out: dict[str, Any] = {
        "headers": {k: v for k, v in facts.headers.items() if k in headers},
        "metadata": {k: str(v) for k, v in facts.metadata.items() if k in metadata},
    }
    if any(r.match.last_user_regex is not None for r in rules):
        out["last_user_text"] = facts.last_user_text
    if facts.language is not None:
        out["language"] = facts.language
    if facts.prompt_tokens is not None:
        out["prompt_tokens"] = facts.prompt_tokens
    return out


def facts_from_log(logged: Mapping[str, Any] | None, requested_model: str, needs: frozenset[str],
                   key_name: str | None, key_group: str | None) -> RequestFacts:
    """The rule facts of a logged request (:func:`logged_facts` plus its logged fields); a
    fact the log does not hold is absent, so a condition on it does not hold."""
    logged = logged or {}
    return RequestFacts(
        requested_model=requested_model, last_user_text=str(logged.get("last_user_text") or ""), needs=needs,
        headers=dict(logged.get("headers") or {}), metadata=dict(logged.get("metadata") or {}),
        key_name=key_name, key_group=key_group, prompt_tokens=logged.get("prompt_tokens"),
        language=logged.get("language"),
    )
