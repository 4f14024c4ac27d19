"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SLM_ROUTER_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "routellm").is_dir():
        pytest.skip(f"shared data folder not found at {DATA} (set SLM_ROUTER_DATA)")
    return DATA


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """URL of a real Redis: 127.0.0.1:6379 when it answers, else a redis-server started
    for this session; skips only when no redis-server binary exists."""
    from .redis_server import REDIS_SERVER, RedisServer, answers

    shared = "redis://127.0.0.1:6379/0"
    if answers(shared):
        yield shared
        return
    if REDIS_SERVER is None:
        pytest.skip("no Redis answers on 127.0.0.1:6379 and no redis-server binary is installed")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_prefix(redis_url):
    """A fresh key prefix on the test Redis, deleted afterwards."""
    from .redis_server import delete_prefix, unique_prefix

    prefix = unique_prefix()
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture(scope="module")
def claude():
    """A real Anthropic-compatible HTTP server standing in for a Claude tier (one per module)."""
    from .fake_anthropic import FakeAnthropic

    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def good_up():
    """A scripted OpenAI-compatible upstream that answers "ok" (:class:`tests.scripted_upstream.ScriptedUpstream`),
    the tier that answers when the one under test fails (one per module)."""
    from .scripted_upstream import ScriptedUpstream

    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def in_process(good_up, tmp_path_factory):
    """``slm-router serve`` with the in-process SmolLM2 as the local tier (never loaded) and
    ``good_up`` as the cloud (:func:`tests.proxy_process.in_process_local_proxy`; one per module)."""
    from .proxy_process import in_process_local_proxy

    proxy = in_process_local_proxy(good_up.url, tmp_path_factory.mktemp("in-process"))
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def cloud():
    """A real OpenAI-compatible HTTP server standing in for the cloud tier (one per module)."""
    from .fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()
