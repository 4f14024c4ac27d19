"""A stream that never reports usage is counted like a cancelled one: the prompt and the
text it delivered, with litellm's tokenizer, marked estimated. Before, a stream cut short by
its upstream (``partial``) or one without a usage chunk was logged with 0 prompt tokens, so
its cost left the prompt out."""

from __future__ import annotations

import json

import httpx
import pytest

from .app_thread import logged_row, serving_policy, sim_tiers
from .scripted_upstream import ScriptedUpstream, chunk

PROMPT = "Tell me in a few words about the history of the city of Rome and its empire."


def _cut_short(body):
    # two pieces, then the socket closes: no finish reason, no usage, no [DONE]
    return [chunk({"role": "assistant", "content": "Rome was founded"}), chunk({"content": " long ago"})]


@pytest.fixture(scope="module")
def cut_up():
    server = ScriptedUpstream(_cut_short).start()
    yield server
    server.stop()


def test_a_cloud_stream_cut_short_logs_its_prompt_and_text_counted(cut_up):
    with serving_policy({"tiers": sim_tiers(cut_up.url)}) as (url, store):
        r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "cloud", "stream": True, "messages": [{"role": "user", "content": PROMPT}]})
        assert r.status_code == 200 and '"code":"stream_interrupted"' in r.text.replace(" ", "")
        row = logged_row(store, r.headers["x-request-id"])
        assert row.status == "partial"
        assert 15 <= row.prompt_tokens <= 40, row.prompt_tokens  # the prompt, counted (was 0)
        assert 3 <= row.completion_tokens <= 8, row.completion_tokens  # "Rome was founded long ago"
        assert row.cost_usd > 0
        assert "stream cut short: usage not reported by cloud, prompt and streamed tokens counted" in row.reason


def test_a_stream_cut_short_says_it_was_not_continued_elsewhere(cut_up):
    """litellm wraps a broken stream in ``MidStreamFallbackError``; the client read that
    name (and nothing else) as a fallback that never happened after the first byte."""
    with serving_policy({"tiers": sim_tiers(cut_up.url)}) as (url, store):
        r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "cloud", "stream": True, "messages": [{"role": "user", "content": PROMPT}]})
        events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
        message = events[-1]["error"]["message"]
        assert message.startswith("The upstream model failed mid-stream: tier 'cloud' failed: ")
        assert "Fallback" not in message and "it was not continued on another tier" in message
        assert "Fallback" not in logged_row(store, r.headers["x-request-id"]).error
