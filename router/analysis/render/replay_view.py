"""What-if replay results as rows, Markdown or JSON (pure)."""

from __future__ import annotations

import json
from dataclasses import asdict

from ..quality import Retention
from ..replay import Outcome, ReplayResult
from .data import fmt_pct, fmt_usd

__all__ = ["replay_rows", "replay_markdown", "replay_json"]


def _quality(q: Retention) -> str:
    if q.estimate is None:
        return f"unknown ({fmt_pct(q.lo)}-{fmt_pct(q.hi)})"
    return f"{fmt_pct(q.estimate)} [{fmt_pct(q.lo)}, {fmt_pct(q.hi)}]"


def _outcome_cells(o: Outcome) -> list[str]:
    unpriced = f" ({o.unpriced_calls:g} unpriced calls excluded)" if o.unpriced_calls else ""
    return [fmt_usd(o.cost_usd) + unpriced, fmt_pct(o.local_share), fmt_pct(o.escalation_rate), _quality(o.quality),
            fmt_usd(o.shadow_usd)]


def replay_rows(result: ReplayResult) -> list[list[str]]:
    """Rows ``[label, actual, projected]``, then counts of what changed."""
    labels = ["serving cost", "served locally", "escalation rate", "quality retention (95% CI)", "shadow sampling spend"]
    rows = [[label, a, p] for label, a, p in zip(labels, _outcome_cells(result.actual), _outcome_cells(result.projected))]
    rows.append(["ok requests replayed", str(result.actual.requests), str(result.actual.requests - result.would_fail)])
    rows += [
        ["first tier changed", "", str(result.decisions_changed)],
        ["escalation verdict changed", "", str(result.escalations_changed)],
        ["escalation estimated (local attempt not in the log)", "", str(result.escalation_estimated)],
        ["quality extrapolated (never answered locally)", "", f"{result.quality_extrapolated:.1f}"],
        ["rejected by the new policy", "", str(result.would_fail)],
    ]
    return rows


def replay_markdown(result: ReplayResult, policy: str, log: str) -> str:
    """A Markdown table of :func:`replay_rows`."""
    lines = [f"# What-if replay of `{log}` under `{policy}`", "", "| | actual | projected |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in replay_rows(result)]
    lines += ["", "No model was called: decisions, escalation checks and prices were recomputed from the log "
              "(see `router/analysis/replay.py` for the projection rules)."]
    return "\n".join(lines) + "\n"


def replay_json(result: ReplayResult) -> str:
    """``actual``, ``projected`` and the change counts (per-request projections left out)."""
    d = asdict(result)
    d.pop("projections")
    return json.dumps(d, indent=2)
