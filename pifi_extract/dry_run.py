"""``pifi extract --dry-run``: what an extraction would read, from its plan alone (no tensor byte requested).

Resolves the commit and reads config, index and the needed shards' headers (the planning step of
:mod:`pifi_extract.extract`, each header read exactly: its 8-byte length, then the header, never a byte past
it), then reports each layer's tensors, the tensor bytes a real run reads, the shards it touches, the licence,
the licence files the repo carries and whether it is gated (from the same model-info request that resolved
the commit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "NOTICE.txt", "USE_POLICY.md", "USE_POLICY")


@dataclass(frozen=True)
class PlannedLayer:
    layer_index: int
    tensors: list[dict[str, Any]]  # name, dtype, shape, file, bytes
    source_bytes: int  # tensor bytes read from the source
    artifact_bytes: int
    num_parameters: int
    shards: list[str]


@dataclass(frozen=True)
class DryRun:
    source: str
    source_kind: str
    revision: str | None
    commit: str | None
    license: str | None
    gated: str | bool | None  # "auto" / "manual" / False (Hub repos); None when unknown (local files)
    license_files: list[str]
    layers: list[PlannedLayer] = field(default_factory=list)

    @property
    def source_bytes(self) -> int:
        return sum(layer.source_bytes for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "source_bytes": self.source_bytes}


def dry_run(llm: str, layers: Sequence[int], *, revision: str | None = None, dtype: str = "keep",
            token: str | bool | None = None, gguf_file: str | None = None) -> DryRun:
    """Plan the extraction of ``layers`` of ``llm`` and describe it; reads only metadata and headers."""
    from .extract import open_source, plan_layers

    source = open_source(llm, revision, token=token, gguf_file=gguf_file)
    plans = plan_layers(source, layers, dtype=dtype, exact_headers=True)
    hub = getattr(source, "inner", source)  # a GGUF file's host
    gated = getattr(hub, "gated", None)  # known for Hub repos read online; None offline and for local files
    files = source.files()
    licence_files = [f for f in files if f.rsplit("/", 1)[-1] in LICENSE_FILES]
    planned = []
    for plan in plans:
        tensors = [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "file": getattr(t, "file", None),
                    "bytes": t.src_end - t.src_start} for t in plan.tensors]
        planned.append(PlannedLayer(plan.layer_index, tensors, plan.source_bytes, plan.artifact_bytes,
                                    plan.num_parameters, sorted({str(t["file"]) for t in tensors if t["file"]})))
    return DryRun(source.name, source.kind, source.revision, source.commit,
                  getattr(source, "license", None) or _license_of(plans),
                  gated, licence_files, planned)


def _license_of(plans: Sequence[Any]) -> str | None:
    """The licence recorded in the planned artifact's provenance (config.json's, for local folders)."""
    import json

    from .artifact import METADATA_KEYS

    for plan in plans:
        raw = plan.metadata.get(METADATA_KEYS["provenance"]) if isinstance(plan.metadata, dict) else None
        if raw:
            try:
                return json.loads(raw).get("license")
            except (ValueError, AttributeError):
                return None
    return None
