"""MLServer peer: the vitrine text and image encoders behind MLServer with adaptive batching.

Run with the peers' venv (see ``setup.sh``)::

    .venv-peers/bin/python benchmarks/peers/mlserver_server.py --models models \
        --grpc-port 8081 --http-port 8080 --max-batch 64 --max-batch-time-s 0.002

Writes ``settings.json`` and one ``model-settings.json`` per model (custom runtimes from
``mlserver_runtime.py``) into a temporary directory, starts ``mlserver start`` on it, polls the
HTTP ready endpoints of the server and both models, then prints ``READY grpc=PORT http=PORT``
(the only line on stdout; MLServer's log goes to stderr).
SIGTERM / SIGINT are forwarded to MLServer (killed after ``--stop-timeout-s``); the temporary
directory is removed on exit.

Same models, inputs and outputs as the Triton peer (``text`` / ``image`` BYTES ``[n, 1]`` ->
``embedding`` FP32 ``[n, dim]``). MLServer's metrics server is off. ``--parallel-workers 1``
(default; ~5-15 % faster here than 0) runs inference in one worker process, the adaptive
batcher and the gRPC/HTTP servers in the main one; ``0`` runs everything in one process
(inference on a thread pool, off the event loop).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TEXT_MODEL = "vitrine-text"
IMAGE_MODEL = "vitrine-image"


def latest_version(models_dir: Path, name: str) -> Path:
    # Same rule as peer_models.latest_version, without importing onnxruntime in the launcher.
    root = models_dir / name
    versions = [
        int(p.name)
        for p in (root.iterdir() if root.is_dir() else [])
        if p.is_dir() and p.name.isdigit() and int(p.name) > 0 and (p / "manifest.json").exists()
    ]
    if not versions:
        raise SystemExit(f"no published version of {name} under {models_dir}")
    return root / str(max(versions))


def write_settings(root: Path, args: argparse.Namespace) -> None:
    models = Path(args.models).resolve()
    settings = {
        "debug": False,
        "host": args.host,
        "http_port": args.http_port,
        "grpc_port": args.grpc_port,
        "grpc_max_message_length": 256 * 1024 * 1024,
        "parallel_workers": args.parallel_workers,
        "metrics_endpoint": None,  # no metrics server (and no metrics port to collide)
        "metrics_dir": str(root / ".metrics"),
        "environments_dir": str(root / ".envs"),
        "model_repository_root": str(root),
        "load_models_at_startup": True,
        "gzip_enabled": False,
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    for name, runtime in (
        (TEXT_MODEL, "mlserver_runtime.VitrineTextRuntime"),
        (IMAGE_MODEL, "mlserver_runtime.VitrineImageRuntime"),
    ):
        version_dir = latest_version(models, name)
        model_settings = {
            "name": name,
            "implementation": runtime,
            "max_batch_size": args.max_batch,
            "max_batch_time": args.max_batch_time_s,
            "parameters": {
                "version": version_dir.name,
                "extra": {
                    "version_dir": str(version_dir),
                    "threads": args.threads,
                    "decode_workers": args.decode_workers,
                    "instances": args.instances,
                },
            },
        }
        (root / name).mkdir()
        (root / name / "model-settings.json").write_text(json.dumps(model_settings, indent=2))


def ready(http_port: int, host: str) -> bool:
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{http_port}"
    try:
        for path in (
            "/v2/health/ready",
            f"/v2/models/{TEXT_MODEL}/ready",
            f"/v2/models/{IMAGE_MODEL}/ready",
        ):
            with urllib.request.urlopen(base + path, timeout=2) as resp:
                if resp.status != 200:
                    return False
        return True
    except (urllib.error.URLError, OSError):
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", required=True, help="model repository (vitrine-text, vitrine-image)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--grpc-port", type=int, default=8081)
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--max-batch", type=int, default=64, help="adaptive batching: max requests")
    p.add_argument("--max-batch-time-s", type=float, default=0.002)
    p.add_argument("--parallel-workers", type=int, default=1)
    p.add_argument("--instances", type=int, default=1, help="inference threads/sessions per model")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads; 0 = cores")
    p.add_argument("--decode-workers", type=int, default=0, help="image decode threads; 0 = cores")
    p.add_argument("--startup-timeout-s", type=float, default=180.0)
    p.add_argument("--stop-timeout-s", type=float, default=10.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="vitrine-mlserver-"))
    proc: subprocess.Popen | None = None
    stopping = False

    def _on_signal(signum, _frame):
        nonlocal stopping
        stopping = True
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        write_settings(root, args)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        mlserver = Path(sys.executable).with_name("mlserver")
        cmd = [str(mlserver) if mlserver.exists() else "mlserver", "start", str(root)]
        # MLServer logs to stdout: send it to stderr, so that our stdout carries only READY.
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=sys.stderr)
        deadline = time.monotonic() + args.startup_timeout_s
        while not stopping:
            if proc.poll() is not None:
                print(f"mlserver exited with {proc.returncode} before ready", file=sys.stderr)
                return proc.returncode or 1
            if ready(args.http_port, args.host):
                print(f"READY grpc={args.grpc_port} http={args.http_port}", flush=True)
                break
            if time.monotonic() > deadline:
                print("mlserver not ready in time", file=sys.stderr)
                return 1
            time.sleep(0.25)
        while not stopping and proc.poll() is None:
            time.sleep(0.5)
        if proc.poll() is not None and not stopping:
            return proc.returncode or 1
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(args.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
