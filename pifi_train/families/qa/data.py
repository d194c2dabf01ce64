"""SQuAD data: examples from SQuAD JSON / JSONL files or the Hub, context windows, answer spans back from logits.

An example is (id, question, context, gold answers with character starts). :func:`featurize` tokenizes
question + context with the SLM's fast tokenizer (truncation of the context only, overflowing windows with
``doc_stride`` tokens of overlap, offset mapping); each window knows which tokens are context and the gold
span's token positions (CLS = 0 when the answer is not inside the window, or there is none).
:func:`best_answers` turns start/end logits into each example's answer (n-best spans inside the context,
at most ``max_answer_length`` tokens, v2's no-answer score against a threshold).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError, SourceNotFoundError

QA_TASKS = ("squad", "squad_v2")
PROTOCOLS = ("standard", "paper")
STANDARD_MAX_LENGTH, PAPER_MAX_LENGTH = 384, 100  # the standard protocol's windows; the authors' truncation


def default_max_length(config: Any) -> int:
    """384 tokens under the standard protocol (stride windows), 100 under --protocol paper."""
    return PAPER_MAX_LENGTH if config.protocol == "paper" else STANDARD_MAX_LENGTH


def max_length_of(config: Any) -> int:
    """The run's window length: --max-length, else the protocol's."""
    return config.max_length if config.max_length is not None else default_max_length(config)


@dataclass
class QaExample:
    id: str
    question: str
    context: str
    answers: list[str]  # gold texts ([] = unanswerable)
    starts: list[int]  # their character offsets in the context


@dataclass
class QaTaskData:
    """A QA task: three example lists (test optional); ``v2`` when unanswerable questions occur."""

    name: str
    train: list[QaExample]
    validation: list[QaExample]
    test: list[QaExample] | None
    v2: bool = False
    source: dict[str, Any] = field(default_factory=dict)
    extra_tests: dict[str, list[QaExample]] = field(default_factory=dict)  # --extra-test name -> examples


def _answers(raw: Any) -> tuple[list[str], list[int]]:
    """HF format {text: [...], answer_start: [...]} or the official [{text, answer_start}, ...]."""
    if isinstance(raw, dict):
        return [str(t) for t in raw.get("text", [])], [int(s) for s in raw.get("answer_start", [])]
    return [str(a["text"]) for a in raw or []], [int(a["answer_start"]) for a in raw or []]


def example_from_row(row: dict[str, Any], number: int) -> QaExample:
    texts, starts = _answers(row.get("answers", []))
    if row.get("is_impossible"):
        texts, starts = [], []
    return QaExample(str(row.get("id", number)), str(row["question"]), str(row["context"]), texts, starts)


def read_squad(path: str | Path) -> list[QaExample]:
    """The official nested SQuAD JSON ({"data": [{"paragraphs": [{"context", "qas"}]}]}) or JSONL rows with
    id / question / context / answers."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"data file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text (byte {err.start})", "re-save it as UTF-8") from None
    try:
        whole = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError):
        whole = None
    rows: list[dict[str, Any]] = []
    try:
        if isinstance(whole, dict) and "data" in whole:
            for article in whole["data"]:
                for paragraph in article["paragraphs"]:
                    rows += [{**qa, "context": paragraph["context"]} for qa in paragraph["qas"]]
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        examples = [example_from_row(row, i) for i, row in enumerate(rows)]
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is neither SQuAD JSON nor JSONL: {err.msg}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be SQuAD data") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"{path}: not SQuAD data (a row or paragraph lacks question/context/answers/qas: {err})",
                          "QA data is the official SQuAD JSON, or JSONL rows with id, question, context and "
                          "answers {text, answer_start}") from None
    if not examples:
        raise ConfigError(f"{path} holds no questions")
    return examples


PAPER_HOLDOUT = 10570  # the authors' split: the last 10,570 training rows (the size of the dev set)


