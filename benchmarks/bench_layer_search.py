"""How well do the cheap layer scores predict a real training sweep? (issue 22)

    python benchmarks/bench_layer_search.py                      # ~3 h on a shared 2-core box
    python benchmarks/bench_layer_search.py --work /tmp/ls       # keep the work folder: a rerun reuses each phase

On the `pifi demo` assets (SmolLM2-135M-Instruct Q4_1 GGUF, 30 layers; all-MiniLM-L6-v2; Rotten Tomatoes with the
demo's seeded split, cut to --train/--eval/--test examples), in this order, each phase timed:

1. the real thing: `pifi sweep` (run_sweep) of --layers with --seeds seeds each plus the base SLM, the `pifi train`
   recipe (Adam 5e-5, batch 32, --epochs, label smoothing 0.05) at --max-length tokens; test accuracy per layer;
2. `pifi select --score both` (ilm and probe) on the validation split, all 30 layers;
3. `pifi select --score fit` over all 30 layers, encoding with the pretrained MiniLM;
4. the same with the fine-tuned SLM of the sweep's base run (its first seed: `--slm-run`), with --fit-seeds 1 and 3.

Then, over the swept layers (raw layers: the sweep does not train `L+norm`): Spearman's rho of each score with the
sweep's mean test accuracy, whether each score's best layer is the sweep's best (top-1) or among its best three
(top-3), the same against each seed's sweep alone (a rate over seeds), and the sweep's own reliability (each seed's
accuracies vs the mean of the other seeds). Writes benchmarks/results/layer_search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

LAYERS = "0,3,6,9,12,15,18,21,24,27,29"


def write_data(folder: Path, train: int, eval_size: int) -> dict[str, int]:
    from pifi_train.demo import DemoOptions, load_reviews, write_splits
    from pifi_train.demo_assets import find_assets

    texts, labels = load_reviews(find_assets()["data"])
    return write_splits(texts, labels, folder, DemoOptions(train_size=train, eval_size=eval_size))


def timed(path: Path, fn: Any) -> dict[str, Any]:
    """Run ``fn() -> dict`` once and keep its result (and wall seconds) in ``path``; reuse it on a rerun."""
    if path.is_file():
        return json.loads(path.read_text())
    t = time.perf_counter()
    out = fn()
    out["wall_s"] = time.perf_counter() - t
    path.write_text(json.dumps(out, indent=2))
    return out


def sweep_phase(args: argparse.Namespace, llm: str, slm: str, data: Path, work: Path) -> dict[str, Any]:
    from pifi_train.config import TrainConfig
    from pifi_train.select.sweep import run_sweep

    marks: list[tuple[float, str]] = []  # (time, job) as each job (one layer or the base, every seed) starts

    def on_job(k: int, n: int, text: str) -> None:
        marks.append((time.perf_counter(), text))
        print(f"  sweep {k}/{n} {text}", flush=True)

    train = TrainConfig(train_file=str(data / "train.csv"), validation_file=str(data / "validation.csv"),
                        test_file=str(data / "test.csv"), slm=slm, max_length=args.max_length, epochs=args.epochs,
                        seeds=args.seeds, output_dir=str(work / "sweep"), device="cpu")
    result = run_sweep(llm, train, layers=args.layers, selection=str(work / "select_both.json"), progress=on_job)
    runs = [{"job": text, "seconds_per_seed": (marks[k + 1][0] - t) / args.seeds}
            for k, (t, text) in enumerate(marks[:-1])]  # the last mark is "done"
    return {**result.to_dict(), "runs": runs}


def select_phase(llm: str, data: Path, out: Path, **kw: Any) -> dict[str, Any]:
    from pifi_train.select.config import SelectConfig
    from pifi_train.select.selection import run_select

    result = run_select(SelectConfig(llm=llm, train_file=str(data / "train.csv"),
                                     validation_file=str(data / "validation.csv"), output=str(out), device="cpu", **kw),
                        lambda k, n, text: print(f"  select {k}/{n} {text}", flush=True))
    return result.to_dict()


def per_seed_scores(sweep: dict[str, Any]) -> dict[str, list[float]]:
    """"base" | str(layer) -> the sweep's test accuracy per seed (sweep.json says "scores"; before the task
    families, "accuracy")."""
    return sweep["scores"] if "scores" in sweep else sweep["accuracy"]


def agreement(scores: dict[int, float], sweep: dict[str, Any], layers: list[int]) -> dict[str, Any]:
    """Spearman with the mean accuracy, top-1/top-3 hits (mean and per seed) over ``layers``."""
    from pifi_train.select.scoring import rank, spearman

    mean = [sweep["mean"][str(i)] for i in layers]
    picked = layers[rank([scores[i] for i in layers]).index(1)]  # ties: the earlier layer

    def hits(acc: list[float]) -> tuple[bool, bool]:
        order = [layers[i] for i in sorted(range(len(layers)), key=lambda i: (-acc[i], i))]
        return picked == order[0], picked in order[:3]

    seeds = per_seed_scores(sweep)
    per_seed = [hits([seeds[str(i)][s] for i in layers]) for s in range(len(seeds["base"]))]
    top1, top3 = hits(mean)
    return {"spearman": spearman([scores[i] for i in layers], mean), "picked": picked,
            "picked_accuracy": sweep["mean"][str(picked)], "top1": top1, "top3": top3,
            "top1_rate_over_seeds": sum(h[0] for h in per_seed) / len(per_seed),
            "top3_rate_over_seeds": sum(h[1] for h in per_seed) / len(per_seed)}


def reliability(sweep: dict[str, Any], layers: list[int]) -> float:
    """Mean over seeds of Spearman(this seed's accuracies, the mean of the other seeds')."""
    from pifi_train.select.scoring import spearman

    seeds = per_seed_scores(sweep)
    n = len(seeds["base"])
    rhos = []
    for s in range(n):
        mine = [seeds[str(i)][s] for i in layers]
        rest = [sum(v for k, v in enumerate(seeds[str(i)]) if k != s) / (n - 1) for i in layers]
        rhos.append(spearman(mine, rest))
    return sum(rhos) / len(rhos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/layer_search.json"))
    parser.add_argument("--layers", default=LAYERS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--eval", type=int, default=200, help="validation examples (the test split gets --test)")
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every phase (a shared box: 1 "
                                                                 "avoids oversubscription, up to 10x on small ops)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from pifi_train.demo_assets import find_assets

    assets = find_assets()
    llm, slm = str(assets["llm"]), str(assets["slm"])
    with tempfile.TemporaryDirectory(prefix="bench_layer_search_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PIFI_CACHE", str(work / "pifi_cache"))
        data = work / "data"
        sizes = write_data(data, args.train, max(args.eval, args.test))
        _trim(data / "validation.csv", args.eval)
        _trim(data / "test.csv", args.test)
        t0 = time.perf_counter()
        common = {"max_length": args.max_length}
        both = timed(work / "phase_select_both.json", lambda: select_phase(
            llm, data, work / "select_both.json", score="both", samples=args.eval, **common))
        sweep = timed(work / "phase_sweep.json", lambda: sweep_phase(args, llm, slm, data, work))
        fits = {}
        base_run = work / "sweep" / "base" / (f"seed-{2023}" if args.seeds > 1 else "")
        variants = {"fit_pretrained": {"slm": slm}, "fit_finetuned": {"slm": slm, "slm_run": str(base_run)},
                    "fit_finetuned_3seeds": {"slm": slm, "slm_run": str(base_run), "fit_seeds": 3}}
        for name, kw in variants.items():
            fits[name] = timed(work / f"phase_{name}.json", lambda kw=kw, name=name: select_phase(
                llm, data, work / f"select_{name}.json", score="fit", **common, **kw))
        total = time.perf_counter() - t0
    layers = [int(x) for x in args.layers.split(",")]
    raw = lambda sel, key: {r["layer"]: r[key] for r in sel["layers"] if not r["post_norm"]}  # noqa: E731
    table = {"ilm": agreement(raw(both, "ilm"), sweep, layers), "probe": agreement(raw(both, "probe"), sweep, layers)}
    for name, sel in fits.items():
        table[name] = agreement(raw(sel, "fit"), sweep, layers)
        table[name + "_by_loss"] = agreement({i: -v for i, v in raw(sel, "fit_loss").items()}, sweep, layers)
    run_s = [r["seconds_per_seed"] for r in sweep["runs"]]
    report = {
        "setup": {**vars(args), "json": str(args.json), "work": str(args.work), "data": sizes, "llm": llm, "slm": slm,
                  "cpu_count": os.cpu_count(), "box": "shared 2-core machine (other jobs running)"},
        "sweep": {"layers": sweep["layers"], "split": sweep["split"], "accuracy": per_seed_scores(sweep),
                  "mean": sweep["mean"], "spearman": sweep["spearman"]},
        "sweep_reliability_spearman": reliability(sweep, layers),
        "agreement": table,
        "seconds": {"sweep": sweep["wall_s"], "jobs": sweep["runs"], "mean_run": sum(run_s) / max(1, len(run_s)),
                    "select_both": both["wall_s"], **{n: f["wall_s"] for n, f in fits.items()},
                    "fit_detail": {n: f["fit"]["seconds"] for n, f in fits.items()}, "this_invocation": total},
        "cost_ratio_fit_all_layers_over_one_run": {n: f["wall_s"] / (sum(run_s) / max(1, len(run_s)))
                                                   for n, f in fits.items()},
        "scores": {"ilm": raw(both, "ilm"), "probe": raw(both, "probe"),
                   **{n: raw(f, "fit") for n, f in fits.items()}},
    }
    print(f"{'score':>24} {'spearman':>9} {'pick':>5} {'top1':>5} {'top3':>5} {'top1/seed':>9} {'top3/seed':>9}")
    for name, a in table.items():
        print(f"{name:>24} {a['spearman']:9.3f} {a['picked']:5d} {str(a['top1']):>5} {str(a['top3']):>5} "
              f"{a['top1_rate_over_seeds']:9.2f} {a['top3_rate_over_seeds']:9.2f}")
    print(f"sweep reliability (seed vs the others' mean): {report['sweep_reliability_spearman']:.3f}")
    print(json.dumps(report["seconds"], indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


def _trim(path: Path, n: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[: n + 1]), encoding="utf-8")


if __name__ == "__main__":
    main()
