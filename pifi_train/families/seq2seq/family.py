"""Sequence-to-sequence (T5, BART...: translation and summarization, the paper's Table 2): the plug is
installed as the model's encoder; sacreBLEU, chrF, ROUGE, and the paper's BLEU-avg."""

from __future__ import annotations

from ...options import SEQ2SEQ as NAME
from ..spec import Family, FamilyRuntime, Metric, MetricsSpec, at_least_one
from .data import TASKS
from .metrics import bleu_of


def _runtime() -> FamilyRuntime:
    from . import runtime  # torch: imported when a run starts, not for `pifi --help`

    return runtime


SEQ2SEQ = Family(
    name=NAME,
    summary="translation and summarization with an encoder-decoder SLM",
    tasks=tuple(TASKS),
    metrics=MetricsSpec(headline=(Metric("bleu", "BLEU", percent=False), Metric("chrf", "chrF", percent=False),
                                  Metric("rouge1", "ROUGE-1", percent=False), Metric("rouge2", "ROUGE-2", percent=False),
                                  Metric("rougeL", "ROUGE-L", percent=False)),
                        primary="bleu", select_default="loss",  # the authors pick the epoch by validation loss
                        variants=(Metric("bleu_avg", "BLEU-avg (paper)", percent=False, paper=True),),
                        corpus_score=bleu_of),
    plugs=("sequence",),  # every encoder state goes through the layer
    default_max_length=lambda config: 100,
    runtime=_runtime,
    check=lambda config: at_least_one(config, ("max_target_length", "num_beams", "max_new_tokens")),
)
