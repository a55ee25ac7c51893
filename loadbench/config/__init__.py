"""What a run is asked to do: scenario files, eval sets, traces, SLO clauses, simulator profiles (validated input)."""
