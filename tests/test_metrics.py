"""Dataset-level metrics equal the scikit-learn definitions, checked by hand on a small case."""

import pytest

from pifi_train.families.classification.metrics import compute_metrics, confusion_matrix, per_class_f1

LABELS = [0, 0, 1, 1, 2, 2]
PREDS = [0, 1, 1, 1, 0, 2]


def test_confusion_matrix_rows_are_truth_columns_are_predictions():
    assert confusion_matrix(LABELS, PREDS, 3) == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_per_class_f1_is_harmonic_mean_of_precision_and_recall():
    # class 0: P = 1/2, R = 1/2; class 1: P = 2/3, R = 1; class 2: P = 1, R = 1/2
    expected = [0.5, 2 * (2 / 3) * 1 / (2 / 3 + 1), 2 * 1 * 0.5 / 1.5]
    assert per_class_f1(confusion_matrix(LABELS, PREDS, 3)) == pytest.approx(expected)


def test_compute_metrics_whole_split():
    m = compute_metrics(LABELS, PREDS, ["a", "b", "c"])
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m.per_class_f1 == pytest.approx({"a": 0.5, "b": 0.8, "c": 2 / 3})
    assert m.count == 6
    assert m.to_dict()["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_macro_f1_ignores_classes_absent_from_labels_and_predictions():
    # scikit-learn's f1_score(average="macro") averages over labels present in y_true or y_pred
    with_absent = compute_metrics(LABELS, PREDS, ["a", "b", "c", "never"])
    assert with_absent.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert with_absent.per_class_f1["never"] == 0.0


def test_zero_division_gives_zero_not_nan():
    # class 1 is a label but never predicted: precision undefined -> F1 0 (sklearn zero_division=0)
    m = compute_metrics([0, 1], [0, 0], ["x", "y"])
    assert m.per_class_f1 == {"x": pytest.approx(2 / 3), "y": 0.0}
    assert m.macro_f1 == pytest.approx(1 / 3)


def test_differs_from_the_papers_per_batch_average():
    # two batches; the per-batch average of macro-F1 is not the dataset-level macro-F1
    batches = [([0, 0, 1], [0, 0, 0]), ([1, 1, 0], [1, 1, 1])]
    per_batch = sum(compute_metrics(y, p, ["n", "p"]).macro_f1 for y, p in batches) / 2
    whole = compute_metrics([*batches[0][0], *batches[1][0]], [*batches[0][1], *batches[1][1]], ["n", "p"]).macro_f1
    assert whole == pytest.approx(2 / 3)
    assert per_batch != pytest.approx(whole)
