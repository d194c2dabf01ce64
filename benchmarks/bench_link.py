"""Benchmark `pifi extract` at Llama-3.1-8B scale through a simulated network link (issue 15).

    python benchmarks/bench_link.py                  # 25 and 100 MB/s + unlimited, clean and with cut bodies
    python benchmarks/bench_link.py --rates 100      # one rate only
    python benchmarks/bench_link.py --json out.json

What it builds and runs:
  * a Llama-3.1-8B-shaped bf16 checkpoint (the real tensor names and shapes; 4 shards packed greedily at 5 GB in
    module order, as transformers' save_pretrained made the original: 16.06 GB), **sparse on disk**: each shard is a
    valid safetensors file whose data is holes except a 16-byte position marker (shard, offset) every MiB, so a range
    read from the wrong place changes the artifact's hash; disk use is a few MB plus one artifact at a time;
  * served by the test suite's loopback Hub (tests/hub_server.py) with LFS files redirected (302) to storage, as the
    Hub does, behind a throttling TCP proxy on 127.0.0.1: one token bucket shared by all connections (the link's
    bandwidth), 15 ms each way (RTT 30 ms), 2 RTTs of setup per new connection (TCP + TLS); no slow start;
  * `pifi extract --llm bench/llama-3.1-8b --layer -1 --dtype keep --no-cache` in a fresh process per run (cold start,
    imports and teardown included), clean and with every 5th body cut after 1 MiB (resumed; default backoff);
  * huggingface_hub's `hf_hub_download` of the shards holding the layer at 100 MB/s, for a bounded time (its full
    time is projected from the bytes it moved: it cannot beat the link).
It prints, per run: wall, wall / (layer bytes / bandwidth), bytes through the link, peak RSS (VmHWM), the phases
(start-up = interpreter + imports, metadata = open + plan, data = streaming, tail = hash/fsync/rename, exit =
teardown) and whether the artifact is byte-identical to the unlimited clean run. Every run is bounded by a timeout.
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
marks = {"imported": None}
import cli
marks["imported"] = time.time()
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
ex.write_artifact = timed("write", ex.write_artifact)
wr.AtomicArtifactWriter.commit = timed("commit", wr.AtomicArtifactWriter.commit)
code = 0
try:
    cli.main(sys.argv[2:])
except SystemExit as e:
    code = e.code or 0
hwm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
marks["done"] = time.time()
print("BENCH " + json.dumps({"marks": marks, "hwm": hwm, "code": code, "torch": "torch" in sys.modules}))
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


def run_extract(link: Link, work: Path, env: dict[str, str], timeout: float) -> dict:
    out = work / "layer.safetensors"
    before = link.bytes_down
    t0 = time.time()
    args = ["extract", "--llm", REPO, "--layer", "-1", "--dtype", "keep", "--no-cache", "-o", str(out), "-q"]
    proc = subprocess.run([sys.executable, "-c", CHILD, str(t0), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=work)
    wall = time.time() - t0
    line = next((l for l in proc.stdout.splitlines() if l.startswith("BENCH ")), None)
    if line is None or proc.returncode:
        raise SystemExit(f"pifi extract failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    rec = json.loads(line[6:])
    m = rec["marks"]
    phases = {
        "startup": m["imported"] - t0,
        "metadata": m["plan_end"] - m["imported"],
        "data": m["commit_start"] - m["plan_end"],
        "tail": m["write_end"] - m["commit_start"],
        "exit": t0 + wall - m["done"],
    }
    digest = sha256_file(out)
    tensor_bytes = out.stat().st_size
    out.unlink()
    return {"wall_s": wall, "link_bytes": link.bytes_down - before, "artifact_bytes": tensor_bytes,
            "peak_rss_mb": rec["hwm"] / 1e6, "phases_s": phases, "sha256": digest, "torch_imported": rec["torch"]}


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
    parser.add_argument("--rates", nargs="+", type=float, default=[25, 100], help="link bandwidths in MB/s")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/link.json"))
    parser.add_argument("--timeout", type=float, default=120, help="seconds per pifi run")
    parser.add_argument("--hf-budget", type=float, default=10, help="seconds hf_hub_download may run (0: skip)")
    args = parser.parse_args()
    from hub_server import HubServer

    with tempfile.TemporaryDirectory(prefix="bench_link_") as tmp, HubServer() as hub:
        work = Path(tmp)
        sizes = build_checkpoint(work / "ckpt")
        serve_sparse(hub, work / "ckpt")
        hub.redirect_lfs = True
        upstream = int(hub.url.rsplit(":", 1)[1])
        link = Link(upstream, None)
        env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{link.port}", "HF_HOME": str(work / "hf_home"),
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "NO_PROXY": "127.0.0.1,localhost",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "PIFI_CACHE": str(work / "pifi_cache"), "OMP_NUM_THREADS": "1"}
        env.pop("HF_TOKEN", None)
        rows = []
        for rate in [None, *args.rates]:
            link.set_rate(None if rate is None else rate * 1e6)
            for cut in (False, True):
                hub.drop_every(5 if cut else 0, after_bytes=MiB)
                r = run_extract(link, work, env, args.timeout)
                hub.clear_faults()
                transfer = None if rate is None else r["artifact_bytes"] / (rate * 1e6)  # the layer's bytes
                rows.append({"rate_mb_s": rate, "cut_every_5th": cut, "transfer_s": transfer,
                             "ratio": None if transfer is None else r["wall_s"] / transfer, **r})
                print(_row(rows[-1]), flush=True)
        reference = rows[0]["sha256"]
        for r in rows:
            r["identical"] = r["sha256"] == reference
        shards = ["model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"]
        hf = None
        if args.hf_budget > 0:
            rate = max(args.rates)
            link.set_rate(rate * 1e6)
            hf = run_hf(link, work, env, shards, args.hf_budget)
            need = sum(sizes[s] for s in shards)
            hf |= {"rate_limit_mb_s": rate, "shard_bytes": need, "projected_full_s": need / (hf["rate_mb_s"] * 1e6)}
    print()
    print(f"{'link':>9} {'cuts':>5} {'wall s':>7} {'xfer s':>7} {'ratio':>6} {'link MB':>8} {'RSS MB':>7} "
          f"{'startup':>7} {'meta':>5} {'data':>6} {'tail':>5} {'exit':>5} same")
    for r in rows:
        print(_row(r) + f" {'yes' if r['identical'] else 'NO'}")
    if hf is not None:
        print(f"hf_hub_download of {', '.join(shards)} ({hf['shard_bytes'] / 1e9:.2f} GB) at "
              f"{hf['rate_limit_mb_s']:g} MB/s: {hf['link_bytes'] / 1e6:.0f} MB in {hf['wall_s']:.1f} s "
              f"({hf['rate_mb_s']:.1f} MB/s; {'done' if hf['completed'] else 'stopped'}), "
              f"projected {hf['projected_full_s']:.0f} s for the two shards")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"checkpoint_bytes": sum(sizes.values()), "shards": sizes, "runs": rows,
                                     "hf_hub_download": hf}, indent=2))
    print(f"wrote {args.json}")


def _row(r: dict) -> str:
    p = r["phases_s"]
    link = "unlimited" if r["rate_mb_s"] is None else f"{r['rate_mb_s']:g} MB/s"
    xfer = "-" if r["transfer_s"] is None else f"{r['transfer_s']:.2f}"
    ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
    return (f"{link:>9} {'1/5' if r['cut_every_5th'] else '-':>5} {r['wall_s']:7.2f} {xfer:>7} {ratio:>6} "
            f"{r['link_bytes'] / 1e6:8.1f} {r['peak_rss_mb']:7.1f} {p['startup']:7.2f} {p['metadata']:5.2f} "
            f"{p['data']:6.2f} {p['tail']:5.2f} {p['exit']:5.2f}")


if __name__ == "__main__":
    main()
