"""SQuAD metrics: the official v1.1 EM/F1 (and v2's HasAns/NoAns split), and the paper's token-span EM/F1.

Answers are normalised as the official script does: lower case, no punctuation, no articles (a, an, the),
single spaces. Each prediction scores the maximum over its gold answers; an unanswerable question (v2) has
the single gold answer "" (EM = F1 = 1 exactly when the prediction is empty too).
"""

from __future__ import annotations

import collections
import re
import string
from typing import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalised strings (both empty: 1; one empty: 0)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_over(metric, prediction: str, golds: Sequence[str]) -> float:  # type: ignore[no-untyped-def]
    return max(metric(prediction, g) for g in (list(golds) or [""]))


def squad_metrics(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``exact_match`` and ``f1`` (fractions in [0, 1]) over ``golds``' ids; with unanswerable questions also
    ``has_ans_*`` / ``no_ans_*`` and their counts. A missing prediction counts as ""."""
    em_scores = {qid: best_over(exact_match, predictions.get(qid, ""), g) for qid, g in golds.items()}
    f1_scores = {qid: best_over(f1, predictions.get(qid, ""), g) for qid, g in golds.items()}
    n = max(len(golds), 1)
    out = {"exact_match": sum(em_scores.values()) / n, "f1": sum(f1_scores.values()) / n, "count": len(golds)}
    has = [qid for qid, g in golds.items() if any(a.strip() for a in g)]
    if len(has) < len(golds):
        no = [qid for qid in golds if qid not in set(has)]
        for name, ids in (("has_ans", has), ("no_ans", no)):
            out[f"{name}_exact_match"] = sum(em_scores[i] for i in ids) / max(len(ids), 1)
            out[f"{name}_f1"] = sum(f1_scores[i] for i in ids) / max(len(ids), 1)
            out[f"{name}_count"] = len(ids)
    return out


def token_span_metrics(predicted: Sequence[tuple[int, int]], gold: Sequence[tuple[int, int]]) -> dict[str, float]:
    """The authors' QA metric (labelled ``paper_token_*``): spans as token indices (start, end inclusive);
    EM = both indices equal, F1 = overlap of the index ranges. Not comparable with the official EM/F1."""
    em = f1_sum = 0.0
    for (ps, pe), (gs, ge) in zip(predicted, gold):
        em += float(ps == gs and pe == ge)
        overlap = max(0, min(pe, ge) - max(ps, gs) + 1)
        if overlap:
            precision, recall = overlap / max(pe - ps + 1, 1), overlap / max(ge - gs + 1, 1)
            f1_sum += 2 * precision * recall / (precision + recall)
    n = max(len(gold), 1)
    return {"paper_token_exact_match": em / n, "paper_token_f1": f1_sum / n}
