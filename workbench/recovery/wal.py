"""The write-ahead log of a live run: one checksummed, schema-versioned frame per event.

The log is one append-only file, ``wal.log``, in the run's journal directory
(``warehouse/live/<run_id>/``). It starts with an 8-byte header, ``b"WBWAL\\n"`` and the format
version (u16 little-endian), then holds one frame per record, little-endian::

    offset  size  field
    0       4     length    payload length in bytes (u32, at most MAX_PAYLOAD)
    4       4     crc32     zlib.crc32 of bytes 0..3 and 8..end of the frame
    8       2     version   record schema version (u16, SCHEMA_VERSION)
    10      1     kind      index into KINDS (u8)
    11      1     reserved  0
    12      8     seq       sequence number (u64): 1, 2, 3, ... with no gap
    20      n     payload   JSON object, keys sorted (orjson OPT_SORT_KEYS)

Guarantees:

* ``Wal.append(kind, payload)`` returns only after the frame is written and synced to disk
  (``os.fdatasync`` on Linux, ``os.fsync`` elsewhere; see :func:`datasync`), and the directory
  fsync'd when the file was created: a record whose ``append`` returned survives
  kill -9 and power loss as far as the OS and disk honour fsync. Write the order record before
  the order leaves the process.
* ``append(..., sync=False)`` (bars, decisions, anything re-derivable) writes the frame with
  ``os.write`` (no user-space buffer: it survives kill -9 of this process at once) but leaves the
  fsync to the next synced append, :meth:`Wal.sync` or :meth:`Wal.close`; a power loss may lose
  it, and with it every later unsynced record, never an earlier synced one.
* A torn LAST record (a crash mid-write: short header, short payload, or a bad checksum with
  nothing valid after it) is reported (``WalScan.torn``, a warning in the log) and dropped, never
  applied; :meth:`Wal.open` truncates the file to the end of the last good record, so new
  records never follow garbage.
* A bad record with valid records AFTER it (the disk or someone corrupted the middle), a sequence
  gap, an unknown kind or an unknown schema version raise :class:`WalCorruption` naming the file,
  the byte offset and the sequence number of the last good record: the run must stop.
* Payloads hold no secrets: a key that names one (``workbench.secrets.is_secret_key``) or a
  ``SecretStr`` anywhere in a payload is refused (:class:`WalError`) before anything is written,
  and so is anything JSON cannot carry exactly (NaN, infinities, non-string keys).
* One writer per log: ``Wal.open`` takes an exclusive ``flock`` (released by the kernel when the
  process dies, so a crash never leaves a stale lock). Readers take no lock.

See adr/0012-write-ahead-log-format.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import math
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import orjson
from pydantic import SecretStr

from workbench.errors import WorkbenchError, signals_deferred
from workbench.secrets import is_secret_key

log = logging.getLogger(__name__)

WAL_FILE = "wal.log"
SCHEMA_VERSION = 1
KINDS: tuple[str, ...] = (
    "bar", "decision", "order", "order_event", "fill", "risk_event", "control", "snapshot_ref",
    "gap", "alert", "venue_fill", "reconciliation", "order_failures",
)
"""Record kinds; a kind's code on disk is its index here (append new kinds at the end)."""
CRITICAL_KINDS = frozenset({"order", "order_event", "fill", "risk_event", "control",
                            "snapshot_ref"})
"""Kinds that must be synced: ``Wal.append`` refuses ``sync=False`` for them."""
_KIND_CODE = {kind: code for code, kind in enumerate(KINDS)}

MAGIC = b"WBWAL\n"
FILE_HEADER = MAGIC + struct.pack("<H", SCHEMA_VERSION)
FILE_HEADER_SIZE = len(FILE_HEADER)  # 8
_HEADER = struct.Struct("<IIHBBQ")  # length, crc, version, kind, reserved, seq
HEADER_SIZE = _HEADER.size  # 20
MAX_PAYLOAD = 16 * 1024 * 1024
_DUMP_OPTIONS = orjson.OPT_SORT_KEYS
_NO_PAYLOADS = 2**64  # a start_seq past every record: scan without decoding payloads


class WalError(WorkbenchError):
    """The write-ahead log refused a record or cannot be opened (a second writer, a bad
    payload)."""


