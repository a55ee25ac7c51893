"""How long the summary of a 1,000,000-request two-candidate run takes to build (prints seconds).

Feeds synthetic records (latency, verdicts with ~10% discordant pairs) to the recorder and the
quality aggregator, then times build_summary + add_verdicts with a four-clause SLO.  The
McNemar p-value on ~100,000 discordant pairs used to take minutes (a big-integer sum)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadbench.pacing.records import RequestResult
from loadbench.stats.quality import QualityAggregator
from loadbench.stats.recorder import Recorder
from loadbench.stats.summary import add_verdicts, build_summary
from loadbench.stats.validity import ValidityLimits

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
MS = 1_000_000


def main() -> None:
    rng = np.random.default_rng(1)
    names = ["a", "b"]
    recorder = Recorder(names)
    quality = QualityAggregator(names, [[]])
    lat = (rng.lognormal(np.log(0.2), 0.5, (2, N)) * 1e9).astype(np.int64)
    right = rng.random((2, N)) < np.array([[0.80], [0.84]])
    t0 = time.perf_counter()
    for i in range(N):
        for c, name in enumerate(names):
            r = RequestResult(seq=i, candidate=name, item_id="x", item_index=0, epoch=0, intended_ns=i * MS, in_window=True)
            r.sent_ns = i * MS
            r.done_ns = i * MS + int(lat[c, i])
            r.first_token_ns = i * MS + int(lat[c, i]) // 4
            r.output_tokens, r.input_tokens, r.cost_usd = 20, 100, 0.0001
            r.verdict = "pass" if right[c, i] else "fail"
            recorder(r)
            quality.add(r)
        if i % 100_000 == 0:
            recorder.flush()
    recorder.flush()
    fed = time.perf_counter() - t0
    t1 = time.perf_counter()
    meta = {"run_id": "bench", "load": {"mode": "open", "warmup_s": 0}}
    summary = build_summary(recorder, meta, {"stop_reason": "completed"}, quality)
    add_verdicts(summary, ["latency p95 <= 1s", "latency p99.9 <= 3s", "accuracy >= 0.75", "error_ratio <= 0.01"],
                 ValidityLimits(), "cost_per_correct", None, recorder)
    built = time.perf_counter() - t1
    cmp = summary["comparisons"][0]
    print(f"requests per candidate: {N:,}; feeding the recorder and aggregator: {fed:.1f} s")
    print(f"summary + verdicts: {built:.2f} s; McNemar on {cmp['a_only'] + cmp['b_only']:,} discordant pairs: p={cmp['p_value']:.3g}")
    print("verdicts:", {n: c["slo"]["verdict"] for n, c in summary["candidates"].items()})


if __name__ == "__main__":
    main()
