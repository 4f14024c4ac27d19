"""What the fresh7 break test found (a new user installing from the README, pointing the real
``openai`` and ``anthropic`` SDKs at ``slm-router serve`` and running the CLI on their own
data), each pinned through the real CLI or server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def _policy_logging_to(tmp_path: Path, log_path: Path, spool: Path | None = None) -> Path:
    """A valid policy file (simulated OpenAI-compatible tiers) whose SQLite log is ``log_path``,
    or with ``spool`` a Redis log (on a port nothing listens on) spooling to that folder."""
    policy = {"tiers": {"local": {"model": "openai/local-sim", "api_key": "sk-up", "api_base": "http://127.0.0.1:9",
                                  "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": "http://127.0.0.1:9"}},
              "log": {"path": str(log_path)}}
    if spool is not None:
        policy["store"] = {"backend": "redis", "url": "redis://127.0.0.1:9/0", "spool_dir": str(spool)}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def _unwritable_log(tmp_path: Path, where: str) -> Path:
    """A ``log.path`` SQLite cannot open: under a regular file, a folder, or a file that is not SQLite."""
    plain = tmp_path / "plain.txt"
    plain.write_text("not a database, not a folder\n" * 10)
    return {"under a file": plain / "log.sqlite3", "a folder": tmp_path, "not sqlite": plain}[where]


# -- 1. a request log serve cannot open is one line and exit 2, not a traceback ---------------

@pytest.mark.parametrize("where", ["under a file", "a folder", "not sqlite"])
def test_serve_with_a_log_it_cannot_open_is_one_error_line(tmp_path, where):
    """Before: ``serve`` died with a rich traceback ending ``OperationalError: unable to open
    database file`` (or ``DatabaseError: file is not a database``), exit code 1."""
    from typer.testing import CliRunner

    from router.cli import app

    log_path = _unwritable_log(tmp_path, where)
    result = CliRunner().invoke(app, ["serve", "--policy", str(_policy_logging_to(tmp_path, log_path)),
                                      "--port", "0", "--no-warm-up"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot open the request log {log_path}" in errors[0], result.output
    assert "log.path" in errors[0] and "Traceback" not in result.output


def test_serve_with_workers_and_a_log_it_cannot_open_exits_instead_of_respawning(tmp_path):
    """Before: with ``--workers 2`` each worker died on the log and uvicorn restarted it forever
    (the command never returned)."""
    log_path = _unwritable_log(tmp_path, "under a file")
    script = Path(sys.executable).parent / "slm-router"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "router.cli"]
    done = subprocess.run(command + ["serve", "--policy", str(_policy_logging_to(tmp_path, log_path)), "--port", "0",
                                     "--no-warm-up", "--workers", "2"],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"error: cannot open the request log {log_path}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_with_a_redis_spool_it_cannot_create_is_one_error_line(tmp_path, workers):
    """``store.spool_dir`` under a regular file: before, ``serve`` died with a traceback ending
    ``FileExistsError`` (with ``--workers 2``, each worker died and was restarted forever)."""
    spool = _unwritable_log(tmp_path, "under a file")
    script = Path(sys.executable).parent / "slm-router"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "router.cli"]
    policy = _policy_logging_to(tmp_path, tmp_path / "unused.sqlite3", spool=spool)
    done = subprocess.run(command + ["serve", "--policy", str(policy), "--port", "0", "--no-warm-up",
                                     "--workers", workers],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"error: cannot use the log spool folder {spool}" in done.stderr and "store.spool_dir" in done.stderr
    assert "Traceback" not in done.stderr


# -- 2. a JSONL written by Windows tools (BOM, CRLF) loads; a non-UTF-8 one is a clear error ----

_ROWS = [{"prompt": f"Refund my order #{i}" if i % 2 else f"Prove lemma {i} rigorously",
          "outcomes": {"small": i % 2, "big": 1}, "weak": "small", "strong": "big"} for i in range(6)]


def _jsonl(path: Path, rows: list[dict], *, bom: bool = False, newline: str = "\n") -> Path:
    import json

    text = "".join(json.dumps(r, ensure_ascii=False) + newline for r in rows)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def test_a_jsonl_with_a_byte_order_mark_and_crlf_loads_like_a_plain_one(tmp_path):
    """Before: ``eval``/``train``/``calibrate --data`` refused a file PowerShell or Excel saved
    as UTF-8 (``not valid JSON (Unexpected UTF-8 BOM ...)``)."""
    from training.datasets.jsonl import load_jsonl

    plain = load_jsonl(_jsonl(tmp_path / "my.jsonl", _ROWS))
    (tmp_path / "win").mkdir()
    windows = load_jsonl(_jsonl(tmp_path / "win" / "my.jsonl", _ROWS, bom=True, newline="\r\n"))
    assert [repr(e) for e in windows] == [repr(e) for e in plain] and len(plain) == 6


def test_score_reads_a_bom_file_and_names_the_line_of_a_non_utf8_one(tmp_path):
    """Before: ``score --input`` refused a BOM file, and a Latin-1 file was a traceback ending
    ``UnicodeDecodeError`` (exit code 1)."""
    import json

    from typer.testing import CliRunner

    from router.cli import app

    bom = _jsonl(tmp_path / "bom.jsonl", [{"prompt": "hi"}, {"prompt": "café"}], bom=True, newline="\r\n")
    result = CliRunner().invoke(app, ["score", "--input", str(bom), "--output", str(tmp_path / "s.jsonl")])
    assert result.exit_code == 0, result.output
    scores = [json.loads(line)["score"] for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    result = CliRunner().invoke(app, ["score", "--input", str(latin), "--output", str(tmp_path / "s2.jsonl")])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {latin}:2: not UTF-8 text (byte 0xe9 at column 16); save the file as UTF-8"


def test_eval_names_the_line_of_a_non_utf8_file(tmp_path):
    """Before: ``error: utf-8' codec can't decode byte 0xe9 ...`` (no file, no line)."""
    from typer.testing import CliRunner

    from router.cli import app

    latin = _jsonl(tmp_path / "my.jsonl", _ROWS)
    latin.write_bytes(latin.read_bytes() + b'{"prompt": "caf\xe9", "outcomes": {"small": 1, "big": 1}}\n')
    result = CliRunner().invoke(app, ["eval", "--data", str(latin)])
    assert result.exit_code == 2, result.output
    assert f"error: {latin}:7: not UTF-8 text (byte 0xe9 at column 16)" in result.output
    assert "Traceback" not in result.output


# -- 3. a policy file emptied while serving is rejected, not the embedded default -------------

def test_a_policy_file_emptied_while_serving_keeps_the_active_policy(tmp_path, good_up):
    """Before: saving an empty file (or one cut short mid-save: ``> policy.yaml`` truncates
    first) reloaded the embedded default, so a privacy policy forbidding the cloud silently
    became one that routes to it."""
    import time

    import httpx

    from .proxy_process import ProxyProcess

    policy = {"tiers": {"local": {"model": "openai/local-sim", "api_key": "sk-up", "api_base": good_up.url,
                                  "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": good_up.url}},
              "rules": [{"name": "nothing-leaves", "match": {}, "action": {"forbid": ["cloud"]}}]}
    proxy = ProxyProcess(policy, tmp_path, args=["--no-warm-up"]).start()
    try:
        before = httpx.get(proxy.url + "/v1/policy", timeout=10).json()
        for text in ("", "# everything commented out\n"):
            proxy.write_policy(text)
            deadline = time.time() + 15
            while time.time() < deadline:
                info = httpx.get(proxy.url + "/v1/policy", timeout=10).json()
                if info["last_reload_error"] or info["hash"] != before["hash"]:
                    break
                time.sleep(0.1)
            assert info["hash"] == before["hash"] and info["reloads"] == before["reloads"], info
            assert "the file has no settings" in info["last_reload_error"]
            r = httpx.post(proxy.url + "/v1/chat/completions", timeout=30,
                           json={"model": "auto", "messages": [{"role": "user", "content": "Prove the Riemann hypothesis."}]})
            assert r.status_code == 200 and r.headers["x-router-tier"] == "local"
            assert r.headers["x-router-rules"] == "nothing-leaves"
            proxy.write_policy(policy | {"log": {"path": str(proxy.log_path)}})  # a valid file clears the error
            deadline = time.time() + 15
            while httpx.get(proxy.url + "/v1/policy", timeout=10).json()["last_reload_error"] and time.time() < deadline:
                time.sleep(0.1)
    finally:
        proxy.stop()


# -- 4. the in-process tier's JSON-schema grammar keeps raw control characters out of strings --

_ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}, "short": {"type": "string", "maxLength": 3}},
                  "required": ["answer"]}


def test_the_schema_grammar_allows_only_what_json_allows_in_a_string():
    """llama-cpp-python's converter writes ``char ::= [^"\\\\] | ...``: any character but quote
    and backslash, a raw newline included, which makes the answer invalid JSON."""
    from llama_cpp.llama_grammar import LlamaGrammar

    from router.providers.local_provider import response_format_grammar

    grammar = response_format_grammar({"type": "json_schema", "json_schema": {"name": "a", "schema": _ANSWER_SCHEMA}})
    (char,) = [line for line in grammar.splitlines() if line.startswith("char ::= ")]
    assert char.startswith(r'char ::= [^"\\\x7F\x00-\x1F] | "\\" ('), char
    LlamaGrammar.from_string(grammar, verbose=False)  # llama.cpp parses it


@pytest.mark.slow
def test_the_local_model_writes_no_raw_newline_inside_a_json_string():
    """Before: 3 of these 4 prompts made SmolLM2 put raw newlines into ``answer`` (the SDK's
    ``chat.completions.parse`` then failed with ``json_invalid: control character``)."""
    import re

    from router.models import smollm2_gguf_path
    from router.providers.llama_runtime import LlamaRuntime
    from router.providers.local_provider import response_format_grammar

    runtime = LlamaRuntime(smollm2_gguf_path(), n_ctx=512)
    grammar = response_format_grammar({"type": "json_schema", "json_schema": {"name": "a", "schema": _ANSWER_SCHEMA}})
    for prompt in ("capital of France", "List three colors", "Give me a haiku", "Write a two-line poem about the sea"):
        text = runtime.generate([{"role": "user", "content": prompt}], max_tokens=60, grammar=grammar).text
        assert text.startswith("{") and not re.search(r"[\x00-\x1f]", text.split('"answer"', 1)[1]), (prompt, text)


# -- 5. calibrate checks --write-policy before it calibrates -----------------------------------

@pytest.mark.parametrize("where", ["under a file", "a folder"])
def test_calibrate_checks_write_policy_before_any_work(tmp_path, where):
    """Before: a ``--write-policy`` under a regular file was a traceback (``FileExistsError``,
    exit code 1) after the whole calibration had run; now one line and exit 2 before the data
    is read (the missing data file is never reached)."""
    from typer.testing import CliRunner

    from router.cli import app

    plain = tmp_path / "plain.txt"
    plain.write_text("not a folder")
    target = {"under a file": plain / "policy.yaml", "a folder": tmp_path}[where]
    result = CliRunner().invoke(app, ["calibrate", "--data", str(tmp_path / "missing.jsonl"),
                                      "--target-cloud-share", "0.3", "--write-policy", str(target)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(target) in lines[0] and lines[0].startswith("error: "), lines
    assert "missing" not in lines[0] and "Traceback" not in result.output


# -- 6. the in-process tier refuses a part it cannot read instead of answering without it ------

_FILE_PART = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQK", "filename": "a.pdf"}}
_AUDIO_PART = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("part", [_FILE_PART, _AUDIO_PART], ids=["file", "input_audio"])
def test_a_file_or_audio_part_named_to_the_local_tier_is_a_400_naming_it(in_process, part, stream):
    """Before: SmolLM2 was given the text parts only and answered 200 about a file it never saw."""
    import openai

    client = openai.OpenAI(base_url=in_process.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Summarise this in one line."}, part]}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="local", messages=messages, stream=stream)
    assert caught.value.code == "upstream_rejected"
    assert f"messages[0].content[1] is a '{part['type']}' part" in caught.value.message


def test_a_routed_file_part_goes_to_the_cloud_tier(in_process, good_up):
    """Before: routed locally (threshold 0.99), the file was dropped and SmolLM2 answered."""
    import openai

    client = openai.OpenAI(base_url=in_process.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    before = len(good_up.received)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": [{"type": "text", "text": "What is in it?"}, _FILE_PART]}])
    assert raw.headers["x-router-tier"] == "cloud", raw.headers.get("x-router-reason")
    assert "local rejected the request (400)" in raw.headers["x-router-reason"]
    assert raw.parse().choices[0].message.content == "ok"
    sent = good_up.received[before:]
    assert len(sent) == 1 and sent[0]["messages"][0]["content"][1]["type"] == "file"  # forwarded whole


# -- 7. when the fallback tier fails too, the error says which tier failed first ---------------

@pytest.mark.parametrize("status", [429, 500])
def test_a_failed_fallback_names_the_tier_the_client_asked_for(status):
    """Before: a client naming ``cloud`` (down) got only ``tier 'local' failed: ...``, about a
    tier it never asked for, with no word of the cloud's failure (error answers carry no
    ``x-router-reason``)."""
    import anthropic
    import openai

    from .app_thread import serving_policy
    from .fake_openai import FakeOpenAI

    down = FakeOpenAI(fail_with=status).start()
    try:
        tiers = {"local": {"model": "openai/local-sim", "api_key": "sk-up", "api_base": down.url, "max_retries": 0,
                           "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                 "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": down.url, "max_retries": 0}}
        with serving_policy({"tiers": tiers}) as (url, _store):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.APIStatusError) as caught:
                client.chat.completions.create(model="cloud", messages=[{"role": "user", "content": "Hi"}])
            assert caught.value.status_code == (429 if status == 429 else 502)
            assert "tier 'local' failed" in caught.value.message
            assert f"(the fallback, after tier 'cloud' failed ({status}))" in caught.value.message
            claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            with pytest.raises(anthropic.APIStatusError) as caught:
                claude.messages.create(model="cloud", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
            assert f"after tier 'cloud' failed ({status})" in caught.value.message
    finally:
        down.stop()
