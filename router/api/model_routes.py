"""The model endpoints: ``GET /v1/models`` (list) and ``GET /v1/models/{id}`` (retrieve).

The models a client may name are ``auto``, every tier and every alias of the active policy
(:func:`model_entries`, pure). Each is shown in OpenAI's model object shape
(``{"id", "object": "model", "created", "owned_by"}``, plus ``root``: the tier's litellm
model string or the alias target) or, when the request carries an ``anthropic-version``
header, in Anthropic's (``{"type": "model", "id", "display_name", "created_at"}``; a list
adds ``has_more``, ``first_id``, ``last_id``). An unknown id is a logged 404
``model_not_found`` in the client's error shape.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..errors import ModelNotFoundError, RouterError
from ..policy import AUTO, Policy
from .refusals import logged_refusal, wants_anthropic

__all__ = ["ModelEntry", "model_entries", "openai_model", "anthropic_model", "openai_models", "anthropic_models",
           "register_models"]



@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One name a client may send as ``model``.

    Attributes:
        id: ``auto``, a tier name or an alias.
        root: the tier's litellm model string, the alias's target, or None for ``auto``.
        display_name: the human-readable name (Anthropic's ``display_name``).
    """

    id: str
    root: str | None
    display_name: str


def model_entries(policy: Policy) -> list[ModelEntry]:
    """``auto``, then every tier, then every alias of ``policy``, in policy order (pure)."""
    out = [ModelEntry(AUTO, None, "auto (routed by slm-router)")]
    out += [ModelEntry(name, tier.model, f"{name} ({tier.model})") for name, tier in policy.tiers.items()]
    out += [ModelEntry(alias, target, f"{alias} (alias of {target})") for alias, target in policy.aliases.items()]
    return out


def openai_model(entry: ModelEntry, created: float) -> dict[str, Any]:
    """OpenAI's model object; ``created`` is the server's start (Unix s)."""
    body: dict[str, Any] = {"id": entry.id, "object": "model", "created": int(created), "owned_by": "slm-router"}
    if entry.root is not None:
        body["root"] = entry.root
    return body


def anthropic_model(entry: ModelEntry, created: float) -> dict[str, Any]:
    """Anthropic's model object; ``created_at`` is ``created`` (Unix s) in RFC 3339."""
    when = dt.datetime.fromtimestamp(created, dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": entry.id, "display_name": entry.display_name, "created_at": when}


def openai_models(policy: Policy, created: float) -> dict[str, Any]:
    """OpenAI's list page of every model of ``policy``."""
    return {"object": "list", "data": [openai_model(e, created) for e in model_entries(policy)]}


def anthropic_models(policy: Policy, created: float) -> dict[str, Any]:
    """Anthropic's list page (one page: ``has_more`` false) of every model of ``policy``."""
    data = [anthropic_model(e, created) for e in model_entries(policy)]
    return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}


def register_models(app: FastAPI, live) -> None:
    """Add ``GET /v1/models`` and ``GET /v1/models/{id}`` to ``app``, answered from ``live``'s
    active policy (same auth as the rest of the API)."""

    async def refused(request: Request) -> JSONResponse | None:
        """The logged error answer (in the client's API shape) when the caller may not list
        models, else None. Anthropic's x-api-key counts too (Identity)."""
        try:
            live.router.authorize(request.headers)
        except RouterError as err:
            return await logged_refusal(live.router, request, err)
        return None

    @app.get("/v1/models")
    async def list_models(request: Request) -> Any:
        if (refusal := await refused(request)) is not None:
            return refusal
        created = app.state.started
        shape = anthropic_models if wants_anthropic(request) else openai_models
        return shape(live.router.policy, created)

    @app.get("/v1/models/{model_id:path}")
    async def retrieve_model(model_id: str, request: Request) -> Any:
        if (refusal := await refused(request)) is not None:
            return refusal
        router = live.router
        anthropic = wants_anthropic(request)
        entries = model_entries(router.policy)
        entry = next((e for e in entries if e.id == model_id), None)
        if entry is not None:
            return (anthropic_model if anthropic else openai_model)(entry, app.state.started)
        err = ModelNotFoundError(f"The model '{model_id}' does not exist on this router; use one of: "
                                 f"{', '.join(e.id for e in entries)}.", param="model")
        return await logged_refusal(router, request, err, requested_model=model_id)
