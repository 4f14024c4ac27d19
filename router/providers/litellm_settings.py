"""litellm's process-wide settings for the router's calls (:func:`configure_litellm`)."""

from __future__ import annotations

__all__ = ["configure_litellm"]


def configure_litellm() -> None:
    """litellm's documented process-wide settings for the least per-call work: no debug
    banner (``suppress_debug_info``), and ``turn_off_message_logging`` left off. The router
    logs requests itself and registers no litellm callbacks, so litellm's logging objects
    reach nobody; with ``turn_off_message_logging`` on, litellm deep-copies every answer to
    redact it (``perform_redaction``, about 15% of a forced-tier request's CPU in cProfile).
    Measured A/B, 3 interleaved runs of 400 non-streaming calls in process against a local
    fake backend (litellm 1.110.2, 2 busy cores): 13.7 -> 12.9 ms of CPU per request. The rest
    of litellm's per-call work is its cost calculation and response metadata, the thread hop
    of ``acompletion`` and, for streams, its chunk wrapper: none has a documented switch.

    Also loads litellm's default tokenizer (tiktoken's cl100k, through its public
    ``token_counter``): litellm loads it lazily on the first call of most providers, in-process
    ones included, and the first answer waited for it (0.26 s alone; 1.8 s of a 4 s window
    beside the classifier's warm-up on 2 cores, py-spy). Here it loads during start-up, while
    the in-process model's worker loads on the other core."""
    import litellm

    litellm.suppress_debug_info = True
    litellm.turn_off_message_logging = False
    litellm.token_counter(text="warm-up")
