"""The server's side: parse a deployment's own Prometheus metrics, summarise scrapes, reconcile with the client."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from .confidence import nearest_rank

MAX_SERIES = 5000  # per scrape: more is not a model server's /metrics, and is cut (counted)

# role -> sample names that play it, first found wins.  Gauges: running, waiting, kv_usage (a ratio
# 0..1).  Counters: output_tokens, input_tokens, requests.  Histograms (family names): ttft, e2e.
PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {
        "running": ("vllm:num_requests_running",),
        "waiting": ("vllm:num_requests_waiting",),
        "kv_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        "output_tokens": ("vllm:generation_tokens_total",),
        "input_tokens": ("vllm:prompt_tokens_total",),
        "requests": ("vllm:request_success_total",),
        "ttft": ("vllm:time_to_first_token_seconds",),
        "e2e": ("vllm:e2e_request_latency_seconds",),
    },
    "sglang": {
        "running": ("sglang:num_running_reqs",),
        "waiting": ("sglang:num_queue_reqs",),
        "kv_usage": ("sglang:token_usage",),
        "output_tokens": ("sglang:generation_tokens_total",),
        "input_tokens": ("sglang:prompt_tokens_total",),
        "requests": ("sglang:num_requests_total",),
        "ttft": ("sglang:time_to_first_token_seconds",),
        "e2e": ("sglang:e2e_request_latency_seconds",),
    },
    "llamacpp": {
        "running": ("llamacpp:requests_processing",),
        "waiting": ("llamacpp:requests_deferred",),
        "kv_usage": ("llamacpp:kv_cache_usage_ratio",),
        "output_tokens": ("llamacpp:tokens_predicted_total",),
        # llama.cpp counts prompt tokens it evaluated apart from those it reused from its cache;
        # usage.prompt_tokens counts both.
        "input_tokens": ("llamacpp:prompt_tokens_total+llamacpp:prompt_tokens_cached_total", "llamacpp:prompt_tokens_total"),
    },
    "tgi": {
        "running": ("tgi_batch_current_size",),
        "waiting": ("tgi_queue_size",),
        "output_tokens": ("tgi_request_generated_tokens_sum",),
        "input_tokens": ("tgi_request_input_length_sum",),
        "requests": ("tgi_request_success",),
        "e2e": ("tgi_request_duration",),
    },
}
PREFIXES = {"vllm": "vllm:", "sglang": "sglang:", "llamacpp": "llamacpp:", "tgi": "tgi_"}
GAUGE_ROLES = ("running", "waiting", "kv_usage")
COUNTER_ROLES = ("output_tokens", "input_tokens", "requests")


class NotPrometheus(ValueError):
    """The body is not Prometheus text exposition."""


@dataclass(slots=True)
class Parsed:
    samples: dict[str, float]  # series key -> value
    kinds: dict[str, str]  # sample name -> counter | gauge | histogram (buckets, sum and count)
    cut: int  # series beyond MAX_SERIES, not kept


def series_key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


def split_key(key: str) -> tuple[str, dict[str, str]]:
    """The inverse of series_key (label values written by series_key contain no '",' pairs)."""
    name, _, rest = key.partition("{")
    labels: dict[str, str] = {}
    for part in rest.rstrip("}").split('",') if rest else []:
        k, _, v = part.partition('="')
        labels[k] = v.rstrip('"')
    return name, labels


def _kind(family_type: str, sample_name: str) -> str:
    if family_type in ("counter", "gauge", "histogram"):
        return family_type
    if family_type == "summary":
        return "gauge"
    return "counter" if sample_name.endswith("_total") else "gauge"


def parse_exposition(text: str) -> Parsed:
    """Samples of a Prometheus text page, with prometheus-client's own parser.  Raises NotPrometheus."""
    samples: dict[str, float] = {}
    kinds: dict[str, str] = {}
    cut = 0
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.endswith("_created"):  # a timestamp, not a measurement
                    continue
                if len(samples) >= MAX_SERIES:
                    cut += 1
                    continue
                value = float(s.value)
                if math.isnan(value):
                    continue
                samples[series_key(s.name, s.labels)] = value
                kinds.setdefault(s.name, _kind(family.type, s.name))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise NotPrometheus(str(exc)[:200]) from None
    if not samples:
        raise NotPrometheus("no samples")
    return Parsed(samples, kinds, cut)


