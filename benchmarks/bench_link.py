"""Benchmark `pifi extract` at Llama-3.1-8B scale through a simulated network link (issues 15, 23).

    python benchmarks/bench_link.py                  # unlimited, 25, 100, 1000 MB/s, clean and with cut bodies, x2
    python benchmarks/bench_link.py --rates 100 --repeat 1 --multi 0
    python benchmarks/bench_link.py --json out.json

What it builds and runs:
  * a Llama-3.1-8B-shaped bf16 checkpoint (the real tensor names and shapes; 4 shards packed greedily at 5 GB in
    module order, as transformers' save_pretrained made the original: 16.06 GB), **sparse on disk**: each shard is a
    valid safetensors file whose data is holes except a 16-byte position marker (shard, offset) every MiB, so a range
    read from the wrong place changes the artifact's hash; disk use is a few MB plus one artifact at a time;
  * served by the test suite's loopback Hub (tests/hub_server.py) with LFS files redirected (302) to storage, as the
    Hub does, behind a throttling TCP proxy on 127.0.0.1: one token bucket shared by all connections (the link's
    bandwidth), 15 ms each way (RTT 30 ms), 2 RTTs of setup per new connection (TCP + TLS); no slow start;
  * `pifi extract --llm bench/llama-3.1-8b --layer -1 --dtype keep --no-cache` in a fresh process per run, started as
    the `pifi` console script starts it (cold start, imports and teardown included), clean and with every 5th body cut
    after 1 MiB (resumed; default backoff), each setting `--repeat` times;
  * `--multi` rate: 4 layers (-1..-4) in one call vs 4 calls of one layer each;
  * huggingface_hub's `hf_hub_download` of the shards holding the layer at the highest rate, for a bounded time (its
    full time is projected from the bytes it moved: it cannot beat the link).
It prints, per run: wall, wall / (artifact bytes / bandwidth), bytes through the link, peak RSS (VmHWM), the phases
(start-up = process start to the first request leaving the client, metadata = to the first tensor byte requested,
data = to the last byte in, tail = hash/fsync/rename, exit = teardown), the round trips before the first tensor byte
(the longest chain of requests that each started after the one before had been answered, from the loopback Hub's
request log with timestamps; "reqs" = requests before it) and whether every artifact is byte-identical to the
unlimited clean run's. The fixed costs measured at the unlimited rate (start-up + metadata + tail + exit) give the
projection for links the Python proxy cannot carry on this machine (1 GB/s on 2 cores). Every run has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

REPO = "bench/llama-3.1-8b"
MiB = 1 << 20
CONFIG = {  # meta-llama/Llama-3.1-8B's config.json (the fields that matter for the layer)
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
    "bos_token_id": 128000, "eos_token_id": 128001, "torch_dtype": "bfloat16",
}
SHARD_LIMIT = 5_000_000_000


def tensors() -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every tensor, in module order."""
    h, f, v, kv = 4096, 14336, 128256, 8 * 128
    out = [("model.embed_tokens.weight", (v, h))]
    for i in range(32):
        p = f"model.layers.{i}."
        out += [(p + "self_attn.q_proj.weight", (h, h)), (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)), (p + "self_attn.o_proj.weight", (h, h)),
                (p + "mlp.gate_proj.weight", (f, h)), (p + "mlp.up_proj.weight", (f, h)),
                (p + "mlp.down_proj.weight", (h, f)), (p + "input_layernorm.weight", (h,)),
                (p + "post_attention_layernorm.weight", (h,))]
    return out + [("model.norm.weight", (h,)), ("lm_head.weight", (v, h))]


