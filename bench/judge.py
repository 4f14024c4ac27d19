"""How far can the shadow judge be trusted? The judge path measured against recorded verdicts.

Each item is a request with two recorded answers, a weaker model's (the "local" answer) and a
stronger model's (the "cloud" answer), and a recorded verdict "the local answer is at least
as good" (``../shared/data``, or ``$SLM_ROUTER_DATA``):

- ``alpaca_eval``: the 805 AlpacaEval instructions, gemma-7b-it vs GPT-4-Turbo
  (``gpt4_1106_preview``) with their full answers; verdict: the AlpacaEval 2 GPT-4 judge's
  preference for gemma ``>= 0.5``.
- ``gsm8k``: RouteLLM's GSM8K test questions, Mixtral-8x7B vs GPT-4 with their full answers;
  verdict: Mixtral correct, or GPT-4 wrong too (correctness as good).
- ``mmlu``: RouteLLM's MMLU rows joined to the gold answers of ``mmlu/test``, Mixtral vs GPT-4;
  the recorded data holds only correctness, so each answer is *derived* from it: "The answer
  is X." with X the gold letter when the model was right, else a fixed wrong letter;
  verdict as for GSM8K.

Judges, each run through :mod:`router.ledger.judge` (the prompts, the reply parsing and the
position-swap decision the router uses):

- ``smollm2``: the in-process SmolLM2-135M-Instruct as the judge tier (``slm-local/smollm2``
  through the router's TierClient and worker pool, exactly the shadow sampler's path), each
  answer cut to ``--max-chars`` so both fit its 2,048-token context. A real, very small judge.
- ``oracle+noise``: a SIMULATED judge, not a model: each order's reply is the recorded verdict,
  replaced with probability ``--bias`` by a pure position preference (answer 1 wins) and then
  flipped with probability ``--noise``. It shows what the swap rule does to a judge whose
  errors are partly positional; it says nothing about any real model.

The router's judge prompt asks for a three-way verdict (BETTER, SAME or WORSE about the local
answer); this bench measures the binary verdict it implies ("at least as good": BETTER or
SAME), against the recorded binary verdicts. The simulated judge replies YES / NO, which the
judge path reads as that binary verdict.

Printed per dataset and judge, for one order (answer 1 = the cloud answer; what a single ask
sees) and for both orders (a verdict only when they agree): the share with a verdict, the
tie/unsure share, agreement with the recorded verdict on the decided items with a Wilson 95%
interval, and the majority-class agreement to beat.

    python bench/judge.py                       # both judges, 60 items per dataset for SmolLM2
    python bench/judge.py --judges oracle+noise --n 800
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from router.analysis.quality import wilson_interval  # noqa: E402
from router.ledger.judge import ORDERS, Judge, decide_verdict, parse_verdict  # noqa: E402
from training.datasets import data_root  # noqa: E402

WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


@dataclass(frozen=True)
class Item:
    """One judged pair: the request, the local (weaker) and cloud (stronger) answers, and
    the recorded verdict ``local_as_good``."""

    question: str
    local: str
    cloud: str
    local_as_good: bool


def load_alpaca() -> list[Item]:
    """AlpacaEval: gemma-7b-it (local) vs GPT-4-Turbo (cloud), the AlpacaEval 2 judge's verdict."""
    root = data_root() / "alpaca_eval"
    local = json.loads((root / "results" / "gemma-7b-it" / "model_outputs.json").read_text())
    cloud = json.loads((root / "results" / "gpt4_1106_preview" / "model_outputs.json").read_text())
    pref = {}
    with (root / "alpaca_eval2_weighted_gpt4turbo_vs_gpt4_1106_preview.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["model"] == "gemma-7b-it":
                pref[int(row["idx"])] = float(row["preference"]) - 1.0
    return [Item(a["instruction"], a["output"], b["output"], pref[i] >= 0.5)
            for i, (a, b) in enumerate(zip(local, cloud))]


def load_gsm8k() -> list[Item]:
    """GSM8K: Mixtral (local) vs GPT-4 (cloud) answers; local as good = Mixtral right or GPT-4 wrong."""
    with (data_root() / "routellm" / "gsm8k" / "gsm8k_responses.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [Item(r["prompt"], r[WEAK + "_response"], r[STRONG + "_response"],
                 r[WEAK] == "True" or r[STRONG] != "True") for r in rows]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def load_mmlu() -> list[Item]:
    """MMLU: answers derived from the recorded correctness and the gold letter (see the module doc)."""
    root = data_root()
    gold: dict[str, int] = {}
    for path in sorted((root / "mmlu" / "test").glob("*_test.csv")):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                key = row["question"] + "".join(f"\n{letter}. {row[f'choice{i}']}" for i, letter in enumerate("ABCD"))
                gold[_norm(key + "\nAnswer:")] = int(row["answer"])
    out = []
    for path in sorted((root / "routellm" / "mmlu" / "responses").glob("mmlu_*.csv")):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                g = gold.get(_norm(row["prompt"]))
                if g is None:
                    continue
                wrong = "ABCD"[(g + 1 + int(hashlib.sha256(row["prompt"].encode()).hexdigest(), 16) % 3) % 4]

                def answer(correct: bool) -> str:
                    return f"The answer is {'ABCD'[g] if correct else wrong}."

                weak_ok, strong_ok = row[WEAK] == "True", row[STRONG] == "True"
                out.append(Item(row["prompt"], answer(weak_ok), answer(strong_ok), weak_ok or not strong_ok))
    return out


