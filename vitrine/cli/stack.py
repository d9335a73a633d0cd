"""Run the whole system as local processes: encoder, two index processes, gateway.

``vitrine up`` (and ``make demo``) use :class:`LocalStack`: each service is ``vitrine serve ...``
in its own process; the stack waits until each one is healthy (it writes its ready file only
after its start-up — models loaded, collections recovered), and stops them all with SIGTERM
(graceful drain), gateway first, on exit or Ctrl-C.

TLS is on unless ``tls=False`` (``vitrine up --plaintext``): a throwaway local CA and one
certificate per process (``vitrine.serving.certs``) under ``<data_dir>/tls/`` — ``ca.pem``,
``encoder.pem``, ``index-a.pem``, ``index-b.pem``, ``gateway.pem``, ``client.pem`` and their
``-key.pem`` files — made once and reused while valid. Every service serves TLS with its
certificate; the encoder and index processes accept only clients with a certificate from the CA
(the gateway calls them with its own: mTLS); the gateway asks none (public API). The stack's own
clients use ``client.pem``. The running stack registers its gateway (``vitrine.cli.connect``) so
``vitrine search/ingest/describe`` find the CA without options.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vitrine.cli import connect
from vitrine.serving.certs import TLSFiles, ensure_local_tls
from vitrine.serving.tls import ClientTLS

TLS_NAMES = ("encoder", "index-a", "index-b", "gateway", "client")


@dataclass
class Service:
    name: str
    args: list[str]
    port: int
    metrics_port: int
    proc: subprocess.Popen | None = None
    ready_file: Path | None = None
    info: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.info.get('port', self.port)}"


class LocalStack:
    def __init__(
        self,
        models: Path,
        data_dir: Path,
        *,
        ports: tuple[int, int, int, int] = (50051, 50052, 50053, 50050),
        metrics_ports: tuple[int, int, int, int] = (9401, 9402, 9403, 9400),
        log_dir: Path | None = None,
        index_spec: str = "HNSW32",
        num_shards: int = 4,
        tls: bool = True,
        tls_dir: Path | None = None,
        http_port: int = 0,
        media_dir: Path | None = None,
    ):
        """``http_port``: the gateway's HTTP API and playground (0: a free port, -1: off);
        ``media_dir``: the catalog photos it serves under /media/."""
        self.models = models
        self.data_dir = data_dir
        self.ports = ports
        self.metrics_ports = metrics_ports
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="vitrine-logs-"))
        self.index_spec = index_spec
        self.num_shards = num_shards
        self.services: list[Service] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="vitrine-stack-"))
        self.tls = tls
        self.tls_dir = tls_dir or data_dir / "tls"
        self.tls_files: dict[str, TLSFiles] = {}
        self._registration: Path | None = None
        self.http_port = http_port
        self.media_dir = media_dir

    def _tls_env(self, name: str) -> dict[str, str]:
        """The TLS settings of service ``name`` as ``VITRINE_*`` env (over any inherited)."""
        if not self.tls:
            return {
                "VITRINE_TLS_CERT_FILE": "",
                "VITRINE_TLS_KEY_FILE": "",
                "VITRINE_TLS_CA_FILE": "",
                "VITRINE_PLAINTEXT": "true",
            }
        if name not in self.tls_files:  # a service added beside the four (benchmarks)
            self.tls_files.update(ensure_local_tls(self.tls_dir, [name]))
        f = self.tls_files[name]
        return {
            "VITRINE_TLS_CERT_FILE": str(f.cert_file),
            "VITRINE_TLS_KEY_FILE": str(f.key_file),
            "VITRINE_TLS_CA_FILE": str(f.ca_file),
            "VITRINE_TLS_CLIENT_AUTH": "false" if name.startswith("gateway") else "true",
            "VITRINE_PLAINTEXT": "false",
            # The playground opens in a browser without trusting the throwaway CA: plain HTTP,
            # on 127.0.0.1 only (gRPC keeps TLS).
            **({"VITRINE_HTTP_TLS": "false"} if name.startswith("gateway") else {}),
        }

    def client_tls(self) -> ClientTLS | None:
        """How a client calls the stack's services (None when it runs plaintext)."""
        if not self.tls:
            return None
        f = self.tls_files["client"]
        return ClientTLS(f.ca_file, f.cert_file, f.key_file)

    def _start(self, svc: Service, timeout: float = 180) -> Service:
        svc.ready_file = self._tmp / f"{svc.name}.json"
        log = open(self.log_dir / f"{svc.name}.log", "ab")  # noqa: SIM115 - owned by the child
        svc.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vitrine.cli",
                "--log-level",
                "info",
                *svc.args,
                "--port",
                str(svc.port),
                "--metrics-port",
                str(svc.metrics_port),
                "--ready-file",
                str(svc.ready_file),
            ],
            stdout=log,
            stderr=log,
            env={
                **os.environ,
                "VITRINE_LOG_LEVEL": os.environ.get("VITRINE_LOG_LEVEL", "info"),
                **self._tls_env(svc.name),
            },
        )
        deadline = time.monotonic() + timeout
        while not svc.ready_file.exists():
            if svc.proc.poll() is not None:
                tail = (self.log_dir / f"{svc.name}.log").read_text()[-2000:]
                raise RuntimeError(f"{svc.name} exited during start-up:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{svc.name} not ready after {timeout} s")
            time.sleep(0.05)
        svc.info = json.loads(svc.ready_file.read_text())
        self.services.append(svc)
        return svc

    def start(self) -> LocalStack:
        enc_port, ia_port, ib_port, gw_port = self.ports
        enc_m, ia_m, ib_m, gw_m = self.metrics_ports
        if self.tls:
            self.tls_files = ensure_local_tls(self.tls_dir, TLS_NAMES)
        try:
            enc = self._start(
                Service(
                    "encoder", ["serve", "encoder", "--models", str(self.models)], enc_port, enc_m
                )
            )
            ia = self._start(
                Service(
                    "index-a",
                    ["serve", "index", "--data-dir", str(self.data_dir / "a")],
                    ia_port,
                    ia_m,
                )
            )
            ib = self._start(
                Service(
                    "index-b",
                    ["serve", "index", "--data-dir", str(self.data_dir / "b")],
                    ib_port,
                    ib_m,
                )
            )
            gw = self._start(
                Service(
                    "gateway",
                    [
                        "serve",
                        "gateway",
                        "--encoder",
                        enc.target,
                        "--index",
                        ia.target,
                        "--index",
                        ib.target,
                        "--http-port",
                        str(self.http_port),
                        *(["--media-dir", str(self.media_dir)] if self.media_dir else []),
                    ],
                    gw_port,
                    gw_m,
                )
            )
        except BaseException:
            self.stop()
            raise
        self._registration = connect.register_stack(gw.target, gw.info["pid"], self.client_tls())
        return self

    @property
    def gateway(self) -> str:
        return next(s.target for s in self.services if s.name == "gateway")

    @property
    def playground_url(self) -> str | None:
        """The playground's URL (the gateway's HTTP port), or None with HTTP off."""
        gw = next(s for s in self.services if s.name == "gateway")
        port = gw.info.get("http_port")
        if port is None:
            return None
        return f"http://127.0.0.1:{port}/"

    @property
    def encoder(self) -> str:
        return next(s.target for s in self.services if s.name == "encoder")

    @property
    def index_targets(self) -> list[str]:
        return [s.target for s in self.services if s.name.startswith("index")]

    def stop(self, timeout: float = 30) -> None:
        connect.unregister_stack(self._registration)
        self._registration = None
        for svc in reversed(self.services):
            if svc.proc and svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
        for svc in reversed(self.services):
            if svc.proc:
                try:
                    svc.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    svc.proc.kill()
        self.services.clear()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
