"""The decision: who meets the SLOs, the Pareto frontier, a ranked recommendation in plain words (pure)."""

from __future__ import annotations

from typing import Any

# objective -> (how to read it from a candidate summary, higher is better?)
OBJECTIVES: dict[str, tuple[str, bool]] = {
    "cost_per_correct": ("cost per correct task", False),
    "cost_per_task": ("cost per task", False),
    "accuracy": ("accuracy", True),
    "latency_p95": ("latency p95", False),
    "goodput": ("goodput", True),
}


def objective_value(objective: str, c: dict[str, Any]) -> float | None:
    if objective == "cost_per_correct":
        return (c.get("cost_usd") or {}).get("per_correct")
    if objective == "cost_per_task":
        return (c.get("cost_usd") or {}).get("per_request")
    if objective == "accuracy":
        return (c.get("accuracy") or {}).get("value")
    if objective == "latency_p95":
        return (c.get("latency_s") or {}).get("p95")
    if objective == "goodput":
        return (c.get("goodput") or {}).get("rps")
    raise ValueError(objective)


def _point(c: dict[str, Any]) -> tuple[float, float, float] | None:
    acc = (c.get("accuracy") or {}).get("value")
    if acc is None and not c.get("accuracy"):
        acc = 0.0  # nothing was scored: compare on latency and cost alone
    p95 = (c.get("latency_s") or {}).get("p95")
    cost = (c.get("cost_usd") or {}).get("per_request")
    if acc is None or p95 is None or cost is None:
        return None
    return acc, p95, cost


def pareto_frontier(cands: dict[str, dict[str, Any]]) -> list[str]:
    """Candidates not dominated on (accuracy up, p95 latency down, cost per task down)."""
    points = {name: p for name, c in cands.items() if (p := _point(c)) is not None}
    front = []
    for name, (a, lat, k) in points.items():
        dominated = any(
            (a2 >= a and l2 <= lat and k2 <= k) and (a2 > a or l2 < lat or k2 < k)
            for other, (a2, l2, k2) in points.items() if other != name
        )
        if not dominated:
            front.append(name)
    return sorted(front)


