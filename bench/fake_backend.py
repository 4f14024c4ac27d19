"""A minimal OpenAI-compatible backend for proxy benchmarks: raw ASGI, fixed answer.

``POST /v1/chat/completions`` answers a fixed text with usage, as JSON or (``stream:
true``) as server-sent events; ``GET /health`` answers ok. Run it with
``python -m uvicorn --app-dir bench fake_backend:app --port PORT``.
"""

from __future__ import annotations

import json
import time

ANSWER_WORDS = ["The", " answer", " is", " forty", "-two", "."] * 4
ANSWER = "".join(ANSWER_WORDS)
USAGE = {"prompt_tokens": 20, "completion_tokens": len(ANSWER_WORDS), "total_tokens": 20 + len(ANSWER_WORDS)}


async def _body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] != "/v1/chat/completions":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    request = json.loads(await _body(receive) or b"{}")
    model = request.get("model", "fake")
    created = int(time.time())
    if not request.get("stream"):
        body = json.dumps({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
            "usage": USAGE,
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": created, "model": model}
    for i, word in enumerate(ANSWER_WORDS):
        delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        await send({"type": "http.response.body", "body": b"data: " + json.dumps(chunk).encode() + b"\n\n", "more_body": True})
    final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE}
    await send({"type": "http.response.body", "body": b"data: " + json.dumps(final).encode() + b"\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
