"""Proxy overhead side by side: direct backend vs slm-router vs the LiteLLM proxy.

One command (after ``pip install -e '.[bench]'``): ``python bench/proxy.py``

Starts, on this machine: a fast fake OpenAI-compatible backend (bench/fake_backend.py),
``slm-router serve`` with both tiers pointing at it, and ``litellm --config`` with one
model pointing at it; drives the same closed-loop load at each (aiohttp, keep-alive) and
prints p50/p99 latency at concurrency 1 and 16, requests/s at 16, streaming
time-to-first-token (TTFT) at concurrency 1, and each as a ratio to direct and to LiteLLM.
slm-router runs twice: with the routing decision (``model: auto``, ~200-token prompts, a
different one on every request so the embedding cache never answers: the policy's scorer,
MiniLM embedding + classifier) and with a forced tier (``model: cloud``).
Each server's CPU time per request at concurrency 16 is read from ``/proc`` (with its child
processes), and ``litellm.acompletion`` is timed alone in this process against the same backend:
its CPU per call is the floor of any proxy that calls litellm once per request, so the LiteLLM
proxy's CPU per request over that floor is the most "req/s xLiteLLM" a litellm-based proxy can
reach when the box is CPU-bound. Likewise, the tier calls slm-router logged for the forced tier's
requests at concurrency 1 (``calls.latency_ms``: litellm's call and the reading of its answer)
bound from below the latency any proxy making that call can add.
Then: resident memory of ``serve`` on the default policy (SmolLM2 and MiniLM loaded) and
the time from process start to its first answered request.

Every target is measured once per round (``--rounds``, default 3), rounds one after another,
and each ratio to the LiteLLM proxy is taken within a round, then the median over rounds is
printed (bench/proxy_report.py says why); start-up is measured once per round too.

Numbers are medians over the run, in ms; 2 cores are shared by load generator, backend
and proxy, as in production on a small box.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_report import DIRECT, FORCED, GOALS, LITELLM, Result, round_lines, table  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCH_KEY = "sk-bench-" + "5f1c0de2" * 6  # sent to every target; the LiteLLM proxy's master key
SHORT = "Say hello."
LONG = ("Natalia sold clips to {n} of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May? ") * 5  # ~200 tokens; {n} varies per request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
    import urllib.request

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout_s}s")


@dataclass
class Target:
    name: str
    url: str
    model: str
    prompt: str
    pid: int | None = None  # the serving process: its CPU time (with its children) is read around the c16 run


_sent = 0


def _prompt(t: Target) -> str:
    """The target's prompt; a template with ``{n}`` becomes a new text on every request."""
    global _sent
    _sent += 1
    return t.prompt.replace("{n}", str(_sent)) if "{n}" in t.prompt else t.prompt


async def _one(session: aiohttp.ClientSession, t: Target, stream: bool) -> float:
    body = {"model": t.model, "messages": [{"role": "user", "content": _prompt(t)}], "max_tokens": 32,
            "stream": stream}
    start = time.perf_counter()
    async with session.post(t.url, json=body, headers={"authorization": f"Bearer {BENCH_KEY}"}) as r:
        if r.status != 200:
            raise RuntimeError(f"{t.name}: HTTP {r.status}: {(await r.text())[:300]}")
        if not stream:
            await r.read()
            return (time.perf_counter() - start) * 1000
        ttft = None
        async for line in r.content:
            if ttft is None and line.startswith(b"data: {") and _has_content(line[6:]):
                ttft = (time.perf_counter() - start) * 1000
        return ttft if ttft is not None else (time.perf_counter() - start) * 1000


def _has_content(data: bytes) -> bool:
    """True when an SSE chunk carries answer text (time to first token stops there)."""
    chunk = json.loads(data)
    return any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or [])


async def _closed_loop(t: Target, concurrency: int, total: int, stream: bool = False) -> tuple[list[float], float]:
    latencies: list[float] = []
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        for _ in range(min(10, total)):  # warm-up
            await _one(session, t, stream)
        remaining = total
        start = time.perf_counter()

        async def worker():
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                latencies.append(await _one(session, t, stream))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, total / elapsed


