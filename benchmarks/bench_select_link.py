"""`pifi select` over a remote Llama-3.1-8B-shaped checkpoint through a simulated link: does it run at the link's
speed? (issue 22)

    python benchmarks/bench_select_link.py                 # 100 MB/s; 8 and 32 samples; prefetch on and off
    python benchmarks/bench_select_link.py --samples 32 --no-serial --devices cuda cpu

The checkpoint, the loopback Hub and the throttling proxy are benchmarks/bench_link.py's (imported, not copied):
16.06 GB of sparse bf16 shards with the real tensor names and shapes, LFS redirects, one token bucket for every
connection, RTT 30 ms. `pifi select --score probe` runs in a fresh process per run on --samples texts of the test
suite's synthetic task (the test suite's word tokenizer, --tokenizer), all 32 layers, with layer i+1 read while
layer i computes (prefetch) and, for comparison, strictly one after the other. Few samples make the run link-bound
(compute < transfer), more make it compute-bound: a streaming select should take about the larger of the two.
Reported per run: the select call's wall (imports excluded; the process's start-up is printed too), the bytes
through the link and their transfer time at the link's rate, the stream's compute time (the caller's seconds with
each layer: forward + pooling), the build time (artifact -> layer on the device, on the builder thread), the wait
for layers, peak RSS (VmHWM) and wall / max(transfer, compute). Writes benchmarks/results/select_link.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_link import REPO, Link, build_checkpoint, serve_sparse  # noqa: E402  (the link, checkpoint and Hub)

CHILD = r"""
import json, sys, time
t0 = float(sys.argv[1])
import torch
from pifi_train.select.config import SelectConfig
from pifi_train.select.selection import run_select
imported = time.time()
config = SelectConfig(llm=sys.argv[2], train_file=sys.argv[3], tokenizer=sys.argv[4], samples=int(sys.argv[5]),
                      folds=4, score="probe", max_length=16, device=sys.argv[8], prefetch=sys.argv[6] == "1",
                      output=sys.argv[7])
t = time.perf_counter()
result = run_select(config)
wall = time.perf_counter() - t
hwm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("BENCH " + json.dumps({"select_s": wall, "startup_s": imported - t0, "hwm": hwm, "timings": result.timings,
                             "bytes_read": result.bytes_read, "best": result.best["name"],
                             "layers": result.num_layers}))
"""


def run_select_child(env: dict[str, str], work: Path, data: Path, tok: Path, samples: int, prefetch: bool,
                     timeout: float, device: str) -> dict:
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(t0), REPO, str(data), str(tok), str(samples),
                           "1" if prefetch else "0", str(work / "selection.json"), device],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=work)
    wall = time.time() - t0
    line = next((l for l in proc.stdout.splitlines() if l.startswith("BENCH ")), None)
    if line is None or proc.returncode:
        raise SystemExit(f"pifi select failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return {"process_s": wall, **json.loads(line[6:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", nargs="+", type=float, default=[100], help="link bandwidths in MB/s")
    parser.add_argument("--samples", nargs="+", type=int, default=[8, 32], help="texts scored (>= 8: 4 folds)")
    parser.add_argument("--devices", nargs="+", default=["cpu"], help="cpu, cuda (bf16)")
    parser.add_argument("--no-serial", action="store_true", help="skip the run without prefetch")
    parser.add_argument("--timeout", type=float, default=1500, help="seconds per select run")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/select_link.json"))
    args = parser.parse_args()
    from hub_server import HubServer
    from train_fixtures import synthetic_rows, tokenizer_for, write_jsonl

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_select_link_") as tmp, HubServer() as hub:
        work = Path(tmp)
        sizes = build_checkpoint(work / "ckpt")
        serve_sparse(hub, work / "ckpt")
        hub.redirect_lfs = True
        tok = work / "tokenizer"
        tokenizer_for(tok).save_pretrained(tok)
        link = Link(int(hub.url.rsplit(":", 1)[1]), None)
        env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{link.port}", "HF_HOME": str(work / "hf_home"),
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "NO_PROXY": "127.0.0.1,localhost",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "PIFI_CACHE": str(work / "pifi_cache"), "TMPDIR": str(work)}
        env.pop("HF_TOKEN", None)
        for device, rate, samples, prefetch in itertools.product(args.devices, args.rates, args.samples,
                                                                 [True] if args.no_serial else [True, False]):
            link.set_rate(rate * 1e6)
            data = write_jsonl(work / "data.jsonl", synthetic_rows(samples, seed=0))
            before = link.bytes_down
            r = run_select_child(env, work, data, tok, samples, prefetch, args.timeout, device)
            moved = link.bytes_down - before
            transfer = moved / (rate * 1e6)
            t = r["timings"]
            row = {"rate_mb_s": rate, "samples": samples, "device": device, "prefetch": prefetch,
                   "link_bytes": moved, "transfer_s": transfer,
                   "compute_s": t["compute"], "build_s": t["layers_build"], "wait_s": t["wait_for_layers"],
                   "fetch_s": t["layers_fetch"], "select_s": r["select_s"], "startup_s": r["startup_s"],
                   "process_s": r["process_s"], "peak_rss_mb": r["hwm"] / 1e6,
                   "peak_layers_in_memory": t["peak_layers_in_memory"],
                   "ratio": r["select_s"] / max(transfer, t["compute"])}
            rows.append(row)
            print(_row(row), flush=True)
            _write(args.json, sizes, rows)  # after each run: a run cut short keeps the ones before
    print(f"\n{'dev':>4} {'link':>9} {'samples':>7} {'prefetch':>8} {'select s':>8} {'xfer s':>7} {'compute':>7} "
          f"{'build':>6} {'wait':>6} {'ratio':>6} {'link GB':>7} {'RSS MB':>7} {'start s':>7}")
    for r in rows:
        print(_row(r))
    print(f"wrote {args.json}")


def _write(path: Path, sizes: dict, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"checkpoint_bytes": sum(sizes.values()), "cpu_count": os.cpu_count(),
                                "runs": rows}, indent=2))


def _row(r: dict) -> str:
    return (f"{r['device']:>4} {r['rate_mb_s']:>4g} MB/s {r['samples']:7d} {'on' if r['prefetch'] else 'off':>8} "
            f"{r['select_s']:8.1f} "
            f"{r['transfer_s']:7.1f} {r['compute_s']:7.1f} {r['build_s']:6.1f} {r['wait_s']:6.1f} {r['ratio']:6.2f} "
            f"{r['link_bytes'] / 1e9:7.2f} {r['peak_rss_mb']:7.0f} {r['startup_s']:7.1f}")


if __name__ == "__main__":
    main()
