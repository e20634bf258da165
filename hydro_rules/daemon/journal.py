"""The daemon's local-disk queue of database writes, for while the database is down.

An entry is one JSON line, written and fsync'd before `append` returns, in a
segment file `journal-<first seq>.jsonl` of `directory`. Each entry gets a
`seq` (its place in the order) and a `jid` (a unique id the apply can use to
make a replay idempotent: an entry applied just before a crash, whose
progress mark did not reach the disk, is applied once more after restart).

`replay(apply)` applies the entries in order. Progress is an append-only
`.done` file beside each segment (one jid per applied entry, fsync'd after the
apply succeeded); a segment whose entries are all applied is deleted. An apply
that raises stops the replay: that entry and those after it stay, and the next
replay starts from it. A new Journal on the same directory (after a restart)
sees what is still pending. One journal per directory: a second one (another
daemon given the same `queue_dir`) is refused with `JournalBusy`, since each
would replay, and delete, the other's entries.

Bounded: the journal refuses an entry (`JournalFull`, nothing of it written)
once its files would exceed `max_bytes`, or when the disk is full. The daemon
goes on controlling from memory; what it could not queue is lost, and it says
so (the refusal is raised to it, and counted in `refused`).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: the journal's default size limit: hours of decisions of a large site
MAX_BYTES = 512 * 1024 * 1024
_PREFIX, _SUFFIX, _DONE = "journal-", ".jsonl", ".done"
#: keys the journal adds to an entry
RESERVED = ("seq", "jid")


class JournalFull(OSError):
    """The journal cannot take an entry: its size limit is reached or the disk is full."""


class JournalBusy(RuntimeError):
    """Another journal (another daemon) uses this directory."""


def _write_all(fd: int, data: bytes) -> None:
    """os.write until all of `data` is written (one place to fail, for tests too)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class _Segment:
    path: Path
    first_seq: int
    entries: list = field(default_factory=list)  # parsed entries, in order
    applied: int = 0  # how many of `entries` are applied (the .done file's complete lines)
    sealed: bool = True  # no more appends go to it

    @property
    def done_path(self) -> Path:
        return self.path.with_suffix(_DONE)


