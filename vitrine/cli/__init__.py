"""The ``vitrine`` command line and what only it uses: the local stack, the demo, reports.

This is the top layer: it imports the services; nothing below imports it. ``app`` is the typer
root (:mod:`vitrine.cli.app`); each ``*_cmd`` module registers its commands on it.
"""

from vitrine.cli import models_cmd, serve_cmd, shop_cmd  # noqa: F401  (register the commands)
from vitrine.cli.app import app

__all__ = ["app"]
