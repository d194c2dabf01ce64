"""Generation metrics: sacreBLEU (corpus BLEU, chrF), ROUGE-1/2/L/Lsum (rouge-score, stemming), BLEU-avg.

``bleu_avg`` is the paper-compatible number (0..1): the mean of cumulative corpus BLEU-1..4 on
whitespace tokens, as nlg-eval reports Bleu_1..Bleu_4 (the paper's 0.5301 -> 0.5413 on Multi30K).
sacreBLEU's ``bleu`` (0..100, its 13a tokenizer) is the standard, comparable-across-papers number.
Both libraries are the optional extra ``pifi[generation]``.
"""

from __future__ import annotations

from statistics import fmean
from typing import Any, Sequence

from pifi_extract.errors import ConfigError


def require_generation() -> tuple[Any, Any]:
    try:
        import sacrebleu
        from rouge_score import rouge_scorer
    except ImportError as err:
        raise ConfigError(f"generation metrics need sacrebleu and rouge-score ({err.name} is missing)",
                          "pip install 'pifi[generation]'") from err
    return sacrebleu, rouge_scorer


def generation_metrics(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus metrics of hypotheses against one reference each (empty corpus: zeros)."""
    sacrebleu, rouge_scorer = require_generation()
    if len(hypotheses) != len(references):
        raise ConfigError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    hyps, refs = list(hypotheses), list(references)
    if not hyps:
        return {k: 0.0 for k in ("bleu", "chrf", "bleu_avg", "rouge1", "rouge2", "rougeL", "rougeLsum")}
    metrics = {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score, "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score}
    metrics["bleu_avg"] = fmean(
        sacrebleu.metrics.BLEU(max_ngram_order=n, tokenize="none", smooth_method="none").corpus_score(
            hyps, [refs]).score / 100 for n in (1, 2, 3, 4))
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    scores = [scorer.score(r, h) for h, r in zip(hyps, refs)]
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        metrics[key] = 100 * fmean(s[key].fmeasure for s in scores)
    return metrics


def bleu_of(rows: Sequence[dict[str, Any]], indices: Sequence[int]) -> float:
    """sacreBLEU of the per-example rows ``indices`` (predictions.jsonl) as one corpus, for the paired bootstrap."""
    sacrebleu, _ = require_generation()
    return float(sacrebleu.corpus_bleu([rows[i]["prediction"] for i in indices],
                                       [[rows[i]["reference"] for i in indices]]).score)
