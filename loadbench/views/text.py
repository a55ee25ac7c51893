"""Console views of a summary: the side-by-side comparison table (pure string building)."""

from __future__ import annotations

from typing import Any

from ..stats.decision import slo_verdict
from .fidelity_view import fidelity_lines

MIN_N_FOR = {"p50": 20, "p90": 100, "p95": 200, "p99": 1000, "p999": 10000}


def fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f}us"
    if value < 1.0:
        return f"{value * 1e3:.1f}ms"
    return f"{value:.2f}s"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def _pct(stats: dict[str, Any], key: str) -> str:
    v = stats.get(key)
    if v is None:
        return "-"
    n = stats.get("count") or 0
    flag = "*" if n < MIN_N_FOR.get(key, 1) else ""
    return fmt_s(v) + flag


def comparison_rows(summary: dict[str, Any]) -> list[tuple[str, list[str]]]:
    cands = summary["candidates"]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, fn: Any) -> None:
        rows.append((label, [fn(c) for c in cands.values()]))

    # The run's counts include warm-up; accuracy, latency and the error ratio are of the
    # measurement window: show both counts so the two never seem to disagree.
    row("requests sent: all / measured", lambda c: f'{c["requests"]["sent"]} / {c["window"]["sent"]}')
    row("ok / errors (all)", lambda c: f'{c["requests"]["ok"]} / {c["requests"]["error_total"]}')
    row("error ratio", lambda c: "-" if c["error_ratio"] is None else f'{100 * c["error_ratio"]:.1f}%')
    row("dropped / cancelled", lambda c: f'{c["requests"]["dropped"]} / {c["requests"]["cancelled"]}')
    row("offered / achieved qps", lambda c: f'{fmt_rate(c["offered_rate_qps"])} / {fmt_rate(c["achieved_rate_qps"])}')
    row("throughput rps (ok)", lambda c: fmt_rate(c["throughput_rps"]))
    for key in ("p50", "p95", "p99"):
        row(f"latency {key}", lambda c, k=key: _pct(c["latency_s"], k))
    row("latency max", lambda c: fmt_s(c["latency_s"]["max"]))
    row("service time p50 / p99", lambda c: f'{_pct(c["service_time_s"], "p50")} / {_pct(c["service_time_s"], "p99")}')
    row("TTFT p50 / p95", lambda c: f'{_pct(c["ttft_s"], "p50")} / {_pct(c["ttft_s"], "p95")}')
    row("ITL p50 / p99", lambda c: f'{_pct(c["itl_s"], "p50")} / {_pct(c["itl_s"], "p99")}')
    row("TPOT p50", lambda c: _pct(c["tpot_s"], "p50"))
    row("schedule lag p50 / p99", lambda c: f'{_pct(c["schedule_lag_s"], "p50")} / {_pct(c["schedule_lag_s"], "p99")}')
    row("tokens in / out", lambda c: f'{c["tokens"]["input"]} / {c["tokens"]["output"]} ({c["tokens"]["source"]})')
    row("cost per request", lambda c: fmt_usd(c["cost_usd"]["per_request"]))
    row("cost (window)", lambda c: fmt_usd(c["cost_usd"]["total"]))
    if any(c.get("accuracy") for c in cands.values()):
        quality_rows = [
            ("accuracy [95% CI]", [_accuracy(c.get("accuracy")) for c in cands.values()]),
            ("accuracy over attempts", [_attempted(c.get("accuracy")) for c in cands.values()]),
            ("pass / fail / unscored / skipped", [_counts(c.get("accuracy")) for c in cands.values()]),
            ("cost per correct", [fmt_usd(c["cost_usd"].get("per_correct")) for c in cands.values()]),
        ]
        rows[0:0] = quality_rows
    return rows


def _rate_ci(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}% [{100 * ci[0]:.0f}-{100 * ci[1]:.0f}]" if ci else f"{100 * value:.1f}%"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


Table = tuple[str, list[str], list[tuple[str, list[str]]]]


