"""Serve an ASGI app on a uvicorn thread for the API tests that need a real HTTP server
in-process (the store stays readable from the test), and the two-tier policy they share."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from .fake_openai import free_port

__all__ = ["serving", "serving_policy", "sim_tiers", "EasyScorer", "logged_row"]


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 at a free port on a daemon thread; yields its base URL
    (``http://127.0.0.1:PORT``) once uvicorn has started, and stops it on exit (10 s join)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sim_tiers(local_url: str, cloud_url: str | None = None, **local_extra: Any) -> dict[str, Any]:
    """The policy's ``tiers`` block for a free simulated local tier and a gpt-4o-mini cloud
    tier, both OpenAI-compatible fakes (``cloud_url`` defaults to ``local_url``);
    ``local_extra`` adds keys to the local tier (e.g. ``capabilities``)."""
    return {"local": {"model": "openai/local-sim", "api_key": "sk-up", "api_base": local_url, **local_extra,
                      "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": cloud_url or local_url}}


class EasyScorer:
    """A scorer that finds every request easy (score 0.1; no model to load)."""

    def score(self, texts: list[str]) -> list[float]:
        return [0.1 for _ in texts]


@contextmanager
def serving_policy(policy: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Serve ``policy`` (a policy dict) with an in-memory SQLite log and :class:`EasyScorer`;
    yields (base URL, the store)."""
    from router.api.app import create_app
    from router.pipeline import Router
    from router.policy import Policy
    from router.store.sqlite import SQLiteStore

    validated = Policy.model_validate(policy)
    store = SQLiteStore(":memory:")
    with serving(create_app(validated, router=Router(validated, store, scorer=EasyScorer()), warm_up=False)) as url:
        yield url, store


def logged_row(store: Any, request_id: str, timeout_s: float = 10.0) -> Any:
    """The request log's row for ``request_id``, polled until it is written (the log write
    runs after the answer is sent).

    Raises:
        AssertionError: no such row within ``timeout_s`` seconds.
    """
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        rows = [r for r in store.requests() if r.id == request_id]
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} was not logged")
