"""Finding and reading the runs ``pifi report`` compares, with every damaged file as one line.

:func:`find_run_dirs` walks the given paths for run directories; :func:`load_record` reads one run's
``config.json`` and ``metrics.json`` into a :class:`RunRecord`, checking every value it uses: a file that is empty,
not JSON, not UTF-8, nested absurdly deep, of the wrong shape (a list, missing keys), or holding a metric
that is not a finite number (NaN, a string, a boolean) is refused in one line naming the file and the key.
Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError, CorruptFileError, PifiError, SourceNotFoundError

from . import run_files
from .clean import resolve_cleaning
from .families import Family, family_of_record
from .options import LAYER_METHODS, option_fields, result_options
from .report_compare import LayerInfo
from .run_record import options_of

Key = tuple[tuple[str, Any], ...]
FIX = "restore the run's files, or leave the run out"


@dataclass(frozen=True)
class RunRecord:
    """One finished run as the report sees it."""

    path: Path
    family: str
    key: Key  # every result option (normalised for the run's method) and the layers' sha256
    seed: int
    split: str  # "test", or "validation" when the run has no test split
    metrics: dict[str, float]
    curve: list[float]  # the primary validation metric per epoch
    extra: dict[str, dict[str, float]] = field(default_factory=dict)  # --extra-test name -> metrics
    layers: tuple[LayerInfo, ...] = ()  # the plugged layer(s), in order (none for base and LoRA runs)


def _key(record: dict[str, Any], options: Any, family: Family, layers: Sequence[LayerInfo]) -> Key:
    """The options that change a run's result, normalised: those of another method dropped (a base run's
    --plug means nothing), the family's own values filled in (``--max-length`` unset = the family's, ``--pooling
    auto`` = the pooling it resolved to); the layers by sha256."""
    method = options.method
    resolved = {"plug": family.plug(options), "max_length": family.max_length(options),
                "select_by": family.metrics.selection(options.select_by).key,
                "clean_text": resolve_cleaning(options.clean_text, options.task)}
    pooled = record.get("model", {}).get("pooling") if isinstance(record.get("model"), dict) else None
    if isinstance(pooled, str) and options.pooling == "auto":  # auto resolved for the SLM (first token, last...)
        resolved["pooling"] = pooled
    values = []
    for f in option_fields():
        if f.name not in result_options():
            continue
        methods = f.metadata.get("methods")
        if methods is not None and method not in methods:
            continue
        value = resolved.get(f.name, getattr(options, f.name))
        values.append((f.name, tuple(value) if isinstance(value, list) else value))
    return (*values, ("layer_sha256", tuple(layer.sha256 for layer in layers)))


def _looks_like_run(folder: Path) -> bool:
    """pifi's own run files beside a config.json (then a config.json that is no run record is damaged)."""
    return any((folder / name).exists() for name in (run_files.METRICS, run_files.PREDICTIONS, run_files.STATE_DIR)) \
        or (folder / run_files.CHECKPOINT_DIR / run_files.WEIGHTS).exists()


def _is_run(folder: Path) -> bool:
    """A run directory; a damaged one (its config.json unreadable or not a run record) is one line."""
    if run_files.is_run_dir(folder):
        return True
    config = folder / run_files.CONFIG
    if config.is_file() and _looks_like_run(folder):
        try:
            record = run_files.read_json(config)  # not JSON, not UTF-8, nested too deep: its own line
        except PifiError as err:
            raise CorruptFileError(err.message, FIX) from None
        raise CorruptFileError(f"{config} is not a pifi run record ({_kind(record)} without "
                               f"{run_files.RUN_MARKER!r}), yet the folder holds a run's files", FIX)
    return False


def find_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Every run directory under ``paths`` (each path: a run, a sweep, or a folder holding them)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise SourceNotFoundError(f"no such run directory: {path}")
        if (path / run_files.CONFIG).is_file() and _is_run(path):
            candidates = [path / run_files.CONFIG]
        else:
            candidates = sorted(path.rglob(run_files.CONFIG))
        for config in candidates:
            if config.parent.name == run_files.CHECKPOINT_DIR:
                continue  # the SLM's config.json saved beside the checkpoint
            if _is_run(config.parent) and config.parent not in found:
                found.append(config.parent)
    if not found:
        raise ConfigError(f"no pifi runs under {', '.join(map(str, paths))}")
    return found


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CorruptFileError(f"{where} is {_kind(value)}, not an object", FIX)
    return value


