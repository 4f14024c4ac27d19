"""HTTP edge: the OpenAI-compatible FastAPI app.

``create_app(policy, store=None, router=None)`` builds the app; tests pass their own
parts. Every error leaves as OpenAI's error JSON from the handlers registered here, and
every chat request is logged, failed ones included.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .api_keys import api_key_id
from .decision import AUTO
from .errors import InvalidRequestError, RouterError
from .pipeline import Router, new_request_id
from .policy import Policy
from .request import parse_chat_request
from .store import RequestStore, open_store

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _error_response(status: int, message: str, error_type: str, code: str | None, param: str | None = None,
                    headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


def create_app(policy: Policy, store: RequestStore | None = None, router: Router | None = None,
               warm_up: bool = True) -> FastAPI:
    """Build the proxy app.

    Args:
        policy: the active policy.
        store: request log; the policy's ``log`` store when None.
        router: a prebuilt :class:`Router` (tests); built from policy and store when None.
        warm_up: load the classifier, embedder and local model at start-up, so the first
            request pays no loading time.
    """
    store = store or open_store(policy.log)
    router = router or Router(policy, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm_up:
            import asyncio

            await asyncio.to_thread(router.warm_up)
        yield
        await router.drain()

    app = FastAPI(title="slm-router", version="0.1.0", lifespan=lifespan)
    app.state.router = router
    app.state.policy = policy
    app.state.started = time.time()

    @app.exception_handler(RouterError)
    async def _router_error(request: Request, err: RouterError) -> JSONResponse:
        rid = getattr(request.state, "request_id", None)
        return JSONResponse(err.to_openai(), status_code=err.status_code,
                            headers={"x-request-id": rid} if rid else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        message = (
            f"Unknown path {request.method} {request.url.path}." if err.status_code in (404, 405) else str(err.detail)
        )
        return _error_response(err.status_code, message, "invalid_request_error", code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return _error_response(500, f"Internal error: {type(err).__name__}. The request was logged.",
                               "server_error", "internal_error")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        started = time.time()
        request_id = new_request_id()
        request.state.request_id = request_id
        record = router.new_record(request_id, started)
        record.api_key_id = api_key_id(request.headers.get("authorization") or request.headers.get("api-key"))
        body = await request.body()
        try:
            chat = parse_chat_request(body)
        except InvalidRequestError as err:
            await router.log_failure(record, err)
            raise
        except Exception as err:  # never an unlogged bare 500
            wrapped = InvalidRequestError(f"Could not read the request: {err}")
            await router.log_failure(record, wrapped)
            raise wrapped from err
        if chat.stream:
            routed = await router.stream(chat, record)
            return StreamingResponse(routed.events, media_type="text/event-stream",
                                     headers={**routed.headers, "cache-control": "no-cache"})
        answer = await router.complete(chat, record)
        return JSONResponse(answer.body, headers=answer.headers)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        created = int(app.state.started)
        data = [{"id": AUTO, "object": "model", "created": created, "owned_by": "slm-router"}]
        data += [
            {"id": name, "object": "model", "created": created, "owned_by": "slm-router", "root": tier.model}
            for name, tier in policy.tiers.items()
        ]
        return {"object": "list", "data": data}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "tiers": {name: {"model": t.model, "available": t.available} for name, t in policy.tiers.items()},
            "uptime_s": round(time.time() - app.state.started, 1),
        }

    return app
