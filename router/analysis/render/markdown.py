"""The report as Markdown (pure)."""

from __future__ import annotations

from ..learning_report import FEEDBACK_HEADER, feedback_rows
from .data import ReportData
from .text import (GROUP_HEADER, METHOD_NOTES, SHADOW_POLICY_HEADER, cost_lines, flags, group_rows, headline_rows,
                   learning_lines, shadow_policy_rows, window_text)

__all__ = ["to_markdown"]


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def to_markdown(data: ReportData) -> str:
    """Headline, cost breakdown, flags, grouping, per-day and latency tables, method notes."""
    s = data.summary
    out = ["# slm-router cost and quality report", "", f"Log: `{data.source}`. {window_text(data)}", ""]
    out += _table(["", "value"], [[k, v] for k, v in headline_rows(s)])
    out += ["", "## Cost breakdown", ""]
    out += _table(*cost_lines(s))
    sources = ", ".join(f"{k}: {v}" for k, v in s.price_sources.items()) or "none"
    out += ["", f"Calls by price source: {sources}. Cached prompt tokens: {s.cached_prompt_tokens}.", ""]
    warnings = flags(s)
    out += ["## Flags", ""] + ([f"- **{w}**" for w in warnings] if warnings else ["- Every call is priced."]) + [""]
    if data.shadow_policies:
        out += ["## Shadow policy vs active (same requests)", ""]
        out += _table(SHADOW_POLICY_HEADER, shadow_policy_rows(data.shadow_policies)) + [""]
    if data.by:
        out += [f"## By {data.by}", ""] + _table(GROUP_HEADER, group_rows(data.groups)) + [""]
    if data.by != "day":
        out += ["## Per day (UTC)", ""] + _table(GROUP_HEADER, group_rows(data.days)) + [""]
    out += ["## Latency per tier (ok calls)", ""]
    out += _table(["tier", "calls", "p50", "p95", "max"],
                  [[t.tier, str(t.calls), f"{t.p50_ms:,.0f} ms", f"{t.p95_ms:,.0f} ms", f"{t.max_ms:,.0f} ms"]
                   for t in data.latency])
    if data.learning is not None:
        out += ["", "## Learning", ""] + [f"- {line}" for line in learning_lines(data.learning)]
        if data.learning.feedback:
            out += ["", "Feedback by tier:", ""] + _table(FEEDBACK_HEADER, feedback_rows(data.learning))
    out += ["", "## How the figures are computed", ""] + [f"- {n}" for n in METHOD_NOTES]
    return "\n".join(out) + "\n"
