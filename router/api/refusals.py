"""Requests refused outside the chat pipeline (an unknown path, a caller who may not list
models): one log row each, and the error in the caller's own API shape.

A caller speaks Anthropic's API when it calls ``/v1/messages`` or sends ``anthropic-version``
(every Anthropic SDK does); any other caller gets OpenAI's error JSON.
"""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import JSONResponse

from ..errors import RouterError
from ..pipeline import new_request_id
from .anthropic_response import error_body as anthropic_error_body

__all__ = ["VERSION_HEADER", "wants_anthropic", "logged_refusal"]

VERSION_HEADER = "anthropic-version"


def wants_anthropic(request: Request) -> bool:
    """True when the client speaks Anthropic's API (a ``/v1/messages`` path or the
    ``anthropic-version`` header)."""
    return VERSION_HEADER in request.headers or request.url.path.startswith("/v1/messages")


async def logged_refusal(router, request: Request, err: RouterError,
                         requested_model: str | None = None) -> JSONResponse:
    """Log ``err`` as a failed request of ``router`` (a :class:`router.pipeline.Router`; one
    new row) and answer it: Anthropic's error JSON for an Anthropic caller (with
    ``request-id``), else OpenAI's; ``x-request-id`` and the error's own headers
    (``Retry-After``) either way. ``requested_model``: the model the caller named, logged
    (at most 200 characters)."""
    record = router.new_record(new_request_id(), time.time())
    if requested_model is not None:
        record.requested_model = requested_model[:200]
    await router.log_failure(record, err)
    headers = {**err.headers, "x-request-id": record.id}
    if wants_anthropic(request):
        return JSONResponse(anthropic_error_body(err.status_code, err.message, record.id),
                            status_code=err.status_code, headers={**headers, "request-id": record.id})
    return JSONResponse(err.to_openai(), status_code=err.status_code, headers=headers)
