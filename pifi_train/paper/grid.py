"""A paper table as data: arms × tasks × SLMs × LLM layers × seeds, expanded into runs (one TrainConfig each).

A :class:`Table` names its SLMs, tasks and arms in the paper's terms; :func:`plan` expands it, at a
:class:`Scale` and with the user's stand-ins, into :class:`Run` objects: the run's ``TrainConfig`` (``seeds``
of them, its folder) and the LLM layers it needs. A run's folder depends only on what it is (SLM, task, arm
in the paper's terms), so tables that share a run (BERT-base on SST-2 is in twelve of them) share its folder:
``OUTPUT/<slm>/<task>/<arm>/seed-<s>/``. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from pifi_extract.errors import ConfigError

from ..config import TrainConfig
from ..options import default_of, option_fields
from .names import FAMILY_OF_KIND, Model, Task, model, slug, task
from .stand_ins import StandIns, task_files

SLM_FOLDER_NONE = "no-slm"  # --method llm: the LLM layer alone


@dataclass(frozen=True)
class Arm:
    """One row of a paper table (per SLM): a method, its LLM layer(s) and options.

    ``label`` is the paper's row label (``"{slm}"`` stands for the SLM's name); ``layers`` are pifi layer
    indices of ``llm`` (0-based; negative from the end); ``versus`` is the label of the arm that Δ and the
    p-value compare it with (None: no comparison).
    """

    label: str
    method: str = "pifi"
    llm: str | None = None
    layers: tuple[int, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    slm: str | None = None  # an SLM of its own (Table 6's BERT-large) instead of the table's
    versus: str | None = None

    def row(self, slm: str) -> str:
        return self.label.replace("{slm}", slm)


@dataclass(frozen=True)
class Table:
    """One table or figure of the paper."""

    key: str  # "1" .. "20", "fig2", "fig3"
    title: str
    where: str  # the paper's section
    slms: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    arms: tuple[Arm, ...] = ()
    metrics: tuple[str, ...] = ("accuracy", "f1")  # the paper's rows per cell (pifi_train.paper.numbers.METRICS)
    seeds: int = 5
    cross_test: bool = False  # Table 3: each training set is also tested on the others
    average: bool = False  # Table 1's Average column
    needs: tuple[str, ...] = ()  # what pifi lacks for it, one line each (no run can stand in)
    commands: tuple[str, ...] = ()  # a table that is no training grid: the commands that make it
    note: str = ""

    @property
    def figure(self) -> bool:
        return self.key.startswith("fig")

    @property
    def name(self) -> str:
        return f"Figure {self.key[3:]}" if self.figure else f"Table {self.key}"


@dataclass(frozen=True)
class Scale:
    """How big each run is: ``paper`` (the recipe) or ``smoke`` (a few examples, one epoch: the whole grid
    in minutes; its numbers say nothing about the paper's)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)  # every family
    family_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seeds: int | None = None  # None: the table's


SCALES = {
    "paper": Scale("paper"),
    "smoke": Scale("smoke", {"epochs": 1, "max_train_samples": 8, "max_eval_samples": 8, "batch_size": 2,
                             "max_length": 32},
                   # the scoring models of Table 2's extra columns stay out of a smoke run (nothing to download)
                   {"seq2seq": {"max_target_length": 16, "max_new_tokens": 8, "num_beams": 1, "meteor": False,
                                "bertscore_model": None, "bartscore_model": None}}, seeds=2),
}


@dataclass(frozen=True)
class LayerNeed:
    """One layer to extract: ``source`` (Hub id or the stand-in's folder), pifi index."""

    source: str
    index: int

    @property
    def reference(self) -> str:
        return f"{self.source}:{self.index}"


@dataclass
class Run:
    """One cell of a table's grid: an SLM × task × arm, ``config.seeds`` seeds in ``config.output_dir``."""

    table: str
    slm: str  # the paper's SLM name (of the table's row group)
    task: Task
    arm: Arm
    config: TrainConfig  # layer_artifact: the layers' cache references (replaced by files when it runs)
    layers: tuple[LayerNeed, ...]

    @property
    def dir(self) -> Path:
        return Path(str(self.config.output_dir))

    @property
    def seeds(self) -> list[int]:
        return [self.config.seed + i for i in range(self.config.seeds)]

    @property
    def row(self) -> str:
        return self.arm.row(self.slm)


def arm_folder(arm: Arm, table: Table) -> str:
    """The arm's folder name: method, LLM, layers unless the last one, options that differ from the defaults."""
    parts = [arm.method]
    if arm.llm:
        parts.append(slug(arm.llm))
    if arm.layers and arm.layers != (-1,):
        parts.append("L" + "+".join(str(i) for i in arm.layers))
    fields = {f.name: f for f in option_fields()}
    for name, value in sorted(arm.options.items()):
        if name in fields and not fields[name].metadata["result"]:
            continue  # metrics-only options (Table 2's scoring models): the same run, under the same folder
        if value != (default_of(fields[name]) if name in fields else object()):
            parts.append(name if value is True else f"{name}={value}")
    if table.cross_test:
        parts.append("tested-on-" + "+".join(task(t).task for t in table.tasks))
    return "-".join(parts)


def plan(table: Table, scale: Scale | str = "paper", stand_ins: StandIns | None = None,
         output_dir: str | Path = "runs/paper", seeds: int | None = None,
         depth_of: Callable[[str], int] | None = None) -> list[Run]:
    """Every run of ``table`` (SLM-major, then task, then arm, as the paper reads)."""
    scale = SCALES[scale] if isinstance(scale, str) else scale
    stand_ins = stand_ins or StandIns()
    count = seeds or scale.seeds or table.seeds
    if count < 1:
        raise ConfigError(f"--seeds must be at least 1, got {count}")
    runs = []
    for slm_name in table.slms:
        for task_label in table.tasks:
            for arm in table.arms:
                runs.append(_run(table, slm_name, task(task_label), arm, scale, stand_ins, Path(output_dir), count,
                                 depth_of))
    return runs


def _run(table: Table, slm_name: str, the_task: Task, arm: Arm, scale: Scale, stand_ins: StandIns, out: Path,
         seeds: int, depth_of: Callable[[str], int] | None) -> Run:
    values: dict[str, Any] = {"method": arm.method, "seeds": seeds, **the_task.options, **arm.options}
    values.update(_data(the_task, stand_ins))
    slm = model(arm.slm or slm_name)
    if arm.method != "llm":
        values["slm"] = stand_ins.of_model(slm) or slm.hub_id
    layers = _layers(arm, stand_ins, depth_of)
    if layers:
        references = [layer.reference for layer in layers]
        values["layer_artifact"] = references[0] if len(references) == 1 else references
    if table.cross_test:
        values["extra_test"] = [_test_name(task(t), stand_ins) for t in table.tasks if t != the_task.label]
    family = FAMILY_OF_KIND[the_task.kind]
    values.update(scale.options)
    values.update(scale.family_options.get(family, {}))
    folder = SLM_FOLDER_NONE if arm.method == "llm" else slug(slm.name)
    values["output_dir"] = str(out / folder / the_task.task / arm_folder(arm, table))
    return Run(table.key, slm_name, the_task, arm, TrainConfig(**values), tuple(layers))


def _data(the_task: Task, stand_ins: StandIns) -> dict[str, Any]:
    """``--task`` of a built-in task, or the stand-in's files (``--task-type``, columns of pair tasks)."""
    folder = stand_ins.of_task(the_task)
    if folder is None:
        return {"task": the_task.task}
    files = task_files(folder)
    values: dict[str, Any] = {"train_file": files["train"], "test_file": files["test"],
                              "task_type": FAMILY_OF_KIND[the_task.kind]}
    if "validation" in files:
        values["validation_file"] = files["validation"]
    if the_task.kind == "pair":
        values["text_pair_column"] = "text_pair"
    return values


def _test_name(the_task: Task, stand_ins: StandIns) -> str:
    folder = stand_ins.of_task(the_task)
    return task_files(folder)["test"] if folder else the_task.task


def _layers(arm: Arm, stand_ins: StandIns, depth_of: Callable[[str], int] | None) -> list[LayerNeed]:
    """The arm's layers, on the LLM or its stand-in: a stand-in of another depth gets the same relative
    positions (index i of N layers -> round(i·(n−1)/(N−1)); negative indices stay as they are)."""
    if not arm.llm:
        return []
    llm: Model = model(arm.llm)
    source = stand_ins.of_model(llm)
    if source is None:
        return [LayerNeed(llm.hub_id, i) for i in arm.layers]
    indices = list(arm.layers)
    if any(i >= 0 for i in indices) and llm.num_layers and depth_of is not None:
        depth = depth_of(source)
        if depth != llm.num_layers:
            indices = [i if i < 0 else round(i * (depth - 1) / (llm.num_layers - 1)) for i in indices]
    return [LayerNeed(source, i) for i in indices]


def with_artifacts(run: Run, paths: Mapping[LayerNeed, str]) -> TrainConfig:
    """The run's config with its layers' artifact files (after extraction)."""
    if not run.layers:
        return replace(run.config)
    files = [paths[layer] for layer in run.layers]
    return replace(run.config, layer_artifact=files[0] if len(files) == 1 else files)
