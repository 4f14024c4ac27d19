"""Label the local tier's own answers: run it on questions with gold answers and grade them.

``slm-router label --tier local --data sst2,mmlu --limit 400 --out labels.jsonl`` calls the
policy's tier through the same :class:`router.providers.tier_client.TierClient` the proxy uses
(litellm; the in-process SmolLM2 or any OpenAI-compatible server such as Ollama or a
llama.cpp server), so the labels describe the model users actually serve. For each item it
stores, as one JSON line:

- ``id``, ``task``, ``messages``, ``gold``, ``answer``, ``correct`` (the grader's verdict);
- ``recorded``: a strong model's recorded outcome on the question where the data has one;
- ``finish_reason``, ``latency_ms``, ``prompt_tokens``, ``completion_tokens``;
- ``token_logprobs`` (nats per token) and ``top_logprobs`` (top-2 per token);
- ``signals`` (:class:`router.cascade.signals.AnswerSignals` as a dict, self-check and consistency
  attached);
- ``self_check``: P("yes") and the check call's tokens and latency;
- ``sample``: a second answer sampled at temperature 0.7, its correctness and its agreement
  with the first (the consistency signal), with tokens and latency.

Resumable: ids already in ``--out`` are skipped, and each line is flushed as it is written,
so an interrupted run continues where it stopped. A failed call writes a row with ``error``
set and ``correct`` null; :func:`read_labels` skips such rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.policy import Policy
from router.providers.tier_client import CallResult, TierCallError, TierClient
from router.cascade.measures.self_check import SELF_CHECK_PARAMS, p_yes, self_check_messages
from router.cascade.signals import agreement, extract

from .label_tasks import LabelItem, grade

__all__ = ["LabelRun", "label_items", "label_one", "read_labels", "done_ids", "SAMPLE_TEMPERATURE"]

SAMPLE_TEMPERATURE = 0.7
"""Temperature of the second sample whose agreement with the greedy answer is the
consistency signal (self-consistency, Wang et al. 2023, samples at 0.5-0.7)."""


@dataclass(slots=True)
class LabelRun:
    """Options of one labelling run.

    Attributes:
        tier: the policy tier to label (its model, api_base, key).
        self_check: also ask the model whether its answer is right (one extra 1-token call).
        consistency: also draw a second sample at :data:`SAMPLE_TEMPERATURE`.
        concurrency: items in flight at once (1 for the in-process model; more for servers).
        seed: base of the second sample's per-item seeds.
    """

    tier: str = "local"
    self_check: bool = True
    consistency: bool = True
    concurrency: int = 1
    seed: int = 1


def done_ids(path: Path) -> set[str]:
    """Ids already labelled in ``path`` (empty when it does not exist); error rows count as
    not done, so a rerun retries them."""
    if not path.is_file():
        return set()
    out = set()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by an interrupted write
            if row.get("error") is None:
                out.add(row["id"])
    return out


def read_labels(paths: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Rows of label files (JSON lines as written by :func:`label_items`), error rows and
    repeated ids (the last row wins) dropped. A last line cut short by an interrupted run
    (no trailing newline) is skipped; it is labelled again on the next run.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a line that is not a JSON object, naming the file and line.
    """
    rows: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"label file not found: {path} (write one with: slm-router label)")
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                if n == len(lines):  # the unterminated last line of an interrupted write
                    continue
                raise ValueError(f"{path}:{n}: not a JSON label row") from None
            if not isinstance(row, dict) or "id" not in row:
                raise ValueError(f"{path}:{n}: not a JSON label row")
            if row.get("error") is None and row.get("correct") is not None:
                rows[row["id"]] = row
    return list(rows.values())


def _item_seed(item_id: str, seed: int) -> int:
    """A per-item sampling seed: one seed for every item would draw the same random number
    each time and correlate the samples across items."""
    return int(hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()[:8], 16)


