"""What a task family is: its tasks, its metrics, the options it takes, and (lazily) its torch-side hooks.

A :class:`Family` is data, torch-free, so the CLI, ``report``, trackers and ``sweep`` can ask "which
metrics, which options?" without loading a model. Its :attr:`Family.runtime` imports the family's
``runtime`` module (data, SLM, model, trainer: :class:`FamilyRuntime`) when a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from pifi_extract.errors import ConfigError

from ..options import ModelOptions, default_of, option_fields

if TYPE_CHECKING:
    from ..config import TrainConfig


@dataclass(frozen=True)
class Metric:
    """One number a family reports: stored as computed (``percent``: a 0..1 fraction shown ×100)."""

    key: str
    label: str
    percent: bool = True
    higher_is_better: bool = True
    paper: bool = False  # a paper-compatible variant (labelled as such beside the correct number)

    def show(self, value: float) -> str:
        return f"{100 * value:.2f}" if self.percent else f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"

    def points(self, value: float) -> float:
        """The value in the unit tables show (percentage points for fractions)."""
        return 100 * value if self.percent else value


LOSS = Metric("loss", "loss", percent=False, higher_is_better=False)


@dataclass(frozen=True)
class MetricsSpec:
    """A family's metrics: what tables, the seed summary, trackers, ``report`` and ``sweep`` show, and how
    the best epoch is chosen.

    ``headline``: the metrics every table shows (``primary`` among them: Δ, p-value and CI are computed on it);
    ``variants``: paper-compatible variants shown beside them, labelled; ``select_default``: the metric that
    picks the best epoch unless ``--select-by``. For the paired bootstrap over a split's per-example rows
    (``predictions.jsonl``): ``example_score`` when the primary metric is the mean of a per-example score
    (accuracy, SQuAD F1), else ``corpus_score`` (the metric of the rows at some indices, e.g. corpus BLEU).
    """

    headline: tuple[Metric, ...]
    primary: str
    select_default: str
    variants: tuple[Metric, ...] = ()
    example_score: Callable[[dict[str, Any]], float] | None = None
    corpus_score: Callable[[Sequence[dict[str, Any]], Sequence[int]], float] | None = None

    @property
    def all(self) -> tuple[Metric, ...]:
        return (*self.headline, *self.variants, LOSS)

    def metric(self, key: str) -> Metric:
        for m in self.all:
            if m.key == key:
                return m
        raise KeyError(key)

    @property
    def primary_metric(self) -> Metric:
        return self.metric(self.primary)

    def selection(self, select_by: str) -> Metric:
        """The metric ``--select-by`` names (``auto``: the family's), refused unless the family computes it."""
        key = self.select_default if select_by == "auto" else select_by
        choices = [m.key for m in (*self.headline, LOSS)]
        if key not in choices:
            raise ConfigError(f"--select-by {select_by!r} is not a validation metric of this family",
                              f"use auto or one of {', '.join(choices)}")
        return self.metric(key)

    def summary_keys(self) -> tuple[str, ...]:
        """Metrics summarised over seeds and logged by trackers."""
        return tuple(m.key for m in (*self.headline, *self.variants))


class FamilyRuntime(Protocol):
    """The torch side of a family (each family's ``runtime`` module provides these names)."""

    Trainer: type

    def load_data(self, config: TrainConfig) -> Any:
        """The run's splits (``train``, ``validation``, ``test``, ``extra_tests``) and ``source`` record."""

    def load_slm_config(self, name: str) -> Any: ...

    def load_slm(self, name: str, slm_config: Any, pretrained: bool) -> Any: ...

    def model_spec(self, data: Any, slm_config: Any, config: TrainConfig) -> dict[str, Any]:
        """What config.json records (under ``model``) to rebuild the model without the data (labels...)."""

    def build_model(self, slm: Any, spec: Mapping[str, Any], options: ModelOptions, layer: Any) -> Any:
        """The family's model around ``slm`` and the run's layer (None for base/lora), wired by ``options``."""


@dataclass(frozen=True)
class Family:
    """A task family: classification, extractive QA, sequence-to-sequence."""

    name: str
    summary: str
    tasks: tuple[str, ...]
    metrics: MetricsSpec
    plugs: tuple[str, ...]  # --plug values it takes; the first is its default
    default_max_length: Callable[[TrainConfig], int]
    runtime: Callable[[], FamilyRuntime] = field(repr=False)
    refuses: Mapping[str, str] = field(default_factory=dict)  # option -> why this family cannot honour it
    check: Callable[[TrainConfig], None] | None = field(default=None, repr=False)  # its own options' values

    def plug(self, config: TrainConfig) -> str:
        """The run's plug: ``--plug`` (checked against the family's) or the family's own."""
        if config.plug is None:
            return self.plugs[0]
        if config.plug not in self.plugs:
            raise ConfigError(f"--plug {config.plug} is not a {self.name} plug",
                              f"{self.name} takes --plug {' or '.join(self.plugs)}")
        return config.plug

    def max_length(self, config: TrainConfig) -> int:
        return config.max_length if config.max_length is not None else self.default_max_length(config)

    def model_options(self, config: TrainConfig) -> ModelOptions:
        """How the family's model is wired for a run (the plug resolved: the family's own unless given)."""
        return ModelOptions(config.method, self.plug(config), config.attention, config.post_norm, config.pooling,
                            config.dropout, config.train_layer)

    def validate(self, config: TrainConfig) -> None:
        """Every cheap check of a run's options (files and models are checked when loaded): their values,
        then each option this family does not take (:meth:`check_options`), then the selection metric."""
        config.validate()
        self.check_options(config)
        self.model_options(config)
        self.metrics.selection(config.select_by)

    def check_options(self, config: TrainConfig) -> None:
        """Refuse, in one line, every option set to a non-default value that this family (or the run's
        ``--method``) does not honour: nothing is silently ignored; then the family's own option values."""
        self.plug(config)
        for f in option_fields():
            value = getattr(config, f.name)
            if value == default_of(f):
                continue
            flag = "--" + f.name.replace("_", "-")
            families, methods = f.metadata.get("families"), f.metadata.get("methods")
            if families is not None and self.name not in families:
                raise ConfigError(f"{flag} is a {' / '.join(families)} option, and this is a {self.name} run",
                                  f"drop {flag} (families that take it: {', '.join(families)})")
            if f.name in self.refuses:
                raise ConfigError(f"{flag} {_shown(value)}: {self.refuses[f.name]}", f"drop {flag} for {self.name} runs")
            if methods is not None and config.method not in methods:
                raise ConfigError(f"{flag} applies to --method {' / '.join(methods)}, not --method {config.method}",
                                  f"drop {flag}, or use --method {methods[0]}")
        if self.check is not None:
            self.check(config)


def at_least_one(config: Any, names: Sequence[str]) -> None:
    """Refuse any of the integer options ``names`` below 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)
