"""Anthropic clients authenticate with ``x-api-key`` (or a bearer token) against the proxy's
own keys; failures have Anthropic's shape. The app runs in-process under uvicorn; a real HTTP server is the tier."""

from __future__ import annotations

import threading
import time

import anthropic
import pytest
import uvicorn

from router.pipeline import Router
from router.policy import Policy
from router.api.app import create_app
from router.store.sqlite import SQLiteStore

from .fake_openai import ANSWER, FakeOpenAI, free_port


class _Fixed:
    """A scorer that finds every request easy (no model to load)."""

    def score(self, texts):
        return [0.1 for _ in texts]


@pytest.fixture(scope="module")
def app_client():
    upstream = FakeOpenAI().start()
    policy = Policy.model_validate({
        "tiers": {"local": {"model": "openai/local-sim", "api_key": "sk-up", "api_base": upstream.url,
                            "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                  "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": upstream.url}},
        "escalation": {"enabled": False},
        "server": {"require_api_key": True},
        "api_keys": [{"name": "agent", "key": "sk-proxy-agent"}]})
    store = SQLiteStore(":memory:")
    app = create_app(policy, router=Router(policy, store, scorer=_Fixed()), warm_up=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", store
    server.should_exit = True
    thread.join(timeout=10)
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
