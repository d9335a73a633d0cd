"""Per-record payloads (the reranker's per-product vector), kept on disk beside a collection.

A payload is opaque bytes stored with a record (``Record.payload``) and returned with its hits
when a search asks for them. Payloads are read only for the few hits a search returns, so they
must not sit in the RAM that vector search uses: they live in an LMDB database (a memory-mapped
B+tree; the page cache holds what is hot and the kernel evicts the rest) under
``<collection>/payloads/``, keyed by record id.

Durability comes from the collection's own write-ahead log, like everything else: a payload is in
the WAL (inside the serialized record) before the write is acknowledged, and it is put into LMDB
after the WAL fsync, in WAL order. LMDB runs with ``metasync=False``: each commit flushes its data
pages but not the meta page, so a power loss may undo the last LMDB transactions without ever
corrupting the database. Recovery replays the WAL after the snapshot on top of whatever LMDB kept
(puts and deletes by id are idempotent, so replaying writes LMDB already has is harmless), and a
snapshot forces LMDB's meta page to disk before the WAL it covers is deleted.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import lmdb

DIRNAME = "payloads"
MAP_SIZE = 1 << 40  # address space reserved for the memory map (the file grows as needed)


class PayloadStore:
    """Payload bytes by record id; thread-safe (LMDB: one writer, concurrent readers).

    The same store keeps the records' lexical texts, in their own directory (``texts/``).
    """

    def __init__(self, collection_dir: Path, dirname: str = DIRNAME):
        self.path = Path(collection_dir) / dirname
        self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(
            str(self.path),
            map_size=MAP_SIZE,
            subdir=True,
            metasync=False,  # data pages are flushed per commit; the meta page at snapshots
            readahead=False,  # random reads of a few hits: do not pull neighbouring pages in
            max_readers=512,
            lock=True,
        )

    def apply(self, ops: Sequence[tuple[str, str, bytes]]) -> None:
        """Apply ``("put", id, bytes)`` / ``("del", id, b"")`` in order, in one transaction.

        An empty payload deletes the id's payload (a record upserted without one has none).
        """
        if not ops:
            return
        with self.env.begin(write=True) as txn:
            for op, rid, data in ops:
                key = rid.encode("utf-8")
                if op == "put" and data:
                    txn.put(key, data)
                else:
                    txn.delete(key)

    def get_many(self, ids: Sequence[str]) -> list[bytes]:
        """Payloads of ``ids`` in order (``b""`` for ids without one)."""
        with self.env.begin(buffers=False) as txn:
            return [txn.get(rid.encode("utf-8")) or b"" for rid in ids]

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every (id, bytes) stored, in key order."""
        with self.env.begin(buffers=False) as txn:
            for key, value in txn.cursor():
                yield key.decode("utf-8"), value

    def sync(self) -> None:
        """Force everything committed so far (meta page included) to disk."""
        self.env.sync(True)

    def stats(self) -> dict[str, int]:
        info, st = self.env.info(), self.env.stat()
        return {
            "entries": st["entries"],
            "disk_bytes": (info["last_pgno"] + 1) * st["psize"],
        }

    def close(self) -> None:
        self.env.close()

    def destroy(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
