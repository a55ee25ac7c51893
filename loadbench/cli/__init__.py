"""The command line: one handler per command; exit codes; process settings for a run."""