def build_checkpoint(folder: Path) -> dict[str, int]:
    """Write the sparse shards, config and index; return {shard: size}."""
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    used = 0
    for name, shape in tensors():
        n = 2 * math.prod(shape)
        if used + n > SHARD_LIMIT and shards[-1]:
            shards.append([])
            used = 0
        shards[-1].append((name, shape))
        used += n
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))]
    weight_map, sizes, total = {}, {}, 0
    for k, (fname, entries) in enumerate(zip(names, shards)):
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape in entries:
            n = 2 * math.prod(shape)
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fname
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        size = 8 + len(raw) + off
        with open(folder / fname, "wb") as fh:
            fh.write(struct.pack("<Q", len(raw)) + raw)
            fh.truncate(size)
            for pos in range(MiB, size, MiB):  # a position marker every MiB: misplaced ranges change the hash
                fh.seek(pos)
                fh.write(struct.pack("<QQ", k + 1, pos))
        sizes[fname], total = size, total + size
    (folder / "config.json").write_text(json.dumps(CONFIG, indent=2))
    index = {"metadata": {"total_size": total - sum(8 for _ in names)}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return sizes


def serve_sparse(hub, folder: Path) -> None:
    """Add the checkpoint to the loopback Hub without reading 16 GB to hash it (ETags from name and size)."""
    from hub_server import Blob

    small = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith(".safetensors")}
    sha = hub.add_repo(REPO, small)
    files = hub.repos[REPO].commits[sha].files
    for p in sorted(folder.glob("*.safetensors")):
        size = p.stat().st_size
        tag = hashlib.sha256(f"{p.name}:{size}".encode()).hexdigest()
        files[p.name] = Blob(p, size, tag[:40], tag, True)


