import asyncio

from loadbench.pacing.clock import FakeClock, MonotonicClock


async def test_fake_clock_jumps_to_the_earliest_sleeper():
    clock = FakeClock(start_ns=0)
    order = []

    async def sleeper(name, ns):
        await clock.sleep_ns(ns)
        order.append((name, clock.now_ns()))

    await asyncio.gather(sleeper("b", 2_000), sleeper("a", 1_000), sleeper("c", 3_000))
    assert order == [("a", 1_000), ("b", 2_000), ("c", 3_000)]


async def test_fake_clock_sequential_sleeps_accumulate():
    clock = FakeClock(start_ns=10)
    for _ in range(5):
        await clock.sleep_ns(100)
    assert clock.now_ns() == 510


async def test_monotonic_clock_sleeps_at_least_the_duration():
    clock = MonotonicClock()
    start = clock.now_ns()
    await clock.sleep_ns(3_000_000)
    assert clock.now_ns() - start >= 3_000_000
