"""GGUF files (llama.cpp) as a layer source: a local file (memory-mapped) or a file in a Hub repo (range reads).

Same three steps as for safetensors, same artifact format; the source carries its format::

    source = open_gguf_source("model.gguf")              # or ("org/repo", gguf_file="x.Q4_K_M.gguf")
    plans = source.plan_layers([-1], dtype="keep")        # header only (what extract.plan_layers calls)
    info = source.write_artifact(plans[0], "layer.safetensors")

Only the header (read in growing chunks: it has no length field, and its size is bounded, see
:mod:`.gguf_header`) and the layer's own tensors are read (see :mod:`.gguf_extract`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .artifact import ArtifactInfo
from .errors import SourceNotFoundError
from .gguf_extract import ProgressCallback, plan_gguf_layers, write_gguf_artifact
from .gguf_header import MAX_HEADER_BYTES, GgufHeader, NeedMoreBytes, parse_gguf_header
from .gguf_plan import GgufLayerPlan
from .hf_cache import cached_file
from .mapped_file import MappedFile
from .sources import Source

FIRST_HEADER_READ = 256 << 10  # bytes; grown until the header parses


class GgufSource:
    """A GGUF file inside a :class:`Source` (a mapped local file or a Hub repo); caches its header.

    ``kind`` is the inner source's ("local" | "hub"): where the bytes come from. The format is
    this object's own :meth:`plan_layers` and :meth:`write_artifact`.
    """

    def __init__(self, inner: Source, file: str) -> None:
        self.inner, self.file = inner, file
        self.kind, self.name = inner.kind, inner.name
        self.revision, self.commit, self.license = inner.revision, inner.commit, inner.license
        self._header: tuple[GgufHeader, bytes] | None = None

    def files(self) -> list[str]:
        return self.inner.files()

    def size(self, path: str) -> int:
        return self.inner.size(path)

    def etag(self, path: str) -> str | None:
        return self.inner.etag(path)

    def read(self, path: str, start: int, end: int, *, progress: Any = None) -> bytes:
        return self.inner.read(path, start, end, progress=progress)

    def read_into(
        self, path: str, start: int, end: int, sink: Callable[[int, bytes], None], *, progress: Any = None
    ) -> None:
        self.inner.read_into(path, start, end, sink, progress=progress)

    def header(self) -> tuple[GgufHeader, bytes]:
        """The parsed header and its raw bytes, read in growing chunks (it has no length field)."""
        if self._header is None:
            size, where = self.size(self.file), f"{self.name}:{self.file}" if self.kind == "hub" else self.name
            buf = self.read(self.file, 0, min(size, FIRST_HEADER_READ))
            while True:
                try:
                    parsed = parse_gguf_header(buf, size, where)
                    break
                except NeedMoreBytes as more:
                    end = min(size, max(more.needed, min(2 * len(buf), MAX_HEADER_BYTES)))
                    buf = b"".join((buf, self.read(self.file, len(buf), end)))  # a new object: views of buf may live on
            self._header = (parsed, buf[: parsed.data_start])
        return self._header

    def config(self) -> dict[str, Any]:
        """The model's config.json as transformers derives it from the header's metadata."""
        from .gguf_config import gguf_config

        header, prefix = self.header()
        return gguf_config(header, prefix, self.size(self.file), self.name)

    def plan_layers(self, layers: Sequence[int], *, dtype: str = "keep") -> list[GgufLayerPlan]:
        """One plan per requested layer; reads only the header."""
        return plan_gguf_layers(self, layers, dtype=dtype)

    def write_artifact(
        self, plan: GgufLayerPlan, path: str | Path, *, progress: ProgressCallback | None = None, workers: int = 8
    ) -> ArtifactInfo:
        """Read, dequantize and convert the plan's tensors into the artifact ``path`` (atomically)."""
        return write_gguf_artifact(self, plan, path, progress=progress, workers=workers)


def open_gguf_source(
    llm: str, gguf_file: str | None = None, revision: str | None = None, *, token: str | bool | None = None
) -> GgufSource:
    """``llm`` a local ``.gguf`` file, a local folder plus ``gguf_file``, or a Hub repo id plus ``gguf_file``."""
    path = Path(llm).expanduser()
    if gguf_file is None:
        return GgufSource(MappedFile(path), path.name)
    if path.is_dir():
        return GgufSource(MappedFile(path / gguf_file), gguf_file)
    from huggingface_hub import constants

    if constants.is_offline_mode():
        found, commit = cached_file(
            llm, gguf_file, revision, hint="unset HF_HUB_OFFLINE to extract it, or pass the local .gguf file to --llm"
        )  # provenance names the repo, as online
        return GgufSource(MappedFile(found, commit=commit, kind="hub", name=llm, revision=revision), gguf_file)
    from .hub_source import HubSource

    hub = HubSource(llm, revision, token=token)
    if gguf_file not in hub.files():
        available = [f for f in hub.files() if f.endswith(".gguf")]
        raise SourceNotFoundError(
            f"{llm} has no file {gguf_file!r}",
            f"GGUF files in the repo: {', '.join(available[:8])}" if available else "the repo has no .gguf files",
        )
    return GgufSource(hub, gguf_file)
