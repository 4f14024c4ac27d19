"""A real HTTP server speaking Anthropic's Messages API, standing in for an Anthropic cloud
tier in tests (litellm reaches it through its Anthropic provider: ``anthropic/<model>`` with
``api_base``).

``POST /v1/messages``: when the request offers tools and the last user turn mentions
"weather", it answers with a ``tool_use`` block calling the first tool with
``{"city": "Paris"}``; when the last turn carries a ``tool_result``, it answers "The tool
said: <result>"; otherwise a fixed text. Usage: input tokens = whitespace words of the
system prompt and every turn's text, output tokens = words of the answer,
``cache_read_input_tokens`` = ``cache_read`` capped at the input. ``stream: true`` sends
Anthropic's event sequence. Every request body and its headers are kept in ``received``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from .fake_openai import free_port

ANTHROPIC_ANSWER = "Claude stand-in answering from the cloud."


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for block in content or []:
        if block.get("type") == "text":
            out.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            out.append(_text(block.get("content")))
    return " ".join(out)


class FakeAnthropic:
    """Run with ``start()``; ``url`` is the ``api_base``; ``received`` holds
    ``(body, headers)`` pairs; ``fail_with`` answers every request with that status."""

    def __init__(self, answer: str = ANTHROPIC_ANSWER, cache_read: int = 0, fail_with: int | None = None) -> None:
        self.answer = answer
        self.cache_read = cache_read
        self.fail_with = fail_with
        self.received: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> "FakeAnthropic":
        self._thread.start()
        deadline = time.time() + 10
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("fake Anthropic server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def _content(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        last = body["messages"][-1]
        blocks = last["content"] if isinstance(last["content"], list) else []
        result = next((b for b in blocks if b.get("type") == "tool_result"), None)
        if result is not None:
            return [{"type": "text", "text": f"The tool said: {_text(result.get('content'))}"}], "end_turn"
        if body.get("tools") and "weather" in _text(last["content"]).lower():
            tool = body["tools"][0]["name"]
            return [{"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_fake01", "name": tool, "input": {"city": "Paris"}}], "tool_use"
        words = self.answer.split(" ")
        cap = int(body["max_tokens"])
        if len(words) > cap:
            return [{"type": "text", "text": " ".join(words[:cap])}], "max_tokens"
        return [{"type": "text", "text": self.answer}], "end_turn"

    async def _messages(self, request: Request):
        body = await request.json()
        self.received.append((body, dict(request.headers)))
        if self.fail_with:
            return JSONResponse({"type": "error", "error": {"type": "api_error", "message": "forced failure"}},
                                status_code=self.fail_with)
        if "max_tokens" not in body:
            return JSONResponse({"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "max_tokens: Field required"}}, status_code=400)
        content, stop = self._content(body)
        system = body.get("system") or ""
        words_in = len(_text(system).split()) + sum(len(_text(m["content"]).split()) for m in body["messages"])
        words_out = sum(len(b.get("text", "").split()) + len(json.dumps(b.get("input", ""))) // 8 for b in content)
        cached = min(self.cache_read, words_in)
        usage = {"input_tokens": words_in - cached, "output_tokens": words_out,
                 "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}
        message = {"id": "msg_fake01", "type": "message", "role": "assistant", "model": body["model"],
                   "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            return JSONResponse(message)

        def event(kind: str, data: dict[str, Any]) -> str:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

        def events():
            start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
            yield event("message_start", {"message": start})
            yield event("ping", {})
            for i, block in enumerate(content):
                if block["type"] == "text":
                    yield event("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
                    for k, word in enumerate(block["text"].split(" ")):
                        piece = word if k == 0 else " " + word
                        yield event("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": piece}})
                else:
                    yield event("content_block_start", {"index": i, "content_block": {**block, "input": {}}})
                    raw = json.dumps(block["input"])
                    for k in range(0, len(raw), 5):
                        yield event("content_block_delta", {"index": i, "delta": {"type": "input_json_delta",
                                                                                  "partial_json": raw[k:k + 5]}})
                yield event("content_block_stop", {"index": i})
            yield event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                          "usage": {"output_tokens": words_out}})
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")
