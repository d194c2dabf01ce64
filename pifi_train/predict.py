"""``pifi predict``: reload a run (trainable checkpoint + the artifact it used) and classify texts.

The run directory holds the SLM's config and tokenizer and the trainable tensors;
the frozen layer comes from the artifact recorded in ``config.json`` (its sha256
must match) — nothing is downloaded and the LLM is never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pifi_extract.errors import ArtifactError, ConfigError, PifiError

from . import checkpoint as ckpt
from . import run_files
from . import distributed as dist
from .config import Precision, TrainConfig, resolve_precision
from .data import Examples, label_key, read_table, require_columns
from .layer_ref import artifact_references, describe_artifact, recorded_layers
from .model import PifiModel
from .runner import build_model
from .slm import load_slm, load_slm_config, load_tokenizer
from .tasks import get_task
from .trainer import infer


@dataclass
class LoadedRun:
    """A trained model ready to predict."""

    run_dir: Path
    record: dict[str, Any]
    options: TrainConfig
    model: PifiModel
    tokenizer: Any
    label_names: list[str]
    ctx: dist.DistContext
    precision: Precision


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]


def _layer_for(recorded: dict[str, Any], override: str | None) -> Any:
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


def _layers_for(record: dict[str, Any], overrides: str | Sequence[str] | None) -> list[Any]:
    """The run's artifacts in plugging order (or ``overrides``, one per recorded layer), each hash-checked."""
    recorded = recorded_layers(record) or [{}]
    given = artifact_references(overrides)
    if given and len(given) != len(recorded):
        raise ConfigError(f"this run was trained with {len(recorded)} layer artifact(s); "
                          f"--layer-artifact was given {len(given)} time(s)",
                          "pass one --layer-artifact per layer, in the run's order")
    return [_layer_for(entry, given[i] if given else None) for i, entry in enumerate(recorded)]


def load_run(run_dir: str | Path, device: str = "auto",
             layer_artifact: str | Sequence[str] | None = None, token: str | None = None,
             make_model: Callable[[Any, list[str], TrainConfig, Any], Any] | None = None) -> LoadedRun:
    """Rebuild the model of a finished run from its directory (best epoch's tensors); ``layer_artifact``:
    the run's artifact(s) if they moved (one per layer, in order). ``hf://ORG/REPO[@REV]``: a run pushed with
    ``pifi push``, downloaded with its layer (then cached: offline afterwards). ``make_model(slm, labels,
    options, layer)``: another family's model (default: the classifier)."""
    if str(run_dir).startswith("hf://"):
        from .run_share import pull_run

        run_dir, pulled = pull_run(str(run_dir), token=token)
        layer_artifact = layer_artifact or pulled or None
    run_dir = Path(run_dir)
    if (run_dir / run_files.SWEEP).is_file():
        seeds = ", ".join(run_files.read_json(run_dir / run_files.SWEEP).get("runs", []))
        raise ConfigError(f"{run_dir} holds several seeds", f"pass one of its run directories: {seeds}")
    record = run_files.read_json(run_dir / run_files.CONFIG)
    if not record.get(run_files.RUN_MARKER):
        raise ConfigError(f"{run_dir} is not a pifi run directory")
    options = TrainConfig.from_dict(record["options"])
    ctx = dist.DistContext(device=dist.resolve_device(device))
    precision = resolve_precision("auto", ctx.device)
    folder = str(run_dir / run_files.CHECKPOINT_DIR)
    slm = load_slm(folder, load_slm_config(folder), pretrained=False)
    layers = _layers_for(record, layer_artifact) if options.method == "pifi" else None
    labels = list(record["labels"])
    make = make_model or (lambda slm, labels, options, layer: PifiModel(slm, len(labels), options.model_options(), layer))
    # the run's ablations as it trained: a random layer from its seed, a trained layer, LoRA adapters
    model = build_model(options, slm, layers, ctx.device, precision.layer_dtype, int(record["seed"]),
                        lambda slm, layer: make(slm, labels, options, layer))
    ckpt.load_into(model, ckpt.load_tensors(run_dir / run_files.CHECKPOINT_DIR / run_files.WEIGHTS))
    model.to(ctx.device).eval()
    return LoadedRun(run_dir, record, options, model, load_tokenizer(folder), labels, ctx, precision)


