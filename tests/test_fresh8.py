"""What the fresh8 break test found (a new user installing from the README, pointing the real
``openai`` and ``anthropic`` SDKs at ``slm-router serve``, running the CLI on odd files and
editing the policy while serving), each pinned through the real CLI, server or SDK."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml


def _tiers(url: str) -> dict:
    return {"local": {"model": "openai/local-sim", "api_key": "sk-up", "api_base": url,
                      "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": url}}


def _ask(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=30,
                      json={"model": "cloud", "messages": [{"role": "user", "content": "Hi"}]})


# -- 1. a reload that changes a log setting keeps a Redis log on Redis --------------------------

def test_a_reload_of_log_settings_keeps_the_redis_log(tmp_path, good_up, redis_url, redis_prefix):
    """Before: with ``store: redis``, a reload that changed anything under ``log`` (here
    ``keep_for_learning: text``) opened the SQLite file ``log.path`` instead, so from then on
    the replica wrote its request log to a local file nobody reads (``/healthz`` said
    ``store.backend: sqlite``), silently."""
    import redis

    from .proxy_process import ProxyProcess

    store = {"backend": "redis", "url": redis_url, "prefix": redis_prefix, "spool_dir": str(tmp_path / "spool")}
    policy = {"tiers": _tiers(good_up.url), "store": store}
    proxy = ProxyProcess(policy, tmp_path, args=["--no-warm-up"]).start()
    try:
        assert _ask(proxy.url).status_code == 200
        proxy.write_policy(yaml.safe_dump({**policy, "log": {"path": str(proxy.log_path), "keep_for_learning": "text"}}))
        deadline = time.time() + 20
        while httpx.get(proxy.url + "/v1/policy", timeout=10).json()["reloads"] < 1 and time.time() < deadline:
            time.sleep(0.1)
        assert httpx.get(proxy.url + "/v1/policy", timeout=10).json()["reloads"] == 1
        assert all(_ask(proxy.url).status_code == 200 for _ in range(3))
        assert httpx.get(proxy.url + "/healthz", timeout=10).json()["store"]["backend"] == "redis"
        stream = f"{redis_prefix}:requests"
        client = redis.Redis.from_url(redis_url)
        deadline = time.time() + 10
        while client.xlen(stream) < 4 and time.time() < deadline:
            time.sleep(0.1)
        rows = [json.loads(fields[b"r"]) for _, fields in client.xrange(stream)]
        assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
        assert not proxy.log_path.exists()
    finally:
        proxy.stop()


def test_store_location_names_what_a_reload_must_reopen():
    """The pure rule behind the reload: only the log's place (the SQLite file, or the Redis
    settings) opens a new store; ``keep_for_learning`` or ``writer`` keep the open one."""
    from router.policy import Policy
    from router.store import store_location

    base = Policy.model_validate({})
    learn = Policy.model_validate({"log": {"keep_for_learning": "text", "writer": "thread"}})
    moved = Policy.model_validate({"log": {"path": "elsewhere.sqlite3"}})
    on_redis = Policy.model_validate({"store": "redis"})
    on_redis_learn = Policy.model_validate({"store": "redis", "log": {"path": "x.sqlite3", "keep_for_learning": "text"}})
    assert store_location(base) == store_location(learn) != store_location(moved)
    assert store_location(on_redis) == store_location(on_redis_learn) != store_location(base)
    assert store_location(on_redis)[0] == "redis"


@pytest.fixture(scope="module")
def served(good_up):
    """The app on a thread (in-memory log), both tiers on ``good_up``: (base URL, store)."""
    from .app_thread import serving_policy

    with serving_policy({"tiers": _tiers(good_up.url)}) as (url, store):
        yield url, store


# -- 2. stream_options without stream: true is OpenAI's 400 ------------------------------------

def test_stream_options_without_stream_is_a_logged_400(served, good_up):
    """Before: answered 200 (and forwarded nothing of it), where OpenAI answers 400 ``The
    'stream_options' parameter is only allowed when 'stream' is enabled.``"""
    import openai

    from .app_thread import logged_row

    url, store = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    before = len(good_up.received)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.with_raw_response.create(
            model="cloud", messages=[{"role": "user", "content": "Hi"}], stream_options={"include_usage": True})
    assert caught.value.param == "stream_options" and caught.value.code == "invalid_request"
    assert "only allowed when 'stream' is enabled" in caught.value.message
    assert len(good_up.received) == before  # no tier was called
    row = logged_row(store, caught.value.response.headers["x-request-id"])
    assert row.http_status == 400 and row.status == "error"
    stream = client.chat.completions.create(model="cloud", messages=[{"role": "user", "content": "Hi"}], stream=True,
                                            stream_options={"include_usage": True})
    assert [c for c in stream][-1].usage is not None  # with stream: true it still works
    plain = client.chat.completions.create(model="cloud", messages=[{"role": "user", "content": "Hi"}],
                                           stream=False, extra_body={"stream_options": None})
    assert plain.choices[0].message.content == "ok"  # null is no stream_options


# -- 3. an artifact whose card is not a card object is one line and exit 2 ---------------------

def _artifact_with_card(tmp_path: Path, card_text: str) -> Path:
    """A copy of the shipped classifier whose card.json is ``card_text``."""
    import shutil

    from router.scoring.artifact import builtin_artifact_dir

    folder = tmp_path / "my-router"
    folder.mkdir()
    shutil.copy(builtin_artifact_dir() / "model.joblib", folder / "model.joblib")
    (folder / "card.json").write_text(card_text)
    return folder


@pytest.mark.parametrize("card,problem", [("[1, 2]", "expected a JSON object, got list"),
                                          ('{"inputs": 5}', "inputs: Input should be a valid list")])
@pytest.mark.parametrize("command", ["score", "eval", "calibrate"])
def test_a_card_that_is_not_a_card_object_is_one_error_line(tmp_path, card, problem, command):
    """Before: ``score``, ``eval`` and ``calibrate --artifact`` died with a traceback ending
    ``AttributeError: 'list' object has no attribute 'get'`` (or a pydantic ValidationError),
    and ``policy check`` said ``policy OK`` for such an artifact; ``score`` also let a
    corrupt ``model.joblib``'s ArtifactError through as a traceback."""
    from typer.testing import CliRunner

    from router.cli import app

    artifact = _artifact_with_card(tmp_path, card)
    data = tmp_path / "my.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"question {i}", "outcomes": {"small": i % 2, "big": 1},
                                        "weak": "small", "strong": "big"}) + "\n" for i in range(12)))
    args = {"score": ["score", "--input", str(data), "--output", str(tmp_path / "s.jsonl")],
            "eval": ["eval", "--data", str(data), "--split", "none"],
            "calibrate": ["calibrate", "--data", str(data), "--target-cloud-share", "0.3"]}[command]
    result = CliRunner().invoke(app, args + ["--artifact", str(artifact)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1] == f"error: {artifact / 'card.json'}: not a valid artifact card ({problem})", lines
    assert "Traceback" not in result.output


def test_policy_check_refuses_an_artifact_whose_card_is_not_an_object(tmp_path):
    from typer.testing import CliRunner

    from router.cli import app

    artifact = _artifact_with_card(tmp_path, "[]")
    policy = tmp_path / "p.yaml"
    policy.write_text(f"routing:\n  classifier:\n    artifact: {artifact}\n")
    result = CliRunner().invoke(app, ["policy", "check", str(policy)])
    assert result.exit_code == 2, result.output
    assert "routing.classifier.artifact" in result.output and "not a valid artifact card" in result.output


def test_score_with_a_corrupt_model_file_is_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from router.cli import app

    artifact = _artifact_with_card(tmp_path, "{}")
    (artifact / "model.joblib").write_bytes(b"not a pickle at all")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    result = CliRunner().invoke(app, ["score", "--input", str(prompts), "--output", str(tmp_path / "s.jsonl"),
                                      "--artifact", str(artifact)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {artifact / 'model.joblib'}: cannot load the classifier")
    assert "Traceback" not in result.output and not (tmp_path / "s.jsonl").exists()


# -- 4. a path or value holding [tags] is printed as it is, not read as rich markup ------------

@pytest.mark.parametrize("args,expected", [
    (["report", "--log", "{tmp}/[/x]/log.sqlite3"], "error: no request log at {tmp}/[/x]/log.sqlite3; run 'slm-router serve' first or pass --log"),
    (["report", "--since", "[/b]"], "error: --since must be an ISO date or time such as 2026-11-29 or "
                                    "2026-11-29T10:00, got '[/b]'"),
    (["score", "--input", "{tmp}/[red]prompts.jsonl", "--output", "{tmp}/s.jsonl"],
     "error: input file not found: {tmp}/[red]prompts.jsonl"),
])
def test_an_error_naming_a_bracketed_path_is_printed_as_it_is(tmp_path, args, expected):
    """Before: the error line went through rich markup, so ``[/x]`` in a path or value was a
    ``MarkupError`` traceback (exit code 1) and ``[red]`` vanished from the path it named."""
    from typer.testing import CliRunner

    from router.cli import app

    result = CliRunner().invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == expected.replace("{tmp}", str(tmp_path))


def test_report_and_replay_of_a_log_in_a_bracketed_folder(tmp_path):
    """The success paths print the log's path in table titles and ``wrote`` lines; a folder
    named ``[/d]`` made them a MarkupError traceback after the work was done."""
    from typer.testing import CliRunner

    from router.cli import app
    from router.store.sqlite import SQLiteStore

    folder = tmp_path / "[" / "d]"  # the path holds "[/d]"
    folder.mkdir(parents=True)
    SQLiteStore(folder / "log.sqlite3").close()
    policy = tmp_path / "p.yaml"
    policy.write_text("escalation: {enabled: false}\n")
    runner = CliRunner()
    shown = runner.invoke(app, ["report", "--log", str(folder / "log.sqlite3")])
    assert shown.exit_code == 0 and "[/d]" in shown.output, shown.output
    written = runner.invoke(app, ["report", "--log", str(folder / "log.sqlite3"), "--format", "md",
                                  "--out", str(folder / "r.md")])
    assert written.exit_code == 0 and f"wrote {folder / 'r.md'}" in written.output and (folder / "r.md").is_file()
    replayed = runner.invoke(app, ["replay", "--policy", str(policy), "--log", str(folder / "log.sqlite3")])
    assert replayed.exit_code == 0 and "[/d]" in replayed.output, replayed.output


# -- 5. report --learning with JSON that holds no curves is one line and exit 2 ----------------

@pytest.mark.parametrize("text,why", [("[]", "TypeError: a JSON object expected, got list"),
                                      ('{"curves": {"a": [[1]]}}', "ValueError: not enough values to unpack"),
                                      ('{"curve": [{"labels": "x"}]}', "ValueError: invalid literal for int()"),
                                      ('{"curve": [{"labels": 5}]}', "KeyError: 'apgr_candidate'")])
def test_report_learning_that_holds_no_curves_is_one_error_line(tmp_path, text, why):
    """Before: a traceback (AttributeError, ValueError or KeyError), exit code 1."""
    from typer.testing import CliRunner

    from router.cli import app
    from router.store.sqlite import SQLiteStore

    SQLiteStore(tmp_path / "log.sqlite3").close()
    curves = tmp_path / "learning.json"
    curves.write_text(text)
    result = CliRunner().invoke(app, ["report", "--log", str(tmp_path / "log.sqlite3"), "--learning", str(curves),
                                      "--format", "html", "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {curves} holds no learning curves ({why}"), lines
    assert not (tmp_path / "r.html").exists()


def test_report_learning_reads_what_learn_writes(tmp_path):
    from typer.testing import CliRunner

    from router.cli import app
    from router.store.sqlite import SQLiteStore

    SQLiteStore(tmp_path / "log.sqlite3").close()
    curves = tmp_path / "learning.json"
    curves.write_text(json.dumps({"curve": [{"labels": 10, "apgr_candidate": 0.4, "apgr_active": 0.3},
                                            {"labels": 20, "apgr_candidate": 0.5, "apgr_active": 0.3}]}))
    result = CliRunner().invoke(app, ["report", "--log", str(tmp_path / "log.sqlite3"), "--learning", str(curves),
                                      "--format", "html", "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "learning curve" in (tmp_path / "r.html").read_text().lower()


# -- 6. Responses bodies of the wrong shape are 400s naming the Responses field ---------------

@pytest.mark.parametrize("body,param,says", [
    ({"input": [{"role": "user", "content": ["hi"]}]}, "input[0].content[0]", "expected a content part object"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}, "input[0].content[0].text",
     "expected a string"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": {"url": "https://x/a.png"}}]}]},
     "input[0].content[0].image_url", "expected a URL string"),
    ({"input": "hi", "text": {"format": "json"}}, "text.format", "expected an object"),
    ({"input": [{"role": "user", "content": "hi"}, {"type": "function_call", "call_id": "c", "name": "f",
                                                     "arguments": {"a": 1}}]}, "input[1].arguments",
     "expected a string of JSON"),
    ({"input": [{"role": "user", "content": "hi"}, {"type": "function_call", "call_id": 5, "name": "f"}]},
     "input[1].call_id", "expected a string"),
    ({"input": [{"role": "user", "content": "hi"}, {"type": "function_call_output", "call_id": 5, "output": "r"}]},
     "input[1].call_id", "needs a string call_id"),
])
def test_responses_bodies_of_the_wrong_shape_name_the_field(served, body, param, says):
    """Before: ``Could not read the request: AttributeError: 'str' object has no attribute
    'get'`` (param null), or a message naming chat fields the client never sent
    (``messages[1].tool_calls[0].function.arguments``), or a number taken as text (200)."""
    import openai

    from .app_thread import logged_row

    url, store = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="cloud", **body)
    assert caught.value.param == param and says in caught.value.message, caught.value.message
    assert "messages" not in caught.value.message and "AttributeError" not in caught.value.message
    assert logged_row(store, caught.value.response.headers["x-request-id"]).http_status == 400


def test_a_chat_check_of_a_translated_input_names_input_not_messages(served):
    """An image URL the chat check refuses is reported on ``input``, without the chat path."""
    import openai

    url, _ = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="cloud", input=[{"role": "user", "content": [
            {"type": "input_text", "text": "x"}, {"type": "input_image", "image_url": "ftp://x/a.png"}]}])
    assert caught.value.param == "input"
    assert caught.value.message.endswith("Invalid value for 'input': expected an http(s):// or data: URL.")


# -- 7. Anthropic tool blocks of the wrong type are 400s naming the Anthropic field -------------

_HI = {"role": "user", "content": "Hi"}
_RESULT = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}


def _use(**block) -> dict:
    return {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "weather", "input": {}, **block}]}


