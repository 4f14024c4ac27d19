"""What a new user's break test found, through the real server (`slm-router serve`,
in-process SmolLM2) and the real ``openai`` and ``anthropic`` SDKs, with a cloud tier that
is down (a real OpenAI-compatible server answering 503):

- an image or tools request routed to the cloud is not handed to the local tier (which
  has neither) when the cloud fails: the client gets the cloud's failure in its API's
  shape, and the log says why nothing answered instead;
- ``GET /v1/models/{id}`` retrieves every listed model (OpenAI's and Anthropic's shapes),
  an unknown id is a logged 404 ``model_not_found``;
- a ``response_format`` schema llama.cpp's grammar converter cannot take is a 400 naming
  the schema problem (before: a 503 whose message carried a Python traceback).
"""

from __future__ import annotations

import sqlite3
import time

import anthropic
import httpx
import openai
import pytest

from .fake_openai import FakeOpenAI
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow

TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Weather of a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
IMAGE = [{"type": "text", "text": "What is in this picture?"},
         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]


@pytest.fixture(scope="module")
def down():
    server = FakeOpenAI(fail_with=503).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(down, tmp_path_factory):
    policy = {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 16,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": down.url, "max_retries": 0},
        },
        "aliases": {"gpt-4o": "auto"},
        "routing": {"on_cloud_unavailable": "local"},
        "escalation": {"enabled": False},
    }
    p = ProxyProcess(policy, tmp_path_factory.mktemp("fresh")).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def chat(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _logged(proxy, request_id: str) -> tuple[tuple, list[tuple]]:
    """The request's log row (status, http status, reason, error) and its calls (tier, purpose, status)."""
    deadline = time.time() + 10
    while True:
        with sqlite3.connect(proxy.log_path) as db:
            row = db.execute("SELECT status, http_status, reason, error FROM requests WHERE id = ?",
                             (request_id,)).fetchone()
            calls = db.execute("SELECT tier, purpose, status FROM calls WHERE request_id = ? ORDER BY ts",
                               (request_id,)).fetchall()
        if row is not None or time.time() > deadline:
            return row, calls
        time.sleep(0.1)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", ["tools", "image"])
def test_cloud_down_never_hands_an_image_or_tools_request_to_the_local_tier(proxy, chat, kind, stream):
    kwargs = {"tools": TOOLS, "messages": [{"role": "user", "content": "Weather in Paris?"}]} if kind == "tools" \
        else {"messages": [{"role": "user", "content": IMAGE}]}
    need = "needs tools" if kind == "tools" else "needs vision"
    with pytest.raises(openai.APIStatusError) as raised:
        chat.chat.completions.create(model="auto", stream=stream, **kwargs)
    err = raised.value
    assert err.status_code == 503
    body = err.response.json()["error"]
    assert body["code"] == "tier_unavailable" and body["type"] == "service_unavailable"
    assert f"The fallback tier 'local' cannot serve this request ({need})" in body["message"]
    row, calls = _logged(proxy, err.response.headers["x-request-id"])
    assert row[:2] == ("error", 503) and f"fallback local {need}, not called" in row[2]
    assert calls == [("cloud", "primary", "error")]  # the local tier was never asked


def test_cloud_down_still_falls_back_for_what_the_local_tier_can_serve(proxy, chat):
    raw = chat.chat.completions.with_raw_response.create(model="cloud", messages=[{"role": "user", "content": "Hi"}])
    assert raw.headers["x-router-tier"] == "local" and raw.headers["x-router-degraded"] == "true"
    assert raw.parse().choices[0].message.content
    _, calls = _logged(proxy, raw.headers["x-request-id"])
    assert calls == [("cloud", "primary", "error"), ("local", "fallback", "ok")]


def test_anthropic_tools_with_the_cloud_down_get_an_anthropic_error(proxy):
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=120)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model="auto", max_tokens=16, messages=[{"role": "user", "content": "Weather?"}],
                               tools=[{"name": "weather", "input_schema": {"type": "object", "properties": {}}}])
    body = raised.value.response.json()
    assert raised.value.status_code == 503 and body["type"] == "error"
    assert "cannot serve this request (needs tools)" in body["error"]["message"]


