"""`pifi demo` over several seeds: the README's demo table (accuracy, tweets, Δ with its paired-bootstrap CI and p).

Runs the demo once per seed (seed-major, so an interrupted measurement keeps whole base/PiFi pairs; a seed whose
``demo.json`` exists is reused), then pools the seeds exactly as ``pifi demo --seeds N`` would: mean ± std of each
arm and the paired bootstrap over test examples with runs paired by seed (:func:`pifi_train.demo.compare`).

    python benchmarks/bench_demo.py --seeds 3 --work runs/bench-demo [--methods base,pifi,pifi-post-norm]

Writes ``benchmarks/results/demo_seeds.json`` (``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from pifi_train.demo import DEFAULT_METHODS, METHODS, DemoOptions, MethodResult, compare, run_demo
    from pifi_train.stats import mean_std

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--work", default="runs/bench-demo")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo_seeds.json"))
    args = parser.parse_args()

    methods = tuple(args.methods.split(","))
    per_seed, seconds = [], {}
    for seed in range(args.seed, args.seed + args.seeds):
        folder = Path(args.work) / f"seed-{seed}"
        if not (folder / "demo.json").is_file():
            start = time.perf_counter()
            run_demo(DemoOptions(seed=seed, methods=methods, output_dir=str(folder), cache_dir=args.cache_dir),
                     on_stage=lambda text: print(text, file=sys.stderr, flush=True))
            seconds[seed] = time.perf_counter() - start
        per_seed.append(json.loads((folder / "demo.json").read_text()))
    pooled = [MethodResult(**{**m, "accuracy": [], "macro_f1": [], "shifted_accuracy": [], "curves": [],
                              "run_dirs": []}) for m in per_seed[0]["methods"]]
    for result in per_seed:
        for merged, m in zip(pooled, result["methods"]):
            for key in ("accuracy", "macro_f1", "shifted_accuracy", "curves", "run_dirs"):
                getattr(merged, key).extend(m[key])
    comparisons = compare(pooled, 1000)
    pct = lambda values: "{:.2f} ± {:.2f}".format(*(100 * v for v in mean_std(values)))  # noqa: E731
    lines = ["| model | test acc % | macro-F1 % | tweets acc % | seeds |", "|---|---|---|---|---|"]
    lines += [f"| {m.label} | {pct(m.accuracy)} | {pct(m.macro_f1)} | {pct(m.shifted_accuracy)} | {len(m.accuracy)} |"
              for m in pooled]
    lines.append("")
    for c in comparisons:
        d = c.difference
        lines.append(f"{METHODS[c.method][2]} on {c.test_set}: Δ acc {100 * d.mean:+.2f} points, 95 % CI "
                     f"[{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}], p = {d.p_value:.3f} "
                     f"({'significant' if c.significant else 'not significant'})")
    print("\n".join(lines))
    record = {"command": " ".join(sys.argv), "machine": platform.platform(), "per_seed_seconds": seconds,
              "per_seed_demo_seconds": {r["options"]["seed"]: r["seconds"] for r in per_seed},
              "methods": [asdict(m) for m in pooled], "comparisons": [asdict(c) for c in comparisons],
              "table": lines}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
