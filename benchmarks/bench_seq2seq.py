"""Cost of encoder-decoder PiFi over the base model: training-step time and peak memory.

A random t5-small-shaped SLM (d_model 512, 6+6 layers, 8 heads, d_ff 2048, vocab 32128) and
the last layer of a random llama-shaped LLM (hidden 1024, MLP 3584, 16/8 heads), built through
a real pifi artifact (benchmarks/bench_train.make_artifact), are trained with pifi's seq2seq
model and loss (label smoothing 0.05 over real target tokens, Adam, clip 5) on a fixed batch
(32 sources x 100 tokens, targets x 100 tokens; the authors' lengths). ``base`` is the plain
T5; ``pifi`` has the frozen layer between encoder and decoder. Step times are interleaved
round by round (median reported); peak RSS is measured in a fresh child process per arm.

    python benchmarks/bench_seq2seq.py --output benchmarks/results/seq2seq_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train import make_artifact, peak_rss_mb  # noqa: E402

ARMS = ("base", "pifi")


def build(arm: str, args: argparse.Namespace, artifact: Path, device: torch.device):
    from transformers import T5Config, T5ForConditionalGeneration

    from pifi_train.frozen_layer import load_layer
    from pifi_train.families.seq2seq.model import Seq2SeqPifi
    from pifi_train.options import ModelOptions

    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
                                             num_heads=8, decoder_start_token_id=0))
    layer = load_layer(artifact, device=device, dtype=torch.float32) if arm == "pifi" else None
    model = Seq2SeqPifi(t5, layer, ModelOptions(method=arm, plug="sequence")).to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    generator = torch.Generator().manual_seed(1)
    b, t = args.batch_size, args.seq_len
    batch = {"input_ids": torch.randint(2, 32000, (b, t), generator=generator),
             "attention_mask": torch.ones(b, t, dtype=torch.long),
             "labels": torch.randint(2, 32000, (b, t), generator=generator)}
    batch["attention_mask"][: b // 2, t * 3 // 4:] = 0  # some padding, as real batches
    batch["labels"][: b // 2, t // 2:] = -100
    return model, optimizer, {k: v.to(device) for k, v in batch.items()}


def step(model, optimizer, batch) -> None:
    logits = model(**batch)  # (B, L, V)
    loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(),
                                             ignore_index=-100, label_smoothing=0.05)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 5.0)
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--output", type=Path, default=Path("bench_seq2seq.json"))
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--artifact", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.llm_hidden, args.llm_intermediate, args.llm_heads, args.llm_kv_heads = 1024, 3584, 16, 8
    device = torch.device("cpu")
    if args.memory_of:
        model, optimizer, batch = build(args.memory_of, args, args.artifact, device)
        for _ in range(2):
            step(model, optimizer, batch)
        print(json.dumps({"peak_rss_mb": peak_rss_mb(),
                          "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        artifact = make_artifact(args, Path(tmp))
        memory = {}
        for arm in ARMS:
            child = [sys.executable, __file__, "--memory-of", arm, "--artifact", str(artifact),
                     "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
            done = subprocess.run(child, capture_output=True, text=True, check=True)
            memory[arm] = json.loads(done.stdout.strip().splitlines()[-1])
        built = {arm: build(arm, args, artifact, device) for arm in ARMS}
        times: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for round_ in range(args.warmup + args.steps):
            for arm, (model, optimizer, batch) in built.items():
                start = time.perf_counter()
                step(model, optimizer, batch)
                if round_ >= args.warmup:
                    times[arm].append(time.perf_counter() - start)
    base = statistics.median(times["base"])
    rows = {arm: {"step_ms_median": 1000 * statistics.median(times[arm]), "step_ms_all": [1000 * t for t in times[arm]],
                  "time_ratio_vs_base": statistics.median(times[arm]) / base, **memory[arm],
                  "rss_ratio_vs_base": memory[arm]["peak_rss_mb"] / memory["base"]["peak_rss_mb"]} for arm in ARMS}
    result = {"setup": {"slm": "t5-small shape (512, 6+6 layers)", "llm_layer_hidden": 1024,
                        "batch_size": args.batch_size, "seq_len": args.seq_len, "steps": args.steps,
                        "threads": torch.get_num_threads(), "torch": torch.__version__}, "arms": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for arm, row in rows.items():
        print(f"{arm:5s} step {row['step_ms_median']:.0f} ms ({row['time_ratio_vs_base']:.3f}x)  "
              f"peak RSS {row['peak_rss_mb']:.0f} MB ({row['rss_ratio_vs_base']:.3f}x)")


if __name__ == "__main__":
    main()
