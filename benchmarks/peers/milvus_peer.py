"""Milvus Lite peer for the index-service benchmark (runs in .venv-peers).

Starts Milvus Lite's standalone gRPC server (``python -m milvus_lite server``, a separate
process bound to 127.0.0.1:PORT) on a temporary data directory, talks to it with pymilvus over
gRPC/TCP, and measures: insert throughput, index build (create_index + load) time, closed-loop
single-query search (requests/s, p50/p99 latency) at each concurrency, batched search (queries/s),
optional filtered search (``FIELD == VALUE``), recall@k against exact ground truth, and the
server's RSS. Prints a small table, writes the JSON to ``--out`` and prints it as the final
stdout line. The server and the temporary directory are always removed.

    milvus_peer.py --data DIR --index {FLAT,HNSW,IVF_PQ,IVF_FLAT,IVF_SQ8} \
        [--hnsw-m 32 --ef-construction 200 --ef-search 64] [--nlist 1024 --pq-m 32 --nprobe 16] \
        --metric IP --k 10 --seconds 10 --concurrency 1,8 --batch 64 \
        [--filter-field cat --filter-value 3] --out result.json

DIR: base.npy (float32 [n, d]), queries.npy (float32 [q, d]); optional gt.npy (int64 [q, >=k],
row numbers of the exact top-k), attrs.npy (int64 [n], one category per row) and
gt_filtered.npy (exact top-k under ``attrs == filter-value``).

Milvus Lite 3.x (the pure-Python engine: FAISS per-segment indexes behind a Milvus-compatible
gRPC adapter) has no product-quantisation index: ``--index IVF_PQ`` ends with exit status 3 and a
JSON ``"status": "unsupported"`` unless ``--pq-fallback IVF_SQ8|IVF_FLAT`` names a stand-in (same
nlist/nprobe; the JSON records both the requested and the run index type).

The pinned milvus-lite is 3.x. Run under a venv with milvus-lite 2.x (the C++ Milvus core as a
bundled ``milvus`` binary, here started as ``lib/milvus DB HOST:PORT ERROR``) the same script
drives that server instead; 2.x accepts only FLAT and IVF_FLAT (HNSW, IVF_PQ: exit 3).

Exit status: 0 ok, 3 index type unsupported by Milvus Lite, 1 any other failure (the JSON then
carries ``"status": "error"`` when it got far enough to write one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _pkg_version
from pathlib import Path

import numpy as np

COLLECTION = "peer_bench"
PK, VEC = "id", "vec"
UNSUPPORTED_EXIT = 3
READY_LINE = "MilvusLite gRPC server listening"


class Unsupported(Exception):
    pass


# ── server process ──────────────────────────────────────────────────────────────────────


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _proc_status(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, val = line.split(":", 1)
                    out[key] = int(val.split()[0]) / 1024.0  # kB -> MiB
    except OSError:
        pass
    return out


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class LiteServer:
    """The Milvus Lite server in its own process (own session), bound to host:port, logging to a
    file. milvus-lite 3.x: ``python -m milvus_lite server`` (pure Python); milvus-lite 2.x: the
    bundled C++ ``milvus`` binary (``lib/milvus DB_FILE HOST:PORT LOG_LEVEL``)."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        host: str,
        port: int,
        workers: int,
        memtable_bytes: int | None,
    ):
        self.host, self.port = host, port or _free_port(host)
        self.log_path = log_path
        self.major = int(_pkg_version("milvus-lite").split(".")[0])
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.major >= 3:
            if memtable_bytes:
                # One segment (one index) for the whole data set instead of one per 128 MiB
                # memtable.
                env["MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES"] = str(memtable_bytes)
                env["MILVUS_LITE_WAL_SIZE_LIMIT_BYTES"] = str(2 * memtable_bytes)
            cmd = [
                sys.executable,
                "-m",
                "milvus_lite",
                "server",
                "--data-dir",
                str(data_dir),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--max-workers",
                str(workers),
            ]
            self.ready_line, self.stop_signal = READY_LINE, signal.SIGINT
        else:
            import milvus_lite

            lib = Path(milvus_lite.__file__).resolve().parent / "lib"
            data_dir.mkdir(parents=True, exist_ok=True)
            env["LD_LIBRARY_PATH"] = f"{lib}:{os.environ.get('LD_LIBRARY_PATH', '')}"
            cmd = [
                str(lib / "milvus"),
                str(data_dir / "peer.db"),
                f"{self.host}:{self.port}",
                os.environ.get("LOG_LEVEL", "ERROR"),
            ]
            self.ready_line, self.stop_signal = None, signal.SIGTERM
        self.cmd = cmd
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(log_path.parent),
        )
        self.pid = self.proc.pid
        self._wait_ready(timeout=120.0)
        self.startup_s = time.perf_counter() - t0

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"milvus-lite server exited ({self.proc.returncode}):\n" + self.log_tail()
                )
            if self.ready_line is None or self.ready_line in self.log_tail(100_000):
                try:
                    with socket.create_connection((self.host, self.port), timeout=1.0):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("milvus-lite server not ready in time:\n" + self.log_tail())

    def stop(self) -> None:
        if self.proc.poll() is None:
            # 3.x: SIGINT -> KeyboardInterrupt in run_server: server.stop(grace=5), db.close().
            for sig, wait in (
                (self.stop_signal, 15.0),
                (signal.SIGTERM, 5.0),
                (signal.SIGKILL, 5.0),
            ):
                try:
                    self.proc.send_signal(sig)
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
        self._log.close()


