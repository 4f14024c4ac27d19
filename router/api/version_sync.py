"""Every replica follows the policy versions in the shared state (:mod:`router.policy.versions`).

:class:`VersionSync` reads the version book every :data:`POLL_S` seconds (one ``GET`` on the
shared state; Redis for several replicas, so they all switch within about a second of
``slm-router policy activate``; process memory for one server). When the book's revision
changed it applies it: the active version through :meth:`LivePolicy.apply_version` (the
same checked, warmed-up swap as a file reload, so a request in flight finishes under the
router it started with), ``file`` through :meth:`LivePolicy.use_file`, and the version in
shadow as a :class:`~router.pipeline.candidate.CandidatePolicy` on the active router. A
version that cannot be applied (its text fails the check here, or its artifact is missing)
leaves the replica as it was; ``GET /v1/policy`` shows the error.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..pipeline.candidate import CandidatePolicy
from ..policy.check import check_policy_text
from ..policy.view import DEPLOYMENT_SECTIONS
from ..state.base import SharedState, StateUnavailable
from ..state.policy_versions import PolicyVersions
from .live_policy import LivePolicy

__all__ = ["VersionSync", "POLL_S"]

log = logging.getLogger(__name__)

POLL_S = 0.5
"""Seconds between two reads of the version book."""


class VersionSync:
    """Applies the shared version book to one replica.

    Args:
        live: the replica's live policy.
        state: the shared state holding the book (the start-up router's).
    """

    def __init__(self, live: LivePolicy, state: SharedState, poll_s: float = POLL_S) -> None:
        self.live = live
        self.versions = PolicyVersions(state)
        self.poll_s = poll_s
        self.revision = 0
        self.shadow: str | None = None
        self.error: str | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        """Read the book once and apply what changed; never raises."""
        async with self._lock:
            try:
                book = await self.versions.book()
                if book.revision == self.revision:
                    return
                errors = []
                if book.active != self.live.version:
                    errors += await self._activate(book.active)
                if book.shadow != self.shadow:
                    errors += await self._shadow(book.shadow)
                self.revision = book.revision
                self.error = "; ".join(errors) or None
            except StateUnavailable as err:
                self.error = f"cannot read the policy versions: {err}"
            except Exception as err:  # a bug here must not stop the replica from serving
                log.exception("applying the policy versions failed")
                self.error = f"{type(err).__name__}: {err}"

    async def _activate(self, version: str | None) -> list[str]:
        if version is None:
            result = await self.live.use_file()
        else:
            text = await self.versions.text(version)
            if text is None:
                return [f"version {version} has no stored text"]
            result = await self.live.apply_version(version, text)
        if result.status == "rejected":
            return [f"version {version or 'file'} not applied: {result.message}"]
        log.warning("policy version %s active (policy %s)", version or "file", result.hash)
        return []

    async def _shadow(self, version: str | None) -> list[str]:
        candidate = None
        if version is not None:
            text = await self.versions.text(version)
            if text is None:
                return [f"shadow version {version} has no stored text"]
            report = await asyncio.to_thread(check_policy_text, text, f"version {version}")
            if report.errors or report.policy is None:
                return [f"shadow version {version} rejected: {report.format(include_warnings=False)}"]
            base = self.live.file_policy
            policy = report.policy.model_copy(update={k: getattr(base, k) for k in DEPLOYMENT_SECTIONS})
            try:
                candidate = CandidatePolicy(policy, version, self.live.router)
                await asyncio.to_thread(candidate.warm_up)
            except Exception as err:
                log.exception("shadow version %s cannot be loaded", version)
                return [f"shadow version {version} cannot be loaded: {type(err).__name__}: {err}"]
        self.live.router.candidate = candidate
        self.shadow = version
        log.warning("policy version in shadow: %s", version or "none")
        return []

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``poll_s`` seconds until ``stop`` is set."""
        while not stop.is_set():
            await self.check()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)
            except asyncio.TimeoutError:
                pass

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/policy`` shows under ``versions``."""
        return {"active": self.live.version or "file", "active_hash": self.live.router.policy_hash,
                "shadow": self.shadow, "revision": self.revision, "error": self.error}