def detect_preset(names: Iterable[str]) -> str:
    names = list(names)
    for preset, prefix in PREFIXES.items():
        if any(n.startswith(prefix) for n in names):
            return preset
    return "generic"


def role_names(preset: str, role: str) -> tuple[str, ...]:
    return PRESETS.get(preset, {}).get(role, ())


def _role_value(samples: dict[str, float], names: tuple[str, ...]) -> float | None:
    """The sum over a role's series (labels such as model_name or finished_reason split them); a name
    written `a+b` is the sum of both, and counts only where both are there."""
    for name in names:
        total = 0.0
        for part in name.split("+"):
            values = [v for k, v in samples.items() if k == part or k.startswith(part + "{")]
            if not values:
                break
            total += sum(values)
        else:
            return total
    return None


def role_gauges(samples: dict[str, float], preset: str) -> dict[str, float]:
    """running / waiting / kv_usage of one scrape, where the preset knows them."""
    out = {}
    for role in GAUGE_ROLES:
        value = _role_value(samples, role_names(preset, role))
        if value is not None:
            out[role] = value
    return out


def counter_delta(values: list[float]) -> float:
    """Increase over a run, counting a drop as a restart of the counter (as Prometheus' increase())."""
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after - before if after >= before else after
    return total


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile over cumulative (le, count) pairs: linear inside the bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_le
            if count == lower_count:
                return le
            return lower_le + (le - lower_le) * (rank - lower_count) / (count - lower_count)
        lower_le, lower_count = le, count
    return buckets[-1][0]


def _histograms(first: dict[str, float], last: dict[str, float], kinds: dict[str, str]) -> dict[str, Any]:
    """Server-side quantiles from bucket increases between the first and last scrape."""
    grouped: dict[str, dict[float, float]] = {}
    for key, value in last.items():
        name, labels = split_key(key)
        if not name.endswith("_bucket") or kinds.get(name) != "histogram" or "le" not in labels:
            continue
        le = float(labels.pop("le"))
        base = series_key(name[: -len("_bucket")], labels)
        grouped.setdefault(base, {})[le] = value - first.get(key, 0.0)
    out: dict[str, Any] = {}
    for base, by_le in grouped.items():
        buckets = sorted(by_le.items())
        count = buckets[-1][1] if buckets else 0.0
        name, labels = split_key(base)
        sum_key = series_key(name + "_sum", labels)
        total = last.get(sum_key, 0.0) - first.get(sum_key, 0.0)
        out[base] = {"count": count, "mean": (total / count) if count else None,
                     **{f"p{int(q * 100)}": _quantile(buckets, q) for q in (0.5, 0.9, 0.95, 0.99)}}
    return out


def _gauges(lines: list[dict[str, Any]], kinds: dict[str, str]) -> dict[str, dict[str, float]]:
    series: dict[str, list[float]] = {}
    for line in lines:
        for key, value in line["samples"].items():
            if kinds.get(split_key(key)[0]) == "gauge":
                series.setdefault(key, []).append(value)
    return {k: {"min": min(v), "mean": sum(v) / len(v), "max": max(v), "last": v[-1]} for k, v in series.items()}


def _counters(lines: list[dict[str, Any]], kinds: dict[str, str]) -> dict[str, float]:
    series: dict[str, list[float]] = {}
    for line in lines:
        for key, value in line["samples"].items():
            name = split_key(key)[0]
            if kinds.get(name) == "counter" or (kinds.get(name) == "histogram" and not name.endswith("_bucket")):
                # A labelled series born during the run (its first finished_reason="length", say)
                # started from zero: its first value is an increase too.
                series.setdefault(key, [] if key in lines[0]["samples"] else [0.0]).append(value)
    return {k: counter_delta(v) for k, v in series.items()}


