"""Session views: per-turn rows, whole-session verdicts, agentic task counts, order independence."""

import random

from loadbench.pacing.records import ERROR, OK, RequestResult
from loadbench.stats.quality import QualityAggregator
from loadbench.stats.sessions import SessionAggregator

MS = 1_000_000


def rec(seq, step, *, turn=None, verdict="pass", last=False, phase="answer", item=0, status=OK, cost=0.001,
        intended_ms=None, done_ms=None, trajectory=None, input_tokens=10):
    r = RequestResult(seq=seq, candidate="c", item_id=f"i{item}", item_index=item, epoch=0,
                      intended_ns=(intended_ms if intended_ms is not None else seq * 10_000 + step * 1000) * MS, in_window=True,
                      turn=step if turn is None else turn, step=step, phase=phase, last=last)
    r.status = status
    r.verdict = verdict if status == OK else "skipped"
    r.sent_ns = r.intended_ns
    r.done_ns = r.intended_ns + (done_ms or 100) * MS
    r.first_token_ns = r.intended_ns + 20 * MS
    r.cost_usd = cost
    r.input_tokens = input_tokens * (r.turn + 1)
    r.trajectory = trajectory
    return r


def test_a_session_passes_only_when_every_turn_passes_and_turn_rows_grow_with_context():
    agg = SessionAggregator(agentic_items=set(), session_items={0})
    for r in [rec(0, 0), rec(0, 1), rec(0, 2, last=True),
              rec(1, 0), rec(1, 1, verdict="fail"), rec(1, 2, last=True),
              rec(2, 0), rec(2, 1, status=ERROR, last=True)]:
        agg.add(r)
    view = agg.candidate_summary("c", span_s=30.0)
    s = view["sessions"]
    assert (s["sessions"], s["completed"], s["passed"], s["failed"]) == (3, 2, 1, 1)
    assert s["requests_per_session"] == 8 / 3 and s["sessions_per_s"] == 0.1
    assert s["cost_per_session_usd"] == 0.008 / 3
    assert view["by_turn"]["2"]["accuracy"] == 0.5 and view["by_turn"]["2"]["requests"] == 3
    assert view["by_turn"]["1"]["input_tokens_mean"] == 10 and view["by_turn"]["3"]["input_tokens_mean"] == 30
    assert view["unfinished"] == 0 and "tasks" not in view


def test_records_out_of_order_still_close_the_session_once():
    records = [rec(s, k, last=(k == 3)) for s in range(20) for k in range(4)]
    random.Random(4).shuffle(records)
    agg = SessionAggregator(set(), {0})
    for r in records:
        agg.add(r)
    view = agg.candidate_summary("c", 10.0)
    assert view["sessions"]["sessions"] == 20 and view["unfinished"] == 0
    assert view["sessions"]["duration_s"]["count"] == 20
    assert abs(view["sessions"]["duration_s"]["p50"] - 3.1) < 0.01  # first intended -> last done


def test_agentic_tasks_count_steps_retries_and_stops():
    agg = SessionAggregator(agentic_items={0}, session_items={0})
    stopped = {"calls": [{}, {}], "steps": 3, "stopped": True, "retries": 1}
    looping = {"calls": [{}] * 4, "steps": 4, "stopped": False, "retries": 0}
    for r in [rec(0, 0, turn=0, phase="tool", verdict=None), rec(0, 1, turn=0, phase="tool", verdict=None),
              rec(0, 2, turn=0, last=True, trajectory=stopped),
              *[rec(1, k, turn=0, phase="tool", verdict=None) for k in range(3)],
              rec(1, 3, turn=0, last=True, verdict="fail", trajectory=looping)]:
        agg.add(r)
    view = agg.candidate_summary("c", 1.0)
    t = view["tasks"]
    assert (t["sessions"], t["passed"], t["failed"], t["max_steps_hit"]) == (2, 1, 1, 1)
    assert t["stopped_by_itself"] == 0.5 and t["steps_mean"] == 3.5 and t["retry_rate"] == 1 / 6
    assert view["by_step"]["1"]["requests"] == 2 and view["by_step"]["4"]["requests"] == 1
    assert "by_turn" not in view


def test_quality_pairs_whole_sessions_and_skips_tool_steps():
    q = QualityAggregator(["c"], [[]], sessions=SessionAggregator({1}, {0, 1}))
    for r in [rec(0, 0), rec(0, 1, verdict="fail", last=True),
              rec(1, 0, item=1, phase="tool", verdict=None), rec(1, 1, item=1, turn=0, last=True)]:
        q.add(r)
    c = q.candidates["c"]
    assert c.verdict_by_seq[0] == 2  # fail: one of its turns failed
    assert c.verdict_by_seq[1] == 1
    assert c.attempted == 3  # the tool step is part of its task, not an attempt of its own
    assert c.overall.pass_ == 2 and c.overall.fail == 1
