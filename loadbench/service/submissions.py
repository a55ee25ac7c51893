"""What a submission may be: its shape, the final scenario against the policy, schedules (part of Service)."""

from __future__ import annotations

import re
import secrets as secrets_mod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..config.errors import ConfigError
from .common import _OVERRIDE, FORBIDDEN_OVERRIDES, SWEEP_OPTIONS, ApiError
from .policy import check_scenario, key_variables, scan_yaml


class SubmissionChecks:
    def _scenario_file(self, name: str) -> Path:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ApiError(400, "scenario must be the name of a file in the scenarios directory", "scenario")
        path = (self.scenarios_dir / name).resolve()
        if not path.is_relative_to(self.scenarios_dir):
            raise ApiError(403, f"scenario {name!r} is outside the scenarios directory", "scenario")
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            raise ApiError(404, f"no scenario {name!r} in the scenarios directory", "scenario")
        return path

    def _confined(self, value: Any, what: str) -> str:
        if not isinstance(value, str) or not value:
            raise ApiError(400, f"{what} must be a path", what)
        path = (self.scenarios_dir / value).resolve()
        if not path.is_relative_to(self.scenarios_dir):
            raise ApiError(403, f"{what} {value!r} is outside the scenarios directory", what)
        return str(path)

    def validate_submission(self, body: Any) -> tuple[str, str, dict[str, Any]]:
        """(kind, scenario label, normalized request) or ApiError."""
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        unknown = set(body) - {"scenario", "scenario_yaml", "overrides", "kind", "label", "sweep"}
        if unknown:
            raise ApiError(400, f"unknown field(s) {sorted(unknown)}", sorted(unknown)[0])
        kind = body.get("kind", "run")
        if kind not in ("run", "sweep"):
            raise ApiError(400, "kind must be run or sweep", "kind")
        overrides = body.get("overrides") or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) and _OVERRIDE.match(o) for o in overrides):
            raise ApiError(400, "overrides must be a list of 'dotted.path=value' strings", "overrides")
        for o in overrides:
            if o.split("=", 1)[0].startswith(FORBIDDEN_OVERRIDES):
                raise ApiError(403, f"override {o.split('=', 1)[0]!r} is not allowed through the service (paths stay confined)",
                               "overrides")
        if (body.get("scenario") is None) == (body.get("scenario_yaml") is None):
            raise ApiError(400, "give scenario (a file name in the scenarios directory) or scenario_yaml, not both", "scenario")
        request: dict[str, Any] = {"kind": kind, "overrides": overrides}
        sweep = body.get("sweep")
        if sweep is not None:
            if kind != "sweep" or not isinstance(sweep, dict) or set(sweep) - set(SWEEP_OPTIONS):
                raise ApiError(400, f"sweep options go with kind sweep; known: {', '.join(SWEEP_OPTIONS)}", "sweep")
            for key, value in sweep.items():
                ok = isinstance(value, str) and re.fullmatch(r"[0-9.,]+", value) if key == "rates" else (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 86_400)
                if not ok:
                    raise ApiError(400, f"sweep.{key} has a bad value {value!r}", "sweep")
            request["sweep"] = sweep
        if body.get("scenario") is not None:
            self._scenario_file(body["scenario"])
            request["scenario"] = body["scenario"]
            label = str(body["scenario"])
        else:
            text = body["scenario_yaml"]
            if not isinstance(text, str):
                raise ApiError(400, "scenario_yaml must be a string", "scenario_yaml")
            if len(text.encode("utf-8", "surrogateescape")) > self.cfg.max_scenario_bytes:
                raise ApiError(413, f"scenario_yaml is larger than {self.cfg.max_scenario_bytes} bytes", "scenario_yaml")
            try:
                scan_yaml(text)  # aliases and deep nesting are refused before anything expands them
                data = yaml.safe_load(text)
            except (ValueError, yaml.YAMLError, RecursionError) as exc:
                raise ApiError(400, f"scenario_yaml: {exc}", "scenario_yaml") from None
            if not isinstance(data, dict):
                raise ApiError(400, "scenario_yaml must be a mapping", "scenario_yaml")
            paths = []
            if data.get("dataset") is not None:
                paths.append(f"dataset={self._confined(data['dataset'], 'dataset')}")
            trace = (data.get("load") or {}).get("trace") if isinstance(data.get("load"), dict) else None
            if isinstance(trace, dict) and trace.get("path") is not None:
                paths.append(f"load.trace.path={self._confined(trace['path'], 'load.trace.path')}")
            request["scenario_yaml"] = text
            request["confined_paths"] = paths
            label = str(data.get("name") or "(inline)")
        if body.get("label") is not None:
            request["label"] = str(body["label"])[:200]
        self._check_final(request)
        return kind, label, request

    def _check_final(self, request: dict[str, Any]) -> None:
        """Load the scenario as the child will (every override applied, the same code as the
        CLI) and hold it against the policy: hosts, key grants, files, scorer code, sizes."""
        import tempfile

        from ..config.scenario import load_scenario

        overrides = [*request.get("confined_paths", ()), *request.get("overrides", ())]
        if request["kind"] == "sweep":
            step = (request.get("sweep") or {}).get("step_duration_s", 20.0)
            overrides += ["load.requests=null", f"load.duration_s={step or 20.0}"]
        with tempfile.TemporaryDirectory(dir=self.submitted_dir) as tmp:
            if "scenario" in request:
                path = self._scenario_file(request["scenario"])
            else:
                path = Path(tmp) / "scenario.yaml"
                path.write_text(request["scenario_yaml"], encoding="utf-8", errors="surrogateescape")
            try:
                scenario, scenario_dir = load_scenario(path, overrides)
            except ConfigError as err:
                # the same words as the CLI, with the file named as the submitter knows it
                shown = request.get("scenario", "scenario_yaml")
                text = "; ".join(f"{p.field + ': ' if p.field else ''}{p.message}" + (f" (line {p.line})" if p.line else "")
                                 for p in err.problems)
                raise ApiError(400, f"{shown}: {text}", "scenario") from None
            except RecursionError:
                raise ApiError(400, "the scenario is nested too deeply", "scenario") from None
        if "scenario" not in request:
            scenario_dir = self.submitted_dir  # where the child reads it from: only absolute, confined paths pass
        problems = check_scenario(scenario, scenario_dir, self.policy, self.protected_env)
        sweep = request.get("sweep") or {}
        for key in ("step_duration_s", "max_step_duration_s", "time_budget_s"):
            if key in sweep and sweep[key] > self.cfg.max_duration_s:
                problems.append(f"sweep.{key}: {sweep[key]:g} s is above this service's limit of {self.cfg.max_duration_s:g} s")
        if problems:
            raise ApiError(403, "not allowed by this service's policy: " + "; ".join(problems), "scenario")
        request["key_envs"] = key_variables(scenario)

    def add_schedule(self, body: Any) -> dict[str, Any]:
        from croniter import croniter

        if not isinstance(body, dict) or "cron" not in body or "run" not in body:
            raise ApiError(400, "give cron (a five-field cron expression, UTC) and run (a run submission)")
        cron = body["cron"]
        if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
            raise ApiError(400, f"not a five-field cron expression: {cron!r}", "cron")
        if len(self.history.list_schedules()) >= self.cfg.max_schedules:
            raise ApiError(429, f"this service keeps at most {self.cfg.max_schedules} schedules; delete one first",
                           retry_after_s=3600)
        it = croniter(cron, datetime.now(UTC))
        first, second = it.get_next(float), it.get_next(float)
        if second - first < self.cfg.min_schedule_interval_s:
            raise ApiError(400, f"{cron!r} fires every {second - first:g} s; this service allows at most one run every "
                                f"{self.cfg.min_schedule_interval_s:g} s per schedule", "cron")
        _, label, _ = self.validate_submission(body["run"])
        schedule_id = "sch-" + secrets_mod.token_hex(4)
        self.history.add_schedule(schedule_id, label, cron, body["run"])
        return next(s for s in self.history.list_schedules() if s["id"] == schedule_id)
