"""Admin endpoints of the policy versions: what ``slm-router policy ... --url`` calls.

| endpoint | body | does |
|---|---|---|
| ``GET /v1/policy/versions`` | | the version book and this replica's view |
| ``POST /v1/policy/versions/shadow`` | ``{"policy": YAML text, "source"?}`` or ``{"stop": true}`` | registers the policy (checked here) and puts it in shadow, or stops shadowing |
| ``POST /v1/policy/versions/activate`` | ``{"version": id, prefix or "file"}`` | makes it the active policy |
| ``POST /v1/policy/versions/revert`` | ``{}`` | back to the version active before |

Every call needs ``Authorization: Bearer <key>`` of an ``api_keys`` entry with ``admin: true``
(403 ``admin_key_required`` otherwise; the POSTs need it even without
``server.require_api_key``, since a policy decides where prompts are sent). The change is
written to the shared state (:mod:`router.state.policy_versions`) and applied here at once;
other replicas on the same Redis apply it within :data:`~router.api.version_sync.POLL_S`.
Errors: 400 ``invalid_policy`` (the messages of ``policy check``), 400 ``invalid_version``,
503 ``store_unavailable`` (the shared state cannot be reached).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request

from ..errors import InvalidRequestError, PermissionDeniedError, StoreUnavailableError
from ..policy.check import check_policy_text
from ..policy.versions import VersionBook, VersionError
from ..policy.view import policy_hash
from ..request.parse import load_json_body
from ..state.base import StateUnavailable
from .chat_entry import read_body
from .version_sync import VersionSync

__all__ = ["register_admin", "require_admin", "book_body"]


def require_admin(live, request: Request, always: bool) -> None:
    """Raise unless the caller holds an admin key: always when ``always``, else only under
    ``server.require_api_key`` (as for ``GET /v1/policy``).

    Raises:
        AuthenticationError: no or an unknown key (with ``require_api_key``).
        PermissionDeniedError: the key is not an admin key (403 ``admin_key_required``).
    """
    router = live.router
    identity = router.identify(request.headers)
    router.authorize(identity)
    if always or router.policy.server.require_api_key:
        caller = identity.caller
        if caller is None or not caller.admin:
            raise PermissionDeniedError(
                "This needs an admin key (an api_keys entry with admin: true) as 'Authorization: Bearer <key>'.",
                code="admin_key_required")


def book_body(book: VersionBook, replica: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON answer of every versions endpoint (the CLI prints it)."""
    out = {"object": "policy.versions", **book.model_dump(mode="json")}
    if replica is not None:
        out["replica"] = replica
    return out


async def _json(request: Request, limit: int) -> dict[str, Any]:
    raw = await read_body(request, limit)
    data = load_json_body(raw or b"{}")
    if not isinstance(data, dict):
        raise InvalidRequestError("The body must be a JSON object.", code="invalid_request")
    return data


def register_admin(app: FastAPI, live, sync: VersionSync) -> None:
    """Add the policy-version endpoints to ``app``."""

    async def change(op) -> dict[str, Any]:
        try:
            book = await op(sync.versions)
        except VersionError as err:
            raise InvalidRequestError(str(err), code="invalid_version") from None
        except StateUnavailable as err:
            raise StoreUnavailableError(f"The policy versions cannot be written: {err}") from None
        await sync.check()
        return book_body(book, sync.describe())

    @app.get("/v1/policy/versions")
    async def versions(request: Request) -> dict[str, Any]:
        require_admin(live, request, always=False)
        try:
            book = await sync.versions.book()
        except StateUnavailable as err:
            raise StoreUnavailableError(f"The policy versions cannot be read: {err}") from None
        return book_body(book, sync.describe())

    @app.post("/v1/policy/versions/shadow")
    async def shadow(request: Request) -> dict[str, Any]:
        require_admin(live, request, always=True)
        data = await _json(request, live.router.policy.server.max_request_bytes)
        if "stop" in data and not isinstance(data["stop"], bool):  # "stop": "no" must not stop the shadow
            raise InvalidRequestError("Invalid value for 'stop': expected a boolean.", param="stop")
        if data.get("source") is not None and not isinstance(data["source"], str):
            raise InvalidRequestError("Invalid value for 'source': expected a string.", param="source")
        if data.get("stop"):
            return await change(lambda v: v.stop_shadow())
        text, source = data.get("policy"), data.get("source") or "api"
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequestError("Send the policy YAML as 'policy' (or 'stop': true).", param="policy")
        report = await asyncio.to_thread(check_policy_text, text, source)
        if report.errors or report.policy is None:
            raise InvalidRequestError(report.format(include_warnings=False), code="invalid_policy", param="policy")
        version = policy_hash(report.policy)
        return await change(lambda v: v.shadow(version, text, source))

    @app.post("/v1/policy/versions/activate")
    async def activate(request: Request) -> dict[str, Any]:
        require_admin(live, request, always=True)
        data = await _json(request, live.router.policy.server.max_request_bytes)
        ref = data.get("version")
        if not isinstance(ref, str) or not ref:
            raise InvalidRequestError("Send the version to activate as 'version' (or \"file\").", param="version")
        return await change(lambda v: v.activate(ref))

    @app.post("/v1/policy/versions/revert")
    async def revert(request: Request) -> dict[str, Any]:
        require_admin(live, request, always=True)
        return await change(lambda v: v.revert())
