"""``pifi select``: score every layer of an LLM on task samples, streamed one layer at a time.

:func:`run_select` loads the samples, streams the pooled states (:mod:`.stream`), scores them
(:mod:`.scoring`), ranks the layers and writes ``selection.json``; :func:`train_command` is the
``pifi train`` line for the best layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pifi_extract.errors import ConfigError

from .config import SelectConfig, parse_layers
from .scoring import ILM_LAMBDAS, ILM_PCS, ILM_TOP_PC, check_folds, ilm_score, probe_score, rank, sklearn

StepCallback = Callable[[int, int, str], None]
SCORE_COLUMNS = ("ilm", "probe", "fit")  # the score columns a row may carry


@dataclass
class SelectionResult:
    """The ranked layers (one row per scored state; the last layer also after the final norm)."""

    config: SelectConfig
    rows: list[dict[str, Any]]
    num_layers: int
    num_samples: int
    bytes_read: int
    embedding_rows: int
    cached_layers: list[int] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)  # cache keys written by --extract-top
    fit: dict[str, Any] | None = None  # --score fit: what the search trained and what it cost
    pairs: list[dict[str, Any]] = field(default_factory=list)  # --pairs: ranked pairs of layers
    timings: dict[str, float] = field(default_factory=dict)  # seconds of the layer pass (read, compute, wait)

    @property
    def best_pair(self) -> dict[str, Any] | None:
        return min(self.pairs, key=lambda r: r["rank"]) if self.pairs else None

    @property
    def best(self) -> dict[str, Any]:
        return min(self.rows, key=lambda r: r["rank"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "llm": self.config.llm, "options": self.config.to_dict(), "num_layers": self.num_layers,
            "num_samples": self.num_samples, "ilm": {"pcs": ILM_PCS, "top_pc": ILM_TOP_PC, "lambdas": list(ILM_LAMBDAS),
                                                     "reference": "NAMUORI00/PIFI-ILM selection/ilm_direct.py@555ad63"},
            "rank_by": rank_key(self.config.score), "best": self.best, "layers": self.rows,
            "bytes_read": self.bytes_read, "embedding_rows": self.embedding_rows,
            "cached_layers": self.cached_layers, "extracted": self.extracted, "timings": self.timings,
            **({"fit": self.fit, "pairs": self.pairs, "best_pair": self.best_pair} if self.fit is not None else {}),
        }


def rank_key(score: str) -> str:
    return score if score in ("ilm", "fit") else "probe"


def load_samples(config: SelectConfig) -> tuple[list[str], np.ndarray, list[str]]:
    """Up to ``samples`` seeded random examples of the validation data; pairs joined as "a [SEP] b" (the fork)."""
    from ..families.classification.data import load_local_task
    from ..families.classification.tasks import load_builtin_task

    if config.task is not None:
        data = load_builtin_task(config.task, config.seed)
        examples = data.validation
    else:
        main = config.validation_file or config.train_file
        data = load_local_task(Path(config.train_file or main), Path(main), None, config.text_column,
                               config.text_pair_column, config.label_column, seed=config.seed)
        examples = data.validation  # the whole file (label ids from the training file)
    n = len(examples)
    if n < 2:
        raise ConfigError(f"only {n} samples in the data", "use a larger validation split or file")
    idx = np.random.default_rng(config.seed).choice(n, size=min(config.samples, n), replace=False)
    texts = [examples.texts[i] if examples.pairs is None else f"{examples.texts[i]} [SEP] {examples.pairs[i]}"
             for i in idx]
    return texts, np.asarray([examples.labels[i] for i in idx]), list(data.label_names)


def run_select(config: SelectConfig, progress: StepCallback | None = None, *, token: str | bool | None = None) -> SelectionResult:
    """Score the layers, rank them, write ``config.output`` (and ``--extract-top`` layers into the cache)."""
    config.validate()
    if config.score == "fit":
        result = _fit_selection(config, progress, token)
    else:
        result = _probe_selection(config, progress, token)
    if config.extract_top > 0:
        result.extracted = extract_top(result, token=token)
    Path(config.output).parent.mkdir(parents=True, exist_ok=True)
    Path(config.output).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _fit_selection(config: SelectConfig, progress: StepCallback | None, token: str | bool | None) -> SelectionResult:
    from .fit_search import run_fit_search

    found = run_fit_search(config, progress, token=token)
    return SelectionResult(config, found.rows, found.num_layers, found.info["num_validation"], found.bytes_read, 0,
                           found.cached_layers, fit=found.info, pairs=found.pairs)


def _probe_selection(config: SelectConfig, progress: StepCallback | None, token: str | bool | None) -> SelectionResult:
    """ilm / probe / both: the LLM's own pooled states after each layer, scored."""
    sklearn()  # a missing extra fails before anything is read
    import torch

    from layer_cache.get_or_extract import OpenSourceCache
    from pifi_extract.extract import open_source
    from pifi_extract.architectures import arch_for_config
    from pifi_extract.plan import num_layers_of

    from .stream import source_config, stream_pooled_states
    from .tokenizer import load_tokenizer

    texts, y, _ = load_samples(config)
    if config.score != "ilm":
        check_folds(y, config.folds)
    source = open_source(config.llm, config.revision, token=token, gguf_file=config.gguf_file)
    num_layers = num_layers_of(cfg := source_config(source), arch_for_config(cfg))
    layers = parse_layers(config.layers, num_layers)
    tokenizer = load_tokenizer(source, config.tokenizer)
    if config.padding_side:
        tokenizer.padding_side = config.padding_side
    cache = OpenSourceCache(config.llm, source, gguf_file=config.gguf_file, revision=config.revision,
                            cache_dir=config.cache_dir)
    with torch.inference_mode():
        streamed = stream_pooled_states(source, texts, tokenizer, layers=layers, max_length=config.max_length,
                                        pooling=config.pooling, batch_size=config.batch_size, device=config.device,
                                        cache=cache, cache_layers=config.cache_layers, prefetch=config.prefetch,
                                        progress=progress)
    rows = []
    for st in streamed.states:
        row: dict[str, Any] = {"layer": st.layer, "post_norm": st.post_norm, "name": st.name}
        finite = bool(np.isfinite(st.X).all())  # an overflowing layer (inf/NaN states) is scored None, ranked last
        if not finite:
            row["nonfinite"] = True
        if config.score in ("ilm", "both"):
            row["ilm"] = ilm_score(st.X, y) if finite else None
        if config.score in ("probe", "both"):
            row["probe"] = probe_score(st.X, y, folds=config.folds, seed=config.seed) if finite else None
        rows.append(row)
    key = rank_key(config.score)
    other = "ilm" if key == "probe" and config.score == "both" else None
    ranks = rank([r[key] for r in rows], [r[other] for r in rows] if other else None)
    for r, k in zip(rows, ranks):
        r["rank"] = k
    st = streamed.stats
    timings = {"layers_fetch": st.fetch_s, "layers_build": st.build_s, "compute": st.compute_s,
               "wait_for_layers": st.wait_s, "peak_layers_in_memory": st.peak_alive} if st is not None else {}
    return SelectionResult(config, rows, streamed.num_layers, len(texts), streamed.bytes_read,
                           streamed.embedding_rows, streamed.cached_layers, timings=timings)


