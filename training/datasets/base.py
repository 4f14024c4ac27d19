"""The one schema every labelled routing set loads into.

An :class:`Example` is one prompt with the outcome in [0, 1] of each model that answered
it (1 = correct / preferred) and, when the source records it, each model's cost in USD.
Every dataset names a default *weak* model (the cheap tier) and *strong* model (the cloud
tier); the routing labels are derived from that pair:

- ``needs_strong``: strong outcome >= 0.5 and weak outcome < 0.5 ("strong right, weak wrong");
- ``weak_wrong``: weak outcome < 0.5;
- ``gap``: strong outcome - weak outcome, in [-1, 1] (the expected quality gained by routing
  the prompt to the strong model; the target whose ranking APGR rewards).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

__all__ = ["Example", "LABELS", "label_values", "with_pair"]

LABELS = ("needs_strong", "weak_wrong", "gap")


@dataclass(frozen=True, slots=True, eq=False)
class Example:
    """One labelled prompt.

    Attributes:
        prompt: the text the router sees (the user's request).
        source: dataset name (``mmlu``, ``gsm8k``, ``arc``, ...).
        group: sub-group for grouped splits (MMLU subject, AlpacaEval source set, ...).
        outcomes: model name -> outcome in [0, 1].
        costs: model name -> cost of answering this prompt in USD (empty when unknown).
        weak_model, strong_model: keys of ``outcomes`` that play the local and cloud tier.
    """

    prompt: str
    source: str
    group: str
    outcomes: Mapping[str, float]
    weak_model: str
    strong_model: str
    costs: Mapping[str, float] = field(default_factory=dict)

    @property
    def weak(self) -> float:
        """The weak model's outcome in [0, 1]."""
        return float(self.outcomes[self.weak_model])

    @property
    def strong(self) -> float:
        """The strong model's outcome in [0, 1]."""
        return float(self.outcomes[self.strong_model])

    @property
    def needs_strong(self) -> int:
        """1 when the strong model is right (>= 0.5) and the weak one wrong (< 0.5), else 0."""
        return int(self.strong >= 0.5 and self.weak < 0.5)

    @property
    def weak_wrong(self) -> int:
        """1 when the weak model's outcome is below 0.5."""
        return int(self.weak < 0.5)

    @property
    def gap(self) -> float:
        """strong - weak outcome, in [-1, 1]."""
        return self.strong - self.weak


def label_values(examples, label: str):
    """The training target ``label`` (one of :data:`LABELS`) of each example, as a float array.

    Raises:
        ValueError: an unknown label.
    """
    import numpy as np

    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")
    return np.array([getattr(e, label) for e in examples], dtype=float)


def with_pair(examples, weak_model: str | None = None, strong_model: str | None = None) -> list[Example]:
    """Re-point the weak/strong pair (None keeps each example's default).

    Raises:
        KeyError: a model without an outcome on some example.
    """
    out = []
    for e in examples:
        w, s = weak_model or e.weak_model, strong_model or e.strong_model
        for m in (w, s):
            if m not in e.outcomes:
                known = ", ".join(sorted(e.outcomes))
                raise KeyError(f"model {m!r} has no outcome in {e.source}; known: {known}")
        out.append(replace(e, weak_model=w, strong_model=s))
    return out
