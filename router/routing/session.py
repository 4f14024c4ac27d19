"""Sessions: which tier a conversation's next turn goes to, given its earlier turns (pure).

A session is one conversation, identified by (:func:`session_id`):

1. the ``x-session-id`` header, as sent (at most 128 printable ASCII characters, else hashed);
2. else the OpenAI ``user`` field (Anthropic's ``metadata.user_id`` arrives as ``user``) plus
   a fingerprint of the conversation: SHA-256 of the system prompt and the first user turn,
   so one user's separate conversations are separate sessions (``u-`` + 16 hex digits of
   SHA-256 of both; the user id itself is never stored);
3. else there is none and every turn is routed on its own.

:func:`choose_tier` is the decision. ``per_turn`` routing takes the tier the turn's own
decision chose. ``sticky`` keeps the tier that answered the session's previous turn: a turn
routed to the cloud tier upgrades the session when ``allow_upgrade`` (as does an escalated
answer, since the state records the tier that answered); a turn routed locally leaves the
cloud only when ``allow_downgrade`` and leaving is worth it (:class:`SwitchCost`); after
``max_switches`` switches the session stays where it is. A tier that is no longer allowed
(forbidden, or unavailable) is never kept.

**Prompt-cache value** (:class:`SwitchCost`). A provider that caches the conversation's
prefix bills those tokens at its cached rate; a turn sent elsewhere loses that cache, and
the next cloud turn re-reads the prefix at the uncached rate. Leaving the cloud for one
turn therefore saves ``saving_usd = cloud_turn_usd - local_turn_usd`` (this turn's prompt
with the cached prefix at the cached rate, plus the previous turn's completion tokens as the
estimate of this one's, on each tier) and costs ``lost_cache_usd = cached_tokens x
(input_price - cached_input_price)``. The session leaves the cloud only when
``saving_usd > lost_cache_usd``. Prices are the tier's ``price`` or litellm's model map
(``input_cost_per_token``, ``cache_read_input_token_cost``), see :mod:`router.ledger.cost`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dataclasses import replace

from ..ledger.cost import call_cost
from ..policy import AUTO, Policy, SessionConfig

if TYPE_CHECKING:  # annotations only
    from ..store.records import RequestRecord
    from .decide import Decision

__all__ = ["SESSION_HEADER", "SessionState", "SwitchCost", "SessionChoice", "session_id", "fingerprint",
           "choose_tier", "next_state", "switched", "state_key", "steer", "prices_switch", "switch_cost"]

SESSION_HEADER = "x-session-id"
MAX_ID_CHARS = 128


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content or () if isinstance(p, dict) and p.get("type") == "text")


def fingerprint(messages: Sequence[Mapping[str, Any]]) -> str:
    """16 hex digits of SHA-256 of the system/developer prompt and the first user turn: the
    same for every turn of one conversation, different for another conversation."""
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    first = next((_text(m.get("content")) for m in messages if m.get("role") == "user"), "")
    return _sha(f"{system}\x00{first}")[:16]


def session_id(header: str | None, user: str | None, messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The session of a request (see the module docstring), or None when it has none."""
    if header and header.strip():
        value = header.strip()
        if len(value) <= MAX_ID_CHARS and value.isascii() and value.isprintable():
            return value
        return "h-" + _sha(value)[:16]
    if user:
        return "u-" + _sha(f"{user}\x00{fingerprint(messages)}")[:16]
    return None


def state_key(tenant: str, sid: str) -> str:
    """The shared-state key of a session: per tenant, so two callers never share one."""
    return f"session:{tenant}:{_sha(sid)[:32]}"


@dataclass(frozen=True, slots=True)
class SessionState:
    """What the shared state keeps per session (JSON).

    Attributes:
        tier: the tier that answered the last turn.
        turns: answered turns; switches: turns whose tier differed from the turn before.
        prompt_tokens, completion_tokens: of the last answer (tokens).
        cached_prompt_tokens: prompt tokens the provider read from its cache for the last
            answer (``cached_tokens`` / Anthropic's ``cache_read_input_tokens``).
    """

    tier: str
    turns: int = 1
    switches: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "SessionState":
        """Raises: ValueError: not a session state."""
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("tier"), str):
            raise ValueError("not a session state")
        return cls(**{k: data[k] for k in cls.__slots__ if k in data})


@dataclass(frozen=True, slots=True)
class SwitchCost:
    """What leaving the cloud tier for this turn saves and what it loses (USD, see the
    module docstring for the formula)."""

    saving_usd: float
    lost_cache_usd: float


@dataclass(frozen=True, slots=True)
class SessionChoice:
    """The tier for this turn; ``held`` when the session kept a tier other than the one the
    turn's own decision chose; ``reason`` says why (empty when nothing changed)."""

    tier: str
    held: bool
    reason: str


