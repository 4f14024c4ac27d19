"""AlpacaEval 2 judge preferences over 805 real instructions.

Source: ``alpaca_eval/`` in the shared data (github tatsu-lab/alpaca_eval cd543a1).
``preference - 1`` is the judge's probability that a model's answer beats GPT-4-Turbo's
(``gpt4_1106_preview``), so it is that model's outcome in [0, 1]; GPT-4-Turbo itself scores
0.5 against itself. Models with two rows per instruction are averaged. Group = the
instruction's origin (``helpful_base``, ``koala``, ``oasst``, ``selfinstruct``, ``vicuna``).

Default pair: weak = ``gemma-7b-it`` (whose answers ship in ``results/``), strong =
``gpt4_1106_preview``. No cost is recorded.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

from .base import Example

__all__ = ["WEAK_MODEL", "STRONG_MODEL", "load_alpaca_eval"]

WEAK_MODEL = "gemma-7b-it"
STRONG_MODEL = "gpt4_1106_preview"
PREFERENCES = "alpaca_eval2_weighted_gpt4turbo_vs_gpt4_1106_preview.csv"


def load_alpaca_eval(root: Path) -> list[Example]:
    """805 instructions, each with the outcomes of ~58 models.

    Raises:
        FileNotFoundError: the files are missing.
    """
    base = root / "alpaca_eval"
    prompts_path, prefs_path = base / "alpaca_eval_805_prompts.jsonl", base / PREFERENCES
    for p in (prompts_path, prefs_path):
        if not p.is_file():
            raise FileNotFoundError(f"AlpacaEval file not found: {p}")
    with prompts_path.open(encoding="utf-8") as fh:
        prompts = [json.loads(line) for line in fh if line.strip()]
    sums: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with prefs_path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["preference"].strip():
                sums[int(row["idx"])][row["model"]].append(float(row["preference"]) - 1.0)
    out = []
    for p in prompts:
        outcomes = {m: min(1.0, max(0.0, sum(v) / len(v))) for m, v in sums[int(p["idx"])].items()}
        outcomes.setdefault(STRONG_MODEL, 0.5)
        if WEAK_MODEL in outcomes:
            out.append(Example(p["instruction"], "alpaca_eval", p["dataset"], outcomes, WEAK_MODEL, STRONG_MODEL))
    return out
