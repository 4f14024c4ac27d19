"""A tier that answers 200 with ``choices: []`` failed: OpenAI always answers with a
choice, and a client reading ``choices[0]`` (every SDK example does) crashed on the
empty list the router passed on. It is a 502, retried and fallen back from."""

from __future__ import annotations

import httpx
import openai
import pytest

from .app_thread import logged_row, serving_policy, sim_tiers
from .scripted_upstream import ScriptedUpstream, completion


def _no_choices(body):
    return {**completion("x", usage={"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}), "choices": []}


@pytest.fixture(scope="module")
def empty_up():
    server = ScriptedUpstream(_no_choices).start()
    yield server
    server.stop()


def test_an_answer_without_choices_falls_back(empty_up, good_up):
    with serving_policy({"tiers": sim_tiers(good_up.url, empty_up.url)}) as (url, store):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="cloud", messages=[{"role": "user", "content": "Hi"}])
        assert raw.parse().choices[0].message.content == "ok"
        assert raw.headers["x-router-tier"] == "local"
        assert "cloud failed (502), fell back to local" in raw.headers["x-router-reason"]
        row = logged_row(store, raw.headers["x-request-id"])
        assert [c.status for c in row.calls][-1] == "ok" and "its answer has no choices" in row.calls[0].error


def test_without_a_fallback_it_is_a_502(empty_up, good_up):
    policy = {"tiers": sim_tiers(good_up.url, empty_up.url), "routing": {"on_cloud_unavailable": "error"}}
    with serving_policy(policy) as (url, store):
        r = httpx.post(url + "/v1/chat/completions", timeout=30,
                       json={"model": "cloud", "messages": [{"role": "user", "content": "Hi"}]})
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
        assert "its answer has no choices" in r.json()["error"]["message"]
        assert logged_row(store, r.headers["x-request-id"]).http_status == 502