async def label_one(client: TierClient, item: LabelItem, run: LabelRun) -> dict[str, Any]:
    """Label one item: answer, grade, signals, self-check and second sample.

    Raises:
        TierCallError: a call to the tier failed.
    """
    params = {"max_tokens": item.max_tokens, "temperature": 0.0, "logprobs": True, "top_logprobs": 2}
    first: CallResult = await client.complete(run.tier, item.messages, params)
    signals = extract(first.text, first.token_logprobs, first.finish_reason, None, first.top_logprobs)
    row: dict[str, Any] = {
        "id": item.id, "task": item.task, "messages": item.messages, "gold": list(item.gold),
        "grader": item.grader, "answer": first.text, "correct": grade(item, first.text),
        "finish_reason": first.finish_reason, "latency_ms": round(first.latency_ms, 1),
        "prompt_tokens": first.prompt_tokens, "completion_tokens": first.completion_tokens,
        "model": client.policy.tiers[run.tier].model, "tier": run.tier,
        "recorded": item.recorded,
        "token_logprobs": first.token_logprobs,
        "top_logprobs": first.top_logprobs,
    }
    check_p = None
    if run.self_check:
        check = await client.complete(run.tier, self_check_messages(item.messages, first.text), dict(SELF_CHECK_PARAMS))
        top = check.top_logprobs[0] if check.top_logprobs else []
        check_p = p_yes(top)
        row["self_check"] = {"p_yes": check_p, "answer": check.text, "prompt_tokens": check.prompt_tokens,
                             "completion_tokens": check.completion_tokens, "latency_ms": round(check.latency_ms, 1)}
    agree = None
    if run.consistency:
        sample = await client.complete(run.tier, item.messages, {
            "max_tokens": item.max_tokens, "temperature": SAMPLE_TEMPERATURE, "seed": _item_seed(item.id, run.seed)})
        agree = agreement(first.text, sample.text)
        row["sample"] = {"answer": sample.text, "correct": grade(item, sample.text), "agreement": agree,
                         "prompt_tokens": sample.prompt_tokens, "completion_tokens": sample.completion_tokens,
                         "latency_ms": round(sample.latency_ms, 1)}
    row["signals"] = signals.with_extra(self_check=check_p, consistency=agree).as_dict()
    return row


async def label_items(policy: Policy, items: Sequence[LabelItem], out: Path, run: LabelRun,
                      progress: Any = None) -> dict[str, int]:
    """Label ``items`` not yet in ``out``, appending one JSON line each.

    Args:
        policy: the policy whose tier ``run.tier`` is called.
        items: what to label; ids already done in ``out`` are skipped.
        out: JSONL file (created with its folder).
        progress: optional callable ``progress(done_item_row_or_None)`` after each item.
    Returns:
        Counts: ``labelled``, ``skipped`` (already done), ``errors``, ``correct``, and
        ``first_error`` (the first failure's message, or None).
    Raises:
        KeyError: ``run.tier`` is not a tier of the policy.
    """
    if run.tier not in policy.tiers:
        raise KeyError(f"tier {run.tier!r} is not in the policy; tiers: {', '.join(policy.tiers)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_ids(out)
    todo = [it for it in items if it.id not in done]
    counts: dict[str, Any] = {"labelled": 0, "skipped": len(items) - len(todo), "errors": 0, "correct": 0,
                              "first_error": None}
    client = TierClient(policy)
    await asyncio.to_thread(client.warm_up)
    queue: asyncio.Queue[LabelItem] = asyncio.Queue()
    for it in todo:
        queue.put_nowait(it)
    lock = asyncio.Lock()

    if out.is_file() and out.stat().st_size:
        raw = out.read_bytes()
        if not raw.endswith(b"\n"):  # an interrupted write left half a row: drop it (it is labelled again)
            out.write_bytes(raw[: raw.rfind(b"\n") + 1])
    with out.open("a", encoding="utf-8") as fh:
        async def worker() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                start = time.perf_counter()
                try:
                    row = await label_one(client, item, run)
                except TierCallError as err:
                    row = {"id": item.id, "task": item.task, "error": str(err)[:300], "correct": None,
                           "latency_ms": round((time.perf_counter() - start) * 1000, 1)}
                async with lock:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    fh.flush()
                    if row.get("error") is None:
                        counts["labelled"] += 1
                        counts["correct"] += bool(row["correct"])
                    else:
                        counts["errors"] += 1
                        counts["first_error"] = counts["first_error"] or row["error"]
                    if progress:
                        progress(row)

        await asyncio.gather(*(worker() for _ in range(max(1, run.concurrency))))
    return counts
