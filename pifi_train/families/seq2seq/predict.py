"""``pifi predict`` for seq2seq runs: generate with the run's own prefix and decoding options, so predictions
reproduce the run's ``predictions.jsonl``."""

from __future__ import annotations

from typing import Sequence

from ...run_record import LoadedRun
from .data import Pairs
from .trainer import Seq2SeqCollator, generate_texts


def generate(run: LoadedRun, texts: Sequence[str], batch_size: int = 32) -> list[str]:
    """One generated text per source text."""
    if not texts:
        return []
    max_length = run.family.max_length(run.options)
    collate = Seq2SeqCollator(Pairs(list(texts), [""] * len(texts)), run.tokenizer,
                              str(run.spec.get("source_prefix", "")), max_length, run.options.max_target_length)
    return generate_texts(run.model, collate, list(range(len(texts))), run.options, batch_size, run.ctx.device,
                          run.precision)
