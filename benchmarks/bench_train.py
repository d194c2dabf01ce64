"""Cost of PiFi over the base model: training-step time and peak memory.

A random BERT-small-sized SLM (hidden 512, 4 layers) and the last layer of a random
llama-shaped LLM (hidden 1024), built through a real pifi artifact, are trained with
pifi's own model, optimizer, loss, clipping and precision rules on a fixed batch
(32 x 100 tokens, the paper's batch and length). Configurations: ``base``,
``pifi-cls`` (the paper's plug), ``pifi-sequence`` (every token through the layer).

Step times are measured in one process, interleaving the configurations round by
round so a busy machine slows all of them alike; the median is reported. Peak
memory is measured in a fresh child process per configuration (peak RSS; on CUDA
also ``torch.cuda.max_memory_allocated``). ``--preset paper`` uses BERT-base
(768, 12 layers) and a Llama-3.1-8B-shaped layer (4096, MLP 14336, 32/8 heads).

    python benchmarks/bench_train.py                      # CPU, defaults above
    python benchmarks/bench_train.py --device cuda --preset paper --output bench_gpu.json
    python benchmarks/bench_train.py --task qa --seq-len 384     # extractive QA: span head, every token

``--task qa`` times pifi's span model (:mod:`pifi_train.families.qa`): ``base`` and ``pifi-qa`` (every token through
the layer, start/end logits, the span loss) on the same kind of fixed batch.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {"base": {"method": "base"}, "pifi-cls": {"method": "pifi", "plug": "cls"},
           "pifi-sequence": {"method": "pifi", "plug": "sequence"}}
QA_CONFIGS = {"base": {"method": "base"}, "pifi-qa": {"method": "pifi", "plug": "sequence"}}
PRESETS = {
    "small": dict(slm_hidden=512, slm_layers=4, slm_heads=8, llm_hidden=1024, llm_intermediate=3584, llm_heads=16,
                  llm_kv_heads=8),
    "paper": dict(slm_hidden=768, slm_layers=12, slm_heads=12, llm_hidden=4096, llm_intermediate=14336,
                  llm_heads=32, llm_kv_heads=8),
}


def make_artifact(args: argparse.Namespace, workdir: Path) -> Path:
    """The last layer of a random 1-layer llama of the requested shape, extracted into an artifact (cached)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from pifi_extract import extract_layer

    name = f"llama-{args.llm_hidden}-{args.llm_intermediate}-{args.llm_heads}-{args.llm_kv_heads}"
    artifact = workdir / f"{name}.safetensors"
    if artifact.is_file():
        return artifact
    config = LlamaConfig(vocab_size=256, hidden_size=args.llm_hidden, intermediate_size=args.llm_intermediate,
                         num_hidden_layers=1, num_attention_heads=args.llm_heads,
                         num_key_value_heads=args.llm_kv_heads, max_position_embeddings=512)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(workdir / name, safe_serialization=True)
    del model
    return Path(extract_layer(str(workdir / name), -1, artifact).path)


