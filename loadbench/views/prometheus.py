"""Prometheus view of a run: the metric contract, a collector over the recorder, /metrics and push."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, push_to_gateway, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from .._version import __version__
from ..pacing.records import ERROR_CLASSES
from ..scoring.scores import VERDICTS
from ..stats.hdr import mean_stddev, values_at_percentiles
from ..stats.proportions import wilson
from ..stats.quality import QualityAggregator
from ..stats.recorder import Recorder

RUN = ("run_id", "scenario", "candidate")
HDR_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str  # as exposed (counters without the _total the client adds)
    kind: str  # counter | gauge | histogram | summary | info
    labels: tuple[str, ...]
    unit: str
    help: str


_HIST = {
    "latency": ("loadbench_request_duration_seconds", "Headline latency: completion minus the intended send time (successful requests)."),
    "service_time": ("loadbench_request_service_duration_seconds", "Completion minus the actual send time (successful requests; diagnostic)."),
    "ttft": ("loadbench_time_to_first_token_seconds", "First output-bearing chunk minus the intended send time (streaming)."),
    "ttfc": ("loadbench_time_to_first_content_seconds", "First content chunk minus the intended send time (excludes reasoning)."),
    "itl": ("loadbench_inter_token_latency_seconds", "Gaps between output-bearing chunks."),
    "tpot": ("loadbench_time_per_output_token_seconds", "(last - first output chunk) / (output tokens - 1), per request."),
    "schedule_lag": ("loadbench_schedule_lag_seconds", "Actual send minus intended send: how late the client was."),
}

CONTRACT: tuple[MetricSpec, ...] = (
    MetricSpec("loadbench_build_info", "gauge", ("version", "python"), "", "loadbench build; value 1."),
    MetricSpec("loadbench_run_info", "gauge", (*RUN, "model", "mode", "arrival"), "", "One series per run and candidate; value 1."),
    MetricSpec("loadbench_run_phase", "gauge", ("run_id", "scenario", "phase"), "", "1 for the current phase (warmup, measure, drain, done), 0 otherwise."),
    MetricSpec("loadbench_run_start_timestamp_seconds", "gauge", ("run_id", "scenario"), "seconds", "When the run started (Unix time)."),
    MetricSpec("loadbench_run_measure_start_timestamp_seconds", "gauge", ("run_id", "scenario"), "seconds", "When the measurement window started (Unix time)."),
    MetricSpec("loadbench_offered_rate_requests_per_second", "gauge", RUN, "", "Configured arrival rate (open loop; 0 in closed loop)."),
    MetricSpec("loadbench_requests_scheduled", "counter", RUN, "", "Requests whose intended send time has come."),
    MetricSpec("loadbench_requests_sent", "counter", RUN, "", "Requests sent."),
    MetricSpec("loadbench_requests_dropped", "counter", RUN, "", "Requests not sent because max_in_flight was reached (on_saturation: drop)."),
    MetricSpec("loadbench_requests_in_flight", "gauge", RUN, "", "Requests sent or waiting for a slot, not finished."),
    MetricSpec("loadbench_requests", "counter", (*RUN, "outcome"), "", "Finished requests by outcome: ok, cancelled, or an error class."),
    *(MetricSpec(name, "histogram", RUN, "seconds", text) for name, text in _HIST.values()),
    MetricSpec("loadbench_event_loop_lag_seconds", "histogram", ("run_id", "scenario"), "seconds", "Overshoot of a 5 ms sleep on the sending loop (client health)."),
    MetricSpec("loadbench_tokens", "counter", (*RUN, "type"), "", "Tokens by type: input, output, cached_input."),
    MetricSpec("loadbench_cost_dollars", "counter", RUN, "", "Estimated candidate cost in USD (tokens x pricing)."),
    MetricSpec("loadbench_hdr_overflow", "counter", RUN, "", "Values outside the HDR histogram range (not counted in percentiles)."),
    MetricSpec("loadbench_eval_answers", "counter", (*RUN, "verdict"), "", "Scored requests in the measurement window by verdict: pass, fail, unscored, skipped."),
    MetricSpec("loadbench_eval_scorer_answers", "counter", (*RUN, "scorer", "verdict"), "", "Scorer outcomes in the measurement window."),
    MetricSpec("loadbench_eval_errors", "counter", (*RUN, "scorer", "error_class"), "", "Quality error classes (fail and unscored) in the measurement window."),
    MetricSpec("loadbench_eval_accuracy_ratio", "gauge", RUN, "ratio", "pass / (pass + fail) over the measurement window so far."),
    MetricSpec("loadbench_eval_accuracy_ci_lower_ratio", "gauge", RUN, "ratio", "Wilson 95% lower bound of the accuracy."),
    MetricSpec("loadbench_eval_accuracy_ci_upper_ratio", "gauge", RUN, "ratio", "Wilson 95% upper bound of the accuracy."),
    MetricSpec("loadbench_eval_attempted_accuracy_ratio", "gauge", RUN, "ratio", "pass / (pass + fail + skipped): request failures count against."),
    MetricSpec("loadbench_judge_cost_dollars", "counter", RUN, "", "Judge spend in USD, apart from the candidate's cost."),
    MetricSpec("loadbench_good_requests", "counter", RUN, "", "Goodput: requests on time by every latency SLO and passing scoring (whole run)."),
    MetricSpec("loadbench_goodput_ratio", "gauge", RUN, "ratio", "Good requests / all attempts in the measurement window (errors and drops count against)."),
    MetricSpec("loadbench_sessions", "counter", (*RUN, "kind", "outcome"), "",
               "Finished sessions in the measurement window: kind conversation (multi-turn) or task (agentic); outcome passed, "
               "failed, or incomplete (a request failed)."),
    MetricSpec("loadbench_session_pass_ratio", "gauge", (*RUN, "kind"), "ratio",
               "Passed / (passed + failed) sessions of a kind so far (only once such sessions finished)."),
    MetricSpec("loadbench_slo_verdict", "gauge", (*RUN, "clause", "verdict"), "",
               "1 for each SLO clause's current verdict (pass, fail, inconclusive; 95% intervals), 0 for the other two."),
    MetricSpec("loadbench_slo_candidate_verdict", "gauge", (*RUN, "verdict"), "",
               "1 for the candidate's overall SLO verdict (fail if any clause fails, else inconclusive if any is), 0 otherwise."),
    MetricSpec("loadbench_sweep_capacity_requests_per_second", "gauge", ("sweep_id", "scenario", "candidate", "bound"), "",
               "A sweep's capacity bracket: bound=estimate, low, high (high absent when no rate failed)."),
    MetricSpec("loadbench_max_sustainable_rate_requests_per_second", "gauge", ("sweep_id", "scenario", "candidate"), "",
               "A sweep's result: the highest offered rate that met the SLO, confirmed with repeats (pushed at the end of a sweep)."),
    MetricSpec("loadbench_eval_variant_answers", "counter", (*RUN, "variant", "verdict"), "",
               "Scored requests in the measurement window by fidelity variant (original, choices_shuffled, ...) and verdict."),
    MetricSpec("loadbench_server_requests_running", "gauge", RUN, "",
               "The deployment's own count of requests it is running (server_metrics; last good scrape)."),
    MetricSpec("loadbench_server_requests_waiting", "gauge", RUN, "",
               "The deployment's own count of requests waiting for a batch slot (server_metrics)."),
    MetricSpec("loadbench_server_kv_cache_usage_ratio", "gauge", RUN, "ratio",
               "The deployment's KV-cache usage, 0 to 1 (server_metrics)."),
    MetricSpec("loadbench_hdr_request_duration_seconds", "summary", RUN, "seconds",
               "Exact percentiles of headline latency from the merged HDR histogram of the measurement window. Per candidate; never average across series."),
    MetricSpec("loadbench_hdr_time_to_first_token_seconds", "summary", RUN, "seconds", "Exact TTFT percentiles (HDR, measurement window)."),
    MetricSpec("loadbench_hdr_schedule_lag_seconds", "summary", RUN, "seconds", "Exact schedule-lag percentiles (HDR, measurement window)."),
)
CONTRACT_BY_NAME = {m.name: m for m in CONTRACT}


def exposed_names(spec: MetricSpec) -> list[str]:
    """Series names a metric produces in the text exposition."""
    if spec.kind == "counter":
        return [spec.name + "_total"]
    if spec.kind == "histogram":
        return [spec.name + "_bucket", spec.name + "_sum", spec.name + "_count"]
    if spec.kind == "summary":
        return [spec.name, spec.name + "_sum", spec.name + "_count"]
    return [spec.name]


SLO_VERDICTS = ("pass", "fail", "inconclusive")


@dataclass(slots=True)
class RunState:
    """What the collector shows about the run itself (set by the engine)."""

    run_id: str
    scenario: str
    mode: str
    arrival: str
    offered_rate_qps: float
    models: dict[str, str]
    started_at_s: float
    warmup_s: float
    phase: str = "warmup"
    slo: Any = None  # LiveVerdicts: the SLO verdicts as they stand (None without an SLO)
    # The deployments' own gauges from their last good scrape (server_metrics): candidate -> role -> value
    server_gauges: Callable[[str], dict[str, float]] | None = None


class LoadbenchCollector(Collector):
    """Builds every family at scrape time from the recorder and the quality aggregator, so
    the hot path pays nothing for Prometheus; all series exist (at zero) from the start."""

    def __init__(self, state: RunState, recorder: Recorder, quality: QualityAggregator | None,
                 in_flight: Callable[[str], int]) -> None:
        self.state = state
        self.recorder = recorder
        self.quality = quality
        self.in_flight = in_flight

    def _spec(self, name: str) -> MetricSpec:
        return CONTRACT_BY_NAME[name]

    def _family(self, name: str, **kw: Any) -> Metric:
        spec = self._spec(name)
        labels = list(spec.labels)
        unit = spec.unit if spec.unit and name.endswith("_" + spec.unit) else ""
        if spec.kind == "counter":
            return CounterMetricFamily(name, spec.help, labels=labels, unit=unit)
        if spec.kind == "histogram":
            return HistogramMetricFamily(name, spec.help, labels=labels, unit=unit)
        if spec.kind == "summary":
            return SummaryMetricFamily(name, spec.help, labels=labels, unit=unit)
        return GaugeMetricFamily(name, spec.help, labels=labels, unit=unit)

    def collect(self) -> Iterator[Metric]:
        st = self.state
        run = [st.run_id, st.scenario]
        fam = self._family("loadbench_build_info")
        fam.add_metric([__version__, platform.python_version()], 1)
        yield fam
        info = self._family("loadbench_run_info")
        phase = self._family("loadbench_run_phase")
        for p in ("warmup", "measure", "drain", "done"):
            phase.add_metric([*run, p], 1.0 if p == st.phase else 0.0)
        start = self._family("loadbench_run_start_timestamp_seconds")
        start.add_metric(run, st.started_at_s)
        measure = self._family("loadbench_run_measure_start_timestamp_seconds")
        measure.add_metric(run, st.started_at_s + st.warmup_s)
        offered = self._family("loadbench_offered_rate_requests_per_second")
        scheduled = self._family("loadbench_requests_scheduled")
        sent = self._family("loadbench_requests_sent")
        dropped = self._family("loadbench_requests_dropped")
        inflight = self._family("loadbench_requests_in_flight")
        outcomes = self._family("loadbench_requests")
        tokens = self._family("loadbench_tokens")
        cost = self._family("loadbench_cost_dollars")
        overflow = self._family("loadbench_hdr_overflow")
        hists = {metric: self._family(name) for metric, (name, _) in _HIST.items()}
        summaries = {
            "latency": self._family("loadbench_hdr_request_duration_seconds"),
            "ttft": self._family("loadbench_hdr_time_to_first_token_seconds"),
            "schedule_lag": self._family("loadbench_hdr_schedule_lag_seconds"),
        }
        for name, rec in list(self.recorder.candidates.items()):
            labels = [*run, name]
            info.add_metric([*labels, st.models.get(name, ""), st.mode, st.arrival], 1)
            offered.add_metric(labels, st.offered_rate_qps if st.mode == "open" else 0.0)
            t = rec.total
            scheduled.add_metric(labels, t.scheduled)
            sent.add_metric(labels, t.sent)
            dropped.add_metric(labels, t.dropped)
            inflight.add_metric(labels, self.in_flight(name))
            outcomes.add_metric([*labels, "ok"], t.ok)
            outcomes.add_metric([*labels, "cancelled"], t.cancelled)
            errors = dict(t.errors)
            for cls in ERROR_CLASSES:
                if cls != "cancelled":
                    outcomes.add_metric([*labels, cls], errors.pop(cls, 0))
            for cls, n in errors.items():  # classes outside the taxonomy (should not happen)
                outcomes.add_metric([*labels, cls], n)
            tokens.add_metric([*labels, "input"], t.input_tokens)
            tokens.add_metric([*labels, "output"], t.output_tokens)
            tokens.add_metric([*labels, "cached_input"], t.cached_tokens)
            cost.add_metric(labels, t.cost_usd)
            overflow.add_metric(labels, rec.overflows)
            for metric, family in hists.items():
                ph = rec.prom[metric]
                family.add_metric(labels, ph.buckets(), ph.sum_s)
            for metric, family in summaries.items():
                hist = rec.hists[metric]
                n = hist.get_total_count()
                values = values_at_percentiles(hist, [q * 100 for q in HDR_QUANTILES]) if n else {}
                total = mean_stddev(hist)[0] * n / 1e6 if n else 0.0
                family.add_metric(labels, count_value=n, sum_value=total)
                if n:  # prometheus_client has no quantile argument: add the samples ourselves
                    label_map = dict(zip(family._labelnames, labels))  # type: ignore[attr-defined]
                    for q in HDR_QUANTILES:
                        family.add_sample(family.name, {**label_map, "quantile": f"{q:g}"}, values[q * 100] / 1e6)
        yield info
        yield phase
        yield start
        yield measure
        yield offered
        yield scheduled
        yield sent
        yield dropped
        yield inflight
        yield outcomes
        yield tokens
        yield cost
        yield overflow
        yield from hists.values()
        lag = self._family("loadbench_event_loop_lag_seconds")
        lag.add_metric(run, self.recorder.loop_lag_prom.buckets(), self.recorder.loop_lag_prom.sum_s)
        yield lag
        yield from summaries.values()
        yield from self._quality_families(run)
        yield from self._slo_families(run)
        yield from self._server_families(run)

    def _server_families(self, run: list[str]) -> Iterator[Metric]:
        families = {"running": self._family("loadbench_server_requests_running"),
                    "waiting": self._family("loadbench_server_requests_waiting"),
                    "kv_usage": self._family("loadbench_server_kv_cache_usage_ratio")}
        gauges = self.state.server_gauges
        if gauges is not None:
            for name in list(self.recorder.candidates):
                for role, value in gauges(name).items():
                    families[role].add_metric([*run, name], value)
        yield from families.values()

    def _slo_families(self, run: list[str]) -> Iterator[Metric]:
        clause_fam = self._family("loadbench_slo_verdict")
        cand_fam = self._family("loadbench_slo_candidate_verdict")
        live = self.state.slo
        if live is not None:
            for name in list(self.recorder.candidates):
                result = live.evaluate(name)
                for r in result["clauses"]:
                    for v in SLO_VERDICTS:
                        clause_fam.add_metric([*run, name, r["clause"], v], 1.0 if r["verdict"] == v else 0.0)
                for v in SLO_VERDICTS:
                    cand_fam.add_metric([*run, name, v], 1.0 if result["verdict"] == v else 0.0)
        yield clause_fam
        yield cand_fam

    def _quality_families(self, run: list[str]) -> Iterator[Metric]:
        answers = self._family("loadbench_eval_answers")
        per_scorer = self._family("loadbench_eval_scorer_answers")
        errors = self._family("loadbench_eval_errors")
        acc = self._family("loadbench_eval_accuracy_ratio")
        low = self._family("loadbench_eval_accuracy_ci_lower_ratio")
        high = self._family("loadbench_eval_accuracy_ci_upper_ratio")
        attempted = self._family("loadbench_eval_attempted_accuracy_ratio")
        judge = self._family("loadbench_judge_cost_dollars")
        good_total = self._family("loadbench_good_requests")
        good_ratio = self._family("loadbench_goodput_ratio")
        sessions = self._family("loadbench_sessions")
        session_ratio = self._family("loadbench_session_pass_ratio")
        variants = self._family("loadbench_eval_variant_answers")
        q = self.quality
        for name in self.recorder.candidates:
            labels = [*run, name]
            counts = {v: 0 for v in VERDICTS}
            scorers: dict[str, tuple[int, int, int, int, dict[str, int]]] = {}
            judge_cost = 0.0
            good = (0, 0, 0)
            kinds = {"conversation": (0, 0, 0), "task": (0, 0, 0)}  # sessions, passed, failed
            if q is not None:
                with q.lock:
                    agg = q.sessions.candidates.get(name) if q.sessions is not None else None
                    if agg is not None:
                        kinds = {"conversation": (agg.conversations.sessions, agg.conversations.passed, agg.conversations.failed),
                                 "task": (agg.tasks.sessions, agg.tasks.passed, agg.tasks.failed)}
                    cq = q.candidates.get(name)
                    if cq is not None:
                        good = (cq.good_total, cq.good, cq.attempted)
                        g = cq.overall
                        counts = {"pass": g.pass_, "fail": g.fail, "unscored": g.unscored, "skipped": g.skipped}
                        scorers = {k: (s.pass_, s.fail, s.unscored, s.skipped, dict(s.error_classes)) for k, s in cq.scorers.items()}
                        judge_cost = cq.judge_cost_usd
                        for name_v, t in cq.by_variant.items():
                            for verdict, n in zip(VERDICTS, (t.pass_, t.fail, t.unscored, t.skipped)):
                                variants.add_metric([*labels, name_v, verdict], n)
            for verdict, n in counts.items():
                answers.add_metric([*labels, verdict], n)
            for scorer, (p, f, u, s, classes) in sorted(scorers.items()):
                for verdict, n in zip(VERDICTS, (p, f, u, s)):
                    per_scorer.add_metric([*labels, scorer, verdict], n)
                for cls, n in sorted(classes.items()):
                    errors.add_metric([*labels, scorer, cls], n)
            value, lo, hi = wilson(counts["pass"], counts["pass"] + counts["fail"])
            att = wilson(counts["pass"], counts["pass"] + counts["fail"] + counts["skipped"])[0]
            if value is not None:
                acc.add_metric(labels, value)
                low.add_metric(labels, lo)
                high.add_metric(labels, hi)
            if att is not None:
                attempted.add_metric(labels, att)
            judge.add_metric(labels, judge_cost)
            good_total.add_metric(labels, good[0])
            if good[2]:
                good_ratio.add_metric(labels, good[1] / good[2])
            for kind, (n, passed, failed) in kinds.items():
                sessions.add_metric([*labels, kind, "passed"], passed)
                sessions.add_metric([*labels, kind, "failed"], failed)
                sessions.add_metric([*labels, kind, "incomplete"], n - passed - failed)
                if passed + failed:
                    session_ratio.add_metric([*labels, kind], passed / (passed + failed))
        yield from (answers, per_scorer, errors, acc, low, high, attempted, judge, good_total, good_ratio, sessions, session_ratio, variants)


class MetricsServer:
    """/metrics on its own thread (prometheus_client's server), off the sending loop."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 9464) -> None:
        self.registry = registry
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: Any = None

    def start(self) -> int:
        server, _thread = start_http_server(self.requested_port, addr=self.host, registry=self.registry)
        self._server = server
        self.port = server.server_address[1]
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def push(registry: CollectorRegistry, url: str, run_id: str, timeout_s: float = 10.0) -> None:
    """Push the final state of a batch run to a Pushgateway, grouped by run_id."""
    push_to_gateway(url, job="loadbench", grouping_key={"run_id": run_id}, registry=registry, timeout=timeout_s)


def push_sweep(url: str, result: dict[str, Any], timeout_s: float = 10.0) -> None:
    """Push a sweep's max sustainable rate per candidate, grouped by sweep_id."""
    registry = CollectorRegistry(auto_describe=False)
    spec = CONTRACT_BY_NAME["loadbench_max_sustainable_rate_requests_per_second"]

    class _Sweep(Collector):
        def collect(self) -> Iterator[Metric]:
            fam = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
            cap_spec = CONTRACT_BY_NAME["loadbench_sweep_capacity_requests_per_second"]
            bracket = GaugeMetricFamily(cap_spec.name, cap_spec.help, labels=list(cap_spec.labels))
            ids = [str(result["sweep_id"]), str(result.get("scenario") or "")]
            for name, c in result["candidates"].items():
                if c.get("max_sustainable_qps") is not None:
                    fam.add_metric([*ids, name], c["max_sustainable_qps"])
                for bound, key in (("estimate", "estimate_qps"), ("low", "low_qps"), ("high", "high_qps")):
                    value = (c.get("capacity") or {}).get(key)
                    if value is not None:
                        bracket.add_metric([*ids, name, bound], value)
            yield fam
            yield bracket

    registry.register(_Sweep())
    push_to_gateway(url, job="loadbench-sweep", grouping_key={"sweep_id": str(result["sweep_id"])}, registry=registry, timeout=timeout_s)
