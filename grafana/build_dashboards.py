"""Generates grafana/dashboards/*.json (run from the repo root: python grafana/build_dashboards.py).

The JSON files are committed; tests check they match this generator and that every
loadbench_* series a panel queries is in the metric contract (loadbench/metrics.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
M = 'run_id=~"$run_id", scenario=~"$scenario", candidate=~"$candidate"'
BY = "run_id, candidate"


def variables() -> list[dict[str, Any]]:
    # Shaped as Grafana's own Dashboard type (@grafana/schema) has them: `current` with text and
    # value (empty: Grafana picks on load), `allValue` only where "All" is offered, no `definition`.
    unset = {"text": "", "value": ""}

    def query(name: str, label: str, expr: str, *, multi: bool, include_all: bool) -> dict[str, Any]:
        var: dict[str, Any] = {
            "name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": expr, "refId": f"{name}-var"},
            "refresh": 2, "sort": 2 if name == "run_id" else 1, "multi": multi, "includeAll": include_all,
            "current": dict(unset), "options": [], "hide": 0,
        }
        if include_all:
            var["allValue"] = ".*"
        return var

    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": dict(unset),
         "hide": 0, "refresh": 1, "options": []},
        query("run_id", "Run", "label_values(loadbench_run_info, run_id)", multi=True, include_all=False),
        query("scenario", "Scenario", 'label_values(loadbench_run_info{run_id=~"$run_id"}, scenario)', multi=True, include_all=True),
        query("candidate", "Candidate", 'label_values(loadbench_run_info{run_id=~"$run_id"}, candidate)', multi=True, include_all=True),
    ]


class Layout:
    def __init__(self) -> None:
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.panels: list[dict[str, Any]] = []
        self.next_id = 1

    def row(self, title: str) -> None:
        self.newline()
        self.panels.append({"type": "row", "title": title, "id": self.next_id, "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.next_id += 1
        self.y += 1

    def newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self.newline()
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)


def target(expr: str, legend: str = "{{candidate}}", ref: str = "A", *, instant: bool = False, table: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend, "range": not instant, "instant": instant}
    if table:
        t["format"] = "table"
    return t


def timeseries(title: str, description: str, unit: str, targets: list[dict[str, Any]], *, decimals: int | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit, "custom": {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 5, "spanNulls": True}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"type": "timeseries", "title": title, "description": description, "datasource": DS, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def instant_table(title: str, description: str, columns: list[tuple[str, str, str]],
                  sort_by: str | None = None) -> dict[str, Any]:
    """One row per run and candidate: instant queries merged into columns (label, expr, unit)."""
    refs = [chr(ord("A") + i) for i in range(len(columns))]
    transformations: list[dict[str, Any]] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {"run_id": "Run", "candidate": "Candidate"}}},
    ]
    if sort_by:
        transformations.append({"id": "sortBy", "options": {"sort": [{"field": sort_by}]}})
    overrides = [{"matcher": {"id": "byName", "options": f"Value #{ref}"},
                  "properties": [{"id": "displayName", "value": label}, {"id": "unit", "value": unit}]}
                 for ref, (label, _, unit) in zip(refs, columns)]
    return {
        "type": "table", "title": title, "description": description, "datasource": DS,
        "targets": [target(expr, "", ref, instant=True, table=True) for ref, (_, expr, _) in zip(refs, columns)],
        "transformations": transformations,
        "fieldConfig": {"defaults": {"unit": "short", "decimals": 3}, "overrides": overrides},
        "options": {"showHeader": True},
    }


def comparison_table() -> dict[str, Any]:
    columns = [
        ("Accuracy", f"max by ({BY}) (loadbench_eval_accuracy_ratio{{{M}}})", "percentunit"),
        ("Accuracy CI low", f"max by ({BY}) (loadbench_eval_accuracy_ci_lower_ratio{{{M}}})", "percentunit"),
        ("Accuracy CI high", f"max by ({BY}) (loadbench_eval_accuracy_ci_upper_ratio{{{M}}})", "percentunit"),
        ("Latency p50", f'max by ({BY}) (loadbench_hdr_request_duration_seconds{{{M}, quantile="0.5"}})', "s"),
        ("Latency p95", f'max by ({BY}) (loadbench_hdr_request_duration_seconds{{{M}, quantile="0.95"}})', "s"),
        ("Latency p99", f'max by ({BY}) (loadbench_hdr_request_duration_seconds{{{M}, quantile="0.99"}})', "s"),
        ("TTFT p50", f'max by ({BY}) (loadbench_hdr_time_to_first_token_seconds{{{M}, quantile="0.5"}})', "s"),
        ("TTFT p95", f'max by ({BY}) (loadbench_hdr_time_to_first_token_seconds{{{M}, quantile="0.95"}})', "s"),
        ("TTFT p99", f'max by ({BY}) (loadbench_hdr_time_to_first_token_seconds{{{M}, quantile="0.99"}})', "s"),
        ("ITL p50", f"histogram_quantile(0.5, sum by (le, {BY}) (increase(loadbench_inter_token_latency_seconds_bucket{{{M}}}[$__range])))", "s"),
        ("Achieved QPS", f"sum by ({BY}) (increase(loadbench_requests_sent_total{{{M}}}[$__range])) / $__range_s", "reqps"),
        ("Error %", f'sum by ({BY}) (increase(loadbench_requests_total{{{M}, outcome!~"ok|cancelled"}}[$__range])) '
                    f"/ clamp_min(sum by ({BY}) (increase(loadbench_requests_total{{{M}}}[$__range])), 1)", "percentunit"),
        ("Correct answers/s", f'sum by ({BY}) (increase(loadbench_eval_answers_total{{{M}, verdict="pass"}}[$__range])) / $__range_s', "reqps"),
        ("Goodput", f"sum by ({BY}) (increase(loadbench_good_requests_total{{{M}}}[$__range])) / $__range_s", "reqps"),
        ("Good fraction", f"max by ({BY}) (loadbench_goodput_ratio{{{M}}})", "percentunit"),
        ("Cost per task", f"sum by ({BY}) (increase(loadbench_cost_dollars_total{{{M}}}[$__range])) "
                          f'/ clamp_min(sum by ({BY}) (increase(loadbench_requests_total{{{M}, outcome="ok"}}[$__range])), 1)', "currencyUSD"),
        ("Cost per correct", f"sum by ({BY}) (increase(loadbench_cost_dollars_total{{{M}}}[$__range])) "
                             f'/ clamp_min(sum by ({BY}) (increase(loadbench_eval_answers_total{{{M}, verdict="pass"}}[$__range])), 1)', "currencyUSD"),
    ]
    return instant_table(
        "Candidate comparison",
        "One row per run and candidate. Accuracy and its Wilson 95% interval over the measurement window; "
        "latency and TTFT percentiles are exact (merged HDR histograms of the measurement window); ITL, "
        "achieved rate, errors, correct answers per second, goodput and cost over the selected time range.",
        columns,
    )


def comparison_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.row("Comparison")
    lay.add(comparison_table(), 24, 8)
    lay.row("Quality")
    lay.add(timeseries("Accuracy", "pass / (pass + fail) over the measurement window so far, with its Wilson 95% interval.", "percentunit", [
        target(f"loadbench_eval_accuracy_ratio{{{M}}}", "{{candidate}}"),
        target(f"loadbench_eval_accuracy_ci_lower_ratio{{{M}}}", "{{candidate}} CI low", "B"),
        target(f"loadbench_eval_accuracy_ci_upper_ratio{{{M}}}", "{{candidate}} CI high", "C"),
    ]), 12, 8)
    lay.add(timeseries("Goodput", "Requests per second that are on time by every latency SLO and pass scoring (the scenario's slo: list).", "reqps", [
        target(f"sum by (candidate) (rate(loadbench_good_requests_total{{{M}}}[$__rate_interval]))")]), 12, 8)
    lay.add(timeseries("Quality error classes", "Failed or unscored answers by scorer and error class (measurement window, cumulative).", "short", [
        target(f"sum by (candidate, scorer, error_class) (loadbench_eval_errors_total{{{M}}})", "{{candidate}} {{scorer}} {{error_class}}"),
    ]), 12, 8)
    lay.row("Sessions and agent tasks")
    lay.add(timeseries("Session and task pass rate", "Multi-turn conversations whose every turn passed, and agentic tasks whose trajectory and "
                       "final answer passed, over those finished so far (empty until a run has sessions or tasks).", "percentunit", [
        target(f'sum by (candidate, kind) (loadbench_sessions_total{{{M}, outcome="passed"}}) / '
               f'sum by (candidate, kind) (loadbench_sessions_total{{{M}, outcome=~"passed|failed"}})', "{{candidate}} {{kind}}"),
    ]), 12, 8)
    lay.add(timeseries("Sessions and tasks finished", "Finished conversations and agentic tasks per second by outcome "
                       "(incomplete: cut by the end of the run).", "reqps", [
        target(f"sum by (candidate, kind, outcome) (rate(loadbench_sessions_total{{{M}}}[$__rate_interval]))", "{{candidate}} {{kind}} {{outcome}}"),
    ]), 12, 8)
    lay.row("Latency")
    for title, metric, q, desc in (
        ("Latency p95 (from intended send)", "loadbench_request_duration_seconds", 0.95,
         "Headline latency per candidate, measured from the intended send time (coordinated-omission free); live, from Prometheus buckets."),
        ("Time to first token p95", "loadbench_time_to_first_token_seconds", 0.95, "First output-bearing chunk minus the intended send time."),
        ("Inter-token latency p50", "loadbench_inter_token_latency_seconds", 0.5, "Gaps between output-bearing chunks."),
        ("Time per output token p50", "loadbench_time_per_output_token_seconds", 0.5, "(last - first chunk) / (output tokens - 1), per request."),
    ):
        lay.add(timeseries(title, desc, "s", [target(
            f"histogram_quantile({q}, sum by (le, candidate) (rate({metric}_bucket{{{M}}}[$__rate_interval])))")]), 12, 8)
    lay.add(timeseries("Service time p95 (from actual send)", "What a closed-loop tool would report; the gap to the headline latency is time spent waiting on the client side.", "s", [
        target(f"histogram_quantile(0.95, sum by (le, candidate) (rate(loadbench_request_service_duration_seconds_bucket{{{M}}}[$__rate_interval])))")]), 12, 8)
    lay.add(timeseries("Exact latency percentiles (HDR)", "Exact percentiles of the measurement window from merged HDR histograms; per candidate, never averaged.", "s", [
        target(f"loadbench_hdr_request_duration_seconds{{{M}}}", "{{candidate}} p{{quantile}}")]), 12, 8)
    lay.row("Server side")
    lay.add(timeseries("Server: requests running and waiting", "The deployment's own gauges (server_metrics: vLLM, SGLang, "
                       "llama.cpp, TGI): requests in the batch and requests queued for a slot. Waiting that grows while "
                       "latency bends means the server is queueing.", "short", [
        target(f"max by (candidate) (loadbench_server_requests_running{{{M}}})", "{{candidate}} running"),
        target(f"max by (candidate) (loadbench_server_requests_waiting{{{M}}})", "{{candidate}} waiting", "B"),
    ]), 8, 8)
    lay.add(timeseries("Server: KV-cache usage", "The deployment's KV-cache usage (1 = full): near 1, the server "
                       "preempts or defers requests.", "percentunit", [
        target(f"max by (candidate) (loadbench_server_kv_cache_usage_ratio{{{M}}})")]), 8, 8)
    lay.add(timeseries("Client latency p95 beside the server", "The headline latency again, beside the server's gauges.", "s", [
        target(f"histogram_quantile(0.95, sum by (le, candidate) (rate(loadbench_request_duration_seconds_bucket{{{M}}}[$__rate_interval])))")]), 8, 8)
    lay.row("Fidelity: format variants")
    lay.add(timeseries("Accuracy by format variant", "The same items asked another way (options shuffled, no options, "
                       "JSON answer, noise, masked-option probe): a large spread is format sensitivity; a drop under "
                       "shuffling is a contamination signal (docs/fidelity.md).", "percentunit", [
        target(f'sum by (candidate, variant) (loadbench_eval_variant_answers_total{{{M}, verdict="pass"}}) / '
               f'sum by (candidate, variant) (loadbench_eval_variant_answers_total{{{M}, verdict=~"pass|fail"}})',
               "{{candidate}} {{variant}}")]), 24, 8)
    lay.row("Load and errors")
    lay.add(timeseries("Offered vs achieved rate", "Configured arrival rate and the rate requests were actually sent.", "reqps", [
        target(f"max by (candidate) (loadbench_offered_rate_requests_per_second{{{M}}})", "{{candidate}} offered"),
        target(f"sum by (candidate) (rate(loadbench_requests_sent_total{{{M}}}[$__rate_interval]))", "{{candidate}} achieved", "B"),
    ]), 12, 8)
    lay.add(timeseries("Errors by class", "Failed requests per second by error class.", "reqps", [
        target(f'sum by (candidate, outcome) (rate(loadbench_requests_total{{{M}, outcome!~"ok|cancelled"}}[$__rate_interval]))', "{{candidate}} {{outcome}}"),
    ]), 12, 8)
    lay.add(timeseries("In flight", "Requests sent (or waiting for a slot) and not finished.", "short", [
        target(f"sum by (candidate) (loadbench_requests_in_flight{{{M}}})")]), 12, 8)
    lay.add(timeseries("Dropped and cancelled", "Requests not sent (max_in_flight with on_saturation: drop) and requests cancelled at stop.", "reqps", [
        target(f"sum by (candidate) (rate(loadbench_requests_dropped_total{{{M}}}[$__rate_interval]))", "{{candidate}} dropped"),
        target(f'sum by (candidate) (rate(loadbench_requests_total{{{M}, outcome="cancelled"}}[$__rate_interval]))', "{{candidate}} cancelled", "B"),
    ]), 12, 8)
    lay.row("Tokens and cost")
    lay.add(timeseries("Tokens per second", "Input, output and cached input tokens per second.", "short", [
        target(f"sum by (candidate, type) (rate(loadbench_tokens_total{{{M}}}[$__rate_interval]))", "{{candidate}} {{type}}")]), 12, 8)
    lay.add(timeseries("Cost per second", "Estimated candidate spend (tokens x pricing) and judge spend, USD per second.", "currencyUSD", [
        target(f"sum by (candidate) (rate(loadbench_cost_dollars_total{{{M}}}[$__rate_interval]))", "{{candidate}} candidate"),
        target(f"sum by (candidate) (rate(loadbench_judge_cost_dollars_total{{{M}}}[$__rate_interval]))", "{{candidate}} judge", "B"),
    ]), 12, 8)
    lay.row("Driver health")
    lay.add(timeseries("Schedule lag p99", "Actual minus intended send time. Near zero when the client keeps up; growth means the client (or its in-flight cap) is the bottleneck.", "s", [
        target(f"histogram_quantile(0.99, sum by (le, candidate) (rate(loadbench_schedule_lag_seconds_bucket{{{M}}}[$__rate_interval])))")]), 12, 8)
    lay.add(timeseries("Event-loop lag p99", "Overshoot of a 5 ms sleep on the sending event loop.", "s", [
        target('histogram_quantile(0.99, sum by (le, run_id) (rate(loadbench_event_loop_lag_seconds_bucket{run_id=~"$run_id", scenario=~"$scenario"}[$__rate_interval])))',
               "{{run_id}}")]), 12, 8)
    lay.add(timeseries("HDR overflows", "Values outside the HDR histogram range (should stay 0).", "short", [
        target(f"sum by (candidate) (loadbench_hdr_overflow_total{{{M}}})")]), 12, 6)
    lay.add(timeseries("Run phase", "1 while the run is in that phase.", "short", [
        target('max by (phase) (loadbench_run_phase{run_id=~"$run_id", scenario=~"$scenario"})', "{{phase}}")]), 12, 6)
    return dashboard("loadbench-comparison", "loadbench: candidate comparison", lay.panels,
                     "Accuracy, latency, cost and errors of candidate deployments measured on the same traffic.")


def capacity_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.row("Sweeps")
    sweep_sel = 'scenario=~"$scenario", candidate=~"$candidate"'
    table = instant_table(
        "Capacity bracket (sweeps)",
        "Per sweep and candidate: the interval that holds the true capacity at 95% confidence (low: the highest rate "
        "that passed with confidence; high: the lowest that failed; empty when no rate failed, i.e. the capacity is at "
        "least the low end), the point estimate where the SLO statistic crosses its bound, and the max sustainable rate "
        "(= low). Pushed by `loadbench sweep --pushgateway`.",
        [("Capacity low", f'max by (sweep_id, candidate) (loadbench_sweep_capacity_requests_per_second{{{sweep_sel}, bound="low"}})', "reqps"),
         ("Estimate", f'max by (sweep_id, candidate) (loadbench_sweep_capacity_requests_per_second{{{sweep_sel}, bound="estimate"}})', "reqps"),
         ("Capacity high", f'max by (sweep_id, candidate) (loadbench_sweep_capacity_requests_per_second{{{sweep_sel}, bound="high"}})', "reqps"),
         ("Max sustainable QPS", f"max by (sweep_id, candidate) (loadbench_max_sustainable_rate_requests_per_second{{{sweep_sel}}})", "reqps")],
    )
    table["transformations"][1]["options"]["renameByName"]["sweep_id"] = "Sweep"
    lay.add(table, 24, 6)
    lay.row("Latency and quality vs offered load (one point per run and candidate)")
    columns = [
        ("Offered QPS", f"max by ({BY}) (loadbench_offered_rate_requests_per_second{{{M}}})", "reqps"),
        ("Achieved QPS", f"sum by ({BY}) (increase(loadbench_requests_sent_total{{{M}}}[$__range])) / $__range_s", "reqps"),
        ("Latency p50", f'max by ({BY}) (loadbench_hdr_request_duration_seconds{{{M}, quantile="0.5"}})', "s"),
        ("Latency p95", f'max by ({BY}) (loadbench_hdr_request_duration_seconds{{{M}, quantile="0.95"}})', "s"),
        ("Latency p99", f'max by ({BY}) (loadbench_hdr_request_duration_seconds{{{M}, quantile="0.99"}})', "s"),
        ("Accuracy", f"max by ({BY}) (loadbench_eval_accuracy_ratio{{{M}}})", "percentunit"),
        ("Correct answers/s", f'sum by ({BY}) (increase(loadbench_eval_answers_total{{{M}, verdict="pass"}}[$__range])) / $__range_s', "reqps"),
        ("Goodput", f"sum by ({BY}) (increase(loadbench_good_requests_total{{{M}}}[$__range])) / $__range_s", "reqps"),
        ("Schedule lag p99", f'max by ({BY}) (loadbench_hdr_schedule_lag_seconds{{{M}, quantile="0.99"}})', "s"),
    ]
    lay.add(instant_table(
        "Runs by offered rate",
        "Each run (a sweep step or a separate run at another rate) with its offered and achieved rate, exact latency "
        "percentiles, accuracy, correct answers per second and goodput: where latency bends up and accuracy drops is the knee.",
        columns, sort_by="Offered QPS",
    ), 24, 10)
    lay.add(timeseries("Latency p95 while the offered rate changes", "Live headline p95 and the offered rate, for runs or sweep steps in the time range.", "s", [
        target(f"histogram_quantile(0.95, sum by (le, candidate) (rate(loadbench_request_duration_seconds_bucket{{{M}}}[$__rate_interval])))", "{{candidate}} p95"),
    ]), 12, 8)
    lay.add(timeseries("Offered rate", "Configured arrival rate per candidate over time (steps of a sweep).", "reqps", [
        target(f"max by (candidate) (loadbench_offered_rate_requests_per_second{{{M}}})")]), 12, 8)
    lay.add(timeseries("Accuracy while the offered rate changes", "Does quality degrade under load (timeouts, truncation)?", "percentunit", [
        target(f"loadbench_eval_accuracy_ratio{{{M}}}")]), 12, 8)
    lay.add(timeseries("Goodput while the offered rate changes", "On-time (every latency SLO) and correct requests per second.", "reqps", [
        target(f"sum by (candidate) (rate(loadbench_good_requests_total{{{M}}}[$__rate_interval]))")]), 12, 8)
    return dashboard("loadbench-capacity", "loadbench: capacity", lay.panels,
                     "Latency, accuracy and correct answers per second against offered load, across runs.")


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], description: str) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["loadbench"], "timezone": "browser",
        "editable": False, "graphTooltip": 1, "time": {"from": "now-30m", "to": "now"}, "refresh": "10s",
        "schemaVersion": 39, "version": 1, "templating": {"list": variables()}, "annotations": {"list": []},
        "panels": panels, "links": [],
    }


def build() -> dict[str, dict[str, Any]]:
    return {"loadbench-comparison.json": comparison_dashboard(), "loadbench-capacity.json": capacity_dashboard()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, dash in build().items():
        (OUT / name).write_text(json.dumps(dash, indent=2, sort_keys=True) + "\n")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
