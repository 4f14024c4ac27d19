"""Every JSON body the router reads is decoded in one place (``load_json_body``): a body
nested deeper than the decoder can follow was a 500 ``internal_error`` on ``/v1/feedback``,
and a number longer than Python converts answered with Python's advice to call
``sys.set_int_max_str_digits``; both are the API's 400 ``invalid_json`` now."""

from __future__ import annotations

import httpx
import pytest

from .app_thread import logged_row, serving_policy, sim_tiers
from .scripted_upstream import ScriptedUpstream

DEEP = b'{"model": "cloud", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
LONG_NUMBER = b'{"model": "cloud", "max_tokens": 1' + b"0" * 5000 + b', "messages": [{"role": "user", "content": "hi"}]}'
ANTHROPIC = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def server():
    up = ScriptedUpstream().start()
    with serving_policy({"tiers": sim_tiers(up.url)}) as (url, store):
        yield url, store
    up.stop()


@pytest.mark.parametrize("body", [DEEP, LONG_NUMBER], ids=["deep", "long-number"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/route", "/v1/feedback",
                                  "/v1/messages", "/v1/messages/count_tokens"])
def test_an_undecodable_body_is_a_400_invalid_json_in_the_api_shape(server, path, body):
    url, store = server
    anthropic = path.startswith("/v1/messages")
    r = httpx.post(url + path, content=body, timeout=30,
                   headers={"content-type": "application/json", **(ANTHROPIC if anthropic else {})})
    assert r.status_code == 400, r.text
    if anthropic:
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
        message = r.json()["error"]["message"]
    else:
        assert r.json()["error"]["code"] == "invalid_json"
        message = r.json()["error"]["message"]
    assert message.startswith("We could not parse the JSON body of your request (")
    assert "set_int_max_str_digits" not in message
    assert logged_row(store, r.headers["x-request-id"]).http_status == 400
