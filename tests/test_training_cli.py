"""The training commands end to end through the real ``slm-router`` CLI, on real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def _cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               SLM_ROUTER_CACHE=str(cwd / "cache"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "router.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def user_data(tmp_path_factory, data_dir) -> Path:
    """A user's JSONL in the toolkit's schema, written from 300 real RouteLLM MMLU + GSM8K rows."""
    from training.datasets import load

    rows = load("mmlu", data_dir)[::60] + load("gsm8k", data_dir)[:90]
    path = tmp_path_factory.mktemp("data") / "mine.jsonl"
    with path.open("w") as fh:
        for e in rows:
            fh.write(json.dumps({"prompt": e.prompt, "outcomes": dict(e.outcomes), "weak": e.weak_model,
                                 "strong": e.strong_model, "group": e.group}) + "\n")
    return path


@pytest.mark.slow
def test_score_round_trip_with_the_shipped_default(tmp_path):
    from router.scoring.classifier import EmbeddingClassifier

    prompts = ["What is the capital of France?", "Prove that sqrt(2) is irrational.", "hi",
               "What is the capital of France?", "A train leaves at 3 pm going 60 mph; another at 4 pm going 80 mph. When do they meet?"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    _cli("score", "--input", "in.jsonl", "--output", "out/scores.jsonl", cwd=tmp_path)
    lines = (tmp_path / "out" / "scores.jsonl").read_text().splitlines()
    scores = [json.loads(line)["score"] for line in lines]
    assert len(scores) == len(prompts) and all(set(json.loads(line)) == {"score"} for line in lines)
    assert all(0.0 <= s <= 1.0 for s in scores) and scores[0] == scores[3]
    # The same numbers as the router's own scorer, in the same order.
    assert scores == pytest.approx(EmbeddingClassifier().score(prompts), abs=1e-6)


def test_score_rejects_bad_input_with_exit_2(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    proc = _cli("score", "--input", "bad.jsonl", "--output", "o.jsonl", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "bad.jsonl:2" in proc.stderr and not (tmp_path / "o.jsonl").exists()
    proc = _cli("score", "--input", "missing.jsonl", "--output", "o.jsonl", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "not found" in proc.stderr


@pytest.mark.slow
def test_train_eval_calibrate_on_a_user_jsonl(tmp_path, user_data):
    from router.policy import load_policy
    from router.scoring.artifact import load_artifact

    _cli("train", "--data", str(user_data), "--model", "ridge", "--label", "gap", "--out", "art",
         "--embedder", "static", "--n-boot", "20", cwd=tmp_path)
    art = load_artifact(tmp_path / "art")
    card = art.card
    assert card["model"]["kind"] == "ridge" and card["data"]["n_train"] == len(user_data.read_text().splitlines())
    m = card["metrics"]["mine"]["router"]["apgr"]
    assert m["ci95_low"] <= m["value"] <= m["ci95_high"]
    assert (tmp_path / "art" / "oof_scores.npz").is_file()
    assert set(card["calibration_held_out"]) >= {"0.2", "0.5", "0.8"}

    proc = _cli("eval", "--artifact", "art", "--data", str(user_data), "--split", "group", "--n-boot", "20",
                "--plot", "plots/q.png", cwd=tmp_path)
    assert "oracle" in proc.stdout and "length" in proc.stdout and "APGR" in proc.stdout
    png = (tmp_path / "plots" / "q.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    # --split none scores with the artifact as it is, and says when that is its own training data.
    proc = _cli("eval", "--artifact", "art", "--data", str(user_data), "--split", "none", "--n-boot", "10", cwd=tmp_path)
    assert "artifact as is" in proc.stdout and "trained on mine" in proc.stderr
    assert (tmp_path / "runs" / "eval" / "mine-none.png").is_file()

    proc = _cli("calibrate", "--artifact", "art", "--data", str(user_data), "--target-cloud-share", "0.3",
                "--write-policy", "policy.yaml", cwd=tmp_path)
    policy = load_policy(tmp_path / "policy.yaml")
    assert policy.routing.classifier.artifact == str((tmp_path / "art").resolve())
    scores = np.load(tmp_path / "art" / "oof_scores.npz")["scores"]
    realised = float(np.mean(scores >= policy.routing.classifier.threshold))
    assert abs(realised - 0.3) < 0.01, realised

    proc = _cli("calibrate", "--artifact", "art", "--data", str(user_data), "--target-quality", "0.95", cwd=tmp_path)
    assert "of strong" in proc.stdout


def test_cli_argument_errors_exit_2(tmp_path):
    for args, text in (
        (("train", "--data", "nope"), "unknown dataset"),
        (("eval", "--data", "mmlu", "--split", "sideways"), "--split"),
        (("calibrate", "--data", "mmlu"), "exactly one"),
        (("calibrate", "--data", "mmlu", "--target-cloud-share", "2"), "[0, 1]"),
    ):
        proc = _cli(*args, cwd=tmp_path, check=False)
        assert proc.returncode == 2 and text in proc.stderr, (args, proc.stderr)


@pytest.mark.slow
def test_eval_on_users_files_prints_lofo_with_every_baseline(tmp_path, user_data, data_dir):
    """Two files are two families: ``eval`` refits the artifact's recipe leaving each out; one file
    is scored by the artifact as it is; ``--artifact rules`` scores the keyword rule."""
    from training.datasets import load

    other = tmp_path / "theirs.jsonl"
    with other.open("w") as fh:
        for e in load("arc", data_dir)[:200]:
            fh.write(json.dumps({"prompt": e.prompt, "outcomes": dict(e.outcomes), "weak": e.weak_model,
                                 "strong": e.strong_model}) + "\n")
    _cli("train", "--data", f"{user_data},{other}", "--out", "art", "--embedder", "static", "--n-boot", "20",
         "--exclude", "", cwd=tmp_path)
    card = json.loads((tmp_path / "art" / "card.json").read_text())
    assert card["model"]["kind"] == "transfer" and set(card["lofo"]["families"]) == {"mine", "theirs"}
    assert set(card["lofo"]["mean"]) == {"router", "random", "length", "rules", "logreg", "oracle"}
    assert "no_signal" in card["lofo"]["goal"] and card["unseen_subject"] is None
    proc = _cli("eval", "--artifact", "art", "--data", f"{user_data},{other}", "--n-boot", "20", cwd=tmp_path)
    for word in ("leave-one-family-out", "mine", "theirs", "rules", "logreg", "oracle", "mean", "worst"):
        assert word in proc.stdout, word
    proc = _cli("eval", "--artifact", "builtin", "--data", str(other), "--n-boot", "20", cwd=tmp_path)
    assert "artifact as is" in proc.stdout and "theirs" in proc.stdout and "logreg" in proc.stdout
    proc = _cli("eval", "--artifact", "rules", "--data", str(other), "--n-boot", "20", cwd=tmp_path)
    assert "keyword rule" in proc.stdout
    proc = _cli("eval", "--artifact", "rules", "--data", str(other), "--split", "lofo", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no training" in proc.stderr
