"""The deprecated ``functions`` / ``function_call`` pair is what ``tools`` / ``tool_choice``
are (README, Supported request fields): a new user's break test found ``functions`` with a
tool-less tier answered 200 as plain text (no capability check) and any shape accepted.
Now its shape is checked (400 naming the field) and it needs a tier with tool support: through
the app, a tool-less local tier is skipped for the cloud tier under ``auto`` and refused when named."""

from __future__ import annotations


import openai
import pytest

from router.api.app import create_app
from router.errors import InvalidRequestError
from router.pipeline import Router
from router.policy import Policy
from router.request.features import extract_features
from router.request.parse import parse_chat_request
from router.store.sqlite import SQLiteStore

from .app_thread import serving, sim_tiers
from .fake_openai import FakeOpenAI

ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.mark.parametrize("extra,param", [
    ({"functions": "x"}, "functions"),
    ({"functions": [{}]}, "functions[0]"),
    ({"functions": [{"name": "bad name"}]}, "functions[0].name"),
    ({"functions": [WEATHER, WEATHER]}, "functions[1].name"),
    ({"functions": [{"name": "f", "parameters": 3}]}, "functions[0].parameters"),
    ({"function_call": 5}, "function_call"),
    ({"functions": [WEATHER], "function_call": {"name": "other"}}, "function_call.name"),
])
def test_bad_functions_are_400_naming_the_field(extra, param):
    with pytest.raises(InvalidRequestError) as err:
        parse_chat_request({"model": "auto", "messages": ASK, **extra})
    assert err.value.param == param
    named = "function_call" if param == "function_call.name" else param  # that message names the pair's field
    assert err.value.message.startswith(f"Invalid value for '{named}'")


def test_functions_need_tools():
    chat = parse_chat_request({"model": "auto", "messages": ASK, "functions": [WEATHER],
                               "function_call": {"name": "get_weather"}})
    assert "tools" in extract_features(chat).needs
    assert "tools" not in extract_features(parse_chat_request({"model": "auto", "messages": ASK})).needs


class _Easy:
    def score(self, texts):
        return [0.0 for _ in texts]


@pytest.fixture(scope="module")
def served():
    local, cloud = FakeOpenAI().start(), FakeOpenAI().start()
    policy = Policy.model_validate({
        "tiers": sim_tiers(local.url, cloud.url, capabilities={"tools": False}),
        "escalation": {"enabled": False}})
    app = create_app(policy, router=Router(policy, SQLiteStore(":memory:"), scorer=_Easy()), warm_up=False)
    with serving(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    local.stop()
    cloud.stop()


def test_auto_moves_functions_to_a_tier_with_tools(served):
    raw = served.chat.completions.with_raw_response.create(model="auto", messages=ASK, functions=[WEATHER])
    assert raw.headers["x-router-tier"] == "cloud"
    plain = served.chat.completions.with_raw_response.create(model="auto", messages=ASK)
    assert plain.headers["x-router-tier"] == "local"  # the easy request without functions stays local


def test_naming_a_tool_less_tier_with_functions_is_refused(served):
    with pytest.raises(openai.BadRequestError) as err:
        served.chat.completions.create(model="local", messages=ASK, functions=[WEATHER])
    assert err.value.body["code"] == "unsupported_capability"
    assert "needs tools" in err.value.body["message"]
