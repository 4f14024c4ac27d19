"""Routing-decision latency: features + embedding + classifier, as the server runs it.

One decision = :func:`router.request.features.extract_features` of a one-turn chat request (the
policy's input bound, :meth:`router.policy.ClassifierConfig.bound`) and the scorer the policy
builds (:func:`router.scoring.make_scorer`) scoring it at threshold 0.5, on one thread. Scorers (each artifact is the transfer model:
task-type similarities of the embedding and the text features its card lists, so a decision
also computes those):

- ``minilm``: all-MiniLM-L6-v2 on torch fp32, one thread, under the previous default artifact
  (``builtin:difficulty-minilm``, trained on those vectors): the baseline, the path before issue 17;
- ``minilm-int8``: the same artifact fed the ONNX Runtime int8 MiniLM (one intra-op thread, the
  first 256 word pieces): the serving path before this change;
- the default: ``builtin`` (``router/artifacts/difficulty``) with the embedder its card names
  (the static embedder since issue 17), as ``slm-router serve`` runs it on the default policy,
  once with the input bound before issue 17d (the last 2,000 characters; the two MiniLM rows
  read that too) and once with the policy's (``bench/bounded_input.py``).

A second table times the default scorer on 10-turn conversations (a system prompt, real asks
and GPT-4-Turbo's AlpacaEval answers, the last ask new) with the per-turn cache
(``turn_cache_size``) off and on, the cache holding the earlier turns as the conversation's
previous requests left it, as ratios to "off" in the same run: under the policy's bound and
under one that reads all 10 turns.

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


def _feature_text(prompt: str | list[dict], cfg: ClassifierConfig) -> str:
    """The text the policy's bound reads of one prompt (a one-turn request) or a list of messages."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return _features(messages, cfg).text


def _features(messages: list[dict], cfg: ClassifierConfig):
    request = parse_chat_request({"model": "auto", "messages": messages})
    return extract_features(request, **cfg.bound())


def _conversations(count: int) -> list[list[dict]]:
    """``count`` distinct conversations of 10 turns: a system prompt, then user asks (real MMLU,
    GSM8K and AlpacaEval prompts) and assistant answers (GPT-4-Turbo's AlpacaEval outputs),
    ending with the user's new ask."""
    import json

    from training.datasets import data_root, load

    asks = [e.prompt for e in load("mmlu,gsm8k,alpaca_eval")][::3]
    rows = json.loads((data_root() / "alpaca_eval" / "results" / "gpt4_1106_preview" / "model_outputs.json").read_text())
    answers = [r["output"] for r in rows if r.get("output")]
    system = "You are a helpful assistant. Answer accurately and show your reasoning when it helps."
    out = []
    for c in range(count):
        messages = [{"role": "system", "content": system}]
        for t in range(9):
            role = "user" if t % 2 == 0 else "assistant"
            pool = asks if role == "user" else answers
            messages.append({"role": role, "content": pool[(c * 9 + t) % len(pool)]})
        out.append(messages)
    return out


def _warm_scorer(cfg: ClassifierConfig, conversations: list[list[dict]]):
    """A scorer whose turn cache holds every turn of each conversation but the last (as the
    conversation's previous requests left it)."""
    scorer = make_scorer(cfg)
    for messages in conversations:
        turns = _features(messages, cfg).turns
        for turn in turns[:-1]:
            scorer.embedder.encode([turn])
    return scorer


MULTI_TURN = {"default bound": {}, "every turn: the last 1,000 characters, earlier ones 200":
              {"context_turns": 9, "context_chars": 200, "context_roles": ["user", "assistant", "system"],
               "context_below_chars": None}}
"""The multi-turn rows: the policy's bound, and one that reads all 10 turns (under the static
model's 3,072-character cut, above which the embedder pools the text whole)."""


def multi_turn(n: int) -> list[tuple]:
    """(bound, cache, p50 ms, p99 ms, CPU ms p50, decisions/s at concurrency 16) of the default
    scorer on 10-turn conversations, without the turn cache and with it warmed by the earlier turns."""
    conversations = _conversations(n)
    rows = []
    for bound, extra in MULTI_TURN.items():
        for cache, size in (("off", 0), ("on", 4096)):
            cfg = ClassifierConfig(cache_size=0, turn_cache_size=size, **extra)
            texts = [_feature_text(m, cfg) for m in conversations]
            lat, cpu = one_at_a_time(_warm_scorer(cfg, conversations), texts)
            rate = concurrent_rate(_warm_scorer(cfg, conversations), texts)
            rows.append((bound, cache, statistics.median(lat), float(np.percentile(lat, 99)), statistics.median(cpu),
                         rate, statistics.mean(len(t) for t in texts)))
            print(f"measured multi-turn {bound}, cache {cache}", file=sys.stderr, flush=True)
    return rows


PREVIOUS = "builtin:difficulty-minilm"


def _configs() -> dict[str, ClassifierConfig]:
    from router.scoring.embedders import embedder_key

    card = _card("builtin")
    before = dict(cache_size=0, max_chars=2000, head_chars=0)  # the bound before issue 17d
    out = {"minilm (torch fp32, before)": ClassifierConfig(artifact=PREVIOUS, embedder="minilm", precision="fp32",
                                                           **before),
           "minilm-int8, 256 word pieces (serving before)": ClassifierConfig(artifact=PREVIOUS, **before),
           f"default: {embedder_key(card)}, 2,000 characters from the end (the bound before)": ClassifierConfig(**before),
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
    prompts = {n: _prompts(n, args.n) for n in LENGTHS}
    rows = []
    for name, cfg in _configs().items():
        scorer = make_scorer(cfg)
        for n in LENGTHS:
            texts = [_feature_text(p, cfg) for p in prompts[n]]
            lat, cpu = one_at_a_time(scorer, texts)
            rate = concurrent_rate(scorer, texts)
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
    turns = multi_turn(args.n)
    print("\n| 10-turn conversation, the last turn new | turn cache | chars read | p50 ms | p99 ms | CPU ms p50 "
          "| decisions/s, 16 concurrent | p50 x cache off | CPU x cache off | decisions/s x cache off |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, (bound, cache, p50, p99, cpu, rate, chars) in enumerate(turns):
        b = turns[i - i % 2]
        print(f"| {bound} | {cache} | {chars:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.2f} | {rate:,.0f} | {p50 / b[2]:.2f} "
              f"| {cpu / b[4]:.2f} | {rate / b[5]:.2f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; goals: p50 <= 5 ms (200 tokens), <= 8 ms (2,000), "
          "p99/p50 <= 2, >= 1,000 decisions/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
