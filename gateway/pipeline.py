"""The search pipeline: a sequence of stages (encode → search → rerank → generate).

Each stage reads and extends a :class:`SearchContext`. The gateway builds the sequence from its
``stages`` setting; a stage that has nothing to do for a request (no reranker loaded, reranking
turned off) says so and is not listed; the response reports which stages ran and how long each
took, and which ones could not run and were skipped (``degraded``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    rerank: bool | None = None  # None: the server default
    rerank_candidates: int = 0  # requested shortlist (0: default)
    rerank_fixed: int | None = None  # from a page token: rerank exactly this many (0: none)
    mode: str = "vector"  # retrieval: vector | lexical | hybrid (gateway.retrieval)
    compose: str = ""  # photo + text: "model" (asked or default) | "weighted"; "" otherwise
    model_composed: bool = False  # planned for the composition model (rerank only if asked)
    query: np.ndarray | None = None
    query_payload: bytes = b""  # a photo query's payload, for the reranker
    rerank_n: int = 0  # candidates the rerank stage will reorder (planned by the search stage)
    reranked: int = 0  # candidates it did reorder
    hits: list[SearchHit] = field(default_factory=list)
    rerank_scores: list[float | None] | None = None  # per hit (None: not reranked)
    lexical_scores: dict[str, float] = field(default_factory=dict)  # BM25 by id (lexical, hybrid)
    lexical_task: asyncio.Task | None = None  # the lexical search, started with the encode stage
    lexical_depth: int = 0  # hits it asked for
    top_similarity: float | None = None  # the best vector hit's cosine (retrieval quality)
    describe_query: bool = False  # describe the query photo (the generate stage)
    description_task: asyncio.Task | None = None  # started by the encode stage
    description: Any = None  # gateway.generate.Description, once the generate stage has it
    partial: bool = False
    degraded: list[str] = field(default_factory=list)
    stages_run: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)

    def remaining(self) -> float:
        return max(0.001, self.deadline - time.monotonic())


class Stage(Protocol):
    name: str

    async def run(self, ctx: SearchContext) -> bool | None:
        """Do the stage's work; return False when it had nothing to do (not listed as run)."""


async def run_pipeline(stages: list[Stage], ctx: SearchContext, observe=None) -> SearchContext:
    for stage in stages:
        t0 = time.perf_counter()
        if await stage.run(ctx) is False:
            continue
        seconds = time.perf_counter() - t0
        ctx.stages_run.append(stage.name)
        ctx.timings.append((stage.name, seconds))
        if observe is not None:
            observe(stage.name, seconds)
    return ctx
