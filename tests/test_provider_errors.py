"""A provider's error reaches the client as a message about the request, not about litellm:
no Python traceback of a custom provider, no advice on litellm settings the client cannot
change (``drop_params``), no banners; the status stays the provider's class of error."""

from __future__ import annotations

import asyncio

import pytest

from router.policy import policy_from_dict
from router.providers.provider_text import provider_message
from router.providers.tier_client import TierCallError, TierClient

from .scripted_upstream import ScriptedUpstream


def test_provider_message_keeps_the_first_part_and_drops_litellm_additions():
    traceback_text = ("litellm.APIConnectionError: kaboom inside provider\nTraceback (most recent call last):\n"
                      '  File "x.py", line 1, in f\nValueError: kaboom inside provider\n\nThis looks like a bug in LiteLLM')
    assert provider_message(traceback_text) == "litellm.APIConnectionError: kaboom inside provider"
    advice = ("litellm.UnsupportedParamsError: openai does not support parameters: ['reasoning_effort'], for "
              "model=gpt-4o-mini. To drop these, set `litellm.drop_params=True` or for proxy:\n\n`litellm_settings:\n"
              " drop_params: true`\n. \n If you want to use these params dynamically send allowed_openai_params")
    assert provider_message(advice) == ("litellm.UnsupportedParamsError: openai does not support parameters: "
                                        "['reasoning_effort'], for model=gpt-4o-mini.")
    long = "x" * 2000
    cut = provider_message(long)
    assert len(cut) == 600 and cut.endswith("…")
    assert provider_message("plain upstream error") == "plain upstream error"


def _policy(url: str):
    return policy_from_dict({"tiers": {
        "local": {"model": "openai/local", "api_key": "sk-test", "api_base": url,
                  "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": url}}})


def test_an_unsupported_parameter_is_a_400_that_names_it_without_litellm_advice():
    upstream = ScriptedUpstream().start()
    try:
        client = TierClient(_policy(upstream.url))
        with pytest.raises(TierCallError) as caught:
            asyncio.run(client.complete("cloud", [{"role": "user", "content": "hi"}], {"reasoning_effort": "low"}))
        err = caught.value
        assert err.status == 400 and err.client_fault
        assert "reasoning_effort" in str(err) and "gpt-4o-mini" in str(err)
        assert "drop_params" not in str(err) and "litellm_settings" not in str(err)
    finally:
        upstream.stop()


def test_a_custom_provider_crash_reaches_the_client_without_its_traceback():
    import litellm
    from litellm.llms.custom_llm import CustomLLM

    class Broken(CustomLLM):
        async def acompletion(self, *args, **kwargs):
            raise ValueError("the provider broke")

    upstream = ScriptedUpstream().start()
    policy = policy_from_dict({"tiers": {
        "local": {"model": "openai/local", "api_key": "sk-test", "api_base": upstream.url,
                  "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
        "cloud": {"model": "broken-test/x", "price": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}}})
    client = TierClient(policy)
    client._configure()
    saved = list(litellm.custom_provider_map)
    litellm.custom_provider_map = saved + [{"provider": "broken-test", "custom_handler": Broken()}]
    try:
        with pytest.raises(TierCallError) as caught:
            asyncio.run(client.complete("cloud", [{"role": "user", "content": "hi"}], {}))
        text = str(caught.value)
        assert "the provider broke" in text
        assert "Traceback" not in text and 'File "' not in text and "bug in LiteLLM" not in text
        assert caught.value.status >= 500
    finally:
        litellm.custom_provider_map = saved
        upstream.stop()
