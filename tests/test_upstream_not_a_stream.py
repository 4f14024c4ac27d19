"""An upstream that answers a streaming request with a 200 that is not an event stream (an
HTML page from a proxy, a server that ignores ``stream`` and sends JSON) is a failed call,
not an empty answer: the router falls back to the other tier, or answers the API's 502."""

from __future__ import annotations

import httpx
import openai
import pytest

from .app_thread import logged_row, serving_policy, sim_tiers
from starlette.responses import Response

from .scripted_upstream import DONE, ScriptedUpstream, chunk, completion, usage_chunk


def _json_to_every_stream(body):
    return completion("ignored the stream flag", usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})


@pytest.fixture(scope="module")
def json_up():
    server = ScriptedUpstream(_json_to_every_stream).start()
    yield server
    server.stop()


def test_a_json_answer_to_a_cloud_stream_falls_back_to_the_local_tier(json_up, good_up):
    with serving_policy({"tiers": sim_tiers(good_up.url, json_up.url)}) as (url, store):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with client.chat.completions.with_streaming_response.create(
                model="cloud", stream=True, messages=[{"role": "user", "content": "Hi"}]) as response:
            text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
            headers = response.headers
        assert headers["x-router-tier"] == "local" and text == "ok"
        assert "cloud failed (502), fell back to local" in headers["x-router-reason"]
        assert json_up.received[-1]["stream"] is True  # the cloud was asked to stream
        row = logged_row(store, headers["x-request-id"])
        assert row.status == "ok" and row.tier == "local"


def test_without_a_fallback_it_is_a_502_in_openai_shape(json_up, good_up):
    policy = {"tiers": sim_tiers(good_up.url, json_up.url), "routing": {"on_cloud_unavailable": "error"}}
    with serving_policy(policy) as (url, store):
        r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "cloud", "stream": True, "messages": [{"role": "user", "content": "Hi"}]})
        assert r.status_code == 502, r.text
        error = r.json()["error"]
        assert error["code"] == "upstream_error"
        assert "application/json instead of an event stream" in error["message"]
        row = logged_row(store, r.headers["x-request-id"])
        assert row.status == "error" and row.http_status == 502
        # the same server's JSON answers to non-streaming calls are still answers
        ok = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "cloud", "messages": [{"role": "user", "content": "Hi"}]})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "ignored the stream flag"


class MislabelledStream(ScriptedUpstream):
    """Streams real SSE events but labels them ``text/plain`` (the SDK reads them all the same)."""

    async def _chat(self, request):
        body = await request.json()
        self.received.append(body)
        events = chunk({"role": "assistant", "content": "still an answer"}) + chunk({}, finish="stop") + \
            usage_chunk(5, 3) + DONE
        return Response("\n\n" + events, media_type="text/plain")


def test_an_event_stream_under_another_content_type_is_still_read(good_up):
    mislabelled = MislabelledStream().start()
    try:
        with serving_policy({"tiers": sim_tiers(good_up.url, mislabelled.url)}) as (url, store):
            r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
                "model": "cloud", "stream": True, "messages": [{"role": "user", "content": "Hi"}]})
            assert r.headers["x-router-tier"] == "cloud" and "still an answer" in r.text
            row = logged_row(store, r.headers["x-request-id"])
            assert row.status == "ok" and (row.prompt_tokens, row.completion_tokens) == (5, 3)
    finally:
        mislabelled.stop()


class HtmlPage(ScriptedUpstream):
    """Answers every call, on any path, with a proxy's HTML page (status 200)."""

    def __init__(self) -> None:
        super().__init__()
        from starlette.routing import Route
        self._server.config.app.router.routes.append(Route("/v1/messages", self._chat, methods=["POST"]))

    async def _chat(self, request):
        self.received.append(await request.json())
        return Response("<html><body>Please log in to the network</body></html>", media_type="text/html")


def test_an_anthropic_tier_stream_with_no_events_falls_back_too(good_up):
    """litellm's Anthropic provider has its own HTTP client: the stream-level check sees a
    stream that carried no answer, tool call or usage and fails it before the first byte."""
    page = HtmlPage().start()
    try:
        tiers = sim_tiers(good_up.url)
        tiers["cloud"] = {"model": "anthropic/claude-sonnet-4-5", "api_key": "sk-ant-test",
                          "api_base": page.url.removesuffix("/v1"), "max_retries": 0}
        with serving_policy({"tiers": tiers}) as (url, store):
            r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
                "model": "cloud", "stream": True, "messages": [{"role": "user", "content": "Hi"}]})
            assert page.received, "the Anthropic tier was called"
            assert r.headers["x-router-tier"] == "local" and '"content":"ok"' in r.text
            assert "cloud failed (502), fell back to local" in r.headers["x-router-reason"]
            row = logged_row(store, r.headers["x-request-id"])
            assert "its stream carried no answer, tool call or usage" in row.calls[0].error
    finally:
        page.stop()
