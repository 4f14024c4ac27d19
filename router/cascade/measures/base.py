"""The contract of a cascade measure: one extra signal of a local answer, measured with I/O
the pipeline provides (check calls to the local tier, the verifier's classifier).

A measure says whether the escalation settings want it (:meth:`Measure.wanted`, pure) and
measures (:meth:`Measure.measure`), returning the signal's value (None: unmeasured) and a
note for ``x-router-reason``. Adding one is a file in this folder plus its line in
:data:`router.cascade.measures.MEASURES`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: the measures stay importable without the providers
    from ...policy import EscalationConfig
    from ...providers.tier_client import CallResult

__all__ = ["CheckCall", "Measure", "MeasureInput", "Measured"]

CheckCall = Callable[[str, list[dict[str, Any]], dict[str, Any]], Awaitable["CallResult | None"]]
"""``(purpose, messages, params) -> result``: one logged call to the local tier (retries
included); None when it failed (the pipeline notes the failure in the reason)."""


@dataclass(frozen=True, slots=True)
class MeasureInput:
    """What a measure reads: the answer text, the settings, the request's turns and
    parameters, and how to call the local tier."""

    text: str
    escalation: "EscalationConfig"
    messages: Callable[[], list[dict[str, Any]]]
    params: dict[str, Any]
    check_call: CheckCall


@dataclass(frozen=True, slots=True)
class Measured:
    """A measure's result: ``value`` of its signal (None: unmeasured) and a ``note`` for the
    reason (None: nothing to say)."""

    value: float | None = None
    note: str | None = None


@runtime_checkable
class Measure(Protocol):
    """One measured signal (``signal`` is its name in :data:`router.cascade.signals.SIGNAL_NAMES`)."""

    signal: str

    def wanted(self, escalation: EscalationConfig) -> bool:
        """True when ``escalation`` asks for this signal."""
        ...

    async def measure(self, given: MeasureInput) -> Measured:
        """Measure the signal of ``given.text``."""
        ...
