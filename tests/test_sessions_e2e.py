"""Sessions through real `slm-router serve` processes: a 6-turn conversation whose third turn
is routed to the cloud stays there under ``sticky`` and bounces back under ``per_turn``; two
replicas on a real Redis agree on a session; an expired TTL starts afresh; the log and
``slm-router report --by session`` show the switches. Both tiers are real OpenAI-compatible
HTTP servers reached through litellm; the client is the official ``openai`` SDK."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from .fake_openai import FakeOpenAI
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow

TURNS = ["Hello there.", "Suggest a name for a cat.", "Prove that the square root of 2 is irrational.",
         "Thanks!", "And a name for a dog?", "Bye."]
LOCAL_ANSWER = "Local tier answering."


@pytest.fixture(scope="module")
def local_server():
    server = FakeOpenAI(answer=LOCAL_ANSWER).start()
    yield server
    server.stop()


def _policy(local_url: str, cloud_url: str, **session) -> dict:
    return {
        "tiers": {
            "local": {"model": "openai/local-sim", "api_key": "sk-local", "api_base": local_url,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-cloud", "api_base": cloud_url},
        },
        # every turn scores below 1.0, so the classifier routes it locally; the rule sends turn 3 to the cloud
        "routing": {"classifier": {"threshold": 1.0}, "session": session},
        "escalation": {"enabled": False},
        "rules": [{"name": "proofs-need-the-cloud", "match": {"last_user_regex": "(?i)prove"},
                   "action": {"tier": "cloud"}}],
    }


@pytest.fixture(scope="module")
def proxies(local_server, cloud, redis_url, tmp_path_factory):
    from .redis_server import delete_prefix, unique_prefix

    prefix = unique_prefix()
    redis = {"store": {"backend": "redis", "url": redis_url, "prefix": prefix}}
    made = {
        "sticky": ProxyProcess(_policy(local_server.url, cloud.url), tmp_path_factory.mktemp("sticky")),
        "per_turn": ProxyProcess(_policy(local_server.url, cloud.url, mode="per_turn"), tmp_path_factory.mktemp("per")),
        "a": ProxyProcess({**_policy(local_server.url, cloud.url, ttl_s=4), **redis}, tmp_path_factory.mktemp("a")),
        "b": ProxyProcess({**_policy(local_server.url, cloud.url, ttl_s=4), **redis}, tmp_path_factory.mktemp("b")),
    }
    for p in made.values():
        p.launch()
    try:
        for p in made.values():
            p.wait_ready()
        yield made
    finally:
        for p in made.values():
            p.stop()
        delete_prefix(redis_url, prefix)


def _converse(targets: list[ProxyProcess], turns: list[str], **kw) -> list[dict]:
    """Send the turns as one growing conversation (turn i to targets[i % len]); per turn the
    router headers that matter."""
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    out = []
    for i, text in enumerate(turns):
        client = openai.OpenAI(base_url=targets[i % len(targets)].url + "/v1", api_key="unused", max_retries=0)
        messages.append({"role": "user", "content": text})
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, **kw)
        answer = raw.parse().choices[0].message.content
        messages.append({"role": "assistant", "content": answer})
        out.append({"tier": raw.headers["x-router-tier"], "session": raw.headers.get("x-router-session"),
                    "switched": raw.headers.get("x-router-session-switched"), "id": raw.headers["x-request-id"],
                    "reason": raw.headers["x-router-reason"]})
    return out


def test_sticky_keeps_the_cloud_for_the_rest_of_the_conversation(proxies):
    turns = _converse([proxies["sticky"]], TURNS, user="alice")
    print("\nsticky:", [(t["tier"], t["switched"]) for t in turns])
    assert [t["tier"] for t in turns] == ["local", "local", "cloud", "cloud", "cloud", "cloud"]
    assert [t["switched"] for t in turns] == ["false", "false", "true", "false", "false", "false"]
    assert len({t["session"] for t in turns}) == 1 and turns[0]["session"].startswith("u-")
    assert all("session sticky on cloud" in t["reason"] for t in turns[3:])
    # POST /v1/route shows the session's view of the next turn without calling a model
    history = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": TURNS[0]}]
    route = httpx.post(proxies["sticky"].url + "/v1/route", json={"model": "auto", "user": "alice", "messages": history},
                       headers={"authorization": "Bearer unused"})  # the SDK's key: the same tenant
    assert route.json()["session"] == {"id": turns[0]["session"], "per_turn_tier": "local", "previous_tier": "cloud"}
    assert route.json()["tier"] == "cloud"
    # the same user's other conversation is another session, routed on its own
    other = _converse([proxies["sticky"]], ["Thanks!"], user="alice")[0]
    assert other["tier"] == "local" and other["session"] != turns[0]["session"]

    db = sqlite3.connect(proxies["sticky"].log_path)
    deadline = time.time() + 10
    while True:
        rows = db.execute("SELECT tier, session_id, session_prev_tier, session_per_turn_tier FROM requests "
                          "WHERE session_id = ? ORDER BY ts", (turns[0]["session"],)).fetchall()
        if len(rows) == 6 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert [r[0] for r in rows] == ["local", "local", "cloud", "cloud", "cloud", "cloud"]
    assert [r[2] for r in rows] == [None, "local", "local", "cloud", "cloud", "cloud"]
    assert [r[3] for r in rows] == ["local", "local", "cloud", "local", "local", "local"]

    env = {**os.environ, "COLUMNS": "250"}
    script = Path(sys.executable).parent / "slm-router"
    report = subprocess.run([str(script), "report", "--log", str(proxies["sticky"].log_path), "--by", "session"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert report.returncode == 0, report.stderr
    print(report.stdout)
    line = next(line for line in report.stdout.splitlines() if turns[0]["session"] in line and "+$" in line)
    cells = [c.strip() for c in line.split("│") if c.strip()]
    assert cells[1:5] == ["6", "1", "3", "local 2, cloud 4"]  # turns, switches, held, per tier
    assert float(cells[-1].lstrip("+$")) > 0  # the held cloud turns cost more than local ones would have


def test_per_turn_bounces_back(proxies):
    turns = _converse([proxies["per_turn"]], TURNS, user="alice")
    print("\nper_turn:", [(t["tier"], t["switched"]) for t in turns])
    assert [t["tier"] for t in turns] == ["local", "local", "cloud", "local", "local", "local"]
    assert [t["switched"] for t in turns] == ["false", "false", "true", "true", "false", "false"]


def test_two_replicas_on_redis_agree_and_an_expired_session_starts_fresh(proxies):
    a, b = proxies["a"], proxies["b"]
    turns = _converse([a, b], TURNS, extra_headers={"x-session-id": "conv-redis-1"})
    print("\nreplicas a/b:", [(t["tier"], t["switched"]) for t in turns])
    assert [t["tier"] for t in turns] == ["local", "local", "cloud", "cloud", "cloud", "cloud"]
    assert {t["session"] for t in turns} == {"conv-redis-1"}
    time.sleep(5)  # ttl_s is 4: the session is forgotten
    later = _converse([b], ["Hello again."], extra_headers={"x-session-id": "conv-redis-1"})[0]
    assert later["tier"] == "local" and later["switched"] == "false"
