"""Anthropic clients through the real proxy: the official ``anthropic`` SDK -> `slm-router
serve` (subprocess) -> SmolLM2 in-process (local tier) or litellm's Anthropic provider -> a
real HTTP server speaking Anthropic's Messages API (cloud tier).
"""

from __future__ import annotations

import json
import sqlite3
import time

import anthropic
import httpx
import pytest

from .fake_anthropic import ANTHROPIC_ANSWER, FakeAnthropic
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow

WEATHER_TOOL = {"name": "get_weather", "description": "Current weather of a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def _policy(cloud_url: str) -> dict:
    return {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 32,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "anthropic/claude-sonnet-4-5", "api_key": "sk-ant-test", "api_base": cloud_url,
                      "max_retries": 0},
        },
        "aliases": {"claude-sonnet-4-5": "auto", "claude-haiku-4-5": "local"},
        "routing": {"classifier": {"threshold": 1.0}},  # auto -> local unless a rule or capability says otherwise
        "escalation": {"enabled": False},
        "rules": [{"name": "hard-goes-cloud", "match": {"last_user_regex": "(?i)prove"}, "action": {"tier": "cloud"}}],
    }


@pytest.fixture(scope="module")
def claude():
    server = FakeAnthropic(cache_read=2).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(claude, tmp_path_factory):
    p = ProxyProcess(_policy(claude.url), tmp_path_factory.mktemp("anthropic")).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def client(proxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=120)


def _row(proxy, request_id: str) -> dict:
    deadline = time.time() + 10
    while True:
        db = sqlite3.connect(proxy.log_path)
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
        if row or time.time() > deadline:
            assert row is not None, f"request {request_id} was not logged"
            calls = db.execute("SELECT * FROM calls WHERE request_id = ?", (request_id,)).fetchall()
            return {**dict(row), "calls": [dict(c) for c in calls]}
        time.sleep(0.1)


def _events(proxy, body: dict, headers: dict | None = None) -> list[tuple[str, dict]]:
    """POST a streaming Messages request with plain HTTP; the (event, data) pairs in order."""
    with httpx.stream("POST", proxy.url + "/v1/messages", json={**body, "stream": True}, timeout=120,
                      headers={"anthropic-version": "2023-06-01", **(headers or {})}) as r:
        assert r.status_code == 200, r.read()
        raw = r.read().decode()
    out = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_cloud_text_through_litellms_anthropic_provider(proxy, client, claude):
    raw = client.messages.with_raw_response.create(
        model="cloud", max_tokens=64, system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Name a colour."}], stop_sequences=["\n\n"],
        metadata={"user_id": "user-42"}, extra_body={"temperature": 0.2, "top_k": 5})  # older SDKs' fields
    message = raw.parse()
    assert raw.headers["x-router-tier"] == "cloud"
    assert raw.headers["x-router-session"].startswith("u-")  # metadata.user_id + the conversation's fingerprint
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == ANTHROPIC_ANSWER
    assert message.stop_reason == "end_turn" and message.model == "anthropic/claude-sonnet-4-5"
    assert message.id == f"msg_{raw.headers['x-request-id']}" and message._request_id == raw.headers["x-request-id"]
    # cache reads are reported apart from the uncached input, as Anthropic does
    assert message.usage.cache_read_input_tokens == 2 and message.usage.input_tokens == 3 + 3 - 2
    sent, headers = claude.received[-1]
    assert sent["system"][0]["text"] == "You are terse." and sent["max_tokens"] == 64
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}  # the client's cache marker reaches Anthropic
    assert sent["top_k"] == 5 and sent["stop_sequences"] == ["\n\n"] and sent["temperature"] == 0.2
    assert headers["x-api-key"] == "sk-ant-test"  # the tier's key, never the client's
    row = _row(proxy, raw.headers["x-request-id"])
    assert row["status"] == "ok" and row["tier"] == "cloud" and row["cost_usd"] > 0
    assert row["calls"][0]["cached_prompt_tokens"] == 2


def test_local_text_and_alias(proxy, client):
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "Say hello."}])
    message = raw.parse()
    assert raw.headers["x-router-tier"] == "local"
    assert message.content[0].type == "text" and message.content[0].text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens") and message.usage.output_tokens > 0
    routed = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "Prove that 2 is prime."}])
    assert routed.headers["x-router-tier"] == "cloud" and "hard-goes-cloud" in routed.headers["x-router-rules"]
    assert routed.parse().content[0].text == ANTHROPIC_ANSWER