def top_layers(result: SelectionResult, k: int) -> list[int]:
    """The ``k`` best distinct layer indices."""
    out: list[int] = []
    for row in sorted(result.rows, key=lambda r: r["rank"]):
        if row["layer"] not in out:
            out.append(row["layer"])
    return out[:k]


def extract_top(result: SelectionResult, *, token: str | bool | None = None) -> list[str]:
    from layer_cache import get_or_extract_layers

    c = result.config
    layers = top_layers(result, c.extract_top)
    get_or_extract_layers(c.llm, layers, revision=c.revision, token=token, cache_dir=c.cache_dir, gguf_file=c.gguf_file)
    return [layer_reference(c, i) for i in layers]


def layer_reference(config: SelectConfig, layer: int) -> str:
    """The cache key of a layer, as ``--layer-artifact`` takes it."""
    source = f"{config.llm}/{config.gguf_file}" if config.gguf_file else config.llm
    return f"{source}:{layer}"


def train_command(result: SelectionResult, layers: list[int] | None = None, post_norm: bool | None = None) -> str:
    """The ``pifi train`` line that plugs the best layer, or ``layers`` in that order (after ``pifi extract`` or
    ``--extract-top``)."""
    c, best = result.config, result.best
    layers = layers if layers is not None else [best["layer"]]
    post_norm = best["post_norm"] if post_norm is None else post_norm
    data = f"--task {c.task}" if c.task else f"--train-file {c.train_file or c.validation_file}"
    if c.train_file and c.validation_file:
        data += f" --validation-file {c.validation_file}"
    if not c.task:
        data += f" --text-column {c.text_column} --label-column {c.label_column}"
        if c.text_pair_column:
            data += f" --text-pair-column {c.text_pair_column}"
    if c.score == "fit":
        data += f" --slm {c.slm}" + (f" --plug {c.plug}" if c.plug != "cls" else "")
    plugs = " ".join(f"--layer-artifact {layer_reference(c, i)}" for i in layers)
    return f"pifi train {data} {plugs}" + (" --post-norm" if post_norm else "")


def plot_scores(result: SelectionResult, path: str | Path) -> Path:
    """Scores per layer (one line per score), the best marked; needs matplotlib (pifi[plot])."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("plotting needs matplotlib", "pip install 'pifi[plot]', or drop --plot") from err
    raw = [r for r in result.rows if not r["post_norm"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name in SCORE_COLUMNS:
        if name in raw[0]:
            ax.plot([r["layer"] for r in raw], [np.nan if r[name] is None else r[name] for r in raw], marker="o",
                    label=name)
    for r in result.rows:
        if r["post_norm"]:
            for name in SCORE_COLUMNS:
                if r.get(name) is not None:
                    ax.scatter([r["layer"]], [r[name]], marker="x", color="k")
    ax.axvline(result.best["layer"], color="grey", linestyle=":")
    ax.set_xlabel("layer (x: last layer after the final norm)")
    ax.set_ylabel("score")
    ax.set_title(f"pifi select: {Path(result.config.llm).name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
