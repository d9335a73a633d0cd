"""Query-embedding cache: shop traffic is head-heavy, so the same few texts are embedded again
and again.

A bounded LRU with a time-to-live (``cachetools.TTLCache``) maps (text model, normalised text) to
the embedding and the model version that made it. The key normalises what the text tower's own
tokenizer ignores — case and runs of whitespace — so "Navy  Blue Shirt" and "navy blue shirt"
share an entry and get the identical vector they would get from the encoder.

Model versions: an entry is used only while its version is the newest the gateway has seen for
that model (every encoder answer updates it), and entries expire after ``ttl_s``, so a new
version rolled out to the encoder replaces cached vectors within ``ttl_s`` at the latest.
Concurrent misses of one key share one encoder call (single flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
from cachetools import TTLCache


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


class EmbeddingCache:
    def __init__(self, size: int, ttl_s: float, on_lookup: Callable[[bool], None] | None = None):
        self.enabled = size > 0
        self._entries: TTLCache = TTLCache(maxsize=max(size, 1), ttl=ttl_s)
        self._latest: dict[str, int] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}
        self._on_lookup = on_lookup or (lambda hit: None)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self,
        model: str,
        text: str,
        embed: Callable[[], Awaitable[tuple[np.ndarray, int]]],
    ) -> np.ndarray:
        """The embedding of ``text``; ``embed()`` → (vector, model version) on a miss."""
        if not self.enabled:
            return (await embed())[0]
        key = (model, normalise(text))
        entry = self._entries.get(key)
        if entry is not None and entry[1] >= self._latest.get(model, 0):
            self._on_lookup(True)
            return entry[0]
        self._on_lookup(False)
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled
            except Exception:
                pass  # the first caller's call failed: try on our own below
            return await self._fill(key, model, embed)
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            vector = await self._fill(key, model, embed)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # the waiters get it; nobody else must be told it was unseen
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(vector)
        return vector

    async def _fill(self, key, model: str, embed) -> np.ndarray:
        vector, version = await embed()
        vector.setflags(write=False)  # shared between requests: nobody may modify it
        self._latest[model] = max(self._latest.get(model, 0), version)
        self._entries[key] = (vector, version)
        return vector
