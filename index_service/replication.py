"""Replica groups: one primary orders the writes, followers pull its log (docs/index-service.md).

Every process of a group (``replica_group``) holds the same shards. The **primary** answers
writes: a group of writes goes into its WAL (fsync), and when the collection's
``replication_factor`` is 2 or more it is acknowledged only once a follower has made it durable
too. **Followers** pull: one ``Fetch`` long-poll per collection asks for the entries after the
follower's last durable seq (which acknowledges everything up to it), writes them to its own WAL
with the same seqs, applies them and asks again. A follower serves reads once it has caught up
(``in_sync``); before that, searches it gets answer UNAVAILABLE and clients try another replica.
A follower the primary's log no longer reaches back to, or whose log diverged (it kept entries
of a deposed primary that were never acknowledged), copies a ``Dump`` and goes on from there.
Collections follow the primary's: a follower creates the ones it lacks and drops the ones the
primary no longer has.

Who is primary comes from a coordinator (:mod:`index_service.coordination`): etcd leases, a
fixed address, or none (a standalone process is its own primary, as before replication).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from index_service.collection import Collection, CollectionMeta
from index_service.shard import IP, L2
from index_service.wal import WalEntry
from vitrine.serving.errors import Unavailable, VitrineError
from vitrine.v1 import index_pb2, index_pb2_grpc, replication_pb2, replication_pb2_grpc

log = logging.getLogger("vitrine.index.replication")
PRIMARY = replication_pb2.REPLICA_ROLE_PRIMARY
FOLLOWER = replication_pb2.REPLICA_ROLE_FOLLOWER
UNKNOWN = replication_pb2.REPLICA_ROLE_UNSPECIFIED
FETCH_MAX_BYTES = 4 << 20
DUMP_BATCH = 1000


def _epochs_pb(items) -> list[replication_pb2.Epoch]:
    return [replication_pb2.Epoch(term=t, start_seq=s) for t, s in items]


def _epochs(pbs) -> list[tuple[int, int]]:
    return [(e.term, e.start_seq) for e in pbs]


def meta_from_info(info: index_pb2.CollectionInfo) -> CollectionMeta:
    return CollectionMeta(
        name=info.name,
        dim=info.dim,
        metric=IP if info.metric == index_pb2.METRIC_INNER_PRODUCT else L2,
        index_spec=info.index_spec,
        num_shards=info.num_shards,
        local_shards=list(info.local_shards),
        payload_bytes=info.payload_bytes,
        replication_factor=info.replication_factor or 1,
    )


class Replication:
    """This process's role in its replica group, and the work that role implies."""

    def __init__(self, store, config, channel_factory=None):
        self.store = store
        self.config = config
        self.group = config.replica_group
        self.address = config.advertise_address  # completed by start() when bound to port 0
        self.member = config.member_id
        self.role = PRIMARY if not self.group else UNKNOWN
        self.term = 1 if not self.group else 0
        self.primary_address = ""
        self._acked: dict[str, dict[str, tuple[int, float]]] = {}  # collection -> member -> seq
        self._acks = asyncio.Condition()
        self._appended: dict[str, asyncio.Event] = {}
        self._follower: asyncio.Task | None = None
        self._replacing: set[str] = set()  # collections being swapped for a primary's copy
        self.on_applied = None  # called with a collection after a fetch applied (metrics)
        self.lease_valid = lambda: True  # the coordinator's: may this process still act as primary
        self._channel_factory = channel_factory or (
            lambda target: grpc.aio.insecure_channel(target)
        )
        self.role_changes = 0

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self, address: str) -> None:
        self.address = self.address or address
        self.member = self.member or self.address
        for c in self.store.collections.values():
            self.attach(c)
            c.in_sync = self.role == PRIMARY

    def attach(self, c: Collection) -> None:
        """A collection joins the group's replication (at open or creation)."""
        if self.group:
            c.replicate = self.replicate
        if self.role == PRIMARY and self.term:
            c.epochs.begin(self.term, c.wal.next_seq)

    async def close(self) -> None:
        await self._stop_follower()

    # -- role changes (called by the coordinator) -------------------------------------------------------
    async def become_primary(self, term: int) -> None:
        if self.role == PRIMARY and self.term == term:
            return
        await self._stop_follower()
        self.term, self.role, self.primary_address = term, PRIMARY, self.address
        self._acked.clear()
        for c in self.store.collections.values():
            c.epochs.begin(term, c.wal.next_seq)
            c.in_sync = True
        self.role_changes += 1
        log.info("primary", extra={"group": self.group, "term": term, "member": self.member})

    async def become_follower(self, primary_address: str, term: int) -> None:
        if self.role == FOLLOWER and self.primary_address == primary_address and self.term == term:
            return
        await self._stop_follower()
        self.term, self.role, self.primary_address = term, FOLLOWER, primary_address
        async with self._acks:
            self._acks.notify_all()  # writes waiting for acknowledgement fail: not primary now
        # A replica that was in sync stays readable across a change of primary: it holds every
        # write acknowledged so far (a write needs a follower's ack). A diverged log is found at
        # the first fetch (snapshot_required), which takes it out of reads until it has copied.
        self._follower = asyncio.create_task(self._follow(primary_address))
        self.role_changes += 1
        log.info(
            "follower",
            extra={"group": self.group, "term": term, "primary": primary_address},
        )

    async def step_down(self) -> None:
        """Lost the coordinator's lease: stop taking writes until the role is known again."""
        if self.role == PRIMARY:
            self.role = UNKNOWN
            async with self._acks:
                self._acks.notify_all()
            log.warning("stepped down", extra={"group": self.group, "term": self.term})

    async def _stop_follower(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._follower
            self._follower = None

    # -- the primary's side -----------------------------------------------------------------------------
    def check_writable(self, c: Collection | None = None) -> None:
        """Raise UNAVAILABLE unless this process takes writes (for ``c``) now."""
        if self.role != PRIMARY:
            where = f"; the primary is {self.primary_address}" if self.primary_address else ""
            raise Unavailable(f"not the primary of replica group {self.group!r}{where}")
        if c is not None and self._needed(c):
            now = asyncio.get_running_loop().time()
            recent = [
                m
                for m, (_seq, t) in self._acked.get(c.meta.name, {}).items()
                if now - t < self.config.replication_timeout_s
            ]
            if not recent:
                raise Unavailable(
                    f"collection {c.meta.name}: no other replica is in contact "
                    f"(replication_factor {c.meta.replication_factor})"
                )

    def _needed(self, c: Collection) -> int:
        return 1 if self.group and c.meta.replication_factor >= 2 else 0

    async def replicate(self, c: Collection, last_seq: int) -> None:
        """Entries up to ``last_seq`` are durable here: wake the followers, wait for one's ack."""
        event = self._appended.pop(c.meta.name, None)
        if event is not None:
            event.set()
        need = self._needed(c)
        if not need:
            self._check_lease(c)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.replication_timeout_s
        async with self._acks:
            while True:
                if self.role != PRIMARY:
                    raise Unavailable(f"collection {c.meta.name}: lost the primary role mid-write")
                acked = self._acked.get(c.meta.name, {})
                if sum(seq >= last_seq for seq, _t in acked.values()) >= need:
                    self._check_lease(c)
                    return
                left = deadline - loop.time()
                if left <= 0:
                    raise Unavailable(
                        f"collection {c.meta.name}: no replica acknowledged the write within "
                        f"{self.config.replication_timeout_s} s; it is on the primary only, retry"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._acks.wait(), left)

    def _check_lease(self, c: Collection) -> None:
        """Acknowledge only while the coordinator's lease is surely alive (a primary paused past
        it may have been replaced): otherwise stop taking writes until the role is known."""
        if self.role == PRIMARY and not self.lease_valid():
            self.role = UNKNOWN  # the coordinator's next look decides again (waiters see it)
            log.warning("lease lapsed", extra={"group": self.group, "term": self.term})
            raise Unavailable(f"collection {c.meta.name}: the primary's lease lapsed; retry")

    async def fetch(self, req: replication_pb2.FetchRequest) -> replication_pb2.FetchResponse:
        if req.term > self.term:
            await self.step_down()  # a newer primary exists: this one was deposed
        if self.role != PRIMARY:
            raise Unavailable(f"not the primary of replica group {self.group!r}")
        c = self.store.get(req.collection)
        loop = asyncio.get_running_loop()
        resp = replication_pb2.FetchResponse(term=self.term)
        after = req.after_seq
        if after > c.replog.durable_seq or c.epochs.term_at(after) != req.after_term:
            resp.snapshot_required = True  # diverged: kept entries this log does not have
            resp.last_seq = c.replog.durable_seq
            return resp  # and its seq acknowledges nothing
        async with self._acks:  # the follower holds this log up to after_seq: an ack
            self._acked.setdefault(c.meta.name, {})[req.member] = (after, loop.time())
            self._acks.notify_all()
        max_bytes = req.max_bytes or FETCH_MAX_BYTES
        # Take the wake-up event before reading: an append after the read sets this event
        # (replicate() pops and sets it), so no new entry can slip between read and wait.
        event = self._appended.setdefault(c.meta.name, asyncio.Event())
        entries = await asyncio.to_thread(c.replog.read, after, max_bytes)
        if entries == [] and req.wait_ms > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), req.wait_ms / 1000)
            entries = await asyncio.to_thread(c.replog.read, after, max_bytes)
        if entries is None:
            resp.snapshot_required = True
        else:
            resp.entries.extend(
                replication_pb2.LogEntry(seq=e.seq, op=e.op, body=e.body) for e in entries
            )
        resp.last_seq = c.replog.durable_seq
        resp.epochs.extend(_epochs_pb(c.epochs.items))
        return resp

    async def dump(self, req: replication_pb2.DumpRequest):
        if self.role != PRIMARY:
            raise Unavailable(f"not the primary of replica group {self.group!r}")
        c = self.store.get(req.collection)
        seq, epochs, parts = await asyncio.to_thread(c.dump, req.batch or DUMP_BATCH)
        first = replication_pb2.DumpResponse(
            collection=c.info(), seq=seq, epochs=_epochs_pb(epochs)
        )
        yield first
        it = iter(parts)
        while True:
            part = await asyncio.to_thread(next, it, None)
            if part is None:
                return
            yield replication_pb2.DumpResponse(seq=seq, records=part)

    def status(self) -> replication_pb2.GetReplicaStatusResponse:
        return replication_pb2.GetReplicaStatusResponse(
            group=self.group,
            member=self.member,
            role=self.role,
            term=self.term,
            primary_address=self.primary_address,
            replicas=self.config.replicas,
            collections=[
                replication_pb2.CollectionProgress(
                    name=name,
                    applied_seq=c.replog.durable_seq,
                    applied_term=c.epochs.term_at(c.replog.durable_seq),
                    in_sync=c.in_sync,
                )
                for name, c in sorted(self.store.collections.items())
            ],
        )

    async def most_advanced(self, peers: list[str]) -> bool:
        """True when no reachable peer's log is ahead of this one (may take the primary role)."""
        mine = {
            name: (c.epochs.term_at(c.replog.durable_seq), c.replog.durable_seq)
            for name, c in self.store.collections.items()
        }
        for peer in peers:
            if peer == self.address:
                continue
            try:
                async with self._channel_factory(peer) as ch:
                    st = await replication_pb2_grpc.ReplicationServiceStub(ch).GetReplicaStatus(
                        replication_pb2.GetReplicaStatusRequest(), timeout=1.0
                    )
            except grpc.RpcError:
                continue  # unreachable: not a candidate either
            for p in st.collections:
                if (p.applied_term, p.applied_seq) > mine.get(p.name, (0, 0)):
                    return False
        return True

    # -- the follower's side ----------------------------------------------------------------------------
    async def _follow(self, primary: str) -> None:
        tasks: dict[str, asyncio.Task] = {}
        async with self._channel_factory(primary) as ch:
            index = index_pb2_grpc.IndexServiceStub(ch)
            repl = replication_pb2_grpc.ReplicationServiceStub(ch)
            try:
                while True:
                    try:
                        listed = await index.ListCollections(
                            index_pb2.ListCollectionsRequest(), timeout=2.0
                        )
                    except grpc.RpcError:
                        await asyncio.sleep(0.3)
                        continue
                    names = {info.name: info for info in listed.collections}
                    try:
                        await self._sync_collections(names, tasks, repl)
                    except VitrineError as exc:  # e.g. a resync swapping the collection meanwhile
                        log.warning("collection sync: %s", exc)
                    await asyncio.sleep(1.0)
            finally:
                for t in tasks.values():
                    t.cancel()
                await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _sync_collections(self, names: dict, tasks: dict, repl) -> None:
        """Create the primary's collections here, drop those it no longer has; one fetch loop
        per collection."""
        for name, info in names.items():
            if name not in self.store.collections and name not in self._replacing:
                c = await self.store.create(meta_from_info(info))
                c.in_sync = False
            task = tasks.get(name)
            if task is None or task.done():
                tasks[name] = asyncio.create_task(self._follow_collection(repl, name))
        for name in list(self.store.collections):
            if name not in names:
                if name in tasks:
                    tasks.pop(name).cancel()
                await self.store.drop(name)

    async def _follow_collection(self, repl, name: str) -> None:
        """Fetch; write the entries to the log (durable: the next Fetch acknowledges them);
        apply them while the next Fetch is under way (applies stay in order)."""
        wait_ms = self.config.fetch_wait_ms
        applying: asyncio.Future | None = None

        async def apply(c: Collection, entries, epochs) -> None:
            await asyncio.to_thread(c.apply_replicated, entries, epochs)
            await c.snapshot_if_due()
            if self.on_applied is not None:
                self.on_applied(c)

        try:
            while True:
                c = self.store.collections.get(name)
                if c is None:
                    return
                seq = c.replog.durable_seq
                req = replication_pb2.FetchRequest(
                    collection=name,
                    after_seq=seq,
                    after_term=c.epochs.term_at(seq),
                    term=self.term,
                    member=self.member,
                    wait_ms=wait_ms,
                )
                try:
                    resp = await repl.Fetch(req, timeout=wait_ms / 1000 + 5.0)
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.NOT_FOUND:
                        return  # dropped on the primary: the list sync drops it here
                    await asyncio.sleep(0.2)
                    continue
                if resp.term < self.term:
                    await asyncio.sleep(0.2)  # a deposed primary still answering: wait
                    continue
                if applying is not None and (resp.snapshot_required or not c.in_sync):
                    await applying  # a resync replaces the collection; in sync = applied
                    applying = None
                if resp.snapshot_required:
                    c.in_sync = False
                    await self._resync(repl, name)
                    continue
                epochs = _epochs(resp.epochs)
                if resp.entries:
                    entries = [WalEntry(e.seq, e.op, e.body) for e in resp.entries]
                    await asyncio.to_thread(c.write_replicated, entries)
                    if applying is not None:
                        await applying
                    applying = asyncio.ensure_future(apply(c, entries, epochs))
                else:
                    c.epochs.adopt(epochs, c.replog.durable_seq)
                if c.replog.durable_seq >= resp.last_seq and not c.in_sync:
                    if applying is not None:
                        await applying
                        applying = None
                    c.in_sync = True
                    log.info("in sync", extra={"collection": name, "seq": resp.last_seq})
                    if self.on_applied is not None:
                        self.on_applied(c)
        finally:
            if applying is not None:
                await asyncio.gather(applying, return_exceptions=True)

    async def _resync(self, repl, name: str) -> None:
        """Replace the local copy of ``name`` with the primary's dump (then fetch the rest)."""
        stream = repl.Dump(replication_pb2.DumpRequest(collection=name), timeout=600)
        parts, info, seq, epochs = [], None, 0, []
        async for msg in stream:
            if msg.HasField("collection"):
                info, seq, epochs = msg.collection, msg.seq, _epochs(msg.epochs)
            if msg.records:
                parts.append(list(msg.records))
        if info is None:
            return
        log.info("copying a snapshot", extra={"collection": name, "seq": seq})
        self._replacing.add(name)
        try:
            c = await self.store.replace(meta_from_info(info), parts, seq, epochs)
            c.in_sync = False
        finally:
            self._replacing.discard(name)
