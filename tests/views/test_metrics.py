"""The Prometheus view: values checked against known records, the contract, promtool, serving."""

import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadbench.pacing.records import DROPPED, ERROR, OK, RequestResult
from loadbench.stats.quality import QualityAggregator
from loadbench.stats.recorder import Recorder
from loadbench.views.prometheus import CONTRACT, LoadbenchCollector, MetricsServer, RunState, exposed_names

MS = 1_000_000


def state():
    return RunState(run_id="r1", scenario="s", mode="open", arrival="poisson", offered_rate_qps=5.0,
                    models={"a": "m-a", "b": "m-b"}, started_at_s=1_700_000_000.0, warmup_s=1.0)


def rec(seq, cand="a", status=OK, latency_ms=100, error_class=None, verdict=None, tokens=(10, 5), cost=0.001):
    r = RequestResult(seq=seq, candidate=cand, item_id="i", item_index=0, epoch=0, intended_ns=seq * MS, in_window=True,
                      status=status, error_class=error_class)
    if status != DROPPED:
        r.sent_ns = seq * MS
        r.done_ns = seq * MS + latency_ms * MS
        r.first_token_ns = seq * MS + 20 * MS
        r.itl_us = [10_000, 10_000]
        r.output_tokens = tokens[1]
        r.input_tokens = tokens[0]
        r.cost_usd = cost
    r.verdict = verdict
    r.scores = [{"scorer": "match", "name": "match", "status": verdict, "error_class": "match.mismatch" if verdict == "fail" else None}] if verdict else None
    return r


def scrape(recorder, quality, in_flight=lambda name: 0, server_gauges=None):
    registry = CollectorRegistry(auto_describe=False)
    run_state = state()
    run_state.server_gauges = server_gauges
    registry.register(LoadbenchCollector(run_state, recorder, quality, in_flight))
    text = generate_latest(registry).decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples


def value(samples, name, **labels):
    key = (name, tuple(sorted({"run_id": "r1", "scenario": "s", **labels}.items())))
    return samples[key]


def test_series_exist_at_zero_before_any_request():
    _, s = scrape(Recorder(["a", "b"]), QualityAggregator(["a", "b"], []))
    for cand in ("a", "b"):
        assert value(s, "loadbench_requests_sent_total", candidate=cand) == 0
        assert value(s, "loadbench_requests_total", candidate=cand, outcome="http_5xx") == 0
        assert value(s, "loadbench_request_duration_seconds_count", candidate=cand) == 0
        assert value(s, "loadbench_eval_answers_total", candidate=cand, verdict="pass") == 0
        assert value(s, "loadbench_offered_rate_requests_per_second", candidate=cand) == 5.0
        assert value(s, "loadbench_run_info", candidate=cand, model=f"m-{cand}", mode="open", arrival="poisson") == 1