class Link:
    """A TCP proxy on 127.0.0.1: shared bandwidth (None = unlimited), one-way delay, connection setup cost."""

    def __init__(self, upstream_port: int, rate: float | None, delay: float = 0.015, setup_rtts: int = 2) -> None:
        self.upstream_port, self.rate, self.delay, self.setup = upstream_port, rate, delay, setup_rtts * 2 * delay
        self.bytes_down = 0
        self.connects: list[float] = []  # time.time() of each client connection (the client's requests going out)
        self._free_at = 0.0
        self._loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    def set_rate(self, rate: float | None) -> None:
        self.rate = rate

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connects.append(time.time())
        await asyncio.sleep(self.setup)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pump(reader, up_w, False), self._pump(up_r, writer, True), return_exceptions=True)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            loop = asyncio.get_running_loop()
            while (item := await queue.get()) is not None:
                at, chunk = item
                if (wait := at - loop.time()) > 0:
                    await asyncio.sleep(wait)
                dst.write(chunk)
                await dst.drain()

        task = asyncio.ensure_future(deliver())
        loop = asyncio.get_running_loop()
        try:
            while chunk := await src.read(64 << 10):
                now = loop.time()
                if down:
                    self.bytes_down += len(chunk)
                    if self.rate:
                        start = max(now, self._free_at)
                        self._free_at = start + len(chunk) / self.rate  # one bucket for every connection
                        now = self._free_at
                        await asyncio.sleep(max(0.0, self._free_at - loop.time()))
                queue.put_nowait((now + self.delay, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait(None)
            try:
                await task
            except (ConnectionError, OSError):
                pass
            try:
                dst.close()
            except (ConnectionError, OSError, RuntimeError):
                pass


CHILD = r"""
import json, os, sys, time
t_start = float(sys.argv[1])
marks = {}
def first_connect(event, args):  # CPU time spent before the first request leaves (load on the box aside)
    if event == "socket.connect" and "startup_cpu" not in marks:
        marks["startup_cpu"] = sum(os.times()[:2])
sys.addaudithook(first_connect)
import pifi_extract.extract as ex, pifi_extract.writer as wr
def timed(name, fn):
    def wrap(*a, **k):
        marks.setdefault(name + "_start", time.time())
        try:
            return fn(*a, **k)
        finally:
            marks[name + "_end"] = time.time()
    return wrap
ex.open_source = timed("open", ex.open_source)
ex.plan_layers = timed("plan", ex.plan_layers)
if hasattr(ex, "write_artifacts"):  # this pifi; an older checkout (--code) writes one artifact at a time
    ex.write_artifacts = timed("write", ex.write_artifacts)
else:
    ex.write_artifact = timed("write", ex.write_artifact)
wr.AtomicArtifactWriter.commit = timed("commit", wr.AtomicArtifactWriter.commit)
def report():
    hwm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    marks["done"] = time.time()
    cpu = os.times().user + os.times().system
    print("BENCH " + json.dumps({"marks": marks, "hwm": hwm, "cpu": cpu, "torch": "torch" in sys.modules}), flush=True)
import atexit
atexit.register(report)  # registered first: runs last, after the CLI's own exit work
import cli
sys.argv = ["pifi", *sys.argv[2:]]
cli.main()  # as the `pifi` console script runs it
"""

CHILD_HF = r"""
import sys, tempfile
from huggingface_hub import hf_hub_download
d = tempfile.mkdtemp(dir=sys.argv[1])
for f in sys.argv[3:]:
    hf_hub_download(sys.argv[2], f, local_dir=d)
"""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def run_pifi(link: Link, hub, work: Path, env: dict[str, str], layers: list[int], header_ends: dict[str, int],
             timeout: float) -> dict:
    """One `pifi extract` process for ``layers``; its phases, round trips, RSS and the artifacts' sha256."""
    out = work / "out"
    out.mkdir(exist_ok=True)
    hub.reset_counters()
    before, connects = link.bytes_down, len(link.connects)
    t0 = time.time()
    args = ["extract", "--llm", REPO, *[a for i in layers for a in ("--layer", str(i))], "--dtype", "keep",
            "--no-cache", "-o", str(out if len(layers) > 1 else out / "layer.safetensors"), "-q"]
    proc = subprocess.run([sys.executable, "-c", CHILD, str(t0), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=work)
    wall = time.time() - t0
    line = next((l for l in proc.stdout.splitlines() if l.startswith("BENCH ")), None)
    if line is None or proc.returncode:
        raise SystemExit(f"pifi extract failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    rec = json.loads(line[6:])
    m, log = rec["marks"], hub.log

    def is_tensor_read(r) -> bool:
        name = r.path.rsplit("/", 1)[-1]
        return name in header_ends and r.range is not None and int(r.range[6:].split("-")[0]) >= header_ends[name]

    first_tensor = min(r.started for r in log if is_tensor_read(r)) - link.delay  # when the client sent it
    first_request = link.connects[connects]
    until = first_tensor + link.delay  # when it reached the server
    trips, requests = hub.round_trips(until, gap=link.delay), sum(r.started < until for r in log)
    phases = {
        "startup_cpu": m["startup_cpu"],
        "startup": first_request - t0,
        "metadata": first_tensor - first_request,
        "data": m["commit_start"] - first_tensor,
        "tail": m["write_end"] - m["commit_start"],
        "exit": t0 + wall - m["done"],
    }
    artifacts = sorted(out.iterdir())
    digests = {p.name: sha256_file(p) for p in artifacts}
    size = sum(p.stat().st_size for p in artifacts)
    for p in artifacts:
        p.unlink()
    return {"layers": layers, "wall_s": wall, "link_bytes": link.bytes_down - before, "artifact_bytes": size,
            "peak_rss_mb": rec["hwm"] / 1e6, "cpu_s": rec["cpu"], "phases_s": phases, "round_trips": trips, "requests_before": requests,
            "sha256": digests, "torch_imported": rec["torch"]}


def run_hf(link: Link, work: Path, env: dict[str, str], shards: list[str], budget: float) -> dict:
    before, t0 = link.bytes_down, time.time()
    proc = subprocess.Popen([sys.executable, "-c", CHILD_HF, str(work), REPO, *shards], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=budget)
        done = True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        done = False
    wall, moved = time.time() - t0, link.bytes_down - before
    for p in work.glob("tmp*"):
        subprocess.run(["rm", "-rf", str(p)], check=False)
    return {"completed": done, "wall_s": wall, "link_bytes": moved, "rate_mb_s": moved / wall / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", nargs="+", type=float, default=[25, 100, 1000], help="link bandwidths in MB/s")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each setting (the box is shared: noisy)")
    parser.add_argument("--multi", type=float, default=100, help="rate (MB/s) of the 4-layer comparison (0: skip)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/link.json"))
    parser.add_argument("--timeout", type=float, default=180, help="seconds per pifi run")
    parser.add_argument("--hf-budget", type=float, default=10, help="seconds hf_hub_download may run (0: skip)")
    parser.add_argument("--code", type=Path, default=ROOT, help="run pifi from this checkout (A/B against another "
                        "commit under the same load; the loopback Hub and proxy are this checkout's)")
    args = parser.parse_args()
    from hub_server import HubServer

    with tempfile.TemporaryDirectory(prefix="bench_link_") as tmp, HubServer() as hub:
        work = Path(tmp)
        sizes = build_checkpoint(work / "ckpt")
        header_ends = {p.name: 8 + _header_length(p) for p in (work / "ckpt").glob("*.safetensors")}
        serve_sparse(hub, work / "ckpt")
        hub.redirect_lfs = True
        upstream = int(hub.url.rsplit(":", 1)[1])
        link = Link(upstream, None)
        env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{link.port}", "HF_HOME": str(work / "hf_home"),
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "NO_PROXY": "127.0.0.1,localhost",
               "PYTHONPATH": os.pathsep.join([str(args.code.resolve()), os.environ.get("PYTHONPATH", "")]),
               "PIFI_CACHE": str(work / "pifi_cache"), "OMP_NUM_THREADS": "1"}
        env.pop("HF_TOKEN", None)

        def run(rate: float | None, cut: bool, layers: list[int], calls: int = 1) -> dict:
            link.set_rate(None if rate is None else rate * 1e6)
            hub.drop_every(5 if cut else 0, after_bytes=MiB)
            t0 = time.time()
            parts = [run_pifi(link, hub, work, env, layers if calls == 1 else [layer], header_ends, args.timeout)
                     for layer in (layers if calls > 1 else [None])]
            hub.clear_faults()
            r = parts[0] if calls == 1 else {
                "layers": layers, "wall_s": time.time() - t0, "link_bytes": sum(p["link_bytes"] for p in parts),
                "artifact_bytes": sum(p["artifact_bytes"] for p in parts),
                "peak_rss_mb": max(p["peak_rss_mb"] for p in parts), "cpu_s": sum(p["cpu_s"] for p in parts),
                "phases_s": {k: sum(p["phases_s"][k] for p in parts) for k in parts[0]["phases_s"]},
                "round_trips": sum(p["round_trips"] for p in parts),
                "requests_before": sum(p["requests_before"] for p in parts),
                "sha256": {f"{p['layers'][0]}:{k}": v for p in parts for k, v in p["sha256"].items()},
                "torch_imported": any(p["torch_imported"] for p in parts)}
            transfer = None if rate is None else r["artifact_bytes"] / (rate * 1e6)
            row = {"rate_mb_s": rate, "cut_every_5th": cut, "calls": calls, "transfer_s": transfer,
                   "ratio": None if transfer is None else r["wall_s"] / transfer, **r}
            print(_row(row), flush=True)
            return row

        rows = [run(rate, cut, [-1]) for rate in [None, *args.rates] for cut in (False, True)
                for _ in range(args.repeat)]
        multi = []
        if args.multi:
            reference4 = run(None, False, [-1, -2, -3, -4])
            multi = [run(args.multi, False, [-1, -2, -3, -4], calls) for _ in range(args.repeat) for calls in (1, 4)]
        reference = rows[0]["sha256"]["layer.safetensors"]
        for r in rows:
            r["identical"] = r["sha256"] == {"layer.safetensors": reference}
        if multi:
            expected = _by_layer(reference4)
            reference4["identical"] = expected[31] == reference  # layer -1 alone and among four: the same bytes
            for r in multi:
                r["identical"] = _by_layer(r) == expected
        shards = ["model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"]
        hf = None
        if args.hf_budget > 0:
            rate = max(args.rates)
            link.set_rate(rate * 1e6)
            hf = run_hf(link, work, env, shards, args.hf_budget)
            need = sum(sizes[s] for s in shards)
            hf |= {"rate_limit_mb_s": rate, "shard_bytes": need, "projected_full_s": need / (hf["rate_mb_s"] * 1e6)}
    fixed = _fixed_costs([r for r in rows if r["rate_mb_s"] is None and not r["cut_every_5th"]])
    print()
    print(f"{'link':>9} {'cuts':>5} {'calls':>5} {'wall s':>7} {'xfer s':>7} {'ratio':>6} {'link MB':>8} {'RSS MB':>7} "
          f"{'CPU s':>5} {'startup':>7} {'meta':>5} {'data':>6} {'tail':>5} {'exit':>5} {'RTs':>3} {'reqs':>4} same")
    for r in [*rows, *multi]:
        print(_row(r) + f" {'yes' if r['identical'] else 'NO'}")
    print(f"fixed costs at the unlimited rate (median of {fixed['runs']}): start-up {fixed['startup_s']:.3f} s "
          f"({fixed['startup_cpu_s']:.3f} s of CPU), "
          f"metadata {fixed['metadata_s']:.3f} s ({fixed['round_trips']} round trips), tail + exit "
          f"{fixed['tail_exit_s']:.3f} s; projected at 1 GB/s: {fixed['projected_1gbs_s']:.2f} s for "
          f"{fixed['transfer_1gbs_s']:.2f} s of transfer = {fixed['projected_1gbs_ratio']:.2f}x")
    if hf is not None:
        print(f"hf_hub_download of {', '.join(shards)} ({hf['shard_bytes'] / 1e9:.2f} GB) at "
              f"{hf['rate_limit_mb_s']:g} MB/s: {hf['link_bytes'] / 1e6:.0f} MB in {hf['wall_s']:.1f} s "
              f"({hf['rate_mb_s']:.1f} MB/s; {'done' if hf['completed'] else 'stopped'}), "
              f"projected {hf['projected_full_s']:.0f} s for the two shards")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"code": str(args.code), "checkpoint_bytes": sum(sizes.values()), "shards": sizes, "runs": rows,
                                     "multi_layer": multi, "fixed_costs": fixed, "hf_hub_download": hf,
                                     "cpus": os.cpu_count(), "load_avg": os.getloadavg()}, indent=2))
    print(f"wrote {args.json}")