def predict(run: LoadedRun, texts: Sequence[str], pairs: Sequence[str] | None = None,
            batch_size: int = 64) -> list[Prediction]:
    """Label and class probabilities of each text (or text pair)."""
    if not texts:
        return []
    if pairs is not None and len(pairs) != len(texts):
        raise ConfigError(f"{len(texts)} texts but {len(pairs)} second texts")
    if (pairs is not None) != bool(run.record.get("text_pairs")):
        raise ConfigError("this run was trained on text pairs; pass the second text too" if pairs is None
                          else "this run was trained on single texts; do not pass a second text")
    examples = Examples(list(texts), list(pairs) if pairs is not None else None, [0] * len(texts))
    _, probs = infer(run.model, examples, run.tokenizer, run.options.max_length, batch_size, run.ctx,
                     run.precision)  # (N, C)
    return [Prediction(run.label_names[int(p.argmax())], {name: float(v) for name, v in zip(run.label_names, p)})
            for p in probs]


def read_inputs(path: str | Path, run: LoadedRun) -> tuple[list[str], list[str] | None, list[int] | None]:
    """Texts (pairs, and label ids when the file has the run's label column) from a .txt/.csv/.tsv/.jsonl file.

    A .txt file is one text per line. Other files use the run's text / pair / label column names.
    """
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise ConfigError(f"input file not found: {path}")
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise ConfigError(f"input file has no lines: {path}")
        return texts, None, None
    rows = read_table(path)
    options = run.options
    text_column = options.text_column if options.task is None else None
    pair_column = options.text_pair_column if options.task is None else None
    if options.task is not None:  # built-in tasks: their own column names
        spec = get_task(options.task)
        text_column, pair_column, label_column = spec.text_column, spec.text_pair_column, spec.label_column
    else:
        label_column = options.label_column
    require_columns(rows, [c for c in (text_column, pair_column) if c], path)
    texts = [str(r[text_column]) for r in rows]
    pairs = [str(r[pair_column]) for r in rows] if pair_column else None
    labels = None
    if label_column in rows[0]:
        ids = {name: i for i, name in enumerate(run.label_names)}
        raw_ids = dict(get_task(options.task).label_ids) if options.task is not None else {}
        labels = []
        for number, row in enumerate(rows, 1):
            key = label_key(row[label_column], path, number)
            if str(key) in ids:
                labels.append(ids[str(key)])
            elif key in raw_ids:  # a built-in task's raw label id
                labels.append(raw_ids[key])
            else:
                raise ConfigError(f"label {key!r} in {path} row {number} is not one of the run's labels",
                                  f"labels: {', '.join(run.label_names)}")
    return texts, pairs, labels


def accuracy(predictions: Sequence[Prediction], labels: Sequence[int], label_names: Sequence[str]) -> float:
    hits = sum(p.label == label_names[y] for p, y in zip(predictions, labels))
    return hits / len(labels) if labels else 0.0



class Classifier:
    """A trained run as a callable: ``classifier(texts[, pairs]) -> [Prediction(label, probabilities)]``."""

    def __init__(self, run: LoadedRun, batch_size: int = 64) -> None:
        self.run, self.batch_size = run, batch_size
        self.labels = run.label_names

    def __call__(self, texts: str | Sequence[str], pairs: Sequence[str] | None = None,
                 batch_size: int | None = None) -> list[Prediction]:
        if isinstance(texts, str):
            texts = [texts]
        return predict(self.run, list(texts), list(pairs) if pairs is not None else None,
                       batch_size=batch_size or self.batch_size)


def load_classifier(run_dir: str | Path, device: str = "auto", batch_size: int = 64,
                    layer_artifact: str | Sequence[str] | None = None, token: str | None = None) -> Classifier:
    """``pifi predict`` as a library call: the run's model on ``device``, batched (same results); ``run_dir``
    may be ``hf://ORG/REPO[@REV]`` (``token`` for a private repo, else the login token)."""
    return Classifier(load_run(run_dir, device=device, layer_artifact=layer_artifact, token=token), batch_size)
