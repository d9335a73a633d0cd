"""The search pipeline: a sequence of stages (encode → search → rerank → generate).

Each stage reads and extends a :class:`SearchContext`. The gateway builds the sequence from its
``stages`` setting, so the rerank and caption stages of a later milestone plug in by
configuration; the response reports which stages ran and how long each took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from index_service.client import SearchHit
from vitrine.v1 import common_pb2


@dataclass
class SearchContext:
    text: str
    image: bytes
    text_weight: float
    image_weight: float
    filter: common_pb2.Filter | None
    k: int
    deadline: float  # time.monotonic() by which the answer is due
    query: np.ndarray | None = None
    hits: list[SearchHit] = field(default_factory=list)
    partial: bool = False
    stages_run: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)

    def remaining(self) -> float:
        return max(0.001, self.deadline - time.monotonic())


class Stage(Protocol):
    name: str

    async def run(self, ctx: SearchContext) -> None: ...


async def run_pipeline(stages: list[Stage], ctx: SearchContext, observe=None) -> SearchContext:
    for stage in stages:
        t0 = time.perf_counter()
        await stage.run(ctx)
        seconds = time.perf_counter() - t0
        ctx.stages_run.append(stage.name)
        ctx.timings.append((stage.name, seconds))
        if observe is not None:
            observe(stage.name, seconds)
    return ctx
