"""OpenAI's Responses API on the proxy (stateless subset): ``POST /v1/responses``.

The body is translated by :mod:`.responses_request`, answered by the one chat pipeline
(:func:`.chat_entry.serve_chat`) and translated back by :mod:`.responses_response`. Errors
are OpenAI's error JSON (the app's handlers).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from ..pipeline import RoutedStream
from ..request.parse import ChatRequest
from .chat_entry import logged, serve_chat
from .responses_request import ResponsesRequest, parse_responses_request
from .responses_response import stream_response_events, to_response

__all__ = ["register_responses"]


def register_responses(app: FastAPI, live) -> None:
    """Add ``POST /v1/responses`` to ``app``, answered by ``live``'s active router."""

    @app.post("/v1/responses")
    async def responses(request: Request) -> Any:
        original: ResponsesRequest | None = None

        def parse(body: bytes) -> ChatRequest:
            nonlocal original
            parsed = parse_responses_request(body)
            original = parsed.request
            return parsed.chat

        routed = await serve_chat(live, request, parse)
        response_id = f"resp_{request.state.request_id}"
        if isinstance(routed, RoutedStream):
            return StreamingResponse(stream_response_events(routed.events, response_id, original),
                                     media_type="text/event-stream", headers={**routed.headers, "cache-control": "no-cache"})
        return JSONResponse(to_response(routed.body, response_id, original), headers=routed.headers,
                            background=BackgroundTask(logged, routed.logged))
