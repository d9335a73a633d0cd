"""``python -m encoder_service`` = ``vitrine serve encoder``."""

import sys

from vitrine.cli import app

if __name__ == "__main__":
    app(["serve", "encoder", *sys.argv[1:]])
