"""`slm-router serve` refuses what it could never listen on before it loads anything: a port
outside 0-65535 (uvicorn printed "running on :99999" and served elsewhere), a port already
in use, a host that does not resolve (both used to load every model, then exit 3 or hang),
and an unknown --log-level (a KeyError traceback). Each is one line and exit code 2."""

from __future__ import annotations

import socket
import time

import pytest
from typer.testing import CliRunner

from router.cli import app
from router.cli.serve_start import listen_problem

runner = CliRunner()


def _flat(text: str) -> str:
    """The output as one line: rich's error box (borders, wrapping) removed."""
    return " ".join(text.replace("│", " ").split())


def _serve(*args: str):
    started = time.monotonic()
    result = runner.invoke(app, ["serve", "--no-warm-up", *args])
    return result, time.monotonic() - started


@pytest.mark.parametrize("port,bound", [("99999", "less than or equal to 65535"), ("65536", "less than or equal to 65535"),
                                        ("-1", "greater than or equal to 0")])
def test_port_out_of_range_is_exit_2(port, bound):
    result, _ = _serve("--port", port)
    assert result.exit_code == 2
    assert "Invalid value for '--port'" in _flat(result.output) and bound in _flat(result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_port_in_use_is_exit_2_before_loading():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result, took = _serve("--port", str(port))
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "in use" in result.output
    assert "Traceback" not in result.output
    assert took < 10  # nothing was loaded


def test_unresolvable_host_is_exit_2():
    result, _ = _serve("--host", "999.1.1.1", "--port", "0")
    assert result.exit_code == 2
    assert "--host '999.1.1.1' does not resolve" in result.output


def test_unknown_log_level_is_exit_2():
    result, _ = _serve("--log-level", "bogus", "--port", "0")
    assert result.exit_code == 2
    assert "--log-level must be one of critical, error, warning, info, debug, trace, got 'bogus'" in result.output
    assert "KeyError" not in result.output


def test_listen_problem_accepts_a_free_port_and_any_case_level():
    assert listen_problem("127.0.0.1", 0, "INFO") is None
    assert listen_problem("127.0.0.1", 0, "debug") is None


def test_a_worker_crash_message_does_not_promise_a_fallback():
    """A request naming the local tier (or with no other tier able to take it) gets the
    crash as its 503; the message said "the request goes to another tier" all the same."""
    from router.providers.local_errors import WorkerCrashedError
    from router.providers.worker_messages import result_of

    with pytest.raises(WorkerCrashedError) as err:
        result_of(("crashed", "the SLM worker (pid 7) killed by SIGKILL"))
    assert str(err.value).startswith("local_worker_crashed: the SLM worker (pid 7) killed by SIGKILL while generating")
    assert "goes to another tier" not in str(err.value)
    assert "a routed request falls back to another tier when one can serve it" in str(err.value)


def test_a_model_path_that_is_not_gguf_fails_the_policy_check(tmp_path):
    """A local tier pointing at a file that is not a GGUF model passed `policy check` and
    `serve` started, then every worker crashed loading it (the tier unavailable, 503s)."""
    from router.models import NotGGUFError, resolve_gguf, smollm2_gguf_path

    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model at all")
    with pytest.raises(NotGGUFError, match="is not a GGUF model file"):
        resolve_gguf(str(fake))
    assert resolve_gguf(str(smollm2_gguf_path())) == smollm2_gguf_path()  # the real one still resolves
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"tiers:\n  local:\n    model: slm-local/{fake}\n  cloud:\n    model: openai/gpt-4o-mini\n")
    result = runner.invoke(app, ["policy", "check", str(policy)])
    assert result.exit_code == 2
    assert f"tiers.local.model: {fake} is not a GGUF model file (it does not start with 'GGUF')" in _flat(result.output)
    served, took = _serve("--policy", str(policy), "--port", "0")
    assert served.exit_code == 2 and "is not a GGUF model file" in _flat(served.output)