def test_every_listed_model_can_be_retrieved(proxy, chat):
    listed = {m.id: m for m in chat.models.list()}
    assert list(listed)[0] == "auto" and set(listed) == {"auto", "local", "cloud", "gpt-4o"}
    for model_id, entry in listed.items():
        got = chat.models.retrieve(model_id)
        assert (got.id, got.object, got.owned_by, got.created) == (model_id, "model", "slm-router", entry.created)
        assert got.model_dump() == entry.model_dump()  # the same object the list shows
    assert chat.models.retrieve("local").model_dump()["root"] == "slm-local/smollm2"
    with pytest.raises(openai.NotFoundError) as raised:
        chat.models.retrieve("gpt-9")
    body = raised.value.response.json()["error"]
    assert body["code"] == "model_not_found" and body["param"] == "model" and ", ".join(listed) in body["message"]
    row, _ = _logged(proxy, raised.value.response.headers["x-request-id"])
    assert row[:2] == ("error", 404) and row[3].startswith("model_not_found")


def test_anthropic_clients_retrieve_models_in_their_shape(proxy):
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0)
    ids = [m.id for m in client.models.list()]
    for model_id in ids:
        got = client.models.retrieve(model_id)
        assert got.id == model_id and got.type == "model" and got.display_name.startswith(model_id)
    with pytest.raises(anthropic.NotFoundError) as raised:
        client.models.retrieve("claude-nope")
    body = raised.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert httpx.get(proxy.url + "/v1/models/a/b").status_code == 404  # an id with a slash: not found, not a crash


@pytest.mark.parametrize("schema", [
    {"type": "nonsense"},                                   # not a JSON Schema type
    {"type": "string", "pattern": "[a-z]+"},                # valid JSON Schema; llama.cpp wants ^...$
])
def test_a_schema_the_local_grammar_cannot_take_is_a_clear_400(proxy, chat, schema):
    with pytest.raises(openai.BadRequestError) as raised:
        chat.chat.completions.create(model="local", messages=[{"role": "user", "content": "A word, as JSON."}],
                                     response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}})
    body = raised.value.response.json()["error"]
    assert body["code"] == "upstream_rejected" and body["type"] == "invalid_request_error"
    assert "cannot turn this response_format schema into a grammar" in body["message"]
    assert "Traceback" not in body["message"] and len(body["message"]) < 600
    row, calls = _logged(proxy, raised.value.response.headers["x-request-id"])
    assert row[:2] == ("error", 400) and calls == [("local", "primary", "error")]


def test_a_seed_does_not_stick_to_the_worker(chat):
    """A request's ``seed`` is its own: before, it stayed set on the worker's llama.cpp
    sampler, so every later request without a seed on that worker drew the same "sampled"
    answer at temperature > 0. Now each unseeded sample is drawn afresh, a seeded one repeats."""
    ask = {"model": "local", "temperature": 1.3, "max_tokens": 12,
           "messages": [{"role": "user", "content": "Invent a name for a fantasy city."}]}
    chat.chat.completions.create(n=2, seed=7, **ask)  # both workers were given a seed (one sample on each)
    singles = [chat.chat.completions.create(**ask).choices[0].message.content for _ in range(4)]
    choices = [c.message.content for c in chat.chat.completions.create(n=3, **ask).choices]
    assert len(set(singles)) >= 3 and len(set(choices)) == 3, (singles, choices)
    seeded = {chat.chat.completions.create(seed=7, **ask).choices[0].message.content for _ in range(3)}
    assert len(seeded) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_field_name_with_cr_lf_is_answered_not_dropped(proxy, chat, stream):
    """The reason header names ignored fields; a name with CR/LF (a header-injection attempt)
    made the HTTP server refuse the header and drop the connection with no answer at all."""
    extra = {"a\r\nx-evil: 1": 1, "ключ": 2}
    raw = chat.chat.completions.with_raw_response.create(
        model="local", max_tokens=4, stream=stream, messages=[{"role": "user", "content": "Hi"}], extra_body=extra)
    assert raw.status_code == 200 and "x-evil" not in raw.headers
    assert raw.headers["x-router-reason"] == "forced by model; ignored client fields: a??x-evil: 1, ????"
    row, _ = _logged(proxy, raw.headers["x-request-id"])
    assert "a\r\nx-evil: 1" in row[2] and "ключ" in row[2]  # the log keeps the names as sent


