"""``POST /v1/messages/count_tokens`` counts a prompt too long for every tier instead of
refusing it: clients (coding agents) count a conversation to learn how far over the
window it is and trim it; a 400 told them nothing."""

from __future__ import annotations

import anthropic
import pytest

from .app_thread import serving_policy, sim_tiers
from .scripted_upstream import ScriptedUpstream


@pytest.fixture(scope="module")
def up():
    server = ScriptedUpstream().start()
    yield server
    server.stop()


def _policy(url: str) -> dict:
    tiers = sim_tiers(url, capabilities={"context_window": 512})
    tiers["cloud"]["capabilities"] = {"context_window": 2048}
    return {"tiers": tiers, "aliases": {"claude-haiku-4-5": "local"}}


def test_a_prompt_longer_than_every_context_window_is_counted(up):
    long_turn = [{"role": "user", "content": "word " * 4000}]
    with serving_policy(_policy(up.url)) as (url, store):
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        raw = client.messages.with_raw_response.count_tokens(model="auto", messages=long_turn)
        assert 3900 <= raw.parse().input_tokens <= 4200
        assert raw.headers["x-router-tier"] == "cloud"
        assert raw.headers["x-router-reason"] == "fits no tier's context window; counted as cloud counts it"
        named = client.messages.with_raw_response.count_tokens(model="claude-haiku-4-5", messages=long_turn)
        assert named.headers["x-router-tier"] == "local" and named.parse().input_tokens >= 3900
        short = client.messages.with_raw_response.count_tokens(model="auto", messages=[{"role": "user", "content": "Hi"}])
        assert short.parse().input_tokens < 20 and "x-router-reason" not in short.headers
        # the same prompt as a real request is still refused: it fits nowhere
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.messages.create(model="auto", max_tokens=16, messages=long_turn)
        assert "context window" in str(refused.value)
        assert not up.received  # counting called no model
