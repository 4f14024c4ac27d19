"""Extra measurements of a local answer, one file each behind :class:`Measure`.

:data:`MEASURES` names them in the order they run (and their notes appear in the reason):
self-check, verifier, consistency. A new measure is one file plus one line here.
"""

from .base import CheckCall, Measure, MeasureInput, Measured
from .consistency import Consistency
from .self_check import SelfCheck
from .verifier import Verifier, Verifiers

__all__ = ["MEASURES", "CheckCall", "Measure", "MeasureInput", "Measured", "Verifiers", "build_measures"]

MEASURES = {
    "self_check": lambda verifiers: SelfCheck(),
    "verifier": lambda verifiers: Verifier(verifiers),
    "consistency": lambda verifiers: Consistency(),
}
"""Signal name -> factory of its measure (given the router's :class:`Verifiers`), in run order."""


def build_measures(verifiers: Verifiers) -> list[Measure]:
    """One instance of every registered measure, in run order."""
    return [make(verifiers) for make in MEASURES.values()]
