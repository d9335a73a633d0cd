"""Encoder service throughput and latency against the in-process limit, Triton and MLServer.

    python benchmarks/encoder_bench.py --models models --catalog ../shared/data/fashion-products

Closed loop, one item per request (a real catalog title, or one real product photo as JPEG bytes),
at concurrency 1, 8 and 32, against — in the same run, on the same ONNX towers and inputs:

* **vitrine**: ``vitrine serve encoder`` (a separate process), via the asyncio client;
* **in-process limit**: the same preprocessing (tokeniser / ``decode_image``) and onnxruntime
  session settings called directly on full batches of ``--max-batch`` items, no RPC; reported
  both with preprocessing ("same work") and inference only;
* **triton**: PyTriton's bundled Triton server, dynamic batcher on (``benchmarks/peers``);
* **mlserver**: MLServer with an onnxruntime runtime, adaptive batching on (``benchmarks/peers``).

Peers need their own venv (``benchmarks/peers/setup.sh``, or ``make bench-peers``); a peer whose
venv is missing is reported as skipped. All servers get the same max batch size and queue delay.
The load generator runs in this process on the same machine, as it does for every server.

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))

from benchmarks.loadgen import closed_loop  # noqa: E402
from vitrine.catalog import load_catalog  # noqa: E402
from vitrine.model_repo import ModelRepository  # noqa: E402
from vitrine.preprocess import TextTokenizer, decode_image  # noqa: E402

TEXT, IMAGE = "vitrine-text", "vitrine-image"
PEER_PY = ROOT / ".venv-peers" / "bin" / "python"


def load_inputs(catalog_dir: Path | None, n: int) -> tuple[list[str], list[bytes]]:
    catalog = load_catalog(catalog_dir)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(catalog.products))[:n]
    products = [catalog.products[i] for i in idx]
    return [p.title for p in products], [p.image_path.read_bytes() for p in products]


# -- in-process limit ----------------------------------------------------------------------------
def in_process(models: Path, titles, images, max_batch: int, seconds: float) -> dict:
    import onnxruntime as ort

    repo = ModelRepository(models)
    out = {}
    for name, items in ((TEXT, titles), (IMAGE, images)):
        mv = repo.load(name)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = os.cpu_count() or 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(mv.onnx_path), opts, providers=["CPUExecutionProvider"])
        if name == TEXT:
            tok = TextTokenizer(mv.tokenizer_path, mv.manifest.tokenizer["max_length"])

            def prep(batch, tok=tok):
                b = tok.encode(batch)
                return {"input_ids": b.input_ids, "attention_mask": b.attention_mask}
        else:
            key = next(iter(mv.manifest.inputs))

            def prep(batch, key=key):
                return {key: np.stack([decode_image(x) for x in batch])}

        batches = [
            items[i : i + max_batch] for i in range(0, len(items) - max_batch + 1, max_batch)
        ]
        fed = [prep(b) for b in batches[:8]]
        sess.run(None, fed[0])  # warm-up
        res = {}
        for mode in ("same_work", "infer_only"):
            done, k, t0 = 0, 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                feeds = prep(batches[k % len(batches)]) if mode == "same_work" else fed[k % 8]
                sess.run(None, feeds)
                done += max_batch
                k += 1
            res[mode] = done / (time.perf_counter() - t0)
        out[name] = res
    return out


# -- servers -------------------------------------------------------------------------------------
class Proc:
    def __init__(self, args: list[str], ready: str | Path, env: dict | None = None):
        self.ready = ready
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.port = None

    def wait_ready(self, timeout: float = 180) -> int:
        deadline = time.monotonic() + timeout
        if isinstance(self.ready, Path):
            while not self.ready.exists():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start")
                time.sleep(0.1)
            self.port = json.loads(self.ready.read_text())["port"]
            return self.port
        for line in self.proc.stdout:  # peers print "READY grpc=PORT ..."
            m = re.search(r"READY grpc=(\d+)", line)
            if m:
                self.port = int(m.group(1))
                return self.port
            if time.monotonic() > deadline:
                break
        raise RuntimeError("peer did not print READY")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_encoder(models: Path, names: list[str], tmp: Path, *flags: str) -> Proc:
    """``vitrine serve encoder`` with only the models ``names``, on a free port."""
    ready = tmp / "vitrine-ready.json"
    p = Proc(
        [
            str(ROOT / ".venv" / "bin" / "vitrine"),
            "serve",
            "encoder",
            "--models",
            str(models),
            *(x for n in names for x in ("--model", n)),
            "--port",
            "0",
            "--metrics-port",
            "-1",
            *flags,
            "--ready-file",
            str(ready),
        ],
        ready,
        env={"VITRINE_LOG_LEVEL": "warning"},
    )
    p.wait_ready()
    return p


def start_vitrine(models: Path, max_batch: int, delay_us: int, tmp: Path) -> Proc:
    flags = ("--max-batch-size", str(max_batch), "--max-queue-delay-us", str(delay_us))
    return start_encoder(models, [TEXT, IMAGE], tmp, *flags)


def start_peer(kind: str, models: Path, max_batch: int, delay_us: int) -> Proc:
    grpc_port, http_port = free_port(), free_port()
    script = ROOT / "benchmarks" / "peers" / f"{kind}_server.py"
    args = [
        str(PEER_PY),
        str(script),
        "--models",
        str(models),
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(http_port),
        "--max-batch",
        str(max_batch),
    ]
    if kind == "triton":
        args += ["--max-queue-delay-us", str(delay_us)]
    else:
        args += ["--max-batch-time-s", str(delay_us / 1e6)]
    p = Proc(args, "READY")
    p.wait_ready(300)
    return p


async def run_cells(kind: str, port: int, titles, images, concurrencies, seconds) -> list[dict]:
    if kind == "vitrine":
        from encoder_service.client import AsyncEncoderClient

        client = AsyncEncoderClient(f"127.0.0.1:{port}", timeout=60)

        async def text(t):
            return await client.embed_texts(TEXT, [t])

        async def image(b):
            return await client.embed_images(IMAGE, [b])
    else:
        from kserve import KServeClient

        client = KServeClient(f"127.0.0.1:{port}", timeout=60)
        await client.wait_ready(120)

        async def text(t):
            return await client.embed_texts(TEXT, [t])

        async def image(b):
            return await client.embed_images(IMAGE, [b])

    rows = []
    for modality, call, payloads in (("text", text, titles), ("image", image, images)):
        for c in concurrencies:
            r = await closed_loop(call, payloads, c, seconds)
            rows.append({"server": kind, "modality": modality, **r.row()})
            print(
                f"  {kind:9s} {modality:5s} c={c:<3d} {r.rps:8.1f} req/s  "
                f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  errors {r.errors}",
                flush=True,
            )
    await client.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--catalog", type=Path, default=None, help="default: the embedded demo catalog")
    ap.add_argument("--inputs", type=int, default=512, help="distinct titles/photos to cycle")
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per cell")
    ap.add_argument("--limit-seconds", type=float, default=4.0, help="per in-process figure")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--queue-delay-us", type=int, default=2000)
    ap.add_argument("--servers", default="vitrine,triton,mlserver")
    args = ap.parse_args()

    concurrencies = [int(c) for c in args.concurrency.split(",")]
    titles, images = load_inputs(args.catalog, args.inputs)
    print(
        f"inputs: {len(titles)} titles, {len(images)} photos; cores: {os.cpu_count()}", flush=True
    )
    rows, skipped, limits = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.servers.split(","):
            if kind != "vitrine" and not PEER_PY.exists():
                skipped[kind] = f"{PEER_PY} missing: run benchmarks/peers/setup.sh"
                continue
            # The machine is shared and noisy: measure the limit right before each server.
            limits[kind] = in_process(
                args.models, titles, images, args.max_batch, args.limit_seconds
            )
            print(f"in-process limit before {kind} (items/s): {json.dumps(limits[kind])}")
            try:
                proc = (
                    start_vitrine(args.models, args.max_batch, args.queue_delay_us, Path(tmp))
                    if kind == "vitrine"
                    else start_peer(kind, args.models, args.max_batch, args.queue_delay_us)
                )
            except RuntimeError as exc:
                skipped[kind] = str(exc)
                continue
            try:
                rows += asyncio.run(
                    run_cells(kind, proc.port, titles, images, concurrencies, args.seconds)
                )
            finally:
                proc.stop()

    limit = limits.get("vitrine") or next(iter(limits.values()))
    report = summarise(rows, limit, concurrencies)
    print_table(rows, limits, report)
    config = vars(args) | {"models": str(args.models), "catalog": str(args.catalog)}
    print(
        json.dumps(
            {
                "config": config,
                "in_process_items_per_s": limits,
                "rows": rows,
                "skipped": skipped,
                "summary": report,
            }
        )
    )


def summarise(rows, limit, concurrencies) -> dict:
    out = {}
    top = max(concurrencies)
    by = {(r["server"], r["modality"], r["concurrency"]): r for r in rows}
    for modality, model in (("text", TEXT), ("image", IMAGE)):
        ours = by.get(("vitrine", modality, top))
        if not ours:
            continue
        s = {
            f"vitrine_c{top}_rps": ours["rps"],
            "in_process_same_work_items_per_s": round(limit[model]["same_work"], 1),
            "vs_in_process_same_work": round(ours["rps"] / limit[model]["same_work"], 3),
            "vs_in_process_infer_only": round(ours["rps"] / limit[model]["infer_only"], 3),
        }
        for peer in ("triton", "mlserver"):
            theirs = by.get((peer, modality, top))
            if theirs and theirs["rps"] > 0:
                s[f"vs_{peer}"] = round(ours["rps"] / theirs["rps"], 2)
        c1, c8 = by.get(("vitrine", modality, 1)), by.get(("vitrine", modality, 8))
        if c1 and c8:
            s["p99_c8_over_p50_c1"] = round(c8["p99_ms"] / c1["p50_ms"], 2)
        s["goal_0.85x_in_process"] = s["vs_in_process_same_work"] >= 0.85
        s["goal_1.5x_peers"] = all(s.get(f"vs_{p}", 0) >= 1.5 for p in ("triton", "mlserver"))
        s["goal_p99_c8_le_3x_p50_c1"] = s.get("p99_c8_over_p50_c1", 99) <= 3
        out[modality] = s
    return out


def print_table(rows, limits, report) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Encoder: closed loop, one item per request")
    for col in ("server", "modality", "concurrency", "req/s", "p50 ms", "p99 ms", "errors"):
        t.add_column(col, justify="right" if col not in ("server", "modality") else "left")
    for r in rows:
        t.add_row(
            r["server"],
            r["modality"],
            str(r["concurrency"]),
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            str(r["errors"]),
        )
    for kind, limit in limits.items():
        for model, modality in ((TEXT, "text"), (IMAGE, "image")):
            for mode, label in (("same_work", "same work"), ("infer_only", "infer only")):
                value = f"{limit[model][mode]:.1f}"
                t.add_row(f"in-process, {label} (before {kind})", modality, "-", value, "", "", "")
    Console(width=120).print(t)
    for modality, s in report.items():
        print(modality, json.dumps(s))


if __name__ == "__main__":
    main()
