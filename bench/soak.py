"""Soak: a long steady run against the simulator, sampling RSS, open file descriptors and
schedule lag over time; both should stay flat.  Not part of the test suite.

Usage: python bench/soak.py [--minutes 30] [--rate 50] [--every 30]
Prints one line per sample and a final table; writes bench/results/soak-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def lag_p99_ms(port: int) -> float | None:
    """p99 of schedule lag so far, from the exact HDR summary on /metrics."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = [float(m.group(1)) for m in re.finditer(r'loadbench_hdr_schedule_lag_seconds\{[^}]*quantile="0.99"[^}]*\} (\S+)', body)]
    return max(values) * 1e3 if values else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--every", type=float, default=30)
    args = ap.parse_args()
    port = 9477
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "soak.yaml"
        scenario.write_text(f"""
name: soak
dataset: {ROOT / 'scenarios' / 'data' / 'demo_mix.jsonl'}
candidates: [{{name: small, sim: small-fast}}, {{name: large, sim: large-accurate}}]
load: {{arrival: poisson, rate_qps: {args.rate}, duration_s: {args.minutes * 60}, warmup_s: 10, seed: 7}}
scoring: {{judge: {{sim: judge}}}}
""")
        proc = subprocess.Popen([sys.executable, "-m", "loadbench", "run", str(scenario), "--quiet", "--json", "--fail-on", "none",
                                 "--out", str(Path(tmp) / "runs"), "--metrics-port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples = []
        start = time.time()
        time.sleep(15)
        while proc.poll() is None:
            try:
                sample = {"t_s": round(time.time() - start), "rss_mb": round(rss_mb(proc.pid), 1), "fds": fds(proc.pid),
                          "lag_p99_ms": lag_p99_ms(port)}
            except (OSError, ValueError):
                break
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            time.sleep(args.every)
        out, _err = proc.communicate()
    summary = json.loads(out) if out.strip() else {}
    result = {"minutes": args.minutes, "rate_qps": args.rate, "samples": samples,
              "final": {n: {"sent": c["requests"]["sent"], "errors": c["requests"]["error_total"],
                            "schedule_lag_p99_s": c["schedule_lag_s"]["p99"], "achieved_rate_qps": c["achieved_rate_qps"]}
                        for n, c in (summary.get("candidates") or {}).items()}}
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    path = results / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    if samples:
        first, last = samples[0], samples[-1]
        print(f"RSS {first['rss_mb']} -> {last['rss_mb']} MB (max {max(s['rss_mb'] for s in samples)}), "
              f"fds {first['fds']} -> {last['fds']}, lag p99 {first['lag_p99_ms']} -> {last['lag_p99_ms']} ms")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