@pytest.mark.parametrize("model, expected", [("cloud", ANTHROPIC_ANSWER), ("local", None)])
def test_stream_text_with_the_sdk(proxy, client, model, expected):
    with client.messages.stream(model=model, max_tokens=16, messages=[{"role": "user", "content": "Say hello."}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and (expected is None or text == expected)
    assert final.content[0].text == text and final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_stream_event_sequence(proxy):
    events = _events(proxy, {"model": "cloud", "max_tokens": 32, "messages": [{"role": "user", "content": "Hi"}]})
    kinds = [k for k, _ in events]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"}
    assert all(kind == data["type"] for kind, data in events)
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn" and events[-2][1]["usage"]["output_tokens"] > 0


def test_tool_use_round_trip(proxy, client, claude):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(model="cloud", max_tokens=64, tools=[WEATHER_TOOL], messages=ask,
                                   tool_choice={"type": "auto"})
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Paris"} and use.id == "toolu_fake01"
    follow = ask + [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                  "content": [{"type": "text", "text": "18C and sunny"}]}]}]
    second = client.messages.create(model="cloud", max_tokens=64, tools=[WEATHER_TOOL], messages=follow)
    assert second.content[0].text == "The tool said: 18C and sunny" and second.stop_reason == "end_turn"
    sent, _ = claude.received[-1]  # litellm turned our chat turns back into Anthropic blocks
    assert sent["messages"][1]["content"][-1]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"
    assert sent["messages"][2]["content"][0]["tool_use_id"] == "toolu_fake01"


def test_tool_use_stream_sends_input_json_delta(proxy, client):
    body = {"model": "cloud", "max_tokens": 64, "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
    events = _events(proxy, body)
    deltas = [d["delta"] for k, d in events if k == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"text_delta", "input_json_delta"}
    assert json.loads("".join(d["partial_json"] for d in deltas if d["type"] == "input_json_delta")) == {"city": "Paris"}
    with client.messages.stream(**body) as s:
        final = s.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.input == {"city": "Paris"} and final.stop_reason == "tool_use"


def test_errors_have_anthropics_shape_and_are_logged(proxy, client):
    with pytest.raises(anthropic.BadRequestError) as missing:
        client.post("/v1/messages", cast_to=object, body={"model": "cloud", "messages": [{"role": "user", "content": "x"}]})
    body = missing.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("max_tokens:")
    assert _row(proxy, missing.value.response.headers["x-request-id"])["http_status"] == 400
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(model="claude-nonexistent", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert unknown.value.body["error"]["type"] == "not_found_error" and "claude-nonexistent" in unknown.value.message
    with pytest.raises(anthropic.BadRequestError) as hot:
        client.messages.create(model="cloud", max_tokens=8, messages=[{"role": "user", "content": "x"}],
                               extra_body={"temperature": 1.5})
    assert "temperature" in hot.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as block:
        client.messages.create(model="cloud", max_tokens=8, messages=[
            {"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}])
    assert "messages.0.content.0.type" in block.value.body["error"]["message"]
    not_json = httpx.post(proxy.url + "/v1/messages", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["type"] == "error"


def test_cloud_failure_falls_back_to_local(proxy, client, claude):
    claude.fail_with = 500
    try:
        raw = client.messages.with_raw_response.create(model="cloud", max_tokens=8,
                                                       messages=[{"role": "user", "content": "Say hi."}])
    finally:
        claude.fail_with = None
    assert raw.headers["x-router-tier"] == "local" and raw.headers["x-router-degraded"] == "true"
    assert raw.parse().content[0].text
    row = _row(proxy, raw.headers["x-request-id"])
    assert [(c["tier"], c["status"]) for c in row["calls"]] == [("cloud", "error"), ("local", "ok")]


def test_count_tokens_and_models(proxy, client):
    import litellm

    messages = [{"role": "user", "content": "How many tokens is this sentence?"}]
    counted = client.messages.with_raw_response.count_tokens(model="cloud", messages=messages)
    expected = litellm.token_counter(model="anthropic/claude-sonnet-4-5", messages=messages)
    assert counted.parse().input_tokens == expected and counted.headers["x-router-tier"] == "cloud"
    with_tools = client.messages.count_tokens(model="cloud", messages=messages, tools=[WEATHER_TOOL])
    assert with_tools.input_tokens > expected
    local = client.messages.count_tokens(model="local", messages=messages)
    assert local.input_tokens == litellm.token_counter(model="slm-local/smollm2", messages=messages)
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "auto" and {"local", "cloud"} == set(ids[1:3]) and {"claude-sonnet-4-5", "claude-haiku-4-5"} <= set(ids)
    openai_shape = httpx.get(proxy.url + "/v1/models").json()
    assert openai_shape["object"] == "list"


def test_chat_stream_relays_tool_calls(proxy):
    import openai

    chat = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0)
    tool = {"type": "function", "function": {"name": WEATHER_TOOL["name"], "parameters": WEATHER_TOOL["input_schema"]}}
    stream = chat.chat.completions.create(model="cloud", stream=True, tools=[tool],
                                          messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    calls, finish = {}, None
    for part in stream:
        for choice in part.choices:
            for piece in choice.delta.tool_calls or ():
                entry = calls.setdefault(piece.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = piece.id or entry["id"]
                entry["name"] = (piece.function.name if piece.function else None) or entry["name"]
                entry["arguments"] += (piece.function.arguments if piece.function else None) or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls" and len(calls) == 1
    (call,) = calls.values()
    assert call["id"] == "toolu_fake01" and call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
