"""Recorded local, cloud and judge tiers on one OpenAI-compatible HTTP server.

For replaying recorded traffic through the real router (``bench/learning.py``, the learning
tests): each :class:`Recorded` item is a prompt with the weak model's answer (the local tier),
the strong model's answer (the cloud tier) and the recorded verdict on the weak answer: the
three-way ``outcome`` (``better`` / ``same`` / ``worse`` than the strong one, :func:`outcome_of`
the recorded outcomes: GSM8K/MMLU/RouterBench correctness of both models, AlpacaEval's judge
preference) and the binary ``local_ok`` (at least as good). The server answers
``POST /v1/chat/completions`` by the request's ``model``: ``local-recorded`` and
``cloud-recorded`` with the recorded answer to the last user turn, ``judge-recorded`` with
``BETTER``/``SAME``/``WORSE`` (the judge prompt's words, :func:`router.ledger.judge.judge_messages`;
the reply is about the local answer in both orders) from the recorded verdict of the request
the judge prompt quotes (``YES``/``NO`` for an item with no three-way outcome), ``UNSURE``
when it quotes none it knows. Usage counts whitespace words. ``received`` counts requests per
model.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["Recorded", "RecordedTiers", "LOCAL", "CLOUD", "JUDGE", "outcome_of", "question_of", "TIE_BAND"]

LOCAL, CLOUD, JUDGE = "local-recorded", "cloud-recorded", "judge-recorded"
_QUESTION = re.compile(r"Request:\n(.*?)\n\nAnswer 1:\n", re.S)
TIE_BAND = 0.1
"""Outcome differences within this are ``same`` (AlpacaEval's preferences are probabilities;
correctness differences are 0 or 1)."""


def outcome_of(weak: float, strong: float, tie: float = TIE_BAND) -> str:
    """The recorded three-way verdict on the weak (local) answer from both models' outcomes
    in [0, 1]: ``worse`` when the strong outcome exceeds the weak one by more than ``tie``,
    ``better`` when the weak one exceeds it by more than ``tie``, else ``same``. On
    correctness (0/1): local wrong and cloud right -> worse, local right and cloud wrong ->
    better, both right or both wrong -> same; on AlpacaEval (the strong model at 0.5, the weak
    one the judge's preference for it): preference below 0.4 -> worse, above 0.6 -> better."""
    d = float(strong) - float(weak)
    return "worse" if d > tie else "better" if d < -tie else "same"


def question_of(judge_prompt: str) -> str | None:
    """The request a judge prompt quotes (between ``Request:`` and ``Answer 1:``), or None."""
    m = _QUESTION.search(judge_prompt)
    return m.group(1).strip() if m else None


@dataclass(frozen=True)
class Recorded:
    """One recorded request: ``prompt``, ``local_text``, ``cloud_text``, ``local_ok`` (the
    recorded binary verdict: the local answer is at least as good as the cloud's) and
    ``outcome`` (the recorded three-way verdict, :func:`outcome_of`; None: binary only)."""

    prompt: str
    local_text: str
    cloud_text: str
    local_ok: bool
    outcome: str | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordedTiers:
    """Serve recorded answers and verdicts on ``127.0.0.1:port``; ``url`` is the ``api_base``."""

    def __init__(self, items: list[Recorded], port: int | None = None) -> None:
        self.items = {r.prompt.strip(): r for r in items}
        self.received: Counter[str] = Counter()
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> "RecordedTiers":
        self._thread.start()
        deadline = time.time() + 10
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("recorded tiers did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def _judge(self, text: str) -> str:
        question = question_of(text)
        item = self.items.get(question) if question is not None else None
        if item is None:
            return "UNSURE"
        if item.outcome is not None:
            return item.outcome.upper()
        return "YES" if item.local_ok else "NO"

    def answer(self, model: str, messages: list[dict[str, Any]]) -> str:
        """The text the server answers ``messages`` with under ``model``."""
        last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
        last = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last if isinstance(p, dict))
        if model.endswith(JUDGE):
            return self._judge(last)
        item = self.items.get(last.strip())
        if item is None:
            return "I have no recorded answer to this request."
        return item.local_text if model.endswith(LOCAL) else item.cloud_text

    async def _chat(self, request: Request):
        body = await request.json()
        model = str(body.get("model", ""))
        self.received[model] += 1
        messages = body.get("messages") or []
        text = self.answer(model, messages)
        prompt = sum(len(str(m.get("content") or "").split()) for m in messages)
        completion = len(text.split())
        return JSONResponse({
            "id": "chatcmpl-recorded", "object": "chat.completion", "created": int(time.time()), "model": model,
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                         "logprobs": None}],
        })
