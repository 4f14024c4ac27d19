"""OpenAI wire shapes for responses and server-sent events (pure functions)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["chunk", "sse", "SSE_DONE", "error_event", "split_for_stream", "tool_call_fragments",
           "ToolCallAssembler", "sse_objects"]

SSE_DONE = b"data: [DONE]\n\n"


def chunk(
    completion_id: str,
    created: int,
    model: str,
    *,
    content: str | None = None,
    role: str | None = None,
    finish_reason: str | None = None,
    index: int = 0,
    usage: dict[str, int] | None = None,
    with_choice: bool = True,
    tool_calls: list[dict[str, Any]] | None = None,
    logprobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` object with one choice delta (or none, for the usage chunk);
    ``tool_calls`` are delta fragments in OpenAI's shape (``index``, ``id``, ``function``);
    ``logprobs`` the chunk's OpenAI ``logprobs.content`` entries (None leaves ``logprobs: null``)."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
    }
    if with_choice:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = role
        if content is not None:
            delta["content"] = content
        if tool_calls:
            delta["tool_calls"] = tool_calls
        body["choices"] = [{"index": index, "delta": delta,
                            "logprobs": {"content": logprobs} if logprobs else None, "finish_reason": finish_reason}]
    if usage is not None:
        body["usage"] = {**usage, "total_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)}
    return body


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event line pair: ``data: <json>\\n\\n`` (UTF-8, non-ASCII kept)."""
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"


def sse_objects(raw: bytes) -> Iterator[dict[str, Any]]:
    """The JSON objects of the ``data:`` lines in a piece of an SSE stream (``[DONE]`` skipped),
    e.g. the pipeline's own stream read back by the other APIs' translators."""
    for line in raw.split(b"\n"):
        if line.startswith(b"data: ") and line[6:].strip() != b"[DONE]":
            yield json.loads(line[6:])


def error_event(message: str, error_type: str = "upstream_error", code: str = "stream_interrupted") -> bytes:
    """The SSE event that reports a failure after the stream began (OpenAI's error shape)."""
    return sse({"error": {"message": message, "type": error_type, "param": None, "code": code}})


def tool_call_fragments(tool_calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A finished message's ``tool_calls`` as stream fragments: one per call, with its
    ``index``, ``id``, ``type``, ``function.name`` and the whole ``function.arguments``
    (what OpenAI's own streams send in pieces, in one piece)."""
    out = []
    for k, tc in enumerate(tool_calls or []):
        fn = tc.get("function") or {}
        out.append({"index": k, "id": tc.get("id"), "type": tc.get("type") or "function",
                    "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or ""}})
    return out


class ToolCallAssembler:
    """Joins streamed tool-call fragments back into whole calls (pure, in memory).

    ``add(fragments)`` takes one delta's ``tool_calls``; ``calls()`` returns the calls in
    ``index`` order as a message's ``tool_calls`` (``id``, ``type``, ``function.name``,
    ``function.arguments`` as the concatenated pieces). Falsy until a fragment arrived.
    """

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, fragments: list[dict[str, Any]]) -> None:
        for frag in fragments:
            call = self._calls.setdefault(int(frag.get("index") or 0),
                                          {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
            if frag.get("id"):
                call["id"] = frag["id"]
            if frag.get("type"):
                call["type"] = frag["type"]
            fn = frag.get("function") or {}
            if fn.get("name"):
                call["function"]["name"] += fn["name"]
            if fn.get("arguments"):
                call["function"]["arguments"] += fn["arguments"]

    def calls(self) -> list[dict[str, Any]]:
        return [self._calls[k] for k in sorted(self._calls)]

    def __bool__(self) -> bool:
        return bool(self._calls)


def split_for_stream(text: str, size: int = 16) -> list[str]:
    """Split an already generated answer into pieces of at least ``size`` characters, cut
    after whitespace, for streaming a buffered answer; the pieces join back to ``text``."""
    pieces, current = [], ""
    for token in re.findall(r"\S+\s*|\s+", text):
        current += token
        if len(current) >= size:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces
