"""Sessions: think time, follow-up requests, canned tool results, and the runner driving them."""

import asyncio
import json

import numpy as np
import pytest
from aiohttp import web

from loadbench.config.dataset import Item
from loadbench.drive.conversation import NO_RESULT, ConversationDriver, ThinkTime, match_tool_result
from loadbench.pacing.clock import FakeClock
from loadbench.pacing.pacer import ItemOrder
from loadbench.pacing.records import CANCELLED, ERROR, OK, RequestResult
from loadbench.pacing.runner import Lane, Plan, Runner

MS = 1_000_000


def chat_item(**kw):
    kw.setdefault("id", "s1")
    kw.setdefault("input", "first question")
    return Item.model_validate(kw)


def record(item_index=0, seq=0, step=0, turn=0, done_ms=10, text="", tool_calls=None, status=OK):
    r = RequestResult(seq=seq, candidate="a", item_id="s1", item_index=item_index, epoch=0, intended_ns=0, in_window=True,
                      turn=turn, step=step)
    r.done_ns = done_ms * MS
    r.text = text
    r.tool_calls = tool_calls
    r.status = status
    return r


def call(name, args, cid=None):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


# ------------------------------------------------------------------------- think time

@pytest.mark.parametrize("dist", ["fixed", "uniform", "exponential", "lognormal"])
def test_think_time_is_deterministic_per_session_and_turn_with_the_asked_mean(dist):
    think = ThinkTime(dist, mean_s=2.0, min_s=0.5 if dist == "uniform" else 0.0)
    draws = [think.draw_ns(7, seq, 1) for seq in range(4000)]
    assert draws == [think.draw_ns(7, seq, 1) for seq in range(4000)]
    assert draws != [think.draw_ns(8, seq, 1) for seq in range(4000)] or dist == "fixed"
    assert np.mean(draws) / 1e9 == pytest.approx(2.0, rel=0.06)


def test_think_time_bounds_and_zero():
    assert ThinkTime("exponential", 0.0).draw_ns(1, 2, 3) == 0
    capped = ThinkTime("exponential", mean_s=5.0, min_s=1.0, max_s=2.0)
    assert all(1e9 <= capped.draw_ns(0, s, 1) <= 2e9 for s in range(500))


# ------------------------------------------------------------------------- tool results

def test_tool_results_match_by_name_and_argument_subset_then_default():
    it = chat_item(tool_results=[
        {"name": "lookup", "arguments": {"city": "Oslo"}, "content": {"temp": 3}},
        {"name": "lookup", "content": "anywhere else: mild"},
        {"name": "fail", "content": "quota exceeded", "error": True},
    ], default_tool_result="error: unknown tool")
    assert match_tool_result(it, "lookup", {"city": " oslo ", "unit": "c"}) == ('{"temp":3}', "canned", False)
    assert match_tool_result(it, "lookup", {"city": "Rome"}) == ("anywhere else: mild", "canned", False)
    assert match_tool_result(it, "fail", {}) == ("quota exceeded", "canned", True)
    assert match_tool_result(it, "other", {}) == ("error: unknown tool", "default", True)
    bare = chat_item(tool_results=[])
    assert match_tool_result(bare, "x", "not json") == (NO_RESULT, "none", True)


# ------------------------------------------------------------------------- the driver

def test_multi_turn_appends_the_actual_reply_then_the_next_user_turn_after_think_time():
    it = chat_item(turns=[{"user": "second"}, {"user": "third"}])
    driver = ConversationDriver([it], [it.messages()], ThinkTime("fixed", 0.5), seed=1)
    r0 = record(done_ms=100, text="reply one")
    r1 = driver.follow_up(r0)
    assert r0.last is False and r0.phase == "answer"
    assert (r1.turn, r1.step, r1.seq, r1.intended_ns) == (1, 1, 0, 600 * MS)
    assert driver.messages(0) == [{"role": "user", "content": "first question"},
                                  {"role": "assistant", "content": "reply one"}, {"role": "user", "content": "second"}]
    r1.done_ns, r1.text, r1.status = 900 * MS, "reply two", OK
    r2 = driver.follow_up(r1)
    assert r2.turn == 2 and r2.intended_ns == 1400 * MS
    r2.done_ns, r2.status = 1500 * MS, OK
    assert driver.follow_up(r2) is None
    assert r2.last is True and driver.open_sessions == 0


def test_a_failed_turn_ends_the_session():
    it = chat_item(turns=[{"user": "second"}])
    driver = ConversationDriver([it], [it.messages()], ThinkTime(), seed=1)
    r0 = record(status=ERROR)
    assert driver.follow_up(r0) is None and r0.last
    assert driver.open_sessions == 0


def test_single_turn_items_have_no_follow_up():
    it = chat_item()
    driver = ConversationDriver([it], [it.messages()], ThinkTime(), seed=1)
    r = record(text="x")
    assert driver.follow_up(r) is None and r.last and r.phase == "answer"


def test_agent_loop_answers_calls_with_canned_results_then_scores_the_trajectory():
    it = chat_item(tool_results=[{"name": "find", "arguments": {"q": "a"}, "content": "id=7"}],
                   default_tool_result="error: not found")
    driver = ConversationDriver([it], [it.messages()], ThinkTime("fixed", 9.0), seed=1)
    r0 = record(done_ms=20, tool_calls=[call("find", {"q": "b"}, "c1")])
    r1 = driver.follow_up(r0)
    assert r0.phase == "tool" and not r0.last and r1.intended_ns == 20 * MS  # tool steps: no think time
    r1.done_ns, r1.status, r1.tool_calls = 40 * MS, OK, [call("find", {"q": "b"}, "c2")]  # the same failed call again
    r2 = driver.follow_up(r1)
    r2.done_ns, r2.status, r2.tool_calls = 60 * MS, OK, [call("find", {"q": "a"}, None)]
    r3 = driver.follow_up(r2)
    messages = driver.messages(0)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert messages[2] == {"role": "tool", "tool_call_id": "c1", "content": "error: not found"}
    assert messages[6]["content"] == "id=7" and messages[6]["tool_call_id"] == messages[5]["tool_calls"][0]["id"]
    r3.done_ns, r3.status, r3.text = 80 * MS, OK, "the id is 7"
    assert driver.follow_up(r3) is None
    assert r3.phase == "answer" and r3.last and r3.step == 3
    t = r3.trajectory
    assert t["steps"] == 4 and t["stopped"] is True and t["retries"] == 1
    assert [(c["name"], c["result"], c["retry"]) for c in t["calls"]] == [
        ("find", "default", False), ("find", "default", True), ("find", "canned", False)]


def test_agent_that_never_stops_is_cut_at_max_steps():
    it = chat_item(tool_results=[{"name": "find", "content": "more"}], max_steps=3)
    driver = ConversationDriver([it], [it.messages()], ThinkTime(), seed=1)
    r = record(tool_calls=[call("find", {})])
    steps = [r]
    while (nxt := driver.follow_up(r)) is not None:
        nxt.status, nxt.done_ns, nxt.tool_calls = OK, r.done_ns + MS, [call("find", {})]
        r = nxt
        steps.append(r)
    assert len(steps) == 3 and [s.phase for s in steps] == ["tool", "tool", "answer"]
    assert steps[-1].trajectory["stopped"] is False and steps[-1].trajectory["steps"] == 3


# ------------------------------------------------------------------------- the runner

def session_lane(clock, driver, service_ms=100):
    async def send(item_index, r, t0_ns):
        r.sent_ns = clock.now_ns() - t0_ns
        await clock.sleep_ns(service_ms * MS)
        r.done_ns = clock.now_ns() - t0_ns
        r.first_token_ns = r.done_ns
        r.text = f"reply {r.turn}"

    return Lane("a", send, 100, follow_up=driver.follow_up)


async def test_sessions_arrive_open_loop_and_turns_follow_the_think_time():
    clock = FakeClock()
    it = chat_item(turns=[{"user": "t2"}, {"user": "t3"}])
    driver = ConversationDriver([it], [it.messages()], ThinkTime("fixed", 1.0), seed=0)
    plan = Plan(offsets_ns=np.array([0, 50 * MS, 2000 * MS], dtype=np.int64), order=ItemOrder(1, 0), item_ids=["s1"])
    out = []
    await Runner(plan, [session_lane(clock, driver)], out.append, clock).run()
    by_session = {}
    for r in out:
        by_session.setdefault(r.seq, []).append(r)
    assert sorted(by_session) == [0, 1, 2] and all(len(v) == 3 for v in by_session.values())
    for seq, start_ms in ((0, 0), (1, 50), (2, 2000)):
        turns = sorted(by_session[seq], key=lambda r: r.turn)
        # session arrivals are the plan's; each next turn is intended 1 s after the previous reply completed
        assert [r.intended_ns for r in turns] == [start_ms * MS, (start_ms + 1100) * MS, (start_ms + 2200) * MS]
        assert [r.sent_ns for r in turns] == [r.intended_ns for r in turns]
        assert [r.last for r in turns] == [False, False, True]
        assert [r.step for r in turns] == [0, 1, 2]


