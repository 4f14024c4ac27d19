"""Load and bad-input soak through the real server: nothing lost, no neighbour failed.

Starts the fast fake backend (``bench/fake_backend.py``) and ``slm-router serve`` with
both tiers on it, then sends, at once, ``-n`` good cloud requests (half streaming) from
``-c`` concurrent clients interleaved with every kind of bad input of the sweep
(``bench/bad_inputs.py``: malformed JSON, invalid Unicode, wrong types and out-of-range
numbers for every field, bad tools, tool_choice and response_format, broken HTTP framing,
oversize bodies, ... on the chat, Anthropic Messages, count_tokens, Responses and route
endpoints). Prints: good requests answered 200 (and the errors), bad ones answered with a
4xx in their API's error JSON (and any other answer), requests/s, log rows written vs
requests sent, and how long ``serve`` takes to stop on SIGTERM.

``--baseline DIR`` (a checkout of an older commit, e.g. ``git worktree add --detach DIR
<commit>``) measures speed as a ratio on a shared, loaded machine: before the soak, a
second ``serve`` runs from DIR (``PYTHONPATH=DIR``; this checkout's server gets
``PYTHONPATH`` of this checkout) on the same backend, and both get the same ``-n`` good
cloud requests in ``--rounds`` alternating rounds (ABBA order, so a load change during
the run hits both alike). Prints each server's requests/s over its rounds and the ratio
current / baseline (overall and per round), and the server CPU each used per request
(``/proc``), which the machine's other load moves far less than wall time. Bad inputs are
left out of that comparison: the old server answers some of them differently (the defects
the sweep was written for), which would compare different work. The soak then runs on the current server only; its row count includes the
comparison's requests.

Usage: ``python bench/load.py [-n 10000] [-c 64] [--baseline DIR [--rounds 4]]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_inputs import BAD_INPUTS, BadInput, answer_problem, send_raw  # noqa: E402
from proxy import free_port, slm_router_command, start, start_fake_backend, wait_http  # noqa: E402

SHAPED = "4xx, the API's error shape"
HERE_CHECKOUT = Path(__file__).resolve().parent.parent


async def _good(session: aiohttp.ClientSession, url: str, i: int) -> int:
    stream = i % 2 == 0
    body = {"model": "cloud", "stream": stream, "max_tokens": 16,
            "messages": [{"role": "user", "content": f"Question {i}: say hello."}]}
    async with session.post(url, json=body) as r:
        data = await r.read()
        if stream and r.status == 200 and not data.rstrip().endswith(b"data: [DONE]"):
            return 599  # a stream that did not end properly
        return r.status


async def _bad(session: aiohttp.ClientSession, base: str, port: int, kind: BadInput) -> str | None:
    """Send one bad input; what is wrong with the answer, or None (a 4xx in the API's error shape)."""
    if kind.raw is not None:
        status, body = await send_raw("127.0.0.1", port, kind.raw)
    else:
        async with session.request(kind.method, base + kind.path, data=kind.body or None,
                                   headers=kind.request_headers(), skip_auto_headers=("content-type",)) as r:
            status, body = r.status, await r.read()
    return answer_problem(kind, status, body)


def _soak_jobs(n: int, first: int = 0) -> list[tuple[str, object]]:
    """``n`` good requests (numbered from ``first``) with every bad kind about 4 times, spread through."""
    jobs: list[tuple[str, object]] = [("good", first + i) for i in range(n)]
    kinds = BAD_INPUTS
    every = max(1, n // (4 * len(kinds)))
    for k in range(0, n, every):
        jobs.insert(k + k // every, ("bad", kinds[(k // every) % len(kinds)]))
    return jobs


@dataclass
class Served:
    """One running ``serve``: its process, port and request log."""

    name: str
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server process has used so far (``/proc``): a
        speed figure other processes on the machine move far less than wall time."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rows(self) -> int:
        with sqlite3.connect(self.log_path) as con:
            return con.execute("SELECT COUNT(*) FROM requests").fetchone()[0]


async def _run(server: Served, jobs: list[tuple[str, object]], concurrency: int) -> tuple[Counter, Counter, float]:
    """Send ``jobs`` from ``concurrency`` clients; (good statuses, bad-answer problems, seconds)."""
    url = server.base + "/v1/chat/completions"
    good, bad = Counter(), Counter()
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            while not queue.empty():
                kind, item = queue.get_nowait()
                if kind == "good":
                    good[await _good(session, url, item)] += 1
                else:
                    problem = await _bad(session, server.base, server.port, item)
                    bad[SHAPED if problem is None else f"{item.name}: {problem}"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return good, bad, elapsed


async def _compare(servers: list[Served], n: int, concurrency: int, rounds: int
                   ) -> dict[str, tuple[Counter, list[float], float]]:
    """The same ``n`` good cloud requests to every server, in ``rounds`` rounds whose server
    order alternates (ABBA); per server: statuses summed over its rounds, the seconds of
    each round, and the CPU seconds the server used for them."""
    out: dict[str, tuple[Counter, list[float], float]] = {s.name: (Counter(), [], 0.0) for s in servers}
    size = -(-n // rounds)
    for r in range(rounds):
        jobs = [("good", i) for i in range(r * size, min(n, (r + 1) * size))]
        for server in servers if r % 2 == 0 else servers[::-1]:
            cpu = server.cpu_s()
            good, _, elapsed = await _run(server, jobs, concurrency)
            statuses, seconds, used = out[server.name]
            statuses.update(good)
            seconds.append(elapsed)
            out[server.name] = (statuses, seconds, used + server.cpu_s() - cpu)
    return out


def _serve(name: str, checkout: Path, work: Path, backend: str, env: dict) -> Served:
    """``slm-router serve`` from ``checkout`` (its ``router`` package first on the path)."""
    log_path = work / f"{name}.sqlite3"
    policy = {"tiers": {"local": {"model": "openai/bench-local", "api_key": "sk-bench", "api_base": backend + "/v1",
                                  "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-bench", "api_base": backend + "/v1"}},
              "log": {"path": str(log_path)}}
    (work / f"{name}.yaml").write_text(yaml.safe_dump(policy))
    port = free_port()
    proc = start(slm_router_command() + ["serve", "--policy", str(work / f"{name}.yaml"), "--port", str(port),
                                         "--log-level", "warning"],
                 work / f"{name}.log", {**env, "PYTHONPATH": str(checkout)}, cwd=work)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return Served(name, proc, port, log_path)


def _statuses(good: Counter) -> str:
    return f"{good.get(200, 0)} answered 200; others: {dict((k, v) for k, v in good.items() if k != 200) or 'none'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10000, help="good requests")
    parser.add_argument("-c", type=int, default=64, help="concurrent clients")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="checkout of an older commit whose server the same good load is compared with")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of the comparison")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="slm-router-load-"))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    procs = []
    try:
        backend_proc, backend = start_fake_backend(work, env)
        procs.append(backend_proc)
        current = _serve("current", HERE_CHECKOUT, work, backend, env)
        procs.append(current.proc)
        compared_sent = 0
        ok = True
        if args.baseline is not None:
            baseline = _serve("baseline", args.baseline.resolve(), work, backend, env)
            procs.append(baseline.proc)
            runs = asyncio.run(_compare([baseline, current], args.n, args.c, max(1, args.rounds)))
            baseline.proc.send_signal(signal.SIGTERM)
            baseline.proc.wait(timeout=60)  # stopped before the soak: it would take CPU from it
            compared_sent = args.n
            print(f"comparison: the same {args.n} good cloud requests (half streaming), {args.c} concurrent, "
                  f"{args.rounds} alternating rounds, baseline {args.baseline}")
            rps, cpu_ms = {}, {}
            for name, (good, seconds, used) in runs.items():
                rps[name], cpu_ms[name] = args.n / sum(seconds), used * 1000 / args.n
                print(f"  {name}: {rps[name]:.0f} req/s over {sum(seconds):.1f} s, {cpu_ms[name]:.2f} ms of "
                      f"server CPU per request; {_statuses(good)}")
            per_round = sorted(b / c for b, c in zip(runs["baseline"][1], runs["current"][1]))
            print(f"  current / baseline: {rps['current'] / rps['baseline']:.2f}x req/s "
                  f"(per round: {', '.join(f'{x:.2f}' for x in per_round)}); "
                  f"{cpu_ms['current'] / cpu_ms['baseline']:.2f}x CPU per request")
            ok = runs["current"][0].get(200, 0) == args.n
        jobs = _soak_jobs(args.n, first=args.n)
        good, bad, elapsed = asyncio.run(_run(current, jobs, args.c))
        t = time.perf_counter()
        current.proc.send_signal(signal.SIGTERM)
        current.proc.wait(timeout=60)
        shutdown_s = time.perf_counter() - t
        rows, sent = current.rows(), len(jobs) + compared_sent
        print(f"{args.n} good cloud requests (half streaming) + {len(jobs) - args.n} bad ones of {len(BAD_INPUTS)} "
              f"kinds, {args.c} concurrent, one run on {os.cpu_count()} CPUs")
        print(f"good: {_statuses(good)}")
        print(f"bad: {bad.get(SHAPED, 0)} answered 4xx in their API's error shape (OpenAI or Anthropic); others: "
              f"{dict((k, v) for k, v in bad.items() if k != SHAPED) or 'none'}")
        print(f"throughput: {len(jobs) / elapsed:.0f} req/s over {elapsed:.1f} s")
        print(f"log rows: {rows} for {sent} requests sent ({'none lost' if rows == sent else 'MISMATCH'})")
        print(f"shutdown after SIGTERM: {shutdown_s:.1f} s")
        return 0 if ok and good.get(200, 0) == args.n and rows == sent and bad.get(SHAPED, 0) == len(jobs) - args.n else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
