"""A run's record (``config.json``) and loading a finished run back, local or ``hf://``, in every family.

``config.json`` says which family trained the run; everything that reads a run (predict, report,
sweep, resume, push, trackers) dispatches on that record, never on metric keys or guesses. The
record also holds ``model`` (what the family needs to rebuild its model without the data: labels,
text pairs, source prefix, SQuAD v2...), every option, the artifacts' references and sha256.
"""

from __future__ import annotations

import platform
import typing
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable, Sequence

from pifi_extract.errors import ArtifactError, ConfigError, CorruptFileError, PifiError

from . import run_files
from .config import Precision, TrainConfig
from .options import ModelOptions
from .families import Family, family_of_record
from .families.spec import FamilyRuntime
from .layer_ref import LayerIdentity, artifact_references, describe_artifact, recorded_layers
from .run_share import pull_run

RUN_VERSION = 2  # 1: before families were recorded (family guessed from the task, no "model" block)


def versions() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            return "unknown"

    return {"pifi": version("pifi"), "torch": version("torch"), "transformers": version("transformers"),
            "python": platform.python_version()}


def make_record(config: TrainConfig, family: Family, seed: int, spec: dict[str, Any], data: Any,
                layer: Sequence[LayerIdentity] | None, slm_config: Any, model: Any, device: str, world_size: int,
                precision: Precision, checkpoint_files: Sequence[str]) -> dict[str, Any]:
    """What config.json records for one seed (the one writer of it)."""
    from .layer_ref import layer_record

    count = lambda split: len(split) if split is not None else 0  # noqa: E731
    return {
        run_files.RUN_MARKER: RUN_VERSION, "family": family.name, "seed": seed, "options": config.to_dict(),
        "layer": layer_record(layer) if layer is not None else None,
        "slm": {"name": config.slm, "model_type": slm_config.model_type,
                "hidden_size": getattr(slm_config, "hidden_size", getattr(slm_config, "d_model", None))},
        "model": spec, "data": data.source,
        "num_examples": {"train": count(data.train), "validation": count(data.validation), "test": count(data.test),
                         **{f"extra_test:{name}": len(e) for name, e in (data.extra_tests or {}).items()}},
        # --train-layer: the layer trained, so checkpoint/ holds its tensors (predict does not need the artifact's)
        "checkpoint_holds_layer": config.train_layer, "checkpoint_files": sorted(checkpoint_files),
        "parameters": {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad)},
        "device": device, "world_size": world_size,
        "precision": {**precision.describe(), **({"layer_dtype": "float32"} if config.train_layer else {})},
        "versions": versions(), "created": datetime.now().isoformat(timespec="seconds"),
    }


def options_of(record: dict[str, Any], where: Path | str = "config.json") -> TrainConfig:
    """The run's options, type-checked (an edited config.json is one line, not a traceback)."""
    from .config_file import check_type

    options = record.get("options")
    if not isinstance(options, dict):
        raise CorruptFileError(f"{where} has no options", "is this a pifi run directory?")
    options = dict(options)
    version = record.get(run_files.RUN_MARKER) or record.get("pifi_sweep") or 0
    if not isinstance(version, int) or version < 2:  # version 1 recorded family-dependent values
        family = family_of_record(record).name
        options.pop("select_by", None) if family != "seq2seq" else None
        if family != "classification":
            options.pop("plug", None)
        if family == "qa" and options.get("max_length") == 100 and options.get("protocol", "standard") == "standard":
            options.pop("max_length")  # "not set": 384
    hints = typing.get_type_hints(TrainConfig)
    for name, value in options.items():
        if name in hints:
            try:
                check_type(name, value, hints[name], str(where))
            except ConfigError as err:
                raise CorruptFileError(err.message, "the run's config.json was edited; restore it") from None
    return TrainConfig.from_dict(options)


