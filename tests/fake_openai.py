"""A real OpenAI-compatible HTTP server that stands in for the cloud tier in tests.

It answers ``POST /v1/chat/completions`` with a fixed text, streaming or not, reports
usage (prompt tokens = whitespace words of all turns, completion tokens = words of the
answer, ``prompt_tokens_details.cached_tokens`` = ``cached_tokens`` capped at the prompt
tokens), optionally after ``delay_s`` seconds, and records every request body it received. litellm reaches it exactly as it
reaches OpenAI (``openai/<model>`` with ``api_base``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

ANSWER = "This is the cloud tier answering."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeOpenAI:
    """Run with ``start()``; ``url`` is the ``api_base``; ``received`` the request bodies."""

    def __init__(self, answer: str = ANSWER, fail_with: int | None = None, delay_s: float = 0.0,
                 cached_tokens: int = 0) -> None:
        self.answer = answer
        self.fail_with = fail_with
        self.delay_s = delay_s
        self.cached_tokens = cached_tokens
        self.received: list[dict[str, Any]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        deadline = time.time() + 10
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    async def _chat(self, request: Request):
        body = await request.json()
        self.received.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_with:
            return JSONResponse({"error": {"message": "forced failure", "type": "server_error", "code": None}},
                                status_code=self.fail_with)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(self.answer.split())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": min(self.cached_tokens, prompt_tokens)}
        created = int(time.time())
        if not body.get("stream"):
            return JSONResponse({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self.answer},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": usage,
            })

        def events():
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": body["model"]}
            yield "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}) + "\n\n"
            for word in self.answer.split(" "):
                yield "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}) + "\n\n"
            yield "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({**base, "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
