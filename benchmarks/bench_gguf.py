"""Benchmark GGUF extraction on the real SmolLM2-135M-Instruct Q4_1 file (the demo asset).

    python benchmarks/bench_gguf.py [--json out.json] [--vocab-only] [--tree DIR]

In a fresh subprocess each, from the local file (memory-mapped) and from the same file served
by the test suite's loopback Hub (tests/hub_server.py; range reads): extracts layer -2 (the first
extraction of a process pays transformers' and gguf's lazy imports), then layer -1 (steady state).
Reports the bytes served against header + layer tensors (for both extractions), the artifact size
against the file, peak RSS growth and wall time of each extraction.

Then the vocabulary line (issue 15): tiny GGUFs whose header states 128, 49152 (SmolLM2) and
262144 (Gemma 3) tokens with scores and types, and the CPU seconds of header parse and config
(transformers' reader on the vocabulary-less replica) in a fresh process, imports excluded.
``--tree DIR`` runs those children on another checkout (e.g. the code before a change).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CHILD = """
import json, sys, time
from pifi_extract import extract_layer
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
def run(layer, out):
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak-RSS mark (VmHWM)
    rss0, t = status("VmRSS"), time.perf_counter()
    r = extract_layer(sys.argv[1], layer, out, gguf_file=sys.argv[3] or None)
    return r, time.perf_counter() - t, max(0, status("VmHWM") - rss0)
# The first extraction in a process pays transformers' and gguf's lazy imports; the second is steady state.
_, cold_s, cold_rss = run(-2, sys.argv[2] + ".warmup")
r, wall, rss = run(-1, sys.argv[2])
print(json.dumps({"wall_s": wall, "rss_growth": rss, "cold_wall_s": cold_s, "cold_rss_growth": cold_rss,
                  "artifact_bytes": r.info.size, "layer_bytes": r.source_bytes}))
"""


VOCAB_CHILD = """
import json, sys, time
import transformers.modeling_gguf_pytorch_utils  # imports paid before the clock starts
from transformers import AutoConfig
from pifi_extract.gguf_source import open_gguf_source
try:
    from pifi_extract.gguf_config import gguf_config
    def config_of(source):
        header, prefix = source.header()
        return gguf_config(header, prefix, source.size(source.file), source.name)
except ImportError:  # a checkout from before the split (81d2e03)
    from pifi_extract.gguf_source import gguf_config as config_of
AutoConfig.for_model("llama")
t0 = time.process_time()
source = open_gguf_source(sys.argv[1])
source.header()
t1 = time.process_time()
config_of(source)
t2 = time.process_time()
print(json.dumps({"header_cpu_s": t1 - t0, "config_cpu_s": t2 - t1}))
"""
VOCABS = (128, 49152, 262144)


def vocab_cpu(tree: Path) -> list[dict]:
    """Header + config CPU seconds for tiny GGUFs with growing vocabularies (median of 3 fresh processes)."""
    import os
    import statistics

    from tiny_gguf import write_tiny_gguf
    from tiny_models import build_tiny_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model("llama")
        for n in VOCABS:
            path = write_tiny_gguf(model, Path(tmp) / f"vocab{n}.gguf", vocab_tokens=n)
            runs = []
            for _ in range(3):
                done = subprocess.run([sys.executable, "-c", VOCAB_CHILD, str(path)], capture_output=True, text=True,
                                      cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            rows.append({"vocab": n, "file_bytes": path.stat().st_size, **row})
            print(f"vocab {n:>6}: {path.stat().st_size / 1e6:5.2f} MB file; CPU header {row['header_cpu_s']:.3f} s, "
                  f"config {row['config_cpu_s']:.3f} s ({tree})")
    return rows


def child(env: dict, *args: str) -> dict:
    import os

    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "gguf.json")
    parser.add_argument("--vocab-only", action="store_true", help="only the vocabulary line")
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout the vocabulary children run")
    args = parser.parse_args()
    vocab = vocab_cpu(args.tree.resolve())
    if args.vocab_only:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.with_name("gguf_vocab.json").write_text(json.dumps(vocab, indent=2))
        return
    from hub_server import HubServer

    from pifi_extract.gguf_source import open_gguf_source
    from pifi_train.demo_assets import find_asset

    gguf = find_asset("llm")
    header, _ = open_gguf_source(str(gguf)).header()
    size = gguf.stat().st_size
    with tempfile.TemporaryDirectory() as tmp:
        local = child({}, str(gguf), f"{tmp}/local.safetensors", "")
        with HubServer() as server:
            server.add_repo("bench/smollm2-gguf", gguf.parent)
            env = {"HF_ENDPOINT": server.url, "HF_HOME": f"{tmp}/hf", "HF_HUB_DISABLE_XET": "1",
                   "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1,localhost"}
            server.reset_counters()
            hub = child(env, "bench/smollm2-gguf", f"{tmp}/hub.safetensors", gguf.name)
            hub["bytes_served"] = server.bytes_for("bench/smollm2-gguf", gguf.name)
    needed = 2 * header.data_start + 2 * local["layer_bytes"]  # two extractions, each reads header + layer
    result = {"file": gguf.name, "file_bytes": size, "header_bytes": header.data_start,
              "layer_quantized_bytes": local["layer_bytes"], "artifact_bytes": local["artifact_bytes"],
              "local": local, "hub": hub, "served_over_needed": hub["bytes_served"] / needed, "vocab_cpu": vocab}
    print(f"{gguf.name}: {size / 1e6:.1f} MB; header {header.data_start / 1e6:.2f} MB; "
          f"layer tensors {local['layer_bytes'] / 1e6:.2f} MB (Q4_1) -> artifact {local['artifact_bytes'] / 1e6:.1f} MB "
          f"(fp32, {100 * local['artifact_bytes'] / size:.1f}% of the file)")
    print(f"hub:   served {hub['bytes_served'] / 1e6:.2f} MB = {result['served_over_needed']:.2f} x (header + layer) "
          f"({100 * hub['bytes_served'] / 2 / size:.1f}% of the file per layer); {hub['wall_s']:.2f} s; RSS +"
          f"{hub['rss_growth'] / 1e6:.0f} MB (first extraction in a process, imports included: {hub['cold_wall_s']:.1f} s, "
          f"+{hub['cold_rss_growth'] / 1e6:.0f} MB)")
    print(f"local: {local['wall_s']:.2f} s; RSS +{local['rss_growth'] / 1e6:.0f} MB (first: {local['cold_wall_s']:.1f} s, "
          f"+{local['cold_rss_growth'] / 1e6:.0f} MB)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
