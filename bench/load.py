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

Usage: ``python bench/load.py [-n 10000] [-c 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_inputs import BAD_INPUTS, BadInput, answer_problem, send_raw  # noqa: E402
from proxy import free_port, slm_router_command, start, start_fake_backend, wait_http  # noqa: E402

SHAPED = "4xx, the API's error shape"


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


async def _run(base: str, port: int, n: int, concurrency: int) -> tuple[Counter, Counter, int, float]:
    url = base + "/v1/chat/completions"
    jobs: list[tuple[str, object]] = [("good", i) for i in range(n)]
    kinds = BAD_INPUTS
    every = max(1, n // (4 * len(kinds)))  # every bad kind about 4 times, spread through the run
    for k in range(0, n, every):
        jobs.insert(k + k // every, ("bad", kinds[(k // every) % len(kinds)]))
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
                    problem = await _bad(session, base, port, item)
                    bad[SHAPED if problem is None else f"{item.name}: {problem}"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return good, bad, len(jobs), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10000, help="good requests")
    parser.add_argument("-c", type=int, default=64, help="concurrent clients")
    args = parser.parse_args()
    slm_router = slm_router_command()
    work = Path(tempfile.mkdtemp(prefix="slm-router-load-"))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    procs = []
    try:
        backend_proc, backend = start_fake_backend(work, env)
        procs.append(backend_proc)
        log_path = work / "requests.sqlite3"
        policy = {"tiers": {"local": {"model": "openai/bench-local", "api_key": "sk-bench", "api_base": backend + "/v1",
                                      "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-bench", "api_base": backend + "/v1"}},
                  "log": {"path": str(log_path)}}
        (work / "policy.yaml").write_text(yaml.safe_dump(policy))
        rport = free_port()
        server = start(slm_router + ["serve", "--policy", str(work / "policy.yaml"), "--port", str(rport),
                                     "--log-level", "warning"], work / "router.log", env)
        procs.append(server)
        wait_http(f"http://127.0.0.1:{rport}/healthz", server)
        good, bad, sent, elapsed = asyncio.run(_run(f"http://127.0.0.1:{rport}", rport, args.n, args.c))
        t = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutdown_s = time.perf_counter() - t
        with sqlite3.connect(log_path) as con:
            rows = con.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        print(f"{args.n} good cloud requests (half streaming) + {sent - args.n} bad ones of {len(BAD_INPUTS)} kinds, "
              f"{args.c} concurrent, one run on {os.cpu_count()} CPUs")
        print(f"good: {good.get(200, 0)} answered 200; others: {dict((k, v) for k, v in good.items() if k != 200) or 'none'}")
        print(f"bad: {bad.get(SHAPED, 0)} answered 4xx in their API's error shape (OpenAI or Anthropic); others: "
              f"{dict((k, v) for k, v in bad.items() if k != SHAPED) or 'none'}")
        print(f"throughput: {sent / elapsed:.0f} req/s over {elapsed:.1f} s")
        print(f"log rows: {rows} for {sent} requests sent ({'none lost' if rows == sent else 'MISMATCH'})")
        print(f"shutdown after SIGTERM: {shutdown_s:.1f} s")
        return 0 if good.get(200, 0) == args.n and rows == sent and bad.get(SHAPED, 0) == sent - args.n else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
