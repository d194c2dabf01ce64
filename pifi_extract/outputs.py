"""Files a user names on the command line (``predict -o``, ``select -o``, ``--plot``): checked first, written atomically.

:func:`check_output_file` runs before any work: a target that exists and is not a regular file (a
FIFO would block the writer forever, a device or socket would swallow the bytes, a folder cannot be
replaced) or whose folder does not exist is refused in one line. :func:`write_output` then writes a
hidden temporary file beside the target and renames it over the target: a full disk, an interrupt
or an error leaves the previous file (or nothing), never half a file, and says so in one line.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import StorageError

_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket",
          stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}


def check_output_file(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """Refuse ``path`` (given with ``option``) unless it is a regular file or absent in an existing folder."""
    target = Path(path)
    try:
        mode = os.stat(target).st_mode  # follows a link: what the write would reach
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise StorageError(f"cannot write {option} {target}: {err.strerror or err}") from None
    if mode is not None and not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS.items() if test(mode)), "not a regular file")
        raise StorageError(f"refusing to write {option} {target}: it is {kind}", f"pass a file name to {option}")
    if not target.parent.is_dir():
        raise StorageError(f"{option} {target}: the folder {target.parent} does not exist",
                           f"create it first, or choose another {option}")
    return target


def _error(err: OSError, target: Path) -> StorageError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"disk full while writing {target}; nothing was written there",
                            "free some space, or write elsewhere")
    return StorageError(f"cannot write {target}: {err.strerror or err}", "choose a writable place")


def write_output(path: str | os.PathLike[str], write: Callable[[BinaryIO], None], option: str = "-o") -> Path:
    """Write ``path`` atomically through ``write(file)``: a temporary name beside it, fsync, rename."""
    target = check_output_file(path, option)  # again: the target may have changed since the early check
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".pifi-tmp")
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would have created it (mkstemp makes 0600)
        os.replace(tmp, target)
        tmp = None
    except OSError as err:
        if isinstance(err, StorageError):
            raise
        raise _error(err, target) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return target


def write_output_text(path: str | os.PathLike[str], text: str, option: str = "-o") -> Path:
    """:func:`write_output` of UTF-8 text."""
    return write_output(path, lambda fh: fh.write(text.encode("utf-8")), option)
