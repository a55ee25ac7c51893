"""The fault matrix: every fault at a steady open-loop rate gets the right class, the run goes
on, the accounting identities hold exactly and every scheduled request has one log line."""

import asyncio
import contextlib
import json

import pytest

from loadbench.config.faults import FaultSpec, FaultWindow
from loadbench.config.profiles import PROFILES
from loadbench.drive.aiohttp_transport import AiohttpTransport
from loadbench.drive.client import ClientSettings, OpenAIClient, build_payload
from loadbench.drive.http1 import Http1Pool
from loadbench.pacing.clock import MonotonicClock
from loadbench.pacing.pacer import ItemOrder, arrival_offsets_ns
from loadbench.pacing.results_log import ResultsLog
from loadbench.pacing.runner import Lane, Plan, Runner
from loadbench.sim.faults import FaultPicker
from loadbench.sim.server import build_app
from loadbench.stats.rebuild import rebuild_summary
from loadbench.stats.recorder import Recorder
from loadbench.stats.summary import build_summary

FAST = PROFILES["instant"]


async def run_against(base, tmp_path, *, rate=40.0, duration_s=1.5, timeout_s=1.0, max_bytes=16 << 20, stream=True, kind="fast"):
    clock = MonotonicClock()
    recorder = Recorder(["c"])
    log = ResultsLog(tmp_path / "results.jsonl")
    sink = lambda r: (recorder(r), log(r))
    settings = ClientSettings(url=base + "/v1/chat/completions", api="chat", stream=stream, timeout_s=timeout_s,
                              headers={"Content-Type": "application/json"}, max_response_bytes=max_bytes)
    async with contextlib.AsyncExitStack() as stack:
        if kind == "aiohttp":
            transport = AiohttpTransport(settings.url, settings.headers, limit=256, max_body_bytes=max_bytes)
        else:
            transport = Http1Pool(settings.url, settings.headers, limit=256, max_body_bytes=max_bytes)
        stack.push_async_callback(transport.close)
        client = OpenAIClient(transport, settings, clock)
        payload = build_payload(api="chat", model="m", stream=stream, messages=[{"role": "user", "content": "hello"}], prompt="hello", params={})

        async def send(item_index, r, t0):
            await client.send(payload, 5, r, t0)

        plan = Plan(offsets_ns=arrival_offsets_ns("constant", rate, duration_s=duration_s), order=ItemOrder(1, 0), item_ids=["x"])
        outcome = await Runner(plan, [Lane("c", send, 256)], sink, clock, grace_ns=int(5e9)).run()
    log.close()
    recorder.flush()
    s = build_summary(recorder, {"load": {"mode": "open"}}, {})["candidates"]["c"]
    (tmp_path / "run.json").write_text(json.dumps({"candidates": {"c": {}}, "load": {"mode": "open"}}))
    return s, outcome, len(plan.offsets_ns)


def check_identities(s, planned, tmp_path):
    req = s["requests"]
    assert req["scheduled"] == planned
    assert req["scheduled"] == req["sent"] + req["dropped"]
    assert req["sent"] == req["ok"] + req["error_total"] + req["cancelled"]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == req["scheduled"]
    assert rebuild_summary(tmp_path).summary["candidates"]["c"]["requests"] == req


@pytest.mark.parametrize(
    "fault, error_class, extra",
    [
        ("http_5xx", "http_5xx", {}),
        ("http_429", "http_429", {}),
        ("reset", "disconnected", {}),
        ("stall", "timeout", {"stall_s": 3.0}),
        ("truncate", "stream_truncated", {}),
        ("malformed", "invalid_response", {}),
        ("oversized", "invalid_response", {"oversize_bytes": 300_000}),
        ("slow_drip", "timeout", {"drip_interval_s": 0.05}),
        ("wrong_content_type", "invalid_response", {}),
        ("no_length_close", "invalid_response", {}),
    ],
)
@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
async def test_each_fault_is_classified_and_the_run_goes_on(serve_app, tmp_path, fault, error_class, extra, kind):
    spec = FaultSpec.model_validate({fault: 0.3, **extra})
    base = await serve_app(build_app(FAST, [], seed=5, faults=spec))
    s, outcome, planned = await run_against(base, tmp_path, max_bytes=100_000, kind=kind)
    assert outcome.stop_reason == "completed"
    errors = s["requests"]["errors"]
    assert errors.get(error_class, 0) >= 3, errors
    assert set(errors) == {error_class}, errors  # nothing else went wrong
    assert s["requests"]["ok"] >= planned * 0.4  # the others were served
    check_identities(s, planned, tmp_path)


async def test_refused_and_unresolvable_endpoints_at_a_steady_rate(tmp_path):
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    s, _, planned = await run_against(f"http://127.0.0.1:{port}", tmp_path, duration_s=0.5)
    assert s["requests"]["errors"] == {"connect": planned}
    check_identities(s, planned, tmp_path)
    (tmp_path / "results.jsonl").unlink()
    s, _, planned = await run_against("http://no-such-host.invalid:80", tmp_path, duration_s=0.5, timeout_s=3)
    assert s["requests"]["errors"] == {"connect": planned}
    check_identities(s, planned, tmp_path)


def test_fault_schedules_and_determinism():
    picker = FaultPicker(FaultSpec(http_5xx=FaultWindow(rate=1.0, start_s=10, end_s=20)), seed=1)
    assert picker.pick(0, 5.0) is None and picker.pick(0, 15.0) == "http_5xx" and picker.pick(0, 25.0) is None
    p = FaultPicker(FaultSpec(http_5xx=0.2, reset=0.1), seed=3)
    draws = [p.pick(i, 0.0) for i in range(5000)]
    assert draws == [FaultPicker(FaultSpec(http_5xx=0.2, reset=0.1), seed=3).pick(i, 0.0) for i in range(5000)]
    assert draws.count("http_5xx") / 5000 == pytest.approx(0.2, abs=0.02)
    assert draws.count("reset") / 5000 == pytest.approx(0.1, abs=0.02)
