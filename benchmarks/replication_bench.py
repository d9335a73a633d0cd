"""Replication: search and upsert with R = 1 vs R = 2, and failover time, in one run.

    python benchmarks/replication_bench.py [--n 20000] [--dim 256] [--duration 8] [--trials 10]

* **search**: one collection (Flat, 2 shards, clustered vectors) on one standalone index process
  (R = 1) and on a replica group of two (R = 2, reads spread round-robin over both replicas by
  ``IndexFanout``, hedged); closed-loop load at concurrency 1 and 8; the same queries against
  the same vectors in this process with faiss (the limit) in the same run.
* **upsert**: 100-record batches at concurrency 4 into R = 1 and into R = 2 with
  ``replication_factor`` 2 (each batch acknowledged once the follower has it on disk too).
* **failover** (needs Debian's ``etcd``): a replica group under an etcd lease (``lease_ttl_s``
  2); the primary is SIGKILLed and the time until a write is accepted again is measured,
  ``--trials`` times: with R = 3 (two survivors: the new primary has a follower to acknowledge
  writes at once) and with R = 2 (the killed process is restarted at once, as Kubernetes does:
  the lone survivor takes over but acknowledges writes once the other is back and caught up).

Both processes of a group share this machine's cores: on 2 cores "reads spread over replicas"
cannot add CPU, so R = 2 measures the cost of the extra hop and hedging, not a scale-out.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import closed_loop  # noqa: E402
from index_service.client import _records  # noqa: E402
from index_service.fanout import IndexFanout  # noqa: E402
from tests.support.replicas import (  # noqa: E402
    Etcd,
    etcd_binary,
    primary_of,
    replica_group,
    start_all,
    wait_in_sync,
)

BATCH = 100


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, dim)).astype(np.float32)
    x = centres[rng.integers(0, 64, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


async def load_and_measure(targets, rf, x, q, duration, ids_offset=0):
    fan = IndexFanout(targets, timeout=30)
    await primary_of(fan)
    await fan.create_collection("p", x.shape[1], "ip", "Flat", 2, replication_factor=rf)
    ids = [f"r{i}" for i in range(len(x))]

    async def upsert(s):
        await fan.upsert_records(
            "p", _records(ids[s : s + BATCH], x[s : s + BATCH], None), timeout=30
        )

    t0 = time.perf_counter()
    await asyncio.gather(*(upsert(s) for s in range(0, len(x), BATCH * 4)))  # warm the path
    sem = asyncio.Semaphore(4)

    async def guarded(s):
        async with sem:
            await upsert(s)

    starts = [s for s in range(0, len(x), BATCH) if s % (BATCH * 4) != 0]
    t0 = time.perf_counter()
    await asyncio.gather(*(guarded(s) for s in starts))
    upsert_rps = len(starts) * BATCH / (time.perf_counter() - t0)
    await wait_in_sync(targets)
    rows = {}
    for conc in (1, 8):
        res = await closed_loop(
            lambda qv: fan.search("p", qv[None], k=10, timeout=5), list(q), conc, duration
        )
        rows[conc] = res
    await fan.close()
    return upsert_rps, rows


def faiss_limit(x, q, duration) -> float:
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < duration / 2:
        index.search(q[n % len(q)][None], 10)
        n += 1
    return n / (time.perf_counter() - t0)


async def failover_trials(tmp: Path, n_replicas: int, trials: int, etcd_url: str, dim: int):
    reps = replica_group(tmp, f"f{n_replicas}", n_replicas, etcd_url)
    start_all(reps)
    times = []
    try:
        fan = IndexFanout([r.target for r in reps], timeout=30)
        await primary_of(fan)
        await fan.create_collection("p", dim, "ip", "Flat", 2, replication_factor=2)
        x = clustered(BATCH, dim, 9)
        await fan.upsert_records(
            "p", _records([f"f{i}" for i in range(BATCH)], x, None), timeout=30
        )
        for t in range(trials):
            await wait_in_sync([r.target for r in reps])
            primary = await primary_of(fan)
            victim = next(r for r in reps if r.target == primary)
            victim.kill()
            t0 = time.perf_counter()
            if n_replicas == 2:
                victim.start(wait=False)  # Kubernetes restarts the pod
            rec = _records([f"t{t}"], x[:1], None)
            while True:
                try:
                    await fan.upsert_records("p", rec, timeout=0.5)
                    break
                except Exception:
                    await asyncio.sleep(0.02)
            times.append(time.perf_counter() - t0)
            if n_replicas > 2:
                await asyncio.to_thread(victim.start)
            else:
                await asyncio.to_thread(victim.wait_ready)
        await fan.close()
    finally:
        for r in reps:
            r.stop()
    return times


async def main_async(args) -> dict:
    x = clustered(args.n, args.dim, 1)
    q = clustered(200, args.dim, 2)
    out: dict = {"benchmark": "replication", "n": args.n, "dim": args.dim}
    with tempfile.TemporaryDirectory(prefix="vitrine-repl-") as d:
        tmp = Path(d)
        single = replica_group(tmp, "solo", 1)  # a group of one: the standalone case
        for r in single:
            r.env.pop("VITRINE_REPLICA_GROUP")
            r.env.pop("VITRINE_PRIMARY_ADDRESS")
        start_all(single)
        try:
            up1, rows1 = await load_and_measure([r.target for r in single], 1, x, q, args.duration)
        finally:
            for r in single:
                r.stop()
        pair = replica_group(tmp, "pair", 2)
        start_all(pair)
        try:
            up2, rows2 = await load_and_measure([r.target for r in pair], 2, x, q, args.duration)
        finally:
            for r in pair:
                r.stop()
        limit = faiss_limit(x, q, args.duration)
        out["search"] = {
            "R1": {c: r.row() for c, r in rows1.items()},
            "R2": {c: r.row() for c, r in rows2.items()},
            "faiss_in_process_qps": round(limit, 1),
        }
        out["upsert_records_per_s"] = {"R1": round(up1, 1), "R2": round(up2, 1)}
        if etcd_binary() and args.trials:
            with Etcd(tmp / "etcd") as etcd:
                f3 = await failover_trials(tmp, 3, args.trials, etcd.url, args.dim)
                f2 = await failover_trials(tmp, 2, args.trials, etcd.url, args.dim)
            out["failover_s"] = {
                name: {
                    "trials": len(ts),
                    "median": round(float(np.median(ts)), 2),
                    "max": round(max(ts), 2),
                    "all": [round(t, 2) for t in ts],
                }
                for name, ts in (("R3", f3), ("R2_restart", f2))
            }
        else:
            out["failover_s"] = "skipped: etcd not installed"
    print(f"{'':<26}{'R = 1':>14}{'R = 2':>14}{'R2 / R1':>10}")
    for c in (1, 8):
        a, b = rows1[c], rows2[c]
        print(f"search q/s  c={c:<14}{a.rps:>14.1f}{b.rps:>14.1f}{b.rps / a.rps:>10.2f}")
        print(
            f"search p99 ms c={c:<12}{a.p99_ms:>14.2f}{b.p99_ms:>14.2f}{b.p99_ms / a.p99_ms:>10.2f}"
        )
    print(f"{'upsert records/s c=4':<26}{up1:>14.0f}{up2:>14.0f}{up2 / up1:>10.2f}")
    print(f"{'faiss in-process q/s c=1':<26}{limit:>14.0f}")
    if isinstance(out["failover_s"], dict):
        for name, f in out["failover_s"].items():
            print(f"failover {name:<17} median {f['median']} s, max {f['max']} s ({f['trials']})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    out = asyncio.run(main_async(args))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
