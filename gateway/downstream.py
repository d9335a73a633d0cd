"""Calls to the encoder and index services: deadlines propagated, UNAVAILABLE retried; answers
about the encoder's models reused for a while."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from vitrine.serving.errors import DeadlineExceeded, Unavailable

T = TypeVar("T")


async def with_retries(
    call: Callable[[float], Awaitable[T]], deadline: float, retries: int, backoff_s: float = 0.05
) -> T:
    """Run ``call(timeout)`` with the time left; retry UNAVAILABLE with exponential backoff."""
    attempt = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("deadline passed before the downstream call")
        try:
            return await call(remaining)
        except Unavailable:
            if attempt >= retries or deadline - time.monotonic() < backoff_s * 2**attempt:
                raise
            await asyncio.sleep(backoff_s * 2**attempt)
            attempt += 1


class Periodic:
    """An answer read by ``read()`` (async) and reused for ``period_s``: concurrent callers wait
    for one reading; :meth:`forget` makes the next call read again. What the answer is when a
    reading fails is ``read``'s business (keep the last one, or say none)."""

    def __init__(self, read: Callable[[], Awaitable[T]], period_s: float):
        self._read = read
        self.period_s = period_s
        self.value: T | None = None
        self._checked = -math.inf
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._checked < self.period_s

    async def get(self, force: bool = False) -> T | None:
        if not force and self._fresh():
            return self.value
        async with self._lock:
            if not force and self._fresh():
                return self.value
            self.value = await self._read()
            self._checked = time.monotonic()
            return self.value

    def forget(self) -> None:
        self._checked = -math.inf