def test_values_match_the_records():
    recorder = Recorder(["a", "b"])
    quality = QualityAggregator(["a", "b"], [[]])
    records = [rec(0, latency_ms=100, verdict="pass"), rec(1, latency_ms=300, verdict="fail"), rec(2, latency_ms=2500, verdict="pass"),
               rec(3, status=ERROR, error_class="http_5xx", verdict="skipped"), rec(4, status=DROPPED, error_class="dropped"),
               rec(5, cand="b", latency_ms=50, verdict="pass")]
    for r in records:
        recorder(r)
        quality.add(r)
    recorder.flush()
    _text, s = scrape(recorder, quality, lambda name: {"a": 3, "b": 0}[name])
    assert value(s, "loadbench_requests_scheduled_total", candidate="a") == 5
    assert value(s, "loadbench_requests_sent_total", candidate="a") == 4
    assert value(s, "loadbench_requests_dropped_total", candidate="a") == 1
    assert value(s, "loadbench_requests_total", candidate="a", outcome="ok") == 3
    assert value(s, "loadbench_requests_total", candidate="a", outcome="http_5xx") == 1
    assert value(s, "loadbench_requests_in_flight", candidate="a") == 3
    assert value(s, "loadbench_request_duration_seconds_count", candidate="a") == 3
    assert value(s, "loadbench_request_duration_seconds_sum", candidate="a") == pytest.approx(2.9)
    assert value(s, "loadbench_request_duration_seconds_bucket", candidate="a", le="0.1") == 1
    assert value(s, "loadbench_request_duration_seconds_bucket", candidate="a", le="0.5") == 2
    assert value(s, "loadbench_request_duration_seconds_bucket", candidate="a", le="2") == 2
    assert value(s, "loadbench_request_duration_seconds_bucket", candidate="a", le="3") == 3
    assert value(s, "loadbench_request_duration_seconds_bucket", candidate="a", le="+Inf") == 3
    assert value(s, "loadbench_inter_token_latency_seconds_count", candidate="a") == 6  # 2 gaps x 3 successful requests
    assert value(s, "loadbench_tokens_total", candidate="a", type="output") == 20
    assert value(s, "loadbench_cost_dollars_total", candidate="a") == pytest.approx(0.004)
    assert value(s, "loadbench_eval_answers_total", candidate="a", verdict="pass") == 2
    assert value(s, "loadbench_eval_answers_total", candidate="a", verdict="skipped") == 1
    assert value(s, "loadbench_eval_accuracy_ratio", candidate="a") == pytest.approx(2 / 3)
    assert value(s, "loadbench_eval_attempted_accuracy_ratio", candidate="a") == pytest.approx(2 / 4)
    assert value(s, "loadbench_eval_errors_total", candidate="a", scorer="match", error_class="match.mismatch") == 1
    # exact HDR percentiles as a summary
    assert value(s, "loadbench_hdr_request_duration_seconds", candidate="a", quantile="0.5") == pytest.approx(0.3, rel=1e-3)
    assert value(s, "loadbench_hdr_request_duration_seconds", candidate="a", quantile="0.999") == pytest.approx(2.5, rel=1e-3)
    assert value(s, "loadbench_hdr_request_duration_seconds_count", candidate="b") == 1


def test_exposition_matches_the_contract_and_labels_are_bounded():
    recorder = Recorder(["a"])
    recorder(rec(0, verdict="fail"))
    recorder.flush()
    quality = QualityAggregator(["a"], [[]])
    quality.add(rec(0, verdict="fail"))
    _text, samples = scrape(recorder, quality)
    names = {name for name, _ in samples}
    allowed = {n for spec in CONTRACT for n in exposed_names(spec)} | {n + "_created" for n in names}
    assert names <= allowed, names - allowed
    for spec in CONTRACT:
        if spec.name in ("loadbench_max_sustainable_rate_requests_per_second", "loadbench_sweep_capacity_requests_per_second",
                         "loadbench_slo_verdict", "loadbench_slo_candidate_verdict"):
            continue  # verdict series only with an SLO (test_slo_verdict_series);  # pushed by sweeps, not served by runs (tested in test_prometheus_e2e)
        if spec.name == "loadbench_session_pass_ratio":
            continue  # only once sessions finished (test_session_series)
        if spec.name.startswith("loadbench_server_"):
            continue  # only for candidates with server_metrics (test_server_gauges_are_re_exported)
        if spec.name == "loadbench_eval_variant_answers":
            continue  # only with fidelity variants (test_variant_series)
        assert any(n in names for n in exposed_names(spec)), spec.name
    for _, labels in samples:
        for key, val in labels:
            assert "://" not in val and len(val) < 80, (key, val)


def test_every_contract_metric_is_documented():
    doc = (__import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    for spec in CONTRACT:
        assert f"`{spec.name}" in doc, spec.name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by .ci/run (Debian prometheus)")
def test_promtool_accepts_the_exposition(tmp_path):
    recorder = Recorder(["a", "b"])
    for i in range(5):
        recorder(rec(i, verdict="pass"))
    recorder.flush()
    text, _ = scrape(recorder, QualityAggregator(["a", "b"], [[]]))
    proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_metrics_server_serves_on_loopback_on_its_own_thread():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LoadbenchCollector(state(), Recorder(["a"]), None, lambda n: 0))
    server = MetricsServer(registry, "127.0.0.1", 0)
    port = server.start()
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "loadbench_requests_sent_total" in body
    finally:
        server.stop()



