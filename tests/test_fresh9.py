"""What the fresh9 break test found (a lead checking every number of ``slm-router report``
against the SQLite log, an ML engineer running ``learn`` on the same traffic), each pinned
through the real server (``slm-router serve`` in a subprocess, OpenAI-compatible fake tiers
on real HTTP, the real ``openai`` SDK) and the real CLI."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from .fake_openai import FakeOpenAI, free_port


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "slm-router"
    return [str(script)] if script.exists() else [sys.executable, "-m", "router.cli"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_cli() + list(args), capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """Serve a policy with every local answer shadowed on the cloud, every cloud-routed one
    on the local tier, a judge tier and the cache on; send routed, forced-local and cached
    requests and feedback; return the policy and log paths once every shadow sample is logged."""
    from openai import OpenAI

    out = tmp_path_factory.mktemp("fresh9")
    cloud = FakeOpenAI(answer="Paris is the capital of France and a large city.").start()
    local = FakeOpenAI(answer="Paris is the capital.").start()
    judge = FakeOpenAI(answer="SAME").start()
    log = out / "log.sqlite3"
    policy = {"tiers": {"local": {"model": "openai/local-sim", "api_key": "sk-x", "api_base": local.url,
                                  "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
                        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-x", "api_base": cloud.url},
                        "judge": {"model": "openai/gpt-4o", "api_key": "sk-x", "api_base": judge.url}},
              "routing": {"classifier": {"threshold": 0.5}},
              "cache": {"enabled": True},
              "shadow": {"rate": 1.0, "cloud_rate": 1.0, "judge_tier": "judge"},
              "log": {"path": str(log)}}
    policy_path = out / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    server = subprocess.Popen(_cli() + ["serve", "--policy", str(policy_path), "--port", str(port), "--no-warm-up"],
                              env=env, cwd=out, stdout=subprocess.DEVNULL, stderr=(out / "serve.err").open("w"))
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 400
        while True:
            try:
                if httpx.get(f"{base}/healthz", trust_env=False).json().get("classifier") == "ready":
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and server.poll() is None, (out / "serve.err").read_text()[-2000:]
            time.sleep(0.3)
        client = OpenAI(base_url=f"{base}/v1", api_key="sk-team", max_retries=0)
        asks = ["hi", "What is the capital of France?", "thanks!", "2+2?",
                "Prove that there are infinitely many primes and discuss the history of the proof in detail.",
                "Explain quantum entanglement to a physicist, with equations."]
        ids, tiers = [], []
        for ask in asks + ["hi"]:  # the second "hi" is an exact cache hit
            raw = client.chat.completions.with_raw_response.create(
                model="auto", temperature=0, messages=[{"role": "user", "content": ask}])
            ids.append(raw.headers["x-request-id"])
            tiers.append(raw.headers["x-router-tier"])
        raw = client.chat.completions.with_raw_response.create(
            model="local", temperature=0, messages=[{"role": "user", "content": "hello local"}])
        ids.append(raw.headers["x-request-id"])
        first_local = ids[tiers.index("local")]
        done = httpx.post(f"{base}/v1/feedback", json={"request_id": first_local, "thumbs": "up"},
                          headers={"authorization": "Bearer sk-team"})
        assert done.status_code == 200, done.text
        deadline = time.time() + 60
        while True:  # every ok request gets one sample (a cache hit's and the forced one's too)
            with sqlite3.connect(log) as db:
                n = db.execute("select count(*) from shadows").fetchone()[0]
            if n >= len(ids):
                break
            assert time.time() < deadline, f"only {n} shadow samples logged"
            time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(timeout=30)
        for fake in (cloud, local, judge):
            fake.stop()
    return {"policy": policy_path, "log": log, "dir": out, "tiers": tiers}


# -- 1. the report's label counts are the labels `learn` uses ----------------------------------

def test_report_counts_the_labels_learn_uses(traffic):
    """Before: the report's "Labels for slm-router learn" counted the judged shadow samples of
    a cache hit and of a request forced to the local tier (no classifier score, so ``learn``
    skips them): the report said more judged shadow samples than ``learn`` then used."""
    log, out = str(traffic["log"]), traffic["dir"]
    with sqlite3.connect(log) as db:
        unscored = db.execute("select count(*) from shadows s join requests r on r.id = s.request_id "
                              "where s.kind = 'shadow' and r.score is null").fetchone()[0]
    assert unscored >= 2  # the cache hit and the forced local request were shadowed and judged
    report = _run("report", "--policy", str(traffic["policy"]), "--log", log, "--format", "json", cwd=out)
    assert report.returncode == 0, report.stderr
    labels = json.loads(report.stdout)["learning"]["labels"]
    learned = _run("learn", "--policy", str(traffic["policy"]), "--log", log, "-o", str(out / "learned"), cwd=out)
    assert "Traceback" not in learned.stderr, learned.stderr
    used = re.search(r"labels used (\d+) \(shadow (\d+), escalation (\d+), cloud-routed judged (\d+), feedback (\d+)\)",
                     learned.stdout)
    assert used, learned.stdout
    total, shadow, escalation, local_shadow, feedback = map(int, used.groups())
    assert (labels["shadow"], labels["escalation"], labels["local_shadow"], labels["feedback"]) == \
        (shadow, escalation, local_shadow, feedback)
    assert sum(labels[k] for k in ("shadow", "escalation", "local_shadow", "feedback")) == total
    assert labels["feedback"] == 1
    text = _run("report", "--policy", str(traffic["policy"]), "--log", log, cwd=out)
    assert f"{shadow} judged shadow samples" in text.stdout.replace("\n", " ")


# -- 2. the shadow line says which calls were local ---------------------------------------------

def test_shadow_line_splits_cloud_and_local_calls(traffic):
    """Before: the line read "shadow sampling (extra cloud calls)" and counted the local tier's
    calls of ``local_shadow`` samples (``shadow.cloud_rate``) as cloud calls."""
    log = str(traffic["log"])
    with sqlite3.connect(log) as db:
        kinds = dict(db.execute("select kind, count(*) from shadows group by kind").fetchall())
    assert kinds.get("local_shadow", 0) >= 1 and kinds.get("shadow", 0) >= 1
    md = _run("report", "--log", log, "--format", "md", cwd=traffic["dir"])
    assert md.returncode == 0, md.stderr
    line = next(l for l in md.stdout.splitlines() if l.startswith("| shadow sampling (extra calls)"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == str(kinds["shadow"] + kinds["local_shadow"])
    assert f"{kinds['shadow']} cloud (beside local answers), {kinds['local_shadow']} local (beside cloud answers)" \
        in cells[5]
