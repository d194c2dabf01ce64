"""From ``--layer-artifact`` to a checked artifact: the one place a layer reference becomes a file.

:func:`describe_artifact` turns what the user typed into an artifact's identity (path, sha256, layer):
an existing file as is, anything else through the layer cache's resolver (cache keys such as
``meta-llama/Llama-3.1-8B:-1``, paths inside the cache, ``hf://`` files). Training reads the
LLM only through this artifact, never the full model (:func:`pifi_train.build.load_frozen_layers`). Torch-free.

``--layer-artifact`` may be repeated: several artifacts are plugged in the given order (a
:class:`~pifi_train.frozen_stack.FrozenStack`). One artifact is recorded in config.json as one
``layer`` dict, several as a list of them (:func:`layer_record` / :func:`recorded_layers`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError, SourceNotFoundError


@dataclass(frozen=True)
class LayerIdentity:
    """What config.json records about the layer a run used."""

    reference: str
    path: str
    sha256: str
    model_type: str
    layer_index: int
    num_layers: int
    source: str | None
    hidden_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _missing_file(reference: str) -> bool:
    path = Path(reference).expanduser()
    return not path.is_file() and path.suffix == ".safetensors" and not reference.startswith("hf://")


def describe_artifact(reference: str, verify: bool = True) -> LayerIdentity:
    """Resolve and check an artifact (header, and data hash when ``verify``) without loading it.

    One resolution (:func:`layer_cache.resolve_reference`) parses the header once; a cache entry
    comes back checked by its integrity memo, so only a file outside the cache is hashed here.
    """
    from layer_cache import resolve_reference
    from pifi_extract.artifact import verify_artifact

    if _missing_file(reference):
        raise SourceNotFoundError(f"layer artifact {reference!r} does not exist",
                                  "pass the .safetensors file written by `pifi extract`, or a cache key")
    resolved = resolve_reference(reference)
    info = resolved.info
    assert info is not None
    if verify and not resolved.verified:
        info = verify_artifact(info)
    path = resolved.path if resolved.cached is not None else resolved.path.resolve()
    return LayerIdentity(
        reference=reference,
        path=str(path),
        sha256=info.data_sha256,
        model_type=info.model_type,
        layer_index=info.layer_index,
        num_layers=info.num_layers,
        source=info.provenance.get("source"),
        hidden_size=int(info.config.get("hidden_size", 0)),
    )


def artifact_references(value: str | Sequence[str] | None) -> list[str]:
    """``TrainConfig.layer_artifact`` as a list: one string is one layer, a list is several in order."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def describe_artifacts(value: str | Sequence[str]) -> list[LayerIdentity]:
    """Describe every artifact (in order); refuse layers of different hidden sizes."""
    identities = [describe_artifact(reference) for reference in artifact_references(value)]
    check_hidden_sizes(identities)
    return identities


def check_hidden_sizes(identities: Sequence[LayerIdentity]) -> None:
    sizes = {identity.hidden_size for identity in identities}
    if len(sizes) > 1:
        named = ", ".join(f"{identity.reference}: {identity.hidden_size}" for identity in identities)
        raise ConfigError(f"the layer artifacts have different hidden sizes ({named})",
                          "layers plugged in sequence must share one hidden size")


def layer_record(identities: Sequence[LayerIdentity]) -> dict[str, Any] | list[dict[str, Any]]:
    """What config.json's ``layer`` holds: one dict for one layer (as always), a list for several."""
    records = [identity.to_dict() for identity in identities]
    return records[0] if len(records) == 1 else records


def recorded_layers(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The layer dicts of a run's config.json, whichever form it holds (dict, list or none)."""
    layer = record.get("layer")
    if not layer:
        return []
    return [layer] if isinstance(layer, dict) else list(layer)
