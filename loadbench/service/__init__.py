"""`loadbench serve`: the HTTP API, queue, schedules, history and the policy of what runs may reach."""
