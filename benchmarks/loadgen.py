"""Closed-loop load generation shared by the service benchmarks.

``closed_loop(call, payloads, concurrency, duration_s)`` runs ``concurrency`` asyncio workers that
each send one request, wait for its answer and send the next, for ``duration_s`` seconds after a
short warm-up; it returns requests/s and latency percentiles. Failed calls are counted, not timed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float

    def row(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "errors": self.errors,
            "requests": self.requests,
        }


async def closed_loop(
    call: Callable[[Any], Awaitable[Any]],
    payloads: Sequence[Any],
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
) -> LoadResult:
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = float("inf")

    async def worker() -> None:
        nonlocal errors
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            payload = payloads[next(counter) % len(payloads)]
            t0 = time.perf_counter()
            try:
                await call(payload)
            except Exception:
                if measuring:
                    errors += 1
                continue
            if measuring:
                latencies.append(time.perf_counter() - t0)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup_s)
    measuring = True
    start = time.perf_counter()
    stop_at = start + duration_s
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        rps=len(latencies) / elapsed,
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
        mean_ms=float(lat.mean()),
    )
