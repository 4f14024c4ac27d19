"""The pipeline's answer -> Anthropic Messages shapes (pure, except for iterating a stream).

- :func:`to_message`: an OpenAI ``chat.completion`` body -> an Anthropic ``message``;
- :func:`stream_events`: the pipeline's OpenAI SSE stream -> Anthropic's event sequence
  (``message_start``, ``ping``, ``content_block_start``, ``content_block_delta`` with
  ``text_delta`` or, for tool input, ``input_json_delta``,
  ``content_block_stop``, ``message_delta`` with ``stop_reason`` and usage, ``message_stop``;
  an ``error`` event when the upstream fails mid-stream);
- :func:`error_body`: Anthropic's error JSON ``{"type": "error", "error": {"type", "message"}}``.

Shapes follow Anthropic's Messages API reference ("Streaming Messages", "Errors").
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..openai_format import sse_objects

__all__ = ["to_message", "stream_events", "error_body", "error_type_for", "sse_event",
           "STOP_REASONS", "usage_of"]

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
"""OpenAI ``finish_reason`` -> Anthropic ``stop_reason``."""

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def error_type_for(status: int) -> str:
    """Anthropic's ``error.type`` for an HTTP status (``api_error`` for other 5xx)."""
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error JSON for ``status`` (with ``request_id`` when known)."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type_for(status), "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def sse_event(kind: str, data: dict[str, Any]) -> bytes:
    """One Anthropic server-sent event: ``event: <kind>`` and ``data: {"type": <kind>, ...}``."""
    payload = json.dumps({"type": kind, **data}, ensure_ascii=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n".encode("utf-8")


def usage_of(usage: dict[str, Any] | None) -> dict[str, int]:
    """Anthropic usage from OpenAI usage: ``input_tokens`` excludes the prompt tokens read from
    the provider's cache, which are ``cache_read_input_tokens`` (Anthropic's accounting)."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    cached = int((details.get("cached_tokens") if isinstance(details, dict) else 0) or 0)
    prompt = int(usage.get("prompt_tokens") or 0)
    return {"input_tokens": max(prompt - cached, 0), "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": int(usage.get("cache_creation_input_tokens") or 0)}


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except (TypeError, json.JSONDecodeError):
        return {"_raw": str(arguments)}  # a model that wrote broken JSON: kept, not lost
    return value if isinstance(value, dict) else {"value": value}


def to_message(body: dict[str, Any], message_id: str) -> dict[str, Any]:
    """An Anthropic ``message`` from an OpenAI ``chat.completion`` body (first choice).

    Args:
        body: the pipeline's answer body (``model`` is the answering tier's model).
        message_id: the id to give the message (``msg_<request id>``).
    """
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{len(content)}",
                        "name": function.get("name", ""), "input": _tool_input(function.get("arguments"))})
    finish = choice.get("finish_reason") or "stop"
    stop = "tool_use" if message.get("tool_calls") else STOP_REASONS.get(finish, "end_turn")
    return {"id": message_id, "type": "message", "role": "assistant", "model": body.get("model", ""),
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage_of(body.get("usage"))}


def _start(message_id: str, model: str, input_tokens: int = 0) -> bytes:
    return sse_event("message_start", {"message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})


class _Blocks:
    """The content blocks of a translated stream: one open at a time, numbered from 0; text
    pieces go to a text block, tool-call pieces (by their OpenAI ``index``) to a tool_use block."""

    def __init__(self) -> None:
        self.index = 0
        self.open: tuple[str, int] | None = None

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        self.index += 1
        return [sse_event("content_block_stop", {"index": self.index - 1})]

    def _start(self, key: tuple[str, int], block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self.open = key
        return out + [sse_event("content_block_start", {"index": self.index, "content_block": block})]

    def text(self, piece: str) -> list[bytes]:
        out = [] if self.open == ("text", 0) else self._start(("text", 0), {"type": "text", "text": ""})
        return out + [sse_event("content_block_delta", {"index": self.index, "delta": {"type": "text_delta", "text": piece}})]

    def tool(self, piece: dict[str, Any]) -> list[bytes]:
        key, function = ("tool", int(piece.get("index") or 0)), piece.get("function") or {}
        out = [] if self.open == key else self._start(key, {
            "type": "tool_use", "id": piece.get("id") or f"toolu_{key[1]}", "name": function.get("name") or "", "input": {}})
        if function.get("arguments"):
            out.append(sse_event("content_block_delta", {"index": self.index, "delta": {
                "type": "input_json_delta", "partial_json": function["arguments"]}}))
        return out

    def close(self) -> list[bytes]:
        return self._close()


async def stream_events(chat_stream: AsyncIterator[bytes], message_id: str) -> AsyncIterator[bytes]:
    """Translate the pipeline's OpenAI chat SSE stream (one choice, usage chunk included) into
    Anthropic's event sequence under ``message_id``: text as ``text_delta``, tool calls as
    ``tool_use`` blocks whose input arrives as ``input_json_delta``. An OpenAI error event
    becomes an Anthropic ``error`` event and ends the stream (no ``message_stop``)."""
    started = False
    blocks = _Blocks()
    stop: str | None = None
    usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
    async for raw in chat_stream:
        for event in sse_objects(raw):
            if "error" in event:
                if not started:
                    yield _start(message_id, "")
                error = event["error"] or {}
                yield sse_event("error", {"error": {"type": "api_error", "message": str(error.get("message"))}})
                return
            if not started:
                yield _start(message_id, event.get("model", ""))
                yield sse_event("ping", {})
                started = True
            if event.get("usage"):
                usage = usage_of(event["usage"])
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                for out in (blocks.text(delta["content"]) if delta.get("content") else []):
                    yield out
                for piece in delta.get("tool_calls") or ():
                    for out in blocks.tool(piece):
                        yield out
                if choice.get("finish_reason"):
                    stop = STOP_REASONS.get(choice["finish_reason"], "end_turn")
    if not started:
        yield _start(message_id, "")
    for out in blocks.close():
        yield out
    yield sse_event("message_delta", {"delta": {"stop_reason": stop or "end_turn", "stop_sequence": None},
                                      "usage": usage})
    yield sse_event("message_stop", {})
