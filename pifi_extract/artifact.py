"""The pifi layer artifact: one self-describing ``.safetensors`` file per layer.

Tensors are named relative to the layer (``self_attn.q_proj.weight``, exactly
the decoder layer's ``state_dict()`` keys); the model's final norm sits under
``final_norm.``. ``__metadata__`` holds the format version, the pifi version,
the model's complete ``config.json`` (JSON), the provenance (JSON), the
sha256 of the data section (every byte after the header) and, from format 2 on,
the sha256 of the header itself (:func:`header_sha256`: the canonical tensor
index and every metadata entry but that digest), so renaming a tensor or editing
``pifi.config`` is caught as surely as a flipped data byte. Format 1 artifacts
(no header digest) are still read; only their data is checked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import ArtifactError, SourceNotFoundError
from .safetensors_header import PREFIX_BYTES, SafetensorsHeader, header_length, parse_header

FORMAT_VERSION = 2  # 2: pifi.header_sha256 added (format 1 is still read)
FINAL_NORM_PREFIX = "final_norm."
METADATA_KEYS = {
    "format": "pifi.format",
    "version": "pifi.version",
    "config": "pifi.config",
    "provenance": "pifi.provenance",
    "data_sha256": "pifi.data_sha256",
    "header_sha256": "pifi.header_sha256",
}
# Same length as a real hex digest, so the header can be patched in place once the data is written.
DATA_HASH_PLACEHOLDER = "0" * 64
HEADER_HASH_PLACEHOLDER = "f" * 64
HASH_CHUNK = 1 << 20  # small reads keep hashing out of the peak memory


def artifact_metadata(config: Mapping[str, Any], provenance: Mapping[str, Any], pifi_version: str) -> dict[str, str]:
    """The ``__metadata__`` of a new artifact, its data hash still a placeholder (see the writer)."""
    return {
        METADATA_KEYS["format"]: str(FORMAT_VERSION),
        METADATA_KEYS["version"]: pifi_version,
        METADATA_KEYS["config"]: json.dumps(dict(config), sort_keys=True),
        METADATA_KEYS["provenance"]: json.dumps(dict(provenance), sort_keys=True),
        METADATA_KEYS["data_sha256"]: DATA_HASH_PLACEHOLDER,
        METADATA_KEYS["header_sha256"]: HEADER_HASH_PLACEHOLDER,
    }


def header_sha256(header: SafetensorsHeader) -> str:
    """sha256 of the header's canonical form: every tensor's (dtype, shape, data offsets) by name, and every
    ``__metadata__`` entry except ``pifi.header_sha256`` (the data digest included), as sorted compact JSON."""
    canonical = {
        "tensors": {name: [e.dtype, list(e.shape), e.begin, e.end] for name, e in sorted(header.tensors.items())},
        "metadata": {k: v for k, v in sorted(header.metadata.items()) if k != METADATA_KEYS["header_sha256"]},
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class ArtifactInfo:
    """What an artifact's header says, read without touching its data."""

    path: Path
    format_version: int
    pifi_version: str
    config: dict[str, Any]
    provenance: dict[str, Any]
    data_sha256: str
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (safetensors dtype, shape)
    data_start: int
    size: int
    header_sha256: str | None = None  # recorded and checked (format >= 2); None for format 1

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type"))

    @property
    def layer_index(self) -> int:
        return int(self.provenance["layer_index"])

    @property
    def num_layers(self) -> int:
        return int(self.provenance["num_layers"])

    @property
    def num_parameters(self) -> int:
        """Parameters of the layer itself (the final norm not counted)."""
        return sum(math.prod(shape) for name, (_, shape) in self.tensors.items() if not name.startswith(FINAL_NORM_PREFIX))


