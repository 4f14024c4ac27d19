"""Policy versions in the shared state: the :class:`~router.policy.versions.VersionBook` and
each version's YAML text (in process memory for one server, on Redis for every replica).

Keys (after the state's prefix): ``policy:versions`` holds the book as JSON,
``policy:text:<version>`` the YAML text of a version as it was written (``${VAR}``
references stay unresolved: each replica resolves them with its own environment). Both are
kept for :data:`KEEP_S`. Writes are last-writer-wins: run one ``slm-router policy ...`` at a
time.
"""

from __future__ import annotations

import time

from ..policy.versions import VersionBook, activate, register, revert, set_shadow
from .base import SharedState

__all__ = ["PolicyVersions", "BOOK_KEY", "TEXT_KEY", "KEEP_S"]

BOOK_KEY = "policy:versions"
TEXT_KEY = "policy:text:"
KEEP_S = 10 * 365 * 86400.0
"""How long the book and the texts are kept (s): ten years, i.e. until deleted."""


class PolicyVersions:
    """Reads and changes the versions in a :class:`~router.state.base.SharedState`.

    Every method raises :class:`~router.state.base.StateUnavailable` when the state cannot
    be reached, and the changing ones :class:`~router.policy.versions.VersionError` when
    the change is not possible.
    """

    def __init__(self, state: SharedState, clock=time.time) -> None:
        self.state = state
        self._clock = clock

    async def book(self) -> VersionBook:
        """The current book (an empty one when none was written)."""
        raw = await self.state.get(BOOK_KEY)
        return VersionBook.model_validate_json(raw) if raw else VersionBook()

    async def text(self, version: str) -> str | None:
        """The YAML text of ``version``, or None when it is not stored."""
        raw = await self.state.get(TEXT_KEY + version)
        return raw.decode("utf-8") if raw is not None else None

    async def _write(self, book: VersionBook) -> VersionBook:
        await self.state.set(BOOK_KEY, book.model_dump_json().encode("utf-8"), KEEP_S)
        return book

    async def shadow(self, version: str, text: str, source: str) -> VersionBook:
        """Store ``text`` as ``version`` (its :func:`~router.policy.view.policy_hash`) and put it in shadow."""
        await self.state.set(TEXT_KEY + version, text.encode("utf-8"), KEEP_S)
        now = self._clock()
        return await self._write(set_shadow(register(await self.book(), version, source, now), version, now))

    async def stop_shadow(self) -> VersionBook:
        """No version in shadow any more."""
        return await self._write(set_shadow(await self.book(), None, self._clock()))

    async def activate(self, ref: str) -> VersionBook:
        """Make version ``ref`` (an id, a unique prefix or ``file``) the active one."""
        return await self._write(activate(await self.book(), ref, self._clock()))

    async def revert(self) -> VersionBook:
        """Go back to the version active before the last activation."""
        return await self._write(revert(await self.book(), self._clock()))