def _header_length(path: Path) -> int:
    with open(path, "rb") as fh:
        return struct.unpack("<Q", fh.read(8))[0]


def _by_layer(run: dict) -> dict[int, str]:
    """Resolved layer index -> sha256 of a run's artifacts (`<name>-layer-<i>.safetensors`, or per call
    `<requested>:layer.safetensors`)."""
    out = {}
    for name, digest in run["sha256"].items():
        requested, _, file = name.rpartition(":")
        out[int(file.rsplit("-layer-", 1)[1].split(".")[0]) if "-layer-" in file else 32 + int(requested)] = digest
    return out


def _fixed_costs(runs: list[dict]) -> dict:
    """Median fixed costs of clean unlimited runs, and the wall they project at 1 GB/s (fixed + transfer)."""
    fixed = {k: sorted(get(r) for r in runs)[len(runs) // 2] for k, get in _FIXED.items()}
    transfer = runs[0]["artifact_bytes"] / 1e9
    total = fixed["startup_s"] + fixed["metadata_s"] + fixed["tail_exit_s"] + transfer
    return {**fixed, "runs": len(runs), "transfer_1gbs_s": transfer, "projected_1gbs_s": total,
            "projected_1gbs_ratio": total / transfer}


_FIXED = {
    "startup_cpu_s": lambda r: r["phases_s"]["startup_cpu"],
    "startup_s": lambda r: r["phases_s"]["startup"],
    "metadata_s": lambda r: r["phases_s"]["metadata"],
    "tail_exit_s": lambda r: r["phases_s"]["tail"] + r["phases_s"]["exit"],
    "round_trips": lambda r: r["round_trips"],
}


def _row(r: dict) -> str:
    p = r["phases_s"]
    link = "unlimited" if r["rate_mb_s"] is None else f"{r['rate_mb_s']:g} MB/s"
    xfer = "-" if r["transfer_s"] is None else f"{r['transfer_s']:.2f}"
    ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
    calls = f"{len(r['layers'])}L/{r['calls']}" if len(r["layers"]) > 1 else "1"
    return (f"{link:>9} {'1/5' if r['cut_every_5th'] else '-':>5} {calls:>5} {r['wall_s']:7.2f} {xfer:>7} {ratio:>6} "
            f"{r['link_bytes'] / 1e6:8.1f} {r['peak_rss_mb']:7.1f} {r['cpu_s']:5.2f} {p['startup']:7.2f} {p['metadata']:5.2f} "
            f"{p['data']:6.2f} {p['tail']:5.2f} {p['exit']:5.2f} {r['round_trips']:>3} {r['requests_before']:>4}")


if __name__ == "__main__":
    main()
