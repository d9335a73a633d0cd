"""Generation in the gateway: Describe, the search's ``generate`` stage, and fill_missing at ingest.

All three call the encoder's ``Generate`` with the configured caption model:

* ``Describe(photo)`` — the listing assistant: a suggested title and attributes;
* the ``generate`` search stage — for a photo query with ``describe_query``, what the photo shows.
  The encoder call starts as soon as the request arrives (beside the query's embedding) and the
  stage only awaits it, so it adds no latency unless generation is slower than encode + search +
  rerank. If it fails or runs out of time the answer comes without it and lists "generate" in
  ``degraded_stages``;
* ``fill_missing`` at ingest — a product with a photo and no title, or without some of the
  attributes the caption model predicts, gets generated ones. What the shop gave is never
  overwritten; the attribute ``generated`` lists the fields that were filled.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from encoder_service.client import Caption
from gateway.pipeline import SearchContext
from index_service.attributes import Value
from vitrine.serving.errors import InvalidArgument, VitrineError

log = logging.getLogger("vitrine.gateway")
GENERATED = "generated"  # attribute listing the generated fields of a product


@dataclass
class Description:
    title: str
    attributes: list[tuple[str, str, float]]  # (name, value, confidence)
    model: str  # name/version


def description(caption: Caption, model: str, version: int) -> Description:
    return Description(
        caption.title,
        [(n, v, c) for n, (v, c) in caption.attributes.items()],
        f"{model}/{version}",
    )


class Generator:
    def __init__(self, gw):
        self.gw = gw

    async def describe_images(
        self, images: list[bytes], beam: int = 0, timeout: float | None = None
    ) -> list[Description]:
        cfg = self.gw.config
        res = await self.gw.encoder.generate(
            cfg.caption_model, images, beam=beam or cfg.caption_beam, timeout=timeout
        )
        return [description(c, res.model, res.version) for c in res.captions]

    async def describe(self, image: bytes, beam: int = 0, timeout: float | None = None):
        if not image:
            raise InvalidArgument("image: required")
        if beam < 0:
            raise InvalidArgument("beam: must be >= 0")
        return (await self.describe_images([image], beam, timeout))[0]

    def start_query_description(self, ctx: SearchContext) -> None:
        """Start describing the query photo (the generate stage collects it)."""
        if ctx.describe_query and ctx.image and "generate" in self.gw.config.stages:
            ctx.description_task = asyncio.create_task(
                self.describe_images([ctx.image], timeout=ctx.remaining())
            )

    def fill(
        self, title: str, attributes: dict[str, Value], desc: Description
    ) -> tuple[str, dict[str, Value]]:
        """Fill what is missing (never overwrite); list what was filled in ``generated``."""
        filled = []
        attrs = dict(attributes)
        if not title.strip() and desc.title:
            title = desc.title
            filled.append("title")
        for name, value, _ in desc.attributes:
            if name not in attrs or attrs[name] in ("", None):
                attrs[name] = value
                filled.append(name)
        if filled:
            attrs[GENERATED] = filled
        return title, attrs

    @staticmethod
    def needs_fill(title: str, attributes: dict[str, Value], predicted: list[str]) -> bool:
        return not title.strip() or any(attributes.get(a) in (None, "") for a in predicted)


class GenerateStage:
    """Collects the query photo's description started by the encode stage."""

    name = "generate"

    def __init__(self, gw):
        self.gw = gw

    async def run(self, ctx: SearchContext) -> bool | None:
        task = ctx.description_task
        if task is None:
            if ctx.describe_query and ctx.image:
                ctx.degraded.append("generate")
            return False
        try:
            ctx.description = (await asyncio.wait_for(task, ctx.remaining()))[0]
        except (VitrineError, TimeoutError) as exc:
            code = exc.code.name if isinstance(exc, VitrineError) else "DEADLINE_EXCEEDED"
            log.warning("generate degraded", extra={"code": code})
            ctx.degraded.append("generate")
            self.gw.observe_degraded("generate", code)
        return None