# ── measurements ────────────────────────────────────────────────────────────────────────


def _client(uri: str):
    from pymilvus import MilvusClient

    # dedicated=True: a gRPC channel of its own (by default clients of one URI share one).
    return MilvusClient(uri=uri, dedicated=True)


def _ids(hits) -> list[int]:
    return [int(h["id"]) for h in hits]


def recall_at_k(found: list[list[int]], gt: np.ndarray, k: int) -> float:
    k = min(k, gt.shape[1])
    tot = 0.0
    for row, ids in zip(gt[:, :k], found, strict=False):
        tot += len(set(int(x) for x in row) & set(ids[:k])) / k
    return tot / len(found)


def closed_loop(
    uri: str,
    queries: np.ndarray,
    concurrency: int,
    seconds: float,
    warmup: float,
    search_kwargs: dict,
    batch: int,
    pid: int,
) -> dict:
    """`concurrency` threads, each with its own client, back-to-back search calls of `batch`
    queries each for `seconds` (after `warmup` seconds of the same load, not counted)."""
    clients = [_client(uri) for _ in range(concurrency)]
    nq = len(queries)
    phase = {"measure": False, "stop": False}
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    first_error: list[str] = []
    barrier = threading.Barrier(concurrency + 1)

    def worker(i: int) -> None:
        cl, mine = clients[i], lat[i]
        pos = (i * nq) // concurrency
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        while not phase["stop"]:
            idx = [(pos + j) % nq for j in range(batch)]
            pos = (pos + batch) % nq
            data = [queries[j] for j in idx]
            t0 = time.perf_counter()
            try:
                cl.search(COLLECTION, data=data, **search_kwargs)
            except Exception as e:
                errors[i] += 1
                if not first_error:
                    first_error.append(repr(e)[:500])
                continue
            if phase["measure"]:
                mine.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
        time.sleep(warmup)
        cpu0, t0 = _proc_cpu_s(pid), time.perf_counter()
        phase["measure"] = True
        time.sleep(seconds)
        phase["measure"] = False
        elapsed, cpu1 = time.perf_counter() - t0, _proc_cpu_s(pid)
    finally:  # also on SIGTERM/Ctrl-C: quiesce the load before the server is stopped
        phase["stop"] = True
        barrier.abort()
        for t in threads:
            t.join(timeout=60)
        for cl in clients:
            with contextlib.suppress(Exception):
                cl.close()
    all_lat = np.array([x for per in lat for x in per], dtype=np.float64) * 1000.0
    calls = int(all_lat.size)
    out = {
        "concurrency": concurrency,
        "batch": batch,
        "seconds": round(elapsed, 3),
        "calls": calls,
        "errors": int(sum(errors)),
        "rps": calls / elapsed,
        "qps": calls * batch / elapsed,
        "p50_ms": float(np.percentile(all_lat, 50)) if calls else None,
        "p99_ms": float(np.percentile(all_lat, 99)) if calls else None,
        "mean_ms": float(all_lat.mean()) if calls else None,
        "server_cpu_cores": (cpu1 - cpu0) / elapsed,
    }
    if first_error:
        out["first_error"] = first_error[0]
    return out


