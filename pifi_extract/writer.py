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
from typing import Iterable

from .artifact import DATA_HASH_PLACEHOLDER, HEADER_HASH_PLACEHOLDER, data_sha256, header_sha256
from .errors import StorageError
from .prefix_hash import PrefixHasher

TMP_MARKER = ".pifi-tmp-"


def temp_name_for(target: Path) -> Path:
    """A hidden, unique temporary name beside ``target`` (pid recorded so stale ones can be swept)."""
    return target.with_name(f".{target.name}{TMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def refuse_inside(target: str | os.PathLike[str], protected: Iterable[tuple[str, str | os.PathLike[str]]]) -> None:
    """Refuse a ``target`` (a file, or a folder files go into) inside, or equal to, a protected place: one of
    ``(what, path)``, e.g. ``("the pifi cache", root)``, ``("the source model", folder)``; links resolved."""
    path = Path(target).absolute()
    where = {Path(os.path.realpath(path)), Path(os.path.realpath(path.parent)) / path.name, path}
    for what, place in protected:
        root = Path(os.path.realpath(place))
        if any(p == root or root in p.parents for p in where):
            raise StorageError(f"refusing to write to {path}: it is inside {what} ({root})",
                               "choose an --output outside it; pifi never writes over its cache or a source's files")


def check_output_target(
    target: str | os.PathLike[str], protected: Iterable[tuple[str, str | os.PathLike[str]]] = ()
) -> None:
    """Refuse a ``target`` that exists and is not a regular file (device, FIFO, socket, folder; or a link to one),
    or that lies inside a ``protected`` place (:func:`refuse_inside`)."""
    path = Path(target)
    refuse_inside(path, protected)
    try:
        st = os.stat(path)  # follows a link: what a write would replace or reach
    except OSError:  # missing (or unreachable: the write itself says why)
        return
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise StorageError(f"refusing to write the artifact over {path}: it is {kind}", "choose a file path for --output")


CACHE_FOLDER = "the pifi cache folder"


def storage_error(err: OSError, where: Path, what: str = CACHE_FOLDER) -> StorageError:
    """One-line error for a failed write of ``where``: into the cache (default) or into ``what`` (e.g.
    "the output folder"); the writer passes ``what=""`` for an artifact whose folder may be either."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = ("free some space, or `pifi cache prune --max-size ...`" if what == CACHE_FOLDER
                else "free some space (or point --output/PIFI_CACHE elsewhere)")
        return StorageError(f"disk full while writing {where}", hint)
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
        if not what:
            return StorageError(f"cannot write to {where.parent}", "choose a writable folder with --output or PIFI_CACHE")
        return StorageError(
            f"{what} {where} is not writable",
            "pass --cache-dir or set PIFI_CACHE to a writable folder (shared caches: see `chmod g+s` in the docs)"
            if what == CACHE_FOLDER
            else "choose a writable --output",
        )
    return StorageError(f"cannot write {where}: {err.strerror or err}")


def _storage_error(err: OSError, where: Path) -> StorageError:
    return storage_error(err, where, "")


def finish_header(header: bytes, data_digest: str) -> bytes:
    """``header`` (8-byte length prefix + JSON) with its data digest and, if it has a slot, its header digest."""
    placeholder = DATA_HASH_PLACEHOLDER.encode()
    if header.count(placeholder) != 1:
        raise RuntimeError("artifact header must hold exactly one data-hash placeholder")
    header = header.replace(placeholder, data_digest.encode())
    slot = HEADER_HASH_PLACEHOLDER.encode()
    if header.count(slot) == 1:
        from .safetensors_header import PREFIX_BYTES, parse_header

        parsed = parse_header(header[PREFIX_BYTES:], None, "new artifact header")
        header = header.replace(slot, header_sha256(parsed).encode())
    return header


class AtomicArtifactWriter:
    """Context manager for one artifact of a known size; call :meth:`commit` to publish it."""

    def __init__(self, target: str | os.PathLike[str], size: int, *, data_start: int | None = None) -> None:
        """``data_start`` (optional): where the data section begins; then it is hashed while it is written
        (:class:`~.prefix_hash.PrefixHasher`) and written back early, and :meth:`commit` needs no final pass."""
        self.target = Path(target)
        self.size = size
        self.tmp = temp_name_for(self.target)
        self._fd: int | None = None
        self._data_start = data_start
        self._hasher: PrefixHasher | None = None

    def __enter__(self) -> "AtomicArtifactWriter":
        check_output_target(self.target)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(self._fd, 0, self.size)  # fail early when the disk is too small
            else:  # pragma: no cover - macOS
                os.ftruncate(self._fd, self.size)
            if self._data_start is not None:
                self._hasher = PrefixHasher(self._fd, self._data_start, self.size)
        except OSError as err:
            self._discard()
            raise _storage_error(err, self.target) from None
        return self

    def pwrite(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` (thread-safe: positional writes)."""
        assert self._fd is not None
        view = start_view = memoryview(data)
        start = offset
        try:
            while view:
                n = os.pwrite(self._fd, view, offset)
                view, offset = view[n:], offset + n
            if self._hasher is not None:
                self._hasher.wrote(start, start_view)
        except OSError as err:
            raise _storage_error(err, self.target) from None

    def commit(self, header: bytes, data_start: int) -> str:
        """Hash the data, patch the hash into ``header`` at offset 0, fsync and rename. Returns the data digest.

        When ``header`` holds the header-digest placeholder too (format 2), the header's own digest
        (:func:`~.artifact.header_sha256`, over the header with the data digest in place) is patched in last.
        """
        assert self._fd is not None
        digest = None
        if self._hasher is not None and self._hasher.start == data_start:
            digest = self._hasher.hexdigest()
        if digest is None:  # no hasher, or it saw gaps or overlaps: one full pass
            digest = data_sha256(self.tmp, data_start)
        self.pwrite(0, finish_header(header, digest))
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
