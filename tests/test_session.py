"""The session decision (pure) and its prompt-cache formula."""

from __future__ import annotations

import pytest

from router.policy import Policy, SessionConfig
from router.routing.session import SessionState, SwitchCost, choose_tier, fingerprint, next_state, session_id, state_key

BOTH = {"local", "cloud"}


def _choose(per_turn, previous, cost=None, allowed=BOTH, **cfg):
    return choose_tier(per_turn, previous, SessionConfig(**cfg), "local", "cloud", allowed, cost)


def test_ids_from_header_or_user_and_fingerprint():
    first = [{"role": "system", "content": "S"}, {"role": "user", "content": "hello"}]
    later = first + [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "more"}]
    other = [{"role": "system", "content": "S"}, {"role": "user", "content": "another topic"}]
    assert session_id("conv-1", "u", first) == "conv-1"
    assert session_id(None, "alice", first) == session_id(None, "alice", later) != session_id(None, "alice", other)
    assert session_id(None, "alice", first) != session_id(None, "bob", first)
    assert session_id(None, None, first) is None and session_id("  ", None, first) is None
    assert session_id("x" * 500, None, first).startswith("h-") and "alice" not in session_id(None, "alice", first)
    assert fingerprint(first) == fingerprint(later)
    assert state_key("t1", "conv-1") != state_key("t2", "conv-1")


def test_sticky_keeps_the_cloud_and_upgrades_only():
    on_cloud, on_local = SessionState("cloud"), SessionState("local")
    assert _choose("local", None).tier == "local"  # a new session routes per turn
    held = _choose("local", on_cloud)
    assert held.tier == "cloud" and held.held and "allow_downgrade off" in held.reason
    assert _choose("cloud", on_local) == _choose("cloud", on_local, allow_downgrade=True)
    assert _choose("cloud", on_local).tier == "cloud" and not _choose("cloud", on_local).held
    assert _choose("cloud", on_local, allow_upgrade=False).tier == "local"
    assert _choose("local", on_cloud, mode="per_turn").tier == "local"
    assert _choose("local", on_cloud, allow_downgrade=True).tier == "local"
    # a kept tier must still be allowed
    assert _choose("local", on_cloud, allowed={"local"}).tier == "local"


def test_max_switches_freezes_the_session():
    assert _choose("cloud", SessionState("local", turns=5, switches=2), max_switches=2).tier == "local"
    assert _choose("cloud", SessionState("local", turns=5, switches=1), max_switches=2).tier == "cloud"


def test_leaving_the_cloud_counts_the_cached_prefix():
    on_cloud = SessionState("cloud", cached_prompt_tokens=5000)
    assert _choose("local", on_cloud, SwitchCost(0.004, 0.0135), allow_downgrade=True).tier == "cloud"
    assert _choose("local", on_cloud, SwitchCost(0.02, 0.0135), allow_downgrade=True).tier == "local"
    assert "cached prefix" in _choose("local", on_cloud, SwitchCost(0.004, 0.0135), allow_downgrade=True).reason


def test_next_state_counts_switches():
    s = next_state(None, "local", 10, 5, 0)
    s = next_state(s, "cloud", 20, 5, 8)
    s = next_state(s, "cloud", 30, 5, 16)
    assert (s.tier, s.turns, s.switches, s.cached_prompt_tokens) == ("cloud", 3, 1, 16)
    assert SessionState.from_json(s.to_json()) == s
    with pytest.raises(ValueError):
        SessionState.from_json(b"[]")


