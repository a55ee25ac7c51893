"""Scores finished requests off the sending event loop and writes the results log.

A thread with its own event loop: CPU scorers and judge calls (with the judge's own
connection pool, concurrency and rate budget) never run on the loop that paces requests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import aiohttp

from ..config.dataset import Item
from ..pacing.records import RequestResult
from ..pacing.results_log import ResultsLog
from ..scoring.judge import JudgeClient, JudgeSettings
from ..scoring.registry import (
    CompiledSpec,
    build_view,
    finalize,
    needs_scoring,
    score_async,
    score_sync,
    skipped_verdict,
)
from ..scoring.scores import Score
from ..stats.quality import QualityAggregator

FLUSH_EVERY_S = 1.0
TurnSpecs = dict[tuple[int, int], list[CompiledSpec]]


def specs_for(r: RequestResult, specs: list[list[CompiledSpec]], turn_specs: TurnSpecs | None) -> list[CompiledSpec]:
    """The scorers of this record: none for a tool step of an agentic loop (the turn's answer
    record is scored with the whole trajectory), the turn's own for later turns of a session."""
    if r.phase == "tool":
        return []
    if r.turn:
        return (turn_specs or {}).get((r.item_index, r.turn), [])
    return specs[r.item_index] if r.item_index < len(specs) else []


async def score_record(r: RequestResult, item: Item, specs: list[CompiledSpec], judge: JudgeClient | None) -> None:
    """Score one record in place (used by the worker and by rescore)."""
    if not specs:
        r.verdict, r.scores = None, None
        return
    if not needs_scoring(r):
        skipped_verdict(r, specs)
        return
    view = build_view(r)
    scores, pending = score_sync(specs, item, view)
    if pending:
        scores += await score_async(pending, item, view, judge)
    finalize(r, scores)


class ScoringWorker:
    def __init__(
        self,
        items: list[Item],
        specs: list[list[CompiledSpec]],
        results_log: ResultsLog,
        quality: QualityAggregator,
        judge_settings: JudgeSettings | None = None,
        on_scored: Callable[[RequestResult], None] | None = None,
        turn_specs: TurnSpecs | None = None,
    ) -> None:
        self._items = items
        self._specs = specs
        self._turn_specs = turn_specs
        self._log = results_log
        self.quality = quality
        self._judge_settings = judge_settings
        self._on_scored = on_scored
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[RequestResult | list[RequestResult] | None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadbench-scoring", daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self.scored = 0
        self.error: BaseException | None = None
        self.judge: JudgeClient | None = None

    # ----------------------------------------------------------------- main thread

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def submit(self, r: RequestResult) -> None:
        loop, queue = self._loop, self._queue
        assert loop is not None and queue is not None
        loop.call_soon_threadsafe(queue.put_nowait, r)

    def submit_batch(self, records: list[RequestResult]) -> None:
        """Hand over many records with one cross-thread wake-up (the hot path batches them)."""
        loop, queue = self._loop, self._queue
        assert loop is not None and queue is not None
        loop.call_soon_threadsafe(queue.put_nowait, records)

    def close(self, timeout_s: float | None = None) -> None:
        """Score everything submitted, wait for judge calls, flush and close the log."""
        if self._loop is not None and self._queue is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
        self._thread.join(timeout_s)

    @property
    def backlog(self) -> int:
        return (self._queue.qsize() if self._queue is not None else 0) + len(self._tasks)

    # --------------------------------------------------------------- worker thread

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        session = None
        if self._judge_settings is not None:
            connector = aiohttp.TCPConnector(limit=self._judge_settings.max_concurrency)
            session = aiohttp.ClientSession(connector=connector, trust_env=False)
            self.judge = JudgeClient(session, self._judge_settings)
        self._ready.set()
        flusher = asyncio.get_running_loop().create_task(self._flush_forever())
        try:
            while True:
                r = await self._queue.get()
                if r is None:
                    break
                if isinstance(r, list):
                    for one in r:
                        self._handle(one)
                else:
                    self._handle(r)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            self._log.close()
            if session is not None:
                await session.close()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            self._log.flush()

    def _handle(self, r: RequestResult) -> None:
        specs = specs_for(r, self._specs, self._turn_specs)
        if not specs or not needs_scoring(r):
            if specs:
                skipped_verdict(r, specs)
            self._emit(r)
            return
        item = self._items[r.item_index].turn_item(r.turn)
        view = build_view(r)
        scores, pending = score_sync(specs, item, view)
        if not pending:
            finalize(r, scores)
            self._emit(r)
            return
        task = asyncio.get_running_loop().create_task(self._finish_async(r, item, view, scores, pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_async(self, r: RequestResult, item: Item, view: Any, scores: list[Score], pending: list[CompiledSpec]) -> None:
        scores = scores + await score_async(pending, item, view, self.judge)
        finalize(r, scores)
        self._emit(r)

    def _emit(self, r: RequestResult) -> None:
        self._log(r)
        self.quality.add(r)
        self.scored += 1
        if self._on_scored is not None:
            self._on_scored(r)
