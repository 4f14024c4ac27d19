"""Failure reports from public trackers of LLM gateways, reproduced through the real server
(``slm-router serve`` in a subprocess) with a scripted OpenAI-compatible upstream as the tier.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import httpx
import openai
import pytest

from .proxy_process import ProxyProcess
from .scripted_upstream import DONE, ScriptedUpstream, chunk, completion, usage_chunk

pytestmark = pytest.mark.slow

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather of a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


def _policy(cloud_url: str, local_url: str | None = None, **extra) -> dict:
    local = ({"model": "openai/smollm2", "api_base": local_url, "api_key": "sk-local",
              "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}}
             if local_url else {"model": "slm-local/smollm2", "max_tokens": 32,
                                "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}})
    return {"tiers": {"local": local,
                      "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud_url,
                                "max_retries": 1}},
            **extra}


@pytest.fixture
def upstream():
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def proxy_factory(tmp_path):
    started: list[ProxyProcess] = []

    def make(policy: dict, name: str = "p") -> ProxyProcess:
        workdir = tmp_path / name
        workdir.mkdir()
        proc = ProxyProcess(policy, workdir).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


def _rows(proxy: ProxyProcess, sql: str = "SELECT * FROM requests") -> list[dict]:
    con = sqlite3.connect(proxy.log_path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def _sse(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


# -- 2. streamed tool calls ---------------------------------------------------------------------
def _openai_tool_stream(body):
    return [chunk({"role": "assistant", "content": None}),
            chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            chunk({}, finish="tool_calls"), usage_chunk(), DONE]


def _ollama_tool_stream(body):
    return [chunk({"role": "assistant", "content": "", "tool_calls": [
                {"index": 0, "id": "call_9", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}),
            chunk({}, finish="tool_calls"), DONE]


@pytest.mark.parametrize("script", [_openai_tool_stream, _ollama_tool_stream], ids=["openai", "ollama"])
def test_streamed_tool_calls_reach_the_client(upstream, proxy_factory, script):
    upstream.reply = script
    proxy = proxy_factory(_policy(upstream.url))
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x")
    stream = client.chat.completions.create(model="cloud", stream=True, tools=TOOLS,
                                            messages=[{"role": "user", "content": "Weather in Paris?"}])
    name, args, ids, finish = "", "", set(), None
    for ev in stream:
        for choice in ev.choices:
            for tc in choice.delta.tool_calls or []:
                assert tc.index == 0
                if tc.id:
                    ids.add(tc.id)
                if tc.function and tc.function.name:
                    name += tc.function.name
                if tc.function and tc.function.arguments:
                    args += tc.function.arguments
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(args) == {"city": "Paris"}
    assert len(ids) == 1
    assert finish == "tool_calls"


# -- 3. valid SSE lines without data ------------------------------------------------------------
def test_sse_event_id_retry_lines_are_ignored(upstream, proxy_factory):
    upstream.reply = lambda body: [": comment\n\n", "event: ping\n\n", "id: 5\n\n", "retry: 1000\n\n",
                                   chunk({"role": "assistant", "content": "Hello"}), "event: ping\n\n",
                                   chunk({"content": " there"}), chunk({}, finish="stop"), DONE]
    proxy = proxy_factory(_policy(upstream.url))
    r = httpx.post(proxy.url + "/v1/chat/completions", timeout=60,
                   json={"model": "cloud", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    assert r.headers["x-router-tier"] == "cloud"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in _sse(r.text) if c.get("choices"))
    assert text == "Hello there"
    assert len(upstream.received) == 1, "the stream was retried"


# -- 6. content: null on an assistant tool-call turn ---------------------------------------------
def test_assistant_null_content_reaches_a_strict_server(upstream, proxy_factory):
    def strict(body):
        for m in body["messages"]:
            if m["role"] == "assistant" and "content" not in m:
                return 400, {"error": {"message": "messages[1].content is required", "type": "invalid_request_error"}}
        return completion("It is sunny.", usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})

    upstream.reply = strict
    proxy = proxy_factory(_policy(upstream.url))
    messages = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "call_1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}]
    r = httpx.post(proxy.url + "/v1/chat/completions", timeout=60,
                   json={"model": "cloud", "tools": TOOLS, "messages": messages})
    assert r.status_code == 200, r.text
    sent = upstream.received[-1]["messages"][1]
    # litellm drops None fields, so the turn goes out with the empty string OpenAI takes there
    assert sent["content"] == "" and sent["tool_calls"][0]["id"] == "call_1"
    assert r.json()["choices"][0]["message"]["content"] == "It is sunny."