def recall_pass(cl, queries: np.ndarray, search_kwargs: dict, batch: int) -> list[list[int]]:
    found: list[list[int]] = []
    for s in range(0, len(queries), batch):
        res = cl.search(COLLECTION, data=[q for q in queries[s : s + batch]], **search_kwargs)
        found.extend(_ids(hits) for hits in res)
    return found


# ── main ────────────────────────────────────────────────────────────────────────────────


def build_index_params(a) -> tuple[str, dict, dict]:
    """(index type run, build params, search params) in Milvus's parameter names."""
    idx = a.index
    if idx == "IVF_PQ" and a.pq_fallback:
        idx = a.pq_fallback
    if idx == "FLAT":
        return idx, {}, {}
    if idx == "HNSW":
        return idx, {"M": a.hnsw_m, "efConstruction": a.ef_construction}, {"ef": a.ef_search}
    if idx == "IVF_PQ":
        return idx, {"nlist": a.nlist, "m": a.pq_m, "nbits": a.pq_nbits}, {"nprobe": a.nprobe}
    if idx in ("IVF_FLAT", "IVF_SQ8"):
        return idx, {"nlist": a.nlist}, {"nprobe": a.nprobe}
    raise ValueError(idx)


def run(a, result: dict, tmp: Path) -> None:
    from pymilvus import DataType, MilvusClient

    data = Path(a.data)
    base = np.ascontiguousarray(np.load(data / "base.npy"), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(data / "queries.npy"), dtype=np.float32)
    gt = np.load(data / "gt.npy") if (data / "gt.npy").exists() else None
    attrs = np.load(data / "attrs.npy") if (data / "attrs.npy").exists() else None
    gt_f = np.load(data / "gt_filtered.npy") if (data / "gt_filtered.npy").exists() else None
    n, d = base.shape
    result["dataset"] = {
        "dir": str(data),
        "n": int(n),
        "d": int(d),
        "q": len(queries),
        "gt": gt is not None,
        "attrs": attrs is not None,
    }
    field = a.filter_field or "cat"
    cats = attrs.astype(np.int64) if attrs is not None else np.zeros(n, dtype=np.int64)

    index_run, build_params, search_params = build_index_params(a)
    result["index"] = {
        "requested": a.index,
        "type": index_run,
        "metric": a.metric,
        "build_params": build_params,
        "search_params": search_params,
    }

    workers = a.server_workers or max(max(a.concurrency) + 2, 10)
    srv = LiteServer(tmp / "data", tmp / "server.log", a.host, a.port, workers, a.memtable_bytes)
    result["server"] = {
        "pid": srv.pid,
        "cmd": srv.cmd,
        "transport": f"grpc tcp {srv.host}:{srv.port}",
        "startup_s": round(srv.startup_s, 3),
        "grpc_workers": workers if srv.major >= 3 else None,
        "memtable_bytes": a.memtable_bytes if srv.major >= 3 else None,
    }
    try:
        cl = _client(srv.uri)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(PK, DataType.INT64, is_primary=True)
        schema.add_field(VEC, DataType.FLOAT_VECTOR, dim=int(d))
        schema.add_field(field, DataType.INT64)
        cl.create_collection(COLLECTION, schema=schema)

        # Insert (row dicts, the MilvusClient way), then flush to sealed segments.
        t0 = time.perf_counter()
        for s in range(0, n, a.insert_batch):
            e = min(s + a.insert_batch, n)
            rows = [{PK: i, VEC: base[i], field: int(cats[i])} for i in range(s, e)]
            cl.insert(COLLECTION, rows)
        t_ins = time.perf_counter() - t0
        t0 = time.perf_counter()
        cl.flush(COLLECTION)
        t_flush = time.perf_counter() - t0
        result["insert"] = {
            "batch_rows": a.insert_batch,
            "seconds": round(t_ins, 3),
            "vectors_per_s": n / t_ins,
            "flush_s": round(t_flush, 3),
            "vectors_per_s_incl_flush": n / (t_ins + t_flush),
        }

        # Index build: create_index + load (Milvus Lite builds the FAISS index per segment).
        ip = cl.prepare_index_params()
        ip.add_index(
            field_name=VEC, index_type=index_run, metric_type=a.metric, params=build_params
        )
        t0 = time.perf_counter()
        try:
            cl.release_collection(COLLECTION)
            cl.create_index(COLLECTION, ip)
            cl.load_collection(COLLECTION)
        except Exception as e:
            msg = str(e)
            # 3.x: "... reserved for a future phase; supported: HNSW, ..."; 2.x: "invalid index
            # type: HNSW, local mode only support FLAT IVF_FLAT AUTOINDEX".
            markers = (
                "reserved for a future phase",
                "only support",
                "not supported",
                "notimplemented",
            )
            if any(t in msg.lower() for t in markers):
                raise Unsupported(f"{index_run}: {msg[:400]}") from e
            raise
        t_build = time.perf_counter() - t0
        state = cl.get_load_state(COLLECTION)
        result["build"] = {"seconds": round(t_build, 3), "load_state": str(state.get("state"))}
        mem = _proc_status(srv.pid)
        result["server"]["rss_mib_after_load"] = round(mem.get("VmRSS", float("nan")), 1)
        # milvus-lite 3.x: one Parquet data file per sealed segment, each with its own index.
        segs = list((tmp / "data").rglob("data_*.parquet"))
        result["build"]["segments"] = len(segs) if srv.major >= 3 else None
        result["server"]["data_dir_mib"] = round(
            sum(f.stat().st_size for f in (tmp / "data").rglob("*") if f.is_file()) / 2**20, 1
        )

        kw = {
            "anns_field": VEC,
            "limit": a.k,
            "output_fields": [],
            "search_params": {"metric_type": a.metric, "params": search_params},
        }
        kw_f = dict(kw, filter=f"{field} == {int(a.filter_value)}") if a.filter_field else None

        # Recall (all queries, one per call, then in batches).
        rec: dict = {"k": a.k}
        if gt is not None:
            rec["single"] = recall_at_k(recall_pass(cl, queries, kw, 1), gt, a.k)
            rec["batched"] = recall_at_k(recall_pass(cl, queries, kw, a.batch), gt, a.k)
        if kw_f is not None and gt_f is not None:
            rec["filtered"] = recall_at_k(recall_pass(cl, queries, kw_f, 1), gt_f, a.k)
        result["recall"] = rec
        cl.close()

        runs = []
        for c in a.concurrency:
            r = closed_loop(srv.uri, queries, c, a.seconds, a.warmup, kw, 1, srv.pid)
            runs.append(dict(r, mode="single"))
            _progress(runs[-1])
        for c in a.batch_concurrency:
            r = closed_loop(srv.uri, queries, c, a.seconds, a.warmup, kw, a.batch, srv.pid)
            runs.append(dict(r, mode="batched"))
            _progress(runs[-1])
        if kw_f is not None:
            for c in a.concurrency:
                r = closed_loop(srv.uri, queries, c, a.seconds, a.warmup, kw_f, 1, srv.pid)
                runs.append(dict(r, mode="filtered", filter=kw_f["filter"]))
                _progress(runs[-1])
        result["search"] = runs
        mem = _proc_status(srv.pid)
        result["server"]["rss_mib_end"] = round(mem.get("VmRSS", float("nan")), 1)
        result["server"]["peak_rss_mib"] = round(mem.get("VmHWM", float("nan")), 1)
    finally:
        t0 = time.perf_counter()
        srv.stop()
        result["server"]["stop_s"] = round(time.perf_counter() - t0, 3)
        result["server"]["exit_code"] = srv.proc.returncode
        if a.keep_log:
            shutil.copy(srv.log_path, a.keep_log)


