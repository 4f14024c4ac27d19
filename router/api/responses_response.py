"""The pipeline's answer -> OpenAI Responses shapes (pure, except for iterating a stream).

- :func:`to_response`: an OpenAI ``chat.completion`` body -> a ``response`` object (a
  ``message`` item with ``output_text``, one ``function_call`` item per tool call);
- :func:`response_events`: the stream events of a whole response (``response.created``,
  ``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``,
  ``response.output_text.delta``/``.done``, ``response.content_part.done``,
  ``response.function_call_arguments.delta``/``.done``, ``response.output_item.done``,
  ``response.completed``), each with its ``sequence_number``;
- :func:`stream_response_events`: the same for the pipeline's live text stream; a failure
  mid-stream ends it with ``response.failed``.

Shapes follow OpenAI's API reference ("Responses", "Streaming events").
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .responses_request import ResponsesRequest

__all__ = ["to_response", "response_events", "stream_response_events"]


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


def _pieces(text: str, size: int = 24) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _opening(event: _Events, response: dict[str, Any]) -> Iterator[bytes]:
    start = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    yield event("response.created", response=start)
    yield event("response.in_progress", response=start)


def response_events(response: dict[str, Any]) -> Iterator[bytes]:
    """The Responses stream events of a whole ``response`` (:func:`to_response`)."""
    event = _Events()
    yield from _opening(event, response)
    for i, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield event("response.output_item.added", output_index=i, item={**item, "status": "in_progress", "content": []})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield event("response.content_part.added", item_id=item["id"], output_index=i, content_index=0, part=part)
            for piece in _pieces(text):
                yield event("response.output_text.delta", item_id=item["id"], output_index=i, content_index=0,
                            delta=piece, logprobs=[])
            yield event("response.output_text.done", item_id=item["id"], output_index=i, content_index=0, text=text,
                        logprobs=[])
            yield event("response.content_part.done", item_id=item["id"], output_index=i, content_index=0,
                        part=item["content"][0])
        else:
            yield event("response.output_item.added", output_index=i,
                        item={**item, "arguments": "", "status": "in_progress"})
            for piece in _pieces(item["arguments"]):
                yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=i, delta=piece)
            yield event("response.function_call_arguments.done", item_id=item["id"], output_index=i,
                        arguments=item["arguments"], name=item["name"])
        yield event("response.output_item.done", output_index=i, item=item)
    yield event("response.completed" if response["status"] == "completed" else "response.incomplete",
                response=response)


async def stream_response_events(chat_stream: AsyncIterator[bytes], response_id: str,
                                 req: ResponsesRequest) -> AsyncIterator[bytes]:
    """Translate the pipeline's OpenAI chat SSE stream (one choice, usage chunk included) into
    Responses events, text delta by text delta."""
    event = _Events()
    response: dict[str, Any] | None = None
    item_id = f"msg_{response_id[5:]}"
    text: list[str] = []
    finish: str | None = None
    usage: dict[str, Any] | None = None
    async for raw in chat_stream:
        for line in raw.split(b"\n"):
            if not line.startswith(b"data: ") or line[6:].strip() == b"[DONE]":
                continue
            data = json.loads(line[6:])
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
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if not text:
                        yield event("response.output_item.added", output_index=0,
                                    item={**_text_item(item_id, "", "in_progress"), "content": []})
                        yield event("response.content_part.added", item_id=item_id, output_index=0, content_index=0,
                                    part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
                    text.append(piece)
                    yield event("response.output_text.delta", item_id=item_id, output_index=0, content_index=0,
                                delta=piece, logprobs=[])
                finish = choice.get("finish_reason") or finish
    if response is None:
        response = _envelope(response_id, req, "", "in_progress")
        for opening in _opening(event, response):
            yield opening
    output = []
    if text:
        item = _text_item(item_id, "".join(text))
        yield event("response.output_text.done", item_id=item_id, output_index=0, content_index=0,
                    text=item["content"][0]["text"], logprobs=[])
        yield event("response.content_part.done", item_id=item_id, output_index=0, content_index=0,
                    part=item["content"][0])
        yield event("response.output_item.done", output_index=0, item=item)
        output.append(item)
    final = _finished({**response, "output": output, "usage": _usage(usage)}, finish)
    yield event("response.completed" if final["status"] == "completed" else "response.incomplete", response=final)
