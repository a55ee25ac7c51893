"""A run end to end (resolve, start, drive, finish) and sweeps of runs."""
