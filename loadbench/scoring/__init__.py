"""Whether a response is right: the scorer registry, the built-in scorers and the LLM judge."""
