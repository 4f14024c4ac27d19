"""Load and bad-input soak through the real server: nothing lost, no neighbour failed.

Starts the fast fake backend (``bench/fake_backend.py``) and ``slm-router serve`` with
both tiers on it, then sends, at once, ``-n`` good cloud requests (half streaming) from
``-c`` concurrent clients interleaved with every kind of bad input in :data:`BAD_INPUTS`
(malformed JSON, invalid Unicode, wrong types, unknown fields and models, poisoned
tools, oversize bodies, ...). Prints: good requests answered 200 (and the errors), bad
ones answered with a 4xx in OpenAI's JSON shape (and any other answer), requests/s, log
rows written vs requests sent, and how long ``serve`` takes to stop on SIGTERM.

Usage: ``python bench/load.py [-n 10000] [-c 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from proxy import free_port, slm_router_command, start, start_fake_backend, wait_http  # noqa: E402

_M = [{"role": "user", "content": "hi"}]
BAD_INPUTS: dict[str, bytes] = {
    "not JSON": b"{not json",
    "JSON array": b"[1, 2]",
    "empty body": b"",
    "no model": json.dumps({"messages": _M}).encode(),
    "no messages": json.dumps({"model": "auto"}).encode(),
    "messages not a list": json.dumps({"model": "auto", "messages": "hi"}).encode(),
    "unknown role": json.dumps({"model": "auto", "messages": [{"role": "robot", "content": "hi"}]}).encode(),
    "no user turn": json.dumps({"model": "auto", "messages": [{"role": "system", "content": "x"}]}).encode(),
    "empty user turn": json.dumps({"model": "auto", "messages": [{"role": "user", "content": "  "}]}).encode(),
    "lone surrogate escape": b'{"model": "auto", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
    "lone surrogate bytes": b'{"model": "auto", "messages": [{"role": "user", "content": "hi \xed\xa0\x80"}]}',
    "invalid UTF-8": b'{"model": "auto", "messages": [{"role": "user", "content": "hi \xff\xfe"}]}',
    "unknown model": json.dumps({"model": "gpt-99", "messages": _M}).encode(),
    "temperature as text": json.dumps({"model": "auto", "messages": _M, "temperature": "hot"}).encode(),
    "temperature 5": json.dumps({"model": "auto", "messages": _M, "temperature": 5}).encode(),
    "top_p -1": json.dumps({"model": "auto", "messages": _M, "top_p": -1}).encode(),
    "n 0": json.dumps({"model": "auto", "messages": _M, "n": 0}).encode(),
    "max_tokens 0": json.dumps({"model": "auto", "messages": _M, "max_tokens": 0}).encode(),
    "stream as text": json.dumps({"model": "auto", "messages": _M, "stream": "yes"}).encode(),
    "five stop strings": json.dumps({"model": "auto", "messages": _M, "stop": list("abcde")}).encode(),
    "tools as text": json.dumps({"model": "auto", "messages": _M, "tools": "yes"}).encode(),
    "tool without name": json.dumps({"model": "auto", "messages": _M, "tools": [{"type": "function", "function": {}}]}).encode(),
    "tool_choice bad": json.dumps({"model": "auto", "messages": _M, "tool_choice": "always"}).encode(),
    "response_format xml": json.dumps({"model": "auto", "messages": _M, "response_format": {"type": "xml"}}).encode(),
    "content part type": json.dumps({"model": "auto", "messages": [{"role": "user", "content": [{"type": "video"}]}]}).encode(),
    "oversize body": json.dumps({"model": "auto", "messages": [{"role": "user", "content": "x" * 5_000_000}]}).encode(),
}


async def _good(session: aiohttp.ClientSession, url: str, i: int) -> int:
    stream = i % 2 == 0
    body = {"model": "cloud", "stream": stream, "max_tokens": 16,
            "messages": [{"role": "user", "content": f"Question {i}: say hello."}]}
    async with session.post(url, json=body) as r:
        data = await r.read()
        if stream and r.status == 200 and not data.rstrip().endswith(b"data: [DONE]"):
            return 599  # a stream that did not end properly
        return r.status


async def _bad(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, bool]:
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
        text = await r.text(errors="replace")
        try:
            shaped = isinstance(json.loads(text).get("error", {}).get("message"), str)
        except (ValueError, AttributeError):
            shaped = False
        return r.status, shaped


async def _run(url: str, n: int, concurrency: int) -> tuple[Counter, Counter, int, float]:
    jobs: list[tuple[str, object]] = [("good", i) for i in range(n)]
    kinds = list(BAD_INPUTS.items())
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
                    name, body = item
                    status, shaped = await _bad(session, url, body)
                    bad["4xx, OpenAI shape" if 400 <= status < 500 and shaped else f"{name}: {status}"] += 1

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
        good, bad, sent, elapsed = asyncio.run(_run(f"http://127.0.0.1:{rport}/v1/chat/completions", args.n, args.c))
        t = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutdown_s = time.perf_counter() - t
        with sqlite3.connect(log_path) as con:
            rows = con.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        print(f"{args.n} good cloud requests (half streaming) + {sent - args.n} bad ones of {len(BAD_INPUTS)} kinds, "
              f"{args.c} concurrent, one run on {os.cpu_count()} CPUs")
        print(f"good: {good.get(200, 0)} answered 200; others: {dict((k, v) for k, v in good.items() if k != 200) or 'none'}")
        print(f"bad: {bad.get('4xx, OpenAI shape', 0)} answered 4xx in OpenAI's error shape; others: "
              f"{dict((k, v) for k, v in bad.items() if k != '4xx, OpenAI shape') or 'none'}")
        print(f"throughput: {sent / elapsed:.0f} req/s over {elapsed:.1f} s")
        print(f"log rows: {rows} for {sent} requests sent ({'none lost' if rows == sent else 'MISMATCH'})")
        print(f"shutdown after SIGTERM: {shutdown_s:.1f} s")
        return 0 if good.get(200, 0) == args.n and rows == sent and bad.get("4xx, OpenAI shape", 0) == sent - args.n else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
