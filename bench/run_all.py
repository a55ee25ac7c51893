"""The benchmark table B1-B7 in one command; prints it and writes bench/results/bench-<stamp>.{json,md}.

  python bench/run_all.py                 # everything (~25 min on 2 cores)
  python bench/run_all.py --only B4,B7    # a subset
  python bench/run_all.py --quick         # shorter runs (a smoke test of the harness, not numbers to quote)

B1-B3 come from ../shared/bench-peers (loadbench beside wrk, hey and the aiohttp reference client,
each pinned to one core; bench/peers.sh), B4, B5 and B7 run loadbench against its pre-rendered
loopback server (`loadbench sim --static`, pinned to the last CPU), B6 is bench/scrape_impact.py.
Every load is bounded in time; every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def loadbench(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadbench", *args], capture_output=True, text=True, timeout=timeout, env=ENV)


class StaticServer:
    """`loadbench sim --static` on the last CPU; stopped by PID."""

    def __init__(self, chunks: int = 200) -> None:
        cpu = max(os.sched_getaffinity(0))
        self.proc = subprocess.Popen([sys.executable, "-m", "loadbench", "sim", "--static", "--port", "0", "--chunks", str(chunks),
                                      "--cpu", str(cpu), "--parent-pid", str(os.getpid())],
                                     stdout=subprocess.PIPE, text=True, env=ENV)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{json.loads(line)['port']}/v1"
        self.cpu = cpu

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def client_cpus(server_cpu: int) -> str:
    cpus = sorted(os.sched_getaffinity(0) - {server_cpu}) or [server_cpu]
    return ",".join(map(str, cpus))


def load_json(url: str, tmp: Path, *args: str, workers: int = 1, cpus: str | None = None) -> dict:
    out = tmp / f"r{time.monotonic_ns()}.json"
    cmd = ["load", url, "--json-out", str(out), "--out", str(tmp / "runs"), "--workers", str(workers), *args]
    if cpus:
        proc = subprocess.run(["taskset", "-c", cpus, sys.executable, "-m", "loadbench", *cmd], capture_output=True, text=True,
                              timeout=900, env=ENV)
    else:
        proc = loadbench(*cmd)
    if proc.returncode != 0:
        raise RuntimeError(f"loadbench {' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------- B1-B3

def peers(quick: bool) -> dict:
    """Runs the peer harness (M1 = B1, M2 = B2, M3 = B3) and reads its normalised results."""
    peers_dir = Path(os.environ.get("PEERS_DIR", ROOT.parent / "shared" / "bench-peers"))
    if not (peers_dir / "run.sh").exists():
        return {"error": f"{peers_dir} not found"}
    env = {**ENV, "PEERS_SKIP_HEAVY": "1", "LOADBENCH_CMD": f"{sys.executable} -m loadbench load {{url}}/v1 --mode {{mode}} "
           "--rate {rate} --concurrency {concurrency} --duration {duration} {stream_flag} --json-out {json_out} --out {workdir}/lb-runs",
           "LOADBENCH_VERSION_CMD": f"{sys.executable} -m loadbench --version"}
    md = RESULTS / "peers.md"
    # every peer the harness finds installed (its setup.sh installs the heavy Python tools), always with loadbench
    listing = subprocess.run([sys.executable, str(peers_dir / "peers.py"), "--list"], capture_output=True, text=True, timeout=120, env=env)
    tools = ["loadbench"] + [line.split()[0] for line in listing.stdout.splitlines()
                             if line.split()[1:2] == ["ok"] and line.split()[0] != "loadbench"]
    proc = subprocess.run(["bash", str(peers_dir / "run.sh"), "--out", str(md), "--tools", ",".join(tools),
                           "--measures", "M1,M2,M3"], capture_output=True, text=True, timeout=3600, env=env)
    raw = re.search(r"Raw outputs: `([^`]+)`", md.read_text()) if md.exists() else None
    if proc.returncode != 0 or raw is None:
        return {"error": (proc.stderr or proc.stdout)[-2000:]}
    data = json.loads((Path(raw.group(1)) / "results.json").read_text())
    return {"raw": raw.group(1), "results": data}


def _peer_rows(data: dict) -> dict:
    """tool -> measure -> normalised result, from the harness's results.json."""
    results = data.get("results") or {}
    return {tool: {m: (r.get("result") or r) if isinstance(r, dict) else {} for m, r in measures.items()}
            for tool, measures in results.items() if isinstance(measures, dict)}


