"""A collection: its local shards, write-ahead log, snapshots and recovery.

Directory layout (``<data_dir>/<name>/``)::

    collection.json                 # dim, metric, index spec, shards (written once, atomically)
    wal-<first seq>.log             # write-ahead log files (see index_service.wal)
    snapshot-<seq>/shard-<i>.*      # state of every local shard as of WAL seq <seq>
    payloads/                       # per-record payloads (LMDB, see index_service.payloads)
    texts/                          # per-record lexical texts (LMDB; see index_service.lexical)

Writes: :meth:`Collection.upsert` / :meth:`Collection.delete` queue their WAL entries; one flusher
task writes and fsyncs everything queued (group commit), applies it to the shards in WAL order, and
only then answers the callers. An acknowledged write is therefore on disk.

Snapshots (when the WAL has grown by ``snapshot_wal_bytes``, and at shutdown): the flusher is
paused, the WAL rotates to a new file, every shard's state is copied, the copy is written to
``snapshot-<seq>.tmp/``, fsynced and renamed to ``snapshot-<seq>/``; then older snapshots and WAL
files are deleted. Recovery loads the newest complete snapshot and replays WAL entries after it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import threading
import time
import zlib
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from index_service import devices
from index_service.attributes import FacetCounts, Value, attrs_from_pb
from index_service.lexical import LexicalIndex, search_filtered
from index_service.payloads import PayloadStore
from index_service.replog import Epochs, ReplicationLog
from index_service.shard import IP, L2, SearchOptions, Shard
from index_service.wal import OP_DELETE, OP_UPSERT, Wal, WalEntry, fsync_dir, replay, wal_files
from vitrine.serving.errors import FailedPrecondition, InvalidArgument
from vitrine.v1 import index_pb2

log = logging.getLogger("vitrine.index.collection")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SPEC_RE = re.compile(r"^[A-Za-z0-9,_.+=-]{1,128}$")
META = "collection.json"


def shard_of(record_id: str, num_shards: int) -> int:
    """Stable shard of an id: CRC-32 of its UTF-8 bytes modulo the shard count."""
    return zlib.crc32(record_id.encode("utf-8")) % num_shards


@dataclass
class CollectionMeta:
    name: str
    dim: int
    metric: str  # "ip" | "l2"
    index_spec: str
    num_shards: int
    local_shards: list[int] = field(default_factory=list)
    payload_bytes: int = 0  # exact size of every non-empty payload; 0 = any (up to the limit)
    replication_factor: int = 1  # copies of every shard (index_service.replication)

    def validate(self) -> None:
        if not NAME_RE.match(self.name):
            raise InvalidArgument(f"name: {self.name!r} must match [a-z0-9][a-z0-9_-]{{0,63}}")
        if not 1 <= self.dim <= 65536:
            raise InvalidArgument(f"dim: {self.dim} must be in 1..65536")
        if self.metric not in (IP, L2):
            raise InvalidArgument("metric: must be METRIC_INNER_PRODUCT or METRIC_L2")
        if not 1 <= self.num_shards <= 1024:
            raise InvalidArgument(f"num_shards: {self.num_shards} must be in 1..1024")
        if self.payload_bytes < 0:
            raise InvalidArgument(f"payload_bytes: {self.payload_bytes} must be >= 0")
        if not 1 <= self.replication_factor <= 16:
            raise InvalidArgument(f"replication_factor: {self.replication_factor} must be in 1..16")
        bad = [s for s in self.local_shards if not 0 <= s < self.num_shards]
        if bad:
            raise InvalidArgument(f"local_shards: {bad} outside 0..{self.num_shards - 1}")
        if not SPEC_RE.match(self.index_spec):  # faiss's parser crashes on some long strings
            raise InvalidArgument(
                f"index_spec: {self.index_spec[:40]!r} is not a faiss factory string "
                "(up to 128 characters of letters, digits and ,_.-+=)"
            )
        try:
            faiss.index_factory(self.dim, self.index_spec, faiss.METRIC_L2)
        except Exception as exc:  # faiss raises RuntimeError with a C++ message
            raise InvalidArgument(
                f"index_spec: faiss cannot build {self.index_spec!r}: {exc}"
            ) from exc


@dataclass
class _Op:
    op: int
    bodies: list[bytes]
    apply: tuple  # the request, decoded for the shards and the payload store
    future: asyncio.Future


class Collection:
    def __init__(
        self,
        meta: CollectionMeta,
        directory: Path,
        background: Executor,
        *,
        fsync: bool = True,
        snapshot_wal_bytes: int = 256 * 1024 * 1024,
        compact_ratio: float = 0.2,
        gpus: int = 0,
        max_payload_bytes: int = 64 * 1024,
        max_text_chars: int = 16 * 1024,
        replication_log_bytes: int = 64 << 20,
    ) -> None:
        self.meta = meta
        self.max_text_chars = max_text_chars
        self.dir = directory
        self.fsync = fsync
        self.max_payload_bytes = max_payload_bytes
        self.snapshot_wal_bytes = snapshot_wal_bytes
        self._background = background
        local = meta.local_shards or list(range(meta.num_shards))
        self.meta.local_shards = sorted(local)
        self.shards: dict[int, Shard] = {
            s: Shard(
                meta.dim,
                meta.metric,
                meta.index_spec,
                compact_ratio=compact_ratio,
                on_compact=self._schedule_rebuild,
                device=s % gpus if gpus else None,
            )
            for s in self.meta.local_shards
        }
        self.payloads = PayloadStore(directory)
        self.texts = PayloadStore(directory, "texts")
        self.lexical: dict[int, LexicalIndex] = {s: LexicalIndex() for s in self.meta.local_shards}
        self._lexical_pool: ThreadPoolExecutor | None = None  # commits of several shards at once
        self.applied_seq = 0
        self._pending_seq = 0
        self.snapshot_seq = 0
        self.wal: Wal | None = None
        self._queue: list[_Op] = []
        self._flusher: asyncio.Task | None = None
        self._snapshot_lock = threading.Lock()  # snapshot vs apply
        self._wal_lock = threading.Lock()  # snapshot (WAL rotation) vs log appends
        self._wal_at_snapshot = 0
        self.recovery_seconds = 0.0
        self.replayed = 0
        self.group_sizes: list[int] = []  # for metrics, drained by the service
        self.dropped = False
        # Replication (index_service.replication): the log as followers read it, its epochs,
        # the hook that waits for a follower's acknowledgement, and whether reads are served.
        self.epochs = Epochs(directory)
        self.replog = ReplicationLog(directory, 0, replication_log_bytes)
        self.replicate = None  # async (collection, last_seq) -> None; raises when not replicated
        self.in_sync = True

    # -- creation / recovery ------------------------------------------------------------------------
    @classmethod
    def create(cls, meta: CollectionMeta, directory: Path, background: Executor, **kw):
        meta.validate()
        tmp = directory.with_name(f".{directory.name}.creating")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / META).write_text(json.dumps(asdict(meta), indent=2))
        with open(tmp / META, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, directory)
        fsync_dir(directory.parent)
        c = cls(meta, directory, background, **kw)
        c.wal = Wal(directory, 1, fsync=c.fsync)
        return c

    @classmethod
    def open(cls, directory: Path, background: Executor, **kw) -> Collection:
        t0 = time.perf_counter()
        meta = CollectionMeta(**json.loads((directory / META).read_text()))
        c = cls(meta, directory, background, **kw)
        for tmp in directory.glob("snapshot-*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
        snaps = sorted(
            (int(p.name.split("-", 1)[1]), p)
            for p in directory.glob("snapshot-*")
            if p.is_dir() and not p.name.endswith(".tmp")
        )
        if snaps:
            seq, path = snaps[-1]
            for s, shard in c.shards.items():
                _load_shard(shard, path, s)
            c.applied_seq = c.snapshot_seq = seq
        c._load_lexical()
        batch = []
        for entry in replay(directory, c.applied_seq):
            batch.append(entry)
            c.replayed += 1
            if len(batch) >= 10_000:
                c._apply_entries(batch)
                batch = []
        c._apply_entries(batch)
        c.wal = Wal(directory, c.applied_seq + 1, fsync=c.fsync)
        c.replog.reset(c.applied_seq)
        c._pending_seq = c.applied_seq
        c.recovery_seconds = time.perf_counter() - t0
        log.info(
            "collection recovered",
            extra={
                "collection": meta.name,
                "snapshot_seq": c.snapshot_seq,
                "replayed_entries": c.replayed,
                "records": c.count(),
                "seconds": round(c.recovery_seconds, 3),
            },
        )
        return c

    # -- writes -------------------------------------------------------------------------------------------
    def _check_vector(self, data: bytes, where: str) -> np.ndarray:
        if len(data) != 4 * self.meta.dim:
            raise InvalidArgument(
                f"{where}.vector: {len(data)} bytes, expected {4 * self.meta.dim} "
                f"(dim {self.meta.dim} float32)"
            )
        vec = np.frombuffer(data, dtype="<f4")
        if not np.isfinite(vec).all():
            raise InvalidArgument(f"{where}.vector: contains NaN or Inf")
        return vec

    def _load_lexical(self) -> None:
        """Rebuild the lexical indexes from the text store (the WAL replay then updates them)."""
        n = self.meta.num_shards
        ops: dict[int, list] = {s: [] for s in self.lexical}
        for rid, text in self.texts.items():
            s = shard_of(rid, n)
            if s in ops:
                ops[s].append(("put", rid, text.decode("utf-8")))
        for s, shard_ops in ops.items():
            self.lexical[s].apply(shard_ops)

    def _check_payload(self, data: bytes, where: str) -> bytes:
        n, want = len(data), self.meta.payload_bytes
        if n and want and n != want:
            raise InvalidArgument(
                f"{where}.payload: {n} bytes, collection {self.meta.name} stores {want}-byte payloads"
            )
        if n > self.max_payload_bytes:
            raise InvalidArgument(
                f"{where}.payload: {n} bytes, larger than the limit of {self.max_payload_bytes}"
            )
        return data

    def prepare_upsert(self, records) -> tuple[list[bytes], tuple]:
        """Validate records (raising INVALID_ARGUMENT naming the item); returns WAL bodies."""
        if not records:
            raise InvalidArgument("records: empty")
        ids, vecs, attrs, payloads, texts = [], [], [], [], []
        for i, r in enumerate(records):
            where = f"records[{i}]"
            if not r.id:
                raise InvalidArgument(f"{where}.id: required")
            if len(r.id.encode()) > 512:
                raise InvalidArgument(f"{where}.id: longer than 512 bytes")
            shard = shard_of(r.id, self.meta.num_shards)
            if shard not in self.shards:
                raise FailedPrecondition(
                    f"{where}.id: {r.id!r} belongs to shard {shard}, which this process does not "
                    f"hold (it holds {self.meta.local_shards})"
                )
            vecs.append(self._check_vector(r.vector, where))
            attrs.append(attrs_from_pb(r.attributes, where))
            payloads.append(self._check_payload(r.payload, where))
            if len(r.text) > self.max_text_chars:
                raise InvalidArgument(
                    f"{where}.text: {len(r.text)} characters, more than {self.max_text_chars}"
                )
            texts.append(r.text)
            ids.append(r.id)
        bodies = [r.SerializeToString() for r in records]
        return bodies, (ids, np.stack(vecs).astype(np.float32), attrs, payloads, texts)

    async def upsert(self, records) -> int:
        bodies, decoded = self.prepare_upsert(records)
        await self._submit(OP_UPSERT, bodies, decoded)
        return len(bodies)

    async def delete(self, ids: list[str]) -> int:
        for i, rid in enumerate(ids):
            if not rid:
                raise InvalidArgument(f"ids[{i}]: empty id")
        local = [rid for rid in ids if shard_of(rid, self.meta.num_shards) in self.shards]
        if not local:
            return 0
        return await self._submit(OP_DELETE, [rid.encode() for rid in local], (local,))

    async def _submit(self, op: int, bodies: list[bytes], decoded: tuple):
        if self.dropped:
            raise FailedPrecondition(f"collection {self.meta.name} was dropped")
        fut = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(op, bodies, decoded, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await asyncio.shield(fut)

    async def _flush(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            try:
                last_seq = await asyncio.to_thread(self._commit, group)
            except Exception as exc:  # disk full, I/O error: nobody in the group is acknowledged
                log.exception("WAL commit failed", extra={"collection": self.meta.name})
                for op in group:
                    if not op.future.done():
                        op.future.set_exception(exc)
                continue
            # In the log now, so applied either way (recovery and followers would apply it),
            # while a follower makes it durable too; without a follower's acknowledgement the
            # writers get the error and retry.
            applying = asyncio.ensure_future(asyncio.to_thread(self._apply_group, group))
            failure = None
            if self.replicate is not None:
                try:
                    await self.replicate(self, last_seq)
                except Exception as exc:  # answered to every writer of the group
                    failure = exc
            try:
                results = await applying
            except Exception as exc:  # in the WAL: a restart replays it; answer the error now
                log.exception("apply failed", extra={"collection": self.meta.name})
                results, failure = [None] * len(group), failure or exc
            for op, res in zip(group, results, strict=True):
                if op.future.done():
                    continue
                if failure is not None:
                    op.future.set_exception(failure)
                else:
                    op.future.set_result(res)
            await self.snapshot_if_due()

    async def snapshot_if_due(self) -> None:
        if self.wal.bytes_written - self._wal_at_snapshot > self.snapshot_wal_bytes:
            await asyncio.to_thread(self.snapshot)

    def _commit(self, group: list[_Op]) -> int:
        """Give the group's entries their seqs and make them durable; returns the last seq."""
        with self._wal_lock:
            entries = []
            for op in group:
                entries += self.wal.assign(op.op, op.bodies)
            self.wal.write(entries)  # durable from here
            self.replog.append(entries)
            self.group_sizes.append(len(group))
            self._pending_seq = entries[-1].seq
            return entries[-1].seq

    def _apply_group(self, group: list[_Op]) -> list:
        with self._snapshot_lock:
            results, payload_ops, text_ops = [], [], []
            for op in group:
                if op.op == OP_UPSERT:
                    ids, vectors, attrs, payloads, texts = op.apply
                    self._apply_upsert(ids, vectors, attrs)
                    payload_ops += [("put", i, p) for i, p in zip(ids, payloads, strict=True)]
                    text_ops += [("put", i, t) for i, t in zip(ids, texts, strict=True)]
                    results.append(len(op.bodies))
                else:
                    results.append(self._apply_delete(*op.apply))
                    payload_ops += [("del", i, b"") for i in op.apply[0]]
                    text_ops += [("del", i, "") for i in op.apply[0]]
            self.payloads.apply(payload_ops)
            self._apply_texts(text_ops)
            self.applied_seq = self._pending_seq
            return results

    # -- replication (a follower's side; index_service.replication drives it) ----------------------
    def write_replicated(self, entries: list[WalEntry]) -> None:
        """Make the primary's entries durable in this log, with their seqs (not applied yet)."""
        with self._wal_lock:
            if entries[0].seq != self.wal.next_seq:
                raise FailedPrecondition(
                    f"collection {self.meta.name}: entry {entries[0].seq} does not follow "
                    f"{self.wal.next_seq - 1}"
                )
            self.wal.write(entries)
            self.wal.next_seq = entries[-1].seq + 1
            self.replog.append(entries)

    def apply_replicated(self, entries: list[WalEntry], epochs: list[tuple[int, int]]) -> None:
        """Apply entries :meth:`write_replicated` wrote (in order), and the primary's epochs."""
        with self._snapshot_lock:
            self._apply_entries(entries)
            self.epochs.adopt(epochs, self.applied_seq)

    def dump(self, batch: int):
        """``(seq, epochs, [[Record, ...], ...])``: every live record as of one applied seq."""
        from index_service.attributes import attrs_to_pb

        with self._snapshot_lock:
            seq = self.applied_seq
            epochs = [e for e in self.epochs.items if e[1] <= seq]
            copies = [_copy_shard(shard, with_index=False) for shard in self.shards.values()]

        def parts():
            rows = []
            for copy in copies:
                for label, rid in enumerate(copy.ids):
                    if copy.live[label]:
                        rows.append((rid, copy.vectors[label], copy.attrs[label]))
            for i in range(0, len(rows), batch):
                chunk = rows[i : i + batch]
                ids = [r[0] for r in chunk]
                payloads = self.payloads.get_many(ids)
                texts = self.texts.get_many(ids)
                yield [
                    index_pb2.Record(
                        id=rid,
                        vector=vec.astype("<f4").tobytes(),
                        attributes=attrs_to_pb(attrs),
                        payload=payload,
                        text=text.decode("utf-8"),
                    )
                    for (rid, vec, attrs), payload, text in zip(chunk, payloads, texts, strict=True)
                ]

        return seq, epochs, parts()

    def load_dump(self, records, seq: int, epochs: list[tuple[int, int]]) -> None:
        """Fill a new, empty collection from a primary's dump consistent with ``seq``."""
        with self._snapshot_lock, self._wal_lock:
            for part in records:
                if part:
                    _bodies, (ids, vectors, attrs, payloads, texts) = self.prepare_upsert(part)
                    self._apply_upsert(ids, vectors, attrs)
                    self.payloads.apply([("put", i, p) for i, p in zip(ids, payloads, strict=True)])
                    self._apply_texts([("put", i, t) for i, t in zip(ids, texts, strict=True)])
            self.wal.close()
            for _first, path in wal_files(self.dir):
                path.unlink()
            self.wal = Wal(self.dir, seq + 1, fsync=self.fsync)
            self.applied_seq = self._pending_seq = seq
            self.replog.reset(seq)
            self.epochs.adopt(epochs, seq)
        self.snapshot()  # durable as of seq without the entries that led there

    def _apply_texts(self, ops: list[tuple[str, str, str]]) -> None:
        """Lexical texts: into the text store (durable with snapshots) and the shards' indexes."""
        if not ops:
            return
        self.texts.apply([(op, rid, text.encode("utf-8")) for op, rid, text in ops])
        by_shard: dict[int, list] = {}
        for op in ops:
            by_shard.setdefault(shard_of(op[1], self.meta.num_shards), []).append(op)
        work = [(self.lexical[s], o) for s, o in by_shard.items() if s in self.lexical]
        if len(work) == 1:
            work[0][0].apply(work[0][1])
        elif work:  # tantivy commits release the GIL: the shards commit side by side
            if self._lexical_pool is None:
                self._lexical_pool = ThreadPoolExecutor(
                    min(8, len(self.lexical)), thread_name_prefix="lexical"
                )
            for f in [self._lexical_pool.submit(ix.apply, o) for ix, o in work]:
                f.result()

    def _local_rows(self, ids) -> dict[int, list[int]]:
        """Row numbers of ``ids`` by local shard (ids of other shards are left out)."""
        by_shard: dict[int, list[int]] = {}
        for i, rid in enumerate(ids):
            s = shard_of(rid, self.meta.num_shards)
            if s in self.shards:
                by_shard.setdefault(s, []).append(i)
        return by_shard

    def _apply_upsert(self, ids, vectors, attrs) -> None:
        for s, rows in self._local_rows(ids).items():
            self.shards[s].upsert([ids[i] for i in rows], vectors[rows], [attrs[i] for i in rows])

    def _apply_delete(self, ids) -> int:
        return sum(
            self.shards[s].delete([ids[i] for i in rows])
            for s, rows in self._local_rows(ids).items()
        )

    def _apply_entries(self, entries) -> None:
        """Replay WAL entries (recovery), in order; runs of upserts are applied as one batch."""
        ids, vecs, attrs, payload_ops, text_ops = [], [], [], [], []

        def flush() -> None:
            if ids:
                self._apply_upsert(list(ids), np.stack(vecs), list(attrs))
                ids.clear()
                vecs.clear()
                attrs.clear()

        for e in entries:
            if e.op == OP_UPSERT:
                r = index_pb2.Record.FromString(e.body)
                if shard_of(r.id, self.meta.num_shards) in self.shards:
                    ids.append(r.id)
                    vecs.append(np.frombuffer(r.vector, dtype="<f4").astype(np.float32))
                    attrs.append(attrs_from_pb(r.attributes, "wal"))
                    payload_ops.append(("put", r.id, r.payload))
                    text_ops.append(("put", r.id, r.text))
            elif e.op == OP_DELETE:
                flush()
                rid = e.body.decode()
                self._apply_delete([rid])
                payload_ops.append(("del", rid, b""))
                text_ops.append(("del", rid, ""))
            self.applied_seq = e.seq
        flush()
        self.payloads.apply(payload_ops)
        self._apply_texts(text_ops)

    def _schedule_rebuild(self, shard: Shard) -> None:
        self._background.submit(shard.compact)

    # -- snapshots ----------------------------------------------------------------------------------------
    def snapshot(self) -> int:
        """Write a snapshot of every local shard as of the current seq; returns it."""
        with self._snapshot_lock, self._wal_lock:
            seq = self.applied_seq
            if seq == self.snapshot_seq:
                return seq
            self.wal.rotate()
            self._wal_at_snapshot = self.wal.bytes_written
            copies = {s: _copy_shard(shard) for s, shard in self.shards.items()}
        t0 = time.perf_counter()
        tmp = self.dir / f"snapshot-{seq:020d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for s, copy in copies.items():
            _write_shard(copy, tmp, s)
        fsync_dir(tmp)
        final = self.dir / f"snapshot-{seq:020d}"
        os.replace(tmp, final)
        fsync_dir(self.dir)
        for old in self.dir.glob("snapshot-*"):
            if old != final and not old.name.endswith(".tmp"):
                shutil.rmtree(old, ignore_errors=True)
        self.snapshot_seq = seq
        self.payloads.sync()  # payloads written up to seq are durable before their WAL goes
        self.texts.sync()
        self.wal.drop_through(seq)
        log.info(
            "snapshot written",
            extra={
                "collection": self.meta.name,
                "seq": seq,
                "seconds": round(time.perf_counter() - t0, 3),
            },
        )
        return seq

    # -- reads ----------------------------------------------------------------------------------------------
    def check_queries(self, queries: np.ndarray) -> None:
        if queries.ndim != 2 or queries.shape[1] != self.meta.dim:
            raise InvalidArgument(
                f"queries: shape {list(queries.shape)}, expected [n, {self.meta.dim}]"
            )
        if len(queries) == 0:
            raise InvalidArgument("queries: empty")
        if not np.isfinite(queries).all():
            raise InvalidArgument("queries: contain NaN or Inf")

    def search_shard(self, s: int, queries, k, flt, opts: SearchOptions):
        scores, labels, st = self.shards[s].search(queries, k, flt, opts)
        return scores, [[st.ids[x] for x in row] for row in labels], labels, st

    def search_lexical_shard(self, s: int, texts: list[str], k: int, flt):
        """Per query: the shard's top-k lexical hits ``[(bm25, id, label)]`` passing ``flt``."""
        shard, lexical = self.shards[s], self.lexical[s]
        with shard.lock.read():
            st = shard.state
            n = st.n
            mask = None
            if flt is not None and flt.WhichOneof("expr") is not None:
                mask = st.attr_index.mask(flt, n)
            live, label_of = st.live, st.label_of

        def label(rid: str) -> int | None:
            x = label_of.get(rid)
            ok = x is not None and x < n and live[x] and (mask is None or mask[x])
            return x if ok else None

        return [
            search_filtered(lexical, text, k, label, max(n, 1), mask is not None) for text in texts
        ], st

    def facets_shard(self, s: int, fields: list[str], flt) -> FacetCounts:
        """Value counts of ``fields`` (empty: all) over shard ``s``'s live records ``flt``
        selects."""
        shard = self.shards[s]
        with shard.lock.read():  # postings grow under the write lock
            st = shard.state
            n = st.n
            mask = st.live[:n].copy()
            if flt is not None and flt.WhichOneof("expr") is not None:
                mask &= st.attr_index.mask(flt, n)
            ai = st.attr_index
            names = fields or sorted(ai.fields())
            out = FacetCounts(matched=int(mask.sum()))
            for name in names:
                out.values[name] = ai.value_counts(name, mask)
                stats = ai.number_stats(name, mask)
                if stats is not None:
                    out.numbers[name] = stats
        return out

    def count(self) -> int:
        return sum(s.count() for s in self.shards.values())

    def lexical_count(self) -> int:
        return sum(x.count() for x in self.lexical.values())

    def info(self) -> index_pb2.CollectionInfo:
        return index_pb2.CollectionInfo(
            name=self.meta.name,
            dim=self.meta.dim,
            metric=index_pb2.METRIC_INNER_PRODUCT
            if self.meta.metric == IP
            else index_pb2.METRIC_L2,
            index_spec=self.meta.index_spec,
            num_shards=self.meta.num_shards,
            local_shards=self.meta.local_shards,
            count=self.count(),
            payload_bytes=self.meta.payload_bytes,
            replication_factor=self.meta.replication_factor,
        )

    def get(self, ids: list[str]) -> dict[str, tuple[np.ndarray, dict[str, Value]]]:
        out = {}
        for s, rows in self._local_rows(ids).items():
            out.update(self.shards[s].get([ids[i] for i in rows]))
        return out

    def get_payloads(self, ids: list[str]) -> list[bytes]:
        """Payloads of ``ids`` in order (``b""`` where none); reads the disk store."""
        return self.payloads.get_many(ids)

    async def close(self, snapshot: bool = True) -> None:
        while self._flusher is not None and not self._flusher.done():
            await asyncio.sleep(0.01)
        for shard in self.shards.values():
            await asyncio.to_thread(shard.wait_idle)
        if snapshot and not self.dropped:
            await asyncio.to_thread(self.snapshot)
        if self.wal:
            self.wal.close()
        self.payloads.close()
        self.texts.close()
        if self._lexical_pool is not None:
            self._lexical_pool.shutdown(wait=True)


