"""`GET /v1/models` (and `/v1/models/{id}`) refused for a missing or wrong proxy key: the
Anthropic SDK's `models.list()` got OpenAI's error shape, and the refusal had no log row.
Now it is Anthropic's shape when the request has `anthropic-version`, OpenAI's otherwise,
and logged with its status, like every other refused request."""

from __future__ import annotations

import threading
import time

import anthropic
import openai
import pytest
import uvicorn

from router.api.app import create_app
from router.pipeline import Router
from router.policy import Policy
from router.store.sqlite import SQLiteStore

from .fake_openai import FakeOpenAI, free_port


class _Fixed:
    def score(self, texts):
        return [0.1 for _ in texts]


@pytest.fixture(scope="module")
def served():
    upstream = FakeOpenAI().start()
    policy = Policy.model_validate({
        "tiers": {"local": {"model": "openai/local-sim", "api_key": "sk-up", "api_base": upstream.url,
                            "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                  "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": upstream.url}},
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


def _row(store, request_id):
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = [r for r in store.requests() if r.id == request_id]
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("not logged")


def test_anthropic_models_list_with_a_wrong_key(served):
    url, store = served
    with pytest.raises(anthropic.AuthenticationError) as err:
        anthropic.Anthropic(base_url=url, api_key="sk-wrong", max_retries=0).models.list()
    body = err.value.body
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert "sk-wrong" not in str(body)
    assert _row(store, body["request_id"]).http_status == 401
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=url, api_key="sk-wrong", max_retries=0).models.retrieve("auto")


def test_openai_models_list_with_a_wrong_key(served):
    url, store = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        client.models.list()
    assert err.value.body["code"] == "invalid_api_key"
    request_id = err.value.response.headers["x-request-id"]
    assert _row(store, request_id).http_status == 401


def test_the_right_key_still_lists(served):
    url, _ = served
    ids = [m.id for m in anthropic.Anthropic(base_url=url, api_key="sk-proxy-agent", max_retries=0).models.list()]
    assert "auto" in ids
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-proxy-agent", max_retries=0)
    assert client.models.retrieve("local").id == "local"


def test_feedback_and_policy_refusals_are_logged(served):
    """Refusals of /v1/feedback (a wrong key) and /v1/policy (not an admin) had no log row."""
    import httpx

    url, store = served
    r = httpx.post(f"{url}/v1/feedback", json={"request_id": "x", "score": 1}, headers={"authorization": "Bearer sk-bad"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert _row(store, r.headers["x-request-id"]).http_status == 401
    r = httpx.get(f"{url}/v1/policy", headers={"authorization": "Bearer sk-proxy-agent"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key_required"
    assert _row(store, r.headers["x-request-id"]).http_status == 403
    before = len(store.requests())
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "auto", "messages": []},
                   headers={"authorization": "Bearer sk-proxy-agent"})
    assert r.status_code == 400
    _row(store, r.headers["x-request-id"])
    time.sleep(0.3)
    assert len(store.requests()) == before + 1  # a refusal admit logged is not logged twice