def _number(value: Any, where: str) -> float:
    """A metric: a finite int or float (not a boolean, a string, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CorruptFileError(f"{where} is {_kind(value)} ({str(value)[:20]!r}), not a number", FIX)
    number = float(value)
    if not math.isfinite(number):
        raise CorruptFileError(f"{where} is {value}, not a finite number", FIX)
    return number


def _seed(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CorruptFileError(f"{where} is {_kind(value)} ({str(value)[:20]!r}), not an integer seed", FIX)
    return value


def _metrics(values: Any, keys: Sequence[str], where: str, required: str | None = None) -> dict[str, float]:
    values = _mapping(values, where)
    if required is not None and values.get(required) is None:
        raise CorruptFileError(f"{where} has no {required!r}", FIX)
    return {k: _number(values[k], f"{where}.{k}") for k in keys if values.get(k) is not None}


def _layers(record: dict[str, Any]) -> tuple[LayerInfo, ...]:
    raw = record.get("layer")
    entries = [] if not raw else raw if isinstance(raw, list) else [raw]
    layers = []
    for i, entry in enumerate(entries):
        entry = _mapping(entry, f"config.json layer[{i}]")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not sha:
            raise CorruptFileError(f"config.json layer[{i}] has no sha256", FIX)
        text = lambda k: str(entry[k]) if isinstance(entry.get(k), str) else ""  # noqa: E731
        index = entry.get("layer_index")
        layers.append(LayerInfo(text("source") or text("path") or sha[:12], text("reference"), text("path"), sha,
                                index if isinstance(index, int) and not isinstance(index, bool) else None))
    if not layers:
        raise CorruptFileError("config.json records no layer for a run that plugs one", FIX)
    return tuple(layers)


def load_record(run_dir: Path) -> RunRecord | None:
    """The run's final numbers, or None when it has not finished; a damaged file is one line."""
    try:
        record = _mapping(run_files.read_json(run_dir / run_files.CONFIG), "config.json")
        metrics_path = run_dir / run_files.METRICS
        if not metrics_path.exists():
            return None
        if not metrics_path.is_file():
            raise CorruptFileError(f"{metrics_path} is not a file", FIX)
        metrics = _mapping(run_files.read_json(metrics_path), "metrics.json")
        if metrics.get("final") is None:
            return None  # written after every epoch; "final" once the run is done
        final = _mapping(metrics["final"], "metrics.json final")
        family = family_of_record(record)
        options = options_of(record, run_dir / run_files.CONFIG)
        seed = _seed(record.get("seed"), "config.json seed")
        split = "test" if final.get("test") else "validation"
        primary = family.metrics.primary
        keys = [m.key for m in (*family.metrics.headline, *family.metrics.variants)]
        values = _metrics(final.get(split), keys, f"metrics.json final.{split}", required=primary)
        epochs = metrics.get("epochs") or []
        if not isinstance(epochs, list):
            raise CorruptFileError(f"metrics.json epochs is {_kind(epochs)}, not a list", FIX)
        curve = []
        for i, epoch in enumerate(epochs):
            validation = _mapping(_mapping(epoch, f"metrics.json epochs[{i}]").get("validation"),
                                  f"metrics.json epochs[{i}].validation")
            if validation.get(primary) is not None:
                curve.append(_number(validation[primary], f"metrics.json epochs[{i}].validation.{primary}"))
        extra_tests = _mapping(final.get("extra_tests") or {}, "metrics.json final.extra_tests")
        extra = {name: _metrics(m, keys, f"metrics.json final.extra_tests.{name}") for name, m in extra_tests.items()}
        layers = _layers(record) if options.method in LAYER_METHODS else ()
        return RunRecord(run_dir, family.name, _key(record, options, family, layers), seed, split, values, curve,
                         extra, layers)
    except PifiError as err:
        message = err.message if str(run_dir) in err.message else f"{run_dir}: {err.message}"
        raise CorruptFileError(message, FIX) from None


def per_example_rows(run: RunRecord) -> list[dict[str, Any]]:
    """The run's per-example test rows (predictions.jsonl), for the paired bootstrap."""
    path = run.path / run_files.PREDICTIONS
    try:
        rows = [r for r in run_files.read_jsonl(path) if _mapping(r, str(path)).get("split") == "test"] \
            if path.is_file() else []
    except UnicodeDecodeError:
        raise CorruptFileError(f"{path} is not UTF-8 text", FIX) from None
    except PifiError as err:
        raise CorruptFileError(err.message, FIX) from None
    if not rows:
        raise ConfigError(f"--bootstrap: {run.path} has no per-example test predictions ({run_files.PREDICTIONS})",
                          "it needs runs trained by a pifi version that saves them, with a test split")
    return rows
