"""What a run sends: the eval set or a trace's rows, their scorers, and the first messages."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.dataset import Item, load_dataset
from ..config.errors import ConfigError, Problem
from ..config.scenario import Scenario
from ..config.trace import TraceReplay, load_trace, synthetic_prompt
from ..scoring.registry import CompiledSpec, compile_item_specs, compile_turn_specs
from .variants import Expanded, add_reference, expand


@dataclass(slots=True)
class Workload:
    items: list[Item]
    dataset_path: Path | None
    specs: list[list[CompiledSpec]]
    turn_specs: dict[tuple[int, int], list[CompiledSpec]] = field(default_factory=dict)
    trace: TraceReplay | None = None
    variants: Expanded | None = None  # with `fidelity`: which variant of which item each item is


def shown_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _key_line(scenario_path: str, key: str) -> int | None:
    """The line of a top-level key in the scenario file (None when it cannot be read or is not there)."""
    try:
        lines = Path(scenario_path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return next((i for i, line in enumerate(lines, start=1) if line.startswith(f"{key}:")), None)


def _add_reference(variants: Expanded, scenario: Scenario, scenario_path: str,
                   scenario_dir: Path) -> tuple[list[list[CompiledSpec]], list[Problem]]:
    """fidelity.reference_dataset: its items appended as the `reference` variant, scored by their own file's specs."""
    fid = scenario.fidelity
    assert fid is not None and fid.reference_dataset is not None
    path = _resolve(scenario_dir, fid.reference_dataset)
    if not path.exists():
        raise ConfigError([Problem(scenario_path, None, "fidelity.reference_dataset",
                                   f"{fid.reference_dataset}: file not found (tried {path.resolve()})")])
    reference = load_dataset(path, shown=shown_path(path))
    before = len(variants.items)
    add_reference(variants, reference, fid)
    added = variants.items[before:]
    return compile_item_specs(added, scenario.scoring.default_assert, shown_path(path), [item.line for item in added])


def _resolve(base: Path, name: str) -> Path:
    return Path(name) if os.path.isabs(name) else base / name


def load_workload(scenario: Scenario, scenario_path: str, scenario_dir: Path) -> Workload:
    """Items, trace and scorers; raise ConfigError listing every problem found."""
    problems: list[Problem] = []
    dataset_path = _resolve(scenario_dir, scenario.dataset) if scenario.dataset else None
    items: list[Item] = []
    if dataset_path is not None:
        if not dataset_path.exists():
            # blame the scenario's line, and show where the relative path led
            raise ConfigError([Problem(scenario_path, _key_line(scenario_path, "dataset"), "dataset",
                                       f"{scenario.dataset}: file not found (tried {dataset_path.resolve()}; "
                                       "a relative path is read from the scenario file's folder)")])
        try:
            items = load_dataset(dataset_path, shown=shown_path(dataset_path))
        except ConfigError as err:
            problems.extend(err.problems)
    trace = None
    cfg = scenario.load.trace
    if cfg is not None and not problems:
        trace_path = _resolve(scenario_dir, cfg.path)
        try:
            trace = load_trace(cfg, trace_path, shown_path(trace_path), items if dataset_path is not None else None)
            items = trace.items
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        raise ConfigError(problems)
    variants = None
    if scenario.fidelity is not None:
        if trace is not None:
            raise ConfigError.single(scenario_path, "fidelity variants and a trace replay do not mix (a trace fixes "
                                                    "which item each row sends)", field="fidelity")
        try:
            variants = expand(items, scenario.fidelity, scenario.load.seed)
        except ValueError as exc:
            raise ConfigError.single(scenario_path, str(exc), field="fidelity.variants") from None
        items = variants.items
    shown = shown_path(dataset_path) if dataset_path is not None else scenario_path
    specs, spec_problems = compile_item_specs(items, scenario.scoring.default_assert, shown, [item.line for item in items])
    if variants is not None and scenario.fidelity is not None and scenario.fidelity.reference_dataset:
        ref_specs, ref_problems = _add_reference(variants, scenario, scenario_path, scenario_dir)
        items = variants.items
        specs += ref_specs
        spec_problems += ref_problems
    turn_specs, turn_problems = compile_turn_specs(items, scenario.scoring.default_assert, shown)
    for p in [*spec_problems, *turn_problems]:
        p = Problem(scenario_path, p.line, p.field, p.message) if p.file == "scenario" else p
        if p not in problems:
            problems.append(p)
    if any(item.is_session for item in items):
        for i, cand in enumerate(scenario.candidates):
            if cand.api != "chat":
                problems.append(Problem(scenario_path, None, f"candidates[{i}].api",
                                        "the eval set has multi-turn or agentic items, which need the chat API"))
    if problems:
        raise ConfigError(problems)
    return Workload(items, dataset_path, specs, turn_specs, trace, variants)


def shared_prefix(n_tokens: int) -> dict[str, Any] | None:
    """One system message every request starts with (prefix-caching experiments)."""
    if n_tokens <= 0:
        return None
    return {"role": "system", "content": "Shared context: " + synthetic_prompt(max(n_tokens - 2, 1), 2**32)}


def first_messages(item: Item, prefix: dict[str, Any] | None) -> list[dict[str, Any]]:
    messages = item.messages()
    return [prefix, *messages] if prefix is not None else messages


def first_prompt(item: Item, prefix: dict[str, Any] | None) -> str:
    text = item.prompt_text()
    return f"{prefix['content']}\n{text}" if prefix is not None else text
