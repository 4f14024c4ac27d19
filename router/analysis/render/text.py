"""Wording shared by the Markdown and HTML reports (pure)."""

from __future__ import annotations

from ..policy_compare import ShadowComparison
from ..quality import Retention
from ..report import Summary
from .data import ReportData, fmt_pct, fmt_time, fmt_usd

__all__ = ["window_text", "quality_text", "headline_rows", "cost_lines", "flags", "group_rows", "GROUP_HEADER",
           "METHOD_NOTES", "SHADOW_POLICY_HEADER", "shadow_policy_rows"]

METHOD_NOTES = [
    "Actual cost: every logged call, priced from litellm's model price map (prompt, cached-prompt and "
    "completion tokens priced separately) or from the tier's YAML price (per token, or hardware USD/hour "
    "spread over the calls by the time each held it). A call with no known price is flagged, never $0.",
    "All-cloud cost (counterfactual): what each request would have cost on the cloud tier. Requests the cloud "
    "answered use their real cost; for the others the prompt is counted with the cloud model's tokenizer "
    "(litellm) and the completion is estimated as the returned answer's text counted with the same "
    "tokenizer, capped at the request's max_tokens (assumption: the cloud answers at the same length).",
    "Escalation tax: tokens, cost and latency of the local attempts of requests that were escalated to the "
    "cloud anyway. Self-check: calls made only to check an answer. Both are part of the actual cost.",
    "Quality retention: share of requests whose answer is as good as the cloud's. Cloud answers count as "
    "retained; locally served ones by their shadow sample (the same request also sent to the cloud in the "
    "background, agreement = MiniLM cosine similarity at or above shadow.agree_at, or an LLM judge's "
    "verdict), unsampled ones at the sampled agreement rate; 95% interval from the Wilson interval of "
    "that rate. Shadow calls are a real spend, shown on their own line and taken off net savings.",
    "Judge: the judge tier is asked whether the local answer is better than, as good as, or worse than the "
    "cloud's (BETTER / SAME / WORSE), with the answers in both orders (shadow.judge_swap); a verdict only when "
    "both orders agree, else tie/unsure (the sample then falls back to the embedding agreement). Better or as "
    "good in both orders is the verdict 'at least as good' even when the two differ; the three-way counts "
    "(local better / as good / worse) are what slm-router learn reads as label weights. Its prompt and "
    "completion tokens are priced on the line \"judge\", part of the shadow spend.",
]

GROUP_HEADER = ["group", "requests", "served locally", "escalated", "actual cost", "all-cloud cost", "savings",
                "savings %", "quality retention"]


def window_text(data: ReportData) -> str:
    """One line: the window asked for and the requests it holds."""
    asked = f"{fmt_time(data.since) if data.since else 'start of log'} to {fmt_time(data.until) if data.until else 'now'}"
    held = (f"{data.summary.requests} requests from {fmt_time(data.first_ts)} to {fmt_time(data.last_ts)}"
            if data.first_ts is not None else "no requests")
    return f"Window: {asked}; {held}."


def quality_text(q: Retention | None) -> str:
    """Retention with its interval and where it comes from."""
    if q is None or q.requests == 0:
        return "no requests"
    r = q.rate
    if q.estimate is None:
        return (f"unknown: no shadow samples (between {fmt_pct(q.lo)} and {fmt_pct(q.hi)}); "
                "set shadow.rate in the policy to measure it")
    sampled = (f"{r.samples} shadow samples, {r.agreeing} agree ({fmt_pct(r.rate)}, 95% CI "
               f"{fmt_pct(r.lo)}-{fmt_pct(r.hi)}"
               + (f", mean similarity {r.mean_similarity:.3f}" if r.mean_similarity is not None else "") + ")")
    return f"{fmt_pct(q.estimate)} (95% CI {fmt_pct(q.lo)}-{fmt_pct(q.hi)}); {sampled}"


def headline_rows(s: Summary) -> list[tuple[str, str]]:
    """(label, value) rows of the headline table."""
    savings_pct = "n/a" if s.savings_pct is None else f"{s.savings_pct:.1f}%"
    return [
        ("requests", f"{s.requests} ({s.ok} ok, {s.failed} failed)"),
        ("served locally", f"{s.local} ({fmt_pct(s.local_share)} of ok)"),
        ("escalated to the cloud", f"{s.escalated} ({fmt_pct(s.escalation_rate)} of ok)"),
        ("degraded (cloud unavailable)", str(s.degraded)),
        ("answered from cache", str(s.cache_hits)),
        ("actual cost", fmt_usd(s.actual_usd)),
        ("all-cloud cost", fmt_usd(s.all_cloud_usd)),
        ("savings", f"{fmt_usd(s.savings_usd)} ({savings_pct})"),
        ("shadow sampling spend", f"{fmt_usd(s.shadow_usd)} (judge {fmt_usd(s.judge_usd)})"),
        ("net savings", fmt_usd(s.net_savings_usd)),
        ("estimated quality retention", quality_text(s.quality)),
    ]