def _fmt(objective: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    if objective.startswith("cost"):
        return f"${v:.6f}" if v < 0.01 else f"${v:.4f}"
    if objective == "accuracy":
        return f"{100 * v:.1f}%"
    if objective == "latency_p95":
        return f"{v * 1e3:.0f} ms" if v < 1 else f"{v:.2f} s"
    return f"{v:.2f} req/s"


def decide(summary: dict[str, Any], objective: str = "cost_per_correct") -> dict[str, Any]:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    cands: dict[str, dict[str, Any]] = summary.get("candidates") or {}
    validity = summary.get("validity") or {"valid": True, "candidates": {}}
    if objective in ("cost_per_correct", "accuracy") and not any(c.get("accuracy") for c in cands.values()):
        objective = "cost_per_task"  # nothing was scored, so there is no correct task to price
    label, higher_better = OBJECTIVES[objective]
    eligible = []
    failing = {}
    undecided: dict[str, list[str]] = {}
    for name, c in cands.items():
        slo = c.get("slo")
        if name in (validity.get("candidates") or {}):
            failing[name] = ["invalid measurement: " + "; ".join(validity["candidates"][name])]
        elif slo is not None and slo_verdict(slo) == "fail":
            failing[name] = [f"{r['clause']} (measured {_measured(r)}{_interval(r)})" for r in slo["clauses"]
                             if r.get("verdict", "pass" if r["ok"] else "fail") == "fail"]
        elif slo is not None and slo_verdict(slo) == "inconclusive":
            undecided[name] = [_undecided(r) for r in slo["clauses"] if r.get("verdict") == "inconclusive"]
        else:
            eligible.append(name)
    ranked = sorted(
        (n for n in eligible if objective_value(objective, cands[n]) is not None),
        key=lambda n: objective_value(objective, cands[n]) * (-1 if higher_better else 1),  # type: ignore[operator]
    )
    ranked += [n for n in eligible if n not in ranked]
    frontier = pareto_frontier(cands)
    reasons: list[str] = []
    caveats: list[str] = []
    if not validity.get("valid", True):
        why = list(validity.get("reasons") or []) + [f"{n}: {r}" for n, rs in (validity.get("candidates") or {}).items() for r in rs]
        return {"objective": objective, "recommended": None, "ranking": [], "eligible": eligible, "failing": failing,
                "pareto_frontier": frontier, "summary": "No recommendation: the run is invalid (" + "; ".join(why) + ").",
                "reasons": [], "caveats": why}
    winner = ranked[0] if ranked else None
    for name, why in undecided.items():
        caveats.append(f"{name} is inconclusive: " + "; ".join(why))
    if winner is None:
        if undecided:
            text = ("No candidate meets every SLO with confidence: " + ", ".join(undecided) +
                    (" is" if len(undecided) == 1 else " are") + " inconclusive (run longer to decide).")
        else:
            text = "No candidate meets every SLO." if failing else "No candidate to recommend."
        for name, why in failing.items():
            caveats.append(f"{name} fails: " + "; ".join(why))
        return {"objective": objective, "recommended": None, "ranking": [], "eligible": eligible, "failing": failing,
                "inconclusive": undecided, "pareto_frontier": frontier, "summary": text, "reasons": [], "caveats": caveats}
    w = cands[winner]
    has_slo = w.get("slo") is not None
    reasons.append(("meets every SLO (95% confidence)" if has_slo else "no SLO was set") +
                   f"; best {label} among {'the candidates that meet them' if has_slo else 'all candidates'}: "
                   f"{_fmt(objective, objective_value(objective, w))}")
    for other in ranked[1:]:
        reasons.append(f"{other}: {label} {_fmt(objective, objective_value(objective, cands[other]))}")
    for name, why in failing.items():
        caveats.append(f"{name} fails: " + "; ".join(why))
    for cmp in summary.get("comparisons") or []:
        if winner not in (cmp["a"], cmp["b"]) or cmp.get("diff") is None:
            continue
        other = cmp["b"] if cmp["a"] == winner else cmp["a"]
        diff = cmp["diff"] if cmp["a"] == winner else -cmp["diff"]
        sig = cmp["p_value"] < 0.05
        if diff < 0:
            caveats.append(f"{other} is {abs(100 * diff):.1f} points more accurate than {winner}; the difference is "
                           f"{'significant' if sig else 'not significant'} at n={cmp['n']} (McNemar p={cmp['p_value']:.3g})")
        elif diff > 0:
            reasons.append(f"{winner} is {100 * diff:.1f} points more accurate than {other} "
                           f"({'significant' if sig else 'not significant'} at n={cmp['n']}, p={cmp['p_value']:.3g})")
    if len(cands) == 1:
        reasons = reasons[:1]
    if frontier and winner not in frontier:
        caveats.append(f"{winner} is not on the accuracy/latency/cost Pareto frontier ({', '.join(frontier)})")
    text = f"Recommend {winner}: " + reasons[0] + "."
    if len(cands) == 1:  # one candidate: a verdict, not a choice between deployments
        text = f"{winner} " + ("meets every SLO (95% confidence)." if has_slo else "was measured; no SLO was set.")
    return {"objective": objective, "recommended": winner, "ranking": ranked, "eligible": eligible, "failing": failing,
            "inconclusive": undecided, "pareto_frontier": frontier, "summary": text, "reasons": reasons, "caveats": caveats}


def slo_verdict(slo: dict[str, Any]) -> str:
    """A candidate's three-valued SLO verdict (summaries written before verdicts: from `ok`)."""
    return slo.get("verdict") or ("pass" if slo.get("ok") else "fail")


def _interval(r: dict[str, Any]) -> str:
    if r.get("ci_low") is None and r.get("ci_high") is None:
        return ""
    lo = "-inf" if r.get("ci_low") is None else _measured({**r, "measured": r["ci_low"]})
    hi = "unbounded" if r.get("ci_high") is None else _measured({**r, "measured": r["ci_high"]})
    return f", 95% CI {lo} .. {hi}" if lo != hi else ""


def _undecided(r: dict[str, Any]) -> str:
    more = r.get("more_samples")
    need = ("about " + f"{more:,}" + " more samples would settle it") if more else "the estimate sits on the threshold"
    return f"{r['clause']} (measured {_measured(r)}{_interval(r)}; {need})"


def _measured(r: dict[str, Any]) -> str:
    v = r.get("measured")
    if v is None:
        return "not measured"
    if r["metric"] in ("latency", "service_time", "ttft", "ttfc", "itl", "tpot", "schedule_lag"):
        return f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"
    if r["metric"].startswith("cost"):
        return f"${v:.6f}"
    return f"{v:.4g}"
