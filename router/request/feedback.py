"""Parse a ``POST /v1/feedback`` body (pure).

``{"request_id": "...", "score": 0.8}`` or ``{"request_id": "...", "thumbs": "up"}``, with an
optional ``"comment"``. ``score`` is a number in [0, 1] (1 = the answer was good);
``thumbs`` is ``up`` or ``down``; exactly one of the two. Anything else is a 400 in OpenAI's
error shape whose ``param`` names the field.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..errors import InvalidRequestError
from ..store.records import FeedbackRecord
from .parse import load_json_body

__all__ = ["parse_feedback", "MAX_COMMENT_CHARS"]

MAX_COMMENT_CHARS = 2000
_FIELDS = {"request_id", "score", "thumbs", "comment"}


def parse_feedback(body: bytes, api_key_id: str | None = None, now: float | None = None) -> FeedbackRecord:
    """The feedback a body holds, stamped with ``now`` (Unix s) and the sender's key id.

    Raises:
        InvalidRequestError: not a JSON object, an unknown or missing field, a score outside
            [0, 1], thumbs other than up/down, both or neither of score and thumbs, a comment
            that is not a string or is longer than :data:`MAX_COMMENT_CHARS`.
    """
    data: Any = load_json_body(body)
    if not isinstance(data, dict):
        raise InvalidRequestError("The body must be a JSON object.", code="invalid_request")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise InvalidRequestError(f"Unknown field {unknown[0]!r}; feedback takes request_id, score or thumbs, comment.",
                                  param=unknown[0])
    rid = data.get("request_id")
    if not isinstance(rid, str) or not rid.strip():
        raise InvalidRequestError("'request_id' must be the x-request-id of an answered request.", param="request_id")
    score, thumbs = data.get("score"), data.get("thumbs")
    if (score is None) == (thumbs is None):
        raise InvalidRequestError("Give exactly one of 'score' (0-1) and 'thumbs' ('up' or 'down').",
                                  param="score" if score is not None else "thumbs")
    if score is not None:
        # compared before any float(): an integer of 400 digits overflowed math.isfinite (a 500)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            raise InvalidRequestError(f"'score' must be a number from 0 to 1, got {score!r}.", param="score")
        score = float(score)
    if thumbs is not None and thumbs not in ("up", "down"):
        raise InvalidRequestError(f"'thumbs' must be 'up' or 'down', got {thumbs!r}.", param="thumbs")
    comment = data.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise InvalidRequestError(f"'comment' must be a string of at most {MAX_COMMENT_CHARS} characters.",
                                  param="comment")
    return FeedbackRecord(rid.strip(), time.time() if now is None else now, score, thumbs, comment, api_key_id)
