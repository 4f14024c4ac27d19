"""An OpenAI-compatible HTTP server that answers AlpacaEval instructions with GPT-4-Turbo's
recorded answers: a cloud tier stand-in for sessions run without internet.

``../shared/data/alpaca_eval/results/gpt4_1106_preview/model_outputs.json`` holds
``gpt-4-1106-preview``'s real answer to each of the 805 AlpacaEval instructions. For a chat
request whose last user turn is one of them, this server returns that answer cut to the
request's ``max_tokens`` (finish reason ``length`` when cut), with usage counted by the
model's own tokenizer (litellm's, offline): what the real API would have returned at
temperature 0, up to sampling. Any other request gets a short fixed reply and is counted in
``unknown``. Streaming requests get one content chunk and the usage chunk.

Run alone: ``python bench/recorded_cloud.py --port 8090``; :class:`RecordedCloud` runs it
on a thread for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from training.data import data_root  # noqa: E402

MODEL = "gpt-4-1106-preview"
FALLBACK = "I have no recorded answer to this request."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordedCloud:
    """Serve recorded answers on ``127.0.0.1:port``; ``url`` is the ``api_base``.

    Attributes: ``answered`` (requests answered from the recording), ``unknown`` (others).
    """

    def __init__(self, port: int | None = None) -> None:
        outputs = json.loads((data_root() / "alpaca_eval" / "results" / "gpt4_1106_preview" / "model_outputs.json").read_text())
        self.answers = {o["instruction"].strip(): o["output"] for o in outputs}
        self.answered = self.unknown = 0
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> "RecordedCloud":
        self._thread.start()
        deadline = time.time() + 10
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("recorded cloud did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def _answer(self, body: dict[str, Any]) -> tuple[str, str, dict[str, int]]:
        import litellm

        messages = body.get("messages") or []
        last_user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
        text = self.answers.get(str(last_user).strip())
        if text is None:
            self.unknown += 1
            text = FALLBACK
        else:
            self.answered += 1
        tokens = litellm.encode(model=MODEL, text=text)
        cap = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if cap and len(tokens) > cap:
            tokens, finish = tokens[:cap], "length"
            text = litellm.decode(model=MODEL, tokens=list(tokens))
        prompt_tokens = litellm.token_counter(model=MODEL, messages=messages)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                 "total_tokens": prompt_tokens + len(tokens)}
        return text, finish, usage

    async def _chat(self, request: Request):
        body = await request.json()
        text, finish, usage = self._answer(body)
        created = int(time.time())
        base = {"id": "chatcmpl-recorded", "created": created, "model": body.get("model", MODEL)}
        if not body.get("stream"):
            return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": None}]})

        def events():
            chunk = {**base, "object": "chat.completion.chunk"}
            yield "data: " + json.dumps({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                                                               "finish_reason": None}]}) + "\n\n"
            yield "data: " + json.dumps({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}) + "\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({**chunk, "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    server = RecordedCloud(args.port).start()
    print(f"recorded cloud on {server.url}; Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
