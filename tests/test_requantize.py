"""`runtime.requantize`: the shipped SmolLM2 weights re-encoded once to Q8_0 in the user's
cache folder, in a child process; a failure falls back to the shipped file with its reason;
the pool loads the copy and says so in its health."""

from __future__ import annotations

import asyncio
import os

import pytest

from router.models import smollm2_gguf_path
from router.policy import LocalRuntime
from router.providers import requantize as rq
from router.providers.worker_pool import WorkerPool, WorkerSpec


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def _must_not_run(source, target, mode):
    raise AssertionError("the child ran although the copy is cached")


def test_off_loads_the_file_as_shipped_and_runs_nothing(cache_home):
    w = rq.resolve_weights("off", "x.gguf", run=_must_not_run)
    assert (w.path, w.source) == ("x.gguf", "policy")
    assert not (cache_home / "slm-router").exists()


def test_an_unknown_mode_is_an_error(cache_home):
    with pytest.raises(ValueError, match="requantize"):
        rq.resolve_weights("q2_k", "x.gguf")
    with pytest.raises(ValueError):
        LocalRuntime(requantize="q2_k")


def test_a_failed_re_encoding_keeps_the_shipped_file_and_says_why(cache_home, tmp_path):
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF")
    w = rq.resolve_weights("q8_0", src, run=lambda s, t, m: "re-encoding exited with -11: boom")
    assert (w.path, w.source) == (str(src), "failed")
    assert "boom" in w.reason and "as shipped" in w.reason


def test_the_copy_is_named_after_the_source_and_redone_when_it_changes(cache_home, tmp_path):
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF one")
    first = rq.target_path(src, "q8_0")
    assert first.parent == cache_home / "slm-router" / "models" and first.name.startswith("m.")
    assert first.name.endswith(".q8_0.gguf")
    src.write_bytes(b"GGUF two, longer")
    assert rq.target_path(src, "q8_0") != first


@pytest.mark.slow
def test_smollm2_is_re_encoded_once_and_the_pool_generates_from_the_copy(cache_home):
    source = str(smollm2_gguf_path())
    first = rq.resolve_weights("q8_0", source)
    assert first.source == "requantized", first
    assert first.path != source and os.path.getsize(first.path) > os.path.getsize(source)  # 8 bits > 4 bits
    again = rq.resolve_weights("q8_0", source, run=_must_not_run)
    assert (again.source, again.path) == ("cache", first.path)

    pool = WorkerPool(WorkerSpec(source, n_ctx=512, extra_buffers="off", requantize="q8_0"))
    try:
        pool.start()
        out = asyncio.run(pool.generate([{"role": "user", "content": "What is the capital of Japan?"}],
                                        {"max_tokens": 16, "temperature": 0}))
        assert "Tokyo" in out.text and out.completion_tokens == len(out.steps) > 0
        health = pool.health()
        assert health["weights"]["path"] == first.path and health["weights"]["source"] == "cache"
    finally:
        pool.close()


def test_the_default_policy_re_encodes_smollm2():
    from router.policy import load_policy

    assert load_policy(None).tiers["local"].runtime.requantize == "q8_0"
