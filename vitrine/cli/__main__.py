"""``python -m vitrine.cli`` = ``vitrine``."""

from vitrine.cli import app

if __name__ == "__main__":  # pragma: no cover
    app()
