"""How well does embedding agreement stand in for a quality judge? Measured on judged pairs.

Shadow sampling scores a local answer by the cosine similarity of its MiniLM embedding to
the cloud tier's answer to the same request (``router.ledger.shadow``). This script checks that
proxy on real, judged pairs: for the 805 AlpacaEval instructions it embeds the answer of
``gemma-7b-it`` (the "local" answer) and of ``gpt4_1106_preview`` (GPT-4-Turbo, the
"cloud" answer) exactly as the router does, and compares the similarity with the
AlpacaEval 2 judge's verdict (``preference - 1 >= 0.5``: gemma's answer is at least as good
as GPT-4-Turbo's; ``../shared/data/README.md``).

A second set has a checkable answer: the first 500 GSM8K test questions in RouteLLM's
responses file, the "local" answer by Mixtral-8x7B, the "cloud" answer by GPT-4, the label
Mixtral's answer being correct (``weak_correct``).

Prints, per set: the judged as-good rate, the AUROC of similarity for that verdict, and for
a range of ``shadow.agree_at`` thresholds the share of pairs counted as agreeing, with
precision and recall against the label. Reads ``../shared/data`` (or ``$SLM_ROUTER_DATA``).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from router.scoring.embedder import Embedder  # noqa: E402
from training.data import data_root  # noqa: E402
from training.metrics import auroc  # noqa: E402

LOCAL, CLOUD = "gemma-7b-it", "gpt4_1106_preview"


def load_pairs() -> tuple[list[str], list[str], np.ndarray]:
    """(local answers, cloud answers, judged as-good 0/1), aligned by instruction."""
    root = data_root() / "alpaca_eval"
    local = json.loads((root / "results" / LOCAL / "model_outputs.json").read_text())
    cloud = json.loads((root / "results" / CLOUD / "model_outputs.json").read_text())
    assert [x["instruction"] for x in local] == [x["instruction"] for x in cloud]
    pref = {}
    with (root / "alpaca_eval2_weighted_gpt4turbo_vs_gpt4_1106_preview.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["model"] == LOCAL:
                pref[int(row["idx"])] = float(row["preference"]) - 1.0
    labels = np.array([pref[i] >= 0.5 for i in range(len(local))], dtype=int)
    return [x["output"] for x in local], [x["output"] for x in cloud], labels


def load_gsm8k_pairs(n: int = 500) -> tuple[list[str], list[str], np.ndarray]:
    """(Mixtral answers, GPT-4 answers, Mixtral correct 0/1) for the first ``n`` GSM8K rows."""
    weak, strong = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    with (data_root() / "routellm" / "gsm8k" / "gsm8k_responses.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    labels = np.array([r[weak] == "True" for r in rows], dtype=int)
    return [r[weak + "_response"] for r in rows], [r[strong + "_response"] for r in rows], labels


def evaluate(name: str, local: list[str], cloud: list[str], good: np.ndarray, embedder: Embedder) -> None:
    """Print the agreement figures of one set of judged pairs."""
    t0 = time.perf_counter()
    a, b = embedder.encode(local), embedder.encode(cloud)
    sim = (a * b).sum(axis=1)
    print(f"\n{len(sim)} {name} pairs, embedded in {time.perf_counter() - t0:.0f} s")
    print(f"judged as good as the cloud answer: {good.mean():.3f}")
    print(f"similarity: mean {sim.mean():.3f}, median {np.median(sim):.3f}, "
          f"p10 {np.quantile(sim, 0.1):.3f}, p90 {np.quantile(sim, 0.9):.3f}")
    print(f"similarity, judged good: {sim[good == 1].mean():.3f}; judged worse: {sim[good == 0].mean():.3f}")
    print(f"AUROC of similarity for 'as good': {auroc(sim, good):.3f}")
    # the threshold at which the agreeing share equals the judged as-good share
    print(f"agree_at that makes the agreeing share equal the judged share: {np.quantile(sim, 1 - good.mean()):.3f}")
    print("agree_at  agreeing  precision  recall")
    for t in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9):
        agree = sim >= t
        precision = good[agree].mean() if agree.any() else float("nan")
        recall = agree[good == 1].mean() if good.any() else float("nan")
        print(f"{t:8.2f}  {agree.mean():8.3f}  {precision:9.3f}  {recall:6.3f}")
    sys.stdout.flush()


def main() -> None:
    embedder = Embedder()
    evaluate(f"AlpacaEval ({LOCAL} vs {CLOUD}, AlpacaEval 2 judge)", *load_pairs(), embedder)
    evaluate("GSM8K (Mixtral-8x7B vs GPT-4, label: Mixtral correct)", *load_gsm8k_pairs(), embedder)


if __name__ == "__main__":
    main()
