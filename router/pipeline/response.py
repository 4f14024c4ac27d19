"""What the client gets: the router headers, the ``chat.completion`` body, cached answers.

Pure functions of the request's log record and the tier's result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..guards.cache import CacheHit
from ..providers.tier_client import CallResult
from ..request.parse import ChatRequest
from ..routing.session import switched
from ..store.records import RequestRecord

__all__ = ["RoutedAnswer", "RoutedStream", "router_headers", "header_text", "completion_body", "hit_result", "client_logprobs",
           "format_note"]


@dataclass
class RoutedAnswer:
    """A non-streaming answer: the OpenAI ``chat.completion`` body and the router headers.

    ``logged`` is the task writing the request's log record when :meth:`Router.complete`
    was asked to log later (await it after sending the answer), else None (already logged).
    """

    body: dict[str, Any]
    headers: dict[str, str]
    logged: asyncio.Task | None = None


@dataclass
class RoutedStream:
    """A streaming answer: headers (known before the first byte) and the SSE byte stream."""

    headers: dict[str, str]
    events: AsyncIterator[bytes]


def header_text(text: str, limit: int = 200) -> str:
    """``text`` as an HTTP header value: printable ASCII only (anything else, a client's
    CR/LF or a non-ASCII field name included, becomes ``?``), at most ``limit`` characters.
    A value with a control character would make the HTTP server drop the answer."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:limit])


def router_headers(record: RequestRecord) -> dict[str, str]:
    """The ``x-router-*`` headers and ``x-request-id`` of a request (printable ASCII, at most
    200 characters for the reason and the rules: :func:`header_text`)."""
    return {
        "x-request-id": record.id,
        "x-router-tier": record.tier or "",
        "x-router-score": "none" if record.score is None else f"{record.score:.4f}",
        "x-router-escalated": "true" if record.escalated else "false",
        "x-router-degraded": "true" if record.degraded else "false",
        "x-router-reason": header_text(record.reason),
        "x-router-rules": header_text(record.rules or ""),
        "x-router-policy": record.policy_hash or "",
        **({"x-router-cache": record.cache} if record.cache else {}),
        **({"x-router-tenant": record.tenant} if record.tenant else {}),
        **({"x-router-session": record.session_id,
            "x-router-session-switched": "true" if switched(record) else "false"} if record.session_id else {}),
    }


def completion_body(request: ChatRequest, record: RequestRecord, model: str, result: CallResult) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` body: our id, the tier's ``model``, log-probabilities
    only when the client asked (cut to its ``top_logprobs``; the cascade may ask for more)."""
    body = dict(result.response)
    body["id"] = f"chatcmpl-{record.id}"
    body["model"] = model
    if record.cache:
        body["created"] = int(time.time())
    keep_top = int(request.params.get("top_logprobs") or 0)
    for choice in body.get("choices") or []:
        choice.pop("provider_specific_fields", None)
        if not request.params.get("logprobs"):
            choice["logprobs"] = None
        elif isinstance(choice.get("logprobs"), dict):
            for token in choice["logprobs"].get("content") or []:
                if isinstance(token, dict) and isinstance(token.get("top_logprobs"), list):
                    token["top_logprobs"] = token["top_logprobs"][:keep_top]
    return body


def hit_result(hit: CacheHit, record: RequestRecord) -> CallResult:
    """A cached answer as a call result; notes the hit on the record (its reason is the hit)."""
    record.cache, record.routed_tier = hit.kind, hit.tier
    record.reason = f"{hit.kind} cache hit" + (f" (similarity {hit.similarity:.3f})" if hit.similarity else "")
    body = dict(hit.body)
    choice = (body.get("choices") or [{}])[0]
    usage = body.get("usage") or {}
    return CallResult(response=body, text=(choice.get("message") or {}).get("content") or "",
                      finish_reason=choice.get("finish_reason"), prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0), latency_ms=0.0)


def client_logprobs(request: ChatRequest, entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """A stream chunk's log-probabilities as the client asked for them (``logprobs: true``,
    ``top_logprobs`` alternatives each), or None when it did not ask: the cascade's own
    request for them is never passed on."""
    if not entries or not request.params.get("logprobs"):
        return None
    keep = int(request.params.get("top_logprobs") or 0)
    return [{**e, "top_logprobs": list(e.get("top_logprobs") or [])[:keep]} for e in entries]


def format_note(request: ChatRequest, result: CallResult, reason: str) -> str | None:
    """The note for an answer returned to the client although it fails the request's
    ``response_format`` (not JSON, or not matching the schema), whichever tier answered and
    whether or not the cascade checked it; None when it passes or the reason already marks it."""
    from ..cascade.signals import format_error

    fmt = request.params.get("response_format")
    if not fmt or result.tool_calls:
        return None
    problem = format_error(result.text, fmt)
    if not problem or f"returned anyway: {problem}" in reason:
        return None
    return f"returned anyway: {problem}"
