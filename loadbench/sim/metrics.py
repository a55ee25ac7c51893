"""The simulator's own /metrics, named as vLLM names them, so the server side can be read and reconciled."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# The simulator models KV memory as this many tokens per batch slot; a request holds its prompt and
# its whole answer from admission to its end (vLLM allocates as it decodes; close enough for a model).
KV_TOKENS_PER_SLOT = 2048


class SimMetrics:
    """Gauges read at scrape time from the simulator's state; counters bumped as requests end."""

    def __init__(self, model_name: str, slots: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"model_name": model_name}
        self.waiting = 0
        self.running = 0
        self.kv_tokens = 0
        self._kv_capacity = max(slots, 1) * KV_TOKENS_PER_SLOT
        gauge = Gauge("vllm:num_requests_running", "Requests in the batch now", ["model_name"], registry=self.registry)
        gauge.labels(**labels).set_function(lambda: self.running)
        gauge = Gauge("vllm:num_requests_waiting", "Requests waiting for a batch slot", ["model_name"], registry=self.registry)
        gauge.labels(**labels).set_function(lambda: self.waiting)
        gauge = Gauge("vllm:kv_cache_usage_perc", "KV cache usage (1 = full)", ["model_name"], registry=self.registry)
        gauge.labels(**labels).set_function(lambda: min(1.0, self.kv_tokens / self._kv_capacity))
        self._prompt = Counter("vllm:prompt_tokens", "Prompt tokens processed", ["model_name"],
                               registry=self.registry).labels(**labels)
        self._generation = Counter("vllm:generation_tokens", "Tokens generated", ["model_name"],
                                   registry=self.registry).labels(**labels)
        self._success = Counter("vllm:request_success", "Requests finished", ["model_name", "finished_reason"],
                                registry=self.registry)
        self._e2e = Histogram("vllm:e2e_request_latency_seconds", "Request time in the server", ["model_name"],
                              buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0), registry=self.registry).labels(**labels)
        self._labels = labels

    def finished(self, prompt_tokens: int, completion_tokens: int, finish_reason: str, seconds: float) -> None:
        self._prompt.inc(prompt_tokens)
        self._generation.inc(completion_tokens)
        self._success.labels(finished_reason=finish_reason, **self._labels).inc()
        self._e2e.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
