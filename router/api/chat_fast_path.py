"""``POST /v1/chat/completions`` straight from the ASGI scope to its handler.

FastAPI runs each request through its exception, body-limit and exit-stack middleware, its
router's path matching, dependency solving and two layers of exception wrappers before the
handler. The chat endpoint needs none of them (it reads its body itself and takes only the
``Request``), and it is the product's hot path (issue 17: the forced tier's added latency).
:class:`ChatFastPath` sits just inside Starlette's ``ServerErrorMiddleware`` and calls the
handler directly; an exception goes to the app's own handler for its type (the same
OpenAI error JSON as on any other path). Every other request passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["ChatFastPath", "CHAT_PATH"]

CHAT_PATH = "/v1/chat/completions"

Handler = Callable[[Request], Awaitable[Response]]


class ChatFastPath:
    """Pure ASGI middleware: ``POST`` :data:`CHAT_PATH` -> ``handler``, the rest -> ``app``.

    Args:
        app: the next ASGI app (FastAPI's stack).
        handler: the chat endpoint (``Request -> Response``).
        handlers: the FastAPI app's ``exception_handlers`` (exception class -> handler); an
            exception is handled by the entry of its nearest class, else re-raised (to
            ``ServerErrorMiddleware``, which answers 500 through the ``Exception`` entry).
    """

    def __init__(self, app: Any, handler: Handler, handlers: dict[Any, Callable[..., Awaitable[Response]]]) -> None:
        self.app = app
        self._handler = handler
        self._handlers = handlers

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] != CHAT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await self._handler(request)
        except Exception as err:
            on_error = next((self._handlers[k] for k in type(err).__mro__ if k in self._handlers), None)
            if on_error is None:
                raise
            response = await on_error(request, err)
        await response(scope, receive, send)
