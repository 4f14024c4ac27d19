"""A real session of the proxy, then its report and what-if replays.

Starts ``slm-router serve`` (SmolLM2 in-process as the local tier) with a cloud tier that
replays GPT-4-Turbo's recorded AlpacaEval answers over HTTP (``bench/recorded_cloud.py``;
there is no internet here), sends the first N AlpacaEval instructions through the OpenAI
SDK (three API keys in turn, every 10th request streamed), stops the server (which waits
for the shadow samples still running), then runs ``slm-router report`` (Markdown, HTML,
by route, by API key) and ``slm-router replay`` under the same policy and three what-if
policies. Writes everything to ``--out`` and prints the figures.

Policy: the embedded default's routing (threshold 0.5, escalation below -0.75 nats/token),
``shadow.rate`` 0.25, the cloud tier ``openai/gpt-4-1106-preview`` priced by litellm's map,
the local tier priced as hardware: an assumed $0.10/hour machine at 50% utilisation.

    python bench/session.py --n 100 --max-tokens 32 --out .cache/session
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.recorded_cloud import RecordedCloud  # noqa: E402
from tests.proxy_process import ProxyProcess  # noqa: E402
from training.data import data_root  # noqa: E402

KEYS = ("sk-team-a", "sk-team-b", "sk-team-c")


def session_policy(cloud_url: str, shadow_rate: float) -> dict:
    """The policy the session serves (see the module docstring)."""
    return {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 256,
                      "price": {"usd_per_hour": 0.10, "utilization": 0.5}},
            "cloud": {"model": "openai/gpt-4-1106-preview", "api_key": "sk-session", "api_base": cloud_url},
        },
        "routing": {"classifier": {"threshold": 0.5}},
        "escalation": {"enabled": True, "min_mean_logprob": -0.75},
        "shadow": {"rate": shadow_rate},
    }


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "router.cli", *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve, send real prompts, report, replay.")
    parser.add_argument("--n", type=int, default=100, help="AlpacaEval instructions to send")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--shadow-rate", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=Path(".cache/session"))
    args = parser.parse_args()

    import openai

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("requests.sqlite3*"):
        stale.unlink()
    prompts = [json.loads(line)["instruction"]
               for line in (data_root() / "alpaca_eval" / "alpaca_eval_805_prompts.jsonl").open()][: args.n]

    cloud = RecordedCloud().start()
    policy = session_policy(cloud.url, args.shadow_rate)
    t_start = time.perf_counter()
    proxy = ProxyProcess(policy, out).start(timeout_s=600)
    print(f"serve ready in {time.perf_counter() - t_start:.1f} s; log {proxy.log_path}")
    latencies: dict[str, list[float]] = {}
    tiers, escalated, streamed = [], 0, 0
    t0 = time.perf_counter()
    try:
        for i, prompt in enumerate(prompts):
            client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=KEYS[i % len(KEYS)], max_retries=0, timeout=300)
            kwargs = dict(model="auto", messages=[{"role": "user", "content": prompt}], max_tokens=args.max_tokens)
            t = time.perf_counter()
            if i % 10 == 9:
                raw = client.chat.completions.with_raw_response.create(**kwargs, stream=True)
                "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
                streamed += 1
            else:
                raw = client.chat.completions.with_raw_response.create(**kwargs)
                raw.parse()
            ms = (time.perf_counter() - t) * 1000
            tier = raw.headers["x-router-tier"]
            esc = raw.headers["x-router-escalated"] == "true"
            key = "local->cloud (escalated)" if esc else tier
            latencies.setdefault(key, []).append(ms)
            tiers.append(tier)
            escalated += esc
            if (i + 1) % 20 == 0:
                print(f"  {i + 1}/{len(prompts)} sent")
    finally:
        proxy.stop()  # SIGTERM: uvicorn drains, the router waits for shadow samples
        cloud.stop()
    wall = time.perf_counter() - t0
    print(f"\nsent {len(prompts)} AlpacaEval prompts in {wall:.1f} s ({streamed} streamed), max_tokens {args.max_tokens}")
    print(f"answered by local: {tiers.count('local')}, by cloud: {tiers.count('cloud')} "
          f"(of which escalated: {escalated}); recorded cloud answered {cloud.answered}, unknown {cloud.unknown}")
    for key, values in sorted(latencies.items()):
        print(f"client latency {key:>26}: n={len(values):3d}  p50 {_pct(values, 0.5):7.0f} ms  "
              f"p95 {_pct(values, 0.95):7.0f} ms  mean {statistics.mean(values):7.0f} ms")

    log = str(proxy.log_path)
    md = _cli("report", "--log", log, "--format", "md")
    (out / "report.md").write_text(md)
    _cli("report", "--log", log, "--format", "html", "--out", str(out / "report.html"))
    (out / "report_by_route.md").write_text(_cli("report", "--log", log, "--format", "md", "--by", "route"))
    (out / "report_by_api_key.csv").write_text(_cli("report", "--log", log, "--format", "csv", "--by", "api-key"))
    (out / "report.json").write_text(_cli("report", "--log", log, "--format", "json"))
    print("\n" + md)

    what_ifs = {
        "same policy": policy,
        "threshold 0.3": {**policy, "routing": {"classifier": {"threshold": 0.3}}},
        "threshold 0.7": {**policy, "routing": {"classifier": {"threshold": 0.7}}},
        "escalation off": {**policy, "escalation": {"enabled": False}},
    }
    for name, p in what_ifs.items():
        path = out / f"whatif-{name.replace(' ', '-')}.yaml"
        path.write_text(yaml.safe_dump({**p, "log": {"store": "sqlite", "path": log}}))
        print(f"\n## replay: {name}\n")
        text = _cli("replay", "--policy", str(path), "--format", "md")
        (out / f"replay-{name.replace(' ', '-')}.md").write_text(text)
        print(text)
    print(f"files in {out}")


if __name__ == "__main__":
    main()
