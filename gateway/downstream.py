"""Calls to the encoder and index services: deadlines propagated, UNAVAILABLE retried."""

from __future__ import annotations

import asyncio
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
