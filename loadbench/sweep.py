"""Capacity planning: find each candidate's highest offered rate that meets the SLO, and project it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import MetricsOptions, Resolved, execute, new_run_id
from .files import write_json_atomic
from .progress import ProgressView


@dataclass(slots=True)
class SweepConfig:
    rates: list[float] | None = None  # explicit ladder; None = automatic
    step_s: float = 20.0
    warmup_s: float = 5.0
    steps: int = 5  # automatic ladder length
    refine: int = 3  # bisection steps between the last pass and the first fail
    confirm: int = 2  # repeats of the final rate
    calibrate_s: float = 10.0
    calibrate_users: int = 32
    peak_qps: float | None = None
    headroom: float = 0.3
    tasks_per_day: float | None = None
    metrics_port: int | None = None


@dataclass(slots=True)
class Step:
    rate: float
    repeat: int
    passed: bool
    reasons: list[str]
    summary: dict[str, Any]
    run_dir: str

    def row(self, name: str) -> dict[str, Any]:
        c = self.summary["candidates"][name]
        acc = c.get("accuracy") or {}
        return {
            "offered_qps": self.rate, "repeat": self.repeat, "passed": self.passed, "reasons": self.reasons,
            "achieved_qps": c.get("achieved_rate_qps"), "throughput_rps": c.get("throughput_rps"),
            "latency_s": {k: c["latency_s"].get(k) for k in ("p50", "p90", "p95", "p99", "count")},
            "ttft_s": {k: c["ttft_s"].get(k) for k in ("p50", "p95", "p99")},
            "error_ratio": c.get("error_ratio"), "accuracy": acc.get("value"), "accuracy_attempted": acc.get("attempted_value"),
            "goodput_rps": (c.get("goodput") or {}).get("rps"), "goodput_fraction": (c.get("goodput") or {}).get("fraction"),
            "cost_per_task": (c.get("cost_usd") or {}).get("per_request"), "cost_per_correct": (c.get("cost_usd") or {}).get("per_correct"),
            "truncated": ((c.get("scorers") or {}).get("finish_reason") or {}).get("fail"),
            "schedule_lag_p99_s": c["schedule_lag_s"].get("p99"), "run_dir": self.run_dir,
        }


@dataclass(slots=True)
class CandidateSweep:
    name: str
    steps: list[Step] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)


def step_verdict(summary: dict[str, Any], name: str) -> tuple[bool, list[str]]:
    """A step passes when the candidate meets every SLO clause and the measurement is valid
    (no saturation: achieved >= 99% of offered, no drops, schedule lag bounded)."""
    c = summary["candidates"][name]
    reasons = []
    slo = c.get("slo")
    if slo is not None and not slo["ok"]:
        reasons += [f"SLO: {clause}" for clause in slo["failing"]]
    validity = summary.get("validity") or {}
    reasons += validity.get("reasons", [])
    reasons += (validity.get("candidates") or {}).get(name, [])
    if c.get("error_ratio") and c["error_ratio"] > 0.05 and slo is None:
        reasons.append(f"error ratio {c['error_ratio']:.1%} (no SLO set: more than 5% errors counts as failing)")
    return not reasons, reasons


def knee(rows: list[dict[str, Any]]) -> float | None:
    """The first offered rate whose p95 latency exceeds 1.5x the p95 at the lowest rate."""
    rows = sorted((r for r in rows if r["latency_s"]["p95"] is not None), key=lambda r: r["offered_qps"])
    if len(rows) < 2:
        return None
    base = rows[0]["latency_s"]["p95"]
    for r in rows[1:]:
        if r["latency_s"]["p95"] > 1.5 * base:
            return r["offered_qps"]
    return None


def project(best: Step | None, name: str, cfg: SweepConfig, pricing: dict[str, Any]) -> dict[str, Any] | None:
    if best is None or cfg.peak_qps is None:
        return None
    c = best.summary["candidates"][name]
    max_qps = best.rate
    replicas = math.ceil(cfg.peak_qps * (1 + cfg.headroom) / max_qps)
    per_task = (c.get("cost_usd") or {}).get("per_request")
    acc = (c.get("accuracy") or {}).get("value")
    out: dict[str, Any] = {
        "peak_qps": cfg.peak_qps, "headroom": cfg.headroom, "max_sustainable_qps": max_qps, "replicas": replicas,
        "api": {"cost_per_task": per_task, "cost_per_correct": (per_task / acc) if per_task is not None and acc else None},
    }
    if cfg.tasks_per_day:
        month = cfg.tasks_per_day * 30
        out["tasks_per_day"] = cfg.tasks_per_day
        out["api"]["monthly_usd"] = per_task * month if per_task is not None else None
        hour = pricing.get("replica_hour")
        if hour:
            monthly = replicas * hour * 730
            out["self_hosted"] = {"replica_hour_usd": hour, "replicas": replicas, "monthly_usd": monthly,
                                  "cost_per_task": monthly / month, "cost_per_correct": (monthly / month / acc) if acc else None}
    return out


class Sweeper:
    def __init__(self, resolved: Resolved, cfg: SweepConfig, sweep_dir: Path, *, quiet: bool = True, log: Any = None) -> None:
        self.resolved = resolved
        self.cfg = cfg
        self.dir = sweep_dir
        self.quiet = quiet
        self.log = log or (lambda msg: None)

    def _resolved_for(self, name: str, **load: Any) -> Resolved:
        sc = self.resolved.scenario
        cand = next(c for c in sc.candidates if c.name == name)
        scenario = sc.model_copy(update={"candidates": [cand], "load": sc.load.model_copy(update=load)})
        return Resolved(scenario, self.resolved.scenario_path, self.resolved.dataset_path, self.resolved.items,
                        {k: v for k, v in self.resolved.secrets.items() if k == name}, self.resolved.specs, self.resolved.judge_secret)

    async def _run(self, name: str, **load: Any) -> dict[str, Any]:
        metrics = MetricsOptions(port=self.cfg.metrics_port, port_is_default=False) if self.cfg.metrics_port is not None else MetricsOptions(port=None)
        result = await execute(self._resolved_for(name, **load), out_root=self.dir / "steps" / name, quiet=self.quiet,
                               install_signal_handlers=False, metrics=metrics,
                               progress=None if self.quiet else ProgressView())
        return {"summary": result.summary, "run_dir": str(result.run_dir)}

    async def step(self, sweep: CandidateSweep, rate: float, repeat: int = 0) -> Step:
        rate = round(rate, 3)
        out = await self._run(sweep.name, mode="open", rate_qps=rate, duration_s=self.cfg.step_s, requests=None,
                              warmup_s=self.cfg.warmup_s, seed=self.resolved.scenario.load.seed + repeat)
        passed, reasons = step_verdict(out["summary"], sweep.name)
        step = Step(rate, repeat, passed, reasons, out["summary"], out["run_dir"])
        sweep.steps.append(step)
        self.log(f"{sweep.name}: {rate:g} req/s{f' (repeat {repeat})' if repeat else ''}: "
                 + ("pass" if passed else "FAIL: " + "; ".join(reasons)))
        return step

    async def calibrate(self, sweep: CandidateSweep) -> list[float]:
        """Closed-loop saturation throughput, then a geometric ladder from 20% to 120% of it."""
        out = await self._run(sweep.name, mode="closed", concurrency=self.cfg.calibrate_users, duration_s=self.cfg.calibrate_s,
                              requests=None, warmup_s=min(self.cfg.warmup_s, self.cfg.calibrate_s / 3))
        c = out["summary"]["candidates"][sweep.name]
        peak = c.get("throughput_rps") or 1.0
        sweep.calibration = {"closed_loop_users": self.cfg.calibrate_users, "throughput_rps": peak,
                             "latency_p50_s": c["latency_s"].get("p50"), "run_dir": out["run_dir"]}
        self.log(f"{sweep.name}: calibration: {peak:.2f} req/s at {self.cfg.calibrate_users} users")
        lo, hi, n = 0.2 * peak, 1.2 * peak, max(self.cfg.steps, 2)
        return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]

    async def sweep_candidate(self, name: str) -> dict[str, Any]:
        sweep = CandidateSweep(name)
        ladder = list(self.cfg.rates) if self.cfg.rates else await self.calibrate(sweep)
        last_pass: Step | None = None
        first_fail: Step | None = None
        for rate in sorted(ladder):
            s = await self.step(sweep, rate)
            if s.passed:
                last_pass = s
            else:
                first_fail = s
                break  # stop escalating at the first failure (SLO or saturation)
        if last_pass is not None and first_fail is not None:
            lo, hi = last_pass.rate, first_fail.rate
            for _ in range(self.cfg.refine):
                mid = math.sqrt(lo * hi)
                if hi / lo < 1.02:
                    break
                s = await self.step(sweep, mid)
                if s.passed:
                    lo, last_pass = mid, s
                else:
                    hi = mid
        best = last_pass
        confirmation: dict[str, Any] = {"repeats": self.cfg.confirm, "attempts": []}
        if best is not None and self.cfg.confirm > 0:
            candidate_rate = best.rate
            for _attempt in range(3):
                results = [await self.step(sweep, candidate_rate, repeat=k + 1) for k in range(self.cfg.confirm)]
                ok = all(r.passed for r in results)
                confirmation["attempts"].append({"rate": candidate_rate, "passed": [r.passed for r in results]})
                if ok:
                    best = next(s for s in sweep.steps if s.rate == round(candidate_rate, 3))
                    break
                candidate_rate *= 0.95  # MLPerf-style: back off a little and confirm again
            else:
                best = None
        rows = [s.row(name) for s in sorted(sweep.steps, key=lambda s: (s.rate, s.repeat))]
        cand = next(c for c in self.resolved.scenario.candidates if c.name == name)
        return {
            "max_sustainable_qps": best.rate if best is not None else None,
            "how": ("explicit ladder" if self.cfg.rates else "calibrated geometric ladder")
                   + f", stop at first failure, {self.cfg.refine} bisection steps, confirmed with {self.cfg.confirm} repeats"
                   + (" (backed off 5% per failed confirmation)" if len(confirmation["attempts"]) > 1 else ""),
            "confirmation": confirmation,
            "calibration": sweep.calibration or None,
            "knee_qps": knee(rows),
            "curve": rows,
            "projection": project(best, name, self.cfg, cand.pricing.model_dump()),
        }

    async def run(self) -> dict[str, Any]:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        result: dict[str, Any] = {
            "sweep_id": self.dir.name, "scenario": self.resolved.scenario.name, "started_at": started,
            "slo": self.resolved.scenario.slo, "arrival": self.resolved.scenario.load.arrival,
            "config": {"rates": self.cfg.rates, "step_s": self.cfg.step_s, "warmup_s": self.cfg.warmup_s,
                       "refine": self.cfg.refine, "confirm": self.cfg.confirm, "peak_qps": self.cfg.peak_qps,
                       "headroom": self.cfg.headroom, "tasks_per_day": self.cfg.tasks_per_day},
            "candidates": {},
        }
        for cand in self.resolved.scenario.candidates:
            result["candidates"][cand.name] = await self.sweep_candidate(cand.name)
            write_json_atomic(self.dir / "sweep.json", result)
        result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json_atomic(self.dir / "sweep.json", result)
        return result


def new_sweep_dir(out_root: Path, name: str | None) -> Path:
    path = out_root / ("sweep-" + new_run_id(name))
    path.mkdir(parents=True, exist_ok=False)
    return path
