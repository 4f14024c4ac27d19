"""Sessions in the report (pure): per session, its turns, tier switches, the turns the
session kept on a tier other than the one they were routed to ("held"), and what that
stickiness cost or saved.

Stickiness per held turn (USD; positive = cost, negative = saved):

- held on the cloud tier (routed locally): + the turn's logged cost; the local answer it
  replaced is counted at $0, the marginal price of an in-process local tier (an upper bound
  of the extra cost when the local tier is priced);
- held on the local tier (routed to the cloud): - (its counterfactual cloud cost - its
  logged cost), what the cloud answer would have cost more.

A held cloud turn's cost already includes its prompt-cache discount (cached prompt tokens
are priced at the cached rate), which is the value stickiness keeps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..routing.session import switched
from ..store.records import RequestRecord

__all__ = ["SessionRow", "session_rows", "SESSION_HEADER_ROW", "session_table_rows"]


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session: ``turns`` (logged requests), ``switches``, ``held`` turns, turns per
    tier (``tiers``: "local 2, cloud 4"), cached prompt tokens, its cost and the stickiness
    delta (USD, see the module docstring)."""

    session: str
    turns: int
    switches: int
    held: int
    tiers: str
    cached_prompt_tokens: int
    cost_usd: float
    stickiness_usd: float


def _stickiness(record: RequestRecord, local_tier: str | None) -> float:
    if record.status != "ok" or record.session_per_turn_tier in (None, record.tier):
        return 0.0
    cost = record.cost_usd or 0.0
    if record.tier == local_tier:
        return -max((record.counterfactual_usd or 0.0) - cost, 0.0)
    return cost


def session_rows(records: Iterable[RequestRecord]) -> list[SessionRow]:
    """One row per session id of ``records`` (requests without a session are left out),
    in order of first appearance."""
    groups: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if r.session_id:
            groups[r.session_id].append(r)
    rows = []
    for sid, rs in groups.items():
        rs.sort(key=lambda r: r.ts)
        local_tier = next((r.tier for r in rs if r.local), None)
        counts: dict[str, int] = defaultdict(int)
        for r in rs:
            if r.tier:
                counts[r.tier] += 1
        rows.append(SessionRow(
            session=sid, turns=len(rs), switches=sum(switched(r) for r in rs),
            held=sum(r.status == "ok" and r.session_per_turn_tier not in (None, r.tier) for r in rs),
            tiers=", ".join(f"{t} {n}" for t, n in counts.items()),
            cached_prompt_tokens=sum(c.cached_prompt_tokens for r in rs for c in r.calls),
            cost_usd=sum(r.cost_usd or 0.0 for r in rs),
            stickiness_usd=sum(_stickiness(r, local_tier) for r in rs)))
    return rows


SESSION_HEADER_ROW = ["session", "turns", "switches", "held", "turns per tier", "cached prompt tokens", "cost",
                      "stickiness cost (+) / saved (-)"]


def session_table_rows(rows: list[SessionRow]) -> list[list[str]]:
    """Rows under :data:`SESSION_HEADER_ROW` (USD with 6 decimals)."""
    return [[r.session, str(r.turns), str(r.switches), str(r.held), r.tiers, str(r.cached_prompt_tokens),
             f"${r.cost_usd:.6f}", f"{'+' if r.stickiness_usd >= 0 else '-'}${abs(r.stickiness_usd):.6f}"]
            for r in rows]
