"""The one entry into the pipeline for every chat-like endpoint (``/v1/chat/completions``,
``/v1/messages``, ``/v1/responses``): read and parse the body, identify tenant and caller,
authorize, then answer through :meth:`router.pipeline.Router.complete` or
:meth:`~router.pipeline.Router.stream`. Every request is logged, failed ones included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from fastapi import Request

from ..api_keys import api_key_id
from ..errors import InvalidRequestError, PayloadTooLargeError, RouterError
from ..pipeline import RoutedAnswer, RoutedStream, new_request_id
from ..request import ChatRequest
from ..tenant import tenant_from_headers

__all__ = ["serve_chat", "read_body", "logged", "client_headers"]

log = logging.getLogger(__name__)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it exceeds ``limit`` bytes (checked against
    ``content-length`` first, then while reading, so a huge body is never held in memory).

    Raises:
        PayloadTooLargeError: the body is larger than ``limit``.
    """
    declared = request.headers.get("content-length")
    too_large = PayloadTooLargeError(
        f"The request body is larger than this router accepts ({limit} bytes).", param=None)
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise too_large
        chunks.append(piece)
    return b"".join(chunks)


async def logged(task: asyncio.Task | None) -> None:
    """Wait for a request's log write (run after its answer was sent)."""
    if task is None:
        return
    try:
        await task
    except Exception:
        log.exception("writing a request's log record failed")


def client_headers(request: Request) -> dict[str, str]:
    """The request headers (lower-case names), with Anthropic's ``x-api-key`` read as the
    proxy key (``Authorization: Bearer <key>``) when no ``Authorization`` header is sent, so
    an Anthropic SDK's key identifies the caller like an OpenAI client's."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "authorization" not in headers and headers.get("x-api-key"):
        headers["authorization"] = f"Bearer {headers['x-api-key']}"
    return headers


async def serve_chat(live, request: Request, parse: Callable[[bytes], ChatRequest]) -> RoutedAnswer | RoutedStream:
    """Answer one HTTP request through the pipeline of the router active when it arrived.

    Args:
        live: the app's :class:`router.live_policy.LivePolicy`.
        request: the HTTP request; ``request.state.request_id`` is set to the log row's id.
        parse: body bytes -> the chat request (the endpoint's own translation).

    Returns:
        A :class:`RoutedStream` when the parsed request streams, else a :class:`RoutedAnswer`
        whose ``logged`` task the caller awaits after sending it.

    Raises:
        RouterError: any client-visible failure, already logged.
    """
    started = time.time()
    router = live.router  # this request keeps this policy to the end, whatever reloads happen
    request_id = new_request_id()
    request.state.request_id = request_id
    record = router.new_record(request_id, started)
    headers = client_headers(request)
    tenant = tenant_from_headers(headers.get("authorization"), headers.get("cache-control"))
    record.tenant = tenant.tenant
    record.api_key_id = api_key_id(headers.get("authorization") or headers.get("api-key"))
    try:
        router.authorize(headers)
    except RouterError as err:
        await router.log_failure(record, err)
        raise
    try:
        chat = parse(await read_body(request, router.policy.server.max_request_bytes))
    except InvalidRequestError as err:
        record.api_key_name = router.caller_name(headers)
        await router.log_failure(record, err)
        raise
    except Exception as err:  # never an unlogged bare 500
        wrapped = InvalidRequestError(f"Could not read the request: {err}")
        await router.log_failure(record, wrapped)
        raise wrapped from err
    if chat.stream:
        return await router.stream(chat, record, headers, tenant)
    return await router.complete(chat, record, headers, tenant, log_later=True)
