"""The bad-input sweep: every kind of malformed request the router must refuse cleanly.

One list, :data:`BAD_INPUTS`, used by ``bench/load.py`` (interleaved with its good traffic)
and by ``tests/test_bad_inputs.py`` (through the real server). Each :class:`BadInput` is an
HTTP request to one of the API's endpoints (``/v1/chat/completions``, ``/v1/messages``,
``/v1/messages/count_tokens``, ``/v1/responses``, ``/v1/route``) that must get a 4xx in that
API's own error JSON (OpenAI's ``{"error": {"message", "type", ...}}`` or Anthropic's
``{"type": "error", "error": {"type", "message"}}``), never a 500 or plain text, and one log
row. Kinds with ``raw`` bytes are sent as written on a fresh TCP connection (broken HTTP
framing that no HTTP client library would send).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

__all__ = ["BadInput", "BAD_INPUTS", "answer_problem", "send_raw"]

CHAT, MESSAGES, COUNT, RESPONSES, ROUTE = ("/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens",
                                          "/v1/responses", "/v1/route")
ANTHROPIC_HEADERS = (("anthropic-version", "2023-06-01"),)


@dataclass(frozen=True)
class BadInput:
    """One malformed request.

    Attributes:
        name: what is wrong (unique).
        path: the endpoint; method: the HTTP method.
        body: the request body as sent.
        headers: extra request headers (the content type is ``content_type`` unless None).
        shape: ``openai`` or ``anthropic``: the error JSON the answer must have.
        raw: when set, the whole HTTP request as bytes (framing errors), sent on a socket.
    """

    name: str
    path: str
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    shape: str = "openai"
    method: str = "POST"
    raw: bytes | None = field(default=None, repr=False)

    def request_headers(self) -> dict[str, str]:
        out = dict(self.headers)
        if self.content_type is not None:
            out["content-type"] = self.content_type
        return out


def _j(value) -> bytes:
    return json.dumps(value).encode()


_M = [{"role": "user", "content": "hi"}]


def _chat(name: str, **fields) -> BadInput:
    """A chat-completions body: ``model: auto`` and one user turn unless ``fields`` say otherwise
    (a field set to ``...`` is left out)."""
    body = {"model": "auto", "messages": _M, **fields}
    return BadInput(name, CHAT, _j({k: v for k, v in body.items() if v is not ...}))


def _anthropic(name: str, path: str = MESSAGES, **fields) -> BadInput:
    body = {"model": "auto", "max_tokens": 16, "messages": _M, **fields}
    return BadInput(name, path, _j({k: v for k, v in body.items() if v is not ...}), headers=ANTHROPIC_HEADERS,
                    shape="anthropic")


def _responses(name: str, **fields) -> BadInput:
    body = {"model": "auto", "input": "hi", **fields}
    return BadInput(name, RESPONSES, _j({k: v for k, v in body.items() if v is not ...}))


_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
_SURROGATE = b'{"model": "auto", "messages": [{"role": "user", "content": "hi \\ud800"}]}'
_BODY = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'


def _raw(path: str, head: bytes, body: bytes) -> bytes:
    return b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + head + \
        b"Connection: close\r\n\r\n" + body


BAD_INPUTS: list[BadInput] = [
    # -- the body is not a chat request ---------------------------------------------------
    BadInput("not JSON", CHAT, b"{not json"),
    BadInput("JSON array", CHAT, b"[1, 2]"),
    BadInput("JSON string", CHAT, b'"hi"'),
    BadInput("JSON null", CHAT, b"null"),
    BadInput("empty body", CHAT, b""),
    BadInput("truncated JSON", CHAT, _BODY[:30]),
    BadInput("deeply nested JSON", CHAT, b'{"model": "auto", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    BadInput("NaN temperature literal", CHAT, b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
                                              b'"temperature": NaN}'),
    BadInput("duplicate-key trick with invalid type", CHAT, b'{"model": "auto", "model": 7, "messages": []}'),
    BadInput("form-encoded body", CHAT, b"model=auto&messages=hi", content_type="application/x-www-form-urlencoded"),
    BadInput("XML body", CHAT, b"<chat><model>auto</model></chat>", content_type="text/xml"),
    BadInput("no content type, not JSON", CHAT, b"hello", content_type=None),
    BadInput("oversize body", CHAT, _j({"model": "auto", "messages": [{"role": "user", "content": "x" * 5_000_000}]})),
    # -- invalid Unicode -------------------------------------------------------------------
    BadInput("lone surrogate escape", CHAT, _SURROGATE),
    BadInput("lone surrogate bytes", CHAT, b'{"model": "auto", "messages": [{"role": "user", "content": "hi \xed\xa0\x80"}]}'),
    BadInput("invalid UTF-8", CHAT, b'{"model": "auto", "messages": [{"role": "user", "content": "hi \xff\xfe"}]}'),
    BadInput("lone surrogate in a tool name", CHAT, b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
                                                    b'"tools": [{"type": "function", "function": {"name": "f\\udc00"}}]}'),
    BadInput("lone surrogate in a key", CHAT, b'{"model": "auto", "messages": [{"role": "user", "content": "hi", '
                                              b'"\\ud83d": 1}]}'),
    # -- model and messages ----------------------------------------------------------------
    _chat("no model", model=...),
    _chat("model not a string", model=7),
    _chat("empty model", model=""),
    _chat("unknown model", model="gpt-99"),
    _chat("no messages", messages=...),
    _chat("messages not a list", messages="hi"),
    _chat("messages empty", messages=[]),
    _chat("message not an object", messages=["hi"]),
    _chat("message null", messages=[None]),
    _chat("role missing", messages=[{"content": "hi"}]),
    _chat("role not a string", messages=[{"role": 1, "content": "hi"}]),
    _chat("unknown role", messages=[{"role": "robot", "content": "hi"}]),
    _chat("empty lone system turn", messages=[{"role": "system", "content": " "}]),
    _chat("empty user turn", messages=[{"role": "user", "content": "  "}]),
    _chat("null user content", messages=[{"role": "user", "content": None}]),
    _chat("content a number", messages=[{"role": "user", "content": 5}]),
    _chat("content an object", messages=[{"role": "user", "content": {"text": "hi"}}]),
    _chat("content part type", messages=[{"role": "user", "content": [{"type": "video"}]}]),
    _chat("content part not an object", messages=[{"role": "user", "content": ["hi"]}]),
    _chat("content part null", messages=[{"role": "user", "content": [None]}]),
    _chat("text part without text", messages=[{"role": "user", "content": [{"type": "text"}]}]),
    _chat("text part text not a string", messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
    _chat("image part without url", messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
    _chat("image url not a string", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": 5}}]}]),
    _chat("image url not a URL", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "not a url"}}]}]),
    _chat("image data URL not base64", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@@"}}]}]),
    _chat("image data URL without base64", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,iVBORw0KGgo="}}]}]),
    _chat("assistant tool_calls not a list", messages=[{"role": "assistant", "content": None, "tool_calls": "f"},
                                                       *_M]),
    _chat("tool call arguments an object", messages=[{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}, *_M]),
    _chat("image detail unknown", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "ultra"}}]}]),
    _chat("tool call without function", messages=[{"role": "assistant", "content": None,
                                                    "tool_calls": [{"id": "c1", "type": "function"}]}, *_M]),
    _chat("tool turn without tool_call_id", messages=[*_M, {"role": "tool", "content": "42"}, *_M]),
    _chat("message name not a string", messages=[{"role": "user", "content": "hi", "name": 5}]),
    # -- sampling parameters ---------------------------------------------------------------
    _chat("temperature as text", temperature="hot"),
    _chat("temperature 5", temperature=5),
    _chat("top_p -1", top_p=-1),
    _chat("top_p 2", top_p=2),
    _chat("n 0", n=0),
    _chat("n 1000", n=1000),
    _chat("n as text", n="2"),
    _chat("max_tokens 0", max_tokens=0),
    _chat("max_tokens negative", max_tokens=-5),
    _chat("max_tokens fractional", max_tokens=1.5),
    _chat("max_tokens beyond 32 bits", max_tokens=10**30),
    _chat("max_completion_tokens beyond 32 bits", max_completion_tokens=2**31),
    _chat("max_completion_tokens as text", max_completion_tokens="many"),
    _chat("presence_penalty 3", presence_penalty=3),
    _chat("frequency_penalty -3", frequency_penalty=-3),
    _chat("seed as text", seed="abc"),
    _chat("seed beyond 64 bits", seed=2**63),
    _chat("reasoning_effort unknown", reasoning_effort="extreme"),
    _chat("temperature a boolean", temperature=True),
    _chat("include_usage as text", stream=True, stream_options={"include_usage": "yes"}),
    _chat("stream as text", stream="yes"),
    _chat("stream_options not an object", stream=True, stream_options="usage"),
    _chat("stream_options without stream", stream_options={"include_usage": True}),
    _chat("metadata values not strings", metadata={"a": {"b": 1}}),
    _chat("logit_bias not an object", logit_bias=[1, 2]),
    _chat("logit_bias key not a token id", logit_bias={"abc": 5}),
    _chat("logit_bias value 500", logit_bias={"42": 500}),
    _chat("logit_bias value as text", logit_bias={"42": "high"}),
    _chat("user an object", user={"id": 1}),
    # -- stop lists ------------------------------------------------------------------------
    _chat("five stop strings", stop=list("abcde")),
    _chat("stop a number", stop=5),
    _chat("stop list of numbers", stop=[1, 2]),
    # -- n / logprobs / top_logprobs abuse ---------------------------------------------------
    _chat("logprobs as text", logprobs="yes"),
    _chat("top_logprobs 50", logprobs=True, top_logprobs=50),
    _chat("top_logprobs negative", logprobs=True, top_logprobs=-1),
    _chat("top_logprobs without logprobs", top_logprobs=3),
    # -- tools and tool_choice ---------------------------------------------------------------
    _chat("tools as text", tools="yes"),
    _chat("tools a list of strings", tools=["f"]),
    _chat("tool without name", tools=[{"type": "function", "function": {}}]),
    _chat("tool of another type", tools=[{"type": "retrieval", "function": {"name": "f"}}]),
    _chat("tool parameters not an object", tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
    _chat("tool name with spaces", tools=[{"type": "function", "function": {"name": "get the weather"}}]),
    _chat("duplicate tool names", tools=[_TOOL, _TOOL]),
    _chat("tool_choice bad", tool_choice="always"),
    _chat("tool_choice names an unknown tool", tools=[_TOOL],
          tool_choice={"type": "function", "function": {"name": "nope"}}),
    _chat("tool_choice required without tools", tool_choice="required"),
    _chat("parallel_tool_calls as text", tools=[_TOOL], parallel_tool_calls="yes"),
    # -- response_format ----------------------------------------------------------------------
    _chat("response_format xml", response_format={"type": "xml"}),
    _chat("response_format as text", response_format="json"),
    _chat("response_format json_schema without schema", response_format={"type": "json_schema"}),
    _chat("response_format schema not an object", response_format={"type": "json_schema",
                                                                   "json_schema": {"name": "x", "schema": "object"}}),
    # -- HTTP -----------------------------------------------------------------------------------
    BadInput("wrong method", CHAT, content_type=None, method="GET"),
    BadInput("unknown API path", "/v1/chat/completion", _BODY),
    BadInput("content-length not a number", CHAT, raw=_raw(CHAT, b"Content-Length: abc\r\n", _BODY)),
    BadInput("content-length negative", CHAT, raw=_raw(CHAT, b"Content-Length: -1\r\n", _BODY)),
    BadInput("two content-lengths", CHAT, raw=_raw(CHAT, b"Content-Length: 5\r\nContent-Length: 60\r\n", _BODY)),
    # -- /v1/route ------------------------------------------------------------------------------
    BadInput("route: not JSON", ROUTE, b"{"),
    BadInput("route: no messages", ROUTE, _j({"model": "auto"})),
    BadInput("route: lone surrogate", ROUTE, _SURROGATE),
    BadInput("route: unknown model", ROUTE, _j({"model": "gpt-99", "messages": _M})),
    # -- Anthropic Messages ------------------------------------------------------------------------
    BadInput("messages: not JSON", MESSAGES, b"{", headers=ANTHROPIC_HEADERS, shape="anthropic"),
    _anthropic("messages: no max_tokens", max_tokens=...),
    _anthropic("messages: max_tokens beyond 32 bits", max_tokens=2**40),
    _anthropic("messages: max_tokens as text", max_tokens="16"),
    _anthropic("messages: temperature 1.5", temperature=1.5),
    _anthropic("messages: temperature a boolean", temperature=True),
    _anthropic("messages: system role in messages", messages=[{"role": "system", "content": "x"}, *_M]),
    _anthropic("messages: unknown block type", messages=[{"role": "user", "content": [{"type": "video"}]}]),
    _anthropic("messages: image block without source", messages=[{"role": "user", "content": [{"type": "image"}]}]),
    _anthropic("messages: image data not base64", messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"}}]}]),
    _anthropic("messages: image media_type not an image", messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "text/html", "data": "iVBORw0KGgo="}}]}]),
    _anthropic("messages: image url not http", messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "file:///etc/passwd"}}]}]),
    _anthropic("messages: tool_use without id", messages=[*_M, {"role": "assistant", "content": [
        {"type": "tool_use", "name": "f", "input": {}}]}, *_M]),
    _anthropic("messages: tool_result without tool_use_id", messages=[{"role": "user", "content": [
        {"type": "tool_result", "content": "42"}]}]),
    _anthropic("messages: system a number", system=5),
    _anthropic("messages: tool without input_schema", tools=[{"name": "f"}]),
    _anthropic("messages: tool_choice bad", tool_choice={"type": "sometimes"}),
    _anthropic("messages: stop_sequences a string", stop_sequences="STOP"),
    BadInput("messages: lone surrogate", MESSAGES, b'{"model": "auto", "max_tokens": 8, "messages": '
                                                   b'[{"role": "user", "content": "hi \\ud800"}]}',
             headers=ANTHROPIC_HEADERS, shape="anthropic"),
    # -- Anthropic count_tokens -----------------------------------------------------------------------
    BadInput("count_tokens: not JSON", COUNT, b"{", headers=ANTHROPIC_HEADERS, shape="anthropic"),
    _anthropic("count_tokens: no messages", COUNT, messages=...),
    _anthropic("count_tokens: unknown block type", COUNT, messages=[{"role": "user", "content": [{"type": "x"}]}]),
    # -- OpenAI Responses ------------------------------------------------------------------------------
    BadInput("responses: not JSON", RESPONSES, b"{"),
    _responses("responses: no input", input=...),
    _responses("responses: input a number", input=5),
    _responses("responses: max_output_tokens beyond 32 bits", max_output_tokens=2**40),
    _responses("responses: unknown input item", input=[{"type": "hologram"}]),
    _responses("responses: instructions a number", instructions=5),
    _responses("responses: max_output_tokens 0", max_output_tokens=0),
    _responses("responses: text.format xml", text={"format": {"type": "xml"}}),
    _responses("responses: tools as text", tools="yes"),
]


def answer_problem(kind: BadInput, status: int, body: bytes) -> str | None:
    """What is wrong with the router's answer to ``kind``, or None when it is a 4xx in the
    endpoint's own error JSON."""
    if not 400 <= status < 500:
        return f"status {status}"
    try:
        data = json.loads(body)
    except ValueError:
        return f"status {status} with a body that is not JSON: {body[:80]!r}"
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str) or not isinstance(error.get("type"), str):
        return f"status {status} without an error object: {body[:120]!r}"
    if kind.shape == "anthropic" and data.get("type") != "error":
        return f"status {status} not in Anthropic's error shape: {body[:120]!r}"
    return None


async def send_raw(host: str, port: int, raw: bytes, timeout_s: float = 30.0) -> tuple[int, bytes]:
    """Send a raw HTTP request on a new connection; (status, body) of the last answer on it
    (a request whose framing breaks may be answered twice: its readable head, then the rest)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()
    last = data[data.rfind(b"HTTP/1.1 "):]
    head, _, payload = last.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0, data[:200]
    return status, payload