@pytest.mark.parametrize("messages,tools,param,says", [
    ([_HI, _use(id=5), _RESULT], None, "messages.1.content.0.id", "Input should be a valid string"),
    ([_HI, _use(name=5)], None, "messages.1.content.0.name", "Input should be a valid string"),
    ([_HI, _use(input="sunny?"), _RESULT], None, "messages.1.content.0.input", "Input should be a valid dictionary"),
    ([_HI, _use(), {"role": "user", "content": [{"type": "tool_result", "tool_use_id": 5, "content": "r"}]}], None,
     "messages.2.content.0.tool_use_id", "needs a string 'tool_use_id'"),
    ([_HI], [{"name": "get weather", "input_schema": {"type": "object"}}], "tools.0.name", "should match pattern"),
    ([_HI], [{"name": 7, "input_schema": {"type": "object"}}], "tools.0.name", "should match pattern"),
])
def test_anthropic_tool_fields_of_the_wrong_type_name_the_anthropic_field(served, messages, tools, param, says):
    """Before: these were 400s whose message named the translated chat request's fields
    (``messages[1].tool_calls[0].id``, ``messages[2].tool_call_id``, ``tools[0].function.name``),
    or (a string ``input``) a 200 whose tool call carried ``"sunny?"`` as its arguments."""
    import anthropic

    from .app_thread import logged_row

    url, store = served
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    extra = {"tools": tools} if tools else {}
    for call in (client.messages.create, client.messages.count_tokens):
        kwargs = {"max_tokens": 16} if call == client.messages.create else {}
        with pytest.raises(anthropic.BadRequestError) as caught:
            call(model="cloud", messages=messages, **kwargs, **extra)
        body = caught.value.body
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        message = body["error"]["message"]
        assert message.startswith(f"{param}: ") and says in message, message
        assert "tool_calls" not in message and "function" not in message
        assert logged_row(store, caught.value.response.headers["request-id"]).http_status == 400


