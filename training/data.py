"""Loaders for labelled routing data into one schema.

Each :class:`Example` is one prompt with the outcome in [0, 1] of a weak and a strong
model. Source: RouteLLM's per-question outcomes (github lm-sys/RouteLLM), weak =
Mixtral-8x7B-Instruct, strong = GPT-4-1106-preview; the prompts RouteLLM marked as
contaminated are dropped, as its published evaluation does.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Example", "data_root", "load_routellm", "WEAK_MODEL", "STRONG_MODEL"]

WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled prompt.

    Attributes:
        prompt: the text sent to the models.
        source: dataset name (``mmlu``, ``gsm8k``).
        group: sub-group (MMLU subject; ``gsm8k``).
        weak: the weak model's outcome in [0, 1] (1 = correct).
        strong: the strong model's outcome in [0, 1].
    """

    prompt: str
    source: str
    group: str
    weak: float
    strong: float

    @property
    def needs_strong(self) -> int:
        """1 when the strong model is right and the weak one wrong, else 0."""
        return int(self.strong >= 0.5 and self.weak < 0.5)


def data_root() -> Path:
    """``$SLM_ROUTER_DATA`` or ``../shared/data`` relative to the repository root.

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    env = os.environ.get("SLM_ROUTER_DATA")
    root = Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    if not root.is_dir():
        raise FileNotFoundError(
            f"data folder not found: {root}; set SLM_ROUTER_DATA to the folder holding routellm/"
        )
    return root


def _contaminated(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {json.loads(line)["eval_prompt"].strip() for line in path.open(encoding="utf-8") if line.strip()}


def _flag(value: str) -> float:
    return 1.0 if value.strip().lower() in ("true", "1", "1.0") else 0.0


def load_routellm(names: tuple[str, ...] = ("mmlu", "gsm8k"), root: Path | None = None) -> list[Example]:
    """Load RouteLLM's MMLU (49 subjects) and/or GSM8K outcomes, contaminated prompts dropped.

    Returns:
        Examples in file order (MMLU subjects sorted by file name).
    Raises:
        FileNotFoundError: the data folder is missing.
        ValueError: an unknown dataset name.
    """
    base = (root or data_root()) / "routellm"
    out: list[Example] = []
    csv.field_size_limit(10_000_000)
    for name in names:
        if name == "mmlu":
            dropped = _contaminated(base / "mmlu" / "contaminated_prompts.jsonl")
            for f in sorted((base / "mmlu" / "responses").glob("mmlu_*.csv")):
                subject = f.stem.removeprefix("mmlu_")
                with f.open(encoding="utf-8", newline="") as fh:
                    for row in csv.DictReader(fh):
                        if row["prompt"].strip() in dropped:
                            continue
                        out.append(Example(row["prompt"], "mmlu", subject, _flag(row[WEAK_MODEL]), _flag(row[STRONG_MODEL])))
        elif name == "gsm8k":
            dropped = _contaminated(base / "gsm8k" / "contaminated_prompts.jsonl")
            with (base / "gsm8k" / "gsm8k_responses.csv").open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    if row["prompt"].strip() in dropped:
                        continue
                    out.append(Example(row["prompt"], "gsm8k", "gsm8k", _flag(row[WEAK_MODEL]), _flag(row[STRONG_MODEL])))
        else:
            raise ValueError(f"unknown RouteLLM dataset {name!r}; expected 'mmlu' or 'gsm8k'")
    return out
