"""Round trips and requests of `pifi extract` on the loopback Hub (issue 23): the commit, config and index in one
round trip, each needed shard's header in the next (a redirect, then storage), then the tensor bytes; several
layers of one call share all of it and go through one pipeline of reads."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

import pifi_extract.pipeline as pipeline
from layer_cache import get_or_extract_layers
from pifi_extract import extract_layer, extract_layers
from pifi_extract.hub_source import HubSource
from tiny_models import make_tiny_model

REPO = "org/far-llama"
LATENCY = 0.15  # seconds the Hub waits before each answer: requests sent together surely overlap in its log


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny llama whose last layer spans several shards (as Llama-3.1-8B's spans two)."""
    return make_tiny_model("llama", tmp_path_factory.mktemp("models") / "llama", num_layers=4, hidden=128,
                           max_shard_size="200KB")


@pytest.fixture
def far_hub(hub_server, model_dir):
    hub_server.add_repo(REPO, model_dir)
    hub_server.redirect_lfs = True  # LFS files answer 302 to storage, as the Hub does
    return hub_server


def _data_starts(folder: Path) -> dict[str, int]:
    return {p.name: 8 + struct.unpack("<Q", p.read_bytes()[:8])[0] for p in folder.glob("*.safetensors")}


def _tensor_reads(hub, folder: Path) -> list:
    """Ranged GETs that start inside a shard's data section (tensor bytes)."""
    starts = _data_starts(folder)
    out = []
    for r in hub.requests("GET"):
        name = r.path.rsplit("/", 1)[-1]
        if name in starts and r.range and int(r.range[6:].split("-")[0]) >= starts[name]:
            out.append(r)
    return out


def test_round_trips_before_the_first_tensor_byte_are_the_protocol_minimum(tmp_path, far_hub, model_dir):
    far_hub.latency = LATENCY
    extract_layer(REPO, -1, tmp_path / "last.safetensors")
    first_tensor = min(r.started for r in _tensor_reads(far_hub, model_dir))
    before = [r for r in far_hub.log if r.started < first_tensor]
    shards = {r.path.rsplit("/", 1)[-1] for r in before if r.path.endswith(".safetensors") and "index" not in r.path}
    assert len(shards) >= 2  # the layer spans several shards
    # 1: model info (the commit) + config + index, together; 2: each shard's header asked at the Hub (302);
    # 3: ...and read from storage; the tensor bytes are the 4th. (Before issue 23: 5 round trips.)
    assert far_hub.round_trips(until=first_tensor) == 3
    assert not far_hub.requests("HEAD")
    what = sorted((r.method, r.status, r.path.rsplit("/", 1)[-1]) for r in before)
    assert what == sorted([("GET", 200, "far-llama"), ("GET", 200, "config.json"),
                           ("GET", 200, "model.safetensors.index.json"),
                           *[("GET", status, shard) for shard in shards for status in (302, 206)]])


def test_the_prefetched_config_of_another_commit_is_not_used(far_hub, model_dir, monkeypatch):
    """A push between the commit's resolution and the prefetch: bytes from another commit are read again, pinned."""
    import pifi_extract.hub_source as hub_source

    monkeypatch.setattr(hub_source, "fetch_small", lambda *a: ("f" * 40, b'{"model_type": "other"}'))
    source = HubSource(REPO, prefetch=["config.json"])
    assert bytes(source.read("config.json", 0, source.size("config.json"))) == (model_dir / "config.json").read_bytes()
    assert [r.path for r in far_hub.requests("GET", "config.json")] == [f"/{REPO}/resolve/{source.commit}/config.json"]


def test_a_size_the_model_info_left_out_costs_one_ranged_get_not_a_head(far_hub, model_dir):
    source = HubSource(REPO)
    shard = sorted(p.name for p in model_dir.glob("*.safetensors"))[0]
    del source._meta[shard]  # as from a server that lists a file without its size
    far_hub.reset_counters()
    assert source.size(shard) == (model_dir / shard).stat().st_size
    assert [(r.method, r.range) for r in far_hub.requests() if "cdn" not in r.path] == [("GET", "bytes=0-0")]


def test_several_layers_share_metadata_and_one_pipeline(tmp_path, far_hub, model_dir, monkeypatch):
    singles = {i: extract_layer(REPO, i, tmp_path / f"single{i}.safetensors").path.read_bytes() for i in (-1, -2)}
    calls = []

    def spy(source, targets, **kw):  # counts the pipelines and their artifacts
        calls.append(len(targets))
        return pipeline.write_artifacts(source, targets, **kw)

    for module in ("pifi_extract.extract", "layer_cache.get_or_extract"):  # the two callers
        monkeypatch.setattr(sys.modules[module], "write_artifacts", spy)
    far_hub.reset_counters()
    results = extract_layers(REPO, [-1, -2], lambda plan: tmp_path / f"both{plan.layer_index}.safetensors")
    assert calls == [2]  # one pipeline for both layers
    assert [r.path.read_bytes() for r in results] == [singles[-1], singles[-2]]  # byte-identical to one per call
    assert len(far_hub.requests("GET", "/api/models/")) == 1 and len(far_hub.requests("GET", "config.json")) == 1
    headers = [r for r in far_hub.requests("GET") if r.range and r.range.startswith("bytes=0-")]
    assert len(headers) == len({r.path for r in headers})  # each shard's header read once, from storage

    calls.clear()
    cached = get_or_extract_layers(REPO, [-1, -2, 3])  # -1 and 3 are one layer: one artifact, one key
    assert calls == [2] and cached[0].path == cached[2].path
    assert [a.path.read_bytes() for a in cached[:2]] == [singles[-1], singles[-2]]
    assert all(not a.hit for a in cached)


def test_pifi_extract_imports_no_training_code(tmp_path, model_dir):
    """Start-up (issue 23): `pifi extract` registers and imports only its own command module."""
    import subprocess

    probe = ("import sys, cli\nsys.argv = ['pifi', *sys.argv[1:]]\ncli.main()\n"
             "print('LOADED', sorted({m.split('.')[0] for m in sys.modules if m.startswith(('pifi', 'torch'))}))")
    done = subprocess.run([sys.executable, "-c", probe, "extract", "--llm", str(model_dir), "--layer", "-1",
                           "--no-cache", "-o", str(tmp_path / "l.safetensors"), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "LOADED ['pifi_cli', 'pifi_extract']"