async def test_stop_during_think_time_cancels_the_next_turn_and_loses_nothing():
    clock = FakeClock()
    it = chat_item(turns=[{"user": "t2"}])
    driver = ConversationDriver([it], [it.messages()], ThinkTime("fixed", 30.0), seed=0)
    plan = Plan(offsets_ns=np.array([0], dtype=np.int64), order=ItemOrder(1, 0), item_ids=["s1"])
    out = []
    runner = Runner(plan, [session_lane(clock, driver)], out.append, clock, grace_ns=60_000 * MS)

    async def stop_later():
        await clock.sleep_ns(1000 * MS)
        runner.request_stop("test")

    stopper = asyncio.get_running_loop().create_task(stop_later())
    await runner.run()
    await stopper
    assert [(r.turn, r.status) for r in sorted(out, key=lambda r: r.turn)] == [(0, OK), (1, CANCELLED)]
    assert out[-1].last and "before this turn" in out[-1].error
    assert clock.now_ns() < 30_000 * MS  # did not sit out the think time


# ------------------------------------------------------------------------- against a real server

async def test_a_real_server_receives_the_full_history_and_the_canned_tool_results(tmp_path, unused_tcp_port):
    from loadbench.config.scenario import load_scenario
    from loadbench.engine.execute import execute
    from loadbench.plan.resolve import resolve

    seen: list[list[dict]] = []

    async def chat(request):
        body = await request.json()
        seen.append(body["messages"])
        messages = body["messages"]
        if body.get("tools") and not any(m["role"] == "tool" for m in messages):
            msg = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]}
            finish = "tool_calls"
        else:
            msg = {"role": "assistant", "content": f"answer {len(messages)}"}
            finish = "stop"
        return web.json_response({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})

    async def models(_request):
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(x) for x in [
            {"id": "chat", "input": "hello", "target": "answer", "assert": [{"type": "contains", "value": "answer"}],
             "turns": [{"user": "and again", "assert": [{"type": "contains", "value": "answer 3"}]}]},
            {"id": "agent", "input": "weather in Oslo?", "target": "answer", "request": {"tools": [
                {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]},
             "expected_tool_calls": [{"name": "weather", "arguments": {"city": ["Oslo"]}}],
             "tool_results": [{"name": "weather", "arguments": {"city": "Oslo"}, "content": "3 degrees"}]},
        ]) + "\n")
        (tmp_path / "s.yaml").write_text(f"""
dataset: d.jsonl
candidates:
  - name: real
    base_url: http://127.0.0.1:{unused_tcp_port}/v1
    stream: false
load: {{arrival: constant, rate_qps: 20, requests: 2, seed: 1, think_time_s: 0.05}}
""")
        scenario, sdir = load_scenario(tmp_path / "s.yaml")
        result = await execute(resolve(scenario, str(tmp_path / "s.yaml"), sdir), out_root=tmp_path / "runs",
                               quiet=True, install_signal_handlers=False)
    finally:
        await runner.cleanup()
    histories = {json.dumps(m) for m in seen}
    assert json.dumps([{"role": "user", "content": "hello"}, {"role": "assistant", "content": "answer 1"},
                       {"role": "user", "content": "and again"}]) in histories
    agent_follow = [m for m in seen if any(x["role"] == "tool" for x in m)]
    assert len(agent_follow) == 1
    assert agent_follow[0][1]["tool_calls"][0]["id"] == "call_9"
    assert agent_follow[0][2] == {"role": "tool", "tool_call_id": "call_9", "content": "3 degrees"}
    rows = [json.loads(line) for line in (result.run_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4  # two requests per session, one record each
    by = {(r["item_id"], r["step"]): r for r in rows}
    assert by[("chat", 1)]["turn"] == 1 and by[("chat", 1)]["verdict"] == "pass"
    assert by[("agent", 0)]["phase"] == "tool" and by[("agent", 0)]["verdict"] is None
    assert by[("agent", 1)]["trajectory"]["stopped"] is True
    assert by[("agent", 1)]["verdict"] == "pass"
    sessions = result.summary["candidates"]["real"]["sessions"]
    assert sessions["sessions"]["passed"] == 1 and sessions["tasks"]["passed"] == 1
    assert sessions["by_turn"]["2"]["requests"] == 1


def test_the_bundled_sessions_scenario_reports_turns_and_tasks(tmp_path, capsys):
    from pathlib import Path

    from loadbench.cli.main import main

    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "sessions.yaml"
    code = main(["run", str(scenario), "--no-metrics", "--fail-on", "none", "--out", str(tmp_path),
                 "--set", "load.duration_s=6", "--set", "load.warmup_s=0", "--set", "load.rate_qps=4"])
    out = capsys.readouterr().out
    assert code == 0
    assert "multi-turn sessions" in out and "agentic tasks" in out and "turn 2" in out and "step 2" in out
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    for c in summary["candidates"].values():
        s = c["sessions"]
        assert s["sessions"]["sessions"] > 0 and s["tasks"]["sessions"] > 0
        assert s["by_turn"]["1"]["requests"] >= s["by_turn"]["2"]["requests"] > 0
        assert s["tasks"]["steps_mean"] >= 2
    html = (run_dir / "report.html").read_text()
    assert "Agentic tasks" in html and "By turn" in html
