"""Rules, overlays, aliases and the decision they feed: pure functions, no server, no model."""

import json

import pytest

from router.request.identity import CallerIndex, bearer_token, rule_headers
from router.routing.threshold import threshold_for_cloud_share
from router.routing.decide import decide, needs_score
from router.errors import ModelNotFoundError, TierForbiddenError, TierUnavailableError
from router.policy import hash_api_key, policy_from_dict
from router.routing.rules import RequestFacts, constraints_for, evaluate_rules, facts_needed, rule_matches
from router.scoring.artifact import builtin_artifact_dir


def _policy(rules=(), *, key="sk-test", keys=(), overlays=None, aliases=None, extra_tiers=None, **more):
    tiers = {"local": {"model": "slm-local/smollm2"}, "cloud": {"model": "openai/gpt-4o-mini", "api_key": key}}
    tiers.update(extra_tiers or {})
    return policy_from_dict({
        "tiers": tiers,
        "routing": {"classifier": {"threshold": 0.5}, **more.pop("routing", {})},
        "rules": list(rules), "api_keys": list(keys), "overlays": overlays or {}, "aliases": aliases or {}, **more,
    })


def _rule(name, action, **match):
    return {"name": name, "match": match, "action": action}


def _route(policy, facts, score=0.9, overlay=None, overlay_name=None):
    c = constraints_for(policy, evaluate_rules(policy.rules, facts), overlay, overlay_name)
    return decide(facts.requested_model, score if needs_score(facts.requested_model, policy, c) else None, policy, c)


@pytest.mark.parametrize("match,facts,expected", [
    ({"keys": ["alice"]}, dict(key_name="alice"), True),
    ({"keys": ["alice"]}, dict(key_name="bob"), False),
    ({"keys": ["alice"]}, dict(), False),  # anonymous caller
    ({"groups": ["private"]}, dict(key_group="private"), True),
    ({"groups": ["private"]}, dict(key_group="staff"), False),
    ({"headers": {"X-Tenant": "eu(-.*)?"}}, dict(headers={"x-tenant": "eu-west"}), True),
    ({"headers": {"X-Tenant": "eu(-.*)?"}}, dict(headers={"x-tenant": "us-eu"}), False),  # whole value
    ({"headers": {"X-Tenant": "eu"}}, dict(headers={}), False),
    ({"metadata": {"purpose": "eval|test"}}, dict(metadata={"purpose": "eval"}), True),
    ({"metadata": {"purpose": "eval|test"}}, dict(metadata={"purpose": "prod"}), False),
    ({"models": ["gpt-4o"]}, dict(requested_model="gpt-4o"), True),
    ({"models": ["gpt-4o"]}, dict(requested_model="auto"), False),
    ({"last_user_regex": r"(?i)\bpassword\b"}, dict(last_user_text="my PASSWORD is x"), True),
    ({"last_user_regex": r"(?i)\bpassword\b"}, dict(last_user_text="passwords"), False),
    ({"min_prompt_tokens": 100}, dict(prompt_tokens=100), True),
    ({"min_prompt_tokens": 100}, dict(prompt_tokens=99), False),
    ({"max_prompt_tokens": 10}, dict(prompt_tokens=11), False),
    ({"min_prompt_tokens": 1}, dict(), False),  # not computed: does not hold
    ({"needs": ["vision", "tools"]}, dict(needs=frozenset({"tools"})), True),
    ({"needs": ["json"]}, dict(needs=frozenset({"tools"})), False),
    ({"languages": ["fr", "de"]}, dict(language="fr"), True),
    ({"languages": ["fr"]}, dict(language="en"), False),
    ({}, dict(), True),  # empty match: every request
    ({"groups": ["private"], "needs": ["vision"]}, dict(key_group="private"), False),  # AND
])
def test_each_condition_kind(match, facts, expected):
    policy = _policy(keys=[{"name": "alice", "sha256": "a" * 64, "group": "private"},
                           {"name": "bob", "sha256": "b" * 64, "group": "staff"}],
                     rules=[_rule("r", {"forbid": ["cloud"]}, **match)])
    base = dict(requested_model="auto")
    base.update(facts)
    assert rule_matches(policy.rules[0], RequestFacts(**base)) is expected


def test_force_tier_skips_classifier_and_escalation():
    p = _policy([_rule("eval", {"tier": "local"}, metadata={"purpose": "eval"})])
    facts = RequestFacts("auto", metadata={"purpose": "eval"})
    c = constraints_for(p, evaluate_rules(p.rules, facts))
    assert not needs_score("auto", p, c)
    d = decide("auto", None, p, c)
    assert d.tier == "local" and d.score is None and d.escalation is None
    assert d.rules == ("eval",) and "rule eval forces local" in d.reason