# ---------------------------------------------------------------------------- B4, B5, B7

def floor(rate: int, duration: int, cpus: str) -> dict:
    """bench/floor.py: how late this machine wakes an empty loop at `rate` on `cpus` (no requests)."""
    proc = subprocess.run(["taskset", "-c", cpus.split(",")[0], sys.executable, str(ROOT / "bench" / "floor.py"), "--rate", str(rate),
                           "--duration", str(duration)], capture_output=True, text=True, timeout=600, env=ENV)
    return json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-500:]}


def pacing(url: str, tmp: Path, rates: list[int], duration: int, workers: int, cpus: str) -> list[dict]:
    """Each rate is measured right after the machine's own floor at that rate on the same CPU."""
    rows = []
    for rate in rates:
        fl = floor(rate, duration, cpus)
        r = load_json(url, tmp, "--mode", "open", "--rate", str(rate), "--duration", str(duration),
                      workers=workers, cpus=cpus)
        lag = r.get("schedule_lag") or {}
        rows.append({"offered": rate, "achieved": r["sent_rps"], "ratio": (r["sent_rps"] or 0) / rate,
                     "lag_p50_ms": lag.get("p50"), "lag_p99_ms": lag.get("p99"), "errors": r["n_err"], "workers": workers,
                     "floor_p99_ms": fl.get("late_p99_ms"), "floor_steal_share": fl.get("steal_share")})
    return rows


def closed_rate(url: str, tmp: Path, duration: int, workers: int, cpus: str, stream: bool = False) -> dict:
    args = ["--mode", "closed", "--concurrency", "64", "--duration", str(duration), "--warmup", "1"] + (["--stream"] if stream else [])
    r = load_json(url, tmp, *args, workers=workers, cpus=cpus)
    return {"rps": r["rps"], "chunks_per_s": r["chunks_per_s"], "errors": r["n_err"], "workers": workers,
            "client_cpu_s": r.get("cpu_s"), "completed": r.get("n_ok")}


def memory(url: str, tmp: Path, requests: int, cpus: str) -> dict:
    """RSS of the loadbench process (and its children) sampled while it sends `requests`."""
    rate_probe = closed_rate(url, tmp, 3, 1, cpus)["rps"] or 5000
    duration = max(10, int(requests / (rate_probe * 0.95)) + 5)
    out = tmp / "mem.json"
    proc = subprocess.Popen(["taskset", "-c", cpus, sys.executable, "-m", "loadbench", "load", url, "--mode", "closed",
                             "--concurrency", "64", "--duration", str(duration), "--json-out", str(out), "--out", str(tmp / "runs")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()

    def rss_mb(pid: int) -> float:
        with contextlib.suppress(OSError):  # the process may have just exited
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    while proc.poll() is None:
        samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
        time.sleep(2)
    proc.wait()
    r = json.loads(out.read_text())
    values = [m for _, m in samples if m > 0]
    return {"requests": r["n_ok"], "duration_s": duration, "rss_first_mb": values[0] if values else None,
            "rss_at_10s_mb": next((m for t, m in samples if t >= 10), None), "rss_max_mb": max(values, default=None),
            "rss_last_mb": values[-1] if values else None, "samples": samples}


def scrape_impact(quick: bool) -> dict:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "scrape_impact.py"), "--rate", "300",
                           "--duration", "8" if quick else "20", "--every", "1"], capture_output=True, text=True, timeout=600, env=ENV)
    return {"table": proc.stdout.strip(), "error": proc.stderr[-1000:] if proc.returncode else None}


