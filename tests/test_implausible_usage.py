"""A tier that reports usage no model can have spent (10**30 tokens, negative counts) is
counted with litellm's tokenizer instead: the request is answered, logged and priced, and
the reason says why (an integer over 2**63 once made the log write fail, so the request
went unlogged)."""

from __future__ import annotations

import httpx
import pytest

from router.providers.usage import MAX_REPORTED_TOKENS, implausible_usage

from .app_thread import logged_row, serving_policy, sim_tiers
from .scripted_upstream import DONE, ScriptedUpstream, chunk, completion

HUGE = {"prompt_tokens": 10**30, "completion_tokens": 10**30, "total_tokens": 2 * 10**30}


def test_implausible_usage_names_the_first_broken_count():
    assert implausible_usage({"prompt_tokens": 12, "completion_tokens": 3}) is None
    assert implausible_usage(None) is None and implausible_usage({"completion_tokens": 0}) is None
    assert implausible_usage({"prompt_tokens": -5, "completion_tokens": 3}) == "prompt_tokens=-5"
    assert implausible_usage({"prompt_tokens": 1, "completion_tokens": MAX_REPORTED_TOKENS + 1}) == \
        f"completion_tokens={MAX_REPORTED_TOKENS + 1}"
    assert implausible_usage({"prompt_tokens": 1, "completion_tokens": "lots"}) == "completion_tokens='lots'"
    assert implausible_usage({"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": 2.5}}) == "cached_tokens=2.5"
    assert implausible_usage(HUGE).startswith("prompt_tokens=1000") and implausible_usage(HUGE).endswith("...")


def _huge(body):
    if body.get("stream"):
        return [chunk({"role": "assistant", "content": "four words of answer"}), chunk({}, finish="stop"),
                "data: " + '{"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", '
                f'"choices": [], "usage": {{"prompt_tokens": {10**30}, "completion_tokens": {10**30}}}}}\n\n', DONE]
    return completion("four words of answer", usage=HUGE)


@pytest.fixture(scope="module")
def huge_up():
    server = ScriptedUpstream(_huge).start()
    yield server
    server.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_a_cloud_answer_with_absurd_usage_is_logged_with_counted_tokens(huge_up, stream):
    with serving_policy({"tiers": sim_tiers(huge_up.url)}) as (url, store):
        r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "cloud", "stream": stream, "messages": [{"role": "user", "content": "What is two plus two?"}]})
        assert r.status_code == 200 and "four words of answer" in r.text.replace('"', "")
        row = logged_row(store, r.headers["x-request-id"])
        assert row.status == "ok" and row.tier == "cloud"
        assert 0 < row.prompt_tokens < 50 and 0 < row.completion_tokens < 50
        assert row.cost_usd is not None and 0 < row.cost_usd < 1e-4
        if not stream:
            assert "usage reported by cloud is implausible (prompt_tokens=1000" in r.headers["x-router-reason"]
            usage = r.json()["usage"]  # the client sees the counted usage too
            assert (usage["prompt_tokens"], usage["completion_tokens"]) == (row.prompt_tokens, row.completion_tokens)