def session_tables(summary: dict[str, Any]) -> list[Table]:
    """Sessions, agentic tasks, and results by turn and by step, when the run had them."""
    cands = summary["candidates"]
    names = list(cands)
    views = {n: c.get("sessions") or {} for n, c in cands.items()}
    tables: list[Table] = []

    def block(key: str, title: str, extra: list[tuple[str, Any]]) -> None:
        if not any(v.get(key) for v in views.values()):
            return
        rows: list[tuple[str, list[str]]] = []

        def row(label: str, fn: Any) -> None:
            rows.append((label, [fn(views[n].get(key) or {}) for n in names]))

        row("sessions" if key == "sessions" else "tasks", lambda t: str(t.get("sessions", "-")))
        row("passed (every turn) [95% CI]" if key == "sessions" else "passed (trajectory and answer) [95% CI]",
            lambda t: _rate_ci(t.get("pass_rate"), t.get("pass_rate_ci")))
        row("requests per session" if key == "sessions" else "requests per task", lambda t: _num(t.get("requests_per_session")))
        row("started per second", lambda t: _num(t.get("sessions_per_s")))
        row("goodput (passed, on time) /s", lambda t: _num(t.get("goodput_per_s")))
        for label, fn in extra:
            row(label, fn)
        row("duration p50 / p95", lambda t: f'{_pct(t.get("duration_s") or {}, "p50")} / {_pct(t.get("duration_s") or {}, "p95")}')
        row("cost per session" if key == "sessions" else "cost per task", lambda t: fmt_usd(t.get("cost_per_session_usd")))
        tables.append((title, ["", *names], rows))

    block("sessions", "multi-turn sessions", [])
    block("tasks", "agentic tasks", [
        ("steps / tool calls (mean)", lambda t: f'{_num(t.get("steps_mean"))} / {_num(t.get("tool_calls_mean"))}'),
        ("retry rate (repeat after an error)", lambda t: _num(t.get("retry_rate"), "{:.1%}")),
        ("stopped by itself", lambda t: _num(t.get("stopped_by_itself"), "{:.1%}")),
        ("hit max_steps", lambda t: str(t.get("max_steps_hit", "-"))),
    ])
    for key, title, label in (("by_turn", "by turn (accuracy, latency p95, input tokens / cached)", "turn"),
                              ("by_step", "agentic tasks by step (requests, latency p50 / p95)", "step")):
        positions = sorted({k for v in views.values() for k in (v.get(key) or {})}, key=lambda k: int(k.rstrip("+")))
        if not positions:
            continue
        rows = []
        for pos in positions:
            cells = []
            for n in names:
                p = (views[n].get(key) or {}).get(pos)
                if not p:
                    cells.append("-")
                elif key == "by_turn":
                    acc = "-" if p["accuracy"] is None else f'{100 * p["accuracy"]:.0f}%'
                    cells.append(f'{acc} · {_pct(p["latency_s"], "p95")} · {_num(p["input_tokens_mean"], "{:.0f}")}'
                                 f' / {_num(p["cached_tokens_mean"], "{:.0f}")}')
                else:
                    cells.append(f'{p["requests"]} · {_pct(p["latency_s"], "p50")} / {_pct(p["latency_s"], "p95")}')
            rows.append((f"{label} {pos}", cells))
        tables.append((title, ["", *names], rows))
    return tables


def session_text(summary: dict[str, Any]) -> str:
    return "\n\n".join(f"{title}\n{render_table(headers, rows)}" for title, headers, rows in session_tables(summary))


def _attempted(acc: dict[str, Any] | None) -> str:
    if not acc or acc.get("attempted_value") is None:
        return "-"
    return f'{100 * acc["attempted_value"]:.1f}%'


def _counts(acc: dict[str, Any] | None) -> str:
    if not acc:
        return "-"
    return f'{acc["pass"]} / {acc["fail"]} / {acc["unscored"]} / {acc["skipped"]}'


def quality_details(summary: dict[str, Any], top: int = 4) -> str:
    """Error classes per candidate and the paired comparisons, in plain lines."""
    lines = []
    for name, c in summary["candidates"].items():
        classes = c.get("quality_error_classes") or {}
        if classes:
            shown = ", ".join(f"{k} {v}" for k, v in list(classes.items())[:top])
            more = f" (+{len(classes) - top} more)" if len(classes) > top else ""
            lines.append(f"  {name}: {shown}{more}")
    out = []
    if lines:
        out.append("quality error classes (most frequent):")
        out += lines
    for cmp in summary.get("comparisons") or []:
        if cmp.get("diff") is None:
            continue
        sig = "significant" if cmp["p_value"] < 0.05 else "not significant"
        out.append(
            f"{cmp['a']} vs {cmp['b']}: accuracy difference {100 * cmp['diff']:+.1f} points "
            f"[{100 * cmp['ci_low']:+.1f}, {100 * cmp['ci_high']:+.1f}] on {cmp['n']} paired requests, "
            f"McNemar p={cmp['p_value']:.3g} ({sig} at 5%)"
        )
    return "\n".join(out)


