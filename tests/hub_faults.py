"""Fault injection for the loopback Hub: bodies cut short or stalled after some bytes, error statuses for matching paths."""

from __future__ import annotations

import threading


class Faults:
    """What the next requests should suffer; the handler asks :meth:`take_drop` / :meth:`take_failure` per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._file_gets = 0
        self._drop_n, self._drop_after, self._drop_left = 0, 0, None
        self._fail_left, self._fail_status, self._fail_match = 0, 500, None
        self.stalling = False  # a due drop stalls instead: the body stops, the connection stays open
        self._skip = 0  # file GETs spared before drops or stalls begin
        self.released = threading.Event()  # ...until this is set (clear(), or the server stops)

    def drop_every(self, n: int, after_bytes: int = 0, *, times: int | None = None) -> None:
        """Every n-th file GET (counted from now) sends `after_bytes` body bytes, then closes; n=0: off."""
        with self._lock:
            self._drop_n, self._drop_after, self._drop_left, self._file_gets = n, after_bytes, times, 0

    def stall_every(self, n: int, after_bytes: int = 0, *, times: int | None = None, skip: int = 0) -> None:
        """Like :meth:`drop_every`, but the body stalls after `after_bytes` (no byte, no close) until released:
        only the client's read timeout ends such a request. The first `skip` file GETs are spared."""
        self.drop_every(n, after_bytes, times=times)
        with self._lock:
            self.stalling, self._skip = n > 0, skip
            self.released.clear()

    def fail_next(self, k: int = 1, status: int = 500, *, path_contains: str | None = None) -> None:
        """Answer the next k requests (whose path contains `path_contains`, if given) with `status`."""
        with self._lock:
            self._fail_left, self._fail_status, self._fail_match = k, status, path_contains

    def clear(self) -> None:
        self.drop_every(0)
        self.fail_next(0)
        self.stalling, self._skip = False, 0
        self.released.set()

    def restart_count(self) -> None:
        with self._lock:
            self._file_gets = 0

    def take_failure(self, path: str) -> int | None:
        """The status to answer this request with, if a failure is due."""
        with self._lock:
            if self._fail_left > 0 and (self._fail_match is None or self._fail_match in path):
                self._fail_left -= 1
                return self._fail_status
        return None

    def take_drop(self) -> int | None:
        """For a file GET: after how many body bytes to cut it, or None."""
        with self._lock:
            self._file_gets += 1
            if self._file_gets <= self._skip or self._drop_n <= 0 or self._file_gets % self._drop_n or self._drop_left == 0:
                return None
            if self._drop_left is not None:
                self._drop_left -= 1
            return self._drop_after
