"""Language of a text, for rules that match on ``languages``.

Uses py3langid (the langid.py model, shipped inside the package: nothing is downloaded);
imported on first use.
"""

from __future__ import annotations

import threading

__all__ = ["detect_language", "warm_up"]

_lock = threading.Lock()
_classify = None


def _model():
    global _classify
    with _lock:
        if _classify is None:
            from py3langid.langid import classify

            classify("warm up")  # builds py3langid's module-level identifier once, under the lock
            _classify = classify
    return _classify


def warm_up() -> None:
    """Load the model now (about a second), so the first request pays nothing."""
    _model()


def detect_language(text: str) -> str | None:
    """ISO 639-1 code (``en``, ``fr``...) of ``text``, or None when it has no letters.

    Short texts are guessed less reliably (a few words can be ambiguous).
    """
    if not any(ch.isalpha() for ch in text):
        return None
    code, _ = _model()(text)
    return code
