"""Call stage: every tier is reached through litellm.

- ``llama_runtime``: the in-process llama.cpp runtime (token log-probabilities included);
- ``local_provider``: registers it with litellm as the custom provider ``slm-local``;
- ``tier_client``: the one call path (``litellm.acompletion``) used for every tier.
"""
