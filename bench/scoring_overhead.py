"""Schedule lag with and without inline scoring, side by side in one run (instant simulator).

Usage: python bench/scoring_overhead.py [--rate 300] [--duration 15]
Prints achieved rate, schedule-lag p50/p99 and the driver's CPU seconds for both runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(dataset: Path, rate: float, duration: float, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    scenario = out / "s.yaml"
    scenario.write_text(f"""
dataset: {dataset}
candidates: [{{name: sim, sim: instant}}]
load: {{arrival: constant, rate_qps: {rate}, duration_s: {duration}, warmup_s: 2, seed: 1}}
""")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "loadbench", "run", str(scenario), "--json", "--quiet", "--out", str(out / "runs")],
                          capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(proc.stdout)
    c = summary["candidates"]["sim"]
    return {"achieved": c["achieved_rate_qps"], "lag_p50_ms": c["schedule_lag_s"]["p50"] * 1e3,
            "lag_p99_ms": c["schedule_lag_s"]["p99"] * 1e3, "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "scored": (c.get("accuracy") or {}).get("n", 0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--duration", type=float, default=15)
    args = ap.parse_args()
    src = [json.loads(line) for line in (ROOT / "scenarios" / "data" / "demo_mix.jsonl").read_text().splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scored = tmp / "scored.jsonl"
        plain = tmp / "plain.jsonl"
        scored.write_text("".join(json.dumps(r) + "\n" for r in src))
        plain.write_text("".join(json.dumps({"id": r["id"], "input": r["input"]}) + "\n" for r in src))
        rows = [("no scoring", run(plain, args.rate, args.duration, tmp / "a")),
                ("scoring on (demo scorers, no judge)", run(scored, args.rate, args.duration, tmp / "b"))]
    print(f"{'':<38}{'achieved qps':>14}{'lag p50 ms':>12}{'lag p99 ms':>12}{'CPU s (all)':>13}{'scored':>8}")
    for label, r in rows:
        print(f"{label:<38}{r['achieved']:>14.2f}{r['lag_p50_ms']:>12.3f}{r['lag_p99_ms']:>12.3f}{r['cpu_s']:>13.2f}{r['scored']:>8}")


if __name__ == "__main__":
    main()
