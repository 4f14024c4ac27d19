"""The event-stream transport (router/providers/sse_filter.py) on its own, over httpx's ASGI
transport to a small Starlette app: which 2xx answers to a streaming request it fails, and
which stream formats it leaves alone (Ollama's native API streams NDJSON)."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from router.providers.sse_filter import SSEDataOnlyTransport

NDJSON = b'{"message":{"content":"Hel"},"done":false}\n{"message":{"content":"lo"},"done":true}\n'


async def _answer(request):
    kind = request.query_params["kind"]
    bodies = {"application/x-ndjson": NDJSON, "text/html": b"<html>log in</html>",
              "text/event-stream": b': ping\n\ndata: {"x": 1}\n\ndata: [DONE]\n\n'}
    return Response(bodies[kind], media_type=kind)


def _post(kind: str, stream: bool) -> httpx.Response:
    async def go():
        app = Starlette(routes=[Route("/api/chat", _answer, methods=["POST"])])
        transport = SSEDataOnlyTransport(httpx.ASGITransport(app=app))
        async with httpx.AsyncClient(transport=transport, base_url="http://upstream") as client:
            r = await client.post(f"/api/chat?kind={kind}", json={"model": "m", "stream": stream})
            await r.aread()
            return r
    return asyncio.run(go())


def test_ndjson_streams_pass_untouched():
    r = _post("application/x-ndjson", stream=True)
    assert r.status_code == 200 and r.content == NDJSON


def test_an_html_page_answering_a_stream_is_a_502_naming_it():
    r = _post("text/html", stream=True)
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["code"] == "not_an_event_stream" and "text/html" in error["message"] and "log in" in error["message"]


def test_an_html_page_answering_a_plain_call_is_left_to_the_caller():
    r = _post("text/html", stream=False)
    assert r.status_code == 200 and r.content == b"<html>log in</html>"


def test_event_streams_lose_their_comment_blocks_only():
    r = _post("text/event-stream", stream=True)
    assert r.status_code == 200 and b"ping" not in r.content and b'data: {"x": 1}' in r.content
