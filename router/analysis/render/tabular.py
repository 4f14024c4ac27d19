"""The report as JSON or CSV (pure)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

from ...ledger.judge import OUTCOMES
from ..report import Summary
from .data import ReportData

__all__ = ["to_json", "to_csv", "CSV_COLUMNS", "flat_summary"]

CSV_COLUMNS = [
    "group", "requests", "ok", "failed", "local", "escalated", "degraded", "local_share", "escalation_rate",
    "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "actual_usd", "all_cloud_usd", "savings_usd",
    "savings_pct", "escalation_tax_calls", "escalation_tax_prompt_tokens", "escalation_tax_completion_tokens",
    "escalation_tax_usd", "escalation_tax_latency_ms", "self_check_calls", "self_check_tokens", "self_check_usd",
    "consistency_calls", "consistency_tokens", "consistency_usd",
    "shadow_samples", "shadow_calls", "shadow_usd", "judge_samples", "judge_calls", "judge_prompt_tokens",
    "judge_completion_tokens", "judge_usd", "judge_unsure", "judge_better", "judge_same", "judge_worse", "net_savings_usd", "quality_estimate", "quality_lo",
    "quality_hi", "shadow_agreement_rate", "unpriced_calls", "unpriced_requests", "unknown_counterfactual",
]


def flat_summary(group: str, s: Summary) -> dict[str, Any]:
    """One CSV row: the summary's scalar fields, the judge's three-way verdicts
    (``judge_better``/``judge_same``/``judge_worse``: judged samples whose local answer was
    better than, as good as or worse than the cloud's, from ``Summary.judge_outcomes``; 0
    when none) and the quality estimate, keyed by :data:`CSV_COLUMNS`."""
    d = asdict(s)
    d.update({f"judge_{o}": s.judge_outcomes.get(o, 0) for o in OUTCOMES})
    q = s.quality
    d.update(group=group, quality_estimate=q.estimate if q else None, quality_lo=q.lo if q else None,
             quality_hi=q.hi if q else None, shadow_agreement_rate=q.rate.rate if q else None)
    return {k: d.get(k) for k in CSV_COLUMNS}


def to_json(data: ReportData) -> str:
    """The summary's fields at the top level (as ``report --json`` always printed), plus
    ``window``, ``by``, ``groups``, ``days`` and ``latency_by_tier``."""
    out = asdict(data.summary)
    out["window"] = {"since": data.since, "until": data.until, "first_ts": data.first_ts, "last_ts": data.last_ts,
                     "source": data.source}
    out["by"] = data.by
    out["groups"] = [{"group": k, **asdict(s)} for k, s in data.groups]
    out["days"] = [{"day": k, **asdict(s)} for k, s in data.days]
    out["shadow_policies"] = [{**asdict(c), "agreement": c.agreement} for c in data.shadow_policies]
    out["latency_by_tier"] = [{"tier": t.tier, "calls": t.calls, "p50_ms": t.p50_ms, "p95_ms": t.p95_ms,
                               "max_ms": t.max_ms} for t in data.latency]
    if data.learning is not None:
        out["learning"] = asdict(data.learning)
    return json.dumps(out, indent=2)


def to_csv(data: ReportData) -> str:
    """One row per group (``--by``), else one row ``all``; columns :data:`CSV_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = data.groups if data.by else [("all", data.summary)]
    for key, s in rows:
        writer.writerow(flat_summary(key, s))
    return buf.getvalue()
