"""Batched caption decoding across requests (one loop per caption model version).

A ``Generate`` request first runs the caption model's image encoder through the model's
:class:`~encoder_service.batcher.DynamicBatcher` (photos of concurrent requests share an
execution), then joins the **step loop**: every iteration gathers the live hypotheses of every
request in flight (up to ``max_rows``; more wait for the next iteration, oldest first), runs one
decoder step for all of them in one onnxruntime execution, and advances each request's searches
(:mod:`vitrine.captioning`). A request that arrives while others are mid-title joins at the next
step, so short and long titles, greedy and beam searches, share executions.

Between steps each request's deadline and cancellation are checked: a request past its deadline
fails with ``DEADLINE_EXCEEDED`` and a cancelled one is dropped, both at once, and their rows
leave the next step (the slot is freed, nothing leaks). At most ``max_photos`` photos decode at
once; past that, new requests are refused with ``RESOURCE_EXHAUSTED``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from vitrine.captioning import BeamState, Hypothesis, pad_prefixes
from vitrine.serving.errors import DeadlineExceeded, Internal, ResourceExhausted, Unavailable

log = logging.getLogger("vitrine.encoder.generation")

StepRun = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(eq=False)
class _Job:
    memory: np.ndarray  # (photos, M, d)
    states: list[BeamState]
    future: asyncio.Future
    deadline: float | None
    steps: int = field(default=0)


class StepLoop:
    def __init__(
        self,
        name: str,
        run_step: StepRun,
        executor: Executor,
        max_rows: int,
        max_photos: int,
        on_step: Callable[[int, float], None] = lambda rows, seconds: None,
    ):
        self.name = name
        self.run_step = run_step
        self.executor = executor
        self.max_rows = max_rows
        self.max_photos = max_photos
        self.on_step = on_step
        self._jobs: list[_Job] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"steps-{self.name}")

    @property
    def photos(self) -> int:
        return sum(len(j.states) for j in self._jobs)

    async def decode(
        self, memory: np.ndarray, states: list[BeamState], deadline: float | None
    ) -> list[Hypothesis]:
        if self._closing:
            raise Unavailable(f"model {self.name} is unloading")
        if self.photos + len(states) > self.max_photos:
            raise ResourceExhausted(
                f"model {self.name}: {self.photos} photos decoding, limit {self.max_photos}"
            )
        job = _Job(memory, states, asyncio.get_running_loop().create_future(), deadline)
        self._jobs.append(job)
        self._wake.set()
        return await job.future

    async def close(self) -> None:
        """Finish what is decoding (new requests are refused), then stop."""
        self._closing = True
        while self._jobs:
            await asyncio.sleep(0.005)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _expire(self) -> None:
        now = time.monotonic()
        keep = []
        for j in self._jobs:
            if j.future.done():  # cancelled by the caller
                continue
            if j.deadline is not None and now >= j.deadline:
                j.future.set_exception(
                    DeadlineExceeded(f"deadline passed after {j.steps} decoding steps")
                )
                continue
            keep.append(j)
        self._jobs = keep

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._expire()
            if not self._jobs:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, starts, rows, prefixes = [], [], 0, []
            for j in self._jobs:  # oldest first
                live = [(s, s.prefixes()) for s in j.states if not s.done]
                n = sum(len(p) for _, p in live)
                if batch and rows + n > self.max_rows:
                    break
                batch.append((j, live))
                starts.append(rows)  # the job's first row in this step
                rows += n
                for _, ps in live:
                    prefixes += ps
            tokens, lengths = pad_prefixes(prefixes)
            mem = np.concatenate(
                [j.memory[[s.memory_row for s, ps in live for _ in ps]] for j, live in batch]
            )
            t0 = time.perf_counter()
            try:
                logprobs = await loop.run_in_executor(
                    self.executor, self.run_step, mem, tokens, lengths
                )
            except Exception as exc:  # an execution failure fails its requests, not the loop
                log.exception("decoder step failed", extra={"model": self.name})
                for j, _ in batch:
                    if not j.future.done():
                        j.future.set_exception(Internal(f"decoder step failed: {exc}"))
                self._jobs = [j for j in self._jobs if not j.future.done()]
                continue
            self.on_step(rows, time.perf_counter() - t0)
            for (j, live), start in zip(batch, starts, strict=True):
                j.steps += 1
                for s, ps in live:
                    s.advance(logprobs[start : start + len(ps)])
                    start += len(ps)
                if all(s.done for s in j.states) and not j.future.done():
                    j.future.set_result([s.best() for s in j.states])
            self._jobs = [j for j in self._jobs if not j.future.done()]
            await asyncio.sleep(0)  # let new requests join before the next step
