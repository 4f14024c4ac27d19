"""`GET /v1/models` (and `/v1/models/{id}`) refused for a missing or wrong proxy key: the
Anthropic SDK's `models.list()` got OpenAI's error shape, and the refusal had no log row.
Now it is Anthropic's shape when the request has `anthropic-version`, OpenAI's otherwise,
and logged with its status, like every other refused request."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest


from .app_thread import logged_row, serving_policy, sim_tiers
from .fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def served():
    upstream = FakeOpenAI().start()
    with serving_policy({
            "tiers": sim_tiers(upstream.url),
            "server": {"require_api_key": True},
            "api_keys": [{"name": "agent", "key": "sk-proxy-agent"}]}) as (url, store):
        yield url, store
    upstream.stop()


def test_anthropic_models_list_with_a_wrong_key(served):
    url, store = served
    with pytest.raises(anthropic.AuthenticationError) as err:
        anthropic.Anthropic(base_url=url, api_key="sk-wrong", max_retries=0).models.list()
    body = err.value.body
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert "sk-wrong" not in str(body)
    assert logged_row(store, body["request_id"]).http_status == 401
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=url, api_key="sk-wrong", max_retries=0).models.retrieve("auto")


def test_openai_models_list_with_a_wrong_key(served):
    url, store = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        client.models.list()
    assert err.value.body["code"] == "invalid_api_key"
    request_id = err.value.response.headers["x-request-id"]
    assert logged_row(store, request_id).http_status == 401


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
    assert logged_row(store, r.headers["x-request-id"]).http_status == 401
    r = httpx.get(f"{url}/v1/policy", headers={"authorization": "Bearer sk-proxy-agent"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key_required"
    assert logged_row(store, r.headers["x-request-id"]).http_status == 403
    before = len(store.requests())
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "auto", "messages": []},
                   headers={"authorization": "Bearer sk-proxy-agent"})
    assert r.status_code == 400
    logged_row(store, r.headers["x-request-id"])
    time.sleep(0.3)
    assert len(store.requests()) == before + 1  # a refusal admit logged is not logged twice
