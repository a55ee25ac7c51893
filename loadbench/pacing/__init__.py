"""When requests go out: the pure schedule of intended send times, clocks, the open/closed-loop runner and per-request records."""
