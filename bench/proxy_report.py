"""The tables ``bench/proxy.py`` prints: per-target medians over interleaved rounds and the
ratios to the LiteLLM proxy, each ratio taken within a round and then the median over rounds.

Why rounds: on a shared 2-core box the machine's speed drifts (seen here: the same direct
backend at 7,724 and 1,878 req/s in two runs minutes apart), and a target measured minutes
after its baseline is compared with a different machine. Measuring every target once per
round, rounds one after another, puts each ratio's two sides a minute apart at most.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, fields

GOALS = ("goals (issue 17), as ratios to the LiteLLM proxy: routed added p50 <= 1.0x and req/s >= 1.5x; "
         "forced tier added p50 <= 0.4x and req/s >= 2.5x")
LITELLM = "LiteLLM proxy"
FORCED = "slm-router, forced tier"
DIRECT = "direct backend"


@dataclass
class Result:
    """One target's figures from one round (latencies in ms, throughput in requests/s)."""

    p50_c1: float
    p99_c1: float
    p50_c16: float
    p99_c16: float
    rps_c16: float
    ttft_p50: float
    cpu_ms_c16: float = float("nan")  # the serving process tree's CPU time per request at concurrency 16


@dataclass
class Ratios:
    """A target against the LiteLLM proxy in one round: added p50 at concurrency 1 (both minus
    the direct backend's p50 of the same round), requests/s at 16, added TTFT."""

    latency: float
    rps: float
    ttft: float


def ratios(r: Result, direct: Result, lite: Result) -> Ratios:
    """``r`` against ``lite``, both net of ``direct`` (same round); nan where LiteLLM adds nothing."""
    nan = float("nan")
    l_added, l_ttft = lite.p50_c1 - direct.p50_c1, lite.ttft_p50 - direct.ttft_p50
    return Ratios((r.p50_c1 - direct.p50_c1) / l_added if l_added > 0 else nan, r.rps_c16 / lite.rps_c16,
                  (r.ttft_p50 - direct.ttft_p50) / l_ttft if l_ttft > 0 else nan)


def median_result(rounds: list[Result]) -> Result:
    """Field-wise median of one target's rounds."""
    return Result(*(statistics.median(getattr(r, f.name) for r in rounds) for f in fields(Result)))


def table(results: dict[str, list[Result]]) -> list[str]:
    """The main table: one line per target, medians over its rounds; the ratio columns are the
    medians of the per-round ratios (:func:`ratios`), 'added' the median of per-round p50 minus
    the direct backend's."""
    direct = results[DIRECT]
    lite = results.get(LITELLM)
    header = (f"{'target':42s} {'p50 c1':>8s} {'p99 c1':>8s} {'p50 c16':>8s} {'p99 c16':>8s} {'req/s c16':>9s} "
              f"{'TTFT p50':>8s} {'added p50':>9s} {'xLiteLLM':>8s} {'rps xLiteLLM':>12s} {'TTFT+ xLiteLLM':>14s} "
              f"{'CPU/req c16':>11s}")
    lines = [header, "-" * len(header)]
    for name, rounds in results.items():
        m = median_result(rounds)
        added = statistics.median(r.p50_c1 - d.p50_c1 for r, d in zip(rounds, direct))
        if lite:
            per = [ratios(r, d, x) for r, d, x in zip(rounds, direct, lite)]
            cols = (f"{statistics.median(p.latency for p in per):8.2f} {statistics.median(p.rps for p in per):12.2f} "
                    f"{statistics.median(p.ttft for p in per):14.2f}")
        else:
            cols = f"{'n/a':>8s} {'n/a':>12s} {'n/a':>14s}"
        lines.append(f"{name:42s} {m.p50_c1:8.2f} {m.p99_c1:8.2f} {m.p50_c16:8.2f} {m.p99_c16:8.2f} {m.rps_c16:9.1f} "
                     f"{m.ttft_p50:8.2f} {added:9.2f} {cols} {m.cpu_ms_c16:11.2f}")
    lines.append("(ms; 'added' = p50 at concurrency 1 minus direct; xLiteLLM = ratio to the LiteLLM proxy's added "
                 "latency, its throughput, its added TTFT; CPU/req = the serving process's CPU time per request at "
                 f"concurrency 16; medians over {len(direct)} interleaved round(s), ratios taken within each round)")
    return lines


def round_lines(results: dict[str, list[Result]]) -> list[str]:
    """Each slm-router target's ratios round by round (``latency x / rps x``), so the spread shows."""
    if LITELLM not in results or len(results[DIRECT]) < 2:
        return []
    lines = ["per round, added p50 xLiteLLM / req/s xLiteLLM:"]
    for name, rounds in results.items():
        if name in (DIRECT, LITELLM):
            continue
        per = [ratios(r, d, x) for r, d, x in zip(rounds, results[DIRECT], results[LITELLM])]
        lines.append(f"  {name:42s} " + "  ".join(f"{p.latency:.2f}/{p.rps:.2f}" for p in per))
    return lines
