"""The simulator server on loopback: API shape, answers from the eval set, batch-slot queueing."""

import asyncio
import json

import aiohttp
import pytest

from loadbench.config.dataset import Item
from loadbench.config.profiles import PROFILES, Profile
from loadbench.drive.aiohttp_transport import AiohttpTransport
from loadbench.drive.client import ClientSettings, OpenAIClient, build_payload
from loadbench.pacing.clock import MonotonicClock
from loadbench.pacing.records import OK, RequestResult
from loadbench.sim.server import build_app

ITEMS = [
    Item.model_validate({"id": "q1", "input": "Capital of France?", "target": "Paris"}),
    Item.model_validate({"id": "q2", "input": "Weather in Oslo?", "request": {"tools": [{"type": "function", "function": {"name": "get_weather"}}]},
                         "expected_tool_calls": [{"name": "get_weather", "arguments": {"city": ["Oslo", "oslo"], "unit": ["", "celsius"]}}]}),
]
PERFECT = Profile(name="perfect", description="", slots=2, prefill_base_s=0.05, prefill_per_token_s=0.0,
                  decode_per_token_s=0.01, decode_slowdown=0.0, accuracy=1.0, filler_tokens=8,
                  input_per_mtok=0, output_per_mtok=0)


async def ask(base, item_input, *, stream=True, tools=None, api="chat", max_tokens=None):
    params = {}
    if tools:
        params["tools"] = tools
    if max_tokens:
        params["max_tokens"] = max_tokens
    payload = build_payload(api=api, model="sim", stream=stream, messages=[{"role": "user", "content": item_input}],
                            prompt=item_input, params=params)
    settings = ClientSettings(url=base + ("/v1/chat/completions" if api == "chat" else "/v1/completions"),
                              api=api, stream=stream, timeout_s=10, headers={"Content-Type": "application/json"})
    r = RequestResult(seq=0, candidate="c", item_id="x", item_index=0, epoch=0, intended_ns=0, in_window=True)
    clock = MonotonicClock()
    transport = AiohttpTransport(settings.url, settings.headers, limit=8)
    try:
        t0 = clock.now_ns()
        await OpenAIClient(transport, settings, clock).send(payload, len(item_input), r, t0)
    finally:
        await transport.close()
    return r


async def test_answers_items_and_reports_usage(serve_app):
    base = await serve_app(build_app(PERFECT, ITEMS))
    for stream in (True, False):
        r = await ask(base, "Capital of France?", stream=stream)
        assert (r.status, r.text, r.finish_reason, r.token_source) == (OK, "Paris", "stop", "server")
        assert r.input_tokens == 4 and r.output_tokens == 1
    r = await ask(base, "Capital of France?", api="completions")
    assert r.text == "Paris"


async def test_tool_calls_follow_the_expected_calls(serve_app):
    base = await serve_app(build_app(PERFECT, ITEMS))
    r = await ask(base, "Weather in Oslo?", tools=[{"type": "function", "function": {"name": "get_weather"}}])
    assert r.status == OK and r.finish_reason == "tool_calls"
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in r.tool_calls] == [("get_weather", {"city": "Oslo", "unit": "celsius"})]


async def test_unknown_prompt_gets_filler_and_max_tokens_truncates(serve_app):
    base = await serve_app(build_app(PERFECT, ITEMS))
    r = await ask(base, "something else entirely")
    assert r.status == OK and r.output_tokens >= PERFECT.filler_tokens
    r = await ask(base, "something else entirely", max_tokens=3)
    assert r.output_tokens == 3 and r.finish_reason == "length"


async def test_models_endpoint_and_bad_body(serve_app):
    base = await serve_app(build_app(PROFILES["instant"], []))
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/v1/models") as resp:
            assert (await resp.json())["data"][0]["id"] == "sim-instant"
        async with s.post(base + "/v1/chat/completions", data=b"{nope") as resp:
            assert resp.status == 400


async def test_requests_beyond_the_batch_slots_wait_in_a_queue(serve_app):
    base = await serve_app(build_app(PERFECT, ITEMS))  # 2 slots, 50 ms prefill, 1 token
    results = await asyncio.gather(*(ask(base, "Capital of France?") for _ in range(6)))
    ttfts = sorted((r.first_token_ns - r.sent_ns) / 1e9 for r in results)
    # pairs are served in waves of ~50 ms
    assert ttfts[0] == pytest.approx(0.05, abs=0.04)
    assert ttfts[-1] >= 0.14


