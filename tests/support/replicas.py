"""Replica groups of real index processes (and a real etcd) for the fault tests and benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcd_binary() -> str | None:
    return shutil.which("etcd")


class Etcd:
    """A single-member etcd on free ports in ``directory`` (Debian's etcd-server)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Etcd:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "etcd.log", "wb")
        self.proc = subprocess.Popen(
            [
                etcd_binary() or "etcd",
                "--data-dir",
                str(self.dir / "data"),
                "--listen-client-urls",
                self.url,
                "--advertise-client-urls",
                self.url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{self.peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{self.peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{self.peer_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        import etcd3gw

        client = etcd3gw.client(host="127.0.0.1", port=self.port, timeout=2)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.status()
                return self
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("etcd did not start") from None
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class IndexReplica:
    """``vitrine serve index`` in a replica group, on a fixed port so that it can come back."""

    def __init__(self, directory: Path, group: str, replicas: int, env: dict | None = None):
        self.dir = directory
        self.port = free_port()
        self.group = group
        self.replicas = replicas
        self.env = {
            **os.environ,
            "VITRINE_LOG_FORMAT": "json",
            "VITRINE_FSYNC": "true",
            "VITRINE_REPLICA_GROUP": group,
            "VITRINE_REPLICAS": str(replicas),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.starts = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 60) -> IndexReplica:
        self.starts += 1
        ready = self.dir / f"ready-{self.starts}.json"
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / f"server-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vitrine.cli",
                "serve",
                "index",
                "--data-dir",
                str(self.dir / "data"),
                "--port",
                str(self.port),
                "--metrics-port",
                "-1",
                "--ready-file",
                str(ready),
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60) -> IndexReplica:
        """Until this start's ready file exists (start-up done: recovered, serving)."""
        ready = self.dir / f"ready-{self.starts}.json"
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.target} did not become ready: {self.log_tail()}")
            time.sleep(0.05)
        self.info = json.loads(ready.read_text())
        return self

    def log_tail(self, n: int = 3000) -> str:
        return (self.dir / f"server-{self.starts}.log").read_text(errors="replace")[-n:]

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


def replica_group(
    tmp: Path, group: str, n: int, etcd_url: str = "", env: dict | None = None
) -> list[IndexReplica]:
    """``n`` replicas of one group; with ``etcd_url`` they elect their primary, otherwise the
    first one is the fixed primary."""
    reps = [IndexReplica(tmp / f"{group}-{i}", group, n, env) for i in range(n)]
    for r in reps:
        if etcd_url:
            r.env["VITRINE_COORDINATOR"] = etcd_url
        else:
            r.env["VITRINE_PRIMARY_ADDRESS"] = reps[0].target
    return reps


def start_all(reps: list[IndexReplica], timeout: float = 60) -> list[IndexReplica]:
    """Start every replica at once (a group elects only once its members are up) and wait."""
    for r in reps:
        r.start(wait=False)
    for r in reps:
        r.wait_ready(timeout)
    return reps


async def primary_of(fan, timeout: float = 30) -> str:
    """The target of the first group's primary, once every group has one (IndexFanout)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = await fan.discover()
        if groups and all(g.primary is not None for g in groups):
            return groups[0].primary.target
        await asyncio.sleep(0.05)
    raise TimeoutError("no primary elected")


async def wait_in_sync(targets: list[str], collection: str = "p", timeout: float = 60) -> None:
    """Until each replica answers reads of ``collection`` (UNAVAILABLE while catching up)."""
    import asyncio

    from index_service.client import IndexClient
    from vitrine.serving.errors import VitrineError

    deadline = time.monotonic() + timeout
    for t in targets:
        while True:
            try:
                with IndexClient(t, timeout=2) as c:
                    c.count(collection)
                    break
            except VitrineError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
