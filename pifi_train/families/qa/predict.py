"""``pifi predict --question Q --context C`` for a QA run: answer with the same windows and n-best as its
evaluation."""

from __future__ import annotations

from typing import Sequence

from pifi_extract.errors import ConfigError

from ...run_record import LoadedRun
from .data import Answer, QaExample, best_answers
from .trainer import span_logits, windows


def answer(run: LoadedRun, questions: Sequence[str], contexts: Sequence[str], batch_size: int = 64) -> list[Answer]:
    """The answer span of each (question, context); "" for v2 runs that judge it unanswerable."""
    if len(questions) != len(contexts):
        raise ConfigError(f"{len(questions)} questions but {len(contexts)} contexts",
                          "pass one --context per --question")
    if not questions:
        return []
    examples = [QaExample(str(i), q, c, [], []) for i, (q, c) in enumerate(zip(questions, contexts))]
    v2 = bool(run.spec.get("v2"))
    features = windows(examples, run.tokenizer, run.options)
    starts, ends = span_logits(run.model, features, run.tokenizer, v2, batch_size, run.ctx, run.precision)
    options = run.options
    return best_answers(examples, features, starts, ends, options.n_best, options.max_answer_length, v2,
                        options.null_score_threshold)
