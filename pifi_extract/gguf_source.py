"""GGUF files (llama.cpp) as a layer source: a local file (memory-mapped) or a file in a Hub repo (range reads).

Same three steps as for safetensors, same artifact format::

    source = open_gguf_source("model.gguf")                      # or ("org/repo", gguf_file="x.Q4_K_M.gguf")
    plans = plan_gguf_layers(source, [-1], dtype="keep")          # header only
    info = write_gguf_artifact(source, plans[0], "layer.safetensors")

Only the header (read in growing chunks: it has no length field) and the layer's own
tensors are read. Each tensor is dequantized with ``gguf.quants.dequantize`` (the
llama.cpp project's reference kernels), passed through transformers' GGUF tensor
processor for the architecture (which undoes llama.cpp's q/k rotary permutation for
Llama-family files, and the like), converted to the output dtype and written at its
offset: memory holds one tensor at a time (a few copies of it in fp32). The model
config is transformers' own reading of the GGUF metadata (``AutoConfig.from_pretrained(...,
gguf_file=...)``), run on a header-only replica so that a Hub file is never downloaded whole.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .architectures import arch_for_config
from .artifact import ArtifactInfo, read_artifact
from .errors import CorruptFileError, OfflineError, SourceNotFoundError, UnsupportedModelError
from .gguf_header import MAX_HEADER_BYTES, GgufHeader, NeedMoreBytes, parse_gguf_header, slim_header
from .gguf_plan import GgufLayerPlan, GgufPlannedTensor, expected_tensors, gguf_names, plan_gguf_layer
from .plan import num_layers_of, resolve_layer_index
from .sources import Source

ProgressCallback = Callable[[int, int], None]
FIRST_HEADER_READ = 256 << 10  # bytes; doubled until the header parses
READ_CHUNK = 8 << 20


class MappedFile:
    """One local file, memory-mapped; the :class:`~pifi_extract.sources.Source` protocol over it."""

    kind = "local"
    revision: str | None = None
    license: str | None = None

    def __init__(self, path: str | os.PathLike[str], commit: str | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise SourceNotFoundError(f"GGUF file {str(self.path)!r} does not exist", "check the path")
        self.name = str(self.path)
        self.commit = commit
        with open(self.path, "rb") as fh:
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if self.size("") else None

    def files(self) -> list[str]:
        return [self.path.name]

    def size(self, path: str) -> int:
        return self.path.stat().st_size

    def etag(self, path: str) -> str | None:
        st = self.path.stat()
        return f"{st.st_size}-{st.st_mtime_ns}"

    def read(self, path: str, start: int, end: int, *, progress: Any = None) -> bytes:
        data = self._map[start:end] if self._map is not None else b""
        if len(data) != end - start:
            raise CorruptFileError(f"{self.name} is shorter than its header says (truncated file)")
        if progress is not None:
            progress(len(data))
        return data


class GgufSource:
    """A GGUF file inside a :class:`Source` (a mapped local file or a Hub repo); caches its header."""

    kind = "gguf"

    def __init__(self, inner: Source, file: str) -> None:
        self.inner, self.file = inner, file
        self.host = inner.kind  # "local" | "hub"
        self.name = inner.name
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

    def header(self) -> tuple[GgufHeader, bytes]:
        """The parsed header and its raw bytes, read in growing chunks (it has no length field)."""
        if self._header is None:
            size, where = self.size(self.file), f"{self.name}:{self.file}" if self.host == "hub" else self.name
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
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(llm, gguf_file, revision=revision)
        if not isinstance(found, str):
            raise OfflineError(
                f"HF_HUB_OFFLINE=1 and {llm}/{gguf_file} is neither in the pifi cache nor in the Hugging Face cache",
                "unset HF_HUB_OFFLINE to extract it, or pass the local .gguf file to --llm",
            )
        snapshot = Path(found).parents[len(Path(gguf_file).parts) - 1]  # .../snapshots/<commit>
        cached = MappedFile(found, commit=snapshot.name)
        cached.kind, cached.name, cached.revision = "hub", llm, revision  # provenance names the repo, as online
        return GgufSource(cached, gguf_file)
    from .hub_source import HubSource

    hub = HubSource(llm, revision, token=token)
    if gguf_file not in hub.files():
        available = [f for f in hub.files() if f.endswith(".gguf")]
        raise SourceNotFoundError(
            f"{llm} has no file {gguf_file!r}",
            f"GGUF files in the repo: {', '.join(available[:8])}" if available else "the repo has no .gguf files",
        )
    return GgufSource(hub, gguf_file)


def gguf_config(source: GgufSource) -> dict[str, Any]:
    """The model's complete config, as transformers reads it from the GGUF metadata.

    transformers needs a file, so it reads a replica: the header without the vocabulary arrays
    (see :func:`slim_header`), followed by a sparse, never-read stand-in for the data section.
    """
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    header, prefix = source.header()
    if header.architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"GGUF architecture {header.architecture!r} cannot be read by transformers' GGUF support",
            "use the model's safetensors repo instead",
        )
    slim = slim_header(prefix, header)
    with tempfile.TemporaryDirectory(prefix="pifi-gguf-") as tmp:
        replica = Path(tmp) / "header-replica.gguf"
        with open(replica, "wb") as fh:
            fh.write(slim)
            fh.truncate(len(slim) + source.size(source.file) - header.data_start)
        try:
            config = AutoConfig.from_pretrained(tmp, gguf_file=replica.name).to_dict()
        except (ValueError, KeyError, NotImplementedError) as err:
            raise UnsupportedModelError(f"transformers cannot build a config from {source.name}: {err}") from None
    config["_name_or_path"] = source.name
    return config


def plan_gguf_layers(source: GgufSource, layers: Sequence[int], *, dtype: str = "keep") -> list[GgufLayerPlan]:
    """One plan per requested layer; reads only the header."""
    from . import __version__

    header, _ = source.header()
    config = gguf_config(source)
    arch = arch_for_config(config)
    num_layers = num_layers_of(config, arch)
    config_object = _config_object(config)
    plans = []
    for requested in layers:
        index = resolve_layer_index(requested, num_layers)
        shapes = expected_tensors(config_object, arch, index)
        provenance = {
            "source": source.name,
            "source_kind": "gguf",
            "gguf_host": source.host,
            "gguf_file": source.file,
            "gguf_architecture": header.architecture,
            "revision": source.revision,
            "commit": source.commit,
            "files": {source.file: source.etag(source.file)},
            "layer_requested": requested,
            "num_layers": num_layers,
            "model_type": arch.model_type,
            "license": source.license or header.metadata.get("general.license"),
        }
        plans.append(
            plan_gguf_layer(
                header,
                gguf_names(header.architecture, num_layers, arch, index, list(shapes)),
                shapes,
                layer_index=index,
                dtype=dtype,
                config=config,
                provenance=provenance,
                pifi_version=__version__,
                where=source.name,
            )
        )
    return plans


def write_gguf_artifact(
    source: GgufSource,
    plan: GgufLayerPlan,
    path: str | Path,
    *,
    progress: ProgressCallback | None = None,
    workers: int = 8,
) -> ArtifactInfo:
    """Read, dequantize and convert the plan's tensors one at a time into ``path`` (atomically)."""
    import json

    import torch

    from .convert import torch_dtype
    from .writer import AtomicArtifactWriter

    total = plan.source_bytes
    tick = (lambda n: progress(n, total)) if progress is not None else None
    config = json.loads(plan.metadata["pifi.config"])
    processor = _tensor_processor(plan.gguf_architecture, config)
    with AtomicArtifactWriter(path, plan.artifact_bytes) as out, ThreadPoolExecutor(max(1, workers)) as pool:
        out.pwrite(0, plan.header)
        for t in plan.tensors:
            raw = _read_range(pool, source, t.src_start, t.src_end, tick)
            values = dequantize_values(raw, t)  # float32, GGUF layout
            result = processor.process(
                weights=values, name=t.gguf_name, tensor_key_mapping={}, parsed_parameters={"tensors": {}}
            )  # transformers' fix-ups: q/k un-permutation (llama), norm offsets (gemma)...
            if result.name is None:
                raise UnsupportedModelError(f"{t.gguf_name}: this GGUF tensor layout (merged experts) is not supported")
            values = np.ascontiguousarray(result.weights, dtype=np.float32)
            tensor = torch.from_numpy(values if values.flags.writeable else values.copy()).reshape(t.shape)
            out.pwrite(t.out_start, tensor.to(torch_dtype(t.dtype)).contiguous().view(torch.uint8).numpy().data)
        out.commit(plan.header, len(plan.header))
    return read_artifact(path)


