"""``pifi predict`` for classification runs: label and class probabilities of texts (or text pairs).

The run comes from :func:`pifi_train.run_record.load_run` (local or ``hf://``): the SLM's config and
tokenizer and the trainable tensors from the run directory, the frozen layer from the artifact recorded
in ``config.json`` (its sha256 must match) — nothing is downloaded and the LLM is never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pifi_extract.errors import ConfigError

from ...run_record import LoadedRun, load_run
from ...tables import read_lines, read_table, require_columns
from .data import Examples, label_key
from .tasks import get_task
from .trainer import infer


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]


def predict(run: LoadedRun, texts: Sequence[str], pairs: Sequence[str] | None = None,
            batch_size: int = 64) -> list[Prediction]:
    """Label and class probabilities of each text (or text pair)."""
    if not texts:
        return []
    if pairs is not None and len(pairs) != len(texts):
        raise ConfigError(f"{len(texts)} texts but {len(pairs)} second texts")
    if (pairs is not None) != bool(run.spec.get("text_pairs")):
        raise ConfigError("this run was trained on text pairs; pass the second text too" if pairs is None
                          else "this run was trained on single texts; do not pass a second text")
    examples = Examples(list(texts), list(pairs) if pairs is not None else None, [0] * len(texts))
    _, probs = infer(run.model, examples, run.tokenizer, run.family.max_length(run.options), batch_size, run.ctx,
                     run.precision)  # (N, C)
    labels = label_names(run)
    return [Prediction(labels[int(p.argmax())], {name: float(v) for name, v in zip(labels, p)}) for p in probs]


def label_names(run: LoadedRun) -> list[str]:
    """The run's labels (id i = labels[i])."""
    return run.label_names


def read_inputs(path: str | Path, run: LoadedRun) -> tuple[list[str], list[str] | None, list[int] | None]:
    """Texts (pairs, and label ids when the file has the run's label column) from a .txt/.csv/.tsv/.jsonl file.

    A .txt file is one text per line. Other files use the run's text / pair / label column names.
    """
    path = Path(path)
    if path.suffix.lower() == ".txt":
        return read_lines(path), None, None
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
        ids = {name: i for i, name in enumerate(label_names(run))}
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
                                  f"labels: {', '.join(label_names(run))}")
    return texts, pairs, labels


def accuracy(predictions: Sequence[Prediction], labels: Sequence[int], label_names: Sequence[str]) -> float:
    hits = sum(p.label == label_names[y] for p, y in zip(predictions, labels))
    return hits / len(labels) if labels else 0.0



class Classifier:
    """A trained run as a callable: ``classifier(texts[, pairs]) -> [Prediction(label, probabilities)]``."""

    def __init__(self, run: LoadedRun, batch_size: int = 64) -> None:
        self.run, self.batch_size = run, batch_size
        self.labels = label_names(run)

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
    run = load_run(run_dir, device=device, layer_artifact=layer_artifact, token=token)
    if run.family.name != "classification":
        raise ConfigError(f"{run_dir} is a {run.family.name} run, not a classifier",
                          "use `pifi predict --run-dir` (it answers or generates for those runs)")
    return Classifier(run, batch_size)
