"""A collection's log as replication sees it: epochs, recent entries, reads after a seq.

* **Epochs**: ``[(term, start_seq), ...]`` — the entries from ``start_seq`` on were ordered by the
  primary of ``term`` (a term grows at every change of primary). A follower asks for entries after
  ``(seq, term of seq)``; when the primary's log has another term at that seq (the follower kept
  entries a deposed primary wrote but never got acknowledged) the logs diverged and the follower
  copies a snapshot instead. Kept in ``epochs.json`` beside the WAL, written atomically.
* **Recent entries** stay in memory (up to ``tail_bytes``), so a follower that keeps up is served
  without touching the disk; older ones are read back from the WAL files, without truncating
  anything (the live file may be appended to while it is read). When the WAL no longer reaches
  back (a snapshot deleted it), :meth:`ReplicationLog.read` answers ``None``: snapshot required.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from pathlib import Path

from index_service.wal import WalEntry, fsync_dir, read_entries, wal_files

EPOCHS = "epochs.json"


class Epochs:
    def __init__(self, directory: Path):
        self.path = directory / EPOCHS
        self.items: list[tuple[int, int]] = []
        if self.path.exists():
            self.items = [tuple(x) for x in json.loads(self.path.read_text())]

    def term_at(self, seq: int) -> int:
        """Term of the entry ``seq`` (0 for seq 0, or for entries older than every epoch)."""
        term = 0
        for t, start in self.items:
            if start <= seq:
                term = t
        return term if seq > 0 else 0

    @property
    def last_term(self) -> int:
        return self.items[-1][0] if self.items else 0

    def begin(self, term: int, start_seq: int) -> None:
        """A new primary starts ``term`` at ``start_seq``."""
        if self.items and self.items[-1][0] >= term:
            return
        self.items = [e for e in self.items if e[1] < start_seq] + [(term, start_seq)]
        self._save()

    def adopt(self, epochs: list[tuple[int, int]], through_seq: int) -> None:
        """Take the primary's epochs that cover entries up to ``through_seq``."""
        items = [(t, s) for t, s in epochs if s <= through_seq]
        if items != self.items:
            self.items = items
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(self.items, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)


class ReplicationLog:
    """Durable entries of one collection, readable after any seq (thread-safe)."""

    def __init__(self, directory: Path, durable_seq: int, tail_bytes: int = 64 << 20):
        self.dir = directory
        self.durable_seq = durable_seq
        self.tail_bytes = tail_bytes
        self._tail: deque[WalEntry] = deque()
        self._size = 0
        self._lock = threading.Lock()

    def append(self, entries: list[WalEntry]) -> None:
        """Entries just made durable, in order."""
        if not entries:
            return
        with self._lock:
            for e in entries:
                self._tail.append(e)
                self._size += len(e.body) + 16
            while self._size > self.tail_bytes and len(self._tail) > 1:
                self._size -= len(self._tail.popleft().body) + 16
            self.durable_seq = entries[-1].seq

    def reset(self, durable_seq: int) -> None:
        with self._lock:
            self._tail.clear()
            self._size = 0
            self.durable_seq = durable_seq

    def read(self, after_seq: int, max_bytes: int) -> list[WalEntry] | None:
        """Durable entries after ``after_seq`` (at least one if any, about ``max_bytes``), or
        ``None`` when the log no longer holds ``after_seq + 1``."""
        with self._lock:
            last = self.durable_seq
            if after_seq >= last:
                return []
            if self._tail and self._tail[0].seq <= after_seq + 1:
                out, size = [], 0
                for e in self._tail:
                    if e.seq <= after_seq:
                        continue
                    if out and size + len(e.body) > max_bytes:
                        break
                    out.append(e)
                    size += len(e.body)
                return out
        return self._read_files(after_seq, last, max_bytes)

    def _read_files(self, after_seq: int, last: int, max_bytes: int) -> list[WalEntry] | None:
        files = wal_files(self.dir)
        start = [i for i, (first, _) in enumerate(files) if first <= after_seq + 1]
        if not start:
            return None
        out, size = [], 0
        for _first, path in files[start[-1] :]:
            try:
                entries, _good = read_entries(path)
            except FileNotFoundError:  # deleted by a snapshot meanwhile
                return None
            for e in entries:
                if e.seq <= after_seq or e.seq > last:
                    continue
                if out and size + len(e.body) > max_bytes:
                    return out
                out.append(e)
                size += len(e.body)
        if not out or out[0].seq != after_seq + 1:
            return None
        return out