class WalCorruption(WalError):
    """The write-ahead log is damaged in a way that is not a torn last write: stop the run."""

    def __init__(self, what: str, *, path: Path, offset: int, last_good_seq: int,
                 fix: str | None = None) -> None:
        self.path = path
        self.offset = offset
        self.last_good_seq = last_good_seq
        super().__init__(
            f"{what}; the last good record is seq {last_good_seq}",
            where=f"{path}, byte offset {offset}",
            fix=fix or (
                "the run must stop: nothing after the last good record can be trusted. Keep the "
                "file for inspection; restore the journal directory from a copy, or move "
                "wal.log aside and rebuild from the venue and the last snapshot by hand"))


class Record(NamedTuple):
    """One record as read back. ``payload`` is decoded afresh on every read (mutating it changes
    nothing on disk); ``offset`` is where its frame starts in the file."""

    seq: int
    kind: str
    payload: dict[str, Any]
    version: int
    offset: int


class TornTail(NamedTuple):
    """A partial or unreadable last frame that was dropped (never applied)."""

    path: Path
    offset: int
    dropped_bytes: int
    reason: str
    last_good_seq: int

    def __str__(self) -> str:
        return (f"{self.path}: dropped a torn last record at byte offset {self.offset} "
                f"({self.dropped_bytes} bytes, {self.reason}); the last good record is seq "
                f"{self.last_good_seq}")


class WalScan(NamedTuple):
    """What a full read of the log found: the last good seq, where good data ends, a torn tail."""

    last_seq: int
    end: int
    torn: TornTail | None


# --- encoding ------------------------------------------------------------------------------------
_secret_key = functools.lru_cache(maxsize=10_000)(is_secret_key)
"""``is_secret_key``, remembered per key (records repeat the same few keys)."""


def check_payload(payload: object, path: str = "payload") -> None:
    """Refuse what must not (or cannot exactly) go into a record: secret-named keys,
    ``SecretStr`` values, non-string keys, NaN and infinities. Raises WalError."""
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            if not isinstance(key, str):
                raise WalError(f"{path} has a non-string key {key!r}",
                               fix="use string keys in journal payloads")
            if _secret_key(key):
                raise WalError(
                    f"{path} has the key {key!r}, which names a secret (value not shown)",
                    fix="journal records never hold credentials: leave the key out, or rename "
                        "it if it is not a secret (see workbench/secrets.py for the rule)")
            check_payload(value, f"{path}.{key}")
    elif isinstance(payload, list | tuple):
        for i, value in enumerate(payload):
            check_payload(value, f"{path}[{i}]")
    elif isinstance(payload, SecretStr):
        raise WalError(f"{path} is a secret (value not shown)",
                       fix="journal records never hold credentials")
    elif isinstance(payload, float) and not math.isfinite(payload):
        raise WalError(f"{path} is {payload!r}, which JSON cannot carry",
                       fix="journal finite numbers only (or None)")


