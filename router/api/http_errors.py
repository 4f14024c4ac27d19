"""HTTP framing errors in OpenAI's error shape.

A request whose framing is broken (a ``Content-Length`` that does not match the body,
a malformed request line or header) never reaches the app: uvicorn's HTTP parser answers
it with a plain-text ``400 Invalid HTTP request received.``. Clients of an OpenAI-compatible
API parse error bodies as JSON, so :func:`protocol_class` gives uvicorn (its ``http``
setting, which takes a protocol class or an import string) a subclass of the protocol it
would pick that sends the same 400 as ``{"error": {"message", "type", "param", "code"}}``,
and tells the app's listener (:func:`set_framing_listener`), which logs it: such a request
never reaches a route, yet it is a request and gets its log row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

__all__ = ["framing_error_body", "protocol_class", "set_framing_listener", "OpenAIErrorProtocol", "PROTOCOL"]

log = logging.getLogger(__name__)

_listener: Callable[[str], None] | None = None


def set_framing_listener(listener: Callable[[str], None] | None) -> None:
    """Call ``listener(message)`` (on the event loop's thread) for every framing 400 sent in
    this process; None stops it. The app sets it while it runs."""
    global _listener
    _listener = listener


def _framing_error(msg: str) -> bytes:
    """The 400's body; the listener hears of it (its failure never stops the answer)."""
    if _listener is not None:
        try:
            _listener(msg)
        except Exception:
            log.exception("logging a framing error failed")
    return framing_error_body(msg)


def framing_error_body(message: str) -> bytes:
    """The JSON body of a 400 for broken HTTP framing (``code: invalid_http``)."""
    return json.dumps({"error": {"message": f"{message} Check the request's Content-Length and headers.",
                                 "type": "invalid_request_error", "param": None, "code": "invalid_http"}}).encode()


def _h11_class():
    import h11
    from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

    class OpenAIErrorH11Protocol(H11Protocol):
        """uvicorn's h11 protocol; its framing 400 is OpenAI-shaped JSON."""

        def send_400_response(self, msg: str) -> None:
            body = _framing_error(msg)
            headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                       (b"content-length", str(len(body)).encode())]
            for event in (h11.Response(status_code=400, headers=headers, reason=STATUS_PHRASES[400]),
                          h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

    return OpenAIErrorH11Protocol


def _httptools_class():
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    class OpenAIErrorHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol; its framing 400 is OpenAI-shaped JSON."""

        def send_400_response(self, msg: str) -> None:
            body = _framing_error(msg)
            head = [STATUS_LINE[400]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
                     b"connection: close\r\n", b"\r\n", body]
            self.transport.write(b"".join(head))
            self.transport.close()

    return OpenAIErrorHttpToolsProtocol


def protocol_class():
    """The protocol class uvicorn's ``http="auto"`` would use (httptools when installed,
    else h11, as ``uvicorn.protocols.http.auto`` chooses), with the OpenAI-shaped framing 400."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return _h11_class()
    return _httptools_class()


OpenAIErrorProtocol = protocol_class()
"""The protocol ``slm-router serve`` gives uvicorn (see :func:`protocol_class`)."""

PROTOCOL = "router.api.http_errors:OpenAIErrorProtocol"
"""Its import string, for uvicorn's ``http`` setting (worker processes import it)."""
