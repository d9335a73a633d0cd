"""One shard of a collection: vectors, ids, attributes, a faiss index, tombstones, compaction.

Records get sequential internal *labels* (their row in ``vectors``); the faiss index stores the
same labels. An upsert of an existing id tombstones the old label and appends a new one; a delete
tombstones. Tombstones are excluded from results by a faiss ``IDSelectorBitmap`` (so it works for
every index type, including HNSW, which cannot remove). When tombstones pass
``compact_ratio`` of the labels, :meth:`Shard.compact` rebuilds the index from the live records in
the background and swaps it in atomically; writes that arrive during the rebuild are replayed
onto the new state before the swap, and searches keep running on the old state until then.

Indexes that need training (IVF, PQ) are trained once the shard holds ``train_min`` vectors (by
the same background rebuild); until then the shard answers with exact search, so results are
right from the first record.

Filtered search: the filter becomes a label mask (see :mod:`index_service.attributes`). When it
selects at most ``exact_max`` live records the shard searches that subset exactly (faster and
with perfect recall for selective filters); otherwise it searches the index with the mask as a
selector (HNSW's ``efSearch`` is raised in proportion to the filter's selectivity).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import faiss
import numpy as np

from index_service import devices
from index_service.attributes import AttributeIndex, Value, attrs_to_pb
from index_service.rwlock import RWLock
from vitrine.v1 import index_pb2

log = logging.getLogger("vitrine.index.shard")

IP, L2 = "ip", "l2"
TRAIN_SAMPLE = 100_000  # vectors used to train IVF/PQ quantizers


@dataclass
class SearchOptions:
    ef_search: int = 0
    nprobe: int = 0
    exact_max: int = 2_000  # filtered subsets up to this size are searched exactly


@dataclass
class _State:
    dim: int
    vectors: np.ndarray
    n: int = 0
    ids: list[str] = field(default_factory=list)
    attrs: list[dict[str, Value]] = field(default_factory=list)
    live: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    label_of: dict[str, int] = field(default_factory=dict)
    attr_index: AttributeIndex = field(default_factory=AttributeIndex)
    index: faiss.Index | None = None  # None until trained (exact search meanwhile)
    tombstones: int = 0
    # Serialized attribute maps by label, made on a label's first hit: a hit's attributes are
    # then one C-level merge instead of a conversion per value (labels never change content).
    attr_pb: dict[int, bytes] = field(default_factory=dict)

    def attr_bytes(self, label: int) -> bytes:
        """The label's attributes as a serialized ``Hit`` holding only them (field 3)."""
        data = self.attr_pb.get(label)
        if data is None:
            data = index_pb2.Hit(attributes=attrs_to_pb(self.attrs[label])).SerializeToString()
            self.attr_pb[label] = data
        return data

    @classmethod
    def empty(cls, dim: int) -> _State:
        return cls(dim=dim, vectors=np.zeros((0, dim), dtype=np.float32))

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need > len(self.vectors):
            cap = max(need, len(self.vectors) + len(self.vectors) // 4, 1024)  # 1.25x growth
            vec = np.zeros((cap, self.dim), dtype=np.float32)
            vec[: self.n] = self.vectors[: self.n]
            self.vectors = vec
            live = np.zeros(cap, dtype=bool)
            live[: self.n] = self.live[: self.n]
            self.live = live

    @property
    def count(self) -> int:
        return self.n - self.tombstones


def _unwrap(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(index)


def search_params(index: faiss.Index, sel, ef: int, nprobe: int):
    """faiss SearchParameters for the index family (None if nothing to set)."""
    inner = _unwrap(index)
    if devices.is_gpu(index):  # GPU indexes: no selectors (see supports_selector), nprobe only
        if nprobe and hasattr(inner, "nprobe"):
            p = faiss.SearchParametersIVF()
            p.nprobe = nprobe
            return p
        return None
    if isinstance(inner, faiss.IndexHNSW):
        p = faiss.SearchParametersHNSW()
        if ef:
            p.efSearch = ef
    elif isinstance(inner, faiss.IndexIVF):
        p = faiss.SearchParametersIVF()
        if nprobe:
            p.nprobe = nprobe
    else:
        if sel is None:
            return None
        p = faiss.SearchParameters()
    if sel is not None:
        p.sel = sel
    return p


def bitmap_selector(mask: np.ndarray) -> tuple[faiss.IDSelectorBitmap, np.ndarray]:
    """A faiss selector of the labels set in ``mask``, and the packed bitmap it points into
    (keep the bitmap alive for as long as the selector is used)."""
    bitmap = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap)), bitmap