def test_session_series():
    from loadbench.stats.sessions import SessionAggregator

    recorder = Recorder(["a"])
    quality = QualityAggregator(["a"], [[], []], sessions=SessionAggregator({1}, {0, 1}))
    for r in (rec(0, verdict="pass"), rec(1, verdict="fail")):  # two one-request conversations
        r.item_index = 0
        recorder(r)
        quality.add(r)
    task = rec(2, verdict="pass")
    task.item_index = 1
    task.trajectory = {"calls": [], "steps": 1, "stopped": True, "retries": 0}
    recorder(task)
    quality.add(task)
    recorder.flush()
    _text, samples = scrape(recorder, quality)

    def val(name, **labels):
        return value(samples, name, candidate="a", **labels)

    assert val("loadbench_sessions_total", kind="conversation", outcome="passed") == 1
    assert val("loadbench_sessions_total", kind="conversation", outcome="failed") == 1
    assert val("loadbench_sessions_total", kind="task", outcome="passed") == 1
    assert val("loadbench_session_pass_ratio", kind="conversation") == 0.5


def test_slo_verdict_series():
    from loadbench.config.slo_clauses import parse_clauses
    from loadbench.stats.summary import LiveVerdicts

    recorder = Recorder(["a", "b"])
    for i in range(300):
        recorder(rec(i, cand="a", latency_ms=100))
        recorder(rec(i, cand="b", latency_ms=100))
    recorder(rec(300, cand="b", latency_ms=100))
    recorder.flush()
    st = state()
    st.slo = LiveVerdicts(parse_clauses(["latency p95 <= 5s", "latency p99.9 <= 5s"]), recorder, None)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LoadbenchCollector(st, recorder, None, lambda name: 0))
    samples = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    for cand in ("a", "b"):
        assert value(samples, "loadbench_slo_verdict", candidate=cand, clause="latency p95 <= 5s", verdict="pass") == 1
        assert value(samples, "loadbench_slo_verdict", candidate=cand, clause="latency p95 <= 5s", verdict="fail") == 0
        assert value(samples, "loadbench_slo_verdict", candidate=cand, clause="latency p99.9 <= 5s", verdict="inconclusive") == 1
        assert value(samples, "loadbench_slo_candidate_verdict", candidate=cand, verdict="inconclusive") == 1
        assert value(samples, "loadbench_slo_candidate_verdict", candidate=cand, verdict="pass") == 0


def test_server_gauges_are_re_exported():
    """A scraped deployment's running/waiting/KV gauges appear with the candidate label; a candidate
    whose server is not scraped (or not yet) has no such series rather than a made-up zero."""
    recorder = Recorder(["a", "b"])
    gauges = {"a": {"running": 7.0, "waiting": 3.0, "kv_usage": 0.42}, "b": {}}
    _text, samples = scrape(recorder, None, server_gauges=lambda name: gauges[name])
    assert value(samples, "loadbench_server_requests_running", candidate="a") == 7
    assert value(samples, "loadbench_server_requests_waiting", candidate="a") == 3
    assert value(samples, "loadbench_server_kv_cache_usage_ratio", candidate="a") == pytest.approx(0.42)
    assert not any(name.startswith("loadbench_server_") and ("candidate", "b") in labels for name, labels in samples)


def test_variant_series():
    """With fidelity variants: every variant's verdicts under a variant label; the headline accuracy
    counts the original variant only."""
    recorder = Recorder(["a"])
    quality = QualityAggregator(["a"], [[], []], item_variants=["original", "choices_shuffled"])
    quality.add(rec(0, verdict="pass"))
    shuffled = rec(1, verdict="fail")
    shuffled.item_index = 1
    quality.add(shuffled)
    _text, samples = scrape(recorder, quality)
    assert value(samples, "loadbench_eval_variant_answers_total", candidate="a", variant="original", verdict="pass") == 1
    assert value(samples, "loadbench_eval_variant_answers_total", candidate="a", variant="choices_shuffled", verdict="fail") == 1
    assert value(samples, "loadbench_eval_accuracy_ratio", candidate="a") == 1.0  # the shuffled failure is not in it
