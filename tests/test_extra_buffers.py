"""llama.cpp's extra buffer types: the pure decision, the probe's cache, and a worker pool
that loads the real SmolLM2 with them off after a (fake) crashing probe."""

from __future__ import annotations

import asyncio
import time

import pytest

from router.models import smollm2_gguf_path
from router.providers import extra_buffers as eb
from router.providers.worker_pool import WorkerPool, WorkerSpec


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def _crash(model_path, key):
    return eb.Verdict(False, "the probe process died with SIGSEGV (fake)", time.time(), 12.0, key)


def _must_not_run(model_path, key):
    raise AssertionError("the probe ran although a verdict was cached")


def test_decide():
    ok = eb.Verdict(True, "fine", 0.0, 1.0, "k")
    bad = eb.Verdict(False, "SIGSEGV", 0.0, 1.0, "k")
    assert eb.decide("on", bad) is True and eb.decide("off", ok) is False
    assert eb.decide("auto", ok) is True and eb.decide("auto", bad) is False and eb.decide("auto", None) is False
    with pytest.raises(ValueError, match="auto, on or off"):
        eb.decide("sometimes", ok)


def test_on_and_off_never_probe(cache_home):
    assert eb.resolve("off", "x.gguf", probe=_must_not_run).as_dict() == {"enabled": False, "mode": "off", "source": "policy"}
    assert eb.resolve("on", "x.gguf", probe=_must_not_run).enabled is True
    assert not eb.cache_file().exists()


def test_a_crashing_probe_turns_them_off_and_its_verdict_is_cached(cache_home):
    first = eb.resolve("auto", "x.gguf", probe=_crash)
    assert (first.enabled, first.source, first.verdict.works) == (False, "probe", False)
    assert eb.cache_file() == cache_home / "slm-router" / "extra_buffers.json" and eb.cache_file().exists()
    again = eb.resolve("auto", "x.gguf", probe=_must_not_run)
    assert (again.enabled, again.source) == (False, "cache") and again.verdict == first.verdict
    assert again.as_dict()["reason"].startswith("the probe process died with SIGSEGV")


def test_cache_is_per_build_and_cpu(cache_home):
    eb.write_cache(eb.Verdict(True, "ok", 1.0, 2.0, "another-build"))
    assert eb.read_cache("another-build").works is True
    assert eb.read_cache(eb.build_key()) is None  # this build has no verdict yet
    eb.cache_file().write_text("not json")
    assert eb.read_cache("another-build") is None  # a broken cache means: probe again


@pytest.mark.slow
def test_pool_after_a_crashing_probe_loads_with_extra_buffers_off_and_reads_the_cache_next_start(cache_home):
    spec = WorkerSpec(str(smollm2_gguf_path()), n_ctx=512)
    pool = WorkerPool(spec, resolver=lambda mode, path: eb.resolve(mode, path, probe=_crash))
    try:
        pool.start()
        out = asyncio.run(pool.generate([{"role": "user", "content": "What is the capital of Japan?"}], {"max_tokens": 16}))
        assert "Tokyo" in out.text and len(out.steps) == out.completion_tokens
        health = pool.health()
        assert health["extra_buffers"]["source"] == "probe" and health["extra_buffers"]["enabled"] is False
        assert [w["use_extra_bufts"] for w in health["workers"]] == [False]
    finally:
        pool.close()
    nxt = WorkerPool(spec, resolver=lambda mode, path: eb.resolve(mode, path, probe=_must_not_run))
    try:
        nxt.start()
        assert nxt.health()["extra_buffers"]["source"] == "cache"
        assert [w["use_extra_bufts"] for w in nxt.health()["workers"]] == [False]
    finally:
        nxt.close()


@pytest.mark.slow
def test_the_real_probe_on_this_machine(cache_home):
    """The probe in a child: where extra buffers crash this build (AMX here), the child's
    signal is the reason and the verdict says off; elsewhere it generated."""
    verdict = eb.run_probe(smollm2_gguf_path(), eb.build_key())
    assert verdict.probe_ms > 0 and verdict.reason
    if verdict.works:
        assert "generated" in verdict.reason
    else:
        assert "died with SIG" in verdict.reason or "exited with" in verdict.reason
    if "AMX_INT8 = 1" in eb.system_info() and "amx_tile" in eb.cpu_flags():
        print("AMX build on an AMX CPU:", verdict.reason)