def test_forbid_cloud_routes_local_and_keeps_escalation_checked():
    p = _policy([_rule("private", {"forbid": ["cloud"]}, groups=["private"])],
                keys=[{"name": "hr", "sha256": "c" * 64, "group": "private"}])
    d = _route(p, RequestFacts("auto", key_name="hr", key_group="private"), score=0.99)
    assert d.tier == "local" and d.score is None  # not scored: only one tier allowed
    assert d.forbidden == {"cloud": "rule private"} and "cloud forbidden (rule private)" in d.reason
    assert d.escalation is not None  # the answer is still checked; the pipeline never escalates to cloud


def test_forbid_named_tier_is_403_and_all_forbidden_is_403():
    p = _policy([_rule("private", {"forbid": ["cloud"]})])
    with pytest.raises(TierForbiddenError) as e:
        _route(p, RequestFacts("cloud"))
    assert e.value.status_code == 403 and e.value.code == "tier_forbidden" and "rule private" in e.value.message
    p2 = _policy([_rule("nothing", {"forbid": ["cloud", "local"]})])
    with pytest.raises(TierForbiddenError):
        _route(p2, RequestFacts("auto"))


def test_threshold_override_and_disable_escalation():
    p = _policy([_rule("code", {"threshold": 0.1}, last_user_regex="```"),
                 _rule("batch", {"disable_escalation": True}, headers={"x-priority": "batch"})])
    d = _route(p, RequestFacts("auto", last_user_text="```py\nx=1```"), score=0.2)
    assert d.tier == "cloud" and d.threshold == 0.1 and "(rule code)" in d.reason
    assert _route(p, RequestFacts("auto", last_user_text="hi"), score=0.2).tier == "local"
    d = _route(p, RequestFacts("auto", headers={"x-priority": "batch"}), score=0.2)
    assert d.tier == "local" and d.escalation.enabled is False and "escalation off by rule batch" in d.reason


def test_precedence_first_tier_and_threshold_win_forbid_always_wins():
    p = _policy([
        _rule("first", {"tier": "local", "threshold": 0.2}, groups=["staff"]),
        _rule("second", {"tier": "cloud", "threshold": 0.9}),
        _rule("third", {"forbid": ["premium"]}),
    ], keys=[{"name": "k", "sha256": "d" * 64, "group": "staff"}],
        extra_tiers={"premium": {"model": "openai/gpt-4o", "api_key": "x"}})
    out = evaluate_rules(p.rules, RequestFacts("auto", key_name="k", key_group="staff"))
    assert out.matched == ("first", "second", "third")
    assert (out.tier, out.tier_rule, out.threshold, out.threshold_rule) == ("local", "first", 0.2, "first")
    out = evaluate_rules(p.rules, RequestFacts("auto"))
    assert (out.tier, out.tier_rule, out.threshold) == ("cloud", "second", 0.9)

    # A forced tier that another rule forbids is dropped; the classifier decides among the rest.
    p2 = _policy([_rule("long", {"tier": "cloud"}, min_prompt_tokens=10),
                  _rule("private", {"forbid": ["cloud"]}, groups=["private"])],
                 keys=[{"name": "hr", "sha256": "e" * 64, "group": "private"}])
    d = _route(p2, RequestFacts("auto", prompt_tokens=50, key_name="hr", key_group="private"))
    assert d.tier == "local" and d.rules == ("long", "private")
    assert "rule long forces cloud but rule private forbids it" in d.reason


def test_overlay_threshold_allowed_tiers_escalation_and_rule_beats_overlay():
    p = _policy([_rule("code", {"threshold": 0.95}, last_user_regex="```")],
                keys=[{"name": "k", "sha256": "f" * 64, "overlay": "strict"}],
                overlays={"strict": {"threshold": 0.2, "escalation": {"min_mean_logprob": -0.3}},
                          "local-only": {"allowed_tiers": ["local"], "escalation": {"enabled": False}}})
    ov = p.overlays["strict"]
    d = _route(p, RequestFacts("auto"), score=0.3, overlay=ov, overlay_name="strict")
    assert d.tier == "cloud" and d.threshold == 0.2 and "(overlay strict)" in d.reason
    d = _route(p, RequestFacts("auto"), score=0.1, overlay=ov, overlay_name="strict")
    assert d.tier == "local" and d.escalation.min_mean_logprob == -0.3 and d.escalation.enabled
    d = _route(p, RequestFacts("auto", last_user_text="```x```"), score=0.3, overlay=ov, overlay_name="strict")
    assert d.tier == "local" and d.threshold == 0.95  # the rule's threshold beats the overlay's
    lo = p.overlays["local-only"]
    d = _route(p, RequestFacts("auto"), score=0.99, overlay=lo, overlay_name="local-only")
    assert d.tier == "local" and d.forbidden == {"cloud": "overlay local-only"} and not d.escalation.enabled
    with pytest.raises(TierForbiddenError):
        _route(p, RequestFacts("cloud"), overlay=lo, overlay_name="local-only")


