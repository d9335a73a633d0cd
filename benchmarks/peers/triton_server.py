"""Triton peer: the vitrine text and image encoders behind Triton (PyTriton) with dynamic batching.

Run with the peers' venv (see ``setup.sh``)::

    .venv-peers/bin/python benchmarks/peers/triton_server.py --models models \
        --grpc-port 8001 --http-port 8000 --max-batch 64 --max-queue-delay-us 2000 --instances 1

Models (KServe v2 over gRPC and HTTP):

* ``vitrine-text``: input ``text`` BYTES ``[-1, 1]`` (one UTF-8 title per item), output
  ``embedding`` FP32 ``[-1, dim]``;
* ``vitrine-image``: input ``image`` BYTES ``[-1, 1]`` (one encoded JPEG/PNG/WebP per item),
  output ``embedding`` FP32 ``[-1, dim]``.

Triton's dynamic batcher groups requests (up to ``--max-batch`` items, waiting at most
``--max-queue-delay-us``); the inference callable gets the whole batch, tokenises it at once /
decodes every image, and runs onnxruntime once (see ``peer_models.py``). ``--instances`` binds
that many callables (Triton model instances), each with its own onnxruntime session.

Prints ``READY grpc=PORT http=PORT`` on stdout once both models are loaded and serving (that is
the only thing written to stdout: Triton's own log goes to stderr); SIGTERM or SIGINT stops
Triton and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import sysconfig
import threading
import time
from pathlib import Path


def _ensure_libpython_on_ld_path() -> None:
    # The Triton Python backend stub (started by tritonserver) links against libpythonX.Y.so of
    # the interpreter that runs PyTriton. A pyenv / non-system Python keeps it in its own lib
    # dir, which the dynamic loader does not search: export it for the child processes.
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir:
        return
    current = os.environ.get("LD_LIBRARY_PATH", "")
    if libdir not in current.split(os.pathsep):
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, current) if p)


_ensure_libpython_on_ld_path()

import numpy as np  # noqa: E402
from pytriton.decorators import batch  # noqa: E402
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor  # noqa: E402
from pytriton.triton import Triton, TritonConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_models as pm  # noqa: E402

log = logging.getLogger("triton_peer")


def text_callable(encoder: pm.TextEncoder):
    @batch
    def infer(text: np.ndarray) -> dict[str, np.ndarray]:
        texts = [b.decode("utf-8") for b in pm.as_bytes_list(text)]
        return {pm.OUTPUT: encoder(texts)}

    return infer


def image_callable(encoder: pm.ImageEncoder):
    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        return {pm.OUTPUT: encoder(pm.as_bytes_list(image))}

    return infer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", required=True, help="model repository (vitrine-text, vitrine-image)")
    p.add_argument("--host", default="127.0.0.1", help="address gRPC and HTTP bind to")
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=64, help="Triton max_batch_size (items)")
    p.add_argument("--max-queue-delay-us", type=int, default=2000)
    p.add_argument("--instances", type=int, default=1, help="model instances per model")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads; 0 = cores")
    p.add_argument("--decode-workers", type=int, default=0, help="image decode threads; 0 = cores")
    p.add_argument("--text-version", type=int, default=0, help="0 = latest published")
    p.add_argument("--image-version", type=int, default=0, help="0 = latest published")
    p.add_argument("--log-verbose", type=int, default=0)
    return p.parse_args(argv)


def _stdout_for_ready_only():
    """Route everything written to fd 1 (tritonserver's log, inherited by its processes) to
    stderr; return a stream on the original stdout for the READY line. A driver that stops
    reading our stdout after READY can then never fill the pipe and stall the server."""
    sys.stdout.flush()
    ready_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(ready_fd, "w", buffering=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ready_out = _stdout_for_ready_only()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    threads = args.threads or pm.default_threads()
    decode_workers = args.decode_workers or pm.default_threads()
    models = Path(args.models)
    text_dir = (
        models / pm.TEXT_MODEL / str(args.text_version)
        if args.text_version
        else pm.latest_version(models, pm.TEXT_MODEL)
    )
    image_dir = (
        models / pm.IMAGE_MODEL / str(args.image_version)
        if args.image_version
        else pm.latest_version(models, pm.IMAGE_MODEL)
    )
    t0 = time.monotonic()
    text_encoders = [pm.TextEncoder(text_dir, threads) for _ in range(args.instances)]
    image_encoders = [
        pm.ImageEncoder(image_dir, threads, decode_workers) for _ in range(args.instances)
    ]
    log.info(
        "loaded %s and %s (%d instance(s), %d ort threads) in %.1fs",
        text_dir,
        image_dir,
        args.instances,
        threads,
        time.monotonic() - t0,
    )

    stop = threading.Event()

    def _on_signal(signum, _frame):
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    config = TritonConfig(
        grpc_address=args.host,
        grpc_port=args.grpc_port,
        http_address=args.host,
        http_port=args.http_port,
        allow_metrics=False,
        allow_gpu_metrics=False,
        allow_cpu_metrics=False,
        log_verbose=args.log_verbose,
        exit_timeout_secs=5,
    )
    model_config = ModelConfig(
        max_batch_size=args.max_batch,
        batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us),
    )
    triton = Triton(config=config)
    try:
        triton.bind(
            model_name=pm.TEXT_MODEL,
            infer_func=[text_callable(e) for e in text_encoders],
            inputs=[Tensor(name=pm.TEXT_INPUT, dtype=bytes, shape=(1,))],
            outputs=[Tensor(name=pm.OUTPUT, dtype=np.float32, shape=(text_encoders[0].dim,))],
            config=model_config,
            strict=True,
        )
        triton.bind(
            model_name=pm.IMAGE_MODEL,
            infer_func=[image_callable(e) for e in image_encoders],
            inputs=[Tensor(name=pm.IMAGE_INPUT, dtype=bytes, shape=(1,))],
            outputs=[Tensor(name=pm.OUTPUT, dtype=np.float32, shape=(image_encoders[0].dim,))],
            config=model_config,
            strict=True,
        )
        triton.run()  # starts tritonserver + the proxy backends, waits for the models
        print(f"READY grpc={args.grpc_port} http={args.http_port}", file=ready_out, flush=True)
        while not stop.wait(1.0):
            if not triton.is_alive():
                log.error("Triton or a model proxy died")
                return 1
        return 0
    finally:
        triton.stop()


if __name__ == "__main__":
    sys.exit(main())
