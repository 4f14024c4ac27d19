from pathlib import Path

import pytest

from router.errors import PolicyError
from router.policy import Policy, interpolate_env, load_policy, policy_from_dict

REPO = Path(__file__).resolve().parent.parent


def test_default_yaml_equals_embedded_default(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert load_policy(REPO / "policies" / "default.yaml") == Policy()
    assert load_policy(None) == Policy()


def test_env_interpolation_with_defaults():
    env = {"KEY": "sk-1"}
    assert interpolate_env("${KEY}", env) == "sk-1"
    assert interpolate_env("${MISSING}", env) == ""
    assert interpolate_env("${MISSING:-http://x}", env) == "http://x"
    assert interpolate_env({"a": ["pre-${KEY}-post"]}, env) == {"a": ["pre-sk-1-post"]}


def test_cloud_without_key_is_unavailable(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_FOR_TEST", raising=False)
    p = policy_from_dict({"tiers": {"local": {"model": "slm-local/smollm2"},
                                    "cloud": {"model": "openai/gpt-4o-mini", "api_key": "${NO_SUCH_KEY_FOR_TEST}"}}})
    assert p.cloud.api_key is None and not p.cloud.available
    assert p.local.available


def test_unknown_key_is_an_error():
    with pytest.raises(PolicyError, match="thresold"):
        policy_from_dict({"routing": {"classifier": {"thresold": 0.3}}})


def test_undefined_tier_reference_is_an_error():
    with pytest.raises(PolicyError, match="not defined"):
        policy_from_dict({"routing": {"cloud_tier": "gpt"}})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)
