"""The paper's tables as pifi commands (``pifi paper TABLE`` prints them; the README lists the same).

Each entry is the shell commands that reproduce one table of Kim et al., "PiFi" (ACL 2025) with
pifi's options: BERT-base and the last layer of Llama-3.1-8B unless the table varies them, 5 seeds
(2023…2027), the authors' splits (``--split-seed 2023``) and text cleaning (``--clean-text auto``).
Pure data, torch-free.
"""

from __future__ import annotations

from pifi_extract.errors import ConfigError

BERT = "google-bert/bert-base-uncased"
LLAMA = "meta-llama/Llama-3.1-8B:-1"
CLASSIFICATION = "sst2 imdb tweet_sentiment_binary tweet_offensive cola"
ALL_TASKS = f"{CLASSIFICATION} mnli snli"


def _pair(tasks: str, extra: str = "", runs: str = "runs/t1", slm: str = BERT) -> list[str]:
    """base and pifi over ``tasks`` (a shell loop), 5 seeds each."""
    return [
        f"for task in {tasks}; do",
        f"  pifi train --task $task --method base --slm {slm} --seeds 5 {extra}--output-dir {runs}/$task-base",
        f"  pifi train --task $task --slm {slm} --layer-artifact {LLAMA} --seeds 5 {extra}"
        f"--output-dir {runs}/$task-pifi",
        "done",
    ]


TABLES: dict[str, tuple[str, list[str]]] = {
    "1": ("main results: BERT-base ± the last Llama-3.1-8B layer on 7 tasks (also --slm microsoft/deberta-v3-base)",
          ["pifi extract --llm meta-llama/Llama-3.1-8B --layer -1", *_pair(ALL_TASKS),
           "pifi report runs/t1 --format md"]),
    "2": ("translation (Multi30K en->de, T5-base) and summarization (CNN/DailyMail, BART-base): base vs PiFi "
          "(needs pifi[datasets,generation])",
          ["pifi extract --llm meta-llama/Llama-3.1-8B --layer -1",
           "for method in base pifi; do",
           f"  pifi train --task multi30k --slm google-t5/t5-base --method $method --layer-artifact {LLAMA} "
           "--seeds 5 --output-dir runs/t2/multi30k-$method",
           f"  pifi train --task cnn_dailymail --slm facebook/bart-base --method $method --layer-artifact {LLAMA} "
           "--seeds 5 --output-dir runs/t2/cnndm-$method",
           "done", "pifi report runs/t2 --no-plot"]),
    "3": ("domain shift: train on IMDB, also test on the tweet sentiment test set",
          [f"pifi train --task imdb --method base --slm {BERT} --seeds 5 --extra-test tweet_sentiment_binary "
           "--output-dir runs/t3/imdb-base",
           f"pifi train --task imdb --slm {BERT} --layer-artifact {LLAMA} --seeds 5 "
           "--extra-test tweet_sentiment_binary --output-dir runs/t3/imdb-pifi",
           "pifi report runs/t3 --format md"]),
    "5": ("PiFi-Random (frozen random layer) and PiFi-Random-Full (random layer, trained) vs PiFi",
          [f"for task in {CLASSIFICATION}; do",
           f"  pifi train --task $task --slm {BERT} --layer-artifact {LLAMA} --seeds 5 --output-dir runs/t5/$task-pifi",
           f"  pifi train --task $task --slm {BERT} --layer-artifact {LLAMA} --layer-init random --seeds 5 "
           "--output-dir runs/t5/$task-random",
           f"  pifi train --task $task --slm {BERT} --layer-artifact {LLAMA} --layer-init random --train-layer "
           "--seeds 5 --output-dir runs/t5/$task-random-full",
           "done", "pifi report runs/t5 --format md"]),
    "7": ("the last layer of other LLMs (repeat per LLM: Mistral-7B-v0.1/v0.3, Qwen-7B, Gemma-2-9B, Falcon-7B)",
          ["pifi extract --llm mistralai/Mistral-7B-v0.3 --layer -1",
           f"pifi train --task sst2 --slm {BERT} --layer-artifact mistralai/Mistral-7B-v0.3:-1 --seeds 5 "
           "--output-dir runs/t7/sst2-mistral-v0.3",
           "pifi report runs/t7 runs/t1 --format md"]),
    "8": ("LLM size within one family: the last layer of Qwen2 0.5B, 1.5B, 7B",
          ["for size in 0.5B 1.5B 7B; do",
           "  pifi extract --llm Qwen/Qwen2-$size --layer -1",
           f"  pifi train --task sst2 --slm {BERT} --layer-artifact Qwen/Qwen2-$size:-1 --seeds 5 "
           "--output-dir runs/t8/sst2-qwen2-$size",
           "done", "pifi report runs/t8 --format md"]),
    "9": ("a decoder SLM: SmolLM2-135M, pooling token 0 as the authors did",
          _pair(CLASSIFICATION, "--pooling first ", "runs/t9", "HuggingFaceTB/SmolLM2-135M")
          + ["pifi report runs/t9 --format md"]),
    "11": ("a trainable (fully fine-tuned) LLM layer vs the frozen one",
           [f"for task in {CLASSIFICATION}; do",
            f"  pifi train --task $task --slm {BERT} --layer-artifact {LLAMA} --train-layer --seeds 5 "
            "--output-dir runs/t11/$task-full",
            "done", "pifi report runs/t11 runs/t1 --format md"]),
    "14": ("two layers of Llama-3.1-70B vs one",
           ["pifi extract --llm meta-llama/Llama-3.1-70B --layer -2 --layer -1",
            f"pifi train --task sst2 --slm {BERT} --layer-artifact meta-llama/Llama-3.1-70B:-1 --seeds 5 "
            "--output-dir runs/t14/sst2-one",
            f"pifi train --task sst2 --slm {BERT} --layer-artifact meta-llama/Llama-3.1-70B:-2 "
            "--layer-artifact meta-llama/Llama-3.1-70B:-1 --seeds 5 --output-dir runs/t14/sst2-two",
            "pifi report runs/t14 --format md"]),
    "18": ("LoRA (rank 8, alpha 16, dropout 0.1) on BERT-base vs PiFi (needs pifi[lora])",
           [f"for task in {CLASSIFICATION}; do",
            f"  pifi train --task $task --method lora --lora-r 8 --lora-alpha 16 --lora-dropout 0.1 --slm {BERT} "
            "--seeds 5 --output-dir runs/t18/$task-lora",
            "done", "pifi report runs/t18 runs/t1 --format md"]),
    "19": ("10 % of the training data (seeded, stratified)",
           _pair(CLASSIFICATION, "--train-fraction 0.1 ", "runs/t19") + ["pifi report runs/t19 --format md"]),
}


def table_names() -> list[str]:
    return sorted(TABLES, key=int)


def table_commands(name: str) -> tuple[str, list[str]]:
    """(what the table compares, the commands), or a ConfigError naming the tables pifi reproduces."""
    key = name.lower().removeprefix("table").strip()
    if key not in TABLES:
        raise ConfigError(f"unknown table {name!r}", f"pifi reproduces tables {', '.join(table_names())}")
    return TABLES[key]
