"""Benchmark `pifi extract` over a loopback Hub: bytes served, peak RSS growth, wall time.

    python benchmarks/bench_extract.py            # two model sizes, prints a table, writes JSON
    python benchmarks/bench_extract.py --json out.json

For each size (the layer grows 4x, then 3.7x) it builds a sharded llama-shaped model (random bf16 weights), serves it with the test
suite's Hub server (tests/hub_server.py) on 127.0.0.1, then, each in a fresh subprocess:
  * extracts layer -1 (RSS growth = peak RSS minus RSS just before the extraction);
  * downloads the shard(s) holding that layer, whole, with one plain GET each (what a
    shard-level tool would fetch);
  * downloads the whole snapshot (what the paper's code does) with `snapshot_download`.
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

SIZES = {
    "small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, vocab_size=8192, shard="20MB"),
    "large": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=4, vocab_size=8192, shard="40MB"),
    "xlarge": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=2, vocab_size=8192, shard="60MB"),
}
REPO = "bench/llama"


def build_model(folder: Path, spec: dict) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shard = spec.pop("shard")
    config = LlamaConfig(num_attention_heads=8, num_key_value_heads=8, **spec)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder, max_shard_size=shard)


CHILD_EXTRACT = """
import sys, time, json
from pifi_extract import extract_layer
import pifi_extract.hub_source  # library imports are not growth
def status(key):  # kB fields of /proc/self/status; VmHWM is this process's peak RSS (ru_maxrss survives exec)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
rss0 = status("VmRSS")
t = time.perf_counter()
r = extract_layer(sys.argv[1], -1, sys.argv[2])
wall = time.perf_counter() - t
peak = status("VmHWM")
print(json.dumps({"wall_s": wall, "rss_growth": max(0, peak - rss0), "tensor_bytes": r.info.size - r.info.data_start,
                  "artifact_bytes": r.info.size, "files": r.info.provenance["files"]}))
"""

CHILD_GET = """
import sys, time, json
from huggingface_hub import get_session, hf_hub_url
t = time.perf_counter(); n = 0
for f in sys.argv[2:]:
    with get_session().stream("GET", hf_hub_url(sys.argv[1], f)) as r:
        for chunk in r.iter_raw():
            n += len(chunk)
print(json.dumps({"wall_s": time.perf_counter() - t, "bytes": n}))
"""

CHILD_SNAPSHOT = """
import sys, time, json, tempfile
from huggingface_hub import snapshot_download
t = time.perf_counter()
snapshot_download(sys.argv[1], local_dir=tempfile.mkdtemp())
print(json.dumps({"wall_s": time.perf_counter() - t}))
"""


def child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_size(name: str, spec: dict, work: Path) -> dict:
    from hub_server import HubServer

    folder = work / name
    build_model(folder, dict(spec))
    snapshot_bytes = sum(p.stat().st_size for p in folder.iterdir())
    with HubServer() as hub:
        hub.add_repo(REPO, folder)
        os.environ.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1",
                          HF_HOME=str(work / "hf_home"), NO_PROXY="127.0.0.1,localhost")
        ext = child(CHILD_EXTRACT, REPO, str(work / f"{name}.safetensors"))
        served = hub.bytes_sent
        shards = sorted(f for f in ext["files"] if f.endswith(".safetensors"))
        shard_bytes = sum((folder / f).stat().st_size for f in shards)
        hub.reset_counters()
        plain = child(CHILD_GET, REPO, *shards)
        snap = child(CHILD_SNAPSHOT, REPO)
    return {
        "size": name,
        "model": {k: v for k, v in spec.items() if k != "shard"},
        "layer_tensor_bytes": ext["tensor_bytes"],
        "bytes_served": served,
        "served_over_tensor_bytes": served / ext["tensor_bytes"],
        "containing_shards": len(shards),
        "containing_shards_bytes": shard_bytes,
        "snapshot_bytes": snapshot_bytes,
        "rss_growth_mb": ext["rss_growth"] / 1e6,
        "extract_wall_s": ext["wall_s"],
        "plain_download_of_shards_wall_s": plain["wall_s"],
        "plain_download_throughput_mb_s": plain["bytes"] / plain["wall_s"] / 1e6,
        "extract_throughput_mb_s": served / ext["wall_s"] / 1e6,
        "snapshot_download_wall_s": snap["wall_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/extract.json"))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_size(name, SIZES[name], Path(tmp)) for name in args.sizes]
    mb = 1e6
    print(f"{'size':6} {'layer MB':>9} {'served MB':>10} {'ratio':>6} {'shards MB':>10} {'snapshot MB':>12} "
          f"{'RSS +MB':>8} {'extract s':>10} {'plain GET s':>12} {'snapshot s':>11}")
    for r in rows:
        print(f"{r['size']:6} {r['layer_tensor_bytes']/mb:9.1f} {r['bytes_served']/mb:10.2f} "
              f"{r['served_over_tensor_bytes']:6.4f} {r['containing_shards_bytes']/mb:10.1f} "
              f"{r['snapshot_bytes']/mb:12.1f} {r['rss_growth_mb']:8.1f} {r['extract_wall_s']:10.3f} "
              f"{r['plain_download_of_shards_wall_s']:12.3f} {r['snapshot_download_wall_s']:11.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
