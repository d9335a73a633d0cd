"""The gateway's view of the rerank model: is one loaded, what does it read, what does it cost.

* **Availability.** The gateway asks the encoder (``GetModelInfo``) for the configured rerank
  model and its image tower; the rerank stage runs only when the reranker is loaded and the image
  tower produces the payload it reads. The answer is cached for ``rerank_refresh_s`` and dropped
  as soon as a rerank call says the model is gone, so a reranker loaded or unloaded at run time
  is picked up without a restart.
* **Cost.** The stage keeps an exponentially weighted average of its cost per candidate (the
  whole Rerank call divided by the candidates it scored) and of the search stage's time, and
  :meth:`RerankPlanner.plan` shrinks the number of candidates to what the time left before the
  deadline allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.downstream import Periodic
from vitrine.serving.errors import NotFound, VitrineError

EWMA = 0.2


@dataclass
class RerankTarget:
    model: str
    version: int
    payload_bytes: int
    candidates: int  # the model's default shortlist


class RerankPlanner:
    def __init__(self, encoder, config):
        self.encoder = encoder
        self.config = config
        self.target: RerankTarget | None = None
        self.image_has_payload = False  # the image tower outputs payloads (store them at ingest)
        self._reading = Periodic(self._read, config.rerank_refresh_s)
        self.per_candidate_s = config.rerank_initial_cost_ms / 1000.0
        self.search_s = 0.005

    async def refresh(self, force: bool = False) -> RerankTarget | None:
        """Re-read the encoder's models when the cached answer is older than the refresh period
        (concurrent callers wait for one reading)."""
        return await self._reading.get(force)

    async def _read(self) -> RerankTarget | None:
        try:
            images = await self.encoder.model_info(self.config.image_model)
            self.image_has_payload = "payload" in max(images, key=lambda m: m.version).outputs
        except NotFound:
            self.image_has_payload = False
        except VitrineError:
            return self.target  # encoder briefly unreachable: keep the last answer
        target = None
        if self.config.rerank_model and self.image_has_payload:
            try:
                infos = await self.encoder.model_info(self.config.rerank_model)
                m = max(infos, key=lambda i: i.version)
                target = RerankTarget(
                    m.name, m.version, m.rerank.payload_bytes, m.rerank.candidates
                )
            except NotFound:
                target = None
            except VitrineError:
                target = self.target
        self.target = target
        return target

    def forget(self) -> None:
        """The model answered NOT_FOUND: check again on the next search."""
        self.target = None
        self._reading.forget()

    def plan(self, requested: int, remaining_s: float) -> int:
        """Candidates to rerank: ``requested``, fewer when the deadline cannot afford them."""
        budget = remaining_s - self.search_s - self.config.rerank_margin_ms / 1000.0
        affordable = int(budget / self.per_candidate_s) if budget > 0 else 0
        n = min(requested, affordable, self.config.max_rerank_candidates)
        return n if n >= 2 else 0

    def observe_rerank(self, candidates: int, seconds: float) -> None:
        cost = seconds / max(candidates, 1)
        self.per_candidate_s = (1 - EWMA) * self.per_candidate_s + EWMA * cost

    def observe_search(self, seconds: float) -> None:
        self.search_s = (1 - EWMA) * self.search_s + EWMA * seconds


def reorder(scores: list[float | None]) -> list[int]:
    """Positions after reranking: scored items sorted by score (stable), unscored ones stay put."""
    scored = sorted(
        (i for i, s in enumerate(scores) if s is not None), key=lambda i: -float(scores[i])
    )
    it = iter(scored)
    return [next(it) if s is not None else i for i, s in enumerate(scores)]
