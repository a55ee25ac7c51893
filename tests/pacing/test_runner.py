"""The dispatcher under virtual time: exact intended times, open loop, caps, warm-up, stop."""

import asyncio

import numpy as np
import pytest

from loadbench.pacing.clock import FakeClock
from loadbench.pacing.pacer import ItemOrder
from loadbench.pacing.records import CANCELLED, DROPPED, OK
from loadbench.pacing.runner import Lane, Plan, Runner

MS = 1_000_000


def plan_of(offsets_ms, n_items=3, warmup_ms=0):
    return Plan(
        offsets_ns=np.array([int(o * MS) for o in offsets_ms], dtype=np.int64),
        order=ItemOrder(n_items, seed=1),
        item_ids=[f"i{k}" for k in range(n_items)],
        warmup_ns=warmup_ms * MS,
    )


def stub_lane(name, clock, service_ms, max_in_flight=1000):
    """A send function that takes `service_ms(seq)` of virtual time."""

    async def send(item_index, r, t0_ns):
        r.sent_ns = clock.now_ns() - t0_ns
        await clock.sleep_ns(int(service_ms(r.seq) * MS))
        r.done_ns = clock.now_ns() - t0_ns
        r.first_token_ns = r.done_ns

    return Lane(name, send, max_in_flight)


async def run(plan, lanes, clock, **kw):
    out = []
    runner = Runner(plan, lanes, out.append, clock, **kw)
    outcome = await runner.run()
    return sorted(out, key=lambda r: (r.candidate, r.seq)), outcome, runner


async def test_requests_are_sent_exactly_at_their_intended_times():
    clock = FakeClock()
    offsets = [0, 10, 10, 25, 100]
    records, outcome, _ = await run(plan_of(offsets), [stub_lane("a", clock, lambda s: 5)], clock)
    assert [r.intended_ns for r in records] == [o * MS for o in offsets]
    assert [r.sent_ns for r in records] == [o * MS for o in offsets]
    assert all(r.status == OK for r in records)
    assert outcome.dispatched == 5


async def test_a_slow_response_never_delays_the_next_send():
    clock = FakeClock()
    # request 0 takes 1 s; the others are due every 10 ms meanwhile
    records, _, _ = await run(plan_of([0, 10, 20, 30]), [stub_lane("a", clock, lambda s: 1000 if s == 0 else 1)], clock)
    assert [r.sent_ns for r in records] == [0, 10 * MS, 20 * MS, 30 * MS]
    assert records[0].latency_ns == 1000 * MS
    assert all(r.schedule_lag_ns == 0 for r in records)


async def test_every_candidate_gets_the_same_schedule_and_items():
    clock = FakeClock()
    lanes = [stub_lane("a", clock, lambda s: 3), stub_lane("b", clock, lambda s: 50)]
    records, _, _ = await run(plan_of([0, 5, 7, 40], n_items=2), lanes, clock)
    a = [(r.seq, r.intended_ns, r.item_id, r.epoch) for r in records if r.candidate == "a"]
    b = [(r.seq, r.intended_ns, r.item_id, r.epoch) for r in records if r.candidate == "b"]
    assert a == b and len(a) == 4
    assert [e for *_, e in a] == [0, 0, 1, 1]


async def test_queue_policy_waits_for_a_slot_and_latency_counts_the_wait():
    clock = FakeClock()
    lane = stub_lane("a", clock, lambda s: 100, max_in_flight=1)
    records, _, _ = await run(plan_of([0, 10, 20]), [lane], clock, on_saturation="queue")
    assert [r.status for r in records] == [OK, OK, OK]
    assert [r.sent_ns for r in records] == [0, 100 * MS, 200 * MS]
    # headline latency is from the intended time, so it includes the queueing
    assert [r.latency_ns for r in records] == [100 * MS, 190 * MS, 280 * MS]
    assert [r.service_ns for r in records] == [100 * MS] * 3
    assert [r.schedule_lag_ns for r in records] == [0, 90 * MS, 180 * MS]


