"""`loadbench load`: one endpoint, no scenario file; writes the peer-harness JSON contract."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config.dataset import Item
from ..config.errors import ConfigError, Problem, format_loc
from ..config.scenario import Scenario
from ..plan.resolve import Resolved


def adhoc_scenario(base_url: str, *, mode: str, rate: float, concurrency: int, duration_s: float, stream: bool,
                   model: str, prompt_words: int, max_tokens: int | None, timeout_s: float, max_in_flight: int,
                   warmup_s: float, http_client: str = "fast") -> Resolved:
    request: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
    if mode == "closed" or not (0 < rate < float("inf")):
        rate = 1.0  # closed loop: users send back to back and the rate is not used
    data = {
        "name": "load",
        "dataset": "(inline)",
        "candidates": [{"name": "target", "base_url": base_url, "model": model, "stream": stream, "request": request,
                        "timeout_s": timeout_s, "max_in_flight": max_in_flight, "http_client": http_client}],
        "load": {"arrival": "constant", "rate_qps": rate, "duration_s": duration_s, "warmup_s": warmup_s, "mode": mode,
                 "concurrency": concurrency if mode == "closed" else None},
        # an ad-hoc load is a measurement of the endpoint: report, do not judge the client
        "validity": {"max_schedule_lag_p99_s": 3600, "max_event_loop_lag_p99_s": 3600, "min_achieved_ratio": 0.01,
                     "max_loop_cpu_ratio": 100, "allow_drops": True},
    }
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise ConfigError([Problem("(command line)", None, format_loc(tuple(e["loc"])), e["msg"]) for e in err.errors()]) from None
    item = Item.model_validate({"id": "hello", "input": "hello " * prompt_words})
    item._line = 1
    return Resolved(scenario, "(command line)", Path("(inline)"), [item], {}, [[]])


def contract(summary: dict[str, Any], cpu_s: float) -> dict[str, Any]:
    """The shared/bench-peers result contract (times in ms)."""
    c = summary["candidates"]["target"]

    def ms(stats: dict[str, Any]) -> dict[str, float | None] | None:
        if not stats or not stats.get("count"):
            return None
        return {k: (stats[k] * 1e3 if stats.get(k) is not None else None) for k in ("mean", "p50", "p90", "p99", "max")}

    duration = (summary.get("outcome") or {}).get("duration_s") or 0.0
    chunks = (c["itl_s"].get("count") or 0) + (c["ttft_s"].get("count") or 0)
    return {
        "n_ok": c["requests"]["ok"], "n_err": c["requests"]["error_total"],
        "rps": c.get("throughput_rps"), "sent_rps": c.get("achieved_rate_qps"),
        "lat": ms(c["latency_s"]), "ttft": ms(c["ttft_s"]), "itl": ms(c["itl_s"]), "tpot": ms(c["tpot_s"]),
        "chunks_per_s": (chunks / duration) if duration else None,
        "cpu_s": cpu_s, "errors": c["requests"]["errors"],
        "schedule_lag": ms(c["schedule_lag_s"]),
    }


def process_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