def _read_range(
    pool: ThreadPoolExecutor, source: GgufSource, start: int, end: int, tick: Callable[[int], None] | None
) -> bytes:
    """Bytes [start, end) of the GGUF file, in parallel pieces of READ_CHUNK."""
    starts = range(start, end, READ_CHUNK)
    pieces = pool.map(lambda s: source.read(source.file, s, min(s + READ_CHUNK, end), progress=tick), starts)
    return b"".join(pieces)


def _config_object(config: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    values = dict(config)
    return AutoConfig.for_model(values.pop("model_type"), **values)


def _tensor_processor(gguf_arch: str, config: dict[str, Any]) -> Any:
    """transformers' GGUF tensor processor for this architecture (q/k un-permutation for llama, ...)."""
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

    return TENSOR_PROCESSORS.get(gguf_arch, TensorProcessor)(config=config)


def dequantize_values(raw: bytes, tensor: GgufPlannedTensor) -> np.ndarray:
    """The tensor's values as float32 in GGUF's shape (torch order), via ``gguf.quants.dequantize``."""
    from gguf import GGMLQuantizationType, dequantize
    from gguf.quants import quant_shape_to_byte_shape

    qtype = GGMLQuantizationType(tensor.ggml_type)
    data = np.frombuffer(raw, dtype=np.uint8)
    if qtype == GGMLQuantizationType.F32:
        data = data.view(np.float32).reshape(tensor.gguf_shape)
    elif qtype == GGMLQuantizationType.F16:
        data = data.view(np.float16).reshape(tensor.gguf_shape)
    else:
        data = data.reshape(quant_shape_to_byte_shape(tensor.gguf_shape, qtype))
    return np.asarray(dequantize(data, qtype), dtype=np.float32)
