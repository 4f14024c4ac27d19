"""The one entry into the pipeline for every chat-like endpoint (``/v1/chat/completions``,
``/v1/messages``, ``/v1/responses``): identify the caller once (:class:`Identity`: the
bearer key, or Anthropic's ``x-api-key``), authorize, read and parse the body with the
endpoint's own translation, then answer through :meth:`router.pipeline.Router.complete` or
:meth:`~router.pipeline.Router.stream`. Every request is logged, failed ones included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request

from ..errors import InvalidRequestError, PayloadTooLargeError, RouterError
from ..pipeline import RoutedAnswer, RoutedStream, new_request_id
from ..request.identity import Identity
from ..request.parse import ChatRequest
from ..store.records import RequestRecord

if TYPE_CHECKING:
    from ..pipeline import Router
    from .live_policy import LivePolicy

__all__ = ["serve_chat", "admit", "refusals_logged", "read_body", "logged", "ClientDisconnected"]

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


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready (nothing is sent)."""


async def _until_disconnect(request: Request, work: Any) -> Any:
    """Await ``work`` (a coroutine), cancelling it when the client disconnects first.

    Starlette cancels a streaming response whose client goes away, but not a handler that
    is still computing a non-streaming answer (or a stream held back for its check): a 1 s
    client timeout left SmolLM2 generating for 47 s. The disconnect arrives as an
    ``http.disconnect`` message on the ASGI receive channel once the body has been read;
    the cancelled pipeline logs the request ``cancelled`` with the tokens its calls spent.

    Raises:
        ClientDisconnected: the client went away (the work was cancelled).
    """
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        if not watcher.done():
            watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    raise ClientDisconnected()


async def logged(task: asyncio.Task | None) -> None:
    """Wait for a request's log write (run after its answer was sent)."""
    if task is None:
        return
    try:
        await task
    except Exception:
        log.exception("writing a request's log record failed")


async def admit(router: "Router", request: Request, parse: Callable[[bytes], ChatRequest]
                ) -> tuple[RequestRecord, Identity, ChatRequest]:
    """Start one API request's log record, identify and authorize the caller, read and parse
    the body; a refusal is logged (one row) before it is raised.

    Returns:
        (the request's record, the caller's identity, the parsed request);
        ``request.state.request_id`` is the record's id.

    Raises:
        RouterError: 401 (no or an unknown key), 413 (too large) or 400 (the body does not
            parse, or a field ``server.strict_requests`` refuses), already logged.
    """
    request_id = new_request_id()
    request.state.request_id = request_id
    record = router.new_record(request_id, time.time())
    identity = router.identify(request.headers)  # the credential headers, read once
    record.tenant, record.api_key_id = identity.tenant.tenant, identity.api_key_id
    try:
        router.authorize(identity)
    except RouterError as err:
        await router.log_failure(record, err)
        raise
    try:
        chat = parse(await read_body(request, router.policy.server.max_request_bytes))
        if router.policy.server.strict_requests and chat.ignored_fields:
            name = chat.ignored_fields[0]
            raise InvalidRequestError(f"Unrecognized request argument supplied: {name} "
                                      "(server.strict_requests is on).", param=name, code="unknown_parameter")
    except RouterError as err:
        record.api_key_name = identity.caller.name if identity.caller else None
        await router.log_failure(record, err)
        raise
    except Exception as err:  # never an unlogged bare 500
        wrapped = InvalidRequestError(f"Could not read the request: {type(err).__name__}: {err}"[:300])
        await router.log_failure(record, wrapped)
        raise wrapped from err
    record.requested_model = chat.model
    return record, identity, chat


async def refusals_logged(router: "Router", record: RequestRecord, work: Awaitable[Any]) -> Any:
    """Await ``work`` (an admitted request that calls no model: ``/v1/route``,
    ``count_tokens``), logging its refusal (a RouterError; any other error as a 500
    ``internal_error``) under ``record`` before raising it. Its success is not logged."""
    try:
        return await work
    except RouterError as err:
        await router.log_failure(record, err)
        raise
    except Exception as err:
        log.exception("request %s failed unexpectedly", record.id)
        wrapped = RouterError(f"Internal error ({type(err).__name__}); logged as request {record.id}.")
        await router.log_failure(record, wrapped)
        raise wrapped from err


async def serve_chat(live: "LivePolicy", request: Request,
                     parse: Callable[[bytes], ChatRequest]) -> RoutedAnswer | RoutedStream:
    """Answer one HTTP request through the pipeline of the router active when it arrived.

    Args:
        live: the app's :class:`router.api.live_policy.LivePolicy`.
        request: the HTTP request; ``request.state.request_id`` is set to the log row's id.
        parse: body bytes -> the chat request (the endpoint's own translation).

    Returns:
        A :class:`RoutedStream` when the parsed request streams, else a :class:`RoutedAnswer`
        whose ``logged`` task the caller awaits after sending it.

    Raises:
        RouterError: any client-visible failure, already logged.
        ClientDisconnected: the client went away before its answer was ready (logged
            ``cancelled``).
    """
    router = live.router  # this request keeps this policy to the end, whatever reloads happen
    record, identity, chat = await admit(router, request, parse)
    if chat.stream:
        return await _until_disconnect(request, router.stream(chat, record, request.headers, identity=identity))
    return await _until_disconnect(request, router.complete(chat, record, request.headers, log_later=True,
                                                            identity=identity))
