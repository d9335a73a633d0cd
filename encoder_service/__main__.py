"""``python -m encoder_service`` = ``vitrine serve encoder``."""

from vitrine.cli import app

if __name__ == "__main__":
    app(["serve", "encoder", *__import__("sys").argv[1:]])
