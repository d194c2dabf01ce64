"""Write an artifact atomically: a temporary name in the target folder, bytes at their offsets, fsync, rename.

A crash, Ctrl-C or full disk never leaves a file under the final name: readers
see either nothing or a complete, hashed artifact. The data hash is patched
into the header in place once every byte is written (the placeholder has the
digest's length, so no offset moves).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType

from .artifact import DATA_HASH_PLACEHOLDER, data_sha256
from .errors import StorageError

TMP_MARKER = ".pifi-tmp-"


def temp_name_for(target: Path) -> Path:
    """A hidden, unique temporary name beside ``target`` (pid recorded so stale ones can be swept)."""
    return target.with_name(f".{target.name}{TMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def check_output_target(target: str | os.PathLike[str]) -> None:
    """Refuse a ``target`` that exists and is not a regular file (device, FIFO, socket, folder; or a link to one)."""
    path = Path(target)
    try:
        st = os.stat(path)  # follows a link: what a write would replace or reach
    except OSError:  # missing (or unreachable: the write itself says why)
        return
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise StorageError(f"refusing to write the artifact over {path}: it is {kind}", "choose a file path for --output")


def _storage_error(err: OSError, where: Path) -> StorageError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"disk full while writing {where}", "free some space (or point --output/PIFI_CACHE elsewhere)")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"cannot write to {where.parent}", "choose a writable folder with --output or PIFI_CACHE")
    return StorageError(f"cannot write {where}: {err.strerror or err}")


class AtomicArtifactWriter:
    """Context manager for one artifact of a known size; call :meth:`commit` to publish it."""

    def __init__(self, target: str | os.PathLike[str], size: int) -> None:
        self.target = Path(target)
        self.size = size
        self.tmp = temp_name_for(self.target)
        self._fd: int | None = None

    def __enter__(self) -> "AtomicArtifactWriter":
        check_output_target(self.target)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(self._fd, 0, self.size)  # fail early when the disk is too small
            else:  # pragma: no cover - macOS
                os.ftruncate(self._fd, self.size)
        except OSError as err:
            self._discard()
            raise _storage_error(err, self.target) from None
        return self

    def pwrite(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` (thread-safe: positional writes)."""
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                n = os.pwrite(self._fd, view, offset)
                view, offset = view[n:], offset + n
        except OSError as err:
            raise _storage_error(err, self.target) from None

    def commit(self, header: bytes, data_start: int) -> str:
        """Hash the data, patch the hash into ``header`` at offset 0, fsync and rename. Returns the digest."""
        assert self._fd is not None
        digest = data_sha256(self.tmp, data_start)
        placeholder = DATA_HASH_PLACEHOLDER.encode()
        if header.count(placeholder) != 1:
            raise RuntimeError("artifact header must hold exactly one data-hash placeholder")
        self.pwrite(0, header.replace(placeholder, digest.encode()))
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.replace(self.tmp, self.target)
            _fsync_dir(self.target.parent)
        except OSError as err:
            raise _storage_error(err, self.target) from None
        return digest

    def _discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            self.tmp.unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None or exc_type is not None:
            self._discard()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
