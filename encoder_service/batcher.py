"""Cross-request dynamic batching for one model.

Requests (each already preprocessed: a tokenised text batch or decoded image pixels) wait in a
bounded FIFO queue. An execution loop takes the oldest request, waits up to ``max_queue_delay``
for batch-mates until ``max_batch`` items are queued, drops requests that were cancelled or whose
deadline passed while queued (they never reach the model), runs one inference on the
concatenated items in a worker thread, and hands every request its own rows.

Failure isolation: inputs are validated and decoded per request *before* they are queued, so a
bad item fails only its own request; an exception during an execution fails that execution's
requests with INTERNAL and the loop goes on.

Backpressure: when ``max_queue_items`` items are already waiting, :meth:`DynamicBatcher.submit`
raises :class:`~vitrine.serving.errors.ResourceExhausted` with a retry-after estimate (queued
items / recent throughput) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vitrine.serving.errors import DeadlineExceeded, Internal, ResourceExhausted, Unavailable

log = logging.getLogger("vitrine.encoder.batcher")

# A model returns one array, or a tuple of arrays (several outputs), with one row per item.
RunBatch = Callable[[Sequence[Any]], np.ndarray | tuple[np.ndarray, ...]]


def _rows(out) -> int:
    return len(out[0]) if isinstance(out, tuple) else len(out)


def _slice(out, start: int, n: int):
    if isinstance(out, tuple):
        return tuple(o[start : start + n] for o in out)
    return out[start : start + n]


@dataclass
class BatchStats:
    """Hooks for metrics; all optional."""

    on_batch: Callable[[int, float], None] = lambda items, compute_s: None
    on_queue_time: Callable[[float], None] = lambda seconds: None
    on_dropped: Callable[[str, int], None] = lambda reason, items: None
    on_queue_depth: Callable[[int], None] = lambda items: None
    on_step: Callable[[int, float], None] = lambda rows, compute_s: None  # caption decoder steps


@dataclass(eq=False)
class _Pending:
    payload: Any
    n: int
    future: asyncio.Future
    enqueued: float
    deadline: float | None  # time.monotonic() by which the caller gives up; None = no deadline
    queue_s: float = field(default=0.0)


class DynamicBatcher:
    def __init__(
        self,
        name: str,
        run_batch: RunBatch,
        executor: Executor,
        *,
        max_batch: int,
        max_queue_delay_s: float,
        max_queue_items: int,
        instances: int = 1,
        stats: BatchStats | None = None,
    ) -> None:
        self.name = name
        self._run_batch = run_batch
        self._executor = executor
        self.max_batch = max_batch
        self.max_delay = max_queue_delay_s
        self.max_queue_items = max_queue_items
        self.instances = instances
        self.stats = stats or BatchStats()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued_items = 0
        self._cond: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._inflight = 0
        self._rate = 0.0  # items/s, exponentially weighted, for retry-after hints

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._cond = asyncio.Condition()
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"batcher-{self.name}-{i}")
            for i in range(self.instances)
        ]

    async def close(self, drain: bool = True) -> None:
        """Stop taking requests; with ``drain`` finish what is queued first."""
        self._closing = True
        if drain:
            while self._queue or self._inflight:
                async with self._cond:
                    self._cond.notify_all()
                await asyncio.sleep(0.005)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._queue:
            p = self._queue.popleft()
            if not p.future.done():
                p.future.set_exception(Unavailable(f"model {self.name} was unloaded"))
        self._queued_items = 0

    @property
    def queued_items(self) -> int:
        return self._queued_items

    # -- submit --------------------------------------------------------------------------------
    async def submit(self, payload: Any, n: int, deadline: float | None = None):
        """Queue ``n`` preprocessed items; returns their output rows ``[n, ...]`` (a tuple of
        such arrays for a model with several outputs)."""
        if self._closing:
            raise Unavailable(f"model {self.name} is unloading")
        if self._queued_items + n > self.max_queue_items:
            self.stats.on_dropped("queue_full", n)
            raise ResourceExhausted(
                f"model {self.name}: queue full ({self._queued_items} items waiting)",
                retry_after_s=self._retry_after(),
            )
        loop = asyncio.get_running_loop()
        p = _Pending(payload, n, loop.create_future(), time.monotonic(), deadline)
        self._queue.append(p)
        self._queued_items += n
        self.stats.on_queue_depth(self._queued_items)
        async with self._cond:
            self._cond.notify()
        return await p.future  # cancellation (client gone/deadline) cancels the future

    def _retry_after(self) -> float:
        rate = self._rate if self._rate > 0 else 100.0
        return min(5.0, max(0.01, self._queued_items / rate))

    # -- execution loop --------------------------------------------------------------------------
    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        items = 0
        now = time.monotonic()
        while self._queue and (not batch or items + self._queue[0].n <= self.max_batch):
            p = self._queue.popleft()
            self._queued_items -= p.n
            if p.future.done():  # cancelled by the caller (deadline, disconnect)
                reason = "deadline" if p.deadline is not None and now >= p.deadline else "cancelled"
                self.stats.on_dropped(reason, p.n)
                continue
            if p.deadline is not None and now >= p.deadline:
                self.stats.on_dropped("deadline", p.n)
                p.future.set_exception(DeadlineExceeded("deadline passed while queued"))
                continue
            p.queue_s = now - p.enqueued
            batch.append(p)
            items += p.n
        self.stats.on_queue_depth(self._queued_items)
        return batch

    async def _wait_for_batch(self) -> list[_Pending]:
        async with self._cond:
            await self._cond.wait_for(lambda: bool(self._queue) or self._closing)
        if not self._queue:
            return []
        # Wait for batch-mates: until max_batch items are queued or the oldest waited max_delay.
        oldest = self._queue[0].enqueued
        while self._queued_items < self.max_batch and not self._closing:
            remaining = oldest + self.max_delay - time.monotonic()
            if remaining <= 0:
                break
            async with self._cond:
                try:
                    await asyncio.wait_for(self._cond.wait(), remaining)
                except TimeoutError:
                    break
            if not self._queue:
                return []
        return self._take_batch()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._wait_for_batch()
            if not batch:
                if self._closing and not self._queue:
                    return
                continue
            self._inflight += 1
            items = sum(p.n for p in batch)
            try:
                t0 = time.perf_counter()
                out = await loop.run_in_executor(
                    self._executor, self._run_batch, [p.payload for p in batch]
                )
                compute = time.perf_counter() - t0
                if _rows(out) != items:
                    raise RuntimeError(f"model returned {_rows(out)} rows for {items} items")
            except Exception as exc:
                log.exception("batch failed", extra={"model": self.name, "items": items})
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(Internal(f"inference failed: {exc}"))
                continue
            finally:
                self._inflight -= 1
            self.stats.on_batch(items, compute)
            rate = items / max(compute, 1e-6)
            self._rate = rate if self._rate == 0 else 0.8 * self._rate + 0.2 * rate
            start = 0
            for p in batch:
                self.stats.on_queue_time(p.queue_s)
                if not p.future.done():
                    p.future.set_result(_slice(out, start, p.n))
                start += p.n