def build(name: str, args: argparse.Namespace, artifact: Path, device: torch.device):
    """(trainer, batch with labels) for one configuration, as pifi train builds them."""
    from transformers import BertConfig, BertModel

    from pifi_train.config import TrainConfig, resolve_precision
    from pifi_train.distributed import DistContext
    from pifi_train.families.classification.data import Examples, TaskData
    from pifi_train.families.classification.family import CLASSIFICATION
    from pifi_train.families.classification.model import SequenceClassifier
    from pifi_train.families.classification.trainer import ClassificationTrainer
    from pifi_train.frozen_layer import load_layer
    from pifi_train.options import ModelOptions
    from pifi_train.trainer import autocast

    precision = resolve_precision(args.precision, device)
    options = ModelOptions(**configs(args)[name])
    torch.manual_seed(0)
    slm = BertModel(BertConfig(vocab_size=30522, hidden_size=args.slm_hidden, num_hidden_layers=args.slm_layers,
                               num_attention_heads=args.slm_heads, intermediate_size=4 * args.slm_hidden))
    layer = load_layer(artifact, device=device, dtype=precision.layer_dtype) if options.method == "pifi" else None
    if args.task == "qa":
        from pifi_train.families.qa.model import PifiSpanModel

        model = PifiSpanModel(slm, options, layer).to(device).train()
    else:
        model = SequenceClassifier(slm, 2, options, layer).to(device).train()
    # pifi's own Trainer (Adam, label-smoothed loss, clipping, grad scaler: the paper's defaults); no data or
    # run directory is needed for Trainer.step on a ready batch
    trainer = ClassificationTrainer(model, TaskData("bench", ["0", "1"], Examples([], None, []), Examples([], None, []),
                                                    None), None, TrainConfig(), 0, DistContext(device=device), precision,
                                    Path(tempfile.gettempdir()), family=CLASSIFICATION)
    if args.task == "qa":
        from pifi_train.families.qa.model import span_loss

        def qa_loss(batch: dict) -> tuple[torch.Tensor, int]:  # the QA trainer's loss on (2, B) start/end labels
            labels = batch.pop("labels")
            with autocast(device, precision):
                logits = trainer.network(**batch)
            return span_loss(logits.float(), labels[0], labels[1], 0.05), labels.shape[1]

        trainer.batch_loss = qa_loss
    generator = torch.Generator().manual_seed(1)
    batch = {"input_ids": torch.randint(1000, 30000, (args.batch_size, args.seq_len), generator=generator),
             "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long)}
    batch["attention_mask"][: args.batch_size // 2, args.seq_len * 3 // 4:] = 0  # some padding, as real batches
    batch["labels"] = torch.randint(0, 2, (args.batch_size,), generator=generator)
    if args.task == "qa":  # answer positions inside the unpadded part; the question = the first 16 tokens
        batch["labels"] = torch.randint(16, args.seq_len // 2, (2, args.batch_size), generator=generator).sort(0).values
        batch["answer_mask"] = batch["attention_mask"].bool().clone()
        batch["answer_mask"][:, :16] = False
    return trainer, {k: v.to(device) for k, v in batch.items()}


def step(trainer, batch) -> None:
    """One training step: pifi_train.trainer.Trainer.step itself."""
    trainer.step(batch)
    if trainer.ctx.device.type == "cuda":
        torch.cuda.synchronize(trainer.ctx.device)


def configs(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    return QA_CONFIGS if args.task == "qa" else CONFIGS


def time_steps(args: argparse.Namespace, artifact: Path, device: torch.device) -> dict[str, list[float]]:
    """Seconds per step of every configuration, interleaved round by round."""
    built = {name: build(name, args, artifact, device) for name in configs(args)}
    times: dict[str, list[float]] = {name: [] for name in built}
    for round_ in range(args.warmup + args.steps):
        for name, (trainer, batch) in built.items():
            start = time.perf_counter()
            step(trainer, batch)
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - start)
    return times


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux: VmHWM (ru_maxrss would include the parent's peak, since it survives exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_memory(name: str, args: argparse.Namespace, artifact: Path, device: torch.device) -> dict[str, float]:
    """Peak memory of a few training steps of one configuration (run in its own process)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer, batch = build(name, args, artifact, device)
    model = trainer.model
    static = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    for _ in range(3):
        step(trainer, batch)
    result = {"peak_rss_mb": peak_rss_mb()}
    if device.type == "cuda":
        result["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["cuda_after_build_mb"] = static / 2**20
    layer = model.layer.parameters() if model.has_layer else []
    result["frozen_layer_mb"] = sum(p.numel() * p.element_size() for p in layer) / 2**20
    result["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--task", choices=("classification", "qa"), default="classification")
    parser.add_argument("--precision", default="auto", help="auto (CUDA: bf16 autocast, layer bf16), fp32, ...")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=None, help="Where the random LLM and artifact go (temp).")
    parser.add_argument("--output", type=Path, default=Path("bench_train.json"))
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--artifact", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        setattr(args, key, value)
    device = torch.device(args.device)

    if args.memory_of:  # child: one configuration's peak memory, as JSON on stdout
        print(json.dumps(measure_memory(args.memory_of, args, args.artifact, device)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        artifact = make_artifact(args, workdir)
        memory = {}
        for name in configs(args):
            child = [sys.executable, __file__, "--memory-of", name, "--artifact", str(artifact), "--task", args.task,
                     "--device", args.device, "--precision", args.precision, "--preset", args.preset,
                     "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
            done = subprocess.run(child, capture_output=True, text=True, check=True)
            memory[name] = json.loads(done.stdout.strip().splitlines()[-1])
        times = time_steps(args, artifact, device)

    base_time = statistics.median(times["base"])
    rows = {}
    for name in configs(args):
        median = statistics.median(times[name])
        rows[name] = {"step_ms_median": 1000 * median, "step_ms_all": [1000 * t for t in times[name]],
                      "ratio_vs_base": median / base_time, **memory[name],
                      "rss_overhead_mb": memory[name]["peak_rss_mb"] - memory["base"]["peak_rss_mb"]}
        if "cuda_peak_allocated_mb" in memory[name]:
            rows[name]["cuda_overhead_mb"] = memory[name]["cuda_peak_allocated_mb"] - memory["base"]["cuda_peak_allocated_mb"]
    setup = {k: getattr(args, k) for k in ("task", "device", "precision", "preset", "batch_size", "seq_len", "steps",
                                            "slm_hidden", "slm_layers", "llm_hidden", "llm_intermediate")}
    setup.update(torch=torch.__version__, threads=torch.get_num_threads(),
                 gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    args.output.write_text(json.dumps({"setup": setup, "results": rows}, indent=2) + "\n")

    print(f"setup: {json.dumps(setup)}")
    header = f"{'config':<15}{'step ms':>10}{'x base':>9}{'peak RSS MB':>13}{'RSS +MB':>9}"
    cuda = device.type == "cuda"
    if cuda:
        header += f"{'GPU peak MB':>13}{'GPU +MB':>9}"
    header += f"{'layer MB':>10}"
    print(header)
    for name, row in rows.items():
        line = (f"{name:<15}{row['step_ms_median']:>10.1f}{row['ratio_vs_base']:>9.3f}"
                f"{row['peak_rss_mb']:>13.0f}{row['rss_overhead_mb']:>9.0f}")
        if cuda:
            line += f"{row['cuda_peak_allocated_mb']:>13.0f}{row['cuda_overhead_mb']:>9.0f}"
        print(line + f"{row['frozen_layer_mb']:>10.0f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
