"""The report as one self-contained HTML file: inline CSS, plots embedded as base64 PNG
``data:`` URIs, no scripts and nothing fetched from the network."""

from __future__ import annotations

import base64
from html import escape

from . import plots
from ..learning_report import FEEDBACK_HEADER, feedback_rows
from .data import ReportData, fmt_pct, fmt_usd
from .text import (GROUP_HEADER, METHOD_NOTES, SHADOW_POLICY_HEADER, cost_lines, flags, group_rows, headline_rows,
                   learning_lines, shadow_policy_rows, window_text)

__all__ = ["to_html"]

_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#d9e2ec; --bg:#f5f7fa; --good:#2f8132; --warn:#b44d12; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:28px 24px 48px; }
h1 { font-size:26px; margin:0 0 4px; } h2 { font-size:19px; margin:32px 0 10px; }
.meta { color:var(--muted); margin:0 0 20px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(220px,1fr)); gap:14px; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.card .label { color:var(--muted); font-size:13px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:24px; font-weight:650; margin-top:2px; }
.card .sub { color:var(--muted); font-size:13px; }
.card.good .value { color:var(--good); }
.flags { margin:18px 0 0; padding:12px 16px; border-radius:10px; background:#fff4e5; border:1px solid #f5c38b; }
.flags li { color:var(--warn); } .flags.ok { background:#eef8ee; border-color:#b7dfb9; }
.flags.ok li { color:var(--good); }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); border-radius:10px;
        overflow:hidden; font-size:14px; }
