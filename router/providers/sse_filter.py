"""Server-sent events that carry no ``data:`` field are dropped before litellm reads a stream.

The SSE spec (WHATWG HTML, "Interpreting an event stream") dispatches an event only when
its data buffer is non-empty: a block of only ``event: ping``, ``id: 5``, ``retry: 1000``
or ``: comment`` lines dispatches nothing. The ``openai`` SDK that litellm uses for
OpenAI-compatible tiers parses every block as JSON instead, so one keep-alive ``event: ping``
from an upstream (llama.cpp servers, proxies, Anthropic-style gateways) failed the whole
call. :class:`SSEDataOnlyTransport` wraps the HTTP transport litellm is given
(``litellm.aclient_session``, a documented setting) and removes such blocks, and comment
lines inside blocks, from ``text/event-stream`` bodies. Other bodies pass untouched, except
a successful answer to a streaming request: one whose body begins with an SSE field is
filtered as an event stream whatever its content type says; one that is not an event stream
at all (an HTML page from a proxy, a server that ignores ``stream`` and sends JSON) would
give the SDK no event, and litellm would report an empty answer that finished normally, so
it becomes a 502 naming what came back, which the router retries and falls back from like
any 5xx.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

__all__ = ["SSEDataOnlyTransport", "filter_sse_blocks", "install", "not_an_event_stream"]


def _has_data(block: bytes) -> bool:
    return any(line == b"data" or line.startswith(b"data:") for line in block.split(b"\n"))


def _without_comments(block: bytes) -> bytes:
    return b"\n".join(line for line in block.split(b"\n") if not line.startswith(b":"))


async def filter_sse_blocks(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield the event blocks of an SSE byte stream that hold a ``data`` field, each ending
    with a blank line; line endings are normalised to ``\\n`` (CRLF and CR are both valid SSE)."""
    buffer = b""
    pending_cr = False
    async for piece in chunks:
        if pending_cr:
            piece = b"\r" + piece
            pending_cr = False
        if piece.endswith(b"\r"):  # a CRLF may be split across reads
            piece, pending_cr = piece[:-1], True
        buffer += piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            if _has_data(block):
                yield _without_comments(block) + b"\n\n"
    if pending_cr:
        buffer += b"\n"
    if buffer.strip() and _has_data(buffer):
        yield _without_comments(buffer.rstrip(b"\n")) + b"\n\n"


class _FilteredStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for block in filter_sse_blocks(self._inner.__aiter__()):
            yield block

    async def aclose(self) -> None:
        await self._inner.aclose()


def _asks_stream(request: httpx.Request) -> bool:
    """True when ``request`` is a JSON body with ``"stream": true`` (a chat or messages call
    that expects an event stream back)."""
    try:
        content = request.content
    except httpx.RequestNotRead:  # a streamed upload: not a JSON call body
        return False
    if b'"stream"' not in content:
        return False
    try:
        body = json.loads(content)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("stream") is True


_FIELDS = (b"data", b"event:", b"id:", b"retry:", b":")
_NOT_STREAMS = frozenset({"", "text/html", "text/plain", "application/json"})
"""Content types of a 2xx answer to a streaming request that are checked for events: what a
proxy's page, a server that ignored ``stream``, or an unlabelled stream comes as."""


class _Prefixed(httpx.AsyncByteStream):
    """``head`` (bytes already read from ``inner`` through its iterator ``rest``), then the rest."""

    def __init__(self, head: bytes, rest: AsyncIterator[bytes], inner: httpx.AsyncByteStream) -> None:
        self._head, self._rest, self._inner = head, rest, inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._head:
            yield self._head
        async for piece in self._rest:
            yield piece

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _first_bytes(stream: httpx.AsyncByteStream) -> tuple[bytes, AsyncIterator[bytes]]:
    """The body's first bytes, read until one is not white space (or the body ends), and the
    iterator that yields the rest."""
    rest = stream.__aiter__()
    head = b""
    async for piece in rest:
        head += piece
        if head.strip():
            break
    return head, rest


async def not_an_event_stream(request: httpx.Request, response: httpx.Response, head: bytes) -> httpx.Response:
    """The 502 that replaces a 2xx ``response`` to a streaming ``request`` whose body (it
    began with ``head``) is not an event stream: an OpenAI error body naming the content
    type and the first 200 characters that came back (``upstream_error``). Closes ``response``."""
    await response.aclose()
    kind = response.headers.get("content-type") or "no content type"
    shown = head[:200].decode("utf-8", "replace")
    message = (f"the upstream answered a streaming request with status {response.status_code} and {kind} instead "
               f"of an event stream (text/event-stream): {shown!r}")
    return httpx.Response(502, json={"error": {"message": message, "type": "upstream_error", "code": "not_an_event_stream"}},
                          request=request)


class SSEDataOnlyTransport(httpx.AsyncBaseTransport):
    """An httpx transport around ``inner`` whose event-stream responses carry only events
    with data, and whose successful answers to streaming requests are event streams (see
    the module docstring); everything else is ``inner``'s response as is."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        stream = response.stream
        kind = response.headers.get("content-type", "")
        if "text/event-stream" not in kind:
            if not (200 <= response.status_code < 300 and kind.split(";")[0].strip().lower() in _NOT_STREAMS
                    and _asks_stream(request)):
                return response  # other stream formats (Ollama's NDJSON, AWS event streams) pass as they are
            # a stream under another content type (text/plain, none) still works when its body is events
            head, rest = await _first_bytes(response.stream)
            if not head.lstrip().startswith(_FIELDS):
                return await not_an_event_stream(request, response, head)
            stream = _Prefixed(head, rest, response.stream)
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-length"]
        return httpx.Response(response.status_code, headers=headers, stream=_FilteredStream(stream),
                              extensions=response.extensions, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def install() -> None:
    """Give litellm one shared async HTTP client whose transport filters event streams.

    Uses litellm's own transport (its aiohttp-backed one where available) inside, so
    connection pooling and speed stay litellm's. Idempotent; a client the user already set
    on ``litellm.aclient_session`` is left alone.
    """
    import litellm

    if litellm.aclient_session is not None:
        return
    try:
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

        inner: httpx.AsyncBaseTransport = AsyncHTTPHandler.create_async_transport() or httpx.AsyncHTTPTransport()
    except Exception:  # an older or newer litellm without that helper
        inner = httpx.AsyncHTTPTransport()
    litellm.aclient_session = httpx.AsyncClient(transport=SSEDataOnlyTransport(inner), follow_redirects=True)