def cost_lines(s: Summary) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the cost breakdown: serving, escalation tax, self-check, shadow, judge."""
    header = ["line", "calls", "prompt tokens", "completion tokens", "cost", "latency (sum) or note"]
    serving_calls = sum(s.price_sources.values())
    rows = [
        ["serving (all calls)", str(serving_calls), str(s.prompt_tokens), str(s.completion_tokens),
         fmt_usd(s.actual_usd), "-"],
        ["of which: escalation tax (local attempts of escalated requests)", str(s.escalation_tax_calls),
         str(s.escalation_tax_prompt_tokens), str(s.escalation_tax_completion_tokens), fmt_usd(s.escalation_tax_usd),
         f"{s.escalation_tax_latency_ms:,.0f} ms"],
        ["of which: self-check calls", str(s.self_check_calls), f"{s.self_check_tokens} (total)", "-",
         fmt_usd(s.self_check_usd), "-"],
        ["of which: consistency samples", str(s.consistency_calls), f"{s.consistency_tokens} (total)", "-",
         fmt_usd(s.consistency_usd), "-"],
        ["shadow sampling (extra calls)", str(s.shadow_calls), "-", "-", fmt_usd(s.shadow_usd - s.judge_usd),
         f"{s.shadow_calls - s.local_shadow_calls} cloud (beside local answers), "
         f"{s.local_shadow_calls} local (beside cloud answers)"],
        ["judge", str(s.judge_calls), str(s.judge_prompt_tokens), str(s.judge_completion_tokens),
         fmt_usd(s.judge_usd), f"{s.judge_samples} samples, {s.judge_unsure} tie/unsure" + (
             "; local better {better} / as good {same} / worse {worse}".format(
                 **{o: s.judge_outcomes.get(o, 0) for o in ("better", "same", "worse")}) if s.judge_outcomes else "")],
    ]
    return header, rows


def flags(s: Summary) -> list[str]:
    """Warnings a reader must see: unpriced calls, unknown counterfactuals, failures."""
    out = []
    if s.unpriced_calls:
        out.append(f"{s.unpriced_calls} calls in {s.unpriced_requests} requests have no known price "
                   f"(models: {', '.join(s.unpriced_models)}); they are excluded from the actual cost, "
                   "which is therefore a lower bound. Add a price for them under the tier in the policy.")
    if s.unknown_counterfactual:
        out.append(f"{s.unknown_counterfactual} requests have no known all-cloud cost (the cloud model's price "
                   "is unknown); they are excluded from the all-cloud cost and the savings.")
    if s.cached_over_prompt:
        out.append(f"{s.cached_over_prompt} calls report more cached prompt tokens than prompt tokens; they are "
                   "priced with every prompt token cached (check the provider's usage report).")
    if s.failed:
        out.append(f"{s.failed} requests failed; their calls (if any) are in the actual cost.")
    return out


SHADOW_POLICY_HEADER = ["shadow version", "active version(s)", "requests", "same first tier", "cloud share active",
                        "cloud share shadow", "cost active", "cost shadow (estimated)", "shadow would refuse"]


def shadow_policy_rows(comparisons: list[ShadowComparison]) -> list[list[str]]:
    """Rows under :data:`SHADOW_POLICY_HEADER`: each version in shadow against the active
    policy on the same requests (:mod:`router.analysis.policy_compare`)."""
    return [[c.version, ", ".join(c.active_versions), str(c.requests), f"{c.agree} ({fmt_pct(c.agreement)})",
             fmt_pct(c.active_cloud_share), fmt_pct(c.shadow_cloud_share), fmt_usd(c.active_usd),
             fmt_usd(c.shadow_usd), str(c.refused)] for c in comparisons]


def _quality_cell(q: Retention | None) -> str:
    if q is None or q.estimate is None:
        return "n/a"
    return f"{fmt_pct(q.estimate)} [{fmt_pct(q.lo)}, {fmt_pct(q.hi)}]"


def group_rows(groups: list[tuple[str, Summary]]) -> list[list[str]]:
    """Rows under :data:`GROUP_HEADER`."""
    return [[key, str(s.requests), f"{s.local} ({fmt_pct(s.local_share)})",
             f"{s.escalated} ({fmt_pct(s.escalation_rate)})", fmt_usd(s.actual_usd), fmt_usd(s.all_cloud_usd),
             fmt_usd(s.savings_usd), "n/a" if s.savings_pct is None else f"{s.savings_pct:.1f}%",
             _quality_cell(s.quality)] for key, s in groups]


def learning_lines(section) -> list[str]:
    """What the log keeps for learning and the labels it holds, one line each
    (:class:`router.analysis.learning_report.LearningSection`)."""
    k, lb = section.kept, section.labels
    lines = [
        f"Kept for learning (log.keep_for_learning): {k['embedding']} requests with their embedding vector and text "
        f"features, no text; {k['text']} also with the scored text and the answers; {k['none']} with nothing. "
        "Shadow samples keep both answers whatever this setting.",
        f"Labels slm-router learn uses: {lb['shadow']} judged shadow samples, {lb['escalation']} escalations, "
        f"{lb['feedback']} feedback on local answers, {lb.get('local_shadow', 0)} judged cloud-routed requests "
        "(shadow.cloud_rate)"
        + (f"; {lb['without_embedding']} more labelled requests kept no embedding (learn cannot use them)."
           if lb.get("without_embedding") else "."),
    ]
    if not section.feedback:
        lines.append("No feedback (POST /v1/feedback) in this window.")
    return lines
