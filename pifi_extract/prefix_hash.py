"""Hash a file's data section while it is being written out of order, and start writing it back early.

Pieces of an artifact arrive in any order from parallel range reads. :class:`PrefixHasher` keeps the
sha256 of the *contiguous written prefix*: a piece that extends the prefix is hashed from memory at once,
and the pieces that had arrived ahead of it are re-read from the page cache and hashed behind it. When the
last byte lands the digest is ready, so no final pass over the file is needed. Each hashed stretch is also
handed to the kernel for writeback (``sync_file_range``, else ``posix_fadvise``), so the closing ``fsync``
finds little left to write.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from bisect import bisect_left, insort

READBACK_PIECE = 1 << 20  # bytes per pread when hashing pieces that arrived early
WRITEBACK_EVERY = 8 << 20  # start writeback once this much more of the prefix is hashed
_SYNC_FILE_RANGE_WRITE = 2


@functools.lru_cache(maxsize=None)
def _sync_file_range():  # type: ignore[no-untyped-def]
    """libc's ``sync_file_range`` (Linux), or None; looked up on first use (ctypes is not needed before)."""
    if not hasattr(os, "posix_fadvise"):  # pragma: no cover - not Linux
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to begin writing ``[offset, offset + length)`` to disk now, without waiting (best effort)."""
    if length <= 0:
        return
    sfr = _sync_file_range()
    if sfr is not None and sfr(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0:
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
        # written but not yet hashed: start -> stop, and the starts sorted (overlaps are found by bisection:
        # thousands of pieces may wait while 8 streams arrive, each lookup stays O(log n))
        self._pending: dict[int, int] = {}
        self._starts: list[int] = []
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
            if begin < self._done or self._overlaps_pending(begin, stop):
                self.broken = True
                return
            if self._busy or begin != self._done:
                self._pending[begin] = stop
                insort(self._starts, begin)
                return
            self._busy = True
        self._sha.update(memoryview(data)[begin - offset : stop - offset])
        self._advance(stop)

    def _overlaps_pending(self, begin: int, stop: int) -> bool:
        """Whether ``[begin, stop)`` meets a queued piece (only the neighbours in start order can)."""
        i = bisect_left(self._starts, begin)
        after = i < len(self._starts) and self._starts[i] < stop
        before = i > 0 and self._pending[self._starts[i - 1]] > begin
        return after or before

    def _advance(self, done: int) -> None:
        """Holding the hashing turn: publish ``done`` and hash queued pieces that now touch the prefix."""
        while True:
            with self._lock:
                self._done = done
                stop = self._pending.pop(done, None)
                if stop is None:
                    flush_from, flush = self._flushed, False
                    if self.writeback and done > flush_from and (done - flush_from >= WRITEBACK_EVERY or done == self.end):
                        self._flushed, flush = done, True
                    self._busy = False
                    break
                del self._starts[bisect_left(self._starts, done)]
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
