"""The pipeline's answer -> OpenAI Responses shapes (pure, except for iterating a stream).

- :func:`to_response`: an OpenAI ``chat.completion`` body -> a ``response`` object (a
  ``message`` item with ``output_text``, one ``function_call`` item per tool call);
- :func:`stream_response_events`: the pipeline's live stream -> the Responses events
  (``response.created``, ``response.in_progress``, ``response.output_item.added``,
  ``response.content_part.added``, ``response.output_text.delta``/``.done``,
  ``response.content_part.done``, ``response.function_call_arguments.delta``/``.done``,
  ``response.output_item.done``, ``response.completed`` or ``response.incomplete``), each
  with its ``sequence_number``; a failure mid-stream ends it with ``response.failed``.

Shapes follow OpenAI's API reference ("Responses", "Streaming events").
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..openai_format import sse_objects
from .responses_request import ResponsesRequest

__all__ = ["to_response", "stream_response_events"]


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": int((details or {}).get("cached_tokens") or 0)},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def _envelope(response_id: str, req: ResponsesRequest, model: str, status: str) -> dict[str, Any]:
    """The response object's fields that echo the request (status and output filled later)."""
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
        "error": None, "incomplete_details": None, "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens, "model": model, "output": [],
        "parallel_tool_calls": req.parallel_tool_calls is not False, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": False,
        "temperature": req.temperature if req.temperature is not None else 1.0,
        "text": req.text or {"format": {"type": "text"}}, "tool_choice": req.tool_choice or "auto",
        "tools": req.tools or [], "top_p": req.top_p if req.top_p is not None else 1.0, "truncation": "disabled",
        "usage": None, "user": req.user, "metadata": req.metadata or {},
    }


def _finished(response: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    if finish_reason == "length":
        return {**response, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    if finish_reason == "content_filter":
        return {**response, "status": "incomplete", "incomplete_details": {"reason": "content_filter"}}
    return {**response, "status": "completed"}


def _text_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def to_response(body: dict[str, Any], response_id: str, req: ResponsesRequest) -> dict[str, Any]:
    """A ``response`` object from the pipeline's ``chat.completion`` body (first choice)."""
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if message.get("content"):
        output.append(_text_item(f"msg_{response_id[5:]}", message["content"]))
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        output.append({"type": "function_call", "id": f"fc_{response_id[5:]}_{i}", "call_id": call.get("id") or f"call_{i}",
                       "name": function.get("name", ""), "arguments": function.get("arguments") or "{}",
                       "status": "completed"})
    response = _envelope(response_id, req, body.get("model", ""), "completed")
    return _finished({**response, "output": output, "usage": _usage(body.get("usage"))}, choice.get("finish_reason"))


class _Events:
    """Numbers the events of one stream (``sequence_number`` from 0)."""

    def __init__(self) -> None:
        self._n = itertools.count()

    def __call__(self, kind: str, **data: Any) -> bytes:
        payload = json.dumps({"type": kind, "sequence_number": next(self._n), **data}, ensure_ascii=False,
                             separators=(",", ":"))
        return f"event: {kind}\ndata: {payload}\n\n".encode("utf-8")


def _opening(event: _Events, response: dict[str, Any]) -> Iterator[bytes]:
    start = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    yield event("response.created", response=start)
    yield event("response.in_progress", response=start)


class _Items:
    """The output items of a translated stream: one open at a time, numbered from 0; text
    pieces go to a ``message`` item, tool-call pieces (by their OpenAI ``index``) to a
    ``function_call`` item. ``done`` holds the finished items."""

    def __init__(self, event: _Events, response_id: str) -> None:
        self.event, self.rid = event, response_id[5:]
        self.done: list[dict[str, Any]] = []
        self.open: tuple[str, int] | None = None
        self.item: dict[str, Any] = {}
        self.parts: list[str] = []

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.item["id"], "output_index": len(self.done)}

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        e, where, joined = self.event, self._where(), "".join(self.parts)
        if self.open[0] == "text":
            item = _text_item(self.item["id"], joined)
            out = [e("response.output_text.done", **where, content_index=0, text=joined, logprobs=[]),
                   e("response.content_part.done", **where, content_index=0, part=item["content"][0])]
        else:
            item = {**self.item, "arguments": joined, "status": "completed"}
            out = [e("response.function_call_arguments.done", **where, arguments=joined, name=item["name"])]
        out.append(e("response.output_item.done", output_index=len(self.done), item=item))
        self.done.append(item)
        self.open, self.parts = None, []
        return out

    def text(self, piece: str) -> list[bytes]:
        out: list[bytes] = []
        if self.open != ("text", 0):
            out += self.close()
            self.open, self.item = ("text", 0), {**_text_item(f"msg_{self.rid}", "", "in_progress"), "content": []}
            out += [self.event("response.output_item.added", output_index=len(self.done), item=self.item),
                    self.event("response.content_part.added", **self._where(), content_index=0,
                               part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})]
        self.parts.append(piece)
        return out + [self.event("response.output_text.delta", **self._where(), content_index=0, delta=piece,
                                 logprobs=[])]

    def tool(self, piece: dict[str, Any]) -> list[bytes]:
        key, function = ("tool", int(piece.get("index") or 0)), piece.get("function") or {}
        out: list[bytes] = []
        if self.open != key:
            out += self.close()
            self.open = key
            self.item = {"type": "function_call", "id": f"fc_{self.rid}_{key[1]}",
                         "call_id": piece.get("id") or f"call_{key[1]}", "name": function.get("name") or "",
                         "arguments": "", "status": "in_progress"}
            out.append(self.event("response.output_item.added", output_index=len(self.done), item=self.item))
        if function.get("arguments"):
            self.parts.append(function["arguments"])
            out.append(self.event("response.function_call_arguments.delta", **self._where(),
                                  delta=function["arguments"]))
        return out


async def stream_response_events(chat_stream: AsyncIterator[bytes], response_id: str,
                                 req: ResponsesRequest) -> AsyncIterator[bytes]:
    """Translate the pipeline's OpenAI chat SSE stream (one choice, usage chunk included) into
    Responses events: text as ``response.output_text.delta``, each tool call as a
    ``function_call`` item whose arguments arrive as ``response.function_call_arguments.delta``."""
    event = _Events()
    items = _Items(event, response_id)
    response: dict[str, Any] | None = None
    finish: str | None = None
    usage: dict[str, Any] | None = None
    async for raw in chat_stream:
        for data in sse_objects(raw):
            if response is None:
                response = _envelope(response_id, req, data.get("model", ""), "in_progress")
                for opening in _opening(event, response):
                    yield opening
            if "error" in data:
                failed = {**response, "status": "failed",
                          "error": {"code": "server_error", "message": str((data["error"] or {}).get("message"))}}
                yield event("response.failed", response=failed)
                return
            if data.get("usage"):
                usage = data["usage"]
            for choice in data.get("choices") or []:
                delta = choice.get("delta") or {}
                for out in (items.text(delta["content"]) if delta.get("content") else []):
                    yield out
                for piece in delta.get("tool_calls") or ():
                    for out in items.tool(piece):
                        yield out
                finish = choice.get("finish_reason") or finish
    if response is None:
        response = _envelope(response_id, req, "", "in_progress")
        for opening in _opening(event, response):
            yield opening
    for out in items.close():
        yield out
    final = _finished({**response, "output": items.done, "usage": _usage(usage)}, finish)
    yield event("response.completed" if final["status"] == "completed" else "response.incomplete", response=final)
