"""Routing-decision latency and local-tier generation speed, on this machine.

Prints:
- p50/p90 latency (ms) of one routing score (embedding + classifier) for short and
  ~200-token prompts;
- SmolLM2 tokens/s through ``LlamaRuntime`` (log-probabilities of every token) vs
  llama-cpp-python's own ``create_chat_completion`` without log-probabilities, same prompts,
  greedy, same token budget.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from router.models import smollm2_gguf_path  # noqa: E402
from router.providers.llama_runtime import LlamaRuntime  # noqa: E402
from router.scoring.classifier import EmbeddingClassifier  # noqa: E402

PROMPTS = [
    "What is the capital of Japan?",
    "Write a short poem about the sea.",
    "Explain why the sky is blue in two sentences.",
    "List three fruits that are red.",
]
LONG = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May? ") * 5  # about 200 tokens


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench_scoring(n: int = 50) -> None:
    clf = EmbeddingClassifier()
    clf.warm_up()
    for label, text in (("short prompt", PROMPTS[0]), ("~200-token prompt", LONG)):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            clf.score([text])
            times.append((time.perf_counter() - t) * 1000)
        print(f"routing score, {label:18s}: p50 {statistics.median(times):6.1f} ms  p90 {_pct(times, 0.9):6.1f} ms  (n={n})")


def bench_generation(max_tokens: int = 64) -> None:
    from llama_cpp import Llama

    runtime = LlamaRuntime(smollm2_gguf_path(), repeat_penalty=1.0)
    runtime.load()
    plain = Llama(model_path=str(smollm2_gguf_path()), n_ctx=2048, verbose=False)
    ours_tok = ours_s = plain_tok = plain_s = 0.0
    for prompt in PROMPTS * 2:
        messages = [{"role": "user", "content": prompt}]
        t = time.perf_counter()
        out = runtime.generate(messages, max_tokens=max_tokens)
        ours_s += time.perf_counter() - t
        ours_tok += out.completion_tokens
        t = time.perf_counter()
        res = plain.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0)
        plain_s += time.perf_counter() - t
        plain_tok += res["usage"]["completion_tokens"]
    ours, base = ours_tok / ours_s, plain_tok / plain_s
    print(f"SmolLM2 with per-token logprobs (LlamaRuntime): {ours:6.1f} tokens/s ({int(ours_tok)} tokens)")
    print(f"SmolLM2 plain llama-cpp-python, no logprobs   : {base:6.1f} tokens/s ({int(plain_tok)} tokens)")
    print(f"ratio: {ours / base:.2f}x")


if __name__ == "__main__":
    bench_scoring()
    bench_generation()