# ---------------------------------------------------------------------------- report

def fmt(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def render(res: dict) -> str:
    lines = [f"# loadbench benchmarks ({res['started']}, {res['cpus']} CPUs, {res['host']})", ""]
    p = res.get("peers")
    if p and "results" in p:
        rows = _peer_rows(p["results"])
        lines += ["## B1-B3 (bench-peers harness, one pinned core per tool; full table: bench/results/peers.md)", ""]
        lines += ["| tool | B1 req/s (x wrk) | B2 SSE events/s | B3 TTFT mean - server's, ms | B3 TTFT p99 ms | B3 ITL p50 / p99 ms |",
                  "|---|---:|---:|---:|---:|---:|"]
        wrk = (rows.get("wrk", {}).get("M1") or {}).get("rps")
        for tool, m in rows.items():
            m1, m2, m3 = m.get("M1", {}), m.get("M2", {}), m.get("M3", {})
            ttft, itl = m3.get("ttft") or {}, m3.get("itl") or {}
            srv = ((m3.get("server") or {}).get("ttft_ms") or {}).get("mean")
            err = (ttft.get("mean") - srv) if ttft.get("mean") is not None and srv is not None else None
            share = f" ({m1['rps'] / wrk:.2f}x)" if m1.get("rps") and wrk else ""
            lines.append(f"| {tool} | {fmt(m1.get('rps'))}{share} | {fmt(m2.get('chunks_per_s') or None)} | {fmt(err, '+.2f')} | "
                         f"{fmt(ttft.get('p99'), '.2f')} | {fmt(itl.get('p50'), '.2f')} / {fmt(itl.get('p99'), '.2f')} |")
        lines += ["", "B3 truth: TTFT 50 ms, ITL 10 ms (sse_server.js, 20 req/s open loop).", ""]
    elif p:
        lines += [f"B1-B3: not run ({p.get('error')})", ""]
    if "B4" in res:
        lines += ["## B4 pacing (open loop, constant arrivals, non-streaming, pre-rendered server pinned to one CPU)", "",
                  "| workers | offered req/s | achieved | achieved/offered | lag p50 ms | lag p99 ms | errors | floor p99 ms | CPU steal |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in res["B4"]:
            steal = r.get("floor_steal_share")
            lines.append(f"| {r['workers']} | {r['offered']:,} | {fmt(r['achieved'], ',.1f')} | {r['ratio']:.4f} | "
                         f"{fmt(r['lag_p50_ms'], '.3f')} | {fmt(r['lag_p99_ms'], '.3f')} | {r['errors']} | "
                         f"{fmt(r.get('floor_p99_ms'), '.3f')} | {fmt(None if steal is None else 100 * steal, '.1f')}% |")
        lines += ["", "floor: bench/floor.py run just before, on the same CPU: the wake-up lateness of an empty loop paced the same way "
                  "(no requests), and the share of that CPU the hypervisor took meanwhile (steal). A sender cannot beat the floor.", ""]
    if "B5" in res:
        m = res["B5"]
        lines += ["## B5 memory (closed loop, 64 in flight, non-streaming)", "",
                  f"{m['requests']:,} requests in {m['duration_s']} s: RSS {fmt(m['rss_first_mb'], '.1f')} MB at start, "
                  f"{fmt(m['rss_at_10s_mb'], '.1f')} MB at 10 s, {fmt(m['rss_last_mb'], '.1f')} MB at the end, max {fmt(m['rss_max_mb'], '.1f')} MB", ""]
    if "B6" in res:
        lines += ["## B6 scrape impact (bench/scrape_impact.py: 300 req/s, /metrics scraped every second vs never)", "", "```",
                  res["B6"]["table"] or str(res["B6"]["error"]), "```", ""]
    if "B7" in res:
        b = res["B7"]
        lines += ["## B7 scale-out (1 vs 2 worker processes)", "",
                  "| measure | 1 worker | 2 workers | ratio |", "|---|---:|---:|---:|"]
        for key, label in (("closed", "B1-style req/s (closed, 64 in flight)"), ("closed_stream", "B2-style SSE events/s")):
            one, two = b[key]
            field = "chunks_per_s" if key == "closed_stream" else "rps"
            ratio = (two[field] / one[field]) if one.get(field) and two.get(field) else None
            lines.append(f"| {label} | {fmt(one.get(field))} | {fmt(two.get(field))} | {fmt(ratio, '.2f')}x |")
        for key, label in (("closed", "completed requests per client CPU-second"), ("closed_stream", "streamed responses per client CPU-second")):
            one, two = b[key]
            per = [(x["completed"] / x["client_cpu_s"]) if x.get("completed") and x.get("client_cpu_s") else None for x in (one, two)]
            ratio = per[1] / per[0] if per[0] and per[1] else None
            lines.append(f"| {label} | {fmt(per[0])} | {fmt(per[1])} | {fmt(ratio, '.2f')}x |")
        lines += ["", f"Server pinned to CPU {b['server_cpu']}; the client processes may use CPUs {b['client_cpus']}. "
                  "With two CPUs the two workers, the coordinator and the server share two cores, so the throughput ratio is a "
                  "floor of the scale-out factor, not the factor itself. The per-CPU-second rows (coordinator and workers "
                  "together, start-up included) show what a worker costs: 2 x their ratio is the factor when every worker "
                  "has a free core.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="B1,B2,B3,B4,B5,B6,B7")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--render", metavar="JSON", help="print the table of an earlier bench-*.json and exit")
    args = ap.parse_args()
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    only = set(args.only.upper().split(","))
    res: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": len(os.sched_getaffinity(0)), "host": os.uname().nodename}
    if only & {"B1", "B2", "B3"}:
        print("B1-B3: the peers harness (several minutes) ...", file=sys.stderr, flush=True)
        res["peers"] = peers(args.quick)
    tmp = Path(tempfile.mkdtemp(prefix="loadbench-bench-"))
    if only & {"B4", "B5", "B7"}:
        server = StaticServer()
        cpus = client_cpus(server.cpu)
        try:
            if "B4" in only:
                print("B4: pacing ...", file=sys.stderr, flush=True)
                res["B4"] = pacing(server.url, tmp, [100, 500, 1000, 2000], 5 if args.quick else 15, 1, cpus)
            if "B7" in only:
                print("B7: scale-out ...", file=sys.stderr, flush=True)
                d = 4 if args.quick else 10
                every = ",".join(map(str, sorted(os.sched_getaffinity(0))))  # workers may use every CPU here
                res["B7"] = {
                    "server_cpu": server.cpu, "client_cpus": every,
                    "closed": [closed_rate(server.url, tmp, d, w, every) for w in (1, 2)],
                    "closed_stream": [closed_rate(server.url, tmp, d, w, every, stream=True) for w in (1, 2)],
                }
                if "B4" in only:
                    res["B4"] += pacing(server.url, tmp, [1000, 2000], 5 if args.quick else 15, 2, every)
            if "B5" in only:
                print("B5: memory ...", file=sys.stderr, flush=True)
                res["B5"] = memory(server.url, tmp, 50_000 if args.quick else 1_000_000, cpus)
        finally:
            server.stop()
    if "B6" in only:
        print("B6: scrape impact ...", file=sys.stderr, flush=True)
        res["B6"] = scrape_impact(args.quick)
    text = render(res)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(res, indent=1, default=str))
    (RESULTS / f"bench-{stamp}.md").write_text(text + "\n")
    print(f"\nwritten: bench/results/bench-{stamp}.md and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
