"""Hash a file's data section while it is being written out of order, and start writing it back early.

Pieces of an artifact arrive in any order from parallel range reads. :class:`PrefixHasher` keeps the
sha256 of the *contiguous written prefix*: a piece that extends the prefix is hashed from memory at once,
and the pieces that had arrived ahead of it are re-read from the page cache and hashed behind it. When the
last byte lands the digest is ready, so no final pass over the file is needed. Each hashed stretch is also
handed to the kernel for writeback (``sync_file_range``, else ``posix_fadvise``), so the closing ``fsync``
finds little left to write.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import threading
from bisect import insort

READBACK_PIECE = 1 << 20  # bytes per pread when hashing pieces that arrived early
WRITEBACK_EVERY = 8 << 20  # start writeback once this much more of the prefix is hashed
_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range():  # type: ignore[no-untyped-def]
    """libc's ``sync_file_range`` (Linux), or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SFR = _sync_file_range() if hasattr(os, "posix_fadvise") else None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to begin writing ``[offset, offset + length)`` to disk now, without waiting (best effort)."""
    if length <= 0:
        return
    if _SFR is not None and _SFR(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0:
        return
    if hasattr(os, "posix_fadvise"):  # DONTNEED starts writeback of dirty pages too
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:  # pragma: no cover
            pass


class PrefixHasher:
    """sha256 of bytes ``[start, end)`` of ``fd``, fed by :meth:`wrote` as pieces land (thread-safe)."""

    def __init__(self, fd: int, start: int, end: int, *, writeback: bool = True) -> None:
        self.fd, self.start, self.end = fd, start, end
        self.writeback = writeback
        self._sha = hashlib.sha256()
        self._done = start  # bytes [start, _done) are hashed
        self._pending: list[tuple[int, int]] = []  # written but not yet hashed, sorted by offset
        self._lock = threading.Lock()
        self._busy = False  # one thread hashes at a time; the others only queue their pieces
        self._flushed = start
        self.broken = False  # an overlapping write: the digest must come from a full pass

    def wrote(self, offset: int, data: bytes | memoryview) -> None:
        """``data`` was written at ``offset``; hash whatever became contiguous."""
        begin, stop = max(offset, self.start), min(offset + len(data), self.end)
        if begin >= stop:
            return
        with self._lock:
            if begin < self._done or any(b < stop and begin < e for b, e in self._pending):
                self.broken = True
                return
            if self._busy or begin != self._done:
                insort(self._pending, (begin, stop))
                return
            self._busy = True
        self._sha.update(memoryview(data)[begin - offset : stop - offset])
        self._advance(stop)

    def _advance(self, done: int) -> None:
        """Holding the hashing turn: publish ``done`` and hash queued pieces that now touch the prefix."""
        while True:
            with self._lock:
                self._done = done
                if not self._pending or self._pending[0][0] != done:
                    flush_from, flush = self._flushed, False
                    if self.writeback and done > flush_from and (done - flush_from >= WRITEBACK_EVERY or done == self.end):
                        self._flushed, flush = done, True
                    self._busy = False
                    break
                _, stop = self._pending.pop(0)
            for pos in range(done, stop, READBACK_PIECE):
                self._sha.update(os.pread(self.fd, min(READBACK_PIECE, stop - pos), pos))
            done = stop
        if flush:
            start_writeback(self.fd, flush_from, done - flush_from)

    def hexdigest(self) -> str | None:
        """The digest once every byte is hashed, else None (gaps, or an overlapping write)."""
        with self._lock:
            complete = self._done == self.end and not self._pending and not self.broken and not self._busy
        return self._sha.hexdigest() if complete else None
