"""Run a real gRPC server (in this process, on its own event-loop thread, or as a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ServerThread:
    """Start ``server`` (an object with async ``start``/``stop`` and ``port``) on a loop thread."""

    def __init__(self, server):
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        self.call(self.server.start(), timeout=120)
        return self

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def __exit__(self, *exc):
        try:
            self.call(self.server.stop(0.5), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def scrape(metrics_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        return r.read().decode()


def metric_value(text: str, name: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


class ServerProcess:
    """``vitrine serve ...`` as a child process; ports read back from ``--ready-file``."""

    def __init__(self, args: list[str], tmp: Path, env: dict | None = None, port: int = 0):
        self.ready_file = tmp / f"ready-{time.monotonic_ns()}.json"
        self.args = [
            sys.executable,
            "-m",
            "vitrine.cli",
            *args,
            "--port",
            str(port),
            "--metrics-port",
            "0",
            "--ready-file",
            str(self.ready_file),
        ]
        self.env = {**os.environ, "VITRINE_LOG_FORMAT": "json", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self, timeout: float = 60) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError("server did not become ready")
            time.sleep(0.05)
        self.info = json.loads(self.ready_file.read_text())
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.info['port']}"

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)
