"""How requests are sent: transports, the OpenAI protocol, SSE, multi-turn conversations and per-candidate lanes."""
