"""loadbench: open-loop load and quality benchmark for OpenAI-compatible LLM deployments."""

__version__ = "0.1.0"
