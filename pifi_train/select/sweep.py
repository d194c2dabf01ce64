"""``pifi sweep``: train PiFi once per layer and seed (plus the base SLM) and compare with ``pifi select``.

Each layer is obtained once through the cache (:func:`layer_cache.get_or_extract_layers`), each run is
:func:`pifi_train.runner.run_training`, in any task family; the result is the family's primary metric per
layer (test, else validation: accuracy, QA F1, BLEU — the paper's Figures 2 and 3) and, given a
``selection.json``, Spearman's correlation between the select scores and those numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from pifi_extract.errors import ConfigError

from ..families import FAMILIES, family_for
from .config import parse_layers
from .scoring import spearman

# progress(done_runs, total_runs, text)
StepCallback = Callable[[int, int, str], None]
SWEEP_FILE = "sweep.json"


@dataclass
class SweepResult:
    """The family's primary metric (test, else validation) per layer and seed, the base SLM's, and the
    agreement with select."""

    layers: list[int]
    scores: dict[str, list[float]]  # "base" | str(layer) -> one value of ``metric`` per seed
    split: str
    output_dir: Path
    metric: str = "accuracy"  # the family's primary metric (its key)
    family: str = "classification"
    spearman: dict[str, float] = field(default_factory=dict)  # score name -> rho over the swept layers
    extracted_bytes: int = 0

    def mean(self, name: str) -> float:
        values = self.scores[name]
        return sum(values) / len(values)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "metric": self.metric, "layers": self.layers, "split": self.split,
                "scores": self.scores, "mean": {k: self.mean(k) for k in self.scores},
                "spearman": {k: None if v != v else v for k, v in self.spearman.items()},  # NaN (a constant side): null
                "extracted_bytes": self.extracted_bytes}


def run_score(metrics: dict[str, Any], key: str) -> tuple[float, str]:
    """A finished run's ``key`` metric on test, else validation."""
    final = metrics.get("final") or {}
    split = "test" if final.get("test") else "validation"
    return float(final[split][key]), split


def run_sweep(
    llm: str,
    train: Any,  # TrainConfig: data, SLM and optimisation options; output_dir is the sweep's folder
    *,
    layers: str | None = None,
    gguf_file: str | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | None = None,
    selection: str | None = None,
    progress: StepCallback | None = None,
    train_progress: Any = None,
) -> SweepResult:
    """Extract each layer once (cache), train the base SLM and PiFi with each layer, ``train.seeds`` seeds each."""
    from layer_cache import get_or_extract_layers
    from pifi_extract.architectures import arch_for_config
    from pifi_extract.extract import open_source
    from pifi_extract.plan import num_layers_of

    from ..runner import run_training
    from .stream import source_config

    if not train.output_dir:
        raise ConfigError("pifi sweep needs --output-dir (one run folder per layer goes inside it)")
    out = Path(train.output_dir)
    source = open_source(llm, revision, token=token, gguf_file=gguf_file)
    num_layers = num_layers_of(cfg := source_config(source), arch_for_config(cfg))
    chosen = parse_layers(layers, num_layers)
    scores = _selection_scores(selection) if selection else {}
    extracted = [0]
    artifacts = get_or_extract_layers(llm, chosen, revision=revision, token=token, cache_dir=cache_dir,
                                      gguf_file=gguf_file, progress=lambda n, _t: extracted.__setitem__(0, extracted[0] + n))
    family = family_for(train)
    metric = family.metrics.primary
    jobs = [("base", train.for_method("base", output_dir=str(out / "base")))]
    jobs += [(str(i), train.for_method("pifi", str(a.path), output_dir=str(out / f"layer-{i}")))
             for i, a in zip(chosen, artifacts)]
    swept: dict[str, list[float]] = {}
    split = "test"
    for k, (name, config) in enumerate(jobs):
        if progress is not None:
            progress(k, len(jobs), f"{'base' if name == 'base' else 'layer ' + name}")
        results = run_training(config, train_progress)
        pairs = [run_score(r.metrics, metric) for r in results]
        swept[name] = [a for a, _ in pairs]
        split = pairs[0][1]
    if progress is not None:
        progress(len(jobs), len(jobs), "done")
    result = SweepResult(chosen, swept, split, out, metric, family.name, extracted_bytes=extracted[0])
    for score_name, per_layer in scores.items():
        common = [i for i in chosen if i in per_layer]
        if len(common) >= 2:
            result.spearman[score_name] = spearman([per_layer[i] for i in common],
                                                   [result.mean(str(i)) for i in common])
    (out / SWEEP_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def plot_sweep(result: SweepResult, path: str | Path, reference: Mapping[int, float] | None = None,
               reference_label: str = "paper") -> Path:
    """The metric per layer (mean over seeds) with the base SLM as a line (the paper's Figures 2, 3); needs
    matplotlib. ``reference``: another curve (layer -> value in the plotted unit), e.g. the paper's."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("plotting needs matplotlib", "pip install 'pifi[plot]', or drop --plot") from err
    fig, ax = plt.subplots(figsize=(6, 3.2))
    metric = FAMILIES[result.family].metrics.metric(result.metric)
    ax.plot(result.layers, [metric.points(result.mean(str(i))) for i in result.layers], marker="o",
            label="+ PiFi (layer)")
    if reference:
        ax.plot(sorted(reference), [reference[i] for i in sorted(reference)], marker="s", linestyle=":",
                label=reference_label)
    ax.axhline(metric.points(result.mean("base")), color="grey", linestyle="--", label="base SLM")
    ax.set_xlabel("LLM layer")
    ax.set_ylabel(f"{result.split} {result.metric}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _selection_scores(path: str) -> dict[str, dict[int, float]]:
    """score name -> {layer: score} of a selection.json (raw layers; the post-norm row is not a plug-in)."""
    try:
        data = json.loads(Path(path).read_text())
        rows = [r for r in data["layers"] if not r.get("post_norm")]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"cannot read the selection file {path}: {err}", "pass a selection.json from pifi select") from None
    return {name: {int(r["layer"]): float(r[name]) for r in rows if r.get(name) is not None}
            for name in ("ilm", "probe", "fit") if any(name in r for r in rows)}
