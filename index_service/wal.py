"""Write-ahead log with group commit.

File format: a sequence of entries ``[u32 length][u32 crc32][payload]`` (little endian), payload =
``[u64 seq][u8 op][body]``; op 1 = upsert (body: a serialized ``vitrine.v1.Record``), op 2 =
delete (body: the UTF-8 id). A torn or corrupt tail (crash mid-write) fails its length or CRC check;
replay stops there and the file is truncated to the last good entry, so a half-written entry is
never applied.

Group commit: writers hand their entries to :meth:`Wal.commit`; one flusher writes everything
pending and calls ``fsync`` once, then the entries count as durable. While an fsync runs, new
entries queue up and go out together in the next one, so fsync cost is shared by all concurrent
writers and throughput holds.

Files rotate at snapshots: ``wal-<first seq>.log``. After a snapshot at seq S is durable, files
whose entries are all <= S are deleted.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HEADER = struct.Struct("<II")
PREFIX = struct.Struct("<QB")
OP_UPSERT = 1
OP_DELETE = 2


@dataclass
class WalEntry:
    seq: int
    op: int
    body: bytes


def encode(entry: WalEntry) -> bytes:
    payload = PREFIX.pack(entry.seq, entry.op) + entry.body
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_entries(path: Path) -> tuple[list[WalEntry], int]:
    """Entries of one file up to the first torn/corrupt one, and the byte length that is good."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        start, end = pos + HEADER.size, pos + HEADER.size + length
        if length < PREFIX.size or end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        seq, op = PREFIX.unpack_from(payload)
        out.append(WalEntry(seq, op, payload[PREFIX.size :]))
        pos = end
    return out, pos


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def wal_files(directory: Path) -> list[tuple[int, Path]]:
    files = []
    for p in directory.glob("wal-*.log"):
        try:
            files.append((int(p.stem.split("-", 1)[1]), p))
        except ValueError:
            continue
    return sorted(files)


def replay(directory: Path, after_seq: int) -> Iterator[WalEntry]:
    """Entries with seq > ``after_seq`` from every WAL file, truncating a torn tail."""
    for _, path in wal_files(directory):
        entries, good = read_entries(path)
        if good < path.stat().st_size:
            with open(path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        for e in entries:
            if e.seq > after_seq:
                yield e


class Wal:
    """Append-only log of one collection (thread-safe; fsync on every commit)."""

    def __init__(self, directory: Path, next_seq: int, fsync: bool = True):
        self.dir = directory
        self.fsync = fsync
        self.next_seq = next_seq
        self._lock = threading.Lock()
        self._file = None
        self._path: Path | None = None
        self.bytes_written = 0
        self._open(next_seq)

    def _open(self, first_seq: int) -> None:
        self._path = self.dir / f"wal-{first_seq:020d}.log"
        self._file = open(self._path, "ab")  # noqa: SIM115 - kept open for the log's lifetime
        fsync_dir(self.dir)
        self.bytes_written = self._path.stat().st_size

    def assign(self, op: int, bodies: list[bytes]) -> list[WalEntry]:
        """Give entries consecutive sequence numbers (caller holds the collection's write order)."""
        entries = [WalEntry(self.next_seq + i, op, b) for i, b in enumerate(bodies)]
        self.next_seq += len(entries)
        return entries

    def write(self, entries: list[WalEntry]) -> None:
        """Append and make durable (one fsync for the whole group)."""
        data = b"".join(encode(e) for e in entries)
        with self._lock:
            self._file.write(data)
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
            self.bytes_written += len(data)

    def rotate(self) -> None:
        """Start a new file at ``next_seq`` (before a snapshot)."""
        with self._lock:
            self._file.close()
            self._open(self.next_seq)

    def drop_through(self, seq: int) -> None:
        """Delete files whose entries are all <= ``seq`` (covered by a durable snapshot)."""
        files = wal_files(self.dir)
        for i, (_first, path) in enumerate(files):
            nxt = files[i + 1][0] if i + 1 < len(files) else None
            if path != self._path and nxt is not None and nxt - 1 <= seq:
                path.unlink(missing_ok=True)
        fsync_dir(self.dir)

    def close(self) -> None:
        with self._lock:
            if self._file and not self._file.closed:
                self._file.close()