def supports_selector(index: faiss.Index) -> bool:
    inner = _unwrap(index)
    return isinstance(inner, faiss.IndexFlat | faiss.IndexHNSW | faiss.IndexIVF)


class Shard:
    def __init__(
        self,
        dim: int,
        metric: str,
        spec: str,
        *,
        train_min: int | None = None,
        compact_ratio: float = 0.2,
        compact_min: int = 1000,
        on_compact: Callable[[Shard], None] | None = None,
        device: int | None = None,
    ) -> None:
        self.dim = dim
        self.device = device  # GPU number, None = CPU (see index_service.devices)
        self.metric = metric
        self.spec = spec
        self.faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == IP else faiss.METRIC_L2
        self.lock = RWLock()
        self.state = _State.empty(dim)
        probe = self.new_index()
        # A CPU Flat shard has no faiss index: its vectors array *is* the index (scanned by
        # faiss's knn kernels with the same selector support), so vectors are held once.
        self.flat = isinstance(_unwrap(probe), faiss.IndexFlat) and device is None
        # Worth coalescing concurrent queries into one call: a scan (one pass over the vectors
        # serves them all) or a GPU. CPU HNSW/IVF answer each request alone: faiss runs a
        # multi-query HNSW/IVF search with OpenMP threads that compete with the RPC threads,
        # and coalescing them measured slower (docs/benchmarks.md).
        self.batches_well = self.flat or device is not None
        self.needs_training = not probe.is_trained
        self.train_min = train_min or self._default_train_min(probe)
        if not self.needs_training and not self.flat:
            self.state.index = devices.to_device(probe, device)
        self.compact_ratio = compact_ratio
        self.compact_min = compact_min
        self._rebuilding = False
        self._pending: list[tuple[str, object]] = []
        self._on_compact = on_compact
        self.compactions = 0

    # -- index construction ---------------------------------------------------------------------
    def new_index(self) -> faiss.Index:
        return faiss.index_factory(self.dim, self.spec, self.faiss_metric)

    @staticmethod
    def _default_train_min(index: faiss.Index) -> int:
        inner = _unwrap(index)
        nlist = getattr(inner, "nlist", 0)
        return max(1000, 39 * nlist) if nlist else 10_000

    @property
    def trained(self) -> bool:
        return not self.needs_training or self.state.index is not None

    def build_index(self, vectors: np.ndarray) -> faiss.Index | None:
        if self.flat:
            return None
        index = self.new_index()
        if not index.is_trained:
            if len(vectors) < self.train_min:
                return None
            sample = vectors
            if len(vectors) > TRAIN_SAMPLE:  # k-means needs a sample, not everything
                pick = np.random.default_rng(0).choice(len(vectors), TRAIN_SAMPLE, replace=False)
                sample = vectors[np.sort(pick)]
            index.train(sample)
        if len(vectors):
            index.add(vectors)
        return devices.to_device(index, self.device)

    # -- writes (caller: the collection, in WAL order) ------------------------------------------
    def upsert(self, ids: list[str], vectors: np.ndarray, attrs: list[dict[str, Value]]) -> None:
        with self.lock.write():
            self._upsert(self.state, ids, vectors, attrs)
            if self._rebuilding:
                self._pending.append(("upsert", (ids, vectors, attrs)))
        self._maybe_rebuild()

    def delete(self, ids: list[str]) -> int:
        with self.lock.write():
            n = self._delete(self.state, ids)
            if self._rebuilding:
                self._pending.append(("delete", ids))
        self._maybe_rebuild()
        return n

    @staticmethod
    def _upsert(st: _State, ids, vectors, attrs) -> None:
        st.reserve(len(ids))
        start = st.n
        for i, rid in enumerate(ids):
            old = st.label_of.get(rid)
            if old is not None and st.live[old]:
                st.live[old] = False
                st.tombstones += 1
            label = start + i
            st.label_of[rid] = label
            st.ids.append(rid)
            st.attrs.append(attrs[i])
            st.attr_index.add(label, attrs[i])
        st.vectors[start : start + len(ids)] = vectors
        st.live[start : start + len(ids)] = True
        st.n += len(ids)
        # A duplicate id inside one batch: only its last occurrence stays live.
        seen: dict[str, int] = {}
        for i, rid in enumerate(ids):
            if rid in seen:
                st.live[start + seen[rid]] = False
                st.tombstones += 1
            seen[rid] = i
        if st.index is not None:
            st.index.add(vectors)

    @staticmethod
    def _delete(st: _State, ids: list[str]) -> int:
        deleted = 0
        for rid in ids:
            label = st.label_of.pop(rid, None)
            if label is not None and st.live[label]:
                st.live[label] = False
                st.tombstones += 1
                deleted += 1
        return deleted

    # -- compaction / training ---------------------------------------------------------------------
    def _maybe_rebuild(self) -> None:
        st = self.state
        untrained = not self.trained and st.n - st.tombstones >= self.train_min
        dirty = st.tombstones >= max(self.compact_min, self.compact_ratio * st.n)
        if (untrained or dirty) and not self._rebuilding:
            if self._on_compact is not None:
                self._on_compact(self)  # the collection runs it in the background
            else:
                self.compact()

    def compact(self) -> bool:
        """Rebuild from live records (training the index if needed); swap in atomically."""
        with self.lock.write():
            if self._rebuilding:
                return False
            self._rebuilding = True
            self._pending = []
            st = self.state
            labels = np.flatnonzero(st.live[: st.n])
            vectors = st.vectors[labels].copy()
            ids = [st.ids[i] for i in labels]
            attrs = [st.attrs[i] for i in labels]
        try:
            index = self.build_index(vectors)  # the slow part, without the lock
            new = _State.empty(self.dim)
            new.index = None
            self._upsert(new, ids, vectors, attrs)
            new.index = index
            with self.lock.write():
                for op, args in self._pending:
                    if op == "upsert":
                        self._upsert(new, *args)
                    else:
                        self._delete(new, args)
                self.state = new
                self.compactions += 1
            log.info("shard rebuilt", extra={"records": new.count, "trained": self.trained})
            return True
        finally:
            with self.lock.write():
                self._rebuilding = False
                self._pending = []

    # -- reads ----------------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, flt, opts: SearchOptions):
        """Top-k per query: (scores [nq, k'], ids list of lists, labels, state) best first."""
        with self.lock.read():
            st = self.state
            n = st.n
            if st.count == 0:
                return [[] for _ in range(len(queries))], [[] for _ in range(len(queries))], st
            mask = None
            if flt is not None and flt.WhichOneof("expr") is not None:
                mask = st.attr_index.mask(flt, n) & st.live[:n]
            elif st.tombstones:
                mask = st.live[:n].copy()
            if mask is not None:
                selected = int(mask.sum())
                if selected == 0:
                    return [[] for _ in range(len(queries))], [[] for _ in range(len(queries))], st
            small = mask is not None and selected <= opts.exact_max
            no_selector = st.index is not None and not supports_selector(st.index)
            if small or (mask is not None and no_selector):
                scores, found = self._exact(st.vectors, np.flatnonzero(mask), queries, k)
            elif st.index is None:  # Flat on the CPU, or not trained yet: scan the vectors
                scores, found = self._scan(st, queries, k, mask)
            else:
                scores, found = self._index_search(st, queries, k, mask, opts)
        return self._to_hits(st, scores, found)

    def _exact(self, vectors: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int):
        sub = vectors[labels]
        k = min(k, len(labels))
        if self.metric == IP:
            d, i = faiss.knn(queries, sub, k, metric=faiss.METRIC_INNER_PRODUCT)
        else:
            d, i = faiss.knn(queries, sub, k, metric=faiss.METRIC_L2)
        return d, np.where(i >= 0, labels[np.maximum(i, 0)], -1)

    def _scan(self, st: _State, queries: np.ndarray, k: int, mask: np.ndarray | None):
        """Exact top-k over the shard's first ``n`` vectors in place (no copy), ``mask`` applied
        inside the scan: what ``IndexFlat.search`` runs, on the shard's own array."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        n, k = st.n, min(k, st.n)
        dist = np.empty((len(q), k), dtype=np.float32)
        labels = np.empty((len(q), k), dtype=np.int64)
        sel, bitmap = bitmap_selector(mask) if mask is not None else (None, None)
        args = (faiss.swig_ptr(q), faiss.swig_ptr(st.vectors), self.dim, len(q), n, k)
        out = (faiss.swig_ptr(dist), faiss.swig_ptr(labels))
        if self.metric == IP:
            faiss.knn_inner_product(*args, *out, sel)
        else:
            faiss.knn_L2sqr(*args, *out, None, sel)
        del bitmap  # kept alive until here: the selector points into it
        return dist, labels

    def _index_search(self, st: _State, queries, k, mask, opts: SearchOptions):
        sel = bitmap = None
        ef = opts.ef_search
        if mask is not None:
            sel, bitmap = bitmap_selector(mask)
            if isinstance(_unwrap(st.index), faiss.IndexHNSW):
                base = ef or _unwrap(st.index).hnsw.efSearch
                selectivity = max(mask.mean(), 1e-6)
                ef = int(min(4096, max(base, k, base / math.sqrt(selectivity))))
        params = search_params(st.index, sel, ef, opts.nprobe)
        d, i = st.index.search(queries, k, params=params)
        del bitmap  # kept alive until here: the selector points into it
        return d, i

    @staticmethod
    def _to_hits(st: _State, scores, labels):
        out_scores, out_ids = [], []
        for row_s, row_l in zip(scores, labels, strict=True):
            keep = row_l >= 0
            out_scores.append(row_s[keep].tolist())
            out_ids.append([int(x) for x in row_l[keep]])
        return out_scores, out_ids, st

    # -- lookups --------------------------------------------------------------------------------------
    def get(self, ids: list[str]) -> dict[str, tuple[np.ndarray, dict]]:
        with self.lock.read():
            st = self.state
            out = {}
            for rid in ids:
                label = st.label_of.get(rid)
                if label is not None and st.live[label]:
                    out[rid] = (st.vectors[label].copy(), st.attrs[label])
            return out

    def count(self) -> int:
        return self.state.count

    def memory_bytes(self) -> int:
        st = self.state
        total = st.vectors.nbytes + st.live.nbytes
        if st.index is not None:
            total += index_bytes(st.index)
        return total

    def wait_idle(self) -> None:
        """Block until no rebuild is running (tests, shutdown)."""
        while self._rebuilding:
            time.sleep(0.01)


def index_bytes(index: faiss.Index) -> int:
    """Approximate memory of a faiss index (vectors/codes + graph links + id lists)."""
    inner = _unwrap(index)
    n = inner.ntotal
    if devices.is_gpu(index):  # device memory, estimated from the CPU layout
        return n * (getattr(inner, "code_size", 0) or inner.d * 4)
    if isinstance(inner, faiss.IndexFlat):
        return n * inner.code_size
    if isinstance(inner, faiss.IndexHNSW):
        links = inner.hnsw.neighbors.size() * 4 + inner.hnsw.offsets.size() * 8
        return links + index_bytes(inner.storage) + 8 * n
    if isinstance(inner, faiss.IndexIVF):
        return n * (inner.code_size + 8) + inner.nlist * inner.d * 4
    return n * inner.d * 4