def _accuracy(acc: dict[str, Any] | None) -> str:
    if not acc or acc.get("value") is None:
        return "-"
    return f'{100 * acc["value"]:.1f}% [{100 * acc["ci_low"]:.0f}-{100 * acc["ci_high"]:.0f}]'


def render_table(headers: list[str], rows: list[tuple[str, list[str]]]) -> str:
    widths = [max(len(headers[0]), *(len(label) for label, _ in rows))]
    for j in range(1, len(headers)):
        widths.append(max(len(headers[j]), *(len(cells[j - 1]) for _, cells in rows)))
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for label, cells in rows:
        lines.append("  ".join([label.ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells, widths[1:])]))
    return "\n".join(lines)


def comparison_table(summary: dict[str, Any]) -> str:
    headers = ["", *summary["candidates"].keys()]
    out = render_table(headers, comparison_rows(summary))
    mode = summary.get("mode", "open-loop")
    load = summary.get("load", {})
    head = f"run {summary.get('run_id')}  ({mode}"
    trace = summary.get("trace")
    if trace:
        lags = [c["schedule_lag_s"].get("p99") for c in summary["candidates"].values() if c["schedule_lag_s"].get("p99") is not None]
        head += (f", trace replay of {trace['rows']} rows over {trace['span_s']:.1f}s at {trace['time_scale']:g}x speed"
                 + (f", schedule lag p99 {fmt_s(max(lags))}" if lags else ""))
    elif mode == "open-loop":
        head += f", {load.get('arrival')} {load.get('rate_qps')} qps"
    else:
        head += f", {load.get('concurrency')} users"
    head += f", warm-up {load.get('warmup_s', 0)}s excluded)"
    foot = ("latency = from the intended send time; service time = from the actual send; "
            "* = too few samples for that percentile (p50 < 20, p90 < 100, p95 < 200, p99 < 1000, p99.9 < 10000)")
    insecure = [n for n, c in summary["candidates"].items() if c.get("tls_verify") is False]
    if insecure:
        foot += f"\nWARNING: TLS certificate verification was OFF (insecure: true) for: {', '.join(insecure)}"
    outcome = summary.get("outcome", {})
    if outcome.get("stop_reason") not in (None, "completed"):
        foot += f"\nrun stopped early: {outcome['stop_reason']}"
    details = quality_details(summary)
    sessions = session_text(summary)
    server = server_text(summary)
    fidelity = "\n".join(fidelity_lines(summary))
    text = (f"{head}\n{out}\n{foot}" + (f"\n\n{sessions}" if sessions else "") + (f"\n\n{server}" if server else "")
            + (f"\n\n{details}" if details else "") + (f"\n\n{fidelity}" if fidelity else ""))
    verdicts = verdict_lines(summary)
    return text + (f"\n\n{verdicts}" if verdicts else "")


def server_text(summary: dict[str, Any]) -> str:
    """One line per candidate whose own /metrics were scraped: its peak queue and KV use, and
    whether its counts agree with the client's."""
    lines = []
    for name, cand in summary["candidates"].items():
        server = cand.get("server")
        if not server:
            continue
        roles = server.get("roles") or {}
        parts = [f"{label} max {roles[role]['max']:g}" for role, label in (("running", "running"), ("waiting", "waiting"))
                 if role in roles]
        if "kv_usage" in roles:
            parts.append(f"KV cache max {100 * roles['kv_usage']['max']:.0f}%")
        rec = server.get("reconciliation") or {}
        if rec:
            off = [k.replace("_", " ") for k, e in rec.items() if e["match"] is False]
            parts.append("counts reconcile with the client" if not off and all(e["match"] for e in rec.values())
                         else f"counts DIFFER from the client's: {', '.join(off)}" if off else "counts not comparable")
        failed = server["scrapes"]["count"] - server["scrapes"]["ok"]
        if failed:
            parts.append(f"{failed} of {server['scrapes']['count']} scrapes failed")
        lines.append(f"  {name}: " + ("; ".join(parts) or "no known gauges"))
    return ("server side (the deployments' own /metrics):\n" + "\n".join(lines)) if lines else ""


