"""Two runs compared candidate by candidate, and regressions against a baseline (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..pacing.records import OK, RequestResult
from ..scoring.scores import FAIL, PASS
from .decision import slo_verdict
from .proportions import paired_difference, wilson


@dataclass(frozen=True, slots=True)
class Tolerances:
    """How much worse than the baseline still counts as noise."""

    p_value: float = 0.05  # accuracy: a significant drop (McNemar when paired, else a two-proportion test)
    latency_p95_ratio: float = 1.10  # p95 more than 10% above the baseline's
    latency_min_samples: int = 200  # below this many requests a p95 is not compared
    goodput_ratio: float = 0.90  # goodput below 90% of the baseline's
    cost_ratio: float = 1.10  # cost per correct task more than 10% above
    # ... and in both cases the increase must hold at the low end of a bootstrap 95% interval
    # of the ratio (resampling each run's requests), so run-to-run noise is not a regression.
    bootstrap_rounds: int = 400


@dataclass(slots=True)
class RunSamples:
    """What a comparison needs of one candidate's requests in the measurement window."""

    verdicts: dict[tuple[int, str, int], str] = field(default_factory=dict)
    latency_s: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)
    passed: list[bool] = field(default_factory=list)


def samples_by_candidate(records: Iterable[RequestResult]) -> dict[str, RunSamples]:
    out: dict[str, RunSamples] = {}
    for r in records:
        if not r.in_window:
            continue
        s = out.setdefault(r.candidate, RunSamples())
        if r.verdict in (PASS, FAIL):
            s.verdicts[(r.seq, r.item_id, r.turn)] = r.verdict
        if r.status == OK and r.latency_ns >= 0:
            s.latency_s.append(r.latency_ns / 1e9)
        s.cost_usd.append(r.cost_usd)
        s.passed.append(r.verdict == PASS)
    return out


def _bootstrap_ratio_low(base: np.ndarray, new: np.ndarray, stat: Any, rounds: int, seed: int = 7) -> float | None:
    """The 2.5th percentile of stat(new*) / stat(base*) over bootstrap resamples of each run."""
    if len(base) < 2 or len(new) < 2:
        return None
    rng = np.random.Generator(np.random.PCG64(seed))
    ratios = []
    for _ in range(rounds):
        b = stat(base[rng.integers(0, len(base), len(base))])
        n = stat(new[rng.integers(0, len(new), len(new))])
        if b and b > 0 and n is not None:
            ratios.append(n / b)
    return float(np.percentile(ratios, 2.5)) if ratios else None


def _p95(values: np.ndarray) -> float:
    return float(np.percentile(values, 95))


def _cost_per_correct(pairs: np.ndarray) -> float | None:
    passes = pairs[:, 1].sum()
    return float(pairs[:, 0].sum() / passes) if passes else None


def _two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float | None:
    if not n1 or not n2:
        return None
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(k1 / n1 - k2 / n2) / se
    return math.erfc(z / math.sqrt(2))


def accuracy_change(base: dict[tuple[int, str, int], str], new: dict[tuple[int, str, int], str]) -> dict[str, Any]:
    """Paired (McNemar) on the requests both runs scored when the schedules match; otherwise a
    two-proportion test over each run's own requests."""
    shared = base.keys() & new.keys()
    if len(shared) >= max(10, 0.5 * min(len(base), len(new))):
        base_only = sum(1 for k in shared if base[k] == PASS and new[k] == FAIL)
        new_only = sum(1 for k in shared if base[k] == FAIL and new[k] == PASS)
        stats = paired_difference(new_only, base_only, len(shared))
        return {"method": "paired (McNemar)", "n": len(shared), "diff": stats["diff"], "ci_low": stats["ci_low"],
                "ci_high": stats["ci_high"], "p_value": stats["p_value"], "new_only_pass": new_only, "base_only_pass": base_only}
    kb = sum(1 for v in base.values() if v == PASS)
    kn = sum(1 for v in new.values() if v == PASS)
    vb, _, _ = wilson(kb, len(base))
    vn, _, _ = wilson(kn, len(new))
    diff = (vn - vb) if vb is not None and vn is not None else None
    return {"method": "unpaired (two-proportion)", "n": min(len(base), len(new)), "diff": diff,
            "p_value": _two_proportion_p(kn, len(new), kb, len(base)), "base_n": len(base), "new_n": len(new)}