def _progress(r: dict) -> None:
    print(
        f"  {r['mode']:8s} c={r['concurrency']:<3d} rps={r['rps']:9.1f} qps={r['qps']:9.1f} "
        f"p50={r['p50_ms'] or float('nan'):7.2f}ms p99={r['p99_ms'] or float('nan'):7.2f}ms "
        f"errors={r['errors']}",
        file=sys.stderr,
        flush=True,
    )


def print_table(res: dict) -> None:
    ix = res.get("index", {})
    print(
        f"milvus-lite {res['versions']['milvus-lite']} | {ix.get('type')} "
        f"{ix.get('build_params')} {ix.get('search_params')} metric={ix.get('metric')} | "
        f"n={res.get('dataset', {}).get('n')} d={res.get('dataset', {}).get('d')}"
    )
    if "insert" in res:
        ins, b, s = res["insert"], res.get("build", {}), res["server"]
        print(
            f"insert {ins['vectors_per_s']:.0f} vec/s ({ins['seconds']} s, flush "
            f"{ins['flush_s']} s) | build {b.get('seconds')} s | server startup "
            f"{s['startup_s']} s, RSS after load {s.get('rss_mib_after_load')} MiB, peak "
            f"{s.get('peak_rss_mib')} MiB"
        )
    if "recall" in res:
        print(
            "recall@{k}: ".format(k=res["recall"]["k"])
            + ", ".join(f"{m}={v:.4f}" for m, v in res["recall"].items() if m != "k")
        )
    if res.get("search"):
        print(
            f"{'mode':9s} {'conc':>4s} {'batch':>5s} {'rps':>9s} {'qps':>9s} {'p50 ms':>8s} "
            f"{'p99 ms':>8s} {'srv cpu':>7s} {'err':>4s}"
        )
        for r in res["search"]:
            print(
                f"{r['mode']:9s} {r['concurrency']:4d} {r['batch']:5d} {r['rps']:9.1f} "
                f"{r['qps']:9.1f} {r['p50_ms'] or float('nan'):8.2f} "
                f"{r['p99_ms'] or float('nan'):8.2f} {r['server_cpu_cores']:7.2f} "
                f"{r['errors']:4d}"
            )
    if res.get("status") != "ok":
        print(f"status: {res.get('status')}: {res.get('error')}")