def verdict_lines(summary: dict[str, Any]) -> str:
    """SLO verdicts, goodput, validity and the recommendation, in plain words."""
    lines = []
    slo = summary.get("slo") or []
    if slo:
        lines.append("SLO: " + "; ".join(slo))
    for name, c in summary["candidates"].items():
        g = c.get("goodput") or {}
        good = ""
        # goodput means "on time and correct": with nothing scored and no SLO it would only
        # restate the success rate under a name that claims more
        measured = bool(c.get("accuracy")) or bool(slo)
        if g.get("fraction") is not None and measured:
            good = f"goodput {g['rps']:.2f} req/s ({100 * g['fraction']:.1f}% of attempts on time and correct)" if g.get("rps") is not None \
                else f"goodput {100 * g['fraction']:.1f}% of attempts"
        s = c.get("slo")
        if s is None:
            if good:
                lines.append(f"  {name}: {good}")
            continue
        lines.append(f"  {name}: {_verdict_text(s)}{'; ' + good if good else ''}")
        for r in s["clauses"]:
            if r.get("verdict") in ("fail", "inconclusive"):
                lines.append(f"    {r['verdict'].upper()} {_clause_detail(r)}")
    validity = summary.get("validity") or {}
    if validity and not validity.get("valid", True):
        lines.append("RUN INVALID (the client was the bottleneck; these numbers are not findings):")
        lines += [f"  - {r}" for r in validity.get("reasons", [])]
        for name, rs in (validity.get("candidates") or {}).items():
            lines += [f"  - {name}: {r}" for r in rs]
    decision = summary.get("decision") or {}
    # with one candidate there is nothing to pick: no "Recommend X", but a run that cannot be
    # trusted or a candidate that fails still says so
    pick_of_one = len(summary["candidates"]) == 1 and str(decision.get("summary", "")).startswith("Recommend")
    if decision.get("summary") and not pick_of_one:
        lines.append(decision["summary"])
        for reason in decision.get("reasons", [])[1:]:
            lines.append(f"  + {reason}")
        for caveat in decision.get("caveats", []):
            lines.append(f"  ! {caveat}")
        if decision.get("pareto_frontier"):
            lines.append(f"  Pareto frontier (accuracy, p95 latency, cost): {', '.join(decision['pareto_frontier'])}")
    return "\n".join(lines)


def _verdict_text(s: dict[str, Any]) -> str:
    verdict = slo_verdict(s)
    conf = s.get("confidence") or 0.95
    if verdict == "pass":
        return f"meets every SLO clause ({100 * conf:.4g}% confidence)"
    if verdict == "fail":
        return "FAILS the SLO"
    more = s.get("more_samples")
    tail = f"; about {more:,} more requests would settle it" if more else ""
    return f"INCONCLUSIVE: not enough evidence to say whether it meets the SLO{tail}"


def _clause_detail(r: dict[str, Any]) -> str:
    lo, hi = r.get("ci_low"), r.get("ci_high")
    interval = ""
    if (lo, hi) != (None, None) and lo != hi:
        fmt_lo = "-" if lo is None else slo_value({**r, "measured": lo})
        fmt_hi = "unbounded" if hi is None else slo_value({**r, "measured": hi})
        interval = f", 95% interval {fmt_lo} .. {fmt_hi}"
    text = f"{r['clause']}: measured {slo_value(r)}{interval}, n={r.get('n') or 0}"
    if r.get("verdict") == "inconclusive":
        more = r.get("more_samples")
        text += f"; about {more:,} more samples would settle it" if more else "; the estimate sits on the threshold"
    return text


def slo_value(r: dict[str, Any]) -> str:
    v = r.get("measured")
    if v is None:
        return "not measured"
    if r["metric"] in ("latency", "service_time", "ttft", "ttfc", "itl", "tpot", "schedule_lag"):
        return fmt_s(v)
    if r["metric"].startswith("cost"):
        return fmt_usd(v)
    return f"{v:.4g}"
