"""``pifi train --config run.yaml|run.json``: every :class:`TrainConfig` option as a file.

The keys are TrainConfig's field names, the ones a run's ``config.json`` records under ``options``;
such a ``config.json`` (or a sweep's ``sweep.json``) is accepted as is, so a finished run re-runs with
``pifi train --config runs/x/config.json --output-dir runs/y``. Options given on the command line win
over the file; unknown keys and values of the wrong type (``overwrite: "false"``, ``lr: "abc"``) are refused
with one line. A recorded run never lends its ``output_dir``, and no file may set ``overwrite``: replacing a
run's files takes ``--overwrite`` on the command line. YAML needs PyYAML (a dependency of transformers); YAML
aliases are refused (no "billion laughs" expansion); JSON always works. Torch-free.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

from pifi_extract.errors import ConfigError

from .config import TrainConfig

RUN_MARKERS = ("pifi_run", "pifi_sweep")  # a run's config.json / a sweep's sweep.json: options under "options"
NOT_FROM_A_RUN = ("output_dir", "overwrite")  # a recorded run's own folder and flag are never reused
COMMAND_LINE_ONLY = ("overwrite",)  # destructive: only when typed
MAX_BYTES = 1024 * 1024


def option_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def _safe_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load`` without aliases: an anchor referenced many times can expand to gigabytes."""
    try:
        import yaml
    except ImportError as err:  # pragma: no cover - transformers depends on PyYAML
        raise ConfigError("--config .yaml needs PyYAML", "pip install pyyaml, or write the file as JSON") from err

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise ConfigError(f"--config {path}: YAML aliases (*name) are not accepted", "write the values out")
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(f"--config {path} is not valid YAML: {' '.join(str(err).split())}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The options of a .json/.yaml/.yml file (a run's config.json: its ``options``), keys and types checked."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config file not found: {path}")
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(f"--config {path} is larger than an options file can be ({path.stat().st_size} bytes)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path} is not UTF-8 text", "re-save it as UTF-8") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = _safe_yaml(text, path)
        elif path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError(f"--config {path} is not valid JSON: {err.msg} (line {err.lineno})") from None
        else:
            raise ConfigError(f"--config {path}: expected a .json, .yaml or .yml file")
    except RecursionError:
        raise ConfigError(f"--config {path} is nested too deeply to be an options file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a mapping of option names to values")
    recorded_run = any(data.get(marker) for marker in RUN_MARKERS) and isinstance(data.get("options"), dict)
    if recorded_run:
        data = {k: v for k, v in data["options"].items() if k not in NOT_FROM_A_RUN}
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    valid = option_names()
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"--config {path}: unknown option(s) {', '.join(unknown)}",
                          f"valid options: {', '.join(valid)}")
    for name in COMMAND_LINE_ONLY:
        if name in data:
            raise ConfigError(f"--config {path} sets {name!r}", f"pass --{name.replace('_', '-')} on the command "
                              "line when you mean it (it replaces a run's files)")
    hints = typing.get_type_hints(TrainConfig)
    for name, value in data.items():
        check_type(name, value, hints[name], f"--config {path}")
    return data


def _accepts(value: Any, kind: Any) -> bool:
    """Whether ``value`` (from JSON/YAML) is a valid ``kind`` (str, int, float, bool, list[str], X | None)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, a) for a in args)
    if kind is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_accepts(v, args[0] if args else Any) for v in value)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    return isinstance(value, kind) if isinstance(kind, type) else True


def _describe(kind: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}
    if typing.get_origin(kind) is list:
        return "a list of strings"
    args = typing.get_args(kind)
    if args:
        return " or ".join(_describe(a) for a in args)
    return names.get(kind, str(kind))


def check_type(name: str, value: Any, kind: Any, where: str) -> None:
    """Refuse ``value`` for option ``name`` unless it has the field's type (bools are not ints here)."""
    if not _accepts(value, kind):
        shown = json.dumps(value)[:60] if not isinstance(value, (dict, list)) else type(value).__name__
        raise ConfigError(f"{where}: {name} must be {_describe(kind)}, got {shown}")


def merge_config(file_options: Mapping[str, Any], given: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from the file's options overridden by the options ``given`` on the command line
    (only those the user passed: defaults must not mask the file)."""
    return TrainConfig(**{**dict(file_options), **dict(given)})


def config_from_file(path: str | Path, given: Mapping[str, Any] | None = None) -> TrainConfig:
    return merge_config(read_config_file(path), given or {})