async def test_drop_policy_counts_drops_and_never_sends_them():
    clock = FakeClock()
    lane = stub_lane("a", clock, lambda s: 100, max_in_flight=2)
    records, _, _ = await run(plan_of([0, 10, 20, 30, 150]), [lane], clock, on_saturation="drop")
    assert [r.status for r in records] == [OK, OK, DROPPED, DROPPED, OK]
    assert all(r.sent_ns == -1 for r in records if r.status == DROPPED)
    assert records[4].schedule_lag_ns == 0


async def test_warmup_requests_are_marked_out_of_window():
    clock = FakeClock()
    records, _, _ = await run(plan_of([0, 50, 99, 100, 150], warmup_ms=100), [stub_lane("a", clock, lambda s: 1)], clock)
    assert [r.in_window for r in records] == [False, False, False, True, True]


async def test_stop_waits_for_grace_then_cancels_and_records_everything():
    clock = FakeClock()
    lane = stub_lane("a", clock, lambda s: 10_000 if s == 1 else 5)
    out = []
    runner = Runner(plan_of([0, 10, 20, 30, 10_000]), [lane], out.append, clock, grace_ns=500 * MS)

    async def stopper():
        await clock.sleep_ns(25 * MS)
        runner.request_stop("test stop")

    outcome, _ = await asyncio.gather(runner.run(), stopper())
    by_seq = {r.seq: r for r in out}
    assert outcome.stop_reason == "test stop"
    assert sorted(by_seq) == [0, 1, 2]  # 30 ms and later were never due
    assert by_seq[1].status == CANCELLED and by_seq[1].error_class == "cancelled"
    assert by_seq[0].status == OK and by_seq[2].status == OK
    assert outcome.cancelled_in_flight == 1
    # cancelled after exactly the grace period
    assert by_seq[1].done_ns == pytest.approx(25 * MS + 500 * MS, abs=1 * MS)


async def test_second_stop_cancels_at_once():
    clock = FakeClock()
    lane = stub_lane("a", clock, lambda s: 60_000)
    out = []
    runner = Runner(plan_of([0]), [lane], out.append, clock, grace_ns=30_000 * MS)

    async def stopper():
        await clock.sleep_ns(5 * MS)
        runner.request_stop()
        await clock.sleep_ns(5 * MS)
        runner.request_stop()

    await asyncio.gather(runner.run(), stopper())
    assert out[0].status == CANCELLED
    assert out[0].done_ns < 100 * MS


async def test_a_crashing_send_is_recorded_as_internal_error_not_raised():
    clock = FakeClock()

    async def broken(item_index, r, t0_ns):
        raise RuntimeError("boom")

    records, _, _ = await run(plan_of([0, 1]), [Lane("a", broken, 10)], clock)
    assert [r.error_class for r in records] == ["internal", "internal"]


async def test_closed_loop_users_send_back_to_back():
    clock = FakeClock()
    lane = stub_lane("a", clock, lambda s: 10)
    plan = Plan(offsets_ns=np.zeros(0, dtype=np.int64), order=ItemOrder(4, 0), item_ids=list("abcd"),
                mode="closed", users=2, requests=6)
    records, _, _ = await run(plan, [lane], clock)
    assert len(records) == 6
    assert sorted(r.sent_ns for r in records) == [0, 0, 10 * MS, 10 * MS, 20 * MS, 20 * MS]
    assert all(r.latency_ns == r.service_ns == 10 * MS for r in records)


async def test_partitioned_plans_together_send_exactly_the_whole_plan():
    clock = FakeClock()
    whole = plan_of([0, 3, 5, 9, 12, 20, 21], n_items=4)
    merged = []
    for k in range(3):
        part_clock = FakeClock()
        records, _, _ = await run(whole.partition(k, 3), [stub_lane("a", part_clock, lambda s: 2)], part_clock)
        merged += records
    single, _, _ = await run(whole, [stub_lane("a", clock, lambda s: 2)], clock)
    key = lambda r: (r.seq, r.intended_ns, r.item_id, r.epoch, r.latency_ns)
    assert sorted(map(key, merged)) == sorted(map(key, single))
    with pytest.raises(ValueError):
        whole.partition(3, 3)
