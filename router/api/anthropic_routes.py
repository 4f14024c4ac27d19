"""Anthropic's Messages API on the proxy: ``POST /v1/messages``,
``POST /v1/messages/count_tokens`` and the Anthropic-shaped model list.

Each request is translated by :mod:`.anthropic_request`, answered by the one chat pipeline
(:func:`.chat_entry.serve_chat`: rules, classifier, cascade, budgets, cache, log) and
translated back by :mod:`.anthropic_response`. Errors leave in Anthropic's JSON shape with
the router's status codes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from ..errors import RouterError
from ..pipeline import RoutedStream
from ..policy import Policy, TierConfig
from ..request.parse import ChatRequest
from .anthropic_request import parse_messages_request
from .anthropic_response import error_body, stream_events, to_message
from .chat_entry import ClientDisconnected, admit, logged, refusals_logged, serve_chat

__all__ = ["register_anthropic", "count_request_tokens", "counting_tier"]

log = logging.getLogger(__name__)

def counting_tier(policy: Policy, model: str) -> str:
    """The tier that counts a prompt too long for every tier: the one ``model`` names (a tier
    name, or an alias of one), else the policy's cloud tier."""
    named = policy.aliases.get(model, model)
    return named if named in policy.tiers else policy.routing.cloud_tier


def count_request_tokens(tier: TierConfig, chat: ChatRequest) -> int:
    """Prompt tokens of ``chat`` (turns and tools) as ``tier``'s model counts them
    (``litellm.token_counter``; its default tokenizer for models it has none for). Blocking."""
    import litellm

    return int(litellm.token_counter(model=tier.model, messages=chat.messages_as_dicts(),
                                     tools=chat.params.get("tools"), tool_choice=chat.params.get("tool_choice")))


def _error(request: Request, err: RouterError) -> JSONResponse:
    rid = getattr(request.state, "request_id", None)
    headers = dict(err.headers)
    if rid:
        headers["x-request-id"] = headers["request-id"] = rid
    return JSONResponse(error_body(err.status_code, err.message, rid), status_code=err.status_code,
                        headers=headers or None)


def _unexpected(request: Request, err: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return JSONResponse(error_body(500, f"Internal error: {type(err).__name__}. The request was logged."),
                        status_code=500)


def register_anthropic(app: FastAPI, live) -> None:
    """Add the Anthropic endpoints to ``app``, answered by ``live``'s active router."""

    @app.post("/v1/messages")
    async def messages(request: Request) -> Any:
        try:
            routed = await serve_chat(live, request, parse_messages_request)
        except RouterError as err:
            return _error(request, err)
        except ClientDisconnected:
            raise  # nobody reads the answer (the app's 499; the request is logged 'cancelled')
        except Exception as err:  # noqa: BLE001 - never a bare 500
            return _unexpected(request, err)
        message_id = f"msg_{request.state.request_id}"
        routed.headers["request-id"] = request.state.request_id  # where Anthropic's SDKs read the request id
        if isinstance(routed, RoutedStream):
            return StreamingResponse(stream_events(routed.events, message_id), media_type="text/event-stream",
                                     headers={**routed.headers, "cache-control": "no-cache"})
        return JSONResponse(to_message(routed.body, message_id), headers=routed.headers,
                            background=BackgroundTask(logged, routed.logged))

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> Any:
        """``{"input_tokens": N}``: the prompt as the tier this request would be routed to
        counts it (no model call; like ``POST /v1/route``, logged only when refused); a
        prompt too long for every tier is counted by :func:`counting_tier`'s tier."""
        router = live.router

        async def count(chat: ChatRequest) -> tuple[dict[str, str], int]:
            try:
                routing = await router.route(chat, request.headers, identity=identity)
            except RouterError as err:  # too long for every tier: still a count, what clients trim by
                if err.code != "context_length_exceeded":
                    raise
                name = counting_tier(router.policy, chat.model)
                headers = {"x-router-tier": name, "x-router-reason": f"fits no tier's context window; counted as "
                                                                     f"{name} counts it"}
                return headers, await asyncio.to_thread(count_request_tokens, router.policy.tiers[name], chat)
            tier = router.policy.tiers[routing.decision.tier]
            return {"x-router-tier": routing.decision.tier}, await asyncio.to_thread(count_request_tokens, tier, chat)

        try:  # x-api-key or a bearer token; a refusal is logged
            record, identity, chat = await admit(router, request, lambda body: parse_messages_request(
                body, count_only=True))
            headers, tokens = await refusals_logged(router, record, count(chat))
        except RouterError as err:
            return _error(request, err)
        except Exception as err:  # noqa: BLE001
            return _unexpected(request, err)
        return JSONResponse({"input_tokens": tokens}, headers=headers)