def test_switch_cost_uses_litellms_prices():
    from router.routing.session_keeper import SessionKeeper
    from router.request.parse import parse_chat_request
    from router.state.memory import MemoryState

    import litellm

    policy = Policy.model_validate({"tiers": {
        "local": {"model": "slm-local/smollm2", "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
        "cloud": {"model": "anthropic/claude-sonnet-4-5", "api_key": "k"}}})
    keeper = SessionKeeper(policy, MemoryState())
    chat = parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": "word " * 400}]})
    cost = keeper._switch_cost(chat, SessionState("cloud", cached_prompt_tokens=300, completion_tokens=10))
    price = litellm.model_cost["claude-sonnet-4-5"]
    per_token_loss = price["input_cost_per_token"] - price["cache_read_input_token_cost"]
    assert cost.lost_cache_usd == pytest.approx(300 * per_token_loss)
    assert cost.saving_usd > 0


def test_keeper_keeps_the_cloud_when_leaving_would_waste_the_cache():
    import asyncio

    from router.routing.decide import Decision
    from router.store.records import CallRecord, RequestRecord
    from router.request.parse import parse_chat_request
    from router.routing.session_keeper import SessionKeeper
    from router.state.memory import MemoryState

    policy = Policy.model_validate({
        "tiers": {"local": {"model": "slm-local/smollm2", "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                  "cloud": {"model": "anthropic/claude-sonnet-4-5", "api_key": "k"}},
        "routing": {"session": {"allow_downgrade": True}}})
    keeper = SessionKeeper(policy, MemoryState())
    long_context = [{"role": "system", "content": "context " * 3000}]
    chat = parse_chat_request({"model": "auto", "user": "u1",
                               "messages": long_context + [{"role": "user", "content": "ok, thanks"}]})
    routed_local = Decision("local", 0.1, "score 0.100 < threshold 0.500", model="auto")

    async def turn(cached: int) -> Decision:
        sid = (await keeper.steer(routed_local, chat, {"x-session-id": f"s{cached}"}, "t"))[1].id
        record = RequestRecord(id="r", ts=0.0, tier="cloud", tenant="t", session_id=sid, prompt_tokens=3010,
                               completion_tokens=20)
        record.calls.append(CallRecord("r", 0.0, "cloud", "anthropic/claude-sonnet-4-5", prompt_tokens=3010,
                                       completion_tokens=20, cached_prompt_tokens=cached))
        await keeper.note(record)  # the previous turn: answered by the cloud, `cached` tokens from its cache
        return (await keeper.steer(routed_local, chat, {"x-session-id": f"s{cached}"}, "t"))[0]

    kept = asyncio.run(turn(3000))
    assert kept.tier == "cloud" and "cached prefix" in kept.reason
    assert asyncio.run(turn(0)).tier == "local"  # nothing cached: leaving saves the whole cloud turn


def test_replay_keeps_a_sticky_session_on_the_tier_of_its_previous_turn() -> None:
    from router.analysis.redecide import SessionReplay, logged_decision
    from router.store.records import RequestRecord

    policy = Policy.model_validate({
        "tiers": {"local": {"model": "openai/local-sim", "api_base": "http://127.0.0.1:9/v1",
                            "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                  "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-x"}},
        "routing": {"classifier": {"threshold": 0.5}}})
    per_turn = policy.model_copy(update={"routing": policy.routing.model_copy(update={
        "session": SessionConfig(mode="per_turn")})})

    def turn(i: int, score: float, tier: str) -> RequestRecord:
        r = RequestRecord(id=f"r{i}", ts=1000.0 + i, requested_model="auto", score=score, status="ok",
                          routed_tier=tier, tier=tier, cloud_available=True, session_id="s1", tenant="anonymous")
        return r

    turns = [turn(1, 0.9, "cloud"), turn(2, 0.1, "cloud")]
    for p, want in ((policy, "cloud"), (per_turn, "local")):
        sessions = SessionReplay()
        tiers = []
        for r in turns:
            tiers.append(logged_decision(r, p, None, sessions).tier)
            sessions.note(r, tiers[-1], p)
        assert tiers == ["cloud", want]
    later = turn(3, 0.1, "local")
    later.ts = 1000.0 + 2 + policy.routing.session.ttl_s + 1  # the session expired
    sessions = SessionReplay()
    sessions.note(turns[0], "cloud", policy)
    assert logged_decision(later, policy, None, sessions).tier == "local"
