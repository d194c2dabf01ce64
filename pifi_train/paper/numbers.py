"""The paper's own numbers (``numbers.csv``, typed in once) and how pifi's metrics map onto them.

Each row of ``numbers.csv`` is one number: the table, the SLM, the paper's row label, the training task (the
paper's column), the test set when it is another one (Table 3), the layer (figures), the metric, the value as
the paper prints it (``printed`` when the paper prints something else, e.g. a typo), and ``source`` when it
does not come from the paper's text (Figure 3: the authors' logs). Torch-free.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class PaperMetric:
    """A metric as the paper reports it, and the pifi metric keys (first found wins) times ``factor``."""

    label: str
    keys: dict[str, tuple[str, ...]]  # family -> pifi metric keys, the paper-compatible one first
    factor: float = 1.0  # pifi's stored value × factor = the paper's unit
    digits: int = 4


METRICS: dict[str, PaperMetric] = {
    "accuracy": PaperMetric("accuracy", {"classification": ("accuracy",)}, 100.0, 2),
    # the paper's F1 is the authors' per-batch macro-F1 (paper_macro_f1, when pifi has it), else dataset-level
    "f1": PaperMetric("F1", {"classification": ("paper_macro_f1", "macro_f1"), "qa": ("paper_token_f1", "f1")}),
    "em": PaperMetric("EM", {"qa": ("paper_token_exact_match", "exact_match")}, 100.0, 2),
    "bleu": PaperMetric("BLEU", {"seq2seq": ("bleu_avg",)}),
    "rouge": PaperMetric("ROUGE", {"seq2seq": ("rougeL",)}, 0.01),  # pifi's ROUGE is 0..100
    # Table 2's other columns (asked for by the Table's arms: --meteor, --bertscore-model, --bartscore-model)
    "meteor": PaperMetric("METEOR", {"seq2seq": ("meteor",)}),
    "bertscore": PaperMetric("BERTScore", {"seq2seq": ("bertscore_f1", "bertscore")}),
    "bartscore": PaperMetric("BARTScore", {"seq2seq": ("bartscore",)}, digits=3),
    # cost tables (no run metric)
    "gflops": PaperMetric("GFLOPs", {}, digits=2),
    "memory_gb": PaperMetric("GPU memory (GB)", {}, digits=2),
    "params_slm_m": PaperMetric("SLM params (M)", {}, digits=3),
    "params_layer_m": PaperMetric("L_LLM params (M)", {}, digits=3),
    "params_l_in_m": PaperMetric("L_in params (M)", {}, digits=3),
    "params_l_out_m": PaperMetric("L_out params (M)", {}, digits=3),
    "params_head_m": PaperMetric("head params (M)", {}, digits=3),
}


@dataclass(frozen=True)
class PaperNumber:
    table: str
    slm: str
    row: str
    task: str
    test: str  # "" = the training task's own test set
    layer: str
    metric: str
    value: str  # as printed (kept as text: "85.1" and "85.10" are both the paper's)
    printed: str
    source: str

    @property
    def number(self) -> float:
        return float(self.value)


@lru_cache(maxsize=1)
def paper_numbers() -> tuple[PaperNumber, ...]:
    """Every row of numbers.csv (read once)."""
    text = resources.files(__package__).joinpath("numbers.csv").read_text(encoding="utf-8")
    return tuple(PaperNumber(**row) for row in csv.DictReader(text.splitlines()))


@lru_cache(maxsize=None)
def _index() -> dict[tuple[str, ...], PaperNumber]:
    return {(n.table, n.slm, n.row, n.task, n.test or n.task, n.layer, n.metric): n for n in paper_numbers()}


def paper_value(table: str, slm: str, row: str, task: str, metric: str, test: str | None = None,
                layer: int | None = None) -> PaperNumber | None:
    """The paper's number for one cell, or None when the paper gives none."""
    key = (table, slm, row, task, test or task, "" if layer is None else str(layer), metric)
    return _index().get(key)
