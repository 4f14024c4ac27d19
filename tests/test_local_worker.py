"""A crash of the SLM never takes the server down: the real `slm-router serve`, the real
SmolLM2 worker process killed with SIGKILL / SIGSEGV mid-generation, the real OpenAI SDK as
client and a real HTTP server (through litellm) as the cloud tier."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from .fake_openai import ANSWER
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow
LONG = [{"role": "user", "content": "Count from 1 to 400, separated by commas."}]  # asked greedily: a long answer
SHORT = [{"role": "user", "content": "What is the capital of Japan?"}]


def _policy(cloud_url: str | None, max_crashes: int = 20) -> dict:
    cloud = {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud_url} if cloud_url \
        else {"model": "openai/gpt-4o-mini", "api_key": ""}
    return {
        "tiers": {"local": {"model": "slm-local/smollm2", "runtime": {"n_ctx": 1024, "max_crashes": max_crashes, "parallel": 1}},
                  "cloud": cloud},
        "routing": {"on_cloud_unavailable": "local", "classifier": {"threshold": 1.0}},
        "escalation": {"enabled": True},
    }


def _start(tmp: Path, policy: dict) -> ProxyProcess:
    return ProxyProcess(policy, tmp).start()


def _health(proxy: ProxyProcess) -> dict:
    return httpx.get(proxy.url + "/healthz", timeout=5).json()


def _kill_when_busy(proxy: ProxyProcess, sig: int, timeout_s: float = 30, after_s: float = 0.2) -> int:
    """Wait until the local worker is generating, then ``after_s`` more, then send it
    ``sig``; its pid."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        workers = _health(proxy)["local"]["local"]["workers"]
        busy = [w["pid"] for w in workers if w["busy"]]
        if busy:
            time.sleep(after_s)  # a few tokens in
            import os

            os.kill(busy[0], sig)
            return busy[0]
        time.sleep(0.02)
    raise AssertionError("the local worker never became busy")


def _wait_ready(proxy: ProxyProcess, restarts: int, timeout_s: float = 60) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        local = _health(proxy)["local"]["local"]
        if local["restarts"] >= restarts and local["state"] == "ready":
            return local
        time.sleep(0.1)
    raise AssertionError(f"the worker was not restarted: {local}")


def _calls(proxy: ProxyProcess, request_id: str, timeout_s: float = 10) -> list[tuple]:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with sqlite3.connect(proxy.log_path) as db:
            rows = db.execute("SELECT tier, purpose, status, error FROM calls WHERE request_id = ? ORDER BY ts",
                              (request_id,)).fetchall()
            req = db.execute("SELECT status, http_status, tier, error FROM requests WHERE id = ?", (request_id,)).fetchone()
        if req:
            return [req, *rows]
        time.sleep(0.1)
    raise AssertionError(f"request {request_id} was not logged")


def _in_thread(fn):
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except Exception as err:  # noqa: BLE001 - handed to the test
            box["error"] = err

    t = threading.Thread(target=run)
    t.start()
    return t, box


@pytest.fixture(scope="module")
def with_cloud(tmp_path_factory, cloud):
    proxy = _start(tmp_path_factory.mktemp("crash-cloud"), _policy(cloud.url))
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
@pytest.mark.parametrize("stream", [False, True])
def test_crash_mid_request_goes_to_the_cloud(with_cloud, sig, stream):
    proxy = with_cloud
    before = _health(proxy)["local"]["local"]["restarts"]
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0)

    def ask():
        if stream:  # the cascade checks a local answer whole, so nothing was sent before the crash
            with client.chat.completions.with_streaming_response.create(
                    model="auto", messages=LONG, max_tokens=400, temperature=0, stream=True) as raw:
                text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
                return raw.headers["x-request-id"], raw.headers["x-router-tier"], text
        raw = client.chat.completions.with_raw_response.create(model="local", messages=LONG, max_tokens=400, temperature=0)
        return raw.headers["x-request-id"], raw.headers["x-router-tier"], raw.parse().choices[0].message.content

    thread, box = _in_thread(ask)
    pid = _kill_when_busy(proxy, sig)
    thread.join(60)
    assert "error" not in box, box.get("error")
    rid, tier, text = box["value"]
    assert tier == "cloud" and text == ANSWER
    req, *calls = _calls(proxy, rid)
    assert req[:3] == ("ok", 200, "cloud")
    crashed = [c for c in calls if c[0] == "local"]
    assert crashed and crashed[0][2] == "error" and "local_worker_crashed" in crashed[0][3]
    assert signal.Signals(sig).name in crashed[0][3] and str(pid) in crashed[0][3]
    assert [c[1] for c in calls if c[0] == "cloud"] == ["fallback"]
    health = _wait_ready(proxy, before + 1)
    assert health["restarts"] == before + 1 and pid not in [w["pid"] for w in health["workers"]]
    assert _health(proxy)["status"] == "ok"
    eb = health["extra_buffers"]  # the probe's verdict, its time and reason (cached per build and CPU)
    assert eb["mode"] == "auto" and eb["source"] in ("probe", "cache") and eb["reason"] and eb["probed_at"] > 0
    assert [w["use_extra_bufts"] for w in health["workers"] if w["ready"]] == [eb["enabled"]]
    raw = client.chat.completions.with_raw_response.create(model="local", messages=SHORT, max_tokens=16)
    assert raw.headers["x-router-tier"] == "local" and "Tokyo" in raw.parse().choices[0].message.content


