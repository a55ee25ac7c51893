"""The open-loop dispatcher: sends every request at its intended time, for every candidate."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from .clock import Clock
from .pacer import ItemOrder
from .records import CANCELLED, DROPPED, ERROR, RequestResult

# A lane sends one request for one candidate: fill `r`, never raise for a failed request.
SendFn = Callable[[int, RequestResult, int], Awaitable[None]]  # (item_index, record, t0_ns)
Sink = Callable[[RequestResult], None]
# After a request of a session: the session's next request (its intended time set), or None.
FollowUpFn = Callable[[RequestResult], "RequestResult | None"]

MAX_SLEEP_NS = 50_000_000  # wake at least every 50 ms to notice a stop request
LOOP_LAG_INTERVAL_NS = 5_000_000


@dataclass(slots=True)
class Lane:
    """One candidate's side of the run: its send function and in-flight cap."""

    name: str
    send: SendFn
    max_in_flight: int
    follow_up: FollowUpFn | None = None  # sessions: multi-turn items and agentic tool loops
    in_flight: int = 0  # admitted and not finished (includes requests waiting for a slot)
    active: int = 0  # holding a slot
    _slots: asyncio.Semaphore | None = None


@dataclass(slots=True)
class Plan:
    """Pure description of what to send and when."""

    offsets_ns: np.ndarray  # intended send offsets from t0 (open loop)
    order: ItemOrder
    item_ids: list[str]
    warmup_ns: int = 0
    # Closed loop: `users` per candidate send back to back until `requests` (counted after
    # warm-up) or until warm-up + `duration_ns`.
    mode: str = "open"
    users: int = 0
    requests: int | None = None
    duration_ns: int | None = None
    # Schedule positions of `offsets_ns` when this plan is one partition of a larger one.
    seqs: np.ndarray | None = None
    # Closed loop, one partition of `seq_stride`: this part's k-th request is position k * stride + offset.
    seq_stride: int = 1
    seq_offset: int = 0

    def partition(self, index: int, count: int) -> Plan:
        """Every count-th arrival starting at `index`: worker `index` of `count` sends these.
        Positions (and so items and intended times) are those of the whole plan, so merged
        results equal a single worker's.  Closed loop: a share of the users and of the request
        budget, with positions interleaved so that no two parts use the same one."""
        if not 0 <= index < count:
            raise ValueError("partition index out of range")
        if self.mode == "closed":
            def share(total: int) -> int:
                return total // count + (index < total % count)

            return Plan(
                offsets_ns=self.offsets_ns, order=self.order, item_ids=self.item_ids, warmup_ns=self.warmup_ns,
                mode="closed", users=share(self.users), requests=None if self.requests is None else share(self.requests),
                duration_ns=self.duration_ns, seq_stride=count, seq_offset=index,
            )
        seqs = np.arange(len(self.offsets_ns), dtype=np.int64) if self.seqs is None else self.seqs
        return Plan(
            offsets_ns=self.offsets_ns[index::count], order=self.order, item_ids=self.item_ids,
            warmup_ns=self.warmup_ns, mode=self.mode, users=self.users, requests=self.requests,
            duration_ns=self.duration_ns, seqs=seqs[index::count],
        )


@dataclass(slots=True)
class RunOutcome:
    t0_ns: int
    end_ns: int  # offset of the end of the run from t0
    dispatched: int  # schedule positions whose time came
    planned: int
    stop_reason: str
    cancelled_in_flight: int = 0
    extra: dict[str, object] = field(default_factory=dict)


