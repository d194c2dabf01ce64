"""Local stand-ins for the paper's models and data sets (``--stand-in NAME=PATH``).

``NAME`` is a paper name (``BERT-base``, ``Llama-3.1-8B``, ``SST-2``), its Hub id or pifi task name
(``google-bert/bert-base-uncased``, ``sst2``), or a kind (:data:`pifi_train.paper.names.MODEL_KINDS`,
:data:`~pifi_train.paper.names.TASK_KINDS`) for every name of that kind without a stand-in of its own. A model
stand-in is a model folder (an LLM stand-in may also be another Hub id); a task stand-in is a folder with
``train.*``, ``validation.*`` and ``test.*`` data files. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from pifi_extract.errors import ConfigError, SourceNotFoundError

from .names import MODEL_KINDS, MODELS, TASK_KINDS, TASKS, Model, Task

SPLIT_STEMS = {"train": ("train",), "validation": ("validation", "valid", "dev"), "test": ("test",)}
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")


@dataclass(frozen=True)
class StandIns:
    """Paper name or kind -> local path (or Hub id), as the user gave them."""

    by_name: dict[str, str] = field(default_factory=dict)  # a MODELS / TASKS key
    by_kind: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.by_name or self.by_kind)

    def of_model(self, model: Model) -> str | None:
        return self.by_name.get(model.name) or self.by_kind.get(model.kind)

    def of_task(self, task: Task) -> str | None:
        return self.by_name.get(task.label) or self.by_kind.get(task.kind)

    def describe(self) -> list[str]:
        return [f"{name}={path}" for name, path in (*self.by_name.items(), *self.by_kind.items())]


def _canonical(name: str) -> tuple[str, str] | None:
    """("name", key) or ("kind", kind) for a user's NAME, matched case-insensitively."""
    lowered = name.strip().lower()
    for model in MODELS.values():
        if lowered in (model.name.lower(), model.hub_id.lower()):
            return "name", model.name
    for task in TASKS.values():
        if lowered in (task.label.lower(), task.task):
            return "name", task.label
    if lowered in (*MODEL_KINDS, *TASK_KINDS):
        return "kind", lowered
    return None


def parse_stand_ins(pairs: Iterable[str]) -> StandIns:
    """``NAME=PATH`` strings -> :class:`StandIns`; an unknown name or a missing path is one line."""
    by_name: dict[str, str] = {}
    by_kind: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--stand-in {pair!r} is not NAME=PATH", "e.g. --stand-in bert-base=./tiny-bert")
        found = _canonical(name)
        if found is None:
            raise ConfigError(f"--stand-in: {name!r} is no model, task or kind of the paper's tables",
                              f"use a paper name (BERT-base, Llama-3.1-8B, SST-2...), its Hub id or task name, or a "
                              f"kind: {', '.join((*MODEL_KINDS, *TASK_KINDS))}")
        what, key = found
        path = path.strip()
        is_llm = (what == "kind" and key == "llm") or (what == "name" and key in MODELS and MODELS[key].kind == "llm")
        if not Path(path).exists() and not (is_llm and "/" in path and not path.startswith((".", "/"))):
            raise SourceNotFoundError(f"--stand-in {name}: {path} does not exist",
                                      "pass a model folder, or a folder with train/validation/test files")
        if what == "name" and key in TASKS or what == "kind" and key in TASK_KINDS:
            task_files(path)  # check the folder now, not in the middle of a grid
        (by_name if what == "name" else by_kind)[key] = path
    return StandIns(by_name, by_kind)


def task_files(folder: str) -> dict[str, str]:
    """split -> data file of a task stand-in folder (train and test required; validation optional)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"a task stand-in must be a folder with train/validation/test files, not {folder}")
    found: dict[str, str] = {}
    for split, stems in SPLIT_STEMS.items():
        matches = [root / f"{stem}{suffix}" for stem in stems for suffix in DATA_SUFFIXES
                   if (root / f"{stem}{suffix}").is_file()]
        if matches:
            found[split] = str(matches[0])
    missing = [s for s in ("train", "test") if s not in found]
    if missing:
        raise ConfigError(f"task stand-in {folder} has no {missing[0]} file",
                          f"name it {missing[0]}.jsonl (or .json, .csv, .tsv)")
    return found
