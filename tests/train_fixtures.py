"""Tiny, offline building blocks for the training tests.

A word-level vocabulary written by the test, a tiny random BERT (hidden 32, 2 layers)
and a tiny random llama decoder SLM sharing that tokenizer, a tiny llama LLM (hidden 64)
whose last layer becomes a pifi artifact through ``extract_layer``, and a learnable
synthetic task: label 1 iff the keyword "good" occurs in the text (or in the second
text of a pair). Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import pytest
import torch

WORDS = [f"w{i}" for i in range(40)] + ["good", "bad", "movie", "plot"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
KEYWORD = "good"
FAST_OPTIONS = {"epochs": 3, "batch_size": 16, "lr": 3e-3, "max_length": 16, "dropout": 0.0}


def write_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(SPECIAL + WORDS) + "\n")
    return path


def tokenizer_for(folder: Path):
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab=str(write_vocab(folder)), do_lower_case=True)


def make_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A random BERT (hidden 32, 2 layers) with its tokenizer, saved as a loadable folder."""
    from transformers import BertConfig, BertModel

    tokenizer = tokenizer_for(folder)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_tiny_decoder_slm(folder: Path, seed: int = 0) -> Path:
    """A random llama (hidden 32, 2 layers) used as a decoder-only SLM, with the same word tokenizer."""
    from transformers import LlamaConfig, LlamaModel

    tokenizer = tokenizer_for(folder)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    torch.manual_seed(seed)
    LlamaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_tiny_artifact(folder: Path, hidden: int = 64, seed: int = 0) -> Path:
    """The last layer of a random tiny llama LLM (hidden 64), extracted into a pifi artifact."""
    from pifi_extract import extract_layer
    from tiny_models import make_tiny_model

    llm = make_tiny_model("llama", folder / "llm", num_layers=2, hidden=hidden, max_shard_size="10MB", seed=seed)
    return Path(extract_layer(str(llm), -1, folder / "layer.safetensors").path)


def synthetic_rows(n: int, seed: int, pair: bool = False, string_labels: bool = False) -> list[dict]:
    """Rows with ``text`` (and ``text2``) and ``label``: 1 iff KEYWORD is in the deciding text."""
    rng = random.Random(seed)
    fillers = [w for w in WORDS if w != KEYWORD]
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = [rng.choice(fillers) for _ in range(rng.randint(3, 8))]
        other = [rng.choice(fillers) for _ in range(rng.randint(3, 8))]
        decided = other if pair else words
        if positive:
            decided.insert(rng.randrange(len(decided) + 1), KEYWORD)
        elif pair and rng.random() < 0.5:  # the keyword in the first text must not decide a pair
            words.insert(rng.randrange(len(words) + 1), KEYWORD)
        label = int(positive)
        row = {"text": " ".join(words), "label": ("pos" if label else "neg") if string_labels else label}
        if pair:
            row["text2"] = " ".join(other)
        rows.append(row)
    rng.shuffle(rows)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    import csv

    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_task(folder: Path, n_train: int = 320, n_eval: int = 96, seed: int = 0, **kw) -> dict[str, Path]:
    """train/validation/test JSONL files of the synthetic task."""
    folder.mkdir(parents=True, exist_ok=True)
    return {split: write_jsonl(folder / f"{split}.jsonl", synthetic_rows(n, seed + k, **kw))
            for k, (split, n) in enumerate([("train", n_train), ("validation", n_eval), ("test", n_eval)])}


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> dict[str, Path]:
    """Tiny BERT, tiny decoder SLM, tiny artifact and the synthetic task files (built once per session)."""
    root = tmp_path_factory.mktemp("train_assets")
    files = write_task(root / "task")
    return {"bert": make_tiny_bert(root / "bert"), "decoder": make_tiny_decoder_slm(root / "decoder"),
            "artifact": make_tiny_artifact(root / "artifact"), **files}


@pytest.fixture(scope="session")
def second_artifact(tmp_path_factory) -> Path:
    """The last layer of another tiny llama LLM (hidden 64, other weights): the second of a stack."""
    return make_tiny_artifact(tmp_path_factory.mktemp("second_artifact"), seed=1)


@contextlib.contextmanager
def offline_single_thread():
    """Offline Hub (no test may reach it) and one torch thread: tiny models on shared cores run
    several times faster without thread contention."""
    import huggingface_hub.constants

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setenv("HF_HUB_OFFLINE", "1")
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


@pytest.fixture
def train_env():
    with offline_single_thread():
        yield


QA_MARKER = "good"


def qa_rows(n: int, seed: int, length: tuple[int, int] = (4, 10), answer_words: int = 1,
            answer_at: int | None = None) -> list[dict]:
    """SQuAD-format rows (id, question, context, answers): the answer is the span after QA_MARKER."""
    rng = random.Random(seed)
    fillers = [w for w in WORDS if w not in (QA_MARKER, "movie", "plot")]
    rows = []
    for i in range(n):
        words = [rng.choice(fillers) for _ in range(rng.randint(*length))]
        where = rng.randrange(len(words) - answer_words + 1) if answer_at is None else answer_at
        words.insert(where, QA_MARKER)
        answer = " ".join(words[where + 1:where + 1 + answer_words])
        context = " ".join(words)
        start = len(" ".join(words[:where + 1])) + 1
        assert context[start:start + len(answer)] == answer
        rows.append({"id": f"q{seed}-{i}", "question": "movie plot", "context": context,
                     "answers": {"text": [answer], "answer_start": [start]}})
    return rows
