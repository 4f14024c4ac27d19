"""``POST /v1/feedback``: a caller's verdict on an answered request, stored with it.

Authenticated as every ``/v1`` endpoint (``server.require_api_key``); the body is parsed by
:func:`router.request.feedback.parse_feedback` (400 in OpenAI's error shape, ``param``
naming the field); an unknown ``request_id`` is a 404 ``request_not_found``. A request whose
log row is still being written (the answer goes out first) is waited for. The answer is
``{"object": "feedback", "request_id", "stored": true}``. ``slm-router report`` shows the
feedback per tier and ``slm-router learn`` turns it into labels.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request

from ..errors import InvalidRequestError, RouterError
from ..request.feedback import parse_feedback
from ..store.base import FeedbackStore
from .chat_entry import read_body

__all__ = ["register_feedback"]


def register_feedback(app: FastAPI, live) -> None:
    """Add ``POST /v1/feedback`` to ``app``, stored in ``live``'s active router's log."""

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> Any:
        router = live.router
        identity = router.identify(request.headers)
        router.authorize(identity)
        item = parse_feedback(await read_body(request, router.policy.server.max_request_bytes), identity.api_key_id)
        store = router.store
        if not isinstance(store, FeedbackStore):
            raise RouterError("This request log keeps no feedback.", code="feedback_unsupported", status_code=501)
        found = await asyncio.to_thread(store.has_request, item.request_id)
        if not found:
            await router.writer.flush()  # its row may still be on the way to the log
            found = await asyncio.to_thread(store.has_request, item.request_id)
        if not found:
            raise InvalidRequestError(f"No logged request has the id {item.request_id!r}.", code="request_not_found",
                                      param="request_id", status_code=404)
        await asyncio.to_thread(store.record_feedback, item)
        return {"object": "feedback", "request_id": item.request_id, "stored": True}