def _ratio(new: float | None, base: float | None) -> float | None:
    if new is None or base is None or base == 0:
        return None
    return new / base


def compare_candidate(base_c: dict[str, Any], new_c: dict[str, Any], acc: dict[str, Any] | None,
                      tol: Tolerances = Tolerances(), base_s: RunSamples | None = None,
                      new_s: RunSamples | None = None) -> dict[str, Any]:
    """One candidate: each metric's baseline, new value, change, and whether it regressed."""
    checks: dict[str, Any] = {}
    if acc is not None and acc.get("diff") is not None:
        regressed = acc["diff"] < 0 and acc["p_value"] is not None and acc["p_value"] < tol.p_value
        checks["accuracy"] = {**acc, "base": (base_c.get("accuracy") or {}).get("value"),
                              "new": (new_c.get("accuracy") or {}).get("value"), "regressed": regressed}
    lat_b, lat_n = base_c.get("latency_s") or {}, new_c.get("latency_s") or {}
    ratio = _ratio(lat_n.get("p95"), lat_b.get("p95"))
    enough = min(lat_b.get("count") or 0, lat_n.get("count") or 0) >= tol.latency_min_samples
    if ratio is not None:
        low = None
        if base_s is not None and new_s is not None and enough:
            low = _bootstrap_ratio_low(np.asarray(base_s.latency_s), np.asarray(new_s.latency_s), _p95, tol.bootstrap_rounds)
        beyond_noise = low is None or low > 1.0
        checks["latency_p95"] = {"base": lat_b.get("p95"), "new": lat_n.get("p95"), "ratio": ratio, "ratio_ci_low": low,
                                 "regressed": enough and ratio > tol.latency_p95_ratio and beyond_noise, "enough_samples": enough}
    gp = _ratio((new_c.get("goodput") or {}).get("rps"), (base_c.get("goodput") or {}).get("rps"))
    if gp is not None:
        checks["goodput"] = {"base": (base_c.get("goodput") or {}).get("rps"), "new": (new_c.get("goodput") or {}).get("rps"),
                             "ratio": gp, "regressed": gp < tol.goodput_ratio}
    cost = _ratio((new_c.get("cost_usd") or {}).get("per_correct"), (base_c.get("cost_usd") or {}).get("per_correct"))
    if cost is not None:
        low = None
        if base_s is not None and new_s is not None:
            low = _bootstrap_ratio_low(np.column_stack([base_s.cost_usd, base_s.passed]).astype(float),
                                       np.column_stack([new_s.cost_usd, new_s.passed]).astype(float),
                                       _cost_per_correct, tol.bootstrap_rounds)
        checks["cost_per_correct"] = {"base": (base_c.get("cost_usd") or {}).get("per_correct"),
                                      "new": (new_c.get("cost_usd") or {}).get("per_correct"), "ratio": cost,
                                      "ratio_ci_low": low, "regressed": cost > tol.cost_ratio and (low is None or low > 1.0)}
    slo_b, slo_n = base_c.get("slo"), new_c.get("slo")
    if slo_b is not None and slo_n is not None:
        vb, vn = slo_verdict(slo_b), slo_verdict(slo_n)
        # Only a decided fail after a decided pass is a regression; an inconclusive new run is
        # reported as such (it neither clears nor condemns the change).
        checks["slo"] = {"base": vb, "new": vn, "regressed": vb == "pass" and vn == "fail",
                         "inconclusive": vn == "inconclusive"}
    return {"checks": checks, "regressed": sorted(k for k, v in checks.items() if v["regressed"])}


