"""``pifi train --config run.yaml|run.json``: every :class:`TrainConfig` option as a file.

The keys are TrainConfig's field names, the ones a run's ``config.json`` records under ``options``;
such a ``config.json`` (or a sweep's ``sweep.json``) is accepted as is, so a finished run re-runs with
``pifi train --config runs/x/config.json --output-dir runs/y``. Options given on the command line win
over the file; unknown keys are refused with the list of valid ones. YAML needs PyYAML (a dependency of
transformers); JSON always works. Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

from pifi_extract.errors import ConfigError

from .config import TrainConfig

RUN_MARKERS = ("pifi_run", "pifi_sweep")  # a run's config.json / a sweep's sweep.json: options under "options"


def option_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The options of a .json/.yaml/.yml file (a run's config.json: its ``options``), keys checked."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as err:  # pragma: no cover - transformers depends on PyYAML
            raise ConfigError("--config .yaml needs PyYAML", "pip install pyyaml, or write the file as JSON") from err
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--config {path} is not valid YAML: {err}") from err
    elif path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--config {path} is not valid JSON: {err.msg} (line {err.lineno})") from err
    else:
        raise ConfigError(f"--config {path}: expected a .json, .yaml or .yml file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a mapping of option names to values")
    if any(data.get(marker) for marker in RUN_MARKERS) and isinstance(data.get("options"), dict):
        data = data["options"]
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    valid = option_names()
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"--config {path}: unknown option(s) {', '.join(unknown)}",
                          f"valid options: {', '.join(valid)}")
    return data


def merge_config(file_options: Mapping[str, Any], given: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from the file's options overridden by the options ``given`` on the command line
    (only those the user passed: defaults must not mask the file)."""
    return TrainConfig(**{**dict(file_options), **dict(given)})


def config_from_file(path: str | Path, given: Mapping[str, Any] | None = None) -> TrainConfig:
    return merge_config(read_config_file(path), given or {})