# ------------------------------------------------------------- sessions, agents, prefix caching

async def post_chat(base, body):
    async with aiohttp.ClientSession() as s, s.post(base + "/v1/chat/completions", json=body) as resp:
        return await resp.json()


def test_prefix_cache_counts_leading_blocks_seen_before():
    from loadbench.sim.model import PREFIX_BLOCK
    from loadbench.sim.server import SimState

    state = SimState(PROFILES["small-fast"], [], seed=0)
    shared = " ".join(f"w{i}" for i in range(100))
    assert state.cached_prefix_tokens(shared + " first") == 0
    assert state.cached_prefix_tokens(shared + " second") == 3 * PREFIX_BLOCK  # 100 tokens: three whole blocks
    assert state.cached_prefix_tokens("other " + shared) == 0
    off = SimState(PROFILES["instant"], [], seed=0)
    assert off.cached_prefix_tokens(shared) == off.cached_prefix_tokens(shared) == 0


async def test_later_turns_are_answered_from_their_own_targets(serve_app):
    multi = Item.model_validate({"id": "m", "input": "My code is K-17.", "target": "noted",
                                 "turns": [{"user": "What was my code?", "target": "K-17"}]})
    base = await serve_app(build_app(PERFECT, [multi]))
    body = {"model": "sim", "messages": [{"role": "user", "content": "My code is K-17."}, {"role": "assistant", "content": "noted"},
                                         {"role": "user", "content": "What was my code?"}]}
    out = await post_chat(base, body)
    assert out["choices"][0]["message"]["content"] == "K-17"
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


async def test_the_simulated_agent_walks_the_expected_calls_then_answers(serve_app):
    agent = Item.model_validate({
        "id": "a", "input": "refund my order", "target": "RF-1",
        "request": {"tools": [{"type": "function", "function": {"name": "find"}}, {"type": "function", "function": {"name": "refund"}}]},
        "expected_tool_calls": [{"name": "find", "arguments": {"q": ["me"]}}, {"name": "refund", "arguments": {"id": [1]}}],
        "tool_results": [{"name": "find", "content": "id 1"}, {"name": "refund", "content": "RF-1"}],
    })
    base = await serve_app(build_app(PERFECT, [agent]))
    messages = [{"role": "user", "content": "refund my order"}]
    names = []
    for _ in range(4):
        out = await post_chat(base, {"model": "sim", "messages": messages, "tools": agent.request.tools})
        msg = out["choices"][0]["message"]
        if not msg.get("tool_calls"):
            assert msg["content"] == "RF-1"
            break
        call = msg["tool_calls"][0]
        names.append((call["function"]["name"], json.loads(call["function"]["arguments"])))
        messages += [{"role": "assistant", "content": None, "tool_calls": msg["tool_calls"]},
                     {"role": "tool", "tool_call_id": call["id"], "content": "ok"}]
    assert names == [("find", {"q": "me"}), ("refund", {"id": 1})]


def test_sim_command_tells_a_person_the_base_url(tmp_path):
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.Popen([sys.executable, "-m", "loadbench", "sim", "--port", "0", "--profile", "instant"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = json.loads(proc.stdout.readline())  # what the processes that start a simulator read
        human = proc.stderr.readline()
        assert line["base_url"] == f"http://127.0.0.1:{line['port']}/v1"
        assert line["base_url"] in human and "base_url" in human
    finally:
        proc.terminate()
        proc.wait(10)


async def test_openai_evals_items_with_a_message_list_input_are_found(serve_app):
    """OpenAI-evals lines put the system message and the question in `input` as a list, with `ideal`:
    the simulator finds those items too (a demo on such a set must not read 0%)."""
    items = [Item.model_validate({"input": [{"role": "system", "content": "Answer with one word."},
                                            {"role": "user", "content": f"Question number {i}?"}],
                                  "ideal": f"answer{i}"}) for i in range(6)]
    base = await serve_app(build_app(PERFECT, items, seed=1))
    async with aiohttp.ClientSession() as session:
        for i, item in enumerate(items):
            messages = [{"role": m.role, "content": m.content} for m in item.input]
            async with session.post(base + "/v1/chat/completions", json={"messages": messages}) as resp:
                body = await resp.json()
            assert body["choices"][0]["message"]["content"].strip() == f"answer{i}", body