def test_aliases_map_to_auto_or_a_tier():
    p = _policy(aliases={"gpt-4o": "auto", "fast": "local"})
    d = decide("gpt-4o", 0.7, p)
    assert d.tier == "cloud" and d.model == "auto" and d.score == 0.7
    d = decide("fast", None, p)
    assert d.tier == "local" and d.model == "local" and "alias fast" in d.reason and d.escalation is None
    assert not needs_score("fast", p)
    with pytest.raises(ModelNotFoundError) as e:
        decide("gpt-5", 0.1, p)
    assert "gpt-4o" in e.value.message and "fast" in e.value.message
    # Rules see the model the client asked for, before aliasing.
    p2 = _policy([_rule("legacy", {"tier": "local"}, models=["gpt-4o"])], aliases={"gpt-4o": "auto"})
    assert _route(p2, RequestFacts("gpt-4o")).tier == "local"


def test_forbidden_local_with_cloud_down_is_unavailable_not_degraded():
    p = _policy([_rule("cloud-only", {"forbid": ["local"]})], key="")
    with pytest.raises(TierUnavailableError, match="forbidden"):
        _route(p, RequestFacts("auto"))


def test_facts_needed():
    p = _policy([_rule("a", {"tier": "cloud"}, languages=["fr"]), _rule("b", {"tier": "cloud"}, max_prompt_tokens=5)])
    assert facts_needed(p.rules) == {"language", "prompt_tokens"}
    assert facts_needed(_policy().rules) == frozenset()


def test_caller_identification_by_hashed_key():
    p = _policy(keys=[{"name": "hr", "sha256": hash_api_key("sk-hr"), "group": "private", "overlay": "o"},
                      {"name": "env", "key": "sk-from-env"},
                      {"name": "off", "key": ""}],
                overlays={"o": {"threshold": 0.1}})
    assert p.api_keys[1].key is None and p.api_keys[1].sha256 == hash_api_key("sk-from-env")  # not kept in clear
    assert not p.api_keys[2].enabled
    idx = CallerIndex(p)
    hr = idx.identify("Bearer sk-hr")
    assert (hr.name, hr.group, hr.overlay_name, hr.overlay.threshold) == ("hr", "private", "o", 0.1)
    assert idx.identify("bearer  sk-from-env ").name == "env"
    assert idx.identify("Bearer nope") is None and idx.identify(None) is None and idx.identify("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert rule_headers({"Authorization": "Bearer x", "X-Tenant": "eu"}) == {"x-tenant": "eu"}


def test_threshold_for_cloud_share_reads_the_card():
    card = json.loads((builtin_artifact_dir() / "card.json").read_text())
    q = card["score_quantiles"]
    assert threshold_for_cloud_share(q, 0.5) == pytest.approx(float(q["0.5"]))
    assert threshold_for_cloud_share(q, 0.25) == pytest.approx((float(q["0.2"]) + float(q["0.3"])) / 2)
    assert threshold_for_cloud_share(q, 0.0) == 1.0 and threshold_for_cloud_share(q, 1.0) == 0.0
    shares = [i / 20 for i in range(21)]
    ts = [threshold_for_cloud_share(q, s) for s in shares]
    assert all(a >= b for a, b in zip(ts, ts[1:]))  # more cloud share, lower threshold
    with pytest.raises(ValueError):
        threshold_for_cloud_share({"meaning": "x"}, 0.5)


@pytest.mark.slow
def test_router_uses_target_cloud_share_threshold_with_the_real_classifier():
    """Router.route scores with the shipped MiniLM classifier and compares with the
    threshold read from its card for the policy's target cloud share."""
    import asyncio

    from router.pipeline import Router
    from router.request.parse import parse_chat_request
    from router.store.sqlite import SQLiteStore

    p = policy_from_dict({"routing": {"classifier": {"target_cloud_share": 0.2}}})
    router = Router(p, SQLiteStore(":memory:"))
    card = json.loads((builtin_artifact_dir() / "card.json").read_text())
    expected = threshold_for_cloud_share(card["score_quantiles"], 0.2)
    request = parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?"}]})
    routing = asyncio.run(router.route(request, {"authorization": "Bearer unknown"}))
    d = routing.decision
    assert d.threshold == pytest.approx(expected) and 0 <= d.score <= 1
    assert d.tier == ("cloud" if d.score >= expected else "local") or d.degraded
    assert routing.caller is None and f"threshold {expected:.3f}" in d.reason
