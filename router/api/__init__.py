"""HTTP API surfaces beside the OpenAI chat endpoint: Anthropic's Messages API and OpenAI's
Responses API, each a translation to and from the one chat pipeline."""
