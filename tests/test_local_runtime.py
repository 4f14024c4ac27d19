"""The in-process SmolLM2 runtime and its litellm provider (real model)."""

import asyncio
import math

import pytest

from router.models import smollm2_gguf_path
from router.policy import Policy
from router.providers.llama_runtime import ContextWindowExceededError, LlamaRuntime
from router.providers.tier_client import TierClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime():
    rt = LlamaRuntime(smollm2_gguf_path(), n_ctx=512)
    rt.load()
    return rt


def test_generates_with_token_logprobs(runtime):
    out = runtime.generate([{"role": "user", "content": "What is the capital of Japan?"}], max_tokens=24)
    assert "Tokyo" in out.text
    assert out.finish_reason == "stop" and out.completion_tokens == len(out.steps) > 0
    assert "".join(s.text for s in out.steps) == out.text
    for s in out.steps:
        assert s.logprob <= 0 and math.isfinite(s.logprob)
        assert len(s.top) == 2 and s.top[0][1] >= s.top[1][1]
        assert s.logprob <= s.top[0][1] + 1e-4  # greedy picks the top token (up to penalties)


def test_max_tokens_and_stop(runtime):
    msgs = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    out = runtime.generate(msgs, max_tokens=5)
    assert out.completion_tokens == 5 and out.finish_reason == "length"
    full = runtime.generate(msgs, max_tokens=60)
    stop = full.text.strip()[4:6]
    cut = runtime.generate(msgs, max_tokens=60, stop=[stop])
    assert cut.finish_reason == "stop" and stop not in cut.text and full.text.startswith(cut.text)


def test_streamed_text_equals_answer_and_utf8_whole(runtime):
    pieces = []
    out = runtime.generate([{"role": "user", "content": "Write the word 'café' and a Japanese greeting."}],
                           max_tokens=24, on_text=pieces.append)
    assert "".join(pieces) == out.text
    assert "\ufffd" not in out.text


def test_context_window_exceeded(runtime):
    with pytest.raises(ContextWindowExceededError):
        runtime.generate([{"role": "user", "content": "word " * 600}], max_tokens=4)


def test_same_call_path_through_litellm():
    client = TierClient(Policy())

    async def run():
        result = await client.complete("local", [{"role": "user", "content": "What is the capital of Japan?"}], {"max_tokens": 16})
        deltas = [d async for d in client.stream("local", [{"role": "user", "content": "Say hi."}], {"max_tokens": 8})]
        return result, deltas

    result, deltas = asyncio.run(run())
    assert "Tokyo" in result.text and result.prompt_tokens > 0
    assert result.token_logprobs and len(result.token_logprobs) == result.completion_tokens
    assert result.response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert deltas[-1].usage and deltas[-1].usage["completion_tokens"] > 0
    assert "".join(d.content for d in deltas).strip()


def test_local_tier_speaks_json_schema_n_and_tool_replay():
    """response_format is enforced by a llama.cpp grammar; n gives n choices; a replayed
    assistant tool call and its tool result reach the SLM as text."""
    import json

    import jsonschema

    client = TierClient(Policy())
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}

    async def run():
        js = await client.complete("local", [{"role": "user", "content": "Give the largest city of Japan as JSON."}],
                                   {"max_tokens": 48, "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}})
        two = await client.complete("local", [{"role": "user", "content": "Name a color."}],
                                    {"max_tokens": 6, "n": 2, "temperature": 0.9, "seed": 1})
        tool = await client.complete("local", [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
             "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 C"},
        ], {"max_tokens": 24})
        return js, two, tool

    js, two, tool = asyncio.run(run())
    if js.finish_reason == "stop":
        jsonschema.validate(json.loads(js.text), schema)
    else:  # cut by max_tokens: still the start of a JSON object, never prose
        assert js.text.lstrip().startswith("{")
    assert [c["index"] for c in two.response["choices"]] == [0, 1]
    assert two.completion_tokens == sum(len(c["logprobs"]["content"]) for c in two.response["choices"])
    assert tool.text.strip() and tool.prompt_tokens > 20
