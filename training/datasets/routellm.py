"""RouteLLM's per-question outcomes on MMLU (49 subjects) and GSM8K.

Source: ``routellm/`` in the shared data (github lm-sys/RouteLLM 0b64fda). Weak =
Mixtral-8x7B-Instruct, strong = GPT-4-1106-preview, outcome 1 = answered correctly. The
prompts RouteLLM marked as contaminated (``contaminated_prompts.jsonl``) are dropped, as its
published evaluation does. No per-prompt cost is recorded.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .base import Example

__all__ = ["WEAK_MODEL", "STRONG_MODEL", "load_mmlu", "load_gsm8k"]

WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"


def _contaminated(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    with path.open(encoding="utf-8") as fh:
        return {json.loads(line)["eval_prompt"].strip() for line in fh if line.strip()}


def _flag(value: str) -> float:
    return 1.0 if value.strip().lower() in ("true", "1", "1.0") else 0.0


def _rows(path: Path, source: str, group: str, dropped: set[str]) -> list[Example]:
    csv.field_size_limit(10_000_000)
    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["prompt"].strip() in dropped:
                continue
            outcomes = {WEAK_MODEL: _flag(row[WEAK_MODEL]), STRONG_MODEL: _flag(row[STRONG_MODEL])}
            out.append(Example(row["prompt"], source, group, outcomes, WEAK_MODEL, STRONG_MODEL))
    return out


def load_mmlu(root: Path) -> list[Example]:
    """MMLU, 49 subjects (group = subject), files sorted by name; 12,668 prompts after dropping."""
    base = root / "routellm" / "mmlu"
    dropped = _contaminated(base / "contaminated_prompts.jsonl")
    files = sorted((base / "responses").glob("mmlu_*.csv"))
    if not files:
        raise FileNotFoundError(f"no RouteLLM MMLU files under {base / 'responses'}")
    out: list[Example] = []
    for f in files:
        out.extend(_rows(f, "mmlu", f.stem.removeprefix("mmlu_"), dropped))
    return out


def load_gsm8k(root: Path) -> list[Example]:
    """GSM8K test set (group ``gsm8k``); 1,307 prompts after dropping."""
    base = root / "routellm" / "gsm8k"
    path = base / "gsm8k_responses.csv"
    if not path.is_file():
        raise FileNotFoundError(f"RouteLLM GSM8K file not found: {path}")
    return _rows(path, "gsm8k", "gsm8k", _contaminated(base / "contaminated_prompts.jsonl"))
