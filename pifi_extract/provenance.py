"""The provenance every artifact records about where its layer came from (shared by all source formats)."""

from __future__ import annotations

from typing import Any, Iterable

from .sources import Source


def source_provenance(
    source: Source,
    files: Iterable[str],
    *,
    layer_requested: int,
    num_layers: int,
    model_type: str,
    license: str | None,
) -> dict[str, Any]:
    """Source, version, the ETag of each file read, the layer asked for and the model's shape and license."""
    return {
        "source": source.name,
        "source_kind": source.kind,
        "revision": source.revision,
        "commit": source.commit,
        "files": {f: source.etag(f) for f in dict.fromkeys(files)},
        "layer_requested": layer_requested,
        "num_layers": num_layers,
        "model_type": model_type,
        "license": source.license or license,
    }
