"""Hot reload of the policy file under a stream of concurrent requests, through the real
``slm-router serve``: no request fails, requests after a reload follow the new policy, a
request in flight keeps the policy it started with, an invalid file keeps the old policy
(errors logged with line numbers), and SIGHUP reloads when file watching is off.

Both tiers are real OpenAI-compatible HTTP servers with different answers, so which policy
answered a request is visible in its text; a catch-all rule forces the tier.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .fake_openai import FakeOpenAI
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow

ANSWER_A, ANSWER_B = "Answer from tier A.", "Answer from tier B."


def _policy(url_a: str, url_b: str, forced: str) -> dict:
    tier = {"model": "openai/gpt-4o-mini", "api_key": "sk-test"}
    return {
        "tiers": {"local": {**tier, "api_base": url_a}, "cloud": {**tier, "api_base": url_b}},
        "escalation": {"enabled": False},
        "rules": [{"name": f"everything-to-{forced}", "match": {}, "action": {"tier": forced}}],
    }


@pytest.fixture(scope="module")
def upstreams():
    a, b = FakeOpenAI(answer=ANSWER_A).start(), FakeOpenAI(answer=ANSWER_B).start()
    yield a, b
    a.stop()
    b.stop()


def _policy_info(proxy) -> dict:
    return httpx.get(proxy.url + "/v1/policy", timeout=10).json()


def _wait_for_hash(proxy, old: str, timeout_s: float = 20.0) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        h = _policy_info(proxy)["hash"]
        if h != old:
            return h
        time.sleep(0.05)
    raise AssertionError(f"policy hash still {old} after {timeout_s}s")


def _ask(url: str, i: int) -> tuple[int, str, str, str]:
    """One request (every third streamed); returns (status, text, policy hash, rules)."""
    body = {"model": "auto", "messages": [{"role": "user", "content": f"Request number {i}."}]}
    if i % 3 == 0:
        body["stream"] = True
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as r:
            raw = "".join(r.iter_text())
            ok = r.status_code == 200 and raw.rstrip().endswith("data: [DONE]") and '"error"' not in raw
            return ((r.status_code if ok else 599), _stream_text(raw), r.headers.get("x-router-policy", ""),
                    r.headers.get("x-router-rules", ""))
    r = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    text = r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else r.text
    return r.status_code, text.strip(), r.headers.get("x-router-policy", ""), r.headers.get("x-router-rules", "")


def _stream_text(raw: str) -> str:
    parts = []
    for line in raw.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices") or []:
                parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts).strip()


class _Traffic:
    """Requests sent continuously from ``workers`` threads until stopped."""

    def __init__(self, url: str, workers: int = 4) -> None:
        self.url, self.results, self._stop, self._lock = url, [], threading.Event(), threading.Lock()
        self._pool = ThreadPoolExecutor(workers)
        self._counter = 0
        self._futures = [self._pool.submit(self._run) for _ in range(workers)]

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._counter += 1
                i = self._counter
            sent = time.time()
            result = _ask(self.url, i)
            with self._lock:
                self.results.append((sent, time.time(), *result))

    def stop(self) -> list:
        self._stop.set()
        for f in self._futures:
            f.result()
        self._pool.shutdown()
        return self.results


def test_reload_under_concurrent_requests(upstreams, tmp_path):
    a, b = upstreams
    proxy = ProxyProcess(_policy(a.url, b.url, "local"), tmp_path).start()
    try:
        hash_a = _policy_info(proxy)["hash"]
        traffic = _Traffic(proxy.url)
        time.sleep(1.0)

        # 1. A valid new policy takes over while requests flow.
        proxy.write_policy(_policy(a.url, b.url, "cloud"))
        hash_b = _wait_for_hash(proxy, hash_a)
        swapped_at = time.time()
        time.sleep(1.0)

        # 2. An invalid file is rejected: the old policy stays, the errors are logged with positions.
        proxy.write_policy("tiers:\n  local: {model: openai/x, api_base: http://127.0.0.1:9}\n"
                           "routing:\n  classifier: {thresold: 0.3}\n")
        deadline = time.time() + 20
        while _policy_info(proxy)["last_reload_error"] is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        results = traffic.stop()
        info = _policy_info(proxy)
    finally:
        proxy.stop()

    assert info["hash"] == hash_b and info["reloads"] == 1
    assert "policy.yaml:4:16: error: routing.classifier.thresold: unknown key 'thresold'" in info["last_reload_error"]
    log = proxy.stderr_path.read_text()
    assert "policy reload (file changed) rejected" in log and "did you mean 'threshold'?" in log

    assert len(results) >= 20, len(results)
    failures = [r for r in results if r[2] != 200]
    assert not failures, failures[:3]
    for sent, done, status, text, policy, rules in results:
        # Each answer comes from the tier of the policy whose hash it carries.
        expected = {hash_a: (ANSWER_A, "everything-to-local"), hash_b: (ANSWER_B, "everything-to-cloud")}[policy]
        assert (text, rules) == expected, (text, policy, rules)
        if sent > swapped_at:  # sent after the new policy was seen active
            assert policy == hash_b
    assert {r[4] for r in results} == {hash_a, hash_b}

    # Every request is logged, with the hash of the policy that routed it.
    rows = sqlite3.connect(proxy.log_path).execute("SELECT policy_hash, tier, status FROM requests").fetchall()
    assert len(rows) == len(results)
    assert {(h, t) for h, t, _ in rows} == {(hash_a, "local"), (hash_b, "cloud")}
    assert all(s == "ok" for _, _, s in rows)


def test_request_in_flight_keeps_its_policy_and_sighup_reloads(tmp_path):
    slow = FakeOpenAI(answer=ANSWER_A, delay_s=4.0).start()
    fast = FakeOpenAI(answer=ANSWER_B).start()
    proxy = ProxyProcess(_policy(slow.url, fast.url, "local"), tmp_path, args=["--no-watch"]).start()
    try:
        hash_a = _policy_info(proxy)["hash"]
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(_ask, proxy.url, 1)
            while not slow.received:  # the request has reached tier A
                time.sleep(0.02)
            proxy.write_policy(_policy(slow.url, fast.url, "cloud"))
            time.sleep(1.5)
            assert _policy_info(proxy)["hash"] == hash_a  # --no-watch: the file alone changes nothing
            proxy.send_signal(signal.SIGHUP)
            hash_b = _wait_for_hash(proxy, hash_a)
            after = _ask(proxy.url, 2)
            status, text, policy, rules = in_flight.result(timeout=30)
        assert (status, text, policy, rules) == (200, ANSWER_A, hash_a, "everything-to-local")
        assert after == (200, ANSWER_B, hash_b, "everything-to-cloud")
    finally:
        proxy.stop()
        slow.stop()
        fast.stop()
