"""Anthropic clients authenticate with ``x-api-key`` (or a bearer token) against the proxy's
own keys; failures have Anthropic's shape. The app runs in-process under uvicorn; a real HTTP server is the tier."""

from __future__ import annotations

import time

import anthropic
import pytest


from .app_thread import serving_policy, sim_tiers
from .fake_openai import ANSWER, FakeOpenAI


@pytest.fixture(scope="module")
def app_client():
    upstream = FakeOpenAI().start()
    with serving_policy({
            "tiers": sim_tiers(upstream.url),
            "escalation": {"enabled": False},
            "server": {"require_api_key": True},
            "api_keys": [{"name": "agent", "key": "sk-proxy-agent"}]}) as (url, store):
        yield url, store
    upstream.stop()


def _sdk(url: str, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, max_retries=0, **kw)


def test_x_api_key_and_bearer_token_identify_the_caller(app_client):
    client, store = app_client
    ask = {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    message = _sdk(client, api_key="sk-proxy-agent").messages.create(**ask)
    assert message.content[0].text == ANSWER
    assert _sdk(client, auth_token="sk-proxy-agent").messages.create(**ask).content[0].text == ANSWER
    with pytest.raises(anthropic.AuthenticationError) as wrong:
        _sdk(client, api_key="sk-wrong").messages.create(**ask)
    assert wrong.value.body["error"]["type"] == "authentication_error" and "sk-wrong" not in str(wrong.value.body)
    ids = _sdk(client, api_key="sk-proxy-agent").models.list()
    assert "auto" in [m.id for m in ids]
    deadline = time.time() + 10
    while len(store.requests()) < 3 and time.time() < deadline:  # answers are logged just after they are sent
        time.sleep(0.05)
    rows = store.requests()
    assert [(r.status, r.api_key_name) for r in rows if r.status == "ok"] == [("ok", "agent"), ("ok", "agent")]
    assert [r.http_status for r in rows if r.status == "error"] == [401]
