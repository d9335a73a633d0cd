"""Replica groups under faults: real index processes, a real etcd, SIGKILL and SIGSTOP.

Each test is bounded (small collections, a few seconds of load); together ~1 minute.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from index_service.client import IndexClient
from index_service.fanout import IndexFanout
from tests.support.replicas import (
    Etcd,
    etcd_binary,
    primary_of,
    replica_group,
    start_all,
    wait_in_sync,
)
from vitrine.serving import errors

DIM = 16
needs_etcd = pytest.mark.skipif(etcd_binary() is None, reason="etcd (Debian etcd-server) absent")


def vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class Load:
    """Concurrent upserts (unique ids, 20 per request) and searches through one IndexFanout."""

    def __init__(self, fan: IndexFanout, writers: int = 2, searchers: int = 2):
        self.fan = fan
        self.acked: dict[str, np.ndarray] = {}
        self.write_errors = 0
        self.searches = 0
        self.search_failures: list[str] = []
        self.stop = asyncio.Event()
        self.tasks = [asyncio.create_task(self._write(w)) for w in range(writers)]
        self.tasks += [asyncio.create_task(self._search(s)) for s in range(searchers)]

    async def _write(self, w: int) -> None:
        b = 0
        while not self.stop.is_set():
            ids = [f"w{w}-{b}-{i}" for i in range(20)]
            x = vectors(20, seed=1000 * w + b)
            try:
                await self.fan.upsert_records("p", _records(ids, x), timeout=4)
                self.acked.update(zip(ids, x, strict=True))
            except errors.VitrineError:
                self.write_errors += 1  # not acknowledged: may or may not be stored
            b += 1

    async def _search(self, s: int) -> None:
        q = vectors(4, seed=99 + s)
        while not self.stop.is_set():
            try:
                res = await self.fan.search("p", q, k=5, timeout=3)
                if res.partial:
                    self.search_failures.append(f"partial: {res.failed_endpoints}")
            except errors.VitrineError as exc:
                self.search_failures.append(repr(exc))
            self.searches += 1
            await asyncio.sleep(0.01)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


def _records(ids, x):
    from index_service.client import _records as records

    return records(ids, x, [{"n": float(i)} for i in range(len(ids))])


def check_replicas_identical(targets: list[str], acked: dict[str, np.ndarray]) -> None:
    """Every acknowledged record on every replica, byte for byte; same counts and answers."""
    ids = sorted(acked)
    q = vectors(8, seed=7)
    answers, counts = [], []
    for t in targets:
        with IndexClient(t) as c:
            got = {}
            for s in range(0, len(ids), 2000):
                for r in c.get("p", ids[s : s + 2000], include_vectors=True).records:
                    got[r.id] = np.frombuffer(r.vector, "<f4")
            lost = [i for i in ids if i not in got]
            assert not lost, f"{t}: {len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
            assert all(np.array_equal(got[i], acked[i]) for i in ids)
            counts.append(c.count("p"))
            answers.append([[(h.id, round(h.score, 5)) for h in hs] for hs in c.search("p", q, 5)])
    assert len(set(counts)) == 1, f"replicas differ in size: {counts}"
    assert all(a == answers[0] for a in answers), "replicas answer differently"


@needs_etcd
@pytest.mark.parametrize("victim", ["primary", "follower"])
def test_sigkill_a_replica_under_load_loses_nothing(tmp_path, victim):
    with Etcd(tmp_path / "etcd") as etcd:
        env = {"VITRINE_REPLICATION_TIMEOUT_S": "2"}
        reps = replica_group(tmp_path, "g0", 2, etcd.url, env)
        try:
            start_all(reps)

            async def scenario():
                fan = IndexFanout([r.target for r in reps], timeout=10)
                primary = await primary_of(fan)
                await fan.create_collection("p", DIM, "ip", "Flat", 2, replication_factor=2)
                x = vectors(200, seed=1)
                ids = [f"pre-{i}" for i in range(200)]
                await fan.upsert_records("p", _records(ids, x), timeout=20)
                load = Load(fan)
                load.acked.update(zip(ids, x, strict=True))
                await asyncio.sleep(1.0)
                target = next(r for r in reps if (r.target == primary) == (victim == "primary"))
                before_kill = len(load.acked)
                target.kill()  # SIGKILL; Kubernetes would restart the pod: so do we
                await asyncio.sleep(1.0)
                await asyncio.to_thread(target.start)
                await wait_in_sync([target.target])
                back = len(load.acked)
                for _ in range(100):  # writes acknowledged by both again
                    await asyncio.sleep(0.1)
                    if len(load.acked) > back + 40:
                        break
                await load.finish()
                assert before_kill > 200 and len(load.acked) > back, "writes did not resume"
                new_primary = await primary_of(fan)
                await fan.close()
                return load, primary, new_primary

            load, primary, new_primary = asyncio.run(scenario())
            assert load.searches > 50 and not load.search_failures, load.search_failures[:5]
            if victim == "follower":
                assert new_primary == primary  # a follower's death moves nothing
            time.sleep(1.0)  # the last fetch round
            check_replicas_identical([r.target for r in reps], load.acked)
        finally:
            for r in reps:
                r.stop()


def test_hung_replica_searches_meet_their_deadline_through_hedging(tmp_path):
    reps = replica_group(tmp_path, "g0", 2)  # fixed primary: no coordinator needed
    try:
        start_all(reps)

        async def scenario():
            fan = IndexFanout([r.target for r in reps], timeout=10)
            await primary_of(fan)
            await fan.create_collection("p", DIM, "ip", "Flat", 2, replication_factor=2)
            x = vectors(300, seed=2)
            await fan.upsert_records("p", _records([f"i{i}" for i in range(300)], x), timeout=20)
            await wait_in_sync([reps[1].target])
            q = vectors(2, seed=3)
            expected = (await fan.search("p", q, k=5, timeout=2)).hits
            worst = {}
            for hung in reps:
                hung.pause()  # SIGSTOP: the process holds its connections and answers nothing
                try:
                    times = []
                    for _ in range(30):
                        t0 = time.perf_counter()
                        res = await fan.search("p", q, k=5, timeout=1.0)
                        times.append(time.perf_counter() - t0)
                        assert not res.partial
                        assert [[h.id for h in hs] for hs in res.hits] == [
                            [h.id for h in hs] for hs in expected
                        ]
                    worst[hung.target] = max(times)
                finally:
                    hung.resume()
            await fan.close()
            return worst

        worst = asyncio.run(scenario())
        assert all(t < 0.5 for t in worst.values()), worst  # deadline 1 s; hedge after <= 0.2 s
    finally:
        for r in reps:
            r.stop()


def test_follower_behind_the_log_copies_a_snapshot(tmp_path):
    """A follower back after the primary's WAL was snapshotted away catches up with Dump."""
    env = {"VITRINE_SNAPSHOT_WAL_MB": "1", "VITRINE_REPLICATION_LOG_MB": "0"}
    reps = replica_group(tmp_path, "g0", 2, env=env)
    try:
        start_all(reps)

        async def scenario():
            fan = IndexFanout([r.target for r in reps], timeout=10)
            await primary_of(fan)
            # replication_factor 1: writes do not wait for the follower, so it can fall behind.
            await fan.create_collection("p", DIM, "ip", "Flat", 2, replication_factor=1)
            acked = {}
            x = vectors(500, seed=4)
            ids = [f"a{i}" for i in range(500)]
            await fan.upsert_records("p", _records(ids, x), timeout=20)
            acked.update(zip(ids, x, strict=True))
            await wait_in_sync([reps[1].target])
            reps[1].kill()
            for b in range(12):  # ~3 MB of log: the primary snapshots and drops its old WAL
                ids = [f"b{b}-{i}" for i in range(1000)]
                x = vectors(1000, seed=10 + b)
                await fan.upsert_records("p", _records(ids, x), timeout=20)
                acked.update(zip(ids, x, strict=True))
            deleted = [f"a{i}" for i in range(50)]
            await fan.delete("p", deleted)
            for i in deleted:
                acked.pop(i)
            await asyncio.to_thread(reps[1].start)
            await wait_in_sync([reps[1].target])
            await fan.close()
            return acked

        acked = asyncio.run(scenario())
        time.sleep(0.5)
        check_replicas_identical([r.target for r in reps], acked)
        assert "copying a snapshot" in reps[1].log_tail(20000)
        with IndexClient(reps[1].target) as c:
            assert c.get("p", ["a1"]).missing_ids == ["a1"]  # the delete came across too
    finally:
        for r in reps:
            r.stop()


