"""HTTP edge: the FastAPI app and the live (reloadable) policy, and the API surfaces beside
the OpenAI chat endpoint: Anthropic's Messages API and OpenAI's Responses API, each a
translation to and from the one chat pipeline (:mod:`router.api.chat_entry`)."""
