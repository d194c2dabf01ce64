"""Inference cost of the paper's configurations (its Tables 16 and 20), measured with ``pifi cost``'s library.

Every configuration is built from configs pifi knows (nothing is downloaded): FLOPs, the paper's fvcore-style
multiply-adds, parameters and the estimated peak memory are counted on the meta device; latency (and, on CUDA,
``torch.cuda.max_memory_allocated``) is timed on random weights of the same shapes (``--random-weights``).

    python benchmarks/bench_cost.py                                   # CPU, fp32, the classification setting
    python benchmarks/bench_cost.py --device cuda --dtypes float32 bfloat16 --all --output results/cost_h200.json

``--all`` adds extractive QA (384 tokens, every token through the layer) and T5-base seq2seq (100 → 100 tokens).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = {  # name -> (target_from_config arguments, CostOptions overrides)
    "classification": ({"slm": "bert-base-uncased", "llm": "Llama-3.1-8B"}, {}),
    "qa": ({"slm": "bert-base-uncased", "llm": "Llama-3.1-8B", "task_type": "qa"}, {"batch_size": 8}),
    "seq2seq": ({"slm": "t5-base", "llm": "Llama-3.1-8B", "task_type": "seq2seq"}, {}),
}


def main() -> None:
    from pifi_train.cost import measure, target_from_config
    from pifi_train.cost_spec import CostOptions

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", nargs="+", default=["float32"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="also QA and seq2seq")
    parser.add_argument("--no-timing", action="store_true", help="count only")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    names = list(SETTINGS) if args.all else ["classification"]
    results = []
    print("| setting | dtype | arm | GFLOPs | GMACs (paper) | params (M) | weights MB | peak MB (est.) | ms / example | "
          "peak MB (CUDA) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        target_args, overrides = SETTINGS[name]
        for dtype in args.dtypes:
            options = CostOptions(dtype=dtype, device=args.device, repeats=args.repeats,
                                  random_weights=not args.no_timing, **overrides)
            report = measure(target_from_config(**target_args), options)
            results.append({"setting": name, **asdict(report)})
            for arm in report.arms:
                c = arm.count
                cuda = f"{arm.measured_peak_bytes / 1e6:.0f}" if arm.measured_peak_bytes else "-"
                latency = f"{arm.latency_ms:.3f}" if arm.latency_ms is not None else "-"
                print(f"| {name} {report.batch_size}×{report.seq_len} | {dtype} | {arm.arm} | {c.flops / 1e9:.2f} | "
                      f"{c.paper_macs / 1e9:.2f} | {sum(c.parameters.values()) / 1e6:.3f} | {c.weight_bytes / 1e6:.0f} | "
                      f"{c.peak_bytes / 1e6:.0f} | {latency} | {cuda} |", flush=True)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