class Runner:
    """Dispatches a Plan over lanes.  Time comes only from the injected clock."""

    def __init__(
        self,
        plan: Plan,
        lanes: list[Lane],
        sink: Sink,
        clock: Clock,
        *,
        on_saturation: str = "queue",
        grace_ns: int = 10_000_000_000,
        loop_lag_sink: Callable[[int], None] | None = None,
    ) -> None:
        if on_saturation not in ("queue", "drop"):
            raise ValueError("on_saturation must be queue or drop")
        self.plan = plan
        self.lanes = lanes
        self.sink = sink
        self.clock = clock
        self.on_saturation = on_saturation
        self.grace_ns = grace_ns
        self._loop_lag_sink = loop_lag_sink
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._hard_stop = asyncio.Event()
        self.stop_reason = "completed"
        self._stop_requested_ns = 0
        self.t0_ns = 0
        self.dispatched = 0
        for lane in lanes:
            lane._slots = asyncio.Semaphore(lane.max_in_flight)

    # ------------------------------------------------------------------ control

    def request_stop(self, reason: str = "interrupted") -> None:
        """First call: stop scheduling and drain for the grace period.  Second: cancel now."""
        if self._stop.is_set():
            self._hard_stop.set()
            return
        self.stop_reason = reason
        self._stop_requested_ns = self.clock.now_ns()
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # ------------------------------------------------------------------ run

    async def run(self, t0_ns: int | None = None) -> RunOutcome:
        clock = self.clock
        self.t0_ns = clock.now_ns() if t0_ns is None else t0_ns
        lag_task = asyncio.get_running_loop().create_task(self._loop_lag_meter()) if self._loop_lag_sink else None
        try:
            if self.t0_ns > clock.now_ns():  # a start time shared with other workers, just ahead
                await clock.sleep_until_ns(self.t0_ns)
            if self.plan.mode == "closed":
                await self._run_closed()
            else:
                await self._run_open()
            end_of_dispatch = clock.now_ns()
            await self._drain()
            cancelled = await self._cancel_rest()
        finally:
            if lag_task is not None:
                lag_task.cancel()
                await asyncio.gather(lag_task, return_exceptions=True)
        return RunOutcome(
            t0_ns=self.t0_ns,
            end_ns=clock.now_ns() - self.t0_ns,
            dispatched=self.dispatched,
            planned=len(self.plan.offsets_ns) if self.plan.mode == "open" else self.dispatched,
            stop_reason=self.stop_reason,
            cancelled_in_flight=cancelled,
            extra={"dispatch_end_ns": end_of_dispatch - self.t0_ns},
        )

    async def _run_open(self) -> None:
        clock = self.clock
        t0 = self.t0_ns
        offsets = self.plan.offsets_ns.tolist()  # plain ints: cheaper to compare than numpy scalars
        seqs = self.plan.seqs.tolist() if self.plan.seqs is not None else range(len(offsets))
        n = len(offsets)
        i = 0
        stop = self._stop
        while i < n and not stop.is_set():
            now = clock.now_ns() - t0
            # Dispatch everything whose time has come, each stamped with its own intended time.
            while i < n and offsets[i] <= now:
                for lane in self.lanes:
                    self._dispatch(lane, seqs[i], offsets[i])
                i += 1
            self.dispatched = i
            if i >= n:
                break
            # Wake at the next intended time (or sooner, to notice a stop request).
            now_abs = clock.now_ns()
            await clock.sleep_until_ns(min(t0 + offsets[i], now_abs + MAX_SLEEP_NS))

    def _dispatch(self, lane: Lane, seq: int, intended_ns: int) -> None:
        plan = self.plan
        item, epoch = plan.order.at(seq)
        r = RequestResult(
            seq=seq,
            candidate=lane.name,
            item_id=plan.item_ids[item],
            item_index=item,
            epoch=epoch,
            intended_ns=intended_ns,
            in_window=intended_ns >= plan.warmup_ns,
        )
        if lane.in_flight >= lane.max_in_flight and self.on_saturation == "drop":
            r.status = DROPPED
            r.error_class = "dropped"
            self.sink(r)
            return
        lane.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._execute(lane, r))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, lane: Lane, r: RequestResult) -> None:
        follow_up = lane.follow_up
        try:
            slots = lane._slots
            assert slots is not None
            while True:
                async with slots:
                    lane.active += 1
                    try:
                        await lane.send(r.item_index, r, self.t0_ns)
                    finally:
                        lane.active -= 1
                nxt = follow_up(r) if follow_up is not None else None
                if nxt is None:
                    break
                # A session goes on: this request is finished data now; the next one is
                # intended after the think time (tool steps: at once) and waits for a slot.
                self.sink(r)
                r = nxt
                if await self._wait_for_turn(r.intended_ns):
                    r.status = CANCELLED
                    r.error_class = "cancelled"
                    r.error = "the run stopped before this turn of the session was sent"
                    r.done_ns = self.clock.now_ns() - self.t0_ns
                    break
        except asyncio.CancelledError:
            r.status = CANCELLED
            r.error_class = "cancelled"
            r.error = "cancelled when the run stopped"
            r.done_ns = self.clock.now_ns() - self.t0_ns
        except Exception as exc:  # a bug in loadbench must not take the run down
            r.status = ERROR
            r.error_class = "internal"
            r.error = f"{type(exc).__name__}: {exc}"
            r.done_ns = self.clock.now_ns() - self.t0_ns
        finally:
            lane.in_flight -= 1
            self.sink(r)

    async def _wait_for_turn(self, intended_ns: int) -> bool:
        """Sleep until a session's next intended time; True when the run stopped meanwhile."""
        clock = self.clock
        target = self.t0_ns + intended_ns
        while not self._stop.is_set():
            now = clock.now_ns()
            if now >= target:
                return False
            # A coarse loop timer: the precise timerfd belongs to the arrival pacer, and a turn a
            # millisecond late shows up as its schedule lag anyway.
            await clock.sleep_ns(min(target - now, MAX_SLEEP_NS))
        return True

    async def _run_closed(self) -> None:
        plan = self.plan
        deadline = None if plan.duration_ns is None else plan.warmup_ns + plan.duration_ns
        counter = {lane.name: 0 for lane in self.lanes}
        measured = {lane.name: 0 for lane in self.lanes}
        stride, offset = plan.seq_stride, plan.seq_offset

        async def user(lane: Lane) -> None:
            # Each user sends its next request as soon as the previous one is done; the
            # request runs inline (no task per request): users are tasks the stop logic drains.
            while not self._stop.is_set():
                local = counter[lane.name]
                seq = local * stride + offset
                now = self.clock.now_ns() - self.t0_ns
                in_window = now >= plan.warmup_ns
                if deadline is not None and now >= deadline:
                    return
                if plan.requests is not None and in_window and measured[lane.name] >= plan.requests:
                    return
                counter[lane.name] = local + 1
                measured[lane.name] += in_window
                self.dispatched = max(self.dispatched, local + 1)
                item, epoch = plan.order.at(seq)
                # Closed loop: the request is "intended" when the user is free to send it.
                r = RequestResult(
                    seq=seq, candidate=lane.name, item_id=plan.item_ids[item], item_index=item,
                    epoch=epoch, intended_ns=now, in_window=in_window,
                )
                lane.in_flight += 1
                await self._execute(lane, r)
                if r.status == CANCELLED:
                    return

        loop = asyncio.get_running_loop()
        users = [loop.create_task(user(lane)) for lane in self.lanes for _ in range(plan.users)]
        for task in users:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        stop_waiter = loop.create_task(self._stop.wait())
        try:
            await asyncio.wait([*users, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
            while not self._stop.is_set() and any(not t.done() for t in users):
                await asyncio.wait([*(t for t in users if not t.done()), stop_waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_waiter.cancel()

    async def _drain(self) -> None:
        """Wait for requests in flight: bounded by the grace period once a stop was asked,
        and by each request's own timeout otherwise."""
        while self._tasks and not self._hard_stop.is_set():
            if self._stop.is_set():
                deadline = self._stop_requested_ns + self.grace_ns
                while self._tasks and not self._hard_stop.is_set() and self.clock.now_ns() < deadline:
                    await self.clock.sleep_ns(min(MAX_SLEEP_NS, deadline - self.clock.now_ns()))
                return
            await self.clock.sleep_ns(MAX_SLEEP_NS // 5)

    async def _cancel_rest(self) -> int:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def _loop_lag_meter(self) -> None:
        clock = self.clock
        sink = self._loop_lag_sink
        assert sink is not None
        while True:
            before = clock.now_ns()
            await asyncio.sleep(LOOP_LAG_INTERVAL_NS / 1e9)
            lag = clock.now_ns() - before - LOOP_LAG_INTERVAL_NS
            sink(max(0, lag) // 1000)
