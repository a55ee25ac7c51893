"""What the records add up to: histograms, quality, SLO verdicts with confidence, validity, decisions, capacity, regressions."""