# -- shard (de)serialisation ----------------------------------------------------------------------------------
@dataclass
class _ShardCopy:
    vectors: np.ndarray
    live: np.ndarray
    ids: list[str]
    attrs: list[dict]
    index: bytes | None


def _copy_shard(shard: Shard, with_index: bool = True) -> _ShardCopy:
    with shard.lock.read():
        st = shard.state
        return _ShardCopy(
            st.vectors[: st.n].copy(),
            st.live[: st.n].copy(),
            list(st.ids),
            list(st.attrs),
            faiss.serialize_index(devices.to_cpu(st.index)).tobytes()
            if st.index is not None and with_index
            else None,
        )


def _write_shard(copy: _ShardCopy, directory: Path, s: int) -> None:
    def write(name: str, fn) -> None:
        with open(directory / name, "wb") as f:
            fn(f)
            f.flush()
            os.fsync(f.fileno())

    write(f"shard-{s}.vectors.npy", lambda f: np.save(f, copy.vectors))
    write(f"shard-{s}.live.npy", lambda f: np.save(f, copy.live))
    records = [{"id": i, "a": a} for i, a in zip(copy.ids, copy.attrs, strict=True)]
    write(f"shard-{s}.records.json", lambda f: f.write(json.dumps(records).encode()))
    if copy.index is not None:
        write(f"shard-{s}.faiss", lambda f: f.write(copy.index))


def _load_shard(shard: Shard, directory: Path, s: int) -> None:
    from index_service.shard import _State

    vectors = np.load(directory / f"shard-{s}.vectors.npy")
    live = np.load(directory / f"shard-{s}.live.npy")
    records = json.loads((directory / f"shard-{s}.records.json").read_text())
    st = _State.empty(shard.dim)
    st.reserve(len(vectors))
    st.vectors[: len(vectors)] = vectors
    st.live[: len(live)] = live
    st.n = len(vectors)
    for label, rec in enumerate(records):
        st.ids.append(rec["id"])
        st.attrs.append(rec["a"])
        st.attr_index.add(label, rec["a"])
        if live[label]:
            st.label_of[rec["id"]] = label
    st.tombstones = int(st.n - live.sum())
    path = directory / f"shard-{s}.faiss"
    if path.exists() and not shard.flat:
        st.index = devices.to_device(faiss.read_index(str(path)), shard.device)
    elif not shard.needs_training:
        st.index = shard.build_index(vectors)
    shard.state = st