th, td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef2f7; font-weight:600; } tr:last-child td { border-bottom:none; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.grid { display:grid; grid-template-columns:repeat(auto-fit,minmax(480px,1fr)); gap:16px; }
figure { margin:0; background:#fff; border:1px solid var(--line); border-radius:10px; padding:10px; }
figure img { width:100%; height:auto; display:block; }
figcaption { color:var(--muted); font-size:13px; margin-top:6px; }
ul.notes li { margin-bottom:6px; color:var(--muted); }
"""


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _table(header: list[str] | None, rows: list[list[str]]) -> str:
    def cell(v: str, i: int) -> str:
        numeric = i > 0 and (v[:1].isdigit() or v[:1] in "$-")
        return f'<td class="num">{escape(v)}</td>' if numeric else f"<td>{escape(v)}</td>"

    head = "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(cell(v, i) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _card(label: str, value: str, sub: str = "", good: bool = False) -> str:
    cls = "card good" if good else "card"
    return (f'<div class="{cls}"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>'
            f'<div class="sub">{escape(sub)}</div></div>')


def _plots(data: ReportData) -> str:
    if not data.records or data.summary.ok == 0:
        return "<p>No successful requests in this window: nothing to plot.</p>"
    size, name = plots.bucket_size(data.first_ts or 0.0, data.last_ts or 0.0)
    rows = plots.buckets(data.records, size)
    figures = [
        _img(plots.cost_per_bucket_png(rows, name), f"Cost per {name}: actual vs all-cloud",
             f"Actual cost (every call) beside what the same requests would have cost on the cloud tier, per {name}."),
        _img(plots.cumulative_savings_png(data.records), "Cumulative savings",
             "All-cloud cost minus actual cost, summed request by request."),
        _img(plots.share_png(rows, name), f"Share local / escalated per {name}",
             "Of ok requests: answered locally, escalated to the cloud after a failed check, routed to the cloud."),
        _img(plots.latency_png(data.latency), "Latency per tier",
             "Wall time of each ok call, per tier (log scale); escalated requests' local attempts included."),
    ]
    if any(s.similarity is not None for s in data.shadows):
        figures.append(_img(plots.agreement_png(data.shadows), "Shadow-sample agreement",
                            "Similarity of a local answer to the cloud's answer for the same request: shadow samples "
                            "(served locally, also sent to the cloud) and escalated requests' local attempts."))
    return '<div class="grid">' + "".join(figures) + "</div>"


def _learning(data: ReportData) -> list[str]:
    """The "Learning" section: what is kept, labels, feedback by tier, learning curves."""
    section = data.learning
    if section is None:
        return []
    out = ['<h2 id="learning">Learning</h2>',
           '<ul class="notes">' + "".join(f"<li>{escape(line)}</li>" for line in learning_lines(section)) + "</ul>"]
    if section.feedback:
        out.append(_table(FEEDBACK_HEADER, feedback_rows(section)))
    if section.curves:
        out.append(_img(plots.learning_curve_png(section.curves), "Learning curves",
                        "Held-out APGR on later traffic against the judged labels used, per curve."))
    return out


def to_html(data: ReportData) -> str:
    """Cards (actual, all-cloud, savings, quality), flags, plots, then the tables of the
    Markdown report."""
    s = data.summary
    q = s.quality
    quality_value = fmt_pct(q.estimate) if q and q.estimate is not None else "unknown"
    quality_sub = (f"95% CI {fmt_pct(q.lo)}-{fmt_pct(q.hi)}, {q.rate.samples} shadow samples" if q and q.estimate is not None
                   else "no shadow samples: set shadow.rate")
    savings_sub = "n/a" if s.savings_pct is None else f"{s.savings_pct:.1f}% of all-cloud"
    cards = "".join([
        _card("Actual cost", fmt_usd(s.actual_usd), f"{s.requests} requests, {fmt_pct(s.local_share)} served locally"),
        _card("All-cloud cost", fmt_usd(s.all_cloud_usd), "the same requests on the cloud tier"),
        _card("Savings", fmt_usd(s.savings_usd), savings_sub, good=s.savings_usd > 0),
        _card("Quality retention", quality_value, quality_sub),
    ])
    warnings = flags(s)
    flag_html = (f'<ul class="flags">{"".join(f"<li>{escape(w)}</li>" for w in warnings)}</ul>' if warnings
                 else '<ul class="flags ok"><li>Every call is priced.</li></ul>')
    sections = [
        "<h2>Summary</h2>", _table(None, [[k, v] for k, v in headline_rows(s)]),
        "<h2>Plots</h2>", _plots(data),
        "<h2>Cost breakdown</h2>", _table(*cost_lines(s)),
        "<p class=\"meta\">Calls by price source: "
        + escape(", ".join(f"{k}: {v}" for k, v in s.price_sources.items()) or "none")
        + f". Cached prompt tokens: {s.cached_prompt_tokens}.</p>",
    ]
    if data.shadow_policies:
        sections += ["<h2>Shadow policy vs active (same requests)</h2>",
                     _table(SHADOW_POLICY_HEADER, shadow_policy_rows(data.shadow_policies))]
    if data.by:
        sections += [f"<h2>By {escape(data.by)}</h2>", _table(GROUP_HEADER, group_rows(data.groups))]
    if data.by != "day":
        sections += ["<h2>Per day (UTC)</h2>", _table(GROUP_HEADER, group_rows(data.days))]
    sections += ["<h2>Latency per tier</h2>",
                 _table(["tier", "calls", "p50", "p95", "max"],
                        [[t.tier, str(t.calls), f"{t.p50_ms:,.0f} ms", f"{t.p95_ms:,.0f} ms", f"{t.max_ms:,.0f} ms"]
                         for t in data.latency]),
                 *_learning(data),
                 "<h2>How the figures are computed</h2>",
                 '<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in METHOD_NOTES) + "</ul>"]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>slm-router report</title><style>{_CSS}</style></head><body><main>"
        "<h1>slm-router cost and quality report</h1>"
        f'<p class="meta">Log: {escape(data.source)}. {escape(window_text(data))}</p>'
        f'<section class="cards">{cards}</section>{flag_html}'
        + "".join(sections) + "</main></body></html>\n"
    )
