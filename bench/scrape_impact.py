"""B6: schedule lag with and without /metrics scrapes, side by side in one run.

Runs the same constant-rate load against the instant simulator twice: once unscraped, once
with a scraper fetching /metrics every --every seconds (far more often than Prometheus would).
Usage: python bench/scrape_impact.py [--rate 300] [--duration 15] [--every 0.2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(rate: float, duration: float, every: float | None, tmp: Path) -> dict:
    port = free_port()
    scenario = tmp / f"s{port}.yaml"
    scenario.write_text(f"""
dataset: {ROOT / 'scenarios' / 'data' / 'demo_mix.jsonl'}
candidates: [{{name: a, sim: instant}}, {{name: b, sim: instant}}]
load: {{arrival: constant, rate_qps: {rate}, duration_s: {duration}, warmup_s: 2, seed: 1}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "loadbench", "run", str(scenario), "--json", "--quiet", "--out", str(tmp / "runs"),
                             "--metrics-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scrapes, sizes, times = 0, [], []
    stop = threading.Event()

    def scraper() -> None:
        nonlocal scrapes
        while not stop.is_set():
            with contextlib.suppress(OSError):  # before the server is up or after it stopped
                t = time.perf_counter()
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
                times.append(time.perf_counter() - t)
                sizes.append(len(body))
                scrapes += 1
            stop.wait(every)

    thread = threading.Thread(target=scraper, daemon=True)
    if every:
        thread.start()
    out, err = proc.communicate(timeout=duration + 120)
    stop.set()
    if proc.returncode not in (0, 1, 3):  # 3: the validity gate tripped, still a measurement here
        raise SystemExit(f"loadbench run exited {proc.returncode}: {err}")
    s = json.loads(out)
    lag = [s["candidates"][c]["schedule_lag_s"] for c in ("a", "b")]
    return {"scrapes": scrapes, "bytes": max(sizes) if sizes else 0, "scrape_ms": 1e3 * sorted(times)[len(times) // 2] if times else 0,
            "p50": max(x["p50"] for x in lag) * 1e3, "p99": max(x["p99"] for x in lag) * 1e3,
            "achieved": min(s["candidates"][c]["achieved_rate_qps"] for c in ("a", "b"))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--every", type=float, default=0.2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("no scrapes", run(args.rate, args.duration, None, Path(tmp))),
                (f"scrape every {args.every:g}s", run(args.rate, args.duration, args.every, Path(tmp)))]
    print(f"{'':<22}{'achieved qps':>13}{'lag p50 ms':>12}{'lag p99 ms':>12}{'scrapes':>9}{'body bytes':>12}{'scrape ms':>11}")
    for label, r in rows:
        print(f"{label:<22}{r['achieved']:>13.2f}{r['p50']:>12.3f}{r['p99']:>12.3f}{r['scrapes']:>9}{r['bytes']:>12}{r['scrape_ms']:>11.2f}")


if __name__ == "__main__":
    main()
