"""A collection spread over several index processes, each shard on one or more replicas.

:class:`IndexFanout` is the client side of sharding and replication (the gateway uses it):

* **Discovery**: every target is asked for its replica status (group, role). Processes of one
  ``replica_group`` hold the same shards; a process outside any group is a group of its own.
* **Writes** go to each group's primary, split by the id's shard. An UNAVAILABLE answer (not the
  primary any more, failover under way, no follower in contact) triggers a new discovery and a
  retry with backoff until the call's deadline; upserts and deletes by id are idempotent, so a
  retried write is harmless.
* **Reads** go to one replica per group, round-robin, with **hedging**: when the first replica
  has not answered after ``hedge_after_s`` (or answers an error), the next one is asked too and
  the first good answer wins. A result is ``partial`` only when every replica of some group
  failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from index_service.attributes import FacetCounts
from index_service.client import AsyncIndexClient, SearchHit, _hits, _records, _search_request
from index_service.collection import shard_of
from vitrine.serving.errors import DeadlineExceeded, NotFound, Unavailable, VitrineError
from vitrine.v1 import common_pb2, index_pb2, replication_pb2, replication_pb2_grpc


@dataclass
class FanoutResult:
    hits: list[list[SearchHit]]
    partial: bool  # some shards did not answer
    failed_endpoints: list[str]


@dataclass
class FacetsResult:
    facets: list[common_pb2.Facet]
    matched: int
    partial: bool = False


@dataclass
class ReplicaGroup:
    name: str
    members: list[AsyncIndexClient]
    primary: AsyncIndexClient | None = None
    next: int = 0  # round-robin start for reads
    latency_s: float = 0.005  # smoothed read latency (sets the hedge delay)

    def read_order(self) -> list[AsyncIndexClient]:
        n = len(self.members)
        self.next = (self.next + 1) % n
        return [self.members[(self.next + i) % n] for i in range(n)]


@dataclass
class _Layout:
    groups: list[ReplicaGroup]  # the groups holding shards of the collection
    owner: dict[int, ReplicaGroup] = field(default_factory=dict)
    num_shards: int = 0
    metric: str = "ip"


class IndexFanout:
    """See the module docstring."""

    def __init__(
        self,
        targets: Sequence[str],
        timeout: float = 10.0,
        *,
        tls=None,
        hedge_after_s: float = 0.0,
    ):
        self.clients = [AsyncIndexClient(t, timeout=timeout, tls=tls) for t in targets]
        self.timeout = timeout
        self.hedge_after_s = hedge_after_s  # 0: adaptive (3x the group's smoothed latency)
        self.groups: list[ReplicaGroup] = []
        self.layouts: dict[str, _Layout] = {}
        self.metric: dict[str, str] = {}
        self.num_shards: dict[str, int] = {}
        self._discovered = 0.0
        self._discovery: asyncio.Lock | None = None
        self._background: asyncio.Future | None = None
        self.rediscover_s = 10.0

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
        await asyncio.gather(*(c.close() for c in self.clients))

    # -- discovery ---------------------------------------------------------------------------------------
    async def discover(self, min_interval_s: float = 0.0) -> list[ReplicaGroup]:
        """Ask every target for its group and role (at most once per ``min_interval_s``)."""
        loop = asyncio.get_running_loop()
        if self._discovery is None:
            self._discovery = asyncio.Lock()
        async with self._discovery:
            if self.groups and loop.time() - self._discovered < min_interval_s:
                return self.groups

            async def status(c: AsyncIndexClient):
                stub = replication_pb2_grpc.ReplicationServiceStub(c.channel)
                try:
                    return await stub.GetReplicaStatus(
                        replication_pb2.GetReplicaStatusRequest(),
                        timeout=min(2.0, self.timeout),
                        metadata=c._metadata,
                    )
                except grpc.RpcError as exc:
                    return exc

            answers = await asyncio.gather(*(status(c) for c in self.clients))
            by_name: dict[str, ReplicaGroup] = {}
            best_term: dict[str, int] = {}
            old = {g.name: g for g in self.groups}
            for c, st in zip(self.clients, answers, strict=True):
                if isinstance(st, grpc.RpcError):
                    if st.code() != grpc.StatusCode.UNIMPLEMENTED:
                        # Unreachable now: keep it where it was, so reads can still try it.
                        for g in old.values():
                            if c in g.members:
                                by_name.setdefault(g.name, ReplicaGroup(g.name, [])).members.append(
                                    c
                                )
                        continue
                    name, primary, term = f"standalone:{c.target}", True, 1
                else:
                    name = st.group or f"standalone:{c.target}"
                    primary, term = st.role == replication_pb2.REPLICA_ROLE_PRIMARY, st.term
                g = by_name.setdefault(name, ReplicaGroup(name, []))
                g.members.append(c)
                if primary and term >= best_term.get(name, -1):
                    g.primary, best_term[name] = c, term
            for g in by_name.values():
                if g.name in old:
                    g.latency_s = old[g.name].latency_s
            order = {id(c): i for i, c in enumerate(self.clients)}  # the targets' order
            self.groups = sorted(
                by_name.values(), key=lambda g: min(order[id(c)] for c in g.members)
            )
            self._discovered = loop.time()
            for name in list(self.layouts):  # re-point layouts at the new group objects
                self._relink(name)
            return self.groups

    def _relink(self, name: str) -> None:
        lay = self.layouts[name]
        by_name = {g.name: g for g in self.groups}
        lay.groups = [by_name.get(g.name, g) for g in lay.groups]
        lay.owner = {s: by_name.get(g.name, g) for s, g in lay.owner.items()}

    async def refresh(self, name: str) -> None:
        """Learn which group holds which shards of ``name`` (NOT_FOUND when none has it)."""
        groups = await self.discover()
        lay = _Layout(groups=[])
        missing_everywhere = True
        for g in groups:
            info = None
            for c in ([g.primary] if g.primary else []) + g.members:
                try:
                    info = await c.describe(name)
                    break
                except NotFound:
                    break
                except VitrineError:
                    continue
            if info is None:
                continue
            missing_everywhere = False
            lay.groups.append(g)
            for s in info.local_shards:
                lay.owner[s] = g
            lay.num_shards = info.num_shards
            lay.metric = "ip" if info.metric == index_pb2.METRIC_INNER_PRODUCT else "l2"
        if missing_everywhere:
            raise NotFound(f"collection {name!r} does not exist")
        missing = sorted(set(range(lay.num_shards)) - set(lay.owner))
        if missing:
            raise VitrineError(f"collection {name}: no endpoint holds shards {missing}")
        self.layouts[name] = lay
        self.num_shards[name] = lay.num_shards
        self.metric[name] = lay.metric

    async def _layout(self, name: str) -> _Layout:
        if name not in self.layouts:
            await self.refresh(name)
        else:
            self._rediscover_soon()
        return self.layouts[name]

    def _rediscover_soon(self) -> None:
        """Every ``rediscover_s``, look again in the background: a replica that was down or
        catching up rejoins the reads, a new primary is known before the next write needs it."""
        loop = asyncio.get_running_loop()
        stale = loop.time() - self._discovered > self.rediscover_s
        if stale and (self._background is None or self._background.done()):
            self._background = asyncio.ensure_future(self.discover(self.rediscover_s))

    # -- writes ------------------------------------------------------------------------------------------
    async def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "ip",
        index_spec: str = "Flat",
        num_shards: int = 0,
        payload_bytes: int = 0,
        replication_factor: int = 0,
    ) -> None:
        """Create the collection on every group's primary, splitting the shards evenly between
        the groups (the followers copy it from their primary)."""
        groups = await self.discover()
        n = num_shards or len(groups)
        parts = np.array_split(np.arange(n), len(groups))

        async def create(g: ReplicaGroup, part) -> None:
            await self._on_primary(
                g,
                lambda c: c.create_collection(
                    name,
                    dim,
                    metric,
                    index_spec,
                    n,
                    [int(s) for s in part],
                    payload_bytes,
                    replication_factor=replication_factor,
                ),
                None,
            )

        await asyncio.gather(*(create(g, p) for g, p in zip(groups, parts, strict=True)))
        await self.refresh(name)

    async def _on_primary(self, g: ReplicaGroup, call, timeout: float | None):
        """Run ``call(primary client)``; on UNAVAILABLE find the primary again and retry."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        delay = 0.05
        while True:
            c = g.primary
            try:
                if c is None:
                    raise Unavailable(f"replica group {g.name}: no primary known")
                return await call(c)
            except (Unavailable, DeadlineExceeded) as exc:
                if loop.time() + delay >= deadline:
                    raise exc from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                await self.discover(min_interval_s=0.1)
                g = next((x for x in self.groups if x.name == g.name), g)

    async def _by_group(self, name: str, items: Sequence, key=lambda x: x):
        """Split ``items`` by the group holding each one's shard: [(group, items), ...]."""
        lay = await self._layout(name)
        groups: dict[str, tuple[ReplicaGroup, list]] = {}
        for item in items:
            g = lay.owner[shard_of(key(item), lay.num_shards)]
            groups.setdefault(g.name, (g, []))[1].append(item)
        return list(groups.values())

    async def upsert_records(
        self, name: str, records: Sequence[index_pb2.Record], timeout: float | None = None
    ) -> int:
        groups = await self._by_group(name, records, key=lambda r: r.id)
        done = await asyncio.gather(
            *(
                self._on_primary(g, lambda c, rs=rs: c.upsert_records(name, rs, timeout), timeout)
                for g, rs in groups
            )
        )
        return sum(done)

    async def upsert(self, name: str, ids, vectors, attributes=None) -> int:
        return await self.upsert_records(name, _records(ids, vectors, attributes))

    async def delete(self, name: str, ids: Sequence[str], timeout: float | None = None) -> int:
        groups = await self._by_group(name, ids)
        done = await asyncio.gather(
            *(self._on_primary(g, lambda c, rs=rs: c.delete(name, rs), timeout) for g, rs in groups)
        )
        return sum(done)

    # -- reads -------------------------------------------------------------------------------------------
    async def _read(self, g: ReplicaGroup, call, deadline: float | None):
        """``call(client)`` on one replica of ``g``, hedged onto the next ones (first good wins)."""
        loop = asyncio.get_running_loop()
        order = g.read_order()
        hedge = self.hedge_after_s or min(0.2, max(0.01, 3 * g.latency_s))
        pending: dict[asyncio.Task, AsyncIndexClient] = {}
        errors: list[BaseException] = []
        started = loop.time()
        try:
            while order or pending:
                if order:
                    c = order.pop(0)
                    pending[asyncio.create_task(call(c))] = c
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    break
                wait = left if not order else (hedge if left is None else min(hedge, left))
                done, _ = await asyncio.wait(
                    pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                for t in done:
                    pending.pop(t)
                    if t.exception() is None:
                        g.latency_s = 0.8 * g.latency_s + 0.2 * (loop.time() - started)
                        return t.result()
                    errors.append(t.exception())
            if errors:
                raise errors[-1]
            raise DeadlineExceeded(f"replica group {g.name}: no replica answered in time")
        finally:
            for t in pending:
                t.cancel()

    async def existing(self, name: str, ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` that the collection holds."""
        groups = await self._by_group(name, ids)
        answers = await asyncio.gather(
            *(self._read(g, lambda c, rs=rs: c.get(name, rs), None) for g, rs in groups)
        )
        return {r.id for a in answers for r in a.records}

    async def facets(
        self,
        name: str,
        fields: Sequence[str] = (),
        limit: int = 20,
        filter: common_pb2.Filter | None = None,
        timeout: float | None = None,
        allow_partial: bool = True,
    ) -> FacetsResult:
        """Attribute value counts over the whole collection: one replica per group, summed.

        With several groups each is asked for at least 1,000 values per field (like
        Elasticsearch's ``shard_size``, more than ``limit``), so counts are exact for fields with
        up to that many distinct values per group; beyond (titles, ids), a value just below one
        group's cut may be counted low."""
        lay = await self._layout(name)
        ask = limit if len(lay.groups) == 1 else min(10_000, max(1000, limit * 3 // 2 + 10))
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        async def one(g: ReplicaGroup):
            left = None if deadline is None else deadline - loop.time()
            return await self._read(
                g, lambda c: c.facets(name, fields, ask, filter, left), deadline
            )

        answers = await asyncio.gather(*(one(g) for g in lay.groups), return_exceptions=True)
        good = [a for a in answers if not isinstance(a, BaseException)]
        bad = [a for a in answers if isinstance(a, BaseException)]
        if bad and (not allow_partial or not good):
            raise bad[0]
        total = FacetCounts()
        for a in good:
            total.add(FacetCounts.from_pb(a.facets, a.matched))
        return FacetsResult(total.to_pb(limit), total.matched, partial=bool(bad))

    async def search(
        self,
        name: str,
        queries,
        k: int = 10,
        filter: common_pb2.Filter | None = None,
        ef_search: int = 0,
        nprobe: int = 0,
        include_attributes: bool = False,
        timeout: float | None = None,
        allow_partial: bool = True,
        retries: int = 0,
        include_payloads: bool = False,
        text_queries: Sequence[str] = (),
    ) -> FanoutResult:
        """Search one replica of every group (hedged) and merge.

        ``text_queries`` (with ``queries`` None) makes it a lexical search (BM25, higher is
        better). With ``allow_partial`` the answers of the groups that did reply are merged and
        the result is flagged ``partial``; otherwise the first failure is raised. A group whose
        replicas all answered UNAVAILABLE is tried again ``retries`` times (with backoff).
        """
        lay = await self._layout(name)
        req = _search_request(
            name,
            queries,
            k,
            filter,
            ef_search,
            nprobe,
            include_attributes,
            (),
            include_payloads,
            text_queries,
        )
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        async def one(g: ReplicaGroup):
            for attempt in range(retries + 1):
                left = None if deadline is None else deadline - loop.time()
                try:
                    return await self._read(
                        g, lambda c, left=left: c.search_raw(req, left), deadline
                    )
                except Unavailable:
                    if attempt == retries:
                        raise
                    await asyncio.sleep(0.02 * 2**attempt)
            raise AssertionError("unreachable")  # pragma: no cover

        answers = await asyncio.gather(*(one(g) for g in lay.groups), return_exceptions=True)
        failed = [
            c.target
            for g, a in zip(lay.groups, answers, strict=True)
            if isinstance(a, BaseException)
            for c in g.members
        ]
        good = [a for a in answers if not isinstance(a, BaseException)]
        if failed and (not allow_partial or not good):
            raise next(a for a in answers if isinstance(a, BaseException))
        higher = lay.metric == "ip" or bool(text_queries)
        per_group = [_hits(a) for a in good]
        merged = []
        for q in range(len(text_queries) or req.queries.shape[0]):
            pool = [h for hits in per_group for h in hits[q]]
            pool.sort(key=(lambda h: (-h.score, h.id)) if higher else (lambda h: (h.score, h.id)))
            merged.append(pool[:k])
        return FanoutResult(merged, partial=bool(failed), failed_endpoints=failed)
