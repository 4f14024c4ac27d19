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
    """Run with ``start()``; ``url`` is the ``api_base``; ``received`` the request bodies;
    ``delay_s`` seconds of wait before each answer (a slow upstream)."""

    def __init__(self, answer: str = ANSWER, fail_with: int | None = None, delay_s: float = 0.0,
                 cached_tokens: int = 0) -> None:
        self.answer = answer
        self.fail_with = fail_with
        # Failure modes for streams: "inband_error" (an error event instead of chunks) or
        # "drop:N" (the socket closes after N words, with no finish reason and no [DONE]).
        self.stream_fault: str | None = None
        # Answer given when the request asks for response_format json_object/json_schema.
        self.json_answer = '{"city": "Tokyo", "population": 14000000}'
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
            # Like some providers, echo the credential it was sent in the error message.
            message = f"forced failure for credential {request.headers.get('authorization', '')}"
            return JSONResponse({"error": {"message": message, "type": "server_error", "code": None}},
                                status_code=self.fail_with)
        # Honour max_tokens / max_completion_tokens (one word = one token here) and n.
        wants_json = (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")
        words = (self.json_answer if wants_json else self.answer).split(" ")
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if cap and len(words) > cap:
            words, finish = words[:cap], "length"
        n = int(body.get("n") or 1)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(words) * n
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": min(self.cached_tokens, prompt_tokens)}
        created = int(time.time())
        if not body.get("stream"):
            return JSONResponse({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": body["model"],
                "choices": [{"index": i, "message": {"role": "assistant", "content": " ".join(words)},
                             "finish_reason": finish, "logprobs": None} for i in range(n)],
                "usage": usage,
            })

        fault = self.stream_fault

        def events():
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": body["model"]}
            if fault == "inband_error":
                yield "data: " + json.dumps({"error": {"message": "overloaded", "type": "server_error", "code": "overloaded"}}) + "\n\n"
                return
            for i in range(n):
                yield "data: " + json.dumps({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}) + "\n\n"
                for k, word in enumerate(words):
                    if fault and fault.startswith("drop:") and k == int(fault.split(":")[1]):
                        raise ConnectionResetError("fake upstream dropped the connection")
                    piece = word if k == len(words) - 1 else word + " "
                    yield "data: " + json.dumps({**base, "choices": [{"index": i, "delta": {"content": piece}, "finish_reason": None}]}) + "\n\n"
                yield "data: " + json.dumps({**base, "choices": [{"index": i, "delta": {}, "finish_reason": finish}]}) + "\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({**base, "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
