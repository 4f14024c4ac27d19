"""The local tier on this machine: the supervised worker against plain llama-cpp-python, the
extra buffer types on vs off, and concurrency (several worker processes vs one llama.cpp
batch of several sequences).

Every figure is a ratio against a baseline measured in the same run, interleaved where the
two can be, so that a machine shared with other work slows both alike. Prints:

1. tokens/s: worker (``WorkerPool``, log-probabilities of every token, over a pipe) vs plain
   ``llama_cpp.Llama.create_completion`` in this process (no log-probabilities); goal >= 0.9x;
2. time to first token: worker stream vs ``LlamaRuntime`` in this process, extra ms (goal <= 5);
3. extra buffers on vs off (tokens/s), only where the probe says they work; else the probe's
   verdict (they crash here);
4. ``runtime.requantize``: the shipped Q4_1 weights vs their Q8_0 copy (tokens/s, prompt);
5. concurrency 8 (``max_tokens`` 8, short prompts): requests/s and TTFT p99 of today's path
   (one generation at a time) vs ``runtime.parallel`` worker processes, and vs one process
   decoding the 8 sequences in one llama.cpp batch (greedy; the alternative design);
   goals: >= 2x requests/s, TTFT p99 <= 2 s.

Run: ``python bench/local_tier.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from router.models import smollm2_gguf_path  # noqa: E402
from router.providers import extra_buffers as eb  # noqa: E402
from router.providers.llama_load import load_llama  # noqa: E402
from router.providers.llama_runtime import LlamaRuntime, LocalCompletion  # noqa: E402
from router.providers.worker_pool import WorkerPool, WorkerSpec  # noqa: E402

PROMPTS = ["What is the capital of Japan?", "Write a short poem about the sea.",
           "Explain why the sky is blue in two sentences.", "List three fruits that are red.",
           "Who wrote Hamlet?", "Name a planet of the solar system.", "What is water made of?", "Say hello in French."]
GGUF = str(smollm2_gguf_path())


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _pool(parallel: int = 1, n_threads: int | None = None, extra: str = "off", requantize: str = "off") -> WorkerPool:
    pool = WorkerPool(WorkerSpec(GGUF, n_ctx=2048, n_threads=n_threads, repeat_penalty=1.0, extra_buffers=extra,
                                 requantize=requantize, parallel=parallel, queue=64))
    pool.start()
    deadline = time.time() + 120
    while sum(w["ready"] for w in pool.health()["workers"]) < parallel and time.time() < deadline:
        time.sleep(0.05)
    return pool


def bench_worker_vs_plain(rounds: int, max_tokens: int = 64) -> None:
    plain = load_llama(GGUF, extra_buffers=False, n_ctx=2048, verbose=False)
    runtime = LlamaRuntime(GGUF, repeat_penalty=1.0)
    pool = _pool()
    fmt = runtime.format_prompt
    totals = {"worker": [0, 0.0], "in-process": [0, 0.0], "plain": [0, 0.0]}
    for _ in range(rounds):
        for prompt in PROMPTS[:4]:
            messages = [{"role": "user", "content": prompt}]
            runs = {
                "worker": lambda: pool.generate_blocking(messages, {"max_tokens": max_tokens}).completion_tokens,
                "in-process": lambda: runtime.generate(messages, max_tokens=max_tokens).completion_tokens,
                "plain": lambda: plain.create_completion(fmt(messages), max_tokens=max_tokens, temperature=0.0,
                                                         repeat_penalty=1.0)["usage"]["completion_tokens"],
            }
            for name, run in runs.items():  # interleaved: contention hits the three alike
                t = time.perf_counter()
                totals[name][0] += run()
                totals[name][1] += time.perf_counter() - t
    rate = {k: n / s for k, (n, s) in totals.items()}
    print(f"worker process (pipe, logprobs of every token): {rate['worker']:6.1f} tokens/s ({totals['worker'][0]} tokens)")
    print(f"LlamaRuntime in this process (logprobs)       : {rate['in-process']:6.1f} tokens/s")
    print(f"plain llama-cpp-python in process, no logprobs: {rate['plain']:6.1f} tokens/s")
    print(f"worker / plain: {rate['worker'] / rate['plain']:.2f}x (goal >= 0.9x); "
          f"worker / in-process: {rate['worker'] / rate['in-process']:.2f}x (the process boundary alone)")

    # Time to first token: worker stream vs the same runtime in this process, interleaved.
    extra = []
    for _ in range(rounds):
        for prompt in PROMPTS:
            messages = [{"role": "user", "content": prompt}]
            first: list[float] = []
            t = time.perf_counter()
            runtime.generate(messages, max_tokens=1, on_step=lambda s: first.append(time.perf_counter() - t))
            local = first[0]
            extra.append((asyncio.run(_first_token(pool, messages)) - local) * 1000)
    print(f"time to first token, worker minus in-process: median {statistics.median(extra):+.2f} ms, "
          f"p90 {_pct(extra, 0.9):+.2f} ms (n={len(extra)}; both include the prompt's decoding, so noisy)")
    trips = asyncio.run(_round_trips(pool, 200))
    print(f"what the worker adds to the first token (the request in, the token out: one pipe round trip): "
          f"median {statistics.median(trips):.2f} ms, p90 {_pct(trips, 0.9):.2f} ms (n={len(trips)}; goal <= 5 ms)")
    pool.close()


async def _round_trips(pool: WorkerPool, n: int) -> list[float]:
    return [await pool.round_trip_ms() for _ in range(n)]


async def _first_token(pool: WorkerPool, messages: list) -> float:
    t = time.perf_counter()
    gen = pool.stream(messages, {"max_tokens": 1})
    async for _ in gen:
        first = time.perf_counter() - t
        break
    await gen.aclose()
    return first


def bench_extra_buffers(rounds: int, max_tokens: int = 64) -> None:
    verdict = eb.resolve("auto", GGUF)
    v = verdict.verdict
    print(f"extra buffers probe ({verdict.source}, {v.probe_ms:.0f} ms): works={v.works}: {v.reason}")
    if not v.works:
        print("extra buffers on vs off: not measurable here: generation with them on crashes (see the probe)")
        return
    on, off = _pool(extra="on"), _pool(extra="off")
    rates = {"on": [0.0, 0.0], "off": [0.0, 0.0]}
    for _ in range(rounds):
        for prompt in PROMPTS[:4]:
            for name, pool in (("on", on), ("off", off)):
                t = time.perf_counter()
                out = pool.generate_blocking([{"role": "user", "content": prompt}], {"max_tokens": max_tokens})
                rates[name][0] += out.completion_tokens
                rates[name][1] += time.perf_counter() - t
    r_on, r_off = (rates[k][0] / rates[k][1] for k in ("on", "off"))
    print(f"extra buffers on: {r_on:.1f} tokens/s, off: {r_off:.1f} tokens/s, on / off: {r_on / r_off:.2f}x")
    on.close()
    off.close()


def bench_weights(rounds: int, max_tokens: int = 64) -> None:
    """``runtime.requantize``: one worker on the shipped Q4_1 file vs its Q8_0 copy,
    interleaved: generated tokens/s, and a ~200-token prompt's time to first token (almost
    all prompt decoding)."""
    extra = "auto" if eb.resolve("auto", GGUF).enabled else "off"
    pools = {"Q4_1 as shipped": _pool(extra="off"), "requantize q8_0": _pool(extra=extra, requantize="q8_0")}
    long_prompt = [{"role": "user", "content": "Summarise this text. " + " ".join(
        ["The quick brown fox jumps over the lazy dog near the river bank."] * 14)}]
    rate = {k: [0, 0.0] for k in pools}
    first = {k: [] for k in pools}
    for _ in range(rounds):
        for prompt in PROMPTS[:4]:
            for name, pool in pools.items():
                t = time.perf_counter()
                rate[name][0] += pool.generate_blocking([{"role": "user", "content": prompt}],
                                                        {"max_tokens": max_tokens}).completion_tokens
                rate[name][1] += time.perf_counter() - t
        for name, pool in pools.items():
            first[name].append(asyncio.run(_first_token(pool, long_prompt)))
    tps = {k: n / s for k, (n, s) in rate.items()}
    ttft = {k: statistics.median(v) * 1000 for k, v in first.items()}
    for name in pools:
        print(f"weights {name:16s} (extra buffers {pools[name].health()['workers'][0]['use_extra_bufts']}): "
              f"{tps[name]:6.1f} tokens/s, ~200-token prompt to first token {ttft[name]:6.0f} ms")
    a, b = "requantize q8_0", "Q4_1 as shipped"
    print(f"requantize q8_0 / as shipped: {tps[a] / tps[b]:.2f}x tokens/s, {ttft[b] / ttft[a]:.2f}x faster first token")
    for pool in pools.values():
        pool.close()


async def _load(pool: WorkerPool, n_requests: int, concurrency: int, max_tokens: int) -> tuple[float, list[float]]:
    """requests/s and each request's time to first token (s, queueing included)."""
    sem = asyncio.Semaphore(concurrency)
    ttft: list[float] = []

    async def one(i: int) -> None:
        async with sem:  # a client of the 8 sends its next request when its last one ended
            t, first = time.perf_counter(), None
            async for item in pool.stream([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], {"max_tokens": max_tokens}):
                if first is None and not isinstance(item, LocalCompletion):
                    first = time.perf_counter() - t
            ttft.append(first if first is not None else time.perf_counter() - t)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n_requests)))
    return n_requests / (time.perf_counter() - t0), ttft


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_batched(n_requests: int, concurrency: int, max_tokens: int, n_threads: int) -> tuple[float, list[float]]:
    """The alternative design: one process decoding ``concurrency`` sequences per llama.cpp
    batch (greedy, continuous: a finished sequence's slot takes the next request)."""
    import llama_cpp as lib
    import numpy as np

    runtime = LlamaRuntime(GGUF, n_threads=n_threads)
    runtime.load()
    llm = runtime._llm
    params = lib.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_seq_max, params.kv_unified = 2048, 512, concurrency, True
    params.n_threads = params.n_threads_batch = n_threads
    ctx = lib.llama_init_from_model(llm._model.model, params)
    mem, n_vocab = lib.llama_get_memory(ctx), llm.n_vocab()
    batch = lib.llama_batch_init(512, 0, concurrency)
    queue = [runtime.prompt_tokens([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]) for i in range(n_requests)]
    slots: dict[int, dict] = {}
    ttft: list[float] = []
    t0 = time.perf_counter()
    while queue or slots:
        for s in range(concurrency):
            if s not in slots and queue:
                lib.llama_memory_seq_rm(mem, s, -1, -1)
                slots[s] = {"pending": queue.pop(0), "pos": 0, "n": 0, "t": time.perf_counter()}
        batch.n_tokens, rows = 0, {}
        for s, st in slots.items():
            for j, tok in enumerate(st["pending"]):
                i = batch.n_tokens
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, st["pos"], 1
                batch.seq_id[i][0] = s
                batch.logits[i] = int(j == len(st["pending"]) - 1)
                st["pos"] += 1
                batch.n_tokens += 1
            rows[s] = batch.n_tokens - 1
        if lib.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        for s, i in rows.items():
            st = slots[s]
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
            tok = int(logits.argmax())
            if st["n"] == 0:
                ttft.append(time.perf_counter() - st["t"])
            st["n"] += 1
            st["pending"] = [tok]
            if st["n"] >= max_tokens or tok in runtime._eog:
                del slots[s]
    rate = n_requests / (time.perf_counter() - t0)
    lib.llama_batch_free(batch)
    lib.llama_free(ctx)
    return rate, ttft


