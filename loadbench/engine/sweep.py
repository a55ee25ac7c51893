"""Capacity planning: bracket each candidate's highest sustainable rate under the SLO, with confidence, and project it."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.files import write_json_atomic
from ..config.slo_clauses import parse_clauses
from ..plan.resolve import Resolved, new_run_id
from ..stats.capacity import bracket, pool, width_ratio
from ..stats.confidence import (
    CONFIDENCE,
    FAIL,
    INCONCLUSIVE,
    PASS,
    design_effect,
    dispersion,
    per_look_confidence,
    percentile_verdict,
    trend,
)
from ..stats.decision import slo_verdict
from ..stats.slo import overall_verdict, record_value_ns
from ..views.progress import ProgressView
from .execute import MetricsOptions, execute


@dataclass(slots=True)
class SweepConfig:
    rates: list[float] | None = None  # explicit ladder; None = automatic
    step_s: float = 20.0  # measured seconds a step runs at least (before its first look)
    max_step_s: float | None = None  # a step's cap while it is undecided (default 3x step_s)
    check_interval_s: float = 5.0
    warmup_s: float = 5.0
    steps: int = 5  # automatic ladder length
    refine: int = 6  # most bisection steps between the last pass and the first fail
    confirm: int = 0  # extra repeats (fresh seeds) at the final lower bound; their evidence pools
    calibrate_s: float = 10.0
    calibrate_users: int = 32
    peak_qps: float | None = None
    headroom: float = 0.3
    tasks_per_day: float | None = None
    metrics_port: int | None = None
    tolerance: float = 0.10  # stop when the bracket is narrower than this share of the estimate
    time_budget_s: float = 1800.0
    max_steps: int = 12  # the Bonferroni split: each step decides at 1 - 0.05 / max_steps
    extend: int = 2  # times a step whose queue is still building is rerun twice as long
    confidence: float = 0.95

    @property
    def step_confidence(self) -> float:
        return per_look_confidence(self.confidence, self.max_steps)


@dataclass(slots=True)
class Step:
    rate: float
    repeat: int
    verdict: str  # pass | fail | inconclusive | invalid
    reasons: list[str]
    summary: dict[str, Any]
    run_dir: str
    order: int = 0
    stationarity: dict[str, Any] = field(default_factory=dict)
    clauses: list[dict[str, Any]] | None = None  # the SLO evidence, deflated for dependence (None: as the run judged it)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def evidence(self, name: str) -> dict[str, Any]:
        c = self.summary["candidates"][name]
        slo = c.get("slo") or {}
        return {"rate": self.rate, "order": self.order, "verdict": self.verdict if self.verdict != "invalid" else INCONCLUSIVE,
                "valid": self.verdict != "invalid",
                "clauses": self.clauses if self.clauses is not None else slo.get("clauses") or [],
                "building": bool(self.stationarity.get("building")), "achieved_qps": c.get("achieved_rate_qps"),
                "requests": (c.get("window") or {}).get("sent")}

    def row(self, name: str) -> dict[str, Any]:
        c = self.summary["candidates"][name]
        acc = c.get("accuracy") or {}
        outcome = self.summary.get("outcome") or {}
        seq = outcome.get("sequential") or {}
        return {
            "offered_qps": self.rate, "repeat": self.repeat, "passed": self.passed, "verdict": self.verdict,
            "reasons": self.reasons, "achieved_qps": c.get("achieved_rate_qps"),
            "requests_sent": (c.get("window") or {}).get("sent"), "measured_s": outcome.get("duration_s"),
            "decided_at_s": seq.get("decided_at_s"), "throughput_rps": c.get("throughput_rps"),
            "latency_s": {k: c["latency_s"].get(k) for k in ("p50", "p90", "p95", "p99", "count")},
            "ttft_s": {k: c["ttft_s"].get(k) for k in ("p50", "p95", "p99")},
            "error_ratio": c.get("error_ratio"), "accuracy": acc.get("value"), "accuracy_attempted": acc.get("attempted_value"),
            "goodput_rps": (c.get("goodput") or {}).get("rps"), "goodput_fraction": (c.get("goodput") or {}).get("fraction"),
            "cost_per_task": (c.get("cost_usd") or {}).get("per_request"), "cost_per_correct": (c.get("cost_usd") or {}).get("per_correct"),
            "truncated": ((c.get("scorers") or {}).get("finish_reason") or {}).get("fail"),
            "schedule_lag_p99_s": c["schedule_lag_s"].get("p99"), "steady_state": not self.stationarity.get("building", False),
            "stationarity": self.stationarity,
            "slo": [{k: r.get(k) for k in ("clause", "verdict", "measured", "ci_low", "ci_high", "n", "n_raw", "dispersion",
                                           "more_samples")}
                    for r in (self.clauses if self.clauses is not None else (c.get("slo") or {}).get("clauses") or [])],
            "run_dir": self.run_dir,
            "server": _server_at_step(c.get("server")),
        }


def _server_at_step(server: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the deployment's own gauges showed during a step (server_metrics), for the knee."""
    if not server:
        return None
    roles = server.get("roles") or {}
    rec = server.get("reconciliation") or {}
    return {"running_max": (roles.get("running") or {}).get("max"), "waiting_max": (roles.get("waiting") or {}).get("max"),
            "waiting_mean": (roles.get("waiting") or {}).get("mean"), "kv_usage_max": (roles.get("kv_usage") or {}).get("max"),
            "reconciled": None if not rec else all(e.get("match") is not False for e in rec.values())}


