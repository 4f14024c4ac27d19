"""Responses <-> chat translation, without a server (pure functions)."""

from __future__ import annotations

import asyncio
import json

import pytest

from router.api.responses_request import parse_responses_request
from router.api.responses_response import stream_response_events, to_response
from router.openai_format import SSE_DONE, chunk, sse
from router.errors import InvalidRequestError


def test_items_become_chat_turns():
    parsed = parse_responses_request({
        "model": "auto", "instructions": "Be brief.", "max_output_tokens": 9, "reasoning": {"effort": "low"},
        "text": {"format": {"type": "json_object"}}, "tool_choice": {"type": "function", "name": "f"},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "a"},
                                               {"type": "input_image", "image_url": "https://x/y.png"}]},
                  {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                  {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "c1", "output": "one"},
                  {"type": "function_call_output", "call_id": "c2", "output": {"n": 2}}]})
    turns = parsed.chat.messages_as_dicts()
    assert turns[0] == {"role": "system", "content": "Be brief."}
    assert turns[1]["content"][1] == {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    assert [c["id"] for c in turns[2]["tool_calls"]] == ["c1", "c2"]  # parallel calls: one assistant turn
    assert turns[4] == {"role": "tool", "tool_call_id": "c2", "content": '{"n": 2}'}
    params = parsed.chat.params
    assert params["max_tokens"] == 9 and params["response_format"] == {"type": "json_object"}
    assert params["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert parsed.chat.ignored_fields == ["reasoning"]


@pytest.mark.parametrize("body, param", [
    ({"model": "auto", "input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"model": "auto", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "auto", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"model": "auto", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"model": "auto"}, "input"),
    ({"model": "auto", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
])
def test_bad_or_stateful_fields_are_named(body, param):
    with pytest.raises(InvalidRequestError) as err:
        parse_responses_request(body)
    assert err.value.param == param


def test_answer_with_tool_calls_becomes_items_and_events():
    req = parse_responses_request({"model": "auto", "input": "x"}).request
    body = {"model": "m", "usage": {"prompt_tokens": 5, "completion_tokens": 3},
            "choices": [{"finish_reason": "tool_calls", "message": {"content": "ok", "tool_calls": [
                {"id": "c9", "function": {"name": "f", "arguments": '{"a": 1}'}}]}}]}
    response = to_response(body, "resp_abc", req)
    assert [i["type"] for i in response["output"]] == ["message", "function_call"]
    assert response["output"][1] == {"type": "function_call", "id": "fc_abc_0", "call_id": "c9", "name": "f",
                                     "arguments": '{"a": 1}', "status": "completed"}
    assert response["usage"]["total_tokens"] == 8 and response["status"] == "completed"
    cut = to_response({**body, "choices": [{"finish_reason": "length", "message": {"content": "par"}}]}, "resp_x", req)
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}


def test_streamed_text_and_tool_calls_become_items():
    req = parse_responses_request({"model": "auto", "input": "x", "stream": True}).request
    pieces = [sse(chunk("c", 1, "m", role="assistant", content="")), sse(chunk("c", 1, "m", content="ok")),
              sse(chunk("c", 1, "m", tool_calls=[{"index": 0, "id": "c9", "function": {"name": "f", "arguments": '{"a"'}}])),
              sse(chunk("c", 1, "m", tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}])),
              sse(chunk("c", 1, "m", finish_reason="tool_calls")),
              sse(chunk("c", 1, "m", with_choice=False, usage={"prompt_tokens": 5, "completion_tokens": 3})), SSE_DONE]

    async def run():
        async def source():
            for p in pieces:
                yield p
        return [json.loads(e.split(b"data: ", 1)[1]) async for e in stream_response_events(source(), "resp_abc", req)]

    events = asyncio.run(run())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    assert events[11]["arguments"] == '{"a": 1}' and events[11]["output_index"] == 1
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["call_id"] == "c9" and final["usage"]["total_tokens"] == 8
