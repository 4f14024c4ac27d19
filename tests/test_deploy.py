"""docker-compose.yml: Redis, two router replicas sharing it, a llama.cpp server as the
local tier; validated by Compose itself where a Compose CLI is installed (no container
engine runs on these machines, so nothing is started)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from router.policy import load_policy

REPO = Path(__file__).resolve().parent.parent


def _compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) when present, else the standalone `docker-compose`."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_is_valid():
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run([*command, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_compose_runs_two_replicas_on_one_redis_with_a_llama_cpp_local_tier(monkeypatch):
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "llama", "router-a", "router-b"} <= set(services)
    assert "llama.cpp" in services["llama"]["image"]
    a, b = services["router-a"], services["router-b"]
    assert a["command"] == b["command"] and "--policy" in a["command"]
    assert a["environment"]["REDIS_URL"] == b["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert a["volumes"] != b["volumes"], "each replica spools to its own volume"
    assert "redis" in a["depends_on"]

    policy_file = a["command"][a["command"].index("--policy") + 1]
    assert policy_file.startswith("/app/")
    for name, value in a["environment"].items():
        if not str(value).startswith("${"):
            monkeypatch.setenv(name, str(value))
    policy = load_policy(REPO / policy_file.removeprefix("/app/"))
    assert policy.store.backend == "redis" and policy.store.url == "redis://redis:6379/0"
    assert policy.local.api_base == "http://llama:8080/v1" and not policy.local.is_in_process
    assert policy.cache.enabled and policy.budgets.enabled and policy.rate_limits.enabled