@dataclass(slots=True)
class CandidateSweep:
    name: str
    steps: list[Step] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)


def step_verdict(summary: dict[str, Any], name: str) -> tuple[str, list[str]]:
    """A step's three-valued verdict: the candidate's SLO verdict, `invalid` when the client
    was the bottleneck (the step says nothing about the server), and without an SLO, fail
    above 5% errors."""
    c = summary["candidates"][name]
    validity = summary.get("validity") or {}
    invalid = list(validity.get("reasons", [])) + list((validity.get("candidates") or {}).get(name, []))
    if invalid:
        return "invalid", invalid
    slo = c.get("slo")
    if slo is None:
        if c.get("error_ratio") and c["error_ratio"] > 0.05:
            return FAIL, [f"error ratio {c['error_ratio']:.1%} (no SLO set: more than 5% errors counts as failing)"]
        return PASS, []
    verdict = slo_verdict(slo)
    reasons = [f"SLO: {r['clause']} {r['verdict']} (measured {r.get('measured')!s:.8}, n={r.get('n')})"
               for r in slo["clauses"] if r.get("verdict") in (FAIL, INCONCLUSIVE)]
    return verdict, reasons


def stationarity(run_dir: Path, name: str, clauses: list[Any] | None = None) -> dict[str, Any]:
    """Was the queue still building during the step, and how dependent were its requests?

    Latency (from the intended time) of the measured requests as batch means regressed on
    time; per latency clause, the batch-means dispersion of "over the bound" (consecutive
    requests near saturation are far from independent)."""
    from ..pacing.results_log import iter_results

    latency_clauses = [c for c in clauses or [] if c.is_latency and c.quantile is not None]
    times, latencies = [], []
    # over the bound, and over 80% of it: with no request over the bound yet, how
    # clustered the near misses are still shows how dependent neighbouring requests are
    over: dict[str, list[list[bool]]] = {c.text: [[] for _ in TAIL_SHARES] for c in latency_clauses}
    for _, r, _ in iter_results(run_dir / "results.jsonl"):
        if r is None or r.candidate != name or not r.in_window or r.status != "ok" or r.done_ns < 0:
            continue
        times.append(r.intended_ns / 1e9)
        latencies.append((r.done_ns - r.intended_ns) / 1e9)
        for c in latency_clauses:
            value_ns = record_value_ns(c.metric, r)
            for flags, share in zip(over[c.text], TAIL_SHARES):
                flags.append(value_ns > share * c.threshold * 1e9)
    if not times:
        return {"building": False, "samples": 0, "dispersion": {}}
    lat = trend(times, latencies)
    deff = design_effect(times, latencies)
    return {"building": lat.building, "samples": len(times), "latency_slope_s_per_s": lat.slope_per_s,
            "latency_rise_ratio": lat.rise_ratio, "p_value": lat.p_value, "latency_batch_means_s": lat.batch_means,
            "latency_design_effect": deff,
            "dispersion": {text: max(dispersion(times, flags) for flags in levels) for text, levels in over.items()},
            "method": "8 batch means of latency over the measured window, one-sided t-test on the slope (p < 0.01) "
                      "and a fitted rise above 15% of the mean; dispersion: batch-means overdispersion of the share "
                      "over each latency bound (counts are divided by it before the binomial test)"}