# -- 8. the in-process tier refuses a logit_bias it would drop -------------------------------

@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("bias", [{"1234": -100}, {"99999999": 5}], ids=["in-vocab", "out-of-vocab"])
def test_logit_bias_named_to_the_local_tier_is_a_400_naming_it(in_process, bias, stream):
    """Before: SmolLM2 answered 200 without the bias (any id, 99999999 too: its vocabulary
    has 49,152 tokens), so a client banning a token got it anyway."""
    import openai

    client = openai.OpenAI(base_url=in_process.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": "Say yes."}],
                                       logit_bias=bias, stream=stream)
    assert caught.value.code == "upstream_rejected"
    assert "the local tier does not apply logit_bias" in caught.value.message


def test_a_routed_logit_bias_goes_to_the_cloud_tier_with_its_bias(in_process, good_up):
    import openai

    client = openai.OpenAI(base_url=in_process.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    before = len(good_up.received)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Say yes."}], logit_bias={"9891": 10})
    assert raw.headers["x-router-tier"] == "cloud", raw.headers.get("x-router-reason")
    assert "local rejected the request (400)" in raw.headers["x-router-reason"]
    sent = good_up.received[before:]
    assert len(sent) == 1 and sent[0]["logit_bias"] == {"9891": 10}


def test_an_empty_logit_bias_is_no_bias():
    """Clients send ``logit_bias: {}`` by default; the local tier takes it."""
    from router.providers.local_errors import LocalRequestError
    from router.providers.local_provider import require_applied

    require_applied({"logit_bias": {}, "max_tokens": 5})
    require_applied({"max_tokens": 5})
    with pytest.raises(LocalRequestError):
        require_applied({"logit_bias": {"5": -100}})


# -- 9. a store.url redis-py cannot open is a policy error, not a serve traceback --------------

@pytest.mark.parametrize("url,says", [("http://127.0.0.1:6379/0", "starts with redis://, rediss:// or unix://"),
                                      ("redis://:s3cret@127.0.0.1:abc/0", "port of the Redis URL is not a number")])
def test_a_store_url_redis_cannot_open_is_one_policy_error(tmp_path, url, says):
    """Before: ``policy check`` said ``policy OK`` and ``serve`` died with a traceback ending
    ``ValueError: Redis URL must specify one of the following schemes`` (exit code 1)."""
    import subprocess
    import sys

    policy = tmp_path / "p.yaml"
    policy.write_text(yaml.safe_dump({"store": {"backend": "redis", "url": url}}))
    script = Path(sys.executable).parent / "slm-router"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "router.cli"]
    for args in (["policy", "check", str(policy)], ["serve", "--policy", str(policy), "--port", "0", "--no-warm-up"]):
        done = subprocess.run(command + args, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "error: store.url: " in done.stderr and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "s3cret" not in done.stderr


def test_redis_urls_redis_py_opens_still_check():
    from router.policy import Policy

    for url in ("redis://127.0.0.1:6379/0", "rediss://user:pw@cache.example:6380/1", "unix:///run/redis.sock"):
        assert Policy.model_validate({"store": {"backend": "redis", "url": url}}).store.url == url


# -- 10. another program's SQLite database is not read as an empty request log ----------------

@pytest.mark.parametrize("command", [["report"], ["replay", "--policy", "{policy}"], ["learn", "--out", "{tmp}/out"]])
def test_a_foreign_sqlite_database_is_refused_and_left_as_it_was(tmp_path, command):
    """Before: ``report --log app.db`` (an SQLite file of another program) printed a report of
    0 requests and wrote the router's four tables into that database."""
    import sqlite3

    from typer.testing import CliRunner

    from router.cli import app

    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE customers (name TEXT)")
    policy = tmp_path / "p.yaml"
    policy.write_text("escalation: {enabled: false}\n")
    args = [a.replace("{policy}", str(policy)).replace("{tmp}", str(tmp_path)) for a in command]
    result = CliRunner().invoke(app, args + ["--log", str(foreign)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: {foreign} is not a request log (an SQLite database without a "
                                     "'requests' table; its tables: customers)")
    with sqlite3.connect(foreign) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["customers"]


# -- 11. policy versions --url of a server that is not slm-router is one line and exit 2 ---------

@pytest.mark.parametrize("body,content_type", [(b"<html>welcome</html>", "text/html"),
                                               (b'{"status": "ok"}', "application/json")])
def test_policy_versions_url_of_another_server_is_one_error_line(tmp_path, monkeypatch, body, content_type):
    """Before: an HTML page answered 200 (a proxy's, a web server's) was a JSONDecodeError
    traceback, and any JSON object was shown as an empty book of versions."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from typer.testing import CliRunner

    from router.cli import app

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("SLM_ROUTER_ADMIN_KEY", "sk-admin")
    try:
        result = CliRunner().invoke(app, ["policy", "versions", "--url", url])
    finally:
        server.shutdown()
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: {url} answered 200 with a body that is not slm-router's book of policy "
                                     f"versions ({content_type}); is --url an slm-router server?")


# -- 12. train --label that does not exist is refused before any work -------------------------

def test_train_with_an_unknown_label_is_refused_before_the_data_is_embedded(tmp_path):
    """Before: the data was read and embedded and the first fit started (progress bars around
    the error line) before ``unknown label`` was reported."""
    from typer.testing import CliRunner

    from router.cli import app

    data = tmp_path / "my.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"question {i}", "outcomes": {"small": i % 2, "big": 1},
                                        "weak": "small", "strong": "big"}) + "\n" for i in range(12)))
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--label", "needs-strong", "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: unknown label 'needs-strong'; expected one of needs_strong, weak_wrong, gap"], lines
    assert not (tmp_path / "out").exists()


# -- 13. policy versions with the policy's Redis down: one line ---------------------------------

@pytest.mark.parametrize("args", [["versions"], ["activate", "abc"], ["revert"]])
def test_policy_versions_with_redis_down_is_one_error_line(tmp_path, args):
    """Before: a bare ``Redis unreachable: Error 111 ...`` line (the state's server-side
    warning, printed by logging's last-resort handler) came before the error line."""
    import subprocess
    import sys

    policy = tmp_path / "ops.yaml"
    policy.write_text(yaml.safe_dump({"store": {"backend": "redis", "url": "redis://127.0.0.1:9/0"}}))
    script = Path(sys.executable).parent / "slm-router"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "router.cli"]
    done = subprocess.run(command + ["policy", *args, "--policy", str(policy)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the shared state is unreachable: "), lines


# -- 14. a tool result must answer a call of the turn before it --------------------------------

_CALLED = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}


@pytest.mark.parametrize("messages,param,says", [
    ([_HI, {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}], "messages[1].tool_call_id",
     "must be a response to a preceding message with 'tool_calls'"),
    ([_HI, _CALLED, {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}], "messages[2].tool_call_id",
     "answers tool call 'call_9', which the preceding message with 'tool_calls' did not make"),
    ([_HI, _CALLED, _HI, {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}], "messages[3].tool_call_id",
     "must be a response to a preceding message with 'tool_calls'"),
])
def test_a_tool_turn_that_answers_no_call_is_a_400(served, good_up, messages, param, says):
    """Before: answered 200 (OpenAI answers 400: a ``tool`` message must respond to the
    preceding message with ``tool_calls``), so the same request worked on one tier only."""
    import openai

    url, _ = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    before = len(good_up.received)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="cloud", messages=messages)
    assert caught.value.param == param and says in caught.value.message, caught.value.message
    assert len(good_up.received) == before
    answered = [_HI, _CALLED, {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    assert client.chat.completions.create(model="cloud", messages=answered).choices[0].message.content == "ok"


def test_anthropic_and_responses_tool_results_must_answer_a_call(served):
    """The same rule in each API's own words and field paths."""
    import anthropic
    import openai

    url, _ = served
    claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="cloud", max_tokens=16, messages=[_HI, _use(), {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t9", "content": "sunny"}]}])
    assert caught.value.body["error"]["message"].startswith(
        "messages.2.content.0.tool_use_id: unexpected tool_use_id 't9'")
    assert claude.messages.create(model="cloud", max_tokens=16, messages=[_HI, _use(), _RESULT]).content[0].text == "ok"
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="cloud", input=[_HI, {"type": "function_call_output", "call_id": "c9",
                                                            "output": "sunny"}])
    assert caught.value.param == "input[1].call_id" and "no function_call item before it" in caught.value.message


# -- 15. a content part or response_format whose type is not a string names the field -----------------------------

@pytest.mark.parametrize("kind", [[], {}, ["text"], {"a": 1}, 5, None])
def test_a_content_part_type_that_is_not_a_string_names_the_field(served, kind):
    """Before: ``Could not read the request: TypeError: unhashable type: 'list'`` (param null)
    for a list or object ``type``. Found by swapping every field of a valid request for odd values."""
    url, _ = served
    for path in ("/v1/chat/completions", "/v1/route"):
        r = httpx.post(url + path, timeout=30, json={"model": "cloud", "messages": [
            {"role": "user", "content": [{"type": kind, "text": "hi"}]}]})
        error = r.json()["error"]
        assert r.status_code == 400 and error["param"] == "messages[0].content[0].type", error
        assert "expected one of" in error["message"] and "Could not read" not in error["message"]
        r = httpx.post(url + path, timeout=30, json={"model": "cloud", "messages": [{"role": "user", "content": "hi"}],
                                                     "response_format": {"type": kind}})
        error = r.json()["error"]
        assert r.status_code == 400 and error["param"] == "response_format.type", error
