"""HTTP edge: the OpenAI-compatible FastAPI app, with Anthropic's Messages API
(:mod:`router.api.anthropic_routes`) and OpenAI's Responses API
(:mod:`router.api.responses_routes`) beside the chat endpoint, all through one entry
(:mod:`router.api.chat_entry`).

``create_app(policy, store=None, router=None, policy_path=None)`` builds the app; tests
pass their own parts. Every error leaves as OpenAI's error JSON from the handlers
registered here, and every chat request is logged, failed ones included. With a
``policy_path`` the policy is reloaded when the file changes and on SIGHUP
(:mod:`router.api.live_policy`); each request uses the router that was active when it arrived.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InvalidRequestError, RouterError
from ..pipeline import Router, RoutedStream, Routing, new_request_id
from ..policy import Policy
from ..policy.view import redacted_policy
from ..request.parse import parse_chat_request
from ..store import RequestStore, open_store
from .anthropic_routes import register_anthropic
from .admin_routes import register_admin, require_admin
from .chat_fast_path import ChatFastPath
from .chat_entry import ClientDisconnected, admit, logged as _logged, refusals_logged, serve_chat
from .feedback_routes import register_feedback
from .refusals import logged_refusal
from .model_routes import register_models
from .http_errors import set_framing_listener
from .live_policy import LivePolicy
from .version_sync import VersionSync
from .responses_routes import register_responses

__all__ = ["create_app", "app_from_env", "POLICY_ENV", "WARM_UP_ENV"]

POLICY_ENV = "SLM_ROUTER_POLICY"
WARM_UP_ENV = "SLM_ROUTER_WARM_UP"

log = logging.getLogger(__name__)


def _error_response(status: int, message: str, error_type: str, code: str | None, param: str | None = None,
                    headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


def _route_body(routing: Routing, requested_model: str, policy_hash: str) -> dict[str, Any]:
    d = routing.decision
    return {
        "object": "route",
        "tier": d.tier,
        "score": d.score,
        "threshold": d.threshold,
        "reason": d.reason,
        "rules": list(d.rules),
        "needs": sorted(routing.needs),
        "forbidden": dict(d.forbidden),
        # every escalation setting for this request: policy, then overlay, then rules applied
        "escalation": None if d.escalation is None else d.escalation.model_dump(mode="json"),
        "degraded": d.degraded,
        "model": requested_model,
        "resolved_model": d.model,
        "caller": None if routing.caller is None else {
            "name": routing.caller.name, "group": routing.caller.group, "overlay": routing.caller.overlay_name},
        "language": routing.language,
        "prompt_tokens": routing.prompt_tokens,
        "session": None if routing.session is None else {
            "id": routing.session.id, "per_turn_tier": routing.session.per_turn_tier,
            "previous_tier": routing.session.previous.tier if routing.session.previous else None},
        "policy_hash": policy_hash,
    }


def freeze_startup_objects() -> None:
    """Move every object alive now (imported libraries, loaded models and policy) to the garbage
    collector's permanent generation (:func:`gc.freeze`), so that a later full collection scans
    only what requests made since. Measured in one process with litellm, the app, scikit-learn
    and model2vec imported: 460,000 tracked objects and 170 ms per full collection (a pause that
    every request in flight waits for), 0.0 ms after the freeze. Called after each warm-up.
    Frozen objects are still freed when their last reference goes (a router replaced by a
    policy reload); only reference cycles among them are never collected."""
    gc.freeze()


def create_app(policy: Policy, store: RequestStore | None = None, router: Router | None = None,
               warm_up: bool = True, policy_path: str | Path | None = None, watch: bool = True) -> FastAPI:
    """Build the proxy app.

    Args:
        policy: the policy at start-up.
        store: request log; the one the policy's ``store`` names when None (then closed,
            and its spool flushed, at shutdown).
        router: a prebuilt :class:`Router` (tests); built from policy and store when None.
        warm_up: load the classifier, embedder and local model at start-up (and before a
            reloaded policy takes over), so no request pays loading time.
        policy_path: the file ``policy`` came from; enables reload on SIGHUP.
        watch: also reload when ``policy_path`` changes on disk.
    """
    own_store = store is None and router is None
    store = router.store if router is not None else (store or open_store(policy))
    router = router or Router(policy, store)

    def swapped(new: Router) -> None:
        app.state.router, app.state.policy = new, new.policy

    live = LivePolicy(router, policy_path, warm_up=warm_up, on_swap=swapped)
    sync = VersionSync(live, router.state)

    def _log_framing_error(message: str) -> None:
        """Log a request uvicorn refused for its broken framing (see :mod:`.http_errors`)."""
        current = live.router
        record = current.new_record(new_request_id(), time.time())
        err = InvalidRequestError(f"Invalid HTTP request: {message}", code="invalid_http")
        current.writer.spawn(current.log_failure(record, err))

    async def warm_routing() -> None:
        app.state.classifier = "loading"
        try:
            await router.scoring.call(router.warm_up_routing)  # on the scoring thread: decisions wait
            app.state.classifier = "ready"
        except Exception as err:  # routed requests then fail with the same error, logged
            app.state.classifier = f"failed: {type(err).__name__}"
            log.exception("loading the classifier failed")
        freeze_startup_objects()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        routing_ready = None
        if warm_up:  # answers first; the classifier loads while the server already answers
            await asyncio.to_thread(router.warm_up_answers)
        # The log-writer process starts once the server can answer: its litellm import would take
        # a core from the first answer's (on 2 cores, beside the in-process model's worker); the
        # server writes the log itself until the child is ready.
        router.writer.launch()
        if warm_up:
            freeze_startup_objects()
            routing_ready = asyncio.get_running_loop().create_task(warm_routing())
        stop = asyncio.Event()
        watcher = None
        set_framing_listener(_log_framing_error)
        if policy_path is not None:
            live.install_sighup()
            if watch:
                watcher = asyncio.get_running_loop().create_task(live.watch(stop))
        await sync.check()  # a replica starting late runs the active version from its first request
        follower = asyncio.get_running_loop().create_task(sync.run(stop))
        try:
            yield
        finally:
            set_framing_listener(None)
            stop.set()
            if routing_ready is not None:
                await routing_ready
            await asyncio.gather(follower, return_exceptions=True)
            live.remove_sighup()
            if watcher is not None:
                try:
                    await asyncio.wait_for(watcher, timeout=5)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    watcher.cancel()
            await live.drain()
            await live.router.close()
            if own_store:
                await asyncio.to_thread(store.close)

    app = FastAPI(title="slm-router", version="0.1.0", lifespan=lifespan)
    app.state.live = live
    app.state.router = router
    app.state.policy = router.policy
    app.state.started = time.time()
    app.state.classifier = "loading" if warm_up else "on first use"

    @app.exception_handler(RouterError)
    async def _router_error(request: Request, err: RouterError) -> JSONResponse:
        rid = getattr(request.state, "request_id", None)
        if rid is None and request.url.path.startswith("/v1/"):  # refused before any log row (feedback, policy)
            record = live.router.new_record(new_request_id(), time.time())
            await live.router.log_failure(record, err)
            rid = record.id
        headers = dict(err.headers)
        if rid:
            headers["x-request-id"] = rid
        return JSONResponse(err.to_openai(), status_code=err.status_code, headers=headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        message = (
            f"Unknown path {request.method} {request.url.path}." if err.status_code in (404, 405) else str(err.detail)
        )
        if request.url.path.startswith("/v1/"):  # an API call that went wrong is still a logged request
            return await logged_refusal(live.router, request,
                                        InvalidRequestError(message, code=code, status_code=err.status_code))
        return _error_response(err.status_code, message, "invalid_request_error", code)

    @app.exception_handler(ClientDisconnected)
    async def _gone(request: Request, err: ClientDisconnected) -> Response:
        return Response(status_code=499)  # nobody reads it; the request is logged 'cancelled'

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return _error_response(500, f"Internal error: {type(err).__name__}. The request was logged.",
                               "server_error", "internal_error")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        routed = await serve_chat(live, request, parse_chat_request)
        if isinstance(routed, RoutedStream):
            return StreamingResponse(routed.events, media_type="text/event-stream",
                                     headers={**routed.headers, "cache-control": "no-cache"})
        # The log record is written after the answer has gone out (lifespan drains it at shutdown).
        return JSONResponse(routed.body, headers=routed.headers, background=BackgroundTask(_logged, routed.logged))

    # the hot path skips FastAPI's routing and middleware; errors go to the handlers above
    app.add_middleware(ChatFastPath, handler=chat_completions, handlers=app.exception_handlers)
    register_anthropic(app, live)
    register_responses(app, live)
    register_admin(app, live, sync)
    register_feedback(app, live)
    register_models(app, live)

    @app.post("/v1/route")
    async def route(request: Request) -> Any:
        """The decision for a chat request (tier, score, reason, rules, needs); no model call."""
        router = live.router
        record, identity, chat = await admit(router, request, parse_chat_request)  # a refusal is logged
        routing = await refusals_logged(router, record, router.route(chat, request.headers, identity=identity))
        return _route_body(routing, chat.model, router.policy_hash)  # a decision is not logged: no request id

    @app.get("/v1/policy")
    async def active_policy(request: Request) -> dict[str, Any]:
        """The active policy (secrets redacted), its hash, source, reload state and versions."""
        from ..routing.capabilities import resolve_capabilities

        router = live.router
        require_admin(live, request, always=False)
        caps = {}
        for name, tier in router.policy.tiers.items():
            c = await asyncio.to_thread(resolve_capabilities, tier)
            caps[name] = {"context_window": c.context_window, "vision": c.vision, "tools": c.tools,
                          "json_schema": c.json_schema, "source": c.source}
        return {
            "object": "policy",
            "hash": router.policy_hash,
            "source": str(live.path) if live.path else "embedded default",
            "loaded_at": live.loaded_at,
            "reloads": live.reloads,
            "last_reload_error": live.last_error,
            "versions": sync.describe(),  # the active and shadow policy versions (slm-router policy versions)
            "capabilities": caps,
            "policy": redacted_policy(router.policy),
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        current = live.router
        await current.state.probe()
        shared = current.health()
        return {
            "status": "ok" if shared["ok"] else "degraded",
            "tiers": {name: {"model": t.model, "available": t.available and shared["local"].get(name, {}).get("ok", True)}
                      for name, t in current.policy.tiers.items()},
            "store": shared["store"],
            "log_writer": current.writer.health(),
            "state": shared["state"],
            "local": shared["local"],
            "policy_hash": current.policy_hash,
            "last_reload_error": live.last_error,
            "uptime_s": round(time.time() - app.state.started, 1),
            "classifier": app.state.classifier,  # loading while serve loads it after start-up
        }

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        from ..ledger import metrics

        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` and ``slm-router serve --workers N``: each
    worker loads the policy file named by ``$SLM_ROUTER_POLICY`` (the embedded default when
    unset) and warms up unless ``$SLM_ROUTER_WARM_UP`` is ``0``.

    Raises:
        PolicyError: the policy file is invalid.
    """
    import os

    from ..policy import load_policy

    path = os.environ.get(POLICY_ENV) or None
    return create_app(load_policy(path), warm_up=os.environ.get(WARM_UP_ENV) != "0", policy_path=path)