def reconcile(counters: dict[str, float], preset: str, client: dict[str, Any]) -> dict[str, Any]:
    """Each count both sides know, side by side; `match` is exact equality (counts, not estimates)."""
    out: dict[str, Any] = {}
    for role in COUNTER_ROLES:
        names = role_names(preset, role)
        if not names or client.get(role) is None:
            continue
        server = _role_value(counters, names)
        if server is None:
            continue
        mine = client[role]
        entry: dict[str, Any] = {"client": mine, "server": server, "match": abs(server - mine) < 0.5,
                                 "difference": server - mine}
        if role in ("output_tokens", "input_tokens") and client.get("usage_missing"):
            entry["match"] = None  # the client's count is partly estimated: equality would mean nothing
            entry["note"] = f"{client['usage_missing']} responses had no server usage; the client count is incomplete"
        out[role] = entry
    return out


def summarize_server(lines: list[dict[str, Any]], url: str, preset_hint: str | None,
                     client: dict[str, Any]) -> dict[str, Any]:
    """candidates.NAME.server from one candidate's scrape lines (server_metrics.jsonl)."""
    ok = [line for line in lines if line.get("ok")]
    failures: dict[str, int] = {}
    for line in lines:
        if not line.get("ok"):
            failures[line.get("error") or "unknown"] = failures.get(line.get("error") or "unknown", 0) + 1
    kinds: dict[str, str] = {}
    for line in ok:
        kinds.update(line.get("kinds") or {})
    preset = preset_hint if preset_hint not in (None, "auto") else detect_preset(kinds)
    out: dict[str, Any] = {
        "url": url, "preset": preset,
        "scrapes": {"count": len(lines), "ok": len(ok), "failures": dict(sorted(failures.items())),
                    "series_cut": sum(line.get("cut", 0) for line in ok)},
        "window_s": [ok[0]["t_s"], ok[-1]["t_s"]] if ok else None,
        "counters": {}, "gauges": {}, "histograms": {}, "roles": {}, "reconciliation": {}, "caveats": [],
    }
    per_scrape = [(line["t_s"], role_gauges(line["samples"], preset)) for line in ok]  # once per scrape
    out["timeline"] = _timeline(per_scrape)
    if len(ok) < 2:
        out["caveats"].append("fewer than two good scrapes: no deltas over the run"
                              + (f" (failures: {', '.join(f'{k} x{v}' for k, v in failures.items())})" if failures else ""))
        return out
    out["counters"] = _counters(ok, kinds)
    out["gauges"] = _gauges(ok, kinds)
    out["histograms"] = _histograms(ok[0]["samples"], ok[-1]["samples"], kinds)
    roles: dict[str, Any] = {}
    for role in GAUGE_ROLES:
        values = [g[role] for _, g in per_scrape if role in g]
        if values:
            roles[role] = {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}
    out["roles"] = roles
    out["reconciliation"] = reconcile(out["counters"], preset, client)
    if lines[0].get("phase") != "before" or not lines[0].get("ok"):
        out["caveats"].append("the scrape before the first request failed: the server's counts start late")
    if lines[-1].get("phase") != "after" or not lines[-1].get("ok"):
        out["caveats"].append("the scrape after the last response failed: the server's counts end early")
    for role, entry in out["reconciliation"].items():
        if entry["match"] is False:
            out["caveats"].append(
                f"{role}: the server counted {entry['server']:g}, the client {entry['client']:g} "
                f"({entry['difference']:+g}): someone else is using the server, requests the client gave up on "
                "were still processed, or a count is wrong")
    return out


def client_tally(candidate: dict[str, Any]) -> dict[str, Any]:
    """What the client counted for one candidate over the whole run (warm-up included), from summary.json."""
    req = candidate.get("requests") or {}
    usage = (candidate.get("tokens") or {}).get("run_server_usage") or {}
    return {"requests": req.get("ok"), "requests_sent": req.get("sent"),
            "output_tokens": usage.get("output"), "input_tokens": usage.get("input"),
            "usage_missing": max((req.get("ok") or 0) - (usage.get("responses") or 0), 0)}


def gauge_timeline(lines: list[dict[str, Any]], preset: str) -> list[tuple[float, dict[str, float]]]:
    """(t_s, {role: value}) per good scrape, for the report's server chart."""
    return [(line["t_s"], role_gauges(line["samples"], preset)) for line in lines if line.get("ok")]


