"""Where model files come from: a local folder or a Hub repo at a pinned commit.

A :class:`Source` answers four questions — which files exist, how big a file is,
its ETag, and the bytes of a range — so the planner and writer never care
whether bytes come from disk or over HTTP. Hub I/O lives in :mod:`.hub_source`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Protocol

from .errors import CorruptFileError, SourceNotFoundError

LOCAL_PIECE = 1 << 20  # bytes per read when streaming from disk


class Source(Protocol):
    """Read-only access to the files of one model at one fixed version."""

    kind: str  # "local" | "hub"
    name: str  # repo id or absolute folder path, as recorded in provenance
    revision: str | None  # as requested
    commit: str | None  # resolved commit sha (hub), None for local folders
    license: str | None

    def files(self) -> list[str]: ...

    def size(self, path: str) -> int: ...

    def etag(self, path: str) -> str | None: ...

    def read(self, path: str, start: int, end: int, *, progress: Any = None) -> bytes: ...

    def read_into(
        self, path: str, start: int, end: int, sink: Callable[[int, bytes], None], *, progress: Any = None
    ) -> None:
        """Deliver bytes ``[start, end)`` as ``sink(offset - start, piece)``, piece by piece."""
        ...


class PieceReader:
    """Mixin: ``read_into`` from ``read``, one ``piece``-sized range at a time, for sources whose reads are cheap
    (a file, a memory map); ``MappedFile``/``GgufSource`` can inherit it to meet the :class:`Source` protocol."""

    piece: int = LOCAL_PIECE

    def read(self, path: str, start: int, end: int, *, progress: Any = None) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def read_into(
        self, path: str, start: int, end: int, sink: Callable[[int, bytes], None], *, progress: Any = None
    ) -> None:
        """Deliver bytes ``[start, end)`` as ``sink(offset - start, piece)``, piece by piece (memory: one piece)."""
        for begin in range(start, end, self.piece):
            sink(begin - start, self.read(path, begin, min(begin + self.piece, end), progress=progress))


def read_json(source: Source, path: str) -> dict[str, Any]:
    """A small JSON file of the source, parsed; a clear error when it is not JSON."""
    raw = source.read(path, 0, source.size(path))
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFileError(f"{source.name}: {path} is not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{source.name}: {path} is not a JSON object")
    return obj


@dataclass
class LocalSource(PieceReader):
    """A folder on disk with ``config.json`` and ``*.safetensors`` (a checkpoint or a Hub snapshot)."""

    root: Path
    revision: str | None = None
    commit: str | None = None
    license: str | None = None
    kind: str = "local"
    _sizes: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()
        if not self.root.is_dir():
            raise SourceNotFoundError(
                f"local model folder {str(self.root)!r} does not exist",
                "pass a Hub repo id (org/name) or a folder with config.json and *.safetensors",
            )
        self.name = str(self.root)

    def files(self) -> list[str]:
        out = []
        for dirpath, _, names in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            out.extend(str(rel / n) if str(rel) != "." else n for n in names)
        return sorted(out)

    def _path(self, path: str) -> Path:
        # checked by name, not by resolving links: a Hugging Face cache snapshot is a folder of symlinks into
        # ../../blobs/, while a name from an index (untrusted) must not climb out with '..' or be absolute
        rel = PurePosixPath(path.replace("\\", "/"))
        if not rel.parts or rel.is_absolute() or ".." in rel.parts or ":" in rel.parts[0]:
            raise CorruptFileError(f"{self.name}: refusing path {path!r} outside the model folder")
        return self.root / rel

    def size(self, path: str) -> int:
        if path not in self._sizes:
            try:
                self._sizes[path] = self._path(path).stat().st_size
            except FileNotFoundError:
                raise SourceNotFoundError(f"{self.name}: file {path!r} not found") from None
        return self._sizes[path]

    def etag(self, path: str) -> str | None:
        st = self._path(path).stat()
        return f"{st.st_size}-{st.st_mtime_ns}"

    def read(self, path: str, start: int, end: int, *, progress: Any = None) -> bytes:
        with open(self._path(path), "rb") as fh:
            data = os.pread(fh.fileno(), end - start, start)
        if len(data) != end - start:
            raise CorruptFileError(f"{self.name}: {path} is shorter than its header says (truncated file)")
        if progress is not None:
            progress(len(data))
        return data


def is_gguf(source: object) -> bool:
    """Whether ``source`` is a GGUF file: a format object carrying ``header()`` and ``config()`` (duck-typed,
    so asking needs no gguf package)."""
    return callable(getattr(source, "header", None)) and callable(getattr(source, "config", None))
