"""``pifi predict`` for seq2seq runs: rebuild the model from a run directory and generate.

The SLM config, tokenizer and trainable tensors come from ``checkpoint/``; the frozen layer
from the artifact recorded in config.json (sha256 checked). Decoding uses the run's own
``generate`` options, so predictions reproduce the run's ``predictions.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError

from .. import checkpoint as ckpt
from .. import run_files
from .. import distributed as dist
from ..config import Precision, TrainConfig, resolve_precision
from ..layer_ref import load_frozen_layers
from ..predict import _layers_for
from .data import Pairs, Seq2SeqCollator
from .model import Seq2SeqPifi, load_seq2seq_slm
from .trainer import generate_texts


@dataclass
class LoadedSeq2SeqRun:
    run_dir: Path
    record: dict[str, Any]
    options: TrainConfig
    model: Seq2SeqPifi
    tokenizer: Any
    prefix: str
    ctx: dist.DistContext
    precision: Precision


def load_seq2seq_run(run_dir: str | Path, device: str = "auto",
                     layer_artifact: str | Sequence[str] | None = None) -> LoadedSeq2SeqRun:
    """The best epoch of a finished seq2seq run, ready to generate."""
    from transformers import AutoConfig

    from ..slm import load_tokenizer

    run_dir = Path(run_dir)
    if (run_dir / run_files.SWEEP).is_file():
        seeds = ", ".join(run_files.read_json(run_dir / run_files.SWEEP).get("runs", []))
        raise ConfigError(f"{run_dir} holds several seeds", f"pass one of its run directories: {seeds}")
    record = run_files.read_json(run_dir / run_files.CONFIG)
    options = TrainConfig.from_dict(record["options"])
    ctx = dist.DistContext(device=dist.resolve_device(device))
    precision = resolve_precision("auto", ctx.device)
    folder = str(run_dir / run_files.CHECKPOINT_DIR)
    seq2seq = load_seq2seq_slm(folder, AutoConfig.from_pretrained(folder), pretrained=False)
    frozen = None
    if options.method == "pifi":
        frozen = load_frozen_layers(_layers_for(record, layer_artifact), ctx.device, precision.layer_dtype)
    model = Seq2SeqPifi(seq2seq, frozen, options.method, options.attention, options.post_norm)
    ckpt.load_into(model, ckpt.load_tensors(run_dir / run_files.CHECKPOINT_DIR / run_files.WEIGHTS))
    model.to(ctx.device).eval()
    return LoadedSeq2SeqRun(run_dir, record, options, model, load_tokenizer(folder),
                            str(record.get("source_prefix", "")), ctx, precision)


def generate(run: LoadedSeq2SeqRun, texts: Sequence[str], batch_size: int = 32) -> list[str]:
    """One generated text per source text (the run's prefix and decoding options)."""
    if not texts:
        return []
    collate = Seq2SeqCollator(Pairs(list(texts), [""] * len(texts)), run.tokenizer, run.prefix,
                              run.options.max_length, run.options.max_target_length)
    return generate_texts(run.model, collate, list(range(len(texts))), run.options, batch_size, run.ctx.device,
                          run.precision)
