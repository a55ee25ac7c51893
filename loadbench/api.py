"""The public Python API: run or sweep a scenario from code, as the CLI does (docs/api.md)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config.scenario import Scenario, apply_override, load_scenario, parse_override
from .engine.outcome import exit_code
from .engine.process import run_settings


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run produced: its summary (summary.json), its directory, and the CLI's exit code
    for it (0 pass, 1 an SLO fails, 3 invalid run, 5 inconclusive)."""

    summary: dict[str, Any]
    run_dir: Path
    exit_code: int


def _scenario(scenario: str | os.PathLike[str] | Scenario, overrides: list[str] | None) -> tuple[Scenario, Path, str]:
    """(validated scenario with overrides, the directory its relative paths start from, a label)."""
    if isinstance(scenario, Scenario):
        data = scenario.model_dump(exclude_unset=False)
        for text in overrides or []:
            keys, value = parse_override(text)
            apply_override(data, keys, value)
        return Scenario.model_validate(data), Path.cwd(), scenario.name or "scenario"
    loaded, scenario_dir = load_scenario(scenario, list(overrides or []))
    return loaded, scenario_dir, str(scenario)


async def run_async(scenario: str | os.PathLike[str] | Scenario, *, out: str | os.PathLike[str] | None = None,
                    overrides: list[str] | None = None, quiet: bool = True, fail_on: str = "any",
                    candidates: list[str] | None = None) -> RunResult:
    """Run a scenario on the running event loop.  Raises loadbench.ConfigError (with every
    problem, each naming file, line and field) on bad input; failed requests are data."""
    from .engine.execute import MetricsOptions, execute
    from .plan.resolve import resolve
    from .sim.process import SIM_BACKENDS

    loaded, scenario_dir, label = _scenario(scenario, overrides)
    resolved = resolve(loaded, label, scenario_dir, candidates)
    result = await execute(resolved, out_root=Path(out or loaded.output.dir), quiet=quiet,
                           install_signal_handlers=False, metrics=MetricsOptions(port=None), backends=SIM_BACKENDS)
    return RunResult(result.summary, result.run_dir, exit_code(result.summary, fail_on))


def run(scenario: str | os.PathLike[str] | Scenario, *, out: str | os.PathLike[str] | None = None,
        overrides: list[str] | None = None, quiet: bool = True, fail_on: str = "any",
        candidates: list[str] | None = None) -> RunResult:
    """Run a scenario (a YAML path or a Scenario) to the end and return its result.

    Applies what the CLI applies for a run (uvloop, a short GIL switch interval) and restores
    the previous settings afterwards.  Call run_async instead from inside an event loop.
    """
    with run_settings():
        return asyncio.run(run_async(scenario, out=out, overrides=overrides, quiet=quiet, fail_on=fail_on,
                                     candidates=candidates))


def sweep(scenario: str | os.PathLike[str] | Scenario, *, out: str | os.PathLike[str] | None = None,
          overrides: list[str] | None = None, quiet: bool = True, **options: Any) -> dict[str, Any]:
    """Sweep a scenario's candidates for their capacity bracket (sweep.json's content).

    `options` are SweepConfig fields: rates, step_s, max_step_s, warmup_s, tolerance,
    time_budget_s, max_steps, refine, confirm, peak_qps, headroom, tasks_per_day.
    """
    from .engine.sweep import SweepConfig, Sweeper, new_sweep_dir
    from .plan.resolve import resolve
    from .sim.process import SIM_BACKENDS
    from .views.pages import write_sweep_reports

    cfg = SweepConfig(**options)
    loaded, scenario_dir, label = _scenario(scenario, [*(overrides or []), "load.requests=null",
                                                       f"load.duration_s={cfg.step_s}"])
    resolved = resolve(loaded, label, scenario_dir)
    sweep_dir = new_sweep_dir(Path(out or loaded.output.dir), loaded.name)
    with run_settings():
        result = asyncio.run(Sweeper(resolved, cfg, sweep_dir, quiet=quiet, backends=SIM_BACKENDS).run())
    write_sweep_reports(sweep_dir, result)
    return result