def spec_of(record: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` block (records before version 2 kept its parts at the top level)."""
    if isinstance(record.get("model"), dict):
        return dict(record["model"])
    return {"labels": list(record.get("labels") or []), "text_pairs": bool(record.get("text_pairs")),
            "pooling": (record.get("slm") or {}).get("pooling"), "v2": bool((record.get("data") or {}).get("v2")),
            "source_prefix": str(record.get("source_prefix", ""))}


def layer_for(recorded: dict[str, Any], override: str | None) -> LayerIdentity:
    """One recorded artifact (or ``override``), refused when its data differs from the one trained with."""
    if override is not None:
        identity = describe_artifact(override)
    else:
        reference = recorded.get("path") or recorded.get("reference")
        if not Path(str(reference)).is_file() and recorded.get("reference"):
            reference = recorded["reference"]
        try:
            identity = describe_artifact(str(reference))
        except PifiError as err:  # moved, deleted or pruned since training
            raise type(err)(f"the layer this run was trained with is gone: {err.message}",
                            f"pass its new place with --layer-artifact PATH_OR_KEY (sha256 "
                            f"{str(recorded.get('sha256'))[:12]}…), or extract it again") from None
    if identity.sha256 != recorded.get("sha256"):
        raise ArtifactError(f"artifact {identity.path} is not the layer this run was trained with "
                            f"(sha256 {identity.sha256[:12]}… vs {str(recorded.get('sha256'))[:12]}…)")
    return identity


def layers_for(record: dict[str, Any], overrides: str | Sequence[str] | None) -> list[LayerIdentity]:
    """The run's artifacts in plugging order (or ``overrides``, one per recorded layer), each hash-checked."""
    recorded = recorded_layers(record) or [{}]
    given = artifact_references(overrides)
    if given and len(given) != len(recorded):
        raise ConfigError(f"this run was trained with {len(recorded)} layer artifact(s); "
                          f"--layer-artifact was given {len(given)} time(s)",
                          "pass one --layer-artifact per layer, in the run's order")
    return [layer_for(entry, given[i] if given else None) for i, entry in enumerate(recorded)]


@dataclass
class OpenedRun:
    """A run directory (downloaded first for ``hf://``) and its record, before any model loads."""

    run_dir: Path
    record: dict[str, Any]
    options: TrainConfig
    family: Family
    spec: dict[str, Any]
    layer_artifact: list[str] | None  # where a pulled run's layers were found


def open_run(run_dir: str | Path, token: str | bool | None = None) -> OpenedRun:
    """Read a finished run's record (one seed; ``hf://ORG/REPO[@REV]``: pulled and cached first)."""
    pulled: list[str] | None = None
    if str(run_dir).startswith("hf://"):
        run_dir, pulled = pull_run(str(run_dir), token=token)
    run_dir = Path(run_dir)
    if (run_dir / run_files.SWEEP).is_file():
        runs = run_files.read_json(run_dir / run_files.SWEEP).get("runs", [])
        raise ConfigError(f"{run_dir} holds several seeds", f"pass one of its run directories: {', '.join(map(str, runs))}")
    record = run_files.read_json(run_dir / run_files.CONFIG)
    if not isinstance(record, dict) or not record.get(run_files.RUN_MARKER):
        raise ConfigError(f"{run_dir} is not a pifi run directory")
    return OpenedRun(run_dir, record, options_of(record, run_dir / run_files.CONFIG), family_of_record(record),
                     spec_of(record), pulled or None)


@dataclass
class LoadedRun:
    """A trained model ready to predict."""

    run_dir: Path
    record: dict[str, Any]
    options: TrainConfig
    family: Family
    spec: dict[str, Any]
    model: Any
    tokenizer: Any
    ctx: Any
    precision: Precision

    @property
    def label_names(self) -> list[str]:
        """A classification run's labels (id i = label_names[i]); [] for other families."""
        return [str(name) for name in self.spec.get("labels", [])]


def load_run(run_dir: str | Path | OpenedRun, device: str = "auto",
             layer_artifact: str | Sequence[str] | None = None, token: str | bool | None = None,
             make_model: Callable[[Any, dict[str, Any], ModelOptions, Any], Any] | None = None) -> LoadedRun:
    """Rebuild the model of a finished run (best epoch's tensors) with its ablations as it trained (a random
    layer from its seed, a trained layer, LoRA adapters); ``layer_artifact``: the run's artifact(s) if they moved
    (one per layer, in order). ``make_model(slm, spec, model_options, layer)`` replaces the family's model."""
    # torch-side modules imported here: open_run and the record helpers stay torch-free (CLI, report)
    from . import checkpoint as ckpt
    from . import distributed as dist
    from .build import build_model
    from .config import resolve_precision
    from .slm import load_tokenizer

    opened = run_dir if isinstance(run_dir, OpenedRun) else open_run(run_dir, token)
    runtime: FamilyRuntime = opened.family.runtime()
    options, record = opened.options, opened.record
    ctx = dist.DistContext(device=dist.resolve_device(device))
    precision = resolve_precision("auto", ctx.device)
    folder = str(opened.run_dir / run_files.CHECKPOINT_DIR)
    slm = runtime.load_slm(folder, runtime.load_slm_config(folder), pretrained=False)
    layers = layers_for(record, layer_artifact or opened.layer_artifact) if options.method == "pifi" else None
    make = make_model or runtime.build_model
    wiring = opened.family.model_options(options)
    try:
        model = build_model(options, slm, layers, ctx.device, precision.layer_dtype, int(record["seed"]),
                            lambda slm, layer: make(slm, opened.spec, wiring, layer))
        ckpt.load_into(model, ckpt.load_tensors(opened.run_dir / run_files.CHECKPOINT_DIR / run_files.WEIGHTS))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        if isinstance(err, PifiError):
            raise
        first = " ".join(str(err).split())[:160]
        raise CorruptFileError(f"{opened.run_dir}: the run's files do not fit together ({first})",
                               "was config.json or checkpoint/ edited? restore the run") from None
    model.to(ctx.device).eval()
    return LoadedRun(opened.run_dir, record, options, opened.family, opened.spec, model, load_tokenizer(folder), ctx,
                     precision)
