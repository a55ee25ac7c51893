"""Sending from more than one process: worker processes, Ray actors, per-worker calibration."""
