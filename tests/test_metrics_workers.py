"""GET /metrics from `slm-router serve --workers 2`: prometheus-client's multiprocess mode
sums both workers, so every scrape, whichever worker answers it, counts every request."""

from __future__ import annotations

import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .fake_openai import FakeOpenAI
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow
N = 24


def _ok_cloud(text: str) -> float:
    m = re.search(r'^slm_router_requests_total\{status="ok",tier="cloud"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_sum_every_worker(tmp_path, monkeypatch):
    metrics_dir = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    # a slow upstream keeps connections open together, so both workers' accept loops get some
    cloud, local = FakeOpenAI(delay_s=0.05).start(), FakeOpenAI(answer="A local answer.").start()
    policy = {
        # Both tiers are real HTTP servers here: this test is about counting, not models.
        "tiers": {"local": {"model": "openai/local-model", "api_key": "x", "api_base": local.url,
                            "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
                  "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url}},
    }
    (tmp_path / "proxy").mkdir()
    proxy = ProxyProcess(policy, tmp_path / "proxy", args=["--workers", "2", "--no-warm-up"]).start()
    try:
        def ask(i: int) -> int:
            with httpx.Client(timeout=60) as client:  # a new connection each time
                return client.post(proxy.url + "/v1/chat/completions",
                                   json={"model": "cloud", "messages": [{"role": "user", "content": f"Q{i}?"}]}).status_code

        def per_worker_counts() -> dict[str, float]:
            """Each worker's own files alone hold part of the count; together all of it."""
            counts = {}
            for db in metrics_dir.glob("counter_*.db"):
                pid = db.stem.split("_")[-1]
                one = tmp_path / f"worker-{pid}"
                one.mkdir(exist_ok=True)
                shutil.copy(db, one / db.name)
                registry = CollectorRegistry()
                MultiProcessCollector(registry, path=str(one))
                counts[pid] = _ok_cloud(generate_latest(registry).decode())
            return counts

        sent = 0
        # A worker still starting (a fresh checkout compiles its bytecode first) serves nothing
        # yet: keep sending rounds until both have served, for up to a minute.
        deadline = time.time() + 60
        while time.time() < deadline:
            with ThreadPoolExecutor(16) as pool:
                assert set(pool.map(ask, range(sent, sent + N))) == {200}
            sent += N
            time.sleep(0.3)  # the log writers count a request just after answering it
            served = {pid: n for pid, n in per_worker_counts().items() if n}
            if len(served) == 2:
                break
        deadline = time.time() + 30  # the log writers count a request just after answering it
        while time.time() < deadline:
            with httpx.Client(timeout=30) as client:
                if _ok_cloud(client.get(proxy.url + "/metrics").text) >= sent:
                    break
            time.sleep(0.2)
        scrapes = []
        for _ in range(6):
            with httpx.Client(timeout=30) as client:
                scrapes.append(client.get(proxy.url + "/metrics").text)
        assert [_ok_cloud(s) for s in scrapes] == [float(sent)] * 6
        assert re.search(rf'slm_router_request_latency_seconds_count\{{tier="cloud"\}} {sent}\.0', scrapes[0])
        assert re.search(r'slm_router_cost_usd_total\{tier="cloud"\} [0-9.e-]+', scrapes[0])
        # counted by each worker's log writer after the answer: read once the scrapes show all
        served = {pid: n for pid, n in per_worker_counts().items() if n}
        assert sum(served.values()) == sent
        assert len(served) == 2, f"both workers should have served requests: {served}"
    finally:
        proxy.stop()
        cloud.stop()
        local.stop()
