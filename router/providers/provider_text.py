"""What of a provider error's text a client may read (pure).

litellm appends its own text to provider errors: the Python traceback of a custom provider's
exception (re-raised as ``APIConnectionError``), advice on litellm settings that the router's
client cannot change (``drop_params``), and bug-report and debug banners. The tier client
(:mod:`router.providers.tier_client`) keeps the provider's part only.
"""

from __future__ import annotations

import re

__all__ = ["provider_message"]

_LITELLM_ADVICE = re.compile(
    r"\s*(?:Traceback \(most recent call last\)|To drop these, set `litellm\.drop_params|"
    r"If you want to use these params dynamically|This looks like a bug in LiteLLM|Give Feedback / Get Help|"
    r"LiteLLM\.Info:|\x1b\[)")
"""Where litellm's own text in an exception message starts: a Python traceback (a custom
provider's error re-raised as ``APIConnectionError``), advice on litellm settings the client
cannot change (``drop_params``), its bug-report and debug banners."""

_MESSAGE_CHARS = 600


def provider_message(text: str) -> str:
    """A provider error's message as a client may read it: ``text`` up to where litellm's own
    additions begin (:data:`_LITELLM_ADVICE`), trimmed, at most 600 characters (longer is cut
    with an ellipsis). Pure; never raises."""
    found = _LITELLM_ADVICE.search(text)
    kept = (text[:found.start()] if found else text).strip()
    if len(kept) > _MESSAGE_CHARS:
        kept = kept[:_MESSAGE_CHARS - 1].rstrip() + "…"
    return kept or text.strip()[:_MESSAGE_CHARS]
