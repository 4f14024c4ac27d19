"""Report plots as PNG bytes (matplotlib, drawn off-screen with ``matplotlib.figure.Figure``,
so no GUI backend and no global pyplot state is involved).

Time plots bucket requests by day when the window spans three days or more, else by hour,
10 minutes or minute (the largest bucket that still gives three), so a short session
still shows a shape. :func:`buckets` is the pure part.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from ...store.records import RequestRecord, ShadowRecord
from ..report import TierLatency

__all__ = ["Bucket", "bucket_size", "buckets", "cost_per_bucket_png", "cumulative_savings_png",
           "share_png", "latency_png", "agreement_png"]

_SIZES = ((86_400, "day"), (3_600, "hour"), (600, "10 minutes"), (60, "minute"))
_ACTUAL, _CLOUD, _LOCAL, _ESC = "#2b7bba", "#c0504d", "#59a14f", "#f28e2b"


@dataclass(frozen=True)
class Bucket:
    """Ok requests that arrived in ``[start, start + size)`` (Unix s): counts and USD."""

    start: float
    requests: int
    local: int
    escalated: int
    actual_usd: float
    all_cloud_usd: float


def bucket_size(first_ts: float, last_ts: float) -> tuple[int, str]:
    """(seconds, name) of the time bucket for a window (see the module docstring)."""
    span = max(last_ts - first_ts, 0.0)
    for seconds, name in _SIZES:
        if span / seconds >= 3:
            return seconds, name
    return _SIZES[-1]


def buckets(records: Sequence[RequestRecord], size_s: int) -> list[Bucket]:
    """Per-bucket totals of ok requests, consecutive buckets from the first to the last
    (empty ones included). Actual cost counts priced calls; all-cloud the counterfactuals."""
    ok = [r for r in records if r.status == "ok"]
    if not ok:
        return []
    first = int(min(r.ts for r in ok) // size_s) * size_s
    last = int(max(r.ts for r in ok) // size_s) * size_s
    rows = {start: [0, 0, 0, 0.0, 0.0] for start in range(first, last + size_s, size_s)}
    for r in ok:
        row = rows[int(r.ts // size_s) * size_s]
        row[0] += 1
        row[1] += r.local
        row[2] += r.escalated
        row[3] += sum(c.cost_usd for c in r.calls if c.cost_usd is not None)
        row[4] += r.counterfactual_usd or 0.0
    return [Bucket(float(k), *v) for k, v in sorted(rows.items())]


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def _figure(width: float = 6.4, height: float = 3.4):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _labels(rows: list[Bucket], name: str) -> list[str]:
    fmt = "%Y-%m-%d" if name == "day" else "%m-%d %H:%M"
    return [_utc(b.start).strftime(fmt) for b in rows]


def _thin_ticks(ax, labels: list[str], most: int = 12) -> None:
    step = max(1, len(labels) // most)
    ax.set_xticks(range(0, len(labels), step), [labels[i] for i in range(0, len(labels), step)],
                  rotation=30, ha="right", fontsize=8)


def cost_per_bucket_png(rows: list[Bucket], name: str) -> bytes:
    """Grouped bars: actual cost and all-cloud cost per bucket (USD)."""
    fig, ax = _figure()
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [b.actual_usd for b in rows], width=0.4, color=_ACTUAL, label="actual")
    ax.bar([i + 0.2 for i in x], [b.all_cloud_usd for b in rows], width=0.4, color=_CLOUD, label="all-cloud")
    _thin_ticks(ax, _labels(rows, name))
    ax.set_ylabel("USD")
    ax.set_title(f"Cost per {name} (UTC): actual vs all-cloud")
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def cumulative_savings_png(records: Sequence[RequestRecord]) -> bytes:
    """Cumulative savings (all-cloud minus actual, USD) over time, request by request."""
    ok = sorted((r for r in records if r.status == "ok"), key=lambda r: r.ts)
    fig, ax = _figure()
    total, xs, ys = 0.0, [], []
    for r in ok:
        total += (r.counterfactual_usd or 0.0) - sum(c.cost_usd for c in r.calls if c.cost_usd is not None)
        xs.append(_utc(r.ts))
        ys.append(total)
    ax.step(xs, ys, where="post", color=_LOCAL)
    ax.fill_between(xs, ys, step="post", alpha=0.2, color=_LOCAL)
    ax.set_ylabel("USD")
    ax.set_title("Cumulative savings (UTC)")
    ax.grid(alpha=0.3)
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    return _png(fig)


def share_png(rows: list[Bucket], name: str) -> bytes:
    """Stacked bars per bucket: share served locally, escalated, sent to the cloud (of ok)."""
    fig, ax = _figure()
    x = list(range(len(rows)))
    local = [b.local / b.requests if b.requests else 0 for b in rows]
    esc = [b.escalated / b.requests if b.requests else 0 for b in rows]
    cloud = [1 - a - e if b.requests else 0 for a, e, b in zip(local, esc, rows)]
    ax.bar(x, local, color=_LOCAL, label="served locally")
    ax.bar(x, esc, bottom=local, color=_ESC, label="escalated")
    ax.bar(x, cloud, bottom=[a + e for a, e in zip(local, esc)], color=_CLOUD, label="routed to cloud")
    _thin_ticks(ax, _labels(rows, name))
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of ok requests")
    ax.set_title(f"Share local / escalated per {name} (UTC)")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def latency_png(latency: Sequence[TierLatency]) -> bytes:
    """Box plot of call latency per tier (ms, log scale)."""
    fig, ax = _figure()
    ax.boxplot([list(t.values_ms) or [0.0] for t in latency], tick_labels=[f"{t.tier}\n({t.calls} calls)" for t in latency])
    if any(v > 0 for t in latency for v in t.values_ms):
        ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.set_title("Latency per tier (ok calls)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def agreement_png(shadows: Sequence[ShadowRecord]) -> bytes:
    """Histogram of sample similarity (shadow and escalation samples), agreeing and
    disagreeing samples stacked."""
    fig, ax = _figure()
    ok = [s for s in shadows if s.similarity is not None]
    agree = [s.similarity for s in ok if s.agrees]
    disagree = [s.similarity for s in ok if not s.agrees]
    ax.hist([agree, disagree], bins=20, range=(min([0.0] + [s.similarity for s in ok]), 1.0), stacked=True,
            color=[_LOCAL, _CLOUD], label=["agree", "disagree"])
    ax.set_xlabel("cosine similarity of local and cloud answers (MiniLM)")
    ax.set_ylabel("samples")
    kinds = {k: sum(s.kind == k for s in ok) for k in ("shadow", "escalation", "local_shadow")}
    ax.set_title(f"Agreement samples: {kinds['shadow']} shadow, {kinds['escalation']} escalation"
                 + (f", {kinds['local_shadow']} cloud-routed" if kinds["local_shadow"] else ""))
    ax.legend(frameon=False)
    return _png(fig)


def learning_curve_png(curves) -> bytes:
    """Held-out APGR against labels used, one line per curve (name -> [(labels, APGR)])."""
    fig, ax = _figure()
    for name, points in curves.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("judged labels used")
    ax.set_ylabel("held-out APGR")
    if any(points for points in curves.values()):
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no curve: too few judged samples", ha="center", va="center", transform=ax.transAxes)
    return _png(fig)
