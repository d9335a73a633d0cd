"""The search playground page and the product photos of a local catalog, on the HTTP port.

* ``GET /`` is the playground (``gateway/playground/index.html``; its CSS and JS under
  ``/playground/``): plain static files, no build step. It calls the HTTP API of the same
  origin (``/v1/search``, ``/v1/facets``, ``/v1/describe``) with the caller's API key, and reads
  ``/playground/config.json`` for what it cannot know (the image URL attribute, whether keys are
  required, k limits, which of rerank, composition and describe the loaded models offer).
* ``GET /media/<file>`` serves the photos of ``media_dir`` read-only (a local catalog's
  ``images/``; ``vitrine ingest`` stores ``/media/<id>.jpg`` as each product's image URL), with
  ETag/Last-Modified revalidation. Only image files; no directory listings; paths outside the
  directory are refused by Starlette's :class:`StaticFiles`. Shops with a CDN put its URLs in the
  image URL attribute instead and leave ``media_dir`` empty.

Neither is gated by API keys (the page must load to ask for one; product photos are public on a
shop's site); both are off with ``playground: false`` and an empty ``media_dir``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "playground"
MEDIA_PREFIX = "/media/"  # where media_dir's files are served (the image URLs ingest stores)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif"})
_NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate (ETag): a new version shows at once


class _Static(StaticFiles):
    """StaticFiles with a Cache-Control header and, optionally, only some file suffixes."""

    def __init__(self, directory: Path, cache_control: str, suffixes=None):
        super().__init__(directory=directory, html=False, check_dir=True)
        self.cache_control = cache_control
        self.suffixes = suffixes

    async def get_response(self, path: str, scope):
        if self.suffixes is not None and Path(path).suffix.lower() not in self.suffixes:
            raise HTTPException(status_code=404, detail="Not Found")
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = self.cache_control
        return response


def mount(app: FastAPI, config, models=None) -> None:
    """Add the playground (``config.playground``) and ``/media`` (``config.media_dir``).

    ``models``: an async callable answering which optional stages the loaded models offer
    (:meth:`gateway.core.Gateway.capabilities`); the page greys out the others."""
    if config.playground:

        async def page() -> FileResponse:
            return FileResponse(STATIC_DIR / "index.html", headers=_NO_CACHE)

        async def settings() -> JSONResponse:
            body = {
                "image_url_attribute": config.image_url_attribute,
                "auth_required": bool(config.api_keys_file),
                "default_k": config.default_k,
                "max_k": config.max_k,
                "collection": config.collection,
            }
            if models is not None:
                body["models"] = await models()
            return JSONResponse(body, headers=_NO_CACHE)

        app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
        app.add_api_route(
            "/playground/config.json", settings, methods=["GET"], include_in_schema=False
        )
        app.mount("/playground", _Static(STATIC_DIR, "no-cache"), name="playground")
    if config.media_dir:
        app.mount(
            MEDIA_PREFIX.rstrip("/"),
            _Static(Path(config.media_dir), "public, max-age=3600", IMAGE_SUFFIXES),
            name="media",
        )


def route_name(path: str) -> str | None:
    """The metrics route label of a playground or media path (None: not one)."""
    if path == "/" or path.startswith("/playground/"):
        return "playground"
    if path.startswith(MEDIA_PREFIX):
        return "media"
    return None