def compare_runs(base_summary: dict[str, Any], new_summary: dict[str, Any], base_records: Iterable[RequestResult],
                 new_records: Iterable[RequestResult], tol: Tolerances = Tolerances(),
                 candidates: dict[str, str] | None = None) -> dict[str, Any]:
    """Every candidate of `new` that `base` also has (or `candidates`: new name -> base name)."""
    base_all, new_all = samples_by_candidate(base_records), samples_by_candidate(new_records)
    base_v = {n: s.verdicts for n, s in base_all.items()}
    new_v = {n: s.verdicts for n, s in new_all.items()}
    pairs = candidates or {n: n for n in new_summary.get("candidates", {}) if n in base_summary.get("candidates", {})}
    out: dict[str, Any] = {"base_run": base_summary.get("run_id"), "new_run": new_summary.get("run_id"), "candidates": {}}
    for new_name, base_name in pairs.items():
        b, n = base_summary["candidates"].get(base_name), new_summary["candidates"].get(new_name)
        if b is None or n is None:
            continue
        acc = accuracy_change(base_v.get(base_name, {}), new_v.get(new_name, {})) if base_v.get(base_name) and new_v.get(new_name) else None
        out["candidates"][new_name] = {"baseline_candidate": base_name,
                                       **compare_candidate(b, n, acc, tol, base_all.get(base_name), new_all.get(new_name))}
    out["regressed"] = sorted(name for name, c in out["candidates"].items() if c["regressed"])
    return out


def _fmt(metric: str, v: Any) -> str:
    if v is None:
        return "-"
    if metric == "slo":
        return str(v)
    if metric == "accuracy":
        return f"{100 * v:.1f}%"
    if metric == "latency_p95":
        return f"{v * 1e3:.0f} ms" if v < 1 else f"{v:.2f} s"
    if metric == "goodput":
        return f"{v:.2f}/s"
    return f"${v:.6f}"


def comparison_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"baseline {result['base_run']}  ->  {result['new_run']}"]
    for name, c in result["candidates"].items():
        lines.append(f"{name} (baseline: {c['baseline_candidate']}): " + ("REGRESSED in " + ", ".join(c["regressed"])
                                                                            if c["regressed"] else "no regression"))
        for metric, ch in c["checks"].items():
            mark = "!" if ch["regressed"] else " "
            extra = ""
            if metric == "accuracy":
                extra = (f" ({100 * ch['diff']:+.1f} points, {ch['method']}, n={ch['n']}, p={ch['p_value']:.3g})"
                         if ch.get("p_value") is not None else "")
            elif metric == "slo" and ch.get("inconclusive"):
                extra = " (the new run's verdict is inconclusive: run longer to decide)"
            elif ch.get("ratio") is not None:
                extra = f" (x{ch['ratio']:.2f})" + ("" if ch.get("enough_samples", True) else ", too few samples to judge")
            lines.append(f"  {mark} {metric:<17} {_fmt(metric, ch.get('base')):>10} -> {_fmt(metric, ch.get('new')):>10}{extra}")
    if not result["candidates"]:
        lines.append("  no candidate in common")
    return lines


def compare_run_dirs(base_dir: Path, new_dir: Path, new_summary: dict[str, Any],
                     candidates: dict[str, str] | None = None) -> dict[str, Any]:
    """compare_runs over two run directories (the baseline's summary and both results logs)."""
    from ..config.files import read_json
    from ..pacing.results_log import iter_results

    base_summary = read_json(base_dir / "summary.json")
    return compare_runs(base_summary, new_summary, (r for _, r, _ in iter_results(base_dir / "results.jsonl") if r),
                        (r for _, r, _ in iter_results(new_dir / "results.jsonl") if r), candidates=candidates)