def _short(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


TAIL_SHARES = (1.0, 0.8)  # of the latency bound: where dependence between requests is measured


def deflated(clauses: list[dict[str, Any]], dispersions: dict[str, float], confidence: float) -> list[dict[str, Any]]:
    """The step's clause evidence with percentile counts divided by their dispersion, and
    their verdicts recomputed: n dependent requests weigh as n / dispersion independent ones."""
    out = []
    for r in clauses:
        phi = dispersions.get(r["clause"], 1.0)
        if r.get("at_or_below") is not None and r.get("n") and phi > 1.0:
            n_eff = max(1, round(r["n"] / phi))
            below_eff = min(n_eff, round(r["at_or_below"] / phi))
            q = float(r["stat"][1:]) / 100
            r = {**r, "n_raw": r["n"], "n": n_eff, "at_or_below": below_eff, "dispersion": phi,
                 "verdict": percentile_verdict(n_eff, below_eff, q, r["op"] in ("<=", "<"), confidence)}
        out.append(r)
    return out


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


def project(best: Step | None, name: str, cfg: SweepConfig, pricing: dict[str, Any],
            max_qps: float | None = None) -> dict[str, Any] | None:
    """Replicas and cost at the conservative rate (the bracket's low end, passed with confidence)."""
    if best is None or cfg.peak_qps is None:
        return None
    c = best.summary["candidates"][name]
    max_qps = max_qps or best.rate
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
    def __init__(self, resolved: Resolved, cfg: SweepConfig, sweep_dir: Path, *, quiet: bool = True, log: Any = None,
                 backends: Any = None) -> None:
        self.resolved = resolved
        self.backends = backends
        self.cfg = cfg
        self.dir = sweep_dir
        self.quiet = quiet
        self.log = log or (lambda msg: None)
        self.has_slo = bool(resolved.scenario.slo)
        self.clauses = parse_clauses(resolved.scenario.slo)
        self._started = time.monotonic()

    def _resolved_for(self, name: str, **load: Any) -> Resolved:
        sc = self.resolved.scenario
        cand = next(c for c in sc.candidates if c.name == name)
        scenario = sc.model_copy(update={"candidates": [cand], "load": sc.load.model_copy(update=load)})
        return Resolved(scenario, self.resolved.scenario_path, self.resolved.dataset_path, self.resolved.items,
                        {k: v for k, v in self.resolved.secrets.items() if k == name}, self.resolved.specs, self.resolved.judge_secret,
                        self.resolved.turn_specs, variants=self.resolved.variants)

    async def _run(self, name: str, **load: Any) -> dict[str, Any]:
        metrics = MetricsOptions(port=self.cfg.metrics_port, port_is_default=False) if self.cfg.metrics_port is not None else MetricsOptions(port=None)
        result = await execute(self._resolved_for(name, **load), out_root=self.dir / "steps" / name, quiet=self.quiet,
                               install_signal_handlers=False, metrics=metrics, backends=self.backends,
                               progress=None if self.quiet else ProgressView())
        return {"summary": result.summary, "run_dir": str(result.run_dir)}

    def _step_load(self, rate: float, step_s: float, seed: int) -> dict[str, Any]:
        load: dict[str, Any] = {"mode": "open", "rate_qps": rate, "duration_s": step_s, "requests": None,
                                "warmup_s": self.cfg.warmup_s, "seed": seed, "arrival": self.resolved.scenario.load.arrival,
                                "trace": None, "max_requests": None}
        if self.has_slo:  # run each step until its verdict is decided, or to the cap
            cap = max(self.cfg.max_step_s or 3 * step_s, step_s)
            load.update(until_decided=True, max_duration_s=cap, check_interval_s=self.cfg.check_interval_s,
                        confidence=self.cfg.step_confidence)
        else:
            load.update(until_decided=False, max_duration_s=None)
        return load

    async def _one_step(self, sweep: CandidateSweep, rate: float, repeat: int, step_s: float, cap_s: float | None) -> Step:
        order = len(sweep.steps) + 1
        # a fresh arrival draw for every step: one seed scaled to every rate would shift the whole curve alike
        seed = self.resolved.scenario.load.seed + 1_000_003 * order
        load = self._step_load(rate, step_s, seed)
        if cap_s is not None and self.has_slo:
            load["max_duration_s"] = cap_s
        out = await self._run(sweep.name, **load)
        verdict, reasons = step_verdict(out["summary"], sweep.name)
        step = Step(rate, repeat, verdict, reasons, out["summary"], out["run_dir"], order)
        sweep.steps.append(step)
        if verdict == "invalid":
            return step
        step.stationarity = stationarity(Path(out["run_dir"]), sweep.name, self.clauses)
        slo = out["summary"]["candidates"][sweep.name].get("slo")
        if slo is not None:
            step.clauses = deflated(slo["clauses"], step.stationarity.get("dispersion") or {}, slo.get("confidence") or CONFIDENCE)
            step.verdict = overall_verdict([r["verdict"] for r in step.clauses])
            step.reasons = [f"SLO: {r['clause']} {r['verdict']} (measured {_short(r.get('measured'))}, n={r.get('n')}"
                            + (f" effective of {r['n_raw']}, dispersion {r['dispersion']:.1f}" if r.get("n_raw") else "") + ")"
                            for r in step.clauses if r["verdict"] != PASS]
        return step

    async def step(self, sweep: CandidateSweep, rate: float, repeat: int = 0) -> Step:
        """One rate, run until decided.  A step whose queue is still building is rerun twice as
        long (and superseded); a rate still undecided gets another, longer step that pools with it."""
        rate = round(rate, 3)
        step_s = self.cfg.step_s
        cap_s = self.cfg.max_step_s or 3 * step_s
        step = await self._one_step(sweep, rate, repeat, step_s, cap_s)
        for _ in range(self.cfg.extend):
            building = step.stationarity.get("building", False) and step.verdict != FAIL
            undecided = self._capacity(sweep)["rate_verdicts"].get(f"{rate:g}") == INCONCLUSIVE and step.verdict != "invalid"
            if not (building or undecided) or not self._budget_left(sweep):
                break
            if building:
                step.verdict = "extended"
                step.reasons = [*step.reasons, f"queue still building (latency rising "
                                               f"{100 * (step.stationarity.get('latency_rise_ratio') or 0):.0f}% over the step): rerun longer"]
            self._log_step(sweep, step)
            step_s, cap_s = 2 * step_s, 2 * cap_s
            step = await self._one_step(sweep, rate, repeat, step_s, cap_s)
        if step.stationarity.get("building") and step.verdict != FAIL:
            step.verdict = FAIL
            step.reasons = [*step.reasons, "queue still building after every extension: not a sustainable rate"]
        self._log_step(sweep, step)
        return step

    def _log_step(self, sweep: CandidateSweep, step: Step) -> None:
        c = step.summary["candidates"][sweep.name]
        achieved = c.get("achieved_rate_qps")
        sent = (c.get("window") or {}).get("sent")
        head = (f"{sweep.name}: {step.rate:g} req/s offered ({'-' if achieved is None else f'{achieved:.2f}'} realised, "
                f"{sent} requests){f' (repeat {step.repeat})' if step.repeat else ''}: ")
        self.log(head + step.verdict.upper() + (": " + "; ".join(step.reasons) if step.reasons and step.verdict != PASS else ""))

    def _budget_left(self, sweep: CandidateSweep) -> bool:
        return len(sweep.steps) < self.cfg.max_steps and time.monotonic() - self._started < self.cfg.time_budget_s

    def _capacity(self, sweep: CandidateSweep) -> dict[str, Any]:
        evidence = pool([s.evidence(sweep.name) for s in sweep.steps if s.verdict != "extended"])
        levels = [(s.summary["candidates"][sweep.name].get("slo") or {}).get("confidence") for s in sweep.steps]
        level = min([x for x in levels if x] or [self.cfg.step_confidence])  # the steps' per-look level
        cap = bracket(evidence, level, self.has_slo, self.cfg.confidence)
        cap["width_ratio"] = width_ratio(cap)
        cap["tolerance"] = self.cfg.tolerance
        cap["rates"] = [{"offered_qps": ev.rate, "verdict": cap["rate_verdicts"][f"{ev.rate:g}"], "steps": ev.steps,
                         "invalid_steps": ev.invalid, "requests": ev.requests, "realised_qps": ev.realised_qps}
                        for ev in evidence]
        return cap

    async def calibrate(self, sweep: CandidateSweep) -> list[float]:
        """Closed-loop saturation throughput, then a geometric ladder from 20% to 120% of it."""
        out = await self._run(sweep.name, mode="closed", concurrency=self.cfg.calibrate_users, duration_s=self.cfg.calibrate_s,
                              requests=None, warmup_s=min(self.cfg.warmup_s, self.cfg.calibrate_s / 3),
                              until_decided=False, max_duration_s=None, max_requests=None, arrival="poisson", trace=None)
        c = out["summary"]["candidates"][sweep.name]
        peak = c.get("throughput_rps") or 1.0
        sweep.calibration = {"closed_loop_users": self.cfg.calibrate_users, "throughput_rps": peak,
                             "latency_p50_s": c["latency_s"].get("p50"), "run_dir": out["run_dir"]}
        self.log(f"{sweep.name}: calibration: {peak:.2f} req/s at {self.cfg.calibrate_users} users")
        lo, hi, n = 0.2 * peak, 1.2 * peak, max(self.cfg.steps, 2)
        return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]

    async def _climb(self, sweep: CandidateSweep, ladder: list[float], auto: bool) -> str | None:
        """Up the ladder to the first decided failure; an automatic ladder goes on past its top
        (x1.5) until a rate fails, or down (/2) until one passes."""
        for rate in sorted(ladder):
            if not self._budget_left(sweep):
                return "budget"
            await self.step(sweep, rate)
            if self._capacity(sweep)["high_qps"] is not None:
                break
        if not auto:
            return None
        while self._budget_left(sweep):
            cap = self._capacity(sweep)
            tried = sorted({s.rate for s in sweep.steps})
            if cap["high_qps"] is None:
                await self.step(sweep, tried[-1] * 1.5)
            elif cap["low_qps"] is None and tried[0] > 0.01:
                await self.step(sweep, tried[0] / 2)
            else:
                return None
        return "budget"

    def _next_probe(self, sweep: CandidateSweep, cap: dict[str, Any]) -> float | None:
        """The geometric middle of the widest gap inside the bracket (undecided rates split it)."""
        low, high = sorted((cap["low_offered_qps"], cap["high_offered_qps"]))  # probes are offered rates
        inside = sorted({s.rate for s in sweep.steps if low < s.rate < high})
        points = [low, *inside, high]
        gaps = sorted(((b / a, a, b) for a, b in itertools.pairwise(points)), reverse=True)
        ratio, a, b = gaps[0]
        if ratio < 1.01:
            return None
        return (a * b) ** 0.5

    async def _refine(self, sweep: CandidateSweep) -> str:
        for _ in range(self.cfg.refine):
            cap = self._capacity(sweep)
            if cap["low_qps"] is None or cap["high_qps"] is None:
                return "unbounded" if cap["high_qps"] is None else "no rate passed"
            if cap["width_ratio"] is not None and cap["width_ratio"] <= self.cfg.tolerance:
                return "tolerance"
            if not self._budget_left(sweep):
                return "time budget" if len(sweep.steps) < self.cfg.max_steps else "step budget"
            probe = self._next_probe(sweep, cap)
            if probe is None:
                return "resolution"
            await self.step(sweep, probe)
        cap = self._capacity(sweep)
        if cap["width_ratio"] is not None and cap["width_ratio"] <= self.cfg.tolerance:
            return "tolerance"
        return "refine limit"

    async def sweep_candidate(self, name: str) -> dict[str, Any]:
        sweep = CandidateSweep(name)
        self._started = time.monotonic()
        auto = not self.cfg.rates
        ladder = list(self.cfg.rates) if self.cfg.rates else await self.calibrate(sweep)
        stopped = await self._climb(sweep, ladder, auto)
        stopped = await self._refine(sweep) if stopped is None else ("time budget" if len(sweep.steps) < self.cfg.max_steps else "step budget")
        cap = self._capacity(sweep)
        for k in range(self.cfg.confirm):
            if cap["low_qps"] is None or not self._budget_left(sweep):
                break
            await self.step(sweep, cap["low_offered_qps"], repeat=k + 1)
            cap = self._capacity(sweep)
        # the bracket's low end may pass on pooled evidence alone: price it from its latest counted step
        best = next((s for s in reversed(sweep.steps) if s.rate == cap["low_offered_qps"]
                     and s.verdict not in ("invalid", "extended")), None)
        rows = [s.row(name) for s in sorted(sweep.steps, key=lambda s: (s.rate, s.order))]
        cand = next(c for c in self.resolved.scenario.candidates if c.name == name)
        cap["stopped_by"] = stopped
        cap["stopped_because"] = STOP_REASONS.get(stopped, stopped)
        low = cap["low_qps"]
        # conservative: the lower of what was offered and what was realised at the bracket's low end
        max_sustainable = None if low is None else round(min(low, cap["low_offered_qps"]), 3)
        return {
            "max_sustainable_qps": max_sustainable,
            "capacity": cap,
            "how": ("explicit ladder" if self.cfg.rates else "calibrated geometric ladder, extended until a rate failed")
                   + f"; each step run until its SLO verdict was decided (at {100 * self.cfg.step_confidence:.2f}% per step, "
                   f"Bonferroni over at most {self.cfg.max_steps} steps: {100 * self.cfg.confidence:g}% for the bracket), "
                   f"steps at one rate pooled, bisection until the bracket is within {100 * self.cfg.tolerance:g}% of the estimate",
            "calibration": sweep.calibration or None,
            "knee_qps": knee(rows),
            "curve": rows,
            "projection": project(best, name, self.cfg, cand.pricing.model_dump(), max_sustainable),
        }

    async def run(self) -> dict[str, Any]:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        result: dict[str, Any] = {
            "sweep_id": self.dir.name, "scenario": self.resolved.scenario.name, "started_at": started,
            "slo": self.resolved.scenario.slo, "arrival": self.resolved.scenario.load.arrival,
            "config": {"rates": self.cfg.rates, "step_s": self.cfg.step_s, "max_step_s": self.cfg.max_step_s or 3 * self.cfg.step_s,
                       "warmup_s": self.cfg.warmup_s, "refine": self.cfg.refine, "confirm": self.cfg.confirm,
                       "tolerance": self.cfg.tolerance, "time_budget_s": self.cfg.time_budget_s, "max_steps": self.cfg.max_steps,
                       "confidence": self.cfg.confidence, "step_confidence": self.cfg.step_confidence,
                       "peak_qps": self.cfg.peak_qps, "headroom": self.cfg.headroom, "tasks_per_day": self.cfg.tasks_per_day},
            "candidates": {},
        }
        for cand in self.resolved.scenario.candidates:
            result["candidates"][cand.name] = await self.sweep_candidate(cand.name)
            write_json_atomic(self.dir / "sweep.json", result)
        result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json_atomic(self.dir / "sweep.json", result)
        return result


STOP_REASONS = {
    "tolerance": "the bracket is within the tolerance of the estimate",
    "unbounded": "no rate failed: extend the ladder",
    "no rate passed": "no rate passed with confidence: try lower rates",
    "time budget": "the time budget ran out",
    "step budget": "the step budget (max_steps) ran out",
    "refine limit": "the bisection limit (--refine) was reached",
    "resolution": "the bracket is narrower than 1% of the rate",
    "budget": "the budget ran out while climbing the ladder",
}


def new_sweep_dir(out_root: Path, name: str | None) -> Path:
    path = out_root / ("sweep-" + new_run_id(name))
    path.mkdir(parents=True, exist_ok=False)
    return path