def bench_concurrency(n_requests: int = 32, concurrency: int = 8, max_tokens: int = 8, rounds: int = 3) -> None:
    """Worker-pool designs interleaved: every pool is started first (idle workers cost no
    CPU), then each round runs the same load on each pool in turn, so a machine whose load
    drifts slows every design alike; a design's figure is the median over rounds of its
    requests/s divided by today's in the same round. The one-process batch runs after."""
    cores = os.cpu_count() or 1
    print(f"concurrency {concurrency}, {n_requests} requests, max_tokens {max_tokens}, {cores} cores, "
          f"{rounds} interleaved rounds:")
    extra = "auto" if eb.resolve("auto", GGUF).enabled else "off"
    designs = {"today: 1 worker, one generation at a time, Q4_1 as shipped": _pool(parallel=1)}
    for requantize in ("off", "q8_0"):
        for parallel in sorted({1, 2, cores, concurrency} - ({1} if requantize == "off" else set())):
            weights = "Q4_1 as shipped" if requantize == "off" else f"requantize {requantize}, extra buffers {extra}"
            threads = f"{parallel} processes x {max(1, cores // parallel)} thread(s)" if parallel > 1 else \
                "1 process, llama.cpp's default threads"
            pool = _pool(parallel=parallel, requantize=requantize, extra=extra if requantize != "off" else "off")
            rss = [_rss_mb(w["pid"]) for w in pool.health()["workers"]]
            print(f"  runtime.parallel {parallel}, {weights}: worker RSS {statistics.mean(rss):.0f} MB each "
                  "(VmRSS, the mapped GGUF included)")
            designs[f"parallel {parallel} ({threads}), {weights}"] = pool
    rates: dict[str, list[float]] = {name: [] for name in designs}
    ttfts: dict[str, list[float]] = {name: [] for name in designs}
    for _ in range(rounds):
        for name, pool in designs.items():
            rate, ttft = asyncio.run(_load(pool, n_requests, concurrency, max_tokens))
            rates[name].append(rate)
            ttfts[name].extend(ttft)
    for pool in designs.values():
        pool.close()
    today = next(iter(designs))
    rows = [(name, statistics.median(rates[name]),
             statistics.median(r / t for r, t in zip(rates[name], rates[today])), ttfts[name]) for name in designs]
    for threads in sorted({1, cores}):
        rate, ttft = bench_batched(n_requests, concurrency, max_tokens, threads)
        rows.append((f"one process, {concurrency} sequences per llama.cpp batch, {threads} thread(s)", rate,
                     rate / statistics.median(rates[today]), ttft))
    for name, rate, ratio, ttft in rows:
        print(f"  {name:70s}: {rate:5.2f} req/s = {ratio:4.2f}x today, TTFT p50 {statistics.median(ttft):5.2f} s, "
              f"p99 {_pct(ttft, 0.99):5.2f} s")
    spread = ", ".join(f"{r:.2f}" for r in rates[today])
    print(f"  (today's requests/s in each round: {spread}; goals: >= 2x, TTFT p99 <= 2 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=["plain", "extra", "weights", "concurrency"])
    args = parser.parse_args()
    if "plain" not in args.skip:
        bench_worker_vs_plain(args.rounds)
    if "extra" not in args.skip:
        bench_extra_buffers(args.rounds)
    if "weights" not in args.skip:
        bench_weights(args.rounds)
    if "concurrency" not in args.skip:
        bench_concurrency(rounds=args.rounds)
