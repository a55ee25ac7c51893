"""A server that stalls 1 s every 2 s under a fixed open-loop rate: headline latency must show
the stall (measured from the intended send), service time must not be fooled either way."""

import asyncio
import time

from aiohttp import web

from loadbench.drive.aiohttp_transport import AiohttpTransport
from loadbench.drive.client import ClientSettings, OpenAIClient, build_payload
from loadbench.pacing.clock import MonotonicClock
from loadbench.pacing.pacer import ItemOrder, arrival_offsets_ns
from loadbench.pacing.runner import Lane, Plan, Runner
from loadbench.stats.recorder import Recorder
from loadbench.stats.summary import build_summary


def stalling_app(start_holder, period_s=2.0, stall_s=1.0, single_worker=True):
    lock = asyncio.Lock()

    async def handler(request):
        await request.read()
        # A server with one worker: during a stall nothing is served (the classic CO setup)
        async with lock:
            phase = (time.perf_counter() - start_holder[0]) % period_s
            if phase >= period_s - stall_s:
                await asyncio.sleep(period_s - phase)
            await asyncio.sleep(0.001)
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    return app


async def test_headline_latency_shows_the_stall_that_a_closed_loop_would_hide(serve_app):
    start = [0.0]
    base = await serve_app(stalling_app(start))
    import aiohttp

    clock = MonotonicClock()
    recorder = Recorder(["c"])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        # max_in_flight=1 with the queue policy: the client itself can only wait, like a closed loop
        url = base + "/v1/chat/completions"
        client = OpenAIClient(AiohttpTransport(url, {}, limit=1, session=session),
                              ClientSettings(url=url, api="chat", stream=False, timeout_s=10, headers={}), clock)
        payload = build_payload(api="chat", model="m", stream=False, messages=[{"role": "user", "content": "x"}], prompt="x", params={})

        async def send(item_index, r, t0):
            await client.send(payload, 1, r, t0)

        plan = Plan(offsets_ns=arrival_offsets_ns("constant", 50, duration_s=6.0), order=ItemOrder(1, 0), item_ids=["x"])
        runner = Runner(plan, [Lane("c", send, 1)], recorder, clock, on_saturation="queue")
        start[0] = time.perf_counter()
        await runner.run()
    recorder.flush()
    s = build_summary(recorder, {"load": {"mode": "open"}}, {})["candidates"]["c"]
    assert s["requests"]["ok"] == 300
    latency, service = s["latency_s"], s["service_time_s"]
    # Half of the time the server is stalled: requests intended then wait up to ~1 s.
    assert latency["p99"] > 0.8
    assert latency["p90"] > 0.5
    # Measured from the actual send, only the one request per stall that hit it is slow:
    # p90 of service time stays small -- the omission the headline metric corrects.
    assert service["p90"] < 0.05
    assert latency["p90"] > 10 * service["p90"]
    # and the client saw the backlog as schedule lag, so it is not hidden either
    assert s["schedule_lag_s"]["p90"] > 0.5
