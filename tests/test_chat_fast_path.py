"""The chat endpoint's fast path (router.api.chat_fast_path): POST /v1/chat/completions is
answered without FastAPI's routing, with the same answers, errors and log rows as before;
every other method and path still goes through FastAPI."""

from __future__ import annotations

import httpx
import openai

from router.api.chat_fast_path import ChatFastPath

from .app_thread import logged_row, serving_policy, sim_tiers


def _policy(url: str) -> dict:
    return {"tiers": sim_tiers(url), "escalation": {"enabled": False}}


def test_the_app_serves_chat_through_the_fast_path(cloud):
    from router.api.app import create_app
    from router.policy import Policy

    app = create_app(Policy.model_validate(_policy(cloud.url)), warm_up=False)
    assert [m.cls for m in app.user_middleware] == [ChatFastPath]


def test_answers_and_client_errors_are_unchanged(cloud):
    with serving_policy(_policy(cloud.url)) as (url, store):
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-none")
        raw = client.chat.completions.with_raw_response.create(
            model="cloud", messages=[{"role": "user", "content": "Say hi."}])
        answer = raw.parse()
        assert answer.choices[0].message.content
        rid = raw.headers["x-request-id"]
        assert logged_row(store, rid).tier == "cloud"

        bad = httpx.post(url + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        assert logged_row(store, bad.headers["x-request-id"]).http_status == 400

        wrong_method = httpx.get(url + "/v1/chat/completions")  # FastAPI's routing answers it
        assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
        assert httpx.get(url + "/healthz").json()["status"] == "ok"


def test_an_unexpected_error_is_a_500_in_openai_format(cloud, monkeypatch):
    from router.pipeline import Router

    async def broken(self, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Router, "complete", broken)
    with serving_policy(_policy(cloud.url)) as (url, _):
        answer = httpx.post(url + "/v1/chat/completions",
                            json={"model": "cloud", "messages": [{"role": "user", "content": "Say hi."}]})
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"
    assert "RuntimeError" in answer.json()["error"]["message"]
