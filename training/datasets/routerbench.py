"""RouterBench's ARC-Challenge, Winogrande and MBPP (the subset shipped with RouterDC).

Source: ``routerbench/<task>_{train,test}.csv`` in the shared data (github shuhao02/RouterDC
0e63989). Each row has the 0/1 correctness and the USD cost of 11 models. Both files of a
task are loaded (group = ``train`` / ``test``, the file it came from) so the toolkit's own
k-fold split decides what is held out.

The ARC and Winogrande prompts are the same five solved demonstrations followed by the
question; the demonstrations are identical on every row, so the loader keeps the last
blank-line-separated block (the question and its choices), which is all that varies and all
a 256-token embedder would otherwise never reach. A model whose correctness cell is empty
(a few ARC rows) gets no outcome on that row; rows where the default weak or strong model
lacks one are dropped.

Default pair: weak = Mixtral-8x7B-chat (RouteLLM's weak model), strong = GPT-4-1106-preview.
"""

from __future__ import annotations

import ast
import csv
from pathlib import Path

from .base import Example

__all__ = ["TASKS", "WEAK_MODEL", "STRONG_MODEL", "load_routerbench", "question_block"]

TASKS = {"arc": "arc_challenge", "winogrande": "winograde", "mbpp": "mbpp"}
WEAK_MODEL = "mistralai/mixtral-8x7b-chat"
STRONG_MODEL = "gpt-4-1106-preview"
_NOT_MODELS = {"", "sample_id", "prompt", "eval_name", "oracle_model_to_route_to"}


def question_block(raw: str) -> str:
    """The prompt text of one RouterBench cell: the stored Python list literal is joined and
    only its last blank-line-separated block (the question, after the shared demonstrations)
    is kept."""
    try:
        parts = ast.literal_eval(raw)
        text = "\n\n".join(str(p) for p in parts) if isinstance(parts, list) else str(parts)
    except (ValueError, SyntaxError):
        text = raw
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    return blocks[-1].strip() if blocks else text.strip()


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def load_routerbench(task: str, root: Path) -> list[Example]:
    """Load one task (``arc``, ``winogrande`` or ``mbpp``), train then test file.

    Raises:
        ValueError: an unknown task.
        FileNotFoundError: its files are missing.
    """
    if task not in TASKS:
        raise ValueError(f"unknown RouterBench task {task!r}; expected one of {', '.join(TASKS)}")
    csv.field_size_limit(100_000_000)
    out: list[Example] = []
    for part in ("train", "test"):
        path = root / "routerbench" / f"{TASKS[task]}_{part}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"RouterBench file not found: {path}")
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            models = [c for c in reader.fieldnames or [] if "|" not in c and c not in _NOT_MODELS]
            for row in reader:
                outcomes = {m: v for m in models if (v := _float(row[m])) is not None}
                if WEAK_MODEL not in outcomes or STRONG_MODEL not in outcomes:
                    continue
                costs = {m: v for m in models if (v := _float(row.get(f"{m}|total_cost", ""))) is not None}
                out.append(Example(question_block(row["prompt"]), task, part, outcomes, WEAK_MODEL, STRONG_MODEL, costs))
    return out
