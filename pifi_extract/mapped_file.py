"""One local file, memory-mapped, as a :class:`~pifi_extract.sources.Source` of that single file."""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any, Callable

from .errors import CorruptFileError, SourceNotFoundError
from .sources import LOCAL_PIECE

try:
    from .sources import etag as file_etag  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - until sources.etag (the one ETag of a local file) lands

    def file_etag(path: Path) -> str:
        st = Path(path).stat()
        return f"{st.st_size}-{st.st_mtime_ns}"


class MappedFile:
    """A file on disk (a ``.gguf``), read through one read-only memory map.

    ``kind``/``name``/``revision`` default to a local file; a file of a Hub snapshot in the local
    Hugging Face cache is opened as ``kind="hub"`` named by its repo, as when it is read online.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        commit: str | None = None,
        kind: str = "local",
        name: str | None = None,
        revision: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise SourceNotFoundError(f"GGUF file {str(self.path)!r} does not exist", "check the path")
        self.kind, self.name, self.revision, self.commit = kind, name or str(self.path), revision, commit
        self.license: str | None = None
        with open(self.path, "rb") as fh:
            self._size = os.fstat(fh.fileno()).st_size
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if self._size else None

    def files(self) -> list[str]:
        return [self.path.name]

    def size(self, path: str) -> int:
        return self._size

    def etag(self, path: str) -> str | None:
        return file_etag(self.path)

    def read(self, path: str, start: int, end: int, *, progress: Any = None) -> bytes:
        data = self._map[start:end] if self._map is not None else b""
        if len(data) != end - start:
            raise CorruptFileError(f"{self.name} is shorter than its header says (truncated file)")
        if progress is not None:
            progress(len(data))
        return data

    def read_into(
        self, path: str, start: int, end: int, sink: Callable[[int, bytes], None], *, progress: Any = None
    ) -> None:
        """Deliver bytes ``[start, end)`` as ``sink(offset - start, piece)``, ``LOCAL_PIECE`` bytes at a time."""
        for begin in range(start, end, LOCAL_PIECE):
            sink(begin - start, self.read(path, begin, min(begin + LOCAL_PIECE, end), progress=progress))
