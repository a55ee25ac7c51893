"""Benchmark fidelity: accuracy per format variant, the format gap, contamination signals and public scores held against the domain (pure)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from ..pacing.results_log import iter_results
from .confidence import nearest_rank
from .proportions import paired_difference, wilson

ALPHA = 0.05
FORMAT_EXCLUDED = ("masked_option", "reference")  # a probe and another set: not ways to ask the same question
MASKED_SIGNAL_FLOOR = 0.05  # reproducing a hidden option word for word above this rate is a signal


Verdicts = dict[str, dict[str, dict[tuple[int, int], tuple[int, float]]]]  # candidate -> variant -> (base, epoch) -> (1/0, latency)


def collect(run_dir: Path, variant_of: list[str], base_of: list[int]) -> Verdicts:
    """Pass (1) or fail (0) and latency of every scored answer of the window, by variant and base item."""
    out: Verdicts = {}
    for _, r, _ in iter_results(run_dir / "results.jsonl"):
        if r is None or not r.in_window or r.phase == "tool" or r.verdict not in ("pass", "fail") or r.turn:
            continue
        if r.item_index >= len(variant_of):
            continue
        key = (base_of[r.item_index], r.epoch)
        latency = (r.done_ns - r.intended_ns) / 1e9 if r.done_ns >= 0 else math.nan
        out.setdefault(r.candidate, {}).setdefault(variant_of[r.item_index], {})[key] = (1 if r.verdict == "pass" else 0, latency)
    return out


def by_variant(verdicts: dict[str, dict[tuple[int, int], tuple[int, float]]], skipped: dict[str, int]) -> dict[str, Any]:
    out = {}
    for name in skipped:
        cells = verdicts.get(name, {})
        passed = sum(v for v, _ in cells.values())
        value, low, high = wilson(passed, len(cells))
        lat = [t for _, t in cells.values()]
        out[name] = {"accuracy": value, "ci_low": low, "ci_high": high, "n": len(cells), "pass": passed,
                     "latency_p50_s": nearest_rank(lat, 0.5), "latency_p95_s": nearest_rank(lat, 0.95),
                     "items_skipped": skipped.get(name, 0)}
    return out


def paired(a: dict[tuple[int, int], tuple[int, float]], b: dict[tuple[int, int], tuple[int, float]]) -> dict[str, Any]:
    """Accuracy of A minus B on the items both answered, with its interval and McNemar's p."""
    both = a.keys() & b.keys()
    a_only = sum(1 for k in both if a[k][0] == 1 and b[k][0] == 0)
    b_only = sum(1 for k in both if a[k][0] == 0 and b[k][0] == 1)
    result = paired_difference(a_only, b_only, len(both))
    result["significant"] = result["p_value"] is not None and result["p_value"] < ALPHA
    return result


def format_gap(verdicts: dict[str, dict[tuple[int, int], tuple[int, float]]]) -> dict[str, Any] | None:
    """The largest paired accuracy difference between two ways of asking the same items."""
    names = [v for v in verdicts if v not in FORMAT_EXCLUDED]
    best = None
    for x, y in itertools.combinations(names, 2):
        d = paired(verdicts[x], verdicts[y])
        if d["diff"] is None:
            continue
        if best is None or abs(d["diff"]) > abs(best["difference"]):
            flip = d["diff"] < 0  # the better-scoring variant first: the gap reads as a loss
            best = {"between": [y, x] if flip else [x, y], "difference": abs(d["diff"]),
                    "ci_low": -d["ci_high"] if flip else d["ci_low"], "ci_high": -d["ci_low"] if flip else d["ci_high"],
                    "n": d["n"], "p_value": d["p_value"], "significant": d["significant"]}
    return best