def split_builtin(train: list[QaExample], dev: list[QaExample], protocol: str
                  ) -> tuple[list[QaExample], list[QaExample], list[QaExample]]:
    """(train, validation, test). Both protocols train on train[:-10570]; ``standard`` selects the epoch on
    the held-out last 10,570 rows and tests on the official dev set, ``paper`` (the authors) the reverse."""
    cut = len(train) - PAPER_HOLDOUT
    if cut < 1:
        raise ConfigError(f"the training split has {len(train)} rows; the protocol holds out the last {PAPER_HOLDOUT}")
    held = train[cut:]
    return (train[:cut], dev, held) if protocol == "paper" else (train[:cut], held, dev)


def load_hub_squad(task: str) -> tuple[list[QaExample], list[QaExample]]:
    """(train, validation) of rajpurkar/squad or rajpurkar/squad_v2 through the optional ``datasets``."""
    try:
        import datasets
    except ImportError as err:
        raise ConfigError(f"--task {task} needs the optional 'datasets' library",
                          "pip install 'pifi[datasets]', or pass SQuAD files with --task-type qa --train-file") from err
    try:
        loaded: Any = datasets.load_dataset(f"rajpurkar/{task}")
    except Exception as err:  # datasets raises many types
        raise ConfigError(f"could not load rajpurkar/{task}: {str(err).splitlines()[0][:200]}",
                          "check the network or the datasets cache, or pass local SQuAD files") from err
    return ([example_from_row(r, i) for i, r in enumerate(loaded["train"])],
            [example_from_row(r, i) for i, r in enumerate(loaded["validation"])])


# ---- windows -----------------------------------------------------------------------------------


@dataclass
class QaFeatures:
    """Tokenized context windows (unpadded lists); ``example`` = the index of each window's example."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    context_mask: list[list[int]]  # 1 where the token is context (a possible answer)
    offsets: list[list[tuple[int, int] | None]]  # character span of context tokens, None elsewhere
    starts: list[int]
    ends: list[int]
    example: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def featurize(examples: Sequence[QaExample], tokenizer: Any, max_length: int, doc_stride: int,
              overflow: bool = True, cut_answers: str = "cls") -> QaFeatures:
    """Question + context windows (``overflow=False``: one window per example, the paper's protocol). An answer
    the window holds only in part is labelled CLS (``cut_answers="cls"``) or from its start to the window's
    last context token (``"truncate"``)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("QA needs a fast tokenizer (offset mapping)", "use an SLM with a tokenizer.json")
    right = tokenizer.padding_side == "right"
    enc = tokenizer([e.question.lstrip() for e in examples], [e.context for e in examples],
                    truncation="only_second" if right else "only_first", max_length=max_length,
                    stride=doc_stride if overflow else 0, return_overflowing_tokens=overflow,
                    return_offsets_mapping=True, padding=False)
    mapping = enc["overflow_to_sample_mapping"] if overflow else list(range(len(examples)))
    feats = QaFeatures([], [] if "token_type_ids" in enc else None, [], [], [], [], [])
    for i, ids in enumerate(enc["input_ids"]):
        example = examples[mapping[i]]
        sequence = enc.sequence_ids(i)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], sequence)]
        start = end = 0
        if example.answers:
            first = example.starts[0]
            last = first + len(example.answers[0])
            inside = [t for t, o in enumerate(offsets) if o is not None]
            if inside and offsets[inside[0]][0] <= first and offsets[inside[-1]][1] >= last:
                start = next(t for t in inside if offsets[t][1] > first)
                end = next(t for t in reversed(inside) if offsets[t][0] < last)
            elif cut_answers == "truncate" and inside and offsets[inside[0]][0] <= first < offsets[inside[-1]][1]:
                start, end = next(t for t in inside if offsets[t][1] > first), inside[-1]
        feats.input_ids.append(list(ids))
        if feats.token_type_ids is not None:
            feats.token_type_ids.append(list(enc["token_type_ids"][i]))
        feats.context_mask.append([int(o is not None) for o in offsets])
        feats.offsets.append(offsets)
        feats.starts.append(start)
        feats.ends.append(end)
        feats.example.append(mapping[i])
    return feats