@needs_etcd
def test_paused_primary_is_replaced_and_rejoins_without_losing_a_write(tmp_path):
    """SIGSTOP the primary past its lease under load: a new primary takes over; when the old one
    resumes it must not acknowledge anything, it rejoins as a follower (copying a snapshot if its
    log diverged), and no acknowledged write is lost."""
    with Etcd(tmp_path / "etcd") as etcd:
        reps = replica_group(tmp_path, "g0", 2, etcd.url, {"VITRINE_REPLICATION_TIMEOUT_S": "2"})
        try:
            start_all(reps)

            async def scenario():
                fan = IndexFanout([r.target for r in reps], timeout=10)
                primary = await primary_of(fan)
                await fan.create_collection("p", DIM, "ip", "Flat", 2, replication_factor=2)
                x = vectors(200, seed=5)
                ids = [f"pre-{i}" for i in range(200)]
                await fan.upsert_records("p", _records(ids, x), timeout=20)
                await wait_in_sync([r.target for r in reps])
                load = Load(fan)
                load.acked.update(zip(ids, x, strict=True))
                await asyncio.sleep(0.5)
                old = next(r for r in reps if r.target == primary)
                old.pause()  # hung: holds its connections, renews no lease
                await asyncio.sleep(4.0)  # lease (2 s) expires, the other takes over
                old.resume()
                await wait_in_sync([old.target])
                back = len(load.acked)
                for _ in range(100):
                    await asyncio.sleep(0.1)
                    if len(load.acked) > back + 40:
                        break
                await load.finish()
                new_primary = await primary_of(fan)
                await fan.close()
                return load, primary, new_primary, back

            load, primary, new_primary, back = asyncio.run(scenario())
            assert new_primary != primary  # the paused one was replaced
            assert not load.search_failures, load.search_failures[:5]
            assert len(load.acked) > back, "writes did not resume"
            time.sleep(1.0)
            check_replicas_identical([r.target for r in reps], load.acked)
        finally:
            for r in reps:
                r.stop()