DATASETS = {"alpaca_eval": load_alpaca, "gsm8k": load_gsm8k, "mmlu": load_mmlu}


def oracle_replies(item: Item, rng: random.Random, noise: float, bias: float) -> list[str]:
    """The simulated judge's raw replies, one per order of :data:`ORDERS` (see the module doc)."""
    out = []
    for order in ORDERS:
        says_local = item.local_as_good
        if rng.random() < bias:  # answer 1 wins: the cloud answer in order 1, the local one in order 2
            says_local = order == "local_first"
        if rng.random() < noise:
            says_local = not says_local
        out.append("YES" if says_local else "NO")
    return out


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


async def smollm2_replies(items: list[Item], max_chars: int, concurrency: int) -> list[list[str]]:
    """SmolLM2's raw replies per item (both orders), through the router's judge path."""
    from router.policy import policy_from_dict
    from router.providers.tier_client import TierClient

    policy = policy_from_dict({"tiers": {
        "local": {"model": "slm-local/smollm2", "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0},
                  "runtime": {"n_ctx": 2048, "parallel": 2, "n_threads": 1}},
        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "unused"}},
        "shadow": {"judge_tier": "local"}})
    client = TierClient(policy)
    await asyncio.to_thread(client.warm_up)
    judge = Judge(client, "local", policy.tiers["local"], swap=True)
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(item: Item) -> list[str]:
        nonlocal done
        async with gate:
            outcome = await judge.judge(_cut(item.question, max_chars), _cut(item.local, max_chars),
                                        _cut(item.cloud, max_chars))
        done += 1
        if done % 20 == 0:
            print(f"  ... {done}/{len(items)} judged", file=sys.stderr, flush=True)
        if outcome.verdict is None:
            return ["", ""]
        return list(outcome.verdict.replies)

    return list(await asyncio.gather(*(one(i) for i in items)))


def _row(name: str, judge: str, mode: str, items: list[Item], verdicts: list[bool | None]) -> str:
    decided = [(v, it.local_as_good) for v, it in zip(verdicts, items) if v is not None]
    n, k = len(decided), sum(v == label for v, label in decided)
    lo, hi = wilson_interval(k, n)
    unsure = 1 - n / len(items)
    agree = f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]" if n else "n/a"
    majority = max(sum(label for _, label in decided), n - sum(label for _, label in decided)) / n if n else 0.0
    return (f"| {name} | {judge} | {mode} | {len(items)} | {n} | {unsure:.3f} | {agree} | {majority:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judges", default="oracle+noise,smollm2", help="comma-separated: oracle+noise, smollm2")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--n", type=int, default=800, help="items per dataset for the simulated judge")
    parser.add_argument("--n-model", type=int, default=60, help="items per dataset for SmolLM2 (about 2 calls/item)")
    parser.add_argument("--noise", type=float, default=0.15, help="oracle+noise: flip probability per order")
    parser.add_argument("--bias", type=float, default=0.25, help="oracle+noise: position-preference probability")
    parser.add_argument("--max-chars", type=int, default=700, help="SmolLM2: characters kept of each text")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    judges = [j.strip() for j in args.judges.split(",") if j.strip()]
    print(f"judge path: router.ledger.judge (orders {', '.join(ORDERS)}; verdict only when both agree)")
    print(f"oracle+noise is SIMULATED (recorded verdict, position preference p={args.bias}, flip p={args.noise}); "
          "smollm2 is the real SmolLM2-135M-Instruct in-process")
    print("| dataset | judge | orders | items | with a verdict | tie/unsure share | agreement with the recorded "
          "verdict [Wilson 95%] | majority class |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        items_all = DATASETS[name]()
        rng = random.Random(args.seed)
        for judge in judges:
            n = args.n if judge == "oracle+noise" else args.n_model
            items = rng.sample(items_all, min(n, len(items_all)))
            t0 = time.perf_counter()
            if judge == "oracle+noise":
                sim = random.Random(args.seed + 1)
                replies = [oracle_replies(it, sim, args.noise, args.bias) for it in items]
            elif judge == "smollm2":
                replies = asyncio.run(smollm2_replies(items, args.max_chars, args.concurrency))
            else:
                raise SystemExit(f"unknown judge {judge!r}")
            single = [decide_verdict(r[:1], ORDERS[:1]).verdict for r in replies]
            swapped = [decide_verdict(r).verdict for r in replies]
            print(_row(name, judge, "one (cloud first)", items, single))
            print(_row(name, judge, "both (swap)", items, swapped))
            parsed = sum(parse_verdict(r) is not None for rs in replies for r in rs)
            print(f"<!-- {name} {judge}: {time.perf_counter() - t0:.0f} s, recorded as-good share "
                  f"{sum(i.local_as_good for i in items) / len(items):.3f}, replies that parse {parsed}/"
                  f"{2 * len(items)} -->",
                  flush=True)


if __name__ == "__main__":
    main()