def _int_list(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument(
        "--index", required=True, choices=["FLAT", "HNSW", "IVF_PQ", "IVF_FLAT", "IVF_SQ8"]
    )
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef-search", type=int, default=64)
    p.add_argument("--nlist", type=int, default=1024)
    p.add_argument("--pq-m", type=int, default=32)
    p.add_argument("--pq-nbits", type=int, default=8)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument(
        "--pq-fallback",
        choices=["IVF_SQ8", "IVF_FLAT"],
        help="run this index type instead when IVF_PQ is asked for (Milvus Lite 3.x "
        "has no PQ); default: report unsupported, exit 3",
    )
    p.add_argument("--metric", default="IP", choices=["IP", "L2", "COSINE"])
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each run")
    p.add_argument("--concurrency", type=_int_list, default=[1, 8])
    p.add_argument("--batch", type=int, default=64, help="queries per call, batched run")
    p.add_argument(
        "--batch-concurrency",
        type=_int_list,
        default=[1],
        help="concurrency list for the batched run (default 1)",
    )
    p.add_argument("--filter-field")
    p.add_argument("--filter-value", type=int, default=0)
    p.add_argument("--insert-batch", type=int, default=5000, help="rows per insert call")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    p.add_argument(
        "--server-workers",
        type=int,
        default=0,
        help="server gRPC thread pool (default max(max concurrency + 2, 10))",
    )
    p.add_argument(
        "--memtable-bytes",
        type=int,
        default=4 << 30,
        help="Milvus Lite memtable budget (default 4 GiB: the data set becomes one "
        "segment with one index); 0 keeps Milvus Lite's 128 MiB default",
    )
    p.add_argument("--keep-log", help="copy the server log here")
    p.add_argument("--out")
    return p.parse_args(argv)


def _versions() -> dict:
    out = {}
    for p in ("milvus-lite", "pymilvus", "faiss-cpu", "numpy", "grpcio"):
        try:
            out[p] = _pkg_version(p)
        except PackageNotFoundError:  # faiss-cpu: milvus-lite 3.x only
            out[p] = None
    return out


def main(argv=None) -> int:
    a = parse_args(argv)
    result: dict = {
        "peer": "milvus-lite",
        "status": "ok",
        "versions": _versions(),
        "args": vars(a),
        "cpu_count": os.cpu_count(),
    }
    tmp = Path(tempfile.mkdtemp(prefix="milvus_peer_"))
    rc = 0

    def _on_term(signum, frame):  # turn SIGTERM into an exception so `finally` cleans up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not break cleanup
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _on_term)
    # A shell's background job starts with SIGINT ignored, and an ignored SIGINT is inherited by
    # the server process, whose graceful stop is SIGINT: catch it here (exec resets a caught
    # signal to the default in the child), which also makes Ctrl-C clean up this script.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run(a, result, tmp)
    except Unsupported as e:
        result.update(status="unsupported", error=str(e))
        rc = UNSUPPORTED_EXIT
    except BaseException as e:
        result.update(status="error", error=f"{type(e).__name__}: {e}"[:2000])
        rc = 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(result)
    line = json.dumps(result, default=str)
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(line, flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
