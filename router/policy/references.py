"""Cross-references of a policy that must resolve (tiers, keys, overlays, rule names), pure."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import AUTO

if TYPE_CHECKING:
    from .model import Policy

__all__ = ["ReferenceProblem", "nearest", "reference_problems"]


@dataclass(frozen=True, slots=True)
class ReferenceProblem:
    """A cross-reference problem: ``path`` (keys and list indices from the top of the
    file), ``message``, a ``hint`` or None, and ``severity`` (``error`` or ``warning``)."""

    path: tuple[str | int, ...]
    message: str
    hint: str | None = None
    severity: str = "error"


def _describe(p: ReferenceProblem) -> str:
    where = ".".join(str(x) for x in p.path)
    return f"{where}: {p.message}" + (f" ({p.hint})" if p.hint else "")


def nearest(name: str, candidates: list[str]) -> str | None:
    """``did you mean 'x'?`` for the closest of ``candidates`` to ``name``, or None."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def reference_problems(policy: "Policy") -> list[ReferenceProblem]:
    """Names that must resolve: tiers named by routing, aliases, rules and overlays; key
    names and overlays named by rules and keys; unique rule and key names.

    Pure. Returns every problem found (empty when all resolve), with a nearest-name hint.
    """
    problems: list[ReferenceProblem] = []
    tiers = list(policy.tiers)
    tier_list = ", ".join(sorted(tiers)) or "none"

    def tier_ref(path: tuple, name: str, what: str) -> None:
        if name not in policy.tiers:
            problems.append(ReferenceProblem(
                path, f"{what} {name!r} is not defined under tiers (defined: {tier_list})", nearest(name, tiers)))

    if AUTO in policy.tiers:
        problems.append(ReferenceProblem(("tiers", AUTO), "'auto' is reserved for routed requests and cannot name a tier"))
    for role in ("local_tier", "cloud_tier"):
        tier_ref(("routing", role), getattr(policy.routing, role), "tier")
    for i, name in enumerate(policy.routing.escalation_order):
        tier_ref(("routing", "escalation_order", i), name, "tier")
    for alias, target in policy.aliases.items():
        if alias == AUTO or alias in policy.tiers:
            problems.append(ReferenceProblem(("aliases", alias), f"alias {alias!r} hides the model of the same name"))
        if target != AUTO:
            tier_ref(("aliases", alias), target, "alias target")

    key_names = [k.name for k in policy.api_keys]
    groups = sorted({k.group for k in policy.api_keys if k.group})
    seen: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        if rule.name in seen:
            problems.append(ReferenceProblem(("rules", i, "name"), f"rule name {rule.name!r} is already used by rules[{seen[rule.name]}]"))
        seen.setdefault(rule.name, i)
        if rule.action.tier is not None:
            tier_ref(("rules", i, "action", "tier"), rule.action.tier, "tier")
        for j, name in enumerate(rule.action.forbid):
            tier_ref(("rules", i, "action", "forbid", j), name, "tier")
        for j, name in enumerate(rule.match.keys or ()):
            if name not in key_names:
                problems.append(ReferenceProblem(
                    ("rules", i, "match", "keys", j), f"no api_keys entry is named {name!r}", nearest(name, key_names)))
        for j, name in enumerate(rule.match.groups or ()):
            if name not in groups:
                problems.append(ReferenceProblem(
                    ("rules", i, "match", "groups", j), f"no api_keys entry is in group {name!r}",
                    nearest(name, groups), severity="warning"))

    seen_keys: dict[str, int] = {}
    seen_hashes: dict[str, int] = {}
    overlays = list(policy.overlays)
    for i, key in enumerate(policy.api_keys):
        if key.name in seen_keys:
            problems.append(ReferenceProblem(("api_keys", i, "name"), f"key name {key.name!r} is already used by api_keys[{seen_keys[key.name]}]"))
        seen_keys.setdefault(key.name, i)
        if key.sha256 is not None:
            if key.sha256 in seen_hashes:
                problems.append(ReferenceProblem(("api_keys", i), f"same key as api_keys[{seen_hashes[key.sha256]}]"))
            seen_hashes.setdefault(key.sha256, i)
        if key.overlay is not None and key.overlay not in policy.overlays:
            problems.append(ReferenceProblem(
                ("api_keys", i, "overlay"), f"overlay {key.overlay!r} is not defined under overlays "
                f"(defined: {', '.join(sorted(overlays)) or 'none'})", nearest(key.overlay, overlays)))
    for name, overlay in policy.overlays.items():
        for j, tier in enumerate(overlay.allowed_tiers or ()):
            tier_ref(("overlays", name, "allowed_tiers", j), tier, "tier")
    return problems