def encode(seq: int, kind: str, payload: Mapping[str, Any]) -> bytes:
    """One frame (see the module docstring). Raises WalError for a bad kind or payload."""
    code = _KIND_CODE.get(kind)
    if code is None:
        raise WalError(f"unknown record kind {kind!r}", fix=f"use one of {', '.join(KINDS)}")
    if not isinstance(payload, Mapping):
        raise WalError(f"a {kind} payload must be a JSON object (a dict), got "
                       f"{type(payload).__name__}")
    check_payload(payload)
    try:
        body = orjson.dumps(payload, option=_DUMP_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise WalError(f"a {kind} payload cannot be journaled as JSON: {exc}") from None
    if len(body) > MAX_PAYLOAD:
        raise WalError(f"a {kind} payload is {len(body)} bytes, above {MAX_PAYLOAD}")
    rest = struct.pack("<HBBQ", SCHEMA_VERSION, code, 0, seq) + body
    length = struct.pack("<I", len(body))
    crc = zlib.crc32(rest, zlib.crc32(length))
    return length + struct.pack("<I", crc) + rest


class _Bad(NamedTuple):
    reason: str


def _decode_at(data: bytes | memoryview, off: int) -> tuple[int, int, int, int, int] | _Bad:
    """(version, kind code, seq, payload start, frame end) of the frame at ``off``, or why not."""
    size = len(data)
    if size - off < HEADER_SIZE:
        return _Bad(f"a short header ({size - off} of {HEADER_SIZE} bytes)")
    length, crc, version, code, _reserved, seq = _HEADER.unpack_from(data, off)
    if length > MAX_PAYLOAD:
        return _Bad(f"a length field of {length} bytes, above the maximum")
    end = off + HEADER_SIZE + length
    if end > size:
        return _Bad(f"a short payload ({size - off - HEADER_SIZE} of {length} bytes)")
    if zlib.crc32(data[off + 8:end], zlib.crc32(data[off:off + 4])) != crc:
        return _Bad("a checksum mismatch")
    return version, code, seq, off + HEADER_SIZE, end


_VERSION_BYTES = struct.pack("<H", SCHEMA_VERSION)


def _valid_frame_after(data: bytes, start: int, last_seq: int) -> int | None:
    """Offset of a checksum-valid frame with a later seq somewhere after ``start``, if any:
    what tells a corrupt middle from a torn tail. Candidates are found by their version bytes
    (JSON text never holds those bytes raw), so a long torn payload is passed over quickly."""
    size = len(data)
    found = data.find(_VERSION_BYTES, start + 8)
    while found != -1:
        off = found - 8
        if off + HEADER_SIZE > size:
            return None
        length, _crc, _version, code, reserved, seq = _HEADER.unpack_from(data, off)
        if (code < len(KINDS) and not reserved and seq > last_seq
                and off + HEADER_SIZE + length <= size
                and not isinstance(_decode_at(data, off), _Bad)):
            return off
        found = data.find(_VERSION_BYTES, found + 1)
    return None


def _read_from(path: Path, offset: int) -> bytes | None:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return None


def scan(path: Path, start_seq: int = 1, *, after: WalScan | None = None,
         ) -> Iterator[Record | WalScan]:
    """Read ``path`` frame by frame: yield each good Record with ``seq >= start_seq``, then one
    WalScan at the end. ``after`` (the WalScan of an earlier read of the same log) resumes
    where that read ended instead of reading from the start: how a follower (the warehouse
    flusher) reads only what is new. Raises WalCorruption as the module docstring says."""
    base = after.end if after is not None and after.end else 0
    last_seq = after.last_seq if after is not None and after.end else 0
    data = _read_from(path, base)
    if data is None:
        if base:
            raise WalCorruption("the log is gone", path=path, offset=base,
                                last_good_seq=last_seq)
        yield WalScan(0, 0, None)
        return
    if not base:
        if len(data) < FILE_HEADER_SIZE and FILE_HEADER.startswith(data):
            torn = TornTail(path, 0, len(data), "a short file header", 0) if data else None
            yield WalScan(0, 0, torn)  # a crash while the file was being created
            return
        if data[:len(MAGIC)] != MAGIC:
            raise WalCorruption("not a workbench write-ahead log (no WBWAL header)", path=path,
                                offset=0, last_good_seq=0,
                                fix=f"a journal directory's {WAL_FILE} is written by workbench "
                                    "only; move the file aside")
        (version,) = struct.unpack_from("<H", data, len(MAGIC))
        if version != SCHEMA_VERSION:
            raise WalCorruption(
                f"a log of format version {version}; this workbench reads version "
                f"{SCHEMA_VERSION} only", path=path, offset=len(MAGIC), last_good_seq=0,
                fix="read this journal with the workbench version that wrote it")
        rel = FILE_HEADER_SIZE
    else:
        rel = 0
    size = len(data)
    while rel < size:
        off = base + rel
        got = _decode_at(data, rel)
        if isinstance(got, _Bad):
            later = _valid_frame_after(data, rel + 1, last_seq)
            if later is not None:
                raise WalCorruption(
                    f"a damaged record ({got.reason}) with a valid record after it at byte "
                    f"offset {base + later}: the middle of the log is corrupt, not a torn last "
                    "write", path=path, offset=off, last_good_seq=last_seq)
            torn = TornTail(path, off, size - rel, got.reason, last_seq)
            yield WalScan(last_seq, off, torn)
            return
        version, code, seq, start, end = got
        if version != SCHEMA_VERSION:
            raise WalCorruption(
                f"a record of schema version {version}; this workbench reads version "
                f"{SCHEMA_VERSION} only", path=path, offset=off, last_good_seq=last_seq,
                fix="read this journal with the workbench version that wrote it")
        if code >= len(KINDS):
            raise WalCorruption(f"a record of unknown kind code {code}", path=path, offset=off,
                                last_good_seq=last_seq,
                                fix="read this journal with the workbench version that wrote it")
        if seq != last_seq + 1:
            raise WalCorruption(f"sequence number {seq} where {last_seq + 1} was due",
                                path=path, offset=off, last_good_seq=last_seq)
        if seq >= start_seq:
            try:
                payload = orjson.loads(data[start:end])
            except orjson.JSONDecodeError as exc:
                raise WalCorruption(f"a record whose checksum holds but whose payload is not "
                                    f"JSON ({exc})", path=path, offset=off,
                                    last_good_seq=last_seq) from None
            yield Record(seq, KINDS[code], payload, version, off)
        last_seq = seq
        rel = end
    yield WalScan(last_seq, base + rel, None)


class WalReader:
    """Iterate the records of a journal directory's log from ``start_seq`` (read-only, no lock).

    After iteration, ``result`` holds the WalScan (last good seq, where good data ends, a
    dropped torn tail or None); pass it as ``after`` to a new reader to read only what was
    appended since. A torn tail is never yielded; it is logged as a warning when ``warn`` (a
    follower reading a log that is being written sees the record being appended as torn, and
    reads it next time).
    """

    def __init__(self, journal_dir: str | Path, start_seq: int = 1, *,
                 after: WalScan | None = None, warn: bool = True) -> None:
        self.path = Path(journal_dir) / WAL_FILE
        self.start_seq = start_seq
        self.after = after
        self.warn = warn
        self.result: WalScan | None = None

    def __iter__(self) -> Iterator[Record]:
        for item in scan(self.path, self.start_seq, after=self.after):
            if isinstance(item, WalScan):
                self.result = item
                if item.torn is not None and self.warn:
                    log.warning("%s", item.torn)
            else:
                yield item


def read(journal_dir: str | Path, start_seq: int = 1) -> list[Record]:
    """Every good record with ``seq >= start_seq`` (a torn tail is dropped and logged)."""
    return list(WalReader(journal_dir, start_seq))


def _make_dirs(directory: Path) -> None:
    """mkdir -p, fsync'ing the parent of each directory made so that it survives a crash."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
        fsync_dir(made.parent)


def datasync(fd: int) -> None:
    """Make a file's written data durable: ``os.fdatasync`` where the OS has it (Linux; it
    flushes the data and the size an append changed, not the mtime), else ``os.fsync``."""
    sync = getattr(os, "fdatasync", None) or os.fsync
    sync(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- writing -------------------------------------------------------------------------------------
def _locked(path: Path) -> WalError:
    return WalError("another process is writing this journal", where=str(path),
                    fix="a run has one live process: stop the other one (or wait for it to "
                        "exit) before resuming this run")


class Wal:
    """The appending side. ``Wal.open(journal_dir)`` creates or reopens the log (dropping a torn
    tail), then ``append`` records; ``close`` syncs and releases the lock. Thread-safe."""

    def __init__(self, path: Path, fd: int, last_seq: int, end: int,
                 torn: TornTail | None) -> None:
        self.path = path
        self._fd: int | None = fd
        self._last_seq = last_seq
        self._end = end
        self._unsynced = False
        self._batching = 0
        self._lock = threading.Lock()  # appends and the bookkeeping
        self._sync_lock = threading.Lock()  # one fdatasync at a time; close waits for it
        self._syncer: threading.Thread | None = None
        self._sync_wanted = threading.Event()
        self._stopping = False
        self._failed: WalError | None = None  # a background sync's failure, raised on use
        self.torn = torn
        """The torn tail dropped when this log was opened, or None."""

    @classmethod
    def open(cls, journal_dir: str | Path, *, wait_s: float = 0.0) -> Wal:
        """``wait_s``: how long to wait for another holder of the lock to let go (an operator
        command that looks whether the run is running holds it for a moment)."""
        directory = Path(journal_dir)
        _make_dirs(directory)
        path = directory / WAL_FILE
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _locked(path) from None
                    time.sleep(0.01)
            result = WalScan(0, 0, None)
            for item in scan(path, start_seq=_NO_PAYLOADS):
                assert isinstance(item, WalScan)
                result = item
            if result.torn is not None:
                log.warning("%s", result.torn)
            end = result.end
            if end == 0:  # a new file, or one whose header a crash cut short
                os.ftruncate(fd, 0)
                os.write(fd, FILE_HEADER)
                os.fsync(fd)
                end = FILE_HEADER_SIZE
            elif result.torn is not None:
                os.ftruncate(fd, end)
                os.fsync(fd)
            if created:
                fsync_dir(directory)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, result.last_seq, end, result.torn)

    @property
    def last_seq(self) -> int:
        """The sequence number of the last record appended (0 for an empty log)."""
        return self._last_seq

    def append(self, kind: str, payload: Mapping[str, Any], *, sync: bool = True) -> int:
        """Write one record and return its sequence number; with ``sync`` (the default, required
        for CRITICAL_KINDS) it is fsync'd, with every earlier record, before this returns."""
        if not sync and kind in CRITICAL_KINDS:
            raise WalError(f"a {kind} record must be synced", fix="append it with sync=True")
        if self._batching:
            sync = False  # group commit: synced when the batch ends (see ``batch``)
        # a stop signal's exception must not land between the write and the bookkeeping (the
        # next record would reuse the seq, or follow a half-written frame): it waits
        with signals_deferred(), self._lock:
            fd = self._fd
            if fd is None:
                raise self._failed or WalError("the journal is closed", where=str(self.path))
            seq = self._last_seq + 1
            frame = encode(seq, kind, payload)
            view = memoryview(frame)
            try:
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if sync:
                    datasync(fd)
            except OSError as exc:
                self._fail(fd, exc)
            self._end += len(frame)
            self._last_seq = seq
            self._unsynced = not sync
            return seq

    def _fail(self, fd: int, exc: OSError) -> NoReturn:
        """A write or fsync failed (disk full, I/O error): cut a partial frame off and close.
        After a failed fsync the kernel may have dropped the dirty pages, so nothing written
        since the last good fsync is trusted: the log closes and the run must restart (the
        reopen scans the file and drops a torn tail)."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, self._end)
        os.close(fd)
        self._fd = None
        raise WalError(f"writing the journal failed: {exc}", where=str(self.path),
                       fix="free disk space or fix the disk, then restart the run with the "
                           "same run id (it resumes from the journal)") from exc

    @contextlib.contextmanager
    def batch(self, *, background: bool = False) -> Iterator[None]:
        """Group commit: records appended inside the block, critical ones included, are
        written at once (a kill -9 loses none of them) and synced together, once, when the block
        ends (also when it raises). Only for a run whose orders never leave the process (paper
        and shadow: a power loss inside the block loses at most that block's records, which a
        restart re-derives); a broker that sends orders must see its order record synced first,
        so live trading never batches. adr/0012.

        ``background``: the sync is handed to a syncer thread instead of waiting for it (the
        disk's slowest fdatasyncs stay off the decision path); records of blocks that end while
        one sync runs are synced together by the next. A failed background sync closes the log
        and is raised by the next ``append``, ``sync`` or ``close``."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching:
                if background:
                    self._sync_later()
                else:
                    self.sync()

    def _sync_later(self) -> None:
        if self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_loop, name="wal-sync",
                                            daemon=True)
            self._syncer.start()
        self._sync_wanted.set()

    def _sync_loop(self) -> None:
        while True:
            self._sync_wanted.wait()
            self._sync_wanted.clear()
            if self._stopping:
                return  # close() syncs what is left
            try:
                self.sync()
            except WalError as exc:
                self._failed = exc
                return

    def sync(self) -> None:
        """fsync records appended with ``sync=False`` (a no-op when there are none): when it
        returns, every record appended before the call is durable. Appends go on meanwhile
        (the fdatasync runs outside the append lock)."""
        with self._sync_lock:
            with self._lock:
                if self._failed is not None:
                    raise self._failed
                fd = self._fd
                if fd is None or not self._unsynced:
                    return
                self._unsynced = False
            try:
                datasync(fd)
            except OSError as exc:
                with self._lock:
                    if self._fd == fd:  # not closed meanwhile by a failed append
                        self._fail(fd, exc)
                raise WalError(f"syncing the journal failed: {exc}", where=str(self.path)
                               ) from exc

    def close(self) -> None:
        syncer = self._syncer
        if syncer is not None:
            self._stopping = True
            self._sync_wanted.set()
            syncer.join()
            self._syncer = None
        try:
            self.sync()
        finally:
            with self._sync_lock, self._lock:
                if self._fd is not None:
                    os.close(self._fd)  # releases the flock
                    self._fd = None

    def __enter__(self) -> Wal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
