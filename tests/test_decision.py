import pytest

from router.cascade.verdict import answer_signals, should_escalate
from router.routing.decide import decide
from router.errors import ModelNotFoundError, TierUnavailableError
from router.policy import EscalationConfig, policy_from_dict


def _policy(key="sk-test", on_unavailable="local", threshold=0.5):
    return policy_from_dict({
        "tiers": {"local": {"model": "slm-local/smollm2"}, "cloud": {"model": "openai/gpt-4o-mini", "api_key": key}},
        "routing": {"classifier": {"threshold": threshold}, "on_cloud_unavailable": on_unavailable},
    })


def test_threshold_splits_scores():
    p = _policy(threshold=0.4)
    assert decide("auto", 0.39, p).tier == "local"
    hi = decide("auto", 0.4, p)
    assert hi.tier == "cloud" and not hi.degraded and hi.score == 0.4


def test_forced_tier_skips_score():
    p = _policy()
    assert decide("local", None, p).tier == "local"
    assert decide("cloud", None, p).tier == "cloud"
    assert "forced" in decide("cloud", None, p).reason


def test_unknown_model():
    with pytest.raises(ModelNotFoundError) as e:
        decide("gpt-5", 0.1, _policy())
    assert e.value.status_code == 404 and e.value.param == "model"


def test_cloud_unavailable_degrades_or_errors():
    d = decide("auto", 0.9, _policy(key=""))
    assert d.tier == "local" and d.degraded and "unavailable" in d.reason
    with pytest.raises(TierUnavailableError):
        decide("auto", 0.9, _policy(key="", on_unavailable="error"))


def test_signals_and_escalation_verdicts():
    cfg = EscalationConfig(enabled=True, min_mean_logprob=-1.0)
    sure = answer_signals("Paris.", [-0.1, -0.3], "stop")
    assert sure.mean_logprob == pytest.approx(-0.2) and sure.min_logprob == pytest.approx(-0.3)
    assert not should_escalate(sure, cfg).escalate
    unsure = answer_signals("Maybe Lyon", [-2.0, -1.0], "stop")
    v = should_escalate(unsure, cfg)
    assert v.escalate and "-1.50" in v.reason
    assert should_escalate(answer_signals("  ", [-0.1], "stop"), cfg).escalate
    # no log-probabilities while a threshold reads them: escalate unless the policy says keep
    assert should_escalate(answer_signals("text", None, "stop"), cfg).escalate
    keep = EscalationConfig(enabled=True, min_mean_logprob=-1.0, on_missing_signal="keep")
    assert not should_escalate(answer_signals("text", None, "stop"), keep).escalate
    no_threshold = EscalationConfig(enabled=True, min_mean_logprob=-100)
    assert not should_escalate(answer_signals("text", None, "stop"), no_threshold).escalate
    assert not should_escalate(unsure, EscalationConfig(enabled=False)).escalate


def test_unexpected_error_is_logged_and_becomes_openai_500(tmp_path):
    """A bug in a stage never reaches the client as a bare 500, and the request is logged."""
    import asyncio

    from router.errors import RouterError
    from router.pipeline import Router
    from router.request.parse import parse_chat_request
    from router.store.sqlite import SQLiteStore

    class Broken:
        def score(self, texts):
            raise ZeroDivisionError("boom")

    store = SQLiteStore(tmp_path / "log.sqlite3")
    router = Router(_policy(), store, scorer=Broken())
    request = parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    record = router.new_record("r1", 1.0)
    with pytest.raises(RouterError) as e:
        asyncio.run(router.complete(request, record))
    assert e.value.status_code == 500 and e.value.to_openai()["error"]["code"] == "internal_error"
    assert "r1" in e.value.message
    [row] = store.requests()
    assert row.id == "r1" and row.status == "error" and row.http_status == 500


def test_format_check_escalates_prose_for_json():
    from router.cascade.verdict import format_error

    schema = {"type": "json_schema", "json_schema": {"name": "p", "schema": {
        "type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}}}
    assert format_error('{"age": 3}', schema) is None
    assert "schema" in format_error('{"age": "three"}', schema)
    assert format_error("Sure! Here is JSON: {}", {"type": "json_object"}) == "answer is not valid JSON"
    assert format_error("[1]", {"type": "json_object"}) == "answer is JSON but not an object"
    assert format_error("prose", None) is None and format_error("prose", {"type": "text"}) is None
    cfg = EscalationConfig(enabled=True, min_mean_logprob=-5)
    v = should_escalate(answer_signals("Sure!", [-0.1], "stop", {"type": "json_object"}), cfg)
    assert v.escalate and "JSON" in v.reason
