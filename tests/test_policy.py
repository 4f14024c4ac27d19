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


def test_redacted_policy_hides_secrets_and_hash_ignores_them():
    from router.policy.view import REDACTED, policy_hash, redacted_policy

    def make(key, threshold=0.5):
        return policy_from_dict({
            "tiers": {"local": {"model": "slm-local/smollm2"},
                      "cloud": {"model": "openai/gpt-4o-mini", "api_key": key,
                                "api_base": "https://user:pw@example.invalid:8443/v1"}},
            "routing": {"classifier": {"threshold": threshold}},
            "api_keys": [{"name": "a", "key": "sk-proxy-secret"}],
        })

    p = make("sk-provider-secret")
    view = redacted_policy(p)
    text = str(view)
    assert "sk-provider-secret" not in text and "sk-proxy-secret" not in text and "pw@" not in text
    assert p.api_keys[0].sha256 not in text
    assert view["tiers"]["cloud"]["api_key"] == REDACTED and view["api_keys"][0]["sha256"] == REDACTED
    assert view["tiers"]["cloud"]["api_base"] == f"https://user:{REDACTED}@example.invalid:8443/v1"
    assert len(policy_hash(p)) == 16
    assert policy_hash(p) == policy_hash(make("sk-rotated"))  # rotating a secret keeps the hash
    assert policy_hash(p) != policy_hash(make("sk-provider-secret", threshold=0.4))


def test_api_key_entries_need_a_hash_or_a_key():
    with pytest.raises(PolicyError, match="sha256"):
        policy_from_dict({"api_keys": [{"name": "a"}]})
    with pytest.raises(PolicyError, match="not both"):
        policy_from_dict({"api_keys": [{"name": "a", "key": "k", "sha256": "a" * 64}]})
    p = policy_from_dict({"api_keys": [{"name": "a", "sha256": "A" * 64}]})
    assert p.api_keys[0].sha256 == "a" * 64  # normalised to lower case


def test_reference_errors_without_positions():
    with pytest.raises(PolicyError, match=r"rules\.0\.action\.tier: tier 'premium' is not defined"):
        policy_from_dict({"rules": [{"name": "r", "action": {"tier": "premium"}}]})
    with pytest.raises(PolicyError, match="alias 'local' hides"):
        policy_from_dict({"aliases": {"local": "auto"}})
