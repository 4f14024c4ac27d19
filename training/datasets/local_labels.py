"""Label files of the local tier (``slm-router label``) as training examples.

Each labelled answer becomes one :class:`Example` whose weak model is ``local`` (outcome 1
when the local answer was graded correct) and whose strong model is ``cloud``: the recorded
GPT-4-1106-preview outcome where the shared data has one for the same question (RouteLLM
MMLU/GSM8K, RouterBench ARC/Winogrande), else 1.0 (the cloud answer is treated as correct;
say so when reporting). So the toolkit's labels read: ``weak_wrong`` = "the local answer will
be wrong", ``gap`` = the quality gained by sending the prompt to the cloud instead.

The text is the last user turn (what the router embeds at run time), or with
``text="answer"`` the local answer (what a verifier embeds at run time); the
source is the label task (``sst2``, ``mmlu``...) and the group the task too, or the MMLU
subject / BBH task where the id names one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .base import Example

__all__ = ["is_label_file", "load_local_labels", "LOCAL", "CLOUD", "prompt_text"]

LOCAL, CLOUD = "local", "cloud"


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The last user turn's text (content parts joined)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def is_label_file(path: Path) -> bool:
    """True when the first JSON line of ``path`` is a label row (has ``messages`` and ``correct``)."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    return isinstance(row, dict) and "messages" in row and "correct" in row
    except (OSError, ValueError):
        return False
    return False


def _group(row: dict[str, Any]) -> str:
    parts = str(row["id"]).split(":")
    return f"{parts[0]}:{parts[1]}" if parts[0] in ("mmlu", "bbh") and len(parts) > 2 else str(row["task"])


def load_local_labels(path: Path, text: str = "prompt") -> list[Example]:
    """Examples from one label file (error rows skipped; the last row of a repeated id wins).

    Args:
        text: what an example's text is: ``prompt`` (the last user turn: a router that
            predicts from the request) or ``answer`` (the local answer: a verifier that
            judges the answer, ``escalation.verifier_artifact``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: no labelled rows, or an unknown ``text``.
    """
    from training.label import read_labels

    if text not in ("prompt", "answer"):
        raise ValueError(f"unknown text {text!r}; expected 'prompt' or 'answer'")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    out = []
    for row in read_labels([path]):
        recorded = row.get("recorded") or {}
        strong = recorded.get("correct")
        outcomes = {LOCAL: float(bool(row["correct"])), CLOUD: 1.0 if strong is None else float(strong)}
        shown = prompt_text(row["messages"]) if text == "prompt" else (row.get("answer") or " ")
        out.append(Example(shown, str(row["task"]), _group(row), outcomes, LOCAL, CLOUD))
    if not out:
        raise ValueError(f"{path}: no labelled rows (is it a file written by 'slm-router label'?)")
    return out
