"""What a new user's break test found in error bodies, through the official SDKs against the
app under uvicorn (a real HTTP server is the tier):

- an unknown path or method under Anthropic's API (``GET /v1/messages``, the SDK's
  ``messages.batches``) was answered in OpenAI's shape; it is Anthropic's, and logged;
- the Responses API named the translated chat field (``messages``, ``messages[0].content``)
  for an empty ``input``; it names ``input``;
- an Anthropic user turn with ``content: []`` was a 400 about an empty ``messages`` list;
  it names ``messages.0.content``.
"""

from __future__ import annotations


import anthropic
import httpx
import openai
import pytest


from .app_thread import logged_row, serving_policy, sim_tiers
from .fake_openai import ANSWER, FakeOpenAI


@pytest.fixture(scope="module")
def served():
    upstream = FakeOpenAI().start()
    with serving_policy({
            "tiers": sim_tiers(upstream.url),
            "escalation": {"enabled": False}}) as (url, store):
        yield url, store
    upstream.stop()


def test_unknown_method_on_messages_is_anthropic_shaped_and_logged(served):
    url, store = served
    r = httpx.get(f"{url}/v1/messages", headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 405
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == "Unknown path GET /v1/messages."
    assert body["request_id"] == r.headers["request-id"] == r.headers["x-request-id"]
    assert logged_row(store, body["request_id"]).http_status == 405


def test_unsupported_anthropic_endpoint_raises_the_sdks_not_found(served):
    url, store = served
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.batches.create(requests=[{"custom_id": "a", "params": {
            "model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}}])
    assert err.value.body["type"] == "error"
    assert err.value.body["error"] == {"type": "not_found_error", "message": "Unknown path POST /v1/messages/batches."}
    assert logged_row(store, err.value.body["request_id"]).http_status == 404


def test_openai_unknown_path_keeps_openai_shape(served):
    url, _ = served
    r = httpx.post(f"{url}/v1/embeddings", json={"input": "x"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found" and "type" not in r.json()


@pytest.mark.parametrize("given,message,code", [
    ([], "Invalid value for 'input': List should have at least 1 item after validation, not 0.", "invalid_request"),
    ("", "'input' is empty; send the text to answer.", "empty_content"),
    ([{"role": "assistant", "content": "hello"}], "'input' must contain at least one user turn.", "invalid_request"),
])
def test_responses_errors_name_input(served, given, message, code):
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="auto", input=given)
    assert err.value.body == {"message": message, "type": "invalid_request_error", "param": "input", "code": code}


def test_responses_instructions_without_input_names_input(served):
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="auto", input=[], instructions="Be brief.")
    assert err.value.body["param"] == "input"
    assert err.value.body["message"] == "'input' must contain at least one user turn."


def test_responses_still_answers(served):
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    assert client.responses.create(model="auto", input="hi").output_text == ANSWER


def test_anthropic_empty_user_content_names_the_turn(served):
    url, _ = served
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model="auto", max_tokens=8, messages=[
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}, {"role": "user", "content": []}])
    assert err.value.body["error"]["message"] == "messages.2.content: a user turn needs at least one content block"
    # a final empty assistant turn (a prefill of nothing) is still served
    ok = client.messages.create(model="auto", max_tokens=8, messages=[
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": []}])
    assert ok.content[0].text == ANSWER


def test_responses_tool_choice_error_shows_the_responses_shape(served):
    url, _ = served
    r = httpx.post(f"{url}/v1/responses", json={"model": "auto", "input": "hi", "tool_choice": "banana"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "tool_choice"
    assert error["message"] == ("Invalid value for 'tool_choice': expected auto, none, required or "
                                "{'type': 'function', 'name': ...}")


@pytest.mark.parametrize("content", [[], [{"type": "text", "text": ""}],
                                     [{"type": "text", "text": "  "}, {"type": "text", "text": "\n"}]])
def test_an_empty_parts_list_is_empty_content(served, content):
    """The last user turn as a list of parts with no text was answered (the empty check
    skipped lists); it is the same 400 ``empty_content`` as an empty string."""
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": content}])
    assert err.value.body == {"message": "'messages[0].content' is empty; send the text to answer.",
                              "type": "invalid_request_error", "param": "messages[0].content", "code": "empty_content"}


def test_an_image_only_turn_is_not_empty():
    from router.request.parse import parse_chat_request

    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    chat = parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": image}]})
    assert chat.messages[0].content[0]["type"] == "image_url"