def read_artifact(path: str | os.PathLike[str]) -> ArtifactInfo:
    """Parse an artifact's header; raise :class:`ArtifactError` if it is not a pifi artifact."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"artifact {str(path)!r} does not exist", "run `pifi extract` or check the path")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        try:
            n = header_length(fh.read(PREFIX_BYTES), size, str(path))
            header = parse_header(fh.read(n), size, str(path))
        except Exception as err:
            raise ArtifactError(f"{path} is not a pifi artifact ({err})", "extract it again with `pifi extract`") from None
    meta = header.metadata
    if METADATA_KEYS["format"] not in meta:
        raise ArtifactError(
            f"{path} is a safetensors file but not a pifi artifact (no {METADATA_KEYS['format']} metadata)",
            "make one with `pifi extract --llm MODEL --layer -1`",
        )
    try:
        version = int(meta[METADATA_KEYS["format"]])
        config = json.loads(meta[METADATA_KEYS["config"]])
        provenance = json.loads(meta[METADATA_KEYS["provenance"]])
        digest = meta[METADATA_KEYS["data_sha256"]]
    except (KeyError, ValueError) as err:
        raise ArtifactError(f"{path}: damaged pifi metadata ({err})", "extract it again with `pifi extract`") from None
    if not isinstance(config, dict) or not isinstance(provenance, dict) or not isinstance(config.get("model_type"), str):
        raise ArtifactError(f"{path}: damaged pifi metadata (pifi.config / pifi.provenance must be JSON objects, "
                            "with a model_type string)", "extract it again with `pifi extract`")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path} uses artifact format {version}, newer than this pifi understands ({FORMAT_VERSION})",
            "upgrade pifi: pip install -U pifi",
        )
    recorded = meta.get(METADATA_KEYS["header_sha256"])
    if version >= 2 or recorded is not None:
        actual = header_sha256(header)
        if recorded != actual:
            what = "has no header sha256" if recorded is None else (
                f"header sha256 {actual[:12]}… does not match the recorded {str(recorded)[:12]}…")
            raise ArtifactError(
                f"{path} is corrupt: its header (tensor names, shapes, offsets or metadata) was changed after it "
                f"was written ({what})",
                "delete it (`pifi cache rm`) and extract it again",
            )
    _check_layer_fields(path, config, provenance, header)
    return ArtifactInfo(
        path=path,
        format_version=version,
        pifi_version=meta.get(METADATA_KEYS["version"], "?"),
        config=config,
        provenance=provenance,
        data_sha256=digest,
        tensors={name: (e.dtype, e.shape) for name, e in header.tensors.items()},
        data_start=header.data_start,
        size=size,
        header_sha256=recorded,
    )


def _check_layer_fields(path: Path, config: dict[str, Any], provenance: dict[str, Any], header: SafetensorsHeader) -> None:
    """The artifact's config, provenance and tensors must describe a layer that can be built (one line each:
    ``num_hidden_layers: true``, ``num_attention_heads: 3`` against a hidden size of 64, a layer index past
    the layer count, q/k/v shapes the heads do not imply)."""
    from .architectures import ARCHITECTURES
    from .config_check import MAX_LAYERS, check_layer_config, check_layer_shapes, is_int

    where = f"artifact {path}"
    spec = ARCHITECTURES.get(config["model_type"])
    n = check_layer_config(config, num_layers_attr=spec.num_layers_attr if spec else None,
                           norm_eps_attr=spec.norm_eps_attr if spec else None, where=where, error=ArtifactError)
    index, count = provenance.get("layer_index"), provenance.get("num_layers")
    if not (is_int(index) and is_int(count) and 0 <= index < count <= MAX_LAYERS) or (n and count != n):
        raise ArtifactError(f"{where}: its provenance names layer {str(index)[:20]!r} of {str(count)[:20]!r} "
                            f"(the config says {n or 'unknown'} layers)", "extract it again with `pifi extract`")
    shapes = {name: e.shape for name, e in header.tensors.items() if not name.startswith(FINAL_NORM_PREFIX)}
    check_layer_shapes(shapes, config, where=where, error=ArtifactError)


def data_sha256(path: str | os.PathLike[str], data_start: int) -> str:
    """sha256 of every byte after the header."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(data_start)
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_artifact(path_or_info: str | os.PathLike[str] | ArtifactInfo) -> ArtifactInfo:
    """Recompute the data hash (the header's is checked by :func:`read_artifact`); raise :class:`ArtifactError`
    on a mismatch."""
    info = path_or_info if isinstance(path_or_info, ArtifactInfo) else read_artifact(path_or_info)
    actual = data_sha256(info.path, info.data_start)
    if actual != info.data_sha256:
        raise ArtifactError(
            f"{info.path} is corrupt: data sha256 {actual[:12]}… does not match the recorded {info.data_sha256[:12]}…",
            "delete it (`pifi cache rm`) and extract it again",
        )
    return info


def load_artifact_tensors(
    path: str | os.PathLike[str], device: str = "cpu", verify: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(layer state dict, final-norm state dict with the prefix stripped), optionally verified first."""
    from safetensors.torch import load_file

    info = verify_artifact(path) if verify else read_artifact(path)
    tensors = load_file(str(info.path), device=str(device))
    layer = {k: v for k, v in tensors.items() if not k.startswith(FINAL_NORM_PREFIX)}
    norm = {k[len(FINAL_NORM_PREFIX) :]: v for k, v in tensors.items() if k.startswith(FINAL_NORM_PREFIX)}
    return layer, norm
