"""The stages' pure parts without a server, a model or a network: the cascade's rules
(checked? measured? kept?), the fallback tier, the one parse of the caller's identity, the
rule facts the log keeps, and the answer -> fallback -> attempts layers over an in-memory
tier client."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest

from router.cascade.cascade import caps_share, checks, kept_because, may_escalate, measures_apply
from router.cascade.verdict import Verdict
from router.errors import BudgetExceededError, TierUnavailableError, UpstreamError
from router.pipeline import Router
from router.pipeline.fallback import fallback_tier
from router.policy import hash_api_key, policy_from_dict
from router.providers.tier_client import CallResult, TierCallError
from router.request.api_keys import api_key_id
from router.request.identity import CallerIndex, Identity
from router.request.parse import parse_chat_request
from router.request.tenant import tenant_from_headers
from router.routing.decide import decide
from router.routing.rules import RequestFacts, facts_from_log, logged_facts
from router.store.sqlite import SQLiteStore


def _policy(cloud_key: str = "sk-test", **extra):
    return policy_from_dict({
        "tiers": {"local": {"model": "openai/local-fake", "api_base": "http://127.0.0.1:9/v1", "max_retries": 1},
                  "cloud": {"model": "openai/gpt-4o-mini", "api_key": cloud_key, "max_retries": 2}},
        "routing": {"classifier": {"threshold": 0.5}},
        **extra,
    })


FAIL_HARD = Verdict(True, "empty local answer")          # a hard failure: no measure can change it
FAIL_COMBINER = Verdict(True, "p_correct 0.2 < 0.5", 0.2)  # a combiner's verdict: measures may change it
PASS = Verdict(False, "mean logprob -0.10 ok")


def test_cascade_rules_decide_what_is_checked_measured_and_kept():
    policy = _policy()
    routed = decide("auto", 0.1, policy)
    assert checks(policy, routed, "local") and not checks(policy, routed, "cloud")
    forced = decide("local", None, policy)
    assert not checks(policy, forced, "local")  # a forced tier is never checked
    assert may_escalate(policy, routed)
    # measures run on a whole answer only, and not when a hard failure already decided
    assert measures_apply(policy, routed, PASS, whole=True)
    assert measures_apply(policy, routed, FAIL_COMBINER, whole=True)
    assert not measures_apply(policy, routed, FAIL_HARD, whole=True)
    assert not measures_apply(policy, routed, PASS, whole=False)  # a streamed prefix
    assert kept_because(policy, routed) is None
    # the cloud forbidden by a rule: no escalation, nothing measured, kept without degrading
    forbidden = replace(routed, forbidden={"cloud": "rule private"})
    assert not may_escalate(policy, forbidden) and not measures_apply(policy, forbidden, PASS, whole=True)
    assert kept_because(policy, forbidden) == ("cloud forbidden (rule private), kept local answer", False)
    # the cloud unavailable: kept, degraded
    keyless = _policy(cloud_key="")
    assert kept_because(keyless, routed) == ("cloud unavailable, kept local answer", True)
    assert not measures_apply(keyless, routed, PASS, whole=True)


def test_share_is_counted_only_when_some_setting_caps_it():
    assert not caps_share(_policy())
    assert caps_share(_policy(escalation={"max_share": 0.3}))
    capped_rule = {"name": "r", "match": {"models": ["auto"]}, "action": {"escalation": {"max_share": 0.1}}}
    assert caps_share(_policy(rules=[capped_rule]))


def test_fallback_tier():
    policy = _policy()
    d = decide("auto", 0.9, policy)
    assert fallback_tier(policy, "cloud", d) == "local"
    assert fallback_tier(policy, "local", d) == "cloud"
    assert fallback_tier(policy, "local", replace(d, forbidden={"cloud": "overlay x"})) is None
    assert fallback_tier(_policy(cloud_key=""), "local", d) is None  # no key: nothing to fall back to
    strict = _policy(routing={"classifier": {"threshold": 0.5}, "on_cloud_unavailable": "error"})
    assert fallback_tier(strict, "cloud", d) is None


@pytest.mark.parametrize("authorization", [None, "", "Bearer sk-one", "bearer  sk-one ", "sk-one", "Basic abc", "Bearer"])
def test_identity_is_one_parse_of_the_credential_headers(authorization):
    policy = _policy(api_keys=[{"name": "one", "sha256": hash_api_key("sk-one"), "group": "g"}])
    headers = {"cache-control": "no-store"} | ({"authorization": authorization} if authorization is not None else {})
    identity = Identity.parse(headers, CallerIndex(policy))
    assert identity.tenant == tenant_from_headers(authorization, "no-store")
    assert identity.api_key_id == api_key_id(authorization)
    assert identity.caller == CallerIndex(policy).identify(authorization)
    assert identity.presented == bool(authorization)
    assert Identity.parse({"api-key": "sk-two"}).api_key_id == api_key_id("sk-two")  # Azure-style header


def test_log_keeps_only_the_facts_rules_read():
    policy = _policy(rules=[
        {"name": "h", "match": {"headers": {"X-Route": "premium"}}, "action": {"tier": "cloud"}},
        {"name": "m", "match": {"metadata": {"team": "ops"}}, "action": {"tier": "local"}},
    ])
    facts = RequestFacts(requested_model="auto", last_user_text="secret text", needs=frozenset({"tools"}),
                         headers={"x-route": "premium", "user-agent": "sdk"}, metadata={"team": "ops", "other": "x"},
                         key_name="one", language=None, prompt_tokens=12)
    logged = logged_facts(policy.rules, facts)
    assert logged == {"headers": {"x-route": "premium"}, "metadata": {"team": "ops"}, "prompt_tokens": 12}
    back = facts_from_log(logged, "auto", frozenset({"tools"}), "one", None)
    assert back.headers == {"x-route": "premium"} and back.metadata == {"team": "ops"} and back.last_user_text == ""
    with_regex = _policy(rules=[{"name": "r", "match": {"last_user_regex": "secret"}, "action": {"tier": "local"}}])
    assert logged_facts(with_regex.rules, facts)["last_user_text"] == "secret text"


class MemoryTiers:
    """An in-memory tier client: each tier answers from a list of outcomes (a text, or a
    status for a TierCallError), in order, and records the calls it got."""

    def __init__(self, outcomes: dict[str, list]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str, dict]] = []

    def warm_up(self) -> None:
        pass

    async def complete(self, tier, messages, params) -> CallResult:
        self.calls.append((tier, params))
        outcome = self.outcomes[tier].pop(0)
        if isinstance(outcome, int):
            raise TierCallError(tier, outcome, f"{tier} failed with {outcome}")
        return CallResult(response={"choices": [{"index": 0, "message": {"role": "assistant", "content": outcome},
                                                 "finish_reason": "stop"}]},
                          text=outcome, finish_reason="stop", prompt_tokens=3, completion_tokens=2, latency_ms=1.0,
                          token_logprobs=[-0.1, -0.1])


class FixedScorer:
    def __init__(self, p: float) -> None:
        self.p = p

    def score(self, texts):
        return [self.p for _ in texts]


def _answer(policy, tiers, p: float, body: bytes = b'{"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}'):
    router = Router(policy, SQLiteStore(":memory:"), scorer=FixedScorer(p), client=tiers)
    record = router.new_record("r1", time.time())
    request = parse_chat_request(body)

    async def go():
        try:
            return await router.complete(request, record)
        finally:
            await router.close()

    return asyncio.run(go()), record


def test_layers_retry_then_fall_back_and_log_every_attempt():
    tiers = MemoryTiers({"cloud": [503, 503, 503], "local": ["Hello."]})
    answer, record = _answer(_policy(), tiers, p=0.9)
    assert answer.headers["x-router-tier"] == "local" and answer.headers["x-router-degraded"] == "true"
    assert "cloud failed (503), fell back to local" in record.reason
    assert [(c.tier, c.purpose, c.status) for c in record.calls] == [
        ("cloud", "primary", "error"), ("cloud", "retry", "error"), ("cloud", "retry", "error"),
        ("local", "fallback", "ok")]
    assert record.calls[-1].completion_tokens == 2 and all(c.completion_tokens == 0 for c in record.calls[:-1])


def test_when_the_fallback_fails_too_the_upstream_error_reaches_the_client():
    tiers = MemoryTiers({"local": [500, 500], "cloud": [502, 502, 502]})
    with pytest.raises(UpstreamError):
        _answer(_policy(), tiers, p=0.1)
    assert [t for t, _ in tiers.calls] == ["local", "local", "cloud", "cloud", "cloud"]


TOOLS_BODY = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [
    {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]}).encode()
IMAGE_BODY = json.dumps({"model": "auto", "messages": [{"role": "user", "content": [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}).encode()


@pytest.mark.parametrize("body, need", [(TOOLS_BODY, "needs tools"), (IMAGE_BODY, "needs vision")])
def test_a_fallback_tier_that_cannot_serve_the_request_is_never_called(body, need):
    """The cloud is down and the request has tools or an image: the local tier (no tools, no
    vision) must not answer it as if they were not there; the client gets the cloud's
    failure, saying why nothing answered instead, and the log says the same."""
    tiers = MemoryTiers({"cloud": [503, 503, 503], "local": ["I ignored your tools."]})
    with pytest.raises(TierUnavailableError) as raised:
        _answer(_policy(), tiers, p=0.1, body=body)  # a low score: only the capability sends it to the cloud
    assert [t for t, _ in tiers.calls] == ["cloud", "cloud", "cloud"]
    assert f"The fallback tier 'local' cannot serve this request ({need})" in raised.value.message


def test_a_spent_budget_does_not_send_an_image_to_the_local_tier():
    policy = _policy(budgets={"enabled": True, "default": {"daily_usd": 0.0}, "on_exhausted": "local"})
    tiers = MemoryTiers({"cloud": ["unused"], "local": ["I cannot see images."]})
    with pytest.raises(BudgetExceededError) as raised:
        _answer(policy, tiers, p=0.1, body=IMAGE_BODY)
    assert tiers.calls == [] and raised.value.status_code == 429
    assert "cannot serve this request (needs vision)" in raised.value.message
    answer, _ = _answer(policy, MemoryTiers({"cloud": ["unused"], "local": ["Hello."]}), p=0.9)
    assert answer.headers["x-router-tier"] == "local"  # a plain request still falls back to local


def test_capability_errors_say_which_tier_could_serve_and_why_it_may_not():
    """The client named the cloud tier, which has no key: the local tier stands in but has no
    tools, and the error says the cloud could serve it if it had its key (before, it only
    named the local tier, which the client never asked for)."""
    from router.errors import InvalidRequestError
    from router.request.features import Features
    from router.routing.capabilities import apply_capabilities

    keyless = _policy(cloud_key="", tiers={
        "local": {"model": "openai/local-fake", "api_base": "http://127.0.0.1:9/v1",
                  "capabilities": {"context_window": 1000, "vision": False, "tools": False, "json_schema": True}},
        "cloud": {"model": "openai/gpt-4o-mini", "api_key": ""}})
    forced = decide("cloud", None, keyless)
    assert forced.tier == "local" and forced.degraded
    with pytest.raises(InvalidRequestError) as raised:
        apply_capabilities(forced, Features.sized(frozenset({"tools"}), 40, 1), keyless, forced=True)
    assert raised.value.message == ("Tier 'local' cannot serve this request (needs tools). "
                                    "Tier 'cloud' could, but it is unavailable: no API key.")
    assert raised.value.code == "unsupported_capability"
    # too long: the message gives the answer's share of the window too (900 + 250 > 1000)
    with pytest.raises(InvalidRequestError) as raised:
        apply_capabilities(decide("auto", 0.1, keyless), Features.sized(frozenset(), 3600, None), keyless, forced=False,
                           max_completion_tokens=600)
    assert raised.value.code == "context_length_exceeded"
    assert raised.value.message.startswith("Tier 'local' cannot serve this request (about 900 prompt tokens plus 250 "
                                           "for the answer against a context window of 1000). No allowed tier")
