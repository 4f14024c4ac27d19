"""`slm-router doctor`: passes on the default policy here, names each problem (Redis down, an
unreachable api_base, a missing artifact) and exits non-zero; real Redis, a real HTTP server
as the cloud tier, the real SmolLM2 worker and embedder."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from router.cli import app
from router.cli.doctor import Check, exit_code

from .fake_openai import free_port


def _doctor(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["doctor", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def _by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_exit_code():
    ok, warn, err = Check("a", "ok", ""), Check("b", "warning", ""), Check("c", "error", "")
    assert exit_code([ok]) == 0 and exit_code([ok, warn]) == 0 and exit_code([ok, warn], strict=True) == 1
    assert exit_code([warn, err]) == 2 and exit_code([err], strict=True) == 2


@pytest.mark.slow
def test_default_policy_passes(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    code, report = _doctor()
    checks = _by_name(report)
    assert code == 0 == report["exit_code"], [c for c in report["checks"] if c["status"] != "ok"]
    gen = checks["local generation (local)"]
    assert gen["status"] == "ok" and gen["data"]["tokens"] > 0 and gen["data"]["tokens_per_s"] > 0
    assert checks["embedder"]["data"]["embedding_ms"] > 0 and checks["embedder"]["data"]["load_ms"] > 0
    assert checks["extra buffers (local)"]["data"]["source"] in ("probe", "cache")
    assert "reason" in checks["extra buffers (local)"]["data"]
    assert checks["classifier artifact"]["status"] == "ok" and checks["log store"]["status"] == "ok"
    assert "llama.cpp build" in checks and "redis" not in checks  # the default policy does not use Redis
    # the cloud tier without a key is a warning: --strict fails on it (exit 1)
    assert checks["tier cloud (openai/gpt-4o-mini)"]["status"] == "warning"
    strict, _ = _doctor("--strict", "--no-models")
    assert strict == 1


def test_names_each_problem_and_exits_2(tmp_path, redis_url, cloud):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    policy = {
        "tiers": {"local": {"model": "slm-local/smollm2"},
                  "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": dead},
                  "backup": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url}},
        "routing": {"classifier": {"artifact": str(tmp_path / "no-such-artifact")}},
        "store": {"backend": "redis", "url": f"redis://127.0.0.1:{free_port()}/0", "spool_dir": str(tmp_path / "spool")},
    }
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(policy))
    code, report = _doctor("--policy", str(path), "--no-models", "--timeout", "1")
    checks = _by_name(report)
    assert code == 2 == report["exit_code"]
    assert checks["redis"]["status"] == "error" and "redis" in checks["redis"]["fix"].lower()
    cloud_check = checks["tier cloud (openai/gpt-4o-mini)"]
    assert cloud_check["status"] == "error" and "unreachable" in cloud_check["detail"] and dead in cloud_check["detail"]
    assert checks["tier backup (openai/gpt-4o-mini)"]["status"] == "ok"  # the live stand-in answers
    art = checks["classifier artifact"]
    assert art["status"] == "error" and "no-such-artifact" in art["detail"] and art["fix"]
    assert checks["log store"]["status"] == "ok"

    # Redis up: that line turns ok, the others stay errors.
    policy["store"]["url"] = redis_url
    path.write_text(yaml.safe_dump(policy))
    code, report = _doctor("--policy", str(path), "--no-models", "--timeout", "1")
    assert code == 2 and _by_name(report)["redis"]["status"] == "ok"


def test_text_output_says_what_to_do(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"routing": {"classifier": {"artifact": str(tmp_path / "gone")}}}))
    result = CliRunner().invoke(app, ["doctor", "--policy", str(path), "--no-models"])
    assert result.exit_code == 2
    line = next(l for l in result.stdout.splitlines() if "classifier artifact" in l)
    assert line.startswith("error") and "gone" in line
    assert "-> train one" in result.stdout


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))], ids=["recursive", "bomb"])
def test_a_policy_whose_aliases_never_end_is_a_policy_error_not_a_traceback(tmp_path, text):
    """doctor read an invalid policy's YAML a second time to check what it says; a recursive
    alias raised RecursionError there, and an alias bomb expanded for minutes."""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    code, report = _doctor("--policy", str(path), "--no-models")
    assert code == 2
    policy = _by_name(report)["policy"]
    assert policy["status"] == "error" and "not valid YAML" in policy["detail"]