def _p(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system, s) of process ``pid`` and of its live child processes (the
    LiteLLM proxy and uvicorn may run the app in a child), from ``/proc``; 0 for a process gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(process_cpu_s(int(c)) for c in children)


def measure(t: Target, n: int) -> tuple[Result, tuple[float, float]]:
    """One round of target ``t``: its :class:`Result`, and the wall-clock window (epoch s) of
    its run at concurrency 1 (to find those requests in slm-router's log)."""
    w0 = time.time()
    c1, _ = asyncio.run(_closed_loop(t, 1, n))
    window = (w0, time.time())
    before = process_cpu_s(t.pid) if t.pid else 0.0
    c16, rps = asyncio.run(_closed_loop(t, 16, n * 4))
    # the warm-up requests of the c16 run are counted too (10 of n * 4 + 10)
    cpu_ms = (process_cpu_s(t.pid) - before) * 1000 / (n * 4 + 10) if t.pid else float("nan")
    ttft, _ = asyncio.run(_closed_loop(t, 1, max(20, n // 2), stream=True))
    return Result(statistics.median(c1), _p(c1, 0.99), statistics.median(c16), _p(c16, 0.99), rps,
                  statistics.median(ttft), cpu_ms), window


def tier_call_p50_ms(log: Path, window: tuple[float, float]) -> float:
    """Median latency (ms) of the tier calls slm-router logged (``calls.latency_ms``: the
    ``litellm.acompletion`` call and the reading of its answer) for the requests received in
    ``window`` (epoch s); nan when none."""
    import sqlite3

    with sqlite3.connect(log) as db:
        rows = [r[0] for r in db.execute(
            "SELECT c.latency_ms FROM calls c JOIN requests r ON r.id = c.request_id "
            "WHERE c.purpose = 'primary' AND r.ts BETWEEN ? AND ?", window)]
    return statistics.median(rows) if rows else float("nan")


def litellm_floor_cpu_ms(backend: str, calls: int = 800, concurrency: int = 16) -> float:
    """CPU time (ms) per ``litellm.acompletion`` call made in this process against the fake
    backend, at ``concurrency`` (the same model string and settings as the router's cloud tier:
    ``num_retries=0``, debug info off, litellm's own transport). Any proxy that makes one such
    call per request spends at least this much CPU on it, so LiteLLM-proxy CPU per request
    divided by it bounds the throughput ratio a litellm-based proxy can reach on a CPU-bound box."""
    import resource

    import litellm

    litellm.suppress_debug_info = True
    kwargs = dict(model="openai/gpt-4o-mini", api_base=backend + "/v1", api_key="sk-bench", max_tokens=32,
                  messages=[{"role": "user", "content": SHORT}], num_retries=0, timeout=30)

    async def run(n: int) -> None:
        remaining = n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await litellm.acompletion(**kwargs)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    async def both() -> float:
        await run(50)  # warm-up: litellm's lazy imports and client cache
        start = cpu()
        await run(calls)
        return (cpu() - start) * 1000 / calls

    return asyncio.run(both())


def call_floor_line(log: Path, windows: list[tuple[float, float]], results: dict[str, list[Result]]) -> str:
    """The floor that litellm's own call puts under the forced tier's 'added p50 xLiteLLM': in
    each round, the median logged tier call at concurrency 1 minus the direct backend's p50
    (the call includes the backend's own answer), over the LiteLLM proxy's added p50; the
    median over rounds. A proxy that calls litellm once per request cannot add less than the
    call itself takes."""
    per_round = []
    for window, direct, lite in zip(windows, results[DIRECT], results[LITELLM]):
        call, added = tier_call_p50_ms(log, window) - direct.p50_c1, lite.p50_c1 - direct.p50_c1
        per_round.append((call, call / added if added > 0 else float("nan")))
    if not per_round:
        return "litellm's own call: no forced-tier round measured"
    call = statistics.median(c for c, _ in per_round)
    ratio = statistics.median(r for _, r in per_round)
    return (f"litellm's own call inside the forced tier at concurrency 1 (slm-router's log): {call:.2f} ms "
            f"beyond the direct backend, {ratio:.2f}x the LiteLLM proxy's added p50 (per round: "
            + "/".join(f"{r:.2f}" for _, r in per_round)
            + "): the floor of 'added p50 xLiteLLM' for a proxy that makes that call")


def start(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env or os.environ.copy(), cwd=cwd)


def slm_router_command() -> list[str]:
    """How to run ``slm-router`` from this interpreter's environment (its console script, or
    ``python -m router.cli`` when none is installed)."""
    script = Path(sys.executable).parent / "slm-router"
    return [str(script)] if script.exists() else [sys.executable, "-m", "router.cli"]


def start_fake_backend(work: Path, env: dict) -> tuple[subprocess.Popen, str]:
    """Start ``bench/fake_backend.py`` on a free port and wait for it; returns (process, base URL)."""
    port = free_port()
    proc = start([sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "fake_backend:app",
                  "--port", str(port), "--log-level", "warning", "--no-access-log"], work / "backend.log", env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", proc)
    return proc, url


def wait_log_writer(healthz: str, timeout_s: float = 120.0) -> None:
    """Wait until ``serve``'s log-writer process has started (``/healthz`` ``log_writer.mode`` no
    longer ``starting``): until then the server writes the log itself, and a target measured
    meanwhile is measured on another code path (on a loaded box the child's litellm import
    took 15 s)."""
    import urllib.request

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        health = json.loads(urllib.request.urlopen(healthz, timeout=5).read())
        if (health.get("log_writer") or {}).get("mode") != "starting":
            return
        time.sleep(0.2)
    raise RuntimeError(f"the log-writer process did not start in {timeout_s}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def log_writer_rss_mb(pid: int) -> float:
    """Resident memory (MB) of ``serve``'s log-writer process (``router.ledger.log_process``), 0 when none."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    for child in children:
        try:
            if b"router.ledger.log_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                return rss_mb(int(child))
        except OSError:
            continue
    return 0.0


def startup_and_memory(work: Path, slm_router: list[str]) -> tuple[float, float, float]:
    """Time (s) from starting `serve` on the default policy to its first answered chat
    request, its resident memory (MB) after answering with SmolLM2, and that of its
    log-writer process (MB; the SmolLM2 worker processes are not counted)."""
    import urllib.request

    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": ""}
    policy = work / "default-policy.yaml"
    shutil.copy(HERE.parent / "policies" / "default.yaml", policy)
    text = policy.read_text().replace("path: slm-router.sqlite3", f"path: {work / 'default-log.sqlite3'}")
    policy.write_text(text)
    t0 = time.perf_counter()
    proc = start(slm_router + ["serve", "--policy", str(policy), "--port", str(port), "--log-level", "warning"],
                 work / "serve-default.log", env=env)
    body = json.dumps({"model": "local", "messages": [{"role": "user", "content": "What is the capital of Japan?"}],
                       "max_tokens": 16}).encode()
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(work / 'serve-default.log').read_text()[-2000:]}")
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                             headers={"content-type": "application/json"})
                urllib.request.urlopen(req, timeout=60).read()
                break
            except Exception:
                time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        # exercise the embedder too, then read memory
        auto = body.replace(b'"local"', b'"auto"')
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=auto,
                                                      headers={"content-type": "application/json"}), timeout=60).read()
        time.sleep(1.0)  # the log-writer process has answered its first batch by now
        return elapsed, rss_mb(proc.pid), log_writer_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description="Proxy overhead: direct vs slm-router vs LiteLLM proxy")
    parser.add_argument("-n", type=int, default=200, help="requests per measurement at concurrency 1")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds: every target measured once per round; medians and per-round ratios")
    parser.add_argument("--skip-litellm", action="store_true", help="measure without the LiteLLM proxy")
    args = parser.parse_args()

    bindir = Path(sys.executable).parent
    slm_router = slm_router_command()
    litellm_bin = bindir / "litellm"
    work = Path(tempfile.mkdtemp(prefix="slm-router-bench-"))
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    try:
        backend_proc, backend = start_fake_backend(work, env)
        procs.append(backend_proc)

        rport = free_port()
        policy = {
            "tiers": {
                "local": {"model": "openai/bench-local", "api_key": "sk-bench", "api_base": backend + "/v1",
                          "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-bench", "api_base": backend + "/v1"},
            },
            "escalation": {"enabled": False},
            "log": {"store": "sqlite", "path": str(work / "bench.sqlite3")},
        }
        (work / "policy.yaml").write_text(yaml.safe_dump(policy))
        procs.append(start(slm_router + ["serve", "--policy", str(work / "policy.yaml"), "--port", str(rport),
                                         "--log-level", "warning"], work / "router.log", env))
        wait_http(f"http://127.0.0.1:{rport}/healthz", procs[-1])
        wait_log_writer(f"http://127.0.0.1:{rport}/healthz")

        targets = [
            Target(DIRECT, backend + "/v1/chat/completions", "fake", SHORT),
            Target(FORCED, f"http://127.0.0.1:{rport}/v1/chat/completions", "cloud", SHORT,
                   procs[-1].pid),
            Target("slm-router, routing decision (~200 tok)", f"http://127.0.0.1:{rport}/v1/chat/completions", "auto", LONG,
                   procs[-1].pid),
        ]
        if not args.skip_litellm:
            if not litellm_bin.exists():
                print("LiteLLM proxy not installed: pip install -e '.[bench]' (or pass --skip-litellm)", file=sys.stderr)
                return 2
            lport = free_port()
            (work / "litellm.yaml").write_text(yaml.safe_dump({
                "model_list": [{
                    "model_name": "fake",
                    "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": backend + "/v1", "api_key": "sk-bench"},
                }],
                "general_settings": {"master_key": BENCH_KEY},
            }))
            procs.append(start([str(litellm_bin), "--config", str(work / "litellm.yaml"), "--port", str(lport)],
                               work / "litellm.log", env))
            wait_http(f"http://127.0.0.1:{lport}/health/liveliness", procs[-1])
            targets.append(Target(LITELLM, f"http://127.0.0.1:{lport}/v1/chat/completions", "fake", SHORT,
                                  procs[-1].pid))

        results: dict[str, list[Result]] = {t.name: [] for t in targets}
        forced_c1: list[tuple[float, float]] = []  # the forced tier's c1 windows, one per round
        for rnd in range(args.rounds):
            for t in targets:
                r, window = measure(t, args.n)
                results[t.name].append(r)
                if t.name == FORCED:
                    forced_c1.append(window)
                print(f"round {rnd + 1}/{args.rounds}: {t.name}: p50 {r.p50_c1:.2f} ms, {r.rps_c16:.0f} req/s",
                      file=sys.stderr)
        print("\n".join(table(results) + round_lines(results)))
        lite = results.get(LITELLM)
        floor = litellm_floor_cpu_ms(backend)
        print(f"litellm.acompletion alone, in this process at concurrency 16: {floor:.2f} ms CPU per call")
        if lite and floor > 0:
            lite_cpu = statistics.median(r.cpu_ms_c16 for r in lite)
            forced_cpu = statistics.median(r.cpu_ms_c16 for r in results[FORCED])
            print(f"  -> a proxy that makes one litellm call per request and does nothing else would use "
                  f"{lite_cpu / floor:.2f}x less CPU per request than the LiteLLM proxy "
                  f"(the ceiling of 'rps xLiteLLM' on a CPU-bound box); slm-router's forced tier: "
                  f"{lite_cpu / forced_cpu:.2f}x")
        if lite:
            time.sleep(1.5)  # the log writer's last batch
            print(call_floor_line(work / "bench.sqlite3", forced_c1, results))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    starts = [startup_and_memory(work, slm_router) for _ in range(args.rounds)]
    startup_s, rss, writer_rss = (statistics.median(x[i] for x in starts) for i in range(3))
    print("\nserve on the default policy (SmolLM2 + the default scorer loaded): start to first answer "
          f"{startup_s:.1f} s, resident memory {rss:.0f} MB + {writer_rss:.0f} MB in its log-writer process "
          f"(medians of {len(starts)} starts: " + ", ".join(f"{x[0]:.1f} s" for x in starts)
          + "; goals: <= 5 s, <= 600 MB)")
    print(GOALS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