def contamination(verdicts: dict[str, dict[tuple[int, int], tuple[int, float]]], canary_failures: int | None) -> dict[str, Any]:
    """Signals, worded as signals: none of them proves a model saw the test set."""
    out: dict[str, Any] = {}
    if "original" in verdicts and "choices_shuffled" in verdicts:
        d = paired(verdicts["original"], verdicts["choices_shuffled"])
        if d["n"]:
            fires = d["significant"] and (d["diff"] or 0) > 0
            out["shuffle_drop"] = {
                "drop": d["diff"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "n": d["n"], "p_value": d["p_value"],
                "signal": fires,
                "verdict": (f"signal: {100 * d['diff']:.1f} points lost when only the options' order changed (p={d['p_value']:.3g}); "
                            "a model that answers by position may have memorised the set") if fires else
                           "no signal: shuffling the options did not cost significant accuracy"}
    masked = verdicts.get("masked_option")
    if masked:
        hits = sum(v for v, _ in masked.values())
        rate, low, high = wilson(hits, len(masked))
        fires = low is not None and low > MASKED_SIGNAL_FLOOR
        out["masked_option_match"] = {
            "rate": rate, "ci_low": low, "ci_high": high, "n": len(masked), "matches": hits,
            "chance_floor": MASKED_SIGNAL_FLOOR, "signal": fires,
            "verdict": (f"signal: reproduced {hits} of {len(masked)} hidden options word for word "
                        f"({100 * (rate or 0):.0f}%, 95% interval {100 * (low or 0):.0f}-{100 * (high or 0):.0f}%); "
                        "a model that had not seen the set rarely can") if fires else
                       f"no signal: {hits} of {len(masked)} hidden options reproduced (interval reaches "
                       f"{100 * MASKED_SIGNAL_FLOOR:.0f}% or below)"}
    if canary_failures is not None:
        out["canaries"] = {"leaks": canary_failures, "signal": canary_failures > 0}
    return out


def ranking_flips(per_candidate: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Pairs of candidates whose order by accuracy changes between two variants."""
    flips = []
    for a, b in itertools.combinations(sorted(per_candidate), 2):
        va, vb = per_candidate[a], per_candidate[b]
        common = [v for v in va if v in vb and v not in FORMAT_EXCLUDED and va[v]["accuracy"] is not None and vb[v]["accuracy"] is not None]
        for x, y in itertools.combinations(common, 2):
            dx = va[x]["accuracy"] - vb[x]["accuracy"]
            dy = va[y]["accuracy"] - vb[y]["accuracy"]
            if dx * dy < 0:
                flips.append({"candidates": [a, b], "variants": [x, y], "difference": {x: dx, y: dy},
                              "text": f"{a} {'beats' if dx > 0 else 'trails'} {b} on {x} but "
                                      f"{'beats' if dy > 0 else 'trails'} it on {y}"})
    return flips


def kendall_tau(a: list[float], b: list[float]) -> float | None:
    """Kendall's tau-a of two rankings of the same candidates (None for fewer than two)."""
    pairs = list(itertools.combinations(range(len(a)), 2))
    if not pairs:
        return None
    score = sum((1 if (a[i] - a[j]) * (b[i] - b[j]) > 0 else -1 if (a[i] - a[j]) * (b[i] - b[j]) < 0 else 0) for i, j in pairs)
    return score / len(pairs)


def public_vs_domain(public: dict[str, dict[str, float]], domain: dict[str, dict[str, float | None]],
                     paired_tests: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """Per public benchmark: its ranking against the domain rankings, Kendall's tau, and every pair it
    orders one way and the domain accuracy the other (with the paired test's p)."""
    out: dict[str, Any] = {}
    benchmarks = sorted({b for scores in public.values() for b in scores})
    for bench in benchmarks:
        names = [n for n in public if bench in public[n] and domain.get(n, {}).get("accuracy") is not None]
        if len(names) < 2:
            continue
        entry: dict[str, Any] = {"candidates": names, "public": {n: public[n][bench] for n in names},
                                 "ranking_public": sorted(names, key=lambda n: -public[n][bench])}
        for measure in ("accuracy", "goodput", "cost_per_correct"):
            have = [n for n in names if domain[n].get(measure) is not None]
            if len(have) == len(names):
                sign = 1.0 if measure != "cost_per_correct" else -1.0  # cheaper is better
                values = [sign * float(domain[n][measure]) for n in names]  # type: ignore[arg-type]
                entry[f"ranking_{measure}"] = [n for _, n in sorted(zip(values, names), key=lambda t: -t[0])]
                entry[f"kendall_tau_{measure}"] = kendall_tau([public[n][bench] for n in names], values)
        inversions = []
        for a, b in itertools.combinations(names, 2):
            pub = public[a][bench] - public[b][bench]
            acc = float(domain[a]["accuracy"]) - float(domain[b]["accuracy"])  # type: ignore[arg-type]
            if pub * acc < 0:
                better_pub, better_dom = (a, b) if pub > 0 else (b, a)
                test = paired_tests.get((better_dom, better_pub)) or {}
                inversions.append({"benchmark": bench, "public_better": better_pub, "domain_better": better_dom,
                                   "accuracy_diff": abs(acc), "p_value": test.get("p_value"),
                                   "significant": bool(test.get("significant"))})
        entry["inversions"] = inversions
        out[bench] = entry
    return out


def _domain(cand: dict[str, Any], original: dict[str, Any] | None) -> dict[str, float | None]:
    accuracy = (original or {}).get("accuracy") if original is not None else (cand.get("accuracy") or {}).get("value")
    return {"accuracy": accuracy, "goodput": (cand.get("goodput") or {}).get("rps"),
            "cost_per_correct": (cand.get("cost_usd") or {}).get("per_correct")}


def _tests_from_comparisons(comparisons: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for c in comparisons:
        test = {"p_value": c.get("p_value"), "significant": c.get("p_value") is not None and c["p_value"] < ALPHA}
        out[(c["a"], c["b"])] = out[(c["b"], c["a"])] = test
    return out


def add_fidelity(summary: dict[str, Any], run_dir: Path, meta: dict[str, Any]) -> None:
    """candidates.NAME.{by_variant, format_gap, contamination} and summary.fidelity (in place)."""
    fid = meta.get("fidelity")
    public = {n: dict(s) for n, s in (meta.get("public_scores") or {}).items() if n in (summary.get("candidates") or {})}
    if not fid and not public:
        return
    cands = summary["candidates"]
    section: dict[str, Any] = {}
    tests = _tests_from_comparisons(summary.get("comparisons") or [])
    originals: dict[str, dict[str, Any]] = {}
    if fid:
        verdicts = collect(run_dir, fid["item_variants"], fid["item_bases"]) if (run_dir / "results.jsonl").exists() else {}
        per_candidate = {}
        for name, cand in cands.items():
            mine = verdicts.get(name, {})
            cand["by_variant"] = per_candidate[name] = by_variant(mine, fid["skipped"])
            cand["format_gap"] = format_gap(mine)
            canary = ((cand.get("scorers") or {}).get("canary") or {}).get("fail")
            cand["contamination"] = contamination(mine, canary)
            originals[name] = cand["by_variant"].get("original")
        section.update(variants=fid["variants"], items_skipped=fid["skipped"], ranking_flips=ranking_flips(per_candidate))
        if "original" in fid["variants"]:
            tests = {}
            for a, b in itertools.combinations(cands, 2):
                d = paired(verdicts.get(a, {}).get("original", {}), verdicts.get(b, {}).get("original", {}))
                tests[(a, b)] = tests[(b, a)] = d
    reference = (fid or {}).get("reference_name")
    if reference and fid:
        # the public-style set measured here, under this load: held against the domain like a public score
        measured = {n: (c.get("by_variant") or {}).get("reference", {}).get("accuracy") for n, c in cands.items()}
        label = f"{reference} (measured here)"
        for n, value in measured.items():
            if value is not None:
                public.setdefault(n, {})[label] = 100.0 * value
    if public:
        domain = {n: _domain(cands[n], originals.get(n) if fid else None) for n in cands}
        section["public"] = public_vs_domain(public, domain, tests)
        section["domain_measure"] = "accuracy on the original variant" if fid else "accuracy"
    summary["fidelity"] = section


__all__ = ["add_fidelity", "by_variant", "collect", "contamination", "format_gap", "kendall_tau", "paired", "public_vs_domain", "ranking_flips"]
