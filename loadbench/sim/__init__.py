"""The built-in simulated deployment: an OpenAI-compatible server with profiles, faults and known answers."""
