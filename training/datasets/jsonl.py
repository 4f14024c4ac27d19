"""A user's own labelled data: one JSON object per line, in the toolkit's schema.

Each line::

    {"prompt": "...",                      # required: the text the router sees
     "outcomes": {"small": 0, "big": 1},   # required: model -> outcome in [0, 1]
     "weak": "small", "strong": "big",     # optional: the pair (default: the file-wide pair below)
     "group": "billing",                   # optional: sub-group for --split group (default: the file name)
     "costs": {"small": 0.0001, "big": 0.002}}   # optional: model -> USD for this prompt

The pair may also be given once for the whole file by the first line's ``weak``/``strong``;
a line without them uses the previous line's. Outcomes outside [0, 1] are errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .base import Example

__all__ = ["load_jsonl", "text_lines"]


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number from 1, line)`` of a UTF-8 text file, a leading byte-order mark (what
    Windows tools such as PowerShell and Excel write) dropped and CRLF endings accepted.

    Raises:
        ValueError: a line that is not UTF-8 ("FILE:LINE: not UTF-8 text ...").
    """
    with Path(path).open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{n}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                                 f"{err.start + 1}); save the file as UTF-8") from None


def load_jsonl(path: Path) -> list[Example]:
    """Load a JSONL file in the schema above; ``source`` is the file's stem.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not valid JSON or breaks the schema (message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    out: list[Example] = []
    weak = strong = None
    for n, line in text_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object")
        prompt, outcomes = row.get("prompt"), row.get("outcomes")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{where}: 'prompt' must be a non-empty string")
        if not isinstance(outcomes, dict) or not outcomes:
            raise ValueError(f"{where}: 'outcomes' must be an object of model -> outcome in [0, 1]")
        try:
            parsed = {str(k): float(v) for k, v in outcomes.items()}
            costs = {str(k): float(v) for k, v in (row.get("costs") or {}).items()}
        except (TypeError, ValueError):
            raise ValueError(f"{where}: outcomes and costs must be numbers") from None
        if any(not 0.0 <= v <= 1.0 for v in parsed.values()):
            raise ValueError(f"{where}: every outcome must be in [0, 1]")
        weak, strong = row.get("weak", weak), row.get("strong", strong)
        if weak is None or strong is None:
            raise ValueError(f"{where}: name the pair with 'weak' and 'strong' (on this or an earlier line)")
        for m in (weak, strong):
            if m not in parsed:
                raise ValueError(f"{where}: model {m!r} has no outcome on this line")
        group = str(row.get("group", path.stem))
        out.append(Example(prompt, path.stem, group, parsed, str(weak), str(strong), costs))
    if not out:
        raise ValueError(f"{path}: no examples")
    return out