def test_crash_without_cloud_is_a_clean_503_then_repeated_crashes_mark_the_tier_unavailable(tmp_path):
    proxy = _start(tmp_path, _policy(None, max_crashes=3))
    try:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0)
        thread, box = _in_thread(lambda: client.chat.completions.create(model="local", messages=LONG, max_tokens=400, temperature=0))
        _kill_when_busy(proxy, signal.SIGSEGV)
        thread.join(60)
        err = box["error"]
        assert isinstance(err, openai.APIStatusError) and err.status_code == 503
        body = err.response.json()["error"]
        assert body["code"] == "tier_unavailable" and "local_worker_crashed" in body["message"]
        rid = err.response.headers["x-request-id"]
        req, *calls = _calls(proxy, rid)
        assert req[:2] == ("error", 503) and "local_worker_crashed" in req[3]
        assert calls[0][2] == "error" and "local_worker_crashed" in calls[0][3]
        _wait_ready(proxy, 1)
        answer = client.chat.completions.create(model="local", messages=SHORT, max_tokens=16)
        assert "Tokyo" in answer.choices[0].message.content

        # Streaming, forced to the local tier: text already reached the client, so the
        # stream ends with an error event and the log says partial + local_worker_crashed.
        first = threading.Event()

        def ask_stream():
            with httpx.stream("POST", proxy.url + "/v1/chat/completions", timeout=60, json={
                    "model": "local", "messages": LONG, "max_tokens": 400, "temperature": 0, "stream": True}) as resp:
                parts = []
                for piece in resp.iter_text():
                    parts.append(piece)
                    if '"content":"' in piece and '"content":""' not in piece:
                        first.set()
                return resp.headers["x-request-id"], resp.status_code, "".join(parts)

        thread, box = _in_thread(ask_stream)
        assert first.wait(30)
        _kill_when_busy(proxy, signal.SIGKILL, after_s=0)
        thread.join(60)
        rid, status, body = box["value"]
        assert status == 200 and "local_worker_crashed" in body and body.rstrip().endswith("data: [DONE]")
        req, *calls = _calls(proxy, rid)
        assert req[0] == "partial" and "local_worker_crashed" in calls[0][3]
        _wait_ready(proxy, 2)

        # Third crash within 60 s: no restart loop, the tier is unavailable with a reason.
        thread, box = _in_thread(lambda: client.chat.completions.create(model="local", messages=LONG, max_tokens=400, temperature=0))
        _kill_when_busy(proxy, signal.SIGKILL)
        thread.join(60)
        assert box["error"].status_code == 503
        health = _health(proxy)
        local = health["local"]["local"]
        assert local["state"] == "unavailable" and "3 worker crashes" in local["unavailable_reason"]
        assert local["workers"] == [] and local["restarts"] == 2
        assert health["status"] == "degraded" and health["tiers"]["local"]["available"] is False
        again = pytest.raises(openai.APIStatusError, client.chat.completions.create,
                              model="local", messages=SHORT, max_tokens=8)
        assert again.value.status_code == 503 and "local_tier_unavailable" in again.value.response.json()["error"]["message"]
        assert httpx.get(proxy.url + "/v1/models").status_code == 200  # the server itself is fine
        # Prometheus counts each death and what the pool did: two restarts, then it stopped.
        counts = _metric_samples(proxy)
        model = {"model": "slm-local/smollm2"}
        assert counts[("slm_router_local_worker_crashes_total", (("model", "slm-local/smollm2"), ("outcome", "restarted")))] == 2
        assert counts[("slm_router_local_worker_crashes_total", (("model", "slm-local/smollm2"), ("outcome", "stopped")))] == 1
        assert counts[("slm_router_local_worker_restarts_total", tuple(model.items()))] == local["restarts"] == 2
    finally:
        proxy.stop()


def _metric_samples(proxy: ProxyProcess) -> dict[tuple[str, tuple], float]:
    """``GET /metrics`` parsed with prometheus-client's parser: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(proxy.url + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
