"""OpenAI's Responses API through the real proxy: the official ``openai`` SDK ->
`slm-router serve` (subprocess) -> SmolLM2 in-process (local tier) or litellm -> a real
OpenAI-compatible HTTP server (cloud tier)."""

from __future__ import annotations

import json
import sqlite3
import time

import openai
import pytest

from .fake_openai import ANSWER
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow

TOOL = {"type": "function", "name": "get_weather", "description": "Weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def proxy(cloud, claude, tmp_path_factory):
    policy = {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 24,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url, "max_retries": 0,
                      "capabilities": {"tools": True, "json_schema": True}},
            # an Anthropic model (through litellm's Anthropic provider) that calls tools
            "claude": {"model": "anthropic/claude-sonnet-4-5", "api_key": "sk-ant", "api_base": claude.url},
        },
        "routing": {"classifier": {"threshold": 1.0}},
        "escalation": {"enabled": False},
    }
    p = ProxyProcess(policy, tmp_path_factory.mktemp("responses")).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def client(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _row(proxy, request_id: str) -> tuple:
    deadline = time.time() + 10
    while True:
        row = sqlite3.connect(proxy.log_path).execute(
            "SELECT status, tier, http_status FROM requests WHERE id = ?", (request_id,)).fetchone()
        if row or time.time() > deadline:
            return row
        time.sleep(0.1)


@pytest.mark.parametrize("model", ["cloud", "local"])
def test_text_input_and_instructions(proxy, client, cloud, model):
    raw = client.responses.with_raw_response.create(model=model, input="Name a planet.",
                                                    instructions="Answer in one word.", max_output_tokens=16)
    response = raw.parse()
    assert raw.headers["x-router-tier"] == model and response.id == f"resp_{raw.headers['x-request-id']}"
    assert response.output_text and response.status in ("completed", "incomplete") and response.store is False
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    if model == "cloud":
        assert response.output_text == ANSWER and response.status == "completed"
        sent = cloud.received[-1]
        assert sent["messages"][0] == {"role": "system", "content": "Answer in one word."}
        assert sent["max_tokens"] == 16
    assert _row(proxy, raw.headers["x-request-id"])[:2] == ("ok", model)


@pytest.mark.parametrize("model", ["cloud", "local"])
def test_stream_events(client, model):
    kinds, text = [], []
    # Greedy and room to finish: SmolLM2 sampled at temperature 1 can run to the token cap, and the
    # SDK's get_final_response() raises on a response.incomplete stream.
    with client.responses.stream(model=model, temperature=0, max_output_tokens=96,
                                 input=[{"role": "user", "content": [{"type": "input_text",
                                                                      "text": "Say hi."}]}]) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text.append(event.delta)
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert "response.output_item.added" in kinds and "response.output_text.done" in kinds
    assert final.output_text == "".join(text) != ""
    if model == "cloud":
        assert final.output_text == ANSWER


def test_tools_and_function_call_items(client, cloud):
    cloud_tool_reply = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    response = client.responses.create(
        model="cloud", tools=[TOOL], tool_choice="auto",
        input=[{"role": "user", "content": "Weather in Oslo?"},
               {"type": "function_call", "call_id": cloud_tool_reply["id"], "name": "get_weather",
                "arguments": cloud_tool_reply["function"]["arguments"]},
               {"type": "function_call_output", "call_id": "call_1", "output": "-3C"}])
    assert response.output_text == ANSWER
    sent = cloud.received[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "auto"
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "-3C"}


def test_text_format_becomes_response_format(client, cloud):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    response = client.responses.create(model="cloud", input="Largest city?",
                                       text={"format": {"type": "json_schema", "name": "city", "schema": schema}})
    assert json.loads(response.output_text)["city"] == "Tokyo"
    assert cloud.received[-1]["response_format"]["json_schema"]["name"] == "city"


def test_stateful_fields_are_refused_by_name(proxy, client):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="cloud", input="again", previous_response_id="resp_123")
    assert err.value.body["param"] == "previous_response_id" and "stateless" in err.value.body["message"]
    assert _row(proxy, err.value.response.headers["x-request-id"]) == ("error", None, 400)
    with pytest.raises(openai.BadRequestError) as tool:
        client.responses.create(model="cloud", input="x", tools=[{"type": "web_search"}])
    assert tool.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="x")


def test_model_tool_call_becomes_a_function_call_item(client):
    ask = {"model": "claude", "tools": [TOOL], "input": "What is the weather in Paris?"}
    response = client.responses.create(**ask)
    call = next(item for item in response.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id == "toolu_fake01"
    kinds, arguments = [], []
    with client.responses.stream(**ask) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.function_call_arguments.delta":
                arguments.append(event.delta)
        final = stream.get_final_response()
    assert json.loads("".join(arguments)) == {"city": "Paris"}
    assert "response.function_call_arguments.done" in kinds and kinds[-1] == "response.completed"
    assert next(i for i in final.output if i.type == "function_call").call_id == "toolu_fake01"
    answered = client.responses.create(model="claude", tools=[TOOL], input=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "21C"}])
    assert answered.output_text == "The tool said: 21C"
