"""Input-handling fixes of the fresh6 break test, through the real app on a uvicorn thread and
a scripted OpenAI-compatible upstream (``tests.scripted_upstream``), with the real SDKs."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from .app_thread import logged_row, serving_policy, sim_tiers


@pytest.fixture(scope="module")
def served(good_up):
    """(base URL, store, upstream): the two-tier policy on ``good_up`` (answers "ok")."""
    with serving_policy({"tiers": sim_tiers(good_up.url)}) as (url, store):
        yield url, store, good_up


def _openai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


# -- 1. a conversation of only a system turn is answered --------------------------------------

def test_a_lone_system_turn_is_answered_and_routed_on_its_text(served):
    url, store, up = served
    before = len(up.received)
    raw = _openai(url).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "system", "content": "Write a haiku about the sea."}])
    assert raw.parse().choices[0].message.content == "ok"
    sent = up.received[before:]
    assert sent and all(b["messages"] == [{"role": "system", "content": "Write a haiku about the sea."}] for b in sent)
    row = logged_row(store, raw.headers["x-request-id"])
    assert row.status == "ok"


def test_route_reads_the_system_text_when_no_user_turn(served):
    url, _, _ = served
    r = httpx.post(f"{url}/v1/route", json={"model": "auto", "messages": [{"role": "system", "content": "Say hi."}]})
    assert r.status_code == 200, r.text


def test_an_empty_lone_system_turn_is_still_refused(served):
    url, _, _ = served
    with pytest.raises(openai.BadRequestError) as err:
        _openai(url).chat.completions.create(model="auto", messages=[{"role": "system", "content": "  "}])
    assert err.value.body["param"] == "messages[0].content" and err.value.body["code"] == "empty_content"


def test_features_and_cache_scope_of_a_system_only_request():
    from router.guards.cache import semantic_scope
    from router.request.features import extract_features
    from router.request.parse import parse_chat_request

    r = parse_chat_request({"model": "auto", "messages": [{"role": "system", "content": "Name three rivers."}]})
    assert extract_features(r).text == "Name three rivers."
    assert semantic_scope(r, "t", {})[1] == "Name three rivers."
    with_user = parse_chat_request({"model": "auto", "messages": [{"role": "system", "content": "S"},
                                                                  {"role": "user", "content": "Q"}]})
    assert extract_features(with_user).text == "Q"


# -- 2. inline images that no provider would read are refused before any tier -----------------

def _anthropic(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def _image(source: dict) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image", "source": source}]}]


@pytest.mark.parametrize("source,path", [
    ({"type": "base64", "media_type": "image/png", "data": "not base64!!"}, "messages.0.content.1.source.data"),
    ({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo"}, "messages.0.content.1.source.data"),
    ({"type": "base64", "media_type": "image/bmp", "data": "iVBORw0KGgo="}, "messages.0.content.1.source.media_type"),
    ({"type": "base64", "media_type": "text/plain", "data": "iVBORw0KGgo="}, "messages.0.content.1.source.media_type"),
    ({"type": "url", "url": "file:///etc/passwd"}, "messages.0.content.1.source.url"),
    ({"type": "url", "url": "ftp://example.com/cat.png"}, "messages.0.content.1.source.url"),
])
def test_anthropic_bad_image_is_a_logged_400_in_anthropics_shape(served, source, path):
    url, store, up = served
    before = len(up.received)
    with pytest.raises(anthropic.BadRequestError) as err:
        _anthropic(url).messages.create(model="auto", max_tokens=8, messages=_image(source))
    body = err.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(f"{path}: ")
    row = logged_row(store, body["request_id"])
    assert row.status == "error" and row.http_status == 400
    assert len(up.received) == before, "a refused image reached a tier"


def test_anthropic_good_base64_image_is_forwarded_as_a_data_url(served):
    url, _, up = served
    before = len(up.received)
    answer = _anthropic(url).messages.create(model="auto", max_tokens=8, messages=_image(
        {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}))
    assert answer.content[0].text == "ok"
    parts = up.received[-1]["messages"][0]["content"]
    assert len(up.received) > before and parts[1]["image_url"]["url"] == "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize("image_url", ["data:image/png;base64,@@@@", "data:image/png;base64,iVBORw0KGgo",
                                       "data:image/png,iVBORw0KGgo=", "data:image/png;base64,"])
def test_openai_data_url_that_is_not_base64_is_a_400_naming_the_field(served, image_url):
    url, store, up = served
    before = len(up.received)
    with pytest.raises(openai.BadRequestError) as err:
        _openai(url).chat.completions.create(model="auto", messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": image_url}}]}])
    body = err.value.body
    assert body["param"] == "messages[0].content[1].image_url.url" and body["type"] == "invalid_request_error"
    assert "'messages[0].content[1].image_url.url'" in body["message"]
    assert logged_row(store, err.value.response.headers["x-request-id"]).http_status == 400
    assert len(up.received) == before


# -- 3. the prompt-size estimate counts each turn's framing -------------------------------------

@pytest.fixture(scope="module")
def windowed(good_up):
    """(base URL, store, policy dict): a local tier with a 1,000-token window beside gpt-4o-mini (128k)."""
    policy = {"tiers": sim_tiers(good_up.url, capabilities={"context_window": 1000})}
    with serving_policy(policy) as (url, store):
        yield url, store, policy


def _his(n: int) -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(n - 1)] + \
        [{"role": "user", "content": "hi"}]


def test_approx_tokens_adds_the_cookbooks_per_message_overhead():
    from router.request.features import approx_tokens, extract_features
    from router.request.parse import parse_chat_request

    assert approx_tokens(80_002, 40_001) == 20_000 + 4 * 40_001 + 3
    assert approx_tokens(80_002, None) == 20_000  # a log written before the count: as decided then
    f = extract_features(parse_chat_request({"model": "auto", "messages": _his(3)}))
    assert (f.prompt_messages, f.approx_prompt_tokens) == (3, 6 // 4 + 12 + 3)


def test_forty_thousand_short_turns_are_refused_before_any_tier(windowed, good_up):
    url, store, _ = windowed
    before = len(good_up.received)
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "auto", "messages": _his(40_001)}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
    assert "about 180007 prompt tokens" in r.json()["error"]["message"]
    assert len(good_up.received) == before
    assert logged_row(store, r.headers["x-request-id"]).http_status == 400


def test_many_turns_leave_the_small_window_and_replay_decides_as_live(windowed):
    from router.analysis.redecide import logged_decision
    from router.analysis.replay import replay
    from router.policy import Policy

    url, store, policy = windowed
    # 300 turns of "hi": 150 tokens by characters alone (fits the local 1,000), 1,353 with the framing
    raw = _openai(url).chat.completions.with_raw_response.create(model="auto", messages=_his(300))
    assert raw.parse().choices[0].message.content == "ok"
    row = logged_row(store, raw.headers["x-request-id"])
    assert row.routed_tier == "cloud" and row.prompt_messages == 300 and row.prompt_chars == 600
    validated = Policy.model_validate(policy)
    assert logged_decision(row, validated).tier == "cloud"
    rows = [r for r in store.requests() if r.id == row.id]
    assert replay(rows, [], validated).decisions_changed == 0
    row.prompt_messages = None  # as an older log holds it: decided by characters alone, as it was then
    assert logged_decision(row, validated).tier == "local"


# -- 4. the CSV report carries the judge's three-way verdicts -----------------------------------

def test_report_csv_counts_the_judges_three_way_verdicts(tmp_path):
    import csv
    import io

    from typer.testing import CliRunner

    from router.cli import app
    from router.store.records import RequestRecord, ShadowRecord
    from router.store.sqlite import SQLiteStore

    path = tmp_path / "log.sqlite3"
    store = SQLiteStore(path)
    outcomes = ["better", "same", "same", "worse", "worse", "worse", None]
    for i, outcome in enumerate(outcomes):
        tier = "local" if i < 5 else "cloud"
        store.record(RequestRecord(f"r{i}", 1_780_000_000.0 + i, requested_model="auto", routed_tier=tier, tier=tier,
                                   local=tier == "local", counterfactual_usd=0.001))
        store.record_shadow(ShadowRecord(f"r{i}", 1_780_000_000.0 + i, tier="cloud", model="m", local_text="a",
                                         cloud_text="b", judge_model="openai/judge", judge_outcome=outcome,
                                         judge_verdict=None if outcome is None else outcome != "worse"))
    store.close()
    result = CliRunner().invoke(app, ["report", "--log", str(path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert (row["judge_better"], row["judge_same"], row["judge_worse"], row["judge_unsure"]) == ("1", "2", "3", "1")
    result = CliRunner().invoke(app, ["report", "--log", str(path), "--format", "csv", "--by", "tier"])
    rows = {r["group"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert (rows["local"]["judge_better"], rows["local"]["judge_same"], rows["local"]["judge_worse"]) == ("1", "2", "2")
    assert (rows["cloud"]["judge_worse"], rows["cloud"]["judge_unsure"]) == ("1", "1")


# -- 5. a policy file with a NUL or control byte is one "not valid YAML" line, exit 2 ----------

@pytest.mark.parametrize("byte", [b"\x00", b"\x07", b"\x1b"], ids=["NUL", "BEL", "ESC"])
@pytest.mark.parametrize("command", ["policy check", "replay", "doctor", "serve"])
def test_a_policy_with_a_control_byte_is_one_yaml_error_and_exit_2(tmp_path, byte, command):
    from typer.testing import CliRunner

    from router.cli import app

    path = tmp_path / "p.yaml"
    path.write_bytes(b"tiers:\n  local:\n    model: openai/x" + byte + b"y\n")
    args = {"policy check": ["policy", "check", str(path)],
            "replay": ["replay", "--policy", str(path), "--log", str(tmp_path / "log.sqlite3")],
            "doctor": ["doctor", "--policy", str(path), "--no-models"],
            "serve": ["serve", "--policy", str(path), "--port", "9"]}[command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if "not valid YAML" in line]
    assert len(lines) == 1 and f"{path}:3:20: error: not valid YAML" in lines[0], result.output
    assert f"#x{byte[0]:04x}" in lines[0] and "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


# -- 6. an --out that cannot be created is one line and exit 2 before any work -----------------

@pytest.mark.parametrize("command", ["learn", "train", "label", "score"])
@pytest.mark.parametrize("where", ["under a file", "a file itself"])
def test_an_out_that_cannot_be_created_fails_first(tmp_path, command, where):
    import time

    from typer.testing import CliRunner

    from router.cli import app

    blocker = tmp_path / "plain.txt"
    blocker.write_text("not a folder")
    out = blocker / "sub" / ("labels.jsonl" if command in ("label", "score") else "dir")
    if where == "a file itself":
        out = blocker if command in ("learn", "train") else tmp_path
    args = {"learn": ["learn", "--out", str(out), "--log", str(tmp_path / "missing.sqlite3")],
            "train": ["train", "--out", str(out), "--data", "gsm8k"],
            "label": ["label", "--data", "gsm8k", "--out", str(out)],
            "score": ["score", "--input", str(tmp_path / "missing.jsonl"), "--output", str(out)]}[command]
    start = time.monotonic()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(("error: --out ", "error: --output ")), lines
    assert str(out) in lines[0] and "Traceback" not in result.output
    assert "missing" not in lines[0]  # the output is checked before the inputs are read
    assert time.monotonic() - start < 5
    assert blocker.read_text() == "not a folder"


# -- 7. wrong-typed JSON fields are 400s naming the field, never 500s or silently forwarded -----

_HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("extra,param", [
    ({"stop": ["a", 1]}, "stop"), ({"stop": {"a": 1}}, "stop"), ({"stop": True}, "stop"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"), ({"reasoning_effort": 3}, "reasoning_effort"),
    ({"seed": 2**63}, "seed"), ({"seed": -(2**63) - 1}, "seed"), ({"seed": 10**30}, "seed"),
    ({"temperature": True}, "temperature"), ({"top_p": "0.5"}, "top_p"), ({"presence_penalty": False}, "presence_penalty"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"messages": [*_HI, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}, *_HI]},
     "messages[1].tool_calls[0].function.arguments"),
    ({"messages": [*_HI, {"role": "assistant", "content": None, "tool_calls": [
        {"id": 7, "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, *_HI]}, "messages[1].tool_calls[0].id"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "https://example.com/cat.png", "detail": "ultra"}}]}]}, "messages[0].content[0].image_url.detail"),
])
def test_chat_fields_of_the_wrong_type_are_400s_naming_them(served, extra, param):
    url, store, up = served
    before = len(up.received)
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "auto", "messages": _HI, **extra}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and f"'{param}'" in err["message"]
    assert logged_row(store, r.headers["x-request-id"]).http_status == 400
    assert len(up.received) == before
    route = httpx.post(f"{url}/v1/route", json={"model": "auto", "messages": _HI, **extra}, timeout=30)
    assert route.status_code == 400 and route.json()["error"]["param"] == param


@pytest.mark.parametrize("extra", [{"reasoning_effort": e} for e in ("none", "minimal", "low", "medium", "high")]
                         + [{"seed": 2**63 - 1}, {"seed": -(2**63)}, {"temperature": 1}, {"stop": "END"}])
def test_chat_fields_in_range_still_pass(served, extra):
    url, _, up = served
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "auto", "messages": _HI, **extra}, timeout=30)
    assert r.status_code == 200, r.text
    assert all(up.received[-1][k] == v for k, v in extra.items())


@pytest.mark.parametrize("body,param", [
    (b'{"request_id": "x", "score": 1' + b"0" * 400 + b"}", "score"),  # a 400-digit integer: OverflowError, a 500
    (b'{"request_id": "x", "score": NaN}', "score"),
    (b'{"request_id": "x", "score": Infinity}', "score"),
])
def test_feedback_of_an_absurd_number_is_a_400(served, body, param):
    url, _, _ = served
    r = httpx.post(f"{url}/v1/feedback", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_anthropic_and_responses_numbers_must_be_numbers(served):
    url, _, up = served
    before = len(up.received)
    r = httpx.post(f"{url}/v1/messages", json={"model": "auto", "max_tokens": 8, "messages": _HI, "temperature": True},
                   headers={"anthropic-version": "2023-06-01"}, timeout=30)
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert r.json()["error"]["message"].startswith("temperature: ")
    r = httpx.post(f"{url}/v1/responses", json={"model": "auto", "input": "hi", "top_p": "0.5"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_p"
    assert len(up.received) == before


@pytest.fixture(scope="module")
def admin_served(good_up):
    policy = {"tiers": sim_tiers(good_up.url), "api_keys": [{"name": "ops", "key": "sk-f6-admin", "admin": True}]}
    with serving_policy(policy) as (url, store):
        yield url


@pytest.mark.parametrize("body,param", [({"stop": "no"}, "stop"), ({"stop": 1}, "stop"),
                                        ({"policy": "tiers: {}\n", "source": {"a": 1}}, "source")])
def test_policy_shadow_fields_of_the_wrong_type_are_400s(admin_served, body, param):
    r = httpx.post(f"{admin_served}/v1/policy/versions/shadow", json=body,
                   headers={"authorization": "Bearer sk-f6-admin"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_policy_shadow_with_a_nul_byte_is_an_invalid_policy_not_a_500(admin_served):
    r = httpx.post(f"{admin_served}/v1/policy/versions/shadow", json={"policy": "tiers:\n  local: {model: a\x00b}\n"},
                   headers={"authorization": "Bearer sk-f6-admin"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_policy", r.text
    assert "not valid YAML" in r.json()["error"]["message"]
