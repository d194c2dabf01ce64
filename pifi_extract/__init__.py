"""pifi_extract: read one decoder layer of a Hugging Face LLM (Hub range reads or a local folder) into a
small, self-describing safetensors artifact."""

from __future__ import annotations

from .artifact import ArtifactInfo, load_artifact_tensors, read_artifact, verify_artifact
from .errors import PifiError
from .extract import (
    ExtractResult,
    extract_layer,
    extract_layers,
    open_source,
    plan_layers,
    write_artifact,
    write_artifacts,
)

__all__ = [
    "__version__",
    "ArtifactInfo",
    "ExtractResult",
    "PifiError",
    "extract_layer",
    "extract_layers",
    "load_artifact_tensors",
    "open_source",
    "plan_layers",
    "read_artifact",
    "verify_artifact",
    "write_artifact",
    "write_artifacts",
]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata when first asked (see :mod:`pifi_extract.version`)."""
    if name == "__version__":
        from .version import pifi_version

        return pifi_version()
    raise AttributeError(f"module 'pifi_extract' has no attribute {name!r}")
