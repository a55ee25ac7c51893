"""What a run will send: the scenario resolved into items, scorers, secrets and a schedule."""