def choose_tier(per_turn: str, previous: SessionState | None, cfg: SessionConfig, local: str, cloud: str,
                allowed: Collection[str], cost: SwitchCost | None = None) -> SessionChoice:
    """The tier of a session's turn.

    Args:
        per_turn: the tier the turn's own decision chose.
        previous: the session's state; None for a new (or expired) session.
        cfg: ``routing.session``.
        local, cloud: the policy's local and cloud tier names.
        allowed: tiers this turn may use (not forbidden, available).
        cost: the value of leaving the cloud (only read for a downgrade); None when unknown.
    """
    if previous is None:
        return SessionChoice(per_turn, False, "")
    if cfg.mode == "per_turn" or per_turn == previous.tier:
        return SessionChoice(per_turn, False, "")
    if previous.tier not in allowed or {per_turn, previous.tier} != {local, cloud}:
        return SessionChoice(per_turn, False, f"session tier {previous.tier} not allowed")

    def hold(why: str) -> SessionChoice:
        return SessionChoice(previous.tier, True, f"session sticky on {previous.tier} ({why})")

    if cfg.max_switches is not None and previous.switches >= cfg.max_switches:
        return hold(f"{previous.switches} switches, max_switches {cfg.max_switches}")
    if per_turn == cloud:
        return SessionChoice(per_turn, False, "session upgraded") if cfg.allow_upgrade else hold("allow_upgrade off")
    if not cfg.allow_downgrade:
        return hold("allow_downgrade off")
    if cost is not None and cost.saving_usd <= cost.lost_cache_usd:
        return hold(f"leaving saves ${cost.saving_usd:.6f} <= ${cost.lost_cache_usd:.6f} of cached prefix")
    return SessionChoice(per_turn, False, "session downgraded")


def next_state(previous: SessionState | None, tier: str, prompt_tokens: int, completion_tokens: int,
               cached_prompt_tokens: int) -> SessionState:
    """The session's state after a turn answered by ``tier`` (a switch when it differs from
    the previous turn's tier)."""
    if previous is None:
        return SessionState(tier, 1, 0, prompt_tokens, completion_tokens, cached_prompt_tokens)
    return SessionState(tier, previous.turns + 1, previous.switches + (tier != previous.tier), prompt_tokens,
                        completion_tokens, cached_prompt_tokens)


def switched(record: "RequestRecord") -> bool:
    """True when a logged request of a session was answered by another tier than the
    session's previous turn (``session_prev_tier``, None on its first turn)."""
    prev = record.session_prev_tier
    return prev is not None and record.tier is not None and record.tier != prev


def prices_switch(decision: "Decision", previous: SessionState | None, policy: Policy) -> bool:
    """True when :func:`steer` reads the value of leaving the cloud for this turn (a sticky
    session on the cloud tier that may downgrade, a turn routed locally)."""
    cfg, routing = policy.routing.session, policy.routing
    return (previous is not None and cfg.mode == "sticky" and cfg.allow_downgrade
            and previous.tier == routing.cloud_tier and decision.tier == routing.local_tier)


def switch_cost(policy: Policy, prompt_tokens: int, previous: SessionState) -> SwitchCost | None:
    """:class:`SwitchCost` of leaving the cloud for a turn of ``prompt_tokens`` (the cloud
    tokenizer's count) after ``previous``; None when a price is unknown."""
    routing = policy.routing
    cloud, local = policy.tiers[routing.cloud_tier], policy.tiers[routing.local_tier]
    cached = min(previous.cached_prompt_tokens, prompt_tokens)
    completion = previous.completion_tokens
    cloud_turn = call_cost(cloud, prompt_tokens, completion, cached)
    local_turn = call_cost(local, prompt_tokens, completion)
    uncached, cached_usd = call_cost(cloud, cached, 0, 0), call_cost(cloud, cached, 0, cached)
    if None in (cloud_turn, local_turn, uncached, cached_usd):
        return None
    return SwitchCost(saving_usd=cloud_turn - local_turn, lost_cache_usd=uncached - cached_usd)


def steer(decision: "Decision", previous: SessionState | None, policy: Policy,
          cost: SwitchCost | None = None) -> "Decision":
    """The decision of a session's turn after ``previous`` (None: a new session). Only
    classifier-routed turns (``model: auto``, scored, not degraded) are steered; forced
    tiers (model name, rule) keep theirs. Run before the capability filter, live
    (:class:`router.routing.session_keeper.SessionKeeper`) and in ``replay``."""
    routing = policy.routing
    if previous is None or not (decision.model == AUTO and decision.score is not None and not decision.degraded):
        return decision
    allowed = {t for t in (routing.local_tier, routing.cloud_tier)
               if t not in decision.forbidden and policy.tiers[t].available}
    choice = choose_tier(decision.tier, previous, routing.session, routing.local_tier, routing.cloud_tier, allowed,
                         cost)
    if not choice.reason:
        return decision
    return replace(decision, tier=choice.tier, reason=f"{decision.reason}; {choice.reason}")
