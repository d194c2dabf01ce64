"""Classification metrics over a whole split (never averaged per batch).

The definitions follow scikit-learn's: the confusion matrix has true labels on
rows and predictions on columns; per-class F1 is ``2·P·R / (P + R)`` with 0 where
a denominator is 0; macro-F1 averages the per-class F1 over the classes that
occur in the labels or the predictions (scikit-learn's ``f1_score(average=
"macro")`` without ``labels=``). The paper's code averaged F1 per batch; this
module is the dataset-level replacement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence


@dataclass(frozen=True)
class SplitMetrics:
    """Accuracy, macro-F1, per-class F1 and confusion matrix of one split."""

    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]
    confusion_matrix: list[list[int]]
    count: int

    def to_dict(self) -> dict:
        return asdict(self)


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> list[list[int]]:
    """``matrix[true][predicted]`` counts."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for truth, guess in zip(labels, predictions):
        matrix[int(truth)][int(guess)] += 1
    return matrix


def per_class_f1(matrix: list[list[int]]) -> list[float]:
    """F1 of each class from a confusion matrix; 0 where precision or recall is undefined."""
    n = len(matrix)
    scores = []
    for c in range(n):
        true_pos = matrix[c][c]
        predicted = sum(matrix[r][c] for r in range(n))
        actual = sum(matrix[c])
        denominator = predicted + actual  # 2TP + FP + FN
        scores.append(0.0 if denominator == 0 else 2.0 * true_pos / denominator)
    return scores


def compute_metrics(
    labels: Sequence[int], predictions: Sequence[int], label_names: Sequence[str]
) -> SplitMetrics:
    """All metrics of one split, computed on every example at once."""
    num_classes = len(label_names)
    matrix = confusion_matrix(labels, predictions, num_classes)
    f1 = per_class_f1(matrix)
    present = [c for c in range(num_classes) if sum(matrix[c]) or sum(row[c] for row in matrix)]
    total = len(labels)
    correct = sum(matrix[c][c] for c in range(num_classes))
    return SplitMetrics(
        accuracy=correct / total if total else 0.0,
        macro_f1=sum(f1[c] for c in present) / len(present) if present else 0.0,
        per_class_f1={name: f1[i] for i, name in enumerate(label_names)},
        confusion_matrix=matrix,
        count=total,
    )
