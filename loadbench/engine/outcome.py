"""Exit codes and the policy that maps a run's summary to one (shared by the CLI and the API)."""

from __future__ import annotations

from typing import Any

from ..stats.decision import slo_verdict

EXIT_OK = 0
EXIT_SLO_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INVALID_RUN = 3
EXIT_REGRESSED = 4
EXIT_INCONCLUSIVE = 5
EXIT_INTERRUPTED = 130


def exit_code(summary: dict[str, Any], fail_on: str = "any") -> int:
    """3 if the run is invalid; 1 if candidates fail their SLO (per fail_on: any, all, none);
    5 if none fails but some verdict is inconclusive; else 0."""
    if not (summary.get("validity") or {}).get("valid", True):
        return EXIT_INVALID_RUN
    verdicts = [slo_verdict(c["slo"]) for c in summary["candidates"].values() if c.get("slo") is not None]
    if not verdicts or fail_on == "none":
        return EXIT_OK
    failed = [v == "fail" for v in verdicts]
    if (fail_on == "any" and any(failed)) or (fail_on == "all" and all(failed)):
        return EXIT_SLO_FAILED
    undecided = [v == "inconclusive" for v in verdicts]
    if (fail_on == "any" and any(undecided)) or (fail_on == "all" and all(f or u for f, u in zip(failed, undecided))):
        return EXIT_INCONCLUSIVE
    return EXIT_OK
