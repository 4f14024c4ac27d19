"""What every report format shows, computed once (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...store.records import FeedbackRecord, RequestRecord, ShadowRecord
from ..learning_report import LearningSection, learning_section
from ..policy_compare import ShadowComparison, compare_shadow_policies
from ..report import Summary, TierLatency, latency_by_tier, summarize, summarize_by

__all__ = ["ReportData", "build_report", "fmt_time", "fmt_usd", "fmt_pct"]


@dataclass(frozen=True)
class ReportData:
    """A report's content.

    Attributes:
        source: where the log was read (a path, for the title).
        since, until: the requested window (Unix s; None = open).
        first_ts, last_ts: first and last request in it (Unix s; None when empty).
        summary: totals; by: the grouping asked for (None: none); groups: per group.
        days: per UTC day (always computed; plots and the daily table use it).
        latency: call latency per tier.
        records, shadows: the requests and quality samples (for time-series plots).
        shadow_policies: each policy version in shadow against the active policy
            (:mod:`router.analysis.policy_compare`); empty when none was in shadow.
        learning: what the log keeps for learning, its labels, feedback per tier and any
            learning curves given (:mod:`router.analysis.learning_report`).
    """

    source: str
    since: float | None
    until: float | None
    first_ts: float | None
    last_ts: float | None
    summary: Summary
    by: str | None
    groups: list[tuple[str, Summary]]
    days: list[tuple[str, Summary]]
    latency: list[TierLatency]
    records: list[RequestRecord] = field(default_factory=list)
    shadows: list[ShadowRecord] = field(default_factory=list)
    shadow_policies: list[ShadowComparison] = field(default_factory=list)
    learning: LearningSection | None = None


def build_report(records: Iterable[RequestRecord], shadows: Iterable[ShadowRecord] = (), *, source: str = "",
                 since: float | None = None, until: float | None = None, by: str | None = None,
                 tiers: tuple[str, str] = ("local", "cloud"),
                 feedback: Iterable[FeedbackRecord] = (),
                 curves: dict[str, list[tuple[int, float]]] | None = None) -> ReportData:
    """Aggregate a window of the log for rendering (``feedback`` on its requests; ``curves``:
    learning curves to plot, name -> [(labels, APGR)]).

    Args:
        tiers: the policy's (local tier, cloud tier) names, for the shadow-policy comparison.

    Raises:
        ValueError: ``by`` is not one of :data:`router.analysis.report.GROUPINGS`.
    """
    records = sorted(records, key=lambda r: r.ts)
    shadows = list(shadows)
    groups = summarize_by(records, by, shadows) if by else []
    return ReportData(
        source=source, since=since, until=until,
        first_ts=records[0].ts if records else None, last_ts=records[-1].ts if records else None,
        summary=summarize(records, shadows), by=by, groups=groups,
        days=summarize_by(records, "day", shadows), latency=latency_by_tier(records),
        records=records, shadows=shadows, shadow_policies=compare_shadow_policies(records, *tiers),
        learning=learning_section(records, shadows, feedback, curves),
    )


def fmt_time(ts: float | None) -> str:
    """Unix seconds as ``YYYY-MM-DD HH:MM:SS UTC`` (``-`` for None)."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_usd(x: float | None) -> str:
    """USD with six decimals (single requests cost fractions of a cent); ``unknown`` for None."""
    if x is None:
        return "unknown"
    return f"-${-x:,.6f}" if x < 0 else f"${x:,.6f}"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A 0..1 share as a percentage; ``n/a`` for None."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"
