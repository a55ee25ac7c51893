"""Two source trees of loadbench side by side in one run: B1-, B2- and B4-style loads, interleaved.

  python bench/compare_versions.py OLD_TREE [NEW_TREE] [--rounds 3] [--seconds 8]

OLD_TREE is a checkout of the previous main (e.g. `git worktree add /tmp/old <commit>`); NEW_TREE
defaults to this checkout.  Each round runs every load once per tree, alternating which goes
first, against one pre-rendered loopback server (`loadbench sim --static`, pinned to the last
CPU, from this checkout) with the client pinned to the other CPUs:
  B1  closed loop, non-streaming, 64 users: completed requests per second
  B2  closed loop, streaming (200 chunks per answer), 64 users: SSE chunks per second
  B4  open loop at 1,000 req/s (constant arrivals): schedule-lag p99 in ms (lower is better)
It prints the medians per tree and the new/old ratio; every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "bench"))
from run_all import StaticServer  # noqa: E402 (the same pinned static server as the B1-B7 table)


def load(tree: Path, url: str, tmp: Path, args: list[str], cpus: str) -> dict:
    out = tmp / f"r{time.monotonic_ns()}.json"
    cmd = ["taskset", "-c", cpus, sys.executable, "-m", "loadbench", "load", url, "--json-out", str(out),
           "--out", str(tmp / "runs"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(tree)})
    if proc.returncode != 0:
        raise RuntimeError(f"{tree}: {' '.join(args)}: {proc.stderr[-1500:]}")
    return json.loads(out.read_text())


LOADS = {
    "B1 req/s (closed, non-streaming)": (1, ["--mode", "closed", "--concurrency", "64"], lambda r: r["rps"], True),
    "B2 chunks/s (closed, streaming)": (200, ["--mode", "closed", "--concurrency", "64", "--stream"],
                                        lambda r: r["chunks_per_s"], True),
    "B4 schedule lag p99 ms (open, 1,000 req/s)": (1, ["--mode", "open", "--rate", "1000"],
                                                  lambda r: r["schedule_lag"]["p99"], False),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path, nargs="?", default=HERE)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--only", help="comma-separated prefixes of the loads to run, e.g. B4")
    args = ap.parse_args()
    loads = {k: v for k, v in LOADS.items() if not args.only or any(k.startswith(p) for p in args.only.split(","))}
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    results: dict[str, dict[str, list[float]]] = {name: {"old": [], "new": []} for name in loads}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, (chunks, extra, metric, _) in loads.items():
            server = StaticServer(chunks)
            cpus = ",".join(map(str, sorted(os.sched_getaffinity(0) - {server.cpu}) or [server.cpu]))
            try:
                for k in range(args.rounds):
                    order = ("old", "new") if k % 2 == 0 else ("new", "old")
                    for which in order:
                        r = load(trees[which], server.url, tmp, [*extra, "--duration", str(args.seconds)], cpus)
                        results[name][which].append(float(metric(r)))
            finally:
                server.stop()
    print(f"{'load':<46} {'old (median)':>14} {'new (median)':>14} {'new/old':>8}   runs old | new")
    for name, (_, _, _, higher_better) in loads.items():
        old, new = statistics.median(results[name]["old"]), statistics.median(results[name]["new"])
        ratio = new / old if old else float("nan")
        print(f"{name:<46} {old:>14,.2f} {new:>14,.2f} {ratio:>8.3f}   "
              f"{', '.join(f'{v:,.1f}' for v in results[name]['old'])} | {', '.join(f'{v:,.1f}' for v in results[name]['new'])}"
              f"  ({'higher' if higher_better else 'lower'} is better)")


if __name__ == "__main__":
    main()