class QaCollator:
    """Window indices -> padded tensors: input_ids, attention_mask, (token_type_ids), answer_mask,
    start/end positions, index. ``answer_mask``: the context tokens, plus CLS (0) for v2's no-answer."""

    def __init__(self, features: QaFeatures, pad_id: int, allow_null: bool, slm_inputs: set[str]) -> None:
        self.features, self.pad_id, self.allow_null = features, pad_id, allow_null
        self.token_types = features.token_type_ids is not None and "token_type_ids" in slm_inputs

    def __call__(self, indices: Sequence[int]) -> dict[str, Any]:
        import torch

        f = self.features
        width = max(len(f.input_ids[i]) for i in indices)
        pad = lambda row, value: row + [value] * (width - len(row))  # noqa: E731
        answer = [pad(f.context_mask[i], 0) for i in indices]
        if self.allow_null:
            for row in answer:
                row[0] = 1
        batch = {
            "input_ids": torch.tensor([pad(f.input_ids[i], self.pad_id) for i in indices]),  # (B, T)
            "attention_mask": torch.tensor([pad([1] * len(f.input_ids[i]), 0) for i in indices]),  # (B, T)
            "answer_mask": torch.tensor(answer, dtype=torch.bool),  # (B, T)
            "start_positions": torch.tensor([f.starts[i] for i in indices]),  # (B,)
            "end_positions": torch.tensor([f.ends[i] for i in indices]),  # (B,)
            "index": torch.tensor(list(indices)),  # (B,)
        }
        if self.token_types:
            batch["token_type_ids"] = torch.tensor([pad(f.token_type_ids[i], 0) for i in indices])  # (B, T)
        return batch


# ---- answers from logits -----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    text: str
    score: float
    window: int  # the feature index the span came from (-1: no answer)
    start: int  # token positions in that window
    end: int


def best_answers(examples: Sequence[QaExample], features: QaFeatures, start_logits: Sequence[Sequence[float]],
                 end_logits: Sequence[Sequence[float]], n_best: int, max_answer_length: int,
                 v2: bool = False, null_threshold: float = 0.0) -> list[Answer]:
    """Each example's answer: the best-scoring (start + end) context span over its windows among the
    ``n_best`` starts and ends of each, at most ``max_answer_length`` tokens; for v2 "" when the lowest
    no-answer score (CLS start + end) beats the best span by more than ``null_threshold``. When no window
    offers a valid span at all (v1.1 too), the answer is "" — scored as no answer — where transformers' run_qa
    post-processing writes the word "empty" (which a gold answer "empty" would match)."""
    windows: dict[int, list[int]] = {}
    for w, e in enumerate(features.example):
        windows.setdefault(e, []).append(w)
    answers = []
    for e, example in enumerate(examples):
        best: Answer | None = None
        null = float("inf")
        for w in windows.get(e, []):
            s_log, e_log, offsets = start_logits[w], end_logits[w], features.offsets[w]
            length = len(offsets)
            null = min(null, float(s_log[0]) + float(e_log[0]))
            top_s = sorted(range(length), key=lambda t: -s_log[t])[:n_best]
            top_e = sorted(range(length), key=lambda t: -e_log[t])[:n_best]
            for s in top_s:
                for t in top_e:
                    if offsets[s] is None or offsets[t] is None or t < s or t - s + 1 > max_answer_length:
                        continue
                    score = float(s_log[s]) + float(e_log[t])
                    if best is None or score > best.score:
                        best = Answer(example.context[offsets[s][0]:offsets[t][1]], score, w, s, t)
        if best is None or (v2 and null - best.score > null_threshold):
            best = Answer("", null if null != float("inf") else 0.0, -1, 0, 0)
        answers.append(best)
    return answers
