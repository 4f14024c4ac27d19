"""A real OpenAI-compatible HTTP server that stands in for the local tier, with token
log-probabilities, so cascade decisions are deterministic (no SmolLM2, no float drift).

Each answer is :data:`LOCAL_ANSWER`; every token's log-probability is :data:`SURE` (-0.05
nats), or :data:`UNSURE` (-2.5 nats) when the last user turn contains the word ``hard``, and
each token carries two alternatives when ``top_logprobs`` is asked. Usage counts one token
per whitespace word, like :mod:`tests.fake_openai`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from .fake_openai import FakeOpenAI

LOCAL_ANSWER = "Paris is the capital of France."
SURE, UNSURE = -0.05, -2.5


def _logprob(body: dict[str, Any]) -> float:
    last = next((m for m in reversed(body["messages"]) if m.get("role") == "user"), {})
    return UNSURE if "hard" in str(last.get("content", "")).lower() else SURE


def _token(word: str, lp: float, top: int) -> dict[str, Any]:
    alternatives = [{"token": word, "logprob": lp, "bytes": None},
                    {"token": "x", "logprob": lp - 1.0, "bytes": None}][:top]
    return {"token": word, "logprob": lp, "bytes": None, "top_logprobs": alternatives}


class FakeLocal(FakeOpenAI):
    """Run with ``start()``; ``url`` is the ``api_base``; ``received`` the request bodies
    (the server of :class:`tests.fake_openai.FakeOpenAI`, answering as described above)."""

    async def _chat(self, request: Request):
        body = await request.json()
        self.received.append(body)
        words = LOCAL_ANSWER.split(" ")
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if cap and len(words) > cap:
            words, finish = words[:cap], "length"
        lp = _logprob(body)
        top = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
        pieces = [w if k == len(words) - 1 else w + " " for k, w in enumerate(words)]
        tokens = [_token(p, lp, top) for p in pieces] if body.get("logprobs") else None
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": prompt_tokens + len(words)}
        created = int(time.time())
        if not body.get("stream"):
            return JSONResponse({
                "id": "chatcmpl-local", "object": "chat.completion", "created": created, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)},
                             "finish_reason": finish, "logprobs": {"content": tokens} if tokens else None}],
                "usage": usage,
            })

        def events():
            base = {"id": "chatcmpl-local", "object": "chat.completion.chunk", "created": created,
                    "model": body["model"]}
            yield "data: " + json.dumps({**base, "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}) + "\n\n"
            for k, piece in enumerate(pieces):
                choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None,
                          "logprobs": {"content": [tokens[k]]} if tokens else None}
                yield "data: " + json.dumps({**base, "choices": [choice]}) + "\n\n"
            yield "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}) + "\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({**base, "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