def test_reasoning_effort_and_a_schemaless_json_schema_reach_the_local_tier(proxy, chat):
    """Both were refused by the in-process tier: ``reasoning_effort`` (sent by clients of
    reasoning models) by litellm's parameter check, a 400 for every request under the default
    policy; a ``json_schema`` without its optional ``schema`` by the grammar step, a 503 with
    a Python traceback in the message."""
    raw = chat.chat.completions.with_raw_response.create(
        model="local", max_tokens=8, reasoning_effort="high", messages=[{"role": "user", "content": "Hi"}])
    assert raw.status_code == 200 and raw.parse().choices[0].message.content
    answer = chat.chat.completions.create(model="local", max_tokens=24, messages=[{"role": "user", "content": "A city as JSON."}],
                                          response_format={"type": "json_schema", "json_schema": {"name": "city"}})
    assert answer.choices[0].message.content.lstrip().startswith("{")


def _idle(proxy, within_s: float = 5.0) -> tuple[bool, dict]:
    """Whether the local pool has no busy worker and no queued request within ``within_s``."""
    deadline = time.time() + within_s
    while True:
        local = httpx.get(proxy.url + "/healthz").json()["local"]["local"]
        idle = local["queue"]["waiting"] == 0 and not any(w["busy"] for w in local["workers"])
        if idle or time.time() > deadline:
            return idle, local
        time.sleep(0.1)


def test_n_beyond_what_the_local_tier_can_hold_is_the_requests_fault(proxy, chat):
    """``n`` = 40 against 2 sequences and a queue of 32 could never be served: a 400 naming
    the two knobs, and no sample is started."""
    with pytest.raises(openai.BadRequestError) as raised:
        chat.chat.completions.create(model="local", n=40, temperature=0.7, max_tokens=64,
                                     messages=[{"role": "user", "content": "Write a long story."}])
    message = raised.value.response.json()["error"]["message"]
    assert "n=40" in message and "runtime.parallel 2" in message and "runtime.queue 32" in message
    idle, local = _idle(proxy, within_s=0.0)
    assert idle, local


def test_a_refused_sample_of_n_stops_the_others(proxy, chat):
    """``n`` = 34 fills 2 sequences and a queue of 32 exactly, but one sequence is busy with
    another request: the sample that does not fit is refused, and the request fails (the
    cloud is down). The 33 accepted samples used to run to their end for nobody (tens of
    seconds of both workers); now they are cancelled."""
    import threading

    box = {}
    busy = threading.Thread(target=lambda: box.setdefault("other", chat.chat.completions.create(
        model="local", max_tokens=16, messages=[{"role": "user", "content": "Tell me about the sea. " * 40}])))
    busy.start()
    deadline = time.time() + 30
    while not any(w["busy"] for w in httpx.get(proxy.url + "/healthz").json()["local"]["local"]["workers"]):
        assert time.time() < deadline
        time.sleep(0.01)
    with pytest.raises(openai.APIStatusError) as raised:
        chat.chat.completions.create(model="local", n=34, temperature=0.7, max_tokens=64,
                                     messages=[{"role": "user", "content": "Write a long story."}])
    assert raised.value.status_code == 503 and "local_queue_full" in raised.value.response.json()["error"]["message"]
    busy.join(60)
    assert box["other"].choices[0].message.content
    idle, local = _idle(proxy)
    assert idle, local
