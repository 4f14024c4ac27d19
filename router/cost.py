"""Cost of model calls in USD.

Prices come from the tier's ``price`` in the policy when set, else from litellm's model
price map (``litellm.cost_per_token``; with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` the copy
bundled with litellm). An unknown price is ``None``, never a silent $0.

Counterfactual (what a request would have cost on the cloud tier): its prompt tokens
counted with the cloud model's tokenizer (``litellm.token_counter``; litellm falls back to
tiktoken's cl100k for models it has no tokenizer for) and, as the completion-token
estimate, the completion tokens of the answer actually returned (assumption: the cloud
model answers at the same length). A request answered by the cloud tier's own call uses
that call's cost.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .policy import TierConfig

__all__ = ["call_cost", "count_prompt_tokens"]

log = logging.getLogger(__name__)
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def call_cost(tier: TierConfig, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for one call of ``tier``; None when neither the policy nor litellm knows a price."""
    if tier.price is not None:
        return (prompt_tokens * tier.price.input_usd_per_mtok + completion_tokens * tier.price.output_usd_per_mtok) / 1e6
    import litellm

    try:
        prompt_usd, completion_usd = litellm.cost_per_token(
            model=tier.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception as err:  # litellm raises a plain Exception for unmapped models
        log.warning("no price for model %s: %s", tier.model, err)
        return None
    return float(prompt_usd) + float(completion_usd)


def count_prompt_tokens(tier: TierConfig, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of ``messages`` as ``tier``'s model would count them (litellm tokenizer)."""
    import litellm

    return int(litellm.token_counter(model=tier.model, messages=messages))
