"""Anthropic <-> chat translation, without a server (pure functions)."""

from __future__ import annotations

import asyncio
import json

import pytest

from router.api.anthropic_request import parse_messages_request
from router.api.anthropic_response import error_body, stream_events, to_message
from router.errors import InvalidRequestError
from router.openai_format import SSE_DONE, chunk, error_event, sse


def _events(raw: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for block in b"".join(raw).decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_blocks_become_chat_turns():
    chat = parse_messages_request({
        "model": "auto", "max_tokens": 10, "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "u1"}, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "x"},
                                              {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": [
                {"type": "text", "text": "ok"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                                         {"type": "text", "text": "and now?"}]},
        ]})
    turns = chat.messages_as_dicts()
    assert turns[0] == {"role": "system", "content": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]}
    assert turns[1]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert turns[2]["tool_calls"] == [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]
    assert turns[3] == {"role": "tool", "tool_call_id": "t1", "content": "Error: ok\n[image not forwarded]"}
    assert turns[4] == {"role": "user", "content": "and now?"}
    assert chat.params["tool_choice"] == "required" and chat.params["parallel_tool_calls"] is False
    assert chat.params["tools"][0]["function"] == {"name": "f", "parameters": {"type": "object"}}
    assert chat.params["user"] == "u1" and chat.params["max_tokens"] == 10 and chat.ignored_fields == ["thinking"]


@pytest.mark.parametrize("body, param", [
    ({"model": "auto", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "auto", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "auto", "max_tokens": 5, "temperature": 1.2, "messages": [{"role": "user", "content": "x"}]}, "temperature"),
    ({"model": "auto", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ({"model": "auto", "max_tokens": 5, "tools": [{"type": "web_search_20250305", "name": "w"}],
      "messages": [{"role": "user", "content": "x"}]}, "tools.0.type"),
    ({"model": "auto", "max_tokens": 5, "stop_sequences": ["a"] * 5, "messages": [{"role": "user", "content": "x"}]},
     "stop_sequences"),
])
def test_bad_fields_are_named(body, param):
    with pytest.raises(InvalidRequestError) as err:
        parse_messages_request(body)
    assert err.value.param == param and err.value.message.startswith(param)


def test_count_tokens_body_needs_no_max_tokens():
    assert parse_messages_request({"model": "auto", "messages": [{"role": "user", "content": "x"}]}, count_only=True)


def test_chat_answer_becomes_a_message():
    body = {"model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking.",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 2}'}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 6}}}
    message = to_message(body, "msg_1")
    assert message["content"] == [{"type": "text", "text": "Checking."},
                                  {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 2}}]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 4, "output_tokens": 4, "cache_read_input_tokens": 6,
                                "cache_creation_input_tokens": 0}


def _translate(pieces: list[bytes]) -> list[tuple[str, dict]]:
    async def source():
        for p in pieces:
            yield p

    async def run():
        return [e async for e in stream_events(source(), "msg_9")]

    return _events(asyncio.run(run()))


def test_chat_stream_becomes_anthropic_events():
    pieces = [sse(chunk("c", 1, "m", role="assistant", content="")), sse(chunk("c", 1, "m", content="Hel")),
              sse(chunk("c", 1, "m", content="lo")), sse(chunk("c", 1, "m", finish_reason="length")),
              sse(chunk("c", 1, "m", with_choice=False, usage={"prompt_tokens": 7, "completion_tokens": 2})), SSE_DONE]
    events = _translate(pieces)
    assert [k for k, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[0][1]["message"]["id"] == "msg_9" and events[0][1]["message"]["model"] == "m"
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"]["input_tokens"] == 7 and events[-2][1]["usage"]["output_tokens"] == 2


def test_streamed_tool_calls_become_tool_use_blocks():
    def call(k, **piece):
        return sse(chunk("c", 1, "m", tool_calls=[{"index": k, **piece}]))

    events = _translate([
        sse(chunk("c", 1, "m", role="assistant", content="")), sse(chunk("c", 1, "m", content="Checking.")),
        call(0, id="t1", type="function", function={"name": "f", "arguments": ""}),
        call(0, function={"arguments": '{"a": '}), call(0, function={"arguments": "1}"}),
        call(1, id="t2", type="function", function={"name": "g", "arguments": "{}"}),
        sse(chunk("c", 1, "m", finish_reason="tool_calls")), SSE_DONE])
    assert [(k, d.get("index")) for k, d in events] == [
        ("message_start", None), ("ping", None), ("content_block_start", 0), ("content_block_delta", 0),
        ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1), ("content_block_delta", 1),
        ("content_block_stop", 1), ("content_block_start", 2), ("content_block_delta", 2), ("content_block_stop", 2),
        ("message_delta", None), ("message_stop", None)]
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    assert "".join(d["delta"]["partial_json"] for k, d in events[6:8]) == '{"a": 1}'
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_mid_stream_failure_becomes_an_error_event():
    events = _translate([sse(chunk("c", 1, "m", role="assistant", content="")), sse(chunk("c", 1, "m", content="Hi")),
                         error_event("The upstream model failed mid-stream: boom"), SSE_DONE])
    assert events[-1] == ("error", {"type": "error", "error": {
        "type": "api_error", "message": "The upstream model failed mid-stream: boom"}})
    assert "message_stop" not in [k for k, _ in events]


def test_error_body_types_follow_status():
    assert error_body(429, "slow")["error"]["type"] == "rate_limit_error"
    assert error_body(401, "who")["error"]["type"] == "authentication_error"
    assert error_body(502, "x", "r1") == {"type": "error", "error": {"type": "api_error", "message": "x"},
                                          "request_id": "r1"}
