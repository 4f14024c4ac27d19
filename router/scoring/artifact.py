"""Classifier artifacts: a directory with ``model.joblib`` and ``card.json``.

The card records what the model was trained on and how it evaluated, so a deployed
threshold can always be traced to data and metrics. Keys: ``name``, ``created`` (ISO-8601
UTC), ``embedder``, ``label``, ``model``, ``data`` (sources and row counts), ``split``,
``metrics`` (APGR etc. on the held-out split), ``score_quantiles`` (held-out scores at
cloud shares 0.1..0.9, for choosing a threshold).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["Artifact", "ArtifactError", "load_artifact", "save_artifact", "builtin_artifact_dir", "artifact_dir", "BUILTIN"]

BUILTIN = "builtin"
MODEL_FILE = "model.joblib"
CARD_FILE = "card.json"


@dataclass(frozen=True)
class Artifact:
    """A loaded classifier: a fitted scikit-learn estimator with ``predict_proba`` over
    embeddings of shape (n, 384), and its card (a JSON mapping)."""

    path: Path
    estimator: Any
    card: dict[str, Any]


def builtin_artifact_dir() -> Path:
    """Directory of the classifier shipped in the package (``router/artifacts/difficulty``)."""
    return Path(str(resources.files("router") / "artifacts" / "difficulty"))


def artifact_dir(location: str | Path) -> Path:
    """The folder of an artifact location: ``builtin`` (the default classifier),
    ``builtin:<name>`` (another artifact shipped in ``router/artifacts/<name>``, e.g.
    ``builtin:smollm2-local``) or a directory path."""
    text = str(location)
    if text == BUILTIN:
        return builtin_artifact_dir()
    if text.startswith(BUILTIN + ":"):
        return builtin_artifact_dir().parent / text.split(":", 1)[1]
    return Path(location)


def load_artifact(location: str | Path) -> Artifact:
    """Load an artifact (``builtin``, ``builtin:<name>`` or a directory, see :func:`artifact_dir`).

    Raises:
        FileNotFoundError: the directory lacks ``model.joblib`` or ``card.json``.
        ArtifactError: a file is there but cannot be read (truncated, corrupt, not JSON, a
            card that is not a JSON object or has a field of the wrong type); the message names the file.
    """
    import joblib

    path = artifact_dir(location)
    model_path, card_path = path / MODEL_FILE, path / CARD_FILE
    for p in (model_path, card_path):
        if not p.is_file():
            raise FileNotFoundError(f"classifier artifact incomplete: {p} is missing")
    try:
        estimator = joblib.load(model_path)
    except Exception as err:  # joblib/pickle raise anything from EOFError to IndexError on a bad file
        raise ArtifactError(f"{model_path}: cannot load the classifier ({type(err).__name__}: {err})") from err
    try:
        card = json.loads(card_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{card_path}: not a valid artifact card ({err})") from err
    problem = card_problem(card)
    if problem:
        raise ArtifactError(f"{card_path}: not a valid artifact card ({problem})")
    return Artifact(path, estimator, card)


def card_problem(card: Any) -> str | None:
    """Why a decoded ``card.json`` cannot be read as an :class:`~router.scoring.card.ArtifactCard`
    (not a JSON object, or a typed field of the wrong type: ``inputs: 5``), or None (pure)."""
    from pydantic import ValidationError

    from .card import ArtifactCard

    if not isinstance(card, dict):
        return f"expected a JSON object, got {type(card).__name__}"
    try:
        ArtifactCard.read(card)
    except ValidationError as err:
        first = err.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return None


class ArtifactError(ValueError):
    """An artifact file exists but cannot be loaded; the message names the file."""


def save_artifact(path: str | Path, estimator: Any, card: dict[str, Any]) -> Path:
    """Write ``model.joblib`` and ``card.json`` into ``path`` (created if needed)."""
    import joblib

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, out / MODEL_FILE, compress=3)
    (out / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return out