class Journal:
    def __init__(self, directory: Path | str, *, max_bytes: int = MAX_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._lock_directory()
        self.max_bytes = max_bytes
        self.refused = 0  # entries refused (limit or disk full)
        self.corrupt = 0  # lines that could not be read back (logged, skipped)
        self._segments: list[_Segment] = []
        self._open: _Segment | None = None  # where appends go; a restart always starts a new one
        self._fd: int | None = None
        self._bytes = 0  # size of the journal's files on disk
        self._next_seq = 1
        self._lock = asyncio.Lock()
        self._load()

    def _lock_directory(self) -> int:
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalBusy(
                f"the journal {self.directory} is in use by another daemon: give each daemon its own queue_dir"
            ) from None
        return fd

    # ---- reading back -------------------------------------------------------------------
    def _load(self) -> None:
        for path in sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")):
            try:
                first = int(path.name[len(_PREFIX) : -len(_SUFFIX)])
            except ValueError:
                continue
            seg = _Segment(path, first)
            seg.entries = self._read(path)
            seg.applied = self._applied(seg)
            self._bytes += path.stat().st_size + (seg.done_path.stat().st_size if seg.done_path.exists() else 0)
            if seg.entries:
                self._next_seq = max(self._next_seq, seg.entries[-1]["seq"] + 1)
            if seg.applied >= len(seg.entries):
                self._remove(seg)
            else:
                self._segments.append(seg)
        self._segments.sort(key=lambda s: s.first_seq)
        for done in self.directory.glob(f"{_PREFIX}*{_DONE}"):  # progress of a segment already gone
            if not done.with_suffix(_SUFFIX).exists():
                done.unlink(missing_ok=True)
        if self.pending():
            log.warning("journal %s: %d entries wait for the database", self.directory, self.pending())

    def _read(self, path: Path) -> list[dict]:
        entries = []
        data = path.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1]:  # a last line without its newline: an append that never returned
            log.warning("journal %s: an incomplete last entry is dropped (a crash while writing it)", path.name)
        for line in lines[:-1]:
            if not line:
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                    raise ValueError("not a journal entry")
            except ValueError as e:
                self.corrupt += 1
                log.error("journal %s: unreadable entry skipped (%s): %.200r", path.name, e, line)
                continue
            entries.append(entry)
        return entries

    @staticmethod
    def _applied(seg: _Segment) -> int:
        """How many entries of the segment are applied: the complete lines of its .done file."""
        try:
            data = seg.done_path.read_bytes()
        except FileNotFoundError:
            return 0
        return data.count(b"\n")

    # ---- writing ------------------------------------------------------------------------
    def append(self, entry: dict) -> None:
        """Write `entry` ({"op": name, ...JSON-able args}) durably; raises JournalFull when it cannot."""
        if any(k in entry for k in RESERVED):
            raise ValueError(f"a journal entry may not carry {', '.join(RESERVED)}: the journal sets them")
        record = {**entry, "seq": self._next_seq, "jid": uuid.uuid4().hex}
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode() + b"\n"
        if self._bytes + len(line) > self.max_bytes:
            self.refused += 1
            raise JournalFull(
                errno.ENOSPC,
                f"journal {self.directory} is full ({self._bytes} of {self.max_bytes} bytes):"
                f" {entry.get('op', 'an entry')} not queued",
            )
        seg = self._open_segment(record["seq"])
        size = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            _write_all(self._fd, line)
            os.fsync(self._fd)
        except OSError as e:
            self.refused += 1
            self._undo(size)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise JournalFull(
                    e.errno, f"disk full under {self.directory}: {entry.get('op', 'an entry')} not queued"
                ) from e
            raise
        seg.entries.append(record)
        self._bytes += len(line)
        self._next_seq += 1

    def _open_segment(self, seq: int) -> _Segment:
        if self._open is not None and self._fd is not None:
            return self._open
        path = self.directory / f"{_PREFIX}{seq:012d}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            _fsync_dir(self.directory)  # the new file's name is durable too
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._open = _Segment(path, seq, sealed=False)
        self._segments.append(self._open)
        return self._open

    def _undo(self, size: int) -> None:
        """After a failed write: cut the partial line off, or leave the segment (a torn tail is skipped on reading)."""
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError:
            self._seal()

    def _seal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        if self._open is not None:
            self._open.sealed = True
            if not self._open.entries:
                self._remove(self._open)
                self._segments.remove(self._open)
        self._open = None

    def pending(self) -> int:
        """Entries not applied yet."""
        return sum(len(s.entries) - s.applied for s in self._segments)

    # ---- replay ---------------------------------------------------------------------------
    async def replay(self, apply: Callable[[dict], Awaitable[None]]) -> int:
        """Apply every pending entry in order; an entry leaves only after `apply` returned.

        Returns how many were applied. An exception from `apply` stops the replay and is
        raised: that entry and the later ones stay for the next replay. Entries appended
        while the replay runs are replayed too.
        """
        applied = 0
        async with self._lock:
            while self._segments:
                if self._open is not None:
                    self._seal()  # later appends go to a new segment; this one can be finished and deleted
                    if not self._segments:
                        break
                seg = self._segments[0]
                while seg.applied < len(seg.entries):
                    entry = seg.entries[seg.applied]
                    await apply(dict(entry))
                    self._mark(seg, entry)
                    applied += 1
                if seg.sealed:
                    self._remove(seg)
                    self._segments.remove(seg)
        return applied

    def _mark(self, seg: _Segment, entry: dict) -> None:
        line = entry["jid"].encode() + b"\n"
        fd = os.open(seg.done_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        seg.applied += 1
        self._bytes += len(line)

    def _remove(self, seg: _Segment) -> None:
        for p in (seg.path, seg.done_path):
            try:
                self._bytes -= p.stat().st_size
                p.unlink()
            except FileNotFoundError:
                pass
        self._bytes = max(self._bytes, 0)

    def close(self) -> None:
        """Close the open segment and let the directory go (to another Journal, after a restart)."""
        self._seal()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None
