"""The gateway's view of the composition model ("this photo, but in red").

A photo + text query is composed by the encoder's ``Compose`` RPC when the configured
composition model is loaded there **and pairs with the towers the query is embedded with** (its
``ComposeInfo`` names them; a composer left from older towers would answer in another space);
asked with ``GetModelInfo``, the answer reused for ``rerank_refresh_s`` and dropped when a call
says the model is gone. Otherwise, or when the request asks for it, the query is the weighted sum
of the two unit vectors. A failing Compose call degrades to the weighted sum and says so in
``degraded_stages`` ("compose"). Composed queries are reranked only when the request asks
(``rerank_composed``): benchmarks/compose_eval.py measured the reranker pulling them back toward
the photo.
"""

from __future__ import annotations

import logging

import numpy as np

from gateway.downstream import Periodic
from vitrine.serving.errors import NotFound, VitrineError

log = logging.getLogger("vitrine.gateway")


class Composer:
    def __init__(self, encoder, config):
        self.encoder = encoder
        self.config = config
        # The loaded composition model's version that pairs with the towers (None: none).
        self._version = Periodic(self._read, config.rerank_refresh_s)

    async def loaded(self) -> int | None:
        """The composition model's version if the encoder has it loaded (cached answer)."""
        if not self.config.compose_model:
            return None
        return await self._version.get()

    async def _read(self) -> int | None:
        try:
            return await self._paired()
        except NotFound:
            return None
        except VitrineError:
            return self._version.value  # encoder briefly unreachable: keep the last answer

    async def _paired(self) -> int | None:
        """The newest loaded composer that pairs with the towers' newest loaded versions (the
        ones the gateway's queries are embedded with); None if there is none."""
        cfg = self.config
        infos = await self.encoder.model_info(cfg.compose_model)
        if not infos:
            return None
        towers = {}
        for name in (cfg.text_model, cfg.image_model):
            towers[name] = f"{name}/{max(i.version for i in await self.encoder.model_info(name))}"
        for info in sorted(infos, key=lambda i: -i.version):
            pair = (info.compose.text_model, info.compose.image_model)
            if pair == (towers[cfg.text_model], towers[cfg.image_model]):
                return info.version
        log.warning(
            "composition model does not pair with the loaded towers: weighted sum instead",
            extra={
                "model": cfg.compose_model,
                "pairs": [f"{i.compose.text_model}+{i.compose.image_model}" for i in infos],
                "towers": list(towers.values()),
            },
        )
        return None

    async def compose(self, image_vector, text_vector, ctx) -> np.ndarray | None:
        """The composed query vector, or None (then the caller uses the weighted sum)."""
        version = await self.loaded()
        if version is None:
            return None
        try:
            res = await self.encoder.compose(
                self.config.compose_model,
                image_vector[None],
                text_vector[None],
                version=version,
                timeout=ctx.remaining(),
            )
        except VitrineError as exc:
            if isinstance(exc, NotFound):
                self._version.forget()
            log.warning("compose degraded", extra={"code": exc.code.name, "error": exc.message})
            ctx.degraded.append("compose")
            return None
        return res.vectors[0]
