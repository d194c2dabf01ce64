"""Benchmark `pifi select` over a loopback Hub: bytes served and peak RSS growth for 4, 16 and 32 layers.

    python benchmarks/bench_select.py             # prints a table, writes benchmarks/results/select.json
    python benchmarks/bench_select.py --cost      # the fast search's cost ratio, benchmarks/results/select_cost.json

Every model has the same layer shape (llama, hidden 512, MLP 1536, vocab 8192, bf16, 20 MB shards) and only
the depth changes, so a streaming select must read ~one layer more per layer and keep its peak RSS flat.
Each run is a fresh subprocess (RSS growth = peak RSS minus RSS after imports) scoring 64 samples of the
synthetic keyword task with --score both, served by the test suite's Hub server (tests/hub_server.py).

``--cost``: on the `pifi demo` assets (SmolLM2-135M Q4_1 GGUF, 30 layers; all-MiniLM-L6-v2; Rotten Tomatoes, the
demo's split cut to --train/--eval examples, --max-length 64), the wall time of `pifi select --score fit` over all
30 layers (pretrained SLM; then again with --pairs top:4) and of one `pifi train` of PiFi with the last layer on
the same data and epochs, each a fresh process with OMP_NUM_THREADS=1 (a shared box: one thread avoids
oversubscription); the cost ratio is the search's wall over the training run's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

LAYER = dict(hidden_size=512, intermediate_size=1536, vocab_size=8192, num_attention_heads=8, num_key_value_heads=8)
DEPTHS = (4, 16, 32)
SAMPLES = 64

CHILD = """
import sys, time, json
import torch, sklearn.linear_model, transformers, pifi_train.select.selection as sel
from pifi_train.select.config import SelectConfig
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
rss0 = status("VmRSS")
t = time.perf_counter()
r = sel.run_select(SelectConfig(llm=sys.argv[1], train_file=sys.argv[2], samples=int(sys.argv[3]), folds=4,
                                output=sys.argv[4]))
print(json.dumps({"wall_s": time.perf_counter() - t, "rss_growth": max(0, status("VmHWM") - rss0),
                  "bytes_read": r.bytes_read, "embedding_rows": r.embedding_rows, "best": r.best["name"]}))
"""


def build_model(folder: Path, layers: int) -> int:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from train_fixtures import tokenizer_for

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=layers, **LAYER)).to(torch.bfloat16)
    model.save_pretrained(folder, max_shard_size="20MB")
    tokenizer_for(folder).save_pretrained(folder)
    per_layer = sum(p.numel() * 2 for n, p in model.named_parameters() if n.startswith("model.layers.0."))
    return per_layer


def run_depth(layers: int, work: Path, data: Path) -> dict:
    from hub_server import HubServer

    folder = work / f"l{layers}"
    layer_bytes = build_model(folder, layers)
    repo = f"bench/llama-{layers}"
    with HubServer() as hub:
        hub.add_repo(repo, folder)
        os.environ.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1",
                          HF_HOME=str(work / "hf_home"), PIFI_CACHE=str(work / "pifi_cache"), OMP_NUM_THREADS="2",
                          NO_PROXY="127.0.0.1,localhost", PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
        out = subprocess.run([sys.executable, "-c", CHILD, repo, str(data), str(SAMPLES), str(work / "sel.json")],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        served = hub.bytes_sent
    snapshot = sum(p.stat().st_size for p in folder.iterdir())
    return {"layers": layers, "layer_bytes": layer_bytes, "bytes_served": served, "snapshot_bytes": snapshot,
            "served_over_layers": served / (layers * layer_bytes), "rss_growth_mb": r["rss_growth"] / 1e6,
            "wall_s": r["wall_s"], "embedding_rows": r["embedding_rows"], "best": r["best"]}


def timed_cli(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import cli; cli.main()", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def cost(args: argparse.Namespace) -> None:
    from pifi_train.demo import DemoOptions, load_reviews, write_splits
    from pifi_train.demo_assets import find_assets

    assets = find_assets()
    with tempfile.TemporaryDirectory(prefix="bench_select_cost_") as tmp:
        work = Path(tmp)
        texts, labels = load_reviews(assets["data"])
        write_splits(texts, labels, work, DemoOptions(train_size=args.train, eval_size=args.eval))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PIFI_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        data = ["--train-file", str(work / "train.csv"), "--validation-file", str(work / "validation.csv"),
                "--max-length", str(args.max_length)]
        llm = str(assets["llm"])
        select = ["select", "--llm", llm, "--score", "fit", "--slm", str(assets["slm"]), *data, "-q"]
        out = {"train": args.train, "validation": args.eval, "max_length": args.max_length, "epochs": 3,
               "box": args.box}
        out["fit_all_layers_s"] = timed_cli([*select, "-o", str(work / "fit.json")], env)
        out["fit_all_layers_pairs_top4_s"] = timed_cli([*select, "--pairs", "top:4", "-o", str(work / "p.json")], env)
        fit = json.loads((work / "p.json").read_text())["fit"]
        out["fit_detail"] = fit["seconds"]
        out["pairs"] = fit["pairs"]
        timed_cli(["extract", "--llm", llm, "--layer", "-1", "-q"], env)  # into the cache, as a sweep does first
        out["train_one_run_s"] = timed_cli(["train", *data, "--test-file", str(work / "test.csv"), "--slm",
                                            str(assets["slm"]), "--layer-artifact", f"{llm}:-1", "--epochs", "3",
                                            "--output-dir", str(work / "run"), "-q"], env)
    out["ratio_fit"] = out["fit_all_layers_s"] / out["train_one_run_s"]
    out["ratio_fit_with_pairs"] = out["fit_all_layers_pairs_top4_s"] / out["train_one_run_s"]
    print(json.dumps(out, indent=1))
    args.cost_json.parent.mkdir(parents=True, exist_ok=True)
    args.cost_json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.cost_json}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/select.json"))
    parser.add_argument("--depths", nargs="+", type=int, default=list(DEPTHS))
    parser.add_argument("--cost", action="store_true", help="measure the fast search's cost ratio instead")
    parser.add_argument("--cost-json", type=Path, default=Path("benchmarks/results/select_cost.json"))
    parser.add_argument("--box", default="2-core machine, OMP_NUM_THREADS=1",
                        help="--cost: how the machine was (recorded in the JSON)")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--eval", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    if args.cost:
        cost(args)
        return
    from train_fixtures import synthetic_rows, write_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        data = write_jsonl(Path(tmp) / "data.jsonl", synthetic_rows(SAMPLES, seed=0))
        rows = [run_depth(n, Path(tmp), data) for n in args.depths]
    mb = 1e6
    print(f"{'layers':>6} {'layer MB':>9} {'snapshot MB':>12} {'served MB':>10} {'served/layers':>14} "
          f"{'emb rows':>9} {'RSS +MB':>8} {'wall s':>7}")
    for r in rows:
        print(f"{r['layers']:6} {r['layer_bytes']/mb:9.1f} {r['snapshot_bytes']/mb:12.1f} {r['bytes_served']/mb:10.1f} "
              f"{r['served_over_layers']:14.4f} {r['embedding_rows']:9} {r['rss_growth_mb']:8.1f} {r['wall_s']:7.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
