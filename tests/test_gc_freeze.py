"""After its warm-up the server moves the objects it started with to the garbage collector's
permanent generation (router.api.app.freeze_startup_objects), so full collections while
serving no longer walk every imported library's objects (170 ms per collection measured with
litellm, the app, scikit-learn and model2vec loaded)."""

from __future__ import annotations

import gc
import time

import httpx

from .app_thread import EasyScorer, serving, sim_tiers


def test_startup_objects_are_frozen_once_the_server_is_warm():
    from router.api.app import create_app
    from router.pipeline import Router
    from router.policy import Policy
    from router.store.sqlite import SQLiteStore

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    policy = Policy.model_validate({"tiers": sim_tiers("http://127.0.0.1:9/v1")})
    store = SQLiteStore(":memory:")
    app = create_app(policy, router=Router(policy, store, scorer=EasyScorer()), warm_up=True)
    try:
        with serving(app) as url:
            deadline = time.time() + 30
            while httpx.get(url + "/healthz", timeout=10).json().get("classifier") != "ready":
                assert time.time() < deadline, "the classifier never became ready"
                time.sleep(0.05)
            frozen = gc.get_freeze_count()
            assert frozen > 10_000  # the modules, classes and functions loaded so far
            # what a full collection walks now: the objects made since the freeze, not the frozen ones
            walked = len(gc.get_objects())
            assert walked < frozen / 2, (walked, frozen)
    finally:
        gc.unfreeze()
