"""``pifi predict --question Q --context C`` for a QA run: reload it and answer (same windows and n-best
as its evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError

from ..predict import LoadedRun, load_run
from .data import Answer, QaExample, best_answers
from .model import PifiSpanModel
from .runner import span_logits, windows


def load_qa_run(run_dir: str | Path, device: str = "auto", layer_artifact: str | Sequence[str] | None = None
                ) -> LoadedRun:
    """A finished QA run's span model (best epoch's tensors, the frozen layer from its artifact)."""
    return load_run(run_dir, device, layer_artifact,
                    make_model=lambda slm, labels, options, frozen: PifiSpanModel(slm, options.model_options(),
                                                                                    frozen))


def answer(run: LoadedRun, questions: Sequence[str], contexts: Sequence[str], batch_size: int = 64
           ) -> list[Answer]:
    """The answer span of each (question, context); "" for v2 runs that judge it unanswerable."""
    if len(questions) != len(contexts):
        raise ConfigError(f"{len(questions)} questions but {len(contexts)} contexts",
                          "pass one --context per --question")
    if not questions:
        return []
    examples = [QaExample(str(i), q, c, [], []) for i, (q, c) in enumerate(zip(questions, contexts))]
    v2 = bool(run.record.get("data", {}).get("v2"))
    features = windows(examples, run.tokenizer, run.options)
    starts, ends = span_logits(run.model, features, run.tokenizer, v2, batch_size, run.ctx, run.precision)
    options: Any = run.options
    return best_answers(examples, features, starts, ends, options.n_best, options.max_answer_length, v2,
                        options.null_score_threshold)
