"""Request records as one-line JSON (the Redis stream entries and the disk spool lines).

Readers ignore fields they do not know, so a log written by a newer version still reads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields

from .records import CallRecord, RequestRecord

__all__ = ["record_to_json", "record_from_json"]

_REQUEST_FIELDS = {f.name for f in fields(RequestRecord)} - {"calls"}
_CALL_FIELDS = {f.name for f in fields(CallRecord)}


def record_to_json(record: RequestRecord) -> str:
    """One line of JSON holding the request and its calls."""
    return json.dumps(asdict(record), separators=(",", ":"), ensure_ascii=False)


def record_from_json(text: str | bytes) -> RequestRecord:
    """Parse :func:`record_to_json` output.

    Raises:
        ValueError: not a JSON object with at least ``id`` and ``ts``.
    """
    data = json.loads(text)
    if not isinstance(data, dict) or "id" not in data or "ts" not in data:
        raise ValueError("not a request record")
    calls = [CallRecord(**{k: v for k, v in c.items() if k in _CALL_FIELDS}) for c in data.get("calls") or []]
    return RequestRecord(**{k: v for k, v in data.items() if k in _REQUEST_FIELDS}, calls=calls)
