"""Benchmark `pifi select` over a loopback Hub: bytes served and peak RSS growth for 4, 16 and 32 layers.

    python benchmarks/bench_select.py             # prints a table, writes benchmarks/results/select.json

Every model has the same layer shape (llama, hidden 512, MLP 1536, vocab 8192, bf16, 20 MB shards) and only
the depth changes, so a streaming select must read ~one layer more per layer and keep its peak RSS flat.
Each run is a fresh subprocess (RSS growth = peak RSS minus RSS after imports) scoring 64 samples of the
synthetic keyword task with --score both, served by the test suite's Hub server (tests/hub_server.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/select.json"))
    parser.add_argument("--depths", nargs="+", type=int, default=list(DEPTHS))
    args = parser.parse_args()
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
