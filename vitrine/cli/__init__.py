"""The ``vitrine`` command line and what only it uses: the local stack, the demo, reports.

This is the top layer: it imports the services; nothing below imports it. ``app`` is the typer
root (:mod:`vitrine.cli.app`); each ``*_cmd`` module registers its commands on it.
"""

from vitrine.cli import (  # noqa: F401  (register the commands)
    caption_cmd,
    keys_cmd,
    models_cmd,
    serve_cmd,
    shop_cmd,
)
from vitrine.cli.app import app

__all__ = ["app"]
