"""Call stage: every tier is reached through litellm.

- ``llama_runtime``: the in-process llama.cpp runtime (token log-probabilities included);
- ``worker_pool`` / ``llama_worker``: supervised worker processes running it (a crash never
  takes the server down), ``local_errors`` their failures;
- ``extra_buffers``: whether llama.cpp's extra buffer types are used (probe, cache);
  ``llama_backends``: a portable build's CPU variants;
- ``local_provider``: registers the pools with litellm as the custom provider ``slm-local``;
- ``tier_client``: the one call path (``litellm.acompletion``) used for every tier;
  ``null_content``: what a turn's ``content: null`` becomes for each provider (litellm
  drops None fields); ``spend``: the tokens a call spent, read when it is cancelled;
  ``provider_text``: what of a provider error's text reaches the client.
"""