def read_scrapes(path: Path) -> dict[str, list[dict[str, Any]]]:
    """server_metrics.jsonl, per candidate, in time order; unreadable lines are skipped."""
    out: dict[str, list[dict[str, Any]]] = {}
    if not path.exists():
        return out
    with open(path, "rb") as f:
        for raw in f:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a line cut by a crash: the others still count
            if isinstance(line, dict) and "candidate" in line and isinstance(line.get("t_s"), (int, float)):
                out.setdefault(line["candidate"], []).append(line)
    for lines in out.values():
        lines.sort(key=lambda line: line["t_s"])
    return out


TIMELINE_POINTS = 240  # at most, per candidate: enough for a chart, small in summary.json


def _thin(points: list[Any]) -> list[Any]:
    step = max(1, math.ceil(len(points) / TIMELINE_POINTS))
    return points[::step]


def _timeline(per_scrape: list[tuple[float, dict[str, float]]]) -> dict[str, list[Any]]:
    """running / waiting / kv_usage at each good scrape, thinned for a chart."""
    points = _thin(per_scrape)
    out: dict[str, list[Any]] = {"t_s": [round(t, 3) for t, _ in points]}
    for role in GAUGE_ROLES:
        if any(role in g for _, g in points):
            out[role] = [g.get(role) for _, g in points]
    return out


def client_p95_timeline(run_dir: Path, names: set[str], bucket_s: float) -> dict[str, list[tuple[float, float]]]:
    """Per candidate, the p95 latency (from the intended time) of the requests that finished in each
    time bucket: the client's side of the server chart, from results.jsonl."""
    from ..pacing.results_log import iter_results

    buckets: dict[str, dict[int, list[float]]] = {n: {} for n in names}
    path = run_dir / "results.jsonl"
    if path.exists():
        for _, r, _ in iter_results(path):
            if r is None or r.candidate not in buckets or r.status != "ok" or r.done_ns < 0:
                continue
            buckets[r.candidate].setdefault(int(r.done_ns / 1e9 // bucket_s), []).append((r.done_ns - r.intended_ns) / 1e9)
    out: dict[str, list[tuple[float, float]]] = {}
    for name, by_bucket in buckets.items():
        points = []
        for index in sorted(by_bucket):
            points.append(((index + 0.5) * bucket_s, nearest_rank(by_bucket[index], 0.95)))
        out[name] = _thin(points)
    return out


def add_server_side(summary: dict[str, Any], run_dir: Path, meta: dict[str, Any]) -> None:
    """candidates.NAME.server for every candidate whose server was scraped, and validity notes for
    counts the two sides disagree on (in place)."""
    scrapes = read_scrapes(run_dir / "server_metrics.jsonl")
    notes: list[str] = []
    configs = {name: ((meta.get("candidates") or {}).get(name) or {}).get("server_metrics")
               for name in summary.get("candidates") or {}}
    scraped = {name for name, config in configs.items() if config}
    if not scraped:
        return
    span_s = max((line["t_s"] for name in scraped for line in scrapes.get(name, [])), default=0.0)
    bucket_s = max(min(float(configs[n].get("interval_s") or 1.0) for n in scraped), span_s / 120, 0.25)
    client = client_p95_timeline(run_dir, scraped, bucket_s)
    for name in scraped:
        cand, config = summary["candidates"][name], configs[name]
        server = summarize_server(scrapes.get(name, []), config.get("url") or "", config.get("preset"), client_tally(cand))
        server["timeline"]["client_p95_s"] = [[round(t, 3), v] for t, v in client.get(name, [])]
        cand["server"] = server
        notes += [f"{name}: {c}" for c in server["caveats"] if "counted" in c]
    if notes:
        validity = summary.setdefault("validity", {})
        validity["notes"] = list(validity.get("notes") or []) + notes


__all__ = [
    "PRESETS",
    "NotPrometheus",
    "Parsed",
    "add_server_side",
    "client_tally",
    "counter_delta",
    "detect_preset",
    "gauge_timeline",
    "parse_exposition",
    "read_scrapes",
    "reconcile",
    "role_gauges",
    "series_key",
    "split_key",
    "summarize_server",
]
