"""`slm-router report`, `replay` and `learn` with a --log that is not a request log: a
directory or a policy YAML was an SQLite traceback (exit 1), and an empty file was taken
for an empty log (SQLite wrote a new log's tables into it). Each is one line and exit 2,
and the file is left as it was; a real log still reads."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from router.cli import app
from router.store.sqlite import SQLiteStore

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


@pytest.fixture
def bad_logs(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    yaml = tmp_path / "policy.yaml"
    yaml.write_text("tiers:\n  local:\n    model: slm-local/smollm2\n  cloud:\n    model: openai/gpt-4o-mini\n")
    empty = tmp_path / "empty.sqlite3"
    empty.write_bytes(b"")
    return {"folder": folder, "yaml": yaml, "empty": empty}


@pytest.mark.parametrize("command", [["report"], ["learn", "--out", "candidate"]])
@pytest.mark.parametrize("kind,expected", [
    ("folder", "is a directory, not a request log"),
    ("yaml", "is not a request log (not an SQLite database)"),
    ("empty", "is not a request log (not an SQLite database)"),
])
def test_a_log_that_is_not_one_is_exit_2(bad_logs, tmp_path, command, kind, expected):
    path = bad_logs[kind]
    before = path.read_bytes() if path.is_file() else None
    args = [*command, "--log", str(path)]
    if command[0] == "learn":
        args[2] = str(tmp_path / "candidate")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in _flat(result.output)
    assert "Traceback" not in result.output and "DatabaseError" not in result.output
    if before is not None:
        assert path.read_bytes() == before  # nothing written into the user's file


def test_replay_refuses_a_yaml_log(bad_logs):
    result = runner.invoke(app, ["replay", "--policy", str(bad_logs["yaml"]), "--log", str(bad_logs["yaml"])])
    assert result.exit_code == 2
    assert "is not a request log (not an SQLite database)" in _flat(result.output)


def test_a_real_log_still_reports(tmp_path):
    path = tmp_path / "log.sqlite3"
    SQLiteStore(path).close()
    result = runner.invoke(app, ["report", "--log", str(path)])
    assert result.exit_code == 0, result.output
    assert "requests" in result.output


def test_an_empty_policy_file_is_ok_with_a_warning(tmp_path):
    """An empty (or comments-only) policy is the embedded default: `policy check` said
    "policy OK (0 warning(s))", so a truncated file passed unnoticed."""
    path = tmp_path / "policy.yaml"
    path.write_text("# nothing here yet\n")
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 0
    flat = _flat(result.output)
    assert "warning: the file has no settings: it is the embedded default policy" in flat
    assert "policy OK (1 warning(s))" in flat


@pytest.mark.parametrize("command", [["report"], ["replay"], ["learn", "--out", "candidate"]])
def test_an_unreachable_redis_log_is_one_line_and_exit_2(tmp_path, command):
    """A policy whose store is Redis at an address nothing listens on: report, replay and
    learn printed a StoreUnavailableError traceback and exited 1."""
    from .fake_openai import free_port

    policy = tmp_path / "redis.yaml"
    policy.write_text(f"store: {{backend: redis, url: 'redis://127.0.0.1:{free_port()}/0', timeout_ms: 200}}\n")
    args = [*command, "--policy", str(policy)]
    if command[0] == "learn":
        args[2] = str(tmp_path / "candidate")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    text = _flat(result.output)
    assert text.startswith("error: cannot read") and "from Redis at redis://127.0.0.1:" in text
    assert "Traceback" not in result.output
