"""A real OpenAI-compatible HTTP server whose answers each test scripts (a cloud or local
tier stand-in for the hardening tests, reached through litellm like any provider).

``reply`` is called with the request body and returns one of:
- a ``dict``: sent as the JSON answer (status 200);
- ``(status, dict)``: sent with that status;
- a ``list[str]``: raw server-sent-event text sent as given (each item one write), so a test
  controls every byte of a stream (``event:`` / ``id:`` / ``retry:`` lines included); a
  number in the list is a pause of that many seconds (a stream that stalls).
``received`` holds every request body and ``headers`` its headers; ``delay_s`` waits before answering; ``per_chunk_s``
waits between stream writes; ``cancelled`` counts requests whose client went away.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from .fake_openai import FakeOpenAI

Reply = Callable[[dict[str, Any]], Any]


def completion(content: str | None = "ok", *, tool_calls: list[dict] | None = None, finish: str = "stop",
               usage: dict | None = None, logprobs: Any = None, n: int = 1) -> dict[str, Any]:
    """A non-streaming chat completion body (``usage`` None leaves the field out)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()), "model": "scripted",
        "choices": [{"index": i, "message": message, "finish_reason": finish, "logprobs": logprobs} for i in range(n)],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0, **extra: Any) -> str:
    """One SSE ``data:`` event carrying a chat.completion.chunk (``extra``: more choice fields,
    e.g. ``logprobs``)."""
    body = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": "scripted", "choices": [{"index": index, "delta": delta, "finish_reason": finish, **extra}]}
    return "data: " + json.dumps(body) + "\n\n"


def usage_chunk(prompt_tokens: int = 5, completion_tokens: int = 3) -> str:
    body = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": "scripted", "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}
    return "data: " + json.dumps(body) + "\n\n"


DONE = "data: [DONE]\n\n"


async def _client_left_during(request: Request, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as the client disconnects instead (its caller gave up)."""
    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    waiter = asyncio.ensure_future(gone())
    try:
        await asyncio.wait_for(asyncio.shield(waiter), timeout=seconds)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        waiter.cancel()


class ScriptedUpstream(FakeOpenAI):
    """Run with ``start()``; ``url`` is the ``api_base`` (``http://127.0.0.1:PORT/v1``); the
    server is :class:`tests.fake_openai.FakeOpenAI`'s, answering as ``reply`` scripts."""

    @staticmethod
    def default_reply(body: dict[str, Any]) -> dict[str, Any]:
        """A plain one-word answer with usage."""
        return completion("ok", usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})

    def __init__(self, reply: Reply | None = None) -> None:
        super().__init__()
        self.reply: Reply = reply or self.default_reply
        self.headers: list[dict[str, str]] = []  # request headers, lower-case names
        self.per_chunk_s = 0.0
        self.cancelled = 0

    async def _chat(self, request: Request):
        body = await request.json()
        self.received.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.delay_s and await _client_left_during(request, self.delay_s):
            self.cancelled += 1
            return JSONResponse({}, status_code=499)
        out = self.reply(body)
        if isinstance(out, tuple):
            status, payload = out
            return JSONResponse(payload, status_code=status)
        if isinstance(out, dict):
            return JSONResponse(out)
        pieces = list(out)
        pause = self.per_chunk_s

        async def events():
            try:
                for piece in pieces:
                    if isinstance(piece, (int, float)):
                        await asyncio.sleep(piece)
                        continue
                    yield piece
                    if pause:
                        await asyncio.sleep(pause)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

        return StreamingResponse(events(), media_type="text/event-stream")
