"""SQuAD metrics exactly as the official scripts compute them: v1.1 rules for v1.1 data, v2.0 rules for v2 data;
and the paper's token-span EM/F1.

Both scripts normalise answers the same way (lower case, no punctuation, no articles a/an/the, single
spaces) and score a prediction by its maximum over the gold answers. They differ where an answer
normalises to '' and where a prediction is missing:

- v1.1 (``evaluate-v1.1.py``): F1 is 0 whenever no token is shared, even when both sides normalise to ''
  (``f1('The', 'a') == 0`` while EM is 1); a missing prediction scores 0 and counts in the total.
- v2.0 (``evaluate-v2.0.py``): gold answers that normalise to '' are dropped, and a question left with none
  has the single gold ''; F1 is 1 when both sides are empty, 0 when one is; a missing prediction is left out of
  the total. HasAns / NoAns split the questions by whether the data lists an answer.

tests/test_qa_metrics.py checks both against the official scripts' own outputs on crafted cases.
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


def f1(prediction: str, gold: str, v2: bool = False) -> float:
    """Token-overlap F1 of the normalised strings; an empty side: v2.0 1 if both are empty, v1.1 always 0."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if v2 and (not pred or not ref):
        return float(pred == ref)
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def scored_golds(golds: Sequence[str], v2: bool) -> list[str]:
    """The gold answers a prediction is scored against (v2.0: those that normalise to '' dropped; none: [''])."""
    if not v2:
        return list(golds) or [""]
    return [g for g in golds if normalize_answer(g)] or [""]


def example_scores(prediction: str, golds: Sequence[str], v2: bool = False) -> tuple[float, float]:
    """(EM, F1) of one prediction: the maximum over its gold answers, by the rules of the data's version."""
    candidates = scored_golds(golds, v2)
    return (max(exact_match(prediction, g) for g in candidates),
            max(f1(prediction, g, v2) for g in candidates))


def squad_metrics(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]], v2: bool = False
                  ) -> dict[str, float]:
    """``exact_match`` and ``f1`` (fractions in [0, 1]) over ``golds``' ids, by the official script of the data's
    version (a missing prediction: v1.1 0 and counted, v2.0 left out); v2 adds ``has_ans_*`` / ``no_ans_*``."""
    scores = {qid: example_scores(predictions[qid], g, v2) for qid, g in golds.items() if qid in predictions}
    total = len(scores) if v2 else len(golds)
    n = max(total, 1)
    out = {"exact_match": sum(em for em, _ in scores.values()) / n, "f1": sum(f for _, f in scores.values()) / n,
           "count": total}
    if v2:
        has = [qid for qid in scores if golds[qid]]
        no = [qid for qid in scores if not golds[qid]]
        for name, ids in (("has_ans", has), ("no_ans", no)):
            if ids:
                out[f"{name}_exact_match"] = sum(scores[i][0] for i in ids) / len(ids)
                out[f"{name}_f1"] = sum(scores[i][1] for i in ids) / len(ids)
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
