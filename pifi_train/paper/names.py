"""The paper's names for models and data sets, as data: what each one is on the Hub and in pifi.

Every SLM, LLM and task of Kim et al., "PiFi" (ACL 2025) under the name its tables use, with the Hub id
the authors' code loads (github.com/khyun8072/PiFi) and a ``kind``. The kind says what a local stand-in
must be (``--stand-in KIND=PATH`` maps every name of that kind at once):

- ``encoder`` / ``decoder`` / ``seq2seq``: small LMs (a model folder);
- ``llm``: LLMs a layer is extracted from (a model folder, or a Hub id);
- ``classification`` / ``pair`` / ``qa`` / ``generation``: tasks (a folder with ``train.*``, ``validation.*`` and
  ``test.*`` files: columns ``text``, ``label`` (pair tasks also ``text_pair``); QA: SQuAD JSON/JSONL; generation:
  ``source``, ``target``).

Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from pifi_extract.errors import ConfigError

MODEL_KINDS = ("encoder", "decoder", "seq2seq", "llm")
TASK_KINDS = ("classification", "pair", "qa", "generation")
FAMILY_OF_KIND = {"classification": "classification", "pair": "classification", "qa": "qa",
                  "generation": "seq2seq"}


@dataclass(frozen=True)
class Model:
    """A small LM or an LLM as the paper names it."""

    name: str  # the paper's name ("BERT-base", "Llama-3.1-8B")
    hub_id: str
    kind: str  # encoder | decoder | seq2seq | llm
    num_layers: int | None = None  # LLMs: decoder layers (Figure 2 sweeps positions 1, 4, ..., 32 that exist)


@dataclass(frozen=True)
class Task:
    """A data set as the paper's column names it, and the pifi task that loads it."""

    label: str  # the paper's column ("SST-2", "Tweet (Sentiment)")
    task: str  # the pifi task name (``--task``); also the run folder's name
    kind: str  # classification | pair | qa | generation
    options: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig fields the paper's protocol needs


MODELS: dict[str, Model] = {m.name: m for m in [
    Model("BERT-base", "google-bert/bert-base-uncased", "encoder"),
    Model("BERT-large", "google-bert/bert-large-uncased", "encoder"),
    Model("RoBERTa-base", "FacebookAI/roberta-base", "encoder"),
    Model("ELECTRA-base", "google/electra-base-discriminator", "encoder"),
    Model("DeBERTa-base", "microsoft/deberta-base", "encoder"),
    Model("DeBERTa-V3-base", "microsoft/deberta-v3-base", "encoder"),
    Model("mBERT-base", "google-bert/bert-base-multilingual-cased", "encoder"),
    Model("SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M", "decoder"),
    Model("T5-base", "google-t5/t5-base", "seq2seq"),
    Model("BART-base", "facebook/bart-base", "seq2seq"),
    Model("Llama-3.1-8B", "meta-llama/Llama-3.1-8B", "llm", 32),
    Model("Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "llm", 32),
    Model("Llama-3.1-70B", "meta-llama/Llama-3.1-70B", "llm", 80),
    Model("Llama-3-8B", "meta-llama/Meta-Llama-3-8B", "llm", 32),  # Table 4's "English"
    Model("Llama-3-8B Korean", "beomi/Llama-3-Open-Ko-8B", "llm", 32),  # the paper's "Lee, 2024"
    Model("Llama-3-8B German", "DiscoResearch/Llama3-German-8B", "llm", 32),
    Model("Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1", "llm", 32),
    Model("Mistral-7B-v0.3", "mistralai/Mistral-7B-v0.3", "llm", 32),
    Model("Qwen2-0.5B", "Qwen/Qwen2-0.5B", "llm", 24),
    Model("Qwen2-1.5B", "Qwen/Qwen2-1.5B", "llm", 28),
    Model("Qwen2-7B", "Qwen/Qwen2-7B", "llm", 28),
    Model("Qwen2.5-7B", "Qwen/Qwen2.5-7B", "llm", 28),
    Model("Qwen2.5-32B", "Qwen/Qwen2.5-32B", "llm", 64),
    Model("Qwen2.5-72B", "Qwen/Qwen2.5-72B", "llm", 80),
    Model("Gemma-2-9B", "google/gemma-2-9b", "llm", 42),
    Model("Falcon-7B", "tiiuae/falcon-7b", "llm", 32),
]}

TASKS: dict[str, Task] = {t.label: t for t in [
    Task("SST-2", "sst2", "classification"),
    Task("IMDB", "imdb", "classification"),
    Task("Tweet (Sentiment)", "tweet_sentiment_binary", "classification"),
    Task("Tweet (Offensive)", "tweet_offensive", "classification"),
    Task("CoLA", "cola", "classification"),
    Task("MNLI", "mnli", "pair"),
    Task("SNLI", "snli", "pair"),
    # the paper's SQuAD numbers are the authors' split, 100 tokens and their token-span EM/F1
    Task("SQuAD", "squad", "qa", {"protocol": "paper"}),
    Task("Multi30K", "multi30k", "generation"),
    Task("CNN/Daily Mail", "cnn_dailymail", "generation"),
    # Tables 3 and 4
    Task("CR", "cr", "classification"),
    Task("NSMC (Korean)", "nsmc", "classification"),
    Task("Filmstarts (German)", "filmstarts", "classification"),
]}

FIVE_TASKS = ("SST-2", "IMDB", "Tweet (Sentiment)", "Tweet (Offensive)", "CoLA")  # most ablation tables
NLU_TASKS = (*FIVE_TASKS, "MNLI", "SNLI", "SQuAD")  # Table 1


def model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r} in the paper's tables", f"known: {', '.join(MODELS)}") from None


def task(label: str) -> Task:
    try:
        return TASKS[label]
    except KeyError:
        raise ConfigError(f"unknown task {label!r} in the paper's tables", f"known: {', '.join(TASKS)}") from None


def slug(name: str) -> str:
    """A folder name for a paper name: lower case, spaces and slashes as dashes."""
    return "-".join(name.lower().replace("/", " ").split())
