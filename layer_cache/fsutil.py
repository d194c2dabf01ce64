"""File-system helpers of the cache: group-friendly modes, atomic small writes, per-key locks, stale temp sweep.

Several users may share one cache folder: every file and folder is created with
the process umask applied to 0o666/0o777 (so ``umask 002`` gives group-writable
files), and locks are ``flock`` locks (``filelock``), which the kernel releases
when their holder dies, even by SIGKILL.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from filelock import FileLock, Timeout

from pifi_extract.writer import TMP_MARKER, check_output_target, storage_error, temp_name_for

from .pifi_files import pid_alive

FICLONE = 0x40049409  # Linux ioctl: share the extents of another file (btrfs, XFS, bcachefs)

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    with _umask_lock:  # pragma: no cover
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def file_mode() -> int:
    return 0o666 & ~current_umask()


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, path) from None
    return path


def check_writable(folder: Path) -> None:
    """Raise :class:`StorageError` unless ``folder`` exists (created if needed) and we can create files in it."""
    ensure_dir(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise storage_error(OSError(errno.EACCES, "not writable"), folder)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a small file through a temp name + rename (readers see the old or the new content)."""
    ensure_dir(path.parent)
    tmp = temp_name_for(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise storage_error(err, path) from None


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None if missing or unreadable (the cache's small files are hints, never trusted blindly)."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


@contextmanager
def key_lock(lock_path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock at ``lock_path``; call ``on_wait`` once if another process holds it."""
    ensure_dir(lock_path.parent)
    lock = FileLock(str(lock_path), mode=file_mode())
    try:
        try:
            lock.acquire(blocking=False)
        except Timeout:
            if on_wait is not None:
                on_wait()
            lock.acquire()
    except OSError as err:
        raise storage_error(err, lock_path.parent) from None
    try:
        yield
    finally:
        lock.release()


def temp_files(folder: Path) -> list[Path]:
    """Hidden temp files (``.<name>.pifi-tmp-<pid>-<rand>``) in ``folder``."""
    try:
        return [p for p in folder.iterdir() if p.name.startswith(".") and TMP_MARKER in p.name]
    except OSError:
        return []


def sweep_temp_files(
    folder: Path, target_name: str | None = None, *, locked: bool = False, min_age_s: float = 3600.0
) -> list[Path]:
    """Remove temp files left by dead writers.

    With ``locked`` (the caller holds the key lock of ``target_name``), every temp file of that
    target is stale, whoever wrote it, on any host. Otherwise only those of dead local pids that
    were not touched for ``min_age_s`` (a writer on another host of a shared folder keeps its file fresh).
    """
    removed = []
    now = time.time()
    for tmp in temp_files(folder):
        base, _, tail = tmp.name[1:].partition(TMP_MARKER)
        if target_name is not None and base != target_name:
            continue
        try:
            pid = int(tail.split("-")[0])
        except ValueError:
            pid = -1
        if not locked:
            try:
                if pid_alive(pid) or now - tmp.stat().st_mtime < min_age_s:
                    continue
            except OSError:
                continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def clone_or_copy(src: Path, dst_fd: int) -> None:
    """Fill ``dst_fd`` with ``src``'s bytes: a reflink where the file system offers one, else an in-kernel copy."""
    import fcntl
    import shutil

    with open(src, "rb") as fin:
        try:
            fcntl.ioctl(dst_fd, FICLONE, fin.fileno())
            return
        except OSError:
            pass
        size, offset = os.fstat(fin.fileno()).st_size, 0
        try:
            while offset < size:
                n = os.copy_file_range(fin.fileno(), dst_fd, size - offset, offset, offset)
                if n == 0:
                    break
                offset += n
            if offset == size:
                return
        except (OSError, AttributeError):
            pass
        os.ftruncate(dst_fd, 0)
        os.lseek(dst_fd, 0, os.SEEK_SET)
        fin.seek(0)
        with open(dst_fd, "wb", closefd=False) as fout:
            shutil.copyfileobj(fin, fout, 8 << 20)


def place_copy(src: Path, dst: Path, protected: Iterable[tuple[str, str | os.PathLike[str]]] = ()) -> Path:
    """Put a copy of ``src`` at ``dst`` (atomic; a reflink where possible): never a link to the cache's inode.

    A ``dst`` that exists and is not a regular file (device, FIFO, socket, folder), or that lies inside a
    ``protected`` place (``(what, path)``: the cache, the source model...), is refused before a byte is written.
    """
    dst = Path(dst)
    check_output_target(dst, protected)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, dst.parent, "the output folder") from None
    try:
        if dst.exists() and os.path.samefile(src, dst):
            return dst
    except OSError:
        pass
    tmp = temp_name_for(dst)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            clone_or_copy(Path(src), fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dst)
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise storage_error(err, dst.parent, "the output folder") from None
    return dst


def make_read_only(path: Path) -> None:
    """Make a cache artifact read-only for everybody (0444), so no writable handle reaches it (best effort)."""
    try:
        os.chmod(path, 0o444)
    except OSError:
        pass
