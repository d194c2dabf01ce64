"""One tiny, fast run of each task family (classification, QA, seq2seq), for the tests that must hold in all.

``family_runs`` gives, per family, the TrainConfig options of a run that trains in seconds on 2 cores:
the synthetic keyword task with a tiny BERT, a SQuAD-format marker task with the same BERT, and a copy
task with a tiny BART; every family plugs the same tiny llama layer. ``cli_args`` turns such options into a
``pifi train`` command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seq2seq_fixtures import copy_rows, make_tiny_seq2seq
from train_fixtures import qa_rows, write_jsonl

FAMILIES = ("classification", "qa", "seq2seq")
FAST = {"epochs": 1, "batch_size": 16, "lr": 3e-3, "max_train_samples": 64, "max_eval_samples": 32}


@pytest.fixture(scope="session")
def family_runs(assets, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """family -> the options of a tiny run (``layer_artifact`` set: add ``method="base"`` and drop it)."""
    root = tmp_path_factory.mktemp("families")
    qa = {split: write_jsonl(root / f"qa-{split}.jsonl", qa_rows(n, seed=k))
          for k, (split, n) in enumerate([("train", 96), ("validation", 32), ("test", 32)])}
    s2s = {split: write_jsonl(root / f"s2s-{split}.jsonl", copy_rows(n, seed))
           for seed, (split, n) in enumerate([("train", 96), ("validation", 32), ("test", 32)])}
    bart = make_tiny_seq2seq("bart", root / "bart")
    common = {"layer_artifact": str(assets["artifact"]), **FAST}
    return {
        "classification": {"train_file": str(assets["train"]), "validation_file": str(assets["validation"]),
                           "test_file": str(assets["test"]), "slm": str(assets["bert"]), "max_length": 16, **common},
        "qa": {"task_type": "qa", "train_file": str(qa["train"]), "validation_file": str(qa["validation"]),
               "test_file": str(qa["test"]), "slm": str(assets["bert"]), "max_length": 48, "doc_stride": 16, **common},
        "seq2seq": {"task_type": "seq2seq", "train_file": str(s2s["train"]), "validation_file": str(s2s["validation"]),
                    "test_file": str(s2s["test"]), "source_column": "src", "target_column": "tgt", "slm": str(bart),
                    "max_length": 16, "max_target_length": 16, "num_beams": 1, "max_new_tokens": 8, **common},
    }


def options_for(family_runs: dict[str, dict[str, Any]], family: str, **changes: Any) -> dict[str, Any]:
    """A family's tiny-run options with ``changes`` (a value of None removes the option)."""
    options = {**family_runs[family], **changes}
    if options.get("method", "pifi") != "pifi" and "layer_artifact" not in changes:
        options.pop("layer_artifact", None)  # a base or LoRA run plugs no layer
    return {k: v for k, v in options.items() if v is not None}


def cli_args(options: dict[str, Any]) -> list[str]:
    """``pifi train`` arguments for TrainConfig options (lists repeat the flag; True booleans are flags)."""
    args = ["train"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        elif isinstance(value, list):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


def test_file_of(options: dict[str, Any]) -> Path:
    return Path(options["test_file"])
