"""The server side, pure: parsing exposition text, presets, counter deltas, server-side quantiles
and the client/server reconciliation, from tables."""

from __future__ import annotations

import pytest

from loadbench.stats.server import (
    NotPrometheus,
    counter_delta,
    detect_preset,
    parse_exposition,
    reconcile,
    series_key,
    split_key,
    summarize_server,
)

LLAMA = """# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total {prompt}
# TYPE llamacpp:prompt_tokens_cached_total counter
llamacpp:prompt_tokens_cached_total {cached}
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total {out}
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing {running}
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred {waiting}
"""

VLLM = """# TYPE vllm:request_success_total counter
{success}
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{{le="0.1",model_name="m"}} {b1}
vllm:e2e_request_latency_seconds_bucket{{le="1.0",model_name="m"}} {b2}
vllm:e2e_request_latency_seconds_bucket{{le="+Inf",model_name="m"}} {b2}
vllm:e2e_request_latency_seconds_count{{model_name="m"}} {b2}
vllm:e2e_request_latency_seconds_sum{{model_name="m"}} {sum}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{model_name="m"}} {waiting}
"""


def line(phase, t_s, text):
    parsed = parse_exposition(text)
    return {"candidate": "a", "phase": phase, "t_s": t_s, "ok": True, "samples": parsed.samples, "kinds": parsed.kinds}


@pytest.mark.parametrize("text", ["<html><body>no</body></html>", "", "hello world", '{"a": 1}'])
def test_what_is_not_prometheus_text_is_refused(text):
    with pytest.raises(NotPrometheus):
        parse_exposition(text)


def test_parse_keeps_labels_kinds_and_drops_created():
    parsed = parse_exposition('# TYPE r_total counter\nr_total{b="2",a="1"} 3\nr_created{a="1",b="2"} 1.7e9\n# TYPE g gauge\ng 0.5\n')
    assert parsed.samples == {'r_total{a="1",b="2"}': 3.0, "g": 0.5}
    assert parsed.kinds == {"r_total": "counter", "g": "gauge"}
    assert split_key(series_key("x", {"le": "0.5", "m": "a b"})) == ("x", {"le": "0.5", "m": "a b"})


@pytest.mark.parametrize("values, delta", [
    ([10, 15, 30], 20),
    ([10, 15, 3, 8], 5 + 3 + 5),  # the server restarted: the drop is a reset, as Prometheus' increase()
    ([7], 0),
])
def test_counter_delta(values, delta):
    assert counter_delta(values) == delta


@pytest.mark.parametrize("names, preset", [
    (["vllm:num_requests_running"], "vllm"), (["sglang:token_usage"], "sglang"),
    (["llamacpp:requests_processing"], "llamacpp"), (["tgi_queue_size"], "tgi"), (["http_requests_total"], "generic"),
])
def test_preset_detection(names, preset):
    assert detect_preset(names) == preset


def test_llamacpp_reconciles_output_and_input_with_cached_prompt_tokens():
    lines = [line("before", -0.1, LLAMA.format(prompt=100, cached=0, out=50, running=0, waiting=0)),
             line("during", 1.0, LLAMA.format(prompt=300, cached=40, out=250, running=6, waiting=2)),
             line("after", 2.0, LLAMA.format(prompt=400, cached=60, out=350, running=0, waiting=0))]
    client = {"requests": 10, "output_tokens": 300, "input_tokens": 360, "usage_missing": 0}
    server = summarize_server(lines, "http://h/metrics", "auto", client)
    assert server["preset"] == "llamacpp"
    assert server["reconciliation"]["output_tokens"] == {"client": 300, "server": 300, "match": True, "difference": 0}
    assert server["reconciliation"]["input_tokens"]["server"] == 300 + 60  # evaluated + reused from the cache
    assert server["reconciliation"]["input_tokens"]["match"] is True
    assert "requests" not in server["reconciliation"]  # llama.cpp counts no finished requests
    assert server["roles"]["running"] == {"min": 0, "mean": 2, "max": 6}
    assert server["gauges"]["llamacpp:requests_deferred"]["max"] == 2
    assert server["caveats"] == []


def test_a_mismatch_is_a_caveat_and_estimated_client_counts_decide_nothing():
    counters = {"vllm:generation_tokens_total": 120.0, "vllm:prompt_tokens_total": 80.0}
    rec = reconcile(counters, "vllm", {"output_tokens": 100, "input_tokens": 80, "usage_missing": 0})
    assert rec["output_tokens"]["match"] is False and rec["output_tokens"]["difference"] == 20
    rec = reconcile(counters, "vllm", {"output_tokens": 100, "input_tokens": 80, "usage_missing": 3})
    assert rec["output_tokens"]["match"] is None and "3 responses" in rec["output_tokens"]["note"]


def test_labelled_series_born_during_the_run_and_server_side_quantiles():
    first = VLLM.format(success='vllm:request_success_total{finished_reason="stop",model_name="m"} 5',
                        b1=0, b2=0, sum=0, waiting=0)
    last = VLLM.format(success='vllm:request_success_total{finished_reason="stop",model_name="m"} 9\n'
                               'vllm:request_success_total{finished_reason="length",model_name="m"} 2',
                       b1=5, b2=10, sum=4.0, waiting=4)
    server = summarize_server([line("before", 0, first), line("after", 3, last)], "u", "vllm",
                              {"requests": 6, "usage_missing": 0})
    assert server["reconciliation"]["requests"]["server"] == 4 + 2  # "length" was born mid-run: from zero
    hist = server["histograms"]['vllm:e2e_request_latency_seconds{model_name="m"}']
    assert hist["count"] == 10 and hist["mean"] == pytest.approx(0.4)
    assert hist["p50"] == pytest.approx(0.1)  # half the requests at or under 0.1 s
    assert hist["p90"] == pytest.approx(0.1 + 0.9 * (9 - 5) / 5)  # linear inside (0.1, 1.0]


def test_failed_scrapes_are_counted_and_explained():
    bad = [{"candidate": "a", "phase": p, "t_s": t, "ok": False, "error": e}
           for p, t, e in (("before", 0, "refused"), ("during", 1, "refused"), ("after", 2, "timeout"))]
    server = summarize_server(bad, "u", "auto", {})
    assert server["scrapes"] == {"count": 3, "ok": 0, "failures": {"refused": 2, "timeout": 1}, "series_cut": 0}
    assert "fewer than two good scrapes" in server["caveats"][0] and "refused x2" in server["caveats"][0]
