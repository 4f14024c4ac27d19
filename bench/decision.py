"""Routing-decision latency: features + embedding + classifier, as the server runs it.

One decision = :func:`router.request.features.extract_features` of a one-turn chat request (the
policy's ``max_chars`` cut) and the scorer the policy builds (:func:`router.scoring.make_scorer`)
scoring it at threshold 0.5, on one thread. Scorers (each artifact is the transfer model:
task-type similarities of the embedding and the text features its card lists, so a decision
also computes those):

- ``minilm``: all-MiniLM-L6-v2 on torch fp32, one thread, under the previous default artifact
  (``builtin:difficulty-minilm``, trained on those vectors): the baseline, the path before issue 17;
- ``minilm-int8``: the same artifact fed the ONNX Runtime int8 MiniLM (one intra-op thread, the
  first 256 word pieces): the serving path before this change;
- the default: ``builtin`` (``router/artifacts/difficulty``) with the embedder its card names
  (the static embedder since issue 17), as ``slm-router serve`` runs it on the default policy.

For 200- and 2,000-token prompts (real MMLU, GSM8K and AlpacaEval texts joined and cut to
the exact MiniLM word-piece count; a distinct prompt per call, embedding cache off) it prints
p50 and p99 in ms one call at a time, p99/p50, and decisions/s with 16 concurrent callers
submitting through :class:`router.batching.MicroBatcher` (one scoring thread, as the server
does), then each figure as a ratio to the baseline measured in the same run. "CPU ms" is the
scoring thread's CPU time per decision (``time.thread_time``): it leaves out waiting for a core,
not the slowdown of sharing one (caches, SMT), so on a busy box it is still above a quiet box's
wall clock. Absolute ms
depend on the machine's load; the ratios much less. Goals (issue 17): p50 <= 5 ms at 200
tokens, <= 8 ms at 2,000, p99 <= 2x p50, >= 1,000 decisions/s at concurrency 16.

Run: ``python bench/decision.py`` (about 3 minutes on 2 cores; ``-n`` calls per cell).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from router.batching import MicroBatcher  # noqa: E402
from router.request.features import extract_features  # noqa: E402
from router.models import minilm_dir  # noqa: E402
from router.policy import ClassifierConfig  # noqa: E402
from router.request.parse import parse_chat_request  # noqa: E402
from router.scoring.artifact import artifact_dir  # noqa: E402
from router.scoring import make_scorer  # noqa: E402
from router.scoring.two_stage import score_near  # noqa: E402

LENGTHS = (200, 2000)
THRESHOLD = 0.5
CONCURRENCY = 16


def _prompts(n_tokens: int, count: int) -> list[str]:
    """``count`` distinct real prompts of exactly ``n_tokens`` MiniLM word pieces."""
    from tokenizers import Tokenizer

    from training.datasets import load

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_truncation()
    texts = [e.prompt for e in load("mmlu,gsm8k,alpaca_eval")][::7]
    out, i = [], 0
    while len(out) < count:
        ids: list[int] = []
        while len(ids) < n_tokens:
            ids += tok.encode(texts[i % len(texts)], add_special_tokens=False).ids
            i += 1
        out.append(tok.decode(ids[:n_tokens]))
    return out


def _feature_text(prompt: str, cfg: ClassifierConfig) -> str:
    request = parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
    return extract_features(request, context_turns=cfg.context_turns, max_chars=cfg.max_chars,
                            head_chars=cfg.head_chars, context_chars=cfg.context_chars).text


PREVIOUS = "builtin:difficulty-minilm"


def _configs() -> dict[str, ClassifierConfig]:
    from router.scoring.embedders import embedder_key

    card = _card("builtin")
    out = {"minilm (torch fp32, before)": ClassifierConfig(artifact=PREVIOUS, embedder="minilm", precision="fp32",
                                                           cache_size=0),
           "minilm-int8, 256 word pieces (serving before)": ClassifierConfig(artifact=PREVIOUS, cache_size=0),
           f"default: {embedder_key(card)}": ClassifierConfig(cache_size=0)}
    return out


def _card(location: str) -> dict:
    """The card (a dict) of a shipped artifact."""
    import json

    return json.loads((artifact_dir(location) / "card.json").read_text())


def one_at_a_time(scorer, texts: list[str]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (this thread's) milliseconds of one decision per call."""
    score_near(scorer, [(texts[0], THRESHOLD)])
    wall, cpu = [], []
    for text in texts:
        t, c = time.perf_counter(), time.thread_time()
        score_near(scorer, [(text, THRESHOLD)])
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return wall, cpu


def concurrent_rate(scorer, texts: list[str]) -> float:
    """Decisions/s with CONCURRENCY callers each awaiting one decision at a time."""
    batcher = MicroBatcher(lambda items: score_near(scorer, items), max_batch=32, name="bench-score")

    async def run() -> float:
        queue = list(texts)

        async def caller():
            while queue:
                await batcher.run((queue.pop(), THRESHOLD))

        t = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
        return len(texts) / (time.perf_counter() - t)

    try:
        return asyncio.run(run())
    finally:
        batcher.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100, help="decisions per cell (distinct prompts)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # the baseline on one thread, like the others
    print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f} (other processes share these "
          f"cores: absolute ms are inflated, compare the ratios); {args.n} distinct prompts per cell, threshold "
          f"{THRESHOLD}, embedding cache off\n")
    cfg0 = ClassifierConfig()
    texts = {n: [_feature_text(p, cfg0) for p in _prompts(n, args.n)] for n in LENGTHS}
    rows = []
    for name, cfg in _configs().items():
        scorer = make_scorer(cfg)
        for n in LENGTHS:
            lat, cpu = one_at_a_time(scorer, texts[n])
            rate = concurrent_rate(scorer, texts[n])
            p50, p99 = statistics.median(lat), float(np.percentile(lat, 99))
            rows.append((name, n, p50, p99, rate, statistics.median(cpu)))
            print(f"measured {name}, {n} tokens: p50 {p50:.2f} ms", file=sys.stderr, flush=True)
    base = {r[1]: r for r in rows[:len(LENGTHS)]}  # the first scorer, the baseline
    print("| scorer | prompt tokens | p50 ms | p99 ms | p99/p50 | CPU ms p50 | decisions/s, 16 concurrent "
          "| p50 x baseline | CPU x baseline | decisions/s x baseline |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, n, p50, p99, rate, cpu in rows:
        b = base[n]
        print(f"| {name} | {n:,} | {p50:.2f} | {p99:.2f} | {p99 / p50:.2f} | {cpu:.2f} | {rate:,.0f} "
              f"| {p50 / b[2]:.2f} | {cpu / b[5]:.2f} | {rate / b[4]:.2f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; goals: p50 <= 5 ms (200 tokens), <= 8 ms (2,000), "
          "p99/p50 <= 2, >= 1,000 decisions/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
